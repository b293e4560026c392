#include "protocol/codec.h"

#include <algorithm>
#include <cctype>

#include "protocol/topics.h"

namespace instrumeter::protocol {
namespace {

bool ValidState(int s) {
  return s >= v1::INSTRUMENT_STATE_OFF && s <= v1::INSTRUMENT_STATE_UNKNOWN;
}

Status CheckEvent(const v1::Event& event, uint64_t expected_sequence) {
  const std::string where = "event " + std::to_string(expected_sequence);
  if (event.sequence() != expected_sequence)
    return Status::InvalidArgument(where + ": carries sequence " +
                                   std::to_string(event.sequence()));
  if (!event.has_at() || event.at().boot_id().empty())
    return Status::InvalidArgument(where + ": has no time or boot id");
  switch (event.body_case()) {
    case v1::Event::kStateChange:
      if (!ValidState(event.state_change().state()))
        return Status::InvalidArgument(where + ": state change to an invalid state");
      break;
    case v1::Event::kHeartbeat:
      if (!ValidState(event.heartbeat().state()))
        return Status::InvalidArgument(where + ": heartbeat with an invalid state");
      break;
    case v1::Event::kAgentStop:
      if (!ValidState(event.agent_stop().state()))
        return Status::InvalidArgument(where + ": agent stop with an invalid state");
      break;
    case v1::Event::kSessionMark:
      if (event.session_mark().kind() == v1::SessionMark::KIND_UNSPECIFIED)
        return Status::InvalidArgument(where + ": session mark without a kind");
      break;
    case v1::Event::BODY_NOT_SET:
      return Status::InvalidArgument(where + ": has no body (unknown event kind)");
  }
  return Status::Ok();
}

}  // namespace

Result<DecodedEnvelope> DecodeEnvelope(std::string_view bytes, const EnvelopeLimits& limits) {
  if (bytes.size() > limits.max_envelope_bytes)
    return Status::InvalidArgument("envelope of " + std::to_string(bytes.size()) +
                                   " bytes exceeds the limit of " +
                                   std::to_string(limits.max_envelope_bytes));
  DecodedEnvelope out;
  if (!out.envelope.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return Status::InvalidArgument("envelope is not a valid instrumeter.v1.Envelope");
  INSTRUMETER_RETURN_IF_ERROR(ValidateDeviceId(out.envelope.device_id()));
  if (out.envelope.first_sequence() == 0)
    return Status::InvalidArgument("envelope first_sequence is 0; sequences start at 1");
  v1::EventBatch batch;
  if (!batch.ParseFromString(out.envelope.payload()))
    return Status::InvalidArgument("envelope payload is not a valid EventBatch");
  out.envelope.clear_payload();
  if (batch.events_size() == 0) return Status::InvalidArgument("envelope carries no events");
  if (static_cast<size_t>(batch.events_size()) > limits.max_events)
    return Status::InvalidArgument("envelope carries " + std::to_string(batch.events_size()) +
                                   " events, more than the limit of " +
                                   std::to_string(limits.max_events));
  out.events.resize(static_cast<size_t>(batch.events_size()));
  out.event_bytes.reserve(out.events.size());
  for (int i = 0; i < batch.events_size(); ++i) {
    const uint64_t seq = out.envelope.first_sequence() + static_cast<uint64_t>(i);
    v1::Event& event = out.events[static_cast<size_t>(i)];
    if (!event.ParseFromString(batch.events(i)))
      return Status::InvalidArgument("event " + std::to_string(seq) + ": not a valid Event");
    INSTRUMETER_RETURN_IF_ERROR(CheckEvent(event, seq));
    out.event_bytes.push_back(std::move(*batch.mutable_events(i)));
  }
  return out;
}

Status CheckPlausibleTime(const v1::Event& event, int64_t receiver_wall_unix_ms) {
  const std::string where = "event " + std::to_string(event.sequence());
  const int64_t wall = event.at().wall_unix_ms();
  if (wall < kEarliestPlausibleWallMs)
    return Status::InvalidArgument(where + ": wall time " + std::to_string(wall) +
                                   " ms is before 2020-01-01");
  if (wall - receiver_wall_unix_ms > kMaxWallAheadMs)
    return Status::InvalidArgument(where + ": wall time " + std::to_string(wall) +
                                   " ms is more than 100 years ahead of the receiver's clock");
  if (event.at().monotonic_ms() < 0)
    return Status::InvalidArgument(where + ": negative monotonic time " +
                                   std::to_string(event.at().monotonic_ms()) + " ms");
  return Status::Ok();
}

std::string EncodeEnvelope(const std::string& device_id, const std::string& boot_id,
                           uint64_t first_sequence, const std::vector<std::string>& event_bytes,
                           const v1::Signature* signature) {
  v1::EventBatch batch;
  for (const std::string& e : event_bytes) batch.add_events(e);
  v1::Envelope env;
  env.set_device_id(device_id);
  env.set_first_sequence(first_sequence);
  env.set_boot_id(boot_id);
  env.set_payload(batch.SerializeAsString());
  if (signature != nullptr) *env.mutable_signature() = *signature;
  return env.SerializeAsString();
}

const char* StateName(v1::InstrumentState state) {
  switch (state) {
    case v1::INSTRUMENT_STATE_OFF:
      return "OFF";
    case v1::INSTRUMENT_STATE_IDLE:
      return "IDLE";
    case v1::INSTRUMENT_STATE_IN_USE:
      return "IN_USE";
    case v1::INSTRUMENT_STATE_FAULT:
      return "FAULT";
    case v1::INSTRUMENT_STATE_UNKNOWN:
      return "UNKNOWN";
    default:
      return "UNSPECIFIED";
  }
}

bool ParseStateName(std::string_view name, v1::InstrumentState* state) {
  std::string upper(name);
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  for (int s = v1::INSTRUMENT_STATE_OFF; s <= v1::INSTRUMENT_STATE_UNKNOWN; ++s) {
    const auto candidate = static_cast<v1::InstrumentState>(s);
    if (upper == StateName(candidate)) {
      *state = candidate;
      return true;
    }
  }
  return false;
}

bool IsObservationPoint(const v1::Event& event) {
  return event.has_state_change() || event.has_heartbeat() || event.has_agent_stop();
}

}  // namespace instrumeter::protocol
