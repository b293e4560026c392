#include "adapters/logfile/logfile_adapter.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace instrumeter::adapters::logfile {
namespace {

constexpr size_t kChunkBytes = 64 * 1024;

}  // namespace

const config::Schema& LogfileSchema() {
  static const config::Schema kSchema = {
      {.name = "path",
       .type = config::Type::kString,
       .description = "the log file to follow",
       .required = true},
      StateRules::SchemaKey("rule", "each complete line (without its line ending)", true),
      {.name = "initial_state",
       .type = config::Type::kString,
       .description = "the state before any line matched a rule; unset: no opinion (the poll "
                      "reports \"no matching line yet\")",
       .one_of = SourceStateNames()},
      {.name = "max_read_bytes",
       .type = config::Type::kInteger,
       .default_value = int64_t{1 << 20},
       .description = "bytes read at most per poll, so a huge backlog cannot stall the agent",
       .min = 4096,
       .max = 1 << 30},
      {.name = "max_line_bytes",
       .type = config::Type::kInteger,
       .default_value = int64_t{65536},
       .description = "longer lines are cut to this length before the rules see them",
       .min = 256,
       .max = 1 << 24},
      {.name = "position_save_interval_ms",
       .type = config::Type::kInteger,
       .default_value = int64_t{10000},
       .description = "the position file is rewritten at most this often, and at once on a new "
                      "state, a rotation, a truncation and at stop; after a crash the lines of "
                      "the last interval are read again, which gives the same state. 0: after "
                      "every poll that read a line",
       .min = 0,
       .max = 600000},
  };
  return kSchema;
}

std::string LogfileAdapter::Prefix() const {
  return "logfile '" + context_.name + "' " + path_ + ": ";
}

Status LogfileAdapter::Init(const config::Section& section) {
  path_ = section.String("path");
  if (path_.empty()) return section.Error("path", "must not be empty");
  auto rules = StateRules::FromSection(section, "rule");
  if (!rules.ok()) return rules.status();
  if (rules->empty()) return section.Error("rule", "needs at least one rule");
  rules_ = std::move(*rules);
  if (section.Has("initial_state"))
    initial_state_ = ParseSourceState(section.String("initial_state"));
  max_read_bytes_ = static_cast<size_t>(section.Integer("max_read_bytes"));
  max_line_bytes_ = static_cast<size_t>(section.Integer("max_line_bytes"));
  save_interval_ms_ = section.Integer("position_save_interval_ms");
  state_path_ = context_.state_dir + "/logfile-" + context_.name + ".offset";
  return Status::Ok();
}

Status LogfileAdapter::Start() {
  // "v1 <device> <inode> <offset> <state|-> <why...>"
  std::ifstream in(state_path_);
  std::string version, state_name;
  Position p;
  if (in >> version >> p.identity.device >> p.identity.inode >> p.offset >> state_name &&
      version == "v1" && p.offset >= 0) {
    std::getline(in, p.why);
    if (!p.why.empty() && p.why.front() == ' ') p.why.erase(0, 1);
    p.state = ParseSourceState(state_name);
    state_ = p.state;
    saved_state_ = p.state;
    why_ = p.why;
    saved_ = p;
  } else if (std::filesystem::exists(state_path_)) {
    return Status::Corruption(Prefix() + "unreadable position file " + state_path_ +
                              " (delete it to read the log from its start)");
  }
  started_ = true;
  return Status::Ok();
}

void LogfileAdapter::StartOver(int64_t offset) {
  offset_ = offset;
  line_start_ = offset;
  partial_.clear();
  overlong_ = false;
}

Status LogfileAdapter::OpenPath() {
  auto file = files_->Open(path_);
  if (!file.ok()) return file.status().WithContext("logfile '" + context_.name + "'");
  file_ = std::move(*file);
  // The saved offset applies only to the file it was taken in; a different file at the path was
  // rotated in while the agent was away and is read from its start.
  StartOver(saved_ && saved_->identity == file_->identity() ? saved_->offset : 0);
  saved_.reset();
  return Status::Ok();
}

Status LogfileAdapter::EvaluateLine(std::string line) {
  if (!line.empty() && line.back() == '\r') line.pop_back();
  auto match = rules_.Evaluate(line);
  if (!match.ok()) return match.status().WithContext(Prefix());
  if (match->has_value()) {
    state_ = (*match)->state;
    why_ = rules_.Describe(**match, line);
  }
  return Status::Ok();
}

Status LogfileAdapter::Consume(const std::string& data) {
  size_t at = 0;
  while (at < data.size()) {
    const size_t newline = data.find('\n', at);
    const size_t end = newline == std::string::npos ? data.size() : newline;
    if (!overlong_) {
      const size_t room = max_line_bytes_ - partial_.size();
      partial_.append(data, at, std::min(room, end - at));
      overlong_ = end - at > room;
    }
    if (newline == std::string::npos) {
      offset_ += static_cast<int64_t>(data.size() - at);
      return Status::Ok();
    }
    offset_ += static_cast<int64_t>(newline + 1 - at);
    at = newline + 1;
    std::string line = std::move(partial_);
    StartOver(offset_);
    INSTRUMETER_RETURN_IF_ERROR(EvaluateLine(std::move(line)));
  }
  return Status::Ok();
}

Status LogfileAdapter::Save() {
  if (file_ == nullptr) return Status::Ok();
  std::ostringstream content;
  content << "v1 " << file_->identity().device << " " << file_->identity().inode << " "
          << line_start_ << " " << (state_ ? SourceStateName(*state_) : "-") << " "
          << Printable(why_, 400) << "\n";
  if (content.str() == last_saved_) {
    jumped_ = false;
    return Status::Ok();
  }
  // Write-then-rename, so a crash leaves the old position or the new one, never half of one.
  const std::string tmp = state_path_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << content.str();
    out.flush();
    if (!out) return Status::IoError(Prefix() + "cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), state_path_.c_str()) != 0)
    return Status::IoError(Prefix() + "cannot replace " + state_path_);
  last_saved_ = content.str();
  last_save_ms_ = context_.clock->MonotonicMs();
  saved_state_ = state_;
  jumped_ = false;
  return Status::Ok();
}

bool LogfileAdapter::SaveDue() const {
  // A position file rewritten for every line costs a new file and a rename (a few KiB of disk
  // writes each). Deferring it is safe because a restart resumes from the saved line with the
  // saved state and reads the lines after it again: the state is the last matching line's either
  // way, and lines only ever give a state, nothing that adds up. A new state is saved at once, so
  // the lines after a saved position never change the state, even if a rotation or truncation
  // while the agent is down keeps them from being read again; a jump to another file or back to
  // offset 0 is saved at once too, so the position names the file being read.
  return jumped_ || !last_save_ms_ || state_ != saved_state_ ||
         context_.clock->MonotonicMs() - *last_save_ms_ >= save_interval_ms_;
}

Status LogfileAdapter::Poll(ObservationSink& sink) {
  if (!started_) return Status::FailedPrecondition(Prefix() + "polled before Start");
  if (file_ == nullptr) INSTRUMETER_RETURN_IF_ERROR(OpenPath());
  size_t budget = max_read_bytes_;
  int64_t behind = 0;
  while (true) {
    auto size = file_->Size();
    if (!size.ok()) return size.status().WithContext("logfile '" + context_.name + "'");
    if (*size < offset_) {  // truncated: whatever is there now is new
      StartOver(0);
      jumped_ = true;
    }
    if (offset_ < *size) {
      if (budget == 0) {
        behind = *size - offset_;
        break;
      }
      auto data = file_->ReadAt(
          offset_, std::min({budget, kChunkBytes, static_cast<size_t>(*size - offset_)}));
      if (!data.ok()) return data.status().WithContext("logfile '" + context_.name + "'");
      if (data->empty()) break;
      budget -= data->size();
      INSTRUMETER_RETURN_IF_ERROR(Consume(*data));
      continue;
    }
    // At the end of the open file: has a new file taken the path (rotation)?
    auto now_at_path = files_->IdentityOf(path_);
    if (!now_at_path.ok() || *now_at_path == file_->identity()) break;
    // The old file is finished: its unterminated last line will not be completed any more.
    if (!partial_.empty()) INSTRUMETER_RETURN_IF_ERROR(EvaluateLine(std::move(partial_)));
    auto next = files_->Open(path_);
    if (!next.ok()) break;  // vanished again; keep the old file and look next poll
    file_ = std::move(*next);
    StartOver(0);
    jumped_ = true;
  }
  if (SaveDue()) INSTRUMETER_RETURN_IF_ERROR(Save());
  if (behind > 0)
    return Status::Unavailable(Prefix() + "catching up: " + std::to_string(behind) +
                               " bytes not read yet");
  if (state_) {
    sink.Report(Observation::State(*state_, why_));
  } else if (initial_state_) {
    sink.Report(Observation::State(*initial_state_, "initial_state (no line matched yet)"));
  } else {
    return Status::NotFound(Prefix() + "no matching line yet");
  }
  return Status::Ok();
}

void LogfileAdapter::Stop() {
  (void)Save();
  file_.reset();
  started_ = false;
}

}  // namespace instrumeter::adapters::logfile
