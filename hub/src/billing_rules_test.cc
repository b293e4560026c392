#include "hub/billing_rules.h"

#include <gtest/gtest.h>

namespace instrumeter::hub {
namespace {

constexpr int64_t kMin = 60'000;  // one minute in ms

BillingRules Rules(Rounding rounding, int64_t unit_s = 900, int64_t min_s = 0,
                   int64_t overrun_s = 0, int64_t rate = 12'000) {
  BillingRules r;
  r.rate_fen_per_hour = rate;
  r.billing_unit_seconds = unit_s;
  r.minimum_charge_seconds = min_s;
  r.rounding = rounding;
  r.allowed_overrun_seconds = overrun_s;
  return r;
}

TEST(BillingRulesTest, RoundToUnits) {
  struct Case {
    int64_t ms;
    int64_t unit_s;
    Rounding rounding;
    int64_t seconds;
  };
  const Case cases[] = {
      {0, 900, Rounding::kUp, 0},
      {1, 900, Rounding::kUp, 900},
      {900'000, 900, Rounding::kUp, 900},
      {900'001, 900, Rounding::kUp, 1800},
      {899'999, 900, Rounding::kDown, 0},
      {1'799'999, 900, Rounding::kDown, 900},
      {449'999, 900, Rounding::kNearest, 0},
      {450'000, 900, Rounding::kNearest, 900},  // half a unit rounds up
      {1'349'999, 900, Rounding::kNearest, 900},
      {1'350'000, 900, Rounding::kNearest, 1800},
      {1'500, 1, Rounding::kNearest, 2},
      {1'499, 1, Rounding::kNearest, 1},
      {-5, 900, Rounding::kUp, 0},
  };
  for (const Case& c : cases)
    EXPECT_EQ(RoundToUnits(c.ms, c.unit_s, c.rounding), c.seconds)
        << c.ms << " ms, unit " << c.unit_s << " s, " << RoundingName(c.rounding);
}

TEST(BillingRulesTest, BillableSecondsWorkedByHand) {
  struct Case {
    const char* what;
    BillingRules rules;
    int64_t booked_ms;
    int64_t used_ms;
    int64_t billable_s;
  };
  const Case cases[] = {
      {"50 min of 60 -> 3.33 units -> 3 units", Rules(Rounding::kNearest), 60 * kMin, 50 * kMin,
       2700},
      {"52.5 min -> 3.5 units -> half up -> 4", Rules(Rounding::kNearest), 60 * kMin, 3'150'000,
       3600},
      {"a millisecond less stays at 3", Rules(Rounding::kNearest), 60 * kMin, 3'149'999, 2700},
      {"up: one millisecond is one unit", Rules(Rounding::kUp), 60 * kMin, 1, 900},
      {"down: under a unit is nothing", Rules(Rounding::kDown), 60 * kMin, 899'999, 0},
      {"down, but the minimum charge applies to any use", Rules(Rounding::kDown, 900, 1800),
       60 * kMin, 899'999, 1800},
      {"no use: no charge, minimum or not", Rules(Rounding::kUp, 900, 3600), 60 * kMin, 0, 0},
      {"70 min on a 60 min booking without overrun: capped at 60", Rules(Rounding::kNearest),
       60 * kMin, 70 * kMin, 3600},
      {"10 min allowed overrun: cap 70 min; 4.67 units -> 5 -> back to the cap",
       Rules(Rounding::kNearest, 900, 0, 600), 60 * kMin, 70 * kMin, 4200},
      {"rounding up never lifts past the cap (50 min booked)", Rules(Rounding::kUp), 50 * kMin,
       49 * kMin, 3000},
      {"a minimum above the booked time still applies", Rules(Rounding::kNearest, 900, 3600),
       30 * kMin, 10 * kMin, 3600},
      {"a booking with milliseconds: the cap is whole seconds", Rules(Rounding::kUp, 1), 1'500,
       5'000, 1},
  };
  for (const Case& c : cases)
    EXPECT_EQ(BillableSeconds(c.rules, c.booked_ms, c.used_ms), c.billable_s) << c.what;
}

TEST(BillingRulesTest, AmountRoundsHalfAFenUp) {
  EXPECT_EQ(AmountFen(12'000, 2700), 9'000);  // 120 yuan/h for 45 min
  EXPECT_EQ(AmountFen(12'345, 900), 3'086);   // 3086.25
  EXPECT_EQ(AmountFen(10, 180), 1);           // 0.5 -> 1
  EXPECT_EQ(AmountFen(1, 1799), 0);           // 0.4997
  EXPECT_EQ(AmountFen(1, 1800), 1);           // 0.5
  EXPECT_EQ(AmountFen(0, 3600), 0);
  // The largest rate for the longest booking stays exact.
  EXPECT_EQ(AmountFen(1'000'000'000, 366LL * 86'400), 366LL * 24 * 1'000'000'000);
}

TEST(BillingRulesTest, VoucherShareRoundsDownAndIsCapped) {
  const auto voucher = [](int64_t percent, int64_t cap) {
    return Voucher{"V-1", "Jiangsu", percent, cap, Redemption::kProvider};
  };
  EXPECT_EQ(VoucherFen(9'000, voucher(50, 100'000)), 4'500);
  EXPECT_EQ(VoucherFen(9'001, voucher(50, 100'000)), 4'500);  // 4500.5 -> 4500
  EXPECT_EQ(VoucherFen(9'001, voucher(50, 3'000)), 3'000);
  EXPECT_EQ(VoucherFen(10'000, voucher(33, 100'000)), 3'300);
  EXPECT_EQ(VoucherFen(10'000, voucher(0, 100'000)), 0);
  EXPECT_EQ(VoucherFen(10'000, voucher(100, 100'000)), 10'000);
  EXPECT_EQ(VoucherFen(10'000, voucher(100, 0)), 0);
}

// The worked example of docs/billing.md, "Voucher arithmetic".
TEST(BillingRulesTest, DocumentedExample) {
  BillingRules rules = Rules(Rounding::kNearest, 900, 0, 0, 45'000);
  const int64_t booked_ms = 3 * 60 * kMin;                     // 09:00-12:00
  const int64_t used_ms = (2 * 3600 + 52 * 60 + 20) * 1000LL;  // 2 h 52 min 20 s
  Voucher v{"JS-2026-0017", "Jiangsu", 40, 50'000, Redemption::kProvider};
  Charges c = ComputeCharges(rules, v, booked_ms, used_ms);
  EXPECT_EQ(c, (Charges{.billable_seconds = 9'900,  // 11.49 units -> 11 units of 15 min
                        .amount_fen = 123'750,
                        .voucher_fen = 49'500,  // 40 % = 49,500 < cap 50,000
                        .customer_share_fen = 74'250,
                        .customer_pays_now_fen = 74'250,
                        .provider_redeems_fen = 49'500,
                        .customer_reimbursed_fen = 0}));
  v.redemption = Redemption::kReimburse;
  c = ComputeCharges(rules, v, booked_ms, used_ms);
  EXPECT_EQ(c.customer_share_fen, 74'250);
  EXPECT_EQ(c.customer_pays_now_fen, 123'750);
  EXPECT_EQ(c.provider_redeems_fen, 0);
  EXPECT_EQ(c.customer_reimbursed_fen, 49'500);
  // Without a voucher the customer bears it all.
  c = ComputeCharges(rules, std::nullopt, booked_ms, used_ms);
  EXPECT_EQ(c.voucher_fen, 0);
  EXPECT_EQ(c.customer_share_fen, 123'750);
  EXPECT_EQ(c.customer_pays_now_fen, 123'750);
}

TEST(BillingRulesTest, ResolvingOverlaysFieldByField) {
  PartialBillingRules defaults = {std::nullopt, 900, 0, Rounding::kNearest, 0, 600, 600};
  PartialBillingRules instrument;
  instrument.rate_fen_per_hour = 30'000;
  instrument.rounding = Rounding::kUp;
  PartialBillingRules booking;
  booking.rate_fen_per_hour = 25'000;
  Result<BillingRules> r = Complete(Overlay(booking, Overlay(instrument, defaults)));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->rate_fen_per_hour, 25'000);
  EXPECT_EQ(r->rounding, Rounding::kUp);
  EXPECT_EQ(r->billing_unit_seconds, 900);
  Result<BillingRules> missing = Complete(defaults);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(), "rate_fen_per_hour is not set");
}

TEST(BillingRulesTest, RuleTextAndBounds) {
  PartialBillingRules p;
  EXPECT_TRUE(SetRuleFromText(RuleField::kBillingUnitSeconds, "300", &p).ok());
  EXPECT_EQ(p.billing_unit_seconds, 300);
  EXPECT_TRUE(SetRuleFromText(RuleField::kRounding, "down", &p).ok());
  EXPECT_EQ(RuleText(RuleField::kRounding, p), "down");
  EXPECT_EQ(SetRuleFromText(RuleField::kBillingUnitSeconds, "0", &p).message(),
            "0 is out of range 1..86400");
  EXPECT_EQ(SetRuleFromText(RuleField::kGraceAfterSeconds, "1.5", &p).message(),
            "'1.5' is not an integer");
  EXPECT_EQ(SetRuleFromText(RuleField::kRounding, "half", &p).message(),
            "'half' is not up, down or nearest");
  ClearRule(RuleField::kBillingUnitSeconds, &p);
  EXPECT_EQ(RuleText(RuleField::kBillingUnitSeconds, p), "");
  for (int f = 0; f < kRuleFieldCount; ++f) {
    const auto field = static_cast<RuleField>(f);
    EXPECT_EQ(RuleFieldByName(RuleFieldName(field)), field);
  }
}

}  // namespace
}  // namespace instrumeter::hub
