#include "hub/bookings.h"

#include <gtest/gtest.h>

#include "common/clock.h"
#include "hub/sqlite_store.h"
#include "test_support/process.h"

namespace instrumeter::hub {
namespace {

constexpr char kHeader[] =
    "order_id,instrument_id,customer_organisation,customer_city,customer_region,start,end,remote,"
    "operator,rate_fen_per_hour,voucher_id,voucher_issuing_region,voucher_covered_percent,"
    "voucher_cap_fen,voucher_redemption\n";
constexpr char kGood1[] =
    "YRD-1,nmr-1,Suzhou Bio Co,Suzhou,Jiangsu,2026-03-02T09:00:00+08:00,2026-03-02T12:00:00+08:00,"
    "true,Li Wei,,JS-7,Jiangsu,40,50000,provider\n";
constexpr char kGood2[] =
    "YRD-2,tem-2,Hangzhou Materials,Hangzhou,Zhejiang,2026-03-02T13:00:00+08:00,"
    "2026-03-02T15:30:00+08:00,false,,45000,,,,,\n";

int64_t Utc(const std::string& text) {
  int64_t ms = 0;
  EXPECT_TRUE(ParseUtc(text, &ms)) << text;
  return ms;
}

class BookingsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<Store>> store = OpenSqliteStore({.path = dir_.File("hub.db")});
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    RuleOverridesUpdate nmr_rate;
    nmr_rate.instrument_id = "nmr-1";
    nmr_rate.rules.rate_fen_per_hour = 30'000;
    nmr_rate.rules.rounding = Rounding::kUp;
    nmr_rate.fields_set = (1u << static_cast<int>(RuleField::kRateFenPerHour)) |
                          (1u << static_cast<int>(RuleField::kRounding));
    ASSERT_TRUE(store_
                    ->PutInstrumentsAndRules(
                        {{"nmr-1", "NMR 600", "Fudan", "Jiangwan", "Shanghai", "Shanghai", 0},
                         {"tem-2", "TEM", "SJTU", "Minhang", "Shanghai", "Shanghai", 0}},
                        {nmr_rate}, 0)
                    .ok());
  }

  Result<ImportReport> ImportCsv(const std::string& text) {
    Result<std::vector<BookingInput>> rows = ParseBookingsCsv(text, "b.csv");
    if (!rows.ok()) return rows.status();
    return ImportBookings(store_.get(), *rows, defaults_, 1'000);
  }

  Result<ImportReport> ImportJson(const std::string& text) {
    Result<std::vector<BookingInput>> rows = ParseBookingsJson(text, "b.json");
    if (!rows.ok()) return rows.status();
    return ImportBookings(store_.get(), *rows, defaults_, 1'000);
  }

  std::vector<Booking> All() {
    Result<std::vector<Booking>> all = store_->ListBookings({});
    EXPECT_TRUE(all.ok());
    return all.ok() ? *all : std::vector<Booking>{};
  }

  instrumeter::testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  // As the config gives them: every rule but the rate.
  PartialBillingRules defaults_ = {std::nullopt, 900, 0, Rounding::kNearest, 0, 600, 600};
};

TEST_F(BookingsTest, CsvImportResolvesRulesFieldByField) {
  Result<ImportReport> r = ImportCsv(std::string(kHeader) + kGood1 + kGood2);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->inserted, 2u);
  const std::vector<Booking> all = All();
  ASSERT_EQ(all.size(), 2u);
  const Booking& a = all[0];
  EXPECT_EQ(a.order_id, "YRD-1");
  EXPECT_EQ(a.customer, (Customer{"Suzhou Bio Co", "Suzhou", "Jiangsu"}));
  EXPECT_EQ(a.start_unix_ms, Utc("2026-03-02T01:00:00Z"));
  EXPECT_EQ(a.end_unix_ms, Utc("2026-03-02T04:00:00Z"));
  EXPECT_TRUE(a.remote);
  EXPECT_EQ(a.operator_name, "Li Wei");
  EXPECT_EQ(a.rules.rate_fen_per_hour, 30'000);  // the instrument's
  EXPECT_EQ(a.rules.rounding, Rounding::kUp);    // the instrument's
  EXPECT_EQ(a.rules.billing_unit_seconds, 900);  // the default
  ASSERT_TRUE(a.voucher.has_value());
  EXPECT_EQ(*a.voucher, (Voucher{"JS-7", "Jiangsu", 40, 50'000, Redemption::kProvider}));
  EXPECT_EQ(a.revision, 1);
  EXPECT_FALSE(a.ledger_entry_id.has_value());
  const Booking& b = all[1];
  EXPECT_EQ(b.rules.rate_fen_per_hour, 45'000);  // its own
  EXPECT_EQ(b.rules.rounding, Rounding::kNearest);
  EXPECT_FALSE(b.remote);
  EXPECT_FALSE(b.voucher.has_value());
}

// A bad row is refused with its line and field, and nothing of the file is imported, even the
// good rows before it.
TEST_F(BookingsTest, BadRowsAreRefusedByLineAndFieldAndNothingIsImported) {
  ASSERT_TRUE(ImportCsv(std::string(kHeader) +
                        "OLD-1,nmr-1,A,B,C,2026-03-03T09:00:00+08:00,2026-03-03T10:00:00+08:00,"
                        "true,,,,,,,\n")
                  .ok());
  struct Case {
    std::string row;
    std::string error;
  };
  const std::string t = ",2026-03-04T09:00:00+08:00,2026-03-04T10:00:00+08:00,";
  const Case cases[] = {
      {"X,nmr-1,A,B,C,2026-03-04T10:00:00+08:00,2026-03-04T09:00:00+08:00,true,,,,,,,",
       "b.csv:4: field 'end': must be after start (2026-03-04T02:00:00.000Z)"},
      {"X,nmr-9,A,B,C" + t + "true,,,,,,,",
       "b.csv:4: field 'instrument_id': instrument 'nmr-9' is not registered"},
      {"X,nmr-1,A,B,C,2026-03-03T09:30:00+08:00,2026-03-03T11:00:00+08:00,true,,,,,,,",
       "b.csv:4: field 'start': overlaps order 'OLD-1' (2026-03-03T01:00:00.000Z to "
       "2026-03-03T02:00:00.000Z) on instrument 'nmr-1'"},
      {"X,nmr-1,A,B,C,2026-03-02T11:00:00+08:00,2026-03-02T11:30:00+08:00,true,,,,,,,",
       "b.csv:4: field 'start': overlaps order 'YRD-1' (2026-03-02T01:00:00.000Z to "
       "2026-03-02T04:00:00.000Z) on instrument 'nmr-1' on line 2"},
      {"X,nmr-1,A,B,C" + t + "true,,,V,Jiangsu,101,100,provider",
       "b.csv:4: field 'voucher_covered_percent': 101 is out of range 0..100"},
      {"X,nmr-1,A,B,C" + t + "true,,,V,Jiangsu,-1,100,provider",
       "b.csv:4: field 'voucher_covered_percent': -1 is out of range 0..100"},
      {"X,nmr-1,A,B,C" + t + "true,,,V,Jiangsu,50,,provider",
       "b.csv:4: field 'voucher_cap_fen': missing (the booking has a voucher)"},
      {"X,nmr-1,A,B,C" + t + "true,,,,Jiangsu,50,100,",
       "b.csv:4: field 'voucher_id': missing (voucher_issuing_region is given)"},
      {"X,nmr-1,A,B,C" + t + "true,,,V,Jiangsu,50,100,cash",
       "b.csv:4: field 'voucher_redemption': 'cash' is not provider or reimburse"},
      {"X,nmr-1,A,B,C,2026-02-30T09:00:00+08:00,2026-03-04T10:00:00+08:00,true,,,,,,,",
       "b.csv:4: field 'start': '2026-02-30T09:00:00+08:00' is not an ISO 8601 time with an "
       "offset (e.g. 2026-11-29T09:00:00+08:00)"},
      {"X,nmr-1,A,B,C,2026-03-04T09:00:00,2026-03-04T10:00:00+08:00,true,,,,,,,",
       "b.csv:4: field 'start': '2026-03-04T09:00:00' is not an ISO 8601 time with an offset "
       "(e.g. 2026-11-29T09:00:00+08:00)"},
      {"X,nmr-1,A,B,C,2026-03-04,2026-03-05,true,,,,,,,",
       "b.csv:4: field 'start': '2026-03-04' is not an ISO 8601 time with an offset (e.g. "
       "2026-11-29T09:00:00+08:00)"},
      {"X,nmr-1,A,,C" + t + "true,,,,,,,", "b.csv:4: field 'customer_city': missing"},
      {",nmr-1,A,B,C" + t + "true,,,,,,,", "b.csv:4: field 'order_id': missing"},
      {"X Y,nmr-1,A,B,C" + t + "true,,,,,,,",
       "b.csv:4: field 'order_id': must be one word of at most 128 bytes"},
      {"X,nmr-1,A,B,C" + t + "maybe,,,,,,,",
       "b.csv:4: field 'remote': 'maybe' is not true or false"},
      {"X,nmr-1,A,B,C" + t + "true,,12.5,,,,,",
       "b.csv:4: field 'rate_fen_per_hour': '12.5' is "
       "not an integer"},
      {"X,tem-2,A,B,C" + t + "true,,,,,,,",
       "b.csv:4: field 'rate_fen_per_hour': missing: instrument 'tem-2' has no rate and "
       "[billing] sets no default"},
      {"YRD-2,nmr-1,A,B,C" + t + "true,,,,,,,",
       "b.csv:4: field 'order_id': order 'YRD-2' appears twice (first on line 3)"},
      {"X,nmr-1,A,\xff\xfe,C" + t + "true,,,,,,,",
       "b.csv:4: field 'customer_city': not valid "
       "UTF-8"},
      {"X,nmr-1,A,B,C" + t + "true", "b.csv:4: 8 fields, expected 15"},
  };
  for (const Case& c : cases) {
    Result<ImportReport> r = ImportCsv(std::string(kHeader) + kGood1 + kGood2 + c.row + "\n");
    ASSERT_FALSE(r.ok()) << c.row;
    EXPECT_EQ(r.status().message(), c.error);
    const std::vector<Booking> all = All();
    ASSERT_EQ(all.size(), 1u) << "half imported: " << c.row;
    EXPECT_EQ(all[0].order_id, "OLD-1");
  }
}

TEST_F(BookingsTest, HeaderErrors) {
  EXPECT_EQ(ParseBookingsCsv("order_id,instrument_id\n", "b.csv").status().message(),
            "b.csv:1: field 'customer_organisation': column missing from the header");
  EXPECT_EQ(ParseBookingsCsv(std::string("colour,") + kHeader, "b.csv").status().message(),
            "b.csv:1: field 'colour': unknown column");
  EXPECT_EQ(ParseBookingsCsv("", "b.csv").status().message(),
            "b.csv: empty file; expected a header line");
}

TEST_F(BookingsTest, JsonNamesNestedFieldsAndLines) {
  const std::string good = R"({"order_id": "J-1", "instrument_id": "nmr-1",
    "customer": {"organisation": "Suzhou Bio Co", "city": "Suzhou", "region": "Jiangsu"},
    "start": "2026-03-05T09:00:00+08:00", "end": "2026-03-05T10:00:00+08:00", "remote": true,
    "voucher": {"voucher_id": "JS-9", "issuing_region": "Jiangsu", "covered_percent": 50,
                "cap_fen": 20000, "redemption": "reimburse"}})";
  Result<ImportReport> r = ImportJson(good);  // one object, not an array
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(All().size(), 1u);
  EXPECT_EQ(All()[0].voucher->redemption, Redemption::kReimburse);

  const auto error = [&](const std::string& text) {
    Result<ImportReport> bad = ImportJson(text);
    EXPECT_FALSE(bad.ok());
    return bad.ok() ? std::string() : bad.status().message();
  };
  EXPECT_EQ(error("[\n" + good + ",\n" +
                  R"({"order_id": "J-2", "instrument_id": "nmr-1", "customer": {"organisation":
                  "X", "region": "Y"}, "start": "2026-03-06T09:00:00+08:00",
                  "end": "2026-03-06T10:00:00+08:00", "remote": false}])"),
            "b.json:7: field 'customer.city': missing");
  EXPECT_EQ(error(R"([{"order_id": "J-3", "instrument_id": "nmr-1", "remote": "yes"}])"),
            "b.json:1: field 'remote': must be true or false");
  EXPECT_EQ(error(R"([{"order_id": "J-3", "colour": "red"}])"),
            "b.json:1: field 'colour': unknown field");
  EXPECT_EQ(error(R"([{"order_id": "J-3", "voucher": {"share": 5}}])"),
            "b.json:1: field 'voucher.share': unknown field");
  EXPECT_EQ(error(R"([{"order_id": "J-3", "customer": "X"}])"),
            "b.json:1: field 'customer': must be an object");
  EXPECT_EQ(error("[{\"order_id\": \"J-3\",\n \"rate_fen_per_hour\": 1.5}]"),
            "b.json:1: field 'rate_fen_per_hour': must be an integer");
  EXPECT_EQ(error("[1,\n{]"), "b.json:2: not valid JSON");
  // Found by the fuzzer: a number too large for a double escaped as an exception.
  EXPECT_EQ(error(R"([{"order_id": "J-3", "rate_fen_per_hour": 1E400}])"),
            "b.json: not valid JSON: number overflow parsing '1E400'");
  EXPECT_EQ(All().size(), 1u);
}

TEST_F(BookingsTest, SendingAnOrderAgainUpdatesIt) {
  ASSERT_TRUE(ImportCsv(std::string(kHeader) + kGood1 + kGood2).ok());
  Result<ImportReport> again = ImportCsv(std::string(kHeader) + kGood1 + kGood2);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->unchanged, 2u);
  EXPECT_EQ(All()[0].revision, 1);

  std::string changed = kGood1;
  changed.replace(changed.find("50000"), 5, "60000");  // a bigger voucher cap
  Result<ImportReport> update = ImportCsv(std::string(kHeader) + changed);
  ASSERT_TRUE(update.ok());
  EXPECT_EQ(update->updated, 1u);
  EXPECT_EQ(All()[0].revision, 2);
  EXPECT_EQ(All()[0].voucher->cap_fen, 60'000);
}

TEST_F(BookingsTest, AnImportMayMoveBookingsIntoEachOthersSlots) {
  ASSERT_TRUE(ImportCsv(std::string(kHeader) +
                        "A,nmr-1,X,Y,Z,2026-03-02T09:00:00+08:00,2026-03-02T10:00:00+08:00,true,,"
                        ",,,,,\n"
                        "B,nmr-1,X,Y,Z,2026-03-02T10:00:00+08:00,2026-03-02T11:00:00+08:00,true,,"
                        ",,,,,\n")
                  .ok());
  Result<ImportReport> swap =
      ImportCsv(std::string(kHeader) +
                "A,nmr-1,X,Y,Z,2026-03-02T10:00:00+08:00,2026-03-02T11:00:00+08:00,true,,,,,,,\n"
                "B,nmr-1,X,Y,Z,2026-03-02T09:00:00+08:00,2026-03-02T10:00:00+08:00,true,,,,,,,\n");
  ASSERT_TRUE(swap.ok()) << swap.status().ToString();
  EXPECT_EQ(swap->updated, 2u);
  EXPECT_EQ(All()[0].order_id, "B");
}

TEST_F(BookingsTest, ListingsImportAgainUnchanged) {
  ASSERT_TRUE(ImportCsv(std::string(kHeader) + kGood1 + kGood2).ok());
  const std::vector<Booking> before = All();
  for (const bool json : {false, true}) {
    const std::string text = json ? BookingsJson(before) : BookingsCsv(before);
    Result<std::vector<BookingInput>> rows =
        json ? ParseBookingsJson(text, "list") : ParseBookingsCsv(text, "list");
    ASSERT_TRUE(rows.ok()) << rows.status().ToString() << "\n" << text;
    Result<ImportReport> r = ImportBookings(store_.get(), *rows, defaults_, 2'000);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->unchanged, 2u) << text;
  }
}

}  // namespace
}  // namespace instrumeter::hub
