// archive_bench: what the archive of settled events (docs/hub.md, "Archive") costs and gives back,
// on a store filled as a live fleet fills it: every device's next heartbeat in each commit, so a
// device's events are spread over the table's pages in arrival order, as in production.
//
// It prints, as JSON lines: the file before; the archive pass (events/s, and the bytes the
// process wrote, from /proc/self/io, per event archived); the file and its free pages after;
// and the same appends again, to show that they reuse the freed pages instead of growing the file.
//
// --existing FILE archives a copy of a real hub's database instead (every stored event taken as
// signed and old), to measure how small a real agent's events get.
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "common/sqlite_db.h"
#include "hub/sqlite_store.h"
#include "loadgen.h"
#include "protocol/chain.h"

namespace instrumeter {
namespace {

constexpr int64_t kReceived = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
constexpr int64_t kStepMs = 10'000;               // a heartbeat every 10 s

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

uint64_t WriteBytes() {
  std::ifstream io("/proc/self/io");
  std::string key;
  uint64_t value = 0;
  while (io >> key >> value)
    if (key == "write_bytes:") return value;
  return 0;
}

struct FileFigures {
  int64_t file_bytes = 0;
  int64_t free_bytes = 0;
};

Result<FileFigures> Measure(const std::string& path) {
  Result<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(path, {});
  if (!db.ok()) return db.status();
  // The log folded in, so the file's size is what the data takes.
  INSTRUMETER_RETURN_IF_ERROR((*db)->Exec("PRAGMA wal_checkpoint(TRUNCATE)"));
  Result<std::optional<int64_t>> pages = (*db)->QueryInt("PRAGMA page_count");
  Result<std::optional<int64_t>> free = (*db)->QueryInt("PRAGMA freelist_count");
  Result<std::optional<int64_t>> size = (*db)->QueryInt("PRAGMA page_size");
  if (!pages.ok() || !free.ok() || !size.ok()) return Status::Internal("page counts");
  return FileFigures{pages->value_or(0) * size->value_or(0), free->value_or(0) * size->value_or(0)};
}

// Appends events [first, last] of every device, one commit per sequence holding every device.
Result<double> Append(hub::Store* store, std::vector<hub::DeviceRecord>* records,
                      std::vector<std::string>* links, const std::vector<std::string>& bodies,
                      uint64_t first, uint64_t last) {
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t seq = first; seq <= last; ++seq) {
    hub::Batch batch;
    for (size_t d = 0; d < records->size(); ++d) {
      hub::DeviceRecord& r = (*records)[d];
      v1::Event event;
      event.ParseFromString(bodies[seq - 1]);
      hub::EventRow row = hub::MakeEventRow(event, bodies[seq - 1],
                                            kReceived + static_cast<int64_t>(seq) * kStepMs);
      (*links)[d] = protocol::ChainNext((*links)[d], row.body);
      row.link = (*links)[d];
      r.contiguous_seq = seq;
      r.events_stored = seq;
      r.chain.link = row.link;
      r.chain.signed_through = seq;  // every envelope signed, as an enrolled agent's often are
      r.chain.head_seq = seq;
      batch.devices.push_back({.record = r, .events = {std::move(row)}});
    }
    INSTRUMETER_RETURN_IF_ERROR(store->CommitBatch(batch));
  }
  return static_cast<double>((last - first + 1) * records->size()) / SecondsSince(start);
}

void PrintFile(const char* phase, const FileFigures& f) {
  std::printf("{\"phase\": \"%s\", \"file_bytes\": %lld, \"free_bytes\": %lld}\n", phase,
              static_cast<long long>(f.file_bytes), static_cast<long long>(f.free_bytes));
  std::fflush(stdout);
}

// Archives everything archivable with blocks of `per_block` events, as ArchiveOnce does, and
// prints the figures, with how long each transaction held the write lock that ingest waits for.
Status ArchiveAll(hub::Store* store, int64_t received_before, uint64_t per_block) {
  const hub::ArchiveOptions options{.received_before_unix_ms = received_before,
                                    .max_events_per_block = per_block};
  const uint64_t written_before = WriteBytes();
  const auto start = std::chrono::steady_clock::now();
  Result<std::vector<std::string>> candidates = store->ListArchiveCandidates(options);
  if (!candidates.ok()) return candidates.status();
  hub::ArchiveProgress moved;
  std::vector<double> transaction_ms;
  for (const std::string& device_id : *candidates) {
    for (bool more = true; more;) {
      const auto begun = std::chrono::steady_clock::now();
      Result<hub::ArchiveProgress> step = store->ArchiveEvents(device_id, options);
      if (!step.ok()) return step.status();
      transaction_ms.push_back(SecondsSince(begun) * 1000);
      moved.events += step->events;
      moved.blocks += step->blocks;
      moved.block_bytes += step->block_bytes;
      moved.body_bytes += step->body_bytes;
      more = step->more && step->events > 0;
    }
  }
  const double seconds = SecondsSince(start);
  const uint64_t written = WriteBytes() - written_before;
  if (moved.events == 0) return Status::FailedPrecondition("nothing was archived");
  std::sort(transaction_ms.begin(), transaction_ms.end());
  auto at = [&](double q) {
    return transaction_ms[static_cast<size_t>(q * static_cast<double>(transaction_ms.size() - 1))];
  };
  std::printf(
      "{\"phase\": \"archive\", \"events\": %llu, \"blocks\": %llu, \"seconds\": %.2f, "
      "\"events_per_s\": %.0f, \"body_bytes\": %llu, \"block_bytes\": %llu, "
      "\"block_bytes_per_event\": %.1f, \"write_bytes\": %llu, \"write_bytes_per_event\": %.0f, "
      "\"transactions\": %zu, \"transaction_ms_p50\": %.1f, \"transaction_ms_p99\": %.1f, "
      "\"transaction_ms_max\": %.1f}\n",
      static_cast<unsigned long long>(moved.events), static_cast<unsigned long long>(moved.blocks),
      seconds, static_cast<double>(moved.events) / seconds,
      static_cast<unsigned long long>(moved.body_bytes),
      static_cast<unsigned long long>(moved.block_bytes),
      static_cast<double>(moved.block_bytes) / static_cast<double>(moved.events),
      static_cast<unsigned long long>(written),
      static_cast<double>(written) / static_cast<double>(moved.events), transaction_ms.size(),
      at(0.5), at(0.99), transaction_ms.back());
  std::fflush(stdout);
  return Status::Ok();
}

// A real hub's database: every device's stored prefix taken as signed.
Status RunExisting(const std::string& path, uint64_t per_block) {
  {
    Result<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(path, {});
    if (!db.ok()) return db.status();
    Result<std::unique_ptr<hub::Store>> migrated = hub::OpenSqliteStore({.path = path});
    if (!migrated.ok()) return migrated.status();
    INSTRUMETER_RETURN_IF_ERROR((*db)->Exec(
        "UPDATE devices SET signed_through = contiguous_seq, chain_head_seq = contiguous_seq"));
  }
  Result<FileFigures> before = Measure(path);
  if (!before.ok()) return before.status();
  PrintFile("existing", *before);
  Result<std::unique_ptr<hub::Store>> store = hub::OpenSqliteStore({.path = path});
  if (!store.ok()) return store.status();
  INSTRUMETER_RETURN_IF_ERROR(
      ArchiveAll(store->get(), std::numeric_limits<int64_t>::max(), per_block));
  Result<FileFigures> after = Measure(path);
  if (!after.ok()) return after.status();
  PrintFile("archived", *after);
  return Status::Ok();
}

Status Run(const std::string& path, int devices, uint64_t per_device) {
  Result<std::unique_ptr<hub::Store>> store = hub::OpenSqliteStore({.path = path});
  if (!store.ok()) return store.status();
  int64_t powered = 0;
  int64_t in_use = 0;
  const std::vector<std::string> bodies =
      loadgen::MakeBacklog("archive-bench-boot", static_cast<int>(2 * per_device),
                           {.wall_start_ms = kReceived, .step_ms = kStepMs}, &powered, &in_use);
  loadgen::LoadOptions ids;
  ids.device_prefix = "archive-";
  std::vector<hub::DeviceRecord> records(static_cast<size_t>(devices));
  std::vector<std::string> links;
  for (int i = 0; i < devices; ++i) {
    records[static_cast<size_t>(i)].device_id = loadgen::DeviceId(ids, i);
    links.push_back(protocol::ChainGenesis(records[static_cast<size_t>(i)].device_id));
  }
  std::fprintf(stderr, "archive_bench: filling %d devices x %llu events\n", devices,
               static_cast<unsigned long long>(per_device));
  Result<double> fill = Append(store->get(), &records, &links, bodies, 1, per_device);
  if (!fill.ok()) return fill.status();
  Result<FileFigures> before = Measure(path);
  if (!before.ok()) return before.status();
  PrintFile("filled", *before);

  std::fprintf(stderr, "archive_bench: archiving\n");
  INSTRUMETER_RETURN_IF_ERROR(
      ArchiveAll(store->get(), kReceived + static_cast<int64_t>(per_device + 1) * kStepMs, 1000));
  Result<FileFigures> after = Measure(path);
  if (!after.ok()) return after.status();
  PrintFile("archived", *after);

  std::fprintf(stderr, "archive_bench: appending as many again\n");
  Result<double> again =
      Append(store->get(), &records, &links, bodies, per_device + 1, 2 * per_device);
  if (!again.ok()) return again.status();
  Result<FileFigures> refilled = Measure(path);
  if (!refilled.ok()) return refilled.status();
  std::printf(
      "{\"phase\": \"appended\", \"append_rows_per_s_filling\": %.0f, "
      "\"append_rows_per_s_reusing\": %.0f}\n",
      *fill, *again);
  PrintFile("appended", *refilled);
  return Status::Ok();
}

}  // namespace
}  // namespace instrumeter

int main(int argc, char** argv) {
  std::string path;
  std::string existing;
  int devices = 200;
  uint64_t per_device = 4000;
  uint64_t per_block = 1000;
  CLI::App app{
      "archive_bench: the archive of settled events on a store filled as a fleet fills it"};
  auto* db = app.add_option("--db", path, "new database file");
  app.add_option("--existing", existing,
                 "instead: archive this copy of a real hub's database (it is changed)")
      ->excludes(db)
      ->check(CLI::ExistingFile);
  app.add_option("--events-per-block", per_block, "with --existing")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  app.add_option("--devices", devices)->capture_default_str()->check(CLI::Range(1, 1'000'000));
  app.add_option("--events-per-device", per_device)
      ->capture_default_str()
      ->check(CLI::Range(2, 10'000'000));
  CLI11_PARSE(app, argc, argv);
  if (path.empty() == existing.empty()) {
    std::fprintf(stderr, "archive_bench: give --db (a new file) or --existing (a copy)\n");
    return 2;
  }
  const instrumeter::Status st = existing.empty() ? instrumeter::Run(path, devices, per_device)
                                                  : instrumeter::RunExisting(existing, per_block);
  if (!st.ok()) {
    std::fprintf(stderr, "archive_bench: %s\n", st.ToString().c_str());
    return 1;
  }
  return 0;
}
