/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "elbus-types.h"

G_DEFINE_BOXED_TYPE (ElbusStats, elbus_stats, elbus_stats_copy, elbus_stats_free)

/**
 * elbus_stats_copy:
 * @stats: counters
 *
 * Copies @stats.
 *
 * Returns: (transfer full): a newly allocated copy
 *
 * Since: 1.0
 */
ElbusStats *
elbus_stats_copy (const ElbusStats *stats)
{
  g_return_val_if_fail (stats != NULL, NULL);

  return g_memdup2 (stats, sizeof *stats);
}

/**
 * elbus_stats_free:
 * @stats: counters allocated with [method@Elbus.Stats.copy]
 *
 * Frees @stats.
 *
 * Since: 1.0
 */
void
elbus_stats_free (ElbusStats *stats)
{
  g_free (stats);
}
