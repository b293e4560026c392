#include "common/config.h"

#include <gtest/gtest.h>

namespace instrumeter::config {
namespace {

const Schema& TestSchema() {
  static const Schema kSchema = {
      {.name = "device_id", .type = Type::kString, .description = "id", .required = true},
      {.name = "poll_interval_ms",
       .type = Type::kInteger,
       .default_value = int64_t{1000},
       .description = "poll",
       .min = 10,
       .max = 3'600'000},
      {.name = "mode",
       .type = Type::kString,
       .default_value = std::string("fast"),
       .description = "mode",
       .one_of = {"fast", "slow"}},
      {.name = "tags", .type = Type::kStringArray, .description = "tags"},
      {.name = "mqtt", .type = Type::kTable, .description = "broker"},
  };
  return kSchema;
}

Result<Section> MakeFrom(const std::string& text, toml::table* storage) {
  auto parsed = ParseString(text, "agent.toml");
  if (!parsed.ok()) return parsed.status();
  *storage = std::move(*parsed);
  return Section::Make(*storage, TestSchema(), "agent.toml");
}

TEST(ConfigTest, DefaultsApplyAndValuesRead) {
  toml::table t;
  auto s = MakeFrom("device_id = \"nmr-1\"\ntags = [\"a\", \"b\"]\n[mqtt]\nbroker = \"x\"\n", &t);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->String("device_id"), "nmr-1");
  EXPECT_EQ(s->Integer("poll_interval_ms"), 1000);
  EXPECT_EQ(s->String("mode"), "fast");
  EXPECT_EQ(s->StringArray("tags"), (std::vector<std::string>{"a", "b"}));
  ASSERT_NE(s->Table("mqtt"), nullptr);
}

TEST(ConfigTest, UnknownKeyIsNamedWithItsLine) {
  toml::table t;
  auto s = MakeFrom("device_id = \"nmr-1\"\npoll_intervall_ms = 5\n", &t);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("agent.toml:2:"), std::string::npos) << s.status().message();
  EXPECT_NE(s.status().message().find("unknown key 'poll_intervall_ms'"), std::string::npos);
}

TEST(ConfigTest, BadValuesAreRefusedNamingTheKey) {
  toml::table t;
  auto wrong_type = MakeFrom("device_id = 5\n", &t);
  ASSERT_FALSE(wrong_type.ok());
  EXPECT_NE(wrong_type.status().message().find("key 'device_id': must be string"),
            std::string::npos)
      << wrong_type.status().message();
  auto out_of_range = MakeFrom("device_id = \"a\"\npoll_interval_ms = 1\n", &t);
  ASSERT_FALSE(out_of_range.ok());
  EXPECT_NE(out_of_range.status().message().find("out of range"), std::string::npos);
  auto not_one_of = MakeFrom("device_id = \"a\"\nmode = \"turbo\"\n", &t);
  ASSERT_FALSE(not_one_of.ok());
  EXPECT_NE(not_one_of.status().message().find("'turbo' is not one of: fast, slow"),
            std::string::npos);
  auto missing = MakeFrom("mode = \"slow\"\n", &t);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("required key 'device_id'"), std::string::npos);
}

TEST(ConfigTest, AnErrorAboutADefaultedKeyNamesItsSection) {
  toml::table t;
  auto root = MakeFrom("device_id = \"a\"\n[mqtt]\ndevice_id = \"b\"\n", &t);
  ASSERT_TRUE(root.ok()) << root.status().ToString();
  const std::string at_root = root->Error("poll_interval_ms", "too slow").message();
  EXPECT_EQ(at_root.rfind("agent.toml", 0), 0u) << at_root;
  EXPECT_NE(at_root.find("key 'poll_interval_ms': too slow"), std::string::npos) << at_root;
  auto mqtt = Section::Make(*root->Table("mqtt"), TestSchema(), "[mqtt]");
  ASSERT_TRUE(mqtt.ok()) << mqtt.status().ToString();
  const std::string in_mqtt = mqtt->Error("poll_interval_ms", "clashes").message();
  EXPECT_EQ(in_mqtt.rfind("agent.toml:2:", 0), 0u) << in_mqtt;  // the [mqtt] header's line
}

TEST(ConfigTest, SyntaxErrorNamesLineAndColumn) {
  auto parsed = ParseString("a = \"unterminated\n", "hub.toml");
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("hub.toml:1:"), std::string::npos)
      << parsed.status().message();
  auto missing = ParseFile("/nonexistent/hub.toml");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/hub.toml"), std::string::npos);
}

TEST(ConfigTest, MarkdownListsEveryKey) {
  const std::string md = SchemaMarkdown(TestSchema());
  for (const Key& k : TestSchema()) EXPECT_NE(md.find("`" + k.name + "`"), std::string::npos);
  EXPECT_NE(md.find("(required)"), std::string::npos);
}

}  // namespace
}  // namespace instrumeter::config
