/* SPDX-License-Identifier: MIT */
/*
 * The transport interface: what an ElbusClient needs from the other end of
 * its connection (hand over an encoded frame, flush, drive a _sync call,
 * close), and what that end calls on the client (a frame arrived, an ack
 * arrived, the connection closed). The client knows nothing else of it.
 *
 * Implementations: the socket transport (elbus-client-socket.c), the
 * WebSocket transport (elbus-client-ws.c) and the in-process transport,
 * which lives with the broker (elbus-broker-local.c) and is the one place
 * that knows both sides.
 *
 * Every function runs on the client's thread. A transport is owned by its
 * client and freed with it; after close() it makes no more callbacks.
 */
#pragma once

#include "elbus-client.h"
#include "elbus-codec-private.h"
#include "elbus-io-private.h"

G_BEGIN_DECLS

typedef struct _ElbusTransport      ElbusTransport;
typedef struct _ElbusTransportFuncs ElbusTransportFuncs;

struct _ElbusTransportFuncs {
  /* Takes over @entry's references (dropped on failure): one encoded
   * client frame. Real-time frames go at once, others before the loop
   * next sleeps (or when buf-size bytes wait). */
  gboolean      (*send)          (ElbusTransport  *transport,
                                  ElbusOutEntry   *entry,
                                  gboolean         realtime,
                                  GError         **error);
  /* Frames taken by send() and not yet handed over. */
  guint         (*queued)        (ElbusTransport  *transport);
  /* Hands over what waits as far as the other end takes it, without
   * blocking. */
  void          (*flush)         (ElbusTransport  *transport);
  /* Blocks until everything is handed over, at most @timeout seconds. */
  gboolean      (*flush_sync)    (ElbusTransport  *transport,
                                  double           timeout,
                                  GCancellable    *cancellable,
                                  GError         **error);
  /* Drives the connection from the calling thread, without iterating the
   * client's context, until *@done or @timeout seconds: the engine of the
   * _sync calls. Frames and acks arrive through the callbacks below. */
  gboolean      (*pump)          (ElbusTransport  *transport,
                                  gboolean        *done,
                                  double           timeout,
                                  GCancellable    *cancellable,
                                  GError         **error);
  /* The client's keep-alive tick: returns why the connection is dead
   * (nothing taken for @limit µs), else NULL; may send a ping. */
  GError       *(*tick)          (ElbusTransport  *transport,
                                  gint64           now,
                                  gint64           limit);
  /* (nullable): registers a secondary over the same kind of transport,
   * at once; NULL means the client connects one by its address. */
  ElbusClient  *(*new_secondary) (ElbusTransport  *transport,
                                  const char      *name,
                                  GError         **error);
  /* Ends the connection (idempotent); no callback after it. */
  void          (*close)         (ElbusTransport  *transport);
  void          (*free)          (ElbusTransport  *transport);
};

/* What the other end calls on the client, set when the client takes the
 * transport. */
typedef struct {
  void (*frame)  (ElbusClient *client,
                  guint8       kind,
                  const char  *sender,
                  const char  *topic,
                  GBytes      *payload,
                  gboolean     realtime);
  void (*ack)    (ElbusClient *client,
                  guint32      op_id,
                  guint8       result);
  /* The other end closed (takes @error): the client closes the transport
   * and fails what is pending. */
  void (*closed) (ElbusClient *client,
                  GError      *error);
} ElbusTransportEvents;

struct _ElbusTransport {
  const ElbusTransportFuncs  *funcs;
  const ElbusTransportEvents *events;  /* set by _elbus_client_attach_transport() */
  ElbusClient                *client;  /* (unowned): owns the transport */
  GThread                    *thread;  /* (unowned) (nullable): the only thread
                                        * that may use it; NULL: the client's */
  guint                       buf_size; /* the client's: flush once this much waits */
};

/* Makes @client (constructed, not yet initialized) connected over
 * @transport, which it then owns. */
void     _elbus_client_attach_transport (ElbusClient     *client,
                                         ElbusTransport  *transport);
/* The error for a refused registration (result byte of the handshake). */
GError  *_elbus_client_registration_error (guint8         result,
                                           const char    *name);

/* The socket transport (elbus-client-socket.c), over a connection whose
 * handshake is done, its sources on @context. */
ElbusTransport *_elbus_socket_transport_new (ElbusClient       *client,
                                             GSocketConnection *connection,
                                             GMainContext      *context);

/* The WebSocket transport (elbus-client-ws.c): ws:// and wss:// addresses.
 * Connecting includes the handshake; its sources go on @context. Without
 * libsoup it fails with G_IO_ERROR_NOT_SUPPORTED. */
gboolean        _elbus_address_is_ws     (const char          *address);
void            _elbus_ws_connect_async  (ElbusClient         *client,
                                          const char          *address,
                                          const char          *name,
                                          GMainContext        *context,
                                          GCancellable        *cancellable,
                                          GAsyncReadyCallback  callback,
                                          gpointer             user_data);
ElbusTransport *_elbus_ws_connect_finish (GAsyncResult        *result,
                                          GError             **error);
/* Iterates @context until done, at most @timeout seconds. */
ElbusTransport *_elbus_ws_connect_sync   (ElbusClient         *client,
                                          const char          *address,
                                          const char          *name,
                                          GMainContext        *context,
                                          double               timeout,
                                          GCancellable        *cancellable,
                                          GError             **error);

static inline void
_elbus_transport_frame (ElbusTransport *transport,
                        guint8          kind,
                        const char     *sender,
                        const char     *topic,
                        GBytes         *payload,
                        gboolean        realtime)
{
  transport->events->frame (transport->client, kind, sender, topic, payload, realtime);
}

static inline void
_elbus_transport_ack (ElbusTransport *transport,
                      guint32         op_id,
                      guint8          result)
{
  transport->events->ack (transport->client, op_id, result);
}

/* For a transport that reads the broker's bytes into @rb: consumes the
 * frame @bf just decoded there and hands it over, its payload shared
 * from @rb's chunk, not copied; a ping goes no further. */
static inline void
_elbus_transport_deliver_decoded (ElbusTransport         *transport,
                                  ElbusReadBuf           *rb,
                                  const ElbusBrokerFrame *bf)
{
  rb->start += bf->frame_len;
  if (bf->kind == ELBUS_KIND_ACK)
    _elbus_transport_ack (transport, bf->op_id, bf->result);
  else if (bf->kind != ELBUS_KIND_PING)
    {
      GBytes *payload = _elbus_chunk_share (rb->chunk, bf->payload, bf->payload_len);

      _elbus_transport_frame (transport, bf->kind, bf->sender, bf->topic, payload,
                              bf->realtime);
      g_bytes_unref (payload);
    }
}

static inline void
_elbus_transport_closed (ElbusTransport *transport,
                         GError         *error)
{
  transport->events->closed (transport->client, error);
}

G_END_DECLS
