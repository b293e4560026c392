#include "common/mqtt_link.h"

#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mqtt/async_client.h>
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <mutex>

namespace instrumeter {
namespace {

constexpr int kQos = 1;

// Paho counts its connect timeout in whole seconds, checks it about once a second, and was once
// seen answering seconds after it (docs/reliability.md). Its own timeout is what normally
// answers; this deadline is for the connect it never answers.
std::chrono::milliseconds GiveUpAfter(const MqttLink::Options& options) {
  return std::chrono::milliseconds(options.give_up_connect_ms > 0
                                       ? options.give_up_connect_ms
                                       : 2 * options.connect_timeout_ms + 2000);
}

// The port of tcp://host:port or ssl://[v6]:port; 0 if there is none.
int BrokerPort(const std::string& url) {
  const size_t colon = url.rfind(':');
  if (colon == std::string::npos || url.find(']', colon) != std::string::npos) return 0;
  return std::atoi(url.c_str() + colon + 1);
}

// Paho C never sets TCP_NODELAY and offers no hook to do it. With Nagle's algorithm on, a small
// publish waits until the previous one is acknowledged by TCP, which the broker delays up to
// 40 ms: a hub's acks and an agent's envelopes spent about 40 ms each way in the kernel
// (docs/performance.md, "Capacity"). So once connected, every TCP socket of this process whose
// peer has the broker's port gets TCP_NODELAY: the link's own, and those of other links to the
// same broker, which want it as well. A socket that merely shares the port number (an
// instrument's Modbus or SCPI port, say) loses nothing by it either: those talk in requests and
// answers.
void DisableNagleTowards(int port) {
  if (port <= 0) return;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return;
  while (const dirent* entry = ::readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == ::dirfd(dir)) continue;
    sockaddr_storage peer{};
    socklen_t size = sizeof peer;
    if (::getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &size) != 0)
      continue;
    const int peer_port =
        peer.ss_family == AF_INET    ? ntohs(reinterpret_cast<sockaddr_in*>(&peer)->sin_port)
        : peer.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&peer)->sin6_port)
                                     : 0;
    if (peer_port != port) continue;
    const int one = 1;
    (void)::setsockopt(static_cast<int>(fd), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ::closedir(dir);
}

}  // namespace

struct MqttLink::Impl {
  // Paho calls these on its own thread; each only enqueues. Every token carries the number of
  // the connect attempt it belongs to: an answer to an attempt given up already is dropped.
  class ConnectListener : public mqtt::iaction_listener {
   public:
    explicit ConnectListener(Impl* impl) : impl_(impl) {}
    void on_success(const mqtt::token& tok) override {
      if (impl_->Stale(tok)) {
        // Given up before Paho answered: the owner was told it failed, and connects again.
        impl_->Abandon();
        return;
      }
      impl_->Subscribe(tok.get_user_context());
    }
    void on_failure(const mqtt::token& tok) override {
      if (impl_->Stale(tok)) return;
      std::string tls_error;
      {
        std::lock_guard lock(impl_->mu);
        tls_error.swap(impl_->last_tls_error);
      }
      impl_->Push({Event::Kind::kConnectFailed,
                   "connect to " + impl_->options.broker_url + " failed (code " +
                       std::to_string(tok.get_return_code()) + ")" +
                       (tls_error.empty() ? "" : ": TLS: " + tls_error)});
    }

   private:
    Impl* impl_;
  };

  class SubscribeListener : public mqtt::iaction_listener {
   public:
    explicit SubscribeListener(Impl* impl) : impl_(impl) {}
    void on_success(const mqtt::token& tok) override {
      if (impl_->Stale(tok)) return impl_->Abandon();
      impl_->Ready();
    }
    void on_failure(const mqtt::token& tok) override {
      if (impl_->Stale(tok)) return;
      impl_->Push({Event::Kind::kConnectFailed,
                   "subscribe failed (code " + std::to_string(tok.get_return_code()) + ")"});
      try {
        impl_->client->disconnect();
      } catch (const mqtt::exception&) {
      }
    }

   private:
    Impl* impl_;
  };

  Options options;
  int broker_port = 0;
  std::unique_ptr<mqtt::async_client> client;
  ConnectListener connect_listener{this};
  SubscribeListener subscribe_listener{this};
  int event_fd = -1;
  std::atomic<bool> connected{false};
  std::atomic<uintptr_t> attempt{0};  // the current connect attempt, as its tokens' context
  // Owner thread only: when the current attempt is given up unless answered.
  std::optional<std::chrono::steady_clock::time_point> connect_deadline;

  mutable std::mutex mu;
  // Paho C hands a connect's callback context around its two threads and was seen answering
  // through a Paho C++ token that the next connect() had already freed (a use-after-free under
  // ASan, when the tiny test hub reconnected at once after its broker was killed). The tokens of
  // the last few operations are held here, so a late answer reaches a live token and is dropped
  // as stale. A late answer comes from a Paho thread already inside the callback; every further
  // attempt needs an answer of its own first, so a handful is plenty.
  static constexpr size_t kKeptTokens = 8;
  std::deque<mqtt::token_ptr> kept_tokens;
  std::deque<Event> queue;
  std::string last_tls_error;  // OpenSSL's reason for the failing connect, reported with it
  size_t queued_messages = 0;

  // Never blocks: Paho runs this under its process-wide lock.
  void Push(Event event) {
    {
      std::lock_guard lock(mu);
      queued_messages += event.kind == Event::Kind::kMessage;
      queue.push_back(std::move(event));
    }
    const uint64_t one = 1;
    (void)!::write(event_fd, &one, sizeof one);
  }

  void Keep(mqtt::token_ptr token) {
    std::lock_guard lock(mu);
    kept_tokens.push_back(std::move(token));
    if (kept_tokens.size() > kKeptTokens) kept_tokens.pop_front();
  }

  void Ready() {
    connected = true;
    Push({Event::Kind::kConnected, options.broker_url});
  }

  bool Stale(const mqtt::token& tok) const {
    return reinterpret_cast<uintptr_t>(tok.get_user_context()) != attempt;
  }

  void Abandon() {
    connected = false;
    try {
      client->disconnect(0);
    } catch (const mqtt::exception&) {
      // Not connected, or already closing: nothing to abandon.
    }
  }

  bool Connected() const { return connected && client->is_connected(); }

  Status Send(const std::string& topic, const std::string& payload, int qos, bool retained) {
    if (!Connected()) return Status::Unavailable("not connected to " + options.broker_url);
    try {
      client->publish(topic, payload.data(), payload.size(), qos, retained);
    } catch (const mqtt::exception& e) {
      return Status::Unavailable("publish to " + topic + ": " + e.what());
    }
    return Status::Ok();
  }

  void Subscribe(void* context) {
    if (options.subscriptions.empty()) return Ready();
    auto topics = mqtt::string_collection::create(options.subscriptions);
    mqtt::iasync_client::qos_collection qos(options.subscriptions.size(), kQos);
    try {
      Keep(client->subscribe(topics, qos, context, subscribe_listener));
    } catch (const mqtt::exception& e) {
      Push({Event::Kind::kConnectFailed, std::string("subscribe failed: ") + e.what()});
    }
  }
};

MqttLink::MqttLink(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<MqttLink>> MqttLink::Create(const Options& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->broker_port = BrokerPort(options.broker_url);
  impl->event_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl->event_fd < 0) return Status::IoError("eventfd failed");
  try {
    // No Paho persistence: what must survive lives in our own stores.
    mqtt::create_options create;
    create.set_max_buffered_messages(options.max_buffered_messages);
    impl->client = std::make_unique<mqtt::async_client>(options.broker_url, options.client_id,
                                                        create, nullptr);
  } catch (const mqtt::exception& e) {
    ::close(impl->event_fd);
    return Status::InvalidArgument("MQTT broker '" + options.broker_url + "': " + e.what());
  }
  Impl* raw = impl.get();
  raw->client->set_connection_lost_handler([raw](const std::string& cause) {
    raw->connected = false;
    raw->Push({Event::Kind::kConnectionLost, cause.empty() ? "connection lost" : cause});
  });
  raw->client->set_message_callback([raw](mqtt::const_message_ptr msg) {
    Event e{Event::Kind::kMessage,
            {},
            msg->get_topic(),
            msg->to_string(),
            msg->is_retained(),
            msg->get_qos(),
            std::chrono::steady_clock::now()};
    raw->Push(std::move(e));
  });
  return std::unique_ptr<MqttLink>(new MqttLink(std::move(impl)));
}

MqttLink::~MqttLink() {
  if (impl_->connected) Disconnect(std::chrono::milliseconds(1000));
  impl_->client.reset();  // joins Paho's threads before the listeners go away
  ::close(impl_->event_fd);
}

Status MqttLink::Connect() {
  mqtt::connect_options opts;
  opts.set_clean_session(impl_->options.clean_session);
  opts.set_keep_alive_interval(impl_->options.keepalive_s);
  opts.set_connect_timeout(std::chrono::milliseconds(impl_->options.connect_timeout_ms));
  opts.set_max_inflight(impl_->options.max_inflight);
  opts.set_automatic_reconnect(false);
  // Paho's default tries MQTT 3.1.1 and, when that fails, at once MQTT 3.1: every failed attempt
  // was two TCP connections, doubling what a broker that many clients reconnect to must refuse.
  opts.set_mqtt_version(MQTTVERSION_3_1_1);
  if (impl_->options.will) {
    const Will& w = *impl_->options.will;
    opts.set_will(
        mqtt::will_options(w.topic, w.payload.data(), w.payload.size(), kQos, w.retained));
  }
  if (impl_->options.tls) {
    const Tls& tls = *impl_->options.tls;
    mqtt::ssl_options ssl;
    ssl.set_trust_store(tls.ca_file);
    if (!tls.cert_file.empty()) ssl.set_key_store(tls.cert_file);
    if (!tls.key_file.empty()) ssl.set_private_key(tls.key_file);
    ssl.set_enable_server_cert_auth(true);
    ssl.set_verify(true);  // the broker's name must match its certificate
    // DEFAULT, not TLS_1_2: Paho pins TLS_1_2 to exactly 1.2, while DEFAULT lets OpenSSL 3
    // negotiate 1.3 and refuse anything older than 1.2 at its default security level.
    ssl.set_ssl_version(MQTT_SSL_VERSION_DEFAULT);
    Impl* impl = impl_.get();
    ssl.set_error_handler([impl](const std::string& message) {
      std::lock_guard lock(impl->mu);
      impl->last_tls_error = message;
    });
    opts.set_ssl(std::move(ssl));
  }
  const uintptr_t attempt = ++impl_->attempt;
  try {
    impl_->Keep(
        impl_->client->connect(opts, reinterpret_cast<void*>(attempt), impl_->connect_listener));
  } catch (const mqtt::exception& e) {
    return Status::Unavailable("connect to " + impl_->options.broker_url + ": " + e.what());
  }
  impl_->connect_deadline = std::chrono::steady_clock::now() + GiveUpAfter(impl_->options);
  return Status::Ok();
}

std::optional<std::chrono::steady_clock::time_point> MqttLink::connect_deadline() const {
  return impl_->connect_deadline;
}

int64_t MqttLink::MsUntil(std::chrono::steady_clock::time_point deadline) {
  const auto left =
      std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return std::max<int64_t>(0, left.count());
}

bool MqttLink::connected() const { return impl_->Connected(); }

Status MqttLink::Publish(const std::string& topic, const std::string& payload, bool retained) {
  return impl_->Send(topic, payload, kQos, retained);
}

Status MqttLink::PublishAtMostOnce(const std::string& topic, const std::string& payload) {
  return impl_->Send(topic, payload, /*qos=*/0, /*retained=*/false);
}

void MqttLink::Disconnect(std::chrono::milliseconds timeout) {
  impl_->connected = false;
  impl_->connect_deadline.reset();
  try {
    if (impl_->client->is_connected())
      impl_->client->disconnect(static_cast<int>(timeout.count()))->wait_for(timeout);
  } catch (const mqtt::exception&) {
    // Already gone: nothing left to close.
  }
}

int MqttLink::wake_fd() const { return impl_->event_fd; }

bool MqttLink::WaitForEvents(std::chrono::milliseconds timeout) {
  {
    std::lock_guard lock(impl_->mu);
    if (!impl_->queue.empty()) return true;
  }
  int64_t wait_ms = timeout.count();
  bool deadline_first = false;
  if (impl_->connect_deadline.has_value()) {
    const int64_t left = MsUntil(*impl_->connect_deadline);
    deadline_first = left <= wait_ms;
    wait_ms = std::min(wait_ms, left);
  }
  pollfd pfd{impl_->event_fd, POLLIN, 0};
  return ::poll(&pfd, 1, static_cast<int>(wait_ms)) > 0 || deadline_first;
}

std::vector<MqttLink::Event> MqttLink::TakeEvents() {
  uint64_t count = 0;
  (void)!::read(impl_->event_fd, &count, sizeof count);
  std::vector<Event> out;
  {
    std::lock_guard lock(impl_->mu);
    out.assign(std::make_move_iterator(impl_->queue.begin()),
               std::make_move_iterator(impl_->queue.end()));
    impl_->queue.clear();
    impl_->queued_messages = 0;
  }
  // Before the owner hears of the connection, and so before its first publish on it.
  for (const Event& e : out)
    if (e.kind == Event::Kind::kConnected) {
      DisableNagleTowards(impl_->broker_port);
      break;
    }
  if (!impl_->connect_deadline.has_value()) return out;
  for (const Event& e : out)
    if (e.kind != Event::Kind::kMessage) {
      impl_->connect_deadline.reset();
      return out;
    }
  if (std::chrono::steady_clock::now() >= *impl_->connect_deadline) {
    impl_->connect_deadline.reset();
    ++impl_->attempt;  // whatever Paho says about this attempt later is dropped
    impl_->Abandon();
    out.push_back({Event::Kind::kConnectFailed,
                   "connect to " + impl_->options.broker_url + ": no answer within " +
                       std::to_string(GiveUpAfter(impl_->options).count()) + " ms"});
  }
  return out;
}

size_t MqttLink::queued_messages() const {
  std::lock_guard lock(impl_->mu);
  return impl_->queued_messages;
}

}  // namespace instrumeter
