#include "contradiction.h"

namespace instrumeter::agent {
namespace {

const Opinion* Find(const std::vector<Opinion>& opinions, const std::string& adapter) {
  for (const Opinion& o : opinions)
    if (o.adapter == adapter) return &o;
  return nullptr;
}

}  // namespace

ContradictionWatcher::ContradictionWatcher(std::vector<ContradictionWatch> watches) {
  for (ContradictionWatch& w : watches) pairs_.push_back({std::move(w)});
}

ContradictionWatcher::Changes ContradictionWatcher::Update(const std::vector<Opinion>& opinions,
                                                           int64_t now_ms) {
  Changes changes;
  for (Pair& pair : pairs_) {
    const Opinion* a = Find(opinions, pair.watch.first);
    const Opinion* b = Find(opinions, pair.watch.second);
    const bool both_tell = a != nullptr && b != nullptr && a->state && b->state;
    const bool contradicting = both_tell && ((*a->state == adapters::SourceState::kInUse) !=
                                             (*b->state == adapters::SourceState::kInUse));
    if (!contradicting) {
      if (pair.raised) changes.cleared.push_back(Describe(pair, now_ms));
      pair.since_ms.reset();
      pair.raised = false;
      continue;
    }
    pair.first_says = adapters::SourceStateName(*a->state);
    pair.second_says = adapters::SourceStateName(*b->state);
    if (!pair.since_ms) pair.since_ms = now_ms;
    if (!pair.raised && now_ms - *pair.since_ms >= pair.watch.after_ms) {
      pair.raised = true;
      changes.raised.push_back(Describe(pair, now_ms));
    }
  }
  return changes;
}

std::vector<std::string> ContradictionWatcher::Active(int64_t now_ms) const {
  std::vector<std::string> out;
  for (const Pair& pair : pairs_)
    if (pair.raised) out.push_back(Describe(pair, now_ms));
  return out;
}

std::string ContradictionWatcher::Describe(const Pair& pair, int64_t now_ms) const {
  const int64_t seconds = pair.since_ms ? (now_ms - *pair.since_ms) / 1000 : 0;
  return pair.watch.first + " says " + pair.first_says + ", " + pair.watch.second + " says " +
         pair.second_says + ", for " + std::to_string(seconds) + " s";
}

}  // namespace instrumeter::agent
