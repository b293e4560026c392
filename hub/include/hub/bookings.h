// Bookings in: `instrumeter-hub bookings import FILE.csv|FILE.json` now, `POST /api/v1/bookings`
// later (a route hands the request body to ParseBookingsJson and the rows to ImportBookings).
// Formats in docs/billing.md, "Booking formats".
//
// Two steps, so that nothing is half imported: parsing checks every row on its own (fields,
// types, times, voucher share), then ImportBookings checks them against the store (registered
// instrument, a rate from somewhere, no overlap on an instrument) and writes all of them in one
// transaction, or none. Every error names the source, the line and the field.
//
// Thread: the caller's; the Store as in store.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "hub/billing_records.h"
#include "hub/billing_rules.h"
#include "hub/store.h"

namespace instrumeter::hub {

// One parsed row: the booking with its rules not yet resolved, and where it came from.
struct BookingInput {
  std::string source;  // file name, or e.g. "request" for an HTTP body
  int line = 0;  // where the row (CSV record, JSON element) starts; 0: not a text file (messages
                 // then name `source` alone, e.g. "bookings[2]" for an HTTP request's element)
  bool json = false;  // fields are named as JSON paths (customer.city) rather than CSV columns
  Booking booking;    // rules unset (see ImportBookings)
  std::optional<int64_t> rate_fen_per_hour;  // the booking's own rate, if it has one
};

// CSV with a header; the columns in any order: order_id, instrument_id, customer_organisation,
// customer_city, customer_region, start, end, remote (required) and operator, rate_fen_per_hour,
// voucher_id, voucher_issuing_region, voucher_covered_percent, voucher_cap_fen,
// voucher_redemption (optional columns; an empty cell is "not given").
Result<std::vector<BookingInput>> ParseBookingsCsv(std::string_view text,
                                                   const std::string& source);
// One booking object or an array of them: {"order_id", "instrument_id", "customer":
// {"organisation", "city", "region"}, "start", "end", "remote": bool, "operator",
// "rate_fen_per_hour": int, "voucher": {"voucher_id", "issuing_region", "covered_percent": int,
// "cap_fen": int, "redemption": "provider"|"reimburse"}}.
Result<std::vector<BookingInput>> ParseBookingsJson(std::string_view text,
                                                    const std::string& source);
// By extension, .csv or .json.
Result<std::vector<BookingInput>> ReadBookingsFile(const std::string& path);

struct ImportReport {
  size_t inserted = 0;
  size_t updated = 0;    // an order id already stored, with changed terms
  size_t unchanged = 0;  // sent again with the same terms
};

// Resolves each booking's rules (its own rate, else its instrument's overrides, else `defaults`,
// field by field) and writes all rows in one transaction. Refused, with nothing written:
// an order id twice in `rows`, an unregistered instrument, no rate anywhere, a booking that
// overlaps another on its instrument (stored or in `rows`). A stored order whose terms change is
// updated; if it was verified already, the next verification pass amends its ledger entry.
Result<ImportReport> ImportBookings(Store* store, const std::vector<BookingInput>& rows,
                                    const PartialBillingRules& defaults, int64_t now_unix_ms);

// The bookings as an import file of the same format, so a listing can be edited and imported
// again (the resolved rate is written out; the other rules are not import fields).
std::string BookingsCsv(const std::vector<Booking>& bookings);
std::string BookingsJson(const std::vector<Booking>& bookings);

}  // namespace instrumeter::hub
