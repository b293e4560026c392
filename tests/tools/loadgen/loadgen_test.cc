#include "loadgen.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "common/clock.h"
#include "protocol/chain.h"
#include "protocol/codec.h"
#include "test_support/mosquitto.h"

namespace instrumeter::loadgen {
namespace {

TEST(LoadgenTest, BacklogIsOneValidRunWithConsistentCounters) {
  int64_t powered = 0;
  int64_t in_use = 0;
  const std::vector<std::string> events = MakeBacklog("boot-1", 35, {}, &powered, &in_use);
  ASSERT_EQ(events.size(), 35u);
  // 34 steps of 1 s; IN_USE from event 10 to 20 and from 30 to 34 (flips every 10 events).
  EXPECT_EQ(powered, 34'000);
  EXPECT_EQ(in_use, 14'000);
  auto envelope =
      protocol::DecodeEnvelope(protocol::EncodeEnvelope("load-00000", "boot-1", 1, events));
  ASSERT_TRUE(envelope.ok()) << envelope.status().ToString();
  const auto& decoded = envelope->events;
  ASSERT_TRUE(decoded.front().has_state_change());
  EXPECT_TRUE(decoded.front().state_change().run_start());
  int state_changes = 0;
  uint64_t last_powered = 0;
  for (size_t i = 0; i < decoded.size(); ++i) {
    const v1::Event& e = decoded[i];
    EXPECT_EQ(e.sequence(), i + 1);
    EXPECT_EQ(e.at().boot_id(), "boot-1");
    const v1::Counters& c =
        e.has_state_change() ? e.state_change().counters() : e.heartbeat().counters();
    EXPECT_EQ(c.powered_ms(), 1000 * i) << "powered the whole time, 1 s per event";
    EXPECT_GE(c.powered_ms(), last_powered);
    last_powered = c.powered_ms();
    state_changes += e.has_state_change() ? 1 : 0;
  }
  EXPECT_EQ(state_changes, 4);  // the run start, then at events 10, 20 and 30
  EXPECT_EQ(decoded.back().heartbeat().counters().in_use_ms(), 14'000u);
  EXPECT_EQ(decoded.front().at().wall_unix_ms(), Timeline().wall_start_ms);
}

TEST(LoadgenTest, BacklogFollowsItsTimeline) {
  int64_t powered = 0;
  int64_t in_use = 0;
  const Timeline timeline{.wall_start_ms = 1'800'000'000'000, .step_ms = 10'000};
  const std::vector<std::string> events = MakeBacklog("boot-1", 12, timeline, &powered, &in_use);
  EXPECT_EQ(powered, 110'000);  // 11 steps of 10 s
  EXPECT_EQ(in_use, 10'000);    // IN_USE from event 10 on
  v1::Event first;
  v1::Event last;
  ASSERT_TRUE(first.ParseFromString(events.front()) && last.ParseFromString(events.back()));
  EXPECT_EQ(first.at().wall_unix_ms(), 1'800'000'000'000);
  EXPECT_EQ(last.at().wall_unix_ms(), 1'800'000'110'000);
  EXPECT_EQ(last.at().monotonic_ms() - first.at().monotonic_ms(), 110'000);
  EXPECT_EQ(last.heartbeat().interval_ms(), 10'000u);
  EXPECT_EQ(last.heartbeat().counters().powered_ms(), 110'000u);
}

TEST(LoadgenTest, DeviceIdsAreZeroPaddedAndValid) {
  LoadOptions options;
  EXPECT_EQ(DeviceId(options, 7), "load-00007");
  options.device_prefix = "bench.";
  EXPECT_EQ(DeviceId(options, 1234), "bench.01234");
}

TEST(LoadgenTest, RefusesNonsenseOptions) {
  LoadOptions options;
  options.devices = 0;
  EXPECT_EQ(RunLoad(options).status().code(), Status::Code::kInvalidArgument);
}

TEST(LoadgenTest, LatencyPercentilesAreNearestRank) {
  std::vector<int32_t> samples;
  for (int32_t i = 100; i >= 1; --i) samples.push_back(i);  // 1..100, reversed
  const LatencySummary s = SummariseLatencies(&samples);
  EXPECT_EQ(s.samples, 100u);
  EXPECT_EQ(s.p50_ms, 50);
  EXPECT_EQ(s.p90_ms, 90);
  EXPECT_EQ(s.p99_ms, 99);
  EXPECT_EQ(s.max_ms, 100);
  std::vector<int32_t> one = {7};
  const LatencySummary single = SummariseLatencies(&one);
  EXPECT_EQ(single.p50_ms, 7);
  EXPECT_EQ(single.p99_ms, 7);
  std::vector<int32_t> none;
  EXPECT_EQ(SummariseLatencies(&none).samples, 0u);
  EXPECT_EQ(SummariseLatencies(&none).p99_ms, 0);
}

TEST(LoadgenTest, DeviceKeysAreDeterministicPerDeviceAndVerify) {
  auto a = DeviceKey("load-00001");
  auto again = DeviceKey("load-00001");
  auto b = DeviceKey("load-00002");
  ASSERT_TRUE(a.ok() && again.ok() && b.ok()) << a.status().ToString();
  EXPECT_EQ(a->public_key(), again->public_key());
  EXPECT_NE(a->public_key(), b->public_key());
  const std::string link = protocol::ChainGenesis("load-00001");
  auto signature = a->SignHead("load-00001", 1, link);
  ASSERT_TRUE(signature.ok());
  auto verifying = protocol::VerifyingKey::FromRaw(a->public_key());
  ASSERT_TRUE(verifying.ok());
  EXPECT_TRUE(verifying->VerifyHead("load-00001", *signature).ok());
}

TEST(LoadgenTest, RefusesNegativeTimes) {
  LoadOptions options;
  options.period_ms = -1;
  EXPECT_EQ(RunLoad(options).status().code(), Status::Code::kInvalidArgument);
  options.period_ms = 0;
  options.warmup_ms = -1;
  EXPECT_EQ(RunLoad(options).status().code(), Status::Code::kInvalidArgument);
  options.warmup_ms = 0;
  options.start_spread_ms = -1;
  EXPECT_EQ(RunLoad(options).status().code(), Status::Code::kInvalidArgument);
}

// Devices grouped on shared connections deliver through a real broker to the echo, in backlog
// and in live mode, each device acknowledged on its own ack topic.
TEST(LoadgenTest, DevicesSharingConnectionsAreEachDeliveredAndAcknowledged) {
  auto broker = testing::TestBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  Result<EchoReport> echo = Status::Unavailable("not run");
  std::atomic<bool> stop_echo{false};
  std::thread echo_thread([&] { echo = RunEcho((*broker)->url(), 120'000, &stop_echo); });
  LoadOptions options;
  options.broker_url = (*broker)->url();
  options.device_prefix = "mux-";
  options.devices = 12;
  options.devices_per_connection = 5;  // connections of 5, 5 and 2 devices
  options.backlog = 20;
  options.events_per_envelope = 4;
  options.window = 2;
  options.ack_timeout_ms = 500;  // the echo may subscribe after the first envelopes went out
  options.timeout_ms = 30'000;
  auto backlog = RunLoad(options);
  options.device_prefix = "mux-live-";
  options.backlog = 5;
  options.period_ms = 100;
  // Device i starts at 25 * i ms (spread over 3 periods); of the events due before 300 ms,
  // devices 0-3 have 3, devices 4-7 have 2 and devices 8-11 have 1, uncounted.
  options.start_spread_ms = 300;
  options.warmup_ms = 300;
  const int64_t live_from = SystemClock().WallUnixMs();
  auto live = RunLoad(options);
  const int64_t live_to = SystemClock().WallUnixMs();
  stop_echo = true;
  echo_thread.join();

  ASSERT_TRUE(backlog.ok()) << backlog.status().ToString();
  EXPECT_TRUE(backlog->complete) << backlog->devices_drained << " of 12 drained";
  EXPECT_EQ(backlog->ack_latency.samples, 12u * 20u);
  EXPECT_GE(backlog->events_sent, 12u * 20u);
  ASSERT_TRUE(live.ok()) << live.status().ToString();
  EXPECT_TRUE(live->complete) << live->devices_drained << " of 12 drained";
  EXPECT_EQ(live->ack_latency.samples, 12u * 5u - 24u) << "the warm-up is not counted";
  EXPECT_EQ(live->send_lag.samples, 12u * 5u - 24u) << "each event's first publication, once";
  EXPECT_LE(live->send_lag.p50_ms, live->ack_latency.p50_ms);
  EXPECT_EQ(backlog->send_lag.samples, 0u) << "backlog mode has no due times";
  ASSERT_TRUE(echo.ok()) << echo.status().ToString();
  EXPECT_GE(echo->events, 12u * 25u);
  EXPECT_EQ(echo->malformed, 0u);
  // Live events carry the real time, as an agent's do (the backlog's are in 2026's first hour).
  EXPECT_GE(echo->newest_wall_unix_ms, live_from);
  EXPECT_LE(echo->newest_wall_unix_ms, live_to);

  // Three connections per run, named after the prefix, and none named after a device.
  std::ifstream log((*broker)->log_path());
  std::stringstream text;
  text << log.rdbuf();
  for (const char* id :
       {"as mux-conn-0 ", "as mux-conn-1 ", "as mux-conn-2 ", "as mux-live-conn-2 "})
    EXPECT_NE(text.str().find(id), std::string::npos) << id << " in\n" << text.str();
  EXPECT_EQ(text.str().find("as mux-conn-3 "), std::string::npos);
  EXPECT_EQ(text.str().find("as mux-00000 "), std::string::npos);
}

TEST(LoadgenTest, RefusesZeroDevicesPerConnection) {
  LoadOptions options;
  options.devices_per_connection = 0;
  EXPECT_EQ(RunLoad(options).status().code(), Status::Code::kInvalidArgument);
}

}  // namespace
}  // namespace instrumeter::loadgen
