#include "test_support/mosquitto.h"

#include <signal.h>

#include <filesystem>

namespace instrumeter::testing {

Result<std::unique_ptr<TestBroker>> TestBroker::Start(const Options& options) {
  std::unique_ptr<TestBroker> broker(new TestBroker());
  broker->port_ = FreeLoopbackPort();
  if (PortAcceptsConnections(broker->port_))
    return Status::FailedPrecondition("port " + std::to_string(broker->port_) + " is taken");
  broker->config_path_ = broker->dir_.File("mosquitto.conf");
  broker->log_path_ = broker->dir_.File("mosquitto.log");
  const std::string persistence = broker->dir_.File("data") + "/";
  std::filesystem::create_directories(persistence);
  // Started as root, mosquitto drops to the `mosquitto` user unless told to stay.
  WriteFile(broker->config_path_,
            "# test broker: loopback only, anonymous, never for production\n"
            "listener " +
                std::to_string(broker->port_) +
                " 127.0.0.1\n"
                "allow_anonymous true\n"
                "user root\n"
                "persistence true\n"
                "persistence_location " +
                persistence +
                "\n"
                "log_dest stderr\n"
                "log_type error\nlog_type warning\nlog_type notice\n" +
                options.extra_config + "\n");
  INSTRUMETER_RETURN_IF_ERROR(broker->Launch());
  return broker;
}

TestBroker::~TestBroker() { Stop(); }

std::string TestBroker::url() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

Status TestBroker::Launch() {
  auto child = ChildProcess::Start({"/usr/sbin/mosquitto", "-c", config_path_}, log_path_);
  if (!child.ok()) return child.status();
  process_ = std::move(*child);
  if (!WaitFor([&] { return PortAcceptsConnections(port_) || !process_.Running(); },
               std::chrono::seconds(10)) ||
      !process_.Running())
    return Status::Unavailable("mosquitto did not start on port " + std::to_string(port_) +
                               "; log:\n" + ReadFile(log_path_));
  return Status::Ok();
}

void TestBroker::Kill() {
  process_.Signal(SIGKILL);
  process_.Wait(std::chrono::seconds(5));
}

Status TestBroker::Restart() {
  if (process_.Running()) return Status::FailedPrecondition("broker is still running");
  // The port may linger briefly after a kill; the broker's own bind is the real test.
  return Launch();
}

void TestBroker::Stop() { process_.Stop(std::chrono::seconds(5)); }

}  // namespace instrumeter::testing
