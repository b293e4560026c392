// What the ingest core tells the rest of the hub after each commit: one LiveChange per device the
// commit touched (new events, a status message, or both). The live API (live_feed.h) is the
// observer; the ingest core works without one (tests pass nullptr).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hub/derivation.h"
#include "hub/store.h"

namespace instrumeter::hub {

// One adapter's health, as the agent's newest heartbeat reported it.
struct AdapterStatus {
  std::string name;
  std::string type;
  bool ok = true;
  std::string error;     // last error, when not ok
  std::string identity;  // e.g. an instrument's *IDN? reply
  uint64_t errors_total = 0;
  friend bool operator==(const AdapterStatus&, const AdapterStatus&) = default;
};

// The agent's own view of its health, from one heartbeat.
struct AgentHealth {
  uint64_t seq = 0;  // the heartbeat's sequence: a newer one replaces an older one, never back
  int64_t at_wall_unix_ms = 0;
  uint32_t heartbeat_interval_ms = 0;
  bool disagreement = false;  // the agent's configured sources contradict each other
  std::vector<AdapterStatus> adapters;
  friend bool operator==(const AgentHealth&, const AgentHealth&) = default;
};

// A device as one commit left it: exactly what that commit wrote.
struct LiveChange {
  std::string device_id;
  uint64_t contiguous_seq = 0;
  uint64_t events_stored = 0;
  LiveState live;
  // Interval rows the commit inserted or rewrote, identified by (kind, start_seq).
  std::vector<Interval> intervals;
  // From the newest heartbeat among the commit's new events, if it carried one.
  std::optional<AgentHealth> health;
};

// Reads the agent health carried by a Heartbeat event.
AgentHealth HealthOf(const v1::Event& heartbeat_event);

class CommitObserver {
 public:
  virtual ~CommitObserver() = default;
  // Called on the ingest thread right after a commit succeeded and its acks were sent, with the
  // devices in the order they were committed. Must return quickly and never block: it runs
  // between ingest batches.
  virtual void OnCommitted(std::vector<LiveChange> changes) = 0;
};

}  // namespace instrumeter::hub
