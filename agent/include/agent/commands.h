// What each `instrumeter-agent` subcommand does, behind the command-line parsing in main.cc.
// Each returns the process exit code: 0 success, 1 runtime failure, 2 usage or configuration
// error. Output goes to `out`, diagnostics to `err`; the agent's own log goes to stderr.
#pragma once

#include <ostream>
#include <string>

namespace instrumeter::agent {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntime = 1;
inline constexpr int kExitUsage = 2;

// The agent's version (the project version it was built from).
const char* Version();

// `run`: the daemon, until SIGTERM or SIGINT. Call before any other thread exists.
int RunCommand(const std::string& config_path);
// `status`: live from the running agent over its control socket, or, when it is not running,
// read from outbox.db and the checkpoint ("agent: not running").
int StatusCommand(const std::string& config_path, bool json, std::ostream& out, std::ostream& err);
// `check`: validates the configuration, starts and polls every adapter once and prints what each
// saw and the combined state. 0 only if every adapter read a state.
int CheckCommand(const std::string& config_path, std::ostream& out, std::ostream& err);
// `session start` / `session stop`: a SessionMark through the running agent.
int SessionStartCommand(const std::string& config_path, const std::string& order_id,
                        const std::string& operator_name, std::ostream& out, std::ostream& err);
int SessionStopCommand(const std::string& config_path, std::ostream& out, std::ostream& err);
// `config-reference`: the Markdown reference of every configuration key (docs/agent-config.md).
std::string ConfigReference();

}  // namespace instrumeter::agent
