// libFuzzer harness: adapter state rules ([[rule]] match/state tables with PCRE2 regexes) parsed
// from TOML text, then evaluated against a line taken from the same input. Input: TOML text, an
// optional NUL byte, then the line to evaluate.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "adapters/state_rules.h"
#include "common/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const instrumeter::config::Schema kSchema = {
      instrumeter::adapters::StateRules::SchemaKey("rule", "a line", false)};
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string toml = input.substr(0, nul);
  const std::string line = nul == std::string::npos ? "RUNNING" : input.substr(nul + 1);
  auto table = instrumeter::config::ParseString(toml, "fuzz.toml");
  if (!table.ok()) return 0;
  auto section = instrumeter::config::Section::Make(*table, kSchema, "[[adapter]] 'fuzz'");
  if (!section.ok()) return 0;
  auto rules = instrumeter::adapters::StateRules::FromSection(*section, "rule");
  if (!rules.ok()) return 0;
  auto match = rules->Evaluate(line);
  if (match.ok() && match->has_value()) {
    if ((*match)->index >= rules->size()) std::abort();
    (void)rules->Describe(**match, line);
  }
  return 0;
}
