/* SPDX-License-Identifier: MIT */
/*
 * The broker's security policy (docs/protocol.md section 7), peer credentials
 * and limits, on the raw wire over UNIX and TCP.
 */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <elbus/elbus.h>

#include "elbus-test-util.h"

/* Log lines, recorded to check that a limit is logged once per client. */
static GMutex log_mutex;
static GPtrArray *log_lines;

static GLogWriterOutput
record_log_cb (GLogLevelFlags   level,
               const GLogField *fields,
               gsize            n_fields,
               gpointer         user_data)
{
  for (gsize i = 0; i < n_fields; i++)
    if (g_str_equal (fields[i].key, "MESSAGE"))
      {
        g_mutex_lock (&log_mutex);
        g_ptr_array_add (log_lines, g_strdup (fields[i].value));
        g_mutex_unlock (&log_mutex);
      }
  return g_log_writer_default (level, fields, n_fields, user_data);
}

static guint
count_log_lines (const char *needle)
{
  guint n = 0;

  g_mutex_lock (&log_mutex);
  for (guint i = 0; i < log_lines->len; i++)
    n += strstr (g_ptr_array_index (log_lines, i), needle) != NULL;
  g_mutex_unlock (&log_mutex);
  return n;
}

/* Policy fixtures, built on the broker thread */

typedef struct {
  GHashTable *table;      /* (nullable) */
  guint       max_clients;
  guint       max_subscriptions;
  guint       max_queue_bytes;
  double      handshake_timeout;
  gboolean    core;
} Setup;

static void
setup_cb (ElbusBroker *broker,
          gpointer     user_data)
{
  Setup *setup = user_data;
  g_autoptr(GError) error = NULL;

  if (setup->core)
    g_assert_true (elbus_broker_enable_core_rpc (broker, &error));
  if (setup->max_clients > 0)
    elbus_broker_set_max_clients (broker, setup->max_clients);
  if (setup->max_subscriptions > 0)
    elbus_broker_set_max_subscriptions (broker, setup->max_subscriptions);
  if (setup->max_queue_bytes > 0)
    elbus_broker_set_max_queue_bytes (broker, setup->max_queue_bytes);
  if (setup->handshake_timeout > 0)
    elbus_broker_set_handshake_timeout (broker, setup->handshake_timeout);
  if (setup->table != NULL)
    elbus_broker_set_policy (broker, setup->table);
}

static ElbusTestBroker *
broker_with (Setup *setup)
{
  ElbusTestBroker *tb = elbus_test_broker_new (NULL);

  elbus_test_broker_invoke (tb, setup_cb, setup);
  return tb;
}

static GHashTable *
table_new (void)
{
  return g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_object_unref);
}

static guint8
try_register (ElbusTestBroker    *tb,
              ElbusTestTransport  transport,
              const char         *name)
{
  g_autoptr(ElbusTestConn) conn = elbus_test_conn_connect (tb, transport);

  return elbus_test_conn_handshake (conn, name);
}

static void
test_unknown_names (void)
{
  g_autoptr(GHashTable) table = table_new ();
  Setup setup = { .table = table };
  ElbusTestBroker *tb;
  g_autoptr(ElbusTestConn) a = NULL;
  g_autoptr(ElbusTestConn) a2 = NULL;

  g_test_summary ("with a policy, names without an entry are refused with 0x79 over UNIX "
                  "and TCP; secondaries of a listed primary are admitted");

  g_hash_table_insert (table, "app.a", elbus_client_policy_new ());
  tb = broker_with (&setup);

  for (ElbusTestTransport t = ELBUS_TEST_TRANSPORT_UNIX; t <= ELBUS_TEST_TRANSPORT_TCP; t++)
    {
      g_assert_cmphex (try_register (tb, t, "app.b"), ==, ELBUS_ERROR_ACCESS);
      g_assert_cmphex (try_register (tb, t, "app"), ==, ELBUS_ERROR_ACCESS);
    }
  g_assert_false (elbus_test_broker_has_client (tb, "app.b"));

  a = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_TCP, "app.a");
  a2 = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "app.a%%2");
  elbus_test_conn_op_acked (a2, 0x12, "app.a", "hello", 0x01);
  elbus_test_conn_expect_message (a, KIND_MESSAGE, "app.a%%2", NULL, "hello");

  elbus_test_broker_free (tb);
}

/* One restricted entry, used from a primary and a secondary, over both
 * transports. */
static void
check_restricted (ElbusTestConn *c,
                  ElbusTestConn *svc,
                  ElbusTestConn *watcher)
{
  guint32 op_id;

  /* messages: svc.* only */
  elbus_test_conn_op_acked (c, 0x12, "svc.x", "m1", 0x01);
  elbus_test_conn_expect_message (svc, KIND_MESSAGE, c->name, NULL, "m1");
  elbus_test_conn_op_acked (c, 0x12, "watcher", "m2", ELBUS_ERROR_ACCESS);
  elbus_test_conn_op_acked (c, 0x12, "svc", "m3", ELBUS_ERROR_ACCESS);

  /* broadcasts: denied outright, even to an allowed name */
  elbus_test_conn_op_acked (c, 0x13, "svc.*", "b1", ELBUS_ERROR_ACCESS);
  elbus_test_conn_op_acked (c, 0x13, "svc.x", "b2", ELBUS_ERROR_ACCESS);

  /* publications: data/# only */
  elbus_test_conn_op_acked (c, 0x01, "data/t", "p1", 0x01);
  elbus_test_conn_expect_message (watcher, KIND_PUBLISH, c->name, "data/t", "p1");
  elbus_test_conn_op_acked (c, 0x01, "ctl/t", "p2", ELBUS_ERROR_ACCESS);

  /* subscriptions: ctl/# only; a mixed request subscribes the allowed
   * mask and is acked 0x79 once */
  op_id = elbus_test_conn_send_op (c, 0x02, ELBUS_QOS_PROCESSED, "ctl/+", NULL, 0);
  elbus_test_conn_expect_ack (c, op_id, 0x01);
  {
    static const char body[] = "ctl/a\0data/#\0ctl/b";

    elbus_test_conn_send_frame (c, c->next_op_id, 0x02, ELBUS_QOS_PROCESSED, body,
                                sizeof body - 1);
    elbus_test_conn_expect_ack (c, c->next_op_id++, ELBUS_ERROR_ACCESS);
  }
  op_id = elbus_test_conn_send_op (watcher, 0x01, ELBUS_QOS_PROCESSED, "data/x", "not-for-c", 9);
  elbus_test_conn_expect_message (watcher, KIND_PUBLISH, "watcher", "data/x", "not-for-c");
  elbus_test_conn_expect_ack (watcher, op_id, 0x01);
  elbus_test_conn_op_acked (watcher, 0x01, "ctl/a", "for-c", 0x01);
  elbus_test_conn_expect_message (c, KIND_PUBLISH, "watcher", "ctl/a", "for-c");
  elbus_test_conn_expect_nothing (c, ELBUS_TEST_QUIET_MS);
  elbus_test_conn_expect_nothing (svc, ELBUS_TEST_QUIET_MS);
  elbus_test_conn_expect_nothing (watcher, ELBUS_TEST_QUIET_MS);
}

/* An ElbusClient's refused operations name the operation and where it
 * went. */
static void
check_refusal_messages (ElbusTestBroker *tb)
{
  const char *masks[] = { "ctl/a", "data/#", NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) payload = g_bytes_new_static ("x", 1);
  g_autoptr(ElbusClient) client = elbus_client_new_sync (elbus_test_broker_get_unix_path (tb),
                                                         "app.c", NULL, &error);

  g_assert_no_error (error);

  g_assert_false (elbus_client_publish_sync (client, "ctl/t", payload, ELBUS_QOS_PROCESSED,
                                             NULL, &error));
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_ACCESS);
  g_assert_cmpstr (error->message, ==, "the broker's policy refuses publishing on “ctl/t”");
  g_clear_error (&error);

  g_assert_false (elbus_client_send_sync (client, "watcher", payload, ELBUS_QOS_PROCESSED,
                                          NULL, &error));
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_ACCESS);
  g_assert_cmpstr (error->message, ==, "the broker's policy refuses a message to “watcher”");
  g_clear_error (&error);

  g_assert_false (elbus_client_send_broadcast_sync (client, "svc.*", payload,
                                                    ELBUS_QOS_PROCESSED, NULL, &error));
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_ACCESS);
  g_assert_cmpstr (error->message, ==, "the broker's policy refuses a broadcast to “svc.*”");
  g_clear_error (&error);

  g_assert_false (elbus_client_subscribe_sync (client, masks, ELBUS_QOS_PROCESSED, NULL,
                                               &error));
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_ACCESS);
  g_assert_nonnull (strstr (error->message, "masks of this subscription"));
  g_clear_error (&error);

  elbus_client_close (client);
}

static void
test_restricted_ops (void)
{
  g_autoptr(GHashTable) table = table_new ();
  ElbusClientPolicy *entry = elbus_client_policy_new ();
  Setup setup = { .table = table };
  ElbusTestBroker *tb;

  g_test_summary ("each restriction allows what it should and refuses the rest with 0x79, "
                  "for primaries and their secondaries, over UNIX and TCP; an ElbusClient's "
                  "error names the refused operation and its target");

  elbus_client_policy_allow (entry, ELBUS_POLICY_OP_MESSAGE, "svc.*");
  elbus_client_policy_deny (entry, ELBUS_POLICY_OP_BROADCAST);
  elbus_client_policy_allow (entry, ELBUS_POLICY_OP_PUBLISH, "data/#");
  elbus_client_policy_allow (entry, ELBUS_POLICY_OP_SUBSCRIBE, "ctl/#");
  g_hash_table_insert (table, "app.c", entry);
  g_hash_table_insert (table, "svc.x", elbus_client_policy_new ());
  g_hash_table_insert (table, "watcher", elbus_client_policy_new ());
  tb = broker_with (&setup);

  /* the broker copied the entry: changing it now changes nothing */
  elbus_client_policy_allow (entry, ELBUS_POLICY_OP_BROADCAST, "*");

  for (ElbusTestTransport t = ELBUS_TEST_TRANSPORT_UNIX; t <= ELBUS_TEST_TRANSPORT_TCP; t++)
    {
      g_autoptr(ElbusTestConn) svc = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "svc.x");
      g_autoptr(ElbusTestConn) watcher = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX,
                                                              "watcher");
      g_autoptr(ElbusTestConn) c = elbus_test_conn_new (tb, t, "app.c");
      g_autoptr(ElbusTestConn) c2 = elbus_test_conn_new (tb, t, "app.c%%2");

      g_test_message ("over %s", elbus_test_transport_name (t));
      elbus_test_conn_subscribe (watcher, "data/#", NULL);
      check_restricted (c, svc, watcher);
      check_restricted (c2, svc, watcher);

      elbus_test_conn_close (c2);
      elbus_test_conn_close (c);
      elbus_test_broker_wait_client (tb, "app.c", FALSE);
      elbus_test_conn_close (watcher);
      elbus_test_conn_close (svc);
      elbus_test_broker_wait_client (tb, "svc.x", FALSE);
      elbus_test_broker_wait_client (tb, "watcher", FALSE);
    }

  check_refusal_messages (tb);
  elbus_test_broker_free (tb);
}

typedef struct {
  guint16 port;
} V6Listener;

static void
listen_v6_cb (ElbusBroker *broker,
              gpointer     user_data)
{
  V6Listener *v6 = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) socket = g_socket_new (G_SOCKET_FAMILY_IPV6, G_SOCKET_TYPE_STREAM,
                                            G_SOCKET_PROTOCOL_TCP, &error);
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV6);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autofree char *bind_string = NULL;

  g_assert_no_error (error);
  g_assert_true (g_socket_bind (socket, address, TRUE, &error));
  g_assert_no_error (error);
  bound = g_socket_get_local_address (socket, &error);
  g_assert_no_error (error);
  v6->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  bind_string = g_strdup_printf ("[::1]:%u", v6->port);
  g_assert_true (elbus_broker_add_socket (broker, socket, bind_string, &error));
  g_assert_no_error (error);
}

static guint8
try_register_address (const char *address,
                      const char *name)
{
  g_autoptr(ElbusTestConn) conn = elbus_test_conn_connect_address (address);

  return elbus_test_conn_handshake (conn, name);
}

static void
test_networks (void)
{
  g_autoptr(GHashTable) table = table_new ();
  ElbusClientPolicy *v4 = elbus_client_policy_new ();
  ElbusClientPolicy *v6 = elbus_client_policy_new ();
  ElbusClientPolicy *both = elbus_client_policy_new ();
  ElbusClientPolicy *elsewhere = elbus_client_policy_new ();
  Setup setup = { .table = table };
  V6Listener listener = { 0 };
  g_autofree char *v4_address = NULL;
  g_autofree char *v6_address = NULL;
  ElbusTestBroker *tb;

  g_test_summary ("TCP source networks: IPv4 and IPv6 loopback each admitted by their own "
                  "networks only; UNIX clients are not subject to them");

  g_assert_true (elbus_client_policy_add_network (v4, "127.0.0.0/8", NULL));
  g_assert_true (elbus_client_policy_add_network (v6, "::1/128", NULL));
  g_assert_true (elbus_client_policy_add_network (both, "127.0.0.1", NULL));
  g_assert_true (elbus_client_policy_add_network (both, "::1", NULL));
  g_assert_true (elbus_client_policy_add_network (elsewhere, "10.0.0.0/8", NULL));
  g_hash_table_insert (table, "v4", v4);
  g_hash_table_insert (table, "v6", v6);
  g_hash_table_insert (table, "both", both);
  g_hash_table_insert (table, "elsewhere", elsewhere);
  tb = broker_with (&setup);
  elbus_test_broker_invoke (tb, listen_v6_cb, &listener);

  v4_address = g_strdup_printf ("127.0.0.1:%u", elbus_test_broker_get_tcp_port (tb));
  v6_address = g_strdup_printf ("::1:%u", listener.port);

  g_assert_cmphex (try_register_address (v4_address, "v4"), ==, 0x01);
  g_assert_cmphex (try_register_address (v4_address, "v6"), ==, ELBUS_ERROR_ACCESS);
  g_assert_cmphex (try_register_address (v4_address, "both"), ==, 0x01);
  g_assert_cmphex (try_register_address (v4_address, "elsewhere"), ==, ELBUS_ERROR_ACCESS);
  g_assert_cmphex (try_register_address (v6_address, "v6"), ==, 0x01);
  g_assert_cmphex (try_register_address (v6_address, "v4"), ==, ELBUS_ERROR_ACCESS);
  g_assert_cmphex (try_register_address (v6_address, "both"), ==, 0x01);
  g_assert_cmphex (try_register_address (v6_address, "elsewhere"), ==, ELBUS_ERROR_ACCESS);
  g_assert_cmphex (try_register (tb, ELBUS_TEST_TRANSPORT_UNIX, "elsewhere"), ==, 0x01);
  g_assert_cmpuint (count_log_lines ("is not allowed by the policy"), >=, 4);

  elbus_test_broker_free (tb);
}

static void
test_credentials (void)
{
  g_autoptr(GHashTable) table = table_new ();
  ElbusClientPolicy *mine = elbus_client_policy_new ();
  ElbusClientPolicy *other = elbus_client_policy_new ();
  ElbusClientPolicy *group = elbus_client_policy_new ();
  Setup setup = { .table = table, .core = TRUE };
  g_autoptr(ElbusTestConn) probe = NULL;
  g_autoptr(ElbusTestConn) tcp = NULL;
  g_autoptr(GBytes) answer = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) clients = NULL;
  ElbusTestBroker *tb;
  guint checked = 0;

  g_test_summary ("UID and GID rules with the test's own ids over UNIX; TCP clients have "
                  "no credentials; client.list shows uid and pid for UNIX clients");

  elbus_client_policy_add_uid (mine, getuid ());
  elbus_client_policy_add_uid (other, getuid () + 1);
  elbus_client_policy_add_gid (other, getgid () + 1);
  elbus_client_policy_add_gid (group, getgid ());
  g_hash_table_insert (table, "mine", mine);
  g_hash_table_insert (table, "other", other);
  g_hash_table_insert (table, "group", group);
  g_hash_table_insert (table, "probe", elbus_client_policy_new ());
  tb = broker_with (&setup);

  g_assert_cmphex (try_register (tb, ELBUS_TEST_TRANSPORT_UNIX, "other"), ==, ELBUS_ERROR_ACCESS);
  g_assert_cmphex (try_register (tb, ELBUS_TEST_TRANSPORT_TCP, "mine"), ==, ELBUS_ERROR_ACCESS);
  g_assert_cmphex (try_register (tb, ELBUS_TEST_TRANSPORT_UNIX, "group"), ==, 0x01);
  probe = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "mine");
  tcp = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_TCP, "probe");

  answer = elbus_test_conn_core_call (probe, 1, "client.list", NULL, 0);
  elbus_test_assert_rpc_reply (answer, 1, NULL, 0);
  reply = elbus_test_decode_rpc_reply (answer);
  clients = g_variant_lookup_value (reply, "clients", NULL);
  g_assert_nonnull (clients);
  for (gsize i = 0; i < g_variant_n_children (clients); i++)
    {
      g_autoptr(GVariant) boxed = g_variant_get_child_value (clients, i);
      g_autoptr(GVariant) entry = g_variant_get_variant (boxed);
      g_autoptr(GVariant) uid = g_variant_lookup_value (entry, "uid", NULL);
      g_autoptr(GVariant) pid = g_variant_lookup_value (entry, "pid", NULL);
      const char *name;

      g_assert_true (g_variant_lookup (entry, "name", "&s", &name));
      g_assert_nonnull (uid);
      g_assert_nonnull (pid);
      if (g_str_equal (name, "mine"))
        {
          g_assert_true (g_variant_is_of_type (uid, G_VARIANT_TYPE_UINT64) ||
                         g_variant_is_of_type (uid, G_VARIANT_TYPE_INT64));
          g_assert_cmpint (g_variant_is_of_type (uid, G_VARIANT_TYPE_UINT64)
                           ? (gint64) g_variant_get_uint64 (uid) : g_variant_get_int64 (uid),
                           ==, getuid ());
          g_assert_cmpint (g_variant_is_of_type (pid, G_VARIANT_TYPE_UINT64)
                           ? (gint64) g_variant_get_uint64 (pid) : g_variant_get_int64 (pid),
                           ==, getpid ());
          checked++;
        }
      else if (g_str_equal (name, "probe") || g_str_equal (name, ".broker"))
        {
          g_assert_true (g_variant_is_of_type (uid, G_VARIANT_TYPE_MAYBE));
          g_assert_true (g_variant_is_of_type (pid, G_VARIANT_TYPE_MAYBE));
          checked++;
        }
    }
  g_assert_cmpuint (checked, ==, 3);

  elbus_test_broker_free (tb);
}

static void
test_monitor_permission (void)
{
  g_autoptr(GHashTable) table = table_new ();
  ElbusClientPolicy *watcher = elbus_client_policy_new ();
  Setup setup = { .table = table, .core = TRUE };
  g_autoptr(ElbusTestConn) allowed = NULL;
  g_autoptr(ElbusTestConn) refused = NULL;
  g_autoptr(GBytes) answer = NULL;
  ElbusTestBroker *tb;

  g_test_summary ("under a policy only entries allowed to monitor may call monitor.start");

  elbus_client_policy_set_monitor (watcher, TRUE);
  g_hash_table_insert (table, "watcher", watcher);
  g_hash_table_insert (table, "plain", elbus_client_policy_new ());
  tb = broker_with (&setup);

  refused = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "plain");
  answer = elbus_test_conn_core_call (refused, 1, "monitor.start", NULL, 0);
  elbus_test_assert_rpc_error (answer, -32000 - ELBUS_ERROR_ACCESS);
  g_clear_pointer (&answer, g_bytes_unref);

  allowed = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "watcher");
  answer = elbus_test_conn_core_call (allowed, 1, "monitor.start", NULL, 0);
  elbus_test_assert_rpc_reply (answer, 1, NULL, 0);

  /* the refused one sees nothing; the monitor sees its message */
  elbus_test_conn_send_op (refused, 0x12, ELBUS_QOS_NO, "plain", "x", 1);
  elbus_test_conn_expect_message (refused, KIND_MESSAGE, "plain", NULL, "x");
  {
    g_autoptr(ElbusTestFrame) frame = elbus_test_conn_read_frame (allowed);

    g_assert_cmpstr (frame->topic, ==, ".broker/monitor");
  }

  elbus_test_broker_free (tb);
}

typedef struct {
  GHashTable *table;
  const char *name;
  gboolean    result;
} PolicyChange;

static void
change_policy_cb (ElbusBroker *broker,
                  gpointer     user_data)
{
  PolicyChange *change = user_data;

  if (change->name != NULL)
    change->result = elbus_broker_force_disconnect (broker, change->name);
  else
    elbus_broker_set_policy (broker, change->table);
}

static void
test_policy_changes (void)
{
  g_autoptr(GHashTable) first = table_new ();
  g_autoptr(GHashTable) second = table_new ();
  Setup setup = { .table = first };
  g_autoptr(ElbusTestConn) a = NULL;
  g_autoptr(ElbusTestConn) b = NULL;
  PolicyChange change = { 0 };
  ElbusTestBroker *tb;

  g_test_summary ("a new table applies to new connections; force_disconnect applies it to "
                  "a connected client; lifting the policy admits anyone");

  g_hash_table_insert (first, "app.a", elbus_client_policy_new ());
  g_hash_table_insert (first, "app.b", elbus_client_policy_new ());
  g_hash_table_insert (second, "app.b", elbus_client_policy_new ());
  tb = broker_with (&setup);

  a = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "app.a");
  b = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "app.b");

  change.table = second;
  elbus_test_broker_invoke (tb, change_policy_cb, &change);

  /* app.a keeps working under the entry it registered with */
  elbus_test_conn_op_acked (a, 0x12, "app.b", "still", 0x01);
  elbus_test_conn_expect_message (b, KIND_MESSAGE, "app.a", NULL, "still");
  g_assert_cmphex (try_register (tb, ELBUS_TEST_TRANSPORT_UNIX, "app.a%%2"), ==, 0x01);

  change.name = "app.a";
  elbus_test_broker_invoke (tb, change_policy_cb, &change);
  g_assert_true (change.result);
  elbus_test_conn_expect_eof (a);
  g_assert_cmphex (try_register (tb, ELBUS_TEST_TRANSPORT_UNIX, "app.a"), ==, ELBUS_ERROR_ACCESS);

  change.name = NULL;
  change.table = NULL;
  elbus_test_broker_invoke (tb, change_policy_cb, &change);
  g_assert_cmphex (try_register (tb, ELBUS_TEST_TRANSPORT_UNIX, "app.a"), ==, 0x01);
  g_assert_cmphex (try_register (tb, ELBUS_TEST_TRANSPORT_TCP, "anyone"), ==, 0x01);

  elbus_test_broker_free (tb);
}

/* limits */

static void
test_max_clients (void)
{
  Setup setup = { .max_clients = 3 };
  ElbusTestBroker *tb = broker_with (&setup);
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "a");
  g_autoptr(ElbusTestConn) b = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_TCP, "b");
  g_autoptr(ElbusTestConn) c = elbus_test_conn_connect (tb, ELBUS_TEST_TRANSPORT_UNIX);
  guint before = count_log_lines ("client limit of 3 reached");

  g_test_summary ("beyond max-clients a connection is closed at once, logged once while the "
                  "limit holds; the clients already there keep working");

  /* c is in its handshake, and counts */
  for (guint i = 0; i < 3; i++)
    {
      g_autoptr(ElbusTestConn) over = elbus_test_conn_connect (tb, i % 2 ? ELBUS_TEST_TRANSPORT_TCP
                                                                          : ELBUS_TEST_TRANSPORT_UNIX);

      elbus_test_conn_expect_eof (over);
    }
  g_assert_cmpuint (count_log_lines ("client limit of 3 reached"), ==, before + 1);

  elbus_test_conn_op_acked (a, 0x12, "b", "fine", 0x01);
  elbus_test_conn_expect_message (b, KIND_MESSAGE, "a", NULL, "fine");

  /* below the limit again: admitted */
  elbus_test_conn_close (c);
  elbus_test_conn_close (a);
  elbus_test_broker_wait_client (tb, "a", FALSE);
  g_clear_pointer (&c, elbus_test_conn_free);
  c = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "c");

  elbus_test_broker_free (tb);
}

static void
test_max_subscriptions (void)
{
  Setup setup = { .max_subscriptions = 3 };
  ElbusTestBroker *tb = broker_with (&setup);
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_TCP, "subs.a");
  g_autoptr(ElbusTestConn) b = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "subs.b");
  static const char four[] = "t/1\0t/2\0t/3\0t/4";
  guint32 op_id;

  g_test_summary ("beyond max-subscriptions a subscription is not made and acked 0x79, "
                  "logged once per client with its name and source; unsubscribing frees room");

  elbus_test_conn_send_frame (a, a->next_op_id, 0x02, ELBUS_QOS_PROCESSED, four, sizeof four - 1);
  elbus_test_conn_expect_ack (a, a->next_op_id++, ELBUS_ERROR_ACCESS);
  op_id = elbus_test_conn_send_op (a, 0x02, ELBUS_QOS_PROCESSED, "t/5", NULL, 0);
  elbus_test_conn_expect_ack (a, op_id, ELBUS_ERROR_ACCESS);
  /* the same mask again is no new subscription */
  op_id = elbus_test_conn_send_op (a, 0x02, ELBUS_QOS_PROCESSED, "t/1", NULL, 0);
  elbus_test_conn_expect_ack (a, op_id, 0x01);
  g_assert_cmpuint (count_log_lines ("client subs.a (tcp 127.0.0.1:"), ==, 1);
  g_assert_cmpuint (count_log_lines ("subscription limit of 3 reached"), ==, 1);

  elbus_test_conn_op_acked (b, 0x01, "t/3", "three", 0x01);
  elbus_test_conn_expect_message (a, KIND_PUBLISH, "subs.b", "t/3", "three");
  elbus_test_conn_op_acked (b, 0x01, "t/4", "four", 0x01);
  elbus_test_conn_expect_nothing (a, ELBUS_TEST_QUIET_MS);

  elbus_test_conn_unsubscribe (a, "t/1", NULL);
  elbus_test_conn_subscribe (a, "t/4", NULL);
  elbus_test_conn_op_acked (b, 0x01, "t/4", "four", 0x01);
  elbus_test_conn_expect_message (a, KIND_PUBLISH, "subs.b", "t/4", "four");

  elbus_test_broker_free (tb);
}

static void
test_max_queue_bytes (void)
{
  Setup setup = { .max_queue_bytes = 256 * 1024 };
  ElbusTestBroker *tb = broker_with (&setup);
  g_autoptr(ElbusTestConn) sender = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "big.sender");
  g_autoptr(ElbusTestConn) stuck = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "big.stuck");
  g_autoptr(ElbusTestConn) fine = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "big.fine");
  g_autofree char *big = g_strnfill (64 * 1024, 'b');
  guint sent = 0;
  guint8 result = 0x01;

  g_test_summary ("a client that stops reading is dropped once max-queue-bytes wait for it, "
                  "long before queue-size frames; others are not disturbed");

  elbus_test_conn_set_rcvbuf (stuck, 4096);
  while (result == 0x01)
    {
      guint32 op_id = elbus_test_conn_send_op (sender, 0x12, ELBUS_QOS_PROCESSED, "big.stuck",
                                               big, strlen (big));
      g_autoptr(ElbusTestFrame) ack = elbus_test_conn_read_frame (sender);

      g_assert_cmphex (ack->kind, ==, 0xfe);
      g_assert_cmpuint (ack->op_id, ==, op_id);
      result = ack->result;
      sent++;
      g_assert_cmpuint (sent, <, 200);   /* 12.5 MiB: far below 8192 frames */
    }
  g_assert_cmphex (result, ==, ELBUS_ERROR_NOT_DELIVERED);
  g_assert_cmpuint (count_log_lines ("client big.stuck: queue overflow"), ==, 1);
  elbus_test_broker_wait_client (tb, "big.stuck", FALSE);

  elbus_test_conn_op_acked (sender, 0x12, "big.fine", big, 0x01);
  elbus_test_conn_expect_message (fine, KIND_MESSAGE, "big.sender", NULL, big);

  elbus_test_broker_free (tb);
}

static void
test_mask_length (void)
{
  Setup setup = { 0 };
  ElbusTestBroker *tb = broker_with (&setup);
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "masks.a");
  g_autoptr(ElbusTestConn) b = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "masks.b");
  g_autoptr(GString) deep = g_string_new ("d");
  guint32 op_id;

  g_test_summary ("a subscription mask longer than ELBUS_MAX_NAME_LENGTH is not made and "
                  "acked 0x72, logged once; a mask of the maximum length is fine");

  while (deep->len < ELBUS_MAX_NAME_LENGTH + 1)
    g_string_append (deep, "/d");
  op_id = elbus_test_conn_send_op (a, 0x02, ELBUS_QOS_PROCESSED, deep->str, NULL, 0);
  elbus_test_conn_expect_ack (a, op_id, ELBUS_ERROR_DATA);
  op_id = elbus_test_conn_send_op (a, 0x02, ELBUS_QOS_PROCESSED, deep->str, NULL, 0);
  elbus_test_conn_expect_ack (a, op_id, ELBUS_ERROR_DATA);
  g_assert_cmpuint (count_log_lines ("client masks.a (local_ipc): mask length limit"), ==, 1);

  g_string_truncate (deep, ELBUS_MAX_NAME_LENGTH - 1);
  elbus_test_conn_subscribe (a, deep->str, NULL);
  elbus_test_conn_op_acked (b, 0x01, deep->str, "deep", 0x01);
  elbus_test_conn_expect_message (a, KIND_PUBLISH, "masks.b", deep->str, "deep");

  elbus_test_broker_free (tb);
}

static void
test_handshake_timeout (void)
{
  Setup setup = { .handshake_timeout = 0.2 };
  ElbusTestBroker *tb = broker_with (&setup);
  g_autoptr(ElbusTestConn) idle = elbus_test_conn_connect (tb, ELBUS_TEST_TRANSPORT_TCP);
  g_autoptr(ElbusTestConn) named = NULL;
  gint64 start = g_get_monotonic_time ();

  g_test_summary ("a connection that does not finish its handshake within handshake-timeout "
                  "is dropped and logged with its source");

  elbus_test_conn_expect_greeting (idle);
  elbus_test_conn_drain_until_eof (idle, ELBUS_TEST_DEADLINE_MS);
  g_assert_cmpint (g_get_monotonic_time () - start, >=, 150000);
  g_assert_cmpuint (count_log_lines ("handshake timed out"), >=, 1);

  /* a prompt client is unaffected */
  named = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "prompt");
  g_usleep (300000);
  elbus_test_conn_op_acked (named, 0x12, "nobody", "ok", ELBUS_ERROR_NOT_REGISTERED);

  elbus_test_broker_free (tb);
}

static void
test_log_flood (void)
{
  Setup setup = { 0 };
  ElbusTestBroker *tb = broker_with (&setup);
  guint before = count_log_lines ("unsupported greeting");
  gint64 deadline;

  g_test_summary ("connections failing before registration are logged at most 20 a second, "
                  "the rest summed up in one line");

  for (guint i = 0; i < 100; i++)
    {
      g_autoptr(ElbusTestConn) bad = elbus_test_conn_connect (tb, ELBUS_TEST_TRANSPORT_UNIX);

      elbus_test_conn_expect_greeting (bad);
      elbus_test_conn_send_greeting (bad, 0xeb, 77);
      elbus_test_conn_drain_until_eof (bad, ELBUS_TEST_DEADLINE_MS);
    }

  deadline = g_get_monotonic_time () + (gint64) ELBUS_TEST_DEADLINE_MS * 1000;
  while (count_log_lines ("more connections failed before registering") == 0)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (50 * 1000);
    }
  g_assert_cmpuint (count_log_lines ("unsupported greeting") - before, <=, 2 * 20);
  g_assert_cmpuint (count_log_lines ("unsupported greeting") - before, >=, 1);

  elbus_test_broker_free (tb);
}

int
main (int    argc,
      char **argv)
{
  log_lines = g_ptr_array_new_with_free_func (g_free);
  g_log_set_writer_func (record_log_cb, NULL, NULL);
  elbus_test_init (&argc, &argv);

  g_test_add_func ("/elbus/security/unknown-names", test_unknown_names);
  g_test_add_func ("/elbus/security/restricted-ops", test_restricted_ops);
  g_test_add_func ("/elbus/security/networks", test_networks);
  g_test_add_func ("/elbus/security/credentials", test_credentials);
  g_test_add_func ("/elbus/security/monitor-permission", test_monitor_permission);
  g_test_add_func ("/elbus/security/policy-changes", test_policy_changes);
  g_test_add_func ("/elbus/limits/max-clients", test_max_clients);
  g_test_add_func ("/elbus/limits/max-subscriptions", test_max_subscriptions);
  g_test_add_func ("/elbus/limits/max-queue-bytes", test_max_queue_bytes);
  g_test_add_func ("/elbus/limits/mask-length", test_mask_length);
  g_test_add_func ("/elbus/limits/handshake-timeout", test_handshake_timeout);
  g_test_add_func ("/elbus/limits/log-flood", test_log_flood);

  return g_test_run ();
}
