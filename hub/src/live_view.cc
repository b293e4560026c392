#include "hub/live_view.h"

#include <algorithm>
#include <limits>

#include "protocol/codec.h"

namespace instrumeter::hub {
namespace {

// An upper bound for "the end of time" that survives additions without overflow.
constexpr int64_t kFarFuture = std::numeric_limits<int64_t>::max() / 4;

// True when the interval lies wholly before `day_start` (a zero-length one at midnight is today's).
bool EndedBefore(const Interval& iv, int64_t day_start) {
  return iv.start_wall_unix_ms < day_start && iv.end_wall_unix_ms() <= day_start;
}

}  // namespace

BookingsNow BookingsAt(const InstrumentView& view, int64_t now_unix_ms) {
  BookingsNow out;
  for (const BookingBrief& b : view.bookings) {
    if (b.end_unix_ms <= now_unix_ms) continue;
    if (b.start_unix_ms <= now_unix_ms) {
      out.current = &b;
      continue;
    }
    if (b.start_unix_ms < now_unix_ms + kBookingHorizonMs) out.next = &b;
    break;
  }
  return out;
}

bool FreeNow(const InstrumentView& view, const BookingsNow& bookings) {
  return bookings.current == nullptr && !protocol::IsInUse(view.live.state);
}

int64_t UtcDayStart(int64_t unix_ms) {
  const int64_t floored = unix_ms / kDayMs * kDayMs;
  return floored > unix_ms ? floored - kDayMs : floored;  // negative times round down too
}

Result<std::unique_ptr<LiveView>> LiveView::Load(Store* store, const Clock* clock,
                                                 int64_t registry_refresh_ms) {
  std::unique_ptr<LiveView> view(new LiveView(store, clock, registry_refresh_ms));
  INSTRUMETER_RETURN_IF_ERROR(view->Reload());
  return view;
}

Status LiveView::Reload() {
  day_start_ms_ = UtcDayStart(clock_->WallUnixMs());
  Result<std::vector<Instrument>> registry = store_->ListInstruments();
  if (!registry.ok()) return registry.status().WithContext("live view: reading the registry");
  Result<std::vector<LoadedDevice>> devices = store_->LoadDevices();
  if (!devices.ok()) return devices.status().WithContext("live view: reading device rows");
  Result<std::vector<DeviceInterval>> intervals =
      store_->ReadIntervals("", day_start_ms_, kFarFuture);
  if (!intervals.ok()) return intervals.status().WithContext("live view: reading intervals");

  std::map<std::string, InstrumentView> fresh;
  for (Instrument& in : *registry) {
    const std::string id = in.instrument_id;
    fresh[id].instrument = std::move(in);
  }
  for (LoadedDevice& dev : *devices) {
    auto [it, added] = fresh.try_emplace(dev.record.device_id);
    InstrumentView& view = it->second;
    if (added) {
      view.instrument.instrument_id = dev.record.device_id;
      view.registered = false;
    }
    view.has_device = true;
    view.contiguous_seq = dev.record.contiguous_seq;
    view.events_stored = dev.record.events_stored;
    view.live = dev.record.live;
    if (auto old = instruments_.find(it->first); old != instruments_.end())
      view.health = old->second.health;
  }
  for (DeviceInterval& di : *intervals) {
    auto it = fresh.find(di.device_id);
    if (it != fresh.end()) KeepRecent(&it->second, di.interval);
  }
  for (auto& [id, view] : fresh) Total(&view);
  instruments_ = std::move(fresh);
  registry_read_mono_ms_ = clock_->MonotonicMs();
  registry_stale_ = false;
  return ReloadBookings();
}

Status LiveView::ReloadBookings() {
  const int64_t now = clock_->WallUnixMs();
  // The version first: a change that lands between the two reads is read again next time.
  Result<int64_t> version = store_->BookingsVersion();
  if (!version.ok()) return version.status().WithContext("live view: reading bookings");
  Result<std::vector<Booking>> bookings =
      store_->ListBookings({.from_unix_ms = now, .to_unix_ms = now + kBookingHorizonMs + kDayMs});
  if (!bookings.ok()) return bookings.status().WithContext("live view: reading bookings");
  bookings_version_ = *version;
  bookings_read_wall_ms_ = now;
  for (auto& [id, view] : instruments_) view.bookings.clear();
  // ListBookings orders by instrument and start.
  for (Booking& b : *bookings) {
    auto it = instruments_.find(b.instrument_id);
    if (it == instruments_.end()) continue;
    it->second.bookings.push_back({std::move(b.order_id), std::move(b.customer.organisation),
                                   b.remote, b.start_unix_ms, b.end_unix_ms});
  }
  return Status::Ok();
}

Status LiveView::Refresh() {
  const int64_t today = UtcDayStart(clock_->WallUnixMs());
  if (today != day_start_ms_) {
    day_start_ms_ = today;
    PruneRecent();
  }
  if (registry_stale_ || clock_->MonotonicMs() - registry_read_mono_ms_ >= registry_refresh_ms_) {
    INSTRUMETER_RETURN_IF_ERROR(RefreshRegistry());
    // Imports by the CLI (another process) show at the registry's pace; while nothing changed
    // this costs one single-row read.
    Result<int64_t> version = store_->BookingsVersion();
    if (!version.ok()) return version.status().WithContext("live view: reading bookings");
    if (*version != bookings_version_) return ReloadBookings();
  }
  // What was read reaches a day beyond the horizon: read again before that runs out.
  if (clock_->WallUnixMs() - bookings_read_wall_ms_ >= kDayMs) return ReloadBookings();
  return Status::Ok();
}

Status LiveView::RefreshRegistry() {
  Result<std::vector<Instrument>> registry = store_->ListInstruments();
  if (!registry.ok()) return registry.status().WithContext("live view: reading the registry");
  registry_read_mono_ms_ = clock_->MonotonicMs();
  registry_stale_ = false;
  for (Instrument& in : *registry) {
    InstrumentView& view = instruments_[in.instrument_id];
    view.registered = true;
    view.instrument = std::move(in);
  }
  return Status::Ok();
}

void LiveView::KeepRecent(InstrumentView* view, const Interval& interval) const {
  const auto key = std::make_pair(interval.kind, interval.start_seq);
  if (EndedBefore(interval, day_start_ms_)) {
    view->recent.erase(key);  // a rewrite of an interval that ended before today
    return;
  }
  view->recent[key] = interval;
}

void LiveView::PruneRecent() {
  for (auto& [id, view] : instruments_) {
    std::erase_if(view.recent,
                  [&](const auto& entry) { return EndedBefore(entry.second, day_start_ms_); });
    Total(&view);
  }
}

std::vector<LiveEvent> LiveView::Apply(const std::vector<LiveChange>& changes) {
  std::vector<LiveEvent> events;
  for (const LiveChange& change : changes) {
    auto [it, added] = instruments_.try_emplace(change.device_id);
    InstrumentView& view = it->second;
    if (added) {
      // Registered since the registry was read, or accepted unregistered: the registry decides.
      view.instrument.instrument_id = change.device_id;
      view.registered = false;
      registry_stale_ = true;
    }
    const LiveState before = view.live;
    const bool had_device = view.has_device;
    view.has_device = true;
    view.contiguous_seq = change.contiguous_seq;
    view.events_stored = change.events_stored;
    view.live = change.live;
    for (const Interval& interval : change.intervals) KeepRecent(&view, interval);
    if (!change.intervals.empty()) Total(&view);
    if (change.health.has_value() &&
        (!view.health.has_value() || change.health->seq >= view.health->seq))
      view.health = change.health;

    if (!had_device || before.state != view.live.state ||
        before.state_since_wall_ms != view.live.state_since_wall_ms) {
      if (had_device || view.live.state != v1::INSTRUMENT_STATE_UNSPECIFIED)
        events.push_back({LiveEvent::Kind::kState, change.device_id, before.state, std::nullopt});
    }
    if (before.online != view.live.online)
      events.push_back({LiveEvent::Kind::kOnline, change.device_id, before.state, before.online});
  }
  return events;
}

const InstrumentView* LiveView::Find(const std::string& instrument_id) const {
  auto it = instruments_.find(instrument_id);
  return it == instruments_.end() ? nullptr : &it->second;
}

void LiveView::SetHealth(const std::string& instrument_id, const AgentHealth& health) {
  auto it = instruments_.find(instrument_id);
  if (it == instruments_.end()) return;
  if (!it->second.health.has_value() || health.seq >= it->second.health->seq)
    it->second.health = health;
}

void LiveView::Total(InstrumentView* view) const {
  DayTotals totals;
  const int64_t day_end = day_start_ms_ + kDayMs;
  for (const auto& [key, iv] : view->recent) {
    const int64_t start = std::max(iv.start_wall_unix_ms, day_start_ms_);
    const int64_t end = std::min(iv.end_wall_unix_ms(), day_end);
    if (end <= start) continue;
    const double seconds = static_cast<double>(end - start) / 1000.0;
    if (iv.kind == IntervalKind::kGap) {
      totals.gap_seconds += seconds;
    } else {
      if (protocol::IsPowered(iv.state)) totals.powered_seconds += seconds;
      if (protocol::IsInUse(iv.state)) totals.in_use_seconds += seconds;
    }
  }
  view->today = totals;
}

}  // namespace instrumeter::hub
