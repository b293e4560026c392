#include "adapters/simulator/ground_truth.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace instrumeter::adapters::simulator {
namespace {

bool StateFromName(const std::string& name, SourceState* out) {
  for (SourceState s :
       {SourceState::kOff, SourceState::kIdle, SourceState::kInUse, SourceState::kFault}) {
    if (name == SourceStateName(s)) {
      *out = s;
      return true;
    }
  }
  return false;
}

}  // namespace

Result<std::vector<TruthRun>> ReadGroundTruth(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot read ground truth " + path);
  std::vector<TruthRun> runs;
  std::string line;
  int line_no = 0;
  auto bad = [&](const std::string& why) {
    return Status::Corruption(path + ":" + std::to_string(line_no) + ": " + why);
  };
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string kind;
    fields >> kind;
    if (kind == "run") {
      TruthRun run;
      if (!(fields >> run.boot_id >> run.start_mono_ms)) return bad("malformed run record");
      runs.push_back(std::move(run));
      continue;
    }
    if (runs.empty()) return bad("record before the first run");
    TruthRun& run = runs.back();
    int64_t at = 0;
    if (kind == "period") {
      std::string name;
      SourceState state{};
      if (!(fields >> name >> at) || !StateFromName(name, &state)) return bad("malformed period");
      if (!run.periods.empty()) run.periods.back().end_mono_ms = at;
      run.periods.push_back({state, at, kOpenEnd});
    } else if (kind == "stop") {
      if (!(fields >> at)) return bad("malformed stop");
      run.stop_mono_ms = at;
      if (!run.periods.empty()) run.periods.back().end_mono_ms = at;
    } else {
      return bad("unknown record '" + kind + "'");
    }
  }
  return runs;
}

TruthTotals Totals(const std::vector<TruthPeriod>& periods, int64_t from_mono_ms,
                   int64_t to_mono_ms) {
  TruthTotals totals;
  for (const TruthPeriod& p : periods) {
    const int64_t start = std::max(p.start_mono_ms, from_mono_ms);
    const int64_t end = std::min(p.end_mono_ms, to_mono_ms);
    if (end <= start) continue;
    if (p.state != SourceState::kOff) totals.powered_ms += end - start;
    if (p.state == SourceState::kInUse) totals.in_use_ms += end - start;
  }
  return totals;
}

Result<std::unique_ptr<GroundTruthWriter>> GroundTruthWriter::Open(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "a");
  if (file == nullptr)
    return Status::IoError("cannot open ground truth " + path + ": " + std::strerror(errno));
  std::unique_ptr<GroundTruthWriter> writer(new GroundTruthWriter(file, path));
  if (std::ftell(file) == 0)
    INSTRUMETER_RETURN_IF_ERROR(
        writer->Write("# instrumeter simulator ground truth v1: state periods, monotonic ms"));
  return writer;
}

GroundTruthWriter::~GroundTruthWriter() { std::fclose(file_); }

Status GroundTruthWriter::Run(const std::string& boot_id, int64_t mono_ms) {
  return Write("run " + boot_id + " " + std::to_string(mono_ms));
}

Status GroundTruthWriter::Period(SourceState state, int64_t mono_ms) {
  return Write(std::string("period ") + SourceStateName(state) + " " + std::to_string(mono_ms));
}

Status GroundTruthWriter::Stop(int64_t mono_ms) { return Write("stop " + std::to_string(mono_ms)); }

Status GroundTruthWriter::Write(const std::string& line) {
  if (std::fputs((line + "\n").c_str(), file_) < 0 || std::fflush(file_) != 0)
    return Status::IoError("cannot write ground truth " + path_ + ": " + std::strerror(errno));
  return Status::Ok();
}

}  // namespace instrumeter::adapters::simulator
