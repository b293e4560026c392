// Pieces the hub's HTTP handlers share (live_api.cc, billing_api.cc, share_api.cc): parameter
// checks, time and duration fields, and a clipped timeline. Private to the hub.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "common/status.h"
#include "hub/http.h"
#include "hub/store.h"

namespace instrumeter::hub {

// Seconds rounded to the millisecond.
double Round3(double seconds);

// `name` as ISO 8601 and `name`_unix_ms; both null for 0 (never).
void PutTime(nlohmann::json* j, const std::string& name, int64_t unix_ms);

// Refuses query parameters a handler does not know: a typo must not silently widen a filter.
std::optional<HttpResponse> OnlyParameters(const HttpRequest& request,
                                           const std::set<std::string>& known);

// Parses an optional ISO 8601 time parameter; `*present` says whether it was given.
std::optional<HttpResponse> TimeParameter(const HttpRequest& request, const std::string& name,
                                          int64_t* unix_ms, bool* present);

// An instrument's state intervals and gaps within [from, to), clipped to it, with their totals.
struct ClippedTimeline {
  nlohmann::json intervals = nlohmann::json::array();
  double powered_seconds = 0;
  double in_use_seconds = 0;
  double gap_seconds = 0;
};
// Reads them from `store`; `live` (the instrument's state now) marks the open run's interval.
// Thread: the Store's.
Result<ClippedTimeline> ReadClippedTimeline(Store* store, const std::string& instrument_id,
                                            int64_t from_unix_ms, int64_t to_unix_ms,
                                            const LiveState& live);

}  // namespace instrumeter::hub
