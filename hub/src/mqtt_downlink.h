// Downlink over MQTT: Ack and ResendRequest as instrumeter.v1.Downlink on the device's ack topic
// (QoS 0, not retained: protocol/README.md, "Delivery", says why a lost one costs nothing). Used
// on the ingest thread, like the MqttLink it borrows.
#pragma once

#include <string>

#include "common/clock.h"
#include "common/mqtt_link.h"
#include "hub/ingestor.h"

namespace instrumeter::hub {

class MqttDownlink : public Downlink {
 public:
  // `link` and `clock` are borrowed and must outlive this object.
  MqttDownlink(MqttLink* link, const Clock* clock) : link_(link), clock_(clock) {}

  // Unavailable while the broker is away: the agent resends after reconnecting and the hub
  // acknowledges the duplicates again, so nothing is queued here.
  Status SendAck(const std::string& device_id, uint64_t highest_contiguous_sequence) override;
  Status SendResend(const std::string& device_id, uint64_t from_sequence,
                    uint64_t to_sequence) override;

 private:
  MqttLink* link_;
  const Clock* clock_;
};

}  // namespace instrumeter::hub
