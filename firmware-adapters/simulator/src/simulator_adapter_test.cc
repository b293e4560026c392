#include "adapters/simulator/simulator_adapter.h"

#include <gtest/gtest.h>

#include "test_support/process.h"

namespace instrumeter::adapters::simulator {
namespace {

class RecordingSink : public ObservationSink {
 public:
  void Report(Observation o) override { seen.push_back(std::move(o)); }
  SourceState LastState() const {
    for (auto it = seen.rbegin(); it != seen.rend(); ++it)
      if (it->kind == Observation::Kind::kState) return it->state;
    return SourceState::kOff;
  }
  std::vector<Observation> seen;
};

class SimulatorTest : public ::testing::Test {
 protected:
  Result<std::unique_ptr<SimulatorAdapter>> Make(const std::string& toml) {
    auto parsed = config::ParseString(toml, "agent.toml");
    if (!parsed.ok()) return parsed.status();
    table_ = std::move(*parsed);
    auto section = config::Section::Make(table_, SimulatorSchema(), "[[adapter]] 'sim'");
    if (!section.ok()) return section.status();
    auto adapter = std::make_unique<SimulatorAdapter>(AdapterContext{"sim", &clock_, dir_.path()});
    INSTRUMETER_RETURN_IF_ERROR(adapter->Init(*section));
    return adapter;
  }

  std::string ScheduleConfig() {
    testing::WriteFile(dir_.File("s.toml"),
                       "repeat = true\n[[period]]\nstate = \"OFF\"\nduration_ms = 1000\n"
                       "[[period]]\nstate = \"IN_USE\"\nduration_ms = 3000\n"
                       "[[period]]\nstate = \"IDLE\"\nduration_ms = 2000\n");
    return "schedule_file = \"" + dir_.File("s.toml") + "\"\ntruth_file = \"" +
           dir_.File("truth.log") + "\"\n";
  }

  testing::TempDir dir_;
  FakeClock clock_{100'000};
  toml::table table_;
};

TEST_F(SimulatorTest, PlaysTheScheduleAndRecordsExactBoundaries) {
  auto sim = Make(ScheduleConfig());
  ASSERT_TRUE(sim.ok()) << sim.status().ToString();
  ASSERT_TRUE((*sim)->Start().ok());
  RecordingSink sink;
  const std::vector<std::pair<int64_t, SourceState>> expected = {{500, SourceState::kOff},
                                                                 {1700, SourceState::kInUse},
                                                                 {4200, SourceState::kIdle},
                                                                 {6300, SourceState::kOff},
                                                                 {7100, SourceState::kInUse}};
  int64_t t = 0;
  for (const auto& [at, state] : expected) {
    clock_.Advance(at - t);
    t = at;
    ASSERT_TRUE((*sim)->Poll(sink).ok());
    EXPECT_EQ(sink.LastState(), state) << "at +" << at << " ms";
  }
  clock_.Advance(400);  // +7500
  (*sim)->Stop();

  auto runs = ReadGroundTruth(dir_.File("truth.log"));
  ASSERT_TRUE(runs.ok()) << runs.status().ToString();
  ASSERT_EQ(runs->size(), 1u);
  const TruthRun& run = runs->front();
  ASSERT_TRUE(run.stop_mono_ms.has_value());
  EXPECT_EQ(*run.stop_mono_ms, 107'500);
  // Boundaries are the schedule's, not the polls': 101000, 104000, 106000, 107000.
  ASSERT_EQ(run.periods.size(), 5u);
  EXPECT_EQ(run.periods[1].start_mono_ms, 101'000);
  EXPECT_EQ(run.periods[2].start_mono_ms, 104'000);
  EXPECT_EQ(run.periods[4].start_mono_ms, 107'000);
  const TruthTotals totals = Totals(run.periods, 0, kOpenEnd);
  EXPECT_EQ(totals.in_use_ms, 3000 + 500);
  EXPECT_EQ(totals.powered_ms, 3000 + 2000 + 500);
  EXPECT_EQ(Totals(run.periods, 102'000, 105'000).in_use_ms, 2000) << "clipping to a window";
}

TEST_F(SimulatorTest, RestartContinuesTheScheduleAndAKilledRunStaysOpen) {
  {
    auto sim = Make(ScheduleConfig());
    ASSERT_TRUE(sim.ok());
    ASSERT_TRUE((*sim)->Start().ok());
    clock_.Advance(1500);
    RecordingSink sink;
    ASSERT_TRUE((*sim)->Poll(sink).ok());
    // Destroyed without Stop: like a killed agent.
  }
  clock_.Advance(3000);  // +4500: in IDLE had it kept running
  auto sim = Make(ScheduleConfig());
  ASSERT_TRUE(sim.ok());
  ASSERT_TRUE((*sim)->Start().ok());
  RecordingSink sink;
  ASSERT_TRUE((*sim)->Poll(sink).ok());
  EXPECT_EQ(sink.LastState(), SourceState::kIdle) << "the instrument kept running";
  auto runs = ReadGroundTruth(dir_.File("truth.log"));
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 2u);
  EXPECT_FALSE(runs->front().stop_mono_ms.has_value());
  EXPECT_EQ(runs->front().periods.back().end_mono_ms, kOpenEnd);
  EXPECT_EQ(runs->back().start_mono_ms, 104'500);
}

TEST_F(SimulatorTest, RandomScheduleIsRepeatableAndRealistic) {
  Schedule a = Schedule::Random(7, 1000, 5000, 20);
  Schedule b = Schedule::Random(7, 1000, 5000, 20);
  SourceState prev = SourceState::kOff;
  int changes = 0;
  for (int64_t t = 0; t < 600'000; t += 250) {
    const Position pa = a.At(t);
    EXPECT_EQ(pa.state, b.At(t).state);
    EXPECT_LE(pa.start_ms, t);
    EXPECT_GT(pa.end_ms, t);
    if (pa.state != prev) {
      ++changes;
      EXPECT_FALSE(prev == SourceState::kOff && pa.state != SourceState::kIdle)
          << "switching on goes through IDLE";
    }
    prev = pa.state;
  }
  EXPECT_GT(changes, 100);
  Schedule c = Schedule::Random(8, 1000, 5000, 20);
  int differ = 0;
  for (int64_t t = 0; t < 600'000; t += 1000) differ += a.At(t).state != c.At(t).state;
  EXPECT_GT(differ, 50) << "another seed plays another day";
}

TEST_F(SimulatorTest, BadConfigNamesTheKey) {
  auto neither = Make("truth_file = \"x\"\n");
  ASSERT_FALSE(neither.ok());
  EXPECT_NE(neither.status().message().find("schedule_file"), std::string::npos);
  auto both = Make("seed = 1\nschedule_file = \"x\"\n");
  EXPECT_FALSE(both.ok());
  testing::WriteFile(dir_.File("bad.toml"), "[[period]]\nstate = \"BUSY\"\nduration_ms = 5\n");
  auto bad_state = Make("schedule_file = \"" + dir_.File("bad.toml") + "\"\n");
  ASSERT_FALSE(bad_state.ok());
  EXPECT_NE(bad_state.status().message().find("'BUSY' is not one of"), std::string::npos)
      << bad_state.status().message();
  auto lab_day = Schedule::FromFile(INSTRUMETER_SIMULATOR_TESTDATA "/lab_day.toml");
  EXPECT_TRUE(lab_day.ok()) << lab_day.status().ToString();
}

}  // namespace
}  // namespace instrumeter::adapters::simulator
