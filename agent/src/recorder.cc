#include "recorder.h"

#include <filesystem>

namespace instrumeter::agent {
namespace {

// The meter at one observation point: where a run stands or ended.
struct Point {
  Instant at;
  Counters counters;
  v1::InstrumentState state = v1::INSTRUMENT_STATE_UNSPECIFIED;
};

Point PointOf(const v1::Event& event) {
  Point p;
  p.at = FromProto(event.at());
  if (event.has_state_change()) {
    p.counters = FromProto(event.state_change().counters());
    p.state = event.state_change().state();
  } else if (event.has_heartbeat()) {
    p.counters = FromProto(event.heartbeat().counters());
    p.state = event.heartbeat().state();
  } else if (event.has_agent_stop()) {
    p.counters = FromProto(event.agent_stop().counters());
    p.state = event.agent_stop().state();
  }
  return p;
}

Point PointOf(const CheckpointData& data) { return Point{data.horizon, data.counters, data.state}; }

// Within one boot the monotonic clock orders instants; across boots only the wall clock can.
bool Later(const Instant& a, const Instant& b) {
  return a.SameBoot(b) ? a.monotonic_ms > b.monotonic_ms : a.wall_unix_ms > b.wall_unix_ms;
}

std::string Describe(const Point& p) {
  return FormatUtc(p.at.wall_unix_ms) + " (" + protocol::StateName(p.state) + ", powered " +
         std::to_string(p.counters.powered_ms) + " ms, in use " +
         std::to_string(p.counters.in_use_ms) + " ms)";
}

Status CheckToken(const std::string& what, const std::string& value, bool spaces_allowed,
                  bool empty_allowed) {
  if (value.empty() && !empty_allowed) return Status::InvalidArgument(what + " must not be empty");
  if (value.size() > 128) return Status::InvalidArgument(what + " is longer than 128 bytes");
  for (unsigned char c : value)
    if (c < 0x20 || c == 0x7f || (c == ' ' && !spaces_allowed))
      return Status::InvalidArgument(what + " must not contain control characters" +
                                     (spaces_allowed ? "" : " or spaces"));
  return Status::Ok();
}

}  // namespace

const char* AgentVersion() { return INSTRUMETER_AGENT_VERSION; }

Recorder::Recorder(const AgentConfig& config, const Clock* clock, AdapterSet* adapters, Logger log)
    : config_(config),
      clock_(clock),
      adapters_(adapters),
      log_(std::move(log)),
      combiner_(config.power_sources, config.use_sources),
      contradictions_(config.contradictions),
      meter_(config.debounce_ms) {}

Result<std::unique_ptr<Recorder>> Recorder::Open(const AgentConfig& config, const Clock* clock,
                                                 AdapterSet* adapters, Logger log,
                                                 const Outbox::Options& outbox_options) {
  std::error_code ec;
  std::filesystem::create_directories(config.state_dir, ec);
  if (ec)
    return Status::IoError("cannot create state_dir " + config.state_dir + ": " + ec.message());
  std::unique_ptr<Recorder> recorder(new Recorder(config, clock, adapters, std::move(log)));
  auto checkpoint = CheckpointFile::Open(config.CheckpointPath());
  if (!checkpoint.ok()) return checkpoint.status();
  recorder->checkpoint_ = std::move(*checkpoint);
  if (recorder->checkpoint_->last() && !std::filesystem::exists(config.OutboxPath()))
    return Status::FailedPrecondition(
        "state_dir " + config.state_dir +
        " has a checkpoint but no outbox.db: starting a new "
        "outbox would reuse sequence numbers the hub already holds. Restore outbox.db, or, to "
        "start this device over deliberately, remove the checkpoint too.");
  auto outbox = Outbox::Open(config.OutboxPath(), config.device_id, outbox_options);
  if (!outbox.ok()) return outbox.status();
  recorder->outbox_ = std::move(*outbox);
  recorder->session_ = recorder->outbox_->open_session();
  INSTRUMETER_RETURN_IF_ERROR(recorder->Recover());
  return recorder;
}

Status Recorder::Recover() {
  const std::optional<CheckpointData>& checkpoint = checkpoint_->last();
  const std::optional<v1::Event>& stored = outbox_->last_point();
  if (!checkpoint && !stored) return Status::Ok();  // the first run of this device
  if (stored && stored->has_agent_stop()) {
    // The previous run is closed as far as the hub can know. A checkpoint beyond it belongs to a
    // run whose events never reached the outbox: that time was never reported and is not counted.
    const Point end = PointOf(*stored);
    if (checkpoint && Later(checkpoint->horizon, end.at))
      log_->warn(
          "checkpoint is ahead of the last stored AgentStop; the unreported time after "
          "{} is not counted",
          Describe(end));
    meter_.Restore(end.counters, end.state);
    return Status::Ok();
  }
  if (!stored) {
    // Nothing of any run reached the outbox: there is no run for the hub to close.
    const Point end = PointOf(*checkpoint);
    log_->warn(
        "the outbox holds no event of the previous run; continuing the meter from the "
        "checkpoint at {}",
        Describe(end));
    meter_.Restore(end.counters, end.state);
    return Status::Ok();
  }
  Point end = PointOf(*stored);
  if (checkpoint && Later(checkpoint->horizon, end.at)) end = PointOf(*checkpoint);
  log_->warn("the previous run ended without an AgentStop (crash or power loss); closing it at {}",
             Describe(end));
  v1::Event event;
  ToProto(end.at, event.mutable_at());
  v1::AgentStop* stop = event.mutable_agent_stop();
  stop->set_clean(false);
  ToProto(end.counters, stop->mutable_counters());
  stop->set_state(end.state);
  Append(std::move(event));
  meter_.Restore(end.counters, end.state);
  return Status::Ok();
}

void Recorder::Append(v1::Event event) {
  pending_.push_back(std::move(event));
  FlushPending();
}

bool Recorder::FlushPending() {
  const size_t waiting = pending_.size();
  while (!pending_.empty()) {
    auto sequence = outbox_->Append(&pending_.front());
    if (!sequence.ok()) {
      uint64_t suppressed = 0;
      if (limiter_.Allow("append", clock_->MonotonicMs(), &suppressed))
        log_->error("{}; {} event(s) wait in memory and are retried{}", sequence.status().message(),
                    pending_.size(), SuppressedNote(suppressed));
      append_failing_ = true;
      return false;
    }
    pending_.pop_front();
  }
  if (append_failing_)
    log_->info("outbox writable again: stored {} event(s) that waited in memory", waiting);
  append_failing_ = false;
  return true;
}

void Recorder::Checkpoint() {
  // The checkpoint never runs ahead of the outbox: with events waiting in memory, a crash must
  // close the run at the last point the hub can also see.
  if (!meter_.started() || !pending_.empty()) return;
  Status st = checkpoint_->Write(
      {meter_.horizon(), meter_.counters(), meter_.state(), meter_.since().wall_unix_ms});
  uint64_t suppressed = 0;
  if (!st.ok() && limiter_.Allow("checkpoint", clock_->MonotonicMs(), &suppressed))
    log_->error("{}{}", st.message(), SuppressedNote(suppressed));
}

void Recorder::Poll() {
  const std::vector<Opinion> opinions = adapters_->Poll();
  verdict_ = combiner_.Combine(opinions);
  const Instant t = clock_->Now();
  const ContradictionWatcher::Changes changes = contradictions_.Update(opinions, t.monotonic_ms);
  for (const std::string& raised : changes.raised) log_->warn("sources disagree: {}", raised);
  for (const std::string& cleared : changes.cleared)
    log_->info("sources agree again (were: {})", cleared);
  if (std::optional<StateChangeRecord> change = meter_.Observe(t, verdict_.state)) {
    v1::Event event;
    ToProto(change->at, event.mutable_at());
    v1::StateChange* sc = event.mutable_state_change();
    sc->set_state(change->state);
    sc->set_previous_state(change->previous_state);
    for (const std::string& name : verdict_.sources_agreed) sc->add_sources_agreed(name);
    for (const std::string& name : verdict_.sources_disagreed) sc->add_sources_disagreed(name);
    sc->set_reason(verdict_.reason);
    sc->set_run_start(change->run_start);
    ToProto(change->counters, sc->mutable_counters());
    log_->info("state {} -> {}{}{}", protocol::StateName(change->previous_state),
               protocol::StateName(change->state), change->run_start ? " (run start)" : "",
               verdict_.reason.empty() ? "" : ": " + verdict_.reason);
    Append(std::move(event));
  } else {
    FlushPending();
  }
  Checkpoint();
}

std::vector<std::string> Recorder::Disagreements() const {
  return contradictions_.Active(clock_->MonotonicMs());
}

void Recorder::Heartbeat() {
  if (!meter_.started()) return;
  v1::Event event;
  ToProto(meter_.horizon(), event.mutable_at());
  v1::Heartbeat* hb = event.mutable_heartbeat();
  ToProto(meter_.counters(), hb->mutable_counters());
  hb->set_state(meter_.state());
  hb->set_outbox_depth(outbox_->depth() + pending_.size() + 1);
  hb->set_agent_version(AgentVersion());
  for (v1::AdapterHealth& health : adapters_->Health()) *hb->add_adapters() = std::move(health);
  hb->set_interval_ms(static_cast<uint32_t>(config_.heartbeat_interval_ms));
  const std::vector<std::string> disagreements = Disagreements();
  hb->set_disagreement(!disagreements.empty());
  for (const std::string& d : disagreements) hb->add_disagreements(d);
  Append(std::move(event));
  Checkpoint();
}

Status Recorder::StartSession(const std::string& order_id, const std::string& operator_name) {
  INSTRUMETER_RETURN_IF_ERROR(CheckToken("order id", order_id, false, false));
  INSTRUMETER_RETURN_IF_ERROR(CheckToken("operator name", operator_name, true, true));
  if (session_)
    return Status::FailedPrecondition("a session for order '" + session_->order_id +
                                      "' is open; stop it first");
  v1::Event event;
  ToProto(clock_->Now(), event.mutable_at());
  v1::SessionMark* mark = event.mutable_session_mark();
  mark->set_kind(v1::SessionMark::KIND_START);
  mark->set_order_id(order_id);
  mark->set_operator_name(operator_name);
  session_ = OpenSession{order_id, operator_name};
  log_->info("session start: order '{}'{}", order_id,
             operator_name.empty() ? "" : ", operator '" + operator_name + "'");
  Append(std::move(event));
  Checkpoint();
  return Status::Ok();
}

Status Recorder::StopSession() {
  if (!session_) return Status::FailedPrecondition("no session is open");
  v1::Event event;
  ToProto(clock_->Now(), event.mutable_at());
  v1::SessionMark* mark = event.mutable_session_mark();
  mark->set_kind(v1::SessionMark::KIND_STOP);
  mark->set_order_id(session_->order_id);
  mark->set_operator_name(session_->operator_name);
  log_->info("session stop: order '{}'", session_->order_id);
  session_.reset();
  Append(std::move(event));
  Checkpoint();
  return Status::Ok();
}

Status Recorder::Stop() {
  if (meter_.started()) {
    v1::Event event;
    ToProto(meter_.horizon(), event.mutable_at());
    v1::AgentStop* stop = event.mutable_agent_stop();
    stop->set_clean(true);
    ToProto(meter_.counters(), stop->mutable_counters());
    stop->set_state(meter_.state());
    Append(std::move(event));
    Checkpoint();
  } else {
    FlushPending();
  }
  if (!pending_.empty())
    return Status::ResourceExhausted(std::to_string(pending_.size()) +
                                     " event(s) could not be stored in " + outbox_->path() +
                                     "; the next start closes this run from the checkpoint");
  return Status::Ok();
}

}  // namespace instrumeter::agent
