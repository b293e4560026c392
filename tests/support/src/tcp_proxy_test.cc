// The link-fault proxy against a real broker, with MqttLink clients on both sides of it.
#include "test_support/tcp_proxy.h"

#include <gtest/gtest.h>

#include <thread>

#include "common/mqtt_link.h"
#include "test_support/mosquitto.h"

namespace instrumeter::testing {
namespace {

using Kind = MqttLink::Event::Kind;
using std::chrono::milliseconds;
using std::chrono::seconds;

std::unique_ptr<MqttLink> Link(const std::string& url, const std::string& id, int keepalive_s,
                               std::vector<std::string> subscriptions = {}) {
  MqttLink::Options o;
  o.broker_url = url;
  o.client_id = id;
  o.keepalive_s = keepalive_s;
  o.connect_timeout_ms = 2000;
  o.subscriptions = std::move(subscriptions);
  auto link = MqttLink::Create(o);
  EXPECT_TRUE(link.ok()) << link.status().ToString();
  return std::move(*link);
}

// Waits for the first event of `kind` (others are dropped); false after `timeout`.
bool WaitForKind(MqttLink& link, Kind kind, milliseconds timeout, std::string* payload = nullptr) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    link.WaitForEvents(milliseconds(50));
    for (MqttLink::Event& e : link.TakeEvents()) {
      if (e.kind != kind) continue;
      if (payload != nullptr) *payload = e.payload;
      return true;
    }
  }
  return false;
}

class TcpProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto broker = TestBroker::Start();
    ASSERT_TRUE(broker.ok()) << broker.status().ToString();
    broker_ = std::move(*broker);
    auto proxy = TcpProxy::Start(broker_->port());
    ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
    proxy_ = std::move(*proxy);
    direct_ = Link(broker_->url(), "direct", 30);
    ASSERT_TRUE(direct_->Connect().ok());
    ASSERT_TRUE(WaitForKind(*direct_, Kind::kConnected, seconds(5)));
  }

  // Publishes on the direct link and expects `via` (subscribed through the proxy) to get it.
  bool Delivered(MqttLink& via, const std::string& text) {
    EXPECT_TRUE(direct_->Publish("t/proxy", text, false).ok());
    std::string got;
    return WaitForKind(via, Kind::kMessage, seconds(5), &got) && got == text;
  }

  std::unique_ptr<TestBroker> broker_;
  std::unique_ptr<TcpProxy> proxy_;
  std::unique_ptr<MqttLink> direct_;
};

TEST_F(TcpProxyTest, ForwardsCutsAndResumes) {
  auto via = Link(proxy_->url(), "via-proxy", 30, {"t/proxy"});
  ASSERT_TRUE(via->Connect().ok());
  ASSERT_TRUE(WaitForKind(*via, Kind::kConnected, seconds(5)));
  EXPECT_EQ(proxy_->open_connections(), 1u);
  EXPECT_TRUE(Delivered(*via, "one"));

  proxy_->Cut();
  EXPECT_TRUE(WaitForKind(*via, Kind::kConnectionLost, seconds(5)));
  std::this_thread::sleep_for(milliseconds(300));  // as a client's backoff would
  const size_t accepted = proxy_->AcceptTimes().size();
  ASSERT_TRUE(via->Connect().ok());
  EXPECT_TRUE(WaitForKind(*via, Kind::kConnectFailed, seconds(5)));
  // Regression: Paho by default retries a refused MQTT 3.1.1 connect at once with MQTT 3.1, so
  // one attempt was two TCP connections (twice the load on a broker everyone reconnects to).
  EXPECT_EQ(proxy_->AcceptTimes().size(), accepted + 1) << "one connect, one TCP connection";

  proxy_->Resume();
  ASSERT_TRUE(via->Connect().ok());
  ASSERT_TRUE(WaitForKind(*via, Kind::kConnected, seconds(5)));
  EXPECT_TRUE(Delivered(*via, "two"));
}

TEST_F(TcpProxyTest, StallKeepsTheLinkHalfOpenUntilTheKeepaliveGivesUp) {
  auto via = Link(proxy_->url(), "stalled", 1, {"t/proxy"});
  ASSERT_TRUE(via->Connect().ok());
  ASSERT_TRUE(WaitForKind(*via, Kind::kConnected, seconds(5)));
  proxy_->Stall();
  EXPECT_TRUE(direct_->Publish("t/proxy", "held", false).ok());
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(proxy_->open_connections(), 1u) << "a stall closes nothing";
  // Nothing comes through, and only the keepalive (1 s, given up after 1.5 s) notices.
  EXPECT_TRUE(WaitForKind(*via, Kind::kConnectionLost, seconds(10)));
  proxy_->Resume();
  ASSERT_TRUE(via->Connect().ok());
  ASSERT_TRUE(WaitForKind(*via, Kind::kConnected, seconds(5)));
  EXPECT_TRUE(Delivered(*via, "after"));
}

TEST_F(TcpProxyTest, DropSwallowsEverythingWhileTheConnectionStaysUp) {
  auto via = Link(proxy_->url(), "dropped", 1, {"t/proxy"});
  ASSERT_TRUE(via->Connect().ok());
  ASSERT_TRUE(WaitForKind(*via, Kind::kConnected, seconds(5)));
  proxy_->Drop();
  EXPECT_TRUE(direct_->Publish("t/proxy", "lost", false).ok());
  EXPECT_TRUE(WaitForKind(*via, Kind::kConnectionLost, seconds(10)));
  EXPECT_FALSE(WaitForKind(*via, Kind::kMessage, milliseconds(300)));
}

}  // namespace
}  // namespace instrumeter::testing
