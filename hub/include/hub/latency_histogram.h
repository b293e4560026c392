// A latency histogram with fixed Prometheus-style buckets, lock-free: Observe from one thread,
// read (Snapshot) from any other. Bucket bounds are in seconds, as Prometheus expects.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>

namespace instrumeter::hub {

class LatencyHistogram {
 public:
  // Upper bounds (inclusive) in seconds; +Inf is implicit. Sized for commits (sub-millisecond
  // to seconds on a slow disk) and acks (tens of milliseconds by design: the batch delay).
  static constexpr std::array<double, 14> kBoundsSeconds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

  struct Snapshot {
    std::array<uint64_t, kBoundsSeconds.size()> cumulative{};  // observations <= each bound
    uint64_t count = 0;
    double sum_seconds = 0;
  };

  void ObserveMicros(uint64_t micros) {
    const double seconds = static_cast<double>(micros) / 1e6;
    for (size_t i = 0; i < kBoundsSeconds.size(); ++i) {
      if (seconds <= kBoundsSeconds[i]) {
        ++buckets_[i];
        break;
      }
    }
    sum_micros_ += micros;
    ++count_;
  }

  Snapshot Read() const {
    Snapshot s;
    uint64_t running = 0;
    for (size_t i = 0; i < kBoundsSeconds.size(); ++i) {
      running += buckets_[i].load();
      s.cumulative[i] = running;
    }
    // An observation may be caught between its bucket and the count: raising the count to the
    // buckets' total keeps the +Inf bucket from falling below the last bound.
    s.count = std::max(count_.load(), running);
    s.sum_seconds = static_cast<double>(sum_micros_.load()) / 1e6;
    return s;
  }

 private:
  std::array<std::atomic<uint64_t>, kBoundsSeconds.size()> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micros_{0};
};

}  // namespace instrumeter::hub
