/* SPDX-License-Identifier: MIT */
/* elbus-monitor's filters: option values checked, monitor.start's params built. */
#include "config.h"

#include <glib/gi18n.h>

#include "elbus-monitor-event.h"
#include "elbus-monitor-filter.h"

/* The masks of @option: none empty, and none with the other syntax's
 * wildcards as a whole part (a name mask with a part + or #, a topic mask
 * with a level * or ?): that is a mistake, not a name. */
gboolean
check_masks (char       **masks,
             const char  *option,
             char         separator,
             GError     **error)
{
  gboolean names = separator == '.';

  for (guint i = 0; masks != NULL && masks[i] != NULL; i++)
    {
      g_auto(GStrv) parts = NULL;

      if (masks[i][0] == '\0')
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       _("%s: a mask cannot be empty"), option);
          return FALSE;
        }
      parts = g_strsplit (masks[i], (char[]) { separator, '\0' }, -1);
      for (guint j = 0; parts[j] != NULL; j++)
        {
          if (names && (g_str_equal (parts[j], "#") || g_str_equal (parts[j], "+")))
            {
              g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                           _("%s “%s”: client names are matched with . masks, where ? is "
                             "one part and * the rest (+ and # are for topics)"),
                           option, masks[i]);
              return FALSE;
            }
          if (!names && (g_str_equal (parts[j], "*") || g_str_equal (parts[j], "?")))
            {
              g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                           _("%s “%s”: topics are matched with / masks, where + is one "
                             "level and # the rest (? and * are for client names)"),
                           option, masks[i]);
              return FALSE;
            }
        }
    }
  return TRUE;
}

/* --kind values, repeated or comma-separated, as a NULL-terminated list
 * without duplicates. */
char **
parse_kinds (char   **given,
             GError **error)
{
  g_autoptr(GPtrArray) kinds = g_ptr_array_new_with_free_func (g_free);

  for (guint i = 0; given[i] != NULL; i++)
    {
      g_auto(GStrv) parts = g_strsplit (given[i], ",", -1);

      for (guint j = 0; parts[j] != NULL; j++)
        {
          char *kind = g_strstrip (parts[j]);
          EventKind k;

          if (!kind_from_string (kind, &k))
            {
              g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                           _("unknown kind “%s” (known: message, broadcast, publish, "
                             "subscribe, unsubscribe, reg, unreg)"), kind);
              return NULL;
            }
          if (!g_ptr_array_find_with_equal_func (kinds, kind, g_str_equal, NULL))
            g_ptr_array_add (kinds, g_strdup (kind));
        }
    }
  g_ptr_array_add (kinds, NULL);

  return (char **) g_ptr_array_free (g_steal_pointer (&kinds), FALSE);
}

/* Whether one of @masks asks for `.broker`'s own events by name. */
gboolean
masks_name_broker (char **masks)
{
  for (guint i = 0; masks != NULL && masks[i] != NULL; i++)
    if (g_str_has_prefix (masks[i], BROKER_NAME))
      return TRUE;
  return FALSE;
}

static GVariant *
strv_variant (char **strv)
{
  GVariantBuilder builder;

  g_variant_builder_init (&builder, G_VARIANT_TYPE ("av"));
  for (guint i = 0; strv[i] != NULL; i++)
    g_variant_builder_add (&builder, "v", g_variant_new_string (strv[i]));
  return g_variant_builder_end (&builder);
}

/* The params of monitor.start: a map with the filters that were given
 * (the lists that are not NULL; @max_payload when not negative). */
GVariant *
build_filters (char   **senders,
               char   **targets,
               char   **topics,
               char   **kinds,
               gint64   max_payload)
{
  GVariantBuilder builder;

  g_variant_builder_init (&builder, G_VARIANT_TYPE_VARDICT);
  if (senders != NULL)
    g_variant_builder_add (&builder, "{sv}", "sender", strv_variant (senders));
  if (targets != NULL)
    g_variant_builder_add (&builder, "{sv}", "target", strv_variant (targets));
  if (topics != NULL)
    g_variant_builder_add (&builder, "{sv}", "topic", strv_variant (topics));
  if (kinds != NULL)
    g_variant_builder_add (&builder, "{sv}", "kinds", strv_variant (kinds));
  if (max_payload >= 0)
    g_variant_builder_add (&builder, "{sv}", "max_payload", g_variant_new_uint64 (max_payload));
  return g_variant_builder_end (&builder);
}
