// instrumeter-loadgen: see loadgen.h. Exit 0 when every backlog was acknowledged, 1 when the
// timeout passed first or the run failed, 2 on a usage error. With --echo-s it is instead the
// raw-broker baseline (RunEcho) for that many seconds, and prints what it acknowledged.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>

#include "loadgen.h"

int main(int argc, char** argv) {
  instrumeter::loadgen::LoadOptions o;
  std::string report_json;
  double echo_s = 0;
  bool unsigned_envelopes = false;
  double timeout_s = static_cast<double>(o.timeout_ms) / 1000.0;
  double warmup_s = 0;
  double start_spread_s = 0;
  CLI::App app{
      "instrumeter-loadgen: emulates many devices, each delivering a backlog of valid events to "
      "the hub through the broker by the protocol's rules, and reports when every backlog is "
      "acknowledged"};
  app.add_option("--broker", o.broker_url, "broker URL")->capture_default_str();
  app.add_option("--devices", o.devices, "emulated devices")->capture_default_str();
  app.add_option("--backlog", o.backlog, "events per device")->capture_default_str();
  app.add_option("--rate", o.rate, "events per second offered, all devices together; 0: unlimited")
      ->capture_default_str();
  app.add_option("--device-prefix", o.device_prefix, "device ids are PREFIX00000, PREFIX00001, ...")
      ->capture_default_str();
  app.add_option("--events-per-envelope", o.events_per_envelope)->capture_default_str();
  app.add_option("--window", o.window, "envelopes in flight per device")->capture_default_str();
  app.add_option("--ack-timeout-ms", o.ack_timeout_ms)->capture_default_str();
  app.add_option("--timeout-s", timeout_s, "give up after this long (exit 1)")
      ->capture_default_str();
  app.add_option("--period-ms", o.period_ms,
                 "live mode: each device creates one event every this many ms (0: backlog mode, "
                 "every event due at the start)")
      ->capture_default_str();
  app.add_option("--devices-per-connection", o.devices_per_connection,
                 "devices sharing one MQTT connection (1: each device connects as itself)")
      ->capture_default_str();
  app.add_option("--start-spread-s", start_spread_s,
                 "live mode: devices start one after another over this many seconds (0: one "
                 "period); over 60 s they sign at a running fleet's steady rate")
      ->capture_default_str();
  app.add_option("--warmup-s", warmup_s,
                 "live mode: events due in the first this many seconds are delivered but not "
                 "counted in the latency figures")
      ->capture_default_str();
  app.add_flag("--unsigned", unsigned_envelopes, "send no signatures (development-mode hub)");
  app.add_option("--echo-s", echo_s,
                 "instead of emulating devices, acknowledge every envelope on the broker at once "
                 "(raw baseline, no storage) for this many seconds");
  app.add_option("--report-json", report_json, "also write the report to this file");
  CLI11_PARSE(app, argc, argv);
  o.timeout_ms = static_cast<int64_t>(timeout_s * 1000);
  o.sign = !unsigned_envelopes;
  o.warmup_ms = static_cast<int64_t>(warmup_s * 1000);
  o.start_spread_ms = static_cast<int64_t>(start_spread_s * 1000);

  if (echo_s > 0) {
    auto echo = instrumeter::loadgen::RunEcho(o.broker_url, static_cast<int64_t>(echo_s * 1000));
    if (!echo.ok()) {
      std::fprintf(stderr, "instrumeter-loadgen: %s\n", echo.status().ToString().c_str());
      return 1;
    }
    std::printf(
        "{\"echo_envelopes\": %llu, \"echo_events\": %llu, \"echo_malformed\": %llu, "
        "\"ack_publish_failures\": %llu}\n",
        static_cast<unsigned long long>(echo->envelopes),
        static_cast<unsigned long long>(echo->events),
        static_cast<unsigned long long>(echo->malformed),
        static_cast<unsigned long long>(echo->ack_publish_failures));
    return 0;
  }

  auto report = instrumeter::loadgen::RunLoad(o);
  if (!report.ok()) {
    std::fprintf(stderr, "instrumeter-loadgen: %s\n", report.status().ToString().c_str());
    return report.status().code() == instrumeter::Status::Code::kInvalidArgument ? 2 : 1;
  }
  const std::string json = instrumeter::loadgen::ReportJson(*report);
  std::fputs(json.c_str(), stdout);
  if (!report_json.empty()) std::ofstream(report_json) << json;
  return report->complete ? 0 : 1;
}
