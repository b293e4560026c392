#include "hub/sqlite_store.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <limits>
#include <sstream>

#include "common/sqlite_db.h"
#include "hub_testing/event_rows.h"
#include "hub_testing/events.h"
#include "test_support/process.h"

namespace instrumeter::hub {
namespace {

using testing::At;
using testing::Beat;
using testing::kBoot1;
using testing::kWall;
using testing::Start;

constexpr int64_t kEarliest = std::numeric_limits<int64_t>::min() / 4;
constexpr int64_t kLatest = std::numeric_limits<int64_t>::max() / 4;

class SqliteStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> Open() {
    Result<std::unique_ptr<Store>> store = OpenSqliteStore({.path = path_});
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(*store) : nullptr;
  }

  // A device with events 1..3 derived (a run open in IDLE) and 5 stored above a gap.
  static DeviceBatch FirstBatch() {
    DeviceBatch b;
    b.record.device_id = "nmr-1";
    std::vector<v1::Event> events = {
        Start(1, v1::INSTRUMENT_STATE_IDLE, {kBoot1, 1000, kWall, 0, 0}),
        Beat(2, v1::INSTRUMENT_STATE_IDLE, {kBoot1, 2000, kWall + 1000, 1000, 0}),
        Beat(3, v1::INSTRUMENT_STATE_IDLE, {kBoot1, 3000, kWall + 2000, 2000, 0}),
        Beat(5, v1::INSTRUMENT_STATE_IDLE, {kBoot1, 5000, kWall + 4000, 4000, 0}),
    };
    IntervalChanges changes;
    for (const v1::Event& e : events) {
      std::string bytes = e.SerializeAsString();
      bytes.push_back('\0');  // bytes are stored exactly, NULs included
      b.events.push_back(MakeEventRow(e, bytes, kWall + 10));
      if (e.sequence() <= 3) ApplyEvent(e, &b.record.derivation, &changes);
    }
    b.intervals = changes.rows();
    b.record.contiguous_seq = 3;
    b.record.events_stored = 4;
    b.record.live.state = v1::INSTRUMENT_STATE_IDLE;
    b.record.live.state_since_wall_ms = kWall;
    b.record.live.online = true;
    b.record.live.status_since_unix_ms = kWall - 5;
    b.record.live.last_seen_unix_ms = kWall + 10;
    b.record.live.agent_version = "1.2.3";
    b.record.live.outbox_depth = 7;
    b.record.live.counters_seq = 5;
    b.record.live.powered_ms = 4000;
    return b;
  }

  instrumeter::testing::TempDir dir_;
  std::string path_ = dir_.File("hub.db");
};

TEST_F(SqliteStoreTest, CommittedBatchSurvivesReopenWithCursorsRebuilt) {
  const DeviceBatch batch = FirstBatch();
  {
    std::unique_ptr<Store> store = Open();
    ASSERT_TRUE(store->CommitBatch({{batch}}).ok());
  }
  std::unique_ptr<Store> store = Open();
  Result<std::vector<LoadedDevice>> devices = store->LoadDevices();
  ASSERT_TRUE(devices.ok()) << devices.status().ToString();
  ASSERT_EQ(devices->size(), 1u);
  EXPECT_EQ((*devices)[0].record, batch.record);
  EXPECT_TRUE((*devices)[0].record.derivation.open_interval.has_value());
  EXPECT_EQ((*devices)[0].stored_above, (std::vector<SeqRange>{{5, 5}}));

  Result<std::vector<EventRow>> events = store->ReadEvents("nmr-1", 1, 10);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 4u);
  for (size_t i = 0; i < events->size(); ++i) {
    EXPECT_EQ((*events)[i].seq, batch.events[i].seq);
    EXPECT_EQ((*events)[i].body, batch.events[i].body);
    EXPECT_EQ((*events)[i].state, batch.events[i].state);
    EXPECT_EQ((*events)[i].powered_ms, batch.events[i].powered_ms);
  }
  EXPECT_EQ((*events)[0].kind, v1::Event::kStateChange);
}

TEST_F(SqliteStoreTest, StoredRangesAreIslandsAboveTheContiguousPrefix) {
  std::unique_ptr<Store> store = Open();
  DeviceBatch b;
  b.record.device_id = "ms-2";
  b.record.contiguous_seq = 2;
  for (uint64_t seq : {1, 2, 5, 6, 7, 9, 12, 13}) {
    b.events.push_back(
        MakeEventRow(testing::Mark(seq, {}), testing::Mark(seq, {}).SerializeAsString(), 0));
  }
  ASSERT_TRUE(store->CommitBatch({{b}}).ok());
  Result<std::vector<LoadedDevice>> devices = Open()->LoadDevices();
  ASSERT_TRUE(devices.ok());
  EXPECT_EQ((*devices)[0].stored_above, (std::vector<SeqRange>{{5, 7}, {9, 9}, {12, 13}}));
}

TEST_F(SqliteStoreTest, StoredSequenceIsNeverOverwrittenAndTheBatchIsAllOrNothing) {
  std::unique_ptr<Store> store = Open();
  ASSERT_TRUE(store->CommitBatch({{FirstBatch()}}).ok());

  DeviceBatch again;
  again.record = FirstBatch().record;
  again.record.contiguous_seq = 6;
  again.record.events_stored = 6;
  const v1::Event six = Beat(6, v1::INSTRUMENT_STATE_IDLE, {kBoot1, 6000, kWall + 5000, 5000, 0});
  again.events.push_back(MakeEventRow(six, six.SerializeAsString(), 0));
  const v1::Event forged = Beat(2, v1::INSTRUMENT_STATE_IN_USE, {kBoot1, 2000, kWall, 9, 9});
  again.events.push_back(MakeEventRow(forged, forged.SerializeAsString(), 0));
  Status st = store->CommitBatch({{again}});
  EXPECT_EQ(st.code(), Status::Code::kAlreadyExists) << st.ToString();
  EXPECT_NE(st.message().find("seq 2"), std::string::npos) << st.message();

  Result<std::vector<EventRow>> events = store->ReadEvents("nmr-1", 1, 10);
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(events->size(), 4u) << "seq 6 of the failed batch must not be stored";
  EXPECT_EQ((*events)[1].body, FirstBatch().events[1].body);
  Result<std::vector<LoadedDevice>> devices = store->LoadDevices();
  EXPECT_EQ((*devices)[0].record.contiguous_seq, 3u);
}

TEST_F(SqliteStoreTest, IntervalsAreUpdatedInPlaceAndQueriedByWallOverlap) {
  std::unique_ptr<Store> store = Open();
  DeviceBatch b;
  b.record.device_id = "nmr-1";
  Interval open;
  open.state = v1::INSTRUMENT_STATE_IN_USE;
  open.boot_id = kBoot1;
  open.start_wall_unix_ms = kWall;
  open.duration_ms = 1000;
  open.start_seq = 1;
  open.end_seq = 2;
  b.intervals = {open};
  ASSERT_TRUE(store->CommitBatch({{b}}).ok());

  open.duration_ms = 60'000;
  open.end_seq = 9;
  open.flags = kFlagCounterMismatch;
  Interval gap;
  gap.kind = IntervalKind::kGap;
  gap.boot_id = kBoot1;
  gap.start_wall_unix_ms = kWall + 60'000;
  gap.duration_ms = 30'000;
  gap.start_seq = 9;
  gap.end_seq = 10;
  Interval empty = open;  // zero-length: never reported
  empty.start_seq = 10;
  empty.start_wall_unix_ms = kWall + 90'000;
  empty.duration_ms = 0;
  empty.flags = 0;
  b.intervals = {open, gap, empty};
  ASSERT_TRUE(store->CommitBatch({{b}}).ok());

  Result<std::vector<DeviceInterval>> all = store->ReadIntervals("", kEarliest, kLatest);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].interval, open);
  EXPECT_EQ((*all)[1].interval, gap);
  // [start, end) overlap: a range ending where the open interval starts misses it.
  EXPECT_EQ(store->ReadIntervals("nmr-1", kWall - 10, kWall)->size(), 0u);
  EXPECT_EQ(store->ReadIntervals("nmr-1", kWall + 59'999, kWall + 60'001)->size(), 2u);
  EXPECT_EQ(store->ReadIntervals("other", kEarliest, kLatest)->size(), 0u);

  Result<std::vector<DurationSum>> sums = store->SumDurations();
  ASSERT_TRUE(sums.ok());
  int64_t in_use = 0;
  int64_t gaps = 0;
  for (const DurationSum& s : *sums) {
    if (s.kind == IntervalKind::kGap) gaps += s.duration_ms;
    if (s.kind == IntervalKind::kState && s.state == v1::INSTRUMENT_STATE_IN_USE)
      in_use += s.duration_ms;
  }
  EXPECT_EQ(in_use, 60'000);
  EXPECT_EQ(gaps, 30'000);
}

TEST_F(SqliteStoreTest, InstrumentsAreUpsertedAllOrNothingAndAddRefusesDuplicates) {
  std::unique_ptr<Store> store = Open();
  Instrument nmr{"nmr-1", "NMR 600", "Fudan", "Jiangwan", "Shanghai", "Shanghai", 0};
  Instrument tem{"tem-2", "TEM", "SJTU", "Minhang", "Shanghai", "Shanghai", 0};
  ASSERT_TRUE(store->PutInstruments({tem, nmr}, 1000).ok());
  nmr.name = "NMR 600 MHz";
  ASSERT_TRUE(store->PutInstruments({nmr}, 2000).ok());
  Result<std::vector<Instrument>> list = store->ListInstruments();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].instrument_id, "nmr-1");
  EXPECT_EQ((*list)[0].name, "NMR 600 MHz");
  EXPECT_EQ((*list)[0].created_unix_ms, 1000) << "an update keeps the registration time";
  EXPECT_EQ(store->AddInstrument(tem, 3000).code(), Status::Code::kAlreadyExists);
  EXPECT_TRUE(*store->InstrumentExists("tem-2"));
  EXPECT_FALSE(*store->InstrumentExists("sem-3"));
}

TEST_F(SqliteStoreTest, ASecondConnectionReadsWhileTheFirstWrites) {
  std::unique_ptr<Store> hub = Open();
  std::unique_ptr<Store> cli = Open();
  ASSERT_TRUE(cli->PutInstruments({{"nmr-1", "NMR", "", "", "", "", 0}}, 1).ok());
  EXPECT_TRUE(*hub->InstrumentExists("nmr-1"));
  ASSERT_TRUE(hub->CommitBatch({{FirstBatch()}}).ok());
  Result<std::vector<LoadedDevice>> seen = cli->LoadDevices();
  ASSERT_TRUE(seen.ok());
  ASSERT_EQ(seen->size(), 1u);
  EXPECT_EQ((*seen)[0].record.contiguous_seq, 3u);
}

TEST_F(SqliteStoreTest, RefusesADatabaseFromANewerHub) {
  { std::unique_ptr<Store> store = Open(); }
  {
    auto db = SqliteDb::Open(path_, {});
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("PRAGMA user_version = 99").ok());
  }
  Result<std::unique_ptr<Store>> store = OpenSqliteStore({.path = path_});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(store.status().message().find("99"), std::string::npos);
}

// Every change to device_keys moves the version, whoever makes it; ingest does not.
TEST_F(SqliteStoreTest, DeviceKeysVersionMovesWithEveryKeyChange) {
  std::unique_ptr<Store> store = Open();
  auto version = [&] {
    Result<int64_t> v = store->DeviceKeysVersion();
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? *v : -1;
  };
  const int64_t start = version();
  DeviceKey key{.device_id = "nmr-1", .public_key = std::string(32, 'k'), .cert_serial = "01"};
  ASSERT_TRUE(store->AddDeviceKey(&key).ok());
  const int64_t enrolled = version();
  EXPECT_GT(enrolled, start);
  ASSERT_TRUE(store->RequestChainReset("nmr-1", 1000).ok());
  const int64_t reset = version();
  EXPECT_GT(reset, enrolled);
  ASSERT_TRUE(store->RevokeDeviceKey("nmr-1", 2000).ok());
  const int64_t revoked = version();
  EXPECT_GT(revoked, reset);
  // Another process writing the table directly (bench_setup does) is counted too.
  auto db = SqliteDb::Open(path_, {});
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE((*db)
                  ->Exec("INSERT INTO device_keys(device_id, public_key, cert_serial, "
                         "enrolled_unix_ms) VALUES('dev-2', zeroblob(32), '02', 0)")
                  .ok());
  EXPECT_GT(version(), revoked);
  const int64_t after_insert = version();
  ASSERT_TRUE(store->CommitBatch({{FirstBatch()}}).ok());
  EXPECT_EQ(version(), after_insert) << "ingest is not a key change";
}

TEST_F(SqliteStoreTest, SpaceCountsTheDatabaseAndItsLogAndNamesAMissingFile) {
  std::unique_ptr<Store> store = Open();
  ASSERT_TRUE(store->CommitBatch({{FirstBatch()}}).ok());
  const uintmax_t files =
      std::filesystem::file_size(path_) + std::filesystem::file_size(path_ + "-wal");
  ASSERT_GT(std::filesystem::file_size(path_ + "-wal"), 0u) << "the batch is in the log";
  Result<StoreSpace> space = store->Space();
  ASSERT_TRUE(space.ok()) << space.status().ToString();
  EXPECT_EQ(space->used_bytes, files);
  // Other processes write to the same filesystem meanwhile: the same figure within 256 MiB.
  const auto available = static_cast<double>(std::filesystem::space(path_).available);
  EXPECT_GT(space->available_bytes, 0u);
  EXPECT_NEAR(static_cast<double>(space->available_bytes), available, 256.0 * 1024 * 1024);

  std::filesystem::remove(path_);  // an operator's mistake: the open hub must say so, not crash
  space = store->Space();
  ASSERT_FALSE(space.ok());
  EXPECT_NE(space.status().ToString().find(path_), std::string::npos) << space.status().ToString();
}

TEST_F(SqliteStoreTest, AnUpgradeFromSchemaSixKeepsEveryEventAndPutsThemInDeviceOrder) {
  // Session marks, which billing finds through an index of their own; enough of them that the
  // copy runs long enough to report progress.
  DeviceBatch marks;
  marks.record.device_id = "ms-2";
  marks.record.contiguous_seq = 5000;
  for (uint64_t seq = 1; seq <= 5000; ++seq)
    marks.events.push_back(MakeEventRow(testing::Mark(seq, {}),
                                        testing::Mark(seq, {}).SerializeAsString(),
                                        static_cast<int64_t>(seq)));
  std::vector<EventRow> nmr;
  std::vector<EventRow> ms;
  {
    std::unique_ptr<Store> store = Open();
    ASSERT_TRUE(store->CommitBatch({{FirstBatch(), marks}}).ok());
    nmr = *store->ReadEvents("nmr-1", 0, 100);
    ms = *store->ReadEvents("ms-2", 0, 10000);
  }
  {
    // Back to schema 6's table: rows in arrival order, the pair (dev_key, seq) a separate index.
    Result<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(path_, {});
    ASSERT_TRUE(db.ok());
    Status reverted = (*db)->Exec(
        "CREATE TABLE events_v6(dev_key INTEGER NOT NULL, seq INTEGER NOT NULL, "
        "kind INTEGER NOT NULL, state INTEGER, boot_id TEXT NOT NULL, "
        "monotonic_ms INTEGER NOT NULL, wall_unix_ms INTEGER NOT NULL, powered_ms INTEGER, "
        "in_use_ms INTEGER, body BLOB NOT NULL, received_unix_ms INTEGER NOT NULL, link BLOB, "
        "UNIQUE(dev_key, seq)); "
        "INSERT INTO events_v6 SELECT * FROM events ORDER BY seq DESC, dev_key; "
        "DROP TABLE events; ALTER TABLE events_v6 RENAME TO events; "
        "CREATE INDEX events_session_marks ON events(dev_key, wall_unix_ms) WHERE kind = 12; "
        "PRAGMA user_version = 6");
    ASSERT_TRUE(reverted.ok()) << reverted.ToString();
  }
  // The upgrade says what it does, that it is still going, and when it is done: it can take
  // minutes. Here it says it is going as often as it can.
  std::ostringstream log;
  std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>(
      "upgrade", std::make_shared<spdlog::sinks::ostream_sink_mt>(log)));
  Result<std::unique_ptr<Store>> opened =
      OpenSqliteStore({.path = path_, .upgrade_progress_ms = 0});
  spdlog::set_default_logger(previous);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  std::unique_ptr<Store> store = std::move(*opened);
  EXPECT_NE(log.str().find("upgrading " + path_ + " from schema version 6 to " +
                           std::to_string(SqliteSchemaVersion())),
            std::string::npos)
      << log.str();
  EXPECT_NE(log.str().find("still upgrading " + path_ + ": "), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("upgraded " + path_ + " to schema version"), std::string::npos)
      << log.str();
  auto db = SqliteDb::Open(path_, {});
  ASSERT_TRUE(db.ok());
  EXPECT_EQ((*db)->QueryInt("PRAGMA user_version")->value_or(0), SqliteSchemaVersion());
  auto sql = (*db)->Prepare("SELECT sql FROM sqlite_master WHERE name = 'events'");
  ASSERT_TRUE(*sql->Step());
  EXPECT_NE(sql->Text(0).find("WITHOUT ROWID"), std::string::npos) << sql->Text(0);
  EXPECT_EQ((*db)
                ->QueryInt("SELECT count(*) FROM sqlite_master WHERE name = 'events_session_marks'")
                ->value_or(0),
            1);
  testing::ExpectSameRows(*store->ReadEvents("nmr-1", 0, 100), nmr);
  ASSERT_EQ(ms.size(), 5000u);
  testing::ExpectSameRows(*store->ReadEvents("ms-2", 0, 10000), ms);
  Result<std::vector<LoadedDevice>> devices = store->LoadDevices();
  ASSERT_TRUE(devices.ok());
  ASSERT_EQ(devices->size(), 2u);
  for (const LoadedDevice& d : *devices) {
    const std::vector<SeqRange> want =
        d.record.device_id == "nmr-1" ? std::vector<SeqRange>{{5, 5}} : std::vector<SeqRange>{};
    EXPECT_EQ(d.stored_above, want) << d.record.device_id;
  }
}

TEST_F(SqliteStoreTest, SchemaIsVersioned) {
  std::unique_ptr<Store> store = Open();
  auto db = SqliteDb::Open(path_, {});
  auto version = (*db)->Prepare("PRAGMA user_version");
  ASSERT_TRUE(version.ok());
  ASSERT_TRUE(*version->Step());
  EXPECT_EQ(version->Int(0), SqliteSchemaVersion());
  auto journal = (*db)->Prepare("PRAGMA journal_mode");
  ASSERT_TRUE(*journal->Step());
  EXPECT_EQ(journal->Text(0), "wal");
}

}  // namespace
}  // namespace instrumeter::hub
