// Fault 5 of issue 6: the disk under the hub's database, then under an agent's state_dir, fills
// up (a small tmpfs the test mounts, filled by a filler file) and is freed again. No crash, no
// ack without a commit, an alarm, and exact once the space is back.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <thread>

#include "fault_checks.h"
#include "fault_scale.h"
#include "protocol/topics.h"
#include "small_fs.h"
#include "stack.h"
#include "verify.h"

namespace instrumeter::testing {
namespace {

using std::chrono::seconds;

bool LogHas(const std::string& path, const std::string& text) {
  return ReadFile(path).find(text) != std::string::npos;
}

TEST(FAULT_SUITE, HubDiskFullThenFreedAlarmsAcksNothingUncommittedEndsExact) {
  auto fs = SmallFilesystem::Mount(8 << 20);
  if (!fs.ok()) GTEST_SKIP() << fs.status().ToString();
  auto stack = Stack::Start({.hub_db = (*fs)->path() + "/hub.db"});
  ASSERT_TRUE(stack.ok()) << stack.status().ToString();
  Stack& s = **stack;
  auto tap = MqttTap::Start(s.broker().url(), "ack-recorder",
                            {protocol::AllDevices(protocol::Channel::kAck)});
  ASSERT_TRUE(tap.ok()) << tap.status().ToString();
  ASSERT_TRUE((*tap)->WaitConnected(seconds(10)));
  for (uint64_t i = 1; i <= 3; ++i)
    ASSERT_OK(s.AddAgent("hubdisk-" + std::to_string(i), {.seed = 5000 + i}));
  std::this_thread::sleep_for(seconds(5));

  auto filled = (*fs)->Fill();
  ASSERT_TRUE(filled.ok()) << filled.status().ToString();
  const int64_t full_at = MonotonicNowMs();
  EXPECT_TRUE(
      WaitFor([&] { return LogHas(s.hub_log(), "ALARM: ingest commit failed"); }, seconds(30)))
      << "the hub raised no alarm on a full disk";
  const int64_t alarm_ms = MonotonicNowMs() - full_at;
  // The hub's /healthz and /metrics (another change) will carry this alarm too; the log line is
  // what this build has.
  std::this_thread::sleep_for(std::chrono::milliseconds(kScale.disk_full_ms));
  EXPECT_TRUE(s.HubRunning()) << "the hub died on a full disk";
  (*fs)->Free();
  const int64_t freed_at = MonotonicNowMs();
  EXPECT_TRUE(WaitFor([&] { return LogHas(s.hub_log(), "commits succeed again"); }, seconds(30)));
  const int64_t recovered_ms = MonotonicNowMs() - freed_at;
  std::this_thread::sleep_for(seconds(3));
  StopAndVerify(s);
  ExpectEveryAckCommitted(s, ParseAcks((*tap)->Messages()));
  std::printf(
      "[figures] hub disk full (filler %zu bytes): alarm after %lld ms; commits again %lld ms "
      "after the space was freed\n",
      *filled, static_cast<long long>(alarm_ms), static_cast<long long>(recovered_ms));
}

TEST(FAULT_SUITE, AgentDiskFullKeepsMeasuringInMemoryAndStoresLaterExact) {
  auto fs = SmallFilesystem::Mount(4 << 20);
  if (!fs.ok()) GTEST_SKIP() << fs.status().ToString();
  auto stack = Stack::Start();
  ASSERT_TRUE(stack.ok()) << stack.status().ToString();
  Stack& s = **stack;
  const std::string id = "agentdisk-1";
  ASSERT_OK(s.AddAgent(id, {.seed = 5101, .state_dir = (*fs)->path() + "/state"}));
  std::this_thread::sleep_for(seconds(5));

  auto filled = (*fs)->Fill();
  ASSERT_TRUE(filled.ok()) << filled.status().ToString();
  const std::string log = s.agent(id).dir + "/agent.log";
  EXPECT_TRUE(WaitFor([&] { return LogHas(log, "wait in memory"); }, seconds(30)))
      << "the agent never reported events waiting in memory";
  std::this_thread::sleep_for(std::chrono::milliseconds(kScale.disk_full_ms));
  EXPECT_TRUE(s.agent(id).process.Running()) << "the agent died on a full disk";
  (*fs)->Free();
  EXPECT_TRUE(WaitFor([&] { return LogHas(log, "outbox writable again"); }, seconds(30)));
  std::this_thread::sleep_for(seconds(3));
  StopAndVerify(s);
  // "outbox writable again: stored N event(s) that waited in memory"
  const std::string text = ReadFile(log);
  const std::string marker = "outbox writable again: stored ";
  const size_t at = text.find(marker);
  const long waited = at == std::string::npos ? -1 : std::atol(text.c_str() + at + marker.size());
  EXPECT_GT(waited, 0) << "no event waited in memory: the fault did not happen";
  std::printf(
      "[figures] agent disk full (filler %zu bytes) for %lld ms: %ld events waited in memory "
      "and were stored when the space returned\n",
      *filled, static_cast<long long>(kScale.disk_full_ms), waited);
}

}  // namespace
}  // namespace instrumeter::testing
