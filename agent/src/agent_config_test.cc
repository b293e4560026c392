#include "agent/agent_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "adapter_set.h"
#include "fake_adapter_test_util.h"

namespace instrumeter::agent {
namespace {

using ::testing::HasSubstr;

constexpr char kHead[] =
    "device_id = \"nmr-1\"\n"                 // 1
    "state_dir = \"/var/lib/instrumeter\"\n"  // 2
    "[mqtt]\n"                                // 3
    "broker = \"tcp://127.0.0.1:1883\"\n";    // 4
constexpr char kPower[] =
    "[[adapter]]\n"       // 5
    "name = \"power\"\n"  // 6
    "type = \"fake\"\n";  // 7

class AgentConfigTest : public ::testing::Test {
 protected:
  Result<AgentConfig> Parse(const std::string& text) {
    return ParseAgentConfig(text, "agent.toml", registry_);
  }
  std::string Error(const std::string& text) {
    auto cfg = Parse(text);
    EXPECT_FALSE(cfg.ok()) << text;
    return cfg.ok() ? std::string() : cfg.status().message();
  }

  std::map<std::string, fake::FakeSource> sources_;
  std::vector<adapters::AdapterType> registry_ = fake::FakeRegistry(&sources_);
};

TEST_F(AgentConfigTest, MinimalConfigGetsDefaults) {
  auto cfg = Parse(std::string(kHead) + kPower);
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->device_id, "nmr-1");
  EXPECT_EQ(cfg->poll_interval_ms, 1000);
  EXPECT_EQ(cfg->heartbeat_interval_ms, 10000);
  EXPECT_EQ(cfg->debounce_ms, 0);
  EXPECT_EQ(cfg->log_level, "info");
  EXPECT_EQ(cfg->mqtt.broker, "tcp://127.0.0.1:1883");
  EXPECT_EQ(cfg->mqtt.max_events_per_envelope, 100);
  EXPECT_EQ(cfg->mqtt.max_envelopes_in_flight, 8);
  EXPECT_EQ(cfg->mqtt.ack_timeout_ms, 15000);
  EXPECT_EQ(cfg->mqtt.shutdown_flush_ms, 3000);
  EXPECT_EQ(cfg->power_sources, std::vector<std::string>{"power"});
  EXPECT_EQ(cfg->use_sources, std::vector<std::string>{"power"});
  EXPECT_EQ(cfg->OutboxPath(), "/var/lib/instrumeter/outbox.db");
  ASSERT_EQ(cfg->adapters.size(), 1u);
  EXPECT_EQ(cfg->adapters[0].type.name, "fake");
}

TEST_F(AgentConfigTest, EvidenceChoosesSources) {
  auto cfg = Parse(std::string(kHead) + "[evidence]\npower_sources = [\"plug\"]\n" + kPower +
                   "[[adapter]]\nname = \"plug\"\ntype = \"fake\"\nthreshold_w = 40\n");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->power_sources, std::vector<std::string>{"plug"});
  EXPECT_EQ(cfg->use_sources, (std::vector<std::string>{"power", "plug"}));
}

TEST_F(AgentConfigTest, UnknownKeyNamesFileLineAndKey) {
  EXPECT_THAT(Error(std::string(kHead) + "poll_intervall_ms = 5\n" + kPower),
              HasSubstr("agent.toml:5:21: [mqtt]: unknown key 'poll_intervall_ms'"));
  EXPECT_THAT(Error("pol_interval_ms = 5\n" + std::string(kHead) + kPower),
              HasSubstr("agent.toml:1:19: top level: unknown key 'pol_interval_ms'"));
  EXPECT_THAT(Error(std::string(kHead) + kPower + "colour = \"red\"\n"),
              HasSubstr("agent.toml:8:10: [[adapter]] 'power': unknown key 'colour'"));
}

TEST_F(AgentConfigTest, WrongTypeOrRangeNamesTheKey) {
  EXPECT_THAT(Error("poll_interval_ms = \"1s\"\n" + std::string(kHead) + kPower),
              HasSubstr("agent.toml:1:20: top level: key 'poll_interval_ms': must be integer"));
  EXPECT_THAT(Error("poll_interval_ms = 10\n" + std::string(kHead) + kPower),
              HasSubstr("key 'poll_interval_ms': value 10 is out of range"));
  EXPECT_THAT(Error(std::string(kHead) + "max_events_per_envelope = 1001\n" + kPower),
              HasSubstr("agent.toml:5:27: [mqtt]: key 'max_events_per_envelope'"));
  EXPECT_THAT(
      Error(std::string(kHead) + kPower + "threshold_w = \"high\"\n"),
      HasSubstr("agent.toml:8:15: [[adapter]] 'power': key 'threshold_w': must be integer"));
  EXPECT_THAT(Error("log_level = \"loud\"\n" + std::string(kHead) + kPower),
              HasSubstr("key 'log_level': 'loud' is not one of"));
  EXPECT_THAT(
      Error(std::string(kHead) + "reconnect_min_ms = 5000\nreconnect_max_ms = 1000\n" + kPower),
      HasSubstr("key 'reconnect_max_ms': must be at least reconnect_min_ms"));
  EXPECT_THAT(Error("device_id = \"nmr-1\"\nstate_dir = \"/x\"\n[mqtt]\nbroker = \"localhost\"\n" +
                    std::string(kPower)),
              HasSubstr("agent.toml:4:10: [mqtt]: key 'broker': 'localhost' is not a broker URL"));
}

TEST_F(AgentConfigTest, MissingOrBadDeviceIdIsRefused) {
  EXPECT_THAT(Error("state_dir = \"/x\"\n[mqtt]\nbroker = \"tcp://h:1\"\n" + std::string(kPower)),
              HasSubstr("agent.toml: top level: required key 'device_id' is missing"));
  EXPECT_THAT(Error("device_id = \"nmr/1\"\nstate_dir = \"/x\"\n[mqtt]\nbroker = \"tcp://h:1\"\n" +
                    std::string(kPower)),
              HasSubstr("agent.toml:1:13: top level: key 'device_id':"));
  EXPECT_THAT(Error("device_id = \"a\"\nstate_dir = \"/x\"\n" + std::string(kPower)),
              HasSubstr("required key 'mqtt' is missing"));
  EXPECT_THAT(Error(kHead), HasSubstr("required key 'adapter' is missing"));
}

TEST_F(AgentConfigTest, UnknownAdapterTypeIsNamed) {
  EXPECT_THAT(Error(std::string(kHead) + "[[adapter]]\nname = \"power\"\ntype = \"modbus\"\n"),
              HasSubstr("agent.toml:7:8: [[adapter]] 'power': key 'type': unknown adapter type "
                        "'modbus' (known types: fake)"));
  EXPECT_THAT(Error(std::string(kHead) + "[[adapter]]\nname = \"power\"\n"),
              HasSubstr("agent.toml:5:1: [[adapter]] #1: required key 'type' is missing"));
  EXPECT_THAT(Error(std::string(kHead) + "[[adapter]]\nname = \"po wer\"\ntype = \"fake\"\n"),
              HasSubstr("agent.toml:6:8: [[adapter]] #1: key 'name': 'po wer' must be"));
}

TEST_F(AgentConfigTest, DuplicateAdapterNameIsRefused) {
  EXPECT_THAT(Error(std::string(kHead) + kPower + kPower),
              HasSubstr("agent.toml:9:8: [[adapter]] 'power': key 'name': duplicate adapter "
                        "name (first defined at agent.toml:5:1)"));
}

TEST_F(AgentConfigTest, EvidenceMustNameConfiguredAdapters) {
  EXPECT_THAT(
      Error(std::string(kHead) + "[evidence]\nuse_sources = [\"power\", \"login\"]\n" + kPower),
      HasSubstr("agent.toml:6:15: [evidence]: key 'use_sources': names no configured "
                "adapter: 'login' (adapters: power)"));
  EXPECT_THAT(Error(std::string(kHead) + "[evidence]\npower_sources = []\n" + kPower),
              HasSubstr("key 'power_sources': must name at least one adapter"));
  EXPECT_THAT(Error(std::string(kHead) + "[evidence]\nfoo = 1\n" + kPower),
              HasSubstr("agent.toml:6:7: [evidence]: unknown key 'foo'"));
}

TEST_F(AgentConfigTest, AdapterInitErrorsNameTheAdapter) {
  auto cfg = Parse(std::string(kHead) + kPower + "threshold_w = 13\n");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  FakeClock clock;
  auto set = AdapterSet::Create(*cfg, &clock, MakeNullLogger());
  ASSERT_FALSE(set.ok());
  EXPECT_THAT(set.status().message(),
              HasSubstr("agent.toml:8:15: [[adapter]] 'power': key 'threshold_w': unlucky"));
}

TEST_F(AgentConfigTest, ReferenceListsEveryKey) {
  const std::string md = ConfigReferenceMarkdown(registry_);
  for (const char* key :
       {"device_id", "state_dir", "poll_interval_ms", "heartbeat_interval_ms", "debounce_ms",
        "log_level", "broker", "keepalive_s", "max_events_per_envelope", "shutdown_flush_ms",
        "power_sources", "use_sources", "name", "type", "threshold_w"})
    EXPECT_THAT(md, HasSubstr(std::string("`") + key + "`"));
  EXPECT_THAT(md, HasSubstr("### type = \"fake\""));
}

TEST_F(AgentConfigTest, MissingFileIsNamed) {
  auto cfg = LoadAgentConfig("/nonexistent/agent.toml", registry_);
  ASSERT_FALSE(cfg.ok());
  EXPECT_THAT(cfg.status().message(), HasSubstr("/nonexistent/agent.toml"));
}

}  // namespace
}  // namespace instrumeter::agent
