// Test helpers shared by the adapter tests: a sink that records, a one-line rendering of a poll,
// an adapter built from TOML the way the agent builds it, and the golden-case runner.
//
// Golden cases live in firmware-adapters/<adapter>/testdata/golden/<case>/:
//   config.toml          one [[adapter]] section, as a user writes it; ${VAR} is replaced by the
//                        test (${PORT} a peer's port, ${DIR} a temporary folder, ${UNIQ} a token
//                        unique to this run)
//   inputs.txt           the steps, one per line: `poll`, `advance <ms>` (the fake clock),
//                        `restart` (Stop, a new instance, Init, Start) and the adapter's own verbs
//                        (what the peer serves, what is written to the file, ...); '#' comments
//   expected_states.txt  one line per `poll`: the rendered observations (RenderPoll), or
//                        `error: <text>` where <text> must occur in the poll's error message
//   expected_error.txt   instead of the two above: text that must occur in the start-up error
// Used from the test's thread only.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "adapters/adapter.h"
#include "adapters/registry.h"
#include "common/clock.h"
#include "common/config.h"

namespace instrumeter::adapters::testing {

class RecordingSink : public ObservationSink {
 public:
  void Report(Observation observation) override { seen.push_back(std::move(observation)); }
  std::vector<Observation> seen;
};

// "power_watts=612.5 energy_kwh=12 state=IN_USE": every observation but a State's `why`, in the
// order reported; "error: <message>" when `status` is not OK.
std::string RenderPoll(const Status& status, const std::vector<Observation>& observations);
// Polls once and renders the result.
std::string PollOnce(Adapter& adapter);

// An adapter instance built from the text of one [[adapter]] section the way the agent builds
// it: the section validated against name/type plus the type's schema, then Init. Keeps the parsed
// document alive for as long as the adapter may look at it.
class ConfiguredAdapter {
 public:
  // `toml` holds one [[adapter]] table (or, for brevity, just the adapter's own keys, which get
  // name = `name` and type = `type`).
  static Result<std::unique_ptr<ConfiguredAdapter>> Make(const std::string& type,
                                                         const std::string& toml,
                                                         const AdapterContext& context);
  Adapter& adapter() { return *adapter_; }
  Adapter* operator->() { return adapter_.get(); }

 private:
  toml::table document_;
  config::Schema schema_;
  std::unique_ptr<Adapter> adapter_;
};

// Replaces every ${NAME} in `text` with vars[NAME].
std::string Substitute(const std::string& text, const std::map<std::string, std::string>& vars);

struct GoldenCase {
  std::string name;  // the folder's name
  std::string dir;
  std::string config;
  std::vector<std::string> inputs;  // steps, comments and blank lines removed
  std::vector<std::string> expected_states;
  std::string expected_error;  // empty unless the case expects a start-up error
};

// gtest prints a case by its name.
inline void PrintTo(const GoldenCase& golden, std::ostream* out) { *out << golden.name; }

// Every case under `golden_dir`, sorted by name.
std::vector<GoldenCase> LoadGoldenCases(const std::string& golden_dir);

// Plays one case. The adapter-specific verbs get the rest of the line; they return an error to
// fail the case. Returns one message per mismatch (empty: the case passed).
class GoldenRunner {
 public:
  using Verb = std::function<Status(const std::string& args)>;
  GoldenRunner(std::string type, FakeClock* clock, std::string state_dir)
      : type_(std::move(type)), clock_(clock), state_dir_(std::move(state_dir)) {}

  void AddVerb(const std::string& name, Verb verb) { verbs_[name] = std::move(verb); }
  std::vector<std::string> Run(const GoldenCase& golden,
                               const std::map<std::string, std::string>& vars);

 private:
  std::string type_;
  FakeClock* clock_;
  std::string state_dir_;
  std::map<std::string, Verb> verbs_;
};

}  // namespace instrumeter::adapters::testing
