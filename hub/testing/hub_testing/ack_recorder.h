// A Downlink that records the last ack sent to each device, for hub tests.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "hub/ingestor.h"

namespace instrumeter::hub::testing {

class AckRecorder : public Downlink {
 public:
  Status SendAck(const std::string& device_id, uint64_t seq) override {
    acks[device_id] = seq;
    return Status::Ok();
  }
  Status SendResend(const std::string&, uint64_t, uint64_t) override { return Status::Ok(); }
  std::map<std::string, uint64_t> acks;  // the last ack per device
};

}  // namespace instrumeter::hub::testing
