// instrumeter-agent: the command line. Everything it runs lives in instrumeter_agent_lib.
#include <CLI/CLI.hpp>
#include <iostream>

#include "agent/commands.h"

namespace agent = instrumeter::agent;

int main(int argc, char** argv) {
  CLI::App app{
      "instrumeter-agent: meters an instrument's powered and in-use time from its adapters and "
      "delivers every event through a durable outbox to the instrumeter hub.\n"
      "With only --config, runs the agent."};
  app.set_version_flag("--version", agent::Version());
  app.require_subcommand(0, 1);
  std::string config_path;
  app.add_option("--config", config_path, "Configuration file (TOML)");

  CLI::App* run = app.add_subcommand("run", "Run the agent until SIGTERM or SIGINT");
  run->add_option("--config", config_path, "Configuration file (TOML)")->required();

  bool json = false;
  CLI::App* status = app.add_subcommand(
      "status", "Show state, counters, outbox, broker and adapters (works when stopped, too)");
  status->add_option("--config", config_path, "Configuration file (TOML)")->required();
  status->add_flag("--json", json, "Print JSON instead of text");

  CLI::App* check = app.add_subcommand(
      "check", "Validate the configuration, poll every adapter once and show what it saw");
  check->add_option("--config", config_path, "Configuration file (TOML)")->required();

  std::string order_id, operator_name;
  CLI::App* session = app.add_subcommand(
      "session", "Mark the start or stop of an order's session on the running agent");
  session->require_subcommand(1);
  CLI::App* start = session->add_subcommand("start", "Mark that an order starts now");
  start->add_option("--order", order_id, "The order (booking) id")->required();
  start->add_option("--operator", operator_name, "Who operates the instrument");
  start->add_option("--config", config_path, "Configuration file (TOML)")->required();
  CLI::App* stop = session->add_subcommand("stop", "Mark that the open session stops now");
  stop->add_option("--config", config_path, "Configuration file (TOML)")->required();

  CLI::App* reference = app.add_subcommand(
      "config-reference", "Print the Markdown reference of every configuration key");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? agent::kExitOk : agent::kExitUsage;
  }

  if (*status) return agent::StatusCommand(config_path, json, std::cout, std::cerr);
  if (*check) return agent::CheckCommand(config_path, std::cout, std::cerr);
  if (*start)
    return agent::SessionStartCommand(config_path, order_id, operator_name, std::cout, std::cerr);
  if (*stop) return agent::SessionStopCommand(config_path, std::cout, std::cerr);
  if (*reference) {
    std::cout << agent::ConfigReference();
    return agent::kExitOk;
  }
  if (*run || !config_path.empty()) return agent::RunCommand(config_path);
  std::cerr << app.help();
  return agent::kExitUsage;
}
