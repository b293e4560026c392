#include "verify.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

namespace instrumeter::testing {

void SleepUntil(int64_t start_mono_ms, int64_t offset_ms) {
  const int64_t wait = start_mono_ms + offset_ms - MonotonicNowMs();
  if (wait > 0) std::this_thread::sleep_for(std::chrono::milliseconds(wait));
}

int64_t WaitForEmptyOutboxes(Stack& stack, std::chrono::milliseconds timeout) {
  const int64_t start = MonotonicNowMs();
  const bool empty = WaitFor(
      [&] {
        for (const std::string& id : stack.agent_ids()) {
          auto outbox = stack.ReadOutbox(id);
          if (!outbox.ok() || outbox->second != 0) return false;
        }
        return true;
      },
      timeout);
  return empty ? MonotonicNowMs() - start : -1;
}

void VerifyInstrument(Stack& stack, const std::string& id, const VerifyOptions& options) {
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
      options.hub_catch_up))
      << "hub stored up to " << hub.contiguous_seq << " of " << last_sequence;
  EXPECT_GT(last_sequence, options.min_sequences);
  EXPECT_EQ(hub.events, last_sequence) << "every sequence stored, none twice";
  EXPECT_EQ(hub.distinct_seq, last_sequence);
  EXPECT_EQ(hub.max_seq, last_sequence);
  EXPECT_EQ(hub.counter_mismatches, 0) << "hub intervals disagree with the agent's counters";

  const std::vector<int64_t> downtimes = stack.Downtimes(id);
  ASSERT_EQ(hub.gap_ms.size(), downtimes.size()) << "one gap per time the agent was down";
  // A killed agent's last settled point (its checkpoint, one poll interval at most before the
  // kill) is where the hub's gap starts; the test can only time the kill itself. So each gap may
  // be longer than the downtime by that unobserved tail, and the hub's hours shorter by the sum
  // of those tails: time reported inside a gap, never counted, never invented.
  int64_t unobserved_ms = 0;
  for (size_t i = 0; i < downtimes.size(); ++i) {
    EXPECT_NEAR(hub.gap_ms[i], downtimes[i], options.tolerance_ms) << "gap " << i;
    unobserved_ms += std::max<int64_t>(0, hub.gap_ms[i] - downtimes[i]);
  }

  auto truth = stack.Truth(id);
  ASSERT_TRUE(truth.ok()) << truth.status().ToString();
  EXPECT_GT(truth->powered_ms, 0);
  // Never more than the instrument did; less only by what the gaps report as unobserved.
  EXPECT_LE(hub.powered_ms, truth->powered_ms + options.tolerance_ms) << "hours invented";
  EXPECT_LE(hub.in_use_ms, truth->in_use_ms + options.tolerance_ms) << "hours invented";
  EXPECT_GE(hub.powered_ms + unobserved_ms + options.tolerance_ms, truth->powered_ms)
      << "powered hours lost beyond the reported gaps (" << unobserved_ms << " ms unobserved)";
  EXPECT_GE(hub.in_use_ms + unobserved_ms + options.tolerance_ms, truth->in_use_ms)
      << "in-use hours lost beyond the reported gaps (" << unobserved_ms << " ms unobserved)";
}

void StopAndVerify(Stack& stack, const VerifyOptions& options) {
  for (const std::string& id : stack.agent_ids())
    EXPECT_EQ(stack.StopAgent(id), 0) << "agent " << id << " did not exit cleanly";
  for (const std::string& id : stack.agent_ids()) VerifyInstrument(stack, id, options);
  // A sequence reused with other bytes, or a replay that differs, is refused and alarmed by the
  // hub, never stored: the rows above cannot show it, its log does.
  EXPECT_EQ(ReadFile(stack.hub_log()).find("SECURITY ALARM"), std::string::npos)
      << "the hub saw a (device, sequence) with other bytes";
}

}  // namespace instrumeter::testing
