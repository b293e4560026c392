// What every instrumeter-hub subcommand shares: exit codes, loading the config and opening the
// store with the right exit code on failure, the --config and --format options, time arguments.
// Private to the hub's CLI (cli.cc, billing_cli.cc).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "hub/hub_config.h"
#include "hub/store.h"

namespace instrumeter::hub {

inline constexpr int kExitRuntime = 1;
inline constexpr int kExitUsage = 2;
// `ledger verify` found the ledger altered.
inline constexpr int kExitLedgerBroken = 3;

// A failed command: its exit code and what to tell the operator.
struct Failure {
  int exit_code;
  Status status;
};

// Loads and validates the config file (InvalidArgument when --config is missing) and applies its
// log level.
Result<HubConfig> LoadConfig(const std::string& config_path);
Result<std::unique_ptr<Store>> OpenStore(const HubConfig& config);
// Loads the config (a usage error when bad) and opens the store (a runtime error when it fails);
// on failure *failure says which. `config`, when not null, receives the config.
Result<std::unique_ptr<Store>> ConfigAndStore(const std::string& config_path, Failure* failure,
                                              HubConfig* config = nullptr);

void AddConfigOption(CLI::App* app, std::string* config_path);
// --format, one of `formats`; the default is *format's value when called.
void AddFormatOption(CLI::App* app, std::string* format, const std::vector<std::string>& formats);

// The value of a time option (--from, --to): ISO 8601 with an offset, or a date (midnight UTC).
// InvalidArgument names the option.
Result<int64_t> ParseTimeOption(const std::string& option, const std::string& value);

}  // namespace instrumeter::hub
