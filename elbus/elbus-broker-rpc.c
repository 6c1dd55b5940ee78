/* SPDX-License-Identifier: MIT */
/*
 * The broker's own client `.broker` (docs/protocol.md section 6): the core RPC
 * methods and the announcements of clients coming and going.
 *
 * `.broker` is an in-process client of the broker, served by an
 * ElbusRpcPeer like any other. Replies are MessagePack maps built as
 * GVariant a{sv} in the key order of the original, so the bytes match.
 */
#include "config.h"

#include <string.h>

#include "elbus-broker-private.h"
#include "elbus-client-private.h"
#include "elbus-error.h"
#include "elbus-i18n-private.h"
#include "elbus-msgpack.h"
#include "elbus-msgpack-check-private.h"
#include "elbus-rpc-private.h"
#include "elbus-version.h"

#define CORE_AUTHOR "elbus-glib developers"

struct _ElbusCoreRpc {
  ElbusBroker  *broker;      /* (unowned) */
  ElbusClient  *client;      /* (owned) */
  ElbusRpcPeer *peer;        /* (owned) */
  gint64        started;     /* monotonic µs */
};

static void
return_variant (ElbusRpcInvocation *invocation,
                GVariant           *value)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) bytes = NULL;

  g_variant_ref_sink (value);
  bytes = elbus_msgpack_encode_variant (value, &error);
  g_variant_unref (value);
  if (bytes == NULL)
    elbus_rpc_invocation_return_error (invocation, ELBUS_RPC_ERROR_INTERNAL, error->message);
  else
    elbus_rpc_invocation_return_value (invocation, bytes);
}

typedef enum {
  PARAMS_NONE,      /* empty, or an empty map */
  PARAMS_MAP,       /* a map of entries whose first key is a string */
  PARAMS_OTHER,     /* anything else */
} ParamsKind;

/* What @params are, from their first bytes alone: `.broker` answers
 * without decoding them (a 16 MiB array costs what reading it costs).
 * For PARAMS_OTHER, *@what says what they are. */
static ParamsKind
classify_params (GBytes      *params,
                 const char **what)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (params, &len);
  guint8 marker;
  gsize header;
  guint32 n;

  if (len == 0)
    return PARAMS_NONE;

  marker = data[0];
  if (marker >= 0x80 && marker <= 0x8f)
    header = 1, n = marker & 0x0f;
  else if (marker == 0xde && len >= 3)
    header = 3, n = (guint32) data[1] << 8 | data[2];
  else if (marker == 0xdf && len >= 5)
    header = 5, n = (guint32) data[1] << 24 | (guint32) data[2] << 16 |
                    (guint32) data[3] << 8 | data[4];
  else
    {
      if (marker == 0xde || marker == 0xdf)
        *what = "a truncated map";
      else if (marker == 0xc0)
        *what = "nil";
      else if (marker == 0xc2 || marker == 0xc3)
        *what = "a boolean";
      else if ((marker >= 0x90 && marker <= 0x9f) || marker == 0xdc || marker == 0xdd)
        *what = "an array";
      else if ((marker >= 0xa0 && marker <= 0xbf) || (marker >= 0xd9 && marker <= 0xdb))
        *what = "a string";
      else if (marker >= 0xc4 && marker <= 0xc6)
        *what = "binary data";
      else if (marker == 0xca || marker == 0xcb)
        *what = "a float";
      else if (marker <= 0x7f || marker >= 0xe0 || (marker >= 0xcc && marker <= 0xd3))
        *what = "an integer";
      else if (marker == 0xc1)
        *what = "the byte 0xc1, which MessagePack never uses";
      else
        *what = "an extension value";
      return PARAMS_OTHER;
    }

  if (n == 0)
    {
      if (len == header)
        return PARAMS_NONE;
      *what = "an empty map followed by more bytes";
      return PARAMS_OTHER;
    }
  if (len > header)
    {
      marker = data[header];
      if ((marker >= 0xa0 && marker <= 0xbf) || (marker >= 0xd9 && marker <= 0xdb))
        return PARAMS_MAP;
      *what = "a map whose keys are not strings";
    }
  else
    *what = "a truncated map";
  return PARAMS_OTHER;
}

/* A method that takes no parameters was given some. */
static void
return_takes_no_params (ElbusRpcInvocation *invocation)
{
  elbus_rpc_invocation_return_error (invocation, ELBUS_RPC_ERROR_INVALID_PARAMS,
                                     "this method takes no parameters");
}

/* monitor.start's filters: a few lists of masks, within small limits
 * that are checked before they are decoded. */
static const ElbusMsgpackLimits monitor_limits = { 4, 4096, 1024 * 1024 };

static GVariant *
nil (void)
{
  return g_variant_new_maybe (G_VARIANT_TYPE_VARIANT, NULL);
}

static int
compare_peer_names (gconstpointer a,
                    gconstpointer b)
{
  const ElbusPeer *pa = *(const ElbusPeer * const *) a;
  const ElbusPeer *pb = *(const ElbusPeer * const *) b;

  return strcmp (pa->name, pb->name);
}

static GVariant *
client_list (ElbusBroker *broker)
{
  g_autoptr(GPtrArray) peers = g_ptr_array_new ();
  GVariantBuilder clients;
  GVariantBuilder reply;
  GHashTableIter iter;
  ElbusPeer *peer;

  g_hash_table_iter_init (&iter, broker->clients);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &peer))
    if (!peer->is_secondary)
      g_ptr_array_add (peers, peer);
  g_ptr_array_sort (peers, compare_peer_names);

  g_variant_builder_init (&clients, G_VARIANT_TYPE ("av"));
  for (guint i = 0; i < peers->len; i++)
    {
      GVariantBuilder entry;

      peer = g_ptr_array_index (peers, i);
      g_variant_builder_init (&entry, G_VARIANT_TYPE_VARDICT);
      g_variant_builder_add (&entry, "{sv}", "name", g_variant_new_string (peer->name));
      g_variant_builder_add (&entry, "{sv}", "kind", g_variant_new_string (_elbus_client_kind_name (peer->kind)));
      g_variant_builder_add (&entry, "{sv}", "source",
                             peer->source_addr != NULL ? g_variant_new_string (peer->source_addr)
                                                       : nil ());
      g_variant_builder_add (&entry, "{sv}", "port",
                             peer->port != NULL ? g_variant_new_string (peer->port) : nil ());
      g_variant_builder_add (&entry, "{sv}", "r_frames", g_variant_new_uint64 (peer->stats.r_frames));
      g_variant_builder_add (&entry, "{sv}", "r_bytes", g_variant_new_uint64 (peer->stats.r_bytes));
      g_variant_builder_add (&entry, "{sv}", "w_frames", g_variant_new_uint64 (peer->stats.w_frames));
      g_variant_builder_add (&entry, "{sv}", "w_bytes", g_variant_new_uint64 (peer->stats.w_bytes));
      g_variant_builder_add (&entry, "{sv}", "queue", g_variant_new_uint64 (peer->out.len));
      g_variant_builder_add (&entry, "{sv}", "instances",
                             g_variant_new_uint64 (1 + (peer->secondaries != NULL
                                                        ? peer->secondaries->len : 0)));
      /* beyond the original: the peer's credentials, for UNIX clients */
      g_variant_builder_add (&entry, "{sv}", "uid",
                             peer->uid >= 0 ? g_variant_new_uint64 (peer->uid) : nil ());
      g_variant_builder_add (&entry, "{sv}", "pid",
                             peer->pid >= 0 ? g_variant_new_uint64 (peer->pid) : nil ());
      g_variant_builder_add (&clients, "v", g_variant_builder_end (&entry));
    }

  g_variant_builder_init (&reply, G_VARIANT_TYPE_VARDICT);
  g_variant_builder_add (&reply, "{sv}", "clients", g_variant_builder_end (&clients));
  return g_variant_builder_end (&reply);
}

/* Refuses filters beyond monitor_limits before they are decoded. */
static gboolean
check_monitor_filters (ElbusRpcInvocation *invocation)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (elbus_rpc_invocation_get_params (invocation), &len);
  g_autoptr(GError) error = NULL;
  gboolean over_limit;

  if (_elbus_msgpack_check_full (data, len, &monitor_limits, NULL, &over_limit, &error))
    return TRUE;
  elbus_rpc_invocation_return_error (invocation,
                                     over_limit ? ELBUS_RPC_ERROR_INVALID_PARAMS
                                                : ELBUS_RPC_ERROR_PARSE,
                                     error->message);
  return FALSE;
}

/* monitor.start and monitor.stop (docs/protocol.md 9): the caller's own
 * connection becomes, or stops being, a monitor. */
static void
monitor_call (ElbusBroker        *broker,
              ElbusRpcInvocation *invocation,
              gboolean            start,
              ParamsKind          kind)
{
  ElbusPeer *peer = g_hash_table_lookup (broker->clients,
                                         elbus_rpc_invocation_get_sender (invocation));
  g_autoptr(GError) error = NULL;

  if (peer == NULL)
    {
      /* gone before its call was served */
      elbus_rpc_invocation_return_error (invocation, ELBUS_RPC_ERROR_INTERNAL,
                                         "the caller is not connected");
      return;
    }

  /* under a policy, only entries allowed to monitor; in-process clients
   * are the application's own */
  if (start && broker->policy != NULL && peer->kind != ELBUS_CLIENT_KIND_INTERNAL &&
      (peer->policy == NULL || !elbus_client_policy_get_monitor (peer->policy)))
    {
      g_message (_("client %s: monitor.start refused by the policy"), peer->name);
      elbus_rpc_invocation_return_error (invocation, -32000 - ELBUS_ERROR_ACCESS,
                                         "the policy does not allow this client to monitor");
      return;
    }

  if (!start)
    {
      if (kind != PARAMS_NONE)
        {
          return_takes_no_params (invocation);
          return;
        }
      _elbus_broker_monitor_stop (broker, peer);
    }
  else if (kind == PARAMS_MAP && !check_monitor_filters (invocation))
    return;
  else if (!_elbus_broker_monitor_start (broker, peer,
                                         elbus_rpc_invocation_get_params (invocation), &error))
    {
      elbus_rpc_invocation_return_error (invocation, error->code, error->message);
      return;
    }

  return_variant (invocation, g_variant_new_parsed ("{'ok': <true>}"));
}

static gboolean
handle_call_cb (ElbusRpcPeer       *peer,
                ElbusRpcInvocation *invocation,
                gpointer            user_data)
{
  ElbusCoreRpc *core = user_data;
  ElbusBroker *broker = core->broker;
  const char *method = elbus_rpc_invocation_get_method (invocation);

  ParamsKind kind;
  const char *what = NULL;

  /* the only method that takes anything: its params come back unchanged */
  if (g_str_equal (method, "benchmark.test"))
    {
      elbus_rpc_invocation_return_value (invocation, elbus_rpc_invocation_get_params (invocation));
      return TRUE;
    }

  /* As the original: params that are not a map with string keys are
   * refused -32700 whatever the method, before the method is looked at;
   * a map given to a method that takes none gets -32602; an unknown
   * method -32601. Told apart by the first bytes, nothing is decoded. */
  kind = classify_params (elbus_rpc_invocation_get_params (invocation), &what);
  if (kind == PARAMS_OTHER)
    {
      g_autofree char *message =
        g_strdup_printf ("the parameters must be a MessagePack map with string keys, not %s",
                         what);

      elbus_rpc_invocation_return_error (invocation, ELBUS_RPC_ERROR_PARSE, message);
      return TRUE;
    }

  if (g_str_equal (method, "monitor.start") || g_str_equal (method, "monitor.stop"))
    {
      monitor_call (broker, invocation, g_str_equal (method, "monitor.start"), kind);
      return TRUE;
    }

  if (!g_str_equal (method, "test") && !g_str_equal (method, "info") &&
      !g_str_equal (method, "stats") && !g_str_equal (method, "client.list"))
    return FALSE;   /* -32601 */

  if (kind == PARAMS_MAP)
    {
      return_takes_no_params (invocation);
      return TRUE;
    }

  if (g_str_equal (method, "test"))
    return_variant (invocation, g_variant_new_parsed ("{'ok': <true>}"));
  else if (g_str_equal (method, "info"))
    return_variant (invocation, g_variant_new_parsed ("{'author': <%s>, 'version': <%s>}",
                                                      CORE_AUTHOR, ELBUS_VERSION_S));
  else if (g_str_equal (method, "stats"))
    return_variant (invocation,
                    g_variant_new_parsed ("{'uptime': <%t>, 'r_frames': <%t>, 'r_bytes': <%t>, "
                                          "'w_frames': <%t>, 'w_bytes': <%t>}",
                                          (guint64) ((g_get_monotonic_time () - core->started) /
                                                     G_USEC_PER_SEC),
                                          broker->stats.r_frames, broker->stats.r_bytes,
                                          broker->stats.w_frames, broker->stats.w_bytes));
  else
    return_variant (invocation, client_list (broker));

  return TRUE;
}

/* announcements */

static void
announce (ElbusCoreRpc *core,
          const char   *topic,
          GVariant     *value)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) payload = NULL;

  g_variant_ref_sink (value);
  payload = elbus_msgpack_encode_variant (value, &error);
  g_variant_unref (value);
  g_return_if_fail (payload != NULL);

  elbus_client_publish_async (core->client, topic, payload, ELBUS_QOS_NO, NULL, NULL, NULL);
}

static guint64
now_ns (void)
{
  return (guint64) g_get_real_time () * 1000;
}

/* the hooks the broker calls (ElbusCoreRpcHooks) */

static void
core_rpc_announce_client (ElbusCoreRpc *core,
                          const char   *name,
                          gboolean      registered)
{
  /* .broker itself is not announced */
  if (core->client == NULL || g_str_equal (name, ".broker"))
    return;

  announce (core, ".broker/info",
            g_variant_new_parsed ("{'s': <%s>, 'd': <%s>, 't': <%t>}",
                                  registered ? "reg" : "unreg", name, now_ns ()));
}

static void
core_rpc_announce_shutdown (ElbusCoreRpc *core)
{
  if (core->client == NULL)
    return;

  announce (core, ".broker/warn", g_variant_new_parsed ("{'s': <'shutdown'>, 't': <%t>}",
                                                        now_ns ()));
  /* it goes out before the connections do */
  elbus_client_flush_sync (core->client, NULL, NULL);
}

static void
core_rpc_free (ElbusCoreRpc *core)
{
  if (core->peer != NULL)
    g_signal_handlers_disconnect_by_data (core->peer, core);
  g_clear_object (&core->peer);
  g_clear_object (&core->client);
  g_free (core);
}

static const ElbusCoreRpcHooks core_rpc_hooks = {
  .announce_client = core_rpc_announce_client,
  .announce_shutdown = core_rpc_announce_shutdown,
  .free = core_rpc_free,
};

static ElbusCoreRpc *
core_rpc_new (ElbusBroker  *broker,
              GError      **error)
{
  ElbusCoreRpc *core = g_new0 (ElbusCoreRpc, 1);

  core->broker = broker;
  core->started = g_get_monotonic_time ();
  core->client = _elbus_broker_local_client_new (broker, ".broker", error);
  if (core->client == NULL)
    {
      g_free (core);
      return NULL;
    }
  core->peer = elbus_rpc_peer_new (core->client);
  g_signal_connect (core->peer, "handle-call", G_CALLBACK (handle_call_cb), core);

  return core;
}

/**
 * elbus_broker_enable_core_rpc:
 * @self: a broker
 * @error: return location for an error
 *
 * Starts the broker's own client `.broker`, which answers the core RPC
 * methods `test`, `info`, `stats`, `client.list` and `benchmark.test`
 * (docs/protocol.md section 6), announces primary clients arriving and leaving
 * on `.broker/info`, and the broker's shutdown on `.broker/warn`. Calling
 * it again does nothing.
 *
 * Returns: %TRUE when `.broker` runs
 *
 * Since: 1.0
 */
gboolean
elbus_broker_enable_core_rpc (ElbusBroker  *self,
                              GError      **error)
{
  g_return_val_if_fail (ELBUS_IS_BROKER (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (self->core != NULL)
    return TRUE;
  if (self->closed)
    {
      g_set_error_literal (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED, _("the broker is closed"));
      return FALSE;
    }

  self->core_hooks = &core_rpc_hooks;
  self->core = core_rpc_new (self, error);
  return self->core != NULL;
}

ElbusClient *
_elbus_core_rpc_get_client (ElbusCoreRpc *core)
{
  return core != NULL && core->client != NULL && elbus_client_is_connected (core->client)
         ? core->client : NULL;
}

ElbusRpcPeer *
_elbus_core_rpc_get_peer (ElbusCoreRpc *core)
{
  return core != NULL ? core->peer : NULL;
}
