// The `modbus` adapter: a Modbus TCP power meter or smart PDU, read through libmodbus. Each poll
// reads the power register (and, if configured, an energy register), reports PowerWatts (and
// EnergyKwh, which is never used for hours) and a State from the PowerClassifier's thresholds.
//
// The connection is opened at the first poll and kept. A connection failure (refused, timed out,
// reset, a garbled reply) closes it and the next attempt waits a growing, jittered delay; until
// then Poll returns Unavailable("... retrying in N ms: <last error>") at once. A whole poll
// (connect and both reads) is bounded by response_timeout_ms. Readings that cannot be power (NaN,
// infinite, negative beyond noise_floor_watts) are errors, never states.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "adapters/adapter.h"
#include "adapters/modbus/power_classifier.h"
#include "adapters/reconnect.h"

namespace instrumeter::adapters::modbus {

const config::Schema& ModbusSchema();

enum class ValueType { kU16, kU32, kS32, kFloat32 };
enum class WordOrder { kBig, kLittle };  // kBig: the first register holds the high word

// The value of `type` held in registers[0..RegisterCount(type)).
double DecodeRegisters(const uint16_t* registers, ValueType type, WordOrder order);
int RegisterCount(ValueType type);

class ModbusAdapter : public Adapter {
 public:
  explicit ModbusAdapter(AdapterContext context);
  ~ModbusAdapter() override;

  Status Init(const config::Section& section) override;
  Status Poll(ObservationSink& sink) override;
  // Closes the connection.
  void Stop() override;

 private:
  struct Register {
    int address = 0;
    ValueType type = ValueType::kU16;
    double scale = 1;
  };
  struct Connection;

  // Reads one register's value before `deadline_ms` (steady clock); a connection-level failure
  // closes the connection and returns the reconnect refusal.
  Result<double> Read(const Register& reg, int64_t deadline_ms, const char* what);
  Status Connect(int64_t deadline_ms);
  Status Lost(const std::string& error);
  std::string Peer() const;    // "modbus 'power' 10.0.0.5:502"
  std::string Prefix() const;  // Peer() + ": "

  AdapterContext context_;
  std::string host_;
  int port_ = 502;
  int unit_id_ = 1;
  bool input_registers_ = false;
  WordOrder word_order_ = WordOrder::kBig;
  Register power_;
  std::optional<Register> energy_;
  double noise_floor_watts_ = 0;
  int64_t timeout_ms_ = 1000;
  std::optional<PowerClassifier> classifier_;
  std::optional<Reconnect> reconnect_;
  std::unique_ptr<Connection> connection_;
};

}  // namespace instrumeter::adapters::modbus
