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

namespace {

// The length of the valid UTF-8 sequence at text[i], or 0 if the bytes there are not one.
size_t Utf8Length(std::string_view text, size_t i) {
  const unsigned char c = static_cast<unsigned char>(text[i]);
  size_t length = 0;
  uint32_t code = 0;
  if (c >= 0xC2 && c <= 0xDF) {
    length = 2;
    code = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    length = 3;
    code = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    length = 4;
    code = c & 0x07;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    const unsigned char next = static_cast<unsigned char>(text[i + k]);
    if ((next & 0xC0) != 0x80) return 0;
    code = (code << 6) | (next & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are not valid UTF-8.
  if ((length == 3 && code < 0x800) || (length == 4 && (code < 0x10000 || code > 0x10FFFF)) ||
      (code >= 0xD800 && code <= 0xDFFF))
    return 0;
  return length;
}

}  // namespace

std::string Printable(std::string_view text, size_t max) {
  std::string out;
  size_t i = 0;
  while (i < text.size() && out.size() < max) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
      ++i;
    } else if (const size_t length = c >= 0x80 ? Utf8Length(text, i) : 0; length > 0) {
      out.append(text.substr(i, length));
      i += length;
    } else {
      out += '?';
      ++i;
    }
  }
  if (i < text.size()) out += "...";
  return out;
}

}  // namespace instrumeter::adapters
