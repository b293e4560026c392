// The `simulator` adapter: a pretend instrument that plays a Schedule and writes its ground truth.
// It is what the quick start, the end-to-end tests and the benchmarks meter.
//
// The schedule's zero is anchored to the monotonic clock the first time the adapter starts in a
// boot and kept in the state directory, so an agent that restarts finds the instrument where it
// would be had it kept running (instruments do not stop when their agent does).
#pragma once

#include <memory>
#include <optional>

#include "adapters/adapter.h"
#include "adapters/simulator/ground_truth.h"
#include "adapters/simulator/schedule.h"

namespace instrumeter::adapters::simulator {

const config::Schema& SimulatorSchema();

class SimulatorAdapter : public Adapter {
 public:
  explicit SimulatorAdapter(AdapterContext context) : context_(std::move(context)) {}

  Status Init(const config::Section& section) override;
  Status Start() override;
  Status Poll(ObservationSink& sink) override;
  void Stop() override;

 private:
  Status LoadOrCreateAnchor();
  // Writes a period record for every schedule boundary crossed up to `offset_ms`.
  Status RecordPeriodsUpTo(int64_t offset_ms);

  AdapterContext context_;
  std::optional<Schedule> schedule_;
  std::string truth_path_;
  double idle_watts_ = 0;
  double in_use_watts_ = 0;
  std::unique_ptr<GroundTruthWriter> truth_;
  int64_t anchor_mono_ms_ = 0;
  int64_t recorded_until_ms_ = 0;  // offset of the latest period start recorded
  bool started_ = false;
};

}  // namespace instrumeter::adapters::simulator
