#include "adapters/registry.h"

#include "adapters/exec/exec_adapter.h"
#include "adapters/logfile/logfile_adapter.h"
#include "adapters/modbus/modbus_adapter.h"
#include "adapters/process/process_adapter.h"
#include "adapters/scpi/scpi_adapter.h"
#include "adapters/simulator/simulator_adapter.h"

namespace instrumeter::adapters {
namespace {

template <typename T>
std::function<std::unique_ptr<Adapter>(const AdapterContext&)> Maker() {
  return [](const AdapterContext& c) -> std::unique_ptr<Adapter> { return std::make_unique<T>(c); };
}

}  // namespace

const std::vector<AdapterType>& Registry() {
  static const std::vector<AdapterType> kTypes = {
      {.name = "simulator",
       .description = "a pretend instrument that plays a schedule and writes its ground truth",
       .schema = &simulator::SimulatorSchema(),
       .make = Maker<simulator::SimulatorAdapter>()},
      {.name = "modbus",
       .description = "a Modbus TCP power meter or smart PDU: power thresholds give OFF, IDLE, "
                      "IN_USE",
       .schema = &modbus::ModbusSchema(),
       .make = Maker<modbus::ModbusAdapter>()},
      {.name = "scpi",
       .description = "an instrument's SCPI port over TCP: *IDN? and status queries mapped by "
                      "rules",
       .schema = &scpi::ScpiSchema(),
       .make = Maker<scpi::ScpiAdapter>()},
      {.name = "process",
       .description = "the vendor's acquisition software running means IN_USE",
       .schema = &process::ProcessSchema(),
       .make = Maker<process::ProcessAdapter>()},
      {.name = "logfile",
       .description = "an instrument log followed across rotation; lines mapped by rules",
       .schema = &logfile::LogfileSchema(),
       .make = Maker<logfile::LogfileAdapter>()},
      {.name = "exec",
       .description = "a command run every interval; exit code or output mapped to a state",
       .schema = &exec::ExecSchema(),
       .make = Maker<exec::ExecAdapter>()},
  };
  return kTypes;
}

const AdapterType* FindAdapterType(const std::string& name) {
  for (const AdapterType& type : Registry())
    if (type.name == name) return &type;
  return nullptr;
}

}  // namespace instrumeter::adapters
