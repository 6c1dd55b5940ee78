/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for ElbusClientPolicy (elbus-client-policy.c, docs/protocol.md
 * section 7): defaults, allowed masks per operation with the wildcard fine
 * points of section 4, deny, networks (IPv4, IPv6, IPv4-mapped, bad
 * strings), credentials, copies, and the broker's (pointer, length) fast
 * path on strings that are not NUL-terminated.
 */

#include "config.h"

#include <string.h>

#include "elbus-client-policy-private.h"
#include "elbus-test-util.h"

static const ElbusPolicyOp all_ops[] = {
  ELBUS_POLICY_OP_MESSAGE,
  ELBUS_POLICY_OP_BROADCAST,
  ELBUS_POLICY_OP_PUBLISH,
  ELBUS_POLICY_OP_SUBSCRIBE,
};

static const char *
op_name (ElbusPolicyOp op)
{
  GEnumClass *klass = g_type_class_ref (ELBUS_TYPE_POLICY_OP);
  GEnumValue *value = g_enum_get_value (klass, op);
  const char *name = value != NULL ? value->value_nick : "?";

  g_type_class_unref (klass);

  return name;
}

/* Asks @policy about @target four ways: the public call; the fast path on
 * the NUL-terminated string; on an exact-size heap copy (so that valgrind
 * and ASan see any read past the end); and on a copy followed by @junk
 * that would change the answer if it were read. */
static void
check_op_junk (ElbusClientPolicy *policy,
               ElbusPolicyOp      op,
               const char        *target,
               const char        *junk,
               gboolean           expected)
{
  gsize len = strlen (target);
  g_autofree char *exact = g_malloc (MAX (len, 1));
  g_autofree char *longer = g_strconcat (target, junk, NULL);

  memcpy (exact, target, len);

  if (elbus_client_policy_allows (policy, op, target) != expected)
    g_error ("%s to ‘%s’: expected %s", op_name (op), target,
             expected ? "allowed" : "refused");
  g_assert_cmpint (_elbus_client_policy_allows_len (policy, op, target, len), ==, expected);
  g_assert_cmpint (_elbus_client_policy_allows_len (policy, op, exact, len), ==, expected);
  g_assert_cmpint (_elbus_client_policy_allows_len (policy, op, longer, len), ==, expected);
}

static void
check_op (ElbusClientPolicy *policy,
          ElbusPolicyOp      op,
          const char        *target,
          gboolean           expected)
{
  const char *junk = op == ELBUS_POLICY_OP_MESSAGE || op == ELBUS_POLICY_OP_BROADCAST ?
                     ".x.y" : "/x/y";

  check_op_junk (policy, op, target, junk, expected);
}

typedef struct
{
  const char *target;
  gboolean    allowed;
} TargetCase;

static void
check_cases (ElbusClientPolicy *policy,
             ElbusPolicyOp      op,
             const TargetCase  *cases,
             gsize              n_cases)
{
  gsize i;

  for (i = 0; i < n_cases; i++)
    check_op (policy, op, cases[i].target, cases[i].allowed);
}

static gboolean
allows_address_string (ElbusClientPolicy *policy,
                       const char        *address_string)
{
  g_autoptr(GInetAddress) address = g_inet_address_new_from_string (address_string);

  g_assert_nonnull (address);

  return elbus_client_policy_allows_address (policy, address);
}

static void
add_network_ok (ElbusClientPolicy *policy,
                const char        *cidr)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (elbus_client_policy_add_network (policy, cidr, &error));
  g_assert_no_error (error);
}

/* Defaults */

static const char *const some_targets[] = {
  "", "a", "a.b", "a.*", "*", "?", "a/b", "#", "+", "a/#", ".broker", ".broker/info",
  "x%%1", "\xc3\xa9",
};

static void
test_defaults (void)
{
  g_autoptr(ElbusClientPolicy) policy = elbus_client_policy_new ();
  gsize i, j;

  g_test_summary ("A fresh policy allows every operation, address and "
                  "credential, but not monitoring.");

  for (i = 0; i < G_N_ELEMENTS (all_ops); i++)
    {
      g_assert_false (_elbus_client_policy_restricts (policy, all_ops[i]));
      for (j = 0; j < G_N_ELEMENTS (some_targets); j++)
        check_op (policy, all_ops[i], some_targets[j], TRUE);
    }

  /* the fast path takes (NULL, 0) as the empty string */
  g_assert_true (_elbus_client_policy_allows_len (policy, ELBUS_POLICY_OP_PUBLISH, NULL, 0));

  g_assert_true (allows_address_string (policy, "10.1.2.3"));
  g_assert_true (allows_address_string (policy, "::1"));
  g_assert_true (allows_address_string (policy, "::ffff:127.0.0.1"));

  g_assert_true (elbus_client_policy_allows_credentials (policy, -1, -1));
  g_assert_true (elbus_client_policy_allows_credentials (policy, 0, 0));
  g_assert_true (elbus_client_policy_allows_credentials (policy, 1000, 1000));

  g_assert_false (elbus_client_policy_get_monitor (policy));
}

static void
test_enum_type (void)
{
  GEnumClass *klass;

  g_test_summary ("ElbusPolicyOp has a GType with one value per operation.");

  klass = g_type_class_ref (ELBUS_TYPE_POLICY_OP);
  g_assert_true (G_IS_ENUM_CLASS (klass));
  g_assert_cmpuint (klass->n_values, ==, G_N_ELEMENTS (all_ops));
  g_assert_cmpstr (g_enum_get_value (klass, ELBUS_POLICY_OP_MESSAGE)->value_nick, ==, "message");
  g_assert_cmpstr (g_enum_get_value (klass, ELBUS_POLICY_OP_SUBSCRIBE)->value_nick, ==, "subscribe");
  g_type_class_unref (klass);
}

/* Operations: allowed masks */

static void
test_message (void)
{
  g_autoptr(ElbusClientPolicy) policy = elbus_client_policy_new ();
  static const TargetCase cases[] = {
    { "svc.db", TRUE },
    { "svc.db%%1", FALSE },        /* a secondary is a name of its own */
    { "svc.dbx", FALSE },
    { "svc", FALSE },
    { "svc.db.x", FALSE },
    { "web.a", TRUE },
    { "web.a.b.c", TRUE },
    { "web", FALSE },              /* `*` wants one part or more */
    { "web.", TRUE },              /* ... an empty one will do */
    { "webx.a", FALSE },
    { "grp.x.log", TRUE },
    { "grp..log", TRUE },          /* `?` matches an empty part */
    { "grp.x.y.log", FALSE },
    { "grp.x.log.z", FALSE },
    { "tail.z", TRUE },
    { "tail.z.q", TRUE },          /* `tail.*.never` acts as `tail.*` */
    { "tail", FALSE },
    { "a*", TRUE },                /* `a*` is a plain part */
    { "ab", FALSE },
    { "", FALSE },
    { "*", FALSE },
  };

  g_test_summary ("Message masks: exact names, `?`, `*`, anything after `*` "
                  "ignored, wildcards only as whole parts.");

  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_MESSAGE, "svc.db");
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_MESSAGE, "web.*");
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_MESSAGE, "grp.?.log");
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_MESSAGE, "tail.*.never");
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_MESSAGE, "a*");

  g_assert_true (_elbus_client_policy_restricts (policy, ELBUS_POLICY_OP_MESSAGE));
  check_cases (policy, ELBUS_POLICY_OP_MESSAGE, cases, G_N_ELEMENTS (cases));

  /* the other operations are untouched */
  g_assert_false (_elbus_client_policy_restricts (policy, ELBUS_POLICY_OP_BROADCAST));
  g_assert_false (_elbus_client_policy_restricts (policy, ELBUS_POLICY_OP_PUBLISH));
  g_assert_false (_elbus_client_policy_restricts (policy, ELBUS_POLICY_OP_SUBSCRIBE));
  check_op (policy, ELBUS_POLICY_OP_BROADCAST, "other.*", TRUE);
  check_op (policy, ELBUS_POLICY_OP_PUBLISH, "other", TRUE);
}

static void
test_broadcast (void)
{
  g_autoptr(ElbusClientPolicy) policy = elbus_client_policy_new ();
  static const TargetCase cases[] = {
    /* under `a.*`: the broadcast's own mask, taken literally */
    { "a.b", TRUE },
    { "a.?", TRUE },
    { "a.*", TRUE },
    { "a.b.*", TRUE },
    { "a.?.c", TRUE },
    { "a", FALSE },
    { "*", FALSE },
    { "?.b", FALSE },
    { "?", FALSE },
    /* under `x.?`: `*` reaches further, so it is not covered */
    { "x.y", TRUE },
    { "x.*", FALSE },
    { "x.?", TRUE },
    { "x.y.z", FALSE },
    { "x.*.z", FALSE },
    { "x", FALSE },
  };

  g_test_summary ("A broadcast's own mask must be covered by an allowed one: "
                  "`a.*` allows `a.?` and `a.*`, not `*`; `x.?` does not allow `x.*`.");

  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_BROADCAST, "a.*");
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_BROADCAST, "x.?");

  check_cases (policy, ELBUS_POLICY_OP_BROADCAST, cases, G_N_ELEMENTS (cases));
  check_op (policy, ELBUS_POLICY_OP_MESSAGE, "zzz", TRUE);
}

static void
test_publish (void)
{
  g_autoptr(ElbusClientPolicy) policy = elbus_client_policy_new ();
  static const TargetCase cases[] = {
    { "sensors/t1", TRUE },
    { "sensors/room/t1", TRUE },
    { "sensors/", TRUE },          /* `#` takes an empty level */
    { "sensors", FALSE },          /* ... but needs one */
    { "sensorsx/t1", FALSE },
    { "a/x/c", TRUE },
    { "a//c", TRUE },              /* `+` matches an empty level */
    { "a/x/y/c", FALSE },
    { "a/x/c/d", FALSE },
    { "a/x", FALSE },
    { "log/x", TRUE },             /* `log/#/never` acts as `log/#` */
    { "log", FALSE },
    { "exact/topic", TRUE },
    { "exact/topic/x", FALSE },
    { "exact", FALSE },
    { "a+", TRUE },                /* `a+` is a plain level */
    { "ab", FALSE },
    { "#", FALSE },
    { "", FALSE },
  };

  g_test_summary ("Publish masks: exact topics, `+`, `#`, anything after `#` "
                  "ignored, wildcards only as whole levels.");

  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_PUBLISH, "sensors/#");
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_PUBLISH, "a/+/c");
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_PUBLISH, "log/#/never");
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_PUBLISH, "exact/topic");
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_PUBLISH, "a+");

  check_cases (policy, ELBUS_POLICY_OP_PUBLISH, cases, G_N_ELEMENTS (cases));
  check_op (policy, ELBUS_POLICY_OP_SUBSCRIBE, "anything/#", TRUE);
}

static void
test_subscribe (void)
{
  g_autoptr(ElbusClientPolicy) policy = elbus_client_policy_new ();
  static const TargetCase cases[] = {
    /* under `a/#`: the requested mask, taken literally */
    { "a/b", TRUE },
    { "a/+", TRUE },
    { "a/#", TRUE },
    { "a/+/#", TRUE },
    { "a", FALSE },
    { "#", FALSE },
    { "+/b", FALSE },
    { "+", FALSE },
    /* under `x/+`: `#` reaches further, so it is not covered */
    { "x/#", FALSE },
    { "x/+", TRUE },
    { "x/y", TRUE },
    { "x/y/#", FALSE },
    { "", FALSE },
  };

  g_test_summary ("A requested subscription must be covered by an allowed mask: "
                  "`a/#` allows `a/+` and `a/#`, not `#`; `x/+` does not allow `x/#`.");

  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_SUBSCRIBE, "a/#");
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_SUBSCRIBE, "x/+");

  check_cases (policy, ELBUS_POLICY_OP_SUBSCRIBE, cases, G_N_ELEMENTS (cases));
}

static void
test_wildcard_alone (void)
{
  g_autoptr(ElbusClientPolicy) policy = elbus_client_policy_new ();
  gsize i;

  g_test_summary ("`*` alone allows every name and mask, `#` alone every "
                  "topic and mask, the empty ones included; `?` and `+` "
                  "alone only one part.");

  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_MESSAGE, "*");
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_BROADCAST, "*");
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_PUBLISH, "#");
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_SUBSCRIBE, "#");

  for (i = 0; i < G_N_ELEMENTS (all_ops); i++)
    {
      gsize j;

      g_assert_true (_elbus_client_policy_restricts (policy, all_ops[i]));
      for (j = 0; j < G_N_ELEMENTS (some_targets); j++)
        check_op (policy, all_ops[i], some_targets[j], TRUE);
    }

  g_clear_object (&policy);
  policy = elbus_client_policy_new ();
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_MESSAGE, "?");
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_PUBLISH, "+");
  check_op (policy, ELBUS_POLICY_OP_MESSAGE, "a", TRUE);
  check_op (policy, ELBUS_POLICY_OP_MESSAGE, "", TRUE);
  check_op (policy, ELBUS_POLICY_OP_MESSAGE, "a.b", FALSE);
  check_op (policy, ELBUS_POLICY_OP_PUBLISH, "a", TRUE);
  check_op (policy, ELBUS_POLICY_OP_PUBLISH, "", TRUE);
  check_op (policy, ELBUS_POLICY_OP_PUBLISH, "a/b", FALSE);
}

static void
test_separators (void)
{
  g_autoptr(ElbusClientPolicy) policy = elbus_client_policy_new ();

  g_test_summary ("Name masks split on `.` only, topic masks on `/` only.");

  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_MESSAGE, "a.?");
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_PUBLISH, "a/+");

  check_op_junk (policy, ELBUS_POLICY_OP_MESSAGE, "a.b/c", "", TRUE);
  check_op_junk (policy, ELBUS_POLICY_OP_MESSAGE, "a/b", "", FALSE);
  check_op_junk (policy, ELBUS_POLICY_OP_PUBLISH, "a/b.c", "", TRUE);
  check_op_junk (policy, ELBUS_POLICY_OP_PUBLISH, "a.b", "", FALSE);
}

/* Operations: deny */

static void
test_deny (void)
{
  g_autoptr(ElbusClientPolicy) policy = elbus_client_policy_new ();
  gsize i;

  g_test_summary ("A denied operation is refused for every target, its "
                  "masks dropped; the other operations are untouched.");

  for (i = 0; i < G_N_ELEMENTS (all_ops); i++)
    {
      ElbusPolicyOp op = all_ops[i];
      gboolean topic = op == ELBUS_POLICY_OP_PUBLISH || op == ELBUS_POLICY_OP_SUBSCRIBE;
      gsize j;

      elbus_client_policy_allow (policy, op, topic ? "#" : "*");
      check_op (policy, op, "a", TRUE);

      elbus_client_policy_deny (policy, op);
      g_assert_true (_elbus_client_policy_restricts (policy, op));
      for (j = 0; j < G_N_ELEMENTS (some_targets); j++)
        check_op (policy, op, some_targets[j], FALSE);
      g_assert_false (_elbus_client_policy_allows_len (policy, op, NULL, 0));

      /* twice is once */
      elbus_client_policy_deny (policy, op);
      check_op (policy, op, "a", FALSE);

      /* the operations not denied yet still allow everything */
      for (j = i + 1; j < G_N_ELEMENTS (all_ops); j++)
        {
          g_assert_false (_elbus_client_policy_restricts (policy, all_ops[j]));
          check_op (policy, all_ops[j], "a", TRUE);
        }
    }
}

static void
test_deny_then_allow (void)
{
  g_autoptr(ElbusClientPolicy) policy = elbus_client_policy_new ();

  g_test_summary ("allow() after deny() allows that mask only; the masks "
                  "from before deny() stay dropped.");

  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_PUBLISH, "old/#");
  elbus_client_policy_deny (policy, ELBUS_POLICY_OP_PUBLISH);
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_PUBLISH, "new/+");

  g_assert_true (_elbus_client_policy_restricts (policy, ELBUS_POLICY_OP_PUBLISH));
  check_op (policy, ELBUS_POLICY_OP_PUBLISH, "new/x", TRUE);
  check_op (policy, ELBUS_POLICY_OP_PUBLISH, "new/x/y", FALSE);
  check_op (policy, ELBUS_POLICY_OP_PUBLISH, "old/x", FALSE);
  check_op (policy, ELBUS_POLICY_OP_PUBLISH, "other", FALSE);

  /* and deny() again drops it */
  elbus_client_policy_deny (policy, ELBUS_POLICY_OP_PUBLISH);
  check_op (policy, ELBUS_POLICY_OP_PUBLISH, "new/x", FALSE);

  /* the same mask twice is one mask */
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_MESSAGE, "a.b");
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_MESSAGE, "a.b");
  check_op (policy, ELBUS_POLICY_OP_MESSAGE, "a.b", TRUE);
  check_op (policy, ELBUS_POLICY_OP_MESSAGE, "a.c", FALSE);

  /* the empty mask allows the empty target */
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_SUBSCRIBE, "");
  check_op (policy, ELBUS_POLICY_OP_SUBSCRIBE, "", TRUE);
  check_op (policy, ELBUS_POLICY_OP_SUBSCRIBE, "a", FALSE);
  check_op (policy, ELBUS_POLICY_OP_SUBSCRIBE, "/", FALSE);
}

/* Networks */

static void
test_network_ipv4 (void)
{
  g_autoptr(ElbusClientPolicy) policy = elbus_client_policy_new ();

  g_test_summary ("IPv4 networks and hosts; IPv4 never matches IPv6 networks.");

  add_network_ok (policy, "10.0.0.0/8");
  add_network_ok (policy, "192.168.1.7");

  g_assert_true (allows_address_string (policy, "10.0.0.0"));
  g_assert_true (allows_address_string (policy, "10.255.255.255"));
  g_assert_false (allows_address_string (policy, "11.0.0.1"));
  g_assert_false (allows_address_string (policy, "9.255.255.255"));
  g_assert_true (allows_address_string (policy, "192.168.1.7"));
  g_assert_false (allows_address_string (policy, "192.168.1.8"));
  g_assert_false (allows_address_string (policy, "127.0.0.1"));

  /* IPv6 addresses, even ones whose last bytes look alike */
  g_assert_false (allows_address_string (policy, "::1"));
  g_assert_false (allows_address_string (policy, "::a00:1"));
  g_assert_false (allows_address_string (policy, "a00::"));

  /* and the other way round: no IPv6 network covers IPv4 */
  g_clear_object (&policy);
  policy = elbus_client_policy_new ();
  add_network_ok (policy, "::/0");
  g_assert_true (allows_address_string (policy, "2001:db8::1"));
  g_assert_true (allows_address_string (policy, "::1"));
  g_assert_false (allows_address_string (policy, "10.0.0.1"));
  g_assert_false (allows_address_string (policy, "::ffff:10.0.0.1"));

  g_clear_object (&policy);
  policy = elbus_client_policy_new ();
  add_network_ok (policy, "0.0.0.0/0");
  g_assert_true (allows_address_string (policy, "10.0.0.1"));
  g_assert_true (allows_address_string (policy, "::ffff:10.0.0.1"));
  g_assert_false (allows_address_string (policy, "::1"));
}

static void
test_network_ipv6 (void)
{
  g_autoptr(ElbusClientPolicy) policy = elbus_client_policy_new ();

  g_test_summary ("IPv6 networks and hosts.");

  add_network_ok (policy, "::1/128");
  add_network_ok (policy, "fe80::/10");
  add_network_ok (policy, "2001:db8::5");

  g_assert_true (allows_address_string (policy, "::1"));
  g_assert_false (allows_address_string (policy, "::2"));
  g_assert_true (allows_address_string (policy, "fe80::1"));
  g_assert_true (allows_address_string (policy, "febf:ffff::1"));
  g_assert_false (allows_address_string (policy, "fec0::1"));
  g_assert_true (allows_address_string (policy, "2001:db8::5"));
  g_assert_false (allows_address_string (policy, "2001:db8::6"));
  g_assert_false (allows_address_string (policy, "127.0.0.1"));
  g_assert_false (allows_address_string (policy, "::ffff:127.0.0.1"));
}

static void
test_network_mapped (void)
{
  g_autoptr(ElbusClientPolicy) policy = elbus_client_policy_new ();

  g_test_summary ("An IPv4-mapped IPv6 address (a dual-stack listener's view "
                  "of an IPv4 client) matches IPv4 networks; a mapped network "
                  "is an IPv4 one.");

  add_network_ok (policy, "127.0.0.0/8");
  g_assert_true (allows_address_string (policy, "::ffff:127.0.0.1"));
  g_assert_true (allows_address_string (policy, "::ffff:127.1.2.3"));
  g_assert_false (allows_address_string (policy, "::ffff:128.0.0.1"));
  g_assert_false (allows_address_string (policy, "::1"));
  /* IPv4-compatible (::a.b.c.d) and other near misses are IPv6 */
  g_assert_false (allows_address_string (policy, "::127.0.0.1"));
  g_assert_false (allows_address_string (policy, "1::ffff:127.0.0.1"));
  g_assert_false (allows_address_string (policy, "::fffe:127.0.0.1"));

  /* a network written as a mapped one */
  g_clear_object (&policy);
  policy = elbus_client_policy_new ();
  add_network_ok (policy, "::ffff:10.0.0.0/104");
  add_network_ok (policy, "::ffff:192.168.1.7");
  g_assert_true (allows_address_string (policy, "10.1.2.3"));
  g_assert_true (allows_address_string (policy, "::ffff:10.1.2.3"));
  g_assert_false (allows_address_string (policy, "11.1.2.3"));
  g_assert_true (allows_address_string (policy, "192.168.1.7"));
  g_assert_true (allows_address_string (policy, "::ffff:192.168.1.7"));
  g_assert_false (allows_address_string (policy, "192.168.1.8"));
  g_assert_false (allows_address_string (policy, "::1"));
}

static void
test_network_bad (void)
{
  static const char *const bad[] = {
    "", "/", "/8", "10.0.0.0/", "10.0.0.0/33", "::1/129", "300.1.1.1",
    "10.0.0", "localhost", "example.org/8", "10.0.0.1/8", "fe80::1/10",
    "10.0.0.0/8/8", "10.0.0.0/8x", "10.0.0.0 /8", "10.0.0.0/ 8", "10.0.0.0/+8",
    "10.0.0.0/-8", "::/129", "::/4294967304", "::1::2", "[::1]",
  };
  g_autoptr(ElbusClientPolicy) policy = elbus_client_policy_new ();
  gsize i;

  g_test_summary ("Strings that are not networks (bits past the prefix "
                  "included) are refused with G_IO_ERROR_INVALID_ARGUMENT "
                  "naming them, and add nothing.");

  for (i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *quoted = g_strdup_printf ("‘%s’", bad[i]);

      if (elbus_client_policy_add_network (policy, bad[i], &error))
        g_error ("‘%s’ was taken for a network", bad[i]);
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
      g_assert_nonnull (strstr (error->message, quoted));
      g_test_message ("%s", error->message);

      /* no error location is fine too */
      g_assert_false (elbus_client_policy_add_network (policy, bad[i], NULL));
    }

  /* still no network: anything is allowed */
  g_assert_true (allows_address_string (policy, "10.0.0.1"));
  g_assert_true (allows_address_string (policy, "::1"));
}

/* Credentials */

static void
test_credentials (void)
{
  g_autoptr(ElbusClientPolicy) policy = elbus_client_policy_new ();

  g_test_summary ("uid or gid rules: one listed uid or one listed gid is "
                  "enough; unknown credentials (-1) match nothing.");

  elbus_client_policy_add_uid (policy, 1000);
  g_assert_true (elbus_client_policy_allows_credentials (policy, 1000, -1));
  g_assert_true (elbus_client_policy_allows_credentials (policy, 1000, 1000));
  g_assert_false (elbus_client_policy_allows_credentials (policy, 1001, 1000));
  g_assert_false (elbus_client_policy_allows_credentials (policy, -1, -1));
  g_assert_false (elbus_client_policy_allows_credentials (policy, 0, 0));

  elbus_client_policy_add_gid (policy, 50);
  g_assert_true (elbus_client_policy_allows_credentials (policy, 1001, 50));
  g_assert_true (elbus_client_policy_allows_credentials (policy, -1, 50));
  g_assert_true (elbus_client_policy_allows_credentials (policy, 1000, 51));
  g_assert_false (elbus_client_policy_allows_credentials (policy, 1001, 51));
  g_assert_false (elbus_client_policy_allows_credentials (policy, 50, 1000));
  g_assert_false (elbus_client_policy_allows_credentials (policy, -1, -1));

  /* a gid rule alone */
  g_clear_object (&policy);
  policy = elbus_client_policy_new ();
  elbus_client_policy_add_gid (policy, 0);
  g_assert_true (elbus_client_policy_allows_credentials (policy, 1000, 0));
  g_assert_false (elbus_client_policy_allows_credentials (policy, 0, 1000));
  g_assert_false (elbus_client_policy_allows_credentials (policy, 0, -1));

  /* root is a uid like any other, and the largest id is not "unknown" */
  g_clear_object (&policy);
  policy = elbus_client_policy_new ();
  elbus_client_policy_add_uid (policy, 0);
  elbus_client_policy_add_uid (policy, G_MAXUINT32);
  elbus_client_policy_add_uid (policy, 0);
  g_assert_true (elbus_client_policy_allows_credentials (policy, 0, -1));
  g_assert_true (elbus_client_policy_allows_credentials (policy, G_MAXUINT32, -1));
  g_assert_false (elbus_client_policy_allows_credentials (policy, -1, -1));
  g_assert_false (elbus_client_policy_allows_credentials (policy, (gint64) G_MAXUINT32 + 1, -1));
  g_assert_false (elbus_client_policy_allows_credentials (policy, G_MININT64, G_MAXINT64));
}

/* Monitor */

static void
notify_cb (GObject    *object,
           GParamSpec *pspec,
           gpointer    user_data)
{
  guint *count = user_data;

  (*count)++;
}

static void
test_monitor (void)
{
  g_autoptr(ElbusClientPolicy) policy = elbus_client_policy_new ();
  guint notified = 0;
  gboolean monitor = FALSE;

  g_test_summary ("The monitor permission and its property, notified on "
                  "change only.");

  g_signal_connect (policy, "notify::monitor", G_CALLBACK (notify_cb), &notified);

  elbus_client_policy_set_monitor (policy, TRUE);
  g_assert_true (elbus_client_policy_get_monitor (policy));
  g_assert_cmpuint (notified, ==, 1);
  elbus_client_policy_set_monitor (policy, TRUE);
  g_assert_cmpuint (notified, ==, 1);

  g_object_get (policy, "monitor", &monitor, NULL);
  g_assert_true (monitor);

  g_object_set (policy, "monitor", FALSE, NULL);
  g_assert_false (elbus_client_policy_get_monitor (policy));
  g_assert_cmpuint (notified, ==, 2);

  /* the rest of the policy does not care */
  g_assert_false (_elbus_client_policy_restricts (policy, ELBUS_POLICY_OP_MESSAGE));
}

/* Copies */

static void
check_original_rules (ElbusClientPolicy *policy)
{
  check_op (policy, ELBUS_POLICY_OP_MESSAGE, "a.b", TRUE);
  check_op (policy, ELBUS_POLICY_OP_MESSAGE, "x", FALSE);
  check_op (policy, ELBUS_POLICY_OP_BROADCAST, "anything.*", FALSE);
  check_op (policy, ELBUS_POLICY_OP_PUBLISH, "t/1", TRUE);
  check_op (policy, ELBUS_POLICY_OP_PUBLISH, "u/1", FALSE);
  g_assert_false (_elbus_client_policy_restricts (policy, ELBUS_POLICY_OP_SUBSCRIBE));
  check_op (policy, ELBUS_POLICY_OP_SUBSCRIBE, "#", TRUE);
  g_assert_true (allows_address_string (policy, "10.1.1.1"));
  g_assert_false (allows_address_string (policy, "11.1.1.1"));
  g_assert_true (elbus_client_policy_allows_credentials (policy, 1000, -1));
  g_assert_false (elbus_client_policy_allows_credentials (policy, 1001, -1));
  g_assert_true (elbus_client_policy_allows_credentials (policy, 1001, 50));
  g_assert_true (elbus_client_policy_get_monitor (policy));
}

static void
change_everything (ElbusClientPolicy *policy)
{
  elbus_client_policy_deny (policy, ELBUS_POLICY_OP_MESSAGE);
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_BROADCAST, "anything.*");
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_PUBLISH, "u/#");
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_SUBSCRIBE, "only/this");
  add_network_ok (policy, "11.0.0.0/8");
  elbus_client_policy_add_uid (policy, 1001);
  elbus_client_policy_add_gid (policy, 51);
  elbus_client_policy_set_monitor (policy, FALSE);
}

static void
test_copy (void)
{
  g_autoptr(ElbusClientPolicy) policy = elbus_client_policy_new ();
  g_autoptr(ElbusClientPolicy) copy = NULL;
  g_autoptr(ElbusClientPolicy) copy2 = NULL;
  g_autoptr(ElbusClientPolicy) empty = elbus_client_policy_new ();
  g_autoptr(ElbusClientPolicy) empty_copy = NULL;

  g_test_summary ("A copy has the same rules and is independent of the "
                  "original both ways.");

  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_MESSAGE, "a.*");
  elbus_client_policy_deny (policy, ELBUS_POLICY_OP_BROADCAST);
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_PUBLISH, "t/+");
  add_network_ok (policy, "10.0.0.0/8");
  elbus_client_policy_add_uid (policy, 1000);
  elbus_client_policy_add_gid (policy, 50);
  elbus_client_policy_set_monitor (policy, TRUE);

  copy = elbus_client_policy_copy (policy);
  g_assert_true (ELBUS_IS_CLIENT_POLICY (copy));
  g_assert_true (copy != policy);
  check_original_rules (copy);

  /* changing the original leaves the copy alone */
  copy2 = elbus_client_policy_copy (policy);
  change_everything (policy);
  check_original_rules (copy);
  check_op (policy, ELBUS_POLICY_OP_MESSAGE, "a.b", FALSE);
  check_op (policy, ELBUS_POLICY_OP_BROADCAST, "anything.*", TRUE);
  g_assert_true (allows_address_string (policy, "11.1.1.1"));
  g_assert_true (elbus_client_policy_allows_credentials (policy, 1001, -1));
  g_assert_false (elbus_client_policy_get_monitor (policy));

  /* and the other way round */
  change_everything (copy2);
  g_clear_object (&policy);
  check_original_rules (copy);

  /* a copy of a fresh policy is fresh */
  empty_copy = elbus_client_policy_copy (empty);
  g_assert_false (_elbus_client_policy_restricts (empty_copy, ELBUS_POLICY_OP_PUBLISH));
  g_assert_true (allows_address_string (empty_copy, "1.2.3.4"));
  g_assert_true (elbus_client_policy_allows_credentials (empty_copy, -1, -1));
  g_assert_false (elbus_client_policy_get_monitor (empty_copy));
}

/* The fast path */

static void
test_fast_path (void)
{
  g_autoptr(ElbusClientPolicy) policy = elbus_client_policy_new ();
  /* one frame body: TARGET 00 PAYLOAD, then more bytes */
  static const char body[] = "svc.db\0payload.x.y";
  static const char topic_body[] = "sensors/t1\0/more/levels";
  const char *buffer = "a.b.c.d";

  g_test_summary ("_elbus_client_policy_allows_len() reads exactly len bytes "
                  "of a string that is not NUL-terminated.");

  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_MESSAGE, "svc.db");
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_MESSAGE, "a.b");
  elbus_client_policy_allow (policy, ELBUS_POLICY_OP_PUBLISH, "sensors/+");

  g_assert_true (_elbus_client_policy_allows_len (policy, ELBUS_POLICY_OP_MESSAGE, body, 6));
  g_assert_false (_elbus_client_policy_allows_len (policy, ELBUS_POLICY_OP_MESSAGE, body, 5));
  g_assert_false (_elbus_client_policy_allows_len (policy, ELBUS_POLICY_OP_MESSAGE, body, 0));
  g_assert_false (_elbus_client_policy_allows_len (policy, ELBUS_POLICY_OP_MESSAGE, NULL, 0));

  /* prefixes of a longer string */
  g_assert_false (_elbus_client_policy_allows_len (policy, ELBUS_POLICY_OP_MESSAGE, buffer, 1));
  g_assert_true (_elbus_client_policy_allows_len (policy, ELBUS_POLICY_OP_MESSAGE, buffer, 3));
  g_assert_false (_elbus_client_policy_allows_len (policy, ELBUS_POLICY_OP_MESSAGE, buffer, 4));
  g_assert_false (_elbus_client_policy_allows_len (policy, ELBUS_POLICY_OP_MESSAGE, buffer, 5));
  g_assert_false (_elbus_client_policy_allows_len (policy, ELBUS_POLICY_OP_MESSAGE, buffer, 7));

  g_assert_true (_elbus_client_policy_allows_len (policy, ELBUS_POLICY_OP_PUBLISH, topic_body, 10));
  g_assert_false (_elbus_client_policy_allows_len (policy, ELBUS_POLICY_OP_PUBLISH, topic_body, 7));
  g_assert_true (_elbus_client_policy_allows_len (policy, ELBUS_POLICY_OP_PUBLISH, topic_body, 8));  /* `+` takes "" */
  g_assert_true (_elbus_client_policy_allows_len (policy, ELBUS_POLICY_OP_PUBLISH, topic_body, 9));

  /* an unrestricted operation does not look at the target at all */
  g_assert_false (_elbus_client_policy_restricts (policy, ELBUS_POLICY_OP_SUBSCRIBE));
  g_assert_true (_elbus_client_policy_allows_len (policy, ELBUS_POLICY_OP_SUBSCRIBE, buffer, 7));
}

static void
test_invalid_op (void)
{
  g_autoptr(ElbusClientPolicy) policy = elbus_client_policy_new ();

  g_test_summary ("An operation out of range is a caller bug: refused, and "
                  "read as restricted by the fast path.");

  g_test_expect_message ("Elbus", G_LOG_LEVEL_CRITICAL, "*op_is_valid*");
  g_assert_false (elbus_client_policy_allows (policy, (ElbusPolicyOp) 42, "a"));
  g_test_assert_expected_messages ();

  g_test_expect_message ("Elbus", G_LOG_LEVEL_CRITICAL, "*op_is_valid*");
  g_assert_true (_elbus_client_policy_restricts (policy, (ElbusPolicyOp) 42));
  g_test_assert_expected_messages ();

  g_test_expect_message ("Elbus", G_LOG_LEVEL_CRITICAL, "*op_is_valid*");
  g_assert_false (_elbus_client_policy_allows_len (policy, (ElbusPolicyOp) -1, "a", 1));
  g_test_assert_expected_messages ();

  g_test_expect_message ("Elbus", G_LOG_LEVEL_CRITICAL, "*op_is_valid*");
  elbus_client_policy_allow (policy, (ElbusPolicyOp) 4, "a");
  g_test_assert_expected_messages ();

  g_test_expect_message ("Elbus", G_LOG_LEVEL_CRITICAL, "*op_is_valid*");
  elbus_client_policy_deny (policy, (ElbusPolicyOp) 4);
  g_test_assert_expected_messages ();
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  g_test_add_func ("/elbus/policy/defaults", test_defaults);
  g_test_add_func ("/elbus/policy/enum-type", test_enum_type);
  g_test_add_func ("/elbus/policy/op/message", test_message);
  g_test_add_func ("/elbus/policy/op/broadcast", test_broadcast);
  g_test_add_func ("/elbus/policy/op/publish", test_publish);
  g_test_add_func ("/elbus/policy/op/subscribe", test_subscribe);
  g_test_add_func ("/elbus/policy/op/wildcard-alone", test_wildcard_alone);
  g_test_add_func ("/elbus/policy/op/separators", test_separators);
  g_test_add_func ("/elbus/policy/op/deny", test_deny);
  g_test_add_func ("/elbus/policy/op/deny-then-allow", test_deny_then_allow);
  g_test_add_func ("/elbus/policy/op/invalid", test_invalid_op);
  g_test_add_func ("/elbus/policy/network/ipv4", test_network_ipv4);
  g_test_add_func ("/elbus/policy/network/ipv6", test_network_ipv6);
  g_test_add_func ("/elbus/policy/network/mapped", test_network_mapped);
  g_test_add_func ("/elbus/policy/network/bad", test_network_bad);
  g_test_add_func ("/elbus/policy/credentials", test_credentials);
  g_test_add_func ("/elbus/policy/monitor", test_monitor);
  g_test_add_func ("/elbus/policy/copy", test_copy);
  g_test_add_func ("/elbus/policy/fast-path", test_fast_path);

  return g_test_run ();
}
