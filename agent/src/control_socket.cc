#include "control_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <limits>

namespace instrumeter::agent {
namespace {

Result<sockaddr_un> Address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path))
    return Status::InvalidArgument("socket path " + path + " is too long");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

}  // namespace

Result<std::unique_ptr<ControlServer>> ControlServer::Listen(const std::string& path, Logger log) {
  auto addr = Address(path);
  if (!addr.ok()) return addr.status();
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::IoError(Errno("socket"));
  std::unique_ptr<ControlServer> server(new ControlServer(fd, path, std::move(log)));
  ::unlink(path.c_str());
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0)
    return Status::IoError(Errno("cannot bind control socket " + path));
  // Whoever may use the state_dir may ask: owner and group.
  ::chmod(path.c_str(), 0660);
  if (::listen(fd, 16) != 0) return Status::IoError(Errno("cannot listen on " + path));
  return server;
}

ControlServer::~ControlServer() {
  while (!clients_.empty()) Close(clients_.size() - 1);
  ::close(fd_);
  ::unlink(path_.c_str());
}

std::vector<int> ControlServer::fds() const {
  std::vector<int> out{fd_};
  for (const Client& c : clients_) out.push_back(c.fd);
  return out;
}

void ControlServer::Close(size_t index) {
  ::close(clients_[index].fd);
  clients_.erase(clients_.begin() + static_cast<long>(index));
}

void ControlServer::OnReadable(int fd, int64_t now_ms, const Handler& handler) {
  if (fd == fd_) {
    while (true) {
      const int client = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (client < 0) return;  // EAGAIN: all accepted
      if (clients_.size() >= kMaxClients) {
        ::close(client);
        log_->warn("control socket: too many clients, one refused");
        continue;
      }
      clients_.push_back({client, now_ms + kClientDeadlineMs, {}});
    }
  }
  for (size_t i = 0; i < clients_.size(); ++i) {
    if (clients_[i].fd != fd) continue;
    Client& c = clients_[i];
    char buf[512];
    const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n > 0) c.buffer.append(buf, static_cast<size_t>(n));
    const size_t eol = c.buffer.find('\n');
    if (eol == std::string::npos && n > 0 && c.buffer.size() <= kMaxRequestBytes) return;
    if (eol != std::string::npos || (n == 0 && !c.buffer.empty())) {
      std::string line = c.buffer.substr(0, eol);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const std::string reply = handler(line) + "\n";
      // A reply is small; the socket buffer takes it whole, and a client that went away loses it.
      (void)::send(c.fd, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    Close(i);
    return;
  }
}

void ControlServer::Expire(int64_t now_ms) {
  for (size_t i = clients_.size(); i-- > 0;)
    if (now_ms >= clients_[i].deadline_ms) Close(i);
}

int64_t ControlServer::NextDeadlineMs() const {
  int64_t next = std::numeric_limits<int64_t>::max();
  for (const Client& c : clients_) next = std::min(next, c.deadline_ms);
  return next;
}

Result<std::string> ControlRequest(const std::string& path, const std::string& request,
                                   std::chrono::milliseconds timeout) {
  auto addr = Address(path);
  if (!addr.ok()) return addr.status();
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::IoError(Errno("socket"));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0)
    return Status::NotFound(Errno("no agent listens on " + path));
  const std::string line = request + "\n";
  if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size()))
    return Status::IoError(Errno("cannot send to " + path));
  std::string reply;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0)
      return Status::Unavailable("the agent did not answer on " + path + " within " +
                                 std::to_string(timeout.count()) + " ms");
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IoError(Errno("cannot read from " + path));
    if (n == 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  while (!reply.empty() && reply.back() == '\n') reply.pop_back();
  if (reply.empty()) return Status::IoError("the agent closed " + path + " without a reply");
  return reply;
}

}  // namespace instrumeter::agent
