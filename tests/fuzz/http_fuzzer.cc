// libFuzzer harness: HTTP request handling. The hub's routes (billing, share links, live API),
// wired as LiveHttp wires them, over a real SQLite store in memory with two instruments and a
// remote booking; the server's own parsing is Beast's. Input: "METHOD TARGET\n", header lines
// "name: value\n", a blank line, then the body. Every request must end in a response with a
// valid status and, for JSON, a body that parses; never in an exception (the server would answer
// 500: a handler that failed) or a 500, and never a crash.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "api_auth.h"
#include "common/clock.h"
#include "hub/billing_api.h"
#include "hub/billing_options.h"
#include "hub/bookings.h"
#include "hub/http.h"
#include "hub/live_api.h"
#include "hub/live_feed.h"
#include "hub/live_http.h"
#include "hub/share_api.h"
#include "hub/sqlite_store.h"

namespace {

using namespace instrumeter::hub;

struct Hub {
  instrumeter::SystemClock clock;
  std::unique_ptr<Store> store;
  std::unique_ptr<LiveView> view;
  HubMetrics metrics;
  HttpServerStats stats;
  LiveFeed feed;
  std::unique_ptr<LiveApi> live;
  std::unique_ptr<BillingApi> billing;
  std::unique_ptr<ShareApi> share;
  Router router;
};

void Check(const instrumeter::Status& st) {
  if (st.ok()) return;
  std::fprintf(stderr, "http_fuzzer: setting up the hub: %s\n", st.ToString().c_str());
  std::abort();
}

Hub* MakeHub() {
  auto* hub = new Hub();
  auto store = OpenSqliteStore({.path = ":memory:"});
  Check(store.status());
  hub->store = std::move(*store);
  Check(hub->store->PutInstruments(
      {{"nmr-1", "NMR 600", "Fudan", "Jiangwan", "Shanghai", "Shanghai", 0},
       {"tem-2", "TEM", "SJTU", "Minhang", "Shanghai", "Shanghai", 0}},
      0));
  auto rows = ParseBookingsJson(
      R"({"order_id": "ORD-1", "instrument_id": "nmr-1", "customer": {"organisation": "A",
          "city": "Suzhou", "region": "Jiangsu"}, "start": "2026-01-01T08:00:00Z",
          "end": "2026-12-31T09:00:00Z", "remote": true, "rate_fen_per_hour": 12000})",
      "seed.json");
  Check(rows.status());
  Check(ImportBookings(hub->store.get(), *rows, BillingOptions{}.defaults, 0).status());
  auto view = LiveView::Load(hub->store.get(), &hub->clock, 10'000);
  Check(view.status());
  hub->view = std::move(*view);
  hub->live = std::make_unique<LiveApi>(LiveApi::Sources{
      .view = hub->view.get(),
      .store = hub->store.get(),
      .metrics = &hub->metrics,
      .http_stats = &hub->stats,
      .feed = &hub->feed,
      .health = [] { return HealthReport{.broker_connected = true, .ingest_healthy = true}; },
      .clock = &hub->clock,
      .web_root = DefaultWebRoot()});
  hub->billing = std::make_unique<BillingApi>(
      BillingApi::Sources{.store = hub->store.get(),
                          .view = hub->view.get(),
                          .clock = &hub->clock,
                          .booking_defaults = BillingOptions{}.defaults});
  hub->share = std::make_unique<ShareApi>(ShareApi::Sources{.view = hub->view.get(),
                                                            .store = hub->store.get(),
                                                            .clock = &hub->clock,
                                                            .web_root = DefaultWebRoot()});
  hub->billing->AddRoutes(&hub->router);
  hub->share->AddRoutes(&hub->router);
  hub->live->AddRoutes(&hub->router);
  hub->router.SetAuthorizer(MakeTokenAuthorizer(hub->store.get(), std::nullopt, "127.0.0.1:0"));
  return hub;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Hub* const hub = MakeHub();  // one hub for the process, as a server has
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto line = [&in]() {
    const size_t end = in.find('\n');
    std::string_view l = in.substr(0, end);
    in = end == std::string_view::npos ? std::string_view() : in.substr(end + 1);
    return l;
  };
  const std::string_view request_line = line();
  const size_t space = request_line.find(' ');
  if (space == std::string_view::npos) return 0;
  HttpRequest request;
  request.method = std::string(request_line.substr(0, space));
  std::optional<ParsedTarget> target = ParseTarget(request_line.substr(space + 1));
  if (!target.has_value()) return 0;  // the server answers 400 itself
  request.path = std::move(target->path);
  request.query = std::move(target->query);
  for (std::string_view h = line(); !h.empty(); h = line()) {
    const size_t colon = h.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name(h.substr(0, colon));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view value = h.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    request.headers[name] = std::string(value);
  }
  request.body = std::string(in);
  const HttpResponse response = hub->router.Dispatch(std::move(request));
  if (response.status < 200 || response.status > 599 || response.status == 500) std::abort();
  if (!response.stream && response.content_type.rfind("application/json", 0) == 0 &&
      !nlohmann::json::accept(response.body))
    std::abort();
  return 0;
}
