/* SPDX-License-Identifier: MIT */
/*
 * Read chunks and batched writes, shared by the broker and the client.
 *
 * Reading: one read() per wake-up into a chunk; frames are decoded where
 * they lie, and a payload that must outlive the read holds a reference to
 * the chunk. A chunk nobody else holds is reused in place.
 *
 * Writing: a queue is a ring of entries; a write turns as many as fit into
 * one sendmsg() of up to ELBUS_IOV_BATCH iovecs, and a short write stops
 * there: the socket is full, and the caller waits for G_IO_OUT.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "elbus-io-private.h"

/* chunks */

/* Spare standard-size chunks. Reusing the last one freed keeps the buffer
 * warm in the cache; a chunk may be released from any thread (a payload
 * handed on as GBytes), hence the lock. */
#define CHUNK_POOL_MAX 32
/* Under AddressSanitizer (the fuzz and ASan builds) none are kept: a chunk
 * used after its last reference is dropped must be caught, not recycled. */
#if defined (__SANITIZE_ADDRESS__)
#define CHUNK_POOL_KEEP 0
#elif defined (__has_feature)
#if __has_feature (address_sanitizer)
#define CHUNK_POOL_KEEP 0
#endif
#endif
#ifndef CHUNK_POOL_KEEP
#define CHUNK_POOL_KEEP CHUNK_POOL_MAX
#endif
static GMutex chunk_pool_lock;
static ElbusChunk *chunk_pool[CHUNK_POOL_MAX];
static guint chunk_pool_len;

ElbusChunk *
_elbus_chunk_new (gsize size)
{
  ElbusChunk *chunk = NULL;

  if (size == ELBUS_READ_CHUNK_SIZE)
    {
      g_mutex_lock (&chunk_pool_lock);
      if (chunk_pool_len > 0)
        chunk = chunk_pool[--chunk_pool_len];
      g_mutex_unlock (&chunk_pool_lock);
    }
  if (chunk == NULL)
    chunk = g_malloc (sizeof (ElbusChunk) + size);

  g_atomic_ref_count_init (&chunk->ref);
  chunk->size = size;
  chunk->bytes = NULL;

  return chunk;
}

/* A chunk that holds a reference to @bytes instead of bytes of its own:
 * queue entries and payloads that point into @bytes keep it alive, and a
 * large payload handed over as GBytes is not copied. */
ElbusChunk *
_elbus_chunk_new_for_bytes (GBytes *bytes)
{
  ElbusChunk *chunk = g_new (ElbusChunk, 1);

  g_atomic_ref_count_init (&chunk->ref);
  chunk->size = 0;
  chunk->bytes = g_bytes_ref (bytes);

  return chunk;
}

ElbusChunk *
_elbus_chunk_ref (ElbusChunk *chunk)
{
  g_atomic_ref_count_inc (&chunk->ref);
  return chunk;
}

void
_elbus_chunk_unref (ElbusChunk *chunk)
{
  if (!g_atomic_ref_count_dec (&chunk->ref))
    return;

  if (chunk->bytes != NULL)
    g_bytes_unref (chunk->bytes);
  else if (chunk->size == ELBUS_READ_CHUNK_SIZE)
    {
      g_mutex_lock (&chunk_pool_lock);
      if (chunk_pool_len < CHUNK_POOL_KEEP)
        {
          chunk_pool[chunk_pool_len++] = chunk;
          chunk = NULL;
        }
      g_mutex_unlock (&chunk_pool_lock);
    }
  g_free (chunk);
}

/* A GBytes of @len bytes at @data inside @chunk, sharing it. */
GBytes *
_elbus_chunk_share (ElbusChunk   *chunk,
                    const guint8 *data,
                    gsize         len)
{
  gsize bytes_len;

  if (len == 0)
    return g_bytes_new_static ("", 0);
  /* all of a wrapped GBytes: that one */
  if (chunk->bytes != NULL && g_bytes_get_data (chunk->bytes, &bytes_len) == data &&
      bytes_len == len)
    return g_bytes_ref (chunk->bytes);

  return g_bytes_new_with_free_func (data, len, (GDestroyNotify) _elbus_chunk_unref,
                                     _elbus_chunk_ref (chunk));
}

/* read buffers */

/* Makes room for the next read and returns where it goes. Reuses the chunk
 * when nobody else holds it; else moves the undecoded tail into a fresh
 * one, large enough for the frame being read: grown as its bytes arrive,
 * never just because a header announced them. */
guint8 *
_elbus_read_buf_prepare (ElbusReadBuf *rb,
                         gsize        *space)
{
  ElbusChunk *old = rb->chunk;
  gsize unparsed = rb->end - rb->start;
  gsize want = MAX (rb->needed, unparsed + ELBUS_READ_MIN_SPACE);
  gsize size;
  ElbusChunk *chunk;

  if (old == NULL)
    {
      rb->chunk = _elbus_chunk_new (ELBUS_READ_CHUNK_SIZE);
      rb->start = rb->end = 0;
    }
  else if (unparsed == 0 && g_atomic_ref_count_compare (&old->ref, 1))
    {
      rb->start = rb->end = 0;
      if (old->size != ELBUS_READ_CHUNK_SIZE)
        {
          /* a large frame is done: don't keep its buffer */
          _elbus_chunk_unref (old);
          rb->chunk = _elbus_chunk_new (ELBUS_READ_CHUNK_SIZE);
        }
    }
  else if (old->size - rb->end >= ELBUS_READ_MIN_SPACE && rb->start + want <= old->size)
    {
      /* room enough where we are */
    }
  else if (g_atomic_ref_count_compare (&old->ref, 1) && want <= old->size)
    {
      memmove (old->data, old->data + rb->start, unparsed);
      rb->start = 0;
      rb->end = unparsed;
    }
  else
    {
      size = ELBUS_READ_CHUNK_SIZE;
      if (want > size)
        size = MIN (want, MAX (2 * unparsed, (gsize) ELBUS_READ_CHUNK_SIZE) + ELBUS_READ_CHUNK_SIZE);

      if (g_atomic_ref_count_compare (&old->ref, 1))
        {
          /* ours alone: grown in place; realloc() moves a large buffer
           * by remapping its pages, without copying or touching them */
          memmove (old->data, old->data + rb->start, unparsed);
          chunk = g_realloc (old, sizeof (ElbusChunk) + size);
          chunk->size = size;
        }
      else
        {
          chunk = _elbus_chunk_new (size);
          memcpy (chunk->data, old->data + rb->start, unparsed);
          _elbus_chunk_unref (old);
        }
      rb->chunk = chunk;
      rb->start = 0;
      rb->end = unparsed;
    }

  *space = rb->chunk->size - rb->end;
  return rb->chunk->data + rb->end;
}

/* One read() into the buffer, retried on EINTR: the bytes read (0 at the
 * end of the stream), or -1 with errno set (EAGAIN when there is nothing). */
gssize
_elbus_read_buf_fill (ElbusReadBuf *rb,
                      int           fd)
{
  gsize space;
  guint8 *dest = _elbus_read_buf_prepare (rb, &space);
  gssize n;

  do
    n = read (fd, dest, space);
  while (n < 0 && errno == EINTR);

  if (n > 0)
    rb->end += n;

  return n;
}

void
_elbus_read_buf_clear (ElbusReadBuf *rb)
{
  g_clear_pointer (&rb->chunk, _elbus_chunk_unref);
  rb->start = rb->end = rb->needed = 0;
}

/* queue entries */

void
_elbus_out_entry_clear (ElbusOutEntry *entry)
{
  if (entry->chunk != NULL)
    _elbus_chunk_unref (entry->chunk);
  if (entry->bytes != NULL)
    g_bytes_unref (entry->bytes);
  if (entry->name != NULL)
    g_ref_string_release (entry->name);
}

/* Appends @name and its 0x00 after the first @hdr_len header bytes: inline
 * when it fits, else as a reference to @name, which must be a GRefString. */
void
_elbus_out_entry_set_name (ElbusOutEntry *entry,
                           gsize          hdr_len,
                           const char    *name,
                           gsize          name_len)
{
  if (G_LIKELY (hdr_len + name_len + 1 <= ELBUS_OUT_INLINE))
    {
      memcpy (entry->hdr + hdr_len, name, name_len + 1);
      entry->hdr_len = hdr_len + name_len + 1;
      entry->name = NULL;
    }
  else
    {
      entry->hdr_len = hdr_len;
      entry->name = g_ref_string_acquire ((char *) name);
    }
}

/* Makes a payload that does not lie in a chunk one chunk: a GBytes by
 * reference (a chunk that wraps it), a prefix and a chunk's bytes by a
 * copy of both. For an in-process client, which takes payloads as GBytes
 * shared with a chunk. */
void
_elbus_out_entry_flatten (ElbusOutEntry *entry)
{
  gsize prefix_len = 0;
  const guint8 *prefix = NULL;
  ElbusChunk *chunk;

  if (entry->bytes == NULL)
    return;

  if (entry->chunk == NULL)
    {
      entry->chunk = _elbus_chunk_new_for_bytes (entry->bytes);
      g_clear_pointer (&entry->bytes, g_bytes_unref);
      return;
    }

  prefix = g_bytes_get_data (entry->bytes, &prefix_len);
  chunk = _elbus_chunk_new (prefix_len + entry->payload_len);
  if (prefix_len > 0)
    memcpy (chunk->data, prefix, prefix_len);
  if (entry->payload_len > 0)
    memcpy (chunk->data + prefix_len, entry->payload, entry->payload_len);

  g_clear_pointer (&entry->chunk, _elbus_chunk_unref);
  g_clear_pointer (&entry->bytes, g_bytes_unref);
  entry->chunk = chunk;
  entry->payload = chunk->data;
  entry->payload_len = prefix_len + entry->payload_len;
}

gsize
_elbus_out_entry_len (const ElbusOutEntry *entry)
{
  gsize len = entry->hdr_len + entry->payload_len;

  if (entry->name != NULL)
    len += g_ref_string_length (entry->name) + 1;
  if (G_UNLIKELY (ELBUS_OUT_ENTRY_HAS_PREFIX (entry)))
    len += g_bytes_get_size (entry->bytes);

  return len;
}

/* queues */

void
_elbus_out_queue_init (ElbusOutQueue *queue)
{
  memset (queue, 0, sizeof *queue);
  queue->cap = 16;
  queue->ring = g_new (ElbusOutEntry, queue->cap);
}

void
_elbus_out_queue_clear (ElbusOutQueue *queue)
{
  while (queue->len > 0)
    {
      _elbus_out_entry_clear (&queue->ring[queue->head]);
      queue->head = (queue->head + 1) & (queue->cap - 1);
      queue->len--;
    }
  queue->head = 0;
  queue->head_off = 0;
  queue->bytes = 0;
  g_clear_pointer (&queue->ring, g_free);
  queue->cap = 0;
}

static void
queue_grow (ElbusOutQueue *queue)
{
  guint new_cap = queue->cap * 2;
  ElbusOutEntry *ring = g_new (ElbusOutEntry, new_cap);

  for (guint i = 0; i < queue->len; i++)
    ring[i] = queue->ring[(queue->head + i) & (queue->cap - 1)];

  g_free (queue->ring);
  queue->ring = ring;
  queue->cap = new_cap;
  queue->head = 0;
}

/* Takes over @entry's references. Bounds are the caller's business. */
void
_elbus_out_queue_push (ElbusOutQueue *queue,
                       ElbusOutEntry *entry)
{
  if (G_UNLIKELY (queue->len == queue->cap))
    queue_grow (queue);

  queue->ring[(queue->head + queue->len) & (queue->cap - 1)] = *entry;
  queue->len++;
  queue->bytes += _elbus_out_entry_len (entry);
}

/* Takes the oldest entry out of @queue (with its references), unless a
 * write has sent part of it already. */
gboolean
_elbus_out_queue_pop (ElbusOutQueue *queue,
                      ElbusOutEntry *entry)
{
  if (queue->len == 0 || queue->head_off != 0)
    return FALSE;

  *entry = queue->ring[queue->head];
  queue->bytes -= _elbus_out_entry_len (entry);
  queue->head = (queue->head + 1) & (queue->cap - 1);
  queue->len--;

  return TRUE;
}

/* The byte ranges @e is sent as, in order: header, name, prefix, payload.
 * Returns how many of the (at most 4) it filled. */
static guint
entry_segments (const ElbusOutEntry *e,
                const guint8        *seg[4],
                gsize                seg_len[4])
{
  guint n_seg = 0;

  seg[n_seg] = e->hdr;
  seg_len[n_seg++] = e->hdr_len;
  if (e->name != NULL)
    {
      seg[n_seg] = (const guint8 *) e->name;
      seg_len[n_seg++] = g_ref_string_length (e->name) + 1;
    }
  if (G_UNLIKELY (ELBUS_OUT_ENTRY_HAS_PREFIX (e)))
    {
      seg[n_seg] = g_bytes_get_data (e->bytes, &seg_len[n_seg]);
      n_seg++;
    }
  if (e->payload_len > 0)
    {
      seg[n_seg] = e->payload;
      seg_len[n_seg++] = e->payload_len;
    }
  return n_seg;
}

/* Moves all of @queue into @into, for a transport that sends one message
 * per batch (WebSocket) and so never writes part of an entry: the queue
 * is left empty. Counts as _elbus_out_queue_write() does. */
void
_elbus_out_queue_drain (ElbusOutQueue *queue,
                        GByteArray    *into,
                        guint64       *frames,
                        guint64       *bytes)
{
  ElbusOutEntry e;

  g_assert (queue->head_off == 0);
  while (_elbus_out_queue_pop (queue, &e))
    {
      const guint8 *seg[4];
      gsize seg_len[4];
      guint n_seg = entry_segments (&e, seg, seg_len);
      gsize len = _elbus_out_entry_len (&e);

      for (guint s = 0; s < n_seg; s++)
        g_byte_array_append (into, seg[s], seg_len[s]);
      if (G_LIKELY (len >= 6))
        {
          (*frames)++;
          *bytes += len;
        }
      _elbus_out_entry_clear (&e);
    }
}

/* Writes as much of @queue to @fd as it takes. Counts the frames written
 * whole (entries shorter than a frame header, i.e. handshake bytes, are not
 * counted) into @frames and @bytes. */
ElbusWriteStatus
_elbus_out_queue_write (ElbusOutQueue *queue,
                        int            fd,
                        guint64       *frames,
                        guint64       *bytes)
{
  struct iovec iov[ELBUS_IOV_BATCH];

  while (queue->len > 0)
    {
      struct msghdr msg = { 0 };
      gsize off = queue->head_off;
      gsize total = 0;
      guint n_iov = 0;
      ssize_t written;
      gboolean short_write;

      for (guint i = 0; i < queue->len && n_iov + 4 <= ELBUS_IOV_BATCH; i++)
        {
          ElbusOutEntry *e = &queue->ring[(queue->head + i) & (queue->cap - 1)];
          const guint8 *seg[4];
          gsize seg_len[4];
          guint n_seg = entry_segments (e, seg, seg_len);

          for (guint s = 0; s < n_seg; s++)
            {
              /* skip what an earlier short write already sent */
              if (off >= seg_len[s])
                {
                  off -= seg_len[s];
                  continue;
                }
              iov[n_iov].iov_base = (void *) (seg[s] + off);
              iov[n_iov].iov_len = seg_len[s] - off;
              total += iov[n_iov].iov_len;
              n_iov++;
              off = 0;
            }
        }

      msg.msg_iov = iov;
      msg.msg_iovlen = n_iov;
      written = sendmsg (fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (written < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK)
            return ELBUS_WRITE_BLOCKED;
          return ELBUS_WRITE_FAILED;
        }

      queue->bytes -= written;
      short_write = (gsize) written < total;

      /* retire the entries that went out whole */
      while (written > 0)
        {
          ElbusOutEntry *e = &queue->ring[queue->head];
          gsize len = _elbus_out_entry_len (e);
          gsize left = len - queue->head_off;

          if ((gsize) written < left)
            {
              queue->head_off += written;
              break;
            }

          written -= left;
          if (G_LIKELY (len >= 6))
            {
              (*frames)++;
              *bytes += len;
            }
          _elbus_out_entry_clear (e);
          queue->head = (queue->head + 1) & (queue->cap - 1);
          queue->len--;
          queue->head_off = 0;
        }

      /* a short write means the socket buffer is full: don't ask again */
      if (short_write)
        return ELBUS_WRITE_BLOCKED;
    }

  return ELBUS_WRITE_DONE;
}

gboolean
_elbus_address_is_unix (const char *address)
{
  return address[0] == '/' ||
         g_str_has_suffix (address, ".sock") ||
         g_str_has_suffix (address, ".socket") ||
         g_str_has_suffix (address, ".ipc");
}
