#include "hub/ingestor.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
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
  INSTRUMETER_RETURN_IF_ERROR(ingestor->BackfillLinks().WithContext("computing chain links"));
  INSTRUMETER_RETURN_IF_ERROR(ingestor->ReloadKeys().WithContext("loading device keys"));
  spdlog::info("ingest: {} devices loaded, {} with an enrolled key", ingestor->devices_.size(),
               ingestor->keys_.size());
  if (!ingestor->SignaturesRequired())
    spdlog::warn(
        "ingest: DEVELOPMENT MODE: devices without an enrolled key are accepted unsigned; their "
        "hours are never billable ([security] require_signatures, docs/security.md)");
  return ingestor;
}

bool Ingestor::SignaturesRequired() const {
  return options_.require_signatures.value_or(!keys_.empty());
}

Status Ingestor::BackfillLinks() {
  constexpr uint64_t kChunk = 10'000;
  for (auto& [device_id, state] : devices_) {
    DeviceRecord& record = state.record;
    if (record.contiguous_seq == 0 || !record.chain.link.empty()) continue;
    Batch batch;
    DeviceBatch& device = batch.devices.emplace_back();
    std::string link = protocol::ChainGenesis(device_id);
    for (uint64_t from = 1; from <= record.contiguous_seq; from += kChunk) {
      const uint64_t to = std::min(record.contiguous_seq, from + kChunk - 1);
      Result<std::vector<EventRow>> rows = store_->ReadEvents(device_id, from, to);
      if (!rows.ok()) return rows.status().WithContext("device '" + device_id + "'");
      if (rows->size() != to - from + 1)
        return Status::Corruption("device '" + device_id + "': events " + std::to_string(from) +
                                  ".." + std::to_string(to) +
                                  " are counted as stored but some are missing");
      for (const EventRow& row : *rows) {
        link = protocol::ChainNext(link, row.body);
        device.link_updates.emplace_back(row.seq, link);
      }
    }
    device.record = record;
    device.record.chain.link = link;
    INSTRUMETER_RETURN_IF_ERROR(store_->CommitBatch(batch));
    record.chain.link = std::move(link);
    spdlog::info(
        "ingest: device '{}': computed the chain links of {} events stored before signed "
        "telemetry",
        device_id, record.contiguous_seq);
  }
  return Status::Ok();
}

Status Ingestor::ReloadKeys() {
  Result<int64_t> version = store_->DeviceKeysVersion();
  if (!version.ok()) return version.status();
  if (keys_version_ == *version) {
    keys_loaded_mono_ms_ = clock_->MonotonicMs();
    return Status::Ok();
  }
  Result<std::vector<DeviceKey>> rows = store_->ListDeviceKeys();
  if (!rows.ok()) return rows.status();
  const bool keys_loaded_before = keys_loaded_mono_ms_.has_value();
  std::unordered_map<std::string, KeyEntry> keys;
  for (const DeviceKey& row : *rows) {
    KeyEntry& entry = keys[row.device_id];
    if (row.revoked_unix_ms.has_value()) continue;
    // A key already in force is kept: parsing 100,000 of them again took seconds.
    if (auto known = keys_.find(row.device_id);
        known != keys_.end() && known->second.active_key_id == row.key_id &&
        known->second.active.has_value() && known->second.active->public_key() == row.public_key) {
      entry.active = std::move(known->second.active);
    } else {
      Result<protocol::VerifyingKey> key = protocol::VerifyingKey::FromRaw(row.public_key);
      if (!key.ok()) {
        // Refused like a revoked device: better no telemetry than unverifiable telemetry.
        log_->Log(spdlog::level::err, "key",
                  "ingest: device '" + row.device_id + "': enrolled key " +
                      std::to_string(row.key_id) + " is unusable: " + key.status().message());
        continue;
      }
      entry.active = std::move(*key);
    }
    entry.active_key_id = row.key_id;
    entry.chain_reset_requested_unix_ms = row.chain_reset_requested_unix_ms;
  }
  const int64_t now = clock_->MonotonicMs();
  for (auto& [device_id, state] : devices_) {
    const auto before = keys_.find(device_id);
    const auto after = keys.find(device_id);
    const int64_t before_id = before == keys_.end() ? 0 : before->second.active_key_id;
    const int64_t after_id = after == keys.end() ? 0 : after->second.active_key_id;
    // Held signatures were verified with the old key; a revoked key vouches for nothing more.
    if (before_id != after_id) state.held.clear();
    if (after == keys.end() || after->second.chain_reset_requested_unix_ms <= 0 ||
        after->second.chain_reset_requested_unix_ms <= state.record.chain.reset_unix_ms)
      continue;
    if (pending_.empty()) batch_started_mono_ms_ = now;
    pending_[device_id].chain_reset_unix_ms = after->second.chain_reset_requested_unix_ms;
  }
  const bool required_before = SignaturesRequired();
  keys_ = std::move(keys);
  keys_version_ = *version;
  keys_loaded_mono_ms_ = now;
  if (SignaturesRequired() != required_before && keys_loaded_before)
    spdlog::warn(SignaturesRequired()
                     ? "ingest: a device is enrolled: from now on devices without an enrolled "
                       "key are refused (development mode ends)"
                     : "ingest: no device is enrolled any more: DEVELOPMENT MODE, devices without "
                       "a key are accepted unsigned and never billable");
  return Status::Ok();
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
  for (const v1::Event& event : env.events) {
    Status plausible = protocol::CheckPlausibleTime(event, received_unix_ms);
    if (plausible.ok()) continue;
    ++metrics_->rejected.malformed;
    log_->Log(spdlog::level::warn, "malformed",
              "ingest: device '" + device_id +
                  "': dropped an envelope with an absurd time: " + plausible.message());
    return;
  }
  std::optional<v1::Signature> signature;
  if (!CheckSignature(device_id, env, &signature)) return;

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
    const v1::Event& event = env.events[i];
    // Only a fresh heartbeat (nothing else waiting in the agent's outbox) tells the agent's
    // clock from the hub's; a backlog is old by nature.
    if (event.has_heartbeat() && event.heartbeat().outbox_depth() <= 1 &&
        std::abs(received_unix_ms - event.at().wall_unix_ms()) > options_.clock_skew_warn_ms) {
      ++metrics_->clock_skew_heartbeats;
      log_->Log(spdlog::level::warn, "clock_skew",
                "ingest: device '" + device_id + "': clock skew: its wall clock is " +
                    std::to_string((event.at().wall_unix_ms() - received_unix_ms) / 1000) +
                    " s off the hub's (events kept; hours are measured on its monotonic clock)");
    }
    pending.events.emplace(seq, PendingEvent{event, env.event_bytes[i], received_unix_ms});
    ++pending_events_;
  }
  if (signature.has_value()) pending.signatures[signature->through_sequence()] = *signature;
  if (!conflicts.empty()) RaiseConflict(device_id, conflicts);
  if (!stored_duplicates.empty()) CheckStoredDuplicates(device_id, env, stored_duplicates);
}

bool Ingestor::CheckSignature(const std::string& device_id, const protocol::DecodedEnvelope& env,
                              std::optional<v1::Signature>* signature) {
  const auto found = keys_.find(device_id);
  if (found == keys_.end()) {
    if (!SignaturesRequired()) return true;  // development mode: stored, never billable
    ++metrics_->rejected.unenrolled;
    log_->Log(spdlog::level::warn, "unenrolled",
              "ingest: dropped an envelope of device '" + device_id +
                  "', which has no enrolled signing key (`instrumeter-hub devices enroll`)");
    return false;
  }
  if (!found->second.active.has_value()) {
    ++metrics_->rejected.revoked;
    log_->Log(spdlog::level::warn, "revoked",
              "ingest: dropped an envelope of device '" + device_id + "', whose key is revoked");
    return false;
  }
  if (!env.envelope.has_signature()) return true;
  const v1::Signature& sig = env.envelope.signature();
  const uint64_t last = env.envelope.first_sequence() + env.events.size() - 1;
  Status st = sig.through_sequence() == last
                  ? found->second.active->VerifyHead(device_id, sig)
                  : Status::InvalidArgument(
                        "signature covers sequence " + std::to_string(sig.through_sequence()) +
                        ", not the envelope's last event " + std::to_string(last));
  if (st.code() == Status::Code::kInvalidArgument) {
    ++metrics_->rejected.malformed;
    log_->Log(spdlog::level::warn, "malformed",
              "ingest: device '" + device_id + "': dropped an envelope with a malformed " +
                  "signature: " + st.message());
    return false;
  }
  if (st.ok()) st = CheckEnvelopeChain(device_id, env);
  if (!st.ok()) {
    ++metrics_->rejected.bad_signature;
    log_->Log(spdlog::level::warn, "bad_signature",
              "ingest: device '" + device_id + "': dropped events " +
                  std::to_string(env.envelope.first_sequence()) + ".." + std::to_string(last) +
                  ": " + st.message());
    return false;
  }
  *signature = sig;
  return true;
}

Status Ingestor::CheckEnvelopeChain(const std::string& device_id,
                                    const protocol::DecodedEnvelope& env) {
  // Only over a proven prefix: there a mismatch can only be the envelope's fault. Over an
  // unproven one (events stored unsigned since the last verified signature) the fault may be
  // the hub's copy, so the events are stored and the comparison at through_sequence decides
  // (a broken chain, protocol/README.md "Signing").
  const uint64_t before = env.envelope.first_sequence() - 1;
  std::string link;
  if (before == 0) {
    link = protocol::ChainGenesis(device_id);
  } else {
    const auto it = devices_.find(device_id);
    if (it == devices_.end()) return Status::Ok();
    const ChainState& chain = it->second.record.chain;
    if (chain.broken_from != 0 || before > chain.signed_through) return Status::Ok();
    if (before == it->second.record.contiguous_seq) {
      link = chain.link;
    } else {
      Result<std::vector<EventRow>> row = store_->ReadEvents(device_id, before, before);
      if (!row.ok() || row->empty() || row->front().link.empty()) return Status::Ok();
      link = row->front().link;
    }
  }
  for (const std::string& bytes : env.event_bytes) link = protocol::ChainNext(link, bytes);
  if (link == env.envelope.signature().chain_head()) return Status::Ok();
  return Status::FailedPrecondition(
      "its events do not hash to the chain head its signature covers (altered in transit or "
      "forged), over a prefix the device's earlier signature proved");
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
  const int64_t now = clock_->MonotonicMs();
  if (!keys_loaded_mono_ms_.has_value() || now - *keys_loaded_mono_ms_ >= options_.key_reload_ms) {
    Status st = ReloadKeys();
    if (!st.ok())
      log_->Log(
          spdlog::level::err, "key",
          "ingest: cannot reload device keys (the previous ones stay in force): " + st.ToString());
    keys_loaded_mono_ms_ = now;
  }
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
  const uint64_t signed_before = record.chain.signed_through;
  if (pending.chain_reset_unix_ms.has_value())
    INSTRUMETER_RETURN_IF_ERROR(
        ResetChain(device_id, *pending.chain_reset_unix_ms, &state, prepared, batch));

  for (const auto& [seq, event] : pending.events) AddToRanges(&state.above, seq);
  record.events_stored += pending.events.size();

  // Events become derivable, and chainable, once every lower sequence is stored.
  const uint64_t old_contiguous = record.contiguous_seq;
  const std::string old_link =
      record.chain.link.empty() ? protocol::ChainGenesis(device_id) : record.chain.link;
  while (!state.above.empty() && state.above.begin()->first == record.contiguous_seq + 1) {
    record.contiguous_seq = state.above.begin()->second;
    state.above.erase(state.above.begin());
  }
  struct Derivable {
    const v1::Event* event;
    const std::string* bytes;
  };
  std::map<uint64_t, Derivable> derivable;
  for (auto it = pending.events.upper_bound(old_contiguous);
       it != pending.events.end() && it->first <= record.contiguous_seq; ++it)
    derivable.emplace(it->first, Derivable{&it->second.event, &it->second.bytes});
  std::vector<EventRow> stored;
  std::deque<v1::Event> fetched;  // a deque keeps the pointers above valid as it grows
  if (derivable.size() < record.contiguous_seq - old_contiguous) {
    // The batch filled a gap: the events after it arrived earlier and are in the store.
    Result<std::vector<EventRow>> rows =
        store_->ReadEvents(device_id, old_contiguous + 1, record.contiguous_seq);
    if (!rows.ok()) return rows.status().WithContext("device '" + device_id + "'");
    stored = std::move(*rows);
    for (const EventRow& row : stored) {
      v1::Event& event = fetched.emplace_back();
      if (!event.ParseFromString(row.body))
        return Status::Corruption("device '" + device_id + "' seq " + std::to_string(row.seq) +
                                  ": stored event does not parse");
      derivable.emplace(row.seq, Derivable{&event, &row.body});
    }
    if (derivable.size() != record.contiguous_seq - old_contiguous)
      return Status::Internal(
          "device '" + device_id + "': events " + std::to_string(old_contiguous + 1) + ".." +
          std::to_string(record.contiguous_seq) + " are counted as stored but some are missing");
  }
  std::map<uint64_t, std::string> new_links;
  std::string link = old_link;
  for (const auto& [seq, d] : derivable) {
    link = protocol::ChainNext(link, *d.bytes);
    new_links.emplace(seq, link);
  }
  if (!derivable.empty()) record.chain.link = link;
  for (const auto& [seq, event] : pending.events) {
    EventRow& row =
        batch->events.emplace_back(MakeEventRow(event.event, event.bytes, event.received_unix_ms));
    if (auto l = new_links.find(seq); l != new_links.end()) row.link = l->second;
  }
  for (const EventRow& row : stored) batch->link_updates.emplace_back(row.seq, new_links[row.seq]);

  IntervalChanges changes;
  for (const auto& [seq, d] : derivable) ApplyEvent(*d.event, &record.derivation, &changes);
  batch->intervals = changes.rows();

  for (const auto& [seq, signature] : pending.signatures) state.held[seq] = signature;
  INSTRUMETER_RETURN_IF_ERROR(
      CheckHeldSignatures(device_id, old_contiguous, old_link, new_links, &state, prepared));
  if (record.chain.signed_through > signed_before)
    batch->newly_signed =
        SeqRange{std::max<uint64_t>(signed_before, 1), record.chain.signed_through};

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

Status Ingestor::CheckHeldSignatures(const std::string& device_id, uint64_t old_contiguous,
                                     const std::string& old_link,
                                     const std::map<uint64_t, std::string>& new_links,
                                     DeviceState* state, Prepared* prepared) {
  ChainState& chain = state->record.chain;
  const uint64_t contiguous = state->record.contiguous_seq;
  std::map<uint64_t, v1::Signature> waiting;
  for (auto& [seq, signature] : state->held) {
    if (seq > contiguous) {
      waiting.emplace(seq, std::move(signature));
      continue;
    }
    const std::string& head = signature.chain_head();
    if (chain.broken_from != 0) {
      // Nothing is proven past a break, but the device's latest head is where a reset can
      // re-anchor its chain.
      if (seq > chain.head_seq) {
        chain.head_seq = seq;
        chain.head = head;
        chain.signature = signature.SerializeAsString();
      }
      continue;
    }
    if (seq <= chain.signed_through) continue;  // a resend or a replay: already covered
    std::string link;
    if (auto it = new_links.find(seq); it != new_links.end()) {
      link = it->second;
    } else if (seq == old_contiguous) {
      link = old_link;
    } else {
      Result<std::vector<EventRow>> row = store_->ReadEvents(device_id, seq, seq);
      if (!row.ok()) return row.status().WithContext("device '" + device_id + "'");
      if (row->empty() || row->front().link.empty())
        return Status::Internal("device '" + device_id + "' seq " + std::to_string(seq) +
                                " is stored without its chain link");
      link = row->front().link;
    }
    chain.head_seq = seq;
    chain.head = head;
    chain.signature = signature.SerializeAsString();
    if (link == head) {
      chain.signed_through = seq;
      ++prepared->signatures_verified;
      continue;
    }
    chain.broken_from = chain.signed_through + 1;
    ++prepared->chains_broken;
    prepared->alarms.push_back(
        "SECURITY ALARM: device '" + device_id +
        "': broken chain: its verified signature over "
        "sequence " +
        std::to_string(seq) +
        " names another chain head than the events the hub "
        "stored; nothing from sequence " +
        std::to_string(chain.broken_from) +
        " on is billable until an operator investigates and runs `instrumeter-hub devices "
        "chain-reset " +
        device_id + "` (docs/security.md)");
  }
  while (waiting.size() > options_.max_held_signatures) {
    waiting.erase(waiting.begin());
    ++prepared->signatures_dropped;
  }
  state->held = std::move(waiting);
  return Status::Ok();
}

Status Ingestor::ResetChain(const std::string& device_id, int64_t requested_unix_ms,
                            DeviceState* state, Prepared* prepared, DeviceBatch* batch) {
  DeviceRecord& record = state->record;
  ChainState& chain = record.chain;
  chain.reset_unix_ms = requested_unix_ms;
  if (chain.broken_from == 0) {
    prepared->notes.push_back("ingest: device '" + device_id +
                              "': chain reset requested, but its chain is intact: nothing to do");
    return Status::Ok();
  }
  // The device's own signature vouches for its head at head_seq; the events the hub holds
  // between the break and it stay unproven, and the chain continues from the device's head.
  const uint64_t anchor = chain.head_seq;
  std::string link = chain.head;
  batch->link_updates.emplace_back(anchor, link);
  if (anchor < record.contiguous_seq) {
    Result<std::vector<EventRow>> rows =
        store_->ReadEvents(device_id, anchor + 1, record.contiguous_seq);
    if (!rows.ok()) return rows.status().WithContext("device '" + device_id + "'");
    if (rows->size() != record.contiguous_seq - anchor)
      return Status::Internal("device '" + device_id + "': events after " + std::to_string(anchor) +
                              " are counted as stored but missing");
    for (const EventRow& row : *rows) {
      link = protocol::ChainNext(link, row.body);
      batch->link_updates.emplace_back(row.seq, link);
    }
  }
  batch->unproven = SeqRange{chain.broken_from, anchor};
  prepared->notes.push_back("ingest: device '" + device_id +
                            "': chain reset by an operator: " + "sequences " +
                            std::to_string(chain.broken_from) + ".." + std::to_string(anchor) +
                            " stay unproven (never billable); the chain continues from the "
                            "device's signed head at " +
                            std::to_string(anchor));
  chain.link = std::move(link);
  chain.signed_through = anchor;
  chain.broken_from = 0;
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
  for (Prepared& p : prepared) {
    metrics_->signatures_verified += p.signatures_verified;
    metrics_->signatures_dropped += p.signatures_dropped;
    metrics_->rejected.broken_chain += p.chains_broken;
    // Never rate-limited: each line is a possible forgery.
    for (const std::string& alarm : p.alarms) spdlog::error("{}", alarm);
    for (const std::string& note : p.notes) spdlog::info("{}", note);
    devices_[p.device_id] = std::move(p.state);
  }
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
