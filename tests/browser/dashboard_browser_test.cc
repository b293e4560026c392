// The dashboard in a real browser: headless Chromium driven over WebDriver (chromedriver), the
// real instrumeter-hub binary and a real Mosquitto, with the test publishing what simulated
// agents would. Checks that a tile changes state live, without a reload, that an agent going
// offline is marked, that the side panel draws its timeline, and that the page reconnects by
// itself after the hub restarts; that bookings show on tiles and in the panel; and that a
// customer's share link shows its session live while a wrong link gets a clear refusal page.
// Screenshots go to the build folder (INSTRUMETER_SCREENSHOT_DIR).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/mqtt_link.h"
#include "hub_testing/events.h"
#include "hub_testing/http_client.h"
#include "protocol/topics.h"
#include "test_support/mosquitto.h"
#include "test_support/process.h"

namespace instrumeter::hub {
namespace {

using instrumeter::testing::ChildProcess;
using instrumeter::testing::RunCommand;
using instrumeter::testing::TempDir;
using instrumeter::testing::TestBroker;
using instrumeter::testing::WaitFor;
using instrumeter::testing::WriteFile;
using nlohmann::json;
namespace ht = hub::testing;

constexpr char kHub[] = INSTRUMETER_HUB_BINARY;
constexpr char kChromium[] = "/usr/bin/chromium";
constexpr char kChromedriver[] = "/usr/bin/chromedriver";
constexpr auto kWait = std::chrono::seconds(20);

std::string Base64Decode(const std::string& in) {
  std::string out;
  int value = 0;
  int bits = -8;
  for (unsigned char c : in) {
    int d;
    if (c >= 'A' && c <= 'Z')
      d = c - 'A';
    else if (c >= 'a' && c <= 'z')
      d = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      d = c - '0' + 52;
    else if (c == '+')
      d = 62;
    else if (c == '/')
      d = 63;
    else
      continue;  // padding, line breaks
    value = (value << 6) + d;
    bits += 6;
    if (bits >= 0) {
      out.push_back(static_cast<char>((value >> bits) & 0xFF));
      bits -= 8;
    }
  }
  return out;
}

// A WebDriver session on a chromedriver child process.
class Browser {
 public:
  Status Start(const std::string& dir) {
    port_ = instrumeter::testing::FreeLoopbackPort();
    auto driver = ChildProcess::Start({kChromedriver, "--port=" + std::to_string(port_)},
                                      dir + "/chromedriver.log");
    if (!driver.ok()) return driver.status();
    driver_ = std::move(*driver);
    if (!WaitFor([&] { return instrumeter::testing::PortAcceptsConnections(port_); }, kWait))
      return Status::Unavailable("chromedriver did not start");
    const json args = {"--headless",
                       "--no-sandbox",
                       "--disable-gpu",
                       "--disable-quic",
                       "--no-first-run",
                       "--disable-background-networking",
                       "--disable-component-update",
                       "--disable-sync",
                       "--disable-dev-shm-usage",
                       "--hide-scrollbars",
                       "--window-size=1440,1000",
                       "--user-data-dir=" + dir + "/chromium-profile"};
    Result<json> session =
        Call("POST", "/session",
             {{"capabilities",
               {{"alwaysMatch",
                 {{"browserName", "chrome"},
                  {"goog:chromeOptions", {{"binary", kChromium}, {"args", args}}}}}}}});
    if (!session.ok()) return session.status();
    session_ = (*session)["sessionId"];
    return Status::Ok();
  }

  ~Browser() {
    if (!session_.empty()) (void)Call("DELETE", "/session/" + session_, nullptr);
    driver_.Stop(std::chrono::seconds(5));
  }

  Result<json> Call(const std::string& method, const std::string& path, const json& body) {
    auto r = ht::Fetch(port_, {.method = method,
                               .target = path,
                               .headers = {{"Content-Type", "application/json"}},
                               .body = body.is_null() ? "" : body.dump(),
                               .timeout = std::chrono::seconds(60)});
    if (!r.ok()) return r.status();
    json reply = json::parse(r->body, nullptr, false);
    if (r->status != 200 || reply.is_discarded())
      return Status::Internal("webdriver " + method + " " + path + ": " + r->body.substr(0, 400));
    return reply["value"];
  }

  Status Open(const std::string& url) {
    return Call("POST", "/session/" + session_ + "/url", {{"url", url}}).status();
  }
  json Run(const std::string& script) {
    Result<json> v = Call("POST", "/session/" + session_ + "/execute/sync",
                          {{"script", script}, {"args", json::array()}});
    return v.ok() ? *v : json();
  }
  bool WaitUntil(const std::string& script) {
    return WaitFor([&] { return Run(script) == true; }, kWait);
  }
  void Screenshot(const std::string& name) {
    Result<json> png = Call("GET", "/session/" + session_ + "/screenshot", nullptr);
    ASSERT_TRUE(png.ok()) << png.status().ToString();
    std::filesystem::create_directories(INSTRUMETER_SCREENSHOT_DIR);
    std::ofstream(std::string(INSTRUMETER_SCREENSHOT_DIR) + "/" + name, std::ios::binary)
        << Base64Decode(png->get<std::string>());
  }

 private:
  int port_ = 0;
  ChildProcess driver_;
  std::string session_;
};

struct Fixture {
  const char* id;
  const char* name;
  const char* institution;
  const char* site;
  const char* city;
  v1::InstrumentState state;
  std::optional<bool> online;
};

const Fixture kInstruments[] = {
    {"sh-fudan-nmr-600", "Bruker NMR 600", "Fudan University", "Jiangwan", "Shanghai",
     v1::INSTRUMENT_STATE_IDLE, true},
    {"sh-fudan-tem-200", "JEOL TEM 200kV", "Fudan University", "Jiangwan", "Shanghai",
     v1::INSTRUMENT_STATE_IN_USE, true},
    {"sh-simm-lcms-1", "Agilent LC-MS", "SIMM", "Zhangjiang", "Shanghai",
     v1::INSTRUMENT_STATE_FAULT, true},
    {"sh-simm-seq-2", "Illumina NovaSeq", "SIMM", "Zhangjiang", "Shanghai",
     v1::INSTRUMENT_STATE_OFF, false},
    {"sz-suda-xrd-1", "Rigaku XRD", "Soochow University", "Dushu Lake", "Suzhou",
     v1::INSTRUMENT_STATE_IN_USE, true},
    {"sz-suda-sem-1", "Zeiss SEM", "Soochow University", "Dushu Lake", "Suzhou",
     v1::INSTRUMENT_STATE_UNKNOWN, true},
    {"hz-zju-icp-1", "ICP-MS", "Zhejiang University", "Zijingang", "Hangzhou",
     v1::INSTRUMENT_STATE_IDLE, true},
    {"hz-zju-fib-1", "FIB-SEM", "Zhejiang University", "Zijingang", "Hangzhou",
     v1::INSTRUMENT_STATE_UNSPECIFIED, std::nullopt},
};
constexpr char kWatched[] = "sh-fudan-nmr-600";

class DashboardBrowserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kChromium, X_OK) != 0 || access(kChromedriver, X_OK) != 0)
      GTEST_SKIP() << "chromium and chromium-driver are not installed "
                      "(deploy/install-deps.sh test installs them)";
    auto broker = TestBroker::Start();
    ASSERT_TRUE(broker.ok()) << broker.status().ToString();
    broker_ = std::move(*broker);
    port_ = instrumeter::testing::FreeLoopbackPort();
    WriteFile(config_,
              "[mqtt]\nbroker = \"" + broker_->url() +
                  "\"\nreconnect_min_ms = 100\nreconnect_max_ms = 500\n[store]\npath = \"" +
                  dir_.File("hub.db") +
                  "\"\n[http]\nlisten = \"127.0.0.1:" + std::to_string(port_) + "\"\n");
    for (const Fixture& f : kInstruments) {
      std::string out;
      ASSERT_EQ(RunCommand({kHub, "instruments", "add", "--id", f.id, "--name", f.name,
                            "--institution", f.institution, "--site", f.site, "--city", f.city,
                            "--region", f.city, "--config", config_},
                           &out),
                0)
          << out;
    }
    StartHub();
    MqttLink::Options options;
    options.broker_url = broker_->url();
    options.client_id = "simulated-agents";
    auto agents = MqttLink::Create(options);
    ASSERT_TRUE(agents.ok());
    agents_ = std::move(*agents);
    ASSERT_TRUE(agents_->Connect().ok());
    ASSERT_TRUE(WaitFor([&] { return agents_->connected(); }, kWait));

    // Each instrument's day so far: its state since an hour ago (some with an earlier run and a
    // gap), heartbeats every 20 minutes, and its agent's retained status.
    const int64_t now = clock_.WallUnixMs();
    for (const Fixture& f : kInstruments) {
      if (f.state == v1::INSTRUMENT_STATE_UNSPECIFIED) continue;
      const bool powered = protocol::IsPowered(f.state);
      // The history ends a second ago, so the current state overlaps "today" (a UTC day) at
      // any time of day: it failed just after midnight when the history ended 10 minutes ago.
      const int64_t start = now - (5'400'000 + 4 * 1'200'000) - 1'000;
      std::vector<v1::Event> events = {
          ht::Start(1, v1::INSTRUMENT_STATE_IDLE, {ht::kBoot1, 1'000, start})};
      events.push_back(ht::Stop(2, v1::INSTRUMENT_STATE_IDLE,
                                {ht::kBoot1, 1'000 + 3'600'000, start + 3'600'000, 3'600'000, 0}));
      events.push_back(
          ht::Start(3, f.state, {ht::kBoot1, 1'000 + 5'400'000, start + 5'400'000, 3'600'000, 0}));
      for (int i = 1; i <= 4; ++i) {
        const int64_t t = 5'400'000 + i * 1'200'000;
        const uint64_t grew = powered ? static_cast<uint64_t>(i) * 1'200'000 : 0;
        events.push_back(ht::Beat(3 + static_cast<uint64_t>(i), f.state,
                                  {ht::kBoot1, 1'000 + t, start + t, 3'600'000 + grew,
                                   protocol::IsInUse(f.state) ? grew : 0},
                                  "0.1.0", 1));
      }
      Publish(f.id, events);
      Meter& m = meters_[f.id];
      m.next_seq = events.size() + 1;
      m.mono = 1'000 + 5'400'000 + 4 * 1'200'000;
      m.wall = start + 5'400'000 + 4 * 1'200'000;
      m.state = f.state;
      m.powered = 3'600'000 + (powered ? 4 * 1'200'000 : 0);
      m.in_use = protocol::IsInUse(f.state) ? 4 * 1'200'000 : 0;
      if (f.online.has_value()) SetOnline(f.id, *f.online);
    }
    ASSERT_TRUE(WaitFor(
        [&] {
          auto r = ht::Get(port_, "/api/v1/instruments?state=NOT_OBSERVED");
          return r.ok() && json::parse(r->body)["count"] == 1;
        },
        kWait));
  }

  void TearDown() override {
    if (HasFailure())
      std::cerr << "--- hub log ---\n" << instrumeter::testing::ReadFile(hub_log_) << "\n";
  }

  void StartHub() {
    auto hub = ChildProcess::Start({kHub, "run", "--config", config_}, hub_log_);
    ASSERT_TRUE(hub.ok());
    hub_ = std::move(*hub);
    // Healthy means subscribed too: what the fixtures publish before that would reach nobody
    // (the hub's session starts with its first subscription), and the test would wait in vain.
    ASSERT_TRUE(WaitFor(
        [&] {
          auto r = ht::Get(port_, "/healthz");
          return r.ok() && r->status == 200;
        },
        kWait));
  }

  void Publish(const std::string& id, const std::vector<v1::Event>& events) {
    ASSERT_TRUE(agents_
                    ->Publish(protocol::Topic(id, protocol::Channel::kUp),
                              ht::EnvelopeOf(id, events), false)
                    .ok());
  }

  void SetOnline(const std::string& id, bool online) {
    v1::DeviceStatus status;
    status.set_online(online);
    status.set_since_unix_ms(clock_.WallUnixMs());
    status.set_agent_version("0.1.0");
    ASSERT_TRUE(agents_
                    ->Publish(protocol::Topic(id, protocol::Channel::kStatus),
                              status.SerializeAsString(), true)
                    .ok());
  }

  // The watched instrument enters `state` now; its meter counts the time since its last event.
  void ChangeState(v1::InstrumentState state) {
    Meter& m = meters_[kWatched];
    const int64_t now = clock_.WallUnixMs();
    const uint64_t elapsed = static_cast<uint64_t>(now - m.wall);
    if (protocol::IsPowered(m.state)) m.powered += elapsed;
    if (protocol::IsInUse(m.state)) m.in_use += elapsed;
    m.mono += static_cast<int64_t>(elapsed);
    m.wall = now;
    m.state = state;
    Publish(kWatched,
            {ht::Change(m.next_seq++, state, {ht::kBoot1, m.mono, now, m.powered, m.in_use})});
  }

  static std::string TileState(const std::string& id) {
    return "const t = document.querySelector('.tile[data-id=\"" + id +
           "\"]'); return t ? t.dataset.state : null;";
  }

  SystemClock clock_;
  TempDir dir_;
  std::string config_ = dir_.File("hub.toml");
  std::string hub_log_ = dir_.File("hub.log");
  std::unique_ptr<TestBroker> broker_;
  int port_ = 0;
  ChildProcess hub_;
  std::unique_ptr<MqttLink> agents_;
  // What each simulated agent last reported.
  struct Meter {
    uint64_t next_seq = 1;
    int64_t mono = 0;
    int64_t wall = 0;
    v1::InstrumentState state = v1::INSTRUMENT_STATE_UNSPECIFIED;
    uint64_t powered = 0;
    uint64_t in_use = 0;
  };
  std::map<std::string, Meter> meters_;
};

TEST_F(DashboardBrowserTest, TilesFollowTheStreamWithoutAReload) {
  Browser browser;
  ASSERT_TRUE(browser.Start(dir_.path()).ok());
  ASSERT_TRUE(browser.Open("http://127.0.0.1:" + std::to_string(port_) + "/").ok());
  ASSERT_TRUE(
      browser.WaitUntil("return document.getElementById('live-text').textContent === 'live' && "
                        "document.querySelectorAll('.tile').length === 8;"))
      << browser.Run("return document.body.innerText;").dump();
  EXPECT_EQ(browser.Run(TileState(kWatched)), "IDLE");
  EXPECT_TRUE(browser.WaitUntil(
      "return document.querySelector('.count[data-state=\"IN_USE\"] .n').textContent === '2';"));
  EXPECT_EQ(browser.Run("return document.querySelector('.tile[data-id=\"sh-simm-seq-2\"]')"
                        ".classList.contains('offline');"),
            true)
      << "an offline agent is marked";
  const json page_id = browser.Run("return window.__instrumeterPageId;");
  ASSERT_TRUE(page_id.is_string());
  browser.Screenshot("dashboard-before.png");

  // The instrument starts a measurement: its tile turns IN_USE from the stream, same page.
  ChangeState(v1::INSTRUMENT_STATE_IN_USE);
  ASSERT_TRUE(browser.WaitUntil("return (function(){" + TileState(kWatched) + "})() === 'IN_USE';"))
      << browser.Run(TileState(kWatched)).dump();
  EXPECT_EQ(browser.Run("return window.__instrumeterPageId;"), page_id) << "the page reloaded";
  // The counts follow on the next animation frame.
  EXPECT_TRUE(browser.WaitUntil(
      "return document.querySelector('.count[data-state=\"IN_USE\"] .n').textContent === '3';"));
  // Its agent goes offline: the tile says so.
  SetOnline(kWatched, false);
  ASSERT_TRUE(browser.WaitUntil("return document.querySelector('.tile[data-id=\"" +
                                std::string(kWatched) + "\"]').classList.contains('offline');"));
  SetOnline(kWatched, true);
  ASSERT_TRUE(browser.WaitUntil("return !document.querySelector('.tile[data-id=\"" +
                                std::string(kWatched) + "\"]').classList.contains('offline');"));
  browser.Screenshot("dashboard-live.png");

  // The side panel: today's and this week's timelines as SVG bars, bookings, agent health.
  browser.Run("document.querySelector('.tile[data-id=\"sh-fudan-tem-200\"]').click();");
  ASSERT_TRUE(
      browser.WaitUntil("return !document.getElementById('panel').hidden && "
                        "document.querySelectorAll('#p-today rect.IN_USE').length > 0 && "
                        "document.querySelectorAll('#p-week rect.IDLE').length > 0;"));
  EXPECT_EQ(browser.Run("return document.getElementById('p-bookings').textContent;"),
            "In use, unbookedNo bookings in the next 7 days.");
  EXPECT_EQ(browser.Run("return document.getElementById('p-agent').textContent.includes('0.1.0');"),
            true);
  browser.Screenshot("dashboard-panel.png");
  browser.Run("document.getElementById('p-close').click();");

  // The hub restarts: the page shows that it reconnects, then catches up by itself.
  hub_.Stop();
  ASSERT_TRUE(browser.WaitUntil("return !document.getElementById('banner').hidden;"));
  browser.Screenshot("dashboard-reconnecting.png");
  StartHub();
  ASSERT_TRUE(browser.WaitUntil("return document.getElementById('banner').hidden;"));
  ChangeState(v1::INSTRUMENT_STATE_FAULT);
  ASSERT_TRUE(browser.WaitUntil("return (function(){" + TileState(kWatched) + "})() === 'FAULT';"));
  EXPECT_EQ(browser.Run("return window.__instrumeterPageId;"), page_id);
}

TEST_F(DashboardBrowserTest, BookingsShowAndAShareLinkFollowsItsSession) {
  // A remote booking on the watched instrument since before its history began, and the next one.
  const int64_t now = clock_.WallUnixMs();
  const json customer = {{"organisation", "Suzhou Bio Co"}, {"city", "Suzhou"}, {"region", "JS"}};
  const json bookings = json::array(
      {{{"order_id", "YRD-0042"},
        {"instrument_id", kWatched},
        {"customer", customer},
        {"start", FormatUtc(now - 3 * 3'600'000)},
        {"end", FormatUtc(now + 3'600'000)},
        {"remote", true},
        {"rate_fen_per_hour", 30'000}},
       {{"order_id", "YRD-0043"},
        {"instrument_id", kWatched},
        {"customer",
         {{"organisation", "Hangzhou Materials"}, {"city", "Hangzhou"}, {"region", "ZJ"}}},
        {"start", FormatUtc(now + 2 * 3'600'000)},
        {"end", FormatUtc(now + 3 * 3'600'000)},
        {"remote", false},
        {"rate_fen_per_hour", 30'000}}});
  auto posted = ht::Fetch(port_, {.method = "POST",
                                  .target = "/api/v1/bookings",
                                  .headers = {{"Content-Type", "application/json"}},
                                  .body = bookings.dump()});
  ASSERT_TRUE(posted.ok());
  ASSERT_EQ(posted->status, 201) << posted->body;
  const std::string link = json::parse(posted->body)["bookings"][0]["share_link"];
  const std::string base = "http://127.0.0.1:" + std::to_string(port_);

  Browser browser;
  ASSERT_TRUE(browser.Start(dir_.path()).ok());
  ASSERT_TRUE(browser.Open(base + "/").ok());
  const std::string tile =
      "document.querySelector('.tile[data-id=\"" + std::string(kWatched) + "\"] .t-book')";
  ASSERT_TRUE(browser.WaitUntil("const b = " + tile + "; return !!b && b.textContent.startsWith(" +
                                "'Booked · Suzhou Bio Co · remote');"))
      << browser.Run("const b = " + tile + "; return b ? b.textContent : null;").dump();
  browser.Run("document.querySelector('.tile[data-id=\"" + std::string(kWatched) +
              "\"]').click();");
  ASSERT_TRUE(browser.WaitUntil(
      "const b = document.getElementById('p-bookings').textContent; "
      "return b.includes('YRD-0042') && b.includes('YRD-0043') && b.includes('Booked now');"));
  browser.Screenshot("dashboard-bookings.png");

  // The customer's page: the session so far, then a change arrives without a reload.
  ASSERT_TRUE(browser.Open(base + link).ok());
  ASSERT_TRUE(
      browser.WaitUntil("return document.body.dataset.loaded === 'true' && "
                        "document.getElementById('s-state').dataset.state === 'IDLE' && "
                        "document.querySelectorAll('#s-chart rect').length > 0;"))
      << browser.Run("return document.body.innerText;").dump();
  EXPECT_EQ(browser.Run("return document.getElementById('s-order').textContent;"),
            "YRD-0042 · Suzhou Bio Co");
  EXPECT_EQ(browser.Run("return document.body.innerText.includes('Hangzhou');"), false)
      << "another booking's customer shows";
  ChangeState(v1::INSTRUMENT_STATE_IN_USE);
  ASSERT_TRUE(
      browser.WaitUntil("return document.getElementById('s-state').dataset.state === 'IN_USE';"));
  browser.Screenshot("share-link.png");

  // A wrong link: a clear page, no data.
  std::string wrong = link;
  wrong.back() = wrong.back() == '0' ? '1' : '0';
  ASSERT_TRUE(browser.Open(base + wrong).ok());
  ASSERT_TRUE(browser.WaitUntil(
      "const r = document.getElementById('refused'); return !!r && r.dataset.status === '404';"));
  EXPECT_EQ(browser.Run("return document.body.innerText.includes('YRD-0042');"), false);
  browser.Screenshot("share-link-unknown.png");
}

}  // namespace
}  // namespace instrumeter::hub
