// Signed telemetry at the ingest core (protocol/README.md, "Signing"; docs/security.md): keys,
// signatures, the chain, what becomes billable, and every way a forgery is refused. Real SQLite
// stores, a FakeClock and a downlink that records acks.
#include <gtest/gtest.h>

#include "common/sqlite_db.h"
#include "hub/ingestor.h"
#include "hub/sqlite_store.h"
#include "hub_testing/ack_recorder.h"
#include "hub_testing/chained_envelopes.h"
#include "hub_testing/events.h"
#include "protocol/chain.h"
#include "protocol/topics.h"
#include "test_support/process.h"

namespace instrumeter::hub {
namespace {

using testing::AckRecorder;
using testing::ChainedEnvelopes;
using testing::NewSigningKey;
using testing::TypicalRun;

constexpr char kDevice[] = "nmr-1";
constexpr char kOther[] = "nmr-2";

std::vector<v1::Event> Slice(uint64_t first, uint64_t last) {
  const std::vector<v1::Event> run = TypicalRun();
  return {run.begin() + static_cast<long>(first - 1), run.begin() + static_cast<long>(last)};
}

class IngestSecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = OpenStore(dir_.File("hub.db"));
    ASSERT_TRUE(store_
                    ->PutInstruments(
                        {{kDevice, "NMR", "", "", "", "", 0}, {kOther, "MS", "", "", "", "", 0}}, 0)
                    .ok());
  }

  static std::unique_ptr<Store> OpenStore(const std::string& path) {
    Result<std::unique_ptr<Store>> store = OpenSqliteStore({.path = path});
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return std::move(*store);
  }

  void Enroll(const std::string& device, const protocol::SigningKey& key, Store* store = nullptr) {
    DeviceKey k{.device_id = device, .public_key = key.public_key(), .cert_serial = "01"};
    ASSERT_TRUE((store != nullptr ? store : store_.get())->AddDeviceKey(&k).ok());
  }

  std::unique_ptr<Ingestor> Make(Store* store = nullptr) {
    Result<std::unique_ptr<Ingestor>> ingestor = Ingestor::Create(
        store != nullptr ? store : store_.get(), &downlink_, &clock_, &metrics_, options_);
    EXPECT_TRUE(ingestor.ok()) << ingestor.status().ToString();
    return ingestor.ok() ? std::move(*ingestor) : nullptr;
  }

  // Publishes on the device's up topic and commits.
  void Deliver(Ingestor* ingestor, const std::string& envelope,
               const std::string& topic_device = kDevice) {
    ingestor->OnMessage(protocol::Topic(topic_device, protocol::Channel::kUp), envelope,
                        clock_.WallUnixMs());
    clock_.Advance(options_.max_batch_delay_ms);
    ingestor->Poll();
  }
  // Lets the key reload interval pass, so that the CLI's changes take effect.
  void ReloadKeys(Ingestor* ingestor) {
    clock_.Advance(options_.key_reload_ms);
    ingestor->Poll();
  }

  Billability Billing(const std::string& device = kDevice, Store* store = nullptr) {
    Result<std::vector<Billability>> rows =
        (store != nullptr ? store : store_.get())->ReadBillability(device);
    EXPECT_TRUE(rows.ok());
    for (const Billability& b : *rows)
      if (b.device_id == device) return b;
    return {};
  }
  size_t Stored(const std::string& device = kDevice, Store* store = nullptr) {
    return (store != nullptr ? store : store_.get())->ReadEvents(device, 1, 1000)->size();
  }
  uint64_t Rejected() const {
    const HubMetrics::Rejected& r = metrics_.rejected;
    return r.malformed + r.unknown_device + r.topic_mismatch + r.conflicting_duplicate +
           r.bad_signature + r.revoked + r.unenrolled + r.broken_chain;
  }

  instrumeter::testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  FakeClock clock_{testing::kMono, testing::kWall + 60'000};
  AckRecorder downlink_;
  HubMetrics metrics_;
  IngestOptions options_;
  protocol::SigningKey key_ = NewSigningKey();
};

TEST_F(IngestSecurityTest, DevelopmentModeStoresUnsignedTelemetryButBillsNothing) {
  auto ingestor = Make();
  EXPECT_FALSE(ingestor->SignaturesRequired()) << "no device has a key";
  ChainedEnvelopes agent(kDevice, nullptr);
  Deliver(ingestor.get(), agent.Envelope(Slice(1, 12), false));
  EXPECT_EQ(Stored(), 12u);
  EXPECT_EQ(downlink_.acks[kDevice], 12u);
  const Billability b = Billing();
  EXPECT_FALSE(b.enrolled);
  EXPECT_EQ(b.contiguous_seq, 12u);
  EXPECT_EQ(b.billable_through, 0u);
}

TEST_F(IngestSecurityTest, OnceAnyDeviceIsEnrolledDevicesWithoutAKeyAreRefused) {
  Enroll(kDevice, key_);
  auto ingestor = Make();
  EXPECT_TRUE(ingestor->SignaturesRequired());
  ChainedEnvelopes other(kOther, nullptr);
  Deliver(ingestor.get(), other.Envelope(Slice(1, 3), false), kOther);
  EXPECT_EQ(metrics_.rejected.unenrolled, 1u);
  EXPECT_EQ(Stored(kOther), 0u);
  EXPECT_EQ(downlink_.acks.count(kOther), 0u) << "refused without an ack";

  options_.require_signatures = false;  // explicitly development mode, beside enrolled devices
  metrics_.rejected.unenrolled = 0;
  auto lenient = Make();
  ChainedEnvelopes again(kOther, nullptr);
  Deliver(lenient.get(), again.Envelope(Slice(1, 3), false), kOther);
  EXPECT_EQ(Stored(kOther), 3u);
  EXPECT_EQ(Billing(kOther).billable_through, 0u);
}

TEST_F(IngestSecurityTest, SignaturesMakeEventsBillableUpToTheirSequence) {
  Enroll(kDevice, key_);
  auto ingestor = Make();
  ChainedEnvelopes agent(kDevice, &key_);
  Deliver(ingestor.get(), agent.Envelope(Slice(1, 3), true));
  EXPECT_EQ(Billing().signed_through, 3u);
  Deliver(ingestor.get(), agent.Envelope(Slice(4, 6), false));
  EXPECT_EQ(downlink_.acks[kDevice], 6u) << "unsigned envelopes are stored and acked";
  EXPECT_EQ(Billing().signed_through, 3u) << "but not billable until a signature covers them";
  Deliver(ingestor.get(), agent.Envelope(Slice(7, 12), true));
  const Billability b = Billing();
  EXPECT_TRUE(b.enrolled);
  EXPECT_EQ(b.signed_through, 12u);
  EXPECT_EQ(b.billable_through, 12u);
  EXPECT_EQ(metrics_.signatures_verified, 2u);
  EXPECT_EQ(Rejected(), 0u);
  Interval iv;
  iv.start_seq = 3;
  iv.end_seq = 9;
  EXPECT_TRUE(IsBillable(b, iv));
  iv.end_seq = 13;
  EXPECT_FALSE(IsBillable(b, iv));

  // A third party (a voucher agency) re-checks the record from what the hub stores, trusting
  // only the device's public key: the events' exact bytes and the device's latest signature.
  Result<std::vector<LoadedDevice>> devices = store_->LoadDevices();
  ASSERT_TRUE(devices.ok());
  ASSERT_EQ(devices->size(), 1u);
  v1::Signature latest;
  ASSERT_TRUE(latest.ParseFromString(devices->front().record.chain.signature));
  EXPECT_EQ(latest.through_sequence(), 12u);
  std::string link = protocol::ChainGenesis(kDevice);
  Result<std::vector<EventRow>> rows = store_->ReadEvents(kDevice, 1, latest.through_sequence());
  ASSERT_TRUE(rows.ok());
  for (const EventRow& row : *rows) link = protocol::ChainNext(link, row.body);
  EXPECT_EQ(link, latest.chain_head());
  Result<protocol::VerifyingKey> key = protocol::VerifyingKey::FromRaw(key_.public_key());
  ASSERT_TRUE(key.ok());
  EXPECT_TRUE(key->VerifyHead(kDevice, latest).ok());
}

TEST_F(IngestSecurityTest, ASignatureAheadOfAGapWaitsForTheGapToFill) {
  Enroll(kDevice, key_);
  auto ingestor = Make();
  ChainedEnvelopes agent(kDevice, &key_);
  const std::string first = agent.Envelope(Slice(1, 3), false);
  const std::string second = agent.Envelope(Slice(4, 6), true);
  Deliver(ingestor.get(), second);
  EXPECT_EQ(Billing().signed_through, 0u) << "held: events 1..3 are missing";
  Deliver(ingestor.get(), first);
  EXPECT_EQ(Billing().signed_through, 6u);
  EXPECT_EQ(Billing().contiguous_seq, 6u);
}

TEST_F(IngestSecurityTest, AnotherKeysSignatureIsRejectedWhole) {
  Enroll(kDevice, key_);
  auto ingestor = Make();
  const protocol::SigningKey thief = NewSigningKey();
  ChainedEnvelopes forger(kDevice, &thief);
  Deliver(ingestor.get(), forger.Envelope(Slice(1, 3), true));
  EXPECT_EQ(metrics_.rejected.bad_signature, 1u);
  EXPECT_EQ(Stored(), 0u) << "none of its events is stored";
  EXPECT_EQ(downlink_.acks.count(kDevice), 0u);
  // The real agent's events still win: the forgery never claimed the sequences.
  ChainedEnvelopes agent(kDevice, &key_);
  Deliver(ingestor.get(), agent.Envelope(Slice(1, 3), true));
  EXPECT_EQ(Billing().signed_through, 3u);
  EXPECT_EQ(metrics_.rejected.conflicting_duplicate, 0u);
}

TEST_F(IngestSecurityTest, AReplayChangesNothing) {
  Enroll(kDevice, key_);
  Enroll(kOther, NewSigningKey());
  auto ingestor = Make();
  ChainedEnvelopes agent(kDevice, &key_);
  const std::string captured = agent.Envelope(Slice(1, 6), true);
  Deliver(ingestor.get(), captured);
  const Billability before = Billing();
  const uint64_t stored = metrics_.events_stored;
  for (int i = 0; i < 3; ++i) Deliver(ingestor.get(), captured);
  EXPECT_EQ(Billing().signed_through, before.signed_through);
  EXPECT_EQ(metrics_.events_stored, stored);
  EXPECT_EQ(metrics_.duplicates, 18u);
  EXPECT_EQ(Rejected(), 0u) << "a replay of the device's own bytes is a harmless duplicate";
  // Under another device's topic it is refused: the envelope names its device.
  Deliver(ingestor.get(), captured, kOther);
  EXPECT_EQ(metrics_.rejected.topic_mismatch, 1u);
  EXPECT_EQ(Stored(kOther), 0u);
}

// Every single-bit flip of a signed envelope is either refused or changes nothing that is stored:
// no flipped event byte ever reaches the store.
TEST_F(IngestSecurityTest, ABitFlippedEnvelopeNeverStoresOtherBytes) {
  ChainedEnvelopes agent(kDevice, &key_);
  const std::string original = agent.Envelope(Slice(1, 3), true);
  std::vector<std::string> original_bytes;
  for (const v1::Event& e : Slice(1, 3)) original_bytes.push_back(e.SerializeAsString());
  // A refused flip leaves store and ingestor untouched, so they serve the next flip; one that
  // was stored needs a fresh pair.
  std::unique_ptr<instrumeter::testing::TempDir> dir;
  std::unique_ptr<Store> store;
  std::unique_ptr<Ingestor> ingestor;
  size_t refused = 0;
  for (size_t i = 0; i < original.size(); ++i) {
    if (ingestor == nullptr) {
      dir = std::make_unique<instrumeter::testing::TempDir>();
      store = OpenStore(dir->File("hub.db"));
      ASSERT_TRUE(store->PutInstruments({{kDevice, "NMR", "", "", "", "", 0}}, 0).ok());
      Enroll(kDevice, key_, store.get());
      ingestor = Make(store.get());
    }
    const uint64_t rejected_before = Rejected();
    std::string flipped = original;
    flipped[i] = static_cast<char>(flipped[i] ^ (1 << (i % 8)));
    Deliver(ingestor.get(), flipped);
    Result<std::vector<EventRow>> rows = store->ReadEvents(kDevice, 1, 100);
    ASSERT_TRUE(rows.ok());
    if (rows->empty()) {
      EXPECT_GT(Rejected(), rejected_before) << "byte " << i << ": dropped without being counted";
      ++refused;
      continue;
    }
    ASSERT_EQ(rows->size(), 3u) << "byte " << i;
    for (size_t e = 0; e < 3; ++e)
      EXPECT_EQ((*rows)[e].body, original_bytes[e]) << "byte " << i << " event " << e + 1;
    ingestor.reset();
  }
  // Only envelope fields outside the signature (its boot id, ...) can flip harmlessly.
  EXPECT_GT(refused, original.size() * 3 / 4);
}

TEST_F(IngestSecurityTest, ABrokenChainIsAlarmedAndBillsNothingAfterItUntilReset) {
  Enroll(kDevice, key_);
  auto ingestor = Make();
  ChainedEnvelopes agent(kDevice, &key_);
  Deliver(ingestor.get(), agent.Envelope(Slice(1, 3), true));
  // Someone who can publish on the device's topic, but has not its key, gets an unsigned event
  // 4 in first.
  std::vector<v1::Event> forged = Slice(4, 4);
  forged[0].mutable_session_mark()->set_order_id("forged-order");
  ChainedEnvelopes forger(kDevice, nullptr);
  forger.Envelope(Slice(1, 3), false);
  Deliver(ingestor.get(), forger.Envelope(forged, false));
  EXPECT_EQ(Stored(), 4u);
  Deliver(ingestor.get(), agent.Envelope(Slice(4, 6), true));
  EXPECT_EQ(metrics_.rejected.conflicting_duplicate, 1u) << "the real event 4";
  EXPECT_EQ(metrics_.rejected.broken_chain, 1u);
  Billability b = Billing();
  EXPECT_EQ(b.chain_broken_from, 4u);
  EXPECT_EQ(b.billable_through, 3u);
  Deliver(ingestor.get(), agent.Envelope(Slice(7, 9), true));
  EXPECT_EQ(Stored(), 9u) << "telemetry keeps flowing while the chain is broken";
  EXPECT_EQ(Billing().billable_through, 3u) << "nothing after the break is billable";

  // The operator investigated and resets: the chain re-anchors at the device's signed head (9).
  ASSERT_TRUE(store_->RequestChainReset(kDevice, clock_.WallUnixMs()).ok());
  ReloadKeys(ingestor.get());
  clock_.Advance(options_.max_batch_delay_ms);
  ingestor->Poll();
  b = Billing();
  EXPECT_EQ(b.chain_broken_from, 0u);
  ASSERT_EQ(b.unproven.size(), 1u);
  EXPECT_EQ(b.unproven[0], (SeqRange{4, 9}));
  const std::string last = agent.Envelope(Slice(10, 12), true);
  Deliver(ingestor.get(), last);
  b = Billing();
  EXPECT_EQ(b.billable_through, 12u) << "the chain continues from the device's own head";
  Interval before_break{.start_seq = 1, .end_seq = 3};
  Interval across{.start_seq = 3, .end_seq = 5};
  Interval after{.start_seq = 10, .end_seq = 12};
  EXPECT_TRUE(IsBillable(b, before_break));
  EXPECT_FALSE(IsBillable(b, across));
  EXPECT_TRUE(IsBillable(b, after));
  // A restarted hub keeps the re-anchored chain: the device's resend is a plain duplicate.
  ingestor.reset();
  auto restarted = Make();
  Deliver(restarted.get(), last);
  EXPECT_EQ(Billing().billable_through, 12u);
  EXPECT_EQ(metrics_.rejected.broken_chain, 1u);
  EXPECT_EQ(metrics_.rejected.bad_signature, 0u);
}

TEST_F(IngestSecurityTest, ARevokedDeviceIsRefusedAndBillsNothingSignedAfterRevocation) {
  Enroll(kDevice, key_);
  auto ingestor = Make();
  ChainedEnvelopes agent(kDevice, &key_);
  Deliver(ingestor.get(), agent.Envelope(Slice(1, 3), true));
  Deliver(ingestor.get(), agent.Envelope(Slice(4, 5), false));
  ASSERT_TRUE(store_->RevokeDeviceKey(kDevice, clock_.WallUnixMs()).ok());
  // Before the hub reloads its keys a signature still verifies, but revocation caps billing.
  Deliver(ingestor.get(), agent.Envelope(Slice(6, 6), true));
  EXPECT_EQ(Billing().signed_through, 6u);
  EXPECT_EQ(Billing().billable_through, 3u);
  EXPECT_TRUE(Billing().revoked);
  ReloadKeys(ingestor.get());
  Deliver(ingestor.get(), agent.Envelope(Slice(7, 9), true));
  EXPECT_EQ(metrics_.rejected.revoked, 1u);
  EXPECT_EQ(Stored(), 6u);
  EXPECT_EQ(downlink_.acks[kDevice], 6u) << "nothing acked after the revocation";

  // Re-enrolled with a new key, the device's chain continues and is billable again.
  const protocol::SigningKey renewed = NewSigningKey();
  Enroll(kDevice, renewed);
  ReloadKeys(ingestor.get());
  ChainedEnvelopes same_chain(kDevice, &renewed);
  same_chain.Envelope(Slice(1, 6), false);
  Deliver(ingestor.get(), same_chain.Envelope(Slice(7, 9), true));
  EXPECT_FALSE(Billing().revoked);
  EXPECT_EQ(Billing().billable_through, 9u);
  Deliver(ingestor.get(), agent.Envelope(Slice(10, 10), true));
  EXPECT_EQ(metrics_.rejected.bad_signature, 1u) << "the revoked key signs nothing any more";
}

TEST_F(IngestSecurityTest, AbsurdTimesAreMalformedWhileAWrongClockIsKept) {
  Enroll(kDevice, key_);
  auto ingestor = Make();
  ChainedEnvelopes agent(kDevice, &key_);
  std::vector<v1::Event> events = Slice(1, 2);
  events[0].mutable_at()->set_wall_unix_ms(1'500'000'000'000);  // 2017
  ChainedEnvelopes early(kDevice, &key_);
  Deliver(ingestor.get(), early.Envelope(events, true));
  EXPECT_EQ(metrics_.rejected.malformed, 1u);
  EXPECT_EQ(Stored(), 0u);
  // Stepped to 2038: kept (no hours are lost), its skew flagged.
  events = Slice(1, 2);
  for (v1::Event& e : events) e.mutable_at()->set_wall_unix_ms(2'147'483'647'000);
  Deliver(ingestor.get(), agent.Envelope(events, true));
  EXPECT_EQ(Stored(), 2u);
  EXPECT_EQ(Billing().signed_through, 2u);
  EXPECT_EQ(metrics_.clock_skew_heartbeats, 1u) << "the heartbeat (event 2)";
}

TEST_F(IngestSecurityTest, AStoreFromBeforeSigningGetsItsChainComputedAtStart) {
  {
    auto ingestor = Make();
    ChainedEnvelopes agent(kDevice, nullptr);
    Deliver(ingestor.get(), agent.Envelope(Slice(1, 6), false));
  }
  {
    // What a store migrated from schema 1 looks like: events without links.
    Result<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(dir_.File("hub.db"), {});
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(
        (*db)->Exec("UPDATE events SET link = NULL; UPDATE devices SET chain_link = NULL").ok());
  }
  Enroll(kDevice, key_);
  auto ingestor = Make();
  ChainedEnvelopes agent(kDevice, &key_);
  agent.Envelope(Slice(1, 6), false);
  Deliver(ingestor.get(), agent.Envelope(Slice(7, 8), true));
  EXPECT_EQ(Billing().signed_through, 8u);
  Result<std::vector<EventRow>> rows = store_->ReadEvents(kDevice, 1, 8);
  ASSERT_TRUE(rows.ok());
  for (const EventRow& row : *rows) EXPECT_EQ(row.link.size(), 32u) << row.seq;
}

}  // namespace
}  // namespace instrumeter::hub
