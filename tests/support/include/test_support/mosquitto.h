// A real Mosquitto broker for tests, on a free loopback port, with its own config, persistence
// folder and log in a temporary directory. It can be killed and restarted on the same port to
// inject broker failures.
#pragma once

#include <memory>
#include <string>

#include "test_support/process.h"

namespace instrumeter::testing {

class TestBroker {
 public:
  struct Options {
    // Extra lines appended to the generated mosquitto.conf (e.g. max_queued_messages).
    std::string extra_config;
  };

  // Starts mosquitto and waits until it accepts connections. Refuses a port that is taken.
  static Result<std::unique_ptr<TestBroker>> Start(const Options& options);
  static Result<std::unique_ptr<TestBroker>> Start() { return Start(Options{}); }
  ~TestBroker();

  int port() const { return port_; }
  // tcp://127.0.0.1:<port>, as the agent and hub configs want it.
  std::string url() const;
  const std::string& log_path() const { return log_path_; }

  // SIGKILL: the broker loses whatever it had not saved.
  void Kill();
  // Starts it again on the same port (after Kill or Stop).
  Status Restart();
  // SIGTERM and wait.
  void Stop();

 private:
  TestBroker() = default;
  Status Launch();

  TempDir dir_;
  int port_ = 0;
  std::string config_path_;
  std::string log_path_;
  ChildProcess process_;
};

}  // namespace instrumeter::testing
