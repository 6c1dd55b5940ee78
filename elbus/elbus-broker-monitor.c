/* SPDX-License-Identifier: MIT */
/*
 * Monitors (docs/protocol.md section 9, this project's extension).
 *
 * A client that called `.broker` method `monitor.start` gets a copy of
 * every routed event that passes its filters: a publication from `.broker`
 * on `.broker/monitor` whose payload is one MessagePack map
 *
 *   t  ns since the UNIX epoch     k  kind        s  sender
 *   d  target, mask, topic, masks or nil          q  QoS bits
 *   n  recipients   r  result code   l  payload length   p  payload (bin)
 *
 * in that key order. `p` comes last, so an event is queued as a prefix
 * (TOPIC 00, then the map up to and including the bin header of `p`),
 * encoded once and shared by the monitors shown the same part of the payload,
 * followed by the payload where it lies in the sender's read chunk: a large
 * payload is not copied. Copies go to the monitor's queue directly: they are
 * not routed, so nobody subscribed to `#` receives them, and they cannot
 * be monitored in turn. A monitor is a client like any other: if it cannot
 * keep up, its queue overflows and it is dropped.
 *
 * With no monitor, routing pays one branch (broker->monitors->len).
 */
#include "config.h"

#include <string.h>
#include <msgpack.h>

#include "elbus-broker-private.h"
#include "elbus-error.h"
#include "elbus-i18n-private.h"
#include "elbus-msgpack.h"
#include "elbus-rpc-invocation.h"

#define MONITOR_TOPIC ".broker/monitor"

static const char * const kind_names[] = {
  [ELBUS_MONITOR_MESSAGE] = "message",
  [ELBUS_MONITOR_BROADCAST] = "broadcast",
  [ELBUS_MONITOR_PUBLISH] = "publish",
  [ELBUS_MONITOR_SUBSCRIBE] = "subscribe",
  [ELBUS_MONITOR_UNSUBSCRIBE] = "unsubscribe",
  [ELBUS_MONITOR_REG] = "reg",
  [ELBUS_MONITOR_UNREG] = "unreg",
};

struct _ElbusMonitor {
  ElbusPeer *peer;          /* (unowned) (nullable): NULL once it is gone */
  GStrv      senders;       /* (owned) (nullable): `.`-masks; NULL = any */
  GStrv      targets;       /* (owned) (nullable): `.`-masks */
  GStrv      topics;        /* (owned) (nullable): `/`-masks */
  guint      kinds;         /* 1 << ElbusMonitorKind; all when no filter */
  gsize      max_payload;
};

/* One event being reported: everything but the payload truncation. */
typedef struct {
  ElbusMonitorKind  kind;
  ElbusPeer        *sender;
  const char       *name;       /* the sender's name (reg/unreg: the client's) */
  gsize             name_len;
  const char       *dest;       /* (nullable): target, mask or topic */
  gsize             dest_len;
  const guint8     *masks;      /* (nullable): subscribe body */
  gsize             masks_len;
  ElbusPeer        *target;     /* (nullable): a message's recipient */
  guint             qos;
  guint             recipients;
  guint             result;
  const guint8     *head;       /* (nullable): the payload's first bytes, held apart */
  gsize             head_len;
  const guint8     *payload;    /* the rest of the payload */
  gsize             payload_len;
  ElbusChunk       *chunk;      /* holds the payload; NULL only without one */
  gint64            time_ns;
} ElbusMonitorEvent;

void
_elbus_monitor_free (ElbusMonitor *monitor)
{
  g_strfreev (monitor->senders);
  g_strfreev (monitor->targets);
  g_strfreev (monitor->topics);
  g_free (monitor);
}

/* filters */

typedef gboolean (*MaskMatchFunc) (const char *mask,
                                   gsize       mask_len,
                                   const char *subject,
                                   gsize       subject_len);

static gboolean
any_mask (GStrv          masks,
          MaskMatchFunc  matches,
          const char    *subject,
          gsize          subject_len)
{
  for (guint i = 0; masks[i] != NULL; i++)
    if (matches (masks[i], strlen (masks[i]), subject, subject_len))
      return TRUE;
  return FALSE;
}

/* `.`-masks against a name, `/`-masks against a topic */
#define any_name_mask(masks, name, len) any_mask (masks, _elbus_name_mask_matches, name, len)
#define any_topic_mask(masks, topic, len) any_mask (masks, _elbus_topic_mask_matches, topic, len)

/* The rule of docs/protocol.md 9 as this broker reads it: kind, then sender,
 * then, when a target or topic filter is given, the destination in the
 * list for its category (a category without a list does not pass). */
static gboolean
monitor_wants (ElbusMonitor            *monitor,
               const ElbusMonitorEvent *event,
               gboolean                 check_sender)
{
  if (!(monitor->kinds & (1u << event->kind)))
    return FALSE;
  if (check_sender && monitor->senders != NULL &&
      !any_name_mask (monitor->senders, event->name, event->name_len))
    return FALSE;
  if (monitor->targets == NULL && monitor->topics == NULL)
    return TRUE;

  switch (event->kind)
    {
    case ELBUS_MONITOR_MESSAGE:
    case ELBUS_MONITOR_BROADCAST:
      return monitor->targets != NULL &&
             any_name_mask (monitor->targets, event->dest, event->dest_len);

    case ELBUS_MONITOR_REG:
    case ELBUS_MONITOR_UNREG:
      return monitor->targets != NULL &&
             any_name_mask (monitor->targets, event->name, event->name_len);

    case ELBUS_MONITOR_PUBLISH:
      return monitor->topics != NULL &&
             any_topic_mask (monitor->topics, event->dest, event->dest_len);

    case ELBUS_MONITOR_SUBSCRIBE:
    case ELBUS_MONITOR_UNSUBSCRIBE:
    default:
      {
        gsize pos = 0;
        const char *mask;
        gsize mask_len;

        if (monitor->topics == NULL)
          return FALSE;
        while (_elbus_codec_next_mask (event->masks, event->masks_len, &pos, &mask, &mask_len))
          if (any_topic_mask (monitor->topics, mask, mask_len))
            return TRUE;
        return FALSE;
      }
    }
}

/* encoding */

static void
pack_str (msgpack_packer *pk,
          const char     *str,
          gsize           len)
{
  msgpack_pack_str (pk, len);
  msgpack_pack_str_body (pk, str, len);
}

static void
pack_key (msgpack_packer *pk,
          char            key)
{
  pack_str (pk, &key, 1);
}

static int
append_cb (void       *data,
           const char *buf,
           size_t      len)
{
  g_byte_array_append (data, (const guint8 *) buf, len);
  return 0;
}

/* TOPIC 00 MAP without the @shown payload bytes that end it: the payload
 * of the publication a monitor receives is this prefix, then those. */
static GBytes *
encode_prefix (const ElbusMonitorEvent *event,
               gsize                    shown)
{
  /* the fixed fields take at most 60 bytes; strings a header of 5 each */
  GByteArray *buf = g_byte_array_sized_new (sizeof MONITOR_TOPIC + 64 + event->name_len +
                                            event->dest_len + 2 * event->masks_len);
  msgpack_packer pk;
  const char *kind = kind_names[event->kind];

  g_byte_array_append (buf, (const guint8 *) MONITOR_TOPIC, sizeof MONITOR_TOPIC); /* with its 00 */
  msgpack_packer_init (&pk, buf, append_cb);

  msgpack_pack_map (&pk, 9);
  pack_key (&pk, 't');
  msgpack_pack_uint64 (&pk, (guint64) event->time_ns);
  pack_key (&pk, 'k');
  pack_str (&pk, kind, strlen (kind));
  pack_key (&pk, 's');
  pack_str (&pk, event->name, event->name_len);
  pack_key (&pk, 'd');
  if (event->masks != NULL || event->kind == ELBUS_MONITOR_SUBSCRIBE ||
      event->kind == ELBUS_MONITOR_UNSUBSCRIBE)
    {
      gsize pos = 0, n = 0;
      const char *mask;
      gsize mask_len;

      while (_elbus_codec_next_mask (event->masks, event->masks_len, &pos, &mask, &mask_len))
        n++;
      msgpack_pack_array (&pk, n);
      pos = 0;
      while (_elbus_codec_next_mask (event->masks, event->masks_len, &pos, &mask, &mask_len))
        pack_str (&pk, mask, mask_len);
    }
  else if (event->dest != NULL)
    pack_str (&pk, event->dest, event->dest_len);
  else
    msgpack_pack_nil (&pk);
  pack_key (&pk, 'q');
  msgpack_pack_unsigned_int (&pk, event->qos);
  pack_key (&pk, 'n');
  msgpack_pack_unsigned_int (&pk, event->recipients);
  pack_key (&pk, 'r');
  msgpack_pack_unsigned_int (&pk, event->result);
  pack_key (&pk, 'l');
  msgpack_pack_uint64 (&pk, event->head_len + event->payload_len);
  pack_key (&pk, 'p');
  msgpack_pack_bin (&pk, shown);
  /* a head held apart goes with the prefix (a few bytes) */
  if (event->head_len > 0)
    g_byte_array_append (buf, event->head, MIN (shown, event->head_len));

  return g_byte_array_free_to_bytes (buf);
}

/* Queues @prefix and the first @shown bytes of the event's payload (TOPIC
 * 00 MAP) as a publication from .broker; the prefix holds the head's share
 * of them already. */
static void
send_copy (ElbusPeer               *peer,
           GBytes                  *prefix,
           const ElbusMonitorEvent *event,
           gsize                    shown)
{
  ElbusOutEntry entry = { 0 };
  gsize prefix_len;
  const guint8 *data = g_bytes_get_data (prefix, &prefix_len);

  entry.bytes = g_bytes_ref (prefix);
  shown -= MIN (shown, event->head_len);
  if (shown > 0)
    {
      /* the prefix, then the payload where it lies */
      entry.chunk = _elbus_chunk_ref (event->chunk);
      entry.payload = event->payload;
      entry.payload_len = shown;
    }
  else
    {
      entry.payload = data;
      entry.payload_len = prefix_len;
    }
  _elbus_codec_encode_broker_header (entry.hdr, ELBUS_KIND_PUBLISH,
                                     strlen (".broker") + 1 + prefix_len + shown, FALSE);
  _elbus_out_entry_set_name (&entry, ELBUS_BROKER_HEADER_LEN, ".broker", strlen (".broker"));

  if (!_elbus_peer_enqueue (peer, &entry, FALSE))
    _elbus_peer_drop_slow (peer);
}

/* The monitors or their filters changed: cached answers are stale. */
static void
monitors_changed (ElbusBroker *self)
{
  self->monitor_gen++;
  self->monitor_kinds = 0;
  for (guint i = 0; i < self->monitors->len; i++)
    {
      ElbusMonitor *monitor = g_ptr_array_index (self->monitors, i);

      if (monitor->peer != NULL)
        self->monitor_kinds |= monitor->kinds;
    }
}

/* Which of the first 64 monitors take frames from @peer: the sender filter
 * depends on the sender's name only, so it is worked out once per peer
 * and set of monitors, not once per frame. */
static guint64
wanted_from (ElbusBroker *self,
             ElbusPeer   *peer)
{
  if (G_LIKELY (peer->monitor_gen == self->monitor_gen))
    return peer->monitor_wanted;

  peer->monitor_wanted = 0;
  for (guint i = 0; i < MIN (self->monitors->len, 64); i++)
    {
      ElbusMonitor *monitor = g_ptr_array_index (self->monitors, i);

      if (monitor->peer != NULL && monitor->peer != peer &&
          (monitor->senders == NULL ||
           any_name_mask (monitor->senders, peer->name, peer->name_len)))
        peer->monitor_wanted |= G_GUINT64_CONSTANT (1) << i;
    }
  peer->monitor_gen = self->monitor_gen;
  return peer->monitor_wanted;
}

/* @wanted: bit i clear when monitor i surely does not want the event (past
 * the first 64, every monitor is asked); with @senders_checked, a set bit
 * means monitor i's sender filter has passed already (wanted_from()). */
static void
report (ElbusBroker       *self,
        ElbusMonitorEvent *event,
        guint64            wanted,
        gboolean           senders_checked)
{
  g_autoptr(GBytes) prefix = NULL;
  gsize prefix_shown = 0;

  /* a monitor closed meanwhile is only marked (see _elbus_broker_monitor_forget) */
  self->monitors_busy++;
  for (guint i = 0; i < self->monitors->len; i++)
    {
      ElbusMonitor *monitor = g_ptr_array_index (self->monitors, i);
      ElbusPeer *peer = monitor->peer;
      gsize shown;

      if (i < 64 && !(wanted & (G_GUINT64_CONSTANT (1) << i)))
        continue;
      /* no copies of its own traffic, nor of messages to it */
      if (peer == NULL || peer->closed || peer == event->sender || peer == event->target ||
          !monitor_wants (monitor, event, !senders_checked || i >= 64))
        continue;

      shown = MIN (event->head_len + event->payload_len, monitor->max_payload);
      /* monitors shown the same part of the payload share one prefix */
      if (prefix == NULL || prefix_shown != shown)
        {
          /* taken once a monitor wants the event, not for every frame */
          if (event->time_ns == 0)
            event->time_ns = g_get_real_time () * 1000;
          g_clear_pointer (&prefix, g_bytes_unref);
          prefix = encode_prefix (event, shown);
          prefix_shown = shown;
        }
      send_copy (peer, prefix, event, shown);
    }
  if (--self->monitors_busy == 0)
    {
      guint before = self->monitors->len;

      for (guint i = self->monitors->len; i-- > 0;)
        if (((ElbusMonitor *) g_ptr_array_index (self->monitors, i))->peer == NULL)
          g_ptr_array_remove_index (self->monitors, i);
      if (self->monitors->len != before)
        monitors_changed (self);
    }
}

void
_elbus_broker_monitor_frame (ElbusBroker            *self,
                             ElbusPeer              *sender,
                             const ElbusClientFrame *frame,
                             ElbusChunk             *chunk,
                             ElbusPeer              *target,
                             guint                   recipients,
                             guint8                  result)
{
  ElbusMonitorEvent event = { 0 };
  guint64 wanted;

  event.sender = sender;
  event.name = sender->name;
  event.name_len = sender->name_len;
  event.target = target;
  event.qos = frame->qos;
  event.recipients = recipients;
  event.result = result;

  switch (frame->op)
    {
    case ELBUS_OP_MESSAGE:
    case ELBUS_OP_BROADCAST:
    case ELBUS_OP_PUBLISH:
      event.kind = frame->op == ELBUS_OP_MESSAGE ? ELBUS_MONITOR_MESSAGE :
                   frame->op == ELBUS_OP_BROADCAST ? ELBUS_MONITOR_BROADCAST :
                   ELBUS_MONITOR_PUBLISH;
      event.dest = frame->target;
      event.dest_len = frame->target_len;
      if (frame->head != NULL)
        event.head = g_bytes_get_data (frame->head, &event.head_len);
      event.payload = frame->payload;
      event.payload_len = frame->payload_len;
      event.chunk = chunk;
      break;

    case ELBUS_OP_SUBSCRIBE:
    case ELBUS_OP_UNSUBSCRIBE:
      event.kind = frame->op == ELBUS_OP_SUBSCRIBE ? ELBUS_MONITOR_SUBSCRIBE
                                                   : ELBUS_MONITOR_UNSUBSCRIBE;
      event.masks = frame->body != NULL ? frame->body : (const guint8 *) "";
      event.masks_len = frame->body_len;
      break;

    default:
      return;
    }

  /* what every monitor filters out costs two tests */
  wanted = wanted_from (self, sender);
  if (!(self->monitor_kinds & (1u << event.kind)) ||
      (wanted == 0 && self->monitors->len <= 64))
    return;

  report (self, &event, wanted, TRUE);
}

void
_elbus_broker_monitor_client (ElbusBroker *self,
                              ElbusPeer   *peer,
                              const char  *name,
                              gboolean     registered,
                              guint8       result)
{
  ElbusMonitorEvent event = { 0 };

  event.kind = registered ? ELBUS_MONITOR_REG : ELBUS_MONITOR_UNREG;
  event.sender = peer;
  event.name = name;
  event.name_len = strlen (name);
  event.result = result;
  report (self, &event, G_MAXUINT64, FALSE);
}

void
_elbus_broker_monitor_forget (ElbusBroker *self,
                              ElbusPeer   *peer)
{
  for (guint i = self->monitors->len; i-- > 0;)
    {
      ElbusMonitor *monitor = g_ptr_array_index (self->monitors, i);

      if (monitor->peer != peer)
        continue;
      if (self->monitors_busy > 0)
        monitor->peer = NULL;
      else
        g_ptr_array_remove_index (self->monitors, i);
      monitors_changed (self);
    }
}

gboolean
_elbus_broker_monitor_is (ElbusBroker *self,
                          ElbusPeer   *peer)
{
  for (guint i = 0; i < self->monitors->len; i++)
    if (((ElbusMonitor *) g_ptr_array_index (self->monitors, i))->peer == peer)
      return TRUE;
  return FALSE;
}

/* monitor.start */

/* A string or an array of strings; NULL with @error otherwise. */
static GStrv
parse_masks (GVariant    *value,
             const char  *key,
             GError     **error)
{
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();
  GVariantIter iter;
  GVariant *child;

  if (g_variant_is_of_type (value, G_VARIANT_TYPE_STRING))
    {
      g_strv_builder_add (builder, g_variant_get_string (value, NULL));
      return g_strv_builder_end (builder);
    }
  if (!g_variant_is_of_type (value, G_VARIANT_TYPE ("av")) &&
      !g_variant_is_of_type (value, G_VARIANT_TYPE_STRING_ARRAY))
    goto invalid;

  g_variant_iter_init (&iter, value);
  while ((child = g_variant_iter_next_value (&iter)) != NULL)
    {
      g_autoptr(GVariant) item = child;

      if (g_variant_is_of_type (item, G_VARIANT_TYPE_VARIANT))
        {
          g_autoptr(GVariant) inner = g_variant_get_variant (item);

          if (!g_variant_is_of_type (inner, G_VARIANT_TYPE_STRING))
            goto invalid;
          g_strv_builder_add (builder, g_variant_get_string (inner, NULL));
        }
      else
        g_strv_builder_add (builder, g_variant_get_string (item, NULL));
    }
  return g_strv_builder_end (builder);

invalid:
  g_set_error (error, ELBUS_RPC_ERROR, ELBUS_RPC_ERROR_INVALID_PARAMS,
               "\"%s\" must be a string or an array of strings", key);
  return NULL;
}

static gboolean
parse_kinds (GStrv    names,
             guint   *kinds,
             GError **error)
{
  *kinds = 0;
  for (guint i = 0; names[i] != NULL; i++)
    {
      guint k;

      for (k = 0; k < G_N_ELEMENTS (kind_names); k++)
        if (g_str_equal (names[i], kind_names[k]))
          break;
      if (k == G_N_ELEMENTS (kind_names))
        {
          g_set_error (error, ELBUS_RPC_ERROR, ELBUS_RPC_ERROR_INVALID_PARAMS,
                       "unknown kind \"%s\" (message, broadcast, publish, subscribe, "
                       "unsubscribe, reg, unreg)", names[i]);
          return FALSE;
        }
      *kinds |= 1u << k;
    }
  return TRUE;
}

static gboolean
parse_unsigned (GVariant *value,
                gsize    *out)
{
  if (g_variant_is_of_type (value, G_VARIANT_TYPE_UINT64))
    *out = (gsize) MIN (g_variant_get_uint64 (value), G_MAXSIZE);
  else if (g_variant_is_of_type (value, G_VARIANT_TYPE_INT64) && g_variant_get_int64 (value) >= 0)
    *out = (gsize) g_variant_get_int64 (value);
  else
    return FALSE;
  return TRUE;
}

/* @params: MessagePack bytes, empty or a map of filters. */
gboolean
_elbus_broker_monitor_start (ElbusBroker  *self,
                             ElbusPeer    *peer,
                             GBytes       *params,
                             GError      **error)
{
  g_autoptr(ElbusMonitor) monitor = g_new0 (ElbusMonitor, 1);
  g_autoptr(GVariant) filters = NULL;
  GVariantIter iter;
  const char *key;
  GVariant *value;

  monitor->kinds = (1u << G_N_ELEMENTS (kind_names)) - 1;
  monitor->max_payload = G_MAXSIZE;

  if (g_bytes_get_size (params) > 0)
    {
      g_autoptr(GError) local_error = NULL;

      filters = elbus_msgpack_decode (params, &local_error);
      if (filters == NULL)
        {
          g_set_error (error, ELBUS_RPC_ERROR, ELBUS_RPC_ERROR_PARSE,
                       "the parameters are not MessagePack: %s", local_error->message);
          return FALSE;
        }
      if (!g_variant_is_of_type (filters, G_VARIANT_TYPE_VARDICT))
        {
          g_set_error_literal (error, ELBUS_RPC_ERROR, ELBUS_RPC_ERROR_INVALID_PARAMS,
                               "the parameters must be a map of filters");
          return FALSE;
        }

      g_variant_iter_init (&iter, filters);
      while (g_variant_iter_loop (&iter, "{&sv}", &key, &value))
        {
          g_auto(GStrv) masks = NULL;

          if (g_str_equal (key, "max_payload"))
            {
              if (!parse_unsigned (value, &monitor->max_payload))
                {
                  g_set_error_literal (error, ELBUS_RPC_ERROR, ELBUS_RPC_ERROR_INVALID_PARAMS,
                                       "\"max_payload\" must be an unsigned integer");
                  g_variant_unref (value);
                  return FALSE;
                }
              continue;
            }

          if (!g_str_equal (key, "sender") && !g_str_equal (key, "target") &&
              !g_str_equal (key, "topic") && !g_str_equal (key, "kinds"))
            {
              g_set_error (error, ELBUS_RPC_ERROR, ELBUS_RPC_ERROR_INVALID_PARAMS,
                           "unknown filter \"%s\" (sender, target, topic, kinds, max_payload)",
                           key);
              g_variant_unref (value);
              return FALSE;
            }

          masks = parse_masks (value, key, error);
          if (masks == NULL ||
              (g_str_equal (key, "kinds") && !parse_kinds (masks, &monitor->kinds, error)))
            {
              g_variant_unref (value);
              return FALSE;
            }

          if (g_str_equal (key, "sender"))
            monitor->senders = g_steal_pointer (&masks);
          else if (g_str_equal (key, "target"))
            monitor->targets = g_steal_pointer (&masks);
          else if (g_str_equal (key, "topic"))
            monitor->topics = g_steal_pointer (&masks);
        }
    }

  /* a second start replaces the filters */
  _elbus_broker_monitor_forget (self, peer);
  monitor->peer = peer;
  g_ptr_array_add (self->monitors, g_steal_pointer (&monitor));
  monitors_changed (self);
  g_info (_("client %s: monitoring"), peer->name);

  return TRUE;
}

void
_elbus_broker_monitor_stop (ElbusBroker *self,
                            ElbusPeer   *peer)
{
  _elbus_broker_monitor_forget (self, peer);
}
