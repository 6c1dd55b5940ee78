/* SPDX-License-Identifier: MIT */

/**
 * ElbusMqttBridge:
 *
 * Joins an elbus broker to an MQTT broker, so that brokers on several
 * machines share topics through it.
 *
 * The bridge is an ordinary client of the local elbus broker and an MQTT 5
 * client (libmosquitto) of the remote one, both driven from the
 * thread-default `GMainContext` of its construction; there is no second
 * thread. Local publications whose topic matches an *export* mask are
 * published to MQTT as `PREFIX/TOPIC`; MQTT messages on `PREFIX/MASK` for
 * an *import* mask are published on the local broker under the topic
 * without the prefix, with the bridge as sender. Payloads pass unchanged.
 *
 * Loops and echoes are prevented three ways: a local publication sent by
 * the bridge itself is never exported, the MQTT subscriptions carry MQTT
 * 5's no-local option, and every export carries the bridge's
 * [property@Elbus.MqttBridge:origin] as the user property `elbus-origin`,
 * so that a message never comes back to the bus it left.
 *
 * Either side may go away: the bridge reconnects to both with a backoff
 * (from 0.1 s, doubling, up to 10 s), logging once per outage, and
 * subscribes again. While MQTT is away, exports wait in a queue of
 * [property@Elbus.MqttBridge:queue-size] messages (the oldest are
 * dropped and counted beyond it). With an MQTT QoS of 1 or 2 the bridge
 * asks for a persistent session (clean start off, a session expiry of
 * [property@Elbus.MqttBridge:session-expiry] seconds), so that imports
 * published during a short outage are delivered afterwards.
 *
 * The bridge's local client answers the RPC method `bridge.stats` with
 * the counters of [method@Elbus.MqttBridge.get_stats].
 *
 * ```c
 * g_autoptr(ElbusMqttBridge) bridge =
 *   elbus_mqtt_bridge_new ("/run/elbus.sock", "bridge.plant", "gateway:1883");
 * elbus_mqtt_bridge_add_export (bridge, "plant/#", NULL);
 * elbus_mqtt_bridge_add_import (bridge, "fleet/+/cmd", NULL);
 * if (!elbus_mqtt_bridge_start (bridge, &error))
 *   g_printerr ("%s\n", error->message);
 * ```
 *
 * Without libmosquitto at build time (meson option `mqtt`), the class
 * exists but [method@Elbus.MqttBridge.start] fails with
 * %G_IO_ERROR_NOT_SUPPORTED; see [func@Elbus.MqttBridge.is_supported].
 *
 * Since: 1.0
 */

#include "config.h"

#include "elbus-mqtt-bridge.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "elbus-client.h"
#include "elbus-error.h"
#include "elbus-frame.h"
#include "elbus-i18n-private.h"
#include "elbus-mask-private.h"
#include "elbus-rpc-peer.h"
#include "elbus-rpc-invocation.h"
#include "elbus-transport-private.h"

#ifdef HAVE_LIBMOSQUITTO
#include <mosquitto.h>
#include <mqtt_protocol.h>
/* Not what the bridge published itself; retained messages only when the
 * subscription is new, not again when a persistent session resumes. */
#define SUBSCRIBE_OPTIONS (MQTT_SUB_OPT_NO_LOCAL | MQTT_SUB_OPT_SEND_RETAIN_NEW)
#endif

/* The MQTT 5 user property that names the bus an export came from. */
#define ORIGIN_PROPERTY "elbus-origin"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
#define MQTT_KEEPALIVE 30
#define MQTT_MISC_INTERVAL_S 5
#define MQTT_PROBE_TIMEOUT_S 10
/* MQTT packets read per wake-up at most, so that the local side is served
 * too when MQTT floods */
#define MQTT_READS_PER_WAKEUP 256
#define DEFAULT_SESSION_EXPIRY 300
/* Exports handed to libmosquitto and not yet sent (QoS 0) or acknowledged
 * (QoS 1, 2) at most; beyond, and while its socket is backed up, they
 * wait in the bridge's own bounded queue. */
#define MQTT_MAX_UNACKED 1000

typedef struct {
  guint64 exported;
  guint64 exported_bytes;
  guint64 imported;
  guint64 imported_bytes;
  guint64 dropped;          /* exports dropped from a full queue */
  guint64 failed;           /* publications either side refused */
  guint64 echoes;           /* messages not passed on, being our own */
  guint64 mqtt_reconnects;
  guint64 local_reconnects;
} Stats;

typedef struct {
  char *topic;              /* (owned): the MQTT topic */
  GBytes *payload;          /* (owned) */
} PendingExport;

struct _ElbusMqttBridge
{
  GObject parent_instance;

  GMainContext *context;    /* (owned): the thread-default one at construction */

  char *local_address;      /* (owned) */
  char *name;               /* (owned): the local client name */
  char *mqtt_address;       /* (owned): HOST:PORT */
  char *mqtt_host;          /* (owned) (nullable): parsed by start() */
  guint16 mqtt_port;

  char *prefix;             /* (owned): may be "" */
  int qos;                  /* MQTT QoS, 0 to 2 */
  gboolean retain;
  char *client_id;          /* (owned) (nullable): NULL for the default */
  char *origin;             /* (owned) (nullable): NULL for the default */
  guint queue_size;
  guint session_expiry;
  char *username;           /* (owned) (nullable) */
  char *password;           /* (owned) (nullable) */
  char *tls_ca;             /* (owned) (nullable) */
  char *tls_cert;           /* (owned) (nullable) */
  char *tls_key;            /* (owned) (nullable) */

  GPtrArray *exports;       /* (owned) (element-type utf8): local masks */
  GPtrArray *imports;       /* (owned) (element-type utf8): local masks */

  gboolean running;
  Stats stats;
  GString *topic_buf;       /* (owned): the MQTT topic being built */

  /* the local side */
  ElbusClient *client;      /* (owned) (nullable) */
  ElbusRpcPeer *rpc;        /* (owned) (nullable) */
  ElbusClient *lost_client; /* (owned) (nullable): freed outside its signal */
  gboolean local_ready;     /* registered, and the export masks subscribed */
  GCancellable *local_cancellable; /* (owned) (nullable): the connect under way */
  GSource *local_retry;     /* (owned) (nullable) */
  guint local_attempts;
  gboolean local_outage;    /* logged, not yet over */
  gboolean local_ever;      /* connected once */

  /* the MQTT side */
#ifdef HAVE_LIBMOSQUITTO
  struct mosquitto *mosq;   /* (owned) (nullable) */
  mosquitto_property *publish_props; /* (owned) (nullable) */
#endif
  GSource *mqtt_source;     /* (owned) (nullable): the socket's watch */
  gpointer mqtt_tag;
  int mqtt_fd;
  GIOCondition mqtt_events;
  GSource *mqtt_misc;       /* (owned) (nullable): keep-alive timer */
  GSource *mqtt_retry;      /* (owned) (nullable) */
  GCancellable *probe_cancellable; /* (owned) (nullable) */
  guint mqtt_attempts;
  gboolean mqtt_connected;
  gboolean mqtt_outage;
  gboolean mqtt_ever;
  /* set by libmosquitto's callbacks, acted upon after its call returns */
  gboolean have_connack;
  int connack_rc;
  gboolean have_disconnect;
  int disconnect_rc;
  int unacked;              /* exports libmosquitto has not finished */

  GQueue pending;           /* (owned) (element-type PendingExport) */
};

G_DEFINE_FINAL_TYPE (ElbusMqttBridge, elbus_mqtt_bridge, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_LOCAL_ADDRESS,
  PROP_NAME,
  PROP_MQTT_ADDRESS,
  PROP_PREFIX,
  PROP_MQTT_QOS,
  PROP_RETAIN,
  PROP_CLIENT_ID,
  PROP_ORIGIN,
  PROP_QUEUE_SIZE,
  PROP_SESSION_EXPIRY,
  PROP_MQTT_CONNECTED,
  PROP_LOCAL_CONNECTED,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
  SIGNAL_FAILED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void local_connect (ElbusMqttBridge *self);
#ifdef HAVE_LIBMOSQUITTO
static void mqtt_connect (ElbusMqttBridge *self);
#endif

static void
pending_export_free (PendingExport *pending)
{
  g_free (pending->topic);
  g_bytes_unref (pending->payload);
  g_free (pending);
}

static guint
backoff_ms (guint attempts)
{
  guint ms = BACKOFF_MIN_MS;

  while (attempts-- > 0 && ms < BACKOFF_MAX_MS)
    ms *= 2;
  return MIN (ms, BACKOFF_MAX_MS);
}

static GSource *
schedule (ElbusMqttBridge *self,
          guint            ms,
          GSourceFunc      func)
{
  GSource *source = g_timeout_source_new (ms);

  g_source_set_callback (source, func, self, NULL);
  g_source_set_static_name (source, "[elbus] mqtt bridge retry");
  g_source_attach (source, self->context);
  return source;
}

static void
clear_source (GSource **source)
{
  if (*source != NULL)
    {
      g_source_destroy (*source);
      g_clear_pointer (source, g_source_unref);
    }
}

/* A mask is one an MQTT broker accepts as a subscription, which elbus
 * accepts too: / levels, + and # as whole levels, # last. */
static gboolean
check_mask (const char  *mask,
            GError     **error)
{
  g_auto(GStrv) levels = NULL;

  if (mask == NULL || *mask == '\0' || !g_utf8_validate (mask, -1, NULL))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   _("invalid mask “%s”: empty or not UTF-8"), mask != NULL ? mask : "");
      return FALSE;
    }

  levels = g_strsplit (mask, "/", -1);
  for (guint i = 0; levels[i] != NULL; i++)
    {
      const char *level = levels[i];

      if ((strchr (level, '+') != NULL || strchr (level, '#') != NULL) &&
          strcmp (level, "+") != 0 && strcmp (level, "#") != 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       _("invalid mask “%s”: + and # must be whole levels"), mask);
          return FALSE;
        }
      if (strcmp (level, "#") == 0 && levels[i + 1] != NULL)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       _("invalid mask “%s”: # must be the last level"), mask);
          return FALSE;
        }
    }
  return TRUE;
}

#ifdef HAVE_LIBMOSQUITTO
/* PREFIX/REST, or REST when the prefix is empty, in topic_buf */
static const char *
mqtt_topic (ElbusMqttBridge *self,
            const char      *rest)
{
  g_string_truncate (self->topic_buf, 0);
  if (self->prefix[0] != '\0')
    {
      g_string_append (self->topic_buf, self->prefix);
      g_string_append_c (self->topic_buf, '/');
    }
  g_string_append (self->topic_buf, rest);
  return self->topic_buf->str;
}
#endif

static const char *
get_origin (ElbusMqttBridge *self)
{
  if (self->origin == NULL)
    self->origin = g_strdup_printf ("%s:%s", g_get_host_name (), self->local_address);
  return self->origin;
}

static const char *
get_client_id (ElbusMqttBridge *self)
{
  if (self->client_id == NULL)
    self->client_id = g_strdup_printf ("%s@%s", self->name, g_get_host_name ());
  return self->client_id;
}

static void
set_connected (ElbusMqttBridge *self,
               gboolean        *field,
               gboolean         value,
               int              prop)
{
  if (*field == value)
    return;
  *field = value;
  g_object_notify_by_pspec (G_OBJECT (self), properties[prop]);
}

/* ---- MQTT ----------------------------------------------------------- */

#ifdef HAVE_LIBMOSQUITTO

static gboolean
mqtt_rc_is_fatal (int rc)
{
  switch (rc)
    {
    case MQTT_RC_CLIENTID_NOT_VALID:
    case MQTT_RC_BAD_USERNAME_OR_PASSWORD:
    case MQTT_RC_NOT_AUTHORIZED:
    case MQTT_RC_BANNED:
    case MQTT_RC_BAD_AUTHENTICATION_METHOD:
      return TRUE;
    default:
      return FALSE;
    }
}

static void
mqtt_unwatch (ElbusMqttBridge *self)
{
  clear_source (&self->mqtt_source);
  self->mqtt_tag = NULL;
  self->mqtt_fd = -1;
  clear_source (&self->mqtt_misc);
}

static void mqtt_sync (ElbusMqttBridge *self);

static gboolean
mqtt_source_dispatch (GSource     *source,
                      GSourceFunc  callback,
                      gpointer     user_data)
{
  ElbusMqttBridge *self = user_data;
  GIOCondition revents = g_source_query_unix_fd (source, self->mqtt_tag);

  g_object_ref (self);
  if (revents & (G_IO_IN | G_IO_HUP | G_IO_ERR))
    {
      for (guint i = 0; i < MQTT_READS_PER_WAKEUP; i++)
        {
          int rc;

          errno = 0;
          rc = mosquitto_loop_read (self->mosq, 1);
          if (rc != MOSQ_ERR_SUCCESS || mosquitto_socket (self->mosq) != self->mqtt_fd)
            break;
          if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        }
    }
  /* what reading queued (acks, subscriptions made in callbacks) goes out
   * in this same wake-up, not after another poll */
  if (((revents & G_IO_OUT) || mosquitto_want_write (self->mosq)) &&
      mosquitto_socket (self->mosq) == self->mqtt_fd)
    mosquitto_loop_write (self->mosq, 1);
  mqtt_sync (self);
  g_object_unref (self);

  return G_SOURCE_CONTINUE;
}

static GSourceFuncs mqtt_source_funcs = {
  .dispatch = mqtt_source_dispatch,
};

static gboolean
mqtt_misc_cb (gpointer user_data)
{
  ElbusMqttBridge *self = user_data;

  mosquitto_loop_misc (self->mosq);
  mqtt_sync (self);
  return G_SOURCE_CONTINUE;
}

static void
mqtt_watch (ElbusMqttBridge *self,
            int              fd)
{
  self->mqtt_fd = fd;
  self->mqtt_events = G_IO_IN;
  self->mqtt_source = g_source_new (&mqtt_source_funcs, sizeof (GSource));
  g_source_set_static_name (self->mqtt_source, "[elbus] mqtt bridge socket");
  g_source_set_callback (self->mqtt_source, NULL, self, NULL);
  self->mqtt_tag = g_source_add_unix_fd (self->mqtt_source, fd, self->mqtt_events);
  g_source_attach (self->mqtt_source, self->context);

  self->mqtt_misc = g_timeout_source_new_seconds (MQTT_MISC_INTERVAL_S);
  g_source_set_callback (self->mqtt_misc, mqtt_misc_cb, self, NULL);
  g_source_set_static_name (self->mqtt_misc, "[elbus] mqtt bridge keep-alive");
  g_source_attach (self->mqtt_misc, self->context);
}

static void
mqtt_retry_later (ElbusMqttBridge *self);

static gboolean
mqtt_retry_cb (gpointer user_data)
{
  ElbusMqttBridge *self = user_data;

  g_clear_pointer (&self->mqtt_retry, g_source_unref);
  mqtt_connect (self);
  return G_SOURCE_REMOVE;
}

static void
mqtt_outage (ElbusMqttBridge *self,
             const char      *reason)
{
  if (!self->running)
    return;
  if (!self->mqtt_outage)
    {
      if (self->mqtt_ever)
        g_message (_("lost the MQTT broker at %s: %s; reconnecting"), self->mqtt_address, reason);
      else
        g_message (_("cannot reach the MQTT broker at %s: %s; retrying"), self->mqtt_address,
                   reason);
      self->mqtt_outage = TRUE;
    }
  else
    {
      g_debug ("MQTT broker at %s: %s", self->mqtt_address, reason);
    }
  mqtt_retry_later (self);
}

static void
mqtt_retry_later (ElbusMqttBridge *self)
{
  if (!self->running || self->mqtt_retry != NULL)
    return;
  self->mqtt_retry = schedule (self, backoff_ms (self->mqtt_attempts++), mqtt_retry_cb);
}

static void
mqtt_flush_pending (ElbusMqttBridge *self);

static void
mqtt_on_connected (ElbusMqttBridge *self)
{
  if (self->mqtt_outage)
    g_message (_("reconnected to the MQTT broker at %s"), self->mqtt_address);
  else
    g_info (_("connected to the MQTT broker at %s"), self->mqtt_address);
  if (self->mqtt_ever)
    self->stats.mqtt_reconnects++;
  self->mqtt_ever = TRUE;
  self->mqtt_outage = FALSE;
  self->mqtt_attempts = 0;

  for (guint i = 0; i < self->imports->len; i++)
    {
      const char *sub = mqtt_topic (self, g_ptr_array_index (self->imports, i));
      int rc = mosquitto_subscribe_v5 (self->mosq, NULL, sub, self->qos,
                                       SUBSCRIBE_OPTIONS, NULL);
      if (rc != MOSQ_ERR_SUCCESS)
        g_message (_("cannot subscribe to “%s” on the MQTT broker: %s"), sub,
                   mosquitto_strerror (rc));
    }

  /* what libmosquitto had unsent is gone, what it had unacknowledged
   * it sends again and reports again */
  self->unacked = 0;
  set_connected (self, &self->mqtt_connected, TRUE, PROP_MQTT_CONNECTED);
}

/* Acts on what libmosquitto's callbacks noted, and watches its socket for
 * what it wants now. Called after each call into libmosquitto. */
static void
mqtt_sync (ElbusMqttBridge *self)
{
  int fd;

  if (self->have_connack)
    {
      int rc = self->connack_rc;

      self->have_connack = FALSE;
      if (rc == 0)
        {
          mqtt_on_connected (self);
        }
      else if (mqtt_rc_is_fatal (rc))
        {
          g_autoptr(GError) error = NULL;

          error = g_error_new (G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                               _("the MQTT broker at %s refused the connection: %s"),
                               self->mqtt_address, mosquitto_reason_string (rc));
          elbus_mqtt_bridge_stop (self);
          g_signal_emit (self, signals[SIGNAL_FAILED], 0, error);
          return;
        }
      else
        {
          g_autofree char *reason = g_strdup_printf ("refused: %s",
                                                     mosquitto_reason_string (rc));
          mqtt_outage (self, reason);
        }
    }

  if (self->mosq == NULL)
    return;

  fd = mosquitto_socket (self->mosq);
  if (self->have_disconnect || fd != self->mqtt_fd)
    {
      int rc = self->disconnect_rc;
      gboolean lost = self->have_disconnect || fd < 0;

      self->have_disconnect = FALSE;
      mqtt_unwatch (self);
      if (lost)
        {
          const char *reason = mosquitto_strerror (rc);

          if (rc == MOSQ_ERR_SUCCESS || rc == MOSQ_ERR_TLS)
            {
              /* before its CONNACK, with TLS: the handshake failed */
              if (!self->mqtt_connected && self->tls_ca != NULL)
                reason = "the TLS handshake failed (is the broker's certificate signed by the "
                         "CA file, for this host name?)";
              else if (rc == MOSQ_ERR_SUCCESS)
                reason = "the connection was closed";
            }
          set_connected (self, &self->mqtt_connected, FALSE, PROP_MQTT_CONNECTED);
          mqtt_outage (self, reason);
          return;
        }
      mqtt_watch (self, fd);
    }

  mqtt_flush_pending (self);

  if (self->mqtt_source != NULL)
    {
      GIOCondition events = G_IO_IN;

      if (mosquitto_want_write (self->mosq))
        events |= G_IO_OUT;
      if (events != self->mqtt_events)
        {
          g_source_modify_unix_fd (self->mqtt_source, self->mqtt_tag, events);
          self->mqtt_events = events;
        }
    }
}

static void
mqtt_connect_cb (struct mosquitto          *mosq,
                 void                      *user_data,
                 int                        rc,
                 int                        flags,
                 const mosquitto_property  *props)
{
  ElbusMqttBridge *self = user_data;

  self->have_connack = TRUE;
  self->connack_rc = rc;
}

static void
mqtt_disconnect_cb (struct mosquitto          *mosq,
                    void                      *user_data,
                    int                        rc,
                    const mosquitto_property  *props)
{
  ElbusMqttBridge *self = user_data;

  self->have_disconnect = TRUE;
  self->disconnect_rc = rc;
}

static const char *
find_import (ElbusMqttBridge *self,
             const char      *topic)
{
  gsize prefix_len = strlen (self->prefix);
  const char *rest = topic;

  if (prefix_len > 0)
    {
      if (strncmp (topic, self->prefix, prefix_len) != 0 || topic[prefix_len] != '/')
        return NULL;
      rest = topic + prefix_len + 1;
    }

  for (guint i = 0; i < self->imports->len; i++)
    {
      const char *mask = g_ptr_array_index (self->imports, i);

      if (_elbus_topic_mask_matches (mask, strlen (mask), rest, strlen (rest)))
        return rest;
    }
  return NULL;
}

static void
local_publish_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr(ElbusMqttBridge) self = user_data;
  g_autoptr(GError) error = NULL;

  if (!elbus_client_publish_finish (ELBUS_CLIENT (source), result, &error))
    {
      self->stats.failed++;
      g_debug ("local publication failed: %s", error->message);
    }
}

static void
mqtt_message_cb (struct mosquitto               *mosq,
                 void                           *user_data,
                 const struct mosquitto_message *msg,
                 const mosquitto_property       *props)
{
  ElbusMqttBridge *self = user_data;
  const mosquitto_property *prop;
  g_autoptr(GBytes) payload = NULL;
  const char *topic;
  char *name = NULL;
  char *value = NULL;
  gboolean echo = FALSE;

  for (prop = props; prop != NULL; prop = mosquitto_property_next (prop))
    {
      if (mosquitto_property_identifier (prop) != MQTT_PROP_USER_PROPERTY)
        continue;
      if (mosquitto_property_read_string_pair (prop, MQTT_PROP_USER_PROPERTY,
                                               &name, &value, FALSE) != NULL)
        {
          if (g_strcmp0 (name, ORIGIN_PROPERTY) == 0 &&
              g_strcmp0 (value, get_origin (self)) == 0)
            echo = TRUE;
          free (name);
          free (value);
        }
    }
  if (echo)
    {
      self->stats.echoes++;
      return;
    }

  if (msg->topic == NULL || !g_utf8_validate (msg->topic, -1, NULL))
    {
      self->stats.failed++;
      g_debug ("MQTT message on a topic that is not UTF-8: not imported");
      return;
    }
  topic = find_import (self, msg->topic);
  if (topic == NULL)
    return;
  if (self->client == NULL)
    {
      self->stats.failed++;
      return;
    }

  payload = g_bytes_new (msg->payload, msg->payloadlen);
  self->stats.imported++;
  self->stats.imported_bytes += msg->payloadlen;
  if (msg->qos == 0)
    elbus_client_publish_async (self->client, topic, payload, ELBUS_QOS_NO, NULL, NULL, NULL);
  else
    elbus_client_publish_async (self->client, topic, payload, ELBUS_QOS_PROCESSED, NULL,
                                local_publish_cb, g_object_ref (self));
}

static void
mqtt_enqueue (ElbusMqttBridge *self,
              const char      *topic,
              GBytes          *payload)
{
  PendingExport *pending;

  if (self->queue_size == 0)
    {
      self->stats.dropped++;
      return;
    }
  while (self->pending.length >= self->queue_size)
    {
      pending_export_free (g_queue_pop_head (&self->pending));
      self->stats.dropped++;
    }
  pending = g_new (PendingExport, 1);
  pending->topic = g_strdup (topic);
  pending->payload = g_bytes_ref (payload);
  g_queue_push_tail (&self->pending, pending);
}

/* Whether an export may go to libmosquitto now: connected, its socket
 * not backed up, not too many of its exports unfinished. */
static gboolean
mqtt_can_send (ElbusMqttBridge *self)
{
  return self->mqtt_connected && !mosquitto_want_write (self->mosq) &&
         self->unacked < MQTT_MAX_UNACKED;
}

/* Hands one export to libmosquitto; FALSE when it is to wait and be
 * tried again (the connection is going). */
static gboolean
mqtt_send (ElbusMqttBridge *self,
           const char      *topic,
           GBytes          *payload)
{
  gsize len;
  const void *data = g_bytes_get_data (payload, &len);
  int rc;

  /* counted first: a QoS 0 export may be reported sent from inside */
  self->unacked++;
  rc = mosquitto_publish_v5 (self->mosq, NULL, topic, (int) len, data, self->qos,
                             self->retain, self->publish_props);
  if (rc != MOSQ_ERR_SUCCESS)
    self->unacked = MAX (self->unacked - 1, 0);
  switch (rc)
    {
    case MOSQ_ERR_SUCCESS:
      self->stats.exported++;
      self->stats.exported_bytes += len;
      return TRUE;
    case MOSQ_ERR_NO_CONN:
    case MOSQ_ERR_CONN_LOST:
    case MOSQ_ERR_ERRNO:
      return FALSE;
    default:
      self->stats.failed++;
      g_debug ("cannot export to “%s”: %s", topic, mosquitto_strerror (rc));
      return TRUE;
    }
}

static void
mqtt_publish (ElbusMqttBridge *self,
              const char      *topic,
              GBytes          *payload)
{
  if (self->pending.length > 0 || !mqtt_can_send (self) || !mqtt_send (self, topic, payload))
    mqtt_enqueue (self, topic, payload);
}

/* The queue, in order, as far as libmosquitto takes it now. */
static void
mqtt_flush_pending (ElbusMqttBridge *self)
{
  while (self->pending.length > 0 && mqtt_can_send (self))
    {
      PendingExport *pending = g_queue_peek_head (&self->pending);

      if (!mqtt_send (self, pending->topic, pending->payload))
        break;
      pending_export_free (g_queue_pop_head (&self->pending));
    }
}

static void
mqtt_publish_cb (struct mosquitto          *mosq,
                 void                      *user_data,
                 int                        mid,
                 int                        rc,
                 const mosquitto_property  *props)
{
  ElbusMqttBridge *self = user_data;

  self->unacked = MAX (self->unacked - 1, 0);
  /* reason codes below 128 (such as "no matching subscribers") are not
   * failures */
  if (rc >= 128)
    self->stats.failed++;
}

static void
mqtt_probe_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  ElbusMqttBridge *self = user_data;
  g_autoptr(GSocketConnection) connection = NULL;
  g_autoptr(GError) error = NULL;
  mosquitto_property *props = NULL;
  int rc;

  connection = g_socket_client_connect_to_host_finish (G_SOCKET_CLIENT (source), result,
                                                       &error);
  /* after a cancel, self may be gone */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  g_clear_object (&self->probe_cancellable);
  if (connection == NULL)
    {
      mqtt_outage (self, error->message);
      return;
    }
  /* The host answers: libmosquitto's own (blocking) connect is quick now. */
  g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);

  if (self->qos > 0 && self->session_expiry > 0)
    mosquitto_property_add_int32 (&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                  self->session_expiry);
  rc = mosquitto_connect_bind_v5 (self->mosq, self->mqtt_host, self->mqtt_port,
                                  MQTT_KEEPALIVE, NULL, props);
  mosquitto_property_free_all (&props);
  if (rc != MOSQ_ERR_SUCCESS)
    {
      mqtt_outage (self, rc == MOSQ_ERR_ERRNO ? g_strerror (errno) : mosquitto_strerror (rc));
      return;
    }
  mqtt_sync (self);
}

static void
mqtt_connect (ElbusMqttBridge *self)
{
  g_autoptr(GSocketClient) socket_client = NULL;

  if (!self->running)
    return;
  g_main_context_push_thread_default (self->context);
  socket_client = g_socket_client_new ();
  /* libmosquitto connects directly, so must the probe */
  g_socket_client_set_enable_proxy (socket_client, FALSE);
  g_socket_client_set_timeout (socket_client, MQTT_PROBE_TIMEOUT_S);
  self->probe_cancellable = g_cancellable_new ();
  g_socket_client_connect_to_host_async (socket_client, self->mqtt_host, self->mqtt_port,
                                         self->probe_cancellable, mqtt_probe_cb, self);
  g_main_context_pop_thread_default (self->context);
}

static gboolean
mqtt_setup (ElbusMqttBridge  *self,
            GError          **error)
{
  static gsize initialized = 0;
  int rc;

  if (g_once_init_enter (&initialized))
    {
      mosquitto_lib_init ();
      g_once_init_leave (&initialized, 1);
    }

  self->mosq = mosquitto_new (get_client_id (self), self->qos == 0, self);
  if (self->mosq == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, _("cannot create an MQTT client: %s"),
                   g_strerror (errno));
      return FALSE;
    }
  mosquitto_int_option (self->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
  mosquitto_connect_v5_callback_set (self->mosq, mqtt_connect_cb);
  mosquitto_disconnect_v5_callback_set (self->mosq, mqtt_disconnect_cb);
  mosquitto_message_v5_callback_set (self->mosq, mqtt_message_cb);
  mosquitto_publish_v5_callback_set (self->mosq, mqtt_publish_cb);

  if (self->username != NULL)
    {
      rc = mosquitto_username_pw_set (self->mosq, self->username, self->password);
      if (rc != MOSQ_ERR_SUCCESS)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       _("invalid MQTT user name: %s"), mosquitto_strerror (rc));
          return FALSE;
        }
    }

  if (self->tls_ca != NULL || self->tls_cert != NULL || self->tls_key != NULL)
    {
      const char *files[] = { self->tls_ca, self->tls_cert, self->tls_key };

      if (self->tls_ca == NULL)
        {
          g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                               _("a TLS certificate needs a CA file to check the broker with"));
          return FALSE;
        }
      if ((self->tls_cert == NULL) != (self->tls_key == NULL))
        {
          g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                               _("a TLS client certificate and its key go together"));
          return FALSE;
        }
      for (guint i = 0; i < G_N_ELEMENTS (files); i++)
        {
          if (files[i] != NULL && g_access (files[i], R_OK) != 0)
            {
              int saved = errno;

              g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                           _("cannot read “%s”: %s"), files[i], g_strerror (saved));
              return FALSE;
            }
        }
      rc = mosquitto_tls_set (self->mosq, self->tls_ca, NULL, self->tls_cert, self->tls_key,
                              NULL);
      if (rc != MOSQ_ERR_SUCCESS)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       _("cannot use the TLS files: %s"), mosquitto_strerror (rc));
          return FALSE;
        }
    }

  mosquitto_property_add_string_pair (&self->publish_props, MQTT_PROP_USER_PROPERTY,
                                      ORIGIN_PROPERTY, get_origin (self));
  return TRUE;
}

static void
mqtt_teardown (ElbusMqttBridge *self)
{
  if (self->probe_cancellable != NULL)
    {
      g_cancellable_cancel (self->probe_cancellable);
      g_clear_object (&self->probe_cancellable);
    }
  clear_source (&self->mqtt_retry);
  mqtt_unwatch (self);
  if (self->mosq != NULL)
    {
      if (mosquitto_socket (self->mosq) >= 0)
        mosquitto_disconnect (self->mosq);
      mosquitto_destroy (self->mosq);
      self->mosq = NULL;
    }
  mosquitto_property_free_all (&self->publish_props);
  self->have_connack = FALSE;
  self->have_disconnect = FALSE;
}

#endif /* HAVE_LIBMOSQUITTO */

/* ---- the local side --------------------------------------------------- */

static gboolean
is_exported (ElbusMqttBridge *self,
             const char      *topic)
{
  gsize topic_len = strlen (topic);
  gboolean broker_topic = g_str_has_prefix (topic, ".broker/");

  for (guint i = 0; i < self->exports->len; i++)
    {
      const char *mask = g_ptr_array_index (self->exports, i);

      /* the broker's own topics only for a mask that names them */
      if (broker_topic && !g_str_has_prefix (mask, ".broker/"))
        continue;
      if (_elbus_topic_mask_matches (mask, strlen (mask), topic, topic_len))
        return TRUE;
    }
  return FALSE;
}

static void
local_publication_cb (ElbusClient *client,
                      ElbusFrame  *frame,
                      gpointer     user_data)
{
  ElbusMqttBridge *self = user_data;
  const char *topic = elbus_frame_get_topic (frame);

  /* our own imports are never sent back */
  if (g_strcmp0 (elbus_frame_get_primary_sender (frame), self->name) == 0)
    {
      self->stats.echoes++;
      return;
    }
  if (topic == NULL || !is_exported (self, topic))
    return;

#ifdef HAVE_LIBMOSQUITTO
  mqtt_publish (self, mqtt_topic (self, topic), elbus_frame_get_payload (frame));
  if (self->mosq != NULL)
    mqtt_sync (self);
#endif
}

static gboolean
local_handle_call_cb (ElbusRpcPeer       *rpc,
                      ElbusRpcInvocation *invocation,
                      gpointer            user_data)
{
  ElbusMqttBridge *self = user_data;

  if (g_strcmp0 (elbus_rpc_invocation_get_method (invocation), "bridge.stats") != 0)
    return FALSE;
  elbus_rpc_invocation_return_variant (invocation, elbus_mqtt_bridge_get_stats (self));
  return TRUE;
}

static gboolean
local_retry_cb (gpointer user_data)
{
  ElbusMqttBridge *self = user_data;

  g_clear_pointer (&self->local_retry, g_source_unref);
  g_clear_object (&self->lost_client);
  local_connect (self);
  return G_SOURCE_REMOVE;
}

static void
local_outage (ElbusMqttBridge *self,
              const char      *reason)
{
  if (!self->local_outage)
    {
      if (self->local_ever)
        g_message (_("lost the local broker at %s: %s; reconnecting"), self->local_address,
                   reason);
      else
        g_message (_("cannot reach the local broker at %s: %s; retrying"), self->local_address,
                   reason);
      self->local_outage = TRUE;
    }
  else
    {
      g_debug ("local broker at %s: %s", self->local_address, reason);
    }
  if (self->running && self->local_retry == NULL)
    self->local_retry = schedule (self, backoff_ms (self->local_attempts++), local_retry_cb);
}

static void
local_set_ready (ElbusMqttBridge *self,
                 gboolean         ready)
{
  set_connected (self, &self->local_ready, ready, PROP_LOCAL_CONNECTED);
}

static void
local_drop_client (ElbusMqttBridge *self)
{
  if (self->client == NULL)
    return;
  g_signal_handlers_disconnect_by_data (self->client, self);
  if (self->rpc != NULL)
    g_signal_handlers_disconnect_by_data (self->rpc, self);
  g_clear_object (&self->rpc);
  g_clear_object (&self->lost_client);
  self->lost_client = g_steal_pointer (&self->client);
  local_set_ready (self, FALSE);
}

static void
local_disconnected_cb (ElbusClient *client,
                       GError      *error,
                       gpointer     user_data)
{
  ElbusMqttBridge *self = user_data;

  local_drop_client (self);
  local_outage (self, error != NULL ? error->message : "closed");
}

static void
local_subscribe_cb (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr(ElbusMqttBridge) self = user_data;
  g_autoptr(GError) error = NULL;

  if (!elbus_client_subscribe_finish (ELBUS_CLIENT (source), result, &error) &&
      !g_error_matches (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED))
    g_message (_("cannot subscribe on the local broker: %s"), error->message);
  if (self->client == ELBUS_CLIENT (source))
    local_set_ready (self, TRUE);
}

/* The export masks; ready once the broker has them. */
static void
local_subscribe (ElbusMqttBridge *self)
{
  if (self->exports->len == 0)
    {
      local_set_ready (self, TRUE);
      return;
    }
  g_ptr_array_add (self->exports, NULL);
  elbus_client_subscribe_async (self->client, (const char * const *) self->exports->pdata,
                                ELBUS_QOS_PROCESSED, NULL, local_subscribe_cb,
                                g_object_ref (self));
  g_ptr_array_set_size (self->exports, self->exports->len - 1);
}

static void
local_connect_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  ElbusMqttBridge *self = user_data;
  g_autoptr(GError) error = NULL;
  ElbusClient *client;

  client = elbus_client_new_finish (result, &error);
  /* after a cancel, self may be gone */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  g_clear_object (&self->local_cancellable);
  if (client == NULL)
    {
      local_outage (self, error->message);
      return;
    }

  if (self->local_outage)
    g_message (_("reconnected to the local broker at %s"), self->local_address);
  else
    g_info (_("connected to the local broker at %s as %s"), self->local_address, self->name);
  if (self->local_ever)
    self->stats.local_reconnects++;
  self->local_ever = TRUE;
  self->local_outage = FALSE;
  self->local_attempts = 0;

  self->client = client;
  g_signal_connect (client, "publication", G_CALLBACK (local_publication_cb), self);
  g_signal_connect (client, "disconnected", G_CALLBACK (local_disconnected_cb), self);
  self->rpc = elbus_rpc_peer_new (client);
  g_signal_connect (self->rpc, "handle-call", G_CALLBACK (local_handle_call_cb), self);
  local_subscribe (self);
}

static void
local_connect (ElbusMqttBridge *self)
{
  if (!self->running)
    return;
  g_main_context_push_thread_default (self->context);
  self->local_cancellable = g_cancellable_new ();
  elbus_client_new_async (self->local_address, self->name, self->local_cancellable,
                          local_connect_cb, self);
  g_main_context_pop_thread_default (self->context);
}

/* ---- GObject ---------------------------------------------------------- */

static void
elbus_mqtt_bridge_dispose (GObject *object)
{
  ElbusMqttBridge *self = ELBUS_MQTT_BRIDGE (object);

  elbus_mqtt_bridge_stop (self);

  G_OBJECT_CLASS (elbus_mqtt_bridge_parent_class)->dispose (object);
}

static void
elbus_mqtt_bridge_finalize (GObject *object)
{
  ElbusMqttBridge *self = ELBUS_MQTT_BRIDGE (object);

  g_queue_clear_full (&self->pending, (GDestroyNotify) pending_export_free);
  g_ptr_array_unref (self->exports);
  g_ptr_array_unref (self->imports);
  g_string_free (self->topic_buf, TRUE);
  g_free (self->local_address);
  g_free (self->name);
  g_free (self->mqtt_address);
  g_free (self->mqtt_host);
  g_free (self->prefix);
  g_free (self->client_id);
  g_free (self->origin);
  g_free (self->username);
  if (self->password != NULL)
    memset (self->password, 0, strlen (self->password));
  g_free (self->password);
  g_free (self->tls_ca);
  g_free (self->tls_cert);
  g_free (self->tls_key);
  g_main_context_unref (self->context);

  G_OBJECT_CLASS (elbus_mqtt_bridge_parent_class)->finalize (object);
}

static void
elbus_mqtt_bridge_get_property (GObject    *object,
                                guint       prop_id,
                                GValue     *value,
                                GParamSpec *pspec)
{
  ElbusMqttBridge *self = ELBUS_MQTT_BRIDGE (object);

  switch (prop_id)
    {
    case PROP_LOCAL_ADDRESS:
      g_value_set_string (value, self->local_address);
      break;
    case PROP_NAME:
      g_value_set_string (value, self->name);
      break;
    case PROP_MQTT_ADDRESS:
      g_value_set_string (value, self->mqtt_address);
      break;
    case PROP_PREFIX:
      g_value_set_string (value, self->prefix);
      break;
    case PROP_MQTT_QOS:
      g_value_set_int (value, self->qos);
      break;
    case PROP_RETAIN:
      g_value_set_boolean (value, self->retain);
      break;
    case PROP_CLIENT_ID:
      g_value_set_string (value, get_client_id (self));
      break;
    case PROP_ORIGIN:
      g_value_set_string (value, get_origin (self));
      break;
    case PROP_QUEUE_SIZE:
      g_value_set_uint (value, self->queue_size);
      break;
    case PROP_SESSION_EXPIRY:
      g_value_set_uint (value, self->session_expiry);
      break;
    case PROP_MQTT_CONNECTED:
      g_value_set_boolean (value, self->mqtt_connected);
      break;
    case PROP_LOCAL_CONNECTED:
      g_value_set_boolean (value, self->local_ready);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
set_string (ElbusMqttBridge *self,
            char           **field,
            const char      *value,
            int              prop)
{
  if (g_strcmp0 (*field, value) == 0)
    return;
  g_free (*field);
  *field = g_strdup (value);
  g_object_notify_by_pspec (G_OBJECT (self), properties[prop]);
}

static void
elbus_mqtt_bridge_set_property (GObject      *object,
                                guint         prop_id,
                                const GValue *value,
                                GParamSpec   *pspec)
{
  ElbusMqttBridge *self = ELBUS_MQTT_BRIDGE (object);

  switch (prop_id)
    {
    case PROP_LOCAL_ADDRESS:
      self->local_address = g_value_dup_string (value);
      break;
    case PROP_NAME:
      self->name = g_value_dup_string (value);
      break;
    case PROP_MQTT_ADDRESS:
      self->mqtt_address = g_value_dup_string (value);
      break;
    case PROP_PREFIX:
      set_string (self, &self->prefix, g_value_get_string (value) != NULL ?
                  g_value_get_string (value) : "", prop_id);
      break;
    case PROP_MQTT_QOS:
      if (self->qos != g_value_get_int (value))
        {
          self->qos = g_value_get_int (value);
          g_object_notify_by_pspec (object, pspec);
        }
      break;
    case PROP_RETAIN:
      if (self->retain != g_value_get_boolean (value))
        {
          self->retain = g_value_get_boolean (value);
          g_object_notify_by_pspec (object, pspec);
        }
      break;
    case PROP_CLIENT_ID:
      set_string (self, &self->client_id, g_value_get_string (value), prop_id);
      break;
    case PROP_ORIGIN:
      set_string (self, &self->origin, g_value_get_string (value), prop_id);
      break;
    case PROP_QUEUE_SIZE:
      if (self->queue_size != g_value_get_uint (value))
        {
          self->queue_size = g_value_get_uint (value);
          g_object_notify_by_pspec (object, pspec);
        }
      break;
    case PROP_SESSION_EXPIRY:
      if (self->session_expiry != g_value_get_uint (value))
        {
          self->session_expiry = g_value_get_uint (value);
          g_object_notify_by_pspec (object, pspec);
        }
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
elbus_mqtt_bridge_class_init (ElbusMqttBridgeClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GParamFlags flags = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY;
  GParamFlags construct = G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS;
  GParamFlags read_only = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY;

  object_class->dispose = elbus_mqtt_bridge_dispose;
  object_class->finalize = elbus_mqtt_bridge_finalize;
  object_class->get_property = elbus_mqtt_bridge_get_property;
  object_class->set_property = elbus_mqtt_bridge_set_property;

  /**
   * ElbusMqttBridge:local-address:
   *
   * The local elbus broker: a UNIX socket path, `HOST:PORT`, or
   * `ws://HOST:PORT/PATH` or `wss://HOST:PORT/PATH` (WebSocket).
   *
   * Since: 1.0
   */
  properties[PROP_LOCAL_ADDRESS] =
    g_param_spec_string ("local-address", NULL, NULL, NULL, construct);

  /**
   * ElbusMqttBridge:name:
   *
   * The bridge's client name on the local broker. Local publications
   * from this name (or its secondaries) are never exported.
   *
   * Since: 1.0
   */
  properties[PROP_NAME] =
    g_param_spec_string ("name", NULL, NULL, NULL, construct);

  /**
   * ElbusMqttBridge:mqtt-address:
   *
   * The MQTT broker, `HOST:PORT` (the port defaults to 1883).
   *
   * Since: 1.0
   */
  properties[PROP_MQTT_ADDRESS] =
    g_param_spec_string ("mqtt-address", NULL, NULL, NULL, construct);

  /**
   * ElbusMqttBridge:prefix:
   *
   * The first levels of every MQTT topic the bridge publishes and
   * subscribes to, without the final `/`; may be empty.
   *
   * Since: 1.0
   */
  properties[PROP_PREFIX] =
    g_param_spec_string ("prefix", NULL, NULL, ELBUS_MQTT_BRIDGE_DEFAULT_PREFIX, flags);

  /**
   * ElbusMqttBridge:mqtt-qos:
   *
   * The MQTT QoS of exports and of the import subscriptions. Imports
   * that arrive with QoS 0 are published locally without an ack, others
   * with %ELBUS_QOS_PROCESSED. Set it before [method@Elbus.MqttBridge.start].
   *
   * Since: 1.0
   */
  properties[PROP_MQTT_QOS] =
    g_param_spec_int ("mqtt-qos", NULL, NULL, 0, 2, 0, flags);

  /**
   * ElbusMqttBridge:retain:
   *
   * Export with MQTT's retain flag, so that a late subscriber on another
   * host gets the last value.
   *
   * Since: 1.0
   */
  properties[PROP_RETAIN] =
    g_param_spec_boolean ("retain", NULL, NULL, FALSE, flags);

  /**
   * ElbusMqttBridge:client-id:
   *
   * The MQTT client identifier; by default `NAME@HOSTNAME`. Keep it
   * stable for a persistent session.
   *
   * Since: 1.0
   */
  properties[PROP_CLIENT_ID] =
    g_param_spec_string ("client-id", NULL, NULL, NULL, flags);

  /**
   * ElbusMqttBridge:origin:
   *
   * The identity of the local bus, sent with every export as the MQTT
   * user property `elbus-origin`; messages that carry it are not
   * imported. By default `HOSTNAME:LOCAL-ADDRESS`. Bridges of one bus
   * share it; bridges of different buses must not.
   *
   * Since: 1.0
   */
  properties[PROP_ORIGIN] =
    g_param_spec_string ("origin", NULL, NULL, NULL, flags);

  /**
   * ElbusMqttBridge:queue-size:
   *
   * How many exports wait while the MQTT broker is away; beyond it the
   * oldest are dropped and counted.
   *
   * Since: 1.0
   */
  properties[PROP_QUEUE_SIZE] =
    g_param_spec_uint ("queue-size", NULL, NULL, 0, G_MAXUINT,
                       ELBUS_MQTT_BRIDGE_DEFAULT_QUEUE_SIZE, flags);

  /**
   * ElbusMqttBridge:session-expiry:
   *
   * With [property@Elbus.MqttBridge:mqtt-qos] 1 or 2, how many seconds
   * the MQTT broker keeps the bridge's session (and the imports meant
   * for it) after a disconnect; 0 for a clean session every time.
   *
   * Since: 1.0
   */
  properties[PROP_SESSION_EXPIRY] =
    g_param_spec_uint ("session-expiry", NULL, NULL, 0, G_MAXUINT32,
                       DEFAULT_SESSION_EXPIRY, flags);

  /**
   * ElbusMqttBridge:mqtt-connected:
   *
   * Whether the MQTT broker has accepted the bridge's connection.
   *
   * Since: 1.0
   */
  properties[PROP_MQTT_CONNECTED] =
    g_param_spec_boolean ("mqtt-connected", NULL, NULL, FALSE, read_only);

  /**
   * ElbusMqttBridge:local-connected:
   *
   * Whether the bridge is registered on the local broker and its export
   * masks are subscribed there.
   *
   * Since: 1.0
   */
  properties[PROP_LOCAL_CONNECTED] =
    g_param_spec_boolean ("local-connected", NULL, NULL, FALSE, read_only);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * ElbusMqttBridge::failed:
   * @self: the bridge
   * @error: why
   *
   * Emitted when the bridge gives up: the MQTT broker refused its
   * credentials or its client identifier, which trying again would not
   * mend. The bridge is stopped by then.
   *
   * Since: 1.0
   */
  signals[SIGNAL_FAILED] =
    g_signal_new ("failed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
}

static void
elbus_mqtt_bridge_init (ElbusMqttBridge *self)
{
  self->context = g_main_context_ref_thread_default ();
  self->prefix = g_strdup (ELBUS_MQTT_BRIDGE_DEFAULT_PREFIX);
  self->queue_size = ELBUS_MQTT_BRIDGE_DEFAULT_QUEUE_SIZE;
  self->session_expiry = DEFAULT_SESSION_EXPIRY;
  self->exports = g_ptr_array_new_with_free_func (g_free);
  self->imports = g_ptr_array_new_with_free_func (g_free);
  self->topic_buf = g_string_new (NULL);
  self->mqtt_fd = -1;
  g_queue_init (&self->pending);
}

/* ---- public API ------------------------------------------------------- */

/**
 * elbus_mqtt_bridge_is_supported:
 *
 * Whether this build of the library can bridge to MQTT (it was built
 * with libmosquitto).
 *
 * Returns: %TRUE when [method@Elbus.MqttBridge.start] can work
 *
 * Since: 1.0
 */
gboolean
elbus_mqtt_bridge_is_supported (void)
{
#ifdef HAVE_LIBMOSQUITTO
  return TRUE;
#else
  return FALSE;
#endif
}

/**
 * elbus_mqtt_bridge_new:
 * @local_address: the local elbus broker (a UNIX socket path, `HOST:PORT`,
 *   or `ws://HOST:PORT/PATH` or `wss://HOST:PORT/PATH`)
 * @name: the bridge's client name there
 * @mqtt_address: the MQTT broker, `HOST:PORT` or `HOST` (port 1883)
 *
 * Makes a bridge, bound to the thread-default main context. Add rules
 * with [method@Elbus.MqttBridge.add_export] and
 * [method@Elbus.MqttBridge.add_import], then call
 * [method@Elbus.MqttBridge.start].
 *
 * Returns: (transfer full): a new bridge
 *
 * Since: 1.0
 */
ElbusMqttBridge *
elbus_mqtt_bridge_new (const char *local_address,
                       const char *name,
                       const char *mqtt_address)
{
  g_return_val_if_fail (local_address != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (mqtt_address != NULL, NULL);

  return g_object_new (ELBUS_TYPE_MQTT_BRIDGE,
                       "local-address", local_address,
                       "name", name,
                       "mqtt-address", mqtt_address,
                       NULL);
}

static gboolean
add_rule (ElbusMqttBridge  *self,
          GPtrArray        *rules,
          const char       *mask,
          GError          **error)
{
  if (!check_mask (mask, error))
    return FALSE;
  for (guint i = 0; i < rules->len; i++)
    {
      if (strcmp (g_ptr_array_index (rules, i), mask) == 0)
        return TRUE;
    }
  g_ptr_array_add (rules, g_strdup (mask));
  return TRUE;
}

/**
 * elbus_mqtt_bridge_add_export:
 * @self: a bridge
 * @mask: an elbus topic mask (`/` levels, `+`, `#`)
 *
 * Publishes local publications whose topic matches @mask to MQTT as
 * `PREFIX/TOPIC`. Topics under `.broker/` are exported only for a mask
 * that starts with `.broker/`. A running bridge subscribes at once.
 *
 * Returns: %TRUE, or %FALSE with @error set for a malformed mask
 *
 * Since: 1.0
 */
gboolean
elbus_mqtt_bridge_add_export (ElbusMqttBridge  *self,
                              const char       *mask,
                              GError          **error)
{
  const char *masks[2] = { mask, NULL };

  g_return_val_if_fail (ELBUS_IS_MQTT_BRIDGE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!add_rule (self, self->exports, mask, error))
    return FALSE;
  if (self->client != NULL)
    elbus_client_subscribe_async (self->client, masks, ELBUS_QOS_PROCESSED, NULL,
                                  local_subscribe_cb, g_object_ref (self));
  return TRUE;
}

/**
 * elbus_mqtt_bridge_add_import:
 * @self: a bridge
 * @mask: an elbus topic mask (`/` levels, `+`, `#`)
 *
 * Subscribes to `PREFIX/MASK` on the MQTT broker and publishes what
 * arrives on the local broker, under the topic without the prefix.
 * A connected bridge subscribes at once.
 *
 * Returns: %TRUE, or %FALSE with @error set for a malformed mask
 *
 * Since: 1.0
 */
gboolean
elbus_mqtt_bridge_add_import (ElbusMqttBridge  *self,
                              const char       *mask,
                              GError          **error)
{
  g_return_val_if_fail (ELBUS_IS_MQTT_BRIDGE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!add_rule (self, self->imports, mask, error))
    return FALSE;
#ifdef HAVE_LIBMOSQUITTO
  if (self->mqtt_connected)
    {
      mosquitto_subscribe_v5 (self->mosq, NULL, mqtt_topic (self, mask), self->qos,
                              SUBSCRIBE_OPTIONS, NULL);
      mqtt_sync (self);
    }
#endif
  return TRUE;
}

/**
 * elbus_mqtt_bridge_clear_rules:
 * @self: a bridge
 *
 * Removes every export and import rule; a running bridge unsubscribes on
 * both sides. Add new ones to change the rules of a running bridge (as
 * `elbus-bridge` does when it reloads its configuration).
 *
 * Since: 1.0
 */
void
elbus_mqtt_bridge_clear_rules (ElbusMqttBridge *self)
{
  g_return_if_fail (ELBUS_IS_MQTT_BRIDGE (self));

  if (self->client != NULL && self->exports->len > 0)
    {
      g_ptr_array_add (self->exports, NULL);
      elbus_client_unsubscribe_async (self->client,
                                      (const char * const *) self->exports->pdata,
                                      ELBUS_QOS_PROCESSED, NULL, NULL, NULL);
    }
#ifdef HAVE_LIBMOSQUITTO
  if (self->mqtt_connected)
    {
      for (guint i = 0; i < self->imports->len; i++)
        mosquitto_unsubscribe (self->mosq, NULL,
                               mqtt_topic (self, g_ptr_array_index (self->imports, i)));
      mqtt_sync (self);
    }
#endif
  g_ptr_array_set_size (self->exports, 0);
  g_ptr_array_set_size (self->imports, 0);
}

/**
 * elbus_mqtt_bridge_set_credentials:
 * @self: a bridge
 * @username: (nullable): the MQTT user name, or %NULL for none
 * @password: (nullable): its password
 *
 * Sets the credentials the bridge gives the MQTT broker. Call it before
 * [method@Elbus.MqttBridge.start].
 *
 * Since: 1.0
 */
void
elbus_mqtt_bridge_set_credentials (ElbusMqttBridge *self,
                                   const char      *username,
                                   const char      *password)
{
  g_return_if_fail (ELBUS_IS_MQTT_BRIDGE (self));

  g_free (self->username);
  self->username = g_strdup (username);
  if (self->password != NULL)
    memset (self->password, 0, strlen (self->password));
  g_free (self->password);
  self->password = g_strdup (password);
}

/**
 * elbus_mqtt_bridge_set_tls:
 * @self: a bridge
 * @ca_file: (nullable) (type filename): the CA certificate(s) that the
 *   MQTT broker's certificate must be signed by, PEM; %NULL for no TLS
 * @cert_file: (nullable) (type filename): a client certificate, PEM
 * @key_file: (nullable) (type filename): its private key, PEM
 *
 * Connects to the MQTT broker with TLS. The broker's certificate must be
 * signed by @ca_file and name the host of
 * [property@Elbus.MqttBridge:mqtt-address]. Call it before
 * [method@Elbus.MqttBridge.start], which reports unreadable files.
 *
 * Since: 1.0
 */
void
elbus_mqtt_bridge_set_tls (ElbusMqttBridge *self,
                           const char      *ca_file,
                           const char      *cert_file,
                           const char      *key_file)
{
  g_return_if_fail (ELBUS_IS_MQTT_BRIDGE (self));

  g_free (self->tls_ca);
  self->tls_ca = g_strdup (ca_file);
  g_free (self->tls_cert);
  self->tls_cert = g_strdup (cert_file);
  g_free (self->tls_key);
  self->tls_key = g_strdup (key_file);
}

/**
 * elbus_mqtt_bridge_start:
 * @self: a bridge
 * @error: return location for an error
 *
 * Checks the settings and starts connecting to both brokers. It does not
 * wait for either: the bridge keeps trying, with a backoff, until
 * [method@Elbus.MqttBridge.stop]; watch
 * [property@Elbus.MqttBridge:mqtt-connected],
 * [property@Elbus.MqttBridge:local-connected] and
 * [signal@Elbus.MqttBridge::failed].
 *
 * Returns: %TRUE, or %FALSE with @error set for a bad MQTT address,
 *   unreadable TLS files, a library built without MQTT support, or a
 *   `ws://` or `wss://` local address in a library built without
 *   WebSocket support (both %G_IO_ERROR_NOT_SUPPORTED)
 *
 * Since: 1.0
 */
gboolean
elbus_mqtt_bridge_start (ElbusMqttBridge  *self,
                         GError          **error)
{
#ifdef HAVE_LIBMOSQUITTO
  g_autoptr(GSocketConnectable) address = NULL;
  g_autoptr(GError) local_error = NULL;
#endif

  g_return_val_if_fail (ELBUS_IS_MQTT_BRIDGE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (self->running)
    return TRUE;

#ifndef HAVE_LIBSOUP
  /* retrying would not mend it */
  if (_elbus_address_is_ws (self->local_address))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   _("“%s”: this elbus library was built without WebSocket support (libsoup)"),
                   self->local_address);
      return FALSE;
    }
#endif

#ifdef HAVE_LIBMOSQUITTO
  address = g_network_address_parse (self->mqtt_address, 1883, &local_error);
  if (address == NULL || *g_network_address_get_hostname (G_NETWORK_ADDRESS (address)) == '\0')
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   _("invalid MQTT address “%s”: %s"), self->mqtt_address,
                   local_error != NULL ? local_error->message : _("no host"));
      return FALSE;
    }
  g_free (self->mqtt_host);
  self->mqtt_host = g_strdup (g_network_address_get_hostname (G_NETWORK_ADDRESS (address)));
  self->mqtt_port = g_network_address_get_port (G_NETWORK_ADDRESS (address));

  if (!mqtt_setup (self, error))
    {
      mqtt_teardown (self);
      return FALSE;
    }

  self->running = TRUE;
  local_connect (self);
  mqtt_connect (self);
  return TRUE;
#else
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
               _("this build of libelbus has no MQTT support (built without libmosquitto)"));
  return FALSE;
#endif
}

/**
 * elbus_mqtt_bridge_stop:
 * @self: a bridge
 *
 * Disconnects from both brokers and stops trying. Exports still queued
 * are kept for a later [method@Elbus.MqttBridge.start].
 *
 * Since: 1.0
 */
void
elbus_mqtt_bridge_stop (ElbusMqttBridge *self)
{
  g_return_if_fail (ELBUS_IS_MQTT_BRIDGE (self));

  self->running = FALSE;

  if (self->local_cancellable != NULL)
    {
      g_cancellable_cancel (self->local_cancellable);
      g_clear_object (&self->local_cancellable);
    }
  clear_source (&self->local_retry);
  if (self->client != NULL)
    {
      ElbusClient *client = g_object_ref (self->client);

      local_drop_client (self);
      elbus_client_close (client);
      g_object_unref (client);
    }
  g_clear_object (&self->lost_client);

#ifdef HAVE_LIBMOSQUITTO
  mqtt_teardown (self);
#endif
  set_connected (self, &self->mqtt_connected, FALSE, PROP_MQTT_CONNECTED);
}

/**
 * elbus_mqtt_bridge_is_mqtt_connected:
 * @self: a bridge
 *
 * Whether the bridge can export now; see
 * [property@Elbus.MqttBridge:mqtt-connected].
 *
 * Returns: whether the MQTT broker has accepted the bridge
 *
 * Since: 1.0
 */
gboolean
elbus_mqtt_bridge_is_mqtt_connected (ElbusMqttBridge *self)
{
  g_return_val_if_fail (ELBUS_IS_MQTT_BRIDGE (self), FALSE);
  return self->mqtt_connected;
}

/**
 * elbus_mqtt_bridge_is_local_connected:
 * @self: a bridge
 *
 * Whether the bridge can import now; see
 * [property@Elbus.MqttBridge:local-connected].
 *
 * Returns: whether the bridge is registered on the local broker and its
 *   export masks are subscribed
 *
 * Since: 1.0
 */
gboolean
elbus_mqtt_bridge_is_local_connected (ElbusMqttBridge *self)
{
  g_return_val_if_fail (ELBUS_IS_MQTT_BRIDGE (self), FALSE);
  return self->local_ready;
}

/**
 * elbus_mqtt_bridge_get_stats:
 * @self: a bridge
 *
 * The bridge's counters, as a dictionary of unsigned 64-bit integers:
 * `exported` and `exported_bytes` (to MQTT), `imported` and
 * `imported_bytes` (to the local broker), `queued` (exports waiting for
 * MQTT), `dropped` (exports dropped from the full queue), `failed`
 * (publications either side refused), `echoes` (messages not passed on
 * because they were the bridge's own or its bus's), `mqtt_reconnects`
 * and `local_reconnects`. The RPC method `bridge.stats` of the bridge's
 * client answers the same, as a MessagePack map.
 *
 * Returns: (transfer floating): an `a{st}` dictionary
 *
 * Since: 1.0
 */
GVariant *
elbus_mqtt_bridge_get_stats (ElbusMqttBridge *self)
{
  GVariantBuilder builder;

  g_return_val_if_fail (ELBUS_IS_MQTT_BRIDGE (self), NULL);

  g_variant_builder_init (&builder, G_VARIANT_TYPE ("a{st}"));
#define STAT(key, value) g_variant_builder_add (&builder, "{st}", key, (guint64) (value))
  STAT ("exported", self->stats.exported);
  STAT ("exported_bytes", self->stats.exported_bytes);
  STAT ("imported", self->stats.imported);
  STAT ("imported_bytes", self->stats.imported_bytes);
  STAT ("queued", self->pending.length);
  STAT ("dropped", self->stats.dropped);
  STAT ("failed", self->stats.failed);
  STAT ("echoes", self->stats.echoes);
  STAT ("mqtt_reconnects", self->stats.mqtt_reconnects);
  STAT ("local_reconnects", self->stats.local_reconnects);
#undef STAT
  return g_variant_builder_end (&builder);
}
