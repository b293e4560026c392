#include "hub/cli.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "hub/hub_config.h"
#include "hub/ingestor.h"
#include "hub/sqlite_store.h"
#include "hub_testing/events.h"
#include "protocol/topics.h"
#include "test_support/process.h"

namespace instrumeter::hub {
namespace {

using instrumeter::testing::ReadFile;
using instrumeter::testing::WriteFile;

class NullDownlink : public Downlink {
 public:
  Status SendAck(const std::string&, uint64_t) override { return Status::Ok(); }
  Status SendResend(const std::string&, uint64_t, uint64_t) override { return Status::Ok(); }
};

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(config_, "[mqtt]\nbroker = \"tcp://127.0.0.1:1\"\n[store]\npath = \"" +
                           dir_.File("hub.db") + "\"\n");
  }

  struct Output {
    int code;
    std::string out;
    std::string err;
  };

  Output Run(std::vector<std::string> args) {
    args.insert(args.begin(), "instrumeter-hub");
    std::vector<const char*> argv;
    for (const std::string& a : args) argv.push_back(a.c_str());
    std::ostringstream out;
    std::ostringstream err;
    const int code = RunHubCli(static_cast<int>(argv.size()), argv.data(), out, err);
    return {code, out.str(), err.str()};
  }

  // Ingests the typical run of `device` (registered first) straight into the database.
  void Ingest(const std::string& device) {
    Result<std::unique_ptr<Store>> store = OpenSqliteStore({.path = dir_.File("hub.db")});
    ASSERT_TRUE(store.ok());
    FakeClock clock;
    HubMetrics metrics;
    NullDownlink downlink;
    auto ingestor = Ingestor::Create(store->get(), &downlink, &clock, &metrics, {});
    ASSERT_TRUE(ingestor.ok());
    (*ingestor)->OnMessage(protocol::Topic(device, protocol::Channel::kUp),
                           testing::EnvelopeOf(device, testing::TypicalRun()),
                           testing::kWall + 1'200'000);
    v1::DeviceStatus online;
    online.set_online(true);
    online.set_since_unix_ms(testing::kWall);
    (*ingestor)->OnMessage(protocol::Topic(device, protocol::Channel::kStatus),
                           online.SerializeAsString(), testing::kWall + 1'200'000);
    ASSERT_TRUE((*ingestor)->Flush().ok());
    ASSERT_EQ(metrics.events_stored, 12u);
  }

  instrumeter::testing::TempDir dir_;
  std::string config_ = dir_.File("hub.toml");
};

TEST_F(CliTest, ImportWithABadRowNamesLineAndFieldAndImportsNothing) {
  const std::string csv = dir_.File("instruments.csv");
  WriteFile(csv,
            "instrument_id,name,institution,site,city,region\n"
            "nmr-1,NMR 600,Fudan,Jiangwan,Shanghai,Shanghai\n"
            "tem-2,TEM,SJTU,Minhang,Shanghai,Shanghai\n"
            "sem 3,SEM,ZJU,Zijingang,Hangzhou,Zhejiang\n");
  Output r = Run({"instruments", "import", csv, "--config", config_});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(csv + ":4: field 'instrument_id'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nothing imported"), std::string::npos) << r.err;
  r = Run({"instruments", "list", "--format", "csv", "--config", config_});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "instrument_id,name,institution,site,city,region\n");
}

TEST_F(CliTest, ImportRoundTripsThroughListAndReimportUpdates) {
  const std::string csv = dir_.File("instruments.csv");
  const std::string text =
      "instrument_id,name,institution,site,city,region\n"
      "nmr-1,\"NMR 600, cryoprobe\",Fudan,Jiangwan,Shanghai,Shanghai\n"
      "tem-2,TEM,SJTU,Minhang,Shanghai,Shanghai\n";
  WriteFile(csv, text);
  Output r = Run({"instruments", "import", csv, "--config", config_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "imported 2 instruments (2 new, 0 updated)\n");
  r = Run({"instruments", "list", "--format", "csv", "--config", config_});
  EXPECT_EQ(r.out, text);

  const std::string json = dir_.File("more.json");
  WriteFile(json, R"([{"instrument_id": "tem-2", "name": "TEM 300 kV", "city": "Shanghai"},
                      {"instrument_id": "sem-3", "name": "SEM"}])");
  r = Run({"instruments", "import", json, "--config", config_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "imported 2 instruments (1 new, 1 updated)\n");
  r = Run({"instruments", "list", "--format", "json", "--config", config_});
  nlohmann::json list = nlohmann::json::parse(r.out);
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[2]["instrument_id"], "tem-2");
  EXPECT_EQ(list[2]["name"], "TEM 300 kV");
  EXPECT_EQ(list[2]["institution"], "") << "a re-import replaces every field";
}

TEST_F(CliTest, AddRegistersOnceAndValidatesTheId) {
  const std::vector<std::string> add = {"instruments", "add",      "--id",          "nmr-1",
                                        "--name",      "NMR",      "--institution", "Fudan",
                                        "--site",      "Jiangwan", "--city",        "Shanghai",
                                        "--region",    "Shanghai", "--config",      config_};
  Output r = Run(add);
  ASSERT_EQ(r.code, 0) << r.err;
  r = Run(add);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("already registered"), std::string::npos) << r.err;
  std::vector<std::string> bad = add;
  bad[3] = "nmr/1";
  EXPECT_EQ(Run(bad).code, 2);
  r = Run({"instruments", "list", "--config", config_});
  EXPECT_NE(r.out.find("registered"), std::string::npos);
  EXPECT_NE(r.out.find("nmr-1"), std::string::npos);
}

TEST_F(CliTest, HoursOverTheWholeDayAndAClippedRange) {
  ASSERT_EQ(Run({"instruments", "add", "--id", "nmr-1", "--name", "NMR", "--institution", "F",
                 "--site", "J", "--city", "Shanghai", "--region", "Shanghai", "--config", config_})
                .code,
            0);
  Ingest("nmr-1");
  // The typical run: IDLE 90 + 100 + 60 s, IN_USE 120 + 60 s, gaps 90 s (crash) + 600 s (reboot).
  Output r = Run({"hours", "--from", "2026-01-01", "--to", "2026-01-02", "--format", "csv",
                  "--config", config_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "instrument_id,name,powered_seconds,in_use_seconds,gap_seconds,"
            "counter_powered_seconds,counter_in_use_seconds,counter_mismatch\n"
            "nmr-1,NMR,430.000,180.000,690.000,430.000,180.000,false\n");

  // 00:01:00 to 00:02:00 (+08:00 offsets accepted): 30 s of the first IDLE interval [0, 90 s) and
  // 30 s of the IN_USE one [90 s, 210 s), both clipped proportionally.
  r = Run({"hours", "--from", "2026-01-01T08:01:00+08:00", "--to", "2026-01-01T00:02:00Z",
           "--instrument", "nmr-1", "--format", "json", "--config", config_});
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::json doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc["from"], "2026-01-01T00:01:00.000Z");
  ASSERT_EQ(doc["instruments"].size(), 1u);
  const nlohmann::json& row = doc["instruments"][0];
  EXPECT_EQ(row["powered_seconds"], 60.0);
  EXPECT_EQ(row["in_use_seconds"], 30.0);
  EXPECT_EQ(row["gap_seconds"], 0.0);
  EXPECT_EQ(row["counter_powered_seconds"], 60.0);
  EXPECT_EQ(row["counter_in_use_seconds"], 30.0);
  EXPECT_EQ(row["counter_mismatch"], false);

  r = Run({"hours", "--from", "2026-01-01", "--to", "2026-01-02", "--config", config_});
  ASSERT_EQ(r.code, 0);
  EXPECT_EQ(r.out.substr(0, r.out.find('\n')),
            "instrument_id  name  powered_seconds  in_use_seconds  gap_seconds  "
            "counter_powered_seconds  counter_in_use_seconds  counter_mismatch");

  EXPECT_EQ(Run({"hours", "--from", "yesterday", "--to", "2026-01-02", "--config", config_}).code,
            2);
  EXPECT_EQ(Run({"hours", "--from", "2026-01-02", "--to", "2026-01-01", "--config", config_}).code,
            2);
  r = Run({"hours", "--from", "2026-01-01", "--to", "2026-01-02", "--instrument", "xyz", "--config",
           config_});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("'xyz'"), std::string::npos);
}

TEST_F(CliTest, StatusShowsEveryRegisteredInstrument) {
  const std::string csv = dir_.File("i.csv");
  WriteFile(csv,
            "instrument_id,name,institution,site,city,region\n"
            "nmr-1,NMR,Fudan,Jiangwan,Shanghai,Shanghai\n"
            "tem-2,TEM,ZJU,Zijingang,Hangzhou,Zhejiang\n");
  ASSERT_EQ(Run({"instruments", "import", csv, "--config", config_}).code, 0);
  Ingest("nmr-1");
  Output r = Run({"status", "--config", config_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "instrument_id  name  city      state         since                     "
            "powered_seconds  in_use_seconds  events  online  last_seen\n"
            "nmr-1          NMR   Shanghai  IDLE          2026-01-01T00:17:40.000Z          "
            "430.000         180.000      12  online  2026-01-01T00:20:00.000Z\n"
            "tem-2          TEM   Hangzhou  NOT_OBSERVED  -                                   "
            "0.000           0.000       0  -       -\n");
  nlohmann::json doc =
      nlohmann::json::parse(Run({"status", "--format", "json", "--config", config_}).out);
  ASSERT_EQ(doc.size(), 2u);
  EXPECT_EQ(doc[0]["instrument_id"], "nmr-1");
  EXPECT_EQ(doc[0]["state"], "IDLE");
  EXPECT_EQ(doc[0]["state_since"], "2026-01-01T00:17:40.000Z");
  EXPECT_EQ(doc[0]["powered_seconds"], 430.0);
  EXPECT_EQ(doc[0]["in_use_seconds"], 180.0);
  EXPECT_EQ(doc[0]["events_stored"], 12);
  EXPECT_EQ(doc[0]["online"], true);
  EXPECT_EQ(doc[0]["last_seen"], "2026-01-01T00:20:00.000Z");
  EXPECT_EQ(doc[1]["instrument_id"], "tem-2");
  EXPECT_EQ(doc[1]["state"], "NOT_OBSERVED");
  EXPECT_TRUE(doc[1]["online"].is_null());
  EXPECT_TRUE(doc[1]["last_seen"].is_null());
}

TEST_F(CliTest, UsageAndConfigErrorsExitWithTwo) {
  EXPECT_EQ(Run({}).code, 2);
  EXPECT_EQ(Run({"bogus"}).code, 2);
  EXPECT_EQ(Run({"status"}).code, 2) << "no --config";
  EXPECT_EQ(Run({"status", "--format", "xml", "--config", config_}).code, 2);
  WriteFile(config_, "[mqtt]\nbroker = \"tcp://b:1883\"\nbrokr = \"x\"\n[store]\npath = \"h\"\n");
  Output r = Run({"status", "--config", config_});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(config_ + ":3:"), std::string::npos) << r.err;
  EXPECT_EQ(Run({"status", "--config", dir_.File("missing.toml")}).code, 2);
  r = Run({"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("instruments"), std::string::npos);
  EXPECT_EQ(Run({"hours", "--help"}).code, 0);
}

TEST_F(CliTest, ADatabaseThatCannotBeOpenedIsARuntimeError) {
  WriteFile(config_, "[mqtt]\nbroker = \"tcp://b:1883\"\n[store]\npath = \"" +
                         dir_.File("no/such/dir/hub.db") + "\"\n");
  Output r = Run({"instruments", "list", "--config", config_});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("no/such/dir/hub.db"), std::string::npos) << r.err;
}

TEST_F(CliTest, ConfigReferenceMatchesTheCommittedDoc) {
  Output r = Run({"config-reference"});
  ASSERT_EQ(r.code, 0);
  EXPECT_EQ(r.out, HubConfigReference());
  EXPECT_EQ(ReadFile(INSTRUMETER_HUB_CONFIG_DOC), r.out)
      << "regenerate: instrumeter-hub config-reference > docs/hub-config.md";
}

}  // namespace
}  // namespace instrumeter::hub
