#include "adapters/process/process_adapter.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <sstream>

#include "adapters/testing/adapter_harness.h"
#include "test_support/process.h"

namespace instrumeter::adapters::process {
namespace {

using adapters::testing::ConfiguredAdapter;
using adapters::testing::PollOnce;
using instrumeter::testing::ChildProcess;

// A short token unique to this test process, so names cannot collide with real processes.
std::string Unique() {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%06x", static_cast<unsigned>(::getpid()) & 0xFFFFFF);
  return buffer;
}

char ProcState(pid_t pid) {
  const std::string stat = instrumeter::testing::ReadFile("/proc/" + std::to_string(pid) + "/stat");
  const size_t close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() ? '?' : stat[close + 2];
}

class ProcessTest : public ::testing::Test {
 protected:
  // Runs a copy of /bin/sleep under `name`, so that its comm and argv[0] are `name`.
  ChildProcess RunAs(const std::string& name, const std::vector<std::string>& args = {"30"}) {
    const std::string path = dir_.File(name);
    if (!std::filesystem::exists(path)) std::filesystem::copy_file("/bin/sleep", path);
    std::vector<std::string> argv = {path};
    argv.insert(argv.end(), args.begin(), args.end());
    auto child = ChildProcess::Start(argv, dir_.File("child.log"));
    EXPECT_TRUE(child.ok());
    // Until exec has happened, the child still carries the test's own name.
    EXPECT_TRUE(instrumeter::testing::WaitFor(
        [&] {
          return instrumeter::testing::ReadFile("/proc/" + std::to_string(child->pid()) + "/comm")
                     .rfind(name.substr(0, 15), 0) == 0;
        },
        std::chrono::seconds(5)));
    return std::move(*child);
  }
  std::unique_ptr<ConfiguredAdapter> Make(const std::string& keys) {
    auto made = ConfiguredAdapter::Make("process", keys, {"acq", &clock_, dir_.path()});
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    return made.ok() ? std::move(*made) : nullptr;
  }

  instrumeter::testing::TempDir dir_;
  FakeClock clock_;
  std::string name_ = "acq" + Unique();
};

TEST_F(ProcessTest, ARunningProcessMeansInUseAndItsEndMeansIdle) {
  auto a = Make("process_name = \"" + name_ + "\"\n");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(PollOnce(a->adapter()), "process_present=0 state=IDLE");
  ChildProcess child = RunAs(name_);
  EXPECT_EQ(PollOnce(a->adapter()), "process_present=1 state=IN_USE");
  adapters::testing::RecordingSink sink;
  ASSERT_TRUE((*a)->Poll(sink).ok());
  EXPECT_EQ(sink.seen[0].text, "pid " + std::to_string(child.pid()) + " '" + name_ + "'");
  child.Stop(std::chrono::milliseconds(100));
  EXPECT_EQ(PollOnce(a->adapter()), "process_present=0 state=IDLE");
}

TEST_F(ProcessTest, AZombieDoesNotCountAsRunning) {
  auto a = Make("process_name = \"" + name_ + "\"\n");
  ASSERT_NE(a, nullptr);
  ChildProcess child = RunAs(name_);
  ::kill(child.pid(), SIGKILL);  // killed, not reaped yet: a zombie keeps its /proc entry
  ASSERT_TRUE(instrumeter::testing::WaitFor([&] { return ProcState(child.pid()) == 'Z'; },
                                            std::chrono::seconds(5)));
  EXPECT_EQ(PollOnce(a->adapter()), "process_present=0 state=IDLE");
}

TEST_F(ProcessTest, CommandLinePatternAndNameMustBothMatchWhenBothAreSet) {
  ChildProcess child = RunAs(name_, {"1234.5"});
  auto by_argument = Make("cmdline_pattern = 'acq[0-9a-f]+.1234\\.5$'\n");
  ASSERT_NE(by_argument, nullptr);
  EXPECT_EQ(PollOnce(by_argument->adapter()), "process_present=1 state=IN_USE")
      << "`.` matches the NUL between arguments";
  auto both = Make("process_name = \"" + name_ + "\"\ncmdline_pattern = \"--batch\"\n");
  ASSERT_NE(both, nullptr);
  EXPECT_EQ(PollOnce(both->adapter()), "process_present=0 state=IDLE");
}

TEST_F(ProcessTest, NamesLongerThanTheKernelKeepsAreMatchedInFull) {
  const std::string long_name = "acquisition-server-" + Unique();
  ChildProcess child = RunAs(long_name);
  auto full = Make("process_name = \"" + long_name + "\"\n");
  ASSERT_NE(full, nullptr);
  EXPECT_EQ(PollOnce(full->adapter()), "process_present=1 state=IN_USE");
  auto other = Make("process_name = \"acquisition-server-other\"\n");
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(PollOnce(other->adapter()), "process_present=0 state=IDLE")
      << "same first 15 characters, different name";
}

TEST_F(ProcessTest, TheSystemTableReportsUsersWithoutFailing) {
  auto a = Make("process_name = \"" + name_ + "\"\nreport_user = true\n");
  ASSERT_NE(a, nullptr);
  adapters::testing::RecordingSink sink;
  ASSERT_TRUE((*a)->Poll(sink).ok());
  ASSERT_EQ(sink.seen.size(), 3u);
  EXPECT_EQ(sink.seen[0].kind, Observation::Kind::kUserLoggedIn);
}

// The seam: what a Windows ProcessTable would give, and what the adapter makes of it.
class FakeTable : public ProcessTable {
 public:
  Result<std::vector<ProcessInfo>> ListProcesses() override { return processes; }
  Result<std::vector<LoggedInUser>> LoggedInUsers() override { return users; }
  std::vector<ProcessInfo> processes;
  std::vector<LoggedInUser> users;
};

TEST(ProcessSeamTest, UsersAreReportedOnceEachAndTheLowestPidWins) {
  auto table = std::make_unique<FakeTable>();
  table->processes = {{4120, "TopSpin.exe", ""}, {812, "TopSpin.exe", ""}, {9, "explorer.exe", ""}};
  table->users = {
      {"wang.li", "console", ""}, {"wang.li", "rdp#1", "10.0.0.9"}, {"op", "rdp#2", "x"}};
  FakeClock clock;
  ProcessAdapter adapter({"acq", &clock, "/tmp"}, std::move(table));
  auto toml = config::ParseString("process_name = \"TopSpin.exe\"\nreport_user = true\n", "t.toml");
  ASSERT_TRUE(toml.ok());
  auto section = config::Section::Make(*toml, ProcessSchema(), "[[adapter]] 'acq'");
  ASSERT_TRUE(section.ok());
  ASSERT_TRUE(adapter.Init(*section).ok());
  adapters::testing::RecordingSink sink;
  ASSERT_TRUE(adapter.Poll(sink).ok());
  EXPECT_EQ(adapters::testing::RenderPoll(Status::Ok(), sink.seen),
            "user='wang.li,op' process_present=1 state=IN_USE");
  EXPECT_EQ(sink.seen[1].text, "pid 812 'TopSpin.exe'");
}

// Golden cases: testdata/golden/<case>/ (see adapters/testing/adapter_harness.h). Verbs:
//   run <name> [args...]   runs a copy of /bin/sleep named <name> (${UNIQ} allowed), default 30 s
//   kill <name>            kills and reaps every copy running under <name>
class ProcessGoldenTest : public ::testing::TestWithParam<adapters::testing::GoldenCase> {};

TEST_P(ProcessGoldenTest, Plays) {
  instrumeter::testing::TempDir dir;
  FakeClock clock;
  const std::map<std::string, std::string> vars = {{"UNIQ", Unique()}};
  std::multimap<std::string, ChildProcess> children;
  adapters::testing::GoldenRunner runner("process", &clock, dir.path());
  runner.AddVerb("run", [&](const std::string& args) {
    std::istringstream in(adapters::testing::Substitute(args, vars));
    std::string name, arg;
    in >> name;
    std::vector<std::string> argv = {dir.File(name)};
    while (in >> arg) argv.push_back(arg);
    if (argv.size() == 1) argv.push_back("30");
    std::filesystem::copy_file("/bin/sleep", argv[0], std::filesystem::copy_options::skip_existing);
    auto child = ChildProcess::Start(argv, dir.File("child.log"));
    if (!child.ok()) return child.status();
    const pid_t pid = child->pid();
    children.emplace(name, std::move(*child));
    if (!instrumeter::testing::WaitFor(
            [&] {
              return instrumeter::testing::ReadFile("/proc/" + std::to_string(pid) + "/comm")
                         .rfind(name.substr(0, 15), 0) == 0;
            },
            std::chrono::seconds(5)))
      return Status::Unavailable("the child did not exec");
    return Status::Ok();
  });
  runner.AddVerb("kill", [&](const std::string& name) {
    auto [first, last] = children.equal_range(adapters::testing::Substitute(name, vars));
    if (first == last) return Status::NotFound("no child " + name);
    for (auto it = first; it != last; ++it) it->second.Stop(std::chrono::milliseconds(100));
    children.erase(first, last);
    return Status::Ok();
  });
  for (const std::string& failure : runner.Run(GetParam(), vars))
    ADD_FAILURE() << GetParam().name << ": " << failure;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ProcessGoldenTest,
    ::testing::ValuesIn(adapters::testing::LoadGoldenCases(INSTRUMETER_GOLDEN_DIR)),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace instrumeter::adapters::process
