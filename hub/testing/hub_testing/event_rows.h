// Comparing stored events field by field, for hub tests: a row read back must be the row stored.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "hub/store.h"

namespace instrumeter::hub::testing {

// Every stored column, the exact bytes and the link; stored rows never carry the two verification
// flags (store.h).
inline void ExpectSameRows(const std::vector<EventRow>& got, const std::vector<EventRow>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE("seq " + std::to_string(want[i].seq));
    EXPECT_EQ(got[i].seq, want[i].seq);
    EXPECT_EQ(got[i].kind, want[i].kind);
    EXPECT_EQ(got[i].state, want[i].state);
    EXPECT_EQ(got[i].boot_id, want[i].boot_id);
    EXPECT_EQ(got[i].monotonic_ms, want[i].monotonic_ms);
    EXPECT_EQ(got[i].wall_unix_ms, want[i].wall_unix_ms);
    EXPECT_EQ(got[i].powered_ms, want[i].powered_ms);
    EXPECT_EQ(got[i].in_use_ms, want[i].in_use_ms);
    EXPECT_EQ(got[i].body, want[i].body);
    EXPECT_EQ(got[i].received_unix_ms, want[i].received_unix_ms);
    EXPECT_EQ(got[i].link, want[i].link);
    EXPECT_FALSE(got[i].fresh_heartbeat);
    EXPECT_FALSE(got[i].sources_disagree);
  }
}

}  // namespace instrumeter::hub::testing
