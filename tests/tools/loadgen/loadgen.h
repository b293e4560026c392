// instrumeter-loadgen: N emulated devices in one process, each with its own MQTT connection
// (client id = device id) or K to a connection, its own sequence numbers and a backlog of valid
// events, delivered to the hub by the protocol's rules (protocol/README.md, "Delivery": envelopes
// of up to E consecutive events, at most W in flight, go-back-N after a reconnect, a ResendRequest
// or an ack timeout; done when the hub acknowledged the whole backlog).
//
// The backlog of each device is one agent run: a run-start StateChange into IDLE, then a
// Heartbeat per step, switching between IDLE and IN_USE every 10 steps with a StateChange,
// counters consistent with the states; so the hub derives exactly `expected_powered_ms` and
// `expected_in_use_ms` per device and flags no counter mismatch.
//
// Envelopes are signed like a real agent's (protocol/README.md, "Signing": a state change, more
// than one event, or 60 s since the last signature) with a per-device Ed25519 key derived from
// the device id (DeviceKey), so a bench can enrol the same public keys at the hub beforehand.
//
// Two ways to offer load:
// - backlog (period_ms = 0): every event is due at the start; measures drain time.
// - live (period_ms > 0): device i's event k is due at start + (i * spread / devices) + k *
//   period (spread: start_spread_ms, or one period), as an agent heartbeating every period_ms would
//   create it, stamped with the real time (every device sends the same events, so its stamps lag
//   its schedule by its start offset, at most the spread, well inside the hub's skew limits);
//   measures whether the hub keeps up (ack latency from due time, drain after the last due event).
// Ack latency of an event: from when it was due (live) or first published (backlog) until the
// first Ack covering it arrived.
//
// All connects are started before any is waited for. Single-threaded: the devices' connections
// are libmosquitto's, driven by this thread (link_set.h says why not Paho); a pass of its loop
// visits only the devices with something to do.
//
// RunEcho is the raw-broker baseline: a plain QoS 1 subscriber on every device's up topic that
// acknowledges each envelope's last sequence at once, storing nothing. It holds one connection
// through MqttLink (Paho), as the hub does, so that the baseline and the hub differ in what they do
// with a message, not in their MQTT client.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "protocol/chain.h"

namespace instrumeter::loadgen {

struct LoadOptions {
  std::string broker_url = "tcp://127.0.0.1:1883";
  int devices = 100;
  int backlog = 200;  // events per device
  std::string device_prefix = "load-";
  double rate = 0;  // events per second offered, all devices together; 0: unlimited
  int events_per_envelope = 50;
  int window = 8;  // envelopes in flight per device
  int64_t ack_timeout_ms = 5000;
  int64_t timeout_ms = 300'000;  // give up (exit 1) after this long
  int64_t reconnect_ms = 1000;   // wait before reconnecting a device that lost its connection
  bool sign = true;              // sign envelopes by the protocol's rule (see above)
  int64_t period_ms = 0;         // 0: backlog mode; > 0: live mode, one event per device per period
  // Devices sharing one MQTT connection (client id PREFIXconn-N; 1: each device connects as
  // itself, as agents do). Many devices per connection spare the generator the cost of thousands
  // of Paho clients, so that a real-time run of 100,000 devices measures the hub, not the
  // generator; the broker then holds fewer connections than there are devices.
  int devices_per_connection = 1;
  // Live mode: device i's first event is due i * start_spread_ms / devices after the start (0:
  // spread over one period). A device signs its first envelope (a run start) and then one a
  // minute, so devices started within one period sign in waves; spread over a minute, they sign
  // at the steady rate of a fleet whose agents started at different times.
  int64_t start_spread_ms = 0;
  // Live mode: events due in the schedule's first warmup_ms (the ramp while devices start) are
  // delivered but not counted in ack_latency and send_lag.
  int64_t warmup_ms = 0;
};

// Ack latencies in milliseconds (nearest-rank percentiles; all 0 without samples).
struct LatencySummary {
  uint64_t samples = 0;
  int64_t p50_ms = 0;
  int64_t p90_ms = 0;
  int64_t p99_ms = 0;
  int64_t max_ms = 0;
};

// Summarises `samples` (reordered in place).
LatencySummary SummariseLatencies(std::vector<int32_t>* samples);

struct LoadReport {
  int devices = 0;
  int backlog = 0;
  int devices_drained = 0;
  uint64_t events_total = 0;
  int64_t connect_ms = 0;   // until every device was connected once
  int64_t drain_ms = 0;     // from the start until every backlog was acknowledged (or timeout)
  double events_per_s = 0;  // events_total / drain_ms
  uint64_t envelopes_sent = 0;
  uint64_t events_sent = 0;  // including resends
  uint64_t acks = 0;
  uint64_t resend_requests = 0;
  uint64_t ack_timeouts = 0;
  uint64_t connection_losses = 0;
  bool complete = false;  // every device drained
  uint64_t envelopes_signed = 0;
  LatencySummary ack_latency;
  // Live mode: from when an event became due until the generator first published it. Large
  // values mean the generator (or Paho's buffer), not the hub, fell behind.
  LatencySummary send_lag;
  // Live mode: from the moment the last event became due until every backlog was acknowledged
  // (a hub that keeps up answers within one ack latency; a growing backlog shows here).
  int64_t drain_after_last_due_ms = 0;
  double offered_events_per_s = 0;  // live mode: devices * 1000 / period_ms
  // What the hub must derive for each device.
  int64_t expected_powered_ms = 0;
  int64_t expected_in_use_ms = 0;
};

// The device id of the i-th device (0-based): prefix + zero-padded index.
std::string DeviceId(const LoadOptions& options, int index);

// When a backlog's events happened: the first at wall_start_ms, then one every step_ms (its
// monotonic clock steps alike). The default is the backlog mode's: emulated seconds in the past.
struct Timeline {
  int64_t wall_start_ms = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
  int64_t step_ms = 1000;
};

// The serialised events 1..count of one device, as described above.
std::vector<std::string> MakeBacklog(const std::string& boot_id, int count,
                                     const Timeline& timeline, int64_t* powered_ms,
                                     int64_t* in_use_ms);

// The Ed25519 key the load generator signs for `device_id` with: its seed is
// SHA-256("instrumeter-loadgen/key/" || device_id). For benchmarks only: anyone can derive it.
Result<protocol::SigningKey> DeviceKey(const std::string& device_id);

// Runs the load until every backlog is acknowledged or options.timeout_ms passes.
Result<LoadReport> RunLoad(const LoadOptions& options);

std::string ReportJson(const LoadReport& report);

struct EchoReport {
  uint64_t envelopes = 0;
  uint64_t events = 0;
  uint64_t malformed = 0;
  uint64_t ack_publish_failures = 0;  // acks Paho refused (the device resends after its timeout)
  int64_t newest_wall_unix_ms = 0;    // the latest event time seen
};

// Subscribes to instrumeter/v1/+/up at QoS 1 on `broker_url` and acknowledges every envelope's
// last sequence on the device's ack topic, until `duration_ms` passes or `*stop` (if given) is
// set by another thread (seen within 100 ms).
Result<EchoReport> RunEcho(const std::string& broker_url, int64_t duration_ms,
                           const std::atomic<bool>* stop = nullptr);

}  // namespace instrumeter::loadgen
