// The uplink: one MQTT connection to the broker and go-back-N delivery of the outbox to the hub
// (protocol/README.md, "Delivery"). The outbox is the only truth: an event leaves it only when the
// hub's Ack (sent after its commit) covers it, and everything unacknowledged is resent after a
// reconnect, a ResendRequest, or an ack timeout.
//
// State: acked (persisted in the outbox) and next_to_send (memory only). In flight = the events
// from acked+1 to next_to_send-1.
//
// Single-threaded: every method runs on the agent's loop thread. MqttLink's own thread only
// queues events, which the loop takes when wake_fd() is readable.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/agent_config.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/mqtt_link.h"
#include "log.h"
#include "outbox.h"
#include "protocol/chain.h"

namespace instrumeter::agent {

class Uplink {
 public:
  // An envelope never grows past this, whatever max_events_per_envelope says: it stays well
  // below the hub's 256 KiB limit (protocol::EnvelopeLimits).
  static constexpr size_t kMaxEnvelopeBytes = 192 * 1024;
  static constexpr int64_t kNoDeadline = std::numeric_limits<int64_t>::max();

  // `outbox`, `clock` and `signing_key` must outlive the uplink. Without a signing key
  // (development mode) envelopes go unsigned; with one, the uplink signs by the rule of
  // protocol/README.md ("Signing"). Does not connect yet.
  static Result<std::unique_ptr<Uplink>> Create(const AgentConfig& config, Outbox* outbox,
                                                const Clock* clock, Logger log,
                                                const protocol::SigningKey* signing_key = nullptr);

  // Starts the first connection attempt.
  void Start();
  // Readable while the link has events for OnWake.
  int wake_fd() const { return link_->wake_fd(); }
  // Handles what the link reported (connects, losses, acks, commands), then sends what it may.
  void OnWake();
  // Reconnects and ack timeouts that are due; call when NextDeadlineMs() has passed.
  void OnTimer();
  // Monotonic ms of the next timer, kNoDeadline if none.
  int64_t NextDeadlineMs() const;
  // Sends outbox events while connected and the window allows. Call after appending events.
  void Pump();
  // Publishes the retained offline status and disconnects cleanly, waiting at most `timeout`.
  void Shutdown(std::chrono::milliseconds timeout);

  bool connected() const { return state_ == State::kConnected; }
  const std::string& broker() const { return broker_; }
  const std::string& last_error() const { return last_error_; }
  uint64_t next_to_send() const { return next_to_send_; }
  uint64_t downlink_errors() const { return downlink_errors_; }
  uint64_t signed_envelopes() const { return signed_envelopes_; }

 private:
  enum class State { kConnecting, kConnected, kWaiting };

  Uplink(const AgentConfig& config, Outbox* outbox, const Clock* clock, Logger log,
         std::unique_ptr<MqttLink> link, const protocol::SigningKey* signing_key);
  // The signature for an envelope of `rows`, or nullopt when the rule lets it go unsigned (or
  // the uplink has no key).
  std::optional<v1::Signature> SignatureFor(const std::vector<Outbox::Row>& rows, int64_t now_ms);
  void Connect();
  void Lost(const std::string& what, const std::string& detail);
  void OnDownlink(const std::string& payload);
  void PublishStatus(bool online);
  std::string StatusPayload(bool online, int64_t since_unix_ms) const;
  uint64_t acked() const { return outbox_->acked_sequence(); }

  const MqttOptions options_;
  const std::string device_id_;
  const std::string broker_;
  const std::string up_topic_;
  const std::string ack_topic_;
  const std::string status_topic_;
  Outbox* outbox_;
  const Clock* clock_;
  Logger log_;
  std::unique_ptr<MqttLink> link_;
  const protocol::SigningKey* signing_key_;
  Backoff backoff_;
  LogLimiter limiter_{60'000};

  State state_ = State::kWaiting;
  int64_t reconnect_at_ms_ = kNoDeadline;
  uint64_t failed_attempts_ = 0;
  std::string last_error_ = "not connected yet";
  uint64_t next_to_send_ = 1;
  int64_t progress_ms_ = 0;  // last ack advance, or the send that started an in-flight window
  uint64_t downlink_errors_ = 0;
  std::optional<int64_t> last_signed_ms_;  // monotonic; when the last signed envelope went out
  uint64_t signed_envelopes_ = 0;
};

}  // namespace instrumeter::agent
