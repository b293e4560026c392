#include "adapters/scpi/scpi_adapter.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "adapters/testing/adapter_harness.h"
#include "test_support/process.h"

namespace instrumeter::adapters::scpi {
namespace {

using adapters::testing::ConfiguredAdapter;
using adapters::testing::PollOnce;

// A SCPI raw-socket responder on 127.0.0.1 that answers well, or misbehaves on request.
class ScpiResponder {
 public:
  enum class Mode {
    kNormal,   // answers known queries with their reply line, ignores unknown ones
    kSlow,     // answers, but only after slow_ms
    kGarbage,  // answers with control characters
    kHang,     // reads queries and never answers
    kDrop,     // sends half a reply and closes the connection
    kChatty,   // answers, then sends a line nobody asked for
  };

  ScpiResponder() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address);
    ::listen(listen_fd_, 8);
    socklen_t length = sizeof address;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScpiResponder() {
    running_ = false;
    thread_.join();
    for (const auto& [fd, buffer] : clients_) ::close(fd);
    ::close(listen_fd_);
  }

  int port() const { return port_; }
  void SetReply(const std::string& query, const std::string& reply) {
    std::lock_guard<std::mutex> lock(mu_);
    replies_[query] = reply;
  }
  void SetMode(Mode mode, int slow_ms = 0) {
    slow_ms_ = slow_ms;
    mode_ = mode;
  }
  int connections() const { return connections_; }
  int idn_queries() const { return idn_queries_; }

 private:
  void Serve() {
    while (running_) {
      std::vector<pollfd> fds = {{listen_fd_, POLLIN, 0}};
      for (const auto& [fd, buffer] : clients_) fds.push_back({fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
          clients_[fd];
          ++connections_;
        }
      }
      for (size_t i = 1; i < fds.size(); ++i)
        if (fds[i].revents != 0) Read(fds[i].fd);
    }
  }

  void Read(int fd) {
    char chunk[1024];
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return Close(fd);
    std::string& buffer = clients_[fd];
    buffer.append(chunk, static_cast<size_t>(n));
    for (size_t newline; (newline = buffer.find('\n')) != std::string::npos;) {
      const std::string query = buffer.substr(0, newline);
      buffer.erase(0, newline + 1);
      if (query == "*IDN?") ++idn_queries_;
      if (!Answer(fd, query)) return Close(fd);
    }
  }

  // False when the connection was dropped on purpose.
  bool Answer(int fd, const std::string& query) {
    std::string reply;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = replies_.find(query);
      if (it == replies_.end()) return true;
      reply = it->second + "\n";
    }
    switch (mode_.load()) {
      case Mode::kNormal:
        break;
      case Mode::kSlow:
        std::this_thread::sleep_for(std::chrono::milliseconds(slow_ms_));
        break;
      case Mode::kGarbage:
        reply = std::string("\x01\x02\xff\x00 #garbage\n", 14);
        break;
      case Mode::kHang:
        return true;
      case Mode::kChatty:
        reply += "STATUS CHANGED\n";
        break;
      case Mode::kDrop:
        ::send(fd, reply.data(), reply.size() / 2, MSG_NOSIGNAL);
        return false;
    }
    ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
    return true;
  }

  void Close(int fd) {
    ::close(fd);
    clients_.erase(fd);
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::map<int, std::string> clients_;  // fd -> bytes received; server thread (and destructor)
  std::thread thread_;
  std::atomic<bool> running_{true};
  std::atomic<Mode> mode_{Mode::kNormal};
  std::atomic<int> slow_ms_{0};
  std::atomic<int> connections_{0};
  std::atomic<int> idn_queries_{0};
  std::mutex mu_;
  std::map<std::string, std::string> replies_;
};

class ScpiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    responder_.SetReply("*IDN?", "ACME Instruments,NMR-600,SN1234,4.1.2");
    responder_.SetReply("STAT?", "RUN");
    responder_.SetReply("TEMP?", "+2.981E+02");
  }
  std::unique_ptr<ConfiguredAdapter> Make(const std::string& extra = "", int port = 0) {
    auto made = ConfiguredAdapter::Make(
        "scpi",
        "host = \"127.0.0.1\"\nport = " + std::to_string(port ? port : responder_.port()) +
            "\nqueries = [\"STAT?\", \"TEMP?\"]\ntimeout_ms = 400\nreconnect_min_ms = 1000\n"
            "reconnect_max_ms = 1000\n" +
            extra +
            "rule = [ { match = \"^RUN;\", state = \"IN_USE\" },\n"
            "         { match = \"^(IDLE|READY);\", state = \"IDLE\" },\n"
            "         { match = \"^ERR\", state = \"FAULT\" } ]\n",
        {"console", &clock_, dir_.path()});
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    return made.ok() ? std::move(*made) : nullptr;
  }
  // Waits out the reconnect delay on the fake clock.
  void PassBackoff() { clock_.Advance(1000); }

  instrumeter::testing::TempDir dir_;
  FakeClock clock_;
  ScpiResponder responder_;
};

constexpr char kIdentity[] = "identity='ACME Instruments,NMR-600,SN1234,4.1.2'";

TEST_F(ScpiTest, IdentityOncePerConnectionAndRulesOverTheJoinedReplies) {
  auto a = Make();
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(PollOnce(a->adapter()), std::string(kIdentity) + " state=IN_USE");
  responder_.SetReply("STAT?", "READY");
  EXPECT_EQ(PollOnce(a->adapter()), std::string(kIdentity) + " state=IDLE");
  responder_.SetReply("STAT?", "ERR -200");
  EXPECT_EQ(PollOnce(a->adapter()), std::string(kIdentity) + " state=FAULT");
  EXPECT_EQ(responder_.connections(), 1);
  EXPECT_EQ(responder_.idn_queries(), 1) << "*IDN? once per connection, not per poll";
}

TEST_F(ScpiTest, AReplyNoRuleMatchesIsAnErrorButKeepsTheConnection) {
  auto a = Make();
  ASSERT_NE(a, nullptr);
  responder_.SetReply("STAT?", "CALIBRATING");
  const std::string st = PollOnce(a->adapter());
  EXPECT_NE(st.find("no rule matches the reply 'CALIBRATING;+2.981E+02'"), std::string::npos) << st;
  responder_.SetReply("STAT?", "RUN");
  EXPECT_EQ(PollOnce(a->adapter()), std::string(kIdentity) + " state=IN_USE");
  EXPECT_EQ(responder_.connections(), 1);
}

TEST_F(ScpiTest, UnaskedLinesAreDroppedNotTakenForTheNextReply) {
  auto a = Make();
  ASSERT_NE(a, nullptr);
  responder_.SetMode(ScpiResponder::Mode::kChatty);
  EXPECT_EQ(PollOnce(a->adapter()), std::string(kIdentity) + " state=IN_USE");
  responder_.SetMode(ScpiResponder::Mode::kNormal);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(PollOnce(a->adapter()), std::string(kIdentity) + " state=IN_USE");
  EXPECT_EQ(responder_.connections(), 1);
}

TEST_F(ScpiTest, ASlowAnswerTimesOutAndTheNextConnectionStartsClean) {
  auto a = Make();
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(PollOnce(a->adapter()), std::string(kIdentity) + " state=IN_USE");
  responder_.SetMode(ScpiResponder::Mode::kSlow, 700);
  const std::string st = PollOnce(a->adapter());
  EXPECT_NE(st.find("retrying in"), std::string::npos) << st;
  EXPECT_NE(st.find("query 'STAT?': timed out waiting for a reply (timeout_ms 400)"),
            std::string::npos)
      << st;
  responder_.SetMode(ScpiResponder::Mode::kNormal);
  PassBackoff();
  responder_.SetReply("STAT?", "IDLE");
  // The late "RUN" went to the closed connection; the new one must not read it.
  EXPECT_EQ(PollOnce(a->adapter()), std::string(kIdentity) + " state=IDLE");
  EXPECT_EQ(responder_.connections(), 2);
  EXPECT_EQ(responder_.idn_queries(), 2) << "*IDN? again on the new connection";
}

TEST_F(ScpiTest, GarbageDropsTheConnection) {
  auto a = Make();
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(PollOnce(a->adapter()), std::string(kIdentity) + " state=IN_USE");
  responder_.SetMode(ScpiResponder::Mode::kGarbage);
  const std::string st = PollOnce(a->adapter());
  EXPECT_NE(st.find("query 'STAT?': garbage reply '???? #garbage'"), std::string::npos) << st;
  EXPECT_NE(PollOnce(a->adapter()).find("retrying in"), std::string::npos);
  responder_.SetMode(ScpiResponder::Mode::kNormal);
  PassBackoff();
  EXPECT_EQ(PollOnce(a->adapter()), std::string(kIdentity) + " state=IN_USE");
}

TEST_F(ScpiTest, APeerThatHangsCannotHangThePoll) {
  auto a = Make();
  ASSERT_NE(a, nullptr);
  responder_.SetMode(ScpiResponder::Mode::kHang);
  const auto start = std::chrono::steady_clock::now();
  const std::string st = PollOnce(a->adapter());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3))
      << "bounded by timeout_ms";
  EXPECT_NE(st.find("query '*IDN?': timed out waiting for a reply"), std::string::npos) << st;
}

TEST_F(ScpiTest, ADisconnectMidReplyIsAnErrorAndRecovers) {
  auto a = Make();
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(PollOnce(a->adapter()), std::string(kIdentity) + " state=IN_USE");
  responder_.SetReply("TEMP?", "+2.981234567E+02");
  responder_.SetMode(ScpiResponder::Mode::kDrop);
  const std::string st = PollOnce(a->adapter());
  EXPECT_NE(st.find("connection closed in the middle of a reply"), std::string::npos) << st;
  responder_.SetMode(ScpiResponder::Mode::kNormal);
  PassBackoff();
  EXPECT_EQ(PollOnce(a->adapter()), std::string(kIdentity) + " state=IN_USE");
}

TEST_F(ScpiTest, ARefusedConnectionBacksOffWithoutBlocking) {
  const int closed_port = instrumeter::testing::FreeLoopbackPort();
  auto a = Make("", closed_port);
  ASSERT_NE(a, nullptr);
  const std::string st = PollOnce(a->adapter());
  EXPECT_EQ(
      st.find("error: scpi 'console' 127.0.0.1:" + std::to_string(closed_port) + ": retrying in "),
      0u)
      << st;
  EXPECT_NE(st.find("connect: Connection refused"), std::string::npos) << st;
}

// Golden cases: testdata/golden/<case>/ (see adapters/testing/adapter_harness.h). Verbs:
//   reply <query> => <text>   what the instrument answers to <query>
//   mode <normal|garbage|drop>
class ScpiGoldenTest : public ::testing::TestWithParam<adapters::testing::GoldenCase> {};

TEST_P(ScpiGoldenTest, Plays) {
  instrumeter::testing::TempDir dir;
  FakeClock clock;
  ScpiResponder responder;
  adapters::testing::GoldenRunner runner("scpi", &clock, dir.path());
  runner.AddVerb("reply", [&](const std::string& args) {
    const size_t arrow = args.find(" => ");
    if (arrow == std::string::npos)
      return Status::InvalidArgument("usage: reply <query> => <text>");
    responder.SetReply(args.substr(0, arrow), args.substr(arrow + 4));
    return Status::Ok();
  });
  runner.AddVerb("mode", [&](const std::string& mode) {
    if (mode == "normal")
      responder.SetMode(ScpiResponder::Mode::kNormal);
    else if (mode == "garbage")
      responder.SetMode(ScpiResponder::Mode::kGarbage);
    else if (mode == "drop")
      responder.SetMode(ScpiResponder::Mode::kDrop);
    else
      return Status::InvalidArgument("unknown mode " + mode);
    return Status::Ok();
  });
  for (const std::string& failure :
       runner.Run(GetParam(), {{"PORT", std::to_string(responder.port())}}))
    ADD_FAILURE() << GetParam().name << ": " << failure;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ScpiGoldenTest,
    ::testing::ValuesIn(adapters::testing::LoadGoldenCases(INSTRUMETER_GOLDEN_DIR)),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace instrumeter::adapters::scpi
