// Billing rules and the money arithmetic of a verified session (docs/billing.md, "Billing rules"
// and "Voucher arithmetic"). Pure functions over integers: no I/O, no clock, no floating point.
// Money is integer fen (1 yuan = 100 fen); every division states its rounding.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace instrumeter::hub {

// How measured time becomes whole billing units. Stored and shown by name (RoundingName): never
// rename a value's name.
enum class Rounding { kUp, kDown, kNearest };
const char* RoundingName(Rounding rounding);  // "up", "down", "nearest"
bool ParseRounding(std::string_view name, Rounding* rounding);

// The billing rules of one booking, every field resolved (see ResolveRules).
struct BillingRules {
  int64_t rate_fen_per_hour = 0;
  int64_t billing_unit_seconds = 900;
  int64_t minimum_charge_seconds = 0;  // applies only when some use was measured
  Rounding rounding = Rounding::kNearest;
  int64_t allowed_overrun_seconds = 0;  // billable time is capped at booked + this
  int64_t grace_before_seconds = 600;   // in-use time this long before the start counts
  int64_t grace_after_seconds = 600;    // ... and this long after the end
  friend bool operator==(const BillingRules&, const BillingRules&) = default;
};

// Rules with some fields unset: the [billing] defaults of the hub config, an instrument's
// overrides, or a booking's own rate. Overlay() fills the gaps of one from another.
struct PartialBillingRules {
  std::optional<int64_t> rate_fen_per_hour;
  std::optional<int64_t> billing_unit_seconds;
  std::optional<int64_t> minimum_charge_seconds;
  std::optional<Rounding> rounding;
  std::optional<int64_t> allowed_overrun_seconds;
  std::optional<int64_t> grace_before_seconds;
  std::optional<int64_t> grace_after_seconds;
  friend bool operator==(const PartialBillingRules&, const PartialBillingRules&) = default;
};

// The rule fields by name, as they appear in config keys, import columns and the ledger.
enum class RuleField {
  kRateFenPerHour,
  kBillingUnitSeconds,
  kMinimumChargeSeconds,
  kRounding,
  kAllowedOverrunSeconds,
  kGraceBeforeSeconds,
  kGraceAfterSeconds,
};
inline constexpr int kRuleFieldCount = 7;
const char* RuleFieldName(RuleField field);  // "rate_fen_per_hour", ...
std::optional<RuleField> RuleFieldByName(std::string_view name);

// Inclusive bounds of an integer rule field (not kRounding). They keep every product in the
// arithmetic below far inside int64 (see docs/billing.md).
struct RuleBounds {
  int64_t min;
  int64_t max;
};
RuleBounds BoundsOf(RuleField field);
// InvalidArgument "<value> is out of range <min>..<max>" when outside BoundsOf(field).
Status CheckRuleValue(RuleField field, int64_t value);
// Sets one field of `rules` from text as found in a CSV cell or a JSON string ("900", "up").
Status SetRuleFromText(RuleField field, std::string_view text, PartialBillingRules* rules);
// Unsets one field.
void ClearRule(RuleField field, PartialBillingRules* rules);
// The value of an integer field; nullopt when unset, and always for kRounding.
std::optional<int64_t> RuleInteger(RuleField field, const PartialBillingRules& rules);
// The field's value as text ("" when unset), for listings.
std::string RuleText(RuleField field, const PartialBillingRules& rules);

// Field by field: `first` where it is set, else `fallback`.
PartialBillingRules Overlay(const PartialBillingRules& first, const PartialBillingRules& fallback);
// All fields set: the resolved rules. Otherwise NotFound naming the first missing field.
Result<BillingRules> Complete(const PartialBillingRules& rules);

// Rounds `ms` to whole billing units of `unit_seconds` and returns seconds. kNearest rounds a
// half unit up.
int64_t RoundToUnits(int64_t ms, int64_t unit_seconds, Rounding rounding);

// Billable seconds of a session that was booked for `booked_ms` and measured in use for
// `used_ms` (inside its attribution window):
//   1. cap = floor((booked_ms + allowed_overrun_seconds * 1000) / 1000) seconds;
//   2. rounded = RoundToUnits(min(used_ms, cap * 1000)), then at most cap;
//   3. if used_ms > 0: at least minimum_charge_seconds (a minimum is a minimum, even above
//      the cap); if used_ms == 0: 0 (a no-show is not billed here; see docs/billing.md).
int64_t BillableSeconds(const BillingRules& rules, int64_t booked_ms, int64_t used_ms);

// How a voucher is paid out. Stored by name: never rename.
enum class Redemption {
  kProvider,   // the instrument's provider redeems the voucher amount from the agency
  kReimburse,  // the customer pays in full now and the agency reimburses the voucher amount
};
const char* RedemptionName(Redemption redemption);  // "provider", "reimburse"
bool ParseRedemption(std::string_view name, Redemption* redemption);

// A government innovation voucher on one booking. The cap applies to this booking.
struct Voucher {
  std::string voucher_id;
  std::string issuing_region;
  int64_t covered_percent = 0;  // 0..100
  int64_t cap_fen = 0;          // 0..kMaxCapFen
  Redemption redemption = Redemption::kProvider;
  friend bool operator==(const Voucher&, const Voucher&) = default;
};
inline constexpr int64_t kMaxCapFen = 1'000'000'000'000;  // 10 billion yuan

// The money of one session, all in fen.
struct Charges {
  int64_t billable_seconds = 0;
  // rate_fen_per_hour * billable_seconds / 3600, rounded half up.
  int64_t amount_fen = 0;
  // min(cap_fen, amount_fen * covered_percent / 100 rounded down); 0 without a voucher.
  int64_t voucher_fen = 0;
  // amount_fen - voucher_fen: what the customer bears in the end.
  int64_t customer_share_fen = 0;
  // What the customer pays the provider now: the share (provider) or the amount (reimburse).
  int64_t customer_pays_now_fen = 0;
  // What the provider redeems from the agency (provider mode) ...
  int64_t provider_redeems_fen = 0;
  // ... or what the agency reimburses to the customer afterwards (reimburse mode).
  int64_t customer_reimbursed_fen = 0;
  friend bool operator==(const Charges&, const Charges&) = default;
};

// rate * seconds / 3600 in fen, rounded half up.
int64_t AmountFen(int64_t rate_fen_per_hour, int64_t billable_seconds);
// min(cap, amount * percent / 100 rounded down).
int64_t VoucherFen(int64_t amount_fen, const Voucher& voucher);
Charges ComputeCharges(const BillingRules& rules, const std::optional<Voucher>& voucher,
                       int64_t booked_ms, int64_t used_ms);

}  // namespace instrumeter::hub
