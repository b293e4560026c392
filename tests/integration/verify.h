// The "exact" check of issue 6, shared by the metered-path and fault-injection tests: each
// instrument's hours at the hub equal the simulator's ground truth to the second, except the time
// its agent itself was down, which is reported as a gap of that length (each gap within 1 s of
// the downtime the test measured; the hours never above the truth, and below it only by what the
// gaps report beyond the measured downtimes: the moments between a killed agent's last settled
// point and the kill); every (device, sequence) is stored exactly once; nothing is left in any
// outbox; the hub never raised a security alarm.
//
// Test-thread helpers that report through GoogleTest assertions (EXPECT/ADD_FAILURE), so that a
// failing run names every instrument and figure that is off, not just the first.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "stack.h"

namespace instrumeter::testing {

struct VerifyOptions {
  int64_t tolerance_ms = 1000;  // "to the second"
  // Each instrument must have produced more events than this (a test that measured nothing
  // proves nothing).
  int64_t min_sequences = 20;
  // How long the hub may take to store what the stopped agents delivered.
  std::chrono::milliseconds hub_catch_up = std::chrono::seconds(30);
};

// Stops every agent cleanly (SIGTERM: AgentStop, flush) and checks every instrument.
void StopAndVerify(Stack& stack, const VerifyOptions& options = {});

// Checks one instrument whose agent has stopped.
void VerifyInstrument(Stack& stack, const std::string& id, const VerifyOptions& options = {});

// Waits until every agent's outbox is empty; the milliseconds it took, or -1 after `timeout`.
int64_t WaitForEmptyOutboxes(Stack& stack, std::chrono::milliseconds timeout);

// Sleeps until `offset_ms` after `start_mono_ms` (MonotonicNowMs), so that a test's schedule of
// faults does not drift with the time its own steps take.
void SleepUntil(int64_t start_mono_ms, int64_t offset_ms);

}  // namespace instrumeter::testing
