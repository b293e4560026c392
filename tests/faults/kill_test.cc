// Faults 1-3 of issue 6: the broker, the hub and the agent SIGKILLed again and again while
// simulated instruments run, then "exact" (verify.h) against ground truth.
#include <gtest/gtest.h>

#include <cstdio>
#include <thread>

#include "fault_checks.h"
#include "fault_scale.h"
#include "mqtt_tap.h"
#include "protocol/topics.h"
#include "stack.h"
#include "verify.h"

namespace instrumeter::testing {
namespace {

using std::chrono::seconds;

// Fault 1: ten instruments, the broker SIGKILLed (it loses what it had not saved) and restarted.
TEST(FAULT_SUITE, BrokerKilledRepeatedlyTenInstrumentsExact) {
  auto stack = Stack::Start();
  ASSERT_TRUE(stack.ok()) << stack.status().ToString();
  Stack& s = **stack;
  for (uint64_t i = 1; i <= 10; ++i)
    ASSERT_OK(s.AddAgent("brk-" + std::to_string(i), {.seed = 1000 + i}));
  int64_t t = MonotonicNowMs();
  for (int k = 0; k < kScale.broker_kills; ++k) {
    SleepUntil(t, 5'000);
    s.KillBroker();
    SleepUntil(t, 5'000 + 1'000 + 500 * (k % 3));  // down 1-2 s
    ASSERT_OK(s.RestartBroker());
    t = MonotonicNowMs();
  }
  const int64_t drained_ms = WaitForEmptyOutboxes(s, seconds(60));
  std::printf("[figures] broker kills: %d; every outbox emptied %lld ms after the last restart\n",
              kScale.broker_kills, static_cast<long long>(drained_ms));
  EXPECT_GE(drained_ms, 0) << "an outbox was not empty within 60 s of the last restart";
  StopAndVerify(s);
}

// Fault 2: the hub SIGKILLed, and crashed by its fault hook right after a commit and before its
// acks, alternately.
TEST(FAULT_SUITE, HubKilledRepeatedlyIncludingBetweenCommitAndAckExact) {
  auto stack = Stack::Start();
  ASSERT_TRUE(stack.ok()) << stack.status().ToString();
  Stack& s = **stack;
  auto tap = MqttTap::Start(s.broker().url(), "ack-recorder",
                            {protocol::AllDevices(protocol::Channel::kAck)});
  ASSERT_TRUE(tap.ok()) << tap.status().ToString();
  ASSERT_TRUE((*tap)->WaitConnected(seconds(10)));
  for (uint64_t i = 1; i <= 4; ++i)
    ASSERT_OK(s.AddAgent("hubk-" + std::to_string(i), {.seed = 2000 + i}));
  std::this_thread::sleep_for(seconds(3));
  int crashes_by_hook = 0;
  for (int k = 0; k < kScale.hub_kills; ++k) {
    if (k % 2 == 0) {
      std::this_thread::sleep_for(seconds(3));
      s.KillHub();
    } else {
#ifdef INSTRUMETER_FAULT_HOOKS
      // Restarted with the hook: it dies by itself right after its 5th commit, acks unsent.
      s.KillHub();
      ASSERT_OK(s.StartHub({"INSTRUMETER_FAULT=crash_after_commit:5"}));
      EXPECT_EQ(s.WaitHubExit(seconds(30)), 137) << "the crash_after_commit hook did not fire";
      ++crashes_by_hook;
#else
      std::this_thread::sleep_for(seconds(3));
      s.KillHub();
#endif
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1'000 + 500 * (k % 3)));
    ASSERT_OK(s.StartHub());
  }
  std::this_thread::sleep_for(seconds(3));
  StopAndVerify(s);
  const std::vector<SeenAck> acks = ParseAcks((*tap)->Messages());
  std::printf("[figures] hub kills: %d (%d between commit and ack); %zu acks checked\n",
              kScale.hub_kills, crashes_by_hook, acks.size());
  EXPECT_GT(acks.size(), 20u);
  ExpectEveryAckCommitted(s, acks);
}

// Fault 3: one agent SIGKILLed again and again, some of the kills inside a checkpoint write (the
// fault hook tears the slot in half); a second agent runs undisturbed beside it.
TEST(FAULT_SUITE, AgentKilledRepeatedlyIncludingMidCheckpointGapsEqualDowntime) {
  auto stack = Stack::Start();
  ASSERT_TRUE(stack.ok()) << stack.status().ToString();
  Stack& s = **stack;
  const std::string id = "agk-1";
  ASSERT_OK(s.AddAgent(id, {.seed = 3001}));
  ASSERT_OK(s.AddAgent("agk-2", {.seed = 3002}));
  std::this_thread::sleep_for(seconds(3));
  int64_t last_sequence = 0;
  auto expect_sequence_kept = [&](const char* when) {
    auto outbox = s.ReadOutbox(id);
    ASSERT_TRUE(outbox.ok()) << outbox.status().ToString();
    EXPECT_GE(outbox->first, last_sequence) << "the last sequence went back " << when;
    last_sequence = outbox->first;
  };
  int torn = 0;
  for (int k = 0; k < kScale.agent_kills; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1'500 + 300 * (k % 4)));
    s.KillAgent(id);
    expect_sequence_kept("after a SIGKILL");
    std::this_thread::sleep_for(std::chrono::milliseconds(800 + 400 * (k % 3)));
#ifdef INSTRUMETER_FAULT_HOOKS
    if (k % 3 == 2) {
      // This run's 20th checkpoint write (about 2 s in) is torn in half by _exit.
      ASSERT_OK(s.StartAgent(id, {"INSTRUMETER_FAULT=crash_in_checkpoint:20"}));
      ASSERT_EQ(s.WaitAgentCrash(id, seconds(30)), 137) << "crash_in_checkpoint did not fire";
      ++torn;
      expect_sequence_kept("after a torn checkpoint write");
      std::this_thread::sleep_for(std::chrono::milliseconds(1'000));
    }
#endif
    ASSERT_OK(s.StartAgent(id));
  }
  std::this_thread::sleep_for(seconds(3));
  StopAndVerify(s, {.min_sequences = 10});
  auto hub = s.ReadHub(id);
  ASSERT_TRUE(hub.ok());
  std::printf(
      "[figures] agent killed %zu times (%d in a checkpoint write); %zu gaps, %lld "
      "sequences\n",
      s.agent(id).kills_mono_ms.size(), torn, hub->gap_ms.size(),
      static_cast<long long>(hub->max_seq));
}

}  // namespace
}  // namespace instrumeter::testing
