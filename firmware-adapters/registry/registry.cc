#include "adapters/registry.h"

namespace instrumeter::adapters {

const std::vector<AdapterType>& Registry() {
  static const std::vector<AdapterType> kTypes = {};
  return kTypes;
}

const AdapterType* FindAdapterType(const std::string& name) {
  for (const AdapterType& type : Registry())
    if (type.name == name) return &type;
  return nullptr;
}

}  // namespace instrumeter::adapters
