// Evidence -> instrument state: combines every adapter's opinion of one poll into one verdict by
// the configured rule (DESIGN rule 1), recording which sources agreed and which contradicted it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "adapters/adapter.h"
#include "protocol/codec.h"

namespace instrumeter::agent {

namespace v1 = ::instrumeter::v1;

// What one adapter said in one poll: its last kState observation, or why it has no opinion.
struct Opinion {
  std::string adapter;
  std::optional<adapters::SourceState> state;  // empty: the adapter could not tell
  std::string why;                             // the observation's text, or the error
};

struct Verdict {
  v1::InstrumentState state = v1::INSTRUMENT_STATE_UNKNOWN;
  std::vector<std::string> sources_agreed;
  std::vector<std::string> sources_disagreed;
  std::string reason;

  bool disagreement() const { return !sources_disagreed.empty(); }
};

v1::InstrumentState ToWire(adapters::SourceState state);

// Immutable after construction; Combine is a pure function, callable from any thread.
class Combiner {
 public:
  // Adapter names of the power and use sources (AgentConfig::power_sources / use_sources).
  Combiner(std::vector<std::string> power_sources, std::vector<std::string> use_sources)
      : power_(std::move(power_sources)), use_(std::move(use_sources)) {}

  // The rule, with P = power sources and U = use sources:
  //   any P says FAULT -> FAULT; else every P errs -> UNKNOWN; else no P says IDLE/IN_USE -> OFF;
  //   else any U says IN_USE -> IN_USE; else every U errs -> UNKNOWN; else IDLE.
  // Opinions of adapters that are neither P nor U are ignored; a configured source without an
  // opinion in `opinions` counts as an error ("no state reported").
  Verdict Combine(const std::vector<Opinion>& opinions) const;

 private:
  std::vector<std::string> power_;
  std::vector<std::string> use_;
};

}  // namespace instrumeter::agent
