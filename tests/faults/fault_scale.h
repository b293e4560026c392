// How hard each fault test pushes. The same test sources build twice: as fault_test (the fast
// variants, in the default suite) and as fault_slow_test (INSTRUMETER_FAULTS_FULL: the counts of
// issue 6, ctest label `slow`, `tests/run.sh --slow`). The suite name tells them apart in ctest:
// FaultsFast.* and FaultsFull.*.
#pragma once

#include <cstdint>

#include "common/status.h"

#ifdef INSTRUMETER_FAULTS_FULL
#define FAULT_SUITE FaultsFull
#else
#define FAULT_SUITE FaultsFast
#endif

#define ASSERT_OK(expr)                                       \
  do {                                                        \
    const ::instrumeter::Status _st = (expr);                 \
    ASSERT_TRUE(_st.ok()) << #expr << ": " << _st.ToString(); \
  } while (false)

namespace instrumeter::testing {

struct FaultScale {
  int broker_kills;
  int hub_kills;
  int agent_kills;
  int64_t long_cut_ms;  // the link cut that must be survived (30 s fast, 10 min full)
  int64_t stall_ms;     // half-open, then dropping link
  int64_t hub_offline_ms;
  int64_t replay_ms;     // how long the replayer works on live traffic
  int64_t disk_full_ms;  // how long a disk stays full
  int loadgen_devices;
  int loadgen_backlog;
};

#ifdef INSTRUMETER_FAULTS_FULL
inline constexpr FaultScale kScale{.broker_kills = 10,
                                   .hub_kills = 10,
                                   .agent_kills = 20,
                                   .long_cut_ms = 600'000,
                                   .stall_ms = 60'000,
                                   .hub_offline_ms = 60'000,
                                   .replay_ms = 120'000,
                                   .disk_full_ms = 60'000,
                                   .loadgen_devices = 1000,
                                   .loadgen_backlog = 200};
#else
inline constexpr FaultScale kScale{.broker_kills = 3,
                                   .hub_kills = 4,
                                   .agent_kills = 6,
                                   .long_cut_ms = 30'000,
                                   .stall_ms = 12'000,
                                   .hub_offline_ms = 20'000,
                                   .replay_ms = 20'000,
                                   .disk_full_ms = 10'000,
                                   .loadgen_devices = 100,
                                   .loadgen_backlog = 200};
#endif

}  // namespace instrumeter::testing
