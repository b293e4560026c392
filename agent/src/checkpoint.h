// The checkpoint (state_dir/checkpoint): the meter's last settled point, written after every poll
// so that a crash loses at most one poll interval of observed time.
//
// Format (little-endian), fixed at 256 bytes: two 128-byte slots written alternately with pwrite.
// Each slot: magic "IMCK" u32 | format u16 (1) | reserved u16 | generation u64 | monotonic_ms i64 |
// wall_unix_ms i64 | powered_ms u64 | in_use_ms u64 | since_wall_unix_ms i64 | state i32 |
// boot_id length u32 | boot_id [56] | reserved u32 | crc32 u32 over the 124 bytes before it.
// A reader takes the valid slot with the highest generation, so a write torn by SIGKILL (or a
// crash of the machine) leaves the previous slot in force. No fsync: the page cache survives a
// process crash, and a machine crash only loses time since the last flush, never adds any.
//
// The open file also carries an exclusive flock: two agents on one state_dir are refused.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "state_meter.h"

namespace instrumeter::agent {

struct CheckpointData {
  Instant horizon;                                               // H: the last settled observation
  Counters counters;                                             // C through H
  v1::InstrumentState state = v1::INSTRUMENT_STATE_UNSPECIFIED;  // S at H
  int64_t since_wall_unix_ms = 0;                                // when S was entered, for `status`
  friend bool operator==(const CheckpointData&, const CheckpointData&) = default;
};

class CheckpointFile {
 public:
  static constexpr size_t kSlotBytes = 128;
  static constexpr size_t kFileBytes = 2 * kSlotBytes;
  static constexpr size_t kMaxBootIdBytes = 56;

  // Opens the file for writing, creating it if missing, and locks it. FailedPrecondition if
  // another process holds the lock.
  static Result<std::unique_ptr<CheckpointFile>> Open(const std::string& path);
  // Reads the newest valid slot without creating or locking anything (for `status`); nullopt when
  // the file is missing or holds no valid slot.
  static Result<std::optional<CheckpointData>> Read(const std::string& path);

  ~CheckpointFile();
  CheckpointFile(const CheckpointFile&) = delete;
  CheckpointFile& operator=(const CheckpointFile&) = delete;

  // What the file held when opened (nullopt: nothing valid), then the last successful Write.
  const std::optional<CheckpointData>& last() const { return last_; }
  // Overwrites the older slot. Called from the agent's loop only.
  Status Write(const CheckpointData& data);

 private:
  CheckpointFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}

  int fd_;
  std::string path_;
  uint64_t generation_ = 0;  // of the newest valid slot
  std::optional<CheckpointData> last_;
#ifdef INSTRUMETER_FAULT_HOOKS
  // INSTRUMETER_FAULT=crash_in_checkpoint:N: the Nth Write of this run writes the first half of
  // its slot and then _exit(137)s, the torn write a SIGKILL or power cut can leave.
  uint64_t crash_in_write_ = 0;
  uint64_t writes_ = 0;
#endif
};

}  // namespace instrumeter::agent
