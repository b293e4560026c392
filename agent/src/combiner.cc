#include "combiner.h"

#include <algorithm>

namespace instrumeter::agent {
namespace {

using adapters::SourceState;

bool Contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

bool SaysPowered(SourceState s) { return s == SourceState::kIdle || s == SourceState::kInUse; }

// The opinions of the named sources, in the order given; a source that reported nothing is an
// error, so that a silent adapter can never count as agreement.
std::vector<Opinion> OpinionsOf(const std::vector<std::string>& names,
                                const std::vector<Opinion>& opinions) {
  std::vector<Opinion> out;
  for (const std::string& name : names) {
    auto it = std::find_if(opinions.begin(), opinions.end(),
                           [&](const Opinion& o) { return o.adapter == name; });
    out.push_back(it != opinions.end() ? *it : Opinion{name, std::nullopt, "no state reported"});
  }
  return out;
}

std::string Errors(const std::vector<Opinion>& sources) {
  std::string out;
  for (const Opinion& o : sources) {
    if (o.state) continue;
    out += (out.empty() ? "" : "; ") + o.adapter + ": " + (o.why.empty() ? "error" : o.why);
  }
  return out;
}

}  // namespace

v1::InstrumentState ToWire(SourceState state) {
  switch (state) {
    case SourceState::kOff:
      return v1::INSTRUMENT_STATE_OFF;
    case SourceState::kIdle:
      return v1::INSTRUMENT_STATE_IDLE;
    case SourceState::kInUse:
      return v1::INSTRUMENT_STATE_IN_USE;
    case SourceState::kFault:
      return v1::INSTRUMENT_STATE_FAULT;
  }
  return v1::INSTRUMENT_STATE_UNKNOWN;
}

Verdict Combiner::Combine(const std::vector<Opinion>& opinions) const {
  const std::vector<Opinion> power = OpinionsOf(power_, opinions);
  const std::vector<Opinion> use = OpinionsOf(use_, opinions);
  auto any = [](const std::vector<Opinion>& sources, auto pred) {
    return std::any_of(sources.begin(), sources.end(),
                       [&](const Opinion& o) { return o.state && pred(*o.state); });
  };
  auto all_err = [](const std::vector<Opinion>& sources) {
    return std::all_of(sources.begin(), sources.end(), [](const Opinion& o) { return !o.state; });
  };

  Verdict v;
  if (any(power, [](SourceState s) { return s == SourceState::kFault; })) {
    v.state = v1::INSTRUMENT_STATE_FAULT;
  } else if (all_err(power)) {
    v.state = v1::INSTRUMENT_STATE_UNKNOWN;
    v.reason = "no power source could tell: " + Errors(power);
    return v;
  } else if (!any(power, SaysPowered)) {
    v.state = v1::INSTRUMENT_STATE_OFF;
  } else if (any(use, [](SourceState s) { return s == SourceState::kInUse; })) {
    v.state = v1::INSTRUMENT_STATE_IN_USE;
  } else if (all_err(use)) {
    v.state = v1::INSTRUMENT_STATE_UNKNOWN;
    v.reason = "powered, but no use source could tell: " + Errors(use);
    return v;
  } else {
    v.state = v1::INSTRUMENT_STATE_IDLE;
  }

  // Each adapter is judged in every role it has: a power source by whether it says what the
  // verdict says about power, a use source by whether it says what the verdict says about use.
  const bool powered_verdict =
      v.state == v1::INSTRUMENT_STATE_IDLE || v.state == v1::INSTRUMENT_STATE_IN_USE;
  const bool in_use_verdict = v.state == v1::INSTRUMENT_STATE_IN_USE;
  for (const Opinion& o : opinions) {
    if (!o.state) continue;
    const bool is_power = Contains(power_, o.adapter);
    const bool is_use = Contains(use_, o.adapter);
    bool agrees = false;
    bool contradicts = false;
    if (is_power) {
      const bool ok = powered_verdict ? SaysPowered(*o.state) : ToWire(*o.state) == v.state;
      (ok ? agrees : contradicts) = true;
    }
    if (is_use) {
      const bool says_in_use = *o.state == SourceState::kInUse;
      if (powered_verdict)
        (says_in_use == in_use_verdict ? agrees : contradicts) = true;
      else if (says_in_use)
        contradicts = true;  // in use while OFF or in FAULT
    }
    if (contradicts) {
      v.sources_disagreed.push_back(o.adapter);
    } else if (agrees) {
      v.sources_agreed.push_back(o.adapter);
      if (!o.why.empty()) v.reason += (v.reason.empty() ? "" : "; ") + o.adapter + ": " + o.why;
    }
  }
  return v;
}

}  // namespace instrumeter::agent
