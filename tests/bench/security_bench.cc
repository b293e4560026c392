// What signed telemetry costs here (docs/security.md, "Cost"): SHA-256 chain links, Ed25519
// signing and verification, and the hub's cost per event of the chain with a signature every
// N events against verifying a signature on every message. A benchmark, not a test: run
//   build/tests/bench/security_bench
// and copy the figures into docs/security.md.
#include <benchmark/benchmark.h>

#include "protocol/chain.h"

namespace instrumeter::protocol {
namespace {

// A typical heartbeat as the agent serialises it (about 120 bytes).
std::string HeartbeatBytes(uint64_t seq) {
  v1::Event e;
  e.set_sequence(seq);
  e.mutable_at()->set_wall_unix_ms(1'767'225'600'000 + static_cast<int64_t>(seq) * 10'000);
  e.mutable_at()->set_monotonic_ms(1'000'000 + static_cast<int64_t>(seq) * 10'000);
  e.mutable_at()->set_boot_id("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
  v1::Heartbeat* h = e.mutable_heartbeat();
  h->set_state(v1::INSTRUMENT_STATE_IN_USE);
  h->mutable_counters()->set_powered_ms(seq * 10'000);
  h->mutable_counters()->set_in_use_ms(seq * 9'000);
  h->set_outbox_depth(1);
  h->set_agent_version("0.1.0");
  h->set_interval_ms(10'000);
  v1::AdapterHealth* a = h->add_adapters();
  a->set_name("power");
  a->set_type("modbus");
  a->set_ok(true);
  return e.SerializeAsString();
}

struct Fixture {
  Fixture()
      : key(SigningKey::Generate().value()),
        verifier(VerifyingKey::FromRaw(key.public_key()).value()) {
    link = ChainNext(ChainGenesis("nmr-600"), HeartbeatBytes(1));
    signature = *key.SignHead("nmr-600", 1, link);
  }
  SigningKey key;
  VerifyingKey verifier;
  std::string link;
  v1::Signature signature;
};

void BM_ChainLink(benchmark::State& state) {
  const std::string event = HeartbeatBytes(7);
  std::string link = ChainGenesis("nmr-600");
  for (auto _ : state) {
    link = ChainNext(link, event);
    benchmark::DoNotOptimize(link);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(std::to_string(event.size()) + "-byte events");
}
BENCHMARK(BM_ChainLink);

void BM_Ed25519SignHead(benchmark::State& state) {
  Fixture f;
  for (auto _ : state) benchmark::DoNotOptimize(f.key.SignHead("nmr-600", 1, f.link));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Ed25519SignHead);

void BM_Ed25519VerifyHead(benchmark::State& state) {
  Fixture f;
  for (auto _ : state) benchmark::DoNotOptimize(f.verifier.VerifyHead("nmr-600", f.signature));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Ed25519VerifyHead);

// The hub's work per event with the chain: one link per event, one verification per
// `events_per_signature` events (6: a 10 s heartbeat signed once a minute; 1: signing every
// message, where the chain is still computed).
void BM_HubPerEvent(benchmark::State& state) {
  Fixture f;
  const int64_t per_signature = state.range(0);
  const std::string event = HeartbeatBytes(7);
  std::string link = f.link;
  int64_t n = 0;
  for (auto _ : state) {
    link = ChainNext(link, event);
    if (++n % per_signature == 0)
      benchmark::DoNotOptimize(f.verifier.VerifyHead("nmr-600", f.signature));
    benchmark::DoNotOptimize(link);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel("1 signature per " + std::to_string(per_signature) + " events");
}
BENCHMARK(BM_HubPerEvent)->Arg(1)->Arg(6)->Arg(60);

}  // namespace
}  // namespace instrumeter::protocol

BENCHMARK_MAIN();
