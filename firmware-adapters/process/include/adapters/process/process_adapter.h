// The `process` adapter: is the vendor's acquisition software running? A process whose name is
// `process_name` and/or whose command line matches `cmdline_pattern` (both, when both are set)
// means IN_USE; none means IDLE. It speaks about use, not power: list it in [evidence]
// use_sources and take power from another adapter (modbus, scpi).
// Each poll also reports ProcessPresent (with the pid and name that matched) and, with
// report_user, the logged-in users as UserLoggedIn.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "adapters/adapter.h"
#include "adapters/process/process_table.h"
#include "adapters/regex.h"

namespace instrumeter::adapters::process {

const config::Schema& ProcessSchema();

class ProcessAdapter : public Adapter {
 public:
  explicit ProcessAdapter(AdapterContext context,
                          std::unique_ptr<ProcessTable> table = MakeSystemProcessTable())
      : context_(std::move(context)), table_(std::move(table)) {}

  Status Init(const config::Section& section) override;
  Status Poll(ObservationSink& sink) override;

 private:
  Result<bool> Matches(const ProcessInfo& p) const;

  AdapterContext context_;
  std::unique_ptr<ProcessTable> table_;
  std::string process_name_;  // empty: any name
  std::optional<Regex> cmdline_pattern_;
  bool report_user_ = false;
};

}  // namespace instrumeter::adapters::process
