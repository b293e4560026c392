// The running hub: the MQTT bridge and the ingest core on one thread, and the HTTP side
// ([http]: live API, stream, metrics, health, dashboard) on its own, until SIGTERM or SIGINT.
#pragma once

#include "common/status.h"
#include "hub/hub_config.h"

namespace instrumeter::hub {

// Opens the store, starts the HTTP side when [http] enabled (a port already taken is logged as an
// alarm and ingest goes on without it), connects to the broker (reconnecting with backoff while
// it is away) and ingests until SIGTERM or SIGINT arrives; then commits the current batch, sends
// its acks, stops the HTTP side and returns OK. Must be called before any other thread is started
// in the process: it blocks SIGTERM and SIGINT so that only its own loop receives them (through a
// signalfd); the http thread inherits the mask. Returns an error when the store cannot be opened,
// [http] listen names no usable address, or the final commit fails.
Status RunHub(const HubConfig& config);

}  // namespace instrumeter::hub
