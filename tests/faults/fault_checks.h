// Checks shared by the fault tests, beyond the "exact" of verify.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mqtt_tap.h"
#include "stack.h"

namespace instrumeter::testing {

// One ack the hub sent, as a test subscriber on instrumeter/v1/+/ack saw it.
struct SeenAck {
  std::string device_id;
  uint64_t sequence = 0;
  int64_t seen_unix_ms = 0;
};

// The acks among the messages a tap recorded (ResendRequests are left out).
std::vector<SeenAck> ParseAcks(const std::vector<MqttTap::Message>& messages);
// How many ResendRequests the tap recorded.
size_t CountResendRequests(const std::vector<MqttTap::Message>& messages);

// "No ack ever sent for an uncommitted event", checked from outside the hub: an ack for N seen
// at time T needs every sequence 1..N in the hub's database, each received by the hub before T.
// The hub stamps an event's received_unix_ms when it first arrives and never rewrites a stored
// event (the first bytes win), so an event that was acked before it was committed shows up either
// missing (the agent deleted it on the ack and the hub lost it) or received after the ack (the
// agent still had it and sent it again). Both stamps come from this machine's wall clock. The
// tap stamps an ack when its thread takes it from Paho, a few ms after the hub sent it, so the
// check is looser than exact by those few ms: an event first received in that window would pass.
// An agent cannot send in that window what the hub had not had: it resends only after a
// reconnect, a ResendRequest or its ack timeout, seconds later.
void ExpectEveryAckCommitted(const Stack& stack, const std::vector<SeenAck>& acks);

}  // namespace instrumeter::testing
