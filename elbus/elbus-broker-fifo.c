/* SPDX-License-Identifier: MIT */
/*
 * The FIFO control channel (PROTOCOL.md section 6): a named pipe whose
 * lines `.broker` sends on.
 *
 *   TARGET TEXT             a message; a broadcast when TARGET has * or ?
 *   =TOPIC TEXT             a publication
 *   TARGET .TEXT            an RPC notification
 *   TARGET :method k=v ...  an RPC call wanting no answer; params typed
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
#include "elbus-msgpack.h"
#include "elbus-rpc-peer.h"

/* a longer line is dropped, not buffered without end */
#define FIFO_MAX_LINE (64 * 1024)

struct _ElbusFifo {
  ElbusBroker *broker;     /* (unowned) */
  char        *path;       /* (owned) */
  int          fd;         /* read end */
  int          keep_fd;    /* a write end of our own, so that writers closing is no EOF */
  GSource     *source;     /* (owned) (nullable) */
  GString     *line;       /* (owned): the line being read */
  gboolean     overlong;   /* dropping the rest of an overlong line */
};

static void
sent_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  if (!elbus_client_send_finish (ELBUS_CLIENT (source), result, &error))
    g_message ("fifo: %s", error->message);
}

static void
published_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  if (!elbus_client_publish_finish (ELBUS_CLIENT (source), result, &error))
    g_message ("fifo: %s", error->message);
}

static void
broadcast_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  if (!elbus_client_send_broadcast_finish (ELBUS_CLIENT (source), result, &error))
    g_message ("fifo: %s", error->message);
}

static void
notified_cb (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  if (!elbus_rpc_peer_notify_finish (ELBUS_RPC_PEER (source), result, &error))
    g_message ("fifo: %s", error->message);
}

static void
called0_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  if (!elbus_rpc_peer_call0_finish (ELBUS_RPC_PEER (source), result, &error))
    g_message ("fifo: %s", error->message);
}

static void
handle_line (ElbusFifo  *fifo,
             const char *line)
{
  ElbusClient *client = _elbus_core_rpc_get_client (fifo->broker->core);
  ElbusRpcPeer *peer = _elbus_core_rpc_get_peer (fifo->broker->core);
  const char *space = strchr (line, ' ');
  const char *text = space != NULL ? space + 1 : "";
  g_autofree char *target = space != NULL ? g_strndup (line, space - line) : g_strdup (line);
  g_autoptr(GBytes) payload = NULL;

  if (*line == '\0' || client == NULL)
    return;

  if (!g_utf8_validate (line, -1, NULL))
    {
      g_message ("fifo %s: a line that is not UTF-8, dropped", fifo->path);
      return;
    }

  if (target[0] == '=')
    {
      payload = g_bytes_new (text, strlen (text));
      elbus_client_publish_async (client, target + 1, payload, ELBUS_QOS_PROCESSED, NULL,
                                  published_cb, NULL);
    }
  else if (text[0] == '.')
    {
      /* an RPC notification */
      payload = g_bytes_new (text + 1, strlen (text + 1));
      elbus_rpc_peer_notify_async (peer, target, payload, ELBUS_QOS_PROCESSED, NULL,
                                   notified_cb, NULL);
    }
  else if (text[0] == ':')
    {
      /* an RPC call that wants no answer, with typed params */
      g_auto(GStrv) words = g_strsplit (text + 1, " ", -1);
      g_autoptr(GPtrArray) pairs = g_ptr_array_new ();
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) params = NULL;

      for (guint i = 1; words[i] != NULL; i++)
        if (*words[i] != '\0')
          g_ptr_array_add (pairs, words[i]);
      g_ptr_array_add (pairs, NULL);

      params = elbus_rpc_params_from_pairs ((const char * const *) pairs->pdata, &error);
      if (params != NULL)
        payload = elbus_msgpack_encode_variant (params, &error);
      if (payload == NULL)
        {
          g_message ("fifo %s: %s", fifo->path, error->message);
          return;
        }
      elbus_rpc_peer_call0_async (peer, target, words[0], payload, ELBUS_QOS_PROCESSED, NULL,
                                  called0_cb, NULL);
    }
  else
    {
      payload = g_bytes_new (text, strlen (text));
      if (strpbrk (target, "*?") != NULL)
        elbus_client_send_broadcast_async (client, target, payload, ELBUS_QOS_PROCESSED, NULL,
                                           broadcast_cb, NULL);
      else
        elbus_client_send_async (client, target, payload, ELBUS_QOS_PROCESSED, NULL, sent_cb,
                                 NULL);
    }
}

static gboolean
fifo_readable_cb (int          fd,
                  GIOCondition condition,
                  gpointer     user_data)
{
  ElbusFifo *fifo = user_data;
  char buf[4096];
  ssize_t n;

  while ((n = read (fd, buf, sizeof buf)) > 0)
    {
      for (ssize_t i = 0; i < n; i++)
        {
          if (buf[i] == '\n')
            {
              if (!fifo->overlong)
                handle_line (fifo, fifo->line->str);
              g_string_truncate (fifo->line, 0);
              fifo->overlong = FALSE;
            }
          else if (fifo->line->len >= FIFO_MAX_LINE)
            {
              if (!fifo->overlong)
                g_message ("fifo %s: a line over %d bytes, dropped", fifo->path, FIFO_MAX_LINE);
              fifo->overlong = TRUE;
            }
          else if (!fifo->overlong)
            g_string_append_c (fifo->line, buf[i]);
        }
    }

  return G_SOURCE_CONTINUE;
}

void
_elbus_fifo_free (ElbusFifo *fifo)
{
  if (fifo->source != NULL)
    {
      g_source_destroy (fifo->source);
      g_source_unref (fifo->source);
    }
  if (fifo->fd >= 0)
    close (fifo->fd);
  if (fifo->keep_fd >= 0)
    close (fifo->keep_fd);
  g_unlink (fifo->path);
  g_string_free (fifo->line, TRUE);
  g_free (fifo->path);
  g_free (fifo);
}

/**
 * elbus_broker_listen_fifo:
 * @self: a broker
 * @path: (type filename): the named pipe to create
 *
 * Creates a named pipe whose lines the broker's own client `.broker`
 * sends (the original's control channel, PROTOCOL.md section 6):
 * `TARGET TEXT` a message (a broadcast when TARGET holds `*` or `?`),
 * `=TOPIC TEXT` a publication, `TARGET .TEXT` an RPC notification, and
 * `TARGET :method k=v ...` an RPC call that wants no answer, with params
 * typed as by [func@Elbus.rpc_params_from_pairs]. Starts `.broker` if it
 * does not run yet. The pipe is removed when the broker closes.
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
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS, "%s exists and is not a FIFO", path);
      return FALSE;
    }
  if (mkfifo (path, 0600) != 0 && errno != EEXIST)
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "cannot create the FIFO %s: %s", path, g_strerror (saved_errno));
      return FALSE;
    }

  fifo = g_new0 (ElbusFifo, 1);
  fifo->broker = self;
  fifo->path = g_strdup (path);
  fifo->line = g_string_new (NULL);
  fifo->keep_fd = -1;
  fifo->fd = open (path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fifo->fd >= 0)
    fifo->keep_fd = open (path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fifo->fd < 0 || fifo->keep_fd < 0)
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "cannot open the FIFO %s: %s", path, g_strerror (saved_errno));
      _elbus_fifo_free (fifo);
      return FALSE;
    }

  fifo->source = g_unix_fd_source_new (fifo->fd, G_IO_IN);
  g_source_set_static_name (fifo->source, "[elbus] broker fifo");
  g_source_set_callback (fifo->source, G_SOURCE_FUNC (fifo_readable_cb), fifo, NULL);
  g_source_attach (fifo->source, self->context);

  g_ptr_array_add (self->fifos, fifo);
  g_info ("listening on fifo:%s", path);

  return TRUE;
}
