// The records billing keeps in the Store (docs/billing.md): bookings, per-instrument billing rule
// overrides, what ingest notes for verification (changed wall ranges, hourly clock-offset and
// disagreement facts, session marks), and the hash-chained ledger. Plain data; the logic lives in
// bookings.h, verification.h, ledger.h and billing_driver.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "hub/billing_rules.h"
#include "telemetry.pb.h"

namespace instrumeter::hub {

struct Customer {
  std::string organisation;
  std::string city;
  std::string region;
  friend bool operator==(const Customer&, const Customer&) = default;
};

// The longest booking accepted: longer windows are refused as typing mistakes. Stores rely on it
// to bound their searches, and it keeps rate * seconds inside int64.
inline constexpr int64_t kMaxBookingMs = 366LL * 86'400'000;

// One order: who booked which instrument for which window, at which price. The rules are resolved
// when the booking is imported (the booking's own rate, else the instrument's, else the hub's
// [billing] defaults) and kept with it: the terms are those agreed when it was booked.
struct Booking {
  std::string order_id;  // unique; importing it again updates it
  std::string instrument_id;
  Customer customer;
  int64_t start_unix_ms = 0;
  int64_t end_unix_ms = 0;  // exclusive, after start
  bool remote = false;
  std::string operator_name;  // empty: not given
  BillingRules rules;
  std::optional<Voucher> voucher;
  // Kept by the store: 1 when first imported, +1 at every change of the terms above.
  int64_t revision = 0;
  int64_t updated_unix_ms = 0;
  // Kept by the store: the ledger entry of its latest verification; nullopt: not verified under
  // its current terms (new, or changed since), so the next pass after it settles verifies it.
  std::optional<int64_t> ledger_entry_id;
};

// Same order, instrument, customer, window, operator, rules and voucher: importing `b` over `a`
// changes nothing.
bool SameTerms(const Booking& a, const Booking& b);

// Which bookings ListBookings returns: booked windows overlapping [from, to), of one instrument
// or (empty) all, ordered by instrument and start.
struct BookingFilter {
  std::string instrument_id;
  int64_t from_unix_ms = INT64_MIN;
  int64_t to_unix_ms = INT64_MAX;
};

// Why PutBookings refused a set: bookings[index] overlaps another booking on its instrument
// (a stored one, or another of the same set).
struct BookingConflict {
  size_t index = 0;
  std::string other_order_id;
  int64_t other_start_unix_ms = 0;
  int64_t other_end_unix_ms = 0;
  std::optional<size_t> other_index;  // set when the other booking is in the same set
};

struct PutBookingsOutcome {
  size_t inserted = 0;
  size_t updated = 0;
  size_t unchanged = 0;
  std::optional<BookingConflict> conflict;  // set: nothing was written
};

// An instrument's overrides of the [billing] defaults.
struct InstrumentRuleOverrides {
  std::string instrument_id;
  PartialBillingRules rules;
};

// What an instruments import says about an instrument's overrides: the fields in `fields_set`
// (bit 1 << RuleField) are replaced by `rules` (an unset value: back to the default); the others
// stay as they are.
struct RuleOverridesUpdate {
  std::string instrument_id;
  PartialBillingRules rules;
  uint32_t fields_set = 0;
};

// A wall-clock range of an instrument whose telemetry or bookings changed since verification last
// looked. `version` grows with every change, so clearing a range that changed meanwhile is
// refused (ClearDirtyRange).
struct DirtyRange {
  std::string instrument_id;
  int64_t from_unix_ms = 0;
  int64_t to_unix_ms = 0;  // exclusive
  int64_t version = 0;
};

// What ingest noted about one device-hour (by agent wall time), for verification:
// - fresh heartbeats (sent with nothing else waiting in the agent's outbox) give the agent's
//   clock offset as hub receive time - agent wall time (plus network delay, never minus);
// - events that report disagreeing sources (a Heartbeat's `disagreement`, a StateChange with
//   `sources_disagreed`).
struct HourFacts {
  int64_t hour_start_unix_ms = 0;
  int64_t fresh_samples = 0;
  int64_t fresh_offset_min_ms = 0;  // meaningful when fresh_samples > 0
  std::optional<int64_t> disagreement_first_wall_ms;
  std::optional<int64_t> disagreement_last_wall_ms;
  friend bool operator==(const HourFacts&, const HourFacts&) = default;
};

// A SessionMark as stored.
struct MarkRecord {
  uint64_t seq = 0;
  int64_t wall_unix_ms = 0;
  v1::SessionMark::Kind kind = v1::SessionMark::KIND_UNSPECIFIED;
  std::string order_id;
  std::string operator_name;
  friend bool operator==(const MarkRecord&, const MarkRecord&) = default;
};

// How far unbooked use of a device with telemetry has been evaluated: every local day that ends at
// or before `evaluated_until_unix_ms`. Unset: never; `first_interval_unix_ms` says where its
// telemetry starts.
struct UnbookedProgress {
  std::string instrument_id;
  std::optional<int64_t> evaluated_until_unix_ms;
  int64_t first_interval_unix_ms = 0;
};

// One ledger row (docs/billing.md, "Ledger"). `content` is canonical JSON; kind, subject and
// subject_time_unix_ms repeat fields of it for queries, and `ledger verify` checks they agree.
struct LedgerEntry {
  int64_t entry_id = 0;
  std::string kind;  // session | unbooked | amendment
  std::string subject;
  int64_t subject_time_unix_ms = 0;
  std::string content;
  std::string prev_hash;  // 64 lowercase hex digits
  std::string hash;       // SHA-256(prev_hash || content), hex
  friend bool operator==(const LedgerEntry&, const LedgerEntry&) = default;
};

// The last entry appended (entry_id 0 and the genesis hash for an empty ledger).
struct LedgerHead {
  int64_t entry_id = 0;
  std::string hash;
  friend bool operator==(const LedgerHead&, const LedgerHead&) = default;
};

// The writes of one verification commit, done inside Store::InLedgerTransaction so that the
// ledger, the bookings' entry ids, the progress marks and the cleared ranges change together.
// Valid only during the callback; used from the thread that called InLedgerTransaction.
class LedgerTxn {
 public:
  virtual ~LedgerTxn() = default;
  virtual Result<LedgerHead> Head() = 0;
  // The newest entry about `subject`, if any.
  virtual Result<std::optional<LedgerEntry>> Latest(const std::string& subject) = 0;
  // Appends `entry`, which must be Head().entry_id + 1 and chain to Head().hash (the store checks
  // both, so a caller bug cannot fork the chain), and makes it the head.
  virtual Status Append(const LedgerEntry& entry) = 0;
  virtual Status SetBookingEntry(const std::string& order_id, int64_t entry_id) = 0;
  virtual Status SetUnbookedProgress(const std::string& instrument_id,
                                     int64_t evaluated_until_unix_ms) = 0;
  // Removes the range only if its version is still `range.version`.
  virtual Status ClearDirtyRange(const DirtyRange& range) = 0;
};

}  // namespace instrumeter::hub
