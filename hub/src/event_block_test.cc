#include "event_block.h"

#include <gtest/gtest.h>

#include "hub_testing/event_rows.h"
#include "hub_testing/events.h"
#include "protocol/chain.h"

namespace instrumeter::hub {
namespace {

using testing::At;
using testing::Beat;
using testing::ExpectSameRows;
using testing::kBoot1;
using testing::kWall;
using testing::Mark;

// Consecutive rows from `first`, chained from an arbitrary link, received out of order now and
// then (a resend after an outage arrives late).
std::vector<EventRow> Rows(uint64_t first, uint64_t count) {
  std::vector<EventRow> rows;
  std::string link = protocol::Sha256("any link");
  for (uint64_t seq = first; seq < first + count; ++seq) {
    const auto t = static_cast<int64_t>(seq) * 10'000;
    const At at{kBoot1, t, kWall + t, static_cast<uint64_t>(t), static_cast<uint64_t>(t / 2)};
    v1::Event e = seq % 7 == 0 ? Mark(seq, at) : Beat(seq, v1::INSTRUMENT_STATE_IN_USE, at);
    std::string bytes = e.SerializeAsString();
    link = protocol::ChainNext(link, bytes);
    EventRow row = MakeEventRow(e, bytes, kWall + t + (seq % 5 == 0 ? -90'000 : 40));
    row.fresh_heartbeat = false;
    row.link = link;
    rows.push_back(std::move(row));
  }
  return rows;
}

TEST(EventBlockTest, GivesBackTheExactBytesReceiveTimesColumnsAndLinks) {
  const std::vector<EventRow> rows = Rows(41, 500);
  Result<EventBlock> block = EncodeEventBlock(rows);
  ASSERT_TRUE(block.ok()) << block.status().ToString();
  EXPECT_EQ(block->first_seq, 41u);
  EXPECT_EQ(block->last_seq, 540u);
  EXPECT_EQ(block->first_link, rows.front().link);
  size_t body_bytes = 0;
  for (const EventRow& e : rows) body_bytes += e.body.size();
  EXPECT_LT(block->data.size() * 3, body_bytes) << "similar events compress well";
  Result<std::vector<EventRow>> back = DecodeEventBlock(*block);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ExpectSameRows(*back, rows);
}

TEST(EventBlockTest, RefusesAGapOrAnEventWithoutItsLink) {
  std::vector<EventRow> gap = Rows(1, 10);
  gap.erase(gap.begin() + 4);
  EXPECT_EQ(EncodeEventBlock(gap).status().code(), Status::Code::kInvalidArgument);
  std::vector<EventRow> unlinked = Rows(1, 10);
  unlinked[3].link.clear();
  Result<EventBlock> block = EncodeEventBlock(unlinked);
  EXPECT_EQ(block.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(block.status().message().find("seq 4"), std::string::npos) << block.status().message();
  EXPECT_EQ(EncodeEventBlock({}).status().code(), Status::Code::kInvalidArgument);
}

TEST(EventBlockTest, ADamagedBlockIsCorruptionNamingWhere) {
  Result<EventBlock> good = EncodeEventBlock(Rows(1, 100));
  ASSERT_TRUE(good.ok());

  EventBlock flipped = *good;
  flipped.data[flipped.data.size() / 2] ^= 0x10;
  EXPECT_EQ(DecodeEventBlock(flipped).status().code(), Status::Code::kCorruption);

  EventBlock shifted = *good;  // the header says the events start one later than they do
  ++shifted.first_seq;
  ++shifted.last_seq;
  Result<std::vector<EventRow>> rows = DecodeEventBlock(shifted);
  EXPECT_EQ(rows.status().code(), Status::Code::kCorruption);
  EXPECT_NE(rows.status().message().find("seq 2 does not parse as that event"), std::string::npos)
      << rows.status().message();

  EventBlock short_header = *good;  // fewer events than the stream holds
  --short_header.last_seq;
  EXPECT_EQ(DecodeEventBlock(short_header).status().code(), Status::Code::kCorruption);

  EventBlock wrong_size = *good;
  ++wrong_size.raw_bytes;
  EXPECT_EQ(DecodeEventBlock(wrong_size).status().code(), Status::Code::kCorruption);

  EventBlock no_link = *good;
  no_link.first_link.clear();
  EXPECT_EQ(DecodeEventBlock(no_link).status().code(), Status::Code::kCorruption);
}

}  // namespace
}  // namespace instrumeter::hub
