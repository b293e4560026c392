// instrumeter-hub: see hub/include/hub/cli.h.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <iostream>

#include "hub/cli.h"

int main(int argc, char** argv) {
  // Logs go to stderr so that report output on stdout stays clean for pipes.
  spdlog::set_default_logger(spdlog::stderr_color_mt("instrumeter-hub"));
  return instrumeter::hub::RunHubCli(argc, argv, std::cout, std::cerr);
}
