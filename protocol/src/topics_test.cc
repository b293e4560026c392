#include "protocol/topics.h"

#include <gtest/gtest.h>

namespace instrumeter::protocol {
namespace {

TEST(TopicsTest, BuildsAndParsesEveryChannel) {
  EXPECT_EQ(Topic("sh-nmr-01", Channel::kUp), "instrumeter/v1/sh-nmr-01/up");
  EXPECT_EQ(AllDevices(Channel::kStatus), "instrumeter/v1/+/status");
  for (Channel c : {Channel::kUp, Channel::kAck, Channel::kStatus, Channel::kCmd}) {
    auto parsed = ParseTopic(Topic("dev.1_a", c));
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    EXPECT_EQ(parsed->device_id, "dev.1_a");
    EXPECT_EQ(parsed->channel, c);
  }
}

TEST(TopicsTest, RefusesForeignAndMalformedTopics) {
  EXPECT_FALSE(ParseTopic("instrumeter/v2/dev/up").ok());
  EXPECT_FALSE(ParseTopic("instrumeter/v1/dev").ok());
  EXPECT_FALSE(ParseTopic("instrumeter/v1/dev/down").ok());
  EXPECT_FALSE(ParseTopic("instrumeter/v1/a/b/up").ok()) << "a device id cannot hold a slash";
  EXPECT_FALSE(ValidateDeviceId("").ok());
  EXPECT_FALSE(ValidateDeviceId(std::string(65, 'a')).ok());
  EXPECT_FALSE(ValidateDeviceId("dev+1").ok());
  EXPECT_TRUE(ValidateDeviceId(std::string(64, 'a')).ok());
}

}  // namespace
}  // namespace instrumeter::protocol
