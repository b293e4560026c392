// The live API's handlers without sockets: a real SQLite file filled through the real ingest
// path (Ingestor with the LiveFeed as its observer), a second connection for the API, and
// requests dispatched through the Router as the server would.
#include "hub/live_api.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "hub/billing_options.h"
#include "hub/bookings.h"
#include "hub/sqlite_store.h"
#include "hub_testing/events.h"
#include "protocol/topics.h"
#include "test_support/process.h"

namespace instrumeter::hub {
namespace {

using nlohmann::json;
using testing::At;
using testing::Beat;
using testing::Change;
using testing::EnvelopeOf;
using testing::kBoot1;
using testing::kMono;
using testing::kWall;
using testing::Start;

constexpr int64_t kHour = 3'600'000;
constexpr v1::InstrumentState kIdle = v1::INSTRUMENT_STATE_IDLE;
constexpr v1::InstrumentState kInUse = v1::INSTRUMENT_STATE_IN_USE;
constexpr v1::InstrumentState kFault = v1::INSTRUMENT_STATE_FAULT;

class NullDownlink : public Downlink {
 public:
  Status SendAck(const std::string&, uint64_t) override { return Status::Ok(); }
  Status SendResend(const std::string&, uint64_t, uint64_t) override { return Status::Ok(); }
};

class LiveApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto writer = OpenSqliteStore({.path = db_});
    ASSERT_TRUE(writer.ok()) << writer.status().ToString();
    writer_ = std::move(*writer);
    ASSERT_TRUE(
        writer_
            ->PutInstruments({{"nmr-1", "NMR 600", "Fudan", "Jiangwan", "Shanghai", "Shanghai"},
                              {"tem-2", "TEM", "Soochow Univ", "Dushu Lake", "Suzhou", "Jiangsu"},
                              {"ms-3", "Mass spec", "SIMM", "Zhangjiang", "Shanghai", "Shanghai"}},
                             kWall)
            .ok());
    feed_.SetWakeup([] {});  // the test pumps by hand
    auto ingestor = Ingestor::Create(writer_.get(), &downlink_, &clock_, &metrics_, {}, &feed_);
    ASSERT_TRUE(ingestor.ok()) << ingestor.status().ToString();
    ingestor_ = std::move(*ingestor);
    auto reader = OpenSqliteStore({.path = db_});
    ASSERT_TRUE(reader.ok());
    reader_ = std::move(*reader);
  }

  void Ingest(const std::string& device, const std::vector<v1::Event>& events) {
    ingestor_->OnMessage(protocol::Topic(device, protocol::Channel::kUp),
                         EnvelopeOf(device, events), clock_.WallUnixMs());
    ASSERT_TRUE(ingestor_->Flush().ok());
  }

  void SetOnline(const std::string& device, bool online, int64_t since) {
    v1::DeviceStatus status;
    status.set_online(online);
    status.set_since_unix_ms(since);
    ingestor_->OnMessage(protocol::Topic(device, protocol::Channel::kStatus),
                         status.SerializeAsString(), clock_.WallUnixMs());
    ASSERT_TRUE(ingestor_->Flush().ok());
  }

  // Builds the http side over what is in the database now (changes so far are in it).
  void StartApi() {
    (void)feed_.Take();
    auto view = LiveView::Load(reader_.get(), &clock_, 10'000);
    ASSERT_TRUE(view.ok()) << view.status().ToString();
    view_ = std::move(*view);
    api_ = std::make_unique<LiveApi>(LiveApi::Sources{.view = view_.get(),
                                                      .store = reader_.get(),
                                                      .metrics = &metrics_,
                                                      .http_stats = &http_stats_,
                                                      .feed = &feed_,
                                                      .health = [this] { return health_; },
                                                      .clock = &clock_,
                                                      .web_root = INSTRUMETER_WEB_ROOT_FOR_TEST});
    api_->AddRoutes(&router_);
  }

  // What the http thread does when the feed wakes it.
  std::vector<LiveEvent> Pump() { return view_->Apply(feed_.Take().changes); }

  HttpResponse Get(const std::string& target) {
    auto parsed = ParseTarget(target);
    EXPECT_TRUE(parsed.has_value()) << target;
    HttpRequest request;
    request.method = "GET";
    request.path = parsed->path;
    request.query = parsed->query;
    return router_.Dispatch(request);
  }

  json GetJson(const std::string& target, int want_status = 200) {
    HttpResponse r = Get(target);
    EXPECT_EQ(r.status, want_status) << target << ": " << r.body;
    EXPECT_EQ(r.content_type, "application/json");
    return json::parse(r.body);
  }

  // The error message of a 400, checked to be in the one error shape.
  std::string BadRequest(const std::string& target) {
    json body = GetJson(target, 400);
    EXPECT_EQ(body["error"]["status"], 400);
    return body["error"]["message"];
  }

  static std::vector<std::string> Ids(const json& list) {
    std::vector<std::string> ids;
    for (const json& i : list["instruments"]) ids.push_back(i["instrument_id"]);
    return ids;
  }

  instrumeter::testing::TempDir dir_;
  std::string db_ = dir_.File("hub.db");
  // Two hours into 2026-01-01 (UTC): the typical run's events are all earlier that day.
  FakeClock clock_{kMono, kWall + 2 * kHour};
  HubMetrics metrics_;
  HttpServerStats http_stats_;
  LiveFeed feed_;
  NullDownlink downlink_;
  std::unique_ptr<Store> writer_;
  std::unique_ptr<Ingestor> ingestor_;
  std::unique_ptr<Store> reader_;
  std::unique_ptr<LiveView> view_;
  std::unique_ptr<LiveApi> api_;
  Router router_;
  HealthReport health_{.broker_connected = true, .ingest_healthy = true};
};

TEST_F(LiveApiTest, ListsEveryInstrumentWithStateTodayAndBookingFields) {
  Ingest("nmr-1", testing::TypicalRun());
  SetOnline("nmr-1", true, kWall + 1'000'000);
  StartApi();

  json list = GetJson("/api/v1/instruments");
  EXPECT_EQ(list["count"], 3);
  EXPECT_EQ(Ids(list), (std::vector<std::string>{"ms-3", "nmr-1", "tem-2"}));
  EXPECT_EQ(list["today_from"], "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(list["today_to"], "2026-01-02T00:00:00.000Z");
  const json& nmr = list["instruments"][1];
  EXPECT_EQ(nmr["name"], "NMR 600");
  EXPECT_EQ(nmr["institution"], "Fudan");
  EXPECT_EQ(nmr["site"], "Jiangwan");
  EXPECT_EQ(nmr["city"], "Shanghai");
  EXPECT_EQ(nmr["region"], "Shanghai");
  EXPECT_EQ(nmr["registered"], true);
  EXPECT_EQ(nmr["state"], "IDLE");  // the run after the reboot
  EXPECT_EQ(nmr["state_since_unix_ms"], kWall + 1'060'000);
  EXPECT_EQ(nmr["state_since"], "2026-01-01T00:17:40.000Z");
  EXPECT_EQ(nmr["online"], true);
  EXPECT_EQ(nmr["online_since_unix_ms"], kWall + 1'000'000);
  EXPECT_EQ(nmr["last_seen_unix_ms"], kWall + 2 * kHour);
  EXPECT_EQ(nmr["agent_version"], "test-1.0");
  EXPECT_EQ(nmr["outbox_depth"], 1);
  // Derived hours of the typical run: idle 90+100+60 s, in use 120+60 s; gaps 90 + 600 s.
  EXPECT_DOUBLE_EQ(nmr["today_powered_seconds"], 430.0);
  EXPECT_DOUBLE_EQ(nmr["today_in_use_seconds"], 180.0);
  EXPECT_DOUBLE_EQ(nmr["today_gap_seconds"], 690.0);
  EXPECT_TRUE(nmr["current_booking"].is_null());
  EXPECT_TRUE(nmr["next_booking"].is_null());
  EXPECT_EQ(nmr["free_now"], true);

  const json& ms = list["instruments"][0];
  EXPECT_EQ(ms["state"], "NOT_OBSERVED");
  EXPECT_TRUE(ms["state_since"].is_null());
  EXPECT_TRUE(ms["online"].is_null());
  EXPECT_TRUE(ms["last_seen"].is_null());
  EXPECT_TRUE(ms["agent_version"].is_null());
  EXPECT_DOUBLE_EQ(ms["today_powered_seconds"], 0.0);
}

TEST_F(LiveApiTest, FiltersByCitySiteStateAndOnline) {
  Ingest("nmr-1", testing::TypicalRun());
  Ingest("tem-2", {Start(1, kInUse, {kBoot1, kMono, kWall + kHour})});
  SetOnline("tem-2", false, kWall + kHour + 5000);
  StartApi();
  using V = std::vector<std::string>;
  EXPECT_EQ(Ids(GetJson("/api/v1/instruments?city=Shanghai")), (V{"ms-3", "nmr-1"}));
  EXPECT_EQ(Ids(GetJson("/api/v1/instruments?city=shanghai&site=zhangjiang")), (V{"ms-3"}));
  EXPECT_EQ(Ids(GetJson("/api/v1/instruments?state=IN_USE")), (V{"tem-2"}));
  EXPECT_EQ(Ids(GetJson("/api/v1/instruments?state=idle,in_use")), (V{"nmr-1", "tem-2"}));
  EXPECT_EQ(Ids(GetJson("/api/v1/instruments?state=NOT_OBSERVED")), (V{"ms-3"}));
  EXPECT_EQ(Ids(GetJson("/api/v1/instruments?online=false")), (V{"tem-2"}));
  EXPECT_EQ(Ids(GetJson("/api/v1/instruments?online=true")), (V{}));
  EXPECT_EQ(GetJson("/api/v1/instruments?city=Nowhere")["count"], 0);
}

TEST_F(LiveApiTest, EveryBadParameterIsA400NamingIt) {
  StartApi();
  EXPECT_EQ(BadRequest("/api/v1/instruments?state=SLEEPING"),
            "parameter 'state': unknown state 'SLEEPING' (expected one or more of IN_USE, IDLE, "
            "FAULT, OFF, UNKNOWN, NOT_OBSERVED, comma-separated)");
  EXPECT_EQ(BadRequest("/api/v1/instruments?state=IDLE,"),
            "parameter 'state': unknown state '' (expected one or more of IN_USE, IDLE, FAULT, "
            "OFF, UNKNOWN, NOT_OBSERVED, comma-separated)");
  EXPECT_EQ(BadRequest("/api/v1/instruments?state=UNSPECIFIED").substr(0, 18),
            "parameter 'state':");
  EXPECT_EQ(BadRequest("/api/v1/instruments?online=yes"),
            "parameter 'online': expected true or false, got 'yes'");
  EXPECT_EQ(BadRequest("/api/v1/instruments?cty=Shanghai"),
            "parameter 'cty': unknown (expected city, online, site, state)");
  EXPECT_EQ(BadRequest("/api/v1/instruments/nmr-1?verbose=1"),
            "parameter 'verbose': this endpoint takes no parameters");
  EXPECT_EQ(BadRequest("/api/v1/instruments/nmr-1/timeline?from=yesterday"),
            "parameter 'from': not an ISO 8601 time ('yesterday'; e.g. 2026-01-01T08:00:00+08:00, "
            "2026-01-01T00:00:00Z or 2026-01-01)");
  EXPECT_EQ(BadRequest("/api/v1/instruments/nmr-1/timeline?to=2026-13-01").substr(0, 43),
            "parameter 'to': not an ISO 8601 time ('2026");
  EXPECT_EQ(BadRequest("/api/v1/instruments/nmr-1/timeline?from=2026-01-01T08:00:00"),
            "parameter 'from': not an ISO 8601 time ('2026-01-01T08:00:00'; e.g. "
            "2026-01-01T08:00:00+08:00, 2026-01-01T00:00:00Z or 2026-01-01)")
      << "a time without an offset is ambiguous";
  EXPECT_EQ(BadRequest("/api/v1/instruments/nmr-1/timeline?from=2026-01-02&to=2026-01-01"),
            "parameter 'to': must be after 'from'");
  EXPECT_EQ(BadRequest("/api/v1/instruments/nmr-1/timeline?from=2026-01-01&to=2026-01-01"),
            "parameter 'to': must be after 'from'");
  EXPECT_EQ(
      BadRequest("/api/v1/instruments/nmr-1/timeline?from=2026-01-01&to=2026-02-01T00:00:01Z"),
      "parameter 'to': the range may span at most 31 days");
  EXPECT_EQ(BadRequest("/api/v1/instruments/nmr-1/timeline?day=2026-01-01"),
            "parameter 'day': unknown (expected from, to)");
  EXPECT_EQ(BadRequest("/api/v1/stream?since=5"),
            "parameter 'since': this endpoint takes no parameters");
  EXPECT_EQ(BadRequest("/metrics?x=1"), "parameter 'x': this endpoint takes no parameters");
  EXPECT_EQ(BadRequest("/healthz?x=1"), "parameter 'x': this endpoint takes no parameters");
  // A range of exactly 31 days is allowed.
  EXPECT_EQ(Get("/api/v1/instruments/nmr-1/timeline?from=2026-01-01&to=2026-02-01").status, 200);
}

TEST_F(LiveApiTest, UnknownInstrumentIsA404) {
  StartApi();
  for (const char* target : {"/api/v1/instruments/nope", "/api/v1/instruments/nope/timeline"}) {
    json body = GetJson(target, 404);
    EXPECT_EQ(body["error"]["message"], "no instrument 'nope'") << target;
  }
  EXPECT_EQ(GetJson("/api/v1/nothing", 404)["error"]["status"], 404);
  HttpRequest post;
  post.method = "POST";
  post.path = "/api/v1/instruments";
  HttpResponse r = router_.Dispatch(post);
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers.at(0), (std::pair<std::string, std::string>("Allow", "GET, HEAD")));
}

TEST_F(LiveApiTest, DetailCarriesAgentHealthAndMeter) {
  v1::Event beat = Beat(2, kFault, {kBoot1, kMono + 60'000, kWall + 60'000, 60'000, 0}, "2.1.0", 7);
  beat.mutable_heartbeat()->set_interval_ms(30'000);
  beat.mutable_heartbeat()->set_disagreement(true);
  v1::AdapterHealth* scpi = beat.mutable_heartbeat()->add_adapters();
  scpi->set_name("status-port");
  scpi->set_type("scpi");
  scpi->set_ok(false);
  scpi->set_error("timeout after 2000 ms");
  scpi->set_errors_total(3);
  Ingest("tem-2", {Start(1, kFault, {kBoot1, kMono, kWall}), beat});
  // The heartbeat predates the view: the detail reads it from the store.
  StartApi();
  json d = GetJson("/api/v1/instruments/tem-2");
  EXPECT_EQ(d["state"], "FAULT");
  EXPECT_EQ(d["events_stored"], 2);
  EXPECT_EQ(d["contiguous_seq"], 2);
  EXPECT_EQ(d["agent_version"], "2.1.0");
  EXPECT_EQ(d["outbox_depth"], 7);
  EXPECT_DOUBLE_EQ(d["agent_meter"]["powered_seconds"], 60.0);
  EXPECT_EQ(d["agent_meter"]["at_seq"], 2);
  const json& h = d["agent_health"];
  EXPECT_EQ(h["heartbeat_seq"], 2);
  EXPECT_EQ(h["heartbeat_interval_ms"], 30'000);
  EXPECT_EQ(h["sources_disagree"], true);
  EXPECT_EQ(h["reported_at_unix_ms"], kWall + 60'000);
  ASSERT_EQ(h["adapters"].size(), 1u);
  EXPECT_EQ(h["adapters"][0], json::parse(R"({"name": "status-port", "type": "scpi", "ok": false,
      "error": "timeout after 2000 ms", "identity": null, "errors_total": 3})"));

  // A newer heartbeat reaches the view through the feed.
  v1::Event later = Beat(3, kFault, {kBoot1, kMono + 120'000, kWall + 120'000, 120'000, 0});
  later.mutable_heartbeat()->add_adapters()->set_name("status-port");
  later.mutable_heartbeat()->mutable_adapters(0)->set_ok(true);
  Ingest("tem-2", {later});
  Pump();
  d = GetJson("/api/v1/instruments/tem-2");
  EXPECT_EQ(d["agent_health"]["heartbeat_seq"], 3);
  EXPECT_EQ(d["agent_health"]["adapters"][0]["ok"], true);
  EXPECT_TRUE(GetJson("/api/v1/instruments/ms-3")["agent_health"].is_null());
  EXPECT_TRUE(GetJson("/api/v1/instruments/ms-3")["agent_meter"].is_null());
}

TEST_F(LiveApiTest, TimelineClipsIntervalsAndMarksGaps) {
  Ingest("nmr-1", testing::TypicalRun());
  StartApi();
  // From 1 minute in to the reboot run's second minute.
  json t = GetJson(
      "/api/v1/instruments/nmr-1/"
      "timeline?from=2026-01-01T00:01:00Z&to=2026-01-01T08:18:30%2B08:00");
  EXPECT_EQ(t["from"], "2026-01-01T00:01:00.000Z");
  EXPECT_EQ(t["to_unix_ms"], kWall + 1'110'000);
  std::vector<std::tuple<std::string, std::string, int64_t, int64_t, bool>> got;
  for (const json& iv : t["intervals"])
    got.emplace_back(iv["kind"], iv.value("state", ""), iv["start_unix_ms"].get<int64_t>() - kWall,
                     iv["end_unix_ms"].get<int64_t>() - kWall, iv["clipped"]);
  using Row = std::tuple<std::string, std::string, int64_t, int64_t, bool>;
  EXPECT_EQ(got, (std::vector<Row>{{"state", "IDLE", 60'000, 90'000, true},
                                   {"state", "IN_USE", 90'000, 210'000, false},
                                   {"gap", "", 210'000, 300'000, false},
                                   {"state", "IDLE", 300'000, 400'000, false},
                                   {"state", "IN_USE", 400'000, 460'000, false},
                                   {"gap", "", 460'000, 1'060'000, false},
                                   {"state", "IDLE", 1'060'000, 1'110'000, true}}));
  const json& crash = t["intervals"][1];
  EXPECT_EQ(crash["flags"], json::array({"stopped_without_agent_stop"}));
  EXPECT_EQ(t["intervals"][5]["flags"], json::array({"reboot"}));
  EXPECT_EQ(t["intervals"][6]["open"], true) << "the open run's interval";
  EXPECT_EQ(t["intervals"][4]["open"], false);
  EXPECT_DOUBLE_EQ(t["powered_seconds"], 30 + 120 + 100 + 60 + 50);
  EXPECT_DOUBLE_EQ(t["in_use_seconds"], 180.0);
  EXPECT_DOUBLE_EQ(t["gap_seconds"], 690.0);

  // Default: today (UTC); `from` alone covers one day.
  json today = GetJson("/api/v1/instruments/nmr-1/timeline");
  EXPECT_EQ(today["from"], "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(today["to"], "2026-01-02T00:00:00.000Z");
  EXPECT_EQ(today["intervals"].size(), 7u);
  EXPECT_EQ(GetJson("/api/v1/instruments/nmr-1/timeline?from=2025-12-31")["intervals"].size(), 0u);
  EXPECT_EQ(GetJson("/api/v1/instruments/nmr-1/timeline?to=2026-01-02")["from"],
            "2026-01-01T00:00:00.000Z");
}

TEST_F(LiveApiTest, CommittedChangesBecomeStreamEvents) {
  Ingest("nmr-1", {Start(1, kIdle, {kBoot1, kMono, kWall + kHour})});
  StartApi();
  EXPECT_TRUE(Pump().empty());

  Ingest("nmr-1", {Change(2, kInUse, {kBoot1, kMono + 60'000, kWall + kHour + 60'000, 60'000, 0})});
  std::vector<LiveEvent> events = Pump();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, LiveEvent::Kind::kState);
  EXPECT_EQ(events[0].instrument_id, "nmr-1");
  EXPECT_EQ(events[0].previous_state, kIdle);
  const std::string message = api_->StreamMessage(events[0], 41);
  ASSERT_EQ(message.substr(0, 24), "id: 41\nevent: state\ndata");
  ASSERT_EQ(message.substr(message.size() - 2), "\n\n");
  json data = json::parse(message.substr(message.find("data: ") + 6));
  EXPECT_EQ(data["instrument_id"], "nmr-1");
  EXPECT_EQ(data["state"], "IN_USE");
  EXPECT_EQ(data["previous_state"], "IDLE");
  EXPECT_EQ(data["state_since_unix_ms"], kWall + kHour + 60'000);
  EXPECT_DOUBLE_EQ(data["today_powered_seconds"], 60.0);
  EXPECT_EQ(GetJson("/api/v1/instruments?state=IN_USE")["count"], 1);

  // A heartbeat in the same state is no event; an online flag change is.
  Ingest("nmr-1",
         {Beat(3, kInUse, {kBoot1, kMono + 120'000, kWall + kHour + 120'000, 120'000, 60'000})});
  EXPECT_TRUE(Pump().empty());
  EXPECT_DOUBLE_EQ(GetJson("/api/v1/instruments/nmr-1")["today_in_use_seconds"], 60.0);
  SetOnline("nmr-1", false, kWall + kHour + 130'000);
  events = Pump();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, LiveEvent::Kind::kOnline);
  data = json::parse(api_->StreamMessage(events[0], 42)
                         .substr(api_->StreamMessage(events[0], 42).find("data: ") + 6));
  EXPECT_EQ(data["online"], false);
  EXPECT_TRUE(data["previous_online"].is_null());
  EXPECT_NE(api_->ResyncMessage(43).find("event: resync\n"), std::string::npos);

  HttpResponse stream = Get("/api/v1/stream");
  EXPECT_EQ(stream.status, 200);
  EXPECT_TRUE(stream.stream);
  EXPECT_EQ(stream.content_type, "text/event-stream; charset=utf-8");
  EXPECT_EQ(stream.body.substr(0, 12), "retry: 2000\n");
}

TEST_F(LiveApiTest, InstrumentsRegisteredLaterAppearAndANewDayStartsAtZero) {
  Ingest("nmr-1", {Start(1, kInUse, {kBoot1, kMono, kWall + 23 * kHour}),
                   Beat(2, kInUse, {kBoot1, kMono + kHour, kWall + 24 * kHour, kHour, kHour})});
  clock_.JumpWall(22 * kHour);  // to 2026-01-02T00:00Z: midnight
  StartApi();
  EXPECT_DOUBLE_EQ(GetJson("/api/v1/instruments/nmr-1")["today_in_use_seconds"], 0.0)
      << "the hour ended at midnight: all of it was yesterday";
  Ingest("nmr-1",
         {Beat(3, kInUse, {kBoot1, kMono + 2 * kHour, kWall + 25 * kHour, 2 * kHour, 2 * kHour})});
  Pump();
  EXPECT_DOUBLE_EQ(GetJson("/api/v1/instruments/nmr-1")["today_in_use_seconds"], 3600.0);

  ASSERT_TRUE(
      writer_->AddInstrument({"new-4", "XRD", "ECNU", "Minhang", "Shanghai", "Shanghai"}, kWall)
          .ok());
  EXPECT_EQ(view_->Find("new-4"), nullptr) << "not yet re-read";
  clock_.Advance(10'000);
  EXPECT_EQ(GetJson("/api/v1/instruments/new-4")["name"], "XRD");
  // The day after: yesterday's intervals drop out of today's totals.
  clock_.JumpWall(kDayMs);
  EXPECT_DOUBLE_EQ(GetJson("/api/v1/instruments/nmr-1")["today_in_use_seconds"], 0.0);
}

TEST_F(LiveApiTest, AFeedThatOverflowedAsksForAReload) {
  LiveFeed small(2);
  int wakes = 0;
  small.SetWakeup([&] { ++wakes; });
  small.OnCommitted({LiveChange{.device_id = "a"}});
  small.OnCommitted({LiveChange{.device_id = "b"}, LiveChange{.device_id = "c"}});
  EXPECT_EQ(wakes, 1) << "one wake-up per batch of waiting changes";
  LiveFeed::Taken taken = small.Take();
  EXPECT_TRUE(taken.overflowed);
  ASSERT_EQ(taken.changes.size(), 2u);
  EXPECT_EQ(taken.changes[0].device_id, "b");
  EXPECT_EQ(small.dropped(), 1u);
  small.OnCommitted({LiveChange{.device_id = "d"}});
  EXPECT_EQ(wakes, 2);
  EXPECT_FALSE(small.Take().overflowed);
}

TEST_F(LiveApiTest, MetricsAreValidPrometheusText) {
  Ingest("nmr-1", testing::TypicalRun());
  Ingest("tem-2", {Start(1, kFault, {kBoot1, kMono, kWall})});
  SetOnline("nmr-1", true, kWall);
  SetOnline("tem-2", false, kWall);
  ingestor_->OnMessage("instrumeter/v1/nmr-1/up", "garbage", kWall);
  StartApi();
  HttpResponse r = Get("/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  // Every sample line is "name{labels} value" and every name was declared by a TYPE line.
  std::map<std::string, double> samples;
  std::set<std::string> typed;
  std::istringstream lines(r.body);
  std::string line;
  while (std::getline(lines, line)) {
    ASSERT_FALSE(line.empty());
    if (line.rfind("# TYPE ", 0) == 0) {
      typed.insert(line.substr(7, line.find(' ', 7) - 7));
      continue;
    }
    if (line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    const std::string key = line.substr(0, space);
    samples[key] = std::stod(line.substr(space + 1));
    std::string family = key.substr(0, key.find('{'));
    for (const char* suffix : {"_bucket", "_sum", "_count"})
      if (typed.count(family) == 0 && family.size() > strlen(suffix) &&
          family.compare(family.size() - strlen(suffix), strlen(suffix), suffix) == 0)
        family = family.substr(0, family.size() - strlen(suffix));
    EXPECT_EQ(typed.count(family), 1u) << line;
  }
  EXPECT_EQ(samples["instrumeter_hub_events_stored_total"], 13);
  EXPECT_EQ(samples["instrumeter_hub_events_rejected_total{reason=\"malformed\"}"], 1);
  EXPECT_EQ(samples["instrumeter_hub_events_rejected_total{reason=\"unknown_device\"}"], 0);
  EXPECT_EQ(samples["instrumeter_hub_acks_sent_total"], 2);
  EXPECT_EQ(samples["instrumeter_hub_agents_connected"], 1);
  EXPECT_EQ(samples["instrumeter_hub_agents_offline"], 1);
  EXPECT_EQ(samples["instrumeter_hub_instruments"], 3);
  EXPECT_EQ(samples["instrumeter_hub_instruments_by_state{state=\"IDLE\"}"], 1);
  EXPECT_EQ(samples["instrumeter_hub_instruments_by_state{state=\"FAULT\"}"], 1);
  EXPECT_EQ(samples["instrumeter_hub_instruments_by_state{state=\"NOT_OBSERVED\"}"], 1);
  EXPECT_EQ(samples["instrumeter_hub_instruments_by_state{state=\"IN_USE\"}"], 0);
  EXPECT_EQ(samples["instrumeter_hub_ingest_healthy"], 1);
  EXPECT_EQ(samples["instrumeter_hub_store_bytes"],
            static_cast<double>(std::filesystem::file_size(db_) +
                                std::filesystem::file_size(db_ + "-wal")));
  EXPECT_GT(samples["instrumeter_hub_store_available_bytes"], 0);
  // Four commits (two event batches, two status batches).
  EXPECT_EQ(samples["instrumeter_hub_commit_latency_seconds_count"], 4);
  EXPECT_EQ(samples["instrumeter_hub_commit_latency_seconds_bucket{le=\"+Inf\"}"], 4);
  EXPECT_EQ(samples["instrumeter_hub_ack_latency_seconds_count"], 2);
  EXPECT_LE(samples["instrumeter_hub_commit_latency_seconds_bucket{le=\"0.0005\"}"],
            samples["instrumeter_hub_commit_latency_seconds_bucket{le=\"10\"}"]);
  EXPECT_EQ(samples.count("instrumeter_hub_mqtt_queued_messages"), 1u);
  EXPECT_EQ(samples.count("instrumeter_hub_stream_clients"), 1u);
}

TEST_F(LiveApiTest, MetricsLeaveOutTheStoreGaugesWhenTheFilesCannotBeMeasured) {
  StartApi();
  ASSERT_NE(Get("/metrics").body.find("instrumeter_hub_store_available_bytes "), std::string::npos);
  std::filesystem::remove(db_);  // an operator's mistake under a running hub
  HttpResponse r = Get("/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body.find("instrumeter_hub_store_"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("instrumeter_hub_ingest_healthy 1"), std::string::npos);
}

TEST_F(LiveApiTest, HealthzNamesWhatIsWrong) {
  StartApi();
  json ok = GetJson("/healthz");
  EXPECT_EQ(ok, json::parse(R"({"status": "ok", "broker_connected": true,
                               "database_writable": true})"));
  health_ = {.broker_connected = false,
             .ingest_healthy = false,
             .ingest_error = "database hub.db: database or disk is full"};
  json bad = GetJson("/healthz", 503);
  EXPECT_EQ(bad["status"], "unavailable");
  EXPECT_EQ(bad["reasons"], json::parse(R"(["broker: not connected",
      "database: the last commit failed: database hub.db: database or disk is full"])"));
}

TEST_F(LiveApiTest, ServesTheDashboard) {
  StartApi();
  HttpResponse index = Get("/");
  EXPECT_EQ(index.status, 200);
  EXPECT_EQ(index.content_type, "text/html; charset=utf-8");
  EXPECT_NE(index.body.find("app.js"), std::string::npos);
  EXPECT_EQ(Get("/app.js").content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(Get("/app.css").content_type, "text/css; charset=utf-8");
  EXPECT_EQ(Get("/..").status, 404);
  EXPECT_EQ(Get("/nothing.js").status, 404);
}

TEST_F(LiveApiTest, BookingsMoveFromNextToCurrentWithTheClock) {
  const int64_t now = clock_.WallUnixMs();
  const auto booking = [](const std::string& order, int64_t start, int64_t end) {
    return json{
        {"order_id", order},
        {"instrument_id", "nmr-1"},
        {"customer", {{"organisation", "Org " + order}, {"city", "Suzhou"}, {"region", "JS"}}},
        {"start", FormatUtc(start)},
        {"end", FormatUtc(end)},
        {"remote", false},
        {"rate_fen_per_hour", 10'000}};
  };
  // One in an hour, one beyond the view's 7-day horizon.
  const json bookings = json::array({booking("A", now + kHour, now + 2 * kHour),
                                     booking("B", now + 8 * kDayMs, now + 8 * kDayMs + kHour)});
  Result<std::vector<BookingInput>> rows = ParseBookingsJson(bookings.dump(), "test");
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_TRUE(ImportBookings(writer_.get(), *rows, BillingOptions().defaults, now).ok());
  StartApi();
  const auto nmr = [&] { return GetJson("/api/v1/instruments/nmr-1"); };

  json j = nmr();
  EXPECT_TRUE(j["current_booking"].is_null());
  EXPECT_EQ(j["next_booking"]["order_id"], "A");
  EXPECT_EQ(j["next_booking"]["customer"], "Org A");
  EXPECT_EQ(j["free_now"], true);

  clock_.Advance(kHour);  // A starts now: its start is inside its window
  j = nmr();
  EXPECT_EQ(j["current_booking"]["order_id"], "A");
  EXPECT_TRUE(j["next_booking"].is_null()) << "B is past the horizon";
  EXPECT_EQ(j["free_now"], false);

  clock_.Advance(kHour);  // A ends now: its end is not
  j = nmr();
  EXPECT_TRUE(j["current_booking"].is_null());
  EXPECT_EQ(j["free_now"], true);

  clock_.Advance(2 * kDayMs);  // B comes within the horizon at the next refresh
  EXPECT_EQ(nmr()["next_booking"]["order_id"], "B");
}

}  // namespace
}  // namespace instrumeter::hub
