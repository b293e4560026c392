// The explicit list of adapter types the agent can run. Adding an adapter means adding one entry
// to firmware-adapters/registry/registry.cc (not static self-registration, which a static link
// can silently drop).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "adapters/adapter.h"
#include "common/config.h"

namespace instrumeter::adapters {

struct AdapterType {
  std::string name;              // the value of `type` in an [[adapter]] section
  std::string description;       // one line, for --help and docs
  const config::Schema* schema;  // the adapter's own keys (without `name` and `type`)
  std::function<std::unique_ptr<Adapter>(const AdapterContext&)> make;
};

// Every adapter type compiled into this build, in a stable order.
const std::vector<AdapterType>& Registry();
// nullptr if no adapter of that type exists.
const AdapterType* FindAdapterType(const std::string& name);

}  // namespace instrumeter::adapters
