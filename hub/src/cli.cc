#include "hub/cli.h"

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "billing_cli.h"
#include "cli_support.h"
#include "common/clock.h"
#include "hub/hub_config.h"
#include "hub/hub_runner.h"
#include "hub/instrument_import.h"
#include "hub/reports.h"
#include "hub/sqlite_store.h"
#include "protocol/topics.h"
#include "security_cli.h"
#include "text_output.h"

namespace instrumeter::hub {
namespace {

// Arguments of every subcommand, filled by CLI11.
struct Args {
  std::string config_path;
  std::string format = "table";
  Instrument instrument;
  std::string import_path;
  std::string from;
  std::string to;
  std::string instrument_id;
};

std::string Seconds3(double seconds) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", seconds);
  return buf;
}

double Round3(double seconds) { return std::round(seconds * 1000.0) / 1000.0; }

std::string TimeOrDash(int64_t unix_ms) { return unix_ms == 0 ? "-" : FormatUtc(unix_ms); }

std::string OnlineText(const std::optional<bool>& online) {
  if (!online.has_value()) return "-";
  return *online ? "online" : "offline";
}

std::optional<Failure> CmdRun(const Args& args) {
  Result<HubConfig> config = LoadConfig(args.config_path);
  if (!config.ok()) return Failure{kExitUsage, config.status()};
  Status st = RunHub(*config);
  // A broker URL Paho refuses is a configuration mistake, not a runtime failure.
  if (!st.ok())
    return Failure{st.code() == Status::Code::kInvalidArgument ? kExitUsage : kExitRuntime, st};
  return std::nullopt;
}

std::optional<Failure> CmdInstrumentsAdd(const Args& args, std::ostream& out) {
  Status valid = protocol::ValidateDeviceId(args.instrument.instrument_id);
  if (!valid.ok()) return Failure{kExitUsage, valid.WithContext("--id")};
  Failure failure{};
  Result<std::unique_ptr<Store>> store = ConfigAndStore(args.config_path, &failure);
  if (!store.ok()) return failure;
  SystemClock clock;
  Status st = (*store)->AddInstrument(args.instrument, clock.WallUnixMs());
  if (!st.ok()) {
    if (st.code() == Status::Code::kAlreadyExists)
      st = st.WithContext("not added (use `instruments import` to update an instrument)");
    return Failure{kExitRuntime, st};
  }
  out << "registered instrument " << args.instrument.instrument_id << "\n";
  return std::nullopt;
}

TextTable InstrumentsTable(const std::vector<Instrument>& instruments, bool with_created) {
  TextTable t;
  t.headers = {"instrument_id", "name", "institution", "site", "city", "region"};
  if (with_created) t.headers.push_back("registered");
  for (const Instrument& in : instruments) {
    std::vector<std::string> row = {in.instrument_id, in.name, in.institution,
                                    in.site,          in.city, in.region};
    if (with_created) row.push_back(FormatUtc(in.created_unix_ms));
    t.rows.push_back(std::move(row));
  }
  return t;
}

std::optional<Failure> CmdInstrumentsList(const Args& args, std::ostream& out) {
  Failure failure{};
  Result<std::unique_ptr<Store>> store = ConfigAndStore(args.config_path, &failure);
  if (!store.ok()) return failure;
  Result<std::vector<Instrument>> instruments = (*store)->ListInstruments();
  if (!instruments.ok()) return Failure{kExitRuntime, instruments.status()};
  // CSV and JSON carry exactly the import fields, so a listing can be edited and re-imported.
  if (args.format == "json") {
    nlohmann::json doc = nlohmann::json::array();
    for (const Instrument& in : *instruments)
      doc.push_back({{"instrument_id", in.instrument_id},
                     {"name", in.name},
                     {"institution", in.institution},
                     {"site", in.site},
                     {"city", in.city},
                     {"region", in.region}});
    out << JsonText(doc, 2) << "\n";
  } else if (args.format == "csv") {
    out << RenderCsv(InstrumentsTable(*instruments, false));
  } else {
    out << RenderTable(InstrumentsTable(*instruments, true));
  }
  return std::nullopt;
}

std::optional<Failure> CmdInstrumentsImport(const Args& args, std::ostream& out) {
  Failure failure{};
  Result<std::unique_ptr<Store>> store = ConfigAndStore(args.config_path, &failure);
  if (!store.ok()) return failure;
  std::vector<RuleOverridesUpdate> rules;
  Result<std::vector<Instrument>> rows = ReadInstrumentsFile(args.import_path, &rules);
  if (!rows.ok()) return Failure{kExitUsage, rows.status().WithContext("nothing imported")};
  Result<std::vector<Instrument>> existing = (*store)->ListInstruments();
  if (!existing.ok()) return Failure{kExitRuntime, existing.status()};
  std::set<std::string> known;
  for (const Instrument& in : *existing) known.insert(in.instrument_id);
  size_t updated = 0;
  for (const Instrument& in : *rows) updated += known.count(in.instrument_id);
  SystemClock clock;
  Status st = (*store)->PutInstrumentsAndRules(*rows, rules, clock.WallUnixMs());
  if (!st.ok()) return Failure{kExitRuntime, st.WithContext("nothing imported")};
  out << "imported " << rows->size() << " instruments (" << rows->size() - updated << " new, "
      << updated << " updated)\n";
  return std::nullopt;
}

std::optional<Failure> CmdHours(const Args& args, std::ostream& out) {
  Result<int64_t> from_ms = ParseTimeOption("--from", args.from);
  if (!from_ms.ok()) return Failure{kExitUsage, from_ms.status()};
  Result<int64_t> to_ms = ParseTimeOption("--to", args.to);
  if (!to_ms.ok()) return Failure{kExitUsage, to_ms.status()};
  const int64_t from = *from_ms;
  const int64_t to = *to_ms;
  if (to <= from) return Failure{kExitUsage, Status::InvalidArgument("--to must be after --from")};
  Failure failure{};
  Result<std::unique_ptr<Store>> store = ConfigAndStore(args.config_path, &failure);
  if (!store.ok()) return failure;
  Result<std::vector<HoursRow>> rows = ComputeHours(store->get(), from, to, args.instrument_id);
  if (!rows.ok()) {
    const int code = rows.status().code() == Status::Code::kNotFound ? kExitUsage : kExitRuntime;
    return Failure{code, rows.status()};
  }
  if (args.format == "json") {
    nlohmann::json list = nlohmann::json::array();
    for (const HoursRow& r : *rows)
      list.push_back({{"instrument_id", r.instrument_id},
                      {"name", r.name},
                      {"powered_seconds", Round3(r.powered_seconds)},
                      {"in_use_seconds", Round3(r.in_use_seconds)},
                      {"gap_seconds", Round3(r.gap_seconds)},
                      {"counter_powered_seconds", Round3(r.counter_powered_seconds)},
                      {"counter_in_use_seconds", Round3(r.counter_in_use_seconds)},
                      {"counter_mismatch", r.counter_mismatch}});
    nlohmann::json doc = {{"from", FormatUtc(from)}, {"to", FormatUtc(to)}, {"instruments", list}};
    out << JsonText(doc, 2) << "\n";
    return std::nullopt;
  }
  TextTable t;
  t.headers = {"instrument_id",
               "name",
               "powered_seconds",
               "in_use_seconds",
               "gap_seconds",
               "counter_powered_seconds",
               "counter_in_use_seconds",
               "counter_mismatch"};
  t.right_aligned = {false, false, true, true, true, true, true, false};
  const bool csv = args.format == "csv";
  for (const HoursRow& r : *rows)
    t.rows.push_back(
        {r.instrument_id, r.name, Seconds3(r.powered_seconds), Seconds3(r.in_use_seconds),
         Seconds3(r.gap_seconds), Seconds3(r.counter_powered_seconds),
         Seconds3(r.counter_in_use_seconds),
         csv ? (r.counter_mismatch ? "true" : "false") : (r.counter_mismatch ? "MISMATCH" : "")});
  out << (csv ? RenderCsv(t) : RenderTable(t));
  return std::nullopt;
}

std::optional<Failure> CmdStatus(const Args& args, std::ostream& out) {
  Failure failure{};
  Result<std::unique_ptr<Store>> store = ConfigAndStore(args.config_path, &failure);
  if (!store.ok()) return failure;
  Result<std::vector<StatusRow>> rows = ComputeStatus(store->get());
  if (!rows.ok()) return Failure{kExitRuntime, rows.status()};
  if (args.format == "json") {
    nlohmann::json list = nlohmann::json::array();
    for (const StatusRow& r : *rows) {
      nlohmann::json row = {
          {"instrument_id", r.instrument_id},
          {"name", r.name},
          {"city", r.city},
          {"registered", r.registered},
          {"state", LiveStateName(r.state)},
          {"state_since", r.state_since_wall_ms == 0
                              ? nlohmann::json(nullptr)
                              : nlohmann::json(FormatUtc(r.state_since_wall_ms))},
          {"powered_seconds", Round3(r.powered_seconds)},
          {"in_use_seconds", Round3(r.in_use_seconds)},
          {"events_stored", r.events_stored},
          {"online", r.online.has_value() ? nlohmann::json(*r.online) : nlohmann::json(nullptr)},
          {"last_seen", r.last_seen_unix_ms == 0 ? nlohmann::json(nullptr)
                                                 : nlohmann::json(FormatUtc(r.last_seen_unix_ms))}};
      list.push_back(std::move(row));
    }
    out << JsonText(list, 2) << "\n";
    return std::nullopt;
  }
  TextTable t;
  t.headers = {"instrument_id",   "name",           "city",   "state",  "since",
               "powered_seconds", "in_use_seconds", "events", "online", "last_seen"};
  t.right_aligned = {false, false, false, false, false, true, true, true, false, false};
  for (const StatusRow& r : *rows)
    t.rows.push_back({r.instrument_id, r.name, r.city, LiveStateName(r.state),
                      TimeOrDash(r.state_since_wall_ms), Seconds3(r.powered_seconds),
                      Seconds3(r.in_use_seconds), std::to_string(r.events_stored),
                      OnlineText(r.online), TimeOrDash(r.last_seen_unix_ms)});
  out << RenderTable(t);
  return std::nullopt;
}

}  // namespace

int RunHubCli(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  Args args;
  CLI::App app(
      "instrumeter-hub: ingests instrument telemetry over MQTT, stores it in SQLite and reports "
      "machine hours.\nWith only --config, runs the hub (same as `run`).",
      "instrumeter-hub");
  app.require_subcommand(0, 1);
  AddConfigOption(&app, &args.config_path);

  CLI::App* run = app.add_subcommand(
      "run", "Run the hub until SIGTERM/SIGINT; then finish the current batch and exit 0.");
  AddConfigOption(run, &args.config_path);

  CLI::App* instruments =
      app.add_subcommand("instruments", "Manage the registry of instruments (device ids).");
  instruments->require_subcommand(1);
  CLI::App* add = instruments->add_subcommand("add", "Register one instrument.");
  add->add_option("--id", args.instrument.instrument_id,
                  "instrument id, also its agent's device id: 1-64 of [A-Za-z0-9._-]")
      ->required();
  add->add_option("--name", args.instrument.name, "display name")->required();
  add->add_option("--institution", args.instrument.institution, "owning institution")->required();
  add->add_option("--site", args.instrument.site, "site or building")->required();
  add->add_option("--city", args.instrument.city, "city")->required();
  add->add_option("--region", args.instrument.region, "region (province), for voucher rules")
      ->required();
  AddConfigOption(add, &args.config_path);
  CLI::App* list = instruments->add_subcommand("list", "List registered instruments.");
  AddFormatOption(list, &args.format, {"table", "csv", "json"});
  AddConfigOption(list, &args.config_path);
  CLI::App* import = instruments->add_subcommand(
      "import",
      "Register or update instruments from a .csv (header: "
      "instrument_id,name,institution,site,city,region) or .json file (an array of objects with "
      "those keys), with optional billing rule columns (rate_fen_per_hour, billing_unit_seconds, "
      "minimum_charge_seconds, rounding, allowed_overrun_seconds, grace_before_seconds, "
      "grace_after_seconds; empty: the [billing] default; an absent column leaves the rule as "
      "it was). All or nothing: a bad row is named by line and field and nothing is imported.");
  import->add_option("FILE", args.import_path, "the .csv or .json file")->required();
  AddConfigOption(import, &args.config_path);

  CLI::App* hours = app.add_subcommand(
      "hours",
      "Machine hours per instrument in [--from, --to): powered, in use and gap seconds from the "
      "hub's intervals (clipped proportionally to the range), beside the agent's counter-based "
      "figures and a mismatch marker.");
  hours->add_option("--from", args.from, "range start: ISO 8601 with offset, or a date (UTC)")
      ->required();
  hours->add_option("--to", args.to, "range end (exclusive), same formats")->required();
  hours->add_option("--instrument", args.instrument_id, "only this instrument");
  AddFormatOption(hours, &args.format, {"table", "csv", "json"});
  AddConfigOption(hours, &args.config_path);

  CLI::App* status =
      app.add_subcommand("status",
                         "One row per instrument: state now and since, all-time powered and in-use "
                         "seconds, events stored, online/offline and last seen.");
  AddFormatOption(status, &args.format, {"table", "json"});
  AddConfigOption(status, &args.config_path);

  CLI::App* reference =
      app.add_subcommand("config-reference", "Print a Markdown table of every configuration key.");

  BillingCommands billing(&app, instruments);
  SecurityArgs security_args;
  const SecurityCommands security = AddSecurityCommands(&app, &security_args);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e, out, err);
    return code == 0 ? 0 : kExitUsage;
  }

  if (security_args.config_path.empty()) security_args.config_path = args.config_path;
  if (std::optional<int> code = RunSecurityCommand(security, security_args, out, err)) return *code;
  std::optional<Failure> failure;
  if (*reference) {
    out << HubConfigReference();
  } else if (*add) {
    failure = CmdInstrumentsAdd(args, out);
  } else if (*list) {
    failure = CmdInstrumentsList(args, out);
  } else if (*import) {
    failure = CmdInstrumentsImport(args, out);
  } else if (*hours) {
    failure = CmdHours(args, out);
  } else if (*status) {
    failure = CmdStatus(args, out);
  } else if (billing.Chosen()) {
    failure = billing.Run(out);
  } else if (*run || !args.config_path.empty()) {
    failure = CmdRun(args);
  } else {
    err << app.help();
    return kExitUsage;
  }
  if (failure.has_value()) {
    err << "instrumeter-hub: " << failure->status.message() << "\n";
    return failure->exit_code;
  }
  return 0;
}

}  // namespace instrumeter::hub
