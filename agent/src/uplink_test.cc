#include "uplink.h"

#include <gtest/gtest.h>
#include <poll.h>

#include "fake_adapter_test_util.h"
#include "protocol/topics.h"
#include "recorder.h"
#include "test_support/mosquitto.h"
#include "tiny_hub_test_util.h"

namespace instrumeter::agent {
namespace {

using fake::TinyHub;
using protocol::Channel;

class UplinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto broker = testing::TestBroker::Start();
    ASSERT_TRUE(broker.ok()) << broker.status().ToString();
    broker_ = std::move(*broker);
    hub_ = std::make_unique<TinyHub>(broker_->url());
  }

  void StartAgent(const std::string& mqtt_extra) {
    auto cfg = ParseAgentConfig(
        "device_id = \"nmr-1\"\nstate_dir = \"" + dir_.path() + "\"\n[mqtt]\nbroker = \"" +
            broker_->url() +
            "\"\nreconnect_min_ms = 100\nreconnect_max_ms = 400\nmax_events_per_envelope = 10\n"
            "max_envelopes_in_flight = 3\n" +
            mqtt_extra + "[[adapter]]\nname = \"power\"\ntype = \"fake\"\n",
        "agent.toml", registry_);
    ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
    config_ = std::move(*cfg);
    auto outbox = Outbox::Open(config_.OutboxPath(), config_.device_id, {});
    ASSERT_TRUE(outbox.ok()) << outbox.status().ToString();
    outbox_ = std::move(*outbox);
    auto uplink = Uplink::Create(config_, outbox_.get(), &clock_, MakeNullLogger());
    ASSERT_TRUE(uplink.ok()) << uplink.status().ToString();
    uplink_ = std::move(*uplink);
    uplink_->Start();
  }

  // Appends `n` heartbeats and remembers their exact bytes.
  void Append(int n) {
    for (int i = 0; i < n; ++i) {
      v1::Event e;
      ToProto(clock_.Now(), e.mutable_at());
      e.mutable_heartbeat()->set_state(v1::INSTRUMENT_STATE_IDLE);
      e.mutable_heartbeat()->mutable_counters()->set_powered_ms(appended_.size());
      ASSERT_TRUE(outbox_->Append(&e).ok());
      appended_.push_back(e.SerializeAsString());
    }
    uplink_->Pump();
  }

  // Runs the agent's loop and the hub until `done` or `timeout`.
  bool RunUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      hub_->Process();
      if (done()) return true;
      if (clock_.MonotonicMs() >= uplink_->NextDeadlineMs()) uplink_->OnTimer();
      pollfd fds[] = {{uplink_->wake_fd(), POLLIN, 0}, {hub_->link().wake_fd(), POLLIN, 0}};
      ::poll(fds, 2, 20);
      if (fds[0].revents != 0) uplink_->OnWake();
    }
    return false;
  }

  bool AllDelivered() { return hub_->contiguous_ == appended_.size() && outbox_->depth() == 0; }
  void ExpectExactBytes() {
    ASSERT_EQ(hub_->stored_.size(), appended_.size());
    for (size_t i = 0; i < appended_.size(); ++i)
      EXPECT_EQ(hub_->stored_[i + 1], appended_[i]) << "event " << i + 1;
  }

  testing::TempDir dir_;
  SystemClock clock_;
  std::map<std::string, fake::FakeSource> sources_;
  std::vector<adapters::AdapterType> registry_ = fake::FakeRegistry(&sources_);
  std::unique_ptr<testing::TestBroker> broker_;
  std::unique_ptr<TinyHub> hub_;
  AgentConfig config_;
  std::unique_ptr<Outbox> outbox_;
  std::unique_ptr<Uplink> uplink_;
  std::vector<std::string> appended_;
};

TEST_F(UplinkTest, DeliversEverythingInOrderAndDeletesOnlyAfterAck) {
  StartAgent("");
  Append(95);  // queued before the connection exists
  ASSERT_TRUE(RunUntil([&] { return uplink_->connected(); }, std::chrono::seconds(10)));
  Append(30);
  ASSERT_TRUE(RunUntil([&] { return AllDelivered(); }, std::chrono::seconds(15)))
      << "hub has " << hub_->contiguous_ << ", outbox depth " << outbox_->depth();
  ExpectExactBytes();
  EXPECT_LE(hub_->max_events_per_envelope_, 10u);
  EXPECT_EQ(outbox_->acked_sequence(), 125u);
  EXPECT_GT(outbox_->acked_wall_unix_ms(), 0);
  EXPECT_TRUE(outbox_->Read(1, 1000, 1 << 20)->empty()) << "acknowledged rows are deleted";
  ASSERT_TRUE(RunUntil([&] { return hub_->status_.has_value(); }, std::chrono::seconds(5)));
  EXPECT_TRUE(hub_->status_->online());
  EXPECT_EQ(hub_->status_->agent_version(), AgentVersion());
  EXPECT_EQ(hub_->status_->boot_id(), clock_.BootId());
}

TEST_F(UplinkTest, WindowLimitsWhatIsInFlightWithoutAcks) {
  StartAgent("ack_timeout_ms = 60000\n");
  hub_->acking_ = false;
  Append(100);
  ASSERT_TRUE(RunUntil([&] { return hub_->received_.size() == 30; }, std::chrono::seconds(10)));
  RunUntil([] { return false; }, std::chrono::milliseconds(500));
  EXPECT_EQ(hub_->received_.size(), 30u) << "3 envelopes of 10 events, then wait for an ack";
  EXPECT_EQ(outbox_->depth(), 100u) << "nothing deleted without an ack";
  hub_->acking_ = true;
  hub_->Send("nmr-1",
             [](v1::Downlink& d) { d.mutable_ack()->set_highest_contiguous_sequence(30); });
  ASSERT_TRUE(RunUntil([&] { return AllDelivered(); }, std::chrono::seconds(15)));
  ExpectExactBytes();
}

TEST_F(UplinkTest, BrokerKilledAndRestartedLosesNothing) {
  // The restarted broker has lost the tiny hub's subscription; if the agent reconnects first,
  // what it resends before the hub resubscribes is dropped, and only the ack timeout brings it
  // back. That is the protocol working, so the timeout is short enough to fit the test.
  StartAgent("ack_timeout_ms = 3000\n");
  hub_->acking_ = false;
  Append(20);
  ASSERT_TRUE(RunUntil([&] { return hub_->received_.size() == 20; }, std::chrono::seconds(10)));
  broker_->Kill();  // the hub never acknowledged: the agent must keep every event
  ASSERT_TRUE(RunUntil([&] { return !uplink_->connected(); }, std::chrono::seconds(10)));
  Append(25);  // measured while the broker is down
  EXPECT_EQ(outbox_->depth(), 45u);
  // The hub forgets what it never acknowledged, as a hub that crashed before committing would:
  // everything arrives only if the agent sends 1..20 again. Without this, a resend lost before
  // the hub resubscribed went unnoticed, and whether it was ever made was left to a race.
  hub_->stored_.clear();
  hub_->contiguous_ = 0;
  ASSERT_TRUE(broker_->Restart().ok());
  hub_->acking_ = true;
  ASSERT_TRUE(RunUntil([&] { return AllDelivered(); }, std::chrono::seconds(20)))
      << "hub has " << hub_->contiguous_ << ", outbox depth " << outbox_->depth();
  ExpectExactBytes();
  EXPECT_GE(hub_->received_[1], 2) << "unacknowledged events are resent after the reconnect";
}

TEST_F(UplinkTest, ResendsAfterAckTimeout) {
  StartAgent("ack_timeout_ms = 600\n");
  hub_->acking_ = false;
  Append(5);
  ASSERT_TRUE(RunUntil([&] { return hub_->received_[5] == 1; }, std::chrono::seconds(10)));
  ASSERT_TRUE(RunUntil([&] { return hub_->received_[1] == 2; }, std::chrono::seconds(5)))
      << "no resend after the ack timeout";
  EXPECT_EQ(outbox_->depth(), 5u);
  hub_->acking_ = true;
  ASSERT_TRUE(RunUntil([&] { return AllDelivered(); }, std::chrono::seconds(10)));
  ExpectExactBytes();
}

TEST_F(UplinkTest, HonoursResendRequests) {
  StartAgent("ack_timeout_ms = 60000\n");
  ASSERT_TRUE(RunUntil([&] { return uplink_->connected(); }, std::chrono::seconds(10)));
  hub_->lose_once_ = {11};  // the envelope 11..20 is lost; the hub sees 21.. and asks again
  Append(30);
  ASSERT_TRUE(RunUntil([&] { return AllDelivered(); }, std::chrono::seconds(10)))
      << "hub has " << hub_->contiguous_ << ", outbox depth " << outbox_->depth();
  ExpectExactBytes();
  EXPECT_EQ(hub_->received_[11], 1);
  EXPECT_GE(hub_->received_[21], 2) << "go-back-N resends from the requested sequence";
}

TEST_F(UplinkTest, GarbageAndImpossibleAcksAreIgnored) {
  StartAgent("");
  hub_->acking_ = false;
  Append(3);
  ASSERT_TRUE(RunUntil([&] { return hub_->received_.size() == 3; }, std::chrono::seconds(10)));
  ASSERT_TRUE(hub_->link()
                  .Publish(protocol::Topic("nmr-1", Channel::kAck), "\xff\xfe garbage", false)
                  .ok());
  ASSERT_TRUE(
      hub_->link().Publish(protocol::Topic("nmr-1", Channel::kCmd), "whatever", false).ok());
  hub_->Send("nmr-1",
             [](v1::Downlink& d) { d.mutable_ack()->set_highest_contiguous_sequence(99); });
  ASSERT_TRUE(RunUntil([&] { return uplink_->downlink_errors() == 2; }, std::chrono::seconds(5)));
  EXPECT_EQ(outbox_->depth(), 3u) << "an ack beyond what was stored deletes nothing";
  hub_->Send("nmr-1", [](v1::Downlink& d) { d.mutable_ack()->set_highest_contiguous_sequence(3); });
  ASSERT_TRUE(RunUntil([&] { return outbox_->depth() == 0; }, std::chrono::seconds(5)));
}

}  // namespace
}  // namespace instrumeter::agent
