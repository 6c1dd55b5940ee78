/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <string.h>

#include "elbus-client-policy-private.h"
#include "elbus-i18n-private.h"
#include "elbus-mask-private.h"

/**
 * ElbusClientPolicy:
 *
 * One entry of a broker's security policy (docs/protocol.md section 7): what a
 * client may do. A broker keys its entries by primary client name; a
 * secondary client (`NAME%%SUFFIX`) shares its primary's entry.
 *
 * A fresh policy allows everything except monitoring. Each kind of rule
 * restricts only once it has been given:
 *
 * - Networks ([method@Elbus.ClientPolicy.add_network]): where a TCP client
 *   may connect from, as CIDR networks (`10.0.0.0/8`, `fe80::/10`) or
 *   single hosts (`192.168.1.7`, `::1`). With no network added, any address
 *   is allowed. An IPv4 client that reaches a dual-stack listener shows up
 *   as an IPv4-mapped IPv6 address (`::ffff:10.1.2.3`): it is matched as
 *   the IPv4 address it stands for, so it is the same client whichever
 *   listener it used. So `0.0.0.0/0` matches every IPv4 client and `::/0`
 *   every IPv6 one, but neither matches the other family; a network written
 *   as a mapped one (`::ffff:10.0.0.0/104`) is stored as the IPv4 network
 *   it stands for (`10.0.0.0/8`).
 * - Credentials ([method@Elbus.ClientPolicy.add_uid],
 *   [method@Elbus.ClientPolicy.add_gid]): which users and groups may
 *   connect over a UNIX socket. With no uid and no gid added, anyone may;
 *   otherwise a client must run as one of the uids or under one of the
 *   gids. A client whose credentials are unknown (a TCP client) matches no
 *   such rule, so an entry with credential rules refuses TCP clients.
 * - Operations ([enum@Elbus.PolicyOp]): each of messages, broadcasts,
 *   publications and subscriptions is allowed for any target until it is
 *   restricted. [method@Elbus.ClientPolicy.allow] restricts it to the
 *   targets one of its allowed masks matches (call it once per mask);
 *   [method@Elbus.ClientPolicy.deny] refuses it outright and drops its
 *   masks, after which [method@Elbus.ClientPolicy.allow] allows again only
 *   the masks given from then on.
 * - Monitoring ([method@Elbus.ClientPolicy.set_monitor]): whether the
 *   client may call the broker's `monitor.start` (docs/protocol.md section 9).
 *   Refused by default.
 *
 * Masks follow the routing rules of docs/protocol.md section 4:
 *
 * - %ELBUS_POLICY_OP_MESSAGE and %ELBUS_POLICY_OP_BROADCAST masks are
 *   `.`-masks: `?` matches exactly one part (an empty one too), `*` matches
 *   one or more remaining parts and ends the mask (anything after it is
 *   ignored, and `*` alone matches every name), a mask without wildcards
 *   matches only the name equal to it. A message is checked by its target
 *   name (the full name, `%%` suffix included), taken literally. A
 *   broadcast is checked by its own mask, which an allowed mask must cover
 *   whole: allowing `a.*` allows broadcasting to `a.b`, `a.?` and `a.*`;
 *   allowing `a.?` allows `a.b` and `a.?` but not `a.*`, which reaches
 *   further; a literal part covers only itself.
 * - %ELBUS_POLICY_OP_PUBLISH and %ELBUS_POLICY_OP_SUBSCRIBE masks are
 *   `/`-masks: `+` matches exactly one level (an empty one too), `#` one or
 *   more remaining levels and ends the mask (`#` alone matches every
 *   topic). A publication is checked by its topic, taken literally; a
 *   subscription by the mask it asks for, which an allowed mask must cover
 *   whole: allowing `a/#` allows subscribing to `a/b`, `a/+` and `a/#`;
 *   allowing `a/+` allows `a/b` and `a/+` but not `a/#`.
 *
 * A broker keeps copies of the entries it is given
 * ([method@Elbus.ClientPolicy.copy]): changing a policy after handing it
 * over does not change what the broker enforces.
 *
 * ```c
 * g_autoptr(ElbusClientPolicy) policy = elbus_client_policy_new ();
 * g_autoptr(GError) error = NULL;
 *
 * // publish under sensors/ only, from the local network, message nobody
 * elbus_client_policy_allow (policy, ELBUS_POLICY_OP_PUBLISH, "sensors/#");
 * elbus_client_policy_deny (policy, ELBUS_POLICY_OP_MESSAGE);
 * if (!elbus_client_policy_add_network (policy, "192.168.1.0/24", &error))
 *   g_printerr ("%s\n", error->message);
 * ```
 *
 * Since: 1.0
 */

#define N_OPS (ELBUS_POLICY_OP_SUBSCRIBE + 1)

/* One allowed mask, its length kept for the per-frame check. */
typedef struct
{
  gsize len;
  char  str[];  /* NUL-terminated copy of the mask */
} PolicyMask;

/* The rule for one operation. */
typedef struct
{
  gboolean   restricted;  /* allow() or deny() was called: only @masks pass */
  GPtrArray *masks;       /* (owned) (element-type PolicyMask): allowed
                           * masks; empty when denied outright */
} PolicyRule;

struct _ElbusClientPolicy
{
  GObject     parent_instance;

  GPtrArray  *networks;   /* (owned) (element-type GInetAddressMask):
                           * never modified once added, so copies share
                           * them; empty = any address */
  GArray     *uids;       /* (owned) (element-type guint32) */
  GArray     *gids;       /* (owned) (element-type guint32) */
  PolicyRule  rules[N_OPS];
  gboolean    monitor;
};

G_DEFINE_FINAL_TYPE (ElbusClientPolicy, elbus_client_policy, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_MONITOR,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static PolicyMask *
policy_mask_new (const char *mask,
                 gsize       len)
{
  PolicyMask *pm = g_malloc (sizeof (PolicyMask) + len + 1);

  pm->len = len;
  memcpy (pm->str, mask, len);
  pm->str[len] = '\0';

  return pm;
}

static PolicyMask *
policy_mask_copy (const PolicyMask *pm)
{
  return policy_mask_new (pm->str, pm->len);
}

static gboolean
op_is_valid (ElbusPolicyOp op)
{
  return (guint) op < N_OPS;
}

static gboolean
id_list_contains (GArray *ids,
                  gint64  id)
{
  guint i;

  if (id < 0 || id > G_MAXUINT32)
    return FALSE;

  for (i = 0; i < ids->len; i++)
    {
      if (g_array_index (ids, guint32, i) == (guint32) id)
        return TRUE;
    }

  return FALSE;
}

static void
id_list_add (GArray  *ids,
             guint32  id)
{
  if (!id_list_contains (ids, id))
    g_array_append_val (ids, id);
}

/* Returns the IPv4 address that @address stands for when it is an
 * IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), else NULL. */
static GInetAddress *
inet_address_unmap (GInetAddress *address)
{
  static const guint8 mapped_prefix[12] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
  };
  const guint8 *bytes;

  if (g_inet_address_get_family (address) != G_SOCKET_FAMILY_IPV6)
    return NULL;

  bytes = g_inet_address_to_bytes (address);
  if (memcmp (bytes, mapped_prefix, sizeof mapped_prefix) != 0)
    return NULL;

  return g_inet_address_new_from_bytes (bytes + sizeof mapped_prefix,
                                        G_SOCKET_FAMILY_IPV4);
}

static void
elbus_client_policy_finalize (GObject *object)
{
  ElbusClientPolicy *self = ELBUS_CLIENT_POLICY (object);
  guint i;

  g_ptr_array_unref (self->networks);
  g_array_unref (self->uids);
  g_array_unref (self->gids);
  for (i = 0; i < N_OPS; i++)
    g_ptr_array_unref (self->rules[i].masks);

  G_OBJECT_CLASS (elbus_client_policy_parent_class)->finalize (object);
}

static void
elbus_client_policy_get_property (GObject    *object,
                                  guint       prop_id,
                                  GValue     *value,
                                  GParamSpec *pspec)
{
  ElbusClientPolicy *self = ELBUS_CLIENT_POLICY (object);

  switch (prop_id)
    {
    case PROP_MONITOR:
      g_value_set_boolean (value, self->monitor);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
elbus_client_policy_set_property (GObject      *object,
                                  guint         prop_id,
                                  const GValue *value,
                                  GParamSpec   *pspec)
{
  ElbusClientPolicy *self = ELBUS_CLIENT_POLICY (object);

  switch (prop_id)
    {
    case PROP_MONITOR:
      elbus_client_policy_set_monitor (self, g_value_get_boolean (value));
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
elbus_client_policy_class_init (ElbusClientPolicyClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = elbus_client_policy_finalize;
  object_class->get_property = elbus_client_policy_get_property;
  object_class->set_property = elbus_client_policy_set_property;

  /**
   * ElbusClientPolicy:monitor: (getter get_monitor) (setter set_monitor)
   *
   * Whether the client may become a monitor (call the broker's
   * `monitor.start`, docs/protocol.md section 9).
   *
   * Since: 1.0
   */
  properties[PROP_MONITOR] =
    g_param_spec_boolean ("monitor", NULL, NULL,
                          FALSE,
                          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                          G_PARAM_EXPLICIT_NOTIFY);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
elbus_client_policy_init (ElbusClientPolicy *self)
{
  guint i;

  self->networks = g_ptr_array_new_with_free_func (g_object_unref);
  self->uids = g_array_new (FALSE, FALSE, sizeof (guint32));
  self->gids = g_array_new (FALSE, FALSE, sizeof (guint32));
  for (i = 0; i < N_OPS; i++)
    self->rules[i].masks = g_ptr_array_new_with_free_func (g_free);
}

/**
 * elbus_client_policy_new:
 *
 * Creates a policy entry that allows everything except monitoring.
 *
 * Returns: (transfer full): a new policy entry
 *
 * Since: 1.0
 */
ElbusClientPolicy *
elbus_client_policy_new (void)
{
  return g_object_new (ELBUS_TYPE_CLIENT_POLICY, NULL);
}

/**
 * elbus_client_policy_copy:
 * @self: a policy entry
 *
 * Makes an independent copy of @self: changing either afterwards does not
 * change the other.
 *
 * Returns: (transfer full): a new policy entry with the rules of @self
 *
 * Since: 1.0
 */
ElbusClientPolicy *
elbus_client_policy_copy (ElbusClientPolicy *self)
{
  ElbusClientPolicy *copy;
  guint i;

  g_return_val_if_fail (ELBUS_IS_CLIENT_POLICY (self), NULL);

  copy = elbus_client_policy_new ();

  for (i = 0; i < self->networks->len; i++)
    g_ptr_array_add (copy->networks, g_object_ref (g_ptr_array_index (self->networks, i)));
  g_array_append_vals (copy->uids, self->uids->data, self->uids->len);
  g_array_append_vals (copy->gids, self->gids->data, self->gids->len);

  for (i = 0; i < N_OPS; i++)
    {
      const PolicyRule *rule = &self->rules[i];
      guint j;

      copy->rules[i].restricted = rule->restricted;
      for (j = 0; j < rule->masks->len; j++)
        g_ptr_array_add (copy->rules[i].masks,
                         policy_mask_copy (g_ptr_array_index (rule->masks, j)));
    }

  copy->monitor = self->monitor;

  return copy;
}

/**
 * elbus_client_policy_add_network:
 * @self: a policy entry
 * @cidr: a network in CIDR notation (`10.0.0.0/8`, `fe80::/10`), or a
 *   single address (`192.168.1.7`, `::1`)
 * @error: return location for a #GError
 *
 * Allows TCP connections from @cidr. Once a network has been added, only
 * addresses in one of the added networks are allowed
 * ([method@Elbus.ClientPolicy.allows_address]).
 *
 * A network with bits set past its prefix length (`10.0.0.1/8`) is
 * refused, as is anything that is not an IPv4 or IPv6 address (host names
 * included), with %G_IO_ERROR_INVALID_ARGUMENT.
 *
 * Returns: %TRUE if @cidr was added, %FALSE with @error set if it is not a
 *   network
 *
 * Since: 1.0
 */
gboolean
elbus_client_policy_add_network (ElbusClientPolicy  *self,
                                 const char         *cidr,
                                 GError            **error)
{
  g_autoptr(GInetAddressMask) mask = NULL;
  g_autoptr(GInetAddress) unmapped = NULL;
  g_autoptr(GError) local_error = NULL;
  const char *slash;
  guint length;

  g_return_val_if_fail (ELBUS_IS_CLIENT_POLICY (self), FALSE);
  g_return_val_if_fail (cidr != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* GInetAddressMask reads the length with strtoul(), which takes " 8" and
   * "+8", and warns about a length above 128 instead of failing. */
  slash = strchr (cidr, '/');
  if (slash != NULL &&
      !g_ascii_string_to_unsigned (slash + 1, 10, 0, 128, NULL, NULL))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   _("invalid network ‘%s’: the prefix length is not a number "
                     "from 0 to 128"), cidr);
      return FALSE;
    }

  mask = g_inet_address_mask_new_from_string (cidr, &local_error);
  if (mask == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   _("invalid network ‘%s’: %s"), cidr, local_error->message);
      return FALSE;
    }

  /* ::ffff:a.b.c.d/96+n is the IPv4 network a.b.c.d/n: store it so, since
   * mapped client addresses are matched as IPv4 ones. */
  length = g_inet_address_mask_get_length (mask);
  unmapped = inet_address_unmap (g_inet_address_mask_get_address (mask));
  if (unmapped != NULL && length >= 96)
    {
      g_autoptr(GInetAddressMask) v4 = g_inet_address_mask_new (unmapped, length - 96, &local_error);

      /* cannot fail: the host bits were checked on the IPv6 form */
      g_return_val_if_fail (v4 != NULL, FALSE);
      g_set_object (&mask, v4);
    }

  g_ptr_array_add (self->networks, g_steal_pointer (&mask));

  return TRUE;
}

/**
 * elbus_client_policy_allows_address:
 * @self: a policy entry
 * @address: the address a TCP client connects from
 *
 * Tells whether a client may connect from @address: always when no network
 * was added, else when @address is in one of the added networks. An
 * IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, as a dual-stack listener
 * reports an IPv4 client) is matched as the IPv4 address it stands for.
 *
 * Returns: %TRUE if @address is allowed
 *
 * Since: 1.0
 */
gboolean
elbus_client_policy_allows_address (ElbusClientPolicy *self,
                                    GInetAddress      *address)
{
  g_autoptr(GInetAddress) unmapped = NULL;
  guint i;

  g_return_val_if_fail (ELBUS_IS_CLIENT_POLICY (self), FALSE);
  g_return_val_if_fail (G_IS_INET_ADDRESS (address), FALSE);

  if (self->networks->len == 0)
    return TRUE;

  unmapped = inet_address_unmap (address);
  if (unmapped != NULL)
    address = unmapped;

  for (i = 0; i < self->networks->len; i++)
    {
      if (g_inet_address_mask_matches (g_ptr_array_index (self->networks, i), address))
        return TRUE;
    }

  return FALSE;
}

/**
 * elbus_client_policy_add_uid:
 * @self: a policy entry
 * @uid: a user id
 *
 * Allows clients that run as @uid. Once a uid or a gid has been added,
 * only clients with one of the added uids or gids are allowed
 * ([method@Elbus.ClientPolicy.allows_credentials]).
 *
 * Since: 1.0
 */
void
elbus_client_policy_add_uid (ElbusClientPolicy *self,
                             guint32            uid)
{
  g_return_if_fail (ELBUS_IS_CLIENT_POLICY (self));

  id_list_add (self->uids, uid);
}

/**
 * elbus_client_policy_add_gid:
 * @self: a policy entry
 * @gid: a group id
 *
 * Allows clients that run under the group @gid. Once a uid or a gid has
 * been added, only clients with one of the added uids or gids are allowed
 * ([method@Elbus.ClientPolicy.allows_credentials]).
 *
 * Since: 1.0
 */
void
elbus_client_policy_add_gid (ElbusClientPolicy *self,
                             guint32            gid)
{
  g_return_if_fail (ELBUS_IS_CLIENT_POLICY (self));

  id_list_add (self->gids, gid);
}

/**
 * elbus_client_policy_allows_credentials:
 * @self: a policy entry
 * @uid: the client's user id, or -1 when unknown
 * @gid: the client's group id, or -1 when unknown
 *
 * Tells whether a client with these credentials may connect: always when
 * no uid and no gid was added; else only when @uid is one of the added
 * uids or @gid one of the added gids. An unknown id (a TCP client has no
 * credentials) matches nothing.
 *
 * Returns: %TRUE if the credentials are allowed
 *
 * Since: 1.0
 */
gboolean
elbus_client_policy_allows_credentials (ElbusClientPolicy *self,
                                        gint64             uid,
                                        gint64             gid)
{
  g_return_val_if_fail (ELBUS_IS_CLIENT_POLICY (self), FALSE);

  if (self->uids->len == 0 && self->gids->len == 0)
    return TRUE;

  return id_list_contains (self->uids, uid) || id_list_contains (self->gids, gid);
}

/**
 * elbus_client_policy_allow:
 * @self: a policy entry
 * @op: an operation
 * @mask: a mask of the targets to allow: a `.`-mask for messages and
 *   broadcasts, a `/`-mask for publications and subscriptions
 *
 * Allows @op for the targets @mask matches. The first call for an
 * operation restricts it: from then on it is allowed only for the targets
 * one of its allowed masks matches. After
 * [method@Elbus.ClientPolicy.deny], it allows the operation again, for
 * @mask only. See [class@Elbus.ClientPolicy] for how masks match.
 *
 * Since: 1.0
 */
void
elbus_client_policy_allow (ElbusClientPolicy *self,
                           ElbusPolicyOp      op,
                           const char        *mask)
{
  PolicyRule *rule;
  gsize len;
  guint i;

  g_return_if_fail (ELBUS_IS_CLIENT_POLICY (self));
  g_return_if_fail (op_is_valid (op));
  g_return_if_fail (mask != NULL);

  rule = &self->rules[op];
  rule->restricted = TRUE;

  len = strlen (mask);
  for (i = 0; i < rule->masks->len; i++)
    {
      const PolicyMask *pm = g_ptr_array_index (rule->masks, i);

      if (pm->len == len && memcmp (pm->str, mask, len) == 0)
        return;
    }

  g_ptr_array_add (rule->masks, policy_mask_new (mask, len));
}

/**
 * elbus_client_policy_deny:
 * @self: a policy entry
 * @op: an operation
 *
 * Refuses @op for every target, dropping the masks allowed for it so far.
 * A later [method@Elbus.ClientPolicy.allow] allows it again for the masks
 * given from then on.
 *
 * Since: 1.0
 */
void
elbus_client_policy_deny (ElbusClientPolicy *self,
                          ElbusPolicyOp      op)
{
  PolicyRule *rule;

  g_return_if_fail (ELBUS_IS_CLIENT_POLICY (self));
  g_return_if_fail (op_is_valid (op));

  rule = &self->rules[op];
  rule->restricted = TRUE;
  g_ptr_array_set_size (rule->masks, 0);
}

/**
 * elbus_client_policy_allows:
 * @self: a policy entry
 * @op: an operation
 * @target: the target: a message's target name, a broadcast's mask, a
 *   publication's topic or a subscription's mask
 *
 * Tells whether @self allows @op for @target: always when @op was never
 * restricted, never when it was denied, else when one of its allowed masks
 * matches @target (a name or a topic) or covers it (a broadcast mask or a
 * subscription mask; see [class@Elbus.ClientPolicy]).
 *
 * Returns: %TRUE if @op is allowed for @target
 *
 * Since: 1.0
 */
gboolean
elbus_client_policy_allows (ElbusClientPolicy *self,
                            ElbusPolicyOp      op,
                            const char        *target)
{
  g_return_val_if_fail (ELBUS_IS_CLIENT_POLICY (self), FALSE);
  g_return_val_if_fail (op_is_valid (op), FALSE);
  g_return_val_if_fail (target != NULL, FALSE);

  return _elbus_client_policy_allows_len (self, op, target, strlen (target));
}

/**
 * elbus_client_policy_set_monitor:
 * @self: a policy entry
 * @allowed: whether the client may become a monitor
 *
 * Sets [property@Elbus.ClientPolicy:monitor].
 *
 * Since: 1.0
 */
void
elbus_client_policy_set_monitor (ElbusClientPolicy *self,
                                 gboolean           allowed)
{
  g_return_if_fail (ELBUS_IS_CLIENT_POLICY (self));

  allowed = !!allowed;
  if (self->monitor == allowed)
    return;

  self->monitor = allowed;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MONITOR]);
}

/**
 * elbus_client_policy_get_monitor:
 * @self: a policy entry
 *
 * Gets [property@Elbus.ClientPolicy:monitor].
 *
 * Returns: %TRUE if the client may become a monitor
 *
 * Since: 1.0
 */
gboolean
elbus_client_policy_get_monitor (ElbusClientPolicy *self)
{
  g_return_val_if_fail (ELBUS_IS_CLIENT_POLICY (self), FALSE);

  return self->monitor;
}

/* Private */

/**
 * _elbus_client_policy_allows_len:
 * @self: a policy entry
 * @op: an operation
 * @target: (array length=len): the target, not necessarily NUL-terminated
 *   (%NULL when @len is 0)
 * @len: the length of @target in bytes
 *
 * [method@Elbus.ClientPolicy.allows] for a target out of a frame: a linear
 * scan of the operation's masks (an entry holds few) that allocates
 * nothing.
 *
 * Returns: %TRUE if @op is allowed for @target
 */
gboolean
_elbus_client_policy_allows_len (ElbusClientPolicy *self,
                                 ElbusPolicyOp      op,
                                 const char        *target,
                                 gsize              len)
{
  const PolicyRule *rule;
  gboolean (*matches) (const char *, gsize, const char *, gsize);
  guint i;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (op_is_valid (op), FALSE);
  g_return_val_if_fail (target != NULL || len == 0, FALSE);

  rule = &self->rules[op];
  if (!rule->restricted)
    return TRUE;

  /* message targets and publication topics are literal; broadcast masks
   * and requested subscriptions are masks, which must be covered whole */
  switch (op)
    {
    case ELBUS_POLICY_OP_MESSAGE:
      matches = _elbus_name_mask_matches;
      break;
    case ELBUS_POLICY_OP_BROADCAST:
      matches = _elbus_name_mask_covers;
      break;
    case ELBUS_POLICY_OP_PUBLISH:
      matches = _elbus_topic_mask_matches;
      break;
    case ELBUS_POLICY_OP_SUBSCRIBE:
    default:
      matches = _elbus_topic_mask_covers;
      break;
    }
  for (i = 0; i < rule->masks->len; i++)
    {
      const PolicyMask *pm = g_ptr_array_index (rule->masks, i);

      if (matches (pm->str, pm->len, target, len))
        return TRUE;
    }

  return FALSE;
}

/**
 * _elbus_client_policy_restricts:
 * @self: a policy entry
 * @op: an operation
 *
 * Tells whether @op is restricted at all, so that the broker can skip
 * looking at targets of operations allowed for anything.
 *
 * Returns: %TRUE if @op was given masks or denied, %FALSE if it is allowed
 *   for every target
 */
gboolean
_elbus_client_policy_restricts (ElbusClientPolicy *self,
                                ElbusPolicyOp      op)
{
  /* a caller bug reads as "restricted": the broker then asks
   * _elbus_client_policy_allows_len(), which refuses */
  g_return_val_if_fail (self != NULL, TRUE);
  g_return_val_if_fail (op_is_valid (op), TRUE);

  return self->rules[op].restricted;
}
