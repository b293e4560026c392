// The billing side of the SQLite store: what ingest records for verification, rule overrides and
// the migration of a version-1 database.
#include "sqlite_billing.h"

#include <gtest/gtest.h>

#include "common/sqlite_db.h"
#include "hub/ingestor.h"
#include "hub/sqlite_store.h"
#include "hub_testing/events.h"
#include "protocol/topics.h"
#include "test_support/process.h"

namespace instrumeter::hub {
namespace {

using testing::At;
using testing::kBoot1;
using testing::kMono;
using testing::kWall;

constexpr int64_t kHour = 3'600'000;
constexpr auto kIdle = v1::INSTRUMENT_STATE_IDLE;

class NullDownlink : public Downlink {
 public:
  Status SendAck(const std::string&, uint64_t) override { return Status::Ok(); }
  Status SendResend(const std::string&, uint64_t, uint64_t) override { return Status::Ok(); }
};

class SqliteBillingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<Store>> store = OpenSqliteStore({.path = path_});
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    ASSERT_TRUE(store_->PutInstruments({{"nmr-1", "NMR", "", "", "", "", 0}}, 0).ok());
    auto ingestor = Ingestor::Create(store_.get(), &downlink_, &clock_, &metrics_, {});
    ASSERT_TRUE(ingestor.ok());
    ingestor_ = std::move(*ingestor);
  }

  void Deliver(const v1::Event& e, int64_t received) {
    ingestor_->OnMessage(protocol::Topic("nmr-1", protocol::Channel::kUp),
                         testing::EnvelopeOf("nmr-1", {e}), received);
    ASSERT_TRUE(ingestor_->Flush().ok());
  }

  std::optional<DirtyRange> Dirty() {
    Result<std::vector<DirtyRange>> all = store_->ReadDirtyRanges();
    EXPECT_TRUE(all.ok());
    if (!all.ok() || all->empty()) return std::nullopt;
    return all->front();
  }

  void Clear(const DirtyRange& range) {
    ASSERT_TRUE(
        store_->InLedgerTransaction([&](LedgerTxn* tx) { return tx->ClearDirtyRange(range); })
            .ok());
  }

  static At Point(int64_t offset_ms, uint64_t powered) {
    return {kBoot1, kMono + offset_ms, kWall + offset_ms, powered, 0};
  }

  instrumeter::testing::TempDir dir_;
  std::string path_ = dir_.File("hub.db");
  std::unique_ptr<Store> store_;
  FakeClock clock_;
  HubMetrics metrics_;
  NullDownlink downlink_;
  std::unique_ptr<Ingestor> ingestor_;
};

TEST_F(SqliteBillingTest, IngestRecordsOnlyTheNewPartOfAnExtendedInterval) {
  Deliver(testing::Start(1, kIdle, Point(0, 0)), kWall + 10);
  Deliver(testing::Beat(2, kIdle, Point(10 * 60'000, 600'000)), kWall + 600'010);
  std::optional<DirtyRange> d = Dirty();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->instrument_id, "nmr-1");
  EXPECT_EQ(d->from_unix_ms, kWall);
  EXPECT_EQ(d->to_unix_ms, kWall + 600'000);

  Clear(*d);
  EXPECT_FALSE(Dirty().has_value());
  // The heartbeat at 20 min extends the open interval: only 10-20 min changed.
  Deliver(testing::Beat(3, kIdle, Point(20 * 60'000, 1'200'000)), kWall + 1'200'010);
  d = Dirty();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->from_unix_ms, kWall + 600'000);
  EXPECT_EQ(d->to_unix_ms, kWall + 1'200'000);

  // A range that changed after it was read is not cleared with its old version.
  const DirtyRange stale = *d;
  Deliver(testing::Mark(4, Point(21 * 60'000, 0), "ORD-3"), kWall + 1'260'010);
  Clear(stale);
  d = Dirty();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->from_unix_ms, kWall + 600'000);
  EXPECT_EQ(d->to_unix_ms, kWall + 1'260'001);  // the session mark's instant
  EXPECT_GT(d->version, stale.version);

  Result<std::vector<MarkRecord>> marks = store_->ReadSessionMarks("nmr-1", kWall, kWall + kHour);
  ASSERT_TRUE(marks.ok());
  ASSERT_EQ(marks->size(), 1u);
  EXPECT_EQ((*marks)[0],
            (MarkRecord{4, kWall + 1'260'000, v1::SessionMark::KIND_START, "ORD-3", ""}));
}

TEST_F(SqliteBillingTest, HourFactsKeepTheLeastFreshOffsetAndDisagreements) {
  Deliver(testing::Start(1, kIdle, Point(0, 0)), kWall + 5);
  v1::Event fresh = testing::Beat(2, kIdle, Point(600'000, 600'000));
  Deliver(fresh, kWall + 600'000 + 40);
  v1::Event backlog = testing::Beat(3, kIdle, Point(1'200'000, 1'200'000), "t", 7);
  Deliver(backlog, kWall + 5 * kHour);  // waited in the outbox: not a clock sample
  v1::Event disagree = testing::Beat(4, kIdle, Point(1'800'000, 1'800'000));
  disagree.mutable_heartbeat()->set_disagreement(true);
  Deliver(disagree, kWall + 1'800'000 + 25);
  v1::Event next_hour = testing::Beat(5, kIdle, Point(kHour + 60'000, kHour + 60'000));
  Deliver(next_hour, kWall + kHour + 60'000 - 2'000);  // an agent clock 2 s ahead

  Result<std::vector<HourFacts>> hours = store_->ReadHourFacts("nmr-1", kWall, kWall + 2 * kHour);
  ASSERT_TRUE(hours.ok());
  ASSERT_EQ(hours->size(), 2u);
  EXPECT_EQ((*hours)[0], (HourFacts{kWall, 2, 25, kWall + 1'800'000, kWall + 1'800'000}));
  EXPECT_EQ((*hours)[1], (HourFacts{kWall + kHour, 1, -2'000, std::nullopt, std::nullopt}));
  // Only hours that may overlap the range are read.
  hours = store_->ReadHourFacts("nmr-1", kWall + kHour + 1, kWall + 2 * kHour);
  ASSERT_TRUE(hours.ok());
  EXPECT_EQ(hours->size(), 1u);
}

TEST_F(SqliteBillingTest, RuleOverridesChangeOnlyTheFieldsAnImportCarries) {
  const auto bit = [](RuleField f) { return 1u << static_cast<int>(f); };
  RuleOverridesUpdate u;
  u.instrument_id = "nmr-1";
  u.rules.rate_fen_per_hour = 30'000;
  u.rules.billing_unit_seconds = 300;
  u.fields_set = bit(RuleField::kRateFenPerHour) | bit(RuleField::kBillingUnitSeconds);
  ASSERT_TRUE(store_->PutInstrumentsAndRules({}, {u}, 0).ok());

  RuleOverridesUpdate rounding;
  rounding.instrument_id = "nmr-1";
  rounding.rules.rounding = Rounding::kDown;
  rounding.fields_set = bit(RuleField::kRounding);
  ASSERT_TRUE(store_->PutInstrumentsAndRules({}, {rounding}, 0).ok());
  Result<std::vector<InstrumentRuleOverrides>> all = store_->ListRuleOverrides();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].rules, (PartialBillingRules{30'000, 300, std::nullopt, Rounding::kDown,
                                                  std::nullopt, std::nullopt, std::nullopt}));

  RuleOverridesUpdate clear;  // every field present and empty: back to the defaults
  clear.instrument_id = "nmr-1";
  clear.fields_set = (1u << kRuleFieldCount) - 1;
  ASSERT_TRUE(store_->PutInstrumentsAndRules({}, {clear}, 0).ok());
  all = store_->ListRuleOverrides();
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->empty());
}

TEST_F(SqliteBillingTest, AVersionOneDatabaseIsMigratedToTheLatest) {
  Deliver(testing::Start(1, kIdle, Point(0, 0)), kWall + 5);
  store_.reset();
  ingestor_.reset();
  {
    // Back to what a hub of schema version 1 left: no billing tables (version 2), no signed
    // telemetry (version 3), no share links (version 4), no key version (version 5; its
    // triggers go with device_keys), no archive (version 6). Its events are copied into device
    // order (version 7) on the way.
    Result<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(path_, {});
    ASSERT_TRUE(db.ok());
    Status reverted = (*db)->Exec(
        "DROP TABLE billing_rules; DROP TABLE bookings; DROP TABLE billing_dirty; "
        "DROP TABLE device_hours; DROP INDEX events_session_marks; DROP TABLE unbooked_progress; "
        "DROP TABLE ledger; DROP TABLE ledger_head; "
        "DROP TABLE device_keys; DROP TABLE unproven_ranges; DROP TABLE api_tokens; "
        "DROP TABLE share_links; DROP TABLE bookings_version; DROP TABLE device_keys_version; "
        "DROP TABLE event_blocks; ALTER TABLE devices DROP COLUMN archived_through; "
        "ALTER TABLE events DROP COLUMN link; ALTER TABLE devices DROP COLUMN chain_link; "
        "ALTER TABLE devices DROP COLUMN signed_through; "
        "ALTER TABLE devices DROP COLUMN chain_broken_from; "
        "ALTER TABLE devices DROP COLUMN chain_head_seq; "
        "ALTER TABLE devices DROP COLUMN chain_head; "
        "ALTER TABLE devices DROP COLUMN chain_signature; "
        "ALTER TABLE devices DROP COLUMN chain_reset_unix_ms; PRAGMA user_version = 1");
    ASSERT_TRUE(reverted.ok()) << reverted.ToString();
  }
  Result<std::unique_ptr<Store>> store = OpenSqliteStore({.path = path_});
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ(SqliteSchemaVersion(), 7);
  Result<LedgerHead> head = (*store)->ReadLedgerHead();
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->entry_id, 0);
  Result<std::vector<UnbookedProgress>> progress = (*store)->ReadUnbookedProgress("");
  ASSERT_TRUE(progress.ok());
  ASSERT_EQ(progress->size(), 1u);  // the events of before are still there
  EXPECT_EQ((*progress)[0].first_interval_unix_ms, kWall);
}

}  // namespace
}  // namespace instrumeter::hub
