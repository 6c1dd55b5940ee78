/* SPDX-License-Identifier: MIT */
/*
 * Runs a libFuzzer target's entry point, built without libFuzzer, on
 * files: every file given, and every file in each directory given (not
 * recursively, in name order). Each input is one TAP test; a target
 * aborts on what it finds, which fails the run. The normal test suite
 * replays tests/fuzz/regressions/TARGET/ this way (tests/meson.build).
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv) __attribute__ ((weak));

static guint n_run;

static void
run_file (const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *data = NULL;
  gsize len;

  if (!g_file_get_contents (path, &data, &len, &error))
    {
      printf ("not ok %u - %s: %s\n", ++n_run, path, error->message);
      exit (1);
    }
  LLVMFuzzerTestOneInput ((const uint8_t *) data, len);
  printf ("ok %u - %s\n", ++n_run, path);
  fflush (stdout);
}

static int
compare_names (gconstpointer a,
               gconstpointer b)
{
  return strcmp (*(const char * const *) a, *(const char * const *) b);
}

int
main (int    argc,
      char **argv)
{
  if (LLVMFuzzerInitialize != NULL)
    LLVMFuzzerInitialize (&argc, &argv);

  for (int i = 1; i < argc; i++)
    {
      g_autoptr(GDir) dir = NULL;
      g_autoptr(GPtrArray) files = NULL;
      const char *name;

      if (!g_file_test (argv[i], G_FILE_TEST_IS_DIR))
        {
          run_file (argv[i]);
          continue;
        }
      dir = g_dir_open (argv[i], 0, NULL);
      files = g_ptr_array_new_with_free_func (g_free);
      while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
        g_ptr_array_add (files, g_build_filename (argv[i], name, NULL));
      g_ptr_array_sort (files, compare_names);
      for (guint j = 0; j < files->len; j++)
        run_file (g_ptr_array_index (files, j));
    }

  printf ("1..%u\n", n_run);
  return 0;
}
