// The hub's HTTP side in-process over a real socket, fed by the real ingest path: the ingest
// thread (this test's thread) commits to a SQLite file and the http thread reads it through its
// own connection and the LiveFeed.
#include "hub/live_http.h"

#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>

#include "hub/sqlite_store.h"
#include "hub_testing/events.h"
#include "hub_testing/http_client.h"
#include "protocol/topics.h"
#include "test_support/process.h"

namespace instrumeter::hub {
namespace {

using nlohmann::json;
using testing::Change;
using testing::EnvelopeOf;
using testing::Get;
using testing::kBoot1;
using testing::kMono;
using testing::SseClient;
using testing::Start;

constexpr auto kWait = std::chrono::seconds(5);

class NullDownlink : public Downlink {
 public:
  Status SendAck(const std::string&, uint64_t) override { return Status::Ok(); }
  Status SendResend(const std::string&, uint64_t, uint64_t) override { return Status::Ok(); }
};

class LiveHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = OpenSqliteStore({.path = db_});
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    ASSERT_TRUE(store_
                    ->PutInstruments({{"nmr-1", "NMR 600", "Fudan", "Jiangwan", "Shanghai", "SH"},
                                      {"tem-2", "TEM", "SUDA", "Dushu", "Suzhou", "JS"}},
                                     clock_.WallUnixMs())
                    .ok());
    auto ingestor = Ingestor::Create(store_.get(), &downlink_, &clock_, &metrics_, {}, &feed_);
    ASSERT_TRUE(ingestor.ok());
    ingestor_ = std::move(*ingestor);
    HttpOptions options;
    options.server.listen = "127.0.0.1:0";
    options.server.stream_heartbeat_ms = 60'000;
    options.web_root = INSTRUMETER_WEB_ROOT_FOR_TEST;
    auto http = LiveHttp::Start(options, {.path = db_}, {}, &metrics_, &feed_, [this] {
      return HealthReport{.broker_connected = broker_up_, .ingest_healthy = ingestor_->healthy()};
    });
    ASSERT_TRUE(http.ok()) << http.status().ToString();
    http_ = std::move(*http);
    port_ = http_->port();
  }

  // Commits at once, as a batch whose delay passed would.
  void Ingest(const std::string& device, const std::vector<v1::Event>& events) {
    ingestor_->OnMessage(protocol::Topic(device, protocol::Channel::kUp),
                         EnvelopeOf(device, events), clock_.WallUnixMs());
    ASSERT_TRUE(ingestor_->Flush().ok());
  }

  json GetJson(const std::string& target, int want = 200) {
    auto r = Get(port_, target);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return json();
    EXPECT_EQ(r->status, want) << target << ": " << r->body;
    return json::parse(r->body);
  }

  instrumeter::testing::TempDir dir_;
  std::string db_ = dir_.File("hub.db");
  SystemClock clock_;
  HubMetrics metrics_;
  LiveFeed feed_;
  NullDownlink downlink_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Ingestor> ingestor_;
  std::atomic<bool> broker_up_{true};
  std::unique_ptr<LiveHttp> http_;
  int port_ = 0;
};

TEST_F(LiveHttpTest, StreamDeliversAStateChangeWithinASecondOfTheCommit) {
  const int64_t t0 = clock_.WallUnixMs();
  Ingest("nmr-1", {Start(1, v1::INSTRUMENT_STATE_IDLE, {kBoot1, kMono, t0})});
  auto stream = SseClient::Open(port_, "/api/v1/stream", kWait);
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  EXPECT_EQ((*stream)->head().status, 200);
  EXPECT_EQ((*stream)->head().Header("content-type"), "text/event-stream; charset=utf-8");
  ASSERT_TRUE(instrumeter::testing::WaitFor(
      [&] { return GetJson("/api/v1/instruments/nmr-1")["state"] == "IDLE"; }, kWait));

  Ingest("nmr-1",
         {Change(2, v1::INSTRUMENT_STATE_IN_USE, {kBoot1, kMono + 5000, t0 + 5000, 5000, 0})});
  const auto committed = std::chrono::steady_clock::now();
  std::optional<testing::SseEvent> event = (*stream)->Next(kWait);
  const auto latency = std::chrono::steady_clock::now() - committed;
  ASSERT_TRUE(event.has_value());
  EXPECT_LT(latency, std::chrono::seconds(1));
  EXPECT_EQ(event->event, "state");
  EXPECT_FALSE(event->id.empty());
  json data = json::parse(event->data);
  EXPECT_EQ(data["instrument_id"], "nmr-1");
  EXPECT_EQ(data["state"], "IN_USE");
  EXPECT_EQ(data["previous_state"], "IDLE");
  EXPECT_EQ(data["state_since_unix_ms"], t0 + 5000);

  // The list and the timeline agree with the stream.
  json list = GetJson("/api/v1/instruments?state=IN_USE");
  ASSERT_EQ(list["count"], 1);
  EXPECT_EQ(list["instruments"][0]["instrument_id"], "nmr-1");
  json timeline = GetJson("/api/v1/instruments/nmr-1/timeline");
  ASSERT_EQ(timeline["intervals"].size(), 1u) << timeline.dump();  // the open IN_USE one is empty
  EXPECT_EQ(timeline["intervals"][0]["state"], "IDLE");
  EXPECT_DOUBLE_EQ(timeline["intervals"][0]["duration_seconds"], 5.0);
}

TEST_F(LiveHttpTest, EveryEndpointAnswersOverTheSocket) {
  Ingest("tem-2", {Start(1, v1::INSTRUMENT_STATE_FAULT, {kBoot1, kMono, clock_.WallUnixMs()})});
  ASSERT_TRUE(instrumeter::testing::WaitFor(
      [&] { return GetJson("/api/v1/instruments/tem-2")["state"] == "FAULT"; }, kWait));
  EXPECT_EQ(GetJson("/api/v1/instruments")["count"], 2);
  EXPECT_EQ(GetJson("/api/v1/instruments/none", 404)["error"]["status"], 404);
  EXPECT_EQ(
      GetJson("/api/v1/instruments?state=bogus", 400)["error"]["message"].get<std::string>().substr(
          0, 18),
      "parameter 'state':");
  EXPECT_EQ(GetJson("/healthz")["status"], "ok");
  broker_up_ = false;
  json down = GetJson("/healthz", 503);
  EXPECT_EQ(down["reasons"][0], "broker: not connected");

  auto metrics = Get(port_, "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->body.find("instrumeter_hub_events_stored_total 1\n"), std::string::npos);
  EXPECT_NE(metrics->body.find("instrumeter_hub_instruments_by_state{state=\"FAULT\"} 1\n"),
            std::string::npos);

  auto page = Get(port_, "/");
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->Header("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(page->body.find("<script src=\"app.js\">"), std::string::npos);
  EXPECT_EQ(Get(port_, "/app.js")->Header("content-type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(Get(port_, "/%2e%2e")->status, 404);
  EXPECT_EQ(Get(port_, "/..%2fCMakeLists.txt")->status, 404);
}

TEST_F(LiveHttpTest, InstrumentsAddedByTheCliAppearWithoutARestart) {
  auto cli_store = OpenSqliteStore({.path = db_});
  ASSERT_TRUE(cli_store.ok());
  ASSERT_TRUE((*cli_store)
                  ->AddInstrument({"xrd-9", "XRD", "ECNU", "Minhang", "Shanghai", "SH"},
                                  clock_.WallUnixMs())
                  .ok());
  // Its first telemetry makes the view read the registry again at once.
  Ingest("xrd-9", {Start(1, v1::INSTRUMENT_STATE_IDLE, {kBoot1, kMono, clock_.WallUnixMs()})});
  ASSERT_TRUE(instrumeter::testing::WaitFor(
      [&] { return GetJson("/api/v1/instruments?city=Shanghai")["count"] == 2; }, kWait));
  EXPECT_EQ(GetJson("/api/v1/instruments/xrd-9")["name"], "XRD");
}

}  // namespace
}  // namespace instrumeter::hub
