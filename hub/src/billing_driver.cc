#include "hub/billing_driver.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>

#include "hub/ledger.h"
#include "hub/verification.h"

namespace instrumeter::hub {
namespace {

constexpr int64_t kDayMs = 86'400'000;
// The longest grace a rule allows: a booking further away than twice this cannot share time.
constexpr int64_t kMaxGraceMs = 86'400'000;
// Writes (subjects, progress marks, cleared ranges) per write transaction: bounds how long a pass
// holds the database's write lock, which ingest waits for. 2,000 subjects held it for up to half a
// second at 10,000 devices; a live fleet's pass, with nothing settled to measure, used to clear
// every device's changed range in one transaction at the end, 100,000 of them at 100,000 devices
// (docs/performance.md, "Capacity").
constexpr size_t kWritesPerCommit = 200;
// Changed instruments whose unbooked-use progress is read one by one; past this, one read of
// every instrument's is cheaper (at 100,000 instruments, 0.2 s against 30 us per instrument).
constexpr size_t kProgressReadsPerPass = 2'000;

int64_t FloorTo(int64_t t, int64_t unit) {
  const int64_t q = t / unit;
  return (t % unit != 0 && t < 0 ? q - 1 : q) * unit;
}

int64_t LocalDayStart(int64_t t, int64_t offset_ms) {
  return FloorTo(t + offset_ms, kDayMs) - offset_ms;
}

// "YYYY-MM-DD" of the local day starting at `day_start`.
std::string LocalDate(int64_t day_start, int64_t offset_ms) {
  return FormatUtc(day_start + offset_ms).substr(0, 10);
}

Span Widen(const std::optional<Span>& a, const Span& b) {
  if (!a.has_value()) return b;
  return {std::min(a->from_unix_ms, b.from_unix_ms), std::max(a->to_unix_ms, b.to_unix_ms)};
}

Span GraceWindow(const Booking& b) {
  return {b.start_unix_ms - b.rules.grace_before_seconds * 1000,
          b.end_unix_ms + b.rules.grace_after_seconds * 1000};
}

int64_t MicrosSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

bool Overlaps(const Span& a, const Span& b) {
  return a.from_unix_ms < b.to_unix_ms && b.from_unix_ms < a.to_unix_ms;
}

// An instrument's intervals sorted by start, to find those overlapping a span without a scan.
class IntervalIndex {
 public:
  explicit IntervalIndex(std::vector<Interval> intervals) : intervals_(std::move(intervals)) {
    std::sort(intervals_.begin(), intervals_.end(), [](const Interval& a, const Interval& b) {
      return a.start_wall_unix_ms < b.start_wall_unix_ms;
    });
    // Ends are not sorted when a wall-clock step made intervals overlap: a running maximum is.
    int64_t max_end = INT64_MIN;
    for (const Interval& iv : intervals_) {
      max_end = std::max(max_end, iv.end_wall_unix_ms());
      max_end_.push_back(max_end);
    }
  }

  std::vector<Interval> Overlapping(const Span& span) const {
    const size_t lo = static_cast<size_t>(
        std::upper_bound(max_end_.begin(), max_end_.end(), span.from_unix_ms) - max_end_.begin());
    std::vector<Interval> out;
    for (size_t i = lo; i < intervals_.size(); ++i) {
      const Interval& iv = intervals_[i];
      if (iv.start_wall_unix_ms >= span.to_unix_ms) break;
      if (iv.end_wall_unix_ms() > span.from_unix_ms) out.push_back(iv);
    }
    return out;
  }

  const std::vector<Interval>& all() const { return intervals_; }

 private:
  std::vector<Interval> intervals_;
  std::vector<int64_t> max_end_;
};

// The windows (sorted by start, disjoint) that overlap `span`, except windows[skip].
std::vector<Span> WindowsOverlapping(const std::vector<Span>& windows, const Span& span,
                                     size_t skip) {
  std::vector<Span> out;
  auto it = std::upper_bound(windows.begin(), windows.end(), span.from_unix_ms,
                             [](int64_t t, const Span& w) { return t < w.to_unix_ms; });
  for (; it != windows.end() && it->from_unix_ms < span.to_unix_ms; ++it)
    if (static_cast<size_t>(it - windows.begin()) != skip) out.push_back(*it);
  return out;
}

}  // namespace

struct BillingDriver::Work {
  std::optional<DirtyRange> dirty;
  std::vector<Booking> unverified;
  std::optional<UnbookedProgress> progress;
};

struct BillingDriver::Pending {
  struct Subject {
    std::string subject_kind;  // session | unbooked
    std::string subject;
    int64_t subject_time_unix_ms = 0;
    std::string result_json;
    std::string order_id;                     // session
    std::optional<int64_t> booking_entry_id;  // session: the booking's entry now
    int64_t in_use_ms = 0;                    // unbooked
  };
  std::vector<Subject> subjects;
  std::vector<std::pair<std::string, int64_t>> progress;
  std::vector<DirtyRange> cleared;
};

Result<PassReport> BillingDriver::RunOnce(int64_t now_unix_ms) {
  const auto started = std::chrono::steady_clock::now();
  const int64_t settled = now_unix_ms - options_.settle_delay_seconds * 1000;
  Result<std::vector<DirtyRange>> dirty = store_->ReadDirtyRanges();
  if (!dirty.ok()) return dirty.status();
  Result<std::vector<Booking>> unverified = store_->ListUnverifiedBookings(settled);
  if (!unverified.ok()) return unverified.status();
  std::map<std::string, Work> work;
  for (DirtyRange& d : *dirty) work[d.instrument_id].dirty = std::move(d);
  for (Booking& b : *unverified) work[b.instrument_id].unverified.push_back(std::move(b));
  // Days: every device's when a new local day settled, else only those of changed instruments,
  // whose progress is read in one go when many changed.
  const int64_t settled_until = LocalDayStart(settled, options_.day_utc_offset_minutes * 60'000);
  const bool new_day = !days_settled_until_.has_value() || settled_until > *days_settled_until_;
  std::vector<std::string> changed;
  for (const auto& [id, w] : work)
    if (w.dirty.has_value()) changed.push_back(id);
  if (new_day || changed.size() > kProgressReadsPerPass) {
    Result<std::vector<UnbookedProgress>> progress = store_->ReadUnbookedProgress("");
    if (!progress.ok()) return progress.status();
    for (UnbookedProgress& p : *progress) {
      const auto it = work.find(p.instrument_id);
      if (new_day || (it != work.end() && it->second.dirty.has_value()))
        work[p.instrument_id].progress = std::move(p);
    }
  } else {
    for (const std::string& id : changed) {
      Result<std::vector<UnbookedProgress>> progress = store_->ReadUnbookedProgress(id);
      if (!progress.ok()) return progress.status();
      for (UnbookedProgress& p : *progress) work[p.instrument_id].progress = std::move(p);
    }
  }

  PassReport report;
  Pending pending;
  for (const auto& [instrument_id, w] : work) {
    const size_t awaiting = report.sessions_awaiting_signature;
    INSTRUMETER_RETURN_IF_ERROR(Measure(instrument_id, w, settled, &pending, &report)
                                    .WithContext("verifying instrument '" + instrument_id + "'"));
    // A changed range is cleared with this pass's results, unless a session in it waits for its
    // signature: then a later pass measures it again.
    if (w.dirty.has_value() && report.sessions_awaiting_signature == awaiting)
      pending.cleared.push_back(*w.dirty);
    if (pending.subjects.size() + pending.progress.size() + pending.cleared.size() >=
        kWritesPerCommit)
      INSTRUMETER_RETURN_IF_ERROR(Commit(&pending, now_unix_ms, &report));
  }
  INSTRUMETER_RETURN_IF_ERROR(Commit(&pending, now_unix_ms, &report));
  if (new_day) days_settled_until_ = settled_until;
  report.measure_us = MicrosSince(started) - report.commit_us;
  return report;
}

Status BillingDriver::Measure(const std::string& instrument_id, const Work& work, int64_t settled,
                              Pending* pending, PassReport* report) {
  const int64_t offset_ms = options_.day_utc_offset_minutes * 60'000;

  // Local days to look at for unbooked use: newly settled ones, and changed ones already looked
  // at before.
  std::set<int64_t> days;
  if (work.progress.has_value()) {
    const int64_t first_day = LocalDayStart(work.progress->first_interval_unix_ms, offset_ms);
    const int64_t settled_until = LocalDayStart(settled, offset_ms);
    const int64_t until = work.progress->evaluated_until_unix_ms.value_or(first_day);
    for (int64_t d = std::max(until, first_day); d < settled_until; d += kDayMs) days.insert(d);
    if (work.dirty.has_value()) {
      const int64_t stop = std::min({work.dirty->to_unix_ms, until, settled_until});
      for (int64_t d = LocalDayStart(std::max(work.dirty->from_unix_ms, first_day), offset_ms);
           d < stop; d += kDayMs)
        days.insert(d);
    }
    if (settled_until > until) pending->progress.emplace_back(instrument_id, settled_until);
  }
  // Nothing settled can have changed: every booking whose grace window reaches the changed range
  // ends after `settled` and is measured when it settles (a live fleet's pass, at every
  // instrument: it skips two reads of each).
  if (work.unverified.empty() && days.empty() &&
      (!work.dirty.has_value() || work.dirty->from_unix_ms >= settled))
    return Status::Ok();

  // Bookings to verify: never verified under their terms, and settled ones in a changed range.
  // One read of the instrument's bookings serves both and gives every neighbour that can share
  // time with them (a booking further than two maximal graces away cannot).
  std::optional<Span> need;
  for (const Booking& b : work.unverified) need = Widen(need, GraceWindow(b));
  for (int64_t d : days) need = Widen(need, {d, d + kDayMs});
  if (work.dirty.has_value())
    need =
        Widen(need, {work.dirty->from_unix_ms - kMaxGraceMs, work.dirty->to_unix_ms + kMaxGraceMs});
  if (!need.has_value()) return Status::Ok();
  Result<std::vector<Booking>> context = store_->ListBookings(
      {instrument_id, need->from_unix_ms - 2 * kMaxGraceMs, need->to_unix_ms + 2 * kMaxGraceMs});
  if (!context.ok()) return context.status();
  std::set<std::string> unverified;
  for (const Booking& b : work.unverified) unverified.insert(b.order_id);
  // From the fresh read: a booking an import changed meanwhile is taken as it is now, or, if it
  // moved away, left to the next pass (its move recorded a changed range there).
  std::map<std::string, const Booking*> sessions;
  for (const Booking& b : *context) {
    if (GraceWindow(b).to_unix_ms > settled) continue;
    const bool touched =
        work.dirty.has_value() &&
        Overlaps(GraceWindow(b), {work.dirty->from_unix_ms, work.dirty->to_unix_ms});
    if (touched || unverified.count(b.order_id) > 0) sessions.emplace(b.order_id, &b);
  }
  if (sessions.empty() && days.empty()) return Status::Ok();
  ++report->instruments;

  std::vector<BookedWindow> booked;
  std::map<std::string, size_t> index;
  for (const Booking& b : *context) {
    index[b.order_id] = booked.size();
    booked.push_back({b.start_unix_ms, b.end_unix_ms, b.rules.grace_before_seconds * 1000,
                      b.rules.grace_after_seconds * 1000});
  }
  const std::vector<Span> windows = AttributionWindows(booked);

  std::optional<Span> read;
  for (const auto& [id, b] : sessions) read = Widen(read, windows[index.at(id)]);
  for (int64_t d : days) read = Widen(read, {d, d + kDayMs});
  Result<std::vector<DeviceInterval>> rows =
      store_->ReadIntervals(instrument_id, read->from_unix_ms, read->to_unix_ms);
  if (!rows.ok()) return rows.status();
  std::vector<Interval> intervals;
  intervals.reserve(rows->size());
  for (DeviceInterval& row : *rows) intervals.push_back(std::move(row.interval));
  const IntervalIndex by_time(std::move(intervals));

  // The state before each gap: the run's closing interval when it was read too, else the state
  // stored with the gap's first point.
  std::map<uint64_t, v1::InstrumentState> closing;
  for (const Interval& iv : by_time.all())
    if (iv.kind == IntervalKind::kState) closing[iv.end_seq] = iv.state;
  std::map<uint64_t, v1::InstrumentState> before_gap;
  for (const Interval& iv : by_time.all()) {
    if (iv.kind != IntervalKind::kGap) continue;
    if (auto it = closing.find(iv.start_seq); it != closing.end()) {
      before_gap[iv.start_seq] = it->second;
      continue;
    }
    Result<std::vector<EventRow>> point =
        store_->ReadEvents(instrument_id, iv.start_seq, iv.start_seq);
    if (!point.ok()) return point.status();
    if (!point->empty() && point->front().state.has_value())
      before_gap[iv.start_seq] = *point->front().state;
  }
  Result<std::vector<HourFacts>> hours =
      store_->ReadHourFacts(instrument_id, read->from_unix_ms, read->to_unix_ms);
  if (!hours.ok()) return hours.status();
  Result<std::vector<MarkRecord>> marks =
      store_->ReadSessionMarks(instrument_id, read->from_unix_ms, read->to_unix_ms);
  if (!marks.ok()) return marks.status();

  // Only signed time is billed (DESIGN rule 5). No row: the device never sent telemetry.
  Result<std::vector<Billability>> billability = store_->ReadBillability(instrument_id);
  if (!billability.ok()) return billability.status();
  Proof proof;
  if (!billability->empty()) proof.billability = billability->front();
  const Billability& signed_part = proof.billability;
  if (signed_part.billable_through > 0) {
    Result<std::vector<EventRow>> last = store_->ReadEvents(
        instrument_id, signed_part.billable_through, signed_part.billable_through);
    if (!last.ok()) return last.status();
    if (!last->empty()) proof.proven_until_unix_ms = last->front().wall_unix_ms;
  }
  const bool may_still_sign =
      signed_part.enrolled && !signed_part.revoked && signed_part.chain_broken_from == 0;

  Result<std::optional<Instrument>> registered = store_->GetInstrument(instrument_id);
  if (!registered.ok()) return registered.status();
  // Telemetry accepted from an unregistered device still gets its unbooked use recorded.
  const Instrument instrument = registered->value_or(Instrument{.instrument_id = instrument_id});

  for (const auto& [order_id, booking] : sessions) {
    const Booking& b = *booking;
    const size_t i = index.at(order_id);
    const Span& attribution = windows[i];
    Telemetry t;
    t.intervals = by_time.Overlapping(attribution);
    // Use that runs on past the window: whose time is it?
    Span reach = attribution;
    for (const Interval& iv : t.intervals)
      reach = Widen(reach, {iv.start_wall_unix_ms, iv.end_wall_unix_ms()});
    for (const Interval& iv : t.intervals)
      if (auto it = before_gap.find(iv.start_seq);
          iv.kind == IntervalKind::kGap && it != before_gap.end())
        t.state_before_gap.insert(*it);
    for (const HourFacts& h : *hours)
      if (h.hour_start_unix_ms < attribution.to_unix_ms &&
          h.hour_start_unix_ms + 3'600'000 > attribution.from_unix_ms)
        t.hours.push_back(h);
    for (const MarkRecord& m : *marks)
      if (m.wall_unix_ms >= b.start_unix_ms && m.wall_unix_ms < b.end_unix_ms) t.marks.push_back(m);
    t.proof = proof;
    const SessionMeasure m =
        MeasureSession(b, attribution, WindowsOverlapping(windows, reach, i), t, options_.verify);
    if ((m.flags & kSessionUnsigned) != 0 && may_still_sign &&
        GraceWindow(b).to_unix_ms + options_.signature_wait_seconds * 1000 > settled) {
      // Its signature is probably on its way: a later pass measures it again (an unverified
      // booking is listed again; RunOnce keeps a changed range).
      ++report->sessions_awaiting_signature;
      continue;
    }
    const Charges charges = ComputeCharges(b.rules, b.voucher, m.booked_ms, m.billable_in_use_ms());
    pending->subjects.push_back({"session", SessionSubject(order_id), b.start_unix_ms,
                                 SessionResultJson(b, instrument, m, charges), order_id,
                                 b.ledger_entry_id, 0});
    ++report->sessions_measured;
  }
  for (int64_t d : days) {
    const Span day = {d, d + kDayMs};
    const UnbookedMeasure u =
        MeasureUnbooked(day, WindowsOverlapping(windows, day, SIZE_MAX), by_time.Overlapping(day));
    const std::string date = LocalDate(d, offset_ms);
    pending->subjects.push_back({"unbooked", UnbookedSubject(instrument_id, date), d,
                                 UnbookedResultJson(instrument, date, u), "", std::nullopt,
                                 u.in_use_ms});
    ++report->days_measured;
  }
  return Status::Ok();
}

Status BillingDriver::Commit(Pending* pending, int64_t now_unix_ms, PassReport* report) {
  if (pending->subjects.empty() && pending->progress.empty() && pending->cleared.empty())
    return Status::Ok();
  const auto started = std::chrono::steady_clock::now();
  size_t appended = 0;
  size_t amended = 0;
  Status st = store_->InLedgerTransaction([&](LedgerTxn* tx) -> Status {
    Result<LedgerHead> head = tx->Head();
    if (!head.ok()) return head.status();
    for (const Pending::Subject& s : pending->subjects) {
      Result<std::optional<LedgerEntry>> latest = tx->Latest(s.subject);
      if (!latest.ok()) return latest.status();
      const LedgerEntry* amends = nullptr;
      if (latest->has_value()) {
        Result<std::string> before = ResultJsonOf(**latest);
        if (!before.ok()) return before.status();
        if (*before == s.result_json) {
          if (s.subject_kind == "session" && s.booking_entry_id != (*latest)->entry_id)
            INSTRUMETER_RETURN_IF_ERROR(tx->SetBookingEntry(s.order_id, (*latest)->entry_id));
          continue;
        }
        amends = &**latest;
      } else if (s.subject_kind == "unbooked" &&
                 s.in_use_ms < options_.unbooked_min_seconds * 1000) {
        continue;  // nothing worth explaining, and nothing recorded to correct
      }
      Result<LedgerEntry> entry =
          MakeLedgerEntry(*head, s.subject_kind, s.subject, s.subject_time_unix_ms, now_unix_ms,
                          s.result_json, amends);
      if (!entry.ok()) return entry.status();
      INSTRUMETER_RETURN_IF_ERROR(tx->Append(*entry));
      *head = {entry->entry_id, entry->hash};
      if (s.subject_kind == "session")
        INSTRUMETER_RETURN_IF_ERROR(tx->SetBookingEntry(s.order_id, entry->entry_id));
      ++(amends != nullptr ? amended : appended);
    }
    for (const auto& [instrument_id, until] : pending->progress)
      INSTRUMETER_RETURN_IF_ERROR(tx->SetUnbookedProgress(instrument_id, until));
    for (const DirtyRange& range : pending->cleared)
      INSTRUMETER_RETURN_IF_ERROR(tx->ClearDirtyRange(range));
    return Status::Ok();
  });
  if (!st.ok()) return st.WithContext("appending to the ledger");
  report->entries_appended += appended;
  report->amendments += amended;
  report->commit_us += MicrosSince(started);
  ++report->commits;
  *pending = Pending{};
  return Status::Ok();
}

BillingWorker::BillingWorker(std::unique_ptr<Store> store, const BillingOptions& options,
                             const Clock* clock)
    : store_(std::move(store)),
      driver_(store_.get(), options),
      clock_(clock),
      thread_(options.verify_interval_ms, [this](const auto&) { RunPass(); }) {}

Result<std::unique_ptr<BillingWorker>> BillingWorker::Start(const SqliteStoreOptions& store_options,
                                                            const BillingOptions& options,
                                                            const Clock* clock) {
  Result<std::unique_ptr<Store>> store = OpenSqliteStore(store_options);
  if (!store.ok()) return store.status().WithContext("billing worker");
  return std::unique_ptr<BillingWorker>(new BillingWorker(std::move(*store), options, clock));
}

void BillingWorker::RunPass() {
  const auto started = std::chrono::steady_clock::now();
  Result<PassReport> pass = driver_.RunOnce(clock_->WallUnixMs());
  const auto took_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - started)
                           .count();
  if (!pass.ok()) {
    spdlog::error("billing: verification pass failed (retried in {} ms): {}", thread_.interval_ms(),
                  pass.status().ToString());
  } else if (pass->entries_appended + pass->amendments > 0) {
    spdlog::info(
        "billing: {} sessions and {} days measured on {} instruments in {} ms; {} entries "
        "and {} amendments appended",
        pass->sessions_measured, pass->days_measured, pass->instruments, took_ms,
        pass->entries_appended, pass->amendments);
  }
}

}  // namespace instrumeter::hub
