#include "adapters/state_rules.h"

#include <gtest/gtest.h>

namespace instrumeter::adapters {
namespace {

const config::Schema& TestSchema() {
  static const config::Schema kSchema = {StateRules::SchemaKey("rule", "a text", true)};
  return kSchema;
}

class StateRulesTest : public ::testing::Test {
 protected:
  Result<StateRules> Parse(const std::string& toml) {
    auto parsed = config::ParseString(toml, "agent.toml");
    if (!parsed.ok()) return parsed.status();
    table_ = std::move(*parsed);
    auto section = config::Section::Make(table_, TestSchema(), "[[adapter]] 'console'");
    if (!section.ok()) return section.status();
    return StateRules::FromSection(*section, "rule");
  }
  std::optional<SourceState> Eval(const StateRules& rules, const std::string& text) {
    auto m = rules.Evaluate(text);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    if (!m.ok() || !m->has_value()) return std::nullopt;
    return (*m)->state;
  }
  toml::table table_;
};

TEST_F(StateRulesTest, FirstMatchingRuleWinsInBothTomlForms) {
  for (const std::string toml :
       {"rule = [ { match = \"^RUN\", state = \"IN_USE\" }, { match = \"RUN|READY\", state = "
        "\"IDLE\" }, { match = \"ERR\\\\d+\", state = \"FAULT\" } ]\n",
        "[[rule]]\nmatch = \"^RUN\"\nstate = \"IN_USE\"\n[[rule]]\nmatch = \"RUN|READY\"\n"
        "state = \"IDLE\"\n[[rule]]\nmatch = 'ERR\\d+'\nstate = \"FAULT\"\n"}) {
    auto rules = Parse(toml);
    ASSERT_TRUE(rules.ok()) << rules.status().ToString();
    EXPECT_EQ(rules->size(), 3u);
    EXPECT_EQ(Eval(*rules, "RUNNING 3"), SourceState::kInUse);
    EXPECT_EQ(Eval(*rules, "STANDBY;READY"), SourceState::kIdle);
    EXPECT_EQ(Eval(*rules, "PRE-RUN"), SourceState::kIdle) << "only the first rule is anchored";
    EXPECT_EQ(Eval(*rules, "ERR42"), SourceState::kFault);
    EXPECT_EQ(Eval(*rules, "ERR"), std::nullopt);
    auto m = rules->Evaluate("RUN");
    ASSERT_TRUE(m.ok() && m->has_value());
    EXPECT_EQ(rules->Describe(**m, "RUN"), "rule #1 /^RUN/ matched 'RUN'");
  }
}

TEST_F(StateRulesTest, BadRegexNamesAdapterRuleAndKey) {
  auto rules = Parse(
      "rule = [ { match = \"ok\", state = \"IDLE\" }, { match = \"(unclosed\", state = \"IDLE\" } "
      "]\n");
  ASSERT_FALSE(rules.ok());
  EXPECT_NE(rules.status().message().find("[[adapter]] 'console' rule #2: key 'match'"),
            std::string::npos)
      << rules.status().message();
  EXPECT_NE(rules.status().message().find("agent.toml:1:"), std::string::npos);
  EXPECT_NE(rules.status().message().find("missing closing parenthesis"), std::string::npos);
}

TEST_F(StateRulesTest, UnknownStateAndUnknownKeyAreRefused) {
  auto bad_state = Parse("rule = [ { match = \"x\", state = \"RUNNING\" } ]\n");
  ASSERT_FALSE(bad_state.ok());
  EXPECT_NE(bad_state.status().message().find("rule #1: key 'state': 'RUNNING' is not one of: "
                                              "OFF, IDLE, IN_USE, FAULT"),
            std::string::npos)
      << bad_state.status().message();
  auto bad_key = Parse("rule = [ { match = \"x\", state = \"IDLE\", when = 1 } ]\n");
  ASSERT_FALSE(bad_key.ok());
  EXPECT_NE(bad_key.status().message().find("unknown key 'when'"), std::string::npos);
  auto missing = Parse("rule = [ { state = \"IDLE\" } ]\n");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("rule #1: required key 'match' is missing"),
            std::string::npos)
      << missing.status().message();
}

// Regression: std::regex recursed once per character and crashed the process on a long line.
TEST_F(StateRulesTest, LongLinesAndNulBytesMatchWithoutCrashing) {
  auto rules = Parse(
      "rule = [ { match = \"^a.*RUN$\", state = \"IN_USE\" }, { match = "
      "\"(a|b)*STOP\", state = \"IDLE\" } ]\n");
  ASSERT_TRUE(rules.ok());
  std::string text(200'000, 'a');
  EXPECT_EQ(Eval(*rules, text + "RUN"), SourceState::kInUse);
  EXPECT_EQ(Eval(*rules, text + "STOP"), SourceState::kIdle);
  EXPECT_EQ(Eval(*rules, std::string("a\0b\0RUN", 7)), SourceState::kInUse);
}

TEST_F(StateRulesTest, CatastrophicBacktrackingIsAnErrorNotAHang) {
  auto regex = Regex::Compile("^(a+)+$");
  ASSERT_TRUE(regex.ok());
  auto found = regex->Search(std::string(64, 'a') + "b");
  ASSERT_FALSE(found.ok());
  EXPECT_NE(found.status().message().find("limit"), std::string::npos) << found.status().message();
}

TEST(StateNamesTest, RoundTripAndPrintable) {
  for (const std::string& name : SourceStateNames())
    EXPECT_EQ(SourceStateName(*ParseSourceState(name)), name);
  EXPECT_EQ(ParseSourceState("ON"), std::nullopt);
  EXPECT_EQ(Printable(std::string("a\x01\nb", 4)), "a??b");
  EXPECT_EQ(Printable("abcdef", 3), "abc...");
  EXPECT_EQ(Printable("298 \xc2\xb0K \xe6\xb8\xa9\xe5\xba\xa6"),
            "298 \xc2\xb0K \xe6\xb8\xa9\xe5\xba\xa6")
      << "valid UTF-8 is kept";
  EXPECT_EQ(Printable("a\xff\xc3 b\xed\xa0\x80"), "a?? b???") << "invalid bytes are not";
}

}  // namespace
}  // namespace instrumeter::adapters
