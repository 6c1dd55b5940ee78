/* SPDX-License-Identifier: MIT */
/* Helpers shared by the benchmark programs. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The elbusd to spawn: $ELBUSD, else ../../tools/elbusd next to this
 * program, else elbusd on $PATH. */
char     *elbus_bench_default_elbusd (void);
/* A process's user and system CPU seconds so far, from /proc. */
gboolean  elbus_bench_read_cpu       (GPid     pid,
                                      double  *utime,
                                      double  *stime);

G_END_DECLS
