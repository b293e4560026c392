#include "hub/sqlite_store.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <utility>

#include "common/sqlite_db.h"
#include "event_block.h"
#include "protocol/chain.h"
#include "sqlite_billing.h"

namespace instrumeter::hub {
namespace {

// Migration N (0-based) takes the database from user_version N to N + 1. Append only: a
// released migration is never edited.
constexpr std::array<const char*, 7> kMigrations = {
    R"sql(
CREATE TABLE instruments(
  instrument_id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  institution TEXT NOT NULL,
  site TEXT NOT NULL,
  city TEXT NOT NULL,
  region TEXT NOT NULL,
  created_unix_ms INTEGER NOT NULL
);
-- One row per device that ever sent telemetry or status. The ingest cursor, the derivation
-- state and the live state live here so that one transaction keeps them in step with the events.
CREATE TABLE devices(
  dev_key INTEGER PRIMARY KEY,
  device_id TEXT NOT NULL UNIQUE,
  contiguous_seq INTEGER NOT NULL DEFAULT 0,
  events_stored INTEGER NOT NULL DEFAULT 0,
  -- derivation: is a run open, the state in force, the last observation point (the end of the
  -- last run while none is open) and the open state interval
  run_open INTEGER NOT NULL DEFAULT 0,
  run_state INTEGER NOT NULL DEFAULT 0,
  last_seq INTEGER,
  last_wall_unix_ms INTEGER,
  last_monotonic_ms INTEGER,
  last_boot_id TEXT,
  last_powered_ms INTEGER,
  last_in_use_ms INTEGER,
  open_interval_id INTEGER,
  -- live state
  live_state INTEGER NOT NULL DEFAULT 0,
  state_since_wall_ms INTEGER NOT NULL DEFAULT 0,
  online INTEGER,
  status_since_unix_ms INTEGER NOT NULL DEFAULT 0,
  last_seen_unix_ms INTEGER NOT NULL DEFAULT 0,
  agent_version TEXT NOT NULL DEFAULT '',
  outbox_depth INTEGER NOT NULL DEFAULT 0,
  counters_seq INTEGER NOT NULL DEFAULT 0,
  powered_ms INTEGER NOT NULL DEFAULT 0,
  in_use_ms INTEGER NOT NULL DEFAULT 0
);
-- kind: the Event body's protobuf field number; state: the InstrumentState number. Both are
-- fixed by the wire contract.
CREATE TABLE events(
  dev_key INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  state INTEGER,
  boot_id TEXT NOT NULL,
  monotonic_ms INTEGER NOT NULL,
  wall_unix_ms INTEGER NOT NULL,
  powered_ms INTEGER,
  in_use_ms INTEGER,
  body BLOB NOT NULL,
  received_unix_ms INTEGER NOT NULL,
  UNIQUE(dev_key, seq)
);
CREATE TABLE intervals(
  id INTEGER PRIMARY KEY,
  dev_key INTEGER NOT NULL,
  kind TEXT NOT NULL CHECK(kind IN ('state', 'gap')),
  state INTEGER,
  boot_id TEXT NOT NULL,
  start_wall_unix_ms INTEGER NOT NULL,
  duration_ms INTEGER NOT NULL,
  start_seq INTEGER NOT NULL,
  end_seq INTEGER NOT NULL,
  start_powered_ms INTEGER NOT NULL,
  end_powered_ms INTEGER NOT NULL,
  start_in_use_ms INTEGER NOT NULL,
  end_in_use_ms INTEGER NOT NULL,
  flags TEXT NOT NULL DEFAULT '',
  UNIQUE(dev_key, kind, start_seq)
);
CREATE INDEX intervals_by_start ON intervals(dev_key, start_wall_unix_ms);
)sql",
    kBillingMigration,
    // 3: signed telemetry (protocol/README.md, "Signing"; docs/security.md). Chain links of
    // events stored before it are filled in by the ingestor at its next start.
    R"sql(
ALTER TABLE devices ADD COLUMN chain_link BLOB;
ALTER TABLE devices ADD COLUMN signed_through INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN chain_broken_from INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN chain_head_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN chain_head BLOB;
ALTER TABLE devices ADD COLUMN chain_signature BLOB;
ALTER TABLE devices ADD COLUMN chain_reset_unix_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN link BLOB;
CREATE TABLE device_keys(
  key_id INTEGER PRIMARY KEY,
  device_id TEXT NOT NULL,
  public_key BLOB NOT NULL,
  cert_serial TEXT NOT NULL,
  enrolled_unix_ms INTEGER NOT NULL,
  revoked_unix_ms INTEGER,
  revoked_signed_through INTEGER NOT NULL DEFAULT 0,
  chain_reset_requested_unix_ms INTEGER NOT NULL DEFAULT 0
);
-- At most one active key per device.
CREATE UNIQUE INDEX device_keys_active ON device_keys(device_id) WHERE revoked_unix_ms IS NULL;
CREATE INDEX device_keys_by_device ON device_keys(device_id);
-- Stretches of a broken chain that an operator reset left behind: never billable.
CREATE TABLE unproven_ranges(
  dev_key INTEGER NOT NULL,
  from_seq INTEGER NOT NULL,
  to_seq INTEGER NOT NULL,
  resolved_unix_ms INTEGER NOT NULL,
  PRIMARY KEY(dev_key, from_seq)
);
-- Bearer tokens of the HTTP API: only the SHA-256 of each token is kept.
CREATE TABLE api_tokens(
  name TEXT PRIMARY KEY,
  sha256 BLOB NOT NULL UNIQUE,
  created_unix_ms INTEGER NOT NULL,
  revoked_unix_ms INTEGER
);
)sql",
    // 4: customers' share links to remote bookings (docs/security.md, "Share links"). Only the
    // SHA-256 of each token is kept; at most one active link per order. And what the live view
    // needs to keep bookings in memory cheaply (docs/live-api.md).
    R"sql(
CREATE TABLE share_links(
  sha256 BLOB PRIMARY KEY,
  order_id TEXT NOT NULL,
  created_unix_ms INTEGER NOT NULL,
  revoked_unix_ms INTEGER
);
CREATE UNIQUE INDEX share_links_active ON share_links(order_id) WHERE revoked_unix_ms IS NULL;
-- The live view reads the bookings that have not ended, of every instrument: by their end.
CREATE INDEX bookings_by_end ON bookings(end_unix_ms);
-- Grows with every PutBookings that inserts or changes a booking, so that the live view reads
-- bookings again only when they changed.
CREATE TABLE bookings_version(
  one INTEGER PRIMARY KEY CHECK(one = 1),
  version INTEGER NOT NULL
);
INSERT INTO bookings_version(one, version) VALUES(1, 0);
)sql",
    // 5: the running hub re-reads the device keys only when they changed: reading and parsing
    // every key every key_reload_ms took 15 % of its CPU at 20,000 devices (docs/performance.md,
    // "Capacity"). Triggers count every change, from any process.
    R"sql(
CREATE TABLE device_keys_version(
  one INTEGER PRIMARY KEY CHECK(one = 1),
  version INTEGER NOT NULL
);
INSERT INTO device_keys_version(one, version) VALUES(1, 0);
CREATE TRIGGER device_keys_inserted AFTER INSERT ON device_keys
  BEGIN UPDATE device_keys_version SET version = version + 1 WHERE one = 1; END;
CREATE TRIGGER device_keys_updated AFTER UPDATE ON device_keys
  BEGIN UPDATE device_keys_version SET version = version + 1 WHERE one = 1; END;
CREATE TRIGGER device_keys_deleted AFTER DELETE ON device_keys
  BEGIN UPDATE device_keys_version SET version = version + 1 WHERE one = 1; END;
)sql",
    // 6: the archive of settled events (docs/hub.md, "Archive"): a run of one device's
    // consecutive events, signed and old enough, kept as one compressed block (event_block.h)
    // instead of one row each. archived_through: every event up to it is in a block, or is a
    // session mark, which stays a row.
    R"sql(
CREATE TABLE event_blocks(
  dev_key INTEGER NOT NULL,
  first_seq INTEGER NOT NULL,
  last_seq INTEGER NOT NULL,
  first_link BLOB NOT NULL,
  raw_bytes INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY(dev_key, first_seq)
);
ALTER TABLE devices ADD COLUMN archived_through INTEGER NOT NULL DEFAULT 0;
)sql",
    // 7: events kept in (device, sequence) order instead of arrival order (docs/performance.md,
    // "Events in device order"): the archive then deletes a device's run from consecutive pages
    // instead of rewriting every page that also holds other devices' events. The copy reads the
    // old table in its own order and sorts (NOT INDEXED): going by the (dev_key, seq) index reads
    // its rows at random, twice as slow on a table in memory and far slower on one that is not.
    R"sql(
CREATE TABLE events_by_device(
  dev_key INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  state INTEGER,
  boot_id TEXT NOT NULL,
  monotonic_ms INTEGER NOT NULL,
  wall_unix_ms INTEGER NOT NULL,
  powered_ms INTEGER,
  in_use_ms INTEGER,
  body BLOB NOT NULL,
  received_unix_ms INTEGER NOT NULL,
  link BLOB,
  PRIMARY KEY(dev_key, seq)
) WITHOUT ROWID;
INSERT INTO events_by_device SELECT dev_key, seq, kind, state, boot_id, monotonic_ms,
  wall_unix_ms, powered_ms, in_use_ms, body, received_unix_ms, link FROM events NOT INDEXED
  ORDER BY dev_key, seq;
DROP TABLE events;
ALTER TABLE events_by_device RENAME TO events;
CREATE INDEX events_session_marks ON events(dev_key, wall_unix_ms) WHERE kind = 12;
)sql",
};

constexpr char kIntervalColumns[] =
    "i.kind, i.state, i.boot_id, i.start_wall_unix_ms, i.duration_ms, i.start_seq, i.end_seq, "
    "i.start_powered_ms, i.end_powered_ms, i.start_in_use_ms, i.end_in_use_ms, i.flags";

// Reads kIntervalColumns starting at column `c`.
Result<Interval> ReadInterval(const SqliteStatement& s, int c) {
  Interval iv;
  iv.kind = s.Text(c) == "gap" ? IntervalKind::kGap : IntervalKind::kState;
  iv.state = static_cast<v1::InstrumentState>(s.Int(c + 1));
  iv.boot_id = s.Text(c + 2);
  iv.start_wall_unix_ms = s.Int(c + 3);
  iv.duration_ms = s.Int(c + 4);
  iv.start_seq = static_cast<uint64_t>(s.Int(c + 5));
  iv.end_seq = static_cast<uint64_t>(s.Int(c + 6));
  iv.start_powered_ms = static_cast<uint64_t>(s.Int(c + 7));
  iv.end_powered_ms = static_cast<uint64_t>(s.Int(c + 8));
  iv.start_in_use_ms = static_cast<uint64_t>(s.Int(c + 9));
  iv.end_in_use_ms = static_cast<uint64_t>(s.Int(c + 10));
  Result<uint32_t> flags = FlagsFromString(s.Text(c + 11));
  if (!flags.ok()) return flags.status();
  iv.flags = *flags;
  return iv;
}

int64_t I64(uint64_t v) { return static_cast<int64_t>(v); }

constexpr char kEventColumns[] =
    "e.seq, e.kind, e.state, e.boot_id, e.monotonic_ms, e.wall_unix_ms, e.powered_ms, "
    "e.in_use_ms, e.body, e.received_unix_ms, e.link";

// Reads kEventColumns starting at column `c`.
EventRow ReadEventRow(const SqliteStatement& s, int c) {
  EventRow e;
  e.seq = static_cast<uint64_t>(s.Int(c));
  e.kind = static_cast<int>(s.Int(c + 1));
  if (!s.IsNull(c + 2)) e.state = static_cast<v1::InstrumentState>(s.Int(c + 2));
  e.boot_id = s.Text(c + 3);
  e.monotonic_ms = s.Int(c + 4);
  e.wall_unix_ms = s.Int(c + 5);
  if (!s.IsNull(c + 6)) e.powered_ms = static_cast<uint64_t>(s.Int(c + 6));
  if (!s.IsNull(c + 7)) e.in_use_ms = static_cast<uint64_t>(s.Int(c + 7));
  e.body = s.Blob(c + 8);
  e.received_unix_ms = s.Int(c + 9);
  if (!s.IsNull(c + 10)) e.link = s.Blob(c + 10);
  return e;
}

// Whether two rows hold the same event: every stored column and the link.
bool SameRow(const EventRow& a, const EventRow& b) {
  return a.seq == b.seq && a.kind == b.kind && a.state == b.state && a.boot_id == b.boot_id &&
         a.monotonic_ms == b.monotonic_ms && a.wall_unix_ms == b.wall_unix_ms &&
         a.powered_ms == b.powered_ms && a.in_use_ms == b.in_use_ms && a.body == b.body &&
         a.received_unix_ms == b.received_unix_ms && a.link == b.link;
}

// Whether a stored row's columns are what its bytes say (MakeEventRow), so that a block, which
// keeps only the bytes, gives the same row back.
bool ColumnsMatchBytes(const EventRow& row) {
  v1::Event event;
  if (!event.ParseFromString(row.body)) return false;
  EventRow decoded = MakeEventRow(event, row.body, row.received_unix_ms);
  decoded.link = row.link;
  return SameRow(decoded, row);
}

class SqliteStore : public Store {
 public:
  explicit SqliteStore(std::unique_ptr<SqliteDb> db)
      : db_(std::move(db)), billing_(std::make_unique<SqliteBilling>(db_.get())) {}

  Status Init(std::chrono::milliseconds upgrade_progress) {
    INSTRUMETER_RETURN_IF_ERROR(Migrate(upgrade_progress));
    INSTRUMETER_RETURN_IF_ERROR(PrepareStatements());
    return billing_->Prepare();
  }

  Status PutInstruments(const std::vector<Instrument>& instruments, int64_t now_unix_ms) override {
    return PutInstrumentsAndRules(instruments, {}, now_unix_ms);
  }

  Status AddInstrument(const Instrument& instrument, int64_t now_unix_ms) override {
    insert_instrument_->Reset();
    BindInstrument(&*insert_instrument_, instrument, now_unix_ms);
    Status st = insert_instrument_->Run();
    if (st.code() == Status::Code::kAlreadyExists)
      return Status::AlreadyExists("instrument '" + instrument.instrument_id +
                                   "' is already registered");
    return st;
  }

  Result<std::vector<Instrument>> ListInstruments() override {
    Result<SqliteStatement> s = db_->Prepare(
        "SELECT instrument_id, name, institution, site, city, region, created_unix_ms "
        "FROM instruments ORDER BY instrument_id");
    if (!s.ok()) return s.status();
    std::vector<Instrument> out;
    while (true) {
      Result<bool> row = s->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      out.push_back(
          {s->Text(0), s->Text(1), s->Text(2), s->Text(3), s->Text(4), s->Text(5), s->Int(6)});
    }
    return out;
  }

  Result<bool> InstrumentExists(const std::string& instrument_id) override {
    instrument_exists_->Reset();
    instrument_exists_->Bind(1, instrument_id);
    Result<bool> row = instrument_exists_->Step();
    if (!row.ok()) return row.status();
    const bool exists = *row;
    instrument_exists_->Reset();
    return exists;
  }

  Result<std::vector<LoadedDevice>> LoadDevices() override {
    Result<SqliteStatement> s = db_->Prepare(
        std::string("SELECT d.dev_key, d.device_id, d.contiguous_seq, d.events_stored, "
                    "d.run_open, d.run_state, d.last_seq, d.last_wall_unix_ms, "
                    "d.last_monotonic_ms, d.last_boot_id, d.last_powered_ms, d.last_in_use_ms, "
                    "d.live_state, d.state_since_wall_ms, d.online, d.status_since_unix_ms, "
                    "d.last_seen_unix_ms, d.agent_version, d.outbox_depth, d.counters_seq, "
                    "d.powered_ms, d.in_use_ms, d.chain_link, d.signed_through, "
                    "d.chain_broken_from, d.chain_head_seq, d.chain_head, d.chain_reset_unix_ms, "
                    "d.chain_signature, i.id, ") +
        kIntervalColumns +
        " FROM devices d LEFT JOIN intervals i ON i.id = d.open_interval_id ORDER BY d.dev_key");
    if (!s.ok()) return s.status();
    std::vector<LoadedDevice> out;
    std::map<int64_t, size_t> by_key;
    while (true) {
      Result<bool> row = s->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      LoadedDevice dev;
      DeviceRecord& r = dev.record;
      r.device_id = s->Text(1);
      r.contiguous_seq = static_cast<uint64_t>(s->Int(2));
      r.events_stored = static_cast<uint64_t>(s->Int(3));
      r.derivation.run_open = s->Int(4) != 0;
      r.derivation.state = static_cast<v1::InstrumentState>(s->Int(5));
      if (!s->IsNull(6)) {
        ObservationPoint p;
        p.seq = static_cast<uint64_t>(s->Int(6));
        p.at.wall_unix_ms = s->Int(7);
        p.at.monotonic_ms = s->Int(8);
        p.at.boot_id = s->Text(9);
        p.powered_ms = static_cast<uint64_t>(s->Int(10));
        p.in_use_ms = static_cast<uint64_t>(s->Int(11));
        r.derivation.last = p;
      }
      LiveState& live = r.live;
      live.state = static_cast<v1::InstrumentState>(s->Int(12));
      live.state_since_wall_ms = s->Int(13);
      if (!s->IsNull(14)) live.online = s->Int(14) != 0;
      live.status_since_unix_ms = s->Int(15);
      live.last_seen_unix_ms = s->Int(16);
      live.agent_version = s->Text(17);
      live.outbox_depth = static_cast<uint64_t>(s->Int(18));
      live.counters_seq = static_cast<uint64_t>(s->Int(19));
      live.powered_ms = static_cast<uint64_t>(s->Int(20));
      live.in_use_ms = static_cast<uint64_t>(s->Int(21));
      ChainState& chain = r.chain;
      chain.link = s->IsNull(22) ? std::string() : s->Blob(22);
      chain.signed_through = static_cast<uint64_t>(s->Int(23));
      chain.broken_from = static_cast<uint64_t>(s->Int(24));
      chain.head_seq = static_cast<uint64_t>(s->Int(25));
      chain.head = s->IsNull(26) ? std::string() : s->Blob(26);
      chain.reset_unix_ms = s->Int(27);
      chain.signature = s->IsNull(28) ? std::string() : s->Blob(28);
      if (!s->IsNull(29)) {
        Result<Interval> open = ReadInterval(*s, 30);
        if (!open.ok()) return open.status().WithContext("device '" + r.device_id + "'");
        r.derivation.open_interval = *open;
      }
      if (r.derivation.run_open != r.derivation.open_interval.has_value())
        return Status::Corruption("database " + db_->path() + ": device '" + r.device_id +
                                  "': run_open and open_interval_id disagree");
      by_key[s->Int(0)] = out.size();
      dev_keys_[r.device_id] = s->Int(0);
      out.push_back(std::move(dev));
    }
    // Islands of consecutive sequences above each device's contiguous prefix.
    Result<SqliteStatement> ranges = db_->Prepare(
        "SELECT dev_key, MIN(seq), MAX(seq) FROM ("
        "  SELECT e.dev_key, e.seq, e.seq - ROW_NUMBER() OVER ("
        "      PARTITION BY e.dev_key ORDER BY e.seq) AS island"
        "  FROM devices d JOIN events e ON e.dev_key = d.dev_key AND e.seq > d.contiguous_seq)"
        " GROUP BY dev_key, island ORDER BY dev_key, 2");
    if (!ranges.ok()) return ranges.status();
    while (true) {
      Result<bool> row = ranges->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      auto it = by_key.find(ranges->Int(0));
      if (it == by_key.end()) continue;
      out[it->second].stored_above.push_back(
          {static_cast<uint64_t>(ranges->Int(1)), static_cast<uint64_t>(ranges->Int(2))});
    }
    return out;
  }

  Result<std::vector<EventRow>> ReadEvents(const std::string& device_id, uint64_t from_seq,
                                           uint64_t to_seq) override {
    // One statement reads the rows and the blocks, so both come from one snapshot even while an
    // archiver moves rows into blocks on another connection.
    std::vector<EventRow> out;
    SqliteStatement& s = *read_events_;
    s.Reset();
    s.Bind(1, device_id).Bind(2, I64(from_seq)).Bind(3, I64(to_seq));
    while (true) {
      Result<bool> row = s.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      if (s.Int(0) == 0) {
        out.push_back(ReadEventRow(s, 1));
        continue;
      }
      EventBlock block{.first_seq = static_cast<uint64_t>(s.Int(1)),
                       .last_seq = static_cast<uint64_t>(s.Int(2)),
                       .first_link = s.Blob(3),
                       .raw_bytes = static_cast<uint64_t>(s.Int(4)),
                       .data = s.Blob(5)};
      Result<std::vector<EventRow>> rows = DecodeEventBlock(block);
      if (!rows.ok())
        return rows.status().WithContext("database " + db_->path() + ": device '" + device_id +
                                         "'");
      for (EventRow& e : *rows)
        if (e.seq >= from_seq && e.seq <= to_seq) out.push_back(std::move(e));
    }
    s.Reset();
    std::sort(out.begin(), out.end(),
              [](const EventRow& a, const EventRow& b) { return a.seq < b.seq; });
    for (size_t i = 1; i < out.size(); ++i)
      if (out[i].seq == out[i - 1].seq)
        return Status::Corruption("database " + db_->path() + ": device '" + device_id + "': seq " +
                                  std::to_string(out[i].seq) + " is both a row and in a block");
    return out;
  }

  Status CommitBatch(const Batch& batch) override {
    Result<SqliteTransaction> tx = SqliteTransaction::Begin(db_.get());
    if (!tx.ok()) return tx.status().WithContext("commit batch");
    std::map<std::string, int64_t> new_keys;  // cached only once the commit succeeded
    for (const DeviceBatch& dev : batch.devices) {
      const std::string& id = dev.record.device_id;
      Result<int64_t> key = DevKey(id, &new_keys);
      if (!key.ok()) return key.status().WithContext("commit batch: device '" + id + "'");
      for (const EventRow& e : dev.events) {
        Status st = InsertEvent(*key, e);
        if (!st.ok())
          return st.WithContext("commit batch: device '" + id + "' seq " + std::to_string(e.seq));
      }
      // Before the intervals are written: it compares them with their stored versions.
      Status facts = billing_->RecordBatchFacts(*key, dev);
      if (!facts.ok()) return facts.WithContext("commit batch: device '" + id + "'");
      for (const Interval& iv : dev.intervals) {
        Status st = UpsertInterval(*key, iv);
        if (!st.ok())
          return st.WithContext("commit batch: device '" + id + "' interval " +
                                IntervalKindName(iv.kind) + " from seq " +
                                std::to_string(iv.start_seq));
      }
      for (const auto& [seq, link] : dev.link_updates) {
        update_link_->Reset();
        Status st = update_link_->BindBlob(1, link).Bind(2, *key).Bind(3, I64(seq)).Run();
        // Links are rewritten only above the signed head, and only rows below it are archived:
        // a link that finds no row would be lost.
        if (st.ok() && db_->Changes() != 1)
          st = Status::Corruption("database " + db_->path() + ": no stored row to take it");
        if (!st.ok())
          return st.WithContext("commit batch: device '" + id + "' link of seq " +
                                std::to_string(seq));
      }
      if (dev.unproven.has_value()) {
        insert_unproven_->Reset();
        Status st = insert_unproven_->Bind(1, *key)
                        .Bind(2, I64(dev.unproven->first))
                        .Bind(3, I64(dev.unproven->last))
                        .Bind(4, dev.record.chain.reset_unix_ms)
                        .Run();
        if (!st.ok()) return st.WithContext("commit batch: device '" + id + "' unproven range");
      }
      Status st = UpdateDevice(*key, dev.record);
      if (!st.ok()) return st.WithContext("commit batch: device '" + id + "'");
    }
    INSTRUMETER_RETURN_IF_ERROR(tx->Commit().WithContext("commit batch"));
    dev_keys_.merge(new_keys);
    return Status::Ok();
  }

  Result<std::vector<DeviceInterval>> ReadIntervals(const std::string& device_id,
                                                    int64_t from_wall_unix_ms,
                                                    int64_t to_wall_unix_ms) override {
    // "?1 = '' OR d.device_id = ?1" would make SQLite walk every device: one device is looked up.
    Result<SqliteStatement> s =
        db_->Prepare(std::string("SELECT d.device_id, ") + kIntervalColumns +
                     " FROM intervals i JOIN devices d ON d.dev_key = i.dev_key WHERE " +
                     (device_id.empty() ? "" : "d.device_id = ?1 AND ") +
                     "i.duration_ms > 0"
                     " AND i.start_wall_unix_ms < ?3 AND i.start_wall_unix_ms + i.duration_ms > ?2"
                     " ORDER BY d.device_id, i.start_wall_unix_ms, i.id");
    if (!s.ok()) return s.status();
    if (!device_id.empty()) s->Bind(1, device_id);
    s->Bind(2, from_wall_unix_ms).Bind(3, to_wall_unix_ms);
    std::vector<DeviceInterval> out;
    while (true) {
      Result<bool> row = s->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      Result<Interval> iv = ReadInterval(*s, 1);
      if (!iv.ok()) return iv.status();
      out.push_back({s->Text(0), std::move(*iv)});
    }
    return out;
  }

  Result<std::vector<DurationSum>> SumDurations() override {
    Result<SqliteStatement> s = db_->Prepare(
        "SELECT d.device_id, i.kind, i.state, SUM(i.duration_ms)"
        " FROM intervals i JOIN devices d ON d.dev_key = i.dev_key"
        " GROUP BY i.dev_key, i.kind, i.state ORDER BY d.device_id");
    if (!s.ok()) return s.status();
    std::vector<DurationSum> out;
    while (true) {
      Result<bool> row = s->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      out.push_back({s->Text(0), s->Text(1) == "gap" ? IntervalKind::kGap : IntervalKind::kState,
                     static_cast<v1::InstrumentState>(s->Int(2)), s->Int(3)});
    }
    return out;
  }

  Status PutInstrumentsAndRules(const std::vector<Instrument>& instruments,
                                const std::vector<RuleOverridesUpdate>& rules,
                                int64_t now_unix_ms) override {
    Result<SqliteTransaction> tx = SqliteTransaction::Begin(db_.get());
    if (!tx.ok()) return tx.status();
    for (const Instrument& in : instruments) {
      upsert_instrument_->Reset();
      BindInstrument(&*upsert_instrument_, in, now_unix_ms);
      INSTRUMETER_RETURN_IF_ERROR(
          upsert_instrument_->Run().WithContext("instrument '" + in.instrument_id + "'"));
    }
    INSTRUMETER_RETURN_IF_ERROR(billing_->ApplyRuleUpdates(rules));
    return tx->Commit();
  }
  Result<std::vector<InstrumentRuleOverrides>> ListRuleOverrides() override {
    return billing_->ListRuleOverrides();
  }
  Result<PutBookingsOutcome> PutBookings(const std::vector<Booking>& bookings,
                                         int64_t now_unix_ms) override {
    return billing_->PutBookings(bookings, now_unix_ms);
  }
  Result<std::vector<Booking>> ListBookings(const BookingFilter& filter) override {
    return billing_->ListBookings(filter);
  }
  Result<std::optional<Booking>> GetBooking(const std::string& order_id) override {
    return billing_->FindBooking(order_id);
  }
  Result<int64_t> BookingsVersion() override { return billing_->BookingsVersion(); }
  Result<std::vector<Booking>> ListUnverifiedBookings(int64_t settled_unix_ms) override {
    return billing_->ListUnverifiedBookings(settled_unix_ms);
  }
  Result<std::vector<DirtyRange>> ReadDirtyRanges() override { return billing_->ReadDirtyRanges(); }
  Result<std::vector<HourFacts>> ReadHourFacts(const std::string& device_id, int64_t from_unix_ms,
                                               int64_t to_unix_ms) override {
    return billing_->ReadHourFacts(device_id, from_unix_ms, to_unix_ms);
  }
  Result<std::vector<MarkRecord>> ReadSessionMarks(const std::string& device_id,
                                                   int64_t from_unix_ms,
                                                   int64_t to_unix_ms) override {
    return billing_->ReadSessionMarks(device_id, from_unix_ms, to_unix_ms);
  }
  Result<std::vector<UnbookedProgress>> ReadUnbookedProgress(
      const std::string& instrument_id) override {
    return billing_->ReadUnbookedProgress(instrument_id);
  }
  Result<std::optional<Instrument>> GetInstrument(const std::string& instrument_id) override {
    return billing_->GetInstrument(instrument_id);
  }
  Status InLedgerTransaction(const std::function<Status(LedgerTxn*)>& body) override {
    return billing_->InLedgerTransaction(body);
  }
  Result<std::vector<LedgerEntry>> ReadLedger(int64_t after_entry_id, int64_t limit) override {
    return billing_->ReadLedger(after_entry_id, limit);
  }
  Result<LedgerHead> ReadLedgerHead() override { return billing_->ReadLedgerHead(); }
  Result<std::vector<LedgerEntry>> ReadLatestLedgerEntries(int64_t from_unix_ms,
                                                           int64_t to_unix_ms) override {
    return billing_->ReadLatestLedgerEntries(from_unix_ms, to_unix_ms);
  }

  Status AddDeviceKey(DeviceKey* key) override {
    Result<SqliteStatement> s = db_->Prepare(
        "INSERT INTO device_keys(device_id, public_key, cert_serial, enrolled_unix_ms) "
        "VALUES(?, ?, ?, ?)");
    if (!s.ok()) return s.status();
    Status st = s->Bind(1, key->device_id)
                    .BindBlob(2, key->public_key)
                    .Bind(3, key->cert_serial)
                    .Bind(4, key->enrolled_unix_ms)
                    .Run();
    if (st.code() == Status::Code::kAlreadyExists)
      return Status::AlreadyExists("device '" + key->device_id +
                                   "' already has an active key (revoke it first)");
    INSTRUMETER_RETURN_IF_ERROR(st);
    key->key_id = db_->LastInsertRowId();
    return Status::Ok();
  }

  Result<int64_t> DeviceKeysVersion() override {
    Result<std::optional<int64_t>> version =
        db_->QueryInt("SELECT version FROM device_keys_version WHERE one = 1");
    if (!version.ok()) return version.status();
    if (!version->has_value())
      return Status::Corruption("database " + db_->path() + ": device_keys_version is empty");
    return **version;
  }

  Result<std::vector<DeviceKey>> ListDeviceKeys() override {
    Result<SqliteStatement> s = db_->Prepare(
        "SELECT key_id, device_id, public_key, cert_serial, enrolled_unix_ms, revoked_unix_ms, "
        "revoked_signed_through, chain_reset_requested_unix_ms FROM device_keys "
        "ORDER BY device_id, key_id");
    if (!s.ok()) return s.status();
    std::vector<DeviceKey> out;
    while (true) {
      Result<bool> row = s->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      DeviceKey k;
      k.key_id = s->Int(0);
      k.device_id = s->Text(1);
      k.public_key = s->Blob(2);
      k.cert_serial = s->Text(3);
      k.enrolled_unix_ms = s->Int(4);
      if (!s->IsNull(5)) k.revoked_unix_ms = s->Int(5);
      k.revoked_signed_through = static_cast<uint64_t>(s->Int(6));
      k.chain_reset_requested_unix_ms = s->Int(7);
      out.push_back(std::move(k));
    }
    return out;
  }

  Status RevokeDeviceKey(const std::string& device_id, int64_t now_unix_ms) override {
    Result<SqliteTransaction> tx = SqliteTransaction::Begin(db_.get());
    if (!tx.ok()) return tx.status();
    Result<SqliteStatement> s = db_->Prepare(
        "UPDATE device_keys SET revoked_unix_ms = ?2, revoked_signed_through = "
        "COALESCE((SELECT signed_through FROM devices WHERE device_id = ?1), 0) "
        "WHERE device_id = ?1 AND revoked_unix_ms IS NULL");
    if (!s.ok()) return s.status();
    INSTRUMETER_RETURN_IF_ERROR(s->Bind(1, device_id).Bind(2, now_unix_ms).Run());
    if (db_->Changes() == 0)
      return Status::NotFound("device '" + device_id + "' has no active key to revoke");
    return tx->Commit();
  }

  Status RequestChainReset(const std::string& device_id, int64_t now_unix_ms) override {
    Result<SqliteStatement> s = db_->Prepare(
        "UPDATE device_keys SET chain_reset_requested_unix_ms = ? "
        "WHERE device_id = ? AND revoked_unix_ms IS NULL");
    if (!s.ok()) return s.status();
    INSTRUMETER_RETURN_IF_ERROR(s->Bind(1, now_unix_ms).Bind(2, device_id).Run());
    if (db_->Changes() == 0)
      return Status::NotFound("device '" + device_id + "' has no active key");
    return Status::Ok();
  }

  Result<std::vector<Billability>> ReadBillability(const std::string& device_id) override {
    // Keys: whether the device was ever enrolled, whether it has an active key, and the cap of
    // its most recently revoked key.
    Result<SqliteStatement> s = db_->Prepare(
        "SELECT d.dev_key, d.device_id, d.contiguous_seq, d.signed_through, d.chain_broken_from, "
        "(SELECT COUNT(*) FROM device_keys k WHERE k.device_id = d.device_id), "
        "(SELECT COUNT(*) FROM device_keys k WHERE k.device_id = d.device_id "
        "  AND k.revoked_unix_ms IS NULL), "
        "(SELECT k.revoked_signed_through FROM device_keys k WHERE k.device_id = d.device_id "
        "  AND k.revoked_unix_ms IS NOT NULL ORDER BY k.revoked_unix_ms DESC, k.key_id DESC "
        "  LIMIT 1) "
        "FROM devices d" +
        // Two forms: `?1 = '' OR d.device_id = ?1` would keep SQLite off the index.
        std::string(device_id.empty() ? "" : " WHERE d.device_id = ?1") + " ORDER BY d.device_id");
    if (!s.ok()) return s.status();
    if (!device_id.empty()) s->Bind(1, device_id);
    std::vector<Billability> out;
    std::map<int64_t, size_t> by_key;
    while (true) {
      Result<bool> row = s->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      Billability b;
      b.device_id = s->Text(1);
      b.contiguous_seq = static_cast<uint64_t>(s->Int(2));
      b.signed_through = static_cast<uint64_t>(s->Int(3));
      b.chain_broken_from = static_cast<uint64_t>(s->Int(4));
      b.enrolled = s->Int(5) > 0;
      b.revoked = b.enrolled && s->Int(6) == 0;
      b.billable_through = b.signed_through;
      if (b.chain_broken_from > 0)
        b.billable_through = std::min(b.billable_through, b.chain_broken_from - 1);
      if (b.revoked)
        b.billable_through = std::min(b.billable_through, static_cast<uint64_t>(s->Int(7)));
      by_key[s->Int(0)] = out.size();
      out.push_back(std::move(b));
    }
    if (out.empty()) return out;
    Result<SqliteStatement> ranges =
        db_->Prepare("SELECT dev_key, from_seq, to_seq FROM unproven_ranges" +
                     std::string(device_id.empty() ? "" : " WHERE dev_key = ?1") +
                     " ORDER BY dev_key, from_seq");
    if (!ranges.ok()) return ranges.status();
    if (!device_id.empty()) ranges->Bind(1, by_key.begin()->first);
    while (true) {
      Result<bool> row = ranges->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      auto it = by_key.find(ranges->Int(0));
      if (it == by_key.end()) continue;
      out[it->second].unproven.push_back(
          {static_cast<uint64_t>(ranges->Int(1)), static_cast<uint64_t>(ranges->Int(2))});
    }
    return out;
  }

  Status AddApiToken(const ApiToken& token) override {
    Result<SqliteStatement> s =
        db_->Prepare("INSERT INTO api_tokens(name, sha256, created_unix_ms) VALUES(?, ?, ?)");
    if (!s.ok()) return s.status();
    Status st =
        s->Bind(1, token.name).BindBlob(2, token.sha256).Bind(3, token.created_unix_ms).Run();
    if (st.code() == Status::Code::kAlreadyExists)
      return Status::AlreadyExists("a token named '" + token.name + "' exists already");
    return st;
  }

  Result<std::vector<ApiToken>> ListApiTokens() override {
    Result<SqliteStatement> s = db_->Prepare(
        "SELECT name, sha256, created_unix_ms, revoked_unix_ms FROM api_tokens ORDER BY name");
    if (!s.ok()) return s.status();
    std::vector<ApiToken> out;
    while (true) {
      Result<bool> row = s->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      ApiToken t{s->Text(0), s->Blob(1), s->Int(2), std::nullopt};
      if (!s->IsNull(3)) t.revoked_unix_ms = s->Int(3);
      out.push_back(std::move(t));
    }
    return out;
  }

  Status RevokeApiToken(const std::string& name, int64_t now_unix_ms) override {
    Result<SqliteStatement> s = db_->Prepare(
        "UPDATE api_tokens SET revoked_unix_ms = ? WHERE name = ? AND revoked_unix_ms IS NULL");
    if (!s.ok()) return s.status();
    INSTRUMETER_RETURN_IF_ERROR(s->Bind(1, now_unix_ms).Bind(2, name).Run());
    if (db_->Changes() == 0) return Status::NotFound("no active token named '" + name + "'");
    return Status::Ok();
  }

  Result<std::optional<std::string>> FindApiToken(const std::string& sha256) override {
    Result<SqliteStatement> s =
        db_->Prepare("SELECT name FROM api_tokens WHERE sha256 = ? AND revoked_unix_ms IS NULL");
    if (!s.ok()) return s.status();
    s->BindBlob(1, sha256);
    Result<bool> row = s->Step();
    if (!row.ok()) return row.status();
    if (!*row) return std::optional<std::string>();
    return std::optional<std::string>(s->Text(0));
  }

  Result<bool> HasApiTokens() override {
    Result<SqliteStatement> s = db_->Prepare("SELECT 1 FROM api_tokens LIMIT 1");
    if (!s.ok()) return s.status();
    return s->Step();
  }

  Result<bool> AddShareLink(const ShareLink& link, bool replace_active) override {
    Result<SqliteTransaction> tx = SqliteTransaction::Begin(db_.get());
    if (!tx.ok()) return tx.status();
    Result<SqliteStatement> active =
        db_->Prepare("SELECT 1 FROM share_links WHERE order_id = ? AND revoked_unix_ms IS NULL");
    if (!active.ok()) return active.status();
    active->Bind(1, link.order_id);
    Result<bool> has_active = active->Step();
    if (!has_active.ok()) return has_active.status();
    if (*has_active) {
      if (!replace_active) return false;
      Result<bool> revoked = RevokeShareLink(link.order_id, link.created_unix_ms);
      if (!revoked.ok()) return revoked.status();
    }
    Result<SqliteStatement> insert =
        db_->Prepare("INSERT INTO share_links(sha256, order_id, created_unix_ms) VALUES(?, ?, ?)");
    if (!insert.ok()) return insert.status();
    INSTRUMETER_RETURN_IF_ERROR(insert->BindBlob(1, link.sha256)
                                    .Bind(2, link.order_id)
                                    .Bind(3, link.created_unix_ms)
                                    .Run()
                                    .WithContext("share link of order '" + link.order_id + "'"));
    INSTRUMETER_RETURN_IF_ERROR(tx->Commit());
    return true;
  }

  Result<std::optional<ShareLink>> FindShareLink(const std::string& sha256) override {
    Result<SqliteStatement> s = db_->Prepare(
        "SELECT order_id, created_unix_ms, revoked_unix_ms FROM share_links WHERE sha256 = ?");
    if (!s.ok()) return s.status();
    s->BindBlob(1, sha256);
    Result<bool> row = s->Step();
    if (!row.ok()) return row.status();
    if (!*row) return std::optional<ShareLink>();
    ShareLink link{sha256, s->Text(0), s->Int(1), std::nullopt};
    if (!s->IsNull(2)) link.revoked_unix_ms = s->Int(2);
    return std::optional<ShareLink>(std::move(link));
  }

  Result<bool> RevokeShareLink(const std::string& order_id, int64_t now_unix_ms) override {
    Result<SqliteStatement> revoke = db_->Prepare(
        "UPDATE share_links SET revoked_unix_ms = ? WHERE order_id = ? AND revoked_unix_ms IS "
        "NULL");
    if (!revoke.ok()) return revoke.status();
    INSTRUMETER_RETURN_IF_ERROR(revoke->Bind(1, now_unix_ms)
                                    .Bind(2, order_id)
                                    .Run()
                                    .WithContext("share link of order '" + order_id + "'"));
    return db_->Changes() > 0;
  }

  Result<StoreSpace> Space() override {
    const std::string& path = db_->path();
    std::error_code error;
    StoreSpace space;
    space.used_bytes = std::filesystem::file_size(path, error);
    if (error) return Status::IoError("database " + path + ": " + error.message());
    // There is no write-ahead log after a clean close.
    const uintmax_t wal = std::filesystem::file_size(path + "-wal", error);
    if (!error) {
      space.used_bytes += wal;
    } else if (error != std::errc::no_such_file_or_directory) {
      return Status::IoError("database " + path + "-wal: " + error.message());
    }
    const std::filesystem::space_info fs = std::filesystem::space(path, error);
    if (error) return Status::IoError("database " + path + ": free space: " + error.message());
    space.available_bytes = fs.available;
    return space;
  }

  Result<std::vector<std::string>> ListArchiveCandidates(const ArchiveOptions& options) override {
    // The event that would close the next whole block is old enough (so all before it are,
    // give or take a resend's late arrival, which ArchiveEvents checks one by one).
    Result<SqliteStatement> s = db_->Prepare(
        "SELECT d.device_id FROM devices d JOIN events e ON e.dev_key = d.dev_key "
        "AND e.seq = d.archived_through + ?1 WHERE d.signed_through > d.archived_through + ?1 "
        "AND e.received_unix_ms < ?2 ORDER BY d.device_id");
    if (!s.ok()) return s.status();
    s->Bind(1, I64(options.max_events_per_block)).Bind(2, options.received_before_unix_ms);
    std::vector<std::string> out;
    while (true) {
      Result<bool> row = s->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      out.push_back(s->Text(0));
    }
    return out;
  }

  Result<ArchiveProgress> ArchiveEvents(const std::string& device_id,
                                        const ArchiveOptions& options) override {
    const std::string where = "archive: device '" + device_id + "'";
    // The blocks are built and checked from a snapshot, without the write lock, so that an
    // ingest commit waits only for their writes, not for compressing them.
    Result<ArchivePlan> plan = PlanArchive(device_id, options);
    if (!plan.ok()) return plan.status().WithContext(where);
    if (plan->through == plan->archived_through) return plan->progress;
    const auto locked = std::chrono::steady_clock::now();
    Result<SqliteTransaction> tx = SqliteTransaction::Begin(db_.get());
    if (!tx.ok()) return tx.status().WithContext(where);
    // Only another archiver of the same file could have moved these since the snapshot; each
    // block's rows are compared again below, before they are deleted.
    Result<ArchiveDevice> device = ReadArchiveDevice(device_id);
    if (!device.ok()) return device.status().WithContext(where);
    if (device->archived_through != plan->archived_through ||
        device->signed_through < plan->signed_through)
      return Status::FailedPrecondition(where + ": archived or re-signed by someone else while " +
                                        "its blocks were built; tried again at the next pass");
    for (const PlannedBlock& block : plan->blocks)
      INSTRUMETER_RETURN_IF_ERROR(
          StoreBlock(device->dev_key, block, &plan->progress).WithContext(where));
    Result<SqliteStatement> update =
        db_->Prepare("UPDATE devices SET archived_through = ? WHERE dev_key = ?");
    if (!update.ok()) return update.status();
    INSTRUMETER_RETURN_IF_ERROR(update->Bind(1, I64(plan->through)).Bind(2, device->dev_key).Run());
    INSTRUMETER_RETURN_IF_ERROR(tx->Commit().WithContext(where));
    plan->progress.write_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - locked)
            .count();
    return plan->progress;
  }

 private:
  Status Migrate(std::chrono::milliseconds progress_period) {
    Result<int64_t> version = UserVersion();
    if (!version.ok()) return version.status();
    if (*version == static_cast<int64_t>(kMigrations.size())) return Status::Ok();
    // Another process may be migrating the same file: decide again under the write lock.
    Result<SqliteTransaction> tx = SqliteTransaction::Begin(db_.get());
    if (!tx.ok()) return tx.status();
    version = UserVersion();
    if (!version.ok()) return version.status();
    if (*version > static_cast<int64_t>(kMigrations.size()))
      return Status::FailedPrecondition("database " + db_->path() + " has schema version " +
                                        std::to_string(*version) + ", newer than this hub's " +
                                        std::to_string(kMigrations.size()) +
                                        "; upgrade instrumeter-hub");
    // An upgrade can copy a whole table (version 7 copies every event): say so, or a hub that
    // starts in silence for minutes looks hung and gets killed, which only starts it over.
    const int64_t from = *version;
    const auto start = std::chrono::steady_clock::now();
    // And that it is still going, now and then.
    std::optional<SqliteProgress> progress;
    if (from > 0) {
      spdlog::info(
          "store: upgrading {} from schema version {} to {}; it holds the database's write lock "
          "until it is done, which can take minutes for a large database (docs/hub.md, "
          "\"Storage\")",
          db_->path(), from, kMigrations.size());
      progress.emplace(db_.get(), progress_period, [&] {
        spdlog::info(
            "store: still upgrading {}: {:.0f} s so far (a kill now leaves the database as it "
            "was, to be upgraded again from the start)",
            db_->path(),
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      });
    }
    for (int64_t v = from; v < static_cast<int64_t>(kMigrations.size()); ++v) {
      INSTRUMETER_RETURN_IF_ERROR(
          db_->Exec(kMigrations[static_cast<size_t>(v)])
              .WithContext("migration to version " + std::to_string(v + 1) +
                           " (it needs free disk beside the database and a writable temporary "
                           "folder: $SQLITE_TMPDIR, /var/tmp or /tmp)"));
      INSTRUMETER_RETURN_IF_ERROR(db_->Exec("PRAGMA user_version = " + std::to_string(v + 1)));
    }
    INSTRUMETER_RETURN_IF_ERROR(tx->Commit());
    if (from > 0)
      spdlog::info("store: upgraded {} to schema version {} in {:.1f} s", db_->path(),
                   kMigrations.size(),
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    return Status::Ok();
  }

  Result<int64_t> UserVersion() {
    Result<std::optional<int64_t>> version = db_->QueryInt("PRAGMA user_version");
    if (!version.ok()) return version.status();
    return version->value_or(0);
  }

  Status PrepareStatements() {
    struct Item {
      std::optional<SqliteStatement>* slot;
      const char* sql;
    };
    const Item items[] = {
        {&insert_event_,
         "INSERT INTO events(dev_key, seq, kind, state, boot_id, monotonic_ms, wall_unix_ms, "
         "powered_ms, in_use_ms, body, received_unix_ms, link) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)"},
        {&update_link_, "UPDATE events SET link = ? WHERE dev_key = ? AND seq = ?"},
        {&insert_block_,
         "INSERT INTO event_blocks(dev_key, first_seq, last_seq, first_link, raw_bytes, data) "
         "VALUES(?, ?, ?, ?, ?, ?)"},
        {&delete_rows_, "DELETE FROM events WHERE dev_key = ? AND seq BETWEEN ? AND ?"},
        {&insert_unproven_,
         "INSERT OR REPLACE INTO unproven_ranges(dev_key, from_seq, to_seq, resolved_unix_ms) "
         "VALUES(?, ?, ?, ?)"},
        {&upsert_interval_,
         "INSERT INTO intervals(dev_key, kind, state, boot_id, start_wall_unix_ms, duration_ms, "
         "start_seq, end_seq, start_powered_ms, end_powered_ms, start_in_use_ms, end_in_use_ms, "
         "flags) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?) "
         "ON CONFLICT(dev_key, kind, start_seq) DO UPDATE SET state = excluded.state, "
         "boot_id = excluded.boot_id, start_wall_unix_ms = excluded.start_wall_unix_ms, "
         "duration_ms = excluded.duration_ms, end_seq = excluded.end_seq, "
         "start_powered_ms = excluded.start_powered_ms, end_powered_ms = excluded.end_powered_ms, "
         "start_in_use_ms = excluded.start_in_use_ms, end_in_use_ms = excluded.end_in_use_ms, "
         "flags = excluded.flags"},
        {&update_device_,
         "UPDATE devices SET contiguous_seq = ?2, events_stored = ?3, run_open = ?4, "
         "run_state = ?5, last_seq = ?6, last_wall_unix_ms = ?7, last_monotonic_ms = ?8, "
         "last_boot_id = ?9, last_powered_ms = ?10, last_in_use_ms = ?11, "
         "open_interval_id = (SELECT id FROM intervals WHERE dev_key = ?1 AND kind = 'state' "
         "AND start_seq = ?12), "
         "live_state = ?13, state_since_wall_ms = ?14, online = ?15, status_since_unix_ms = ?16, "
         "last_seen_unix_ms = ?17, agent_version = ?18, outbox_depth = ?19, counters_seq = ?20, "
         "powered_ms = ?21, in_use_ms = ?22, chain_link = ?23, signed_through = ?24, "
         "chain_broken_from = ?25, chain_head_seq = ?26, chain_head = ?27, "
         "chain_reset_unix_ms = ?28, chain_signature = ?29 WHERE dev_key = ?1"},
        {&insert_device_, "INSERT INTO devices(device_id) VALUES(?) RETURNING dev_key"},
        {&read_events_,
         "SELECT 0, e.seq, e.kind, e.state, e.boot_id, e.monotonic_ms, e.wall_unix_ms, "
         "e.powered_ms, e.in_use_ms, e.body, e.received_unix_ms, e.link FROM events e "
         "WHERE e.dev_key = (SELECT dev_key FROM devices WHERE device_id = ?1) "
         "AND e.seq BETWEEN ?2 AND ?3 "
         "UNION ALL "
         "SELECT 1, b.first_seq, b.last_seq, b.first_link, b.raw_bytes, b.data, "
         "NULL, NULL, NULL, NULL, NULL, NULL FROM event_blocks b "
         "WHERE b.dev_key = (SELECT dev_key FROM devices WHERE device_id = ?1) "
         "AND b.first_seq <= ?3 AND b.last_seq >= ?2 AND b.first_seq >= coalesce("
         "(SELECT max(first_seq) FROM event_blocks WHERE dev_key = b.dev_key AND first_seq <= ?2), "
         "0)"},
        {&upsert_instrument_,
         "INSERT INTO instruments(instrument_id, name, institution, site, city, region, "
         "created_unix_ms) VALUES(?,?,?,?,?,?,?) ON CONFLICT(instrument_id) DO UPDATE SET "
         "name = excluded.name, institution = excluded.institution, site = excluded.site, "
         "city = excluded.city, region = excluded.region"},
        {&insert_instrument_,
         "INSERT INTO instruments(instrument_id, name, institution, site, city, region, "
         "created_unix_ms) VALUES(?,?,?,?,?,?,?)"},
        {&instrument_exists_, "SELECT 1 FROM instruments WHERE instrument_id = ?"},
    };
    for (const Item& item : items) {
      Result<SqliteStatement> s = db_->Prepare(item.sql);
      if (!s.ok()) return s.status();
      item.slot->emplace(std::move(*s));
    }
    return Status::Ok();
  }

  static void BindInstrument(SqliteStatement* s, const Instrument& in, int64_t now_unix_ms) {
    s->Bind(1, in.instrument_id)
        .Bind(2, in.name)
        .Bind(3, in.institution)
        .Bind(4, in.site)
        .Bind(5, in.city)
        .Bind(6, in.region)
        .Bind(7, now_unix_ms);
  }

  // The device's integer key, creating its row on first sight. New keys go to *new_keys until
  // the transaction commits, so a rolled-back row is never cached.
  Result<int64_t> DevKey(const std::string& device_id, std::map<std::string, int64_t>* new_keys) {
    if (auto it = dev_keys_.find(device_id); it != dev_keys_.end()) return it->second;
    if (auto it = new_keys->find(device_id); it != new_keys->end()) return it->second;
    Result<SqliteStatement> find = db_->Prepare("SELECT dev_key FROM devices WHERE device_id = ?");
    if (!find.ok()) return find.status();
    find->Bind(1, device_id);
    Result<bool> row = find->Step();
    if (!row.ok()) return row.status();
    int64_t key = 0;
    if (*row) {
      key = find->Int(0);
    } else {
      insert_device_->Reset();
      insert_device_->Bind(1, device_id);
      Result<bool> inserted = insert_device_->Step();
      if (!inserted.ok()) return inserted.status();
      key = insert_device_->Int(0);
      insert_device_->Reset();
    }
    (*new_keys)[device_id] = key;
    return key;
  }

  Status InsertEvent(int64_t dev_key, const EventRow& e) {
    SqliteStatement& s = *insert_event_;
    s.Reset();
    s.Bind(1, dev_key).Bind(2, I64(e.seq)).Bind(3, int64_t{e.kind});
    if (e.state.has_value()) {
      s.Bind(4, int64_t{*e.state});
    } else {
      s.BindNull(4);
    }
    s.Bind(5, e.boot_id).Bind(6, e.monotonic_ms).Bind(7, e.wall_unix_ms);
    if (e.powered_ms.has_value()) {
      s.Bind(8, I64(*e.powered_ms)).Bind(9, I64(e.in_use_ms.value_or(0)));
    } else {
      s.BindNull(8).BindNull(9);
    }
    s.BindBlob(10, e.body).Bind(11, e.received_unix_ms);
    if (e.link.empty()) {
      s.BindNull(12);
    } else {
      s.BindBlob(12, e.link);
    }
    return s.Run();
  }

  // What an archive step reads of a device's row.
  struct ArchiveDevice {
    int64_t dev_key = 0;
    uint64_t archived_through = 0;
    uint64_t signed_through = 0;
  };

  Result<ArchiveDevice> ReadArchiveDevice(const std::string& device_id) {
    Result<SqliteStatement> s = db_->Prepare(
        "SELECT dev_key, archived_through, signed_through FROM devices WHERE device_id = ?");
    if (!s.ok()) return s.status();
    s->Bind(1, device_id);
    Result<bool> found = s->Step();
    if (!found.ok()) return found.status();
    if (!*found) return Status::NotFound("no such device");
    return ArchiveDevice{.dev_key = s->Int(0),
                         .archived_through = static_cast<uint64_t>(s->Int(1)),
                         .signed_through = static_cast<uint64_t>(s->Int(2))};
  }

  // Rows `from`..`to` of a device, in sequence order, at most `limit`.
  Result<std::vector<EventRow>> ReadArchiveRows(int64_t dev_key, uint64_t from, uint64_t to,
                                                uint64_t limit, int64_t stop_at_received) {
    Result<SqliteStatement> read = db_->Prepare(
        std::string("SELECT ") + kEventColumns +
        " FROM events e WHERE e.dev_key = ? AND e.seq BETWEEN ? AND ? ORDER BY e.seq LIMIT ?");
    if (!read.ok()) return read.status();
    read->Bind(1, dev_key).Bind(2, I64(from)).Bind(3, I64(to)).Bind(4, I64(limit));
    std::vector<EventRow> rows;
    while (true) {
      Result<bool> row = read->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      rows.push_back(ReadEventRow(*read, 0));
      if (rows.back().received_unix_ms >= stop_at_received) break;
    }
    return rows;
  }

  // A block, checked to give its rows back, and the rows it replaces.
  struct PlannedBlock {
    EventBlock block;
    std::vector<EventRow> rows;
  };

  // What one ArchiveEvents step will write, read from one snapshot.
  struct ArchivePlan {
    uint64_t archived_through = 0;
    uint64_t signed_through = 0;
    uint64_t through = 0;  // archived_through once the blocks are written
    std::vector<PlannedBlock> blocks;
    ArchiveProgress progress;  // `more` decided; the counts filled in as the blocks are stored
  };

  Result<ArchivePlan> PlanArchive(const std::string& device_id, const ArchiveOptions& options) {
    // Below the signed head only: no stored link there is ever rewritten (CommitBatch), and the
    // head itself stays a row for the billing's span of newly signed events (sqlite_billing.cc).
    // At least a block: fewer would never make one. One row more tells whether a next
    // transaction could find work (below, `more`).
    const uint64_t limit = std::max(options.max_events, options.max_events_per_block);
    ArchivePlan plan;
    std::vector<EventRow> rows;
    {
      Result<SqliteTransaction> snapshot = SqliteTransaction::BeginRead(db_.get());
      if (!snapshot.ok()) return snapshot.status();
      Result<ArchiveDevice> device = ReadArchiveDevice(device_id);
      if (!device.ok()) return device.status();
      plan = {.archived_through = device->archived_through,
              .signed_through = device->signed_through,
              .through = device->archived_through};
      if (plan.signed_through <= plan.archived_through + 1) return plan;
      Result<std::vector<EventRow>> read =
          ReadArchiveRows(device->dev_key, plan.archived_through + 1, plan.signed_through - 1,
                          limit + 1, options.received_before_unix_ms);
      if (!read.ok()) return read.status();
      rows = std::move(*read);
    }
    bool more = false;
    if (rows.size() > limit) {
      more = rows.back().received_unix_ms < options.received_before_unix_ms;
      rows.pop_back();
    }

    uint64_t considered = plan.archived_through;
    std::vector<EventRow> run;
    auto plan_run = [&]() -> Status {
      if (run.empty()) return Status::Ok();
      Result<EventBlock> block = BuildBlock(run);
      if (!block.ok()) return block.status();
      plan.blocks.push_back({std::move(*block), std::move(run)});
      run.clear();
      return Status::Ok();
    };
    for (EventRow& e : rows) {
      if (e.seq != considered + 1)
        return Status::Corruption("seq " + std::to_string(considered + 1) +
                                  " is missing below the signed head (database " + db_->path() +
                                  ")");
      if (e.received_unix_ms >= options.received_before_unix_ms ||
          e.link.size() != protocol::kChainLinkBytes) {
        more = false;
        break;
      }
      considered = e.seq;
      // A session mark stays a row; so would a row whose columns disagree with its bytes.
      if (e.kind == v1::Event::kSessionMark || !ColumnsMatchBytes(e)) {
        INSTRUMETER_RETURN_IF_ERROR(plan_run());
        continue;
      }
      // An operator's chain reset restarts the links: a block holds one unbroken stretch.
      if (!run.empty() && protocol::ChainNext(run.back().link, e.body) != e.link)
        INSTRUMETER_RETURN_IF_ERROR(plan_run());
      run.push_back(std::move(e));
      if (run.size() == options.max_events_per_block) INSTRUMETER_RETURN_IF_ERROR(plan_run());
    }
    // A run cut short only because nothing further can go yet waits to become a whole block:
    // a block per pass would be a block per few minutes of heartbeats, and compress worse.
    // (A whole one was planned in the loop.)
    if (!run.empty()) considered = run.front().seq - 1;
    // Another transaction makes a block only from a block's worth below the signed head. Without
    // this, most devices of a pass cost a second write transaction that wrote nothing, and the
    // pause after it (archive_worker.cc).
    plan.progress.more =
        more && plan.signed_through - 1 - considered >= options.max_events_per_block;
    plan.through = considered;
    return plan;
  }

  static std::string BlockName(uint64_t first_seq, uint64_t last_seq) {
    return "block of seq " + std::to_string(first_seq) + ".." + std::to_string(last_seq);
  }

  // A block of `run`, decoded again and compared with it: one that would not give its rows back
  // is never written.
  static Result<EventBlock> BuildBlock(const std::vector<EventRow>& run) {
    const std::string what = BlockName(run.front().seq, run.back().seq);
    Result<EventBlock> block = EncodeEventBlock(run);
    if (!block.ok()) return block.status().WithContext(what);
    Result<std::vector<EventRow>> back = DecodeEventBlock(*block);
    if (!back.ok()) return back.status().WithContext(what);
    if (back->size() != run.size() || !std::equal(run.begin(), run.end(), back->begin(), SameRow))
      return Status::Internal(what + ": does not give its rows back");
    return block;
  }

  // Under the write lock: writes the block and deletes its rows, once the rows stored are still
  // exactly those it was built from.
  Status StoreBlock(int64_t dev_key, const PlannedBlock& planned, ArchiveProgress* progress) {
    const EventBlock& block = planned.block;
    const std::string what = BlockName(block.first_seq, block.last_seq);
    Result<std::vector<EventRow>> stored =
        ReadArchiveRows(dev_key, block.first_seq, block.last_seq, planned.rows.size() + 1,
                        std::numeric_limits<int64_t>::max());
    if (!stored.ok()) return stored.status().WithContext(what);
    if (stored->size() != planned.rows.size() ||
        !std::equal(stored->begin(), stored->end(), planned.rows.begin(), SameRow))
      return Status::FailedPrecondition(what + ": its rows changed while it was built");
    insert_block_->Reset();
    INSTRUMETER_RETURN_IF_ERROR(insert_block_->Bind(1, dev_key)
                                    .Bind(2, I64(block.first_seq))
                                    .Bind(3, I64(block.last_seq))
                                    .BindBlob(4, block.first_link)
                                    .Bind(5, I64(block.raw_bytes))
                                    .BindBlob(6, block.data)
                                    .Run()
                                    .WithContext(what));
    delete_rows_->Reset();
    INSTRUMETER_RETURN_IF_ERROR(delete_rows_->Bind(1, dev_key)
                                    .Bind(2, I64(block.first_seq))
                                    .Bind(3, I64(block.last_seq))
                                    .Run()
                                    .WithContext(what));
    if (static_cast<size_t>(db_->Changes()) != planned.rows.size())
      return Status::Internal(what + ": deleted " + std::to_string(db_->Changes()) + " rows, not " +
                              std::to_string(planned.rows.size()));
    progress->events += planned.rows.size();
    progress->blocks += 1;
    progress->block_bytes += block.data.size();
    for (const EventRow& e : planned.rows) progress->body_bytes += e.body.size();
    return Status::Ok();
  }

  Status UpsertInterval(int64_t dev_key, const Interval& iv) {
    SqliteStatement& s = *upsert_interval_;
    s.Reset();
    s.Bind(1, dev_key).Bind(2, std::string_view(IntervalKindName(iv.kind)));
    if (iv.kind == IntervalKind::kState) {
      s.Bind(3, int64_t{iv.state});
    } else {
      s.BindNull(3);
    }
    s.Bind(4, iv.boot_id)
        .Bind(5, iv.start_wall_unix_ms)
        .Bind(6, iv.duration_ms)
        .Bind(7, I64(iv.start_seq))
        .Bind(8, I64(iv.end_seq))
        .Bind(9, I64(iv.start_powered_ms))
        .Bind(10, I64(iv.end_powered_ms))
        .Bind(11, I64(iv.start_in_use_ms))
        .Bind(12, I64(iv.end_in_use_ms))
        .Bind(13, FlagsToString(iv.flags));
    return s.Run();
  }

  Status UpdateDevice(int64_t dev_key, const DeviceRecord& r) {
    SqliteStatement& s = *update_device_;
    s.Reset();
    const DerivationState& d = r.derivation;
    s.Bind(1, dev_key)
        .Bind(2, I64(r.contiguous_seq))
        .Bind(3, I64(r.events_stored))
        .Bind(4, int64_t{d.run_open})
        .Bind(5, int64_t{d.state});
    if (d.last.has_value()) {
      s.Bind(6, I64(d.last->seq))
          .Bind(7, d.last->at.wall_unix_ms)
          .Bind(8, d.last->at.monotonic_ms)
          .Bind(9, d.last->at.boot_id)
          .Bind(10, I64(d.last->powered_ms))
          .Bind(11, I64(d.last->in_use_ms));
    } else {
      for (int i = 6; i <= 11; ++i) s.BindNull(i);
    }
    if (d.open_interval.has_value()) {
      s.Bind(12, I64(d.open_interval->start_seq));
    } else {
      s.BindNull(12);
    }
    const LiveState& live = r.live;
    s.Bind(13, int64_t{live.state}).Bind(14, live.state_since_wall_ms);
    if (live.online.has_value()) {
      s.Bind(15, int64_t{*live.online});
    } else {
      s.BindNull(15);
    }
    s.Bind(16, live.status_since_unix_ms)
        .Bind(17, live.last_seen_unix_ms)
        .Bind(18, live.agent_version)
        .Bind(19, I64(live.outbox_depth))
        .Bind(20, I64(live.counters_seq))
        .Bind(21, I64(live.powered_ms))
        .Bind(22, I64(live.in_use_ms));
    const ChainState& chain = r.chain;
    if (chain.link.empty()) {
      s.BindNull(23);
    } else {
      s.BindBlob(23, chain.link);
    }
    s.Bind(24, I64(chain.signed_through))
        .Bind(25, I64(chain.broken_from))
        .Bind(26, I64(chain.head_seq));
    if (chain.head.empty()) {
      s.BindNull(27);
    } else {
      s.BindBlob(27, chain.head);
    }
    s.Bind(28, chain.reset_unix_ms);
    if (chain.signature.empty()) {
      s.BindNull(29);
    } else {
      s.BindBlob(29, chain.signature);
    }
    return s.Run();
  }

  std::unique_ptr<SqliteDb> db_;
  // Declared after db_: statements are finalised before the connection closes.
  std::unique_ptr<SqliteBilling> billing_;
  std::optional<SqliteStatement> insert_event_;
  std::optional<SqliteStatement> update_link_;
  std::optional<SqliteStatement> insert_block_;
  std::optional<SqliteStatement> delete_rows_;
  std::optional<SqliteStatement> insert_unproven_;
  std::optional<SqliteStatement> upsert_interval_;
  std::optional<SqliteStatement> update_device_;
  std::optional<SqliteStatement> insert_device_;
  std::optional<SqliteStatement> read_events_;
  std::optional<SqliteStatement> upsert_instrument_;
  std::optional<SqliteStatement> insert_instrument_;
  std::optional<SqliteStatement> instrument_exists_;
  std::map<std::string, int64_t> dev_keys_;  // committed device rows
};

}  // namespace

int SqliteSchemaVersion() { return static_cast<int>(kMigrations.size()); }

Result<std::unique_ptr<Store>> OpenSqliteStore(const SqliteStoreOptions& options) {
  SqliteDb::Options db_options;
  db_options.busy_timeout_ms = options.busy_timeout_ms;
  if (!options.sync_each_commit) db_options.synchronous = "NORMAL";
  Result<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(options.path, db_options);
  if (!db.ok()) return db.status();
  auto store = std::make_unique<SqliteStore>(std::move(*db));
  INSTRUMETER_RETURN_IF_ERROR(store->Init(std::chrono::milliseconds(options.upgrade_progress_ms)));
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace instrumeter::hub
