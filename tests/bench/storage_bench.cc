// storage_bench: appends/s and dedupe lookups/s of the hub's SQLite store (Store::CommitBatch,
// Store::ReadEvents) on an empty table and again at each of the large sizes asked for, with
// devices interleaved in each batch as the ingestor commits them (docs/performance.md, "Storage").
//
// The table is pre-filled through CommitBatch too, device by device (each device's sequences
// are contiguous, so its (dev_key, seq) index entries go in thousands at a time and the
// pre-fill is fast); the measured batches then append the next sequence of many devices at
// once, which touches one index leaf per device.
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "hub/sqlite_store.h"
#include "loadgen.h"

namespace instrumeter {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct Fleet {
  std::vector<hub::DeviceRecord> records;
  std::vector<hub::EventRow> rows;  // [i] is sequence i + 1 of every device
};

// Commits `per_device` further events of every device in `round_size`-event batches that each
// take the next sequence of the next devices (interleaved); returns rows/s. Devices come in one
// fixed random order, round after round, as a live fleet's heartbeats do: each keeps its phase in
// the period, so a batch holds devices with unrelated keys (in key order, neighbours would share
// index leaves and flatter the store).
Result<double> AppendInterleaved(hub::Store* store, Fleet* fleet, uint64_t per_device,
                                 size_t round_size) {
  std::vector<size_t> order(fleet->records.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::shuffle(order.begin(), order.end(), std::mt19937_64(11));
  const auto start = std::chrono::steady_clock::now();
  uint64_t rows = 0;
  size_t next = 0;
  const uint64_t total = per_device * fleet->records.size();
  while (rows < total) {
    hub::Batch batch;
    for (size_t n = 0; n < round_size && rows < total; ++n, ++rows) {
      hub::DeviceRecord& r = fleet->records[order[next]];
      next = (next + 1) % order.size();
      hub::DeviceBatch dev;
      dev.events.push_back(fleet->rows[r.contiguous_seq]);
      ++r.contiguous_seq;
      ++r.events_stored;
      dev.record = r;
      batch.devices.push_back(std::move(dev));
    }
    INSTRUMETER_RETURN_IF_ERROR(store->CommitBatch(batch));
  }
  return static_cast<double>(total) / SecondsSince(start);
}

// Pre-fills `per_device` events of every device, device by device; returns rows/s.
Result<double> PrefillDeviceMajor(hub::Store* store, Fleet* fleet, uint64_t per_device) {
  const auto start = std::chrono::steady_clock::now();
  constexpr uint64_t kBatch = 5000;
  for (hub::DeviceRecord& r : fleet->records) {
    const uint64_t end = r.contiguous_seq + per_device;
    while (r.contiguous_seq < end) {
      hub::DeviceBatch dev;
      const uint64_t last = std::min(end, r.contiguous_seq + kBatch);
      dev.events.assign(fleet->rows.begin() + static_cast<std::ptrdiff_t>(r.contiguous_seq),
                        fleet->rows.begin() + static_cast<std::ptrdiff_t>(last));
      r.events_stored += last - r.contiguous_seq;
      r.contiguous_seq = last;
      dev.record = r;
      hub::Batch batch;
      batch.devices.push_back(std::move(dev));
      INSTRUMETER_RETURN_IF_ERROR(store->CommitBatch(batch));
    }
  }
  return static_cast<double>(per_device * fleet->records.size()) / SecondsSince(start);
}

// Random (device, stored sequence) lookups, as the ingestor's exact-bytes duplicate check
// reads them; returns lookups/s.
Result<double> Lookups(hub::Store* store, const Fleet& fleet, int count) {
  std::mt19937_64 random(7);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < count; ++i) {
    const hub::DeviceRecord& r = fleet.records[random() % fleet.records.size()];
    const uint64_t seq = 1 + random() % r.contiguous_seq;
    auto rows = store->ReadEvents(r.device_id, seq, seq);
    if (!rows.ok()) return rows.status();
    if (rows->size() != 1 || rows->front().body != fleet.rows[seq - 1].body)
      return Status::Internal("lookup of " + r.device_id + " seq " + std::to_string(seq) +
                              " did not return its stored bytes");
  }
  return static_cast<double>(count) / SecondsSince(start);
}

// `prefill_sizes`: the events per device the large table holds at each measurement, ascending;
// the table grows from one to the next, so one run gives the curve.
Status Run(const std::string& path, int devices, const std::vector<uint64_t>& prefill_sizes,
           uint64_t measure_per_device, size_t round_size, int lookups) {
  auto store = hub::OpenSqliteStore({.path = path});
  if (!store.ok()) return store.status();
  loadgen::LoadOptions ids;
  ids.device_prefix = "store-";
  Fleet fleet;
  int64_t powered = 0;
  int64_t in_use = 0;
  const uint64_t per_device =
      prefill_sizes.back() + (prefill_sizes.size() + 1) * measure_per_device;
  for (std::string& bytes : loadgen::MakeBacklog("storage-bench-boot", static_cast<int>(per_device),
                                                 {}, &powered, &in_use)) {
    v1::Event event;
    event.ParseFromString(bytes);
    fleet.rows.push_back(hub::MakeEventRow(event, std::move(bytes), 1'767'225'600'000));
  }
  for (int i = 0; i < devices; ++i) {
    hub::DeviceRecord r;
    r.device_id = loadgen::DeviceId(ids, i);
    fleet.records.push_back(r);
  }
  auto empty = AppendInterleaved(store->get(), &fleet, measure_per_device, round_size);
  if (!empty.ok()) return empty.status();
  const uint64_t small_rows = measure_per_device * static_cast<uint64_t>(devices);
  auto small_lookups = Lookups(store->get(), fleet, lookups);
  if (!small_lookups.ok()) return small_lookups.status();
  std::printf(
      "{\"phase\": \"small\", \"table_rows\": %llu, \"append_rows_per_s\": %.0f, "
      "\"lookups_per_s\": %.0f}\n",
      static_cast<unsigned long long>(small_rows), *empty, *small_lookups);
  std::fflush(stdout);
  uint64_t prefilled = 0;
  uint64_t table_rows = small_rows;
  for (const uint64_t size : prefill_sizes) {
    auto prefill = PrefillDeviceMajor(store->get(), &fleet, size - prefilled);
    if (!prefill.ok()) return prefill.status();
    table_rows += (size - prefilled) * static_cast<uint64_t>(devices);
    prefilled = size;
    auto large = AppendInterleaved(store->get(), &fleet, measure_per_device, round_size);
    if (!large.ok()) return large.status();
    auto large_lookups = Lookups(store->get(), fleet, lookups);
    if (!large_lookups.ok()) return large_lookups.status();
    struct stat file {};
    ::stat(path.c_str(), &file);
    std::printf(
        "{\"phase\": \"large\", \"table_rows\": %llu, \"prefill_rows_per_s\": %.0f, "
        "\"append_rows_per_s\": %.0f, \"lookups_per_s\": %.0f, \"db_bytes\": %lld}\n",
        static_cast<unsigned long long>(table_rows), *prefill, *large, *large_lookups,
        static_cast<long long>(file.st_size));
    std::fflush(stdout);
    table_rows += measure_per_device * static_cast<uint64_t>(devices);
  }
  return Status::Ok();
}

}  // namespace
}  // namespace instrumeter

int main(int argc, char** argv) {
  std::string path;
  int devices = 100;
  std::vector<uint64_t> prefill = {100'000};
  uint64_t measure = 200;
  size_t round = 1000;
  int lookups = 20'000;
  CLI::App app{"storage_bench: hub store appends and duplicate lookups, small and large table"};
  app.add_option("--db", path, "new database file")->required();
  app.add_option("--devices", devices)->capture_default_str();
  app.add_option("--prefill-per-device", prefill,
                 "events per device in the large table; a comma-separated ascending list "
                 "measures at each size as the table grows")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--measure-per-device", measure, "events per device appended in each measure")
      ->capture_default_str();
  app.add_option("--batch", round, "events per committed batch (one per device)")
      ->capture_default_str();
  app.add_option("--lookups", lookups)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (prefill.empty() || prefill.front() == 0 || !std::is_sorted(prefill.begin(), prefill.end()) ||
      std::adjacent_find(prefill.begin(), prefill.end()) != prefill.end()) {
    std::fprintf(stderr,
                 "storage_bench: --prefill-per-device: sizes must be positive and strictly "
                 "ascending\n");
    return 2;
  }
  const instrumeter::Status st = instrumeter::Run(path, devices, prefill, measure, round, lookups);
  if (!st.ok()) {
    std::fprintf(stderr, "storage_bench: %s\n", st.ToString().c_str());
    return 1;
  }
  return 0;
}
