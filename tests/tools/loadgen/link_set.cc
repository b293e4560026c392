#include "link_set.h"

#include <mosquitto.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "common/clock.h"

namespace instrumeter::loadgen {
namespace {

constexpr int kMaxEventsPerWait = 256;

int64_t NowMs() { return SystemClock().MonotonicMs(); }

std::string Describe(int rc) {
  return rc == MOSQ_ERR_ERRNO ? std::strerror(errno) : mosquitto_strerror(rc);
}

}  // namespace

struct LinkSet::Link {
  enum class State { kIdle, kConnecting, kConnected };
  size_t index = 0;
  std::string client_id;
  std::vector<std::string> subscriptions;
  std::vector<Event>* events = nullptr;  // the set's, where callbacks report
  mosquitto* mosq = nullptr;
  State state = State::kIdle;
  int64_t connect_deadline_ms = 0;
  int subscribe_mid = -1;
  int watched_fd = -1;        // the socket registered with epoll, -1: none
  uint32_t watched_mask = 0;  // and for what

  void Report(MqttLink::Event::Kind kind, std::string detail) {
    events->push_back({index, {kind, std::move(detail)}});
  }

  // libmosquitto calls these from inside its loop_* calls, on the owner's thread.
  static void OnConnect(mosquitto* mosq, void* self, int rc) {
    Link& link = *static_cast<Link*>(self);
    if (rc != 0) {
      link.state = State::kIdle;  // Poll sees the socket close and tears the rest down
      link.Report(MqttLink::Event::Kind::kConnectFailed,
                  "broker refused " + link.client_id + ": " + mosquitto_connack_string(rc));
      return;
    }
    if (link.subscriptions.empty()) return link.Ready();
    std::vector<char*> topics;
    for (std::string& s : link.subscriptions) topics.push_back(s.data());
    const int sub_rc =
        mosquitto_subscribe_multiple(mosq, &link.subscribe_mid, static_cast<int>(topics.size()),
                                     topics.data(), /*qos=*/1, /*options=*/0, nullptr);
    if (sub_rc != MOSQ_ERR_SUCCESS) {
      link.state = State::kIdle;
      link.Report(MqttLink::Event::Kind::kConnectFailed, "subscribe: " + Describe(sub_rc));
    }
  }

  static void OnSubscribe(mosquitto*, void* self, int mid, int count, const int* granted) {
    Link& link = *static_cast<Link*>(self);
    if (mid != link.subscribe_mid || link.state != State::kConnecting) return;
    for (int i = 0; i < count; ++i)
      if (granted[i] > 2) {  // 0x80: refused
        link.state = State::kIdle;
        link.Report(
            MqttLink::Event::Kind::kConnectFailed,
            "broker refused the subscription to " + link.subscriptions[static_cast<size_t>(i)]);
        return;
      }
    link.Ready();
  }

  static void OnMessage(mosquitto*, void* self, const mosquitto_message* msg) {
    Link& link = *static_cast<Link*>(self);
    MqttLink::Event e{
        MqttLink::Event::Kind::kMessage,
        {},
        msg->topic,
        std::string(static_cast<const char*>(msg->payload), static_cast<size_t>(msg->payloadlen)),
        msg->retain,
        msg->qos};
    link.events->push_back({link.index, std::move(e)});
  }

  void Ready() {
    state = State::kConnected;
    Report(MqttLink::Event::Kind::kConnected, client_id);
  }
};

Result<std::unique_ptr<LinkSet>> LinkSet::Create(const Options& options) {
  const std::string& broker_url = options.broker_url;
  constexpr std::string_view kScheme = "tcp://";
  const size_t colon = broker_url.rfind(':');
  if (broker_url.rfind(kScheme, 0) != 0 || colon == std::string::npos || colon < kScheme.size())
    return Status::InvalidArgument("broker URL '" + broker_url +
                                   "': the load generator takes tcp://host:port");
  char* end = nullptr;
  const long port = std::strtol(broker_url.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || port <= 0 || port > 65535)
    return Status::InvalidArgument("broker URL '" + broker_url + "': bad port");
  std::string host = broker_url.substr(kScheme.size(), colon - kScheme.size());
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  // Once per process and never undone: libmosquitto's cleanup would also tear down OpenSSL state
  // the generator's signing uses.
  static std::once_flag init;
  std::call_once(init, [] { mosquitto_lib_init(); });
  const int epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) return Status::IoError(std::string("epoll_create1: ") + std::strerror(errno));
  return std::unique_ptr<LinkSet>(
      new LinkSet(options, std::move(host), static_cast<int>(port), epoll_fd));
}

LinkSet::LinkSet(const Options& options, std::string host, int port, int epoll_fd)
    : options_(options), host_(std::move(host)), port_(port), epoll_fd_(epoll_fd) {}

LinkSet::~LinkSet() {
  for (auto& link : links_)
    if (link->mosq != nullptr) mosquitto_destroy(link->mosq);
  ::close(epoll_fd_);
}

Result<size_t> LinkSet::Add(const std::string& client_id, std::vector<std::string> subscriptions) {
  auto link = std::make_unique<Link>();
  link->index = links_.size();
  link->client_id = client_id;
  link->subscriptions = std::move(subscriptions);
  link->events = &events_;
  links_.push_back(std::move(link));
  return links_.size() - 1;
}

Status LinkSet::Connect(size_t i) {
  Link& link = *links_.at(i);
  Release(link);
  link.mosq = mosquitto_new(link.client_id.c_str(), /*clean_session=*/true, &link);
  if (link.mosq == nullptr)
    return Status::Unavailable("connection " + link.client_id + ": " + std::strerror(errno));
  mosquitto_int_option(link.mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
  // Without it a small publish waits for the TCP ack of the one before (docs/performance.md).
  mosquitto_int_option(link.mosq, MOSQ_OPT_TCP_NODELAY, 1);
  // The generator's window per device bounds what is in flight; libmosquitto's default of 20
  // would queue the rest unsent.
  mosquitto_max_inflight_messages_set(link.mosq, 0);
  mosquitto_connect_callback_set(link.mosq, &Link::OnConnect);
  mosquitto_subscribe_callback_set(link.mosq, &Link::OnSubscribe);
  mosquitto_message_callback_set(link.mosq, &Link::OnMessage);
  const int rc = mosquitto_connect_async(link.mosq, host_.c_str(), port_, options_.keepalive_s);
  if (rc != MOSQ_ERR_SUCCESS) {
    link.Report(MqttLink::Event::Kind::kConnectFailed, "connect " + link.client_id + " to " +
                                                           host_ + ":" + std::to_string(port_) +
                                                           ": " + Describe(rc));
    Release(link);
    return Status::Ok();
  }
  link.state = Link::State::kConnecting;
  link.connect_deadline_ms = NowMs() + options_.connect_timeout_ms;
  Watch(link);
  return Status::Ok();
}

bool LinkSet::connected(size_t i) const { return links_.at(i)->state == Link::State::kConnected; }

Status LinkSet::Publish(size_t i, const std::string& topic, const std::string& payload) {
  Link& link = *links_.at(i);
  if (link.state != Link::State::kConnected)
    return Status::Unavailable("connection " + link.client_id + " is not connected");
  const int rc = mosquitto_publish(link.mosq, nullptr, topic.c_str(),
                                   static_cast<int>(payload.size()), payload.data(), /*qos=*/1,
                                   /*retain=*/false);
  if (rc != MOSQ_ERR_SUCCESS) {
    const std::string why = "publish to " + topic + ": " + Describe(rc);
    Close(link, why);
    return Status::Unavailable(why);
  }
  Watch(link);
  return Status::Ok();
}

void LinkSet::Poll(int timeout_ms, std::vector<Event>* out) {
  epoll_event ready[kMaxEventsPerWait];
  const int n = ::epoll_wait(epoll_fd_, ready, kMaxEventsPerWait, events_.empty() ? timeout_ms : 0);
  for (int k = 0; k < n; ++k) {
    Link& link = *links_[ready[k].data.u64];
    if (link.mosq == nullptr) continue;
    int rc = MOSQ_ERR_SUCCESS;
    if (ready[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) rc = mosquitto_loop_read(link.mosq, 1);
    if (rc == MOSQ_ERR_SUCCESS && (ready[k].events & EPOLLOUT) && link.mosq != nullptr)
      rc = mosquitto_loop_write(link.mosq, 1);
    Settle(link, rc);
  }
  const int64_t now = NowMs();
  if (now >= next_misc_ms_) {
    next_misc_ms_ = now + 1000;
    for (auto& link : links_) {
      if (link->mosq == nullptr) continue;
      if (link->state == Link::State::kConnecting && now >= link->connect_deadline_ms) {
        Close(*link, "no answer from the broker within " +
                         std::to_string(options_.connect_timeout_ms) + " ms");
        continue;
      }
      Settle(*link, mosquitto_loop_misc(link->mosq));  // keepalive pings
    }
  }
  out->insert(out->end(), std::make_move_iterator(events_.begin()),
              std::make_move_iterator(events_.end()));
  events_.clear();
}

void LinkSet::DisconnectAll(int timeout_ms) {
  for (auto& link : links_)
    if (link->state == Link::State::kConnected) {
      mosquitto_disconnect(link->mosq);
      Watch(*link);
    }
  const int64_t deadline = NowMs() + timeout_ms;
  auto writing = [&] {
    for (auto& link : links_)
      if (link->mosq != nullptr && link->state == Link::State::kConnected &&
          mosquitto_want_write(link->mosq))
        return true;
    return false;
  };
  std::vector<Event> ignored;
  while (writing() && NowMs() < deadline) Poll(10, &ignored);
  for (auto& link : links_) Release(*link);
}

// After a loop call that returned `rc`: a connection libmosquitto closed (or that failed) is
// torn down and reported; otherwise epoll watches for what the link now waits for.
void LinkSet::Settle(Link& link, int rc) {
  if (link.mosq == nullptr) return;
  if (rc != MOSQ_ERR_SUCCESS || mosquitto_socket(link.mosq) < 0 ||
      link.state == Link::State::kIdle) {
    Close(link, rc != MOSQ_ERR_SUCCESS ? Describe(rc) : "connection closed");
    return;
  }
  Watch(link);
}

void LinkSet::Close(Link& link, const std::string& why) {
  const Link::State was = link.state;
  Release(link);
  if (was == Link::State::kConnected)
    link.Report(MqttLink::Event::Kind::kConnectionLost, link.client_id + ": " + why);
  else if (was == Link::State::kConnecting)
    link.Report(MqttLink::Event::Kind::kConnectFailed, link.client_id + ": " + why);
  // kIdle: a refusal the callback already reported.
}

void LinkSet::Release(Link& link) {
  if (link.mosq != nullptr) {
    Unwatch(link);
    mosquitto_destroy(link.mosq);
    link.mosq = nullptr;
  }
  link.state = Link::State::kIdle;
}

void LinkSet::Watch(Link& link) {
  const int fd = mosquitto_socket(link.mosq);
  const uint32_t mask = EPOLLIN | (mosquitto_want_write(link.mosq) ? EPOLLOUT : 0u);
  if (fd == link.watched_fd && mask == link.watched_mask) return;
  if (link.watched_fd >= 0 && fd != link.watched_fd) Unwatch(link);
  if (fd < 0) return;
  epoll_event ev{};
  ev.events = mask;
  ev.data.u64 = link.index;
  const int op = link.watched_fd == fd ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  if (::epoll_ctl(epoll_fd_, op, fd, &ev) == 0) {
    link.watched_fd = fd;
    link.watched_mask = mask;
  }
}

void LinkSet::Unwatch(Link& link) {
  if (link.watched_fd >= 0) (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, link.watched_fd, nullptr);
  link.watched_fd = -1;
  link.watched_mask = 0;
}

}  // namespace instrumeter::loadgen
