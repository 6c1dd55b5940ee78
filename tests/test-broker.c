/* SPDX-License-Identifier: MIT */
/*
 * ElbusBroker through real sockets, with a raw protocol client
 * (docs/protocol.md sections 1-5). Most cases run over both UNIX and TCP.
 *
 * Where a test must show that a client did NOT receive something, it uses
 * a fence: a message sent after the operation under test by the same
 * sender. The broker keeps each sender's order, so the fence arrives after
 * anything the operation delivered; reading the fence first proves that
 * nothing came, without waiting for a fixed time.
 */
#include "config.h"

#include <string.h>

#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>

#include "elbus-test-util.h"

#define TRANSPORT(data) ((ElbusTestTransport) GPOINTER_TO_INT (data))

/* A broker timeout of t seconds, longer under valgrind */
static double
scaled_timeout (double t)
{
  return elbus_test_scale_ms ((guint) (t * 1000)) / 1000.0;
}

/* A broker with a long timeout, so that no ping comes in the middle of a
 * test that reads raw bytes. */
static ElbusTestBroker *
new_broker (void)
{
  ElbusTestBrokerOptions options = { .timeout = 30.0 };

  return elbus_test_broker_new (&options);
}

static void
send_fence (ElbusTestConn *from,
            ElbusTestConn *to)
{
  elbus_test_conn_send_op (from, OP_MESSAGE, ELBUS_QOS_NO, to->name,
                           "fence", 5);
}

static void
expect_fence (ElbusTestConn *conn,
              ElbusTestConn *from)
{
  elbus_test_conn_expect_message (conn, KIND_MESSAGE, from->name, NULL,
                                  "fence");
}

/* The fence for a sender's own acks: an acknowledged subscription whose
 * ack must be the next frame. */
static void
expect_no_ack_before_fence (ElbusTestConn *conn)
{
  guint32 op_id = conn->next_op_id++;

  elbus_test_conn_send_frame (conn, op_id, OP_SUBSCRIBE, ELBUS_QOS_PROCESSED,
                              "fence/topic", 11);
  elbus_test_conn_expect_ack (conn, op_id, RES_OK);
}

/* The ack of an operation that also delivers to its sender: the two may
 * come in either order. */
static void
expect_ack_and_own (ElbusTestConn *conn,
                    guint32        op_id,
                    guint8         kind,
                    const char    *topic,
                    const char    *payload)
{
  gboolean got_ack = FALSE, got_frame = FALSE;

  for (int i = 0; i < 2; i++)
    {
      g_autoptr(ElbusTestFrame) f = elbus_test_conn_read_frame (conn);

      if (f->kind == 0xFE)
        {
          g_assert_false (got_ack);
          g_assert_cmpuint (f->op_id, ==, op_id);
          g_assert_cmphex (f->result, ==, RES_OK);
          got_ack = TRUE;
        }
      else
        {
          g_assert_false (got_frame);
          g_assert_cmphex (f->kind, ==, kind);
          g_assert_cmpstr (f->sender, ==, conn->name);
          g_assert_cmpstr (f->topic, ==, topic);
          g_assert_cmpmem (g_bytes_get_data (f->payload, NULL),
                           g_bytes_get_size (f->payload), payload, strlen (payload));
          got_frame = TRUE;
        }
    }
}

/* After a bad input: fresh clients can still register and talk. */
static void
check_broker_works (ElbusTestBroker    *tb,
                    ElbusTestTransport  transport)
{
  static guint counter = 0;
  g_autofree char *na = g_strdup_printf ("alive.a%u", ++counter);
  g_autofree char *nb = g_strdup_printf ("alive.b%u", counter);
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, transport, na);
  g_autoptr(ElbusTestConn) b = elbus_test_conn_new (tb, transport, nb);

  elbus_test_conn_op_acked (a, OP_MESSAGE, nb, "still alive", RES_OK);
  elbus_test_conn_expect_message (b, KIND_MESSAGE, na, NULL, "still alive");
}

/* ------------------------------------------------------------------ */
/* Handshake */

static void
test_handshake_ok (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) conn = elbus_test_conn_connect (tb, transport);
  static const guint8 greeting[] = { 0xEB, 0x01, 0x00 };
  static const guint8 name[] = { 0x0B, 0x00, 'g', 'r', 'o', 'u', 'p', '.', 'c', 'l', 'i', 'e', 'n' };
  static const guint8 ok[] = { 0x01 };

  g_test_summary ("The broker greets with EB 01 00, accepts the same back "
                  "with 01, and registers a name with 01");

  elbus_test_conn_expect_bytes (conn, greeting, sizeof greeting);
  elbus_test_conn_send (conn, greeting, sizeof greeting);
  elbus_test_conn_expect_bytes (conn, ok, 1);
  elbus_test_conn_send (conn, name, sizeof name);
  elbus_test_conn_expect_bytes (conn, ok, 1);
  conn->name = g_strdup ("group.clien");

  elbus_test_broker_wait_client (tb, "group.clien", TRUE);
  /* registered and routable */
  elbus_test_conn_send_op (conn, OP_MESSAGE, ELBUS_QOS_NO, "group.clien", "me", 2);
  elbus_test_conn_expect_message (conn, KIND_MESSAGE, "group.clien", NULL, "me");

  elbus_test_broker_free (tb);
}

static void
test_handshake_bad_greeting (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  struct { guint8 greeting; guint16 version; } cases[] = {
    { 0xEC, 1 },      /* wrong greeting byte */
    { 0x00, 1 },
    { 0xEB, 2 },      /* wrong version */
    { 0xEB, 0 },
    { 0xEB, 0x0100 }, /* version bytes swapped: 00 01 */
  };

  g_test_summary ("A wrong greeting byte or protocol version is answered "
                  "75 and the connection closed");

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(ElbusTestConn) conn = elbus_test_conn_connect (tb, transport);

      elbus_test_conn_expect_greeting (conn);
      elbus_test_conn_send_greeting (conn, cases[i].greeting, cases[i].version);
      g_assert_cmphex (elbus_test_conn_read_result (conn), ==, RES_NOT_SUPPORTED);
      elbus_test_conn_expect_eof (conn);
    }

  check_broker_works (tb, transport);
  elbus_test_broker_free (tb);
}

static void
expect_name_refused (ElbusTestBroker    *tb,
                     ElbusTestTransport  transport,
                     const char         *name,
                     gsize               name_len,
                     guint8              result)
{
  g_autoptr(ElbusTestConn) conn = elbus_test_conn_connect (tb, transport);

  elbus_test_conn_expect_greeting (conn);
  elbus_test_conn_send_greeting (conn, 0xEB, 1);
  g_assert_cmphex (elbus_test_conn_read_result (conn), ==, RES_OK);
  elbus_test_conn_send_name (conn, name, name_len);
  g_assert_cmphex (elbus_test_conn_read_result (conn), ==, result);
  elbus_test_conn_expect_eof (conn);
}

static void
test_handshake_bad_names (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *too_long = g_strnfill (ELBUS_MAX_NAME_LENGTH + 1, 'x');
  g_autofree char *longest = g_strnfill (ELBUS_MAX_NAME_LENGTH, 'y');
  g_autoptr(ElbusTestConn) conn = NULL;

  g_test_summary ("Empty names, names starting with '.', invalid UTF-8 and "
                  "names over 4096 bytes are refused with 72");

  expect_name_refused (tb, transport, "", 0, RES_DATA);
  expect_name_refused (tb, transport, ".broker", 7, RES_DATA);
  expect_name_refused (tb, transport, ".x", 2, RES_DATA);
  expect_name_refused (tb, transport, ".", 1, RES_DATA);
  expect_name_refused (tb, transport, "\xff\xfe", 2, RES_DATA);
  expect_name_refused (tb, transport, "ok.\xc3", 4, RES_DATA);   /* truncated sequence */
  expect_name_refused (tb, transport, "\xc0\x80", 2, RES_DATA);  /* overlong NUL */
  expect_name_refused (tb, transport, too_long, ELBUS_MAX_NAME_LENGTH + 1, RES_DATA);
  check_broker_works (tb, transport);

  /* the limit itself is allowed, and so is non-ASCII UTF-8 */
  conn = elbus_test_conn_new (tb, transport, longest);
  elbus_test_broker_wait_client (tb, longest, TRUE);
  g_clear_pointer (&conn, elbus_test_conn_free);
  conn = elbus_test_conn_new (tb, transport, "h\xc3\xa9llo.w\xc3\xb6rld");
  elbus_test_conn_send_op (conn, OP_MESSAGE, ELBUS_QOS_NO, "h\xc3\xa9llo.w\xc3\xb6rld", "x", 1);
  elbus_test_conn_expect_message (conn, KIND_MESSAGE, "h\xc3\xa9llo.w\xc3\xb6rld", NULL, "x");

  elbus_test_broker_free (tb);
}

static void
test_handshake_name_taken (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) first = elbus_test_conn_new (tb, transport, "taken");
  g_autoptr(ElbusTestConn) other = elbus_test_conn_new (tb, transport, "other");

  g_test_summary ("A name already registered is refused with 76; the "
                  "first holder keeps it");

  expect_name_refused (tb, transport, "taken", 5, RES_BUSY);

  /* the original holder still receives its messages */
  elbus_test_conn_op_acked (other, OP_MESSAGE, "taken", "for the first", RES_OK);
  elbus_test_conn_expect_message (first, KIND_MESSAGE, "other", NULL, "for the first");

  /* once it is gone, the name is free again */
  elbus_test_conn_close (first);
  elbus_test_broker_wait_client (tb, "taken", FALSE);
  {
    g_autoptr(ElbusTestConn) again = elbus_test_conn_new (tb, transport, "taken");

    elbus_test_conn_op_acked (other, OP_MESSAGE, "taken", "for the second", RES_OK);
    elbus_test_conn_expect_message (again, KIND_MESSAGE, "other", NULL, "for the second");
  }

  elbus_test_broker_free (tb);
}

static void
set_force_register_func (ElbusBroker *broker,
                         gpointer     user_data)
{
  elbus_broker_set_force_register (broker, TRUE);
}

static void
test_handshake_force_register (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) first = elbus_test_conn_new (tb, transport, "svc");
  g_autoptr(ElbusTestConn) first_sec = elbus_test_conn_new (tb, transport, "svc%%sub");
  g_autoptr(ElbusTestConn) other = elbus_test_conn_new (tb, transport, "other");
  g_autoptr(ElbusTestConn) second = NULL;
  g_autoptr(GPtrArray) events = NULL;

  g_test_summary ("With force-register, a name taken is taken over: the old "
                  "holder and its secondaries are disconnected, the new one "
                  "gets the name's messages");

  elbus_test_broker_invoke (tb, set_force_register_func, NULL);
  second = elbus_test_conn_new (tb, transport, "svc");

  elbus_test_conn_drain_until_eof (first, ELBUS_TEST_DEADLINE_MS);
  elbus_test_conn_drain_until_eof (first_sec, ELBUS_TEST_DEADLINE_MS);
  g_assert_false (elbus_test_broker_has_client (tb, "svc%%sub"));
  g_assert_true (elbus_test_broker_has_client (tb, "svc"));

  /* the old one left before the new one came */
  events = elbus_test_broker_dup_events (tb);
  g_assert_cmpuint (events->len, >=, 2);
  g_assert_cmpstr (g_ptr_array_index (events, events->len - 1), ==, "+svc");

  elbus_test_conn_op_acked (other, OP_MESSAGE, "svc", "to the new one", RES_OK);
  elbus_test_conn_expect_message (second, KIND_MESSAGE, "other", NULL, "to the new one");

  elbus_test_broker_free (tb);
}

static void
test_handshake_pipelined (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) peer = elbus_test_conn_new (tb, transport, "peer");
  g_autoptr(ElbusTestConn) conn = elbus_test_conn_connect (tb, transport);
  g_autoptr(GByteArray) all = g_byte_array_new ();
  g_autoptr(GBytes) msg = elbus_test_build_op (3, OP_MESSAGE, ELBUS_QOS_PROCESSED,
                                               "peer", "early bird", 10);
  static const guint8 hello[] = { 0xEB, 0x01, 0x00, 0x05, 0x00, 'e', 'a', 'g', 'e', 'r' };
  static const guint8 answers[] = { 0x01, 0x01, 0xFE, 0x03, 0x00, 0x00, 0x00, 0x01 };

  g_test_summary ("Greeting, name and a first frame in one write: the broker "
                  "keeps what follows each handshake step");

  elbus_test_conn_expect_greeting (conn);
  g_byte_array_append (all, hello, sizeof hello);
  g_byte_array_append (all, g_bytes_get_data (msg, NULL), g_bytes_get_size (msg));
  elbus_test_conn_send (conn, all->data, all->len);
  elbus_test_conn_expect_bytes (conn, answers, sizeof answers);
  elbus_test_conn_expect_message (peer, KIND_MESSAGE, "eager", NULL, "early bird");

  elbus_test_broker_free (tb);
}

static void
test_handshake_timeout (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBrokerOptions options = { .timeout = scaled_timeout (0.5) };
  ElbusTestBroker *tb = elbus_test_broker_new (&options);
  gint64 start;

  g_test_summary ("A client silent during the handshake is dropped after "
                  "the timeout, without stalling others");

  /* silent after the greeting */
  {
    g_autoptr(ElbusTestConn) conn = elbus_test_conn_connect (tb, transport);

    elbus_test_conn_expect_greeting (conn);
    start = g_get_monotonic_time ();
    check_broker_works (tb, transport);
    elbus_test_conn_expect_eof (conn);
    g_assert_cmpint (g_get_monotonic_time () - start, >=, 250 * 1000);
  }

  /* silent before the name */
  {
    g_autoptr(ElbusTestConn) conn = elbus_test_conn_connect (tb, transport);
    static const guint8 half_name[] = { 0x05, 0x00, 'a', 'b' };

    elbus_test_conn_expect_greeting (conn);
    elbus_test_conn_send_greeting (conn, 0xEB, 1);
    g_assert_cmphex (elbus_test_conn_read_result (conn), ==, RES_OK);
    elbus_test_conn_send (conn, half_name, sizeof half_name);
    start = g_get_monotonic_time ();
    elbus_test_conn_expect_eof (conn);
    g_assert_cmpint (g_get_monotonic_time () - start, >=, 250 * 1000);
  }

  check_broker_works (tb, transport);
  elbus_test_broker_free (tb);
}

static void
test_handshake_disconnect (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();

  g_test_summary ("Clients that hang up at each handshake step leave the "
                  "broker working");

  for (int step = 0; step < 4; step++)
    {
      g_autoptr(ElbusTestConn) conn = elbus_test_conn_connect (tb, transport);

      if (step >= 1)
        elbus_test_conn_expect_greeting (conn);
      if (step >= 2)
        {
          elbus_test_conn_send_greeting (conn, 0xEB, 1);
          g_assert_cmphex (elbus_test_conn_read_result (conn), ==, RES_OK);
        }
      if (step >= 3)
        elbus_test_conn_send (conn, "\x10\x00half", 6);
      elbus_test_conn_close (conn);
    }

  check_broker_works (tb, transport);
  elbus_test_broker_free (tb);
}

/* ------------------------------------------------------------------ */
/* Operations and QoS */

static void
test_ops_ack_bytes (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, transport, "a");
  g_autoptr(ElbusTestConn) b = elbus_test_conn_new (tb, transport, "b");
  static const struct {
    guint8      op;
    ElbusQoS    qos;
    const char *body;
    gsize       body_len;
    guint8      result;
  } cases[] = {
    { OP_MESSAGE, ELBUS_QOS_PROCESSED, "b\0hi", 4, RES_OK },
    { OP_MESSAGE, ELBUS_QOS_REALTIME_PROCESSED, "b\0hi", 4, RES_OK },
    { OP_MESSAGE, ELBUS_QOS_PROCESSED, "nobody\0hi", 9, RES_NOT_REGISTERED },
    { OP_MESSAGE, ELBUS_QOS_REALTIME_PROCESSED, "nobody\0hi", 9, RES_NOT_REGISTERED },
    { OP_PUBLISH, ELBUS_QOS_PROCESSED, "no/subscribers\0x", 16, RES_OK },
    { OP_PUBLISH, ELBUS_QOS_REALTIME_PROCESSED, "t/x\0x", 5, RES_OK },
    { OP_SUBSCRIBE, ELBUS_QOS_PROCESSED, "t/x", 3, RES_OK },
    { OP_SUBSCRIBE, ELBUS_QOS_REALTIME_PROCESSED, "t/y\0t/z", 7, RES_OK },
    { OP_UNSUBSCRIBE, ELBUS_QOS_PROCESSED, "t/x", 3, RES_OK },
    { OP_UNSUBSCRIBE, ELBUS_QOS_REALTIME_PROCESSED, "t/y\0t/z", 7, RES_OK },
    { OP_BROADCAST, ELBUS_QOS_PROCESSED, "nobody.*\0x", 10, RES_OK },
    { OP_BROADCAST, ELBUS_QOS_REALTIME_PROCESSED, "b\0x", 3, RES_OK },
  };

  g_test_summary ("Acknowledged operations answer exactly FE, the op id "
                  "as received, and the result byte");

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      guint32 op_id = 0xA1B2C300u + (guint32) i;
      guint8 expected[6] = { 0xFE, i, 0xC3, 0xB2, 0xA1, cases[i].result };

      elbus_test_conn_send_frame (a, op_id, cases[i].op, cases[i].qos,
                                  cases[i].body, cases[i].body_len);
      elbus_test_conn_expect_bytes (a, expected, sizeof expected);
    }

  /* b got exactly the two messages and the broadcast */
  elbus_test_conn_expect_frame (b, KIND_MESSAGE, "a", NULL, "hi", 2, FALSE);
  elbus_test_conn_expect_frame (b, KIND_MESSAGE, "a", NULL, "hi", 2, TRUE);
  elbus_test_conn_expect_frame (b, KIND_BROADCAST, "a", NULL, "x", 1, TRUE);
  send_fence (a, b);
  expect_fence (b, a);

  elbus_test_broker_free (tb);
}

static void
test_ops_message_qos (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, transport, "x.sender");
  g_autoptr(ElbusTestConn) b = elbus_test_conn_new (tb, transport, "x.receiver");

  g_test_summary ("Messages with each QoS: ack only for QoS 1 and 3, "
                  "realtime byte only for QoS 2 and 3");

  for (ElbusQoS qos = ELBUS_QOS_NO; qos <= ELBUS_QOS_REALTIME_PROCESSED; qos++)
    {
      g_autofree char *payload = g_strdup_printf ("payload qos %d", qos);
      guint32 op_id;

      op_id = elbus_test_conn_send_op (a, OP_MESSAGE, qos, "x.receiver",
                                       payload, strlen (payload));
      if (NEEDS_ACK (qos))
        elbus_test_conn_expect_ack (a, op_id, RES_OK);
      else
        expect_no_ack_before_fence (a);
      elbus_test_conn_expect_frame (b, KIND_MESSAGE, "x.sender", NULL,
                                    payload, strlen (payload),
                                    IS_REALTIME (qos));

      /* unknown target: 71 when asked, silence otherwise */
      op_id = elbus_test_conn_send_op (a, OP_MESSAGE, qos, "x.nobody", "p", 1);
      if (NEEDS_ACK (qos))
        elbus_test_conn_expect_ack (a, op_id, RES_NOT_REGISTERED);
      else
        expect_no_ack_before_fence (a);
    }

  /* empty and binary payloads travel intact */
  elbus_test_conn_send_op (a, OP_MESSAGE, ELBUS_QOS_NO, "x.receiver", "", 0);
  elbus_test_conn_expect_frame (b, KIND_MESSAGE, "x.sender", NULL, "", 0, FALSE);
  elbus_test_conn_send_op (a, OP_MESSAGE, ELBUS_QOS_NO, "x.receiver", "\0\xff\0\x01", 4);
  elbus_test_conn_expect_frame (b, KIND_MESSAGE, "x.sender", NULL, "\0\xff\0\x01", 4, FALSE);

  send_fence (a, b);
  expect_fence (b, a);
  elbus_test_broker_free (tb);
}

static void
test_ops_publish_qos (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, transport, "pub");
  g_autoptr(ElbusTestConn) b = elbus_test_conn_new (tb, transport, "sub");

  g_test_summary ("Publications with each QoS reach subscribers with the "
                  "sender, the topic and the realtime byte");

  elbus_test_conn_subscribe (b, "sensors/+/temp", NULL);

  for (ElbusQoS qos = ELBUS_QOS_NO; qos <= ELBUS_QOS_REALTIME_PROCESSED; qos++)
    {
      g_autofree char *payload = g_strdup_printf ("%d degrees", 20 + qos);
      guint32 op_id;

      op_id = elbus_test_conn_send_op (a, OP_PUBLISH, qos, "sensors/room1/temp",
                                       payload, strlen (payload));
      if (NEEDS_ACK (qos))
        elbus_test_conn_expect_ack (a, op_id, RES_OK);
      else
        expect_no_ack_before_fence (a);
      elbus_test_conn_expect_frame (b, KIND_PUBLISH, "pub", "sensors/room1/temp",
                                    payload, strlen (payload),
                                    IS_REALTIME (qos));
    }

  /* publications nobody subscribed to are acknowledged OK and go nowhere */
  elbus_test_conn_op_acked (a, OP_PUBLISH, "sensors/room1/humidity", "50", RES_OK);
  send_fence (a, b);
  expect_fence (b, a);

  elbus_test_broker_free (tb);
}

static void
test_ops_subscribe_unsubscribe (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, transport, "pub");
  g_autoptr(ElbusTestConn) b = elbus_test_conn_new (tb, transport, "sub");

  g_test_summary ("A body of several masks subscribes to each; "
                  "unsubscribing stops exactly those");

  elbus_test_conn_subscribe (b, "t/a", "t/b", "t/c", NULL);
  elbus_test_conn_send_op (a, OP_PUBLISH, ELBUS_QOS_NO, "t/a", "1", 1);
  elbus_test_conn_send_op (a, OP_PUBLISH, ELBUS_QOS_NO, "t/b", "2", 1);
  elbus_test_conn_send_op (a, OP_PUBLISH, ELBUS_QOS_NO, "t/c", "3", 1);
  elbus_test_conn_send_op (a, OP_PUBLISH, ELBUS_QOS_NO, "t/d", "4", 1);
  send_fence (a, b);
  elbus_test_conn_expect_message (b, KIND_PUBLISH, "pub", "t/a", "1");
  elbus_test_conn_expect_message (b, KIND_PUBLISH, "pub", "t/b", "2");
  elbus_test_conn_expect_message (b, KIND_PUBLISH, "pub", "t/c", "3");
  expect_fence (b, a);

  elbus_test_conn_unsubscribe (b, "t/a", "t/c", NULL);
  elbus_test_conn_send_op (a, OP_PUBLISH, ELBUS_QOS_NO, "t/a", "5", 1);
  elbus_test_conn_send_op (a, OP_PUBLISH, ELBUS_QOS_NO, "t/b", "6", 1);
  elbus_test_conn_send_op (a, OP_PUBLISH, ELBUS_QOS_NO, "t/c", "7", 1);
  send_fence (a, b);
  elbus_test_conn_expect_message (b, KIND_PUBLISH, "pub", "t/b", "6");
  expect_fence (b, a);

  /* subscriptions with QoS 0 take effect too, in order */
  {
    static const char body[] = "t/e";

    elbus_test_conn_send_frame (b, 99, OP_SUBSCRIBE, ELBUS_QOS_NO, body, 3);
    expect_no_ack_before_fence (b);
    elbus_test_conn_send_op (a, OP_PUBLISH, ELBUS_QOS_NO, "t/e", "8", 1);
    send_fence (a, b);
    elbus_test_conn_expect_message (b, KIND_PUBLISH, "pub", "t/e", "8");
    expect_fence (b, a);
  }

  /* subscribing twice to the same mask still delivers once; one
   * unsubscribe removes it */
  elbus_test_conn_subscribe (b, "t/f", NULL);
  elbus_test_conn_subscribe (b, "t/f", NULL);
  elbus_test_conn_send_op (a, OP_PUBLISH, ELBUS_QOS_NO, "t/f", "9", 1);
  send_fence (a, b);
  elbus_test_conn_expect_message (b, KIND_PUBLISH, "pub", "t/f", "9");
  expect_fence (b, a);

  elbus_test_broker_free (tb);
}

static void
test_ops_broadcast_qos (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, transport, "src");
  g_autoptr(ElbusTestConn) b = elbus_test_conn_new (tb, transport, "grp.b");
  g_autoptr(ElbusTestConn) c = elbus_test_conn_new (tb, transport, "grp.c");
  g_autoptr(ElbusTestConn) d = elbus_test_conn_new (tb, transport, "other.d");

  g_test_summary ("Broadcasts with each QoS reach every matching client");

  for (ElbusQoS qos = ELBUS_QOS_NO; qos <= ELBUS_QOS_REALTIME_PROCESSED; qos++)
    {
      g_autofree char *payload = g_strdup_printf ("bcast %d", qos);
      guint32 op_id;

      op_id = elbus_test_conn_send_op (a, OP_BROADCAST, qos, "grp.*",
                                       payload, strlen (payload));
      if (NEEDS_ACK (qos))
        elbus_test_conn_expect_ack (a, op_id, RES_OK);
      else
        expect_no_ack_before_fence (a);
      elbus_test_conn_expect_frame (b, KIND_BROADCAST, "src", NULL, payload,
                                    strlen (payload), IS_REALTIME (qos));
      elbus_test_conn_expect_frame (c, KIND_BROADCAST, "src", NULL, payload,
                                    strlen (payload), IS_REALTIME (qos));
    }
  send_fence (a, d);
  expect_fence (d, a);

  elbus_test_broker_free (tb);
}

static void
test_ops_nop (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, transport, "a");
  g_autoptr(ElbusTestConn) b = elbus_test_conn_new (tb, transport, "b");
  /* a NOP whose length field is garbage: the frame is still 9 bytes */
  static const guint8 nop[] = { 1, 2, 3, 4, 0x00, 0x78, 0x56, 0x34, 0x12 };
  /* op 0 with QoS bits: a body, read and ignored, and no ack */
  static const guint8 nop_qos[] = { 7, 0, 0, 0, 0x40, 4, 0, 0, 0, 'b', 0, 'x', 'y' };
  static const guint8 nop_qos3[] = { 8, 0, 0, 0, 0xC0, 1, 0, 0, 0, 0 };
  g_autoptr(GBytes) msg = elbus_test_build_op (5, OP_MESSAGE, ELBUS_QOS_PROCESSED,
                                               "b", "after", 5);
  g_autoptr(GByteArray) all = g_byte_array_new ();

  g_test_summary ("NOP frames are 9 bytes whatever their length field and "
                  "get no answer; op 0 with QoS bits has its body skipped");

  g_byte_array_append (all, nop, sizeof nop);
  g_byte_array_append (all, nop_qos, sizeof nop_qos);
  g_byte_array_append (all, nop_qos3, sizeof nop_qos3);
  g_byte_array_append (all, nop, sizeof nop);
  g_byte_array_append (all, g_bytes_get_data (msg, NULL), g_bytes_get_size (msg));
  elbus_test_conn_send (a, all->data, all->len);

  elbus_test_conn_expect_ack (a, 5, RES_OK);
  elbus_test_conn_expect_message (b, KIND_MESSAGE, "a", NULL, "after");
  send_fence (a, b);
  expect_fence (b, a);

  elbus_test_broker_free (tb);
}

static void
test_ops_self (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, transport, "me.myself");
  g_autoptr(ElbusTestConn) b = elbus_test_conn_new (tb, transport, "me.other");
  g_autoptr(ElbusTestConn) c = elbus_test_conn_new (tb, transport, "you");

  g_test_summary ("A client receives its own messages, and its own "
                  "broadcasts and publications when they match");

  /* message to self; the ack and the delivery may come in either order */
  {
    guint32 op_id = elbus_test_conn_send_op (a, OP_MESSAGE, ELBUS_QOS_PROCESSED,
                                             "me.myself", "to me", 5);

    expect_ack_and_own (a, op_id, KIND_MESSAGE, NULL, "to me");
  }

  /* own broadcast */
  elbus_test_conn_send_op (a, OP_BROADCAST, ELBUS_QOS_NO, "me.*", "all of us", 9);
  elbus_test_conn_expect_message (a, KIND_BROADCAST, "me.myself", NULL, "all of us");
  elbus_test_conn_expect_message (b, KIND_BROADCAST, "me.myself", NULL, "all of us");
  send_fence (a, c);
  expect_fence (c, a);

  /* own publication */
  elbus_test_conn_subscribe (a, "self/#", NULL);
  elbus_test_conn_send_op (a, OP_PUBLISH, ELBUS_QOS_NO, "self/x", "mine", 4);
  elbus_test_conn_expect_message (a, KIND_PUBLISH, "me.myself", "self/x", "mine");

  /* and nothing else came */
  send_fence (a, a);
  expect_fence (a, a);
  send_fence (a, b);
  expect_fence (b, a);

  elbus_test_broker_free (tb);
}

static void
test_ops_broker_warn (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, transport, "a");
  g_autoptr(ElbusTestConn) b = elbus_test_conn_new (tb, transport, "b");
  g_autoptr(ElbusTestConn) c = elbus_test_conn_new (tb, transport, "c");

  g_test_summary ("Every client is subscribed to .broker/warn from "
                  "registration; anyone may publish there");

  expect_ack_and_own (a, elbus_test_conn_send_op (a, OP_PUBLISH, ELBUS_QOS_PROCESSED,
                                                  ".broker/warn", "careful", 7),
                      KIND_PUBLISH, ".broker/warn", "careful");
  elbus_test_conn_expect_message (b, KIND_PUBLISH, "a", ".broker/warn", "careful");
  elbus_test_conn_expect_message (c, KIND_PUBLISH, "a", ".broker/warn", "careful");

  /* delivered once even with an explicit subscription on top */
  elbus_test_conn_subscribe (b, ".broker/warn", ".broker/#", NULL);
  elbus_test_conn_send_op (c, OP_PUBLISH, ELBUS_QOS_NO, ".broker/warn", "twice?", 6);
  elbus_test_conn_expect_message (b, KIND_PUBLISH, "c", ".broker/warn", "twice?");
  elbus_test_conn_expect_message (a, KIND_PUBLISH, "c", ".broker/warn", "twice?");
  send_fence (c, b);
  expect_fence (b, c);

  /* the auto-subscription can be dropped like any other */
  elbus_test_conn_unsubscribe (a, ".broker/warn", NULL);
  elbus_test_conn_send_op (c, OP_PUBLISH, ELBUS_QOS_NO, ".broker/warn", "gone", 4);
  send_fence (c, a);
  expect_fence (a, c);

  elbus_test_broker_free (tb);
}

static void
test_ops_latency (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  /* a write buffer that may wait up to 2 s for more data */
  ElbusTestBrokerOptions options = { .timeout = 30, .buf_ttl = 2000000 };
  ElbusTestBroker *tb = elbus_test_broker_new (&options);
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, transport, "ping.a");
  g_autoptr(ElbusTestConn) b = elbus_test_conn_new (tb, transport, "ping.b");
  gint64 start = g_get_monotonic_time ();
  gint64 elapsed;

  g_test_summary ("Buffered frames go out before the broker's loop sleeps, "
                  "not after buf-ttl (DESIGN.md, the hot path, rule 4)");

  for (int i = 0; i < 10; i++)
    {
      ElbusQoS qos = i % 2 ? ELBUS_QOS_NO : ELBUS_QOS_REALTIME;

      elbus_test_conn_send_op (a, OP_MESSAGE, qos, "ping.b", "ping", 4);
      elbus_test_conn_expect_frame (b, KIND_MESSAGE, "ping.a", NULL, "ping", 4,
                                    IS_REALTIME (qos));
      elbus_test_conn_send_op (b, OP_MESSAGE, qos, "ping.a", "pong", 4);
      elbus_test_conn_expect_frame (a, KIND_MESSAGE, "ping.b", NULL, "pong", 4,
                                    IS_REALTIME (qos));
    }
  elapsed = g_get_monotonic_time () - start;
  g_test_message ("20 one-way trips in %" G_GINT64_FORMAT " us", elapsed);
  /* waiting for buf-ttl even once would take 2 s */
  g_assert_cmpint (elapsed, <, elbus_test_scale_ms (1500) * G_GINT64_CONSTANT (1000));

  elbus_test_broker_free (tb);
}

/* ------------------------------------------------------------------ */
/* Routing tables through real sockets */

static const char *const broadcast_names[] = {
  "a", "a.b", "a.b.c", "a.x.c", "a.x.y.c", "b.x.c", "ab", "x",
  "zz.sender",
};

typedef struct {
  const char *mask;
  const char *recipients;       /* space-separated, sorted as above */
} BroadcastCase;

static const BroadcastCase broadcast_cases[] = {
  { "a", "a" },
  { "a.b", "a.b" },
  { "a.*", "a.b a.b.c a.x.c a.x.y.c" },
  { "a.?", "a.b" },
  { "a.?.c", "a.b.c a.x.c" },
  { "?.x.c", "a.x.c b.x.c" },
  { "?", "a ab x" },
  { "?.?", "a.b zz.sender" },
  { "?.*", "a.b a.b.c a.x.c a.x.y.c b.x.c zz.sender" },
  { "*", "a a.b a.b.c a.x.c a.x.y.c b.x.c ab x zz.sender" },
  { "a.*.c", "a.b a.b.c a.x.c a.x.y.c" },     /* acts as a.* */
  { "a.?.?.c", "a.x.y.c" },
  { "a.b.*", "a.b.c" },
  { "a.b.c.d", "" },
  { "b", "" },
  { "a.x", "" },
  { "?.b.?", "a.b.c" },
  { "zz.*", "zz.sender" },
};

static void
test_routing_broadcast_masks (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  ElbusTestConn *conns[G_N_ELEMENTS (broadcast_names)];
  ElbusTestConn *sender;

  g_test_summary ("Broadcast masks: '?' matches one part, '*' one or more "
                  "remaining parts; the sender receives its own");

  for (gsize i = 0; i < G_N_ELEMENTS (broadcast_names); i++)
    conns[i] = elbus_test_conn_new (tb, transport, broadcast_names[i]);
  sender = conns[G_N_ELEMENTS (broadcast_names) - 1];

  for (gsize c = 0; c < G_N_ELEMENTS (broadcast_cases); c++)
    {
      g_auto(GStrv) expected = g_strsplit (broadcast_cases[c].recipients, " ", -1);

      g_test_message ("broadcast mask '%s'", broadcast_cases[c].mask);
      elbus_test_conn_send_op (sender, OP_BROADCAST, ELBUS_QOS_NO,
                               broadcast_cases[c].mask,
                               broadcast_cases[c].mask,
                               strlen (broadcast_cases[c].mask));
      for (gsize i = 0; i < G_N_ELEMENTS (broadcast_names); i++)
        send_fence (sender, conns[i]);

      for (gsize i = 0; i < G_N_ELEMENTS (broadcast_names); i++)
        {
          g_autoptr(ElbusTestFrame) f = elbus_test_conn_read_frame (conns[i]);
          gboolean want = g_strv_contains ((const char *const *) expected,
                                           broadcast_names[i]);

          if (f->kind == KIND_BROADCAST)
            {
              if (!want)
                g_error ("mask '%s' reached '%s'", broadcast_cases[c].mask,
                         broadcast_names[i]);
              g_assert_cmpstr (f->sender, ==, "zz.sender");
              g_assert_cmpmem (g_bytes_get_data (f->payload, NULL),
                               g_bytes_get_size (f->payload),
                               broadcast_cases[c].mask,
                               strlen (broadcast_cases[c].mask));
              expect_fence (conns[i], sender);
            }
          else
            {
              if (want)
                g_error ("mask '%s' did not reach '%s'", broadcast_cases[c].mask,
                         broadcast_names[i]);
              g_assert_cmphex (f->kind, ==, KIND_MESSAGE);
              g_assert_cmpstr (f->sender, ==, "zz.sender");
              g_assert_cmpmem (g_bytes_get_data (f->payload, NULL),
                               g_bytes_get_size (f->payload), "fence", 5);
            }
        }
    }

  for (gsize i = 0; i < G_N_ELEMENTS (broadcast_names); i++)
    elbus_test_conn_free (conns[i]);
  elbus_test_broker_free (tb);
}

typedef struct {
  const char *masks;            /* '|'-separated list of masks */
  const char *topic;
  gboolean    delivered;
} TopicCase;

static const TopicCase topic_cases[] = {
  { "a/b", "a/b", TRUE },
  { "a/b", "a/c", FALSE },
  { "a/b", "a/b/c", FALSE },
  { "a/b", "a", FALSE },
  { "a/b", "A/B", FALSE },
  { "a/+", "a/b", TRUE },
  { "a/+", "a/b/c", FALSE },
  { "a/+", "a", FALSE },
  { "+/b", "a/b", TRUE },
  { "+/b", "a/c", FALSE },
  { "a/+/c", "a/b/c", TRUE },
  { "a/+/c", "a/b/d", FALSE },
  { "a/+/c", "a/b/x/c", FALSE },
  { "a/+/c", "a//c", TRUE },            /* '+' matches an empty level */
  { "+", "a", TRUE },
  { "+", "a/b", FALSE },
  { "+/+", "a/b", TRUE },
  { "+/+", "a/b/c", FALSE },
  { "a/#", "a/b", TRUE },
  { "a/#", "a/b/c", TRUE },
  { "a/#", "a", FALSE },
  { "a/#", "b/c", FALSE },
  { "a/+/#", "a/b/c", TRUE },
  { "a/+/#", "a/b", FALSE },
  { "#", "a", TRUE },
  { "#", "x/y/z", TRUE },
  { "a/#/b", "a/x/y", TRUE },           /* acts as a/# */
  { "a/b", "a/+", FALSE },              /* topics are literal */
  { "a/+", "a/+", TRUE },
  { "a/b|a/+|a/#|#|+/b", "a/b", TRUE }, /* many matches, one delivery */
  { "x/y|z", "a/b", FALSE },
  { "", "", TRUE },                     /* the empty subscribe body */
};

static void
test_routing_topic_masks (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) pub = elbus_test_conn_new (tb, transport, "publisher");

  g_test_summary ("Topic masks: '+' matches one level, '#' one or more "
                  "remaining levels; each publication is delivered once");

  for (gsize c = 0; c < G_N_ELEMENTS (topic_cases); c++)
    {
      g_autofree char *name = g_strdup_printf ("sub%" G_GSIZE_FORMAT, c);
      g_autoptr(ElbusTestConn) sub = elbus_test_conn_new (tb, transport, name);
      g_auto(GStrv) masks = g_strsplit (topic_cases[c].masks, "|", -1);
      g_autoptr(GByteArray) body = g_byte_array_new ();
      guint32 op_id = 1000 + c;

      g_test_message ("masks '%s', topic '%s'", topic_cases[c].masks,
                      topic_cases[c].topic);
      for (guint i = 0; masks[i] != NULL; i++)
        {
          if (i > 0)
            g_byte_array_append (body, (const guint8 *) "", 1);
          g_byte_array_append (body, (const guint8 *) masks[i], strlen (masks[i]));
        }
      elbus_test_conn_send_frame (sub, op_id, OP_SUBSCRIBE, ELBUS_QOS_PROCESSED,
                                  body->data, body->len);
      elbus_test_conn_expect_ack (sub, op_id, RES_OK);

      elbus_test_conn_send_op (pub, OP_PUBLISH, ELBUS_QOS_NO,
                               topic_cases[c].topic, "data", 4);
      send_fence (pub, sub);

      if (topic_cases[c].delivered)
        elbus_test_conn_expect_message (sub, KIND_PUBLISH, "publisher",
                                        topic_cases[c].topic, "data");
      expect_fence (sub, pub);
    }

  elbus_test_broker_free (tb);
}

/* ------------------------------------------------------------------ */
/* Secondaries */

static void
test_secondary (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) peer = elbus_test_conn_new (tb, transport, "peer");
  g_autoptr(ElbusTestConn) primary = NULL;
  g_autoptr(ElbusTestConn) sec1 = NULL;
  g_autoptr(ElbusTestConn) sec2 = NULL;

  g_test_summary ("Secondary clients: refused without their primary, "
                  "addressed by full name, dropped with the primary");

  expect_name_refused (tb, transport, "svc%%1", 6, RES_NOT_REGISTERED);
  check_broker_works (tb, transport);

  primary = elbus_test_conn_new (tb, transport, "svc");
  sec1 = elbus_test_conn_new (tb, transport, "svc%%1");
  sec2 = elbus_test_conn_new (tb, transport, "svc%%2");
  expect_name_refused (tb, transport, "svc%%1", 6, RES_BUSY);

  /* the sender field is the full name */
  elbus_test_conn_op_acked (sec1, OP_MESSAGE, "peer", "from sec1", RES_OK);
  elbus_test_conn_expect_message (peer, KIND_MESSAGE, "svc%%1", NULL, "from sec1");
  elbus_test_conn_subscribe (peer, "sec/topic", NULL);
  elbus_test_conn_send_op (sec2, OP_PUBLISH, ELBUS_QOS_NO, "sec/topic", "pub", 3);
  elbus_test_conn_expect_message (peer, KIND_PUBLISH, "svc%%2", "sec/topic", "pub");

  /* messages reach exactly the named connection */
  elbus_test_conn_op_acked (peer, OP_MESSAGE, "svc%%2", "to sec2", RES_OK);
  elbus_test_conn_op_acked (peer, OP_MESSAGE, "svc", "to primary", RES_OK);
  elbus_test_conn_expect_message (sec2, KIND_MESSAGE, "peer", NULL, "to sec2");
  elbus_test_conn_expect_message (primary, KIND_MESSAGE, "peer", NULL, "to primary");
  send_fence (peer, sec1);
  expect_fence (sec1, peer);

  /* a secondary may leave alone */
  elbus_test_conn_close (sec2);
  elbus_test_broker_wait_client (tb, "svc%%2", FALSE);
  g_assert_true (elbus_test_broker_has_client (tb, "svc"));
  g_assert_true (elbus_test_broker_has_client (tb, "svc%%1"));

  /* the primary takes the others with it */
  elbus_test_conn_close (primary);
  elbus_test_conn_expect_eof (sec1);
  elbus_test_broker_wait_client (tb, "svc%%1", FALSE);
  elbus_test_broker_wait_client (tb, "svc", FALSE);
  elbus_test_conn_op_acked (peer, OP_MESSAGE, "svc%%1", "late", RES_NOT_REGISTERED);

  check_broker_works (tb, transport);
  elbus_test_broker_free (tb);
}

/* ------------------------------------------------------------------ */
/* Keep-alive */

static void
test_ping (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBrokerOptions options = { .timeout = scaled_timeout (0.2) };
  ElbusTestBroker *tb = elbus_test_broker_new (&options);
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, transport, "a");
  g_autoptr(ElbusTestConn) b = elbus_test_conn_new (tb, transport, "b");
  static const guint8 nop[9] = { 0 };
  gint64 start = g_get_monotonic_time ();

  g_test_summary ("The broker pings each client every timeout with six "
                  "zero bytes, and answers the client's pings with nothing");

  for (int i = 0; i < 3; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(ElbusTestFrame) f = NULL;

      f = elbus_test_conn_try_read_frame (a, ELBUS_TEST_DEADLINE_MS, FALSE, &error);
      g_assert_no_error (error);
      g_assert_cmphex (f->kind, ==, 0x00);
      g_assert_cmpuint (f->len, ==, 0);
      g_assert_cmpuint (f->byte5, ==, 0);
      /* answer like a client would */
      elbus_test_conn_send (a, nop, sizeof nop);
    }
  /* three pings need at least two intervals */
  g_assert_cmpint (g_get_monotonic_time () - start, >=, 300 * 1000);

  /* still registered and working after its pings */
  g_assert_true (elbus_test_broker_has_client (tb, "a"));
  elbus_test_conn_op_acked (b, OP_MESSAGE, "a", "alive", RES_OK);
  elbus_test_conn_expect_message (a, KIND_MESSAGE, "b", NULL, "alive");

  elbus_test_broker_free (tb);
}

/* ------------------------------------------------------------------ */
/* Volume */

static GBytes *
pattern_bytes (gsize len,
               guint seed)
{
  guint8 *p = g_malloc (len);

  for (gsize i = 0; i < len; i++)
    p[i] = (guint8) ((i * 7 + seed) % 251);
  return g_bytes_new_take (p, len);
}

static void
test_large_payload (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, transport, "big.sender");
  g_autoptr(ElbusTestConn) b = elbus_test_conn_new (tb, transport, "big.receiver");
  g_autoptr(ElbusTestConn) c = elbus_test_conn_new (tb, transport, "big.subscriber");
  g_autoptr(GBytes) m1 = pattern_bytes (1024 * 1024, 3);
  g_autoptr(GBytes) m2 = pattern_bytes (1024 * 1024 + 17, 5);
  g_autoptr(GBytes) frame = NULL;
  GThread *thread;
  gsize len1, len2;
  const guint8 *p1 = g_bytes_get_data (m1, &len1);
  const guint8 *p2 = g_bytes_get_data (m2, &len2);

  g_test_summary ("1 MiB payloads are delivered intact, to one client and "
                  "fanned out to several");

  elbus_test_conn_subscribe (b, "big/#", NULL);
  elbus_test_conn_subscribe (c, "big/#", NULL);

  /* the send runs in a thread: 1 MiB does not fit in socket buffers */
  frame = elbus_test_build_op (77, OP_MESSAGE, ELBUS_QOS_PROCESSED, "big.receiver", p1, len1);
  thread = elbus_test_conn_send_in_thread (a, frame);
  elbus_test_conn_expect_frame (b, KIND_MESSAGE, "big.sender", NULL, p1, len1, FALSE);
  g_thread_join (thread);
  elbus_test_conn_expect_ack (a, 77, RES_OK);

  g_clear_pointer (&frame, g_bytes_unref);
  frame = elbus_test_build_op (78, OP_PUBLISH, ELBUS_QOS_REALTIME_PROCESSED, "big/data", p2, len2);
  thread = elbus_test_conn_send_in_thread (a, frame);
  elbus_test_conn_expect_frame (b, KIND_PUBLISH, "big.sender", "big/data", p2, len2, TRUE);
  elbus_test_conn_expect_frame (c, KIND_PUBLISH, "big.sender", "big/data", p2, len2, TRUE);
  g_thread_join (thread);
  elbus_test_conn_expect_ack (a, 78, RES_OK);

  elbus_test_broker_free (tb);
}

#define PIPELINE_COUNT 10000

static void
test_pipeline (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, transport, "pipe.sender");
  g_autoptr(ElbusTestConn) b = elbus_test_conn_new (tb, transport, "pipe.receiver");
  g_autoptr(GByteArray) all = g_byte_array_new ();
  g_autoptr(GBytes) bytes = NULL;
  GThread *thread;

  g_test_summary ("10,000 frames written at once are all delivered, in "
                  "order, and only the acknowledged one is acked");

  for (guint i = 0; i < PIPELINE_COUNT; i++)
    {
      char payload[16];
      int n = g_snprintf (payload, sizeof payload, "#%05u", i);
      ElbusQoS qos = i == PIPELINE_COUNT - 1 ? ELBUS_QOS_PROCESSED :
                     (i % 3 == 0 ? ELBUS_QOS_REALTIME : ELBUS_QOS_NO);
      g_autoptr(GBytes) f = elbus_test_build_op (i, OP_MESSAGE, qos,
                                                 "pipe.receiver", payload, n);

      g_byte_array_append (all, g_bytes_get_data (f, NULL), g_bytes_get_size (f));
    }
  bytes = g_byte_array_free_to_bytes (g_steal_pointer (&all));
  thread = elbus_test_conn_send_in_thread (a, bytes);

  for (guint i = 0; i < PIPELINE_COUNT; i++)
    {
      g_autoptr(ElbusTestFrame) f = elbus_test_conn_read_frame (b);
      char payload[16];
      int n = g_snprintf (payload, sizeof payload, "#%05u", i);

      g_assert_cmphex (f->kind, ==, KIND_MESSAGE);
      g_assert_cmpstr (f->sender, ==, "pipe.sender");
      g_assert_cmpmem (g_bytes_get_data (f->payload, NULL),
                       g_bytes_get_size (f->payload), payload, n);
      g_assert_cmpuint (f->byte5, ==, (i % 3 == 0 && i != PIPELINE_COUNT - 1) ? 1 : 0);
    }
  g_thread_join (thread);
  elbus_test_conn_expect_ack (a, PIPELINE_COUNT - 1, RES_OK);
  send_fence (a, b);
  expect_fence (b, a);

  elbus_test_broker_free (tb);
}

static void
test_dribble (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, transport, "drip");
  g_autoptr(ElbusTestConn) b = elbus_test_conn_new (tb, transport, "bucket");
  g_autoptr(GBytes) frame = elbus_test_build_op (0x01020304, OP_MESSAGE,
                                                 ELBUS_QOS_PROCESSED, "bucket",
                                                 "drop by drop", 12);
  gsize len;
  const guint8 *p = g_bytes_get_data (frame, &len);

  g_test_summary ("A frame written one byte at a time is reassembled and "
                  "delivered only once complete");

  for (gsize i = 0; i < len; i++)
    {
      elbus_test_conn_send (a, p + i, 1);
      if (i == len - 2)
        elbus_test_conn_expect_nothing (b, ELBUS_TEST_QUIET_MS);
      else if (i < len - 1)
        g_usleep (500);   /* pacing, so that the broker sees separate reads */
    }
  elbus_test_conn_expect_message (b, KIND_MESSAGE, "drip", NULL, "drop by drop");
  elbus_test_conn_expect_ack (a, 0x01020304, RES_OK);

  /* the connection is in a clean state afterwards */
  elbus_test_conn_op_acked (a, OP_MESSAGE, "bucket", "next", RES_OK);
  elbus_test_conn_expect_message (b, KIND_MESSAGE, "drip", NULL, "next");

  elbus_test_broker_free (tb);
}

static void
test_streaming_mid_frame (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBrokerOptions options = { .timeout = 0.4 };
  ElbusTestBroker *tb = elbus_test_broker_new (&options);
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, transport, "stream");
  g_autoptr(ElbusTestConn) b = elbus_test_conn_new (tb, transport, "sink");
  g_autoptr(GByteArray) all = g_byte_array_new ();
  const guint rounds = 10;
  gsize frame_len = 0, sent = 0;

  g_test_summary ("A client whose every write ends in the middle of a frame, but which "
                  "completes a frame more often than the timeout, is not taken for a "
                  "stalled one, however long it streams");

  for (guint i = 0; i <= rounds; i++)
    {
      g_autofree char *payload = g_strdup_printf ("frame %02u", i);
      g_autoptr(GBytes) frame = elbus_test_build_op (i + 1, OP_MESSAGE, ELBUS_QOS_NO, "sink",
                                                     payload, strlen (payload));

      frame_len = g_bytes_get_size (frame);
      g_byte_array_append (all, g_bytes_get_data (frame, NULL), frame_len);
    }

  /* every write ends half-way through a frame; 10 x 150 ms is well past
   * the 0.4 s timeout */
  for (guint i = 0; i < rounds; i++)
    {
      gsize upto = i * frame_len + frame_len + frame_len / 2;

      elbus_test_conn_send (a, all->data + sent, upto - sent);
      sent = upto;
      g_usleep (150 * 1000);
    }
  elbus_test_conn_send (a, all->data + sent, all->len - sent);

  for (guint i = 0; i <= rounds; i++)
    {
      g_autofree char *payload = g_strdup_printf ("frame %02u", i);

      elbus_test_conn_expect_message (b, KIND_MESSAGE, "stream", NULL, payload);
    }
  g_assert_true (elbus_test_broker_has_client (tb, "stream"));

  elbus_test_broker_free (tb);
}

/* ------------------------------------------------------------------ */
/* Bad input: the offender alone is dropped */

static void
expect_dropped_after (ElbusTestBroker    *tb,
                      ElbusTestTransport  transport,
                      const void         *bytes,
                      gsize               len)
{
  g_autoptr(ElbusTestConn) bad = elbus_test_conn_new (tb, transport, "bad.client");

  elbus_test_conn_send (bad, bytes, len);
  elbus_test_conn_expect_eof (bad);
  elbus_test_broker_wait_client (tb, "bad.client", FALSE);
}

static void
test_bad_unknown_op (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) good = elbus_test_conn_new (tb, transport, "good");
  static const guint8 ops[] = { 0x04, 0x10, 0x11, 0x14, 0x20, 0x3F };

  g_test_summary ("An unknown operation drops that connection only");

  for (gsize i = 0; i < G_N_ELEMENTS (ops); i++)
    for (ElbusQoS qos = ELBUS_QOS_NO; qos <= ELBUS_QOS_PROCESSED; qos++)
      {
        g_autoptr(GBytes) f = elbus_test_build_op (1, ops[i], qos, "good", "x", 1);

        g_test_message ("op 0x%02x qos %d", ops[i], qos);
        expect_dropped_after (tb, transport, g_bytes_get_data (f, NULL),
                              g_bytes_get_size (f));
      }

  send_fence (good, good);
  expect_fence (good, good);
  check_broker_works (tb, transport);
  elbus_test_broker_free (tb);
}

static void
test_bad_body (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) good = elbus_test_conn_new (tb, transport, "good");
  static const struct {
    guint8      op;
    const char *body;
    gsize       len;
  } cases[] = {
    { OP_MESSAGE, "good", 4 },                  /* no terminator */
    { OP_BROADCAST, "good", 4 },
    { OP_PUBLISH, "topic", 5 },
    { OP_MESSAGE, "", 0 },                      /* empty body */
    { OP_MESSAGE, "go\xff\xfe\0x", 6 },         /* invalid UTF-8 target */
    { OP_MESSAGE, "\xc3\0x", 3 },
    { OP_PUBLISH, "t/\xff\0x", 5 },             /* invalid UTF-8 topic */
    { OP_BROADCAST, "g\xff*\0x", 5 },           /* invalid UTF-8 mask */
    { OP_SUBSCRIBE, "ok\0t/\xff", 6 },           /* invalid UTF-8 subscription */
    { OP_UNSUBSCRIBE, "\xc3", 1 },
  };

  g_test_summary ("A missing target terminator or invalid UTF-8 in a "
                  "target, topic or mask drops that connection only");

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    for (ElbusQoS qos = ELBUS_QOS_NO; qos <= ELBUS_QOS_PROCESSED; qos++)
      {
        g_autoptr(GBytes) f = elbus_test_build_frame (9, cases[i].op, qos,
                                                      cases[i].body, cases[i].len);

        g_test_message ("case %" G_GSIZE_FORMAT " qos %d", i, qos);
        expect_dropped_after (tb, transport, g_bytes_get_data (f, NULL),
                              g_bytes_get_size (f));
      }

  /* "good" never got anything from the bad ones */
  send_fence (good, good);
  expect_fence (good, good);
  check_broker_works (tb, transport);
  elbus_test_broker_free (tb);
}

static void
test_bad_short_body (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBrokerOptions options = { .timeout = scaled_timeout (0.5) };
  ElbusTestBroker *tb = elbus_test_broker_new (&options);
  g_autoptr(ElbusTestConn) bad = elbus_test_conn_new (tb, transport, "slowpoke");
  g_autoptr(ElbusTestConn) good = elbus_test_conn_new (tb, transport, "good");
  static const guint8 partial[] = { 1, 0, 0, 0, OP_MESSAGE, 100, 0, 0, 0,
                                    'g', 'o', 'o', 'd', 0, 'x', 'y', 'z' };
  gint64 start;

  g_test_summary ("A body that stops short is awaited for the timeout, "
                  "then the connection is dropped; others are not stalled");

  elbus_test_conn_send (bad, partial, sizeof partial);
  start = g_get_monotonic_time ();

  /* the broker serves others while it waits */
  check_broker_works (tb, transport);
  elbus_test_conn_expect_eof (bad);
  g_assert_cmpint (g_get_monotonic_time () - start, >=, 250 * 1000);
  elbus_test_broker_wait_client (tb, "slowpoke", FALSE);

  /* nothing of the partial frame was delivered */
  send_fence (good, good);
  expect_fence (good, good);

  elbus_test_broker_free (tb);
}

static void
test_bad_too_long (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBrokerOptions options = { .timeout = 30, .max_frame_size = 4096 };
  ElbusTestBroker *tb = elbus_test_broker_new (&options);
  g_autoptr(ElbusTestConn) good = elbus_test_conn_new (tb, transport, "good");
  g_autoptr(GBytes) payload = pattern_bytes (3000, 1);
  static const guint8 over[] = { 1, 0, 0, 0, OP_MESSAGE, 0x00, 0x20, 0, 0 };   /* 8192 */
  static const guint8 huge[] = { 1, 0, 0, 0, OP_PUBLISH, 0xff, 0xff, 0xff, 0xff };

  g_test_summary ("An announced length over max-frame-size drops the "
                  "connection at once, without waiting for the body");

  /* below the limit: fine */
  {
    g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, transport, "a");
    guint32 op_id = elbus_test_conn_send_op (a, OP_MESSAGE, ELBUS_QOS_PROCESSED,
                                             "good", g_bytes_get_data (payload, NULL),
                                             g_bytes_get_size (payload));

    elbus_test_conn_expect_ack (a, op_id, RES_OK);
    elbus_test_conn_expect_frame (good, KIND_MESSAGE, "a", NULL,
                                  g_bytes_get_data (payload, NULL),
                                  g_bytes_get_size (payload), FALSE);
  }

  /* the broker's timeout is 30 s and the deadline 10 s: a broker that
   * waited for the body would fail this */
  expect_dropped_after (tb, transport, over, sizeof over);
  expect_dropped_after (tb, transport, huge, sizeof huge);

  check_broker_works (tb, transport);
  elbus_test_broker_free (tb);
}

static void
test_bad_huge_default (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  static const guint8 huge[] = { 1, 0, 0, 0, OP_MESSAGE, 0xff, 0xff, 0xff, 0xff };
  static const guint8 big[] = { 1, 0, 0, 0, OP_MESSAGE, 0x01, 0x00, 0x00, 0x04 };   /* 64 MiB + 1 */

  g_test_summary ("With the default limit, a 4 GiB or 64 MiB + 1 announced "
                  "length drops the connection");

  expect_dropped_after (tb, transport, huge, sizeof huge);
  expect_dropped_after (tb, transport, big, sizeof big);
  check_broker_works (tb, transport);
  elbus_test_broker_free (tb);
}

static void
test_bad_slow_consumer (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBrokerOptions options = { .timeout = 30, .queue_size = 16 };
  ElbusTestBroker *tb = elbus_test_broker_new (&options);
  g_autoptr(ElbusTestConn) stuck = elbus_test_conn_new (tb, transport, "stuck");
  g_autoptr(ElbusTestConn) sender = elbus_test_conn_new (tb, transport, "sender");
  g_autoptr(ElbusTestConn) other = elbus_test_conn_new (tb, transport, "other");
  g_autoptr(GBytes) payload = pattern_bytes (256 * 1024, 9);
  guint sent = 0;
  guint8 result = RES_OK;
  gsize drained;

  g_test_summary ("A client that never reads overflows its queue and is "
                  "dropped alone; a sender asking for an ack gets 77");

  while (result == RES_OK)
    {
      guint32 op_id;
      g_autoptr(ElbusTestFrame) ack = NULL;

      g_assert_cmpuint (sent, <, 2000);
      op_id = elbus_test_conn_send_op (sender, OP_MESSAGE, ELBUS_QOS_PROCESSED,
                                       "stuck", g_bytes_get_data (payload, NULL),
                                       g_bytes_get_size (payload));
      sent++;
      ack = elbus_test_conn_read_frame (sender);
      g_assert_cmphex (ack->kind, ==, 0xFE);
      g_assert_cmpuint (ack->op_id, ==, op_id);
      result = ack->result;

      /* others are served while the queue fills */
      if (sent % 8 == 0)
        {
          elbus_test_conn_op_acked (other, OP_MESSAGE, "sender", "hi", RES_OK);
          elbus_test_conn_expect_message (sender, KIND_MESSAGE, "other", NULL, "hi");
        }
    }
  g_assert_cmphex (result, ==, RES_NOT_DELIVERED);
  g_test_message ("overflow after %u frames of 256 KiB", sent);

  /* the stuck client was dropped: it reads what was flushed, then EOF */
  drained = elbus_test_conn_drain_until_eof (stuck, ELBUS_TEST_DEADLINE_MS);
  g_assert_cmpuint (drained, <, (gsize) sent * (6 + 7 + 256 * 1024));
  elbus_test_broker_wait_client (tb, "stuck", FALSE);
  elbus_test_broker_wait_event (tb, "-stuck");
  elbus_test_conn_op_acked (sender, OP_MESSAGE, "stuck", "gone?", RES_NOT_REGISTERED);

  /* the sender and the others were not affected */
  elbus_test_conn_op_acked (sender, OP_MESSAGE, "other", "still here", RES_OK);
  elbus_test_conn_expect_message (other, KIND_MESSAGE, "sender", NULL, "still here");
  check_broker_works (tb, transport);

  elbus_test_broker_free (tb);
}

static void
test_bad_stuck_writer (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  /* the timeout also bounds the sender's 8 MiB frame as it arrives
   * (a half-read frame), which under ASan on a busy machine took more
   * than 0.5 s: long enough for that, short enough for a quick test */
  ElbusTestBrokerOptions options = { .timeout = scaled_timeout (2.0) };
  ElbusTestBroker *tb = elbus_test_broker_new (&options);
  g_autoptr(ElbusTestConn) stuck = elbus_test_conn_new (tb, transport, "stuck");
  g_autoptr(ElbusTestConn) sender = elbus_test_conn_new (tb, transport, "sender");
  /* more than the kernel buffers of both sockets hold, with the stuck
   * end's receive buffer kept small */
  g_autoptr(GBytes) payload = pattern_bytes (8 * 1024 * 1024, 2);
  g_autoptr(GBytes) frame = NULL;
  GThread *thread;
  gint64 start;

  g_test_summary ("A client whose socket accepts no data for the timeout "
                  "is dropped, though its queue never overflowed");

  elbus_test_conn_set_rcvbuf (stuck, 16 * 1024);
  frame = elbus_test_build_op (42, OP_MESSAGE, ELBUS_QOS_PROCESSED, "stuck",
                               g_bytes_get_data (payload, NULL),
                               g_bytes_get_size (payload));
  thread = elbus_test_conn_send_in_thread (sender, frame);
  g_thread_join (thread);
  start = g_get_monotonic_time ();
  elbus_test_conn_expect_ack (sender, 42, RES_OK);

  /* without reading from it: reading would be progress */
  elbus_test_broker_wait_client (tb, "stuck", FALSE);
  g_test_message ("dropped %" G_GINT64_FORMAT " ms after the ack",
                  (g_get_monotonic_time () - start) / 1000);
  elbus_test_conn_drain_until_eof (stuck, ELBUS_TEST_DEADLINE_MS);

  elbus_test_conn_op_acked (sender, OP_MESSAGE, "stuck", "x", RES_NOT_REGISTERED);
  check_broker_works (tb, transport);
  elbus_test_broker_free (tb);
}

static void
test_bad_after_good_frames (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) bad = elbus_test_conn_new (tb, transport, "bad.client");
  g_autoptr(ElbusTestConn) good = elbus_test_conn_new (tb, transport, "good");
  g_autoptr(GByteArray) all = g_byte_array_new ();
  g_autoptr(GBytes) m1 = elbus_test_build_op (1, OP_MESSAGE, ELBUS_QOS_NO, "good", "first", 5);
  g_autoptr(GBytes) m2 = elbus_test_build_op (2, OP_MESSAGE, ELBUS_QOS_NO, "good", "second", 6);
  g_autoptr(GBytes) junk = elbus_test_build_op (3, 0x05, ELBUS_QOS_NO, "good", "junk", 4);
  g_autoptr(GBytes) m3 = elbus_test_build_op (4, OP_MESSAGE, ELBUS_QOS_NO, "good", "third", 5);

  g_test_summary ("Frames before a protocol error in the same read are "
                  "routed; nothing after it is");

  g_byte_array_append (all, g_bytes_get_data (m1, NULL), g_bytes_get_size (m1));
  g_byte_array_append (all, g_bytes_get_data (m2, NULL), g_bytes_get_size (m2));
  g_byte_array_append (all, g_bytes_get_data (junk, NULL), g_bytes_get_size (junk));
  g_byte_array_append (all, g_bytes_get_data (m3, NULL), g_bytes_get_size (m3));
  elbus_test_conn_send (bad, all->data, all->len);

  elbus_test_conn_expect_eof (bad);
  elbus_test_broker_wait_client (tb, "bad.client", FALSE);
  elbus_test_conn_expect_message (good, KIND_MESSAGE, "bad.client", NULL, "first");
  elbus_test_conn_expect_message (good, KIND_MESSAGE, "bad.client", NULL, "second");
  send_fence (good, good);
  expect_fence (good, good);

  elbus_test_broker_free (tb);
}

static void
test_bad_slow_subscriber (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBrokerOptions options = { .timeout = 30, .queue_size = 16 };
  ElbusTestBroker *tb = elbus_test_broker_new (&options);
  g_autoptr(ElbusTestConn) stuck = elbus_test_conn_new (tb, transport, "stuck");
  g_autoptr(ElbusTestConn) reader = elbus_test_conn_new (tb, transport, "reader");
  g_autoptr(ElbusTestConn) pub = elbus_test_conn_new (tb, transport, "pub");
  g_autoptr(GBytes) payload = pattern_bytes (256 * 1024, 4);
  gsize len;
  const guint8 *p = g_bytes_get_data (payload, &len);
  guint sent = 0;

  g_test_summary ("A subscriber that never reads is dropped when its queue "
                  "overflows; the other subscribers get every publication");

  elbus_test_conn_subscribe (stuck, "feed/#", NULL);
  elbus_test_conn_subscribe (reader, "feed/#", NULL);

  while (elbus_test_broker_has_client (tb, "stuck"))
    {
      guint32 op_id;
      g_autoptr(ElbusTestFrame) ack = NULL;

      g_assert_cmpuint (sent, <, 2000);
      op_id = elbus_test_conn_send_op (pub, OP_PUBLISH, ELBUS_QOS_PROCESSED,
                                       "feed/data", p, len);
      sent++;
      elbus_test_conn_expect_frame (reader, KIND_PUBLISH, "pub", "feed/data",
                                    p, len, FALSE);
      /* the ack result for a fan-out with one overflow is the broker's
       * choice; that it comes is not */
      ack = elbus_test_conn_read_frame (pub);
      g_assert_cmphex (ack->kind, ==, 0xFE);
      g_assert_cmpuint (ack->op_id, ==, op_id);
    }
  g_test_message ("subscriber dropped after %u publications of 256 KiB", sent);
  elbus_test_conn_drain_until_eof (stuck, ELBUS_TEST_DEADLINE_MS);

  /* the publisher and the reader carry on */
  elbus_test_conn_op_acked (pub, OP_PUBLISH, "feed/data", "small", RES_OK);
  elbus_test_conn_expect_message (reader, KIND_PUBLISH, "pub", "feed/data", "small");
  check_broker_works (tb, transport);

  elbus_test_broker_free (tb);
}

static void
test_bad_disconnect_mid_frame (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) good = elbus_test_conn_new (tb, transport, "good");
  static const guint8 partial_body[] = { 1, 0, 0, 0, OP_MESSAGE, 10, 0, 0, 0, 'g', 'o' };
  static const guint8 partial_header[] = { 1, 0, 0, 0, OP_MESSAGE };

  g_test_summary ("A client that hangs up in the middle of a frame is "
                  "unregistered; nothing of the frame is delivered");

  for (int i = 0; i < 2; i++)
    {
      g_autoptr(ElbusTestConn) bad = elbus_test_conn_new (tb, transport, "quitter");

      if (i == 0)
        elbus_test_conn_send (bad, partial_body, sizeof partial_body);
      else
        elbus_test_conn_send (bad, partial_header, sizeof partial_header);
      elbus_test_conn_close (bad);
      elbus_test_broker_wait_client (tb, "quitter", FALSE);
    }

  send_fence (good, good);
  expect_fence (good, good);
  check_broker_works (tb, transport);
  elbus_test_broker_free (tb);
}

/* ------------------------------------------------------------------ */
/* Broker API */

static void
test_api_force_disconnect (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) victim = elbus_test_conn_new (tb, transport, "victim");
  g_autoptr(ElbusTestConn) sec = elbus_test_conn_new (tb, transport, "victim%%s");
  g_autoptr(ElbusTestConn) other = elbus_test_conn_new (tb, transport, "other");

  g_test_summary ("force_disconnect drops a client by name, and its "
                  "secondaries with it");

  g_assert_false (elbus_test_broker_force_disconnect (tb, "nobody"));
  g_assert_true (elbus_test_broker_force_disconnect (tb, "victim"));
  elbus_test_conn_expect_eof (victim);
  elbus_test_conn_expect_eof (sec);
  elbus_test_broker_wait_client (tb, "victim", FALSE);
  elbus_test_broker_wait_client (tb, "victim%%s", FALSE);
  g_assert_false (elbus_test_broker_force_disconnect (tb, "victim"));

  elbus_test_conn_op_acked (other, OP_MESSAGE, "victim", "x", RES_NOT_REGISTERED);
  check_broker_works (tb, transport);
  elbus_test_broker_free (tb);
}

static void
test_api_disconnect_client (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) victim = elbus_test_conn_new (tb, transport, "victim");
  g_autoptr(ElbusTestConn) sec = elbus_test_conn_new (tb, transport, "victim%%s");
  g_autoptr(ElbusTestConn) deaf = elbus_test_conn_new (tb, transport, "deaf");
  g_autoptr(ElbusTestConn) other = elbus_test_conn_new (tb, transport, "other");

  g_test_summary ("disconnect_client writes what is queued for the client, tells it "
                  "why on .broker/warn, then closes it and its secondaries; a client "
                  "unsubscribed from .broker/warn only sees the close");

  g_assert_false (elbus_test_broker_disconnect_client (tb, "nobody", "why"));

  /* queued before: still delivered, then the notice, then the end */
  elbus_test_conn_op_acked (other, OP_MESSAGE, "victim", "before", RES_OK);
  g_assert_true (elbus_test_broker_disconnect_client (tb, "victim", "policy changed"));
  elbus_test_conn_expect_message (victim, KIND_MESSAGE, "other", NULL, "before");
  elbus_test_conn_expect_disconnect_notice (victim, "policy changed");
  elbus_test_conn_expect_eof (victim);
  elbus_test_conn_expect_eof (sec);
  elbus_test_broker_wait_client (tb, "victim", FALSE);
  elbus_test_broker_wait_client (tb, "victim%%s", FALSE);
  g_assert_false (elbus_test_broker_disconnect_client (tb, "victim", "again"));
  elbus_test_conn_op_acked (other, OP_MESSAGE, "victim", "x", RES_NOT_REGISTERED);

  /* one whose socket is full when it is disconnected: the rest of its
   * queue and the notice reach it once it reads, then the end */
  {
    g_autoptr(ElbusTestConn) full = elbus_test_conn_new (tb, transport, "full");
    g_autoptr(GBytes) payload = pattern_bytes (64 * 1024, 3);

    for (guint i = 0; i < 128; i++)
      elbus_test_conn_send_op (other, OP_MESSAGE, ELBUS_QOS_NO, "full",
                               g_bytes_get_data (payload, NULL), g_bytes_get_size (payload));
    elbus_test_conn_op_acked (other, OP_MESSAGE, "full", "last", RES_OK);
    g_assert_true (elbus_test_broker_disconnect_client (tb, "full", "full up"));
    for (guint i = 0; i < 128; i++)
      elbus_test_conn_expect_frame (full, KIND_MESSAGE, "other", NULL,
                                    g_bytes_get_data (payload, NULL),
                                    g_bytes_get_size (payload), FALSE);
    elbus_test_conn_expect_message (full, KIND_MESSAGE, "other", NULL, "last");
    elbus_test_conn_expect_disconnect_notice (full, "full up");
    elbus_test_conn_expect_eof (full);
    elbus_test_broker_wait_client (tb, "full", FALSE);
  }

  /* an original client that unsubscribed gets nothing it did not ask for */
  elbus_test_conn_unsubscribe (deaf, ".broker/warn", NULL);
  g_assert_true (elbus_test_broker_disconnect_client (tb, "deaf", "policy changed"));
  elbus_test_conn_expect_eof (deaf);
  elbus_test_broker_wait_client (tb, "deaf", FALSE);

  check_broker_works (tb, transport);
  elbus_test_broker_free (tb);
}

static void
assert_stats_delta (const ElbusStats *before,
                    const ElbusStats *after,
                    guint64           r_frames,
                    guint64           r_bytes,
                    guint64           w_frames,
                    guint64           w_bytes)
{
  g_assert_cmpuint (after->r_frames - before->r_frames, ==, r_frames);
  g_assert_cmpuint (after->r_bytes - before->r_bytes, ==, r_bytes);
  g_assert_cmpuint (after->w_frames - before->w_frames, ==, w_frames);
  g_assert_cmpuint (after->w_bytes - before->w_bytes, ==, w_bytes);
}

static void
test_api_stats (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, transport, "a");
  g_autoptr(ElbusTestConn) b = elbus_test_conn_new (tb, transport, "bb");
  ElbusStats s0, s1, a0, a1, b0, b1, dummy;
  guint queue_len = 99;
  guint32 op_id;

  g_test_summary ("Broker and client counters count frames and bytes, "
                  "headers included, acks included");

  elbus_test_broker_get_stats (tb, &s0);
  g_assert_true (elbus_test_broker_get_client_stats (tb, "a", &a0, NULL));
  g_assert_true (elbus_test_broker_get_client_stats (tb, "bb", &b0, &queue_len));
  g_assert_false (elbus_test_broker_get_client_stats (tb, "nobody", &dummy, NULL));

  /* a -> bb, "hello", QoS 1: read 9 + 3 + 5 = 17 bytes; written to bb
   * 6 + 2 + 5 = 13 bytes, to a an ack of 6 */
  op_id = elbus_test_conn_send_op (a, OP_MESSAGE, ELBUS_QOS_PROCESSED, "bb", "hello", 5);
  elbus_test_conn_expect_ack (a, op_id, RES_OK);
  elbus_test_conn_expect_message (b, KIND_MESSAGE, "a", NULL, "hello");

  elbus_test_broker_get_stats (tb, &s1);
  g_assert_true (elbus_test_broker_get_client_stats (tb, "a", &a1, NULL));
  g_assert_true (elbus_test_broker_get_client_stats (tb, "bb", &b1, &queue_len));
  assert_stats_delta (&s0, &s1, 1, 17, 2, 19);
  assert_stats_delta (&a0, &a1, 1, 17, 1, 6);
  assert_stats_delta (&b0, &b1, 0, 0, 1, 13);
  g_assert_cmpuint (queue_len, ==, 0);

  /* a publication to two subscribers: one read, two writes */
  elbus_test_conn_subscribe (a, "s/t", NULL);
  elbus_test_conn_subscribe (b, "s/#", NULL);
  elbus_test_broker_get_stats (tb, &s0);
  elbus_test_conn_send_op (b, OP_PUBLISH, ELBUS_QOS_NO, "s/t", "xyz", 3);
  elbus_test_conn_expect_message (a, KIND_PUBLISH, "bb", "s/t", "xyz");
  elbus_test_conn_expect_message (b, KIND_PUBLISH, "bb", "s/t", "xyz");
  elbus_test_broker_get_stats (tb, &s1);
  /* read 9 + 4 + 3; each delivery 6 + 3 + 4 + 3 = 16 */
  assert_stats_delta (&s0, &s1, 1, 16, 2, 32);

  elbus_test_broker_free (tb);
}

static void
test_api_signals (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GPtrArray) ours = g_ptr_array_new ();

  g_test_summary ("client-registered and client-unregistered are emitted "
                  "once per registration, not for refused names");

  {
    g_autoptr(ElbusTestConn) a G_GNUC_UNUSED = elbus_test_conn_new (tb, transport, "sig.a");

    elbus_test_broker_wait_event (tb, "+sig.a");
    expect_name_refused (tb, transport, "sig.a", 5, RES_BUSY);
    expect_name_refused (tb, transport, "", 0, RES_DATA);
    {
      g_autoptr(ElbusTestConn) b G_GNUC_UNUSED = elbus_test_conn_new (tb, transport, "sig.b");

      elbus_test_broker_wait_event (tb, "+sig.b");
    }
    elbus_test_broker_wait_event (tb, "-sig.b");
  }
  elbus_test_broker_wait_event (tb, "-sig.a");

  events = elbus_test_broker_dup_events (tb);
  for (guint i = 0; i < events->len; i++)
    {
      const char *e = events->pdata[i];

      /* the broker's own clients, if any, are not ours */
      if (e[1] != '.')
        g_ptr_array_add (ours, (gpointer) e);
    }
  g_assert_cmpuint (ours->len, ==, 4);
  g_assert_cmpstr (ours->pdata[0], ==, "+sig.a");
  g_assert_cmpstr (ours->pdata[1], ==, "+sig.b");
  g_assert_cmpstr (ours->pdata[2], ==, "-sig.b");
  g_assert_cmpstr (ours->pdata[3], ==, "-sig.a");

  elbus_test_broker_free (tb);
}

static void
test_api_list_clients (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, transport, "list.a");
  g_autoptr(ElbusTestConn) b G_GNUC_UNUSED = elbus_test_conn_new (tb, transport, "list.b");
  g_auto(GStrv) names = NULL;

  g_test_summary ("list_clients and has_client see registered clients only");

  names = elbus_test_broker_list_clients (tb);
  g_assert_true (g_strv_contains ((const char *const *) names, "list.a"));
  g_assert_true (g_strv_contains ((const char *const *) names, "list.b"));
  for (guint i = 0; names[i] != NULL; i++)
    g_assert_true (names[i][0] == '.' || g_str_has_prefix (names[i], "list."));
  g_assert_true (elbus_test_broker_has_client (tb, "list.a"));
  g_assert_false (elbus_test_broker_has_client (tb, "list.c"));

  elbus_test_conn_close (a);
  elbus_test_broker_wait_client (tb, "list.a", FALSE);
  g_clear_pointer (&names, g_strfreev);
  names = elbus_test_broker_list_clients (tb);
  g_assert_false (g_strv_contains ((const char *const *) names, "list.a"));
  g_assert_true (g_strv_contains ((const char *const *) names, "list.b"));

  elbus_test_broker_free (tb);
}

typedef struct {
  GSocket    *socket;
  const char *bind_string;
  gboolean    ok;
  GError     *error;
} AddSocket;

static void
add_socket_func (ElbusBroker *broker,
                 gpointer     data)
{
  AddSocket *a = data;

  a->ok = elbus_broker_add_socket (broker, a->socket, a->bind_string, &a->error);
}

static void
add_socket_listening (ElbusTestTransport transport)
{
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GSocketAddress) bound = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *path = NULL;
  g_autofree char *connect_to = NULL;
  g_autoptr(ElbusTestConn) a = NULL;
  g_autoptr(ElbusTestConn) b = NULL;
  AddSocket add = { NULL };

  if (transport == ELBUS_TEST_TRANSPORT_UNIX)
    {
      dir = g_dir_make_tmp ("elbus-test-XXXXXX", &error);
      g_assert_no_error (error);
      path = g_build_filename (dir, "adopted.sock", NULL);
      socket = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
                             G_SOCKET_PROTOCOL_DEFAULT, &error);
      g_assert_no_error (error);
      address = g_unix_socket_address_new (path);
      connect_to = g_strdup (path);
    }
  else
    {
      g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);

      socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                             G_SOCKET_PROTOCOL_TCP, &error);
      g_assert_no_error (error);
      address = g_inet_socket_address_new (loopback, 0);
    }
  g_socket_bind (socket, address, TRUE, &error);
  g_assert_no_error (error);
  g_socket_listen (socket, &error);
  g_assert_no_error (error);
  if (connect_to == NULL)
    {
      bound = g_socket_get_local_address (socket, &error);
      g_assert_no_error (error);
      connect_to = g_strdup_printf ("127.0.0.1:%u",
                                    g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));
    }

  add.socket = socket;
  add.bind_string = connect_to;
  elbus_test_broker_invoke (tb, add_socket_func, &add);
  g_assert_no_error (add.error);
  g_assert_true (add.ok);

  a = elbus_test_conn_new_address (connect_to, "adopted.a");
  b = elbus_test_conn_new (tb, transport, "adopted.b");
  elbus_test_conn_op_acked (a, OP_MESSAGE, "adopted.b", "via adopted socket", RES_OK);
  elbus_test_conn_expect_message (b, KIND_MESSAGE, "adopted.a", NULL, "via adopted socket");

  g_clear_pointer (&a, elbus_test_conn_free);
  g_clear_pointer (&b, elbus_test_conn_free);
  elbus_test_broker_free (tb);
  if (path != NULL)
    {
      (void) g_remove (path);
      (void) g_rmdir (dir);
    }
}

static void
test_api_add_socket_listening (gconstpointer data)
{
  g_test_summary ("add_socket adopts a socket that is already listening, "
                  "as socket activation passes them");

  /* in a child: a critical there fails this test, not the whole run */
  if (g_test_subprocess ())
    {
      add_socket_listening (TRANSPORT (data));
      return;
    }
  g_test_trap_subprocess (NULL, elbus_test_scale_ms (60000) * G_GUINT64_CONSTANT (1000),
                          G_TEST_SUBPROCESS_INHERIT_STDERR);
  g_test_trap_assert_passed ();
}

static void
count_notify_cb (GObject    *object,
                 GParamSpec *pspec,
                 gpointer    user_data)
{
  GHashTable *counts = user_data;
  const char *name = g_param_spec_get_name (pspec);

  g_hash_table_insert (counts, (gpointer) name,
                       GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (counts, name)) + 1));
}

static guint
notify_count (GHashTable *counts,
              const char *name)
{
  return GPOINTER_TO_UINT (g_hash_table_lookup (counts, name));
}

static void
test_api_properties (void)
{
  g_autoptr(ElbusBroker) broker = elbus_broker_new ();
  g_autoptr(GHashTable) counts = g_hash_table_new (g_str_hash, g_str_equal);
  double timeout = 0;
  guint queue_size = 0, buf_size = 0, buf_ttl = 99, max_frame_size = 0;

  g_test_summary ("Broker properties: documented defaults, getters match "
                  "g_object_get, notify only on change");

  g_assert_cmpfloat (elbus_broker_get_timeout (broker), ==, ELBUS_BROKER_DEFAULT_TIMEOUT);
  g_assert_cmpuint (elbus_broker_get_queue_size (broker), ==, ELBUS_BROKER_DEFAULT_QUEUE_SIZE);
  g_assert_cmpuint (elbus_broker_get_buf_size (broker), ==, ELBUS_BROKER_DEFAULT_BUF_SIZE);
  g_assert_cmpuint (elbus_broker_get_buf_ttl (broker), ==, ELBUS_BROKER_DEFAULT_BUF_TTL);
  g_assert_cmpuint (elbus_broker_get_max_frame_size (broker), ==, ELBUS_BROKER_DEFAULT_MAX_FRAME_SIZE);
  g_assert_cmpuint (ELBUS_BROKER_DEFAULT_MAX_FRAME_SIZE, ==, 64 * 1024 * 1024);

  g_signal_connect (broker, "notify", G_CALLBACK (count_notify_cb), counts);

  /* same values: no notification */
  elbus_broker_set_timeout (broker, ELBUS_BROKER_DEFAULT_TIMEOUT);
  elbus_broker_set_queue_size (broker, ELBUS_BROKER_DEFAULT_QUEUE_SIZE);
  g_object_set (broker, "buf-ttl", ELBUS_BROKER_DEFAULT_BUF_TTL, NULL);
  g_assert_cmpuint (g_hash_table_size (counts), ==, 0);

  elbus_broker_set_timeout (broker, 0.25);
  elbus_broker_set_queue_size (broker, 100);
  elbus_broker_set_buf_size (broker, 4096);
  elbus_broker_set_buf_ttl (broker, 0);
  elbus_broker_set_max_frame_size (broker, 1024);
  elbus_broker_set_max_frame_size (broker, 1024);
  g_assert_cmpuint (notify_count (counts, "timeout"), ==, 1);
  g_assert_cmpuint (notify_count (counts, "queue-size"), ==, 1);
  g_assert_cmpuint (notify_count (counts, "buf-size"), ==, 1);
  g_assert_cmpuint (notify_count (counts, "buf-ttl"), ==, 1);
  g_assert_cmpuint (notify_count (counts, "max-frame-size"), ==, 1);

  g_object_get (broker,
                "timeout", &timeout,
                "queue-size", &queue_size,
                "buf-size", &buf_size,
                "buf-ttl", &buf_ttl,
                "max-frame-size", &max_frame_size,
                NULL);
  g_assert_cmpfloat (timeout, ==, 0.25);
  g_assert_cmpuint (queue_size, ==, 100);
  g_assert_cmpuint (buf_size, ==, 4096);
  g_assert_cmpuint (buf_ttl, ==, 0);
  g_assert_cmpuint (max_frame_size, ==, 1024);

  g_object_set (broker, "queue-size", 7u, NULL);
  g_assert_cmpuint (elbus_broker_get_queue_size (broker), ==, 7);
  g_assert_cmpuint (notify_count (counts, "queue-size"), ==, 2);

  /* a broker that never listened closes cleanly, twice */
  elbus_broker_close (broker);
  elbus_broker_close (broker);
}

/* ------------------------------------------------------------------ */
/* Many clients */

#define MANY_CLIENTS 500

static void
test_many_clients (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  ElbusTestConn **conns = g_new0 (ElbusTestConn *, MANY_CLIENTS);
  g_autoptr(ElbusTestConn) sender = NULL;
  g_auto(GStrv) names = NULL;
  guint ours = 0;
  guint32 op_id;

  g_test_summary ("500 concurrent clients all register and each receives "
                  "a broadcast");

  for (guint i = 0; i < MANY_CLIENTS; i++)
    {
      g_autofree char *name = g_strdup_printf ("many.c%03u", i);

      conns[i] = elbus_test_conn_new (tb, transport, name);
    }
  sender = elbus_test_conn_new (tb, transport, "sender");

  names = elbus_test_broker_list_clients (tb);
  for (guint i = 0; names[i] != NULL; i++)
    if (g_str_has_prefix (names[i], "many.c"))
      ours++;
  g_assert_cmpuint (ours, ==, MANY_CLIENTS);

  op_id = elbus_test_conn_send_op (sender, OP_BROADCAST, ELBUS_QOS_PROCESSED,
                                   "many.*", "to all", 6);
  elbus_test_conn_expect_ack (sender, op_id, RES_OK);
  for (guint i = 0; i < MANY_CLIENTS; i++)
    elbus_test_conn_expect_message (conns[i], KIND_BROADCAST, "sender", NULL, "to all");

  /* and each can still be reached alone */
  for (guint i = 0; i < MANY_CLIENTS; i += 50)
    {
      elbus_test_conn_send_op (sender, OP_MESSAGE, ELBUS_QOS_NO,
                               conns[i]->name, "just you", 8);
      elbus_test_conn_expect_message (conns[i], KIND_MESSAGE, "sender", NULL, "just you");
    }

  for (guint i = 0; i < MANY_CLIENTS; i++)
    elbus_test_conn_free (conns[i]);
  g_free (conns);
  elbus_test_broker_free (tb);
}

/* ------------------------------------------------------------------ */
/* The dispatcher: one epoll fd, a ready list, deadline lists */

/* Holds the broker's thread still, so that what the test writes meanwhile
 * is all ready in the broker's next wake-up. */
typedef struct {
  GMutex   mutex;
  GCond    cond;
  gboolean entered;
  gboolean released;
} Gate;

static gboolean
gate_block_cb (gpointer data)
{
  Gate *gate = data;

  g_mutex_lock (&gate->mutex);
  gate->entered = TRUE;
  g_cond_broadcast (&gate->cond);
  while (!gate->released)
    g_cond_wait (&gate->cond, &gate->mutex);
  g_mutex_unlock (&gate->mutex);
  return G_SOURCE_REMOVE;
}

static void
gate_attach_func (ElbusBroker *broker,
                  gpointer     data)
{
  GSource *source = g_idle_source_new ();

  g_source_set_callback (source, gate_block_cb, data, NULL);
  g_source_attach (source, g_main_context_get_thread_default ());
  g_source_unref (source);
}

static void
gate_close (ElbusTestBroker *tb,
            Gate            *gate)
{
  g_mutex_init (&gate->mutex);
  g_cond_init (&gate->cond);
  gate->entered = gate->released = FALSE;
  elbus_test_broker_invoke (tb, gate_attach_func, gate);
  g_mutex_lock (&gate->mutex);
  while (!gate->entered)
    g_cond_wait (&gate->cond, &gate->mutex);
  g_mutex_unlock (&gate->mutex);
}

static void
gate_open (Gate *gate)
{
  g_mutex_lock (&gate->mutex);
  gate->released = TRUE;
  g_cond_broadcast (&gate->cond);
  g_mutex_unlock (&gate->mutex);
}

static void
gate_clear (Gate *gate)
{
  g_mutex_clear (&gate->mutex);
  g_cond_clear (&gate->cond);
}

static guint
scaled_count (guint n)
{
  return elbus_test_under_valgrind () ? n / 5 : n;
}

/* @n registered connections named PREFIX, then a number of @digits. */
static GPtrArray *
connect_many (ElbusTestBroker    *tb,
              ElbusTestTransport  transport,
              const char         *prefix,
              guint               digits,
              guint               n)
{
  GPtrArray *conns = g_ptr_array_new_with_free_func ((GDestroyNotify) elbus_test_conn_free);

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *name = g_strdup_printf ("%s%0*u", prefix, (int) digits, i);

      g_ptr_array_add (conns, elbus_test_conn_new (tb, transport, name));
    }
  return conns;
}

static void
test_dispatch_many_ready (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  /* more than one epoll_wait() and one dispatch take */
  guint n = 300;
  g_autoptr(GPtrArray) conns = connect_many (tb, transport, "ready.", 3, n);
  g_autoptr(ElbusTestConn) sink = elbus_test_conn_new (tb, transport, "sink");
  g_autofree guint *seen = g_new0 (guint, n);
  Gate gate;

  g_test_summary ("Hundreds of connections that become ready in the same "
                  "wake-up, more than one dispatch serves, are all served: "
                  "both frames of each arrive and every sender gets its acks");

  gate_close (tb, &gate);
  for (guint i = 0; i < n; i++)
    {
      ElbusTestConn *c = g_ptr_array_index (conns, i);
      g_autofree char *payload = g_strdup_printf ("%03u", i);
      /* two frames in one write: both are routed in the same turn */
      g_autoptr(GBytes) f1 = elbus_test_build_op (1, OP_MESSAGE, ELBUS_QOS_PROCESSED, "sink",
                                                  payload, 3);
      g_autoptr(GBytes) f2 = elbus_test_build_op (2, OP_MESSAGE, ELBUS_QOS_PROCESSED, "sink",
                                                  payload, 3);
      g_autoptr(GByteArray) both = g_byte_array_new ();

      g_byte_array_append (both, g_bytes_get_data (f1, NULL), g_bytes_get_size (f1));
      g_byte_array_append (both, g_bytes_get_data (f2, NULL), g_bytes_get_size (f2));
      elbus_test_conn_send (c, both->data, both->len);
    }
  gate_open (&gate);

  for (guint i = 0; i < 2 * n; i++)
    {
      g_autoptr(ElbusTestFrame) frame = elbus_test_conn_read_frame (sink);
      guint index;

      g_assert_cmpuint (frame->kind, ==, KIND_MESSAGE);
      g_assert_true (g_str_has_prefix (frame->sender, "ready."));
      index = g_ascii_strtoull (frame->sender + 6, NULL, 10);
      g_assert_cmpuint (index, <, n);
      g_assert_cmpuint (seen[index], <, 2);
      seen[index]++;
      g_assert_cmpmem (g_bytes_get_data (frame->payload, NULL),
                       g_bytes_get_size (frame->payload), frame->sender + 6, 3);
    }
  for (guint i = 0; i < n; i++)
    {
      elbus_test_conn_expect_ack (g_ptr_array_index (conns, i), 1, RES_OK);
      elbus_test_conn_expect_ack (g_ptr_array_index (conns, i), 2, RES_OK);
    }
  elbus_test_conn_expect_nothing (sink, 50);

  gate_clear (&gate);
  check_broker_works (tb, transport);
  elbus_test_broker_free (tb);
}

static void
test_dispatch_close_in_batch (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  guint n = 50;
  g_autoptr(ElbusTestConn) primary = elbus_test_conn_new (tb, transport, "prim");
  g_autoptr(GPtrArray) secondaries = connect_many (tb, transport, "prim%%s", 2, n);
  g_autoptr(GPtrArray) others = connect_many (tb, transport, "other.", 2, n);
  g_autoptr(ElbusTestConn) sink = elbus_test_conn_new (tb, transport, "sink");
  static const guint8 bad_op[] = { 1, 0, 0, 0, 0x05, 0, 0, 0, 0 };
  guint from_others = 0;
  Gate gate;

  g_test_summary ("A connection closed while others of the same epoll batch "
                  "wait to be served (a primary's protocol error takes its "
                  "secondaries, ready behind it, along) is skipped; the rest "
                  "of the batch is served");

  gate_close (tb, &gate);
  /* the primary's bad frame is the first event of the batch */
  elbus_test_conn_send (primary, bad_op, sizeof bad_op);
  for (guint i = 0; i < n; i++)
    {
      elbus_test_conn_send_op (g_ptr_array_index (secondaries, i), OP_MESSAGE,
                               ELBUS_QOS_PROCESSED, "sink", "sec", 3);
      elbus_test_conn_send_op (g_ptr_array_index (others, i), OP_MESSAGE,
                               ELBUS_QOS_PROCESSED, "sink", "other", 5);
    }
  gate_open (&gate);

  elbus_test_conn_drain_until_eof (primary, ELBUS_TEST_DEADLINE_MS);
  for (guint i = 0; i < n; i++)
    {
      ElbusTestConn *sec = g_ptr_array_index (secondaries, i);

      /* closed before its turn came: no ack, no delivery */
      elbus_test_conn_expect_eof (sec);
    }
  while (from_others < n)
    {
      g_autoptr(ElbusTestFrame) frame = elbus_test_conn_read_frame (sink);

      g_assert_cmpuint (frame->kind, ==, KIND_MESSAGE);
      g_assert_true (g_str_has_prefix (frame->sender, "other."));
      from_others++;
    }
  for (guint i = 0; i < n; i++)
    elbus_test_conn_expect_ack (g_ptr_array_index (others, i), 1, RES_OK);
  elbus_test_conn_expect_nothing (sink, 50);
  elbus_test_broker_wait_client (tb, "prim", FALSE);
  g_assert_false (elbus_test_broker_has_client (tb, "prim%%s00"));

  gate_clear (&gate);
  check_broker_works (tb, transport);
  elbus_test_broker_free (tb);
}

static guint
client_queue_len (ElbusTestBroker *tb,
                  const char      *name)
{
  ElbusStats stats;
  guint len = 0;

  g_assert_true (elbus_test_broker_get_client_stats (tb, name, &stats, &len));
  return len;
}

static void
test_dispatch_fill_and_drain (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) reader = elbus_test_conn_new (tb, transport, "reader");
  g_autoptr(ElbusTestConn) sender = elbus_test_conn_new (tb, transport, "sender");
  /* 8 MiB: more than a TCP socket's send buffer grows to */
  guint n = 512;
  gsize size = 16 * 1024;
  g_autofree char *payload = g_malloc (size);

  g_test_summary ("A socket that fills (the broker waits for it to take "
                  "more) and drains, twice: every frame arrives in order, "
                  "and afterwards a frame goes out at once again");

  /* small, but not below an MSS: a TCP window that small waits for the
   * sender's zero-window probes, seconds apart */
  elbus_test_conn_set_rcvbuf (reader, 64 * 1024);
  for (guint round = 0; round < 2; round++)
    {
      gint64 deadline;

      for (guint i = 0; i < n; i++)
        {
          memset (payload, 'a' + (i % 26), size);
          g_snprintf (payload, 16, "%u.%03u", round, i);
          elbus_test_conn_send_op (sender, OP_MESSAGE, ELBUS_QOS_NO, "reader", payload, size);
        }

      /* that does not fit into the sockets' buffers: part of it waits in
       * the broker's queue until the reader reads */
      deadline = g_get_monotonic_time () + ELBUS_TEST_DEADLINE_MS * 1000;
      while (client_queue_len (tb, "reader") == 0)
        {
          g_assert_cmpint (g_get_monotonic_time (), <, deadline);
          g_usleep (1000);
        }

      for (guint i = 0; i < n; i++)
        {
          g_autoptr(ElbusTestFrame) frame = elbus_test_conn_read_frame (reader);
          g_autofree char *head = g_strdup_printf ("%u.%03u", round, i);
          const char *got = g_bytes_get_data (frame->payload, NULL);

          g_assert_cmpuint (frame->kind, ==, KIND_MESSAGE);
          g_assert_cmpuint (g_bytes_get_size (frame->payload), ==, size);
          g_assert_cmpstr (got, ==, head);
          g_assert_cmpint (got[size - 1], ==, 'a' + (i % 26));
        }
      g_assert_cmpuint (client_queue_len (tb, "reader"), ==, 0);

      /* drained: the next frame is not left waiting for EPOLLOUT */
      elbus_test_conn_op_acked (sender, OP_MESSAGE, "reader", "after", RES_OK);
      elbus_test_conn_expect_message (reader, KIND_MESSAGE, "sender", NULL, "after");
    }

  check_broker_works (tb, transport);
  elbus_test_broker_free (tb);
}

static void
set_short_handshake_func (ElbusBroker *broker,
                          gpointer     data)
{
  elbus_broker_set_handshake_timeout (broker, 0.3);
}

static void
test_dispatch_timeouts_among_many (void)
{
  ElbusTestBrokerOptions options = { .timeout = 0.5 };
  ElbusTestBroker *tb = elbus_test_broker_new (&options);
  guint n = scaled_count (1500);
  g_autoptr(GPtrArray) idle = g_ptr_array_new_with_free_func ((GDestroyNotify) elbus_test_conn_free);
  g_autoptr(GPtrArray) silent = g_ptr_array_new_with_free_func ((GDestroyNotify) elbus_test_conn_free);
  g_autoptr(GPtrArray) halves = g_ptr_array_new_with_free_func ((GDestroyNotify) elbus_test_conn_free);
  static const guint8 half_frame[] = { 1, 0, 0, 0, OP_MESSAGE, 20, 0, 0, 0, 'x' };
  g_auto(GStrv) names = NULL;
  guint present = 0;
  gint64 start;

  g_test_summary ("Among 1,500 idle clients, the few that never greet and "
                  "the few that stop in the middle of a frame are dropped by "
                  "their deadlines; the idle ones, pinged meanwhile, stay");

  elbus_test_broker_invoke (tb, set_short_handshake_func, NULL);
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *name = g_strdup_printf ("idle.%04u", i);

      g_ptr_array_add (idle, elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, name));
      if (i % (n / 3) == 0)
        {
          g_autofree char *half = g_strdup_printf ("half.%04u", i);
          ElbusTestConn *h = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, half);

          elbus_test_conn_send (h, half_frame, sizeof half_frame);
          g_ptr_array_add (halves, h);
          g_ptr_array_add (silent, elbus_test_conn_connect (tb, ELBUS_TEST_TRANSPORT_UNIX));
        }
    }
  start = g_get_monotonic_time ();

  for (guint i = 0; i < silent->len; i++)
    elbus_test_conn_drain_until_eof (g_ptr_array_index (silent, i), ELBUS_TEST_DEADLINE_MS);
  for (guint i = 0; i < halves->len; i++)
    {
      ElbusTestConn *h = g_ptr_array_index (halves, i);

      elbus_test_conn_drain_until_eof (h, ELBUS_TEST_DEADLINE_MS);
      g_assert_false (elbus_test_broker_has_client (tb, h->name));
    }
  g_test_message ("%u + %u dropped within %" G_GINT64_FORMAT " ms", silent->len, halves->len,
                  (g_get_monotonic_time () - start) / 1000);

  /* two more timeouts: pings went out, nobody idle was dropped */
  g_usleep (elbus_test_scale_ms (1000) * 1000);
  names = elbus_test_broker_list_clients (tb);
  for (guint i = 0; names[i] != NULL; i++)
    if (g_str_has_prefix (names[i], "idle."))
      present++;
  g_assert_cmpuint (present, ==, n);
  {
    g_autoptr(ElbusTestFrame) ping = elbus_test_conn_try_read_frame (g_ptr_array_index (idle, 0),
                                                                     ELBUS_TEST_DEADLINE_MS,
                                                                     FALSE, NULL);

    g_assert_nonnull (ping);
    g_assert_cmpuint (ping->kind, ==, 0x00);
  }

  check_broker_works (tb, ELBUS_TEST_TRANSPORT_UNIX);
  elbus_test_broker_free (tb);
}

typedef struct {
  ElbusClient *client;      /* (owned): in process, on the broker thread */
  guint        echoed;      /* broker thread only */
} InProcess;

static void
echo_message_cb (ElbusClient *client,
                 ElbusFrame  *frame,
                 gpointer     data)
{
  InProcess *ip = data;

  ip->echoed++;
  elbus_client_send_async (client, elbus_frame_get_sender (frame),
                           elbus_frame_get_payload (frame), ELBUS_QOS_NO, NULL, NULL, NULL);
}

static void
register_in_process_func (ElbusBroker *broker,
                          gpointer     data)
{
  InProcess *ip = data;
  g_autoptr(GError) error = NULL;

  ip->client = elbus_broker_register_client (broker, "inproc", &error);
  g_assert_no_error (error);
  g_signal_connect (ip->client, "message", G_CALLBACK (echo_message_cb), ip);
}

static void
publish_in_process_func (ElbusBroker *broker,
                         gpointer     data)
{
  InProcess *ip = data;
  g_autoptr(GBytes) payload = g_bytes_new_static ("from inside", 11);

  elbus_client_publish_async (ip->client, "dispatch/inproc", payload, ELBUS_QOS_NO,
                              NULL, NULL, NULL);
}

static void
free_in_process_func (ElbusBroker *broker,
                      gpointer     data)
{
  InProcess *ip = data;

  elbus_client_close (ip->client);
  g_clear_object (&ip->client);
}

static void
test_dispatch_in_process (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  guint n = 40;
  g_autoptr(GPtrArray) conns = NULL;
  InProcess ip = { 0 };
  g_autofree guint32 *op_ids = g_new0 (guint32, n);
  Gate gate;

  g_test_summary ("An in-process client beside socket clients ready in the "
                  "same wake-up: it answers each of them, and its "
                  "publication reaches every subscribed socket client");

  elbus_test_broker_invoke (tb, register_in_process_func, &ip);
  conns = connect_many (tb, transport, "sock.", 2, n);
  for (guint i = 0; i < n; i++)
    elbus_test_conn_subscribe (g_ptr_array_index (conns, i), "dispatch/#", NULL);

  gate_close (tb, &gate);
  for (guint i = 0; i < n; i++)
    {
      ElbusTestConn *c = g_ptr_array_index (conns, i);

      op_ids[i] = elbus_test_conn_send_op (c, OP_MESSAGE, ELBUS_QOS_PROCESSED, "inproc",
                                           c->name, strlen (c->name));
    }
  gate_open (&gate);

  for (guint i = 0; i < n; i++)
    {
      ElbusTestConn *c = g_ptr_array_index (conns, i);

      elbus_test_conn_expect_ack (c, op_ids[i], RES_OK);
      elbus_test_conn_expect_message (c, KIND_MESSAGE, "inproc", NULL, c->name);
    }

  elbus_test_broker_invoke (tb, publish_in_process_func, &ip);
  for (guint i = 0; i < n; i++)
    elbus_test_conn_expect_message (g_ptr_array_index (conns, i), KIND_PUBLISH, "inproc",
                                    "dispatch/inproc", "from inside");

  elbus_test_broker_invoke (tb, free_in_process_func, &ip);
  g_assert_cmpuint (ip.echoed, ==, n);
  gate_clear (&gate);
  check_broker_works (tb, transport);
  elbus_test_broker_free (tb);
}

/* ------------------------------------------------------------------ */

/* Raw bytes on the wire, as the original broker reads them: only a flags
 * byte of 0 is a ping; op 0 with QoS bits has a TARGET 00 PAYLOAD body
 * that is parsed, then ignored without an ack, and a body without the 00
 * is a protocol error that costs that connection only. */
static void
test_raw_nop_with_qos (gconstpointer data)
{
  ElbusTestTransport transport = GPOINTER_TO_INT (data);
  ElbusTestBrokerOptions options = { .timeout = 30.0 };
  ElbusTestBroker *tb = elbus_test_broker_new (&options);
  g_autoptr(ElbusTestConn) a = elbus_test_conn_new (tb, transport, "raw.a");
  g_autoptr(ElbusTestConn) b = elbus_test_conn_new (tb, transport, "raw.b");
  g_autoptr(ElbusTestConn) c = elbus_test_conn_new (tb, transport, "raw.c");
  /* op 0, QoS RealtimeProcessed, a body naming b: nothing reaches b */
  static const guint8 parsed[] = { 7, 0, 0, 0, 0xC0, 8, 0, 0, 0,
                                   'r', 'a', 'w', '.', 'b', 0, 'h', 'i' };
  /* op 0, QoS Processed, no 00 in the body */
  static const guint8 broken[] = { 8, 0, 0, 0, 0x40, 3, 0, 0, 0, 'x', 'y', 'z' };
  g_autoptr(GBytes) after = elbus_test_build_op (9, OP_MESSAGE, ELBUS_QOS_PROCESSED,
                                                 "raw.b", "after", 5);

  g_test_summary ("Op 0 with QoS bits: a TARGET 00 PAYLOAD body is ignored without an ack "
                  "or a delivery; one without the 00 closes that connection only");

  elbus_test_conn_send (a, parsed, sizeof parsed);
  elbus_test_conn_send (a, g_bytes_get_data (after, NULL), g_bytes_get_size (after));
  /* the first answer is the ack of op 9, the first delivery "after" */
  elbus_test_conn_expect_ack (a, 9, 0x01);
  elbus_test_conn_expect_message (b, KIND_MESSAGE, "raw.a", NULL, "after");

  elbus_test_conn_send (c, broken, sizeof broken);
  elbus_test_conn_expect_eof (c);

  /* the others are unharmed */
  elbus_test_conn_op_acked (b, OP_MESSAGE, "raw.a", "still", 0x01);
  elbus_test_conn_expect_message (a, KIND_MESSAGE, "raw.b", NULL, "still");

  elbus_test_broker_free (tb);
}

static void
add_both (const char    *path,
          GTestDataFunc  func)
{
  for (int t = ELBUS_TEST_TRANSPORT_UNIX; t <= ELBUS_TEST_TRANSPORT_TCP; t++)
    {
      g_autofree char *full = g_strdup_printf ("/elbus/broker/%s/%s", path,
                                               elbus_test_transport_name (t));

      g_test_add_data_func (full, GINT_TO_POINTER (t), func);
    }
}

/* ------------------------------------------------------------------ */
/* WebSocket only: what is bad about the WebSocket itself */

/* The broker's log lines, recorded (on its thread too) to check that bad
 * input is logged; each is still written out. */
static GMutex log_mutex;
static GPtrArray *log_lines;
static guint log_seen;

static GLogWriterOutput
record_log_cb (GLogLevelFlags   level,
               const GLogField *fields,
               gsize            n_fields,
               gpointer         user_data)
{
  for (gsize i = 0; i < n_fields && (level & G_LOG_LEVEL_DEBUG) == 0; i++)
    if (g_str_equal (fields[i].key, "MESSAGE"))
      {
        g_mutex_lock (&log_mutex);
        g_ptr_array_add (log_lines, g_strdup (fields[i].value));
        g_mutex_unlock (&log_mutex);
      }
  return g_log_writer_default (level, fields, n_fields, user_data);
}

/* Waits for a log line after the last one found that holds @needle;
 * returns it. */
static char *
wait_log_line (const char *needle)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) ELBUS_TEST_DEADLINE_MS * 1000;

  for (;;)
    {
      char *found = NULL;

      g_mutex_lock (&log_mutex);
      for (guint i = log_seen; i < log_lines->len && found == NULL; i++)
        if (strstr (g_ptr_array_index (log_lines, i), needle) != NULL)
          {
            found = g_strdup (g_ptr_array_index (log_lines, i));
            log_seen = i + 1;
          }
      g_mutex_unlock (&log_mutex);
      if (found != NULL)
        return found;
      if (g_get_monotonic_time () > deadline)
        g_error ("no log line with “%s”", needle);
      g_usleep (5000);
    }
}

static void
test_ws_text_message (void)
{
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) conn = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_WS, "texter");

  g_test_summary ("A WebSocket text message costs only its connection, "
                  "with a log line that says why");

  elbus_test_conn_send_ws_text (conn, "hello");
  elbus_test_conn_expect_eof (conn);
  elbus_test_broker_wait_client (tb, "texter", FALSE);
  g_free (wait_log_line ("client texter: protocol error: a WebSocket text message "
                         "(elbus takes binary ones)"));
  check_broker_works (tb, ELBUS_TEST_TRANSPORT_WS);
  check_broker_works (tb, ELBUS_TEST_TRANSPORT_TCP);

  elbus_test_broker_free (tb);
}

static void
test_ws_message_too_large (void)
{
  ElbusTestBrokerOptions options = { .timeout = 30.0, .max_frame_size = 1024 };
  ElbusTestBroker *tb = elbus_test_broker_new (&options);
  g_autoptr(ElbusTestConn) conn = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_WS, "big");
  g_autofree guint8 *junk = g_malloc0 (1024 * 1024);
  g_autofree char *line = NULL;

  g_test_summary ("A WebSocket message larger than the frame size limit allows "
                  "costs only its connection, before it is read whole, with a "
                  "log line that says why");

  elbus_test_conn_try_send (conn, junk, 1024 * 1024);
  elbus_test_conn_drain_until_eof (conn, ELBUS_TEST_DEADLINE_MS);
  elbus_test_broker_wait_client (tb, "big", FALSE);
  line = wait_log_line ("client big: WebSocket error: ");
  g_assert_nonnull (strstr (line, "larger than"));
  check_broker_works (tb, ELBUS_TEST_TRANSPORT_WS);

  elbus_test_broker_free (tb);
}

/* Sends a raw HTTP request to the ws:// port and returns the answer's
 * status line. */
static char *
http_status_line (ElbusTestBroker *tb,
                  const char      *request)
{
  const char *url = elbus_test_broker_get_ws_url (tb);
  g_autofree char *host_port = g_strndup (url + strlen ("ws://"),
                                          strchr (url + strlen ("ws://"), '/') -
                                          (url + strlen ("ws://")));
  g_autoptr(ElbusTestConn) conn = elbus_test_conn_connect_address (host_port);
  char line[64] = { 0 };

  elbus_test_conn_send (conn, request, strlen (request));
  elbus_test_conn_read (conn, line, strlen ("HTTP/1.1 400"), ELBUS_TEST_DEADLINE_MS);
  return g_strdup (line);
}

static void
test_ws_not_an_upgrade (void)
{
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *plain = NULL;
  g_autofree char *elsewhere = NULL;
  g_autofree char *line = NULL;

  g_test_summary ("An HTTP request that is no WebSocket upgrade is answered "
                  "400 (404 off the path), a connection that closes before its "
                  "request is dropped, each with a log line; the broker goes on");

  plain = http_status_line (tb, "GET /elbus HTTP/1.1\r\nHost: x\r\n\r\n");
  g_assert_cmpstr (plain, ==, "HTTP/1.1 400");
  line = wait_log_line ("HTTP GET /elbus from 127.0.0.1:");
  g_assert_nonnull (strstr (line, "answered 400 Bad Request: not a WebSocket upgrade to /elbus"));
  g_assert_true (g_str_has_prefix (line, elbus_test_broker_get_ws_url (tb)));
  g_clear_pointer (&line, g_free);
  elsewhere = http_status_line (tb, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
  g_assert_cmpstr (elsewhere, ==, "HTTP/1.1 404");
  g_free (wait_log_line ("HTTP GET /other from 127.0.0.1:"));

  /* half a request line, then gone */
  {
    const char *url = elbus_test_broker_get_ws_url (tb);
    g_autofree char *host_port = g_strndup (url + strlen ("ws://"),
                                            strchr (url + strlen ("ws://"), '/') -
                                            (url + strlen ("ws://")));
    g_autoptr(ElbusTestConn) conn = elbus_test_conn_connect_address (host_port);

    elbus_test_conn_send (conn, "GET /elb", strlen ("GET /elb"));
    elbus_test_conn_close (conn);
  }
  g_free (wait_log_line ("closed before a complete HTTP request"));
  check_broker_works (tb, ELBUS_TEST_TRANSPORT_WS);

  elbus_test_broker_free (tb);
}

/* A raw TCP connection to the ws:// listener, upgraded: what follows is
 * WebSocket frames, written and read by hand. */
static ElbusTestConn *
raw_ws_connect (ElbusTestBroker *tb)
{
  const char *url = elbus_test_broker_get_ws_url (tb);
  g_autofree char *host_port = g_strndup (url + strlen ("ws://"),
                                          strchr (url + strlen ("ws://"), '/') -
                                          (url + strlen ("ws://")));
  ElbusTestConn *conn = elbus_test_conn_connect_address (host_port);
  static const char request[] =
    "GET /elbus HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
  GString *answer = g_string_new (NULL);

  elbus_test_conn_send (conn, request, strlen (request));
  while (!g_str_has_suffix (answer->str, "\r\n\r\n"))
    {
      char c;

      elbus_test_conn_read (conn, &c, 1, ELBUS_TEST_DEADLINE_MS);
      g_string_append_c (answer, c);
    }
  g_assert_true (g_str_has_prefix (answer->str, "HTTP/1.1 101"));
  /* the RFC's own example key and answer */
  g_assert_nonnull (strstr (answer->str, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
  /* no extension: the messages carry elbus bytes as they are */
  g_assert_null (strstr (answer->str, "deflate"));
  g_string_free (answer, TRUE);
  return conn;
}

/* Sends one client frame, masked (with a mask that changes the bytes). */
static void
raw_ws_send (ElbusTestConn *conn,
             guint8         first,
             const void    *payload,
             gsize          len,
             gboolean       masked)
{
  static const guint8 mask[4] = { 0xa5, 0x5a, 0x3c, 0xc3 };
  g_autoptr(GByteArray) frame = g_byte_array_new ();
  guint8 hdr[2] = { first, (masked ? 0x80 : 0) | (guint8) len };

  g_assert_cmpuint (len, <, 126);
  g_byte_array_append (frame, hdr, 2);
  if (masked)
    g_byte_array_append (frame, mask, 4);
  for (gsize i = 0; i < len; i++)
    {
      guint8 b = ((const guint8 *) payload)[i] ^ (masked ? mask[i & 3] : 0);

      g_byte_array_append (frame, &b, 1);
    }
  elbus_test_conn_send (conn, frame->data, frame->len);
}

static void
test_ws_framing (void)
{
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) conn = raw_ws_connect (tb);
  g_autoptr(ElbusTestConn) bye = NULL;
  g_autoptr(ElbusTestConn) bad = NULL;
  static const guint8 greeting[] = { 0x82, 3, 0xeb, 0x01, 0x00 };
  static const guint8 ok[] = { 0x82, 1, 0x01 };
  static const guint8 pong[] = { 0x8a, 2, 'h', 'i' };
  static const guint8 close_echo[] = { 0x88, 2, 0x03, 0xe8 };
  static const guint8 close_protocol[] = { 0x88, 2, 0x03, 0xea };
  static const guint8 name[] = { 3, 0, 'r', 'a', 'w' };

  g_test_summary ("The broker's WebSocket framing: no extension is accepted, a ping "
                  "is answered with a pong, fragments and frame boundaries carry no "
                  "meaning, a close frame is answered and ends the connection, and "
                  "an unmasked frame costs its connection with a log line");

  elbus_test_conn_expect_bytes (conn, greeting, sizeof greeting);
  raw_ws_send (conn, 0x89, "hi", 2, TRUE);
  elbus_test_conn_expect_bytes (conn, pong, sizeof pong);
  /* the greeting back in two fragments, a ping between them */
  raw_ws_send (conn, 0x02, greeting + 2, 1, TRUE);
  raw_ws_send (conn, 0x89, "hi", 2, TRUE);
  raw_ws_send (conn, 0x80, greeting + 3, 2, TRUE);
  elbus_test_conn_expect_bytes (conn, pong, sizeof pong);
  elbus_test_conn_expect_bytes (conn, ok, sizeof ok);
  /* the name split across two messages */
  raw_ws_send (conn, 0x82, name, 2, TRUE);
  raw_ws_send (conn, 0x82, name + 2, 3, TRUE);
  elbus_test_conn_expect_bytes (conn, ok, sizeof ok);
  elbus_test_broker_wait_client (tb, "raw", TRUE);

  raw_ws_send (conn, 0x88, "\x03\xe8", 2, TRUE);
  elbus_test_conn_expect_bytes (conn, close_echo, sizeof close_echo);
  elbus_test_conn_expect_eof (conn);
  elbus_test_broker_wait_client (tb, "raw", FALSE);

  bad = raw_ws_connect (tb);
  elbus_test_conn_expect_bytes (bad, greeting, sizeof greeting);
  raw_ws_send (bad, 0x82, greeting + 2, 3, FALSE);
  elbus_test_conn_expect_bytes (bad, close_protocol, sizeof close_protocol);
  elbus_test_conn_expect_eof (bad);
  g_free (wait_log_line ("WebSocket error: an unmasked frame"));

  /* reserved bits (no extension was agreed) */
  bye = raw_ws_connect (tb);
  elbus_test_conn_expect_bytes (bye, greeting, sizeof greeting);
  raw_ws_send (bye, 0xc2, greeting + 2, 3, TRUE);
  elbus_test_conn_expect_bytes (bye, close_protocol, sizeof close_protocol);
  elbus_test_conn_expect_eof (bye);
  g_free (wait_log_line ("WebSocket error: a frame with reserved bits set"));

  check_broker_works (tb, ELBUS_TEST_TRANSPORT_WS);
  elbus_test_broker_free (tb);
}

static void
test_ws_close_mid_frame (void)
{
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) good = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_WS, "good");
  g_autoptr(ElbusTestConn) bad = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_WS, "quitter");

  g_test_summary ("A client that closes its socket in the middle of a WebSocket "
                  "frame costs only its connection, with a log line");

  elbus_test_conn_close_mid_ws_frame (bad);
  elbus_test_broker_wait_client (tb, "quitter", FALSE);
  g_free (wait_log_line ("client quitter: the connection ended without a WebSocket close frame"));

  send_fence (good, good);
  expect_fence (good, good);
  check_broker_works (tb, ELBUS_TEST_TRANSPORT_WS);
  elbus_test_broker_free (tb);
}

/* A self-signed certificate and its key made by openssl in @dir, loaded;
 * NULL (the test skipped) without openssl. */
static GTlsCertificate *
make_certificate (const char *dir)
{
  g_autofree char *openssl = g_find_program_in_path ("openssl");
  g_autofree char *cert = g_build_filename (dir, "cert.pem", NULL);
  g_autofree char *key = g_build_filename (dir, "key.pem", NULL);
  const char *argv[] = {
    NULL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost", NULL
  };
  g_autoptr(GError) error = NULL;
  GTlsCertificate *certificate;
  int status = -1;

  if (openssl == NULL)
    {
      g_test_skip ("openssl is not installed: no test certificate");
      return NULL;
    }
  argv[0] = openssl;
  g_spawn_sync (NULL, (char **) argv, NULL,
                G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL,
                NULL, NULL, NULL, NULL, &status, &error);
  g_assert_no_error (error);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  certificate = g_tls_certificate_new_from_files (cert, key, &error);
  g_assert_no_error (error);
  (void) g_remove (cert);
  (void) g_remove (key);
  return certificate;
}

static void
test_ws_tls_certificate (void)
{
  g_autoptr(ElbusBroker) broker = elbus_broker_new ();
  g_autoptr(GHashTable) counts = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GError) error = NULL;
  g_autoptr(GTlsCertificate) certificate = NULL;
  g_autoptr(GTlsCertificate) got = NULL;
  g_autofree char *dir = g_dir_make_tmp ("elbus-tls-XXXXXX", NULL);

  g_test_summary ("wss:// needs the tls-certificate property: without it listening "
                  "fails with G_IO_ERROR_INVALID_ARGUMENT, with it the listener opens");

  g_assert_null (elbus_broker_get_tls_certificate (broker));
  g_assert_false (elbus_broker_listen (broker, "wss://127.0.0.1:0/elbus", &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_test_message ("%s", error->message);
  g_clear_error (&error);

  certificate = make_certificate (dir);
  (void) g_rmdir (dir);
  if (certificate == NULL)
    return;

  g_signal_connect (broker, "notify", G_CALLBACK (count_notify_cb), counts);
  elbus_broker_set_tls_certificate (broker, certificate);
  elbus_broker_set_tls_certificate (broker, certificate);
  g_assert_cmpuint (notify_count (counts, "tls-certificate"), ==, 1);
  g_object_get (broker, "tls-certificate", &got, NULL);
  g_assert_true (got == certificate);
  g_assert_true (elbus_broker_listen (broker, "wss://127.0.0.1:0/elbus", &error));
  g_assert_no_error (error);

  /* NULL leaves the open listener as it is */
  elbus_broker_set_tls_certificate (broker, NULL);
  g_assert_null (elbus_broker_get_tls_certificate (broker));
  g_assert_cmpuint (notify_count (counts, "tls-certificate"), ==, 2);
  elbus_broker_close (broker);
}

static void
test_ws_list_kind (void)
{
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusTestConn) conn = NULL;
  g_autoptr(GBytes) answer = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autofree char *text = NULL;

  g_test_summary ("client.list names WebSocket clients' kind \"websocket\"");

  elbus_test_broker_enable_core_rpc (tb);
  conn = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_WS, "web");
  answer = elbus_test_conn_core_call (conn, 1, "client.list", NULL, 0);
  reply = elbus_test_decode_rpc_reply (answer);
  text = g_variant_print (reply, FALSE);
  g_assert_nonnull (strstr (text, "'websocket'"));
  g_assert_nonnull (strstr (text, "'web'"));
  elbus_test_broker_free (tb);
}

/* The same body over UNIX, TCP and WebSocket (when built with it). */
static void
add_all (const char    *path,
         GTestDataFunc  func)
{
  g_autofree char *full = g_strdup_printf ("/elbus/broker/%s/%s", path,
                                           elbus_test_transport_name (ELBUS_TEST_TRANSPORT_WS));

  add_both (path, func);
  if (elbus_test_have_websocket ())
    g_test_add_data_func (full, GINT_TO_POINTER (ELBUS_TEST_TRANSPORT_WS), func);
}

int
main (int   argc,
      char *argv[])
{
  log_lines = g_ptr_array_new_with_free_func (g_free);
  g_log_set_writer_func (record_log_cb, NULL, NULL);
  elbus_test_init (&argc, &argv);
  /* 1,500 and more clients and their broker ends live in this process */
  elbus_test_raise_nofile (4 * 1600);

  add_all ("handshake/ok", test_handshake_ok);
  add_all ("handshake/bad-greeting", test_handshake_bad_greeting);
  add_all ("handshake/bad-name", test_handshake_bad_names);
  add_all ("handshake/name-taken", test_handshake_name_taken);
  add_all ("handshake/force-register", test_handshake_force_register);
  if (elbus_test_have_websocket ())
    {
      g_test_add_func ("/elbus/broker/ws/text-message", test_ws_text_message);
      g_test_add_func ("/elbus/broker/ws/message-too-large", test_ws_message_too_large);
      g_test_add_func ("/elbus/broker/ws/not-an-upgrade", test_ws_not_an_upgrade);
      g_test_add_func ("/elbus/broker/ws/close-mid-frame", test_ws_close_mid_frame);
      g_test_add_func ("/elbus/broker/ws/framing", test_ws_framing);
      g_test_add_func ("/elbus/broker/ws/tls-certificate", test_ws_tls_certificate);
      g_test_add_func ("/elbus/broker/ws/list", test_ws_list_kind);
    }
  add_all ("handshake/pipelined", test_handshake_pipelined);
  add_all ("handshake/timeout", test_handshake_timeout);
  add_all ("handshake/disconnect", test_handshake_disconnect);

  add_all ("ops/ack-bytes", test_ops_ack_bytes);
  add_all ("ops/message-qos", test_ops_message_qos);
  add_all ("ops/publish-qos", test_ops_publish_qos);
  add_all ("ops/subscribe-unsubscribe", test_ops_subscribe_unsubscribe);
  add_all ("ops/broadcast-qos", test_ops_broadcast_qos);
  add_all ("ops/nop", test_ops_nop);
  add_all ("raw/nop-with-qos", test_raw_nop_with_qos);
  add_all ("ops/self", test_ops_self);
  add_all ("ops/broker-warn", test_ops_broker_warn);
  add_both ("ops/buffered-latency", test_ops_latency);

  add_all ("routing/broadcast-masks", test_routing_broadcast_masks);
  add_all ("routing/topic-masks", test_routing_topic_masks);

  add_all ("secondary", test_secondary);
  add_all ("ping", test_ping);

  add_all ("volume/1mib-payload", test_large_payload);
  add_all ("volume/pipeline-10000", test_pipeline);
  add_all ("volume/dribble", test_dribble);
  add_all ("volume/streaming-mid-frame", test_streaming_mid_frame);
  add_both ("volume/500-clients", test_many_clients);

  add_all ("bad/unknown-op", test_bad_unknown_op);
  add_all ("bad/body", test_bad_body);
  add_all ("bad/short-body", test_bad_short_body);
  add_all ("bad/over-max-frame-size", test_bad_too_long);
  add_both ("bad/over-default-max", test_bad_huge_default);
  add_all ("bad/slow-consumer", test_bad_slow_consumer);
  add_both ("bad/stuck-writer", test_bad_stuck_writer);
  add_all ("bad/slow-subscriber", test_bad_slow_subscriber);
  add_all ("bad/after-good-frames", test_bad_after_good_frames);
  add_all ("bad/disconnect-mid-frame", test_bad_disconnect_mid_frame);

  add_all ("api/force-disconnect", test_api_force_disconnect);
  add_all ("api/disconnect-client", test_api_disconnect_client);
  add_all ("api/stats", test_api_stats);
  add_all ("api/signals", test_api_signals);
  add_all ("api/list-clients", test_api_list_clients);
  add_both ("api/add-socket-listening", test_api_add_socket_listening);
  g_test_add_func ("/elbus/broker/api/properties", test_api_properties);

  add_both ("dispatch/many-ready", test_dispatch_many_ready);
  add_both ("dispatch/close-in-batch", test_dispatch_close_in_batch);
  add_both ("dispatch/fill-and-drain", test_dispatch_fill_and_drain);
  add_both ("dispatch/in-process", test_dispatch_in_process);
  g_test_add_func ("/elbus/broker/dispatch/timeouts-among-many/unix",
                   test_dispatch_timeouts_among_many);

  return g_test_run ();
}
