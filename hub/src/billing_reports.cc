#include "hub/billing_reports.h"

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/clock.h"
#include "text_output.h"

namespace instrumeter::hub {
namespace {

using nlohmann::json;

// Time in the local time of `offset_minutes`, to the second: 2026-03-02T09:00:00+08:00.
std::string FormatLocal(int64_t unix_ms, int64_t offset_minutes) {
  const std::string local = FormatUtc(unix_ms + offset_minutes * 60'000).substr(0, 19);
  if (offset_minutes == 0) return local + "Z";
  const int64_t a = offset_minutes < 0 ? -offset_minutes : offset_minutes;
  char zone[8];
  std::snprintf(zone, sizeof zone, "%c%02d:%02d", offset_minutes < 0 ? '-' : '+',
                static_cast<int>(a / 60), static_cast<int>(a % 60));
  return local + zone;
}

// ppm as a percentage with two decimals, rounded down: 983333 -> "98.33".
std::string Percent2(int64_t ppm) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld.%02lld", static_cast<long long>(ppm / 10'000),
                static_cast<long long>(ppm % 10'000 / 100));
  return buf;
}

Status ParseRecord(const LedgerEntry& entry, BillingRecord* r) {
  const json c = json::parse(entry.content);
  r->subject_kind = c.at("subject_kind").get<std::string>();
  r->entry = entry;
  const json& res = c.at("result");
  const json& instrument = res.at("instrument");
  r->instrument_name = instrument.at("name").get<std::string>();
  r->institution = instrument.at("institution").get<std::string>();
  r->instrument_city = instrument.at("city").get<std::string>();
  if (r->subject_kind == "unbooked") {
    r->instrument_id = res.at("instrument_id").get<std::string>();
    r->day = res.at("day").get<std::string>();
    r->start_unix_ms = res.at("day_span").at(0).get<int64_t>();
    r->end_unix_ms = res.at("day_span").at(1).get<int64_t>();
    r->in_use_ms = res.at("in_use_ms").get<int64_t>();
    return Status::Ok();
  }
  const json& b = res.at("booking");
  r->order_id = b.at("order_id").get<std::string>();
  r->instrument_id = b.at("instrument_id").get<std::string>();
  r->customer = {b.at("customer").at("organisation").get<std::string>(),
                 b.at("customer").at("city").get<std::string>(),
                 b.at("customer").at("region").get<std::string>()};
  r->start_unix_ms = b.at("start_unix_ms").get<int64_t>();
  r->end_unix_ms = b.at("end_unix_ms").get<int64_t>();
  r->remote = b.at("remote").get<bool>();
  r->operator_name = b.at("operator").get<std::string>();
  r->status = res.at("status").get<std::string>();
  r->flags = res.at("flags").get<std::vector<std::string>>();
  r->coverage_ppm = res.at("telemetry").at("coverage_ppm").get<int64_t>();
  r->in_use_ms = res.at("telemetry").at("in_use_ms").get<int64_t>();
  r->rate_fen_per_hour = res.at("rules").at("rate_fen_per_hour").get<int64_t>();
  if (res.contains("voucher")) {
    const json& v = res.at("voucher");
    Voucher voucher;
    voucher.voucher_id = v.at("voucher_id").get<std::string>();
    voucher.issuing_region = v.at("issuing_region").get<std::string>();
    voucher.covered_percent = v.at("covered_percent").get<int64_t>();
    voucher.cap_fen = v.at("cap_fen").get<int64_t>();
    ParseRedemption(v.at("redemption").get<std::string>(), &voucher.redemption);
    r->voucher = voucher;
  }
  const json& ch = res.at("charges");
  r->charges = {ch.at("billable_seconds").get<int64_t>(),
                ch.at("amount_fen").get<int64_t>(),
                ch.at("voucher_fen").get<int64_t>(),
                ch.at("customer_share_fen").get<int64_t>(),
                ch.at("customer_pays_now_fen").get<int64_t>(),
                ch.at("provider_redeems_fen").get<int64_t>(),
                ch.at("customer_reimbursed_fen").get<int64_t>()};
  return Status::Ok();
}

std::string GroupOf(const BillingRecord& r, ReportBy by) {
  switch (by) {
    case ReportBy::kInstitution:
      return r.institution;
    case ReportBy::kCityPair:
      return r.customer.city + " -> " + r.instrument_city;
    case ReportBy::kInstrument:
      return r.instrument_id;
    case ReportBy::kCustomer:
      break;
  }
  return r.customer.organisation;
}

}  // namespace

std::string Yuan(int64_t fen, bool with_separators) {
  const bool negative = fen < 0;
  const uint64_t a = negative ? 0 - static_cast<uint64_t>(fen) : static_cast<uint64_t>(fen);
  std::string whole = std::to_string(a / 100);
  if (with_separators)
    for (int i = static_cast<int>(whole.size()) - 3; i > 0; i -= 3)
      whole.insert(static_cast<size_t>(i), ",");
  char cents[4];
  std::snprintf(cents, sizeof cents, "%02d", static_cast<int>(a % 100));
  return (negative ? "-" : "") + whole + "." + cents;
}

std::string Hours2(int64_t ms) {
  const int64_t hundredths = (ms * 100 + 1'800'000) / 3'600'000;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld.%02lld", static_cast<long long>(hundredths / 100),
                static_cast<long long>(hundredths % 100));
  return buf;
}

Result<std::vector<BillingRecord>> ReadBillingRecords(Store* store, int64_t from_unix_ms,
                                                      int64_t to_unix_ms) {
  Result<std::vector<LedgerEntry>> entries =
      store->ReadLatestLedgerEntries(from_unix_ms, to_unix_ms);
  if (!entries.ok()) return entries.status();
  std::vector<BillingRecord> out;
  out.reserve(entries->size());
  for (const LedgerEntry& e : *entries) {
    BillingRecord r;
    try {
      INSTRUMETER_RETURN_IF_ERROR(ParseRecord(e, &r));
    } catch (const json::exception& ex) {
      return Status::Corruption(
          "ledger entry " + std::to_string(e.entry_id) +
          " cannot be read (run `instrumeter-hub ledger verify`): " + ex.what());
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::string BillingExportCsv(const std::vector<BillingRecord>& records,
                             int64_t utc_offset_minutes) {
  TextTable t;
  t.headers = {"kind",
               "entry_id",
               "entry",
               "hash",
               "order_id",
               "instrument_id",
               "instrument",
               "institution",
               "instrument_city",
               "customer_organisation",
               "customer_city",
               "customer_region",
               "start",
               "end",
               "remote",
               "operator",
               "status",
               "flags",
               "coverage_percent",
               "in_use_hours",
               "billable_seconds",
               "rate_yuan_per_hour",
               "amount_yuan",
               "voucher_id",
               "voucher_issuing_region",
               "voucher_covered_percent",
               "voucher_redemption",
               "voucher_yuan",
               "customer_share_yuan",
               "customer_pays_now_yuan",
               "provider_redeems_yuan",
               "customer_reimbursed_yuan"};
  Charges total;
  int64_t total_in_use_ms = 0;
  for (const BillingRecord& r : records) {
    const bool session = r.subject_kind == "session";
    std::string flags;
    for (const std::string& f : r.flags) flags += (flags.empty() ? "" : ";") + f;
    const Charges& c = r.charges;
    const auto money = [&](int64_t fen) { return session ? Yuan(fen, false) : std::string(); };
    t.rows.push_back({r.subject_kind,
                      std::to_string(r.entry.entry_id),
                      r.entry.kind,
                      r.entry.hash,
                      r.order_id,
                      r.instrument_id,
                      r.instrument_name,
                      r.institution,
                      r.instrument_city,
                      r.customer.organisation,
                      r.customer.city,
                      r.customer.region,
                      FormatLocal(r.start_unix_ms, utc_offset_minutes),
                      FormatLocal(r.end_unix_ms, utc_offset_minutes),
                      session ? (r.remote ? "true" : "false") : "",
                      r.operator_name,
                      r.status,
                      flags,
                      session ? Percent2(r.coverage_ppm) : "",
                      Hours2(r.in_use_ms),
                      session ? std::to_string(c.billable_seconds) : "",
                      money(r.rate_fen_per_hour),
                      money(c.amount_fen),
                      r.voucher.has_value() ? r.voucher->voucher_id : "",
                      r.voucher.has_value() ? r.voucher->issuing_region : "",
                      r.voucher.has_value() ? std::to_string(r.voucher->covered_percent) : "",
                      r.voucher.has_value() ? RedemptionName(r.voucher->redemption) : "",
                      money(c.voucher_fen),
                      money(c.customer_share_fen),
                      money(c.customer_pays_now_fen),
                      money(c.provider_redeems_fen),
                      money(c.customer_reimbursed_fen)});
    if (!session) continue;
    total_in_use_ms += r.in_use_ms;
    total.billable_seconds += c.billable_seconds;
    total.amount_fen += c.amount_fen;
    total.voucher_fen += c.voucher_fen;
    total.customer_share_fen += c.customer_share_fen;
    total.customer_pays_now_fen += c.customer_pays_now_fen;
    total.provider_redeems_fen += c.provider_redeems_fen;
    total.customer_reimbursed_fen += c.customer_reimbursed_fen;
  }
  std::vector<std::string> last(t.headers.size());
  last[0] = "total";
  last[19] = Hours2(total_in_use_ms);
  last[20] = std::to_string(total.billable_seconds);
  last[22] = Yuan(total.amount_fen, false);
  last[27] = Yuan(total.voucher_fen, false);
  last[28] = Yuan(total.customer_share_fen, false);
  last[29] = Yuan(total.customer_pays_now_fen, false);
  last[30] = Yuan(total.provider_redeems_fen, false);
  last[31] = Yuan(total.customer_reimbursed_fen, false);
  t.rows.push_back(std::move(last));
  return RenderCsv(t);
}

std::string BillingExportJson(const std::vector<BillingRecord>& records, int64_t from_unix_ms,
                              int64_t to_unix_ms) {
  json list = json::array();
  json totals = {{"sessions", 0},   {"services", 0},    {"in_use_ms", 0},
                 {"amount_fen", 0}, {"voucher_fen", 0}, {"customer_share_fen", 0},
                 {"unbooked_ms", 0}};
  for (const BillingRecord& r : records) {
    json c = json::parse(r.entry.content);
    c["hash"] = r.entry.hash;
    list.push_back(std::move(c));
    if (r.subject_kind != "session") {
      totals["unbooked_ms"] = totals["unbooked_ms"].get<int64_t>() + r.in_use_ms;
      continue;
    }
    const auto add = [&](const char* key, int64_t v) {
      totals[key] = totals[key].get<int64_t>() + v;
    };
    add("sessions", 1);
    add("services", r.in_use_ms > 0 ? 1 : 0);
    add("in_use_ms", r.in_use_ms);
    add("amount_fen", r.charges.amount_fen);
    add("voucher_fen", r.charges.voucher_fen);
    add("customer_share_fen", r.charges.customer_share_fen);
  }
  json doc = {{"from", FormatUtc(from_unix_ms)},
              {"to", FormatUtc(to_unix_ms)},
              {"records", std::move(list)},
              {"totals", std::move(totals)}};
  return JsonText(doc, 2) + "\n";
}

bool ParseReportBy(const std::string& name, ReportBy* by) {
  if (name == "institution") {
    *by = ReportBy::kInstitution;
  } else if (name == "city-pair") {
    *by = ReportBy::kCityPair;
  } else if (name == "instrument") {
    *by = ReportBy::kInstrument;
  } else if (name == "customer") {
    *by = ReportBy::kCustomer;
  } else {
    return false;
  }
  return true;
}

PlatformReport BuildReport(const std::vector<BillingRecord>& records, ReportBy by) {
  struct Group {
    ReportRow row;
    std::set<std::string> customers;
    std::set<std::string> instruments;
  };
  std::map<std::string, Group> groups;
  Group all;
  for (const BillingRecord& r : records) {
    if (r.subject_kind != "session") continue;
    for (Group* g : {&groups[GroupOf(r, by)], &all}) {
      ReportRow& row = g->row;
      ++row.sessions;
      if (r.status == "DISPUTED") ++row.disputed;
      row.amount_fen += r.charges.amount_fen;
      row.voucher_fen += r.charges.voucher_fen;
      if (r.in_use_ms == 0) continue;
      ++row.services;
      row.machine_ms += r.in_use_ms;
      g->customers.insert(r.customer.organisation);
      g->instruments.insert(r.instrument_id);
    }
  }
  PlatformReport report;
  const auto finish = [](const std::string& name, Group& g) {
    g.row.group = name;
    g.row.customers = static_cast<int64_t>(g.customers.size());
    g.row.instruments = static_cast<int64_t>(g.instruments.size());
    return g.row;
  };
  for (auto& [name, g] : groups) report.rows.push_back(finish(name, g));
  report.total = finish("total", all);
  return report;
}

}  // namespace instrumeter::hub
