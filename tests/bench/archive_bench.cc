// archive_bench: what the archive of settled events (docs/hub.md, "Archive") costs and gives back,
// on a store filled as a live fleet fills it: every device's next heartbeat in each commit, so a
// device's events are spread over the table's pages in arrival order, as in production.
//
// It prints, as JSON lines: the file before; the archive pass (events/s, the bytes its thread
// wrote, from /proc/thread-self/io, per event archived, and how long each transaction held the
// write lock); the time of each commit of the fleet's next events made beside the archive, every
// 100 ms on a connection of its own as the hub's ingest thread would, and as many made alone;
// the file and its free pages after; and the rest of the appends, to show that they reuse the
// freed pages instead of growing the file.
//
// --existing FILE archives a copy of a real hub's database instead (every stored event taken as
// signed and old), to measure how small a real agent's events get.
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "common/sqlite_db.h"
#include "hub/archive_worker.h"
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

// Bytes this thread caused to be written to disk.
uint64_t WriteBytes() {
  std::ifstream io("/proc/thread-self/io");
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

// Appends the next event of devices in turn, as a hub commits a fleet's heartbeats.
class Appender {
 public:
  Appender(int devices, uint64_t events) {
    int64_t powered = 0;
    int64_t in_use = 0;
    bodies_ =
        loadgen::MakeBacklog("archive-bench-boot", static_cast<int>(events),
                             {.wall_start_ms = kReceived, .step_ms = kStepMs}, &powered, &in_use);
    for (const std::string& body : bodies_) events_.emplace_back().ParseFromString(body);
    loadgen::LoadOptions ids;
    ids.device_prefix = "archive-";
    for (int i = 0; i < devices; ++i) {
      records_.emplace_back().device_id = loadgen::DeviceId(ids, i);
      links_.push_back(protocol::ChainGenesis(records_.back().device_id));
    }
  }
  int devices() const { return static_cast<int>(records_.size()); }
  // Events left for the device that has stored the most (the first: devices take turns from it).
  uint64_t left() const { return bodies_.size() - records_.front().contiguous_seq; }

  // Commits the next event of the next `count` devices, in turn; returns how long the commit
  // took, in ms.
  Result<double> Append(hub::Store* store, int count) {
    if (left() == 0) return Status::FailedPrecondition("no events left");
    hub::Batch batch;
    for (int i = 0; i < count; ++i) {
      const size_t d = static_cast<size_t>(turn_);
      turn_ = (turn_ + 1) % devices();
      hub::DeviceRecord& r = records_[d];
      const uint64_t seq = r.contiguous_seq + 1;
      hub::EventRow row = hub::MakeEventRow(events_[seq - 1], bodies_[seq - 1],
                                            kReceived + static_cast<int64_t>(seq) * kStepMs);
      links_[d] = protocol::ChainNext(links_[d], row.body);
      row.link = links_[d];
      r.contiguous_seq = seq;
      r.events_stored = seq;
      r.chain.link = row.link;
      r.chain.signed_through = seq;  // every envelope signed, as an enrolled agent's often are
      r.chain.head_seq = seq;
      batch.devices.push_back({.record = r, .events = {std::move(row)}});
    }
    const auto start = std::chrono::steady_clock::now();
    INSTRUMETER_RETURN_IF_ERROR(store->CommitBatch(batch));
    return SecondsSince(start) * 1000;
  }

  // Commits `rounds` times the next event of every device, as fast as it can; returns rows/s.
  Result<double> AppendRounds(hub::Store* store, uint64_t rounds) {
    const auto start = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < rounds; ++i) {
      Result<double> ms = Append(store, devices());
      if (!ms.ok()) return ms.status();
    }
    return static_cast<double>(rounds * records_.size()) / SecondsSince(start);
  }

 private:
  std::vector<std::string> bodies_;
  std::vector<v1::Event> events_;  // bodies_ parsed
  std::vector<hub::DeviceRecord> records_;
  std::vector<std::string> links_;
  int turn_ = 0;  // the device whose event goes next
};

struct Quantiles {
  double p50 = 0;
  double p99 = 0;
  double max = 0;
};

Quantiles QuantilesOf(std::vector<double> values) {
  if (values.empty()) return {};
  std::sort(values.begin(), values.end());
  auto at = [&](double q) {
    return values[static_cast<size_t>(q * static_cast<double>(values.size() - 1))];
  };
  return {at(0.5), at(0.99), values.back()};
}

void PrintFile(const char* phase, const FileFigures& f) {
  std::printf("{\"phase\": \"%s\", \"file_bytes\": %lld, \"free_bytes\": %lld}\n", phase,
              static_cast<long long>(f.file_bytes), static_cast<long long>(f.free_bytes));
  std::fflush(stdout);
}

// Archives everything archivable with blocks of `per_block` events, as the hub's worker does
// (ArchiveOnce), its devices spread over `spread`, and prints the figures.
Status ArchiveAll(hub::Store* store, int64_t received_before, uint64_t per_block,
                  std::chrono::milliseconds spread) {
  const uint64_t written_before = WriteBytes();
  const auto start = std::chrono::steady_clock::now();
  Result<hub::ArchivePass> pass = hub::ArchiveOnce(
      store, {.received_before_unix_ms = received_before, .max_events_per_block = per_block},
      spread, [](std::chrono::milliseconds d) {
        std::this_thread::sleep_for(d);
        return true;
      });
  if (!pass.ok()) return pass.status();
  if (pass->failed_devices > 0) return pass->first_error;
  const double seconds = SecondsSince(start);
  const uint64_t written = WriteBytes() - written_before;
  const hub::ArchiveProgress& moved = pass->moved;
  if (moved.events == 0) return Status::FailedPrecondition("nothing was archived");
  std::printf(
      "{\"phase\": \"archive\", \"events\": %llu, \"blocks\": %llu, \"seconds\": %.2f, "
      "\"events_per_s\": %.0f, \"body_bytes\": %llu, \"block_bytes\": %llu, "
      "\"block_bytes_per_event\": %.1f, \"write_bytes\": %llu, \"write_bytes_per_event\": %.0f, "
      "\"transactions\": %llu, \"transactions_s\": %.2f, \"longest_transaction_ms\": %.1f}\n",
      static_cast<unsigned long long>(moved.events), static_cast<unsigned long long>(moved.blocks),
      seconds, static_cast<double>(moved.events) / seconds,
      static_cast<unsigned long long>(moved.body_bytes),
      static_cast<unsigned long long>(moved.block_bytes),
      static_cast<double>(moved.block_bytes) / static_cast<double>(moved.events),
      static_cast<unsigned long long>(written),
      static_cast<double>(written) / static_cast<double>(moved.events),
      static_cast<unsigned long long>(pass->transactions), pass->transactions_ms / 1000,
      pass->longest_transaction_ms);
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
  Result<std::unique_ptr<hub::Store>> store = hub::OpenArchiveStore({.path = path});
  if (!store.ok()) return store.status();
  INSTRUMETER_RETURN_IF_ERROR(ArchiveAll(store->get(), std::numeric_limits<int64_t>::max(),
                                         per_block, std::chrono::milliseconds(0)));
  Result<FileFigures> after = Measure(path);
  if (!after.ok()) return after.status();
  PrintFile("archived", *after);
  return Status::Ok();
}

// Commits the next event of `per_commit` devices (taking turns) every kCommitGap until `done`,
// as a hub does beside the archive; returns each commit's time in ms.
constexpr auto kCommitGap = std::chrono::milliseconds(100);

Result<std::vector<double>> CommitPaced(hub::Store* store, Appender* appender, int per_commit,
                                        const std::function<bool()>& done) {
  std::vector<double> commit_ms;
  while (!done() && appender->left() > 0) {
    Result<double> ms = appender->Append(store, per_commit);
    if (!ms.ok()) return ms.status();
    commit_ms.push_back(*ms);
    std::this_thread::sleep_for(kCommitGap);
  }
  return commit_ms;
}

void PrintCommits(const char* phase, const std::vector<double>& commit_ms, int devices) {
  const Quantiles q = QuantilesOf(commit_ms);
  std::printf(
      "{\"phase\": \"%s\", \"commits\": %zu, \"events_per_commit\": %d, "
      "\"commit_ms_p50\": %.1f, \"commit_ms_p99\": %.1f, \"commit_ms_max\": %.1f}\n",
      phase, commit_ms.size(), devices, q.p50, q.p99, q.max);
  std::fflush(stdout);
}

Status Run(const std::string& path, int devices, uint64_t per_device, uint64_t per_block,
           int per_commit, std::chrono::milliseconds spread, bool fill_only) {
  Result<std::unique_ptr<hub::Store>> store = hub::OpenSqliteStore({.path = path});
  if (!store.ok()) return store.status();
  Appender appender(devices, 2 * per_device);
  std::fprintf(stderr, "archive_bench: filling %d devices x %llu events\n", devices,
               static_cast<unsigned long long>(per_device));
  Result<double> fill = appender.AppendRounds(store->get(), per_device);
  if (!fill.ok()) return fill.status();
  Result<FileFigures> before = Measure(path);
  if (!before.ok()) return before.status();
  PrintFile("filled", *before);
  if (fill_only) return Status::Ok();

  // The archive on a connection and thread of its own, as the hub's worker, while this thread
  // commits as the hub's ingest thread does.
  std::fprintf(stderr, "archive_bench: archiving, committing beside it\n");
  Result<std::unique_ptr<hub::Store>> archive_store = hub::OpenArchiveStore({.path = path});
  if (!archive_store.ok()) return archive_store.status();
  std::atomic<bool> archived{false};
  Status archive_status;
  std::thread archiver([&] {
    archive_status =
        ArchiveAll(archive_store->get(), kReceived + static_cast<int64_t>(per_device + 1) * kStepMs,
                   per_block, spread);
    archived = true;
  });
  Result<std::vector<double>> beside =
      CommitPaced(store->get(), &appender, per_commit, [&] { return archived.load(); });
  archiver.join();
  INSTRUMETER_RETURN_IF_ERROR(archive_status);
  if (!beside.ok()) return beside.status();
  PrintCommits("commits_beside_archive", *beside, per_commit);
  Result<FileFigures> after = Measure(path);
  if (!after.ok()) return after.status();
  PrintFile("archived", *after);

  std::fprintf(stderr, "archive_bench: committing alone\n");
  size_t alone_count = 0;
  Result<std::vector<double>> alone = CommitPaced(store->get(), &appender, per_commit,
                                                  [&] { return alone_count++ == beside->size(); });
  if (!alone.ok()) return alone.status();
  PrintCommits("commits_alone", *alone, per_commit);

  std::fprintf(stderr, "archive_bench: appending the rest\n");
  Result<double> again = appender.AppendRounds(store->get(), appender.left());
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
  int per_commit = 0;
  uint64_t per_device = 4000;
  uint64_t per_block = 1000;
  bool fill_only = false;
  double spread_s = 0;
  CLI::App app{
      "archive_bench: the archive of settled events on a store filled as a fleet fills it"};
  auto* db = app.add_option("--db", path, "new database file");
  app.add_option("--existing", existing,
                 "instead: archive this copy of a real hub's database (it is changed)")
      ->excludes(db)
      ->check(CLI::ExistingFile);
  app.add_flag("--fill-only", fill_only,
               "fill the store (signed events received in 2026-01) and stop: to watch a hub "
               "archive it");
  app.add_option("--events-per-block", per_block)
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  app.add_option("--devices", devices)->capture_default_str()->check(CLI::Range(1, 1'000'000));
  app.add_option("--events-per-device", per_device)
      ->capture_default_str()
      ->check(CLI::Range(2, 10'000'000));
  app.add_option("--commit-devices", per_commit,
                 "devices (taking turns) whose next event goes into each commit made every 100 ms "
                 "beside the archive; default: all of them (1,000 is a 100,000-device fleet's "
                 "rate)")
      ->check(CLI::Range(1, 1'000'000));
  app.add_option("--spread-s", spread_s,
                 "spread the pass's devices over this many seconds, as the hub spreads a pass "
                 "over half its interval; default: at once")
      ->check(CLI::Range(0.0, 86'400.0));
  CLI11_PARSE(app, argc, argv);
  if (per_commit == 0 || per_commit > devices) per_commit = devices;
  if (path.empty() == existing.empty()) {
    std::fprintf(stderr, "archive_bench: give --db (a new file) or --existing (a copy)\n");
    return 2;
  }
  // A device's newest event is its signed head, which stays a row, and a shorter run than a
  // block waits for more: below this nothing would be archived.
  if (!path.empty() && !fill_only && per_device <= per_block) {
    std::fprintf(stderr,
                 "archive_bench: --events-per-device (%llu) must be more than --events-per-block "
                 "(%llu): the newest event stays a row, and a shorter run waits for a whole "
                 "block\n",
                 static_cast<unsigned long long>(per_device),
                 static_cast<unsigned long long>(per_block));
    return 2;
  }
  const instrumeter::Status st =
      existing.empty()
          ? instrumeter::Run(path, devices, per_device, per_block, per_commit,
                             std::chrono::milliseconds(static_cast<int64_t>(spread_s * 1000)),
                             fill_only)
          : instrumeter::RunExisting(existing, per_block);
  if (!st.ok()) {
    std::fprintf(stderr, "archive_bench: %s\n", st.ToString().c_str());
    return 1;
  }
  return 0;
}
