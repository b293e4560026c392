#include "test_support/tcp_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace instrumeter::testing {
namespace {

constexpr size_t kChunk = 16 * 1024;

int64_t MonoMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

}  // namespace

// One client connection and its connection to the target. Bytes read from one side wait in
// `to_*` until the other side takes them (blocking sockets would stall the whole proxy).
struct TcpProxy::Pair {
  int client = -1;
  int server = -1;
  std::string to_server;
  std::string to_client;
  bool closed = false;

  void Close() {
    if (client >= 0) ::close(client);
    if (server >= 0) ::close(server);
    client = server = -1;
    closed = true;
  }
};

Result<std::unique_ptr<TcpProxy>> TcpProxy::Start(int target_port) {
  std::unique_ptr<TcpProxy> proxy(new TcpProxy());
  proxy->target_port_ = target_port;
  proxy->listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (proxy->listen_fd_ < 0)
    return Status::IoError("proxy socket: " + std::string(strerror(errno)));
  const int one = 1;
  ::setsockopt(proxy->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr = Loopback(0);
  if (::bind(proxy->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(proxy->listen_fd_, 64) != 0)
    return Status::IoError("proxy bind/listen: " + std::string(strerror(errno)));
  socklen_t len = sizeof addr;
  ::getsockname(proxy->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  proxy->port_ = ntohs(addr.sin_port);
  proxy->wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  proxy->thread_ = std::thread([p = proxy.get()] { p->Run(); });
  return proxy;
}

TcpProxy::~TcpProxy() {
  stop_ = true;
  const uint64_t one = 1;
  (void)::write(wake_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
  ::close(wake_fd_);
}

std::string TcpProxy::url() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

void TcpProxy::SetMode(Mode mode) {
  mode_ = mode;
  const uint64_t one = 1;
  (void)::write(wake_fd_, &one, sizeof one);
}

std::vector<int64_t> TcpProxy::AcceptTimes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return accept_times_;
}

void TcpProxy::Run() {
  std::vector<std::unique_ptr<Pair>> pairs;
  char buffer[kChunk];
  while (!stop_) {
    const Mode mode = mode_.load();
    if (mode == Mode::kCut) {
      for (auto& p : pairs) p->Close();
    }
    std::erase_if(pairs, [](const auto& p) { return p->closed; });
    open_ = pairs.size();

    std::vector<pollfd> fds = {{wake_fd_, POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    // Only these pairs are in `fds`; one accepted below waits for the next round.
    const size_t polled = mode != Mode::kStall ? pairs.size() : 0;
    if (mode != Mode::kStall) {
      for (auto& p : pairs) {
        // Read a side only while the other side's backlog is drained: back-pressure.
        fds.push_back({p->client,
                       static_cast<short>((p->to_server.empty() ? POLLIN : 0) |
                                          (p->to_client.empty() ? 0 : POLLOUT)),
                       0});
        fds.push_back({p->server,
                       static_cast<short>((p->to_client.empty() ? POLLIN : 0) |
                                          (p->to_server.empty() ? 0 : POLLOUT)),
                       0});
      }
    }
    ::poll(fds.data(), fds.size(), 200);
    if ((fds[0].revents & POLLIN) != 0) {
      uint64_t n = 0;
      (void)::read(wake_fd_, &n, sizeof n);
    }
    if ((fds[1].revents & POLLIN) != 0) {
      const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (client >= 0) {
        {
          std::lock_guard<std::mutex> lock(mu_);
          accept_times_.push_back(MonoMs());
        }
        auto pair = std::make_unique<Pair>();
        pair->client = client;
        if (mode_.load() == Mode::kCut) {
          pair->Close();
        } else {
          // A blocking connect to loopback answers at once (accepted or refused).
          pair->server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
          sockaddr_in target = Loopback(target_port_);
          if (::connect(pair->server, reinterpret_cast<sockaddr*>(&target), sizeof target) != 0) {
            pair->Close();
          } else {
            ::fcntl(pair->server, F_SETFL, ::fcntl(pair->server, F_GETFL) | O_NONBLOCK);
            pairs.push_back(std::move(pair));
          }
        }
      }
    }
    if (mode == Mode::kStall || mode != mode_.load()) continue;
    for (size_t i = 0; i < polled; ++i) {
      Pair& p = *pairs[i];
      const pollfd& cfd = fds[2 + 2 * i];
      const pollfd& sfd = fds[3 + 2 * i];
      auto pump = [&](int from, short revents, std::string* backlog) {
        if ((revents & (POLLIN | POLLHUP | POLLERR)) == 0) return;
        const ssize_t n = ::read(from, buffer, sizeof buffer);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
          p.Close();
          return;
        }
        if (n > 0 && mode == Mode::kForward) backlog->append(buffer, static_cast<size_t>(n));
      };
      auto flush = [&](int to, short revents, std::string* backlog) {
        if (p.closed || (revents & POLLOUT) == 0 || backlog->empty()) return;
        const ssize_t n = ::send(to, backlog->data(), backlog->size(), MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
          p.Close();
          return;
        }
        if (n > 0) backlog->erase(0, static_cast<size_t>(n));
      };
      pump(p.client, cfd.revents, &p.to_server);
      if (!p.closed) pump(p.server, sfd.revents, &p.to_client);
      flush(p.server, sfd.revents, &p.to_server);
      flush(p.client, cfd.revents, &p.to_client);
    }
  }
  for (auto& p : pairs) p->Close();
}

}  // namespace instrumeter::testing
