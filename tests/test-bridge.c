/* SPDX-License-Identifier: MIT */
/*
 * ElbusMqttBridge and elbus-bridge against a real Mosquitto (/usr/sbin/
 * mosquitto, started here on a free loopback port with a generated
 * configuration) and spawned elbusd brokers on temporary sockets: what is
 * published on one bus arrives on another through two bridges and MQTT,
 * exactly once and never back; masks and prefixes; no loops with three
 * buses; Mosquitto and elbusd restarts; refused credentials, an
 * unreachable broker, TLS, the tool's options and exit statuses, and both
 * over ws:// (the buses' WebSocket listeners).
 *
 * Nothing leaves the loopback interface. The bridges run on the test's
 * own main context. Before a case counts deliveries it "warms up" the
 * path (publishes a warm-up message until one arrives), because an MQTT
 * subscription takes effect a round trip after the bridge connects;
 * warm-ups are not counted.
 */
#include "config.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include <elbus/elbus.h>

#include "elbus-test-util.h"

#define MOSQUITTO "/usr/sbin/mosquitto"
#define WARM_UP "warm-up"

static GPtrArray *logged;   /* (element-type utf8): messages of the Elbus domain */

/* ---- Mosquitto -------------------------------------------------------- */

typedef struct {
  char *dir;
  char *conf;
  guint16 port;
  GPid pid;
  gboolean running;
} Mosquitto;

static void
child_setup (gpointer user_data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static gboolean
have_mosquitto (void)
{
  g_ptr_array_set_size (logged, 0);
  if (g_file_test (MOSQUITTO, G_FILE_TEST_IS_EXECUTABLE))
    return TRUE;
  g_test_skip (MOSQUITTO " is not installed");
  return FALSE;
}

static void
mosquitto_run (Mosquitto *m)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *address = g_strdup_printf ("127.0.0.1:%u", m->port);
  const char *argv[] = { MOSQUITTO, "-c", m->conf, NULL };

  g_autofree char *log = g_build_filename (m->dir, "mosquitto.log", NULL);
  int fd = g_open (log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

  /* its log goes to a file: standard output is TAP */
  g_assert_cmpint (fd, >=, 0);
  g_spawn_async_with_fds (NULL, (char **) argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                          child_setup, NULL, &m->pid, -1, fd, fd, &error);
  g_assert_no_error (error);
  close (fd);
  m->running = TRUE;
  if (!elbus_test_wait_for_socket (address, m->pid, ELBUS_TEST_DEADLINE_MS))
    {
      g_autofree char *text = NULL;

      g_file_get_contents (log, &text, NULL, NULL);
      g_error ("mosquitto did not listen on %s: %s", address, text);
    }
}

/* @extra: more lines of mosquitto.conf; @DIR@ stands for its temporary
 * directory */
static Mosquitto *
mosquitto_start (const char *extra)
{
  Mosquitto *m = g_new0 (Mosquitto, 1);
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  g_autofree char *owned_extra = NULL;

  m->dir = g_dir_make_tmp ("elbus-bridge-test-XXXXXX", &error);
  g_assert_no_error (error);
  m->conf = g_build_filename (m->dir, "mosquitto.conf", NULL);
  m->port = elbus_test_pick_free_port ();
  if (extra != NULL && strstr (extra, "@DIR@") != NULL)
    {
      g_autoptr(GString) with_dir = g_string_new (extra);

      g_string_replace (with_dir, "@DIR@", m->dir, 0);
      extra = owned_extra = g_string_free (g_steal_pointer (&with_dir), FALSE);
    }
  /* as root, mosquitto would become the user mosquitto, who cannot write
   * in our temporary directories */
  text = g_strdup_printf ("listener %u 127.0.0.1\n"
                          "%s\n"
                          "%s\n"
                          "%s",
                          m->port,
                          geteuid () == 0 ? "user root" : "",
                          strstr (extra != NULL ? extra : "", "allow_anonymous") != NULL ?
                          "" : "allow_anonymous true",
                          extra != NULL ? extra : "persistence false\n");
  g_file_set_contents (m->conf, text, -1, &error);
  g_assert_no_error (error);
  mosquitto_run (m);
  return m;
}

static void
mosquitto_stop (Mosquitto *m)
{
  gint64 deadline = g_get_monotonic_time () + ELBUS_TEST_DEADLINE_MS * (gint64) 1000;
  int status;

  if (!m->running)
    return;
  kill (m->pid, SIGTERM);
  while (waitpid (m->pid, &status, WNOHANG) == 0)
    {
      if (g_get_monotonic_time () > deadline)
        {
          kill (m->pid, SIGKILL);
          waitpid (m->pid, &status, 0);
          break;
        }
      g_usleep (2000);
    }
  g_spawn_close_pid (m->pid);
  m->running = FALSE;
}

static void
mosquitto_free (Mosquitto *m)
{
  g_autoptr(GDir) dir = NULL;
  const char *name;

  mosquitto_stop (m);
  dir = g_dir_open (m->dir, 0, NULL);
  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (m->dir, name, NULL);
      (void) g_remove (path);
    }
  (void) g_rmdir (m->dir);
  g_free (m->conf);
  g_free (m->dir);
  g_free (m);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Mosquitto, mosquitto_free)

static char *
mosquitto_address (Mosquitto *m)
{
  return g_strdup_printf ("127.0.0.1:%u", m->port);
}

/* ---- elbusd ----------------------------------------------------------- */

typedef struct {
  char *dir;
  char *path;
  char *ws_url;             /* (nullable): a WebSocket listener too */
  ElbusTestDaemon *daemon;
} Bus;

static void
bus_run (Bus *bus)
{
  /* the WebSocket listener first: once the socket accepts, both are up */
  const char *with_ws[] = { "-B", bus->ws_url, "-B", bus->path, NULL };
  const char *without[] = { "-B", bus->path, NULL };
  const char * const *argv = bus->ws_url != NULL ? with_ws : without;

  bus->daemon = elbus_test_daemon_spawn (argv, FALSE);
  if (!elbus_test_wait_for_socket (bus->path, bus->daemon->pid, ELBUS_TEST_DEADLINE_MS))
    g_error ("elbusd did not listen on %s", bus->path);
}

static Bus *
bus_start (void)
{
  Bus *bus = g_new0 (Bus, 1);
  g_autoptr(GError) error = NULL;

  bus->dir = g_dir_make_tmp ("elbus-bridge-bus-XXXXXX", &error);
  g_assert_no_error (error);
  bus->path = g_build_filename (bus->dir, "elbus.sock", NULL);
  bus_run (bus);
  return bus;
}

static void
bus_stop (Bus *bus)
{
  if (bus->daemon == NULL)
    return;
  elbus_test_daemon_stop (bus->daemon);
  g_clear_pointer (&bus->daemon, elbus_test_daemon_free);
}

static void
bus_free (Bus *bus)
{
  bus_stop (bus);
  (void) g_remove (bus->path);
  (void) g_rmdir (bus->dir);
  g_free (bus->path);
  g_free (bus->ws_url);
  g_free (bus->dir);
  g_free (bus);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Bus, bus_free)

/* Most cases: a Mosquitto (its extra configuration is the case's data)
 * and two buses, A and B. */
typedef struct {
  Mosquitto *m;             /* (owned) (nullable): NULL without Mosquitto */
  Bus *a;                   /* (owned) (nullable) */
  Bus *b;                   /* (owned) (nullable) */
} Net;

static gboolean have_mosquitto (void);

static void
net_setup (Net           *net,
           gconstpointer  data)
{
  if (!have_mosquitto ())
    return;
  net->m = mosquitto_start (data);
  net->a = bus_start ();
  net->b = bus_start ();
}

static void
net_teardown (Net           *net,
              gconstpointer  data)
{
  g_clear_pointer (&net->a, bus_free);
  g_clear_pointer (&net->b, bus_free);
  g_clear_pointer (&net->m, mosquitto_free);
}

/* ---- waiting ---------------------------------------------------------- */

typedef gboolean (*Predicate) (gpointer data);

static gboolean
tick_cb (gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

/* Iterates the context until @pred holds, polling it every 10 ms too. */
static void
wait_for (Predicate   pred,
          gpointer    data,
          const char *what)
{
  GMainContext *context = g_main_context_get_thread_default ();
  gint64 deadline = g_get_monotonic_time () + ELBUS_TEST_DEADLINE_MS * (gint64) 1000;
  g_autoptr(GSource) tick = g_timeout_source_new (10);

  g_source_set_callback (tick, tick_cb, NULL, NULL);
  g_source_attach (tick, context);
  while (!pred (data))
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("%s: not within %u ms", what, ELBUS_TEST_DEADLINE_MS);
      g_main_context_iteration (context, TRUE);
    }
  g_source_destroy (tick);
}

static gboolean
bridge_ready (gpointer data)
{
  return elbus_mqtt_bridge_is_mqtt_connected (data) &&
         elbus_mqtt_bridge_is_local_connected (data);
}

static gboolean
bridge_exported_two (gpointer data)
{
  g_autoptr(GVariant) stats = g_variant_ref_sink (elbus_mqtt_bridge_get_stats (data));
  guint64 exported = 0;

  g_variant_lookup (stats, "exported", "t", &exported);
  return exported >= 2;
}

static gboolean
bridge_mqtt_down (gpointer data)
{
  return !elbus_mqtt_bridge_is_mqtt_connected (data);
}

static gboolean
bridge_local_down (gpointer data)
{
  return !elbus_mqtt_bridge_is_local_connected (data);
}

/* ---- bridges and clients ---------------------------------------------- */

/* @exports and @imports: NULL-terminated, or NULL */
static ElbusMqttBridge *
bridge_new (Bus                *bus,
            const char         *name,
            Mosquitto          *m,
            const char * const *exports,
            const char * const *imports)
{
  g_autofree char *address = mosquitto_address (m);
  ElbusMqttBridge *bridge = elbus_mqtt_bridge_new (bus->path, name, address);
  g_autoptr(GError) error = NULL;

  for (guint i = 0; exports != NULL && exports[i] != NULL; i++)
    {
      elbus_mqtt_bridge_add_export (bridge, exports[i], &error);
      g_assert_no_error (error);
    }
  for (guint i = 0; imports != NULL && imports[i] != NULL; i++)
    {
      elbus_mqtt_bridge_add_import (bridge, imports[i], &error);
      g_assert_no_error (error);
    }
  return bridge;
}

static void
bridge_start (ElbusMqttBridge *bridge)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (elbus_mqtt_bridge_start (bridge, &error));
  g_assert_no_error (error);
  wait_for (bridge_ready, bridge, "the bridge connected on both sides");
}

static void
bridge_free (ElbusMqttBridge *bridge)
{
  elbus_mqtt_bridge_stop (bridge);
  g_object_unref (bridge);
}

static guint64
bridge_stat (ElbusMqttBridge *bridge,
             const char      *key)
{
  g_autoptr(GVariant) stats = g_variant_ref_sink (elbus_mqtt_bridge_get_stats (bridge));
  guint64 value = G_MAXUINT64;

  g_assert_true (g_variant_lookup (stats, key, "t", &value));
  return value;
}

/* A subscriber that keeps what it receives. */
typedef struct {
  ElbusClient *client;
  GPtrArray *frames;        /* (element-type ElbusFrame) */
} Sink;

static void
sink_publication_cb (ElbusClient *client,
                     ElbusFrame  *frame,
                     gpointer     user_data)
{
  Sink *sink = user_data;

  g_ptr_array_add (sink->frames, elbus_frame_ref (frame));
}

static Sink *
sink_new (Bus        *bus,
          const char *name,
          const char *mask)
{
  Sink *sink = g_new0 (Sink, 1);
  g_autoptr(GError) error = NULL;
  const char *masks[] = { mask, NULL };

  sink->frames = g_ptr_array_new_with_free_func ((GDestroyNotify) elbus_frame_unref);
  sink->client = elbus_client_new_sync (bus->path, name, NULL, &error);
  g_assert_no_error (error);
  g_signal_connect (sink->client, "publication", G_CALLBACK (sink_publication_cb), sink);
  elbus_client_subscribe_sync (sink->client, masks, ELBUS_QOS_PROCESSED, NULL, &error);
  g_assert_no_error (error);
  return sink;
}

static void
sink_free (Sink *sink)
{
  g_signal_handlers_disconnect_by_data (sink->client, sink);
  elbus_client_close (sink->client);
  g_object_unref (sink->client);
  g_ptr_array_unref (sink->frames);
  g_free (sink);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Sink, sink_free)

static gboolean
is_warm_up (ElbusFrame *frame)
{
  GBytes *payload = elbus_frame_get_payload (frame);

  return payload != NULL && g_bytes_get_size (payload) == strlen (WARM_UP) &&
         memcmp (g_bytes_get_data (payload, NULL), WARM_UP, strlen (WARM_UP)) == 0;
}

/* The frames on @topic (any topic when NULL) that are not warm-ups. */
static guint
sink_count (Sink       *sink,
            const char *topic)
{
  guint n = 0;

  for (guint i = 0; i < sink->frames->len; i++)
    {
      ElbusFrame *frame = g_ptr_array_index (sink->frames, i);

      if (!is_warm_up (frame) &&
          (topic == NULL || g_strcmp0 (elbus_frame_get_topic (frame), topic) == 0))
        n++;
    }
  return n;
}

static ElbusFrame *
sink_nth (Sink *sink,
          guint n)
{
  for (guint i = 0; i < sink->frames->len; i++)
    {
      ElbusFrame *frame = g_ptr_array_index (sink->frames, i);

      if (!is_warm_up (frame) && n-- == 0)
        return frame;
    }
  g_assert_not_reached ();
}

/* The one frame on @topic (not a warm-up). */
static ElbusFrame *
sink_find (Sink       *sink,
           const char *topic)
{
  ElbusFrame *found = NULL;

  for (guint i = 0; i < sink->frames->len; i++)
    {
      ElbusFrame *frame = g_ptr_array_index (sink->frames, i);

      if (!is_warm_up (frame) && g_strcmp0 (elbus_frame_get_topic (frame), topic) == 0)
        {
          g_assert_null (found);
          found = frame;
        }
    }
  g_assert_nonnull (found);
  return found;
}

typedef struct {
  Sink *sink;
  guint want;
  gboolean warm;
} SinkWait;

static gboolean
sink_has (gpointer data)
{
  SinkWait *w = data;

  if (w->warm)
    {
      for (guint i = 0; i < w->sink->frames->len; i++)
        if (is_warm_up (g_ptr_array_index (w->sink->frames, i)))
          return TRUE;
      return FALSE;
    }
  return sink_count (w->sink, NULL) >= w->want;
}

static void
sink_wait (Sink  *sink,
           guint  want)
{
  SinkWait w = { sink, want, FALSE };

  wait_for (sink_has, &w, "publications through the bridges");
}

static void
publish (ElbusClient *client,
         const char  *topic,
         const void  *data,
         gsize        len)
{
  g_autoptr(GBytes) payload = g_bytes_new (data, len);
  g_autoptr(GError) error = NULL;

  elbus_client_publish_sync (client, topic, payload, ELBUS_QOS_PROCESSED, NULL, &error);
  g_assert_no_error (error);
}

static gboolean
warm_up_tick_cb (gpointer user_data)
{
  ElbusClient *client = ELBUS_CLIENT (g_object_get_data (user_data, "client"));
  const char *topic = g_object_get_data (user_data, "topic");
  g_autoptr(GBytes) payload = g_bytes_new_static (WARM_UP, strlen (WARM_UP));

  elbus_client_publish_async (client, topic, payload, ELBUS_QOS_NO, NULL, NULL, NULL);
  return G_SOURCE_CONTINUE;
}

/* Publishes warm-ups on @topic from @client every 50 ms until one reaches
 * @sink: the subscriptions along the way are in place then. */
static void
warm_up (ElbusClient *client,
         const char  *topic,
         Sink        *sink)
{
  g_autoptr(GObject) holder = g_object_new (G_TYPE_OBJECT, NULL);
  g_autoptr(GSource) timer = g_timeout_source_new (50);
  SinkWait w = { sink, 0, TRUE };

  g_object_set_data (holder, "client", client);
  g_object_set_data_full (holder, "topic", g_strdup (topic), g_free);
  g_source_set_callback (timer, warm_up_tick_cb, holder, NULL);
  g_source_attach (timer, g_main_context_get_thread_default ());
  warm_up_tick_cb (holder);
  wait_for (sink_has, &w, "a warm-up through the bridges");
  g_source_destroy (timer);
}

static ElbusClient *
client_new (Bus        *bus,
            const char *name)
{
  g_autoptr(GError) error = NULL;
  ElbusClient *client = elbus_client_new_sync (bus->path, name, NULL, &error);

  g_assert_no_error (error);
  return client;
}

/* Time for anything more (a duplicate, an echo) to arrive. Not scaled
 * under valgrind, where it would add up to most of a minute: there the
 * exactly-once checks are looser, the plain and ASan runs keep them. */
static void
settle (void)
{
  elbus_test_spin_for (300);
}

/* ---- what the library logs --------------------------------------------- */

static void
log_cb (const char     *domain,
        GLogLevelFlags  level,
        const char     *message,
        gpointer        user_data)
{
  g_ptr_array_add (logged, g_strdup (message));
  g_printerr ("%s: %s\n", domain, message);
}

/* How many of the messages logged since the case began match @pattern. */
static guint
logged_count (const char *pattern)
{
  guint n = 0;

  for (guint i = 0; i < logged->len; i++)
    if (g_pattern_match_simple (pattern, g_ptr_array_index (logged, i)))
      n++;
  return n;
}

static gboolean
logged_once (gpointer pattern)
{
  return logged_count (pattern) >= 1;
}

/* ---- cases ------------------------------------------------------------- */

/* A publication on A reaches B, and one on B reaches A, exactly once and
 * with its payload intact (text, binary with NULs, 1 MiB); nothing
 * returns to the bus it came from. */
static void
test_both_ways (Net          *net,
                gconstpointer  data)
{
  g_autoptr(ElbusMqttBridge) bridge_a = NULL;
  g_autoptr(ElbusMqttBridge) bridge_b = NULL;
  g_autoptr(Sink) sink_a = NULL;
  g_autoptr(Sink) sink_b = NULL;
  g_autoptr(ElbusClient) pub_a = NULL;
  g_autoptr(ElbusClient) pub_b = NULL;
  const char *both[] = { "plant/#", NULL };
  const guint8 binary[] = { 0x00, 0xff, 0x01, 0x00, 0xc1, 0x80 };
  g_autofree guint8 *big = g_malloc (1024 * 1024);
  GBytes *payload;

  if (net->m == NULL)
    return;
  bridge_a = bridge_new (net->a, "bridge.a", net->m, both, both);
  bridge_b = bridge_new (net->b, "bridge.b", net->m, both, both);
  bridge_start (bridge_a);
  bridge_start (bridge_b);
  sink_a = sink_new (net->a, "sink.a", "plant/#");
  sink_b = sink_new (net->b, "sink.b", "plant/#");
  pub_a = client_new (net->a, "pub.a");
  pub_b = client_new (net->b, "pub.b");
  warm_up (pub_a, "plant/warm", sink_b);
  warm_up (pub_b, "plant/warm", sink_a);

  for (guint i = 0; i < 1024 * 1024; i++)
    big[i] = (guint8) (i * 7 + (i >> 11));
  publish (pub_a, "plant/temp", "21.5", 4);
  publish (pub_a, "plant/bin", binary, sizeof binary);
  publish (pub_a, "plant/big", big, 1024 * 1024);
  publish (pub_b, "plant/b/cmd", "start", 5);
  /* each sink: A's three and B's one */
  sink_wait (sink_b, 4);
  sink_wait (sink_a, 4);
  settle ();

  /* B: each of A's once, from its bridge, intact */
  g_assert_cmpuint (sink_count (sink_b, NULL), ==, 4);
  g_assert_cmpstr (elbus_frame_get_sender (sink_find (sink_b, "plant/temp")), ==, "bridge.b");
  payload = elbus_frame_get_payload (sink_find (sink_b, "plant/temp"));
  g_assert_cmpmem (g_bytes_get_data (payload, NULL), g_bytes_get_size (payload), "21.5", 4);
  payload = elbus_frame_get_payload (sink_find (sink_b, "plant/bin"));
  g_assert_cmpmem (g_bytes_get_data (payload, NULL), g_bytes_get_size (payload),
                   binary, sizeof binary);
  payload = elbus_frame_get_payload (sink_find (sink_b, "plant/big"));
  g_assert_cmpmem (g_bytes_get_data (payload, NULL), g_bytes_get_size (payload),
                   big, 1024 * 1024);
  /* and B's own, once: not echoed back through A */
  g_assert_cmpstr (elbus_frame_get_sender (sink_find (sink_b, "plant/b/cmd")), ==, "pub.b");

  /* A: its own three, once each, and B's one from the bridge */
  g_assert_cmpuint (sink_count (sink_a, NULL), ==, 4);
  g_assert_cmpstr (elbus_frame_get_sender (sink_find (sink_a, "plant/big")), ==, "pub.a");
  g_assert_cmpstr (elbus_frame_get_sender (sink_find (sink_a, "plant/b/cmd")), ==, "bridge.a");

  g_assert_cmpuint (bridge_stat (bridge_a, "exported"), >=, 3);
  g_assert_cmpuint (bridge_stat (bridge_a, "exported_bytes"), >=, 1024 * 1024 + 10);
  g_assert_cmpuint (bridge_stat (bridge_b, "imported_bytes"), >=, 1024 * 1024 + 10);
  g_assert_cmpuint (bridge_stat (bridge_a, "dropped"), ==, 0);

  g_clear_pointer (&bridge_a, bridge_free);
  g_clear_pointer (&bridge_b, bridge_free);
}

/* Only what the masks name crosses, under the prefix both sides share;
 * an empty prefix works too. */
static void
test_prefix_masks (Net          *net,
                   gconstpointer  data)
{
  g_autoptr(ElbusMqttBridge) bridge_a = NULL;
  g_autoptr(ElbusMqttBridge) bridge_b = NULL;
  g_autoptr(ElbusMqttBridge) bridge_other = NULL;
  g_autoptr(Sink) sink_b = NULL;
  g_autoptr(ElbusClient) pub_a = NULL;
  const char *exports[] = { "a/+/temp", "c/#", NULL };
  const char *imports[] = { "a/#", NULL };
  const char *c_imports[] = { "c/#", NULL };

  if (net->m == NULL)
    return;
  bridge_a = bridge_new (net->a, "bridge.a", net->m, exports, NULL);
  g_object_set (bridge_a, "prefix", "site/one", NULL);
  bridge_b = bridge_new (net->b, "bridge.b", net->m, NULL, imports);
  g_object_set (bridge_b, "prefix", "site/one", NULL);
  /* on another prefix: gets nothing */
  bridge_other = bridge_new (net->b, "bridge.other", net->m, NULL, c_imports);
  g_object_set (bridge_other, "prefix", "", NULL);
  bridge_start (bridge_a);
  bridge_start (bridge_b);
  bridge_start (bridge_other);
  sink_b = sink_new (net->b, "sink.b", "#");
  pub_a = client_new (net->a, "pub.a");
  warm_up (pub_a, "a/warm/temp", sink_b);

  publish (pub_a, "a/x/temp", "1", 1);
  publish (pub_a, "a/x/humidity", "2", 1);     /* not exported */
  publish (pub_a, "a/x/y/temp", "3", 1);       /* not exported */
  publish (pub_a, "c/1", "4", 1);              /* exported, imported by neither */
  publish (pub_a, "a/y/temp", "5", 1);
  sink_wait (sink_b, 2);
  settle ();
  g_assert_cmpuint (sink_count (sink_b, NULL), ==, 2);
  g_assert_cmpstr (elbus_frame_get_topic (sink_nth (sink_b, 0)), ==, "a/x/temp");
  g_assert_cmpstr (elbus_frame_get_topic (sink_nth (sink_b, 1)), ==, "a/y/temp");
  g_assert_cmpuint (bridge_stat (bridge_a, "exported"), >=, 3);

  /* an empty prefix on both sides: c/# crosses as it is */
  g_clear_pointer (&bridge_a, bridge_free);
  bridge_a = bridge_new (net->a, "bridge.a", net->m, exports, NULL);
  g_object_set (bridge_a, "prefix", "", NULL);
  bridge_start (bridge_a);
  g_ptr_array_set_size (sink_b->frames, 0);
  warm_up (pub_a, "c/warm", sink_b);
  publish (pub_a, "c/2", "6", 1);
  sink_wait (sink_b, 1);
  settle ();
  g_assert_cmpuint (sink_count (sink_b, NULL), ==, 1);
  g_assert_cmpstr (elbus_frame_get_topic (sink_nth (sink_b, 0)), ==, "c/2");
  g_assert_cmpstr (elbus_frame_get_sender (sink_nth (sink_b, 0)), ==, "bridge.other");

  g_clear_pointer (&bridge_a, bridge_free);
  g_clear_pointer (&bridge_b, bridge_free);
  g_clear_pointer (&bridge_other, bridge_free);
}

/* Three buses, each bridge exporting and importing the same mask: a
 * publication reaches the other two once each and never comes back; two
 * bridges of one bus (one exporting, one importing) do not echo either. */
static void
test_no_loops (Net          *net,
               gconstpointer  data)
{
  Bus *buses[3];
  ElbusMqttBridge *bridges[3];
  Sink *sinks[3];
  g_autoptr(ElbusClient) pub = NULL;
  g_autoptr(ElbusMqttBridge) importer = NULL;
  const char *both[] = { "t/#", NULL };

  if (net->m == NULL)
    return;
  for (guint i = 0; i < 3; i++)
    {
      g_autofree char *name = g_strdup_printf ("bridge.%u", i);
      g_autofree char *sink_name = g_strdup_printf ("sink.%u", i);

      buses[i] = bus_start ();
      bridges[i] = bridge_new (buses[i], name, net->m, both, both);
      bridge_start (bridges[i]);
      sinks[i] = sink_new (buses[i], sink_name, "t/#");
    }
  pub = client_new (buses[0], "pub");
  warm_up (pub, "t/warm", sinks[1]);
  warm_up (pub, "t/warm", sinks[2]);

  publish (pub, "t/x", "once", 4);
  sink_wait (sinks[1], 1);
  sink_wait (sinks[2], 1);
  settle ();
  for (guint i = 0; i < 3; i++)
    g_assert_cmpuint (sink_count (sinks[i], "t/x"), ==, 1);
  g_assert_cmpstr (elbus_frame_get_sender (sink_nth (sinks[0], 0)), ==, "pub");
  /* the importers saw their own publications and passed none back */
  g_assert_cmpuint (bridge_stat (bridges[1], "echoes"), >=, 1);
  g_assert_cmpuint (bridge_stat (bridges[1], "exported"), ==, 0);

  /* a second bridge on bus 0 importing t/#: it hears bridge.0's exports,
   * which carry this bus's origin, and drops them */
  importer = bridge_new (buses[0], "bridge.0b", net->m, NULL, both);
  bridge_start (importer);
  g_ptr_array_set_size (sinks[0]->frames, 0);
  g_ptr_array_set_size (sinks[1]->frames, 0);
  warm_up (pub, "t/warm", sinks[1]);
  publish (pub, "t/y", "again", 5);
  sink_wait (sinks[1], 1);
  settle ();
  g_assert_cmpuint (sink_count (sinks[0], "t/y"), ==, 1);
  g_assert_cmpuint (bridge_stat (importer, "echoes"), >=, 1);
  g_assert_cmpuint (bridge_stat (importer, "imported"), ==, 0);

  g_clear_pointer (&importer, bridge_free);
  for (guint i = 0; i < 3; i++)
    {
      sink_free (sinks[i]);
      bridge_free (bridges[i]);
      bus_free (buses[i]);
    }
}

/* --retain: a bridge that starts later still gets the last value. */
static void
test_retain (Net          *net,
             gconstpointer  data)
{
  g_autoptr(ElbusMqttBridge) bridge_a = NULL;
  g_autoptr(ElbusMqttBridge) bridge_b = NULL;
  g_autoptr(Sink) sink_b = NULL;
  g_autoptr(ElbusClient) pub = NULL;
  const char *both[] = { "last/#", NULL };

  if (net->m == NULL)
    return;
  bridge_a = bridge_new (net->a, "bridge.a", net->m, both, NULL);
  g_object_set (bridge_a, "retain", TRUE, NULL);
  bridge_start (bridge_a);
  pub = client_new (net->a, "pub");
  publish (pub, "last/value", "41", 2);
  publish (pub, "last/value", "42", 2);
  wait_for (bridge_exported_two, bridge_a, "two exports");
  /* sent before the bridge's DISCONNECT: Mosquitto keeps the last */
  g_clear_pointer (&bridge_a, bridge_free);

  sink_b = sink_new (net->b, "sink.b", "last/#");
  bridge_b = bridge_new (net->b, "bridge.b", net->m, NULL, both);
  bridge_start (bridge_b);
  sink_wait (sink_b, 1);
  settle ();
  g_assert_cmpuint (sink_count (sink_b, NULL), ==, 1);
  g_assert_cmpmem (g_bytes_get_data (elbus_frame_get_payload (sink_nth (sink_b, 0)), NULL), 2,
                   "42", 2);
  g_clear_pointer (&bridge_b, bridge_free);
}

/* The payloads a sink received, in order, an immediate repetition of the
 * one before (a QoS 1 redelivery) counted once; space-separated. */
static char *
sink_payloads_once (Sink *sink)
{
  GBytes *last = NULL;
  GString *s = g_string_new (NULL);

  for (guint i = 0; i < sink_count (sink, NULL); i++)
    {
      GBytes *payload = elbus_frame_get_payload (sink_nth (sink, i));

      if (last != NULL && g_bytes_equal (last, payload))
        continue;
      if (s->len > 0)
        g_string_append_c (s, ' ');
      g_string_append_len (s, g_bytes_get_data (payload, NULL), g_bytes_get_size (payload));
      last = payload;
    }
  return g_string_free (s, FALSE);
}

static gboolean
sink_last_is_ten (gpointer data)
{
  Sink *sink = data;
  guint n = sink_count (sink, NULL);
  GBytes *payload;

  if (n == 0)
    return FALSE;
  payload = elbus_frame_get_payload (sink_nth (sink, n - 1));
  return g_bytes_get_size (payload) == 2 && memcmp (g_bytes_get_data (payload, NULL), "10", 2) == 0;
}

/* Mosquitto stops mid-stream and comes back: with QoS 1 what was published
 * meanwhile (within the queue) arrives once, in order; past the queue the
 * oldest are dropped and counted. */
static void
test_mqtt_restart (Net          *net,
                   gconstpointer  data)
{
  g_autoptr(ElbusMqttBridge) bridge_a = NULL;
  g_autoptr(ElbusMqttBridge) bridge_b = NULL;
  g_autoptr(Sink) sink_b = NULL;
  g_autoptr(ElbusClient) pub = NULL;
  g_autofree char *payloads = NULL;
  const char *both[] = { "q/#", NULL };

  if (net->m == NULL)
    return;
  /* Mosquitto runs with persistence (PERSISTENT) */
  bridge_a = bridge_new (net->a, "bridge.a", net->m, both, NULL);
  bridge_b = bridge_new (net->b, "bridge.b", net->m, NULL, both);
  g_object_set (bridge_a, "mqtt-qos", 1, "queue-size", 8, NULL);
  g_object_set (bridge_b, "mqtt-qos", 1, NULL);
  bridge_start (bridge_a);
  bridge_start (bridge_b);
  sink_b = sink_new (net->b, "sink.b", "q/#");
  pub = client_new (net->a, "pub");
  warm_up (pub, "q/warm", sink_b);

  publish (pub, "q/n", "0", 1);
  sink_wait (sink_b, 1);

  mosquitto_stop (net->m);
  wait_for (bridge_mqtt_down, bridge_a, "bridge A saw MQTT go");
  wait_for (bridge_mqtt_down, bridge_b, "bridge B saw MQTT go");
  for (guint i = 1; i <= 10; i++)
    {
      char digit[3];

      g_snprintf (digit, sizeof digit, "%u", i);
      publish (pub, "q/n", digit, strlen (digit));
    }
  elbus_test_spin_for (50);
  g_assert_cmpuint (bridge_stat (bridge_a, "queued"), ==, 8);
  g_assert_cmpuint (bridge_stat (bridge_a, "dropped"), ==, 2);

  mosquitto_run (net->m);
  wait_for (bridge_ready, bridge_a, "bridge A back");
  wait_for (bridge_ready, bridge_b, "bridge B back");
  /* each bridge said it once, however many times it tried */
  g_assert_cmpuint (logged_count ("lost the MQTT broker at 127.0.0.1:*"), ==, 2);
  g_assert_cmpuint (logged_count ("reconnected to the MQTT broker at 127.0.0.1:*"), ==, 2);
  /* QoS 1 is at least once: a message whose PUBACK was lost with
   * Mosquitto ("0", on either hop) may come again; nothing may be lost,
   * reordered or duplicated beyond such a redelivery */
  wait_for (sink_last_is_ten, sink_b, "the last publication through the bridges");
  settle ();
  payloads = sink_payloads_once (sink_b);
  g_assert_cmpstr (payloads, ==, "0 3 4 5 6 7 8 9 10");
  g_assert_cmpuint (bridge_stat (bridge_a, "mqtt_reconnects"), ==, 1);
  g_assert_cmpuint (bridge_stat (bridge_a, "queued"), ==, 0);

  g_clear_pointer (&bridge_a, bridge_free);
  g_clear_pointer (&bridge_b, bridge_free);
  mosquitto_stop (net->m);
}

static gboolean
bridge_dropped_some (gpointer data)
{
  return bridge_stat (data, "dropped") > 0;
}

/* Mosquitto stops reading (SIGSTOP): the exporting bridge's socket backs
 * up, its queue fills and drops the oldest, and the local bus does not
 * notice; when Mosquitto goes on, so does the bridge. */
static void
test_slow_link (Net          *net,
                gconstpointer  data)
{
  g_autoptr(ElbusMqttBridge) bridge_a = NULL;
  g_autoptr(ElbusMqttBridge) bridge_b = NULL;
  g_autoptr(Sink) sink_b = NULL;
  g_autoptr(ElbusClient) pub = NULL;
  g_autofree guint8 *chunk = g_malloc0 (16 * 1024);
  const char *both[] = { "slow/#", NULL };
  guint sent = 0;

  if (net->m == NULL)
    return;
  bridge_a = bridge_new (net->a, "bridge.a", net->m, both, NULL);
  g_object_set (bridge_a, "queue-size", 50, NULL);
  bridge_b = bridge_new (net->b, "bridge.b", net->m, NULL, both);
  bridge_start (bridge_a);
  bridge_start (bridge_b);
  sink_b = sink_new (net->b, "sink.b", "slow/#");
  pub = client_new (net->a, "pub");
  warm_up (pub, "slow/warm", sink_b);

  g_assert_cmpint (kill (net->m->pid, SIGSTOP), ==, 0);
  /* 16 KiB at a time until the socket buffers are full and the queue
   * overflows; every local publication is acked all the while */
  while (!bridge_dropped_some (bridge_a))
    {
      g_assert_cmpuint (sent, <, 4000);
      publish (pub, "slow/data", chunk, 16 * 1024);
      sent++;
      g_main_context_iteration (NULL, FALSE);
      g_main_context_iteration (NULL, FALSE);
    }
  g_assert_cmpuint (bridge_stat (bridge_a, "queued"), <=, 50);
  g_assert_true (elbus_mqtt_bridge_is_local_connected (bridge_a));
  g_assert_true (elbus_mqtt_bridge_is_mqtt_connected (bridge_a));

  g_assert_cmpint (kill (net->m->pid, SIGCONT), ==, 0);
  g_ptr_array_set_size (sink_b->frames, 0);
  warm_up (pub, "slow/warm", sink_b);
  g_assert_true (elbus_mqtt_bridge_is_local_connected (bridge_a));
  g_clear_pointer (&bridge_a, bridge_free);
  g_clear_pointer (&bridge_b, bridge_free);
}

/* elbusd restarts under a bridge: it registers again and subscribes
 * again, both ways. */
static void
test_local_restart (Net          *net,
                    gconstpointer  data)
{
  g_autoptr(ElbusMqttBridge) bridge_a = NULL;
  g_autoptr(ElbusMqttBridge) bridge_b = NULL;
  g_autoptr(Sink) sink_b = NULL;
  g_autoptr(Sink) sink_a = NULL;
  g_autoptr(ElbusClient) pub_a = NULL;
  g_autoptr(ElbusClient) pub_b = NULL;
  const char *both[] = { "r/#", NULL };

  if (net->m == NULL)
    return;
  bridge_a = bridge_new (net->a, "bridge.a", net->m, both, both);
  bridge_b = bridge_new (net->b, "bridge.b", net->m, both, both);
  bridge_start (bridge_a);
  bridge_start (bridge_b);

  bus_stop (net->b);
  wait_for (bridge_local_down, bridge_b, "bridge B saw elbusd go");
  elbus_test_spin_for (400);
  bus_run (net->b);
  wait_for (bridge_ready, bridge_b, "bridge B registered again");
  g_assert_cmpuint (logged_count ("lost the local broker at *"), ==, 1);
  g_assert_cmpuint (logged_count ("reconnected to the local broker at *"), ==, 1);
  g_assert_cmpuint (bridge_stat (bridge_b, "local_reconnects"), ==, 1);

  sink_b = sink_new (net->b, "sink.b", "r/#");
  sink_a = sink_new (net->a, "sink.a", "r/#");
  pub_a = client_new (net->a, "pub.a");
  pub_b = client_new (net->b, "pub.b");
  warm_up (pub_a, "r/warm", sink_b);
  warm_up (pub_b, "r/warm", sink_a);
  publish (pub_a, "r/1", "to b", 4);
  publish (pub_b, "r/2", "to a", 4);
  sink_wait (sink_b, 2);
  sink_wait (sink_a, 2);
  settle ();
  g_assert_cmpuint (sink_count (sink_b, "r/1"), ==, 1);
  g_assert_cmpuint (sink_count (sink_a, "r/2"), ==, 1);

  g_clear_pointer (&bridge_a, bridge_free);
  g_clear_pointer (&bridge_b, bridge_free);
}

/* bridge.stats over RPC, as `elbus PATH rpc call NAME bridge.stats` does */
static void
test_stats_rpc (Net          *net,
                gconstpointer  data)
{
  g_autoptr(ElbusMqttBridge) bridge = NULL;
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(ElbusRpcPeer) rpc = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) value = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(ElbusTestCall) call = { 0 };
  const char *exports[] = { "s/#", NULL };
  gint64 exported = -1;

  if (net->m == NULL)
    return;
  bridge = bridge_new (net->a, "bridge.stats", net->m, exports, NULL);
  bridge_start (bridge);
  client = client_new (net->a, "caller");
  publish (client, "s/1", "x", 1);
  publish (client, "s/2", "yy", 2);
  rpc = elbus_rpc_peer_new (client);
  elbus_test_call_and_wait (rpc, "bridge.stats", "bridge.stats", NULL, ELBUS_QOS_PROCESSED, 5,
                            &call);
  g_assert_no_error (call.error);
  reply = elbus_msgpack_decode (call.reply, &error);
  g_assert_no_error (error);
  value = g_variant_lookup_value (reply, "exported", NULL);
  g_assert_nonnull (value);
  if (g_variant_is_of_type (value, G_VARIANT_TYPE_UINT64))
    exported = (gint64) g_variant_get_uint64 (value);
  else
    exported = g_variant_get_int64 (value);
  g_assert_cmpint (exported, ==, 2);

  g_clear_pointer (&bridge, bridge_free);
}

/* Mosquitto refuses the bridge: ::failed, the bridge stopped. */
static void
failed_cb (ElbusMqttBridge *bridge,
           GError          *error,
           gpointer         user_data)
{
  GError **out = user_data;

  g_assert_null (*out);
  *out = g_error_copy (error);
}

static gboolean
have_error (gpointer data)
{
  return *(GError **) data != NULL;
}

static void
test_refused (Net          *net,
              gconstpointer  data)
{
  g_autoptr(ElbusMqttBridge) bridge = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) failed = NULL;
  const char *exports[] = { "f/#", NULL };

  if (net->m == NULL)
    return;
  bridge = bridge_new (net->a, "bridge.refused", net->m, exports, NULL);
  elbus_mqtt_bridge_set_credentials (bridge, "someone", "wrong");
  g_signal_connect (bridge, "failed", G_CALLBACK (failed_cb), &failed);
  g_assert_true (elbus_mqtt_bridge_start (bridge, &error));
  g_assert_no_error (error);
  wait_for (have_error, &failed, "the bridge failed");
  g_assert_error (failed, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED);
  g_assert_nonnull (strstr (failed->message, "refused the connection"));
  g_assert_false (elbus_mqtt_bridge_is_mqtt_connected (bridge));
  g_assert_false (elbus_mqtt_bridge_is_local_connected (bridge));
  g_clear_pointer (&bridge, bridge_free);
}

/* Nothing listens: said once, the local side works, and once a broker
 * appears there the bridge connects. */
static void
test_unreachable (Net          *net,
                  gconstpointer  data)
{
  g_autoptr(ElbusMqttBridge) bridge = NULL;
  g_autoptr(GError) error = NULL;
  const char *exports[] = { "u/#", NULL };

  if (net->m == NULL)
    return;
  mosquitto_stop (net->m);
  bridge = bridge_new (net->a, "bridge.u", net->m, exports, NULL);
  g_assert_true (elbus_mqtt_bridge_start (bridge, &error));
  g_assert_no_error (error);
  wait_for (logged_once, (gpointer) "cannot reach the MQTT broker at 127.0.0.1:*: *refused*",
            "the outage logged");
  /* several more attempts (0.1 + 0.2 + 0.4 s), no more lines */
  elbus_test_spin_for (800);
  g_assert_cmpuint (logged_count ("cannot reach the MQTT broker at 127.0.0.1:*: *refused*"),
                    ==, 1);
  g_assert_false (elbus_mqtt_bridge_is_mqtt_connected (bridge));
  g_assert_true (elbus_mqtt_bridge_is_local_connected (bridge));

  mosquitto_run (net->m);
  wait_for (bridge_ready, bridge, "the bridge connected");
  g_assert_cmpuint (logged_count ("reconnected to the MQTT broker at 127.0.0.1:*"), ==, 1);
  g_clear_pointer (&bridge, bridge_free);
}

/* ---- a broken MQTT broker -------------------------------------------- */

/* Just enough of an MQTT 5 broker, on its own thread, to send what
 * Mosquitto never would: it accepts every CONNECT, and answers the first
 * SUBSCRIBE of each connection with a SUBACK and a PUBLISH whose topic is
 * not UTF-8. */
typedef struct {
  GSocket *listener;        /* (owned) */
  guint16 port;
  GThread *thread;          /* (owned) */
  gint subscribes;          /* (atomic) */
} FakeBroker;

static gboolean
fake_read_packet (GSocket    *socket,
                  guint8     *type,
                  GByteArray *body)
{
  guint8 byte;
  gsize length = 0;
  guint shift = 0;

  if (g_socket_receive (socket, (char *) type, 1, NULL, NULL) != 1)
    return FALSE;
  do
    {
      if (g_socket_receive (socket, (char *) &byte, 1, NULL, NULL) != 1 || shift > 21)
        return FALSE;
      length |= (gsize) (byte & 0x7f) << shift;
      shift += 7;
    }
  while (byte & 0x80);
  g_byte_array_set_size (body, length);
  for (gsize got = 0; got < length;)
    {
      gssize n = g_socket_receive (socket, (char *) body->data + got, length - got, NULL, NULL);

      if (n <= 0)
        return FALSE;
      got += n;
    }
  return TRUE;
}

static gpointer
fake_broker_thread (gpointer data)
{
  FakeBroker *fake = data;
  static const guint8 connack[] = { 0x20, 0x03, 0x00, 0x00, 0x00 };
  /* topic "elbus/\xff\xfe", no properties, payload "x" */
  static const guint8 publish[] = { 0x30, 0x0c, 0x00, 0x08, 'e', 'l', 'b', 'u', 's', '/',
                                    0xff, 0xfe, 0x00, 'x' };
  GSocket *connection;

  while ((connection = g_socket_accept (fake->listener, NULL, NULL)) != NULL)
    {
      g_autoptr(GByteArray) body = g_byte_array_new ();
      guint8 type;

      while (fake_read_packet (connection, &type, body))
        {
          if ((type & 0xf0) == 0x10)          /* CONNECT */
            g_socket_send (connection, (const char *) connack, sizeof connack, NULL, NULL);
          else if ((type & 0xf0) == 0x80 && body->len >= 2)      /* SUBSCRIBE */
            {
              guint8 suback[] = { 0x90, 0x04, body->data[0], body->data[1], 0x00, 0x00 };

              g_socket_send (connection, (const char *) suback, sizeof suback, NULL, NULL);
              g_socket_send (connection, (const char *) publish, sizeof publish, NULL, NULL);
              g_atomic_int_inc (&fake->subscribes);
            }
        }
      g_object_unref (connection);
    }
  return NULL;
}

static FakeBroker *
fake_broker_start (void)
{
  FakeBroker *fake = g_new0 (FakeBroker, 1);
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(GError) error = NULL;

  fake->listener = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                 G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  g_socket_bind (fake->listener, any, TRUE, &error);
  g_assert_no_error (error);
  g_socket_listen (fake->listener, &error);
  g_assert_no_error (error);
  bound = g_socket_get_local_address (fake->listener, &error);
  g_assert_no_error (error);
  fake->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  fake->thread = g_thread_new ("fake-mqtt", fake_broker_thread, fake);
  return fake;
}

static void
fake_broker_free (FakeBroker *fake)
{
  /* wakes the blocking accept() up */
  shutdown (g_socket_get_fd (fake->listener), SHUT_RDWR);
  g_thread_join (fake->thread);
  g_object_unref (fake->listener);
  g_free (fake);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (FakeBroker, fake_broker_free)

static gboolean
fake_subscribed_twice (gpointer data)
{
  FakeBroker *fake = data;

  return g_atomic_int_get (&fake->subscribes) >= 2;
}

static gboolean
logged_lost_utf8 (gpointer data)
{
  return logged_count ("lost the MQTT broker at 127.0.0.1:*UTF-8*") >= 1;
}

/* A topic that is not UTF-8 from MQTT: libmosquitto drops that
 * connection, the bridge says so and connects again; nothing is
 * published locally, the local side stays. */
static void
test_bad_topic (void)
{
  g_autoptr(FakeBroker) fake = NULL;
  g_autoptr(Bus) a = NULL;
  g_autoptr(ElbusMqttBridge) bridge = NULL;
  g_autoptr(Sink) sink = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *address = NULL;

  g_ptr_array_set_size (logged, 0);
  fake = fake_broker_start ();
  a = bus_start ();
  sink = sink_new (a, "sink", "#");
  address = g_strdup_printf ("127.0.0.1:%u", fake->port);
  bridge = elbus_mqtt_bridge_new (a->path, "bridge.bad", address);
  elbus_mqtt_bridge_add_import (bridge, "#", &error);
  g_assert_no_error (error);
  bridge_start (bridge);
  wait_for (logged_lost_utf8, NULL, "the bad topic reported");
  wait_for (fake_subscribed_twice, fake, "the bridge subscribed again");
  for (guint i = 0; i < sink->frames->len; i++)
    g_assert_cmpstr (elbus_frame_get_sender (g_ptr_array_index (sink->frames, i)), !=,
                     "bridge.bad");
  g_assert_cmpuint (bridge_stat (bridge, "imported"), ==, 0);
  g_assert_true (elbus_mqtt_bridge_is_local_connected (bridge));
  g_clear_pointer (&bridge, bridge_free);
}

/* Settings the bridge refuses up front. */
static void
test_bad_settings (void)
{
  g_autoptr(ElbusMqttBridge) bridge = elbus_mqtt_bridge_new ("/nonexistent.sock", "b",
                                                             "no port here:");
  g_autoptr(GError) error = NULL;
  const char *bad[] = { "", "a/#/b", "a+/b", "a/b#", NULL };

  for (guint i = 0; bad[i] != NULL; i++)
    {
      g_assert_false (elbus_mqtt_bridge_add_export (bridge, bad[i], &error));
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
      g_assert_nonnull (strstr (error->message, "invalid mask"));
      g_clear_error (&error);
      g_assert_false (elbus_mqtt_bridge_add_import (bridge, bad[i], &error));
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
      g_clear_error (&error);
    }
  g_assert_true (elbus_mqtt_bridge_add_export (bridge, "+/#", &error));
  g_assert_no_error (error);

  g_assert_true (elbus_mqtt_bridge_is_supported ());
  g_assert_false (elbus_mqtt_bridge_start (bridge, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "invalid MQTT address"));
  g_clear_error (&error);
  g_clear_object (&bridge);

  bridge = elbus_mqtt_bridge_new ("/nonexistent.sock", "b", "127.0.0.1:1");
  elbus_mqtt_bridge_set_tls (bridge, "/nonexistent/ca.pem", NULL, NULL);
  g_assert_false (elbus_mqtt_bridge_start (bridge, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "/nonexistent/ca.pem"));
  g_clear_error (&error);

  elbus_mqtt_bridge_set_tls (bridge, NULL, "/nonexistent/cert.pem", NULL);
  g_assert_false (elbus_mqtt_bridge_start (bridge, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
}

/* ---- TLS -------------------------------------------------------------- */

/* A CA and a certificate for "localhost" signed by it, made with openssl
 * in @dir; FALSE when openssl is missing. */
static gboolean
make_certificates (const char *dir,
                   const char *ca_name)
{
  const char *argv[] = { "/bin/sh", "-c", NULL, NULL };
  g_autofree char *openssl = g_find_program_in_path ("openssl");
  g_autofree char *script = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *err = NULL;
  int status;

  if (openssl == NULL)
    return FALSE;
  script = g_strdup_printf (
    "set -e; cd '%s'\n"
    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=%s "
    "  -keyout %s.key -out %s.pem\n"
    "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost "
    "  -keyout server.key -out server.csr\n"
    "printf 'subjectAltName=DNS:localhost\\n' > ext.cnf\n"
    "openssl x509 -req -in server.csr -CA %s.pem -CAkey %s.key -CAcreateserial "
    "  -days 1 -extfile ext.cnf -out server.pem\n",
    dir, ca_name, ca_name, ca_name, ca_name, ca_name);
  argv[2] = script;
  g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, NULL, &err,
                &status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("openssl failed: %s", err);
  return TRUE;
}

/* Mosquitto with TLS and a certificate made here: the bridge connects
 * with the right CA, and not with another one. */
static void
test_tls (void)
{
  g_autoptr(Mosquitto) m = NULL;
  g_autoptr(Bus) a = NULL;
  g_autoptr(Bus) b = NULL;
  g_autoptr(ElbusMqttBridge) bridge_a = NULL;
  g_autoptr(ElbusMqttBridge) bridge_b = NULL;
  g_autoptr(ElbusMqttBridge) wrong = NULL;
  g_autoptr(Sink) sink_b = NULL;
  g_autoptr(ElbusClient) pub = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *certs = NULL;
  g_autofree char *extra = NULL;
  g_autofree char *address = NULL;
  g_autofree char *ca = NULL;
  g_autofree char *other_ca = NULL;
  const char *both[] = { "tls/#", NULL };

  if (!have_mosquitto ())
    return;
  if (elbus_test_under_valgrind ())
    {
      /* OpenSSL's handshakes take most of a minute there; ASan runs it */
      g_test_skip ("slow under valgrind");
      return;
    }
  a = bus_start ();
  b = bus_start ();
  certs = g_build_filename (a->dir, "certs", NULL);
  g_mkdir (certs, 0700);
  if (!make_certificates (certs, "ca"))
    {
      g_test_skip ("openssl is not installed");
      g_rmdir (certs);
      return;
    }
  extra = g_strdup_printf ("cafile %s/ca.pem\ncertfile %s/server.pem\nkeyfile %s/server.key\n"
                           "persistence false\n", certs, certs, certs);
  m = mosquitto_start (extra);
  ca = g_build_filename (certs, "ca.pem", NULL);
  address = g_strdup_printf ("localhost:%u", m->port);

  bridge_a = elbus_mqtt_bridge_new (a->path, "bridge.a", address);
  elbus_mqtt_bridge_add_export (bridge_a, "tls/#", &error);
  g_assert_no_error (error);
  elbus_mqtt_bridge_set_tls (bridge_a, ca, NULL, NULL);
  bridge_b = elbus_mqtt_bridge_new (b->path, "bridge.b", address);
  elbus_mqtt_bridge_add_import (bridge_b, "tls/#", &error);
  g_assert_no_error (error);
  elbus_mqtt_bridge_set_tls (bridge_b, ca, NULL, NULL);
  bridge_start (bridge_a);
  bridge_start (bridge_b);
  sink_b = sink_new (b, "sink.b", both[0]);
  pub = client_new (a, "pub");
  warm_up (pub, "tls/warm", sink_b);
  publish (pub, "tls/1", "secret", 6);
  sink_wait (sink_b, 1);
  g_assert_cmpstr (elbus_frame_get_topic (sink_nth (sink_b, 0)), ==, "tls/1");

  /* a CA that did not sign the broker's certificate */
  {
    g_autofree char *other = g_build_filename (a->dir, "other", NULL);

    g_mkdir (other, 0700);
    make_certificates (other, "otherca");
    other_ca = g_build_filename (other, "otherca.pem", NULL);
  }
  wrong = elbus_mqtt_bridge_new (a->path, "bridge.wrong", address);
  elbus_mqtt_bridge_add_export (wrong, "tls/#", &error);
  elbus_mqtt_bridge_set_tls (wrong, other_ca, NULL, NULL);
  g_assert_true (elbus_mqtt_bridge_start (wrong, &error));
  g_assert_no_error (error);
  wait_for (logged_once, (gpointer) "cannot reach the MQTT broker at localhost:*TLS*",
            "the TLS failure logged");
  elbus_test_spin_for (800);
  g_assert_cmpuint (logged_count ("cannot reach the MQTT broker at localhost:*TLS*"), ==, 1);
  g_assert_false (elbus_mqtt_bridge_is_mqtt_connected (wrong));

  g_clear_pointer (&wrong, bridge_free);
  g_clear_pointer (&bridge_a, bridge_free);
  g_clear_pointer (&bridge_b, bridge_free);
  mosquitto_stop (m);
  {
    const char *subdirs[] = { "certs", "other", NULL };

    for (guint i = 0; subdirs[i] != NULL; i++)
      {
        g_autofree char *sub = g_build_filename (a->dir, subdirs[i], NULL);
        g_autoptr(GDir) dir = g_dir_open (sub, 0, NULL);
        const char *name;

        while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
          {
            g_autofree char *path = g_build_filename (sub, name, NULL);
            g_remove (path);
          }
        g_rmdir (sub);
      }
  }
}

/* ---- the tool --------------------------------------------------------- */

static const char *
bridge_tool (void)
{
  const char *path = g_getenv ("ELBUS_BRIDGE");

  g_assert_nonnull (path);
  return path;
}

/* Runs elbus-bridge ARGS… to its end; returns its exit status. */
static int
run_tool (const char * const *args,
          char              **err)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  const char *envp[] = { "LC_ALL=C.UTF-8", NULL };
  int status;

  g_ptr_array_add (argv, (char *) bridge_tool ());
  for (guint i = 0; args[i] != NULL; i++)
    g_ptr_array_add (argv, (char *) args[i]);
  g_ptr_array_add (argv, NULL);
  g_spawn_sync (NULL, (char **) argv->pdata, (char **) envp, G_SPAWN_STDOUT_TO_DEV_NULL,
                NULL, NULL, NULL, err, &status, &error);
  g_assert_no_error (error);
  g_assert_true (WIFEXITED (status));
  return WEXITSTATUS (status);
}

static void
expect_usage (const char * const *args,
              const char         *message)
{
  g_autofree char *err = NULL;

  g_assert_cmpint (run_tool (args, &err), ==, 2);
  if (strstr (err, message) == NULL)
    g_error ("expected “%s” in: %s", message, err);
}

static void
test_tool_options (void)
{
  g_autofree char *err = NULL;

  expect_usage ((const char *[]) { "/x.sock", "--export", "a/#", NULL },
                "which MQTT broker?");
  expect_usage ((const char *[]) { "/x.sock", "--mqtt", "h:1", NULL }, "nothing to bridge");
  expect_usage ((const char *[]) { "/x.sock", "--mqtt", "h:1", "--export", "a/#/b", NULL },
                "invalid mask “a/#/b”");
  expect_usage ((const char *[]) { "/x.sock", "--mqtt", "h:1", "--import", "a+", NULL },
                "invalid mask “a+”");
  expect_usage ((const char *[]) { "/x.sock", "--mqtt", "h:1", "--export", "a",
                                   "--mqtt-qos", "3", NULL }, "--mqtt-qos must be 0, 1 or 2");
  expect_usage ((const char *[]) { "/x.sock", "--mqtt", "h:1", "--export", "a",
                                   "--username", "u", "--password-file",
                                   "/nonexistent/pw", NULL }, "cannot read the password file");
  expect_usage ((const char *[]) { "/x.sock", "--mqtt", "h:1", "--export", "a",
                                   "--password-file", "/nonexistent/pw", NULL },
                "--password-file needs --username");
  expect_usage ((const char *[]) { "/x.sock", "--mqtt", "h:1", "--export", "a",
                                   "--tls-ca", "/nonexistent/ca.pem", NULL },
                "/nonexistent/ca.pem");
  expect_usage ((const char *[]) { "/x.sock", "--mqtt", ":", "--export", "a", NULL },
                "invalid MQTT address");
  expect_usage ((const char *[]) { "/x.sock", "--config", "/nonexistent/bridge.conf", NULL },
                "cannot read the configuration file");
  expect_usage ((const char *[]) { NULL }, "which broker?");
  expect_usage ((const char *[]) { "/x.sock", "extra", NULL }, "unexpected argument");
  expect_usage ((const char *[]) { "ws://h/e", "--mqtt", "h:1", "--export", "a", NULL },
                "is not a ws://HOST:PORT[/PATH] address");
  expect_usage ((const char *[]) { "x", "--mqtt", "h:1", "--export", "a", NULL },
                "neither a UNIX socket path nor HOST:PORT");
  if (!elbus_test_have_websocket ())
    {
      /* refused at once, not retried */
      g_assert_cmpint (run_tool ((const char *[]) { "ws://127.0.0.1:1/e", "--mqtt", "h:1",
                                                    "--export", "a", NULL }, &err), ==, 1);
      if (strstr (err, "without WebSocket support") == NULL)
        g_error ("not a clear refusal: %s", err);
      g_clear_pointer (&err, g_free);
    }
  expect_usage ((const char *[]) { "--bogus", NULL }, "--bogus");

  g_assert_cmpint (run_tool ((const char *[]) { "--version", NULL }, &err), ==, 0);
}

/* The tool with a configuration file: A's side is elbus-bridge, B's the
 * class. SIGHUP reloads the rules; SIGTERM ends it with 0. */
static void
test_tool (Net          *net,
           gconstpointer  data)
{
  g_autoptr(ElbusMqttBridge) bridge_b = NULL;
  g_autoptr(Sink) sink_b = NULL;
  g_autoptr(ElbusClient) pub = NULL;
  g_autoptr(GSubprocess) tool = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *conf = NULL;
  g_autofree char *text = NULL;
  const char *imports[] = { "one/#", "two/#", NULL };

  if (net->m == NULL)
    return;
  conf = g_build_filename (net->a->dir, "bridge.conf", NULL);
  text = g_strdup_printf ("[bridge]\nmqtt=127.0.0.1:%u\nname=bridge.tool\nprefix=site\n"
                          "[rule first]\nexport=one/#\n", net->m->port);
  g_file_set_contents (conf, text, -1, &error);
  g_assert_no_error (error);
  tool = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE, &error, bridge_tool (),
                           net->a->path, "--config", conf, NULL);
  g_assert_no_error (error);

  bridge_b = bridge_new (net->b, "bridge.b", net->m, NULL, imports);
  g_object_set (bridge_b, "prefix", "site", NULL);
  bridge_start (bridge_b);
  sink_b = sink_new (net->b, "sink.b", "#");
  pub = client_new (net->a, "pub");
  warm_up (pub, "one/warm", sink_b);
  publish (pub, "one/1", "1", 1);
  publish (pub, "two/1", "2", 1);
  sink_wait (sink_b, 1);
  settle ();
  g_assert_cmpuint (sink_count (sink_b, NULL), ==, 1);
  g_assert_cmpstr (elbus_frame_get_topic (sink_nth (sink_b, 0)), ==, "one/1");

  /* the rules change under SIGHUP */
  g_free (text);
  text = g_strdup_printf ("[bridge]\nmqtt=127.0.0.1:%u\nname=bridge.tool\nprefix=site\n"
                          "[rule second]\nexport=two/#\n", net->m->port);
  g_file_set_contents (conf, text, -1, &error);
  g_assert_no_error (error);
  g_subprocess_send_signal (tool, SIGHUP);
  g_ptr_array_set_size (sink_b->frames, 0);
  warm_up (pub, "two/warm", sink_b);
  publish (pub, "one/2", "3", 1);
  publish (pub, "two/2", "4", 1);
  sink_wait (sink_b, 1);
  settle ();
  g_assert_cmpuint (sink_count (sink_b, NULL), ==, 1);
  g_assert_cmpstr (elbus_frame_get_topic (sink_nth (sink_b, 0)), ==, "two/2");

  g_subprocess_send_signal (tool, SIGTERM);
  g_subprocess_wait (tool, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (tool));
  g_assert_cmpint (g_subprocess_get_exit_status (tool), ==, 0);
  (void) g_remove (conf);
  g_clear_pointer (&bridge_b, bridge_free);
}

static void
assert_payload (ElbusFrame *frame,
                const char *data,
                gsize       len)
{
  GBytes *payload = elbus_frame_get_payload (frame);

  g_assert_nonnull (payload);
  g_assert_cmpmem (g_bytes_get_data (payload, NULL), g_bytes_get_size (payload), data, len);
}

/* Both buses serve ws:// too, and the bridges reach them over it: A's
 * the class, B's the tool. */
static void
test_ws (Net          *net,
         gconstpointer  data)
{
  g_autoptr(ElbusMqttBridge) bridge_a = NULL;
  g_autoptr(Sink) sink_a = NULL;
  g_autoptr(Sink) sink_b = NULL;
  g_autoptr(ElbusClient) pub_a = NULL;
  g_autoptr(ElbusClient) pub_b = NULL;
  g_autoptr(GSubprocess) tool = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *mqtt = NULL;
  const char *exports[] = { "ws/#", NULL };
  const char *imports[] = { "back/#", NULL };

  if (net->m == NULL)
    return;
  if (!elbus_test_have_websocket ())
    {
      g_test_skip ("this build has no WebSocket support (-Dwebsocket=disabled)");
      return;
    }
  for (Bus **bus = (Bus *[]) { net->a, net->b, NULL }; *bus != NULL; bus++)
    {
      bus_stop (*bus);
      (*bus)->ws_url = g_strdup_printf ("ws://127.0.0.1:%u/elbus", elbus_test_pick_free_port ());
      bus_run (*bus);
    }

  mqtt = mosquitto_address (net->m);
  bridge_a = elbus_mqtt_bridge_new (net->a->ws_url, "bridge.a", mqtt);
  for (guint i = 0; exports[i] != NULL; i++)
    {
      elbus_mqtt_bridge_add_export (bridge_a, exports[i], &error);
      g_assert_no_error (error);
      elbus_mqtt_bridge_add_import (bridge_a, imports[i], &error);
      g_assert_no_error (error);
    }
  bridge_start (bridge_a);
  tool = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE, &error, bridge_tool (),
                           net->b->ws_url, "--mqtt", mqtt, "--name", "bridge.b",
                           "--import", "ws/#", "--export", "back/#", NULL);
  g_assert_no_error (error);

  /* A to B */
  sink_b = sink_new (net->b, "sink.b", "ws/#");
  pub_a = client_new (net->a, "pub.a");
  warm_up (pub_a, "ws/warm", sink_b);
  publish (pub_a, "ws/1", "over ws", 7);
  sink_wait (sink_b, 1);
  assert_payload (sink_find (sink_b, "ws/1"), "over ws", 7);

  /* B to A */
  sink_a = sink_new (net->a, "sink.a", "back/#");
  pub_b = client_new (net->b, "pub.b");
  warm_up (pub_b, "back/warm", sink_a);
  publish (pub_b, "back/1", "and back", 8);
  sink_wait (sink_a, 1);
  assert_payload (sink_find (sink_a, "back/1"), "and back", 8);

  g_subprocess_send_signal (tool, SIGTERM);
  g_subprocess_wait (tool, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (tool));
  g_assert_cmpint (g_subprocess_get_exit_status (tool), ==, 0);
  g_clear_pointer (&bridge_a, bridge_free);
}

/* The tool exits 1 when the broker refuses it. */
static void
test_tool_refused (Net          *net,
                   gconstpointer  data)
{
  g_autofree char *address = NULL;
  g_autofree char *err = NULL;

  if (net->m == NULL)
    return;
  address = mosquitto_address (net->m);
  g_assert_cmpint (run_tool ((const char *[]) { net->a->path, "--mqtt", address, "--export", "a/#",
                                                NULL }, &err), ==, 1);
  g_assert_nonnull (strstr (err, "refused the connection"));
}

int
main (int    argc,
      char **argv)
{
  int status;

  elbus_test_init (&argc, &argv);
  logged = g_ptr_array_new_with_free_func (g_free);
  g_log_set_handler ("Elbus", G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG,
                     log_cb, NULL);
  g_test_summary ("elbus buses joined through a real Mosquitto by ElbusMqttBridge "
                  "and elbus-bridge");

  /* persistence: B's session (its subscription, what is queued for it)
   * outlives Mosquitto's restart, as it would on a real broker */
#define PERSISTENT "persistence true\npersistence_location @DIR@/\n"
#define NO_ANONYMOUS "allow_anonymous false\npersistence false\n"
#define NET_CASE(path, func, extra) \
  g_test_add ("/elbus/bridge/" path, Net, extra, net_setup, func, net_teardown)
  NET_CASE ("both-ways", test_both_ways, NULL);
  NET_CASE ("prefix-masks", test_prefix_masks, NULL);
  NET_CASE ("no-loops", test_no_loops, NULL);
  NET_CASE ("retain", test_retain, NULL);
  NET_CASE ("mqtt-restart", test_mqtt_restart, PERSISTENT);
  NET_CASE ("slow-link", test_slow_link, NULL);
  NET_CASE ("local-restart", test_local_restart, NULL);
  NET_CASE ("stats-rpc", test_stats_rpc, NULL);
  NET_CASE ("refused", test_refused, NO_ANONYMOUS);
  NET_CASE ("unreachable", test_unreachable, NULL);
  g_test_add_func ("/elbus/bridge/bad-topic", test_bad_topic);
  g_test_add_func ("/elbus/bridge/bad-settings", test_bad_settings);
  g_test_add_func ("/elbus/bridge/tls", test_tls);
  g_test_add_func ("/elbus/bridge/tool-options", test_tool_options);
  NET_CASE ("tool", test_tool, NULL);
  NET_CASE ("tool-refused", test_tool_refused, NO_ANONYMOUS);
  NET_CASE ("ws", test_ws, NULL);

  status = g_test_run ();
  g_ptr_array_unref (logged);
  return status;
}
