#include "combiner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace instrumeter::agent {
namespace {

using adapters::SourceState;
using Names = std::vector<std::string>;

constexpr auto kOff = SourceState::kOff;
constexpr auto kIdle = SourceState::kIdle;
constexpr auto kInUse = SourceState::kInUse;
constexpr auto kFault = SourceState::kFault;

Opinion Says(const std::string& adapter, SourceState s) { return {adapter, s, ""}; }
Opinion Errs(const std::string& adapter, const std::string& why) {
  return {adapter, std::nullopt, why};
}

struct Case {
  const char* name;
  Names power;
  Names use;
  std::vector<Opinion> opinions;
  v1::InstrumentState state;
  Names agreed;
  Names disagreed;
  const char* reason_contains = "";
};

class CombinerTableTest : public ::testing::TestWithParam<Case> {};

TEST_P(CombinerTableTest, Combines) {
  const Case& c = GetParam();
  const Verdict v = Combiner(c.power, c.use).Combine(c.opinions);
  EXPECT_EQ(protocol::StateName(v.state), std::string(protocol::StateName(c.state)));
  EXPECT_EQ(v.sources_agreed, c.agreed);
  EXPECT_EQ(v.sources_disagreed, c.disagreed);
  EXPECT_THAT(v.reason, ::testing::HasSubstr(c.reason_contains));
  EXPECT_EQ(v.disagreement(), !c.disagreed.empty());
}

// plug: a power meter (power source); sw: the acquisition software (use source); both: one
// adapter that speaks to both.
const Case kCases[] = {
    {"AllOff",
     {"plug"},
     {"sw"},
     {Says("plug", kOff), Says("sw", kOff)},
     v1::INSTRUMENT_STATE_OFF,
     {"plug"},
     {}},
    {"PoweredNotUsed",
     {"plug"},
     {"sw"},
     {Says("plug", kIdle), Says("sw", kIdle)},
     v1::INSTRUMENT_STATE_IDLE,
     {"plug", "sw"},
     {}},
    {"PoweredAndUsed",
     {"plug"},
     {"sw"},
     {Says("plug", kIdle), Says("sw", kInUse)},
     v1::INSTRUMENT_STATE_IN_USE,
     {"plug", "sw"},
     {}},
    {"PowerSaysInUseButNobodyUses",
     {"plug"},
     {"sw"},
     {Says("plug", kInUse), Says("sw", kOff)},
     v1::INSTRUMENT_STATE_IDLE,
     {"plug", "sw"},
     {}},
    {"AnyFaultWins",
     {"plug", "scpi"},
     {"sw"},
     {Says("plug", kIdle), Says("scpi", kFault), Says("sw", kInUse)},
     v1::INSTRUMENT_STATE_FAULT,
     {"scpi"},
     {"plug", "sw"}},
    {"FaultWinsEvenIfOtherPowerSourceErrs",
     {"plug", "scpi"},
     {"sw"},
     {Errs("plug", "timeout"), Says("scpi", kFault), Says("sw", kOff)},
     v1::INSTRUMENT_STATE_FAULT,
     {"scpi"},
     {}},
    {"EveryPowerSourceErrs",
     {"plug", "scpi"},
     {"sw"},
     {Errs("plug", "timeout"), Errs("scpi", "no reply"), Says("sw", kInUse)},
     v1::INSTRUMENT_STATE_UNKNOWN,
     {},
     {},
     "plug: timeout; scpi: no reply"},
    {"SilentPowerSourceIsAnError",
     {"plug"},
     {"sw"},
     {Says("sw", kInUse)},
     v1::INSTRUMENT_STATE_UNKNOWN,
     {},
     {},
     "plug: no state reported"},
    {"OnePowerSourceErrsTheOtherSaysOff",
     {"plug", "scpi"},
     {"sw"},
     {Errs("plug", "timeout"), Says("scpi", kOff), Says("sw", kOff)},
     v1::INSTRUMENT_STATE_OFF,
     {"scpi"},
     {}},
    {"OffButSoftwareClaimsUse",
     {"plug"},
     {"sw"},
     {Says("plug", kOff), Says("sw", kInUse)},
     v1::INSTRUMENT_STATE_OFF,
     {"plug"},
     {"sw"}},
    {"PowerSourcesDisagreeOnPower",
     {"plug", "scpi"},
     {"sw"},
     {Says("plug", kOff), Says("scpi", kIdle), Says("sw", kIdle)},
     v1::INSTRUMENT_STATE_IDLE,
     {"scpi", "sw"},
     {"plug"}},
    {"PoweredButEveryUseSourceErrs",
     {"plug"},
     {"sw", "login"},
     {Says("plug", kIdle), Errs("sw", "pgrep failed"), Errs("login", "utmp unreadable")},
     v1::INSTRUMENT_STATE_UNKNOWN,
     {},
     {},
     "sw: pgrep failed; login: utmp unreadable"},
    {"OneUseSourceSufficesForInUse",
     {"plug"},
     {"sw", "login"},
     {Says("plug", kIdle), Errs("sw", "x"), Says("login", kInUse)},
     v1::INSTRUMENT_STATE_IN_USE,
     {"plug", "login"},
     {}},
    {"UseSourcesDisagree",
     {"plug"},
     {"sw", "login"},
     {Says("plug", kIdle), Says("sw", kInUse), Says("login", kIdle)},
     v1::INSTRUMENT_STATE_IN_USE,
     {"plug", "sw"},
     {"login"}},
    {"OneAdapterInBothRoles",
     {"both"},
     {"both"},
     {Says("both", kInUse)},
     v1::INSTRUMENT_STATE_IN_USE,
     {"both"},
     {}},
    {"BothRolesFullPowerNobodyLoggedIn",
     {"both", "login"},
     {"both", "login"},
     {Says("both", kInUse), Says("login", kIdle)},
     v1::INSTRUMENT_STATE_IN_USE,
     {"both"},
     {"login"}},
    {"AdapterInNeitherRoleIsIgnored",
     {"plug"},
     {"plug"},
     {Says("plug", kIdle), Says("idn", kFault)},
     v1::INSTRUMENT_STATE_IDLE,
     {"plug"},
     {}},
};

INSTANTIATE_TEST_SUITE_P(Table, CombinerTableTest, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(CombinerTest, ReasonCarriesTheAgreeingSourcesWhy) {
  const Verdict v =
      Combiner({"plug"}, {"plug"}).Combine({{"plug", SourceState::kInUse, "1520 W above 800 W"}});
  EXPECT_EQ(v.reason, "plug: 1520 W above 800 W");
}

}  // namespace
}  // namespace instrumeter::agent
