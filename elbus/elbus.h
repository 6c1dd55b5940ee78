/* SPDX-License-Identifier: MIT */
#pragma once

#define __ELBUS_INSIDE__

#include <elbus/elbus-version.h>
#include <elbus/elbus-version-macros.h>
#include <elbus/elbus-types.h>
#include <elbus/elbus-enum-types.h>
#include <elbus/elbus-error.h>
#include <elbus/elbus-client-policy.h>
#include <elbus/elbus-broker.h>
#include <elbus/elbus-client.h>
#include <elbus/elbus-frame.h>
#include <elbus/elbus-msgpack.h>
#include <elbus/elbus-mqtt-bridge.h>
#include <elbus/elbus-rpc-invocation.h>
#include <elbus/elbus-rpc-peer.h>

#undef __ELBUS_INSIDE__
