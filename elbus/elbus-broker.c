/* SPDX-License-Identifier: MIT */
/* The ElbusBroker object: socket listeners and accepting, the client
 * registry, routing, flushing, keep-alive and timeouts. The peers and the
 * dispatcher below reach it through broker->ops (ElbusBrokerOps). */
#define _GNU_SOURCE   /* accept4() */
#include "config.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <gio/gunixsocketaddress.h>

#include "elbus-broker-private.h"
#include "elbus-client-private.h"
#include "elbus-error.h"
#include "elbus-i18n-private.h"
#include "elbus-msgpack.h"

/**
 * ElbusBroker:
 *
 * An elbus broker: it accepts clients on UNIX sockets and TCP ports and
 * routes their messages, broadcasts and publications (the elbus wire
 * protocol, version 1), byte-compatible with the original elbus broker.
 *
 * A broker is bound to the thread-default [struct@GLib.MainContext] of the
 * thread that creates it; it does all its work, and emits its signals, from
 * that context, which must be running for the broker to serve.
 *
 * ```c
 * g_autoptr(ElbusBroker) broker = elbus_broker_new ();
 * g_autoptr(GError) error = NULL;
 *
 * if (!elbus_broker_listen (broker, "/tmp/elbus.sock", &error) ||
 *     !elbus_broker_listen (broker, "127.0.0.1:7777", &error))
 *   g_error ("%s", error->message);
 * g_main_loop_run (loop);
 * ```
 *
 * Slow clients never stall the broker: each has a queue of at most
 * [property@Elbus.Broker:queue-size] frames, and a client whose queue would
 * overflow, or whose socket takes no data for
 * [property@Elbus.Broker:timeout], is disconnected.
 *
 * Since: 1.0
 */

typedef struct {
  ElbusBroker     *broker;       /* (unowned) */
  GSocket         *socket;       /* (owned) */
  ElbusDispatchFile file;        /* on the broker's epoll */
  char            *bind_string;  /* (owned): as configured */
  char            *unix_path;    /* (owned) (nullable): removed on close */
  ElbusClientKind  kind;
} ElbusListener;

struct _ElbusFlushSource {
  GSource      source;
  ElbusBroker *broker;           /* (unowned) */
};

enum {
  PROP_0,
  PROP_TIMEOUT,
  PROP_QUEUE_SIZE,
  PROP_BUF_SIZE,
  PROP_BUF_TTL,
  PROP_MAX_FRAME_SIZE,
  PROP_MAX_QUEUE_BYTES,
  PROP_MAX_CLIENTS,
  PROP_MAX_SUBSCRIPTIONS,
  PROP_HANDSHAKE_TIMEOUT,
  PROP_FORCE_REGISTER,
  PROP_TLS_CERTIFICATE,
  N_PROPS
};

enum {
  SIGNAL_CLIENT_REGISTERED,
  SIGNAL_CLIENT_UNREGISTERED,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (ElbusBroker, elbus_broker, G_TYPE_OBJECT)

static void restart_sweep (ElbusBroker *self);

/* flushing */

/* Flushes the peers dirty now; ones made dirty meanwhile (an in-process
 * client answering, say) wait for the next pass, so that a handler that
 * keeps sending cannot hold the loop. Returns whether any are left. */
gboolean
_elbus_broker_flush_dirty (ElbusBroker *self)
{
  guint n = self->dirty.length;
  GList *link;

  self->flush_now = FALSE;
  while (n-- > 0 && (link = self->dirty.head) != NULL)
    _elbus_peer_flush (link->data);   /* unlinks it */

  return self->dirty.length > 0;
}

/* Called at the end of every peer dispatch: real-time frames and acks go
 * out now, in the dispatch that produced them; others when they have
 * waited buf_ttl, or before the loop sleeps (flush_prepare). */
void
_elbus_broker_end_dispatch (ElbusBroker *self)
{
  if (self->dirty.length == 0)
    {
      self->flush_now = FALSE;
      return;
    }

  if (self->flush_now ||
      g_get_monotonic_time () - self->dirty_since >= (gint64) self->buf_ttl)
    _elbus_broker_flush_dirty (self);
}

static void
empty_graveyard (ElbusBroker *self)
{
  while (self->graveyard->len > 0)
    _elbus_peer_unref (g_ptr_array_steal_index_fast (self->graveyard,
                                                     self->graveyard->len - 1));
}

static gboolean
flush_prepare (GSource *source,
               int     *timeout)
{
  ElbusBroker *self = ((struct _ElbusFlushSource *) source)->broker;

  /* the loop is about to sleep: nothing may wait past this point, and
   * what the flush itself made dirty keeps the loop from sleeping; so do
   * frames it handed to a same-thread in-process client (they ran its
   * handlers, outside any dispatch: whoever iterates the loop for them
   * must get control back, not sleep) */
  *timeout = -1;
  self->local_delivered = FALSE;
  if (self->dirty.length > 0 && _elbus_broker_flush_dirty (self))
    *timeout = 0;
  if (self->local_delivered)
    {
      self->local_delivered = FALSE;
      *timeout = 0;
    }
  if (self->graveyard->len > 0)
    empty_graveyard (self);

  return FALSE;
}

static gboolean
flush_dispatch (GSource     *source,
                GSourceFunc  callback,
                gpointer     user_data)
{
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs flush_source_funcs = {
  .prepare = flush_prepare,
  .dispatch = flush_dispatch,
};

/* The kind as client.list and the logs name it. */
const char *
_elbus_client_kind_name (ElbusClientKind kind)
{
  switch (kind)
    {
    case ELBUS_CLIENT_KIND_INTERNAL:
      return "internal";
    case ELBUS_CLIENT_KIND_TCP:
      return "tcp";
    case ELBUS_CLIENT_KIND_WEBSOCKET:
      return "websocket";
    case ELBUS_CLIENT_KIND_LOCAL_IPC:
    default:
      return "local_ipc";
    }
}

/* Connections, registered or in their handshake. */
static guint
connection_count (ElbusBroker *self)
{
  return g_hash_table_size (self->clients) + g_hash_table_size (self->pending);
}

/* announcements */

static void
send_announcements (ElbusBroker *self)
{
  /* taken first: publishing routes, and routing ends by calling us */
  g_autoptr(GPtrArray) pending = g_steal_pointer (&self->announcements);

  self->announcements = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < pending->len && self->core != NULL; i++)
    {
      const char *entry = g_ptr_array_index (pending, i);

      self->core_hooks->announce_client (self->core, entry + 1, entry[0] == '+');
    }
}

/* Primaries are announced on .broker/info when .broker runs. Routing is
 * not reentrant: while it runs, the announcement waits for its end. */
static void
announce_client (ElbusBroker *self,
                 ElbusPeer   *peer,
                 gboolean     registered)
{
  if (self->core == NULL || peer->is_secondary || self->closed)
    return;

  g_ptr_array_add (self->announcements,
                   g_strconcat (registered ? "+" : "-", peer->name, NULL));
  if (self->routing == 0)
    send_announcements (self);
}

/* registry */

static void
remove_secondary (ElbusPeer *primary,
                  ElbusPeer *secondary)
{
  if (primary->secondaries != NULL)
    g_ptr_array_remove_fast (primary->secondaries, secondary);
}

/* Monitors hear of refused registrations too. Frees @key. */
static guint8
refuse_registration (ElbusBroker *self,
                     ElbusPeer   *peer,
                     char        *key,
                     guint8       result)
{
  if (G_UNLIKELY (self->monitors->len > 0))
    _elbus_broker_monitor_client (self, peer, key, TRUE, result);
  g_ref_string_release (key);
  return result;
}

/* A secondary is under its primary's entry: the one in force when the
 * primary registered, else the table's. */
static ElbusClientPolicy *
find_policy (ElbusBroker *self,
             const char  *name,
             ElbusPeer   *primary)
{
  gsize primary_len;

  if (primary != NULL && primary->policy != NULL)
    return primary->policy;
  if (_elbus_codec_split_secondary (name, strlen (name), &primary_len))
    {
      g_autofree char *primary_name = g_strndup (name, primary_len);

      return g_hash_table_lookup (self->policy, primary_name);
    }
  return g_hash_table_lookup (self->policy, name);
}

/* The connection's own checks: TCP (and WebSocket) source network, UNIX
 * credentials. */
static gboolean
policy_admits (ElbusClientPolicy *entry,
               ElbusPeer         *peer,
               const char        *name)
{
  if ((peer->kind == ELBUS_CLIENT_KIND_TCP || peer->kind == ELBUS_CLIENT_KIND_WEBSOCKET) &&
      (peer->address == NULL || !elbus_client_policy_allows_address (entry, peer->address)))
    {
      g_message (_("client %s: source %s is not allowed by the policy"), name,
                 peer->source_addr != NULL ? peer->source_addr : _("(unknown)"));
      return FALSE;
    }
  if (!elbus_client_policy_allows_credentials (entry, peer->uid, peer->gid))
    {
      g_message (_("client %s: uid %lld, gid %lld not allowed by the policy"), name,
                 (long long) peer->uid, (long long) peer->gid);
      return FALSE;
    }
  return TRUE;
}

guint8
_elbus_broker_register (ElbusBroker *self,
                        ElbusPeer   *peer,
                        const char  *name,
                        gsize        name_len)
{
  ElbusPeer *primary = NULL;
  ElbusPeer *old;
  gsize primary_len;
  char *key;

  if (self->closed)
    return ELBUS_ERROR_OTHER;

  key = g_ref_string_new_len (name, name_len);

  if (_elbus_codec_split_secondary (key, name_len, &primary_len))
    {
      g_autofree char *primary_name = g_strndup (key, primary_len);

      primary = g_hash_table_lookup (self->clients, primary_name);
      if (primary == NULL || primary->primary != NULL)
        return refuse_registration (self, peer, key, ELBUS_ERROR_NOT_REGISTERED);
    }

  old = g_hash_table_lookup (self->clients, key);
  /* force-register replaces a client, never the broker's own */
  if (old != NULL && (!self->force_register || old->kind == ELBUS_CLIENT_KIND_INTERNAL))
    return refuse_registration (self, peer, key, ELBUS_ERROR_BUSY);

  if (G_UNLIKELY (self->policy != NULL) && peer->kind != ELBUS_CLIENT_KIND_INTERNAL)
    {
      ElbusClientPolicy *entry = find_policy (self, key, primary);

      if (entry == NULL || !policy_admits (entry, peer, key))
        return refuse_registration (self, peer, key, ELBUS_ERROR_ACCESS);
      g_set_object (&peer->policy, entry);
    }

  /* the old connection goes first, its name (and its secondaries) with it */
  if (old != NULL)
    _elbus_peer_close (old, G_LOG_LEVEL_MESSAGE,
                       "replaced by a new registration of its name (force-register)");

  peer->name = key;
  peer->name_len = name_len;
  peer->state = ELBUS_PEER_REGISTERED;
  peer->primary = primary;
  peer->is_secondary = primary != NULL;
  if (primary != NULL)
    {
      if (primary->secondaries == NULL)
        primary->secondaries = g_ptr_array_new ();
      g_ptr_array_add (primary->secondaries, peer);
    }

  /* the pending set's reference moves to the registry */
  g_hash_table_steal (self->pending, peer);
  g_hash_table_insert (self->clients, peer->name, peer);
  _elbus_name_tree_insert (self->names, peer->name, name_len, peer);
  _elbus_topic_tree_subscribe (self->topics, ".broker/warn", strlen (".broker/warn"), peer);
  if (peer->local == NULL)
    _elbus_deadline_start (peer, ELBUS_DEADLINE_PING, g_get_monotonic_time ());

  /* monitors hear of it before .broker's announcement, which the client
   * hears of before its 01 */
  if (G_UNLIKELY (self->monitors->len > 0))
    _elbus_broker_monitor_client (self, peer, peer->name, TRUE, ELBUS_RESULT_OK);
  announce_client (self, peer, TRUE);

  g_info (_("client %s: registered (%s%s%s%s)"), peer->name, _elbus_client_kind_name (peer->kind),
          peer->source_addr != NULL ? " " : "",
          peer->source_addr != NULL ? peer->source_addr : "",
          primary != NULL ? _(", secondary") : "");
  g_signal_emit (self, signals[SIGNAL_CLIENT_REGISTERED], 0, peer->name);

  return ELBUS_RESULT_OK;
}

/* Called by _elbus_peer_close(): the peer leaves every table, and the
 * table's reference waits in the graveyard until the loop is idle, so
 * pointers taken earlier in this dispatch stay valid. */
void
_elbus_broker_forget_peer (ElbusBroker *self,
                           ElbusPeer   *peer)
{
  if (peer->state != ELBUS_PEER_REGISTERED)
    {
      if (g_hash_table_steal (self->pending, peer))
        g_ptr_array_add (self->graveyard, peer);
      return;
    }

  if (G_UNLIKELY (self->monitors->len > 0))
    {
      _elbus_broker_monitor_forget (self, peer);
      _elbus_broker_monitor_client (self, peer, peer->name, FALSE, ELBUS_RESULT_OK);
    }

  g_hash_table_steal (self->clients, peer->name);
  _elbus_name_tree_remove (self->names, peer->name, peer->name_len);
  _elbus_topic_tree_unsubscribe_all (self->topics, peer);
  if (peer->primary != NULL)
    remove_secondary (peer->primary, peer);
  g_ptr_array_add (self->graveyard, peer);

  /* a primary takes its secondaries along */
  while (peer->secondaries != NULL && peer->secondaries->len > 0)
    {
      ElbusPeer *secondary = g_ptr_array_index (peer->secondaries, peer->secondaries->len - 1);

      g_ptr_array_remove_index_fast (peer->secondaries, peer->secondaries->len - 1);
      secondary->primary = NULL;
      _elbus_peer_close (secondary, G_LOG_LEVEL_INFO, _("primary client %s disconnected"),
                         peer->name);
    }

  announce_client (self, peer, FALSE);
  g_signal_emit (self, signals[SIGNAL_CLIENT_UNREGISTERED], 0, peer->name);
}

/* routing */

static void
collect_recipient_cb (gpointer value,
                      gpointer user_data)
{
  ElbusBroker *self = user_data;
  ElbusPeer *peer = value;

  /* a subscriber whose masks match twice is served once */
  if (peer->mark == self->mark_gen)
    return;
  peer->mark = self->mark_gen;
  g_ptr_array_add (self->scratch, peer);
}

/* Queues one delivery; returns FALSE when the recipient had to be dropped
 * because its queue is full. */
static gboolean
deliver (ElbusBroker  *self,
         ElbusPeer    *recipient,
         ElbusPeer    *sender,
         guint8        kind,
         GBytes       *head,
         const guint8 *payload,
         gsize         payload_len,
         ElbusChunk   *chunk,
         gboolean      realtime)
{
  ElbusOutEntry entry;
  gsize sender_len = sender->name_len;
  gsize head_len = 0;

  if (G_UNLIKELY (recipient->closed))
    return FALSE;

  entry.chunk = payload_len > 0 ? _elbus_chunk_ref (chunk) : NULL;
  entry.bytes = NULL;
  entry.payload = payload;
  entry.payload_len = payload_len;
  if (G_UNLIKELY (head != NULL))
    {
      /* sent as a prefix of the payload (or as all of it), not joined */
      entry.bytes = g_bytes_ref (head);
      if (payload_len > 0)
        head_len = g_bytes_get_size (head);
      else
        {
          gsize len;

          entry.payload = g_bytes_get_data (head, &len);
          entry.payload_len = len;
        }
    }
  _elbus_codec_encode_broker_header (entry.hdr, kind,
                                     sender_len + 1 + head_len + entry.payload_len, realtime);
  _elbus_out_entry_set_name (&entry, ELBUS_BROKER_HEADER_LEN, sender->name, sender_len);

  if (G_LIKELY (_elbus_peer_enqueue (recipient, &entry, realtime)))
    return TRUE;

  _elbus_peer_drop_slow (recipient);
  return FALSE;
}

/* Returns how many recipients the frame was queued to. */
static guint
deliver_to_scratch (ElbusBroker  *self,
                    ElbusPeer    *sender,
                    guint8        kind,
                    GBytes       *head,
                    const guint8 *payload,
                    gsize         payload_len,
                    ElbusChunk   *chunk,
                    gboolean      realtime)
{
  guint delivered = 0;

  for (guint i = 0; i < self->scratch->len; i++)
    delivered += deliver (self, g_ptr_array_index (self->scratch, i), sender, kind,
                          head, payload, payload_len, chunk, realtime);
  g_ptr_array_set_size (self->scratch, 0);

  return delivered;
}

/* Logs a limit the first time @peer hits it. */
static void
log_limit (ElbusPeer      *peer,
           ElbusPeerLimit  limit,
           guint           value)
{
  g_autofree char *who = NULL;

  if (peer->limits_logged & limit)
    return;
  peer->limits_logged |= limit;
  who = g_strdup_printf ("%s (%s%s%s)", peer->name, _elbus_client_kind_name (peer->kind),
                         peer->source_addr != NULL ? " " : "",
                         peer->source_addr != NULL ? peer->source_addr : "");
  if (limit == ELBUS_PEER_LIMIT_MASK_LENGTH)
    g_message (_("client %s: mask length limit of %u reached; refusing more"), who, value);
  else
    g_message (_("client %s: subscription limit of %u reached; refusing more"), who, value);
}

/* Returns the result to ack: a subscription the policy refuses, or one
 * beyond max-subscriptions, is not made, the others in the same frame are,
 * and the ack says ELBUS_ERROR_ACCESS once (ELBUS_ERROR_DATA for a mask
 * longer than ELBUS_MAX_NAME_LENGTH). */
static guint8
subscribe_masks (ElbusBroker            *self,
                 ElbusPeer              *peer,
                 const ElbusClientFrame *frame)
{
  guint8 result = ELBUS_RESULT_OK;
  gsize pos = 0;
  const char *mask;
  gsize mask_len;

  while (_elbus_codec_next_mask (frame->body, frame->body_len, &pos, &mask, &mask_len))
    {
      if (frame->op == ELBUS_OP_UNSUBSCRIBE)
        {
          /* .broker/warn, subscribed at registration, is not counted */
          if (_elbus_topic_tree_unsubscribe (self->topics, mask, mask_len, peer) &&
              peer->subscriptions > 0)
            peer->subscriptions--;
        }
      else if (G_UNLIKELY (mask_len > ELBUS_MAX_NAME_LENGTH))
        {
          /* a trie node per level: a huge mask would cost a lot */
          log_limit (peer, ELBUS_PEER_LIMIT_MASK_LENGTH, ELBUS_MAX_NAME_LENGTH);
          result = ELBUS_ERROR_DATA;
        }
      else if (G_UNLIKELY (peer->policy != NULL) &&
               !_elbus_client_policy_allows_len (peer->policy, ELBUS_POLICY_OP_SUBSCRIBE,
                                                 mask, mask_len))
        result = ELBUS_ERROR_ACCESS;
      else if (!_elbus_topic_tree_subscribe (self->topics, mask, mask_len, peer))
        ;   /* held already */
      else if (G_UNLIKELY (self->max_subscriptions > 0 &&
                           peer->subscriptions >= self->max_subscriptions))
        {
          /* one too many: taken back */
          _elbus_topic_tree_unsubscribe (self->topics, mask, mask_len, peer);
          log_limit (peer, ELBUS_PEER_LIMIT_SUBSCRIPTIONS, self->max_subscriptions);
          result = ELBUS_ERROR_ACCESS;
        }
      else
        peer->subscriptions++;
    }

  return result;
}

/* Messages, broadcasts and publications are allowed or refused whole;
 * subscriptions mask by mask (subscribe_masks). */
static gboolean
policy_allows_frame (ElbusClientPolicy      *policy,
                     const ElbusClientFrame *frame)
{
  ElbusPolicyOp op;

  switch (frame->op)
    {
    case ELBUS_OP_MESSAGE:
      op = ELBUS_POLICY_OP_MESSAGE;
      break;
    case ELBUS_OP_BROADCAST:
      op = ELBUS_POLICY_OP_BROADCAST;
      break;
    case ELBUS_OP_PUBLISH:
      op = ELBUS_POLICY_OP_PUBLISH;
      break;
    default:
      return TRUE;
    }

  return _elbus_client_policy_allows_len (policy, op, frame->target, frame->target_len);
}

void
_elbus_broker_route (ElbusBroker            *self,
                     ElbusPeer              *peer,
                     const ElbusClientFrame *frame,
                     ElbusChunk             *chunk)
{
  gboolean realtime = ELBUS_QOS_IS_REALTIME (frame->qos);
  guint8 result = ELBUS_RESULT_OK;
  ElbusPeer *target = NULL;
  guint recipients = 0;

  self->routing++;

  /* the one branch the policy costs when none applies to this client */
  if (G_UNLIKELY (peer->policy != NULL) && !policy_allows_frame (peer->policy, frame))
    {
      result = ELBUS_ERROR_ACCESS;
      goto done;
    }

  switch (frame->op)
    {
    case ELBUS_OP_MESSAGE:
      target = g_hash_table_lookup (self->clients, frame->target);
      if (target == NULL)
        result = ELBUS_ERROR_NOT_REGISTERED;
      else if (deliver (self, target, peer, ELBUS_KIND_MESSAGE, frame->head,
                        frame->payload, frame->payload_len, chunk, realtime))
        recipients = 1;
      else
        result = ELBUS_ERROR_NOT_DELIVERED;
      break;

    case ELBUS_OP_BROADCAST:
      if (!_elbus_broadcast_mask_has_wildcards (frame->target, frame->target_len))
        {
          ElbusPeer *named = g_hash_table_lookup (self->clients, frame->target);

          if (named != NULL)
            recipients = deliver (self, named, peer, ELBUS_KIND_BROADCAST, frame->head,
                                  frame->payload, frame->payload_len, chunk, realtime);
          break;
        }
      self->mark_gen++;
      _elbus_name_tree_match (self->names, frame->target, frame->target_len,
                              collect_recipient_cb, self);
      recipients = deliver_to_scratch (self, peer, ELBUS_KIND_BROADCAST, frame->head,
                                       frame->payload, frame->payload_len, chunk, realtime);
      break;

    case ELBUS_OP_PUBLISH:
      self->mark_gen++;
      _elbus_topic_tree_match (self->topics, frame->target, frame->target_len,
                               collect_recipient_cb, self);
      /* a publication carries TOPIC 00 PAYLOAD on, as it came in */
      g_assert (frame->head == NULL);
      recipients = deliver_to_scratch (self, peer, ELBUS_KIND_PUBLISH, NULL,
                                       (const guint8 *) frame->target,
                                       frame->target_len + 1 + frame->payload_len,
                                       chunk, realtime);
      break;

    case ELBUS_OP_SUBSCRIBE:
    case ELBUS_OP_UNSUBSCRIBE:
      result = subscribe_masks (self, peer, frame);
      break;

    case ELBUS_OP_NOP:
    default:
      /* a ping, or a body with op bits 0: read and ignored */
      self->routing--;
      return;
    }

done:
  /* the one branch monitoring costs when nobody monitors */
  if (G_UNLIKELY (self->monitors->len > 0))
    _elbus_broker_monitor_frame (self, peer, frame, chunk, target, recipients, result);

  if (ELBUS_QOS_NEEDS_ACK (frame->qos) && !peer->closed)
    _elbus_peer_enqueue_ack (peer, frame->op_id, result);

  if (--self->routing == 0 && self->announcements->len > 0)
    send_announcements (self);
}

/* keep-alive and timeouts */

static gint64
timeout_us (ElbusBroker *self)
{
  return (gint64) (self->timeout * G_USEC_PER_SEC);
}

/* a quarter of the timeout: pings and expiries land within 25% of it */
static gint64
sweep_interval (ElbusBroker *self)
{
  return MAX (timeout_us (self) / 4, 1000);
}

/* Freed memory goes back to the system: after a spike (thousands of
 * connections, a slow consumer's queue of referenced chunks, huge frames)
 * glibc otherwise keeps the heap it grew to, freed but resident. Checked
 * at each sweep: when 2 MiB or more are free, a trim, at most one every
 * two seconds (free chunks stay counted as free after a trim, so the
 * amount alone would trim at every sweep; a trim walks the free lists). */
#define TRIM_FREE_BYTES (2 * 1024 * 1024)
#define TRIM_INTERVAL   (2 * G_USEC_PER_SEC)

static void
trim_memory (ElbusBroker *self,
             gint64       now)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
  if (now - self->last_trim < TRIM_INTERVAL)
    return;
  if (mallinfo2 ().fordblks >= TRIM_FREE_BYTES)
    {
      malloc_trim (0);
      self->last_trim = now;
    }
#endif
}

/* The broker's one timer (elbus-broker-dispatch.c) runs this at every
 * sweep, a quarter of the timeout apart, and when a handshake deadline is
 * due. Each kind of deadline is a list ordered by its start: expiring
 * takes from the head and stops at the first peer not yet due, so a sweep
 * costs what has expired, not the number of connections. */
static gboolean
sweep_cb (gpointer user_data)
{
  ElbusBroker *self = user_data;
  gint64 now = g_get_monotonic_time ();
  ElbusPeer *peer;
  GList *link;

  while ((peer = _elbus_deadline_first_due (self, ELBUS_DEADLINE_HANDSHAKE, now)) != NULL)
    _elbus_peer_close (peer, G_LOG_LEVEL_MESSAGE, "handshake timed out");

  if (now < self->next_sweep)
    return G_SOURCE_CONTINUE;
  self->next_sweep = now + sweep_interval (self);

  while ((peer = _elbus_deadline_first_due (self, ELBUS_DEADLINE_STALL, now)) != NULL)
    {
      peer->abort = TRUE;
      _elbus_peer_close (peer, G_LOG_LEVEL_MESSAGE, _("write timed out after %.3g s"),
                         self->timeout);
    }

  while ((peer = _elbus_deadline_first_due (self, ELBUS_DEADLINE_PARTIAL, now)) != NULL)
    _elbus_peer_close (peer, G_LOG_LEVEL_MESSAGE,
                       _("incomplete frame timed out after %.3g s (%lu of %lu bytes)"),
                       self->timeout, (gulong) (peer->rb.end - peer->rb.start),
                       (gulong) peer->rb.needed);

  /* keep-alive: a ping to each client a timeout after its last one; one
   * with output waiting keeps its place and is pinged at a later sweep
   * (pinging moves a peer to the tail, behind the peers not yet due) */
  link = self->deadlines[ELBUS_DEADLINE_PING].head;
  while (link != NULL &&
         now - ((ElbusPeer *) link->data)->since[ELBUS_DEADLINE_PING] >= timeout_us (self))
    {
      GList *next = link->next;

      peer = link->data;
      if (peer->out.len == 0)
        _elbus_peer_enqueue_ping (peer);
      link = next;
    }

  _elbus_broker_flush_dirty (self);
  trim_memory (self, now);
  _elbus_peer_log_window_roll (self, now);

  return G_SOURCE_CONTINUE;
}

static void
restart_sweep (ElbusBroker *self)
{
  if (self->closed)
    return;
  self->next_sweep = g_get_monotonic_time () + sweep_interval (self);
  _elbus_dispatch_timer_start (self, sweep_cb);
}

/* listeners */

static void
listener_free (ElbusListener *listener)
{
  _elbus_dispatch_file_remove (&listener->file);
  g_socket_close (listener->socket, NULL);
  g_object_unref (listener->socket);
  if (listener->unix_path != NULL)
    g_unlink (listener->unix_path);
  g_free (listener->unix_path);
  g_free (listener->bind_string);
  g_free (listener);
}

/* Whether max-clients leaves room for one more connection. Beyond it a
 * connection is closed at once; that is logged once each time the limit
 * is reached, not once per connection. */
gboolean
_elbus_broker_may_accept (ElbusBroker *self,
                          const char  *bind_string,
                          const char  *source)
{
  if (G_LIKELY (self->max_clients == 0 || connection_count (self) < self->max_clients))
    {
      self->max_clients_logged = FALSE;
      return TRUE;
    }

  if (!self->max_clients_logged)
    {
      g_message (_("client limit of %u reached: refusing a connection on %s%s%s "
                   "(and any more until the count drops)"),
                 self->max_clients, bind_string,
                 source != NULL ? _(" from ") : "", source != NULL ? source : "");
      self->max_clients_logged = TRUE;
    }
  return FALSE;
}

/* A new connection waits in the pending set for its handshake, or in the
 * graveyard when it failed already. */
void
_elbus_broker_add_pending (ElbusBroker *self,
                           ElbusPeer   *peer)
{
  if (peer->closed)
    g_ptr_array_add (self->graveyard, peer);
  else
    g_hash_table_add (self->pending, peer);
}

/* connections accepted per turn of a listener on the ready list */
#define ACCEPT_BUDGET 64

static void
accept_dispatch (ElbusDispatchFile *file)
{
  ElbusListener *listener = (ElbusListener *) ((guint8 *) file -
                                               G_STRUCT_OFFSET (ElbusListener, file));
  ElbusBroker *self = listener->broker;

  for (guint i = 0; i < ACCEPT_BUDGET; i++)
    {
      struct sockaddr_storage addr;
      socklen_t addr_len = sizeof addr;
      ElbusPeer *peer;
      int fd;

      fd = accept4 (file->fd, (struct sockaddr *) &addr, &addr_len,
                    SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0)
        {
          switch (errno)
            {
            case EAGAIN:
#if EAGAIN != EWOULDBLOCK
            case EWOULDBLOCK:
#endif
              _elbus_dispatch_file_clear (file, EPOLLIN);
              return;

            case EINTR:
            case ECONNABORTED:
            case EPROTO:
            case EPERM:
              /* this connection is gone, not the listener */
              continue;

            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM:
              /* the backlog waits until a connection closes: a listener
               * left on the ready list would spin */
              if (!self->accept_paused)
                g_message (_("accepting on %s failed: %s"), listener->bind_string,
                           g_strerror (errno));
              self->accept_paused = TRUE;
              _elbus_dispatch_file_clear (file, EPOLLIN);
              return;

            default:
              g_message (_("accepting on %s failed: %s"), listener->bind_string, g_strerror (errno));
              _elbus_dispatch_file_clear (file, EPOLLIN);
              return;
            }
        }

      if (G_UNLIKELY (self->max_clients > 0 && connection_count (self) >= self->max_clients))
        {
          g_autofree char *source = _elbus_sockaddr_describe ((struct sockaddr *) &addr,
                                                              addr_len, NULL);

          _elbus_broker_may_accept (self, listener->bind_string, source);
          close (fd);
          continue;
        }
      self->max_clients_logged = FALSE;

      peer = _elbus_peer_new (self, fd, NULL, NULL, listener->kind, listener->bind_string,
                              (struct sockaddr *) &addr, addr_len);
      _elbus_broker_add_pending (self, peer);
    }
  /* the budget is spent: the listener stays ready for another turn */
}

/* A connection has closed: listeners paused for want of fds try again. */
void
_elbus_broker_resume_accept (ElbusBroker *self)
{
  if (G_LIKELY (!self->accept_paused))
    return;
  self->accept_paused = FALSE;
  for (guint i = 0; i < self->listeners->len; i++)
    {
      ElbusListener *listener = g_ptr_array_index (self->listeners, i);

      _elbus_dispatch_file_wake (&listener->file, EPOLLIN);
    }
}

static gboolean
add_listener (ElbusBroker  *self,
              GSocket      *socket,
              const char   *bind_string,
              const char   *unix_path,
              GError      **error)
{
  ElbusListener *listener;
  int accepting = 0;
  socklen_t optlen = sizeof accepting;

  g_socket_set_blocking (socket, FALSE);

  /* an adopted socket (socket activation) may be listening already */
  if (getsockopt (g_socket_get_fd (socket), SOL_SOCKET, SO_ACCEPTCONN, &accepting, &optlen) != 0)
    accepting = 0;
  if (!accepting)
    {
      g_socket_set_listen_backlog (socket, 1024);
      if (!g_socket_listen (socket, error))
        return FALSE;
    }

  listener = g_new0 (ElbusListener, 1);
  listener->broker = self;
  listener->socket = g_object_ref (socket);
  listener->bind_string = g_strdup (bind_string);
  listener->unix_path = g_strdup (unix_path);
  listener->kind = g_socket_get_family (socket) == G_SOCKET_FAMILY_UNIX
                   ? ELBUS_CLIENT_KIND_LOCAL_IPC : ELBUS_CLIENT_KIND_TCP;
  if (!_elbus_dispatch_file_add (&listener->file, self, g_socket_get_fd (socket), EPOLLIN,
                                 accept_dispatch))
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   _("cannot watch %s: %s"), bind_string, g_strerror (saved_errno));
      g_object_unref (listener->socket);
      g_free (listener->bind_string);
      g_free (listener->unix_path);
      g_free (listener);
      return FALSE;
    }
  /* connections waiting already (an adopted socket) are reported by
   * EPOLL_CTL_ADD itself */
  g_ptr_array_add (self->listeners, listener);

  g_info (_("listening on %s"), bind_string);

  return TRUE;
}

/* A socket file left behind by a broker that died is replaced; one that a
 * live broker answers on is not. */
static gboolean
clear_stale_socket (const char  *path,
                    GError     **error)
{
  struct stat st;
  g_autoptr(GSocket) probe = NULL;
  g_autoptr(GSocketAddress) address = NULL;

  if (lstat (path, &st) != 0)
    return TRUE;

  if (!S_ISSOCK (st.st_mode))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                   _("%s exists and is not a socket"), path);
      return FALSE;
    }

  probe = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0, error);
  if (probe == NULL)
    return FALSE;
  address = g_unix_socket_address_new (path);
  if (g_socket_connect (probe, address, NULL, NULL))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE,
                   _("another process is listening on %s"), path);
      return FALSE;
    }

  if (g_unlink (path) != 0 && errno != ENOENT)
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   _("cannot remove stale socket %s: %s"), path, g_strerror (saved_errno));
      return FALSE;
    }

  return TRUE;
}

/**
 * elbus_broker_listen_unix:
 * @self: a broker
 * @path: (type filename): the socket file to create
 *
 * Listens for clients on a UNIX stream socket at @path. A stale socket file
 * left there by a broker that is gone is replaced; a socket a live process
 * answers on is an error. The file is removed when the broker closes.
 *
 * Returns: %TRUE when listening
 *
 * Since: 1.0
 */
gboolean
elbus_broker_listen_unix (ElbusBroker  *self,
                          const char   *path,
                          GError      **error)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) address = NULL;

  g_return_val_if_fail (ELBUS_IS_BROKER (self), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!clear_stale_socket (path, error))
    return FALSE;

  socket = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0, error);
  if (socket == NULL)
    return FALSE;

  address = g_unix_socket_address_new (path);
  if (!g_socket_bind (socket, address, FALSE, error))
    return FALSE;

  if (!add_listener (self, socket, path, path, error))
    {
      g_unlink (path);
      return FALSE;
    }

  return TRUE;
}

/**
 * elbus_broker_listen_tcp:
 * @self: a broker
 * @host_port: `HOST:PORT`, e.g. `127.0.0.1:7777`, `[::1]:7777` or
 *   `0.0.0.0:7777`
 *
 * Listens for clients on a TCP port. A host name is resolved, and every
 * address it names is served (`localhost` is often both `::1` and
 * `127.0.0.1`). Accepted connections have `TCP_NODELAY` set.
 *
 * Returns: %TRUE when listening
 *
 * Since: 1.0
 */
gboolean
elbus_broker_listen_tcp (ElbusBroker  *self,
                         const char   *host_port,
                         GError      **error)
{
  g_autoptr(GSocketConnectable) connectable = NULL;
  g_autoptr(GSocketAddressEnumerator) enumerator = NULL;
  g_autoptr(GError) local_error = NULL;
  g_autoptr(GError) first_error = NULL;
  guint n_bound = 0;

  g_return_val_if_fail (ELBUS_IS_BROKER (self), FALSE);
  g_return_val_if_fail (host_port != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  connectable = g_network_address_parse (host_port, 0, &local_error);
  if (connectable == NULL || g_network_address_get_port (G_NETWORK_ADDRESS (connectable)) == 0)
    {
      /* port 0 is allowed, but only when written out */
      if (connectable == NULL || !g_str_has_suffix (host_port, ":0"))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       _("“%s” is not a HOST:PORT address"), host_port);
          return FALSE;
        }
    }

  /* "localhost" may be ::1 and 127.0.0.1: serve every address it names,
   * as clients resolve it either way */
  enumerator = g_socket_connectable_enumerate (connectable);
  for (;;)
    {
      g_autoptr(GSocketAddress) address = NULL;
      g_autoptr(GSocket) socket = NULL;
      g_autoptr(GError) bind_error = NULL;

      address = g_socket_address_enumerator_next (enumerator, NULL,
                                                  first_error == NULL ? &first_error : NULL);
      if (address == NULL)
        break;

      socket = g_socket_new (g_socket_address_get_family (address), G_SOCKET_TYPE_STREAM,
                             G_SOCKET_PROTOCOL_TCP, &bind_error);
      if (socket != NULL &&
          g_socket_bind (socket, address, TRUE, &bind_error) &&
          add_listener (self, socket, host_port, NULL, &bind_error))
        {
          n_bound++;
          continue;
        }

      if (first_error == NULL)
        first_error = g_steal_pointer (&bind_error);
    }

  if (n_bound > 0)
    return TRUE;

  if (first_error != NULL)
    g_propagate_error (error, g_steal_pointer (&first_error));
  else
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                 _("cannot resolve “%s”"), host_port);
  return FALSE;
}

/**
 * elbus_broker_add_socket:
 * @self: a broker
 * @socket: a bound stream socket (UNIX or TCP), listening or not
 * @bind_string: (nullable): how to name this listener in client lists;
 *   %NULL for the socket's local address
 *
 * Serves clients on a socket made elsewhere, e.g. one passed by systemd
 * socket activation. The broker takes a reference to @socket and closes it
 * when the broker closes, but removes no file.
 *
 * Returns: %TRUE when listening
 *
 * Since: 1.0
 */
gboolean
elbus_broker_add_socket (ElbusBroker  *self,
                         GSocket      *socket,
                         const char   *bind_string,
                         GError      **error)
{
  g_autofree char *name = NULL;

  g_return_val_if_fail (ELBUS_IS_BROKER (self), FALSE);
  g_return_val_if_fail (G_IS_SOCKET (socket), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (bind_string == NULL)
    {
      g_autoptr(GSocketAddress) local = g_socket_get_local_address (socket, error);

      if (local == NULL)
        return FALSE;
      if (G_IS_UNIX_SOCKET_ADDRESS (local))
        name = g_strdup (g_unix_socket_address_get_path (G_UNIX_SOCKET_ADDRESS (local)));
      else
        name = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (local));
      bind_string = name;
    }

  return add_listener (self, socket, bind_string, NULL, error);
}

static void
collect_value (gpointer key,
               gpointer value,
               gpointer user_data)
{
  g_ptr_array_add (user_data, value);
}

static void
collect_key (gpointer key,
             gpointer value,
             gpointer user_data)
{
  g_ptr_array_add (user_data, key);
}

/**
 * elbus_broker_close:
 * @self: a broker
 *
 * Stops listening, removes the UNIX socket files the broker created and
 * disconnects every client. The broker cannot be used to listen again.
 * Disposing of the broker closes it too.
 *
 * Since: 1.0
 */
void
elbus_broker_close (ElbusBroker *self)
{
  g_autoptr(GPtrArray) peers = NULL;

  g_return_if_fail (ELBUS_IS_BROKER (self));

  if (self->closed)
    return;
  self->closed = TRUE;

  g_ptr_array_set_size (self->listeners, 0);
  if (self->ws_listeners != NULL)
    g_ptr_array_set_size (self->ws_listeners, 0);
  if (self->fifos != NULL)
    g_ptr_array_set_size (self->fifos, 0);

  if (self->core != NULL)
    self->core_hooks->announce_shutdown (self->core);

  /* what is queued still goes out, as far as the sockets take it */
  while (_elbus_broker_flush_dirty (self))
    ;

  peers = g_ptr_array_new ();
  g_hash_table_foreach (self->clients, collect_value, peers);
  g_hash_table_foreach (self->pending, collect_key, peers);
  for (guint i = 0; i < peers->len; i++)
    _elbus_peer_close (g_ptr_array_index (peers, i), G_LOG_LEVEL_INFO, "broker closing");

  if (self->core != NULL)
    self->core_hooks->free (g_steal_pointer (&self->core));
  empty_graveyard (self);
  _elbus_dispatch_clear (self);
}

/* GObject */

static void
elbus_broker_dispose (GObject *object)
{
  ElbusBroker *self = ELBUS_BROKER (object);

  elbus_broker_close (self);
  if (self->flush_source != NULL)
    {
      g_source_destroy (self->flush_source);
      g_clear_pointer (&self->flush_source, g_source_unref);
    }

  G_OBJECT_CLASS (elbus_broker_parent_class)->dispose (object);
}

static void
elbus_broker_finalize (GObject *object)
{
  ElbusBroker *self = ELBUS_BROKER (object);

  g_ptr_array_unref (self->listeners);
  g_clear_pointer (&self->ws_listeners, g_ptr_array_unref);
  g_hash_table_unref (self->clients);
  g_hash_table_unref (self->pending);
  _elbus_name_tree_free (self->names);
  _elbus_topic_tree_free (self->topics);
  g_ptr_array_unref (self->graveyard);
  g_ptr_array_unref (self->scratch);
  g_ptr_array_unref (self->announcements);
  g_clear_pointer (&self->fifos, g_ptr_array_unref);
  g_ptr_array_unref (self->monitors);
  g_clear_pointer (&self->policy, g_hash_table_unref);
  g_clear_object (&self->tls_certificate);
  g_main_context_unref (self->context);

  G_OBJECT_CLASS (elbus_broker_parent_class)->finalize (object);
}

static void
elbus_broker_get_property (GObject    *object,
                           guint       prop_id,
                           GValue     *value,
                           GParamSpec *pspec)
{
  ElbusBroker *self = ELBUS_BROKER (object);

  switch (prop_id)
    {
    case PROP_TIMEOUT:
      g_value_set_double (value, self->timeout);
      break;
    case PROP_QUEUE_SIZE:
      g_value_set_uint (value, self->queue_size);
      break;
    case PROP_BUF_SIZE:
      g_value_set_uint (value, self->buf_size);
      break;
    case PROP_BUF_TTL:
      g_value_set_uint (value, self->buf_ttl);
      break;
    case PROP_MAX_FRAME_SIZE:
      g_value_set_uint (value, self->max_frame_size);
      break;
    case PROP_MAX_QUEUE_BYTES:
      g_value_set_uint (value, self->max_queue_bytes);
      break;
    case PROP_MAX_CLIENTS:
      g_value_set_uint (value, self->max_clients);
      break;
    case PROP_MAX_SUBSCRIPTIONS:
      g_value_set_uint (value, self->max_subscriptions);
      break;
    case PROP_HANDSHAKE_TIMEOUT:
      g_value_set_double (value, self->handshake_timeout);
      break;
    case PROP_FORCE_REGISTER:
      g_value_set_boolean (value, self->force_register);
      break;
    case PROP_TLS_CERTIFICATE:
      g_value_set_object (value, self->tls_certificate);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
elbus_broker_set_property (GObject      *object,
                           guint         prop_id,
                           const GValue *value,
                           GParamSpec   *pspec)
{
  ElbusBroker *self = ELBUS_BROKER (object);

  switch (prop_id)
    {
    case PROP_TIMEOUT:
      elbus_broker_set_timeout (self, g_value_get_double (value));
      break;
    case PROP_QUEUE_SIZE:
      elbus_broker_set_queue_size (self, g_value_get_uint (value));
      break;
    case PROP_BUF_SIZE:
      elbus_broker_set_buf_size (self, g_value_get_uint (value));
      break;
    case PROP_BUF_TTL:
      elbus_broker_set_buf_ttl (self, g_value_get_uint (value));
      break;
    case PROP_MAX_FRAME_SIZE:
      elbus_broker_set_max_frame_size (self, g_value_get_uint (value));
      break;
    case PROP_MAX_QUEUE_BYTES:
      elbus_broker_set_max_queue_bytes (self, g_value_get_uint (value));
      break;
    case PROP_MAX_CLIENTS:
      elbus_broker_set_max_clients (self, g_value_get_uint (value));
      break;
    case PROP_MAX_SUBSCRIPTIONS:
      elbus_broker_set_max_subscriptions (self, g_value_get_uint (value));
      break;
    case PROP_HANDSHAKE_TIMEOUT:
      elbus_broker_set_handshake_timeout (self, g_value_get_double (value));
      break;
    case PROP_FORCE_REGISTER:
      elbus_broker_set_force_register (self, g_value_get_boolean (value));
      break;
    case PROP_TLS_CERTIFICATE:
      elbus_broker_set_tls_certificate (self, g_value_get_object (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
elbus_broker_class_init (ElbusBrokerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = elbus_broker_dispose;
  object_class->finalize = elbus_broker_finalize;
  object_class->get_property = elbus_broker_get_property;
  object_class->set_property = elbus_broker_set_property;

  /**
   * ElbusBroker:timeout:
   *
   * Seconds allowed for a handshake, for the rest of a half-received
   * frame, and for a blocked write to make progress; also the interval of
   * the keep-alive pings the broker sends each client.
   *
   * Since: 1.0
   */
  properties[PROP_TIMEOUT] =
    g_param_spec_double ("timeout", NULL, NULL,
                         0.001, 86400.0, ELBUS_BROKER_DEFAULT_TIMEOUT,
                         G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  /**
   * ElbusBroker:queue-size:
   *
   * The most frames waiting to be written to one client. A client whose
   * queue would overflow is disconnected, and a sender that asked for an
   * acknowledgement is told %ELBUS_ERROR_NOT_DELIVERED.
   *
   * Since: 1.0
   */
  properties[PROP_QUEUE_SIZE] =
    g_param_spec_uint ("queue-size", NULL, NULL,
                       1, G_MAXINT32, ELBUS_BROKER_DEFAULT_QUEUE_SIZE,
                       G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  /**
   * ElbusBroker:buf-size:
   *
   * Bytes that may wait for a client before they are written at once.
   * Frames that are not real-time are batched into one write until this
   * many are pending, until they have waited
   * [property@Elbus.Broker:buf-ttl], or until the main loop is about to
   * sleep, whichever comes first.
   *
   * Since: 1.0
   */
  properties[PROP_BUF_SIZE] =
    g_param_spec_uint ("buf-size", NULL, NULL,
                       1, G_MAXINT32, ELBUS_BROKER_DEFAULT_BUF_SIZE,
                       G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  /**
   * ElbusBroker:buf-ttl:
   *
   * Microseconds a frame that is not real-time may wait in a client's
   * buffer for more to batch with. It is checked when the broker finishes
   * handling a client's input; frames never wait past the point where the
   * main loop would sleep.
   *
   * Since: 1.0
   */
  properties[PROP_BUF_TTL] =
    g_param_spec_uint ("buf-ttl", NULL, NULL,
                       0, G_MAXINT32, ELBUS_BROKER_DEFAULT_BUF_TTL,
                       G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  /**
   * ElbusBroker:max-frame-size:
   *
   * The largest frame body, in bytes, a client may announce. A larger one
   * is a protocol error: the client is disconnected and nothing of that
   * size is allocated.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_FRAME_SIZE] =
    g_param_spec_uint ("max-frame-size", NULL, NULL,
                       64, G_MAXUINT32, ELBUS_BROKER_DEFAULT_MAX_FRAME_SIZE,
                       G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  /**
   * ElbusBroker:max-queue-bytes:
   *
   * The most bytes waiting to be written to one client, beside
   * [property@Elbus.Broker:queue-size] frames; 0 for no limit. A client
   * whose queue would go beyond it is dropped as a slow consumer, as for a
   * full queue; a single frame larger than the limit still reaches a
   * client whose queue is empty. It bounds what a stuck client holds on
   * to when frames are large.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_QUEUE_BYTES] =
    g_param_spec_uint ("max-queue-bytes", NULL, NULL,
                       0, G_MAXUINT32, ELBUS_BROKER_DEFAULT_MAX_QUEUE_BYTES,
                       G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  /**
   * ElbusBroker:max-clients:
   *
   * The most connections the broker serves at once, registered or still
   * in their handshake (in-process clients included); 0 for no limit. A
   * connection beyond it is closed as soon as it is accepted, and the
   * broker logs that once each time the limit is reached.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_CLIENTS] =
    g_param_spec_uint ("max-clients", NULL, NULL,
                       0, G_MAXUINT32, ELBUS_BROKER_DEFAULT_MAX_CLIENTS,
                       G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  /**
   * ElbusBroker:max-subscriptions:
   *
   * The most subscription masks one client may hold; 0 for no limit. A
   * subscription beyond it is not made and, when the client asked for an
   * acknowledgement, acked %ELBUS_ERROR_ACCESS; the broker logs it once per
   * client.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_SUBSCRIPTIONS] =
    g_param_spec_uint ("max-subscriptions", NULL, NULL,
                       0, G_MAXUINT32, ELBUS_BROKER_DEFAULT_MAX_SUBSCRIPTIONS,
                       G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  /**
   * ElbusBroker:handshake-timeout:
   *
   * Seconds a new connection has to complete its handshake (greeting and
   * name) before it is dropped.
   *
   * Since: 1.0
   */
  properties[PROP_HANDSHAKE_TIMEOUT] =
    g_param_spec_double ("handshake-timeout", NULL, NULL,
                         0.001, 86400.0, ELBUS_BROKER_DEFAULT_HANDSHAKE_TIMEOUT,
                         G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  /**
   * ElbusBroker:force-register:
   *
   * Whether a client registering a name that is taken replaces the client
   * holding it, which is disconnected (with its secondaries), instead of
   * being refused with %ELBUS_ERROR_BUSY: for a service restarted before
   * the broker noticed that its old connection died. The broker's own
   * in-process clients (`.broker`) are never replaced.
   *
   * Since: 1.0
   */
  properties[PROP_FORCE_REGISTER] =
    g_param_spec_boolean ("force-register", NULL, NULL, FALSE,
                          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  /**
   * ElbusBroker:tls-certificate:
   *
   * The certificate, with its private key, that `wss://` listeners present
   * to their clients (see [method@Elbus.Broker.listen]); %NULL until set,
   * and a `wss://` listener cannot be opened without one. Setting another
   * certificate replaces that of the open `wss://` listeners too, for the
   * connections they accept from then on (a renewed certificate needs no
   * restart); connections already made keep theirs. Setting %NULL leaves
   * the open listeners as they are.
   *
   * Since: 1.0
   */
  properties[PROP_TLS_CERTIFICATE] =
    g_param_spec_object ("tls-certificate", NULL, NULL, G_TYPE_TLS_CERTIFICATE,
                         G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * ElbusBroker::client-registered:
   * @self: the broker
   * @name: the client's full name
   *
   * Emitted when a client, primary or secondary, has registered.
   *
   * Since: 1.0
   */
  signals[SIGNAL_CLIENT_REGISTERED] =
    g_signal_new ("client-registered", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE);

  /**
   * ElbusBroker::client-unregistered:
   * @self: the broker
   * @name: the client's full name
   *
   * Emitted when a registered client, primary or secondary, has gone:
   * disconnected, dropped for a protocol error or as a slow consumer, or
   * forced out.
   *
   * Since: 1.0
   */
  signals[SIGNAL_CLIENT_UNREGISTERED] =
    g_signal_new ("client-unregistered", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE);
}

/* how the dispatcher and the peers reach the broker */
static const ElbusBrokerOps broker_ops = {
  .end_dispatch = _elbus_broker_end_dispatch,
  .register_name = _elbus_broker_register,
  .route = _elbus_broker_route,
  .forget_peer = _elbus_broker_forget_peer,
  .fd_closed = _elbus_broker_resume_accept,
  .is_monitor = _elbus_broker_monitor_is,
};

static void
elbus_broker_init (ElbusBroker *self)
{
  struct _ElbusFlushSource *flush;

  self->context = g_main_context_ref_thread_default ();
  self->ops = &broker_ops;
  self->listeners = g_ptr_array_new_with_free_func ((GDestroyNotify) listener_free);
  self->clients = g_hash_table_new (g_str_hash, g_str_equal);
  self->pending = g_hash_table_new (NULL, NULL);
  self->names = _elbus_name_tree_new ();
  self->topics = _elbus_topic_tree_new ();
  self->graveyard = g_ptr_array_new ();
  self->scratch = g_ptr_array_new ();
  self->announcements = g_ptr_array_new_with_free_func (g_free);
  self->monitors = g_ptr_array_new_with_free_func ((GDestroyNotify) _elbus_monitor_free);
  g_queue_init (&self->dirty);
  _elbus_dispatch_init (self);

  self->timeout = ELBUS_BROKER_DEFAULT_TIMEOUT;
  self->queue_size = ELBUS_BROKER_DEFAULT_QUEUE_SIZE;
  self->buf_size = ELBUS_BROKER_DEFAULT_BUF_SIZE;
  self->buf_ttl = ELBUS_BROKER_DEFAULT_BUF_TTL;
  self->max_frame_size = ELBUS_BROKER_DEFAULT_MAX_FRAME_SIZE;
  self->max_queue_bytes = ELBUS_BROKER_DEFAULT_MAX_QUEUE_BYTES;
  self->max_clients = ELBUS_BROKER_DEFAULT_MAX_CLIENTS;
  self->max_subscriptions = ELBUS_BROKER_DEFAULT_MAX_SUBSCRIPTIONS;
  self->handshake_timeout = ELBUS_BROKER_DEFAULT_HANDSHAKE_TIMEOUT;

  /* prepared before anything else, so that it runs every iteration */
  flush = (struct _ElbusFlushSource *) g_source_new (&flush_source_funcs, sizeof *flush);
  flush->broker = self;
  self->flush_source = (GSource *) flush;
  g_source_set_static_name (self->flush_source, "[elbus] broker flush");
  g_source_set_priority (self->flush_source, G_PRIORITY_HIGH - 100);
  g_source_attach (self->flush_source, self->context);

  restart_sweep (self);
}

/**
 * elbus_broker_new:
 *
 * Creates a broker bound to the thread-default main context. It serves no
 * one until it listens: see [method@Elbus.Broker.listen].
 *
 * Returns: (transfer full): a new broker
 *
 * Since: 1.0
 */
ElbusBroker *
elbus_broker_new (void)
{
  return g_object_new (ELBUS_TYPE_BROKER, NULL);
}

/**
 * elbus_broker_get_timeout:
 * @self: a broker
 *
 * Gets [property@Elbus.Broker:timeout].
 *
 * Returns: the timeout in seconds
 *
 * Since: 1.0
 */
double
elbus_broker_get_timeout (ElbusBroker *self)
{
  g_return_val_if_fail (ELBUS_IS_BROKER (self), 0);

  return self->timeout;
}

/**
 * elbus_broker_set_timeout:
 * @self: a broker
 * @timeout: seconds, more than 0
 *
 * Sets [property@Elbus.Broker:timeout].
 *
 * Since: 1.0
 */
void
elbus_broker_set_timeout (ElbusBroker *self,
                          double       timeout)
{
  g_return_if_fail (ELBUS_IS_BROKER (self));
  g_return_if_fail (timeout >= 0.001 && timeout <= 86400.0);

  if (self->timeout == timeout)
    return;

  self->timeout = timeout;
  restart_sweep (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_TIMEOUT]);
}

/**
 * elbus_broker_get_queue_size:
 * @self: a broker
 *
 * Gets [property@Elbus.Broker:queue-size].
 *
 * Returns: the queue size in frames
 *
 * Since: 1.0
 */
guint
elbus_broker_get_queue_size (ElbusBroker *self)
{
  g_return_val_if_fail (ELBUS_IS_BROKER (self), 0);

  return self->queue_size;
}

/**
 * elbus_broker_set_queue_size:
 * @self: a broker
 * @queue_size: frames, at least 1
 *
 * Sets [property@Elbus.Broker:queue-size]. Queues already longer are not
 * cut; they take no new frames until they are shorter.
 *
 * Since: 1.0
 */
void
elbus_broker_set_queue_size (ElbusBroker *self,
                             guint        queue_size)
{
  g_return_if_fail (ELBUS_IS_BROKER (self));
  g_return_if_fail (queue_size >= 1 && queue_size <= G_MAXINT32);

  if (self->queue_size == queue_size)
    return;

  self->queue_size = queue_size;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_QUEUE_SIZE]);
}

/**
 * elbus_broker_get_buf_size:
 * @self: a broker
 *
 * Gets [property@Elbus.Broker:buf-size].
 *
 * Returns: the buffer size in bytes
 *
 * Since: 1.0
 */
guint
elbus_broker_get_buf_size (ElbusBroker *self)
{
  g_return_val_if_fail (ELBUS_IS_BROKER (self), 0);

  return self->buf_size;
}

/**
 * elbus_broker_set_buf_size:
 * @self: a broker
 * @buf_size: bytes, at least 1
 *
 * Sets [property@Elbus.Broker:buf-size].
 *
 * Since: 1.0
 */
void
elbus_broker_set_buf_size (ElbusBroker *self,
                           guint        buf_size)
{
  g_return_if_fail (ELBUS_IS_BROKER (self));
  g_return_if_fail (buf_size >= 1 && buf_size <= G_MAXINT32);

  if (self->buf_size == buf_size)
    return;

  self->buf_size = buf_size;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_BUF_SIZE]);
}

/**
 * elbus_broker_get_buf_ttl:
 * @self: a broker
 *
 * Gets [property@Elbus.Broker:buf-ttl].
 *
 * Returns: the buffer time-to-live in microseconds
 *
 * Since: 1.0
 */
guint
elbus_broker_get_buf_ttl (ElbusBroker *self)
{
  g_return_val_if_fail (ELBUS_IS_BROKER (self), 0);

  return self->buf_ttl;
}

/**
 * elbus_broker_set_buf_ttl:
 * @self: a broker
 * @buf_ttl: microseconds
 *
 * Sets [property@Elbus.Broker:buf-ttl].
 *
 * Since: 1.0
 */
void
elbus_broker_set_buf_ttl (ElbusBroker *self,
                          guint        buf_ttl)
{
  g_return_if_fail (ELBUS_IS_BROKER (self));
  g_return_if_fail (buf_ttl <= G_MAXINT32);

  if (self->buf_ttl == buf_ttl)
    return;

  self->buf_ttl = buf_ttl;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_BUF_TTL]);
}

/**
 * elbus_broker_get_max_frame_size:
 * @self: a broker
 *
 * Gets [property@Elbus.Broker:max-frame-size].
 *
 * Returns: the largest accepted frame body in bytes
 *
 * Since: 1.0
 */
guint
elbus_broker_get_max_frame_size (ElbusBroker *self)
{
  g_return_val_if_fail (ELBUS_IS_BROKER (self), 0);

  return self->max_frame_size;
}

/**
 * elbus_broker_set_max_frame_size:
 * @self: a broker
 * @max_frame_size: bytes, at least 64
 *
 * Sets [property@Elbus.Broker:max-frame-size].
 *
 * Since: 1.0
 */
void
elbus_broker_set_max_frame_size (ElbusBroker *self,
                                 guint        max_frame_size)
{
  g_return_if_fail (ELBUS_IS_BROKER (self));
  g_return_if_fail (max_frame_size >= 64);

  if (self->max_frame_size == max_frame_size)
    return;

  self->max_frame_size = max_frame_size;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MAX_FRAME_SIZE]);
}

/**
 * elbus_broker_get_max_queue_bytes:
 * @self: a broker
 *
 * Gets [property@Elbus.Broker:max-queue-bytes].
 *
 * Returns: the most bytes queued for one client, 0 for no limit
 *
 * Since: 1.0
 */
guint
elbus_broker_get_max_queue_bytes (ElbusBroker *self)
{
  g_return_val_if_fail (ELBUS_IS_BROKER (self), 0);

  return self->max_queue_bytes;
}

/**
 * elbus_broker_set_max_queue_bytes:
 * @self: a broker
 * @max_queue_bytes: the most bytes queued for one client, 0 for no limit
 *
 * Sets [property@Elbus.Broker:max-queue-bytes].
 *
 * Since: 1.0
 */
void
elbus_broker_set_max_queue_bytes (ElbusBroker *self,
                                  guint        max_queue_bytes)
{
  g_return_if_fail (ELBUS_IS_BROKER (self));

  if (self->max_queue_bytes == max_queue_bytes)
    return;

  self->max_queue_bytes = max_queue_bytes;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MAX_QUEUE_BYTES]);
}

/**
 * elbus_broker_get_max_clients:
 * @self: a broker
 *
 * Gets [property@Elbus.Broker:max-clients].
 *
 * Returns: the most connections served at once, 0 for no limit
 *
 * Since: 1.0
 */
guint
elbus_broker_get_max_clients (ElbusBroker *self)
{
  g_return_val_if_fail (ELBUS_IS_BROKER (self), 0);

  return self->max_clients;
}

/**
 * elbus_broker_set_max_clients:
 * @self: a broker
 * @max_clients: the most connections served at once, 0 for no limit
 *
 * Sets [property@Elbus.Broker:max-clients]. Connections already made stay.
 *
 * Since: 1.0
 */
void
elbus_broker_set_max_clients (ElbusBroker *self,
                              guint        max_clients)
{
  g_return_if_fail (ELBUS_IS_BROKER (self));

  if (self->max_clients == max_clients)
    return;

  self->max_clients = max_clients;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MAX_CLIENTS]);
}

/**
 * elbus_broker_get_max_subscriptions:
 * @self: a broker
 *
 * Gets [property@Elbus.Broker:max-subscriptions].
 *
 * Returns: the most masks one client may subscribe to, 0 for no limit
 *
 * Since: 1.0
 */
guint
elbus_broker_get_max_subscriptions (ElbusBroker *self)
{
  g_return_val_if_fail (ELBUS_IS_BROKER (self), 0);

  return self->max_subscriptions;
}

/**
 * elbus_broker_set_max_subscriptions:
 * @self: a broker
 * @max_subscriptions: the most masks one client may subscribe to, 0 for
 *   no limit
 *
 * Sets [property@Elbus.Broker:max-subscriptions]. Subscriptions already
 * made stay.
 *
 * Since: 1.0
 */
void
elbus_broker_set_max_subscriptions (ElbusBroker *self,
                                    guint        max_subscriptions)
{
  g_return_if_fail (ELBUS_IS_BROKER (self));

  if (self->max_subscriptions == max_subscriptions)
    return;

  self->max_subscriptions = max_subscriptions;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MAX_SUBSCRIPTIONS]);
}

/**
 * elbus_broker_get_handshake_timeout:
 * @self: a broker
 *
 * Gets [property@Elbus.Broker:handshake-timeout].
 *
 * Returns: seconds allowed for a handshake
 *
 * Since: 1.0
 */
double
elbus_broker_get_handshake_timeout (ElbusBroker *self)
{
  g_return_val_if_fail (ELBUS_IS_BROKER (self), 0.0);

  return self->handshake_timeout;
}

/**
 * elbus_broker_set_handshake_timeout:
 * @self: a broker
 * @handshake_timeout: seconds, at least 0.001
 *
 * Sets [property@Elbus.Broker:handshake-timeout]. It applies to the
 * connections still in their handshake too (counted from their accept()).
 *
 * Since: 1.0
 */
void
elbus_broker_set_handshake_timeout (ElbusBroker *self,
                                    double       handshake_timeout)
{
  g_return_if_fail (ELBUS_IS_BROKER (self));
  g_return_if_fail (handshake_timeout >= 0.001 && handshake_timeout <= 86400.0);

  if (self->handshake_timeout == handshake_timeout)
    return;

  self->handshake_timeout = handshake_timeout;
  /* the timer re-arms for the new first deadline */
  _elbus_dispatch_timer_wake (self, g_get_monotonic_time ());
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_HANDSHAKE_TIMEOUT]);
}

/**
 * elbus_broker_get_force_register:
 * @self: a broker
 *
 * Gets [property@Elbus.Broker:force-register].
 *
 * Returns: whether a registration takes over a name that is taken
 *
 * Since: 1.0
 */
gboolean
elbus_broker_get_force_register (ElbusBroker *self)
{
  g_return_val_if_fail (ELBUS_IS_BROKER (self), FALSE);

  return self->force_register;
}

/**
 * elbus_broker_set_force_register:
 * @self: a broker
 * @force_register: whether a registration takes over a name that is taken
 *
 * Sets [property@Elbus.Broker:force-register].
 *
 * Since: 1.0
 */
void
elbus_broker_set_force_register (ElbusBroker *self,
                                 gboolean     force_register)
{
  g_return_if_fail (ELBUS_IS_BROKER (self));

  force_register = !!force_register;
  if (self->force_register == force_register)
    return;

  self->force_register = force_register;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_FORCE_REGISTER]);
}

/**
 * elbus_broker_get_tls_certificate:
 * @self: a broker
 *
 * Gets [property@Elbus.Broker:tls-certificate].
 *
 * Returns: (transfer none) (nullable): the certificate of the `wss://`
 *   listeners
 *
 * Since: 1.0
 */
GTlsCertificate *
elbus_broker_get_tls_certificate (ElbusBroker *self)
{
  g_return_val_if_fail (ELBUS_IS_BROKER (self), NULL);

  return self->tls_certificate;
}

/**
 * elbus_broker_set_tls_certificate:
 * @self: a broker
 * @certificate: (nullable): a certificate with its private key, as
 *   g_tls_certificate_new_from_files() makes it from PEM files
 *
 * Sets [property@Elbus.Broker:tls-certificate]: the certificate `wss://`
 * listeners present, those opened from now on and those already open. A
 * certificate the same as the one set (g_tls_certificate_is_same()) is
 * no change.
 *
 * Since: 1.0
 */
void
elbus_broker_set_tls_certificate (ElbusBroker     *self,
                                  GTlsCertificate *certificate)
{
  g_return_if_fail (ELBUS_IS_BROKER (self));
  g_return_if_fail (certificate == NULL || G_IS_TLS_CERTIFICATE (certificate));

  /* the same certificate read again (a reload without a renewal) is no
   * change: libsoup 3.2's listeners would keep a reference on the old one */
  if (certificate != NULL && self->tls_certificate != NULL &&
      g_tls_certificate_is_same (certificate, self->tls_certificate))
    return;
  if (!g_set_object (&self->tls_certificate, certificate))
    return;

  /* elbus-broker-ws.c hands it to its wss:// listeners on the notify */
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_TLS_CERTIFICATE]);
}

static GHashTable *
policy_table_new (void)
{
  return g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
}

/**
 * elbus_broker_set_policy:
 * @self: a broker
 * @policy: (nullable) (element-type utf8 ElbusClientPolicy): primary client
 *   names and their entries, or %NULL for no policy
 *
 * Puts a security policy in force (docs/protocol.md section 7), replacing the
 * one before, or, with %NULL, lifts it. The broker keeps copies of the
 * entries: changing them afterwards changes nothing.
 *
 * With a policy in force, a client whose primary name has no entry is
 * refused with %ELBUS_ERROR_ACCESS at registration, as is one whose TCP
 * source network or UNIX credentials its entry does not allow; a
 * secondary client is under its primary's entry. A refused message,
 * broadcast or publication is acked %ELBUS_ERROR_ACCESS and not routed; a
 * subscription request subscribes to the masks the entry allows and, if it
 * refused any, is acked %ELBUS_ERROR_ACCESS once. `.broker`'s
 * `monitor.start` is answered only for entries allowed to monitor.
 *
 * A client keeps the entry that was in force when it registered: a new
 * policy applies to connections made after it. Use
 * [method@Elbus.Broker.disconnect_client] to apply it to a connected
 * client. In-process clients ([method@Elbus.Broker.register_client]) are
 * the application's own and are not subject to the policy.
 *
 * Since: 1.0
 */
void
elbus_broker_set_policy (ElbusBroker *self,
                         GHashTable  *policy)
{
  GHashTableIter iter;
  const char *name;
  ElbusClientPolicy *entry;

  g_return_if_fail (ELBUS_IS_BROKER (self));

  g_clear_pointer (&self->policy, g_hash_table_unref);
  if (policy == NULL)
    return;

  self->policy = policy_table_new ();
  g_hash_table_iter_init (&iter, policy);
  while (g_hash_table_iter_next (&iter, (gpointer *) &name, (gpointer *) &entry))
    {
      g_return_if_fail (name != NULL && ELBUS_IS_CLIENT_POLICY (entry));
      g_hash_table_insert (self->policy, g_strdup (name), elbus_client_policy_copy (entry));
    }
}

/**
 * elbus_broker_set_client_policy:
 * @self: a broker
 * @name: a primary client name
 * @policy: (nullable): its entry, or %NULL to remove it
 *
 * Sets or removes one entry of the policy (see
 * [method@Elbus.Broker.set_policy]). Setting an entry when no policy is
 * in force puts one in force, with this entry only. The broker keeps a
 * copy of @policy.
 *
 * Since: 1.0
 */
void
elbus_broker_set_client_policy (ElbusBroker       *self,
                                const char        *name,
                                ElbusClientPolicy *policy)
{
  g_return_if_fail (ELBUS_IS_BROKER (self));
  g_return_if_fail (name != NULL);
  g_return_if_fail (policy == NULL || ELBUS_IS_CLIENT_POLICY (policy));

  if (policy == NULL)
    {
      if (self->policy != NULL)
        g_hash_table_remove (self->policy, name);
      return;
    }

  if (self->policy == NULL)
    self->policy = policy_table_new ();
  g_hash_table_insert (self->policy, g_strdup (name), elbus_client_policy_copy (policy));
}

/**
 * elbus_broker_get_policy_enabled:
 * @self: a broker
 *
 * Tells whether a security policy is in force (even one with no entries,
 * which refuses every client).
 *
 * Returns: %TRUE if a policy is in force
 *
 * Since: 1.0
 */
gboolean
elbus_broker_get_policy_enabled (ElbusBroker *self)
{
  g_return_val_if_fail (ELBUS_IS_BROKER (self), FALSE);

  return self->policy != NULL;
}

static int
compare_strings (gconstpointer a,
                 gconstpointer b)
{
  return strcmp (*(const char * const *) a, *(const char * const *) b);
}

/**
 * elbus_broker_list_clients:
 * @self: a broker
 *
 * Lists the names of the registered clients, primaries and secondaries,
 * sorted.
 *
 * Returns: (transfer full) (array zero-terminated=1): the names
 *
 * Since: 1.0
 */
char **
elbus_broker_list_clients (ElbusBroker *self)
{
  g_autoptr(GPtrArray) names = g_ptr_array_new ();
  GHashTableIter iter;
  const char *name;

  g_return_val_if_fail (ELBUS_IS_BROKER (self), NULL);

  g_hash_table_iter_init (&iter, self->clients);
  while (g_hash_table_iter_next (&iter, (gpointer *) &name, NULL))
    g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, compare_strings);
  g_ptr_array_add (names, NULL);

  return (char **) g_ptr_array_steal (names, NULL);
}

/**
 * elbus_broker_has_client:
 * @self: a broker
 * @name: a client name
 *
 * Tells whether a client named @name is registered.
 *
 * Returns: %TRUE if it is
 *
 * Since: 1.0
 */
gboolean
elbus_broker_has_client (ElbusBroker *self,
                         const char  *name)
{
  g_return_val_if_fail (ELBUS_IS_BROKER (self), FALSE);
  g_return_val_if_fail (name != NULL, FALSE);

  return g_hash_table_contains (self->clients, name);
}

/**
 * elbus_broker_get_stats:
 * @self: a broker
 * @stats: (out caller-allocates): the broker's counters
 *
 * Gets the broker's traffic counters since it was created, over all
 * clients. Frames and bytes include handshakes only as far as they are
 * frames: greetings are not counted.
 *
 * Since: 1.0
 */
void
elbus_broker_get_stats (ElbusBroker *self,
                        ElbusStats  *stats)
{
  g_return_if_fail (ELBUS_IS_BROKER (self));
  g_return_if_fail (stats != NULL);

  *stats = self->stats;
}

/**
 * elbus_broker_get_client_stats:
 * @self: a broker
 * @name: a client name
 * @stats: (out caller-allocates): the client's counters
 * @queue_len: (out) (optional): frames waiting in the client's queue
 *
 * Gets the traffic counters of one registered client, as the broker sees
 * them: r_* counts what the client sent, w_* what the broker wrote to it.
 *
 * Returns: %TRUE if @name is registered (else @stats is left untouched)
 *
 * Since: 1.0
 */
gboolean
elbus_broker_get_client_stats (ElbusBroker *self,
                               const char  *name,
                               ElbusStats  *stats,
                               guint       *queue_len)
{
  ElbusPeer *peer;

  g_return_val_if_fail (ELBUS_IS_BROKER (self), FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  g_return_val_if_fail (stats != NULL, FALSE);

  peer = g_hash_table_lookup (self->clients, name);
  if (peer == NULL)
    return FALSE;

  *stats = peer->stats;
  if (queue_len != NULL)
    *queue_len = peer->out.len;

  return TRUE;
}

/**
 * elbus_broker_force_disconnect:
 * @self: a broker
 * @name: a client name
 *
 * Disconnects the client named @name (and its secondaries, if it is a
 * primary) at once. Frames queued for it are dropped.
 *
 * Returns: %TRUE if such a client was connected
 *
 * Since: 1.0
 */
gboolean
elbus_broker_force_disconnect (ElbusBroker *self,
                               const char  *name)
{
  ElbusPeer *peer;

  g_return_val_if_fail (ELBUS_IS_BROKER (self), FALSE);
  g_return_val_if_fail (name != NULL, FALSE);

  peer = g_hash_table_lookup (self->clients, name);
  if (peer == NULL)
    return FALSE;

  _elbus_peer_close (peer, G_LOG_LEVEL_INFO, _("disconnected by the broker"));
  return TRUE;
}

typedef struct {
  ElbusPeer *peer;
  gboolean   found;
} FindSubscriber;

static void
find_subscriber_cb (gpointer value,
                    gpointer user_data)
{
  FindSubscriber *find = user_data;

  if (value == find->peer)
    find->found = TRUE;
}

/* The body of the publication a client gets when the broker disconnects
 * it (elbus_broker_disconnect_client()): `.broker/warn` 00, then
 * {"s": "disconnect", "d": REASON, "t": T}. */
static GBytes *
disconnect_notice (const char *reason)
{
  static const char topic[] = ".broker/warn";
  g_autoptr(GVariant) value = NULL;
  g_autoptr(GBytes) map = NULL;
  GByteArray *body;
  gsize len;
  const guint8 *data;

  value = g_variant_ref_sink (g_variant_new_parsed ("{'s': <'disconnect'>, 'd': <%s>, 't': <%t>}",
                                                    reason,
                                                    (guint64) g_get_real_time () * 1000));
  map = elbus_msgpack_encode_variant (value, NULL);
  g_return_val_if_fail (map != NULL, NULL);

  data = g_bytes_get_data (map, &len);
  body = g_byte_array_sized_new (sizeof topic + len);
  g_byte_array_append (body, (const guint8 *) topic, sizeof topic);
  g_byte_array_append (body, data, len);
  return g_byte_array_free_to_bytes (body);
}

/**
 * elbus_broker_disconnect_client:
 * @self: a broker
 * @name: a client name
 * @reason: why, in a few words, for the client's user (sent as it is:
 *   English is the safe choice)
 *
 * Disconnects the client named @name (and its secondaries, if it is a
 * primary) and tells it why. The client receives a publication from
 * `.broker` on `.broker/warn` whose payload is the MessagePack map
 * `{"s": "disconnect", "d": REASON, "t": T}` (T: nanoseconds since the
 * UNIX epoch), if it is subscribed to that topic, as every client is from
 * its registration on. Frames already queued for it are still written,
 * and its connection is closed once they are, or when writing to it has
 * made no progress for the broker's [property@Elbus.Broker:timeout]. What
 * it sends from now on is dropped unread.
 *
 * An [class@Elbus.Client] reports @reason in the error of its
 * [signal@Elbus.Client::disconnected] signal; a client that ignores the
 * publication just sees the connection close. An in-process client
 * ([method@Elbus.Broker.register_client]) is disconnected at once, with
 * @reason in its error.
 *
 * Unlike [method@Elbus.Broker.force_disconnect], which drops the client
 * and its queue at once, this is for a client that did nothing wrong,
 * such as one that a new security policy no longer admits.
 *
 * Returns: %TRUE if such a client was connected
 *
 * Since: 1.0
 */
gboolean
elbus_broker_disconnect_client (ElbusBroker *self,
                                const char  *name,
                                const char  *reason)
{
  g_autoptr(GBytes) notice = NULL;
  FindSubscriber find = { NULL, FALSE };

  g_return_val_if_fail (ELBUS_IS_BROKER (self), FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  g_return_val_if_fail (reason != NULL && g_utf8_validate (reason, -1, NULL), FALSE);

  find.peer = g_hash_table_lookup (self->clients, name);
  if (find.peer == NULL)
    return FALSE;

  _elbus_topic_tree_match (self->topics, ".broker/warn", strlen (".broker/warn"),
                           find_subscriber_cb, &find);
  if (find.found)
    notice = disconnect_notice (reason);
  _elbus_peer_drain (find.peer, notice, reason);
  return TRUE;
}
