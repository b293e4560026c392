// The agent's control socket (state_dir/agent.sock, a Unix stream socket): one request line in,
// one JSON reply out, then the agent closes the connection. Requests: "status",
// "session start <order_id> [operator name]", "session stop".
//
// The server side never blocks the agent's loop: sockets are non-blocking, a client has a
// deadline to send its line, and only a few clients are served at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "log.h"

namespace instrumeter::agent {

class ControlServer {
 public:
  using Handler = std::function<std::string(const std::string& request)>;
  static constexpr size_t kMaxClients = 8;
  static constexpr size_t kMaxRequestBytes = 1024;
  static constexpr int64_t kClientDeadlineMs = 2000;

  // Binds `path`, replacing a stale socket file (the caller holds the state_dir lock, so no
  // other agent owns it). The file is removed again on destruction.
  static Result<std::unique_ptr<ControlServer>> Listen(const std::string& path, Logger log);
  ~ControlServer();

  // The fds the loop polls for reading: the listening socket, then every client.
  std::vector<int> fds() const;
  // Handles a readable fd from fds(): accepts, or reads and, once a whole line arrived, replies
  // with handler(line) and closes. Runs on the loop thread.
  void OnReadable(int fd, int64_t now_ms, const Handler& handler);
  // Drops clients past their deadline.
  void Expire(int64_t now_ms);
  // The earliest client deadline (monotonic ms), or INT64_MAX.
  int64_t NextDeadlineMs() const;

 private:
  struct Client {
    int fd;
    int64_t deadline_ms;
    std::string buffer;
  };
  ControlServer(int fd, std::string path, Logger log)
      : fd_(fd), path_(std::move(path)), log_(std::move(log)) {}
  void Close(size_t index);

  int fd_;
  std::string path_;
  Logger log_;
  std::vector<Client> clients_;
};

// Client side, for the CLI: sends `request`, returns the reply. NotFound when nothing listens on
// `path` (the agent is not running); Unavailable when the agent does not answer in time.
Result<std::string> ControlRequest(const std::string& path, const std::string& request,
                                   std::chrono::milliseconds timeout);

}  // namespace instrumeter::agent
