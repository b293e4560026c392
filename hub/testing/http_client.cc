#include "hub_testing/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstring>

namespace instrumeter::hub::testing {
namespace {

using Clock = std::chrono::steady_clock;

Result<int> Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::IoError(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::Unavailable("connect 127.0.0.1:" + std::to_string(port) + ": " +
                               std::strerror(err));
  }
  return fd;
}

bool SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// Appends what arrives before `deadline`; false on timeout, error or end of stream (*eof set).
bool ReadSome(int fd, std::string* out, Clock::time_point deadline, bool* eof) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return false;
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
  char buf[16384];
  const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  if (n <= 0) {
    *eof = true;
    return false;
  }
  out->append(buf, static_cast<size_t>(n));
  return true;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Parses the status line and headers of `raw` up to the blank line; erases them from `raw`.
bool ParseHead(std::string* raw, ClientResponse* out) {
  const size_t end = raw->find("\r\n\r\n");
  if (end == std::string::npos) return false;
  const std::string head = raw->substr(0, end);
  raw->erase(0, end + 4);
  size_t line_end = head.find("\r\n");
  const std::string status_line = head.substr(0, line_end);
  const size_t sp = status_line.find(' ');
  out->status = sp == std::string::npos ? 0 : std::atoi(status_line.c_str() + sp + 1);
  while (line_end != std::string::npos) {
    const size_t start = line_end + 2;
    line_end = head.find("\r\n", start);
    const std::string line = head.substr(start, line_end - start);
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    size_t v = colon + 1;
    while (v < line.size() && line[v] == ' ') ++v;
    out->headers[Lower(line.substr(0, colon))] = line.substr(v);
  }
  return true;
}

// Moves complete chunks from `raw` to `out`; true once the last (empty) chunk was seen.
bool Dechunk(std::string* raw, std::string* out) {
  while (true) {
    const size_t line_end = raw->find("\r\n");
    if (line_end == std::string::npos) return false;
    const size_t size = std::strtoul(raw->c_str(), nullptr, 16);
    if (raw->size() < line_end + 2 + size + 2) return false;
    out->append(*raw, line_end + 2, size);
    raw->erase(0, line_end + 2 + size + 2);
    if (size == 0) return true;
  }
}

}  // namespace

Result<ClientResponse> Fetch(int port, const ClientRequest& request) {
  Result<int> fd = Connect(port);
  if (!fd.ok()) return fd.status();
  std::string wire = request.method + " " + request.target +
                     " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                     "\r\nConnection: close\r\n";
  for (const auto& [name, value] : request.headers) wire += name + ": " + value + "\r\n";
  if (!request.body.empty() || request.method == "POST")
    wire += "Content-Length: " + std::to_string(request.body.size()) + "\r\n";
  wire += "\r\n" + request.body;
  const auto deadline = Clock::now() + request.timeout;
  ClientResponse response;
  std::string raw;
  bool eof = false;
  bool ok = SendAll(*fd, wire);
  bool have_head = false;
  while (ok) {
    if (!have_head) have_head = ParseHead(&raw, &response);
    if (have_head) {
      if (Lower(response.Header("transfer-encoding")) == "chunked") {
        if (Dechunk(&raw, &response.body)) break;
      } else if (!response.Header("content-length").empty()) {
        const size_t want = std::stoul(response.Header("content-length"));
        if (raw.size() >= want || request.method == "HEAD") {
          response.body = raw.substr(0, request.method == "HEAD" ? 0 : want);
          break;
        }
      }
    }
    if (!ReadSome(*fd, &raw, deadline, &eof)) {
      if (eof && have_head && response.Header("content-length").empty() &&
          response.Header("transfer-encoding").empty()) {
        response.body = raw;  // body until close
        break;
      }
      ok = false;
    }
  }
  ::close(*fd);
  if (!ok)
    return Status::Unavailable(request.method + " " + request.target + ": " +
                               (eof ? "connection closed early" : "timed out"));
  return response;
}

Result<std::unique_ptr<SseClient>> SseClient::Open(int port, const std::string& target,
                                                   std::chrono::milliseconds timeout) {
  Result<int> fd = Connect(port);
  if (!fd.ok()) return fd.status();
  std::unique_ptr<SseClient> client(new SseClient(*fd));
  if (!SendAll(*fd, "GET " + target +
                        " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"))
    return Status::Unavailable("sending the stream request failed");
  const auto deadline = Clock::now() + timeout;
  bool eof = false;
  while (!ParseHead(&client->raw_, &client->head_)) {
    if (!ReadSome(*fd, &client->raw_, deadline, &eof))
      return Status::Unavailable("no response head from the stream");
  }
  client->chunked_ = Lower(client->head_.Header("transfer-encoding")) == "chunked";
  return client;
}

SseClient::~SseClient() { ::close(fd_); }

bool SseClient::ReadMore(Clock::time_point deadline) {
  if (closed_) return false;
  bool eof = false;
  if (!ReadSome(fd_, &raw_, deadline, &eof)) {
    closed_ = eof;
    return false;
  }
  if (chunked_) {
    if (Dechunk(&raw_, &text_)) closed_ = true;
  } else {
    text_ += raw_;
    raw_.clear();
  }
  return true;
}

std::optional<SseEvent> SseClient::Next(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  if (chunked_) Dechunk(&raw_, &text_);  // bytes that came with the head
  while (true) {
    // One message ends at a blank line.
    size_t end;
    while ((end = text_.find("\n\n")) != std::string::npos) {
      const std::string message = text_.substr(0, end + 1);
      text_.erase(0, end + 2);
      SseEvent event{.event = "message"};
      bool has_field = false;
      size_t start = 0;
      while (start < message.size()) {
        const size_t nl = message.find('\n', start);
        const std::string line = message.substr(start, nl - start);
        start = nl + 1;
        if (line.empty()) continue;
        if (line[0] == ':') {
          ++comments_;
          continue;
        }
        const size_t colon = line.find(':');
        const std::string field = line.substr(0, colon);
        std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
        if (!value.empty() && value[0] == ' ') value.erase(0, 1);
        if (field == "id") {
          event.id = value;
          has_field = true;
        } else if (field == "event") {
          event.event = value;
          has_field = true;
        } else if (field == "data") {
          event.data += (event.data.empty() ? "" : "\n") + value;
          has_field = true;
        }
      }
      if (has_field && !event.data.empty()) return event;
    }
    if (!ReadMore(deadline)) return std::nullopt;
  }
}

}  // namespace instrumeter::hub::testing
