#include "hub/billing_driver.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "hub/bookings.h"
#include "hub/ingestor.h"
#include "hub/ledger.h"
#include "hub_testing/chained_envelopes.h"
#include "hub_testing/events.h"
#include "protocol/codec.h"
#include "protocol/topics.h"
#include "test_support/process.h"

namespace instrumeter::hub {
namespace {

using nlohmann::json;

constexpr int64_t kMinute = 60'000;
constexpr char kDevice[] = "nmr-1";
// 2026-01-01T10:00:00Z; h(9.5) is 09:30 that day, h(24) midnight after it.
constexpr int64_t h(double hours) {
  return testing::kWall + static_cast<int64_t>(hours * 60 * kMinute);
}

class NullDownlink : public Downlink {
 public:
  Status SendAck(const std::string&, uint64_t) override { return Status::Ok(); }
  Status SendResend(const std::string&, uint64_t, uint64_t) override { return Status::Ok(); }
};

// An agent metering one instrument: events with honest counters (no counter mismatch), one
// boot, a heartbeat every 10 minutes.
class FakeAgent {
 public:
  FakeAgent(int64_t wall, v1::InstrumentState state) : state_(state), last_(wall) {
    events_.push_back(testing::Start(++seq_, state, AtTime(wall)));
  }

  // Heartbeats up to and including `wall`.
  void RunUntil(int64_t wall) {
    while (last_ + 10 * kMinute <= wall) {
      Advance(last_ + 10 * kMinute);
      events_.push_back(testing::Beat(++seq_, state_, AtTime(last_)));
    }
    Advance(wall);
  }
  void Change(int64_t wall, v1::InstrumentState state) {
    RunUntil(wall);
    state_ = state;
    events_.push_back(testing::Change(++seq_, state, AtTime(wall)));
  }
  void Mark(int64_t wall, const std::string& order) {
    RunUntil(wall);
    events_.push_back(testing::Mark(++seq_, AtTime(wall), order));
  }
  void Stop(int64_t wall) {
    RunUntil(wall);
    events_.push_back(testing::Stop(++seq_, state_, AtTime(wall)));
  }
  // Events from `first` (an index) on.
  std::vector<v1::Event> Take(size_t first = 0) const {
    return {events_.begin() + static_cast<long>(first), events_.end()};
  }
  size_t size() const { return events_.size(); }

 private:
  void Advance(int64_t wall) {
    const uint64_t d = static_cast<uint64_t>(wall - last_);
    if (protocol::IsPowered(state_)) powered_ += d;
    if (protocol::IsInUse(state_)) in_use_ += d;
    last_ = wall;
  }
  testing::At AtTime(int64_t wall) const {
    return {testing::kBoot1, testing::kMono + (wall - testing::kWall), wall, powered_, in_use_};
  }

  v1::InstrumentState state_;
  int64_t last_;
  uint64_t seq_ = 0;
  uint64_t powered_ = 0;
  uint64_t in_use_ = 0;
  std::vector<v1::Event> events_;
};

class BillingDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = Open();
    RuleOverridesUpdate rate;
    rate.instrument_id = kDevice;
    rate.rules.rate_fen_per_hour = 12'000;
    rate.fields_set = 1u << static_cast<int>(RuleField::kRateFenPerHour);
    ASSERT_TRUE(store_
                    ->PutInstrumentsAndRules(
                        {{kDevice, "NMR 600", "Fudan", "Jiangwan", "Shanghai", "Shanghai", 0},
                         {"tem-2", "TEM", "SJTU", "Minhang", "Shanghai", "Shanghai", 0}},
                        {rate}, 0)
                    .ok());
    options_.day_utc_offset_minutes = 0;
    options_.defaults.rate_fen_per_hour = 10'000;
    // nmr-1 is enrolled and signs; tem-2 is not (development mode).
    DeviceKey enrolled{.device_id = kDevice, .public_key = key_.public_key(), .cert_serial = "01"};
    ASSERT_TRUE(store_->AddDeviceKey(&enrolled).ok());
    auto ingestor = Ingestor::Create(store_.get(), &downlink_, &clock_, &metrics_, {});
    ASSERT_TRUE(ingestor.ok());
    ingestor_ = std::move(*ingestor);
  }

  std::unique_ptr<Store> Open(const std::string& name = "hub.db") {
    Result<std::unique_ptr<Store>> store = OpenSqliteStore({.path = dir_.File(name)});
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return std::move(*store);
  }

  // Delivers nmr-1's events one envelope each, every one signed (or none), received `delay_ms`
  // after they happened (or at `received` when set), and commits.
  void Deliver(const std::vector<v1::Event>& events, int64_t delay_ms = 50,
               std::optional<int64_t> received = std::nullopt, bool sign = true) {
    for (const v1::Event& e : events)
      ingestor_->OnMessage(protocol::Topic(kDevice, protocol::Channel::kUp),
                           chain_.Envelope({e}, sign),
                           received.value_or(e.at().wall_unix_ms() + delay_ms));
    ASSERT_TRUE(ingestor_->Flush().ok());
  }

  void Book(const std::string& csv_rows) {
    Result<std::vector<BookingInput>> rows = ParseBookingsCsv(
        "order_id,instrument_id,customer_organisation,customer_city,customer_region,start,end,"
        "remote,rate_fen_per_hour,voucher_id,voucher_issuing_region,voucher_covered_percent,"
        "voucher_cap_fen,voucher_redemption\n" +
            csv_rows,
        "b.csv");
    ASSERT_TRUE(rows.ok()) << rows.status().ToString();
    Result<ImportReport> r = ImportBookings(store_.get(), *rows, options_.defaults, 0);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  // Registers `size` instruments fleet-0, fleet-1, ... (into `fleet`) whose agents do not sign,
  // and returns the development-mode ingestor their telemetry goes through (nullptr on failure).
  std::unique_ptr<Ingestor> StartFleet(int size, std::vector<Instrument>* fleet) {
    for (int i = 0; i < size; ++i)
      fleet->push_back({"fleet-" + std::to_string(i), "MS", "", "", "", "", 0});
    EXPECT_TRUE(store_->PutInstruments(*fleet, 0).ok());
    IngestOptions development;
    development.require_signatures = false;
    auto ingestor = Ingestor::Create(store_.get(), &downlink_, &clock_, &metrics_, development);
    EXPECT_TRUE(ingestor.ok()) << ingestor.status().ToString();
    return ingestor.ok() ? std::move(*ingestor) : nullptr;
  }

  PassReport Pass(int64_t now) {
    BillingDriver driver(store_.get(), options_);
    Result<PassReport> r = driver.RunOnce(now);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : PassReport{};
  }

  std::vector<LedgerEntry> Ledger() {
    Result<std::vector<LedgerEntry>> all = store_->ReadLedger(0, 1000);
    EXPECT_TRUE(all.ok());
    return all.ok() ? *all : std::vector<LedgerEntry>{};
  }

  static json Content(const LedgerEntry& e) { return json::parse(e.content); }

  // The usual day: observed from 09:00 to 12:00; in use 10:05-10:55.
  FakeAgent UsualDay() {
    FakeAgent agent(h(9), v1::INSTRUMENT_STATE_IDLE);
    agent.Change(h(10) + 5 * kMinute, v1::INSTRUMENT_STATE_IN_USE);
    agent.Change(h(10) + 55 * kMinute, v1::INSTRUMENT_STATE_IDLE);
    agent.Stop(h(12));
    return agent;
  }

  static constexpr char kTenToEleven[] =
      "ORD-1,nmr-1,Suzhou Bio Co,Suzhou,Jiangsu,2026-01-01T10:00:00Z,2026-01-01T11:00:00Z,true,,"
      "JS-1,Jiangsu,40,1000,provider\n";

  instrumeter::testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  protocol::SigningKey key_ = testing::NewSigningKey();
  testing::ChainedEnvelopes chain_{kDevice, &key_};
  FakeClock clock_;
  HubMetrics metrics_;
  NullDownlink downlink_;
  std::unique_ptr<Ingestor> ingestor_;
  BillingOptions options_;
};

TEST_F(BillingDriverTest, VerifiesOnceTheWindowClosedAndSettled) {
  Deliver(UsualDay().Take());
  Book(kTenToEleven);
  // 11:20: the grace ends at 11:10, the settle delay (15 min) at 11:25.
  EXPECT_EQ(Pass(h(11) + 20 * kMinute).entries_appended, 0u);
  EXPECT_TRUE(Ledger().empty());

  const PassReport r = Pass(h(11) + 30 * kMinute);
  EXPECT_EQ(r.sessions_measured, 1u);
  EXPECT_EQ(r.entries_appended, 1u);
  const std::vector<LedgerEntry> ledger = Ledger();
  ASSERT_EQ(ledger.size(), 1u);
  EXPECT_EQ(ledger[0].kind, "session");
  EXPECT_EQ(ledger[0].subject, "session/ORD-1");
  const json c = Content(ledger[0]);
  const json& res = c["result"];
  EXPECT_EQ(res["status"], "VERIFIED");
  EXPECT_EQ(res["flags"], json::array());
  EXPECT_EQ(res["telemetry"]["in_use_ms"], 50 * kMinute);
  EXPECT_EQ(res["telemetry"]["coverage_ppm"], 1'000'000);
  EXPECT_EQ(res["telemetry"]["clock_offset_ms"], 50);  // delivered 50 ms after the fact
  EXPECT_EQ(res["instrument"]["institution"], "Fudan");
  EXPECT_EQ(res["rules"]["rate_fen_per_hour"], 12'000);  // the instrument's rate
  // 50 min -> 3.33 units of 15 min -> 45 min; 120 yuan/h -> 90 yuan; 40 % capped at 10 yuan.
  EXPECT_EQ(res["charges"]["billable_seconds"], 2700);
  EXPECT_EQ(res["charges"]["amount_fen"], 9'000);
  EXPECT_EQ(res["charges"]["voucher_fen"], 1'000);
  EXPECT_EQ(res["charges"]["customer_share_fen"], 8'000);

  Result<std::vector<Booking>> booking = store_->ListBookings({});
  ASSERT_TRUE(booking.ok());
  EXPECT_EQ((*booking)[0].ledger_entry_id, 1);
  // Passes that find nothing new write nothing.
  EXPECT_EQ(Pass(h(11) + 31 * kMinute).entries_appended, 0u);
  EXPECT_EQ(Pass(h(12)).amendments, 0u);
  EXPECT_EQ(Ledger().size(), 1u);
}

TEST_F(BillingDriverTest, LateEventsAmendTheSession) {
  FakeAgent agent = UsualDay();
  const std::vector<v1::Event> all = agent.Take();
  // The agent went offline at 10:30: everything after it waits in its outbox.
  size_t cut = 0;
  while (cut < all.size() && all[cut].at().wall_unix_ms() <= h(10) + 30 * kMinute) ++cut;
  Deliver({all.begin(), all.begin() + static_cast<long>(cut)});
  Book(kTenToEleven);
  Pass(h(11) + 30 * kMinute);
  std::vector<LedgerEntry> ledger = Ledger();
  ASSERT_EQ(ledger.size(), 1u);
  EXPECT_EQ(Content(ledger[0])["result"]["status"], "PARTIAL");
  // Heard until the heartbeat of 10:25: in use 10:05-10:25.
  EXPECT_EQ(Content(ledger[0])["result"]["telemetry"]["in_use_ms"], 20 * kMinute);

  // At 13:00 the backlog arrives; its heartbeats waited in the outbox (not fresh), so they say
  // nothing about the agent's clock.
  std::vector<v1::Event> backlog(all.begin() + static_cast<long>(cut), all.end());
  for (v1::Event& e : backlog)
    if (e.has_heartbeat()) e.mutable_heartbeat()->set_outbox_depth(9);
  Deliver(backlog, 0, h(13));
  const PassReport r = Pass(h(13) + kMinute);
  EXPECT_EQ(r.amendments, 1u);
  ledger = Ledger();
  ASSERT_EQ(ledger.size(), 2u);
  const json c = Content(ledger[1]);
  EXPECT_EQ(ledger[1].kind, "amendment");
  EXPECT_EQ(c["amends_entry_id"], 1);
  EXPECT_EQ(c["result"]["status"], "VERIFIED");
  EXPECT_EQ(c["result"]["telemetry"]["clock_offset_ms"], 50);
  EXPECT_EQ(c["delta"]["in_use_ms"], 30 * kMinute);
  EXPECT_EQ(c["delta"]["previous_status"], "PARTIAL");
  EXPECT_EQ(c["delta"]["amount_fen"], 9'000 - 3'000);  // 20 min were one unit of 15 before
  Result<LedgerCheck> check = VerifyLedger(store_.get());
  ASSERT_TRUE(check.ok());
  EXPECT_FALSE(check->broken.has_value());
}

TEST_F(BillingDriverTest, FreshHeartbeatsRevealClockSkew) {
  Deliver(UsualDay().Take(), 3 * kMinute);  // the agent's clock runs 3 minutes behind
  Book(kTenToEleven);
  Pass(h(12));
  const json res = Content(Ledger().at(0))["result"];
  EXPECT_EQ(res["status"], "DISPUTED");
  EXPECT_EQ(res["flags"], json::array({"clock_skew"}));
  EXPECT_EQ(res["telemetry"]["clock_offset_ms"], 3 * kMinute);
}

TEST_F(BillingDriverTest, SessionMarksAreEvidence) {
  FakeAgent agent(h(9), v1::INSTRUMENT_STATE_IDLE);
  agent.Mark(h(10) + kMinute, "ORD-1");
  agent.Change(h(10) + 5 * kMinute, v1::INSTRUMENT_STATE_IN_USE);
  agent.Mark(h(10) + 20 * kMinute, "ORD-7");  // someone else's order in this slot
  agent.Change(h(10) + 55 * kMinute, v1::INSTRUMENT_STATE_IDLE);
  agent.Stop(h(12));
  Deliver(agent.Take());
  Book(kTenToEleven);
  Pass(h(12));
  const json res = Content(Ledger().at(0))["result"];
  EXPECT_EQ(res["status"], "DISPUTED");
  EXPECT_EQ(res["flags"], json::array({"session_mark_other_order"}));
  EXPECT_EQ(res["telemetry"]["session_marks"], 1);
  EXPECT_EQ(res["telemetry"]["other_order_marks"], json::array({"ORD-7"}));
}

TEST_F(BillingDriverTest, AChangedBookingIsAmended) {
  Deliver(UsualDay().Take());
  Book(kTenToEleven);
  Pass(h(12));
  // The order is sent again with its own rate: the terms changed after verification.
  Book(
      "ORD-1,nmr-1,Suzhou Bio Co,Suzhou,Jiangsu,2026-01-01T10:00:00Z,2026-01-01T11:00:00Z,true,"
      "24000,JS-1,Jiangsu,40,1000,provider\n");
  Result<std::vector<Booking>> booking = store_->ListBookings({});
  ASSERT_TRUE(booking.ok());
  EXPECT_FALSE((*booking)[0].ledger_entry_id.has_value()) << "not verified under its new terms";
  EXPECT_EQ(Pass(h(12) + kMinute).amendments, 1u);
  const std::vector<LedgerEntry> ledger = Ledger();
  ASSERT_EQ(ledger.size(), 2u);
  const json c = Content(ledger[1]);
  EXPECT_EQ(c["result"]["charges"]["amount_fen"], 18'000);
  EXPECT_EQ(c["delta"]["amount_fen"], 9'000);
  EXPECT_EQ(c["delta"]["customer_share_fen"], 9'000);  // the voucher was capped already
  booking = store_->ListBookings({});
  EXPECT_EQ((*booking)[0].ledger_entry_id, 2);
}

TEST_F(BillingDriverTest, UseInsideBookingsLeavesNothingToExplain) {
  FakeAgent agent(h(9), v1::INSTRUMENT_STATE_IDLE);
  agent.Change(h(9) + 49.5 * kMinute, v1::INSTRUMENT_STATE_IN_USE);  // 30 s before the grace
  agent.Change(h(10) + 55 * kMinute, v1::INSTRUMENT_STATE_IDLE);
  agent.Stop(h(12));
  Deliver(agent.Take());
  Book(kTenToEleven);
  EXPECT_EQ(Pass(h(24) + 10 * kMinute).days_measured, 0u);  // 00:00 + 15 min not reached
  EXPECT_EQ(Pass(h(24) + 20 * kMinute).days_measured, 1u);
  EXPECT_EQ(Pass(h(24) + 30 * kMinute).days_measured, 0u);  // each day once
  // 30 s of use outside every window is below unbooked_min_seconds: nothing recorded.
  const std::vector<LedgerEntry> ledger = Ledger();
  ASSERT_EQ(ledger.size(), 1u);
  EXPECT_EQ(ledger[0].kind, "session");
  EXPECT_EQ(Content(ledger[0])["result"]["flags"], json::array({"unbooked_use"}));
}

TEST_F(BillingDriverTest, UnbookedUseIsRecordedAndAmendedByALateBooking) {
  FakeAgent agent(h(13), v1::INSTRUMENT_STATE_IDLE);
  agent.Change(h(14), v1::INSTRUMENT_STATE_IN_USE);
  agent.Change(h(15), v1::INSTRUMENT_STATE_IDLE);
  agent.Stop(h(16));
  Deliver(agent.Take());
  Pass(h(24) + 20 * kMinute);
  std::vector<LedgerEntry> ledger = Ledger();
  ASSERT_EQ(ledger.size(), 1u);
  EXPECT_EQ(ledger[0].kind, "unbooked");
  EXPECT_EQ(ledger[0].subject, "unbooked/nmr-1/2026-01-01");
  json res = Content(ledger[0])["result"];
  EXPECT_EQ(res["in_use_ms"], 60 * kMinute);
  EXPECT_EQ(res["stretches"], json::array({json::array({h(14), h(15)})}));

  // The owner explains it: the booking was made, late. Its session is verified and the day
  // amended to nothing left unbooked.
  Book(
      "LATE-1,nmr-1,Wuxi Chem,Wuxi,Jiangsu,2026-01-01T14:00:00Z,2026-01-01T15:00:00Z,false,,,,,,"
      "\n");
  const PassReport r = Pass(h(24) + 30 * kMinute);
  EXPECT_EQ(r.entries_appended, 1u);
  EXPECT_EQ(r.amendments, 1u);
  ledger = Ledger();
  ASSERT_EQ(ledger.size(), 3u);
  EXPECT_EQ(ledger[1].subject, "session/LATE-1");
  EXPECT_EQ(Content(ledger[1])["result"]["status"], "VERIFIED");
  EXPECT_EQ(ledger[2].kind, "amendment");
  EXPECT_EQ(ledger[2].subject, "unbooked/nmr-1/2026-01-01");
  EXPECT_EQ(Content(ledger[2])["result"]["in_use_ms"], 0);
  EXPECT_EQ(Content(ledger[2])["delta"]["in_use_ms"], -60 * kMinute);
}

TEST_F(BillingDriverTest, LocalDaysFollowTheConfiguredOffset) {
  options_.day_utc_offset_minutes = 480;  // China: the local day starts at 16:00 UTC
  FakeAgent agent(h(15), v1::INSTRUMENT_STATE_IN_USE);
  agent.Change(h(17), v1::INSTRUMENT_STATE_IDLE);
  agent.Stop(h(18));
  Deliver(agent.Take());
  Pass(h(40) + 20 * kMinute);  // 2026-01-02T16:20Z: local 2026-01-02 has ended and settled
  const std::vector<LedgerEntry> ledger = Ledger();
  ASSERT_EQ(ledger.size(), 2u);
  EXPECT_EQ(ledger[0].subject, "unbooked/nmr-1/2026-01-01");  // 15:00-16:00Z
  EXPECT_EQ(Content(ledger[0])["result"]["in_use_ms"], 60 * kMinute);
  EXPECT_EQ(ledger[1].subject, "unbooked/nmr-1/2026-01-02");  // 16:00-17:00Z
  EXPECT_EQ(ledger[1].subject_time_unix_ms, h(16));
}

TEST_F(BillingDriverTest, ABookingWithoutTelemetryIsPartial) {
  Book(
      "T-1,tem-2,Hangzhou Materials,Hangzhou,Zhejiang,2026-01-01T10:00:00Z,"
      "2026-01-01T11:00:00Z,false,,,,,,\n");
  Pass(h(12));
  const std::vector<LedgerEntry> ledger = Ledger();
  ASSERT_EQ(ledger.size(), 1u);
  const json res = Content(ledger[0])["result"];
  EXPECT_EQ(res["status"], "PARTIAL");
  EXPECT_EQ(res["telemetry"]["covered_ms"], 0);
  EXPECT_EQ(res["rules"]["rate_fen_per_hour"], 10'000);  // the [billing] default
  EXPECT_EQ(res["charges"]["amount_fen"], 0);
}

// Only signed in-use time is billed (DESIGN rule 5; docs/billing.md, "Signed time only").
// The usual day signed up to the heartbeat of 10:25: the IN_USE run 10:05-10:55 is proven for its
// first 20 minutes only.
class UnsignedTailTest : public BillingDriverTest {
 protected:
  void DeliverSignedUntilHalfPastTen(FakeAgent* agent) {
    agent->Change(h(10) + 5 * kMinute, v1::INSTRUMENT_STATE_IN_USE);
    agent->Change(h(10) + 55 * kMinute, v1::INSTRUMENT_STATE_IDLE);
    agent->RunUntil(h(12));
    const std::vector<v1::Event> all = agent->Take();
    size_t cut = 0;
    while (cut < all.size() && all[cut].at().wall_unix_ms() <= h(10) + 30 * kMinute) ++cut;
    Deliver({all.begin(), all.begin() + static_cast<long>(cut)});
    Deliver({all.begin() + static_cast<long>(cut), all.end()}, 50, std::nullopt, false);
    delivered_ = all.size();
  }
  size_t delivered_ = 0;
};

TEST_F(UnsignedTailTest, ASessionWaitsForItsSignatureAndIsBilledInFullOnceItCame) {
  FakeAgent agent(h(9), v1::INSTRUMENT_STATE_IDLE);
  DeliverSignedUntilHalfPastTen(&agent);
  Book(kTenToEleven);
  PassReport r = Pass(h(11) + 30 * kMinute);  // settled at 11:25
  EXPECT_EQ(r.sessions_awaiting_signature, 1u);
  EXPECT_EQ(r.entries_appended, 0u);
  EXPECT_TRUE(Ledger().empty());

  // The agent's next heartbeat (12:10) carries a signature over everything before it.
  agent.RunUntil(h(12) + 10 * kMinute);
  Deliver(agent.Take(delivered_));
  r = Pass(h(12) + 11 * kMinute);
  EXPECT_EQ(r.sessions_awaiting_signature, 0u);
  ASSERT_EQ(Ledger().size(), 1u);
  const json res = Content(Ledger()[0])["result"];
  EXPECT_EQ(res["status"], "VERIFIED");
  EXPECT_EQ(res["flags"], json::array());
  EXPECT_EQ(res["telemetry"]["unsigned_in_use_ms"], 0);
  EXPECT_EQ(res["charges"]["amount_fen"], 9'000);
}

TEST_F(UnsignedTailTest, NeverSignedTimeIsRecordedUnbilledOnceTheWaitIsOver) {
  FakeAgent agent(h(9), v1::INSTRUMENT_STATE_IDLE);
  DeliverSignedUntilHalfPastTen(&agent);
  Book(kTenToEleven);
  // Settled at 11:25; signature_wait_seconds (1 h) ends at 12:25.
  EXPECT_EQ(Pass(h(12) + 20 * kMinute).sessions_awaiting_signature, 1u);
  EXPECT_EQ(Pass(h(12) + 30 * kMinute).entries_appended, 1u);
  const json res = Content(Ledger().at(0))["result"];
  EXPECT_EQ(res["status"], "VERIFIED");
  EXPECT_EQ(res["flags"], json::array({"unsigned"}));
  EXPECT_EQ(res["telemetry"]["in_use_ms"], 50 * kMinute);
  EXPECT_EQ(res["telemetry"]["unsigned_in_use_ms"], 30 * kMinute);
  // 20 signed minutes: one unit of 15 at 120 yuan/h.
  EXPECT_EQ(res["charges"]["billable_seconds"], 900);
  EXPECT_EQ(res["charges"]["amount_fen"], 3'000);
}

TEST_F(UnsignedTailTest, ASignatureAfterTheWaitAmendsTheSession) {
  FakeAgent agent(h(9), v1::INSTRUMENT_STATE_IDLE);
  DeliverSignedUntilHalfPastTen(&agent);
  Book(kTenToEleven);
  ASSERT_EQ(Pass(h(12) + 30 * kMinute).entries_appended, 1u);  // billed for 20 signed minutes
  EXPECT_EQ(Content(Ledger().at(0))["result"]["charges"]["amount_fen"], 3'000);

  // The agent was offline from 12:00 to 13:00; its signed heartbeats arrive at 13:00, all after
  // the booking's window. Their signature proves the whole run: the session is measured again.
  agent.RunUntil(h(13));
  Deliver(agent.Take(delivered_), 0, h(13));
  const PassReport r = Pass(h(13) + kMinute);
  EXPECT_EQ(r.amendments, 1u);
  const std::vector<LedgerEntry> ledger = Ledger();
  ASSERT_EQ(ledger.size(), 2u);
  const json c = Content(ledger[1]);
  EXPECT_EQ(ledger[1].kind, "amendment");
  EXPECT_EQ(c["result"]["flags"], json::array());
  EXPECT_EQ(c["result"]["telemetry"]["unsigned_in_use_ms"], 0);
  EXPECT_EQ(c["delta"]["amount_fen"], 9'000 - 3'000);

  // Signatures that prove nothing new in the window leave it alone.
  const size_t sent = agent.size();
  agent.RunUntil(h(14));
  Deliver(agent.Take(sent));
  EXPECT_EQ(Pass(h(14) + kMinute).amendments, 0u);
  EXPECT_EQ(Ledger().size(), 2u);
}

TEST_F(UnsignedTailTest, ARevokedDeviceIsNotWaitedFor) {
  FakeAgent agent(h(9), v1::INSTRUMENT_STATE_IDLE);
  DeliverSignedUntilHalfPastTen(&agent);
  Book(kTenToEleven);
  ASSERT_TRUE(store_->RevokeDeviceKey(kDevice, h(11)).ok());
  const PassReport r = Pass(h(11) + 30 * kMinute);
  EXPECT_EQ(r.sessions_awaiting_signature, 0u);
  EXPECT_EQ(r.entries_appended, 1u);
  const json res = Content(Ledger().at(0))["result"];
  EXPECT_EQ(res["flags"], json::array({"unsigned"}));
  EXPECT_EQ(res["telemetry"]["unsigned_in_use_ms"], 30 * kMinute);
  EXPECT_EQ(res["charges"]["amount_fen"], 3'000);
}

TEST_F(BillingDriverTest, ADeviceWithoutAKeyIsMeasuredButNeverBilled) {
  // A hub where no key was ever enrolled runs in development mode: it stores unsigned telemetry.
  ingestor_.reset();
  store_ = Open("development.db");
  ASSERT_TRUE(
      store_->PutInstruments({{"tem-2", "TEM", "SJTU", "", "Shanghai", "Shanghai", 0}}, 0).ok());
  auto ingestor = Ingestor::Create(store_.get(), &downlink_, &clock_, &metrics_, {});
  ASSERT_TRUE(ingestor.ok());
  ingestor_ = std::move(*ingestor);
  FakeAgent agent(h(9), v1::INSTRUMENT_STATE_IDLE);
  agent.Change(h(10) + 5 * kMinute, v1::INSTRUMENT_STATE_IN_USE);
  agent.Change(h(10) + 55 * kMinute, v1::INSTRUMENT_STATE_IDLE);
  agent.Stop(h(12));
  for (const v1::Event& e : agent.Take())
    ingestor_->OnMessage(protocol::Topic("tem-2", protocol::Channel::kUp),
                         testing::EnvelopeOf("tem-2", {e}), e.at().wall_unix_ms() + 50);
  ASSERT_TRUE(ingestor_->Flush().ok());
  Book(
      "T-1,tem-2,Hangzhou Materials,Hangzhou,Zhejiang,2026-01-01T10:00:00Z,"
      "2026-01-01T11:00:00Z,false,,,,,,\n");
  const PassReport r = Pass(h(11) + 30 * kMinute);  // development mode: nothing to wait for
  EXPECT_EQ(r.entries_appended, 1u);
  const json res = Content(Ledger().at(0))["result"];
  EXPECT_EQ(res["status"], "VERIFIED");
  EXPECT_EQ(res["flags"], json::array({"unsigned"}));
  EXPECT_EQ(res["telemetry"]["in_use_ms"], 50 * kMinute);
  EXPECT_EQ(res["charges"]["amount_fen"], 0);
}

// A live fleet's pass has nothing settled to measure but every device's changed range to clear:
// those writes go in transactions of at most 200 too, so that ingest never waits behind one
// transaction clearing the whole fleet.
TEST_F(BillingDriverTest, APassClearsAFleetsChangesInSmallTransactions) {
  std::vector<Instrument> fleet;
  std::unique_ptr<Ingestor> ingestor = StartFleet(450, &fleet);
  ASSERT_NE(ingestor, nullptr);
  // Each device: a run start and a heartbeat ten minutes later, in one envelope.
  const std::vector<v1::Event> run = {
      testing::Start(1, v1::INSTRUMENT_STATE_IDLE, {testing::kBoot1, testing::kMono, h(9), 0, 0}),
      testing::Beat(
          2, v1::INSTRUMENT_STATE_IDLE,
          {testing::kBoot1, testing::kMono + 10 * kMinute, h(9) + 10 * kMinute, 10 * kMinute, 0})};
  for (const Instrument& instrument : fleet) {
    testing::ChainedEnvelopes agent(instrument.instrument_id, nullptr);
    ingestor->OnMessage(protocol::Topic(instrument.instrument_id, protocol::Channel::kUp),
                        agent.Envelope(run, false), h(9) + 10 * kMinute + 50);
  }
  ASSERT_TRUE(ingestor->Flush().ok());
  ASSERT_GE(store_->ReadDirtyRanges()->size(), 450u);

  const PassReport r = Pass(h(9) + 11 * kMinute);  // the day is not settled: nothing to measure
  EXPECT_EQ(r.entries_appended, 0u);
  EXPECT_GE(r.commits, 3u) << "450 cleared ranges, at most 200 writes per transaction";
  EXPECT_TRUE(store_->ReadDirtyRanges()->empty()) << "every change cleared all the same";
}

// A running hub's passes beside a live fleet: every instrument's telemetry is fresh, so its
// changed range lies after the settled time and holds nothing to measure yet. The pass must still
// find an instrument's late use in a settled day, and a fleet's booking once it settles. Run with
// a few instruments and with more than the 2,000 whose progress the pass reads one by one.
class LiveFleetTest : public BillingDriverTest, public ::testing::WithParamInterface<int> {};

TEST_P(LiveFleetTest, PassesFindLateUseAndSettledSessions) {
  const int fleet_size = GetParam();
  std::vector<Instrument> fleet;
  std::unique_ptr<Ingestor> ingestor = StartFleet(fleet_size, &fleet);
  ASSERT_NE(ingestor, nullptr);
  std::vector<std::unique_ptr<testing::ChainedEnvelopes>> agents;
  const auto at = [](int64_t wall) {
    return testing::At{testing::kBoot1, testing::kMono + (wall - h(24)), wall,
                       static_cast<uint64_t>(wall - h(24) - 20 * kMinute), 0};
  };
  const auto send = [&](size_t i, const v1::Event& e) {
    ingestor->OnMessage(protocol::Topic(fleet[i].instrument_id, protocol::Channel::kUp),
                        agents[i]->Envelope({e}, false), e.at().wall_unix_ms() + 50);
  };
  // Every instrument starts at 00:20 on the second day, idle.
  for (size_t i = 0; i < fleet.size(); ++i) {
    agents.push_back(std::make_unique<testing::ChainedEnvelopes>(fleet[i].instrument_id, nullptr));
    send(i, testing::Start(1, v1::INSTRUMENT_STATE_IDLE, at(h(24) + 20 * kMinute)));
  }
  ASSERT_TRUE(ingestor->Flush().ok());
  BillingDriver driver(store_.get(), options_);  // one hub: its passes follow on
  ASSERT_TRUE(driver.RunOnce(h(24) + 21 * kMinute).ok());
  EXPECT_TRUE(Ledger().empty());

  // 00:30: every instrument's heartbeat; nmr-1's first day comes late (13:00-16:00, in use
  // 14:00-15:00); fleet-0 is booked for 00:30-00:40.
  for (size_t i = 0; i < fleet.size(); ++i)
    send(i, testing::Beat(2, v1::INSTRUMENT_STATE_IDLE, at(h(24) + 30 * kMinute)));
  ASSERT_TRUE(ingestor->Flush().ok());
  FakeAgent nmr(h(13), v1::INSTRUMENT_STATE_IDLE);
  nmr.Change(h(14), v1::INSTRUMENT_STATE_IN_USE);
  nmr.Change(h(15), v1::INSTRUMENT_STATE_IDLE);
  nmr.Stop(h(16));
  std::vector<v1::Event> backlog = nmr.Take();
  for (v1::Event& e : backlog)
    if (e.has_heartbeat()) e.mutable_heartbeat()->set_outbox_depth(9);  // waited in the outbox
  Deliver(backlog, 0, h(24) + 30 * kMinute);
  Book(
      "FLEET-0,fleet-0,Wuxi Chem,Wuxi,Jiangsu,2026-01-02T00:30:00Z,2026-01-02T00:40:00Z,false,,,,,"
      ",\n");
  ASSERT_GE(store_->ReadDirtyRanges()->size(), fleet.size());

  Result<PassReport> r = driver.RunOnce(h(24) + 35 * kMinute);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->days_measured, 1u);
  std::vector<LedgerEntry> ledger = Ledger();
  ASSERT_EQ(ledger.size(), 1u);
  EXPECT_EQ(ledger[0].subject, "unbooked/nmr-1/2026-01-01");
  EXPECT_EQ(Content(ledger[0])["result"]["in_use_ms"], 60 * kMinute);
  EXPECT_TRUE(store_->ReadDirtyRanges()->empty()) << "every change cleared";

  // fleet-0 heartbeats through its booking; once the booking settles, a pass verifies it.
  for (int minute = 40; minute <= 60; minute += 10)
    send(0, testing::Beat(static_cast<uint64_t>(minute / 10 - 1), v1::INSTRUMENT_STATE_IDLE,
                          at(h(24) + minute * kMinute)));
  ASSERT_TRUE(ingestor->Flush().ok());
  r = driver.RunOnce(h(26));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->sessions_measured, 1u);
  ledger = Ledger();
  ASSERT_EQ(ledger.size(), 2u);
  EXPECT_EQ(ledger[1].subject, "session/FLEET-0");
}

INSTANTIATE_TEST_SUITE_P(FleetSizes, LiveFleetTest, ::testing::Values(3, 2'100));

TEST_F(BillingDriverTest, TheWorkerRunsPassesOnItsOwnThread) {
  Deliver(UsualDay().Take());
  Book(kTenToEleven);
  FakeClock clock(1'000'000, h(12));
  options_.verify_interval_ms = 1000;
  {
    Result<std::unique_ptr<BillingWorker>> worker =
        BillingWorker::Start({.path = dir_.File("hub.db")}, options_, &clock);
    ASSERT_TRUE(worker.ok()) << worker.status().ToString();
    EXPECT_TRUE(instrumeter::testing::WaitFor([&] { return Ledger().size() == 1; },
                                              std::chrono::seconds(10)));
  }  // stops and joins
  EXPECT_EQ(Content(Ledger().at(0))["result"]["status"], "VERIFIED");
}

}  // namespace
}  // namespace instrumeter::hub
