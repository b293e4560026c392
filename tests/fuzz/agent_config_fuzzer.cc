// libFuzzer harness: the agent's configuration parser (TOML text -> validated AgentConfig, with
// every registered adapter type's schema). Anything must end in a config or an error naming the
// file, never in a crash or an escaped exception.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "adapters/registry.h"
#include "agent/agent_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<instrumeter::adapters::AdapterType> kRegistry =
      instrumeter::adapters::Registry();
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = instrumeter::agent::ParseAgentConfig(text, "fuzz.toml", kRegistry);
  if (!config.ok() && config.status().message().find("fuzz.toml") == std::string::npos)
    std::abort();  // an error must say which file it is about
  return 0;
}
