#include "adapters/modbus/modbus_adapter.h"

#include <arpa/inet.h>
#include <modbus.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <vector>

namespace instrumeter::adapters::modbus {
namespace {

const std::vector<std::string> kValueTypes = {"u16", "u32", "s32", "float32"};

ValueType ParseValueType(const std::string& name) {
  if (name == "u32") return ValueType::kU32;
  if (name == "s32") return ValueType::kS32;
  if (name == "float32") return ValueType::kFloat32;
  return ValueType::kU16;
}

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool IsNumericAddress(const std::string& host) {
  unsigned char buffer[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

// A Modbus exception reply: the device answered, so the connection is fine.
bool IsModbusException(int error) {
  return error >= MODBUS_ENOBASE + MODBUS_EXCEPTION_ILLEGAL_FUNCTION &&
         error < MODBUS_ENOBASE + MODBUS_EXCEPTION_MAX;
}

// libmodbus takes the response timeout as seconds + microseconds.
void SetTimeout(modbus_t* ctx, int64_t ms) {
  ms = std::max<int64_t>(ms, 1);
  modbus_set_response_timeout(ctx, static_cast<uint32_t>(ms / 1000),
                              static_cast<uint32_t>((ms % 1000) * 1000));
}

}  // namespace

const config::Schema& ModbusSchema() {
  static const config::Schema kSchema = {
      {.name = "host",
       .type = config::Type::kString,
       .description = "the meter's IP address (IPv4 or IPv6; host names are not resolved, so a "
                      "slow resolver can never stall a poll)",
       .required = true},
      {.name = "port",
       .type = config::Type::kInteger,
       .default_value = int64_t{502},
       .description = "Modbus TCP port",
       .min = 1,
       .max = 65535},
      {.name = "unit_id",
       .type = config::Type::kInteger,
       .default_value = int64_t{1},
       .description = "Modbus unit (slave) id; gateways use it to pick the device behind them",
       .min = 0,
       .max = 255},
      {.name = "address",
       .type = config::Type::kInteger,
       .description = "0-based address of the power register (the protocol address: register "
                      "40001 in 1-based notation is address 0)",
       .required = true,
       .min = 0,
       .max = 65535},
      {.name = "register_kind",
       .type = config::Type::kString,
       .default_value = std::string("holding"),
       .description = "which table the registers are in (function code 3 or 4)",
       .one_of = {"holding", "input"}},
      {.name = "value_type",
       .type = config::Type::kString,
       .default_value = std::string("u16"),
       .description = "how the power register is encoded; 32-bit types take two registers",
       .one_of = kValueTypes},
      {.name = "word_order",
       .type = config::Type::kString,
       .default_value = std::string("big"),
       .description =
           "for 32-bit types (power and energy registers): big = the first register holds the "
           "high word",
       .one_of = {"big", "little"}},
      {.name = "scale",
       .type = config::Type::kFloat,
       .default_value = 1.0,
       .description = "multiplier from the register value to watts (e.g. 0.1, or 1000 for kW)"},
      {.name = "off_below_watts",
       .type = config::Type::kFloat,
       .description = "below this the instrument is OFF",
       .required = true,
       .min = 0},
      {.name = "in_use_above_watts",
       .type = config::Type::kFloat,
       .description = "above this the instrument is IN_USE; between the two it is IDLE",
       .required = true,
       .min = 0},
      {.name = "hysteresis_watts",
       .type = config::Type::kFloat,
       .default_value = 0.0,
       .description = "how far a reading must cross a threshold before the state changes",
       .min = 0},
      {.name = "min_dwell_ms",
       .type = config::Type::kInteger,
       .default_value = int64_t{0},
       .description = "how long a new state must be indicated without a break before it is "
                      "reported",
       .min = 0},
      {.name = "noise_floor_watts",
       .type = config::Type::kFloat,
       .default_value = 0.0,
       .description = "negative readings down to minus this count as 0 W (meter offset); more "
                      "negative readings are errors",
       .min = 0},
      {.name = "energy_address",
       .type = config::Type::kInteger,
       .description = "address of a cumulative energy register, reported as energy_kwh (never "
                      "used for hours); unset: none",
       .min = 0,
       .max = 65535},
      {.name = "energy_type",
       .type = config::Type::kString,
       .default_value = std::string("u32"),
       .description = "how the energy register is encoded",
       .one_of = kValueTypes},
      {.name = "energy_scale",
       .type = config::Type::kFloat,
       .default_value = 1.0,
       .description = "multiplier from the energy register value to kWh (e.g. 0.001 for Wh)"},
      {.name = "response_timeout_ms",
       .type = config::Type::kInteger,
       .default_value = int64_t{1000},
       .description = "bound on one whole poll: connect and read(s)",
       .min = 10,
       .max = 60000},
      {.name = "reconnect_min_ms",
       .type = config::Type::kInteger,
       .default_value = int64_t{1000},
       .description = "first delay before reconnecting after a failure (doubles, with jitter)",
       .min = 1},
      {.name = "reconnect_max_ms",
       .type = config::Type::kInteger,
       .default_value = int64_t{60000},
       .description = "longest delay between reconnect attempts",
       .min = 1},
  };
  return kSchema;
}

int RegisterCount(ValueType type) { return type == ValueType::kU16 ? 1 : 2; }

double DecodeRegisters(const uint16_t* registers, ValueType type, WordOrder order) {
  if (type == ValueType::kU16) return registers[0];
  const uint32_t high = order == WordOrder::kBig ? registers[0] : registers[1];
  const uint32_t low = order == WordOrder::kBig ? registers[1] : registers[0];
  const uint32_t bits = (high << 16) | low;
  switch (type) {
    case ValueType::kU32:
      return bits;
    case ValueType::kS32:
      return static_cast<int32_t>(bits);
    case ValueType::kFloat32: {
      float f;
      std::memcpy(&f, &bits, sizeof f);
      return f;
    }
    case ValueType::kU16:
      break;
  }
  return registers[0];
}

struct ModbusAdapter::Connection {
  explicit Connection(modbus_t* c) : ctx(c) {}
  ~Connection() {
    modbus_close(ctx);
    modbus_free(ctx);
  }
  modbus_t* ctx;
};

ModbusAdapter::ModbusAdapter(AdapterContext context) : context_(std::move(context)) {}
ModbusAdapter::~ModbusAdapter() = default;

std::string ModbusAdapter::Peer() const {
  return "modbus '" + context_.name + "' " + host_ + ":" + std::to_string(port_);
}

std::string ModbusAdapter::Prefix() const { return Peer() + ": "; }

Status ModbusAdapter::Init(const config::Section& section) {
  host_ = section.String("host");
  if (!IsNumericAddress(host_))
    return section.Error("host", "'" + host_ + "' is not an IP address");
  port_ = static_cast<int>(section.Integer("port"));
  unit_id_ = static_cast<int>(section.Integer("unit_id"));
  input_registers_ = section.String("register_kind") == "input";
  word_order_ = section.String("word_order") == "little" ? WordOrder::kLittle : WordOrder::kBig;
  power_ = {static_cast<int>(section.Integer("address")),
            ParseValueType(section.String("value_type")), section.Float("scale")};
  if (power_.scale == 0) return section.Error("scale", "must not be 0");
  if (power_.address + RegisterCount(power_.type) > 65536)
    return section.Error("address", "a 32-bit value does not fit at the last address");
  if (section.Has("energy_address")) {
    energy_ =
        Register{static_cast<int>(section.Integer("energy_address")),
                 ParseValueType(section.String("energy_type")), section.Float("energy_scale")};
    if (energy_->address + RegisterCount(energy_->type) > 65536)
      return section.Error("energy_address", "a 32-bit value does not fit at the last address");
  } else {
    for (const char* key : {"energy_type", "energy_scale"})
      if (section.Has(key)) return section.Error(key, "is set but energy_address is not");
  }
  Thresholds t{section.Float("off_below_watts"), section.Float("in_use_above_watts"),
               section.Float("hysteresis_watts"), section.Integer("min_dwell_ms")};
  if (t.in_use_above_watts <= t.off_below_watts)
    return section.Error("in_use_above_watts",
                         "must be above off_below_watts (thresholds inverted)");
  if (2 * t.hysteresis_watts >= t.in_use_above_watts - t.off_below_watts)
    return section.Error("hysteresis_watts",
                         "must be less than half the gap between off_below_watts and "
                         "in_use_above_watts, or IDLE could not be reached");
  classifier_.emplace(t);
  noise_floor_watts_ = section.Float("noise_floor_watts");
  timeout_ms_ = section.Integer("response_timeout_ms");
  if (section.Integer("reconnect_max_ms") < section.Integer("reconnect_min_ms"))
    return section.Error("reconnect_max_ms", "is below reconnect_min_ms");
  reconnect_.emplace(context_.clock, section.Integer("reconnect_min_ms"),
                     section.Integer("reconnect_max_ms"));
  return Status::Ok();
}

Status ModbusAdapter::Lost(const std::string& error) {
  connection_.reset();
  classifier_->ResetPending();
  return reconnect_->Failed(error).WithContext(Peer());
}

Status ModbusAdapter::Connect(int64_t deadline_ms) {
  modbus_t* ctx = modbus_new_tcp_pi(host_.c_str(), std::to_string(port_).c_str());
  if (ctx == nullptr)
    return Lost(std::string("cannot create a context: ") + modbus_strerror(errno));
  auto connection = std::make_unique<Connection>(ctx);
  modbus_set_slave(ctx, unit_id_);
  // No byte timeout: the response timeout then bounds the whole reply, not each gap in it.
  modbus_set_byte_timeout(ctx, 0, 0);
  SetTimeout(ctx, deadline_ms - SteadyMs());
  if (modbus_connect(ctx) != 0) return Lost(std::string("connect: ") + modbus_strerror(errno));
  connection_ = std::move(connection);
  return Status::Ok();
}

Result<double> ModbusAdapter::Read(const Register& reg, int64_t deadline_ms, const char* what) {
  const int64_t left = deadline_ms - SteadyMs();
  if (left <= 0)
    return Lost(std::string("timed out after ") + std::to_string(timeout_ms_) +
                " ms before reading the " + what + " register");
  SetTimeout(connection_->ctx, left);
  uint16_t registers[2] = {0, 0};
  const int count = RegisterCount(reg.type);
  const int rc = input_registers_
                     ? modbus_read_input_registers(connection_->ctx, reg.address, count, registers)
                     : modbus_read_registers(connection_->ctx, reg.address, count, registers);
  const std::string where =
      std::string(what) + " register " + (input_registers_ ? "input " : "holding ") +
      std::to_string(reg.address) + " (unit " + std::to_string(unit_id_) + ")";
  if (rc != count) {
    const int error = errno;
    const std::string message = "reading " + where + ": " + modbus_strerror(error);
    if (rc >= 0 || !IsModbusException(error)) return Lost(message);
    // The device answered with an exception (e.g. illegal data address): a configuration
    // problem, not a connection one; the link stays up.
    return Status::InvalidArgument(Prefix() + message);
  }
  const double value = DecodeRegisters(registers, reg.type, word_order_) * reg.scale;
  if (!std::isfinite(value))
    return Status::Corruption(Prefix() + where + " holds no number (" + std::to_string(value) +
                              ")");
  return value;
}

Status ModbusAdapter::Poll(ObservationSink& sink) {
  if (Status ready = reconnect_->Ready(); !ready.ok()) return ready.WithContext(Peer());
  const int64_t deadline = SteadyMs() + timeout_ms_;
  if (connection_ == nullptr) INSTRUMETER_RETURN_IF_ERROR(Connect(deadline));
  auto watts = Read(power_, deadline, "power");
  if (!watts.ok()) return watts.status();
  std::optional<double> kwh;
  if (energy_) {
    auto energy = Read(*energy_, deadline, "energy");
    if (!energy.ok()) return energy.status();
    if (*energy < 0)
      return Status::Corruption(Prefix() + "energy reading " + std::to_string(*energy) +
                                " kWh is negative");
    kwh = *energy;
  }
  reconnect_->Succeeded();
  double w = *watts;
  if (w < 0) {
    if (w < -noise_floor_watts_) {
      classifier_->ResetPending();
      return Status::Corruption(Prefix() + "power reading " + std::to_string(w) +
                                " W is negative (below -noise_floor_watts)");
    }
    w = 0;
  }
  const SourceState state = classifier_->Update(w, context_.clock->MonotonicMs());
  sink.Report(Observation::PowerWatts(w));
  if (kwh) sink.Report(Observation::EnergyKwh(*kwh));
  sink.Report(Observation::State(state, classifier_->why()));
  return Status::Ok();
}

void ModbusAdapter::Stop() { connection_.reset(); }

}  // namespace instrumeter::adapters::modbus
