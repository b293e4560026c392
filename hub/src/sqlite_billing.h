// The billing tables of the SQLite store (schema version 2): what SqliteStore delegates its
// billing methods to, kept apart so that the ingest store stays readable. Private to the hub.
//
// Threading and lifetime as SqliteStore: one thread at a time; the SqliteDb is borrowed.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/sqlite_db.h"
#include "hub/billing_records.h"
#include "hub/store.h"

namespace instrumeter::hub {

// Migration 2: rule overrides, bookings, changed ranges, hour facts, the session-mark index and
// the ledger (append-only by trigger).
extern const char kBillingMigration[];

class SqliteBilling {
 public:
  explicit SqliteBilling(SqliteDb* db) : db_(db) {}
  // Prepares the statements; call after the migrations ran.
  Status Prepare();

  // Inside CommitBatch's transaction, before the batch's intervals are written: records the wall
  // range the batch changes for the device (every interval's new part, every session mark) and
  // the hour facts of its new events.
  Status RecordBatchFacts(int64_t dev_key, const DeviceBatch& batch);

  // Inside a transaction of the caller's.
  Status ApplyRuleUpdates(const std::vector<RuleOverridesUpdate>& updates);

  Result<std::vector<InstrumentRuleOverrides>> ListRuleOverrides();
  Result<PutBookingsOutcome> PutBookings(const std::vector<Booking>& bookings, int64_t now_unix_ms);
  Result<std::vector<Booking>> ListBookings(const BookingFilter& filter);
  Result<std::optional<Booking>> FindBooking(const std::string& order_id);
  Result<int64_t> BookingsVersion();
  Result<std::vector<Booking>> ListUnverifiedBookings(int64_t settled_unix_ms);
  Result<std::vector<DirtyRange>> ReadDirtyRanges();
  Result<std::vector<HourFacts>> ReadHourFacts(const std::string& device_id, int64_t from_unix_ms,
                                               int64_t to_unix_ms);
  Result<std::vector<MarkRecord>> ReadSessionMarks(const std::string& device_id,
                                                   int64_t from_unix_ms, int64_t to_unix_ms);
  Result<std::vector<UnbookedProgress>> ReadUnbookedProgress(const std::string& instrument_id);
  Result<std::optional<Instrument>> GetInstrument(const std::string& instrument_id);
  Status InLedgerTransaction(const std::function<Status(LedgerTxn*)>& body);
  Result<std::vector<LedgerEntry>> ReadLedger(int64_t after_entry_id, int64_t limit);
  Result<LedgerHead> ReadLedgerHead();
  Result<std::vector<LedgerEntry>> ReadLatestLedgerEntries(int64_t from_unix_ms,
                                                           int64_t to_unix_ms);

 private:
  class Txn;

  Status MarkDirty(const std::string& instrument_id, int64_t from_unix_ms, int64_t to_unix_ms);
  Result<std::vector<Booking>> QueryBookings(SqliteStatement* statement);

  SqliteDb* db_;
  std::optional<SqliteStatement> old_interval_;
  std::optional<SqliteStatement> wall_span_;
  std::optional<SqliteStatement> mark_dirty_;
  std::optional<SqliteStatement> upsert_hour_;
  std::optional<SqliteStatement> find_booking_;
  std::optional<SqliteStatement> overlapping_bookings_;
  std::optional<SqliteStatement> read_head_;
  std::optional<SqliteStatement> latest_entry_;
  std::optional<SqliteStatement> insert_entry_;
  std::optional<SqliteStatement> upsert_head_;
  std::optional<SqliteStatement> set_booking_entry_;
  std::optional<SqliteStatement> set_progress_;
  std::optional<SqliteStatement> clear_dirty_;
};

}  // namespace instrumeter::hub
