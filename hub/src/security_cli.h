// The security subcommands of instrumeter-hub (docs/security.md): the deployment's certificate
// authority and device enrolment. cli.cc registers them beside the others.
//
//   ca init [--dir DIR] [--broker-host H]...   the authority, the hub's and the broker's
//   certificate ca crl                                     rewrite the CRL from the revoked keys
//   devices enroll ID --out DIR [--broker URL] [--install-dir DIR] [--state-dir DIR]
//   devices revoke ID                          refuse its telemetry and its TLS certificate
//   devices list [--format table|json]
//   devices chain-reset ID                     re-anchor a broken chain (after investigating)
//   tokens add NAME                            a bearer token for the HTTP API, printed once
//   tokens list | tokens revoke NAME
//
// Exit codes as the rest of the CLI: 0 success, 1 runtime error, 2 usage or configuration error.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace instrumeter::hub {

// What the security subcommands were given on the command line.
struct SecurityArgs {
  std::string config_path;
  std::string ca_dir;
  std::vector<std::string> broker_hosts;
  std::string device_id;
  std::string out_dir;
  std::string broker_url;
  std::string install_dir;
  std::string state_dir = "/var/lib/instrumeter-agent";
  std::string format = "table";
  std::string token_name;
};

// The subcommands, to tell which one CLI11 parsed.
struct SecurityCommands {
  CLI::App* ca_init = nullptr;
  CLI::App* ca_crl = nullptr;
  CLI::App* enroll = nullptr;
  CLI::App* revoke = nullptr;
  CLI::App* list = nullptr;
  CLI::App* chain_reset = nullptr;
  CLI::App* token_add = nullptr;
  CLI::App* token_list = nullptr;
  CLI::App* token_revoke = nullptr;
};

// Adds `ca`, `devices` and `tokens` to `app`; their options fill `*args`, which must outlive the
// parse.
SecurityCommands AddSecurityCommands(CLI::App* app, SecurityArgs* args);

// Runs the one that was parsed and returns its exit code; nullopt when none of them was.
std::optional<int> RunSecurityCommand(const SecurityCommands& commands, const SecurityArgs& args,
                                      std::ostream& out, std::ostream& err);

}  // namespace instrumeter::hub
