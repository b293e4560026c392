#include "loadgen.h"

#include <sys/resource.h>
#include <time.h>

#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <queue>
#include <unordered_map>

#include "common/clock.h"
#include "common/mqtt_link.h"
#include "link_set.h"
#include "protocol/codec.h"
#include "protocol/topics.h"

namespace instrumeter::loadgen {
namespace {

namespace v1 = ::instrumeter::v1;
using protocol::Channel;

constexpr int kEventsPerStateFlip = 10;  // IDLE <-> IN_USE every 10 events
constexpr int64_t kMonoStartMs = 5'000'000;
// Live mode starts its schedule at the latest this long after the first connect.
constexpr int64_t kScheduleGraceMs = 30'000;

int64_t MonoMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

struct Device {
  std::string id;
  std::string up_topic;
  size_t connection = 0;  // index into the connections
  std::optional<protocol::SigningKey> key;
  std::optional<int64_t> last_signed_ms;
  uint64_t chain_seq = 0;  // chain_link is link_{chain_seq}
  std::string chain_link;
  int64_t due_offset_ms = 0;     // live mode: when event 1 is due, after the start
  std::vector<int32_t> sent_ms;  // backlog mode: [i] first publication of sequence i + 1
  uint64_t acked = 0;
  uint64_t next_to_send = 1;
  uint64_t highest_sent = 0;
  bool drained = false;
  bool queued = false;           // in the work list of the next pass
  int64_t last_progress_ms = 0;  // last ack advance or (re)start of sending
};

// One MQTT connection (of the LinkSet, same index), carrying the devices of one group
// (devices_per_connection).
struct Connection {
  std::vector<size_t> devices;
  bool connected = false;
  bool ever_connected = false;
  int64_t reconnect_at_ms = -1;
};

// link_S of `d` over the shared backlog `events`, going forward from the last link computed
// (go-back-N rarely asks for an earlier one: then the chain is recomputed from its genesis).
const std::string& LinkAt(Device* d, uint64_t s, const std::vector<std::string>& events) {
  if (s < d->chain_seq || d->chain_link.empty()) {
    d->chain_seq = 0;
    d->chain_link = protocol::ChainGenesis(d->id);
  }
  for (; d->chain_seq < s; ++d->chain_seq)
    d->chain_link = protocol::ChainNext(d->chain_link, events[d->chain_seq]);
  return d->chain_link;
}

}  // namespace

LatencySummary SummariseLatencies(std::vector<int32_t>* samples) {
  LatencySummary out;
  out.samples = samples->size();
  if (samples->empty()) return out;
  // Nearest rank: the smallest sample with at least p % of the samples at or below it.
  auto rank = [&](double p) {
    const size_t n = samples->size();
    size_t k = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(n)));
    k = std::clamp<size_t>(k, 1, n) - 1;
    std::nth_element(samples->begin(), samples->begin() + static_cast<std::ptrdiff_t>(k),
                     samples->end());
    return static_cast<int64_t>((*samples)[k]);
  };
  out.p50_ms = rank(50);
  out.p90_ms = rank(90);
  out.p99_ms = rank(99);
  out.max_ms = *std::max_element(samples->begin(), samples->end());
  return out;
}

Result<protocol::SigningKey> DeviceKey(const std::string& device_id) {
  // PKCS#8 DER of an Ed25519 private key is this fixed prefix and the 32-byte seed (RFC 8410).
  static constexpr unsigned char kPkcs8Prefix[] = {0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
                                                   0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20};
  const std::string der =
      std::string(reinterpret_cast<const char*>(kPkcs8Prefix), sizeof kPkcs8Prefix) +
      protocol::Sha256("instrumeter-loadgen/key/" + device_id);
  std::string base64(4 * ((der.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(base64.data()),
                                reinterpret_cast<const unsigned char*>(der.data()),
                                static_cast<int>(der.size()));
  base64.resize(static_cast<size_t>(n));
  return protocol::SigningKey::FromPem(
      "-----BEGIN PRIVATE KEY-----\n" + base64 + "\n-----END PRIVATE KEY-----\n",
      "loadgen key of " + device_id);
}

std::string DeviceId(const LoadOptions& options, int index) {
  char number[16];
  std::snprintf(number, sizeof number, "%05d", index);
  return options.device_prefix + number;
}

std::vector<std::string> MakeBacklog(const std::string& boot_id, int count,
                                     const Timeline& timeline, int64_t* powered_ms,
                                     int64_t* in_use_ms) {
  const auto step = static_cast<uint64_t>(timeline.step_ms);
  std::vector<std::string> out;
  uint64_t powered = 0;
  uint64_t in_use = 0;
  v1::InstrumentState state = v1::INSTRUMENT_STATE_IDLE;
  for (int i = 0; i < count; ++i) {
    if (i > 0) {  // the time since the previous point was spent in `state`
      powered += step;
      if (state == v1::INSTRUMENT_STATE_IN_USE) in_use += step;
    }
    v1::Event event;
    event.set_sequence(static_cast<uint64_t>(i) + 1);
    event.mutable_at()->set_wall_unix_ms(timeline.wall_start_ms + i * timeline.step_ms);
    event.mutable_at()->set_monotonic_ms(kMonoStartMs + i * timeline.step_ms);
    event.mutable_at()->set_boot_id(boot_id);
    v1::Counters* counters = nullptr;
    if (i == 0 || i % kEventsPerStateFlip == 0) {
      const v1::InstrumentState previous = i == 0 ? v1::INSTRUMENT_STATE_UNSPECIFIED : state;
      if (i > 0)
        state = state == v1::INSTRUMENT_STATE_IDLE ? v1::INSTRUMENT_STATE_IN_USE
                                                   : v1::INSTRUMENT_STATE_IDLE;
      v1::StateChange* sc = event.mutable_state_change();
      sc->set_state(state);
      sc->set_previous_state(previous);
      sc->set_run_start(i == 0);
      counters = sc->mutable_counters();
    } else {
      v1::Heartbeat* hb = event.mutable_heartbeat();
      hb->set_state(state);
      hb->set_agent_version("loadgen");
      hb->set_interval_ms(static_cast<uint32_t>(timeline.step_ms));
      hb->set_outbox_depth(static_cast<uint64_t>(count - i));
      counters = hb->mutable_counters();
    }
    counters->set_powered_ms(powered);
    counters->set_in_use_ms(in_use);
    out.push_back(event.SerializeAsString());
  }
  *powered_ms = static_cast<int64_t>(powered);
  *in_use_ms = static_cast<int64_t>(in_use);
  return out;
}

namespace {

// One RunLoad: the devices, their connections and the report, and what one pass of the loop does.
// Only devices with something to do are visited: those a connection event or an ack touched, those
// whose next event became due (live mode), those the rate held back in the last pass and,
// every kSweepMs, all of them (ack timeouts), so that 100,000 emulated devices cost little while
// idle.
class LoadRun {
 public:
  LoadRun(const LoadOptions& options, LoadReport* report) : o_(options), report_(*report) {}

  Status Setup() {
    live_ = o_.period_ms > 0;
    if (live_)
      report_.offered_events_per_s =
          static_cast<double>(o_.devices) * 1000.0 / static_cast<double>(o_.period_ms);
    // Every device sends the same event bytes (only its chain, keyed by its id, differs). Live
    // events carry the real time, as an agent's do: events from a settled day would make the hub
    // measure that day again on every verification pass, as it must for late events.
    Timeline timeline;
    if (live_) timeline = {.wall_start_ms = SystemClock().WallUnixMs(), .step_ms = o_.period_ms};
    events_ = MakeBacklog(kBootId, o_.backlog, timeline, &report_.expected_powered_ms,
                          &report_.expected_in_use_ms);
    closes_state_.resize(events_.size());
    for (size_t i = 0; i < events_.size(); ++i) {
      v1::Event event;
      closes_state_[i] = !event.ParseFromString(events_[i]) || protocol::ClosesState(event);
    }
    const size_t per_connection = static_cast<size_t>(o_.devices_per_connection);
    devices_.resize(static_cast<size_t>(o_.devices));
    for (size_t i = 0; i < devices_.size(); ++i) {
      Device& d = devices_[i];
      d.id = DeviceId(o_, static_cast<int>(i));
      d.up_topic = protocol::Topic(d.id, Channel::kUp);
      by_id_[d.id] = i;
      if (o_.sign) {
        auto key = DeviceKey(d.id);
        if (!key.ok()) return key.status();
        d.key.emplace(std::move(*key));
      }
      if (live_) {
        const int64_t spread = o_.start_spread_ms > 0 ? o_.start_spread_ms : o_.period_ms;
        d.due_offset_ms = static_cast<int64_t>(i) * spread / o_.devices;
        due_.push({d.due_offset_ms, i, 1});
      } else
        d.sent_ms.assign(events_.size(), -1);
      d.connection = i / per_connection;
      if (d.connection == connections_.size()) connections_.emplace_back();
      connections_[d.connection].devices.push_back(i);
    }
    auto links = LinkSet::Create({.broker_url = o_.broker_url});
    if (!links.ok()) return links.status();
    links_ = std::move(*links);
    for (size_t c = 0; c < connections_.size(); ++c) {
      // One device per connection connects as that device, as an agent does.
      const std::string client_id =
          per_connection == 1 ? devices_[c].id : o_.device_prefix + "conn-" + std::to_string(c);
      std::vector<std::string> subscriptions;
      for (size_t i : connections_[c].devices)
        subscriptions.push_back(protocol::Topic(devices_[i].id, Channel::kAck));
      auto added = links_->Add(client_id, std::move(subscriptions));
      if (!added.ok()) return added.status();
    }
    latencies_.reserve(devices_.size() * events_.size());
    if (live_) send_lags_.reserve(devices_.size() * events_.size());
    return Status::Ok();
  }

  Status Run() {
    start_ = MonoMs();
    // Every connect first, then wait for all.
    for (size_t c = 0; c < connections_.size(); ++c)
      INSTRUMETER_RETURN_IF_ERROR(links_->Connect(c));
    std::vector<LinkSet::Event> events;
    int64_t next_sweep_ms = start_;
    while (drained_ < o_.devices) {
      const int64_t now = MonoMs();
      if (now - start_ > o_.timeout_ms) break;
      // Live mode wakes often: an event due must go out within a few ms to measure the hub.
      events.clear();
      links_->Poll(live_ ? 2 : 20, &events);
      for (LinkSet::Event& e : events) OnEvent(e.link, e.event);
      if (o_.rate > 0) {
        // A burst of at most one second, and never less than one envelope.
        const double burst = std::max(o_.rate, static_cast<double>(o_.events_per_envelope));
        tokens_ =
            std::min(burst, tokens_ + o_.rate * static_cast<double>(now - tokens_at_) / 1000.0);
        tokens_at_ = now;
      }
      for (size_t c = 0; c < connections_.size(); ++c) {
        Connection& conn = connections_[c];
        if (!conn.connected && conn.reconnect_at_ms >= 0 && MonoMs() >= conn.reconnect_at_ms) {
          conn.reconnect_at_ms = -1;
          INSTRUMETER_RETURN_IF_ERROR(links_->Connect(c));
        }
      }
      if (live_) QueueDue();
      if (MonoMs() >= next_sweep_ms) {
        for (size_t i = 0; i < devices_.size(); ++i) Queue(i);
        next_sweep_ms = MonoMs() + kSweepMs;
      }
      std::vector<size_t> work;
      work.swap(work_);
      for (size_t i : work) {
        devices_[i].queued = false;
        INSTRUMETER_RETURN_IF_ERROR(Service(i));
      }
      for (size_t i : held_back_) Queue(i);
      held_back_.clear();
    }
    const int64_t end = MonoMs();
    report_.drain_ms = end - start_;
    report_.drain_after_last_due_ms =
        live_ ? end - (schedule_ms_ < 0 ? start_ : DueMs(devices_.back(), events_.size()))
              : report_.drain_ms;
    report_.devices_drained = drained_;
    report_.complete = drained_ == o_.devices;
    report_.events_total = static_cast<uint64_t>(o_.devices) * events_.size();
    report_.events_per_s = report_.drain_ms > 0 ? static_cast<double>(report_.events_total) *
                                                      1000.0 / static_cast<double>(report_.drain_ms)
                                                : 0;
    report_.ack_latency = SummariseLatencies(&latencies_);
    report_.send_lag = SummariseLatencies(&send_lags_);
    links_->DisconnectAll(200);
    return Status::Ok();
  }

 private:
  static constexpr int64_t kSweepMs = 1000;
  static constexpr const char* kBootId = "loadgen-0000-0000-0000-000000000001";

  void Queue(size_t i) {
    if (devices_[i].queued) return;
    devices_[i].queued = true;
    work_.push_back(i);
  }

  // Live mode: when sequence `seq` of `d` became due.
  int64_t DueMs(const Device& d, uint64_t seq) const {
    return schedule_ms_ + d.due_offset_ms + static_cast<int64_t>(seq - 1) * o_.period_ms;
  }

  // Live mode: whether sequence `seq` of `d` falls in the warm-up, uncounted.
  bool Warming(const Device& d, uint64_t seq) const {
    return DueMs(d, seq) - schedule_ms_ < o_.warmup_ms;
  }

  // Live mode: queues every device whose next event became due since the last pass.
  void QueueDue() {
    if (schedule_ms_ < 0 && MonoMs() - start_ > kScheduleGraceMs) schedule_ms_ = MonoMs();
    if (schedule_ms_ < 0) return;
    const int64_t now = MonoMs() - schedule_ms_;
    while (!due_.empty() && due_.top().after_schedule_ms <= now) {
      const NextDue next = due_.top();
      due_.pop();
      Queue(next.device);
      if (next.seq < events_.size())
        due_.push({next.after_schedule_ms + o_.period_ms, next.device, next.seq + 1});
    }
  }

  void OnEvent(size_t c, const MqttLink::Event& e) {
    Connection& conn = connections_[c];
    switch (e.kind) {
      case MqttLink::Event::Kind::kConnected:
        conn.connected = true;
        if (!conn.ever_connected) {
          conn.ever_connected = true;
          // Live mode: the schedule starts once every connection is up (or after a grace), so
          // that connecting, which the protocol does not time, is not counted as latency.
          if (++connected_once_ == connections_.size()) {
            report_.connect_ms = MonoMs() - start_;
            schedule_ms_ = MonoMs();
          }
        }
        for (size_t i : conn.devices) {
          Device& d = devices_[i];
          d.next_to_send = d.acked + 1;  // go-back-N after every (re)connect
          d.last_progress_ms = MonoMs();
          Queue(i);
        }
        break;
      case MqttLink::Event::Kind::kConnectFailed:
      case MqttLink::Event::Kind::kConnectionLost:
        if (conn.connected) ++report_.connection_losses;
        conn.connected = false;
        conn.reconnect_at_ms = MonoMs() + o_.reconnect_ms;
        break;
      case MqttLink::Event::Kind::kMessage: {
        auto topic = protocol::ParseTopic(e.topic);
        if (!topic.ok()) break;
        auto it = by_id_.find(topic->device_id);
        v1::Downlink downlink;
        if (it == by_id_.end() || !downlink.ParseFromString(e.payload)) break;
        OnDownlink(it->second, downlink);
        Queue(it->second);
        break;
      }
    }
  }

  void OnDownlink(size_t i, const v1::Downlink& downlink) {
    Device& d = devices_[i];
    if (downlink.has_ack()) {
      ++report_.acks;
      const uint64_t n =
          std::min<uint64_t>(downlink.ack().highest_contiguous_sequence(), events_.size());
      if (n <= d.acked) return;
      const int64_t acked_at = MonoMs();
      for (uint64_t seq = d.acked + 1; seq <= n; ++seq) {
        // Stored by an earlier run and never sent by this one: no latency to measure.
        if (!live_ && d.sent_ms[seq - 1] < 0) continue;
        if (live_ && Warming(d, seq)) continue;
        const int64_t from = live_ ? DueMs(d, seq) : start_ + d.sent_ms[seq - 1];
        latencies_.push_back(static_cast<int32_t>(std::max<int64_t>(0, acked_at - from)));
      }
      d.acked = n;
      d.last_progress_ms = acked_at;
      d.next_to_send = std::max(d.next_to_send, d.acked + 1);
    } else if (downlink.has_resend()) {
      ++report_.resend_requests;
      d.next_to_send = d.acked + 1;
    }
  }

  // Sends what device i's window allows of what its outbox holds: everything (backlog) or what
  // became due (live).
  Status Service(size_t i) {
    Device& d = devices_[i];
    const uint64_t backlog = events_.size();
    if (d.drained) return Status::Ok();
    if (d.acked >= backlog) {
      d.drained = true;
      ++drained_;
      return Status::Ok();
    }
    if (!connections_[d.connection].connected) return Status::Ok();
    if (d.next_to_send > d.acked + 1 && MonoMs() - d.last_progress_ms > o_.ack_timeout_ms) {
      ++report_.ack_timeouts;
      d.next_to_send = d.acked + 1;
      d.last_progress_ms = MonoMs();
    }
    uint64_t available = backlog;
    if (live_) {
      const int64_t since = schedule_ms_ < 0 ? -1 : MonoMs() - schedule_ms_ - d.due_offset_ms;
      available =
          since < 0 ? 0
                    : std::min<uint64_t>(backlog, static_cast<uint64_t>(since / o_.period_ms) + 1);
    }
    const size_t per_envelope = static_cast<size_t>(o_.events_per_envelope);
    // Envelopes in flight: what was sent beyond the ack, in envelope units.
    while (d.next_to_send <= available &&
           (d.next_to_send - d.acked - 1) < per_envelope * static_cast<size_t>(o_.window)) {
      const uint64_t first = d.next_to_send;
      const uint64_t last = std::min<uint64_t>(available, first + per_envelope - 1);
      const double n = static_cast<double>(last - first + 1);
      if (o_.rate > 0 && tokens_ < n) {
        held_back_.push_back(i);
        break;
      }
      const int64_t sent_at = MonoMs();
      // The agent's rule (protocol/README.md, "Signing").
      bool sign =
          d.key.has_value() && (last > first || !d.last_signed_ms.has_value() ||
                                sent_at - *d.last_signed_ms >= protocol::kMaxSignatureIntervalMs);
      for (uint64_t seq = first; seq <= last && d.key.has_value() && !sign; ++seq)
        sign = closes_state_[seq - 1];
      std::optional<v1::Signature> signature;
      if (sign) {
        auto signed_head = d.key->SignHead(d.id, last, LinkAt(&d, last, events_));
        if (!signed_head.ok()) return signed_head.status().WithContext("device " + d.id);
        signature = std::move(*signed_head);
      }
      std::vector<std::string> batch(events_.begin() + static_cast<std::ptrdiff_t>(first - 1),
                                     events_.begin() + static_cast<std::ptrdiff_t>(last));
      if (!links_
               ->Publish(d.connection, d.up_topic,
                         protocol::EncodeEnvelope(d.id, kBootId, first, batch,
                                                  signature ? &*signature : nullptr))
               .ok())
        break;  // the connection was lost: its devices go back N when it is up again
      if (signature) {
        d.last_signed_ms = sent_at;
        ++report_.envelopes_signed;
      }
      if (!live_)
        for (uint64_t seq = first; seq <= last; ++seq)
          if (d.sent_ms[seq - 1] < 0) d.sent_ms[seq - 1] = static_cast<int32_t>(sent_at - start_);
      for (uint64_t seq = std::max(first, d.highest_sent + 1); live_ && seq <= last; ++seq)
        if (!Warming(d, seq))
          send_lags_.push_back(static_cast<int32_t>(std::max<int64_t>(0, sent_at - DueMs(d, seq))));
      d.highest_sent = std::max(d.highest_sent, last);
      if (o_.rate > 0) tokens_ -= n;
      ++report_.envelopes_sent;
      report_.events_sent += last - first + 1;
      if (d.next_to_send == d.acked + 1) d.last_progress_ms = sent_at;
      d.next_to_send = last + 1;
    }
    return Status::Ok();
  }

  const LoadOptions& o_;
  LoadReport& report_;
  bool live_ = false;
  std::vector<std::string> events_;
  std::vector<bool> closes_state_;
  std::vector<Device> devices_;
  std::unordered_map<std::string, size_t> by_id_;
  std::vector<Connection> connections_;
  std::unique_ptr<LinkSet> links_;
  std::vector<size_t> work_;
  std::vector<size_t> held_back_;
  std::vector<int32_t> latencies_;
  std::vector<int32_t> send_lags_;  // live mode
  int64_t start_ = 0;
  int64_t schedule_ms_ = -1;
  // Live mode: every device's next event not yet queued, soonest first.
  struct NextDue {
    int64_t after_schedule_ms;
    size_t device;
    uint64_t seq;
    bool operator>(const NextDue& o) const { return after_schedule_ms > o.after_schedule_ms; }
  };
  std::priority_queue<NextDue, std::vector<NextDue>, std::greater<>> due_;
  size_t connected_once_ = 0;
  int drained_ = 0;
  double tokens_ = 0;
  int64_t tokens_at_ = 0;
};

}  // namespace

Result<LoadReport> RunLoad(const LoadOptions& options) {
  if (options.devices < 1 || options.backlog < 1 || options.events_per_envelope < 1 ||
      options.window < 1 || options.period_ms < 0 || options.devices_per_connection < 1 ||
      options.warmup_ms < 0 || options.start_spread_ms < 0)
    return Status::InvalidArgument(
        "devices, backlog, events per envelope, window and devices per connection must be >= 1, "
        "period, start spread and warm-up >= 0");
  // Each connection holds a socket and an eventfd: a thousand pass the usual soft limit.
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }
  LoadReport report;
  report.devices = options.devices;
  report.backlog = options.backlog;
  LoadRun run(options, &report);
  INSTRUMETER_RETURN_IF_ERROR(run.Setup());
  INSTRUMETER_RETURN_IF_ERROR(run.Run());
  return report;
}

std::string ReportJson(const LoadReport& r) {
  char text[1536];
  std::snprintf(
      text, sizeof text,
      "{\"devices\": %d, \"backlog\": %d, \"devices_drained\": %d, \"complete\": %s, "
      "\"events_total\": %llu, \"connect_ms\": %lld, \"drain_ms\": %lld, "
      "\"events_per_s\": %.1f, \"envelopes_sent\": %llu, \"envelopes_signed\": %llu, "
      "\"events_sent\": %llu, \"acks\": %llu, \"resend_requests\": %llu, "
      "\"ack_timeouts\": %llu, \"connection_losses\": %llu, \"ack_latency_samples\": %llu, "
      "\"ack_p50_ms\": %lld, \"ack_p90_ms\": %lld, \"ack_p99_ms\": %lld, \"ack_max_ms\": %lld, "
      "\"send_lag_p50_ms\": %lld, \"send_lag_p99_ms\": %lld, \"send_lag_max_ms\": %lld, "
      "\"offered_events_per_s\": %.1f, \"drain_after_last_due_ms\": %lld, "
      "\"expected_powered_ms\": %lld, \"expected_in_use_ms\": %lld}\n",
      r.devices, r.backlog, r.devices_drained, r.complete ? "true" : "false",
      static_cast<unsigned long long>(r.events_total), static_cast<long long>(r.connect_ms),
      static_cast<long long>(r.drain_ms), r.events_per_s,
      static_cast<unsigned long long>(r.envelopes_sent),
      static_cast<unsigned long long>(r.envelopes_signed),
      static_cast<unsigned long long>(r.events_sent), static_cast<unsigned long long>(r.acks),
      static_cast<unsigned long long>(r.resend_requests),
      static_cast<unsigned long long>(r.ack_timeouts),
      static_cast<unsigned long long>(r.connection_losses),
      static_cast<unsigned long long>(r.ack_latency.samples),
      static_cast<long long>(r.ack_latency.p50_ms), static_cast<long long>(r.ack_latency.p90_ms),
      static_cast<long long>(r.ack_latency.p99_ms), static_cast<long long>(r.ack_latency.max_ms),
      static_cast<long long>(r.send_lag.p50_ms), static_cast<long long>(r.send_lag.p99_ms),
      static_cast<long long>(r.send_lag.max_ms), r.offered_events_per_s,
      static_cast<long long>(r.drain_after_last_due_ms),
      static_cast<long long>(r.expected_powered_ms), static_cast<long long>(r.expected_in_use_ms));
  return text;
}

Result<EchoReport> RunEcho(const std::string& broker_url, int64_t duration_ms,
                           const std::atomic<bool>* stop) {
  MqttLink::Options options;
  options.broker_url = broker_url;
  options.client_id = "instrumeter-loadgen-echo";
  options.subscriptions = {protocol::Topic("+", Channel::kUp)};
  // Acks of every device at once, as the hub's (hub_runner.cc).
  options.max_inflight = 1000;
  options.max_buffered_messages = 100'000;
  auto link = MqttLink::Create(options);
  if (!link.ok()) return link.status();
  INSTRUMETER_RETURN_IF_ERROR((*link)->Connect());
  EchoReport report;
  const int64_t end = MonoMs() + duration_ms;
  while (MonoMs() < end && (stop == nullptr || !*stop)) {
    if (!(*link)->WaitForEvents(std::chrono::milliseconds(100))) continue;
    for (MqttLink::Event& e : (*link)->TakeEvents()) {
      if (e.kind != MqttLink::Event::Kind::kMessage) continue;
      v1::Envelope envelope;
      v1::EventBatch batch;
      if (!envelope.ParseFromString(e.payload) || !batch.ParseFromString(envelope.payload()) ||
          batch.events_size() == 0) {
        ++report.malformed;
        continue;
      }
      ++report.envelopes;
      report.events += static_cast<uint64_t>(batch.events_size());
      if (v1::Event newest; newest.ParseFromString(batch.events(batch.events_size() - 1)))
        report.newest_wall_unix_ms =
            std::max(report.newest_wall_unix_ms, newest.at().wall_unix_ms());
      v1::Downlink downlink;
      downlink.mutable_ack()->set_highest_contiguous_sequence(
          envelope.first_sequence() + static_cast<uint64_t>(batch.events_size()) - 1);
      // At QoS 0, as the hub acks. A refused publish is lost: the device's ack timeout resends,
      // as with a real hub.
      Status sent = (*link)->PublishAtMostOnce(protocol::Topic(envelope.device_id(), Channel::kAck),
                                               downlink.SerializeAsString());
      if (!sent.ok() && report.ack_publish_failures++ == 0)
        std::fprintf(stderr, "instrumeter-loadgen echo: %s\n", sent.ToString().c_str());
    }
  }
  (*link)->Disconnect(std::chrono::milliseconds(500));
  return report;
}

}  // namespace instrumeter::loadgen
