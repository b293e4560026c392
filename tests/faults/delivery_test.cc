// Faults 7 and 8 of issue 6: messages duplicated, replayed and reordered on the way to the hub;
// the hub offline for longer than the broker's queue for it holds. Then "exact".
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <thread>

#include "fault_checks.h"
#include "fault_scale.h"
#include "mqtt_tap.h"
#include "protocol/topics.h"
#include "stack.h"
#include "verify.h"

namespace instrumeter::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Fault 7: an MQTT client that captures every envelope on instrumeter/v1/+/up and publishes them
// again: the newest once more (duplicate), random old ones (replay) and the last few in reverse
// order (reordered batch), while the agents keep sending; at the end, everything once more.
TEST(FAULT_SUITE, DuplicatedReplayedAndReorderedEnvelopesCountNothingTwice) {
  auto stack = Stack::Start();
  ASSERT_TRUE(stack.ok()) << stack.status().ToString();
  Stack& s = **stack;
  auto tap =
      MqttTap::Start(s.broker().url(), "replayer", {protocol::AllDevices(protocol::Channel::kUp)});
  ASSERT_TRUE(tap.ok()) << tap.status().ToString();
  MqttTap& replayer = **tap;
  ASSERT_TRUE(replayer.WaitConnected(seconds(10)));
  for (uint64_t i = 1; i <= 3; ++i)
    ASSERT_OK(s.AddAgent("replay-" + std::to_string(i), {.seed = 7000 + i}));
  std::this_thread::sleep_for(seconds(5));

  std::mt19937_64 rng(7);
  const int64_t until = MonotonicNowMs() + kScale.replay_ms;
  while (MonotonicNowMs() < until) {
    std::vector<MqttTap::Message> seen = replayer.Messages();
    ASSERT_FALSE(seen.empty());
    const MqttTap::Message& newest = seen.back();
    replayer.Publish(newest.topic, newest.payload);  // duplicate
    for (int i = 0; i < 3; ++i) {                    // replays of old envelopes
      const MqttTap::Message& old = seen[rng() % seen.size()];
      replayer.Publish(old.topic, old.payload);
    }
    const size_t batch = std::min<size_t>(5, seen.size());  // a reordered batch
    for (size_t i = 0; i < batch; ++i) {
      const MqttTap::Message& m = seen[seen.size() - 1 - i];
      replayer.Publish(m.topic, m.payload);
    }
    std::this_thread::sleep_for(milliseconds(300));
  }
  StopAndVerify(s);

  // Everything ever sent, once more and shuffled, after the runs ended: nothing may change.
  std::vector<MqttTap::Message> all = replayer.Messages();
  std::shuffle(all.begin(), all.end(), rng);
  for (const MqttTap::Message& m : all) replayer.Publish(m.topic, m.payload);
  const uint64_t target = replayer.published();
  EXPECT_TRUE(WaitFor([&] { return replayer.published() >= target; }, seconds(30)));
  std::this_thread::sleep_for(seconds(3));
  for (const std::string& id : s.agent_ids()) VerifyInstrument(s, id);
  EXPECT_EQ(ReadFile(s.hub_log()).find("SECURITY ALARM"), std::string::npos);
  std::printf("[figures] envelopes replayed: %llu (duplicates, old, reordered, final replay)\n",
              static_cast<unsigned long long>(replayer.published()));
}

// Fault 8: the broker keeps at most 50 messages for the offline hub; the hub stays away far
// longer than that covers, so the broker drops messages. The hub must see the gaps, ask for
// resends, and end exact.
TEST(FAULT_SUITE, HubOfflineLongerThanBrokerQueueAsksForResendsAndEndsExact) {
  auto stack = Stack::Start({.broker_extra_config = "max_queued_messages 50\n"});
  ASSERT_TRUE(stack.ok()) << stack.status().ToString();
  Stack& s = **stack;
  auto tap = MqttTap::Start(s.broker().url(), "downlink-recorder",
                            {protocol::AllDevices(protocol::Channel::kAck)});
  ASSERT_TRUE(tap.ok()) << tap.status().ToString();
  ASSERT_TRUE((*tap)->WaitConnected(seconds(10)));
  // A wide window sends every heartbeat while the hub is away (more than the broker keeps), and
  // an ack timeout longer than the whole test leaves the hub's ResendRequest as the only way the
  // dropped events can come back.
  for (uint64_t i = 1; i <= 3; ++i)
    ASSERT_OK(
        s.AddAgent("queue-" + std::to_string(i),
                   {.seed = 8000 + i, .ack_timeout_ms = 600'000, .max_envelopes_in_flight = 64}));
  std::this_thread::sleep_for(seconds(5));
  s.KillHub();
  std::this_thread::sleep_for(milliseconds(kScale.hub_offline_ms));
  const int64_t restarted = MonotonicNowMs();
  ASSERT_OK(s.StartHub());
  const int64_t drained_ms = WaitForEmptyOutboxes(s, seconds(60));
  EXPECT_GE(drained_ms, 0) << "the backlog did not drain";
  std::this_thread::sleep_for(seconds(2));
  StopAndVerify(s);

  EXPECT_NE(ReadFile(s.broker().log_path()).find("dropped"), std::string::npos)
      << "the broker never dropped a message: the fault did not happen";
  const size_t resends = CountResendRequests((*tap)->Messages());
  EXPECT_GE(resends, 1u) << "the hub never asked for a resend";
  std::printf(
      "[figures] hub offline %lld ms behind a 50-message broker queue: %zu resend requests, "
      "outboxes empty %lld ms after the hub's restart (%lld ms after restart)\n",
      static_cast<long long>(kScale.hub_offline_ms), resends, static_cast<long long>(drained_ms),
      static_cast<long long>(MonotonicNowMs() - restarted));
}

}  // namespace
}  // namespace instrumeter::testing
