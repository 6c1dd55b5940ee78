/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <string.h>
#include <unistd.h>

#include "elbus-bench-util.h"

gboolean
elbus_bench_read_cpu (GPid     pid,
                      double  *utime,
                      double  *stime)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", pid);
  g_autofree char *contents = NULL;
  g_auto(GStrv) fields = NULL;
  const char *p;
  double tick = sysconf (_SC_CLK_TCK);

  if (pid <= 0 || !g_file_get_contents (path, &contents, NULL, NULL))
    return FALSE;
  p = strrchr (contents, ')');
  if (p == NULL)
    return FALSE;
  /* after "pid (comm)", fields start at 3 (state); utime is 14, stime 15 */
  fields = g_strsplit (p + 2, " ", -1);
  if (g_strv_length (fields) < 13)
    return FALSE;
  *utime = g_ascii_strtoull (fields[11], NULL, 10) / tick;
  *stime = g_ascii_strtoull (fields[12], NULL, 10) / tick;
  return TRUE;
}

char *
elbus_bench_default_elbusd (void)
{
  g_autofree char *self = g_file_read_link ("/proc/self/exe", NULL);
  g_autofree char *dir = NULL;

  if (g_getenv ("ELBUSD") != NULL)
    return g_strdup (g_getenv ("ELBUSD"));
  if (self == NULL)
    return g_strdup ("elbusd");
  dir = g_path_get_dirname (self);
  return g_build_filename (dir, "..", "..", "tools", "elbusd", NULL);
}
