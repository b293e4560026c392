// The hub's HTTP/1.1 server (Boost.Beast, behind this Beast-free header): one asio io_context run
// by one "http" thread, routing every request through a Router (http.h), and holding the
// Server-Sent Events connections that handlers open (HttpResponse::stream) so that the live
// service can Broadcast to them.
//
// Stream clients each have a bounded queue: a client that falls `stream_queue_events` messages
// behind, or whose write stalls for `write_timeout_ms`, is dropped, so a slow reader never holds
// memory or the http thread. With a certificate (HttpServerOptions::tls_cert_file) every
// connection is TLS 1.2 or newer.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "hub/http.h"

namespace instrumeter::hub {

struct HttpServerOptions {
  std::string listen = "127.0.0.1:8080";  // host:port; [v6]:port; port 0 picks a free one
  int64_t read_timeout_ms = 10'000;       // to receive one whole request
  int64_t write_timeout_ms = 10'000;      // to send one response or one stream message
  size_t max_connections = 1024;
  size_t max_stream_clients = 256;
  size_t stream_queue_events = 1000;  // per stream client
  int64_t stream_heartbeat_ms = 15'000;
  size_t max_body_bytes = 1 << 20;
  // HTTPS when both are set (PEM; TLS 1.2 or newer); plain HTTP when both are empty.
  std::string tls_cert_file;
  std::string tls_key_file;
};

// What the server did, for /metrics. Written on the http thread, read from any.
struct HttpServerStats {
  std::array<std::atomic<uint64_t>, 6> responses_by_class{};  // [2] = 2xx ... [5] = 5xx
  std::atomic<uint64_t> connections{0};                       // open now
  std::atomic<uint64_t> connections_refused{0};               // over max_connections
  std::atomic<uint64_t> stream_clients{0};                    // open now
  std::atomic<uint64_t> stream_clients_dropped{0};            // too slow, or write timed out
};

class HttpServer {
 public:
  // Binds the listening socket (errors come back here: a bad address, a port in use) and starts
  // the http thread. `router` and `stats` are borrowed and must outlive the server; the router
  // must not change any more.
  static Result<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                   const Router* router, HttpServerStats* stats);
  // Stops (see Stop).
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The port actually listened on.
  int port() const;
  // Runs `task` on the http thread, soon. Any thread; ignored once stopping.
  void Post(std::function<void()> task);
  // Sends `message` (one complete SSE message: "event: state\ndata: {...}\n\n") to every open
  // stream client. Http thread only (from a Post'ed task or a handler).
  void Broadcast(const std::string& message);
  // Closes the listener and every connection, and joins the http thread. Idempotent; not from
  // the http thread.
  void Stop();

 private:
  friend class HttpSession;  // a connection, in http_server.cc
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace instrumeter::hub
