#include "hub/live_http.h"

#include <spdlog/spdlog.h>

#include "api_auth.h"
#include "hub/billing_api.h"
#include "hub/share_api.h"
#include "hub/sqlite_store.h"

namespace instrumeter::hub {

struct LiveHttp::Parts {
  LiveFeed* feed = nullptr;
  SystemClock clock;
  std::unique_ptr<Store> store;
  std::unique_ptr<LiveView> view;
  std::unique_ptr<LiveApi> api;
  std::unique_ptr<BillingApi> billing;
  std::unique_ptr<ShareApi> share;
  Router router;
  HttpServerStats stats;
  std::unique_ptr<HttpServer> server;  // declared last: stopped first
  uint64_t next_event_id = 1;          // http thread

  // Http thread: moves what the ingest side committed into the view and out to stream clients.
  void Pump() {
    LiveFeed::Taken taken = feed->Take();
    if (taken.overflowed) {
      Status st = view->Reload();
      if (!st.ok()) spdlog::error("http: reloading the live view failed: {}", st.ToString());
      server->Broadcast(api->ResyncMessage(next_event_id++));
      return;
    }
    for (const LiveEvent& event : view->Apply(taken.changes)) {
      const std::string message = api->StreamMessage(event, next_event_id);
      if (message.empty()) continue;
      ++next_event_id;
      server->Broadcast(message);
    }
  }
};

LiveHttp::LiveHttp(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

LiveHttp::~LiveHttp() {
  parts_->feed->SetWakeup(nullptr);
  parts_->server->Stop();
}

int LiveHttp::port() const { return parts_->server->port(); }

std::string DefaultWebRoot() { return INSTRUMETER_DEFAULT_WEB_ROOT; }

Result<std::unique_ptr<LiveHttp>> LiveHttp::Start(const HttpOptions& http,
                                                  const StoreOptions& store,
                                                  const PartialBillingRules& booking_defaults,
                                                  const HubMetrics* metrics, LiveFeed* feed,
                                                  HealthProbe health) {
  auto parts = std::make_unique<Parts>();
  Parts* p = parts.get();
  p->feed = feed;
  Result<std::unique_ptr<Store>> opened =
      OpenSqliteStore({.path = store.path, .busy_timeout_ms = store.busy_timeout_ms});
  if (!opened.ok()) return opened.status().WithContext("http: opening the database");
  p->store = std::move(*opened);
  // Changes committed before the view is read are in the database already: drop them, so that
  // none older than the view is applied over it.
  (void)feed->Take();
  Result<std::unique_ptr<LiveView>> view =
      LiveView::Load(p->store.get(), &p->clock, http.registry_refresh_ms);
  if (!view.ok()) return view.status();
  p->view = std::move(*view);
  const std::string web_root = http.web_root.empty() ? DefaultWebRoot() : http.web_root;
  p->api = std::make_unique<LiveApi>(LiveApi::Sources{.view = p->view.get(),
                                                      .store = p->store.get(),
                                                      .metrics = metrics,
                                                      .http_stats = &p->stats,
                                                      .feed = feed,
                                                      .health = std::move(health),
                                                      .clock = &p->clock,
                                                      .web_root = web_root});
  p->billing =
      std::make_unique<BillingApi>(BillingApi::Sources{.store = p->store.get(),
                                                       .view = p->view.get(),
                                                       .clock = &p->clock,
                                                       .booking_defaults = booking_defaults});
  p->share = std::make_unique<ShareApi>(ShareApi::Sources{.view = p->view.get(),
                                                          .store = p->store.get(),
                                                          .clock = &p->clock,
                                                          .web_root = web_root,
                                                          .margin_ms = http.share_margin_s * 1000});
  // Before the live API's routes: its dashboard files match any single segment last.
  p->billing->AddRoutes(&p->router);
  p->share->AddRoutes(&p->router);
  p->api->AddRoutes(&p->router);
  p->router.SetAuthorizer(
      MakeTokenAuthorizer(p->store.get(), http.require_tokens, http.server.listen));
  Result<std::unique_ptr<HttpServer>> server =
      HttpServer::Start(http.server, &p->router, &p->stats);
  if (!server.ok()) return server.status();
  p->server = std::move(*server);
  HttpServer* raw_server = p->server.get();
  feed->SetWakeup([raw_server, p] { raw_server->Post([p] { p->Pump(); }); });
  // Changes that arrived while the view loaded.
  raw_server->Post([p] { p->Pump(); });
  return std::unique_ptr<LiveHttp>(new LiveHttp(std::move(parts)));
}

}  // namespace instrumeter::hub
