#include "hub/commit_observer.h"

namespace instrumeter::hub {

AgentHealth HealthOf(const v1::Event& heartbeat_event) {
  const v1::Heartbeat& beat = heartbeat_event.heartbeat();
  AgentHealth health;
  health.seq = heartbeat_event.sequence();
  health.at_wall_unix_ms = heartbeat_event.at().wall_unix_ms();
  health.heartbeat_interval_ms = beat.interval_ms();
  health.disagreement = beat.disagreement();
  for (const v1::AdapterHealth& a : beat.adapters())
    health.adapters.push_back(
        {a.name(), a.type(), a.ok(), a.error(), a.identity(), a.errors_total()});
  return health;
}

}  // namespace instrumeter::hub
