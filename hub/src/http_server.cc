// The only translation unit that includes Asio and Beast (they cost seconds per file to compile).
#include "hub/http_server.h"

#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <chrono>
#include <deque>
#include <exception>
#include <set>
#include <thread>

#include "protocol/chain.h"

namespace instrumeter::hub {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr size_t kHeaderLimitBytes = 16 * 1024;
// Bounds on reading and dropping the rest of a refused request before closing (Session::Linger):
// long enough for a client on a slow link to finish sending a body just over the limit, short
// enough that a client that keeps sending cannot hold the connection.
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr size_t kLingerBytes = 4 * 1024 * 1024;
constexpr size_t kLingerReadBytes = 64 * 1024;
constexpr char kServerName[] = "instrumeter-hub";

std::string_view Std(beast::string_view text) { return {text.data(), text.size()}; }

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// One HTTP/1.1 chunk: size in hex, CRLF, data, CRLF.
std::string Chunk(const std::string& data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return size + data + "\r\n";
}

// "host:port" or "[v6]:port" into an endpoint; a host name is resolved.
Result<tcp::endpoint> ResolveListen(asio::io_context& ioc, const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon + 1 >= listen.size())
    return Status::InvalidArgument("listen '" + listen + "': expected host:port");
  std::string host = listen.substr(0, colon);
  const std::string port = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  auto results =
      resolver.resolve(host, port, tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty())
    return Status::InvalidArgument("listen '" + listen +
                                   "': " + (ec ? ec.message() : std::string("no address")));
  return results.begin()->endpoint();
}

// The server's TLS: TLS 1.2 or newer, the certificate chain and its key (which only its owner may
// read).
Result<asio::ssl::context> TlsContext(const HttpServerOptions& options) {
  INSTRUMETER_RETURN_IF_ERROR(
      protocol::CheckPrivateKeyFile(options.tls_key_file).WithContext("[http] tls_key_file"));
  asio::ssl::context tls(asio::ssl::context::tls_server);
  tls.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                  asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                  asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
  beast::error_code ec;
  tls.use_certificate_chain_file(options.tls_cert_file, ec);
  if (ec)
    return Status::InvalidArgument("[http] tls_cert_file " + options.tls_cert_file + ": " +
                                   ec.message());
  tls.use_private_key_file(options.tls_key_file, asio::ssl::context::pem, ec);
  if (ec)
    return Status::InvalidArgument("[http] tls_key_file " + options.tls_key_file + ": " +
                                   ec.message());
  return tls;
}

}  // namespace

// A connection as the server holds it: plain or TLS (Session<Stream> below).
class HttpSession {
 public:
  virtual ~HttpSession() = default;
  // Queues one framed message; drops the client when its queue is full.
  virtual void Enqueue(const std::shared_ptr<const std::string>& message) = 0;
  virtual void Close() = 0;

 protected:
  // The server's state, reachable through this friend of HttpServer.
  using Server = HttpServer::Impl;
};

struct HttpServer::Impl {
  Impl(const HttpServerOptions& opts, const Router* r, HttpServerStats* s)
      : options(opts), router(r), stats(s) {}

  void Accept();
  void ScheduleHeartbeat();
  void Broadcast(const std::string& message);
  void CountResponse(int status) {
    const int cls = status / 100;
    if (cls >= 1 && cls <= 5) ++stats->responses_by_class[static_cast<size_t>(cls)];
  }

  const HttpServerOptions options;
  const Router* router;
  HttpServerStats* stats;
  // Declared first, destroyed last: sockets and timers below belong to it.
  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  asio::steady_timer heartbeat{ioc};
  std::optional<asio::ssl::context> tls;           // set when serving HTTPS
  std::set<HttpSession*> sessions;                 // every open connection
  std::set<std::shared_ptr<HttpSession>> streams;  // those in stream mode
  std::atomic<bool> stopping{false};
  std::thread thread;
};

// One connection: requests in, responses out, keep-alive; or, once a handler opened a stream,
// an SSE client fed by Broadcast. `Stream` is beast::tcp_stream, or an ssl_stream over one.
template <typename Stream>
class Session : public HttpSession, public std::enable_shared_from_this<Session<Stream>> {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  template <typename... TlsContext>
  Session(tcp::socket socket, Server* server, TlsContext&... tls)
      : stream_(std::move(socket), tls...), server_(server) {
    server_->sessions.insert(this);
    ++server_->stats->connections;
  }
  ~Session() override {
    server_->sessions.erase(this);
    --server_->stats->connections;
  }

  void Start() {
    if constexpr (kTls) {
      Socket().expires_after(std::chrono::milliseconds(server_->options.read_timeout_ms));
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) {
                                  self->Close();
                                } else {
                                  self->Read();
                                }
                              });
    } else {
      Read();
    }
  }

  void Enqueue(const std::shared_ptr<const std::string>& message) override {
    if (closed_) return;
    if (queue_.size() >= server_->options.stream_queue_events) {
      ++server_->stats->stream_clients_dropped;
      spdlog::warn("http: dropped a stream client that fell {} messages behind", queue_.size());
      Close();
      return;
    }
    queue_.push_back(message);
    if (!writing_) WriteNext();
  }

  void Close() override {
    if (closed_) return;
    closed_ = true;
    if (streaming_) {
      --server_->stats->stream_clients;
      // Erasing may release the last owner of *this: keep it alive until we return.
      std::shared_ptr<HttpSession> self = this->shared_from_this();
      server_->streams.erase(self);
    }
    beast::error_code ec;
    Socket().socket().shutdown(tcp::socket::shutdown_both, ec);
    Socket().close();
  }

 private:
  // The TCP layer, under TLS or not: timeouts and closing act on it.
  beast::tcp_stream& Socket() { return beast::get_lowest_layer(stream_); }

  void Read() {
    parser_.emplace();
    parser_->body_limit(server_->options.max_body_bytes);
    parser_->header_limit(kHeaderLimitBytes);
    Socket().expires_after(std::chrono::milliseconds(server_->options.read_timeout_ms));
    http::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted ||
        ec == beast::error::timeout || closed_) {
      Close();
      return;
    }
    // Each error answer below leaves part of the request unread.
    unread_input_ = static_cast<bool>(ec);
    if (ec == http::error::body_limit) {
      Reply(JsonError(413, "body: larger than " + std::to_string(server_->options.max_body_bytes) +
                               " bytes"),
            false, false);
      return;
    }
    if (ec == http::error::header_limit) {
      Reply(JsonError(431, "request headers are too large"), false, false);
      return;
    }
    if (ec) {
      // A parse error gets a 400; a transport error just ends the connection.
      if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
        Reply(JsonError(400, "malformed HTTP request: " + ec.message()), false, false);
      } else {
        Close();
      }
      return;
    }
    http::request<http::string_body> request = parser_->release();
    const bool keep_alive = request.keep_alive();
    const bool head = request.method() == http::verb::head;
    std::optional<ParsedTarget> target = ParseTarget(Std(request.target()));
    if (!target.has_value()) {
      Reply(JsonError(400, "malformed request target"), false, false);
      return;
    }
    HttpRequest req;
    req.method = std::string(Std(request.method_string()));
    req.path = std::move(target->path);
    req.query = std::move(target->query);
    for (const auto& field : request)
      req.headers[Lower(Std(field.name_string()))] = Std(field.value());
    req.body = std::move(request.body());
    HttpResponse response;
    try {
      response = server_->router->Dispatch(std::move(req));
    } catch (const std::exception& e) {
      // Our handlers report errors as responses; this is the boundary for anything a library
      // threw (a JSON encoder given invalid UTF-8, an allocation failure).
      spdlog::error("http: {} {} failed: {}", Std(request.method_string()), Std(request.target()),
                    e.what());
      response = JsonError(500, std::string("internal error: ") + e.what());
    }
    if (response.stream && response.status == 200 && !head) {
      StartStream(response);
    } else {
      Reply(response, keep_alive, head);
    }
  }

  void Reply(const HttpResponse& response, bool keep_alive, bool head) {
    server_->CountResponse(response.status);
    response_ = {};
    response_.version(11);
    response_.result(static_cast<unsigned>(response.status));
    response_.set(http::field::server, kServerName);
    response_.set(http::field::content_type, response.content_type);
    response_.set(http::field::cache_control, "no-store");
    for (const auto& [name, value] : response.headers) response_.set(name, value);
    response_.keep_alive(keep_alive);
    if (head) {
      response_.content_length(response.body.size());
    } else {
      response_.body() = response.body;
      response_.prepare_payload();
    }
    Socket().expires_after(std::chrono::milliseconds(server_->options.write_timeout_ms));
    http::async_write(stream_, response_,
                      [self = this->shared_from_this(), keep_alive](beast::error_code ec, size_t) {
                        if (ec) {
                          self->Close();
                        } else if (keep_alive) {
                          self->Read();
                        } else if (self->unread_input_) {
                          self->Linger();
                        } else {
                          self->Close();
                        }
                      });
  }

  // Closing a socket with unread input makes the kernel send a reset, and a client that is still
  // sending the body we refused fails on its send (and on some systems loses our answer) instead
  // of reading the 413. So end our side with a FIN, and read and drop what still comes until the
  // client closes too, within kLingerTime and kLingerBytes ("lingering close").
  void Linger() {
    beast::error_code ec;
    Socket().socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) {
      Close();
      return;
    }
    buffer_.clear();
    Socket().expires_after(kLingerTime);  // one deadline for all the reads below
    Drain(0);
  }

  // Under TLS too this reads the TCP layer: the bytes are dropped unread, and we sent no
  // close_notify, as Close() does not either.
  void Drain(size_t drained) {
    Socket().async_read_some(
        buffer_.prepare(kLingerReadBytes),
        [self = this->shared_from_this(), drained](beast::error_code ec, size_t n) {
          // The client's FIN, the deadline, Stop() or too many bytes.
          if (ec || self->closed_ || drained + n >= kLingerBytes) {
            self->Close();
          } else {
            self->Drain(drained + n);
          }
        });
  }

  void StartStream(const HttpResponse& response) {
    if (server_->streams.size() >= server_->options.max_stream_clients) {
      HttpResponse busy =
          JsonError(503, "too many stream clients (max_stream_clients = " +
                             std::to_string(server_->options.max_stream_clients) + ")");
      busy.headers.emplace_back("Retry-After", "10");
      Reply(busy, false, false);
      return;
    }
    server_->CountResponse(200);
    streaming_ = true;
    ++server_->stats->stream_clients;
    server_->streams.insert(this->shared_from_this());
    std::string head = "HTTP/1.1 200 OK\r\nServer: " + std::string(kServerName) +
                       "\r\nContent-Type: " + response.content_type +
                       "\r\nCache-Control: no-store\r\nConnection: keep-alive\r\n"
                       "X-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\n";
    for (const auto& [name, value] : response.headers) head += name + ": " + value + "\r\n";
    head += "\r\n";
    if (!response.body.empty()) head += Chunk(response.body);
    Enqueue(std::make_shared<const std::string>(std::move(head)));
    WatchForClose();
  }

  // A stream client sends nothing more; a read completes only when it goes away.
  void WatchForClose() {
    stream_.async_read_some(asio::buffer(scratch_),
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) {
                                self->Close();
                              } else {
                                self->WatchForClose();
                              }
                            });
  }

  void WriteNext() {
    writing_ = true;
    Socket().expires_after(std::chrono::milliseconds(server_->options.write_timeout_ms));
    asio::async_write(stream_, asio::buffer(*queue_.front()),
                      [self = this->shared_from_this()](beast::error_code ec, size_t) {
                        self->OnStreamWritten(ec);
                      });
  }

  void OnStreamWritten(beast::error_code ec) {
    writing_ = false;
    if (ec) {
      if (ec == beast::error::timeout) ++server_->stats->stream_clients_dropped;
      Close();
      return;
    }
    queue_.pop_front();
    if (!queue_.empty()) {
      WriteNext();
    } else {
      Socket().expires_never();
    }
  }

  Stream stream_;
  Server* server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  bool closed_ = false;
  bool unread_input_ = false;  // the request being answered was not read to its end
  // Stream mode.
  bool streaming_ = false;
  bool writing_ = false;
  std::deque<std::shared_ptr<const std::string>> queue_;
  std::array<char, 512> scratch_{};
};

void HttpServer::Impl::Accept() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || stopping) return;
    if (ec) {
      spdlog::warn("http: accept failed: {}", ec.message());
    } else if (sessions.size() >= options.max_connections) {
      ++stats->connections_refused;
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      // Stream messages are small and must not wait for Nagle's algorithm.
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      if (tls.has_value()) {
        std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(std::move(socket), this,
                                                                        *tls)
            ->Start();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(std::move(socket), this)->Start();
      }
    }
    Accept();
  });
}

void HttpServer::Impl::ScheduleHeartbeat() {
  heartbeat.expires_after(std::chrono::milliseconds(options.stream_heartbeat_ms));
  heartbeat.async_wait([this](beast::error_code ec) {
    if (ec || stopping) return;
    // A comment line: EventSource ignores it, and proxies see the connection is alive.
    Broadcast(": keep-alive\n\n");
    ScheduleHeartbeat();
  });
}

void HttpServer::Impl::Broadcast(const std::string& message) {
  if (streams.empty()) return;
  auto framed = std::make_shared<const std::string>(Chunk(message));
  // Enqueue may drop a client, which erases it from `streams`.
  const std::vector<std::shared_ptr<HttpSession>> clients(streams.begin(), streams.end());
  for (const auto& client : clients) client->Enqueue(framed);
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(); }

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                      const Router* router,
                                                      HttpServerStats* stats) {
  auto impl = std::make_unique<Impl>(options, router, stats);
  if (!options.tls_cert_file.empty()) {
    Result<asio::ssl::context> tls = TlsContext(options);
    if (!tls.ok()) return tls.status();
    impl->tls.emplace(std::move(*tls));
  }
  Result<tcp::endpoint> endpoint = ResolveListen(impl->ioc, options.listen);
  if (!endpoint.ok()) return endpoint.status();
  beast::error_code ec;
  tcp::acceptor& acceptor = impl->acceptor;
  acceptor.open(endpoint->protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(*endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status::Unavailable("http listen " + options.listen + ": " + ec.message());

  impl->Accept();
  impl->ScheduleHeartbeat();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] {
    while (true) {
      try {
        raw->ioc.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("http: handler escaped with an exception (continuing): {}", e.what());
      }
    }
  });
  spdlog::info("http: listening on {}://{}:{}", raw->tls ? "https" : "http",
               acceptor.local_endpoint().address().to_string(), acceptor.local_endpoint().port());
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

int HttpServer::port() const {
  beast::error_code ec;
  const tcp::endpoint endpoint = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : endpoint.port();
}

void HttpServer::Post(std::function<void()> task) {
  if (impl_->stopping) return;
  asio::post(impl_->ioc, std::move(task));
}

void HttpServer::Broadcast(const std::string& message) { impl_->Broadcast(message); }

void HttpServer::Stop() {
  if (impl_->stopping.exchange(true)) return;
  Impl* raw = impl_.get();
  asio::post(raw->ioc, [raw] {
    beast::error_code ec;
    raw->acceptor.close(ec);
    raw->heartbeat.cancel();
    // Close() of a stream client erases it from `streams`; copy first.
    const std::vector<HttpSession*> open(raw->sessions.begin(), raw->sessions.end());
    for (HttpSession* session : open) session->Close();
  });
  if (raw->thread.joinable()) raw->thread.join();
}

}  // namespace instrumeter::hub
