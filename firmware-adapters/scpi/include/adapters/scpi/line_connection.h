// The operating-system seam of the scpi adapter: a TCP connection that exchanges newline-
// terminated lines, where every call ends by a deadline (never hangs on a peer that stalls).
// The POSIX version (non-blocking sockets and poll()) is posix_line_connection.cc; a Windows port
// adds the same over Winsock (WSAPoll, send without MSG_NOSIGNAL).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"

namespace instrumeter::adapters::scpi {

// Milliseconds on the steady clock, the time base of every deadline below.
int64_t SteadyNowMs();

// One open connection, used from the adapter's poll thread only. Errors are Unavailable (timed
// out, closed by the peer, refused) or Corruption (a line longer than the limit); after any error
// the connection should be dropped.
class LineConnection {
 public:
  virtual ~LineConnection() = default;
  // Sends `line` followed by "\n".
  virtual Status Send(const std::string& line, int64_t deadline_ms) = 0;
  // The next line the peer sends, without its "\n" (or "\r\n").
  virtual Result<std::string> ReadLine(int64_t deadline_ms) = 0;
  // Drops whatever the peer sent that nobody asked for (a late reply to a query that timed out);
  // returns how many bytes were dropped. Does not wait.
  virtual size_t DiscardPending() = 0;
};

// Connects to a numeric IPv4/IPv6 address. Lines longer than `max_line_bytes` are refused.
Result<std::unique_ptr<LineConnection>> ConnectTcp(const std::string& host, int port,
                                                   int64_t deadline_ms, size_t max_line_bytes);

}  // namespace instrumeter::adapters::scpi
