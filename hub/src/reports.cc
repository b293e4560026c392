#include "hub/reports.h"

#include <algorithm>
#include <map>

#include "protocol/codec.h"

namespace instrumeter::hub {
namespace {

constexpr char kUnregistered[] = "(unregistered)";

double Seconds(double ms) { return ms / 1000.0; }

}  // namespace

const char* LiveStateName(v1::InstrumentState state) {
  return state == v1::INSTRUMENT_STATE_UNSPECIFIED ? "NOT_OBSERVED" : protocol::StateName(state);
}

Result<std::vector<HoursRow>> ComputeHours(Store* store, int64_t from_unix_ms, int64_t to_unix_ms,
                                           const std::string& instrument_id) {
  if (to_unix_ms <= from_unix_ms)
    return Status::InvalidArgument("the range end must be after its start");
  Result<std::vector<Instrument>> instruments = store->ListInstruments();
  if (!instruments.ok()) return instruments.status();
  Result<std::vector<DeviceInterval>> intervals =
      store->ReadIntervals(instrument_id, from_unix_ms, to_unix_ms);
  if (!intervals.ok()) return intervals.status();

  std::map<std::string, HoursRow> rows;
  for (const Instrument& in : *instruments) {
    if (!instrument_id.empty() && in.instrument_id != instrument_id) continue;
    rows[in.instrument_id] = HoursRow{.instrument_id = in.instrument_id, .name = in.name};
  }
  for (const DeviceInterval& di : *intervals) {
    auto [it, added] = rows.try_emplace(di.device_id);
    HoursRow& row = it->second;
    if (added) {
      row.instrument_id = di.device_id;
      row.name = kUnregistered;
    }
    const Interval& iv = di.interval;
    const int64_t start = std::max(iv.start_wall_unix_ms, from_unix_ms);
    const int64_t end = std::min(iv.end_wall_unix_ms(), to_unix_ms);
    if (end <= start || iv.duration_ms <= 0) continue;
    const double overlap_ms = static_cast<double>(end - start);
    const double share = overlap_ms / static_cast<double>(iv.duration_ms);
    if (iv.kind == IntervalKind::kGap) {
      row.gap_seconds += Seconds(overlap_ms);
    } else {
      if (protocol::IsPowered(iv.state)) row.powered_seconds += Seconds(overlap_ms);
      if (protocol::IsInUse(iv.state)) row.in_use_seconds += Seconds(overlap_ms);
    }
    // Signed: a counter that went backwards must show, not wrap.
    const double powered_delta =
        static_cast<double>(static_cast<int64_t>(iv.end_powered_ms - iv.start_powered_ms));
    const double in_use_delta =
        static_cast<double>(static_cast<int64_t>(iv.end_in_use_ms - iv.start_in_use_ms));
    row.counter_powered_seconds += Seconds(powered_delta * share);
    row.counter_in_use_seconds += Seconds(in_use_delta * share);
    if ((iv.flags & kFlagCounterMismatch) != 0) row.counter_mismatch = true;
  }
  if (!instrument_id.empty() && rows.empty())
    return Status::NotFound("instrument '" + instrument_id +
                            "' is not registered and has no telemetry");
  std::vector<HoursRow> out;
  out.reserve(rows.size());
  for (auto& [id, row] : rows) out.push_back(std::move(row));
  return out;
}

Result<std::vector<StatusRow>> ComputeStatus(Store* store) {
  Result<std::vector<Instrument>> instruments = store->ListInstruments();
  if (!instruments.ok()) return instruments.status();
  Result<std::vector<LoadedDevice>> devices = store->LoadDevices();
  if (!devices.ok()) return devices.status();
  Result<std::vector<DurationSum>> sums = store->SumDurations();
  if (!sums.ok()) return sums.status();

  std::map<std::string, StatusRow> rows;
  for (const Instrument& in : *instruments)
    rows[in.instrument_id] =
        StatusRow{.instrument_id = in.instrument_id, .name = in.name, .city = in.city};
  for (const LoadedDevice& dev : *devices) {
    const DeviceRecord& r = dev.record;
    // A device row of an unregistered id exists only if its telemetry was accepted.
    auto [it, added] = rows.try_emplace(r.device_id);
    StatusRow& row = it->second;
    if (added) {
      row.instrument_id = r.device_id;
      row.name = kUnregistered;
      row.registered = false;
    }
    row.state = r.live.state;
    row.state_since_wall_ms = r.live.state_since_wall_ms;
    row.events_stored = r.events_stored;
    row.online = r.live.online;
    row.last_seen_unix_ms = r.live.last_seen_unix_ms;
  }
  for (const DurationSum& sum : *sums) {
    auto it = rows.find(sum.device_id);
    if (it == rows.end() || sum.kind != IntervalKind::kState) continue;
    if (protocol::IsPowered(sum.state))
      it->second.powered_seconds += Seconds(static_cast<double>(sum.duration_ms));
    if (protocol::IsInUse(sum.state))
      it->second.in_use_seconds += Seconds(static_cast<double>(sum.duration_ms));
  }
  std::vector<StatusRow> out;
  out.reserve(rows.size());
  for (auto& [id, row] : rows) out.push_back(std::move(row));
  return out;
}

}  // namespace instrumeter::hub
