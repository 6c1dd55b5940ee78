/* SPDX-License-Identifier: MIT */
/* Built into the tests only under ThreadSanitizer (-Db_sanitize=thread):
 * GLib's locks and atomic reference counts, as seen by TSan. GLib 2.74
 * implements GMutex and GCond with futexes and atomics in uninstrumented
 * code, so TSan sees none of the order they establish and reports every
 * access that they protect as a race. These wrappers interpose the calls
 * that the tests, the library compiled into them, GObject and GIO make
 * (through the PLT), call GLib's own, and tell TSan what they did
 * (__tsan_acquire() after taking, __tsan_release() before letting go).
 * Calls inside libglib itself (its main context's lock, GSlice) are not
 * seen: tests/tsan.supp says which reports that leaves, and why. */
#include "config.h"

#include <dlfcn.h>
#include <glib.h>

void __tsan_acquire (void *addr);
void __tsan_release (void *addr);

typedef void     (*MutexFunc)    (GMutex *mutex);
typedef gboolean (*TryLockFunc)  (GMutex *mutex);
typedef void     (*RecMutexFunc) (GRecMutex *mutex);
typedef void     (*WaitFunc)     (GCond *cond, GMutex *mutex);
typedef gboolean (*WaitUntilFunc) (GCond *cond, GMutex *mutex, gint64 end_time);

/* GLib's own function of that name, looked up once (threads that race
 * to look it up store the same value) */
#define REAL(name, type)                                              \
  static type real_fn = NULL;                                         \
  type real = __atomic_load_n (&real_fn, __ATOMIC_ACQUIRE);           \
  if (G_UNLIKELY (real == NULL))                                      \
    {                                                                 \
      real = (type) dlsym (RTLD_NEXT, name);                          \
      __atomic_store_n (&real_fn, real, __ATOMIC_RELEASE);            \
    }

void
g_mutex_lock (GMutex *mutex)
{
  REAL ("g_mutex_lock", MutexFunc);
  real (mutex);
  __tsan_acquire (mutex);
}

gboolean
g_mutex_trylock (GMutex *mutex)
{
  REAL ("g_mutex_trylock", TryLockFunc);
  if (!real (mutex))
    return FALSE;
  __tsan_acquire (mutex);
  return TRUE;
}

void
g_mutex_unlock (GMutex *mutex)
{
  REAL ("g_mutex_unlock", MutexFunc);
  __tsan_release (mutex);
  real (mutex);
}

void
g_rec_mutex_lock (GRecMutex *mutex)
{
  REAL ("g_rec_mutex_lock", RecMutexFunc);
  real (mutex);
  __tsan_acquire (mutex);
}

void
g_rec_mutex_unlock (GRecMutex *mutex)
{
  REAL ("g_rec_mutex_unlock", RecMutexFunc);
  __tsan_release (mutex);
  real (mutex);
}

/* the mutex is let go while waiting, and taken again */
void
g_cond_wait (GCond  *cond,
             GMutex *mutex)
{
  REAL ("g_cond_wait", WaitFunc);
  __tsan_release (mutex);
  real (cond, mutex);
  __tsan_acquire (mutex);
}

gboolean
g_cond_wait_until (GCond  *cond,
                   GMutex *mutex,
                   gint64  end_time)
{
  gboolean signalled;

  REAL ("g_cond_wait_until", WaitUntilFunc);
  __tsan_release (mutex);
  signalled = real (cond, mutex, end_time);
  __tsan_acquire (mutex);
  return signalled;
}

/* instrumented atomics instead of libglib's: the last unref orders after
 * every earlier one, so what it frees was done with */
void
g_atomic_ref_count_inc (gatomicrefcount *arc)
{
  __atomic_fetch_add (arc, 1, __ATOMIC_RELAXED);
}

gboolean
g_atomic_ref_count_dec (gatomicrefcount *arc)
{
  return __atomic_sub_fetch (arc, 1, __ATOMIC_ACQ_REL) == 0;
}

gboolean
g_atomic_ref_count_compare (gatomicrefcount *arc,
                            gint             val)
{
  return __atomic_load_n (arc, __ATOMIC_ACQUIRE) == val;
}
