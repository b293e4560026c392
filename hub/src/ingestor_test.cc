#include "hub/ingestor.h"

#include <gtest/gtest.h>

#include <limits>

#include "hub/sqlite_store.h"
#include "hub_testing/events.h"
#include "protocol/chain.h"
#include "protocol/topics.h"
#include "test_support/process.h"

namespace instrumeter::hub {
namespace {

using testing::At;
using testing::Beat;
using testing::EnvelopeOf;
using testing::kBoot1;
using testing::kMono;
using testing::kWall;
using testing::TypicalRun;

constexpr char kDevice[] = "nmr-1";
constexpr v1::InstrumentState kIdle = v1::INSTRUMENT_STATE_IDLE;
constexpr v1::InstrumentState kInUse = v1::INSTRUMENT_STATE_IN_USE;

class FakeDownlink : public Downlink {
 public:
  struct Resend {
    std::string device_id;
    uint64_t from;
    uint64_t to;
    friend bool operator==(const Resend&, const Resend&) = default;
  };
  Status SendAck(const std::string& device_id, uint64_t seq) override {
    acks.emplace_back(device_id, seq);
    return Status::Ok();
  }
  Status SendResend(const std::string& device_id, uint64_t from, uint64_t to) override {
    resends.push_back({device_id, from, to});
    return Status::Ok();
  }
  std::vector<std::pair<std::string, uint64_t>> acks;
  std::vector<Resend> resends;
};

// A store whose commits fail while `fail` is set, as a full disk makes them; it counts how often
// the device keys were listed.
class FailingStore : public Store {
 public:
  explicit FailingStore(Store* inner) : inner_(inner) {}
  bool fail = false;
  int key_lists = 0;

  Status PutInstruments(const std::vector<Instrument>& in, int64_t now) override {
    return inner_->PutInstruments(in, now);
  }
  Status AddInstrument(const Instrument& in, int64_t now) override {
    return inner_->AddInstrument(in, now);
  }
  Result<std::vector<Instrument>> ListInstruments() override { return inner_->ListInstruments(); }
  Result<bool> InstrumentExists(const std::string& id) override {
    return inner_->InstrumentExists(id);
  }
  Result<std::vector<LoadedDevice>> LoadDevices() override { return inner_->LoadDevices(); }
  Result<std::vector<EventRow>> ReadEvents(const std::string& id, uint64_t from,
                                           uint64_t to) override {
    return inner_->ReadEvents(id, from, to);
  }
  Status CommitBatch(const Batch& batch) override {
    if (fail) return Status::ResourceExhausted("database hub.db: database or disk is full");
    return inner_->CommitBatch(batch);
  }
  Result<StoreSpace> Space() override { return inner_->Space(); }
  Result<std::vector<std::string>> ListArchiveCandidates(const ArchiveOptions& options) override {
    return inner_->ListArchiveCandidates(options);
  }
  Result<ArchiveProgress> ArchiveEvents(const std::string& id,
                                        const ArchiveOptions& options) override {
    return inner_->ArchiveEvents(id, options);
  }
  Result<std::vector<DeviceInterval>> ReadIntervals(const std::string& id, int64_t from,
                                                    int64_t to) override {
    return inner_->ReadIntervals(id, from, to);
  }
  Result<std::vector<DurationSum>> SumDurations() override { return inner_->SumDurations(); }
  Status PutInstrumentsAndRules(const std::vector<Instrument>& in,
                                const std::vector<RuleOverridesUpdate>& rules,
                                int64_t now) override {
    return inner_->PutInstrumentsAndRules(in, rules, now);
  }
  Result<std::vector<InstrumentRuleOverrides>> ListRuleOverrides() override {
    return inner_->ListRuleOverrides();
  }
  Result<PutBookingsOutcome> PutBookings(const std::vector<Booking>& b, int64_t now) override {
    return inner_->PutBookings(b, now);
  }
  Result<std::vector<Booking>> ListBookings(const BookingFilter& f) override {
    return inner_->ListBookings(f);
  }
  Result<std::optional<Booking>> GetBooking(const std::string& order_id) override {
    return inner_->GetBooking(order_id);
  }
  Result<int64_t> BookingsVersion() override { return inner_->BookingsVersion(); }
  Result<std::vector<Booking>> ListUnverifiedBookings(int64_t settled) override {
    return inner_->ListUnverifiedBookings(settled);
  }
  Result<std::vector<DirtyRange>> ReadDirtyRanges() override { return inner_->ReadDirtyRanges(); }
  Result<std::vector<HourFacts>> ReadHourFacts(const std::string& id, int64_t from,
                                               int64_t to) override {
    return inner_->ReadHourFacts(id, from, to);
  }
  Result<std::vector<MarkRecord>> ReadSessionMarks(const std::string& id, int64_t from,
                                                   int64_t to) override {
    return inner_->ReadSessionMarks(id, from, to);
  }
  Result<std::vector<UnbookedProgress>> ReadUnbookedProgress(const std::string& id) override {
    return inner_->ReadUnbookedProgress(id);
  }
  Result<std::optional<Instrument>> GetInstrument(const std::string& id) override {
    return inner_->GetInstrument(id);
  }
  Status InLedgerTransaction(const std::function<Status(LedgerTxn*)>& body) override {
    return inner_->InLedgerTransaction(body);
  }
  Result<std::vector<LedgerEntry>> ReadLedger(int64_t after, int64_t limit) override {
    return inner_->ReadLedger(after, limit);
  }
  Result<LedgerHead> ReadLedgerHead() override { return inner_->ReadLedgerHead(); }
  Result<std::vector<LedgerEntry>> ReadLatestLedgerEntries(int64_t from, int64_t to) override {
    return inner_->ReadLatestLedgerEntries(from, to);
  }
  Status AddDeviceKey(DeviceKey* key) override { return inner_->AddDeviceKey(key); }
  Result<std::vector<DeviceKey>> ListDeviceKeys() override {
    ++key_lists;
    return inner_->ListDeviceKeys();
  }
  Result<int64_t> DeviceKeysVersion() override { return inner_->DeviceKeysVersion(); }
  Status RevokeDeviceKey(const std::string& id, int64_t now) override {
    return inner_->RevokeDeviceKey(id, now);
  }
  Status RequestChainReset(const std::string& id, int64_t now) override {
    return inner_->RequestChainReset(id, now);
  }
  Result<std::vector<Billability>> ReadBillability(const std::string& id) override {
    return inner_->ReadBillability(id);
  }
  Status AddApiToken(const ApiToken& token) override { return inner_->AddApiToken(token); }
  Result<std::vector<ApiToken>> ListApiTokens() override { return inner_->ListApiTokens(); }
  Status RevokeApiToken(const std::string& name, int64_t now) override {
    return inner_->RevokeApiToken(name, now);
  }
  Result<std::optional<std::string>> FindApiToken(const std::string& sha256) override {
    return inner_->FindApiToken(sha256);
  }
  Result<bool> HasApiTokens() override { return inner_->HasApiTokens(); }
  Result<bool> AddShareLink(const ShareLink& link, bool replace) override {
    return inner_->AddShareLink(link, replace);
  }
  Result<std::optional<ShareLink>> FindShareLink(const std::string& sha256) override {
    return inner_->FindShareLink(sha256);
  }
  Result<bool> RevokeShareLink(const std::string& order_id, int64_t now_unix_ms) override {
    return inner_->RevokeShareLink(order_id, now_unix_ms);
  }

 private:
  Store* inner_;
};

class IngestorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = OpenStore("hub.db");
    ASSERT_TRUE(store_->PutInstruments({{kDevice, "NMR", "", "", "", "", 0}}, 0).ok());
  }

  std::unique_ptr<Store> OpenStore(const std::string& name) {
    Result<std::unique_ptr<Store>> store = OpenSqliteStore({.path = dir_.File(name)});
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return std::move(*store);
  }

  std::unique_ptr<Ingestor> MakeIngestor(Store* store, FakeDownlink* downlink = nullptr) {
    Result<std::unique_ptr<Ingestor>> ingestor = Ingestor::Create(
        store, downlink != nullptr ? downlink : &downlink_, &clock_, &metrics_, options_);
    EXPECT_TRUE(ingestor.ok()) << ingestor.status().ToString();
    return std::move(*ingestor);
  }

  void Send(Ingestor* ingestor, const std::vector<v1::Event>& events,
            const std::string& device = kDevice) {
    ingestor->OnMessage(protocol::Topic(device, protocol::Channel::kUp), EnvelopeOf(device, events),
                        clock_.WallUnixMs());
  }

  // Lets the batch delay pass and commits.
  void CommitDue(Ingestor* ingestor) {
    clock_.Advance(options_.max_batch_delay_ms);
    ingestor->Poll();
  }

  uint64_t LastAck() const { return downlink_.acks.empty() ? 0 : downlink_.acks.back().second; }

  static std::vector<Interval> AllIntervals(Store* store) {
    Result<std::vector<DeviceInterval>> rows = store->ReadIntervals(
        "", std::numeric_limits<int64_t>::min() / 4, std::numeric_limits<int64_t>::max() / 4);
    EXPECT_TRUE(rows.ok());
    std::vector<Interval> out;
    for (const DeviceInterval& r : *rows) out.push_back(r.interval);
    return out;
  }

  static DeviceRecord Record(Store* store, const std::string& device = kDevice) {
    Result<std::vector<LoadedDevice>> devices = store->LoadDevices();
    EXPECT_TRUE(devices.ok());
    for (const LoadedDevice& d : *devices)
      if (d.record.device_id == device) return d.record;
    ADD_FAILURE() << "no device row for " << device;
    return {};
  }

  static size_t StoredEvents(Store* store, const std::string& device = kDevice) {
    return store->ReadEvents(device, 1, 1'000'000)->size();
  }

  instrumeter::testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  FakeClock clock_{kMono, kWall};
  FakeDownlink downlink_;
  HubMetrics metrics_;
  IngestOptions options_;
};

std::vector<v1::Event> Slice(const std::vector<v1::Event>& events, uint64_t first, uint64_t last) {
  return {events.begin() + static_cast<long>(first - 1), events.begin() + static_cast<long>(last)};
}

TEST_F(IngestorTest, AcksTheContiguousSequenceOnlyAfterTheBatchCommits) {
  auto ingestor = MakeIngestor(store_.get());
  Send(ingestor.get(), Slice(TypicalRun(), 1, 3));
  EXPECT_EQ(ingestor->MsUntilDue(), options_.max_batch_delay_ms);
  ingestor->Poll();
  EXPECT_TRUE(downlink_.acks.empty()) << "the batch delay has not passed";
  EXPECT_EQ(StoredEvents(store_.get()), 0u);
  CommitDue(ingestor.get());
  EXPECT_EQ(StoredEvents(store_.get()), 3u);
  ASSERT_EQ(downlink_.acks.size(), 1u);
  EXPECT_EQ(downlink_.acks[0], std::make_pair(std::string(kDevice), uint64_t{3}));
  EXPECT_EQ(metrics_.events_stored, 3u);
  EXPECT_EQ(metrics_.batches, 1u);
  EXPECT_EQ(ingestor->MsUntilDue(), -1);
}

TEST_F(IngestorTest, AFullBatchCommitsAtOnce) {
  options_.max_batch_events = 3;
  auto ingestor = MakeIngestor(store_.get());
  Send(ingestor.get(), Slice(TypicalRun(), 1, 2));
  EXPECT_TRUE(downlink_.acks.empty());
  Send(ingestor.get(), Slice(TypicalRun(), 3, 3));
  EXPECT_EQ(LastAck(), 3u) << "no delay once max_batch_events wait";
}

TEST_F(IngestorTest, ResentEventsAreStoredOnceAndAckedAgain) {
  auto ingestor = MakeIngestor(store_.get());
  const auto events = Slice(TypicalRun(), 1, 3);
  Send(ingestor.get(), events);
  Send(ingestor.get(), events);  // within the batch
  CommitDue(ingestor.get());
  Send(ingestor.get(), events);  // after the commit: compared with the stored bytes
  CommitDue(ingestor.get());
  EXPECT_EQ(StoredEvents(store_.get()), 3u);
  EXPECT_EQ(Record(store_.get()).events_stored, 3u);
  EXPECT_EQ(metrics_.duplicates, 6u);
  EXPECT_EQ(metrics_.rejected.conflicting_duplicate, 0u);
  ASSERT_EQ(downlink_.acks.size(), 2u) << "a pure-duplicate delivery is acked too";
  EXPECT_EQ(downlink_.acks[1].second, 3u);
}

TEST_F(IngestorTest, ConflictingDuplicateRaisesTheAlarmAndNeverOverwrites) {
  auto ingestor = MakeIngestor(store_.get());
  const auto events = Slice(TypicalRun(), 1, 3);
  Send(ingestor.get(), events);
  CommitDue(ingestor.get());
  const std::string stored_two = (*store_->ReadEvents(kDevice, 2, 2))[0].body;

  // Seq 2 again, claiming more in-use time than was metered.
  const v1::Event forged =
      Beat(2, kInUse, {kBoot1, kMono + 60'000, kWall + 60'000, 60'000, 60'000});
  Send(ingestor.get(), {forged});
  // And a conflict inside one batch: seq 4 twice with different bytes.
  const v1::Event four = Beat(4, kIdle, {kBoot1, kMono + 61'000, kWall + 61'000, 61'000, 0});
  const v1::Event four_forged =
      Beat(4, kInUse, {kBoot1, kMono + 61'000, kWall + 61'000, 61'000, 1});
  Send(ingestor.get(), {four});
  Send(ingestor.get(), {four_forged});
  CommitDue(ingestor.get());

  EXPECT_EQ(metrics_.rejected.conflicting_duplicate, 2u);
  EXPECT_EQ((*store_->ReadEvents(kDevice, 2, 2))[0].body, stored_two);
  EXPECT_EQ((*store_->ReadEvents(kDevice, 4, 4))[0].body, four.SerializeAsString());
  EXPECT_EQ(LastAck(), 4u);
}

TEST_F(IngestorTest, AGapIsRequestedAndFillingItMakesTheAckJump) {
  options_.resend_interval_ms = 5000;
  auto ingestor = MakeIngestor(store_.get());
  const auto run = TypicalRun();
  Send(ingestor.get(), Slice(run, 1, 2));
  Send(ingestor.get(), Slice(run, 5, 6));
  CommitDue(ingestor.get());
  EXPECT_EQ(LastAck(), 2u);
  ASSERT_EQ(downlink_.resends.size(), 1u);
  EXPECT_EQ(downlink_.resends[0], (FakeDownlink::Resend{kDevice, 3, 4}));

  Send(ingestor.get(), Slice(run, 7, 7));
  CommitDue(ingestor.get());
  EXPECT_EQ(downlink_.resends.size(), 1u) << "at most one request per resend interval";
  clock_.Advance(5000);
  Send(ingestor.get(), Slice(run, 8, 8));
  CommitDue(ingestor.get());
  ASSERT_EQ(downlink_.resends.size(), 2u);
  EXPECT_EQ(downlink_.resends[1], (FakeDownlink::Resend{kDevice, 3, 4}));
  EXPECT_EQ(LastAck(), 2u);
  EXPECT_EQ(Record(store_.get()).derivation.last->seq, 2u) << "nothing above the gap derived";

  Send(ingestor.get(), Slice(run, 3, 4));
  CommitDue(ingestor.get());
  EXPECT_EQ(LastAck(), 8u);
  EXPECT_EQ(downlink_.resends.size(), 2u);
  EXPECT_EQ(Record(store_.get()).derivation.last->seq, 8u);
}

// Every key_reload_ms the hub asks whether the keys changed; it reads and parses them again only
// when they did (at 100,000 devices a full reload every 2 s stalled ingest: docs/performance.md).
TEST_F(IngestorTest, DeviceKeysAreReadAgainOnlyWhenTheyChanged) {
  FailingStore counting(store_.get());
  auto ingestor = MakeIngestor(&counting);
  EXPECT_EQ(counting.key_lists, 1) << "read once at start";
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(options_.key_reload_ms);
    ingestor->Poll();
  }
  EXPECT_EQ(counting.key_lists, 1) << "nothing changed";

  auto key = protocol::SigningKey::Generate();
  ASSERT_TRUE(key.ok());
  DeviceKey enrolled{.device_id = kDevice, .public_key = key->public_key(), .cert_serial = "01"};
  ASSERT_TRUE(store_->AddDeviceKey(&enrolled).ok());  // as the CLI does, beside the hub
  clock_.Advance(options_.key_reload_ms);
  ingestor->Poll();
  // (IngestSecurityTest shows each such change taking effect.)
  EXPECT_EQ(counting.key_lists, 2) << "an enrolment is read";

  ASSERT_TRUE(store_->RequestChainReset(kDevice, 1000).ok());
  ASSERT_TRUE(store_->RevokeDeviceKey(kDevice, 2000).ok());
  clock_.Advance(options_.key_reload_ms);
  ingestor->Poll();
  EXPECT_EQ(counting.key_lists, 3) << "a chain reset and a revocation, read together";
}

TEST_F(IngestorTest, NothingIsAckedWhileCommitsFailAndTheBatchCommitsLater) {
  FailingStore failing(store_.get());
  auto ingestor = MakeIngestor(&failing);
  failing.fail = true;
  Send(ingestor.get(), Slice(TypicalRun(), 1, 3));
  CommitDue(ingestor.get());
  EXPECT_TRUE(downlink_.acks.empty());
  EXPECT_FALSE(ingestor->healthy());
  EXPECT_EQ(ingestor->last_error().code(), Status::Code::kResourceExhausted);
  EXPECT_EQ(metrics_.commit_failures, 1u);
  EXPECT_EQ(StoredEvents(store_.get()), 0u);
  EXPECT_GT(ingestor->MsUntilDue(), 0) << "retried with backoff, not in a hot loop";

  // The agent resends meanwhile: a duplicate of the held batch, and one event more.
  Send(ingestor.get(), Slice(TypicalRun(), 1, 4));
  EXPECT_EQ(metrics_.duplicates, 3u);
  clock_.Advance(ingestor->MsUntilDue());
  ingestor->Poll();
  EXPECT_EQ(metrics_.commit_failures, 2u);
  EXPECT_TRUE(downlink_.acks.empty());

  failing.fail = false;
  clock_.Advance(ingestor->MsUntilDue());
  ingestor->Poll();
  EXPECT_TRUE(ingestor->healthy());
  EXPECT_EQ(StoredEvents(store_.get()), 4u);
  ASSERT_EQ(downlink_.acks.size(), 1u);
  EXPECT_EQ(LastAck(), 4u);
  EXPECT_EQ(Record(store_.get()).derivation.last->seq, 3u) << "seq 4 is a session mark";
}

TEST_F(IngestorTest, FailedCommitLeavesMemoryAsItWas) {
  // If the failed attempt had advanced the cursor, the resend below would count as a stored
  // duplicate and be acked without ever being stored.
  FailingStore failing(store_.get());
  auto ingestor = MakeIngestor(&failing);
  failing.fail = true;
  Send(ingestor.get(), Slice(TypicalRun(), 1, 2));
  EXPECT_FALSE(ingestor->Flush().ok());
  failing.fail = false;
  ASSERT_TRUE(ingestor->Flush().ok());
  EXPECT_EQ(StoredEvents(store_.get()), 2u);
  EXPECT_EQ(LastAck(), 2u);
}

TEST_F(IngestorTest, BadMessagesAreCountedAndDroppedWithoutAnAck) {
  auto ingestor = MakeIngestor(store_.get());
  const auto events = Slice(TypicalRun(), 1, 1);
  ingestor->OnMessage("instrumeter/v1/nmr-1/up", "\xff\x01 not protobuf", kWall);
  ingestor->OnMessage("instrumeter/v1/nmr-1/up", EnvelopeOf("tem-2", events), kWall);
  ingestor->OnMessage("instrumeter/v1/tem-2/up", EnvelopeOf("tem-2", events), kWall);
  ingestor->OnMessage("somewhere/else", EnvelopeOf(kDevice, events), kWall);
  ingestor->OnMessage("instrumeter/v1/nmr-1/status", "\xff\xff\xff", kWall);
  CommitDue(ingestor.get());
  EXPECT_EQ(metrics_.rejected.malformed, 3u);
  EXPECT_EQ(metrics_.rejected.topic_mismatch, 1u);
  EXPECT_EQ(metrics_.rejected.unknown_device, 1u);
  EXPECT_TRUE(downlink_.acks.empty());
  EXPECT_EQ(StoredEvents(store_.get(), "tem-2"), 0u);
  EXPECT_EQ(StoredEvents(store_.get()), 0u);

  options_.limits.max_events = 2;
  auto strict = MakeIngestor(store_.get());
  Send(strict.get(), Slice(TypicalRun(), 1, 3));
  EXPECT_EQ(metrics_.rejected.malformed, 4u);
}

TEST_F(IngestorTest, ARegistrationIsPickedUpWithinTheRecheckInterval) {
  auto ingestor = MakeIngestor(store_.get());
  const auto events = Slice(TypicalRun(), 1, 1);
  Send(ingestor.get(), events, "tem-2");
  EXPECT_EQ(metrics_.rejected.unknown_device, 1u);
  ASSERT_TRUE(store_->AddInstrument({"tem-2", "TEM", "", "", "", "", 0}, 0).ok());
  Send(ingestor.get(), events, "tem-2");
  EXPECT_EQ(metrics_.rejected.unknown_device, 2u) << "a miss is cached for a while";
  clock_.Advance(options_.registry_recheck_ms);
  Send(ingestor.get(), events, "tem-2");
  CommitDue(ingestor.get());
  EXPECT_EQ(metrics_.rejected.unknown_device, 2u);
  EXPECT_EQ(StoredEvents(store_.get(), "tem-2"), 1u);
}

TEST_F(IngestorTest, UnregisteredDevicesAreAcceptedWhenConfigured) {
  options_.accept_unregistered_devices = true;
  auto ingestor = MakeIngestor(store_.get());
  Send(ingestor.get(), Slice(TypicalRun(), 1, 2), "tem-2");
  CommitDue(ingestor.get());
  EXPECT_EQ(StoredEvents(store_.get(), "tem-2"), 2u);
  EXPECT_EQ(LastAck(), 2u);
}

TEST_F(IngestorTest, LiveStateFollowsEventsAndStatusMessages) {
  auto ingestor = MakeIngestor(store_.get());
  v1::DeviceStatus online;
  online.set_online(true);
  online.set_since_unix_ms(kWall - 500);
  ingestor->OnMessage("instrumeter/v1/nmr-1/status", online.SerializeAsString(), kWall);
  v1::DeviceStatus stranger;
  stranger.set_online(true);
  ingestor->OnMessage("instrumeter/v1/tem-2/status", stranger.SerializeAsString(), kWall);
  const auto run = TypicalRun();
  Send(ingestor.get(), Slice(run, 1, 5));
  CommitDue(ingestor.get());
  EXPECT_EQ(metrics_.status_ignored, 1u);
  EXPECT_EQ(ingestor->DevicesOnline(), 1u);

  DeviceRecord r = Record(store_.get());
  EXPECT_EQ(r.live.online, true);
  EXPECT_EQ(r.live.status_since_unix_ms, kWall - 500);
  EXPECT_EQ(r.live.state, kInUse);
  EXPECT_EQ(r.live.state_since_wall_ms, kWall + 90'000) << "seq 3 entered IN_USE";
  EXPECT_EQ(r.live.agent_version, "test-1.0");
  EXPECT_EQ(r.live.counters_seq, 5u);
  EXPECT_EQ(r.live.powered_ms, 150'000u);
  EXPECT_EQ(r.live.in_use_ms, 60'000u);
  EXPECT_EQ(r.live.last_seen_unix_ms, kWall);
  EXPECT_EQ(r.events_stored, 5u);

  Send(ingestor.get(), Slice(run, 6, 10));  // ends with a clean stop
  v1::DeviceStatus offline;
  offline.set_online(false);
  ingestor->OnMessage("instrumeter/v1/nmr-1/status", offline.SerializeAsString(), kWall + 999);
  CommitDue(ingestor.get());
  r = Record(store_.get());
  EXPECT_EQ(r.live.state, v1::INSTRUMENT_STATE_UNSPECIFIED) << "nobody observes it now";
  EXPECT_EQ(r.live.state_since_wall_ms, kWall + 460'000);
  EXPECT_EQ(r.live.online, false);
  EXPECT_EQ(r.live.status_since_unix_ms, kWall + 999) << "no since in the message: receive time";
  EXPECT_EQ(ingestor->DevicesOnline(), 0u);
}

class DerivationOrderTest : public IngestorTest {
 protected:
  // In-order ingestion of the typical run, one envelope per event, into its own database.
  std::vector<Interval> InOrder() {
    std::unique_ptr<Store> store = OpenStore("reference.db");
    EXPECT_TRUE(store->PutInstruments({{kDevice, "NMR", "", "", "", "", 0}}, 0).ok());
    FakeDownlink downlink;
    auto ingestor = MakeIngestor(store.get(), &downlink);
    for (const v1::Event& e : TypicalRun()) {
      Send(ingestor.get(), {e});
      CommitDue(ingestor.get());
    }
    return AllIntervals(store.get());
  }
};

TEST_F(DerivationOrderTest, OutOfOrderArrivalDerivesTheSameIntervals) {
  const std::vector<Interval> reference = InOrder();
  ASSERT_EQ(reference.size(), 7u);  // IDLE, IN_USE, gap, IDLE, IN_USE, gap, IDLE
  auto ingestor = MakeIngestor(store_.get());
  const auto run = TypicalRun();
  // Envelopes lost and resent in a scrambled order, some duplicated, each in its own batch.
  for (auto [first, last] : std::vector<std::pair<uint64_t, uint64_t>>{
           {9, 10}, {3, 4}, {11, 12}, {1, 1}, {7, 8}, {3, 5}, {2, 2}, {6, 6}}) {
    Send(ingestor.get(), Slice(run, first, last));
    CommitDue(ingestor.get());
  }
  EXPECT_EQ(LastAck(), 12u);
  EXPECT_EQ(AllIntervals(store_.get()), reference);
}

TEST_F(DerivationOrderTest, ARestartedIngestorContinuesCursorsAndDerivationExactly) {
  const std::vector<Interval> reference = InOrder();
  const auto run = TypicalRun();
  {
    auto first = MakeIngestor(store_.get());
    Send(first.get(), Slice(run, 1, 5));
    Send(first.get(), Slice(run, 9, 10));  // above a gap
    CommitDue(first.get());
    EXPECT_EQ(LastAck(), 5u);
  }
  store_ = OpenStore("hub.db");
  auto second = MakeIngestor(store_.get());
  Send(second.get(), Slice(run, 1, 2));  // already stored: compared, not stored again
  CommitDue(second.get());
  EXPECT_EQ(LastAck(), 5u);
  EXPECT_EQ(metrics_.duplicates, 2u);
  Send(second.get(), Slice(run, 6, 8));
  CommitDue(second.get());
  EXPECT_EQ(LastAck(), 10u) << "the stored range above the gap was rebuilt at start";
  Send(second.get(), Slice(run, 11, 12));
  CommitDue(second.get());
  EXPECT_EQ(LastAck(), 12u);
  EXPECT_EQ(StoredEvents(store_.get()), 12u);
  EXPECT_EQ(AllIntervals(store_.get()), reference);
}

}  // namespace
}  // namespace instrumeter::hub
