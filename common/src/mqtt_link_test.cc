#include "common/mqtt_link.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstdlib>
#include <map>
#include <thread>

#include "test_support/mosquitto.h"
#include "test_support/tcp_proxy.h"

namespace instrumeter {
namespace {

using Kind = MqttLink::Event::Kind;

// Collects events from a link until `want` of kind `kind` arrived or `timeout` passed.
std::vector<MqttLink::Event> Collect(MqttLink& link, Kind kind, size_t want,
                                     std::chrono::milliseconds timeout) {
  std::vector<MqttLink::Event> got;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  size_t matching = 0;
  while (matching < want && std::chrono::steady_clock::now() < deadline) {
    link.WaitForEvents(std::chrono::milliseconds(100));
    for (auto& e : link.TakeEvents()) {
      matching += e.kind == kind;
      got.push_back(std::move(e));
    }
  }
  return got;
}

size_t CountKind(const std::vector<MqttLink::Event>& events, Kind kind) {
  size_t n = 0;
  for (const auto& e : events) n += e.kind == kind;
  return n;
}

class MqttLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto b = testing::TestBroker::Start();
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    broker_ = std::move(*b);
  }

  std::unique_ptr<MqttLink> MakeLink(const std::string& id, std::vector<std::string> subs) {
    MqttLink::Options o;
    o.broker_url = broker_->url();
    o.client_id = id;
    o.subscriptions = std::move(subs);
    auto link = MqttLink::Create(o);
    EXPECT_TRUE(link.ok()) << link.status().ToString();
    EXPECT_TRUE((*link)->Connect().ok());
    auto events = Collect(**link, Kind::kConnected, 1, std::chrono::seconds(10));
    EXPECT_EQ(CountKind(events, Kind::kConnected), 1u);
    return std::move(*link);
  }

  std::unique_ptr<testing::TestBroker> broker_;
};

TEST_F(MqttLinkTest, DeliversMessagesInOrderAndCountsTheQueue) {
  auto sub = MakeLink("sub", {"t/#"});
  auto pub = MakeLink("pub", {});
  const auto before = std::chrono::steady_clock::now();
  for (int i = 0; i < 50; ++i)
    ASSERT_TRUE(pub->Publish("t/x", "m" + std::to_string(i), false).ok());
  ASSERT_TRUE(
      testing::WaitFor([&] { return sub->queued_messages() == 50; }, std::chrono::seconds(10)));
  const auto queued = std::chrono::steady_clock::now();
  auto got = Collect(*sub, Kind::kMessage, 50, std::chrono::seconds(10));
  ASSERT_EQ(CountKind(got, Kind::kMessage), 50u);
  int i = 0;
  for (const auto& e : got) {
    if (e.kind == Kind::kMessage) {
      EXPECT_EQ(e.payload, "m" + std::to_string(i++));
      // Stamped on arrival, not when taken: the owner can tell how long it waited.
      EXPECT_GE(e.received, before);
      EXPECT_LE(e.received, queued);
    }
  }
}

TEST_F(MqttLinkTest, PublishAtMostOnceArrivesAtQosZeroEvenOnAQosOneSubscription) {
  auto sub = MakeLink("sub", {"t/#"});  // subscribed at QoS 1
  auto pub = MakeLink("pub", {});
  ASSERT_TRUE(pub->Publish("t/once-or-more", "a", false).ok());
  ASSERT_TRUE(pub->PublishAtMostOnce("t/at-most-once", "b").ok());
  auto got = Collect(*sub, Kind::kMessage, 2, std::chrono::seconds(10));
  ASSERT_EQ(CountKind(got, Kind::kMessage), 2u);
  std::map<std::string, int> qos_by_topic;
  for (const auto& e : got)
    if (e.kind == Kind::kMessage) qos_by_topic[e.topic] = e.qos;
  EXPECT_EQ(qos_by_topic["t/once-or-more"], 1);
  EXPECT_EQ(qos_by_topic["t/at-most-once"], 0);
}

TEST_F(MqttLinkTest, PublishAtMostOnceFailsWhileDisconnected) {
  auto link = MakeLink("pub", {});
  link->Disconnect(std::chrono::milliseconds(1000));
  const Status st = link->PublishAtMostOnce("t/x", "p");
  EXPECT_EQ(st.code(), Status::Code::kUnavailable) << st.ToString();
  EXPECT_NE(st.ToString().find(broker_->url()), std::string::npos) << st.ToString();
}

// The TCP_NODELAY setting of every socket of this process connected to `port`.
std::vector<int> NoDelayOfSocketsTo(int port) {
  std::vector<int> out;
  DIR* dir = ::opendir("/proc/self/fd");
  while (const dirent* entry = dir != nullptr ? ::readdir(dir) : nullptr) {
    const int fd = std::atoi(entry->d_name);
    sockaddr_in peer{};
    socklen_t size = sizeof peer;
    if (fd <= 2 || ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &size) != 0 ||
        peer.sin_family != AF_INET || ntohs(peer.sin_port) != port)
      continue;
    int value = -1;
    socklen_t length = sizeof value;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &value, &length) == 0) out.push_back(value);
  }
  if (dir != nullptr) ::closedir(dir);
  return out;
}

// Paho never sets TCP_NODELAY; without it a small publish waited up to 40 ms for the TCP
// acknowledgement of the one before (docs/performance.md, "Capacity"). The link sets it before the
// owner hears it is connected, again after every reconnect.
TEST_F(MqttLinkTest, ItsSocketToTheBrokerSendsWithoutDelay) {
  auto link = MakeLink("nodelay", {"t/#"});
  EXPECT_EQ(NoDelayOfSocketsTo(broker_->port()), std::vector<int>{1});
  broker_->Kill();
  auto lost = Collect(*link, Kind::kConnectionLost, 1, std::chrono::seconds(10));
  ASSERT_EQ(CountKind(lost, Kind::kConnectionLost), 1u);
  ASSERT_TRUE(broker_->Restart().ok());
  ASSERT_TRUE(testing::WaitFor([&] { return link->Connect().ok(); }, std::chrono::seconds(5)));
  auto back = Collect(*link, Kind::kConnected, 1, std::chrono::seconds(15));
  ASSERT_EQ(CountKind(back, Kind::kConnected), 1u);
  EXPECT_EQ(NoDelayOfSocketsTo(broker_->port()), std::vector<int>{1}) << "the new socket too";
}

TEST_F(MqttLinkTest, ReportsLossAndReconnectsAfterBrokerRestart) {
  auto link = MakeLink("a", {"t/#"});
  broker_->Kill();
  auto lost = Collect(*link, Kind::kConnectionLost, 1, std::chrono::seconds(10));
  EXPECT_EQ(CountKind(lost, Kind::kConnectionLost), 1u);
  EXPECT_FALSE(link->connected());
  EXPECT_FALSE(link->Publish("t/x", "p", false).ok()) << "publishing while down must fail";
  // Paho may refuse a connect while it still winds down the last one; owners retry (they do,
  // with backoff), and so does this test.
  const auto connect = [&] { return link->Connect().ok(); };
  ASSERT_TRUE(testing::WaitFor(connect, std::chrono::seconds(5)));
  auto failed = Collect(*link, Kind::kConnectFailed, 1, std::chrono::seconds(15));
  EXPECT_EQ(CountKind(failed, Kind::kConnectFailed), 1u);
  ASSERT_TRUE(broker_->Restart().ok());
  ASSERT_TRUE(testing::WaitFor(connect, std::chrono::seconds(5)));
  auto back = Collect(*link, Kind::kConnected, 1, std::chrono::seconds(15));
  EXPECT_EQ(CountKind(back, Kind::kConnected), 1u);
  EXPECT_TRUE(link->Publish("t/x", "p", false).ok());
  auto echo = Collect(*link, Kind::kMessage, 1, std::chrono::seconds(5));
  EXPECT_EQ(CountKind(echo, Kind::kMessage), 1u) << "subscriptions are renewed on reconnect";
}

// Paho was once seen answering a connect seconds after its timeout: the link gives a connect
// Paho does not answer up itself. Here Paho would time out after 10 s; the link gives up first.
TEST_F(MqttLinkTest, AConnectPahoDoesNotAnswerIsGivenUpAndTheNextOneWorks) {
  auto proxy = testing::TcpProxy::Start(broker_->port());
  ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
  (*proxy)->Stall();  // the TCP connect succeeds; the broker never hears the CONNECT
  MqttLink::Options o;
  o.broker_url = (*proxy)->url();
  o.client_id = "patient";
  o.connect_timeout_ms = 10'000;
  o.give_up_connect_ms = 300;
  o.subscriptions = {"t/#"};
  auto link = MqttLink::Create(o);
  ASSERT_TRUE(link.ok()) << link.status().ToString();
  for (int attempt = 0; attempt < 2; ++attempt) {
    ASSERT_TRUE((*link)->Connect().ok());
    ASSERT_TRUE((*link)->connect_deadline().has_value());
    auto failed = Collect(**link, Kind::kConnectFailed, 1, std::chrono::seconds(10));
    ASSERT_EQ(CountKind(failed, Kind::kConnectFailed), 1u);
    EXPECT_EQ(CountKind(failed, Kind::kConnected), 0u);
    EXPECT_NE(failed.back().detail.find("no answer within 300 ms"), std::string::npos)
        << failed.back().detail;
    EXPECT_FALSE((*link)->connect_deadline().has_value());
  }
  (*proxy)->Resume();
  // Whatever the given-up attempts still say is dropped: only the new one's answer counts.
  ASSERT_TRUE(testing::WaitFor([&] { return (*link)->Connect().ok(); }, std::chrono::seconds(5)));
  auto back = Collect(**link, Kind::kConnected, 1, std::chrono::seconds(10));
  EXPECT_EQ(CountKind(back, Kind::kConnected), 1u);
  EXPECT_EQ(CountKind(back, Kind::kConnectFailed), 0u);
  ASSERT_TRUE((*link)->Publish("t/x", "p", false).ok());
  auto echo = Collect(**link, Kind::kMessage, 1, std::chrono::seconds(5));
  EXPECT_EQ(CountKind(echo, Kind::kMessage), 1u);
}

TEST_F(MqttLinkTest, RetainedStatusIsSeenByLateSubscribers) {
  auto pub = MakeLink("dev", {});
  ASSERT_TRUE(pub->Publish("instrumeter/v1/dev/status", "online", true).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto late = MakeLink("late", {"instrumeter/v1/+/status"});
  auto got = Collect(*late, Kind::kMessage, 1, std::chrono::seconds(5));
  ASSERT_EQ(CountKind(got, Kind::kMessage), 1u);
  EXPECT_TRUE(got.back().retained);
  EXPECT_EQ(got.back().payload, "online");
}

}  // namespace
}  // namespace instrumeter
