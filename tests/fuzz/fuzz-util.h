/* SPDX-License-Identifier: MIT */
/*
 * What the fuzz targets share: a check that aborts with what failed, and a
 * log writer for which some levels are findings.
 */
#pragma once

#include <stdio.h>
#include <stdlib.h>

#include <glib.h>

G_BEGIN_DECLS

#define FUZZ_CHECK(cond) \
  do { if (!(cond)) { fprintf (stderr, "failed: %s\n", #cond); abort (); } } while (0)

/* Messages at @fatal levels are printed and abort (a finding); the others
 * are dropped. */
void fuzz_log_init (GLogLevelFlags fatal);

G_END_DECLS
