#include "common/clock.h"

#include <time.h>

#include <cstdio>
#include <fstream>

namespace instrumeter {
namespace {

int64_t ReadClockMs(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

SystemClock::SystemClock() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::getline(in, boot_id_);
  if (boot_id_.empty()) boot_id_ = "unknown-boot";
}

int64_t SystemClock::MonotonicMs() const { return ReadClockMs(CLOCK_MONOTONIC); }
int64_t SystemClock::WallUnixMs() const { return ReadClockMs(CLOCK_REALTIME); }

std::string FormatUtc(int64_t wall_unix_ms) {
  int64_t secs = wall_unix_ms / 1000;
  int64_t ms = wall_unix_ms % 1000;
  if (ms < 0) {
    ms += 1000;
    secs -= 1;
  }
  time_t t = static_cast<time_t>(secs);
  tm utc{};
  gmtime_r(&t, &utc);
  char buf[80];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(ms));
  return buf;
}

bool ParseUtc(const std::string& text, int64_t* wall_unix_ms) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2d%n", &y, &mo, &d, &consumed) != 3 || consumed != 10)
    return false;
  if (mo < 1 || mo > 12 || d < 1 || d > 31) return false;
  size_t pos = 10;
  int64_t frac_ms = 0;
  int64_t offset_min = 0;
  if (pos < text.size()) {
    if (text[pos] != 'T' && text[pos] != ' ') return false;
    int n = 0;
    if (std::sscanf(text.c_str() + pos + 1, "%2d:%2d:%2d%n", &h, &mi, &s, &n) != 3 || n != 8)
      return false;
    if (h > 23 || mi > 59 || s > 60) return false;
    pos += 1 + 8;
    if (pos < text.size() && text[pos] == '.') {
      ++pos;
      int64_t scale = 100;
      while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
        frac_ms += (text[pos] - '0') * scale;
        scale /= 10;
        ++pos;
      }
    }
    if (pos >= text.size()) return false;  // a time needs an explicit offset
    if (text[pos] == 'Z' || text[pos] == 'z') {
      ++pos;
    } else if (text[pos] == '+' || text[pos] == '-') {
      int oh = 0, om = 0;
      if (std::sscanf(text.c_str() + pos + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5)
        return false;
      offset_min = (oh * 60 + om) * (text[pos] == '-' ? -1 : 1);
      pos += 6;
    } else {
      return false;
    }
    if (pos != text.size()) return false;
  }
  const int64_t days = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  const int64_t secs = days * 86400 + h * 3600 + mi * 60 + s - offset_min * 60;
  *wall_unix_ms = secs * 1000 + frac_ms;
  return true;
}

}  // namespace instrumeter
