#include "hub/hub_runner.h"

#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "common/backoff.h"
#include "common/clock.h"
#include "common/mqtt_link.h"
#include "hub/archive_worker.h"
#include "hub/billing_driver.h"
#include "hub/ingestor.h"
#include "hub/live_http.h"
#include "hub/sqlite_store.h"
#include "mqtt_downlink.h"
#include "protocol/chain.h"
#include "protocol/topics.h"

namespace instrumeter::hub {
namespace {

constexpr int64_t kSummaryIntervalMs = 60'000;
// Upper bound of one wait, so that a stuck clock computation can never hang the loop.
constexpr int64_t kMaxWaitMs = 1000;
constexpr std::chrono::milliseconds kDisconnectTimeout(2000);

// SIGTERM and SIGINT delivered through a file descriptor instead of a handler: the loop polls it
// beside the MQTT link, and no global flag is needed. Blocking must happen before any thread
// starts, so that Paho's threads inherit the mask and never take the signal themselves.
class ShutdownSignals {
 public:
  ShutdownSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set_, &previous_);
    fd_ = signalfd(-1, &set_, SFD_NONBLOCK | SFD_CLOEXEC);
  }
  ~ShutdownSignals() {
    if (fd_ >= 0) ::close(fd_);
    pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }
  ShutdownSignals(const ShutdownSignals&) = delete;
  ShutdownSignals& operator=(const ShutdownSignals&) = delete;

  int fd() const { return fd_; }
  // The signal that arrived, or 0.
  int Take() {
    signalfd_siginfo info{};
    if (::read(fd_, &info, sizeof info) != static_cast<ssize_t>(sizeof info)) return 0;
    return static_cast<int>(info.ssi_signo);
  }

 private:
  sigset_t set_{};
  sigset_t previous_{};
  int fd_ = -1;
};

// The single ingest thread: MQTT events in, ingest batches committed, reconnects with backoff.
class HubLoop {
 public:
  HubLoop(const HubConfig& config, MqttLink* link, Ingestor* ingestor, const Clock* clock,
          HubMetrics* metrics)
      : config_(config),
        link_(link),
        ingestor_(ingestor),
        clock_(clock),
        metrics_(metrics),
        reconnect_(config.mqtt.reconnect_min_ms, config.mqtt.reconnect_max_ms) {}

  Status Run(ShutdownSignals* signals) {
    Connect();
    last_summary_mono_ms_ = clock_->MonotonicMs();
    last_summary_events_ = metrics_->events_stored;
    while (true) {
      pollfd fds[2] = {{link_->wake_fd(), POLLIN, 0}, {signals->fd(), POLLIN, 0}};
      ::poll(fds, 2, static_cast<int>(WaitMs()));
      if ((fds[1].revents & POLLIN) != 0) {
        const int signo = signals->Take();
        if (signo != 0) {
          spdlog::info("hub: {} received; finishing the current batch", strsignal(signo));
          break;
        }
      }
      DrainLink();
      const int64_t now = clock_->MonotonicMs();
      if (reconnect_at_mono_ms_.has_value() && now >= *reconnect_at_mono_ms_) Connect();
      ingestor_->Poll();
      if (now - last_summary_mono_ms_ >= kSummaryIntervalMs) Summary(now);
    }
    // Messages Paho already took from the broker are ingested too: they will not come again
    // from the broker, only from the agents' outboxes.
    DrainLink();
    Status flushed = ingestor_->Flush();
    link_->Disconnect(kDisconnectTimeout);
    if (!flushed.ok()) return flushed.WithContext("final commit at shutdown");
    spdlog::info("hub: stopped; {} events stored in this run", metrics_->events_stored.load());
    return Status::Ok();
  }

 private:
  void Connect() {
    reconnect_at_mono_ms_.reset();
    Status st = link_->Connect();
    if (!st.ok()) ScheduleReconnect(st.message());
  }

  void ScheduleReconnect(const std::string& why) {
    const int64_t delay = reconnect_.NextDelayMs();
    reconnect_at_mono_ms_ = clock_->MonotonicMs() + delay;
    spdlog::warn("hub: broker {}: {}; reconnecting in {} ms", config_.mqtt.broker, why, delay);
  }

  int64_t WaitMs() const {
    const int64_t now = clock_->MonotonicMs();
    int64_t wait = std::min(kMaxWaitMs, last_summary_mono_ms_ + kSummaryIntervalMs - now);
    const int64_t due = ingestor_->MsUntilDue();
    if (due >= 0) wait = std::min(wait, due);
    if (reconnect_at_mono_ms_.has_value()) wait = std::min(wait, *reconnect_at_mono_ms_ - now);
    // DrainLink then takes the link's report of a connect given up.
    if (link_->connect_deadline().has_value())
      wait = std::min(wait, MqttLink::MsUntil(*link_->connect_deadline()));
    return std::max<int64_t>(0, wait);
  }

  void DrainLink() {
    metrics_->mqtt_queued_messages = link_->queued_messages();
    for (MqttLink::Event& event : link_->TakeEvents()) {
      switch (event.kind) {
        case MqttLink::Event::Kind::kMessage:
          metrics_->inbound_wait.ObserveMicros(
              static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                        std::chrono::steady_clock::now() - event.received)
                                        .count()));
          ingestor_->OnMessage(event.topic, event.payload, clock_->WallUnixMs());
          break;
        case MqttLink::Event::Kind::kConnected:
          metrics_->broker_connected = true;
          reconnect_.Reset();
          spdlog::info("hub: connected to {} as '{}'", config_.mqtt.broker, config_.mqtt.client_id);
          break;
        case MqttLink::Event::Kind::kConnectFailed:
        case MqttLink::Event::Kind::kConnectionLost:
          metrics_->broker_connected = false;
          if (!reconnect_at_mono_ms_.has_value()) ScheduleReconnect(event.detail);
          break;
      }
    }
  }

  void Summary(int64_t now) {
    const uint64_t stored = metrics_->events_stored;
    const double seconds = static_cast<double>(now - last_summary_mono_ms_) / 1000.0;
    const HubMetrics::Rejected& r = metrics_->rejected;
    spdlog::info(
        "hub: {:.1f} events/s stored, rejected {} (malformed {}, unknown device {}, topic "
        "mismatch {}, conflicting duplicate {}, bad signature {}, broken chain {}, revoked {}, "
        "unenrolled {}), {} signatures verified, {} devices online, {}",
        static_cast<double>(stored - last_summary_events_) / seconds,
        r.malformed + r.unknown_device + r.topic_mismatch + r.conflicting_duplicate +
            r.bad_signature + r.broken_chain + r.revoked + r.unenrolled,
        r.malformed.load(), r.unknown_device.load(), r.topic_mismatch.load(),
        r.conflicting_duplicate.load(), r.bad_signature.load(), r.broken_chain.load(),
        r.revoked.load(), r.unenrolled.load(), metrics_->signatures_verified.load(),
        ingestor_->DevicesOnline(),
        ingestor_->healthy() ? std::string("healthy")
                             : "UNHEALTHY: " + ingestor_->last_error().ToString());
    last_summary_events_ = stored;
    last_summary_mono_ms_ = now;
  }

  const HubConfig& config_;
  MqttLink* link_;
  Ingestor* ingestor_;
  const Clock* clock_;
  HubMetrics* metrics_;
  Backoff reconnect_;
  std::optional<int64_t> reconnect_at_mono_ms_;
  int64_t last_summary_mono_ms_ = 0;
  uint64_t last_summary_events_ = 0;
};

}  // namespace

Status RunHub(const HubConfig& config) {
  ShutdownSignals signals;
  if (signals.fd() < 0) return Status::Internal("signalfd failed");

  Result<std::unique_ptr<Store>> store =
      OpenSqliteStore({.path = config.store.path, .busy_timeout_ms = config.store.busy_timeout_ms});
  if (!store.ok()) return store.status();

  MqttLink::Options link_options;
  link_options.broker_url = config.mqtt.broker;
  link_options.client_id = config.mqtt.client_id;
  // A persistent session: the broker queues uplink messages while the hub is down.
  link_options.clean_session = false;
  link_options.keepalive_s = config.mqtt.keepalive_s;
  // One commit acks every device it stored events of, all at once: with Paho's defaults (64 in
  // flight, 100 queued) a commit touching more devices had its further acks refused, and those
  // agents waited for their ack timeout (docs/performance.md, "Profile").
  link_options.max_inflight = 1000;
  link_options.max_buffered_messages = 100'000;
  link_options.subscriptions = {protocol::AllDevices(protocol::Channel::kUp),
                                protocol::AllDevices(protocol::Channel::kStatus)};
  if (!config.mqtt.ca_file.empty()) {
    if (!config.mqtt.key_file.empty())
      INSTRUMETER_RETURN_IF_ERROR(
          protocol::CheckPrivateKeyFile(config.mqtt.key_file).WithContext("[mqtt] key_file"));
    link_options.tls =
        MqttLink::Tls{config.mqtt.ca_file, config.mqtt.cert_file, config.mqtt.key_file};
  }
  Result<std::unique_ptr<MqttLink>> link = MqttLink::Create(link_options);
  if (!link.ok()) return link.status();

  SystemClock clock;
  HubMetrics metrics;
  LiveFeed feed;
  MqttDownlink downlink(link->get(), &clock);
  Result<std::unique_ptr<Ingestor>> ingestor =
      Ingestor::Create(store->get(), &downlink, &clock, &metrics, config.ingest,
                       config.http.enabled ? &feed : nullptr);
  if (!ingestor.ok()) return ingestor.status();
  spdlog::info("hub: store {}, broker {}", config.store.path, config.mqtt.broker);

  // The http thread starts once the ingest side is up; it reads through its own connection and
  // hears of commits through the feed, never touching the ingest thread's objects.
  std::unique_ptr<LiveHttp> http;
  if (config.http.enabled) {
    Ingestor* ingest = ingestor->get();
    const HubMetrics* shared = &metrics;
    Result<std::unique_ptr<LiveHttp>> started = LiveHttp::Start(
        config.http, config.store, config.billing.defaults, &metrics, &feed, [ingest, shared] {
          return HealthReport{.broker_connected = shared->broker_connected,
                              .ingest_healthy = ingest->healthy(),
                              .ingest_error = ingest->last_error().message()};
        });
    if (started.ok()) {
      http = std::move(*started);
    } else if (started.status().code() == Status::Code::kUnavailable) {
      // The port is taken. Hours matter more than the dashboard: ingest anyway, and let the
      // monitor that finds /healthz unreachable raise the alarm.
      spdlog::error("ALARM: the hub ingests without its HTTP API: {}", started.status().ToString());
    } else {
      return started.status().WithContext("[http]");
    }
  }
  // Verification runs on its own thread and connection; it stops (after its current pass)
  // when this function returns.
  std::unique_ptr<BillingWorker> billing;
  if (config.billing.enabled) {
    Result<std::unique_ptr<BillingWorker>> started = BillingWorker::Start(
        {.path = config.store.path, .busy_timeout_ms = config.store.busy_timeout_ms},
        config.billing, &clock);
    if (!started.ok()) return started.status();
    billing = std::move(*started);
  }
  std::unique_ptr<ArchiveWorker> archive;
  if (config.store.archive_after_hours > 0) {
    Result<std::unique_ptr<ArchiveWorker>> started = ArchiveWorker::Start(
        {.path = config.store.path, .busy_timeout_ms = config.store.busy_timeout_ms},
        {.after_ms = config.store.archive_after_hours * 3'600'000,
         .interval_ms = config.store.archive_interval_ms},
        &clock, &metrics);
    if (!started.ok()) return started.status();
    archive = std::move(*started);
  }
  HubLoop loop(config, link->get(), ingestor->get(), &clock, &metrics);
  Status result = loop.Run(&signals);
  // After the final commit, so that stream clients heard of it.
  http.reset();
  return result;
}

}  // namespace instrumeter::hub
