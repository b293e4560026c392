#include "hub/live_api.h"

#include <cctype>
#include <nlohmann/json.hpp>
#include <set>

#include "api_json.h"
#include "hub/metrics.h"
#include "hub/reports.h"
#include "json_writer.h"
#include "protocol/codec.h"
#include "web_files.h"

namespace instrumeter::hub {
namespace {

using nlohmann::json;

// How many events before the newest observation point are searched for the last heartbeat when
// an instrument's detail is asked for before the hub saw one in this run.
constexpr uint64_t kHealthSearchEvents = 64;

// Every state an instrument can be listed in, in the order the dashboard and metrics show them.
constexpr v1::InstrumentState kListedStates[] = {
    v1::INSTRUMENT_STATE_IN_USE, v1::INSTRUMENT_STATE_IDLE,    v1::INSTRUMENT_STATE_FAULT,
    v1::INSTRUMENT_STATE_OFF,    v1::INSTRUMENT_STATE_UNKNOWN, v1::INSTRUMENT_STATE_UNSPECIFIED};

// ASCII case-insensitive equality (filters and state names).
bool SameText(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

// The name of a listed state: OFF, IDLE, IN_USE, FAULT, UNKNOWN or NOT_OBSERVED.
bool ParseListedState(const std::string& name, v1::InstrumentState* state) {
  if (SameText(name, LiveStateName(v1::INSTRUMENT_STATE_UNSPECIFIED))) {
    *state = v1::INSTRUMENT_STATE_UNSPECIFIED;
    return true;
  }
  return protocol::ParseStateName(name, state) && *state != v1::INSTRUMENT_STATE_UNSPECIFIED;
}

std::string ListedStateNames() {
  std::string names;
  for (v1::InstrumentState s : kListedStates)
    names += std::string(names.empty() ? "" : ", ") + LiveStateName(s);
  return names;
}

// `key` as ISO 8601 and `key_ms` in Unix milliseconds; both null for 0 (never).
void WriteTime(JsonWriter* w, std::string_view key, std::string_view key_ms, int64_t unix_ms) {
  w->Key(key);
  if (unix_ms == 0) {
    w->Null().Key(key_ms).Null();
  } else {
    w->String(FormatUtc(unix_ms)).Key(key_ms).Int(unix_ms);
  }
}

// The fields every representation of an instrument shares (list rows, detail, stream events),
// written into an open object; bookings as of `now_unix_ms`.
void WriteInstrumentFields(JsonWriter* w, const InstrumentView& view, int64_t now_unix_ms) {
  const Instrument& in = view.instrument;
  const LiveState& l = view.live;
  w->Key("instrument_id").String(in.instrument_id);
  w->Key("name").String(in.name);
  w->Key("institution").String(in.institution);
  w->Key("site").String(in.site);
  w->Key("city").String(in.city);
  w->Key("region").String(in.region);
  w->Key("registered").Bool(view.registered);
  w->Key("state").String(LiveStateName(l.state));
  WriteTime(w, "state_since", "state_since_unix_ms", l.state_since_wall_ms);
  w->Key("online");
  if (l.online.has_value()) {
    w->Bool(*l.online);
  } else {
    w->Null();
  }
  WriteTime(w, "online_since", "online_since_unix_ms",
            l.online.has_value() ? l.status_since_unix_ms : 0);
  WriteTime(w, "last_seen", "last_seen_unix_ms", l.last_seen_unix_ms);
  w->Key("agent_version");
  if (l.agent_version.empty()) {
    w->Null();
  } else {
    w->String(l.agent_version);
  }
  w->Key("outbox_depth").Uint(l.outbox_depth);
  const DayTotals& today = view.today;
  w->Key("today_powered_seconds").Double(Round3(today.powered_seconds));
  w->Key("today_in_use_seconds").Double(Round3(today.in_use_seconds));
  w->Key("today_gap_seconds").Double(Round3(today.gap_seconds));
  const BookingsNow bookings = BookingsAt(view, now_unix_ms);
  for (const auto& [key, booking] :
       {std::pair{"current_booking", bookings.current}, std::pair{"next_booking", bookings.next}}) {
    w->Key(key);
    if (booking == nullptr) {
      w->Null();
      continue;
    }
    w->BeginObject();
    w->Key("order_id").String(booking->order_id);
    w->Key("customer").String(booking->customer);
    w->Key("remote").Bool(booking->remote);
    WriteTime(w, "start", "start_unix_ms", booking->start_unix_ms);
    WriteTime(w, "end", "end_unix_ms", booking->end_unix_ms);
    w->EndObject();
  }
  w->Key("free_now").Bool(FreeNow(view, bookings));
}

void WriteHealth(JsonWriter* w, const AgentHealth& health) {
  w->BeginObject();
  w->Key("heartbeat_seq").Uint(health.seq);
  w->Key("heartbeat_interval_ms").Uint(health.heartbeat_interval_ms);
  w->Key("sources_disagree").Bool(health.disagreement);
  WriteTime(w, "reported_at", "reported_at_unix_ms", health.at_wall_unix_ms);
  w->Key("adapters").BeginArray();
  for (const AdapterStatus& a : health.adapters) {
    w->BeginObject();
    w->Key("name").String(a.name);
    w->Key("type").String(a.type);
    w->Key("ok").Bool(a.ok);
    for (const auto& [key, text] :
         {std::pair{"error", &a.error}, std::pair{"identity", &a.identity}}) {
      w->Key(key);
      if (text->empty()) {
        w->Null();
      } else {
        w->String(*text);
      }
    }
    w->Key("errors_total").Uint(a.errors_total);
    w->EndObject();
  }
  w->EndArray();
  w->EndObject();
}

}  // namespace

void LiveApi::AddRoutes(Router* router) {
  router->Add("GET", "/api/v1/instruments",
              [this](const HttpRequest& r) { return ListInstruments(r); });
  router->Add("GET", "/api/v1/instruments/{id}",
              [this](const HttpRequest& r) { return GetInstrument(r); });
  router->Add("GET", "/api/v1/instruments/{id}/timeline",
              [this](const HttpRequest& r) { return GetTimeline(r); });
  router->Add("GET", "/api/v1/stream", [this](const HttpRequest& r) { return OpenStream(r); });
  router->Add("GET", "/metrics", [this](const HttpRequest& r) { return Metrics(r); });
  router->Add("GET", "/healthz", [this](const HttpRequest& r) { return Healthz(r); });
  router->Add("GET", "/", [this](const HttpRequest& r) { return WebFile(r); });
  router->Add("GET", "/{file}", [this](const HttpRequest& r) { return WebFile(r); });
}

std::optional<HttpResponse> LiveApi::Refresh() {
  Status st = s_.view->Refresh();
  if (st.ok()) return std::nullopt;
  return JsonError(503, "the database cannot be read: " + st.message());
}

HttpResponse LiveApi::ListInstruments(const HttpRequest& request) {
  if (auto bad = OnlyParameters(request, {"city", "site", "state", "online"})) return *bad;
  std::set<v1::InstrumentState> states;
  if (auto it = request.query.find("state"); it != request.query.end()) {
    size_t start = 0;
    const std::string& text = it->second;
    while (start <= text.size()) {
      const size_t comma = text.find(',', start);
      const std::string name = text.substr(start, comma - start);
      v1::InstrumentState state;
      if (!ParseListedState(name, &state))
        return BadParameter("state", "unknown state '" + name + "' (expected one or more of " +
                                         ListedStateNames() + ", comma-separated)");
      states.insert(state);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  std::optional<bool> online;
  if (auto it = request.query.find("online"); it != request.query.end()) {
    if (it->second != "true" && it->second != "false")
      return BadParameter("online", "expected true or false, got '" + it->second + "'");
    online = it->second == "true";
  }
  const auto city = request.query.find("city");
  const auto site = request.query.find("site");
  if (auto failed = Refresh()) return *failed;

  const LiveView& live = *s_.view;
  // About 700 bytes per instrument.
  JsonWriter w(live.instruments().size() * 720 + 512);
  w.BeginObject().Key("instruments").BeginArray();
  size_t count = 0;
  const int64_t now = s_.clock->WallUnixMs();
  for (const auto& [id, view] : live.instruments()) {
    if (city != request.query.end() && !SameText(view.instrument.city, city->second)) continue;
    if (site != request.query.end() && !SameText(view.instrument.site, site->second)) continue;
    if (!states.empty() && states.count(view.live.state) == 0) continue;
    if (online.has_value() && view.live.online != online) continue;
    w.BeginObject();
    WriteInstrumentFields(&w, view, now);
    w.EndObject();
    ++count;
  }
  w.EndArray().Key("count").Uint(count);
  WriteTime(&w, "generated_at", "generated_at_unix_ms", now);
  WriteTime(&w, "today_from", "today_from_unix_ms", live.day_start_unix_ms());
  WriteTime(&w, "today_to", "today_to_unix_ms", live.day_start_unix_ms() + kDayMs);
  w.EndObject();
  return JsonTextResponse(200, w.Take());
}

void LiveApi::LoadHealth(const InstrumentView& view) {
  if (view.health.has_value() || view.live.counters_seq == 0) return;
  const uint64_t last = view.live.counters_seq;
  const uint64_t first = last > kHealthSearchEvents ? last - kHealthSearchEvents : 1;
  Result<std::vector<EventRow>> rows =
      s_.store->ReadEvents(view.instrument.instrument_id, first, last);
  if (!rows.ok()) return;  // health stays unknown; the detail still answers
  for (auto it = rows->rbegin(); it != rows->rend(); ++it) {
    v1::Event event;
    if (!event.ParseFromString(it->body) || !event.has_heartbeat()) continue;
    s_.view->SetHealth(view.instrument.instrument_id, HealthOf(event));
    return;
  }
}

HttpResponse LiveApi::GetInstrument(const HttpRequest& request) {
  if (auto bad = OnlyParameters(request, {})) return *bad;
  if (auto failed = Refresh()) return *failed;
  const std::string& id = request.path_params.at("id");
  const InstrumentView* view = s_.view->Find(id);
  if (view == nullptr) return JsonError(404, "no instrument '" + id + "'");
  LoadHealth(*view);
  JsonWriter w;
  w.BeginObject();
  WriteInstrumentFields(&w, *view, s_.clock->WallUnixMs());
  w.Key("events_stored").Uint(view->events_stored);
  w.Key("contiguous_seq").Uint(view->contiguous_seq);
  // The agent's own meter (DESIGN rule 2), as of its newest observation point.
  w.Key("agent_meter");
  if (view->live.counters_seq == 0) {
    w.Null();
  } else {
    w.BeginObject();
    w.Key("powered_seconds").Double(Round3(static_cast<double>(view->live.powered_ms) / 1000.0));
    w.Key("in_use_seconds").Double(Round3(static_cast<double>(view->live.in_use_ms) / 1000.0));
    w.Key("at_seq").Uint(view->live.counters_seq);
    w.EndObject();
  }
  w.Key("agent_health");
  if (view->health.has_value()) {
    WriteHealth(&w, *view->health);
  } else {
    w.Null();
  }
  w.EndObject();
  return JsonTextResponse(200, w.Take());
}

HttpResponse LiveApi::GetTimeline(const HttpRequest& request) {
  if (auto bad = OnlyParameters(request, {"from", "to"})) return *bad;
  int64_t from = 0;
  int64_t to = 0;
  bool has_from = false;
  bool has_to = false;
  if (auto bad = TimeParameter(request, "from", &from, &has_from)) return *bad;
  if (auto bad = TimeParameter(request, "to", &to, &has_to)) return *bad;
  if (!has_from && !has_to) {
    from = UtcDayStart(s_.clock->WallUnixMs());
    to = from + kDayMs;
  } else if (!has_to) {
    to = from + kDayMs;
  } else if (!has_from) {
    from = to - kDayMs;
  }
  if (to <= from) return BadParameter("to", "must be after 'from'");
  if (to - from > kMaxTimelineMs)
    return BadParameter(
        "to", "the range may span at most " + std::to_string(kMaxTimelineMs / kDayMs) + " days");
  if (auto failed = Refresh()) return *failed;
  const std::string& id = request.path_params.at("id");
  const InstrumentView* view = s_.view->Find(id);
  if (view == nullptr) return JsonError(404, "no instrument '" + id + "'");
  Result<ClippedTimeline> timeline = ReadClippedTimeline(s_.store, id, from, to, view->live);
  if (!timeline.ok())
    return JsonError(503, "the database cannot be read: " + timeline.status().message());
  json body = {{"instrument_id", id},
               {"intervals", std::move(timeline->intervals)},
               {"powered_seconds", timeline->powered_seconds},
               {"in_use_seconds", timeline->in_use_seconds},
               {"gap_seconds", timeline->gap_seconds}};
  PutTime(&body, "from", from);
  PutTime(&body, "to", to);
  return JsonResponse(200, body);
}

HttpResponse LiveApi::OpenStream(const HttpRequest& request) {
  if (auto bad = OnlyParameters(request, {})) return *bad;
  HttpResponse response;
  response.content_type = "text/event-stream; charset=utf-8";
  response.stream = true;
  // Reconnect after 2 s. Events are not replayed after a reconnect (Last-Event-ID is ignored):
  // a client reloads /api/v1/instruments when its stream (re)opens.
  response.body = "retry: 2000\n: instrumeter-hub live stream\n\n";
  return response;
}

std::string LiveApi::StreamMessage(const LiveEvent& event, uint64_t id) const {
  const InstrumentView* view = s_.view->Find(event.instrument_id);
  if (view == nullptr) return "";
  JsonWriter w;
  w.BeginObject();
  WriteInstrumentFields(&w, *view, s_.clock->WallUnixMs());
  const char* name = "state";
  if (event.kind == LiveEvent::Kind::kState) {
    w.Key("previous_state").String(LiveStateName(event.previous_state));
  } else {
    name = "online";
    w.Key("previous_online");
    if (event.previous_online.has_value()) {
      w.Bool(*event.previous_online);
    } else {
      w.Null();
    }
  }
  w.EndObject();
  return "id: " + std::to_string(id) + "\nevent: " + name + "\ndata: " + w.Take() + "\n\n";
}

std::string LiveApi::ResyncMessage(uint64_t id) const {
  return "id: " + std::to_string(id) +
         "\nevent: resync\ndata: {\"reason\":\"the hub dropped live changes; reload "
         "/api/v1/instruments\"}\n\n";
}

HttpResponse LiveApi::Metrics(const HttpRequest& request) {
  if (auto bad = OnlyParameters(request, {})) return *bad;
  if (auto failed = Refresh()) return *failed;
  LiveGauges g;
  std::map<v1::InstrumentState, uint64_t> by_state;
  for (const auto& [id, view] : s_.view->instruments()) {
    ++g.instruments;
    ++by_state[view.live.state];
    if (view.live.online == true) ++g.agents_online;
    if (view.live.online == false) ++g.agents_offline;
    g.agents_outbox_events += view.live.outbox_depth;
  }
  for (v1::InstrumentState s : kListedStates)
    g.instruments_by_state.emplace_back(LiveStateName(s), by_state[s]);
  g.ingest_healthy = s_.health().ingest_healthy;
  // A failure leaves the two gauges out: an alert on their absence sees it.
  if (Result<StoreSpace> space = s_.store->Space(); space.ok()) g.store_space = *space;
  g.feed_dropped = s_.feed->dropped();
  HttpResponse response;
  response.content_type = "text/plain; version=0.0.4; charset=utf-8";
  response.body = RenderPrometheus(*s_.metrics, *s_.http_stats, g);
  return response;
}

HttpResponse LiveApi::Healthz(const HttpRequest& request) {
  if (auto bad = OnlyParameters(request, {})) return *bad;
  const HealthReport health = s_.health();
  json reasons = json::array();
  if (!health.broker_connected) reasons.push_back("broker: not connected");
  if (!health.ingest_healthy)
    reasons.push_back("database: the last commit failed: " + health.ingest_error);
  const bool ok = reasons.empty();
  json body = {{"status", ok ? "ok" : "unavailable"},
               {"broker_connected", health.broker_connected},
               {"database_writable", health.ingest_healthy}};
  if (!ok) body["reasons"] = std::move(reasons);
  return JsonResponse(ok ? 200 : 503, body);
}

HttpResponse LiveApi::WebFile(const HttpRequest& request) {
  auto it = request.path_params.find("file");
  return ServeWebFile(s_.web_root, it == request.path_params.end() ? "" : it->second);
}

}  // namespace instrumeter::hub
