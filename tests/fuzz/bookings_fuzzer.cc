// libFuzzer harness: booking import (CSV and JSON, as `bookings import` and POST /api/v1/bookings
// read them). The first byte picks the format. Anything must end in bookings that keep the
// import's promises (end after start, a voucher share in 0..100 and a cap in range) or in an
// error naming the source, never in a crash or an escaped exception.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "hub/bookings.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool json = (data[0] & 1) != 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::string source = json ? "fuzz.json" : "fuzz.csv";
  auto rows = json ? instrumeter::hub::ParseBookingsJson(text, source)
                   : instrumeter::hub::ParseBookingsCsv(text, source);
  if (!rows.ok()) {
    if (rows.status().message().find(source) == std::string::npos) std::abort();
    return 0;
  }
  for (const instrumeter::hub::BookingInput& row : *rows) {
    const instrumeter::hub::Booking& b = row.booking;
    if (b.order_id.empty() || b.instrument_id.empty() || b.end_unix_ms <= b.start_unix_ms)
      std::abort();
    if (b.voucher.has_value() &&
        (b.voucher->covered_percent < 0 || b.voucher->covered_percent > 100 ||
         b.voucher->cap_fen < 0 || b.voucher->cap_fen > instrumeter::hub::kMaxCapFen))
      std::abort();
  }
  return 0;
}
