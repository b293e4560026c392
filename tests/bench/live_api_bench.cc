// Scale benchmark of the live API (not a test: it asserts nothing and measures wall time).
//
//   build/tests/bench/live_api_bench [instruments=10000] [requests=30] [serve_seconds=0]
//
// With serve_seconds, the HTTP side stays up that long afterwards (its address is printed), to
// look at the dashboard with that many instruments.
// Registers N instruments in 50 cities, ingests a day of state changes for each through the real
// ingest path into a real SQLite file (about 50 intervals per instrument), starts the HTTP side
// in-process on a loopback port, then measures over the socket:
//   - GET /api/v1/instruments (the whole list; target < 50 ms at 10,000 instruments),
//   - a filtered list, one instrument, one timeline,
//   - the stream: from a commit on the ingest side to the SSE event at the client (target: p99
//     within 1 s).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "hub/billing_options.h"
#include "hub/live_http.h"
#include "hub/sqlite_store.h"
#include "hub_testing/events.h"
#include "hub_testing/http_client.h"
#include "protocol/topics.h"
#include "test_support/process.h"

namespace instrumeter::hub {
namespace {

using Clock = std::chrono::steady_clock;
namespace ht = hub::testing;

class NullDownlink : public Downlink {
 public:
  Status SendAck(const std::string&, uint64_t) override { return Status::Ok(); }
  Status SendResend(const std::string&, uint64_t, uint64_t) override { return Status::Ok(); }
};

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

void Report(const char* what, std::vector<double> ms, size_t bytes = 0) {
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) {
    return ms[std::min(ms.size() - 1, static_cast<size_t>(q * ms.size()))];
  };
  std::printf("%-44s n=%-4zu min %7.2f  p50 %7.2f  p95 %7.2f  p99 %7.2f  max %7.2f ms", what,
              ms.size(), ms.front(), at(0.5), at(0.95), at(0.99), ms.back());
  if (bytes > 0) std::printf("  (%.1f MB)", static_cast<double>(bytes) / 1e6);
  std::printf("\n");
}

int Main(int argc, char** argv) {
  const int instruments = argc > 1 ? std::atoi(argv[1]) : 10'000;
  const int requests = argc > 2 ? std::atoi(argv[2]) : 30;
  const int serve_seconds = argc > 3 ? std::atoi(argv[3]) : 0;
  constexpr int kChangesPerDay = 48;  // a state change every 30 minutes
  instrumeter::testing::TempDir dir;
  const std::string db = dir.File("hub.db");
  SystemClock clock;
  const int64_t now = clock.WallUnixMs();

  auto store = OpenSqliteStore({.path = db});
  if (!store.ok()) return std::printf("%s\n", store.status().ToString().c_str()), 1;
  std::vector<Instrument> registry;
  for (int i = 0; i < instruments; ++i) {
    const std::string city = "City-" + std::to_string(i % 50);
    registry.push_back({"inst-" + std::to_string(i), "Instrument " + std::to_string(i),
                        "Institute " + std::to_string(i % 400), "Site " + std::to_string(i % 7),
                        city, "Region-" + std::to_string(i % 12)});
  }
  auto t = Clock::now();
  if (!(*store)->PutInstruments(registry, now).ok()) return 1;
  std::printf("registered %d instruments in %.0f ms\n", instruments, Ms(Clock::now() - t));

  // Two three-hour bookings a day per instrument for the view's whole horizon, the first one
  // running now: the list then carries a current and a next booking for every instrument.
  Result<BillingRules> rules =
      Complete(Overlay({.rate_fen_per_hour = 30'000}, BillingOptions().defaults));
  if (!rules.ok()) return 1;
  std::vector<Booking> bookings;
  constexpr int64_t kHalfDayMs = 12 * 3'600'000;
  for (int i = 0; i < instruments; ++i) {
    for (int64_t k = 0; k < 2 * kBookingHorizonMs / kDayMs; ++k) {
      Booking b;
      b.order_id = "ord-" + std::to_string(i) + "-" + std::to_string(k);
      b.instrument_id = "inst-" + std::to_string(i);
      b.customer = {"Customer " + std::to_string(i % 1800), "Suzhou", "Jiangsu"};
      b.start_unix_ms = now - 3'600'000 + k * kHalfDayMs;
      b.end_unix_ms = b.start_unix_ms + 3 * 3'600'000;
      b.remote = k % 2 == 0;
      b.rules = *rules;
      bookings.push_back(std::move(b));
    }
  }
  t = Clock::now();
  Result<PutBookingsOutcome> put = (*store)->PutBookings(bookings, now);
  if (!put.ok() || put->conflict.has_value()) return 1;
  std::printf("booked %zu windows in %.0f ms\n", bookings.size(), Ms(Clock::now() - t));
  t = Clock::now();
  Result<std::vector<Booking>> horizon =
      (*store)->ListBookings({.from_unix_ms = now, .to_unix_ms = now + kBookingHorizonMs});
  if (!horizon.ok()) return 1;
  std::printf(
      "read the %zu bookings of the live view's horizon in %.0f ms (at load, after an import "
      "and once a day)\n",
      horizon->size(), Ms(Clock::now() - t));

  HubMetrics metrics;
  LiveFeed feed;
  NullDownlink downlink;
  IngestOptions options;
  options.max_batch_events = 1'000'000;
  auto ingestor = Ingestor::Create(store->get(), &downlink, &clock, &metrics, options, &feed);
  if (!ingestor.ok()) return 1;
  t = Clock::now();
  const v1::InstrumentState cycle[] = {v1::INSTRUMENT_STATE_IDLE, v1::INSTRUMENT_STATE_IN_USE,
                                       v1::INSTRUMENT_STATE_IDLE, v1::INSTRUMENT_STATE_OFF};
  for (int i = 0; i < instruments; ++i) {
    const std::string id = "inst-" + std::to_string(i);
    std::vector<v1::Event> events;
    uint64_t powered = 0;
    uint64_t in_use = 0;
    const int64_t start = now - 24 * 3'600'000 + (i % 60) * 1000;
    for (int k = 0; k < kChangesPerDay; ++k) {
      const int64_t at = k * 1'800'000;
      const v1::InstrumentState state = cycle[(k + i) % 4];
      events.push_back(k == 0 ? ht::Start(1, state, {ht::kBoot1, 1000 + at, start + at, 0, 0})
                              : ht::Change(static_cast<uint64_t>(k + 1), state,
                                           {ht::kBoot1, 1000 + at, start + at, powered, in_use}));
      if (protocol::IsPowered(state)) powered += 1'800'000;
      if (protocol::IsInUse(state)) in_use += 1'800'000;
    }
    (*ingestor)->OnMessage(protocol::Topic(id, protocol::Channel::kUp), ht::EnvelopeOf(id, events),
                           now);
    if (i % 200 == 199 && !(*ingestor)->Flush().ok()) return 1;
  }
  if (!(*ingestor)->Flush().ok()) return 1;
  std::printf("ingested %llu events (%d intervals per instrument) in %.0f ms\n",
              static_cast<unsigned long long>(metrics.events_stored.load()), kChangesPerDay,
              Ms(Clock::now() - t));

  HttpOptions http;
  http.server.listen = "127.0.0.1:0";
  t = Clock::now();
  auto live = LiveHttp::Start(http, {.path = db}, {}, &metrics, &feed, [] {
    return HealthReport{.broker_connected = true, .ingest_healthy = true};
  });
  if (!live.ok()) return std::printf("%s\n", live.status().ToString().c_str()), 1;
  std::printf("http side started (live view loaded) in %.0f ms\n", Ms(Clock::now() - t));
  const int port = (*live)->port();

  auto measure = [&](const char* what, const std::string& target) {
    std::vector<double> ms;
    size_t bytes = 0;
    for (int r = 0; r < requests; ++r) {
      const auto started = Clock::now();
      auto response = ht::Get(port, target);
      ms.push_back(Ms(Clock::now() - started));
      if (!response.ok() || response->status != 200) {
        std::printf("%s failed\n", target.c_str());
        return;
      }
      bytes = response->body.size();
    }
    Report(what, ms, bytes);
  };
  measure("GET /api/v1/instruments", "/api/v1/instruments");
  measure("GET /api/v1/instruments?city=City-7", "/api/v1/instruments?city=City-7");
  measure("GET /api/v1/instruments?state=IN_USE", "/api/v1/instruments?state=IN_USE");
  measure("GET /api/v1/instruments/inst-42", "/api/v1/instruments/inst-42");
  measure("GET /api/v1/instruments/inst-42/timeline", "/api/v1/instruments/inst-42/timeline");
  measure("GET /metrics", "/metrics");

  // Stream latency: commit on this (the ingest) thread, receive at an SSE client.
  auto stream = ht::SseClient::Open(port, "/api/v1/stream", std::chrono::seconds(5));
  if (!stream.ok()) return 1;
  std::vector<double> latency;
  for (int k = 0; k < 100; ++k) {
    const std::string id = "inst-" + std::to_string(k * 97 % instruments);
    const uint64_t seq = kChangesPerDay + 1;
    const v1::InstrumentState state = v1::INSTRUMENT_STATE_FAULT;
    (*ingestor)->OnMessage(
        protocol::Topic(id, protocol::Channel::kUp),
        ht::EnvelopeOf(id,
                       {ht::Change(seq, state, {ht::kBoot1, 1000 + 24 * 3'600'000, now, 0, 0})}),
        now);
    if (!(*ingestor)->Flush().ok()) return 1;
    const auto committed = Clock::now();
    if (!(*stream)->Next(std::chrono::seconds(5)).has_value()) {
      std::printf("stream: no event for change %d\n", k);
      return 1;
    }
    latency.push_back(Ms(Clock::now() - committed));
  }
  Report("stream: commit -> SSE event at the client", latency);
  if (serve_seconds > 0) {
    std::printf("serving http://127.0.0.1:%d/ for %d s\n", port, serve_seconds);
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::seconds(serve_seconds));
  }
  return 0;
}

}  // namespace
}  // namespace instrumeter::hub

int main(int argc, char** argv) { return instrumeter::hub::Main(argc, argv); }
