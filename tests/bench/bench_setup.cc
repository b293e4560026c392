// bench_setup: prepares a hub database for tests/bench/run.sh: registers N loadgen devices as
// instruments and enrols the public key instrumeter-loadgen signs each with (loadgen::DeviceKey).
//
// The instruments go through the Store API (one transaction). The keys are inserted with SQL in
// one transaction, not through Store::AddDeviceKey: that commits (and fsyncs) once per key, which
// takes minutes for 100,000 devices. The columns are those AddDeviceKey writes.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>

#include "common/sqlite_db.h"
#include "hub/sqlite_store.h"
#include "loadgen.h"

namespace instrumeter {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status Setup(const std::string& db_path, const loadgen::LoadOptions& load) {
  std::vector<hub::Instrument> instruments;
  for (int i = 0; i < load.devices; ++i)
    instruments.push_back({loadgen::DeviceId(load, i), "Bench " + std::to_string(i),
                           "Bench Institute", "Lab", "Suzhou", "Jiangsu", 0});
  {
    auto store = hub::OpenSqliteStore({.path = db_path});
    if (!store.ok()) return store.status();
    INSTRUMETER_RETURN_IF_ERROR((*store)->PutInstruments(instruments, NowMs()));
  }
  auto db = SqliteDb::Open(db_path, {.create = false});
  if (!db.ok()) return db.status();
  auto tx = SqliteTransaction::Begin(db->get());
  if (!tx.ok()) return tx.status();
  auto insert = (*db)->Prepare(
      "INSERT INTO device_keys(device_id, public_key, cert_serial, enrolled_unix_ms) "
      "VALUES(?, ?, '', ?)");
  if (!insert.ok()) return insert.status();
  for (const hub::Instrument& instrument : instruments) {
    auto key = loadgen::DeviceKey(instrument.instrument_id);
    if (!key.ok()) return key.status();
    insert->Reset();
    INSTRUMETER_RETURN_IF_ERROR(insert->Bind(1, std::string_view(instrument.instrument_id))
                                    .BindBlob(2, key->public_key())
                                    .Bind(3, NowMs())
                                    .Run()
                                    .WithContext("device " + instrument.instrument_id));
  }
  return tx->Commit();
}

}  // namespace
}  // namespace instrumeter

int main(int argc, char** argv) {
  instrumeter::loadgen::LoadOptions load;
  std::string db_path;
  CLI::App app{"bench_setup: registers and enrols instrumeter-loadgen's devices in a hub database"};
  app.add_option("--db", db_path, "hub database (created if missing)")->required();
  app.add_option("--devices", load.devices)->capture_default_str();
  app.add_option("--device-prefix", load.device_prefix)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const instrumeter::Status st = instrumeter::Setup(db_path, load);
  if (!st.ok()) {
    std::fprintf(stderr, "bench_setup: %s\n", st.ToString().c_str());
    return 1;
  }
  return 0;
}
