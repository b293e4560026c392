// The real instrumeter-agent binary as a child process, metering the simulator, against a real
// Mosquitto and a tiny hub: the command line, the control socket, SIGTERM and SIGKILL.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include "test_support/mosquitto.h"
#include "tiny_hub_test_util.h"

namespace instrumeter::agent {
namespace {

using fake::TinyHub;
using ::testing::HasSubstr;

constexpr char kBinary[] = INSTRUMETER_AGENT_BINARY;
constexpr char kSchedule[] = INSTRUMETER_SIMULATOR_SCHEDULE;

class AgentBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto broker = testing::TestBroker::Start();
    ASSERT_TRUE(broker.ok()) << broker.status().ToString();
    broker_ = std::move(*broker);
    hub_ = std::make_unique<TinyHub>(broker_->url());
    testing::WriteFile(config_,
                       "device_id = \"sim-1\"\n"
                       "state_dir = \"" +
                           dir_.File("state") +
                           "\"\n"
                           "poll_interval_ms = 100\n"
                           "heartbeat_interval_ms = 500\n"
                           "[mqtt]\n"
                           "broker = \"" +
                           broker_->url() +
                           "\"\n"
                           "reconnect_min_ms = 100\n"
                           "reconnect_max_ms = 500\n"
                           "[[adapter]]\n"
                           "name = \"sim\"\n"
                           "type = \"simulator\"\n"
                           "schedule_file = \"" +
                           kSchedule + "\"\n");
  }

  int Run(const std::vector<std::string>& args, std::string* output) {
    std::vector<std::string> argv = {kBinary};
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::RunCommand(argv, output, std::chrono::seconds(20));
  }
  testing::ChildProcess StartAgent() {
    auto child = testing::ChildProcess::Start({kBinary, "run", "--config", config_}, log_);
    EXPECT_TRUE(child.ok()) << child.status().ToString();
    return std::move(*child);
  }
  bool HubUntil(const std::function<bool()>& done) {
    return testing::WaitFor(
        [&] {
          hub_->Process();
          return done();
        },
        std::chrono::seconds(10));
  }
  // SIGTERM, serving the hub meanwhile (the agent waits for its acks before it exits).
  int Stop(testing::ChildProcess& agent) {
    agent.Signal(SIGTERM);
    HubUntil([&] { return !agent.Running(); });
    return agent.Wait(std::chrono::seconds(5));
  }
  bool Online() { return hub_->status_ && hub_->status_->online(); }
  std::string Log() { return testing::ReadFile(log_); }

  testing::TempDir dir_;
  std::string config_ = dir_.File("agent.toml");
  std::string log_ = dir_.File("agent.log");
  std::unique_ptr<testing::TestBroker> broker_;
  std::unique_ptr<TinyHub> hub_;
};

TEST_F(AgentBinaryTest, RunsServesStatusAndSessionsAndStopsCleanly) {
  testing::ChildProcess agent = StartAgent();
  ASSERT_TRUE(HubUntil([&] { return Online() && hub_->contiguous_ >= 3; })) << Log();
  std::string out;
  ASSERT_EQ(Run({"status", "--config", config_}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("agent:    running"));
  EXPECT_THAT(out, HasSubstr("broker:   connected"));
  EXPECT_THAT(out, HasSubstr("adapter:  sim (simulator): ok"));
  ASSERT_EQ(Run({"status", "--json", "--config", config_}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("\"powered_ms\""));
  ASSERT_EQ(
      Run({"session", "start", "--order", "YRD-7", "--operator", "Li Wei", "--config", config_},
          &out),
      0)
      << out;
  EXPECT_EQ(Run({"session", "start", "--order", "YRD-8", "--config", config_}, &out), 1);
  EXPECT_THAT(out, HasSubstr("'YRD-7' is open"));
  ASSERT_EQ(Run({"session", "stop", "--config", config_}, &out), 0) << out;

  EXPECT_EQ(Stop(agent), 0) << Log();
  ASSERT_TRUE(HubUntil([&] { return !Online(); })) << "no retained offline status";
  const std::vector<v1::Event> events = hub_->Events();
  ASSERT_GE(events.size(), 5u);
  EXPECT_TRUE(events.front().state_change().run_start());
  ASSERT_TRUE(events.back().has_agent_stop()) << "the last event reached the hub before exit";
  EXPECT_TRUE(events.back().agent_stop().clean());
  int marks = 0;
  for (const v1::Event& e : events) marks += e.has_session_mark();
  EXPECT_EQ(marks, 2);

  ASSERT_EQ(Run({"status", "--config", config_}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("agent:    not running; last run stopped cleanly"));
  EXPECT_THAT(out, HasSubstr("outbox:   0 event(s) not acknowledged"));
}

TEST_F(AgentBinaryTest, KilledAgentGoesOfflineByLastWillAndRecoversOnRestart) {
  {
    testing::ChildProcess agent = StartAgent();
    ASSERT_TRUE(HubUntil([&] { return Online() && hub_->contiguous_ >= 3; })) << Log();
    agent.Signal(SIGKILL);
    agent.Wait(std::chrono::seconds(5));
  }
  ASSERT_TRUE(HubUntil([&] { return !Online(); })) << "the broker did not publish the will";
  EXPECT_TRUE(hub_->status_retained_ || hub_->statuses_.size() >= 2);
  const uint64_t before = hub_->contiguous_;

  testing::ChildProcess agent = StartAgent();
  ASSERT_TRUE(HubUntil([&] {
    for (const v1::Event& e : hub_->Events())
      if (e.has_state_change() && e.state_change().run_start() && e.sequence() > before)
        return Online();
    return false;
  })) << Log();
  const std::vector<v1::Event> events = hub_->Events();
  const v1::Event* crash_stop = nullptr;
  for (const v1::Event& e : events)
    if (e.has_agent_stop() && !e.agent_stop().clean()) crash_stop = &e;
  ASSERT_NE(crash_stop, nullptr) << "the crashed run was not closed";
  EXPECT_GT(crash_stop->sequence(), before - 1) << "sequences continue after the crash";
  EXPECT_EQ(Stop(agent), 0) << Log();
}

TEST_F(AgentBinaryTest, CommandLineErrorsAndHelp) {
  std::string out;
  EXPECT_EQ(Run({"--help"}, &out), 0);
  EXPECT_THAT(out, HasSubstr("status"));
  EXPECT_EQ(Run({"status", "--help"}, &out), 0);
  EXPECT_THAT(out, HasSubstr("--json"));
  EXPECT_EQ(Run({"--version"}, &out), 0);
  EXPECT_EQ(Run({"status"}, &out), 2) << "--config is required";
  EXPECT_EQ(Run({"frobnicate"}, &out), 2);
  EXPECT_EQ(Run({}, &out), 2);

  const std::string bad = dir_.File("bad.toml");
  testing::WriteFile(bad, testing::ReadFile(config_) + "colour = \"red\"\n");
  EXPECT_EQ(Run({"run", "--config", bad}, &out), 2);
  EXPECT_THAT(out, HasSubstr(bad + ":13:10:"));
  EXPECT_THAT(out, HasSubstr("[[adapter]] 'sim': unknown key 'colour'"));
  EXPECT_EQ(Run({"--config", dir_.File("missing.toml")}, &out), 2);

  EXPECT_EQ(Run({"status", "--config", config_}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("agent:    not running"));
  EXPECT_EQ(Run({"session", "stop", "--config", config_}, &out), 1);
  EXPECT_THAT(out, HasSubstr("not running"));

  EXPECT_EQ(Run({"check", "--config", config_}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("adapter 'sim' (simulator): ok"));
  EXPECT_THAT(out, HasSubstr("combined state: OFF"));

  EXPECT_EQ(Run({"config-reference"}, &out), 0);
  EXPECT_THAT(out, HasSubstr("### type = \"simulator\""));
  EXPECT_THAT(out, HasSubstr("`schedule_file`"));
}

}  // namespace
}  // namespace instrumeter::agent
