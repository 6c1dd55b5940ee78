/* SPDX-License-Identifier: MIT */
/* What the fuzz targets share: see fuzz-util.h. */
#include "config.h"

#include "fuzz-util.h"

static GLogLevelFlags fatal_levels;

static GLogWriterOutput
log_writer (GLogLevelFlags   level,
            const GLogField *fields,
            gsize            n_fields,
            gpointer         user_data)
{
  if (level & fatal_levels)
    {
      g_log_writer_standard_streams (level, fields, n_fields, user_data);
      abort ();
    }
  return G_LOG_WRITER_HANDLED;
}

void
fuzz_log_init (GLogLevelFlags fatal)
{
  fatal_levels = fatal;
  g_log_set_writer_func (log_writer, NULL, NULL);
}
