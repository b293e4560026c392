#include "adapters/adapter.h"

namespace instrumeter::adapters {

const char* SourceStateName(SourceState state) {
  switch (state) {
    case SourceState::kOff:
      return "OFF";
    case SourceState::kIdle:
      return "IDLE";
    case SourceState::kInUse:
      return "IN_USE";
    case SourceState::kFault:
      return "FAULT";
  }
  return "?";
}

}  // namespace instrumeter::adapters
