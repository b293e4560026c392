// Fault 4 of issue 6: the link between an agent and the broker cut (30 s; 10 min in the full
// run), left half-open (stalled) and silently dropping, through a TCP proxy the agent connects
// through; then "exact", and the reconnects must back off.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <thread>

#include "fault_scale.h"
#include "stack.h"
#include "test_support/tcp_proxy.h"
#include "verify.h"

namespace instrumeter::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::vector<int64_t> AcceptsBetween(const TcpProxy& proxy, int64_t from, int64_t to) {
  std::vector<int64_t> out;
  for (int64_t t : proxy.AcceptTimes())
    if (t >= from && t < to) out.push_back(t);
  return out;
}

TEST(FAULT_SUITE, LinkCutStalledAndDroppingThenExactWithBackoff) {
  auto stack = Stack::Start();
  ASSERT_TRUE(stack.ok()) << stack.status().ToString();
  Stack& s = **stack;
  auto proxy = TcpProxy::Start(s.broker().port());
  ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
  TcpProxy& p = **proxy;
  // Backoff from 100 ms doubling to 4 s; a 2 s keepalive finds a half-open link in about 3 s.
  ASSERT_OK(s.AddAgent("link-1", {.seed = 4001,
                                  .broker_url = p.url(),
                                  .keepalive_s = 2,
                                  .reconnect_min_ms = 100,
                                  .reconnect_max_ms = 4000}));
  ASSERT_OK(s.AddAgent("link-2", {.seed = 4002}));  // beside it, on a direct link
  std::this_thread::sleep_for(seconds(4));
  ASSERT_EQ(p.open_connections(), 1u);

  // Cut: both sides closed, every new attempt accepted and closed at once.
  const int64_t cut_at = MonotonicNowMs();
  p.Cut();
  std::this_thread::sleep_for(milliseconds(kScale.long_cut_ms));
  const int64_t resumed_at = MonotonicNowMs();
  p.Resume();
  const std::vector<int64_t> attempts = AcceptsBetween(p, cut_at, resumed_at);
  std::vector<int64_t> gaps;
  for (size_t i = 1; i < attempts.size(); ++i) gaps.push_back(attempts[i] - attempts[i - 1]);
  ASSERT_GE(gaps.size(), 8u) << "too few reconnect attempts during the cut";
  // The n-th delay after the loss is drawn from [min/2, min(max, min * 2^n)] (common/backoff.h),
  // so the first three gaps between attempts are at most 200, 400 and 800 ms (plus a failed
  // connect's own time), while later ones average about 2 s. A client that did not back off
  // would keep retrying every 100 ms or less.
  for (size_t i = 0; i < 3; ++i) EXPECT_LE(gaps[i], (200 << i) + 300) << "early gap " << i;
  const size_t tail = std::min<size_t>(8, gaps.size() - 3);
  const int64_t tail_mean =
      std::accumulate(gaps.end() - static_cast<std::ptrdiff_t>(tail), gaps.end(), int64_t{0}) /
      static_cast<int64_t>(tail);
  EXPECT_GT(tail_mean, 400) << "reconnects did not back off";
  EXPECT_LT(attempts.size(), static_cast<size_t>(kScale.long_cut_ms / 500 + 20))
      << "reconnect attempts far more often than the backoff allows";
  std::printf(
      "[figures] link cut %lld ms: %zu connection attempts, first gaps %lld/%lld/%lld ms, mean "
      "of the last %zu gaps %lld ms\n",
      static_cast<long long>(kScale.long_cut_ms), attempts.size(), static_cast<long long>(gaps[0]),
      static_cast<long long>(gaps[1]), static_cast<long long>(gaps[2]), tail,
      static_cast<long long>(tail_mean));

  // After the cut the backlog drains through the proxy.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto o = s.ReadOutbox("link-1");
        return o.ok() && o->second <= 1;
      },
      seconds(60)))
      << "backlog not delivered after the cut";
  const int64_t drained_ms = MonotonicNowMs() - resumed_at;

  // Half-open: nothing forwarded, nothing closed. The keepalive must notice and reconnect.
  const int64_t stall_at = MonotonicNowMs();
  p.Stall();
  std::this_thread::sleep_for(milliseconds(kScale.stall_ms));
  const int64_t stall_end = MonotonicNowMs();
  p.Resume();
  const size_t stall_attempts = AcceptsBetween(p, stall_at, stall_end).size();
  EXPECT_GE(stall_attempts, 1u) << "the agent never noticed the half-open link";
  std::this_thread::sleep_for(seconds(5));

  // Dropping: the proxy reads and discards both ways; the connection looks alive to TCP.
  const int64_t drop_at = MonotonicNowMs();
  p.Drop();
  std::this_thread::sleep_for(milliseconds(kScale.stall_ms));
  const int64_t drop_end = MonotonicNowMs();
  p.Resume();
  const size_t drop_attempts = AcceptsBetween(p, drop_at, drop_end).size();
  EXPECT_GE(drop_attempts, 1u) << "the agent never noticed the link that drops everything";
  std::this_thread::sleep_for(seconds(5));
  std::printf(
      "[figures] backlog of the cut delivered %lld ms after resume; reconnect attempts while "
      "half-open %zu, while dropping %zu\n",
      static_cast<long long>(drained_ms), stall_attempts, drop_attempts);
  StopAndVerify(s);
}

}  // namespace
}  // namespace instrumeter::testing
