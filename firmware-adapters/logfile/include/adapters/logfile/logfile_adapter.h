// The `logfile` adapter: tails an instrument's log and turns lines into states with ordered regex
// rules ("Acquisition started" -> IN_USE, "Run complete" -> IDLE). The state is the one given by
// the last line that matched a rule.
//
// It survives rotation (a new file at the path: the old one is read to its end, then the new one
// from its start) and truncation (the file shrank below the offset: read again from 0), and keeps
// its position (file identity, offset of the last complete line, last state) in
// <state_dir>/logfile-<name>.offset, so a restarted agent neither re-reads old lines nor loses the
// state. The file is rewritten at once on a new state, a rotation or truncation and at Stop, and
// otherwise at most every position_save_interval_ms: after a crash up to that much of the log is
// read again, which ends in the same state. Each poll reads at most max_read_bytes; while a
// backlog remains the poll reports an error ("catching up") rather than a state from the past,
// so old lines never become current hours.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "adapters/adapter.h"
#include "adapters/logfile/log_file.h"
#include "adapters/state_rules.h"

namespace instrumeter::adapters::logfile {

const config::Schema& LogfileSchema();

class LogfileAdapter : public Adapter {
 public:
  explicit LogfileAdapter(AdapterContext context,
                          std::unique_ptr<LogFileSystem> files = MakeSystemLogFileSystem())
      : context_(std::move(context)), files_(std::move(files)) {}

  Status Init(const config::Section& section) override;
  // Loads the saved position; opens nothing (the file may appear later).
  Status Start() override;
  Status Poll(ObservationSink& sink) override;
  // Saves the position (whatever the interval) and closes the file.
  void Stop() override;

 private:
  struct Position {
    FileIdentity identity;
    int64_t offset = 0;  // start of the first line not yet evaluated
    std::optional<SourceState> state;
    std::string why;
  };

  Status OpenPath();
  // Splits `data` (read at offset_) into lines and evaluates each complete one.
  Status Consume(const std::string& data);
  Status EvaluateLine(std::string line);
  void StartOver(int64_t offset);
  // Writes the position file if its content changed.
  Status Save();
  // Whether this poll should Save: the interval has passed since the last write, nothing was
  // written yet in this run, the state changed, or the adapter moved to another file or back to
  // offset 0.
  bool SaveDue() const;
  std::string Prefix() const;

  AdapterContext context_;
  std::unique_ptr<LogFileSystem> files_;
  std::string path_;
  StateRules rules_;
  std::optional<SourceState> initial_state_;
  size_t max_read_bytes_ = 0;
  size_t max_line_bytes_ = 0;
  int64_t save_interval_ms_ = 0;
  std::string state_path_;

  bool started_ = false;
  std::optional<Position> saved_;  // loaded at Start, applied when the file it names is opened
  std::unique_ptr<OpenLogFile> file_;
  int64_t offset_ = 0;      // next byte of file_ to read
  int64_t line_start_ = 0;  // where the line in partial_ starts
  std::string partial_;     // a line not completed yet (at most max_line_bytes_)
  bool overlong_ = false;   // partial_ was cut; the rest of the line is being skipped
  std::optional<SourceState> state_;
  std::string why_;
  std::string last_saved_;                  // the state file's content, to write only changes
  std::optional<int64_t> last_save_ms_;     // monotonic time of the last write in this run
  std::optional<SourceState> saved_state_;  // the state in the position file
  bool jumped_ = false;                     // rotated or truncated since the last Save
};

}  // namespace instrumeter::adapters::logfile
