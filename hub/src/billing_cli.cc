#include "billing_cli.h"

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "hub/billing_driver.h"
#include "hub/billing_reports.h"
#include "hub/bookings.h"
#include "hub/ledger.h"
#include "hub/share_api.h"
#include "text_output.h"

namespace instrumeter::hub {
namespace {

using nlohmann::json;

constexpr char kTimeHelp[] = "ISO 8601 with an offset, or a date (midnight UTC)";

// --from and --to, both required, to after from.
std::optional<Failure> ParseRange(const std::string& from_text, const std::string& to_text,
                                  int64_t* from, int64_t* to) {
  Result<int64_t> f = ParseTimeOption("--from", from_text);
  if (!f.ok()) return Failure{kExitUsage, f.status()};
  Result<int64_t> t = ParseTimeOption("--to", to_text);
  if (!t.ok()) return Failure{kExitUsage, t.status()};
  if (*t <= *f) return Failure{kExitUsage, Status::InvalidArgument("--to must be after --from")};
  *from = *f;
  *to = *t;
  return std::nullopt;
}

// Errors in what the operator handed over are usage errors; the rest are runtime errors.
Failure FailureOf(const Status& st) {
  return {st.code() == Status::Code::kInvalidArgument || st.code() == Status::Code::kNotFound
              ? kExitUsage
              : kExitRuntime,
          st};
}

TextTable ReportTable(const PlatformReport& report, bool csv) {
  TextTable t;
  t.headers = {"group",         "customers",   "instruments",  "services",
               "machine_hours", "amount_yuan", "voucher_yuan", "disputed"};
  t.right_aligned = {false, true, true, true, true, true, true, true};
  const auto row = [&](const ReportRow& r) {
    return std::vector<std::string>{r.group,
                                    std::to_string(r.customers),
                                    std::to_string(r.instruments),
                                    std::to_string(r.services),
                                    Hours2(r.machine_ms),
                                    Yuan(r.amount_fen, !csv),
                                    Yuan(r.voucher_fen, !csv),
                                    std::to_string(r.disputed)};
  };
  for (const ReportRow& r : report.rows) t.rows.push_back(row(r));
  t.rows.push_back(row(report.total));
  return t;
}

json ReportRowJson(const ReportRow& r) {
  return {
      {"group", r.group},           {"customers", r.customers},   {"instruments", r.instruments},
      {"services", r.services},     {"sessions", r.sessions},     {"disputed", r.disputed},
      {"machine_ms", r.machine_ms}, {"amount_fen", r.amount_fen}, {"voucher_fen", r.voucher_fen}};
}

}  // namespace

BillingCommands::BillingCommands(CLI::App* app, CLI::App* instruments) {
  Args& a = args_;
  rules_ = instruments->add_subcommand(
      "rules",
      "The billing rules each instrument's new bookings get: its own overrides (marked *) over "
      "the [billing] defaults.");
  AddFormatOption(rules_, &a.format, {"table", "csv", "json"});
  AddConfigOption(rules_, &a.config_path);

  CLI::App* bookings = app->add_subcommand("bookings", "Import and list bookings (orders).");
  bookings->require_subcommand(1);
  bookings_import_ = bookings->add_subcommand(
      "import",
      "Import bookings from a .csv or .json file (docs/billing.md, \"Booking formats\"). An "
      "order id already stored is updated. All or nothing: a bad row (end before start, unknown "
      "instrument, overlap on one instrument, voucher share out of range, bad time, missing "
      "field) is named by line and field and nothing is imported.");
  bookings_import_->add_option("FILE", a.file, "the .csv or .json file")->required();
  AddConfigOption(bookings_import_, &a.config_path);
  bookings_list_ = bookings->add_subcommand(
      "list", "List bookings; csv and json print the import format, to edit and import again.");
  bookings_list_->add_option("--from", a.from,
                             std::string("booked windows ending after: ") + kTimeHelp);
  bookings_list_->add_option("--to", a.to, "... and starting before, same formats");
  bookings_list_->add_option("--instrument", a.instrument_id, "only this instrument");
  AddFormatOption(bookings_list_, &a.format, {"table", "csv", "json"});
  AddConfigOption(bookings_list_, &a.config_path);

  bookings_share_ = bookings->add_subcommand(
      "share",
      "Make a new share link (/live/<token>) for a remote booking and print it; the order's "
      "previous link stops working. The token is shown only now: the hub keeps its SHA-256.");
  bookings_share_->add_option("ORDER_ID", a.order_id, "the remote booking's order id")->required();
  bookings_share_->add_option("--base-url", a.base_url,
                              "print the link under this address, e.g. https://hub.example.org");
  AddConfigOption(bookings_share_, &a.config_path);

  bookings_unshare_ = bookings->add_subcommand(
      "unshare",
      "Withdraw a remote booking's share link: it answers 410 Gone from now on. `bookings share` "
      "makes a new one.");
  bookings_unshare_->add_option("ORDER_ID", a.order_id, "the remote booking's order id")
      ->required();
  AddConfigOption(bookings_unshare_, &a.config_path);

  verify_ = app->add_subcommand(
      "verify",
      "Run one verification pass now, as the running hub does every verify_interval_ms: "
      "settled bookings, late events, unbooked use; results are appended to the ledger.");
  verify_->add_option("--now", a.now, std::string("pretend it is this time: ") + kTimeHelp);
  AddConfigOption(verify_, &a.config_path);

  CLI::App* ledger = app->add_subcommand("ledger", "The hash-chained billing ledger.");
  ledger->require_subcommand(1);
  ledger_verify_ = ledger->add_subcommand(
      "verify",
      "Walk the chain and name the first entry that was changed, deleted, inserted or reordered "
      "(exit code 3). --anchor checks entries a consumer holds (from the feed or an export).");
  ledger_verify_->add_option("--anchor", a.anchors, "ENTRY_ID:HASH, repeatable");
  AddConfigOption(ledger_verify_, &a.config_path);
  ledger_feed_ = ledger->add_subcommand(
      "feed",
      "Print one page of the billing feed as JSON (what GET /api/v1/billing/entries returns): "
      "entries after --after, and the cursor to read on with.");
  ledger_feed_->add_option("--after", a.after, "cursor from the previous page (default: start)");
  ledger_feed_->add_option("--limit", a.limit, "entries per page, 1-1000 (default 100)");
  AddConfigOption(ledger_feed_, &a.config_path);

  CLI::App* export_cmd = app->add_subcommand("export", "Files for people.");
  export_cmd->require_subcommand(1);
  export_billing_ = export_cmd->add_subcommand(
      "billing",
      "The current result of every session booked, and every unbooked-use day, in [--from, "
      "--to): status, flags, hours, money and voucher lines, with the ledger entry and hash.");
  export_billing_->add_option("--from", a.from, std::string("range start: ") + kTimeHelp)
      ->required();
  export_billing_->add_option("--to", a.to, "range end (exclusive), same formats")->required();
  AddFormatOption(export_billing_, &a.export_format, {"csv", "json"});
  export_billing_->add_option("--output", a.output, "write to this file instead of stdout");
  AddConfigOption(export_billing_, &a.config_path);

  report_ = app->add_subcommand(
      "report",
      "The platform's figures for sessions booked in [--from, --to): customers, instruments, "
      "services (sessions with use), machine hours, amount and voucher amount per group, and a "
      "total line.");
  report_->add_option("--from", a.from, std::string("range start: ") + kTimeHelp)->required();
  report_->add_option("--to", a.to, "range end (exclusive), same formats")->required();
  report_->add_option("--by", a.by, "institution|city-pair|instrument|customer")
      ->required()
      ->check(CLI::IsMember({"institution", "city-pair", "instrument", "customer"}));
  AddFormatOption(report_, &a.format, {"table", "csv", "json"});
  AddConfigOption(report_, &a.config_path);
}

bool BillingCommands::Chosen() const {
  for (const CLI::App* c :
       {rules_, bookings_import_, bookings_list_, bookings_share_, bookings_unshare_, verify_,
        ledger_verify_, ledger_feed_, export_billing_, report_})
    if (c->parsed()) return true;
  return false;
}

std::optional<Failure> BillingCommands::Run(std::ostream& out) {
  if (rules_->parsed()) return Rules(out);
  if (bookings_import_->parsed()) return BookingsImport(out);
  if (bookings_list_->parsed()) return BookingsList(out);
  if (bookings_share_->parsed()) return BookingsShare(out);
  if (bookings_unshare_->parsed()) return BookingsUnshare(out);
  if (verify_->parsed()) return Verify(out);
  if (ledger_verify_->parsed()) return LedgerVerify(out);
  if (ledger_feed_->parsed()) return LedgerFeed(out);
  if (export_billing_->parsed()) return ExportBilling(out);
  return Report(out);
}

std::optional<Failure> BillingCommands::Rules(std::ostream& out) {
  Failure failure{};
  HubConfig config;
  Result<std::unique_ptr<Store>> store = ConfigAndStore(args_.config_path, &failure, &config);
  if (!store.ok()) return failure;
  Result<std::vector<Instrument>> instruments = (*store)->ListInstruments();
  if (!instruments.ok()) return Failure{kExitRuntime, instruments.status()};
  Result<std::vector<InstrumentRuleOverrides>> overrides = (*store)->ListRuleOverrides();
  if (!overrides.ok()) return Failure{kExitRuntime, overrides.status()};
  std::map<std::string, PartialBillingRules> own;
  for (const InstrumentRuleOverrides& o : *overrides) own[o.instrument_id] = o.rules;

  TextTable t;
  t.headers = {"instrument_id"};
  for (int f = 0; f < kRuleFieldCount; ++f)
    t.headers.emplace_back(RuleFieldName(static_cast<RuleField>(f)));
  json list = json::array();
  for (const Instrument& in : *instruments) {
    const PartialBillingRules& mine = own[in.instrument_id];
    const PartialBillingRules effective = Overlay(mine, config.billing.defaults);
    std::vector<std::string> row = {in.instrument_id};
    json rules = json::object();
    json overridden = json::array();
    for (int f = 0; f < kRuleFieldCount; ++f) {
      const auto field = static_cast<RuleField>(f);
      const std::string value = RuleText(field, effective);
      const bool is_own = !RuleText(field, mine).empty();
      row.push_back(value.empty() ? "-" : value + (is_own && args_.format == "table" ? "*" : ""));
      const std::optional<int64_t> number = RuleInteger(field, effective);
      rules[RuleFieldName(field)] = number.has_value() ? json(*number)
                                    : value.empty()    ? json(nullptr)
                                                       : json(value);
      if (is_own) overridden.push_back(RuleFieldName(field));
    }
    t.rows.push_back(std::move(row));
    list.push_back(
        {{"instrument_id", in.instrument_id}, {"rules", rules}, {"overridden", overridden}});
  }
  if (args_.format == "json") {
    out << JsonText(list, 2) << "\n";
  } else if (args_.format == "csv") {
    out << RenderCsv(t);
  } else {
    out << RenderTable(t) << "* the instrument's own; otherwise the [billing] default\n";
  }
  return std::nullopt;
}

std::optional<Failure> BillingCommands::BookingsImport(std::ostream& out) {
  Failure failure{};
  HubConfig config;
  Result<std::unique_ptr<Store>> store = ConfigAndStore(args_.config_path, &failure, &config);
  if (!store.ok()) return failure;
  Result<std::vector<BookingInput>> rows = ReadBookingsFile(args_.file);
  if (!rows.ok()) return Failure{kExitUsage, rows.status().WithContext("nothing imported")};
  SystemClock clock;
  Result<ImportReport> r =
      ImportBookings(store->get(), *rows, config.billing.defaults, clock.WallUnixMs());
  if (!r.ok()) return FailureOf(r.status().WithContext("nothing imported"));
  out << "imported " << rows->size() << " bookings (" << r->inserted << " new, " << r->updated
      << " updated, " << r->unchanged << " unchanged)\n";
  return std::nullopt;
}

std::optional<Failure> BillingCommands::BookingsList(std::ostream& out) {
  BookingFilter filter;
  filter.instrument_id = args_.instrument_id;
  if (!args_.from.empty()) {
    Result<int64_t> from = ParseTimeOption("--from", args_.from);
    if (!from.ok()) return Failure{kExitUsage, from.status()};
    filter.from_unix_ms = *from;
  }
  if (!args_.to.empty()) {
    Result<int64_t> to = ParseTimeOption("--to", args_.to);
    if (!to.ok()) return Failure{kExitUsage, to.status()};
    filter.to_unix_ms = *to;
  }
  Failure failure{};
  Result<std::unique_ptr<Store>> store = ConfigAndStore(args_.config_path, &failure);
  if (!store.ok()) return failure;
  Result<std::vector<Booking>> bookings = (*store)->ListBookings(filter);
  if (!bookings.ok()) return Failure{kExitRuntime, bookings.status()};
  if (args_.format == "csv") {
    out << BookingsCsv(*bookings);
    return std::nullopt;
  }
  if (args_.format == "json") {
    out << BookingsJson(*bookings);
    return std::nullopt;
  }
  TextTable t;
  t.headers = {"order_id", "instrument_id",     "customer", "customer_city", "start",   "end",
               "remote",   "rate_fen_per_hour", "voucher",  "revision",      "verified"};
  t.right_aligned = {false, false, false, false, false, false, false, true, false, true, false};
  for (const Booking& b : *bookings)
    t.rows.push_back({b.order_id, b.instrument_id, b.customer.organisation,
                      b.customer.city + ", " + b.customer.region, FormatUtc(b.start_unix_ms),
                      FormatUtc(b.end_unix_ms), b.remote ? "remote" : "on site",
                      std::to_string(b.rules.rate_fen_per_hour),
                      b.voucher.has_value() ? b.voucher->voucher_id + " " +
                                                  std::to_string(b.voucher->covered_percent) + "%"
                                            : "-",
                      std::to_string(b.revision),
                      b.ledger_entry_id.has_value() ? "entry " + std::to_string(*b.ledger_entry_id)
                                                    : "pending"});
  out << RenderTable(t);
  return std::nullopt;
}

std::optional<Failure> BillingCommands::BookingsShare(std::ostream& out) {
  Failure failure{};
  Result<std::unique_ptr<Store>> store = ConfigAndStore(args_.config_path, &failure);
  if (!store.ok()) return failure;
  Result<std::optional<std::string>> token =
      IssueShareLink(store->get(), args_.order_id, true, SystemClock().WallUnixMs());
  if (!token.ok())
    return Failure{token.status().code() == Status::Code::kNotFound ||
                           token.status().code() == Status::Code::kFailedPrecondition
                       ? kExitUsage
                       : kExitRuntime,
                   token.status()};
  std::string base = args_.base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  out << base << SharePath(**token) << "\n";
  return std::nullopt;
}

std::optional<Failure> BillingCommands::BookingsUnshare(std::ostream& out) {
  Failure failure{};
  Result<std::unique_ptr<Store>> store = ConfigAndStore(args_.config_path, &failure);
  if (!store.ok()) return failure;
  Result<std::optional<Booking>> booking = (*store)->GetBooking(args_.order_id);
  if (!booking.ok()) return Failure{kExitRuntime, booking.status()};
  if (!booking->has_value())
    return Failure{kExitUsage,
                   Status::NotFound("no booking with order id '" + args_.order_id + "'")};
  Result<bool> revoked = (*store)->RevokeShareLink(args_.order_id, SystemClock().WallUnixMs());
  if (!revoked.ok()) return Failure{kExitRuntime, revoked.status()};
  out << (*revoked ? "withdrew the share link of order '" + args_.order_id + "'"
                   : "order '" + args_.order_id + "' has no active share link: nothing to do")
      << "\n";
  return std::nullopt;
}

std::optional<Failure> BillingCommands::Verify(std::ostream& out) {
  int64_t now = SystemClock().WallUnixMs();
  if (!args_.now.empty()) {
    Result<int64_t> given = ParseTimeOption("--now", args_.now);
    if (!given.ok()) return Failure{kExitUsage, given.status()};
    now = *given;
  }
  Failure failure{};
  HubConfig config;
  Result<std::unique_ptr<Store>> store = ConfigAndStore(args_.config_path, &failure, &config);
  if (!store.ok()) return failure;
  BillingDriver driver(store->get(), config.billing);
  Result<PassReport> r = driver.RunOnce(now);
  if (!r.ok()) return Failure{kExitRuntime, r.status()};
  out << "measured " << r->sessions_measured << " sessions and " << r->days_measured << " days on "
      << r->instruments << " instruments; appended " << r->entries_appended << " entries and "
      << r->amendments << " amendments";
  if (r->sessions_awaiting_signature > 0)
    out << "; " << r->sessions_awaiting_signature
        << " sessions wait for their agent's signature (signature_wait_seconds)";
  out << "\n";
  return std::nullopt;
}

std::optional<Failure> BillingCommands::LedgerVerify(std::ostream& out) {
  std::vector<LedgerAnchor> anchors;
  for (const std::string& text : args_.anchors) {
    Result<LedgerAnchor> a = ParseLedgerAnchor(text);
    if (!a.ok()) return Failure{kExitUsage, a.status().WithContext("--anchor")};
    anchors.push_back(*a);
  }
  Failure failure{};
  Result<std::unique_ptr<Store>> store = ConfigAndStore(args_.config_path, &failure);
  if (!store.ok()) return failure;
  Result<LedgerCheck> check = VerifyLedger(store->get(), anchors);
  if (!check.ok()) return Failure{kExitRuntime, check.status()};
  if (check->broken.has_value())
    return Failure{kExitLedgerBroken, Status::Corruption("ledger broken at entry " +
                                                         std::to_string(check->broken->entry_id) +
                                                         ": " + check->broken->reason)};
  out << "ledger intact: " << check->entries << " entries; head entry " << check->last.entry_id
      << " hash " << check->last.hash << "\n";
  return std::nullopt;
}

std::optional<Failure> BillingCommands::LedgerFeed(std::ostream& out) {
  Failure failure{};
  Result<std::unique_ptr<Store>> store = ConfigAndStore(args_.config_path, &failure);
  if (!store.ok()) return failure;
  Result<FeedPage> page = ReadBillingFeed(store->get(), args_.after, args_.limit);
  if (!page.ok()) return FailureOf(page.status());
  out << FeedPageJson(*page) << "\n";
  return std::nullopt;
}

std::optional<Failure> BillingCommands::ExportBilling(std::ostream& out) {
  int64_t from = 0;
  int64_t to = 0;
  if (std::optional<Failure> bad = ParseRange(args_.from, args_.to, &from, &to)) return bad;
  Failure failure{};
  HubConfig config;
  Result<std::unique_ptr<Store>> store = ConfigAndStore(args_.config_path, &failure, &config);
  if (!store.ok()) return failure;
  Result<std::vector<BillingRecord>> records = ReadBillingRecords(store->get(), from, to);
  if (!records.ok()) return Failure{kExitRuntime, records.status()};
  const std::string text = args_.export_format == "json"
                               ? BillingExportJson(*records, from, to)
                               : BillingExportCsv(*records, config.billing.day_utc_offset_minutes);
  if (args_.output.empty()) {
    out << text;
    return std::nullopt;
  }
  std::ofstream file(args_.output, std::ios::binary | std::ios::trunc);
  file << text;
  file.close();
  if (!file) return Failure{kExitRuntime, Status::IoError("cannot write " + args_.output)};
  out << "wrote " << records->size() << " records to " << args_.output << "\n";
  return std::nullopt;
}

std::optional<Failure> BillingCommands::Report(std::ostream& out) {
  int64_t from = 0;
  int64_t to = 0;
  if (std::optional<Failure> bad = ParseRange(args_.from, args_.to, &from, &to)) return bad;
  ReportBy by = ReportBy::kInstitution;
  ParseReportBy(args_.by, &by);  // CLI11 checked the name
  Failure failure{};
  Result<std::unique_ptr<Store>> store = ConfigAndStore(args_.config_path, &failure);
  if (!store.ok()) return failure;
  Result<std::vector<BillingRecord>> records = ReadBillingRecords(store->get(), from, to);
  if (!records.ok()) return Failure{kExitRuntime, records.status()};
  const PlatformReport report = BuildReport(*records, by);
  if (args_.format == "json") {
    json rows = json::array();
    for (const ReportRow& r : report.rows) rows.push_back(ReportRowJson(r));
    json doc = {{"from", FormatUtc(from)},
                {"to", FormatUtc(to)},
                {"by", args_.by},
                {"rows", rows},
                {"total", ReportRowJson(report.total)}};
    out << JsonText(doc, 2) << "\n";
  } else if (args_.format == "csv") {
    out << RenderCsv(ReportTable(report, true));
  } else {
    out << RenderTable(ReportTable(report, false));
  }
  return std::nullopt;
}

}  // namespace instrumeter::hub
