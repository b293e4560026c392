#include "adapters/exec/exec_adapter.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <sstream>

#include "adapters/testing/adapter_harness.h"
#include "test_support/process.h"

namespace instrumeter::adapters::exec {
namespace {

using adapters::testing::ConfiguredAdapter;
using adapters::testing::PollOnce;

// Gone: no /proc entry, or a zombie nobody has reaped yet (it runs no more).
bool Gone(pid_t pid) {
  const std::string stat = instrumeter::testing::ReadFile("/proc/" + std::to_string(pid) + "/stat");
  const size_t close = stat.rfind(')');
  return stat.empty() ||
         (close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z');
}

class ExecTest : public ::testing::Test {
 protected:
  std::unique_ptr<ConfiguredAdapter> Make(const std::string& keys) {
    auto made = ConfiguredAdapter::Make("exec", keys, {"probe", &clock_, dir_.path()});
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    return made.ok() ? std::move(*made) : nullptr;
  }
  // A TOML array for /bin/sh -c `script`.
  static std::string Shell(const std::string& script) {
    return "command = [\"/bin/sh\", \"-c\", '" + script + "']\n";
  }

  instrumeter::testing::TempDir dir_;
  FakeClock clock_;
};

TEST_F(ExecTest, ExitCodesMapToStates) {
  auto a = Make(Shell("exit 1") + "exit_code_states = { \"0\" = \"IN_USE\", \"1\" = \"IDLE\" }\n");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE");
  auto b = Make(Shell("echo oops >&2; exit 3") + "exit_code_states = { \"0\" = \"IN_USE\" }\n");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(PollOnce(b->adapter()), "error: exec 'probe' (/bin/sh): exited with code 3: oops");
}

TEST_F(ExecTest, OutputMapsToStatesByRules) {
  auto a = Make(
      "command = [\"/bin/echo\", \"MEASURING\", \"sample 7\"]\n"
      "rule = [ { match = \"^MEASURING\", state = \"IN_USE\" }, "
      "{ match = \"^STANDBY\", state = \"IDLE\" } ]\n");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(PollOnce(a->adapter()), "state=IN_USE");
  auto b = Make(
      "command = [\"echo\", \"WARMING UP\"]\nrule = [ { match = \"^STANDBY\", state = "
      "\"IDLE\" } ]\n");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(PollOnce(b->adapter()),
            "error: exec 'probe' (echo): no rule matches the output 'WARMING UP'")
      << "argv[0] is looked up in PATH";
}

TEST_F(ExecTest, RunsOncePerIntervalAndNeverFromInit) {
  const std::string runs = dir_.File("runs");
  auto a = Make(Shell("echo run >> " + runs + "; echo STANDBY") +
                "interval_ms = 10000\nrule = [ { match = \"STANDBY\", state = \"IDLE\" } ]\n");
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE((*a)->Start().ok());
  EXPECT_FALSE(std::filesystem::exists(runs)) << "Init and Start run nothing";
  EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE");
  clock_.Advance(4000);
  EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE") << "the last result, repeated";
  clock_.Advance(5999);
  EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE");
  EXPECT_EQ(instrumeter::testing::ReadFile(runs), "run\n");
  clock_.Advance(1);
  EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE");
  EXPECT_EQ(instrumeter::testing::ReadFile(runs), "run\nrun\n");
}

TEST_F(ExecTest, ATimeoutKillsTheWholeProcessGroup) {
  const std::string pids = dir_.File("pids");
  auto a = Make(Shell("sleep 30 & echo $! > " + pids + "; echo $$ >> " + pids + "; wait") +
                "timeout_ms = 300\nexit_code_states = { \"0\" = \"IN_USE\" }\n");
  ASSERT_NE(a, nullptr);
  const auto start = std::chrono::steady_clock::now();
  const std::string st = PollOnce(a->adapter());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(st,
            "error: exec 'probe' (/bin/sh): timed out after 300 ms; its process group was killed");
  std::istringstream in(instrumeter::testing::ReadFile(pids));
  pid_t background = 0, shell = 0;
  ASSERT_TRUE(in >> background >> shell);
  EXPECT_TRUE(instrumeter::testing::WaitFor([&] { return Gone(background) && Gone(shell); },
                                            std::chrono::seconds(5)))
      << "the shell and its background sleep are really gone";
  EXPECT_TRUE(Gone(shell));
}

TEST_F(ExecTest, LeftoversOfACommandThatExitedAreKilledToo) {
  const std::string pid_file = dir_.File("pid");
  auto a = Make(Shell("sleep 30 >/dev/null 2>&1 & echo $! > " + pid_file + "; echo READY") +
                "rule = [ { match = \"READY\", state = \"IDLE\" } ]\n");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE");
  const pid_t background = std::stoi(instrumeter::testing::ReadFile(pid_file));
  EXPECT_TRUE(
      instrumeter::testing::WaitFor([&] { return Gone(background); }, std::chrono::seconds(5)));
}

TEST_F(ExecTest, OutputIsCappedAndALoudCommandCannotBlock) {
  auto a = Make(Shell("echo BUSY; head -c 3000000 /dev/zero | tr \"\\\\0\" x") +
                // 66000 x's would match the first rule, had more than 64 KiB been kept.
                "rule = [ { match = \"x{60000}x{6000}\", state = \"FAULT\" }, { match = "
                "\"^BUSY\", state = \"IN_USE\" } ]\n");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(PollOnce(a->adapter()), "state=IN_USE");
}

TEST_F(ExecTest, ACommandThatCannotStartIsAnError) {
  auto a = Make(
      "command = [\"/nonexistent/vendor-status\"]\nexit_code_states = { \"0\" = "
      "\"IDLE\" }\n");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(PollOnce(a->adapter()),
            "error: exec 'probe' (/nonexistent/vendor-status): cannot run "
            "'/nonexistent/vendor-status': No such file or directory");
}

TEST_F(ExecTest, ASignalIsAnError) {
  auto a = Make(Shell("kill -TERM $$") + "exit_code_states = { \"0\" = \"IDLE\" }\n");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(PollOnce(a->adapter()), "error: exec 'probe' (/bin/sh): killed by signal 15");
}

// Golden cases: testdata/golden/<case>/ (see adapters/testing/adapter_harness.h). Verbs:
//   status <text>   writes <text> and a newline to ${DIR}/status.txt (for commands that read it)
class ExecGoldenTest : public ::testing::TestWithParam<adapters::testing::GoldenCase> {};

TEST_P(ExecGoldenTest, Plays) {
  instrumeter::testing::TempDir dir;
  FakeClock clock;
  adapters::testing::GoldenRunner runner("exec", &clock, dir.path());
  runner.AddVerb("status", [&](const std::string& text) {
    instrumeter::testing::WriteFile(dir.File("status.txt"), text + "\n");
    return Status::Ok();
  });
  for (const std::string& failure : runner.Run(GetParam(), {{"DIR", dir.path()}}))
    ADD_FAILURE() << GetParam().name << ": " << failure;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ExecGoldenTest,
    ::testing::ValuesIn(adapters::testing::LoadGoldenCases(INSTRUMETER_GOLDEN_DIR)),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace instrumeter::adapters::exec
