// The HTTP server over real loopback sockets: routing, errors, limits, streams and slow clients.
#include "hub/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <nlohmann/json.hpp>

#include "hub_testing/http_client.h"
#include "test_support/process.h"

namespace instrumeter::hub {
namespace {

using nlohmann::json;
using testing::ClientRequest;
using testing::Fetch;
using testing::Get;
using testing::SseClient;

constexpr auto kWait = std::chrono::seconds(5);

// A raw client socket that sends what it is told and reads only when asked.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // A small receive buffer, so that a client that never reads falls behind quickly.
    int small = 4096;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawClient() { ::close(fd_); }
  bool connected() const { return connected_; }
  // False when the connection failed (was reset) before all of `text` was sent.
  bool Send(const std::string& text) {
    for (size_t sent = 0; sent < text.size();) {
      const ssize_t n = ::send(fd_, text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }
  // True once there is something to read (or the peer closed), within 5 s.
  bool WaitReadable() {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 5000) == 1;
  }
  // Reads until the peer closes or 5 s pass; `reset()` tells whether it ended in an error.
  std::string ReadAll() {
    std::string out;
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd_, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
    reset_ = n < 0;
    return out;
  }
  bool reset() const { return reset_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool reset_ = false;
};

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.Add("GET", "/hello", [](const HttpRequest& r) {
      HttpResponse response;
      response.content_type = "text/plain";
      response.body = "hello " + (r.query.count("name") ? r.query.at("name") : "world");
      response.headers.emplace_back("X-Test", r.Header("x-test"));
      return response;
    });
    router_.Add("POST", "/echo", [](const HttpRequest& r) {
      return JsonResponse(201, {{"body", r.body}});
    });
    router_.Add("GET", "/boom", [](const HttpRequest&) -> HttpResponse {
      return JsonResponse(200, {{"missing", json::object().at("missing")}});  // json throws
    });
    router_.Add("GET", "/stream", [](const HttpRequest&) {
      HttpResponse response;
      response.content_type = "text/event-stream";
      response.stream = true;
      response.body = "retry: 1000\n\n";
      return response;
    });
  }

  void StartServer(HttpServerOptions options = {}) {
    options.listen = "127.0.0.1:0";
    auto server = HttpServer::Start(options, &router_, &stats_);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    ASSERT_GT(server_->port(), 0);
  }

  // Runs Broadcast on the http thread and waits for it.
  void Broadcast(const std::string& message) {
    std::promise<void> done;
    server_->Post([&] {
      server_->Broadcast(message);
      done.set_value();
    });
    ASSERT_EQ(done.get_future().wait_for(kWait), std::future_status::ready);
  }

  Router router_;
  HttpServerStats stats_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, AnswersRequestsThroughTheRouter) {
  StartServer();
  auto r = Fetch(server_->port(), {.target = "/hello?name=ops", .headers = {{"X-Test", "42"}}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello ops");
  EXPECT_EQ(r->Header("content-type"), "text/plain");
  EXPECT_EQ(r->Header("x-test"), "42") << "header names reach handlers in lower case";
  EXPECT_EQ(r->Header("server"), "instrumeter-hub");
  EXPECT_EQ(r->Header("cache-control"), "no-store");

  auto head = Fetch(server_->port(), {.method = "HEAD", .target = "/hello"});
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->Header("content-length"), "11");
  EXPECT_EQ(head->body, "");

  auto post = Fetch(server_->port(), {.method = "POST", .target = "/echo", .body = "{\"a\":1}"});
  ASSERT_TRUE(post.ok());
  EXPECT_EQ(post->status, 201);
  EXPECT_EQ(json::parse(post->body)["body"], "{\"a\":1}");

  auto missing = Get(server_->port(), "/nothing");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(json::parse(missing->body)["error"]["status"], 404);
  auto wrong = Fetch(server_->port(), {.method = "DELETE", .target = "/echo"});
  ASSERT_TRUE(wrong.ok());
  EXPECT_EQ(wrong->status, 405);
  EXPECT_EQ(wrong->Header("allow"), "POST");

  auto boom = Get(server_->port(), "/boom");
  ASSERT_TRUE(boom.ok());
  EXPECT_EQ(boom->status, 500) << "a library exception becomes a 500, the server keeps serving";
  EXPECT_EQ(json::parse(boom->body)["error"]["status"], 500);
  EXPECT_EQ(Get(server_->port(), "/hello")->status, 200);
  EXPECT_EQ(stats_.responses_by_class[2].load(), 4u);
  EXPECT_EQ(stats_.responses_by_class[4].load(), 2u);
  EXPECT_EQ(stats_.responses_by_class[5].load(), 1u);
}

TEST_F(HttpServerTest, KeepsAConnectionAliveAcrossRequests) {
  StartServer();
  RawClient client(server_->port());
  ASSERT_TRUE(client.connected());
  client.Send(
      "GET /hello?name=a HTTP/1.1\r\nHost: x\r\n\r\nGET /hello?name=b HTTP/1.1\r\nHost: x\r\n"
      "Connection: close\r\n\r\n");
  const std::string out = client.ReadAll();
  EXPECT_NE(out.find("hello a"), std::string::npos) << out;
  EXPECT_NE(out.find("hello b"), std::string::npos) << out;
}

TEST_F(HttpServerTest, RefusesMalformedAndOversizedRequests) {
  HttpServerOptions options;
  options.max_body_bytes = 16;
  StartServer(options);
  auto big =
      Fetch(server_->port(), {.method = "POST", .target = "/echo", .body = std::string(64, 'x')});
  ASSERT_TRUE(big.ok()) << big.status().ToString();
  EXPECT_EQ(big->status, 413);
  EXPECT_EQ(json::parse(big->body)["error"]["status"], 413);

  RawClient garbage(server_->port());
  garbage.Send("THIS IS NOT HTTP\r\n\r\n");
  const std::string reply = garbage.ReadAll();
  EXPECT_EQ(reply.substr(0, 12), "HTTP/1.1 400") << reply;

  RawClient bad_target(server_->port());
  bad_target.Send("GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(bad_target.ReadAll().substr(0, 12), "HTTP/1.1 400");
}

TEST_F(HttpServerTest, AnswersATooLargeBodyToAClientStillSendingIt) {
  HttpServerOptions options;
  options.max_body_bytes = 16;
  StartServer(options);
  RawClient client(server_->port());
  ASSERT_TRUE(client.connected());
  const std::string body(1 << 20, 'x');
  ASSERT_TRUE(client.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body.substr(0, 64 * 1024)));
  // The 413 comes while most of the body is still to be sent: the server must not reset the
  // connection under the client, which would fail its sending or lose the answer.
  ASSERT_TRUE(client.WaitReadable());
  EXPECT_TRUE(client.Send(body.substr(64 * 1024)));
  const std::string reply = client.ReadAll();
  EXPECT_EQ(reply.substr(0, 12), "HTTP/1.1 413") << reply;
  EXPECT_FALSE(client.reset());
}

TEST_F(HttpServerTest, ClosesAConnectionThatSendsNothing) {
  HttpServerOptions options;
  options.read_timeout_ms = 200;
  StartServer(options);
  RawClient idle(server_->port());
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(idle.ReadAll(), "");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(4));
}

TEST_F(HttpServerTest, ReportsAPortInUseAndABadAddress) {
  StartServer();
  HttpServerOptions taken;
  taken.listen = "127.0.0.1:" + std::to_string(server_->port());
  HttpServerStats stats;
  auto second = HttpServer::Start(taken, &router_, &stats);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Status::Code::kUnavailable);
  EXPECT_NE(second.status().message().find(taken.listen), std::string::npos);
  auto bad = HttpServer::Start({.listen = "no-such-host.invalid:80"}, &router_, &stats);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Status::Code::kInvalidArgument);
}

TEST_F(HttpServerTest, StreamsBroadcastsAndHeartbeats) {
  HttpServerOptions options;
  options.stream_heartbeat_ms = 100;
  StartServer(options);
  auto client = SseClient::Open(server_->port(), "/stream", kWait);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  SseClient& sse = **client;
  EXPECT_EQ(sse.head().status, 200);
  EXPECT_EQ(sse.head().Header("content-type"), "text/event-stream");
  EXPECT_EQ(sse.head().Header("transfer-encoding"), "chunked");
  ASSERT_TRUE(instrumeter::testing::WaitFor([&] { return stats_.stream_clients == 1; }, kWait));

  Broadcast("id: 1\nevent: state\ndata: {\"a\":1}\n\n");
  auto event = sse.Next(kWait);
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ(event->id, "1");
  EXPECT_EQ(event->event, "state");
  EXPECT_EQ(event->data, "{\"a\":1}");
  // Heartbeat comments keep coming while nothing happens.
  EXPECT_FALSE(sse.Next(std::chrono::milliseconds(350)).has_value());
  EXPECT_GE(sse.comments(), 2);
  // HEAD tells what a stream would be without opening one.
  auto head = Fetch(server_->port(), {.method = "HEAD", .target = "/stream"});
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->Header("content-type"), "text/event-stream");
  EXPECT_EQ(stats_.stream_clients.load(), 1u);
}

TEST_F(HttpServerTest, LimitsStreamClients) {
  HttpServerOptions options;
  options.max_stream_clients = 1;
  StartServer(options);
  auto first = SseClient::Open(server_->port(), "/stream", kWait);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(instrumeter::testing::WaitFor([&] { return stats_.stream_clients == 1; }, kWait));
  auto second = Get(server_->port(), "/stream");
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->status, 503);
  EXPECT_EQ(second->Header("retry-after"), "10");
  // Once the first goes away, a new one is accepted.
  first->reset();
  ASSERT_TRUE(instrumeter::testing::WaitFor([&] { return stats_.stream_clients == 0; }, kWait));
  auto third = SseClient::Open(server_->port(), "/stream", kWait);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ((*third)->head().status, 200);
}

TEST_F(HttpServerTest, DropsAStreamClientThatDoesNotRead) {
  HttpServerOptions options;
  options.stream_queue_events = 8;
  StartServer(options);
  RawClient sleeper(server_->port());
  sleeper.Send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  auto reader = SseClient::Open(server_->port(), "/stream", kWait);
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE(instrumeter::testing::WaitFor([&] { return stats_.stream_clients == 2; }, kWait));

  // Far more than the sleeper's socket buffers hold: its queue overflows and it is dropped,
  // while the client that reads gets everything in order.
  const std::string payload(64 * 1024, 'x');
  int received = 0;
  for (int i = 0; i < 64 && stats_.stream_clients_dropped == 0; ++i) {
    Broadcast("id: " + std::to_string(i) + "\ndata: " + payload + "\n\n");
    auto event = (*reader)->Next(kWait);
    ASSERT_TRUE(event.has_value()) << "message " << i;
    EXPECT_EQ(event->id, std::to_string(i));
    ++received;
  }
  EXPECT_EQ(stats_.stream_clients_dropped.load(), 1u);
  EXPECT_EQ(stats_.stream_clients.load(), 1u);
  EXPECT_GT(received, 8);
  Broadcast("id: last\ndata: still here\n\n");
  auto last = (*reader)->Next(kWait);
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->data, "still here");
}

TEST_F(HttpServerTest, StopsWithStreamsOpen) {
  StartServer();
  auto client = SseClient::Open(server_->port(), "/stream", kWait);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(instrumeter::testing::WaitFor([&] { return stats_.stream_clients == 1; }, kWait));
  server_->Stop();
  EXPECT_FALSE((*client)->Next(kWait).has_value());
  EXPECT_TRUE((*client)->closed());
  EXPECT_EQ(stats_.connections.load(), 0u);
}

}  // namespace
}  // namespace instrumeter::hub
