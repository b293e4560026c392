// The agent's loggers (spdlog to stderr, prefixed "[agent <device_id>]") and a limiter that keeps
// a repeating failure from flooding the log. Loggers are made here, never registered in spdlog's
// global registry, so two agents in one test process do not share one.
#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace instrumeter::agent {

using Logger = std::shared_ptr<spdlog::logger>;

// Logs to stderr at `level` (trace, debug, info, warn, error).
Logger MakeStderrLogger(const std::string& device_id, const std::string& level);
// Discards everything; for tests and commands that print their own output.
Logger MakeNullLogger();

// Allows one message per key per window; counts what it held back so the next allowed message can
// say "(N similar suppressed)". Not thread-safe; one per loop.
class LogLimiter {
 public:
  explicit LogLimiter(int64_t window_ms) : window_ms_(window_ms) {}
  // True if a message under `key` may be logged at `now_ms`; then *suppressed is the number held
  // back since the last one.
  bool Allow(const std::string& key, int64_t now_ms, uint64_t* suppressed);

 private:
  struct Entry {
    int64_t last_ms = 0;
    uint64_t suppressed = 0;
  };
  int64_t window_ms_;
  std::map<std::string, Entry> entries_;
};

// " (N similar suppressed)" or "".
std::string SuppressedNote(uint64_t suppressed);

}  // namespace instrumeter::agent
