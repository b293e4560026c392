// The billing subcommands of instrumeter-hub (see hub/cli.h and docs/billing.md). cli.cc builds
// them into its command line and runs the one chosen. Private to the hub's CLI.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "cli_support.h"

namespace instrumeter::hub {

class BillingCommands {
 public:
  // Adds `instruments rules` under `instruments` and `bookings`, `verify`, `ledger`, `export`
  // and `report` under `app`. Both must outlive this object.
  BillingCommands(CLI::App* app, CLI::App* instruments);

  // After parsing: whether one of these subcommands was chosen.
  bool Chosen() const;
  // Runs the chosen subcommand; nullopt on success.
  std::optional<Failure> Run(std::ostream& out);

 private:
  struct Args {
    std::string config_path;
    std::string format = "table";
    std::string export_format = "csv";
    std::string file;  // bookings import FILE
    std::string from;
    std::string to;
    std::string instrument_id;
    std::string now;
    std::vector<std::string> anchors;
    std::string after;
    int64_t limit = 100;
    std::string by;
    std::string output;
    std::string order_id;  // bookings share ORDER_ID
    std::string base_url;
  };

  std::optional<Failure> Rules(std::ostream& out);
  std::optional<Failure> BookingsImport(std::ostream& out);
  std::optional<Failure> BookingsList(std::ostream& out);
  std::optional<Failure> BookingsShare(std::ostream& out);
  std::optional<Failure> BookingsUnshare(std::ostream& out);
  std::optional<Failure> Verify(std::ostream& out);
  std::optional<Failure> LedgerVerify(std::ostream& out);
  std::optional<Failure> LedgerFeed(std::ostream& out);
  std::optional<Failure> ExportBilling(std::ostream& out);
  std::optional<Failure> Report(std::ostream& out);

  Args args_;
  CLI::App* rules_;
  CLI::App* bookings_import_;
  CLI::App* bookings_list_;
  CLI::App* bookings_share_;
  CLI::App* bookings_unshare_;
  CLI::App* verify_;
  CLI::App* ledger_verify_;
  CLI::App* ledger_feed_;
  CLI::App* export_billing_;
  CLI::App* report_;
};

}  // namespace instrumeter::hub
