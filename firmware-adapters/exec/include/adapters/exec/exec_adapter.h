// The `exec` adapter: runs a command every interval_ms and maps its exit code
// (exit_code_states) or its output (rules) to a State. Between runs each poll repeats the last
// result (its state, or its error). No shell is involved unless the command names one
// (["/bin/sh", "-c", "..."]). Nothing runs before the first poll: Init only validates.
//
// A run is synchronous and bounded by timeout_ms: at the timeout the command's whole process
// group is killed and the poll reports an error. At most 64 KiB of output is kept.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "adapters/adapter.h"
#include "adapters/exec/command_runner.h"
#include "adapters/state_rules.h"

namespace instrumeter::adapters::exec {

const config::Schema& ExecSchema();

class ExecAdapter : public Adapter {
 public:
  static constexpr size_t kMaxOutputBytes = 64 * 1024;

  explicit ExecAdapter(AdapterContext context,
                       std::unique_ptr<CommandRunner> runner = MakeSystemCommandRunner())
      : context_(std::move(context)), runner_(std::move(runner)) {}

  Status Init(const config::Section& section) override;
  Status Poll(ObservationSink& sink) override;

 private:
  struct Outcome {
    Status status;
    std::optional<Observation> state;
  };
  Outcome RunOnce();
  std::string Who() const;

  AdapterContext context_;
  std::unique_ptr<CommandRunner> runner_;
  std::vector<std::string> command_;
  int64_t interval_ms_ = 10000;
  int64_t timeout_ms_ = 5000;
  std::map<int, SourceState> exit_code_states_;
  StateRules rules_;
  std::optional<Outcome> last_;
  int64_t last_run_ms_ = 0;  // on the context clock's monotonic time
};

}  // namespace instrumeter::adapters::exec
