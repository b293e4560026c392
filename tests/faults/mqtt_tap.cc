#include "mqtt_tap.h"

#include <time.h>

#include "stack.h"
#include "test_support/process.h"

namespace instrumeter::testing {

int64_t WallNowMs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

Result<std::unique_ptr<MqttTap>> MqttTap::Start(const std::string& broker_url,
                                                const std::string& client_id,
                                                const std::vector<std::string>& subscriptions) {
  MqttLink::Options options;
  options.broker_url = broker_url;
  options.client_id = client_id;
  options.subscriptions = subscriptions;
  options.keepalive_s = 5;
  auto link = MqttLink::Create(options);
  if (!link.ok()) return link.status();
  std::unique_ptr<MqttTap> tap(new MqttTap());
  tap->link_ = std::move(*link);
  INSTRUMETER_RETURN_IF_ERROR(tap->link_->Connect());
  tap->thread_ = std::thread([t = tap.get()] { t->Run(); });
  return tap;
}

MqttTap::~MqttTap() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  link_->Disconnect(std::chrono::seconds(2));
}

void MqttTap::Run() {
  using Kind = MqttLink::Event::Kind;
  int64_t reconnect_at = -1;
  while (!stop_) {
    link_->WaitForEvents(std::chrono::milliseconds(20));
    for (MqttLink::Event& e : link_->TakeEvents()) {
      switch (e.kind) {
        case Kind::kConnected:
          connected_ = true;
          break;
        case Kind::kConnectFailed:
        case Kind::kConnectionLost:
          connected_ = false;
          reconnect_at = MonotonicNowMs() + 200;
          break;
        case Kind::kMessage: {
          const int64_t now = WallNowMs();
          std::lock_guard<std::mutex> lock(mu_);
          messages_.push_back({std::move(e.topic), std::move(e.payload), now});
          break;
        }
      }
    }
    if (reconnect_at >= 0 && MonotonicNowMs() >= reconnect_at) {
      reconnect_at = link_->Connect().ok() ? -1 : MonotonicNowMs() + 200;
    }
    if (!connected_) continue;
    std::lock_guard<std::mutex> lock(mu_);
    while (!outgoing_.empty()) {
      if (!link_->Publish(outgoing_.front().first, outgoing_.front().second, false).ok()) break;
      outgoing_.pop_front();
      ++published_;
    }
  }
}

bool MqttTap::WaitConnected(std::chrono::milliseconds timeout) const {
  return WaitFor([&] { return connected_.load(); }, timeout);
}

std::vector<MqttTap::Message> MqttTap::Messages() const {
  std::lock_guard<std::mutex> lock(mu_);
  return messages_;
}

size_t MqttTap::message_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return messages_.size();
}

void MqttTap::Publish(const std::string& topic, const std::string& payload) {
  std::lock_guard<std::mutex> lock(mu_);
  outgoing_.emplace_back(topic, payload);
}

}  // namespace instrumeter::testing
