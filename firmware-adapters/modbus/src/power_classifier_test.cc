#include "adapters/modbus/power_classifier.h"

#include <gtest/gtest.h>

namespace instrumeter::adapters::modbus {
namespace {

TEST(PowerClassifierTest, HysteresisKeepsAHoveringMeterFromFlapping) {
  PowerClassifier c({.off_below_watts = 50,
                     .in_use_above_watts = 500,
                     .hysteresis_watts = 20,
                     .min_dwell_ms = 0});
  // {watts, expected}: leaving a state needs the threshold crossed by 20 W.
  const std::vector<std::pair<double, SourceState>> steps = {
      {10, SourceState::kOff},     // first reading: no hysteresis
      {60, SourceState::kOff},     // above 50 but not by 20
      {70, SourceState::kIdle},    // 50 + 20
      {515, SourceState::kIdle},   // above 500 but not by 20
      {521, SourceState::kInUse},  // > 520
      {485, SourceState::kInUse},  // below 500 but not by 20
      {480, SourceState::kIdle},   // <= 480
      {31, SourceState::kIdle},    // not below 30
      {29, SourceState::kOff},     // < 30
      {900, SourceState::kInUse},  // straight from OFF to IN_USE
      {0, SourceState::kOff},      // and straight back
  };
  for (const auto& [watts, expected] : steps)
    EXPECT_EQ(SourceStateName(c.Update(watts, 0)), std::string(SourceStateName(expected)))
        << watts << " W";
}

TEST(PowerClassifierTest, ANewStateMustLastTheMinimumDwell) {
  PowerClassifier c({.off_below_watts = 10,
                     .in_use_above_watts = 100,
                     .hysteresis_watts = 0,
                     .min_dwell_ms = 3000});
  EXPECT_EQ(c.Update(50, 0), SourceState::kIdle);
  EXPECT_EQ(c.Update(500, 1000), SourceState::kIdle) << "a spike";
  EXPECT_NE(c.why().find("IN_USE for 0 of 3000 ms"), std::string::npos) << c.why();
  EXPECT_EQ(c.Update(50, 2000), SourceState::kIdle) << "the spike ended: forgotten";
  EXPECT_EQ(c.Update(500, 3000), SourceState::kIdle);
  EXPECT_EQ(c.Update(500, 5999), SourceState::kIdle);
  EXPECT_EQ(c.Update(500, 6000), SourceState::kInUse) << "3000 ms without a break";
  EXPECT_EQ(c.Update(0, 7000), SourceState::kInUse);
  c.ResetPending();  // an unusable reading in between restarts the dwell
  EXPECT_EQ(c.Update(0, 9000), SourceState::kInUse);
  EXPECT_EQ(c.Update(0, 12000), SourceState::kOff);
}

}  // namespace
}  // namespace instrumeter::adapters::modbus
