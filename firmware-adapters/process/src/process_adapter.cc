#include "adapters/process/process_adapter.h"

#include <algorithm>

#include "adapters/state_rules.h"

namespace instrumeter::adapters::process {

const config::Schema& ProcessSchema() {
  static const config::Schema kSchema = {
      {.name = "process_name",
       .type = config::Type::kString,
       .description = "the exact process name, as `ps -o comm` or Task Manager shows it (names "
                      "Linux cuts to 15 characters are completed from argv[0])"},
      {.name = "cmdline_pattern",
       .type = config::Type::kString,
       .description = "a regular expression (PCRE2) searched for in the command line, whose "
                      "arguments are joined with NUL bytes (`.` matches them)"},
      {.name = "report_user",
       .type = config::Type::kBoolean,
       .default_value = false,
       .description = "also report the logged-in users (utmp on Linux)"},
  };
  return kSchema;
}

Status ProcessAdapter::Init(const config::Section& section) {
  if (!section.Has("process_name") && !section.Has("cmdline_pattern"))
    return section.Error("process_name", "set process_name, cmdline_pattern or both");
  process_name_ = section.String("process_name");
  if (section.Has("process_name") && process_name_.empty())
    return section.Error("process_name", "must not be empty");
  if (section.Has("cmdline_pattern")) {
    auto regex = Regex::Compile(section.String("cmdline_pattern"));
    if (!regex.ok()) return section.Error("cmdline_pattern", regex.status().message());
    cmdline_pattern_ = std::move(*regex);
  }
  report_user_ = section.Boolean("report_user");
  return Status::Ok();
}

Result<bool> ProcessAdapter::Matches(const ProcessInfo& p) const {
  if (!process_name_.empty() && p.name != process_name_) return false;
  if (cmdline_pattern_) return cmdline_pattern_->Search(p.cmdline);
  return true;
}

Status ProcessAdapter::Poll(ObservationSink& sink) {
  const std::string who = "process '" + context_.name + "'";
  auto processes = table_->ListProcesses();
  if (!processes.ok()) return processes.status().WithContext(who);
  std::optional<ProcessInfo> found;
  for (const ProcessInfo& p : *processes) {
    auto match = Matches(p);
    if (!match.ok()) return match.status().WithContext(who);
    // The lowest pid: the longest-running instance, stable from poll to poll.
    if (*match && (!found || p.pid < found->pid)) found = p;
  }
  if (report_user_) {
    auto users = table_->LoggedInUsers();
    if (!users.ok()) return users.status().WithContext(who);
    std::vector<std::string> names;
    for (const LoggedInUser& u : *users) {
      const std::string name = Printable(u.user, 64);
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
    std::string joined;
    for (const std::string& n : names) joined += (joined.empty() ? "" : ",") + n;
    sink.Report(Observation::UserLoggedIn(joined));
  }
  if (found) {
    const std::string what =
        "pid " + std::to_string(found->pid) + " '" + Printable(found->name, 64) + "'";
    sink.Report(Observation::ProcessPresent(true, what));
    sink.Report(Observation::State(SourceState::kInUse, what + " runs"));
  } else {
    sink.Report(Observation::ProcessPresent(false));
    sink.Report(Observation::State(SourceState::kIdle, "no matching process"));
  }
  return Status::Ok();
}

}  // namespace instrumeter::adapters::process
