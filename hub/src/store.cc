#include "hub/store.h"

namespace instrumeter::hub {

EventRow MakeEventRow(const v1::Event& event, std::string body, int64_t received_unix_ms) {
  EventRow row;
  row.seq = event.sequence();
  row.kind = static_cast<int>(event.body_case());
  row.boot_id = event.at().boot_id();
  row.monotonic_ms = event.at().monotonic_ms();
  row.wall_unix_ms = event.at().wall_unix_ms();
  row.body = std::move(body);
  row.received_unix_ms = received_unix_ms;
  switch (event.body_case()) {
    case v1::Event::kStateChange:
      row.state = event.state_change().state();
      row.sources_disagree = !event.state_change().sources_disagreed().empty();
      break;
    case v1::Event::kHeartbeat:
      row.state = event.heartbeat().state();
      // Depth 1 is the heartbeat alone; 0 means the sender does not say, so freshness is unknown.
      row.fresh_heartbeat = event.heartbeat().outbox_depth() == 1;
      row.sources_disagree = event.heartbeat().disagreement();
      break;
    case v1::Event::kAgentStop:
      row.state = event.agent_stop().state();
      break;
    case v1::Event::kSessionMark:
    case v1::Event::BODY_NOT_SET:
      break;
  }
  if (const v1::Counters* meter = MeterOf(event)) {
    row.powered_ms = meter->powered_ms();
    row.in_use_ms = meter->in_use_ms();
  }
  return row;
}

bool IsBillable(const Billability& billability, const Interval& interval) {
  if (interval.end_seq > billability.billable_through) return false;
  for (const SeqRange& r : billability.unproven)
    if (interval.start_seq <= r.last && r.first <= interval.end_seq) return false;
  return true;
}

}  // namespace instrumeter::hub
