// instrumeter-loadgen: N emulated devices in one process, each with its own MQTT connection
// (client id = device id), its own sequence numbers and a backlog of valid events, delivered to
// the hub by the protocol's rules (protocol/README.md, "Delivery": envelopes of up to E
// consecutive events, at most W in flight, go-back-N after a reconnect, a ResendRequest or an ack
// timeout; done when the hub acknowledged the whole backlog).
//
// The backlog of each device is one agent run: a run-start StateChange into IDLE, then a
// Heartbeat per emulated second, switching between IDLE and IN_USE every 10 s with a StateChange,
// counters consistent with the states; so the hub derives exactly `expected_powered_ms` and
// `expected_in_use_ms` per device and flags no counter mismatch.
//
// All connects are started before any is waited for (Paho C serialises sequential connects,
// shared/STACK.md). Single-threaded apart from Paho's own threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

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
};

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
  // What the hub must derive for each device.
  int64_t expected_powered_ms = 0;
  int64_t expected_in_use_ms = 0;
};

// The device id of the i-th device (0-based): prefix + zero-padded index.
std::string DeviceId(const LoadOptions& options, int index);

// The serialised events 1..count of one device, as described above.
std::vector<std::string> MakeBacklog(const std::string& boot_id, int count, int64_t* powered_ms,
                                     int64_t* in_use_ms);

// Runs the load until every backlog is acknowledged or options.timeout_ms passes.
Result<LoadReport> RunLoad(const LoadOptions& options);

std::string ReportJson(const LoadReport& report);

}  // namespace instrumeter::loadgen
