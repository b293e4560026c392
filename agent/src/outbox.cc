#include "outbox.h"

#include <algorithm>
#include <filesystem>
#include <functional>

#include "protocol/chain.h"

namespace instrumeter::agent {
namespace {

// Every commit writes each page it touched to the WAL; an append touches about three (the outbox
// leaf, meta, sometimes an interior page), so small pages cut the agent's disk writes roughly
// fourfold. The page size is fixed once a database is in WAL mode, hence set at creation.
constexpr int kPageBytes = 1024;

// `link` is the event's chain link (protocol/README.md, "Signing"); outboxes created before it
// existed get the column at open (AddLinkColumn).
constexpr char kSchema[] =
    "CREATE TABLE IF NOT EXISTS outbox(seq INTEGER PRIMARY KEY, body BLOB NOT NULL, link BLOB);"
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value);";

Status Create(const std::string& path) {
  auto db = SqliteDb::Open(path, SqliteDb::Options{.journal_mode = "DELETE"});
  if (!db.ok()) return db.status();
  INSTRUMETER_RETURN_IF_ERROR((*db)->Exec("PRAGMA page_size=" + std::to_string(kPageBytes)));
  return (*db)->Exec(kSchema);
}

Status AddLinkColumn(SqliteDb* db) {
  auto columns = db->Prepare("SELECT 1 FROM pragma_table_info('outbox') WHERE name = 'link'");
  if (!columns.ok()) return columns.status();
  Result<bool> has = columns->Step();
  if (!has.ok()) return has.status();
  if (*has) return Status::Ok();
  return db->Exec("ALTER TABLE outbox ADD COLUMN link BLOB");
}

}  // namespace

Result<std::unique_ptr<Outbox>> Outbox::Open(const std::string& path, const std::string& device_id,
                                             const Options& options) {
  if (!std::filesystem::exists(path)) INSTRUMETER_RETURN_IF_ERROR(Create(path));
  // Exclusive: the -shm index file cost about 1 MB/h of page writebacks (docs/performance.md,
  // "Agent footprint"). Only this agent opens the file while it runs (the checkpoint's lock
  // keeps others out; `status` asks over agent.sock); readers open it when it has stopped.
  auto db = SqliteDb::Open(
      path,
      SqliteDb::Options{.journal_mode = "WAL", .synchronous = "FULL", .exclusive_locking = true});
  if (!db.ok()) return db.status();
  std::unique_ptr<Outbox> outbox(new Outbox(std::move(*db)));
  if (options.max_page_count > 0)
    INSTRUMETER_RETURN_IF_ERROR(
        outbox->db_->Exec("PRAGMA max_page_count=" + std::to_string(options.max_page_count)));
  {
    auto txn = SqliteTransaction::Begin(outbox->db_.get());
    if (!txn.ok()) return txn.status();
    INSTRUMETER_RETURN_IF_ERROR(outbox->db_->Exec(kSchema));
    INSTRUMETER_RETURN_IF_ERROR(AddLinkColumn(outbox->db_.get()));
    INSTRUMETER_RETURN_IF_ERROR(outbox->LoadMeta());
    if (outbox->device_id_.empty()) {
      INSTRUMETER_RETURN_IF_ERROR(outbox->SetMeta("device_id", device_id, /*blob=*/false));
      outbox->device_id_ = device_id;
    }
    if (outbox->device_id_ != device_id)
      return Status::FailedPrecondition("outbox " + path + " belongs to device '" +
                                        outbox->device_id_ + "', not '" + device_id +
                                        "': refusing to send another device's events");
    if (outbox->chain_head_.empty()) INSTRUMETER_RETURN_IF_ERROR(outbox->RebuildChain());
    INSTRUMETER_RETURN_IF_ERROR(txn->Commit());
  }
  return outbox;
}

// An outbox from before signing has events but no chain head. The chain starts at sequence 1, so
// it can be rebuilt only while every event since 1 is still here (none acknowledged yet);
// otherwise it stays unknown and the agent cannot sign (Recorder refuses to start with a key).
Status Outbox::RebuildChain() {
  std::string link = protocol::ChainGenesis(device_id_);
  if (last_sequence_ > 0) {
    if (acked_sequence_ > 0) return Status::Ok();
    auto rows = db_->Prepare("SELECT seq, body FROM outbox ORDER BY seq");
    if (!rows.ok()) return rows.status();
    auto update = db_->Prepare("UPDATE outbox SET link = ? WHERE seq = ?");
    if (!update.ok()) return update.status();
    uint64_t expected = 1;
    while (true) {
      Result<bool> row = rows->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      if (static_cast<uint64_t>(rows->Int(0)) != expected) return Status::Ok();
      link = protocol::ChainNext(link, rows->Blob(1));
      update->Reset();
      INSTRUMETER_RETURN_IF_ERROR(
          update->BindBlob(1, link).Bind(2, static_cast<int64_t>(expected)).Run());
      ++expected;
    }
    if (expected != last_sequence_ + 1) return Status::Ok();
  }
  INSTRUMETER_RETURN_IF_ERROR(SetMeta("chain_head", link, /*blob=*/true));
  chain_head_ = std::move(link);
  return Status::Ok();
}

Result<std::unique_ptr<Outbox>> Outbox::OpenForReading(const std::string& path) {
  if (!std::filesystem::exists(path)) return Status::NotFound("no outbox at " + path);
  auto db = SqliteDb::Open(path, SqliteDb::Options{.read_only = true, .create = false});
  if (!db.ok()) return db.status();
  std::unique_ptr<Outbox> outbox(new Outbox(std::move(*db)));
  INSTRUMETER_RETURN_IF_ERROR(outbox->LoadMeta());
  return outbox;
}

Status Outbox::LoadMeta() {
  auto stmt = db_->Prepare("SELECT key, value FROM meta");
  if (!stmt.ok()) return stmt.status();
  while (true) {
    Result<bool> row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    const std::string key = stmt->Text(0);
    if (key == "device_id") {
      device_id_ = stmt->Text(1);
    } else if (key == "last_sequence") {
      last_sequence_ = static_cast<uint64_t>(stmt->Int(1));
    } else if (key == "acked_sequence") {
      acked_sequence_ = static_cast<uint64_t>(stmt->Int(1));
    } else if (key == "acked_wall_unix_ms") {
      acked_wall_unix_ms_ = stmt->Int(1);
    } else if (key == "last_point") {
      v1::Event event;
      if (!event.ParseFromString(stmt->Blob(1)))
        return Status::Corruption("outbox " + db_->path() + ": meta last_point does not parse");
      last_point_ = std::move(event);
    } else if (key == "chain_head") {
      chain_head_ = stmt->Blob(1);
    } else if (key == "open_session_order_id") {
      if (!open_session_) open_session_.emplace();
      open_session_->order_id = stmt->Text(1);
    } else if (key == "open_session_operator") {
      if (!open_session_) open_session_.emplace();
      open_session_->operator_name = stmt->Text(1);
    }
  }
  if (acked_sequence_ > last_sequence_)
    return Status::Corruption("outbox " + db_->path() + ": acked_sequence " +
                              std::to_string(acked_sequence_) + " is above last_sequence " +
                              std::to_string(last_sequence_));
  return Status::Ok();
}

// UPDATE first: it rewrites the row in place, so only meta's table page changes. INSERT OR
// REPLACE would delete the row and insert it under a new rowid, which also rewrites the page of
// meta's key index: one more page in the WAL, one more fsync'd KiB, with every event.
Status Outbox::PutMeta(const std::string& key,
                       const std::function<void(SqliteStatement&, int)>& bind_value) {
  auto update = db_->Prepare("UPDATE meta SET value = ? WHERE key = ?");
  if (!update.ok()) return update.status();
  bind_value(*update, 1);
  INSTRUMETER_RETURN_IF_ERROR(update->Bind(2, key).Run());
  if (db_->Changes() > 0) return Status::Ok();
  auto insert = db_->Prepare("INSERT INTO meta(key, value) VALUES(?, ?)");
  if (!insert.ok()) return insert.status();
  bind_value(*insert, 2);
  return insert->Bind(1, key).Run();
}

Status Outbox::SetMeta(const std::string& key, int64_t value) {
  return PutMeta(key, [value](SqliteStatement& stmt, int index) { stmt.Bind(index, value); });
}

Status Outbox::SetMeta(const std::string& key, const std::string& value, bool blob) {
  return PutMeta(key, [&value, blob](SqliteStatement& stmt, int index) {
    if (blob)
      stmt.BindBlob(index, value);
    else
      stmt.Bind(index, std::string_view(value));
  });
}

Status Outbox::DeleteMeta(const std::string& key) {
  auto stmt = db_->Prepare("DELETE FROM meta WHERE key = ?");
  if (!stmt.ok()) return stmt.status();
  return stmt->Bind(1, key).Run();
}

Result<uint64_t> Outbox::Append(v1::Event* event) {
  if (event->sequence() != 0)
    return Status::Internal("event already carries sequence " + std::to_string(event->sequence()));
  const uint64_t sequence = last_sequence_ + 1;
  event->set_sequence(sequence);
  const std::string bytes = event->SerializeAsString();
  // An unknown chain stays unknown: a link over a guessed predecessor would be a lie.
  const std::string link = chain_head_.empty() ? "" : protocol::ChainNext(chain_head_, bytes);
  std::optional<OpenSession> session = open_session_;
  auto store = [&]() -> Status {
    auto txn = SqliteTransaction::Begin(db_.get());
    if (!txn.ok()) return txn.status();
    auto insert = db_->Prepare("INSERT INTO outbox(seq, body, link) VALUES(?, ?, ?)");
    if (!insert.ok()) return insert.status();
    insert->Bind(1, static_cast<int64_t>(sequence)).BindBlob(2, bytes);
    if (link.empty()) {
      insert->BindNull(3);
    } else {
      insert->BindBlob(3, link);
      INSTRUMETER_RETURN_IF_ERROR(SetMeta("chain_head", link, /*blob=*/true));
    }
    INSTRUMETER_RETURN_IF_ERROR(insert->Run());
    INSTRUMETER_RETURN_IF_ERROR(SetMeta("last_sequence", static_cast<int64_t>(sequence)));
    if (ack_unsaved_) INSTRUMETER_RETURN_IF_ERROR(StoreAck());
    if (protocol::IsObservationPoint(*event))
      INSTRUMETER_RETURN_IF_ERROR(SetMeta("last_point", bytes, /*blob=*/true));
    if (event->has_session_mark()) {
      const v1::SessionMark& mark = event->session_mark();
      if (mark.kind() == v1::SessionMark::KIND_START) {
        session = OpenSession{mark.order_id(), mark.operator_name()};
        INSTRUMETER_RETURN_IF_ERROR(SetMeta("open_session_order_id", mark.order_id(), false));
        INSTRUMETER_RETURN_IF_ERROR(SetMeta("open_session_operator", mark.operator_name(), false));
      } else {
        session.reset();
        INSTRUMETER_RETURN_IF_ERROR(DeleteMeta("open_session_order_id"));
        INSTRUMETER_RETURN_IF_ERROR(DeleteMeta("open_session_operator"));
      }
    }
    return txn->Commit();
  };
  if (Status st = store(); !st.ok()) {
    event->clear_sequence();
    append_failing_ = true;
    return st.WithContext("cannot store event " + std::to_string(sequence));
  }
  append_failing_ = false;
  ack_unsaved_ = false;
  last_sequence_ = sequence;
  if (!link.empty()) chain_head_ = link;
  if (protocol::IsObservationPoint(*event)) last_point_ = *event;
  open_session_ = std::move(session);
  return sequence;
}

Result<std::vector<Outbox::Row>> Outbox::Read(uint64_t from_sequence, size_t max_events,
                                              size_t max_bytes) {
  // Acknowledged events are gone; reading starts at the first that is not.
  from_sequence = std::max(from_sequence, acked_sequence_ + 1);
  auto stmt =
      db_->Prepare("SELECT seq, body, link FROM outbox WHERE seq >= ? ORDER BY seq LIMIT ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, static_cast<int64_t>(from_sequence)).Bind(2, static_cast<int64_t>(max_events));
  std::vector<Row> rows;
  size_t bytes = 0;
  while (true) {
    Result<bool> more = stmt->Step();
    if (!more.ok()) return more.status();
    if (!*more) break;
    Row row{static_cast<uint64_t>(stmt->Int(0)), stmt->Blob(1),
            stmt->IsNull(2) ? std::string() : stmt->Blob(2)};
    if (row.sequence != from_sequence + rows.size())
      return Status::Corruption(
          "outbox " + db_->path() + ": event " + std::to_string(from_sequence + rows.size()) +
          " is missing (next stored is " + std::to_string(row.sequence) + ")");
    if (!rows.empty() && bytes + row.bytes.size() > max_bytes) break;
    bytes += row.bytes.size();
    rows.push_back(std::move(row));
  }
  return rows;
}

Status Outbox::Acknowledge(uint64_t highest, int64_t wall_unix_ms) {
  if (highest <= acked_sequence_) return Status::Ok();
  if (highest > last_sequence_)
    return Status::InvalidArgument("ack of sequence " + std::to_string(highest) +
                                   " is above the last event ever stored (" +
                                   std::to_string(last_sequence_) + ")");
  const uint64_t previous_sequence = acked_sequence_;
  const int64_t previous_wall_unix_ms = acked_wall_unix_ms_;
  const bool previous_unsaved = ack_unsaved_;
  acked_sequence_ = highest;
  acked_wall_unix_ms_ = wall_unix_ms;
  ack_unsaved_ = true;
  // With the disk full, waiting for the next append would wait forever: the deletes are what
  // make room for it.
  if (!append_failing_) return Status::Ok();
  Status st = Sync();
  if (!st.ok()) {
    acked_sequence_ = previous_sequence;
    acked_wall_unix_ms_ = previous_wall_unix_ms;
    ack_unsaved_ = previous_unsaved;
  }
  return st;
}

Status Outbox::StoreAck() {
  auto del = db_->Prepare("DELETE FROM outbox WHERE seq <= ?");
  if (!del.ok()) return del.status();
  INSTRUMETER_RETURN_IF_ERROR(del->Bind(1, static_cast<int64_t>(acked_sequence_)).Run());
  INSTRUMETER_RETURN_IF_ERROR(SetMeta("acked_sequence", static_cast<int64_t>(acked_sequence_)));
  return SetMeta("acked_wall_unix_ms", acked_wall_unix_ms_);
}

Status Outbox::Sync() {
  if (!ack_unsaved_) return Status::Ok();
  auto txn = SqliteTransaction::Begin(db_.get());
  if (!txn.ok()) return txn.status();
  INSTRUMETER_RETURN_IF_ERROR(StoreAck());
  INSTRUMETER_RETURN_IF_ERROR(txn->Commit());
  ack_unsaved_ = false;
  return Status::Ok();
}

}  // namespace instrumeter::agent
