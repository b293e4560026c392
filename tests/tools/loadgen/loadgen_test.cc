#include "loadgen.h"

#include <gtest/gtest.h>

#include "protocol/codec.h"

namespace instrumeter::loadgen {
namespace {

TEST(LoadgenTest, BacklogIsOneValidRunWithConsistentCounters) {
  int64_t powered = 0;
  int64_t in_use = 0;
  const std::vector<std::string> events = MakeBacklog("boot-1", 35, &powered, &in_use);
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

}  // namespace
}  // namespace instrumeter::loadgen
