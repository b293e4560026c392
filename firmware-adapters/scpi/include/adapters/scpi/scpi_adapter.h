// The `scpi` adapter: an instrument's SCPI port over TCP (raw socket, default port 5025).
//
// At each connect it sends `*IDN?` once and reports the reply as Identity on every poll (the agent
// puts it in the heartbeat). Each poll sends the configured queries one by one, waits for each
// newline-terminated reply, joins the replies with ';' (as the instrument would answer the
// compound query "Q1;Q2") and maps the result to a State with ordered regex rules. Lines that
// arrive before a query is sent (unasked for) are dropped, so a chatty instrument cannot put the
// replies out of step.
// A whole poll (connect, *IDN? and every query) is bounded by timeout_ms. A timeout, a refused or
// dropped connection, or garbage (control characters, an endless line) drops the connection; the
// next attempt waits a growing, jittered delay, and until then Poll answers at once.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "adapters/adapter.h"
#include "adapters/reconnect.h"
#include "adapters/scpi/line_connection.h"
#include "adapters/state_rules.h"

namespace instrumeter::adapters::scpi {

const config::Schema& ScpiSchema();

class ScpiAdapter : public Adapter {
 public:
  explicit ScpiAdapter(AdapterContext context) : context_(std::move(context)) {}

  Status Init(const config::Section& section) override;
  Status Poll(ObservationSink& sink) override;
  // Closes the connection.
  void Stop() override { connection_.reset(); }

 private:
  Status Connect(int64_t deadline_ms);
  // Sends `query` and returns its reply; a failure drops the connection.
  Result<std::string> Ask(const std::string& query, int64_t deadline_ms);
  Status Lost(const std::string& error);
  std::string Peer() const;

  AdapterContext context_;
  std::string host_;
  int port_ = 5025;
  std::vector<std::string> queries_;
  StateRules rules_;
  int64_t timeout_ms_ = 2000;
  std::optional<Reconnect> reconnect_;
  std::unique_ptr<LineConnection> connection_;
  std::string identity_;  // the *IDN? reply of the current connection
};

}  // namespace instrumeter::adapters::scpi
