/* SPDX-License-Identifier: MIT */
/*
 * What the pieces of ElbusClient share: its instance struct, and the
 * functions one piece offers the others. The pieces, bottom to top (each
 * uses only those below it):
 *
 *   elbus-client-deliver.c  what the transport hands back: frames and their
 *                           signals, acks, keep-alive, the end of the
 *                           connection
 *   elbus-client-ops.c      operations out: op ids, frames queued, pending
 *                           operations, the _sync driver
 *   elbus-client-connect.c  connecting and the handshake, GInitable and
 *                           GAsyncInitable
 *   elbus-client.c          the GObject and the public API
 */
#pragma once

#include "elbus-client.h"
#include "elbus-client-private.h"
#include "elbus-transport-private.h"

G_BEGIN_DECLS

typedef struct {
  ElbusClient  *client;        /* (unowned) */
  guint32       op_id;
  GTask        *task;          /* (owned) (nullable): an async operation */
  gboolean     *sync_done;     /* (nullable): a sync operation's flag */
  GError      **sync_error;
  char         *target;        /* (owned) (nullable): for error messages */
  guint8        op;            /* ELBUS_OP_*: for error messages */
  gint64        deadline;      /* monotonic µs */
  GSource      *cancel_source; /* (owned) (nullable) */
} PendingOp;

typedef enum {
  INIT_NONE,
  INIT_RUNNING,
  INIT_DONE,
} InitState;

struct _ElbusClient {
  GObject          parent_instance;

  GMainContext    *context;        /* (owned) */
  char            *name;           /* (owned): a GRefString */
  char            *address;        /* (owned) */
  double           timeout;
  guint            queue_size;
  guint            buf_size;

  /* the other end: a socket, or the broker in this process */
  ElbusTransport  *transport;      /* (owned) (nullable): set once connected */
  GSocketConnection *connection;   /* (owned) (nullable): while connecting */
  GSource         *tick_source;    /* (owned) (nullable): pings, timeouts */
  gboolean         connected;

  guint32          next_op_id;
  guint            n_secondaries;  /* suffixes handed out by register_secondary */
  GHashTable      *pending;        /* (owned): op_id -> PendingOp */

  /* frames that arrived while a _sync call drove the connection, emitted
   * from the context in order */
  GQueue           deferred;       /* (element-type ElbusFrame) (owned) */
  GSource         *deferred_source; /* (owned) (nullable) */
  guint            pumping;
  /* a disconnection that happened while frames were deferred is told
   * after them, as it happened after them */
  gboolean         disconnect_deferred;
  GError          *disconnect_error;  /* (owned) (nullable) */
  /* why the broker said it disconnects this client (.broker/warn) */
  char            *drop_reason;    /* (owned) (nullable) */

  /* the RPC layer's look at one-to-one messages before anyone else's */
  ElbusClientMessageFilter message_filter; /* (nullable) */
  gpointer         message_filter_data;    /* (unowned) */

  /* GInitable/GAsyncInitable: connecting once, its outcome kept */
  InitState        init_state;
  GError          *init_error;     /* (owned) (nullable) */
};

enum {
  PROP_0,
  PROP_NAME,
  PROP_ADDRESS,
  PROP_CONNECTED,
  PROP_TIMEOUT,
  PROP_QUEUE_SIZE,
  PROP_BUF_SIZE,
  N_PROPS
};

enum {
  SIGNAL_MESSAGE,
  SIGNAL_BROADCAST,
  SIGNAL_PUBLICATION,
  SIGNAL_DISCONNECTED,
  N_SIGNALS
};

/* elbus-client-deliver.c; the class fills these in (elbus-client.c) */
extern GParamSpec *_elbus_client_properties[N_PROPS];
extern guint       _elbus_client_signals[N_SIGNALS];
extern const ElbusTransportEvents _elbus_client_transport_events;

void      _elbus_client_pending_op_free   (PendingOp    *op);
void      _elbus_client_fail_pending_op   (ElbusClient  *self,
                                           guint32       op_id,
                                           GError       *error);
void      _elbus_client_schedule_deferred (ElbusClient  *self);
void      _elbus_client_restart_tick      (ElbusClient  *self);
/* Takes @error (nullable). */
void      _elbus_client_disconnect        (ElbusClient  *self,
                                           GError       *error);

/* elbus-client-ops.c */
gboolean  _elbus_client_wrong_thread      (ElbusClient         *self,
                                           GError             **error);
void      _elbus_client_op_async          (ElbusClient         *self,
                                           gpointer             source_tag,
                                           guint8               op,
                                           const char          *target,
                                           GBytes              *head,
                                           GBytes              *body,
                                           ElbusQoS             qos,
                                           GCancellable        *cancellable,
                                           GAsyncReadyCallback  callback,
                                           gpointer             user_data);
gboolean  _elbus_client_op_finish         (ElbusClient         *self,
                                           GAsyncResult        *result,
                                           gpointer             source_tag,
                                           GError             **error);
gboolean  _elbus_client_op_sync           (ElbusClient         *self,
                                           guint8               op,
                                           const char          *target,
                                           GBytes              *body,
                                           ElbusQoS             qos,
                                           GCancellable        *cancellable,
                                           GError             **error);
void      _elbus_client_masks_async       (ElbusClient         *self,
                                           gpointer             source_tag,
                                           guint8               op,
                                           const char * const  *masks,
                                           ElbusQoS             qos,
                                           GCancellable        *cancellable,
                                           GAsyncReadyCallback  callback,
                                           gpointer             user_data);
gboolean  _elbus_client_masks_sync        (ElbusClient         *self,
                                           guint8               op,
                                           const char * const  *masks,
                                           ElbusQoS             qos,
                                           GCancellable        *cancellable,
                                           GError             **error);
gboolean  _elbus_client_flush_sync        (ElbusClient         *self,
                                           GCancellable        *cancellable,
                                           GError             **error);

/* elbus-client-connect.c */
void      _elbus_client_initable_iface_init       (GInitableIface      *iface);
void      _elbus_client_async_initable_iface_init (GAsyncInitableIface *iface);
void      _elbus_client_init_async        (GAsyncInitable      *initable,
                                           int                  io_priority,
                                           GCancellable        *cancellable,
                                           GAsyncReadyCallback  callback,
                                           gpointer             user_data);

G_END_DECLS
