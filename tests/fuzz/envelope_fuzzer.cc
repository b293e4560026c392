// libFuzzer harness: the uplink envelope decoder, the first code that touches untrusted bytes at
// the hub. It must return a Status for anything, never crash, and what it accepts must keep the
// invariants the hub relies on.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "protocol/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto decoded = instrumeter::protocol::DecodeEnvelope(bytes);
  if (!decoded.ok()) return 0;
  // Accepted: one exact byte string per event, consecutive sequences from first_sequence.
  if (decoded->events.size() != decoded->event_bytes.size()) std::abort();
  for (size_t i = 0; i < decoded->events.size(); ++i)
    if (decoded->events[i].sequence() != decoded->envelope.first_sequence() + i) std::abort();
  // Re-encoding around the same event bytes must decode to the same events.
  const std::string again = instrumeter::protocol::EncodeEnvelope(
      decoded->envelope.device_id(), decoded->envelope.boot_id(),
      decoded->envelope.first_sequence(), decoded->event_bytes);
  auto redecoded = instrumeter::protocol::DecodeEnvelope(again);
  if (!redecoded.ok() || redecoded->event_bytes != decoded->event_bytes) std::abort();
  return 0;
}
