// The configured adapter instances: made and validated (Init) at start-up, then polled together.
// A failing adapter never stops the agent: its Start and Poll are retried at the next poll, and
// meanwhile it has no opinion (the combiner treats it as an error with the reason).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "adapters/adapter.h"
#include "agent/agent_config.h"
#include "combiner.h"
#include "log.h"

namespace instrumeter::agent {

// One adapter's result of one poll.
struct AdapterReading {
  std::string name;
  std::string type;
  Status status;  // Start or Poll failure
  std::vector<adapters::Observation> observations;
};

// Lifecycle: Create (Init every adapter), then Poll repeatedly, then Stop; all on the agent's loop
// thread. The clock and the configuration must outlive the set.
class AdapterSet {
 public:
  // Instantiates and initialises every [[adapter]] of `config`. A configuration error names the
  // file, the line and the adapter: "agent.toml:14:1: [[adapter]] 'power': ...".
  static Result<std::unique_ptr<AdapterSet>> Create(const AgentConfig& config, const Clock* clock,
                                                    Logger log);
  ~AdapterSet();

  // Polls every adapter once (starting those not started yet) and returns each one's opinion,
  // in configuration order; with `readings`, also everything each one reported.
  std::vector<Opinion> Poll(std::vector<AdapterReading>* readings = nullptr);
  // Health as of the last Poll, for heartbeats and `status`.
  std::vector<v1::AdapterHealth> Health() const;
  // Stops every started adapter (also done by the destructor).
  void Stop();

 private:
  struct Instance {
    std::string name;
    std::string type;
    std::unique_ptr<adapters::Adapter> adapter;
    bool started = false;
    std::string error;  // of the last poll; empty when it read fine
    std::string identity;
    uint64_t errors_total = 0;
    bool polled = false;
  };
  explicit AdapterSet(Logger log) : log_(std::move(log)) {}
  void Note(Instance& instance, const std::string& error);

  Logger log_;
  std::vector<Instance> instances_;
};

}  // namespace instrumeter::agent
