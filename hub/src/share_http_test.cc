// The hub's billing routes, the live API's booking fields and customers' share links, over a real
// socket against the real HTTP side (LiveHttp), fed by the real ingest path and a SQLite file.
// An API token exists, so the hub requires tokens as a deployed hub does.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "api_auth.h"
#include "hub/billing_driver.h"
#include "hub/live_http.h"
#include "hub/share_api.h"
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
using testing::Fetch;
using testing::kBoot1;
using testing::kMono;
using testing::Start;

constexpr int64_t kHourMs = 3'600'000;
constexpr int64_t kMinuteMs = 60'000;

class NullDownlink : public Downlink {
 public:
  Status SendAck(const std::string&, uint64_t) override { return Status::Ok(); }
  Status SendResend(const std::string&, uint64_t, uint64_t) override { return Status::Ok(); }
};

// A booking in the import JSON format.
json BookingJson(const std::string& order, const std::string& instrument, int64_t start_unix_ms,
                 int64_t end_unix_ms, bool remote) {
  return {{"order_id", order},
          {"instrument_id", instrument},
          {"customer", {{"organisation", "Suzhou Biotech"}, {"city", "Suzhou"}, {"region", "JS"}}},
          {"start", FormatUtc(start_unix_ms)},
          {"end", FormatUtc(end_unix_ms)},
          {"remote", remote}};
}

class ShareHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = OpenSqliteStore({.path = db_});
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    now_ = clock_.WallUnixMs();
    ASSERT_TRUE(store_
                    ->PutInstruments({{"nmr-1", "NMR 600", "Fudan", "Jiangwan", "Shanghai", "SH"},
                                      {"tem-2", "TEM", "SUDA", "Dushu", "Suzhou", "JS"}},
                                     now_)
                    .ok());
    Result<std::string> token = NewApiToken();
    ASSERT_TRUE(token.ok());
    api_token_ = *token;
    ASSERT_TRUE(store_->AddApiToken({"ops", ApiTokenHash(api_token_), now_, std::nullopt}).ok());
    auto ingestor = Ingestor::Create(store_.get(), &downlink_, &clock_, &metrics_, {}, &feed_);
    ASSERT_TRUE(ingestor.ok());
    ingestor_ = std::move(*ingestor);
    HttpOptions options;
    options.server.listen = "127.0.0.1:0";
    options.server.stream_heartbeat_ms = 60'000;
    options.web_root = INSTRUMETER_WEB_ROOT_FOR_TEST;
    options.share_margin_s = 3600;
    defaults_ = BillingOptions().defaults;
    defaults_.rate_fen_per_hour = 30'000;
    auto http = LiveHttp::Start(options, {.path = db_}, defaults_, &metrics_, &feed_, [] {
      return HealthReport{.broker_connected = true, .ingest_healthy = true};
    });
    ASSERT_TRUE(http.ok()) << http.status().ToString();
    http_ = std::move(*http);
    port_ = http_->port();
  }

  void Ingest(const std::string& device, const std::vector<v1::Event>& events) {
    ingestor_->OnMessage(protocol::Topic(device, protocol::Channel::kUp),
                         EnvelopeOf(device, events), clock_.WallUnixMs());
    ASSERT_TRUE(ingestor_->Flush().ok());
  }

  testing::ClientResponse Call(const std::string& method, const std::string& target,
                               const std::string& body = "", const std::string& token = "-") {
    testing::ClientRequest request{.method = method, .target = target, .body = body};
    const std::string bearer = token == "-" ? api_token_ : token;
    if (!bearer.empty()) request.headers.emplace_back("Authorization", "Bearer " + bearer);
    if (!body.empty()) request.headers.emplace_back("Content-Type", "application/json");
    auto r = Fetch(port_, request);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : testing::ClientResponse{};
  }
  json CallJson(const std::string& method, const std::string& target, int want,
                const std::string& body = "", const std::string& token = "-") {
    testing::ClientResponse r = Call(method, target, body, token);
    EXPECT_EQ(r.status, want) << method << " " << target << ": " << r.body;
    json parsed = json::parse(r.body, nullptr, false);
    EXPECT_FALSE(parsed.is_discarded()) << r.body;
    return parsed;
  }
  json Post(const json& bookings, int want) {
    return CallJson("POST", "/api/v1/bookings", want, bookings.dump());
  }
  // The token of a share link path "/live/<token>".
  static std::string TokenOf(const json& share_link) {
    return share_link.get<std::string>().substr(std::string("/live/").size());
  }
  json Instrument(const std::string& id) {
    json list = CallJson("GET", "/api/v1/instruments", 200);
    for (const json& j : list["instruments"])
      if (j["instrument_id"] == id) return j;
    ADD_FAILURE() << "no " << id << " in " << list.dump();
    return json();
  }

  instrumeter::testing::TempDir dir_;
  std::string db_ = dir_.File("hub.db");
  SystemClock clock_;
  int64_t now_ = 0;
  HubMetrics metrics_;
  LiveFeed feed_;
  NullDownlink downlink_;
  PartialBillingRules defaults_;
  std::string api_token_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Ingestor> ingestor_;
  std::unique_ptr<LiveHttp> http_;
  int port_ = 0;
};

TEST_F(ShareHttpTest, PostBookingsIsAllOrNothingAndNamesTheElementAndField) {
  const json good = BookingJson("ord-1", "nmr-1", now_ + kHourMs, now_ + 2 * kHourMs, false);
  // Without a token: refused before anything is read.
  EXPECT_EQ(Call("POST", "/api/v1/bookings", good.dump(), "").status, 401);

  json end_first = BookingJson("ord-2", "tem-2", now_ + 2 * kHourMs, now_ + kHourMs, false);
  json error = Post(json::array({good, end_first}), 400)["error"];
  EXPECT_EQ(error["index"], 1);
  EXPECT_EQ(error["field"], "end");
  EXPECT_NE(error["message"].get<std::string>().find("bookings[1]"), std::string::npos);

  json unknown = BookingJson("ord-3", "xrd-404", now_ + kHourMs, now_ + 2 * kHourMs, false);
  error = Post(json::array({unknown}), 400)["error"];
  EXPECT_EQ(error["index"], 0);
  EXPECT_EQ(error["field"], "instrument_id");

  json overlap = BookingJson("ord-4", "nmr-1", now_ + 90 * kMinuteMs, now_ + 3 * kHourMs, false);
  error = Post(json::array({good, overlap}), 400)["error"];
  EXPECT_EQ(error["index"], 1);
  EXPECT_EQ(error["field"], "start");
  EXPECT_NE(error["message"].get<std::string>().find("in bookings[0]"), std::string::npos)
      << error.dump();

  json voucher = BookingJson("ord-5", "tem-2", now_ + kHourMs, now_ + 2 * kHourMs, false);
  voucher["voucher"] = {{"voucher_id", "V-1"},
                        {"issuing_region", "JS"},
                        {"covered_percent", 150},
                        {"cap_fen", 100'000},
                        {"redemption", "provider"}};
  error = Post(json::array({good, voucher}), 400)["error"];
  EXPECT_EQ(error["index"], 1);
  EXPECT_EQ(error["field"], "voucher.covered_percent");

  EXPECT_EQ(Post(json::array({good, "not a booking"}), 400)["error"]["message"],
            "nothing imported: bookings[1]: not an object");
  EXPECT_EQ(CallJson("POST", "/api/v1/bookings", 400, "{oops")["error"]["message"],
            "nothing imported: body: not valid JSON");

  // Nothing of the refused requests was written.
  EXPECT_EQ(CallJson("GET", "/api/v1/bookings", 200)["bookings"].size(), 0u);

  json second = BookingJson("ord-2", "tem-2", now_ + kHourMs, now_ + 2 * kHourMs, false);
  json created = Post(json::array({good, second}), 201);
  EXPECT_EQ(created["inserted"], 2);
  EXPECT_EQ(created["bookings"][0]["order_id"], "ord-1");
  json again = Post(json::array({good, second}), 200);
  EXPECT_EQ(again["unchanged"], 2);
  json moved = good;
  moved["end"] = FormatUtc(now_ + 150 * kMinuteMs);
  EXPECT_EQ(Post(moved, 200)["updated"], 1);

  json listed = CallJson("GET", "/api/v1/bookings?instrument=nmr-1", 200)["bookings"];
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["order_id"], "ord-1");
  EXPECT_EQ(listed[0]["end"], FormatUtc(now_ + 150 * kMinuteMs));
  EXPECT_EQ(CallJson("GET", "/api/v1/bookings?from=yesterday", 400)["error"]["message"]
                .get<std::string>()
                .substr(0, 17),
            "parameter 'from':");
  EXPECT_EQ(CallJson("GET", "/api/v1/bookings?instrumnet=nmr-1", 400)["error"]["status"], 400);
  EXPECT_EQ(Call("GET", "/api/v1/bookings", "", "").status, 401);
}

TEST_F(ShareHttpTest, ABodyOverOneMebibyteIsRefusedWith413) {
  const std::string big = "[" + std::string(1 << 20, ' ') + "]";
  EXPECT_EQ(Call("POST", "/api/v1/bookings", big).status, 413);
  EXPECT_EQ(CallJson("GET", "/api/v1/bookings", 200)["bookings"].size(), 0u);
}

TEST_F(ShareHttpTest, TheLiveApiShowsCurrentAndNextBookingAndFreeNow) {
  json before = Instrument("nmr-1");
  EXPECT_TRUE(before["current_booking"].is_null());
  EXPECT_TRUE(before["next_booking"].is_null());
  EXPECT_EQ(before["free_now"], true);

  Post(
      json::array({BookingJson("cur-1", "nmr-1", now_ - kHourMs, now_ + kHourMs, true),
                   BookingJson("next-1", "nmr-1", now_ + 2 * kHourMs, now_ + 3 * kHourMs, false),
                   BookingJson("later-1", "nmr-1", now_ + 4 * kHourMs, now_ + 5 * kHourMs, false)}),
      201);
  // The import through this hub shows in the very next response.
  json nmr = Instrument("nmr-1");
  ASSERT_TRUE(nmr["current_booking"].is_object()) << nmr.dump();
  EXPECT_EQ(nmr["current_booking"]["order_id"], "cur-1");
  EXPECT_EQ(nmr["current_booking"]["customer"], "Suzhou Biotech");
  EXPECT_EQ(nmr["current_booking"]["remote"], true);
  EXPECT_EQ(nmr["current_booking"]["start_unix_ms"], now_ - kHourMs);
  EXPECT_EQ(nmr["current_booking"]["end"], FormatUtc(now_ + kHourMs));
  EXPECT_EQ(nmr["next_booking"]["order_id"], "next-1");
  EXPECT_EQ(nmr["next_booking"]["remote"], false);
  EXPECT_EQ(nmr["free_now"], false);
  // The detail says the same.
  EXPECT_EQ(CallJson("GET", "/api/v1/instruments/nmr-1", 200)["next_booking"]["order_id"],
            "next-1");

  // Unbooked: free while not in use, not free once in use.
  EXPECT_EQ(Instrument("tem-2")["free_now"], true);
  Ingest("tem-2", {Start(1, v1::INSTRUMENT_STATE_IN_USE, {kBoot1, kMono, now_})});
  ASSERT_TRUE(instrumeter::testing::WaitFor(
      [&] { return Instrument("tem-2")["state"] == "IN_USE"; }, std::chrono::seconds(5)));
  EXPECT_EQ(Instrument("tem-2")["free_now"], false);
  EXPECT_TRUE(Instrument("tem-2")["current_booking"].is_null());
}

TEST_F(ShareHttpTest, TheBillingFeedPagesThroughTheLedgerExactlyOnce) {
  Post(
      json::array({BookingJson("old-1", "nmr-1", now_ - 30 * kHourMs, now_ - 29 * kHourMs, false),
                   BookingJson("old-2", "nmr-1", now_ - 28 * kHourMs, now_ - 27 * kHourMs, false),
                   BookingJson("old-3", "tem-2", now_ - 30 * kHourMs, now_ - 29 * kHourMs, false)}),
      201);
  BillingDriver driver(store_.get(), BillingOptions());
  Result<PassReport> pass = driver.RunOnce(now_);
  ASSERT_TRUE(pass.ok()) << pass.status().ToString();
  ASSERT_EQ(pass->entries_appended, 3u);

  EXPECT_EQ(Call("GET", "/api/v1/billing/entries", "", "").status, 401);
  std::vector<int64_t> seen;
  std::string cursor;
  for (int page = 0; page < 10; ++page) {
    const std::string target =
        "/api/v1/billing/entries?limit=2" + (cursor.empty() ? "" : "&after=" + cursor);
    json body = CallJson("GET", target, 200);
    // Reading again from the same cursor returns the same page.
    EXPECT_EQ(CallJson("GET", target, 200), body);
    for (const json& e : body["entries"]) {
      seen.push_back(e["entry_id"].get<int64_t>());
      EXPECT_EQ(e["hash"].get<std::string>().size(), 64u);
    }
    cursor = body["next_cursor"].get<std::string>();
    if (!body["more"].get<bool>()) break;
  }
  EXPECT_EQ(seen, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(CallJson("GET", "/api/v1/billing/entries?after=3", 200)["entries"].size(), 0u);

  for (const char* bad : {"limit=0", "limit=1001", "limit=ten"})
    EXPECT_EQ(
        CallJson("GET", std::string("/api/v1/billing/entries?") + bad, 400)["error"]["message"]
            .get<std::string>()
            .substr(0, 18),
        "parameter 'limit':")
        << bad;
  for (const char* bad : {"after=abc", "after=-1", "after=4"})
    EXPECT_EQ(
        CallJson("GET", std::string("/api/v1/billing/entries?") + bad, 400)["error"]["message"]
            .get<std::string>()
            .substr(0, 18),
        "parameter 'after':")
        << bad;
}

TEST_F(ShareHttpTest, AShareLinkShowsItsOwnBookingAndNothingElse) {
  const int64_t start = now_ - 20 * kMinuteMs;
  json created = Post(json::array({BookingJson("rem-1", "nmr-1", start, now_ + kHourMs, true),
                                   BookingJson("site-1", "tem-2", start, now_ + kHourMs, false)}),
                      201);
  ASSERT_TRUE(created["bookings"][0]["share_link"].is_string()) << created.dump();
  EXPECT_TRUE(created["bookings"][1]["share_link"].is_null());  // on site: no link
  const std::string token = TokenOf(created["bookings"][0]["share_link"]);
  EXPECT_EQ(token.size(), 32u);  // 128 bits in hex

  // Telemetry before the window, inside it, and of another instrument.
  Ingest("nmr-1", {Start(1, v1::INSTRUMENT_STATE_IDLE, {kBoot1, kMono, start - 30 * kMinuteMs}),
                   Change(2, v1::INSTRUMENT_STATE_IN_USE,
                          {kBoot1, kMono + 40 * kMinuteMs, start + 10 * kMinuteMs}),
                   Change(3, v1::INSTRUMENT_STATE_IDLE,
                          {kBoot1, kMono + 45 * kMinuteMs, start + 15 * kMinuteMs})});
  Ingest("tem-2", {Start(1, v1::INSTRUMENT_STATE_FAULT, {kBoot1, kMono, start})});
  ASSERT_TRUE(instrumeter::testing::WaitFor(
      [&] { return CallJson("GET", "/live/" + token + "/data", 200, "", "")["state"] == "IDLE"; },
      std::chrono::seconds(5)));

  testing::ClientResponse page = Call("GET", "/live/" + token, "", "");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.Header("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(page.body.find("/live.js"), std::string::npos);
  EXPECT_EQ(page.Header("cache-control"), "no-store");
  EXPECT_EQ(page.Header("referrer-policy"), "no-referrer");

  json data = CallJson("GET", "/live/" + token + "/data", 200, "", "");
  EXPECT_EQ(data["order_id"], "rem-1");
  EXPECT_EQ(data["instrument"]["instrument_id"], "nmr-1");
  EXPECT_EQ(data["open"], true);
  // The IDLE run began before the window: its start is clipped to the booking's.
  EXPECT_EQ(data["state_since_unix_ms"], start + 15 * kMinuteMs);
  EXPECT_DOUBLE_EQ(data["in_use_seconds"], 300.0);
  ASSERT_EQ(data["intervals"].size(), 2u) << data.dump();
  EXPECT_EQ(data["intervals"][0]["state"], "IDLE");
  EXPECT_EQ(data["intervals"][0]["start_unix_ms"], start);  // clipped: nothing before the window
  EXPECT_DOUBLE_EQ(data["intervals"][0]["duration_seconds"], 600.0);
  EXPECT_EQ(data["intervals"][1]["state"], "IN_USE");
  EXPECT_EQ(data.dump().find("tem-2"), std::string::npos);

  // Other instruments are out of reach whatever is added to the path or the query.
  EXPECT_EQ(Call("GET", "/live/" + token + "/data?instrument=tem-2", "", "").status, 400);
  EXPECT_EQ(Call("GET", "/live/" + token + "?instrument_id=tem-2", "", "").status, 400);
  EXPECT_EQ(Call("GET", "/live/" + token + "/tem-2", "", "").status, 404);
  EXPECT_EQ(Call("GET", "/live/" + token + "/data/tem-2", "", "").status, 404);
  EXPECT_EQ(Call("GET", "/live/tem-2/data", "", "").status, 404);

  // A share token is no bearer token, and an API token is no share token.
  EXPECT_EQ(Call("GET", "/api/v1/instruments/nmr-1", "", token).status, 401);
  EXPECT_EQ(Call("GET", "/api/v1/stream?access_token=" + token, "", "").status, 401);
  EXPECT_EQ(Call("GET", "/live/" + api_token_ + "/data", "", "").status, 404);

  // An unknown token (one bit off): a clear page with no data.
  std::string guess = token;
  guess.back() = guess.back() == '0' ? '1' : '0';
  testing::ClientResponse unknown = Call("GET", "/live/" + guess, "", "");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.Header("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(unknown.body.find("Unknown link"), std::string::npos);
  for (const char* secret : {"nmr", "rem-1", "Suzhou", "NMR"})
    EXPECT_EQ(unknown.body.find(secret), std::string::npos) << secret;
  EXPECT_EQ(CallJson("GET", "/live/" + guess + "/data", 404, "", "")["error"]["status"], 404);

  // Sending the booking again makes no second link; the first keeps working.
  json again = Post(json::array({BookingJson("rem-1", "nmr-1", start, now_ + kHourMs, true)}), 200);
  EXPECT_TRUE(again["bookings"][0]["share_link"].is_null());
  EXPECT_EQ(Call("GET", "/live/" + token + "/data", "", "").status, 200);
}

TEST_F(ShareHttpTest, ExpiredReplacedAndWithdrawnLinksAreGone) {
  json created = Post(
      json::array({// Ended two hours ago: past its one-hour margin.
                   BookingJson("past-1", "nmr-1", now_ - 3 * kHourMs, now_ - 2 * kHourMs, true),
                   BookingJson("now-1", "nmr-1", now_ - kHourMs, now_ + kHourMs, true),
                   // Opens an hour before it starts.
                   BookingJson("soon-1", "tem-2", now_ + 3 * kHourMs, now_ + 4 * kHourMs, true)}),
      201);
  const std::string past = TokenOf(created["bookings"][0]["share_link"]);
  const std::string current = TokenOf(created["bookings"][1]["share_link"]);
  const std::string soon = TokenOf(created["bookings"][2]["share_link"]);

  testing::ClientResponse expired = Call("GET", "/live/" + past, "", "");
  EXPECT_EQ(expired.status, 410);
  EXPECT_NE(expired.body.find("expired"), std::string::npos);
  EXPECT_EQ(expired.body.find("past-1"), std::string::npos);
  EXPECT_EQ(Call("GET", "/live/" + past + "/data", "", "").status, 410);

  json waiting = CallJson("GET", "/live/" + soon + "/data", 200, "", "");
  EXPECT_EQ(waiting["open"], false);
  EXPECT_TRUE(waiting["state"].is_null());
  EXPECT_EQ(waiting["intervals"].size(), 0u);
  EXPECT_EQ(waiting["opens_at_unix_ms"], now_ + 2 * kHourMs);

  // `bookings share` makes a new link and the old one stops working.
  Result<std::optional<std::string>> fresh =
      IssueShareLink(store_.get(), "now-1", true, clock_.WallUnixMs());
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  ASSERT_TRUE(fresh->has_value());
  EXPECT_EQ(Call("GET", "/live/" + current + "/data", "", "").status, 410);
  EXPECT_EQ(CallJson("GET", "/live/" + **fresh + "/data", 200, "", "")["order_id"], "now-1");

  // `bookings unshare` withdraws it alone; the page says so, and shows nothing of the session.
  Result<std::optional<std::string>> again =
      IssueShareLink(store_.get(), "now-1", true, clock_.WallUnixMs());
  ASSERT_TRUE(again.ok() && again->has_value());
  Result<bool> revoked = store_->RevokeShareLink("now-1", clock_.WallUnixMs());
  ASSERT_TRUE(revoked.ok() && *revoked);
  const testing::ClientResponse withdrawn = Call("GET", "/live/" + **again, "", "");
  EXPECT_EQ(withdrawn.status, 410);
  EXPECT_NE(withdrawn.body.find("withdrew"), std::string::npos) << withdrawn.body;
  EXPECT_EQ(withdrawn.body.find("nmr-1"), std::string::npos) << withdrawn.body;
  EXPECT_EQ(Call("GET", "/live/" + **again + "/data", "", "").status, 410);
  fresh = IssueShareLink(store_.get(), "now-1", false, clock_.WallUnixMs());
  ASSERT_TRUE(fresh.ok() && fresh->has_value()) << "no active link is left to replace";

  // A booking changed to on site is no longer shared.
  Post(BookingJson("now-1", "nmr-1", now_ - kHourMs, now_ + kHourMs, false), 200);
  EXPECT_EQ(Call("GET", "/live/" + **fresh, "", "").status, 410);
  EXPECT_EQ(IssueShareLink(store_.get(), "now-1", true, now_).status().code(),
            Status::Code::kFailedPrecondition);
  EXPECT_EQ(IssueShareLink(store_.get(), "none", true, now_).status().code(),
            Status::Code::kNotFound);
}

}  // namespace
}  // namespace instrumeter::hub
