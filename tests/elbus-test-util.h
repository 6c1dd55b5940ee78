/* SPDX-License-Identifier: MIT */
/*
 * Test helpers: an in-process broker on its own thread, a raw protocol
 * client over blocking sockets, a spawned elbusd, and waiting on the main
 * context for library clients and the tools' output.
 *
 * The raw client parses broker frames on its own, without the library's
 * codec, so that broker tests do not trust the code they test.
 */
#pragma once

#include <elbus/elbus.h>

G_BEGIN_DECLS

/* Deadlines, in milliseconds. Scaled up under valgrind (or by
 * ELBUS_TEST_TIMEOUT_SCALE=N in the environment). */
#define ELBUS_TEST_DEADLINE_MS   (elbus_test_scale_ms (10000))
#define ELBUS_TEST_QUIET_MS      (elbus_test_scale_ms (150))

void      elbus_test_init           (int    *argc,
                                     char ***argv);
guint     elbus_test_scale_ms       (guint   ms);
gboolean  elbus_test_under_valgrind (void);
void      elbus_test_raise_nofile   (guint   wanted);

/* ------------------------------------------------------------------ */
/* In-process broker */

typedef enum {
  ELBUS_TEST_TRANSPORT_UNIX,
  ELBUS_TEST_TRANSPORT_TCP,
  /* elbus over WebSocket (ws://127.0.0.1:PORT/elbus), with a libsoup
   * client; only in builds with the websocket option */
  ELBUS_TEST_TRANSPORT_WS,
} ElbusTestTransport;

/* Whether the build serves elbus over WebSocket. */
gboolean    elbus_test_have_websocket (void);

const char *elbus_test_transport_name (ElbusTestTransport transport);

/* Broker settings applied on the broker thread before it listens.
 * Zero fields keep the broker's defaults. */
typedef struct {
  double  timeout;
  guint   queue_size;
  guint   max_frame_size;
  guint   buf_size;
  guint   buf_ttl;
  gboolean set_buf_ttl;         /* buf_ttl 0 is meaningful */
} ElbusTestBrokerOptions;

typedef struct _ElbusTestBroker ElbusTestBroker;

typedef void (*ElbusTestBrokerFunc) (ElbusBroker *broker,
                                     gpointer     user_data);

ElbusTestBroker *elbus_test_broker_new           (const ElbusTestBrokerOptions *options);
void             elbus_test_broker_free          (ElbusTestBroker *tb);
const char      *elbus_test_broker_get_unix_path (ElbusTestBroker *tb);
guint16          elbus_test_broker_get_tcp_port  (ElbusTestBroker *tb);
const char      *elbus_test_broker_get_tcp_bind  (ElbusTestBroker *tb);
/* ws://127.0.0.1:PORT/elbus, or NULL without WebSocket support */
const char      *elbus_test_broker_get_ws_url    (ElbusTestBroker *tb);
void             elbus_test_broker_invoke        (ElbusTestBroker     *tb,
                                                  ElbusTestBrokerFunc  func,
                                                  gpointer             user_data);
gboolean         elbus_test_broker_has_client    (ElbusTestBroker *tb,
                                                  const char      *name);
char           **elbus_test_broker_list_clients  (ElbusTestBroker *tb);
void             elbus_test_broker_get_stats     (ElbusTestBroker *tb,
                                                  ElbusStats      *stats);
gboolean         elbus_test_broker_get_client_stats (ElbusTestBroker *tb,
                                                     const char      *name,
                                                     ElbusStats      *stats,
                                                     guint           *queue_len);
gboolean         elbus_test_broker_force_disconnect (ElbusTestBroker *tb,
                                                     const char      *name);
gboolean         elbus_test_broker_disconnect_client (ElbusTestBroker *tb,
                                                      const char      *name,
                                                      const char      *reason);
void             elbus_test_broker_wait_client   (ElbusTestBroker *tb,
                                                  const char      *name,
                                                  gboolean         present);
/* Enables the broker's own client .broker (elbus_broker_enable_core_rpc()),
 * on the broker thread. */
void             elbus_test_broker_enable_core_rpc (ElbusTestBroker *tb);
/* Signal log: "+NAME" for client-registered, "-NAME" for
 * client-unregistered, in emission order. */
GPtrArray       *elbus_test_broker_dup_events    (ElbusTestBroker *tb);
void             elbus_test_broker_wait_event    (ElbusTestBroker *tb,
                                                  const char      *event);

/* ------------------------------------------------------------------ */
/* Wire constants (docs/protocol.md 2, 3), spelled out here rather than taken
 * from the codec under test */

#define OP_NOP         0x00
#define OP_PUBLISH     0x01
#define OP_SUBSCRIBE   0x02
#define OP_UNSUBSCRIBE 0x03
#define OP_MESSAGE     0x12
#define OP_BROADCAST   0x13

#define KIND_PUBLISH   0x01
#define KIND_MESSAGE   0x12
#define KIND_BROADCAST 0x13
#define KIND_ACK       0xFE

#define RES_OK             0x01
#define RES_NOT_REGISTERED 0x71
#define RES_DATA           0x72
#define RES_NOT_SUPPORTED  0x75
#define RES_BUSY           0x76
#define RES_NOT_DELIVERED  0x77

#define NEEDS_ACK(qos)   (((qos) & 1) != 0)
#define IS_REALTIME(qos) (((qos) & 2) != 0)

/* ------------------------------------------------------------------ */
/* Raw protocol client */

typedef struct {
  guint8   kind;
  guint8   byte5;               /* realtime flag, or the ack result */
  guint32  op_id;               /* ack only */
  guint8   result;              /* ack only */
  char    *sender;              /* (nullable) */
  char    *topic;               /* (nullable): publications only */
  GBytes  *payload;             /* (nullable) */
  guint32  len;                 /* the header's length field */
} ElbusTestFrame;

void elbus_test_frame_free (ElbusTestFrame *frame);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ElbusTestFrame, elbus_test_frame_free)

typedef struct {
  int          fd;
  char        *name;            /* (nullable): once registered */
  guint32      next_op_id;
  GByteArray  *rbuf;            /* received; consumed up to rpos */
  gsize        rpos;
  /* over WebSocket (fd is -1): a SoupWebsocketConnection served on a
   * main context of its own, iterated while the test waits */
  gpointer     ws;              /* (nullable) */
  gpointer     ws_session;      /* (nullable) */
  GMainContext *ws_context;     /* (nullable) */
  gboolean     ws_closed;
} ElbusTestConn;

/* Connects to a ws:// URL (the libsoup client side). */
ElbusTestConn *elbus_test_conn_connect_ws (const char *url);
/* Sends @text as a WebSocket text message (which elbus does not take). */
void           elbus_test_conn_send_ws_text (ElbusTestConn *conn,
                                             const char    *text);
/* Sends the first bytes of a WebSocket frame, then closes the socket. */
void           elbus_test_conn_close_mid_ws_frame (ElbusTestConn *conn);

/* A WebSocket server for fake brokers (the libsoup server side), on
 * @context: each connection to ws://127.0.0.1:PORT/elbus becomes an
 * ElbusTestConn served on that context. Only in builds with WebSocket. */
typedef struct _ElbusTestWsListener ElbusTestWsListener;

ElbusTestWsListener *elbus_test_ws_listener_new     (GMainContext        *context);
const char          *elbus_test_ws_listener_get_url (ElbusTestWsListener *listener);
/* Iterates the listener's context (thread-default meanwhile) until a
 * connection comes, or fails the test after @timeout_ms. */
ElbusTestConn       *elbus_test_ws_listener_accept  (ElbusTestWsListener *listener,
                                                     guint                timeout_ms);
void                 elbus_test_ws_listener_free    (ElbusTestWsListener *listener);

ElbusTestConn *elbus_test_conn_connect_address (const char *address);
ElbusTestConn *elbus_test_conn_connect  (ElbusTestBroker    *tb,
                                         ElbusTestTransport  transport);
ElbusTestConn *elbus_test_conn_new      (ElbusTestBroker    *tb,
                                         ElbusTestTransport  transport,
                                         const char         *name);
ElbusTestConn *elbus_test_conn_new_address (const char *address,
                                            const char *name);
/* Wraps a connected socket (for instance one a fake broker accepted);
 * the connection owns fd from then on. */
ElbusTestConn *elbus_test_conn_new_for_fd (int fd);
void           elbus_test_conn_free     (ElbusTestConn *conn);
void           elbus_test_conn_close    (ElbusTestConn *conn);
void           elbus_test_conn_set_rcvbuf (ElbusTestConn *conn,
                                           int            bytes);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ElbusTestConn, elbus_test_conn_free)

/* Raw I/O */
void      elbus_test_conn_send          (ElbusTestConn *conn,
                                         const void    *data,
                                         gsize          len);
gboolean  elbus_test_conn_try_send      (ElbusTestConn *conn,
                                         const void    *data,
                                         gsize          len);
GThread  *elbus_test_conn_send_in_thread (ElbusTestConn *conn,
                                          GBytes        *data);
/* Reads exactly len bytes or fails the test. */
void      elbus_test_conn_read          (ElbusTestConn *conn,
                                         void          *buf,
                                         gsize          len,
                                         guint          timeout_ms);
void      elbus_test_conn_expect_bytes  (ElbusTestConn *conn,
                                         const void    *expected,
                                         gsize          len);
/* Waits for the peer to close: any frame before the close fails the
 * test, pings excepted. */
void      elbus_test_conn_expect_eof    (ElbusTestConn *conn);
/* Waits for the peer to close, discarding whatever comes first;
 * returns the number of bytes discarded. */
gsize     elbus_test_conn_drain_until_eof (ElbusTestConn *conn,
                                           guint          timeout_ms);
/* Nothing but pings arrives within ms. */
void      elbus_test_conn_expect_nothing (ElbusTestConn *conn,
                                          guint          ms);

/* Handshake, step by step */
void      elbus_test_conn_expect_greeting (ElbusTestConn *conn);
void      elbus_test_conn_send_greeting   (ElbusTestConn *conn,
                                           guint8         greeting,
                                           guint16        version);
guint8    elbus_test_conn_read_result     (ElbusTestConn *conn);
void      elbus_test_conn_send_name       (ElbusTestConn *conn,
                                           const char    *name,
                                           gsize          name_len);
/* Whole handshake; returns the broker's answer to the name. Sets
 * conn->name on success. */
guint8    elbus_test_conn_handshake       (ElbusTestConn *conn,
                                           const char    *name);

/* Client frames */
GBytes   *elbus_test_build_frame  (guint32       op_id,
                                   guint8        op,
                                   ElbusQoS      qos,
                                   const void   *body,
                                   gsize         body_len);
GBytes   *elbus_test_build_op     (guint32       op_id,
                                   guint8        op,
                                   ElbusQoS      qos,
                                   const char   *target,
                                   const void   *payload,
                                   gsize         payload_len);
void      elbus_test_conn_send_frame (ElbusTestConn *conn,
                                      guint32        op_id,
                                      guint8         op,
                                      ElbusQoS       qos,
                                      const void    *body,
                                      gsize          body_len);
/* Sends TARGET 00 PAYLOAD with a fresh op id, which it returns. */
guint32   elbus_test_conn_send_op    (ElbusTestConn *conn,
                                      guint8         op,
                                      ElbusQoS       qos,
                                      const char    *target,
                                      const void    *payload,
                                      gsize          payload_len);
/* Subscribe or unsubscribe (NULL-terminated masks), QoS Processed, and
 * wait for the OK ack. */
void      elbus_test_conn_subscribe   (ElbusTestConn *conn,
                                       const char    *mask,
                                       ...) G_GNUC_NULL_TERMINATED;
void      elbus_test_conn_unsubscribe (ElbusTestConn *conn,
                                       const char    *mask,
                                       ...) G_GNUC_NULL_TERMINATED;
/* Send with QoS Processed and expect the given ack result. */
void      elbus_test_conn_op_acked    (ElbusTestConn *conn,
                                       guint8         op,
                                       const char    *target,
                                       const char    *payload,
                                       guint8         result);

/* Broker frames */
ElbusTestFrame *elbus_test_conn_try_read_frame (ElbusTestConn *conn,
                                                guint          timeout_ms,
                                                gboolean       skip_pings,
                                                GError       **error);
ElbusTestFrame *elbus_test_conn_read_frame     (ElbusTestConn *conn);
void      elbus_test_conn_expect_ack   (ElbusTestConn *conn,
                                        guint32        op_id,
                                        guint8         result);
/* kind 0x12/0x13/0x01; topic only for 0x01 */
void      elbus_test_conn_expect_frame (ElbusTestConn *conn,
                                        guint8         kind,
                                        const char    *sender,
                                        const char    *topic,
                                        const void    *payload,
                                        gsize          payload_len,
                                        gboolean       realtime);
void      elbus_test_conn_expect_message (ElbusTestConn *conn,
                                          guint8         kind,
                                          const char    *sender,
                                          const char    *topic,
                                          const char    *payload);

/* The .broker core RPC on the raw wire: sends a request for @method with
 * @params (QoS processed, acked OK) and returns the payload of the answer
 * (type byte, call id, rest); frames other than messages that come first
 * are skipped. NULL for call id 0. */
GBytes   *elbus_test_conn_core_call   (ElbusTestConn *conn,
                                       guint32        call_id,
                                       const char    *method,
                                       const void    *params,
                                       gsize          params_len);
/* An RPC reply to call_id; its result is checked when expected != NULL. */
void      elbus_test_assert_rpc_reply (GBytes       *answer,
                                       guint32       call_id,
                                       const guint8 *expected,
                                       gsize         expected_len);
void      elbus_test_assert_rpc_error (GBytes       *answer,
                                       gint16        code);
/* The result of an RPC reply as elbus_test_conn_core_call() returns it,
 * decoded from MessagePack (fails the test when it does not decode). */
GVariant *elbus_test_decode_rpc_reply (GBytes       *answer);
/* A monitor event (docs/protocol.md 9: the map after the topic), byte for byte
 * as msgpack-c packs it, t aside; its payload cut to @shown bytes.
 * @kind, @sender and @dest are short strings. */
void      elbus_test_assert_monitor_event (GBytes       *event,
                                           const char   *kind,
                                           const char   *sender,
                                           const char   *dest,
                                           guint         qos,
                                           guint         recipients,
                                           guint         result,
                                           const guint8 *payload,
                                           gsize         payload_len,
                                           gsize         shown);

/* ------------------------------------------------------------------ */
/* Spawned elbusd */

typedef struct {
  GPid     pid;
  char    *dir;                 /* temporary directory */
  char    *socket_path;         /* (nullable) */
  gboolean exited;
  int      wait_status;
} ElbusTestDaemon;

const char      *elbus_test_elbusd_path     (void);
/* Runs @program with @args (NULL-terminated) to its end, @input (nullable)
 * on standard input; returns its exit status (fails the test when a
 * signal ends it), and its standard output and error when asked for. */
int              elbus_test_run_program     (const char         *program,
                                             const char * const *args,
                                             GBytes             *input,
                                             char              **out,
                                             char              **err);
/* The command that runs elbusd: $ELBUS_TEST_DAEMON_WRAPPER's words, if
 * any, then $ELBUSD. */
GStrv            elbus_test_daemon_command  (void);
/* A loopback TCP port that was free a moment ago. */
guint16          elbus_test_pick_free_port  (void);
/* Spawns $ELBUSD with argv_extra (NULL-terminated); when with_socket,
 * adds -B DIR/elbusd.sock and waits until the socket accepts. The command
 * line in $ELBUS_TEST_DAEMON_WRAPPER, if any, is put in front (for
 * instance valgrind). */
ElbusTestDaemon *elbus_test_daemon_spawn    (const char *const *argv_extra,
                                             gboolean           with_socket);
/* Waits up to timeout_ms for the process to exit on its own; TRUE if
 * it did (wait_status then holds its status). */
gboolean         elbus_test_daemon_wait     (ElbusTestDaemon *daemon,
                                             guint            timeout_ms);
/* SIGTERM, then wait; returns the wait status (fails the test when the
 * daemon does not exit in time). */
int              elbus_test_daemon_stop     (ElbusTestDaemon *daemon);
void             elbus_test_daemon_free     (ElbusTestDaemon *daemon);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ElbusTestDaemon, elbus_test_daemon_free)

/* Polls until connecting to address (a UNIX socket path or host:port)
 * succeeds; FALSE when pid (if > 0) is gone or the time is up. */
gboolean         elbus_test_wait_for_socket (const char *address,
                                             GPid        pid,
                                             guint       timeout_ms);

/* ------------------------------------------------------------------ */
/* Waiting on the thread-default main context (clients of the library,
 * subprocesses' output) */

/* Iterates the thread-default context until *done; fails the test after
 * ELBUS_TEST_DEADLINE_MS, saying what it waited for. */
void      elbus_test_spin_until   (const gboolean   *done,
                                   const char       *what);
/* Runs the thread-default context for @ms, for a test that then checks
 * what happened (or did not) meanwhile. */
void      elbus_test_spin_for     (guint             ms);
/* The next line of @in (a subprocess's standard output or error), read
 * asynchronously while the context spins; NULL at the end of the stream. */
char     *elbus_test_read_line    (GDataInputStream *in);

/* ------------------------------------------------------------------ */
/* MessagePack and RPC calls through the library */

/* The next frame is .broker's notice on .broker/warn that it disconnects
 * this client, for @reason (elbus_broker_disconnect_client()). */
void      elbus_test_conn_expect_disconnect_notice (ElbusTestConn *conn,
                                                    const char    *reason);
/* @text in the GVariant text format (g_variant_new_parsed()), encoded as
 * MessagePack: "{'a': <int64 1>}" gives 81 a1 61 01. */
GBytes   *elbus_test_msgpack_from_text (const char *text);

/* The unsigned integer under @key in a decoded MessagePack map (an a{sv}
 * holding a uint64, or an int64 that is not negative); fails the test
 * otherwise. */
guint64   elbus_test_lookup_uint       (GVariant   *map,
                                        const char *key);

/* The outcome of elbus_rpc_peer_call_async() with elbus_test_call_cb()
 * as its callback and the struct as user data. */
typedef struct {
  GBytes   *reply;              /* (owned) (nullable) */
  GError   *error;              /* (owned) (nullable) */
  gboolean  done;
} ElbusTestCall;

void      elbus_test_call_cb       (GObject       *source,
                                    GAsyncResult  *result,
                                    gpointer       user_data);
/* Frees the reply and the error and clears done, ready for another call. */
void      elbus_test_call_clear    (ElbusTestCall *call);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (ElbusTestCall, elbus_test_call_clear)
/* Clears @call, calls @method and spins the thread-default context until
 * the answer is in @call. */
void      elbus_test_call_and_wait (ElbusRpcPeer  *peer,
                                    const char    *target,
                                    const char    *method,
                                    GBytes        *params,
                                    ElbusQoS       qos,
                                    double         timeout,
                                    ElbusTestCall *call);

G_END_DECLS
