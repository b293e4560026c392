#include "checkpoint.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "test_support/process.h"

namespace instrumeter::agent {
namespace {

CheckpointData Data(int64_t mono, uint64_t powered) {
  return CheckpointData{
      Instant{mono, 1'767'225'600'000 + mono, "8d3f0c52-7b1e-4d7a-9a52-c1e4f0a1b2c3"},
      Counters{powered, powered / 2}, v1::INSTRUMENT_STATE_IN_USE, 1'767'225'600'000};
}

void Overwrite(const std::string& path, off_t offset, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), offset), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

class CheckpointTest : public ::testing::Test {
 protected:
  testing::TempDir dir_;
  std::string path_ = dir_.File("checkpoint");
};

TEST_F(CheckpointTest, RoundTripKeepsTheNewestWrite) {
  {
    auto file = CheckpointFile::Open(path_);
    ASSERT_TRUE(file.ok()) << file.status().ToString();
    EXPECT_FALSE((*file)->last());
    for (int i = 1; i <= 5; ++i) ASSERT_TRUE((*file)->Write(Data(1000 * i, 10 * i)).ok());
  }
  EXPECT_EQ(std::filesystem::file_size(path_), CheckpointFile::kFileBytes);
  auto read = CheckpointFile::Read(path_);
  ASSERT_TRUE(read.ok());
  ASSERT_TRUE(*read);
  EXPECT_EQ(**read, Data(5000, 50));
  auto reopened = CheckpointFile::Open(path_);
  ASSERT_TRUE(reopened.ok());
  ASSERT_TRUE((*reopened)->last());
  EXPECT_EQ(*(*reopened)->last(), Data(5000, 50));
  ASSERT_TRUE((*reopened)->Write(Data(6000, 60)).ok());
  EXPECT_EQ(**CheckpointFile::Read(path_), Data(6000, 60));
}

TEST_F(CheckpointTest, TornSlotFallsBackToTheOther) {
  {
    auto file = CheckpointFile::Open(path_);
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE((*file)->Write(Data(1000, 10)).ok());  // generation 1: slot 1
    ASSERT_TRUE((*file)->Write(Data(2000, 20)).ok());  // generation 2: slot 0
  }
  // A write torn half-way through slot 0: its first bytes are new, the rest old.
  Overwrite(path_, 40, std::string(30, '\x5a'));
  auto read = CheckpointFile::Read(path_);
  ASSERT_TRUE(read.ok());
  ASSERT_TRUE(*read);
  EXPECT_EQ(**read, Data(1000, 10));
  // The next write goes to the slot after the newest valid one and is believed.
  auto file = CheckpointFile::Open(path_);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE((*file)->Write(Data(3000, 30)).ok());
  EXPECT_EQ(**CheckpointFile::Read(path_), Data(3000, 30));
}

TEST_F(CheckpointTest, TruncatedFileKeepsWhatIsWhole) {
  {
    auto file = CheckpointFile::Open(path_);
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE((*file)->Write(Data(1000, 10)).ok());  // slot 1
    ASSERT_TRUE((*file)->Write(Data(2000, 20)).ok());  // slot 0
  }
  std::filesystem::resize_file(path_, CheckpointFile::kSlotBytes + 17);
  EXPECT_EQ(**CheckpointFile::Read(path_), Data(2000, 20));
  std::filesystem::resize_file(path_, 100);
  EXPECT_FALSE(*CheckpointFile::Read(path_)) << "no whole slot left";
  std::filesystem::resize_file(path_, 0);
  auto file = CheckpointFile::Open(path_);
  ASSERT_TRUE(file.ok());
  EXPECT_FALSE((*file)->last());
  EXPECT_EQ(std::filesystem::file_size(path_), CheckpointFile::kFileBytes);
}

TEST_F(CheckpointTest, NeverReadsGarbage) {
  std::mt19937 rng(42);
  for (int round = 0; round < 200; ++round) {
    std::string noise(CheckpointFile::kFileBytes, '\0');
    for (char& c : noise) c = static_cast<char>(rng());
    testing::WriteFile(path_, noise);
    auto read = CheckpointFile::Read(path_);
    ASSERT_TRUE(read.ok());
    EXPECT_FALSE(*read) << "round " << round;
  }
  EXPECT_FALSE(*CheckpointFile::Read(dir_.File("missing")));
}

TEST_F(CheckpointTest, EveryFlippedBitIsDetected) {
  {
    auto file = CheckpointFile::Open(path_);
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE((*file)->Write(Data(1000, 10)).ok());  // slot 1 only
  }
  const std::string good = testing::ReadFile(path_);
  for (size_t bit = 0; bit < CheckpointFile::kSlotBytes * 8; ++bit) {
    std::string bad = good;
    bad[CheckpointFile::kSlotBytes + bit / 8] ^= static_cast<char>(1 << (bit % 8));
    testing::WriteFile(path_, bad);
    EXPECT_FALSE(*CheckpointFile::Read(path_)) << "bit " << bit;
  }
}

TEST_F(CheckpointTest, SecondWriterIsRefused) {
  auto first = CheckpointFile::Open(path_);
  ASSERT_TRUE(first.ok());
  auto second = CheckpointFile::Open(path_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("another agent"), std::string::npos);
}

}  // namespace
}  // namespace instrumeter::agent
