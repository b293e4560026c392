// The shape of the hub's background workers (verification, archive): a thread that runs a pass
// at once and then every interval, each worker over its own connection to the database, until it
// is destroyed.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

namespace instrumeter::hub {

class PeriodicThread {
 public:
  // `pause(d)` waits `d` (zero: not at all), less once the thread is asked to stop, and returns
  // false from then on: a pass long enough to end early asks it between steps.
  using Pause = std::function<bool(std::chrono::milliseconds)>;
  using Pass = std::function<void(const Pause& pause)>;

  // Starts the thread: everything `pass` uses must be alive already.
  PeriodicThread(int64_t interval_ms, Pass pass);
  // Asks a pass in progress to stop, waits for it and joins.
  ~PeriodicThread();
  PeriodicThread(const PeriodicThread&) = delete;
  PeriodicThread& operator=(const PeriodicThread&) = delete;

  int64_t interval_ms() const { return interval_ms_; }

 private:
  void Loop();
  bool Wait(std::chrono::milliseconds d);

  const int64_t interval_ms_;
  const Pass pass_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;   // guarded by mu_
  std::thread thread_;  // last: started after everything it uses
};

}  // namespace instrumeter::hub
