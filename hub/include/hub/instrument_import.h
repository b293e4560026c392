// Reading instrument lists for `instrumeter-hub instruments import`: CSV (header
// instrument_id,name,institution,site,city,region, RFC 4180 quoting) or JSON (an array of objects
// with those keys). Every row is checked before anything is written, so an import is all or
// nothing; an error names the file, the line and the field.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "hub/store.h"

namespace instrumeter::hub {

// By extension: .csv or .json (case-insensitive); anything else is InvalidArgument.
Result<std::vector<Instrument>> ReadInstrumentsFile(const std::string& path);

// `source` names the file in error messages.
Result<std::vector<Instrument>> ParseInstrumentsCsv(std::string_view text,
                                                    const std::string& source);
Result<std::vector<Instrument>> ParseInstrumentsJson(std::string_view text,
                                                     const std::string& source);

}  // namespace instrumeter::hub
