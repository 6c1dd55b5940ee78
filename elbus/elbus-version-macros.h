/* SPDX-License-Identifier: MIT */
#pragma once

#if !defined(__ELBUS_INSIDE__) && !defined(ELBUS_COMPILATION)
#error "Only <elbus/elbus.h> can be included directly."
#endif

#include <glib.h>

#ifndef _ELBUS_EXTERN
# define _ELBUS_EXTERN __attribute__((visibility("default"))) extern
#endif

#define ELBUS_VERSION_1_0 (G_ENCODE_VERSION (1, 0))

#ifndef ELBUS_VERSION_MIN_REQUIRED
# define ELBUS_VERSION_MIN_REQUIRED ELBUS_VERSION_1_0
#endif

#ifndef ELBUS_VERSION_MAX_ALLOWED
# define ELBUS_VERSION_MAX_ALLOWED ELBUS_VERSION_1_0
#endif

#define ELBUS_AVAILABLE_IN_ALL _ELBUS_EXTERN
#define ELBUS_AVAILABLE_IN_1_0 _ELBUS_EXTERN
