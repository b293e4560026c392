// A fake adapter type for the agent's tests: each instance reads a FakeSource that the test owns
// and changes between polls. Header-only; test code only.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "adapters/adapter.h"
#include "adapters/registry.h"

namespace instrumeter::agent::fake {

// What one fake source will report at its next poll.
struct FakeSource {
  std::optional<adapters::SourceState> state = adapters::SourceState::kOff;  // nullopt: no kState
  std::string why;
  Status error;          // not OK: Poll fails with it
  Status start_error;    // not OK: Start fails with it
  std::string identity;  // reported as kIdentity when not empty
  int polls = 0;
};

class FakeAdapter : public adapters::Adapter {
 public:
  explicit FakeAdapter(FakeSource* source) : source_(source) {}
  Status Init(const config::Section& section) override {
    if (section.Integer("threshold_w") == 13) return section.Error("threshold_w", "unlucky");
    return Status::Ok();
  }
  Status Start() override { return source_->start_error; }
  Status Poll(adapters::ObservationSink& sink) override {
    ++source_->polls;
    if (!source_->error.ok()) return source_->error;
    if (!source_->identity.empty()) sink.Report(adapters::Observation::Identity(source_->identity));
    sink.Report(adapters::Observation::PowerWatts(12.5));
    if (source_->state) sink.Report(adapters::Observation::State(*source_->state, source_->why));
    return Status::Ok();
  }

 private:
  FakeSource* source_;
};

inline const config::Schema& FakeSchema() {
  static const config::Schema kSchema = {
      {.name = "threshold_w",
       .type = config::Type::kInteger,
       .default_value = int64_t{100},
       .description = "unused by the fake, except that 13 fails Init",
       .min = 0,
       .max = 10000},
  };
  return kSchema;
}

// A registry with one type, "fake", whose instances read (*sources)[instance name].
inline std::vector<adapters::AdapterType> FakeRegistry(std::map<std::string, FakeSource>* sources) {
  return {adapters::AdapterType{
      "fake", "A test double driven by the test.", &FakeSchema(),
      [sources](const adapters::AdapterContext& context) -> std::unique_ptr<adapters::Adapter> {
        return std::make_unique<FakeAdapter>(&(*sources)[context.name]);
      }}};
}

}  // namespace instrumeter::agent::fake
