// Watches configured pairs of sources for lasting contradiction (issue 3, "combined evidence"):
// "drawing full power, nobody logged in" or "the acquisition software runs with the meter at
// zero". Two sources contradict when exactly one of them says IN_USE and the other has an opinion
// (IDLE, OFF or FAULT); an adapter that cannot tell contradicts nothing. A contradiction is raised
// once it has lasted `after_ms`, and cleared as soon as the pair agrees or either falls silent.
//
// Used on the agent's loop thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/agent_config.h"
#include "combiner.h"

namespace instrumeter::agent {

class ContradictionWatcher {
 public:
  explicit ContradictionWatcher(std::vector<ContradictionWatch> watches);

  // Feeds one poll's opinions at monotonic time `now_ms`. Returns the descriptions of the
  // contradictions that were raised or cleared by this poll, for the log.
  struct Changes {
    std::vector<std::string> raised;
    std::vector<std::string> cleared;
  };
  Changes Update(const std::vector<Opinion>& opinions, int64_t now_ms);

  // Raised contradictions, e.g. "power says IN_USE, daq says IDLE, for 612 s".
  std::vector<std::string> Active(int64_t now_ms) const;

 private:
  struct Pair {
    ContradictionWatch watch;
    std::optional<int64_t> since_ms;  // contradicting since
    bool raised = false;
    std::string first_says, second_says;
  };
  std::string Describe(const Pair& pair, int64_t now_ms) const;

  std::vector<Pair> pairs_;
};

}  // namespace instrumeter::agent
