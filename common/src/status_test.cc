#include "common/status.h"

#include <gtest/gtest.h>

namespace instrumeter {
namespace {

TEST(StatusTest, ContextIsPrependedAndCodeKept) {
  Status st = Status::IoError("disk full").WithContext("outbox /var/lib/x.db");
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Status::Code::kIoError);
  EXPECT_EQ(st.message(), "outbox /var/lib/x.db: disk full");
  EXPECT_EQ(st.ToString(), "IoError: outbox /var/lib/x.db: disk full");
  EXPECT_TRUE(Status::Ok().WithContext("ignored").ok());
}

Status FailsWhen(bool fail) {
  INSTRUMETER_RETURN_IF_ERROR(fail ? Status::NotFound("x") : Status::Ok());
  return Status::Internal("reached the end");
}

TEST(StatusTest, ReturnIfErrorReturnsEarly) {
  EXPECT_EQ(FailsWhen(true).code(), Status::Code::kNotFound);
  EXPECT_EQ(FailsWhen(false).code(), Status::Code::kInternal);
}

TEST(ResultTest, HoldsValueOrStatus) {
  Result<int> good = 7;
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 7);
  Result<int> bad = Status::InvalidArgument("nope");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "nope");
  Result<int> misuse = Status::Ok();
  EXPECT_FALSE(misuse.ok()) << "an OK status without a value must not look like success";
}

}  // namespace
}  // namespace instrumeter
