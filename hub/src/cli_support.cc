#include "cli_support.h"

#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "hub/sqlite_store.h"

namespace instrumeter::hub {

Result<HubConfig> LoadConfig(const std::string& config_path) {
  if (config_path.empty()) return Status::InvalidArgument("--config FILE is required");
  Result<HubConfig> config = LoadHubConfig(config_path);
  if (!config.ok()) return config.status();
  spdlog::set_level(spdlog::level::from_str(config->log_level));
  return config;
}

Result<std::unique_ptr<Store>> OpenStore(const HubConfig& config) {
  return OpenSqliteStore(
      {.path = config.store.path, .busy_timeout_ms = config.store.busy_timeout_ms});
}

Result<std::unique_ptr<Store>> ConfigAndStore(const std::string& config_path, Failure* failure,
                                              HubConfig* config_out) {
  Result<HubConfig> config = LoadConfig(config_path);
  if (!config.ok()) {
    *failure = {kExitUsage, config.status()};
    return config.status();
  }
  if (config_out != nullptr) *config_out = *config;
  Result<std::unique_ptr<Store>> store = OpenStore(*config);
  if (!store.ok()) *failure = {kExitRuntime, store.status()};
  return store;
}

void AddConfigOption(CLI::App* app, std::string* config_path) {
  app->add_option("--config", *config_path, "the hub's TOML configuration file");
}

void AddFormatOption(CLI::App* app, std::string* format, const std::vector<std::string>& formats) {
  std::string names;
  for (const std::string& f : formats) names += (names.empty() ? "" : "|") + f;
  app->add_option("--format", *format, "output format: " + names + " (default " + *format + ")")
      ->check(CLI::IsMember(formats));
}

Result<int64_t> ParseTimeOption(const std::string& option, const std::string& value) {
  int64_t unix_ms = 0;
  if (!ParseUtc(value, &unix_ms))
    return Status::InvalidArgument(option + " '" + value +
                                   "': expected ISO 8601 with an offset "
                                   "(2026-11-29T08:00:00+08:00) or a date (2026-11-29)");
  return unix_ms;
}

}  // namespace instrumeter::hub
