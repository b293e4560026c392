// Exponential backoff with full jitter, for reconnect loops: the n-th retry waits a random time in
// [min/2, cap_n], where cap_n = min(max, min * 2^n). Jitter keeps a thousand agents that lost the
// same broker from reconnecting in lockstep. Not thread-safe; one per loop.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>

namespace instrumeter {

class Backoff {
 public:
  Backoff(int64_t min_ms, int64_t max_ms, uint64_t seed = std::random_device{}())
      : min_ms_(min_ms), max_ms_(std::max(min_ms, max_ms)), rng_(seed) {}

  // The delay before the next attempt; each call doubles the cap until max.
  int64_t NextDelayMs() {
    const int64_t cap = std::min<int64_t>(max_ms_, min_ms_ << std::min(attempts_, 30));
    ++attempts_;
    std::uniform_int_distribution<int64_t> dist(min_ms_ / 2, std::max(min_ms_ / 2, cap));
    return dist(rng_);
  }
  // After a success: the next failure starts from min again.
  void Reset() { attempts_ = 0; }
  int attempts() const { return attempts_; }

 private:
  int64_t min_ms_;
  int64_t max_ms_;
  int attempts_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace instrumeter
