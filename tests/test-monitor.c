/* SPDX-License-Identifier: MIT */
/*
 * The broker's monitor extension (docs/protocol.md section 9), on the raw wire:
 * the copies a monitor receives, field by field.
 */
#include <string.h>

#include <elbus/elbus.h>

#include "elbus-test-util.h"

static ElbusTestBroker *
monitor_broker_new (guint queue_size)
{
  ElbusTestBrokerOptions options = { .queue_size = queue_size };
  ElbusTestBroker *tb = elbus_test_broker_new (&options);

  elbus_test_broker_enable_core_rpc (tb);
  return tb;
}

/* monitor.start with @filters (an a{sv} in the GVariant text format, or
 * NULL for none) as its params. */
static void
start_monitor (ElbusTestConn *conn,
               const char    *filters)
{
  static const guint8 ok_true[] = { 0x81, 0xa2, 'o', 'k', 0xc3 };
  g_autoptr(GBytes) params = filters != NULL ? elbus_test_msgpack_from_text (filters) : NULL;
  g_autoptr(GBytes) answer = NULL;

  answer = elbus_test_conn_core_call (conn, 1, "monitor.start",
                                      params != NULL ? g_bytes_get_data (params, NULL) : NULL,
                                      params != NULL ? g_bytes_get_size (params) : 0);
  elbus_test_assert_rpc_reply (answer, 1, ok_true, sizeof ok_true);
}

/* d as text: a string as is, an array of strings joined with ",", nil as
 * NULL. */
static char *
lookup_dest (GVariant *event)
{
  g_autoptr(GVariant) value = g_variant_lookup_value (event, "d", NULL);
  g_autoptr(GString) joined = g_string_new (NULL);
  GVariantIter iter;
  GVariant *item;

  g_assert_nonnull (value);
  if (g_variant_is_of_type (value, G_VARIANT_TYPE_STRING))
    return g_variant_dup_string (value, NULL);
  if (g_variant_is_of_type (value, G_VARIANT_TYPE_MAYBE))
    {
      g_assert_cmpuint (g_variant_n_children (value), ==, 0);
      return NULL;
    }

  g_assert_true (g_variant_is_of_type (value, G_VARIANT_TYPE ("av")));
  g_variant_iter_init (&iter, value);
  while (g_variant_iter_loop (&iter, "v", &item))
    {
      if (joined->len > 0)
        g_string_append_c (joined, ',');
      g_string_append (joined, g_variant_get_string (item, NULL));
    }
  return g_string_free (g_steal_pointer (&joined), FALSE);
}

typedef struct {
  const char *kind;
  const char *sender;
  const char *dest;           /* NULL for nil */
  guint       qos;
  guint       recipients;
  guint       result;
  gsize       len;            /* l */
  const char *payload;        /* p, compared over its own length */
} Expected;

/* Reads the next frame, which must be a copy from .broker, and checks
 * every field. */
static void
expect_event (ElbusTestConn  *conn,
              const Expected *want)
{
  g_autoptr(ElbusTestFrame) frame = elbus_test_conn_read_frame (conn);
  g_autoptr(GVariant) event = NULL;
  g_autoptr(GVariant) payload = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *dest = NULL;
  const char *kind, *sender;
  gint64 now = g_get_real_time () * 1000;
  guint64 t;

  g_assert_cmphex (frame->kind, ==, 0x01);
  g_assert_cmpstr (frame->sender, ==, ".broker");
  g_assert_cmpstr (frame->topic, ==, ".broker/monitor");

  event = elbus_msgpack_decode (frame->payload, &error);
  g_assert_no_error (error);
  g_assert_true (g_variant_is_of_type (event, G_VARIANT_TYPE_VARDICT));
  g_assert_cmpuint (g_variant_n_children (event), ==, 9);

  t = elbus_test_lookup_uint (event, "t");
  g_assert_cmpuint (t, <=, (guint64) now);
  g_assert_cmpuint (t, >, (guint64) now - 60 * G_GINT64_CONSTANT (1000000000));
  g_assert_true (g_variant_lookup (event, "k", "&s", &kind));
  g_assert_cmpstr (kind, ==, want->kind);
  g_assert_true (g_variant_lookup (event, "s", "&s", &sender));
  g_assert_cmpstr (sender, ==, want->sender);
  dest = lookup_dest (event);
  g_assert_cmpstr (dest, ==, want->dest);
  g_assert_cmpuint (elbus_test_lookup_uint (event, "q"), ==, want->qos);
  g_assert_cmpuint (elbus_test_lookup_uint (event, "n"), ==, want->recipients);
  g_assert_cmphex (elbus_test_lookup_uint (event, "r"), ==, want->result);
  g_assert_cmpuint (elbus_test_lookup_uint (event, "l"), ==, want->len);
  payload = g_variant_lookup_value (event, "p", G_VARIANT_TYPE_BYTESTRING);
  g_assert_nonnull (payload);
  g_assert_cmpmem (g_variant_get_data (payload), g_variant_get_size (payload),
                   want->payload, strlen (want->payload));
}

/* a topic the sender itself subscribed to, if any */
static const char *self_subscribed;

static void
send_message (ElbusTestConn *conn,
              guint8         op,
              ElbusQoS       qos,
              const char    *target,
              const char    *payload,
              guint8         result)
{
  guint32 op_id = elbus_test_conn_send_op (conn, op, qos, target, payload, strlen (payload));

  /* what reaches oneself arrives before the ack */
  if (op == 0x12 && g_strcmp0 (target, conn->name) == 0)
    elbus_test_conn_expect_message (conn, KIND_MESSAGE, conn->name, NULL, payload);
  else if (op == 0x01 && self_subscribed != NULL && g_str_equal (target, self_subscribed))
    elbus_test_conn_expect_message (conn, KIND_PUBLISH, conn->name, target, payload);
  if (qos & 1)
    elbus_test_conn_expect_ack (conn, op_id, result);
}

static void
test_monitor_exact (void)
{
  ElbusTestBroker *tb = monitor_broker_new (0);
  g_autoptr(ElbusTestConn) mon = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "mon");
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_TCP, "app.a");
  g_autoptr(ElbusTestConn) b = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "app.b");
  g_autoptr(ElbusTestConn) c = NULL;
  g_autoptr(ElbusTestConn) dup = NULL;
  g_autoptr(ElbusTestFrame) frame = NULL;
  guint32 op_id;

  g_test_summary ("every routed event reaches an unfiltered monitor with exact fields; "
                  "its own traffic does not");

  start_monitor (mon, NULL);

  /* subscribe: d is the list of masks */
  elbus_test_conn_subscribe (a, "t/#", "u/+", NULL);
  expect_event (mon, &(Expected) { "subscribe", "app.a", "t/#,u/+", 1, 0, 0x01, 0, "" });

  /* a message delivered, one to nobody */
  send_message (a, 0x12, ELBUS_QOS_PROCESSED, "app.b", "hi", 0x01);
  expect_event (mon, &(Expected) { "message", "app.a", "app.b", 1, 1, 0x01, 2, "hi" });
  elbus_test_conn_expect_message (b, KIND_MESSAGE, "app.a", NULL, "hi");
  send_message (a, 0x12, ELBUS_QOS_REALTIME_PROCESSED, "nobody", "x", 0x71);
  expect_event (mon, &(Expected) { "message", "app.a", "nobody", 3, 0, 0x71, 1, "x" });

  /* a publication reaches a's own subscription once */
  send_message (b, 0x01, ELBUS_QOS_NO, "t/x", "pp", 0x01);
  expect_event (mon, &(Expected) { "publish", "app.b", "t/x", 0, 1, 0x01, 2, "pp" });
  elbus_test_conn_expect_message (a, KIND_PUBLISH, "app.b", "t/x", "pp");

  /* a broadcast to everyone: .broker, mon, app.a, app.b */
  op_id = elbus_test_conn_send_op (b, 0x13, ELBUS_QOS_PROCESSED, "*", "all", 3);
  elbus_test_conn_expect_message (b, KIND_BROADCAST, "app.b", NULL, "all");
  elbus_test_conn_expect_ack (b, op_id, 0x01);
  elbus_test_conn_expect_message (a, KIND_BROADCAST, "app.b", NULL, "all");
  elbus_test_conn_expect_message (mon, KIND_BROADCAST, "app.b", NULL, "all");
  expect_event (mon, &(Expected) { "broadcast", "app.b", "*", 1, 4, 0x01, 3, "all" });

  /* the monitor's own traffic, both ways, is not copied to it */
  send_message (mon, 0x12, ELBUS_QOS_PROCESSED, "app.a", "own", 0x01);
  elbus_test_conn_expect_message (a, KIND_MESSAGE, "mon", NULL, "own");
  send_message (a, 0x12, ELBUS_QOS_PROCESSED, "mon", "to-mon", 0x01);
  elbus_test_conn_expect_message (mon, KIND_MESSAGE, "app.a", NULL, "to-mon");

  /* unsubscribe */
  elbus_test_conn_unsubscribe (a, "u/+", NULL);
  expect_event (mon, &(Expected) { "unsubscribe", "app.a", "u/+", 1, 0, 0x01, 0, "" });

  /* registration, a refused one, a departure; .broker announces each
   * primary on .broker/info after the event */
  c = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "app.c");
  expect_event (mon, &(Expected) { "reg", "app.c", NULL, 0, 0, 0x01, 0, "" });
  frame = elbus_test_conn_read_frame (mon);
  g_assert_cmphex (frame->kind, ==, 0x01);
  g_assert_cmpstr (frame->topic, ==, ".broker/monitor");   /* publish .broker/info */

  dup = elbus_test_conn_connect (tb, ELBUS_TEST_TRANSPORT_UNIX);
  g_assert_cmphex (elbus_test_conn_handshake (dup, "app.c"), ==, ELBUS_ERROR_BUSY);
  expect_event (mon, &(Expected) { "reg", "app.c", NULL, 0, 0, ELBUS_ERROR_BUSY, 0, "" });

  elbus_test_conn_close (b);
  expect_event (mon, &(Expected) { "unreg", "app.b", NULL, 0, 0, 0x01, 0, "" });

  elbus_test_broker_free (tb);
}

static void
test_monitor_filters (void)
{
  ElbusTestBroker *tb = monitor_broker_new (0);
  g_autoptr(ElbusTestConn) m1 = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "mon.1");
  g_autoptr(ElbusTestConn) m2 = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "mon.2");
  g_autoptr(ElbusTestConn) m3 = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "mon.3");
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "app.a");
  g_autoptr(ElbusTestConn) b = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "svc.b");

  g_test_summary ("monitors with different filters each get what passes their own, "
                  "with the payload cut to their limit");

  start_monitor (m1, "{'kinds': <['publish']>, 'topic': <['t/#']>, 'max_payload': <uint64 3>}");
  start_monitor (m2, "{'sender': <['app.*']>, 'target': <['svc.?']>}");
  start_monitor (m3, "{'sender': <'svc.b'>, 'kinds': <['message', 'subscribe']>}");

  send_message (a, 0x01, ELBUS_QOS_PROCESSED, "t/one", "0123456789", 0x01);   /* m1 */
  send_message (a, 0x01, ELBUS_QOS_PROCESSED, "x/one", "no", 0x01);           /* nobody */
  send_message (a, 0x12, ELBUS_QOS_PROCESSED, "svc.b", "to-b", 0x01);         /* m2 */
  elbus_test_conn_expect_message (b, KIND_MESSAGE, "app.a", NULL, "to-b");
  send_message (a, 0x12, ELBUS_QOS_PROCESSED, "app.a", "self", 0x01);         /* nobody */
  send_message (b, 0x12, ELBUS_QOS_PROCESSED, "app.a", "to-a", 0x01);         /* m3 */
  elbus_test_conn_expect_message (a, KIND_MESSAGE, "svc.b", NULL, "to-a");
  elbus_test_conn_subscribe (b, "t/#", NULL);                                 /* m3 */
  self_subscribed = "t/two";
  send_message (b, 0x01, ELBUS_QOS_PROCESSED, "t/two", "ab", 0x01);           /* m1 */
  self_subscribed = NULL;

  expect_event (m1, &(Expected) { "publish", "app.a", "t/one", 1, 0, 0x01, 10, "012" });
  expect_event (m1, &(Expected) { "publish", "svc.b", "t/two", 1, 1, 0x01, 2, "ab" });
  elbus_test_conn_expect_nothing (m1, ELBUS_TEST_QUIET_MS);

  expect_event (m2, &(Expected) { "message", "app.a", "svc.b", 1, 1, 0x01, 4, "to-b" });
  elbus_test_conn_expect_nothing (m2, ELBUS_TEST_QUIET_MS);

  expect_event (m3, &(Expected) { "message", "svc.b", "app.a", 1, 1, 0x01, 4, "to-a" });
  expect_event (m3, &(Expected) { "subscribe", "svc.b", "t/#", 1, 0, 0x01, 0, "" });
  elbus_test_conn_expect_nothing (m3, ELBUS_TEST_QUIET_MS);

  elbus_test_broker_free (tb);
}

static void
test_monitor_params (void)
{
  ElbusTestBroker *tb = monitor_broker_new (0);
  g_autoptr(ElbusTestConn) mon = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "mon");
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "app.a");
  static const guint8 not_msgpack[] = { 0xc1 };
  static const guint8 list[] = { 0x92, 0x01, 0x02 };
  static const guint8 ok_true[] = { 0x81, 0xa2, 'o', 'k', 0xc3 };
  const char *bad[] = {
    "{'colour': <'red'>}",
    "{'kinds': <['message', 'telegram']>}",
    "{'sender': <uint64 7>}",
    "{'max_payload': <'many'>}",
    "{'topic': <[<'a'>, <uint64 1>]>}",
  };
  g_autoptr(GBytes) answer = NULL;
  guint32 call_id = 10;

  g_test_summary ("bad filters are -32602, non-MessagePack and a list -32700; "
                  "monitor.stop stops the copies; a second start replaces the filters");

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GBytes) params = elbus_test_msgpack_from_text (bad[i]);

      answer = elbus_test_conn_core_call (mon, call_id, "monitor.start",
                                          g_bytes_get_data (params, NULL),
                                          g_bytes_get_size (params));
      elbus_test_assert_rpc_error (answer, -32602);
      g_clear_pointer (&answer, g_bytes_unref);
      call_id++;
    }
  answer = elbus_test_conn_core_call (mon, call_id++, "monitor.start", not_msgpack, 1);
  elbus_test_assert_rpc_error (answer, -32700);
  g_clear_pointer (&answer, g_bytes_unref);
  /* not a map, as for every .broker method */
  answer = elbus_test_conn_core_call (mon, call_id++, "monitor.start", list, sizeof list);
  elbus_test_assert_rpc_error (answer, -32700);
  g_clear_pointer (&answer, g_bytes_unref);

  /* nothing was started by the failures */
  send_message (a, 0x12, ELBUS_QOS_PROCESSED, "app.a", "m", 0x01);
  elbus_test_conn_expect_nothing (mon, ELBUS_TEST_QUIET_MS);

  start_monitor (mon, "{'kinds': <['publish']>}");
  start_monitor (mon, "{'kinds': <['message']>}");
  send_message (a, 0x01, ELBUS_QOS_PROCESSED, "p", "pub", 0x01);
  send_message (a, 0x12, ELBUS_QOS_PROCESSED, "app.a", "msg", 0x01);
  expect_event (mon, &(Expected) { "message", "app.a", "app.a", 1, 1, 0x01, 3, "msg" });

  answer = elbus_test_conn_core_call (mon, call_id++, "monitor.stop", NULL, 0);
  elbus_test_assert_rpc_reply (answer, call_id - 1, ok_true, sizeof ok_true);
  send_message (a, 0x12, ELBUS_QOS_PROCESSED, "app.a", "msg", 0x01);
  elbus_test_conn_expect_nothing (mon, ELBUS_TEST_QUIET_MS);

  elbus_test_broker_free (tb);
}

static void
test_monitor_stalled (void)
{
  ElbusTestBroker *tb = monitor_broker_new (64);
  g_autoptr(ElbusTestConn) slow = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "mon.slow");
  g_autoptr(ElbusTestConn) good = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "mon.good");
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "app.a");
  g_autoptr(ElbusTestConn) b = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "app.b");
  g_autofree char *big = g_strnfill (4000, 'x');
  guint n = 2000;

  g_test_summary ("a monitor that does not read is dropped as a slow client while the "
                  "traffic it watched, and another monitor, go on");

  elbus_test_conn_set_rcvbuf (slow, 4096);
  start_monitor (slow, NULL);
  start_monitor (good, "{'kinds': <['unreg']>}");

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *payload = g_strdup_printf ("%u:%s", i, big);

      send_message (a, 0x12, ELBUS_QOS_PROCESSED, "app.b", payload, 0x01);
      elbus_test_conn_expect_message (b, KIND_MESSAGE, "app.a", NULL, payload);
    }

  elbus_test_broker_wait_client (tb, "mon.slow", FALSE);
  expect_event (good, &(Expected) { "unreg", "mon.slow", NULL, 0, 0, 0x01, 0, "" });
  g_assert_true (elbus_test_broker_has_client (tb, "app.a"));
  g_assert_true (elbus_test_broker_has_client (tb, "app.b"));
  elbus_test_conn_drain_until_eof (slow, ELBUS_TEST_DEADLINE_MS);

  elbus_test_broker_free (tb);
}

/* a payload larger than a read chunk and a socket buffer */
#define LARGE_LEN (1024 * 1024 + 7)

static guint8 *
large_payload_new (void)
{
  guint8 *payload = g_malloc (LARGE_LEN);

  for (gsize i = 0; i < LARGE_LEN; i++)
    payload[i] = (i * 31 + i / 251) & 0xff;
  return payload;
}

static void
expect_large_event (ElbusTestConn *mon,
                    const guint8  *payload,
                    gsize          shown)
{
  g_autoptr(ElbusTestFrame) frame = elbus_test_conn_read_frame (mon);

  g_assert_cmphex (frame->kind, ==, 0x01);
  g_assert_cmpstr (frame->sender, ==, ".broker");
  g_assert_cmpstr (frame->topic, ==, ".broker/monitor");
  /* the header counts sender, topic and the whole event */
  g_assert_cmpuint (frame->len, ==, sizeof ".broker" + sizeof ".broker/monitor" +
                                    g_bytes_get_size (frame->payload));
  elbus_test_assert_monitor_event (frame->payload, "publish", "app.a", "big/x",
                                   1, 1, 0x01, payload, LARGE_LEN, shown);
}

static void
test_monitor_large (void)
{
  ElbusTestBroker *tb = monitor_broker_new (0);
  g_autoptr(ElbusTestConn) m1 = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "mon.1");
  g_autoptr(ElbusTestConn) m2 = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_TCP, "mon.2");
  g_autoptr(ElbusTestConn) cut = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "mon.cut");
  g_autoptr(ElbusTestConn) roomy = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "mon.roomy");
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "app.a");
  g_autoptr(ElbusTestConn) b = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "app.b");
  g_autofree guint8 *payload = large_payload_new ();
  guint32 op_id;

  g_test_summary ("a payload larger than a read chunk reaches every monitor byte for byte, "
                  "whole or cut to its limit, and the subscriber as it was sent");

  elbus_test_conn_subscribe (b, "big/#", NULL);
  start_monitor (m1, "{'kinds': <['publish']>}");
  start_monitor (m2, "{'kinds': <['publish']>}");
  start_monitor (cut, "{'kinds': <['publish']>, 'max_payload': <uint64 5>}");
  start_monitor (roomy, "{'kinds': <['publish']>, 'max_payload': <uint64 4294967296>}");

  /* twice: the second frame follows the first in the monitors' queues */
  for (guint i = 0; i < 2; i++)
    {
      op_id = elbus_test_conn_send_op (a, 0x01, ELBUS_QOS_PROCESSED, "big/x", payload, LARGE_LEN);
      elbus_test_conn_expect_ack (a, op_id, 0x01);
    }
  for (guint i = 0; i < 2; i++)
    {
      elbus_test_conn_expect_frame (b, KIND_PUBLISH, "app.a", "big/x", payload, LARGE_LEN, FALSE);
      expect_large_event (m1, payload, LARGE_LEN);
      expect_large_event (m2, payload, LARGE_LEN);
      expect_large_event (cut, payload, 5);
      expect_large_event (roomy, payload, LARGE_LEN);
    }
  elbus_test_conn_expect_nothing (m1, ELBUS_TEST_QUIET_MS);
  elbus_test_conn_expect_nothing (cut, ELBUS_TEST_QUIET_MS);

  /* an empty payload, and a limit of 0 */
  start_monitor (cut, "{'kinds': <['publish']>, 'max_payload': <uint64 0>}");
  elbus_test_conn_op_acked (a, 0x01, "big/x", "", 0x01);
  for (guint i = 0; i < 2; i++)
    {
      g_autoptr(ElbusTestFrame) frame = elbus_test_conn_read_frame (i == 0 ? m1 : cut);

      elbus_test_assert_monitor_event (frame->payload, "publish", "app.a", "big/x",
                                       1, 1, 0x01, (const guint8 *) "", 0, 0);
    }
  elbus_test_conn_expect_message (b, KIND_PUBLISH, "app.a", "big/x", "");
  op_id = elbus_test_conn_send_op (a, 0x01, ELBUS_QOS_PROCESSED, "big/x", payload, LARGE_LEN);
  elbus_test_conn_expect_ack (a, op_id, 0x01);
  expect_large_event (cut, payload, 0);

  elbus_test_broker_free (tb);
}

int
main (int    argc,
      char **argv)
{
  elbus_test_init (&argc, &argv);

  g_test_add_func ("/elbus/monitor/exact", test_monitor_exact);
  g_test_add_func ("/elbus/monitor/filters", test_monitor_filters);
  g_test_add_func ("/elbus/monitor/params", test_monitor_params);
  g_test_add_func ("/elbus/monitor/stalled", test_monitor_stalled);
  g_test_add_func ("/elbus/monitor/large", test_monitor_large);

  return g_test_run ();
}
