#include "hub/archive_worker.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <thread>

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
                                const std::function<bool()>& stop) {
  Result<std::vector<std::string>> candidates = store->ListArchiveCandidates(options);
  if (!candidates.ok()) return candidates.status().WithContext("archive");
  ArchivePass pass;
  for (const std::string& device_id : *candidates) {
    bool archived = false;
    while (!stop()) {
      const auto begun = std::chrono::steady_clock::now();
      Result<ArchiveProgress> step = store->ArchiveEvents(device_id, options);
      ++pass.transactions;
      pass.longest_transaction_ms = std::max(
          pass.longest_transaction_ms,
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begun)
              .count());
      if (!step.ok()) {
        if (pass.failed_devices++ == 0) pass.first_error = step.status();
        break;
      }
      archived = archived || step->events > 0;
      pass.moved.events += step->events;
      pass.moved.blocks += step->blocks;
      pass.moved.block_bytes += step->block_bytes;
      pass.moved.body_bytes += step->body_bytes;
      if (step->events == 0) break;
      std::this_thread::sleep_for(kPause);
      if (!step->more) break;
    }
    if (archived) ++pass.devices;
    if (stop()) break;
  }
  return pass;
}

ArchiveWorker::ArchiveWorker(std::unique_ptr<Store> store, const ArchiveWorkerOptions& options,
                             const Clock* clock, HubMetrics* metrics)
    : store_(std::move(store)),
      options_(options),
      clock_(clock),
      metrics_(metrics),
      thread_(options.interval_ms, [this](const auto& stopping) { RunPass(stopping); }) {}

Result<std::unique_ptr<ArchiveWorker>> ArchiveWorker::Start(const SqliteStoreOptions& store_options,
                                                            const ArchiveWorkerOptions& options,
                                                            const Clock* clock,
                                                            HubMetrics* metrics) {
  Result<std::unique_ptr<Store>> store = OpenArchiveStore(store_options);
  if (!store.ok()) return store.status().WithContext("archive worker");
  return std::unique_ptr<ArchiveWorker>(
      new ArchiveWorker(std::move(*store), options, clock, metrics));
}

void ArchiveWorker::RunPass(const std::function<bool()>& stopping) {
  const auto started = std::chrono::steady_clock::now();
  Result<ArchivePass> pass =
      ArchiveOnce(store_.get(),
                  {.received_before_unix_ms = clock_->WallUnixMs() - options_.after_ms}, stopping);
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
        "archive: {} events of {} devices into {} blocks in {} ms (longest transaction {:.0f} "
        "ms): {} bytes of events now take {}",
        pass->moved.events, pass->devices, pass->moved.blocks, took_ms,
        pass->longest_transaction_ms, pass->moved.body_bytes, pass->moved.block_bytes);
}

}  // namespace instrumeter::hub
