#include "billing_config_schema.h"

#include <cmath>

namespace instrumeter::hub {
namespace {

using config::Key;
using config::Type;

// A rule key, with the bounds and the default of the rule itself.
Key RuleKey(RuleField field, config::Default default_value, std::string description) {
  const RuleBounds b = BoundsOf(field);
  Key key{.name = RuleFieldName(field),
          .type = Type::kInteger,
          .default_value = std::move(default_value),
          .description = std::move(description),
          .min = static_cast<double>(b.min),
          .max = static_cast<double>(b.max)};
  return key;
}

}  // namespace

const config::Schema& BillingSchema() {
  static const config::Schema kSchema = [] {
    const BillingOptions d;
    config::Schema s = {
        {.name = "enabled",
         .type = Type::kBoolean,
         .default_value = d.enabled,
         .description = "Verify bookings and record unbooked use inside `instrumeter-hub run`. "
                        "Off: only `instrumeter-hub verify` does."},
        {.name = "verify_interval_ms",
         .type = Type::kInteger,
         .default_value = d.verify_interval_ms,
         .description = "How often the running hub runs a verification pass.",
         .min = 1000,
         .max = 86'400'000},
        {.name = "settle_delay_seconds",
         .type = Type::kInteger,
         .default_value = d.settle_delay_seconds,
         .description = "A booking is first verified once its end + grace_after + this has "
                        "passed (an unbooked-use day once its end + this); later telemetry "
                        "amends the result.",
         .min = 0,
         .max = 30 * 86'400},
        {.name = "signature_wait_seconds",
         .type = Type::kInteger,
         .default_value = d.signature_wait_seconds,
         .description = "A settled session with in-use time that its enrolled agent has not "
                        "signed yet waits up to this long past settling for the signature; then "
                        "it is recorded with that time unbilled (flag `unsigned`).",
         .min = 0,
         .max = 30 * 86'400},
        {.name = "coverage_threshold",
         .type = Type::kFloat,
         .default_value = 0.95,
         .description = "VERIFIED needs at least this share of the booked window covered by "
                        "telemetry; below it a session is PARTIAL.",
         .min = 0,
         .max = 1},
        {.name = "max_clock_skew_ms",
         .type = Type::kInteger,
         .default_value = d.verify.max_clock_skew_ms,
         .description = "A session whose agent clock is estimated off by more than this is "
                        "DISPUTED (clock_skew).",
         .min = 0,
         .max = 86'400'000},
        {.name = "day_utc_offset_minutes",
         .type = Type::kInteger,
         .default_value = d.day_utc_offset_minutes,
         .description = "UTC offset of the local day that unbooked-use records cover, and of "
                        "the times in exports. Choose it once: records are per local day.",
         .min = -14 * 60,
         .max = 14 * 60},
        {.name = "unbooked_min_seconds",
         .type = Type::kInteger,
         .default_value = d.unbooked_min_seconds,
         .description = "A day gets an unbooked-use record once its use outside every booking "
                        "reaches this; a record once made is amended whatever its size.",
         .min = 0,
         .max = 86'400},
        {.name = "rate_fen_per_hour",
         .type = Type::kInteger,
         .description = "Default rate of instruments without their own; none: a booking of such "
                        "an instrument must carry its rate.",
         .min = static_cast<double>(BoundsOf(RuleField::kRateFenPerHour).min),
         .max = static_cast<double>(BoundsOf(RuleField::kRateFenPerHour).max)},
        RuleKey(RuleField::kBillingUnitSeconds, *d.defaults.billing_unit_seconds,
                "Default billing unit: billable time is a whole number of these."),
        RuleKey(RuleField::kMinimumChargeSeconds, *d.defaults.minimum_charge_seconds,
                "Default minimum charge of a session with any use."),
        {.name = "rounding",
         .type = Type::kString,
         .default_value = std::string(RoundingName(*d.defaults.rounding)),
         .description = "Default rounding of used time to billing units (nearest rounds a half "
                        "unit up).",
         .one_of = {"up", "down", "nearest"}},
        RuleKey(RuleField::kAllowedOverrunSeconds, *d.defaults.allowed_overrun_seconds,
                "Default overrun billed beyond the booked time (billable time is capped at "
                "booked + this)."),
        RuleKey(RuleField::kGraceBeforeSeconds, *d.defaults.grace_before_seconds,
                "Default grace: use this long before the start counts for the booking."),
        RuleKey(RuleField::kGraceAfterSeconds, *d.defaults.grace_after_seconds,
                "Default grace: use this long after the end counts for the booking."),
    };
    return s;
  }();
  return kSchema;
}

Result<BillingOptions> ParseBillingSection(const toml::table* table, const std::string& where) {
  const toml::table empty;
  Result<config::Section> s =
      config::Section::Make(table != nullptr ? *table : empty, BillingSchema(), where);
  if (!s.ok()) return s.status();
  BillingOptions o;
  o.enabled = s->Boolean("enabled");
  o.verify_interval_ms = s->Integer("verify_interval_ms");
  o.settle_delay_seconds = s->Integer("settle_delay_seconds");
  o.signature_wait_seconds = s->Integer("signature_wait_seconds");
  o.verify.coverage_threshold_ppm = std::llround(s->Float("coverage_threshold") * 1e6);
  o.verify.max_clock_skew_ms = s->Integer("max_clock_skew_ms");
  o.day_utc_offset_minutes = s->Integer("day_utc_offset_minutes");
  o.unbooked_min_seconds = s->Integer("unbooked_min_seconds");
  if (s->Has("rate_fen_per_hour")) o.defaults.rate_fen_per_hour = s->Integer("rate_fen_per_hour");
  o.defaults.billing_unit_seconds = s->Integer("billing_unit_seconds");
  o.defaults.minimum_charge_seconds = s->Integer("minimum_charge_seconds");
  ParseRounding(s->String("rounding"), &*o.defaults.rounding);
  o.defaults.allowed_overrun_seconds = s->Integer("allowed_overrun_seconds");
  o.defaults.grace_before_seconds = s->Integer("grace_before_seconds");
  o.defaults.grace_after_seconds = s->Integer("grace_after_seconds");
  return o;
}

}  // namespace instrumeter::hub
