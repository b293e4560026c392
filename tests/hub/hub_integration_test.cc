// The hub as shipped: the instrumeter-hub binary as a child process, a real Mosquitto, and the
// test as a fake agent that publishes envelopes and resends until acknowledged, as an agent does.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "common/mqtt_link.h"
#include "hub/derivation.h"
#include "hub/sqlite_store.h"
#include "hub_testing/events.h"
#include "protocol/topics.h"
#include "test_support/mosquitto.h"
#include "test_support/process.h"

namespace instrumeter::hub {
namespace {

using instrumeter::testing::ChildProcess;
using instrumeter::testing::RunCommand;
using instrumeter::testing::TempDir;
using instrumeter::testing::TestBroker;
using instrumeter::testing::WriteFile;

constexpr char kHub[] = INSTRUMETER_HUB_BINARY;
constexpr char kDevice[] = "nmr-1";
constexpr auto kAckWait = std::chrono::seconds(15);
// How long the fake agent waits for an ack before it resends (the agent's ack timeout).
constexpr auto kResendAfter = std::chrono::milliseconds(1000);

std::vector<v1::Event> Slice(uint64_t first, uint64_t last) {
  const std::vector<v1::Event> run = testing::TypicalRun();
  return {run.begin() + static_cast<long>(first - 1), run.begin() + static_cast<long>(last)};
}

class HubProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto broker = TestBroker::Start();
    ASSERT_TRUE(broker.ok()) << broker.status().ToString();
    broker_ = std::move(*broker);
    WriteFile(config_, "log_level = \"debug\"\n[mqtt]\nbroker = \"" + broker_->url() +
                           "\"\nclient_id = \"hub-under-test\"\nreconnect_min_ms = 100\n"
                           "reconnect_max_ms = 1000\n[store]\npath = \"" +
                           db_ + "\"\n[ingest]\nresend_interval_ms = 500\n");
    std::string out;
    ASSERT_EQ(RunCommand({kHub, "instruments", "add", "--id", kDevice, "--name", "NMR",
                          "--institution", "Fudan", "--site", "Jiangwan", "--city", "Shanghai",
                          "--region", "Shanghai", "--config", config_},
                         &out),
              0)
        << out;

    MqttLink::Options options;
    options.broker_url = broker_->url();
    options.client_id = kDevice;
    options.subscriptions = {protocol::Topic(kDevice, protocol::Channel::kAck)};
    auto agent = MqttLink::Create(options);
    ASSERT_TRUE(agent.ok()) << agent.status().ToString();
    agent_ = std::move(*agent);
    ASSERT_TRUE(agent_->Connect().ok());
    ASSERT_TRUE(instrumeter::testing::WaitFor(
        [&] {
          Drain();
          return agent_->connected();
        },
        std::chrono::seconds(10)));
  }

  void TearDown() override {
    if (HasFailure())
      std::cerr << "--- hub log ---\n" << instrumeter::testing::ReadFile(hub_log_) << "\n";
  }

  void StartHub() {
    auto hub = ChildProcess::Start({kHub, "run", "--config", config_}, hub_log_);
    ASSERT_TRUE(hub.ok()) << hub.status().ToString();
    hub_ = std::move(*hub);
  }

  void Publish(const std::vector<v1::Event>& events) {
    ASSERT_TRUE(agent_
                    ->Publish(protocol::Topic(kDevice, protocol::Channel::kUp),
                              testing::EnvelopeOf(kDevice, events), false)
                    .ok());
  }

  // Reads the ack topic: the highest acknowledged sequence so far.
  void Drain() {
    for (const MqttLink::Event& e : agent_->TakeEvents()) {
      if (e.kind != MqttLink::Event::Kind::kMessage) continue;
      downlink_qos_.insert(e.qos);
      v1::Downlink downlink;
      ASSERT_TRUE(downlink.ParseFromString(e.payload));
      if (downlink.has_ack()) {
        ++acks_;
        highest_ack_ = std::max(highest_ack_, downlink.ack().highest_contiguous_sequence());
      }
    }
  }

  // The fake agent connects again, as the real one would after losing its connection.
  bool ReconnectAgent() {
    return instrumeter::testing::WaitFor(
        [&] {
          if (!agent_->connected()) (void)agent_->Connect();
          agent_->WaitForEvents(std::chrono::milliseconds(200));
          Drain();
          return agent_->connected();
        },
        std::chrono::seconds(10));
  }

  // Like the agent: publish, and publish again after each ack timeout, until `want` is acked.
  bool PublishUntilAcked(const std::vector<v1::Event>& events, uint64_t want) {
    const auto deadline = std::chrono::steady_clock::now() + kAckWait;
    auto next_publish = std::chrono::steady_clock::now();
    while (highest_ack_ < want && std::chrono::steady_clock::now() < deadline) {
      if (std::chrono::steady_clock::now() >= next_publish) {
        Publish(events);
        next_publish = std::chrono::steady_clock::now() + kResendAfter;
      }
      agent_->WaitForEvents(std::chrono::milliseconds(50));
      Drain();
    }
    return highest_ack_ >= want;
  }

  size_t StoredEvents() {
    auto store = OpenSqliteStore({.path = db_});
    EXPECT_TRUE(store.ok());
    return (*store)->ReadEvents(kDevice, 1, 1000)->size();
  }

  TempDir dir_;
  std::string config_ = dir_.File("hub.toml");
  std::string db_ = dir_.File("hub.db");
  std::string hub_log_ = dir_.File("hub.log");
  std::unique_ptr<TestBroker> broker_;
  std::unique_ptr<MqttLink> agent_;
  ChildProcess hub_;
  uint64_t highest_ack_ = 0;
  size_t acks_ = 0;
  std::set<int> downlink_qos_;  // the QoS each downlink arrived at
};

// The intervals derivation makes of the typical run, as the store reports them.
std::vector<std::tuple<int64_t, int, uint64_t, int64_t, uint32_t>> ExpectedIntervals() {
  DerivationState state;
  IntervalChanges changes;
  for (const v1::Event& e : testing::TypicalRun()) ApplyEvent(e, &state, &changes);
  std::vector<std::tuple<int64_t, int, uint64_t, int64_t, uint32_t>> out;
  for (const Interval& iv : changes.rows())
    if (iv.duration_ms > 0)
      out.emplace_back(iv.start_wall_unix_ms, static_cast<int>(iv.kind), iv.start_seq,
                       iv.duration_ms, iv.flags);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::tuple<int64_t, int, uint64_t, int64_t, uint32_t>> StoredIntervals(
    const std::string& db) {
  auto store = OpenSqliteStore({.path = db});
  EXPECT_TRUE(store.ok());
  auto rows = (*store)->ReadIntervals("", std::numeric_limits<int64_t>::min() / 4,
                                      std::numeric_limits<int64_t>::max() / 4);
  EXPECT_TRUE(rows.ok());
  std::vector<std::tuple<int64_t, int, uint64_t, int64_t, uint32_t>> out;
  for (const DeviceInterval& di : *rows)
    out.emplace_back(di.interval.start_wall_unix_ms, static_cast<int>(di.interval.kind),
                     di.interval.start_seq, di.interval.duration_ms, di.interval.flags);
  std::sort(out.begin(), out.end());
  return out;
}

TEST_F(HubProcessTest, AcksAfterCommitAndLosesNothingAcrossAKill9) {
  StartHub();
  v1::DeviceStatus online;
  online.set_online(true);
  online.set_since_unix_ms(testing::kWall);
  ASSERT_TRUE(agent_
                  ->Publish(protocol::Topic(kDevice, protocol::Channel::kStatus),
                            online.SerializeAsString(), /*retained=*/true)
                  .ok());

  ASSERT_TRUE(PublishUntilAcked(Slice(1, 6), 6));
  EXPECT_EQ(StoredEvents(), 6u) << "an ack means stored";

  // In flight when the hub dies, and sent while it is down (the broker queues them for the
  // hub's persistent session).
  Publish(Slice(7, 9));
  hub_.Signal(SIGKILL);
  EXPECT_EQ(hub_.Wait(std::chrono::seconds(5)), 128 + SIGKILL);
  Publish(Slice(10, 12));

  StartHub();
  // The agent resends from its lowest unacknowledged event until acked.
  ASSERT_TRUE(PublishUntilAcked(Slice(7, 12), 12));
  EXPECT_EQ(hub_.Stop(), 0) << "SIGTERM: finish the batch and exit 0";

  EXPECT_EQ(StoredEvents(), 12u);
  EXPECT_EQ(StoredIntervals(db_), ExpectedIntervals());
  std::string out;
  ASSERT_EQ(RunCommand({kHub, "status", "--format", "json", "--config", config_}, &out), 0) << out;
  // Logs go to stderr, which RunCommand mixes in: the JSON is the last thing printed.
  nlohmann::json status = nlohmann::json::parse(out.substr(out.find("[\n")));
  ASSERT_EQ(status.size(), 1u);
  EXPECT_EQ(status[0]["events_stored"], 12);
  EXPECT_EQ(status[0]["online"], true);
  EXPECT_EQ(status[0]["state"], "IDLE");
}

TEST_F(HubProcessTest, DuplicatesAreAckedAgainAndStoredOnce) {
  StartHub();
  ASSERT_TRUE(PublishUntilAcked(Slice(1, 4), 4));
  const size_t acks_before = acks_;
  // An agent that missed the ack sends the same envelope again: acked, not stored twice.
  Publish(Slice(1, 4));
  ASSERT_TRUE(instrumeter::testing::WaitFor(
      [&] {
        agent_->WaitForEvents(std::chrono::milliseconds(50));
        Drain();
        return acks_ > acks_before;
      },
      std::chrono::seconds(10)));
  EXPECT_EQ(highest_ack_, 4u);
  EXPECT_EQ(hub_.Stop(), 0);
  EXPECT_EQ(StoredEvents(), 4u);
}

TEST_F(HubProcessTest, AcksResumeAfterTheBrokerRestarts) {
  StartHub();
  ASSERT_TRUE(PublishUntilAcked(Slice(1, 3), 3));
  broker_->Kill();
  ASSERT_TRUE(broker_->Restart().ok());
  // The fake agent reconnects as the real one would; the hub does so on its own, with backoff.
  ASSERT_TRUE(ReconnectAgent());
  ASSERT_TRUE(PublishUntilAcked(Slice(4, 8), 8));
  EXPECT_EQ(hub_.Stop(), 0);
  EXPECT_EQ(StoredEvents(), 8u);
}

TEST_F(HubProcessTest, AcksGoAtQosZeroAndTheNextAckCoversOneThatWasLost) {
  StartHub();
  ASSERT_TRUE(PublishUntilAcked(Slice(1, 3), 3));
  EXPECT_EQ(downlink_qos_, std::set<int>{0}) << "the fake agent subscribed at QoS 1";

  // Events 4..6 reach the hub while the agent is away: its session is clean, so the broker keeps
  // nothing for it and their ack is lost, whatever its QoS.
  agent_->Disconnect(std::chrono::seconds(1));
  MqttLink::Options options;
  options.broker_url = broker_->url();
  options.client_id = "courier";
  auto courier = MqttLink::Create(options);
  ASSERT_TRUE(courier.ok()) << courier.status().ToString();
  ASSERT_TRUE((*courier)->Connect().ok());
  ASSERT_TRUE(instrumeter::testing::WaitFor(
      [&] {
        (*courier)->WaitForEvents(std::chrono::milliseconds(50));
        (void)(*courier)->TakeEvents();
        return (*courier)->connected();
      },
      std::chrono::seconds(10)));
  ASSERT_TRUE((*courier)
                  ->Publish(protocol::Topic(kDevice, protocol::Channel::kUp),
                            testing::EnvelopeOf(kDevice, Slice(4, 6)), false)
                  .ok());
  ASSERT_TRUE(
      instrumeter::testing::WaitFor([&] { return StoredEvents() == 6; }, std::chrono::seconds(10)));
  ASSERT_TRUE(ReconnectAgent());
  EXPECT_EQ(highest_ack_, 3u) << "the ack of 4..6 went to nobody";

  // The agent's next envelope (a heartbeat, say) is answered with everything stored so far.
  ASSERT_TRUE(PublishUntilAcked(Slice(7, 8), 8));
  EXPECT_EQ(hub_.Stop(), 0);
  EXPECT_EQ(StoredEvents(), 8u);
  EXPECT_EQ(downlink_qos_, std::set<int>{0});
}

#ifdef INSTRUMETER_FAULT_HOOKS
TEST_F(HubProcessTest, CrashAfterCommitBeforeAckIsRecoveredByTheResend) {
  setenv("INSTRUMETER_FAULT", "crash_after_commit:1", 1);
  StartHub();
  unsetenv("INSTRUMETER_FAULT");
  // Resent each ack timeout: the first copy may arrive before the hub has subscribed.
  int exit_code = -1;
  for (int attempt = 0; attempt < 10 && exit_code == -1; ++attempt) {
    Publish(Slice(1, 3));
    exit_code = hub_.Wait(kResendAfter);
  }
  EXPECT_EQ(exit_code, 137) << "the hook fires after the first commit";
  Drain();
  EXPECT_EQ(highest_ack_, 0u) << "no ack before the crash";
  EXPECT_EQ(StoredEvents(), 3u) << "but the commit is durable";

  StartHub();
  ASSERT_TRUE(PublishUntilAcked(Slice(1, 3), 3));
  EXPECT_EQ(hub_.Stop(), 0);
  EXPECT_EQ(StoredEvents(), 3u);
}
#endif

}  // namespace
}  // namespace instrumeter::hub
