// The billing subcommands of instrumeter-hub, in process, against a real database file.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "common/sqlite_db.h"
#include "hub/cli.h"
#include "hub/ingestor.h"
#include "hub/sqlite_store.h"
#include "hub_testing/chained_envelopes.h"
#include "hub_testing/events.h"
#include "protocol/chain.h"
#include "protocol/topics.h"
#include "test_support/process.h"

namespace instrumeter::hub {
namespace {

using instrumeter::testing::ReadFile;
using instrumeter::testing::WriteFile;
using testing::kBoot1;
using testing::kMono;
using testing::kWall;

constexpr int64_t kMin = 60'000;
constexpr auto kIdle = v1::INSTRUMENT_STATE_IDLE;
constexpr auto kUse = v1::INSTRUMENT_STATE_IN_USE;

class NullDownlink : public Downlink {
 public:
  Status SendAck(const std::string&, uint64_t) override { return Status::Ok(); }
  Status SendResend(const std::string&, uint64_t, uint64_t) override { return Status::Ok(); }
};

class BillingCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(config_, "[mqtt]\nbroker = \"tcp://127.0.0.1:1\"\n[store]\npath = \"" + db_ +
                           "\"\n[billing]\nrate_fen_per_hour = 10000\n");
    WriteFile(dir_.File("instruments.csv"),
              "instrument_id,name,institution,site,city,region,rate_fen_per_hour,rounding\n"
              "nmr-1,NMR 600,Fudan,Jiangwan,Shanghai,Shanghai,30000,\n"
              "tem-2,TEM,SJTU,Minhang,Shanghai,Shanghai,,up\n");
    ASSERT_EQ(Run({"instruments", "import", dir_.File("instruments.csv")}).code, 0);
  }

  struct Output {
    int code;
    std::string out;
    std::string err;
  };

  Output Run(std::vector<std::string> args) {
    args.insert(args.begin(), "instrumeter-hub");
    args.push_back("--config");
    args.push_back(config_);
    std::vector<const char*> argv;
    for (const std::string& a : args) argv.push_back(a.c_str());
    std::ostringstream out;
    std::ostringstream err;
    const int code = RunHubCli(static_cast<int>(argv.size()), argv.data(), out, err);
    return {code, out.str(), err.str()};
  }

  // nmr-1, enrolled, observed 23:50-01:10 UTC, in use 00:05-00:55, signed.
  void Ingest() {
    Result<std::unique_ptr<Store>> store = OpenSqliteStore({.path = db_});
    ASSERT_TRUE(store.ok());
    const protocol::SigningKey key = testing::NewSigningKey();
    DeviceKey enrolled{.device_id = "nmr-1", .public_key = key.public_key(), .cert_serial = "01"};
    ASSERT_TRUE((*store)->AddDeviceKey(&enrolled).ok());
    FakeClock clock;
    HubMetrics metrics;
    NullDownlink downlink;
    auto ingestor = Ingestor::Create(store->get(), &downlink, &clock, &metrics, {});
    ASSERT_TRUE(ingestor.ok());
    const auto at = [](int64_t minutes, uint64_t powered, uint64_t in_use) {
      return testing::At{kBoot1, kMono + minutes * kMin, kWall + minutes * kMin, powered, in_use};
    };
    const std::vector<v1::Event> events = {
        testing::Start(1, kIdle, at(-10, 0, 0)),
        testing::Change(2, kUse, at(5, 15 * kMin, 0)),
        testing::Change(3, kIdle, at(55, 65 * kMin, 50 * kMin)),
        testing::Stop(4, kIdle, at(70, 80 * kMin, 50 * kMin)),
    };
    (*ingestor)->OnMessage(protocol::Topic("nmr-1", protocol::Channel::kUp),
                           testing::ChainedEnvelopes("nmr-1", &key).Envelope(events),
                           kWall + 71 * kMin);
    ASSERT_TRUE((*ingestor)->Flush().ok());
  }

  void ImportBookings() {
    WriteFile(dir_.File("b.csv"),
              "order_id,instrument_id,customer_organisation,customer_city,customer_region,start,"
              "end,remote,voucher_id,voucher_issuing_region,voucher_covered_percent,"
              "voucher_cap_fen,voucher_redemption\n"
              "ORD-1,nmr-1,Suzhou Bio Co,Suzhou,Jiangsu,2026-01-01T08:00:00+08:00,"
              "2026-01-01T09:00:00+08:00,true,JS-1,Jiangsu,40,5000,reimburse\n"
              "ORD-2,tem-2,Hangzhou Materials,Hangzhou,Zhejiang,2026-01-01T08:00:00+08:00,"
              "2026-01-01T09:00:00+08:00,false,,,,,\n");
    Output r = Run({"bookings", "import", dir_.File("b.csv")});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, "imported 2 bookings (2 new, 0 updated, 0 unchanged)\n");
  }

  instrumeter::testing::TempDir dir_;
  std::string db_ = dir_.File("hub.db");
  std::string config_ = dir_.File("hub.toml");
};

TEST_F(BillingCliTest, RulesShowOverridesOverDefaults) {
  Output r = Run({"instruments", "rules"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("nmr-1          30000*"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("up*"), std::string::npos) << r.out;
  r = Run({"instruments", "rules", "--format", "json"});
  const nlohmann::json doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc[0]["rules"]["rate_fen_per_hour"], 30'000);
  EXPECT_EQ(doc[0]["overridden"], nlohmann::json::array({"rate_fen_per_hour"}));
  EXPECT_EQ(doc[1]["rules"]["rate_fen_per_hour"], 10'000);  // the [billing] default
  EXPECT_EQ(doc[1]["rules"]["rounding"], "up");
}

TEST_F(BillingCliTest, ABadBookingFileImportsNothing) {
  WriteFile(dir_.File("bad.json"),
            R"([{"order_id": "J-1", "instrument_id": "nmr-1", "customer": {"organisation": "A",
      "city": "B", "region": "C"}, "start": "2026-01-01T08:00:00+08:00",
      "end": "2026-01-01T09:00:00+08:00", "remote": true},
    {"order_id": "J-2", "instrument_id": "nmr-1", "customer": {"organisation": "A",
      "city": "B", "region": "C"}, "start": "2026-01-01T08:30:00+08:00",
      "end": "2026-01-01T09:30:00+08:00", "remote": true}])");
  Output r = Run({"bookings", "import", dir_.File("bad.json")});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("nothing imported: " + dir_.File("bad.json") +
                       ":4: field 'start': overlaps order 'J-1'"),
            std::string::npos)
      << r.err;
  r = Run({"bookings", "list", "--format", "json"});
  EXPECT_EQ(r.out, "[]\n");
}

TEST_F(BillingCliTest, BookingsShareMakesANewLinkRevokesTheOldAndUnshareWithdrawsIt) {
  ImportBookings();
  Output first = Run({"bookings", "share", "ORD-1", "--base-url", "https://hub.example.org/"});
  ASSERT_EQ(first.code, 0) << first.err;
  const std::string prefix = "https://hub.example.org/live/";
  ASSERT_EQ(first.out.rfind(prefix, 0), 0u) << first.out;
  const std::string old_token = first.out.substr(prefix.size(), 32);
  EXPECT_EQ(first.out, prefix + old_token + "\n");
  Output second = Run({"bookings", "share", "ORD-1"});
  ASSERT_EQ(second.code, 0) << second.err;
  const std::string new_token = second.out.substr(std::string("/live/").size(), 32);
  EXPECT_NE(new_token, old_token);

  // Only hashes are stored; the old link is revoked, the new one active.
  Result<std::unique_ptr<Store>> store = OpenSqliteStore({.path = db_});
  ASSERT_TRUE(store.ok());
  auto old_link = (*store)->FindShareLink(protocol::Sha256(old_token));
  ASSERT_TRUE(old_link.ok() && old_link->has_value());
  EXPECT_TRUE((*old_link)->revoked_unix_ms.has_value());
  auto new_link = (*store)->FindShareLink(protocol::Sha256(new_token));
  ASSERT_TRUE(new_link.ok() && new_link->has_value());
  EXPECT_FALSE((*new_link)->revoked_unix_ms.has_value());
  EXPECT_EQ((*new_link)->order_id, "ORD-1");
  EXPECT_FALSE((*store)->FindShareLink(new_token)->has_value()) << "the token itself is not kept";

  Output on_site = Run({"bookings", "share", "ORD-2"});
  EXPECT_EQ(on_site.code, 2);
  EXPECT_NE(on_site.err.find("on site"), std::string::npos) << on_site.err;
  EXPECT_EQ(Run({"bookings", "share", "ORD-404"}).code, 2);

  // Withdrawn alone: no link of the order works any more, until `share` makes a new one.
  Output unshare = Run({"bookings", "unshare", "ORD-1"});
  ASSERT_EQ(unshare.code, 0) << unshare.err;
  EXPECT_EQ(unshare.out, "withdrew the share link of order 'ORD-1'\n");
  store = OpenSqliteStore({.path = db_});
  ASSERT_TRUE(store.ok());
  new_link = (*store)->FindShareLink(protocol::Sha256(new_token));
  ASSERT_TRUE(new_link.ok() && new_link->has_value());
  EXPECT_TRUE((*new_link)->revoked_unix_ms.has_value());
  EXPECT_EQ(Run({"bookings", "unshare", "ORD-1"}).out,
            "order 'ORD-1' has no active share link: nothing to do\n");
  Output unknown = Run({"bookings", "unshare", "ORD-404"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.err.find("ORD-404"), std::string::npos) << unknown.err;
}

TEST_F(BillingCliTest, FromBookingsToTheLedgerTheExportAndTheReport) {
  ImportBookings();
  Ingest();
  Output r = Run({"bookings", "list"});
  EXPECT_NE(r.out.find("pending"), std::string::npos) << r.out;

  r = Run({"verify", "--now", "2026-01-01T02:00:00Z"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "measured 2 sessions and 0 days on 2 instruments; appended 2 entries and 0 "
            "amendments\n");
  r = Run({"bookings", "list"});
  EXPECT_NE(r.out.find("entry 1"), std::string::npos) << r.out;

  r = Run({"ledger", "verify"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("ledger intact: 2 entries; head entry 2 hash "), std::string::npos);

  r = Run({"ledger", "feed", "--limit", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::json page = nlohmann::json::parse(r.out);
  EXPECT_EQ(page["next_cursor"], "1");
  EXPECT_EQ(page["more"], true);
  r = Run({"ledger", "feed", "--after", "1", "--limit", "5"});
  page = nlohmann::json::parse(r.out);
  EXPECT_EQ(page["entries"][0]["subject"], "session/ORD-2");
  EXPECT_EQ(page["more"], false);

  // ORD-1: 50 min in use -> 45 min billed at 300 yuan/h = 225.00; 40 % = 90.00, capped at
  // 50.00, reimbursed to the customer who pays 225.00 now.
  r = Run({"export", "billing", "--from", "2026-01-01", "--to", "2026-01-02"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string header, first, second, total;
  std::getline(lines, header);
  std::getline(lines, first);
  std::getline(lines, second);
  std::getline(lines, total);
  EXPECT_EQ(header.substr(0, 36), "kind,entry_id,entry,hash,order_id,in");
  EXPECT_NE(first.find(",ORD-1,nmr-1,NMR 600,Fudan,Shanghai,Suzhou Bio Co,Suzhou,Jiangsu,"
                       "2026-01-01T08:00:00+08:00,2026-01-01T09:00:00+08:00,true,,VERIFIED,,"
                       "100.00,0.83,2700,300.00,225.00,JS-1,Jiangsu,40,reimburse,50.00,175.00,"
                       "225.00,0.00,50.00"),
            std::string::npos)
      << first;
  EXPECT_NE(second.find(",ORD-2,tem-2,"), std::string::npos);
  EXPECT_NE(second.find("PARTIAL,gap,0.00,0.00,0,100.00,0.00"), std::string::npos) << second;
  EXPECT_EQ(total, "total,,,,,,,,,,,,,,,,,,,0.83,2700,,225.00,,,,,50.00,175.00,225.00,0.00,50.00");

  const std::string file = dir_.File("billing.json");
  r = Run({"export", "billing", "--from", "2026-01-01", "--to", "2026-01-02", "--format", "json",
           "--output", file});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "wrote 2 records to " + file + "\n");
  const nlohmann::json doc = nlohmann::json::parse(ReadFile(file));
  EXPECT_EQ(doc["totals"]["amount_fen"], 22'500);
  EXPECT_EQ(doc["totals"]["services"], 1);
  EXPECT_EQ(doc["records"][0]["result"]["charges"]["customer_reimbursed_fen"], 5'000);

  r = Run({"report", "--from", "2026-01-01", "--to", "2026-01-02", "--by", "city-pair"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "group                 customers  instruments  services  machine_hours  amount_yuan  "
            "voucher_yuan  disputed\n"
            "Hangzhou -> Shanghai          0            0         0           0.00         0.00  "
            "        0.00         0\n"
            "Suzhou -> Shanghai            1            1         1           0.83       225.00  "
            "       50.00         0\n"
            "total                         1            1         1           0.83       225.00  "
            "       50.00         0\n");
}

TEST_F(BillingCliTest, LedgerVerifyNamesTheBrokenEntry) {
  ImportBookings();
  Ingest();
  ASSERT_EQ(Run({"verify", "--now", "2026-01-01T02:00:00Z"}).code, 0);
  {
    Result<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(db_, {});
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)
                    ->Exec("DROP TRIGGER ledger_no_update; UPDATE ledger SET content = "
                           "replace(content, '22500', '32500') WHERE entry_id = 1")
                    .ok());
  }
  Output r = Run({"ledger", "verify"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err,
            "instrumeter-hub: ledger broken at entry 1: entry 1: hash does not match its content "
            "(content or hash changed)\n");
  EXPECT_EQ(Run({"ledger", "verify", "--anchor", "1:xyz"}).code, 2);
}

}  // namespace
}  // namespace instrumeter::hub
