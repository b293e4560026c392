#include "agent/commands.h"

#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "adapter_set.h"
#include "agent/agent_config.h"
#include "checkpoint.h"
#include "combiner.h"
#include "control_socket.h"
#include "credentials.h"
#include "daemon.h"
#include "outbox.h"
#include "recorder.h"

namespace instrumeter::agent {
namespace {

using nlohmann::json;

constexpr std::chrono::milliseconds kRequestTimeout{5000};

Result<AgentConfig> Load(const std::string& path, std::ostream& err) {
  auto config = LoadAgentConfig(path, adapters::Registry());
  if (!config.ok()) err << "instrumeter-agent: " << config.status().message() << "\n";
  return config;
}

// "3723.456 s (1:02:03)": seconds for machines and people who add up, h:mm:ss for the rest.
std::string Duration(uint64_t ms) {
  const uint64_t s = ms / 1000;
  char buf[96];
  std::snprintf(buf, sizeof buf,
                "%" PRIu64 ".%03" PRIu64 " s (%" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ")", s,
                ms % 1000, s / 3600, s / 60 % 60, s % 60);
  return buf;
}

std::string Time(const json& ms) {
  if (!ms.is_number() || ms.get<int64_t>() <= 0) return "never";
  return FormatUtc(ms.get<int64_t>());
}

// What the agent left on disk, for `status` while it is not running.
Result<json> OfflineStatus(const AgentConfig& config) {
  json out = {{"agent", "not running"},
              {"device_id", config.device_id},
              {"broker", nullptr},
              {"adapters", json::array()},
              {"session", nullptr}};
  auto checkpoint = CheckpointFile::Read(config.CheckpointPath());
  if (!checkpoint.ok()) return checkpoint.status();
  if (*checkpoint) {
    const CheckpointData& c = **checkpoint;
    out["state"] = protocol::StateName(c.state);
    out["state_since_unix_ms"] = c.since_wall_unix_ms;
    out["observed_until_unix_ms"] = c.horizon.wall_unix_ms;
    out["powered_ms"] = c.counters.powered_ms;
    out["in_use_ms"] = c.counters.in_use_ms;
  }
  auto outbox = Outbox::OpenForReading(config.OutboxPath());
  if (!outbox.ok() && outbox.status().code() != Status::Code::kNotFound) return outbox.status();
  if (outbox.ok()) {
    const Outbox& o = **outbox;
    out["outbox_depth"] = o.depth();
    out["last_sequence"] = o.last_sequence();
    out["acked_sequence"] = o.acked_sequence();
    out["last_ack_unix_ms"] = o.acked_wall_unix_ms();
    if (o.open_session())
      out["session"] = {{"order_id", o.open_session()->order_id},
                        {"operator", o.open_session()->operator_name}};
    if (o.last_point() && o.last_point()->has_agent_stop())
      out["last_run"] =
          o.last_point()->agent_stop().clean() ? "stopped cleanly" : "crashed (closed at restart)";
  }
  return out;
}

void PrintStatus(const json& s, std::ostream& out) {
  auto get = [&](const char* key) { return s.contains(key) ? s[key] : json(); };
  out << "device:   " << get("device_id").get<std::string>() << "\n";
  out << "agent:    " << get("agent").get<std::string>();
  if (s.contains("pid"))
    out << " (pid " << s["pid"] << ", version " << s["agent_version"].get<std::string>() << ")";
  if (s.contains("last_run")) out << "; last run " << s["last_run"].get<std::string>();
  out << "\n";
  if (!s.contains("state")) {
    out << "state:    nothing measured yet\n";
  } else {
    out << "state:    " << s["state"].get<std::string>() << " since "
        << Time(s["state_since_unix_ms"]) << " (observed until "
        << Time(s["observed_until_unix_ms"]) << ")\n";
    out << "powered:  " << Duration(s["powered_ms"].get<uint64_t>()) << "\n";
    out << "in use:   " << Duration(s["in_use_ms"].get<uint64_t>()) << "\n";
    if (s.contains("sources_disagreeing") && !s["sources_disagreeing"].empty())
      out << "disagree: " << s["sources_disagreeing"].dump() << "\n";
    for (const json& d : s.value("disagreements", json::array()))
      out << "ALERT:    sources disagree: " << d.get<std::string>() << "\n";
  }
  if (s.contains("outbox_depth")) {
    out << "outbox:   " << s["outbox_depth"] << " event(s) not acknowledged; last sequence "
        << s["last_sequence"] << ", acked " << s["acked_sequence"] << ", last ack "
        << Time(s["last_ack_unix_ms"]) << "\n";
    if (s.value("events_waiting_in_memory", 0) > 0)
      out << "          " << s["events_waiting_in_memory"]
          << " event(s) wait in memory: the outbox cannot be written\n";
  } else {
    out << "outbox:   none yet\n";
  }
  const json broker = get("broker");
  if (broker.is_object()) {
    out << "broker:   " << (broker["connected"].get<bool>() ? "connected" : "disconnected") << " ("
        << broker["url"].get<std::string>() << ")";
    if (!broker["connected"].get<bool>())
      out << ", last error: " << broker["last_error"].get<std::string>();
    out << "\n";
  }
  const json session = get("session");
  if (session.is_object())
    out << "session:  order " << session["order_id"].get<std::string>()
        << (session["operator"].get<std::string>().empty()
                ? ""
                : " (operator " + session["operator"].get<std::string>() + ")")
        << "\n";
  for (const json& a : get("adapters")) {
    out << "adapter:  " << a["name"].get<std::string>() << " (" << a["type"].get<std::string>()
        << "): " << (a["ok"].get<bool>() ? "ok" : "error: " + a["error"].get<std::string>());
    if (!a["identity"].get<std::string>().empty())
      out << ", identity \"" << a["identity"].get<std::string>() << "\"";
    out << ", " << a["errors_total"] << " error(s) in total\n";
  }
}

const char* KindName(adapters::Observation::Kind kind) {
  switch (kind) {
    case adapters::Observation::Kind::kState:
      return "state";
    case adapters::Observation::Kind::kPowerWatts:
      return "power_watts";
    case adapters::Observation::Kind::kEnergyKwh:
      return "energy_kwh";
    case adapters::Observation::Kind::kProcessPresent:
      return "process_present";
    case adapters::Observation::Kind::kUserLoggedIn:
      return "user_logged_in";
    case adapters::Observation::Kind::kIdentity:
      return "identity";
  }
  return "?";
}

// Sends one request to the running agent and checks its {"ok": ...} reply.
int SessionRequest(const AgentConfig& config, const std::string& request, const std::string& done,
                   std::ostream& out, std::ostream& err) {
  auto reply = ControlRequest(config.SocketPath(), request, kRequestTimeout);
  if (!reply.ok()) {
    err << "instrumeter-agent: agent: "
        << (reply.status().code() == Status::Code::kNotFound ? "not running: " : "not responding: ")
        << reply.status().message() << "\n";
    return kExitRuntime;
  }
  const json r = json::parse(*reply, nullptr, /*allow_exceptions=*/false);
  if (!r.is_object() || !r.value("ok", false)) {
    err << "instrumeter-agent: "
        << (r.is_object() ? r.value("error", std::string("refused"))
                          : "unreadable reply: " + *reply)
        << "\n";
    return kExitRuntime;
  }
  out << done << " (event " << r.value("last_sequence", uint64_t{0})
      << (r.value("stored", false) ? ", stored"
                                   : ", waiting in memory: the outbox cannot be written")
      << ")\n";
  return kExitOk;
}

}  // namespace

const char* Version() { return AgentVersion(); }

int RunCommand(const std::string& config_path) {
  auto config = Load(config_path, std::cerr);
  if (!config.ok()) return kExitUsage;
  auto credentials = LoadCredentials(*config);
  if (!credentials.ok()) {
    std::cerr << "instrumeter-agent: " << credentials.status().message() << "; refusing to start\n";
    return kExitUsage;
  }
  const protocol::SigningKey* key = credentials->signing_key ? &*credentials->signing_key : nullptr;
  return RunDaemon(*config, MakeStderrLogger(config->device_id, config->log_level), key);
}

int StatusCommand(const std::string& config_path, bool as_json, std::ostream& out,
                  std::ostream& err) {
  auto config = Load(config_path, err);
  if (!config.ok()) return kExitUsage;
  json status;
  auto reply = ControlRequest(config->SocketPath(), "status", kRequestTimeout);
  if (reply.ok()) {
    status = json::parse(*reply, nullptr, /*allow_exceptions=*/false);
    if (!status.is_object()) {
      err << "instrumeter-agent: unreadable reply from the agent: " << *reply << "\n";
      return kExitRuntime;
    }
  } else if (reply.status().code() != Status::Code::kNotFound) {
    err << "instrumeter-agent: agent: not responding: " << reply.status().message() << "\n";
    return kExitRuntime;
  } else {
    auto offline = OfflineStatus(*config);
    if (!offline.ok()) {
      err << "instrumeter-agent: " << offline.status().message() << "\n";
      return kExitRuntime;
    }
    status = std::move(*offline);
  }
  if (as_json)
    out << status.dump(2) << "\n";
  else
    PrintStatus(status, out);
  return kExitOk;
}

int CheckCommand(const std::string& config_path, std::ostream& out, std::ostream& err) {
  auto config = Load(config_path, err);
  if (!config.ok()) return kExitUsage;
  auto credentials = LoadCredentials(*config);
  if (!credentials.ok()) {
    err << "instrumeter-agent: " << credentials.status().message() << "\n";
    return kExitUsage;
  }
  out << "configuration " << config_path << ": ok (device " << config->device_id << ", "
      << config->adapters.size() << " adapter(s), "
      << (credentials->signing_key
              ? "signing key " + protocol::KeyFingerprint(credentials->signing_key->public_key())
              : std::string("development mode: unsigned"))
      << ")\n";
  // Adapters may keep small files in state_dir (the simulator's anchor), as they do when running.
  std::error_code ec;
  std::filesystem::create_directories(config->state_dir, ec);
  SystemClock clock;
  auto set = AdapterSet::Create(*config, &clock, MakeNullLogger());
  if (!set.ok()) {
    err << "instrumeter-agent: " << set.status().message() << "\n";
    return kExitUsage;
  }
  std::vector<AdapterReading> readings;
  const std::vector<Opinion> opinions = (*set)->Poll(&readings);
  (*set)->Stop();
  bool all_ok = true;
  for (size_t i = 0; i < readings.size(); ++i) {
    const AdapterReading& r = readings[i];
    out << "adapter '" << r.name << "' (" << r.type << "): ";
    if (!r.status.ok()) {
      out << "error: " << r.status.message() << "\n";
      all_ok = false;
      continue;
    }
    out << (opinions[i].state ? "ok" : "read, but reported no state") << "\n";
    all_ok = all_ok && opinions[i].state.has_value();
    for (const adapters::Observation& o : r.observations) {
      out << "  " << KindName(o.kind) << ": ";
      switch (o.kind) {
        case adapters::Observation::Kind::kState:
          out << adapters::SourceStateName(o.state) << (o.text.empty() ? "" : " (" + o.text + ")");
          break;
        case adapters::Observation::Kind::kPowerWatts:
        case adapters::Observation::Kind::kEnergyKwh:
          out << o.value;
          break;
        case adapters::Observation::Kind::kProcessPresent:
          out << (o.value != 0 ? "yes" : "no") << (o.text.empty() ? "" : " (" + o.text + ")");
          break;
        case adapters::Observation::Kind::kUserLoggedIn:
        case adapters::Observation::Kind::kIdentity:
          out << '"' << o.text << '"';
          break;
      }
      out << "\n";
    }
  }
  const Verdict v = Combiner(config->power_sources, config->use_sources).Combine(opinions);
  out << "combined state: " << protocol::StateName(v.state);
  if (!v.reason.empty()) out << " (" << v.reason << ")";
  out << "\n";
  if (v.disagreement()) {
    out << "sources disagreeing:";
    for (const std::string& name : v.sources_disagreed) out << " " << name;
    out << "\n";
  }
  return all_ok ? kExitOk : kExitRuntime;
}

int SessionStartCommand(const std::string& config_path, const std::string& order_id,
                        const std::string& operator_name, std::ostream& out, std::ostream& err) {
  auto config = Load(config_path, err);
  if (!config.ok()) return kExitUsage;
  if (order_id.empty() || order_id.find_first_of(" \t\r\n") != std::string::npos) {
    err << "instrumeter-agent: --order must be one word\n";
    return kExitUsage;
  }
  if (operator_name.find_first_of("\r\n") != std::string::npos) {
    err << "instrumeter-agent: --operator must be one line\n";
    return kExitUsage;
  }
  return SessionRequest(*config, "session start " + order_id + " " + operator_name,
                        "session started for order " + order_id, out, err);
}

int SessionStopCommand(const std::string& config_path, std::ostream& out, std::ostream& err) {
  auto config = Load(config_path, err);
  if (!config.ok()) return kExitUsage;
  return SessionRequest(*config, "session stop", "session stopped", out, err);
}

std::string ConfigReference() { return ConfigReferenceMarkdown(adapters::Registry()); }

}  // namespace instrumeter::agent
