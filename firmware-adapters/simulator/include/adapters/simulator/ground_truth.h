// The simulator's ground truth: the state periods it actually played, on the monotonic clock, so
// tests can compare the hours the hub derived with what really happened.
//
// File format (text, one record per line, appended and flushed as it happens):
//   # comment
//   run <boot_id> <monotonic_ms>        the adapter started
//   period <STATE> <monotonic_ms>       the instrument entered STATE at that instant
//   stop <monotonic_ms>                 the adapter stopped cleanly
// A period lasts until the next period or stop line of its run. A run without a stop line was
// killed: its last period is open, and a reader closes it where it knows the kill happened.
#pragma once

#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "adapters/adapter.h"
#include "common/status.h"

namespace instrumeter::adapters::simulator {

inline constexpr int64_t kOpenEnd = std::numeric_limits<int64_t>::max();

struct TruthPeriod {
  SourceState state;
  int64_t start_mono_ms;
  int64_t end_mono_ms;  // kOpenEnd for the last period of a killed run
};

struct TruthRun {
  std::string boot_id;
  int64_t start_mono_ms = 0;
  std::optional<int64_t> stop_mono_ms;  // empty: the run was killed
  std::vector<TruthPeriod> periods;
};

struct TruthTotals {
  int64_t powered_ms = 0;
  int64_t in_use_ms = 0;
};

Result<std::vector<TruthRun>> ReadGroundTruth(const std::string& path);

// Powered and in-use time of `periods` inside [from_mono_ms, to_mono_ms); open periods end at
// `to_mono_ms`.
TruthTotals Totals(const std::vector<TruthPeriod>& periods, int64_t from_mono_ms,
                   int64_t to_mono_ms);

// Appends records to a ground-truth file. Each record is flushed to the kernel at once, so it
// survives the process being killed.
class GroundTruthWriter {
 public:
  static Result<std::unique_ptr<GroundTruthWriter>> Open(const std::string& path);
  ~GroundTruthWriter();
  Status Run(const std::string& boot_id, int64_t mono_ms);
  Status Period(SourceState state, int64_t mono_ms);
  Status Stop(int64_t mono_ms);

 private:
  GroundTruthWriter(std::FILE* file, std::string path) : file_(file), path_(std::move(path)) {}
  Status Write(const std::string& line);

  std::FILE* file_;
  std::string path_;
};

}  // namespace instrumeter::adapters::simulator
