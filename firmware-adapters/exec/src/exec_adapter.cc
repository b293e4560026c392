#include "adapters/exec/exec_adapter.h"

namespace instrumeter::adapters::exec {
namespace {

std::string FirstLine(const std::string& text) {
  const size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return {};
  return text.substr(begin, text.find_first_of("\r\n", begin) - begin);
}

std::string TrimEnd(const std::string& text) {
  const size_t end = text.find_last_not_of(" \t\r\n");
  return end == std::string::npos ? std::string() : text.substr(0, end + 1);
}

}  // namespace

const config::Schema& ExecSchema() {
  static const config::Schema kSchema = {
      {.name = "command",
       .type = config::Type::kStringArray,
       .description = "the program and its arguments, run without a shell (argv[0] is looked up "
                      "in PATH); for shell syntax write [\"/bin/sh\", \"-c\", \"...\"]",
       .required = true},
      {.name = "interval_ms",
       .type = config::Type::kInteger,
       .default_value = int64_t{10000},
       .description = "how often the command runs; polls in between repeat the last result",
       .min = 100},
      {.name = "timeout_ms",
       .type = config::Type::kInteger,
       .default_value = int64_t{5000},
       .description = "a run that takes longer is killed (its whole process group) and reported "
                      "as an error",
       .min = 10,
       .max = 600000},
      {.name = "exit_code_states",
       .type = config::Type::kTable,
       .description = "exit code to state, e.g. { \"0\" = \"IN_USE\", \"1\" = \"IDLE\" }; "
                      "consulted before the rules"},
      StateRules::SchemaKey("rule",
                            "the command's standard output (trailing blanks removed), used when "
                            "it exits with 0 and exit_code_states does not list 0",
                            false),
  };
  return kSchema;
}

std::string ExecAdapter::Who() const {
  return "exec '" + context_.name + "' (" + (command_.empty() ? "" : command_[0]) + ")";
}

Status ExecAdapter::Init(const config::Section& section) {
  command_ = section.StringArray("command");
  if (command_.empty() || command_[0].empty())
    return section.Error("command", "must name a program: [\"/path/to/program\", \"arg\", ...]");
  interval_ms_ = section.Integer("interval_ms");
  timeout_ms_ = section.Integer("timeout_ms");
  if (const toml::table* codes = section.Table("exit_code_states")) {
    for (const auto& [key, node] : *codes) {
      const std::string code(key.str());
      if (code.empty() || code.size() > 3 ||
          code.find_first_not_of("0123456789") != std::string::npos || std::stoi(code) > 255)
        return section.Error("exit_code_states", "'" + code + "' is not an exit code (0-255)");
      const std::optional<SourceState> state =
          ParseSourceState(node.value<std::string>().value_or(""));
      if (!state)
        return section.Error("exit_code_states", "exit code " + code +
                                                     ": the state must be one of OFF, IDLE, "
                                                     "IN_USE, FAULT");
      exit_code_states_[std::stoi(code)] = *state;
    }
  }
  auto rules = StateRules::FromSection(section, "rule");
  if (!rules.ok()) return rules.status();
  rules_ = std::move(*rules);
  if (exit_code_states_.empty() && rules_.empty())
    return section.Error("exit_code_states", "set exit_code_states, rule or both");
  return Status::Ok();
}

ExecAdapter::Outcome ExecAdapter::RunOnce() {
  auto result = runner_->Run(command_, timeout_ms_, kMaxOutputBytes);
  if (!result.ok()) return {result.status().WithContext(Who()), std::nullopt};
  if (result->signal != 0)
    return {Status::Unavailable(Who() + ": killed by signal " + std::to_string(result->signal)),
            std::nullopt};
  const int code = result->exit_code;
  if (auto it = exit_code_states_.find(code); it != exit_code_states_.end())
    return {Status::Ok(), Observation::State(it->second, "exit code " + std::to_string(code))};
  if (code != 0) {
    std::string said = FirstLine(result->error_output);
    if (said.empty()) said = FirstLine(result->output);
    return {Status::Unavailable(Who() + ": exited with code " + std::to_string(code) +
                                (said.empty() ? "" : ": " + Printable(said))),
            std::nullopt};
  }
  if (rules_.empty())
    return {Status::NotFound(Who() + ": exit code 0 is not in exit_code_states"), std::nullopt};
  const std::string output = TrimEnd(result->output);
  auto match = rules_.Evaluate(output);
  if (!match.ok()) return {match.status().WithContext(Who()), std::nullopt};
  if (!match->has_value())
    return {Status::NotFound(Who() + ": no rule matches the output '" + Printable(output) + "'"),
            std::nullopt};
  return {Status::Ok(), Observation::State((*match)->state, rules_.Describe(**match, output))};
}

Status ExecAdapter::Poll(ObservationSink& sink) {
  const int64_t now = context_.clock->MonotonicMs();
  if (!last_ || now - last_run_ms_ >= interval_ms_) {
    last_run_ms_ = now;
    last_ = RunOnce();
  }
  if (!last_->status.ok()) return last_->status;
  sink.Report(*last_->state);
  return Status::Ok();
}

}  // namespace instrumeter::adapters::exec
