/* SPDX-License-Identifier: MIT */
/*
 * Internals shared by the broker's files, in layers; a file calls functions
 * of the files below it only, and reaches up through the function tables
 * below (ElbusBrokerOps, ElbusPeerFuncs, ElbusCoreRpcHooks):
 *
 *  elbus-broker-check.c the invariants, for tests and fuzzing
 *  elbus-broker-listen.c  elbus_broker_listen(): an address picks its listener
 *  elbus-broker-fifo.c  the fifo: control channel, whose lines .broker sends
 *  elbus-broker-rpc.c   .broker: the core RPC methods and announcements
 *  elbus-broker-local.c the in-process transport (ElbusClient <-> peer)
 *  elbus-broker-ws.c    the WebSocket transport: a SoupServer per ws://
 *                       listener for the upgrade; then the framing, its
 *                       socket on epoll
 *  elbus-broker.c       the GObject, socket listeners, registry, routing,
 *                       flushing, timers
 *  elbus-broker-monitor.c  monitors: filters and copies of routed events
 *  elbus-broker-peer.c  one connection: read buffer, handshake, frame loop,
 *                       outgoing queue and batched writes
 *  elbus-broker-dispatch.c  the one fd on the GMainContext: an epoll instance
 *                       with a ready list, and the deadline lists behind
 *                       the one timer
 *
 * Everything here runs on the broker's GMainContext; nothing is locked but the
 * handoff queues of in-process clients on other threads (elbus-broker-local.c).
 */
#pragma once

#include <sys/socket.h>

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
typedef struct _ElbusDispatchFile ElbusDispatchFile;
typedef struct _ElbusCoreRpc ElbusCoreRpc;
typedef struct _ElbusFifo ElbusFifo;
typedef struct _ElbusMonitor ElbusMonitor;
typedef struct _ElbusLocal ElbusLocal;
typedef struct _ElbusWsPeer ElbusWsPeer;

/* What a monitor is told about (docs/protocol.md 9), in the order of the names
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

typedef void (*ElbusDispatchFunc) (ElbusDispatchFile *file);

/* What the dispatcher and the peers call up to the broker through: set by
 * elbus-broker.c, so that neither names a function of the broker. */
typedef struct {
  /* the end of every dispatch: real-time frames and acks go out */
  void        (*end_dispatch)  (ElbusBroker   *broker);
  /* the registry: a name asked for in the handshake (a result byte) */
  guint8      (*register_name) (ElbusBroker   *broker,
                                ElbusPeer     *peer,
                                const char    *name,
                                gsize          name_len);
  /* routing: one complete frame from @peer, in @chunk */
  void        (*route)         (ElbusBroker   *broker,
                                ElbusPeer     *peer,
                                const ElbusClientFrame *frame,
                                ElbusChunk    *chunk);
  /* @peer closed: it leaves every table (client-unregistered) */
  void        (*forget_peer)   (ElbusBroker   *broker,
                                ElbusPeer     *peer);
  /* a connection's fd closed: listeners out of fds try again */
  void        (*fd_closed)     (ElbusBroker   *broker);
  /* whether @peer is a monitor (for the words of its log lines) */
  gboolean    (*is_monitor)    (ElbusBroker   *broker,
                                ElbusPeer     *peer);
} ElbusBrokerOps;

/* A peer's transport when it is not a socket on epoll: set by the file
 * that made the peer (elbus-broker-ws.c, elbus-broker-local.c). */
typedef struct {
  /* Hands over what waits in peer->out as far as the other end takes it:
   * DONE when all went, BLOCKED when the rest must wait (an in-process
   * client on another thread that does not keep up: a slow consumer). */
  ElbusWriteStatus (*write)    (ElbusPeer     *peer,
                                guint64       *frames,
                                guint64       *bytes);
  /* The peer closes, before the registry forgets it: the transport lets
   * go of its connection (WebSocket) or holds its client (in process). */
  void             (*close)    (ElbusPeer     *peer);
  /* (nullable) After the registry forgot the peer, whose name is free
   * now: the in-process client @local learns why. */
  void             (*closed)   (ElbusLocal    *local,
                                const char    *reason);
} ElbusPeerFuncs;

/* .broker (elbus-broker-rpc.c), as the broker calls up to it once it
 * runs. */
typedef struct {
  /* a primary client registered or left: on .broker/info */
  void        (*announce_client)   (ElbusCoreRpc  *core,
                                    const char    *name,
                                    gboolean       registered);
  /* the broker closes: on .broker/warn */
  void        (*announce_shutdown) (ElbusCoreRpc  *core);
  void        (*free)              (ElbusCoreRpc  *core);
} ElbusCoreRpcHooks;

/* An fd on the broker's epoll instance (a listener or a connection).
 * Registered edge-triggered: @events collects what epoll reported, and the
 * handler clears a bit only once it has drained it (a short read, EAGAIN);
 * while any bit of @interest is left in @events the file stays on the
 * broker's ready list and is served again in a later dispatch. */
struct _ElbusDispatchFile {
  ElbusBroker      *broker;        /* (unowned) */
  ElbusDispatchFunc func;
  int               fd;            /* -1 when not registered */
  guint32           interest;      /* EPOLL* bits registered */
  guint32           events;        /* reported and not yet drained */
  gboolean          ready;         /* ready_link is in broker->ready */
  GList             ready_link;
};

/* The deadlines of one kind: every entry has the same duration, so the
 * list is ordered by its start time (append at the tail, expire from the
 * head). */
typedef enum {
  ELBUS_DEADLINE_HANDSHAKE,        /* since accept(): handshake-timeout */
  ELBUS_DEADLINE_PARTIAL,          /* since the last complete frame: timeout */
  ELBUS_DEADLINE_STALL,            /* since the last write that progressed: timeout */
  ELBUS_DEADLINE_PING,             /* since the last ping: timeout */
  ELBUS_N_DEADLINES
} ElbusDeadlineKind;

struct _ElbusPeer {
  ElbusBroker     *broker;         /* (unowned): outlives every peer */
  int              ref;            /* broker thread only */
  gboolean         closed;
  gboolean         abort;          /* close with a reset: a slow consumer's unsent
                                    * bytes must not linger in the kernel */

  /* transport */
  int              fd;             /* (owned): the socket; -1 in process */
  ElbusDispatchFile file;          /* on the broker's epoll: IN, OUT while full */
  ElbusClientKind  kind;
  const ElbusPeerFuncs *funcs;     /* (nullable): NULL for a socket */
  ElbusLocal      *local;          /* (unowned) (nullable): an in-process client's end */
  ElbusWsPeer     *ws;             /* (owned) (nullable): a WebSocket client's connection */
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
  gint64           since[ELBUS_N_DEADLINES]; /* monotonic µs a deadline runs from */
  GList            deadline_link[ELBUS_N_DEADLINES]; /* in broker->deadlines[kind] when linked */
  gboolean         deadline_on[ELBUS_N_DEADLINES];

  /* reading */
  ElbusReadBuf     rb;

  /* writing */
  ElbusOutQueue    out;
  gboolean         want_write;     /* socket full: waiting for EPOLLOUT */
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

  /* elbus_broker_disconnect_client(): what it sends is dropped unread, and
   * it is closed once its queue is written (or the write stalls) */
  char            *drain_reason;   /* (owned) (nullable): set while draining */
};

/* Each limit a client hits is logged once for that client. */
typedef enum {
  ELBUS_PEER_LIMIT_SUBSCRIPTIONS = 1 << 0,
  ELBUS_PEER_LIMIT_MASK_LENGTH   = 1 << 1,
} ElbusPeerLimit;

struct _ElbusBroker {
  GObject          parent_instance;

  GMainContext    *context;        /* (owned): thread-default at construction */
  const ElbusBrokerOps *ops;       /* for the dispatcher and the peers */
  GPtrArray       *listeners;      /* (owned) (element-type ElbusListener) */
  GPtrArray       *ws_listeners;   /* (owned) (nullable): ws:// and wss:// listeners
                                    * (elbus-broker-ws.c) */
  GTlsCertificate *tls_certificate; /* (owned) (nullable): what wss:// listeners serve */
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
  /* a flush handed frames to a same-thread in-process client: its
   * handlers ran, so the loop must look again before it sleeps */
  gboolean         local_delivered;
  GSource         *flush_source;   /* (owned) */
  /* the one fd on the context: an epoll instance (elbus-broker-dispatch.c) */
  int              epoll_fd;       /* (owned) */
  GSource         *dispatch_source; /* (owned) */
  GQueue           ready;          /* ElbusDispatchFile with undrained events */

  /* the one timer: pings and timeouts over ordered lists, O(expired) */
  GSource         *timer_source;   /* (owned) (nullable) */
  GQueue           deadlines[ELBUS_N_DEADLINES]; /* of ElbusPeer, oldest first */
  gint64           next_sweep;     /* monotonic µs of the next periodic sweep */
  gboolean         accept_paused;  /* out of fds: listeners wait for a close */

  double           timeout;
  guint            queue_size;
  guint            buf_size;
  guint            buf_ttl;
  guint            max_frame_size;
  guint            max_queue_bytes;
  guint            max_clients;
  guint            max_subscriptions;
  double           handshake_timeout;
  gboolean         force_register; /* a name taken is taken over, the old client dropped */
  gboolean         max_clients_logged; /* until the count drops below it */
  gint64           last_trim;      /* monotonic µs of the last malloc_trim() */
  gint64           log_window_start; /* rate limit of unregistered peers' logs */
  guint            log_in_window;
  guint            log_suppressed;

  guint64          mark_gen;
  ElbusStats       stats;
  gboolean         closed;

  ElbusCoreRpc    *core;           /* (owned) (nullable): the .broker client */
  const ElbusCoreRpcHooks *core_hooks; /* set with core */
  guint            routing;        /* depth of _elbus_broker_route() */
  GPtrArray       *announcements;  /* (owned): deferred while routing, "+NAME"/"-NAME" */
  GPtrArray       *fifos;          /* (owned) (nullable) (element-type ElbusFifo) */
  GPtrArray       *monitors;       /* (owned) (element-type ElbusMonitor) */
  GHashTable      *policy;         /* (owned) (nullable): primary name -> ElbusClientPolicy
                                    * (owned copies); NULL = no policy in force */
  guint            monitors_busy;  /* depth of reporting: removals wait */
  guint64          monitor_gen;    /* bumped when monitors or their filters change */
  guint            monitor_kinds;  /* union of the monitors' kinds */
};

/* elbus-broker-dispatch.c */
void        _elbus_dispatch_init      (ElbusBroker   *broker);
void        _elbus_dispatch_clear     (ElbusBroker   *broker);
gboolean    _elbus_dispatch_file_add  (ElbusDispatchFile *file,
                                       ElbusBroker   *broker,
                                       int            fd,
                                       guint32        interest,
                                       ElbusDispatchFunc func);
void        _elbus_dispatch_file_set_interest (ElbusDispatchFile *file,
                                               guint32        interest);
void        _elbus_dispatch_file_wake (ElbusDispatchFile *file,
                                       guint32        events);
void        _elbus_dispatch_file_clear (ElbusDispatchFile *file,
                                        guint32        events);
void        _elbus_dispatch_file_remove (ElbusDispatchFile *file);
void        _elbus_deadline_start     (ElbusPeer     *peer,
                                       ElbusDeadlineKind kind,
                                       gint64         now);
void        _elbus_deadline_stop      (ElbusPeer     *peer,
                                       ElbusDeadlineKind kind);
gint64      _elbus_deadline_duration  (ElbusBroker   *broker,
                                       ElbusDeadlineKind kind);
ElbusPeer  *_elbus_deadline_first_due (ElbusBroker   *broker,
                                       ElbusDeadlineKind kind,
                                       gint64         now);
void        _elbus_dispatch_timer_start (ElbusBroker *broker,
                                         GSourceFunc  func);
void        _elbus_dispatch_timer_wake (ElbusBroker  *broker,
                                        gint64        when);

/* elbus-broker-peer.c */
ElbusPeer  *_elbus_peer_new           (ElbusBroker   *broker,
                                       int            fd,
                                       ElbusWsPeer   *ws,
                                       const ElbusPeerFuncs *funcs,
                                       ElbusClientKind kind,
                                       const char    *port,
                                       const struct sockaddr *addr,
                                       gsize          addr_len);
void        _elbus_peer_feed          (ElbusPeer     *peer,
                                       const guint8  *data,
                                       gsize          len);
void        _elbus_peer_hangup        (ElbusPeer     *peer);
void        _elbus_peer_writable      (ElbusPeer     *peer);
ElbusPeer  *_elbus_peer_new_internal  (ElbusBroker   *broker,
                                       ElbusLocal    *local,
                                       const ElbusPeerFuncs *funcs);
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
void        _elbus_peer_drain         (ElbusPeer     *peer,
                                       GBytes        *notice,
                                       const char    *reason);
void        _elbus_peer_flush         (ElbusPeer     *peer);
const char *_elbus_peer_describe      (ElbusPeer     *peer);
char       *_elbus_sockaddr_describe  (const struct sockaddr *addr,
                                       gsize          addr_len,
                                       GInetAddress **address);
gboolean    _elbus_peer_log_unregistered (ElbusBroker *broker);
void        _elbus_peer_log_window_roll  (ElbusBroker *broker,
                                          gint64       now);

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
gboolean    _elbus_broker_flush_dirty (ElbusBroker   *broker);
void        _elbus_broker_end_dispatch (ElbusBroker  *broker);
void        _elbus_broker_forget_peer (ElbusBroker   *broker,
                                       ElbusPeer     *peer);
void        _elbus_broker_resume_accept (ElbusBroker *broker);
gboolean    _elbus_broker_may_accept  (ElbusBroker   *broker,
                                       const char    *bind_string,
                                       const char    *source);
void        _elbus_broker_add_pending (ElbusBroker   *broker,
                                       ElbusPeer     *peer);

/* elbus-broker-local.c: in-process clients */
ElbusClient  *_elbus_broker_local_client_new    (ElbusBroker   *broker,
                                                 const char    *name,
                                                 GError       **error);

/* elbus-broker-ws.c */
gboolean          _elbus_broker_listen_ws (ElbusBroker  *broker,
                                           const char   *address,
                                           GError      **error);

/* elbus-broker-rpc.c */
ElbusClient  *_elbus_core_rpc_get_client        (ElbusCoreRpc  *core);
ElbusRpcPeer *_elbus_core_rpc_get_peer          (ElbusCoreRpc  *core);

/* elbus-broker-check.c: for tests and fuzzing, never on the hot path */
char         *_elbus_broker_check_invariants    (ElbusBroker   *broker);
void          _elbus_broker_add_connection      (ElbusBroker   *broker,
                                                 int            fd);

G_END_DECLS
