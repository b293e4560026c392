// The archive of settled events (docs/hub.md, "Archive"): a thread with its own connection to
// the store that, every interval, moves each device's signed events older than `after_ms` from
// one row each into compressed blocks (Store::ArchiveEvents). One transaction holds at most
// ArchiveOptions::max_events of one device, and the thread pauses between transactions, so
// ingest commits, which wait for the same write lock, are never held up for long. A pass spreads
// its devices over half the interval, so that it takes a share of a core, not a whole one for a
// burst, from the hub's ingest and the broker beside it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "common/clock.h"
#include "common/status.h"
#include "hub/ingestor.h"
#include "hub/periodic_thread.h"
#include "hub/sqlite_store.h"
#include "hub/store.h"

namespace instrumeter::hub {

struct ArchiveWorkerOptions {
  int64_t after_ms = 48 * 3'600'000;  // events received longer ago than this are archived
  int64_t interval_ms = 600'000;      // between passes; a pass is spread over half of it
};

// What one pass did.
struct ArchivePass {
  uint64_t devices = 0;  // that got at least one block
  ArchiveProgress moved;
  uint64_t failed_devices = 0;  // whose transaction failed (rolled back: nothing lost)
  Status first_error;
  // How long the transactions held the write lock that ingest commits wait for: all of them,
  // and the longest.
  uint64_t transactions = 0;
  double transactions_ms = 0;
  double longest_transaction_ms = 0;
};

// The archive's own connection to the store. Its commits do not wait for the disk
// (synchronous=NORMAL): the ingest commit waiting for the write lock no longer waits for the
// archive's fsync as well. Safe, because a write-ahead log stays consistent either way: a power
// cut may undo the archive's last transactions, which leaves their events as rows, as before
// them; and the next ingest commit's fsync of the log makes every archive commit before it
// durable too.
Result<std::unique_ptr<Store>> OpenArchiveStore(SqliteStoreOptions options);

// Archives every candidate device once, up to its first event that cannot go yet. A device whose
// transaction fails is counted and skipped; the others go on. Between transactions it calls
// `pause`, so that ingest commits get the write lock; and a device's first transaction waits
// until its even share of `spread` has passed since the pass began (behind that, it only pauses
// as before). Stops early, with what it did, when `pause` returns false. An error only when the
// candidates cannot be listed.
Result<ArchivePass> ArchiveOnce(Store* store, const ArchiveOptions& options,
                                std::chrono::milliseconds spread,
                                const PeriodicThread::Pause& pause);

class ArchiveWorker {
 public:
  // Opens the store and starts the thread; the first pass runs at once. `clock` and `metrics`
  // (events_archived, archive_failures) are borrowed.
  static Result<std::unique_ptr<ArchiveWorker>> Start(const SqliteStoreOptions& store_options,
                                                      const ArchiveWorkerOptions& options,
                                                      const Clock* clock, HubMetrics* metrics);
  // Destroying it stops the thread (after the transaction in progress) and joins it.

 private:
  ArchiveWorker(std::unique_ptr<Store> store, const ArchiveWorkerOptions& options,
                const Clock* clock, HubMetrics* metrics);
  void RunPass(const PeriodicThread::Pause& pause);

  std::unique_ptr<Store> store_;
  ArchiveWorkerOptions options_;
  const Clock* clock_;
  HubMetrics* metrics_;
  PeriodicThread thread_;  // last: started after everything it uses
};

}  // namespace instrumeter::hub
