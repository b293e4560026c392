#include "test_support/mosquitto.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>

namespace instrumeter::testing {
namespace {

TEST(TestBrokerTest, StartsKillsAndRestartsOnTheSamePort) {
  auto broker = TestBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  const int port = (*broker)->port();
  EXPECT_TRUE(PortAcceptsConnections(port));
  (*broker)->Kill();
  EXPECT_FALSE(PortAcceptsConnections(port));
  ASSERT_TRUE((*broker)->Restart().ok());
  EXPECT_TRUE(PortAcceptsConnections(port));
  EXPECT_EQ((*broker)->url(), "tcp://127.0.0.1:" + std::to_string(port));
}

TEST(ChildProcessTest, ReportsExitCodesAndSignals) {
  std::string out;
  EXPECT_EQ(RunCommand({"/bin/sh", "-c", "echo hi; exit 3"}, &out), 3);
  EXPECT_EQ(out, "hi\n");
  TempDir dir;
  auto sleeper = ChildProcess::Start({"/bin/sleep", "30"}, dir.File("log"));
  ASSERT_TRUE(sleeper.ok());
  EXPECT_TRUE(sleeper->Running());
  sleeper->Signal(SIGKILL);
  EXPECT_EQ(sleeper->Wait(std::chrono::seconds(5)), 128 + SIGKILL);
}

TEST(ChildProcessTest, ExtraEnvironmentReachesOnlyTheChild) {
  std::string out;
  TempDir dir;
  auto child = ChildProcess::Start({"/bin/sh", "-c", "echo \"$INSTRUMETER_TEST_VAR:$HOME\""},
                                   dir.File("log"), {"INSTRUMETER_TEST_VAR=fault", "HOME=/x"});
  ASSERT_TRUE(child.ok());
  EXPECT_EQ(child->Wait(std::chrono::seconds(5)), 0);
  EXPECT_EQ(ReadFile(dir.File("log")), "fault:/x\n");
  EXPECT_EQ(std::getenv("INSTRUMETER_TEST_VAR"), nullptr);
}

}  // namespace
}  // namespace instrumeter::testing
