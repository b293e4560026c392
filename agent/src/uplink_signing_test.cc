// The uplink's signing rule (protocol/README.md, "Signing") against a real Mosquitto and the tiny
// hub: which envelopes carry a signature, that it verifies and covers the hub's own chain, and
// that a resend carries the same bytes. A FakeClock drives the once-a-minute rule.
#include <gtest/gtest.h>
#include <poll.h>

#include "fake_adapter_test_util.h"
#include "protocol/chain.h"
#include "test_support/mosquitto.h"
#include "tiny_hub_test_util.h"
#include "uplink.h"

namespace instrumeter::agent {
namespace {

using fake::TinyHub;

class UplinkSigningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto broker = testing::TestBroker::Start();
    ASSERT_TRUE(broker.ok()) << broker.status().ToString();
    broker_ = std::move(*broker);
    hub_ = std::make_unique<TinyHub>(broker_->url());
    auto key = protocol::SigningKey::Generate();
    ASSERT_TRUE(key.ok());
    key_ = std::move(*key);
    auto verifier = protocol::VerifyingKey::FromRaw(key_->public_key());
    ASSERT_TRUE(verifier.ok());
    verifier_ = std::move(*verifier);
  }

  void StartAgent(bool with_key) {
    auto cfg = ParseAgentConfig("device_id = \"nmr-1\"\nstate_dir = \"" + dir_.path() +
                                    "\"\n[mqtt]\nbroker = \"" + broker_->url() +
                                    "\"\nack_timeout_ms = 200\nmax_events_per_envelope = 10\n"
                                    "[[adapter]]\nname = \"power\"\ntype = \"fake\"\n",
                                "agent.toml", registry_);
    ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
    config_ = std::move(*cfg);
    auto outbox = Outbox::Open(config_.OutboxPath(), config_.device_id, {});
    ASSERT_TRUE(outbox.ok()) << outbox.status().ToString();
    outbox_ = std::move(*outbox);
    auto uplink = Uplink::Create(config_, outbox_.get(), &clock_, MakeNullLogger(),
                                 with_key ? &*key_ : nullptr);
    ASSERT_TRUE(uplink.ok()) << uplink.status().ToString();
    uplink_ = std::move(*uplink);
    uplink_->Start();
  }

  void Append(bool state_change) {
    v1::Event e;
    e.mutable_at()->set_boot_id(clock_.BootId());
    e.mutable_at()->set_monotonic_ms(clock_.MonotonicMs());
    e.mutable_at()->set_wall_unix_ms(clock_.WallUnixMs());
    if (state_change) {
      e.mutable_state_change()->set_state(v1::INSTRUMENT_STATE_IDLE);
    } else {
      e.mutable_heartbeat()->set_state(v1::INSTRUMENT_STATE_IDLE);
    }
    ASSERT_TRUE(outbox_->Append(&e).ok());
    uplink_->Pump();
  }

  bool RunUntil(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
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
  bool Delivered(uint64_t seq) {
    return RunUntil([&] { return outbox_->acked_sequence() >= seq; });
  }

  // The chain the hub computes from the bytes it stored.
  std::string HubLink(uint64_t seq) const {
    std::string link = protocol::ChainGenesis("nmr-1");
    for (uint64_t s = 1; s <= seq; ++s) link = protocol::ChainNext(link, hub_->stored_.at(s));
    return link;
  }
  void ExpectValid(const TinyHub::Received& r) {
    ASSERT_TRUE(r.signed_);
    EXPECT_EQ(r.signature.through_sequence(), r.first_sequence + r.events - 1)
        << "the signature covers the envelope's last event";
    EXPECT_TRUE(verifier_->VerifyHead("nmr-1", r.signature).ok());
    EXPECT_EQ(r.signature.chain_head(), HubLink(r.signature.through_sequence()));
  }

  testing::TempDir dir_;
  FakeClock clock_;
  std::map<std::string, fake::FakeSource> sources_;
  std::vector<adapters::AdapterType> registry_ = fake::FakeRegistry(&sources_);
  std::unique_ptr<testing::TestBroker> broker_;
  std::unique_ptr<TinyHub> hub_;
  std::optional<protocol::SigningKey> key_;
  std::optional<protocol::VerifyingKey> verifier_;
  AgentConfig config_;
  std::unique_ptr<Outbox> outbox_;
  std::unique_ptr<Uplink> uplink_;
};

TEST_F(UplinkSigningTest, SignsStateChangesBacklogsAndOnceAMinute) {
  StartAgent(/*with_key=*/true);
  ASSERT_TRUE(RunUntil([&] { return uplink_->connected(); }));
  Append(/*state_change=*/true);  // 1: closes a state
  ASSERT_TRUE(Delivered(1));
  clock_.Advance(10'000);
  Append(false);  // 2: a heartbeat 10 s after the last signature
  ASSERT_TRUE(Delivered(2));
  clock_.Advance(50'000);
  Append(false);  // 3: 60 s after the last signature
  ASSERT_TRUE(Delivered(3));
  hub_->acking_ = false;
  clock_.Advance(1'000);
  Append(false);  // 4: unsigned, and not acknowledged
  ASSERT_TRUE(RunUntil([&] { return hub_->envelope_log_.size() == 4; }));
  Append(false);  // 5
  Append(false);  // 6
  // The hub takes 5 and 6 while still silent: taken after it acks again, they would be acked
  // before the ack timeout resends them (a race that TCP_NODELAY made likely).
  ASSERT_TRUE(RunUntil([&] { return hub_->envelope_log_.size() == 6; }));
  hub_->acking_ = true;
  clock_.Advance(300);  // the ack timeout: 4..6 go again as one backlog envelope
  ASSERT_TRUE(Delivered(6));

  const auto& log = hub_->envelope_log_;
  ASSERT_GE(log.size(), 7u);
  ExpectValid(log[0]);
  EXPECT_FALSE(log[1].signed_) << "a lone heartbeat within the minute";
  ExpectValid(log[2]);
  EXPECT_FALSE(log[3].signed_);
  const TinyHub::Received& backlog = log.back();
  EXPECT_EQ(backlog.first_sequence, 4u);
  EXPECT_EQ(backlog.events, 3u);
  ExpectValid(backlog);
  EXPECT_GE(uplink_->signed_envelopes(), 3u);
}

TEST_F(UplinkSigningTest, AResendCarriesTheSameSignature) {
  StartAgent(/*with_key=*/true);
  ASSERT_TRUE(RunUntil([&] { return uplink_->connected(); }));
  hub_->lose_once_ = {1};
  Append(/*state_change=*/true);
  ASSERT_TRUE(RunUntil([&] { return hub_->envelope_log_.size() == 1; }));
  clock_.Advance(300);  // no ack: resent after the ack timeout
  ASSERT_TRUE(Delivered(1));
  const auto& log = hub_->envelope_log_;
  ASSERT_EQ(log.size(), 2u);
  ExpectValid(log[1]);
  EXPECT_EQ(log[0].signature.SerializeAsString(), log[1].signature.SerializeAsString());
}

TEST_F(UplinkSigningTest, WithoutAKeyNothingIsSigned) {
  StartAgent(/*with_key=*/false);
  ASSERT_TRUE(RunUntil([&] { return uplink_->connected(); }));
  Append(/*state_change=*/true);
  Append(false);
  ASSERT_TRUE(Delivered(2));
  for (const TinyHub::Received& r : hub_->envelope_log_) EXPECT_FALSE(r.signed_);
  EXPECT_EQ(uplink_->signed_envelopes(), 0u);
}

}  // namespace
}  // namespace instrumeter::agent
