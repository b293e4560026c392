#include "adapters/testing/adapter_harness.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace instrumeter::adapters::testing {
namespace {

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::vector<std::string> Lines(const std::string& text, bool drop_comments) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (drop_comments && (line.empty() || line[0] == '#')) continue;
    out.push_back(line);
  }
  while (!out.empty() && out.back().empty()) out.pop_back();
  return out;
}

std::string FormatNumber(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

bool PollMatches(const std::string& expected, const std::string& actual) {
  if (expected.rfind("error:", 0) == 0 && actual.rfind("error:", 0) == 0) {
    std::string want = expected.substr(6);
    want.erase(0, want.find_first_not_of(' '));
    return actual.find(want) != std::string::npos;
  }
  return expected == actual;
}

}  // namespace

std::string RenderPoll(const Status& status, const std::vector<Observation>& observations) {
  if (!status.ok()) return "error: " + status.message();
  std::string out;
  for (const Observation& o : observations) {
    std::string item;
    switch (o.kind) {
      case Observation::Kind::kState:
        item = std::string("state=") + SourceStateName(o.state);
        break;
      case Observation::Kind::kPowerWatts:
        item = "power_watts=" + FormatNumber(o.value);
        break;
      case Observation::Kind::kEnergyKwh:
        item = "energy_kwh=" + FormatNumber(o.value);
        break;
      case Observation::Kind::kProcessPresent:
        item = "process_present=" + FormatNumber(o.value);
        break;
      case Observation::Kind::kUserLoggedIn:
        item = "user='" + o.text + "'";
        break;
      case Observation::Kind::kIdentity:
        item = "identity='" + o.text + "'";
        break;
    }
    out += (out.empty() ? "" : " ") + item;
  }
  return out;
}

std::string PollOnce(Adapter& adapter) {
  RecordingSink sink;
  const Status st = adapter.Poll(sink);
  return RenderPoll(st, sink.seen);
}

Result<std::unique_ptr<ConfiguredAdapter>> ConfiguredAdapter::Make(const std::string& type,
                                                                   const std::string& toml,
                                                                   const AdapterContext& context) {
  const AdapterType* adapter_type = FindAdapterType(type);
  if (adapter_type == nullptr) return Status::NotFound("no adapter type '" + type + "'");
  std::string text = toml;
  if (text.find("[[adapter]]") == std::string::npos)
    text = "[[adapter]]\nname = \"" + context.name + "\"\ntype = \"" + type + "\"\n" + toml;
  auto parsed = config::ParseString(text, "agent.toml");
  if (!parsed.ok()) return parsed.status();
  std::unique_ptr<ConfiguredAdapter> made(new ConfiguredAdapter());
  made->document_ = std::move(*parsed);
  const toml::array* adapters = made->document_["adapter"].as_array();
  if (adapters == nullptr || adapters->empty() || !adapters->front().is_table())
    return Status::InvalidArgument("agent.toml: no [[adapter]] table");
  const toml::table& table = *adapters->front().as_table();
  // As the agent does it: name and type, then the type's own keys.
  made->schema_ = {{.name = "name", .type = config::Type::kString, .required = true},
                   {.name = "type", .type = config::Type::kString, .required = true}};
  made->schema_.insert(made->schema_.end(), adapter_type->schema->begin(),
                       adapter_type->schema->end());
  const std::string name = table["name"].value<std::string>().value_or(context.name);
  auto section = config::Section::Make(table, made->schema_, "[[adapter]] '" + name + "'");
  if (!section.ok()) return section.status();
  AdapterContext named = context;
  named.name = name;
  made->adapter_ = adapter_type->make(named);
  INSTRUMETER_RETURN_IF_ERROR(made->adapter_->Init(*section));
  return made;
}

std::string Substitute(const std::string& text, const std::map<std::string, std::string>& vars) {
  std::string out = text;
  for (const auto& [name, value] : vars) {
    const std::string token = "${" + name + "}";
    for (size_t at = out.find(token); at != std::string::npos; at = out.find(token, at)) {
      out.replace(at, token.size(), value);
      at += value.size();
    }
  }
  return out;
}

std::vector<GoldenCase> LoadGoldenCases(const std::string& golden_dir) {
  std::vector<GoldenCase> cases;
  for (const auto& entry : std::filesystem::directory_iterator(golden_dir)) {
    if (!entry.is_directory()) continue;
    GoldenCase c;
    c.name = entry.path().filename().string();
    c.dir = entry.path().string();
    c.config = ReadText(c.dir + "/config.toml");
    c.inputs = Lines(ReadText(c.dir + "/inputs.txt"), true);
    c.expected_states = Lines(ReadText(c.dir + "/expected_states.txt"), false);
    const std::vector<std::string> error = Lines(ReadText(c.dir + "/expected_error.txt"), false);
    if (!error.empty()) c.expected_error = error.front();
    cases.push_back(std::move(c));
  }
  std::sort(cases.begin(), cases.end(),
            [](const GoldenCase& a, const GoldenCase& b) { return a.name < b.name; });
  return cases;
}

std::vector<std::string> GoldenRunner::Run(const GoldenCase& golden,
                                           const std::map<std::string, std::string>& vars) {
  std::vector<std::string> failures;
  const std::string config = Substitute(golden.config, vars);
  const AdapterContext context{"golden", clock_, state_dir_};
  auto made = ConfiguredAdapter::Make(type_, config, context);
  if (!golden.expected_error.empty()) {
    const std::string want = Substitute(golden.expected_error, vars);
    if (made.ok())
      failures.push_back("start-up succeeded; expected an error containing: " + want);
    else if (made.status().message().find(want) == std::string::npos)
      failures.push_back("start-up error\n  " + made.status().message() + "\ndoes not contain\n  " +
                         want);
    return failures;
  }
  if (!made.ok()) return {"start-up failed: " + made.status().ToString()};
  std::unique_ptr<ConfiguredAdapter> adapter = std::move(*made);
  if (Status st = (*adapter)->Start(); !st.ok()) return {"Start failed: " + st.ToString()};

  size_t poll_index = 0;
  for (const std::string& step : golden.inputs) {
    const size_t space = step.find(' ');
    const std::string verb = step.substr(0, space);
    const std::string args = space == std::string::npos ? "" : step.substr(space + 1);
    if (verb == "poll") {
      const std::string actual = PollOnce(adapter->adapter());
      const std::string where = "poll #" + std::to_string(poll_index + 1) + ": ";
      if (poll_index >= golden.expected_states.size())
        failures.push_back(where + "no expected line for: " + actual);
      else if (!PollMatches(Substitute(golden.expected_states[poll_index], vars), actual))
        failures.push_back(where + "expected\n  " + golden.expected_states[poll_index] +
                           "\nbut got\n  " + actual);
      ++poll_index;
    } else if (verb == "advance") {
      clock_->Advance(std::stoll(args));
    } else if (verb == "restart") {
      (*adapter)->Stop();
      adapter.reset();
      auto again = ConfiguredAdapter::Make(type_, config, context);
      if (!again.ok()) return {"restart failed: " + again.status().ToString()};
      adapter = std::move(*again);
      if (Status st = (*adapter)->Start(); !st.ok()) return {"Start failed: " + st.ToString()};
    } else if (auto it = verbs_.find(verb); it != verbs_.end()) {
      if (Status st = it->second(args); !st.ok())
        return {"step '" + step + "' failed: " + st.ToString()};
    } else {
      return {"unknown step '" + step + "'"};
    }
  }
  if (poll_index != golden.expected_states.size())
    failures.push_back("expected_states.txt has " + std::to_string(golden.expected_states.size()) +
                       " lines but inputs.txt polls " + std::to_string(poll_index) + " times");
  (*adapter)->Stop();
  return failures;
}

}  // namespace instrumeter::adapters::testing
