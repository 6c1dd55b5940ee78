/* SPDX-License-Identifier: MIT */
/* The in-process transport: an ElbusClient whose other end is an ElbusPeer
 * of kind internal in the same broker; the one file that knows both the
 * client's side (elbus-transport-private.h) and the broker's.
 *
 * On the broker's thread and main context there is no socket and no lock:
 * what the client sends is copied once into a chunk and routed at once,
 * and what the broker queues for it is handed over when the broker
 * flushes (before the loop sleeps, or at once for real-time frames and
 * acks).
 *
 * A client registered from another thread, on another main context, runs
 * in cross mode: its frames are copied once into a chunk on its own thread
 * and pushed on a locked queue towards the broker, whose context is woken
 * once per batch (a GSource made ready when the queue turns non-empty); the
 * broker routes them as if the peer had sent them. What the broker queues
 * for the client is moved, by reference, into a locked queue towards the
 * client, whose context is woken the same way. Both sides hold the
 * ElbusLocal (an atomic reference count); whichever side goes first tells
 * the other through the queues. */
#include "config.h"

#include <string.h>

#include "elbus-broker-private.h"
#include "elbus-codec-private.h"
#include "elbus-error.h"
#include "elbus-i18n-private.h"
#include "elbus-transport-private.h"

/* How one side of a cross-mode link learns that the other queued work for
 * it: set pending, then wake its context if its source is armed (it may be
 * sleeping). Both are sequentially consistent atomics, so either the
 * sleeper's prepare() sees pending or the waker sees armed. */
typedef struct {
  gint pending;
  gint armed;
} CrossWake;

/* A client frame on its way to the broker (cross mode). */
typedef struct {
  ElbusChunk       *chunk;         /* (owned) when owns */
  ElbusClientFrame  frame;         /* decoded, pointing into chunk */
  gboolean          owns;          /* FALSE: the frame before it in the
                                    * same batch holds the chunk */
} LocalFrame;

struct _ElbusLocal {
  ElbusTransport  parent;
  /* the broker's side: touched on the broker's thread only */
  ElbusBroker    *broker;          /* (unowned) (nullable): cleared when either side closes */
  ElbusPeer      *peer;            /* (unowned) (nullable): likewise */

  /* cross mode only (client and broker on different contexts) */
  gboolean        cross;
  gatomicrefcount ref;             /* the client's transport, the peer, each source */
  guint           max_frame_size;
  GMutex          lock;            /* guards what follows */
  GCond           cond;            /* signalled for a waiting _sync call */
  guint           client_waiting;  /* a _sync call waits on cond */
  GArray         *towards_broker;  /* LocalFrame */
  ElbusOutQueue   towards_client;
  GError         *closed_error;    /* (nullable): the broker dropped the client */
  gboolean        client_closed;   /* the client closed its end */
  gint            broker_gone;     /* (atomic): the peer is closed */
  GSource        *broker_source;   /* (owned) (nullable): on the broker's context */
  GSource        *client_source;   /* (owned) (nullable): on the client's context */
  /* the wake-ups, outside the lock (atomic): each side's source is pending
   * when its queue turned non-empty (or a close waits), and armed from its
   * prepare() to its check(), while its context may sleep in poll(); the
   * other side wakes that context only then */
  CrossWake       towards_broker_wake;
  CrossWake       towards_client_wake;
  GMainContext   *broker_context;  /* (owned) */
  GMainContext   *client_context;  /* (owned) */
  /* the client's thread: its frames not yet handed over (cross mode) */
  GArray         *client_batch;    /* LocalFrame */
  gsize           client_batch_bytes;
  GSource        *flush_source;    /* (owned) (nullable): hands them over before
                                    * the client's loop sleeps */
  /* the client's thread: where its small frames are copied (both modes) */
  ElbusChunk     *send_chunk;      /* (owned) (nullable) */
  gsize           send_used;
  /* outside the lock: each side's spare, swapped with the shared queue */
  GArray         *broker_spare;    /* the broker's thread */
  ElbusOutQueue   client_spare;    /* the client's thread */
};

static ElbusLocal *
local_ref (ElbusLocal *self)
{
  g_atomic_ref_count_inc (&self->ref);
  return self;
}

static void
local_unref (ElbusLocal *self)
{
  if (!g_atomic_ref_count_dec (&self->ref))
    return;

  g_clear_pointer (&self->send_chunk, _elbus_chunk_unref);
  if (self->cross)
    {
      for (guint i = 0; i < self->towards_broker->len; i++)
        if (g_array_index (self->towards_broker, LocalFrame, i).owns)
          _elbus_chunk_unref (g_array_index (self->towards_broker, LocalFrame, i).chunk);
      for (guint i = 0; i < self->client_batch->len; i++)
        if (g_array_index (self->client_batch, LocalFrame, i).owns)
          _elbus_chunk_unref (g_array_index (self->client_batch, LocalFrame, i).chunk);
      g_array_unref (self->towards_broker);
      g_array_unref (self->client_batch);
      g_array_unref (self->broker_spare);
      _elbus_out_queue_clear (&self->towards_client);
      _elbus_out_queue_clear (&self->client_spare);
      g_clear_error (&self->closed_error);
      g_main_context_unref (self->broker_context);
      g_main_context_unref (self->client_context);
      g_mutex_clear (&self->lock);
      g_cond_clear (&self->cond);
    }
  g_free (self);
}

/* Frames up to this size share the link's send chunk, of this many bytes
 * times four; larger ones get a chunk of their own. */
#define LOCAL_SHARED_FRAME_MAX 2048
#define LOCAL_SEND_CHUNK_SIZE (4 * LOCAL_SHARED_FRAME_MAX)

/* Where the next frame of @len bytes is copied (the client's thread): the
 * end of the link's send chunk, a fresh one when it is full (the old one
 * lives on while routed frames point into it), or the same one from its
 * start when nobody else holds it any more; or a chunk of its own. So
 * small frames cost no allocation each. Returns the link's send chunk
 * (borrowed), or a new chunk of its own. */
static ElbusChunk *
local_frame_space (ElbusLocal  *self,
                   gsize        len,
                   guint8     **p)
{
  ElbusChunk *chunk;

  if (len > LOCAL_SHARED_FRAME_MAX)
    {
      chunk = _elbus_chunk_new (len);
      *p = chunk->data;
      return chunk;
    }

  if (self->send_chunk != NULL &&
      (self->send_used + len > LOCAL_SEND_CHUNK_SIZE ||
       g_atomic_ref_count_compare (&self->send_chunk->ref, 1)))
    {
      if (g_atomic_ref_count_compare (&self->send_chunk->ref, 1))
        self->send_used = 0;
      else
        g_clear_pointer (&self->send_chunk, _elbus_chunk_unref);
    }
  if (self->send_chunk == NULL)
    {
      self->send_chunk = _elbus_chunk_new (LOCAL_SEND_CHUNK_SIZE);
      self->send_used = 0;
    }

  *p = self->send_chunk->data + self->send_used;
  return self->send_chunk;
}

/* Copies an encoded client frame into a chunk and checks it like any
 * frame from a socket. Returns that chunk (the link's send chunk
 * borrowed, any other a new reference), and the frame decoded in it. */
static ElbusChunk *
local_copy_frame (ElbusLocal        *self,
                  ElbusOutEntry     *entry,
                  guint              max_frame_size,
                  ElbusClientFrame  *frame,
                  GError           **error)
{
  gsize len = _elbus_out_entry_len (entry);
  guint8 *start;
  ElbusChunk *chunk = local_frame_space (self, len, &start);
  guint8 *p = start;
  gsize needed;
  g_autoptr(GError) decode_error = NULL;

  memcpy (p, entry->hdr, entry->hdr_len);
  p += entry->hdr_len;
  if (entry->name != NULL)
    {
      gsize name_len = g_ref_string_length (entry->name) + 1;

      memcpy (p, entry->name, name_len);
      p += name_len;
    }
  if (ELBUS_OUT_ENTRY_HAS_PREFIX (entry))
    {
      gsize prefix_len;
      const guint8 *prefix = g_bytes_get_data (entry->bytes, &prefix_len);

      memcpy (p, prefix, prefix_len);
      p += prefix_len;
    }
  if (entry->payload_len > 0)
    memcpy (p, entry->payload, entry->payload_len);
  _elbus_out_entry_clear (entry);

  if (_elbus_codec_decode_client_frame (start, len, max_frame_size, frame,
                                        &needed, &decode_error) != ELBUS_DECODE_OK)
    {
      /* its bytes in the send chunk are taken by the next frame */
      if (chunk != self->send_chunk)
        _elbus_chunk_unref (chunk);
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA, _("the broker refuses the frame: %s"),
                   decode_error != NULL ? decode_error->message : _("incomplete"));
      return NULL;
    }
  if (chunk == self->send_chunk)
    self->send_used += len;

  return chunk;
}

/* A message or broadcast whose payload is at least this large, or comes
 * as a head and a chunk, is routed where it lies instead of copied. */
#define LOCAL_BY_REFERENCE_MIN ELBUS_READ_CHUNK_SIZE

/* Decodes a large MESSAGE or BROADCAST of an in-process client without
 * copying its payload: the header and target (inline in @entry, copied
 * into @small) are checked by the codec as any frame's, the payload stays
 * where it is, in a chunk (its own or one that wraps its GBytes), with
 * the entry's prefix as the head. Returns that chunk (a new reference),
 * or NULL when the frame is not such a one (then it is copied). */
static ElbusChunk *
local_reference_frame (ElbusOutEntry     *entry,
                       guint              max_frame_size,
                       guint8             small[ELBUS_OUT_INLINE],
                       ElbusClientFrame  *frame,
                       GError           **error)
{
  gboolean prefixed = ELBUS_OUT_ENTRY_HAS_PREFIX (entry);
  guint8 op = entry->hdr[4] & 0x3f;
  gsize head_len = prefixed ? g_bytes_get_size (entry->bytes) : 0;
  guint32 body_len;
  gsize needed;
  g_autoptr(GError) decode_error = NULL;

  if (entry->name != NULL || entry->hdr_len <= ELBUS_CLIENT_HEADER_LEN || entry->hdr[4] == 0 ||
      (op != ELBUS_OP_MESSAGE && op != ELBUS_OP_BROADCAST) || entry->bytes == NULL ||
      (!prefixed && entry->payload_len < LOCAL_BY_REFERENCE_MIN))
    return NULL;

  body_len = _elbus_read_u32 (entry->hdr + 5);
  if (body_len > max_frame_size)
    {
      g_autofree char *message =
        g_strdup_printf (_("frame body of %u bytes is over the limit of %u"), body_len,
                         max_frame_size);

      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA, _("the broker refuses the frame: %s"),
                   message);
      return NULL;
    }

  /* the header and target alone, as if the frame ended after the 0x00 */
  memcpy (small, entry->hdr, entry->hdr_len);
  _elbus_write_u32 (small + 5, entry->hdr_len - ELBUS_CLIENT_HEADER_LEN);
  if (_elbus_codec_decode_client_frame (small, entry->hdr_len, max_frame_size, frame,
                                        &needed, &decode_error) != ELBUS_DECODE_OK)
    {
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA, _("the broker refuses the frame: %s"),
                   decode_error != NULL ? decode_error->message : _("incomplete"));
      return NULL;
    }
  if (frame->payload_len != 0 ||
      body_len != entry->hdr_len - ELBUS_CLIENT_HEADER_LEN + head_len + entry->payload_len)
    return NULL;

  frame->body = NULL;
  frame->body_len = body_len;
  frame->frame_len = ELBUS_CLIENT_HEADER_LEN + (gsize) body_len;
  frame->payload = entry->payload;
  frame->payload_len = entry->payload_len;
  frame->head = prefixed ? entry->bytes : NULL;

  return prefixed ? _elbus_chunk_ref (entry->chunk) : _elbus_chunk_new_for_bytes (entry->bytes);
}

/* Routes one frame of the peer, as if read from its socket. */
static void
local_route (ElbusLocal       *self,
             ElbusClientFrame *frame,
             ElbusChunk       *chunk)
{
  ElbusBroker *broker = self->broker;
  ElbusPeer *peer = self->peer;
  gsize len = frame->frame_len;

  peer->stats.r_frames++;
  peer->stats.r_bytes += len;
  broker->stats.r_frames++;
  broker->stats.r_bytes += len;
  _elbus_broker_route (broker, peer, frame, chunk);
}

static gboolean cross_send (ElbusLocal     *self,
                            ElbusOutEntry  *entry,
                            gboolean        realtime,
                            GError        **error);
static void     cross_publish (ElbusLocal *self);

/* Routes a frame of an in-process client at once: one copy into a chunk,
 * decoded and checked like any frame from a socket. */
static gboolean
local_send (ElbusTransport  *transport,
            ElbusOutEntry   *entry,
            gboolean         realtime,
            GError         **error)
{
  ElbusLocal *self = (ElbusLocal *) transport;
  ElbusClientFrame frame;
  ElbusChunk *chunk;
  guint8 small[ELBUS_OUT_INLINE];
  GError *reference_error = NULL;

  if (self->cross)
    return cross_send (self, entry, realtime, error);

  chunk = local_reference_frame (entry, self->broker->max_frame_size, small, &frame,
                                 &reference_error);
  if (chunk != NULL)
    {
      local_route (self, &frame, chunk);
      _elbus_chunk_unref (chunk);
      _elbus_out_entry_clear (entry);
      return TRUE;
    }
  if (reference_error != NULL)
    {
      _elbus_out_entry_clear (entry);
      g_propagate_error (error, reference_error);
      return FALSE;
    }

  chunk = local_copy_frame (self, entry, self->broker->max_frame_size, &frame, error);
  if (chunk == NULL)
    return FALSE;

  /* routing takes the references it keeps */
  local_route (self, &frame, chunk);
  if (chunk != self->send_chunk)
    _elbus_chunk_unref (chunk);

  return TRUE;
}

static guint
local_queued (ElbusTransport *transport)
{
  ElbusLocal *self = (ElbusLocal *) transport;

  /* same mode: routed as sent; cross mode: the batch not yet handed over */
  return self->cross ? self->client_batch->len : 0;
}

static void
local_flush (ElbusTransport *transport)
{
  ElbusLocal *self = (ElbusLocal *) transport;

  if (self->cross)
    cross_publish (self);
}

/* The broker answers in the same thread: let it flush, a bounded few
 * passes (each may produce more: a handler answering). */
static void
local_flush_broker (ElbusLocal *self,
                    gboolean   *done)
{
  for (guint pass = 0; pass < 64 && (done == NULL || !*done) && self->broker != NULL; pass++)
    if (!_elbus_broker_flush_dirty (self->broker))
      break;
}

static gboolean
local_flush_sync (ElbusTransport  *transport,
                  double           timeout,
                  GCancellable    *cancellable,
                  GError         **error)
{
  ElbusLocal *self = (ElbusLocal *) transport;

  /* cross mode: handed over to the broker's queue, which it takes */
  if (self->cross)
    cross_publish (self);
  else
    local_flush_broker (self, NULL);
  return TRUE;
}

static gboolean cross_pump (ElbusLocal    *self,
                            gboolean      *done,
                            double         timeout,
                            GCancellable  *cancellable);

static gboolean
local_pump (ElbusTransport  *transport,
            gboolean        *done,
            double           timeout,
            GCancellable    *cancellable,
            GError         **error)
{
  ElbusLocal *self = (ElbusLocal *) transport;
  gboolean open;

  if (self->cross)
    {
      if (cross_pump (self, done, timeout, cancellable))
        return TRUE;
      open = !g_atomic_int_get (&self->broker_gone);
    }
  else
    {
      local_flush_broker (self, done);
      if (*done)
        return TRUE;
      open = self->peer != NULL;
    }

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;
  if (open)
    g_set_error_literal (error, ELBUS_ERROR, ELBUS_ERROR_OTHER, _("the broker did not answer"));
  else
    g_set_error_literal (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED,
                         _("the connection to the broker is closed"));
  return FALSE;
}

static GError *
local_tick (ElbusTransport *transport,
            gint64          now,
            gint64          limit)
{
  /* nothing to keep alive: the broker sees the client go */
  return NULL;
}

static ElbusClient *cross_client_new (ElbusBroker   *broker,
                                      ElbusLocal    *primary,
                                      GMainContext  *broker_context,
                                      const char    *name,
                                      GError       **error);

static ElbusClient *
local_new_secondary (ElbusTransport  *transport,
                     const char      *name,
                     GError         **error)
{
  ElbusLocal *self = (ElbusLocal *) transport;

  if (self->cross)
    return cross_client_new (NULL, self, NULL, name, error);

  if (self->broker == NULL)
    {
      g_set_error_literal (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED,
                           _("the primary client is not connected"));
      return NULL;
    }

  return _elbus_broker_local_client_new (self->broker, name, error);
}

static void cross_wake (CrossWake    *wake,
                        GMainContext *context);

static void
local_close (ElbusTransport *transport)
{
  ElbusLocal *self = (ElbusLocal *) transport;
  ElbusPeer *peer;

  if (self->cross)
    {
      gboolean wake;

      /* the broker's side closes the peer once it has routed what came
       * before */
      cross_publish (self);
      g_mutex_lock (&self->lock);
      wake = !self->client_closed && !self->broker_gone;
      self->client_closed = TRUE;
      _elbus_out_queue_clear (&self->towards_client);
      _elbus_out_queue_init (&self->towards_client);
      g_mutex_unlock (&self->lock);
      if (wake)
        cross_wake (&self->towards_broker_wake, self->broker_context);
      if (self->client_source != NULL)
        {
          g_source_destroy (self->client_source);
          g_clear_pointer (&self->client_source, g_source_unref);
        }
      if (self->flush_source != NULL)
        {
          g_source_destroy (self->flush_source);
          g_clear_pointer (&self->flush_source, g_source_unref);
        }
      return;
    }

  peer = g_steal_pointer (&self->peer);
  self->broker = NULL;
  if (peer == NULL)
    return;

  peer->local = NULL;
  _elbus_peer_close (peer, G_LOG_LEVEL_INFO, "closed by the in-process client");
}

static void
local_free (ElbusTransport *transport)
{
  local_close (transport);
  local_unref ((ElbusLocal *) transport);
}

static const ElbusTransportFuncs local_funcs = {
  .send = local_send,
  .queued = local_queued,
  .flush = local_flush,
  .flush_sync = local_flush_sync,
  .pump = local_pump,
  .tick = local_tick,
  .new_secondary = local_new_secondary,
  .close = local_close,
  .free = local_free,
};

/* Hands one frame queued by the broker to the client (the client's
 * thread); takes over @e's references. */
static void
local_deliver_entry (ElbusLocal    *self,
                     ElbusOutEntry *e)
{
  guint8 kind = e->hdr[0];

  /* a monitor event's payload is a GBytes or a prefix and a chunk */
  _elbus_out_entry_flatten (e);

  if (kind == ELBUS_KIND_ACK)
    _elbus_transport_ack (&self->parent, _elbus_read_u32 (e->hdr + 1), e->hdr[5]);
  else if (kind == ELBUS_KIND_MESSAGE || kind == ELBUS_KIND_BROADCAST ||
           kind == ELBUS_KIND_PUBLISH)
    {
      const char *sender = e->name != NULL ? e->name
                                           : (const char *) e->hdr + ELBUS_BROKER_HEADER_LEN;
      const guint8 *data = e->payload;
      gsize data_len = e->payload_len;
      const char *topic = NULL;
      g_autoptr(GBytes) payload = NULL;

      if (kind == ELBUS_KIND_PUBLISH)
        {
          /* TOPIC 00 PAYLOAD, as the publisher sent it */
          gsize topic_len = strlen ((const char *) data);

          topic = (const char *) data;
          data += topic_len + 1;
          data_len -= topic_len + 1;
        }
      payload = data_len > 0 ? _elbus_chunk_share (e->chunk, data, data_len)
                             : g_bytes_new_static ("", 0);
      _elbus_transport_frame (&self->parent, kind, sender, topic, payload, e->hdr[5] != 0);
    }

  _elbus_out_entry_clear (e);
}

/* Moves what the peer's flush hands over onto the queue towards the
 * client, by reference, and wakes the client's context if the queue was
 * empty. Returns FALSE when that queue is past the broker's per-client
 * limits: the client does not keep up. */
static gboolean
cross_deliver (ElbusLocal    *self,
               ElbusOutQueue *queue,
               guint64       *frames,
               guint64       *bytes)
{
  ElbusBroker *broker = self->broker;
  gboolean overflow, was_empty;
  ElbusOutEntry e;

  g_mutex_lock (&self->lock);
  if (self->client_closed)
    {
      g_mutex_unlock (&self->lock);
      _elbus_out_queue_clear (queue);
      _elbus_out_queue_init (queue);
      return TRUE;
    }
  /* every entry the broker queues is a whole frame (an ack too) */
  *frames += queue->len;
  *bytes += queue->bytes;
  was_empty = self->towards_client.len == 0;
  if (was_empty)
    {
      /* the whole batch at once: the rings change hands */
      ElbusOutQueue empty = self->towards_client;

      self->towards_client = *queue;
      *queue = empty;
    }
  else
    while (_elbus_out_queue_pop (queue, &e))
      _elbus_out_queue_push (&self->towards_client, &e);
  overflow = self->towards_client.len > broker->queue_size ||
             (broker->max_queue_bytes > 0 && self->towards_client.len > 1 &&
              self->towards_client.bytes > broker->max_queue_bytes);
  if (self->client_waiting > 0)
    g_cond_signal (&self->cond);
  g_mutex_unlock (&self->lock);

  /* one wake-up per batch, and none while the client's context runs */
  if (was_empty)
    cross_wake (&self->towards_client_wake, self->client_context);

  return !overflow;
}

/* Called by the peer's flush: hands over what is queued for the client.
 * Only what was there when it started: handlers that send to themselves
 * are served in the next flush, not in a loop here. Returns FALSE when
 * the client is too slow (cross mode): the peer then drops it. */
static gboolean
local_deliver (ElbusLocal    *self,
               ElbusOutQueue *queue,
               guint64       *frames,
               guint64       *bytes)
{
  ElbusClient *client;
  guint n = queue->len;
  ElbusOutEntry e;

  if (self->cross)
    return cross_deliver (self, queue, frames, bytes);

  if (n > 0)
    self->broker->local_delivered = TRUE;
  client = g_object_ref (self->parent.client);
  while (n-- > 0 && self->peer != NULL && _elbus_out_queue_pop (queue, &e))
    {
      gsize len = _elbus_out_entry_len (&e);

      if (len >= ELBUS_BROKER_HEADER_LEN)
        {
          (*frames)++;
          *bytes += len;
        }
      local_deliver_entry (self, &e);
    }
  g_object_unref (client);

  return TRUE;
}

/* The broker's side lets go of a cross-mode link (the broker's thread). */
static void
cross_detach_broker (ElbusLocal *self)
{
  GSource *source;

  g_mutex_lock (&self->lock);
  g_atomic_int_set (&self->broker_gone, TRUE);
  source = g_steal_pointer (&self->broker_source);
  g_cond_signal (&self->cond);
  g_mutex_unlock (&self->lock);

  self->peer = NULL;
  self->broker = NULL;
  if (source != NULL)
    {
      g_source_destroy (source);
      g_source_unref (source);
    }
  local_unref (self);   /* the peer's */
}

/* The broker dropped the peer (force_disconnect, slow consumer, broker
 * closing): the client learns it at once (cross mode: when its context
 * next runs). @self's peer link is already cut; the caller took
 * local_hold() before the peer was forgotten. */
static void
local_closed (ElbusLocal *self,
              const char *reason)
{
  GError *error = g_error_new (ELBUS_ERROR, ELBUS_ERROR_CLOSED,
                               _("the broker dropped this client: %s"), reason);
  ElbusClient *client;

  if (self->cross)
    {
      gboolean wake = FALSE;

      g_mutex_lock (&self->lock);
      if (!self->client_closed && self->closed_error == NULL)
        {
          self->closed_error = g_steal_pointer (&error);
          wake = TRUE;
        }
      g_mutex_unlock (&self->lock);
      g_clear_error (&error);
      if (wake)
        cross_wake (&self->towards_client_wake, self->client_context);
      cross_detach_broker (self);
      local_unref (self);   /* the hold */
      return;
    }

  client = self->parent.client;
  self->peer = NULL;
  self->broker = NULL;
  _elbus_transport_closed (&self->parent, error);
  g_object_unref (client);
}

/* Keeps @self (same mode: the client, so @self) alive until
 * local_closed(). */
static void
local_hold (ElbusLocal *self)
{
  if (self->cross)
    local_ref (self);
  else
    g_object_ref (self->parent.client);
}

/* What the peer calls on its in-process client (elbus-broker-peer.c). */

/* Hands over what waits for the client: BLOCKED when it does not keep up
 * (cross mode), and the peer drops it as a slow consumer. */
static ElbusWriteStatus
local_peer_write (ElbusPeer *peer,
                  guint64   *frames,
                  guint64   *bytes)
{
  return local_deliver (peer->local, &peer->out, frames, bytes) ? ELBUS_WRITE_DONE
                                                               : ELBUS_WRITE_BLOCKED;
}

/* The peer closes: unless the client closed it, the client is held (a
 * client-unregistered handler may drop it) until local_closed(). */
static void
local_peer_close (ElbusPeer *peer)
{
  if (peer->local != NULL)
    local_hold (peer->local);
}

static const ElbusPeerFuncs local_peer_funcs = {
  .write = local_peer_write,
  .close = local_peer_close,
  .closed = local_closed,
};

static ElbusLocal *
local_new (ElbusClient *client)
{
  ElbusLocal *self = g_new0 (ElbusLocal, 1);

  self->parent.funcs = &local_funcs;
  self->parent.client = client;
  /* bound to the thread that creates it */
  self->parent.thread = g_thread_self ();
  g_atomic_ref_count_init (&self->ref);

  return self;
}

static gboolean
check_name (const char  *name,
            GError     **error)
{
  gsize name_len = strlen (name);

  /* the broker's own clients may take names under "." */
  if (_elbus_codec_check_name (name[0] == '.' ? name + 1 : name,
                               name[0] == '.' ? name_len - 1 : name_len) != ELBUS_RESULT_OK)
    {
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA, _("“%s” is not a valid client name"),
                   name);
      return FALSE;
    }

  return TRUE;
}

ElbusClient *
_elbus_broker_local_client_new (ElbusBroker  *broker,
                                const char   *name,
                                GError      **error)
{
  g_autoptr(ElbusClient) client = NULL;
  gsize name_len = strlen (name);
  ElbusLocal *self;
  guint8 result;

  if (!check_name (name, error))
    return NULL;

  client = g_object_new (ELBUS_TYPE_CLIENT, "name", name, NULL);
  self = local_new (client);
  self->peer = _elbus_peer_new_internal (broker, self, &local_peer_funcs);
  result = _elbus_broker_register (broker, self->peer, name, name_len);
  if (result != ELBUS_RESULT_OK)
    {
      self->peer->closed = TRUE;
      _elbus_peer_unref (self->peer);
      local_unref (self);
      g_propagate_error (error, _elbus_client_registration_error (result, name));
      return NULL;
    }

  self->broker = broker;
  _elbus_client_attach_transport (client, &self->parent);

  return g_steal_pointer (&client);
}

/* cross mode */

/* A side's source: ready while its CrossWake is pending. */
typedef struct {
  GSource    source;
  CrossWake *wake;       /* in the link, which the callback data keeps */
} CrossSource;

static gboolean
cross_source_prepare (GSource *source,
                      int     *timeout)
{
  CrossWake *wake = ((CrossSource *) source)->wake;

  *timeout = -1;
  /* armed first, then pending: a waker that set pending after this look
   * sees armed and wakes the poll() that may follow */
  g_atomic_int_set (&wake->armed, TRUE);
  if (g_atomic_int_get (&wake->pending))
    {
      g_atomic_int_set (&wake->armed, FALSE);
      return TRUE;
    }
  return FALSE;
}

static gboolean
cross_source_check (GSource *source)
{
  CrossWake *wake = ((CrossSource *) source)->wake;

  g_atomic_int_set (&wake->armed, FALSE);
  return g_atomic_int_get (&wake->pending);
}

static gboolean
cross_source_dispatch (GSource     *source,
                       GSourceFunc  callback,
                       gpointer     user_data)
{
  return callback (user_data);
}

static GSourceFuncs cross_source_funcs = {
  .prepare = cross_source_prepare,
  .check = cross_source_check,
  .dispatch = cross_source_dispatch,
};

static GSource *
cross_source_new (ElbusLocal   *self,
                  CrossWake    *wake,
                  GSourceFunc   func,
                  const char   *name)
{
  GSource *source = g_source_new (&cross_source_funcs, sizeof (CrossSource));

  ((CrossSource *) source)->wake = wake;
  g_source_set_callback (source, func, local_ref (self), (GDestroyNotify) local_unref);
  g_source_set_static_name (source, name);

  return source;
}

/* Tells the other side that its queue turned non-empty (or a close waits
 * for it): one wake-up of its context, and none while that context runs
 * (it looks at pending before it sleeps). */
static void
cross_wake (CrossWake    *wake,
            GMainContext *context)
{
  g_atomic_int_set (&wake->pending, TRUE);
  if (g_atomic_int_get (&wake->armed))
    g_main_context_wakeup (context);
}

/* Drops frames that will never be routed. */
static void
local_frames_clear (GArray *frames)
{
  for (guint i = 0; i < frames->len; i++)
    if (g_array_index (frames, LocalFrame, i).owns)
      _elbus_chunk_unref (g_array_index (frames, LocalFrame, i).chunk);
  g_array_set_size (frames, 0);
}

/* On the client's thread: hands the batch over to the broker's queue
 * (the arrays change hands when that is empty), and wakes the broker's
 * context if the queue was empty. */
static void
cross_publish (ElbusLocal *self)
{
  gboolean was_empty;

  if (self->client_batch->len == 0)
    return;

  self->client_batch_bytes = 0;
  g_mutex_lock (&self->lock);
  if (G_UNLIKELY (self->broker_gone || self->client_closed))
    {
      /* the client learns it from the broker's close */
      g_mutex_unlock (&self->lock);
      local_frames_clear (self->client_batch);
      return;
    }
  was_empty = self->towards_broker->len == 0;
  if (was_empty)
    {
      GArray *empty = self->towards_broker;

      self->towards_broker = self->client_batch;
      self->client_batch = empty;
    }
  else
    {
      g_array_append_vals (self->towards_broker, self->client_batch->data,
                           self->client_batch->len);
      g_array_set_size (self->client_batch, 0);
    }
  g_mutex_unlock (&self->lock);

  if (was_empty)
    cross_wake (&self->towards_broker_wake, self->broker_context);
}

/* On the client's thread: encoded once into a chunk, checked, and added
 * to the client's batch, which goes to the broker at once for a
 * real-time frame or once buf-size bytes wait, else before the client's
 * loop sleeps (as a socket client writes). */
static gboolean
cross_send (ElbusLocal     *self,
            ElbusOutEntry  *entry,
            gboolean        realtime,
            GError        **error)
{
  LocalFrame f;

  if (G_UNLIKELY (g_atomic_int_get (&self->broker_gone)))
    {
      _elbus_out_entry_clear (entry);
      g_set_error_literal (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED,
                           _("the connection to the broker is closed"));
      return FALSE;
    }

  f.chunk = local_copy_frame (self, entry, self->max_frame_size, &f.frame, error);
  if (f.chunk == NULL)
    return FALSE;
  /* one reference per run of frames in the same chunk of a batch: fewer
   * atomic operations on a count the broker's thread uses too */
  f.owns = TRUE;
  if (f.chunk == self->send_chunk)
    {
      if (self->client_batch->len > 0 &&
          g_array_index (self->client_batch, LocalFrame, self->client_batch->len - 1).chunk ==
          f.chunk)
        f.owns = FALSE;
      else
        _elbus_chunk_ref (f.chunk);
    }

  g_array_append_val (self->client_batch, f);
  self->client_batch_bytes += f.frame.frame_len;
  if (realtime || self->client_batch_bytes >= self->parent.buf_size)
    cross_publish (self);

  return TRUE;
}

/* Before the client's loop sleeps, its batch goes to the broker. The
 * source is destroyed when the client closes, on the same thread, so its
 * link is not referenced. */
typedef struct {
  GSource     source;
  ElbusLocal *link;      /* (unowned) */
} CrossFlushSource;

static gboolean
cross_flush_prepare (GSource *source,
                     int     *timeout)
{
  *timeout = -1;
  cross_publish (((CrossFlushSource *) source)->link);
  return FALSE;
}

static gboolean
cross_flush_dispatch (GSource     *source,
                      GSourceFunc  callback,
                      gpointer     user_data)
{
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs cross_flush_source_funcs = {
  .prepare = cross_flush_prepare,
  .dispatch = cross_flush_dispatch,
};

/* On the broker's context: routes a batch of the client's frames as if
 * read from a socket, then closes the peer if the client closed. */
static gboolean
cross_broker_dispatch (gpointer user_data)
{
  ElbusLocal *self = user_data;
  GArray *batch = self->broker_spare;
  ElbusBroker *broker = self->broker;
  ElbusChunk *held = NULL;
  gboolean client_closed;

  /* cleared before the swap: what is queued after it wakes again */
  g_atomic_int_set (&self->towards_broker_wake.pending, FALSE);
  g_mutex_lock (&self->lock);
  self->broker_spare = self->towards_broker;
  self->towards_broker = batch;
  batch = self->broker_spare;
  client_closed = self->client_closed;
  g_mutex_unlock (&self->lock);

  for (guint i = 0; i < batch->len; i++)
    {
      LocalFrame *f = &g_array_index (batch, LocalFrame, i);

      /* the run of frames in one chunk is held until it ends */
      if (f->owns)
        {
          g_clear_pointer (&held, _elbus_chunk_unref);
          held = f->chunk;
        }
      /* routing may close the peer (a refused frame) */
      if (self->peer != NULL)
        local_route (self, &f->frame, f->chunk);
    }
  g_clear_pointer (&held, _elbus_chunk_unref);
  g_array_set_size (batch, 0);

  if (client_closed && self->peer != NULL)
    {
      ElbusPeer *peer = self->peer;

      peer->local = NULL;
      cross_detach_broker (self);
      _elbus_peer_close (peer, G_LOG_LEVEL_INFO, "closed by the in-process client");
    }
  if (broker != NULL)
    _elbus_broker_end_dispatch (broker);

  return G_SOURCE_CONTINUE;
}

/* Takes what waits towards the client, and delivers it on the client's
 * thread; then the broker's close, if any. */
static void
cross_take (ElbusLocal *self)
{
  ElbusOutQueue batch = self->client_spare;
  GError *closed_error;
  ElbusOutEntry e;

  g_atomic_int_set (&self->towards_client_wake.pending, FALSE);
  g_mutex_lock (&self->lock);
  self->client_spare = self->towards_client;
  self->towards_client = batch;
  batch = self->client_spare;
  closed_error = g_steal_pointer (&self->closed_error);
  g_mutex_unlock (&self->lock);

  if (batch.len == 0 && closed_error == NULL)
    return;

  g_object_ref (self->parent.client);
  while (_elbus_out_queue_pop (&self->client_spare, &e))
    {
      if (self->client_closed)
        _elbus_out_entry_clear (&e);
      else
        local_deliver_entry (self, &e);
    }
  if (closed_error != NULL && !self->client_closed)
    _elbus_transport_closed (&self->parent, g_steal_pointer (&closed_error));
  g_clear_error (&closed_error);
  g_object_unref (self->parent.client);
}

static gboolean
cross_client_dispatch (gpointer user_data)
{
  cross_take (user_data);
  return G_SOURCE_CONTINUE;
}

/* A cancellation wakes a _sync call waiting on the link's condition. */
static void
cross_pump_cancelled (GCancellable *cancellable,
                      ElbusLocal   *self)
{
  g_mutex_lock (&self->lock);
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
}

/* The engine of the _sync calls: waits for the broker's side on the
 * calling (the client's) thread and delivers here, until *@done. */
static gboolean
cross_pump (ElbusLocal    *self,
            gboolean      *done,
            double         timeout,
            GCancellable  *cancellable)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) (timeout * G_USEC_PER_SEC);
  gulong cancel_id = 0;
  gboolean ok = TRUE;

  cross_publish (self);
  cross_take (self);
  if (*done)
    return TRUE;

  /* runs at once if already cancelled; not under the lock */
  if (cancellable != NULL)
    cancel_id = g_cancellable_connect (cancellable, G_CALLBACK (cross_pump_cancelled), self,
                                       NULL);
  while (!*done)
    {
      gboolean ready;

      g_mutex_lock (&self->lock);
      self->client_waiting++;
      while (self->towards_client.len == 0 && self->closed_error == NULL && !self->broker_gone &&
             !g_cancellable_is_cancelled (cancellable))
        if (!g_cond_wait_until (&self->cond, &self->lock, deadline))
          break;
      self->client_waiting--;
      ready = self->towards_client.len > 0 || self->closed_error != NULL;
      g_mutex_unlock (&self->lock);
      if (!ready || g_cancellable_is_cancelled (cancellable))
        {
          ok = FALSE;
          break;
        }
      cross_take (self);
    }
  /* waits for a handler running on another thread; not under the lock */
  g_cancellable_disconnect (cancellable, cancel_id);

  return ok;
}

typedef enum {
  REGISTER_PENDING,
  REGISTER_RUNNING,
  REGISTER_DONE,
  REGISTER_ABANDONED,
} RegisterState;

/* A registration handed to the broker's thread, and its answer. */
typedef struct {
  gatomicrefcount  ref;
  GMutex           lock;
  GCond            cond;
  RegisterState    state;
  ElbusBroker     *broker;      /* (unowned) (nullable): the caller's */
  ElbusLocal      *primary;     /* (owned) (nullable): or the primary's broker */
  ElbusLocal      *self;        /* (owned) */
  char            *name;
  guint8           result;
  gboolean         closed;
} Register;

static void
register_unref (Register *reg)
{
  if (!g_atomic_ref_count_dec (&reg->ref))
    return;

  g_clear_pointer (&reg->primary, local_unref);
  local_unref (reg->self);
  g_free (reg->name);
  g_mutex_clear (&reg->lock);
  g_cond_clear (&reg->cond);
  g_free (reg);
}

/* On the broker's thread. */
static gboolean
register_on_broker (gpointer user_data)
{
  Register *reg = user_data;
  ElbusLocal *self;
  ElbusBroker *broker;

  /* the caller attached this under the lock: what it wrote before is
   * seen from here */
  g_mutex_lock (&reg->lock);
  if (reg->state == REGISTER_ABANDONED)
    {
      g_mutex_unlock (&reg->lock);
      return G_SOURCE_REMOVE;
    }
  reg->state = REGISTER_RUNNING;
  self = reg->self;
  g_mutex_unlock (&reg->lock);

  broker = reg->primary != NULL ? reg->primary->broker : reg->broker;
  if (broker == NULL || broker->closed)
    reg->closed = TRUE;
  else
    {
      self->peer = _elbus_peer_new_internal (broker, self, &local_peer_funcs);
      reg->result = _elbus_broker_register (broker, self->peer, reg->name, strlen (reg->name));
      if (reg->result != ELBUS_RESULT_OK)
        {
          self->peer->closed = TRUE;
          _elbus_peer_unref (self->peer);
          self->peer = NULL;
        }
      else
        {
          self->broker = broker;
          self->max_frame_size = broker->max_frame_size;
          local_ref (self);   /* the peer's */
          g_mutex_lock (&self->lock);
          self->broker_source = cross_source_new (self, &self->towards_broker_wake,
                                                  cross_broker_dispatch,
                                                  "elbus in-process client");
          g_source_attach (self->broker_source, broker->context);
          g_mutex_unlock (&self->lock);
        }
    }

  g_mutex_lock (&reg->lock);
  reg->state = REGISTER_DONE;
  g_cond_signal (&reg->cond);
  g_mutex_unlock (&reg->lock);

  return G_SOURCE_REMOVE;
}

/* Registers an in-process client bound to the calling thread's context,
 * on @broker (or @primary's broker), whose context another thread runs:
 * the registration runs there, and the caller waits for it at most the
 * client's timeout. */
static ElbusClient *
cross_client_new (ElbusBroker   *broker,
                  ElbusLocal    *primary,
                  GMainContext  *broker_context,
                  const char    *name,
                  GError       **error)
{
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(GMainContext) context = g_main_context_ref_thread_default ();
  GSource *idle;
  Register *reg;
  ElbusLocal *self;
  gint64 deadline;
  gboolean ok;

  if (!check_name (name, error))
    return NULL;

  client = g_object_new (ELBUS_TYPE_CLIENT, "name", name, NULL);
  self = local_new (client);
  self->cross = TRUE;
  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
  self->towards_broker = g_array_new (FALSE, FALSE, sizeof (LocalFrame));
  self->broker_spare = g_array_new (FALSE, FALSE, sizeof (LocalFrame));
  _elbus_out_queue_init (&self->towards_client);
  _elbus_out_queue_init (&self->client_spare);
  self->client_batch = g_array_new (FALSE, FALSE, sizeof (LocalFrame));
  self->client_source = cross_source_new (self, &self->towards_client_wake,
                                          cross_client_dispatch, "elbus in-process client");
  /* prepared before anything else, as a socket client's flush */
  self->flush_source = g_source_new (&cross_flush_source_funcs, sizeof (CrossFlushSource));
  ((CrossFlushSource *) self->flush_source)->link = self;
  g_source_set_static_name (self->flush_source, "elbus in-process client flush");
  g_source_set_priority (self->flush_source, G_PRIORITY_HIGH - 100);
  /* before the registration: the broker's side wakes it from then on */
  self->client_context = g_main_context_ref (context);

  if (broker_context == NULL)
    broker_context = primary->broker_context;
  self->broker_context = g_main_context_ref (broker_context);

  reg = g_new0 (Register, 1);
  g_atomic_ref_count_init (&reg->ref);
  g_mutex_init (&reg->lock);
  g_cond_init (&reg->cond);
  reg->broker = broker;
  reg->primary = primary != NULL ? local_ref (primary) : NULL;
  reg->self = local_ref (self);
  reg->name = g_strdup (name);

  /* attached, never run in place: the broker's thread registers; under
   * the lock, which the broker's side takes before it reads anything, so
   * that what was written here is ordered before it by the lock alone */
  deadline = g_get_monotonic_time () + (gint64) (elbus_client_get_timeout (client) * G_USEC_PER_SEC);
  idle = g_idle_source_new ();
  g_source_set_priority (idle, G_PRIORITY_HIGH);
  g_atomic_ref_count_inc (&reg->ref);
  g_source_set_callback (idle, register_on_broker, reg, (GDestroyNotify) register_unref);
  g_source_set_static_name (idle, "elbus in-process registration");
  g_mutex_lock (&reg->lock);
  g_source_attach (idle, broker_context);
  while (reg->state != REGISTER_DONE)
    if (!g_cond_wait_until (&reg->cond, &reg->lock, deadline) && reg->state == REGISTER_PENDING)
      {
        reg->state = REGISTER_ABANDONED;
        break;
      }
  ok = reg->state == REGISTER_DONE;
  g_mutex_unlock (&reg->lock);
  g_source_destroy (idle);
  g_source_unref (idle);

  if (!ok || reg->closed || reg->result != ELBUS_RESULT_OK)
    {
      if (!ok)
        g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_TIMEOUT,
                     _("the broker’s main context did not run within %g s"),
                     elbus_client_get_timeout (client));
      else if (reg->closed)
        g_set_error_literal (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED, _("the broker is closed"));
      else
        g_propagate_error (error, _elbus_client_registration_error (reg->result, name));
      register_unref (reg);
      g_source_destroy (self->client_source);
      g_clear_pointer (&self->client_source, g_source_unref);
      g_clear_pointer (&self->flush_source, g_source_unref);
      local_unref (self);
      return NULL;
    }
  register_unref (reg);

  _elbus_client_attach_transport (client, &self->parent);
  g_source_attach (self->client_source, context);
  g_source_attach (self->flush_source, context);

  return g_steal_pointer (&client);
}

/* the public entry */

/* The calling thread's thread-default main context. */
static GMainContext *
caller_context (void)
{
  GMainContext *context = g_main_context_get_thread_default ();

  return context != NULL ? context : g_main_context_default ();
}

/* The calling thread is the broker's: its thread-default main context is
 * the broker's, and no other thread is running that context. */
static gboolean
on_broker_thread (ElbusBroker *self)
{
  if (caller_context () != self->context)
    return FALSE;
  if (!g_main_context_acquire (self->context))
    return FALSE;
  g_main_context_release (self->context);

  return TRUE;
}

/**
 * elbus_broker_register_client:
 * @self: an #ElbusBroker
 * @name: the client's name; names starting with `.` are allowed for the
 *   broker's own services
 * @error: return location for an error
 *
 * Registers an in-process client: an [class@Elbus.Client] that lives in the
 * broker's process and costs no socket, but behaves like any other (same
 * API, signals and acknowledgements; other clients see it as kind
 * `internal`).
 *
 * Like every client, it is bound to the thread-default main context of the
 * calling thread, and must be used from that thread only (other threads
 * are refused with a critical warning and %ELBUS_ERROR_OTHER).
 *
 * Called on the broker's thread (the calling thread's thread-default main
 * context is the broker's), its frames are routed as soon as it sends
 * them, and frames for it are handed over when the broker flushes: before
 * the main loop sleeps, or at once for real-time frames and
 * acknowledgements.
 *
 * Called on any other thread, with its own thread-default main context,
 * the registration runs on the broker's main context, and this call waits
 * for it: if nobody runs the broker's context within the client's default
 * [property@Elbus.Client:timeout], it fails with %ELBUS_ERROR_TIMEOUT.
 * Frames then cross between the two contexts through a queue in each
 * direction, one wake-up of the other context per batch; the client's
 * signals are emitted when its own context runs. Frames waiting for it
 * count against the broker's per-client queue limits, as for a socket
 * client: a client whose context does not run is dropped as a slow
 * consumer. Once the broker is closed or gone, its operations fail with
 * %ELBUS_ERROR_CLOSED.
 *
 * Called from a thread whose thread-default main context is the broker's
 * while another thread runs that context, it logs a critical warning and
 * fails with %ELBUS_ERROR_OTHER without touching the broker. It has no
 * [property@Elbus.Client:address]. Closing it, or the broker dropping it,
 * ends it like a disconnection.
 *
 * Returns: (transfer full): a registered client, or %NULL when the name is
 *   invalid or taken
 *
 * Since: 1.0
 */
ElbusClient *
elbus_broker_register_client (ElbusBroker  *self,
                              const char   *name,
                              GError      **error)
{
  g_return_val_if_fail (ELBUS_IS_BROKER (self), NULL);
  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  /* the broker's state is read on its own thread only */
  if (caller_context () != self->context)
    return cross_client_new (self, NULL, self->context, name, error);
  if (self->closed)
    {
      g_set_error_literal (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED, _("the broker is closed"));
      return NULL;
    }
  if (!on_broker_thread (self))
    {
      g_critical ("elbus_broker_register_client (%s) called from a thread other than the "
                  "broker's, on the broker's main context; refused", name);
      g_set_error_literal (error, ELBUS_ERROR, ELBUS_ERROR_OTHER,
                           "in-process clients are registered from the broker's thread only");
      return NULL;
    }

  return _elbus_broker_local_client_new (self, name, error);
}

