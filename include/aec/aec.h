// The whole public API of libaec.
#pragma once

#include <aec/clock.h>
#include <aec/control.h>
#include <aec/execution.h>
#include <aec/host_info.h>
#include <aec/key.h>
#include <aec/key_state.h>
#include <aec/lease.h>
#include <aec/open_store.h>
#include <aec/status.h>
#include <aec/store.h>
#include <aec/version.h>
