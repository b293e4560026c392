#include "agent/agent_config.h"

#include <sys/un.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <sstream>

#include "protocol/topics.h"

namespace instrumeter::agent {
namespace {

using config::Key;
using config::Schema;
using config::Type;

constexpr double kHourMs = 3'600'000;

const Schema& TopSchema() {
  static const Schema kSchema = {
      {.name = "device_id",
       .type = Type::kString,
       .description = "The instrument's id: 1-64 characters from [A-Za-z0-9._-]. Also the MQTT "
                      "client id and the topic level instrumeter/v1/<device_id>/...",
       .required = true},
      {.name = "state_dir",
       .type = Type::kString,
       .description = "Directory for outbox.db, checkpoint and agent.sock (created if missing). "
                      "Never share it between two agents.",
       .required = true},
      {.name = "poll_interval_ms",
       .type = Type::kInteger,
       .default_value = int64_t{1000},
       .description = "How often every adapter is polled.",
       .min = 50,
       .max = kHourMs},
      {.name = "heartbeat_interval_ms",
       .type = Type::kInteger,
       .default_value = int64_t{10000},
       .description = "How often a heartbeat with the cumulative counters is sent.",
       .min = 100,
       .max = kHourMs},
      {.name = "debounce_ms",
       .type = Type::kInteger,
       .default_value = int64_t{0},
       .description = "A new state must be observed this long before it is confirmed (its "
                      "change is then dated back to its first observation). 0: immediately.",
       .min = 0,
       .max = kHourMs},
      {.name = "log_level",
       .type = Type::kString,
       .default_value = std::string("info"),
       .description = "Least severe level logged to stderr.",
       .one_of = {"trace", "debug", "info", "warn", "error"}},
      {.name = "mqtt",
       .type = Type::kTable,
       .description = "The broker and delivery window: see [mqtt].",
       .required = true},
      {.name = "evidence",
       .type = Type::kTable,
       .description = "Which adapters speak about power and about use: see [evidence]."},
      {.name = "security",
       .type = Type::kTable,
       .description = "Signed telemetry: see [security]. Without it the agent runs in "
                      "development mode and sends unsigned envelopes."},
      {.name = "adapter",
       .type = Type::kTableArray,
       .description = "One [[adapter]] section per source of evidence: see [[adapter]].",
       .required = true},
  };
  return kSchema;
}

const Schema& MqttSchema() {
  static const Schema kSchema = {
      {.name = "broker",
       .type = Type::kString,
       .description = "Broker URL: tcp://host:port (or ssl://, ws://, wss://).",
       .required = true},
      {.name = "keepalive_s",
       .type = Type::kInteger,
       .default_value = int64_t{30},
       .description = "MQTT keep-alive; the broker publishes the last will after 1.5 times this "
                      "without traffic.",
       .min = 1,
       .max = 65535},
      {.name = "connect_timeout_ms",
       .type = Type::kInteger,
       .default_value = int64_t{5000},
       .description = "How long one connection attempt may take.",
       .min = 100,
       .max = 600'000},
      {.name = "reconnect_min_ms",
       .type = Type::kInteger,
       .default_value = int64_t{500},
       .description = "First reconnect delay; doubles per failed attempt, with jitter.",
       .min = 10,
       .max = kHourMs},
      {.name = "reconnect_max_ms",
       .type = Type::kInteger,
       .default_value = int64_t{30000},
       .description = "Longest reconnect delay (at least reconnect_min_ms).",
       .min = 10,
       .max = kHourMs},
      {.name = "max_events_per_envelope",
       .type = Type::kInteger,
       .default_value = int64_t{100},
       .description = "Events per uplink envelope (fewer if the envelope would exceed 192 KiB).",
       .min = 1,
       .max = 1000},
      {.name = "max_envelopes_in_flight",
       .type = Type::kInteger,
       .default_value = int64_t{8},
       .description = "Envelopes sent but not yet acknowledged by the hub.",
       .min = 1,
       .max = 64},
      {.name = "ack_timeout_ms",
       .type = Type::kInteger,
       .default_value = int64_t{15000},
       .description = "With events in flight and no ack advancing for this long, resend from the "
                      "oldest unacknowledged event.",
       .min = 100,
       .max = kHourMs},
      {.name = "shutdown_flush_ms",
       .type = Type::kInteger,
       .default_value = int64_t{3000},
       .description = "On SIGTERM, how long to wait for the hub to acknowledge what is left.",
       .min = 0,
       .max = 600'000},
      {.name = "ca_file",
       .type = Type::kString,
       .description = "ssl:// brokers: the CA certificate (PEM) that signed the broker's "
                      "certificate. Required for ssl://, refused for tcp://. The broker's "
                      "certificate and host name are always verified; TLS 1.2 or newer."},
      {.name = "cert_file",
       .type = Type::kString,
       .description = "ssl:// brokers: this device's client certificate (PEM), CN = device_id."},
      {.name = "key_file",
       .type = Type::kString,
       .description = "ssl:// brokers: the client certificate's private key (PEM). The agent "
                      "refuses to start when group or others can read it."},
  };
  return kSchema;
}

const Schema& SecuritySchema() {
  static const Schema kSchema = {
      {.name = "signing_key_file",
       .type = Type::kString,
       .description = "The device's Ed25519 signing key (PEM, from `instrumeter-hub devices "
                      "enroll`). The agent chains every event and signs the chain head with it "
                      "(protocol/README.md, \"Signing\"); it refuses to start when the file is "
                      "missing or group or others can read it.",
       .required = true},
  };
  return kSchema;
}

const Schema& EvidenceSchema() {
  static const Schema kSchema = {
      {.name = "power_sources",
       .type = Type::kStringArray,
       .description = "Adapters whose state says whether the instrument is powered (OFF / "
                      "IDLE / IN_USE / FAULT). Default: every adapter."},
      {.name = "use_sources",
       .type = Type::kStringArray,
       .description = "Adapters whose state says whether a powered instrument is in use. "
                      "Default: every adapter."},
      {.name = "contradiction",
       .type = Type::kTableArray,
       .description = "Pairs of adapters watched for lasting contradiction: see "
                      "[[evidence.contradiction]]."},
  };
  return kSchema;
}

const Schema& ContradictionSchema() {
  static const Schema kSchema = {
      {.name = "between",
       .type = Type::kStringArray,
       .description = "Two adapter names, e.g. [\"power\", \"daq\"]. They contradict while exactly "
                      "one of them says IN_USE and the other has an opinion.",
       .required = true},
      {.name = "after_ms",
       .type = Type::kInteger,
       .default_value = int64_t{600000},
       .description = "How long the contradiction must last before the agent raises the "
                      "disagreement flag (heartbeats, status, log).",
       .min = 0},
  };
  return kSchema;
}

const Schema& AdapterBaseSchema() {
  static const Schema kSchema = {
      {.name = "name",
       .type = Type::kString,
       .description = "This source's name, unique in the file: 1-64 characters from "
                      "[A-Za-z0-9._-]. Used in [evidence], events, logs and health.",
       .required = true},
      {.name = "type",
       .type = Type::kString,
       .description = "The adapter type (see the adapter types below).",
       .required = true},
  };
  return kSchema;
}

bool IsValidAdapterName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

// Section::Make names the file and line for keys that are present; a missing required key has no
// line, so prefix the location of the section that lacks it.
Status Located(const Status& status, const std::string& location, const std::string& path) {
  if (status.ok() || status.message().rfind(path, 0) == 0) return status;
  return status.WithContext(location);
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// The schema validation of one [[adapter]] section, short of instantiating it.
Result<AdapterSpec> ParseAdapter(const toml::table& table, size_t index, const std::string& path,
                                 const std::vector<adapters::AdapterType>& registry) {
  const std::string location = config::Location(table);
  const std::string anonymous = "[[adapter]] #" + std::to_string(index + 1);
  // Name and type decide which schema applies, so they are checked before the full section.
  for (const Key& key : AdapterBaseSchema()) {
    const toml::node* node = table.get(key.name);
    if (node == nullptr)
      return Status::InvalidArgument(location + ": " + anonymous + ": required key '" + key.name +
                                     "' is missing");
    if (!node->is_string())
      return Status::InvalidArgument(config::Location(*node) + ": " + anonymous + ": key '" +
                                     key.name + "': must be string");
  }
  AdapterSpec spec;
  spec.name = table.get("name")->value<std::string>().value_or("");
  if (!IsValidAdapterName(spec.name))
    return Status::InvalidArgument(config::Location(*table.get("name")) + ": " + anonymous +
                                   ": key 'name': '" + spec.name +
                                   "' must be 1-64 characters from [A-Za-z0-9._-]");
  spec.where = "[[adapter]] '" + spec.name + "'";
  const std::string type = table.get("type")->value<std::string>().value_or("");
  auto found = std::find_if(registry.begin(), registry.end(),
                            [&](const adapters::AdapterType& t) { return t.name == type; });
  if (found == registry.end()) {
    std::vector<std::string> known;
    for (const adapters::AdapterType& t : registry) known.push_back(t.name);
    return Status::InvalidArgument(config::Location(*table.get("type")) + ": " + spec.where +
                                   ": key 'type': unknown adapter type '" + type +
                                   "' (known types: " + (known.empty() ? "none" : Join(known)) +
                                   ")");
  }
  spec.type = *found;
  spec.table = &table;
  spec.schema = AdapterBaseSchema();
  if (spec.type.schema != nullptr)
    spec.schema.insert(spec.schema.end(), spec.type.schema->begin(), spec.type.schema->end());
  auto section = config::Section::Make(table, spec.schema, spec.where);
  if (!section.ok()) return Located(section.status(), location, path);
  return spec;
}

Result<std::vector<std::string>> EvidenceList(const config::Section* evidence,
                                              const std::string& key,
                                              const std::vector<AdapterSpec>& adapters) {
  std::vector<std::string> names;
  for (const AdapterSpec& a : adapters) names.push_back(a.name);
  if (evidence == nullptr || !evidence->Has(key)) return names;
  std::vector<std::string> chosen = evidence->StringArray(key);
  if (chosen.empty()) return evidence->Error(key, "must name at least one adapter");
  for (size_t i = 0; i < chosen.size(); ++i) {
    if (std::find(names.begin(), names.end(), chosen[i]) == names.end())
      return evidence->Error(
          key, "names no configured adapter: '" + chosen[i] + "' (adapters: " + Join(names) + ")");
    if (std::find(chosen.begin(), chosen.begin() + static_cast<long>(i), chosen[i]) !=
        chosen.begin() + static_cast<long>(i))
      return evidence->Error(key, "names '" + chosen[i] + "' twice");
  }
  return chosen;
}

Result<AgentConfig> FromDocument(toml::table parsed, const std::string& path,
                                 const std::vector<adapters::AdapterType>& registry) {
  AgentConfig cfg;
  cfg.path = path;
  cfg.document = std::make_shared<const toml::table>(std::move(parsed));
  auto top = config::Section::Make(*cfg.document, TopSchema(), "top level");
  if (!top.ok()) return Located(top.status(), path, path);
  cfg.device_id = top->String("device_id");
  if (Status st = protocol::ValidateDeviceId(cfg.device_id); !st.ok())
    return top->Error("device_id", st.message());
  cfg.state_dir = top->String("state_dir");
  while (cfg.state_dir.size() > 1 && cfg.state_dir.back() == '/') cfg.state_dir.pop_back();
  if (cfg.state_dir.empty()) return top->Error("state_dir", "must not be empty");
  if (cfg.SocketPath().size() >= sizeof(sockaddr_un::sun_path))
    return top->Error("state_dir", "is too long: " + cfg.SocketPath() +
                                       " exceeds the Unix socket path limit of " +
                                       std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                                       " characters");
  cfg.poll_interval_ms = top->Integer("poll_interval_ms");
  cfg.heartbeat_interval_ms = top->Integer("heartbeat_interval_ms");
  cfg.debounce_ms = top->Integer("debounce_ms");
  cfg.log_level = top->String("log_level");

  auto mqtt = config::Section::Make(*top->Table("mqtt"), MqttSchema(), "[mqtt]");
  if (!mqtt.ok()) return Located(mqtt.status(), config::Location(*top->Table("mqtt")), path);
  cfg.mqtt.broker = mqtt->String("broker");
  static constexpr const char* kSchemes[] = {"tcp://", "ssl://",  "ws://",
                                             "wss://", "mqtt://", "mqtts://"};
  static constexpr const char* kTlsSchemes[] = {"ssl://", "wss://", "mqtts://"};
  if (std::none_of(std::begin(kSchemes), std::end(kSchemes), [&](const char* scheme) {
        return cfg.mqtt.broker.rfind(scheme, 0) == 0 && cfg.mqtt.broker.size() > strlen(scheme);
      }))
    return mqtt->Error("broker", "'" + cfg.mqtt.broker +
                                     "' is not a broker URL (tcp://host:port, ssl://, ws://, "
                                     "wss://)");
  cfg.mqtt.keepalive_s = mqtt->Integer("keepalive_s");
  cfg.mqtt.connect_timeout_ms = mqtt->Integer("connect_timeout_ms");
  cfg.mqtt.reconnect_min_ms = mqtt->Integer("reconnect_min_ms");
  cfg.mqtt.reconnect_max_ms = mqtt->Integer("reconnect_max_ms");
  if (cfg.mqtt.reconnect_max_ms < cfg.mqtt.reconnect_min_ms)
    return mqtt->Error("reconnect_max_ms", "must be at least reconnect_min_ms (" +
                                               std::to_string(cfg.mqtt.reconnect_min_ms) + ")");
  cfg.mqtt.max_events_per_envelope = mqtt->Integer("max_events_per_envelope");
  cfg.mqtt.max_envelopes_in_flight = mqtt->Integer("max_envelopes_in_flight");
  cfg.mqtt.ack_timeout_ms = mqtt->Integer("ack_timeout_ms");
  cfg.mqtt.shutdown_flush_ms = mqtt->Integer("shutdown_flush_ms");
  cfg.mqtt.ca_file = mqtt->String("ca_file");
  cfg.mqtt.cert_file = mqtt->String("cert_file");
  cfg.mqtt.key_file = mqtt->String("key_file");
  const bool tls_url =
      std::any_of(std::begin(kTlsSchemes), std::end(kTlsSchemes),
                  [&](const char* scheme) { return cfg.mqtt.broker.rfind(scheme, 0) == 0; });
  if (tls_url && cfg.mqtt.ca_file.empty())
    return mqtt->Error("broker", "a TLS broker URL needs ca_file to verify the broker");
  if (!tls_url) {
    for (const char* key : {"ca_file", "cert_file", "key_file"})
      if (mqtt->Has(key))
        return mqtt->Error(
            key, "TLS files need an ssl:// broker; '" + cfg.mqtt.broker + "' would not encrypt");
  }
  if (cfg.mqtt.cert_file.empty() != cfg.mqtt.key_file.empty())
    return mqtt->Error(cfg.mqtt.cert_file.empty() ? "cert_file" : "key_file",
                       "cert_file and key_file go together");
  if (const toml::table* table = top->Table("security")) {
    auto security = config::Section::Make(*table, SecuritySchema(), "[security]");
    if (!security.ok()) return Located(security.status(), config::Location(*table), path);
    cfg.security = SecurityOptions{security->String("signing_key_file")};
    if (cfg.security->signing_key_file.empty())
      return security->Error("signing_key_file", "must not be empty");
  }

  const std::vector<const toml::table*> adapter_tables = top->TableArray("adapter");
  if (adapter_tables.empty()) return top->Error("adapter", "needs at least one [[adapter]]");
  for (size_t i = 0; i < adapter_tables.size(); ++i) {
    auto spec = ParseAdapter(*adapter_tables[i], i, path, registry);
    if (!spec.ok()) return spec.status();
    for (const AdapterSpec& earlier : cfg.adapters) {
      if (earlier.name != spec->name) continue;
      return Status::InvalidArgument(config::Location(*adapter_tables[i]->get("name")) + ": " +
                                     spec->where +
                                     ": key 'name': duplicate adapter name (first "
                                     "defined at " +
                                     config::Location(*earlier.table) + ")");
    }
    cfg.adapters.push_back(std::move(*spec));
  }

  std::optional<config::Section> evidence;
  if (const toml::table* table = top->Table("evidence")) {
    auto section = config::Section::Make(*table, EvidenceSchema(), "[evidence]");
    if (!section.ok()) return Located(section.status(), config::Location(*table), path);
    evidence = std::move(*section);
  }
  const config::Section* ev = evidence ? &*evidence : nullptr;
  auto power = EvidenceList(ev, "power_sources", cfg.adapters);
  if (!power.ok()) return power.status();
  auto use = EvidenceList(ev, "use_sources", cfg.adapters);
  if (!use.ok()) return use.status();
  cfg.power_sources = std::move(*power);
  cfg.use_sources = std::move(*use);
  if (ev != nullptr) {
    int index = 0;
    for (const toml::table* table : ev->TableArray("contradiction")) {
      const std::string where = "[[evidence.contradiction]] #" + std::to_string(++index);
      auto section = config::Section::Make(*table, ContradictionSchema(), where);
      if (!section.ok()) return Located(section.status(), config::Location(*table), path);
      const std::vector<std::string> between = section->StringArray("between");
      if (between.size() != 2 || between[0] == between[1])
        return section->Error("between", "must name two different adapters");
      for (const std::string& name : between) {
        const bool known = std::any_of(cfg.adapters.begin(), cfg.adapters.end(),
                                       [&](const AdapterSpec& a) { return a.name == name; });
        if (!known) return section->Error("between", "names no configured adapter: '" + name + "'");
      }
      cfg.contradictions.push_back({between[0], between[1], section->Integer("after_ms")});
    }
  }
  return cfg;
}

}  // namespace

Result<AgentConfig> LoadAgentConfig(const std::string& path,
                                    const std::vector<adapters::AdapterType>& registry) {
  auto document = config::ParseFile(path);
  if (!document.ok()) return document.status();
  return FromDocument(std::move(*document), path, registry);
}

Result<AgentConfig> ParseAgentConfig(const std::string& text, const std::string& source_name,
                                     const std::vector<adapters::AdapterType>& registry) {
  auto document = config::ParseString(text, source_name);
  if (!document.ok()) return document.status();
  return FromDocument(std::move(*document), source_name, registry);
}

std::string ConfigReferenceMarkdown(const std::vector<adapters::AdapterType>& registry) {
  std::ostringstream out;
  out << "# instrumeter-agent configuration reference\n\n"
      << "Generated by `instrumeter-agent config-reference` from the schemas the agent validates "
         "with; do not edit by hand. The file is TOML. An unknown key, a value of the wrong type "
         "or out of range, or a missing required key stops start-up with a message naming the "
         "file, line and key.\n\n"
      << "## Top level\n\n"
      << config::SchemaMarkdown(TopSchema()) << "\n"
      << "## [mqtt]\n\n"
      << config::SchemaMarkdown(MqttSchema()) << "\n"
      << "## [security]\n\n"
      << "Signed telemetry. With this section the agent chains every event and signs the chain "
         "head with the device's Ed25519 key; without it the agent runs in development mode and "
         "sends unsigned envelopes, which a hub that requires signatures refuses. "
         "`instrumeter-hub devices enroll` writes the key and a complete configuration.\n\n"
      << config::SchemaMarkdown(SecuritySchema()) << "\n"
      << "## [evidence]\n\n"
      << "How the adapters' opinions combine, each poll: any power source saying FAULT gives "
         "FAULT; else if every power source fails to read, UNKNOWN; else if none says IDLE or "
         "IN_USE, OFF; else (powered) any use source saying IN_USE gives IN_USE, every use "
         "source failing gives UNKNOWN, otherwise IDLE.\n\n"
      << config::SchemaMarkdown(EvidenceSchema()) << "\n"
      << "## [[evidence.contradiction]]\n\n"
      << "A pair of adapters that should agree about use. While exactly one of them says IN_USE "
         "(full power draw and no acquisition software; the software running with the meter at "
         "zero) for longer than `after_ms`, heartbeats carry `disagreement` with a description, "
         "`instrumeter-agent status` shows it and the log says so. It changes no state and no "
         "hours: it is evidence for a human.\n\n"
      << config::SchemaMarkdown(ContradictionSchema()) << "\n"
      << "## [[adapter]]\n\n"
      << "Every adapter section has these keys, plus the keys of its type.\n\n"
      << config::SchemaMarkdown(AdapterBaseSchema()) << "\n";
  out << "## Adapter types\n\n";
  if (registry.empty()) out << "This build has no adapter types.\n\n";
  for (const adapters::AdapterType& type : registry) {
    out << "### type = \"" << type.name << "\"\n\n" << type.description << "\n\n";
    if (type.schema != nullptr && !type.schema->empty())
      out << config::SchemaMarkdown(*type.schema) << "\n";
    else
      out << "No keys of its own.\n\n";
  }
  return out.str();
}

}  // namespace instrumeter::agent
