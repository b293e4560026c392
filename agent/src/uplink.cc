#include "uplink.h"

#include "protocol/codec.h"
#include "protocol/topics.h"
#include "recorder.h"

namespace instrumeter::agent {

using protocol::Channel;

Result<std::unique_ptr<Uplink>> Uplink::Create(const AgentConfig& config, Outbox* outbox,
                                               const Clock* clock, Logger log,
                                               const protocol::SigningKey* signing_key) {
  MqttLink::Options options;
  options.broker_url = config.mqtt.broker;
  options.client_id = config.device_id;
  options.clean_session = true;
  options.keepalive_s = static_cast<int>(config.mqtt.keepalive_s);
  options.connect_timeout_ms = static_cast<int>(config.mqtt.connect_timeout_ms);
  // Room for the whole envelope window plus the status messages.
  options.max_inflight = static_cast<int>(config.mqtt.max_envelopes_in_flight) + 4;
  v1::DeviceStatus will;
  will.set_online(false);
  will.set_agent_version(AgentVersion());
  will.set_boot_id(clock->BootId());
  options.will = MqttLink::Will{protocol::Topic(config.device_id, Channel::kStatus),
                                will.SerializeAsString(), /*retained=*/true};
  options.subscriptions = {protocol::Topic(config.device_id, Channel::kAck),
                           protocol::Topic(config.device_id, Channel::kCmd)};
  if (!config.mqtt.ca_file.empty())
    options.tls = MqttLink::Tls{config.mqtt.ca_file, config.mqtt.cert_file, config.mqtt.key_file};
  auto link = MqttLink::Create(options);
  if (!link.ok()) return link.status().WithContext("broker " + config.mqtt.broker);
  return std::unique_ptr<Uplink>(
      new Uplink(config, outbox, clock, std::move(log), std::move(*link), signing_key));
}

Uplink::Uplink(const AgentConfig& config, Outbox* outbox, const Clock* clock, Logger log,
               std::unique_ptr<MqttLink> link, const protocol::SigningKey* signing_key)
    : options_(config.mqtt),
      device_id_(config.device_id),
      broker_(config.mqtt.broker),
      up_topic_(protocol::Topic(config.device_id, Channel::kUp)),
      ack_topic_(protocol::Topic(config.device_id, Channel::kAck)),
      status_topic_(protocol::Topic(config.device_id, Channel::kStatus)),
      outbox_(outbox),
      clock_(clock),
      log_(std::move(log)),
      link_(std::move(link)),
      signing_key_(signing_key),
      backoff_(config.mqtt.reconnect_min_ms, config.mqtt.reconnect_max_ms) {
  next_to_send_ = acked() + 1;
}

void Uplink::Start() { Connect(); }

void Uplink::Connect() {
  reconnect_at_ms_ = kNoDeadline;
  Status st = link_->Connect();
  if (!st.ok()) {
    Lost("cannot connect to broker " + broker_, st.message());
    return;
  }
  state_ = State::kConnecting;
}

// After a failed attempt or a lost connection: wait (with jitter) and try again. Logged once per
// change of state, not per attempt: a broker down for a day is one warning, not thousands.
void Uplink::Lost(const std::string& what, const std::string& detail) {
  const bool was_connected = state_ == State::kConnected;
  state_ = State::kWaiting;
  const int64_t delay = backoff_.NextDelayMs();
  reconnect_at_ms_ = clock_->MonotonicMs() + delay;
  ++failed_attempts_;
  const std::string error = what + ": " + detail;
  if (was_connected || failed_attempts_ == 1)
    log_->warn("{}; retrying (first retry in {} ms, then backing off to {} ms)", error, delay,
               options_.reconnect_max_ms);
  else
    log_->debug("{} (attempt {}); next in {} ms", error, failed_attempts_, delay);
  last_error_ = error;
}

void Uplink::OnWake() {
  for (MqttLink::Event& event : link_->TakeEvents()) {
    switch (event.kind) {
      case MqttLink::Event::Kind::kConnected:
        if (failed_attempts_ > 1)
          log_->info("connected to broker {} after {} failed attempts", broker_, failed_attempts_);
        else
          log_->info("connected to broker {}", broker_);
        state_ = State::kConnected;
        failed_attempts_ = 0;
        backoff_.Reset();
        // Go-back-N: whatever was in flight on the old connection may be lost.
        next_to_send_ = acked() + 1;
        progress_ms_ = clock_->MonotonicMs();
        PublishStatus(true);
        break;
      case MqttLink::Event::Kind::kConnectFailed:
        Lost("cannot connect to broker " + broker_, event.detail);
        break;
      case MqttLink::Event::Kind::kConnectionLost:
        Lost("lost the connection to broker " + broker_, event.detail);
        break;
      case MqttLink::Event::Kind::kMessage:
        if (event.topic == ack_topic_) {
          OnDownlink(event.payload);
        } else {
          // Commands are reserved for later protocol versions: known to be ignorable.
          v1::Command command;
          uint64_t suppressed = 0;
          if (limiter_.Allow("cmd", clock_->MonotonicMs(), &suppressed))
            log_->info(
                "ignoring a command on {} ({}){}", event.topic,
                command.ParseFromString(event.payload) ? "id '" + command.id() + "'" : "unparsable",
                SuppressedNote(suppressed));
        }
        break;
    }
  }
  Pump();
}

void Uplink::OnDownlink(const std::string& payload) {
  v1::Downlink downlink;
  uint64_t suppressed = 0;
  if (!downlink.ParseFromString(payload) || downlink.body_case() == v1::Downlink::BODY_NOT_SET) {
    ++downlink_errors_;
    if (limiter_.Allow("downlink", clock_->MonotonicMs(), &suppressed))
      log_->warn("ignoring an unparsable message of {} bytes on {} ({} so far){}", payload.size(),
                 ack_topic_, downlink_errors_, SuppressedNote(suppressed));
    return;
  }
  if (downlink.has_ack()) {
    const uint64_t h = downlink.ack().highest_contiguous_sequence();
    if (h <= acked()) {
      if (h < acked()) log_->debug("ignoring stale ack {} (acked {})", h, acked());
      return;
    }
    if (h > outbox_->last_sequence()) {
      ++downlink_errors_;
      if (limiter_.Allow("ack-beyond", clock_->MonotonicMs(), &suppressed))
        log_->error("ignoring an ack of sequence {}: only {} events were ever stored{}", h,
                    outbox_->last_sequence(), SuppressedNote(suppressed));
      return;
    }
    Status st = outbox_->Acknowledge(h, clock_->WallUnixMs());
    if (!st.ok()) {
      // Nothing deleted: the hub's next ack covers these events again.
      log_->error("{}", st.message());
      return;
    }
    progress_ms_ = clock_->MonotonicMs();
    if (next_to_send_ <= h) next_to_send_ = h + 1;
    log_->trace("acked {}", h);
  } else {
    const uint64_t from = downlink.resend().from_sequence();
    if (from <= acked()) {
      log_->warn("ignoring a resend request from {}: the hub acknowledged up to {} already", from,
                 acked());
      return;
    }
    if (from < next_to_send_) {
      log_->info("hub asks for events {}..{}: resending from {}", from,
                 downlink.resend().to_sequence(), from);
      next_to_send_ = from;
    }
  }
}

void Uplink::OnTimer() {
  // Takes the link's report of a connect given up (its deadline is one of ours).
  if (state_ == State::kConnecting) OnWake();
  const int64_t now = clock_->MonotonicMs();
  if (state_ == State::kWaiting && now >= reconnect_at_ms_) Connect();
  if (state_ == State::kConnected && next_to_send_ - 1 > acked() &&
      now - progress_ms_ >= options_.ack_timeout_ms) {
    uint64_t suppressed = 0;
    if (limiter_.Allow("ack-timeout", now, &suppressed))
      log_->warn("no ack for {} ms with events {}..{} in flight: resending from {}{}",
                 options_.ack_timeout_ms, acked() + 1, next_to_send_ - 1, acked() + 1,
                 SuppressedNote(suppressed));
    next_to_send_ = acked() + 1;
    progress_ms_ = now;
  }
  Pump();
}

int64_t Uplink::NextDeadlineMs() const {
  if (state_ == State::kWaiting) return reconnect_at_ms_;
  if (state_ == State::kConnecting && link_->connect_deadline().has_value())
    return clock_->MonotonicMs() + MqttLink::MsUntil(*link_->connect_deadline());
  if (state_ == State::kConnected && next_to_send_ - 1 > acked())
    return progress_ms_ + options_.ack_timeout_ms;
  return kNoDeadline;
}

void Uplink::Pump() {
  const auto window =
      static_cast<uint64_t>(options_.max_envelopes_in_flight * options_.max_events_per_envelope);
  while (state_ == State::kConnected) {
    if (next_to_send_ <= acked()) next_to_send_ = acked() + 1;
    const uint64_t in_flight = next_to_send_ - 1 - acked();
    if (in_flight >= window || next_to_send_ > outbox_->last_sequence()) return;
    auto rows = outbox_->Read(next_to_send_, static_cast<size_t>(options_.max_events_per_envelope),
                              kMaxEnvelopeBytes);
    if (!rows.ok() || rows->empty()) {
      uint64_t suppressed = 0;
      if (limiter_.Allow("read", clock_->MonotonicMs(), &suppressed))
        log_->error("cannot read event {} from the outbox: {}{}", next_to_send_,
                    rows.ok() ? "not found" : rows.status().message(), SuppressedNote(suppressed));
      return;
    }
    const int64_t now = clock_->MonotonicMs();
    const std::optional<v1::Signature> signature = SignatureFor(*rows, now);
    std::vector<std::string> events;
    events.reserve(rows->size());
    for (Outbox::Row& row : *rows) events.push_back(std::move(row.bytes));
    const std::string envelope =
        protocol::EncodeEnvelope(device_id_, clock_->BootId(), rows->front().sequence, events,
                                 signature ? &*signature : nullptr);
    Status st = link_->Publish(up_topic_, envelope, /*retained=*/false);
    if (!st.ok()) {
      // Not sent: next_to_send stays, and the next pump, ack or reconnect tries again.
      log_->debug("publish of events {}..{} refused: {}", rows->front().sequence,
                  rows->back().sequence, st.message());
      return;
    }
    if (in_flight == 0) progress_ms_ = now;
    if (signature) {
      last_signed_ms_ = now;
      ++signed_envelopes_;
    }
    next_to_send_ = rows->back().sequence + 1;
  }
}

std::optional<v1::Signature> Uplink::SignatureFor(const std::vector<Outbox::Row>& rows,
                                                  int64_t now_ms) {
  if (signing_key_ == nullptr) return std::nullopt;
  bool sign = rows.size() > 1 || !last_signed_ms_.has_value() ||
              now_ms - *last_signed_ms_ >= protocol::kMaxSignatureIntervalMs;
  for (size_t i = 0; i < rows.size() && !sign; ++i) {
    v1::Event event;
    // An event that does not parse cannot be told apart: sign rather than guess.
    sign = !event.ParseFromString(rows[i].bytes) || protocol::ClosesState(event);
  }
  if (!sign) return std::nullopt;
  const Outbox::Row& last = rows.back();
  uint64_t suppressed = 0;
  if (last.link.empty()) {
    // Recorder refuses to start with a key and an unknown chain, so this is a bug.
    if (limiter_.Allow("sign", now_ms, &suppressed))
      log_->error("event {} has no chain link: sending it unsigned{}", last.sequence,
                  SuppressedNote(suppressed));
    return std::nullopt;
  }
  Result<v1::Signature> signature = signing_key_->SignHead(device_id_, last.sequence, last.link);
  if (!signature.ok()) {
    if (limiter_.Allow("sign", now_ms, &suppressed))
      log_->error("cannot sign event {}: {}{}", last.sequence, signature.status().message(),
                  SuppressedNote(suppressed));
    return std::nullopt;
  }
  return std::move(*signature);
}

std::string Uplink::StatusPayload(bool online, int64_t since_unix_ms) const {
  v1::DeviceStatus status;
  status.set_online(online);
  status.set_agent_version(AgentVersion());
  status.set_since_unix_ms(since_unix_ms);
  status.set_boot_id(clock_->BootId());
  return status.SerializeAsString();
}

void Uplink::PublishStatus(bool online) {
  Status st = link_->Publish(status_topic_, StatusPayload(online, clock_->WallUnixMs()),
                             /*retained=*/true);
  if (!st.ok())
    log_->warn("cannot publish {} status: {}", online ? "online" : "offline", st.message());
}

void Uplink::Shutdown(std::chrono::milliseconds timeout) {
  if (state_ == State::kConnected) PublishStatus(false);
  link_->Disconnect(timeout);
  state_ = State::kWaiting;
  reconnect_at_ms_ = kNoDeadline;
}

}  // namespace instrumeter::agent
