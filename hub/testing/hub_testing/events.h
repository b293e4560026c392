// Building instrumeter.v1 events and envelopes by hand, for hub tests: what an agent would send,
// with every field a test wants to control. Test-only (target instrumeter_hub_testing).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/codec.h"
#include "protocol/topics.h"
#include "telemetry.pb.h"

namespace instrumeter::hub::testing {

namespace v1 = ::instrumeter::v1;

inline constexpr int64_t kWall = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
inline constexpr int64_t kMono = 1'000'000;
inline constexpr char kBoot1[] = "boot-1";
inline constexpr char kBoot2[] = "boot-2";

// When an event happened and the agent's meter at that time.
struct At {
  const char* boot = kBoot1;
  int64_t mono = kMono;
  int64_t wall = kWall;
  uint64_t powered = 0;
  uint64_t in_use = 0;
};

inline v1::Event BaseEvent(uint64_t seq, const At& at) {
  v1::Event e;
  e.set_sequence(seq);
  e.mutable_at()->set_boot_id(at.boot);
  e.mutable_at()->set_monotonic_ms(at.mono);
  e.mutable_at()->set_wall_unix_ms(at.wall);
  return e;
}

inline void SetCounters(v1::Counters* c, const At& at) {
  c->set_powered_ms(at.powered);
  c->set_in_use_ms(at.in_use);
}

inline v1::Event Change(uint64_t seq, v1::InstrumentState state, const At& at,
                        bool run_start = false) {
  v1::Event e = BaseEvent(seq, at);
  e.mutable_state_change()->set_state(state);
  e.mutable_state_change()->set_run_start(run_start);
  SetCounters(e.mutable_state_change()->mutable_counters(), at);
  return e;
}

inline v1::Event Start(uint64_t seq, v1::InstrumentState state, const At& at) {
  return Change(seq, state, at, /*run_start=*/true);
}

inline v1::Event Beat(uint64_t seq, v1::InstrumentState state, const At& at,
                      const std::string& agent_version = "test-1.0", uint64_t outbox_depth = 1) {
  v1::Event e = BaseEvent(seq, at);
  e.mutable_heartbeat()->set_state(state);
  e.mutable_heartbeat()->set_agent_version(agent_version);
  e.mutable_heartbeat()->set_outbox_depth(outbox_depth);
  SetCounters(e.mutable_heartbeat()->mutable_counters(), at);
  return e;
}

inline v1::Event Stop(uint64_t seq, v1::InstrumentState state, const At& at, bool clean = true) {
  v1::Event e = BaseEvent(seq, at);
  e.mutable_agent_stop()->set_state(state);
  e.mutable_agent_stop()->set_clean(clean);
  SetCounters(e.mutable_agent_stop()->mutable_counters(), at);
  return e;
}

inline v1::Event Mark(uint64_t seq, const At& at, const std::string& order_id = "order-1") {
  v1::Event e = BaseEvent(seq, at);
  e.mutable_session_mark()->set_kind(v1::SessionMark::KIND_START);
  e.mutable_session_mark()->set_order_id(order_id);
  return e;
}

// An envelope of consecutive events, as the agent would publish it.
inline std::string EnvelopeOf(const std::string& device_id, const std::vector<v1::Event>& events) {
  std::vector<std::string> bytes;
  for (const v1::Event& e : events) bytes.push_back(e.SerializeAsString());
  return protocol::EncodeEnvelope(device_id, events.front().at().boot_id(),
                                  events.front().sequence(), bytes);
}

// A typical metered run, one event per sequence from 1: start IDLE, heartbeats, IN_USE for a
// while, a crash and restart, a clean stop, a restart after a reboot. Counters are consistent,
// so no interval is flagged except the crash.
inline std::vector<v1::Event> TypicalRun() {
  const int64_t m = kMono;
  const int64_t w = kWall;
  using S = v1::InstrumentState;
  const S idle = v1::INSTRUMENT_STATE_IDLE;
  const S in_use = v1::INSTRUMENT_STATE_IN_USE;
  return {
      Start(1, idle, {kBoot1, m, w, 0, 0}),
      Beat(2, idle, {kBoot1, m + 60'000, w + 60'000, 60'000, 0}),
      Change(3, in_use, {kBoot1, m + 90'000, w + 90'000, 90'000, 0}),
      Mark(4, {kBoot1, m + 91'000, w + 91'000}),
      Beat(5, in_use, {kBoot1, m + 150'000, w + 150'000, 150'000, 60'000}),
      Beat(6, in_use, {kBoot1, m + 210'000, w + 210'000, 210'000, 120'000}),
      // crash: the next run starts without a stop
      Start(7, idle, {kBoot1, m + 300'000, w + 300'000, 210'000, 120'000}),
      Beat(8, idle, {kBoot1, m + 360'000, w + 360'000, 270'000, 120'000}),
      Change(9, in_use, {kBoot1, m + 400'000, w + 400'000, 310'000, 120'000}),
      Stop(10, in_use, {kBoot1, m + 460'000, w + 460'000, 370'000, 180'000}),
      // reboot: 10 minutes later by the wall clock
      Start(11, idle, {kBoot2, 20'000, w + 1'060'000, 370'000, 180'000}),
      Beat(12, idle, {kBoot2, 80'000, w + 1'120'000, 430'000, 180'000}),
  };
}

}  // namespace instrumeter::hub::testing
