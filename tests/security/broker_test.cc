// The locked-down path end to end: a real Mosquitto running deploy/mosquitto/production.conf and
// instrumeter.acl (paths and port rewritten for a temporary directory), with certificates and
// agent bundles made by the real `instrumeter-hub ca init` / `devices enroll`; the real hub and
// agent binaries. What an attacker with a device's certificate, a stolen signing key or a copy of
// the traffic can and cannot do.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>

#include "common/mqtt_link.h"
#include "common/sqlite_db.h"
#include "hub/sqlite_store.h"
#include "protocol/chain.h"
#include "protocol/codec.h"
#include "protocol/topics.h"
#include "test_support/process.h"

namespace instrumeter::testing {
namespace {

using protocol::Channel;
using ::testing::HasSubstr;
namespace v1 = ::instrumeter::v1;

constexpr char kHubBin[] = INSTRUMETER_HUB_BIN;
constexpr char kAgentBin[] = INSTRUMETER_AGENT_BIN;
constexpr char kDeployDir[] = INSTRUMETER_DEPLOY_DIR;
constexpr char kSchedule[] = INSTRUMETER_SIMULATOR_SCHEDULE;
constexpr auto kWait = std::chrono::seconds(15);

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << "production.conf no longer contains '" << from << "'";
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

// One MQTT client with a certificate (or none), recording what it hears.
class Client {
 public:
  Client(const std::string& url, const std::string& client_id, std::optional<MqttLink::Tls> tls,
         std::vector<std::string> subscriptions = {}) {
    MqttLink::Options o;
    o.broker_url = url;
    o.client_id = client_id;
    o.tls = std::move(tls);
    o.connect_timeout_ms = 3000;
    o.subscriptions = std::move(subscriptions);
    auto link = MqttLink::Create(o);
    EXPECT_TRUE(link.ok()) << link.status().ToString();
    link_ = std::move(*link);
    EXPECT_TRUE(link_->Connect().ok());
  }

  // Waits for the outcome of the connect: true if connected.
  bool Connected() {
    WaitFor([&] { return Drain() || outcome_.has_value(); }, kWait);
    return outcome_.value_or(false);
  }
  bool Lost() {
    return WaitFor(
        [&] {
          Drain();
          return lost_;
        },
        kWait);
  }
  bool Publish(const std::string& topic, const std::string& payload, bool retained = false) {
    return link_->Publish(topic, payload, retained).ok();
  }
  // Waits until a message with `payload` arrived on `topic`.
  bool Heard(const std::string& topic, const std::string& payload) {
    return WaitFor(
        [&] {
          Drain();
          for (const auto& [t, p] : messages_)
            if (t == topic && p == payload) return true;
          return false;
        },
        kWait);
  }
  bool HeardAnything(const std::string& topic) {
    Drain();
    for (const auto& [t, p] : messages_)
      if (t == topic) return true;
    return false;
  }
  const std::string& detail() const { return detail_; }
  // Everything heard so far: (topic, payload).
  const std::vector<std::pair<std::string, std::string>>& Messages() {
    Drain();
    return messages_;
  }

 private:
  bool Drain() {
    for (MqttLink::Event& e : link_->TakeEvents()) {
      switch (e.kind) {
        case MqttLink::Event::Kind::kConnected:
          outcome_ = true;
          break;
        case MqttLink::Event::Kind::kConnectFailed:
          outcome_ = false;
          detail_ = e.detail;
          break;
        case MqttLink::Event::Kind::kConnectionLost:
          lost_ = true;
          detail_ = e.detail;
          break;
        case MqttLink::Event::Kind::kMessage:
          messages_.emplace_back(e.topic, e.payload);
          break;
      }
    }
    return false;
  }
  std::unique_ptr<MqttLink> link_;
  std::vector<std::pair<std::string, std::string>> messages_;
  std::optional<bool> outcome_;
  bool lost_ = false;
  std::string detail_;
};

class SecureStackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = FreeLoopbackPort();
    http_port_ = FreeLoopbackPort();
    url_ = "ssl://127.0.0.1:" + std::to_string(port_);
    WriteFile(hub_toml_,
              "[mqtt]\nbroker = \"" + url_ + "\"\nca_file = \"" + Ca("ca.crt") +
                  "\"\ncert_file = \"" + Ca("hub.crt") + "\"\nkey_file = \"" + Ca("hub.key") +
                  "\"\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n"
                  "[store]\npath = \"" +
                  dir_.File("hub.db") + "\"\n[security]\nca_dir = \"" + Ca("") +
                  "\"\nkey_reload_ms = 200\n"
                  // HTTPS with the broker's certificate: it names 127.0.0.1 too.
                  "[http]\nlisten = \"127.0.0.1:" +
                  std::to_string(http_port_) + "\"\ntls_cert_file = \"" + Ca("broker.crt") +
                  "\"\ntls_key_file = \"" + Ca("broker.key") + "\"\n");
    ASSERT_EQ(Hub({"ca", "init", "--broker-host", "127.0.0.1", "--config", hub_toml_}), 0) << out_;
    for (const char* id : {"dev-a", "dev-b"}) {
      ASSERT_EQ(
          Hub({"instruments", "add", "--id", id, "--name", id, "--institution", "Lab", "--site",
               "S", "--city", "Shanghai", "--region", "Shanghai", "--config", hub_toml_}),
          0)
          << out_;
      ASSERT_EQ(Hub({"devices", "enroll", id, "--out", dir_.File(id), "--state-dir",
                     dir_.File(std::string(id) + "-state"), "--config", hub_toml_}),
                0)
          << out_;
    }
    std::string conf = ReadFile(std::string(kDeployDir) + "/mosquitto/production.conf");
    conf = Replace(conf, "listener 8883", "listener " + std::to_string(port_) + " 127.0.0.1");
    conf = Replace(conf, "cafile /etc/mosquitto/certs/ca.crt", "cafile " + Ca("ca.crt"));
    conf =
        Replace(conf, "certfile /etc/mosquitto/certs/broker.crt", "certfile " + Ca("broker.crt"));
    conf = Replace(conf, "keyfile /etc/mosquitto/certs/broker.key", "keyfile " + Ca("broker.key"));
    conf = Replace(conf, "crlfile /etc/mosquitto/certs/crl.pem", "crlfile " + Ca("crl.pem"));
    conf = Replace(conf, "acl_file /etc/mosquitto/instrumeter.acl",
                   "acl_file " + std::string(kDeployDir) + "/mosquitto/instrumeter.acl");
    conf = Replace(conf, "persistence_location /var/lib/mosquitto/",
                   "persistence_location " + dir_.File("mosquitto-data") + "/");
    conf = Replace(conf, "log_dest syslog", "log_dest stderr");
    // Started as root (the test), Mosquitto would drop to the mosquitto user, who cannot read
    // this test's 0600 files; a deployment chowns them instead.
    WriteFile(broker_conf_, conf + "user root\n");
    std::filesystem::create_directories(dir_.File("mosquitto-data"));
    StartBroker();
  }

  void TearDown() override {
    agent_.Stop(std::chrono::seconds(10));
    hub_.Stop(std::chrono::seconds(10));
    broker_.Stop(std::chrono::seconds(5));
  }

  std::string Ca(const std::string& name) const { return dir_.File("ca") + "/" + name; }
  std::string Bundle(const std::string& id, const std::string& name) const {
    return dir_.File(id) + "/" + name;
  }
  MqttLink::Tls DeviceTls(const std::string& id) const {
    return {Ca("ca.crt"), Bundle(id, "device.crt"), Bundle(id, "device.key")};
  }
  MqttLink::Tls HubTls() const { return {Ca("ca.crt"), Ca("hub.crt"), Ca("hub.key")}; }

  int Hub(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {kHubBin};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, &out_);
  }

  void StartBroker() {
    auto child = ChildProcess::Start({"/usr/sbin/mosquitto", "-c", broker_conf_},
                                     dir_.File("mosquitto.log"));
    ASSERT_TRUE(child.ok());
    broker_ = std::move(*child);
    ASSERT_TRUE(WaitFor([&] { return PortAcceptsConnections(port_) || !broker_.Running(); }, kWait))
        << ReadFile(dir_.File("mosquitto.log"));
    ASSERT_TRUE(broker_.Running()) << ReadFile(dir_.File("mosquitto.log"));
  }

  void StartHub() {
    auto child = ChildProcess::Start({kHubBin, "run", "--config", hub_toml_}, hub_log_);
    ASSERT_TRUE(child.ok());
    hub_ = std::move(*child);
  }

  // dev-a's enrolled bundle, as installed, plus the simulator as its instrument.
  void StartAgent() {
    const std::string config = Bundle("dev-a", "agent.toml");
    WriteFile(config, "poll_interval_ms = 100\nheartbeat_interval_ms = 500\n" + ReadFile(config) +
                          "\n[[adapter]]\nname = \"sim\"\ntype = \"simulator\"\n"
                          "schedule_file = \"" +
                          kSchedule + "\"\n");
    auto child = ChildProcess::Start({kAgentBin, "run", "--config", config}, agent_log_);
    ASSERT_TRUE(child.ok());
    agent_ = std::move(*child);
  }

  std::unique_ptr<hub::Store> Store() {
    auto store = hub::OpenSqliteStore({.path = dir_.File("hub.db")});
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return std::move(*store);
  }
  hub::Billability Billing(const std::string& id = "dev-a") {
    auto rows = Store()->ReadBillability("");
    EXPECT_TRUE(rows.ok());
    for (const hub::Billability& b : *rows)
      if (b.device_id == id) return b;
    return {};
  }
  int64_t StoredEvents(const std::string& id = "dev-a") {
    return static_cast<int64_t>(Store()->ReadEvents(id, 1, 1'000'000)->size());
  }

  // Every envelope dev-a published, seen with the hub's certificate under another client id.
  std::unique_ptr<Client> Observer() {
    auto c =
        std::make_unique<Client>(url_, "observer", HubTls(),
                                 std::vector<std::string>{protocol::Topic("dev-a", Channel::kUp)});
    EXPECT_TRUE(c->Connected()) << c->detail();
    return c;
  }

  TempDir dir_;
  int port_ = 0;
  int http_port_ = 0;
  std::string url_;
  std::string hub_toml_ = dir_.File("hub.toml");
  std::string broker_conf_ = dir_.File("mosquitto.conf");
  std::string hub_log_ = dir_.File("hub.log");
  std::string agent_log_ = dir_.File("agent.log");
  std::string out_;
  ChildProcess broker_;
  ChildProcess hub_;
  ChildProcess agent_;
};

TEST_F(SecureStackTest, AnonymousPlainAndOldTlsConnectionsAreRefused) {
  Client anonymous(url_, "anon", MqttLink::Tls{Ca("ca.crt"), "", ""});
  EXPECT_FALSE(anonymous.Connected()) << "TLS without a client certificate";
  Client plain("tcp://127.0.0.1:" + std::to_string(port_), "plain", std::nullopt);
  EXPECT_FALSE(plain.Connected()) << "no TLS at all";
  Client device(url_, "dev-a", DeviceTls("dev-a"));
  EXPECT_TRUE(device.Connected()) << device.detail();
  // A certificate from another CA (a self-made one) is refused too.
  ASSERT_EQ(RunCommand({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=dev-a", "-days", "1",
                        "-keyout", dir_.File("rogue.key"), "-out", dir_.File("rogue.crt")},
                       &out_),
            0)
      << out_;
  Client rogue(url_, "dev-a",
               MqttLink::Tls{Ca("ca.crt"), dir_.File("rogue.crt"), dir_.File("rogue.key")});
  EXPECT_FALSE(rogue.Connected()) << "a self-signed certificate with a device's name";
  std::string output;
  RunCommand({"/bin/sh", "-c",
              "echo | /usr/bin/openssl s_client -connect 127.0.0.1:" + std::to_string(port_) +
                  " -tls1_1 2>&1"},
             &output);
  EXPECT_THAT(output, HasSubstr("alert protocol version")) << "TLS 1.1 is refused";
}

TEST_F(SecureStackTest, ADeviceCanNeitherPublishNorReadAnotherDevicesTopics) {
  Client hub(url_, "instrumeter-hub", HubTls(),
             {protocol::AllDevices(Channel::kUp), protocol::AllDevices(Channel::kStatus)});
  ASSERT_TRUE(hub.Connected()) << hub.detail();
  // dev-a subscribes to dev-b's acks too: Mosquitto grants the subscription, the ACL filters
  // every message.
  Client a(url_, "dev-a", DeviceTls("dev-a"),
           {protocol::Topic("dev-a", Channel::kAck), protocol::Topic("dev-b", Channel::kAck),
            protocol::AllDevices(Channel::kUp)});
  Client b(url_, "dev-b", DeviceTls("dev-b"), {protocol::Topic("dev-b", Channel::kAck)});
  ASSERT_TRUE(a.Connected()) << a.detail();
  ASSERT_TRUE(b.Connected()) << b.detail();

  // Publishes are delivered in order: once dev-a's own message arrives, a forged one sent before
  // it would have arrived too.
  ASSERT_TRUE(a.Publish(protocol::Topic("dev-b", Channel::kUp), "forged by dev-a"));
  ASSERT_TRUE(a.Publish(protocol::Topic("dev-b", Channel::kStatus), "forged status", true));
  ASSERT_TRUE(a.Publish(protocol::Topic("dev-a", Channel::kUp), "own"));
  ASSERT_TRUE(hub.Heard(protocol::Topic("dev-a", Channel::kUp), "own"));
  EXPECT_FALSE(hub.HeardAnything(protocol::Topic("dev-b", Channel::kUp)));
  EXPECT_FALSE(hub.HeardAnything(protocol::Topic("dev-b", Channel::kStatus)));
  EXPECT_FALSE(a.HeardAnything(protocol::Topic("dev-a", Channel::kUp)))
      << "a device cannot read even its own uplink";

  ASSERT_TRUE(hub.Publish(protocol::Topic("dev-b", Channel::kAck), "ack for dev-b"));
  ASSERT_TRUE(hub.Publish(protocol::Topic("dev-a", Channel::kAck), "ack for dev-a"));
  ASSERT_TRUE(b.Heard(protocol::Topic("dev-b", Channel::kAck), "ack for dev-b"));
  ASSERT_TRUE(a.Heard(protocol::Topic("dev-a", Channel::kAck), "ack for dev-a"));
  EXPECT_FALSE(a.HeardAnything(protocol::Topic("dev-b", Channel::kAck)));
  // Nor can a device speak for the hub.
  ASSERT_TRUE(a.Publish(protocol::Topic("dev-b", Channel::kAck), "fake ack"));
  ASSERT_TRUE(a.Publish(protocol::Topic("dev-a", Channel::kUp), "own again"));
  ASSERT_TRUE(hub.Heard(protocol::Topic("dev-a", Channel::kUp), "own again"));
  ASSERT_TRUE(hub.Publish(protocol::Topic("dev-b", Channel::kAck), "second ack"));
  ASSERT_TRUE(b.Heard(protocol::Topic("dev-b", Channel::kAck), "second ack"));
  for (const auto& [topic, payload] : b.Messages()) EXPECT_NE(payload, "fake ack");
  // A later subscriber sees no retained status forged under dev-b.
  Client late(url_, "instrumeter-hub-late", HubTls(), {protocol::AllDevices(Channel::kStatus)});
  ASSERT_TRUE(late.Connected());
  ASSERT_TRUE(a.Publish(protocol::Topic("dev-a", Channel::kStatus), "own status", true));
  ASSERT_TRUE(late.Heard(protocol::Topic("dev-a", Channel::kStatus), "own status"));
  EXPECT_FALSE(late.HeardAnything(protocol::Topic("dev-b", Channel::kStatus)));
}

TEST_F(SecureStackTest, AnEnrolledAgentIsVerifiedEndToEndAndForgeriesChangeNothing) {
  StartHub();
  auto observer = Observer();
  StartAgent();
  ASSERT_TRUE(WaitFor([&] { return Billing().contiguous_seq >= 5; }, kWait))
      << "agent:\n"
      << ReadFile(agent_log_) << "hub:\n"
      << ReadFile(hub_log_);
  agent_.Signal(SIGTERM);  // its AgentStop closes the run: a signed envelope
  ASSERT_EQ(agent_.Wait(kWait), 0) << ReadFile(agent_log_);
  std::string status;
  ASSERT_EQ(RunCommand({kAgentBin, "status", "--json", "--config", Bundle("dev-a", "agent.toml")},
                       &status),
            0);
  const std::string marker = "\"last_sequence\": ";
  const uint64_t last = std::stoull(status.substr(status.find(marker) + marker.size()));
  ASSERT_TRUE(WaitFor([&] { return Billing().signed_through == last; }, kWait))
      << "signed through " << Billing().signed_through << " of " << last;
  hub::Billability b = Billing();
  EXPECT_EQ(b.contiguous_seq, last);
  EXPECT_EQ(b.billable_through, last) << "every event of the run is billable";
  EXPECT_EQ(b.chain_broken_from, 0u);
  const int64_t stored = StoredEvents();

  // What an attacker holding dev-a's TLS certificate (but not its signing key) can try. The
  // hub acks what it stores or already has, never what it refuses; it handles messages in order,
  // so an ack after a replay sent last proves every forgery before it was handled.
  const std::string ack_topic = protocol::Topic("dev-a", Channel::kAck);
  Client attacker(url_, "dev-a", DeviceTls("dev-a"), {ack_topic});
  ASSERT_TRUE(attacker.Connected()) << attacker.detail();
  const std::string up = protocol::Topic("dev-a", Channel::kUp);
  const auto acks = [&] {
    size_t n = 0;
    for (const auto& [topic, payload] : attacker.Messages()) n += topic == ack_topic;
    return n;
  };
  std::optional<std::string> signed_capture;
  for (const auto& [topic, payload] : observer->Messages()) {
    auto env = protocol::DecodeEnvelope(payload);
    if (env.ok() && env->envelope.has_signature() && env->events.size() >= 1)
      signed_capture = payload;
  }
  ASSERT_TRUE(signed_capture.has_value());
  // 1. Flip a bit inside the last event of a signed envelope (in its boot id, so that it still
  //    parses): only the chain can tell.
  std::string flipped = *signed_capture;
  const std::string boot_id = protocol::DecodeEnvelope(flipped)->events.back().at().boot_id();
  const size_t at = flipped.rfind(boot_id);
  ASSERT_NE(at, std::string::npos);
  flipped[at] = static_cast<char>(flipped[at] ^ 0x01);
  ASSERT_TRUE(attacker.Publish(up, flipped));
  // 2. New events, signed with a key that is not dev-a's.
  auto thief = protocol::SigningKey::Generate();
  ASSERT_TRUE(thief.ok());
  v1::Event forged;
  forged.set_sequence(last + 1);
  forged.mutable_at()->set_boot_id("forged");
  forged.mutable_at()->set_wall_unix_ms(1'767'225'600'000);
  forged.mutable_state_change()->set_state(v1::INSTRUMENT_STATE_IN_USE);
  forged.mutable_state_change()->set_run_start(true);
  const std::string link = protocol::ChainNext(
      Store()->ReadEvents("dev-a", last, last)->front().link, forged.SerializeAsString());
  auto signature = thief->SignHead("dev-a", last + 1, link);
  ASSERT_TRUE(signature.ok());
  ASSERT_TRUE(
      attacker.Publish(up, protocol::EncodeEnvelope("dev-a", "forged", last + 1,
                                                    {forged.SerializeAsString()}, &*signature)));
  // 3. Replay a captured envelope: its ack, the first on this connection, comes after both
  //    forgeries were handled.
  ASSERT_TRUE(attacker.Publish(up, *signed_capture));
  ASSERT_TRUE(WaitFor([&] { return acks() > 0; }, kWait)) << ReadFile(hub_log_);
  EXPECT_THAT(ReadFile(hub_log_), HasSubstr("do not hash")) << "the flipped bit, logged";
  // 4. Replay everything captured.
  for (const auto& [topic, payload] : observer->Messages())
    ASSERT_TRUE(attacker.Publish(up, payload));
  ASSERT_TRUE(attacker.Publish(up, *signed_capture));
  const size_t acks_before = acks();
  ASSERT_TRUE(WaitFor([&] { return acks() > acks_before; }, kWait));
  EXPECT_EQ(StoredEvents(), stored);
  b = Billing();
  EXPECT_EQ(b.signed_through, last);
  EXPECT_EQ(b.contiguous_seq, last);
  EXPECT_EQ(b.chain_broken_from, 0u);

  // Revocation: the hub refuses dev-a once it re-reads its keys, and what an open connection
  // sends after the revocation, even signed with dev-a's real key, is never billable (should it
  // arrive before that re-read, revocation caps billing at the moment it happened).
  ASSERT_EQ(Hub({"devices", "revoke", "dev-a", "--config", hub_toml_}), 0) << out_;
  broker_.Signal(SIGHUP);
  auto key = protocol::SigningKey::LoadFile(Bundle("dev-a", "signing.key"));
  ASSERT_TRUE(key.ok());
  auto genuine = key->SignHead("dev-a", last + 1, link);
  ASSERT_TRUE(genuine.ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        attacker.Publish(up, protocol::EncodeEnvelope("dev-a", "forged", last + 1,
                                                      {forged.SerializeAsString()}, &*genuine));
        return ReadFile(hub_log_).find("whose key is revoked") != std::string::npos;
      },
      kWait))
      << ReadFile(hub_log_);
  EXPECT_LE(StoredEvents(), stored + 1);
  EXPECT_EQ(Billing().billable_through, last);
  EXPECT_TRUE(Billing().revoked);
}

// Mosquitto prints this note each time it reads production.conf: at start and on every SIGHUP.
size_t ConfigReads(const std::string& log) {
  size_t n = 0;
  for (size_t at = log.find("max_packet_size"); at != std::string::npos;
       at = log.find("max_packet_size", at + 1))
    ++n;
  return n;
}

TEST_F(SecureStackTest, ARevokedDeviceCanNoLongerConnect) {
  Client hub(url_, "instrumeter-hub", HubTls(), {protocol::AllDevices(Channel::kUp)});
  Client connected(url_, "dev-a", DeviceTls("dev-a"));
  ASSERT_TRUE(hub.Connected()) << hub.detail();
  ASSERT_TRUE(connected.Connected()) << connected.detail();
  ASSERT_EQ(Hub({"devices", "revoke", "dev-a", "--config", hub_toml_}), 0) << out_;
  EXPECT_THAT(out_, HasSubstr("reload"));
  // What Mosquitto 2.0.11 does on SIGHUP: it reads the new CRL and refuses new connections...
  const size_t reads = ConfigReads(ReadFile(dir_.File("mosquitto.log")));
  broker_.Signal(SIGHUP);
  ASSERT_TRUE(
      WaitFor([&] { return ConfigReads(ReadFile(dir_.File("mosquitto.log"))) > reads; }, kWait))
      << "the broker did not re-read its configuration";
  Client after_reload(url_, "dev-a-2", DeviceTls("dev-a"));
  EXPECT_FALSE(after_reload.Connected()) << "a new connection after the reload";
  Client other(url_, "dev-b", DeviceTls("dev-b"));
  EXPECT_TRUE(other.Connected()) << other.detail();
  // ... but leaves the open one open: only a restart cuts it (the hub refuses its telemetry
  // meanwhile).
  ASSERT_TRUE(connected.Publish(protocol::Topic("dev-a", Channel::kUp), "still here"));
  EXPECT_TRUE(hub.Heard(protocol::Topic("dev-a", Channel::kUp), "still here"));
  broker_.Stop(std::chrono::seconds(5));
  EXPECT_TRUE(connected.Lost());
  StartBroker();
  Client after_restart(url_, "dev-a", DeviceTls("dev-a"));
  EXPECT_FALSE(after_restart.Connected());
  EXPECT_THAT(ReadFile(dir_.File("mosquitto.log")), HasSubstr("certificate verify failed"));
}

// The hub's HTTP API over TLS, with a token from the CLI: 401 without one or with a wrong one.
TEST_F(SecureStackTest, TheHttpApiWantsABearerTokenOverTls) {
  ASSERT_EQ(Hub({"tokens", "add", "ops", "--config", hub_toml_}), 0) << out_;
  std::string token = out_.substr(0, out_.find('\n'));
  ASSERT_EQ(token.rfind("imt_", 0), 0u) << out_;
  StartHub();
  const std::string base = "https://127.0.0.1:" + std::to_string(http_port_);
  const auto curl = [&](const std::vector<std::string>& args, std::string* body) {
    std::vector<std::string> argv = {
        "/usr/bin/curl", "--silent",   "--max-time",  "5",
        "--cacert",      Ca("ca.crt"), "--write-out", "\n%{http_code}"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string out;
    RunCommand(argv, &out);
    const size_t nl = out.rfind('\n');
    *body = nl == std::string::npos ? "" : out.substr(0, nl);
    return nl == std::string::npos ? 0 : std::atoi(out.c_str() + nl + 1);
  };
  std::string body;
  ASSERT_TRUE(WaitFor([&] { return curl({base + "/healthz"}, &body) == 200; }, kWait))
      << body << ReadFile(hub_log_);
  EXPECT_EQ(curl({base + "/api/v1/instruments"}, &body), 401);
  EXPECT_THAT(body, HasSubstr("\"status\":401"));
  EXPECT_EQ(curl({"-H", "Authorization: Bearer imt_wrong", base + "/api/v1/instruments"}, &body),
            401);
  EXPECT_EQ(curl({base + "/metrics"}, &body), 401);
  EXPECT_EQ(curl({"-H", "Authorization: Bearer " + token, base + "/api/v1/instruments"}, &body),
            200);
  EXPECT_THAT(body, HasSubstr("dev-a"));
  EXPECT_EQ(curl({"-H", "Authorization: Bearer " + token, base + "/metrics"}, &body), 200);
  EXPECT_THAT(body, HasSubstr("instrumeter_hub_events_rejected_total{reason=\"bad_signature\"}"));
  ASSERT_EQ(Hub({"tokens", "revoke", "ops", "--config", hub_toml_}), 0) << out_;
  EXPECT_EQ(curl({"-H", "Authorization: Bearer " + token, base + "/api/v1/instruments"}, &body),
            401);
  EXPECT_NE(curl({"http://127.0.0.1:" + std::to_string(http_port_) + "/healthz"}, &body), 200)
      << "no plain HTTP";
}

}  // namespace
}  // namespace instrumeter::testing
