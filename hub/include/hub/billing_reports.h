// What billing reads back out of the ledger for people: the billing export (a file a clerk opens)
// and the platform report (services, machine hours, amounts, vouchers by group), for
// `instrumeter-hub export billing` and `instrumeter-hub report`. Both read only the ledger: the
// figures a platform publishes are the ones an agency can recompute from the chain.
//
// Read-only; safe while the hub writes. Thread: the Store's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "hub/billing_records.h"
#include "hub/billing_rules.h"
#include "hub/store.h"

namespace instrumeter::hub {

// The current result about one subject: its latest ledger entry.
struct BillingRecord {
  std::string subject_kind;  // session | unbooked
  LedgerEntry entry;         // the latest entry (kind session, unbooked or amendment)
  // Sessions.
  std::string order_id;
  Customer customer;
  int64_t start_unix_ms = 0;  // unbooked: the local day's start
  int64_t end_unix_ms = 0;    // unbooked: the local day's end
  bool remote = false;
  std::string operator_name;
  std::string status;
  std::vector<std::string> flags;
  int64_t coverage_ppm = 0;
  int64_t rate_fen_per_hour = 0;
  std::optional<Voucher> voucher;
  Charges charges;
  // Both.
  std::string instrument_id;
  std::string instrument_name;
  std::string institution;
  std::string instrument_city;
  int64_t in_use_ms = 0;  // sessions: in the attribution window; unbooked: outside every one
  std::string day;        // unbooked: YYYY-MM-DD
};

// The latest entry of every subject whose time (a session's booked start, an unbooked day's
// start) is in [from, to), in time order.
Result<std::vector<BillingRecord>> ReadBillingRecords(Store* store, int64_t from_unix_ms,
                                                      int64_t to_unix_ms);

// One line per record; times in the local time of `utc_offset_minutes`, money in yuan with two
// decimals (exact: fen / 100), hours with two decimals (rounded half up); a total line last.
std::string BillingExportCsv(const std::vector<BillingRecord>& records, int64_t utc_offset_minutes);
// {"from", "to", "records": [each record's ledger content, with "entry_id" and "hash"],
// "totals": {...}}; money in integer fen.
std::string BillingExportJson(const std::vector<BillingRecord>& records, int64_t from_unix_ms,
                              int64_t to_unix_ms);

enum class ReportBy { kInstitution, kCityPair, kInstrument, kCustomer };
// "institution", "city-pair", "instrument", "customer".
bool ParseReportBy(const std::string& name, ReportBy* by);

struct ReportRow {
  std::string group;        // e.g. "Fudan", "Suzhou -> Shanghai", "nmr-1", "Suzhou Bio Co"
  int64_t customers = 0;    // distinct customer organisations served
  int64_t instruments = 0;  // distinct instruments used
  int64_t services = 0;     // sessions with some use measured
  int64_t sessions = 0;     // every session, no-shows included
  int64_t disputed = 0;     // sessions a human still has to look at
  int64_t machine_ms = 0;   // in-use time of the sessions
  int64_t amount_fen = 0;
  int64_t voucher_fen = 0;
};

struct PlatformReport {
  std::vector<ReportRow> rows;  // by group name
  ReportRow total;              // "total"; customers and instruments counted once overall
};

PlatformReport BuildReport(const std::vector<BillingRecord>& records, ReportBy by);

// "1,237.50" (with_separators) or "1237.50": fen as yuan, exact.
std::string Yuan(int64_t fen, bool with_separators);
// Milliseconds as hours with two decimals, rounded half up: "2.87".
std::string Hours2(int64_t ms);

}  // namespace instrumeter::hub
