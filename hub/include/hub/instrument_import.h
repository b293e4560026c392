// Reading instrument lists for `instrumeter-hub instruments import`: CSV (header
// instrument_id,name,institution,site,city,region, RFC 4180 quoting) or JSON (an array of objects
// with those keys). Every row is checked before anything is written, so an import is all or
// nothing; an error names the file, the line and the field.
//
// Optional billing rule columns (keys) override the [billing] defaults per instrument
// (docs/billing.md): rate_fen_per_hour, billing_unit_seconds, minimum_charge_seconds, rounding,
// allowed_overrun_seconds, grace_before_seconds, grace_after_seconds. A rule column that is
// present sets the rule (an empty cell, "" or null: back to the default); a rule column that is
// absent leaves the instrument's rule as it was.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "hub/store.h"

namespace instrumeter::hub {

// By extension: .csv or .json (case-insensitive); anything else is InvalidArgument. When `rules`
// is not null it receives one update per row, in row order (fields_set says which rule columns
// the row carries).
Result<std::vector<Instrument>> ReadInstrumentsFile(
    const std::string& path, std::vector<RuleOverridesUpdate>* rules = nullptr);

// `source` names the file in error messages; `rules` as above.
Result<std::vector<Instrument>> ParseInstrumentsCsv(
    std::string_view text, const std::string& source,
    std::vector<RuleOverridesUpdate>* rules = nullptr);
Result<std::vector<Instrument>> ParseInstrumentsJson(
    std::string_view text, const std::string& source,
    std::vector<RuleOverridesUpdate>* rules = nullptr);

}  // namespace instrumeter::hub
