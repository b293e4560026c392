#include "hub/billing_rules.h"

#include <algorithm>
#include <array>
#include <charconv>

namespace instrumeter::hub {
namespace {

struct FieldInfo {
  RuleField field;
  const char* name;
  RuleBounds bounds;
};

// Bounds keep rate * seconds (at most 1e9 * 3.2e7, a 366-day booking) inside int64.
constexpr std::array<FieldInfo, kRuleFieldCount> kFields = {{
    {RuleField::kRateFenPerHour, "rate_fen_per_hour", {0, 1'000'000'000}},
    {RuleField::kBillingUnitSeconds, "billing_unit_seconds", {1, 86'400}},
    {RuleField::kMinimumChargeSeconds, "minimum_charge_seconds", {0, 31 * 86'400}},
    {RuleField::kRounding, "rounding", {0, 0}},
    {RuleField::kAllowedOverrunSeconds, "allowed_overrun_seconds", {0, 7 * 86'400}},
    {RuleField::kGraceBeforeSeconds, "grace_before_seconds", {0, 86'400}},
    {RuleField::kGraceAfterSeconds, "grace_after_seconds", {0, 86'400}},
}};

// The integer slot of a field in `r` (PartialBillingRules, const or not); nullptr for kRounding.
template <typename Rules>
auto IntegerSlot(RuleField field, Rules* r) -> decltype(&r->rate_fen_per_hour) {
  switch (field) {
    case RuleField::kRateFenPerHour:
      return &r->rate_fen_per_hour;
    case RuleField::kBillingUnitSeconds:
      return &r->billing_unit_seconds;
    case RuleField::kMinimumChargeSeconds:
      return &r->minimum_charge_seconds;
    case RuleField::kAllowedOverrunSeconds:
      return &r->allowed_overrun_seconds;
    case RuleField::kGraceBeforeSeconds:
      return &r->grace_before_seconds;
    case RuleField::kGraceAfterSeconds:
      return &r->grace_after_seconds;
    case RuleField::kRounding:
      break;
  }
  return nullptr;
}

template <typename T>
std::optional<T> Or(const std::optional<T>& a, const std::optional<T>& b) {
  return a.has_value() ? a : b;
}

}  // namespace

const char* RoundingName(Rounding rounding) {
  switch (rounding) {
    case Rounding::kUp:
      return "up";
    case Rounding::kDown:
      return "down";
    case Rounding::kNearest:
      break;
  }
  return "nearest";
}

bool ParseRounding(std::string_view name, Rounding* rounding) {
  for (Rounding r : {Rounding::kUp, Rounding::kDown, Rounding::kNearest}) {
    if (name == RoundingName(r)) {
      *rounding = r;
      return true;
    }
  }
  return false;
}

const char* RuleFieldName(RuleField field) { return kFields[static_cast<size_t>(field)].name; }

std::optional<RuleField> RuleFieldByName(std::string_view name) {
  for (const FieldInfo& f : kFields)
    if (name == f.name) return f.field;
  return std::nullopt;
}

RuleBounds BoundsOf(RuleField field) { return kFields[static_cast<size_t>(field)].bounds; }

Status CheckRuleValue(RuleField field, int64_t value) {
  const RuleBounds b = BoundsOf(field);
  if (value < b.min || value > b.max)
    return Status::InvalidArgument(std::to_string(value) + " is out of range " +
                                   std::to_string(b.min) + ".." + std::to_string(b.max));
  return Status::Ok();
}

Status SetRuleFromText(RuleField field, std::string_view text, PartialBillingRules* rules) {
  if (field == RuleField::kRounding) {
    Rounding r;
    if (!ParseRounding(text, &r))
      return Status::InvalidArgument("'" + std::string(text) + "' is not up, down or nearest");
    rules->rounding = r;
    return Status::Ok();
  }
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size())
    return Status::InvalidArgument("'" + std::string(text) + "' is not an integer");
  INSTRUMETER_RETURN_IF_ERROR(CheckRuleValue(field, value));
  *IntegerSlot(field, rules) = value;
  return Status::Ok();
}

void ClearRule(RuleField field, PartialBillingRules* rules) {
  if (field == RuleField::kRounding) {
    rules->rounding.reset();
  } else {
    IntegerSlot(field, rules)->reset();
  }
}

std::optional<int64_t> RuleInteger(RuleField field, const PartialBillingRules& rules) {
  const std::optional<int64_t>* slot = IntegerSlot(field, &rules);
  return slot == nullptr ? std::nullopt : *slot;
}

std::string RuleText(RuleField field, const PartialBillingRules& rules) {
  if (field == RuleField::kRounding)
    return rules.rounding.has_value() ? RoundingName(*rules.rounding) : "";
  const std::optional<int64_t>* slot = IntegerSlot(field, &rules);
  return slot->has_value() ? std::to_string(**slot) : "";
}

PartialBillingRules Overlay(const PartialBillingRules& first, const PartialBillingRules& fallback) {
  PartialBillingRules r;
  r.rate_fen_per_hour = Or(first.rate_fen_per_hour, fallback.rate_fen_per_hour);
  r.billing_unit_seconds = Or(first.billing_unit_seconds, fallback.billing_unit_seconds);
  r.minimum_charge_seconds = Or(first.minimum_charge_seconds, fallback.minimum_charge_seconds);
  r.rounding = Or(first.rounding, fallback.rounding);
  r.allowed_overrun_seconds = Or(first.allowed_overrun_seconds, fallback.allowed_overrun_seconds);
  r.grace_before_seconds = Or(first.grace_before_seconds, fallback.grace_before_seconds);
  r.grace_after_seconds = Or(first.grace_after_seconds, fallback.grace_after_seconds);
  return r;
}

Result<BillingRules> Complete(const PartialBillingRules& p) {
  for (const FieldInfo& f : kFields)
    if (RuleText(f.field, p).empty()) return Status::NotFound(std::string(f.name) + " is not set");
  BillingRules r;
  r.rate_fen_per_hour = *p.rate_fen_per_hour;
  r.billing_unit_seconds = *p.billing_unit_seconds;
  r.minimum_charge_seconds = *p.minimum_charge_seconds;
  r.rounding = *p.rounding;
  r.allowed_overrun_seconds = *p.allowed_overrun_seconds;
  r.grace_before_seconds = *p.grace_before_seconds;
  r.grace_after_seconds = *p.grace_after_seconds;
  return r;
}

int64_t RoundToUnits(int64_t ms, int64_t unit_seconds, Rounding rounding) {
  if (ms <= 0) return 0;
  const int64_t unit_ms = unit_seconds * 1000;
  int64_t units = 0;
  switch (rounding) {
    case Rounding::kUp:
      units = (ms + unit_ms - 1) / unit_ms;
      break;
    case Rounding::kDown:
      units = ms / unit_ms;
      break;
    case Rounding::kNearest:
      units = (ms + unit_ms / 2) / unit_ms;  // unit_ms is even: half a unit rounds up
      break;
  }
  return units * unit_seconds;
}

int64_t BillableSeconds(const BillingRules& rules, int64_t booked_ms, int64_t used_ms) {
  if (used_ms <= 0) return 0;
  const int64_t cap_seconds =
      (std::max<int64_t>(booked_ms, 0) + rules.allowed_overrun_seconds * 1000) / 1000;
  const int64_t capped_ms = std::min(used_ms, cap_seconds * 1000);
  const int64_t rounded =
      std::min(RoundToUnits(capped_ms, rules.billing_unit_seconds, rules.rounding), cap_seconds);
  return std::max(rounded, rules.minimum_charge_seconds);
}

const char* RedemptionName(Redemption redemption) {
  return redemption == Redemption::kReimburse ? "reimburse" : "provider";
}

bool ParseRedemption(std::string_view name, Redemption* redemption) {
  if (name == "provider") {
    *redemption = Redemption::kProvider;
  } else if (name == "reimburse") {
    *redemption = Redemption::kReimburse;
  } else {
    return false;
  }
  return true;
}

int64_t AmountFen(int64_t rate_fen_per_hour, int64_t billable_seconds) {
  return (rate_fen_per_hour * billable_seconds + 1800) / 3600;
}

int64_t VoucherFen(int64_t amount_fen, const Voucher& voucher) {
  return std::min(voucher.cap_fen, amount_fen * voucher.covered_percent / 100);
}

Charges ComputeCharges(const BillingRules& rules, const std::optional<Voucher>& voucher,
                       int64_t booked_ms, int64_t used_ms) {
  Charges c;
  c.billable_seconds = BillableSeconds(rules, booked_ms, used_ms);
  c.amount_fen = AmountFen(rules.rate_fen_per_hour, c.billable_seconds);
  c.voucher_fen = voucher.has_value() ? VoucherFen(c.amount_fen, *voucher) : 0;
  c.customer_share_fen = c.amount_fen - c.voucher_fen;
  const bool reimburse = voucher.has_value() && voucher->redemption == Redemption::kReimburse;
  c.customer_pays_now_fen = reimburse ? c.amount_fen : c.customer_share_fen;
  c.provider_redeems_fen = reimburse ? 0 : c.voucher_fen;
  c.customer_reimbursed_fen = reimburse ? c.voucher_fen : 0;
  return c;
}

}  // namespace instrumeter::hub
