#include "adapters/logfile/logfile_adapter.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "adapters/testing/adapter_harness.h"
#include "test_support/process.h"

namespace instrumeter::adapters::logfile {
namespace {

using adapters::testing::ConfiguredAdapter;
using adapters::testing::PollOnce;

void Append(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::app | std::ios::binary);
  out << text;
}

class LogfileTest : public ::testing::Test {
 protected:
  std::string Config(const std::string& extra = "") {
    return "path = \"" + log_ + "\"\n" + extra +
           "rule = [ { match = \"Acquisition started\", state = \"IN_USE\" },\n"
           "         { match = \"Run complete|Ready\", state = \"IDLE\" },\n"
           "         { match = \"ERROR\", state = \"FAULT\" } ]\n";
  }
  std::unique_ptr<ConfiguredAdapter> Make(const std::string& extra = "") {
    auto made =
        ConfiguredAdapter::Make("logfile", Config(extra), {"nmr-log", &clock_, dir_.path()});
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    if (!made.ok()) return nullptr;
    EXPECT_TRUE((*made)->adapter().Start().ok());
    return std::move(*made);
  }

  instrumeter::testing::TempDir dir_;
  FakeClock clock_;
  std::string log_ = dir_.File("instrument.log");
};

TEST_F(LogfileTest, LinesTurnIntoStatesAndPartialLinesWait) {
  instrumeter::testing::WriteFile(log_, "boot\nReady\n");
  auto a = Make();
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE");
  Append(log_, "12:00 Acquisition sta");
  EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE") << "half a line is not a line yet";
  Append(log_, "rted\r\n");
  EXPECT_EQ(PollOnce(a->adapter()), "state=IN_USE");
  Append(log_, "noise that matches nothing\n");
  EXPECT_EQ(PollOnce(a->adapter()), "state=IN_USE") << "the last matching line holds";
  Append(log_, "ERROR detector\nReady\n");
  EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE") << "the last matching line of a batch wins";
}

TEST_F(LogfileTest, RotationFinishesTheOldFileThenReadsTheNewOneFromItsStart) {
  instrumeter::testing::WriteFile(log_, "Ready\n");
  auto a = Make();
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE");
  // The writer logs a last line, then rotates (rename + new file) and goes on in the new file.
  Append(log_, "Acquisition started\n");
  std::filesystem::rename(log_, log_ + ".1");
  instrumeter::testing::WriteFile(log_, "Run complete\nAcquisition started\n");
  EXPECT_EQ(PollOnce(a->adapter()), "state=IN_USE");
  std::filesystem::rename(log_, log_ + ".2");
  instrumeter::testing::WriteFile(log_, "Run complete\n");
  EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE");
}

TEST_F(LogfileTest, BetweenRenameAndNewFileTheOldFileIsStillFollowed) {
  instrumeter::testing::WriteFile(log_, "Ready\n");
  auto a = Make();
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE");
  std::filesystem::rename(log_, log_ + ".1");
  Append(log_ + ".1", "Acquisition started\n");  // the writer still has the old file open
  EXPECT_EQ(PollOnce(a->adapter()), "state=IN_USE") << "no file at the path is no reason to stop";
  instrumeter::testing::WriteFile(log_, "Run complete\n");
  EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE");
}

TEST_F(LogfileTest, TruncationStartsAgainFromZero) {
  instrumeter::testing::WriteFile(log_, "Acquisition started\nmore and more text\n");
  auto a = Make();
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(PollOnce(a->adapter()), "state=IN_USE");
  instrumeter::testing::WriteFile(log_, "Ready\n");  // shorter than the offset: truncated
  EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE");
}

TEST_F(LogfileTest, RestartContinuesAtTheSavedOffsetWithoutRereading) {
  instrumeter::testing::WriteFile(log_, "ERROR old\nAcquisition started\n");
  {
    auto a = Make();
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(PollOnce(a->adapter()), "state=IN_USE");
    Append(log_, "Run comp");  // a partial line at shutdown is read again after the restart
    EXPECT_EQ(PollOnce(a->adapter()), "state=IN_USE");
    (*a)->Stop();
  }
  EXPECT_TRUE(std::filesystem::exists(dir_.File("logfile-nmr-log.offset")));
  {
    auto a = Make();
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(PollOnce(a->adapter()), "state=IN_USE") << "the state survives the restart";
    Append(log_, "lete\n");
    EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE");
    // Killed without Stop: a run saves its first new position at once, in the poll.
  }
  auto a = Make();
  ASSERT_NE(a, nullptr);
  // Had the old lines been read again, "ERROR old" or "Acquisition started" would be last seen
  // before "Run complete"; the state must stay IDLE and stay so.
  EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE");
  Append(log_, "Acquisition started\n");
  EXPECT_EQ(PollOnce(a->adapter()), "state=IN_USE");
}

// "<offset> <state>" from a position file ("v1 <device> <inode> <offset> <state> <why...>").
std::string SavedPosition(const std::string& offset_file) {
  std::istringstream in(instrumeter::testing::ReadFile(offset_file));
  std::string version, device, inode, offset, state;
  in >> version >> device >> inode >> offset >> state;
  return offset + " " + state;
}

TEST_F(LogfileTest, ACrashWithinTheSaveIntervalReadsTheLastLinesAgainToTheSameState) {
  const std::string offset_file = dir_.File("logfile-nmr-log.offset");
  instrumeter::testing::WriteFile(log_, "Ready\n");
  {
    auto a = Make();
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE");
    EXPECT_EQ(SavedPosition(offset_file), "6 IDLE") << "the first position is saved at once";
    clock_.Advance(1000);
    Append(log_, "Acquisition started\n");
    EXPECT_EQ(PollOnce(a->adapter()), "state=IN_USE");
    EXPECT_EQ(SavedPosition(offset_file), "26 IN_USE") << "a new state is saved at once";
    clock_.Advance(1000);
    Append(log_, "ERROR detector\nRun complete\nAcquisition started\n");
    EXPECT_EQ(PollOnce(a->adapter()), "state=IN_USE");
    clock_.Advance(1000);
    Append(log_, "noise\n");
    EXPECT_EQ(PollOnce(a->adapter()), "state=IN_USE");
    EXPECT_EQ(SavedPosition(offset_file), "26 IN_USE")
        << "lines that end in the same state are not saved within the interval";
    // Killed without Stop: the saved position is two polls old.
  }
  {
    auto a = Make();
    ASSERT_NE(a, nullptr);
    // The four lines since the save are read again and end where the killed run was: IN_USE,
    // not FAULT or IDLE, which lines on the way gave.
    EXPECT_EQ(PollOnce(a->adapter()), "state=IN_USE");
    EXPECT_EQ(SavedPosition(offset_file), "80 IN_USE") << "a new run saves its first position";
    clock_.Advance(1000);
    Append(log_, "Run complete\n");
    EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE");
    EXPECT_EQ(SavedPosition(offset_file), "93 IDLE");
    clock_.Advance(1000);
    Append(log_, "noise\n");
    EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE");
    EXPECT_EQ(SavedPosition(offset_file), "93 IDLE");
    clock_.Advance(9000);
    EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE");
    EXPECT_EQ(SavedPosition(offset_file), "99 IDLE")
        << "saved once the interval has passed, without a new line";
    Append(log_, "noise\n");
    EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE");
    (*a)->Stop();
    EXPECT_EQ(SavedPosition(offset_file), "105 IDLE") << "Stop saves at once";
  }
}

TEST_F(LogfileTest, ARotationIsSavedAtOnceSoThePositionNamesTheFileBeingRead) {
  const std::string offset_file = dir_.File("logfile-nmr-log.offset");
  instrumeter::testing::WriteFile(log_, "Ready\n");
  auto a = Make();
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE");
  const std::string old_file = instrumeter::testing::ReadFile(offset_file);
  clock_.Advance(1000);
  Append(log_, "noise\n");
  std::filesystem::rename(log_, log_ + ".1");
  instrumeter::testing::WriteFile(log_, "more noise\n");
  EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE");
  EXPECT_EQ(SavedPosition(offset_file), "11 IDLE") << "the new file's offset, within the interval";
  EXPECT_NE(instrumeter::testing::ReadFile(offset_file), old_file);
}

TEST_F(LogfileTest, ASaveIntervalOfZeroSavesEveryPollThatReadALine) {
  const std::string offset_file = dir_.File("logfile-nmr-log.offset");
  instrumeter::testing::WriteFile(log_, "Ready\n");
  auto a = Make("position_save_interval_ms = 0\n");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE");
  Append(log_, "Acquisition started\n");
  EXPECT_EQ(PollOnce(a->adapter()), "state=IN_USE");
  EXPECT_EQ(SavedPosition(offset_file), "26 IN_USE");
}

TEST_F(LogfileTest, AFileRotatedWhileStoppedIsReadFromItsStart) {
  instrumeter::testing::WriteFile(log_, "Acquisition started\n");
  {
    auto a = Make();
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(PollOnce(a->adapter()), "state=IN_USE");
    (*a)->Stop();
  }
  std::filesystem::rename(log_, log_ + ".1");
  instrumeter::testing::WriteFile(log_, "x\n");
  auto a = Make();
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(PollOnce(a->adapter()), "state=IN_USE") << "no new line matched: the state holds";
  Append(log_, "Ready\n");
  EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE");
}

TEST_F(LogfileTest, AHugeBacklogIsReadInBoundedStepsAndReportedAsCatchingUp) {
  std::string backlog;
  for (int i = 0; i < 2000; ++i) backlog += "line " + std::to_string(i) + " Acquisition started\n";
  backlog += "Run complete\n";
  instrumeter::testing::WriteFile(log_, backlog);
  auto a = Make("max_read_bytes = 8192\n");
  ASSERT_NE(a, nullptr);
  int catching_up = 0;
  std::string last;
  for (int i = 0; i < 100; ++i) {
    last = PollOnce(a->adapter());
    if (last.find("catching up") == std::string::npos) break;
    ++catching_up;
  }
  EXPECT_EQ(last, "state=IDLE");
  // ~50 kB at 8 kB per poll: never a stale IN_USE reported on the way.
  EXPECT_GE(catching_up, 5);
  EXPECT_LE(catching_up, 8);
}

TEST_F(LogfileTest, NoOpinionBeforeAMatchUnlessAnInitialStateIsSet) {
  instrumeter::testing::WriteFile(log_, "nothing to see\n");
  auto a = Make();
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(
      PollOnce(a->adapter()).find("error: logfile 'nmr-log' " + log_ + ": no matching line yet"),
      0u);
  std::filesystem::remove(dir_.File("logfile-nmr-log.offset"));
  auto b = Make("initial_state = \"OFF\"\n");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(PollOnce(b->adapter()), "state=OFF");
}

TEST_F(LogfileTest, AMissingFileIsAnErrorUntilItAppears) {
  auto a = Make();
  ASSERT_NE(a, nullptr);
  const std::string first = PollOnce(a->adapter());
  EXPECT_NE(first.find("logfile 'nmr-log': cannot open " + log_), std::string::npos) << first;
  instrumeter::testing::WriteFile(log_, "Ready\n");
  EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE");
}

TEST_F(LogfileTest, OverlongLinesAreCutNotBuffered) {
  instrumeter::testing::WriteFile(log_,
                                  std::string(100'000, 'x') + " Acquisition started\nReady\n");
  auto a = Make("max_line_bytes = 1024\n");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(PollOnce(a->adapter()), "state=IDLE");
  Append(log_, "Acquisition started" + std::string(5000, 'y') + "\n");
  EXPECT_EQ(PollOnce(a->adapter()), "state=IN_USE") << "the start of a long line still counts";
}

// Golden cases: testdata/golden/<case>/ (see adapters/testing/adapter_harness.h). Verbs:
//   write <text>          appends <text> and a newline
//   write-partial <text>  appends <text> without a newline
//   rotate                renames the log to <log>.1 and starts an empty one
//   truncate              empties the log in place
class LogfileGoldenTest : public ::testing::TestWithParam<adapters::testing::GoldenCase> {};

TEST_P(LogfileGoldenTest, Plays) {
  instrumeter::testing::TempDir dir;
  FakeClock clock;
  const std::string log = dir.File("instrument.log");
  adapters::testing::GoldenRunner runner("logfile", &clock, dir.path());
  runner.AddVerb("write", [&](const std::string& text) {
    Append(log, text + "\n");
    return Status::Ok();
  });
  runner.AddVerb("write-partial", [&](const std::string& text) {
    Append(log, text);
    return Status::Ok();
  });
  runner.AddVerb("rotate", [&](const std::string&) {
    std::filesystem::rename(log, log + ".1");
    instrumeter::testing::WriteFile(log, "");
    return Status::Ok();
  });
  runner.AddVerb("truncate", [&](const std::string&) {
    std::filesystem::resize_file(log, 0);
    return Status::Ok();
  });
  for (const std::string& failure : runner.Run(GetParam(), {{"DIR", dir.path()}}))
    ADD_FAILURE() << GetParam().name << ": " << failure;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, LogfileGoldenTest,
    ::testing::ValuesIn(adapters::testing::LoadGoldenCases(INSTRUMETER_GOLDEN_DIR)),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace instrumeter::adapters::logfile
