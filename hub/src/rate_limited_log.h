// Logging that cannot flood: at most one line per reason per window, carrying how many similar
// lines were held back. Counts belong in HubMetrics; the log only has to tell an operator what
// kind of thing is going wrong. Not thread-safe; one per owning loop.
#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "common/clock.h"

namespace instrumeter::hub {

class RateLimitedLog {
 public:
  // `clock` is borrowed and must outlive this object.
  explicit RateLimitedLog(const Clock* clock, int64_t window_ms = 10'000)
      : clock_(clock), window_ms_(window_ms) {}

  void Log(spdlog::level::level_enum level, const std::string& reason, const std::string& message) {
    const int64_t now = clock_->MonotonicMs();
    Entry& entry = entries_[reason];
    if (entry.last_mono_ms.has_value() && now - *entry.last_mono_ms < window_ms_) {
      ++entry.held_back;
      return;
    }
    if (entry.held_back > 0) {
      spdlog::log(level, "{} ({} more '{}' in the last {} s)", message, entry.held_back, reason,
                  (now - *entry.last_mono_ms) / 1000);
    } else {
      spdlog::log(level, "{}", message);
    }
    entry.last_mono_ms = now;
    entry.held_back = 0;
  }

 private:
  struct Entry {
    std::optional<int64_t> last_mono_ms;
    uint64_t held_back = 0;
  };
  const Clock* clock_;
  int64_t window_ms_;
  std::map<std::string, Entry> entries_;
};

}  // namespace instrumeter::hub
