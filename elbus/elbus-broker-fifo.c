/* SPDX-License-Identifier: MIT */
/*
 * The FIFO control channel (docs/protocol.md section 6): a named pipe whose
 * lines `.broker` sends on. The lines themselves are read by the pure
 * functions of elbus-fifo-line.c; this file reads the pipe and sends.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <glib-unix.h>

#include "elbus-broker-private.h"
#include "elbus-error.h"
#include "elbus-fifo-line-private.h"
#include "elbus-i18n-private.h"
#include "elbus-rpc-peer.h"

struct _ElbusFifo {
  ElbusBroker     *broker;  /* (unowned) */
  char            *path;    /* (owned) */
  int              fd;      /* read end, opened again whenever the writers are gone */
  GSource         *source;  /* (owned) (nullable) */
  ElbusFifoReader  reader;  /* the line being read */
};

/* What a line asked for, for the log when the broker refuses it. */
typedef struct {
  ElbusFifoLineKind  kind;
  char              *what; /* (owned): "fifo PATH: a message to TARGET" */
} FifoSend;

static void
fifo_send_free (FifoSend *send)
{
  g_free (send->what);
  g_free (send);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (FifoSend, fifo_send_free)

static void
sent_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr(FifoSend) send = user_data;
  g_autoptr(GError) error = NULL;
  gboolean ok = FALSE;

  switch (send->kind)
    {
    case ELBUS_FIFO_LINE_MESSAGE:
      ok = elbus_client_send_finish (ELBUS_CLIENT (source), result, &error);
      break;
    case ELBUS_FIFO_LINE_BROADCAST:
      ok = elbus_client_send_broadcast_finish (ELBUS_CLIENT (source), result, &error);
      break;
    case ELBUS_FIFO_LINE_PUBLISH:
      ok = elbus_client_publish_finish (ELBUS_CLIENT (source), result, &error);
      break;
    case ELBUS_FIFO_LINE_NOTIFY:
      ok = elbus_rpc_peer_notify_finish (ELBUS_RPC_PEER (source), result, &error);
      break;
    case ELBUS_FIFO_LINE_CALL0:
      ok = elbus_rpc_peer_call0_finish (ELBUS_RPC_PEER (source), result, &error);
      break;
    case ELBUS_FIFO_LINE_EMPTY:
    default:
      g_assert_not_reached ();
    }

  if (!ok)
    g_message (_("%s failed: %s"), send->what, error->message);
}

static void
line_cb (const ElbusFifoLine *line,
         const GError        *line_error,
         gpointer             user_data)
{
  ElbusFifo *fifo = user_data;
  ElbusClient *client = _elbus_core_rpc_get_client (fifo->broker->core);
  ElbusRpcPeer *peer = _elbus_core_rpc_get_peer (fifo->broker->core);
  FifoSend *send;

  if (line_error != NULL)
    {
      g_message (_("fifo %s: line dropped: %s"), fifo->path, line_error->message);
      return;
    }
  if (client == NULL || peer == NULL)
    return;

  send = g_new0 (FifoSend, 1);
  send->kind = line->kind;

  switch (line->kind)
    {
    case ELBUS_FIFO_LINE_MESSAGE:
      send->what = g_strdup_printf (_("fifo %s: a message to %s"), fifo->path, line->target);
      elbus_client_send_async (client, line->target, line->payload, ELBUS_QOS_PROCESSED,
                               NULL, sent_cb, send);
      break;
    case ELBUS_FIFO_LINE_BROADCAST:
      send->what = g_strdup_printf (_("fifo %s: a broadcast to %s"), fifo->path, line->target);
      elbus_client_send_broadcast_async (client, line->target, line->payload,
                                         ELBUS_QOS_PROCESSED, NULL, sent_cb, send);
      break;
    case ELBUS_FIFO_LINE_PUBLISH:
      send->what = g_strdup_printf (_("fifo %s: a publication on %s"), fifo->path, line->target);
      elbus_client_publish_async (client, line->target, line->payload, ELBUS_QOS_PROCESSED,
                                  NULL, sent_cb, send);
      break;
    case ELBUS_FIFO_LINE_NOTIFY:
      send->what = g_strdup_printf (_("fifo %s: an RPC notification to %s"), fifo->path,
                                    line->target);
      elbus_rpc_peer_notify_async (peer, line->target, line->payload, ELBUS_QOS_PROCESSED,
                                   NULL, sent_cb, send);
      break;
    case ELBUS_FIFO_LINE_CALL0:
      send->what = g_strdup_printf (_("fifo %s: the RPC call %s to %s"), fifo->path,
                                    line->method, line->target);
      elbus_rpc_peer_call0_async (peer, line->target, line->method, line->payload,
                                  ELBUS_QOS_PROCESSED, NULL, sent_cb, send);
      break;
    case ELBUS_FIFO_LINE_EMPTY:
    default:
      g_assert_not_reached ();
    }
}

static gboolean fifo_readable_cb (int          fd,
                                  GIOCondition condition,
                                  gpointer     user_data);

/* Opens the read end and watches it. Opened without a writer, it reports
 * no hang-up until a writer has come and gone. */
static gboolean
fifo_open (ElbusFifo  *fifo,
           GError    **error)
{
  fifo->fd = open (fifo->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fifo->fd < 0)
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   _("cannot open the FIFO %s: %s"), fifo->path, g_strerror (saved_errno));
      return FALSE;
    }

  fifo->source = g_unix_fd_source_new (fifo->fd, G_IO_IN | G_IO_HUP);
  g_source_set_static_name (fifo->source, "[elbus] broker fifo");
  g_source_set_callback (fifo->source, G_SOURCE_FUNC (fifo_readable_cb), fifo, NULL);
  g_source_attach (fifo->source, fifo->broker->context);
  return TRUE;
}

static gboolean
fifo_readable_cb (int          fd,
                  GIOCondition condition,
                  gpointer     user_data)
{
  ElbusFifo *fifo = user_data;
  g_autoptr(GError) error = NULL;
  char buf[4096];
  ssize_t n;

  while ((n = read (fd, buf, sizeof buf)) > 0)
    _elbus_fifo_reader_feed (&fifo->reader, buf, n, line_cb, fifo);

  if (n < 0)
    return G_SOURCE_CONTINUE;

  /* every writer is gone: the last line ends here, newline or not (as
   * `printf 'TARGET text' > FIFO` means it), and the pipe is opened again,
   * which clears the hang-up; a writer that comes meanwhile waits in
   * open() for the reader */
  _elbus_fifo_reader_feed (&fifo->reader, "\n", 1, line_cb, fifo);
  g_clear_pointer (&fifo->source, g_source_unref);
  close (fifo->fd);
  if (!fifo_open (fifo, &error))
    g_warning ("%s", error->message);
  return G_SOURCE_REMOVE;
}

static void
fifo_free (ElbusFifo *fifo)
{
  if (fifo->source != NULL)
    {
      g_source_destroy (fifo->source);
      g_source_unref (fifo->source);
    }
  if (fifo->fd >= 0)
    close (fifo->fd);
  g_unlink (fifo->path);
  _elbus_fifo_reader_clear (&fifo->reader);
  g_free (fifo->path);
  g_free (fifo);
}

/**
 * elbus_broker_listen_fifo:
 * @self: a broker
 * @path: (type filename): the named pipe to create
 *
 * Creates a named pipe whose lines the broker's own client `.broker`
 * sends (the original's control channel, docs/protocol.md section 6):
 * `TARGET TEXT` a message (a broadcast when TARGET holds `*` or `?`),
 * `=TOPIC TEXT` a publication, `TARGET .TEXT` an RPC notification, and
 * `TARGET :method k=v ...` an RPC call that wants no answer, with params
 * typed as by [func@Elbus.rpc_params_from_pairs]. Empty lines are
 * skipped; any other line that is none of these is logged, saying what is
 * wrong, and sends nothing. Starts `.broker` if it does not run yet. The
 * pipe is removed when the broker closes.
 *
 * Returns: %TRUE when listening
 *
 * Since: 1.0
 */
gboolean
elbus_broker_listen_fifo (ElbusBroker  *self,
                          const char   *path,
                          GError      **error)
{
  ElbusFifo *fifo;
  struct stat st;

  g_return_val_if_fail (ELBUS_IS_BROKER (self), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!elbus_broker_enable_core_rpc (self, error))
    return FALSE;

  /* a pipe left behind is reused; anything else in the way is an error */
  if (lstat (path, &st) == 0 && !S_ISFIFO (st.st_mode))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS, _("%s exists and is not a FIFO"), path);
      return FALSE;
    }
  if (mkfifo (path, 0600) != 0 && errno != EEXIST)
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   _("cannot create the FIFO %s: %s"), path, g_strerror (saved_errno));
      return FALSE;
    }

  fifo = g_new0 (ElbusFifo, 1);
  fifo->broker = self;
  fifo->path = g_strdup (path);
  _elbus_fifo_reader_init (&fifo->reader, ELBUS_FIFO_MAX_LINE);
  if (!fifo_open (fifo, error))
    {
      fifo_free (fifo);
      return FALSE;
    }

  if (self->fifos == NULL)
    self->fifos = g_ptr_array_new_with_free_func ((GDestroyNotify) fifo_free);
  g_ptr_array_add (self->fifos, fifo);
  g_info (_("listening on fifo:%s"), path);

  return TRUE;
}
