// The live API of the hub as shipped: the instrumeter-hub binary with [http] on a free loopback
// port, a real Mosquitto, and the test as a fake agent publishing envelopes. Every endpoint over
// the socket, the stream's latency from publish to event, and /healthz following the broker;
// bookings imported by the CLI showing in the running hub, and share links made by the CLI.
#include <gtest/gtest.h>
#include <signal.h>

#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/clock.h"
#include "common/mqtt_link.h"
#include "hub_testing/events.h"
#include "hub_testing/http_client.h"
#include "protocol/topics.h"
#include "test_support/mosquitto.h"
#include "test_support/process.h"

namespace instrumeter::hub {
namespace {

using instrumeter::testing::ChildProcess;
using instrumeter::testing::RunCommand;
using instrumeter::testing::TempDir;
using instrumeter::testing::TestBroker;
using instrumeter::testing::WaitFor;
using instrumeter::testing::WriteFile;
using nlohmann::json;
using testing::Get;
using testing::SseClient;

constexpr char kHub[] = INSTRUMETER_HUB_BINARY;
constexpr auto kWait = std::chrono::seconds(15);

class LiveApiProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto broker = TestBroker::Start();
    ASSERT_TRUE(broker.ok()) << broker.status().ToString();
    broker_ = std::move(*broker);
    port_ = instrumeter::testing::FreeLoopbackPort();
    WriteFile(config_,
              "[mqtt]\nbroker = \"" + broker_->url() +
                  "\"\nreconnect_min_ms = 100\nreconnect_max_ms = 500\n[store]\npath = \"" +
                  dir_.File("hub.db") + "\"\n[http]\nlisten = \"127.0.0.1:" +
                  std::to_string(port_) + "\"\nstream_heartbeat_ms = 1000\n");
    for (const auto& [id, city] : {std::pair{"nmr-1", "Shanghai"}, std::pair{"tem-2", "Suzhou"}}) {
      std::string out;
      ASSERT_EQ(RunCommand({kHub, "instruments", "add", "--id", id, "--name",
                            std::string("Inst ") + id, "--institution", "Lab", "--site", "Main",
                            "--city", city, "--region", city, "--config", config_},
                           &out),
                0)
          << out;
    }
    auto hub = ChildProcess::Start({kHub, "run", "--config", config_}, hub_log_);
    ASSERT_TRUE(hub.ok());
    hub_ = std::move(*hub);
    ASSERT_TRUE(WaitFor([&] { return Status("/healthz") == 200; }, kWait)) << "hub not healthy";

    MqttLink::Options options;
    options.broker_url = broker_->url();
    options.client_id = "nmr-1";
    auto agent = MqttLink::Create(options);
    ASSERT_TRUE(agent.ok());
    agent_ = std::move(*agent);
    ASSERT_TRUE(agent_->Connect().ok());
    ASSERT_TRUE(WaitFor([&] { return agent_->connected(); }, kWait));
  }

  void TearDown() override {
    if (HasFailure())
      std::cerr << "--- hub log ---\n" << instrumeter::testing::ReadFile(hub_log_) << "\n";
  }

  int Status(const std::string& target) {
    auto r = Get(port_, target);
    return r.ok() ? r->status : 0;
  }

  json GetJson(const std::string& target) {
    auto r = Get(port_, target);
    if (!r.ok()) return json();
    return json::parse(r->body, nullptr, false);
  }

  void Publish(const std::vector<v1::Event>& events) {
    ASSERT_TRUE(agent_
                    ->Publish(protocol::Topic("nmr-1", protocol::Channel::kUp),
                              hub::testing::EnvelopeOf("nmr-1", events), false)
                    .ok());
  }

  TempDir dir_;
  std::string config_ = dir_.File("hub.toml");
  std::string hub_log_ = dir_.File("hub.log");
  std::unique_ptr<TestBroker> broker_;
  int port_ = 0;
  ChildProcess hub_;
  std::unique_ptr<MqttLink> agent_;
};

TEST_F(LiveApiProcessTest, ServesTheLiveStateTheStreamMetricsAndHealth) {
  SystemClock clock;
  const int64_t t0 = clock.WallUnixMs();
  using hub::testing::Change;
  using hub::testing::kBoot1;
  using hub::testing::Start;
  Publish({Start(1, v1::INSTRUMENT_STATE_IDLE, {kBoot1, 1000, t0})});
  ASSERT_TRUE(
      WaitFor([&] { return GetJson("/api/v1/instruments/nmr-1")["state"] == "IDLE"; }, kWait));

  auto stream = SseClient::Open(port_, "/api/v1/stream", kWait);
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  ASSERT_EQ((*stream)->head().status, 200);
  Publish({Change(2, v1::INSTRUMENT_STATE_IN_USE, {kBoot1, 31'000, t0 + 30'000, 30'000, 0})});
  const auto published = std::chrono::steady_clock::now();
  auto event = (*stream)->Next(kWait);
  const auto latency = std::chrono::steady_clock::now() - published;
  ASSERT_TRUE(event.has_value());
  // From the agent's publish (through the broker, the batch delay and the commit) to the event.
  EXPECT_LT(latency, std::chrono::seconds(1));
  EXPECT_EQ(event->event, "state");
  json data = json::parse(event->data);
  EXPECT_EQ(data["instrument_id"], "nmr-1");
  EXPECT_EQ(data["state"], "IN_USE");
  // Heartbeat comments arrive while nothing changes.
  EXPECT_FALSE((*stream)->Next(std::chrono::milliseconds(2500)).has_value());
  EXPECT_GE((*stream)->comments(), 1);

  json list = GetJson("/api/v1/instruments");
  ASSERT_EQ(list["count"], 2);
  EXPECT_EQ(list["instruments"][0]["state"], "IN_USE");
  EXPECT_EQ(list["instruments"][1]["state"], "NOT_OBSERVED");
  EXPECT_EQ(GetJson("/api/v1/instruments?city=Suzhou")["count"], 1);
  EXPECT_EQ(Status("/api/v1/instruments?state=ASLEEP"), 400);
  EXPECT_EQ(Status("/api/v1/instruments/none"), 404);
  json timeline = GetJson("/api/v1/instruments/nmr-1/timeline");
  ASSERT_EQ(timeline["intervals"].size(), 1u) << timeline.dump();
  EXPECT_DOUBLE_EQ(timeline["intervals"][0]["duration_seconds"], 30.0);
  EXPECT_EQ(Status("/api/v1/instruments/nmr-1/timeline?from=x"), 400);
  EXPECT_EQ(Status("/"), 200);

  auto metrics = Get(port_, "/metrics");
  ASSERT_TRUE(metrics.ok());
  std::map<std::string, double> samples;
  std::istringstream lines(metrics->body);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    samples[line.substr(0, line.rfind(' '))] = std::stod(line.substr(line.rfind(' ') + 1));
  }
  EXPECT_EQ(samples["instrumeter_hub_events_stored_total"], 2);
  EXPECT_EQ(samples["instrumeter_hub_acks_sent_total"], 2);
  EXPECT_EQ(samples["instrumeter_hub_ack_latency_seconds_count"], 2);
  EXPECT_GE(samples["instrumeter_hub_inbound_wait_seconds_count"], 2) << "every message taken";
  EXPECT_EQ(samples["instrumeter_hub_broker_connected"], 1);
  EXPECT_EQ(samples["instrumeter_hub_instruments_by_state{state=\"IN_USE\"}"], 1);

  // The broker goes away: /healthz says so; it comes back: healthy again.
  broker_->Kill();
  ASSERT_TRUE(WaitFor([&] { return Status("/healthz") == 503; }, kWait));
  json down = GetJson("/healthz");
  EXPECT_EQ(down["status"], "unavailable");
  EXPECT_EQ(down["broker_connected"], false);
  EXPECT_EQ(down["reasons"][0], "broker: not connected");
  ASSERT_TRUE(broker_->Restart().ok());
  ASSERT_TRUE(WaitFor([&] { return Status("/healthz") == 200; }, kWait));

  EXPECT_EQ(hub_.Stop(), 0) << "SIGTERM stops the http thread too";
  EXPECT_TRUE((*stream)->Next(kWait) == std::nullopt);
}

// The hub allocates with jemalloc (hub/CMakeLists.txt; docs/performance.md, "Capacity"), except
// in sanitizer builds, which keep the sanitizers' allocator.
TEST_F(LiveApiProcessTest, TheHubAllocatesWithJemalloc) {
  const std::string maps =
      instrumeter::testing::ReadFile("/proc/" + std::to_string(hub_.pid()) + "/maps");
#if defined(__SANITIZE_ADDRESS__)
  EXPECT_EQ(maps.find("libjemalloc"), std::string::npos);
#else
  EXPECT_NE(maps.find("libjemalloc"), std::string::npos) << maps;
#endif
  EXPECT_EQ(hub_.Stop(), 0);
}

TEST_F(LiveApiProcessTest, AHubWithHttpDisabledListensNowhere) {
  EXPECT_EQ(hub_.Stop(), 0);
  WriteFile(config_, instrumeter::testing::ReadFile(config_) + "enabled = false\n");
  auto hub = ChildProcess::Start({kHub, "run", "--config", config_}, hub_log_);
  ASSERT_TRUE(hub.ok());
  hub_ = std::move(*hub);
  // A plausible wall time: one before 2020 is refused as malformed (protocol/README.md).
  Publish({hub::testing::Start(1, v1::INSTRUMENT_STATE_IDLE,
                               {hub::testing::kBoot1, 1, hub::testing::kWall})});
  ASSERT_TRUE(WaitFor(
      [&] {
        std::string out;
        RunCommand({kHub, "status", "--format", "json", "--config", config_}, &out);
        return out.find("\"IDLE\"") != std::string::npos;
      },
      kWait));
  EXPECT_FALSE(instrumeter::testing::PortAcceptsConnections(port_));
}

TEST_F(LiveApiProcessTest, CliBookingsAndShareLinksReachTheRunningHub) {
  // Restarted with a short registry refresh, so that a CLI import shows quickly.
  EXPECT_EQ(hub_.Stop(), 0);
  WriteFile(config_, instrumeter::testing::ReadFile(config_) + "registry_refresh_ms = 300\n");
  auto hub = ChildProcess::Start({kHub, "run", "--config", config_}, hub_log_);
  ASSERT_TRUE(hub.ok());
  hub_ = std::move(*hub);
  ASSERT_TRUE(WaitFor([&] { return Status("/healthz") == 200; }, kWait));

  // A token exists from now on: the API needs it, share links do not.
  std::string token;
  ASSERT_EQ(RunCommand({kHub, "tokens", "add", "ops", "--config", config_}, &token), 0) << token;
  ASSERT_NE(token.find("imt_"), std::string::npos) << token;
  token = token.substr(token.find("imt_"), 68);  // "imt_" and 64 hex digits
  const auto get = [&](const std::string& target, const std::string& bearer) {
    return hub::testing::Fetch(
        port_, {.target = target, .headers = {{"Authorization", "Bearer " + bearer}}});
  };

  const int64_t now = SystemClock().WallUnixMs();
  const json booking = {
      {"order_id", "YRD-7"},
      {"instrument_id", "nmr-1"},
      {"customer", {{"organisation", "Suzhou Bio Co"}, {"city", "Suzhou"}, {"region", "JS"}}},
      {"start", FormatUtc(now - 3'600'000)},
      {"end", FormatUtc(now + 3'600'000)},
      {"remote", true},
      {"rate_fen_per_hour", 30'000}};
  WriteFile(dir_.File("bookings.json"), booking.dump());
  std::string out;
  ASSERT_EQ(
      RunCommand({kHub, "bookings", "import", dir_.File("bookings.json"), "--config", config_},
                 &out),
      0)
      << out;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = get("/api/v1/instruments/nmr-1", token);
        return r.ok() && r->status == 200 &&
               json::parse(r->body)["current_booking"]["order_id"] == "YRD-7";
      },
      kWait));

  std::string link;
  const std::string base = "http://127.0.0.1:" + std::to_string(port_);
  ASSERT_EQ(RunCommand(
                {kHub, "bookings", "share", "YRD-7", "--base-url", base + "/", "--config", config_},
                &link),
            0)
      << link;
  const size_t at = link.find(base + "/live/");
  ASSERT_NE(at, std::string::npos) << link;
  const std::string path = link.substr(at + base.size(), std::string("/live/").size() + 32);
  EXPECT_EQ(Status(path), 200);
  json data = GetJson(path + "/data");
  EXPECT_EQ(data["order_id"], "YRD-7");
  EXPECT_EQ(data["instrument"]["instrument_id"], "nmr-1");
  const std::string share_token = path.substr(std::string("/live/").size());
  EXPECT_EQ(get("/api/v1/instruments", share_token)->status, 401);
  EXPECT_EQ(Status("/api/v1/instruments"), 401);

  // A new link replaces it.
  ASSERT_EQ(RunCommand({kHub, "bookings", "share", "YRD-7", "--config", config_}, &out), 0) << out;
  EXPECT_EQ(Status(path), 410);
  ASSERT_NE(out.find("/live/"), std::string::npos) << out;
  EXPECT_EQ(Status(out.substr(out.find("/live/"), path.size())), 200);
}

}  // namespace
}  // namespace instrumeter::hub
