/* SPDX-License-Identifier: MIT */
/*
 * The broker's dispatcher: what it puts on its GMainContext.
 *
 * GMainContext prepares, polls and checks every source on every iteration,
 * so a source per connection makes every wake-up cost O(connections). The
 * broker instead adds one source whose one fd is an epoll instance; the
 * listeners and connections are registered there, and a wake-up costs
 * O(connections with work):
 *
 *  - Files are registered edge-triggered (EPOLLET). epoll_wait() with a
 *    timeout of 0 takes at most DISPATCH_EVENTS events a dispatch and ORs
 *    them into each file's @events; a file with events is on the ready
 *    list. A handler serves a file once (one read(), a bounded accept()
 *    loop, one flush) and clears an event only when it has
 *    drained it: a read that did not fill the buffer, EAGAIN. A file with
 *    events left stays on the list, behind the others, so a client that
 *    keeps sending gets one turn a round and cannot starve the rest, and
 *    no event is lost between dispatches: an edge that has been reported
 *    once is remembered here until it is drained. (Level-triggered epoll
 *    would report a busy connection on every epoll_wait(), re-checking its
 *    readiness each time; with edges the kernel hands each event over once
 *    and new data on a connection already on the list costs nothing.)
 *  - A dispatch serves at most DISPATCH_BUDGET files, then returns to the
 *    main loop; while the ready list is not empty the source's prepare()
 *    says it is ready, so the loop does not sleep.
 *  - Write interest (EPOLLOUT) is registered with EPOLL_CTL_MOD only while
 *    a connection's socket is full; EPOLL_CTL_MOD reports the socket at
 *    once if it has drained meanwhile.
 *
 * The deadlines of connections (handshake, half-read frame, stuck write,
 * keep-alive ping) are not sources either: each kind has one duration, so
 * the peers with a deadline of that kind sit in a list ordered by when it
 * started (append at the tail, expire from the head), and one timer serves
 * them all at a cost of O(expired).
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "elbus-broker-private.h"
#include "elbus-i18n-private.h"

/* events taken from the kernel per dispatch */
#define DISPATCH_EVENTS 128
/* files served per dispatch before the loop gets its turn again */
#define DISPATCH_BUDGET 128

typedef struct {
  GSource      source;
  ElbusBroker *broker;         /* (unowned): owns the source */
  gpointer     tag;            /* of the epoll fd */
} ElbusDispatchSource;

static gboolean
dispatch_prepare (GSource *source,
                  int     *timeout)
{
  ElbusBroker *broker = ((ElbusDispatchSource *) source)->broker;

  *timeout = -1;
  return broker->ready.length > 0;
}

static gboolean
dispatch_check (GSource *source)
{
  ElbusDispatchSource *ds = (ElbusDispatchSource *) source;

  return ds->broker->ready.length > 0 ||
         (ds->tag != NULL && (g_source_query_unix_fd (source, ds->tag) & G_IO_IN) != 0);
}

static void
take_events (ElbusBroker *broker)
{
  struct epoll_event events[DISPATCH_EVENTS];
  int n;

  do
    n = epoll_wait (broker->epoll_fd, events, G_N_ELEMENTS (events), 0);
  while (n < 0 && errno == EINTR);

  for (int i = 0; i < n; i++)
    _elbus_dispatch_file_wake (events[i].data.ptr, events[i].events);
}

static gboolean
dispatch_dispatch (GSource     *source,
                   GSourceFunc  callback,
                   gpointer     user_data)
{
  ElbusDispatchSource *ds = (ElbusDispatchSource *) source;
  ElbusBroker *broker = g_object_ref (ds->broker);
  guint budget;

  /* the kernel has news only when poll() said so; files already on the
   * list are served either way */
  if (ds->tag != NULL && (g_source_query_unix_fd (source, ds->tag) & G_IO_IN))
    take_events (broker);

  budget = MIN (broker->ready.length, DISPATCH_BUDGET);
  while (budget-- > 0 && broker->ready.head != NULL)
    {
      GList *link = broker->ready.head;
      ElbusDispatchFile *file = link->data;

      /* behind the others first: a handler that drains the file takes it
       * off the list, one that does not leaves it for the next round */
      g_queue_unlink (&broker->ready, link);
      g_queue_push_tail_link (&broker->ready, link);
      file->func (file);
    }

  /* real-time frames and acks go out in the dispatch that produced them */
  broker->ops->end_dispatch (broker);
  g_object_unref (broker);

  return G_SOURCE_CONTINUE;
}

static GSourceFuncs dispatch_source_funcs = {
  .prepare = dispatch_prepare,
  .check = dispatch_check,
  .dispatch = dispatch_dispatch,
};

void
_elbus_dispatch_init (ElbusBroker *broker)
{
  ElbusDispatchSource *ds;

  broker->epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
  if (broker->epoll_fd < 0)
    /* listening fails then, with this reason */
    g_warning (_("epoll_create1() failed: %s"), g_strerror (errno));
  g_queue_init (&broker->ready);
  for (guint i = 0; i < ELBUS_N_DEADLINES; i++)
    g_queue_init (&broker->deadlines[i]);

  ds = (ElbusDispatchSource *) g_source_new (&dispatch_source_funcs, sizeof *ds);
  ds->broker = broker;
  if (broker->epoll_fd >= 0)
    ds->tag = g_source_add_unix_fd ((GSource *) ds, broker->epoll_fd, G_IO_IN);
  broker->dispatch_source = (GSource *) ds;
  g_source_set_static_name (broker->dispatch_source, "[elbus] broker dispatch");
  g_source_attach (broker->dispatch_source, broker->context);
}

/* After every file has been removed. */
void
_elbus_dispatch_clear (ElbusBroker *broker)
{
  if (broker->timer_source != NULL)
    {
      g_source_destroy (broker->timer_source);
      g_clear_pointer (&broker->timer_source, g_source_unref);
    }
  if (broker->dispatch_source != NULL)
    {
      g_source_destroy (broker->dispatch_source);
      g_clear_pointer (&broker->dispatch_source, g_source_unref);
    }
  if (broker->epoll_fd >= 0)
    {
      close (broker->epoll_fd);
      broker->epoll_fd = -1;
    }
}

gboolean
_elbus_dispatch_file_add (ElbusDispatchFile *file,
                          ElbusBroker       *broker,
                          int                fd,
                          guint32            interest,
                          ElbusDispatchFunc  func)
{
  struct epoll_event ev = { .events = interest | EPOLLET, .data.ptr = file };

  file->broker = broker;
  file->func = func;
  file->events = 0;
  file->ready = FALSE;
  file->ready_link.data = file;
  if (epoll_ctl (broker->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
    {
      file->fd = -1;
      return FALSE;
    }
  file->fd = fd;
  file->interest = interest;
  return TRUE;
}

void
_elbus_dispatch_file_set_interest (ElbusDispatchFile *file,
                                   guint32            interest)
{
  struct epoll_event ev = { .events = interest | EPOLLET, .data.ptr = file };

  if (file->fd < 0 || file->interest == interest)
    return;
  /* fails only for a closed fd, which is never left registered */
  (void) epoll_ctl (file->broker->epoll_fd, EPOLL_CTL_MOD, file->fd, &ev);
  file->interest = interest;
  /* an event no longer wanted is forgotten */
  _elbus_dispatch_file_clear (file, ~(interest | EPOLLHUP | EPOLLERR));
}

/* @events are pending for @file: it joins the ready list, at the tail. */
void
_elbus_dispatch_file_wake (ElbusDispatchFile *file,
                           guint32            events)
{
  if (file->fd < 0)
    return;
  file->events |= events;
  if (!file->ready)
    {
      file->ready = TRUE;
      g_queue_push_tail_link (&file->broker->ready, &file->ready_link);
    }
}

/* The handler has drained @events: the file leaves the ready list when
 * nothing it waits for is left. */
void
_elbus_dispatch_file_clear (ElbusDispatchFile *file,
                            guint32            events)
{
  file->events &= ~events;
  if (file->ready && (file->events & (file->interest | EPOLLHUP | EPOLLERR)) == 0)
    {
      file->ready = FALSE;
      g_queue_unlink (&file->broker->ready, &file->ready_link);
    }
}

/* Before the fd is closed: no event may name the file afterwards. */
void
_elbus_dispatch_file_remove (ElbusDispatchFile *file)
{
  if (file->fd < 0)
    return;
  (void) epoll_ctl (file->broker->epoll_fd, EPOLL_CTL_DEL, file->fd, NULL);
  file->fd = -1;
  file->events = 0;
  if (file->ready)
    {
      file->ready = FALSE;
      g_queue_unlink (&file->broker->ready, &file->ready_link);
    }
}

/* deadlines */

gint64
_elbus_deadline_duration (ElbusBroker       *broker,
                          ElbusDeadlineKind  kind)
{
  double seconds = kind == ELBUS_DEADLINE_HANDSHAKE ? broker->handshake_timeout
                                                    : broker->timeout;

  return (gint64) (seconds * G_USEC_PER_SEC);
}

/* Starts (or restarts) @peer's deadline of @kind at @now: to the tail of
 * the list, which stays ordered because @now never goes back. */
void
_elbus_deadline_start (ElbusPeer         *peer,
                       ElbusDeadlineKind  kind,
                       gint64             now)
{
  GQueue *list = &peer->broker->deadlines[kind];
  GList *link = &peer->deadline_link[kind];

  if (peer->deadline_on[kind])
    {
      if (list->tail == link)
        {
          peer->since[kind] = now;
          return;
        }
      g_queue_unlink (list, link);
    }
  else if (kind == ELBUS_DEADLINE_HANDSHAKE && list->length == 0)
    /* the timer may be asleep until the next sweep */
    _elbus_dispatch_timer_wake (peer->broker, now + _elbus_deadline_duration (peer->broker, kind));

  link->data = peer;
  peer->since[kind] = now;
  peer->deadline_on[kind] = TRUE;
  g_queue_push_tail_link (list, link);
}

void
_elbus_deadline_stop (ElbusPeer         *peer,
                      ElbusDeadlineKind  kind)
{
  if (!peer->deadline_on[kind])
    return;
  g_queue_unlink (&peer->broker->deadlines[kind], &peer->deadline_link[kind]);
  peer->deadline_on[kind] = FALSE;
  peer->since[kind] = 0;
}

/* The oldest peer whose deadline of @kind has passed at @now, or NULL. */
ElbusPeer *
_elbus_deadline_first_due (ElbusBroker       *broker,
                           ElbusDeadlineKind  kind,
                           gint64             now)
{
  GList *head = broker->deadlines[kind].head;
  ElbusPeer *peer;

  if (head == NULL)
    return NULL;
  peer = head->data;
  if (now - peer->since[kind] < _elbus_deadline_duration (broker, kind))
    return NULL;
  return peer;
}

/* When the timer should run next: the next sweep, or the first handshake
 * deadline if sooner. Handshake expiries are gathered in steps of an
 * eighth of their duration, so that connections arriving one by one do
 * not make one wake-up each. */
static gint64
timer_next (ElbusBroker *broker,
            gint64       now)
{
  GList *head = broker->deadlines[ELBUS_DEADLINE_HANDSHAKE].head;
  gint64 when = broker->next_sweep;

  if (head != NULL)
    {
      gint64 duration = _elbus_deadline_duration (broker, ELBUS_DEADLINE_HANDSHAKE);
      gint64 due = ((ElbusPeer *) head->data)->since[ELBUS_DEADLINE_HANDSHAKE] + duration;

      when = MIN (when, MAX (due, now + duration / 8));
    }
  return when;
}

/* Runs the sweep (which sets broker->next_sweep), then re-arms. */
static gboolean
timer_dispatch (GSource     *source,
                GSourceFunc  callback,
                gpointer     user_data)
{
  ElbusBroker *broker = user_data;

  callback (user_data);
  if (!g_source_is_destroyed (source))
    g_source_set_ready_time (source, timer_next (broker, g_get_monotonic_time ()));
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs timer_source_funcs = {
  .dispatch = timer_dispatch,
};

/* Arms the broker's one timer: @func runs at every sweep and handshake
 * deadline; it sets broker->next_sweep and the timer re-arms itself. */
void
_elbus_dispatch_timer_start (ElbusBroker *broker,
                             GSourceFunc  func)
{
  if (broker->timer_source == NULL)
    {
      broker->timer_source = g_source_new (&timer_source_funcs, sizeof (GSource));
      g_source_set_static_name (broker->timer_source, "[elbus] broker timer");
      g_source_set_callback (broker->timer_source, func, broker, NULL);
      g_source_attach (broker->timer_source, broker->context);
    }
  g_source_set_ready_time (broker->timer_source, timer_next (broker, g_get_monotonic_time ()));
}

/* Makes the timer run no later than @when. */
void
_elbus_dispatch_timer_wake (ElbusBroker *broker,
                            gint64       when)
{
  gint64 armed;

  if (broker->timer_source == NULL)
    return;
  armed = g_source_get_ready_time (broker->timer_source);
  if (armed < 0 || armed > when)
    g_source_set_ready_time (broker->timer_source, when);
}
