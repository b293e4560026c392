// One MQTT connection (Eclipse Paho C++) that hands everything it hears to a single-threaded
// owner loop, as events in a queue: connected, connect failed, connection lost, message.
//
// Paho's callbacks run on Paho's own thread and do nothing but enqueue, so the owner never shares
// state with them. The owner decides when to reconnect (with Backoff); Paho's own automatic
// reconnect is off. Durability is not Paho's job here: persistence is off, and whatever must
// survive lives in our own stores (see protocol/README.md, "Delivery").
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace instrumeter {

class MqttLink {
 public:
  struct Will {
    std::string topic;
    std::string payload;
    bool retained = true;
  };

  // TLS for ssl:// URLs (PEM files): TLS 1.2 or newer (OpenSSL 3 refuses older versions at its
  // default security level), and the broker's certificate is always verified against
  // `ca_file`, host name included.
  struct Tls {
    std::string ca_file;    // the CA that signed the broker's certificate
    std::string cert_file;  // this client's certificate (empty: none)
    std::string key_file;   // its private key
  };

  struct Options {
    std::string broker_url;  // tcp://host:port or ssl://host:port
    std::string client_id;
    bool clean_session = true;
    int keepalive_s = 30;
    int connect_timeout_ms = 5000;
    // A connect Paho has not answered after this long is given up (0: twice
    // connect_timeout_ms plus 2 s; see Connect).
    int give_up_connect_ms = 0;
    int max_inflight = 64;  // QoS 1 publishes Paho may have outstanding
    // Publishes Paho may queue before its send thread writes them. Paho's own default is 100;
    // beyond it Publish fails ("No more messages can be buffered"), so a client that publishes
    // in bursts (the hub acks every device of a commit at once) needs more.
    int max_buffered_messages = 100;
    std::optional<Will> will;
    std::optional<Tls> tls;
    // Subscribed at QoS 1 on every connect, before kConnected is reported.
    std::vector<std::string> subscriptions;
  };

  struct Event {
    enum class Kind { kConnected, kConnectFailed, kConnectionLost, kMessage };
    Kind kind;
    std::string detail;  // reason, for failures and losses
    std::string topic;   // kMessage
    std::string payload;
    bool retained = false;
    int qos = 0;  // kMessage: the QoS it was delivered at (the lower of publish and subscription)
    std::chrono::steady_clock::time_point received{};  // kMessage: when Paho handed it over
  };

  static Result<std::unique_ptr<MqttLink>> Create(const Options& options);
  ~MqttLink();
  MqttLink(const MqttLink&) = delete;
  MqttLink& operator=(const MqttLink&) = delete;

  // Starts an asynchronous connect; its outcome arrives as kConnected or kConnectFailed. Should
  // Paho not answer (connected and subscribed, or failed) within give_up_connect_ms, the attempt
  // is given up: the owner must call TakeEvents by connect_deadline(), which then reports
  // kConnectFailed.
  Status Connect();
  // While a connect is unanswered: when TakeEvents gives it up. Owner thread only.
  std::optional<std::chrono::steady_clock::time_point> connect_deadline() const;
  // Milliseconds from now until `deadline`, never negative: for loops that poll().
  static int64_t MsUntil(std::chrono::steady_clock::time_point deadline);
  bool connected() const;
  // QoS 1, asynchronous. Unavailable when not connected or when Paho refuses it.
  Status Publish(const std::string& topic, const std::string& payload, bool retained);
  // QoS 0, not retained: for messages a later one makes good when this one is lost (the hub's
  // cumulative acks). The broker neither acknowledges it nor waits for the receiver to.
  Status PublishAtMostOnce(const std::string& topic, const std::string& payload);
  // A clean disconnect (the will is not published), waiting at most `timeout`.
  void Disconnect(std::chrono::milliseconds timeout);

  // Readable while events wait (an eventfd), for loops that poll() several sources.
  int wake_fd() const;
  // Blocks until at least one event waits or `timeout` passes; true if one waits, or if the
  // connect deadline passed (TakeEvents then reports the attempt given up).
  bool WaitForEvents(std::chrono::milliseconds timeout);
  // Removes and returns every waiting event, oldest first.
  std::vector<Event> TakeEvents();
  // Messages received and not yet taken. The queue is unbounded on purpose: Paho C holds a
  // process-wide lock while it runs our callback, so blocking there for back-pressure would stall
  // every publish in the process (the hub's acks included). Owners watch this as a metric.
  size_t queued_messages() const;

 private:
  struct Impl;
  explicit MqttLink(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace instrumeter
