#include "hub/live_feed.h"

namespace instrumeter::hub {

void LiveFeed::OnCommitted(std::vector<LiveChange> changes) {
  if (changes.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (!wake_) return;  // nobody listens (the HTTP side is off or not started)
  const bool was_empty = queue_.empty();
  for (LiveChange& change : changes) queue_.push_back(std::move(change));
  while (queue_.size() > max_changes_) {
    queue_.pop_front();
    ++dropped_;
    overflowed_ = true;
  }
  if (was_empty && wake_) wake_();
}

void LiveFeed::SetWakeup(std::function<void()> wake) {
  std::lock_guard<std::mutex> lock(mu_);
  wake_ = std::move(wake);
}

LiveFeed::Taken LiveFeed::Take() {
  Taken taken;
  std::lock_guard<std::mutex> lock(mu_);
  taken.changes.assign(std::make_move_iterator(queue_.begin()),
                       std::make_move_iterator(queue_.end()));
  queue_.clear();
  taken.overflowed = overflowed_;
  overflowed_ = false;
  return taken;
}

uint64_t LiveFeed::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

}  // namespace instrumeter::hub
