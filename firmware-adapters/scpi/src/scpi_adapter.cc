#include "adapters/scpi/scpi_adapter.h"

#include <arpa/inet.h>

namespace instrumeter::adapters::scpi {
namespace {

// Far above any status reply; a peer that sends more without a newline is not speaking SCPI.
constexpr size_t kMaxReplyBytes = 64 * 1024;

bool IsNumericAddress(const std::string& host) {
  unsigned char buffer[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

// SCPI replies are text: control characters other than tab mean the peer is not an SCPI port
// (or the stream is out of step).
bool IsText(const std::string& reply) {
  for (unsigned char c : reply)
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  return true;
}

std::string Trim(const std::string& s) {
  const size_t begin = s.find_first_not_of(" \t");
  if (begin == std::string::npos) return {};
  return s.substr(begin, s.find_last_not_of(" \t") + 1 - begin);
}

}  // namespace

const config::Schema& ScpiSchema() {
  static const config::Schema kSchema = {
      {.name = "host",
       .type = config::Type::kString,
       .description = "the instrument's IP address (IPv4 or IPv6; host names are not resolved, "
                      "so a slow resolver can never stall a poll)",
       .required = true},
      {.name = "port",
       .type = config::Type::kInteger,
       .default_value = int64_t{5025},
       .description = "the SCPI raw socket port",
       .min = 1,
       .max = 65535},
      {.name = "queries",
       .type = config::Type::kStringArray,
       .description = "the queries sent each poll, in order (e.g. [\"STAT:OPER:COND?\"]); each "
                      "must be answered with one line",
       .required = true},
      StateRules::SchemaKey("rule", "the replies joined with ';'", true),
      {.name = "timeout_ms",
       .type = config::Type::kInteger,
       .default_value = int64_t{2000},
       .description = "bound on one whole poll: connect, *IDN? and every query",
       .min = 10,
       .max = 60000},
      {.name = "reconnect_min_ms",
       .type = config::Type::kInteger,
       .default_value = int64_t{1000},
       .description = "first delay before reconnecting after a failure (doubles, with jitter)",
       .min = 1},
      {.name = "reconnect_max_ms",
       .type = config::Type::kInteger,
       .default_value = int64_t{60000},
       .description = "longest delay between reconnect attempts",
       .min = 1},
  };
  return kSchema;
}

std::string ScpiAdapter::Peer() const {
  return "scpi '" + context_.name + "' " + host_ + ":" + std::to_string(port_);
}

Status ScpiAdapter::Init(const config::Section& section) {
  host_ = section.String("host");
  if (!IsNumericAddress(host_))
    return section.Error("host", "'" + host_ + "' is not an IP address");
  port_ = static_cast<int>(section.Integer("port"));
  queries_ = section.StringArray("queries");
  if (queries_.empty()) return section.Error("queries", "needs at least one query");
  for (size_t i = 0; i < queries_.size(); ++i)
    if (queries_[i].empty() || !IsText(queries_[i]))
      return section.Error("queries", "query #" + std::to_string(i + 1) +
                                          " is empty or holds a line break or control character");
  auto rules = StateRules::FromSection(section, "rule");
  if (!rules.ok()) return rules.status();
  if (rules->empty()) return section.Error("rule", "needs at least one rule");
  rules_ = std::move(*rules);
  timeout_ms_ = section.Integer("timeout_ms");
  if (section.Integer("reconnect_max_ms") < section.Integer("reconnect_min_ms"))
    return section.Error("reconnect_max_ms", "is below reconnect_min_ms");
  reconnect_.emplace(context_.clock, section.Integer("reconnect_min_ms"),
                     section.Integer("reconnect_max_ms"));
  return Status::Ok();
}

Status ScpiAdapter::Lost(const std::string& error) {
  connection_.reset();
  identity_.clear();
  return reconnect_->Failed(error).WithContext(Peer());
}

Result<std::string> ScpiAdapter::Ask(const std::string& query, int64_t deadline_ms) {
  // Whatever arrived before the query was sent cannot be its reply (a line the instrument sent
  // on its own): dropped, so the stream stays in step.
  connection_->DiscardPending();
  Status sent = connection_->Send(query, deadline_ms);
  if (!sent.ok()) return Lost("query '" + query + "': " + sent.message());
  auto reply = connection_->ReadLine(deadline_ms);
  if (!reply.ok()) {
    std::string why = reply.status().message();
    if (why.rfind("timed out", 0) == 0) why += " (timeout_ms " + std::to_string(timeout_ms_) + ")";
    return Lost("query '" + query + "': " + why);
  }
  if (!IsText(*reply))
    return Lost("query '" + query + "': garbage reply '" + Printable(*reply) + "'");
  return Trim(*reply);
}

Status ScpiAdapter::Connect(int64_t deadline_ms) {
  auto connection = ConnectTcp(host_, port_, deadline_ms, kMaxReplyBytes);
  if (!connection.ok()) return Lost(connection.status().message());
  connection_ = std::move(*connection);
  auto identity = Ask("*IDN?", deadline_ms);
  if (!identity.ok()) return identity.status();
  identity_ = Printable(*identity, 256);
  return Status::Ok();
}

Status ScpiAdapter::Poll(ObservationSink& sink) {
  if (Status ready = reconnect_->Ready(); !ready.ok()) return ready.WithContext(Peer());
  const int64_t deadline = SteadyNowMs() + timeout_ms_;
  if (connection_ == nullptr) INSTRUMETER_RETURN_IF_ERROR(Connect(deadline));
  std::string joined;
  for (size_t i = 0; i < queries_.size(); ++i) {
    auto reply = Ask(queries_[i], deadline);
    if (!reply.ok()) return reply.status();
    joined += (i > 0 ? ";" : "") + *reply;
  }
  reconnect_->Succeeded();
  auto match = rules_.Evaluate(joined);
  if (!match.ok()) return match.status().WithContext(Peer());
  if (!match->has_value())
    return Status::NotFound(Peer() + ": no rule matches the reply '" + Printable(joined) + "'");
  sink.Report(Observation::Identity(identity_));
  sink.Report(Observation::State((*match)->state, rules_.Describe(**match, joined)));
  return Status::Ok();
}

}  // namespace instrumeter::adapters::scpi
