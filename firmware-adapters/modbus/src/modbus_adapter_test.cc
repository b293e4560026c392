#include "adapters/modbus/modbus_adapter.h"

#include <gtest/gtest.h>
#include <modbus.h>
#include <sys/select.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <sstream>
#include <thread>

#include "adapters/testing/adapter_harness.h"
#include "test_support/process.h"

namespace instrumeter::adapters::modbus {
namespace {

using adapters::testing::ConfiguredAdapter;
using adapters::testing::PollOnce;

// A Modbus TCP server on 127.0.0.1 (libmodbus's server API) whose registers the test sets. It can
// be stopped (the port then refuses), started again on the same port, or told to stop answering.
class TestModbusServer {
 public:
  explicit TestModbusServer(int port) : port_(port) {
    mapping_ = modbus_mapping_new(0, 0, kRegisters, kRegisters);
  }
  ~TestModbusServer() {
    Stop();
    modbus_mapping_free(mapping_);
  }

  bool Start() {
    ctx_ = modbus_new_tcp("127.0.0.1", port_);
    listen_fd_ = modbus_tcp_listen(ctx_, 4);
    if (listen_fd_ < 0) return false;
    running_ = true;
    thread_ = std::thread([this] { Serve(); });
    return true;
  }

  void Stop() {
    if (!running_) return;
    running_ = false;
    thread_.join();
    for (int fd : clients_) ::close(fd);
    clients_.clear();
    ::close(listen_fd_);
    modbus_free(ctx_);
  }

  void SetAnswering(bool answering) { answering_ = answering; }

  void Set(bool input, int address, const std::vector<uint16_t>& values) {
    std::lock_guard<std::mutex> lock(mu_);
    uint16_t* table = input ? mapping_->tab_input_registers : mapping_->tab_registers;
    for (size_t i = 0; i < values.size(); ++i) table[address + static_cast<int>(i)] = values[i];
  }

  // Encodes `value` as `type` in `order` (the inverse of DecodeRegisters) and sets it.
  void SetValue(bool input, int address, ValueType type, WordOrder order, double value) {
    uint32_t bits = 0;
    if (type == ValueType::kFloat32) {
      const float f = static_cast<float>(value);
      std::memcpy(&bits, &f, sizeof bits);
    } else if (type == ValueType::kS32) {
      bits = static_cast<uint32_t>(static_cast<int32_t>(value));
    } else {
      bits = static_cast<uint32_t>(value);
    }
    if (type == ValueType::kU16) return Set(input, address, {static_cast<uint16_t>(bits)});
    const uint16_t high = static_cast<uint16_t>(bits >> 16), low = static_cast<uint16_t>(bits);
    Set(input, address,
        order == WordOrder::kBig ? std::vector<uint16_t>{high, low}
                                 : std::vector<uint16_t>{low, high});
  }

  int requests() const { return requests_; }

 private:
  static constexpr int kRegisters = 10000;

  void Serve() {
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    while (running_) {
      fd_set read_set;
      FD_ZERO(&read_set);
      FD_SET(listen_fd_, &read_set);
      int max_fd = listen_fd_;
      for (int fd : clients_) {
        FD_SET(fd, &read_set);
        max_fd = std::max(max_fd, fd);
      }
      timeval tv{0, 20'000};
      if (::select(max_fd + 1, &read_set, nullptr, nullptr, &tv) <= 0) continue;
      if (FD_ISSET(listen_fd_, &read_set)) {
        int fd = listen_fd_;
        const int client = modbus_tcp_accept(ctx_, &fd);
        if (client >= 0) clients_.push_back(client);
      }
      for (size_t i = 0; i < clients_.size();) {
        const int fd = clients_[i];
        if (!FD_ISSET(fd, &read_set)) {
          ++i;
          continue;
        }
        modbus_set_socket(ctx_, fd);
        const int rc = modbus_receive(ctx_, query);
        if (rc > 0) {
          ++requests_;
          if (answering_) {
            std::lock_guard<std::mutex> lock(mu_);
            modbus_reply(ctx_, query, rc, mapping_);
          }
          ++i;
        } else if (rc < 0) {
          ::close(fd);
          clients_.erase(clients_.begin() + static_cast<long>(i));
        } else {
          ++i;
        }
      }
    }
  }

  int port_;
  modbus_t* ctx_ = nullptr;
  modbus_mapping_t* mapping_;
  int listen_fd_ = -1;
  std::vector<int> clients_;  // used by the server thread, and by Stop after joining it
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<bool> answering_{true};
  std::atomic<int> requests_{0};
  std::mutex mu_;
};

class ModbusTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.Start()); }

  std::unique_ptr<ConfiguredAdapter> Make(const std::string& keys) {
    auto made = ConfiguredAdapter::Make(
        "modbus",
        "host = \"127.0.0.1\"\nport = " + std::to_string(port_) +
            "\naddress = 100\noff_below_watts = 50\nin_use_above_watts = 500\n" + keys,
        {"power", &clock_, dir_.path()});
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    return made.ok() ? std::move(*made) : nullptr;
  }

  instrumeter::testing::TempDir dir_;
  FakeClock clock_;
  int port_ = instrumeter::testing::FreeLoopbackPort();
  TestModbusServer server_{port_};
};

TEST(DecodeRegistersTest, EveryTypeInBothWordOrders) {
  const uint16_t u16[] = {0xBEEF};
  EXPECT_EQ(DecodeRegisters(u16, ValueType::kU16, WordOrder::kBig), 0xBEEF);
  const uint16_t big[] = {0x0001, 0x86A0};  // 100000
  const uint16_t little[] = {0x86A0, 0x0001};
  EXPECT_EQ(DecodeRegisters(big, ValueType::kU32, WordOrder::kBig), 100000);
  EXPECT_EQ(DecodeRegisters(little, ValueType::kU32, WordOrder::kLittle), 100000);
  const uint16_t minus_two[] = {0xFFFF, 0xFFFE};
  EXPECT_EQ(DecodeRegisters(minus_two, ValueType::kS32, WordOrder::kBig), -2);
  EXPECT_EQ(DecodeRegisters(minus_two, ValueType::kU32, WordOrder::kBig), 4294967294.0);
  const uint16_t f_big[] = {0x4419, 0x2000};  // 612.5f
  const uint16_t f_little[] = {0x2000, 0x4419};
  EXPECT_EQ(DecodeRegisters(f_big, ValueType::kFloat32, WordOrder::kBig), 612.5);
  EXPECT_EQ(DecodeRegisters(f_little, ValueType::kFloat32, WordOrder::kLittle), 612.5);
}

TEST_F(ModbusTest, ReadsEveryValueTypeInBothWordOrdersFromBothTables) {
  const std::vector<std::pair<std::string, ValueType>> types = {{"u16", ValueType::kU16},
                                                                {"u32", ValueType::kU32},
                                                                {"s32", ValueType::kS32},
                                                                {"float32", ValueType::kFloat32}};
  for (const auto& [name, type] : types) {
    for (const std::string order : {"big", "little"}) {
      for (const std::string kind : {"holding", "input"}) {
        SCOPED_TRACE(name + " " + order + " " + kind);
        server_.SetValue(kind == "input", 100, type,
                         order == "big" ? WordOrder::kBig : WordOrder::kLittle, 7000);
        // 7000 raw, scaled by 0.1: 700 W, IN_USE.
        auto a = Make("value_type = \"" + name + "\"\nword_order = \"" + order +
                      "\"\nregister_kind = \"" + kind + "\"\nscale = 0.1\n");
        ASSERT_NE(a, nullptr);
        EXPECT_EQ(PollOnce(a->adapter()), "power_watts=700 state=IN_USE");
        server_.SetValue(kind == "input", 100, type,
                         order == "big" ? WordOrder::kBig : WordOrder::kLittle, 1200);
        EXPECT_EQ(PollOnce(a->adapter()), "power_watts=120 state=IDLE");
      }
    }
  }
}

TEST_F(ModbusTest, EnergyRegisterIsReportedAlongsidePower) {
  server_.SetValue(false, 100, ValueType::kU16, WordOrder::kBig, 20);
  server_.SetValue(false, 200, ValueType::kU32, WordOrder::kBig, 1234567);
  auto a = Make("energy_address = 200\nenergy_type = \"u32\"\nenergy_scale = 0.001\n");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(PollOnce(a->adapter()), "power_watts=20 energy_kwh=1234.57 state=OFF");
}

TEST_F(ModbusTest, ImpossibleReadingsAreErrorsNotStates) {
  auto a = Make("value_type = \"float32\"\nnoise_floor_watts = 0.5\n");
  ASSERT_NE(a, nullptr);
  server_.SetValue(false, 100, ValueType::kFloat32, WordOrder::kBig, -0.3);
  EXPECT_EQ(PollOnce(a->adapter()), "power_watts=0 state=OFF") << "within the noise floor";
  server_.SetValue(false, 100, ValueType::kFloat32, WordOrder::kBig, -12);
  EXPECT_NE(PollOnce(a->adapter()).find("power reading -12.000000 W is negative"),
            std::string::npos);
  server_.Set(false, 100, {0x7FC0, 0x0000});  // NaN
  const std::string nan = PollOnce(a->adapter());
  EXPECT_NE(nan.find("holds no number"), std::string::npos) << nan;
}

TEST_F(ModbusTest, ADeviceExceptionKeepsTheConnection) {
  auto a = Make("energy_address = 9999\nenergy_type = \"u32\"\n");  // 9999 + 1 is past the map
  ASSERT_NE(a, nullptr);
  const std::string st = PollOnce(a->adapter());
  EXPECT_NE(st.find("reading energy register holding 9999 (unit 1): Illegal data address"),
            std::string::npos)
      << st;
  EXPECT_EQ(st.find("retrying"), std::string::npos) << "the device answered: no reconnect";
}

TEST_F(ModbusTest, AServerThatStopsAnsweringTimesOutWithinTheBound) {
  auto a = Make("response_timeout_ms = 300\n");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(PollOnce(a->adapter()), "power_watts=0 state=OFF");
  server_.SetAnswering(false);
  const auto start = std::chrono::steady_clock::now();
  const std::string st = PollOnce(a->adapter());
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_NE(st.find("retrying in"), std::string::npos) << st;
  EXPECT_NE(st.find("timed out"), std::string::npos) << st;
  EXPECT_LT(took, std::chrono::seconds(3)) << "bounded by response_timeout_ms";
}

TEST_F(ModbusTest, ServerDownMeansBackoffThenRecovery) {
  server_.SetValue(false, 100, ValueType::kU16, WordOrder::kBig, 300);
  auto a = Make("reconnect_min_ms = 1000\nreconnect_max_ms = 4000\n");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(PollOnce(a->adapter()), "power_watts=300 state=IDLE");
  server_.Stop();
  const std::string lost = PollOnce(a->adapter());
  EXPECT_EQ(
      lost.find("error: modbus 'power' 127.0.0.1:" + std::to_string(port_) + ": retrying in "), 0u)
      << lost;
  // While backing off, polls answer at once without touching the network.
  const int before = server_.requests();
  const std::string waiting = PollOnce(a->adapter());
  EXPECT_NE(waiting.find("retrying in"), std::string::npos);
  clock_.Advance(1000);
  const std::string refused = PollOnce(a->adapter());
  EXPECT_NE(refused.find("connect: Connection refused"), std::string::npos) << refused;
  ASSERT_TRUE(server_.Start());
  EXPECT_NE(PollOnce(a->adapter()).find("retrying in"), std::string::npos)
      << "still waiting out the delay";
  clock_.Advance(4000);
  EXPECT_EQ(PollOnce(a->adapter()), "power_watts=300 state=IDLE") << "recovered";
  EXPECT_GE(server_.requests(), before);
}

// Golden cases: testdata/golden/<case>/ (see adapters/testing/adapter_harness.h). Verbs:
//   set <holding|input> <address> <u16|u32|s32|float32> <big|little> <value>
//   raw <holding|input> <address> <register>...   (registers in decimal or 0x hex)
//   server <stop|start|mute|answer>
class ModbusGoldenTest : public ::testing::TestWithParam<adapters::testing::GoldenCase> {};

TEST_P(ModbusGoldenTest, Plays) {
  instrumeter::testing::TempDir dir;
  FakeClock clock;
  const int port = instrumeter::testing::FreeLoopbackPort();
  TestModbusServer server(port);
  ASSERT_TRUE(server.Start());
  adapters::testing::GoldenRunner runner("modbus", &clock, dir.path());
  runner.AddVerb("set", [&](const std::string& args) {
    std::istringstream in(args);
    std::string kind, type, order;
    int address = 0;
    double value = 0;
    if (!(in >> kind >> address >> type >> order >> value))
      return Status::InvalidArgument("usage: set <kind> <address> <type> <order> <value>");
    const ValueType t = type == "u16"   ? ValueType::kU16
                        : type == "u32" ? ValueType::kU32
                        : type == "s32" ? ValueType::kS32
                                        : ValueType::kFloat32;
    server.SetValue(kind == "input", address, t,
                    order == "big" ? WordOrder::kBig : WordOrder::kLittle, value);
    return Status::Ok();
  });
  runner.AddVerb("raw", [&](const std::string& args) {
    std::istringstream in(args);
    std::string kind, word;
    int address = 0;
    in >> kind >> address;
    std::vector<uint16_t> registers;
    while (in >> word) registers.push_back(static_cast<uint16_t>(std::stoul(word, nullptr, 0)));
    server.Set(kind == "input", address, registers);
    return Status::Ok();
  });
  runner.AddVerb("server", [&](const std::string& what) {
    if (what == "stop") server.Stop();
    if (what == "start" && !server.Start()) return Status::Unavailable("cannot listen again");
    if (what == "mute" || what == "answer") server.SetAnswering(what == "answer");
    return Status::Ok();
  });
  for (const std::string& failure : runner.Run(GetParam(), {{"PORT", std::to_string(port)}}))
    ADD_FAILURE() << GetParam().name << ": " << failure;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ModbusGoldenTest,
    ::testing::ValuesIn(adapters::testing::LoadGoldenCases(INSTRUMETER_GOLDEN_DIR)),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace instrumeter::adapters::modbus
