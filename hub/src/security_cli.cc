#include "security_cli.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "api_auth.h"
#include "common/clock.h"
#include "hub/hub_config.h"
#include "hub/sqlite_store.h"
#include "pki.h"
#include "protocol/chain.h"
#include "protocol/topics.h"
#include "text_output.h"

namespace instrumeter::hub {
namespace {

constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

// What Mosquitto 2.0.11 does with a new crlfile (tests/security/broker_test.cc): a SIGHUP makes
// it refuse new connections with a revoked certificate, but an open connection stays open until
// the broker restarts.
constexpr char kCrlReloadNote[] =
    "copy it to the broker's crlfile and reload the broker (systemctl reload mosquitto): new "
    "connections with a revoked certificate are then refused; if the device is connected now, "
    "restart the broker (systemctl restart mosquitto), because a reload leaves open connections "
    "open";

struct Failure {
  int exit_code;
  Status status;
};

// Everything a command needs from the configuration and the store.
struct Context {
  HubConfig config;
  std::unique_ptr<Store> store;
};

Result<Context> Open(const SecurityArgs& args, Failure* failure) {
  if (args.config_path.empty()) {
    *failure = {kExitUsage, Status::InvalidArgument("--config FILE is required")};
    return failure->status;
  }
  Result<HubConfig> config = LoadHubConfig(args.config_path);
  if (!config.ok()) {
    *failure = {kExitUsage, config.status()};
    return failure->status;
  }
  spdlog::set_level(spdlog::level::from_str(config->log_level));
  Result<std::unique_ptr<Store>> store = OpenSqliteStore(
      {.path = config->store.path, .busy_timeout_ms = config->store.busy_timeout_ms});
  if (!store.ok()) {
    *failure = {kExitRuntime, store.status()};
    return failure->status;
  }
  return Context{std::move(*config), std::move(*store)};
}

Result<CertificateAuthority> OpenCa(const Context& context, Failure* failure) {
  if (context.config.security.ca_dir.empty()) {
    *failure = {kExitUsage, Status::InvalidArgument(
                                "[security] ca_dir is not set: the certificate authority made "
                                "by `instrumeter-hub ca init` is needed")};
    return failure->status;
  }
  Result<CertificateAuthority> ca = CertificateAuthority::Open(context.config.security.ca_dir);
  if (!ca.ok()) *failure = {kExitRuntime, ca.status()};
  return ca;
}

// Rewrites the CRL from every revoked key's certificate.
Status RewriteCrl(const CertificateAuthority& ca, Store* store, int64_t now_unix_ms) {
  Result<std::vector<DeviceKey>> keys = store->ListDeviceKeys();
  if (!keys.ok()) return keys.status();
  std::vector<CertificateAuthority::Revoked> revoked;
  for (const DeviceKey& k : *keys)
    if (k.revoked_unix_ms.has_value()) revoked.push_back({k.cert_serial, *k.revoked_unix_ms});
  return ca.WriteCrl(revoked, now_unix_ms);
}

std::optional<Failure> CaInit(const SecurityArgs& args, std::ostream& out) {
  std::string dir = args.ca_dir;
  if (dir.empty() && !args.config_path.empty()) {
    Result<HubConfig> config = LoadHubConfig(args.config_path);
    if (!config.ok()) return Failure{kExitUsage, config.status()};
    dir = config->security.ca_dir;
  }
  if (dir.empty())
    return Failure{kExitUsage,
                   Status::InvalidArgument("give --dir DIR, or --config with [security] ca_dir")};
  std::vector<std::string> hosts = args.broker_hosts;
  if (hosts.empty()) hosts = {"localhost", "127.0.0.1"};
  SystemClock clock;
  Result<CertificateAuthority> ca = CertificateAuthority::Init(dir, hosts, clock.WallUnixMs());
  if (!ca.ok()) {
    const int code = ca.status().code() == Status::Code::kAlreadyExists ||
                             ca.status().code() == Status::Code::kInvalidArgument
                         ? kExitUsage
                         : kExitRuntime;
    return Failure{code, ca.status()};
  }
  std::string names;
  for (const std::string& h : hosts) names += (names.empty() ? "" : ", ") + h;
  out << "certificate authority created in " << dir << " (mode 0700):\n"
      << "  ca.key      the authority's private key: keep it here, on the hub host only\n"
      << "  ca.crt      the authority's certificate: broker cafile, agents' and hub's ca_file\n"
      << "  crl.pem     its revocation list: broker crlfile\n"
      << "  hub.crt/.key  the hub's client certificate (CN " << kHubCommonName
      << "): [mqtt] cert_file, key_file\n"
      << "  broker.crt/.key  the broker's server certificate for " << names
      << ": broker certfile, keyfile (chown it to the broker's user)\n"
      << "see deploy/mosquitto/production.conf and docs/security.md\n";
  return std::nullopt;
}

std::optional<Failure> CaCrl(const SecurityArgs& args, std::ostream& out) {
  Failure failure{};
  Result<Context> context = Open(args, &failure);
  if (!context.ok()) return failure;
  Result<CertificateAuthority> ca = OpenCa(*context, &failure);
  if (!ca.ok()) return failure;
  SystemClock clock;
  Status st = RewriteCrl(*ca, context->store.get(), clock.WallUnixMs());
  if (!st.ok()) return Failure{kExitRuntime, st};
  out << "wrote " << ca->crl_path() << "; " << kCrlReloadNote << "\n";
  return std::nullopt;
}

std::string AgentToml(const SecurityArgs& args, const std::string& broker,
                      const std::string& install_dir, int64_t now_unix_ms) {
  return "# instrumeter-agent configuration of instrument " + args.device_id +
         ", written by `instrumeter-hub devices\n"
         "# enroll` at " +
         FormatUtc(now_unix_ms) +
         ". Install this folder on the instrument's workstation as\n"
         "# " +
         install_dir +
         ", owned by the user that runs the agent, with its modes (folder 0700, files\n"
         "# 0600): whoever can read these keys can report this instrument's hours. Then add the\n"
         "# [[adapter]] sections that observe the instrument (docs/adapters.md); the agent does "
         "not\n"
         "# start without one.\n"
         "device_id = \"" +
         args.device_id + "\"\nstate_dir = \"" + args.state_dir +
         "\"\n\n"
         "[mqtt]\n"
         "broker = \"" +
         broker + "\"\nca_file = \"" + install_dir + "/ca.crt\"\ncert_file = \"" + install_dir +
         "/device.crt\"\nkey_file = \"" + install_dir +
         "/device.key\"\n\n"
         "[security]\n"
         "signing_key_file = \"" +
         install_dir + "/signing.key\"\n";
}

std::optional<Failure> Enroll(const SecurityArgs& args, std::ostream& out) {
  if (Status st = protocol::ValidateDeviceId(args.device_id); !st.ok())
    return Failure{kExitUsage, st};
  // The broker takes a certificate's CN as its user name: this one holds the hub's rights.
  if (args.device_id == kHubCommonName)
    return Failure{kExitUsage, Status::InvalidArgument("the device id '" + args.device_id +
                                                       "' is reserved for the hub")};
  Failure failure{};
  Result<Context> context = Open(args, &failure);
  if (!context.ok()) return failure;
  const std::string broker =
      args.broker_url.empty() ? context->config.mqtt.broker : args.broker_url;
  if (broker.rfind("ssl://", 0) != 0)
    return Failure{kExitUsage,
                   Status::InvalidArgument("broker '" + broker +
                                           "' is not an ssl:// URL: an enrolled device talks TLS "
                                           "to the production broker (give --broker)")};
  Result<bool> registered = context->store->InstrumentExists(args.device_id);
  if (!registered.ok()) return Failure{kExitRuntime, registered.status()};
  if (!*registered)
    return Failure{kExitUsage, Status::NotFound("instrument '" + args.device_id +
                                                "' is not registered (`instrumeter-hub "
                                                "instruments add` first)")};
  Result<CertificateAuthority> ca = OpenCa(*context, &failure);
  if (!ca.ok()) return failure;

  std::error_code ec;
  if (std::filesystem::exists(args.out_dir) && !std::filesystem::is_empty(args.out_dir, ec))
    return Failure{kExitUsage, Status::AlreadyExists("--out " + args.out_dir +
                                                     " is not empty; refusing to overwrite keys")};
  const std::string install_dir = args.install_dir.empty()
                                      ? std::filesystem::absolute(args.out_dir).string()
                                      : args.install_dir;
  SystemClock clock;
  const int64_t now = clock.WallUnixMs();
  Result<protocol::SigningKey> signing = protocol::SigningKey::Generate();
  if (!signing.ok()) return Failure{kExitRuntime, signing.status()};
  Result<std::string> signing_pem = signing->PrivateKeyPem();
  if (!signing_pem.ok()) return Failure{kExitRuntime, signing_pem.status()};
  Result<CertificateAuthority::Issued> tls = ca->IssueClient(args.device_id, now);
  if (!tls.ok()) return Failure{kExitRuntime, tls.status()};

  // The bundle first, the public key in the store last: a failure leaves no enrolled key whose
  // private half exists nowhere.
  std::filesystem::create_directories(args.out_dir, ec);
  if (ec || ::chmod(args.out_dir.c_str(), 0700) != 0)
    return Failure{kExitRuntime, Status::IoError("cannot create " + args.out_dir + " (0700)")};
  const std::vector<std::pair<std::string, std::string>> files = {
      {"signing.key", *signing_pem},
      {"device.key", tls->private_key_pem},
      {"device.crt", tls->certificate_pem},
      {"ca.crt", ca->ca_cert_pem()},
      {"agent.toml", AgentToml(args, broker, install_dir, now)}};
  Status st;
  for (const auto& [name, content] : files) {
    st = WriteFileWithMode(args.out_dir + "/" + name, content, 0600, /*replace=*/false);
    if (!st.ok()) break;
  }
  DeviceKey key{.device_id = args.device_id,
                .public_key = signing->public_key(),
                .cert_serial = tls->serial_hex,
                .enrolled_unix_ms = now};
  if (st.ok()) st = context->store->AddDeviceKey(&key);
  if (!st.ok()) {
    for (const auto& [name, content] : files)
      std::filesystem::remove(args.out_dir + "/" + name, ec);
    return Failure{st.code() == Status::Code::kAlreadyExists ? kExitUsage : kExitRuntime, st};
  }
  out << "enrolled " << args.device_id << ": signing key "
      << protocol::KeyFingerprint(key.public_key) << ", TLS certificate serial " << key.cert_serial
      << "\nagent bundle in " << args.out_dir
      << " (agent.toml, device.crt, device.key, signing.key, ca.crt): install it as " << install_dir
      << " on the workstation, add its [[adapter]] sections, and delete this copy\n";
  return std::nullopt;
}

std::optional<Failure> Revoke(const SecurityArgs& args, std::ostream& out) {
  Failure failure{};
  Result<Context> context = Open(args, &failure);
  if (!context.ok()) return failure;
  Result<CertificateAuthority> ca = OpenCa(*context, &failure);
  if (!ca.ok()) return failure;
  SystemClock clock;
  const int64_t now = clock.WallUnixMs();
  Status st = context->store->RevokeDeviceKey(args.device_id, now);
  if (!st.ok())
    return Failure{st.code() == Status::Code::kNotFound ? kExitUsage : kExitRuntime, st};
  st = RewriteCrl(*ca, context->store.get(), now);
  if (!st.ok())
    return Failure{kExitRuntime,
                   st.WithContext("the hub refuses " + args.device_id +
                                  " now, but the CRL was not rewritten (run `instrumeter-hub ca "
                                  "crl`)")};
  out << "revoked " << args.device_id
      << ": the running hub refuses its telemetry within [security] key_reload_ms, and nothing "
         "it signs from now on is billable\n"
      << "wrote " << ca->crl_path() << "; " << kCrlReloadNote << "\n";
  return std::nullopt;
}

std::optional<Failure> ChainReset(const SecurityArgs& args, std::ostream& out) {
  Failure failure{};
  Result<Context> context = Open(args, &failure);
  if (!context.ok()) return failure;
  SystemClock clock;
  Status st = context->store->RequestChainReset(args.device_id, clock.WallUnixMs());
  if (!st.ok())
    return Failure{st.code() == Status::Code::kNotFound ? kExitUsage : kExitRuntime, st};
  out << "chain reset requested for " << args.device_id
      << ": the running hub re-anchors its chain at the device's latest signed head within "
         "[security] key_reload_ms; the events between the break and that head stay unproven "
         "(never billable). `devices list` shows the result.\n";
  return std::nullopt;
}

std::optional<Failure> List(const SecurityArgs& args, std::ostream& out) {
  Failure failure{};
  Result<Context> context = Open(args, &failure);
  if (!context.ok()) return failure;
  Result<std::vector<DeviceKey>> keys = context->store->ListDeviceKeys();
  if (!keys.ok()) return Failure{kExitRuntime, keys.status()};
  Result<std::vector<Billability>> billing = context->store->ReadBillability("");
  if (!billing.ok()) return Failure{kExitRuntime, billing.status()};
  std::map<std::string, const Billability*> by_device;
  for (const Billability& b : *billing) by_device[b.device_id] = &b;
  const auto chain_text = [](const Billability* b) -> std::string {
    if (b == nullptr) return "no telemetry yet";
    if (b->chain_broken_from > 0) return "BROKEN from " + std::to_string(b->chain_broken_from);
    return b->unproven.empty() ? "intact" : "intact (reset; unproven stretches)";
  };
  if (args.format == "json") {
    nlohmann::json list = nlohmann::json::array();
    for (const DeviceKey& k : *keys) {
      const Billability* b = by_device.count(k.device_id) ? by_device[k.device_id] : nullptr;
      nlohmann::json unproven = nlohmann::json::array();
      if (b != nullptr)
        for (const SeqRange& r : b->unproven) unproven.push_back({r.first, r.last});
      list.push_back({{"device_id", k.device_id},
                      {"key_fingerprint", protocol::KeyFingerprint(k.public_key)},
                      {"cert_serial", k.cert_serial},
                      {"enrolled", FormatUtc(k.enrolled_unix_ms)},
                      {"revoked", k.revoked_unix_ms ? nlohmann::json(FormatUtc(*k.revoked_unix_ms))
                                                    : nlohmann::json(nullptr)},
                      {"contiguous_seq", b != nullptr ? b->contiguous_seq : 0},
                      {"signed_through", b != nullptr ? b->signed_through : 0},
                      {"billable_through", b != nullptr ? b->billable_through : 0},
                      {"chain_broken_from", b != nullptr ? b->chain_broken_from : 0},
                      {"unproven", unproven}});
    }
    out << JsonText(list, 2) << "\n";
    return std::nullopt;
  }
  TextTable t;
  t.headers = {"device_id",      "key",
               "cert_serial",    "enrolled",
               "revoked",        "contiguous_seq",
               "signed_through", "billable_through",
               "chain"};
  t.right_aligned = {false, false, false, false, false, true, true, true, false};
  for (const DeviceKey& k : *keys) {
    const Billability* b = by_device.count(k.device_id) ? by_device[k.device_id] : nullptr;
    t.rows.push_back({k.device_id, protocol::KeyFingerprint(k.public_key), k.cert_serial,
                      FormatUtc(k.enrolled_unix_ms),
                      k.revoked_unix_ms ? FormatUtc(*k.revoked_unix_ms) : "-",
                      std::to_string(b != nullptr ? b->contiguous_seq : 0),
                      std::to_string(b != nullptr ? b->signed_through : 0),
                      std::to_string(b != nullptr ? b->billable_through : 0), chain_text(b)});
  }
  out << RenderTable(t);
  return std::nullopt;
}

std::optional<Failure> TokenAdd(const SecurityArgs& args, std::ostream& out) {
  if (args.token_name.empty() || args.token_name.size() > 64 ||
      args.token_name.find_first_of(" \t\r\n") != std::string::npos)
    return Failure{kExitUsage,
                   Status::InvalidArgument("NAME must be one word of at most 64 characters")};
  Failure failure{};
  Result<Context> context = Open(args, &failure);
  if (!context.ok()) return failure;
  Result<std::string> token = NewApiToken();
  if (!token.ok()) return Failure{kExitRuntime, token.status()};
  SystemClock clock;
  Status st = context->store->AddApiToken({.name = args.token_name,
                                           .sha256 = ApiTokenHash(*token),
                                           .created_unix_ms = clock.WallUnixMs()});
  if (!st.ok())
    return Failure{st.code() == Status::Code::kAlreadyExists ? kExitUsage : kExitRuntime, st};
  // The token on stdout alone, so that a script can capture it; it is shown only this once.
  out << *token << "\n";
  return std::nullopt;
}

std::optional<Failure> TokenList(const SecurityArgs& args, std::ostream& out) {
  Failure failure{};
  Result<Context> context = Open(args, &failure);
  if (!context.ok()) return failure;
  Result<std::vector<ApiToken>> tokens = context->store->ListApiTokens();
  if (!tokens.ok()) return Failure{kExitRuntime, tokens.status()};
  TextTable t;
  t.headers = {"name", "created", "revoked"};
  for (const ApiToken& token : *tokens)
    t.rows.push_back({token.name, FormatUtc(token.created_unix_ms),
                      token.revoked_unix_ms ? FormatUtc(*token.revoked_unix_ms) : "-"});
  out << RenderTable(t);
  return std::nullopt;
}

std::optional<Failure> TokenRevoke(const SecurityArgs& args, std::ostream& out) {
  Failure failure{};
  Result<Context> context = Open(args, &failure);
  if (!context.ok()) return failure;
  SystemClock clock;
  Status st = context->store->RevokeApiToken(args.token_name, clock.WallUnixMs());
  if (!st.ok())
    return Failure{st.code() == Status::Code::kNotFound ? kExitUsage : kExitRuntime, st};
  out << "revoked token " << args.token_name << ": refused from the next request on\n";
  return std::nullopt;
}

void AddConfig(CLI::App* app, SecurityArgs* args) {
  app->add_option("--config", args->config_path, "the hub's TOML configuration file");
}

CLI::App* AddDeviceCommand(CLI::App* devices, const std::string& name,
                           const std::string& description, SecurityArgs* args) {
  CLI::App* cmd = devices->add_subcommand(name, description);
  cmd->add_option("ID", args->device_id, "the instrument id (its device id)")->required();
  AddConfig(cmd, args);
  return cmd;
}

}  // namespace

SecurityCommands AddSecurityCommands(CLI::App* app, SecurityArgs* args) {
  SecurityCommands c;
  CLI::App* ca = app->add_subcommand("ca", "The deployment's certificate authority.");
  ca->require_subcommand(1);
  c.ca_init = ca->add_subcommand(
      "init",
      "Make the certificate authority (EC P-256), its empty CRL, the hub's client certificate "
      "and the broker's server certificate. Never overwrites an existing authority.");
  c.ca_init->add_option("--dir", args->ca_dir, "where (default: [security] ca_dir)");
  c.ca_init->add_option("--broker-host", args->broker_hosts,
                        "the broker's host names or addresses, for its certificate (repeatable; "
                        "default localhost and 127.0.0.1)");
  AddConfig(c.ca_init, args);
  c.ca_crl = ca->add_subcommand("crl", "Rewrite the CRL from every revoked device certificate.");
  AddConfig(c.ca_crl, args);

  CLI::App* devices =
      app->add_subcommand("devices", "Device identities: enrolment, revocation, chains.");
  devices->require_subcommand(1);
  c.enroll = AddDeviceCommand(
      devices, "enroll",
      "Make the device's Ed25519 signing key and TLS client certificate (CN = ID), keep only the "
      "public signing key here, and write the agent's bundle to --out (0700 folder, 0600 files).",
      args);
  c.enroll->add_option("--out", args->out_dir, "a new or empty folder for the bundle")->required();
  c.enroll->add_option("--broker", args->broker_url,
                       "the ssl:// broker URL the agent uses (default: [mqtt] broker)");
  c.enroll->add_option("--install-dir", args->install_dir,
                       "where the bundle will live on the workstation, for the paths in "
                       "agent.toml (default: --out)");
  c.enroll->add_option("--state-dir", args->state_dir, "the agent's state_dir in agent.toml");
  c.revoke = AddDeviceCommand(
      devices, "revoke",
      "Refuse the device's telemetry from now on and add its certificate to the CRL.", args);
  c.chain_reset = AddDeviceCommand(
      devices, "chain-reset",
      "After investigating a broken chain: re-anchor it at the device's latest signed head. The "
      "events in between stay unproven, never billable.",
      args);
  c.list = devices->add_subcommand(
      "list", "Enrolled keys, revocations, and how far each device's telemetry is billable.");
  c.list->add_option("--format", args->format, "table|json (default table)")
      ->check(CLI::IsMember({"table", "json"}));
  AddConfig(c.list, args);

  CLI::App* tokens = app->add_subcommand(
      "tokens", "Bearer tokens of the HTTP API (only their SHA-256 is stored).");
  tokens->require_subcommand(1);
  c.token_add = tokens->add_subcommand("add", "Make a token and print it, once, on stdout.");
  c.token_add->add_option("NAME", args->token_name, "who or what uses it (one word)")->required();
  AddConfig(c.token_add, args);
  c.token_list = tokens->add_subcommand("list", "Token names, when made and revoked.");
  AddConfig(c.token_list, args);
  c.token_revoke = tokens->add_subcommand("revoke", "Refuse a token from now on.");
  c.token_revoke->add_option("NAME", args->token_name, "the token's name")->required();
  AddConfig(c.token_revoke, args);
  return c;
}

std::optional<int> RunSecurityCommand(const SecurityCommands& c, const SecurityArgs& args,
                                      std::ostream& out, std::ostream& err) {
  std::optional<Failure> failure;
  if (c.ca_init->parsed()) {
    failure = CaInit(args, out);
  } else if (c.ca_crl->parsed()) {
    failure = CaCrl(args, out);
  } else if (c.enroll->parsed()) {
    failure = Enroll(args, out);
  } else if (c.revoke->parsed()) {
    failure = Revoke(args, out);
  } else if (c.chain_reset->parsed()) {
    failure = ChainReset(args, out);
  } else if (c.list->parsed()) {
    failure = List(args, out);
  } else if (c.token_add->parsed()) {
    failure = TokenAdd(args, out);
  } else if (c.token_list->parsed()) {
    failure = TokenList(args, out);
  } else if (c.token_revoke->parsed()) {
    failure = TokenRevoke(args, out);
  } else {
    return std::nullopt;
  }
  if (!failure.has_value()) return 0;
  err << "instrumeter-hub: " << failure->status.message() << "\n";
  return failure->exit_code;
}

}  // namespace instrumeter::hub
