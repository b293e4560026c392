// Verification at scale: 1,000 instruments x 30 days of telemetry and bookings in a real SQLite
// file, one full verification pass, then one session re-verified after late events. Prints
// figures; asserts nothing about time (docs/billing.md records the latest run).
//
// With --live-devices N instead: the pass the running hub makes every minute beside a live fleet
// of N instruments whose telemetry is all fresh, so nothing is settled and every instrument has a
// changed range to clear (docs/performance.md, "Capacity").
//
//   billing_bench [--instruments N] [--days D] [--dir DIR]
//   billing_bench --live-devices N [--dir DIR]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "hub/billing_driver.h"
#include "hub/bookings.h"
#include "hub/ledger.h"
#include "hub/sqlite_store.h"
#include "hub/verification.h"
#include "protocol/codec.h"

namespace instrumeter::hub {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int64_t kMin = 60'000;
constexpr int64_t kDay = 86'400'000;
// 2026-03-01T00:00:00+08:00: the first local day.
constexpr int64_t kT0 = 1'772'294'400'000;
constexpr auto kOff = v1::INSTRUMENT_STATE_OFF;
constexpr auto kIdle = v1::INSTRUMENT_STATE_IDLE;
constexpr auto kUse = v1::INSTRUMENT_STATE_IN_USE;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

void Check(const Status& st, const char* what) {
  if (st.ok()) return;
  std::fprintf(stderr, "billing_bench: %s: %s\n", what, st.ToString().c_str());
  std::exit(1);
}

// One instrument's agent: events with honest counters, derived as the ingestor would.
struct Device {
  DeviceRecord record;
  uint64_t seq = 0;
  v1::InstrumentState state = kOff;
  int64_t last_wall = 0;
  uint64_t powered_ms = 0;
  uint64_t in_use_ms = 0;
};

class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}
  int64_t Uniform(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }
  bool Chance(int percent) { return Uniform(0, 99) < percent; }

 private:
  std::mt19937_64 rng_;
};

struct DayPlan {
  std::vector<std::pair<int64_t, v1::InstrumentState>> changes;  // by time
  std::vector<Booking> bookings;
  std::optional<std::pair<int64_t, int64_t>> downtime;
};

// A local day of one instrument: the agent runs 07:00-23:00, four bookings, use mostly inside
// them, some no-shows, overruns, unbooked use and agent downtime.
DayPlan PlanDay(Generator* g, const std::string& instrument, int64_t day_start, int day) {
  DayPlan p;
  const int64_t slots[4][2] = {
      {8 * 60, 10 * 60}, {10 * 60 + 30, 12 * 60}, {13 * 60 + 30, 16 * 60}, {17 * 60, 20 * 60}};
  p.changes.emplace_back(day_start + 7 * 60 * kMin, kIdle);
  for (int s = 0; s < 4; ++s) {
    const int64_t start = day_start + (slots[s][0] + 5 * g->Uniform(-2, 2)) * kMin;
    const int64_t end = day_start + (slots[s][1] + 5 * g->Uniform(-2, 2)) * kMin;
    Booking b;
    b.order_id = instrument + "-" + std::to_string(day) + "-" + std::to_string(s);
    b.instrument_id = instrument;
    b.customer = {"Customer " + std::to_string(g->Uniform(1, 1800)),
                  g->Chance(60) ? "Suzhou" : "Hangzhou", "Jiangsu"};
    b.start_unix_ms = start;
    b.end_unix_ms = end;
    b.remote = g->Chance(70);
    if (g->Chance(40))
      b.voucher = Voucher{"V-" + b.order_id, "Jiangsu", 50, 500'000,
                          g->Chance(50) ? Redemption::kProvider : Redemption::kReimburse};
    p.bookings.push_back(std::move(b));
    if (g->Chance(5)) continue;  // a no-show
    const int64_t use_from = start + g->Uniform(0, 20) * kMin;
    const int64_t use_to =
        g->Chance(10) ? end + g->Uniform(1, 15) * kMin : end - g->Uniform(0, 20) * kMin;
    p.changes.emplace_back(use_from, kUse);
    p.changes.emplace_back(use_to, kIdle);
  }
  if (g->Chance(10)) {  // unbooked use in the evening
    p.changes.emplace_back(day_start + 21 * 60 * kMin, kUse);
    p.changes.emplace_back(day_start + 22 * 60 * kMin, kIdle);
  }
  p.changes.emplace_back(day_start + (22 * 60 + 50) * kMin, kOff);
  if (g->Chance(3)) p.downtime = {day_start + 12 * 60 * kMin, day_start + (12 * 60 + 30) * kMin};
  return p;
}

class Feeder {
 public:
  explicit Feeder(Device* d) : d_(d) {}

  void Point(int64_t wall, v1::Event* e) {
    Advance(wall);
    e->set_sequence(++d_->seq);
    e->mutable_at()->set_wall_unix_ms(wall);
    e->mutable_at()->set_monotonic_ms(wall - kT0 + 1'000'000);
    e->mutable_at()->set_boot_id("boot-1");
  }
  void Counters(v1::Counters* c) {
    c->set_powered_ms(d_->powered_ms);
    c->set_in_use_ms(d_->in_use_ms);
  }
  void Advance(int64_t wall) {
    if (d_->last_wall != 0 && wall > d_->last_wall) {
      const uint64_t ms = static_cast<uint64_t>(wall - d_->last_wall);
      if (protocol::IsPowered(d_->state)) d_->powered_ms += ms;
      if (protocol::IsInUse(d_->state)) d_->in_use_ms += ms;
    }
    d_->last_wall = wall;
  }

 private:
  Device* d_;
};

// The events of one day: the agent runs 07:00-23:00 with a heartbeat every 30 minutes, and
// stops for the plan's downtime (nothing is measured while it is away).
std::vector<v1::Event> DayEvents(Device* d, const DayPlan& plan, int64_t day_start) {
  enum Kind { kChange, kBeat, kDown, kUp, kStop };
  struct Action {
    int64_t at;
    Kind kind;
    v1::InstrumentState state;
    bool operator<(const Action& o) const { return std::tie(at, kind) < std::tie(o.at, o.kind); }
  };
  std::vector<Action> actions;
  for (const auto& [at, state] : plan.changes) actions.push_back({at, kChange, state});
  const int64_t run_from = day_start + 7 * 60 * kMin;
  const int64_t run_to = day_start + 23 * 60 * kMin;
  for (int64_t t = run_from + 30 * kMin; t < run_to; t += 30 * kMin)
    actions.push_back({t, kBeat, kOff});
  if (plan.downtime.has_value()) {
    actions.push_back({plan.downtime->first, kDown, kOff});
    actions.push_back({plan.downtime->second, kUp, kOff});
  }
  actions.push_back({run_to, kStop, kOff});
  std::sort(actions.begin(), actions.end());

  std::vector<v1::Event> out;
  Feeder f(d);
  const auto start_run = [&](int64_t wall) {
    v1::Event e;
    f.Point(wall, &e);
    e.mutable_state_change()->set_state(d->state);
    e.mutable_state_change()->set_run_start(true);
    f.Counters(e.mutable_state_change()->mutable_counters());
    out.push_back(e);
  };
  const auto stop = [&](int64_t wall) {
    v1::Event e;
    f.Point(wall, &e);
    e.mutable_agent_stop()->set_state(d->state);
    e.mutable_agent_stop()->set_clean(true);
    f.Counters(e.mutable_agent_stop()->mutable_counters());
    out.push_back(e);
  };
  d->state = kOff;
  d->last_wall = 0;  // the night was not observed
  start_run(run_from);
  bool up = true;
  for (const Action& a : actions) {
    switch (a.kind) {
      case kChange:
        if (up) {
          v1::Event e;
          f.Point(a.at, &e);
          e.mutable_state_change()->set_state(a.state);
          e.mutable_state_change()->set_previous_state(d->state);
          d->state = a.state;
          f.Counters(e.mutable_state_change()->mutable_counters());
          out.push_back(e);
        }
        d->state = a.state;
        break;
      case kBeat:
        if (up) {
          v1::Event e;
          f.Point(a.at, &e);
          e.mutable_heartbeat()->set_state(d->state);
          e.mutable_heartbeat()->set_outbox_depth(1);
          f.Counters(e.mutable_heartbeat()->mutable_counters());
          out.push_back(e);
        }
        break;
      case kDown:
        stop(a.at);
        up = false;
        break;
      case kUp:
        d->last_wall = 0;
        start_run(a.at);
        up = true;
        break;
      case kStop:
        stop(a.at);
        break;
    }
  }
  return out;
}

void AddToBatch(Device* d, const std::vector<v1::Event>& events, Batch* batch) {
  DeviceBatch& b = batch->devices.emplace_back();
  IntervalChanges changes;
  for (const v1::Event& e : events) {
    b.events.push_back(MakeEventRow(e, e.SerializeAsString(), e.at().wall_unix_ms() + 30));
    ApplyEvent(e, &d->record.derivation, &changes);
  }
  d->record.contiguous_seq = d->seq;
  // As if each day's last envelope carried a verified signature: every event is billable.
  d->record.chain.signed_through = d->seq;
  d->record.events_stored += events.size();
  b.intervals = changes.rows();
  b.record = d->record;
}

void PrintPass(const char* what, const PassReport& pass, double seconds) {
  std::printf(
      "%s: %.2f s (%.2f s finding, reading and measuring, %.2f s in %zu write transactions); "
      "%zu instruments measured\n",
      what, seconds, static_cast<double>(pass.measure_us) / 1e6,
      static_cast<double>(pass.commit_us) / 1e6, pass.commits, pass.instruments);
}

// A live fleet: each instrument sends a heartbeat a minute (as a 10 s heartbeat, coalesced per
// pass); the hub's passes run a minute apart. The first pass of a hub looks at every instrument's
// days; the later ones are what a running hub repeats.
int LiveFleet(Store* store, int count) {
  const int64_t now = kT0 + 40 * kDay;
  std::vector<Device> devices(static_cast<size_t>(count));
  std::vector<Instrument> registry;
  for (int i = 0; i < count; ++i) {
    devices[static_cast<size_t>(i)].record.device_id = "live-" + std::to_string(i);
    registry.push_back({devices[static_cast<size_t>(i)].record.device_id, "", "", "", "", "", 0});
  }
  Check(store->PutInstrumentsAndRules(registry, {}, 0), "register");
  const auto beat = [&](int64_t wall) {
    auto t = Clock::now();
    for (int first = 0; first < count; first += 1000) {
      Batch batch;
      for (int i = first; i < std::min(count, first + 1000); ++i) {
        Device* d = &devices[static_cast<size_t>(i)];
        v1::Event e;
        Feeder f(d);
        f.Point(wall, &e);
        if (d->seq == 1) {
          d->state = kIdle;
          e.mutable_state_change()->set_state(kIdle);
          e.mutable_state_change()->set_run_start(true);
          f.Counters(e.mutable_state_change()->mutable_counters());
        } else {
          e.mutable_heartbeat()->set_state(d->state);
          f.Counters(e.mutable_heartbeat()->mutable_counters());
        }
        AddToBatch(d, {e}, &batch);
      }
      Check(store->CommitBatch(batch), "commit telemetry");
    }
    return Seconds(t);
  };
  BillingDriver driver(store, BillingOptions{});
  std::printf("live fleet: %d instruments, one event each a minute before each pass (%.1f s)\n",
              count, beat(now - kMin));
  for (int round = 0; round < 3; ++round) {
    const int64_t at = now + round * kMin;
    if (round > 0) beat(at - kMin / 2);
    auto t = Clock::now();
    Result<PassReport> pass = driver.RunOnce(at);
    Check(pass.status(), "live pass");
    PrintPass(round == 0 ? "first pass (every instrument's days)" : "pass a minute later", *pass,
              Seconds(t));
  }
  return 0;
}

}  // namespace

int Main(int argc, char** argv) {
  int instruments = 1000;
  int days = 30;
  int live_devices = 0;
  std::string dir = "/tmp/instrumeter-billing-bench";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--instruments") instruments = std::atoi(argv[i + 1]);
    if (flag == "--days") days = std::atoi(argv[i + 1]);
    if (flag == "--dir") dir = argv[i + 1];
    if (flag == "--live-devices") live_devices = std::atoi(argv[i + 1]);
  }
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/hub.db";
  Result<std::unique_ptr<Store>> opened = OpenSqliteStore({.path = path});
  Check(opened.status(), "open");
  Store* store = opened->get();
  if (live_devices > 0) return LiveFleet(store, live_devices);

  BillingOptions options;  // the defaults: UTC+8 days, 15 min settle, 15 min units
  std::printf("billing_bench: %d instruments x %d days, %s\n", instruments, days, path.c_str());

  auto t = Clock::now();
  std::vector<Instrument> registry;
  std::vector<RuleOverridesUpdate> rates;
  std::vector<Device> devices(static_cast<size_t>(instruments));
  for (int i = 0; i < instruments; ++i) {
    const std::string id = "inst-" + std::to_string(i);
    registry.push_back({id, "Instrument " + std::to_string(i),
                        "Institution " + std::to_string(i % 65), "Site", "Shanghai", "Shanghai",
                        0});
    RuleOverridesUpdate r;
    r.instrument_id = id;
    r.rules.rate_fen_per_hour = 20'000 + 1'000 * (i % 40);
    r.fields_set = 1u << static_cast<int>(RuleField::kRateFenPerHour);
    rates.push_back(r);
    devices[static_cast<size_t>(i)].record.device_id = id;
  }
  Check(store->PutInstrumentsAndRules(registry, rates, 0), "register");
  for (const Instrument& in : registry) {
    DeviceKey key{
        .device_id = in.instrument_id, .public_key = std::string(32, 'k'), .cert_serial = "01"};
    Check(store->AddDeviceKey(&key), "enrol");
  }

  Generator g(42);
  std::vector<BookingInput> bookings;
  std::vector<v1::Event> late;  // inst-0's last afternoon, delivered after the first pass
  size_t events = 0;
  for (int day = 0; day < days; ++day) {
    const int64_t day_start = kT0 + day * kDay;
    Batch batch;
    for (int i = 0; i < instruments; ++i) {
      Device* d = &devices[static_cast<size_t>(i)];
      const DayPlan plan = PlanDay(&g, d->record.device_id, day_start, day);
      for (const Booking& b : plan.bookings) bookings.push_back({"bench", 0, false, b, {}});
      std::vector<v1::Event> day_events = DayEvents(d, plan, day_start);
      events += day_events.size();
      if (i == 0 && day == days - 1) {
        // The agent of inst-0 lost its link at 13:00 on the last day; the rest comes late.
        size_t cut = 0;
        while (cut < day_events.size() &&
               day_events[cut].at().wall_unix_ms() <= day_start + 13 * 60 * kMin)
          ++cut;
        late.assign(day_events.begin() + static_cast<long>(cut), day_events.end());
        day_events.resize(cut);
        d->seq -= late.size();  // the hub holds a contiguous prefix up to the cut
      }
      AddToBatch(d, day_events, &batch);
      if (i == 0 && day == days - 1) d->seq += late.size();
    }
    Check(store->CommitBatch(batch), "commit telemetry");
  }
  std::printf("telemetry: %zu events stored in %.1f s\n", events, Seconds(t));

  t = Clock::now();
  Result<ImportReport> imported = ImportBookings(store, bookings, options.defaults, 0);
  Check(imported.status(), "import bookings");
  std::printf("bookings: %zu imported in one transaction in %.1f s\n", imported->inserted,
              Seconds(t));

  const int64_t now = kT0 + days * kDay + 30 * kMin;  // the last day settled
  BillingDriver driver(store, options);
  t = Clock::now();
  Result<PassReport> pass = driver.RunOnce(now);
  Check(pass.status(), "first pass");
  const double first = Seconds(t);
  std::printf(
      "first pass: %zu sessions and %zu instrument-days verified in %.2f s (%.0f sessions/s; "
      "%.2f s finding, reading and measuring, %.2f s committing); %zu ledger entries appended\n",
      pass->sessions_measured, pass->days_measured, first,
      static_cast<double>(pass->sessions_measured) / first,
      static_cast<double>(pass->measure_us) / 1e6, static_cast<double>(pass->commit_us) / 1e6,
      pass->entries_appended);

  // Late events: inst-0's backlog arrives, and one pass re-verifies what it touched.
  Device* d0 = &devices[0];
  Batch backlog;
  AddToBatch(d0, late, &backlog);
  Check(store->CommitBatch(backlog), "commit backlog");
  t = Clock::now();
  pass = driver.RunOnce(now + kMin);
  Check(pass.status(), "late pass");
  std::printf(
      "late events: a pass re-verified %zu sessions and %zu days and appended %zu amendments in "
      "%.2f ms: %.2f ms finding, reading and measuring, %.2f ms committing "
      "(synchronous=FULL)\n",
      pass->sessions_measured, pass->days_measured, pass->amendments, Seconds(t) * 1e3,
      static_cast<double>(pass->measure_us) / 1e3, static_cast<double>(pass->commit_us) / 1e3);

  // The verification of one session alone (inputs in memory): what a re-verification costs
  // besides reading and the durable commit.
  Result<std::vector<Booking>> one = store->ListBookings({"inst-0", now - kDay, now});
  Check(one.status(), "read booking");
  const Booking& b = one->back();
  Result<std::vector<DeviceInterval>> ivs =
      store->ReadIntervals("inst-0", b.start_unix_ms - kDay, b.end_unix_ms + kDay);
  Check(ivs.status(), "read intervals");
  Telemetry telemetry;
  for (const DeviceInterval& di : *ivs) telemetry.intervals.push_back(di.interval);
  const Span window = AttributionWindows({{b.start_unix_ms, b.end_unix_ms, 600'000, 600'000}})[0];
  const Instrument instrument = registry[0];
  constexpr int kRounds = 10'000;
  t = Clock::now();
  size_t bytes = 0;
  for (int i = 0; i < kRounds; ++i) {
    const SessionMeasure m = MeasureSession(b, window, {}, telemetry, options.verify);
    const Charges c = ComputeCharges(b.rules, b.voucher, m.booked_ms, m.in_use_ms);
    bytes += SessionResultJson(b, instrument, m, c).size();
  }
  std::printf("one session measured, priced and encoded: %.1f us (%zu bytes of result)\n",
              Seconds(t) * 1e6 / kRounds, bytes / kRounds);

  t = Clock::now();
  Result<LedgerCheck> check = VerifyLedger(store);
  Check(check.status(), "ledger verify");
  std::printf("ledger verify: %lld entries checked in %.2f s, %s\n",
              static_cast<long long>(check->entries), Seconds(t),
              check->broken.has_value() ? "BROKEN" : "intact");
  return 0;
}

}  // namespace instrumeter::hub

int main(int argc, char** argv) { return instrumeter::hub::Main(argc, argv); }
