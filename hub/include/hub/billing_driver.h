// The verification driver: finds what needs verifying, gathers its inputs from the Store, runs
// the pure functions of verification.h and appends what changed to the ledger (docs/billing.md,
// "When verification runs").
//
// A pass looks at
//   - bookings not verified under their current terms whose end + grace_after + settle delay has
//     passed (new bookings, and bookings whose terms changed);
//   - settled bookings and already evaluated days in every changed range the store recorded
//     since the last pass (ingest records the wall range of each interval change and session
//     mark; a booking import records the old and new windows): late events and late bookings;
//   - for every instrument with telemetry, each local day that ended (plus the settle delay)
//     since the last pass, for use outside every booking.
// Only in-use time that a verified signature covers is billed (Store::ReadBillability). A session
// whose agent may still sign the rest waits for it (BillingOptions::signature_wait_seconds).
// Each result is compared with the subject's latest ledger entry inside the write transaction:
// equal, nothing is written; different, an amendment; new, a session or unbooked entry. So a pass
// may run again, concurrently with ingest or with another pass, and never writes a result twice.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "hub/billing_options.h"
#include "hub/periodic_thread.h"
#include "hub/sqlite_store.h"
#include "hub/store.h"

namespace instrumeter::hub {

struct PassReport {
  size_t instruments = 0;        // instruments with something to look at
  size_t sessions_measured = 0;  // bookings verified (again)
  // Settled bookings left for a later pass: in-use time their agent has not signed yet.
  size_t sessions_awaiting_signature = 0;
  size_t days_measured = 0;     // local days checked for unbooked use
  size_t entries_appended = 0;  // new session and unbooked entries
  size_t amendments = 0;        // entries that correct an earlier one
  // Where the time went: finding the work, reading inputs and measuring; and the write
  // transactions (durable commits with synchronous=FULL).
  int64_t measure_us = 0;
  int64_t commit_us = 0;
  size_t commits = 0;  // write transactions, each of at most 200 writes
};

// Single-threaded; borrows the Store, which must outlive it.
class BillingDriver {
 public:
  BillingDriver(Store* store, const BillingOptions& options) : store_(store), options_(options) {}

  // One pass as of `now_unix_ms` (hub wall clock). Commits in chunks: an error leaves what was
  // committed (consistent: each chunk moves the ledger, the bookings' entries, the progress marks
  // and the cleared ranges together) and the next pass continues.
  Result<PassReport> RunOnce(int64_t now_unix_ms);

 private:
  struct Work;
  struct Pending;
  Status Measure(const std::string& instrument_id, const Work& work, int64_t settled_unix_ms,
                 Pending* pending, PassReport* report);
  Status Commit(Pending* pending, int64_t now_unix_ms, PassReport* report);

  Store* store_;
  BillingOptions options_;
  // The local day boundary up to which every device's days were last looked at: progress is read
  // for all devices only when a new day settles, otherwise only for instruments with changes.
  std::optional<int64_t> days_settled_until_;
};

// Runs a BillingDriver pass every verify_interval_ms on its own thread, over its own connection
// to the database, so that verification never delays ingest. Errors are logged and retried at the
// next interval.
class BillingWorker {
 public:
  // Opens the store and starts the thread; the first pass runs at once. `clock` is borrowed.
  static Result<std::unique_ptr<BillingWorker>> Start(const SqliteStoreOptions& store_options,
                                                      const BillingOptions& options,
                                                      const Clock* clock);
  // Destroying it stops the thread (a pass in progress finishes first) and joins it.

 private:
  BillingWorker(std::unique_ptr<Store> store, const BillingOptions& options, const Clock* clock);
  void RunPass();

  std::unique_ptr<Store> store_;
  BillingDriver driver_;
  const Clock* clock_;
  PeriodicThread thread_;  // last: started after everything it uses
};

}  // namespace instrumeter::hub
