#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace instrumeter::agent {
namespace {

constexpr uint32_t kMagic = 0x4b434d49;  // "IMCK" read as little-endian
constexpr uint16_t kFormat = 1;
constexpr size_t kCrcOffset = CheckpointFile::kSlotBytes - 4;

using Slot = std::array<unsigned char, CheckpointFile::kSlotBytes>;

constexpr std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}

// CRC-32 (IEEE 802.3, as zlib computes it).
uint32_t Crc32(const unsigned char* data, size_t size) {
  static constexpr std::array<uint32_t, 256> kTable = MakeCrcTable();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) c = kTable[(c ^ data[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

void Put(Slot& slot, size_t offset, uint64_t value, size_t bytes) {
  for (size_t i = 0; i < bytes; ++i)
    slot[offset + i] = static_cast<unsigned char>(value >> (8 * i));
}

uint64_t Get(const Slot& slot, size_t offset, size_t bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < bytes; ++i) value |= static_cast<uint64_t>(slot[offset + i]) << (8 * i);
  return value;
}

Slot Encode(const CheckpointData& data, uint64_t generation) {
  Slot slot{};
  Put(slot, 0, kMagic, 4);
  Put(slot, 4, kFormat, 2);
  Put(slot, 8, generation, 8);
  Put(slot, 16, static_cast<uint64_t>(data.horizon.monotonic_ms), 8);
  Put(slot, 24, static_cast<uint64_t>(data.horizon.wall_unix_ms), 8);
  Put(slot, 32, data.counters.powered_ms, 8);
  Put(slot, 40, data.counters.in_use_ms, 8);
  Put(slot, 48, static_cast<uint64_t>(data.since_wall_unix_ms), 8);
  Put(slot, 56, static_cast<uint32_t>(data.state), 4);
  Put(slot, 60, data.horizon.boot_id.size(), 4);
  std::memcpy(slot.data() + 64, data.horizon.boot_id.data(), data.horizon.boot_id.size());
  Put(slot, kCrcOffset, Crc32(slot.data(), kCrcOffset), 4);
  return slot;
}

// A slot is believed only if magic, format, CRC and every field's range check out.
std::optional<CheckpointData> Decode(const Slot& slot, uint64_t* generation) {
  if (Get(slot, 0, 4) != kMagic || Get(slot, 4, 2) != kFormat) return std::nullopt;
  if (Get(slot, kCrcOffset, 4) != Crc32(slot.data(), kCrcOffset)) return std::nullopt;
  const uint64_t boot_len = Get(slot, 60, 4);
  const uint64_t state = Get(slot, 56, 4);
  if (boot_len > CheckpointFile::kMaxBootIdBytes ||
      !v1::InstrumentState_IsValid(static_cast<int>(state)))
    return std::nullopt;
  CheckpointData data;
  *generation = Get(slot, 8, 8);
  data.horizon.monotonic_ms = static_cast<int64_t>(Get(slot, 16, 8));
  data.horizon.wall_unix_ms = static_cast<int64_t>(Get(slot, 24, 8));
  data.counters.powered_ms = Get(slot, 32, 8);
  data.counters.in_use_ms = Get(slot, 40, 8);
  data.since_wall_unix_ms = static_cast<int64_t>(Get(slot, 48, 8));
  data.state = static_cast<v1::InstrumentState>(state);
  data.horizon.boot_id.assign(reinterpret_cast<const char*>(slot.data() + 64), boot_len);
  return data;
}

std::string Errno(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

// The newest valid slot of an open file; a short file just has fewer valid slots.
Result<std::optional<CheckpointData>> ReadNewest(int fd, const std::string& path,
                                                 uint64_t* generation) {
  std::optional<CheckpointData> newest;
  *generation = 0;
  for (size_t i = 0; i < 2; ++i) {
    Slot slot{};
    const ssize_t n = ::pread(fd, slot.data(), slot.size(), static_cast<off_t>(i * slot.size()));
    if (n < 0) return Status::IoError(Errno("cannot read checkpoint", path));
    if (static_cast<size_t>(n) != slot.size()) continue;
    uint64_t gen = 0;
    std::optional<CheckpointData> data = Decode(slot, &gen);
    if (data && (!newest || gen > *generation)) {
      newest = std::move(data);
      *generation = gen;
    }
  }
  return newest;
}

#ifdef INSTRUMETER_FAULT_HOOKS
uint64_t CrashInWriteFromEnv() {
  const char* fault = std::getenv("INSTRUMETER_FAULT");
  const std::string_view prefix = "crash_in_checkpoint:";
  if (fault == nullptr || std::string_view(fault).substr(0, prefix.size()) != prefix) return 0;
  return std::strtoull(fault + prefix.size(), nullptr, 10);
}
#endif

}  // namespace

Result<std::unique_ptr<CheckpointFile>> CheckpointFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return Status::IoError(Errno("cannot open checkpoint", path));
  std::unique_ptr<CheckpointFile> file(new CheckpointFile(fd, path));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      return Status::FailedPrecondition("checkpoint " + path +
                                        " is locked: another agent runs with this state_dir");
    return Status::IoError(Errno("cannot lock checkpoint", path));
  }
  auto newest = ReadNewest(fd, path, &file->generation_);
  if (!newest.ok()) return newest.status();
  file->last_ = std::move(*newest);
#ifdef INSTRUMETER_FAULT_HOOKS
  file->crash_in_write_ = CrashInWriteFromEnv();
#endif
  // Fixed size from the start, so that later writes never allocate (they work on a full disk).
  if (::ftruncate(fd, static_cast<off_t>(kFileBytes)) != 0)
    return Status::IoError(Errno("cannot size checkpoint", path));
  return file;
}

Result<std::optional<CheckpointData>> CheckpointFile::Read(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<CheckpointData>();
    return Status::IoError(Errno("cannot open checkpoint", path));
  }
  uint64_t generation = 0;
  auto newest = ReadNewest(fd, path, &generation);
  ::close(fd);
  return newest;
}

CheckpointFile::~CheckpointFile() { ::close(fd_); }

Status CheckpointFile::Write(const CheckpointData& data) {
  if (data.horizon.boot_id.size() > kMaxBootIdBytes)
    return Status::InvalidArgument("checkpoint " + path_ + ": boot id '" + data.horizon.boot_id +
                                   "' is longer than " + std::to_string(kMaxBootIdBytes) +
                                   " bytes");
  const uint64_t generation = generation_ + 1;
  const Slot slot = Encode(data, generation);
  const off_t offset = static_cast<off_t>((generation % 2) * kSlotBytes);
#ifdef INSTRUMETER_FAULT_HOOKS
  if (crash_in_write_ > 0 && ++writes_ == crash_in_write_) {
    (void)::pwrite(fd_, slot.data(), slot.size() / 2, offset);
    _exit(137);
  }
#endif
  const ssize_t n = ::pwrite(fd_, slot.data(), slot.size(), offset);
  if (n != static_cast<ssize_t>(slot.size()))
    return Status::IoError(Errno("cannot write checkpoint", path_));
  generation_ = generation;
  last_ = data;
  return Status::Ok();
}

}  // namespace instrumeter::agent
