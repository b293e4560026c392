#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "adapters/scpi/line_connection.h"

namespace instrumeter::adapters::scpi {
namespace {

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// Waits for `events` on `fd` until the deadline. OK when ready; Unavailable on timeout.
Status WaitFor(int fd, short events, int64_t deadline_ms, const std::string& what) {
  while (true) {
    const int64_t left = deadline_ms - SteadyNowMs();
    if (left <= 0) return Status::Unavailable("timed out " + what);
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(left));
    if (rc > 0) return Status::Ok();
    if (rc < 0 && errno != EINTR) return Status::Unavailable(Errno("poll"));
  }
}

class PosixLineConnection : public LineConnection {
 public:
  PosixLineConnection(int fd, size_t max_line_bytes) : fd_(fd), max_line_bytes_(max_line_bytes) {}
  ~PosixLineConnection() override { ::close(fd_); }

  Status Send(const std::string& line, int64_t deadline_ms) override {
    const std::string data = line + "\n";
    size_t sent = 0;
    while (sent < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<size_t>(n);
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        INSTRUMETER_RETURN_IF_ERROR(WaitFor(fd_, POLLOUT, deadline_ms, "sending"));
      } else if (n < 0 && errno != EINTR) {
        return Status::Unavailable(Errno("send"));
      }
    }
    return Status::Ok();
  }

  Result<std::string> ReadLine(int64_t deadline_ms) override {
    while (true) {
      const size_t newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return line;
      }
      if (buffer_.size() > max_line_bytes_)
        return Status::Corruption("reply longer than " + std::to_string(max_line_bytes_) +
                                  " bytes without a newline");
      char chunk[4096];
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n > 0) {
        buffer_.append(chunk, static_cast<size_t>(n));
      } else if (n == 0) {
        return Status::Unavailable(buffer_.empty() ? "connection closed by the instrument"
                                                   : "connection closed in the middle of a reply");
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        INSTRUMETER_RETURN_IF_ERROR(WaitFor(fd_, POLLIN, deadline_ms, "waiting for a reply"));
      } else if (errno != EINTR) {
        return Status::Unavailable(Errno("recv"));
      }
    }
  }

  size_t DiscardPending() override {
    size_t dropped = buffer_.size();
    buffer_.clear();
    char chunk[4096];
    ssize_t n;
    while ((n = ::recv(fd_, chunk, sizeof chunk, 0)) > 0) dropped += static_cast<size_t>(n);
    return dropped;
  }

 private:
  int fd_;
  size_t max_line_bytes_;
  std::string buffer_;  // received, not yet returned as lines
};

}  // namespace

int64_t SteadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Result<std::unique_ptr<LineConnection>> ConnectTcp(const std::string& host, int port,
                                                   int64_t deadline_ms, size_t max_line_bytes) {
  sockaddr_storage address{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    length = sizeof *v4;
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    length = sizeof *v6;
  } else {
    return Status::InvalidArgument("'" + host + "' is not an IP address");
  }
  const int fd = ::socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::Unavailable(Errno("socket"));
  auto connection = std::make_unique<PosixLineConnection>(fd, max_line_bytes);
  // Queries are tiny and each waits for its reply: send them at once.
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), length) != 0) {
    if (errno != EINPROGRESS) return Status::Unavailable(Errno("connect"));
    INSTRUMETER_RETURN_IF_ERROR(WaitFor(fd, POLLOUT, deadline_ms, "connecting"));
    int error = 0;
    socklen_t size = sizeof error;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size);
    if (error != 0) return Status::Unavailable(std::string("connect: ") + std::strerror(error));
  }
  return std::unique_ptr<LineConnection>(std::move(connection));
}

}  // namespace instrumeter::adapters::scpi
