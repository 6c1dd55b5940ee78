/* SPDX-License-Identifier: MIT */
/*
 * ElbusClient (docs/protocol.md sections 1-5, and the semantics documented at
 * the top of elbus-client.c) against three kinds of broker:
 *
 * - the in-process ElbusBroker of elbus-test-util, on its own thread, over
 *   UNIX and TCP sockets and WebSocket (ws://, the same test bodies);
 * - a spawned elbusd;
 * - fake brokers written here: a listening socket (or, for ws://, a
 *   libsoup server) whose accepted connections a script on another thread
 *   drives byte by byte, to see exactly what the client writes and to
 *   feed it what a real broker would not (bad greetings, refusals, odd
 *   acks, garbage, silence).
 *
 * The clients live on the test thread's default main context. Waiting is
 * spinning that context until a condition holds or a deadline passes.
 * Where a test must show that a client did NOT receive something, it uses
 * a fence: a message sent after the operation under test by the same
 * sender. The broker keeps each sender's order, so once the fence arrived
 * anything the operation delivered has arrived too.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "elbus-test-util.h"

/* wire values, spelled out here rather than taken from the code under test */

#define TRANSPORT(data) ((ElbusTestTransport) GPOINTER_TO_INT (data))

static const char *qos_names[] = {
  "qos-no", "qos-processed", "qos-realtime", "qos-realtime-processed",
};

/* ------------------------------------------------------------------ */
/* Spinning the main context */

typedef struct {
  gint64   deadline;
  GSource *wakeup;
} Spin;

static gboolean
wakeup_cb (gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

static void
spin_begin (Spin *spin,
            guint ms)
{
  spin->deadline = g_get_monotonic_time () + (gint64) ms * 1000;
  /* a blocking iteration never sleeps past the deadline for long */
  spin->wakeup = g_timeout_source_new (10);
  g_source_set_callback (spin->wakeup, wakeup_cb, NULL, NULL);
  g_source_attach (spin->wakeup, NULL);
}

static gboolean
spin_step (Spin *spin)
{
  if (g_get_monotonic_time () > spin->deadline)
    return FALSE;
  g_main_context_iteration (NULL, TRUE);
  return TRUE;
}

static void
spin_end (Spin *spin)
{
  g_source_destroy (spin->wakeup);
  g_source_unref (spin->wakeup);
}

#define SPIN_UNTIL(cond)                                                     \
  G_STMT_START {                                                             \
    Spin _spin;                                                              \
    spin_begin (&_spin, ELBUS_TEST_DEADLINE_MS);                             \
    while (!(cond))                                                          \
      if (!spin_step (&_spin))                                               \
        g_error ("%s:%d: not true within %u ms: %s", __FILE__, __LINE__,     \
                 ELBUS_TEST_DEADLINE_MS, #cond);                             \
    spin_end (&_spin);                                                       \
  } G_STMT_END

/* Runs whatever is ready (idle completions, say) before a test ends. */
static void
drain_context (void)
{
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

/* A client timeout of t seconds, longer under valgrind */
static double
scaled_timeout (double t)
{
  return elbus_test_scale_ms ((guint) (t * 1000)) / 1000.0;
}

/* ------------------------------------------------------------------ */
/* Brokers and clients */

/* A broker with a long timeout, so that no ping arrives mid-test. */
static ElbusTestBroker *
new_broker (void)
{
  ElbusTestBrokerOptions options = { .timeout = 30.0 };

  return elbus_test_broker_new (&options);
}

static char *
broker_address (ElbusTestBroker    *tb,
                ElbusTestTransport  transport)
{
  if (transport == ELBUS_TEST_TRANSPORT_UNIX)
    return g_strdup (elbus_test_broker_get_unix_path (tb));
  if (transport == ELBUS_TEST_TRANSPORT_WS)
    return g_strdup (elbus_test_broker_get_ws_url (tb));
  return g_strdup_printf ("127.0.0.1:%u", elbus_test_broker_get_tcp_port (tb));
}

static ElbusClient *
connect_sync (const char *address,
              const char *name)
{
  g_autoptr(GError) error = NULL;
  ElbusClient *client = elbus_client_new_sync (address, name, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (client);
  g_assert_true (elbus_client_is_connected (client));
  return client;
}

typedef struct {
  gboolean     done;
  guint        n_calls;
  ElbusClient *client;
  GError      *error;
} ConnectResult;

static void
connect_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  ConnectResult *r = user_data;

  r->n_calls++;
  r->client = elbus_client_new_finish (result, &r->error);
  r->done = TRUE;
}

/* Connects with new_async, spinning until it completes. */
static ElbusClient *
connect_async (const char    *address,
               const char    *name,
               GCancellable  *cancellable,
               GError       **error)
{
  ConnectResult r = { FALSE };

  elbus_client_new_async (address, name, cancellable, connect_cb, &r);
  SPIN_UNTIL (r.done);
  g_assert_cmpuint (r.n_calls, ==, 1);
  g_assert_true ((r.client == NULL) == (r.error != NULL));
  if (r.error != NULL)
    g_propagate_error (error, r.error);
  return r.client;
}

static ElbusClient *
connect_async_ok (const char *address,
                  const char *name)
{
  g_autoptr(GError) error = NULL;
  ElbusClient *client = connect_async (address, name, NULL, &error);

  g_assert_no_error (error);
  g_assert_true (elbus_client_is_connected (client));
  return client;
}

static GBytes *
bytes_str (const char *s)
{
  return g_bytes_new (s, strlen (s));
}

/* ------------------------------------------------------------------ */
/* Operations */

typedef enum {
  OP_KIND_MESSAGE,
  OP_KIND_BROADCAST,
  OP_KIND_PUBLISH,
  OP_KIND_SUBSCRIBE,
  OP_KIND_UNSUBSCRIBE,
} OpKind;

static const char *op_kind_paths[] = {
  "send", "broadcast", "publish", "subscribe", "unsubscribe",
};

typedef gboolean (*FinishFunc) (ElbusClient   *client,
                                GAsyncResult  *result,
                                GError       **error);

typedef struct {
  FinishFunc  finish;
  gboolean    done;
  guint       n_calls;
  gboolean    ok;
  GError     *error;
} OpResult;

static void
op_result_clear (OpResult *r)
{
  g_clear_error (&r->error);
  memset (r, 0, sizeof *r);
}

static void
op_done_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  OpResult *r = user_data;

  r->n_calls++;
  g_clear_error (&r->error);
  r->ok = r->finish (ELBUS_CLIENT (source), result, &r->error);
  g_assert_true (r->ok == (r->error == NULL));
  r->done = TRUE;
}

/* Starts an operation; for subscribe and unsubscribe @target is one mask.
 * @r may be NULL: nobody waits for it. */
static void
op_start (ElbusClient  *client,
          OpKind        kind,
          const char   *target,
          GBytes       *payload,
          ElbusQoS      qos,
          GCancellable *cancellable,
          OpResult     *r)
{
  const char *masks[] = { target, NULL };
  GAsyncReadyCallback cb = r != NULL ? op_done_cb : NULL;

  if (r != NULL)
    {
      op_result_clear (r);
      switch (kind)
        {
        case OP_KIND_MESSAGE: r->finish = elbus_client_send_finish; break;
        case OP_KIND_BROADCAST: r->finish = elbus_client_send_broadcast_finish; break;
        case OP_KIND_PUBLISH: r->finish = elbus_client_publish_finish; break;
        case OP_KIND_SUBSCRIBE: r->finish = elbus_client_subscribe_finish; break;
        case OP_KIND_UNSUBSCRIBE: r->finish = elbus_client_unsubscribe_finish; break;
        default: g_assert_not_reached ();
        }
    }

  switch (kind)
    {
    case OP_KIND_MESSAGE:
      elbus_client_send_async (client, target, payload, qos, cancellable, cb, r);
      break;
    case OP_KIND_BROADCAST:
      elbus_client_send_broadcast_async (client, target, payload, qos, cancellable, cb, r);
      break;
    case OP_KIND_PUBLISH:
      elbus_client_publish_async (client, target, payload, qos, cancellable, cb, r);
      break;
    case OP_KIND_SUBSCRIBE:
      elbus_client_subscribe_async (client, masks, qos, cancellable, cb, r);
      break;
    case OP_KIND_UNSUBSCRIBE:
      elbus_client_unsubscribe_async (client, masks, qos, cancellable, cb, r);
      break;
    default:
      g_assert_not_reached ();
    }
}

static gboolean
op_sync (ElbusClient   *client,
         OpKind         kind,
         const char    *target,
         GBytes        *payload,
         ElbusQoS       qos,
         GCancellable  *cancellable,
         GError       **error)
{
  const char *masks[] = { target, NULL };

  switch (kind)
    {
    case OP_KIND_MESSAGE:
      return elbus_client_send_sync (client, target, payload, qos, cancellable, error);
    case OP_KIND_BROADCAST:
      return elbus_client_send_broadcast_sync (client, target, payload, qos, cancellable, error);
    case OP_KIND_PUBLISH:
      return elbus_client_publish_sync (client, target, payload, qos, cancellable, error);
    case OP_KIND_SUBSCRIBE:
      return elbus_client_subscribe_sync (client, masks, qos, cancellable, error);
    case OP_KIND_UNSUBSCRIBE:
      return elbus_client_unsubscribe_sync (client, masks, qos, cancellable, error);
    default:
      g_assert_not_reached ();
    }
}

static void
op_wait (OpResult *r)
{
  SPIN_UNTIL (r->done);
  g_assert_cmpuint (r->n_calls, ==, 1);
}

/* Runs an async operation to completion and expects success. */
static void
op_async_ok (ElbusClient *client,
             OpKind       kind,
             const char  *target,
             const char  *payload,
             ElbusQoS     qos)
{
  g_autoptr(GBytes) bytes = payload != NULL ? bytes_str (payload) : NULL;
  OpResult r = { NULL };

  op_start (client, kind, target, bytes, qos, NULL, &r);
  op_wait (&r);
  g_assert_no_error (r.error);
  g_assert_true (r.ok);
  op_result_clear (&r);
}

static void
op_sync_ok (ElbusClient *client,
            OpKind       kind,
            const char  *target,
            const char  *payload,
            ElbusQoS     qos)
{
  g_autoptr(GBytes) bytes = payload != NULL ? bytes_str (payload) : NULL;
  g_autoptr(GError) error = NULL;

  g_assert_true (op_sync (client, kind, target, bytes, qos, NULL, &error));
  g_assert_no_error (error);
}

static void
subscribe_ok (ElbusClient *client,
              const char  *mask,
              ...) G_GNUC_NULL_TERMINATED;

/* Subscribes to the masks in one frame and waits for the ack. */
static void
subscribe_ok (ElbusClient *client,
              const char  *mask,
              ...)
{
  g_autoptr(GPtrArray) masks = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  va_list ap;

  va_start (ap, mask);
  for (const char *m = mask; m != NULL; m = va_arg (ap, const char *))
    g_ptr_array_add (masks, (gpointer) m);
  va_end (ap);
  g_ptr_array_add (masks, NULL);

  g_assert_true (elbus_client_subscribe_sync (client, (const char * const *) masks->pdata,
                                              ELBUS_QOS_PROCESSED, NULL, &error));
  g_assert_no_error (error);
}

/* Every operation fails at once with CLOSED, async and sync. */
static void
assert_ops_closed (ElbusClient *client)
{
  g_autoptr(GBytes) payload = bytes_str ("late");

  for (OpKind kind = OP_KIND_MESSAGE; kind <= OP_KIND_UNSUBSCRIBE; kind++)
    for (ElbusQoS qos = ELBUS_QOS_NO; qos <= ELBUS_QOS_REALTIME_PROCESSED; qos++)
      {
        const char *target = kind == OP_KIND_PUBLISH || kind >= OP_KIND_SUBSCRIBE ?
                             "closed/topic" : "closed.target";
        g_autoptr(GError) error = NULL;
        OpResult r = { NULL };
        gint64 start = g_get_monotonic_time ();

        g_assert_false (op_sync (client, kind, target, payload, qos, NULL, &error));
        g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED);
        /* "immediately": no waiting for a timeout */
        g_assert_cmpint (g_get_monotonic_time () - start, <, elbus_test_scale_ms (1000) * 1000);

        op_start (client, kind, target, payload, qos, NULL, &r);
        op_wait (&r);
        g_assert_error (r.error, ELBUS_ERROR, ELBUS_ERROR_CLOSED);
        op_result_clear (&r);
      }
}

/* ------------------------------------------------------------------ */
/* Recording what a client receives */

typedef struct {
  ElbusClient *client;           /* (owned) */
  GPtrArray   *frames;           /* (element-type ElbusFrame) */
  guint        n_disconnected;
  gboolean     disconnect_error_set;
  GError      *disconnect_error; /* (nullable) */
  guint        n_notify_connected;
} Recorder;

static void
recorder_frame_cb (ElbusClient *client,
                   ElbusFrame  *frame,
                   gpointer     user_data)
{
  Recorder *rec = user_data;

  g_assert_true (client == rec->client);
  g_assert_nonnull (frame);
  g_ptr_array_add (rec->frames, elbus_frame_ref (frame));
}

static void
recorder_disconnected_cb (ElbusClient *client,
                          GError      *error,
                          gpointer     user_data)
{
  Recorder *rec = user_data;

  g_assert_true (client == rec->client);
  g_assert_false (elbus_client_is_connected (client));
  rec->n_disconnected++;
  g_clear_error (&rec->disconnect_error);
  if (error != NULL)
    rec->disconnect_error = g_error_copy (error);
}

static void
recorder_notify_connected_cb (GObject    *object,
                              GParamSpec *pspec,
                              gpointer    user_data)
{
  Recorder *rec = user_data;

  rec->n_notify_connected++;
}

static Recorder *
recorder_new (ElbusClient *client)
{
  Recorder *rec = g_new0 (Recorder, 1);

  rec->client = g_object_ref (client);
  rec->frames = g_ptr_array_new_with_free_func ((GDestroyNotify) elbus_frame_unref);
  g_signal_connect (client, "message", G_CALLBACK (recorder_frame_cb), rec);
  g_signal_connect (client, "broadcast", G_CALLBACK (recorder_frame_cb), rec);
  g_signal_connect (client, "publication", G_CALLBACK (recorder_frame_cb), rec);
  g_signal_connect (client, "disconnected", G_CALLBACK (recorder_disconnected_cb), rec);
  g_signal_connect (client, "notify::connected", G_CALLBACK (recorder_notify_connected_cb), rec);
  return rec;
}

static void
recorder_free (Recorder *rec)
{
  if (rec == NULL)
    return;
  g_signal_handlers_disconnect_by_data (rec->client, rec);
  g_object_unref (rec->client);
  g_ptr_array_unref (rec->frames);
  g_clear_error (&rec->disconnect_error);
  g_free (rec);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Recorder, recorder_free)

static ElbusFrame *
recorder_frame (Recorder *rec,
                guint     i)
{
  g_assert_cmpuint (i, <, rec->frames->len);
  return g_ptr_array_index (rec->frames, i);
}

static void
assert_frame (ElbusFrame     *frame,
              ElbusFrameKind  kind,
              const char     *sender,
              const char     *primary_sender,
              const char     *topic,
              const void     *payload,
              gsize           payload_len,
              gboolean        realtime)
{
  GBytes *bytes = elbus_frame_get_payload (frame);
  gsize len = 0;
  const void *data;

  g_assert_nonnull (bytes);
  data = g_bytes_get_data (bytes, &len);
  g_assert_cmphex (elbus_frame_get_kind (frame), ==, kind);
  g_assert_cmpstr (elbus_frame_get_sender (frame), ==, sender);
  g_assert_cmpstr (elbus_frame_get_primary_sender (frame), ==, primary_sender);
  g_assert_cmpstr (elbus_frame_get_topic (frame), ==, topic);
  g_assert_cmpmem (data, len, payload, payload_len);
  g_assert_cmpint (elbus_frame_is_realtime (frame), ==, realtime);
}

static void
assert_frame_str (ElbusFrame     *frame,
                  ElbusFrameKind  kind,
                  const char     *sender,
                  const char     *topic,
                  const char     *payload)
{
  assert_frame (frame, kind, sender, sender, topic, payload, strlen (payload), FALSE);
}

static gboolean
frame_is_fence (ElbusFrame *frame,
                const char *from)
{
  gsize len;
  const char *data = g_bytes_get_data (elbus_frame_get_payload (frame), &len);

  return elbus_frame_get_kind (frame) == ELBUS_FRAME_KIND_MESSAGE &&
         g_str_equal (elbus_frame_get_sender (frame), from) &&
         len == 5 && memcmp (data, "fence", 5) == 0;
}

static gboolean
recorder_take_fence (Recorder   *rec,
                     const char *from)
{
  for (guint i = 0; i < rec->frames->len; i++)
    if (frame_is_fence (g_ptr_array_index (rec->frames, i), from))
      {
        g_ptr_array_remove_index (rec->frames, i);
        return TRUE;
      }
  return FALSE;
}

/* Sends a fence from @from to each recorder's client and waits until each
 * got it: whatever @from sent them before has arrived. The fences are
 * taken out of the recorders. */
static void
fence (ElbusClient *from,
       Recorder   **recs,
       guint        n_recs)
{
  g_autoptr(GBytes) payload = bytes_str ("fence");
  g_autofree gboolean *seen = g_new0 (gboolean, n_recs);
  guint n_seen = 0;
  Spin spin;

  for (guint i = 0; i < n_recs; i++)
    op_start (from, OP_KIND_MESSAGE, elbus_client_get_name (recs[i]->client), payload,
              ELBUS_QOS_NO, NULL, NULL);

  spin_begin (&spin, ELBUS_TEST_DEADLINE_MS);
  while (n_seen < n_recs)
    {
      for (guint i = 0; i < n_recs; i++)
        if (!seen[i] && recorder_take_fence (recs[i], elbus_client_get_name (from)))
          {
            seen[i] = TRUE;
            n_seen++;
          }
      if (n_seen < n_recs && !spin_step (&spin))
        g_error ("fences from %s not received within %u ms", elbus_client_get_name (from),
                 ELBUS_TEST_DEADLINE_MS);
    }
  spin_end (&spin);
}

static void
fence1 (ElbusClient *from,
        Recorder    *rec)
{
  fence (from, &rec, 1);
}

/* ------------------------------------------------------------------ */
/* Fake brokers */

typedef struct _FakeBroker FakeBroker;

/* Runs on the fake broker's thread, once per accepted connection. */
typedef void (*FakeScript) (FakeBroker    *fb,
                            ElbusTestConn *peer,
                            guint          index);

struct _FakeBroker {
  int           listen_fd;       /* -1 over WebSocket */
  GMainContext *ws_context;      /* (nullable): the WebSocket server's, served on the thread */
  ElbusTestWsListener *ws;       /* (nullable) */
  char         *dir;             /* (nullable) */
  char         *path;            /* (nullable): the UNIX socket */
  char         *address;
  ElbusTestTransport transport;
  guint         n_conns;
  FakeScript    script;
  gpointer      data;
  GThread      *thread;
  GCancellable *cancellable;     /* for scripts that cancel a client call */

  GMutex        mutex;
  GCond         cond;
  guint         released;        /* main thread -> script */
  gint          stage;           /* script -> main thread (atomic) */
  gint          served;          /* connections whose script ended (atomic) */
};

static gpointer
fake_thread_func (gpointer user_data)
{
  FakeBroker *fb = user_data;

  for (guint i = 0; i < fb->n_conns; i++)
    {
      struct pollfd pfd = { .fd = fb->listen_fd, .events = POLLIN };
      ElbusTestConn *peer;
      int fd, rc;

      if (fb->transport == ELBUS_TEST_TRANSPORT_WS)
        {
          peer = elbus_test_ws_listener_accept (fb->ws, ELBUS_TEST_DEADLINE_MS);
          fb->script (fb, peer, i);
          elbus_test_conn_free (peer);
          g_atomic_int_inc (&fb->served);
          continue;
        }

      do
        rc = poll (&pfd, 1, ELBUS_TEST_DEADLINE_MS);
      while (rc < 0 && errno == EINTR);
      if (rc <= 0)
        g_error ("fake broker: connection %u did not come within %u ms", i,
                 ELBUS_TEST_DEADLINE_MS);

      fd = accept (fb->listen_fd, NULL, NULL);
      g_assert_cmpint (fd, >=, 0);
      /* not inherited by a spawned elbusd */
      g_assert_cmpint (fcntl (fd, F_SETFD, FD_CLOEXEC), ==, 0);
      if (fb->transport == ELBUS_TEST_TRANSPORT_TCP)
        {
          int one = 1;

          g_assert_cmpint (setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), ==, 0);
        }
      peer = elbus_test_conn_new_for_fd (fd);
      fb->script (fb, peer, i);
      elbus_test_conn_free (peer);
      g_atomic_int_inc (&fb->served);
    }

  return NULL;
}

static FakeBroker *
fake_broker_new (ElbusTestTransport  transport,
                 guint               n_conns,
                 FakeScript          script,
                 gpointer            data)
{
  FakeBroker *fb = g_new0 (FakeBroker, 1);
  g_autoptr(GError) error = NULL;

  fb->transport = transport;
  fb->n_conns = n_conns;
  fb->script = script;
  fb->data = data;
  fb->cancellable = g_cancellable_new ();
  g_mutex_init (&fb->mutex);
  g_cond_init (&fb->cond);

  if (transport == ELBUS_TEST_TRANSPORT_WS)
    {
      /* a libsoup server on a context the fake broker's thread serves */
      fb->listen_fd = -1;
      fb->ws_context = g_main_context_new ();
      fb->ws = elbus_test_ws_listener_new (fb->ws_context);
      fb->address = g_strdup (elbus_test_ws_listener_get_url (fb->ws));
      fb->thread = g_thread_new ("elbus-fake-broker", fake_thread_func, fb);
      return fb;
    }
  if (transport == ELBUS_TEST_TRANSPORT_UNIX)
    {
      struct sockaddr_un sun = { .sun_family = AF_UNIX };

      fb->dir = g_dir_make_tmp ("elbus-fake-XXXXXX", &error);
      g_assert_no_error (error);
      fb->path = g_build_filename (fb->dir, "fake.sock", NULL);
      g_assert_cmpuint (strlen (fb->path), <, sizeof sun.sun_path);
      strcpy (sun.sun_path, fb->path);
      fb->listen_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      g_assert_cmpint (fb->listen_fd, >=, 0);
      g_assert_cmpint (bind (fb->listen_fd, (struct sockaddr *) &sun, sizeof sun), ==, 0);
      fb->address = g_strdup (fb->path);
    }
  else
    {
      struct sockaddr_in sin = { .sin_family = AF_INET };
      socklen_t sin_len = sizeof sin;

      sin.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
      fb->listen_fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      g_assert_cmpint (fb->listen_fd, >=, 0);
      g_assert_cmpint (bind (fb->listen_fd, (struct sockaddr *) &sin, sizeof sin), ==, 0);
      g_assert_cmpint (getsockname (fb->listen_fd, (struct sockaddr *) &sin, &sin_len), ==, 0);
      fb->address = g_strdup_printf ("127.0.0.1:%u", ntohs (sin.sin_port));
    }
  g_assert_cmpint (listen (fb->listen_fd, 16), ==, 0);

  fb->thread = g_thread_new ("elbus-fake-broker", fake_thread_func, fb);
  return fb;
}

static void
fake_release (FakeBroker *fb)
{
  g_mutex_lock (&fb->mutex);
  fb->released++;
  g_cond_broadcast (&fb->cond);
  g_mutex_unlock (&fb->mutex);
}

/* On the script's thread: waits until the test called fake_release()
 * @n times in all. */
static void
fake_wait_release_ms (FakeBroker *fb,
                      guint       n,
                      guint       ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) ms * 1000;

  g_mutex_lock (&fb->mutex);
  while (fb->released < n)
    if (!g_cond_wait_until (&fb->cond, &fb->mutex, deadline) && fb->released < n)
      g_error ("fake broker: not released within %u ms", ms);
  g_mutex_unlock (&fb->mutex);
}

static void
fake_wait_release (FakeBroker *fb,
                   guint       n)
{
  fake_wait_release_ms (fb, n, ELBUS_TEST_DEADLINE_MS);
}

static void
fake_set_stage (FakeBroker *fb,
                gint        stage)
{
  g_atomic_int_set (&fb->stage, stage);
}

#define SPIN_UNTIL_STAGE(fb, s) SPIN_UNTIL (g_atomic_int_get (&(fb)->stage) >= (s))
/* The fake broker serves one connection at a time, and a script may wait
 * for the client's end of the connection: after a client failed, let the
 * context run until GIO has let go of its socket, before a blocking
 * _sync call needs the fake broker's next accept(). */
#define SPIN_UNTIL_SERVED(fb, n) SPIN_UNTIL (g_atomic_int_get (&(fb)->served) >= (gint) (n))

/* Waits for the script to finish its connections and frees. */
static void
fake_broker_free (FakeBroker *fb)
{
  if (fb == NULL)
    return;

  g_mutex_lock (&fb->mutex);
  fb->released = G_MAXUINT / 2;
  g_cond_broadcast (&fb->cond);
  g_mutex_unlock (&fb->mutex);

  g_thread_join (fb->thread);
  elbus_test_ws_listener_free (fb->ws);
  g_clear_pointer (&fb->ws_context, g_main_context_unref);
  if (fb->listen_fd >= 0)
    close (fb->listen_fd);
  if (fb->path != NULL)
    (void) g_remove (fb->path);
  if (fb->dir != NULL)
    (void) g_rmdir (fb->dir);
  g_free (fb->path);
  g_free (fb->dir);
  g_free (fb->address);
  g_object_unref (fb->cancellable);
  g_mutex_clear (&fb->mutex);
  g_cond_clear (&fb->cond);
  g_free (fb);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (FakeBroker, fake_broker_free)

static const guint8 greeting[] = { 0xEB, 0x01, 0x00 };

static char *
fake_read_name (ElbusTestConn *peer)
{
  guint8 len[2];
  gsize n;
  char *name;

  elbus_test_conn_read (peer, len, 2, ELBUS_TEST_DEADLINE_MS);
  n = len[0] | (len[1] << 8);
  name = g_malloc0 (n + 1);
  elbus_test_conn_read (peer, name, n, ELBUS_TEST_DEADLINE_MS);
  return name;
}

/* The broker's side of a good handshake. */
static void
fake_handshake (ElbusTestConn *peer,
                const char    *expected_name)
{
  g_autofree char *name = NULL;

  elbus_test_conn_send (peer, greeting, sizeof greeting);
  elbus_test_conn_expect_bytes (peer, greeting, sizeof greeting);
  elbus_test_conn_send (peer, "\x01", 1);
  name = fake_read_name (peer);
  g_assert_cmpstr (name, ==, expected_name);
  elbus_test_conn_send (peer, "\x01", 1);
}

typedef struct {
  guint32  op_id;
  guint8   flags;
  guint8   op;
  guint8   qos;
  guint32  len;
  GBytes  *body;
} ClientFrame;

static void
client_frame_free (ClientFrame *f)
{
  g_bytes_unref (f->body);
  g_free (f);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ClientFrame, client_frame_free)

static guint32
read_u32 (const guint8 *p)
{
  return (guint32) p[0] | ((guint32) p[1] << 8) | ((guint32) p[2] << 16) |
         ((guint32) p[3] << 24);
}

static void
write_u32 (guint8  *p,
           guint32  v)
{
  p[0] = v & 0xff;
  p[1] = (v >> 8) & 0xff;
  p[2] = (v >> 16) & 0xff;
  p[3] = (v >> 24) & 0xff;
}

/* Reads one client frame; a NOP (flags 0) has no body. */
static ClientFrame *
fake_read_frame (ElbusTestConn *peer)
{
  ClientFrame *f = g_new0 (ClientFrame, 1);
  guint8 h[9];
  guint8 *body;

  elbus_test_conn_read (peer, h, sizeof h, ELBUS_TEST_DEADLINE_MS);
  f->op_id = read_u32 (h);
  f->flags = h[4];
  f->op = h[4] & 0x3f;
  f->qos = h[4] >> 6;
  f->len = read_u32 (h + 5);
  if (f->flags == 0)
    {
      f->body = g_bytes_new (NULL, 0);
      return f;
    }
  body = g_malloc (MAX (f->len, 1));
  elbus_test_conn_read (peer, body, f->len, ELBUS_TEST_DEADLINE_MS);
  f->body = g_bytes_new_take (body, f->len);
  return f;
}

/* Reads the next frame that is not a ping. */
static ClientFrame *
fake_read_op (ElbusTestConn *peer)
{
  for (;;)
    {
      ClientFrame *f = fake_read_frame (peer);

      if (f->flags != 0)
        return f;
      client_frame_free (f);
    }
}

static void
assert_client_frame (ClientFrame *f,
                     guint8       op,
                     ElbusQoS     qos,
                     const char  *target,
                     const void  *payload,
                     gsize        payload_len)
{
  g_autoptr(GByteArray) expected = g_byte_array_new ();

  if (target != NULL)
    g_byte_array_append (expected, (const guint8 *) target, strlen (target) + 1);
  g_byte_array_append (expected, payload, payload_len);

  g_assert_cmphex (f->flags, ==, (op & 0x3f) | (qos << 6));
  g_assert_cmphex (f->op, ==, op);
  g_assert_cmpuint (f->qos, ==, qos);
  g_assert_cmpuint (f->len, ==, expected->len);
  g_assert_cmpmem (g_bytes_get_data (f->body, NULL), g_bytes_get_size (f->body),
                   expected->data, expected->len);
}

static void
fake_send_ack (ElbusTestConn *peer,
               guint32        op_id,
               guint8         result)
{
  guint8 ack[6] = { KIND_ACK };

  write_u32 (ack + 1, op_id);
  ack[5] = result;
  elbus_test_conn_send (peer, ack, sizeof ack);
}

static GBytes *
build_broker_frame (guint8      kind,
                    const char *sender,
                    const char *topic,
                    const void *payload,
                    gsize       payload_len,
                    gboolean    realtime)
{
  GByteArray *buf = g_byte_array_new ();
  guint8 h[6] = { kind };

  write_u32 (h + 1, strlen (sender) + 1 + (topic != NULL ? strlen (topic) + 1 : 0) +
                    payload_len);
  h[5] = realtime ? 1 : 0;
  g_byte_array_append (buf, h, sizeof h);
  g_byte_array_append (buf, (const guint8 *) sender, strlen (sender) + 1);
  if (topic != NULL)
    g_byte_array_append (buf, (const guint8 *) topic, strlen (topic) + 1);
  g_byte_array_append (buf, payload, payload_len);
  return g_byte_array_free_to_bytes (buf);
}

/* The client ends the connection: whatever it still sends is dropped. */
static void
fake_wait_eof (ElbusTestConn *peer)
{
  elbus_test_conn_drain_until_eof (peer, ELBUS_TEST_DEADLINE_MS);
}

static void
assert_error_domain_elbus (const GError *error)
{
  g_assert_nonnull (error);
  g_assert_cmpstr (g_quark_to_string (error->domain), ==, g_quark_to_string (ELBUS_ERROR));
}

/* ------------------------------------------------------------------ */
/* Connecting */

static void
test_connect_sync (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *address = broker_address (tb, transport);
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(Recorder) rec = NULL;

  g_test_summary ("new_sync connects and registers without a main loop; the client can "
                  "send and receive at once, and close() unregisters it");

  client = connect_sync (address, "conn.sync");
  g_assert_cmpstr (elbus_client_get_name (client), ==, "conn.sync");
  g_assert_cmpstr (elbus_client_get_address (client), ==, address);
  g_assert_true (elbus_test_broker_has_client (tb, "conn.sync"));

  rec = recorder_new (client);
  op_sync_ok (client, OP_KIND_MESSAGE, "conn.sync", "hello", ELBUS_QOS_PROCESSED);
  SPIN_UNTIL (rec->frames->len == 1);
  assert_frame_str (recorder_frame (rec, 0), ELBUS_FRAME_KIND_MESSAGE, "conn.sync", NULL,
                    "hello");

  elbus_client_close (client);
  g_assert_false (elbus_client_is_connected (client));
  elbus_test_broker_wait_client (tb, "conn.sync", FALSE);

  g_clear_pointer (&rec, recorder_free);
  g_clear_object (&client);
  drain_context ();
  elbus_test_broker_free (tb);
}

static void
test_connect_async (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *address = broker_address (tb, transport);
  ConnectResult results[5] = { { FALSE } };
  g_autoptr(Recorder) rec = NULL;

  g_test_summary ("new_async: several connections in flight at once all register, each "
                  "callback runs once with its own client");

  for (guint i = 0; i < G_N_ELEMENTS (results); i++)
    {
      g_autofree char *name = g_strdup_printf ("conn.async.%u", i);

      elbus_client_new_async (address, name, NULL, connect_cb, &results[i]);
    }
  /* nothing completes before the context runs */
  for (guint i = 0; i < G_N_ELEMENTS (results); i++)
    g_assert_false (results[i].done);

  for (guint i = 0; i < G_N_ELEMENTS (results); i++)
    {
      g_autofree char *name = g_strdup_printf ("conn.async.%u", i);

      SPIN_UNTIL (results[i].done);
      g_assert_cmpuint (results[i].n_calls, ==, 1);
      g_assert_no_error (results[i].error);
      g_assert_nonnull (results[i].client);
      g_assert_true (elbus_client_is_connected (results[i].client));
      g_assert_cmpstr (elbus_client_get_name (results[i].client), ==, name);
      g_assert_cmpstr (elbus_client_get_address (results[i].client), ==, address);
      g_assert_true (elbus_test_broker_has_client (tb, name));
    }

  /* a message across two of them */
  rec = recorder_new (results[4].client);
  op_async_ok (results[0].client, OP_KIND_MESSAGE, "conn.async.4", "across",
               ELBUS_QOS_PROCESSED);
  SPIN_UNTIL (rec->frames->len == 1);
  assert_frame_str (recorder_frame (rec, 0), ELBUS_FRAME_KIND_MESSAGE, "conn.async.0", NULL,
                    "across");
  g_clear_pointer (&rec, recorder_free);

  /* dropping the last reference closes the connection */
  for (guint i = 0; i < G_N_ELEMENTS (results); i++)
    {
      g_autofree char *name = g_strdup_printf ("conn.async.%u", i);

      g_clear_object (&results[i].client);
      elbus_test_broker_wait_client (tb, name, FALSE);
    }

  drain_context ();
  elbus_test_broker_free (tb);
}

static void
test_connect_name_taken (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *address = broker_address (tb, transport);
  g_autoptr(ElbusClient) first = NULL;
  g_autoptr(ElbusClient) second = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(Recorder) rec = NULL;

  g_test_summary ("A name already registered is refused with ELBUS_ERROR_BUSY, sync and "
                  "async; the holder is unaffected and the name is free once it leaves");

  first = connect_sync (address, "taken.name");
  rec = recorder_new (first);

  second = elbus_client_new_sync (address, "taken.name", NULL, &error);
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_BUSY);
  g_assert_null (second);
  g_clear_error (&error);

  second = connect_async (address, "taken.name", NULL, &error);
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_BUSY);
  g_assert_null (second);
  g_clear_error (&error);

  /* the holder still works */
  g_assert_true (elbus_client_is_connected (first));
  op_async_ok (first, OP_KIND_MESSAGE, "taken.name", "still here", ELBUS_QOS_PROCESSED);
  SPIN_UNTIL (rec->frames->len == 1);
  g_assert_cmpuint (rec->n_disconnected, ==, 0);

  g_clear_pointer (&rec, recorder_free);
  g_clear_object (&first);
  elbus_test_broker_wait_client (tb, "taken.name", FALSE);

  second = connect_sync (address, "taken.name");
  g_clear_object (&second);

  drain_context ();
  elbus_test_broker_free (tb);
}

static void
test_connect_invalid_names (void)
{
  ElbusTestBroker *tb = new_broker ();
  const char *address = elbus_test_broker_get_unix_path (tb);
  g_autofree char *too_long = g_strnfill (ELBUS_MAX_NAME_LENGTH + 1, 'n');
  g_autofree char *longest = g_strnfill (ELBUS_MAX_NAME_LENGTH, 'l');
  const char *bad[] = {
    "", ".hidden", ".broker", "\xff\xfe", "half\xc3", "ok.\xc0\xaf", too_long,
  };
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(Recorder) rec = NULL;
  g_autoptr(GBytes) payload = bytes_str ("long");
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) names = NULL;

  g_test_summary ("Invalid names (empty, starting with '.', invalid UTF-8, over "
                  "ELBUS_MAX_NAME_LENGTH bytes) fail with ELBUS_ERROR_DATA, sync and async; "
                  "a name of exactly ELBUS_MAX_NAME_LENGTH bytes registers and sends");

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_test_message ("name %u", i);
      client = elbus_client_new_sync (address, bad[i], NULL, &error);
      g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA);
      g_assert_null (client);
      g_clear_error (&error);

      client = connect_async (address, bad[i], NULL, &error);
      g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA);
      g_assert_null (client);
      g_clear_error (&error);
    }
  names = elbus_test_broker_list_clients (tb);
  g_assert_cmpuint (g_strv_length (names), ==, 0);

  /* the longest name; its frames carry it as the sender, and a target
   * that long goes out whole */
  client = connect_sync (address, longest);
  rec = recorder_new (client);
  g_assert_true (elbus_client_send_sync (client, longest, payload, ELBUS_QOS_PROCESSED, NULL,
                                         &error));
  g_assert_no_error (error);
  op_async_ok (client, OP_KIND_MESSAGE, longest, "long", ELBUS_QOS_PROCESSED);
  SPIN_UNTIL (rec->frames->len == 2);
  assert_frame_str (recorder_frame (rec, 0), ELBUS_FRAME_KIND_MESSAGE, longest, NULL, "long");
  assert_frame_str (recorder_frame (rec, 1), ELBUS_FRAME_KIND_MESSAGE, longest, NULL, "long");

  g_clear_pointer (&rec, recorder_free);
  g_clear_object (&client);
  drain_context ();
  elbus_test_broker_free (tb);
}

static void
test_connect_unreachable (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *path = NULL;
  g_autofree char *tcp = NULL;
  g_autoptr(ElbusClient) client = NULL;
  struct sockaddr_in sin = { .sin_family = AF_INET };
  socklen_t sin_len = sizeof sin;
  int fd;

  g_test_summary ("A socket path that does not exist and a TCP port nobody listens on fail "
                  "with G_IO_ERROR codes, sync and async; an empty address fails too");

  dir = g_dir_make_tmp ("elbus-unreachable-XXXXXX", &error);
  g_assert_no_error (error);
  path = g_build_filename (dir, "nobody-here.sock", NULL);

  client = elbus_client_new_sync (path, "unreach.c", NULL, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_null (client);
  g_clear_error (&error);

  client = connect_async (path, "unreach.c", NULL, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_null (client);
  g_clear_error (&error);

  /* a port held, bound but not listening: connecting is refused */
  sin.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (bind (fd, (struct sockaddr *) &sin, sizeof sin), ==, 0);
  g_assert_cmpint (getsockname (fd, (struct sockaddr *) &sin, &sin_len), ==, 0);
  tcp = g_strdup_printf ("127.0.0.1:%u", ntohs (sin.sin_port));

  client = elbus_client_new_sync (tcp, "unreach.c", NULL, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED);
  g_assert_null (client);
  g_clear_error (&error);

  client = connect_async (tcp, "unreach.c", NULL, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED);
  g_assert_null (client);
  g_clear_error (&error);
  close (fd);

  client = elbus_client_new_sync ("", "unreach.c", NULL, &error);
  g_assert_nonnull (error);
  g_assert_null (client);
  g_clear_error (&error);

  client = connect_async ("", "unreach.c", NULL, &error);
  g_assert_nonnull (error);
  g_assert_null (client);
  g_clear_error (&error);

  (void) g_rmdir (dir);
  drain_context ();
}

static void
test_connect_ws_unreachable (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusClient) client = NULL;
  g_autofree char *url = g_strdup_printf ("ws://127.0.0.1:%u/elbus",
                                          elbus_test_pick_free_port ());
  /* what the build tells apart: nobody listening, or no WebSocket at all */
  gint code = elbus_test_have_websocket () ? G_IO_ERROR_CONNECTION_REFUSED
                                           : G_IO_ERROR_NOT_SUPPORTED;

  g_test_summary ("A ws:// port nobody listens on is refused with G_IO_ERROR_CONNECTION_REFUSED, "
                  "sync and async, naming the URL; without WebSocket support any ws:// or "
                  "wss:// fails with G_IO_ERROR_NOT_SUPPORTED and says why");

  client = elbus_client_new_sync (url, "unreach.ws", NULL, &error);
  g_assert_error (error, G_IO_ERROR, code);
  g_assert_nonnull (strstr (error->message, url));
  g_assert_null (client);
  g_clear_error (&error);

  client = connect_async (url, "unreach.ws", NULL, &error);
  g_assert_error (error, G_IO_ERROR, code);
  g_assert_null (client);
  g_clear_error (&error);

  if (!elbus_test_have_websocket ())
    {
      client = elbus_client_new_sync ("wss://127.0.0.1:1/elbus", "unreach.ws", NULL, &error);
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
      g_assert_nonnull (strstr (error->message, "without WebSocket support"));
      g_clear_error (&error);
    }
  drain_context ();
}

static void
test_connect_address_forms (void)
{
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("elbus-addr-XXXXXX", &error);
  g_autofree char *cwd = g_get_current_dir ();
  const char *suffixes[] = { "b.sock", "b.socket", "b.ipc" };

  g_test_summary ("Relative paths ending in .sock, .socket and .ipc are UNIX sockets; "
                  "HOST:PORT is TCP");

  g_assert_no_error (error);
  g_assert_cmpint (g_chdir (dir), ==, 0);
  for (guint i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      g_autoptr(ElbusClient) client = NULL;

      g_assert_cmpint (symlink (elbus_test_broker_get_unix_path (tb), suffixes[i]), ==, 0);
      client = connect_sync (suffixes[i], "addr.c");
      g_assert_cmpstr (elbus_client_get_address (client), ==, suffixes[i]);
      g_clear_object (&client);
      elbus_test_broker_wait_client (tb, "addr.c", FALSE);
      client = connect_async_ok (suffixes[i], "addr.c");
      g_clear_object (&client);
      elbus_test_broker_wait_client (tb, "addr.c", FALSE);
      (void) g_remove (suffixes[i]);
    }
  g_assert_cmpint (g_chdir (cwd), ==, 0);
  (void) g_rmdir (dir);

  {
    g_autofree char *tcp = g_strdup_printf ("127.0.0.1:%u", elbus_test_broker_get_tcp_port (tb));
    g_autoptr(ElbusClient) client = connect_sync (tcp, "addr.c");

    g_assert_cmpstr (elbus_client_get_address (client), ==, tcp);
  }

  drain_context ();
  elbus_test_broker_free (tb);
}

static void
test_op_invalid_utf8 (void)
{
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(Recorder) rec = NULL;
  g_autoptr(GBytes) payload = bytes_str ("p");

  g_test_summary ("A target, mask or topic that is not UTF-8 fails with ELBUS_ERROR_DATA, "
                  "async and sync, and is not sent: the connection stays up");

  client = connect_sync (elbus_test_broker_get_unix_path (tb), "utf8.c");
  rec = recorder_new (client);

  for (OpKind kind = OP_KIND_MESSAGE; kind <= OP_KIND_UNSUBSCRIBE; kind++)
    for (ElbusQoS qos = ELBUS_QOS_NO; qos <= ELBUS_QOS_REALTIME_PROCESSED; qos++)
      {
        g_autoptr(GError) error = NULL;
        OpResult r = { NULL };

        op_start (client, kind, "bad\xff.name", payload, qos, NULL, &r);
        op_wait (&r);
        g_assert_error (r.error, ELBUS_ERROR, ELBUS_ERROR_DATA);
        op_result_clear (&r);
        g_assert_false (op_sync (client, kind, "bad\xc3", payload, qos, NULL, &error));
        g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA);
      }

  op_sync_ok (client, OP_KIND_MESSAGE, "utf8.c", "fine", ELBUS_QOS_PROCESSED);
  SPIN_UNTIL (rec->frames->len == 1);
  g_assert_cmpuint (rec->n_disconnected, ==, 0);
  g_assert_true (elbus_client_is_connected (client));

  g_clear_pointer (&rec, recorder_free);
  g_clear_object (&client);
  drain_context ();
  elbus_test_broker_free (tb);
}

/* Fake broker scripts for the handshake. The test's data is an array of
 * variants, one per connection. */

typedef enum {
  HS_BAD_GREETING_BYTE,         /* sends "XXX" */
  HS_BAD_VERSION,               /* sends EB 02 00 */
  HS_REFUSE_GREETING,           /* answers the client's greeting with 0x75 */
  HS_REFUSE_NAME,               /* answers the name with .result */
  HS_CLOSE_AT_ONCE,             /* closes right after accepting */
  HS_CLOSE_MID_GREETING,        /* sends EB 01 and closes */
  HS_CLOSE_AFTER_GREETING,      /* reads the client's greeting and closes */
  HS_CLOSE_AFTER_NAME,          /* reads the name and closes */
  HS_SILENT,                    /* says nothing until the client goes */
  HS_SILENT_CANCEL,             /* cancels fb->cancellable, then as SILENT */
  HS_TRICKLE,                   /* sends the greeting a byte every 3 s */
} HandshakeScript;

typedef struct {
  HandshakeScript  script;
  guint8           result;
} HandshakeVariant;

static void
handshake_script (FakeBroker    *fb,
                  ElbusTestConn *peer,
                  guint          index)
{
  const HandshakeVariant *v = (const HandshakeVariant *) fb->data + index;
  g_autofree char *name = NULL;

  switch (v->script)
    {
    case HS_BAD_GREETING_BYTE:
      elbus_test_conn_send (peer, "XXX", 3);
      break;
    case HS_BAD_VERSION:
      elbus_test_conn_send (peer, "\xEB\x02\x00", 3);
      break;
    case HS_REFUSE_GREETING:
      elbus_test_conn_send (peer, greeting, sizeof greeting);
      elbus_test_conn_expect_bytes (peer, greeting, sizeof greeting);
      elbus_test_conn_send (peer, "\x75", 1);
      return;                   /* and close */
    case HS_REFUSE_NAME:
      elbus_test_conn_send (peer, greeting, sizeof greeting);
      elbus_test_conn_expect_bytes (peer, greeting, sizeof greeting);
      elbus_test_conn_send (peer, "\x01", 1);
      name = fake_read_name (peer);
      elbus_test_conn_send (peer, &v->result, 1);
      return;
    case HS_CLOSE_AT_ONCE:
      return;
    case HS_CLOSE_MID_GREETING:
      elbus_test_conn_send (peer, greeting, 2);
      return;
    case HS_CLOSE_AFTER_GREETING:
      elbus_test_conn_send (peer, greeting, sizeof greeting);
      elbus_test_conn_expect_bytes (peer, greeting, sizeof greeting);
      return;
    case HS_CLOSE_AFTER_NAME:
      elbus_test_conn_send (peer, greeting, sizeof greeting);
      elbus_test_conn_expect_bytes (peer, greeting, sizeof greeting);
      elbus_test_conn_send (peer, "\x01", 1);
      name = fake_read_name (peer);
      return;
    case HS_SILENT_CANCEL:
      fake_set_stage (fb, index + 1);
      g_cancellable_cancel (fb->cancellable);
      break;
    case HS_SILENT:
      fake_set_stage (fb, index + 1);
      break;
    case HS_TRICKLE:
      fake_set_stage (fb, index + 1);
      /* each byte well within the client's timeout, all of them not */
      for (guint i = 0; i < sizeof greeting; i++)
        {
          if (i > 0)
            g_usleep (3 * G_USEC_PER_SEC);
          if (!elbus_test_conn_try_send (peer, greeting + i, 1))
            return;
        }
      break;
    default:
      g_assert_not_reached ();
    }

  fake_wait_eof (peer);
}

/* Connects to a fake broker playing @variants, one connection each,
 * alternating sync and async; checks every error with @check. */
static void
run_handshake_variants (ElbusTestTransport       transport,
                        const HandshakeVariant  *variants,
                        guint                    n_variants,
                        const char              *name,
                        void                   (*check) (const HandshakeVariant *v,
                                                         const GError           *error))
{
  g_autofree HandshakeVariant *doubled = g_new0 (HandshakeVariant, 2 * n_variants);
  g_autoptr(FakeBroker) fb = NULL;

  for (guint i = 0; i < n_variants; i++)
    doubled[2 * i] = doubled[2 * i + 1] = variants[i];
  fb = fake_broker_new (transport, 2 * n_variants, handshake_script, doubled);

  for (guint i = 0; i < 2 * n_variants; i++)
    {
      g_autoptr(ElbusClient) client = NULL;
      g_autoptr(GError) error = NULL;

      g_test_message ("variant %u, %s", i / 2, i % 2 == 0 ? "sync" : "async");
      if (i % 2 == 0)
        client = elbus_client_new_sync (fb->address, name, NULL, &error);
      else
        client = connect_async (fb->address, name, NULL, &error);
      if (client != NULL)
        g_error ("variant %u (%s): the client registered with a broker that did not "
                 "accept it", i / 2, i % 2 == 0 ? "sync" : "async");
      g_assert_nonnull (error);
      g_test_message ("error: %s", error->message);
      check (&doubled[i], error);
      g_clear_object (&client);
      SPIN_UNTIL_SERVED (fb, i + 1);
    }

  g_clear_pointer (&fb, fake_broker_free);
  drain_context ();
}

static void
check_not_supported (const HandshakeVariant *v,
                     const GError           *error)
{
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_NOT_SUPPORTED);
}

static void
test_handshake_bad_greeting (gconstpointer data)
{
  static const HandshakeVariant variants[] = {
    { HS_BAD_GREETING_BYTE }, { HS_BAD_VERSION }, { HS_REFUSE_GREETING },
  };

  g_test_summary ("A peer that greets with a wrong byte or version, or refuses the client's "
                  "greeting with 0x75, fails the connection with ELBUS_ERROR_NOT_SUPPORTED");

  run_handshake_variants (TRANSPORT (data), variants, G_N_ELEMENTS (variants), "hs.client",
                          check_not_supported);
}

static void
check_refusal (const HandshakeVariant *v,
               const GError           *error)
{
  switch (v->result)
    {
    case 0x71: g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_NOT_REGISTERED); break;
    case 0x72: g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA); break;
    case 0x76: g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_BUSY); break;
    case 0x79: g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_ACCESS); break;
    case 0x75: g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_NOT_SUPPORTED); break;
    default: g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_OTHER); break;
    }
}

static void
test_handshake_refused (gconstpointer data)
{
  static const HandshakeVariant variants[] = {
    { HS_REFUSE_NAME, 0x71 }, { HS_REFUSE_NAME, 0x72 }, { HS_REFUSE_NAME, 0x76 },
    { HS_REFUSE_NAME, 0x79 }, { HS_REFUSE_NAME, 0x42 },
  };

  g_test_summary ("Each registration refusal byte maps to its ElbusError code (71 "
                  "NOT_REGISTERED, 72 DATA, 76 BUSY, 79 ACCESS; unknown bytes OTHER)");

  run_handshake_variants (TRANSPORT (data), variants, G_N_ELEMENTS (variants), "hs.client",
                          check_refusal);
}

static void
check_any_error (const HandshakeVariant *v,
                 const GError           *error)
{
  g_assert_nonnull (error);
  /* the peer went away: say so, and make up no refusal or result code
   * from bytes that never came */
  if (error->domain == ELBUS_ERROR &&
      error->code != ELBUS_ERROR_CLOSED && error->code != ELBUS_ERROR_IO)
    g_error ("a peer that hung up mid-handshake gave %s error %d: %s",
             g_quark_to_string (error->domain), error->code, error->message);
}

static void
test_handshake_eof (gconstpointer data)
{
  static const HandshakeVariant variants[] = {
    { HS_CLOSE_AT_ONCE }, { HS_CLOSE_MID_GREETING }, { HS_CLOSE_AFTER_GREETING },
    { HS_CLOSE_AFTER_NAME },
  };

  g_test_summary ("A peer that closes at any step of the handshake fails the connection "
                  "with an error and no client; with one-byte and longer names");

  /* one byte: the length byte of the name is 0x01, the OK byte */
  run_handshake_variants (TRANSPORT (data), variants, G_N_ELEMENTS (variants), "a",
                          check_any_error);
  run_handshake_variants (TRANSPORT (data), variants, G_N_ELEMENTS (variants), "hs.longer",
                          check_any_error);
}

static void
assert_timeout_error (const GError *error)
{
  g_assert_nonnull (error);
  if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT) &&
      !g_error_matches (error, ELBUS_ERROR, ELBUS_ERROR_TIMEOUT))
    g_error ("expected a timeout error, got %s %d: %s", g_quark_to_string (error->domain),
             error->code, error->message);
}

static void
assert_connect_timed_out (const GError *error,
                          gint64        start,
                          double        seconds,
                          const char   *what)
{
  gint64 took = g_get_monotonic_time () - start;

  g_test_message ("%s: %" G_GINT64_FORMAT " ms", what, took / 1000);
  assert_timeout_error (error);
  /* the timeout bounds the whole handshake, however slowly the bytes
   * come; a little slack for a loaded machine */
  g_assert_cmpint (took, >=, (gint64) (seconds * G_USEC_PER_SEC) - 20000);
  g_assert_cmpint (took, <, (gint64) (seconds * G_USEC_PER_SEC) +
                            (gint64) elbus_test_scale_ms (2000) * 1000);
}

static void
test_connect_silent_broker (void)
{
  static const HandshakeVariant variants[] = { { HS_TRICKLE }, { HS_SILENT }, { HS_TRICKLE } };
  g_autoptr(FakeBroker) fb = fake_broker_new (ELBUS_TEST_TRANSPORT_UNIX, 3, handshake_script,
                                              (gpointer) variants);
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(GError) error = NULL;
  ConnectResult r = { FALSE };
  gint64 start = g_get_monotonic_time ();

  g_test_summary ("A peer that accepts and never greets, or greets a byte every 3 s, fails "
                  "the connection with a timeout error after the default timeout: it bounds "
                  "the whole handshake, not each read; sync and async (both at once)");

  /* async and trickled, while the thread blocks in a sync connection to
   * a silent peer: both end at the default timeout */
  elbus_client_new_async (fb->address, "silent.c", NULL, connect_cb, &r);
  SPIN_UNTIL_STAGE (fb, 1);

  client = elbus_client_new_sync (fb->address, "silent.c", NULL, &error);
  g_assert_null (client);
  assert_connect_timed_out (error, start, ELBUS_CLIENT_DEFAULT_TIMEOUT, "sync, silent");
  g_clear_error (&error);

  SPIN_UNTIL (r.done);
  g_assert_null (r.client);
  assert_connect_timed_out (r.error, start, ELBUS_CLIENT_DEFAULT_TIMEOUT, "async, trickled");
  g_clear_error (&r.error);

  /* sync and trickled */
  SPIN_UNTIL_SERVED (fb, 2);
  start = g_get_monotonic_time ();
  client = elbus_client_new_sync (fb->address, "silent.c", NULL, &error);
  g_assert_null (client);
  assert_connect_timed_out (error, start, ELBUS_CLIENT_DEFAULT_TIMEOUT, "sync, trickled");

  g_clear_pointer (&fb, fake_broker_free);
  drain_context ();
}

static void
init_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  ConnectResult *r = user_data;

  r->n_calls++;
  if (g_async_initable_init_finish (G_ASYNC_INITABLE (source), result, &r->error))
    r->client = g_object_ref (ELBUS_CLIENT (source));
  r->done = TRUE;
}

static void
test_connect_initable (void)
{
  static const HandshakeVariant variants[] = { { HS_SILENT }, { HS_SILENT } };
  g_autoptr(FakeBroker) fb = fake_broker_new (ELBUS_TEST_TRANSPORT_UNIX, 2, handshake_script,
                                              (gpointer) variants);
  ElbusTestBroker *tb = new_broker ();
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(ElbusClient) failed = NULL;
  g_autoptr(GError) error = NULL;
  ConnectResult r = { FALSE };
  gint64 start;

  g_test_summary ("Built with its properties and initialized (GAsyncInitable, GInitable), a "
                  "client connects with them: a silent peer fails it after its own timeout, "
                  "not the default; initializing again gives the same outcome; without an "
                  "address or a name it fails with ELBUS_ERROR_DATA");

  /* async, against a peer that never greets */
  failed = g_object_new (ELBUS_TYPE_CLIENT, "address", fb->address, "name", "init.c",
                         "timeout", 0.3, NULL);
  start = g_get_monotonic_time ();
  g_async_initable_init_async (G_ASYNC_INITABLE (failed), G_PRIORITY_DEFAULT, NULL, init_cb, &r);
  SPIN_UNTIL (r.done);
  g_assert_null (r.client);
  assert_connect_timed_out (r.error, start, 0.3, "async, initable");
  g_clear_error (&r.error);
  /* once is enough: the same error, at once */
  start = g_get_monotonic_time ();
  g_assert_false (g_initable_init (G_INITABLE (failed), NULL, &error));
  assert_timeout_error (error);
  g_assert_cmpint (g_get_monotonic_time () - start, <, elbus_test_scale_ms (1000) * 1000);
  g_clear_error (&error);
  g_assert_false (elbus_client_is_connected (failed));

  /* sync */
  SPIN_UNTIL_SERVED (fb, 1);
  start = g_get_monotonic_time ();
  client = g_initable_new (ELBUS_TYPE_CLIENT, NULL, &error, "address", fb->address,
                           "name", "init.c", "timeout", 0.3, NULL);
  g_assert_null (client);
  assert_connect_timed_out (error, start, 0.3, "sync, initable");
  g_clear_error (&error);

  /* a broker that answers: registered, with the properties given */
  client = g_initable_new (ELBUS_TYPE_CLIENT, NULL, &error,
                           "address", elbus_test_broker_get_unix_path (tb), "name", "init.ok",
                           "timeout", 2.5, "queue-size", 7, NULL);
  g_assert_no_error (error);
  g_assert_true (elbus_client_is_connected (client));
  g_assert_cmpfloat (elbus_client_get_timeout (client), ==, 2.5);
  g_assert_cmpuint (elbus_client_get_queue_size (client), ==, 7);
  elbus_test_broker_wait_client (tb, "init.ok", TRUE);
  g_assert_true (g_initable_init (G_INITABLE (client), NULL, &error));
  g_assert_no_error (error);
  memset (&r, 0, sizeof r);
  g_async_initable_init_async (G_ASYNC_INITABLE (client), G_PRIORITY_DEFAULT, NULL, init_cb, &r);
  SPIN_UNTIL (r.done);
  g_assert_no_error (r.error);
  g_assert_true (r.client == client);
  g_clear_object (&r.client);
  g_clear_object (&client);

  /* no name */
  client = g_initable_new (ELBUS_TYPE_CLIENT, NULL, &error,
                           "address", elbus_test_broker_get_unix_path (tb), NULL);
  g_assert_null (client);
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA);

  g_clear_object (&failed);
  g_clear_pointer (&fb, fake_broker_free);
  drain_context ();
  elbus_test_broker_free (tb);
}

static void
test_connect_cancel (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  static const HandshakeVariant variants[] = { { HS_SILENT }, { HS_SILENT_CANCEL } };
  g_autoptr(FakeBroker) fb = fake_broker_new (transport, 2, handshake_script,
                                              (gpointer) variants);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(GError) error = NULL;
  ConnectResult r = { FALSE };
  ElbusTestBroker *tb;
  g_autofree char *address = NULL;

  g_test_summary ("Cancelling a connection waiting for the greeting fails it with "
                  "G_IO_ERROR_CANCELLED, async and sync; a cancelled cancellable fails "
                  "at once");

  /* async: cancelled once the fake broker accepted */
  elbus_client_new_async (fb->address, "cancel.conn", cancellable, connect_cb, &r);
  SPIN_UNTIL_STAGE (fb, 1);
  g_assert_false (r.done);
  g_cancellable_cancel (cancellable);
  SPIN_UNTIL (r.done);
  g_assert_cmpuint (r.n_calls, ==, 1);
  g_assert_error (r.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_null (r.client);
  g_clear_error (&r.error);
  SPIN_UNTIL_SERVED (fb, 1);

  /* sync: the fake broker cancels once it accepted, while the client
   * blocks reading the greeting */
  client = elbus_client_new_sync (fb->address, "cancel.conn", fb->cancellable, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_null (client);
  g_clear_error (&error);

  /* both connections were closed, or the fake broker would still wait */
  g_clear_pointer (&fb, fake_broker_free);

  /* already cancelled: fails before anything happens */
  tb = new_broker ();
  address = broker_address (tb, transport);
  client = elbus_client_new_sync (address, "cancel.conn", cancellable, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_null (client);
  g_clear_error (&error);
  client = connect_async (address, "cancel.conn", cancellable, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_null (client);
  g_clear_error (&error);
  g_assert_false (elbus_test_broker_has_client (tb, "cancel.conn"));

  drain_context ();
  elbus_test_broker_free (tb);
}

/* ------------------------------------------------------------------ */
/* Secondary clients */

static void
test_secondary (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *address = broker_address (tb, transport);
  g_autoptr(ElbusClient) primary = NULL;
  g_autoptr(ElbusClient) sec1 = NULL;
  g_autoptr(ElbusClient) sec2 = NULL;
  g_autoptr(ElbusClient) other = NULL;
  g_autoptr(ElbusClient) refused = NULL;
  g_autoptr(Recorder) rec_other = NULL;
  g_autoptr(Recorder) rec1 = NULL;
  g_autoptr(Recorder) rec2 = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("NAME%%X registers while NAME is connected (sync and async) and is refused "
                  "with NOT_REGISTERED otherwise; its frames carry the full name as sender "
                  "and NAME as primary sender; it is dropped when NAME leaves");

  refused = elbus_client_new_sync (address, "sec.main%%1", NULL, &error);
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_NOT_REGISTERED);
  g_assert_null (refused);
  g_clear_error (&error);

  primary = connect_sync (address, "sec.main");
  other = connect_sync (address, "sec.other");
  rec_other = recorder_new (other);
  subscribe_ok (other, "sec/topic", NULL);

  sec1 = connect_sync (address, "sec.main%%1");
  sec2 = connect_async_ok (address, "sec.main%%two");
  rec1 = recorder_new (sec1);
  rec2 = recorder_new (sec2);

  refused = elbus_client_new_sync (address, "sec.main%%1", NULL, &error);
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_BUSY);
  g_assert_null (refused);
  g_clear_error (&error);
  refused = connect_async (address, "sec.absent%%1", NULL, &error);
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_NOT_REGISTERED);
  g_assert_null (refused);
  g_clear_error (&error);

  /* from the secondaries */
  op_async_ok (sec1, OP_KIND_MESSAGE, "sec.other", "m1", ELBUS_QOS_PROCESSED);
  op_sync_ok (sec2, OP_KIND_MESSAGE, "sec.other", "m2", ELBUS_QOS_REALTIME_PROCESSED);
  op_async_ok (sec1, OP_KIND_PUBLISH, "sec/topic", "p1", ELBUS_QOS_PROCESSED);
  op_async_ok (sec1, OP_KIND_BROADCAST, "sec.other", "b1", ELBUS_QOS_PROCESSED);
  SPIN_UNTIL (rec_other->frames->len == 4);
  /* each sender's order is kept, not the order across senders */
  {
    const struct { ElbusFrameKind kind; const char *topic; const char *payload; } exp[] = {
      { ELBUS_FRAME_KIND_MESSAGE, NULL, "m1" },
      { ELBUS_FRAME_KIND_PUBLISH, "sec/topic", "p1" },
      { ELBUS_FRAME_KIND_BROADCAST, NULL, "b1" },
    };
    guint n1 = 0, n2 = 0;

    for (guint i = 0; i < 4; i++)
      {
        ElbusFrame *f = recorder_frame (rec_other, i);

        if (g_str_equal (elbus_frame_get_sender (f), "sec.main%%two"))
          {
            assert_frame (f, ELBUS_FRAME_KIND_MESSAGE, "sec.main%%two", "sec.main", NULL, "m2", 2,
                          TRUE);
            n2++;
            continue;
          }
        g_assert_cmpuint (n1, <, G_N_ELEMENTS (exp));
        assert_frame (f, exp[n1].kind, "sec.main%%1", "sec.main", exp[n1].topic,
                      exp[n1].payload, 2, FALSE);
        n1++;
      }
    g_assert_cmpuint (n1, ==, G_N_ELEMENTS (exp));
    g_assert_cmpuint (n2, ==, 1);
  }

  /* to a secondary, by its full name */
  op_async_ok (other, OP_KIND_MESSAGE, "sec.main%%1", "to-sec", ELBUS_QOS_PROCESSED);
  SPIN_UNTIL (rec1->frames->len == 1);
  assert_frame_str (recorder_frame (rec1, 0), ELBUS_FRAME_KIND_MESSAGE, "sec.other", NULL,
                    "to-sec");
  g_assert_cmpuint (rec2->frames->len, ==, 0);

  /* the primary leaves: its secondaries are dropped */
  g_assert_cmpuint (rec1->n_disconnected, ==, 0);
  elbus_client_close (primary);
  SPIN_UNTIL (rec1->n_disconnected == 1 && rec2->n_disconnected == 1);
  assert_error_domain_elbus (rec1->disconnect_error);
  assert_error_domain_elbus (rec2->disconnect_error);
  g_assert_false (elbus_client_is_connected (sec1));
  g_assert_false (elbus_client_is_connected (sec2));
  elbus_test_broker_wait_client (tb, "sec.main%%1", FALSE);
  op_async_ok (other, OP_KIND_MESSAGE, "sec.other", "alive", ELBUS_QOS_PROCESSED);

  {
    g_autoptr(GBytes) payload = bytes_str ("gone");

    g_assert_false (elbus_client_send_sync (sec1, "sec.other", payload, ELBUS_QOS_PROCESSED,
                                            NULL, &error));
    g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED);
    g_clear_error (&error);
  }

  g_clear_pointer (&rec1, recorder_free);
  g_clear_pointer (&rec2, recorder_free);
  g_clear_pointer (&rec_other, recorder_free);
  g_clear_object (&sec1);
  g_clear_object (&sec2);
  g_clear_object (&primary);
  g_clear_object (&other);
  drain_context ();
  elbus_test_broker_free (tb);
}

/* ------------------------------------------------------------------ */
/* Each operation with each QoS */

typedef struct {
  OpKind              kind;
  ElbusQoS            qos;
  ElbusTestTransport  transport;
} QosCase;

static void
test_op_qos (gconstpointer data)
{
  const QosCase *c = data;
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *address = broker_address (tb, c->transport);
  g_autoptr(ElbusClient) sender = NULL;
  g_autoptr(ElbusClient) receiver = NULL;
  g_autoptr(Recorder) rec = NULL;
  g_autoptr(Recorder) rec_sender = NULL;
  static const guint8 p_async[] = { 0x00, 'a', 0xff, 0x00, 's', 'y', 'n', 'c' };
  static const guint8 p_sync[] = { 's', 0x00, 0x01, 0xfe, 0x00 };
  g_autoptr(GBytes) b_async = g_bytes_new_static (p_async, sizeof p_async);
  g_autoptr(GBytes) b_sync = g_bytes_new_static (p_sync, sizeof p_sync);
  g_autoptr(GError) error = NULL;
  OpResult r = { NULL };
  const char *target;
  const char *topic = NULL;
  ElbusFrameKind kind;

  g_test_summary ("An operation completes successfully with each QoS, async and sync, and "
                  "the recipient gets exactly one frame per call: kind, sender, topic, "
                  "payload bytes (with NULs) and the real-time flag of QoS 2 and 3");

  sender = connect_sync (address, "qos.sender");
  receiver = connect_async_ok (address, "qos.recv.x");
  rec = recorder_new (receiver);
  rec_sender = recorder_new (sender);

  switch (c->kind)
    {
    case OP_KIND_MESSAGE:
      target = "qos.recv.x";
      kind = ELBUS_FRAME_KIND_MESSAGE;
      break;
    case OP_KIND_BROADCAST:
      target = "qos.recv.?";
      kind = ELBUS_FRAME_KIND_BROADCAST;
      break;
    case OP_KIND_PUBLISH:
      target = topic = "qos/t1/data";
      kind = ELBUS_FRAME_KIND_PUBLISH;
      subscribe_ok (receiver, "qos/+/data", NULL);
      break;
    default:
      g_assert_not_reached ();
    }

  op_start (sender, c->kind, target, b_async, c->qos, NULL, &r);
  op_wait (&r);
  g_assert_no_error (r.error);
  g_assert_true (r.ok);
  op_result_clear (&r);

  g_assert_true (op_sync (sender, c->kind, target, b_sync, c->qos, NULL, &error));
  g_assert_no_error (error);

  SPIN_UNTIL (rec->frames->len >= 2);
  fence (sender, (Recorder *[]) { rec, rec_sender }, 2);
  g_assert_cmpuint (rec->frames->len, ==, 2);
  assert_frame (recorder_frame (rec, 0), kind, "qos.sender", "qos.sender", topic, p_async,
                sizeof p_async, IS_REALTIME (c->qos));
  assert_frame (recorder_frame (rec, 1), kind, "qos.sender", "qos.sender", topic, p_sync,
                sizeof p_sync, IS_REALTIME (c->qos));
  /* the payload outlives the signal emission */
  g_assert_cmpuint (g_bytes_get_size (elbus_frame_get_payload (recorder_frame (rec, 0))), ==,
                    sizeof p_async);
  g_assert_cmpuint (rec_sender->frames->len, ==, 0);
  g_assert_cmpuint (rec->n_disconnected, ==, 0);
  g_assert_cmpuint (rec_sender->n_disconnected, ==, 0);

  g_clear_pointer (&rec, recorder_free);
  g_clear_pointer (&rec_sender, recorder_free);
  g_clear_object (&sender);
  g_clear_object (&receiver);
  drain_context ();
  elbus_test_broker_free (tb);
}

static void
test_op_empty_payload (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *address = broker_address (tb, transport);
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(Recorder) rec = NULL;
  g_autoptr(GBytes) empty = g_bytes_new (NULL, 0);
  g_autoptr(GError) error = NULL;

  g_test_summary ("A NULL or empty payload goes out and arrives as an empty GBytes, for "
                  "each kind of frame");

  client = connect_sync (address, "empty.c");
  rec = recorder_new (client);
  subscribe_ok (client, "empty/t", NULL);

  g_assert_true (elbus_client_send_sync (client, "empty.c", NULL, ELBUS_QOS_PROCESSED, NULL,
                                         &error));
  g_assert_no_error (error);
  g_assert_true (elbus_client_send_broadcast_sync (client, "empty.*", empty,
                                                   ELBUS_QOS_PROCESSED, NULL, &error));
  g_assert_no_error (error);
  op_async_ok (client, OP_KIND_PUBLISH, "empty/t", NULL, ELBUS_QOS_PROCESSED);
  op_async_ok (client, OP_KIND_MESSAGE, "empty.c", "", ELBUS_QOS_NO);

  SPIN_UNTIL (rec->frames->len == 4);
  assert_frame (recorder_frame (rec, 0), ELBUS_FRAME_KIND_MESSAGE, "empty.c", "empty.c", NULL,
                "", 0, FALSE);
  assert_frame (recorder_frame (rec, 1), ELBUS_FRAME_KIND_BROADCAST, "empty.c", "empty.c",
                NULL, "", 0, FALSE);
  assert_frame (recorder_frame (rec, 2), ELBUS_FRAME_KIND_PUBLISH, "empty.c", "empty.c",
                "empty/t", "", 0, FALSE);
  assert_frame (recorder_frame (rec, 3), ELBUS_FRAME_KIND_MESSAGE, "empty.c", "empty.c", NULL,
                "", 0, FALSE);

  g_clear_pointer (&rec, recorder_free);
  g_clear_object (&client);
  drain_context ();
  elbus_test_broker_free (tb);
}

static void
test_message_not_registered (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *address = broker_address (tb, transport);
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(Recorder) rec = NULL;
  g_autoptr(GBytes) payload = bytes_str ("anyone?");

  g_test_summary ("A message to a name nobody holds fails with ELBUS_ERROR_NOT_REGISTERED "
                  "with QoS 1 and 3, async and sync, and succeeds with QoS 0 and 2; "
                  "broadcasts and publications nobody receives are acked OK; the client "
                  "stays usable");

  client = connect_sync (address, "nr.client");
  rec = recorder_new (client);

  for (ElbusQoS qos = ELBUS_QOS_NO; qos <= ELBUS_QOS_REALTIME_PROCESSED; qos++)
    {
      g_autoptr(GError) error = NULL;
      OpResult r = { NULL };
      gboolean ok;

      g_test_message ("QoS %d", qos);
      op_start (client, OP_KIND_MESSAGE, "nobody.here", payload, qos, NULL, &r);
      op_wait (&r);
      ok = elbus_client_send_sync (client, "nobody.here", payload, qos, NULL, &error);
      if (NEEDS_ACK (qos))
        {
          g_assert_error (r.error, ELBUS_ERROR, ELBUS_ERROR_NOT_REGISTERED);
          g_assert_false (r.ok);
          g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_NOT_REGISTERED);
          g_assert_false (ok);
        }
      else
        {
          g_assert_no_error (r.error);
          g_assert_true (r.ok);
          g_assert_no_error (error);
          g_assert_true (ok);
        }
      op_result_clear (&r);

      op_async_ok (client, OP_KIND_BROADCAST, "nobody.*", "b", qos);
      op_sync_ok (client, OP_KIND_PUBLISH, "nobody/listens", "p", qos);
    }

  g_assert_true (elbus_client_is_connected (client));
  op_async_ok (client, OP_KIND_MESSAGE, "nr.client", "still fine", ELBUS_QOS_PROCESSED);
  SPIN_UNTIL (rec->frames->len == 1);
  assert_frame_str (recorder_frame (rec, 0), ELBUS_FRAME_KIND_MESSAGE, "nr.client", NULL,
                    "still fine");
  g_assert_cmpuint (rec->n_disconnected, ==, 0);

  g_clear_pointer (&rec, recorder_free);
  g_clear_object (&client);
  drain_context ();
  elbus_test_broker_free (tb);
}

static void
test_self (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *address = broker_address (tb, transport);
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(Recorder) rec = NULL;

  g_test_summary ("A client receives its own messages, matching broadcasts and subscribed "
                  "publications, with each QoS, in the order it sent them");

  client = connect_sync (address, "self.c");
  rec = recorder_new (client);
  subscribe_ok (client, "self/topic", NULL);

  for (ElbusQoS qos = ELBUS_QOS_NO; qos <= ELBUS_QOS_REALTIME_PROCESSED; qos++)
    {
      g_autofree char *p = g_strdup_printf ("q%d", qos);

      op_async_ok (client, OP_KIND_MESSAGE, "self.c", p, qos);
      op_async_ok (client, OP_KIND_BROADCAST, "self.*", p, qos);
      op_sync_ok (client, OP_KIND_PUBLISH, "self/topic", p, qos);
    }

  SPIN_UNTIL (rec->frames->len == 12);
  for (ElbusQoS qos = ELBUS_QOS_NO; qos <= ELBUS_QOS_REALTIME_PROCESSED; qos++)
    {
      g_autofree char *p = g_strdup_printf ("q%d", qos);

      assert_frame (recorder_frame (rec, 3 * qos), ELBUS_FRAME_KIND_MESSAGE, "self.c", "self.c",
                    NULL, p, 2, IS_REALTIME (qos));
      assert_frame (recorder_frame (rec, 3 * qos + 1), ELBUS_FRAME_KIND_BROADCAST, "self.c",
                    "self.c", NULL, p, 2, IS_REALTIME (qos));
      assert_frame (recorder_frame (rec, 3 * qos + 2), ELBUS_FRAME_KIND_PUBLISH, "self.c",
                    "self.c", "self/topic", p, 2, IS_REALTIME (qos));
    }

  g_clear_pointer (&rec, recorder_free);
  g_clear_object (&client);
  drain_context ();
  elbus_test_broker_free (tb);
}

/* ------------------------------------------------------------------ */
/* Routing through the client API */

static void
test_broadcast_masks (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *address = broker_address (tb, transport);
  const char *names[] = { "bc.sender", "bc.a.x", "bc.b.x", "bc.a.y.z", "bcx" };
  static const struct {
    const char *mask;
    const char *receivers;      /* indexes into names */
  } cases[] = {
    { "bc.?.x", "12" },
    { "bc.*", "0123" },
    { "bc.a.*", "13" },
    { "*", "01234" },
    { "bc.a.x", "1" },
    { "bc.?", "0" },
    { "?", "4" },
    { "bc.?.?.z", "3" },
    { "nothing.*", "" },
  };
  ElbusClient *clients[G_N_ELEMENTS (names)];
  Recorder *recs[G_N_ELEMENTS (names)];

  g_test_summary ("Broadcast masks through the client API: '?' one part, '*' one or more, "
                  "'*' alone everyone, exact names; each match receives the broadcast "
                  "once, the others not at all (checked with fences)");

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      clients[i] = i % 2 == 0 ? connect_sync (address, names[i]) :
                                connect_async_ok (address, names[i]);
      recs[i] = recorder_new (clients[i]);
    }

  for (guint c = 0; c < G_N_ELEMENTS (cases); c++)
    {
      g_test_message ("mask %s", cases[c].mask);
      op_async_ok (clients[0], OP_KIND_BROADCAST, cases[c].mask, cases[c].mask,
                   ELBUS_QOS_PROCESSED);
      fence (clients[0], recs, G_N_ELEMENTS (recs));

      for (guint i = 0; i < G_N_ELEMENTS (names); i++)
        {
          gboolean expected = strchr (cases[c].receivers, '0' + i) != NULL;

          if (!expected && recs[i]->frames->len > 0)
            g_error ("mask '%s' reached %s", cases[c].mask, names[i]);
          if (expected && recs[i]->frames->len != 1)
            g_error ("mask '%s' reached %s %u times", cases[c].mask, names[i],
                     recs[i]->frames->len);
          if (expected)
            assert_frame_str (recorder_frame (recs[i], 0), ELBUS_FRAME_KIND_BROADCAST,
                              "bc.sender", NULL, cases[c].mask);
          g_ptr_array_set_size (recs[i]->frames, 0);
        }
    }

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      recorder_free (recs[i]);
      g_object_unref (clients[i]);
    }
  drain_context ();
  elbus_test_broker_free (tb);
}

/* Publishes @topic from @pub and returns how many times @rec got it,
 * after a fence. */
static guint
publish_count (ElbusClient *pub,
               Recorder    *rec,
               const char  *topic)
{
  guint n = 0;

  op_async_ok (pub, OP_KIND_PUBLISH, topic, topic, ELBUS_QOS_PROCESSED);
  fence1 (pub, rec);
  for (guint i = 0; i < rec->frames->len; i++)
    {
      ElbusFrame *f = recorder_frame (rec, i);

      assert_frame_str (f, ELBUS_FRAME_KIND_PUBLISH, elbus_client_get_name (pub), topic, topic);
      n++;
    }
  g_ptr_array_set_size (rec->frames, 0);
  return n;
}

static void
test_topic_masks (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *address = broker_address (tb, transport);
  g_autoptr(ElbusClient) sub = NULL;
  g_autoptr(ElbusClient) pub = NULL;
  g_autoptr(Recorder) rec = NULL;
  g_autoptr(Recorder) rec_pub = NULL;
  const char *masks3[] = { "ps/a/#", "ps/+/c", "ps/a/b/c", NULL };
  const char *unsub1[] = { "ps/a/#", NULL };
  const char *unsub2[] = { "ps/+/c", "ps/a/b/c", NULL };
  g_autoptr(GError) error = NULL;
  OpResult r = { NULL };

  g_test_summary ("Topic masks through the client API: '+' one level, '#' one or more; "
                  "several masks in one subscribe; a publication matching several masks "
                  "arrives once; unsubscribe (several masks at once) stops delivery");

  sub = connect_sync (address, "ps.sub");
  pub = connect_sync (address, "ps.pub");
  rec = recorder_new (sub);
  rec_pub = recorder_new (pub);

  g_assert_true (elbus_client_subscribe_sync (sub, masks3, ELBUS_QOS_PROCESSED, NULL, &error));
  g_assert_no_error (error);

  g_assert_cmpuint (publish_count (pub, rec, "ps/a/b/c"), ==, 1);
  g_assert_cmpuint (publish_count (pub, rec, "ps/x/c"), ==, 1);
  g_assert_cmpuint (publish_count (pub, rec, "ps/a/q"), ==, 1);
  g_assert_cmpuint (publish_count (pub, rec, "ps/a/q/r/s"), ==, 1);
  g_assert_cmpuint (publish_count (pub, rec, "ps/a"), ==, 0);
  g_assert_cmpuint (publish_count (pub, rec, "ps/x/d"), ==, 0);
  g_assert_cmpuint (publish_count (pub, rec, "ps/x/y/c"), ==, 0);
  g_assert_cmpuint (publish_count (pub, rec, "other/a/b/c"), ==, 0);

  /* the acked unsubscribe is in force before the next publication */
  r.finish = elbus_client_unsubscribe_finish;
  elbus_client_unsubscribe_async (sub, unsub1, ELBUS_QOS_PROCESSED, NULL, op_done_cb, &r);
  op_wait (&r);
  g_assert_no_error (r.error);
  op_result_clear (&r);
  g_assert_cmpuint (publish_count (pub, rec, "ps/a/b/c"), ==, 1);
  g_assert_cmpuint (publish_count (pub, rec, "ps/x/c"), ==, 1);
  g_assert_cmpuint (publish_count (pub, rec, "ps/a/q"), ==, 0);

  g_assert_true (elbus_client_unsubscribe_sync (sub, unsub2, ELBUS_QOS_PROCESSED, NULL,
                                                &error));
  g_assert_no_error (error);
  g_assert_cmpuint (publish_count (pub, rec, "ps/a/b/c"), ==, 0);
  g_assert_cmpuint (publish_count (pub, rec, "ps/x/c"), ==, 0);

  /* and its own publications, once subscribed */
  subscribe_ok (pub, "ps/own/+", NULL);
  g_assert_cmpuint (publish_count (pub, rec_pub, "ps/own/1"), ==, 1);
  g_assert_cmpuint (rec->frames->len, ==, 0);

  g_clear_pointer (&rec, recorder_free);
  g_clear_pointer (&rec_pub, recorder_free);
  g_clear_object (&sub);
  g_clear_object (&pub);
  drain_context ();
  elbus_test_broker_free (tb);
}

static void
test_subscribe_qos (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *address = broker_address (tb, transport);
  g_autoptr(ElbusClient) sub = NULL;
  g_autoptr(ElbusClient) pub = NULL;
  g_autoptr(Recorder) rec = NULL;

  g_test_summary ("subscribe and unsubscribe succeed and take effect with each QoS, async "
                  "and sync");

  sub = connect_sync (address, "sq.sub");
  pub = connect_sync (address, "sq.pub");
  rec = recorder_new (sub);

  for (ElbusQoS qos = ELBUS_QOS_NO; qos <= ELBUS_QOS_REALTIME_PROCESSED; qos++)
    {
      g_autofree char *t_async = g_strdup_printf ("sq/async/%d", qos);
      g_autofree char *t_sync = g_strdup_printf ("sq/sync/%d", qos);

      op_async_ok (sub, OP_KIND_SUBSCRIBE, t_async, NULL, qos);
      op_sync_ok (sub, OP_KIND_SUBSCRIBE, t_sync, NULL, qos);
    }
  /* an acked frame after the unacked ones: all of them are processed */
  op_sync_ok (sub, OP_KIND_MESSAGE, "sq.sub", "barrier", ELBUS_QOS_PROCESSED);
  SPIN_UNTIL (rec->frames->len == 1);
  g_ptr_array_set_size (rec->frames, 0);

  for (ElbusQoS qos = ELBUS_QOS_NO; qos <= ELBUS_QOS_REALTIME_PROCESSED; qos++)
    {
      g_autofree char *t_async = g_strdup_printf ("sq/async/%d", qos);
      g_autofree char *t_sync = g_strdup_printf ("sq/sync/%d", qos);

      g_assert_cmpuint (publish_count (pub, rec, t_async), ==, 1);
      g_assert_cmpuint (publish_count (pub, rec, t_sync), ==, 1);
    }

  for (ElbusQoS qos = ELBUS_QOS_NO; qos <= ELBUS_QOS_REALTIME_PROCESSED; qos++)
    {
      g_autofree char *t_async = g_strdup_printf ("sq/async/%d", qos);
      g_autofree char *t_sync = g_strdup_printf ("sq/sync/%d", qos);

      op_async_ok (sub, OP_KIND_UNSUBSCRIBE, t_async, NULL, qos);
      op_sync_ok (sub, OP_KIND_UNSUBSCRIBE, t_sync, NULL, qos);
    }
  op_sync_ok (sub, OP_KIND_MESSAGE, "sq.sub", "barrier", ELBUS_QOS_PROCESSED);
  SPIN_UNTIL (rec->frames->len == 1);
  g_ptr_array_set_size (rec->frames, 0);

  for (ElbusQoS qos = ELBUS_QOS_NO; qos <= ELBUS_QOS_REALTIME_PROCESSED; qos++)
    {
      g_autofree char *t_async = g_strdup_printf ("sq/async/%d", qos);
      g_autofree char *t_sync = g_strdup_printf ("sq/sync/%d", qos);

      g_assert_cmpuint (publish_count (pub, rec, t_async), ==, 0);
      g_assert_cmpuint (publish_count (pub, rec, t_sync), ==, 0);
    }

  g_clear_pointer (&rec, recorder_free);
  g_clear_object (&sub);
  g_clear_object (&pub);
  drain_context ();
  elbus_test_broker_free (tb);
}

/* ------------------------------------------------------------------ */
/* What the client writes and how it reads, against fake brokers */

static void
wire_frames_script (FakeBroker    *fb,
                    ElbusTestConn *peer,
                    guint          index)
{
  ClientFrame *f[10];
  guint32 last_id = 0;
  static const guint8 sub_body[] = "wire/a/#\0wire/+/b";
  static const guint8 unsub_body[] = "wire/a/#";

  fake_handshake (peer, "wire.client");

  for (guint i = 0; i < G_N_ELEMENTS (f); i++)
    {
      f[i] = fake_read_frame (peer);
      g_assert_cmpuint (f[i]->op_id, !=, 0);
      /* a counter: fresh ids, increasing */
      g_assert_cmpuint (f[i]->op_id, >, last_id);
      last_id = f[i]->op_id;
    }

  assert_client_frame (f[0], OP_MESSAGE, ELBUS_QOS_NO, "wire.target", "m0", 2);
  assert_client_frame (f[1], OP_MESSAGE, ELBUS_QOS_PROCESSED, "wire.target", "m1", 2);
  assert_client_frame (f[2], OP_MESSAGE, ELBUS_QOS_REALTIME, "wire.target", "m2", 2);
  assert_client_frame (f[3], OP_MESSAGE, ELBUS_QOS_REALTIME_PROCESSED, "wire.target", "m3", 2);
  assert_client_frame (f[4], OP_BROADCAST, ELBUS_QOS_PROCESSED, "wire.*", "b\0x", 3);
  assert_client_frame (f[5], OP_PUBLISH, ELBUS_QOS_PROCESSED, "wire/t", "p", 1);
  assert_client_frame (f[6], OP_SUBSCRIBE, ELBUS_QOS_PROCESSED, NULL, sub_body,
                       sizeof sub_body - 1);
  assert_client_frame (f[7], OP_UNSUBSCRIBE, ELBUS_QOS_REALTIME_PROCESSED, NULL, unsub_body,
                       sizeof unsub_body - 1);
  assert_client_frame (f[8], OP_MESSAGE, ELBUS_QOS_PROCESSED, "wire.target", "", 0);
  assert_client_frame (f[9], OP_PUBLISH, ELBUS_QOS_NO, "wire/t", "last", 4);

  /* a ping, an ack nobody waits for, then the acks in reverse order;
   * message m1 was "not delivered" */
  elbus_test_conn_send (peer, "\0\0\0\0\0\0", 6);
  fake_send_ack (peer, 0x7ffffff0, 0x72);
  for (guint i = G_N_ELEMENTS (f); i-- > 0;)
    if (NEEDS_ACK (f[i]->qos))
      fake_send_ack (peer, f[i]->op_id, i == 1 ? 0x77 : 0x01);

  /* frames to the client, in one write */
  {
    g_autoptr(GBytes) m = build_broker_frame (KIND_MESSAGE, "wire.peer%%2", NULL, "rt", 2, TRUE);
    g_autoptr(GBytes) b = build_broker_frame (KIND_BROADCAST, "wire.peer", NULL, "\0b", 2,
                                              FALSE);
    g_autoptr(GBytes) p = build_broker_frame (KIND_PUBLISH, "wire.peer", "wire/t", "pub", 3,
                                              TRUE);
    g_autoptr(GByteArray) all = g_byte_array_new ();

    g_byte_array_append (all, g_bytes_get_data (m, NULL), g_bytes_get_size (m));
    g_byte_array_append (all, (const guint8 *) "\0\0\0\0\0\0", 6);
    g_byte_array_append (all, g_bytes_get_data (b, NULL), g_bytes_get_size (b));
    g_byte_array_append (all, g_bytes_get_data (p, NULL), g_bytes_get_size (p));
    elbus_test_conn_send (peer, all->data, all->len);
  }

  for (guint i = 0; i < G_N_ELEMENTS (f); i++)
    client_frame_free (f[i]);
  fake_wait_eof (peer);
}

static void
test_wire_frames (gconstpointer data)
{
  g_autoptr(FakeBroker) fb = fake_broker_new (TRANSPORT (data), 1, wire_frames_script, NULL);
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(Recorder) rec = NULL;
  const char *sub_masks[] = { "wire/a/#", "wire/+/b", NULL };
  const char *unsub_masks[] = { "wire/a/#", NULL };
  OpResult r[10] = { { NULL } };
  g_autoptr(GBytes) b_x = g_bytes_new_static ("b\0x", 3);

  g_test_summary ("The bytes the client writes for each operation and QoS (header, flags, "
                  "op ids, bodies, masks joined by NUL); acks matched by op id in any "
                  "order, with their result; pings and stray acks ignored; several broker "
                  "frames in one read, each field decoded");

  client = connect_sync (fb->address, "wire.client");
  rec = recorder_new (client);

  for (ElbusQoS qos = ELBUS_QOS_NO; qos <= ELBUS_QOS_REALTIME_PROCESSED; qos++)
    {
      g_autofree char *p = g_strdup_printf ("m%d", qos);
      g_autoptr(GBytes) bytes = bytes_str (p);

      op_start (client, OP_KIND_MESSAGE, "wire.target", bytes, qos, NULL, &r[qos]);
    }
  op_start (client, OP_KIND_BROADCAST, "wire.*", b_x, ELBUS_QOS_PROCESSED, NULL, &r[4]);
  {
    g_autoptr(GBytes) bytes = bytes_str ("p");

    op_start (client, OP_KIND_PUBLISH, "wire/t", bytes, ELBUS_QOS_PROCESSED, NULL, &r[5]);
  }
  r[6].finish = elbus_client_subscribe_finish;
  elbus_client_subscribe_async (client, sub_masks, ELBUS_QOS_PROCESSED, NULL, op_done_cb, &r[6]);
  r[7].finish = elbus_client_unsubscribe_finish;
  elbus_client_unsubscribe_async (client, unsub_masks, ELBUS_QOS_REALTIME_PROCESSED, NULL,
                                  op_done_cb, &r[7]);
  op_start (client, OP_KIND_MESSAGE, "wire.target", NULL, ELBUS_QOS_PROCESSED, NULL, &r[8]);
  {
    g_autoptr(GBytes) bytes = bytes_str ("last");

    op_start (client, OP_KIND_PUBLISH, "wire/t", bytes, ELBUS_QOS_NO, NULL, &r[9]);
  }

  for (guint i = 0; i < G_N_ELEMENTS (r); i++)
    op_wait (&r[i]);
  g_assert_error (r[1].error, ELBUS_ERROR, ELBUS_ERROR_NOT_DELIVERED);
  for (guint i = 0; i < G_N_ELEMENTS (r); i++)
    if (i != 1)
      g_assert_no_error (r[i].error);

  SPIN_UNTIL (rec->frames->len == 3);
  assert_frame (recorder_frame (rec, 0), ELBUS_FRAME_KIND_MESSAGE, "wire.peer%%2", "wire.peer",
                NULL, "rt", 2, TRUE);
  assert_frame (recorder_frame (rec, 1), ELBUS_FRAME_KIND_BROADCAST, "wire.peer", "wire.peer",
                NULL, "\0b", 2, FALSE);
  assert_frame (recorder_frame (rec, 2), ELBUS_FRAME_KIND_PUBLISH, "wire.peer", "wire.peer",
                "wire/t", "pub", 3, TRUE);
  g_assert_cmpuint (rec->n_disconnected, ==, 0);
  g_assert_true (elbus_client_is_connected (client));

  for (guint i = 0; i < G_N_ELEMENTS (r); i++)
    op_result_clear (&r[i]);
  elbus_client_close (client);
  g_clear_pointer (&fb, fake_broker_free);
  g_clear_pointer (&rec, recorder_free);
  g_clear_object (&client);
  drain_context ();
}

static const guint8 ack_codes[] = {
  0x01, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x42,
};

static void
ack_results_script (FakeBroker    *fb,
                    ElbusTestConn *peer,
                    guint          index)
{
  fake_handshake (peer, "ack.client");
  for (guint i = 0; i < 2 * G_N_ELEMENTS (ack_codes); i++)
    {
      g_autoptr(ClientFrame) f = fake_read_op (peer);

      g_assert_true (NEEDS_ACK (f->qos));
      fake_send_ack (peer, f->op_id, ack_codes[i / 2]);
    }
  fake_wait_eof (peer);
}

static void
test_wire_ack_results (gconstpointer data)
{
  g_autoptr(FakeBroker) fb = fake_broker_new (TRANSPORT (data), 1, ack_results_script, NULL);
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(GBytes) payload = bytes_str ("x");
  static const int codes[] = {
    0, ELBUS_ERROR_NOT_REGISTERED, ELBUS_ERROR_DATA, ELBUS_ERROR_IO, ELBUS_ERROR_OTHER,
    ELBUS_ERROR_NOT_SUPPORTED, ELBUS_ERROR_BUSY, ELBUS_ERROR_NOT_DELIVERED,
    ELBUS_ERROR_TIMEOUT, ELBUS_ERROR_ACCESS, ELBUS_ERROR_OTHER,
  };

  G_STATIC_ASSERT (G_N_ELEMENTS (codes) == G_N_ELEMENTS (ack_codes));

  g_test_summary ("Each ack result byte becomes its ElbusError code (an unknown one OTHER), "
                  "async and sync, and the connection stays up");

  client = connect_async_ok (fb->address, "ack.client");
  for (guint i = 0; i < G_N_ELEMENTS (ack_codes); i++)
    {
      g_autoptr(GError) error = NULL;
      OpResult r = { NULL };
      gboolean ok;

      g_test_message ("result 0x%02x", ack_codes[i]);
      op_start (client, OP_KIND_MESSAGE, "ack.target", payload, ELBUS_QOS_PROCESSED, NULL, &r);
      op_wait (&r);
      ok = elbus_client_publish_sync (client, "ack/topic", payload,
                                      ELBUS_QOS_REALTIME_PROCESSED, NULL, &error);
      if (codes[i] == 0)
        {
          g_assert_no_error (r.error);
          g_assert_no_error (error);
          g_assert_true (ok);
        }
      else
        {
          g_assert_error (r.error, ELBUS_ERROR, codes[i]);
          g_assert_error (error, ELBUS_ERROR, codes[i]);
          g_assert_false (ok);
        }
      op_result_clear (&r);
      g_assert_true (elbus_client_is_connected (client));
    }

  elbus_client_close (client);
  g_clear_pointer (&fb, fake_broker_free);
  g_clear_object (&client);
  drain_context ();
}

#define SPLIT_PAYLOAD_LEN 3000

static void
split_script (FakeBroker    *fb,
              ElbusTestConn *peer,
              guint          index)
{
  g_autofree guint8 *payload = g_malloc (SPLIT_PAYLOAD_LEN);
  g_autoptr(GBytes) frame = NULL;
  const guint8 *p;
  gsize len;

  for (guint i = 0; i < SPLIT_PAYLOAD_LEN; i++)
    payload[i] = i * 7;
  frame = build_broker_frame (KIND_MESSAGE, "split.peer", NULL, payload, SPLIT_PAYLOAD_LEN,
                              FALSE);
  p = g_bytes_get_data (frame, &len);

  fake_handshake (peer, "split.client");

  /* part of the header */
  elbus_test_conn_send (peer, p, 3);
  fake_set_stage (fb, 1);
  {
    g_autoptr(ClientFrame) go = fake_read_op (peer);
    assert_client_frame (go, OP_MESSAGE, ELBUS_QOS_NO, "split.peer", "go1", 3);
  }
  /* the rest of the header, part of the body */
  elbus_test_conn_send (peer, p + 3, 1000);
  fake_set_stage (fb, 2);
  {
    g_autoptr(ClientFrame) go = fake_read_op (peer);
    assert_client_frame (go, OP_MESSAGE, ELBUS_QOS_NO, "split.peer", "go2", 3);
  }
  /* the rest, then the same frame twice more, byte by byte */
  elbus_test_conn_send (peer, p + 1003, len - 1003);
  for (guint n = 0; n < 2; n++)
    for (gsize i = 0; i < len; i++)
      elbus_test_conn_send (peer, p + i, 1);

  fake_wait_eof (peer);
}

static void
test_wire_split (gconstpointer data)
{
  g_autoptr(FakeBroker) fb = fake_broker_new (TRANSPORT (data), 1, split_script, NULL);
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(Recorder) rec = NULL;
  g_autofree guint8 *payload = g_malloc (SPLIT_PAYLOAD_LEN);

  g_test_summary ("A broker frame that arrives in pieces (mid-header, mid-body, byte by "
                  "byte) is emitted once, whole, only when complete");

  for (guint i = 0; i < SPLIT_PAYLOAD_LEN; i++)
    payload[i] = i * 7;

  client = connect_sync (fb->address, "split.client");
  rec = recorder_new (client);

  SPIN_UNTIL_STAGE (fb, 1);
  elbus_test_spin_for (ELBUS_TEST_QUIET_MS);
  g_assert_cmpuint (rec->frames->len, ==, 0);
  op_async_ok (client, OP_KIND_MESSAGE, "split.peer", "go1", ELBUS_QOS_NO);

  SPIN_UNTIL_STAGE (fb, 2);
  elbus_test_spin_for (ELBUS_TEST_QUIET_MS);
  g_assert_cmpuint (rec->frames->len, ==, 0);
  op_async_ok (client, OP_KIND_MESSAGE, "split.peer", "go2", ELBUS_QOS_NO);

  SPIN_UNTIL (rec->frames->len == 3);
  for (guint i = 0; i < 3; i++)
    assert_frame (recorder_frame (rec, i), ELBUS_FRAME_KIND_MESSAGE, "split.peer", "split.peer",
                  NULL, payload, SPLIT_PAYLOAD_LEN, FALSE);
  g_assert_cmpuint (rec->n_disconnected, ==, 0);

  elbus_client_close (client);
  g_clear_pointer (&fb, fake_broker_free);
  g_clear_pointer (&rec, recorder_free);
  g_clear_object (&client);
  drain_context ();
}

static void
ping_script (FakeBroker    *fb,
             ElbusTestConn *peer,
             guint          index)
{
  fake_handshake (peer, "ping.client");
  for (guint i = 0; i < 2; i++)
    {
      g_autoptr(ClientFrame) f = fake_read_frame (peer);

      /* a NOP: flags 0, nothing after the 9 bytes */
      g_assert_cmphex (f->flags, ==, 0);
      g_assert_cmpuint (g_bytes_get_size (f->body), ==, 0);
      fake_set_stage (fb, i + 1);
    }
  fake_wait_eof (peer);
}

static void
test_wire_ping (gconstpointer data)
{
  g_autoptr(FakeBroker) fb = fake_broker_new (TRANSPORT (data), 1, ping_script, NULL);
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(Recorder) rec = NULL;

  g_test_summary ("An idle client pings the broker (a 9-byte NOP) about every timeout, and "
                  "stays connected");

  client = connect_sync (fb->address, "ping.client");
  rec = recorder_new (client);
  elbus_client_set_timeout (client, scaled_timeout (0.2));

  SPIN_UNTIL_STAGE (fb, 2);
  g_assert_true (elbus_client_is_connected (client));
  g_assert_cmpuint (rec->n_disconnected, ==, 0);

  elbus_client_close (client);
  g_clear_pointer (&fb, fake_broker_free);
  g_clear_pointer (&rec, recorder_free);
  g_clear_object (&client);
  drain_context ();
}

static void
no_ack_script (FakeBroker    *fb,
               ElbusTestConn *peer,
               guint          index)
{
  fake_handshake (peer, "noack.client");
  /* reads what comes (pings included) and never acks */
  elbus_test_conn_drain_until_eof (peer, 3 * ELBUS_TEST_DEADLINE_MS);
}

static void
test_wire_ack_timeout (gconstpointer data)
{
  g_autoptr(FakeBroker) fb = fake_broker_new (TRANSPORT (data), 1, no_ack_script, NULL);
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(GBytes) payload = bytes_str ("hello?");
  g_autoptr(GError) error = NULL;
  OpResult r = { NULL };
  gint64 start;

  g_test_summary ("An acknowledged operation the broker never acks fails with "
                  "ELBUS_ERROR_TIMEOUT after the client's timeout, async and sync");

  client = connect_sync (fb->address, "noack.client");
  elbus_client_set_timeout (client, scaled_timeout (0.3));

  start = g_get_monotonic_time ();
  op_start (client, OP_KIND_MESSAGE, "noack.target", payload, ELBUS_QOS_PROCESSED, NULL, &r);
  op_wait (&r);
  g_assert_error (r.error, ELBUS_ERROR, ELBUS_ERROR_TIMEOUT);
  g_assert_cmpint (g_get_monotonic_time () - start, >=, 0.3 * G_USEC_PER_SEC);
  op_result_clear (&r);

  start = g_get_monotonic_time ();
  g_assert_false (elbus_client_publish_sync (client, "noack/t", payload,
                                             ELBUS_QOS_REALTIME_PROCESSED, NULL, &error));
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_TIMEOUT);
  g_assert_cmpint (g_get_monotonic_time () - start, >=, 0.3 * G_USEC_PER_SEC);

  elbus_client_close (client);
  g_clear_pointer (&fb, fake_broker_free);
  g_clear_object (&client);
  drain_context ();
}

static void
stall_script (FakeBroker    *fb,
              ElbusTestConn *peer,
              guint          index)
{
  fake_handshake (peer, "stall.client");
  /* reads nothing until released */
  fake_wait_release (fb, index + 1);
  fake_wait_eof (peer);
}

static void
test_wire_stall (gconstpointer data)
{
  g_autoptr(FakeBroker) fb = fake_broker_new (TRANSPORT (data), 2, stall_script, NULL);
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(Recorder) rec = NULL;
  g_autoptr(GBytes) chunk = NULL;
  g_autoptr(GError) error = NULL;
  guint8 *big = g_malloc0 (256 * 1024);

  g_test_summary ("A broker that stops reading: flush_sync fails with ELBUS_ERROR_TIMEOUT, "
                  "and an async client is disconnected with ELBUS_ERROR_TIMEOUT after its "
                  "timeout; nothing hangs");

  chunk = g_bytes_new_take (big, 256 * 1024);

  /* async: the context runs, the writes stall */
  client = connect_sync (fb->address, "stall.client");
  rec = recorder_new (client);
  elbus_client_set_timeout (client, scaled_timeout (0.3));
  for (guint i = 0; i < 128; i++)
    op_start (client, OP_KIND_MESSAGE, "stall.target", chunk, ELBUS_QOS_NO, NULL, NULL);
  SPIN_UNTIL (rec->n_disconnected == 1);
  g_assert_error (rec->disconnect_error, ELBUS_ERROR, ELBUS_ERROR_TIMEOUT);
  g_assert_false (elbus_client_is_connected (client));
  fake_release (fb);
  g_clear_pointer (&rec, recorder_free);
  g_clear_object (&client);
  drain_context ();

  /* sync: flush_sync gives up */
  client = connect_sync (fb->address, "stall.client");
  elbus_client_set_timeout (client, scaled_timeout (0.3));
  for (guint i = 0; i < 128; i++)
    op_start (client, OP_KIND_MESSAGE, "stall.target", chunk, ELBUS_QOS_NO, NULL, NULL);
  g_assert_false (elbus_client_flush_sync (client, NULL, &error));
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_TIMEOUT);
  g_clear_error (&error);
  fake_release (fb);

  elbus_client_close (client);
  g_clear_pointer (&fb, fake_broker_free);
  g_clear_object (&client);
  drain_context ();
}

/* Broker frames that are not valid, one per connection */
static const struct {
  const char *what;
  const char *bytes;
  gsize       len;
} garbage[] = {
  { "unknown kind 0x55", "\x55\x00\x00\x00\x00\x00", 6 },
  { "message without a NUL after the sender", "\x12\x05\x00\x00\x00\x00" "abcde", 11 },
  { "sender not UTF-8", "\x12\x04\x00\x00\x00\x00" "\xff\xfe\x00p", 10 },
  { "publication without a NUL after the topic", "\x01\x07\x00\x00\x00\x00" "s\0topic", 13 },
};

static void
garbage_script (FakeBroker    *fb,
                ElbusTestConn *peer,
                guint          index)
{
  g_autoptr(ClientFrame) f = NULL;

  fake_handshake (peer, "garbage.client");
  f = fake_read_op (peer);
  g_assert_true (NEEDS_ACK (f->qos));
  elbus_test_conn_send (peer, garbage[index].bytes, garbage[index].len);
  /* the client must hang up */
  fake_wait_eof (peer);
}

static void
test_wire_garbage (gconstpointer data)
{
  g_autoptr(FakeBroker) fb = fake_broker_new (TRANSPORT (data), G_N_ELEMENTS (garbage),
                                              garbage_script, NULL);

  g_test_summary ("A broker frame that cannot be decoded disconnects the client with "
                  "ELBUS_ERROR_DATA, emitted once; the pending operation fails with CLOSED; "
                  "every later operation fails with CLOSED at once; the client hangs up");

  for (guint i = 0; i < G_N_ELEMENTS (garbage); i++)
    {
      g_autoptr(ElbusClient) client = NULL;
      g_autoptr(Recorder) rec = NULL;
      g_autoptr(GBytes) payload = bytes_str ("pending");
      g_autoptr(GError) error = NULL;
      OpResult r = { NULL };

      g_test_message ("%s", garbage[i].what);
      client = i % 2 == 0 ? connect_sync (fb->address, "garbage.client") :
                            connect_async_ok (fb->address, "garbage.client");
      rec = recorder_new (client);

      op_start (client, OP_KIND_MESSAGE, "garbage.target", payload, ELBUS_QOS_PROCESSED, NULL,
                &r);
      SPIN_UNTIL (rec->n_disconnected > 0 && r.done);
      g_assert_cmpuint (rec->n_disconnected, ==, 1);
      g_assert_error (rec->disconnect_error, ELBUS_ERROR, ELBUS_ERROR_DATA);
      g_assert_cmpuint (rec->n_notify_connected, ==, 1);
      g_assert_error (r.error, ELBUS_ERROR, ELBUS_ERROR_CLOSED);
      g_assert_cmpuint (r.n_calls, ==, 1);
      g_assert_cmpuint (rec->frames->len, ==, 0);
      g_assert_false (elbus_client_is_connected (client));
      op_result_clear (&r);

      assert_ops_closed (client);
      g_assert_false (elbus_client_flush_sync (client, NULL, &error));
      g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED);
      elbus_client_close (client);
      drain_context ();
      g_assert_cmpuint (rec->n_disconnected, ==, 1);
    }

  /* every connection was hung up, or the fake broker would still wait */
  g_clear_pointer (&fb, fake_broker_free);
  drain_context ();
}

/* ------------------------------------------------------------------ */
/* The broker goes away */

static void
test_disconnect_broker_stopped (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *address = broker_address (tb, transport);
  g_autoptr(ElbusClient) a = NULL;
  g_autoptr(ElbusClient) b = NULL;
  g_autoptr(Recorder) rec_a = NULL;
  g_autoptr(Recorder) rec_b = NULL;
  g_autoptr(GBytes) payload = bytes_str ("pending");
  OpResult r_msg = { NULL }, r_sub = { NULL };

  g_test_summary ("The broker stops with operations pending: each client emits "
                  "disconnected once with an error, the pending operations fail with CLOSED, "
                  "later ones fail with CLOSED at once, and nothing hangs");

  a = connect_sync (address, "stop.a");
  b = connect_async_ok (address, "stop.b");
  rec_a = recorder_new (a);
  rec_b = recorder_new (b);

  /* queued, not yet written: the context has not run */
  op_start (a, OP_KIND_MESSAGE, "stop.b", payload, ELBUS_QOS_PROCESSED, NULL, &r_msg);
  op_start (b, OP_KIND_SUBSCRIBE, "stop/#", NULL, ELBUS_QOS_PROCESSED, NULL, &r_sub);
  g_assert_false (r_msg.done);
  g_assert_false (r_sub.done);

  elbus_test_broker_free (tb);

  SPIN_UNTIL (rec_a->n_disconnected > 0 && rec_b->n_disconnected > 0 && r_msg.done &&
              r_sub.done);
  g_assert_error (r_msg.error, ELBUS_ERROR, ELBUS_ERROR_CLOSED);
  g_assert_error (r_sub.error, ELBUS_ERROR, ELBUS_ERROR_CLOSED);
  g_assert_cmpuint (r_msg.n_calls, ==, 1);
  g_assert_cmpuint (r_sub.n_calls, ==, 1);
  assert_error_domain_elbus (rec_a->disconnect_error);
  assert_error_domain_elbus (rec_b->disconnect_error);
  g_assert_false (elbus_client_is_connected (a));
  g_assert_false (elbus_client_is_connected (b));
  g_assert_cmpuint (rec_a->n_notify_connected, ==, 1);
  g_assert_cmpuint (rec_b->n_notify_connected, ==, 1);
  op_result_clear (&r_msg);
  op_result_clear (&r_sub);

  assert_ops_closed (a);
  assert_ops_closed (b);

  /* closing a disconnected client emits nothing more */
  elbus_client_close (a);
  elbus_test_spin_for (ELBUS_TEST_QUIET_MS);
  g_assert_cmpuint (rec_a->n_disconnected, ==, 1);
  g_assert_cmpuint (rec_b->n_disconnected, ==, 1);

  g_clear_pointer (&rec_a, recorder_free);
  g_clear_pointer (&rec_b, recorder_free);
  g_clear_object (&a);
  g_clear_object (&b);
  drain_context ();
}

static void
closing_script (FakeBroker    *fb,
                ElbusTestConn *peer,
                guint          index)
{
  g_autoptr(ClientFrame) f = NULL;

  fake_handshake (peer, "closing.client");
  f = fake_read_op (peer);
  /* and hang up without an ack */
}

static void
test_disconnect_sync_pending (gconstpointer data)
{
  g_autoptr(FakeBroker) fb = fake_broker_new (TRANSPORT (data), 1, closing_script, NULL);
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(Recorder) rec = NULL;
  g_autoptr(GBytes) payload = bytes_str ("waiting");
  g_autoptr(GError) error = NULL;

  g_test_summary ("The broker hangs up while a sync operation waits for its ack: the call "
                  "fails with CLOSED and disconnected is emitted once");

  client = connect_sync (fb->address, "closing.client");
  rec = recorder_new (client);
  g_assert_false (elbus_client_send_sync (client, "closing.target", payload,
                                          ELBUS_QOS_PROCESSED, NULL, &error));
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED);
  g_assert_false (elbus_client_is_connected (client));
  drain_context ();
  g_assert_cmpuint (rec->n_disconnected, ==, 1);
  assert_error_domain_elbus (rec->disconnect_error);

  g_clear_pointer (&fb, fake_broker_free);
  g_clear_pointer (&rec, recorder_free);
  g_clear_object (&client);
  drain_context ();
}

/* Events in emission order: "f:PAYLOAD" for frames, "d" for disconnected */
static void
log_frame_cb (ElbusClient *client,
              ElbusFrame  *frame,
              gpointer     user_data)
{
  GPtrArray *log = user_data;
  gsize len;
  const char *data = g_bytes_get_data (elbus_frame_get_payload (frame), &len);

  g_ptr_array_add (log, g_strdup_printf ("f:%.*s", (int) len, data));
}

static void
log_disconnected_cb (ElbusClient *client,
                     GError      *error,
                     gpointer     user_data)
{
  GPtrArray *log = user_data;

  g_ptr_array_add (log, g_strdup ("d"));
}

static void
frames_then_eof_script (FakeBroker    *fb,
                        ElbusTestConn *peer,
                        guint          index)
{
  g_autoptr(ClientFrame) f = NULL;
  g_autoptr(GByteArray) all = g_byte_array_new ();

  fake_handshake (peer, "lastwords.client");
  f = fake_read_op (peer);
  for (guint i = 1; i <= 3; i++)
    {
      g_autofree char *p = g_strdup_printf ("%u", i);
      g_autoptr(GBytes) b = build_broker_frame (KIND_MESSAGE, "lastwords.peer", NULL, p, 1,
                                                FALSE);

      g_byte_array_append (all, g_bytes_get_data (b, NULL), g_bytes_get_size (b));
    }
  /* three frames, no ack, and hang up */
  elbus_test_conn_send (peer, all->data, all->len);
}

static void
test_disconnect_frames_before_eof (gconstpointer data)
{
  g_autoptr(FakeBroker) fb = fake_broker_new (TRANSPORT (data), 2, frames_then_eof_script, NULL);
  g_autoptr(GBytes) payload = bytes_str ("x");

  g_test_summary ("Frames the broker sent just before hanging up are all emitted, async and "
                  "during a sync call; with the context running they come before "
                  "disconnected");

  for (guint i = 0; i < 2; i++)
    {
      g_autoptr(ElbusClient) client = connect_sync (fb->address, "lastwords.client");
      g_autoptr(GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
      g_autoptr(GError) error = NULL;
      g_autofree char *joined = NULL;

      g_signal_connect (client, "message", G_CALLBACK (log_frame_cb), log);
      g_signal_connect (client, "disconnected", G_CALLBACK (log_disconnected_cb), log);

      if (i == 0)
        {
          OpResult r = { NULL };

          op_start (client, OP_KIND_MESSAGE, "lastwords.peer", payload, ELBUS_QOS_PROCESSED,
                    NULL, &r);
          SPIN_UNTIL (log->len == 4 && r.done);
          g_assert_error (r.error, ELBUS_ERROR, ELBUS_ERROR_CLOSED);
          op_result_clear (&r);
        }
      else
        {
          g_assert_false (elbus_client_send_sync (client, "lastwords.peer", payload,
                                                  ELBUS_QOS_PROCESSED, NULL, &error));
          g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED);
          SPIN_UNTIL (log->len == 4);
        }
      g_ptr_array_add (log, NULL);
      joined = g_strjoinv (" ", (char **) log->pdata);
      g_test_message ("%s: %s", i == 0 ? "async" : "sync", joined);
      if (i == 0)
        g_assert_cmpstr (joined, ==, "f:1 f:2 f:3 d");
      else
        {
          /* all three, in order; where "d" falls is not specified */
          g_autofree char *frames_only = NULL;
          GString *s = g_string_new (NULL);

          for (guint j = 0; j < 4; j++)
            if (!g_str_equal (log->pdata[j], "d"))
              g_string_append_printf (s, "%s%s", s->len > 0 ? " " : "", (char *) log->pdata[j]);
          frames_only = g_string_free (s, FALSE);
          g_assert_cmpstr (frames_only, ==, "f:1 f:2 f:3");
        }
      g_signal_handlers_disconnect_by_data (client, log);
    }

  g_clear_pointer (&fb, fake_broker_free);
  drain_context ();
}

static void
test_disconnect_elbusd_killed (void)
{
  g_autoptr(ElbusTestDaemon) daemon = elbus_test_daemon_spawn (NULL, TRUE);
  g_autoptr(ElbusClient) a = NULL;
  g_autoptr(ElbusClient) b = NULL;
  g_autoptr(Recorder) rec_a = NULL;
  g_autoptr(Recorder) rec_b = NULL;
  g_autoptr(GBytes) payload = bytes_str ("pending");
  OpResult r = { NULL };

  g_test_summary ("elbusd killed with SIGKILL while an operation is pending: both clients "
                  "emit disconnected, the operation fails with CLOSED, later ones at once");

  a = connect_sync (daemon->socket_path, "kill.a");
  b = connect_async_ok (daemon->socket_path, "kill.b");
  rec_a = recorder_new (a);
  rec_b = recorder_new (b);
  op_async_ok (a, OP_KIND_MESSAGE, "kill.b", "before", ELBUS_QOS_PROCESSED);
  SPIN_UNTIL (rec_b->frames->len == 1);

  op_start (a, OP_KIND_MESSAGE, "kill.b", payload, ELBUS_QOS_REALTIME_PROCESSED, NULL, &r);
  g_assert_cmpint (kill (daemon->pid, SIGKILL), ==, 0);

  /* the ack may have come before the kill: then the op succeeded */
  SPIN_UNTIL (rec_a->n_disconnected > 0 && rec_b->n_disconnected > 0 && r.done);
  if (r.error != NULL)
    g_assert_error (r.error, ELBUS_ERROR, ELBUS_ERROR_CLOSED);
  assert_error_domain_elbus (rec_a->disconnect_error);
  assert_error_domain_elbus (rec_b->disconnect_error);
  op_result_clear (&r);

  /* and an op queued after nothing was written fails the same way */
  assert_ops_closed (a);
  assert_ops_closed (b);
  g_assert_true (elbus_test_daemon_wait (daemon, ELBUS_TEST_DEADLINE_MS));
  g_assert_cmpuint (rec_a->n_disconnected, ==, 1);
  g_assert_cmpuint (rec_b->n_disconnected, ==, 1);

  g_clear_pointer (&rec_a, recorder_free);
  g_clear_pointer (&rec_b, recorder_free);
  g_clear_object (&a);
  g_clear_object (&b);
  drain_context ();
}

static void
test_disconnect_elbusd_killed_queued (void)
{
  g_autoptr(ElbusTestDaemon) daemon = elbus_test_daemon_spawn (NULL, TRUE);
  g_autoptr(ElbusClient) a = NULL;
  g_autoptr(Recorder) rec_a = NULL;
  g_autoptr(GBytes) payload = bytes_str ("pending");
  OpResult r1 = { NULL }, r2 = { NULL };

  g_test_summary ("elbusd killed while operations wait, unwritten, in the client's queue: "
                  "they fail with CLOSED and disconnected is emitted once");

  a = connect_sync (daemon->socket_path, "killq.a");
  rec_a = recorder_new (a);
  op_start (a, OP_KIND_MESSAGE, "killq.a", payload, ELBUS_QOS_PROCESSED, NULL, &r1);
  op_start (a, OP_KIND_PUBLISH, "killq/t", payload, ELBUS_QOS_PROCESSED, NULL, &r2);
  g_assert_cmpint (kill (daemon->pid, SIGKILL), ==, 0);
  g_assert_true (elbus_test_daemon_wait (daemon, ELBUS_TEST_DEADLINE_MS));

  SPIN_UNTIL (rec_a->n_disconnected > 0 && r1.done && r2.done);
  g_assert_error (r1.error, ELBUS_ERROR, ELBUS_ERROR_CLOSED);
  g_assert_error (r2.error, ELBUS_ERROR, ELBUS_ERROR_CLOSED);
  assert_error_domain_elbus (rec_a->disconnect_error);
  g_assert_cmpuint (rec_a->n_disconnected, ==, 1);
  op_result_clear (&r1);
  op_result_clear (&r2);

  g_clear_pointer (&rec_a, recorder_free);
  g_clear_object (&a);
  drain_context ();
}

/* ------------------------------------------------------------------ */
/* Cancellation */

static void
test_cancel_pending (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *address = broker_address (tb, transport);
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(Recorder) rec = NULL;
  g_autoptr(GBytes) payload = bytes_str ("cancel me");

  g_test_summary ("An acked operation cancelled before its ack is processed fails with "
                  "G_IO_ERROR_CANCELLED, its callback runs once, the late ack is ignored "
                  "and the client stays usable; a cancellable cancelled beforehand fails "
                  "each operation, async and sync");

  client = connect_sync (address, "cancel.c");
  rec = recorder_new (client);

  for (OpKind kind = OP_KIND_MESSAGE; kind <= OP_KIND_UNSUBSCRIBE; kind++)
    for (ElbusQoS qos = ELBUS_QOS_PROCESSED; qos <= ELBUS_QOS_REALTIME_PROCESSED; qos += 2)
      {
        g_autoptr(GCancellable) cancellable = g_cancellable_new ();
        const char *target = kind == OP_KIND_MESSAGE ? "cancel.c" :
                             kind == OP_KIND_BROADCAST ? "cancel.*" : "cancel/t";
        OpResult r = { NULL };

        g_test_message ("%s, QoS %d", op_kind_paths[kind], qos);
        op_start (client, kind, target, payload, qos, cancellable, &r);
        g_cancellable_cancel (cancellable);
        op_wait (&r);
        g_assert_error (r.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
        op_result_clear (&r);
      }

  /* the late acks did not confuse anything */
  op_async_ok (client, OP_KIND_MESSAGE, "cancel.c", "after", ELBUS_QOS_PROCESSED);
  op_sync_ok (client, OP_KIND_MESSAGE, "cancel.c", "after", ELBUS_QOS_REALTIME_PROCESSED);

  /* cancelled beforehand */
  for (OpKind kind = OP_KIND_MESSAGE; kind <= OP_KIND_UNSUBSCRIBE; kind++)
    for (ElbusQoS qos = ELBUS_QOS_NO; qos <= ELBUS_QOS_REALTIME_PROCESSED; qos++)
      {
        g_autoptr(GCancellable) cancellable = g_cancellable_new ();
        g_autoptr(GError) error = NULL;
        const char *target = kind == OP_KIND_MESSAGE ? "cancel.other" :
                             kind == OP_KIND_BROADCAST ? "cancel.other.*" : "cancel/t";
        OpResult r = { NULL };

        g_cancellable_cancel (cancellable);
        op_start (client, kind, target, payload, qos, cancellable, &r);
        op_wait (&r);
        g_assert_error (r.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
        op_result_clear (&r);

        g_assert_false (op_sync (client, kind, target, payload, qos, cancellable, &error));
        g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
      }
  g_assert_true (elbus_client_is_connected (client));
  g_assert_cmpuint (rec->n_disconnected, ==, 0);

  g_clear_pointer (&rec, recorder_free);
  g_clear_object (&client);
  drain_context ();
  elbus_test_broker_free (tb);
}

static void
cancel_waiting_script (FakeBroker    *fb,
                       ElbusTestConn *peer,
                       guint          index)
{
  g_autoptr(ClientFrame) f = NULL;
  g_autoptr(ClientFrame) f2 = NULL;

  fake_handshake (peer, "cancelw.client");
  f = fake_read_op (peer);
  /* the client now waits in send_sync: cancel it, then ack late */
  g_cancellable_cancel (fb->cancellable);
  fake_wait_release (fb, 1);
  fake_send_ack (peer, f->op_id, 0x01);
  /* the next op is acked properly */
  f2 = fake_read_op (peer);
  fake_send_ack (peer, f2->op_id, 0x01);
  fake_wait_eof (peer);
}

static void
test_cancel_sync_waiting (gconstpointer data)
{
  g_autoptr(FakeBroker) fb = fake_broker_new (TRANSPORT (data), 1, cancel_waiting_script, NULL);
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(GBytes) payload = bytes_str ("slow");
  g_autoptr(GError) error = NULL;
  gint64 start;

  g_test_summary ("A sync operation waiting for its ack returns G_IO_ERROR_CANCELLED as soon "
                  "as it is cancelled from another thread; the late ack is ignored");

  client = connect_sync (fb->address, "cancelw.client");
  /* the timeout is past the deadline: only the cancellation ends the call */
  elbus_client_set_timeout (client, 2.0 * ELBUS_TEST_DEADLINE_MS / 1000.0);
  start = g_get_monotonic_time ();
  g_assert_false (elbus_client_send_sync (client, "cancelw.target", payload,
                                          ELBUS_QOS_PROCESSED, fb->cancellable, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_cmpint (g_get_monotonic_time () - start, <, (gint64) ELBUS_TEST_DEADLINE_MS * 1000);
  g_clear_error (&error);
  g_assert_true (elbus_client_is_connected (client));

  fake_release (fb);
  g_assert_true (elbus_client_send_sync (client, "cancelw.target", payload,
                                         ELBUS_QOS_PROCESSED, NULL, &error));
  g_assert_no_error (error);

  elbus_client_close (client);
  g_clear_pointer (&fb, fake_broker_free);
  g_clear_object (&client);
  drain_context ();
}

static void
test_cancel_no_ack (gconstpointer data)
{
  g_autoptr(FakeBroker) fb = fake_broker_new (TRANSPORT (data), 1, no_ack_script, NULL);
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(GBytes) payload = bytes_str ("never acked");

  g_test_summary ("Cancelling an acked operation the broker never acks completes it at once "
                  "with G_IO_ERROR_CANCELLED, long before the client's timeout");

  client = connect_sync (fb->address, "noack.client");
  /* far past the spin deadline: only the cancellation can end the ops */
  elbus_client_set_timeout (client, 1000.0);

  for (OpKind kind = OP_KIND_MESSAGE; kind <= OP_KIND_UNSUBSCRIBE; kind++)
    {
      g_autoptr(GCancellable) cancellable = g_cancellable_new ();
      const char *target = kind == OP_KIND_MESSAGE ? "noack.target" :
                           kind == OP_KIND_BROADCAST ? "noack.*" : "noack/t";
      OpResult r = { NULL };

      op_start (client, kind, target, payload, ELBUS_QOS_PROCESSED, cancellable, &r);
      /* written, waiting for the ack */
      g_assert_true (elbus_client_flush_sync (client, NULL, NULL));
      elbus_test_spin_for (ELBUS_TEST_QUIET_MS / 3);
      g_assert_false (r.done);
      g_cancellable_cancel (cancellable);
      op_wait (&r);
      g_assert_error (r.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
      op_result_clear (&r);
    }
  g_assert_true (elbus_client_is_connected (client));

  elbus_client_close (client);
  g_clear_pointer (&fb, fake_broker_free);
  g_clear_object (&client);
  drain_context ();
}

static void
stall_cancel_script (FakeBroker    *fb,
                     ElbusTestConn *peer,
                     guint          index)
{
  fake_handshake (peer, "stallc.client");
  /* reads nothing; cancels when the test is about to block */
  fake_wait_release (fb, 2 * index + 1);
  g_cancellable_cancel (fb->cancellable);
  /* past the client's timeout: a client that ignores the cancellation
   * fails the test's own assertions, not this wait */
  fake_wait_release_ms (fb, 2 * index + 2, 3 * ELBUS_TEST_DEADLINE_MS);
  fake_wait_eof (peer);
}

static void
test_cancel_flush_stalled (gconstpointer data)
{
  g_autoptr(FakeBroker) fb = fake_broker_new (TRANSPORT (data), 4, stall_cancel_script, NULL);
  g_autoptr(GBytes) chunk = g_bytes_new_take (g_malloc0 (256 * 1024), 256 * 1024);

  g_test_summary ("A blocked flush_sync, or a blocked sync operation without ack, returns "
                  "G_IO_ERROR_CANCELLED promptly when its cancellable is cancelled (before "
                  "or during the call), not after the client's timeout");

  for (guint i = 0; i < 4; i++)
    {
      g_autoptr(ElbusClient) client = connect_sync (fb->address, "stallc.client");
      g_autoptr(GError) error = NULL;
      g_autoptr(GCancellable) cancelled = g_cancellable_new ();
      GCancellable *cancellable;
      gint64 start;
      gboolean ok;

      /* the timeout is past the deadline: only the cancellation ends the call */
      elbus_client_set_timeout (client, 2.0 * ELBUS_TEST_DEADLINE_MS / 1000.0);
      for (guint j = 0; j < 128; j++)
        op_start (client, OP_KIND_MESSAGE, "stallc.target", chunk, ELBUS_QOS_NO, NULL, NULL);

      /* even: cancelled beforehand; odd: by the fake broker, maybe mid-call */
      g_cancellable_cancel (cancelled);
      g_cancellable_reset (fb->cancellable);
      cancellable = i % 2 == 0 ? cancelled : fb->cancellable;
      fake_release (fb);
      if (i % 2 == 0)
        g_test_message ("%s, cancelled before", i < 2 ? "flush_sync" : "send_sync QoS 0");
      else
        g_test_message ("%s, cancelled from a thread", i < 2 ? "flush_sync" : "send_sync QoS 0");

      start = g_get_monotonic_time ();
      if (i < 2)
        ok = elbus_client_flush_sync (client, cancellable, &error);
      else
        ok = elbus_client_send_sync (client, "stallc.target", chunk, ELBUS_QOS_NO, cancellable,
                                     &error);
      g_test_message ("returned after %" G_GINT64_FORMAT " ms",
                      (g_get_monotonic_time () - start) / 1000);
      g_assert_false (ok);
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
      g_assert_cmpint (g_get_monotonic_time () - start, <,
                       (gint64) ELBUS_TEST_DEADLINE_MS * 1000);
      fake_release (fb);
      elbus_client_close (client);
    }

  g_clear_pointer (&fb, fake_broker_free);
  drain_context ();
}

/* ------------------------------------------------------------------ */
/* Sync operations without a main loop */

static void
test_sync_no_loop (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *address = broker_address (tb, transport);
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(ElbusTestConn) peer = NULL;
  g_autoptr(Recorder) rec = NULL;
  const char *masks[] = { "sync/#", NULL };
  guint32 op_id;

  g_test_summary ("Sync operations work with no main loop running, and frames that arrive "
                  "meanwhile are not emitted during the calls but later from the context, "
                  "in order");

  client = connect_sync (address, "sync.c");
  rec = recorder_new (client);
  peer = elbus_test_conn_new (tb, transport, "sync.peer");

  op_sync_ok (client, OP_KIND_SUBSCRIBE, "sync/#", NULL, ELBUS_QOS_PROCESSED);

  /* routed to the client (acked) before the client's own frames below */
  op_id = elbus_test_conn_send_op (peer, OP_MESSAGE, ELBUS_QOS_PROCESSED, "sync.c", "m1", 2);
  elbus_test_conn_expect_ack (peer, op_id, 0x01);
  op_id = elbus_test_conn_send_op (peer, OP_PUBLISH, ELBUS_QOS_PROCESSED, "sync/x", "p1", 2);
  elbus_test_conn_expect_ack (peer, op_id, 0x01);

  op_sync_ok (client, OP_KIND_PUBLISH, "sync/y", "p2", ELBUS_QOS_PROCESSED);
  op_sync_ok (client, OP_KIND_MESSAGE, "sync.c", "m3", ELBUS_QOS_REALTIME_PROCESSED);
  op_sync_ok (client, OP_KIND_BROADCAST, "sync.*", "b4", ELBUS_QOS_PROCESSED);
  /* unacked: written when the call returns */
  op_sync_ok (client, OP_KIND_MESSAGE, "sync.peer", "to-peer", ELBUS_QOS_NO);
  elbus_test_conn_expect_message (peer, KIND_BROADCAST, "sync.c", NULL, "b4");
  elbus_test_conn_expect_message (peer, KIND_MESSAGE, "sync.c", NULL, "to-peer");
  op_sync_ok (client, OP_KIND_PUBLISH, "sync/z", "p5", ELBUS_QOS_REALTIME);
  op_sync_ok (client, OP_KIND_MESSAGE, "sync.c", "m6", ELBUS_QOS_PROCESSED);
  g_assert_true (elbus_client_unsubscribe_sync (client, masks, ELBUS_QOS_PROCESSED, NULL, NULL));
  g_assert_true (elbus_client_flush_sync (client, NULL, NULL));

  /* nothing emitted while the calls ran */
  g_assert_cmpuint (rec->frames->len, ==, 0);

  SPIN_UNTIL (rec->frames->len >= 7);
  assert_frame_str (recorder_frame (rec, 0), ELBUS_FRAME_KIND_MESSAGE, "sync.peer", NULL, "m1");
  assert_frame_str (recorder_frame (rec, 1), ELBUS_FRAME_KIND_PUBLISH, "sync.peer", "sync/x",
                    "p1");
  assert_frame_str (recorder_frame (rec, 2), ELBUS_FRAME_KIND_PUBLISH, "sync.c", "sync/y", "p2");
  assert_frame (recorder_frame (rec, 3), ELBUS_FRAME_KIND_MESSAGE, "sync.c", "sync.c", NULL,
                "m3", 2, TRUE);
  assert_frame_str (recorder_frame (rec, 4), ELBUS_FRAME_KIND_BROADCAST, "sync.c", NULL, "b4");
  assert_frame (recorder_frame (rec, 5), ELBUS_FRAME_KIND_PUBLISH, "sync.c", "sync.c", "sync/z",
                "p5", 2, TRUE);
  assert_frame_str (recorder_frame (rec, 6), ELBUS_FRAME_KIND_MESSAGE, "sync.c", NULL, "m6");

  /* unsubscribed: a fence from the peer comes, the publication does not */
  op_id = elbus_test_conn_send_op (peer, OP_PUBLISH, ELBUS_QOS_NO, "sync/after", "no", 2);
  op_id = elbus_test_conn_send_op (peer, OP_MESSAGE, ELBUS_QOS_NO, "sync.c", "fence", 5);
  SPIN_UNTIL (rec->frames->len >= 8);
  g_assert_cmpuint (rec->frames->len, ==, 8);
  g_assert_true (frame_is_fence (recorder_frame (rec, 7), "sync.peer"));
  g_assert_cmpuint (rec->n_disconnected, ==, 0);

  g_clear_pointer (&rec, recorder_free);
  g_clear_object (&client);
  drain_context ();
  elbus_test_broker_free (tb);
}

static void
test_sync_deferred_order (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *address = broker_address (tb, transport);
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(Recorder) rec = NULL;

  g_test_summary ("Frames received during sync calls come out before frames received "
                  "afterwards by the context, in the order they arrived");

  client = connect_async_ok (address, "defer.c");
  rec = recorder_new (client);

  for (guint i = 0; i < 5; i++)
    {
      g_autofree char *p = g_strdup_printf ("%u", i);

      op_sync_ok (client, OP_KIND_MESSAGE, "defer.c", p,
                  i % 2 == 0 ? ELBUS_QOS_PROCESSED : ELBUS_QOS_REALTIME_PROCESSED);
    }
  g_assert_cmpuint (rec->frames->len, ==, 0);
  for (guint i = 5; i < 10; i++)
    {
      g_autofree char *p = g_strdup_printf ("%u", i);
      g_autoptr(GBytes) bytes = bytes_str (p);

      op_start (client, OP_KIND_MESSAGE, "defer.c", bytes, ELBUS_QOS_NO, NULL, NULL);
    }
  /* and more sync calls while the deferred frames wait */
  op_sync_ok (client, OP_KIND_MESSAGE, "defer.c", "10", ELBUS_QOS_PROCESSED);
  op_sync_ok (client, OP_KIND_MESSAGE, "defer.c", "11", ELBUS_QOS_NO);

  SPIN_UNTIL (rec->frames->len == 12);
  for (guint i = 0; i < 12; i++)
    {
      g_autofree char *p = g_strdup_printf ("%u", i);

      g_assert_cmpstr (elbus_frame_get_sender (recorder_frame (rec, i)), ==, "defer.c");
      g_assert_cmpmem (g_bytes_get_data (elbus_frame_get_payload (recorder_frame (rec, i)), NULL),
                       g_bytes_get_size (elbus_frame_get_payload (recorder_frame (rec, i))),
                       p, strlen (p));
    }

  g_clear_pointer (&rec, recorder_free);
  g_clear_object (&client);
  drain_context ();
  elbus_test_broker_free (tb);
}

#define HANDLER_REQUESTS 50

typedef struct {
  ElbusClient *server;
  guint        n_requests;
  guint        n_errors;
  gboolean     in_handler;
  guint        n_nested;
} HandlerData;

static void
replying_handler (ElbusClient *client,
                  ElbusFrame  *frame,
                  gpointer     user_data)
{
  HandlerData *hd = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *expected = g_strdup_printf ("req %u", hd->n_requests);
  g_autofree char *reply = g_strdup_printf ("rep %u", hd->n_requests);
  g_autoptr(GBytes) bytes = bytes_str (reply);
  gsize len;
  const char *data = g_bytes_get_data (elbus_frame_get_payload (frame), &len);

  if (hd->in_handler)
    hd->n_nested++;
  hd->in_handler = TRUE;
  g_assert_cmpmem (data, len, expected, strlen (expected));
  hd->n_requests++;
  /* a sync call from a signal handler: drives the connection while the
   * context is dispatching this very client */
  if (!elbus_client_send_sync (client, "hd.a", bytes, ELBUS_QOS_PROCESSED, NULL, &error))
    hd->n_errors++;
  hd->in_handler = FALSE;
}

static void
test_sync_from_handler (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *address = broker_address (tb, transport);
  g_autoptr(ElbusClient) a = NULL;
  g_autoptr(ElbusClient) b = NULL;
  g_autoptr(Recorder) rec_a = NULL;
  HandlerData hd = { NULL };

  g_test_summary ("A sync call made from a message handler (a reply) works while more "
                  "requests arrive; no handler runs nested, every request is handled in "
                  "order and every reply arrives in order");

  a = connect_sync (address, "hd.a");
  b = connect_sync (address, "hd.b");
  rec_a = recorder_new (a);
  hd.server = b;
  g_signal_connect (b, "message", G_CALLBACK (replying_handler), &hd);

  for (guint i = 0; i < HANDLER_REQUESTS; i++)
    {
      g_autofree char *p = g_strdup_printf ("req %u", i);
      g_autoptr(GBytes) bytes = bytes_str (p);

      op_start (a, OP_KIND_MESSAGE, "hd.b", bytes, ELBUS_QOS_NO, NULL, NULL);
    }

  SPIN_UNTIL (rec_a->frames->len == HANDLER_REQUESTS);
  g_assert_cmpuint (hd.n_requests, ==, HANDLER_REQUESTS);
  g_assert_cmpuint (hd.n_errors, ==, 0);
  g_assert_cmpuint (hd.n_nested, ==, 0);
  for (guint i = 0; i < HANDLER_REQUESTS; i++)
    {
      g_autofree char *p = g_strdup_printf ("rep %u", i);

      assert_frame_str (recorder_frame (rec_a, i), ELBUS_FRAME_KIND_MESSAGE, "hd.b", NULL, p);
    }

  g_signal_handlers_disconnect_by_data (b, &hd);
  g_clear_pointer (&rec_a, recorder_free);
  g_clear_object (&a);
  g_clear_object (&b);
  drain_context ();
  elbus_test_broker_free (tb);
}

/* ------------------------------------------------------------------ */
/* Handlers that drop the last reference */

typedef struct {
  ElbusClient *client;          /* (owned) (nullable): the only reference */
  guint        n_after;         /* emissions after the reference was dropped */
  guint        n_calls;
} UnrefData;

static void
unref_frame_handler (ElbusClient *client,
                     ElbusFrame  *frame,
                     gpointer     user_data)
{
  UnrefData *ud = user_data;

  ud->n_calls++;
  if (ud->client == NULL)
    {
      ud->n_after++;
      return;
    }
  g_assert_true (client == ud->client);
  g_clear_object (&ud->client);
}

static void
unref_disconnected_handler (ElbusClient *client,
                            GError      *error,
                            gpointer     user_data)
{
  UnrefData *ud = user_data;

  ud->n_calls++;
  if (ud->client == NULL)
    {
      ud->n_after++;
      return;
    }
  g_assert_nonnull (error);
  g_clear_object (&ud->client);
}

static void
unref_op_cb (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  UnrefData *ud = user_data;
  g_autoptr(GError) error = NULL;

  ud->n_calls++;
  g_assert_true (elbus_client_send_finish (ELBUS_CLIENT (source), result, &error));
  g_assert_no_error (error);
  g_clear_object (&ud->client);
}

static void
test_unref_in_handler (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *address = broker_address (tb, transport);
  g_autoptr(ElbusClient) peer = NULL;
  g_autoptr(GBytes) payload = bytes_str ("drop me");
  UnrefData ud = { NULL };

  g_test_summary ("A signal handler or callback that drops the last reference to the client "
                  "does not crash it: in a message handler with more frames in the same "
                  "read, in a disconnected handler, in a handler of frames deferred by a "
                  "sync call, in an operation's callback; the connection closes");

  peer = connect_sync (address, "unref.peer");

  /* message handler, three frames in one batch */
  ud.client = connect_sync (address, "unref.c");
  g_signal_connect (ud.client, "message", G_CALLBACK (unref_frame_handler), &ud);
  for (guint i = 0; i < 3; i++)
    op_start (peer, OP_KIND_MESSAGE, "unref.c", payload, ELBUS_QOS_NO, NULL, NULL);
  SPIN_UNTIL (ud.client == NULL);
  elbus_test_broker_wait_client (tb, "unref.c", FALSE);
  drain_context ();
  g_test_message ("%u emissions after the last unref", ud.n_after);

  /* disconnected handler: the broker drops the client */
  memset (&ud, 0, sizeof ud);
  ud.client = connect_async_ok (address, "unref.c");
  g_signal_connect (ud.client, "disconnected", G_CALLBACK (unref_disconnected_handler), &ud);
  g_assert_true (elbus_test_broker_force_disconnect (tb, "unref.c"));
  SPIN_UNTIL (ud.client == NULL);
  drain_context ();
  g_assert_cmpuint (ud.n_calls, ==, 1);

  /* frames deferred by sync calls */
  memset (&ud, 0, sizeof ud);
  ud.client = connect_sync (address, "unref.c");
  g_signal_connect (ud.client, "message", G_CALLBACK (unref_frame_handler), &ud);
  for (guint i = 0; i < 3; i++)
    g_assert_true (elbus_client_send_sync (ud.client, "unref.c", payload, ELBUS_QOS_PROCESSED,
                                           NULL, NULL));
  g_assert_cmpuint (ud.n_calls, ==, 0);
  SPIN_UNTIL (ud.client == NULL);
  elbus_test_broker_wait_client (tb, "unref.c", FALSE);
  drain_context ();

  /* an operation's callback */
  memset (&ud, 0, sizeof ud);
  ud.client = connect_sync (address, "unref.c");
  elbus_client_send_async (ud.client, "unref.peer", payload, ELBUS_QOS_PROCESSED, NULL,
                           unref_op_cb, &ud);
  SPIN_UNTIL (ud.client == NULL);
  elbus_test_broker_wait_client (tb, "unref.c", FALSE);
  drain_context ();
  g_assert_cmpuint (ud.n_calls, ==, 1);

  /* the last reference dropped while an acked operation is pending: the
   * operation completes (either way), exactly once */
  {
    ElbusClient *client = connect_sync (address, "unref.c");
    OpResult r = { NULL };

    op_start (client, OP_KIND_MESSAGE, "unref.peer", payload, ELBUS_QOS_PROCESSED, NULL, &r);
    g_object_unref (client);
    SPIN_UNTIL (r.done);
    g_assert_cmpuint (r.n_calls, ==, 1);
    if (r.error != NULL)
      g_assert_error (r.error, ELBUS_ERROR, ELBUS_ERROR_CLOSED);
    op_result_clear (&r);
    elbus_test_broker_wait_client (tb, "unref.c", FALSE);
  }

  g_clear_object (&peer);
  drain_context ();
  elbus_test_broker_free (tb);
}

/* ------------------------------------------------------------------ */
/* Volume */

#define VOLUME_COUNT 10000
#define VOLUME_BATCH 250
#define VOLUME_IN_FLIGHT 2000

typedef struct {
  guint n;
  guint n_bad;
} Counter;

static void
counting_handler (ElbusClient *client,
                  ElbusFrame  *frame,
                  gpointer     user_data)
{
  Counter *c = user_data;
  char expected[16];
  gsize len;
  const char *data = g_bytes_get_data (elbus_frame_get_payload (frame), &len);

  g_snprintf (expected, sizeof expected, "%05u", c->n);
  if (len != 5 || memcmp (data, expected, 5) != 0 ||
      !g_str_equal (elbus_frame_get_sender (frame), "vol.c") ||
      elbus_frame_get_kind (frame) != ELBUS_FRAME_KIND_MESSAGE)
    {
      if (c->n_bad++ == 0)
        g_test_message ("frame %u: got '%.*s' from %s", c->n, (int) len, data,
                        elbus_frame_get_sender (frame));
    }
  c->n++;
}

static void
test_volume_self (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *address = broker_address (tb, transport);
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(Recorder) rec = NULL;
  Counter counter = { 0 };
  guint sent = 0;

  g_test_summary ("10,000 QoS 0 messages to self, sent in batches while reading, all arrive "
                  "in order and the broker never drops the client");

  client = connect_sync (address, "vol.c");
  rec = recorder_new (client);
  g_signal_handlers_disconnect_by_func (client, recorder_frame_cb, rec);
  g_signal_connect (client, "message", G_CALLBACK (counting_handler), &counter);

  while (sent < VOLUME_COUNT)
    {
      for (guint i = 0; i < VOLUME_BATCH; i++, sent++)
        {
          char p[16];
          g_autoptr(GBytes) bytes = NULL;

          g_snprintf (p, sizeof p, "%05u", sent);
          bytes = g_bytes_new (p, 5);
          op_start (client, OP_KIND_MESSAGE, "vol.c", bytes, ELBUS_QOS_NO, NULL, NULL);
        }
      /* keep what the broker queues for us well under its queue size */
      SPIN_UNTIL (counter.n + VOLUME_IN_FLIGHT >= sent || rec->n_disconnected > 0);
      g_assert_cmpuint (rec->n_disconnected, ==, 0);
    }

  SPIN_UNTIL (counter.n == VOLUME_COUNT || rec->n_disconnected > 0);
  g_assert_cmpuint (rec->n_disconnected, ==, 0);
  g_assert_cmpuint (counter.n, ==, VOLUME_COUNT);
  g_assert_cmpuint (counter.n_bad, ==, 0);

  g_signal_handlers_disconnect_by_func (client, counting_handler, &counter);
  g_clear_pointer (&rec, recorder_free);
  g_clear_object (&client);
  drain_context ();
  elbus_test_broker_free (tb);
}

static GBytes *
pattern_bytes (gsize len,
               guint seed)
{
  guint8 *p = g_malloc (len);

  for (gsize i = 0; i < len; i++)
    p[i] = (guint8) ((i * 131 + (i >> 9) + seed) & 0xff);
  return g_bytes_new_take (p, len);
}

static void
test_volume_large (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *address = broker_address (tb, transport);
  g_autoptr(ElbusClient) a = NULL;
  g_autoptr(ElbusClient) b = NULL;
  g_autoptr(Recorder) rec_a = NULL;
  g_autoptr(Recorder) rec_b = NULL;
  g_autoptr(GBytes) p1 = pattern_bytes (1024 * 1024, 1);
  g_autoptr(GBytes) p2 = pattern_bytes (1024 * 1024 + 17, 2);
  g_autoptr(GBytes) p3 = pattern_bytes (3 * 1024 * 1024, 3);
  g_autoptr(GError) error = NULL;
  OpResult r = { NULL };

  g_test_summary ("1 MiB (and larger) payloads round-trip intact: to self acked async, to "
                  "another client sync, published real-time; frames around them intact");

  a = connect_sync (address, "big.a");
  b = connect_async_ok (address, "big.b");
  rec_a = recorder_new (a);
  rec_b = recorder_new (b);
  subscribe_ok (b, "big/topic", NULL);

  op_start (a, OP_KIND_MESSAGE, "big.a", p1, ELBUS_QOS_PROCESSED, NULL, &r);
  op_wait (&r);
  g_assert_no_error (r.error);
  op_result_clear (&r);

  g_assert_true (elbus_client_send_sync (a, "big.b", p2, ELBUS_QOS_NO, NULL, &error));
  g_assert_no_error (error);
  op_sync_ok (a, OP_KIND_MESSAGE, "big.b", "small", ELBUS_QOS_NO);
  g_assert_true (elbus_client_publish_sync (a, "big/topic", p3, ELBUS_QOS_REALTIME_PROCESSED,
                                            NULL, &error));
  g_assert_no_error (error);
  op_sync_ok (a, OP_KIND_MESSAGE, "big.b", "after", ELBUS_QOS_PROCESSED);

  SPIN_UNTIL (rec_a->frames->len == 1 && rec_b->frames->len == 4);
  g_assert_true (g_bytes_equal (elbus_frame_get_payload (recorder_frame (rec_a, 0)), p1));
  g_assert_true (g_bytes_equal (elbus_frame_get_payload (recorder_frame (rec_b, 0)), p2));
  assert_frame_str (recorder_frame (rec_b, 1), ELBUS_FRAME_KIND_MESSAGE, "big.a", NULL, "small");
  g_assert_cmpstr (elbus_frame_get_topic (recorder_frame (rec_b, 2)), ==, "big/topic");
  g_assert_true (elbus_frame_is_realtime (recorder_frame (rec_b, 2)));
  g_assert_true (g_bytes_equal (elbus_frame_get_payload (recorder_frame (rec_b, 2)), p3));
  assert_frame_str (recorder_frame (rec_b, 3), ELBUS_FRAME_KIND_MESSAGE, "big.a", NULL, "after");

  g_clear_pointer (&rec_a, recorder_free);
  g_clear_pointer (&rec_b, recorder_free);
  g_clear_object (&a);
  g_clear_object (&b);
  drain_context ();
  elbus_test_broker_free (tb);
}

/* ------------------------------------------------------------------ */
/* flush, close, properties */

static void
test_flush (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *address = broker_address (tb, transport);
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(ElbusTestConn) peer = NULL;
  g_autoptr(GBytes) one = bytes_str ("one");
  g_autoptr(GError) error = NULL;
  OpResult r = { NULL };

  g_test_summary ("flush_sync writes queued frames with no main loop running; unacked "
                  "sync operations are written when they return; flush_sync on a closed "
                  "client fails with CLOSED");

  client = connect_sync (address, "flush.c");
  peer = elbus_test_conn_new (tb, transport, "flush.peer");

  op_start (client, OP_KIND_MESSAGE, "flush.peer", one, ELBUS_QOS_NO, NULL, &r);
  g_assert_true (elbus_client_flush_sync (client, NULL, &error));
  g_assert_no_error (error);
  elbus_test_conn_expect_message (peer, KIND_MESSAGE, "flush.c", NULL, "one");

  op_sync_ok (client, OP_KIND_MESSAGE, "flush.peer", "two", ELBUS_QOS_NO);
  elbus_test_conn_expect_message (peer, KIND_MESSAGE, "flush.c", NULL, "two");
  op_sync_ok (client, OP_KIND_BROADCAST, "flush.peer", "three", ELBUS_QOS_REALTIME);
  elbus_test_conn_expect_frame (peer, KIND_BROADCAST, "flush.c", NULL, "three", 5, TRUE);

  /* nothing queued */
  g_assert_true (elbus_client_flush_sync (client, NULL, &error));
  g_assert_no_error (error);

  op_wait (&r);
  g_assert_no_error (r.error);
  op_result_clear (&r);

  elbus_client_close (client);
  g_assert_false (elbus_client_flush_sync (client, NULL, &error));
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED);

  g_clear_object (&client);
  drain_context ();
  elbus_test_broker_free (tb);
}

static void
test_close (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *address = broker_address (tb, transport);
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(ElbusTestConn) peer = NULL;
  g_autoptr(Recorder) rec = NULL;
  g_autoptr(GBytes) acked = bytes_str ("acked");
  g_autoptr(GBytes) queued = bytes_str ("queued");
  OpResult r1 = { NULL }, r2 = { NULL };

  g_test_summary ("close() writes what is queued, emits disconnected once with a NULL "
                  "error and notify::connected, fails pending operations with CLOSED; "
                  "later operations fail with CLOSED; closing again does nothing");

  client = connect_sync (address, "close.c");
  rec = recorder_new (client);
  peer = elbus_test_conn_new (tb, transport, "close.peer");

  op_start (client, OP_KIND_MESSAGE, "close.peer", acked, ELBUS_QOS_PROCESSED, NULL, &r1);
  op_start (client, OP_KIND_MESSAGE, "close.peer", queued, ELBUS_QOS_NO, NULL, &r2);
  elbus_client_close (client);

  g_assert_cmpuint (rec->n_disconnected, ==, 1);
  g_assert_no_error (rec->disconnect_error);
  g_assert_cmpuint (rec->n_notify_connected, ==, 1);
  g_assert_false (elbus_client_is_connected (client));

  SPIN_UNTIL (r1.done && r2.done);
  g_assert_error (r1.error, ELBUS_ERROR, ELBUS_ERROR_CLOSED);
  g_assert_no_error (r2.error);
  op_result_clear (&r1);
  op_result_clear (&r2);

  /* what was queued went out before the connection closed */
  elbus_test_conn_expect_message (peer, KIND_MESSAGE, "close.c", NULL, "acked");
  elbus_test_conn_expect_message (peer, KIND_MESSAGE, "close.c", NULL, "queued");
  elbus_test_broker_wait_client (tb, "close.c", FALSE);

  assert_ops_closed (client);
  elbus_client_close (client);
  drain_context ();
  g_assert_cmpuint (rec->n_disconnected, ==, 1);
  g_assert_cmpuint (rec->n_notify_connected, ==, 1);

  g_clear_pointer (&rec, recorder_free);
  g_clear_object (&client);
  drain_context ();
  elbus_test_broker_free (tb);
}

static void
closing_handler (ElbusClient *client,
                 ElbusFrame  *frame,
                 gpointer     user_data)
{
  guint *n = user_data;

  (*n)++;
  elbus_client_close (client);
}

static void
test_close_in_handler (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *address = broker_address (tb, transport);
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(ElbusTestConn) peer = NULL;
  g_autoptr(Recorder) rec = NULL;
  guint n = 0;

  g_test_summary ("close() from a message handler, with more frames in the same read: no "
                  "frame is emitted after it, disconnected comes once with a NULL error");

  client = connect_sync (address, "closeh.c");
  g_signal_connect (client, "message", G_CALLBACK (closing_handler), &n);
  rec = recorder_new (client);
  peer = elbus_test_conn_new (tb, transport, "closeh.peer");

  /* five frames in one write: the client reads them at once */
  {
    g_autoptr(GByteArray) all = g_byte_array_new ();

    for (guint i = 0; i < 5; i++)
      {
        g_autoptr(GBytes) f = elbus_test_build_op (i + 1, OP_MESSAGE, ELBUS_QOS_NO, "closeh.c",
                                                   "m", 1);

        g_byte_array_append (all, g_bytes_get_data (f, NULL), g_bytes_get_size (f));
      }
    elbus_test_conn_send (peer, all->data, all->len);
  }

  SPIN_UNTIL (rec->n_disconnected == 1);
  elbus_test_spin_for (ELBUS_TEST_QUIET_MS);
  g_assert_cmpuint (n, ==, 1);
  g_assert_cmpuint (rec->frames->len, <=, 1);
  g_assert_cmpuint (rec->n_disconnected, ==, 1);
  g_assert_no_error (rec->disconnect_error);
  elbus_test_broker_wait_client (tb, "closeh.c", FALSE);

  g_signal_handlers_disconnect_by_data (client, &n);
  g_clear_pointer (&rec, recorder_free);
  g_clear_object (&client);
  drain_context ();
  elbus_test_broker_free (tb);
}

typedef struct {
  guint timeout;
  guint queue_size;
  guint buf_size;
  guint connected;
} NotifyCounts;

static void
count_notify_cb (GObject    *object,
                 GParamSpec *pspec,
                 gpointer    user_data)
{
  NotifyCounts *n = user_data;

  if (g_str_equal (pspec->name, "timeout"))
    n->timeout++;
  else if (g_str_equal (pspec->name, "queue-size"))
    n->queue_size++;
  else if (g_str_equal (pspec->name, "buf-size"))
    n->buf_size++;
  else if (g_str_equal (pspec->name, "connected"))
    n->connected++;
}

static void
test_properties (void)
{
  ElbusTestBroker *tb = new_broker ();
  const char *address = elbus_test_broker_get_unix_path (tb);
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(ElbusTestConn) peer = NULL;
  g_autoptr(Recorder) rec = NULL;
  g_autofree char *name = NULL;
  g_autofree char *addr = NULL;
  gboolean connected = FALSE;
  double timeout = 0;
  guint queue_size = 0, buf_size = 0;
  NotifyCounts counts = { 0 };
  OpResult r[4] = { { NULL } };
  g_autoptr(GBytes) payload = bytes_str ("q");

  g_test_summary ("Properties name, address, connected, timeout, queue-size, buf-size: "
                  "defaults, setters with notify (only on change), queue-size bounds the "
                  "frames waiting to be written (ELBUS_ERROR_BUSY past it), buf-size 1 "
                  "writes each frame at once");

  client = connect_sync (address, "props.c");
  rec = recorder_new (client);
  g_signal_connect (client, "notify", G_CALLBACK (count_notify_cb), &counts);

  g_object_get (client, "name", &name, "address", &addr, "connected", &connected,
                "timeout", &timeout, "queue-size", &queue_size, "buf-size", &buf_size, NULL);
  g_assert_cmpstr (name, ==, "props.c");
  g_assert_cmpstr (addr, ==, address);
  g_assert_true (connected);
  g_assert_cmpfloat (timeout, ==, ELBUS_CLIENT_DEFAULT_TIMEOUT);
  g_assert_cmpuint (queue_size, ==, ELBUS_CLIENT_DEFAULT_QUEUE_SIZE);
  g_assert_cmpuint (buf_size, ==, ELBUS_CLIENT_DEFAULT_BUF_SIZE);

  g_object_set (client, "timeout", 2.5, NULL);
  g_assert_cmpfloat (elbus_client_get_timeout (client), ==, 2.5);
  elbus_client_set_timeout (client, 2.5);
  g_assert_cmpuint (counts.timeout, ==, 1);

  elbus_client_set_queue_size (client, 3);
  g_object_set (client, "queue-size", 3, NULL);
  g_assert_cmpuint (elbus_client_get_queue_size (client), ==, 3);
  g_assert_cmpuint (counts.queue_size, ==, 1);

  g_object_set (client, "buf-size", 1u << 20, NULL);
  g_assert_cmpuint (elbus_client_get_buf_size (client), ==, 1u << 20);
  g_assert_cmpuint (counts.buf_size, ==, 1);

  /* three frames wait unwritten (the context has not run); a fourth is
   * one too many */
  for (guint i = 0; i < 4; i++)
    op_start (client, OP_KIND_MESSAGE, "props.c", payload, ELBUS_QOS_NO, NULL, &r[i]);
  for (guint i = 0; i < 4; i++)
    op_wait (&r[i]);
  for (guint i = 0; i < 3; i++)
    g_assert_no_error (r[i].error);
  g_assert_error (r[3].error, ELBUS_ERROR, ELBUS_ERROR_BUSY);
  SPIN_UNTIL (rec->frames->len == 3);
  fence1 (client, rec);
  g_assert_cmpuint (rec->frames->len, ==, 3);
  for (guint i = 0; i < 4; i++)
    op_result_clear (&r[i]);

  /* buf-size 1: each frame is written as it is queued */
  elbus_client_set_queue_size (client, ELBUS_CLIENT_DEFAULT_QUEUE_SIZE);
  elbus_client_set_buf_size (client, 1);
  peer = elbus_test_conn_new (tb, ELBUS_TEST_TRANSPORT_UNIX, "props.peer");
  op_start (client, OP_KIND_MESSAGE, "props.peer", payload, ELBUS_QOS_NO, NULL, NULL);
  elbus_test_conn_expect_message (peer, KIND_MESSAGE, "props.c", NULL, "q");
  /* and so is a real-time frame whatever buf-size */
  elbus_client_set_buf_size (client, 1u << 20);
  op_start (client, OP_KIND_MESSAGE, "props.peer", payload, ELBUS_QOS_REALTIME, NULL, NULL);
  elbus_test_conn_expect_frame (peer, KIND_MESSAGE, "props.c", NULL, "q", 1, TRUE);

  elbus_client_close (client);
  g_assert_cmpuint (counts.connected, ==, 1);
  g_object_get (client, "connected", &connected, NULL);
  g_assert_false (connected);
  /* still readable after close */
  g_assert_cmpstr (elbus_client_get_name (client), ==, "props.c");
  g_assert_cmpstr (elbus_client_get_address (client), ==, address);

  g_signal_handlers_disconnect_by_data (client, &counts);
  g_clear_pointer (&rec, recorder_free);
  g_clear_object (&client);
  drain_context ();
  elbus_test_broker_free (tb);
}

/* ------------------------------------------------------------------ */
/* Against elbusd */

static void
test_elbusd_basic (void)
{
  g_autoptr(ElbusTestDaemon) daemon = elbus_test_daemon_spawn (NULL, TRUE);
  const char *address = daemon->socket_path;
  g_autoptr(ElbusClient) a = NULL;
  g_autoptr(ElbusClient) b = NULL;
  g_autoptr(ElbusClient) sec = NULL;
  g_autoptr(ElbusClient) dup = NULL;
  g_autoptr(Recorder) rec_a = NULL;
  g_autoptr(Recorder) rec_b = NULL;
  g_autoptr(GBytes) big = pattern_bytes (1024 * 1024, 9);
  g_autoptr(GBytes) payload = bytes_str ("x");
  g_autoptr(GError) error = NULL;
  OpResult r = { NULL };

  g_test_summary ("Against a spawned elbusd: sync and async connect, messages with each QoS, "
                  "broadcast, publish/subscribe, a secondary, NOT_REGISTERED, BUSY, a 1 MiB "
                  "payload; SIGTERM disconnects the clients");

  a = connect_sync (address, "d.a");
  b = connect_async_ok (address, "d.b");
  rec_a = recorder_new (a);
  rec_b = recorder_new (b);
  subscribe_ok (b, "d/+/t", NULL);

  for (ElbusQoS qos = ELBUS_QOS_NO; qos <= ELBUS_QOS_REALTIME_PROCESSED; qos++)
    {
      g_autofree char *p = g_strdup_printf ("q%d", qos);

      op_async_ok (a, OP_KIND_MESSAGE, "d.b", p, qos);
      op_sync_ok (a, OP_KIND_BROADCAST, "d.?", p, qos);
      op_async_ok (a, OP_KIND_PUBLISH, "d/x/t", p, qos);
    }
  fence (a, (Recorder *[]) { rec_a, rec_b }, 2);
  g_assert_cmpuint (rec_b->frames->len, ==, 12);
  g_assert_cmpuint (rec_a->frames->len, ==, 4);
  for (ElbusQoS qos = ELBUS_QOS_NO; qos <= ELBUS_QOS_REALTIME_PROCESSED; qos++)
    {
      g_autofree char *p = g_strdup_printf ("q%d", qos);

      assert_frame (recorder_frame (rec_b, 3 * qos), ELBUS_FRAME_KIND_MESSAGE, "d.a", "d.a",
                    NULL, p, 2, IS_REALTIME (qos));
      assert_frame (recorder_frame (rec_b, 3 * qos + 1), ELBUS_FRAME_KIND_BROADCAST, "d.a",
                    "d.a", NULL, p, 2, IS_REALTIME (qos));
      assert_frame (recorder_frame (rec_b, 3 * qos + 2), ELBUS_FRAME_KIND_PUBLISH, "d.a", "d.a",
                    "d/x/t", p, 2, IS_REALTIME (qos));
      assert_frame (recorder_frame (rec_a, qos), ELBUS_FRAME_KIND_BROADCAST, "d.a", "d.a", NULL,
                    p, 2, IS_REALTIME (qos));
    }
  g_ptr_array_set_size (rec_a->frames, 0);
  g_ptr_array_set_size (rec_b->frames, 0);

  /* a secondary */
  sec = connect_sync (address, "d.a%%rpc");
  op_sync_ok (sec, OP_KIND_MESSAGE, "d.b", "from sec", ELBUS_QOS_PROCESSED);
  SPIN_UNTIL (rec_b->frames->len == 1);
  assert_frame (recorder_frame (rec_b, 0), ELBUS_FRAME_KIND_MESSAGE, "d.a%%rpc", "d.a", NULL,
                "from sec", 8, FALSE);
  g_ptr_array_set_size (rec_b->frames, 0);

  /* refusals */
  op_start (a, OP_KIND_MESSAGE, "d.nobody", payload, ELBUS_QOS_PROCESSED, NULL, &r);
  op_wait (&r);
  g_assert_error (r.error, ELBUS_ERROR, ELBUS_ERROR_NOT_REGISTERED);
  op_result_clear (&r);
  dup = elbus_client_new_sync (address, "d.b", NULL, &error);
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_BUSY);
  g_assert_null (dup);
  g_clear_error (&error);
  dup = connect_async (address, "d.none%%1", NULL, &error);
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_NOT_REGISTERED);
  g_assert_null (dup);
  g_clear_error (&error);

  /* 1 MiB */
  g_assert_true (elbus_client_send_sync (a, "d.b", big, ELBUS_QOS_PROCESSED, NULL, &error));
  g_assert_no_error (error);
  SPIN_UNTIL (rec_b->frames->len == 1);
  g_assert_true (g_bytes_equal (elbus_frame_get_payload (recorder_frame (rec_b, 0)), big));

  /* elbusd goes away cleanly */
  elbus_test_daemon_stop (daemon);
  SPIN_UNTIL (rec_a->n_disconnected == 1 && rec_b->n_disconnected == 1);
  assert_error_domain_elbus (rec_a->disconnect_error);
  assert_error_domain_elbus (rec_b->disconnect_error);

  g_clear_pointer (&rec_a, recorder_free);
  g_clear_pointer (&rec_b, recorder_free);
  g_clear_object (&a);
  g_clear_object (&b);
  g_clear_object (&sec);
  drain_context ();
}

static void
test_disconnected_with_reason (gconstpointer data)
{
  ElbusTestTransport transport = TRANSPORT (data);
  ElbusTestBroker *tb = new_broker ();
  g_autofree char *address = broker_address (tb, transport);
  g_autoptr(ElbusClient) client = connect_sync (address, "told.why");
  g_autoptr(ElbusClient) forger = connect_sync (address, "told.forger");
  g_autoptr(ElbusClient) plain = connect_sync (address, "told.plain");
  g_autoptr(Recorder) rec = recorder_new (client);
  g_autoptr(Recorder) rec_plain = recorder_new (plain);
  g_autoptr(GBytes) forged = elbus_test_msgpack_from_text ("{'s': <'disconnect'>, "
                                                           "'d': <'forged'>}");
  g_autoptr(GError) error = NULL;

  g_test_summary ("A client the broker disconnects with a reason reports it in the "
                  "disconnected signal's error and still delivers the .broker/warn "
                  "publication; the same notice from anyone but .broker is ignored");

  /* anyone may publish on .broker/warn: not taken for the broker's word */
  g_assert_true (elbus_client_publish_sync (forger, ".broker/warn", forged,
                                            ELBUS_QOS_PROCESSED, NULL, &error));
  g_assert_no_error (error);
  SPIN_UNTIL (rec_plain->frames->len == 1);
  g_assert_true (elbus_test_broker_force_disconnect (tb, "told.plain"));
  SPIN_UNTIL (rec_plain->n_disconnected == 1);
  g_assert_error (rec_plain->disconnect_error, ELBUS_ERROR, ELBUS_ERROR_CLOSED);
  g_assert_cmpstr (rec_plain->disconnect_error->message, ==, "the broker closed the connection");

  SPIN_UNTIL (rec->frames->len == 1);
  g_assert_true (elbus_test_broker_disconnect_client (tb, "told.why", "policy changed"));
  SPIN_UNTIL (rec->n_disconnected == 1);
  g_assert_error (rec->disconnect_error, ELBUS_ERROR, ELBUS_ERROR_CLOSED);
  g_assert_cmpstr (rec->disconnect_error->message, ==,
                   "disconnected by the broker: policy changed");
  g_assert_cmpuint (rec->frames->len, ==, 2);
  g_assert_cmpstr (elbus_frame_get_sender (recorder_frame (rec, 1)), ==, ".broker");
  g_assert_cmpstr (elbus_frame_get_topic (recorder_frame (rec, 1)), ==, ".broker/warn");
  elbus_test_broker_wait_client (tb, "told.why", FALSE);

  g_clear_pointer (&rec, recorder_free);
  g_clear_pointer (&rec_plain, recorder_free);
  g_clear_object (&client);
  g_clear_object (&plain);
  g_clear_object (&forger);
  elbus_test_broker_free (tb);
  drain_context ();
}

/* ------------------------------------------------------------------ */

static void
add_both (const char    *path,
          GTestDataFunc  func)
{
  for (int t = ELBUS_TEST_TRANSPORT_UNIX; t <= ELBUS_TEST_TRANSPORT_TCP; t++)
    {
      g_autofree char *full = g_strdup_printf ("/elbus/client/%s/%s", path,
                                               elbus_test_transport_name (t));

      g_test_add_data_func (full, GINT_TO_POINTER (t), func);
    }
}

static void
skip_no_websocket (gconstpointer data)
{
  g_test_skip ("this build has no WebSocket support (-Dwebsocket=disabled)");
}

/* A test against the in-process broker, with the same body over UNIX,
 * TCP and WebSocket (/elbus/client/PATH/unix, tcp and ws). */
static void
add_all (const char    *path,
         GTestDataFunc  func)
{
  g_autofree char *ws = g_strdup_printf ("/elbus/client/%s/ws", path);

  add_both (path, func);
  if (elbus_test_have_websocket ())
    g_test_add_data_func (ws, GINT_TO_POINTER (ELBUS_TEST_TRANSPORT_WS), func);
  else
    g_test_add_data_func (ws, NULL, skip_no_websocket);
}

int
main (int   argc,
      char *argv[])
{
  static QosCase qos_cases[3 * 4 * 3];
  guint n = 0;

  elbus_test_init (&argc, &argv);

  add_all ("connect/sync", test_connect_sync);
  add_all ("disconnected/reason", test_disconnected_with_reason);
  add_all ("connect/async", test_connect_async);
  add_all ("connect/name-taken", test_connect_name_taken);
  g_test_add_func ("/elbus/client/connect/invalid-names", test_connect_invalid_names);
  g_test_add_func ("/elbus/client/connect/unreachable", test_connect_unreachable);
  g_test_add_func ("/elbus/client/connect/ws-unreachable", test_connect_ws_unreachable);
  g_test_add_func ("/elbus/client/connect/address-forms", test_connect_address_forms);
  add_all ("connect/bad-greeting", test_handshake_bad_greeting);
  add_all ("connect/refused", test_handshake_refused);
  add_all ("connect/eof-in-handshake", test_handshake_eof);
  add_all ("connect/cancel", test_connect_cancel);
  g_test_add_func ("/elbus/client/connect/silent-broker", test_connect_silent_broker);
  g_test_add_func ("/elbus/client/connect/initable", test_connect_initable);

  add_all ("secondary", test_secondary);

  for (OpKind kind = OP_KIND_MESSAGE; kind <= OP_KIND_PUBLISH; kind++)
    for (ElbusQoS qos = ELBUS_QOS_NO; qos <= ELBUS_QOS_REALTIME_PROCESSED; qos++)
      for (int t = ELBUS_TEST_TRANSPORT_UNIX; t <= ELBUS_TEST_TRANSPORT_WS; t++)
        {
          g_autofree char *path = g_strdup_printf ("/elbus/client/%s/%s/%s",
                                                   op_kind_paths[kind], qos_names[qos],
                                                   elbus_test_transport_name (t));

          qos_cases[n] = (QosCase) { kind, qos, t };
          if (t == ELBUS_TEST_TRANSPORT_WS && !elbus_test_have_websocket ())
            g_test_add_data_func (path, NULL, skip_no_websocket);
          else
            g_test_add_data_func (path, &qos_cases[n], test_op_qos);
          n++;
        }
  add_all ("send/empty-payload", test_op_empty_payload);
  add_all ("send/not-registered", test_message_not_registered);
  g_test_add_func ("/elbus/client/send/invalid-utf8", test_op_invalid_utf8);
  add_all ("send/self", test_self);
  add_all ("broadcast/masks", test_broadcast_masks);
  add_all ("publish/masks", test_topic_masks);
  add_all ("subscribe/qos", test_subscribe_qos);

  add_all ("wire/frames", test_wire_frames);
  add_all ("wire/ack-results", test_wire_ack_results);
  add_all ("wire/split-frames", test_wire_split);
  add_all ("wire/ping", test_wire_ping);
  add_all ("wire/ack-timeout", test_wire_ack_timeout);
  add_all ("wire/stalled-broker", test_wire_stall);
  add_all ("wire/garbage", test_wire_garbage);

  add_all ("disconnect/broker-stopped", test_disconnect_broker_stopped);
  add_all ("disconnect/sync-pending", test_disconnect_sync_pending);
  add_all ("disconnect/frames-before-eof", test_disconnect_frames_before_eof);
  g_test_add_func ("/elbus/client/disconnect/elbusd-killed", test_disconnect_elbusd_killed);
  g_test_add_func ("/elbus/client/disconnect/elbusd-killed-queued",
                   test_disconnect_elbusd_killed_queued);

  add_all ("cancel/pending", test_cancel_pending);
  add_all ("cancel/sync-waiting", test_cancel_sync_waiting);
  add_all ("cancel/no-ack", test_cancel_no_ack);
  add_all ("cancel/flush-stalled", test_cancel_flush_stalled);

  add_all ("sync/no-loop", test_sync_no_loop);
  add_all ("sync/deferred-order", test_sync_deferred_order);
  add_all ("sync/from-handler", test_sync_from_handler);

  add_all ("unref-in-handler", test_unref_in_handler);

  add_all ("volume/10000-to-self", test_volume_self);
  add_all ("volume/1mib-payload", test_volume_large);

  add_all ("flush", test_flush);
  add_all ("close", test_close);
  add_all ("close-in-handler", test_close_in_handler);
  g_test_add_func ("/elbus/client/properties", test_properties);

  g_test_add_func ("/elbus/client/elbusd/basic", test_elbusd_basic);

  return g_test_run ();
}
