/* SPDX-License-Identifier: MIT */
/* The in-process transport: an ElbusClient whose other end is an ElbusPeer
 * of kind internal in the same broker; the one file that knows both the
 * client's side (elbus-transport-private.h) and the broker's.
 *
 * On the broker's thread and main context there is no socket and no lock:
 * what the client sends is copied once into a chunk and routed at once,
 * and what the broker queues for it is handed over when the broker
 * flushes (before the loop sleeps, or at once for real-time frames and
 * acks). */
#include "config.h"

#include <string.h>

#include "elbus-broker-private.h"
#include "elbus-codec-private.h"
#include "elbus-error.h"
#include "elbus-i18n-private.h"
#include "elbus-transport-private.h"

struct _ElbusLocal {
  ElbusTransport  parent;
  ElbusBroker    *broker;          /* (unowned) (nullable): cleared when either side closes */
  ElbusPeer      *peer;            /* (unowned) (nullable): likewise */
};

/* Routes a frame of an in-process client at once: one copy into a chunk,
 * decoded and checked like any frame from a socket. */
static gboolean
local_send (ElbusTransport  *transport,
            ElbusOutEntry   *entry,
            gboolean         realtime,
            GError         **error)
{
  ElbusLocal *self = (ElbusLocal *) transport;
  ElbusBroker *broker = self->broker;
  ElbusPeer *peer = self->peer;
  gsize len = _elbus_out_entry_len (entry);
  ElbusChunk *chunk = _elbus_chunk_new (len);
  guint8 *p = chunk->data;
  ElbusClientFrame frame;
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
  if (entry->payload_len > 0)
    memcpy (p, entry->payload, entry->payload_len);
  _elbus_out_entry_clear (entry);

  if (_elbus_codec_decode_client_frame (chunk->data, len, broker->max_frame_size, &frame,
                                        &needed, &decode_error) != ELBUS_DECODE_OK)
    {
      _elbus_chunk_unref (chunk);
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA, _("the broker refuses the frame: %s"),
                   decode_error != NULL ? decode_error->message : _("incomplete"));
      return FALSE;
    }

  peer->stats.r_frames++;
  peer->stats.r_bytes += len;
  broker->stats.r_frames++;
  broker->stats.r_bytes += len;
  _elbus_broker_route (broker, peer, &frame, chunk);
  _elbus_chunk_unref (chunk);

  return TRUE;
}

static guint
local_queued (ElbusTransport *transport)
{
  /* routed as sent */
  return 0;
}

static void
local_flush (ElbusTransport *transport)
{
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
  local_flush_broker ((ElbusLocal *) transport, NULL);
  return TRUE;
}

static gboolean
local_pump (ElbusTransport  *transport,
            gboolean        *done,
            double           timeout,
            GCancellable    *cancellable,
            GError         **error)
{
  ElbusLocal *self = (ElbusLocal *) transport;

  local_flush_broker (self, done);
  if (*done)
    return TRUE;

  if (self->peer != NULL)
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

static ElbusClient *
local_new_secondary (ElbusTransport  *transport,
                     const char      *name,
                     GError         **error)
{
  ElbusLocal *self = (ElbusLocal *) transport;

  if (self->broker == NULL)
    {
      g_set_error_literal (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED,
                           _("the primary client is not connected"));
      return NULL;
    }

  return _elbus_broker_local_client_new (self->broker, name, error);
}

static void
local_close (ElbusTransport *transport)
{
  ElbusLocal *self = (ElbusLocal *) transport;
  ElbusPeer *peer = g_steal_pointer (&self->peer);

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
  g_free (transport);
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

/* Called by the peer's flush: hands over what is queued for the client.
 * Only what was there when it started: handlers that send to themselves
 * are served in the next flush, not in a loop here. */
void
_elbus_local_deliver (ElbusLocal    *self,
                      ElbusOutQueue *queue,
                      guint64       *frames,
                      guint64       *bytes)
{
  ElbusClient *client = g_object_ref (self->parent.client);
  guint n = queue->len;
  ElbusOutEntry e;

  while (n-- > 0 && self->peer != NULL && _elbus_out_queue_pop (queue, &e))
    {
      gsize len = _elbus_out_entry_len (&e);
      guint8 kind = e.hdr[0];

      if (len >= ELBUS_BROKER_HEADER_LEN)
        {
          (*frames)++;
          *bytes += len;
        }
      /* a monitor event's payload is a GBytes or a prefix and a chunk */
      _elbus_out_entry_flatten (&e);

      if (kind == ELBUS_KIND_ACK)
        _elbus_transport_ack (&self->parent, _elbus_read_u32 (e.hdr + 1), e.hdr[5]);
      else if (kind == ELBUS_KIND_MESSAGE || kind == ELBUS_KIND_BROADCAST ||
               kind == ELBUS_KIND_PUBLISH)
        {
          const char *sender = e.name != NULL ? e.name
                                              : (const char *) e.hdr + ELBUS_BROKER_HEADER_LEN;
          const guint8 *data = e.payload;
          gsize data_len = e.payload_len;
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
          payload = data_len > 0 ? _elbus_chunk_share (e.chunk, data, data_len)
                                 : g_bytes_new_static ("", 0);
          _elbus_transport_frame (&self->parent, kind, sender, topic, payload, e.hdr[5] != 0);
        }

      _elbus_out_entry_clear (&e);
    }

  g_object_unref (client);
}

/* The broker dropped the peer (force_disconnect, slow consumer, broker
 * closing): the client learns it at once. @self's peer link is already
 * cut; the caller took _elbus_local_hold() before the peer was
 * forgotten. */
void
_elbus_local_closed (ElbusLocal *self,
                     const char *reason)
{
  ElbusClient *client = self->parent.client;

  self->peer = NULL;
  self->broker = NULL;
  _elbus_transport_closed (&self->parent, g_error_new (ELBUS_ERROR, ELBUS_ERROR_CLOSED,
                                                       _("the broker dropped this client: %s"),
                                                       reason));
  g_object_unref (client);
}

/* Keeps the client (and so @self) alive until _elbus_local_closed(). */
void
_elbus_local_hold (ElbusLocal *self)
{
  g_object_ref (self->parent.client);
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

  /* the broker's own clients may take names under "." */
  result = _elbus_codec_check_name (name[0] == '.' ? name + 1 : name,
                                    name[0] == '.' ? name_len - 1 : name_len);
  if (result != ELBUS_RESULT_OK)
    {
      g_set_error (error, ELBUS_ERROR, ELBUS_ERROR_DATA, _("“%s” is not a valid client name"),
                   name);
      return NULL;
    }

  client = g_object_new (ELBUS_TYPE_CLIENT, "name", name, NULL);
  self = g_new0 (ElbusLocal, 1);
  self->parent.funcs = &local_funcs;
  self->parent.client = client;
  /* it touches the broker's state directly: the broker's thread only */
  self->parent.thread = g_thread_self ();
  self->peer = _elbus_peer_new_internal (broker, self);
  result = _elbus_broker_register (broker, self->peer, name, name_len);
  if (result != ELBUS_RESULT_OK)
    {
      self->peer->closed = TRUE;
      _elbus_peer_unref (self->peer);
      g_free (self);
      g_propagate_error (error, _elbus_client_registration_error (result, name));
      return NULL;
    }

  self->broker = broker;
  _elbus_client_attach_transport (client, &self->parent);

  return g_steal_pointer (&client);
}
