// Time as instrumeter sees it: a monotonic clock for measuring, a wall clock for placing, and the
// boot id that says which monotonic clock a reading belongs to (DESIGN rule 4).
//
// Clock is injectable so that tests can step time and jump the wall clock. Implementations are
// thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace instrumeter {

// One reading of all three, taken together.
struct Instant {
  int64_t monotonic_ms = 0;  // CLOCK_MONOTONIC: comparable only within one boot
  int64_t wall_unix_ms = 0;  // UTC wall clock; may jump (NTP, manual change)
  std::string boot_id;       // /proc/sys/kernel/random/boot_id

  bool SameBoot(const Instant& other) const { return boot_id == other.boot_id; }
  friend bool operator==(const Instant&, const Instant&) = default;
};

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t MonotonicMs() const = 0;
  virtual int64_t WallUnixMs() const = 0;
  virtual std::string BootId() const = 0;

  Instant Now() const { return Instant{MonotonicMs(), WallUnixMs(), BootId()}; }
};

// The machine's clocks. The boot id is read once, at construction.
class SystemClock : public Clock {
 public:
  SystemClock();
  int64_t MonotonicMs() const override;
  int64_t WallUnixMs() const override;
  std::string BootId() const override { return boot_id_; }

 private:
  std::string boot_id_;
};

// A clock that moves only when told; for tests.
class FakeClock : public Clock {
 public:
  explicit FakeClock(int64_t monotonic_ms = 1'000'000, int64_t wall_unix_ms = 1'767'225'600'000,
                     std::string boot_id = "00000000-0000-0000-0000-000000000001")
      : mono_(monotonic_ms), wall_(wall_unix_ms), boot_id_(std::move(boot_id)) {}

  int64_t MonotonicMs() const override { return mono_.load(); }
  int64_t WallUnixMs() const override { return wall_.load(); }
  std::string BootId() const override { return boot_id_; }

  // Both clocks move forward together, as real time does.
  void Advance(int64_t ms) {
    mono_ += ms;
    wall_ += ms;
  }
  // Only the wall clock moves: an NTP step or a manual change.
  void JumpWall(int64_t ms) { wall_ += ms; }
  // A reboot: a new boot id and a monotonic clock that starts again.
  void Reboot(std::string boot_id, int64_t monotonic_ms) {
    boot_id_ = std::move(boot_id);
    mono_ = monotonic_ms;
  }

 private:
  std::atomic<int64_t> mono_;
  std::atomic<int64_t> wall_;
  std::string boot_id_;  // changed only by Reboot, from the test's thread
};

// Formats a UTC time as ISO 8601 with milliseconds: 2026-11-29T21:34:13.250Z.
std::string FormatUtc(int64_t wall_unix_ms);

// Parses ISO 8601 / RFC 3339 ("2026-11-29T08:00:00+08:00", "2026-11-29T00:00:00Z", or a date
// "2026-11-29", meaning midnight UTC). Returns false on anything else.
bool ParseUtc(const std::string& text, int64_t* wall_unix_ms);

}  // namespace instrumeter
