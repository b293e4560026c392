#include "hub/billing_api.h"

#include <spdlog/spdlog.h>
#include <charconv>
#include <nlohmann/json.hpp>

#include "api_json.h"
#include "hub/bookings.h"
#include "hub/ledger.h"
#include "hub/share_api.h"
#include "text_output.h"

namespace instrumeter::hub {
namespace {

using nlohmann::json;

constexpr int64_t kDefaultFeedLimit = 100;

// The element name a booking's errors carry: "bookings[<index>]".
std::string ElementName(size_t index) { return "bookings[" + std::to_string(index) + "]"; }

// A 400 for a refused booking: the message as `bookings import` words it (the element in place
// of a file line), plus the element's index and the field, for a client to point at.
HttpResponse BookingError(const Status& st) {
  const std::string& message = st.message();
  json error = {{"status", 400}, {"message", message}};
  constexpr std::string_view kElement = "bookings[";
  if (const size_t at = message.find(kElement); at != std::string::npos) {
    size_t index = 0;
    const char* begin = message.data() + at + kElement.size();
    const auto [end, ec] = std::from_chars(begin, message.data() + message.size(), index);
    if (ec == std::errc() && *end == ']') error["index"] = index;
  }
  constexpr std::string_view kField = "field '";
  if (const size_t at = message.find(kField); at != std::string::npos) {
    const size_t start = at + kField.size();
    const size_t close = message.find('\'', start);
    if (close != std::string::npos) error["field"] = message.substr(start, close - start);
  }
  return JsonResponse(400, {{"error", std::move(error)}});
}

// Parses every element on its own, so that a message names the element rather than a line of
// the body: "bookings[2]: field 'end': ...".
Result<std::vector<BookingInput>> ParseRequestBookings(const std::string& body) {
  json doc = json::parse(body, nullptr, false);
  if (doc.is_discarded()) return Status::InvalidArgument("body: not valid JSON");
  if (doc.is_object()) doc = json::array({std::move(doc)});
  if (!doc.is_array())
    return Status::InvalidArgument("body: expected a booking object or an array of them");
  if (doc.empty()) return Status::InvalidArgument("body: no bookings");
  std::vector<BookingInput> rows;
  rows.reserve(doc.size());
  for (size_t i = 0; i < doc.size(); ++i) {
    const std::string name = ElementName(i);
    if (!doc[i].is_object()) return Status::InvalidArgument(name + ": not an object");
    // The parser accepted only valid UTF-8, so `replace` never replaces: it only rules out a throw.
    Result<std::vector<BookingInput>> one = ParseBookingsJson(JsonText(doc[i], -1), name);
    if (!one.ok()) {
      // ParseBookingsJson names line 1 of the one-element text: drop it.
      std::string message = one.status().message();
      const std::string prefix = name + ":1: ";
      if (message.rfind(prefix, 0) == 0) message = name + ": " + message.substr(prefix.size());
      return Status::InvalidArgument(message);
    }
    for (BookingInput& row : *one) {
      row.line = 0;  // ImportBookings' messages then name the element
      rows.push_back(std::move(row));
    }
  }
  return rows;
}

}  // namespace

void BillingApi::AddRoutes(Router* router) {
  router->Add("POST", "/api/v1/bookings", [this](const HttpRequest& r) { return PostBookings(r); });
  router->Add("GET", "/api/v1/bookings", [this](const HttpRequest& r) { return ListBookings(r); });
  router->Add("GET", "/api/v1/billing/entries",
              [this](const HttpRequest& r) { return BillingEntries(r); });
}

HttpResponse BillingApi::PostBookings(const HttpRequest& request) {
  if (auto bad = OnlyParameters(request, {})) return *bad;
  Result<std::vector<BookingInput>> rows = ParseRequestBookings(request.body);
  if (!rows.ok()) return BookingError(rows.status().WithContext("nothing imported"));
  const int64_t now = s_.clock->WallUnixMs();
  Result<ImportReport> report = ImportBookings(s_.store, *rows, s_.booking_defaults, now);
  if (!report.ok()) {
    if (report.status().code() == Status::Code::kInvalidArgument)
      return BookingError(report.status().WithContext("nothing imported"));
    return JsonError(503, "nothing imported: " + report.status().message());
  }
  // The import is committed whatever happens below. A view that cannot read now catches up at
  // its next refresh, since the store's bookings version moved.
  if (Status st = s_.view->ReloadBookings(); !st.ok())
    spdlog::warn("http: the live view did not re-read bookings after an import: {}", st.ToString());

  // A remote booking without a link gets one; its token is shown here once.
  json bookings = json::array();
  for (const BookingInput& row : *rows) {
    const Booking& b = row.booking;
    json j = {{"order_id", b.order_id},
              {"instrument_id", b.instrument_id},
              {"remote", b.remote},
              {"share_link", nullptr}};
    if (b.remote) {
      Result<std::optional<std::string>> token = IssueShareLink(s_.store, b.order_id, false, now);
      if (!token.ok())
        return JsonError(500, "imported, but no share link was made for order '" + b.order_id +
                                  "' (make one with `instrumeter-hub bookings share " + b.order_id +
                                  "`): " + token.status().message());
      if (token->has_value()) j["share_link"] = SharePath(**token);
    }
    bookings.push_back(std::move(j));
  }
  json body = {{"inserted", report->inserted},
               {"updated", report->updated},
               {"unchanged", report->unchanged},
               {"bookings", std::move(bookings)}};
  HttpResponse response = JsonResponse(report->inserted > 0 ? 201 : 200, body);
  response.headers.emplace_back("Cache-Control", "no-store");  // it may hold share links
  return response;
}

HttpResponse BillingApi::ListBookings(const HttpRequest& request) {
  if (auto bad = OnlyParameters(request, {"instrument", "from", "to"})) return *bad;
  BookingFilter filter;
  if (auto it = request.query.find("instrument"); it != request.query.end())
    filter.instrument_id = it->second;
  bool given = false;
  if (auto bad = TimeParameter(request, "from", &filter.from_unix_ms, &given)) return *bad;
  if (auto bad = TimeParameter(request, "to", &filter.to_unix_ms, &given)) return *bad;
  if (filter.to_unix_ms <= filter.from_unix_ms) return BadParameter("to", "must be after 'from'");
  Result<std::vector<Booking>> bookings = s_.store->ListBookings(filter);
  if (!bookings.ok())
    return JsonError(503, "the database cannot be read: " + bookings.status().message());
  return JsonTextResponse(200, "{\"bookings\":" + BookingsJson(*bookings) + "}");
}

HttpResponse BillingApi::BillingEntries(const HttpRequest& request) {
  if (auto bad = OnlyParameters(request, {"after", "limit"})) return *bad;
  int64_t limit = kDefaultFeedLimit;
  if (auto it = request.query.find("limit"); it != request.query.end()) {
    const std::string& text = it->second;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), limit);
    if (ec != std::errc() || end != text.data() + text.size() || limit < 1 || limit > kMaxFeedLimit)
      return BadParameter("limit", "expected an integer from 1 to " +
                                       std::to_string(kMaxFeedLimit) + ", got '" + text + "'");
  }
  std::string after;
  if (auto it = request.query.find("after"); it != request.query.end()) after = it->second;
  Result<LedgerHead> head = s_.store->ReadLedgerHead();
  if (!head.ok()) return JsonError(503, "the ledger cannot be read: " + head.status().message());
  Result<FeedPage> page = ReadBillingFeed(s_.store, after, limit);
  if (!page.ok()) {
    if (page.status().code() == Status::Code::kInvalidArgument)
      return BadParameter("after", page.status().message());
    return JsonError(503, "the ledger cannot be read: " + page.status().message());
  }
  // A cursor past the head was never given out: refuse it rather than wait there silently.
  int64_t after_id = 0;
  std::from_chars(after.data(), after.data() + after.size(), after_id);
  if (after_id > head->entry_id)
    return BadParameter("after", "cursor '" + after + "' is past the ledger's last entry (" +
                                     std::to_string(head->entry_id) + ")");
  return JsonTextResponse(200, FeedPageJson(*page));
}

}  // namespace instrumeter::hub
