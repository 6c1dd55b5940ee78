/* SPDX-License-Identifier: MIT
 *
 * Pub/sub and RPC with Elbus from C.
 *
 * Two clients on one broker: "server" subscribes to demo/# and answers the
 * RPC method "greet"; "caller" publishes on demo/hello and calls greet.
 *
 *   cc -Wall -Wextra pubsub-rpc.c $(pkg-config --cflags --libs elbus-1) -o pubsub-rpc
 *   elbusd -B /tmp/elbus.sock &
 *   ./pubsub-rpc [ADDRESS]    # default /tmp/elbus.sock
 */

#include <elbus/elbus.h>
#include <unistd.h>

static GMainLoop *loop;
static int status = 1;
static gboolean received;

static void
on_publication (ElbusClient *client, ElbusFrame *frame, G_GNUC_UNUSED gpointer user_data)
{
  gsize len;
  const char *data = g_bytes_get_data (elbus_frame_get_payload (frame), &len);

  g_print ("%s got '%.*s' on %s\n", elbus_client_get_name (client), (int) len, data,
           elbus_frame_get_topic (frame));
  received = TRUE;
  g_main_loop_quit (loop);
}

static gboolean
on_greet (G_GNUC_UNUSED ElbusRpcPeer *peer, ElbusRpcInvocation *invocation,
          G_GNUC_UNUSED gpointer user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) params = elbus_rpc_invocation_get_params_variant (invocation, &error);
  const char *name = "nobody";

  if (params == NULL)
    {
      elbus_rpc_invocation_return_gerror (invocation, error);
      return TRUE;
    }
  g_variant_lookup (params, "name", "&s", &name);
  elbus_rpc_invocation_return_variant (invocation, g_variant_new_printf ("Hello, %s!", name));
  return TRUE;
}

static void
on_reply (GObject *source, GAsyncResult *result, G_GNUC_UNUSED gpointer user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = elbus_rpc_peer_call_variant_finish (ELBUS_RPC_PEER (source),
                                                                  result, &error);

  if (reply != NULL)
    {
      g_print ("greet returned '%s'\n", g_variant_get_string (reply, NULL));
      status = 0;
    }
  else
    g_printerr ("greet failed: %s\n", error->message);
  g_main_loop_quit (loop);
}

int
main (int argc, char **argv)
{
  const char *address = argc > 1 ? argv[1] : "/tmp/elbus.sock";
  const char *masks[] = { "demo/#", NULL };
  g_autofree char *server_name = g_strdup_printf ("example.c.%d.server", (int) getpid ());
  g_autofree char *caller_name = g_strdup_printf ("example.c.%d.caller", (int) getpid ());
  g_autoptr(GError) error = NULL;
  g_autoptr(ElbusClient) server = NULL;
  g_autoptr(ElbusClient) caller = NULL;
  g_autoptr(GBytes) payload = g_bytes_new_static ("hi there", 8);
  g_autoptr(ElbusRpcPeer) server_peer = NULL;
  g_autoptr(ElbusRpcPeer) caller_peer = NULL;
  GVariantDict params;

  loop = g_main_loop_new (NULL, FALSE);

  server = elbus_client_new_sync (address, server_name, NULL, &error);
  if (server != NULL)
    caller = elbus_client_new_sync (address, caller_name, NULL, &error);
  if (caller == NULL)
    {
      g_printerr ("connecting to %s: %s\n", address, error->message);
      return 1;
    }

  /* Pub/sub: frames arrive as signals on the main loop. */
  g_signal_connect (server, "publication", G_CALLBACK (on_publication), NULL);
  if (!elbus_client_subscribe_sync (server, masks, ELBUS_QOS_PROCESSED, NULL, &error) ||
      !elbus_client_publish_sync (caller, "demo/hello", payload, ELBUS_QOS_PROCESSED,
                                  NULL, &error))
    {
      g_printerr ("pub/sub: %s\n", error->message);
      return 1;
    }
  if (!received)
    g_main_loop_run (loop);

  /* RPC: a handler for "greet" on the server, an async call from the caller. */
  server_peer = elbus_rpc_peer_new (server);
  g_signal_connect (server_peer, "handle-call::greet", G_CALLBACK (on_greet), NULL);
  caller_peer = elbus_rpc_peer_new (caller);
  g_variant_dict_init (&params, NULL);
  g_variant_dict_insert (&params, "name", "s", "world");
  elbus_rpc_peer_call_variant_async (caller_peer, server_name, "greet",
                                     g_variant_dict_end (&params), ELBUS_QOS_PROCESSED,
                                     0, NULL, on_reply, NULL);
  g_main_loop_run (loop);

  elbus_client_close (caller);
  elbus_client_close (server);
  g_main_loop_unref (loop);
  return status;
}
