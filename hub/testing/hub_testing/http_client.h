// A small blocking HTTP/1.1 client over a loopback TCP socket, for tests: one request per
// connection (Connection: close), Content-Length and chunked bodies, and a Server-Sent Events
// reader. Every wait is bounded. Test-only (target instrumeter_hub_http_client).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace instrumeter::hub::testing {

struct ClientResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

struct ClientRequest {
  std::string method = "GET";
  std::string target = "/";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds timeout{10'000};
};

// Sends one request to 127.0.0.1:port and reads the whole response.
Result<ClientResponse> Fetch(int port, const ClientRequest& request);
inline Result<ClientResponse> Get(int port, const std::string& target) {
  return Fetch(port, ClientRequest{.target = target});
}

struct SseEvent {
  std::string id;
  std::string event;  // "message" when the server named none
  std::string data;
};

// An open GET on a Server-Sent Events endpoint.
class SseClient {
 public:
  // Connects and reads the response headers.
  static Result<std::unique_ptr<SseClient>> Open(int port, const std::string& target,
                                                 std::chrono::milliseconds timeout);
  ~SseClient();
  SseClient(const SseClient&) = delete;
  SseClient& operator=(const SseClient&) = delete;

  const ClientResponse& head() const { return head_; }
  // The next event (comments are counted, not returned); nullopt when `timeout` passes or the
  // server closes the stream first.
  std::optional<SseEvent> Next(std::chrono::milliseconds timeout);
  // Comment lines (": ...") received so far.
  int comments() const { return comments_; }
  // True once the server closed the connection.
  bool closed() const { return closed_; }

 private:
  explicit SseClient(int fd) : fd_(fd) {}
  // Decoded body bytes as they arrive, de-chunked.
  bool ReadMore(std::chrono::steady_clock::time_point deadline);

  int fd_;
  ClientResponse head_;
  bool chunked_ = false;
  std::string raw_;   // bytes read, not yet de-chunked
  std::string text_;  // de-chunked body not yet parsed into events
  int comments_ = 0;
  bool closed_ = false;
};

}  // namespace instrumeter::hub::testing
