// Writes the generated part of the seed corpus (envelope/ and ingest/) from realistic events: the
// backlog instrumeter-loadgen sends (a run start, heartbeats, state changes with consistent
// counters). Run by hand after a protocol change:  make_fuzz_seeds tests/fuzz/corpus
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "loadgen.h"
#include "protocol/codec.h"
#include "telemetry.pb.h"

namespace {

void Write(const std::filesystem::path& path, const std::string& bytes) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

// One message in the ingest harness's format.
std::string Message(int device, bool status, const std::string& payload) {
  std::string out;
  out += static_cast<char>((device << 1) | (status ? 1 : 0));
  out += static_cast<char>(payload.size() & 0xff);
  out += static_cast<char>((payload.size() >> 8) & 0xff);
  return out + payload;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_fuzz_seeds CORPUS_DIR\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  int64_t powered = 0;
  int64_t in_use = 0;
  const std::string boot = "6f1c1f0e-3a7b-4d2e-9c55-0a1b2c3d4e5f";
  const std::vector<std::string> events =
      instrumeter::loadgen::MakeBacklog(boot, 25, {}, &powered, &in_use);
  auto envelope = [&](const std::string& device, size_t first, size_t count) {
    std::vector<std::string> batch(events.begin() + static_cast<std::ptrdiff_t>(first - 1),
                                   events.begin() + static_cast<std::ptrdiff_t>(first - 1 + count));
    return instrumeter::protocol::EncodeEnvelope(device, boot, first, batch);
  };
  Write(dir / "envelope/run_start_single", envelope("fuzz-0", 1, 1));
  Write(dir / "envelope/heartbeats_batch", envelope("fuzz-0", 2, 9));
  Write(dir / "envelope/state_changes_batch", envelope("fuzz-0", 9, 13));
  Write(dir / "envelope/whole_run", envelope("sh-fudan-nmr-600", 1, 25));

  instrumeter::v1::DeviceStatus online;
  online.set_online(true);
  online.set_agent_version("0.1.0");
  online.set_since_unix_ms(1'767'225'600'000);
  Write(dir / "ingest/in_order", Message(0, true, online.SerializeAsString()) +
                                     Message(0, false, envelope("fuzz-0", 1, 5)) +
                                     Message(0, false, envelope("fuzz-0", 6, 5)));
  Write(dir / "ingest/gap_then_resend", Message(1, false, envelope("fuzz-1", 1, 3)) +
                                            Message(1, false, envelope("fuzz-1", 8, 4)) +
                                            Message(1, false, envelope("fuzz-1", 4, 8)));
  Write(dir / "ingest/duplicates_and_replay", Message(2, false, envelope("fuzz-2", 1, 10)) +
                                                  Message(2, false, envelope("fuzz-2", 1, 10)) +
                                                  Message(2, false, envelope("fuzz-2", 5, 3)));
  Write(dir / "ingest/topic_mismatch", Message(3, false, envelope("fuzz-0", 1, 2)));
  std::printf("seeds written under %s\n", dir.c_str());
  return 0;
}
