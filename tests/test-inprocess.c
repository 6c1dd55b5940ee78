/* SPDX-License-Identifier: MIT */
/*
 * In-process clients (elbus_broker_register_client()): same API, signals
 * and acks as socket clients, both ways between the two kinds.
 */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>

#include <elbus/elbus.h>

#include "elbus-test-util.h"

typedef struct {
  ElbusBroker *broker;
  char        *dir;
  char        *path;
} Fixture;

static void
fixture_set_up (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  f->dir = g_dir_make_tmp ("elbus-inprocess-XXXXXX", &error);
  g_assert_no_error (error);
  f->path = g_build_filename (f->dir, "bus.sock", NULL);
  f->broker = elbus_broker_new ();
  elbus_broker_listen_unix (f->broker, f->path, &error);
  g_assert_no_error (error);
}

static void
fixture_tear_down (Fixture       *f,
                   gconstpointer  data)
{
  g_clear_object (&f->broker);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_rmdir (f->dir);
  g_free (f->path);
  g_free (f->dir);
}

/* spins the context until *flag or a deadline */
static void
wait_for (gboolean *flag)
{
  gint64 deadline = g_get_monotonic_time () + elbus_test_scale_ms (5000) * 1000;

  while (!*flag)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, TRUE);
    }
}

typedef struct {
  GPtrArray *frames;        /* (element-type ElbusFrame) */
  GError    *disconnect_error;
  gboolean   disconnected;
} Recorder;

static void
record_cb (ElbusClient *client,
           ElbusFrame  *frame,
           gpointer     user_data)
{
  Recorder *r = user_data;

  g_ptr_array_add (r->frames, elbus_frame_ref (frame));
}

static void
disconnected_cb (ElbusClient *client,
                 GError      *error,
                 gpointer     user_data)
{
  Recorder *r = user_data;

  g_assert_false (r->disconnected);
  r->disconnected = TRUE;
  r->disconnect_error = error != NULL ? g_error_copy (error) : NULL;
}

static void
recorder_attach (Recorder    *r,
                 ElbusClient *client)
{
  r->frames = g_ptr_array_new_with_free_func ((GDestroyNotify) elbus_frame_unref);
  g_signal_connect (client, "message", G_CALLBACK (record_cb), r);
  g_signal_connect (client, "broadcast", G_CALLBACK (record_cb), r);
  g_signal_connect (client, "publication", G_CALLBACK (record_cb), r);
  g_signal_connect (client, "disconnected", G_CALLBACK (disconnected_cb), r);
}

static void
recorder_clear (Recorder *r)
{
  g_clear_pointer (&r->frames, g_ptr_array_unref);
  g_clear_error (&r->disconnect_error);
}

static ElbusFrame *
wait_frame (Recorder *r,
            guint     index)
{
  gint64 deadline = g_get_monotonic_time () + elbus_test_scale_ms (5000) * 1000;

  while (r->frames->len <= index)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, TRUE);
    }
  return g_ptr_array_index (r->frames, index);
}

static void
assert_frame (ElbusFrame     *frame,
              ElbusFrameKind  kind,
              const char     *sender,
              const char     *topic,
              const char     *payload)
{
  GBytes *bytes = elbus_frame_get_payload (frame);

  g_assert_cmpint (elbus_frame_get_kind (frame), ==, kind);
  g_assert_cmpstr (elbus_frame_get_sender (frame), ==, sender);
  g_assert_cmpstr (elbus_frame_get_topic (frame), ==, topic);
  g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes),
                   payload, strlen (payload));
}

typedef struct {
  gboolean     done;
  GError      *error;
  ElbusClient *client;
} Op;

static void
new_cb (GObject      *source,
        GAsyncResult *result,
        gpointer      user_data)
{
  Op *op = user_data;

  op->client = elbus_client_new_finish (result, &op->error);
  op->done = TRUE;
}

static void
send_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  Op *op = user_data;

  elbus_client_send_finish (ELBUS_CLIENT (source), result, &op->error);
  op->done = TRUE;
}

static void
publish_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  Op *op = user_data;

  elbus_client_publish_finish (ELBUS_CLIENT (source), result, &op->error);
  op->done = TRUE;
}

static ElbusClient *
connect_socket_client (Fixture    *f,
                       const char *name)
{
  Op op = { 0 };

  /* async: the broker runs on this very context */
  elbus_client_new_async (f->path, name, NULL, new_cb, &op);
  wait_for (&op.done);
  g_assert_no_error (op.error);
  return op.client;
}

static GBytes *
bytes (const char *s)
{
  return g_bytes_new (s, strlen (s));
}

static void
test_both_ways (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusClient) in = NULL;
  g_autoptr(ElbusClient) out = NULL;
  g_autoptr(GBytes) hello = bytes ("hello");
  g_autoptr(GBytes) reading = bytes ("21.5");
  g_autoptr(GBytes) back = bytes ("back");
  Recorder rin = { 0 }, rout = { 0 };
  const char *masks[] = { "sensors/#", NULL };
  Op op = { 0 };

  g_test_summary ("An in-process client and a socket client exchange messages, "
                  "publications and broadcasts both ways, with acks");

  in = elbus_broker_register_client (f->broker, "in.proc", &error);
  g_assert_no_error (error);
  g_assert_true (elbus_client_is_connected (in));
  g_assert_null (elbus_client_get_address (in));
  out = connect_socket_client (f, "out.sock");
  recorder_attach (&rin, in);
  recorder_attach (&rout, out);

  /* socket -> in-process: message, acknowledged */
  elbus_client_send_async (out, "in.proc", hello, ELBUS_QOS_PROCESSED, NULL, send_cb, &op);
  wait_for (&op.done);
  g_assert_no_error (op.error);
  assert_frame (wait_frame (&rin, 0), ELBUS_FRAME_KIND_MESSAGE, "out.sock", NULL, "hello");

  /* in-process subscribes; socket publishes, real-time */
  elbus_client_subscribe_sync (in, masks, ELBUS_QOS_PROCESSED, NULL, &error);
  g_assert_no_error (error);
  op = (Op) { 0 };
  elbus_client_publish_async (out, "sensors/room1/temp", reading, ELBUS_QOS_REALTIME_PROCESSED,
                              NULL, publish_cb, &op);
  wait_for (&op.done);
  g_assert_no_error (op.error);
  assert_frame (wait_frame (&rin, 1), ELBUS_FRAME_KIND_PUBLISH, "out.sock",
                "sensors/room1/temp", "21.5");
  g_assert_true (elbus_frame_is_realtime (g_ptr_array_index (rin.frames, 1)));

  /* in-process -> socket: message, and a broadcast that reaches both */
  op = (Op) { 0 };
  elbus_client_send_async (in, "out.sock", back, ELBUS_QOS_PROCESSED, NULL, send_cb, &op);
  wait_for (&op.done);
  g_assert_no_error (op.error);
  assert_frame (wait_frame (&rout, 0), ELBUS_FRAME_KIND_MESSAGE, "in.proc", NULL, "back");

  elbus_client_send_broadcast_sync (in, "*", back, ELBUS_QOS_PROCESSED, NULL, &error);
  g_assert_no_error (error);
  assert_frame (wait_frame (&rout, 1), ELBUS_FRAME_KIND_BROADCAST, "in.proc", NULL, "back");
  assert_frame (wait_frame (&rin, 2), ELBUS_FRAME_KIND_BROADCAST, "in.proc", NULL, "back");

  /* errors come back as with sockets */
  op = (Op) { 0 };
  elbus_client_send_async (in, "nobody", back, ELBUS_QOS_PROCESSED, NULL, send_cb, &op);
  wait_for (&op.done);
  g_assert_error (op.error, ELBUS_ERROR, ELBUS_ERROR_NOT_REGISTERED);
  g_clear_error (&op.error);

  g_assert_false (rin.disconnected);
  g_signal_handlers_disconnect_by_data (in, &rin);
  g_signal_handlers_disconnect_by_data (out, &rout);
  recorder_clear (&rin);
  recorder_clear (&rout);
}

static void
test_sync_no_loop (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusClient) in = NULL;
  g_autoptr(GBytes) one = bytes ("one");
  g_autoptr(GBytes) two = bytes ("two");
  Recorder r = { 0 };

  g_test_summary ("_sync calls of an in-process client complete without a running loop; "
                  "what arrives meanwhile is emitted later, in order");

  in = elbus_broker_register_client (f->broker, "in.sync", &error);
  g_assert_no_error (error);
  recorder_attach (&r, in);

  g_assert_true (elbus_client_send_sync (in, "in.sync", one, ELBUS_QOS_PROCESSED, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (elbus_client_send_sync (in, "in.sync", two, ELBUS_QOS_NO, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (r.frames->len, ==, 0);

  assert_frame (wait_frame (&r, 0), ELBUS_FRAME_KIND_MESSAGE, "in.sync", NULL, "one");
  assert_frame (wait_frame (&r, 1), ELBUS_FRAME_KIND_MESSAGE, "in.sync", NULL, "two");

  g_signal_handlers_disconnect_by_data (in, &r);
  recorder_clear (&r);
}

static void
test_names (Fixture       *f,
            gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusClient) a = NULL;
  g_autoptr(ElbusClient) dup = NULL;
  g_autoptr(ElbusClient) bad = NULL;
  g_autoptr(ElbusClient) own = NULL;
  g_autoptr(ElbusClient) sec = NULL;

  g_test_summary ("In-process names follow the registration rules; names under . are "
                  "allowed for the broker's own clients");

  a = elbus_broker_register_client (f->broker, "in.a", &error);
  g_assert_no_error (error);
  dup = elbus_broker_register_client (f->broker, "in.a", &error);
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_BUSY);
  g_assert_null (dup);
  g_clear_error (&error);
  bad = elbus_broker_register_client (f->broker, "", &error);
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA);
  g_clear_error (&error);
  own = elbus_broker_register_client (f->broker, ".broker.test", &error);
  g_assert_no_error (error);
  sec = elbus_broker_register_client (f->broker, "in.a%%1", &error);
  g_assert_no_error (error);
  g_assert_true (elbus_broker_has_client (f->broker, "in.a%%1"));

  /* closing the primary takes the secondary along */
  elbus_client_close (a);
  g_assert_false (elbus_broker_has_client (f->broker, "in.a"));
  g_assert_false (elbus_broker_has_client (f->broker, "in.a%%1"));
  g_assert_false (elbus_client_is_connected (sec));
}

static void
secondary_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Op *op = user_data;

  op->client = elbus_client_register_secondary_finish (ELBUS_CLIENT (source), result,
                                                       &op->error);
  op->done = TRUE;
}

static void
test_secondary (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusClient) in = NULL;
  g_autoptr(ElbusClient) in_sec = NULL;
  g_autoptr(ElbusClient) sock = NULL;
  g_autoptr(ElbusClient) sock_sec1 = NULL;
  g_autoptr(ElbusClient) sock_sec2 = NULL;
  g_autoptr(GBytes) x = bytes ("x");
  Recorder r = { 0 };
  Op op = { 0 };
  ElbusFrame *frame;

  g_test_summary ("register_secondary names NAME%%N from 1, for in-process and socket "
                  "clients; a secondary's frames carry the full sender and the primary");

  in = elbus_broker_register_client (f->broker, "svc.in", &error);
  g_assert_no_error (error);
  in_sec = elbus_client_register_secondary_sync (in, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (elbus_client_get_name (in_sec), ==, "svc.in%%1");

  sock = connect_socket_client (f, "svc.sock");
  recorder_attach (&r, sock);
  elbus_client_register_secondary_async (sock, NULL, secondary_cb, &op);
  wait_for (&op.done);
  g_assert_no_error (op.error);
  sock_sec1 = g_steal_pointer (&op.client);
  g_assert_cmpstr (elbus_client_get_name (sock_sec1), ==, "svc.sock%%1");

  /* a secondary of a secondary is the primary's next free one */
  op = (Op) { 0 };
  elbus_client_register_secondary_async (sock_sec1, NULL, secondary_cb, &op);
  wait_for (&op.done);
  g_assert_no_error (op.error);
  sock_sec2 = g_steal_pointer (&op.client);
  g_assert_cmpstr (elbus_client_get_name (sock_sec2), ==, "svc.sock%%2");

  elbus_client_send_sync (in_sec, "svc.sock", x, ELBUS_QOS_PROCESSED, NULL, &error);
  g_assert_no_error (error);
  frame = wait_frame (&r, 0);
  assert_frame (frame, ELBUS_FRAME_KIND_MESSAGE, "svc.in%%1", NULL, "x");
  g_assert_cmpstr (elbus_frame_get_primary_sender (frame), ==, "svc.in");

  /* the primary goes, and its secondaries with it */
  elbus_client_close (sock);
  while (elbus_client_is_connected (sock_sec1) || elbus_client_is_connected (sock_sec2))
    g_main_context_iteration (NULL, TRUE);
  g_assert_false (elbus_broker_has_client (f->broker, "svc.sock%%1"));

  g_signal_handlers_disconnect_by_data (sock, &r);
  recorder_clear (&r);
}

static void
test_dropped (Fixture       *f,
              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusClient) in = NULL;
  g_autoptr(ElbusClient) other = NULL;
  g_autoptr(GBytes) x = bytes ("x");
  Recorder r = { 0 }, r2 = { 0 };

  g_test_summary ("force_disconnect and the broker's end disconnect in-process clients "
                  "with a closed error; later operations fail at once");

  in = elbus_broker_register_client (f->broker, "in.drop", &error);
  g_assert_no_error (error);
  other = elbus_broker_register_client (f->broker, "in.other", &error);
  g_assert_no_error (error);
  recorder_attach (&r, in);
  recorder_attach (&r2, other);

  g_assert_true (elbus_broker_force_disconnect (f->broker, "in.drop"));
  g_assert_true (r.disconnected);
  g_assert_error (r.disconnect_error, ELBUS_ERROR, ELBUS_ERROR_CLOSED);
  g_assert_false (elbus_client_send_sync (in, "in.other", x, ELBUS_QOS_PROCESSED, NULL, &error));
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED);
  g_clear_error (&error);

  g_clear_object (&f->broker);
  g_assert_true (r2.disconnected);
  g_assert_false (elbus_client_is_connected (other));

  g_signal_handlers_disconnect_by_data (in, &r);
  g_signal_handlers_disconnect_by_data (other, &r2);
  recorder_clear (&r);
  recorder_clear (&r2);
}

static void
call_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  Op *op = user_data;
  g_autoptr(GBytes) reply = elbus_rpc_peer_call_finish (ELBUS_RPC_PEER (source), result,
                                                         &op->error);

  op->done = TRUE;
}

/* an in-process monitor of publications on big/#, @max_payload as a positive fixint
 * or G_MAXUINT for none */
static ElbusClient *
start_inprocess_monitor (Fixture    *f,
                         const char *name,
                         guint       max_payload,
                         Recorder   *r)
{
  /* kinds: publish, topic: big/# (not the announcements on .broker/info) */
  static const guint8 kinds[] = { 0xa5, 'k', 'i', 'n', 'd', 's', 0xa7, 'p', 'u', 'b', 'l', 'i', 's', 'h',
                                  0xa5, 't', 'o', 'p', 'i', 'c', 0xa5, 'b', 'i', 'g', '/', '#' };
  static const guint8 max_key[] = { 0xab, 'm', 'a', 'x', '_', 'p', 'a', 'y', 'l', 'o', 'a', 'd' };
  g_autoptr(GByteArray) params = g_byte_array_new ();
  g_autoptr(GBytes) params_bytes = NULL;
  g_autoptr(ElbusRpcPeer) peer = NULL;
  g_autoptr(GError) error = NULL;
  ElbusClient *client = elbus_broker_register_client (f->broker, name, &error);
  guint8 n = max_payload == G_MAXUINT ? 0x82 : 0x83;
  guint8 fix = max_payload;
  Op op = { 0 };

  g_assert_no_error (error);
  g_assert_cmpuint (max_payload == G_MAXUINT || max_payload < 0x80, ==, TRUE);
  g_byte_array_append (params, &n, 1);
  g_byte_array_append (params, kinds, sizeof kinds);
  if (max_payload != G_MAXUINT)
    {
      g_byte_array_append (params, max_key, sizeof max_key);
      g_byte_array_append (params, &fix, 1);
    }
  params_bytes = g_byte_array_free_to_bytes (g_steal_pointer (&params));

  recorder_attach (r, client);
  peer = elbus_rpc_peer_new (client);
  elbus_rpc_peer_call_async (peer, ".broker", "monitor.start", params_bytes,
                             ELBUS_QOS_PROCESSED, 5.0, NULL, call_cb, &op);
  wait_for (&op.done);
  g_assert_no_error (op.error);
  return client;
}

static void
test_monitor (Fixture       *f,
              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusClient) whole = NULL;
  g_autoptr(ElbusClient) cut = NULL;
  g_autoptr(ElbusClient) pub = NULL;
  g_autoptr(GBytes) payload = NULL;
  Recorder rw = { 0 }, rc = { 0 };
  gsize len = 200 * 1024 + 3;
  guint8 *data_ = g_malloc (len);

  g_test_summary ("In-process monitors receive events byte for byte: a payload larger "
                  "than a read chunk, whole and cut to the monitor's limit");

  for (gsize i = 0; i < len; i++)
    data_[i] = (i * 7 + i / 509) & 0xff;
  payload = g_bytes_new_take (data_, len);

  elbus_broker_enable_core_rpc (f->broker, &error);
  g_assert_no_error (error);
  pub = elbus_broker_register_client (f->broker, "in.pub", &error);
  g_assert_no_error (error);
  whole = start_inprocess_monitor (f, "in.mon.whole", G_MAXUINT, &rw);
  cut = start_inprocess_monitor (f, "in.mon.cut", 5, &rc);

  for (guint i = 0; i < 2; i++)
    {
      elbus_client_publish_sync (pub, "big/x", payload, ELBUS_QOS_PROCESSED, NULL, &error);
      g_assert_no_error (error);
    }
  for (guint i = 0; i < 2; i++)
    {
      ElbusFrame *w = wait_frame (&rw, i);
      ElbusFrame *c = wait_frame (&rc, i);

      g_assert_cmpint (elbus_frame_get_kind (w), ==, ELBUS_FRAME_KIND_PUBLISH);
      g_assert_cmpstr (elbus_frame_get_sender (w), ==, ".broker");
      g_assert_cmpstr (elbus_frame_get_topic (w), ==, ".broker/monitor");
      g_assert_cmpstr (elbus_frame_get_topic (c), ==, ".broker/monitor");
      /* nobody subscribed: 0 recipients */
      elbus_test_assert_monitor_event (elbus_frame_get_payload (w), "publish", "in.pub", "big/x",
                                       1, 0, 0x01, data_, len, len);
      elbus_test_assert_monitor_event (elbus_frame_get_payload (c), "publish", "in.pub", "big/x",
                                       1, 0, 0x01, data_, len, 5);
    }

  g_signal_handlers_disconnect_by_data (whole, &rw);
  g_signal_handlers_disconnect_by_data (cut, &rc);
  recorder_clear (&rw);
  recorder_clear (&rc);
}

static void
order_frame_cb (ElbusClient *client,
                ElbusFrame  *frame,
                gpointer     user_data)
{
  GString *log = user_data;
  GBytes *payload = elbus_frame_get_payload (frame);

  g_string_append_len (log, g_bytes_get_data (payload, NULL), g_bytes_get_size (payload));
  g_string_append_c (log, ' ');
}

static void
order_disconnected_cb (ElbusClient *client,
                       GError      *error,
                       gpointer     user_data)
{
  g_string_append (user_data, "disconnected");
}

static void
test_disconnect_after_frames (Fixture       *f,
                              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusClient) in = NULL;
  g_autoptr(GBytes) one = bytes ("one");
  g_autoptr(GBytes) two = bytes ("two");
  g_autoptr(GString) log = g_string_new (NULL);
  gint64 deadline = g_get_monotonic_time () + elbus_test_scale_ms (5000) * 1000;

  g_test_summary ("Frames that arrived during _sync calls are emitted before a "
                  "disconnection that came after them");

  in = elbus_broker_register_client (f->broker, "in.order", &error);
  g_assert_no_error (error);
  g_signal_connect (in, "message", G_CALLBACK (order_frame_cb), log);
  g_signal_connect (in, "disconnected", G_CALLBACK (order_disconnected_cb), log);

  elbus_client_send_sync (in, "in.order", one, ELBUS_QOS_PROCESSED, NULL, &error);
  g_assert_no_error (error);
  elbus_client_send_sync (in, "in.order", two, ELBUS_QOS_PROCESSED, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (elbus_broker_force_disconnect (f->broker, "in.order"));
  g_assert_cmpstr (log->str, ==, "");

  while (!g_str_has_suffix (log->str, "disconnected"))
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, TRUE);
    }
  g_assert_cmpstr (log->str, ==, "one two disconnected");
  g_signal_handlers_disconnect_by_data (in, log);
}

typedef struct {
  ElbusBroker *broker;
  ElbusClient *client;      /* registered on the broker's thread */
  GError      *register_error;
  GError      *worker_send_error;
  GError      *send_error;
  gboolean     registered;
  gint         done;
} WrongThread;

static gpointer
wrong_thread_func (gpointer user_data)
{
  WrongThread *wt = user_data;
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GBytes) payload = bytes ("hi");
  ElbusClient *client;

  g_main_context_push_thread_default (context);

  /* a client bound to another thread is refused (first: the
   * expectation must not meet the broker's logs of the next step) */
  g_test_expect_message ("Elbus", G_LOG_LEVEL_CRITICAL, "*in-process client wt.main*thread*");
  elbus_client_send_sync (wt->client, "wt.main", payload, ELBUS_QOS_PROCESSED, NULL,
                          &wt->send_error);

  /* bound to this thread's context: it works from here */
  client = elbus_broker_register_client (wt->broker, "wt.worker", &wt->register_error);
  wt->registered = client != NULL;
  if (client != NULL)
    elbus_client_send_sync (client, "wt.main", payload, ELBUS_QOS_PROCESSED, NULL,
                            &wt->worker_send_error);
  g_clear_object (&client);

  g_main_context_pop_thread_default (context);
  g_atomic_int_set (&wt->done, TRUE);
  g_main_context_wakeup (NULL);
  return NULL;
}

/* Another thread may register its own in-process client, but not use the
 * broker's thread's ones: refused loudly, the broker untouched. */
static void
test_wrong_thread (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(ElbusClient) peer = NULL;
  g_autoptr(GBytes) payload = bytes ("after");
  WrongThread wt = { 0 };
  Recorder r = { 0 };
  Recorder m = { 0 };
  GThread *thread;

  client = elbus_broker_register_client (f->broker, "wt.main", &error);
  g_assert_no_error (error);
  recorder_attach (&m, client);
  wt.broker = f->broker;
  wt.client = client;

  /* the broker's context runs meanwhile: the worker's registration and
   * frames are served there */
  thread = g_thread_new ("wrong-thread", wrong_thread_func, &wt);
  while (!g_atomic_int_get (&wt.done))
    g_main_context_iteration (NULL, TRUE);
  g_thread_join (thread);
  g_test_assert_expected_messages ();

  g_assert_no_error (wt.register_error);
  g_assert_true (wt.registered);
  g_assert_no_error (wt.worker_send_error);
  assert_frame (wait_frame (&m, 0), ELBUS_FRAME_KIND_MESSAGE, "wt.worker", NULL, "hi");
  g_assert_error (wt.send_error, ELBUS_ERROR, ELBUS_ERROR_OTHER);
  g_clear_error (&wt.send_error);
  g_signal_handlers_disconnect_by_data (client, &m);
  recorder_clear (&m);

  /* the client still works from the broker's thread */
  peer = elbus_broker_register_client (f->broker, "wt.peer", &error);
  g_assert_no_error (error);
  recorder_attach (&r, peer);
  elbus_client_send_sync (client, "wt.peer", payload, ELBUS_QOS_PROCESSED, NULL, &error);
  g_assert_no_error (error);
  assert_frame (wait_frame (&r, 0), ELBUS_FRAME_KIND_MESSAGE, "wt.main", NULL, "after");
  g_signal_handlers_disconnect_by_data (peer, &r);
  recorder_clear (&r);
}

static void
echo_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  GBytes **reply = user_data;
  g_autoptr(GError) error = NULL;

  *reply = elbus_rpc_peer_call_finish (ELBUS_RPC_PEER (source), result, &error);
  g_assert_no_error (error);
}

static void
test_large_by_reference (Fixture       *f,
                         gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusClient) a = NULL;
  g_autoptr(ElbusClient) b = NULL;
  g_autoptr(ElbusRpcPeer) peer = NULL;
  g_autoptr(GBytes) params = NULL;
  g_autoptr(GBytes) reply = NULL;
  Recorder rb = { 0 };
  gsize len = 1024 * 1024 + 5;
  guint8 *buf = g_malloc (len);
  ElbusFrame *frame;

  g_test_summary ("A large benchmark.test answer (sent as its head and the result, not "
                  "joined) and a large message between in-process clients (routed by "
                  "reference) arrive byte for byte");

  buf[0] = 0xc6;
  buf[1] = 0x00;
  buf[2] = 0x10;
  buf[3] = 0x00;
  buf[4] = 0x00;
  for (gsize i = 5; i < len; i++)
    buf[i] = (guint8) (i * 7 + (i >> 11));
  params = g_bytes_new_take (buf, len);

  elbus_broker_enable_core_rpc (f->broker, &error);
  g_assert_no_error (error);
  a = elbus_broker_register_client (f->broker, "big.a", &error);
  g_assert_no_error (error);
  b = elbus_broker_register_client (f->broker, "big.b", &error);
  g_assert_no_error (error);
  recorder_attach (&rb, b);

  peer = elbus_rpc_peer_new (a);
  elbus_rpc_peer_call_async (peer, ".broker", "benchmark.test", params,
                             ELBUS_QOS_PROCESSED, 5.0, NULL, echo_cb, &reply);
  while (reply == NULL)
    g_main_context_iteration (NULL, TRUE);
  g_assert_true (g_bytes_equal (reply, params));

  elbus_client_send_async (a, "big.b", params, ELBUS_QOS_PROCESSED, NULL, NULL, NULL);
  frame = wait_frame (&rb, 0);
  g_assert_cmpstr (elbus_frame_get_sender (frame), ==, "big.a");
  g_assert_true (g_bytes_equal (elbus_frame_get_payload (frame), params));

  recorder_clear (&rb);
}

/* One iteration by hand up to the poll: returns the poll's timeout. */
static int
prepare_and_query (void)
{
  GMainContext *context = g_main_context_default ();
  GPollFD fds[64];
  int timeout;
  int priority;
  int n;

  g_assert_true (g_main_context_acquire (context));
  g_main_context_prepare (context, &priority);
  n = g_main_context_query (context, priority, &timeout, fds, G_N_ELEMENTS (fds));
  g_assert_cmpint (n, <=, G_N_ELEMENTS (fds));
  for (int i = 0; i < n; i++)
    fds[i].revents = 0;
  if (g_main_context_check (context, priority, fds, n))
    g_main_context_dispatch (context);
  g_main_context_release (context);

  return timeout;
}

static void
test_no_sleep_after_delivery (Fixture       *f,
                              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusClient) a = NULL;
  g_autoptr(ElbusClient) b = NULL;
  g_autoptr(GBytes) hello = bytes ("hello");
  Recorder rb = { 0 };

  g_test_summary ("Frames the broker hands to a same-thread in-process client before the "
                  "loop sleeps ran its handlers: the loop does not sleep after them, so "
                  "whoever waits for them by iterating the context gets control back");

  a = elbus_broker_register_client (f->broker, "wake.a", &error);
  g_assert_no_error (error);
  b = elbus_broker_register_client (f->broker, "wake.b", &error);
  g_assert_no_error (error);
  recorder_attach (&rb, b);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  /* nothing to do: the loop would sleep */
  g_assert_cmpint (prepare_and_query (), !=, 0);

  /* sent outside any dispatch, handed over as the loop prepares */
  elbus_client_send_async (a, "wake.b", hello, ELBUS_QOS_NO, NULL, NULL, NULL);
  g_assert_cmpuint (rb.frames->len, ==, 0);
  g_assert_cmpint (prepare_and_query (), ==, 0);
  g_assert_cmpuint (rb.frames->len, ==, 1);
  assert_frame (g_ptr_array_index (rb.frames, 0), ELBUS_FRAME_KIND_MESSAGE, "wake.a", NULL,
                "hello");

  g_signal_handlers_disconnect_by_data (b, &rb);
  recorder_clear (&rb);
}

int
main (int    argc,
      char **argv)
{
  elbus_test_init (&argc, &argv);

  g_test_add ("/elbus/inprocess/both-ways", Fixture, NULL, fixture_set_up, test_both_ways,
              fixture_tear_down);
  g_test_add ("/elbus/inprocess/sync-no-loop", Fixture, NULL, fixture_set_up, test_sync_no_loop,
              fixture_tear_down);
  g_test_add ("/elbus/inprocess/names", Fixture, NULL, fixture_set_up, test_names,
              fixture_tear_down);
  g_test_add ("/elbus/inprocess/secondary", Fixture, NULL, fixture_set_up, test_secondary,
              fixture_tear_down);
  g_test_add ("/elbus/inprocess/dropped", Fixture, NULL, fixture_set_up, test_dropped,
              fixture_tear_down);
  g_test_add ("/elbus/inprocess/large-by-reference", Fixture, NULL, fixture_set_up,
              test_large_by_reference, fixture_tear_down);
  g_test_add ("/elbus/inprocess/monitor", Fixture, NULL, fixture_set_up, test_monitor,
              fixture_tear_down);
  g_test_add ("/elbus/inprocess/disconnect-after-frames", Fixture, NULL, fixture_set_up,
              test_disconnect_after_frames, fixture_tear_down);
  g_test_add ("/elbus/inprocess/no-sleep-after-delivery", Fixture, NULL, fixture_set_up,
              test_no_sleep_after_delivery, fixture_tear_down);
  g_test_add ("/elbus/inprocess/wrong-thread", Fixture, NULL, fixture_set_up, test_wrong_thread,
              fixture_tear_down);

  return g_test_run ();
}
