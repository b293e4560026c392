#include "mqtt_downlink.h"

#include "protocol/topics.h"
#include "telemetry.pb.h"

namespace instrumeter::hub {

Status MqttDownlink::SendAck(const std::string& device_id, uint64_t highest_contiguous_sequence) {
  v1::Downlink message;
  message.mutable_ack()->set_highest_contiguous_sequence(highest_contiguous_sequence);
  message.mutable_ack()->set_hub_time_unix_ms(clock_->WallUnixMs());
  return link_->PublishAtMostOnce(protocol::Topic(device_id, protocol::Channel::kAck),
                                  message.SerializeAsString());
}

Status MqttDownlink::SendResend(const std::string& device_id, uint64_t from_sequence,
                                uint64_t to_sequence) {
  v1::Downlink message;
  message.mutable_resend()->set_from_sequence(from_sequence);
  message.mutable_resend()->set_to_sequence(to_sequence);
  return link_->PublishAtMostOnce(protocol::Topic(device_id, protocol::Channel::kAck),
                                  message.SerializeAsString());
}

}  // namespace instrumeter::hub
