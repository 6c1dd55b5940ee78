/* SPDX-License-Identifier: MIT */
/*
 * The RPC layer (ElbusRpcPeer, ElbusRpcInvocation) between real clients of
 * a broker running on its own thread; the clients' tests run over UNIX,
 * TCP and WebSocket (PATH/unix, PATH/tcp, PATH/ws), the same body on each.
 */
#include "config.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include <elbus/elbus.h>

#include "elbus-test-util.h"

static GBytes *
bytes (const char *s)
{
  return g_bytes_new (s, strlen (s));
}

static void
assert_bytes (GBytes     *b,
              const char *expected)
{
  g_assert_nonnull (b);
  g_assert_cmpmem (g_bytes_get_data (b, NULL), g_bytes_get_size (b), expected, strlen (expected));
}

/* "81 a1 61" -> bytes; blanks are ignored. */
static GBytes *
hex_to_bytes (const char *hex)
{
  GByteArray *bytes = g_byte_array_new ();

  for (const char *p = hex; *p != '\0'; p++)
    {
      guint8 byte;

      if (*p == ' ')
        continue;
      g_assert_true (g_ascii_isxdigit (p[0]) && g_ascii_isxdigit (p[1]));
      byte = (guint8) (g_ascii_xdigit_value (p[0]) << 4 | g_ascii_xdigit_value (p[1]));
      g_byte_array_append (bytes, &byte, 1);
      p++;
    }
  return g_byte_array_free_to_bytes (bytes);
}

/* the server side: a handful of methods */

typedef struct {
  ElbusRpcInvocation *deferred;   /* (owned) (nullable) */
  guint               n_calls;
  guint32             last_call_id;
  gboolean            last_realtime;
  char               *last_sender;
  char               *notified_by;
  GBytes             *notified;
  ElbusRpcPeer       *relay;      /* (unowned) (nullable): for "relay" */
} Server;

static gboolean
answer_deferred_cb (gpointer user_data)
{
  Server *s = user_data;
  g_autoptr(GBytes) later = bytes ("later");

  elbus_rpc_invocation_return_value (s->deferred, later);
  g_clear_object (&s->deferred);
  return G_SOURCE_REMOVE;
}

static gboolean
handle_call_cb (ElbusRpcPeer       *peer,
                ElbusRpcInvocation *invocation,
                gpointer            user_data)
{
  Server *s = user_data;
  const char *method = elbus_rpc_invocation_get_method (invocation);

  s->n_calls++;
  s->last_call_id = elbus_rpc_invocation_get_call_id (invocation);
  s->last_realtime = elbus_rpc_invocation_is_realtime (invocation);
  g_free (s->last_sender);
  s->last_sender = g_strdup (elbus_rpc_invocation_get_sender (invocation));

  if (g_str_equal (method, "echo"))
    elbus_rpc_invocation_return_value (invocation, elbus_rpc_invocation_get_params (invocation));
  else if (g_str_equal (method, "fail"))
    elbus_rpc_invocation_return_error (invocation, -32010, "it failed on purpose");
  else if (g_str_equal (method, "gerror"))
    {
      g_autoptr(GError) error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED, "disk on fire");

      elbus_rpc_invocation_return_gerror (invocation, error);
    }
  else if (g_str_equal (method, "sum"))
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) params = elbus_rpc_invocation_get_params_variant (invocation, &error);
      gint64 a = 0, b = 0;

      if (params == NULL)
        elbus_rpc_invocation_return_gerror (invocation, error);
      else if (!g_variant_lookup (params, "a", "x", &a) || !g_variant_lookup (params, "b", "x", &b))
        elbus_rpc_invocation_return_error (invocation, ELBUS_RPC_ERROR_INVALID_PARAMS,
                                           "a and b are needed");
      else
        elbus_rpc_invocation_return_variant (invocation,
                                             g_variant_new_parsed ("{'sum': <%x>}", a + b));
    }
  else if (g_str_equal (method, "defer"))
    {
      s->deferred = g_object_ref (invocation);
      g_idle_add (answer_deferred_cb, s);
    }
  else if (g_str_equal (method, "drop"))
    ;   /* taken, never answered: the invocation answers when dropped */
  else if (g_str_equal (method, "relay") && s->relay != NULL)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GBytes) reply = elbus_rpc_peer_call_sync (s->relay, "rpc.third", "echo",
                                                          elbus_rpc_invocation_get_params (invocation),
                                                          ELBUS_QOS_PROCESSED, 5, NULL, &error);

      if (reply != NULL)
        elbus_rpc_invocation_return_value (invocation, reply);
      else
        elbus_rpc_invocation_return_gerror (invocation, error);
    }
  else
    return FALSE;

  return TRUE;
}

static void
notification_cb (ElbusRpcPeer *peer,
                 const char   *sender,
                 GBytes       *payload,
                 gpointer      user_data)
{
  Server *s = user_data;

  g_free (s->notified_by);
  s->notified_by = g_strdup (sender);
  g_clear_pointer (&s->notified, g_bytes_unref);
  s->notified = g_bytes_ref (payload);
}

static void
server_clear (Server *s)
{
  g_clear_object (&s->deferred);
  g_free (s->last_sender);
  g_free (s->notified_by);
  g_clear_pointer (&s->notified, g_bytes_unref);
}

typedef struct {
  ElbusTestBroker *tb;
  ElbusTestTransport transport;  /* of the clients under test */
  ElbusClient     *server_client;
  ElbusRpcPeer    *server;
  ElbusClient     *caller_client;
  ElbusRpcPeer    *caller;
  Server           s;
} Fixture;

static char *
broker_address (ElbusTestBroker    *tb,
                ElbusTestTransport  transport)
{
  if (transport == ELBUS_TEST_TRANSPORT_WS)
    return g_strdup (elbus_test_broker_get_ws_url (tb));
  if (transport == ELBUS_TEST_TRANSPORT_TCP)
    return g_strdup_printf ("127.0.0.1:%u", elbus_test_broker_get_tcp_port (tb));
  return g_strdup (elbus_test_broker_get_unix_path (tb));
}

static ElbusClient *
connect_client (ElbusTestBroker    *tb,
                ElbusTestTransport  transport,
                const char         *name)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *address = broker_address (tb, transport);
  ElbusClient *client = elbus_client_new_sync (address, name, NULL, &error);

  g_assert_no_error (error);
  return client;
}

static void
fixture_set_up (Fixture       *f,
                gconstpointer  data)
{
  f->tb = elbus_test_broker_new (NULL);
  f->transport = GPOINTER_TO_INT (data);
  f->server_client = connect_client (f->tb, f->transport, "rpc.server");
  f->server = elbus_rpc_peer_new (f->server_client);
  g_signal_connect (f->server, "handle-call", G_CALLBACK (handle_call_cb), &f->s);
  g_signal_connect (f->server, "notification", G_CALLBACK (notification_cb), &f->s);
  f->caller_client = connect_client (f->tb, f->transport, "rpc.caller");
  f->caller = elbus_rpc_peer_new (f->caller_client);
}

static void
fixture_tear_down (Fixture       *f,
                   gconstpointer  data)
{
  g_clear_object (&f->caller);
  g_clear_object (&f->caller_client);
  g_clear_object (&f->server);
  g_clear_object (&f->server_client);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  server_clear (&f->s);
  elbus_test_broker_free (f->tb);
}

static void
test_call_results (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(GBytes) params = bytes ("\x81\xa1x\x01");
  ElbusTestCall call = { 0 };

  g_test_summary ("Replies, errors with code and data, a GError answer, a method nobody "
                  "handles, and a call dropped unanswered");

  elbus_test_call_and_wait (f->caller, "rpc.server", "echo", params,
                            ELBUS_QOS_PROCESSED, 0, &call);
  g_assert_no_error (call.error);
  assert_bytes (call.reply, "\x81\xa1x\x01");
  g_assert_cmpstr (f->s.last_sender, ==, "rpc.caller");
  g_assert_cmpuint (f->s.last_call_id, ==, 1);

  elbus_test_call_and_wait (f->caller, "rpc.server", "fail", NULL,
                            ELBUS_QOS_PROCESSED, 0, &call);
  g_assert_error (call.error, ELBUS_RPC_ERROR, -32010);
  g_assert_cmpstr (call.error->message, ==, "it failed on purpose");

  elbus_test_call_and_wait (f->caller, "rpc.server", "gerror", NULL,
                            ELBUS_QOS_PROCESSED, 0, &call);
  g_assert_error (call.error, ELBUS_RPC_ERROR, ELBUS_RPC_ERROR_INTERNAL);
  g_assert_cmpstr (call.error->message, ==, "disk on fire");

  elbus_test_call_and_wait (f->caller, "rpc.server", "nosuch", NULL,
                            ELBUS_QOS_PROCESSED, 0, &call);
  g_assert_error (call.error, ELBUS_RPC_ERROR, ELBUS_RPC_ERROR_METHOD_NOT_FOUND);

  elbus_test_call_and_wait (f->caller, "rpc.server", "drop", NULL,
                            ELBUS_QOS_PROCESSED, 0, &call);
  g_assert_error (call.error, ELBUS_RPC_ERROR, ELBUS_RPC_ERROR_INTERNAL);

  /* call ids count on */
  elbus_test_call_and_wait (f->caller, "rpc.server", "echo", NULL,
                            ELBUS_QOS_PROCESSED, 0, &call);
  g_assert_no_error (call.error);
  assert_bytes (call.reply, "");
  g_assert_cmpuint (f->s.last_call_id, ==, 6);

  elbus_test_call_clear (&call);
}

static gboolean
handle_second_cb (ElbusRpcPeer       *peer,
                  ElbusRpcInvocation *invocation,
                  gpointer            user_data)
{
  guint *n_offered = user_data;
  g_autoptr(GBytes) answer = NULL;

  (*n_offered)++;
  if (!g_str_equal (elbus_rpc_invocation_get_method (invocation), "second"))
    return FALSE;
  answer = bytes ("from the second peer");
  elbus_rpc_invocation_return_value (invocation, answer);
  return TRUE;
}

static void
count_notification_cb (ElbusRpcPeer *peer,
                       const char   *sender,
                       GBytes       *payload,
                       gpointer      user_data)
{
  (*(guint *) user_data)++;
}

static void
test_several_peers (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(ElbusRpcPeer) newer = elbus_rpc_peer_new (f->caller_client);
  g_autoptr(ElbusRpcPeer) server2 = elbus_rpc_peer_new (f->server_client);
  g_autoptr(ElbusTestConn) raw = elbus_test_conn_new (f->tb, f->transport,
                                                      "rpc.raw");
  g_autoptr(ElbusTestFrame) frame = NULL;
  g_autoptr(GBytes) one = bytes ("one");
  g_autoptr(GBytes) two = bytes ("two");
  static const guint8 nosuch[] = { 0x01, 0x07, 0x00, 0x00, 0x00, 'n', 'o', 's', 'u', 'c', 'h', 0 };
  static const guint8 notify[] = { 0x00, 'h', 'i' };
  ElbusTestCall a = { 0 }, b = { 0 };
  guint n_offered = 0, n_notified = 0;

  g_test_summary ("Several peers on one client: each gets the replies to its own calls, "
                  "with both waiting at once; an incoming call is offered to the peers "
                  "newest first until one handles it, and answered once; a notification "
                  "reaches every peer; disposing of one (as a garbage collector may, late) "
                  "leaves the others working");

  g_signal_connect (server2, "handle-call", G_CALLBACK (handle_second_cb), &n_offered);
  g_signal_connect (server2, "notification", G_CALLBACK (count_notification_cb), &n_notified);

  /* two callers of one client, both waiting */
  elbus_rpc_peer_call_async (f->caller, "rpc.server", "echo", one, ELBUS_QOS_PROCESSED, 0,
                             NULL, elbus_test_call_cb, &a);
  elbus_rpc_peer_call_async (newer, "rpc.server", "echo", two, ELBUS_QOS_PROCESSED, 0,
                             NULL, elbus_test_call_cb, &b);
  elbus_test_spin_until (&a.done, "the older peer's reply");
  elbus_test_spin_until (&b.done, "the newer peer's reply");
  g_assert_no_error (a.error);
  assert_bytes (a.reply, "one");
  g_assert_no_error (b.error);
  assert_bytes (b.reply, "two");
  /* offered to the newest server peer first, which declined */
  g_assert_cmpuint (n_offered, ==, 2);
  g_assert_cmpuint (f->s.n_calls, ==, 2);

  elbus_test_call_and_wait (f->caller, "rpc.server", "second", NULL, ELBUS_QOS_PROCESSED, 0,
                            &a);
  g_assert_no_error (a.error);
  assert_bytes (a.reply, "from the second peer");
  g_assert_cmpuint (f->s.n_calls, ==, 2);

  /* nobody handles it: one answer, not one per peer */
  elbus_test_conn_send_op (raw, OP_MESSAGE, ELBUS_QOS_NO, "rpc.server", nosuch, sizeof nosuch);
  elbus_test_conn_send_op (raw, OP_MESSAGE, ELBUS_QOS_NO, "rpc.server", notify, sizeof notify);
  elbus_test_spin_for (ELBUS_TEST_QUIET_MS);
  frame = elbus_test_conn_read_frame (raw);
  g_assert_cmphex (frame->kind, ==, KIND_MESSAGE);
  g_assert_cmpstr (frame->sender, ==, "rpc.server");
  elbus_test_assert_rpc_error (frame->payload, ELBUS_RPC_ERROR_METHOD_NOT_FOUND);
  elbus_test_conn_expect_nothing (raw, 20);
  g_assert_cmpuint (n_notified, ==, 1);
  g_assert_cmpstr (f->s.notified_by, ==, "rpc.raw");

  /* the older ones go; the newer ones go on */
  g_clear_object (&f->caller);
  g_clear_object (&f->server);
  elbus_test_call_and_wait (newer, "rpc.server", "second", NULL, ELBUS_QOS_PROCESSED, 0, &b);
  g_assert_no_error (b.error);
  assert_bytes (b.reply, "from the second peer");
  elbus_test_call_and_wait (newer, "rpc.server", "echo", NULL, ELBUS_QOS_PROCESSED, 0, &b);
  g_assert_error (b.error, ELBUS_RPC_ERROR, ELBUS_RPC_ERROR_METHOD_NOT_FOUND);

  elbus_test_call_clear (&a);
  elbus_test_call_clear (&b);
}

static void
test_deferred (Fixture       *f,
               gconstpointer  data)
{
  ElbusTestCall call = { 0 };

  g_test_summary ("A handler may keep the invocation and answer later");

  elbus_test_call_and_wait (f->caller, "rpc.server", "defer", NULL,
                            ELBUS_QOS_PROCESSED, 0, &call);
  g_assert_no_error (call.error);
  assert_bytes (call.reply, "later");
  elbus_test_call_clear (&call);
}

static void
test_bus_errors (Fixture       *f,
                 gconstpointer  data)
{
  ElbusTestCall call = { 0 };
  g_autoptr(GError) error = NULL;
  GBytes *reply;

  g_test_summary ("A call to a name nobody has fails with -32000 - 0x71, async and sync");

  elbus_test_call_and_wait (f->caller, "rpc.nobody", "echo", NULL,
                            ELBUS_QOS_PROCESSED, 0, &call);
  g_assert_error (call.error, ELBUS_RPC_ERROR, -32113);
  elbus_test_call_clear (&call);

  reply = elbus_rpc_peer_call_sync (f->caller, "rpc.nobody", "echo", NULL, ELBUS_QOS_PROCESSED,
                                    0, NULL, &error);
  g_assert_null (reply);
  g_assert_error (error, ELBUS_RPC_ERROR, -32113);
}

static void
test_realtime (Fixture       *f,
               gconstpointer  data)
{
  ElbusTestCall call = { 0 };

  g_test_summary ("A real-time request is seen as such by the handler and answered");

  elbus_test_call_and_wait (f->caller, "rpc.server", "echo", NULL,
                            ELBUS_QOS_REALTIME_PROCESSED, 0, &call);
  g_assert_no_error (call.error);
  g_assert_true (f->s.last_realtime);
  elbus_test_call_clear (&call);
}

static void
test_call0_and_notify (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) note = bytes ("note");
  guint n_calls = f->s.n_calls;
  gint64 deadline = g_get_monotonic_time () + elbus_test_scale_ms (5000) * 1000;

  g_test_summary ("call0 reaches the handler with call id 0 and wants no answer; a "
                  "notification reaches the notification signal");

  g_assert_true (elbus_rpc_peer_call0_sync (f->caller, "rpc.server", "echo", note,
                                            ELBUS_QOS_PROCESSED, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (elbus_rpc_peer_notify_sync (f->caller, "rpc.server", note, ELBUS_QOS_PROCESSED,
                                             NULL, &error));
  g_assert_no_error (error);

  while (f->s.n_calls == n_calls || f->s.notified == NULL)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, TRUE);
    }
  g_assert_cmpuint (f->s.last_call_id, ==, 0);
  g_assert_cmpstr (f->s.notified_by, ==, "rpc.caller");
  assert_bytes (f->s.notified, "note");

  /* call0 to nobody is a bus error */
  g_assert_false (elbus_rpc_peer_call0_sync (f->caller, "rpc.nobody", "x", NULL,
                                             ELBUS_QOS_PROCESSED, NULL, &error));
  g_assert_error (error, ELBUS_RPC_ERROR, -32113);
}

static void
test_timeout_cancel_disconnect (Fixture       *f,
                                gconstpointer  data)
{
  /* registered, never answering */
  g_autoptr(ElbusClient) silent G_GNUC_UNUSED = connect_client (f->tb, f->transport, "rpc.silent");
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GError) error = NULL;
  ElbusTestCall call = { 0 };
  GBytes *reply;

  g_test_summary ("No call waits forever: a target that never answers times out, a "
                  "cancelled call fails at once, and a disconnect fails what is pending");

  /* a client without an RPC layer never answers */
  elbus_test_call_and_wait (f->caller, "rpc.silent", "echo", NULL,
                            ELBUS_QOS_PROCESSED, 0.2, &call);
  g_assert_error (call.error, ELBUS_ERROR, ELBUS_ERROR_TIMEOUT);

  reply = elbus_rpc_peer_call_sync (f->caller, "rpc.silent", "echo", NULL, ELBUS_QOS_PROCESSED,
                                    0.2, NULL, &error);
  g_assert_null (reply);
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_TIMEOUT);
  g_clear_error (&error);

  elbus_test_call_clear (&call);
  elbus_rpc_peer_call_async (f->caller, "rpc.silent", "echo", NULL, ELBUS_QOS_PROCESSED, 10,
                             cancellable, elbus_test_call_cb, &call);
  g_cancellable_cancel (cancellable);
  elbus_test_spin_until (&call.done, "the call's answer");
  g_assert_error (call.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);

  elbus_test_call_clear (&call);
  elbus_rpc_peer_call_async (f->caller, "rpc.silent", "echo", NULL, ELBUS_QOS_PROCESSED, 10,
                             NULL, elbus_test_call_cb, &call);
  g_assert_true (elbus_test_broker_force_disconnect (f->tb, "rpc.caller"));
  elbus_test_spin_until (&call.done, "the call's answer");
  g_assert_error (call.error, ELBUS_ERROR, ELBUS_ERROR_CLOSED);
  elbus_test_call_clear (&call);
}

static void
test_malformed (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(ElbusTestConn) raw = elbus_test_conn_new (f->tb, f->transport, "rpc.raw");
  static const guint8 too_short[] = { 0x01, 0x05, 0x00 };
  static const guint8 no_method_end[] = { 0x01, 0x07, 0, 0, 0, 'e', 'c', 'h', 'o' };
  static const guint8 unknown_type[] = { 0x55, 1, 2, 3 };
  static const guint8 stray_reply[] = { 0x11, 0x99, 0x99, 0, 0, 'x' };
  static const guint8 short_error[] = { 0x12, 0x01, 0, 0 };
  const struct { const guint8 *data; gsize len; } cases[] = {
    { too_short, sizeof too_short },
    { no_method_end, sizeof no_method_end },
    { unknown_type, sizeof unknown_type },
    { stray_reply, sizeof stray_reply },
    { short_error, sizeof short_error },
  };
  ElbusTestCall call = { 0 };

  g_test_summary ("Malformed RPC payloads and replies to unknown calls are dropped; the "
                  "peer keeps answering");

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      guint32 op_id = elbus_test_conn_send_op (raw, 0x12, ELBUS_QOS_PROCESSED, "rpc.server",
                                               cases[i].data, cases[i].len);

      elbus_test_conn_expect_ack (raw, op_id, 0x01);
    }
  /* whatever the server made of them, it still answers */
  elbus_test_call_and_wait (f->caller, "rpc.server", "echo", NULL,
                            ELBUS_QOS_PROCESSED, 0, &call);
  g_assert_no_error (call.error);
  g_assert_cmpuint (f->s.n_calls, ==, 1);
  elbus_test_call_clear (&call);
}

/* A handler that calls out needs a secondary: the server runs on its own
 * thread and relays to a third peer living on the test's thread. */
typedef struct {
  ElbusTestBroker *tb;
  ElbusTestTransport transport;
  GMainContext    *context;
  GMainLoop       *loop;
  gboolean         ready;
  GMutex           lock;
  GCond            cond;
} ServerThread;

static gpointer
relay_server_thread (gpointer data)
{
  ServerThread *st = data;
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(ElbusClient) secondary = NULL;
  g_autoptr(ElbusRpcPeer) peer = NULL;
  g_autoptr(ElbusRpcPeer) relay = NULL;
  g_autoptr(GError) error = NULL;
  Server s = { 0 };

  g_main_context_push_thread_default (st->context);
  client = connect_client (st->tb, st->transport, "rpc.relay");
  secondary = elbus_client_register_secondary_sync (client, NULL, &error);
  g_assert_no_error (error);
  peer = elbus_rpc_peer_new (client);
  relay = elbus_rpc_peer_new (secondary);
  s.relay = relay;
  g_signal_connect (peer, "handle-call", G_CALLBACK (handle_call_cb), &s);

  g_mutex_lock (&st->lock);
  st->ready = TRUE;
  g_cond_signal (&st->cond);
  g_mutex_unlock (&st->lock);

  g_main_loop_run (st->loop);

  g_signal_handlers_disconnect_by_data (peer, &s);
  g_clear_object (&relay);
  server_clear (&s);
  g_main_context_pop_thread_default (st->context);
  return NULL;
}

static void
test_handler_calls_out (gconstpointer data)
{
  ServerThread st = { 0 };
  g_autoptr(ElbusClient) third_client = NULL;
  g_autoptr(ElbusRpcPeer) third = NULL;
  g_autoptr(ElbusClient) caller_client = NULL;
  g_autoptr(ElbusRpcPeer) caller = NULL;
  g_autoptr(GBytes) params = bytes ("via relay");
  GThread *thread;
  Server s = { 0 };
  ElbusTestCall call = { 0 };

  g_test_summary ("A handler makes its own call through a secondary client while the "
                  "original caller waits; the answer travels back through both");

  st.tb = elbus_test_broker_new (NULL);
  st.transport = GPOINTER_TO_INT (data);
  st.context = g_main_context_new ();
  st.loop = g_main_loop_new (st.context, FALSE);
  g_mutex_init (&st.lock);
  g_cond_init (&st.cond);

  third_client = connect_client (st.tb, st.transport, "rpc.third");
  third = elbus_rpc_peer_new (third_client);
  g_signal_connect (third, "handle-call", G_CALLBACK (handle_call_cb), &s);
  caller_client = connect_client (st.tb, st.transport, "rpc.origin");
  caller = elbus_rpc_peer_new (caller_client);

  thread = g_thread_new ("relay-server", relay_server_thread, &st);
  g_mutex_lock (&st.lock);
  while (!st.ready)
    g_cond_wait (&st.cond, &st.lock);
  g_mutex_unlock (&st.lock);

  elbus_rpc_peer_call_async (caller, "rpc.relay", "relay", params, ELBUS_QOS_PROCESSED, 5,
                             NULL, elbus_test_call_cb, &call);
  elbus_test_spin_until (&call.done, "the call's answer");
  g_assert_no_error (call.error);
  assert_bytes (call.reply, "via relay");
  g_assert_cmpstr (s.last_sender, ==, "rpc.relay%%1");

  g_main_loop_quit (st.loop);
  g_thread_join (thread);
  g_main_loop_unref (st.loop);
  g_main_context_unref (st.context);
  g_mutex_clear (&st.lock);
  g_cond_clear (&st.cond);
  elbus_test_call_clear (&call);
  g_signal_handlers_disconnect_by_data (third, &s);
  server_clear (&s);
  g_clear_object (&third);
  g_clear_object (&third_client);
  g_clear_object (&caller);
  g_clear_object (&caller_client);
  elbus_test_broker_free (st.tb);
}

static void
call_variant_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  GVariant **out = user_data;
  g_autoptr(GError) error = NULL;

  *out = elbus_rpc_peer_call_variant_finish (ELBUS_RPC_PEER (source), result, &error);
  g_assert_no_error (error);
}

static void
one_way_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  gboolean *done = user_data;
  g_autoptr(GError) error = NULL;

  if (g_task_get_source_tag (G_TASK (result)) == elbus_rpc_peer_call0_async)
    g_assert_true (elbus_rpc_peer_call0_finish (ELBUS_RPC_PEER (source), result, &error));
  else
    g_assert_true (elbus_rpc_peer_notify_finish (ELBUS_RPC_PEER (source), result, &error));
  g_assert_no_error (error);
  *done = TRUE;
}

static void
test_variant_forms (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) sync_reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) junk = bytes ("\xc1");
  g_autoptr(GBytes) note = bytes ("n");
  gboolean call0_done = FALSE, notify_done = FALSE;
  gint64 sum = 0;
  gint64 deadline = g_get_monotonic_time () + elbus_test_scale_ms (5000) * 1000;
  ElbusTestCall call = { 0 };

  g_test_summary ("GVariant params and results through MessagePack, both ways; params that "
                  "are not MessagePack answer -32700; call0 and notify complete async");

  elbus_rpc_peer_call_variant_async (f->caller, "rpc.server", "sum",
                                     g_variant_new_parsed ("{'a': <@x 2>, 'b': <@x 40>}"),
                                     ELBUS_QOS_PROCESSED, 0, NULL, call_variant_cb, &reply);
  while (reply == NULL)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, TRUE);
    }
  g_assert_true (g_variant_lookup (reply, "sum", "x", &sum));
  g_assert_cmpint (sum, ==, 42);

  elbus_test_call_and_wait (f->caller, "rpc.server", "sum", junk,
                            ELBUS_QOS_PROCESSED, 0, &call);
  g_assert_error (call.error, ELBUS_RPC_ERROR, ELBUS_RPC_ERROR_PARSE);
  elbus_test_call_clear (&call);

  /* the sync form, with the bus error mapped */
  sync_reply = elbus_rpc_peer_call_variant_sync (f->caller, "rpc.nobody", "sum", NULL,
                                                 ELBUS_QOS_PROCESSED, 0, NULL, &error);
  g_assert_null (sync_reply);
  g_assert_error (error, ELBUS_RPC_ERROR, -32113);

  elbus_rpc_peer_call0_async (f->caller, "rpc.server", "echo", NULL, ELBUS_QOS_PROCESSED, NULL,
                              one_way_cb, &call0_done);
  elbus_rpc_peer_notify_async (f->caller, "rpc.server", note, ELBUS_QOS_PROCESSED, NULL,
                               one_way_cb, &notify_done);
  while (!call0_done || !notify_done || f->s.notified == NULL)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, TRUE);
    }
  assert_bytes (f->s.notified, "n");
}

typedef struct {
  gboolean  done;
  GVariant *reply;
  GError   *error;
} VariantCall;

static void
variant_call_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  VariantCall *call = user_data;

  call->reply = elbus_rpc_peer_call_variant_finish (ELBUS_RPC_PEER (source), result,
                                                    &call->error);
  call->done = TRUE;
}

/* A variant call to rpc.server, served by this thread's context. */
static GVariant *
call_variant_and_wait (ElbusRpcPeer  *caller,
                       const char    *method,
                       GVariant      *params,
                       GError       **error)
{
  VariantCall call = { 0 };
  gint64 deadline = g_get_monotonic_time () + elbus_test_scale_ms (5000) * 1000;

  elbus_rpc_peer_call_variant_async (caller, "rpc.server", method, params, ELBUS_QOS_PROCESSED,
                                     0, NULL, variant_call_cb, &call);
  while (!call.done)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, TRUE);
    }
  if (call.error != NULL)
    g_propagate_error (error, call.error);
  return call.reply;
}

static void
test_decode_limits (Fixture       *f,
                    gconstpointer  data)
{
  /* {'a': 2, 'b': 40, 'c': [1, 2, 3]}: 1 + 6 + 3 values */
  g_autoptr(GBytes) params = hex_to_bytes ("83 a1 61 02 a1 62 28 a1 63 93 01 02 03");
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  ElbusTestCall call = { 0 };
  guint max_depth;
  gsize max_values, max_size;
  static const struct {
    guint       max_depth;
    gsize       max_values;
    gsize       max_size;
    const char *text;
  } over[] = {
    { 0, 9, 0, "more than 9 values" },
    { 1, 0, 0, "deeper than 1 levels" },
    { 0, 0, 12, "more than the limit of 12" },
  };

  g_test_summary ("A peer decodes params and replies within its limits: over them the "
                  "caller gets -32602 from get_params_variant(), a variant call a parse "
                  "error; 0 means the defaults");

  elbus_rpc_peer_get_decode_limits (f->server, &max_depth, &max_values, &max_size);
  g_assert_cmpuint (max_depth, ==, ELBUS_MSGPACK_MAX_DEPTH);
  g_assert_cmpuint (max_values, ==, ELBUS_MSGPACK_DEFAULT_MAX_VALUES);
  g_assert_cmpuint (max_size, ==, ELBUS_MSGPACK_DEFAULT_MAX_SIZE);

  elbus_test_call_and_wait (f->caller, "rpc.server", "sum", params, ELBUS_QOS_PROCESSED, 0,
                            &call);
  g_assert_no_error (call.error);
  elbus_test_call_clear (&call);

  for (gsize i = 0; i < G_N_ELEMENTS (over); i++)
    {
      elbus_rpc_peer_set_decode_limits (f->server, over[i].max_depth, over[i].max_values,
                                        over[i].max_size);
      elbus_test_call_and_wait (f->caller, "rpc.server", "sum", params, ELBUS_QOS_PROCESSED, 0,
                                &call);
      g_assert_error (call.error, ELBUS_RPC_ERROR, ELBUS_RPC_ERROR_INVALID_PARAMS);
      if (strstr (call.error->message, over[i].text) == NULL)
        g_assert_cmpstr (call.error->message, ==, over[i].text);
      elbus_test_call_clear (&call);
    }

  elbus_rpc_peer_set_decode_limits (f->server, 0, 0, 0);
  elbus_rpc_peer_get_decode_limits (f->server, NULL, &max_values, NULL);
  g_assert_cmpuint (max_values, ==, ELBUS_MSGPACK_DEFAULT_MAX_VALUES);

  /* the echo comes back as it went; the caller's limits refuse it */
  elbus_rpc_peer_set_decode_limits (f->caller, 0, 5, 0);
  reply = call_variant_and_wait (f->caller, "echo", g_variant_new_parsed ("[1, 2, 3, 4, 5]"),
                                 &error);
  g_assert_null (reply);
  g_assert_error (error, ELBUS_RPC_ERROR, ELBUS_RPC_ERROR_PARSE);
  g_assert_nonnull (strstr (error->message, "more than 5 values"));
  g_clear_error (&error);

  elbus_rpc_peer_set_decode_limits (f->caller, 0, 6, 0);
  reply = call_variant_and_wait (f->caller, "echo", g_variant_new_parsed ("[1, 2, 3, 4, 5]"),
                                 &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_variant_n_children (reply), ==, 5);
}

/* The broker's own .broker client, spoken to on the raw wire so that the
 * exact reply bytes are checked. */

static ElbusTestBroker *
core_broker_new (void)
{
  ElbusTestBroker *tb = elbus_test_broker_new (NULL);

  elbus_test_broker_enable_core_rpc (tb);
  return tb;
}

static void
test_core_methods (void)
{
  ElbusTestBroker *tb = core_broker_new ();
  g_autoptr(ElbusTestConn) conn = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "core.raw");
  g_autoptr(ElbusTestConn) tcp = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_TCP, "core.tcp");
  g_autoptr(ElbusTestConn) sec = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "core.tcp%%1");
  static const guint8 ok_true[] = { 0x81, 0xa2, 'o', 'k', 0xc3 };
  static const guint8 empty_map[] = { 0x80 };
  static const guint8 one_map[] = { 0x81, 0xa1, 'a', 0x01 };
  static const guint8 not_msgpack[] = { 0xc1 };
  static const guint8 bench[] = { 0x00, 0xff, 'x', 0x01 };
  g_autoptr(GBytes) answer = NULL;
  g_autoptr(GVariant) value = NULL;
  g_autoptr(GVariant) clients = NULL;
  const char *str;
  guint64 n;

  g_test_summary ("test, info, stats, client.list and benchmark.test answer byte-compatibly; "
                  "bad params are -32602, non-MessagePack -32700, unknown methods -32601, "
                  "call id 0 gets no answer");

  answer = elbus_test_conn_core_call (conn, 7, "test", NULL, 0);
  elbus_test_assert_rpc_reply (answer, 7, ok_true, sizeof ok_true);
  g_clear_pointer (&answer, g_bytes_unref);

  answer = elbus_test_conn_core_call (conn, 8, "test", empty_map, sizeof empty_map);
  elbus_test_assert_rpc_reply (answer, 8, ok_true, sizeof ok_true);
  g_clear_pointer (&answer, g_bytes_unref);

  answer = elbus_test_conn_core_call (conn, 9, "test", one_map, sizeof one_map);
  elbus_test_assert_rpc_error (answer, -32602);
  g_clear_pointer (&answer, g_bytes_unref);

  answer = elbus_test_conn_core_call (conn, 10, "stats", not_msgpack, sizeof not_msgpack);
  elbus_test_assert_rpc_error (answer, -32700);
  g_clear_pointer (&answer, g_bytes_unref);

  answer = elbus_test_conn_core_call (conn, 11, "frobnicate", NULL, 0);
  elbus_test_assert_rpc_error (answer, -32601);
  g_clear_pointer (&answer, g_bytes_unref);

  answer = elbus_test_conn_core_call (conn, 12, "benchmark.test", bench, sizeof bench);
  elbus_test_assert_rpc_reply (answer, 12, bench, sizeof bench);
  g_clear_pointer (&answer, g_bytes_unref);

  answer = elbus_test_conn_core_call (conn, 13, "info", NULL, 0);
  elbus_test_assert_rpc_reply (answer, 13, NULL, 0);
  value = elbus_test_decode_rpc_reply (answer);
  g_assert_true (g_variant_lookup (value, "author", "&s", &str));
  g_assert_true (g_variant_lookup (value, "version", "&s", &str));
  g_assert_cmpstr (str, ==, ELBUS_VERSION_S);
  g_clear_pointer (&value, g_variant_unref);
  g_clear_pointer (&answer, g_bytes_unref);

  answer = elbus_test_conn_core_call (conn, 14, "stats", NULL, 0);
  value = elbus_test_decode_rpc_reply (answer);
  g_assert_true (g_variant_lookup (value, "r_frames", "x", &n) ||
                 g_variant_lookup (value, "r_frames", "t", &n));
  g_assert_cmpuint (n, >, 10);
  {
    g_autoptr(GVariant) uptime = g_variant_lookup_value (value, "uptime", NULL);

    g_assert_nonnull (uptime);
  }
  g_clear_pointer (&value, g_variant_unref);
  g_clear_pointer (&answer, g_bytes_unref);

  answer = elbus_test_conn_core_call (conn, 15, "client.list", NULL, 0);
  value = elbus_test_decode_rpc_reply (answer);
  clients = g_variant_lookup_value (value, "clients", G_VARIANT_TYPE ("av"));
  g_assert_nonnull (clients);
  /* primaries only, sorted: .broker, core.raw, core.tcp */
  g_assert_cmpuint (g_variant_n_children (clients), ==, 3);
  {
    const char *names[] = { ".broker", "core.raw", "core.tcp" };
    const char *kinds[] = { "internal", "local_ipc", "tcp" };

    for (guint i = 0; i < 3; i++)
      {
        g_autoptr(GVariant) boxed = g_variant_get_child_value (clients, i);
        g_autoptr(GVariant) entry = g_variant_get_variant (boxed);
        g_autoptr(GVariant) source = g_variant_lookup_value (entry, "source", NULL);
        g_autoptr(GVariant) port = g_variant_lookup_value (entry, "port", NULL);
        guint64 instances = 0;

        g_assert_true (g_variant_lookup (entry, "name", "&s", &str));
        g_assert_cmpstr (str, ==, names[i]);
        g_assert_true (g_variant_lookup (entry, "kind", "&s", &str));
        g_assert_cmpstr (str, ==, kinds[i]);
        g_assert_true (g_variant_lookup (entry, "instances", "x", &instances) ||
                       g_variant_lookup (entry, "instances", "t", &instances));
        g_assert_cmpuint (instances, ==, i == 2 ? 2 : 1);
        /* nil decodes as a maybe: TCP alone has a source, internal no port */
        g_assert_cmpint (g_variant_is_of_type (source, G_VARIANT_TYPE_STRING), ==, i == 2);
        g_assert_cmpint (g_variant_is_of_type (port, G_VARIANT_TYPE_STRING), ==, i != 0);
      }
  }
  g_clear_pointer (&value, g_variant_unref);
  g_clear_pointer (&answer, g_bytes_unref);

  /* call id 0: no answer; the next answer is for the next call */
  elbus_test_conn_core_call (conn, 0, "test", NULL, 0);
  answer = elbus_test_conn_core_call (conn, 16, "test", NULL, 0);
  elbus_test_assert_rpc_reply (answer, 16, ok_true, sizeof ok_true);
  g_clear_pointer (&answer, g_bytes_unref);

  g_clear_pointer (&sec, elbus_test_conn_free);
  g_clear_pointer (&tcp, elbus_test_conn_free);
  g_clear_pointer (&conn, elbus_test_conn_free);
  elbus_test_broker_free (tb);
}

/* The error data of an RPC error answer, as text. */
static char *
rpc_error_text (GBytes *answer)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (answer, &len);

  g_assert_cmpuint (len, >=, 7);
  return g_strndup ((const char *) data + 7, len - 7);
}

static void
test_core_params (void)
{
  ElbusTestBroker *tb = core_broker_new ();
  g_autoptr(ElbusTestConn) conn = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "core.raw");
  static const struct {
    const char *method;
    const char *params;     /* hex */
    int         code;
    const char *text;       /* (nullable): in the error data */
  } cases[] = {
    { "test", "92 01 02", -32700, "not an array" },
    { "test", "c0", -32700, "not nil" },
    { "info", "a1 61", -32700, "not a string" },
    { "stats", "07", -32700, "not an integer" },
    { "client.list", "81 01 02", -32700, "keys are not strings" },
    { "test", "80 00", -32700, "followed by more bytes" },
    { "test", "de 00", -32700, "truncated map" },
    { "test", "c1", -32700, "0xc1" },
    { "nosuch", "92 01 02", -32700, "not an array" },
    { "monitor.stop", "90", -32700, NULL },
    { "monitor.start", "c0", -32700, NULL },
    { "test", "81 a1 61 01", -32602, "takes no parameters" },
    { "stats", "de 00 01 a1 61 01", -32602, NULL },
    { "monitor.stop", "81 a1 61 01", -32602, NULL },
    { "nosuch", "81 a1 61 01", -32601, NULL },
    { "nosuch", "80", -32601, NULL },
    { "nosuch", "de 00 00", -32601, NULL },
    { "nosuch", "", -32601, NULL },
  };
  gsize huge = 16 * 1024 * 1024;
  g_autofree guint8 *array = g_malloc0 (5 + huge);
  g_autofree guint8 *map = g_malloc (5 + huge);
  guint32 call_id = 1;

  g_test_summary ("`.broker` tells params apart by their first bytes, as the original "
                  "orders its errors: not a map with string keys -32700 for any method "
                  "(benchmark.test aside), a non-empty map -32602 for methods that take "
                  "none, an unknown method -32601; 16 MiB of params are answered so too, "
                  "and monitor.start's filters have limits");

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GBytes) params = hex_to_bytes (cases[i].params);
      g_autoptr(GBytes) answer = elbus_test_conn_core_call (conn, call_id++, cases[i].method,
                                                            g_bytes_get_data (params, NULL),
                                                            g_bytes_get_size (params));
      g_autofree char *text = NULL;

      g_test_message ("%s %s", cases[i].method, cases[i].params);
      elbus_test_assert_rpc_error (answer, cases[i].code);
      text = rpc_error_text (answer);
      if (cases[i].text != NULL && strstr (text, cases[i].text) == NULL)
        g_assert_cmpstr (text, ==, cases[i].text);
    }

  /* an array32 of 16 Mi zeros: an array, whatever it holds */
  array[0] = 0xdd;
  array[1] = huge >> 24, array[2] = huge >> 16, array[3] = huge >> 8, array[4] = huge;
  {
    g_autoptr(GBytes) answer = elbus_test_conn_core_call (conn, call_id++, "test", array,
                                                          5 + huge);

    elbus_test_assert_rpc_error (answer, -32700);
  }
  /* a map32 of 8 Mi entries "" => 0: a map with string keys */
  map[0] = 0xdf;
  map[1] = (huge / 2) >> 24, map[2] = (huge / 2) >> 16, map[3] = (huge / 2) >> 8,
  map[4] = (huge / 2) & 0xff;
  for (gsize i = 0; i < huge; i += 2)
    map[5 + i] = 0xa0, map[6 + i] = 0x00;
  {
    g_autoptr(GBytes) answer = elbus_test_conn_core_call (conn, call_id++, "test", map,
                                                          5 + huge);

    elbus_test_assert_rpc_error (answer, -32602);
  }
  /* monitor.start checks its filters against small limits before
   * decoding them: too long, too many values, too deep */
  {
    g_autoptr(GBytes) answer = elbus_test_conn_core_call (conn, call_id++, "monitor.start", map,
                                                          5 + huge);
    g_autofree char *text = NULL;

    elbus_test_assert_rpc_error (answer, -32602);
    text = rpc_error_text (answer);
    g_assert_nonnull (strstr (text, "more than the limit of 1048576"));
  }
  {
    g_autoptr(GBytes) answer = NULL;
    g_autofree char *text = NULL;

    /* the same map, cut to 5000 entries */
    map[1] = 0, map[2] = 0, map[3] = 5000 >> 8, map[4] = 5000 & 0xff;
    answer = elbus_test_conn_core_call (conn, call_id++, "monitor.start", map, 5 + 2 * 5000);
    elbus_test_assert_rpc_error (answer, -32602);
    text = rpc_error_text (answer);
    g_assert_nonnull (strstr (text, "values (the limit)"));
  }
  {
    g_autoptr(GBytes) deep = hex_to_bytes ("81 a1 61 91 91 91 91 00");
    g_autoptr(GBytes) answer = elbus_test_conn_core_call (conn, call_id++, "monitor.start",
                                                          g_bytes_get_data (deep, NULL),
                                                          g_bytes_get_size (deep));
    g_autofree char *text = NULL;

    elbus_test_assert_rpc_error (answer, -32602);
    text = rpc_error_text (answer);
    g_assert_nonnull (strstr (text, "deeper than 4 levels"));
  }

  /* still served */
  {
    static const guint8 ok_true[] = { 0x81, 0xa2, 'o', 'k', 0xc3 };
    g_autoptr(GBytes) answer = elbus_test_conn_core_call (conn, call_id, "test", NULL, 0);

    elbus_test_assert_rpc_reply (answer, call_id, ok_true, sizeof ok_true);
  }

  g_clear_pointer (&conn, elbus_test_conn_free);
  elbus_test_broker_free (tb);
}

static void
test_core_announcements (void)
{
  ElbusTestBroker *tb = core_broker_new ();
  g_autoptr(ElbusTestConn) watcher = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "watch.er");
  g_autoptr(ElbusTestConn) comer = NULL;
  g_autoptr(ElbusTestConn) sec = NULL;
  const char *expect[] = { "reg", "unreg" };

  g_test_summary ("Primaries are announced on .broker/info as they come and go (secondaries "
                  "are not), and the broker's end on .broker/warn");

  elbus_test_conn_subscribe (watcher, ".broker/info", NULL);
  comer = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "come.and.go");
  sec = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "come.and.go%%1");
  g_clear_pointer (&sec, elbus_test_conn_free);
  g_clear_pointer (&comer, elbus_test_conn_free);

  for (guint i = 0; i < G_N_ELEMENTS (expect); i++)
    {
      g_autoptr(ElbusTestFrame) frame = elbus_test_conn_read_frame (watcher);
      g_autoptr(GVariant) value = NULL;
      g_autoptr(GError) error = NULL;
      const char *str;
      guint64 t;

      g_assert_cmphex (frame->kind, ==, 0x01);
      g_assert_cmpstr (frame->sender, ==, ".broker");
      g_assert_cmpstr (frame->topic, ==, ".broker/info");
      value = elbus_msgpack_decode (frame->payload, &error);
      g_assert_no_error (error);
      g_assert_true (g_variant_lookup (value, "s", "&s", &str));
      g_assert_cmpstr (str, ==, expect[i]);
      g_assert_true (g_variant_lookup (value, "d", "&s", &str));
      g_assert_cmpstr (str, ==, "come.and.go");
      g_assert_true (g_variant_lookup (value, "t", "t", &t) || g_variant_lookup (value, "t", "x", &t));
      g_assert_cmpuint (t, >, G_GUINT64_CONSTANT (1600000000000000000));
    }

  /* the end: a shutdown warning, then the connection closes */
  elbus_test_broker_free (tb);
  {
    g_autoptr(ElbusTestFrame) frame = elbus_test_conn_read_frame (watcher);
    g_autoptr(GVariant) value = elbus_msgpack_decode (frame->payload, NULL);
    const char *str;

    g_assert_cmpstr (frame->topic, ==, ".broker/warn");
    g_assert_nonnull (value);
    g_assert_true (g_variant_lookup (value, "s", "&s", &str));
    g_assert_cmpstr (str, ==, "shutdown");
  }
  elbus_test_conn_expect_eof (watcher);
}

static void
listen_fifo_cb (ElbusBroker *broker,
                gpointer     user_data)
{
  g_autofree char *address = g_strconcat ("fifo:", (const char *) user_data, NULL);
  g_autoptr(GError) error = NULL;

  g_assert_true (elbus_broker_listen (broker, address, &error));
  g_assert_no_error (error);
}

static void
expect_fifo_frame (ElbusTestConn *conn,
                   guint8         kind,
                   const char    *topic,
                   const void    *payload,
                   gsize          payload_len)
{
  g_autoptr(ElbusTestFrame) frame = elbus_test_conn_read_frame (conn);

  g_assert_cmphex (frame->kind, ==, kind);
  g_assert_cmpstr (frame->sender, ==, ".broker");
  g_assert_cmpstr (frame->topic, ==, topic);
  g_assert_cmpmem (g_bytes_get_data (frame->payload, NULL), g_bytes_get_size (frame->payload),
                   payload, payload_len);
}

static void
test_fifo (void)
{
  ElbusTestBroker *tb = elbus_test_broker_new (NULL);
  g_autofree char *dir = g_dir_make_tmp ("elbus-fifo-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "control.fifo", NULL);
  g_autoptr(ElbusTestConn) conn = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "fifo.t");
  /* the lines that make no sense are logged and send nothing */
  static const char lines[] = "fifo.t hello text\n"
                              "fifo.t :\n"
                              " no target\n"
                              "fifo.t\n"
                              "= no topic\n"
                              "fifo.t :do key\n"
                              "fifo.t \xff\n"
                              "=a/b pubtext\n"
                              "fifo.* bc\n"
                              "fifo.t .note\n"
                              "fifo.t :do x=1 y=true z=s w=2.5\n";
  /* 01, call id 0, "do" 00, then {x: 1, y: true, z: "s", w: 2.5} */
  static const guint8 call0[] = {
    0x01, 0, 0, 0, 0, 'd', 'o', 0,
    0x84, 0xa1, 'x', 0x01, 0xa1, 'y', 0xc3, 0xa1, 'z', 0xa1, 's',
    0xa1, 'w', 0xcb, 0x40, 0x04, 0, 0, 0, 0, 0, 0
  };
  int fd;

  g_test_summary ("Each line written to a fifo: listener is sent by .broker: a message, a "
                  "publication, a broadcast, a notification and a typed call0; lines "
                  "that make no sense send nothing; a writer's last line needs no "
                  "newline; the pipe goes with the broker");

  elbus_test_conn_subscribe (conn, "a/#", NULL);
  elbus_test_broker_invoke (tb, listen_fifo_cb, path);
  g_assert_true (g_file_test (path, G_FILE_TEST_EXISTS));

  fd = open (path, O_WRONLY);
  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (write (fd, lines, strlen (lines)), ==, (gssize) strlen (lines));
  close (fd);

  expect_fifo_frame (conn, 0x12, NULL, "hello text", 10);
  expect_fifo_frame (conn, 0x01, "a/b", "pubtext", 7);
  expect_fifo_frame (conn, 0x13, NULL, "bc", 2);
  expect_fifo_frame (conn, 0x12, NULL, "\0note", 5);
  expect_fifo_frame (conn, 0x12, NULL, call0, sizeof call0);

  /* a writer that closes after a line without its newline (printf): the
   * line ends there, and is not glued to the next writer's (one that
   * comes before the broker has read the first one's end is one stream
   * with it: a pipe does not tell writers apart) */
  for (guint i = 0; i < 2; i++)
    {
      const char *line = i == 0 ? "fifo.t no newline" : "fifo.t next\n";

      fd = open (path, O_WRONLY);
      g_assert_cmpint (fd, >=, 0);
      g_assert_cmpint (write (fd, line, strlen (line)), ==, (gssize) strlen (line));
      close (fd);
      if (i == 0)
        expect_fifo_frame (conn, 0x12, NULL, "no newline", 10);
      else
        expect_fifo_frame (conn, 0x12, NULL, "next", 4);
    }

  g_clear_pointer (&conn, elbus_test_conn_free);
  elbus_test_broker_free (tb);
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
  g_rmdir (dir);
}

static void
skip_no_websocket (gconstpointer data)
{
  g_test_skip ("this build has no WebSocket support (-Dwebsocket=disabled)");
}

/* PATH/unix, PATH/tcp and PATH/ws: the same body with the clients under
 * test on each transport */
static void
add_all (const char    *path,
         GTestDataFunc  func)
{
  for (int t = ELBUS_TEST_TRANSPORT_UNIX; t <= ELBUS_TEST_TRANSPORT_WS; t++)
    {
      g_autofree char *full = g_strdup_printf ("%s/%s", path, elbus_test_transport_name (t));

      if (t == ELBUS_TEST_TRANSPORT_WS && !elbus_test_have_websocket ())
        g_test_add_data_func (full, NULL, skip_no_websocket);
      else
        g_test_add_data_func (full, GINT_TO_POINTER (t), func);
    }
}

typedef void (*FixtureFunc) (Fixture       *f,
                             gconstpointer  data);

static void
add_fixture (const char  *path,
             FixtureFunc  func)
{
  for (int t = ELBUS_TEST_TRANSPORT_UNIX; t <= ELBUS_TEST_TRANSPORT_WS; t++)
    {
      g_autofree char *full = g_strdup_printf ("%s/%s", path, elbus_test_transport_name (t));

      if (t == ELBUS_TEST_TRANSPORT_WS && !elbus_test_have_websocket ())
        g_test_add_data_func (full, NULL, skip_no_websocket);
      else
        g_test_add (full, Fixture, GINT_TO_POINTER (t), fixture_set_up, func, fixture_tear_down);
    }
}

int
main (int    argc,
      char **argv)
{
  elbus_test_init (&argc, &argv);

#define ADD(path, func) add_fixture (path, func)
  ADD ("/elbus/rpc/call/results", test_call_results);
  ADD ("/elbus/rpc/call/deferred", test_deferred);
  ADD ("/elbus/rpc/call/several-peers", test_several_peers);
  ADD ("/elbus/rpc/call/bus-errors", test_bus_errors);
  ADD ("/elbus/rpc/call/realtime", test_realtime);
  ADD ("/elbus/rpc/call0-notify", test_call0_and_notify);
  ADD ("/elbus/rpc/timeout-cancel-disconnect", test_timeout_cancel_disconnect);
  ADD ("/elbus/rpc/malformed", test_malformed);
  ADD ("/elbus/rpc/variant", test_variant_forms);
  ADD ("/elbus/rpc/decode-limits", test_decode_limits);
#undef ADD
  add_all ("/elbus/rpc/handler-calls-out", test_handler_calls_out);
  g_test_add_func ("/elbus/rpc/core/methods", test_core_methods);
  g_test_add_func ("/elbus/rpc/core/params", test_core_params);
  g_test_add_func ("/elbus/rpc/core/announcements", test_core_announcements);
  g_test_add_func ("/elbus/rpc/core/fifo", test_fifo);

  return g_test_run ();
}
