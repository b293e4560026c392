#include "adapters/simulator/simulator_adapter.h"

#include <filesystem>
#include <fstream>

namespace instrumeter::adapters::simulator {

const config::Schema& SimulatorSchema() {
  static const config::Schema kSchema = {
      {.name = "schedule_file",
       .type = config::Type::kString,
       .description = "a TOML schedule of [[period]] state/duration_ms tables (see "
                      "docs/simulator.md); either this or `seed`"},
      {.name = "seed",
       .type = config::Type::kInteger,
       .description = "seed of a random but repeatable schedule; either this or `schedule_file`",
       .min = 0},
      {.name = "min_period_ms",
       .type = config::Type::kInteger,
       .default_value = int64_t{2000},
       .description = "shortest random period",
       .min = 1},
      {.name = "max_period_ms",
       .type = config::Type::kInteger,
       .default_value = int64_t{20000},
       .description = "longest random period",
       .min = 1},
      {.name = "fault_percent",
       .type = config::Type::kInteger,
       .default_value = int64_t{0},
       .description = "share of random IN_USE periods that end in FAULT",
       .min = 0,
       .max = 100},
      {.name = "truth_file",
       .type = config::Type::kString,
       .default_value = std::string(),
       .description = "where to append the ground truth (the periods actually played); empty: "
                      "none"},
      {.name = "idle_watts",
       .type = config::Type::kFloat,
       .default_value = 150.0,
       .description = "power reported while IDLE or FAULT",
       .min = 0},
      {.name = "in_use_watts",
       .type = config::Type::kFloat,
       .default_value = 1200.0,
       .description = "power reported while IN_USE",
       .min = 0},
  };
  return kSchema;
}

Status SimulatorAdapter::Init(const config::Section& section) {
  const bool has_file = section.Has("schedule_file");
  const bool has_seed = section.Has("seed");
  if (has_file == has_seed)
    return section.Error(has_file ? "seed" : "schedule_file",
                         "set exactly one of `schedule_file` and `seed`");
  if (has_file) {
    auto schedule = Schedule::FromFile(section.String("schedule_file"));
    if (!schedule.ok()) return section.Error("schedule_file", schedule.status().message());
    schedule_ = std::move(*schedule);
  } else {
    if (section.Integer("min_period_ms") > section.Integer("max_period_ms"))
      return section.Error("min_period_ms", "is larger than max_period_ms");
    schedule_ = Schedule::Random(static_cast<uint64_t>(section.Integer("seed")),
                                 section.Integer("min_period_ms"), section.Integer("max_period_ms"),
                                 static_cast<int>(section.Integer("fault_percent")));
  }
  truth_path_ = section.String("truth_file");
  idle_watts_ = section.Float("idle_watts");
  in_use_watts_ = section.Float("in_use_watts");
  return Status::Ok();
}

Status SimulatorAdapter::LoadOrCreateAnchor() {
  const std::string path = context_.state_dir + "/simulator-" + context_.name + ".anchor";
  const std::string boot = context_.clock->BootId();
  std::ifstream in(path);
  std::string saved_boot;
  int64_t saved_anchor = 0;
  if (in >> saved_boot >> saved_anchor && saved_boot == boot) {
    anchor_mono_ms_ = saved_anchor;
    return Status::Ok();
  }
  anchor_mono_ms_ = context_.clock->MonotonicMs();
  std::ofstream out(path, std::ios::trunc);
  out << boot << " " << anchor_mono_ms_ << "\n";
  if (!out) return Status::IoError("simulator '" + context_.name + "': cannot write " + path);
  return Status::Ok();
}

Status SimulatorAdapter::Start() {
  INSTRUMETER_RETURN_IF_ERROR(LoadOrCreateAnchor());
  const int64_t now = context_.clock->MonotonicMs();
  if (!truth_path_.empty()) {
    auto writer = GroundTruthWriter::Open(truth_path_);
    if (!writer.ok()) return writer.status().WithContext("simulator '" + context_.name + "'");
    truth_ = std::move(*writer);
    INSTRUMETER_RETURN_IF_ERROR(truth_->Run(context_.clock->BootId(), now));
    INSTRUMETER_RETURN_IF_ERROR(truth_->Period(schedule_->At(now - anchor_mono_ms_).state, now));
  }
  recorded_until_ms_ = now - anchor_mono_ms_;
  started_ = true;
  return Status::Ok();
}

Status SimulatorAdapter::RecordPeriodsUpTo(int64_t offset_ms) {
  while (true) {
    const Position current = schedule_->At(recorded_until_ms_);
    if (current.end_ms == Schedule::kForever || current.end_ms > offset_ms) return Status::Ok();
    recorded_until_ms_ = current.end_ms;
    const SourceState next = schedule_->At(recorded_until_ms_).state;
    if (truth_ != nullptr)
      INSTRUMETER_RETURN_IF_ERROR(truth_->Period(next, anchor_mono_ms_ + recorded_until_ms_));
  }
}

Status SimulatorAdapter::Poll(ObservationSink& sink) {
  if (!started_) return Status::FailedPrecondition("simulator polled before Start");
  const int64_t offset = context_.clock->MonotonicMs() - anchor_mono_ms_;
  INSTRUMETER_RETURN_IF_ERROR(RecordPeriodsUpTo(offset));
  const SourceState state = schedule_->At(offset).state;
  double watts = 0;
  if (state == SourceState::kInUse) watts = in_use_watts_;
  if (state == SourceState::kIdle || state == SourceState::kFault) watts = idle_watts_;
  sink.Report(Observation::PowerWatts(watts));
  sink.Report(Observation::State(state, "schedule"));
  return Status::Ok();
}

void SimulatorAdapter::Stop() {
  if (!started_) return;
  const int64_t now = context_.clock->MonotonicMs();
  (void)RecordPeriodsUpTo(now - anchor_mono_ms_);
  if (truth_ != nullptr) (void)truth_->Stop(now);
  started_ = false;
}

}  // namespace instrumeter::adapters::simulator
