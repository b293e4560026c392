#include "hub/hub_config.h"

#include <gtest/gtest.h>

namespace instrumeter::hub {
namespace {

TEST(HubConfigTest, DefaultsApplyAndEveryKeyIsRead) {
  Result<HubConfig> minimal = ParseHubConfig(
      "[mqtt]\nbroker = \"tcp://127.0.0.1:1883\"\n[store]\npath = \"/tmp/hub.db\"\n", "hub.toml");
  ASSERT_TRUE(minimal.ok()) << minimal.status().ToString();
  EXPECT_EQ(minimal->mqtt.client_id, "instrumeter-hub");
  EXPECT_EQ(minimal->mqtt.keepalive_s, 30);
  EXPECT_EQ(minimal->mqtt.reconnect_min_ms, 500);
  EXPECT_EQ(minimal->mqtt.reconnect_max_ms, 30000);
  EXPECT_EQ(minimal->ingest.max_batch_events, 2000u);
  EXPECT_EQ(minimal->ingest.max_batch_delay_ms, 20);
  EXPECT_EQ(minimal->ingest.resend_interval_ms, 5000);
  EXPECT_EQ(minimal->ingest.limits.max_envelope_bytes, 262144u);
  EXPECT_EQ(minimal->ingest.limits.max_events, 1000u);
  EXPECT_FALSE(minimal->ingest.accept_unregistered_devices);
  EXPECT_EQ(minimal->log_level, "info");
  EXPECT_EQ(minimal->store.archive_after_hours, 48);
  EXPECT_EQ(minimal->store.archive_interval_ms, 600'000);

  Result<HubConfig> full = ParseHubConfig(R"(log_level = "debug"
[mqtt]
broker = "tcp://broker:1883"
client_id = "hub-2"
keepalive_s = 10
reconnect_min_ms = 100
reconnect_max_ms = 2000
[store]
path = "hub.db"
busy_timeout_ms = 100
archive_after_hours = 0
archive_interval_ms = 5000
[ingest]
max_batch_events = 10
max_batch_delay_ms = 5
resend_interval_ms = 1000
max_envelope_bytes = 1024
max_events_per_envelope = 8
accept_unregistered_devices = true
)",
                                          "hub.toml");
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  EXPECT_EQ(full->log_level, "debug");
  EXPECT_EQ(full->mqtt.client_id, "hub-2");
  EXPECT_EQ(full->mqtt.keepalive_s, 10);
  EXPECT_EQ(full->store.busy_timeout_ms, 100);
  EXPECT_EQ(full->store.archive_after_hours, 0) << "the archive turned off";
  EXPECT_EQ(full->store.archive_interval_ms, 5000);
  EXPECT_EQ(full->ingest.max_batch_events, 10u);
  EXPECT_EQ(full->ingest.limits.max_envelope_bytes, 1024u);
  EXPECT_EQ(full->ingest.limits.max_events, 8u);
  EXPECT_TRUE(full->ingest.accept_unregistered_devices);
}

TEST(HubConfigTest, MistakesAreNamedByFileLineAndKey) {
  const std::string base = "[mqtt]\nbroker = \"tcp://b:1883\"\n[store]\npath = \"h.db\"\n";
  Result<HubConfig> typo = ParseHubConfig(base + "[ingest]\nmax_batch_event = 5\n", "hub.toml");
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.status().message().find("hub.toml:6:"), std::string::npos)
      << typo.status().message();
  EXPECT_NE(typo.status().message().find("'max_batch_event'"), std::string::npos);

  Result<HubConfig> range = ParseHubConfig(base + "[ingest]\nmax_batch_events = 0\n", "hub.toml");
  ASSERT_FALSE(range.ok());
  EXPECT_NE(range.status().message().find("hub.toml:6:"), std::string::npos);
  EXPECT_NE(range.status().message().find("max_batch_events"), std::string::npos);

  Result<HubConfig> archive = ParseHubConfig(base + "archive_after_hours = -1\n", "hub.toml");
  ASSERT_FALSE(archive.ok());
  EXPECT_NE(archive.status().message().find("hub.toml:5:"), std::string::npos)
      << archive.status().message();
  EXPECT_NE(archive.status().message().find("archive_after_hours"), std::string::npos);

  Result<HubConfig> missing = ParseHubConfig("[store]\npath = \"h.db\"\n", "hub.toml");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("'mqtt'"), std::string::npos);

  Result<HubConfig> no_broker = ParseHubConfig("[mqtt]\n[store]\npath = \"h.db\"\n", "hub.toml");
  ASSERT_FALSE(no_broker.ok());
  EXPECT_NE(no_broker.status().message().find("[mqtt]: required key 'broker'"), std::string::npos)
      << no_broker.status().message();

  Result<HubConfig> level = ParseHubConfig("log_level = \"loud\"\n" + base, "hub.toml");
  ASSERT_FALSE(level.ok());
  EXPECT_NE(level.status().message().find("hub.toml:1:"), std::string::npos);

  Result<HubConfig> backoff = ParseHubConfig(
      "[mqtt]\nbroker = \"b\"\nreconnect_min_ms = 5000\nreconnect_max_ms = 100\n[store]\npath = "
      "\"h\"\n",
      "hub.toml");
  ASSERT_FALSE(backoff.ok());
  EXPECT_NE(backoff.status().message().find("hub.toml:4:"), std::string::npos)
      << backoff.status().message();
}

TEST(HubConfigTest, ReferenceListsEveryKey) {
  const std::string doc = HubConfigReference();
  for (const char* key :
       {"broker", "client_id", "keepalive_s", "reconnect_min_ms", "reconnect_max_ms", "path",
        "busy_timeout_ms", "max_batch_events", "max_batch_delay_ms", "resend_interval_ms",
        "max_envelope_bytes", "max_events_per_envelope", "accept_unregistered_devices", "log_level",
        "archive_after_hours", "archive_interval_ms"})
    EXPECT_NE(doc.find(std::string("`") + key + "`"), std::string::npos) << key;
}

}  // namespace
}  // namespace instrumeter::hub
