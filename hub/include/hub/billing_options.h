// The [billing] section of the hub config: verification timing and thresholds, and the default
// billing rules of instruments without overrides (docs/billing.md; keys in docs/hub-config.md).
#pragma once

#include <cstdint>

#include "hub/billing_rules.h"
#include "hub/verification.h"

namespace instrumeter::hub {

struct BillingOptions {
  // Run the verification pass inside `instrumeter-hub run`, every verify_interval_ms.
  bool enabled = true;
  int64_t verify_interval_ms = 60'000;
  // A booking is verified once end + grace_after + this has passed; an unbooked-use day once
  // its end + this has passed. Later telemetry amends.
  int64_t settle_delay_seconds = 900;
  // Agents sign at least once a minute, so a settled session normally is signed. One that is
  // not, from an agent that may still sign it (enrolled, key active, chain intact), is left for
  // later passes until settling + this; then it is recorded with that time unbilled.
  int64_t signature_wait_seconds = 3600;
  VerifyOptions verify;
  // The UTC offset of the local day for unbooked-use records and local times in exports.
  int64_t day_utc_offset_minutes = 480;
  // A local day gets an unbooked-use record once it has at least this much unbooked use.
  int64_t unbooked_min_seconds = 60;
  // Every rule but possibly the rate is set (config defaults).
  PartialBillingRules defaults = {std::nullopt, 900, 0, Rounding::kNearest, 0, 600, 600};
};

}  // namespace instrumeter::hub
