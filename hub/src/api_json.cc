#include "api_json.h"

#include <algorithm>
#include <cmath>

#include "common/clock.h"
#include "protocol/codec.h"

namespace instrumeter::hub {
namespace {

using nlohmann::json;

std::vector<std::string> FlagNames(uint32_t flags) {
  std::vector<std::string> names;
  const std::string text = FlagsToString(flags);
  size_t start = 0;
  while (start < text.size()) {
    const size_t comma = text.find(',', start);
    names.push_back(text.substr(start, comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return names;
}

}  // namespace

double Round3(double seconds) { return std::round(seconds * 1000.0) / 1000.0; }

void PutTime(json* j, const std::string& name, int64_t unix_ms) {
  (*j)[name] = unix_ms == 0 ? json(nullptr) : json(FormatUtc(unix_ms));
  (*j)[name + "_unix_ms"] = unix_ms == 0 ? json(nullptr) : json(unix_ms);
}

std::optional<HttpResponse> OnlyParameters(const HttpRequest& request,
                                           const std::set<std::string>& known) {
  for (const auto& [name, value] : request.query) {
    if (known.count(name) > 0) continue;
    std::string expected;
    for (const std::string& k : known) expected += (expected.empty() ? "" : ", ") + k;
    return BadParameter(name, known.empty() ? "this endpoint takes no parameters"
                                            : "unknown (expected " + expected + ")");
  }
  return std::nullopt;
}

std::optional<HttpResponse> TimeParameter(const HttpRequest& request, const std::string& name,
                                          int64_t* unix_ms, bool* present) {
  auto it = request.query.find(name);
  *present = it != request.query.end();
  if (!*present) return std::nullopt;
  if (!ParseUtc(it->second, unix_ms))
    return BadParameter(name, "not an ISO 8601 time ('" + it->second +
                                  "'; e.g. 2026-01-01T08:00:00+08:00, 2026-01-01T00:00:00Z or "
                                  "2026-01-01)");
  return std::nullopt;
}

Result<ClippedTimeline> ReadClippedTimeline(Store* store, const std::string& instrument_id,
                                            int64_t from_unix_ms, int64_t to_unix_ms,
                                            const LiveState& live) {
  Result<std::vector<DeviceInterval>> rows =
      store->ReadIntervals(instrument_id, from_unix_ms, to_unix_ms);
  if (!rows.ok()) return rows.status();
  ClippedTimeline out;
  for (const DeviceInterval& di : *rows) {
    const Interval& iv = di.interval;
    const int64_t start = std::max(iv.start_wall_unix_ms, from_unix_ms);
    const int64_t end = std::min(iv.end_wall_unix_ms(), to_unix_ms);
    if (end <= start) continue;
    const double seconds = static_cast<double>(end - start) / 1000.0;
    json j = {{"kind", IntervalKindName(iv.kind)}};
    if (iv.kind == IntervalKind::kState) {
      j["state"] = protocol::StateName(iv.state);
      if (protocol::IsPowered(iv.state)) out.powered_seconds += seconds;
      if (protocol::IsInUse(iv.state)) out.in_use_seconds += seconds;
    } else {
      out.gap_seconds += seconds;
    }
    PutTime(&j, "start", start);
    PutTime(&j, "end", end);
    j["duration_seconds"] = Round3(seconds);
    j["clipped"] = start != iv.start_wall_unix_ms || end != iv.end_wall_unix_ms();
    // The open run's interval: it grows with every heartbeat.
    j["open"] = iv.kind == IntervalKind::kState && live.state != v1::INSTRUMENT_STATE_UNSPECIFIED &&
                iv.state == live.state && iv.start_wall_unix_ms == live.state_since_wall_ms;
    j["flags"] = FlagNames(iv.flags);
    out.intervals.push_back(std::move(j));
  }
  out.powered_seconds = Round3(out.powered_seconds);
  out.in_use_seconds = Round3(out.in_use_seconds);
  out.gap_seconds = Round3(out.gap_seconds);
  return out;
}

}  // namespace instrumeter::hub
