#include "contradiction.h"

#include <gtest/gtest.h>

#include "fake_adapter_test_util.h"
#include "recorder.h"
#include "test_support/process.h"

namespace instrumeter::agent {
namespace {

using adapters::SourceState;

std::vector<Opinion> Say(std::optional<SourceState> power, std::optional<SourceState> daq) {
  return {{"power", power, power ? "" : "timeout"}, {"daq", daq, daq ? "" : "timeout"}};
}

TEST(ContradictionWatcherTest, RaisedOnlyAfterItLastsAndClearedWhenTheyAgree) {
  ContradictionWatcher watcher({{"power", "daq", 10'000}});
  // Full power draw, nobody running the acquisition software.
  auto c = watcher.Update(Say(SourceState::kInUse, SourceState::kIdle), 0);
  EXPECT_TRUE(c.raised.empty());
  c = watcher.Update(Say(SourceState::kInUse, SourceState::kIdle), 9'999);
  EXPECT_TRUE(c.raised.empty()) << "not before after_ms";
  EXPECT_TRUE(watcher.Active(9'999).empty());
  c = watcher.Update(Say(SourceState::kInUse, SourceState::kIdle), 10'000);
  ASSERT_EQ(c.raised.size(), 1u);
  EXPECT_EQ(c.raised[0], "power says IN_USE, daq says IDLE, for 10 s");
  c = watcher.Update(Say(SourceState::kInUse, SourceState::kIdle), 20'000);
  EXPECT_TRUE(c.raised.empty()) << "raised once, not every poll";
  ASSERT_EQ(watcher.Active(25'000).size(), 1u);
  EXPECT_EQ(watcher.Active(25'000)[0], "power says IN_USE, daq says IDLE, for 25 s");
  c = watcher.Update(Say(SourceState::kInUse, SourceState::kInUse), 26'000);
  EXPECT_EQ(c.cleared.size(), 1u);
  EXPECT_TRUE(watcher.Active(26'000).empty());
}

TEST(ContradictionWatcherTest, SoftwareRunningWithTheMeterAtZeroAndSilenceResets) {
  ContradictionWatcher watcher({{"power", "daq", 5'000}});
  watcher.Update(Say(SourceState::kOff, SourceState::kInUse), 0);
  watcher.Update(Say(std::nullopt, SourceState::kInUse), 3'000);  // the meter cannot tell
  watcher.Update(Say(SourceState::kOff, SourceState::kInUse), 4'000);
  EXPECT_TRUE(watcher.Update(Say(SourceState::kOff, SourceState::kInUse), 8'999).raised.empty())
      << "an adapter that cannot tell interrupts the contradiction";
  EXPECT_EQ(watcher.Update(Say(SourceState::kOff, SourceState::kInUse), 9'000).raised.size(), 1u);
  // OFF against IDLE is no contradiction: the software is simply not running.
  ContradictionWatcher calm({{"power", "daq", 0}});
  EXPECT_TRUE(calm.Update(Say(SourceState::kOff, SourceState::kIdle), 0).raised.empty());
  EXPECT_TRUE(calm.Update(Say(SourceState::kIdle, SourceState::kIdle), 1).raised.empty());
}

class ContradictionAgentTest : public ::testing::Test {
 protected:
  Result<AgentConfig> Parse(const std::string& evidence) {
    return ParseAgentConfig("device_id = \"nmr-1\"\nstate_dir = \"" + dir_.path() +
                                "/state\"\n[mqtt]\nbroker = \"tcp://127.0.0.1:1\"\n" + evidence +
                                "[[adapter]]\nname = \"power\"\ntype = \"fake\"\n"
                                "[[adapter]]\nname = \"daq\"\ntype = \"fake\"\n",
                            "agent.toml", registry_);
  }

  testing::TempDir dir_;
  std::map<std::string, fake::FakeSource> sources_;
  std::vector<adapters::AdapterType> registry_ = fake::FakeRegistry(&sources_);
};

TEST_F(ContradictionAgentTest, ConfigErrorsNameTheKey) {
  auto one = Parse("[evidence]\n[[evidence.contradiction]]\nbetween = [\"power\"]\n");
  ASSERT_FALSE(one.ok());
  EXPECT_NE(one.status().message().find("key 'between': must name two different adapters"),
            std::string::npos)
      << one.status().message();
  auto unknown = Parse("[evidence]\n[[evidence.contradiction]]\nbetween = [\"power\", \"cam\"]\n");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("'cam'"), std::string::npos);
  auto typo = Parse(
      "[evidence]\n[[evidence.contradiction]]\nbetween = [\"power\", \"daq\"]\n"
      "after_s = 5\n");
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.status().message().find("unknown key 'after_s'"), std::string::npos);
}

TEST_F(ContradictionAgentTest, HeartbeatsCarryTheFlagOnceItHasLasted) {
  auto cfg = Parse(
      "[evidence]\npower_sources = [\"power\"]\nuse_sources = [\"daq\"]\n"
      "[[evidence.contradiction]]\nbetween = [\"power\", \"daq\"]\nafter_ms = 2000\n");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  FakeClock clock;
  auto adapters = AdapterSet::Create(*cfg, &clock, MakeNullLogger());
  ASSERT_TRUE(adapters.ok());
  auto recorder = Recorder::Open(*cfg, &clock, adapters->get(), MakeNullLogger());
  ASSERT_TRUE(recorder.ok()) << recorder.status().ToString();
  sources_["power"].state = SourceState::kInUse;
  sources_["daq"].state = SourceState::kIdle;
  for (int i = 0; i < 4; ++i) {
    (*recorder)->Poll();
    clock.Advance(1000);
  }
  (*recorder)->Heartbeat();
  auto rows = (*recorder)->outbox().Read(1, 100, size_t{1} << 20);
  ASSERT_TRUE(rows.ok());
  v1::Event last;
  ASSERT_TRUE(last.ParseFromString(rows->back().bytes));
  ASSERT_TRUE(last.has_heartbeat());
  EXPECT_TRUE(last.heartbeat().disagreement());
  ASSERT_EQ(last.heartbeat().disagreements_size(), 1);
  EXPECT_EQ(last.heartbeat().disagreements(0), "power says IN_USE, daq says IDLE, for 4 s");
  EXPECT_EQ(last.heartbeat().state(), v1::INSTRUMENT_STATE_IDLE)
      << "the contradiction is evidence for a human; it changes no state";
}

}  // namespace
}  // namespace instrumeter::agent
