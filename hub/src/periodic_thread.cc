#include "hub/periodic_thread.h"

#include <chrono>

namespace instrumeter::hub {

PeriodicThread::PeriodicThread(int64_t interval_ms, Pass pass)
    : interval_ms_(interval_ms), pass_(std::move(pass)), thread_([this] { Loop(); }) {}

PeriodicThread::~PeriodicThread() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool PeriodicThread::Wait(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  return !wake_.wait_for(lock, d, [this] { return stop_; });
}

void PeriodicThread::Loop() {
  const Pause pause = [this](std::chrono::milliseconds d) { return Wait(d); };
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    lock.unlock();
    pass_(pause);
    lock.lock();
    wake_.wait_for(lock, std::chrono::milliseconds(interval_ms_), [this] { return stop_; });
  }
}

}  // namespace instrumeter::hub
