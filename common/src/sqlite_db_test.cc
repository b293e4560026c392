#include "common/sqlite_db.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

namespace instrumeter {
namespace {

class SqliteDbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sqlite_db_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(SqliteDbTest, RolledBackTransactionLeavesNothing) {
  const std::string path = (dir_ / "t.db").string();
  auto db = SqliteDb::Open(path, {});
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  ASSERT_TRUE((*db)->Exec("CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)").ok());
  {
    auto tx = SqliteTransaction::Begin(db->get());
    ASSERT_TRUE(tx.ok());
    auto ins = (*db)->Prepare("INSERT INTO t VALUES(?, ?)");
    ASSERT_TRUE(ins.ok());
    ins->Bind(1, int64_t{1}).BindBlob(2, std::string("a\0b", 3));
    ASSERT_TRUE(ins->Run().ok());
  }  // no commit
  {
    auto tx = SqliteTransaction::Begin(db->get());
    auto ins = (*db)->Prepare("INSERT INTO t VALUES(?, ?)");
    ins->Bind(1, int64_t{2}).BindBlob(2, std::string("x\0y", 3));
    ASSERT_TRUE(ins->Run().ok());
    ASSERT_TRUE(tx->Commit().ok());
  }
  db->reset();
  auto reopened = SqliteDb::Open(path, {});
  auto sel = (*reopened)->Prepare("SELECT k, v FROM t");
  ASSERT_TRUE(sel.ok());
  auto row = sel->Step();
  ASSERT_TRUE(row.ok() && *row);
  EXPECT_EQ(sel->Int(0), 2);
  EXPECT_EQ(sel->Blob(1), std::string("x\0y", 3)) << "blobs keep embedded NUL bytes";
  EXPECT_FALSE(*sel->Step());
}

TEST_F(SqliteDbTest, ErrorsNameTheDatabaseAndMapCodes) {
  const std::string path = (dir_ / "e.db").string();
  auto db = SqliteDb::Open(path, {});
  ASSERT_TRUE((*db)->Exec("CREATE TABLE u(k INTEGER PRIMARY KEY)").ok());
  ASSERT_TRUE((*db)->Exec("INSERT INTO u VALUES(1)").ok());
  Status dup = (*db)->Exec("INSERT INTO u VALUES(1)");
  EXPECT_EQ(dup.code(), Status::Code::kAlreadyExists);
  EXPECT_NE(dup.message().find(path), std::string::npos) << dup.message();
  auto bad = (*db)->Prepare("SELEC nonsense");
  EXPECT_FALSE(bad.ok());
  auto missing = SqliteDb::Open((dir_ / "no" / "such.db").string(), {});
  EXPECT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("such.db"), std::string::npos);
}

TEST_F(SqliteDbTest, OpeningWhileAnotherConnectionCreatesTheDatabaseWaits) {
  // Regression: `instrumeter-hub instruments add` run while the hub created its database failed
  // with "database is locked", because SQLite does not wait to switch the journal mode.
  const std::string path = (dir_ / "race.db").string();
  auto creator = SqliteDb::Open(path, {.journal_mode = "DELETE"});
  ASSERT_TRUE(creator.ok());
  // A write transaction in rollback mode: SQLite fails a WAL switch against it without waiting.
  ASSERT_TRUE((*creator)->Exec("BEGIN IMMEDIATE; CREATE TABLE t(k)").ok());
  std::thread finisher([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_TRUE((*creator)->Exec("COMMIT").ok());
  });
  auto second = SqliteDb::Open(path, {.journal_mode = "WAL", .busy_timeout_ms = 5000});
  finisher.join();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  auto mode = (*second)->Prepare("PRAGMA journal_mode");
  ASSERT_TRUE(mode.ok() && *mode->Step());
  EXPECT_EQ(mode->Text(0), "wal");
}

// The busy handler retries until busy_timeout_ms: a writer gets the lock once the other lets go,
// and gives up with an error naming the database when it is held longer.
TEST_F(SqliteDbTest, AWriterWaitsForTheLockUpToItsBusyTimeout) {
  const std::string path = (dir_ / "busy.db").string();
  auto holder = SqliteDb::Open(path, {});
  ASSERT_TRUE(holder.ok());
  ASSERT_TRUE((*holder)->Exec("CREATE TABLE t(k)").ok());
  auto impatient = SqliteDb::Open(path, {.busy_timeout_ms = 200});
  auto patient = SqliteDb::Open(path, {.busy_timeout_ms = 5000});
  ASSERT_TRUE(impatient.ok() && patient.ok());

  ASSERT_TRUE((*holder)->Exec("BEGIN IMMEDIATE; INSERT INTO t VALUES(1)").ok());
  const auto started = std::chrono::steady_clock::now();
  Status refused = (*impatient)->Exec("BEGIN IMMEDIATE");
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(200));
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find(path), std::string::npos) << refused.message();

  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_TRUE((*holder)->Exec("COMMIT").ok());
  });
  Status waited = (*patient)->Exec("BEGIN IMMEDIATE; INSERT INTO t VALUES(2); COMMIT");
  releaser.join();
  EXPECT_TRUE(waited.ok()) << waited.ToString();
  auto rows = (*patient)->Prepare("SELECT COUNT(*) FROM t");
  ASSERT_TRUE(rows.ok() && *rows->Step());
  EXPECT_EQ(rows->Int(0), 2);
}

TEST_F(SqliteDbTest, ALongStatementTicksEveryPeriodWhileItsProgressLives) {
  auto db = SqliteDb::Open((dir_ / "p.db").string(), {});
  ASSERT_TRUE(db.ok());
  // A statement that runs for a few hundred milliseconds: a million rows of a recursive count.
  const std::string slow =
      "CREATE TABLE total AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
      "WHERE i < 1000000) SELECT sum(i) AS s FROM n";
  int ticks = 0;
  std::chrono::steady_clock::duration ran{};
  {
    SqliteProgress progress(db->get(), std::chrono::milliseconds(10), [&] { ++ticks; });
    const auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE((*db)->Exec(slow).ok());
    ran = std::chrono::steady_clock::now() - start;
  }
  EXPECT_EQ((*db)->QueryInt("SELECT s FROM total")->value_or(0), int64_t{1000000} * 1000001 / 2);
  // At most one tick per period, and more than one in a statement of many periods.
  const auto periods = std::chrono::duration_cast<std::chrono::milliseconds>(ran).count() / 10;
  ASSERT_GE(periods, 3) << "the statement ran too briefly to show anything";
  EXPECT_LE(ticks, periods);
  EXPECT_GE(ticks, 2);

  // Gone with its scope; and none before the first period has passed.
  const int before = ticks;
  ASSERT_TRUE((*db)->Exec("DROP TABLE total; " + slow).ok());
  EXPECT_EQ(ticks, before);
  {
    SqliteProgress progress(db->get(), std::chrono::hours(1), [&] { ++ticks; });
    ASSERT_TRUE((*db)->Exec("DROP TABLE total; " + slow).ok());
  }
  EXPECT_EQ(ticks, before);
}

}  // namespace
}  // namespace instrumeter
