#include "hub/share_api.h"

#include <openssl/rand.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "api_json.h"
#include "hub/reports.h"
#include "protocol/chain.h"
#include "protocol/codec.h"
#include "web_files.h"

namespace instrumeter::hub {
namespace {

using nlohmann::json;

constexpr size_t kTokenBytes = 16;  // 128 bits

// Share URLs are secrets in a path: keep them out of caches and other sites' Referer headers.
void AddPrivacyHeaders(HttpResponse* response) {
  response->headers.emplace_back("Cache-Control", "no-store");
  response->headers.emplace_back("Referrer-Policy", "no-referrer");
}

// The refusal page: says what is wrong and nothing about any booking.
HttpResponse RefusalPage(int status, const std::string& title, const std::string& text) {
  HttpResponse response;
  response.status = status;
  response.content_type = "text/html; charset=utf-8";
  response.body =
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>" +
      title +
      " - instrumeter</title><link rel=\"stylesheet\" href=\"/live.css\"></head>"
      "<body><main class=\"refused\" id=\"refused\" data-status=\"" +
      std::to_string(status) + "\"><h1>" + title + "</h1><p>" + text +
      "</p></main></body></html>\n";
  AddPrivacyHeaders(&response);
  return response;
}

HttpResponse Refuse(bool html, int status, const std::string& title, const std::string& text) {
  if (html) return RefusalPage(status, title, text);
  HttpResponse response = JsonError(status, text);
  AddPrivacyHeaders(&response);
  return response;
}

}  // namespace

std::string SharePath(const std::string& token) { return "/live/" + token; }

Result<std::string> NewShareToken() {
  unsigned char bytes[kTokenBytes];
  if (RAND_bytes(bytes, sizeof bytes) != 1)
    return Status::Internal("RAND_bytes failed: " + protocol::ossl::ErrorQueue());
  return protocol::ToHex(std::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
}

Result<std::optional<std::string>> IssueShareLink(Store* store, const std::string& order_id,
                                                  bool replace_active, int64_t now_unix_ms) {
  Result<std::optional<Booking>> booking = store->GetBooking(order_id);
  if (!booking.ok()) return booking.status();
  if (!booking->has_value()) return Status::NotFound("no booking with order id '" + order_id + "'");
  if (!(*booking)->remote)
    return Status::FailedPrecondition("order '" + order_id +
                                      "' is on site: share links are for remote bookings");
  Result<std::string> token = NewShareToken();
  if (!token.ok()) return token.status();
  Result<bool> added = store->AddShareLink(
      {.sha256 = protocol::Sha256(*token), .order_id = order_id, .created_unix_ms = now_unix_ms},
      replace_active);
  if (!added.ok()) return added.status().WithContext("share link of order '" + order_id + "'");
  if (!*added) return std::optional<std::string>();
  return std::optional<std::string>(std::move(*token));
}

void ShareApi::AddRoutes(Router* router) {
  router->Add("GET", "/live/{token}", [this](const HttpRequest& r) { return Page(r); });
  router->Add("GET", "/live/{token}/data", [this](const HttpRequest& r) { return Data(r); });
}

std::optional<HttpResponse> ShareApi::Resolve(const std::string& token, bool html,
                                              Booking* booking) {
  // Looked up by its SHA-256: the time taken says nothing about how close a guess came.
  Result<std::optional<ShareLink>> link = s_.store->FindShareLink(protocol::Sha256(token));
  if (!link.ok())
    return Refuse(html, 503, "Unavailable", "The hub cannot read its database just now.");
  if (!link->has_value())
    return Refuse(html, 404, "Unknown link",
                  "This share link is not known. Check that you copied all of it, or ask the "
                  "lab for a new one.");
  if ((*link)->revoked_unix_ms.has_value())
    return Refuse(html, 410, "Link withdrawn",
                  "The lab replaced or withdrew this share link. Ask the lab whether there is a "
                  "new one.");
  Result<std::optional<Booking>> found = s_.store->GetBooking((*link)->order_id);
  if (!found.ok())
    return Refuse(html, 503, "Unavailable", "The hub cannot read its database just now.");
  if (!found->has_value() || !(*found)->remote)
    return Refuse(html, 410, "Link closed", "This session is no longer shared.");
  if (s_.clock->WallUnixMs() >= (*found)->end_unix_ms + s_.margin_ms)
    return Refuse(html, 410, "Link expired",
                  "This share link has expired: the session it showed is over.");
  *booking = std::move(**found);
  return std::nullopt;
}

HttpResponse ShareApi::Page(const HttpRequest& request) {
  // Nothing a client adds may widen what a link shows.
  if (auto bad = OnlyParameters(request, {})) return *bad;
  Booking booking;
  if (auto refused = Resolve(request.path_params.at("token"), true, &booking)) return *refused;
  HttpResponse page = ServeWebFile(s_.web_root, "live.html");
  AddPrivacyHeaders(&page);
  return page;
}

HttpResponse ShareApi::Data(const HttpRequest& request) {
  // Nothing a client adds may widen what a link shows.
  if (auto bad = OnlyParameters(request, {})) return *bad;
  Booking booking;
  if (auto refused = Resolve(request.path_params.at("token"), false, &booking)) return *refused;
  if (Status st = s_.view->Refresh(); !st.ok())
    return JsonError(503, "the database cannot be read: " + st.message());
  const int64_t now = s_.clock->WallUnixMs();
  const int64_t opens = booking.start_unix_ms - s_.margin_ms;
  const bool open = now >= opens;

  json body = {{"order_id", booking.order_id},
               {"customer", booking.customer.organisation},
               {"remote", booking.remote},
               {"open", open}};
  PutTime(&body, "start", booking.start_unix_ms);
  PutTime(&body, "end", booking.end_unix_ms);
  PutTime(&body, "opens_at", opens);
  PutTime(&body, "valid_until", booking.end_unix_ms + s_.margin_ms);
  PutTime(&body, "generated_at", now);

  const InstrumentView* view = s_.view->Find(booking.instrument_id);
  json instrument = {{"instrument_id", booking.instrument_id}};
  if (view != nullptr) {
    instrument["name"] = view->instrument.name;
    instrument["institution"] = view->instrument.institution;
    instrument["site"] = view->instrument.site;
    instrument["city"] = view->instrument.city;
  }
  body["instrument"] = std::move(instrument);

  // The state now only while the link is open, and never since a time before the window: what
  // the instrument did for someone else is not this customer's to see.
  body["state"] = nullptr;
  body["state_since"] = nullptr;
  body["state_since_unix_ms"] = nullptr;
  body["online"] = nullptr;
  if (open && view != nullptr) {
    body["state"] = LiveStateName(view->live.state);
    if (view->live.state != v1::INSTRUMENT_STATE_UNSPECIFIED)
      PutTime(&body, "state_since",
              std::max(view->live.state_since_wall_ms, booking.start_unix_ms));
    if (view->live.online.has_value()) body["online"] = *view->live.online;
  }

  // The session so far: intervals clipped to [start, min(now, end)).
  const int64_t from = booking.start_unix_ms;
  const int64_t to = std::max(from, std::min(now, booking.end_unix_ms));
  ClippedTimeline timeline;
  if (to > from) {
    Result<ClippedTimeline> read = ReadClippedTimeline(s_.store, booking.instrument_id, from, to,
                                                       view != nullptr ? view->live : LiveState{});
    if (!read.ok())
      return JsonError(503, "the database cannot be read: " + read.status().message());
    timeline = std::move(*read);
  }
  PutTime(&body, "window_from", from);
  PutTime(&body, "window_to", to);
  body["intervals"] = std::move(timeline.intervals);
  body["powered_seconds"] = timeline.powered_seconds;
  body["in_use_seconds"] = timeline.in_use_seconds;
  body["gap_seconds"] = timeline.gap_seconds;
  HttpResponse response = JsonResponse(200, body);
  AddPrivacyHeaders(&response);
  return response;
}

}  // namespace instrumeter::hub
