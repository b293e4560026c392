// libFuzzer harness: the hub's ingest core over a real SQLite store in memory, fed a sequence of
// (topic, payload) messages as the broker would hand them over. Input format, repeated:
//   1 byte  topic: bit 0 = status (else up), bits 1-2 = device fuzz-0..3 (3 = a topic whose id
//           differs from any envelope's), bits 3-7 ignored
//   2 bytes payload length (little-endian), then the payload
// After the messages the batch is flushed. Invariants checked: no crash, no sanitizer finding, no
// ack above what was stored, and the acked sequence never goes back.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>

#include "common/clock.h"
#include "hub/ingestor.h"
#include "hub/sqlite_store.h"
#include "protocol/topics.h"

namespace {

using instrumeter::Status;

class RecordingDownlink : public instrumeter::hub::Downlink {
 public:
  Status SendAck(const std::string& device_id, uint64_t sequence) override {
    uint64_t& last = acked[device_id];
    if (sequence < last) std::abort();  // an ack never goes back
    last = sequence;
    return Status::Ok();
  }
  Status SendResend(const std::string&, uint64_t from, uint64_t to) override {
    if (from > to) std::abort();
    return Status::Ok();
  }
  std::map<std::string, uint64_t> acked;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto store = instrumeter::hub::OpenSqliteStore({.path = ":memory:"});
  if (!store.ok()) std::abort();
  instrumeter::FakeClock clock;
  instrumeter::hub::HubMetrics metrics;
  RecordingDownlink downlink;
  instrumeter::hub::IngestOptions options;
  options.accept_unregistered_devices = true;
  options.max_batch_events = 16;  // small batches: several commits per input
  auto ingestor =
      instrumeter::hub::Ingestor::Create(store->get(), &downlink, &clock, &metrics, options);
  if (!ingestor.ok()) std::abort();

  size_t at = 0;
  while (at + 3 <= size) {
    const uint8_t selector = data[at];
    const size_t length = data[at + 1] | (static_cast<size_t>(data[at + 2]) << 8);
    at += 3;
    const size_t take = length < size - at ? length : size - at;
    const std::string device = "fuzz-" + std::to_string((selector >> 1) & 3);
    const std::string topic = instrumeter::protocol::Topic(
        device, (selector & 1) != 0 ? instrumeter::protocol::Channel::kStatus
                                    : instrumeter::protocol::Channel::kUp);
    (*ingestor)->OnMessage(topic, std::string_view(reinterpret_cast<const char*>(data + at), take),
                           clock.WallUnixMs());
    at += take;
    clock.Advance(7);
    (*ingestor)->Poll();
  }
  if (!(*ingestor)->Flush().ok()) std::abort();  // memory never fills up here
  // Nothing acknowledged beyond what the store holds for that device.
  auto devices = (*store)->LoadDevices();
  if (!devices.ok()) std::abort();
  for (const auto& loaded : *devices) {
    auto it = downlink.acked.find(loaded.record.device_id);
    if (it != downlink.acked.end() && it->second > loaded.record.contiguous_seq) std::abort();
  }
  return 0;
}
