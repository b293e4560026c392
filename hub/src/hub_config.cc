#include "hub/hub_config.h"

#include "billing_config_schema.h"
#include "common/config.h"

namespace instrumeter::hub {
namespace {

using config::Key;
using config::Schema;
using config::Section;
using config::Type;

const Schema& RootSchema() {
  static const Schema kSchema = {
      {.name = "log_level",
       .type = Type::kString,
       .default_value = std::string("info"),
       .description = "Least severe log level written to stderr.",
       .one_of = {"trace", "debug", "info", "warn", "error"}},
      {.name = "mqtt",
       .type = Type::kTable,
       .description = "The broker connection: [mqtt].",
       .required = true},
      {.name = "store",
       .type = Type::kTable,
       .description = "The database: [store].",
       .required = true},
      {.name = "ingest",
       .type = Type::kTable,
       .description = "Ingest limits and timing: [ingest]."},
      {.name = "http",
       .type = Type::kTable,
       .description = "The live API, event stream, metrics, health check and dashboard: [http]."},
      {.name = "billing",
       .type = Type::kTable,
       .description = "Verification of bookings and default billing rules: [billing]."},
      {.name = "security",
       .type = Type::kTable,
       .description = "Signed telemetry and the certificate authority: [security]."},
  };
  return kSchema;
}

const Schema& MqttSchema() {
  static const Schema kSchema = {
      {.name = "broker",
       .type = Type::kString,
       .description = "Broker URL, tcp://host:port, or ssl://host:port with ca_file, cert_file "
                      "and key_file.",
       .required = true},
      {.name = "client_id",
       .type = Type::kString,
       .default_value = std::string("instrumeter-hub"),
       .description = "MQTT client id. The hub keeps a persistent session (clean_session=false) "
                      "under this id, so the broker queues uplink messages while it is down; "
                      "two hubs must not share it."},
      {.name = "keepalive_s",
       .type = Type::kInteger,
       .default_value = int64_t{30},
       .description = "MQTT keepalive, seconds.",
       .min = 5,
       .max = 3600},
      {.name = "reconnect_min_ms",
       .type = Type::kInteger,
       .default_value = int64_t{500},
       .description = "First reconnect delay after losing the broker; doubles up to "
                      "reconnect_max_ms, with jitter.",
       .min = 10,
       .max = 600'000},
      {.name = "reconnect_max_ms",
       .type = Type::kInteger,
       .default_value = int64_t{30'000},
       .description = "Longest reconnect delay.",
       .min = 10,
       .max = 3'600'000},
      {.name = "ca_file",
       .type = Type::kString,
       .description = "ssl:// brokers: the deployment's CA certificate (PEM); the broker's "
                      "certificate and host name are verified against it. Required for ssl://."},
      {.name = "cert_file",
       .type = Type::kString,
       .description = "ssl:// brokers: the hub's client certificate (PEM, CN instrumeter-hub, "
                      "made by `instrumeter-hub ca init`)."},
      {.name = "key_file",
       .type = Type::kString,
       .description = "ssl:// brokers: its private key (PEM). The hub refuses to start when "
                      "group or others can read it."},
  };
  return kSchema;
}

const Schema& SecuritySchema() {
  static const Schema kSchema = {
      {.name = "require_signatures",
       .type = Type::kBoolean,
       .description =
           "Refuse telemetry of devices that have no enrolled signing key. Unset: true as soon "
           "as any device is enrolled (`instrumeter-hub devices enroll`); a hub without any "
           "enrolled device runs in development mode. false: development mode beside enrolled "
           "devices. Telemetry accepted unsigned is stored but never billable; enrolled devices "
           "are always verified."},
      {.name = "key_reload_ms",
       .type = Type::kInteger,
       .default_value = int64_t{2000},
       .description = "How often the running hub checks for enrolments, revocations and chain "
                      "resets made with the CLI (it re-reads the keys only when one was made).",
       .min = 100,
       .max = 600'000},
      {.name = "ca_dir",
       .type = Type::kString,
       .default_value = std::string(""),
       .description = "Directory of the deployment's certificate authority (`instrumeter-hub ca "
                      "init`), used by `devices enroll` and `devices revoke`. Keep it on the hub "
                      "host only, mode 0700."},
  };
  return kSchema;
}

const Schema& StoreSchema() {
  static const Schema kSchema = {
      {.name = "path",
       .type = Type::kString,
       .description = "SQLite database file (created if missing; WAL mode, synchronous=FULL). "
                      "CLI commands may use it while the hub runs.",
       .required = true},
      {.name = "busy_timeout_ms",
       .type = Type::kInteger,
       .default_value = int64_t{5000},
       .description = "How long a write waits for another process holding the database lock.",
       .min = 0,
       .max = 600'000},
      {.name = "archive_after_hours",
       .type = Type::kInteger,
       .default_value = int64_t{48},
       .description = "Signed events received longer ago than this are kept compressed, a block "
                      "per run of a device's events, instead of a row each (docs/hub.md, "
                      "\"Archive\"): about 20 times less disk. 0 turns the archive off.",
       .min = 0,
       .max = 100'000},
      {.name = "archive_interval_ms",
       .type = Type::kInteger,
       .default_value = int64_t{600'000},
       .description = "How often the archive looks for events to move. A pass spreads its "
                      "devices over half of this, so that it takes a share of a core, not all of "
                      "one at once.",
       .min = 1000,
       .max = 86'400'000},
  };
  return kSchema;
}

const Schema& IngestSchema() {
  static const Schema kSchema = {
      {.name = "max_batch_events",
       .type = Type::kInteger,
       .default_value = int64_t{2000},
       .description = "Commit a batch once this many new events wait.",
       .min = 1,
       .max = 1'000'000},
      {.name = "max_batch_delay_ms",
       .type = Type::kInteger,
       .default_value = int64_t{20},
       .description = "... or once the oldest waited this long. Acks go out after the commit.",
       .min = 0,
       .max = 60'000},
      {.name = "resend_interval_ms",
       .type = Type::kInteger,
       .default_value = int64_t{5000},
       .description = "At most one ResendRequest per device per interval while it has a gap.",
       .min = 0,
       .max = 3'600'000},
      {.name = "max_envelope_bytes",
       .type = Type::kInteger,
       .default_value = int64_t{262'144},
       .description = "Larger envelopes are rejected as malformed.",
       .min = 64,
       .max = 64 * 1024 * 1024},
      {.name = "max_events_per_envelope",
       .type = Type::kInteger,
       .default_value = int64_t{1000},
       .description = "Envelopes with more events are rejected as malformed.",
       .min = 1,
       .max = 1'000'000},
      {.name = "accept_unregistered_devices",
       .type = Type::kBoolean,
       .default_value = false,
       .description = "Store telemetry of devices that are not in the instruments registry. "
                      "Off: their envelopes are counted, logged and dropped without an ack."},
  };
  return kSchema;
}

const Schema& HttpSchema() {
  static const Schema kSchema = {
      {.name = "enabled",
       .type = Type::kBoolean,
       .default_value = true,
       .description = "Serve the HTTP API, /metrics, /healthz and the dashboard."},
      {.name = "listen",
       .type = Type::kString,
       .default_value = std::string("127.0.0.1:8080"),
       .description = "host:port to listen on ([::1]:8080 for IPv6; port 0 picks a free one). "
                      "Loopback by default. On any other address API tokens are required "
                      "(require_tokens); use TLS (tls_cert_file) or a TLS reverse proxy."},
      {.name = "require_tokens",
       .type = Type::kBoolean,
       .description = "Require a bearer token (`instrumeter-hub tokens add NAME`) for the API, "
                      "the event stream and /metrics; /healthz and the dashboard's files stay "
                      "public. Unset: required as soon as any token exists or `listen` is not a "
                      "loopback address (docs/security.md)."},
      {.name = "tls_cert_file",
       .type = Type::kString,
       .default_value = std::string(""),
       .description = "Serve HTTPS (TLS 1.2 or newer) with this certificate chain (PEM). Empty: "
                      "plain HTTP."},
      {.name = "tls_key_file",
       .type = Type::kString,
       .default_value = std::string(""),
       .description = "The private key of tls_cert_file (PEM). The hub refuses to start when group "
                      "or others can read it."},
      {.name = "web_root",
       .type = Type::kString,
       .default_value = std::string(""),
       .description = "Folder of the dashboard's files (index.html, app.js, app.css). Empty: the "
                      "build's default, the source tree's hub/web for a development build or "
                      "/usr/share/instrumeter/web when installed (CMake INSTRUMETER_WEB_ROOT)."},
      {.name = "read_timeout_ms",
       .type = Type::kInteger,
       .default_value = int64_t{10'000},
       .description = "Time to receive one whole request; an idle keep-alive connection is "
                      "closed after it too.",
       .min = 100,
       .max = 600'000},
      {.name = "write_timeout_ms",
       .type = Type::kInteger,
       .default_value = int64_t{10'000},
       .description = "Time to send one response or one stream message; a stream client that "
                      "takes longer is dropped.",
       .min = 100,
       .max = 600'000},
      {.name = "max_connections",
       .type = Type::kInteger,
       .default_value = int64_t{1024},
       .description = "Open connections (stream clients included); further ones are closed "
                      "at once.",
       .min = 1,
       .max = 100'000},
      {.name = "max_stream_clients",
       .type = Type::kInteger,
       .default_value = int64_t{256},
       .description = "Open /api/v1/stream connections; further ones get 503.",
       .min = 1,
       .max = 100'000},
      {.name = "stream_queue_events",
       .type = Type::kInteger,
       .default_value = int64_t{1000},
       .description = "Messages a stream client may fall behind before it is dropped (it "
                      "reconnects and reloads; ingest never waits for it).",
       .min = 1,
       .max = 1'000'000},
      {.name = "stream_heartbeat_ms",
       .type = Type::kInteger,
       .default_value = int64_t{15'000},
       .description = "Interval of the keep-alive comment sent to stream clients.",
       .min = 100,
       .max = 600'000},
      {.name = "max_body_bytes",
       .type = Type::kInteger,
       .default_value = int64_t{1 << 20},
       .description = "Largest request body accepted (413 beyond).",
       .min = 0,
       .max = 64 << 20},
      {.name = "registry_refresh_ms",
       .type = Type::kInteger,
       .default_value = int64_t{10'000},
       .description = "How often the API re-reads the instrument registry, so that instruments "
                      "added with `instrumeter-hub instruments add/import` appear.",
       .min = 100,
       .max = 3'600'000},
      {.name = "share_margin_s",
       .type = Type::kInteger,
       .default_value = int64_t{3600},
       .description = "A customer's share link (`/live/<token>`) shows its remote booking from "
                      "this long before the booking starts until this long after it ends; then "
                      "it answers 410 Gone.",
       .min = 0,
       .max = 7 * 86'400},
  };
  return kSchema;
}

Result<HubConfig> Build(const toml::table& table, const std::string& source) {
  Result<Section> root = Section::Make(table, RootSchema(), source);
  if (!root.ok()) return root.status();
  HubConfig config;
  config.log_level = root->String("log_level");

  Result<Section> mqtt = Section::Make(*root->Table("mqtt"), MqttSchema(), source + " [mqtt]");
  if (!mqtt.ok()) return mqtt.status();
  config.mqtt.broker = mqtt->String("broker");
  config.mqtt.client_id = mqtt->String("client_id");
  config.mqtt.keepalive_s = static_cast<int>(mqtt->Integer("keepalive_s"));
  config.mqtt.reconnect_min_ms = mqtt->Integer("reconnect_min_ms");
  config.mqtt.reconnect_max_ms = mqtt->Integer("reconnect_max_ms");
  if (config.mqtt.broker.empty()) return mqtt->Error("broker", "must not be empty");
  if (config.mqtt.client_id.empty()) return mqtt->Error("client_id", "must not be empty");
  if (config.mqtt.reconnect_max_ms < config.mqtt.reconnect_min_ms)
    return mqtt->Error("reconnect_max_ms", "must not be less than reconnect_min_ms");
  config.mqtt.ca_file = mqtt->String("ca_file");
  config.mqtt.cert_file = mqtt->String("cert_file");
  config.mqtt.key_file = mqtt->String("key_file");
  const bool tls = config.mqtt.broker.rfind("ssl://", 0) == 0;
  if (tls && config.mqtt.ca_file.empty())
    return mqtt->Error("broker", "an ssl:// broker needs ca_file to verify it");
  if (!tls)
    for (const char* key : {"ca_file", "cert_file", "key_file"})
      if (mqtt->Has(key))
        return mqtt->Error(
            key, "TLS files need an ssl:// broker; '" + config.mqtt.broker + "' would not encrypt");
  if (config.mqtt.cert_file.empty() != config.mqtt.key_file.empty())
    return mqtt->Error(config.mqtt.cert_file.empty() ? "cert_file" : "key_file",
                       "cert_file and key_file go together");

  Result<Section> store = Section::Make(*root->Table("store"), StoreSchema(), source + " [store]");
  if (!store.ok()) return store.status();
  config.store.path = store->String("path");
  config.store.busy_timeout_ms = static_cast<int>(store->Integer("busy_timeout_ms"));
  config.store.archive_after_hours = store->Integer("archive_after_hours");
  config.store.archive_interval_ms = store->Integer("archive_interval_ms");
  if (config.store.path.empty()) return store->Error("path", "must not be empty");

  const toml::table empty;
  const toml::table* ingest_table = root->Table("ingest");
  Result<Section> ingest = Section::Make(ingest_table != nullptr ? *ingest_table : empty,
                                         IngestSchema(), source + " [ingest]");
  if (!ingest.ok()) return ingest.status();
  IngestOptions& in = config.ingest;
  in.max_batch_events = static_cast<size_t>(ingest->Integer("max_batch_events"));
  in.max_batch_delay_ms = ingest->Integer("max_batch_delay_ms");
  in.resend_interval_ms = ingest->Integer("resend_interval_ms");
  in.limits.max_envelope_bytes = static_cast<size_t>(ingest->Integer("max_envelope_bytes"));
  in.limits.max_events = static_cast<size_t>(ingest->Integer("max_events_per_envelope"));
  in.accept_unregistered_devices = ingest->Boolean("accept_unregistered_devices");

  const toml::table* http_table = root->Table("http");
  Result<Section> http =
      Section::Make(http_table != nullptr ? *http_table : empty, HttpSchema(), source + " [http]");
  if (!http.ok()) return http.status();
  HttpOptions& h = config.http;
  h.enabled = http->Boolean("enabled");
  h.server.listen = http->String("listen");
  h.web_root = http->String("web_root");
  h.server.read_timeout_ms = http->Integer("read_timeout_ms");
  h.server.write_timeout_ms = http->Integer("write_timeout_ms");
  h.server.max_connections = static_cast<size_t>(http->Integer("max_connections"));
  h.server.max_stream_clients = static_cast<size_t>(http->Integer("max_stream_clients"));
  h.server.stream_queue_events = static_cast<size_t>(http->Integer("stream_queue_events"));
  h.server.stream_heartbeat_ms = http->Integer("stream_heartbeat_ms");
  h.server.max_body_bytes = static_cast<size_t>(http->Integer("max_body_bytes"));
  h.registry_refresh_ms = http->Integer("registry_refresh_ms");
  h.share_margin_s = http->Integer("share_margin_s");
  if (http->Has("require_tokens")) h.require_tokens = http->Boolean("require_tokens");
  h.server.tls_cert_file = http->String("tls_cert_file");
  h.server.tls_key_file = http->String("tls_key_file");
  if (h.server.tls_cert_file.empty() != h.server.tls_key_file.empty())
    return http->Error(h.server.tls_cert_file.empty() ? "tls_cert_file" : "tls_key_file",
                       "tls_cert_file and tls_key_file go together");
  const size_t colon = h.server.listen.rfind(':');
  if (colon == std::string::npos || colon + 1 == h.server.listen.size() ||
      h.server.listen.find_first_not_of("0123456789", colon + 1) != std::string::npos ||
      h.server.listen.size() - colon - 1 > 5 ||
      std::stol(h.server.listen.substr(colon + 1)) > 65535)
    return http->Error("listen", "expected host:port, e.g. 127.0.0.1:8080");

  Result<BillingOptions> billing =
      ParseBillingSection(root->Table("billing"), source + " [billing]");
  if (!billing.ok()) return billing.status();
  config.billing = *billing;

  const toml::table* security_table = root->Table("security");
  Result<Section> security = Section::Make(security_table != nullptr ? *security_table : empty,
                                           SecuritySchema(), source + " [security]");
  if (!security.ok()) return security.status();
  if (security->Has("require_signatures"))
    in.require_signatures = security->Boolean("require_signatures");
  in.key_reload_ms = security->Integer("key_reload_ms");
  config.security.ca_dir = security->String("ca_dir");
  return config;
}

}  // namespace

Result<HubConfig> LoadHubConfig(const std::string& path) {
  Result<toml::table> table = config::ParseFile(path);
  if (!table.ok()) return table.status();
  return Build(*table, path);
}

Result<HubConfig> ParseHubConfig(const std::string& text, const std::string& source_name) {
  Result<toml::table> table = config::ParseString(text, source_name);
  if (!table.ok()) return table.status();
  return Build(*table, source_name);
}

std::string HubConfigReference() {
  std::string out =
      "# instrumeter-hub configuration reference\n\n"
      "Generated by `instrumeter-hub config-reference` from the schemas the hub validates its "
      "TOML file with: an unknown key or a bad value stops start-up with a message naming the "
      "file, line and key.\n\n"
      "Example:\n\n"
      "```toml\n"
      "log_level = \"info\"\n\n"
      "[mqtt]\n"
      "broker = \"tcp://127.0.0.1:1883\"\n\n"
      "[store]\n"
      "path = \"/var/lib/instrumeter/hub.db\"\n\n"
      "[ingest]\n"
      "accept_unregistered_devices = false\n\n"
      "[http]\n"
      "listen = \"127.0.0.1:8080\"\n"
      "```\n\n"
      "## Top level\n\n";
  out += config::SchemaMarkdown(RootSchema());
  out += "\n## [mqtt]\n\n" + config::SchemaMarkdown(MqttSchema());
  out += "\n## [store]\n\n" + config::SchemaMarkdown(StoreSchema());
  out += "\n## [ingest]\n\n" + config::SchemaMarkdown(IngestSchema());
  out += "\n## [http]\n\n" + config::SchemaMarkdown(HttpSchema());
  out += "\n## [billing]\n\nSee [billing.md](billing.md) for what the rules mean.\n\n" +
         config::SchemaMarkdown(BillingSchema());
  out += "\n## [security]\n\n" + config::SchemaMarkdown(SecuritySchema());
  return out;
}

}  // namespace instrumeter::hub
