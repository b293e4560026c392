// The shape of the hub's background workers (verification, archive): a thread that runs a pass
// at once and then every interval, each worker over its own connection to the database, until it
// is destroyed.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

namespace instrumeter::hub {

class PeriodicThread {
 public:
  // `stopping` turns true once the thread is asked to stop, for a pass long enough to end early.
  using Pass = std::function<void(const std::function<bool()>& stopping)>;

  // Starts the thread: everything `pass` uses must be alive already.
  PeriodicThread(int64_t interval_ms, Pass pass);
  // Asks a pass in progress to stop, waits for it and joins.
  ~PeriodicThread();
  PeriodicThread(const PeriodicThread&) = delete;
  PeriodicThread& operator=(const PeriodicThread&) = delete;

  int64_t interval_ms() const { return interval_ms_; }

 private:
  void Loop();
  bool Stopping();

  const int64_t interval_ms_;
  const Pass pass_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;   // guarded by mu_
  std::thread thread_;  // last: started after everything it uses
};

}  // namespace instrumeter::hub
