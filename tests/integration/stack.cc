#include "stack.h"

#include <signal.h>
#include <time.h>

#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/sqlite_db.h"

namespace instrumeter::testing {

int64_t MonotonicNowMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

Result<std::unique_ptr<Stack>> Stack::Start(const Options& options) {
  std::unique_ptr<Stack> stack(new Stack());
  stack->hub_db_ = options.hub_db.empty() ? stack->dir_.File("hub.db") : options.hub_db;
  // Like a production broker, it saves sessions soon after they change, so the hub's persistent
  // subscription survives a broker crash and a backlog published before the hub reconnects is
  // queued for it rather than dropped.
  auto broker =
      TestBroker::Start({.extra_config = "autosave_interval 1\n" + options.broker_extra_config});
  if (!broker.ok()) return broker.status();
  stack->broker_ = std::move(*broker);
  WriteFile(stack->hub_config(), "[mqtt]\nbroker = \"" + stack->broker_->url() +
                                     "\"\nreconnect_min_ms = 200\nreconnect_max_ms = 2000\n"
                                     "\n[store]\npath = \"" +
                                     stack->hub_db() + "\"\n");
  INSTRUMETER_RETURN_IF_ERROR(stack->StartHub());
  return stack;
}

Stack::~Stack() {
  for (auto& [id, a] : agents_) a.process.Stop(std::chrono::seconds(5));
  StopHub();
}

std::vector<std::string> Stack::agent_ids() const {
  std::vector<std::string> ids;
  for (const auto& [id, a] : agents_) ids.push_back(id);
  return ids;
}

int Stack::Hub(const std::vector<std::string>& args, std::string* output) const {
  std::vector<std::string> argv = {INSTRUMETER_HUB_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("--config");
  argv.push_back(hub_config());
  return RunCommand(argv, output);
}

Status Stack::StartHub(const std::vector<std::string>& env) {
  auto child =
      ChildProcess::Start({INSTRUMETER_HUB_BIN, "run", "--config", hub_config()}, hub_log(), env);
  if (!child.ok()) return child.status();
  hub_ = std::move(*child);
  return Status::Ok();
}

void Stack::KillHub() {
  hub_.Signal(SIGKILL);
  hub_.Wait(std::chrono::seconds(5));
}

void Stack::StopHub() { hub_.Stop(std::chrono::seconds(10)); }

Status Stack::AddAgent(const std::string& id, const AgentOptions& o) {
  std::string out;
  if (Hub({"instruments", "add", "--id", id, "--name", "Simulated " + id, "--institution",
           "Test Institute", "--site", "Lab 1", "--city", "Shanghai", "--region", "Shanghai"},
          &out) != 0)
    return Status::Internal("instruments add " + id + " failed: " + out);
  AgentRecord record;
  record.id = id;
  record.dir = dir_.File("agent-" + id);
  record.state_dir = o.state_dir.empty() ? record.dir + "/state" : o.state_dir;
  std::filesystem::create_directories(record.dir);
  std::filesystem::create_directories(record.state_dir);
  record.config_path = record.dir + "/agent.toml";
  std::ostringstream config;
  config << "device_id = \"" << id << "\"\n"
         << "state_dir = \"" << record.state_dir << "\"\n"
         << "poll_interval_ms = " << o.poll_interval_ms << "\n"
         << "heartbeat_interval_ms = " << o.heartbeat_interval_ms << "\n"
         << "\n[mqtt]\n"
         << "broker = \"" << (o.broker_url.empty() ? broker_->url() : o.broker_url) << "\"\n"
         << "keepalive_s = " << o.keepalive_s << "\n"
         << "reconnect_min_ms = " << o.reconnect_min_ms << "\n"
         << "reconnect_max_ms = " << o.reconnect_max_ms << "\n"
         << "ack_timeout_ms = " << o.ack_timeout_ms << "\n"
         << "max_envelopes_in_flight = " << o.max_envelopes_in_flight << "\n"
         << "shutdown_flush_ms = 10000\n"
         << "\n[[adapter]]\nname = \"sim\"\ntype = \"simulator\"\n"
         << "seed = " << o.seed << "\n"
         << "min_period_ms = " << o.min_period_ms << "\n"
         << "max_period_ms = " << o.max_period_ms << "\n"
         << "truth_file = \"" << record.dir << "/truth.log\"\n";
  WriteFile(record.config_path, config.str());
  agents_.emplace(id, std::move(record));
  options_[id] = o;
  return StartAgent(id);
}

Status Stack::StartAgent(const std::string& id, const std::vector<std::string>& env) {
  AgentRecord& a = agents_.at(id);
  std::vector<std::string> all_env = options_.at(id).env;
  all_env.insert(all_env.end(), env.begin(), env.end());
  if (!a.kills_mono_ms.empty()) a.restarts_mono_ms.push_back(MonotonicNowMs());
  auto child = ChildProcess::Start({INSTRUMETER_AGENT_BIN, "run", "--config", a.config_path},
                                   a.dir + "/agent.log", all_env);
  if (!child.ok()) return child.status();
  a.process = std::move(*child);
  return Status::Ok();
}

void Stack::KillAgent(const std::string& id) {
  AgentRecord& a = agents_.at(id);
  a.process.Signal(SIGKILL);
  a.kills_mono_ms.push_back(MonotonicNowMs());
  a.process.Wait(std::chrono::seconds(5));
}

int Stack::WaitAgentCrash(const std::string& id, std::chrono::milliseconds timeout) {
  AgentRecord& a = agents_.at(id);
  const int code = a.process.Wait(timeout);
  if (code != -1) a.kills_mono_ms.push_back(MonotonicNowMs());
  return code;
}

int Stack::StopAgent(const std::string& id) {
  return agents_.at(id).process.Stop(std::chrono::seconds(20));
}

std::vector<int64_t> Stack::Downtimes(const std::string& id) const {
  const AgentRecord& a = agents_.at(id);
  std::vector<int64_t> out;
  for (size_t i = 0; i < a.kills_mono_ms.size() && i < a.restarts_mono_ms.size(); ++i)
    out.push_back(a.restarts_mono_ms[i] - a.kills_mono_ms[i]);
  return out;
}

Result<Stack::HubView> Stack::ReadHub(const std::string& id) const {
  auto db = SqliteDb::Open(hub_db(), {.read_only = true, .create = false});
  if (!db.ok()) return db.status();
  HubView view;
  auto dev = (*db)->Prepare("SELECT dev_key, contiguous_seq FROM devices WHERE device_id = ?");
  if (!dev.ok()) return dev.status();
  dev->Bind(1, std::string_view(id));
  auto found = dev->Step();
  if (!found.ok()) return found.status();
  if (!*found) return Status::NotFound("the hub has no device " + id);
  const int64_t key = dev->Int(0);
  view.contiguous_seq = dev->Int(1);

  auto ev =
      (*db)->Prepare("SELECT seq, received_unix_ms FROM events WHERE dev_key = ? ORDER BY seq");
  if (!ev.ok()) return ev.status();
  ev->Bind(1, key);
  std::vector<int64_t> seqs;
  int64_t last_received = 0;
  while (true) {
    auto row = ev->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    seqs.push_back(ev->Int(0));
    view.stored_in_sequence_order &= ev->Int(1) >= last_received;
    last_received = ev->Int(1);
  }
  view.events = static_cast<int64_t>(seqs.size());
  view.distinct_seq = static_cast<int64_t>(std::unique(seqs.begin(), seqs.end()) - seqs.begin());
  view.max_seq = seqs.empty() ? 0 : seqs.back();

  auto iv = (*db)->Prepare(
      "SELECT kind, state, duration_ms, flags FROM intervals WHERE dev_key = ? ORDER BY id");
  if (!iv.ok()) return iv.status();
  iv->Bind(1, key);
  while (true) {
    auto row = iv->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    const int64_t duration = iv->Int(2);
    if (iv->Text(0) == "gap") {
      view.gap_ms.push_back(duration);
      continue;
    }
    const int64_t state = iv->Int(1);
    if (state == 2 || state == 3 || state == 4) view.powered_ms += duration;  // IDLE, IN_USE, FAULT
    if (state == 3) view.in_use_ms += duration;
    if (iv->Text(3).find("counter_mismatch") != std::string::npos) ++view.counter_mismatches;
  }
  return view;
}

// Asks `instrumeter-agent status --json`, as an operator would: a running agent answers from
// memory (it writes an acknowledgement to disk only with its next event, so the file lags by up
// to one heartbeat), a stopped one from its files.
Result<std::pair<int64_t, int64_t>> Stack::ReadOutbox(const std::string& id) const {
  const AgentRecord& a = agents_.at(id);
  std::string output;
  const int rc =
      RunCommand({INSTRUMETER_AGENT_BIN, "status", "--json", "--config", a.config_path}, &output);
  if (rc != 0)
    return Status::Internal("agent " + id + ": status exited " + std::to_string(rc) + ": " +
                            output);
  const nlohmann::json status = nlohmann::json::parse(output, nullptr, /*allow_exceptions=*/false);
  if (!status.is_object() || !status.contains("last_sequence") || !status.contains("outbox_depth"))
    return Status::Internal("agent " + id + ": unexpected status output: " + output);
  return std::make_pair(status["last_sequence"].get<int64_t>(),
                        status["outbox_depth"].get<int64_t>());
}

Result<adapters::simulator::TruthTotals> Stack::Truth(const std::string& id) const {
  const AgentRecord& a = agents_.at(id);
  auto runs = adapters::simulator::ReadGroundTruth(a.dir + "/truth.log");
  if (!runs.ok()) return runs.status();
  adapters::simulator::TruthTotals total;
  size_t kill = 0;
  for (const auto& run : *runs) {
    int64_t end = adapters::simulator::kOpenEnd;
    if (run.stop_mono_ms) {
      end = *run.stop_mono_ms;
    } else if (kill < a.kills_mono_ms.size()) {
      end = a.kills_mono_ms[kill++];
    } else {
      return Status::FailedPrecondition("agent " + id + ": a run ended without stop or kill");
    }
    const auto t = adapters::simulator::Totals(run.periods, run.start_mono_ms, end);
    total.powered_ms += t.powered_ms;
    total.in_use_ms += t.in_use_ms;
  }
  return total;
}

}  // namespace instrumeter::testing
