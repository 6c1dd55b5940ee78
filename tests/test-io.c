/* SPDX-License-Identifier: MIT */
/*
 * Outgoing queues (elbus-io-private.h): entries of every shape, including
 * a prefix followed by a chunk's bytes (monitor events), go out byte for
 * byte through short writes, counted honestly, and flatten into one chunk.
 */
#include "config.h"

#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "elbus-io-private.h"
#include "elbus-test-util.h"

/* pushes an entry of header @hdr, then @prefix (nullable), then @len bytes
 * of @chunk, and appends what it must send to @want */
static void
push_entry (ElbusOutQueue *queue,
            GByteArray    *want,
            const char    *hdr,
            GBytes        *prefix,
            ElbusChunk    *chunk,
            gsize          len)
{
  ElbusOutEntry entry = { 0 };

  memcpy (entry.hdr, hdr, strlen (hdr));
  entry.hdr_len = strlen (hdr);
  g_byte_array_append (want, (const guint8 *) hdr, strlen (hdr));
  if (prefix != NULL)
    {
      entry.bytes = g_bytes_ref (prefix);
      g_byte_array_append (want, g_bytes_get_data (prefix, NULL), g_bytes_get_size (prefix));
    }
  entry.chunk = _elbus_chunk_ref (chunk);
  entry.payload = chunk->data;
  entry.payload_len = len;
  g_byte_array_append (want, chunk->data, len);
  g_assert_cmpuint (ELBUS_OUT_ENTRY_HAS_PREFIX (&entry), ==, prefix != NULL);
  g_assert_cmpuint (_elbus_out_entry_len (&entry), ==,
                    strlen (hdr) + (prefix != NULL ? g_bytes_get_size (prefix) : 0) + len);
  _elbus_out_queue_push (queue, &entry);
}

static void
test_prefix_short_writes (void)
{
  g_autoptr(GByteArray) want = g_byte_array_new ();
  g_autoptr(GByteArray) got = g_byte_array_new ();
  g_autoptr(GBytes) prefix = g_bytes_new ("PREFIX:", 7);
  ElbusChunk *chunk = _elbus_chunk_new (300000);
  ElbusOutQueue queue;
  guint64 frames = 0, bytes = 0;
  gsize queued;
  int fds[2];
  int size = 4096;

  g_test_summary ("entries with a prefix and a chunk's bytes go out whole and in order "
                  "through many short writes; the queue's byte count matches");

  for (gsize i = 0; i < chunk->size; i++)
    chunk->data[i] = i * 13 + i / 7;
  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM, 0, fds), ==, 0);
  setsockopt (fds[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  g_assert_cmpint (fcntl (fds[0], F_SETFL, O_NONBLOCK), ==, 0);

  _elbus_out_queue_init (&queue);
  push_entry (&queue, want, "head01", prefix, chunk, chunk->size);
  push_entry (&queue, want, "head02", NULL, chunk, 1000);
  push_entry (&queue, want, "head03", prefix, chunk, 1);
  push_entry (&queue, want, "head04", prefix, chunk, 200000);
  queued = queue.bytes;
  g_assert_cmpuint (queued, ==, want->len);

  while (_elbus_out_queue_write (&queue, fds[0], &frames, &bytes) != ELBUS_WRITE_DONE)
    {
      guint8 buf[3000];
      gssize n = read (fds[1], buf, sizeof buf);

      g_assert_cmpint (n, >, 0);
      g_byte_array_append (got, buf, n);
      /* what was written and not read yet sits in the socket */
      g_assert_cmpuint (queue.bytes + got->len, <=, queued);
    }
  g_assert_cmpuint (queue.bytes, ==, 0);
  g_assert_cmpuint (frames, ==, 4);
  g_assert_cmpuint (bytes, ==, queued);
  close (fds[0]);
  while (TRUE)
    {
      guint8 buf[65536];
      gssize n = read (fds[1], buf, sizeof buf);

      g_assert_cmpint (n, >=, 0);
      if (n == 0)
        break;
      g_byte_array_append (got, buf, n);
    }
  close (fds[1]);

  g_assert_cmpuint (got->len, ==, want->len);
  g_assert_true (memcmp (got->data, want->data, want->len) == 0);
  _elbus_out_queue_clear (&queue);
  _elbus_chunk_unref (chunk);
}

static void
test_flatten (void)
{
  g_autoptr(GBytes) prefix = g_bytes_new ("pre", 3);
  g_autoptr(GBytes) whole = g_bytes_new ("whole", 5);
  ElbusChunk *chunk = _elbus_chunk_new (4);
  ElbusOutEntry entry = { 0 };

  g_test_summary ("flattening makes a prefix and a chunk's bytes one chunk (a copy), "
                  "a GBytes payload a chunk that references it; a chunk's payload is "
                  "left as it is");

  memcpy (chunk->data, "load", 4);

  entry.bytes = g_bytes_ref (prefix);
  entry.chunk = _elbus_chunk_ref (chunk);
  entry.payload = chunk->data + 1;
  entry.payload_len = 3;
  _elbus_out_entry_flatten (&entry);
  g_assert_null (entry.bytes);
  g_assert_nonnull (entry.chunk);
  g_assert_true (entry.chunk != chunk);
  g_assert_cmpmem (entry.payload, entry.payload_len, "preoad", 6);
  _elbus_out_entry_clear (&entry);

  entry = (ElbusOutEntry) { 0 };
  entry.bytes = g_bytes_ref (whole);
  entry.payload = g_bytes_get_data (whole, NULL);
  entry.payload_len = 5;
  _elbus_out_entry_flatten (&entry);
  g_assert_null (entry.bytes);
  g_assert_nonnull (entry.chunk);
  g_assert_cmpmem (entry.payload, entry.payload_len, "whole", 5);
  /* by reference: the chunk wraps the GBytes, which a share of all of it
   * gives back */
  g_assert_true (entry.payload == g_bytes_get_data (whole, NULL));
  {
    g_autoptr(GBytes) shared = _elbus_chunk_share (entry.chunk, entry.payload, 5);
    g_autoptr(GBytes) part = _elbus_chunk_share (entry.chunk, entry.payload + 1, 3);

    g_assert_true (shared == whole);
    g_assert_cmpmem (g_bytes_get_data (part, NULL), g_bytes_get_size (part), "hol", 3);
  }
  _elbus_out_entry_clear (&entry);

  entry = (ElbusOutEntry) { 0 };
  entry.chunk = _elbus_chunk_ref (chunk);
  entry.payload = chunk->data;
  entry.payload_len = 4;
  _elbus_out_entry_flatten (&entry);
  g_assert_true (entry.chunk == chunk);
  g_assert_true (entry.payload == chunk->data);
  _elbus_out_entry_clear (&entry);

  _elbus_chunk_unref (chunk);
}

int
main (int    argc,
      char **argv)
{
  elbus_test_init (&argc, &argv);

  g_test_add_func ("/elbus/io/prefix-short-writes", test_prefix_short_writes);
  g_test_add_func ("/elbus/io/flatten", test_flatten);

  return g_test_run ();
}
