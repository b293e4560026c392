// The http thread's picture of every instrument: the registry, each device's live state, the
// agent's latest health and the intervals of the current UTC day. Loaded from the database once,
// then kept current from the ingest thread's committed changes (live_feed.h), so that listing ten
// thousand instruments reads memory, not the database.
//
// Threading: one thread (the http thread) owns a LiveView and its Store.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "hub/commit_observer.h"
#include "hub/store.h"

namespace instrumeter::hub {

inline constexpr int64_t kDayMs = 86'400'000;

// Seconds within the current UTC day, from the stored intervals (as of their last point).
struct DayTotals {
  double powered_seconds = 0;
  double in_use_seconds = 0;
  double gap_seconds = 0;
};

// How far ahead the live view reads bookings: an instrument's next booking is shown when it
// starts within this horizon.
inline constexpr int64_t kBookingHorizonMs = 7 * kDayMs;

// A booking as the live API shows it (an instrument's current and next booking).
struct BookingBrief {
  std::string order_id;
  std::string customer;  // the customer's organisation
  bool remote = false;
  int64_t start_unix_ms = 0;
  int64_t end_unix_ms = 0;  // exclusive
};

// One instrument (or a device that sent telemetry without being registered).
struct InstrumentView {
  Instrument instrument;  // registry fields; only instrument_id for an unregistered device
  bool registered = true;
  bool has_device = false;  // the hub stored telemetry or a status of it
  uint64_t contiguous_seq = 0;
  uint64_t events_stored = 0;
  LiveState live;
  std::optional<AgentHealth> health;  // from the newest heartbeat seen, when known
  // Intervals that end after the current UTC day began, by (kind, start_seq).
  std::map<std::pair<IntervalKind, uint64_t>, Interval> recent;
  DayTotals today;  // `recent` clipped to the current day; kept in step with it
  // Bookings that overlapped [now, now + kBookingHorizonMs + 1 day) when they were last read
  // (at most a day ago), by start (bookings of one instrument never overlap).
  std::vector<BookingBrief> bookings;
};

// An instrument's booking in force at a moment and the one after it if it starts within
// kBookingHorizonMs (null when none).
struct BookingsNow {
  const BookingBrief* current = nullptr;
  const BookingBrief* next = nullptr;
};
// From `view.bookings`; the pointers point into it.
BookingsNow BookingsAt(const InstrumentView& view, int64_t now_unix_ms);
// No booking in force and not in use: an instrument ops may offer right now.
bool FreeNow(const InstrumentView& view, const BookingsNow& bookings);

// A change worth pushing to stream clients.
struct LiveEvent {
  enum class Kind { kState, kOnline };
  Kind kind;
  std::string instrument_id;
  v1::InstrumentState previous_state = v1::INSTRUMENT_STATE_UNSPECIFIED;
  std::optional<bool> previous_online;
};

class LiveView {
 public:
  // Reads the registry, every device row and today's intervals. `store` and `clock` are
  // borrowed and must outlive the view. The registry is read again every
  // `registry_refresh_ms` (instruments added by the CLI in another process) and at once when an
  // unknown device shows up.
  static Result<std::unique_ptr<LiveView>> Load(Store* store, const Clock* clock,
                                                int64_t registry_refresh_ms);

  // Applies changes in commit order and returns the events they make (a state or an online
  // flag that changed).
  std::vector<LiveEvent> Apply(const std::vector<LiveChange>& changes);
  // Reads everything again (after the feed dropped changes). Health already known is kept.
  Status Reload();
  // Work that falls due with time: a new UTC day drops yesterday's intervals; the registry is
  // re-read when due, and with it the bookings if Store::BookingsVersion says they changed (an
  // import by the CLI, another process); the bookings are read again at least once a day, as
  // their horizon moves. Call before serving a request.
  Status Refresh();
  // Reads the bookings again: the http thread calls it after its own booking import, so the
  // import shows in the next response. One query for every instrument.
  Status ReloadBookings();

  const std::map<std::string, InstrumentView>& instruments() const { return instruments_; }
  const InstrumentView* Find(const std::string& instrument_id) const;
  // Remembers health read from the store for an instrument whose heartbeat predates the view.
  void SetHealth(const std::string& instrument_id, const AgentHealth& health);

  int64_t day_start_unix_ms() const { return day_start_ms_; }

 private:
  LiveView(Store* store, const Clock* clock, int64_t registry_refresh_ms)
      : store_(store), clock_(clock), registry_refresh_ms_(registry_refresh_ms) {}
  Status RefreshRegistry();
  void KeepRecent(InstrumentView* view, const Interval& interval) const;
  void PruneRecent();
  // Sums `view->recent` within the current day into `view->today`.
  void Total(InstrumentView* view) const;

  Store* store_;
  const Clock* clock_;
  const int64_t registry_refresh_ms_;
  int64_t day_start_ms_ = 0;
  int64_t registry_read_mono_ms_ = 0;
  int64_t bookings_version_ = -1;      // Store::BookingsVersion when the bookings were read
  int64_t bookings_read_wall_ms_ = 0;  // and when
  bool registry_stale_ = false;
  std::map<std::string, InstrumentView> instruments_;
};

// Midnight UTC at or before `unix_ms`.
int64_t UtcDayStart(int64_t unix_ms);

}  // namespace instrumeter::hub
