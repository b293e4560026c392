#include "outbox.h"

#include <gtest/gtest.h>

#include "protocol/chain.h"
#include "test_support/process.h"

namespace instrumeter::agent {
namespace {

v1::Event Heartbeat(int64_t mono, uint64_t powered_ms) {
  v1::Event e;
  e.mutable_at()->set_monotonic_ms(mono);
  e.mutable_at()->set_wall_unix_ms(1'767'225'600'000 + mono);
  e.mutable_at()->set_boot_id("boot-a");
  e.mutable_heartbeat()->mutable_counters()->set_powered_ms(powered_ms);
  e.mutable_heartbeat()->set_state(v1::INSTRUMENT_STATE_IDLE);
  return e;
}

v1::Event Mark(v1::SessionMark::Kind kind, const std::string& order) {
  v1::Event e;
  e.mutable_at()->set_boot_id("boot-a");
  e.mutable_session_mark()->set_kind(kind);
  e.mutable_session_mark()->set_order_id(order);
  return e;
}

class OutboxTest : public ::testing::Test {
 protected:
  std::unique_ptr<Outbox> Open(const std::string& device = "nmr-1",
                               const Outbox::Options& options = {}) {
    auto outbox = Outbox::Open(path_, device, options);
    EXPECT_TRUE(outbox.ok()) << outbox.status().ToString();
    return outbox.ok() ? std::move(*outbox) : nullptr;
  }
  uint64_t Append(Outbox& outbox, v1::Event event) {
    auto seq = outbox.Append(&event);
    EXPECT_TRUE(seq.ok()) << seq.status().ToString();
    EXPECT_EQ(event.sequence(), seq.ok() ? *seq : 0);
    return seq.ok() ? *seq : 0;
  }

  testing::TempDir dir_;
  std::string path_ = dir_.File("outbox.db");
};

TEST_F(OutboxTest, SequencesAreMonotonicAndNeverReusedAcrossReopen) {
  {
    auto outbox = Open();
    for (uint64_t i = 1; i <= 3; ++i) EXPECT_EQ(Append(*outbox, Heartbeat(i, i)), i);
    ASSERT_TRUE(outbox->Acknowledge(3, 1'767'225'700'000).ok());
    EXPECT_EQ(outbox->depth(), 0u);
    ASSERT_TRUE(outbox->Sync().ok());
  }
  // Every row is gone, yet the next sequence continues.
  auto outbox = Open();
  EXPECT_EQ(outbox->last_sequence(), 3u);
  EXPECT_EQ(outbox->acked_sequence(), 3u);
  EXPECT_EQ(outbox->acked_wall_unix_ms(), 1'767'225'700'000);
  EXPECT_EQ(Append(*outbox, Heartbeat(4, 4)), 4u);
  auto rows = outbox->Read(1, 100, 1 << 20);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].sequence, 4u);
}

TEST_F(OutboxTest, AcknowledgeDeletesOnlyUpToTheAck) {
  auto outbox = Open();
  for (int i = 1; i <= 10; ++i) Append(*outbox, Heartbeat(i, 0));
  ASSERT_TRUE(outbox->Acknowledge(4, 1).ok());
  EXPECT_EQ(outbox->depth(), 6u);
  auto rows = outbox->Read(5, 100, 1 << 20);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 6u);
  EXPECT_EQ(rows->front().sequence, 5u);
  EXPECT_EQ(rows->back().sequence, 10u);
  // Stale and repeated acks change nothing; an ack beyond what was ever stored is refused.
  ASSERT_TRUE(outbox->Acknowledge(2, 2).ok());
  EXPECT_EQ(outbox->acked_sequence(), 4u);
  EXPECT_EQ(outbox->acked_wall_unix_ms(), 1);
  EXPECT_FALSE(outbox->Acknowledge(11, 3).ok());
  EXPECT_EQ(outbox->acked_sequence(), 4u);
  EXPECT_EQ(outbox->Read(5, 100, 1 << 20)->size(), 6u);
}

// An ack reaches the disk with the next append (one commit instead of two) or Sync. Until then
// a crash keeps the acknowledged rows: the next run resends them and the hub drops duplicates.
TEST_F(OutboxTest, AckIsStoredWithTheNextAppendOrSync) {
  {
    auto outbox = Open();
    for (int i = 1; i <= 4; ++i) Append(*outbox, Heartbeat(i, 0));
    ASSERT_TRUE(outbox->Acknowledge(2, 5).ok());
    EXPECT_EQ(outbox->acked_sequence(), 2u);
    auto rows = outbox->Read(1, 100, 1 << 20);
    ASSERT_TRUE(rows.ok());
    ASSERT_EQ(rows->size(), 2u) << "acknowledged rows are skipped at once";
    EXPECT_EQ(rows->front().sequence, 3u);
  }  // no Sync: what a crash leaves
  {
    auto outbox = Open();
    EXPECT_EQ(outbox->acked_sequence(), 0u);
    EXPECT_EQ(outbox->Read(1, 100, 1 << 20)->size(), 4u) << "all four are resent";
    ASSERT_TRUE(outbox->Acknowledge(3, 6).ok());
    EXPECT_EQ(Append(*outbox, Heartbeat(5, 0)), 5u);
  }
  {
    auto outbox = Open();
    EXPECT_EQ(outbox->acked_sequence(), 3u) << "stored with the append";
    EXPECT_EQ(outbox->acked_wall_unix_ms(), 6);
    EXPECT_EQ(outbox->Read(1, 100, 1 << 20)->size(), 2u);
    ASSERT_TRUE(outbox->Acknowledge(5, 7).ok());
    ASSERT_TRUE(outbox->Sync().ok());
    ASSERT_TRUE(outbox->Sync().ok()) << "nothing left to write is fine";
  }
  auto reader = Outbox::OpenForReading(path_);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  EXPECT_EQ((*reader)->acked_sequence(), 5u);
  EXPECT_EQ((*reader)->depth(), 0u);
  EXPECT_EQ((*reader)->acked_wall_unix_ms(), 7);
}

TEST_F(OutboxTest, ExactBytesArePreservedAndReadIsBounded) {
  auto outbox = Open();
  std::vector<std::string> sent;
  for (int i = 1; i <= 5; ++i) {
    v1::Event e = Heartbeat(i * 1000, static_cast<uint64_t>(i));
    Append(*outbox, e);
    e.set_sequence(static_cast<uint64_t>(i));
    sent.push_back(e.SerializeAsString());
  }
  auto rows = outbox->Read(2, 3, 1 << 20);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ((*rows)[i].bytes, sent[i + 1]);
  auto small = outbox->Read(1, 100, sent[0].size() + 1);
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(small->size(), 1u) << "the byte budget stops after the first event";
  auto tiny = outbox->Read(1, 100, 1);
  EXPECT_EQ(tiny->size(), 1u) << "but never returns nothing when an event is there";
  EXPECT_TRUE(outbox->Read(6, 100, 1 << 20)->empty());
}

TEST_F(OutboxTest, WrongDeviceIsRefused) {
  { auto outbox = Open("nmr-1"); }
  auto other = Outbox::Open(path_, "sem-2", {});
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(other.status().message().find("belongs to device 'nmr-1'"), std::string::npos);
}

TEST_F(OutboxTest, RemembersLastObservationPointAndOpenSession) {
  {
    auto outbox = Open();
    Append(*outbox, Heartbeat(5000, 42));
    Append(*outbox, Mark(v1::SessionMark::KIND_START, "order-7"));
    ASSERT_TRUE(outbox->last_point());
    EXPECT_EQ(outbox->last_point()->sequence(), 1u) << "a session mark is no observation point";
  }
  {
    auto outbox = Open();
    ASSERT_TRUE(outbox->last_point());
    EXPECT_EQ(outbox->last_point()->heartbeat().counters().powered_ms(), 42u);
    ASSERT_TRUE(outbox->open_session());
    EXPECT_EQ(outbox->open_session()->order_id, "order-7");
    Append(*outbox, Mark(v1::SessionMark::KIND_STOP, "order-7"));
    EXPECT_FALSE(outbox->open_session());
  }
  EXPECT_FALSE(Open()->open_session());
}

TEST_F(OutboxTest, FullDiskStoresNothingAndLosesNoSequence) {
  auto outbox = Open("nmr-1", {.max_page_count = 8});
  std::string big(3000, 'x');
  uint64_t stored = 0;
  Status failure;
  for (int i = 0; i < 100 && failure.ok(); ++i) {
    v1::Event e = Heartbeat(i, 0);
    e.mutable_heartbeat()->set_agent_version(big);
    auto seq = outbox->Append(&e);
    if (seq.ok()) {
      stored = *seq;
    } else {
      failure = seq.status();
      EXPECT_EQ(e.sequence(), 0u) << "a failed append leaves the event ready for a retry";
    }
  }
  ASSERT_FALSE(failure.ok()) << "the page cap never filled";
  EXPECT_EQ(failure.code(), Status::Code::kResourceExhausted) << failure.ToString();
  EXPECT_EQ(outbox->last_sequence(), stored);
  // Space comes back once the hub acknowledged; the next event takes the next sequence.
  ASSERT_TRUE(outbox->Acknowledge(stored, 1).ok());
  EXPECT_EQ(Append(*outbox, Heartbeat(1000, 0)), stored + 1);
}

TEST_F(OutboxTest, ReadOnlyOpenSeesTheState) {
  {
    auto outbox = Open();
    Append(*outbox, Heartbeat(1, 1));
    Append(*outbox, Heartbeat(2, 2));
    ASSERT_TRUE(outbox->Acknowledge(1, 77).ok());
    ASSERT_TRUE(outbox->Sync().ok());
  }
  auto reader = Outbox::OpenForReading(path_);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  EXPECT_EQ((*reader)->device_id(), "nmr-1");
  EXPECT_EQ((*reader)->last_sequence(), 2u);
  EXPECT_EQ((*reader)->depth(), 1u);
  EXPECT_EQ((*reader)->acked_wall_unix_ms(), 77);
  EXPECT_FALSE(Outbox::OpenForReading(dir_.File("none.db")).ok());
}

}  // namespace
}  // namespace instrumeter::agent

namespace instrumeter::agent {
namespace {

TEST_F(OutboxTest, EveryRowCarriesItsChainLinkAcrossReopenAndAcks) {
  std::string expected = protocol::ChainGenesis("nmr-1");
  {
    auto outbox = Open();
    EXPECT_EQ(outbox->chain_head(), expected) << "link_0 before the first event";
    for (uint64_t i = 1; i <= 3; ++i) Append(*outbox, Heartbeat(static_cast<int64_t>(i), i));
    ASSERT_TRUE(outbox->Acknowledge(2, 1).ok());
    ASSERT_TRUE(outbox->Sync().ok());
  }
  auto outbox = Open();
  Append(*outbox, Mark(v1::SessionMark::KIND_START, "order-1"));
  auto rows = outbox->Read(1, 100, 1 << 20);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);  // 3 and 4; 1 and 2 were acknowledged
  // Recompute the chain from the bytes alone: what the hub does.
  std::vector<std::string> all_bytes;
  for (uint64_t i = 1; i <= 3; ++i) {
    v1::Event e = Heartbeat(static_cast<int64_t>(i), i);
    e.set_sequence(i);
    all_bytes.push_back(e.SerializeAsString());
  }
  for (const std::string& b : all_bytes) expected = protocol::ChainNext(expected, b);
  EXPECT_EQ((*rows)[0].link, expected);
  expected = protocol::ChainNext(expected, (*rows)[1].bytes);
  EXPECT_EQ((*rows)[1].link, expected);
  EXPECT_EQ(outbox->chain_head(), expected);
}

// Outboxes written before signing existed: `outbox(seq, body)` and no chain head in meta.
void WriteLegacyOutbox(const std::string& path, uint64_t events, uint64_t acked) {
  auto db = SqliteDb::Open(path, {});
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE((*db)
                  ->Exec("CREATE TABLE outbox(seq INTEGER PRIMARY KEY, body BLOB NOT NULL);"
                         "CREATE TABLE meta(key TEXT PRIMARY KEY, value);"
                         "INSERT INTO meta VALUES('device_id', 'nmr-1');")
                  .ok());
  for (uint64_t i = acked + 1; i <= events; ++i) {
    v1::Event e = Heartbeat(static_cast<int64_t>(i), i);
    e.set_sequence(i);
    auto insert = (*db)->Prepare("INSERT INTO outbox(seq, body) VALUES(?, ?)");
    ASSERT_TRUE(insert.ok());
    ASSERT_TRUE(
        insert->Bind(1, static_cast<int64_t>(i)).BindBlob(2, e.SerializeAsString()).Run().ok());
  }
  ASSERT_TRUE((*db)
                  ->Exec("INSERT INTO meta VALUES('last_sequence', " + std::to_string(events) +
                         "), ('acked_sequence', " + std::to_string(acked) + ")")
                  .ok());
}

TEST_F(OutboxTest, ALegacyOutboxWithEveryEventGetsItsChainRebuilt) {
  WriteLegacyOutbox(path_, 3, 0);
  auto outbox = Open();
  ASSERT_NE(outbox, nullptr);
  auto rows = outbox->Read(1, 100, 1 << 20);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 3u);
  std::string link = protocol::ChainGenesis("nmr-1");
  for (const Outbox::Row& row : *rows) {
    link = protocol::ChainNext(link, row.bytes);
    EXPECT_EQ(row.link, link) << row.sequence;
  }
  EXPECT_EQ(outbox->chain_head(), link);
  Append(*outbox, Heartbeat(4, 4));
  EXPECT_EQ(outbox->chain_head(),
            protocol::ChainNext(link, outbox->Read(4, 1, 1 << 20)->front().bytes));
}

TEST_F(OutboxTest, ALegacyOutboxThatDeletedAckedEventsHasNoChain) {
  WriteLegacyOutbox(path_, 3, 2);
  auto outbox = Open();
  ASSERT_NE(outbox, nullptr);
  EXPECT_TRUE(outbox->chain_head().empty());
  Append(*outbox, Heartbeat(4, 4));
  EXPECT_TRUE(outbox->chain_head().empty()) << "never a link over a guessed predecessor";
  EXPECT_TRUE(outbox->Read(4, 1, 1 << 20)->front().link.empty());
}

}  // namespace
}  // namespace instrumeter::agent
