// The agent's run loop: one thread, poll() over the MQTT link's wake fd, the control socket and a
// signalfd, with timers for polls, heartbeats, reconnects and ack timeouts.
#pragma once

#include "agent/agent_config.h"
#include "log.h"
#include "protocol/chain.h"

namespace instrumeter::agent {

// Runs the agent until SIGTERM or SIGINT, then stops cleanly: AgentStop at the horizon, a
// checkpoint, up to shutdown_flush_ms waiting for the hub's acks, the retained offline status, a
// clean disconnect. Returns the process exit code: 0 after a clean stop, 1 when start-up or the
// final AgentStop failed (2 is left to the caller for configuration errors).
// With `signing_key` (owned by the caller) envelopes are signed (protocol/README.md,
// "Signing"); without it the agent runs in development mode.
// Must be called before any other thread exists: it blocks the stop signals process-wide.
int RunDaemon(const AgentConfig& config, Logger log, const protocol::SigningKey* signing_key);

}  // namespace instrumeter::agent
