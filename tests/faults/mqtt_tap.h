// An MQTT client for fault tests that listens in on topics and publishes what a test tells it:
// the ack recorder of the hub-kill test, the replayer of the duplicate/reorder/replay test.
//
// The broker must allow anonymous clients (the test broker does). All MQTT work happens on the
// tap's own thread, which reconnects every 200 ms while the broker is away; the methods below may
// be called from the test's thread at any time.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/mqtt_link.h"
#include "common/status.h"

namespace instrumeter::testing {

class MqttTap {
 public:
  struct Message {
    std::string topic;
    std::string payload;
    int64_t received_unix_ms = 0;  // CLOCK_REALTIME when the tap's thread took it from Paho
  };

  // Connects (asynchronously) and subscribes to `subscriptions` at QoS 1 on every connect.
  static Result<std::unique_ptr<MqttTap>> Start(const std::string& broker_url,
                                                const std::string& client_id,
                                                const std::vector<std::string>& subscriptions);
  ~MqttTap();
  MqttTap(const MqttTap&) = delete;
  MqttTap& operator=(const MqttTap&) = delete;

  bool WaitConnected(std::chrono::milliseconds timeout) const;
  // Every message received so far, in order of receipt.
  std::vector<Message> Messages() const;
  size_t message_count() const;
  // Queues a QoS 1 publish; the tap's thread sends it as soon as it is connected.
  void Publish(const std::string& topic, const std::string& payload);
  // Publishes handed to Paho so far.
  uint64_t published() const { return published_.load(); }

 private:
  MqttTap() = default;
  void Run();

  std::unique_ptr<MqttLink> link_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> published_{0};
  mutable std::mutex mu_;
  std::vector<Message> messages_;                             // guarded by mu_
  std::deque<std::pair<std::string, std::string>> outgoing_;  // guarded by mu_
};

// Wall clock in ms, as the hub stamps received_unix_ms.
int64_t WallNowMs();

}  // namespace instrumeter::testing
