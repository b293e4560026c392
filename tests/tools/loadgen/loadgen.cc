#include "loadgen.h"

#include <poll.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <memory>

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

int64_t MonoMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

struct Device {
  std::string id;
  std::string up_topic;
  std::unique_ptr<MqttLink> link;
  std::vector<std::string> events;  // [i] is sequence i + 1
  uint64_t acked = 0;
  uint64_t next_to_send = 1;
  bool connected = false;
  bool ever_connected = false;
  bool drained = false;
  int64_t reconnect_at_ms = -1;
  int64_t last_progress_ms = 0;  // last ack advance or (re)start of sending
};

}  // namespace

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
      options.window < 1)
    return Status::InvalidArgument("devices, backlog, events per envelope and window must be >= 1");
  // Each device holds a socket and an eventfd: a thousand devices pass the usual soft limit.
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }
  LoadReport report;
  report.devices = options.devices;
  report.backlog = options.backlog;
  const std::string boot_id = "loadgen-0000-0000-0000-000000000001";
  std::vector<Device> devices(static_cast<size_t>(options.devices));
  for (int i = 0; i < options.devices; ++i) {
    Device& d = devices[static_cast<size_t>(i)];
    d.id = DeviceId(options, i);
    d.up_topic = protocol::Topic(d.id, Channel::kUp);
    d.events = MakeBacklog(boot_id, options.backlog, &report.expected_powered_ms,
                           &report.expected_in_use_ms);
    MqttLink::Options link;
    link.broker_url = options.broker_url;
    link.client_id = d.id;
    link.subscriptions = {protocol::Topic(d.id, Channel::kAck)};
    link.max_inflight = options.window + 2;
    auto created = MqttLink::Create(link);
    if (!created.ok()) return created.status().WithContext("device " + d.id);
    d.link = std::move(*created);
  }

  const int64_t start = MonoMs();
  // Every connect first, then wait for all (Paho C makes sequential connects slow).
  for (Device& d : devices) {
    if (!d.link->Connect().ok()) d.reconnect_at_ms = start + options.reconnect_ms;
  }
  const size_t per_envelope = static_cast<size_t>(options.events_per_envelope);
  const uint64_t backlog = static_cast<uint64_t>(options.backlog);
  double tokens = 0;
  int64_t tokens_at = start;
  int connected_once = 0;
  int drained = 0;
  std::vector<pollfd> fds(devices.size());
  for (size_t i = 0; i < devices.size(); ++i) fds[i] = {devices[i].link->wake_fd(), POLLIN, 0};

  while (drained < options.devices) {
    const int64_t now = MonoMs();
    if (now - start > options.timeout_ms) break;
    ::poll(fds.data(), fds.size(), 20);
    if (options.rate > 0) {
      // A burst of at most one second, and never less than one envelope.
      const double burst = std::max(options.rate, static_cast<double>(per_envelope));
      tokens =
          std::min(burst, tokens + options.rate * static_cast<double>(now - tokens_at) / 1000.0);
      tokens_at = now;
    }
    for (size_t i = 0; i < devices.size(); ++i) {
      Device& d = devices[i];
      for (MqttLink::Event& e : d.link->TakeEvents()) {
        switch (e.kind) {
          case MqttLink::Event::Kind::kConnected:
            d.connected = true;
            if (!d.ever_connected) {
              d.ever_connected = true;
              if (++connected_once == options.devices) report.connect_ms = MonoMs() - start;
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
                d.acked = n;
                d.last_progress_ms = MonoMs();
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
      // Envelopes in flight: what was sent beyond the ack, in envelope units.
      while (d.next_to_send <= backlog &&
             (d.next_to_send - d.acked - 1) < per_envelope * static_cast<size_t>(options.window)) {
        const uint64_t first = d.next_to_send;
        const uint64_t last = std::min<uint64_t>(backlog, first + per_envelope - 1);
        const double n = static_cast<double>(last - first + 1);
        if (options.rate > 0 && tokens < n) break;
        std::vector<std::string> batch(d.events.begin() + static_cast<std::ptrdiff_t>(first - 1),
                                       d.events.begin() + static_cast<std::ptrdiff_t>(last));
        if (!d.link
                 ->Publish(d.up_topic, protocol::EncodeEnvelope(d.id, boot_id, first, batch), false)
                 .ok())
          break;
        if (options.rate > 0) tokens -= n;
        ++report.envelopes_sent;
        report.events_sent += last - first + 1;
        if (d.next_to_send == d.acked + 1) d.last_progress_ms = MonoMs();
        d.next_to_send = last + 1;
      }
    }
  }
  report.drain_ms = MonoMs() - start;
  report.devices_drained = drained;
  report.complete = drained == options.devices;
  report.events_total = static_cast<uint64_t>(options.devices) * backlog;
  report.events_per_s = report.drain_ms > 0 ? static_cast<double>(report.events_total) * 1000.0 /
                                                  static_cast<double>(report.drain_ms)
                                            : 0;
  for (Device& d : devices) d.link->Disconnect(std::chrono::milliseconds(200));
  return report;
}

std::string ReportJson(const LoadReport& r) {
  char text[1024];
  std::snprintf(
      text, sizeof text,
      "{\"devices\": %d, \"backlog\": %d, \"devices_drained\": %d, \"complete\": %s, "
      "\"events_total\": %llu, \"connect_ms\": %lld, \"drain_ms\": %lld, "
      "\"events_per_s\": %.1f, \"envelopes_sent\": %llu, \"events_sent\": %llu, "
      "\"acks\": %llu, \"resend_requests\": %llu, \"ack_timeouts\": %llu, "
      "\"connection_losses\": %llu, \"expected_powered_ms\": %lld, "
      "\"expected_in_use_ms\": %lld}\n",
      r.devices, r.backlog, r.devices_drained, r.complete ? "true" : "false",
      static_cast<unsigned long long>(r.events_total), static_cast<long long>(r.connect_ms),
      static_cast<long long>(r.drain_ms), r.events_per_s,
      static_cast<unsigned long long>(r.envelopes_sent),
      static_cast<unsigned long long>(r.events_sent), static_cast<unsigned long long>(r.acks),
      static_cast<unsigned long long>(r.resend_requests),
      static_cast<unsigned long long>(r.ack_timeouts),
      static_cast<unsigned long long>(r.connection_losses),
      static_cast<long long>(r.expected_powered_ms), static_cast<long long>(r.expected_in_use_ms));
  return text;
}

}  // namespace instrumeter::loadgen
