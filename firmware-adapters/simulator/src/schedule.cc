#include "adapters/simulator/schedule.h"

#include <algorithm>
#include <cctype>

#include "common/config.h"

namespace instrumeter::adapters::simulator {
namespace {

bool ParseSourceState(std::string name, SourceState* out) {
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  for (SourceState s :
       {SourceState::kOff, SourceState::kIdle, SourceState::kInUse, SourceState::kFault}) {
    if (name == SourceStateName(s)) {
      *out = s;
      return true;
    }
  }
  return false;
}

const config::Schema& FileSchema() {
  static const config::Schema kSchema = {
      {.name = "repeat",
       .type = config::Type::kBoolean,
       .default_value = false,
       .description = "play the periods again from the start after the last one"},
      {.name = "period",
       .type = config::Type::kTableArray,
       .description = "the state periods",
       .required = true},
  };
  return kSchema;
}

const config::Schema& PeriodSchema() {
  static const config::Schema kSchema = {
      {.name = "state",
       .type = config::Type::kString,
       .description = "OFF, IDLE, IN_USE or FAULT",
       .required = true,
       .one_of = {"OFF", "IDLE", "IN_USE", "FAULT"}},
      {.name = "duration_ms",
       .type = config::Type::kInteger,
       .description = "how long it lasts",
       .required = true,
       .min = 1},
  };
  return kSchema;
}

}  // namespace

Result<Schedule> Schedule::FromFile(const std::string& path) {
  auto table = config::ParseFile(path);
  if (!table.ok()) return table.status().WithContext("schedule");
  auto top = config::Section::Make(*table, FileSchema(), "schedule " + path);
  if (!top.ok()) return top.status();
  std::vector<Period> periods;
  int index = 0;
  for (const toml::table* t : top->TableArray("period")) {
    ++index;
    auto p = config::Section::Make(*t, PeriodSchema(),
                                   "schedule " + path + " [[period]] #" + std::to_string(index));
    if (!p.ok()) return p.status();
    Period period{};
    ParseSourceState(p->String("state"), &period.state);
    period.duration_ms = p->Integer("duration_ms");
    periods.push_back(period);
  }
  return FromPeriods(std::move(periods), top->Boolean("repeat"));
}

Result<Schedule> Schedule::FromPeriods(std::vector<Period> periods, bool repeat) {
  if (periods.empty()) return Status::InvalidArgument("a schedule needs at least one period");
  Schedule s;
  s.repeat_ = repeat;
  for (const Period& p : periods) {
    if (p.duration_ms <= 0) return Status::InvalidArgument("period durations must be positive");
    s.starts_.push_back(s.total_ms_);
    s.total_ms_ += p.duration_ms;
  }
  s.periods_ = std::move(periods);
  return s;
}

Schedule Schedule::Random(uint64_t seed, int64_t min_ms, int64_t max_ms, int fault_percent) {
  Schedule s;
  s.random_ = true;
  s.rng_.seed(seed);
  s.min_ms_ = std::max<int64_t>(1, min_ms);
  s.max_ms_ = std::max(s.min_ms_, max_ms);
  s.fault_percent_ = std::clamp(fault_percent, 0, 100);
  s.Extend();
  return s;
}

void Schedule::Extend() {
  // A day in a lab: switched on, idle, runs, idle between runs, sometimes a fault, switched off.
  SourceState next = SourceState::kOff;
  if (!periods_.empty()) {
    std::uniform_int_distribution<int> percent(0, 99);
    const int roll = percent(rng_);
    switch (periods_.back().state) {
      case SourceState::kOff:
        next = SourceState::kIdle;
        break;
      case SourceState::kIdle:
        next = roll < 70 ? SourceState::kInUse : SourceState::kOff;
        break;
      case SourceState::kInUse:
        next = roll < fault_percent_ ? SourceState::kFault : SourceState::kIdle;
        break;
      case SourceState::kFault:
        next = SourceState::kIdle;
        break;
    }
  }
  std::uniform_int_distribution<int64_t> duration(min_ms_, max_ms_);
  starts_.push_back(total_ms_);
  periods_.push_back({next, duration(rng_)});
  total_ms_ += periods_.back().duration_ms;
}

Position Schedule::At(int64_t offset_ms) {
  offset_ms = std::max<int64_t>(0, offset_ms);
  int64_t base = 0;
  if (random_) {
    while (offset_ms >= total_ms_) Extend();
  } else if (offset_ms >= total_ms_) {
    if (!repeat_) return {periods_.back().state, starts_.back(), kForever};
    base = (offset_ms / total_ms_) * total_ms_;
    offset_ms -= base;
  }
  const auto it = std::upper_bound(starts_.begin(), starts_.end(), offset_ms);
  const size_t i = static_cast<size_t>(it - starts_.begin()) - 1;
  const int64_t end = starts_[i] + periods_[i].duration_ms;
  const bool last_forever = !random_ && !repeat_ && i + 1 == periods_.size();
  return {periods_[i].state, base + starts_[i], last_forever ? kForever : base + end};
}

}  // namespace instrumeter::adapters::simulator
