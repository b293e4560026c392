// The agent's measuring core, without any networking: polls the adapters, combines their evidence,
// runs the state machine and meter, and turns what happens into events in the durable outbox,
// checkpointing the meter as it goes. It also recovers a crashed run at open.
//
// Events are stored in the order they happen. When the outbox cannot be written (a full disk)
// they wait in memory, in order, and are stored before any newer event once it can; meanwhile the
// agent keeps measuring and the checkpoint is not advanced past what the outbox holds, so a crash
// in that state loses the unstored time instead of reporting time the hub can never see.
//
// Lifecycle: Open, then Poll / Heartbeat / session marks from the agent's loop thread, then Stop.
// Destroying a Recorder without Stop is what a crash looks like to the next Open.
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "adapter_set.h"
#include "agent/agent_config.h"
#include "checkpoint.h"
#include "combiner.h"
#include "contradiction.h"
#include "common/clock.h"
#include "log.h"
#include "outbox.h"
#include "state_meter.h"

namespace instrumeter::agent {

const char* AgentVersion();

class Recorder {
 public:
  // Locks state_dir (through the checkpoint), opens the outbox (creating both on the first run)
  // and, if the previous run ended without an AgentStop, appends AgentStop{clean=false} at the
  // later of the checkpoint's and the outbox's last instant. Refuses a checkpoint without an
  // outbox: the sequences would start again at 1. `adapters`, `clock` and `config` must outlive
  // the recorder.
  static Result<std::unique_ptr<Recorder>> Open(const AgentConfig& config, const Clock* clock,
                                                AdapterSet* adapters, Logger log,
                                                const Outbox::Options& outbox_options = {});

  // One poll: every adapter, the combined verdict, the meter; appends the StateChange it
  // confirms (the first poll of a run always confirms one, with run_start), then checkpoints.
  void Poll();
  // Appends a Heartbeat at the horizon. Nothing before the first poll.
  void Heartbeat();
  // Appends a SessionMark at now. FailedPrecondition when a session is already open (start) or
  // none is (stop); InvalidArgument for an unusable order id or operator name.
  Status StartSession(const std::string& order_id, const std::string& operator_name);
  Status StopSession();
  // Appends AgentStop{clean=true} at the horizon and checkpoints. Returns an error if that event
  // (or an earlier one) could not be stored; the next start then reconstructs the stop.
  Status Stop();
  // Retries storing events that wait in memory. True when none wait.
  bool FlushPending();

  Outbox& outbox() { return *outbox_; }
  const Outbox& outbox() const { return *outbox_; }
  const StateMeter& meter() const { return meter_; }
  const Verdict& verdict() const { return verdict_; }
  // Configured source pairs that have contradicted each other for too long.
  std::vector<std::string> Disagreements() const;
  size_t pending() const { return pending_.size(); }
  const std::optional<OpenSession>& open_session() const { return session_; }

 private:
  Recorder(const AgentConfig& config, const Clock* clock, AdapterSet* adapters, Logger log);
  Status Recover();
  void Append(v1::Event event);
  void Checkpoint();

  const AgentConfig& config_;
  const Clock* clock_;
  AdapterSet* adapters_;
  Logger log_;
  Combiner combiner_;
  ContradictionWatcher contradictions_;
  StateMeter meter_;
  std::unique_ptr<CheckpointFile> checkpoint_;
  std::unique_ptr<Outbox> outbox_;
  std::deque<v1::Event> pending_;
  bool append_failing_ = false;
  Verdict verdict_;
  std::optional<OpenSession> session_;  // including marks still waiting in memory
  LogLimiter limiter_{60'000};
};

}  // namespace instrumeter::agent
