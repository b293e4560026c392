#include "recorder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "fake_adapter_test_util.h"
#include "test_support/process.h"

namespace instrumeter::agent {
namespace {

using adapters::SourceState;

constexpr auto kOff = v1::INSTRUMENT_STATE_OFF;
constexpr auto kIdle = v1::INSTRUMENT_STATE_IDLE;
constexpr auto kInUse = v1::INSTRUMENT_STATE_IN_USE;

// One agent "process": config, adapters and recorder over a state_dir that outlives it.
class RecorderTest : public ::testing::Test {
 protected:
  void SetUp() override { Configure(0); }

  void Configure(int64_t debounce_ms) {
    auto cfg = ParseAgentConfig("device_id = \"nmr-1\"\nstate_dir = \"" + dir_.path() +
                                    "/state\"\ndebounce_ms = " + std::to_string(debounce_ms) +
                                    "\n[mqtt]\nbroker = \"tcp://127.0.0.1:1\"\n"
                                    "[[adapter]]\nname = \"power\"\ntype = \"fake\"\n",
                                "agent.toml", registry_);
    ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
    config_ = std::move(*cfg);
  }

  // Starts a run; returns false (with a failure) if the recorder would not open.
  void Start(const Outbox::Options& options = {}) {
    auto set = AdapterSet::Create(config_, &clock_, MakeNullLogger());
    ASSERT_TRUE(set.ok()) << set.status().ToString();
    adapters_ = std::move(*set);
    auto recorder = Recorder::Open(config_, &clock_, adapters_.get(), MakeNullLogger(), options);
    ASSERT_TRUE(recorder.ok()) << recorder.status().ToString();
    recorder_ = std::move(*recorder);
  }
  // What a SIGKILL leaves: no AgentStop, no goodbye.
  void Crash() {
    recorder_.reset();
    adapters_.reset();
  }
  void Set(SourceState s) { sources_["power"].state = s; }
  void PollAfter(int64_t ms) {
    clock_.Advance(ms);
    recorder_->Poll();
  }

  // Every event in the outbox, in sequence order (nothing is acknowledged in these tests):
  // through the recorder's own connection while it is open (the outbox is locked exclusively).
  std::vector<v1::Event> Events() {
    std::unique_ptr<Outbox> reader;
    if (!recorder_) {
      auto opened = Outbox::OpenForReading(config_.OutboxPath());
      EXPECT_TRUE(opened.ok()) << opened.status().ToString();
      if (!opened.ok()) return {};
      reader = std::move(*opened);
    }
    Outbox& outbox = recorder_ ? recorder_->outbox() : *reader;
    auto rows = outbox.Read(1, 100000, size_t{1} << 30);
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    std::vector<v1::Event> events;
    for (const Outbox::Row& row : *rows) {
      v1::Event e;
      EXPECT_TRUE(e.ParseFromString(row.bytes));
      EXPECT_EQ(e.sequence(), row.sequence);
      events.push_back(std::move(e));
    }
    return events;
  }

  testing::TempDir dir_;
  FakeClock clock_{1'000'000};
  std::map<std::string, fake::FakeSource> sources_;
  std::vector<adapters::AdapterType> registry_ = fake::FakeRegistry(&sources_);
  AgentConfig config_;
  std::unique_ptr<AdapterSet> adapters_;
  std::unique_ptr<Recorder> recorder_;
};

Counters CountersOf(const v1::Event& e) {
  if (e.has_state_change()) return FromProto(e.state_change().counters());
  if (e.has_heartbeat()) return FromProto(e.heartbeat().counters());
  return FromProto(e.agent_stop().counters());
}

// The hub's derivation (protocol/README.md, "Runs, intervals and gaps"), checking rule 5: between
// two observation points of one run, the counters grow by exactly the segment's length in the
// ways its state counts. Also checks that `at` never decreases within a run.
void ExpectHubAgrees(const std::vector<v1::Event>& events) {
  std::optional<v1::Event> last;  // the last observation point of the open run
  v1::InstrumentState in_force = v1::INSTRUMENT_STATE_UNSPECIFIED;
  for (size_t i = 0; i < events.size(); ++i) {
    const v1::Event& e = events[i];
    ASSERT_EQ(e.sequence(), i + 1) << "sequences are contiguous from 1";
    if (!protocol::IsObservationPoint(e)) continue;
    const bool run_start = e.has_state_change() && e.state_change().run_start();
    if (last && !run_start) {
      const int64_t delta = e.at().monotonic_ms() - last->at().monotonic_ms();
      ASSERT_EQ(e.at().boot_id(), last->at().boot_id());
      ASSERT_GE(delta, 0) << "event " << e.sequence() << " goes back in time";
      Counters expected = CountersOf(*last);
      if (protocol::IsPowered(in_force)) expected.powered_ms += static_cast<uint64_t>(delta);
      if (protocol::IsInUse(in_force)) expected.in_use_ms += static_cast<uint64_t>(delta);
      EXPECT_EQ(CountersOf(e), expected) << "counter mismatch at event " << e.sequence();
      if (e.has_heartbeat()) {
        EXPECT_EQ(e.heartbeat().state(), in_force);
      }
      if (e.has_agent_stop()) {
        EXPECT_EQ(e.agent_stop().state(), in_force);
      }
    }
    if (last && run_start) {
      // Across a gap nothing is counted: the new run continues the meter where the last ended.
      EXPECT_FALSE(last->has_heartbeat() || last->has_state_change())
          << "run before event " << e.sequence() << " was not closed by an AgentStop";
      EXPECT_EQ(CountersOf(e), CountersOf(*last));
    }
    if (e.has_state_change()) in_force = e.state_change().state();
    last = e;
    if (e.has_agent_stop()) in_force = v1::INSTRUMENT_STATE_UNSPECIFIED;
  }
}

TEST_F(RecorderTest, FirstPollStartsARun) {
  Start();
  Set(SourceState::kIdle);
  recorder_->Poll();
  PollAfter(1000);
  recorder_->Heartbeat();
  ASSERT_TRUE(recorder_->Stop().ok());
  const auto events = Events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_TRUE(events[0].state_change().run_start());
  EXPECT_EQ(events[0].state_change().state(), kIdle);
  EXPECT_EQ(events[0].state_change().previous_state(), v1::INSTRUMENT_STATE_UNSPECIFIED);
  EXPECT_THAT(events[0].state_change().sources_agreed(), ::testing::ElementsAre("power"));
  EXPECT_EQ(events[1].heartbeat().counters().powered_ms(), 1000u);
  EXPECT_EQ(events[1].heartbeat().outbox_depth(), 2u);
  EXPECT_EQ(events[1].heartbeat().agent_version(), AgentVersion());
  EXPECT_EQ(events[1].heartbeat().interval_ms(), 10000u);
  ASSERT_EQ(events[1].heartbeat().adapters_size(), 1);
  EXPECT_TRUE(events[1].heartbeat().adapters(0).ok());
  EXPECT_TRUE(events[2].agent_stop().clean());
  EXPECT_EQ(events[2].at().monotonic_ms(), 1'001'000);
  ExpectHubAgrees(events);
}

TEST_F(RecorderTest, CrashIsClosedAtTheCheckpointAndTheMeterContinues) {
  Start();
  Set(SourceState::kIdle);
  recorder_->Poll();  // seq 1: run start at 1'000'000
  PollAfter(1000);
  recorder_->Heartbeat();  // seq 2 at 1'001'000, powered 1000
  Set(SourceState::kInUse);
  PollAfter(1000);  // seq 3: IN_USE at 1'002'000
  PollAfter(1000);
  PollAfter(1000);  // checkpoint at 1'004'000: powered 4000, in use 2000
  Crash();

  clock_.Advance(60'000);  // the agent was down for a minute
  Start();
  recorder_->Poll();  // seq 5: run start at 1'064'000
  PollAfter(500);
  ASSERT_TRUE(recorder_->Stop().ok());  // seq 6

  const auto events = Events();
  ASSERT_EQ(events.size(), 6u);
  const v1::Event& stop = events[3];
  ASSERT_TRUE(stop.has_agent_stop());
  EXPECT_FALSE(stop.agent_stop().clean());
  EXPECT_EQ(stop.at().monotonic_ms(), 1'004'000) << "at the checkpoint, not at the restart";
  EXPECT_EQ(stop.agent_stop().state(), kInUse);
  EXPECT_EQ(CountersOf(stop), (Counters{4000, 2000}));
  const v1::Event& start = events[4];
  EXPECT_TRUE(start.state_change().run_start());
  EXPECT_EQ(start.at().monotonic_ms(), 1'064'000);
  EXPECT_EQ(start.state_change().previous_state(), kInUse);
  EXPECT_EQ(CountersOf(start), (Counters{4000, 2000})) << "the minute down is not counted";
  EXPECT_EQ(CountersOf(events[5]), (Counters{4500, 2500}));
  ExpectHubAgrees(events);
}

TEST_F(RecorderTest, CrashAfterADebouncedChangeIsClosedConsistently) {
  Configure(3000);
  Start();
  Set(SourceState::kIdle);
  recorder_->Poll();  // run start at 1'000'000
  PollAfter(1000);    // H = 1'001'000
  Set(SourceState::kInUse);
  PollAfter(1000);  // candidate at 1'002'000
  PollAfter(1000);
  PollAfter(1000);  // 1'004'000: 2 s of 3, H stays at 1'001'000
  PollAfter(1000);  // 1'005'000: IN_USE confirmed, dated 1'002'000; H = 1'005'000
  Crash();
  Start();
  const auto events = Events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1].at().monotonic_ms(), 1'002'000);
  EXPECT_EQ(CountersOf(events[1]), (Counters{2000, 0}));
  EXPECT_EQ(events[2].at().monotonic_ms(), 1'005'000);
  EXPECT_EQ(CountersOf(events[2]), (Counters{5000, 3000}));
  ExpectHubAgrees(events);
}

TEST_F(RecorderTest, CleanStopNeedsNoReconstruction) {
  Start();
  Set(SourceState::kIdle);
  recorder_->Poll();
  PollAfter(2000);
  ASSERT_TRUE(recorder_->Stop().ok());
  Crash();
  Start();
  EXPECT_EQ(Events().size(), 2u);
  recorder_->Poll();
  const auto events = Events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(CountersOf(events[2]), (Counters{2000, 0}));
}

TEST_F(RecorderTest, CheckpointWithoutOutboxIsRefused) {
  Start();
  recorder_->Poll();
  Crash();
  std::filesystem::remove(config_.OutboxPath());
  std::filesystem::remove(config_.OutboxPath() + "-wal");
  std::filesystem::remove(config_.OutboxPath() + "-shm");
  auto set = AdapterSet::Create(config_, &clock_, MakeNullLogger());
  auto recorder = Recorder::Open(config_, &clock_, set->get(), MakeNullLogger());
  ASSERT_FALSE(recorder.ok());
  EXPECT_THAT(recorder.status().message(), ::testing::HasSubstr("no outbox.db"));
}

TEST_F(RecorderTest, FailingAdapterNeverStopsTheAgent) {
  Start();
  Set(SourceState::kIdle);
  sources_["power"].error = Status::Unavailable("modbus timeout");
  recorder_->Poll();
  PollAfter(1000);
  sources_["power"].error = Status::Ok();
  PollAfter(1000);
  recorder_->Heartbeat();
  const auto events = Events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].state_change().state(), v1::INSTRUMENT_STATE_UNKNOWN);
  EXPECT_THAT(events[0].state_change().reason(), ::testing::HasSubstr("power: modbus timeout"));
  EXPECT_EQ(events[1].state_change().state(), kIdle);
  EXPECT_EQ(CountersOf(events[1]), (Counters{0, 0})) << "UNKNOWN time is not powered time";
  EXPECT_EQ(events[2].heartbeat().adapters(0).errors_total(), 2u);
}

TEST_F(RecorderTest, FullDiskKeepsEventsInMemoryInOrder) {
  Start({.max_page_count = 12});
  Set(SourceState::kIdle);
  recorder_->Poll();
  // Heartbeats fill the capped database; the meter keeps running meanwhile.
  int polls = 0;
  while (recorder_->pending() == 0 && polls < 2000) {
    PollAfter(1000);
    recorder_->Heartbeat();
    ++polls;
  }
  ASSERT_GT(recorder_->pending(), 0u) << "the cap never filled";
  const uint64_t stored = recorder_->outbox().last_sequence();
  Set(SourceState::kInUse);
  PollAfter(1000);  // a state change while the disk is full
  PollAfter(1000);
  EXPECT_GE(recorder_->pending(), 2u);
  EXPECT_EQ(recorder_->outbox().last_sequence(), stored);
  // The hub acknowledges: rows are deleted, space returns, the waiting events go in, in order.
  ASSERT_TRUE(recorder_->outbox().Acknowledge(stored, 1).ok());
  PollAfter(1000);
  EXPECT_EQ(recorder_->pending(), 0u);
  ASSERT_TRUE(recorder_->Stop().ok());
  recorder_.reset();  // as the agent exits: the outbox is locked exclusively while open
  auto reader = Outbox::OpenForReading(config_.OutboxPath());
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  auto rows = (*reader)->Read(stored + 1, 100, 1 << 20);
  ASSERT_TRUE(rows.ok());
  std::vector<v1::Event> tail;
  for (const auto& row : *rows) tail.emplace_back().ParseFromString(row.bytes);
  ASSERT_GE(tail.size(), 3u);
  EXPECT_TRUE(tail[0].has_heartbeat());
  const v1::Event& change = tail[tail.size() - 2];
  ASSERT_TRUE(change.has_state_change());
  EXPECT_EQ(change.state_change().state(), kInUse);
  EXPECT_TRUE(tail.back().agent_stop().clean());
  EXPECT_EQ(CountersOf(tail.back()).in_use_ms, 2000u);
}

TEST_F(RecorderTest, SessionMarksAreStoredAndValidated) {
  Start();
  recorder_->Poll();
  EXPECT_EQ(recorder_->StopSession().code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(recorder_->StartSession("", "").code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(recorder_->StartSession("a b", "").code(), Status::Code::kInvalidArgument);
  clock_.Advance(250);
  ASSERT_TRUE(recorder_->StartSession("YRD-2026-0042", "Li Wei").ok());
  EXPECT_EQ(recorder_->StartSession("YRD-2026-0043", "").code(), Status::Code::kFailedPrecondition);
  Crash();
  Start();  // the open session survives a restart
  ASSERT_TRUE(recorder_->open_session());
  ASSERT_TRUE(recorder_->StopSession().ok());
  const auto events = Events();
  ASSERT_EQ(events.size(), 4u);  // run start, mark, reconstructed stop, mark
  EXPECT_EQ(events[1].session_mark().kind(), v1::SessionMark::KIND_START);
  EXPECT_EQ(events[1].session_mark().order_id(), "YRD-2026-0042");
  EXPECT_EQ(events[1].session_mark().operator_name(), "Li Wei");
  EXPECT_EQ(events[1].at().monotonic_ms(), 1'000'250) << "a mark is dated now";
  EXPECT_EQ(events[3].session_mark().kind(), v1::SessionMark::KIND_STOP);
  EXPECT_EQ(events[3].session_mark().order_id(), "YRD-2026-0042");
}

// Random instruments, random debounce, random crashes and clean restarts: whatever happens, the
// hub's derivation from the events matches the agent's own counters to the millisecond.
TEST_F(RecorderTest, HubDerivationAlwaysMatchesCounters) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    sources_.clear();
    std::mt19937_64 rng(seed);
    testing::TempDir dir;
    config_.state_dir = dir.path();
    config_.debounce_ms = (seed % 2) * 2500;
    Start();
    for (int step = 0; step < 300; ++step) {
      const int r = static_cast<int>(rng() % 100);
      if (r < 12) Set(static_cast<SourceState>(rng() % 4));
      if (r == 12) sources_["power"].error = Status::Unavailable("flaky");
      if (r == 13) sources_["power"].error = Status::Ok();
      if (r < 80) {
        PollAfter(static_cast<int64_t>(rng() % 2000));
      } else if (r < 92) {
        recorder_->Heartbeat();
      } else if (r < 96) {
        Crash();
        clock_.Advance(static_cast<int64_t>(rng() % 100'000));
        Start();
      } else {
        ASSERT_TRUE(recorder_->Stop().ok());
        Crash();
        clock_.Advance(static_cast<int64_t>(rng() % 100'000));
        Start();
      }
    }
    ExpectHubAgrees(Events());
    Crash();
  }
}

}  // namespace
}  // namespace instrumeter::agent
