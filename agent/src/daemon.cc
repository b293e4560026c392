#include "daemon.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>

#include "adapter_set.h"
#include "control_socket.h"
#include "protocol/codec.h"
#include "recorder.h"
#include "uplink.h"

namespace instrumeter::agent {
namespace {

using nlohmann::json;

json HealthJson(const std::vector<v1::AdapterHealth>& health) {
  json out = json::array();
  for (const v1::AdapterHealth& h : health)
    out.push_back({{"name", h.name()},
                   {"type", h.type()},
                   {"ok", h.ok()},
                   {"error", h.error()},
                   {"identity", h.identity()},
                   {"errors_total", h.errors_total()}});
  return out;
}

// Everything `instrumeter-agent status` shows, live.
json StatusJson(const AgentConfig& config, const Recorder& recorder, const Uplink& uplink,
                const AdapterSet& adapters) {
  const StateMeter& meter = recorder.meter();
  const Outbox& outbox = recorder.outbox();
  json session = nullptr;
  if (recorder.open_session())
    session = {{"order_id", recorder.open_session()->order_id},
               {"operator", recorder.open_session()->operator_name}};
  return {{"agent", "running"},
          {"pid", ::getpid()},
          {"agent_version", AgentVersion()},
          {"device_id", config.device_id},
          {"state", protocol::StateName(meter.state())},
          {"state_since_unix_ms", meter.since().wall_unix_ms},
          {"observed_until_unix_ms", meter.horizon().wall_unix_ms},
          {"powered_ms", meter.counters().powered_ms},
          {"in_use_ms", meter.counters().in_use_ms},
          {"sources_disagreeing", recorder.verdict().sources_disagreed},
          {"disagreements", recorder.Disagreements()},
          {"reason", recorder.verdict().reason},
          {"outbox_depth", outbox.depth()},
          {"events_waiting_in_memory", recorder.pending()},
          {"last_sequence", outbox.last_sequence()},
          {"acked_sequence", outbox.acked_sequence()},
          {"last_ack_unix_ms", outbox.acked_wall_unix_ms()},
          {"broker",
           {{"url", uplink.broker()},
            {"connected", uplink.connected()},
            {"next_to_send", uplink.next_to_send()},
            {"last_error", uplink.connected() ? "" : uplink.last_error()},
            {"downlink_errors", uplink.downlink_errors()},
            {"signed_envelopes", uplink.signed_envelopes()}}},
          {"session", session},
          {"adapters", HealthJson(adapters.Health())}};
}

json Reply(const Status& st) {
  if (st.ok()) return {{"ok", true}};
  return {{"ok", false}, {"error", st.message()}};
}

std::string Handle(const std::string& line, const AgentConfig& config, Recorder& recorder,
                   Uplink& uplink, const AdapterSet& adapters) {
  std::istringstream words(line);
  std::string command, sub;
  words >> command >> sub;
  if (command == "status" && sub.empty())
    return StatusJson(config, recorder, uplink, adapters).dump();
  if (command == "session" && (sub == "start" || sub == "stop")) {
    std::string order_id, operator_name;
    words >> order_id;
    std::getline(words >> std::ws, operator_name);
    Status st;
    if (sub == "start") {
      st = recorder.StartSession(order_id, operator_name);
    } else if (!order_id.empty()) {
      st = Status::InvalidArgument("'session stop' takes no arguments");
    } else {
      st = recorder.StopSession();
    }
    json reply = Reply(st);
    if (st.ok()) {
      reply["stored"] = recorder.pending() == 0;
      reply["last_sequence"] = recorder.outbox().last_sequence();
      uplink.Pump();
    }
    return reply.dump();
  }
  return Reply(Status::InvalidArgument("unknown request '" + line +
                                       "' (expected: status | session start <order_id> "
                                       "[operator] | session stop)"))
      .dump();
}

// Blocks the stop signals (inherited by every thread created later) and reads them from an fd.
Result<int> StopSignalFd() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0)
    return Status::Internal("cannot block SIGTERM/SIGINT");
  const int fd = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) return Status::IoError(std::string("signalfd: ") + std::strerror(errno));
  // A control client that hangs up must not kill the agent.
  ::signal(SIGPIPE, SIG_IGN);
  return fd;
}

}  // namespace

int RunDaemon(const AgentConfig& config, Logger log, const protocol::SigningKey* signing_key) {
  auto signal_fd = StopSignalFd();
  if (!signal_fd.ok()) {
    log->error("{}", signal_fd.status().message());
    return 1;
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } signal_closer{*signal_fd};

  SystemClock clock;
  auto adapters = AdapterSet::Create(config, &clock, log);
  if (!adapters.ok()) {
    log->error("{}", adapters.status().message());
    return 2;
  }
  auto recorder = Recorder::Open(config, &clock, adapters->get(), log);
  if (!recorder.ok()) {
    log->error("{}", recorder.status().message());
    return 1;
  }
  if (signing_key != nullptr && (*recorder)->outbox().chain_head().empty()) {
    log->error(
        "outbox {} predates signing and has already deleted acknowledged events, so its chain "
        "(protocol/README.md, \"Signing\") cannot be rebuilt and no envelope could be signed; "
        "let this agent deliver its outbox without [security] first, then enable signing",
        (*recorder)->outbox().path());
    return 1;
  }
  if (signing_key == nullptr)
    log->warn(
        "development mode: no [security] section, envelopes are sent unsigned and a hub "
        "that requires signatures refuses them");
  auto control = ControlServer::Listen(config.SocketPath(), log);
  if (!control.ok()) {
    log->error("{}", control.status().message());
    return 1;
  }
  auto uplink = Uplink::Create(config, &(*recorder)->outbox(), &clock, log, signing_key);
  if (!uplink.ok()) {
    log->error("{}", uplink.status().message());
    return 1;
  }
  Recorder& rec = **recorder;
  Uplink& up = **uplink;
  ControlServer& ctl = **control;
  log->info("agent {} started: state_dir {}, {} adapter(s), last sequence {}, acked {}",
            AgentVersion(), config.state_dir, config.adapters.size(), rec.outbox().last_sequence(),
            rec.outbox().acked_sequence());
  up.Start();

  // Phase 1 runs until a stop signal; phase 2 only serves the link until the hub has acked
  // everything or shutdown_flush_ms passed.
  bool stopping = false;
  const ControlServer::Handler handler = [&](const std::string& line) {
    // After the AgentStop nothing may join this run's events; status is still fine.
    if (stopping && line != "status")
      return Reply(Status::FailedPrecondition("the agent is stopping")).dump();
    return Handle(line, config, rec, up, **adapters);
  };
  int64_t next_poll = clock.MonotonicMs();
  int64_t next_heartbeat = next_poll + config.heartbeat_interval_ms;
  int exit_code = 0;
  int64_t flush_deadline = 0;
  while (true) {
    int64_t now = clock.MonotonicMs();
    if (!stopping) {
      if (now >= next_poll) {
        rec.Poll();
        // Fixed cadence; after a stall, start over instead of bursting to catch up.
        next_poll += config.poll_interval_ms;
        if (next_poll <= now) next_poll = now + config.poll_interval_ms;
        up.Pump();
      }
      if (now >= next_heartbeat) {
        rec.Heartbeat();
        next_heartbeat += config.heartbeat_interval_ms;
        if (next_heartbeat <= now) next_heartbeat = now + config.heartbeat_interval_ms;
        up.Pump();
      }
    } else if (rec.outbox().depth() == 0 || now >= flush_deadline) {
      break;
    }
    if (now >= up.NextDeadlineMs()) up.OnTimer();
    ctl.Expire(now);

    int64_t deadline = std::min({up.NextDeadlineMs(), ctl.NextDeadlineMs(),
                                 stopping ? flush_deadline : std::min(next_poll, next_heartbeat)});
    now = clock.MonotonicMs();
    const int timeout = static_cast<int>(std::clamp<int64_t>(deadline - now, 0, 60'000));
    std::vector<pollfd> fds = {{*signal_fd, POLLIN, 0}, {up.wake_fd(), POLLIN, 0}};
    for (int fd : ctl.fds()) fds.push_back({fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) {
      log->error("poll: {}", std::strerror(errno));
      exit_code = 1;
      break;
    }
    if (fds[1].revents != 0) up.OnWake();
    for (size_t i = 2; i < fds.size(); ++i)
      if (fds[i].revents != 0) ctl.OnReadable(fds[i].fd, clock.MonotonicMs(), handler);
    if (fds[0].revents != 0) {
      signalfd_siginfo info{};
      while (::read(*signal_fd, &info, sizeof info) == sizeof info) {
      }
      if (stopping) continue;  // a second signal while flushing changes nothing
      log->info("signal {}: stopping", strsignal(static_cast<int>(info.ssi_signo)));
      stopping = true;
      Status st = rec.Stop();
      if (!st.ok()) {
        log->error("{}", st.message());
        exit_code = 1;
      }
      // Observation ended with the AgentStop; the adapters (and what they hold open) go now,
      // not after the flush, so nothing is observed that the hub will not hear about.
      (*adapters)->Stop();
      up.Pump();
      flush_deadline = clock.MonotonicMs() + config.mqtt.shutdown_flush_ms;
    }
  }
  if (Status st = rec.outbox().Sync(); !st.ok())
    log->warn(
        "{}; the next run resends the events acknowledged since the last write, the hub drops "
        "them as duplicates",
        st.message());
  if (rec.outbox().depth() > 0)
    log->info("{} event(s) not yet acknowledged stay in the outbox for the next run",
              rec.outbox().depth());
  // Long enough for the offline status to leave; the events are safe in the outbox anyway.
  up.Shutdown(std::chrono::milliseconds(1000));
  if (!stopping) (*adapters)->Stop();
  log->info("stopped");
  return exit_code;
}

}  // namespace instrumeter::agent
