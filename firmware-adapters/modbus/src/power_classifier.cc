#include "adapters/modbus/power_classifier.h"

#include <sstream>

namespace instrumeter::adapters::modbus {

SourceState PowerClassifier::Indicated(double watts) const {
  const double h = current_ ? t_.hysteresis_watts : 0;
  const double off = t_.off_below_watts;
  const double in_use = t_.in_use_above_watts;
  switch (current_.value_or(SourceState::kIdle)) {
    case SourceState::kOff:
      if (watts > in_use + h) return SourceState::kInUse;
      return watts >= off + h ? SourceState::kIdle : SourceState::kOff;
    case SourceState::kInUse:
      if (watts < off - h) return SourceState::kOff;
      return watts <= in_use - h ? SourceState::kIdle : SourceState::kInUse;
    case SourceState::kIdle:
    case SourceState::kFault:
      break;
  }
  if (watts < off - h) return SourceState::kOff;
  return watts > in_use + h ? SourceState::kInUse : SourceState::kIdle;
}

SourceState PowerClassifier::Update(double watts, int64_t now_ms) {
  const SourceState indicated = Indicated(watts);
  std::ostringstream why;
  why << watts << " W (OFF below " << t_.off_below_watts << ", IN_USE above "
      << t_.in_use_above_watts << ", hysteresis " << t_.hysteresis_watts << ")";
  if (!current_ || indicated == *current_) {
    current_ = indicated;
    pending_.reset();
  } else {
    if (pending_ != indicated) {
      pending_ = indicated;
      pending_since_ms_ = now_ms;
    }
    const int64_t held = now_ms - pending_since_ms_;
    if (held >= t_.min_dwell_ms) {
      current_ = indicated;
      pending_.reset();
    } else {
      why << "; " << SourceStateName(indicated) << " for " << held << " of " << t_.min_dwell_ms
          << " ms min_dwell_ms";
    }
  }
  why_ = why.str();
  return *current_;
}

}  // namespace instrumeter::adapters::modbus
