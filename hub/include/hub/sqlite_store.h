// The SQLite implementation of Store: one database file in WAL mode with synchronous=FULL, since
// an acknowledgement promises the events are on disk. The schema is versioned with
// PRAGMA user_version and migrated by code at open.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "hub/store.h"

namespace instrumeter::hub {

struct SqliteStoreOptions {
  std::string path;
  // How long a writer waits for another process (the hub, a CLI command) to release the lock.
  int busy_timeout_ms = 5000;
  // Events of a device with few events in a batch (a live fleet's heartbeats) wait in a small
  // table and move into the main one a few devices at a time, many events per device at once,
  // once more than `recent_events_limit` wait; each CompactRecentEvents moves the waiting events
  // of whole devices, about `compaction_slice` at a time (docs/performance.md, "Storage").
  int64_t recent_events_limit = 50000;
  int64_t compaction_slice = 2000;
  // Waiting pays only when a device brings several events before its turn to move comes: with
  // more than recent_events_limit / min_waiting_per_device devices, events go straight in.
  int64_t min_waiting_per_device = 4;
};

// Opens (creating if needed) and migrates the database. FailedPrecondition when the file was
// written by a newer hub (a schema version this build does not know).
Result<std::unique_ptr<Store>> OpenSqliteStore(const SqliteStoreOptions& options);

// The schema version this build writes.
int SqliteSchemaVersion();

}  // namespace instrumeter::hub
