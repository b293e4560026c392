#include "log.h"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace instrumeter::agent {

Logger MakeStderrLogger(const std::string& device_id, const std::string& level) {
  auto logger =
      std::make_shared<spdlog::logger>("agent", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [agent " + device_id + "] %v");
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::trace);
  return logger;
}

Logger MakeNullLogger() {
  return std::make_shared<spdlog::logger>("agent", std::make_shared<spdlog::sinks::null_sink_mt>());
}

bool LogLimiter::Allow(const std::string& key, int64_t now_ms, uint64_t* suppressed) {
  auto [it, inserted] = entries_.try_emplace(key);
  Entry& entry = it->second;
  if (!inserted && now_ms - entry.last_ms < window_ms_) {
    ++entry.suppressed;
    return false;
  }
  *suppressed = entry.suppressed;
  entry = Entry{now_ms, 0};
  return true;
}

std::string SuppressedNote(uint64_t suppressed) {
  return suppressed == 0 ? std::string()
                         : " (" + std::to_string(suppressed) + " similar suppressed)";
}

}  // namespace instrumeter::agent
