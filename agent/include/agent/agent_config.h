// The agent's configuration: one TOML file, declared with config::Schema tables so that an
// unknown key or a bad value stops start-up naming file:line and key, and so that the reference
// documentation (docs/agent-config.md) is generated from the same tables.
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "adapters/registry.h"
#include "common/config.h"
#include "common/status.h"

namespace instrumeter::agent {

// [mqtt]: the broker and the delivery window (protocol/README.md, "Delivery").
struct MqttOptions {
  std::string broker;
  int64_t keepalive_s = 30;
  int64_t connect_timeout_ms = 5000;
  int64_t reconnect_min_ms = 500;
  int64_t reconnect_max_ms = 30000;
  int64_t max_events_per_envelope = 100;
  int64_t max_envelopes_in_flight = 8;
  int64_t ack_timeout_ms = 15000;
  int64_t shutdown_flush_ms = 3000;
  // TLS (ssl:// brokers): PEM files; see common/mqtt_link.h. Empty when not used.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
};

// [security]: signed telemetry (protocol/README.md, "Signing"). Absent: development mode, the
// agent sends unsigned envelopes and the hub decides whether it accepts them.
struct SecurityOptions {
  std::string signing_key_file;  // Ed25519 private key, PEM, mode 0600
};

// One [[adapter]] section, validated against its type's schema but not yet instantiated.
struct AdapterSpec {
  std::string name;
  adapters::AdapterType type;  // a copy of the registry entry
  const toml::table* table;    // the section, inside AgentConfig::document
  config::Schema schema;       // the base keys (name, type) followed by the type's own keys
  std::string where;           // "[[adapter]] 'power'", for messages
};

// One [[evidence.contradiction]]: two adapters that should agree about use.
struct ContradictionWatch {
  std::string first;
  std::string second;
  int64_t after_ms = 600000;
};

struct AgentConfig {
  std::string path;  // the file it was read from, for messages
  // The parsed file. Shared so that AdapterSpec::table stays valid when the config is moved or
  // copied; the tables keep their source lines for messages.
  std::shared_ptr<const toml::table> document;
  std::string device_id;
  std::string state_dir;
  int64_t poll_interval_ms = 1000;
  int64_t heartbeat_interval_ms = 10000;
  int64_t debounce_ms = 0;
  std::string log_level = "info";
  MqttOptions mqtt;
  std::optional<SecurityOptions> security;
  // Adapter names; when [evidence] omits them, every adapter, in configuration order.
  std::vector<std::string> power_sources;
  std::vector<std::string> use_sources;
  std::vector<ContradictionWatch> contradictions;
  std::vector<AdapterSpec> adapters;

  std::string OutboxPath() const { return state_dir + "/outbox.db"; }
  std::string CheckpointPath() const { return state_dir + "/checkpoint"; }
  std::string SocketPath() const { return state_dir + "/agent.sock"; }
};

// Reads and validates a configuration file against the given adapter registry (the build's
// adapters::Registry() in production; tests pass their own). Every error is InvalidArgument (or
// NotFound for a missing file) and names the file, line and key.
Result<AgentConfig> LoadAgentConfig(const std::string& path,
                                    const std::vector<adapters::AdapterType>& registry);
// The same, from text; `source_name` stands for the file name in messages.
Result<AgentConfig> ParseAgentConfig(const std::string& text, const std::string& source_name,
                                     const std::vector<adapters::AdapterType>& registry);

// The Markdown reference of every key: top level, [mqtt], [evidence], [[adapter]] and each
// registered adapter type's keys.
std::string ConfigReferenceMarkdown(const std::vector<adapters::AdapterType>& registry);

}  // namespace instrumeter::agent
