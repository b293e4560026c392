// The firmware adapter interface: how the agent reads whatever tells the truth about an
// instrument (a power meter, a status port, the vendor's software, a log file).
//
// An adapter reports observations, never hours, and knows nothing of MQTT or storage: deriving
// states and metering time is the agent's job. Adapters hold no globals, so two instances of one
// type run side by side. They are listed in one explicit registry (firmware-adapters/registry).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/config.h"
#include "common/status.h"

namespace instrumeter::adapters {

// The instrument's state as one source sees it. The agent maps it to the wire enum.
enum class SourceState { kOff, kIdle, kInUse, kFault };

const char* SourceStateName(SourceState state);

// One typed reading from a source.
struct Observation {
  enum class Kind {
    kState,           // `state`: the source's own verdict (from its configured rules); `text`: why
    kPowerWatts,      // `value`: electrical power drawn, W
    kEnergyKwh,       // `value`: a cumulative energy register, kWh (reported, never used for hours)
    kProcessPresent,  // `value`: 1 if the watched process runs, 0 if not; `text`: what matched
    kUserLoggedIn,    // `text`: the interactive user, empty when nobody is logged in
    kIdentity,        // `text`: the instrument's identity (e.g. a *IDN? reply)
  };

  Kind kind = Kind::kState;
  SourceState state = SourceState::kOff;
  double value = 0;
  std::string text;

  static Observation State(SourceState s, std::string why = {}) {
    return {Kind::kState, s, 0, std::move(why)};
  }
  static Observation PowerWatts(double w) { return {Kind::kPowerWatts, SourceState::kOff, w, {}}; }
  static Observation EnergyKwh(double kwh) {
    return {Kind::kEnergyKwh, SourceState::kOff, kwh, {}};
  }
  static Observation ProcessPresent(bool present, std::string what = {}) {
    return {Kind::kProcessPresent, SourceState::kOff, present ? 1.0 : 0.0, std::move(what)};
  }
  static Observation UserLoggedIn(std::string user) {
    return {Kind::kUserLoggedIn, SourceState::kOff, 0, std::move(user)};
  }
  static Observation Identity(std::string id) {
    return {Kind::kIdentity, SourceState::kOff, 0, std::move(id)};
  }
};

// Where an adapter writes its readings during one Poll. Owned by the caller; valid only for the
// duration of the Poll call.
class ObservationSink {
 public:
  virtual ~ObservationSink() = default;
  virtual void Report(Observation observation) = 0;
};

// What the agent gives each adapter instance. Everything outlives the adapter.
struct AdapterContext {
  std::string name;       // the instance's name from the config, used in every message
  const Clock* clock;     // the agent's clock (a fake one in tests)
  std::string state_dir;  // a directory the adapter may keep small files in (offsets, anchors)
};

// Lifecycle, all on the agent's poll thread: Init once; Start once; Poll repeatedly; Stop once.
class Adapter {
 public:
  virtual ~Adapter() = default;

  // Validates the adapter's configuration. Opens nothing and touches no device, so a broken
  // config stops start-up before anything runs. Errors name the key (Section::Error).
  virtual Status Init(const config::Section& section) = 0;

  // Called once before the first Poll, for sources that hold connections or files open.
  virtual Status Start() { return Status::Ok(); }

  // Takes one snapshot of the source and reports it into `sink`. Must return within the
  // adapter's own timeout. A non-OK status means the source could not be read this time: the
  // agent treats the source as unable to tell (UNKNOWN, with this reason) and polls again later.
  virtual Status Poll(ObservationSink& sink) = 0;

  // Called once at shutdown; releases what Start took.
  virtual void Stop() {}
};

}  // namespace instrumeter::adapters
