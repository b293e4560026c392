#include "adapters/state_rules.h"

namespace instrumeter::adapters {

const std::vector<std::string>& SourceStateNames() {
  static const std::vector<std::string> kNames = {"OFF", "IDLE", "IN_USE", "FAULT"};
  return kNames;
}

std::optional<SourceState> ParseSourceState(std::string_view name) {
  for (SourceState s :
       {SourceState::kOff, SourceState::kIdle, SourceState::kInUse, SourceState::kFault})
    if (name == SourceStateName(s)) return s;
  return std::nullopt;
}

const config::Schema& StateRules::RuleSchema() {
  static const config::Schema kSchema = {
      {.name = "match",
       .type = config::Type::kString,
       .description = "a regular expression (PCRE2 syntax) searched for in the text",
       .required = true},
      {.name = "state",
       .type = config::Type::kString,
       .description = "the state this rule gives when it is the first to match",
       .required = true,
       .one_of = SourceStateNames()},
  };
  return kSchema;
}

config::Key StateRules::SchemaKey(const std::string& name, const std::string& text, bool required) {
  return {.name = name,
          .type = config::Type::kTableArray,
          .description = "ordered rules `{ match = \"regex\", state = \"IN_USE\" }` over " + text +
                         "; the first rule that matches gives the state (see \"State rules\")",
          .required = required};
}

Result<StateRules> StateRules::FromSection(const config::Section& section, const std::string& key) {
  StateRules rules;
  const std::vector<const toml::table*> tables = section.TableArray(key);
  for (size_t i = 0; i < tables.size(); ++i) {
    auto rule = config::Section::Make(*tables[i], RuleSchema(),
                                      section.where() + " " + key + " #" + std::to_string(i + 1));
    if (!rule.ok()) return rule.status();
    auto regex = Regex::Compile(rule->String("match"));
    if (!regex.ok()) return rule->Error("match", regex.status().message());
    rules.rules_.push_back({std::move(*regex), *ParseSourceState(rule->String("state"))});
  }
  return rules;
}

Result<std::optional<StateRules::Match>> StateRules::Evaluate(std::string_view text) const {
  for (size_t i = 0; i < rules_.size(); ++i) {
    auto found = rules_[i].regex.Search(text);
    if (!found.ok()) return found.status();
    if (*found) return std::optional<Match>(Match{rules_[i].state, i});
  }
  return std::optional<Match>();
}

std::string StateRules::Describe(const Match& match, std::string_view text) const {
  return "rule #" + std::to_string(match.index + 1) + " /" + rules_[match.index].regex.pattern() +
         "/ matched '" + Printable(text) + "'";
}

std::string Printable(std::string_view text, size_t max) {
  std::string out;
  for (size_t i = 0; i < text.size() && i < max; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    out += (c < 0x20 || c == 0x7f) ? '?' : static_cast<char>(c);
  }
  if (text.size() > max) out += "...";
  return out;
}

}  // namespace instrumeter::adapters
