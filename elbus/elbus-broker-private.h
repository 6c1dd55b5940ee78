/* SPDX-License-Identifier: MIT */
/*
 * Internals shared by the broker's files:
 *
 *  elbus-broker.c       the GObject, listeners, registry, routing, timers
 *  elbus-broker-peer.c  one connection: read buffer, handshake, frame loop,
 *                       outgoing queue and batched writes
 *
 * Everything here runs on the broker's GMainContext; nothing is locked.
 */
#pragma once

#include "elbus-broker.h"
#include "elbus-client.h"
#include "elbus-client-policy-private.h"
#include "elbus-codec-private.h"
#include "elbus-io-private.h"
#include "elbus-mask-private.h"
#include "elbus-rpc-peer.h"

G_BEGIN_DECLS

typedef enum {
  ELBUS_PEER_GREETING,       /* greeting sent, waiting for its echo */
  ELBUS_PEER_NAME,           /* waiting for the name */
  ELBUS_PEER_REGISTERED,
} ElbusPeerState;

typedef struct _ElbusPeer ElbusPeer;
typedef struct _ElbusCoreRpc ElbusCoreRpc;
typedef struct _ElbusFifo ElbusFifo;
typedef struct _ElbusMonitor ElbusMonitor;

/* What a monitor is told about (PROTOCOL.md 9), in the order of the names
 * monitor.start takes. */
typedef enum {
  ELBUS_MONITOR_MESSAGE,
  ELBUS_MONITOR_BROADCAST,
  ELBUS_MONITOR_PUBLISH,
  ELBUS_MONITOR_SUBSCRIBE,
  ELBUS_MONITOR_UNSUBSCRIBE,
  ELBUS_MONITOR_REG,
  ELBUS_MONITOR_UNREG,
} ElbusMonitorKind;

struct _ElbusPeer {
  ElbusBroker     *broker;         /* (unowned): outlives every peer */
  int              ref;            /* broker thread only */
  gboolean         closed;
  gboolean         abort;          /* close with a reset: a slow consumer's unsent
                                    * bytes must not linger in the kernel */

  /* transport */
  GSocket         *socket;         /* (owned) */
  int              fd;             /* of socket */
  GSource         *source;         /* (owned): one fd source, IN and OUT */
  gpointer         fd_tag;
  ElbusClientKind  kind;
  ElbusClient     *internal;       /* (unowned) (nullable): an in-process client */
  char            *source_addr;    /* (owned) (nullable): "ip:port" for TCP */
  char            *port;           /* (owned) (nullable): the listener's bind string */
  GInetAddress    *address;        /* (owned) (nullable): TCP clients' */
  gint64           uid, gid, pid;  /* SO_PEERCRED on UNIX sockets; -1 if unknown */

  /* registration */
  ElbusPeerState   state;
  char            *name;           /* (owned) (nullable): a GRefString */
  gsize            name_len;
  ElbusPeer       *primary;        /* (unowned) (nullable): set on secondaries */
  gboolean         is_secondary;   /* stays set when primary is cleared */
  GPtrArray       *secondaries;    /* (owned) (nullable) (element-type ElbusPeer) (unowned elements) */
  GSource         *handshake_timeout; /* (owned) (nullable) */

  /* reading */
  ElbusReadBuf     rb;
  gint64           partial_since;  /* monotonic µs; 0 when no frame is half-read */

  /* writing */
  ElbusOutQueue    out;
  gboolean         want_write;     /* socket full: waiting for G_IO_OUT */
  gint64           stall_since;    /* monotonic µs; 0 when not stalled */
  gint64           last_ping;      /* monotonic µs */
  GList            dirty_link;     /* in broker->dirty while queued && !want_write */
  gboolean         dirty;          /* dirty_link is linked */

  guint64          mark;           /* de-duplication of publications */
  ElbusStats       stats;

  /* limits and policy */
  guint            subscriptions;  /* masks subscribed */
  guint            limits_logged;  /* ElbusPeerLimit bits already logged */
  guint64          monitor_gen;    /* broker->monitor_gen monitor_wanted is for */
  guint64          monitor_wanted; /* bit i: monitor i takes frames from this peer */
  ElbusClientPolicy *policy;       /* (owned) (nullable): the entry in force at
                                    * registration; NULL = unrestricted */
};

/* Each limit a client hits is logged once for that client. */
typedef enum {
  ELBUS_PEER_LIMIT_SUBSCRIPTIONS = 1 << 0,
  ELBUS_PEER_LIMIT_MASK_LENGTH   = 1 << 1,
} ElbusPeerLimit;

struct _ElbusBroker {
  GObject          parent_instance;

  GMainContext    *context;        /* (owned): thread-default at construction */
  GPtrArray       *listeners;      /* (owned) (element-type ElbusListener) */
  GHashTable      *clients;        /* (owned): name -> ElbusPeer, registered only */
  GHashTable      *pending;        /* (owned): set of ElbusPeer in handshake */
  ElbusNameTree   *names;          /* (owned) */
  ElbusTopicTree  *topics;         /* (owned) */
  GPtrArray       *graveyard;      /* (owned): closed peers, freed before the loop sleeps */
  GPtrArray       *scratch;        /* (owned): recipients of the frame being routed */

  /* peers with queued output; flushed before the loop sleeps, sooner when
   * the oldest is older than buf_ttl or a frame is real-time or an ack */
  GQueue           dirty;
  gint64           dirty_since;
  gboolean         flush_now;
  GSource         *flush_source;   /* (owned) */
  GSource         *sweep_source;   /* (owned) (nullable): pings and timeouts */

  double           timeout;
  guint            queue_size;
  guint            buf_size;
  guint            buf_ttl;
  guint            max_frame_size;
  guint            max_queue_bytes;
  guint            max_clients;
  guint            max_subscriptions;
  double           handshake_timeout;
  gboolean         max_clients_logged; /* until the count drops below it */
  gint64           last_trim;      /* monotonic µs of the last malloc_trim() */
  gint64           log_window_start; /* rate limit of unregistered peers' logs */
  guint            log_in_window;
  guint            log_suppressed;

  guint64          mark_gen;
  ElbusStats       stats;
  gboolean         closed;

  ElbusCoreRpc    *core;           /* (owned) (nullable): the .broker client */
  guint            routing;        /* depth of _elbus_broker_route() */
  GPtrArray       *announcements;  /* (owned): deferred while routing, "+NAME"/"-NAME" */
  GPtrArray       *fifos;          /* (owned) (element-type ElbusFifo) */
  GPtrArray       *monitors;       /* (owned) (element-type ElbusMonitor) */
  GHashTable      *policy;         /* (owned) (nullable): primary name -> ElbusClientPolicy
                                    * (owned copies); NULL = no policy in force */
  guint            monitors_busy;  /* depth of reporting: removals wait */
  guint64          monitor_gen;    /* bumped when monitors or their filters change */
  guint            monitor_kinds;  /* union of the monitors' kinds */
};

/* elbus-broker-peer.c */
ElbusPeer  *_elbus_peer_new           (ElbusBroker   *broker,
                                       GSocket       *socket,
                                       ElbusClientKind kind,
                                       const char    *port);
ElbusPeer  *_elbus_peer_new_internal  (ElbusBroker   *broker,
                                       ElbusClient   *client);
void        _elbus_peer_unref         (ElbusPeer     *peer);
void        _elbus_peer_close         (ElbusPeer     *peer,
                                       GLogLevelFlags level,
                                       const char    *format,
                                       ...) G_GNUC_PRINTF (3, 4);
gboolean    _elbus_peer_enqueue       (ElbusPeer     *peer,
                                       ElbusOutEntry *entry,
                                       gboolean       urgent);
void        _elbus_peer_enqueue_ack   (ElbusPeer     *peer,
                                       guint32        op_id,
                                       guint8         result);
void        _elbus_peer_enqueue_ping  (ElbusPeer     *peer);
void        _elbus_peer_drop_slow     (ElbusPeer     *peer);
void        _elbus_peer_flush         (ElbusPeer     *peer);
const char *_elbus_peer_describe      (ElbusPeer     *peer);
char       *_elbus_socket_describe_remote (GSocket      *socket,
                                           GInetAddress **address);

/* elbus-broker.c */
const char *_elbus_client_kind_name   (ElbusClientKind kind);
guint8      _elbus_broker_register    (ElbusBroker   *broker,
                                       ElbusPeer     *peer,
                                       const char    *name,
                                       gsize          name_len);
void        _elbus_broker_route       (ElbusBroker   *broker,
                                       ElbusPeer     *peer,
                                       const ElbusClientFrame *frame,
                                       ElbusChunk    *chunk);
void        _elbus_broker_mark_dirty  (ElbusBroker   *broker,
                                       ElbusPeer     *peer,
                                       gboolean       urgent);
gboolean    _elbus_broker_flush_dirty (ElbusBroker   *broker);
void        _elbus_broker_end_dispatch (ElbusBroker  *broker);
gboolean    _elbus_broker_log_unregistered (ElbusBroker *broker);
void        _elbus_broker_forget_peer (ElbusBroker   *broker,
                                       ElbusPeer     *peer);

/* elbus-broker-rpc.c */
ElbusCoreRpc *_elbus_core_rpc_new               (ElbusBroker   *broker,
                                                 GError       **error);
void          _elbus_core_rpc_free              (ElbusCoreRpc  *core);
void          _elbus_core_rpc_announce_client   (ElbusCoreRpc  *core,
                                                 const char    *name,
                                                 gboolean       registered);
void          _elbus_core_rpc_announce_shutdown (ElbusCoreRpc  *core);
ElbusClient  *_elbus_core_rpc_get_client        (ElbusCoreRpc  *core);
ElbusRpcPeer *_elbus_core_rpc_get_peer          (ElbusCoreRpc  *core);

/* elbus-broker-monitor.c */
void          _elbus_monitor_free               (ElbusMonitor  *monitor);
gboolean      _elbus_broker_monitor_start       (ElbusBroker   *broker,
                                                 ElbusPeer     *peer,
                                                 GBytes        *params,
                                                 GError       **error);
void          _elbus_broker_monitor_stop        (ElbusBroker   *broker,
                                                 ElbusPeer     *peer);
void          _elbus_broker_monitor_forget      (ElbusBroker   *broker,
                                                 ElbusPeer     *peer);
gboolean      _elbus_broker_monitor_is          (ElbusBroker   *broker,
                                                 ElbusPeer     *peer);
void          _elbus_broker_monitor_frame       (ElbusBroker   *broker,
                                                 ElbusPeer     *sender,
                                                 const ElbusClientFrame *frame,
                                                 ElbusChunk    *chunk,
                                                 ElbusPeer     *target,
                                                 guint          recipients,
                                                 guint8         result);
void          _elbus_broker_monitor_client      (ElbusBroker   *broker,
                                                 ElbusPeer     *peer,
                                                 const char    *name,
                                                 gboolean       registered,
                                                 guint8         result);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ElbusMonitor, _elbus_monitor_free)

/* elbus-broker-fifo.c */
void          _elbus_fifo_free                  (ElbusFifo     *fifo);

G_END_DECLS
