#include "adapters/reconnect.h"

#include <algorithm>

namespace instrumeter::adapters {

Status Reconnect::Ready() const {
  if (!waiting_) return Status::Ok();
  const int64_t left = next_attempt_ms_ - clock_->MonotonicMs();
  if (left <= 0) return Status::Ok();
  return Status::Unavailable("retrying in " + std::to_string(left) + " ms: " + last_error_);
}

Status Reconnect::Failed(const std::string& error) {
  waiting_ = true;
  last_error_ = error;
  // At least 1 ms, so the status returned here is always the refusal that Ready() repeats.
  next_attempt_ms_ = clock_->MonotonicMs() + std::max<int64_t>(1, backoff_.NextDelayMs());
  return Ready();
}

void Reconnect::Succeeded() {
  waiting_ = false;
  backoff_.Reset();
}

}  // namespace instrumeter::adapters
