// The instrumeter-hub command line (main.cc is a thin wrapper; tests call it in-process).
//
//   instrumeter-hub [run] --config FILE         run the hub until SIGTERM/SIGINT
//   instrumeter-hub instruments add|list|import  the instrument registry
//   instrumeter-hub hours --from T --to T        machine hours per instrument
//   instrumeter-hub status                       live state per instrument
//   instrumeter-hub config-reference             Markdown reference of every config key
//   instrumeter-hub instruments rules            effective billing rules per instrument
//   instrumeter-hub bookings import|list         bookings (docs/billing.md)
//   instrumeter-hub verify                       one verification pass now
//   instrumeter-hub ledger verify|feed           check the hash chain; read the billing feed
//   instrumeter-hub export billing               the billing export, CSV or JSON
//   instrumeter-hub report --by ...              services, machine hours, amounts by group
//   instrumeter-hub ca init|crl                  the certificate authority (src/security_cli.h)
//   instrumeter-hub devices enroll|revoke|list|chain-reset   device identities
//
// Exit codes: 0 success, 1 runtime error (database, broker), 2 usage, configuration or input
// file error, 3 `ledger verify` found the ledger altered. Results go to `out`, messages to `err`,
// logs to spdlog's default logger.
#pragma once

#include <ostream>

namespace instrumeter::hub {

int RunHubCli(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace instrumeter::hub
