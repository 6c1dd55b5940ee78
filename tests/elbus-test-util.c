/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "elbus-test-util.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>
#ifdef HAVE_LIBSOUP
#include <libsoup/soup.h>
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define ELBUS_TEST_HAVE_VALGRIND 1
#endif
#endif

/* ------------------------------------------------------------------ */
/* General */

gboolean
elbus_test_under_valgrind (void)
{
#ifdef ELBUS_TEST_HAVE_VALGRIND
  return RUNNING_ON_VALGRIND != 0;
#else
  return FALSE;
#endif
}

guint
elbus_test_scale_ms (guint ms)
{
  static gsize scale = 0;

  if (g_once_init_enter (&scale))
    {
      gsize s = 1;
      const char *env = g_getenv ("ELBUS_TEST_TIMEOUT_SCALE");

      if (env != NULL && g_ascii_strtoull (env, NULL, 10) > 0)
        s = (gsize) g_ascii_strtoull (env, NULL, 10);
      else if (elbus_test_under_valgrind ())
        s = 10;
      g_once_init_leave (&scale, s);
    }

  return ms * (guint) scale;
}

void
elbus_test_raise_nofile (guint wanted)
{
  struct rlimit rl;

  if (getrlimit (RLIMIT_NOFILE, &rl) != 0)
    return;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < wanted)
    {
      rl.rlim_cur = rl.rlim_max;
      if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max > wanted)
        rl.rlim_cur = wanted;
      (void) setrlimit (RLIMIT_NOFILE, &rl);
    }
}

void
elbus_test_init (int    *argc,
                 char ***argv)
{
  g_test_init (argc, argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
  /* Writes to a connection the broker dropped must fail with EPIPE, not
   * kill the test. */
  signal (SIGPIPE, SIG_IGN);
}

const char *
elbus_test_transport_name (ElbusTestTransport transport)
{
  switch (transport)
    {
    case ELBUS_TEST_TRANSPORT_UNIX:
      return "unix";
    case ELBUS_TEST_TRANSPORT_WS:
      return "ws";
    case ELBUS_TEST_TRANSPORT_TCP:
    default:
      return "tcp";
    }
}

gboolean
elbus_test_have_websocket (void)
{
#ifdef HAVE_LIBSOUP
  return TRUE;
#else
  return FALSE;
#endif
}

static gint64
deadline_after (guint ms)
{
  return g_get_monotonic_time () + (gint64) ms * 1000;
}

static int
remaining_ms (gint64 deadline)
{
  gint64 left = deadline - g_get_monotonic_time ();

  if (left <= 0)
    return 0;
  return (int) ((left + 999) / 1000);
}

/* ------------------------------------------------------------------ */
/* In-process broker */

struct _ElbusTestBroker
{
  GThread                *thread;
  GMainContext           *context;      /* (owned) */
  GMainLoop              *loop;         /* (owned) */
  ElbusBroker            *broker;       /* (owned): broker thread only */
  ElbusTestBrokerOptions  options;
  char                   *dir;          /* (owned) */
  char                   *unix_path;    /* (owned) */
  char                   *tcp_bind;     /* (owned) */
  guint16                 tcp_port;
  char                   *ws_url;

  GMutex                  mutex;
  GCond                   cond;
  gboolean                started;
  GError                 *start_error;  /* (owned) (nullable) */
  GPtrArray              *events;       /* (owned): under mutex */
};

static void
broker_event (ElbusTestBroker *tb,
              char             sign,
              const char      *name)
{
  g_mutex_lock (&tb->mutex);
  g_ptr_array_add (tb->events, g_strdup_printf ("%c%s", sign, name));
  g_cond_broadcast (&tb->cond);
  g_mutex_unlock (&tb->mutex);
}

static void
client_registered_cb (ElbusBroker *broker,
                      const char  *name,
                      gpointer     user_data)
{
  broker_event (user_data, '+', name);
}

static void
client_unregistered_cb (ElbusBroker *broker,
                        const char  *name,
                        gpointer     user_data)
{
  broker_event (user_data, '-', name);
}

static gboolean
broker_thread_listen (ElbusTestBroker *tb,
                      GError         **error)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GInetAddress) loopback = NULL;
  g_autoptr(GSocketAddress) any = NULL;
  g_autoptr(GSocketAddress) bound = NULL;

  if (!elbus_broker_listen_unix (tb->broker, tb->unix_path, error))
    return FALSE;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                         G_SOCKET_PROTOCOL_TCP, error);
  if (socket == NULL)
    return FALSE;
  loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  any = g_inet_socket_address_new (loopback, 0);
  if (!g_socket_bind (socket, any, TRUE, error))
    return FALSE;
  /* bound, not listening: the broker listens */
  bound = g_socket_get_local_address (socket, error);
  if (bound == NULL)
    return FALSE;
  tb->tcp_port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  tb->tcp_bind = g_strdup_printf ("127.0.0.1:%u", tb->tcp_port);

  if (!elbus_broker_add_socket (tb->broker, socket, tb->tcp_bind, error))
    return FALSE;

#ifdef HAVE_LIBSOUP
  tb->ws_url = g_strdup_printf ("ws://127.0.0.1:%u/elbus", elbus_test_pick_free_port ());
  if (!elbus_broker_listen (tb->broker, tb->ws_url, error))
    return FALSE;
#endif
  return TRUE;
}

static gpointer
broker_thread_func (gpointer data)
{
  ElbusTestBroker *tb = data;
  GError *error = NULL;

  g_main_context_push_thread_default (tb->context);

  tb->broker = elbus_broker_new ();
  if (tb->options.timeout > 0)
    elbus_broker_set_timeout (tb->broker, tb->options.timeout);
  else if (elbus_test_scale_ms (1) > 1)
    /* the default 5 s, scaled as the tests' own waits are (valgrind):
     * a 16 MiB frame read under valgrind on a busy machine may take it */
    elbus_broker_set_timeout (tb->broker, 5.0 * elbus_test_scale_ms (1));
  if (tb->options.queue_size > 0)
    elbus_broker_set_queue_size (tb->broker, tb->options.queue_size);
  if (tb->options.max_frame_size > 0)
    elbus_broker_set_max_frame_size (tb->broker, tb->options.max_frame_size);
  if (tb->options.buf_size > 0)
    elbus_broker_set_buf_size (tb->broker, tb->options.buf_size);
  if (tb->options.buf_ttl > 0 || tb->options.set_buf_ttl)
    elbus_broker_set_buf_ttl (tb->broker, tb->options.buf_ttl);
  g_signal_connect (tb->broker, "client-registered",
                    G_CALLBACK (client_registered_cb), tb);
  g_signal_connect (tb->broker, "client-unregistered",
                    G_CALLBACK (client_unregistered_cb), tb);

  broker_thread_listen (tb, &error);

  g_mutex_lock (&tb->mutex);
  tb->started = TRUE;
  tb->start_error = error;
  g_cond_broadcast (&tb->cond);
  g_mutex_unlock (&tb->mutex);

  if (error == NULL)
    g_main_loop_run (tb->loop);

  elbus_broker_close (tb->broker);
  g_signal_handlers_disconnect_by_data (tb->broker, tb);
  g_clear_object (&tb->broker);
  while (g_main_context_iteration (tb->context, FALSE))
    ;

  g_main_context_pop_thread_default (tb->context);
  return NULL;
}

ElbusTestBroker *
elbus_test_broker_new (const ElbusTestBrokerOptions *options)
{
  ElbusTestBroker *tb = g_new0 (ElbusTestBroker, 1);
  g_autoptr(GError) error = NULL;

  if (options != NULL)
    tb->options = *options;
  tb->dir = g_dir_make_tmp ("elbus-test-XXXXXX", &error);
  g_assert_no_error (error);
  tb->unix_path = g_build_filename (tb->dir, "broker.sock", NULL);
  tb->context = g_main_context_new ();
  tb->loop = g_main_loop_new (tb->context, FALSE);
  tb->events = g_ptr_array_new_with_free_func (g_free);
  g_mutex_init (&tb->mutex);
  g_cond_init (&tb->cond);

  tb->thread = g_thread_new ("elbus-test-broker", broker_thread_func, tb);

  g_mutex_lock (&tb->mutex);
  while (!tb->started)
    g_cond_wait (&tb->cond, &tb->mutex);
  g_mutex_unlock (&tb->mutex);

  g_assert_no_error (tb->start_error);
  return tb;
}

void
elbus_test_broker_free (ElbusTestBroker *tb)
{
  if (tb == NULL)
    return;

  g_main_loop_quit (tb->loop);
  g_thread_join (tb->thread);

  g_clear_error (&tb->start_error);
  g_main_loop_unref (tb->loop);
  g_main_context_unref (tb->context);
  (void) g_remove (tb->unix_path);
  (void) g_rmdir (tb->dir);
  g_free (tb->unix_path);
  g_free (tb->dir);
  g_free (tb->tcp_bind);
  g_free (tb->ws_url);
  g_ptr_array_unref (tb->events);
  g_mutex_clear (&tb->mutex);
  g_cond_clear (&tb->cond);
  g_free (tb);
}

const char *
elbus_test_broker_get_unix_path (ElbusTestBroker *tb)
{
  return tb->unix_path;
}

const char *
elbus_test_broker_get_ws_url (ElbusTestBroker *tb)
{
  return tb->ws_url;
}

guint16
elbus_test_broker_get_tcp_port (ElbusTestBroker *tb)
{
  return tb->tcp_port;
}

const char *
elbus_test_broker_get_tcp_bind (ElbusTestBroker *tb)
{
  return tb->tcp_bind;
}

typedef struct {
  ElbusTestBroker     *tb;
  ElbusTestBrokerFunc  func;
  gpointer             user_data;
  gboolean             done;
} Invocation;

static gboolean
invoke_cb (gpointer data)
{
  Invocation *inv = data;

  inv->func (inv->tb->broker, inv->user_data);

  g_mutex_lock (&inv->tb->mutex);
  inv->done = TRUE;
  g_cond_broadcast (&inv->tb->cond);
  g_mutex_unlock (&inv->tb->mutex);

  return G_SOURCE_REMOVE;
}

void
elbus_test_broker_invoke (ElbusTestBroker     *tb,
                          ElbusTestBrokerFunc  func,
                          gpointer             user_data)
{
  Invocation inv = { tb, func, user_data, FALSE };
  gint64 deadline = deadline_after (ELBUS_TEST_DEADLINE_MS);
  GSource *source;

  source = g_idle_source_new ();
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, invoke_cb, &inv, NULL);
  g_source_attach (source, tb->context);
  g_source_unref (source);

  g_mutex_lock (&tb->mutex);
  while (!inv.done)
    {
      if (!g_cond_wait_until (&tb->cond, &tb->mutex, deadline) && !inv.done)
        {
          g_mutex_unlock (&tb->mutex);
          g_error ("the broker thread did not run an invocation within %u ms",
                   ELBUS_TEST_DEADLINE_MS);
        }
    }
  g_mutex_unlock (&tb->mutex);
}

typedef struct {
  const char *name;
  const char *reason;
  gboolean    result;
  char      **names;
  ElbusStats *stats;
  guint      *queue_len;
} BrokerQuery;

static void
has_client_func (ElbusBroker *broker,
                 gpointer     data)
{
  BrokerQuery *q = data;

  q->result = elbus_broker_has_client (broker, q->name);
}

gboolean
elbus_test_broker_has_client (ElbusTestBroker *tb,
                              const char      *name)
{
  BrokerQuery q = { .name = name };

  elbus_test_broker_invoke (tb, has_client_func, &q);
  return q.result;
}

static void
list_clients_func (ElbusBroker *broker,
                   gpointer     data)
{
  BrokerQuery *q = data;

  q->names = elbus_broker_list_clients (broker);
}

char **
elbus_test_broker_list_clients (ElbusTestBroker *tb)
{
  BrokerQuery q = { NULL };

  elbus_test_broker_invoke (tb, list_clients_func, &q);
  return q.names;
}

static void
get_stats_func (ElbusBroker *broker,
                gpointer     data)
{
  BrokerQuery *q = data;

  elbus_broker_get_stats (broker, q->stats);
}

void
elbus_test_broker_get_stats (ElbusTestBroker *tb,
                             ElbusStats      *stats)
{
  BrokerQuery q = { .stats = stats };

  elbus_test_broker_invoke (tb, get_stats_func, &q);
}

static void
get_client_stats_func (ElbusBroker *broker,
                       gpointer     data)
{
  BrokerQuery *q = data;

  q->result = elbus_broker_get_client_stats (broker, q->name, q->stats,
                                             q->queue_len);
}

gboolean
elbus_test_broker_get_client_stats (ElbusTestBroker *tb,
                                    const char      *name,
                                    ElbusStats      *stats,
                                    guint           *queue_len)
{
  BrokerQuery q = { .name = name, .stats = stats, .queue_len = queue_len };

  elbus_test_broker_invoke (tb, get_client_stats_func, &q);
  return q.result;
}

static void
force_disconnect_func (ElbusBroker *broker,
                       gpointer     data)
{
  BrokerQuery *q = data;

  q->result = elbus_broker_force_disconnect (broker, q->name);
}

gboolean
elbus_test_broker_force_disconnect (ElbusTestBroker *tb,
                                    const char      *name)
{
  BrokerQuery q = { .name = name };

  elbus_test_broker_invoke (tb, force_disconnect_func, &q);
  return q.result;
}

static void
disconnect_client_func (ElbusBroker *broker,
                        gpointer     data)
{
  BrokerQuery *q = data;

  q->result = elbus_broker_disconnect_client (broker, q->name, q->reason);
}

gboolean
elbus_test_broker_disconnect_client (ElbusTestBroker *tb,
                                     const char      *name,
                                     const char      *reason)
{
  BrokerQuery q = { .name = name, .reason = reason };

  elbus_test_broker_invoke (tb, disconnect_client_func, &q);
  return q.result;
}

void
elbus_test_broker_wait_client (ElbusTestBroker *tb,
                               const char      *name,
                               gboolean         present)
{
  gint64 deadline = deadline_after (ELBUS_TEST_DEADLINE_MS);

  while (elbus_test_broker_has_client (tb, name) != present)
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("client '%s' still %s after %u ms", name,
                 present ? "absent" : "present", ELBUS_TEST_DEADLINE_MS);
      g_usleep (2000);
    }
}

GPtrArray *
elbus_test_broker_dup_events (ElbusTestBroker *tb)
{
  GPtrArray *copy = g_ptr_array_new_with_free_func (g_free);

  g_mutex_lock (&tb->mutex);
  for (guint i = 0; i < tb->events->len; i++)
    g_ptr_array_add (copy, g_strdup (tb->events->pdata[i]));
  g_mutex_unlock (&tb->mutex);

  return copy;
}

void
elbus_test_broker_wait_event (ElbusTestBroker *tb,
                              const char      *event)
{
  gint64 deadline = deadline_after (ELBUS_TEST_DEADLINE_MS);

  g_mutex_lock (&tb->mutex);
  for (;;)
    {
      for (guint i = 0; i < tb->events->len; i++)
        if (g_str_equal (tb->events->pdata[i], event))
          {
            g_mutex_unlock (&tb->mutex);
            return;
          }
      if (!g_cond_wait_until (&tb->cond, &tb->mutex, deadline))
        break;
    }
  g_mutex_unlock (&tb->mutex);
  g_error ("broker signal '%s' not seen within %u ms", event,
           ELBUS_TEST_DEADLINE_MS);
}

static void
enable_core_rpc_func (ElbusBroker *broker,
                      gpointer     user_data)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (elbus_broker_enable_core_rpc (broker, &error));
  g_assert_no_error (error);
}

void
elbus_test_broker_enable_core_rpc (ElbusTestBroker *tb)
{
  elbus_test_broker_invoke (tb, enable_core_rpc_func, NULL);
}

/* ------------------------------------------------------------------ */
/* Raw client */

void
elbus_test_frame_free (ElbusTestFrame *frame)
{
  if (frame == NULL)
    return;
  g_free (frame->sender);
  g_free (frame->topic);
  g_clear_pointer (&frame->payload, g_bytes_unref);
  g_free (frame);
}

static gboolean
address_is_unix (const char *address)
{
  return address[0] == '/' ||
         g_str_has_suffix (address, ".sock") ||
         g_str_has_suffix (address, ".socket") ||
         g_str_has_suffix (address, ".ipc");
}

static void
set_send_timeout (int fd)
{
  guint ms = ELBUS_TEST_DEADLINE_MS;
  struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

  g_assert_cmpint (setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), ==, 0);
}

static int
connect_address (const char *address,
                 int        *errsv)
{
  int fd;

  if (address_is_unix (address))
    {
      struct sockaddr_un sun = { .sun_family = AF_UNIX };

      g_assert_cmpuint (strlen (address), <, sizeof sun.sun_path);
      strcpy (sun.sun_path, address);
      fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      g_assert_cmpint (fd, >=, 0);
      if (connect (fd, (struct sockaddr *) &sun, sizeof sun) != 0)
        {
          *errsv = errno;
          close (fd);
          return -1;
        }
    }
  else
    {
      g_autofree char *host = NULL;
      const char *colon = strrchr (address, ':');
      struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
      struct addrinfo *res = NULL;
      int one = 1;
      int rc;

      g_assert_nonnull (colon);
      host = g_strndup (address, colon - address);
      rc = getaddrinfo (host, colon + 1, &hints, &res);
      g_assert_cmpint (rc, ==, 0);
      fd = socket (res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
      g_assert_cmpint (fd, >=, 0);
      if (connect (fd, res->ai_addr, res->ai_addrlen) != 0)
        {
          *errsv = errno;
          close (fd);
          freeaddrinfo (res);
          return -1;
        }
      freeaddrinfo (res);
      g_assert_cmpint (setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), ==, 0);
    }

  return fd;
}

ElbusTestConn *
elbus_test_conn_connect_address (const char *address)
{
  ElbusTestConn *conn;
  int errsv = 0;
  int fd = connect_address (address, &errsv);

  if (fd < 0)
    g_error ("connect to %s: %s", address, g_strerror (errsv));
  set_send_timeout (fd);

  conn = g_new0 (ElbusTestConn, 1);
  conn->fd = fd;
  conn->next_op_id = 1;
  conn->rbuf = g_byte_array_new ();
  return conn;
}

ElbusTestConn *
elbus_test_conn_connect (ElbusTestBroker    *tb,
                         ElbusTestTransport  transport)
{
  g_autofree char *tcp = NULL;

  if (transport == ELBUS_TEST_TRANSPORT_UNIX)
    return elbus_test_conn_connect_address (tb->unix_path);
  if (transport == ELBUS_TEST_TRANSPORT_WS)
    return elbus_test_conn_connect_ws (tb->ws_url);

  tcp = g_strdup_printf ("127.0.0.1:%u", tb->tcp_port);
  return elbus_test_conn_connect_address (tcp);
}

ElbusTestConn *
elbus_test_conn_new (ElbusTestBroker    *tb,
                     ElbusTestTransport  transport,
                     const char         *name)
{
  ElbusTestConn *conn = elbus_test_conn_connect (tb, transport);

  g_assert_cmphex (elbus_test_conn_handshake (conn, name), ==, 0x01);
  return conn;
}

ElbusTestConn *
elbus_test_conn_new_address (const char *address,
                             const char *name)
{
  ElbusTestConn *conn = elbus_test_conn_connect_address (address);

  g_assert_cmphex (elbus_test_conn_handshake (conn, name), ==, 0x01);
  return conn;
}

ElbusTestConn *
elbus_test_conn_new_for_fd (int fd)
{
  ElbusTestConn *conn = g_new0 (ElbusTestConn, 1);

  g_assert_cmpint (fd, >=, 0);
  set_send_timeout (fd);
  conn->fd = fd;
  conn->next_op_id = 1;
  conn->rbuf = g_byte_array_new ();
  return conn;
}

#ifdef HAVE_LIBSOUP
static void
ws_connected_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  GAsyncResult **out = user_data;

  *out = g_object_ref (result);
}

static void
ws_message_cb (SoupWebsocketConnection *ws,
               SoupWebsocketDataType    type,
               GBytes                  *message,
               gpointer                 user_data)
{
  ElbusTestConn *conn = user_data;
  gsize len;
  const guint8 *data = g_bytes_get_data (message, &len);

  g_assert_cmpint (type, ==, SOUP_WEBSOCKET_DATA_BINARY);
  g_byte_array_append (conn->rbuf, data, len);
}

static void
ws_closed_cb (SoupWebsocketConnection *ws,
              gpointer                 user_data)
{
  ElbusTestConn *conn = user_data;

  conn->ws_closed = TRUE;
}

static gboolean
ws_timeout_cb (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Iterates the connection's context until *done or ms pass (-1: once,
 * without blocking); returns *done. */
static gboolean
ws_iterate (ElbusTestConn  *conn,
            const gboolean *done,
            int             ms)
{
  gboolean timed_out = FALSE;
  GSource *timeout;

  /* libsoup attaches its sources to the thread-default context */
  g_main_context_push_thread_default (conn->ws_context);
  if (ms < 0)
    {
      while (g_main_context_iteration (conn->ws_context, FALSE))
        ;
      g_main_context_pop_thread_default (conn->ws_context);
      return *done;
    }
  timeout = g_timeout_source_new (ms);
  g_source_set_callback (timeout, ws_timeout_cb, &timed_out, NULL);
  g_source_attach (timeout, conn->ws_context);
  while (!*done && !timed_out)
    g_main_context_iteration (conn->ws_context, TRUE);
  g_source_destroy (timeout);
  g_source_unref (timeout);
  g_main_context_pop_thread_default (conn->ws_context);
  return *done;
}

ElbusTestConn *
elbus_test_conn_connect_ws (const char *url)
{
  ElbusTestConn *conn = g_new0 (ElbusTestConn, 1);
  g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  SoupWebsocketConnection *ws;

  g_assert_nonnull (msg);
  conn->fd = -1;
  conn->next_op_id = 1;
  conn->rbuf = g_byte_array_new ();
  conn->ws_context = g_main_context_new ();
  g_main_context_push_thread_default (conn->ws_context);
  /* no proxy: the default resolver would read GSettings */
  conn->ws_session = soup_session_new_with_options ("proxy-resolver", NULL, NULL);
  soup_session_websocket_connect_async (conn->ws_session, msg, NULL, NULL, G_PRIORITY_DEFAULT,
                                        NULL, ws_connected_cb, &result);
  while (result == NULL)
    g_main_context_iteration (conn->ws_context, TRUE);
  ws = soup_session_websocket_connect_finish (conn->ws_session, result, &error);
  g_main_context_pop_thread_default (conn->ws_context);
  if (ws == NULL)
    g_error ("WebSocket connect to %s: %s", url, error->message);

  conn->ws = ws;
  soup_websocket_connection_set_max_incoming_payload_size (ws, 0);
  soup_websocket_connection_set_keepalive_interval (ws, 0);
  g_signal_connect (ws, "message", G_CALLBACK (ws_message_cb), conn);
  g_signal_connect (ws, "closed", G_CALLBACK (ws_closed_cb), conn);
  return conn;
}

void
elbus_test_conn_send_ws_text (ElbusTestConn *conn,
                              const char    *text)
{
  g_assert_nonnull (conn->ws);
  g_main_context_push_thread_default (conn->ws_context);
  soup_websocket_connection_send_text (conn->ws, text);
  g_main_context_pop_thread_default (conn->ws_context);
  ws_iterate (conn, &conn->ws_closed, -1);
}

/* Writes the start of a binary WebSocket frame (its header announces 100
 * bytes, 10 follow: the start of an elbus frame, masked) on the socket,
 * under libsoup, then closes it. */
void
elbus_test_conn_close_mid_ws_frame (ElbusTestConn *conn)
{
  static const guint8 partial[] = {
    0x82, 0x80 | 100,             /* FIN, binary; masked, 100 bytes */
    0x11, 0x22, 0x33, 0x44,       /* the mask */
    /* op id 1, a message (0x12), 80 bytes, one of them, masked */
    0x01 ^ 0x11, 0x00 ^ 0x22, 0x00 ^ 0x33, 0x00 ^ 0x44, 0x12 ^ 0x11,
    0x50 ^ 0x22, 0x00 ^ 0x33, 0x00 ^ 0x44, 0x00 ^ 0x11, 'x' ^ 0x22,
  };
  GIOStream *stream;
  g_autoptr(GError) error = NULL;

  g_assert_nonnull (conn->ws);
  stream = soup_websocket_connection_get_io_stream (conn->ws);
  g_signal_handlers_disconnect_by_data (conn->ws, conn);
  g_main_context_push_thread_default (conn->ws_context);
  g_output_stream_write_all (g_io_stream_get_output_stream (stream), partial, sizeof partial,
                             NULL, NULL, &error);
  g_assert_no_error (error);
  g_io_stream_close (stream, NULL, NULL);
  g_main_context_pop_thread_default (conn->ws_context);
  ws_iterate (conn, &conn->ws_closed, -1);
  g_clear_object (&conn->ws);
  g_clear_object (&conn->ws_session);
  conn->ws_closed = TRUE;
}

/* fake brokers' WebSocket server */

struct _ElbusTestWsListener {
  GMainContext *context;        /* (owned) */
  SoupServer   *server;         /* (owned) */
  GQueue        pending;        /* (element-type ElbusTestConn) (owned) */
  char         *url;            /* (owned) */
};

static void
ws_listener_cb (SoupServer              *server,
                SoupServerMessage       *msg,
                const char              *path,
                SoupWebsocketConnection *ws,
                gpointer                 user_data)
{
  ElbusTestWsListener *listener = user_data;
  ElbusTestConn *conn = g_new0 (ElbusTestConn, 1);

  /* wrapped at once: what the client sends is kept from the start */
  conn->fd = -1;
  conn->next_op_id = 1;
  conn->rbuf = g_byte_array_new ();
  conn->ws_context = g_main_context_ref (listener->context);
  conn->ws = g_object_ref (ws);
  soup_websocket_connection_set_max_incoming_payload_size (ws, 0);
  soup_websocket_connection_set_keepalive_interval (ws, 0);
  g_signal_connect (ws, "message", G_CALLBACK (ws_message_cb), conn);
  g_signal_connect (ws, "closed", G_CALLBACK (ws_closed_cb), conn);
  g_queue_push_tail (&listener->pending, conn);
}

ElbusTestWsListener *
elbus_test_ws_listener_new (GMainContext *context)
{
  ElbusTestWsListener *listener = g_new0 (ElbusTestWsListener, 1);
  g_autoptr(GSocketAddress) loopback = g_inet_socket_address_new_from_string ("127.0.0.1", 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GError) error = NULL;

  listener->context = g_main_context_ref (context);
  g_queue_init (&listener->pending);

  /* our own socket: libsoup 3.2's soup_server_get_uris() leaks the
   * address it caches */
  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                         &error);
  g_assert_no_error (error);
  g_socket_bind (socket, loopback, TRUE, &error);
  g_assert_no_error (error);
  g_socket_listen (socket, &error);
  g_assert_no_error (error);
  bound = g_socket_get_local_address (socket, &error);
  g_assert_no_error (error);
  listener->url = g_strdup_printf ("ws://127.0.0.1:%u/elbus",
                                   g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));

  g_main_context_push_thread_default (context);
  listener->server = soup_server_new (NULL, NULL);
  soup_server_add_websocket_handler (listener->server, "/elbus", NULL, NULL, ws_listener_cb,
                                     listener, NULL);
  soup_server_listen_socket (listener->server, socket, 0, &error);
  g_assert_no_error (error);
  g_main_context_pop_thread_default (context);
  return listener;
}

const char *
elbus_test_ws_listener_get_url (ElbusTestWsListener *listener)
{
  return listener->url;
}

ElbusTestConn *
elbus_test_ws_listener_accept (ElbusTestWsListener *listener,
                               guint                timeout_ms)
{
  gboolean timed_out = FALSE;
  GSource *timeout = g_timeout_source_new (timeout_ms);

  g_main_context_push_thread_default (listener->context);
  g_source_set_callback (timeout, ws_timeout_cb, &timed_out, NULL);
  g_source_attach (timeout, listener->context);
  while (listener->pending.length == 0 && !timed_out)
    g_main_context_iteration (listener->context, TRUE);
  g_source_destroy (timeout);
  g_source_unref (timeout);
  g_main_context_pop_thread_default (listener->context);
  if (listener->pending.length == 0)
    g_error ("no WebSocket connection to %s within %u ms", listener->url, timeout_ms);
  return g_queue_pop_head (&listener->pending);
}

void
elbus_test_ws_listener_free (ElbusTestWsListener *listener)
{
  if (listener == NULL)
    return;
  g_queue_clear_full (&listener->pending, (GDestroyNotify) elbus_test_conn_free);
  g_main_context_push_thread_default (listener->context);
  soup_server_disconnect (listener->server);
  g_clear_object (&listener->server);
  while (g_main_context_iteration (listener->context, FALSE))
    ;
  g_main_context_pop_thread_default (listener->context);
  g_main_context_unref (listener->context);
  g_free (listener->url);
  g_free (listener);
}
#else
ElbusTestConn *
elbus_test_conn_connect_ws (const char *url)
{
  g_error ("built without WebSocket support");
  return NULL;
}

ElbusTestWsListener *
elbus_test_ws_listener_new (GMainContext *context)
{
  g_error ("built without WebSocket support");
  return NULL;
}

const char *
elbus_test_ws_listener_get_url (ElbusTestWsListener *listener)
{
  return NULL;
}

ElbusTestConn *
elbus_test_ws_listener_accept (ElbusTestWsListener *listener,
                               guint                timeout_ms)
{
  return NULL;
}

void
elbus_test_ws_listener_free (ElbusTestWsListener *listener)
{
}

void
elbus_test_conn_close_mid_ws_frame (ElbusTestConn *conn)
{
  g_error ("built without WebSocket support");
}

void
elbus_test_conn_send_ws_text (ElbusTestConn *conn,
                              const char    *text)
{
  g_error ("built without WebSocket support");
}
#endif

/* Closes without a goodbye: the socket goes (a WebSocket without its
 * close frame), as a process that dies. */
void
elbus_test_conn_close (ElbusTestConn *conn)
{
#ifdef HAVE_LIBSOUP
  if (conn->ws != NULL)
    {
      g_signal_handlers_disconnect_by_data (conn->ws, conn);
      g_main_context_push_thread_default (conn->ws_context);
      g_io_stream_close (soup_websocket_connection_get_io_stream (conn->ws), NULL, NULL);
      g_main_context_pop_thread_default (conn->ws_context);
      ws_iterate (conn, &conn->ws_closed, -1);
      g_clear_object (&conn->ws);
      g_clear_object (&conn->ws_session);
      conn->ws_closed = TRUE;
    }
#endif
  if (conn->fd >= 0)
    close (conn->fd);
  conn->fd = -1;
}

/* A small receive buffer (no autotuning) so that a client that does not
 * read backs up quickly. */
void
elbus_test_conn_set_rcvbuf (ElbusTestConn *conn,
                            int            bytes)
{
  g_assert_cmpint (setsockopt (conn->fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes), ==, 0);
}

void
elbus_test_conn_free (ElbusTestConn *conn)
{
  if (conn == NULL)
    return;
  elbus_test_conn_close (conn);
  g_clear_pointer (&conn->ws_context, g_main_context_unref);
  g_free (conn->name);
  g_byte_array_unref (conn->rbuf);
  g_free (conn);
}

gboolean
elbus_test_conn_try_send (ElbusTestConn *conn,
                          const void    *data,
                          gsize          len)
{
  const guint8 *p = data;

#ifdef HAVE_LIBSOUP
  if (conn->ws != NULL)
    {
      /* libsoup writes at once and queues what the socket does not take */
      ws_iterate (conn, &conn->ws_closed, -1);
      if (conn->ws_closed ||
          soup_websocket_connection_get_state (conn->ws) != SOUP_WEBSOCKET_STATE_OPEN)
        return FALSE;
      g_main_context_push_thread_default (conn->ws_context);
      soup_websocket_connection_send_binary (conn->ws, data, len);
      g_main_context_pop_thread_default (conn->ws_context);
      ws_iterate (conn, &conn->ws_closed, -1);
      return TRUE;
    }
#endif

  while (len > 0)
    {
      ssize_t n = send (conn->fd, p, len, MSG_NOSIGNAL);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
        return FALSE;
      if (n < 0)
        g_error ("send: %s (a send blocked for %u ms?)", g_strerror (errno),
                 ELBUS_TEST_DEADLINE_MS);
      p += n;
      len -= n;
    }

  return TRUE;
}

void
elbus_test_conn_send (ElbusTestConn *conn,
                      const void    *data,
                      gsize          len)
{
  if (!elbus_test_conn_try_send (conn, data, len))
    g_error ("send: the broker closed the connection");
}

typedef struct {
  ElbusTestConn *conn;
  GBytes        *data;
} SendJob;

static gpointer
send_thread_func (gpointer user_data)
{
  SendJob *job = user_data;
  gsize len;
  const guint8 *p = g_bytes_get_data (job->data, &len);

  elbus_test_conn_send (job->conn, p, len);
  g_bytes_unref (job->data);
  g_free (job);
  return NULL;
}

GThread *
elbus_test_conn_send_in_thread (ElbusTestConn *conn,
                                GBytes        *data)
{
  SendJob *job = g_new0 (SendJob, 1);

  job->conn = conn;
  job->data = g_bytes_ref (data);
  return g_thread_new ("elbus-test-send", send_thread_func, job);
}

typedef enum {
  FILL_OK,
  FILL_TIMEOUT,
  FILL_EOF,
} FillResult;

/* Reads until rbuf holds at least want bytes. */
static inline gsize
conn_avail (ElbusTestConn *conn)
{
  return conn->rbuf->len - conn->rpos;
}

static inline const guint8 *
conn_data (ElbusTestConn *conn)
{
  return conn->rbuf->data + conn->rpos;
}

static FillResult
conn_fill (ElbusTestConn *conn,
           gsize          want,
           gint64         deadline)
{
  if (conn->rpos > 0 && conn_avail (conn) < want)
    {
      g_byte_array_remove_range (conn->rbuf, 0, conn->rpos);
      conn->rpos = 0;
    }

#ifdef HAVE_LIBSOUP
  while (conn->ws != NULL && conn_avail (conn) < want)
    {
      gboolean more = FALSE;
      guint before = conn->rbuf->len;

      if (conn->ws_closed)
        return FILL_EOF;
      if (remaining_ms (deadline) <= 0)
        return FILL_TIMEOUT;
      /* wakes on a message, the close, or the deadline */
      while (conn->rbuf->len == before && !conn->ws_closed && remaining_ms (deadline) > 0)
        ws_iterate (conn, &more, MIN (remaining_ms (deadline), 20));
    }
#endif

  while (conn_avail (conn) < want)
    {
      struct pollfd pfd = { .fd = conn->fd, .events = POLLIN };
      guint8 tmp[256 * 1024];
      gsize chunk = sizeof tmp;
      ssize_t n;
      int rc;

      rc = poll (&pfd, 1, remaining_ms (deadline));
      if (rc < 0 && errno == EINTR)
        continue;
      g_assert_cmpint (rc, >=, 0);
      if (rc == 0)
        return FILL_TIMEOUT;

      n = recv (conn->fd, tmp, chunk, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n == 0 || (n < 0 && errno == ECONNRESET))
        return FILL_EOF;
      if (n < 0)
        g_error ("recv: %s", g_strerror (errno));
      g_byte_array_append (conn->rbuf, tmp, n);
    }

  return FILL_OK;
}

static void
conn_consume (ElbusTestConn *conn,
              gsize          len)
{
  g_assert_cmpuint (len, <=, conn_avail (conn));
  conn->rpos += len;
  if (conn->rpos == conn->rbuf->len)
    {
      g_byte_array_set_size (conn->rbuf, 0);
      conn->rpos = 0;
    }
}

void
elbus_test_conn_read (ElbusTestConn *conn,
                      void          *buf,
                      gsize          len,
                      guint          timeout_ms)
{
  FillResult r = conn_fill (conn, len, deadline_after (timeout_ms));

  if (r == FILL_TIMEOUT)
    g_error ("%s: timed out waiting for %" G_GSIZE_FORMAT " bytes (have %u)",
             conn->name ? conn->name : "(unregistered)", len,
             (guint) conn_avail (conn));
  if (r == FILL_EOF)
    g_error ("%s: connection closed while waiting for %" G_GSIZE_FORMAT
             " bytes (have %u)",
             conn->name ? conn->name : "(unregistered)", len,
             (guint) conn_avail (conn));
  memcpy (buf, conn_data (conn), len);
  conn_consume (conn, len);
}

void
elbus_test_conn_expect_bytes (ElbusTestConn *conn,
                              const void    *expected,
                              gsize          len)
{
  g_autofree guint8 *buf = g_malloc (len);

  elbus_test_conn_read (conn, buf, len, ELBUS_TEST_DEADLINE_MS);
  g_assert_cmpmem (buf, len, expected, len);
}

static const char *
frame_kind_name (guint8 kind)
{
  switch (kind)
    {
    case 0x00: return "ping";
    case 0x01: return "publication";
    case 0x12: return "message";
    case 0x13: return "broadcast";
    case 0xFE: return "ack";
    default: return "unknown";
    }
}

static char *
frame_describe (const ElbusTestFrame *frame)
{
  if (frame->kind == 0xFE)
    return g_strdup_printf ("ack op_id=%u result=0x%02x", frame->op_id,
                            frame->result);
  if (frame->kind == 0x00)
    return g_strdup ("ping");
  return g_strdup_printf ("%s from '%s'%s%s%s, %" G_GSIZE_FORMAT
                          "-byte payload, realtime=%u",
                          frame_kind_name (frame->kind), frame->sender,
                          frame->topic ? " on '" : "",
                          frame->topic ? frame->topic : "",
                          frame->topic ? "'" : "",
                          frame->payload ? g_bytes_get_size (frame->payload) : 0,
                          frame->byte5);
}

static char *
take_string (const guint8 **p,
             const guint8  *end)
{
  const guint8 *nul = memchr (*p, 0, end - *p);
  char *s;

  if (nul == NULL)
    return NULL;
  s = g_strndup ((const char *) *p, nul - *p);
  *p = nul + 1;
  return s;
}

ElbusTestFrame *
elbus_test_conn_try_read_frame (ElbusTestConn *conn,
                                guint          timeout_ms,
                                gboolean       skip_pings,
                                GError       **error)
{
  gint64 deadline = deadline_after (timeout_ms);

  for (;;)
    {
      g_autoptr(ElbusTestFrame) frame = g_new0 (ElbusTestFrame, 1);
      const guint8 *h, *p, *end;
      FillResult r;

      r = conn_fill (conn, 6, deadline);
      if (r == FILL_TIMEOUT)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                       "no frame within %u ms", timeout_ms);
          return NULL;
        }
      if (r == FILL_EOF)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                       "connection closed (%u bytes of a partial frame)",
                       (guint) conn_avail (conn));
          return NULL;
        }

      h = conn_data (conn);
      frame->kind = h[0];
      frame->len = (guint32) h[1] | ((guint32) h[2] << 8) |
                   ((guint32) h[3] << 16) | ((guint32) h[4] << 24);
      frame->byte5 = h[5];

      switch (frame->kind)
        {
        case 0x00:
          if (frame->len != 0 || frame->byte5 != 0)
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                           "ping frame with non-zero bytes: %02x %02x %02x %02x %02x %02x",
                           h[0], h[1], h[2], h[3], h[4], h[5]);
              return NULL;
            }
          conn_consume (conn, 6);
          if (skip_pings)
            continue;
          return g_steal_pointer (&frame);

        case 0xFE:
          frame->op_id = frame->len;
          frame->result = frame->byte5;
          conn_consume (conn, 6);
          return g_steal_pointer (&frame);

        case 0x01:
        case 0x12:
        case 0x13:
          r = conn_fill (conn, 6 + (gsize) frame->len, deadline);
          if (r != FILL_OK)
            {
              g_set_error (error, G_IO_ERROR,
                           r == FILL_EOF ? G_IO_ERROR_CONNECTION_CLOSED : G_IO_ERROR_TIMED_OUT,
                           "%s frame of %u bytes cut short (%u bytes received)",
                           frame_kind_name (frame->kind), frame->len,
                           (guint) conn_avail (conn));
              return NULL;
            }
          if (frame->byte5 > 1)
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                           "realtime byte is %u", frame->byte5);
              return NULL;
            }
          p = conn_data (conn) + 6;
          end = p + frame->len;
          frame->sender = take_string (&p, end);
          if (frame->sender == NULL)
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                           "%s frame without a sender terminator",
                           frame_kind_name (frame->kind));
              return NULL;
            }
          if (frame->kind == 0x01)
            {
              frame->topic = take_string (&p, end);
              if (frame->topic == NULL)
                {
                  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                               "publication without a topic terminator");
                  return NULL;
                }
            }
          frame->payload = g_bytes_new (p, end - p);
          conn_consume (conn, 6 + (gsize) frame->len);
          return g_steal_pointer (&frame);

        default:
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "unknown frame kind 0x%02x", frame->kind);
          return NULL;
        }
    }
}

ElbusTestFrame *
elbus_test_conn_read_frame (ElbusTestConn *conn)
{
  g_autoptr(GError) error = NULL;
  ElbusTestFrame *frame;

  frame = elbus_test_conn_try_read_frame (conn, ELBUS_TEST_DEADLINE_MS, TRUE,
                                          &error);
  if (frame == NULL)
    g_error ("%s: reading a frame: %s",
             conn->name ? conn->name : "(unregistered)", error->message);
  return frame;
}

void
elbus_test_conn_expect_ack (ElbusTestConn *conn,
                            guint32        op_id,
                            guint8         result)
{
  g_autoptr(ElbusTestFrame) frame = elbus_test_conn_read_frame (conn);

  if (frame->kind != 0xFE)
    {
      g_autofree char *d = frame_describe (frame);

      g_error ("%s: expected ack op_id=%u result=0x%02x, got %s",
               conn->name, op_id, result, d);
    }
  g_assert_cmpuint (frame->op_id, ==, op_id);
  g_assert_cmphex (frame->result, ==, result);
}

void
elbus_test_conn_expect_frame (ElbusTestConn *conn,
                              guint8         kind,
                              const char    *sender,
                              const char    *topic,
                              const void    *payload,
                              gsize          payload_len,
                              gboolean       realtime)
{
  g_autoptr(ElbusTestFrame) frame = elbus_test_conn_read_frame (conn);
  g_autofree char *d = frame_describe (frame);

  if (frame->kind != kind)
    g_error ("%s: expected a %s from '%s', got %s", conn->name,
             frame_kind_name (kind), sender, d);
  g_assert_cmpstr (frame->sender, ==, sender);
  g_assert_cmpstr (frame->topic, ==, topic);
  g_assert_cmpmem (g_bytes_get_data (frame->payload, NULL),
                   g_bytes_get_size (frame->payload), payload, payload_len);
  g_assert_cmpuint (frame->byte5, ==, realtime ? 1 : 0);
  g_assert_cmpuint (frame->len, ==, strlen (sender) + 1 +
                    (topic ? strlen (topic) + 1 : 0) + payload_len);
}

void
elbus_test_conn_expect_message (ElbusTestConn *conn,
                                guint8         kind,
                                const char    *sender,
                                const char    *topic,
                                const char    *payload)
{
  elbus_test_conn_expect_frame (conn, kind, sender, topic, payload,
                                strlen (payload), FALSE);
}

void
elbus_test_conn_expect_eof (ElbusTestConn *conn)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusTestFrame) frame = NULL;

  frame = elbus_test_conn_try_read_frame (conn, ELBUS_TEST_DEADLINE_MS, TRUE,
                                          &error);
  if (frame != NULL)
    {
      g_autofree char *d = frame_describe (frame);

      g_error ("%s: expected the broker to close the connection, got %s",
               conn->name ? conn->name : "(unregistered)", d);
    }
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
  g_assert_cmpuint (conn_avail (conn), ==, 0);
}

gsize
elbus_test_conn_drain_until_eof (ElbusTestConn *conn,
                                 guint          timeout_ms)
{
  gint64 deadline = deadline_after (timeout_ms);
  gsize total = conn_avail (conn);

  g_byte_array_set_size (conn->rbuf, 0);
  conn->rpos = 0;
  for (;;)
    {
      FillResult r = conn_fill (conn, 1, deadline);

      if (r == FILL_EOF)
        return total;
      if (r == FILL_TIMEOUT)
        g_error ("%s: the broker did not close the connection within %u ms",
                 conn->name ? conn->name : "(unregistered)", timeout_ms);
      total += conn->rbuf->len;
      g_byte_array_set_size (conn->rbuf, 0);
    }
}

void
elbus_test_conn_expect_nothing (ElbusTestConn *conn,
                                guint          ms)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusTestFrame) frame = NULL;

  frame = elbus_test_conn_try_read_frame (conn, ms, TRUE, &error);
  if (frame != NULL)
    {
      g_autofree char *d = frame_describe (frame);

      g_error ("%s: expected nothing, got %s", conn->name, d);
    }
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
}

void
elbus_test_conn_expect_greeting (ElbusTestConn *conn)
{
  static const guint8 greeting[] = { 0xEB, 0x01, 0x00 };

  elbus_test_conn_expect_bytes (conn, greeting, sizeof greeting);
}

void
elbus_test_conn_send_greeting (ElbusTestConn *conn,
                               guint8         greeting,
                               guint16        version)
{
  guint8 buf[3] = { greeting, version & 0xff, version >> 8 };

  elbus_test_conn_send (conn, buf, sizeof buf);
}

guint8
elbus_test_conn_read_result (ElbusTestConn *conn)
{
  guint8 b;

  elbus_test_conn_read (conn, &b, 1, ELBUS_TEST_DEADLINE_MS);
  return b;
}

void
elbus_test_conn_send_name (ElbusTestConn *conn,
                           const char    *name,
                           gsize          name_len)
{
  g_autofree guint8 *buf = g_malloc (2 + name_len);

  g_assert_cmpuint (name_len, <=, G_MAXUINT16);
  buf[0] = name_len & 0xff;
  buf[1] = name_len >> 8;
  memcpy (buf + 2, name, name_len);
  elbus_test_conn_send (conn, buf, 2 + name_len);
}

guint8
elbus_test_conn_handshake (ElbusTestConn *conn,
                           const char    *name)
{
  guint8 result;

  elbus_test_conn_expect_greeting (conn);
  elbus_test_conn_send_greeting (conn, 0xEB, 1);
  g_assert_cmphex (elbus_test_conn_read_result (conn), ==, 0x01);
  elbus_test_conn_send_name (conn, name, strlen (name));
  result = elbus_test_conn_read_result (conn);
  if (result == 0x01)
    {
      g_free (conn->name);
      conn->name = g_strdup (name);
    }
  return result;
}

GBytes *
elbus_test_build_frame (guint32     op_id,
                        guint8      op,
                        ElbusQoS    qos,
                        const void *body,
                        gsize       body_len)
{
  guint8 *buf = g_malloc (9 + body_len);

  g_assert_cmpuint (body_len, <=, G_MAXUINT32);
  buf[0] = op_id & 0xff;
  buf[1] = (op_id >> 8) & 0xff;
  buf[2] = (op_id >> 16) & 0xff;
  buf[3] = (op_id >> 24) & 0xff;
  buf[4] = (op & 0x3f) | ((qos & 0x03) << 6);
  buf[5] = body_len & 0xff;
  buf[6] = (body_len >> 8) & 0xff;
  buf[7] = (body_len >> 16) & 0xff;
  buf[8] = (body_len >> 24) & 0xff;
  if (body_len > 0)
    memcpy (buf + 9, body, body_len);
  return g_bytes_new_take (buf, 9 + body_len);
}

GBytes *
elbus_test_build_op (guint32     op_id,
                     guint8      op,
                     ElbusQoS    qos,
                     const char *target,
                     const void *payload,
                     gsize       payload_len)
{
  gsize tlen = strlen (target);
  g_autofree guint8 *body = g_malloc (tlen + 1 + payload_len);

  memcpy (body, target, tlen + 1);
  if (payload_len > 0)
    memcpy (body + tlen + 1, payload, payload_len);
  return elbus_test_build_frame (op_id, op, qos, body, tlen + 1 + payload_len);
}

void
elbus_test_conn_send_frame (ElbusTestConn *conn,
                            guint32        op_id,
                            guint8         op,
                            ElbusQoS       qos,
                            const void    *body,
                            gsize          body_len)
{
  g_autoptr(GBytes) frame = elbus_test_build_frame (op_id, op, qos, body, body_len);

  elbus_test_conn_send (conn, g_bytes_get_data (frame, NULL),
                        g_bytes_get_size (frame));
}

guint32
elbus_test_conn_send_op (ElbusTestConn *conn,
                         guint8         op,
                         ElbusQoS       qos,
                         const char    *target,
                         const void    *payload,
                         gsize          payload_len)
{
  guint32 op_id = conn->next_op_id++;
  g_autoptr(GBytes) frame = elbus_test_build_op (op_id, op, qos, target,
                                                 payload, payload_len);

  elbus_test_conn_send (conn, g_bytes_get_data (frame, NULL),
                        g_bytes_get_size (frame));
  return op_id;
}

static void
conn_masks (ElbusTestConn *conn,
            guint8         op,
            const char    *mask,
            va_list        ap)
{
  g_autoptr(GByteArray) body = g_byte_array_new ();
  guint32 op_id = conn->next_op_id++;

  for (const char *m = mask; m != NULL; m = va_arg (ap, const char *))
    {
      if (body->len > 0)
        g_byte_array_append (body, (const guint8 *) "", 1);
      g_byte_array_append (body, (const guint8 *) m, strlen (m));
    }
  elbus_test_conn_send_frame (conn, op_id, op, ELBUS_QOS_PROCESSED,
                              body->data, body->len);
  elbus_test_conn_expect_ack (conn, op_id, 0x01);
}

void
elbus_test_conn_subscribe (ElbusTestConn *conn,
                           const char    *mask,
                           ...)
{
  va_list ap;

  va_start (ap, mask);
  conn_masks (conn, 0x02, mask, ap);
  va_end (ap);
}

void
elbus_test_conn_unsubscribe (ElbusTestConn *conn,
                             const char    *mask,
                             ...)
{
  va_list ap;

  va_start (ap, mask);
  conn_masks (conn, 0x03, mask, ap);
  va_end (ap);
}

void
elbus_test_conn_op_acked (ElbusTestConn *conn,
                          guint8         op,
                          const char    *target,
                          const char    *payload,
                          guint8         result)
{
  guint32 op_id = elbus_test_conn_send_op (conn, op, ELBUS_QOS_PROCESSED,
                                           target, payload, strlen (payload));

  elbus_test_conn_expect_ack (conn, op_id, result);
}

/* ------------------------------------------------------------------ */
/* Spawned elbusd */

const char *
elbus_test_elbusd_path (void)
{
  const char *path = g_getenv ("ELBUSD");

  if (path == NULL || *path == '\0')
    g_error ("ELBUSD is not set (run the tests through meson test)");
  return path;
}

int
elbus_test_run_program (const char         *program,
                        const char * const *args,
                        GBytes             *input,
                        char              **out,
                        char              **err)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GSubprocess) proc = NULL;
  g_autoptr(GBytes) out_bytes = NULL;
  g_autoptr(GBytes) err_bytes = NULL;
  g_autoptr(GBytes) no_input = g_bytes_new_static ("", 0);
  g_autoptr(GError) error = NULL;
  GSubprocessFlags flags = G_SUBPROCESS_FLAGS_STDIN_PIPE;

  g_ptr_array_add (argv, (char *) program);
  for (guint i = 0; args[i] != NULL; i++)
    g_ptr_array_add (argv, (char *) args[i]);
  g_ptr_array_add (argv, NULL);

  flags |= out != NULL ? G_SUBPROCESS_FLAGS_STDOUT_PIPE : G_SUBPROCESS_FLAGS_STDOUT_SILENCE;
  flags |= err != NULL ? G_SUBPROCESS_FLAGS_STDERR_PIPE : G_SUBPROCESS_FLAGS_STDERR_SILENCE;
  proc = g_subprocess_newv ((const char * const *) argv->pdata, flags, &error);
  g_assert_no_error (error);
  g_subprocess_communicate (proc, input != NULL ? input : no_input, NULL,
                            out != NULL ? &out_bytes : NULL,
                            err != NULL ? &err_bytes : NULL, &error);
  g_assert_no_error (error);

  if (out != NULL)
    *out = g_strndup (g_bytes_get_data (out_bytes, NULL), g_bytes_get_size (out_bytes));
  if (err != NULL)
    *err = g_strndup (g_bytes_get_data (err_bytes, NULL), g_bytes_get_size (err_bytes));

  if (!g_subprocess_get_if_exited (proc))
    g_error ("%s was killed by signal %d", program, g_subprocess_get_term_sig (proc));
  return g_subprocess_get_exit_status (proc);
}

gboolean
elbus_test_daemon_wait (ElbusTestDaemon *daemon,
                        guint            timeout_ms)
{
  gint64 deadline = deadline_after (timeout_ms);

  while (!daemon->exited)
    {
      pid_t r = waitpid (daemon->pid, &daemon->wait_status, WNOHANG);

      if (r == daemon->pid)
        {
          daemon->exited = TRUE;
          break;
        }
      g_assert_cmpint (r, ==, 0);
      if (g_get_monotonic_time () > deadline)
        return FALSE;
      g_usleep (5000);
    }

  return TRUE;
}

static gboolean
daemon_wait_for_socket (ElbusTestDaemon *daemon,
                        guint            timeout_ms)
{
  gint64 deadline = deadline_after (timeout_ms);

  for (;;)
    {
      int errsv = 0;
      int fd = connect_address (daemon->socket_path, &errsv);

      if (fd >= 0)
        {
          close (fd);
          return TRUE;
        }
      if (elbus_test_daemon_wait (daemon, 0))
        return FALSE;
      if (g_get_monotonic_time () > deadline)
        return FALSE;
      g_usleep (5000);
    }
}

gboolean
elbus_test_wait_for_socket (const char *address,
                            GPid        pid,
                            guint       timeout_ms)
{
  gint64 deadline = deadline_after (timeout_ms);

  for (;;)
    {
      int errsv = 0;
      int fd = connect_address (address, &errsv);

      if (fd >= 0)
        {
          close (fd);
          return TRUE;
        }
      if (pid > 0 && kill (pid, 0) != 0)
        return FALSE;
      if (g_get_monotonic_time () > deadline)
        return FALSE;
      g_usleep (5000);
    }
}

/* The daemon dies with the test, even when the test aborts. */
static void
daemon_child_setup (gpointer user_data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

GStrv
elbus_test_daemon_command (void)
{
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();
  /* e.g. ELBUS_TEST_DAEMON_WRAPPER="valgrind --error-exitcode=1" */
  const char *wrapper = g_getenv ("ELBUS_TEST_DAEMON_WRAPPER");

  if (wrapper != NULL && *wrapper != '\0')
    {
      g_auto(GStrv) words = NULL;
      g_autoptr(GError) error = NULL;

      g_shell_parse_argv (wrapper, NULL, &words, &error);
      g_assert_no_error (error);
      g_strv_builder_addv (builder, (const char **) words);
    }
  g_strv_builder_add (builder, elbus_test_elbusd_path ());
  return g_strv_builder_end (builder);
}

guint16
elbus_test_pick_free_port (void)
{
  g_autoptr(GSocket) s = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(GError) error = NULL;

  s = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                    G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  g_socket_bind (s, any, TRUE, &error);
  g_assert_no_error (error);
  bound = g_socket_get_local_address (s, &error);
  g_assert_no_error (error);
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

ElbusTestDaemon *
elbus_test_daemon_spawn (const char *const *argv_extra,
                         gboolean           with_socket)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) command = elbus_test_daemon_command ();
  ElbusTestDaemon *daemon = g_new0 (ElbusTestDaemon, 1);

  daemon->dir = g_dir_make_tmp ("elbusd-test-XXXXXX", &error);
  g_assert_no_error (error);

  for (guint i = 0; command[i] != NULL; i++)
    g_ptr_array_add (argv, command[i]);
  if (with_socket)
    {
      daemon->socket_path = g_build_filename (daemon->dir, "elbusd.sock", NULL);
      g_ptr_array_add (argv, (gpointer) "-B");
      g_ptr_array_add (argv, daemon->socket_path);
    }
  for (guint i = 0; argv_extra != NULL && argv_extra[i] != NULL; i++)
    g_ptr_array_add (argv, (gpointer) argv_extra[i]);
  g_ptr_array_add (argv, NULL);

  /* The child's stdout goes to our stderr: stdout is the TAP stream. */
  g_spawn_async_with_fds (NULL, (char **) argv->pdata, NULL,
                          G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH,
                          daemon_child_setup, NULL,
                          &daemon->pid, -1, STDERR_FILENO, STDERR_FILENO,
                          &error);
  g_assert_no_error (error);

  if (with_socket &&
      !daemon_wait_for_socket (daemon, ELBUS_TEST_DEADLINE_MS))
    {
      if (daemon->exited)
        g_error ("elbusd exited before accepting connections (status 0x%x)",
                 daemon->wait_status);
      g_error ("elbusd did not accept connections on %s within %u ms",
               daemon->socket_path, ELBUS_TEST_DEADLINE_MS);
    }

  return daemon;
}

int
elbus_test_daemon_stop (ElbusTestDaemon *daemon)
{
  if (!daemon->exited)
    {
      g_assert_cmpint (kill (daemon->pid, SIGTERM), ==, 0);
      if (!elbus_test_daemon_wait (daemon, ELBUS_TEST_DEADLINE_MS))
        g_error ("elbusd (pid %d) did not exit within %u ms of SIGTERM",
                 daemon->pid, ELBUS_TEST_DEADLINE_MS);
    }
  return daemon->wait_status;
}

void
elbus_test_daemon_free (ElbusTestDaemon *daemon)
{
  if (daemon == NULL)
    return;
  if (!daemon->exited)
    {
      kill (daemon->pid, SIGKILL);
      waitpid (daemon->pid, &daemon->wait_status, 0);
    }
  g_spawn_close_pid (daemon->pid);
  if (daemon->socket_path != NULL)
    (void) g_remove (daemon->socket_path);
  (void) g_rmdir (daemon->dir);
  g_free (daemon->socket_path);
  g_free (daemon->dir);
  g_free (daemon);
}

/* ------------------------------------------------------------------ */
/* The .broker core RPC on the raw wire */

/* Sends a request for @method with @params to .broker and returns the
 * payload of the answer (type byte, call id, rest). */
GBytes *
elbus_test_conn_core_call (ElbusTestConn *conn,
                           guint32        call_id,
                           const char    *method,
                           const void    *params,
                           gsize          params_len)
{
  g_autoptr(GByteArray) request = g_byte_array_new ();
  guint8 head[5] = { 0x01, call_id & 0xff, (call_id >> 8) & 0xff, (call_id >> 16) & 0xff,
                     call_id >> 24 };
  guint32 op_id;

  g_byte_array_append (request, head, sizeof head);
  g_byte_array_append (request, (const guint8 *) method, strlen (method) + 1);
  if (params_len > 0)
    g_byte_array_append (request, params, params_len);

  op_id = elbus_test_conn_send_op (conn, 0x12, ELBUS_QOS_PROCESSED, ".broker", request->data,
                                   request->len);
  elbus_test_conn_expect_ack (conn, op_id, 0x01);
  if (call_id == 0)
    return NULL;

  for (;;)
    {
      g_autoptr(ElbusTestFrame) frame = elbus_test_conn_read_frame (conn);

      /* announcements of other clients may come first: skip them */
      if (frame->kind != 0x12)
        continue;
      g_assert_cmpstr (frame->sender, ==, ".broker");
      return g_bytes_ref (frame->payload);
    }
}

void
elbus_test_assert_rpc_reply (GBytes       *answer,
                             guint32       call_id,
                             const guint8 *expected,
                             gsize         expected_len)
{
  const guint8 *data;
  gsize len;

  g_assert_nonnull (answer);
  data = g_bytes_get_data (answer, &len);
  g_assert_cmpuint (len, >=, 5);
  g_assert_cmphex (data[0], ==, 0x11);
  g_assert_cmpuint ((guint32) data[1] | data[2] << 8 | data[3] << 16 | (guint32) data[4] << 24,
                    ==, call_id);
  if (expected != NULL)
    g_assert_cmpmem (data + 5, len - 5, expected, expected_len);
}

GVariant *
elbus_test_decode_rpc_reply (GBytes *answer)
{
  g_autoptr(GError) error = NULL;
  GVariant *value;

  g_assert_nonnull (answer);
  g_assert_cmpuint (g_bytes_get_size (answer), >=, 5);
  value = elbus_msgpack_decode_data ((const guint8 *) g_bytes_get_data (answer, NULL) + 5,
                                     g_bytes_get_size (answer) - 5, &error);
  g_assert_no_error (error);
  return value;
}

void
elbus_test_assert_rpc_error (GBytes *answer,
                             gint16  code)
{
  const guint8 *data;
  gsize len;

  g_assert_nonnull (answer);
  data = g_bytes_get_data (answer, &len);
  g_assert_cmpuint (len, >=, 7);
  g_assert_cmphex (data[0], ==, 0x12);
  g_assert_cmpint ((gint16) (data[5] | data[6] << 8), ==, code);
}

/* MessagePack spelled out here rather than taken from msgpack-c: the
 * smallest form of each, as msgpack-c packs it */
static void
pack_fixstr (GByteArray *buf,
             const char *str)
{
  guint8 head = 0xa0 | strlen (str);

  g_assert_cmpuint (strlen (str), <, 32);
  g_byte_array_append (buf, &head, 1);
  g_byte_array_append (buf, (const guint8 *) str, strlen (str));
}

static void
pack_sized (GByteArray *buf,
            guint8      tag8,
            guint64     n)
{
  guint8 b[9];
  guint len = 1;

  if (n < 0x100)
    {
      b[0] = tag8;
      b[len++] = n;
    }
  else if (n < 0x10000)
    {
      b[0] = tag8 + 1;
      for (int i = 1; i >= 0; i--)
        b[len++] = n >> (8 * i);
    }
  else if (n <= G_MAXUINT32)
    {
      b[0] = tag8 + 2;
      for (int i = 3; i >= 0; i--)
        b[len++] = n >> (8 * i);
    }
  else
    {
      b[0] = tag8 + 3;
      for (int i = 7; i >= 0; i--)
        b[len++] = n >> (8 * i);
    }
  g_byte_array_append (buf, b, len);
}

static void
pack_uint (GByteArray *buf,
           guint64     n)
{
  guint8 fix = n;

  if (n < 0x80)
    g_byte_array_append (buf, &fix, 1);
  else
    pack_sized (buf, 0xcc, n);
}

void
elbus_test_assert_monitor_event (GBytes       *event,
                                 const char   *kind,
                                 const char   *sender,
                                 const char   *dest,
                                 guint         qos,
                                 guint         recipients,
                                 guint         result,
                                 const guint8 *payload,
                                 gsize         payload_len,
                                 gsize         shown)
{
  g_autoptr(GByteArray) want = g_byte_array_new ();
  const guint8 *data;
  gsize len;
  const gsize t_end = 1 + 2 + 9;    /* 89, a1 't', cf and 8 bytes */

  g_assert_nonnull (event);
  data = g_bytes_get_data (event, &len);
  g_assert_cmpuint (len, >, t_end);
  g_assert_cmpmem (data, 4, "\x89\xa1t\xcf", 4);

  pack_fixstr (want, "k");
  pack_fixstr (want, kind);
  pack_fixstr (want, "s");
  pack_fixstr (want, sender);
  pack_fixstr (want, "d");
  if (dest != NULL)
    pack_fixstr (want, dest);
  else
    g_byte_array_append (want, (const guint8 *) "\xc0", 1);
  pack_fixstr (want, "q");
  pack_uint (want, qos);
  pack_fixstr (want, "n");
  pack_uint (want, recipients);
  pack_fixstr (want, "r");
  pack_uint (want, result);
  pack_fixstr (want, "l");
  pack_uint (want, payload_len);
  pack_fixstr (want, "p");
  pack_sized (want, 0xc4, shown);
  g_assert_cmpuint (shown, <=, payload_len);
  g_byte_array_append (want, payload, shown);

  /* the payload compared separately: a diff of megabytes says nothing */
  g_assert_cmpuint (len - t_end, ==, want->len);
  g_assert_cmpmem (data + t_end, want->len - shown, want->data, want->len - shown);
  g_assert_true (memcmp (data + len - shown, payload, shown) == 0);
}

/* ------------------------------------------------------------------ */
/* Waiting on the thread-default main context */

static gboolean
set_flag_cb (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

void
elbus_test_spin_until (const gboolean *done,
                       const char     *what)
{
  g_autoptr(GMainContext) context = g_main_context_ref_thread_default ();
  g_autoptr(GSource) timeout = g_timeout_source_new (ELBUS_TEST_DEADLINE_MS);
  gboolean timed_out = FALSE;

  g_source_set_callback (timeout, set_flag_cb, &timed_out, NULL);
  g_source_attach (timeout, context);
  while (!*done && !timed_out)
    g_main_context_iteration (context, TRUE);
  g_source_destroy (timeout);
  if (!*done)
    g_error ("%s: not within %u ms", what, ELBUS_TEST_DEADLINE_MS);
}

void
elbus_test_spin_for (guint ms)
{
  g_autoptr(GMainContext) context = g_main_context_ref_thread_default ();
  g_autoptr(GSource) timer = g_timeout_source_new (ms);
  gboolean done = FALSE;

  g_source_set_callback (timer, set_flag_cb, &done, NULL);
  g_source_attach (timer, context);
  while (!done)
    g_main_context_iteration (context, TRUE);
}

typedef struct {
  char     *line;               /* (owned) (nullable) */
  GError   *error;              /* (owned) (nullable) */
  gboolean  done;
} LineRead;

static void
line_read_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  LineRead *read = user_data;

  read->line = g_data_input_stream_read_line_finish_utf8 (G_DATA_INPUT_STREAM (source), result,
                                                          NULL, &read->error);
  read->done = TRUE;
}

char *
elbus_test_read_line (GDataInputStream *in)
{
  LineRead read = { 0 };

  g_data_input_stream_read_line_async (in, G_PRIORITY_DEFAULT, NULL, line_read_cb, &read);
  elbus_test_spin_until (&read.done, "a line from the subprocess");
  g_assert_no_error (read.error);

  return read.line;
}

/* ------------------------------------------------------------------ */
/* MessagePack and RPC calls through the library */

guint64
elbus_test_lookup_uint (GVariant   *map,
                        const char *key)
{
  g_autoptr(GVariant) value = g_variant_lookup_value (map, key, NULL);

  g_assert_nonnull (value);
  if (g_variant_is_of_type (value, G_VARIANT_TYPE_UINT64))
    return g_variant_get_uint64 (value);
  g_assert_true (g_variant_is_of_type (value, G_VARIANT_TYPE_INT64));
  g_assert_cmpint (g_variant_get_int64 (value), >=, 0);
  return (guint64) g_variant_get_int64 (value);
}

/* The next frame is .broker's notice on .broker/warn that it disconnects
 * this client, for @reason. */
void
elbus_test_conn_expect_disconnect_notice (ElbusTestConn *conn,
                                          const char    *reason)
{
  g_autoptr(ElbusTestFrame) frame = elbus_test_conn_read_frame (conn);
  g_autoptr(GVariant) map = NULL;
  const char *s = NULL, *d = NULL;

  g_assert_cmphex (frame->kind, ==, KIND_PUBLISH);
  g_assert_cmpstr (frame->sender, ==, ".broker");
  g_assert_cmpstr (frame->topic, ==, ".broker/warn");
  map = elbus_msgpack_decode (frame->payload, NULL);
  g_assert_nonnull (map);
  g_assert_true (g_variant_lookup (map, "s", "&s", &s));
  g_assert_cmpstr (s, ==, "disconnect");
  g_assert_true (g_variant_lookup (map, "d", "&s", &d));
  g_assert_cmpstr (d, ==, reason);
  g_assert_cmpuint (elbus_test_lookup_uint (map, "t"), >, 0);
}

GBytes *
elbus_test_msgpack_from_text (const char *text)
{
  g_autoptr(GVariant) value = g_variant_ref_sink (g_variant_new_parsed (text));
  g_autoptr(GError) error = NULL;
  GBytes *bytes = elbus_msgpack_encode_variant (value, &error);

  g_assert_no_error (error);
  return bytes;
}

void
elbus_test_call_cb (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  ElbusTestCall *call = user_data;

  call->reply = elbus_rpc_peer_call_finish (ELBUS_RPC_PEER (source), result, &call->error);
  call->done = TRUE;
}

void
elbus_test_call_clear (ElbusTestCall *call)
{
  g_clear_pointer (&call->reply, g_bytes_unref);
  g_clear_error (&call->error);
  call->done = FALSE;
}

void
elbus_test_call_and_wait (ElbusRpcPeer  *peer,
                          const char    *target,
                          const char    *method,
                          GBytes        *params,
                          ElbusQoS       qos,
                          double         timeout,
                          ElbusTestCall *call)
{
  elbus_test_call_clear (call);
  elbus_rpc_peer_call_async (peer, target, method, params, qos, timeout, NULL,
                             elbus_test_call_cb, call);
  elbus_test_spin_until (&call->done, method);
}
