// The archive of settled events (docs/hub.md, "Archive"): real SQLite files, real ingest, and a
// real child process killed while it archives.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <random>
#include <set>
#include <thread>

#include "common/sqlite_db.h"
#include "hub/archive_worker.h"
#include "hub/ingestor.h"
#include "hub/sqlite_store.h"
#include "hub_testing/ack_recorder.h"
#include "hub_testing/chained_envelopes.h"
#include "hub_testing/event_rows.h"
#include "hub_testing/events.h"
#include "protocol/chain.h"
#include "protocol/topics.h"
#include "test_support/process.h"

namespace instrumeter::hub {
namespace {

using testing::AckRecorder;
using testing::At;
using testing::Beat;
using testing::ExpectSameRows;
using testing::kBoot1;
using testing::kWall;
using testing::Mark;

constexpr int64_t kHourMs = 3'600'000;
constexpr int64_t kAfter = 48 * kHourMs;
constexpr std::chrono::milliseconds kAtOnce{0};  // a pass not spread over time
// A pass's pauses: not taken (the tests need no time between transactions), or asked to stop.
const PeriodicThread::Pause kGoOn = [](std::chrono::milliseconds) { return true; };
const PeriodicThread::Pause kStop = [](std::chrono::milliseconds) { return false; };

// Events 1..n of `device`, a heartbeat every 10 s (a session mark at each of `marks`), chained
// from the device's genesis and received as they happened from `received`. The device row says
// they are all stored and signed through `signed_through`.
DeviceBatch SignedDevice(const std::string& device, uint64_t n, uint64_t signed_through,
                         int64_t received, const std::set<uint64_t>& marks = {}) {
  DeviceBatch b;
  b.record.device_id = device;
  std::string link = protocol::ChainGenesis(device);
  for (uint64_t seq = 1; seq <= n; ++seq) {
    const auto t = static_cast<int64_t>(seq) * 10'000;
    const At at{kBoot1, t, kWall + t, static_cast<uint64_t>(t), static_cast<uint64_t>(t / 3)};
    v1::Event e = marks.contains(seq) ? Mark(seq, at) : Beat(seq, v1::INSTRUMENT_STATE_IN_USE, at);
    std::string bytes = e.SerializeAsString();
    link = protocol::ChainNext(link, bytes);
    EventRow row = MakeEventRow(e, bytes, received + t);
    row.link = link;
    b.events.push_back(std::move(row));
  }
  b.record.contiguous_seq = n;
  b.record.events_stored = n;
  b.record.chain.link = link;
  b.record.chain.signed_through = signed_through;
  b.record.chain.head_seq = signed_through;
  return b;
}

class ArchiveTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> Open() {
    Result<std::unique_ptr<Store>> store = OpenSqliteStore({.path = path_});
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(*store) : nullptr;
  }
  // A number from the database, through a connection of its own.
  int64_t Query(const std::string& sql) {
    Result<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(path_, {});
    EXPECT_TRUE(db.ok());
    Result<std::optional<int64_t>> v = (*db)->QueryInt(sql);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? v->value_or(-1) : -1;
  }
  // Waits, 20 s at most, until `done`: a worker's pass runs on its own thread.
  static bool WaitUntil(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!done() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return done();
  }
  // nmr-1 and nmr-2: 1,200 events each, all signed, received at kWall: a block each to archive.
  void CommitTwoDevices() {
    std::unique_ptr<Store> store = Open();
    ASSERT_TRUE(store
                    ->CommitBatch({{SignedDevice("nmr-1", 1200, 1200, kWall),
                                    SignedDevice("nmr-2", 1200, 1200, kWall)}})
                    .ok());
  }
  std::vector<EventRow> Read(Store* store, const std::string& device, uint64_t from, uint64_t to) {
    Result<std::vector<EventRow>> rows = store->ReadEvents(device, from, to);
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    return rows.ok() ? *rows : std::vector<EventRow>();
  }
  static ArchiveOptions Before(int64_t received_before, uint64_t per_block = 1000) {
    return {.received_before_unix_ms = received_before,
            .max_events = 10'000,
            .max_events_per_block = per_block};
  }

  instrumeter::testing::TempDir dir_;
  std::string path_ = dir_.File("hub.db");
};

TEST_F(ArchiveTest, ArchivedEventsReadBackExactlyFromBlocksAndRows) {
  std::unique_ptr<Store> store = Open();
  ASSERT_TRUE(store->CommitBatch({{SignedDevice("nmr-1", 2500, 2500, kWall)}}).ok());
  const std::vector<EventRow> before = Read(store.get(), "nmr-1", 1, 2500);

  Result<std::vector<std::string>> candidates =
      store->ListArchiveCandidates(Before(kWall + 100 * kHourMs));
  ASSERT_TRUE(candidates.ok());
  EXPECT_EQ(*candidates, std::vector<std::string>{"nmr-1"});
  candidates = store->ListArchiveCandidates(Before(kWall + 10'000'000));
  ASSERT_TRUE(candidates.ok());
  EXPECT_TRUE(candidates->empty()) << "event 1000 was received at +10,000 s: not old yet";
  Result<ArchiveProgress> moved = store->ArchiveEvents("nmr-1", Before(kWall + 100 * kHourMs));
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(moved->events, 2000u) << "whole blocks below the signed head";
  EXPECT_EQ(moved->blocks, 2u) << "1,000 events a block";
  EXPECT_FALSE(moved->more);
  EXPECT_LT(moved->block_bytes * 3, moved->body_bytes);
  EXPECT_EQ(Query("SELECT count(*) FROM events"), 500)
      << "2001-2499 wait to fill a block; the signed head stays a row";
  EXPECT_EQ(Query("SELECT count(*) FROM event_blocks"), 2);
  EXPECT_EQ(Query("SELECT archived_through FROM devices"), 2000);

  ExpectSameRows(Read(store.get(), "nmr-1", 1, 2500), before);
  // Ranges that start or end inside a block, across two blocks, across a block and rows.
  ExpectSameRows(Read(store.get(), "nmr-1", 999, 1001),
                 {before.begin() + 998, before.begin() + 1001});
  ExpectSameRows(Read(store.get(), "nmr-1", 1500, 1500), {before[1499]});
  ExpectSameRows(Read(store.get(), "nmr-1", 1999, 2002),
                 {before.begin() + 1998, before.begin() + 2002});
  ExpectSameRows(Read(store.get(), "nmr-1", 2499, 2600), {before[2498], before[2499]});
  EXPECT_TRUE(Read(store.get(), "nmr-1", 2501, 3000).empty());
  EXPECT_TRUE(Read(store.get(), "nmr-2", 1, 3000).empty());

  // Nothing more to do until the device sends more, and a store opened again reads the same.
  moved = store->ArchiveEvents("nmr-1", Before(kWall + 100 * kHourMs));
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(moved->events, 0u);
  store.reset();
  store = Open();
  ExpectSameRows(Read(store.get(), "nmr-1", 1, 2500), before);
  Result<std::vector<LoadedDevice>> devices = store->LoadDevices();
  ASSERT_TRUE(devices.ok());
  ASSERT_EQ(devices->size(), 1u);
  EXPECT_EQ(devices->front().record.contiguous_seq, 2500u);
  EXPECT_TRUE(devices->front().stored_above.empty());
  EXPECT_EQ(store->ArchiveEvents("nmr-9", Before(kWall)).status().code(), Status::Code::kNotFound);
}

TEST_F(ArchiveTest, StopsAtYoungOrUnlinkedEventsAndTheSignedHeadAndKeepsSessionMarksAsRows) {
  std::unique_ptr<Store> store = Open();
  DeviceBatch unlinked = SignedDevice("ms-1", 50, 50, kWall);
  for (size_t i = 20; i < unlinked.events.size(); ++i) unlinked.events[i].link.clear();
  ASSERT_TRUE(store
                  ->CommitBatch({{SignedDevice("nmr-1", 100, 90, kWall, {40, 41, 75}),
                                  std::move(unlinked), SignedDevice("dev-0", 30, 0, kWall)}})
                  .ok());
  const std::vector<EventRow> before = Read(store.get(), "nmr-1", 1, 100);
  // Events 1..80 were received more than 48 h before; 81.. are younger. Blocks of 10.
  const int64_t now = kWall + 805'000 + kAfter;
  Result<std::vector<std::string>> candidates =
      store->ListArchiveCandidates(Before(now - kAfter, 10));
  ASSERT_TRUE(candidates.ok());
  EXPECT_EQ(*candidates, (std::vector<std::string>{"ms-1", "nmr-1"}))
      << "a device that signed nothing (development mode) is never archived";
  Result<ArchiveProgress> moved = store->ArchiveEvents("nmr-1", Before(now - kAfter, 10));
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(moved->events, 72u) << "1-39 and 42-74: the marks cut blocks short, and stay rows";
  EXPECT_EQ(moved->blocks, 8u) << "1-10 .. 31-39, 42-51 .. 72-74";
  EXPECT_EQ(Query("SELECT archived_through FROM devices WHERE device_id = 'nmr-1'"), 75)
      << "76-80 wait to fill a block";
  EXPECT_EQ(Query("SELECT count(*) FROM events e JOIN devices d USING(dev_key) "
                  "WHERE d.device_id = 'nmr-1' AND e.seq <= 80"),
            8);
  ExpectSameRows(Read(store.get(), "nmr-1", 1, 100), before);
  Result<std::vector<MarkRecord>> marks =
      store->ReadSessionMarks("nmr-1", kWall, kWall + 10 * kHourMs);
  ASSERT_TRUE(marks.ok());
  ASSERT_EQ(marks->size(), 3u) << "billing finds the marks by wall time, as before";
  EXPECT_EQ((*marks)[1].seq, 41u);

  // Two days later the rest is old; the signed head (90) and what is above it stay rows.
  moved = store->ArchiveEvents("nmr-1", Before(now + kAfter, 10));
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(moved->events, 10u) << "76-85; 86-89 wait";
  EXPECT_EQ(Query("SELECT archived_through FROM devices WHERE device_id = 'nmr-1'"), 85);
  ExpectSameRows(Read(store.get(), "nmr-1", 1, 100), before);

  // Events without a link yet (stored before schema 3, not backfilled) stop the archive.
  moved = store->ArchiveEvents("ms-1", Before(now + kAfter, 10));
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(moved->events, 20u);
  EXPECT_EQ(Query("SELECT archived_through FROM devices WHERE device_id = 'ms-1'"), 20);
}

TEST_F(ArchiveTest, ABlockHoldsOneUnbrokenStretchOfTheChain) {
  // An operator's chain reset re-anchored the chain at 50: its link does not follow from 49's.
  DeviceBatch device = SignedDevice("nmr-1", 100, 100, kWall);
  std::string link = protocol::Sha256("re-anchored");
  for (size_t i = 49; i < device.events.size(); ++i) {
    device.events[i].link = link;
    link = protocol::ChainNext(link, device.events[i + 1 < device.events.size() ? i + 1 : i].body);
  }
  std::unique_ptr<Store> store = Open();
  ASSERT_TRUE(store->CommitBatch({{device}}).ok());
  const std::vector<EventRow> before = Read(store.get(), "nmr-1", 1, 100);
  Result<ArchiveProgress> moved = store->ArchiveEvents("nmr-1", Before(kWall + 100 * kHourMs, 50));
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(moved->events, 99u);
  EXPECT_EQ(moved->blocks, 2u) << "1-49 and 50-99";
  ExpectSameRows(Read(store.get(), "nmr-1", 1, 100), before);
}

TEST_F(ArchiveTest, RewritingTheLinkOfAnArchivedEventFailsTheWholeBatch) {
  std::unique_ptr<Store> store = Open();
  const DeviceBatch device = SignedDevice("nmr-1", 20, 20, kWall);
  ASSERT_TRUE(store->CommitBatch({{device}}).ok());
  ASSERT_EQ(store->ArchiveEvents("nmr-1", Before(kWall + 100 * kHourMs, 5))->events, 15u);
  DeviceBatch next = SignedDevice("nmr-1", 21, 20, kWall);
  next.events.erase(next.events.begin(), next.events.begin() + 20);
  next.link_updates = {{10, std::string(protocol::kChainLinkBytes, 'x')}};
  const Status st = store->CommitBatch({{next}});
  EXPECT_EQ(st.code(), Status::Code::kCorruption);
  EXPECT_NE(st.message().find("link of seq 10"), std::string::npos) << st.message();
  EXPECT_EQ(Read(store.get(), "nmr-1", 21, 21).size(), 0u) << "the batch is rolled back whole";
  ExpectSameRows(Read(store.get(), "nmr-1", 10, 10), {device.events[9]});
}

TEST_F(ArchiveTest, MaxEventsSplitsADeviceIntoTransactionsAndMoreSaysWhetherWorkIsLeft) {
  std::unique_ptr<Store> store = Open();
  // Heartbeats received every 10 s from kWall; each device signed through its last event.
  ASSERT_TRUE(
      store
          ->CommitBatch(
              {{SignedDevice("nmr-1", 1000, 1000, kWall), SignedDevice("nmr-2", 801, 801, kWall),
                SignedDevice("nmr-3", 1000, 1000, kWall), SignedDevice("nmr-4", 450, 450, kWall)}})
          .ok());
  const std::vector<EventRow> before = Read(store.get(), "nmr-1", 1, 1000);
  // The calls a pass makes: until one says there is no more.
  auto calls = [&](const std::string& device, int64_t received_before) {
    ArchiveOptions options = Before(received_before, 100);
    options.max_events = 400;
    std::vector<std::pair<uint64_t, bool>> out;
    for (int call = 0; call < 5; ++call) {
      Result<ArchiveProgress> moved = store->ArchiveEvents(device, options);
      EXPECT_TRUE(moved.ok()) << moved.status().ToString();
      if (!moved.ok()) break;
      out.emplace_back(moved->events, moved->more);
      if (!moved->more) break;
    }
    return out;
  };
  using Calls = std::vector<std::pair<uint64_t, bool>>;
  const int64_t later = kWall + 100 * kHourMs;
  EXPECT_EQ(calls("nmr-1", later), (Calls{{400, true}, {400, true}, {100, false}}))
      << "901-999 wait to fill a block";
  ExpectSameRows(Read(store.get(), "nmr-1", 1, 1000), before);
  EXPECT_EQ(calls("nmr-2", later), (Calls{{400, true}, {400, false}}))
      << "the second call took all there was below the signed head: no third, empty one";
  EXPECT_EQ(calls("nmr-3", kWall + 400 * 10'000 + 5'000), (Calls{{400, false}}))
      << "event 401 is too young: another call would find nothing";
  EXPECT_EQ(calls("nmr-4", later), (Calls{{400, false}}))
      << "401-449 are old, but not a block: another call would write nothing";
}

// The archive's transactions are its only safety: kill a real archiving process again and again,
// at random moments, and every event must read back the same each time.
TEST_F(ArchiveTest, ArchivingKilledAtRandomMomentsLosesAndChangesNothing) {
  constexpr int kDevices = 8;
  constexpr uint64_t kEvents = 3000;
  std::vector<std::vector<EventRow>> before;
  {
    std::unique_ptr<Store> store = Open();
    Batch batch;
    for (int d = 0; d < kDevices; ++d)
      batch.devices.push_back(
          SignedDevice("dev-" + std::to_string(d), kEvents, kEvents, kWall, {500, 1700}));
    ASSERT_TRUE(store->CommitBatch(batch).ok());
    for (int d = 0; d < kDevices; ++d)
      before.push_back(Read(store.get(), "dev-" + std::to_string(d), 1, kEvents));
  }
  // Every event reads back the same, and is stored exactly once: as a row or in a block.
  auto expect_intact = [&] {
    std::unique_ptr<Store> store = Open();
    for (int d = 0; d < kDevices; ++d) {
      SCOPED_TRACE("dev-" + std::to_string(d));
      ExpectSameRows(Read(store.get(), "dev-" + std::to_string(d), 1, kEvents), before[d]);
    }
    EXPECT_EQ(Query("SELECT (SELECT count(*) FROM events) + "
                    "(SELECT coalesce(sum(last_seq - first_seq + 1), 0) FROM event_blocks)"),
              kDevices * kEvents);
  };
  std::mt19937 random(20261201);
  int killed = 0;
  for (int round = 0; round < 12; ++round) {
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      Result<std::unique_ptr<Store>> store = OpenSqliteStore({.path = path_});
      if (!store.ok()) _exit(2);
      ArchiveOptions options = Before(kWall + 100 * kHourMs, 350);
      options.max_events = 700;
      for (int d = 0; d < kDevices; ++d) {
        for (bool more = true; more;) {
          Result<ArchiveProgress> moved =
              (*store)->ArchiveEvents("dev-" + std::to_string(d), options);
          if (!moved.ok()) _exit(3);
          more = moved->more;
        }
      }
      _exit(0);
    }
    usleep(std::uniform_int_distribution<useconds_t>(0, 30'000)(random));
    kill(child, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    if (WIFSIGNALED(status)) {
      ++killed;
    } else {
      ASSERT_EQ(WEXITSTATUS(status), 0) << "the archiving child failed";
    }
    expect_intact();
    if (HasFatalFailure() || WIFEXITED(status)) break;
  }
  EXPECT_GT(killed, 0);
  // Whatever the kills left, a last pass finishes the work.
  std::unique_ptr<Store> store = Open();
  Result<ArchivePass> pass =
      ArchiveOnce(store.get(), Before(kWall + 100 * kHourMs, 350), kAtOnce, kGoOn);
  ASSERT_TRUE(pass.ok());
  EXPECT_EQ(pass->failed_devices, 0u);
  // 1-350, 351-499, 501-850, .. 1351-1699, 1701-2050, .. 2751-2999 (249 events) waits: it ends
  // at the signed head, not at a mark.
  EXPECT_EQ(Query("SELECT count(*) FROM events"), kDevices * (2 + 249 + 1));
  expect_intact();
}

TEST_F(ArchiveTest, ADeviceThatCannotBeArchivedIsCountedAndTheOthersGoOn) {
  ASSERT_NO_FATAL_FAILURE(CommitTwoDevices());
  std::unique_ptr<Store> store = Open();
  // An event of nmr-1 below its signed head goes missing (a damaged file): its step must fail
  // rather than archive around the hole, and leave its rows as they were.
  {
    Result<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(path_, {});
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)
                    ->Exec("DELETE FROM events WHERE seq = 500 AND dev_key = "
                           "(SELECT dev_key FROM devices WHERE device_id = 'nmr-1')")
                    .ok());
  }
  Result<ArchivePass> pass =
      ArchiveOnce(store.get(), Before(kWall + 100 * kHourMs), kAtOnce, kGoOn);
  ASSERT_TRUE(pass.ok());
  EXPECT_EQ(pass->failed_devices, 1u);
  EXPECT_EQ(pass->first_error.code(), Status::Code::kCorruption);
  EXPECT_NE(pass->first_error.message().find("'nmr-1': seq 500 is missing"), std::string::npos)
      << pass->first_error.ToString();
  EXPECT_EQ(pass->moved.events, 1000u) << "nmr-2's block";
  EXPECT_EQ(Query("SELECT count(*) FROM events"), 1199 + 200);
}

TEST_F(ArchiveTest, APassSpreadsItsDevicesEvenlyOverTheTimeItIsGiven) {
  std::unique_ptr<Store> store = Open();
  std::vector<DeviceBatch> devices;
  for (int d = 1; d <= 4; ++d)
    devices.push_back(SignedDevice("nmr-" + std::to_string(d), 1200, 1200, kWall));
  ASSERT_TRUE(store->CommitBatch({devices}).ok());
  // The pauses asked for, none taken: no time passes but the transactions' own.
  std::vector<std::chrono::milliseconds> pauses;
  constexpr std::chrono::milliseconds kSpread{40'000};
  Result<ArchivePass> pass = ArchiveOnce(store.get(), Before(kWall + 100 * kHourMs), kSpread,
                                         [&](std::chrono::milliseconds d) {
                                           pauses.push_back(d);
                                           return true;
                                         });
  ASSERT_TRUE(pass.ok());
  EXPECT_EQ(pass->moved.events, 4000u);
  EXPECT_EQ(pass->transactions, 4u);
  // Before each device, the wait for its quarter of the 40 s; after each transaction, 5 ms for
  // the ingest thread.
  ASSERT_EQ(pauses.size(), 8u);
  for (size_t d = 0; d < 4; ++d) {
    const auto due = kSpread * static_cast<int64_t>(d) / 4;
    EXPECT_LE(pauses[2 * d], due) << "device " << d;
    EXPECT_GE(pauses[2 * d], due - std::chrono::seconds(5)) << "device " << d;
    EXPECT_EQ(pauses[2 * d + 1], std::chrono::milliseconds(5));
  }
}

TEST_F(ArchiveTest, TheWorkerArchivesInTheBackground) {
  ASSERT_NO_FATAL_FAILURE(CommitTwoDevices());
  {
    // A pass told to stop at once does nothing.
    std::unique_ptr<Store> store = Open();
    Result<ArchivePass> pass = ArchiveOnce(store.get(), Before(kWall + kAfter * 2), kAtOnce, kStop);
    ASSERT_TRUE(pass.ok());
    EXPECT_EQ(pass->moved.events, 0u);
  }
  FakeClock clock(testing::kMono, kWall + kAfter + 10 * kHourMs);
  HubMetrics metrics;
  // Spread over a second: nmr-2 half a second after nmr-1.
  Result<std::unique_ptr<ArchiveWorker>> worker = ArchiveWorker::Start(
      {.path = path_}, {.after_ms = kAfter, .interval_ms = 2'000}, &clock, &metrics);
  ASSERT_TRUE(worker.ok()) << worker.status().ToString();
  EXPECT_TRUE(WaitUntil([&] { return Query("SELECT count(*) FROM events") == 400; }))
      << "1001-1200 of each wait";
  EXPECT_EQ(Query("SELECT count(*) FROM event_blocks"), 2);
  // Counted once the pass ends (GET /metrics: instrumeter_hub_events_archived_total).
  EXPECT_TRUE(WaitUntil([&] { return metrics.events_archived == 2000; }));
  EXPECT_EQ(metrics.archive_failures, 0u);
}

TEST_F(ArchiveTest, TheWorkerStoppedWhileItsPassWaitsStopsAtOnceAndCountsWhatItDid) {
  ASSERT_NO_FATAL_FAILURE(CommitTwoDevices());
  FakeClock clock(testing::kMono, kWall + kAfter + 10 * kHourMs);
  HubMetrics metrics;
  // The default interval: nmr-2 is due 2.5 minutes into the pass.
  Result<std::unique_ptr<ArchiveWorker>> worker =
      ArchiveWorker::Start({.path = path_}, {.after_ms = kAfter}, &clock, &metrics);
  ASSERT_TRUE(worker.ok()) << worker.status().ToString();
  ASSERT_TRUE(WaitUntil([&] { return Query("SELECT count(*) FROM event_blocks") == 1; }));
  const auto stopping = std::chrono::steady_clock::now();
  worker->reset();
  EXPECT_LT(std::chrono::steady_clock::now() - stopping, std::chrono::seconds(10))
      << "the pause before nmr-2 ends when the hub stops";
  EXPECT_EQ(metrics.events_archived, 1000u) << "nmr-1's block, counted as the pass ends";
  EXPECT_EQ(Query("SELECT count(*) FROM events"), 200 + 1200) << "nmr-2 untouched";
}

// Through the real ingest path: an enrolled agent's signed events, archived, still answer every
// question the hub asks of them.
TEST_F(ArchiveTest, ArchivedEventsStillDecideDuplicatesAndProveTheChain) {
  constexpr char kDevice[] = "nmr-1";
  std::unique_ptr<Store> store = Open();
  ASSERT_TRUE(store->PutInstruments({{kDevice, "NMR", "", "", "", "", 0}}, 0).ok());
  const protocol::SigningKey key = testing::NewSigningKey();
  DeviceKey enrolled{.device_id = kDevice, .public_key = key.public_key(), .cert_serial = "01"};
  ASSERT_TRUE(store->AddDeviceKey(&enrolled).ok());
  FakeClock clock(testing::kMono, kWall + 60'000);
  AckRecorder downlink;
  HubMetrics metrics;
  IngestOptions options;
  auto make = [&] {
    Result<std::unique_ptr<Ingestor>> ingestor =
        Ingestor::Create(store.get(), &downlink, &clock, &metrics, options);
    EXPECT_TRUE(ingestor.ok()) << ingestor.status().ToString();
    return ingestor.ok() ? std::move(*ingestor) : nullptr;
  };
  auto deliver = [&](Ingestor* ingestor, const std::string& envelope) {
    ingestor->OnMessage(protocol::Topic(kDevice, protocol::Channel::kUp), envelope,
                        clock.WallUnixMs());
    clock.Advance(options.max_batch_delay_ms);
    ingestor->Poll();
  };
  const std::vector<v1::Event> run = testing::TypicalRun();
  testing::ChainedEnvelopes agent(kDevice, &key);
  const std::string first = agent.Envelope({run.begin(), run.begin() + 8}, true);
  const std::string second = agent.Envelope({run.begin() + 8, run.end()}, true);
  {
    std::unique_ptr<Ingestor> ingestor = make();
    deliver(ingestor.get(), first);
    deliver(ingestor.get(), second);
  }
  ASSERT_EQ(downlink.acks[kDevice], 12u);
  const std::vector<EventRow> before = Read(store.get(), kDevice, 1, 12);
  ASSERT_EQ(before.size(), 12u);

  clock.Advance(kAfter + kHourMs);
  Result<ArchivePass> pass =
      ArchiveOnce(store.get(), Before(clock.WallUnixMs() - kAfter, 4), kAtOnce, kGoOn);
  ASSERT_TRUE(pass.ok());
  EXPECT_EQ(pass->failed_devices, 0u) << pass->first_error.ToString();
  EXPECT_EQ(pass->moved.events, 7u) << "1-3 (the session mark 4 cuts it) and 5-8; 9-11 wait";
  ExpectSameRows(Read(store.get(), kDevice, 1, 12), before);

  // A hub started again loads the device, and the agent's resend of archived events is a
  // harmless duplicate; other bytes under an archived sequence are refused.
  std::unique_ptr<Ingestor> ingestor = make();
  deliver(ingestor.get(), first);
  EXPECT_EQ(metrics.duplicates, 8u);
  EXPECT_EQ(metrics.rejected.conflicting_duplicate, 0u);
  std::vector<v1::Event> forged(run.begin() + 1, run.begin() + 2);
  forged[0].mutable_heartbeat()->mutable_counters()->set_in_use_ms(3'600'000);
  deliver(ingestor.get(), testing::EnvelopeOf(kDevice, forged));
  EXPECT_EQ(metrics.rejected.conflicting_duplicate, 1u);
  ExpectSameRows(Read(store.get(), kDevice, 1, 12), before);

  // Anyone holding the device's public key re-checks the record from what the hub stores.
  std::string link = protocol::ChainGenesis(kDevice);
  for (const EventRow& row : Read(store.get(), kDevice, 1, 12))
    link = protocol::ChainNext(link, row.body);
  Result<std::vector<LoadedDevice>> devices = store->LoadDevices();
  ASSERT_TRUE(devices.ok());
  v1::Signature latest;
  ASSERT_TRUE(latest.ParseFromString(devices->front().record.chain.signature));
  EXPECT_EQ(latest.through_sequence(), 12u);
  EXPECT_EQ(link, latest.chain_head());
}

}  // namespace
}  // namespace instrumeter::hub
