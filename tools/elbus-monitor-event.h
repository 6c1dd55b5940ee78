/* SPDX-License-Identifier: MIT */
/*
 * elbus-monitor's events: the MessagePack map the broker sends per routed
 * event (docs/protocol.md section 9) decoded into an Event, and the RPC
 * layer read out of a message's payload (section 8).
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define BROKER_NAME   ".broker"

typedef enum {
  KIND_MESSAGE,
  KIND_BROADCAST,
  KIND_PUBLISH,
  KIND_SUBSCRIBE,
  KIND_UNSUBSCRIBE,
  KIND_REG,
  KIND_UNREG,
  N_KINDS
} EventKind;

extern const char * const kind_names[N_KINDS];

/* The strings of most events fit in the event itself. */
#define EVENT_INLINE_STRINGS 256

/* One monitor event, decoded. The strings are copied out of the map, into
 * the event itself or, when they do not fit, into @heap; the payload
 * points into @bytes. */
typedef struct {
  GBytes       *bytes;        /* (owned) (nullable): the event's MessagePack map */
  char         *heap;         /* (owned) (nullable): the strings, when they are long */
  gint64        t;            /* nanoseconds since the UNIX epoch */
  EventKind     kind;
  const char   *sender;       /* never NULL */
  const char   *dest;         /* (nullable): target, mask or topic */
  char        **masks;        /* (nullable): subscribe, unsubscribe; NULL-terminated */
  guint         qos;
  guint64       recipients;
  guint         result;
  guint64       size;         /* the payload's full length */
  const guint8 *payload;      /* (nullable): what the broker sent of it */
  gsize         payload_len;
  union {
    char       *align;        /* @masks starts there */
    char        bytes[EVENT_INLINE_STRINGS];
  } strings;
} Event;

typedef enum {
  RPC_NONE,
  RPC_NOTIFICATION,
  RPC_CALL,
  RPC_REPLY,
  RPC_ERROR,
} RpcType;

typedef struct {
  RpcType       type;
  guint32       id;
  const char   *method;       /* (nullable): calls; points into the payload, NUL and all */
  int           code;         /* errors */
  const guint8 *body;         /* params, result, error data or notification payload */
  gsize         body_len;
} Rpc;

void        event_clear           (Event         *ev);
gboolean    kind_has_payload      (EventKind      kind);
gboolean    kind_from_string      (const char    *name,
                                   EventKind     *kind);
gboolean    event_parse           (GBytes        *bytes,
                                   Event         *ev,
                                   GError       **error);
gboolean    event_is_announcement (const Event   *ev);
gboolean    event_is_truncated    (const Event   *ev);
const char *result_name           (guint          code);
gboolean    rpc_parse             (const guint8  *data,
                                   gsize          len,
                                   Rpc           *rpc);
const char *rpc_type_name         (const Rpc     *rpc);
gboolean    event_parse_rpc       (const Event   *ev,
                                   Rpc           *rpc);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Event, event_clear)

G_END_DECLS
