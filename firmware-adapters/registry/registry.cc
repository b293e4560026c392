#include "adapters/registry.h"

#include "adapters/simulator/simulator_adapter.h"

namespace instrumeter::adapters {

const std::vector<AdapterType>& Registry() {
  static const std::vector<AdapterType> kTypes = {
      {.name = "simulator",
       .description = "a pretend instrument that plays a schedule and writes its ground truth",
       .schema = &simulator::SimulatorSchema(),
       .make = [](const AdapterContext& c) -> std::unique_ptr<Adapter> {
         return std::make_unique<simulator::SimulatorAdapter>(c);
       }},
  };
  return kTypes;
}

const AdapterType* FindAdapterType(const std::string& name) {
  for (const AdapterType& type : Registry())
    if (type.name == name) return &type;
  return nullptr;
}

}  // namespace instrumeter::adapters
