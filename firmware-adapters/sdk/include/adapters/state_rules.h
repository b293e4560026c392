// Ordered regex rules that turn a text (a SCPI reply, a log line, a command's output) into a
// SourceState: the first rule whose pattern is found in the text wins. One implementation serves
// the scpi, logfile and exec adapters.
//
// In TOML the rules are an array of tables inside the adapter's section:
//   rule = [ { match = "^RUN", state = "IN_USE" }, { match = "^READY", state = "IDLE" } ]
// or, equivalently, [[adapter.rule]] tables after the [[adapter]] header. Each rule is validated
// with RuleSchema(); a bad pattern or state names the adapter, the rule (counted from 1) and the
// key. Rules are parsed once, in the adapter's Init, and are immutable afterwards.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/adapter.h"
#include "adapters/regex.h"
#include "common/config.h"

namespace instrumeter::adapters {

// "OFF", "IDLE", "IN_USE", "FAULT": the names config files use for a SourceState.
const std::vector<std::string>& SourceStateNames();
std::optional<SourceState> ParseSourceState(std::string_view name);

class StateRules {
 public:
  // The keys of one rule table: `match` and `state`.
  static const config::Schema& RuleSchema();
  // The adapter-schema entry for a rule list, so every adapter declares it the same way.
  // `text` says what the rules are matched against, for the description.
  static config::Key SchemaKey(const std::string& name, const std::string& text, bool required);

  // Parses and validates the rules under `key` of `section` (an empty list when the key is absent;
  // callers that need rules check empty()).
  static Result<StateRules> FromSection(const config::Section& section, const std::string& key);

  struct Match {
    SourceState state;
    size_t index;  // 0-based position of the rule that matched
  };
  // The first rule found in `text`, or nullopt when none is. An error only when the regex engine
  // gives up (match limit).
  Result<std::optional<Match>> Evaluate(std::string_view text) const;
  // "rule #2 /^READY/ matched 'READY 12'" (text shortened), for Observation::State's `why`.
  std::string Describe(const Match& match, std::string_view text) const;

  bool empty() const { return rules_.empty(); }
  size_t size() const { return rules_.size(); }

 private:
  struct Rule {
    Regex regex;
    SourceState state;
  };
  std::vector<Rule> rules_;
};

// `text` cut to about `max` bytes ("..." appended when cut), with control characters and bytes
// that are not valid UTF-8 shown as '?'. Every text an adapter takes from a peer (a reply, a log
// line, a process name) goes through it before it reaches a message or an observation: those end
// up in protobuf string fields, which must be valid UTF-8, and in terminals.
std::string Printable(std::string_view text, size_t max = 120);

}  // namespace instrumeter::adapters
