// Building and checking instrumeter.v1 messages. Both the agent and the hub go through here, so
// the rules of README.md ("Events") are enforced in one place.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "telemetry.pb.h"

namespace instrumeter::protocol {

namespace v1 = ::instrumeter::v1;

// Limits a receiver enforces before it trusts anything in an envelope.
struct EnvelopeLimits {
  size_t max_envelope_bytes = 256 * 1024;
  size_t max_events = 1000;
};

// An envelope whose every event parsed and passed the structural checks.
struct DecodedEnvelope {
  v1::Envelope envelope;                 // payload cleared after decoding
  std::vector<std::string> event_bytes;  // exact bytes as sent; [i] has sequence first_sequence + i
  std::vector<v1::Event> events;
};

// Parses and checks an uplink envelope: known device id format, sequences consecutive from
// first_sequence, every event timed and with a body, states within the enum. Errors are
// InvalidArgument with a message that names what is wrong (for logs and the rejection counter).
Result<DecodedEnvelope> DecodeEnvelope(std::string_view bytes, const EnvelopeLimits& limits = {});

// Times a receiver refuses as malformed (README.md, "Clocks"): a wall time before 2020-01-01 or
// more than 100 years after the receiver's own clock, or a negative monotonic reading. A clock
// that is merely wrong (hours off, or stepped to 2038) passes: its events are kept and the hub
// flags the skew, because refusing them would lose hours.
inline constexpr int64_t kEarliestPlausibleWallMs = 1'577'836'800'000;    // 2020-01-01T00:00:00Z
inline constexpr int64_t kMaxWallAheadMs = int64_t{36'525} * 86'400'000;  // 100 years
Status CheckPlausibleTime(const v1::Event& event, int64_t receiver_wall_unix_ms);

// Serialises an envelope around already-serialised events (their bytes are not re-encoded).
std::string EncodeEnvelope(const std::string& device_id, const std::string& boot_id,
                           uint64_t first_sequence, const std::vector<std::string>& event_bytes,
                           const v1::Signature* signature = nullptr);

// "OFF", "IDLE", "IN_USE", "FAULT", "UNKNOWN"; "UNSPECIFIED" otherwise.
const char* StateName(v1::InstrumentState state);
// Accepts the names above (case-insensitive); false for anything else.
bool ParseStateName(std::string_view name, v1::InstrumentState* state);
// Powered time is IDLE, IN_USE and FAULT; UNKNOWN counts as neither (DESIGN rule 2).
inline bool IsPowered(v1::InstrumentState s) {
  return s == v1::INSTRUMENT_STATE_IDLE || s == v1::INSTRUMENT_STATE_IN_USE ||
         s == v1::INSTRUMENT_STATE_FAULT;
}
inline bool IsInUse(v1::InstrumentState s) { return s == v1::INSTRUMENT_STATE_IN_USE; }

// True for events that carry the meter (StateChange, Heartbeat, AgentStop): the points from
// which the hub derives intervals. SessionMarks are not observation points.
bool IsObservationPoint(const v1::Event& event);

}  // namespace instrumeter::protocol
