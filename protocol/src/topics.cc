#include "protocol/topics.h"

namespace instrumeter::protocol {
namespace {

std::string_view ChannelName(Channel channel) {
  switch (channel) {
    case Channel::kUp:
      return "up";
    case Channel::kAck:
      return "ack";
    case Channel::kStatus:
      return "status";
    case Channel::kCmd:
      return "cmd";
  }
  return "?";
}

}  // namespace

std::string Topic(std::string_view device_id, Channel channel) {
  std::string t(kTopicRoot);
  t += '/';
  t += device_id;
  t += '/';
  t += ChannelName(channel);
  return t;
}

std::string AllDevices(Channel channel) { return Topic("+", channel); }

Result<DeviceTopic> ParseTopic(std::string_view topic) {
  const std::string prefix = std::string(kTopicRoot) + "/";
  if (topic.substr(0, prefix.size()) != prefix)
    return Status::InvalidArgument("topic '" + std::string(topic) + "' is not under " + prefix);
  std::string_view rest = topic.substr(prefix.size());
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos)
    return Status::InvalidArgument("topic '" + std::string(topic) + "' has no channel");
  std::string_view device = rest.substr(0, slash);
  std::string_view channel = rest.substr(slash + 1);
  INSTRUMETER_RETURN_IF_ERROR(
      ValidateDeviceId(device).WithContext("topic '" + std::string(topic) + "'"));
  for (Channel c : {Channel::kUp, Channel::kAck, Channel::kStatus, Channel::kCmd})
    if (channel == ChannelName(c)) return DeviceTopic{std::string(device), c};
  return Status::InvalidArgument("topic '" + std::string(topic) + "' has unknown channel '" +
                                 std::string(channel) + "'");
}

Status ValidateDeviceId(std::string_view device_id) {
  if (device_id.empty() || device_id.size() > 64)
    return Status::InvalidArgument("device id must be 1 to 64 characters, got " +
                                   std::to_string(device_id.size()));
  for (char c : device_id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok)
      return Status::InvalidArgument("device id '" + std::string(device_id) +
                                     "' may contain only letters, digits, '.', '_' and '-'");
  }
  return Status::Ok();
}

}  // namespace instrumeter::protocol
