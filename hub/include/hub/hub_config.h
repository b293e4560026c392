// The hub's TOML configuration: declared with common/config.h schemas, so an unknown key or a bad
// value stops start-up with file:line:key, and docs/hub-config.md is generated from the same
// tables (`instrumeter-hub config-reference`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/status.h"
#include "hub/billing_options.h"
#include "hub/http_server.h"
#include "hub/ingestor.h"

namespace instrumeter::hub {

struct MqttOptions {
  std::string broker;  // tcp://host:port or ssl://host:port
  std::string client_id = "instrumeter-hub";
  int keepalive_s = 30;
  int64_t reconnect_min_ms = 500;
  int64_t reconnect_max_ms = 30000;
  // TLS (ssl:// brokers), PEM files: the deployment CA and the hub's client certificate (CN
  // instrumeter-hub, from `instrumeter-hub ca init`). Empty when not used.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
};

// [security]: where the deployment's certificate authority lives (for `ca` and `devices`).
// Whether signatures are required is an ingest option (IngestOptions::require_signatures).
struct SecurityOptions {
  std::string ca_dir;
};

struct StoreOptions {
  std::string path;
  int busy_timeout_ms = 5000;
  // The archive of settled events (docs/hub.md, "Archive"); 0 hours: off.
  int64_t archive_after_hours = 48;
  int64_t archive_interval_ms = 600'000;
};

// The live API, stream, metrics, health and dashboard ([http]).
struct HttpOptions {
  bool enabled = true;
  HttpServerOptions server;
  // Dashboard files; empty: the build's default (the source tree's hub/web for a development
  // build, /usr/share/instrumeter/web for an installed one).
  std::string web_root;
  int64_t registry_refresh_ms = 10'000;
  // How long before a remote booking's start and after its end its share link shows it.
  int64_t share_margin_s = 3600;
  // Bearer tokens (src/api_auth.h). nullopt: required once any token exists or the listener is
  // not on loopback.
  std::optional<bool> require_tokens;
};

struct HubConfig {
  MqttOptions mqtt;
  StoreOptions store;
  IngestOptions ingest;
  HttpOptions http;
  BillingOptions billing;
  SecurityOptions security;
  std::string log_level = "info";  // trace, debug, info, warn, error
};

// Reads and validates a config file. Errors are InvalidArgument (NotFound for a missing file)
// with a message naming file, line and key.
Result<HubConfig> LoadHubConfig(const std::string& path);
// The same from text; `source_name` stands for the file in messages.
Result<HubConfig> ParseHubConfig(const std::string& text, const std::string& source_name);

// Markdown: one table per section, every key with its type, default and description.
std::string HubConfigReference();

}  // namespace instrumeter::hub
