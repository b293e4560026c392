// The durable outbox (state_dir/outbox.db, SQLite in WAL mode with synchronous=FULL and exclusive
// locking, so no other process can open it while the agent runs): every event is stored here,
// with its sequence, before it is sent; only what the hub acknowledged is deleted (DESIGN rule 3,
// protocol/README.md "Delivery").
//
//   outbox(seq INTEGER PRIMARY KEY, body BLOB NOT NULL, link BLOB)  -- the exact bytes ever
//       sent, and the event's chain link (protocol/README.md, "Signing"; NULL: chain unknown)
//   meta(key TEXT PRIMARY KEY, value)                     -- device_id, last_sequence,
//       acked_sequence, acked_wall_unix_ms, last_point (the serialised last observation-point
//       event), chain_head (the link of last_sequence), open_session_order_id,
//       open_session_operator
//
// last_sequence survives the deletion of every row, so sequences never repeat across restarts,
// crashes and reboots.
//
// An acknowledgement is applied in memory at once and written to disk (rows deleted,
// acked_sequence recorded) inside the next Append's transaction, or by Sync: one fsync'd commit
// per event instead of two, which halves the agent's disk writes (docs/performance.md, "Agent
// footprint"). A crash before that write only means the next run resends events the hub already
// stored; the hub drops them as duplicates and acknowledges again (DESIGN rule 3). Nothing the
// hub has not acknowledged is ever deleted. One Outbox per file and process (the checkpoint's lock
// guarantees it); used from the agent's loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/sqlite_db.h"
#include "common/status.h"
#include "protocol/codec.h"

namespace instrumeter::agent {

namespace v1 = ::instrumeter::v1;

struct OpenSession {
  std::string order_id;
  std::string operator_name;
};

class Outbox {
 public:
  struct Options {
    // Caps the database at this many pages (SQLite's max_page_count), so that tests can make the
    // disk "full" deterministically. 0: no cap.
    int64_t max_page_count = 0;
  };
  struct Row {
    uint64_t sequence;
    std::string bytes;
    std::string link;  // empty when the chain is unknown
  };

  // Opens or creates the outbox of `device_id`; refuses an outbox that belongs to another device.
  static Result<std::unique_ptr<Outbox>> Open(const std::string& path, const std::string& device_id,
                                              const Options& options);
  // Opens an existing outbox read-only (for `status` while the agent is not running).
  static Result<std::unique_ptr<Outbox>> OpenForReading(const std::string& path);

  // In one transaction: assigns sequence = last_sequence + 1, sets it in `event`, serialises the
  // event once, stores those bytes with their chain link and updates meta. Returns the sequence. On
  // failure (a full disk) nothing is stored, `event` gets its sequence cleared and may be appended
  // again later.
  Result<uint64_t> Append(v1::Event* event);
  // Up to `max_events` consecutive events from `from_sequence` (or the first unacknowledged one,
  // if later) on, stopping before `max_bytes` (but at least one event). Corruption if a sequence
  // is missing.
  Result<std::vector<Row>> Read(uint64_t from_sequence, size_t max_events, size_t max_bytes);
  // The hub committed everything up to `highest`: from now on Read skips those rows; they are
  // deleted and the ack recorded on disk by the next Append or Sync (at once while appends are
  // failing, since deleting is then what frees the space). An ack at or below acked_sequence() is
  // a no-op; one above last_sequence() is refused.
  Status Acknowledge(uint64_t highest, int64_t wall_unix_ms);
  // Writes an acknowledgement that is only in memory (no-op when there is none). The agent calls
  // it before it exits, so a clean stop leaves nothing to resend.
  Status Sync();

  const std::string& device_id() const { return device_id_; }
  uint64_t last_sequence() const { return last_sequence_; }
  uint64_t acked_sequence() const { return acked_sequence_; }
  uint64_t depth() const { return last_sequence_ - acked_sequence_; }
  int64_t acked_wall_unix_ms() const { return acked_wall_unix_ms_; }
  // The last appended StateChange, Heartbeat or AgentStop.
  const std::optional<v1::Event>& last_point() const { return last_point_; }
  // The chain link of last_sequence() (link_0 before the first event); empty when the chain is
  // unknown: an outbox from before signing that had already deleted acknowledged events.
  const std::string& chain_head() const { return chain_head_; }
  // The order of the last SessionMark start not yet followed by a stop.
  const std::optional<OpenSession>& open_session() const { return open_session_; }
  const std::string& path() const { return db_->path(); }

 private:
  explicit Outbox(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}
  Status LoadMeta();
  Status RebuildChain();
  // Sets meta's `key` to the value `bind_value` binds at the given parameter index.
  Status PutMeta(const std::string& key,
                 const std::function<void(SqliteStatement&, int)>& bind_value);
  Status SetMeta(const std::string& key, int64_t value);
  Status SetMeta(const std::string& key, const std::string& value, bool blob);
  Status DeleteMeta(const std::string& key);
  // Deletes the acknowledged rows and records the ack, inside the caller's transaction.
  Status StoreAck();

  std::unique_ptr<SqliteDb> db_;
  std::string device_id_;
  uint64_t last_sequence_ = 0;
  uint64_t acked_sequence_ = 0;
  int64_t acked_wall_unix_ms_ = 0;
  bool ack_unsaved_ = false;     // acked_sequence_ is ahead of the file
  bool append_failing_ = false;  // the last Append could not be stored
  std::optional<v1::Event> last_point_;
  std::string chain_head_;
  std::optional<OpenSession> open_session_;
};

}  // namespace instrumeter::agent
