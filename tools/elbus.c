/* SPDX-License-Identifier: MIT */
/*
 * elbus: the command-line client, after the original's CLI.
 *
 *   elbus PATH [-n NAME] [--timeout S] [--buf-size N] [--queue-size N]
 *         [-v] [-s] COMMAND [ARGS]
 *
 * The global options go between PATH and COMMAND; each command parses its
 * own.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib/gi18n.h>
#include <glib-unix.h>
#include <gio/gunixinputstream.h>

#include <elbus/elbus.h>

#include "elbus-tool-util.h"

typedef struct {
  char        *path;      /* (owned): checked by elbus_tool_check_address() */
  char        *name;
  double       timeout;
  int          buf_size;
  int          queue_size;
  gboolean     verbose;
  gboolean     silent;
} Globals;

static Globals globals = {
  .timeout = ELBUS_CLIENT_DEFAULT_TIMEOUT,
  .buf_size = ELBUS_CLIENT_DEFAULT_BUF_SIZE,
  .queue_size = ELBUS_CLIENT_DEFAULT_QUEUE_SIZE,
};

static ElbusClient *
connect_client (const char  *name,
                GError     **error)
{
  g_autoptr(GError) local_error = NULL;
  ElbusClient *client;

  /* the timeout bounds connecting too */
  client = g_initable_new (ELBUS_TYPE_CLIENT, NULL, &local_error,
                           "address", globals.path, "name", name, "timeout", globals.timeout,
                           "buf-size", (guint) globals.buf_size,
                           "queue-size", (guint) globals.queue_size, NULL);
  if (client == NULL)
    {
      g_autofree char *message = elbus_tool_connect_error (globals.path, local_error);

      g_set_error_literal (error, local_error->domain, local_error->code, message);
    }
  return client;
}

/* payloads */

/* A payload as the tools show it: see elbus_tool_format_payload_data(). */
static char *
format_payload (GBytes *payload)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (payload, &len);

  return elbus_tool_format_payload_data (data, len);
}

/* The payload argument, or standard input when it is absent. */
static GBytes *
read_payload (const char  *arg,
              GError     **error)
{
  g_autoptr(GByteArray) buf = NULL;
  g_autoptr(GInputStream) in = NULL;

  if (arg != NULL)
    return g_bytes_new (arg, strlen (arg));

  in = g_unix_input_stream_new (STDIN_FILENO, FALSE);
  buf = g_byte_array_new ();
  for (;;)
    {
      guint8 chunk[65536];
      gssize n = g_input_stream_read (in, chunk, sizeof chunk, NULL, error);

      if (n < 0)
        return NULL;
      if (n == 0)
        break;
      g_byte_array_append (buf, chunk, n);
    }

  return g_byte_array_free_to_bytes (g_steal_pointer (&buf));
}

static const char *
kind_name (ElbusFrameKind kind)
{
  switch (kind)
    {
    case ELBUS_FRAME_KIND_MESSAGE:
      return "message";
    case ELBUS_FRAME_KIND_BROADCAST:
      return "broadcast";
    case ELBUS_FRAME_KIND_PUBLISH:
    default:
      return "publication";
    }
}

/* One line of the listen commands' output: the local time to the
 * millisecond, a space, the formatted text, ": " and the payload as the
 * tools show it; written out at once. The payload (maybe megabytes of
 * hex) is written as it is, not copied into the line. */
static void G_GNUC_PRINTF (2, 3)
print_event (const char *payload,
             const char *format,
             ...)
{
  g_autoptr(GDateTime) now = g_date_time_new_now_local ();
  g_autofree char *stamp = g_date_time_format (now, "%H:%M:%S.%f");
  g_autofree char *text = NULL;
  va_list args;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);

  stamp[12] = '\0';   /* milliseconds */
  g_print ("%s %s: ", stamp, text);
  /* as g_print() would write it: as it is to a UTF-8 console, converted
   * to any other */
  if (g_get_console_charset (NULL))
    fputs (payload, stdout);
  else
    g_print ("%s", payload);
  fputc ('\n', stdout);
  fflush (stdout);
}

static void
print_frame_cb (ElbusClient *client,
                ElbusFrame  *frame,
                gpointer     user_data)
{
  g_autofree char *payload = format_payload (elbus_frame_get_payload (frame));
  const char *topic = elbus_frame_get_topic (frame);

  if (topic != NULL)
    print_event (payload, "%s from %s on %s%s", kind_name (elbus_frame_get_kind (frame)),
                 elbus_frame_get_sender (frame), topic,
                 elbus_frame_is_realtime (frame) ? " (realtime)" : "");
  else
    print_event (payload, "%s from %s%s", kind_name (elbus_frame_get_kind (frame)),
                 elbus_frame_get_sender (frame),
                 elbus_frame_is_realtime (frame) ? " (realtime)" : "");
}

/* commands */

typedef struct {
  GMainLoop *loop;
  int        status;
  gboolean   broker_shutdown;   /* .broker announced its shutdown */
} ListenState;

/* `.broker` announces its shutdown on .broker/warn (every client is
 * subscribed to it) before it closes. */
static void
listen_publication_cb (ElbusClient *client,
                       ElbusFrame  *frame,
                       gpointer     user_data)
{
  ListenState *state = user_data;
  g_autoptr(GVariant) map = NULL;
  const char *what = NULL;

  if (g_strcmp0 (elbus_frame_get_sender (frame), ".broker") != 0 ||
      g_strcmp0 (elbus_frame_get_topic (frame), ".broker/warn") != 0)
    return;
  map = elbus_msgpack_decode (elbus_frame_get_payload (frame), NULL);
  if (map != NULL && g_variant_is_of_type (map, G_VARIANT_TYPE_VARDICT) &&
      g_variant_lookup (map, "s", "&s", &what) && g_str_equal (what, "shutdown"))
    state->broker_shutdown = TRUE;
}

static void
listen_disconnected_cb (ElbusClient *client,
                        GError      *error,
                        gpointer     user_data)
{
  ListenState *state = user_data;

  /* as elbus-monitor says it */
  if (state->broker_shutdown)
    elbus_tool_fail (EXIT_ERROR, _("the broker shut down"));
  /* "disconnected by the broker: REASON" says it already */
  else if (g_error_matches (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED))
    elbus_tool_fail (EXIT_ERROR, "%s", error->message);
  else if (error != NULL)
    elbus_tool_fail (EXIT_ERROR, _("disconnected: %s"), error->message);
  state->status = EXIT_ERROR;
  g_main_loop_quit (state->loop);
}

static gboolean
quit_cb (gpointer user_data)
{
  ListenState *state = user_data;

  g_main_loop_quit (state->loop);
  return G_SOURCE_CONTINUE;
}

/* Subscribes to @topics, says it is ready and prints what @client
 * receives until interrupted or disconnected: the end of both listen
 * commands. */
static int
listen_until_interrupted (ElbusClient *client,
                          GStrv        topics,
                          const char  *ready)
{
  g_autoptr(GError) error = NULL;
  ListenState state = { .loop = g_main_loop_new (NULL, FALSE), .status = 0 };
  guint sigint, sigterm;

  g_signal_connect (client, "broadcast", G_CALLBACK (print_frame_cb), NULL);
  g_signal_connect (client, "publication", G_CALLBACK (print_frame_cb), NULL);
  g_signal_connect (client, "publication", G_CALLBACK (listen_publication_cb), &state);
  g_signal_connect (client, "disconnected", G_CALLBACK (listen_disconnected_cb), &state);

  if (topics != NULL &&
      !elbus_client_subscribe_sync (client, (const char * const *) topics,
                                    ELBUS_QOS_PROCESSED, NULL, &error))
    {
      g_signal_handlers_disconnect_by_data (client, &state);
      g_main_loop_unref (state.loop);
      return elbus_tool_fail (EXIT_ERROR, _("cannot subscribe: %s"), error->message);
    }

  if (!globals.silent)
    g_printerr ("%s", ready);

  sigint = g_unix_signal_add (SIGINT, quit_cb, &state);
  sigterm = g_unix_signal_add (SIGTERM, quit_cb, &state);
  g_main_loop_run (state.loop);

  g_source_remove (sigint);
  g_source_remove (sigterm);
  g_signal_handlers_disconnect_by_data (client, &state);
  g_main_loop_unref (state.loop);
  return state.status;
}

static int
cmd_listen (int    argc,
            char **argv)
{
  g_auto(GStrv) topics = NULL;
  GOptionEntry entries[] = {
    { "topic", 't', 0, G_OPTION_ARG_STRING_ARRAY, &topics,
      N_("Subscribe to TOPIC (a mask: + is one level, # the rest); repeatable"), N_("TOPIC") },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (_("PATH listen — print incoming frames"));
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusClient) client = NULL;
  g_autofree char *ready = NULL;

  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  g_option_context_set_summary (context,
    _("Prints every message, broadcast and publication this client receives, "
      "one line each, until interrupted."));
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return elbus_tool_fail (EXIT_USAGE, "%s", error->message);
  if (argc > 1)
    return elbus_tool_fail (EXIT_USAGE, _("listen: unexpected argument “%s”"), argv[1]);

  client = connect_client (globals.name, &error);
  if (client == NULL)
    return elbus_tool_fail (EXIT_ERROR, "%s", error->message);

  g_signal_connect (client, "message", G_CALLBACK (print_frame_cb), NULL);
  ready = g_strdup_printf (_("listening as %s; Ctrl+C stops\n"), elbus_client_get_name (client));
  return listen_until_interrupted (client, topics, ready);
}

static gboolean
target_is_mask (const char *target)
{
  return strchr (target, '*') != NULL || strchr (target, '?') != NULL;
}

static int
cmd_send_or_publish (int       argc,
                     char    **argv,
                     gboolean  publish)
{
  gboolean realtime = FALSE, no_ack = FALSE;
  GOptionEntry entries[] = {
    { "realtime", 'r', 0, G_OPTION_ARG_NONE, &realtime, N_("Real-time delivery"), NULL },
    { "no-ack", 0, 0, G_OPTION_ARG_NONE, &no_ack,
      N_("Do not wait for the broker's acknowledgement"), NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(GBytes) payload = NULL;
  ElbusQoS qos;
  gboolean ok;

  context = g_option_context_new (publish ? _("PATH publish TOPIC [PAYLOAD] — publish on a topic")
                                          : _("PATH send TARGET [PAYLOAD] — send a message or a broadcast"));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  g_option_context_set_summary (context, publish
    ? _("Publishes PAYLOAD (standard input when omitted) on TOPIC.")
    : _("Sends PAYLOAD (standard input when omitted) to the client TARGET; a TARGET "
        "with * or ? is a broadcast mask."));
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return elbus_tool_fail (EXIT_USAGE, "%s", error->message);
  if (argc < 2 || argc > 3)
    return elbus_tool_fail (EXIT_USAGE,
                            publish ? _("usage: elbus PATH publish TOPIC [PAYLOAD]")
                                    : _("usage: elbus PATH send TARGET [PAYLOAD]"));

  payload = read_payload (argc == 3 ? argv[2] : NULL, &error);
  if (payload == NULL)
    return elbus_tool_fail (EXIT_ERROR, _("cannot read the payload: %s"), error->message);

  client = connect_client (globals.name, &error);
  if (client == NULL)
    return elbus_tool_fail (EXIT_ERROR, "%s", error->message);

  qos = (no_ack ? ELBUS_QOS_NO : ELBUS_QOS_PROCESSED) | (realtime ? ELBUS_QOS_REALTIME : 0);
  if (publish)
    ok = elbus_client_publish_sync (client, argv[1], payload, qos, NULL, &error);
  else if (target_is_mask (argv[1]))
    ok = elbus_client_send_broadcast_sync (client, argv[1], payload, qos, NULL, &error);
  else
    ok = elbus_client_send_sync (client, argv[1], payload, qos, NULL, &error);
  if (!ok)
    return elbus_tool_fail (EXIT_ERROR, "%s", error->message);

  elbus_client_close (client);
  return 0;
}

/* RPC */

/* k=v arguments as a MessagePack map, typed as in the original */
static GBytes *
kv_params (int      n_args,
           char   **args,
           GError **error)
{
  g_auto(GStrv) pairs = g_new0 (char *, n_args + 1);
  g_autoptr(GVariant) map = NULL;

  for (int i = 0; i < n_args; i++)
    pairs[i] = g_strdup (args[i]);
  map = elbus_rpc_params_from_pairs ((const char * const *) pairs, error);
  if (map == NULL)
    return NULL;
  return elbus_msgpack_encode_variant (map, error);
}

/* "-" reads raw params from standard input; else k=v pairs. */
static GBytes *
call_params (int      n_args,
             char   **args,
             GError **error)
{
  if (n_args == 1 && g_str_equal (args[0], "-"))
    return read_payload (NULL, error);
  if (n_args == 0)
    return g_bytes_new_static ("", 0);
  return kv_params (n_args, args, error);
}

static int
rpc_fail (const GError *error)
{
  if (error->domain == ELBUS_RPC_ERROR)
    return elbus_tool_fail (EXIT_ERROR, _("RPC error %d: %s"), error->code, error->message);
  return elbus_tool_fail (EXIT_ERROR, "%s", error->message);
}

static void
print_value_table (GVariant *value)
{
  GVariantIter iter;
  const char *key;
  GVariant *child;
  int width = 0;

  g_variant_iter_init (&iter, value);
  while (g_variant_iter_next (&iter, "{&sv}", &key, &child))
    {
      width = MAX (width, (int) strlen (key));
      g_variant_unref (child);
    }
  g_variant_iter_init (&iter, value);
  while (g_variant_iter_next (&iter, "{&sv}", &key, &child))
    {
      g_autofree char *text = g_variant_is_of_type (child, G_VARIANT_TYPE_STRING)
                              ? g_variant_dup_string (child, NULL)
                              : elbus_tool_variant_to_json (child);

      g_print ("%-*s  %s\n", width, key, text);
      g_variant_unref (child);
    }
}

static char *
field_text (GVariant   *entry,
            const char *key)
{
  g_autoptr(GVariant) value = g_variant_lookup_value (entry, key, NULL);

  if (value == NULL || g_variant_is_of_type (value, G_VARIANT_TYPE_MAYBE))
    return g_strdup ("");
  if (g_variant_is_of_type (value, G_VARIANT_TYPE_STRING))
    return g_variant_dup_string (value, NULL);
  return elbus_tool_variant_to_json (value);
}

static void
print_client_list (GVariant *value)
{
  static const char * const columns[] = {
    "name", "kind", "source", "port", "r_frames", "r_bytes", "w_frames", "w_bytes",
    "queue", "instances", "uid", "pid", NULL   /* uid, pid: elbus-glib brokers only */
  };
  g_autoptr(GVariant) clients = g_variant_lookup_value (value, "clients", G_VARIANT_TYPE ("av"));
  g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);
  int widths[G_N_ELEMENTS (columns)] = { 0 };
  gsize n = clients != NULL ? g_variant_n_children (clients) : 0;

  g_ptr_array_add (rows, g_strdupv ((char **) columns));
  for (gsize i = 0; i < n; i++)
    {
      g_autoptr(GVariant) boxed = g_variant_get_child_value (clients, i);
      g_autoptr(GVariant) entry = g_variant_get_variant (boxed);
      char **row = g_new0 (char *, G_N_ELEMENTS (columns));

      for (guint c = 0; columns[c] != NULL; c++)
        row[c] = field_text (entry, columns[c]);
      g_ptr_array_add (rows, row);
    }

  for (guint r = 0; r < rows->len; r++)
    for (guint c = 0; columns[c] != NULL; c++)
      widths[c] = MAX (widths[c], (int) g_utf8_strlen (((char **) rows->pdata[r])[c], -1));

  for (guint r = 0; r < rows->len; r++)
    {
      char **row = rows->pdata[r];

      for (guint c = 0; columns[c] != NULL; c++)
        /* names and text left, numbers right */
        g_print (c < 4 ? "%-*s%s" : "%*s%s", widths[c], row[c], columns[c + 1] ? "  " : "\n");
    }
}

static int
cmd_broker (int    argc,
            char **argv)
{
  static const char * const methods[] = { "client.list", "info", "stats", "test", NULL };
  g_autoptr(GOptionContext) context =
    g_option_context_new (_("PATH broker client.list|info|stats|test — ask the broker"));
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(ElbusRpcPeer) peer = NULL;
  g_autoptr(GBytes) reply = NULL;
  g_autoptr(GVariant) value = NULL;
  const char *method;

  g_option_context_set_summary (context, _("Calls a method of the broker's own client .broker "
                                           "and prints the answer as a table."));
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return elbus_tool_fail (EXIT_USAGE, "%s", error->message);
  if (argc != 2 || !g_strv_contains (methods, argv[1]))
    return elbus_tool_fail (EXIT_USAGE, _("usage: elbus PATH broker client.list|info|stats|test"));
  method = argv[1];

  client = connect_client (globals.name, &error);
  if (client == NULL)
    return elbus_tool_fail (EXIT_ERROR, "%s", error->message);
  peer = elbus_rpc_peer_new (client);

  reply = elbus_rpc_peer_call_sync (peer, ".broker", method, NULL, ELBUS_QOS_PROCESSED, 0,
                                    NULL, &error);
  if (reply == NULL)
    return rpc_fail (error);

  value = elbus_msgpack_decode (reply, &error);
  if (value == NULL)
    return elbus_tool_fail (EXIT_ERROR, _("the broker's answer is not MessagePack: %s"),
                            error->message);

  if (g_str_equal (method, "client.list"))
    print_client_list (value);
  else if (g_variant_is_of_type (value, G_VARIANT_TYPE_VARDICT))
    print_value_table (value);
  else
    {
      g_autofree char *text = elbus_tool_variant_to_json (value);

      g_print ("%s\n", text);
    }

  return 0;
}

static gboolean
rpc_listen_call_cb (ElbusRpcPeer       *peer,
                    ElbusRpcInvocation *invocation,
                    gpointer            user_data)
{
  g_autofree char *params = format_payload (elbus_rpc_invocation_get_params (invocation));

  print_event (params, "call %s #%u from %s", elbus_rpc_invocation_get_method (invocation),
               elbus_rpc_invocation_get_call_id (invocation),
               elbus_rpc_invocation_get_sender (invocation));

  /* answered with an empty result */
  elbus_rpc_invocation_return_value (invocation, NULL);
  return TRUE;
}

static void
rpc_listen_notification_cb (ElbusRpcPeer *peer,
                            const char   *sender,
                            GBytes       *payload,
                            gpointer      user_data)
{
  g_autofree char *text = format_payload (payload);

  print_event (text, "notification from %s", sender);
}

static int
cmd_rpc (int    argc,
         char **argv)
{
  g_auto(GStrv) topics = NULL;
  GOptionEntry entries[] = {
    { "topic", 't', 0, G_OPTION_ARG_STRING_ARRAY, &topics,
      N_("listen: also subscribe to TOPIC; repeatable"), N_("TOPIC") },
    { NULL }
  };
  g_autoptr(GOptionContext) context =
    g_option_context_new (_("PATH rpc listen|notify|call0|call … — the RPC layer"));
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusClient) client = NULL;
  g_autoptr(ElbusRpcPeer) peer = NULL;
  g_autofree char *ready = NULL;
  const char *sub;

  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  g_option_context_set_summary (context,
    _("  rpc listen [-t TOPIC]…                 print incoming calls and notifications, "
      "answer calls\n"
      "  rpc notify TARGET [PAYLOAD]            send a notification\n"
      "  rpc call0 TARGET METHOD [K=V…|-]       call, wanting no answer\n"
      "  rpc call TARGET METHOD [K=V…|-]        call and print the answer\n"
      "K=V params make a MessagePack map (true, false, integers and floats typed); "
      "- reads raw params from standard input."));
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return elbus_tool_fail (EXIT_USAGE, "%s", error->message);
  if (argc < 2)
    return elbus_tool_fail (EXIT_USAGE, _("usage: elbus PATH rpc listen|notify|call0|call …"));
  sub = argv[1];
  if (topics != NULL && !g_str_equal (sub, "listen"))
    return elbus_tool_fail (EXIT_USAGE, _("rpc %s: --topic is for rpc listen only"), sub);

  if (g_str_equal (sub, "listen"))
    {
      if (argc != 2)
        return elbus_tool_fail (EXIT_USAGE, _("rpc listen: unexpected argument “%s”"), argv[2]);
      client = connect_client (globals.name, &error);
      if (client == NULL)
        return elbus_tool_fail (EXIT_ERROR, "%s", error->message);
      peer = elbus_rpc_peer_new (client);
      g_signal_connect (peer, "handle-call", G_CALLBACK (rpc_listen_call_cb), NULL);
      g_signal_connect (peer, "notification", G_CALLBACK (rpc_listen_notification_cb), NULL);
      ready = g_strdup_printf (_("listening for RPC as %s; Ctrl+C stops\n"),
                               elbus_client_get_name (client));
      return listen_until_interrupted (client, topics, ready);
    }

  if (g_str_equal (sub, "notify"))
    {
      g_autoptr(GBytes) payload = NULL;

      if (argc < 3 || argc > 4)
        return elbus_tool_fail (EXIT_USAGE, _("usage: elbus PATH rpc notify TARGET [PAYLOAD]"));
      payload = read_payload (argc == 4 ? argv[3] : NULL, &error);
      if (payload == NULL)
        return elbus_tool_fail (EXIT_ERROR, _("cannot read the payload: %s"), error->message);
      client = connect_client (globals.name, &error);
      if (client == NULL)
        return elbus_tool_fail (EXIT_ERROR, "%s", error->message);
      peer = elbus_rpc_peer_new (client);
      if (!elbus_rpc_peer_notify_sync (peer, argv[2], payload, ELBUS_QOS_PROCESSED, NULL, &error))
        return rpc_fail (error);
      return 0;
    }

  if (g_str_equal (sub, "call") || g_str_equal (sub, "call0"))
    {
      g_autoptr(GBytes) params = NULL;
      g_autoptr(GBytes) reply = NULL;

      if (argc < 4)
        return elbus_tool_fail (EXIT_USAGE, _("usage: elbus PATH rpc %s TARGET METHOD [K=V…|-]"),
                                sub);
      params = call_params (argc - 4, argv + 4, &error);
      if (params == NULL)
        return elbus_tool_fail (EXIT_ERROR, "%s", error->message);
      client = connect_client (globals.name, &error);
      if (client == NULL)
        return elbus_tool_fail (EXIT_ERROR, "%s", error->message);
      peer = elbus_rpc_peer_new (client);

      if (g_str_equal (sub, "call0"))
        {
          if (!elbus_rpc_peer_call0_sync (peer, argv[2], argv[3], params, ELBUS_QOS_PROCESSED,
                                          NULL, &error))
            return rpc_fail (error);
          return 0;
        }

      reply = elbus_rpc_peer_call_sync (peer, argv[2], argv[3], params, ELBUS_QOS_PROCESSED, 0,
                                        NULL, &error);
      if (reply == NULL)
        return rpc_fail (error);
      {
        g_autofree char *text = format_payload (reply);

        g_print ("%s\n", text);
      }
      return 0;
    }

  return elbus_tool_fail (EXIT_USAGE, _("unknown rpc command “%s”"), sub);
}

/* benchmark */

typedef enum {
  STAGE_SEND_NO,
  STAGE_SEND_PROCESSED,
  STAGE_SEND_RECV_NO,
  STAGE_SEND_RECV_PROCESSED,
  STAGE_RPC_CALL,
  STAGE_RPC_CALL_HANDLE,
  STAGE_RPC_CALL0,
  N_STAGES
} Stage;

/* The original CLI's stages, in its order, each with its QoS: the
 * processed and rpc ones are real-time and wait for their answer. */
static const struct {
  const char *name;
  ElbusQoS    qos;
} stages[N_STAGES] = {
  [STAGE_SEND_NO] = { "send.qos.no", ELBUS_QOS_NO },
  [STAGE_SEND_PROCESSED] = { "send.qos.processed", ELBUS_QOS_REALTIME_PROCESSED },
  [STAGE_SEND_RECV_NO] = { "send+recv.qos.no", ELBUS_QOS_NO },
  [STAGE_SEND_RECV_PROCESSED] = { "send+recv.qos.processed", ELBUS_QOS_REALTIME_PROCESSED },
  [STAGE_RPC_CALL] = { "rpc.call", ELBUS_QOS_REALTIME_PROCESSED },
  [STAGE_RPC_CALL_HANDLE] = { "rpc.call+handle", ELBUS_QOS_REALTIME_PROCESSED },
  [STAGE_RPC_CALL0] = { "rpc.call0", ELBUS_QOS_REALTIME_PROCESSED },
};

#define BENCH_UNREGISTERED_TARGET "elbus.benchmark.nobody"
/* the original's payload byte */
#define BENCH_PAYLOAD_BYTE 0xEE

typedef struct {
  GThread      *thread;
  guint64       iters;
  Stage         stage;
  guint64       window;        /* most operations in flight; 0: no answer to wait for */
  GMainContext *context;
  ElbusClient  *client;        /* (owned) */
  ElbusRpcPeer *peer;          /* (owned) (nullable): rpc stages */
  char         *target;        /* (owned) */
  GBytes       *payload;       /* (owned) */
  guint64       sent;
  guint64       acked;         /* acks, replies: answers */
  guint64       received;
  guint64       bad;
  char         *error;         /* (owned) (nullable) */
} Worker;

typedef struct {
  GMutex  lock;
  GCond   cond;
  guint   ready;
  guint   n_workers;
  gboolean go;
} Barrier;

static Barrier barrier;

static gboolean
stage_is_rpc (Stage stage)
{
  return stage >= STAGE_RPC_CALL;
}

static gboolean
stage_receives (Stage stage)
{
  return stage == STAGE_SEND_RECV_NO || stage == STAGE_SEND_RECV_PROCESSED;
}

/* whether each operation of the stage gets an ack or a reply */
static gboolean
stage_is_answered (Stage stage)
{
  return stage_is_rpc (stage) || stages[stage].qos == ELBUS_QOS_PROCESSED ||
         stages[stage].qos == ELBUS_QOS_REALTIME_PROCESSED;
}

static void
bench_ack_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Worker *w = user_data;
  g_autoptr(GError) error = NULL;

  /* processed means acknowledged, whatever the result code */
  if (!elbus_client_send_finish (ELBUS_CLIENT (source), result, &error) &&
      !g_error_matches (error, ELBUS_ERROR, ELBUS_ERROR_NOT_REGISTERED) && w->error == NULL)
    w->error = g_strdup (error->message);
  w->acked++;
}

static void
bench_message_cb (ElbusClient *client,
                  ElbusFrame  *frame,
                  gpointer     user_data)
{
  Worker *w = user_data;

  if (!g_bytes_equal (elbus_frame_get_payload (frame), w->payload))
    w->bad++;
  w->received++;
}

static void
bench_call_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  Worker *w = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) reply = elbus_rpc_peer_call_finish (ELBUS_RPC_PEER (source), result, &error);

  if (reply == NULL && w->error == NULL)
    w->error = g_strdup (error->message);
  else if (reply != NULL && !g_bytes_equal (reply, w->payload))
    w->bad++;
  w->acked++;
}

static void
bench_call0_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  Worker *w = user_data;
  g_autoptr(GError) error = NULL;

  /* acknowledged is all that counts: the target is a name nobody has */
  if (!elbus_rpc_peer_call0_finish (ELBUS_RPC_PEER (source), result, &error) &&
      !g_error_matches (error, ELBUS_RPC_ERROR,
                        ELBUS_RPC_ERROR_BUS - ELBUS_ERROR_NOT_REGISTERED) &&
      w->error == NULL)
    w->error = g_strdup (error->message);
  w->acked++;
}

static gboolean
bench_echo_cb (ElbusRpcPeer       *peer,
               ElbusRpcInvocation *invocation,
               gpointer            user_data)
{
  elbus_rpc_invocation_return_value (invocation, elbus_rpc_invocation_get_params (invocation));
  return TRUE;
}

/* One operation of the stage, as the original sends it: a message to a
 * name nobody has or to itself; a call to .broker's benchmark.test or to
 * itself (benchmark.selftest); a call0 of "test" to a name nobody has. */
static void
bench_send_one (Worker *w)
{
  ElbusQoS qos = stages[w->stage].qos;

  switch (w->stage)
    {
    case STAGE_RPC_CALL:
    case STAGE_RPC_CALL_HANDLE:
      elbus_rpc_peer_call_async (w->peer, w->target,
                                 w->stage == STAGE_RPC_CALL ? "benchmark.test"
                                                            : "benchmark.selftest",
                                 w->payload, qos, 0, NULL, bench_call_cb, w);
      break;
    case STAGE_RPC_CALL0:
      elbus_rpc_peer_call0_async (w->peer, w->target, "test", w->payload, qos, NULL,
                                  bench_call0_cb, w);
      break;
    default:
      elbus_client_send_async (w->client, w->target, w->payload, qos, NULL,
                               stage_is_answered (w->stage) ? bench_ack_cb : NULL, w);
      break;
    }
  w->sent++;
}

static gboolean
bench_worker_done (Worker *w)
{
  if (w->error != NULL || !elbus_client_is_connected (w->client))
    return TRUE;
  if (stage_is_answered (w->stage) && w->acked < w->iters)
    return FALSE;
  return !stage_receives (w->stage) || w->received >= w->iters;
}

static gpointer
bench_worker (gpointer data)
{
  Worker *w = data;
  /* what the window counts: answers, or deliveries to itself */
  guint64 *done = stage_is_answered (w->stage) ? &w->acked : &w->received;
  g_autoptr(GError) error = NULL;

  g_main_context_push_thread_default (w->context);
  if (stage_receives (w->stage))
    g_signal_connect (w->client, "message", G_CALLBACK (bench_message_cb), w);
  if (stage_is_rpc (w->stage))
    {
      w->peer = elbus_rpc_peer_new (w->client);
      g_signal_connect (w->peer, "handle-call", G_CALLBACK (bench_echo_cb), NULL);
    }

  g_mutex_lock (&barrier.lock);
  barrier.ready++;
  g_cond_broadcast (&barrier.cond);
  while (!barrier.go)
    g_cond_wait (&barrier.cond, &barrier.lock);
  g_mutex_unlock (&barrier.lock);

  while (w->sent < w->iters && w->error == NULL && elbus_client_is_connected (w->client))
    {
      if (w->window > 0 && w->sent - *done >= w->window)
        {
          g_main_context_iteration (w->context, TRUE);
          continue;
        }
      bench_send_one (w);
      /* nothing comes back to pace a one-way stage: wait for the socket
       * now and then, so that no frame finds the client's queue full */
      if (w->window == 0 && (w->sent & 1023) == 0 &&
          !elbus_client_flush_sync (w->client, NULL, &error))
        {
          w->error = g_strdup (error->message);
          break;
        }
      /* let input in now and then, so that our own frames are read */
      if ((w->sent & 255) == 0)
        while (g_main_context_iteration (w->context, FALSE))
          ;
    }

  /* a flush that failed in the loop left its error here, and in
   * w->error, which is the one reported */
  g_clear_error (&error);
  if (!elbus_client_flush_sync (w->client, NULL, &error) && w->error == NULL)
    w->error = g_strdup (error->message);
  while (!bench_worker_done (w))
    g_main_context_iteration (w->context, TRUE);

  if (w->error == NULL && !elbus_client_is_connected (w->client))
    w->error = g_strdup (_("disconnected from the broker"));

  g_clear_object (&w->peer);
  g_signal_handlers_disconnect_by_data (w->client, w);
  g_main_context_pop_thread_default (w->context);
  return NULL;
}

/* Waits, after the clock has stopped, until the broker has read all that
 * @client sent: a connection is read in order, so an acknowledgement of
 * one more frame is that. A one-way stage stops its clock once its frames
 * are written, maybe well before the broker has read them: without this,
 * the next stage would share the broker with that backlog. Best effort:
 * the next stage does not depend on it. */
static void
bench_settle (ElbusClient *client)
{
  g_autoptr(GBytes) empty = g_bytes_new_static ("", 0);

  if (elbus_client_is_connected (client))
    elbus_client_send_sync (client, BENCH_UNREGISTERED_TARGET, empty, ELBUS_QOS_PROCESSED,
                            NULL, NULL);
}

/* How many operations one worker of @stage keeps in flight: one for
 * those with an answer, as the original, or the --window; enough for the
 * one-way stage to itself to stream without overflowing the broker's
 * queue (the original streams it too); none to count for send.qos.no. */
static guint64
bench_stage_window (Stage   stage,
                    guint64 window)
{
  guint64 streaming = MAX (1, MIN (4096, (guint64) globals.queue_size / 2));

  if (!stage_is_answered (stage) && !stage_receives (stage))
    return 0;
  if (window > 0)
    return window;
  return stage_is_answered (stage) ? 1 : streaming;
}

static int
cmd_benchmark (int    argc,
               char **argv)
{
  int workers = 1, payload_size = 100, window_arg = 0;
  gint64 iters = 1000000;
  GOptionEntry entries[] = {
    { "workers", 'w', 0, G_OPTION_ARG_INT, &workers, N_("Clients, one thread each (default 1)"), N_("N") },
    { "payload-size", 0, 0, G_OPTION_ARG_INT, &payload_size, N_("Payload bytes (default 100)"), N_("BYTES") },
    { "iters", 'i', 0, G_OPTION_ARG_INT64, &iters, N_("Iterations per stage, over all workers (default 1000000)"), N_("N") },
    { "window", 0, 0, G_OPTION_ARG_INT, &window_arg, N_("Keep up to N operations in flight per worker, for throughput (default: one at a time, as the original)"), N_("N") },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (_("PATH benchmark — measure the bus"));
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) payload = NULL;
  guint64 window = 0;
  int status = 0;

  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  g_option_context_set_summary (context,
    _("Runs the original elbus client's stages and prints iterations per second.\n"
      "Each stage does what the original's stage of the same name does: the\n"
      "processed and rpc stages use QoS RealtimeProcessed and wait for each\n"
      "answer before the next operation, unless --window is given.\n"
      "  send.qos.no, send.qos.processed      to a name nobody has\n"
      "  send+recv.qos.no, send+recv.qos.processed   each worker to itself\n"
      "  rpc.call      calls .broker benchmark.test, checks the echo\n"
      "  rpc.call+handle   each worker calls itself, checks the echo\n"
      "  rpc.call0     call0 requests to a name nobody has (acknowledged)"));
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return elbus_tool_fail (EXIT_USAGE, "%s", error->message);
  if (argc > 1)
    return elbus_tool_fail (EXIT_USAGE, _("benchmark: unexpected argument “%s”"), argv[1]);
  if (workers < 1 || workers > 256 || payload_size < 0 || iters < workers)
    return elbus_tool_fail (EXIT_USAGE, _("benchmark: need 1 to 256 workers, a payload size "
                                          "of 0 or more and at least one iteration per worker"));
  if (window_arg < 0)
    return elbus_tool_fail (EXIT_USAGE, _("benchmark: --window needs 1 or more"));
  if (window_arg > 0)
    /* the client's own queue holds a call and its answer to itself */
    window = MAX (1, MIN ((guint64) window_arg, (guint64) globals.queue_size / 4));

  {
    guint8 *buf = g_malloc (payload_size);

    memset (buf, BENCH_PAYLOAD_BYTE, payload_size);
    payload = g_bytes_new_take (buf, payload_size);
  }

  if (window == 0)
    g_print (_("mode: one operation in flight per worker, as the original elbus benchmark "
               "(--window N for throughput)\n"));
  else
    {
      g_autofree char *n = g_strdup_printf ("%" G_GUINT64_FORMAT, window);

      g_print (_("mode: up to %s operations in flight per worker (--window)\n"), n);
    }
  g_print ("%-26s %14s %10s\n", "stage", "iters/s", "time, s");
  for (Stage stage = 0; stage < N_STAGES; stage++)
    {
      g_autofree Worker *ws = g_new0 (Worker, workers);
      gint64 start, elapsed;
      guint64 total = 0;
      gboolean failed = FALSE;

      memset (&barrier, 0, sizeof barrier);
      barrier.n_workers = workers;

      for (int i = 0; i < workers; i++)
        {
          /* NAME.STAGE.worker.N: the workers of the stage before may not be
           * gone from the broker yet, a name of theirs could still be taken */
          g_autofree char *name = g_strdup_printf ("%s.%d.worker.%d", globals.name, (int) stage, i);

          ws[i].iters = iters / workers + (i < iters % workers ? 1 : 0);
          ws[i].stage = stage;
          ws[i].window = bench_stage_window (stage, window);
          ws[i].payload = g_bytes_ref (payload);
          ws[i].context = g_main_context_new ();
          g_main_context_push_thread_default (ws[i].context);
          ws[i].client = connect_client (name, &error);
          g_main_context_pop_thread_default (ws[i].context);
          if (ws[i].client == NULL)
            return elbus_tool_fail (EXIT_ERROR, "%s", error->message);
          /* the original's targets: .broker, itself, or its name + -null */
          if (stage == STAGE_RPC_CALL)
            ws[i].target = g_strdup (".broker");
          else if (stage_receives (stage) || stage == STAGE_RPC_CALL_HANDLE)
            ws[i].target = g_strdup (name);
          else
            ws[i].target = g_strdup_printf ("%s-null", name);
        }

      for (int i = 0; i < workers; i++)
        ws[i].thread = g_thread_new ("bench-worker", bench_worker, &ws[i]);

      g_mutex_lock (&barrier.lock);
      while (barrier.ready < barrier.n_workers)
        g_cond_wait (&barrier.cond, &barrier.lock);
      start = g_get_monotonic_time ();
      barrier.go = TRUE;
      g_cond_broadcast (&barrier.cond);
      g_mutex_unlock (&barrier.lock);

      for (int i = 0; i < workers; i++)
        g_thread_join (ws[i].thread);
      elapsed = MAX (1, g_get_monotonic_time () - start);

      for (int i = 0; i < workers; i++)
        {
          /* a client the broker dropped (a frame over its limit, say)
           * may have seen no error, its frames wanting no ack */
          g_main_context_push_thread_default (ws[i].context);
          bench_settle (ws[i].client);
          g_main_context_pop_thread_default (ws[i].context);
          if (ws[i].error == NULL && !elbus_client_is_connected (ws[i].client))
            ws[i].error = g_strdup (_("the broker closed the connection"));

          if (ws[i].error != NULL)
            {
              elbus_tool_fail (EXIT_ERROR, _("benchmark %s, worker %d: %s"), stages[stage].name,
                               i, ws[i].error);
              failed = TRUE;
            }
          else if (ws[i].bad > 0)
            {
              g_autofree char *bad = g_strdup_printf ("%" G_GUINT64_FORMAT, ws[i].bad);

              /* the count as a string: a format macro would cut the
               * message in the translation catalogue */
              elbus_tool_fail (EXIT_ERROR,
                               _("benchmark %s, worker %d: %s frames had a wrong payload"),
                               stages[stage].name, i, bad);
              failed = TRUE;
            }
          total += ws[i].sent;
          g_main_context_push_thread_default (ws[i].context);
          elbus_client_close (ws[i].client);
          g_clear_object (&ws[i].client);
          g_main_context_pop_thread_default (ws[i].context);
          g_free (ws[i].error);
          g_free (ws[i].target);
          g_bytes_unref (ws[i].payload);
          g_main_context_unref (ws[i].context);
        }

      /* a rate only for work that was done */
      if (failed)
        {
          g_print ("%-26s %14s %10.3f\n", stages[stage].name, "failed",
                   elapsed / (double) G_USEC_PER_SEC);
          status = EXIT_ERROR;
        }
      else
        g_print ("%-26s %14.0f %10.3f\n", stages[stage].name,
                 total * (double) G_USEC_PER_SEC / elapsed, elapsed / (double) G_USEC_PER_SEC);
    }

  /* with a window, rpc.call is a rate of calls in flight together; the
   * round trip of one call alone is another figure */
  if (status == 0 && window > 0)
    {
      g_autoptr(ElbusClient) client = connect_client (globals.name, &error);
      g_autoptr(ElbusRpcPeer) peer = NULL;
      guint n = (guint) MIN (iters, 20000);
      gint64 start;

      if (client == NULL)
        return elbus_tool_fail (EXIT_ERROR, "%s", error->message);
      peer = elbus_rpc_peer_new (client);
      start = g_get_monotonic_time ();
      for (guint i = 0; i < n; i++)
        {
          g_autoptr(GBytes) reply = elbus_rpc_peer_call_sync (peer, ".broker", "benchmark.test",
                                                              payload,
                                                              stages[STAGE_RPC_CALL].qos, 0,
                                                              NULL, &error);

          if (reply == NULL)
            return rpc_fail (error);
        }
      g_print (_("rpc.call round trip, one at a time: %.1f µs mean over %u calls\n"),
               (g_get_monotonic_time () - start) / (double) n, n);
    }

  return status;
}

/* main */

/* Whether the global option @arg takes the next argument as its value:
 * "--name NAME", or "-n NAME", also at the end of a cluster ("-vn NAME");
 * "--name=NAME" carries its own. */
static gboolean
global_takes_value (const char *arg)
{
  static const char * const long_with_value[] = {
    "--name", "--timeout", "--buf-size", "--queue-size", NULL
  };

  if (arg[1] == '-')
    return g_strv_contains (long_with_value, arg);
  for (const char *p = arg + 1; *p != '\0'; p++)
    if (*p == 'n')
      return p[1] == '\0';
  return FALSE;
}

int
main (int    argc,
      char **argv)
{
  gboolean version = FALSE;
  GOptionEntry entries[] = {
    { "name", 'n', 0, G_OPTION_ARG_STRING, &globals.name,
      N_("Client name (default cli.HOSTNAME.PID)"), N_("NAME") },
    { "timeout", 0, 0, G_OPTION_ARG_DOUBLE, &globals.timeout,
      N_("Timeout in seconds (default 5)"), N_("SECONDS") },
    { "buf-size", 0, 0, G_OPTION_ARG_INT, &globals.buf_size,
      N_("Bytes to batch before a write (default 8192)"), N_("BYTES") },
    { "queue-size", 0, 0, G_OPTION_ARG_INT, &globals.queue_size,
      N_("Frames that may wait to be written (default 8192)"), N_("FRAMES") },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &globals.verbose, N_("Debug logging"), NULL },
    { "silent", 's', 0, G_OPTION_ARG_NONE, &globals.silent, N_("No informational messages"), NULL },
    { "version", 0, 0, G_OPTION_ARG_NONE, &version, N_("Print the version and exit"), NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) global_argv = NULL;
  int n_positional = 0, split = argc, global_argc;
  gboolean options_end = FALSE;
  const char *command;
  int status;

  elbus_tool_init_i18n ();
  /* elbus_tool_fail() prefixes its messages with it */
  g_set_prgname ("elbus");

  /* PATH [global options] COMMAND [command options]: split at COMMAND */
  for (int i = 1; i < argc; i++)
    {
      if (!options_end && argv[i][0] == '-' && argv[i][1] != '\0')
        {
          if (g_str_equal (argv[i], "--"))
            options_end = TRUE;
          else if (global_takes_value (argv[i]))
            i++;
          continue;
        }
      if (++n_positional == 2)
        {
          split = i;
          break;
        }
    }

  context = g_option_context_new (_("PATH COMMAND [ARGS…] — talk to an elbus broker"));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  g_option_context_set_summary (context,
    _("PATH is the broker: a UNIX socket path (starts with /, ./ or ../, or ends in .sock, "
      ".socket or .ipc), HOST:PORT, or ws://HOST:PORT/PATH or wss://HOST:PORT/PATH for "
      "WebSocket (wss:// trusts the CA certificates in the file ELBUS_TLS_CA_FILE names, "
      "or else the system's)."));
  g_option_context_set_description (context,
    _("Commands:\n"
      "  listen [-t TOPIC]…          print incoming frames\n"
      "  send TARGET [PAYLOAD]       send a message (a broadcast if TARGET has * or ?)\n"
      "  publish TOPIC [PAYLOAD]     publish on a topic\n"
      "  broker client.list|info|stats|test   ask the broker\n"
      "  rpc listen [-t TOPIC]…      print incoming RPC calls and notifications\n"
      "  rpc notify TARGET [PAYLOAD] send an RPC notification\n"
      "  rpc call0|call TARGET METHOD [K=V…|-]   call a method\n"
      "  benchmark [-w N] [-i N] [--payload-size N] [--window N]   measure the bus\n"
      "\n"
      "PAYLOAD is read from standard input when omitted. “elbus PATH COMMAND --help” "
      "shows a command's options.\n"
      "\n"
      "Examples:\n"
      "  elbus /tmp/elbus.sock listen -t 'sensors/#'\n"
      "  elbus /tmp/elbus.sock publish sensors/room1/temp 21.5\n"
      "  echo '{\"on\": true}' | elbus 127.0.0.1:7777 send lamp.kitchen"));

  global_argv = g_new0 (char *, split + 1);
  for (int i = 0; i < split; i++)
    global_argv[i] = g_strdup (argv[i]);
  /* the _strv form frees the options it takes out of the array */
  if (!g_option_context_parse_strv (context, &global_argv, &error))
    return elbus_tool_fail (EXIT_USAGE, "%s", error->message);
  global_argc = (int) g_strv_length (global_argv);

  if (version)
    {
      g_print ("elbus %s\n", PACKAGE_VERSION);
      return 0;
    }
  if (global_argc < 2 || split >= argc)
    {
      g_autofree char *help = g_option_context_get_help (context, TRUE, NULL);

      if (global_argc >= 2)
        g_printerr (_("elbus: missing command after %s\n\n"), global_argv[1]);
      g_printerr ("%s", help);
      return EXIT_USAGE;
    }
  globals.path = elbus_tool_check_address (global_argv[1], FALSE, &error);
  if (globals.path == NULL)
    return elbus_tool_fail (EXIT_USAGE, "%s", error->message);
  command = argv[split];

  if (globals.timeout <= 0 || globals.buf_size < 1 || globals.queue_size < 1)
    return elbus_tool_fail (EXIT_USAGE,
                            _("--timeout, --buf-size and --queue-size must be positive"));
  if (!elbus_tool_check_timeout (globals.timeout, &error))
    return elbus_tool_fail (EXIT_USAGE, "%s", error->message);

  elbus_tool_log_init ("elbus", ELBUS_TOOL_LOG_AUTO, globals.verbose);

  if (globals.name == NULL)
    globals.name = g_strdup_printf ("cli.%s.%d", g_get_host_name (), (int) getpid ());

  if (g_str_equal (command, "listen"))
    status = cmd_listen (argc - split, argv + split);
  else if (g_str_equal (command, "send"))
    status = cmd_send_or_publish (argc - split, argv + split, FALSE);
  else if (g_str_equal (command, "publish"))
    status = cmd_send_or_publish (argc - split, argv + split, TRUE);
  else if (g_str_equal (command, "benchmark"))
    status = cmd_benchmark (argc - split, argv + split);
  else if (g_str_equal (command, "broker"))
    status = cmd_broker (argc - split, argv + split);
  else if (g_str_equal (command, "rpc"))
    status = cmd_rpc (argc - split, argv + split);
  else
    status = elbus_tool_fail (EXIT_USAGE, _("unknown command “%s”; see elbus --help"), command);

  g_free (globals.name);
  g_free (globals.path);
  return status;
}
