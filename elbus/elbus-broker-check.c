/* SPDX-License-Identifier: MIT */
/*
 * The broker's invariants, checked from outside the hot path: the registry,
 * the routing tries, the secondaries, the queues, the dirty and deadline
 * lists must all tell the same story. Compiled always, called only by tests
 * and the fuzz targets (tests/fuzz/fuzz-broker.c): the cost is the size of
 * everything the broker holds.
 */
#include "config.h"

#include <string.h>
#include <sys/epoll.h>

#include "elbus-broker-private.h"

typedef struct {
  ElbusBroker *broker;
  GHashTable  *seen;        /* peer -> GUINT_TO_POINTER (count) */
  GString     *problem;     /* the first problem, or empty */
} Check;

static void G_GNUC_PRINTF (2, 3)
fail (Check      *check,
      const char *format,
      ...)
{
  va_list args;

  if (check->problem->len > 0)
    return;
  va_start (args, format);
  g_string_append_vprintf (check->problem, format, args);
  va_end (args);
}

/* the registry */

static void
check_registered (Check     *check,
                  const char *key,
                  ElbusPeer  *peer)
{
  ElbusBroker *broker = check->broker;

  if (peer->broker != broker || peer->closed || peer->state != ELBUS_PEER_REGISTERED)
    fail (check, "client %s in the registry is closed or not registered", key);
  else if (peer->name != key || strlen (peer->name) != peer->name_len)
    fail (check, "client %s is registered under another name", key);
  else if (g_hash_table_contains (broker->pending, peer))
    fail (check, "client %s is both registered and pending", key);

  if (peer->primary != NULL)
    {
      gsize primary_len;

      if (!peer->is_secondary ||
          !_elbus_codec_split_secondary (peer->name, peer->name_len, &primary_len) ||
          primary_len != peer->primary->name_len ||
          strncmp (peer->name, peer->primary->name, primary_len) != 0)
        fail (check, "secondary %s does not name its primary", key);
      else if (g_hash_table_lookup (broker->clients, peer->primary->name) != peer->primary)
        fail (check, "secondary %s has an unregistered primary", key);
      else if (peer->primary->primary != NULL || peer->primary->is_secondary)
        fail (check, "secondary %s has a secondary for primary", key);
      else if (peer->primary->secondaries == NULL ||
               !g_ptr_array_find (peer->primary->secondaries, peer, NULL))
        fail (check, "secondary %s is not among its primary's", key);
    }
  else if (peer->is_secondary)
    fail (check, "secondary %s outlived its primary", key);

  if (peer->secondaries != NULL)
    for (guint i = 0; i < peer->secondaries->len; i++)
      {
        ElbusPeer *secondary = g_ptr_array_index (peer->secondaries, i);

        if (secondary->primary != peer)
          fail (check, "client %s lists a secondary that is not its own", key);
      }

  if (broker->max_subscriptions > 0 && peer->subscriptions > broker->max_subscriptions)
    fail (check, "client %s holds %u subscriptions, over the limit of %u", key,
          peer->subscriptions, broker->max_subscriptions);
}

static void
check_connection (Check     *check,
                  ElbusPeer *peer)
{
  ElbusBroker *broker = check->broker;
  const char *name = _elbus_peer_describe (peer);
  ElbusOutQueue *out = &peer->out;
  gsize bytes = 0;

  if (out->cap == 0 || (out->cap & (out->cap - 1)) != 0 || out->len > out->cap ||
      out->head >= out->cap)
    {
      fail (check, "client %s: the queue's ring is inconsistent", name);
      return;
    }
  for (guint i = 0; i < out->len; i++)
    bytes += _elbus_out_entry_len (&out->ring[(out->head + i) & (out->cap - 1)]);
  if (out->len == 0 ? (out->bytes != 0 || out->head_off != 0)
                    : (out->head_off >= bytes || bytes - out->head_off != out->bytes))
    fail (check, "client %s: %" G_GSIZE_FORMAT " bytes queued but %" G_GSIZE_FORMAT " counted",
          name, bytes - out->head_off, out->bytes);
  if (out->len > broker->queue_size)
    fail (check, "client %s: %u frames queued, over the queue size of %u", name, out->len,
          broker->queue_size);
  if (broker->max_queue_bytes > 0 && out->len > 1 && out->bytes > broker->max_queue_bytes)
    fail (check, "client %s: %" G_GSIZE_FORMAT " bytes queued, over the limit of %u", name,
          out->bytes, broker->max_queue_bytes);

  if (peer->dirty && peer->want_write)
    fail (check, "client %s is both dirty and waiting to write", name);
  if (peer->fd >= 0 &&
      (peer->file.fd != peer->fd ||
       ((peer->file.interest & EPOLLOUT) != 0) != peer->want_write))
    fail (check, "client %s: the write interest does not match the queue", name);
  if (peer->fd < 0 && peer->local == NULL && peer->ws == NULL)
    fail (check, "client %s has neither a socket, a WebSocket nor an in-process client", name);
  if (peer->rb.chunk != NULL &&
      (peer->rb.start > peer->rb.end || peer->rb.end > peer->rb.chunk->size))
    fail (check, "client %s: the read buffer's bounds are wrong", name);

  for (guint kind = 0; kind < ELBUS_N_DEADLINES; kind++)
    {
      gboolean linked = g_queue_link_index (&broker->deadlines[kind],
                                            &peer->deadline_link[kind]) >= 0;

      if (linked != peer->deadline_on[kind])
        fail (check, "client %s: deadline %u is %slisted", name, kind, linked ? "" : "not ");
    }
}

/* the routing tries */

static void
name_cb (const char *path,
         gpointer    value,
         gpointer    user_data)
{
  Check *check = user_data;
  ElbusPeer *peer = g_hash_table_lookup (check->broker->clients, path);

  if (peer == NULL || peer != value)
    fail (check, "the name tree holds %s for another client", path);
  else if (g_hash_table_contains (check->seen, peer))
    fail (check, "the name tree holds %s twice", path);
  else
    g_hash_table_add (check->seen, peer);
}

static void
topic_cb (const char *path,
          gpointer    value,
          gpointer    user_data)
{
  Check *check = user_data;
  ElbusPeer *peer = value;
  guint count;

  /* a subscriber is a registered client: look it up by address first,
   * without touching it, so that a freed one is caught here, not read */
  if (!g_hash_table_contains (check->seen, peer))
    {
      fail (check, "mask %s is held by a client that is not registered", path);
      return;
    }
  count = GPOINTER_TO_UINT (g_hash_table_lookup (check->seen, peer));
  g_hash_table_insert (check->seen, peer, GUINT_TO_POINTER (count + 1));
}

/**
 * _elbus_broker_check_invariants:
 * @broker: a broker, not in the middle of a dispatch
 *
 * Walks the registry, the pending set, the routing tries, the dirty and
 * deadline lists and every connection's queue, and compares them: every
 * registered client is in the name tree under its name and nowhere else;
 * every subscription in the topic tree belongs to a registered client,
 * which counts it; secondaries and primaries point at each other; every
 * queue is within the broker's limits and its byte count is right; a
 * connection is on a deadline list exactly when it says so. For tests and
 * fuzzing: the cost is the size of the broker's state.
 *
 * Returns: (transfer full) (nullable): %NULL, or what is wrong
 */
char *
_elbus_broker_check_invariants (ElbusBroker *broker)
{
  g_autoptr(GHashTable) seen = g_hash_table_new (NULL, NULL);
  g_autoptr(GString) problem = g_string_new (NULL);
  Check check = { broker, seen, problem };
  GHashTableIter iter;
  gpointer key, value;
  const char *tree_problem;
  guint n_dirty = 0;

  /* registered clients */
  g_hash_table_iter_init (&iter, broker->clients);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      check_registered (&check, key, value);
      check_connection (&check, value);
      n_dirty += ((ElbusPeer *) value)->dirty;
    }

  /* connections in their handshake */
  g_hash_table_iter_init (&iter, broker->pending);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    {
      ElbusPeer *peer = key;

      if (peer->closed || peer->state == ELBUS_PEER_REGISTERED || peer->name != NULL ||
          peer->subscriptions != 0 || peer->secondaries != NULL)
        fail (&check, "a pending connection is closed or registered");
      check_connection (&check, peer);
      n_dirty += peer->dirty;
    }

  if (n_dirty != broker->dirty.length)
    fail (&check, "%u connections are dirty but %u are listed", n_dirty,
          broker->dirty.length);
  for (guint kind = 0; kind < ELBUS_N_DEADLINES; kind++)
    for (GList *l = broker->deadlines[kind].head; l != NULL; l = l->next)
      {
        ElbusPeer *peer = l->data;

        if (peer->closed || !peer->deadline_on[kind])
          fail (&check, "deadline list %u holds a closed connection", kind);
      }

  /* the name tree holds exactly the registered clients */
  tree_problem = _elbus_name_tree_check (broker->names, name_cb, &check);
  if (tree_problem != NULL)
    fail (&check, "name tree: %s", tree_problem);
  if (g_hash_table_size (seen) != g_hash_table_size (broker->clients))
    fail (&check, "the name tree holds %u clients, the registry %u",
          g_hash_table_size (seen), g_hash_table_size (broker->clients));

  /* every subscription is a registered client's, counted by it: the
   * subscriptions it made, and .broker/warn unless it unsubscribed it */
  g_hash_table_iter_init (&iter, seen);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    g_hash_table_iter_replace (&iter, GUINT_TO_POINTER (0));
  tree_problem = _elbus_topic_tree_check (broker->topics, topic_cb, &check);
  if (tree_problem != NULL)
    fail (&check, "topic tree: %s", tree_problem);
  g_hash_table_iter_init (&iter, seen);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      ElbusPeer *peer = key;
      guint count = GPOINTER_TO_UINT (value);

      if (count != _elbus_topic_tree_count (broker->topics, peer) ||
          count < peer->subscriptions || count > peer->subscriptions + 1)
        fail (&check, "client %s holds %u masks but counts %u", peer->name, count,
              peer->subscriptions);
    }

  if (broker->monitors->len > g_hash_table_size (broker->clients))
    fail (&check, "%u monitors for %u clients", broker->monitors->len,
          g_hash_table_size (broker->clients));
  if (broker->routing != 0 || broker->announcements->len != 0)
    fail (&check, "routing is still under way");

  return problem->len > 0 ? g_strdup (problem->str) : NULL;
}

/**
 * _elbus_broker_add_connection:
 * @broker: a broker
 * @fd: (transfer full): a connected, non-blocking stream socket
 *
 * Serves @fd as a connection accepted on a UNIX listener: the broker sends
 * its greeting and waits for the client's. For tests and fuzzing, which
 * hand the broker one end of a socketpair() instead of connecting.
 */
void
_elbus_broker_add_connection (ElbusBroker *broker,
                              int          fd)
{
  ElbusPeer *peer = _elbus_peer_new (broker, fd, NULL, NULL, ELBUS_CLIENT_KIND_LOCAL_IPC,
                                     "socketpair", NULL, 0);

  _elbus_broker_add_pending (broker, peer);
}
