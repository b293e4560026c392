// A TCP proxy on a free loopback port, for link faults between an agent and its broker: it
// forwards, cuts (closes both sides and refuses new connections by accepting and closing them),
// stalls (keeps every socket open and forwards nothing: a half-open link), drops (reads and
// discards everything: the peer's TCP stack still acknowledges), and resumes forwarding.
//
// It records when each connection attempt arrived, so a test can see a client back off.
// All socket work runs on the proxy's own thread (poll()); the methods may be called from any
// thread. Loopback only.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/status.h"

namespace instrumeter::testing {

class TcpProxy {
 public:
  enum class Mode { kForward, kCut, kStall, kDrop };

  // Listens on a free loopback port and forwards to 127.0.0.1:target_port.
  static Result<std::unique_ptr<TcpProxy>> Start(int target_port);
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  int port() const { return port_; }
  // tcp://127.0.0.1:<port>
  std::string url() const;

  // Closes every connection (both sides) and, until Resume, closes each new one at once.
  void Cut() { SetMode(Mode::kCut); }
  // Forwards nothing and closes nothing, old and new connections alike: half-open.
  void Stall() { SetMode(Mode::kStall); }
  // Reads and discards whatever either side sends; connections stay open.
  void Drop() { SetMode(Mode::kDrop); }
  // Forwards again (bytes a stall left in the kernel's buffers flow on).
  void Resume() { SetMode(Mode::kForward); }

  // CLOCK_MONOTONIC ms of every accepted connection, in order.
  std::vector<int64_t> AcceptTimes() const;
  // Connections open now (client side).
  size_t open_connections() const { return open_.load(); }

 private:
  struct Pair;
  TcpProxy() = default;
  void SetMode(Mode mode);
  void Run();

  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: a mode change or stop
  int port_ = 0;
  int target_port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<Mode> mode_{Mode::kForward};
  std::atomic<size_t> open_{0};
  mutable std::mutex mu_;
  std::vector<int64_t> accept_times_;  // guarded by mu_
};

}  // namespace instrumeter::testing
