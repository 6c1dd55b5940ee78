/* SPDX-License-Identifier: MIT */
/* In-process clients on worker threads, each on its own main context, and
 * a socket client, all on one broker run by the main thread: acked
 * messages in a ring, publications and RPC calls; a client freed with
 * frames in flight; a broker closed while workers still send; a _sync
 * call cancelled while it waits. */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>

#include <elbus/elbus.h>

#include "elbus-test-util.h"

#define N_INPROC 4
#define N_WORKERS (N_INPROC + 1)   /* the last one connects by socket */
#define N_ROUNDS 200

typedef struct _Fixture Fixture;

typedef struct {
  Fixture      *f;
  guint         index;
  char         *name;
  char         *next;
  char         *prev;
  GThread      *thread;
  gint          messages;        /* from prev, in order */
  gint          publications;    /* from the others */
  GError       *error;           /* the first failure, if any */
} Worker;

struct _Fixture {
  ElbusBroker *broker;
  char        *dir;
  char        *path;
  GMutex       lock;
  GCond        cond;
  guint        ready;            /* workers registered and subscribed */
  guint        finished;         /* workers that sent and received all */
  gint         running;          /* workers not yet returned */
  Worker       workers[N_WORKERS];
};

static void
fixture_set_up (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  f->dir = g_dir_make_tmp ("elbus-threads-XXXXXX", &error);
  g_assert_no_error (error);
  f->path = g_build_filename (f->dir, "bus.sock", NULL);
  f->broker = elbus_broker_new ();
  elbus_broker_listen_unix (f->broker, f->path, &error);
  g_assert_no_error (error);
  g_mutex_init (&f->lock);
  g_cond_init (&f->cond);
}

static void
fixture_tear_down (Fixture       *f,
                   gconstpointer  data)
{
  g_clear_object (&f->broker);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  for (guint i = 0; i < N_WORKERS; i++)
    {
      g_free (f->workers[i].name);
      g_free (f->workers[i].next);
      g_free (f->workers[i].prev);
    }
  g_mutex_clear (&f->lock);
  g_cond_clear (&f->cond);
  g_unlink (f->path);
  g_rmdir (f->dir);
  g_free (f->path);
  g_free (f->dir);
}

/* The main thread runs the broker until every worker has returned. */
static void
run_broker_until_workers_return (Fixture *f)
{
  gint64 deadline = g_get_monotonic_time () + elbus_test_scale_ms (30000) * 1000;

  while (g_atomic_int_get (&f->running) > 0)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, TRUE);
    }
}

static void
worker_returns (Fixture *f)
{
  g_atomic_int_add (&f->running, -1);
  g_main_context_wakeup (NULL);
}

static gboolean
tick (gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

/* Runs the worker's own context until *@count reaches @wanted (or the
 * barrier counter does, under the fixture's lock). */
static void
spin_until (GMainContext *context,
            gint         *count,
            gint          wanted)
{
  gint64 deadline = g_get_monotonic_time () + elbus_test_scale_ms (20000) * 1000;

  while (g_atomic_int_get (count) < wanted)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (context, TRUE);
    }
}

/* A barrier that keeps the worker's context running: others may call it
 * meanwhile. */
static void
barrier (Fixture      *f,
         GMainContext *context,
         guint        *counter)
{
  gint64 deadline = g_get_monotonic_time () + elbus_test_scale_ms (20000) * 1000;

  g_mutex_lock (&f->lock);
  (*counter)++;
  while (*counter < N_WORKERS)
    {
      g_mutex_unlock (&f->lock);
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (context, TRUE);
      g_mutex_lock (&f->lock);
    }
  g_mutex_unlock (&f->lock);
}

static void
on_message (ElbusClient *client,
            ElbusFrame  *frame,
            Worker      *w)
{
  g_autofree char *expected = g_strdup_printf ("m%d", g_atomic_int_get (&w->messages));
  GBytes *payload = elbus_frame_get_payload (frame);

  g_assert_cmpstr (elbus_frame_get_sender (frame), ==, w->prev);
  g_assert_cmpmem (g_bytes_get_data (payload, NULL), g_bytes_get_size (payload),
                   expected, strlen (expected));
  g_atomic_int_inc (&w->messages);
}

static void
on_publication (ElbusClient *client,
                ElbusFrame  *frame,
                Worker      *w)
{
  g_assert_cmpstr (elbus_frame_get_topic (frame), ==, "t/all");
  if (g_strcmp0 (elbus_frame_get_sender (frame), w->name) != 0)
    g_atomic_int_inc (&w->publications);
}

static gboolean
on_echo (ElbusRpcPeer       *peer,
         ElbusRpcInvocation *invocation,
         gpointer            user_data)
{
  elbus_rpc_invocation_return_value (invocation, elbus_rpc_invocation_get_params (invocation));
  return TRUE;
}

/* One round of a ring worker: its answers. */
typedef struct {
  GBytes *payload;
  gint    done;
} Round;

static void
sent_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  Round *round = user_data;
  g_autoptr(GError) error = NULL;

  elbus_client_send_finish (ELBUS_CLIENT (source), result, &error);
  g_assert_no_error (error);
  round->done++;
}

static void
published_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Round *round = user_data;
  g_autoptr(GError) error = NULL;

  elbus_client_publish_finish (ELBUS_CLIENT (source), result, &error);
  g_assert_no_error (error);
  round->done++;
}

static void
called_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  Round *round = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) answer = NULL;

  answer = elbus_rpc_peer_call_finish (ELBUS_RPC_PEER (source), result, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (answer, round->payload));
  round->done++;
}

static gpointer
ring_worker (gpointer user_data)
{
  Worker *w = user_data;
  Fixture *f = w->f;
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GSource) ticker = g_timeout_source_new (10);
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(ElbusClient) rpc_client = NULL;
  g_autoptr(ElbusRpcPeer) peer = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *rpc_name = NULL;
  g_autofree char *next_rpc = NULL;
  const char *masks[] = { "t/all", NULL };

  g_main_context_push_thread_default (context);
  g_source_set_callback (ticker, tick, NULL, NULL);
  g_source_attach (ticker, context);

  /* RPC takes all of its client's messages: it gets one of its own */
  rpc_name = g_strconcat (w->name, ".rpc", NULL);
  next_rpc = g_strconcat (w->next, ".rpc", NULL);
  if (w->index < N_INPROC)
    {
      client = elbus_broker_register_client (f->broker, w->name, &error);
      g_assert_no_error (error);
      rpc_client = elbus_broker_register_client (f->broker, rpc_name, &error);
    }
  else
    {
      client = elbus_client_new_sync (f->path, w->name, NULL, &error);
      g_assert_no_error (error);
      rpc_client = elbus_client_new_sync (f->path, rpc_name, NULL, &error);
    }
  g_assert_no_error (error);
  g_signal_connect (client, "message", G_CALLBACK (on_message), w);
  g_signal_connect (client, "publication", G_CALLBACK (on_publication), w);
  peer = elbus_rpc_peer_new (rpc_client);
  g_signal_connect (peer, "handle-call::echo", G_CALLBACK (on_echo), NULL);
  elbus_client_subscribe_sync (client, masks, ELBUS_QOS_PROCESSED, NULL, &error);
  g_assert_no_error (error);

  barrier (f, context, &f->ready);

  /* each round waits for its answers while running the context: the
   * others' calls are served meanwhile */
  for (guint i = 0; i < N_ROUNDS; i++)
    {
      g_autofree char *text = g_strdup_printf ("m%u", i);
      g_autoptr(GBytes) payload = g_bytes_new (text, strlen (text));
      Round round = { .payload = payload };
      gint wanted = 2;

      elbus_client_send_async (client, w->next, payload, ELBUS_QOS_PROCESSED, NULL, sent_cb,
                               &round);
      elbus_client_publish_async (client, "t/all", payload, ELBUS_QOS_PROCESSED, NULL,
                                  published_cb, &round);
      if (i % 10 == 0)
        {
          elbus_rpc_peer_call_async (peer, next_rpc, "echo", payload, ELBUS_QOS_PROCESSED, -1,
                                     NULL, called_cb, &round);
          wanted++;
        }
      spin_until (context, &round.done, wanted);
    }

  spin_until (context, &w->messages, N_ROUNDS);
  spin_until (context, &w->publications, N_ROUNDS * (N_WORKERS - 1));
  barrier (f, context, &f->finished);

  g_assert_cmpint (g_atomic_int_get (&w->messages), ==, N_ROUNDS);
  g_assert_cmpint (g_atomic_int_get (&w->publications), ==, N_ROUNDS * (N_WORKERS - 1));

  g_clear_object (&peer);
  g_clear_object (&rpc_client);
  g_clear_object (&client);
  g_source_destroy (ticker);
  g_main_context_pop_thread_default (context);
  worker_returns (f);
  return NULL;
}

static void
start_workers (Fixture      *f,
               guint         n,
               GThreadFunc   func,
               const char   *prefix)
{
  g_atomic_int_set (&f->running, n);
  for (guint i = 0; i < n; i++)
    {
      Worker *w = &f->workers[i];

      w->f = f;
      w->index = i;
      w->name = g_strdup_printf ("%s.%u", prefix, i);
      w->next = g_strdup_printf ("%s.%u", prefix, (i + 1) % n);
      w->prev = g_strdup_printf ("%s.%u", prefix, (i + n - 1) % n);
      w->thread = g_thread_new (w->name, func, w);
    }
}

static void
join_workers (Fixture *f,
              guint    n)
{
  run_broker_until_workers_return (f);
  for (guint i = 0; i < n; i++)
    g_thread_join (f->workers[i].thread);
}

/* Four in-process workers and a socket client exchange acked messages in
 * a ring, publications to all, and RPC calls, while the main thread runs
 * the broker. */
static void
test_ring (Fixture       *f,
           gconstpointer  data)
{
  g_auto(GStrv) names = NULL;

  start_workers (f, N_WORKERS, ring_worker, "ring");
  join_workers (f, N_WORKERS);

  /* everybody gone, their names free */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  names = elbus_broker_list_clients (f->broker);
  for (guint i = 0; i < N_WORKERS; i++)
    g_assert_false (g_strv_contains ((const char * const *) names, f->workers[i].name));
}

typedef struct {
  Fixture *f;
  gint     sender_ready;
  gint     receiver_ready;
  gint     done;
} Inflight;

/* Sends frames to "free.receiver" as fast as it can, then checks that
 * nothing broke: its own client still works. */
static gpointer
inflight_sender (gpointer user_data)
{
  Inflight *in = user_data;
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) payload = g_bytes_new_static ("flood", 5);

  g_main_context_push_thread_default (context);
  client = elbus_broker_register_client (in->f->broker, "free.sender", &error);
  g_assert_no_error (error);
  g_atomic_int_set (&in->sender_ready, TRUE);
  while (!g_atomic_int_get (&in->receiver_ready))
    g_thread_yield ();

  for (guint i = 0; i < 2000; i++)
    elbus_client_send_async (client, "free.receiver", payload, ELBUS_QOS_NO, NULL, NULL, NULL);
  elbus_client_flush_sync (client, NULL, &error);
  g_assert_no_error (error);

  /* the receiver is gone by now, or soon: an acked send says so, or
   * succeeds; the client itself still works */
  elbus_client_send_sync (client, "free.sender", payload, ELBUS_QOS_PROCESSED, NULL, &error);
  g_assert_no_error (error);

  g_clear_object (&client);
  g_main_context_pop_thread_default (context);
  worker_returns (in->f);
  return NULL;
}

/* Receives without ever running its context, sends some frames of its
 * own without waiting (no acknowledgement: nothing pending keeps the
 * client), and frees its client. */
static gpointer
inflight_receiver (gpointer user_data)
{
  Inflight *in = user_data;
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) payload = g_bytes_new_static ("back", 4);

  g_main_context_push_thread_default (context);
  client = elbus_broker_register_client (in->f->broker, "free.receiver", &error);
  g_assert_no_error (error);
  while (!g_atomic_int_get (&in->sender_ready))
    g_thread_yield ();
  g_atomic_int_set (&in->receiver_ready, TRUE);

  g_usleep (2000);
  for (guint i = 0; i < 500; i++)
    elbus_client_send_async (client, "free.sender", payload, ELBUS_QOS_NO, NULL, NULL, NULL);
  g_clear_object (&client);

  g_main_context_pop_thread_default (context);
  worker_returns (in->f);
  return NULL;
}

/* A client freed on its thread while frames for it, and from it, are in
 * flight: nothing is touched after it is gone, and the broker forgets it. */
static void
test_free_in_flight (Fixture       *f,
                     gconstpointer  data)
{
  Inflight in = { .f = f };
  GThread *sender, *receiver;
  gint64 deadline;

  g_atomic_int_set (&f->running, 2);
  sender = g_thread_new ("sender", inflight_sender, &in);
  receiver = g_thread_new ("receiver", inflight_receiver, &in);
  run_broker_until_workers_return (f);
  g_thread_join (sender);
  g_thread_join (receiver);

  deadline = g_get_monotonic_time () + elbus_test_scale_ms (5000) * 1000;
  for (;;)
    {
      g_auto(GStrv) names = NULL;

      while (g_main_context_iteration (NULL, FALSE))
        ;
      names = elbus_broker_list_clients (f->broker);
      if (!g_strv_contains ((const char * const *) names, "free.receiver") &&
          !g_strv_contains ((const char * const *) names, "free.sender"))
        break;
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (1000);
    }
}

/* Sends acked messages to the next worker until the broker goes; then
 * every operation fails with ELBUS_ERROR_CLOSED. */
static gpointer
shutdown_worker (gpointer user_data)
{
  Worker *w = user_data;
  Fixture *f = w->f;
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) payload = g_bytes_new_static ("x", 1);
  gint64 deadline = g_get_monotonic_time () + elbus_test_scale_ms (20000) * 1000;

  g_main_context_push_thread_default (context);
  client = elbus_broker_register_client (f->broker, w->name, &error);
  g_assert_no_error (error);
  g_mutex_lock (&f->lock);
  f->ready++;
  g_cond_broadcast (&f->cond);
  g_mutex_unlock (&f->lock);

  /* the next one may not be registered yet: that error is not the end */
  while (error == NULL || !g_error_matches (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED))
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_clear_error (&error);
      elbus_client_send_sync (client, w->next, payload, ELBUS_QOS_PROCESSED, NULL, &error);
      elbus_client_publish_async (client, "t/all", payload, ELBUS_QOS_NO, NULL, NULL, NULL);
      g_main_context_iteration (context, FALSE);
    }
  g_clear_error (&error);

  /* after the broker: CLOSED, at once */
  elbus_client_send_sync (client, w->next, payload, ELBUS_QOS_PROCESSED, NULL, &error);
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED);
  g_clear_error (&error);
  while (g_main_context_iteration (context, FALSE))
    ;
  g_assert_false (elbus_client_is_connected (client));

  g_clear_object (&client);
  g_main_context_pop_thread_default (context);
  worker_returns (f);
  return NULL;
}

/* The broker is closed and freed while worker threads still send: they
 * see ELBUS_ERROR_CLOSED, nothing crashes. */
static void
test_broker_shutdown (Fixture       *f,
                      gconstpointer  data)
{
  gint64 until;

  start_workers (f, N_INPROC, shutdown_worker, "stop");

  /* all registered, then some traffic */
  while (TRUE)
    {
      gboolean all;

      g_mutex_lock (&f->lock);
      all = f->ready == N_INPROC;
      g_mutex_unlock (&f->lock);
      if (all)
        break;
      g_main_context_iteration (NULL, TRUE);
    }
  until = g_get_monotonic_time () + 100 * 1000;
  while (g_get_monotonic_time () < until)
    g_main_context_iteration (NULL, FALSE);

  elbus_broker_close (f->broker);
  g_clear_object (&f->broker);

  join_workers (f, N_INPROC);
}

/* A _sync call of an in-process client on a worker thread, waiting for
 * an answer that does not come, returns G_IO_ERROR_CANCELLED when its
 * cancellable is cancelled from another thread: the cancellation wakes
 * the wait. */
typedef struct {
  Fixture            *f;
  GCancellable       *cancellable;
  ElbusRpcInvocation *held;          /* never answered */
  GError             *error;         /* the worker's call's */
} Cancel;

static gboolean
on_hold (ElbusRpcPeer       *peer,
         ElbusRpcInvocation *invocation,
         Cancel             *c)
{
  /* the call arrived, so the worker waits for its answer: cancel it from
   * here, the broker's thread */
  g_assert_null (c->held);
  c->held = g_object_ref (invocation);
  g_cancellable_cancel (c->cancellable);
  return TRUE;
}

static gpointer
cancel_worker (gpointer user_data)
{
  Cancel *c = user_data;
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(ElbusRpcPeer) peer = NULL;
  g_autoptr(GBytes) params = g_bytes_new_static ("", 0);
  g_autoptr(GBytes) reply = NULL;
  g_autoptr(GError) error = NULL;

  g_main_context_push_thread_default (context);
  client = elbus_broker_register_client (c->f->broker, "cancel.worker", &error);
  g_assert_no_error (error);
  peer = elbus_rpc_peer_new (client);

  /* a long timeout: only the cancellation ends the wait */
  reply = elbus_rpc_peer_call_sync (peer, "cancel.svc", "hold", params, ELBUS_QOS_PROCESSED,
                                    3600, c->cancellable, &c->error);
  g_assert_null (reply);

  g_clear_object (&peer);
  g_clear_object (&client);
  g_main_context_pop_thread_default (context);
  worker_returns (c->f);
  return NULL;
}

static void
test_cancel_sync (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusClient) svc = NULL;
  g_autoptr(ElbusRpcPeer) peer = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  Cancel c = { .f = f, .cancellable = cancellable };

  g_test_summary ("A cancelled _sync call of an in-process client on another thread "
                  "returns G_IO_ERROR_CANCELLED while it waits");

  svc = elbus_broker_register_client (f->broker, "cancel.svc", &error);
  g_assert_no_error (error);
  peer = elbus_rpc_peer_new (svc);
  g_signal_connect (peer, "handle-call::hold", G_CALLBACK (on_hold), &c);

  g_atomic_int_set (&f->running, 1);
  f->workers[0].thread = g_thread_new ("cancel", cancel_worker, &c);
  join_workers (f, 1);

  g_assert_nonnull (c.held);
  g_assert_error (c.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&c.error);
  g_clear_object (&c.held);
}

/* Nobody runs the broker's context: a registration from another thread
 * fails after the client's timeout instead of waiting for ever. */
static gpointer
unserved_worker (gpointer user_data)
{
  Fixture *f = user_data;
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(GError) error = NULL;

  g_main_context_push_thread_default (context);
  client = elbus_broker_register_client (f->broker, "unserved", &error);
  g_assert_error (error, ELBUS_ERROR, ELBUS_ERROR_TIMEOUT);
  g_assert_null (client);
  g_main_context_pop_thread_default (context);
  return NULL;
}

static void
test_unserved (Fixture       *f,
               gconstpointer  data)
{
  g_auto(GStrv) names = NULL;

  if (!g_test_slow ())
    {
      g_test_skip ("waits for the default client timeout; run with -m slow");
      return;
    }

  g_thread_join (g_thread_new ("unserved", unserved_worker, f));
  /* the abandoned registration does not happen later either */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  names = elbus_broker_list_clients (f->broker);
  g_assert_false (g_strv_contains ((const char * const *) names, "unserved"));
}

int
main (int    argc,
      char **argv)
{
  elbus_test_init (&argc, &argv);
  /* the classes the threads use are made here, before any thread starts:
   * GObject hands a class made on one thread to the others with atomics in
   * (uninstrumented) GLib that ThreadSanitizer cannot see */
  g_type_class_unref (g_type_class_ref (ELBUS_TYPE_CLIENT));
  g_type_class_unref (g_type_class_ref (ELBUS_TYPE_RPC_PEER));
  g_type_class_unref (g_type_class_ref (ELBUS_TYPE_RPC_INVOCATION));
  g_type_class_unref (g_type_class_ref (G_TYPE_TASK));
  g_type_class_unref (g_type_class_ref (G_TYPE_CANCELLABLE));

  g_test_add ("/elbus/threads/ring", Fixture, NULL, fixture_set_up, test_ring,
              fixture_tear_down);
  g_test_add ("/elbus/threads/free-in-flight", Fixture, NULL, fixture_set_up,
              test_free_in_flight, fixture_tear_down);
  g_test_add ("/elbus/threads/broker-shutdown", Fixture, NULL, fixture_set_up,
              test_broker_shutdown, fixture_tear_down);
  g_test_add ("/elbus/threads/cancel-sync", Fixture, NULL, fixture_set_up, test_cancel_sync,
              fixture_tear_down);
  g_test_add ("/elbus/threads/unserved", Fixture, NULL, fixture_set_up, test_unserved,
              fixture_tear_down);

  return g_test_run ();
}
