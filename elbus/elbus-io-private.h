/* SPDX-License-Identifier: MIT */
/*
 * Buffers shared by the broker's connections and the client:
 *
 * ElbusChunk     a refcounted read buffer. Frames are decoded in place and
 *                whoever keeps a payload keeps a reference, not a copy.
 * ElbusOutQueue  a bounded ring of outgoing frames (inline header bytes plus
 *                a reference to the payload, maybe after an encoded prefix)
 *                written with one sendmsg() of many iovecs.
 *
 * Single-threaded: a queue belongs to one main context. Chunk references
 * are atomic, so payloads may be handed to other threads as GBytes.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* How much one read asks for. */
#define ELBUS_READ_CHUNK_SIZE   (64 * 1024)
/* Below this much free space at the end of the read chunk, start a new one. */
#define ELBUS_READ_MIN_SPACE    (4 * 1024)
/* Header bytes kept inline in a queue entry: the broker's 6-byte header
 * plus sender and 0x00, or the client's 9-byte header plus target and
 * 0x00. Longer names are referenced instead. */
#define ELBUS_OUT_INLINE        58
/* iovecs per sendmsg() */
#define ELBUS_IOV_BATCH         1024

typedef struct {
  gatomicrefcount ref;
  gsize           size;     /* of data[]; 0 for a chunk that wraps bytes */
  GBytes         *bytes;    /* (owned) (nullable): the bytes a wrapping chunk
                             * stands for, referenced instead of copied */
  guint8          data[];
} ElbusChunk;

ElbusChunk *_elbus_chunk_new        (gsize       size);
ElbusChunk *_elbus_chunk_new_for_bytes (GBytes  *bytes);
ElbusChunk *_elbus_chunk_ref        (ElbusChunk *chunk);
void        _elbus_chunk_unref      (ElbusChunk *chunk);
GBytes     *_elbus_chunk_share      (ElbusChunk   *chunk,
                                     const guint8 *data,
                                     gsize         len);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ElbusChunk, _elbus_chunk_unref)

/* A read buffer: bytes [start, end) of chunk are not yet decoded. */
typedef struct {
  ElbusChunk *chunk;        /* (owned) (nullable) */
  gsize       start;
  gsize       end;
  gsize       needed;       /* total size of the incomplete frame, if known */
} ElbusReadBuf;

guint8     *_elbus_read_buf_prepare (ElbusReadBuf *rb,
                                     gsize        *space);
gssize      _elbus_read_buf_fill    (ElbusReadBuf *rb,
                                     int           fd);
void        _elbus_read_buf_clear   (ElbusReadBuf *rb);

/* One frame in an outgoing queue: hdr[], then the (optional) name, then
 * the payload, which lives in a chunk or a GBytes shared with others.
 * With both a chunk and a GBytes, the GBytes is a prefix sent whole
 * between the name and the payload (a monitor event: its encoded fields,
 * then the payload it reports, not copied). */
typedef struct {
  ElbusChunk    *chunk;      /* (owned) (nullable) */
  GBytes        *bytes;      /* (owned) (nullable): the payload's, or the prefix */
  char          *name;       /* (owned) (nullable): a GRefString, sent with its 0x00 */
  const guint8  *payload;    /* (nullable): payload_len bytes */
  guint32        payload_len;
  guint8         hdr_len;
  guint8         hdr[ELBUS_OUT_INLINE];
} ElbusOutEntry;

typedef struct {
  ElbusOutEntry *ring;       /* (owned) */
  guint          cap;        /* a power of two */
  guint          head;
  guint          len;
  gsize          head_off;   /* bytes of ring[head] already written */
  gsize          bytes;      /* bytes waiting, all entries */
} ElbusOutQueue;

typedef enum {
  ELBUS_WRITE_DONE,          /* the queue is empty */
  ELBUS_WRITE_BLOCKED,       /* the socket takes no more for now */
  ELBUS_WRITE_FAILED,        /* see errno */
} ElbusWriteStatus;

#define ELBUS_OUT_ENTRY_HAS_PREFIX(e) ((e)->bytes != NULL && (e)->chunk != NULL)

void             _elbus_out_entry_clear (ElbusOutEntry *entry);
void             _elbus_out_entry_flatten (ElbusOutEntry *entry);
void             _elbus_out_entry_set_name (ElbusOutEntry *entry,
                                            gsize          hdr_len,
                                            const char    *name,
                                            gsize          name_len);

void             _elbus_out_queue_init  (ElbusOutQueue *queue);
void             _elbus_out_queue_clear (ElbusOutQueue *queue);
void             _elbus_out_queue_push  (ElbusOutQueue *queue,
                                         ElbusOutEntry *entry);
gboolean         _elbus_out_queue_pop   (ElbusOutQueue *queue,
                                         ElbusOutEntry *entry);
gsize            _elbus_out_entry_len   (const ElbusOutEntry *entry);
ElbusWriteStatus _elbus_out_queue_write (ElbusOutQueue *queue,
                                         int            fd,
                                         guint64       *frames,
                                         guint64       *bytes);
void             _elbus_out_queue_drain (ElbusOutQueue *queue,
                                         GByteArray    *into,
                                         guint64       *frames,
                                         guint64       *bytes);

/* docs/protocol.md 1: a path starting with / or ending in .sock, .socket or
 * .ipc is a UNIX socket; anything else is HOST:PORT. */
gboolean         _elbus_address_is_unix (const char *address);

G_END_DECLS
