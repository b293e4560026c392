// What a simulated instrument does over time: a list of state periods from a file (optionally
// repeating) or an endless seeded random walk through realistic transitions. Deterministic: the
// same file or seed always plays the same way, so tests can predict it.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "adapters/adapter.h"
#include "common/status.h"

namespace instrumeter::adapters::simulator {

struct Period {
  SourceState state;
  int64_t duration_ms;
};

// The period in force at an offset, with its bounds (offsets from the schedule's anchor, ms).
struct Position {
  SourceState state;
  int64_t start_ms;
  int64_t end_ms;  // exclusive
};

class Schedule {
 public:
  // The end of a period that never ends (the last one of a schedule that does not repeat).
  static constexpr int64_t kForever = INT64_MAX;

  // A TOML file: `repeat = true|false` and one or more [[period]] tables with `state`
  // (OFF, IDLE, IN_USE, FAULT) and `duration_ms`. Without repeat, the last state holds forever.
  static Result<Schedule> FromFile(const std::string& path);
  static Result<Schedule> FromPeriods(std::vector<Period> periods, bool repeat);
  // OFF -> IDLE -> IN_USE <-> IDLE ... -> OFF, durations uniform in [min_ms, max_ms];
  // `fault_percent` of IN_USE periods end in a FAULT period.
  static Schedule Random(uint64_t seed, int64_t min_ms, int64_t max_ms, int fault_percent);

  // The period at `offset_ms` (>= 0). Not const: a random schedule grows as it is read.
  Position At(int64_t offset_ms);

 private:
  Schedule() = default;
  void Extend();  // generates the next random period

  std::vector<Period> periods_;
  std::vector<int64_t> starts_;  // starts_[i] = offset at which periods_[i] begins
  int64_t total_ms_ = 0;
  bool repeat_ = false;
  bool random_ = false;
  std::mt19937_64 rng_;
  int64_t min_ms_ = 0, max_ms_ = 0;
  int fault_percent_ = 0;
};

}  // namespace instrumeter::adapters::simulator
