// Declared keys of the [billing] config section (hub_config.cc validates and documents them).
// Private to the hub.
#pragma once

#include <string>

#include "common/config.h"
#include "hub/billing_options.h"

namespace instrumeter::hub {

const config::Schema& BillingSchema();
// Validates `table` (null: the section is absent, every default applies).
Result<BillingOptions> ParseBillingSection(const toml::table* table, const std::string& where);

}  // namespace instrumeter::hub
