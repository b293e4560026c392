// The agent's keys: configuration, file permissions, and the real binary refusing to start with
// a key other users can read.
#include "credentials.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "test_support/process.h"

namespace instrumeter::agent {
namespace {

using ::testing::HasSubstr;

constexpr char kBinary[] = INSTRUMETER_AGENT_BINARY;

class CredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto key = protocol::SigningKey::Generate();
    ASSERT_TRUE(key.ok());
    testing::WriteFile(key_path_, *key->PrivateKeyPem());
    ASSERT_EQ(::chmod(key_path_.c_str(), 0600), 0);
    testing::WriteFile(tls_key_, "not checked beyond its mode here");
    ASSERT_EQ(::chmod(tls_key_.c_str(), 0600), 0);
    testing::WriteFile(ca_, "ca");
    testing::WriteFile(cert_, "cert");
  }

  std::string Config(const std::string& mqtt_extra, bool security) const {
    return "device_id = \"nmr-1\"\nstate_dir = \"" + dir_.File("state") + "\"\n[mqtt]\n" +
           mqtt_extra + (security ? "[security]\nsigning_key_file = \"" + key_path_ + "\"\n" : "") +
           "[[adapter]]\nname = \"sim\"\ntype = \"simulator\"\n";
  }
  std::string Tls() const {
    return "broker = \"ssl://127.0.0.1:1\"\nca_file = \"" + ca_ + "\"\ncert_file = \"" + cert_ +
           "\"\nkey_file = \"" + tls_key_ + "\"\n";
  }

  testing::TempDir dir_;
  std::string key_path_ = dir_.File("signing.key");
  std::string tls_key_ = dir_.File("device.key");
  std::string ca_ = dir_.File("ca.crt");
  std::string cert_ = dir_.File("device.crt");
};

TEST_F(CredentialsTest, ParsesTlsAndSecurity) {
  auto cfg = ParseAgentConfig(Config(Tls(), true), "agent.toml", adapters::Registry());
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->mqtt.ca_file, ca_);
  EXPECT_EQ(cfg->mqtt.key_file, tls_key_);
  ASSERT_TRUE(cfg->security.has_value());
  EXPECT_EQ(cfg->security->signing_key_file, key_path_);
  auto credentials = LoadCredentials(*cfg);
  ASSERT_TRUE(credentials.ok()) << credentials.status().ToString();
  ASSERT_TRUE(credentials->signing_key.has_value());

  auto dev = ParseAgentConfig(Config("broker = \"tcp://127.0.0.1:1\"\n", false), "agent.toml",
                              adapters::Registry());
  ASSERT_TRUE(dev.ok());
  EXPECT_FALSE(dev->security.has_value()) << "no [security]: development mode";
  EXPECT_FALSE(LoadCredentials(*dev)->signing_key.has_value());
}

TEST_F(CredentialsTest, RefusesInconsistentTlsSettings) {
  const auto error = [&](const std::string& mqtt) {
    auto cfg = ParseAgentConfig(Config(mqtt, false), "agent.toml", adapters::Registry());
    EXPECT_FALSE(cfg.ok()) << mqtt;
    return cfg.ok() ? std::string() : cfg.status().message();
  };
  EXPECT_THAT(error("broker = \"ssl://h:8883\"\n"), HasSubstr("ca_file"));
  EXPECT_THAT(error("broker = \"tcp://h:1883\"\nca_file = \"" + ca_ + "\"\n"),
              HasSubstr("would not encrypt"));
  EXPECT_THAT(error("broker = \"ssl://h:8883\"\nca_file = \"x\"\ncert_file = \"y\"\n"),
              HasSubstr("go together"));
}

TEST_F(CredentialsTest, RefusesKeysOthersCanRead) {
  auto cfg = ParseAgentConfig(Config(Tls(), true), "agent.toml", adapters::Registry());
  ASSERT_TRUE(cfg.ok());
  ASSERT_EQ(::chmod(key_path_.c_str(), 0644), 0);
  auto loaded = LoadCredentials(*cfg);
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(loaded.status().message(), HasSubstr("[security] signing_key_file"));
  EXPECT_THAT(loaded.status().message(), HasSubstr(key_path_));
  ASSERT_EQ(::chmod(key_path_.c_str(), 0600), 0);
  ASSERT_EQ(::chmod(tls_key_.c_str(), 0640), 0);
  loaded = LoadCredentials(*cfg);
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(loaded.status().message(), HasSubstr("[mqtt] key_file"));
  ASSERT_EQ(::chmod(tls_key_.c_str(), 0600), 0);
  ASSERT_EQ(::unlink(key_path_.c_str()), 0);
  loaded = LoadCredentials(*cfg);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Status::Code::kNotFound);
}

TEST_F(CredentialsTest, TheBinaryRefusesAWorldReadableKeyWithExit2) {
  const std::string config = dir_.File("agent.toml");
  testing::WriteFile(config, Config("broker = \"tcp://127.0.0.1:1\"\n", true));
  ASSERT_EQ(::chmod(key_path_.c_str(), 0644), 0);
  std::string output;
  EXPECT_EQ(testing::RunCommand({kBinary, "run", "--config", config}, &output), 2);
  EXPECT_THAT(output, HasSubstr(key_path_));
  EXPECT_THAT(output, HasSubstr("refusing to start"));
  ASSERT_EQ(::unlink(key_path_.c_str()), 0);
  EXPECT_EQ(testing::RunCommand({kBinary, "run", "--config", config}, &output), 2);
  EXPECT_THAT(output, HasSubstr("does not exist"));
  EXPECT_EQ(testing::RunCommand({kBinary, "check", "--config", config}, &output), 2);
}

}  // namespace
}  // namespace instrumeter::agent
