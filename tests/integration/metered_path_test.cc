// End to end: simulated instruments -> agents -> Mosquitto -> hub -> SQLite, compared with the
// simulator's ground truth. "Exact" here means: every sequence stored exactly once, nothing left
// in any outbox, and each instrument's powered and in-use time at the hub within 1 s of what the
// instrument really did while its agent was running.
#include <gtest/gtest.h>

#include <thread>

#include "stack.h"

namespace instrumeter::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int64_t kToleranceMs = 1000;

#define ASSERT_OK(expr)                             \
  do {                                              \
    const Status _st = (expr);                      \
    ASSERT_TRUE(_st.ok()) << #expr << ": " << _st.ToString(); \
  } while (false)

void SleepUntil(int64_t start_mono_ms, int64_t offset_ms) {
  const int64_t wait = start_mono_ms + offset_ms - MonotonicNowMs();
  if (wait > 0) std::this_thread::sleep_for(milliseconds(wait));
}

// Stops every agent cleanly and checks that each one's events are all at the hub, once, and
// that the hub's hours match the ground truth.
void StopAndVerify(Stack& stack) {
  for (const std::string& id : stack.agent_ids())
    EXPECT_EQ(stack.StopAgent(id), 0) << "agent " << id << " did not exit cleanly";
  for (const std::string& id : stack.agent_ids()) {
    SCOPED_TRACE("instrument " + id);
    auto outbox = stack.ReadOutbox(id);
    ASSERT_TRUE(outbox.ok()) << outbox.status().ToString();
    const auto [last_sequence, depth] = *outbox;
    EXPECT_EQ(depth, 0) << "events left undelivered in the outbox";
    Stack::HubView hub;
    ASSERT_TRUE(WaitFor(
        [&] {
          auto v = stack.ReadHub(id);
          if (v.ok()) hub = *v;
          return v.ok() && hub.contiguous_seq == last_sequence;
        },
        seconds(30)))
        << "hub stored up to " << hub.contiguous_seq << " of " << last_sequence;
    EXPECT_GT(last_sequence, 20);
    EXPECT_EQ(hub.events, last_sequence) << "every sequence stored, none twice";
    EXPECT_EQ(hub.distinct_seq, last_sequence);
    EXPECT_EQ(hub.max_seq, last_sequence);
    EXPECT_EQ(hub.counter_mismatches, 0) << "hub intervals disagree with the agent's counters";

    auto truth = stack.Truth(id);
    ASSERT_TRUE(truth.ok()) << truth.status().ToString();
    EXPECT_GT(truth->powered_ms, 0);
    EXPECT_NEAR(hub.powered_ms, truth->powered_ms, kToleranceMs);
    EXPECT_NEAR(hub.in_use_ms, truth->in_use_ms, kToleranceMs);

    const std::vector<int64_t> downtimes = stack.Downtimes(id);
    ASSERT_EQ(hub.gap_ms.size(), downtimes.size()) << "one gap per time the agent was down";
    for (size_t i = 0; i < downtimes.size(); ++i)
      EXPECT_NEAR(hub.gap_ms[i], downtimes[i], kToleranceMs) << "gap " << i;
  }
}

TEST(MeteredPathTest, ThreeInstrumentsForAMinuteMatchGroundTruth) {
  auto stack = Stack::Start();
  ASSERT_TRUE(stack.ok()) << stack.status().ToString();
  for (uint64_t i = 1; i <= 3; ++i)
    ASSERT_OK((*stack)->AddAgent("e2e-nmr-" + std::to_string(i), {.seed = 100 + i}));
  std::this_thread::sleep_for(seconds(60));
  StopAndVerify(**stack);
}

TEST(MeteredPathTest, HubBrokerAndAgentKilledAndRestartedLoseAndDoubleNothing) {
  auto stack = Stack::Start();
  ASSERT_TRUE(stack.ok()) << stack.status().ToString();
  Stack& s = **stack;
  for (uint64_t i = 1; i <= 3; ++i)
    ASSERT_OK(s.AddAgent("fault-sem-" + std::to_string(i), {.seed = 200 + i}));
  const int64_t t0 = MonotonicNowMs();
  SleepUntil(t0, 8'000);
  s.KillHub();
  SleepUntil(t0, 11'000);
  ASSERT_OK(s.StartHub());
  SleepUntil(t0, 18'000);
  s.KillBroker();
  SleepUntil(t0, 21'000);
  ASSERT_OK(s.RestartBroker());
  SleepUntil(t0, 28'000);
  s.KillAgent("fault-sem-2");
  SleepUntil(t0, 33'000);
  ASSERT_OK(s.StartAgent("fault-sem-2"));
  SleepUntil(t0, 40'000);
  s.KillHub();
  SleepUntil(t0, 43'000);
  ASSERT_OK(s.StartHub());
  SleepUntil(t0, 50'000);
  s.KillBroker();
  SleepUntil(t0, 53'000);
  ASSERT_OK(s.RestartBroker());
  SleepUntil(t0, 65'000);
  StopAndVerify(s);
}

TEST(MeteredPathTest, AgentCutOffForThirtySecondsKeepsMeasuringThenDeliversInOrder) {
  auto stack = Stack::Start();
  ASSERT_TRUE(stack.ok()) << stack.status().ToString();
  Stack& s = **stack;
  ASSERT_OK(s.AddAgent("offline-ms-1", {.seed = 300}));
  std::this_thread::sleep_for(seconds(5));
  auto before = s.ReadHub("offline-ms-1");
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  s.KillBroker();
  std::this_thread::sleep_for(seconds(30));
  auto waiting = s.ReadOutbox("offline-ms-1");
  ASSERT_TRUE(waiting.ok());
  EXPECT_GE(waiting->second, 25) << "heartbeats of the offline half-minute wait in the outbox";
  std::string status;
  EXPECT_EQ(RunCommand({INSTRUMETER_AGENT_BIN, "status", "--config",
                        s.agent("offline-ms-1").config_path},
                       &status),
            0);
  EXPECT_NE(status.find("disconnected"), std::string::npos) << status;
  ASSERT_OK(s.RestartBroker());
  std::this_thread::sleep_for(seconds(8));
  auto after = s.ReadHub("offline-ms-1");
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->stored_in_sequence_order) << "the backlog arrived in sequence order";
  EXPECT_GT(after->contiguous_seq, before->contiguous_seq + 25);
  StopAndVerify(s);
}

}  // namespace
}  // namespace instrumeter::testing
