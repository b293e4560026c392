// A tiny hub for the agent's tests: its own MqttLink on every device's up and status topics. It
// stores events idempotently by sequence, acks its highest contiguous sequence, asks for resends
// when it sees a gap, and can be told to stay silent or to lose envelopes. Test code only.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/mqtt_link.h"
#include "protocol/codec.h"
#include "protocol/topics.h"

namespace instrumeter::agent::fake {

namespace v1 = ::instrumeter::v1;

// The hub's side of the protocol, as small as a test can make it: stores events idempotently by
// sequence, acks its highest contiguous sequence after "storing", and can be told to stay silent
// or to lose envelopes.
class TinyHub {
 public:
  explicit TinyHub(const std::string& broker_url) {
    MqttLink::Options o;
    o.broker_url = broker_url;
    o.client_id = "tiny-hub";
    o.subscriptions = {protocol::AllDevices(protocol::Channel::kUp),
                       protocol::AllDevices(protocol::Channel::kStatus)};
    auto link = MqttLink::Create(o);
    EXPECT_TRUE(link.ok()) << link.status().ToString();
    link_ = std::move(*link);
    connecting_ = link_->Connect().ok();
  }

  // Takes what the broker delivered; reconnects when the broker went away (retrying a connect
  // that Paho refused to start, too: ignoring that once left the hub deaf for good).
  void Process() {
    if (!connected_ && !connecting_) connecting_ = link_->Connect().ok();
    for (MqttLink::Event& e : link_->TakeEvents()) {
      if (e.kind == MqttLink::Event::Kind::kConnected) {
        connected_ = true;
        connecting_ = false;
      }
      if (e.kind == MqttLink::Event::Kind::kConnectFailed ||
          e.kind == MqttLink::Event::Kind::kConnectionLost) {
        connected_ = false;
        connecting_ = link_->Connect().ok();
      }
      if (e.kind != MqttLink::Event::Kind::kMessage) continue;
      auto topic = protocol::ParseTopic(e.topic);
      ASSERT_TRUE(topic.ok());
      if (topic->channel == protocol::Channel::kStatus) {
        v1::DeviceStatus status;
        ASSERT_TRUE(status.ParseFromString(e.payload));
        status_ = status;
        status_retained_ = e.retained;
        statuses_.push_back(status);
        continue;
      }
      auto env = protocol::DecodeEnvelope(e.payload);
      ASSERT_TRUE(env.ok()) << env.status().ToString();
      EXPECT_EQ(env->envelope.device_id(), topic->device_id);
      const uint64_t first = env->envelope.first_sequence();
      ++envelopes_;
      envelope_log_.push_back(
          {first, env->events.size(), env->envelope.signature(), env->envelope.has_signature()});
      max_events_per_envelope_ = std::max(max_events_per_envelope_, env->events.size());
      if (lose_once_.erase(first) > 0) continue;  // lost on the way: never stored
      for (size_t i = 0; i < env->event_bytes.size(); ++i) {
        const uint64_t seq = first + i;
        ++received_[seq];
        auto [it, inserted] = stored_.emplace(seq, env->event_bytes[i]);
        EXPECT_TRUE(inserted || it->second == env->event_bytes[i])
            << "sequence " << seq << " came back with other bytes";
      }
      const uint64_t before = contiguous_;
      while (stored_.count(contiguous_ + 1) > 0) ++contiguous_;
      if (!stored_.empty() && stored_.rbegin()->first > contiguous_ + 1 && contiguous_ == before) {
        uint64_t to = contiguous_ + 1;
        while (stored_.count(to + 1) == 0) ++to;
        Send(topic->device_id, [&](v1::Downlink& d) {
          d.mutable_resend()->set_from_sequence(contiguous_ + 1);
          d.mutable_resend()->set_to_sequence(to);
        });
      }
      if (acking_ && contiguous_ > 0)
        Send(topic->device_id, [&](v1::Downlink& d) {
          d.mutable_ack()->set_highest_contiguous_sequence(contiguous_);
        });
    }
  }

  template <typename Fill>
  void Send(const std::string& device, Fill fill) {
    v1::Downlink d;
    fill(d);
    // At QoS 0, as the hub sends its downlinks (protocol/README.md, "Delivery").
    (void)link_->PublishAtMostOnce(protocol::Topic(device, protocol::Channel::kAck),
                                   d.SerializeAsString());
  }

  MqttLink& link() { return *link_; }
  // The stored events from 1 to the highest contiguous sequence, parsed.
  std::vector<v1::Event> Events() const {
    std::vector<v1::Event> out;
    for (uint64_t seq = 1; seq <= contiguous_; ++seq) {
      v1::Event e;
      EXPECT_TRUE(e.ParseFromString(stored_.at(seq)));
      out.push_back(std::move(e));
    }
    return out;
  }
  std::unique_ptr<MqttLink> link_;
  bool connected_ = false;
  bool connecting_ = false;
  bool acking_ = true;
  std::set<uint64_t> lose_once_;  // first_sequence of envelopes to drop the first time
  std::map<uint64_t, std::string> stored_;
  std::map<uint64_t, int> received_;
  uint64_t contiguous_ = 0;
  size_t envelopes_ = 0;
  // Every envelope received, in order: its events and its signature (when it had one).
  struct Received {
    uint64_t first_sequence;
    size_t events;
    v1::Signature signature;
    bool signed_;
  };
  std::vector<Received> envelope_log_;
  size_t max_events_per_envelope_ = 0;
  std::optional<v1::DeviceStatus> status_;  // the last one seen
  std::vector<v1::DeviceStatus> statuses_;
  bool status_retained_ = false;
};

}  // namespace instrumeter::agent::fake
