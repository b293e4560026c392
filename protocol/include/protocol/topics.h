// The MQTT topic layout of instrumeter.v1; README.md next to this file is its specification.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace instrumeter::protocol {

inline constexpr std::string_view kTopicRoot = "instrumeter/v1";
inline constexpr int kDataQos = 1;

enum class Channel {
  kUp,      // agent -> hub: Envelope, QoS 1
  kAck,     // hub -> agent: Downlink, QoS 1
  kStatus,  // agent (and its last will) -> anyone: DeviceStatus, QoS 1, retained
  kCmd,     // hub -> agent: Command, QoS 1
};

struct DeviceTopic {
  std::string device_id;
  Channel channel;
};

// instrumeter/v1/<device_id>/<channel>
std::string Topic(std::string_view device_id, Channel channel);
// instrumeter/v1/+/<channel>: every device's topic of one channel.
std::string AllDevices(Channel channel);
Result<DeviceTopic> ParseTopic(std::string_view topic);

// A device id is 1 to 64 characters from [A-Za-z0-9._-]: safe in a topic level, a file name and
// a certificate's common name.
Status ValidateDeviceId(std::string_view device_id);

}  // namespace instrumeter::protocol
