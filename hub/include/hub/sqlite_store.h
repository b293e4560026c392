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
  // Each commit waits until the disk has it (synchronous=FULL), as an ack promises. Only the
  // archive's connection does without (OpenArchiveStore).
  bool sync_each_commit = true;
  // How often an upgrade of the schema that runs long logs that it is still going.
  int upgrade_progress_ms = 15'000;
};

// Opens (creating if needed) and migrates the database. FailedPrecondition when the file was
// written by a newer hub (a schema version this build does not know).
Result<std::unique_ptr<Store>> OpenSqliteStore(const SqliteStoreOptions& options);

// The schema version this build writes.
int SqliteSchemaVersion();

}  // namespace instrumeter::hub
