// The hand-over of committed changes from the ingest thread to the http thread: a bounded,
// thread-safe queue. The ingest thread never waits on the http side: when the queue is full the
// oldest changes are dropped and the consumer is told to reload from the database instead.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <vector>

#include "hub/commit_observer.h"

namespace instrumeter::hub {

class LiveFeed : public CommitObserver {
 public:
  // At most `max_changes` device changes wait; past that the oldest are dropped.
  explicit LiveFeed(size_t max_changes = 100'000) : max_changes_(max_changes) {}

  // Ingest thread. Queues the changes and calls the wake-up when the queue was empty (one call
  // per batch of waiting changes, not one per change). Without a wake-up nobody listens, and
  // the changes are not kept.
  void OnCommitted(std::vector<LiveChange> changes) override;

  // `wake` is called (under the feed's lock, so it must only post work elsewhere and return)
  // when changes start waiting. Set it before the ingest starts; clear it (nullptr) before
  // whatever it posts to goes away. Any thread.
  void SetWakeup(std::function<void()> wake);

  struct Taken {
    std::vector<LiveChange> changes;  // oldest first
    // Changes were dropped since the last Take: the consumer's view is stale; reload it.
    bool overflowed = false;
  };
  // Removes and returns everything waiting. Consumer thread.
  Taken Take();

  // Changes dropped because the consumer fell behind, since start. Any thread.
  uint64_t dropped() const;

 private:
  const size_t max_changes_;
  mutable std::mutex mu_;
  std::deque<LiveChange> queue_;  // guarded by mu_
  bool overflowed_ = false;       // guarded by mu_
  uint64_t dropped_ = 0;          // guarded by mu_
  std::function<void()> wake_;    // guarded by mu_
};

}  // namespace instrumeter::hub
