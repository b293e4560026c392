#include "loadgen.h"

#include <poll.h>
#include <sys/resource.h>
#include <time.h>

#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>

#include "common/mqtt_link.h"
#include "protocol/codec.h"
#include "protocol/topics.h"

namespace instrumeter::loadgen {
namespace {

namespace v1 = ::instrumeter::v1;
using protocol::Channel;

constexpr int64_t kStepMs = 1000;                    // emulated time between two events
constexpr int kEventsPerStateFlip = 10;              // IDLE <-> IN_USE every 10 events
constexpr int64_t kWallStartMs = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
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
  std::unique_ptr<MqttLink> link;
  std::optional<protocol::SigningKey> key;
  std::optional<int64_t> last_signed_ms;
  uint64_t chain_seq = 0;  // chain_link is link_{chain_seq}
  std::string chain_link;
  int64_t due_offset_ms = 0;     // live mode: when event 1 is due, after the start
  std::vector<int32_t> sent_ms;  // backlog mode: [i] first publication of sequence i + 1
  uint64_t acked = 0;
  uint64_t next_to_send = 1;
  bool connected = false;
  bool ever_connected = false;
  bool drained = false;
  int64_t reconnect_at_ms = -1;
  int64_t last_progress_ms = 0;  // last ack advance or (re)start of sending
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

std::vector<std::string> MakeBacklog(const std::string& boot_id, int count, int64_t* powered_ms,
                                     int64_t* in_use_ms) {
  std::vector<std::string> out;
  uint64_t powered = 0;
  uint64_t in_use = 0;
  v1::InstrumentState state = v1::INSTRUMENT_STATE_IDLE;
  for (int i = 0; i < count; ++i) {
    if (i > 0) {  // the time since the previous point was spent in `state`
      powered += kStepMs;
      if (state == v1::INSTRUMENT_STATE_IN_USE) in_use += kStepMs;
    }
    v1::Event event;
    event.set_sequence(static_cast<uint64_t>(i) + 1);
    event.mutable_at()->set_wall_unix_ms(kWallStartMs + i * kStepMs);
    event.mutable_at()->set_monotonic_ms(kMonoStartMs + i * kStepMs);
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
      hb->set_interval_ms(static_cast<uint32_t>(kStepMs));
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

Result<LoadReport> RunLoad(const LoadOptions& options) {
  if (options.devices < 1 || options.backlog < 1 || options.events_per_envelope < 1 ||
      options.window < 1 || options.period_ms < 0)
    return Status::InvalidArgument(
        "devices, backlog, events per envelope and window must be >= 1, period >= 0");
  // Each device holds a socket and an eventfd: a thousand devices pass the usual soft limit.
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }
  LoadReport report;
  report.devices = options.devices;
  report.backlog = options.backlog;
  const bool live = options.period_ms > 0;
  if (live)
    report.offered_events_per_s =
        static_cast<double>(options.devices) * 1000.0 / static_cast<double>(options.period_ms);
  const std::string boot_id = "loadgen-0000-0000-0000-000000000001";
  // Every device sends the same event bytes (only its chain, keyed by its id, differs).
  const std::vector<std::string> events = MakeBacklog(
      boot_id, options.backlog, &report.expected_powered_ms, &report.expected_in_use_ms);
  std::vector<bool> closes_state(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    v1::Event event;
    closes_state[i] = !event.ParseFromString(events[i]) || protocol::ClosesState(event);
  }
  std::vector<Device> devices(static_cast<size_t>(options.devices));
  for (int i = 0; i < options.devices; ++i) {
    Device& d = devices[static_cast<size_t>(i)];
    d.id = DeviceId(options, i);
    d.up_topic = protocol::Topic(d.id, Channel::kUp);
    if (options.sign) {
      auto key = DeviceKey(d.id);
      if (!key.ok()) return key.status();
      d.key.emplace(std::move(*key));
    }
    if (live)
      d.due_offset_ms = static_cast<int64_t>(i) * options.period_ms / options.devices;
    else
      d.sent_ms.assign(events.size(), -1);
    MqttLink::Options link;
    link.broker_url = options.broker_url;
    link.client_id = d.id;
    link.subscriptions = {protocol::Topic(d.id, Channel::kAck)};
    link.max_inflight = options.window + 2;
    auto created = MqttLink::Create(link);
    if (!created.ok()) return created.status().WithContext("device " + d.id);
    d.link = std::move(*created);
  }
  std::vector<int32_t> latencies;
  latencies.reserve(devices.size() * events.size());

  const int64_t start = MonoMs();
  // Every connect first, then wait for all (Paho C makes sequential connects slow).
  for (Device& d : devices) {
    if (!d.link->Connect().ok()) d.reconnect_at_ms = start + options.reconnect_ms;
  }
  const size_t per_envelope = static_cast<size_t>(options.events_per_envelope);
  const uint64_t backlog = static_cast<uint64_t>(options.backlog);
  // Live mode: the schedule starts once every device is connected (or the first connects
  // failed), so that connecting, which the protocol does not time, is not counted as latency.
  int64_t schedule_ms = -1;
  // Live mode: when sequence `seq` of `d` became due.
  auto due_ms = [&](const Device& d, uint64_t seq) {
    return schedule_ms + d.due_offset_ms + static_cast<int64_t>(seq - 1) * options.period_ms;
  };
  double tokens = 0;
  int64_t tokens_at = start;
  int connected_once = 0;
  int drained = 0;
  std::vector<pollfd> fds(devices.size());
  for (size_t i = 0; i < devices.size(); ++i) fds[i] = {devices[i].link->wake_fd(), POLLIN, 0};

  while (drained < options.devices) {
    const int64_t now = MonoMs();
    if (now - start > options.timeout_ms) break;
    // Live mode wakes often: an event due must go out within a few ms to measure the hub.
    ::poll(fds.data(), fds.size(), live ? 2 : 20);
    if (options.rate > 0) {
      // A burst of at most one second, and never less than one envelope.
      const double burst = std::max(options.rate, static_cast<double>(per_envelope));
      tokens =
          std::min(burst, tokens + options.rate * static_cast<double>(now - tokens_at) / 1000.0);
      tokens_at = now;
    }
    for (size_t i = 0; i < devices.size(); ++i) {
      Device& d = devices[i];
      // Only links that signalled: TakeEvents costs a read(2), and thousands of devices are
      // visited every few milliseconds.
      std::vector<MqttLink::Event> taken;
      if (fds[i].revents != 0) taken = d.link->TakeEvents();
      for (MqttLink::Event& e : taken) {
        switch (e.kind) {
          case MqttLink::Event::Kind::kConnected:
            d.connected = true;
            if (!d.ever_connected) {
              d.ever_connected = true;
              if (++connected_once == options.devices) {
                report.connect_ms = MonoMs() - start;
                schedule_ms = MonoMs();
              }
            }
            d.next_to_send = d.acked + 1;  // go-back-N after every (re)connect
            d.last_progress_ms = MonoMs();
            break;
          case MqttLink::Event::Kind::kConnectFailed:
          case MqttLink::Event::Kind::kConnectionLost:
            if (d.connected) ++report.connection_losses;
            d.connected = false;
            d.reconnect_at_ms = MonoMs() + options.reconnect_ms;
            break;
          case MqttLink::Event::Kind::kMessage: {
            v1::Downlink downlink;
            if (!downlink.ParseFromString(e.payload)) break;
            if (downlink.has_ack()) {
              ++report.acks;
              const uint64_t n = std::min(downlink.ack().highest_contiguous_sequence(), backlog);
              if (n > d.acked) {
                const int64_t acked_at = MonoMs();
                for (uint64_t seq = d.acked + 1; seq <= n; ++seq) {
                  // Stored by an earlier run and never sent by this one: no latency to measure.
                  if (!live && d.sent_ms[seq - 1] < 0) continue;
                  const int64_t from = live ? due_ms(d, seq) : start + d.sent_ms[seq - 1];
                  latencies.push_back(static_cast<int32_t>(std::max<int64_t>(0, acked_at - from)));
                }
                d.acked = n;
                d.last_progress_ms = acked_at;
                d.next_to_send = std::max(d.next_to_send, d.acked + 1);
              }
            } else if (downlink.has_resend()) {
              ++report.resend_requests;
              d.next_to_send = d.acked + 1;
            }
            break;
          }
        }
      }
      if (!d.drained && d.acked >= backlog) {
        d.drained = true;
        ++drained;
        continue;
      }
      if (d.drained) continue;
      if (!d.connected) {
        if (d.reconnect_at_ms >= 0 && MonoMs() >= d.reconnect_at_ms) {
          d.reconnect_at_ms = -1;
          if (!d.link->Connect().ok()) d.reconnect_at_ms = MonoMs() + options.reconnect_ms;
        }
        continue;
      }
      if (d.next_to_send > d.acked + 1 && MonoMs() - d.last_progress_ms > options.ack_timeout_ms) {
        ++report.ack_timeouts;
        d.next_to_send = d.acked + 1;
        d.last_progress_ms = MonoMs();
      }
      // What this device's outbox holds: everything (backlog) or what became due (live).
      uint64_t available = backlog;
      if (live) {
        if (schedule_ms < 0 && MonoMs() - start > kScheduleGraceMs) schedule_ms = MonoMs();
        const int64_t since = schedule_ms < 0 ? -1 : MonoMs() - schedule_ms - d.due_offset_ms;
        available = since < 0 ? 0
                              : std::min<uint64_t>(
                                    backlog, static_cast<uint64_t>(since / options.period_ms) + 1);
      }
      // Envelopes in flight: what was sent beyond the ack, in envelope units.
      while (d.next_to_send <= available &&
             (d.next_to_send - d.acked - 1) < per_envelope * static_cast<size_t>(options.window)) {
        const uint64_t first = d.next_to_send;
        const uint64_t last = std::min<uint64_t>(available, first + per_envelope - 1);
        const double n = static_cast<double>(last - first + 1);
        if (options.rate > 0 && tokens < n) break;
        const int64_t sent_at = MonoMs();
        // The agent's rule (protocol/README.md, "Signing").
        bool sign =
            d.key.has_value() && (last > first || !d.last_signed_ms.has_value() ||
                                  sent_at - *d.last_signed_ms >= protocol::kMaxSignatureIntervalMs);
        for (uint64_t seq = first; seq <= last && d.key.has_value() && !sign; ++seq)
          sign = closes_state[seq - 1];
        std::optional<v1::Signature> signature;
        if (sign) {
          auto signed_head = d.key->SignHead(d.id, last, LinkAt(&d, last, events));
          if (!signed_head.ok()) return signed_head.status().WithContext("device " + d.id);
          signature = std::move(*signed_head);
        }
        std::vector<std::string> batch(events.begin() + static_cast<std::ptrdiff_t>(first - 1),
                                       events.begin() + static_cast<std::ptrdiff_t>(last));
        if (!d.link
                 ->Publish(d.up_topic,
                           protocol::EncodeEnvelope(d.id, boot_id, first, batch,
                                                    signature ? &*signature : nullptr),
                           false)
                 .ok())
          break;
        if (signature) {
          d.last_signed_ms = sent_at;
          ++report.envelopes_signed;
        }
        if (!live)
          for (uint64_t seq = first; seq <= last; ++seq)
            if (d.sent_ms[seq - 1] < 0) d.sent_ms[seq - 1] = static_cast<int32_t>(sent_at - start);
        if (options.rate > 0) tokens -= n;
        ++report.envelopes_sent;
        report.events_sent += last - first + 1;
        if (d.next_to_send == d.acked + 1) d.last_progress_ms = sent_at;
        d.next_to_send = last + 1;
      }
    }
  }
  const int64_t end = MonoMs();
  report.drain_ms = end - start;
  report.drain_after_last_due_ms =
      live ? end - (schedule_ms < 0 ? start : due_ms(devices.back(), backlog)) : report.drain_ms;
  report.devices_drained = drained;
  report.complete = drained == options.devices;
  report.events_total = static_cast<uint64_t>(options.devices) * backlog;
  report.events_per_s = report.drain_ms > 0 ? static_cast<double>(report.events_total) * 1000.0 /
                                                  static_cast<double>(report.drain_ms)
                                            : 0;
  report.ack_latency = SummariseLatencies(&latencies);
  for (Device& d : devices) d.link->Disconnect(std::chrono::milliseconds(200));
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
      r.offered_events_per_s, static_cast<long long>(r.drain_after_last_due_ms),
      static_cast<long long>(r.expected_powered_ms), static_cast<long long>(r.expected_in_use_ms));
  return text;
}

Result<EchoReport> RunEcho(const std::string& broker_url, int64_t duration_ms) {
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
  while (MonoMs() < end) {
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
      v1::Downlink downlink;
      downlink.mutable_ack()->set_highest_contiguous_sequence(
          envelope.first_sequence() + static_cast<uint64_t>(batch.events_size()) - 1);
      // A refused publish is lost: the device's ack timeout resends, as with a real hub.
      Status sent = (*link)->Publish(protocol::Topic(envelope.device_id(), Channel::kAck),
                                     downlink.SerializeAsString(), false);
      if (!sent.ok() && report.ack_publish_failures++ == 0)
        std::fprintf(stderr, "instrumeter-loadgen echo: %s\n", sent.ToString().c_str());
    }
  }
  (*link)->Disconnect(std::chrono::milliseconds(500));
  return report;
}

}  // namespace instrumeter::loadgen
