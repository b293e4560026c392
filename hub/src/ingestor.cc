#include "hub/ingestor.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <deque>

#include "protocol/topics.h"
#include "rate_limited_log.h"

namespace instrumeter::hub {
namespace {

// Bounds the memory an attacker can claim by publishing under many made-up device ids.
constexpr size_t kMaxRememberedMisses = 10'000;
// A conflicting-duplicate alarm names at most this many sequences in one line.
constexpr size_t kMaxSeqsInAlarm = 10;

// Adds `seq` to disjoint inclusive ranges (first -> last), merging with its neighbours.
void AddToRanges(std::map<uint64_t, uint64_t>* ranges, uint64_t seq) {
  uint64_t first = seq;
  uint64_t last = seq;
  auto next = ranges->upper_bound(seq);
  if (next != ranges->begin()) {
    auto prev = std::prev(next);
    if (prev->second >= seq) return;  // already inside
    if (prev->second + 1 == seq) {
      first = prev->first;
      ranges->erase(prev);
    }
  }
  if (next != ranges->end() && next->first == seq + 1) {
    last = next->second;
    ranges->erase(next);
  }
  (*ranges)[first] = last;
}

// The live view after a batch: state from derivation, counters and agent details from the newest
// observation points (`new_events`, by sequence).
void UpdateLive(const DerivationState& derivation,
                const std::map<uint64_t, const v1::Event*>& new_events, LiveState* live) {
  if (derivation.run_open) {
    live->state = derivation.state;
    live->state_since_wall_ms = derivation.open_interval->start_wall_unix_ms;
  } else {
    live->state = v1::INSTRUMENT_STATE_UNSPECIFIED;
    live->state_since_wall_ms = derivation.last.has_value() ? derivation.last->at.wall_unix_ms : 0;
  }
  for (const auto& [seq, event] : new_events) {
    const v1::Counters* meter = MeterOf(*event);
    if (meter == nullptr || seq <= live->counters_seq) continue;
    live->counters_seq = seq;
    live->powered_ms = meter->powered_ms();
    live->in_use_ms = meter->in_use_ms();
    if (event->has_heartbeat()) {
      live->agent_version = event->heartbeat().agent_version();
      live->outbox_depth = event->heartbeat().outbox_depth();
    }
  }
}

#ifdef INSTRUMETER_FAULT_HOOKS
uint64_t CrashAfterCommitFromEnv() {
  const char* fault = std::getenv("INSTRUMETER_FAULT");
  const std::string_view prefix = "crash_after_commit:";
  if (fault == nullptr || std::string_view(fault).substr(0, prefix.size()) != prefix) return 0;
  return std::strtoull(fault + prefix.size(), nullptr, 10);
}
#endif

}  // namespace

Ingestor::Ingestor(Store* store, Downlink* downlink, const Clock* clock, HubMetrics* metrics,
                   const IngestOptions& options, CommitObserver* observer)
    : store_(store),
      downlink_(downlink),
      clock_(clock),
      metrics_(metrics),
      options_(options),
      observer_(observer),
      log_(std::make_unique<RateLimitedLog>(clock)),
      retry_backoff_(options.commit_retry_min_ms, options.commit_retry_max_ms) {
#ifdef INSTRUMETER_FAULT_HOOKS
  crash_after_commit_ = CrashAfterCommitFromEnv();
#endif
}

Ingestor::~Ingestor() = default;

Result<std::unique_ptr<Ingestor>> Ingestor::Create(Store* store, Downlink* downlink,
                                                   const Clock* clock, HubMetrics* metrics,
                                                   const IngestOptions& options,
                                                   CommitObserver* observer) {
  std::unique_ptr<Ingestor> ingestor(
      new Ingestor(store, downlink, clock, metrics, options, observer));
  Result<std::vector<LoadedDevice>> devices = store->LoadDevices();
  if (!devices.ok()) return devices.status().WithContext("loading device cursors");
  for (LoadedDevice& loaded : *devices) {
    DeviceState state;
    state.record = std::move(loaded.record);
    for (const SeqRange& r : loaded.stored_above) state.above[r.first] = r.last;
    const std::string id = state.record.device_id;
    ingestor->devices_.emplace(id, std::move(state));
  }
  spdlog::info("ingest: {} devices loaded", ingestor->devices_.size());
  return ingestor;
}

Status Ingestor::last_error() const {
  std::lock_guard<std::mutex> lock(error_mu_);
  return last_error_;
}

size_t Ingestor::DevicesOnline() const {
  return static_cast<size_t>(std::count_if(devices_.begin(), devices_.end(), [](const auto& d) {
    return d.second.record.live.online.value_or(false);
  }));
}

void Ingestor::OnMessage(std::string_view topic, std::string_view payload,
                         int64_t received_unix_ms) {
  Result<protocol::DeviceTopic> parsed = protocol::ParseTopic(topic);
  if (!parsed.ok() || (parsed->channel != protocol::Channel::kUp &&
                       parsed->channel != protocol::Channel::kStatus)) {
    ++metrics_->rejected.malformed;
    log_->Log(spdlog::level::warn, "malformed",
              "ingest: dropped a message on unexpected topic '" + std::string(topic) + "'");
    return;
  }
  if (parsed->channel == protocol::Channel::kUp) {
    HandleUp(parsed->device_id, payload, received_unix_ms);
  } else {
    HandleStatus(parsed->device_id, payload, received_unix_ms);
  }
  if (pending_events_ >= options_.max_batch_events && !retry_at_mono_ms_.has_value())
    (void)Commit();
}

bool Ingestor::Registered(const std::string& device_id) {
  if (options_.accept_unregistered_devices || registered_.count(device_id) > 0) return true;
  const int64_t now = clock_->MonotonicMs();
  auto miss = unregistered_checked_mono_ms_.find(device_id);
  if (miss != unregistered_checked_mono_ms_.end() &&
      now - miss->second < options_.registry_recheck_ms)
    return false;
  Result<bool> exists = store_->InstrumentExists(device_id);
  if (!exists.ok()) {
    log_->Log(spdlog::level::err, "registry",
              "ingest: cannot look up device '" + device_id + "': " + exists.status().ToString());
    return false;
  }
  if (*exists) {
    registered_.insert(device_id);
    unregistered_checked_mono_ms_.erase(device_id);
    return true;
  }
  if (unregistered_checked_mono_ms_.size() >= kMaxRememberedMisses)
    unregistered_checked_mono_ms_.clear();
  unregistered_checked_mono_ms_[device_id] = now;
  return false;
}

bool Ingestor::HasStored(const DeviceState& state, uint64_t seq) const {
  if (seq <= state.record.contiguous_seq) return true;
  auto it = state.above.upper_bound(seq);
  if (it == state.above.begin()) return false;
  return std::prev(it)->second >= seq;
}

void Ingestor::HandleUp(const std::string& device_id, std::string_view payload,
                        int64_t received_unix_ms) {
  Result<protocol::DecodedEnvelope> decoded = protocol::DecodeEnvelope(payload, options_.limits);
  if (!decoded.ok()) {
    ++metrics_->rejected.malformed;
    log_->Log(spdlog::level::warn, "malformed",
              "ingest: device '" + device_id +
                  "': dropped a malformed envelope: " + decoded.status().message());
    return;
  }
  const protocol::DecodedEnvelope& env = *decoded;
  if (env.envelope.device_id() != device_id) {
    ++metrics_->rejected.topic_mismatch;
    log_->Log(spdlog::level::warn, "topic_mismatch",
              "ingest: dropped an envelope of device '" + env.envelope.device_id() +
                  "' published on the topic of '" + device_id + "'");
    return;
  }
  if (!Registered(device_id)) {
    ++metrics_->rejected.unknown_device;
    log_->Log(spdlog::level::warn, "unknown_device",
              "ingest: dropped an envelope of unregistered device '" + device_id +
                  "' (register it with `instrumeter-hub instruments add`)");
    return;
  }

  const auto known = devices_.find(device_id);
  const DeviceState* state = known == devices_.end() ? nullptr : &known->second;
  if (pending_.empty()) batch_started_mono_ms_ = clock_->MonotonicMs();
  PendingDevice& pending = pending_[device_id];
  if (!pending.ack_owed) pending.first_envelope_mono_ms = clock_->MonotonicMs();
  pending.ack_owed = true;
  pending.last_seen_unix_ms = std::max(pending.last_seen_unix_ms, received_unix_ms);

  std::vector<size_t> stored_duplicates;
  std::vector<uint64_t> conflicts;
  for (size_t i = 0; i < env.events.size(); ++i) {
    const uint64_t seq = env.envelope.first_sequence() + i;
    if (state != nullptr && HasStored(*state, seq)) {
      stored_duplicates.push_back(i);
      continue;
    }
    auto in_batch = pending.events.find(seq);
    if (in_batch != pending.events.end()) {
      if (in_batch->second.bytes == env.event_bytes[i]) {
        ++metrics_->duplicates;
      } else {
        conflicts.push_back(seq);
      }
      continue;
    }
    if (retry_at_mono_ms_.has_value() && pending_events_ >= options_.max_batch_events) {
      // Commits are failing and the batch is full: hold no more in memory. Unacknowledged, these
      // stay in the agent's outbox and come again.
      metrics_->events_deferred += env.events.size() - i;
      break;
    }
    pending.events.emplace(seq, PendingEvent{env.events[i], env.event_bytes[i], received_unix_ms});
    ++pending_events_;
  }
  if (!conflicts.empty()) RaiseConflict(device_id, conflicts);
  if (!stored_duplicates.empty()) CheckStoredDuplicates(device_id, env, stored_duplicates);
}

void Ingestor::CheckStoredDuplicates(const std::string& device_id,
                                     const protocol::DecodedEnvelope& env,
                                     const std::vector<size_t>& indexes) {
  const uint64_t first = env.envelope.first_sequence();
  Result<std::vector<EventRow>> stored =
      store_->ReadEvents(device_id, first + indexes.front(), first + indexes.back());
  if (!stored.ok()) {
    log_->Log(
        spdlog::level::err, "read",
        "ingest: device '" + device_id +
            "': cannot read stored events to compare a resend: " + stored.status().ToString());
    return;
  }
  std::map<uint64_t, const std::string*> bytes;
  for (const EventRow& row : *stored) bytes[row.seq] = &row.body;
  std::vector<uint64_t> conflicts;
  for (size_t i : indexes) {
    const uint64_t seq = first + i;
    auto it = bytes.find(seq);
    if (it == bytes.end()) {
      log_->Log(spdlog::level::err, "cursor",
                "ingest: device '" + device_id + "' seq " + std::to_string(seq) +
                    " is counted as stored but is not in the store");
    } else if (*it->second == env.event_bytes[i]) {
      ++metrics_->duplicates;
    } else {
      conflicts.push_back(seq);
    }
  }
  if (!conflicts.empty()) RaiseConflict(device_id, conflicts);
}

void Ingestor::RaiseConflict(const std::string& device_id, const std::vector<uint64_t>& seqs) {
  metrics_->rejected.conflicting_duplicate += seqs.size();
  std::string list;
  for (size_t i = 0; i < seqs.size() && i < kMaxSeqsInAlarm; ++i)
    list += (i == 0 ? "" : ", ") + std::to_string(seqs[i]);
  if (seqs.size() > kMaxSeqsInAlarm) list += ", ...";
  // Never rate-limited: each line is a possible forgery or a corrupted agent outbox.
  spdlog::error(
      "SECURITY ALARM: device '{}' sent {} event(s) whose sequence was already received with other "
      "bytes (seq {}); the first bytes received are kept and the new ones dropped",
      device_id, seqs.size(), list);
}

void Ingestor::HandleStatus(const std::string& device_id, std::string_view payload,
                            int64_t received_unix_ms) {
  v1::DeviceStatus status;
  if (!status.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    ++metrics_->rejected.malformed;
    log_->Log(spdlog::level::warn, "malformed",
              "ingest: device '" + device_id + "': dropped a malformed status message");
    return;
  }
  if (!Registered(device_id)) {
    ++metrics_->status_ignored;
    return;
  }
  if (pending_.empty()) batch_started_mono_ms_ = clock_->MonotonicMs();
  PendingDevice& pending = pending_[device_id];
  pending.online = status.online();
  pending.status_since_unix_ms =
      status.since_unix_ms() != 0 ? status.since_unix_ms() : received_unix_ms;
  ++metrics_->status_messages;
}

int64_t Ingestor::MsUntilDue() const {
  if (pending_.empty()) return -1;
  const int64_t now = clock_->MonotonicMs();
  const int64_t due = retry_at_mono_ms_.has_value()
                          ? *retry_at_mono_ms_
                          : batch_started_mono_ms_ + options_.max_batch_delay_ms;
  return std::max<int64_t>(0, due - now);
}

void Ingestor::Poll() {
  if (MsUntilDue() == 0) (void)Commit();
}

Status Ingestor::Flush() { return Commit(); }

Status Ingestor::PrepareDevice(const std::string& device_id, const PendingDevice& pending,
                               Prepared* prepared, DeviceBatch* batch) {
  prepared->device_id = device_id;
  prepared->ack_owed = pending.ack_owed;
  prepared->first_envelope_mono_ms = pending.first_envelope_mono_ms;
  if (auto it = devices_.find(device_id); it != devices_.end()) {
    prepared->state = it->second;
  } else {
    prepared->state.record.device_id = device_id;
  }
  DeviceState& state = prepared->state;
  DeviceRecord& record = state.record;

  for (const auto& [seq, event] : pending.events) {
    batch->events.push_back(MakeEventRow(event.event, event.bytes, event.received_unix_ms));
    AddToRanges(&state.above, seq);
  }
  record.events_stored += pending.events.size();

  // Events become derivable once every lower sequence is stored.
  const uint64_t old_contiguous = record.contiguous_seq;
  while (!state.above.empty() && state.above.begin()->first == record.contiguous_seq + 1) {
    record.contiguous_seq = state.above.begin()->second;
    state.above.erase(state.above.begin());
  }
  std::map<uint64_t, const v1::Event*> derivable;
  for (auto it = pending.events.upper_bound(old_contiguous);
       it != pending.events.end() && it->first <= record.contiguous_seq; ++it)
    derivable.emplace(it->first, &it->second.event);
  std::deque<v1::Event> fetched;  // a deque keeps the pointers above valid as it grows
  if (derivable.size() < record.contiguous_seq - old_contiguous) {
    // The batch filled a gap: the events after it arrived earlier and are in the store.
    Result<std::vector<EventRow>> stored =
        store_->ReadEvents(device_id, old_contiguous + 1, record.contiguous_seq);
    if (!stored.ok()) return stored.status().WithContext("device '" + device_id + "'");
    for (const EventRow& row : *stored) {
      v1::Event& event = fetched.emplace_back();
      if (!event.ParseFromString(row.body))
        return Status::Corruption("device '" + device_id + "' seq " + std::to_string(row.seq) +
                                  ": stored event does not parse");
      derivable.emplace(row.seq, &event);
    }
    if (derivable.size() != record.contiguous_seq - old_contiguous)
      return Status::Internal(
          "device '" + device_id + "': events " + std::to_string(old_contiguous + 1) + ".." +
          std::to_string(record.contiguous_seq) + " are counted as stored but some are missing");
  }
  IntervalChanges changes;
  for (const auto& [seq, event] : derivable) ApplyEvent(*event, &record.derivation, &changes);
  batch->intervals = changes.rows();

  std::map<uint64_t, const v1::Event*> new_events;
  for (const auto& [seq, event] : pending.events) new_events.emplace(seq, &event.event);
  UpdateLive(record.derivation, new_events, &record.live);
  if (pending.online.has_value()) {
    record.live.online = pending.online;
    record.live.status_since_unix_ms = pending.status_since_unix_ms;
  }
  record.live.last_seen_unix_ms =
      std::max(record.live.last_seen_unix_ms, pending.last_seen_unix_ms);
  batch->record = record;
  if (observer_ != nullptr) {
    for (auto it = pending.events.rbegin(); it != pending.events.rend(); ++it) {
      if (!it->second.event.has_heartbeat()) continue;
      prepared->health = HealthOf(it->second.event);
      break;
    }
  }
  return Status::Ok();
}

Status Ingestor::Commit() {
  if (pending_.empty()) return Status::Ok();
  Batch batch;
  std::vector<Prepared> prepared;
  batch.devices.reserve(pending_.size());
  prepared.reserve(pending_.size());
  Status st;
  for (const auto& [device_id, pending] : pending_) {
    prepared.emplace_back();
    batch.devices.emplace_back();
    st = PrepareDevice(device_id, pending, &prepared.back(), &batch.devices.back());
    if (!st.ok()) break;
  }
  if (st.ok()) {
    const auto started = std::chrono::steady_clock::now();
    st = store_->CommitBatch(batch);
    const uint64_t latency_us =
        static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                  std::chrono::steady_clock::now() - started)
                                  .count());
    metrics_->commit_latency_us_last = latency_us;
    metrics_->commit_latency.ObserveMicros(latency_us);
    metrics_->commit_latency_us_total += latency_us;
    if (latency_us > metrics_->commit_latency_us_max) metrics_->commit_latency_us_max = latency_us;
  }
  if (!st.ok()) {
    ++metrics_->commit_failures;
    const int64_t delay = retry_backoff_.NextDelayMs();
    retry_at_mono_ms_ = clock_->MonotonicMs() + delay;
    healthy_ = false;
    {
      std::lock_guard<std::mutex> lock(error_mu_);
      last_error_ = st;
    }
    log_->Log(spdlog::level::err, "commit",
              "ALARM: ingest commit failed, nothing acknowledged; " +
                  std::to_string(pending_events_) + " events held, retrying in " +
                  std::to_string(delay) + " ms: " + st.ToString());
    return st;
  }

  const size_t stored = pending_events_;
  pending_.clear();
  pending_events_ = 0;
  retry_at_mono_ms_.reset();
  retry_backoff_.Reset();
  if (!healthy_.exchange(true)) spdlog::info("ingest: commits succeed again");
  metrics_->events_stored += stored;
  ++metrics_->batches;
  spdlog::debug("ingest: committed {} new events of {} devices in {} us", stored, prepared.size(),
                metrics_->commit_latency_us_last.load());
#ifdef INSTRUMETER_FAULT_HOOKS
  if (crash_after_commit_ > 0 && ++commits_ == crash_after_commit_) _exit(137);
#endif
  for (Prepared& p : prepared) devices_[p.device_id] = std::move(p.state);
  SendDownlinks(prepared);
  if (observer_ != nullptr) NotifyObserver(&prepared, batch);
  return Status::Ok();
}

void Ingestor::NotifyObserver(std::vector<Prepared>* prepared, const Batch& batch) {
  std::vector<LiveChange> changes;
  changes.reserve(prepared->size());
  // batch.devices[i] is the row prepared[i] made.
  for (size_t i = 0; i < prepared->size(); ++i) {
    Prepared& p = (*prepared)[i];
    const DeviceRecord& record = batch.devices[i].record;
    changes.push_back({.device_id = std::move(p.device_id),
                       .contiguous_seq = record.contiguous_seq,
                       .events_stored = record.events_stored,
                       .live = record.live,
                       .intervals = batch.devices[i].intervals,
                       .health = std::move(p.health)});
  }
  observer_->OnCommitted(std::move(changes));
}

void Ingestor::SendDownlinks(const std::vector<Prepared>& prepared) {
  const int64_t now = clock_->MonotonicMs();
  for (const Prepared& p : prepared) {
    if (!p.ack_owed) continue;
    DeviceState& state = devices_[p.device_id];
    const uint64_t contiguous = state.record.contiguous_seq;
    // Also for a delivery of pure duplicates: the agent may have missed the previous ack.
    if (contiguous > 0) {
      Status st = downlink_->SendAck(p.device_id, contiguous);
      if (st.ok()) {
        ++metrics_->acks_sent;
        metrics_->ack_latency.ObserveMicros(
            static_cast<uint64_t>(std::max<int64_t>(0, now - p.first_envelope_mono_ms)) * 1000);
      } else {
        ++metrics_->downlink_failures;
        log_->Log(spdlog::level::warn, "downlink",
                  "ingest: ack to '" + p.device_id + "' not sent: " + st.ToString());
      }
    }
    if (state.above.empty()) continue;
    if (state.last_resend_mono_ms.has_value() &&
        now - *state.last_resend_mono_ms < options_.resend_interval_ms)
      continue;
    const uint64_t to = state.above.begin()->first - 1;
    Status st = downlink_->SendResend(p.device_id, contiguous + 1, to);
    if (st.ok()) {
      ++metrics_->resend_requests;
      state.last_resend_mono_ms = now;
    } else {
      ++metrics_->downlink_failures;
      log_->Log(spdlog::level::warn, "downlink",
                "ingest: resend request to '" + p.device_id + "' not sent: " + st.ToString());
    }
  }
}

}  // namespace instrumeter::hub
