// Fault 9 of issue 6: many devices connecting at once, each with a backlog (instrumeter-loadgen's
// library in this process), while a real agent keeps metering beside them. Every backlog must be
// acknowledged and stored exactly once with the hours it carries, and the hub must keep serving
// the real agent.
#include <gtest/gtest.h>

#include <cstdio>
#include <thread>

#include "common/sqlite_db.h"
#include "fault_scale.h"
#include "loadgen.h"
#include "stack.h"
#include "verify.h"

namespace instrumeter::testing {
namespace {

using std::chrono::seconds;

TEST(FAULT_SUITE, ManyDevicesWithBacklogsConnectAtOnceAllDrainedExactly) {
  auto stack = Stack::Start();
  ASSERT_TRUE(stack.ok()) << stack.status().ToString();
  Stack& s = **stack;
  loadgen::LoadOptions load;
  load.broker_url = s.broker().url();
  load.devices = kScale.loadgen_devices;
  load.backlog = kScale.loadgen_backlog;
  load.timeout_ms = 600'000;

  std::string csv = "instrument_id,name,institution,site,city,region\n";
  for (int i = 0; i < load.devices; ++i)
    csv += loadgen::DeviceId(load, i) + ",Load " + std::to_string(i) + ",Load Institute,Lab," +
           "Suzhou,Jiangsu\n";
  WriteFile(s.dir() + "/load.csv", csv);
  std::string out;
  ASSERT_EQ(s.Hub({"instruments", "import", s.dir() + "/load.csv"}, &out), 0) << out;
  ASSERT_OK(s.AddAgent("beside-load", {.seed = 9001}));
  std::this_thread::sleep_for(seconds(3));

  auto report = loadgen::RunLoad(load);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  std::printf("[figures] loadgen: %s", loadgen::ReportJson(*report).c_str());
  EXPECT_TRUE(report->complete) << report->devices_drained << " of " << report->devices
                                << " devices drained";
  EXPECT_TRUE(s.HubRunning());

  // Every device's backlog stored once, contiguous, with exactly the hours it carried.
  auto db = SqliteDb::Open(s.hub_db(), {.read_only = true, .create = false});
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  auto rows = (*db)->Prepare(
      "SELECT d.device_id, d.contiguous_seq,"
      " (SELECT COUNT(*) FROM events e WHERE e.dev_key = d.dev_key),"
      " (SELECT COALESCE(SUM(duration_ms), 0) FROM intervals i WHERE i.dev_key = d.dev_key"
      "    AND i.kind = 'state' AND i.state IN (2, 3, 4)),"
      " (SELECT COALESCE(SUM(duration_ms), 0) FROM intervals i WHERE i.dev_key = d.dev_key"
      "    AND i.kind = 'state' AND i.state = 3),"
      " (SELECT COUNT(*) FROM intervals i WHERE i.dev_key = d.dev_key"
      "    AND i.flags LIKE '%counter_mismatch%')"
      " FROM devices d WHERE d.device_id LIKE ?");
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  rows->Bind(1, std::string_view(load.device_prefix + "%"));
  int devices = 0;
  int wrong = 0;
  while (true) {
    auto row = rows->Step();
    ASSERT_TRUE(row.ok()) << row.status().ToString();
    if (!*row) break;
    ++devices;
    const bool exact = rows->Int(1) == load.backlog && rows->Int(2) == load.backlog &&
                       rows->Int(3) == report->expected_powered_ms &&
                       rows->Int(4) == report->expected_in_use_ms && rows->Int(5) == 0;
    if (!exact && ++wrong <= 5)
      ADD_FAILURE() << rows->Text(0) << ": contiguous " << rows->Int(1) << ", events "
                    << rows->Int(2) << ", powered " << rows->Int(3) << " of "
                    << report->expected_powered_ms << ", in use " << rows->Int(4) << " of "
                    << report->expected_in_use_ms << ", counter mismatches " << rows->Int(5);
  }
  EXPECT_EQ(devices, load.devices);
  EXPECT_EQ(wrong, 0);

  // The real agent beside the load was served all along (its outbox keeps draining) and is exact.
  std::this_thread::sleep_for(seconds(5));
  EXPECT_GE(WaitForEmptyOutboxes(s, seconds(30)), 0) << "the hub stopped answering the agent";
  StopAndVerify(s, {.min_sequences = 5});
}

}  // namespace
}  // namespace instrumeter::testing
