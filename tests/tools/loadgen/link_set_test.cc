#include "link_set.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>

#include "test_support/mosquitto.h"

namespace instrumeter::loadgen {
namespace {

using Kind = MqttLink::Event::Kind;

// Polls `links` until `done` holds for what arrived (or 10 s pass); returns everything heard.
std::vector<LinkSet::Event> PollUntil(LinkSet& links,
                                      const std::function<bool(const LinkSet::Event&)>& done) {
  std::vector<LinkSet::Event> heard;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    const size_t before = heard.size();
    links.Poll(20, &heard);
    for (size_t k = before; k < heard.size(); ++k)
      if (done(heard[k])) return heard;
  }
  ADD_FAILURE() << "not heard within 10 s (" << heard.size() << " events)";
  return heard;
}

auto Is(size_t link, Kind kind) {
  return [=](const LinkSet::Event& e) { return e.link == link && e.event.kind == kind; };
}

std::unique_ptr<LinkSet> MakeLinks(const std::string& url, int64_t connect_timeout_ms = 10'000) {
  auto links = LinkSet::Create({.broker_url = url, .connect_timeout_ms = connect_timeout_ms});
  EXPECT_TRUE(links.ok()) << links.status().ToString();
  return links.ok() ? std::move(*links) : nullptr;
}

TEST(LinkSetTest, EachLinkHearsItsOwnSubscriptionsAtQosOne) {
  auto broker = testing::TestBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  auto links = MakeLinks((*broker)->url());
  ASSERT_NE(links, nullptr);
  const size_t a = *links->Add("link-a", {"t/a"});
  const size_t b = *links->Add("link-b", {"t/b/1", "t/b/2"});
  ASSERT_TRUE(links->Connect(a).ok());
  ASSERT_TRUE(links->Connect(b).ok());
  EXPECT_FALSE(links->connected(a)) << "connected only once the broker answered";
  bool a_up = false;
  PollUntil(*links, [&](const LinkSet::Event& e) {
    a_up |= e.link == a && e.event.kind == Kind::kConnected;
    return a_up && links->connected(b);
  });
  ASSERT_TRUE(links->connected(a));

  ASSERT_TRUE(links->Publish(a, "t/b/2", std::string("one\0two", 7)).ok());
  ASSERT_TRUE(links->Publish(b, "t/a", "three").ok());
  std::vector<LinkSet::Event> messages;
  PollUntil(*links, [&](const LinkSet::Event& e) {
    if (e.event.kind == Kind::kMessage) messages.push_back(e);
    return messages.size() == 2;
  });
  ASSERT_EQ(messages.size(), 2u);
  std::sort(messages.begin(), messages.end(),
            [](const auto& x, const auto& y) { return x.link < y.link; });
  EXPECT_EQ(messages[0].link, a);
  EXPECT_EQ(messages[0].event.topic, "t/a");
  EXPECT_EQ(messages[0].event.payload, "three");
  EXPECT_EQ(messages[1].link, b);
  EXPECT_EQ(messages[1].event.topic, "t/b/2");
  EXPECT_EQ(messages[1].event.payload, std::string("one\0two", 7)) << "binary payloads intact";
  for (const auto& m : messages) EXPECT_EQ(m.event.qos, 1) << "published and subscribed at QoS 1";
  links->DisconnectAll(500);
  EXPECT_FALSE(links->connected(a));
}

TEST(LinkSetTest, ALostConnectionIsReportedAndConnectsAgainWhenTheBrokerIsBack) {
  auto broker = testing::TestBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  auto links = MakeLinks((*broker)->url());
  ASSERT_NE(links, nullptr);
  const size_t a = *links->Add("link-a", {"t/a"});
  ASSERT_TRUE(links->Connect(a).ok());
  PollUntil(*links, Is(a, Kind::kConnected));

  (*broker)->Kill();
  PollUntil(*links, Is(a, Kind::kConnectionLost));
  EXPECT_FALSE(links->connected(a));
  EXPECT_EQ(links->Publish(a, "t/a", "lost").code(), Status::Code::kUnavailable);

  ASSERT_TRUE((*broker)->Restart().ok());
  ASSERT_TRUE(links->Connect(a).ok());
  PollUntil(*links, Is(a, Kind::kConnected));
  ASSERT_TRUE(links->Publish(a, "t/a", "back").ok());
  auto heard = PollUntil(*links, Is(a, Kind::kMessage));
  ASSERT_FALSE(heard.empty());
  EXPECT_EQ(heard.back().event.payload, "back") << "subscribed again on the new connection";
}

TEST(LinkSetTest, AConnectNobodyAnswersIsReportedFailed) {
  // Refused: a broker that was stopped leaves its port closed.
  auto broker = testing::TestBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  const std::string closed_url = (*broker)->url();
  (*broker)->Stop();
  auto refused = MakeLinks(closed_url);
  ASSERT_NE(refused, nullptr);
  const size_t r = *refused->Add("refused", {"t/r"});
  ASSERT_TRUE(refused->Connect(r).ok());
  auto heard = PollUntil(*refused, Is(r, Kind::kConnectFailed));
  ASSERT_FALSE(heard.empty());
  EXPECT_NE(heard.back().event.detail.find("refused"), std::string::npos)
      << heard.back().event.detail;

  // Silent: a socket that completes the TCP handshake (the kernel does, from its backlog) and never
  // answers the CONNECT.
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof addr;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &size), 0);
  auto silent = MakeLinks("tcp://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)), 300);
  ASSERT_NE(silent, nullptr);
  const size_t s = *silent->Add("silent", {"t/s"});
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(silent->Connect(s).ok());
  heard = PollUntil(*silent, Is(s, Kind::kConnectFailed));
  ASSERT_FALSE(heard.empty());
  EXPECT_NE(heard.back().event.detail.find("no answer"), std::string::npos)
      << heard.back().event.detail;
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(300));
  EXPECT_FALSE(silent->connected(s));
  ::close(listener);
}

TEST(LinkSetTest, RefusesUrlsItCannotConnectTo) {
  for (const char* url : {"ssl://127.0.0.1:8883", "tcp://127.0.0.1", "tcp://127.0.0.1:99999",
                          "tcp://127.0.0.1:12x", "127.0.0.1:1883"}) {
    auto links = LinkSet::Create({.broker_url = url});
    ASSERT_FALSE(links.ok()) << url;
    EXPECT_EQ(links.status().code(), Status::Code::kInvalidArgument) << url;
    EXPECT_NE(links.status().ToString().find(url), std::string::npos)
        << "names the URL: " << links.status().ToString();
  }
}

}  // namespace
}  // namespace instrumeter::loadgen
