// Envelopes as an enrolled agent publishes them: each event chained to the one before it and,
// when asked, the chain head signed (protocol/README.md, "Signing"). For hub tests.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "protocol/chain.h"
#include "protocol/codec.h"
#include "telemetry.pb.h"

namespace instrumeter::hub::testing {

// Chains events in the order given (consecutive sequences, continuing the chain); `key` is
// borrowed and signs every envelope asked to be signed.
class ChainedEnvelopes {
 public:
  ChainedEnvelopes(std::string device_id, const protocol::SigningKey* key)
      : device_id_(std::move(device_id)), key_(key), link_(protocol::ChainGenesis(device_id_)) {}

  std::string Envelope(const std::vector<v1::Event>& events, bool sign = true) {
    std::vector<std::string> bytes;
    for (const v1::Event& e : events) {
      bytes.push_back(e.SerializeAsString());
      link_ = protocol::ChainNext(link_, bytes.back());
    }
    std::optional<v1::Signature> signature;
    if (sign) {
      Result<v1::Signature> s = key_->SignHead(device_id_, events.back().sequence(), link_);
      EXPECT_TRUE(s.ok()) << s.status().ToString();
      if (s.ok()) signature = *s;
    }
    return protocol::EncodeEnvelope(device_id_, events.front().at().boot_id(),
                                    events.front().sequence(), bytes,
                                    signature ? &*signature : nullptr);
  }

 private:
  std::string device_id_;
  const protocol::SigningKey* key_;
  std::string link_;
};

inline protocol::SigningKey NewSigningKey() {
  Result<protocol::SigningKey> key = protocol::SigningKey::Generate();
  EXPECT_TRUE(key.ok());
  return std::move(*key);
}

}  // namespace instrumeter::hub::testing
