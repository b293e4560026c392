#include "hub/archive_worker.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

namespace instrumeter::hub {
namespace {

// Between two transactions: the ingest thread polls for the write lock every millisecond.
constexpr auto kPause = std::chrono::milliseconds(5);

}  // namespace

Result<std::unique_ptr<Store>> OpenArchiveStore(SqliteStoreOptions options) {
  options.sync_each_commit = false;
  return OpenSqliteStore(options);
}

Result<ArchivePass> ArchiveOnce(Store* store, const ArchiveOptions& options,
                                std::chrono::milliseconds spread,
                                const PeriodicThread::Pause& pause) {
  using Steady = std::chrono::steady_clock;
  Result<std::vector<std::string>> candidates = store->ListArchiveCandidates(options);
  if (!candidates.ok()) return candidates.status().WithContext("archive");
  ArchivePass pass;
  const Steady::time_point begun = Steady::now();
  bool stopped = false;
  const auto devices = static_cast<int64_t>(candidates->size());
  for (int64_t i = 0; i < devices && !stopped; ++i) {
    const Steady::time_point due = begun + spread * i / devices;
    const auto ahead = std::chrono::duration_cast<std::chrono::milliseconds>(due - Steady::now());
    if (!pause(std::max(ahead, std::chrono::milliseconds(0)))) break;
    bool archived = false;
    for (bool more = true; more;) {
      Result<ArchiveProgress> step =
          store->ArchiveEvents((*candidates)[static_cast<size_t>(i)], options);
      if (!step.ok()) {
        if (pass.failed_devices++ == 0) pass.first_error = step.status();
        break;
      }
      if (step->write_ms > 0) ++pass.transactions;
      pass.transactions_ms += step->write_ms;
      pass.longest_transaction_ms = std::max(pass.longest_transaction_ms, step->write_ms);
      archived = archived || step->events > 0;
      pass.moved.events += step->events;
      pass.moved.blocks += step->blocks;
      pass.moved.block_bytes += step->block_bytes;
      pass.moved.body_bytes += step->body_bytes;
      if (step->events == 0) break;
      more = step->more;
      stopped = !pause(kPause);
      if (stopped) break;
    }
    if (archived) ++pass.devices;
  }
  return pass;
}

ArchiveWorker::ArchiveWorker(std::unique_ptr<Store> store, const ArchiveWorkerOptions& options,
                             const Clock* clock, HubMetrics* metrics)
    : store_(std::move(store)),
      options_(options),
      clock_(clock),
      metrics_(metrics),
      thread_(options.interval_ms, [this](const auto& pause) { RunPass(pause); }) {}

Result<std::unique_ptr<ArchiveWorker>> ArchiveWorker::Start(const SqliteStoreOptions& store_options,
                                                            const ArchiveWorkerOptions& options,
                                                            const Clock* clock,
                                                            HubMetrics* metrics) {
  Result<std::unique_ptr<Store>> store = OpenArchiveStore(store_options);
  if (!store.ok()) return store.status().WithContext("archive worker");
  return std::unique_ptr<ArchiveWorker>(
      new ArchiveWorker(std::move(*store), options, clock, metrics));
}

void ArchiveWorker::RunPass(const PeriodicThread::Pause& pause) {
  const auto started = std::chrono::steady_clock::now();
  const std::chrono::milliseconds spread(options_.interval_ms / 2);
  Result<ArchivePass> pass = ArchiveOnce(
      store_.get(), {.received_before_unix_ms = clock_->WallUnixMs() - options_.after_ms}, spread,
      pause);
  const auto took_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - started)
                           .count();
  // Nothing is lost either way: a failed transaction leaves its rows where they were.
  if (!pass.ok()) {
    ++metrics_->archive_failures;
    spdlog::error("archive: pass failed (retried in {} ms): {}", options_.interval_ms,
                  pass.status().ToString());
    return;
  }
  metrics_->events_archived += pass->moved.events;
  metrics_->archive_failures += pass->failed_devices;
  if (pass->failed_devices > 0)
    spdlog::error("archive: {} devices not archived (retried in {} ms), the first: {}",
                  pass->failed_devices, options_.interval_ms, pass->first_error.ToString());
  if (pass->moved.events > 0)
    spdlog::info(
        "archive: {} events of {} devices into {} blocks in {} ms, spread over {} ms ({} "
        "transactions took {:.0f} ms, the longest {:.0f} ms): {} bytes of events now take {}",
        pass->moved.events, pass->devices, pass->moved.blocks, took_ms, spread.count(),
        pass->transactions, pass->transactions_ms, pass->longest_transaction_ms,
        pass->moved.body_bytes, pass->moved.block_bytes);
}

}  // namespace instrumeter::hub
