// docs/adapters.md carries each adapter's key table as config::SchemaMarkdown generates it from
// the schema the agent validates with, so the documentation cannot drift from the behaviour.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "adapters/registry.h"
#include "adapters/state_rules.h"

namespace instrumeter::adapters {
namespace {

std::string ReadDoc() {
  std::ifstream in(INSTRUMETER_ADAPTERS_DOC);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

TEST(AdaptersDocTest, EveryAdapterTypeIsRegisteredAndDocumentedWithItsGeneratedKeyTable) {
  const std::string doc = ReadDoc();
  ASSERT_FALSE(doc.empty()) << "cannot read " << INSTRUMETER_ADAPTERS_DOC;
  for (const std::string name : {"modbus", "scpi", "process", "logfile", "exec"}) {
    const AdapterType* type = FindAdapterType(name);
    ASSERT_NE(type, nullptr) << name << " is not in the registry";
    EXPECT_NE(doc.find("## `" + name + "`"), std::string::npos) << "no section for " << name;
    const std::string table = config::SchemaMarkdown(*type->schema);
    EXPECT_NE(doc.find(table), std::string::npos) << "docs/adapters.md: the key table of `" << name
                                                  << "` differs from its schema; replace it with:\n"
                                                  << table;
  }
  const std::string rules = config::SchemaMarkdown(StateRules::RuleSchema());
  EXPECT_NE(doc.find(rules), std::string::npos)
      << "docs/adapters.md: the rule table differs from StateRules::RuleSchema(); replace it "
         "with:\n"
      << rules;
}

}  // namespace
}  // namespace instrumeter::adapters
