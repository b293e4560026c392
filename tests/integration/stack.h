// The whole metered path on one machine, for end-to-end tests: a real Mosquitto, the real
// instrumeter-hub binary and real instrumeter-agent binaries with simulated instruments, each in
// its own process so that any of them can be SIGKILLed and restarted.
//
// Verification reads what users rely on: the hub's SQLite database (events and derived
// intervals), each agent's outbox, and the simulator's ground truth.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "adapters/simulator/ground_truth.h"
#include "test_support/mosquitto.h"
#include "test_support/process.h"

namespace instrumeter::testing {

// CLOCK_MONOTONIC in ms: the same clock the agents measure on.
int64_t MonotonicNowMs();

class Stack {
 public:
  struct Options {
    // Appended to the broker's mosquitto.conf (e.g. "max_queued_messages 50").
    std::string broker_extra_config;
    // The hub's database; empty: hub.db in the stack's folder (a fault test may put it on a
    // small filesystem of its own).
    std::string hub_db;
  };

  struct AgentOptions {
    uint64_t seed = 1;  // the simulator's random schedule
    int64_t poll_interval_ms = 100;
    int64_t heartbeat_interval_ms = 1000;
    int64_t min_period_ms = 1500;
    int64_t max_period_ms = 6000;
    // Where the agent connects; empty: the broker itself (a test may put a proxy between).
    std::string broker_url;
    int64_t keepalive_s = 30;
    int64_t reconnect_min_ms = 200;
    int64_t reconnect_max_ms = 2000;
    int64_t ack_timeout_ms = 3000;
    int64_t max_envelopes_in_flight = 8;
    // The agent's state_dir; empty: a folder beside its config.
    std::string state_dir;
    // Extra environment for every start of this agent ("NAME=value": LD_PRELOAD, faketime).
    std::vector<std::string> env;
  };

  // What the hub stored and derived for one device.
  struct HubView {
    int64_t events = 0;        // rows stored
    int64_t distinct_seq = 0;  // distinct sequences among them
    int64_t max_seq = 0;
    int64_t contiguous_seq = 0;  // the hub's cursor
    int64_t powered_ms = 0;      // from state intervals
    int64_t in_use_ms = 0;
    std::vector<int64_t> gap_ms;           // one per gap interval, in order
    int counter_mismatches = 0;            // intervals flagged counter_mismatch
    bool stored_in_sequence_order = true;  // no event received before a lower sequence
  };

  struct AgentRecord {
    std::string id;
    std::string dir;
    std::string state_dir;
    std::string config_path;
    ChildProcess process;
    std::vector<int64_t> kills_mono_ms;     // when each SIGKILL hit (test's clock)
    std::vector<int64_t> restarts_mono_ms;  // when each restart began
  };

  static Result<std::unique_ptr<Stack>> Start(const Options& options);
  static Result<std::unique_ptr<Stack>> Start() { return Start(Options{}); }
  ~Stack();

  TestBroker& broker() { return *broker_; }
  const std::string& dir() const { return dir_.path(); }
  std::string hub_config() const { return dir_.File("hub.toml"); }
  const std::string& hub_db() const { return hub_db_; }
  std::string hub_log() const { return dir_.File("hub.log"); }

  // Registers the instrument at the hub, writes the agent's config and starts it.
  Status AddAgent(const std::string& id, const AgentOptions& options);
  // `env` adds "NAME=value" entries for this start only (e.g. INSTRUMETER_FAULT=...).
  Status StartHub(const std::vector<std::string>& env = {});
  void KillHub();
  void StopHub();
  bool HubRunning() { return hub_.Running(); }
  // Waits for a hub that crashes by itself (a fault hook); its exit code, or -1 on timeout.
  int WaitHubExit(std::chrono::milliseconds timeout) { return hub_.Wait(timeout); }
  void KillBroker() { broker_->Kill(); }
  Status RestartBroker() { return broker_->Restart(); }
  // `env` adds "NAME=value" entries for this start only, after AgentOptions::env.
  Status StartAgent(const std::string& id, const std::vector<std::string>& env = {});
  void KillAgent(const std::string& id);
  // Waits for an agent that crashes by itself (a fault hook) and records the moment it was seen
  // gone as a kill. Its exit code, or -1 on timeout (it is then left running).
  int WaitAgentCrash(const std::string& id, std::chrono::milliseconds timeout);
  // SIGTERM: the agent closes its run and flushes; returns its exit code.
  int StopAgent(const std::string& id);
  AgentRecord& agent(const std::string& id) { return agents_.at(id); }
  const AgentOptions& agent_options(const std::string& id) const { return options_.at(id); }
  std::vector<std::string> agent_ids() const;

  Result<HubView> ReadHub(const std::string& id) const;
  // The agent's outbox: the highest sequence it ever assigned, and the events not yet acked.
  Result<std::pair<int64_t, int64_t>> ReadOutbox(const std::string& id) const;
  // Ground truth of the runs the agent observed; a killed run ends at its recorded kill time.
  Result<adapters::simulator::TruthTotals> Truth(const std::string& id) const;
  // Time the agent was not running between its first start and its final stop.
  std::vector<int64_t> Downtimes(const std::string& id) const;

  // Runs `instrumeter-hub <args> --config hub.toml`, returns its exit code and output.
  int Hub(const std::vector<std::string>& args, std::string* output) const;

 private:
  Stack() = default;

  TempDir dir_;
  std::string hub_db_;
  std::unique_ptr<TestBroker> broker_;
  std::map<std::string, AgentOptions> options_;
  ChildProcess hub_;
  std::map<std::string, AgentRecord> agents_;
};

}  // namespace instrumeter::testing
