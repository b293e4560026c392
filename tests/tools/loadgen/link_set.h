// The load generator's MQTT connections: many plain-TCP connections to one broker, driven by the
// generator's own thread through libmosquitto's network calls over one epoll set.
//
// Why not MqttLink (Paho), which the hub and agent use: Paho C gives every client a receive and a
// send thread hand-off and polls all of a process's sockets on each pass of its receive thread. At
// 100,000 emulated devices (100 connections, 10,000 envelopes and acks a second) that made the
// generator the largest process on the 2-core machine it shares with the hub and broker it
// measures: 0.77 cores, 0.4 of them Paho's receive thread (docs/performance.md, "Capacity"). Here a
// publish is written on the caller's thread and only sockets with something to read are visited.
// The hub's side of every measurement is unchanged.
//
// Not thread-safe: one owner thread calls everything. Events come back from Poll, never through
// callbacks into the owner.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/mqtt_link.h"
#include "common/status.h"

struct mosquitto;

namespace instrumeter::loadgen {

class LinkSet {
 public:
  struct Options {
    std::string broker_url;  // tcp://host:port (no TLS: the generator measures, it is not deployed)
    int keepalive_s = 60;
    // A connect (TCP, CONNACK, SUBACK) not answered within this long is reported failed (checked
    // once a second).
    int64_t connect_timeout_ms = 10'000;
  };
  // Refuses a URL it cannot connect to (another scheme, no port).
  static Result<std::unique_ptr<LinkSet>> Create(const Options& options);
  ~LinkSet();
  LinkSet(const LinkSet&) = delete;
  LinkSet& operator=(const LinkSet&) = delete;

  // A new connection, not yet connecting; returns its index. On every connect it subscribes to
  // `subscriptions` at QoS 1 and reports kConnected once the broker granted them.
  Result<size_t> Add(const std::string& client_id, std::vector<std::string> subscriptions);

  // Starts connecting link `i` afresh (a clean session: nothing of an earlier connection is sent
  // again). The outcome arrives from Poll: kConnected, or kConnectFailed (refused, reset, or no
  // answer within the connect timeout).
  Status Connect(size_t i);
  bool connected(size_t i) const;
  // QoS 1, written at once as far as the socket takes it. Unavailable when not connected.
  Status Publish(size_t i, const std::string& topic, const std::string& payload);

  struct Event {
    size_t link;
    MqttLink::Event event;
  };
  // Waits up to timeout_ms for network activity, carries it out and appends what happened
  // (connects, losses, messages) to `out`, oldest first. Keepalives and connect timeouts are
  // handled here too, so call it at least once a second.
  void Poll(int timeout_ms, std::vector<Event>* out);

  // Disconnects every link cleanly, waiting at most `timeout_ms` for the broker to take what was
  // written.
  void DisconnectAll(int timeout_ms);

 private:
  struct Link;
  LinkSet(const Options& options, std::string host, int port, int epoll_fd);
  void Settle(Link& link, int rc);
  void Close(Link& link, const std::string& why);
  // Tears the connection down without a word (Close reports it).
  void Release(Link& link);
  void Watch(Link& link);
  void Unwatch(Link& link);

  Options options_;
  std::string host_;
  int port_;
  int epoll_fd_;
  std::vector<std::unique_ptr<Link>> links_;
  std::vector<Event> events_;  // reported since the last Poll returned
  int64_t next_misc_ms_ = 0;
};

}  // namespace instrumeter::loadgen
