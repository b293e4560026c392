#include "protocol/codec.h"

#include <gtest/gtest.h>

namespace instrumeter::protocol {
namespace {

std::string MakeEvent(uint64_t seq, v1::InstrumentState state) {
  v1::Event e;
  e.set_sequence(seq);
  e.mutable_at()->set_boot_id("boot-a");
  e.mutable_at()->set_monotonic_ms(1000 + static_cast<int64_t>(seq));
  e.mutable_at()->set_wall_unix_ms(1'767'225'600'000);
  e.mutable_state_change()->set_state(state);
  return e.SerializeAsString();
}

TEST(CodecTest, RoundTripKeepsExactEventBytes) {
  std::vector<std::string> events = {MakeEvent(7, v1::INSTRUMENT_STATE_IDLE),
                                     MakeEvent(8, v1::INSTRUMENT_STATE_IN_USE)};
  const std::string wire = EncodeEnvelope("nmr-1", "boot-a", 7, events);
  auto decoded = DecodeEnvelope(wire);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->envelope.device_id(), "nmr-1");
  EXPECT_EQ(decoded->event_bytes, events);
  EXPECT_EQ(decoded->events[1].state_change().state(), v1::INSTRUMENT_STATE_IN_USE);
}

TEST(CodecTest, RefusesStructuralLies) {
  EXPECT_FALSE(DecodeEnvelope("not protobuf \xff\xff").ok());
  EXPECT_FALSE(DecodeEnvelope(EncodeEnvelope("nmr-1", "b", 1, {})).ok()) << "no events";
  EXPECT_FALSE(
      DecodeEnvelope(EncodeEnvelope("nmr-1", "b", 0, {MakeEvent(0, v1::INSTRUMENT_STATE_OFF)}))
          .ok());
  auto gap = DecodeEnvelope(EncodeEnvelope(
      "nmr-1", "b", 7,
      {MakeEvent(7, v1::INSTRUMENT_STATE_OFF), MakeEvent(9, v1::INSTRUMENT_STATE_OFF)}));
  ASSERT_FALSE(gap.ok());
  EXPECT_NE(gap.status().message().find("event 8"), std::string::npos) << gap.status().message();
  EXPECT_FALSE(
      DecodeEnvelope(EncodeEnvelope("bad/id", "b", 1, {MakeEvent(1, v1::INSTRUMENT_STATE_OFF)}))
          .ok());
  v1::Event no_body;
  no_body.set_sequence(1);
  no_body.mutable_at()->set_boot_id("b");
  EXPECT_FALSE(DecodeEnvelope(EncodeEnvelope("d", "b", 1, {no_body.SerializeAsString()})).ok());
  auto bad_state = DecodeEnvelope(
      EncodeEnvelope("d", "b", 1, {MakeEvent(1, static_cast<v1::InstrumentState>(42))}));
  EXPECT_FALSE(bad_state.ok());
}

TEST(CodecTest, EnforcesLimits) {
  std::vector<std::string> many;
  for (uint64_t s = 1; s <= 5; ++s) many.push_back(MakeEvent(s, v1::INSTRUMENT_STATE_OFF));
  EXPECT_FALSE(DecodeEnvelope(EncodeEnvelope("d", "b", 1, many), {.max_events = 4}).ok());
  EXPECT_FALSE(DecodeEnvelope(EncodeEnvelope("d", "b", 1, many), {.max_envelope_bytes = 64}).ok());
  EXPECT_TRUE(DecodeEnvelope(EncodeEnvelope("d", "b", 1, many), {.max_events = 5}).ok());
}

TEST(CodecTest, StateNamesRoundTrip) {
  for (int s = v1::INSTRUMENT_STATE_OFF; s <= v1::INSTRUMENT_STATE_UNKNOWN; ++s) {
    v1::InstrumentState parsed{};
    ASSERT_TRUE(ParseStateName(StateName(static_cast<v1::InstrumentState>(s)), &parsed));
    EXPECT_EQ(parsed, s);
  }
  v1::InstrumentState parsed{};
  EXPECT_TRUE(ParseStateName("in_use", &parsed));
  EXPECT_FALSE(ParseStateName("BUSY", &parsed));
  EXPECT_TRUE(IsPowered(v1::INSTRUMENT_STATE_FAULT));
  EXPECT_FALSE(IsPowered(v1::INSTRUMENT_STATE_UNKNOWN));
}

}  // namespace
}  // namespace instrumeter::protocol
