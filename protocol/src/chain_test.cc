#include "protocol/chain.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "protocol/codec.h"
#include "test_support/process.h"

namespace instrumeter::protocol {
namespace {

// Independent vectors: Python's hashlib for the chain, `openssl pkeyutl -sign -rawin` for the
// head signature, with the private key of RFC 8032 section 7.1, test 1.
constexpr char kRfcKeyPem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
    "-----END PRIVATE KEY-----\n";
constexpr char kRfcPublicHex[] = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
constexpr char kRfcEmptySignatureHex[] =
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b4"
    "6bd25bf5f0595bbe24655141438e7a100b";
constexpr char kGenesisHex[] = "4ed0895922e3b856ca3aba6c601848139ea5919678a0cb7b9b32295880601a0d";
constexpr char kLink1Hex[] = "8d277d3c03af0e3e59d7075aec3b329b7424db1e153c56806fc5f8517abbc5a5";
constexpr char kLink2Hex[] = "af788c19f1ba95a847316911a20a43b45fb1c24fab4dbe00698b26f7195064f8";
constexpr char kHeadMessageHex[] =
    "696e737472756d657465722e76312e68656164006e6d722d31000000000000000002af788c19f1ba95a847316911a2"
    "0a43b45fb1c24fab4dbe00698b26f7195064f8";
constexpr char kHeadSignatureHex[] =
    "4a24944c3492f298995be8f493852f6dc71777194dee9d26f4fd2a295b6c233e139ae1ab39cfb091184e222edde99c"
    "03c31c2e8b840152663cacc1219c16d301";

SigningKey RfcKey() {
  Result<SigningKey> key = SigningKey::FromPem(kRfcKeyPem, "rfc8032");
  EXPECT_TRUE(key.ok()) << key.status().ToString();
  return std::move(*key);
}

VerifyingKey Verifier(const SigningKey& key) {
  Result<VerifyingKey> verifier = VerifyingKey::FromRaw(key.public_key());
  EXPECT_TRUE(verifier.ok()) << verifier.status().ToString();
  return std::move(*verifier);
}

TEST(ChainTest, KnownVectors) {
  const std::string genesis = ChainGenesis("nmr-1");
  EXPECT_EQ(ToHex(genesis), kGenesisHex);
  const std::string link1 = ChainNext(genesis, "event-one");
  EXPECT_EQ(ToHex(link1), kLink1Hex);
  const std::string link2 = ChainNext(link1, "event-two");
  EXPECT_EQ(ToHex(link2), kLink2Hex);
  EXPECT_EQ(ToHex(HeadMessage("nmr-1", 2, link2)), kHeadMessageHex);

  const SigningKey key = RfcKey();
  EXPECT_EQ(ToHex(key.public_key()), kRfcPublicHex);
  Result<std::string> empty = key.Sign("");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(ToHex(*empty), kRfcEmptySignatureHex);
  Result<v1::Signature> head = key.SignHead("nmr-1", 2, link2);
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  EXPECT_EQ(head->through_sequence(), 2u);
  EXPECT_EQ(head->chain_head(), link2);
  EXPECT_EQ(ToHex(head->ed25519()), kHeadSignatureHex);
  EXPECT_TRUE(Verifier(key).VerifyHead("nmr-1", *head).ok());
}

TEST(ChainTest, GenesisDependsOnTheDevice) {
  EXPECT_NE(ChainGenesis("nmr-1"), ChainGenesis("nmr-2"));
  EXPECT_EQ(ChainGenesis("nmr-1").size(), kChainLinkBytes);
}

TEST(ChainTest, SignaturesAreDeterministicAcrossResends) {
  Result<SigningKey> key = SigningKey::Generate();
  ASSERT_TRUE(key.ok());
  const std::string link = ChainNext(ChainGenesis("d"), "e");
  Result<v1::Signature> first = key->SignHead("d", 1, link);
  Result<v1::Signature> again = key->SignHead("d", 1, link);
  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_EQ(first->SerializeAsString(), again->SerializeAsString());
}

// Every byte of every event, of the head and of the signature is covered: flipping any one bit
// either changes the chain head (which the hub recomputes) or breaks the signature.
TEST(ChainTest, ATamperedByteAnywhereBreaksVerification) {
  const SigningKey key = RfcKey();
  const VerifyingKey verifier = Verifier(key);
  const std::vector<std::string> events = {"first event bytes", "second", "third and last"};
  auto head_of = [](const std::vector<std::string>& evs) {
    std::string link = ChainGenesis("nmr-1");
    for (const std::string& e : evs) link = ChainNext(link, e);
    return link;
  };
  const std::string head = head_of(events);
  Result<v1::Signature> signature = key.SignHead("nmr-1", 3, head);
  ASSERT_TRUE(signature.ok());
  ASSERT_TRUE(verifier.VerifyHead("nmr-1", *signature).ok());

  for (size_t e = 0; e < events.size(); ++e) {
    for (size_t i = 0; i < events[e].size(); ++i) {
      std::vector<std::string> tampered = events;
      tampered[e][i] ^= 0x01;
      EXPECT_NE(head_of(tampered), head) << "event " << e << " byte " << i;
    }
  }
  for (size_t i = 0; i < kChainLinkBytes; ++i) {
    v1::Signature bad = *signature;
    (*bad.mutable_chain_head())[i] ^= 0x80;
    EXPECT_FALSE(verifier.VerifyHead("nmr-1", bad).ok()) << "head byte " << i;
  }
  for (size_t i = 0; i < kSignatureBytes; ++i) {
    v1::Signature bad = *signature;
    (*bad.mutable_ed25519())[i] ^= 0x01;
    EXPECT_FALSE(verifier.VerifyHead("nmr-1", bad).ok()) << "signature byte " << i;
  }
  v1::Signature other_seq = *signature;
  other_seq.set_through_sequence(4);
  EXPECT_FALSE(verifier.VerifyHead("nmr-1", other_seq).ok());
  EXPECT_FALSE(verifier.VerifyHead("nmr-2", *signature).ok()) << "another device's topic";
}

// RFC 8032's vector (OpenSSL reproduces it in KnownVectors), verified by the hub's verifier.
TEST(ChainTest, TheVerifierAcceptsRfc8032sVectorAndRefusesItForAnotherMessage) {
  const VerifyingKey verifier = Verifier(RfcKey());
  const std::string hex = kRfcEmptySignatureHex;
  std::string signature;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    signature.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  ASSERT_EQ(signature.size(), kSignatureBytes);
  EXPECT_TRUE(verifier.Verify("", signature));
  EXPECT_FALSE(verifier.Verify("x", signature));
  EXPECT_FALSE(verifier.Verify("", signature.substr(1)));
}

// S + L verifies the same equation as S; accepting it would let anyone make a second, different
// signature for a signed head (malleability). Both OpenSSL and libsodium refuse it.
TEST(ChainTest, ANonCanonicalSignatureIsRefused) {
  const SigningKey key = RfcKey();
  const std::string link = ChainNext(ChainGenesis("nmr-1"), "event");
  Result<v1::Signature> signature = key.SignHead("nmr-1", 1, link);
  ASSERT_TRUE(signature.ok());
  const VerifyingKey verifier = Verifier(key);
  ASSERT_TRUE(verifier.VerifyHead("nmr-1", *signature).ok());

  // The group order L, little-endian, as S is stored in the signature's last 32 bytes.
  constexpr unsigned char kOrder[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
                                        0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
                                        0,    0,    0,    0,    0,    0,    0,    0,
                                        0,    0,    0,    0,    0,    0,    0,    0x10};
  v1::Signature malleated = *signature;
  std::string& bytes = *malleated.mutable_ed25519();
  unsigned carry = 0;
  for (size_t i = 0; i < 32; ++i) {
    const unsigned sum = static_cast<unsigned char>(bytes[32 + i]) + kOrder[i] + carry;
    bytes[32 + i] = static_cast<char>(sum & 0xff);
    carry = sum >> 8;
  }
  ASSERT_EQ(carry, 0u) << "S + L fits in 32 bytes, since S < L < 2^253";
  ASSERT_NE(malleated.ed25519(), signature->ed25519());
  const Status st = verifier.VerifyHead("nmr-1", malleated);
  EXPECT_EQ(st.code(), Status::Code::kFailedPrecondition) << st.ToString();
}

TEST(ChainTest, AnotherKeyDoesNotVerify) {
  Result<SigningKey> other = SigningKey::Generate();
  ASSERT_TRUE(other.ok());
  const std::string link = ChainNext(ChainGenesis("d"), "e");
  Result<v1::Signature> forged = other->SignHead("d", 1, link);
  ASSERT_TRUE(forged.ok());
  const Status st = Verifier(RfcKey()).VerifyHead("d", *forged);
  EXPECT_EQ(st.code(), Status::Code::kFailedPrecondition) << st.ToString();
}

TEST(ChainTest, MalformedSignatureFieldsAreInvalidArgument) {
  const VerifyingKey verifier = Verifier(RfcKey());
  v1::Signature s;
  s.set_through_sequence(1);
  s.set_chain_head(std::string(31, 'x'));
  s.set_ed25519(std::string(kSignatureBytes, 'y'));
  EXPECT_EQ(verifier.VerifyHead("d", s).code(), Status::Code::kInvalidArgument);
  s.set_chain_head(std::string(kChainLinkBytes, 'x'));
  s.set_ed25519("short");
  EXPECT_EQ(verifier.VerifyHead("d", s).code(), Status::Code::kInvalidArgument);
  s.set_ed25519(std::string(kSignatureBytes, 'y'));
  s.set_through_sequence(0);
  EXPECT_EQ(verifier.VerifyHead("d", s).code(), Status::Code::kInvalidArgument);
  EXPECT_FALSE(VerifyingKey::FromRaw("too short").ok());
}

TEST(ChainTest, PemRoundTripKeepsTheKey) {
  Result<SigningKey> key = SigningKey::Generate();
  ASSERT_TRUE(key.ok());
  Result<std::string> pem = key->PrivateKeyPem();
  ASSERT_TRUE(pem.ok());
  EXPECT_NE(pem->find("BEGIN PRIVATE KEY"), std::string::npos);
  Result<SigningKey> back = SigningKey::FromPem(*pem, "round trip");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->public_key(), key->public_key());
  EXPECT_FALSE(SigningKey::FromPem("garbage", "garbage").ok());
}

class KeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override { testing::WriteFile(path_, kRfcKeyPem); }
  testing::TempDir dir_;
  const std::string path_ = dir_.File("signing.key");
};

TEST_F(KeyFileTest, LoadsAnOwnerOnlyKey) {
  ASSERT_EQ(::chmod(path_.c_str(), 0600), 0);
  Result<SigningKey> key = SigningKey::LoadFile(path_);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(ToHex(key->public_key()), kRfcPublicHex);
}

TEST_F(KeyFileTest, RefusesAKeyOthersCanRead) {
  for (mode_t mode : {0644, 0640, 0604, 0660, 0602}) {
    ASSERT_EQ(::chmod(path_.c_str(), mode), 0);
    Result<SigningKey> key = SigningKey::LoadFile(path_);
    ASSERT_FALSE(key.ok()) << std::oct << mode;
    EXPECT_EQ(key.status().code(), Status::Code::kFailedPrecondition);
    EXPECT_NE(key.status().message().find(path_), std::string::npos) << key.status().message();
  }
}

TEST_F(KeyFileTest, AMissingKeyIsNotFound) {
  EXPECT_EQ(CheckPrivateKeyFile(dir_.File("absent.key")).code(), Status::Code::kNotFound);
  EXPECT_EQ(CheckPrivateKeyFile(dir_.path()).code(), Status::Code::kFailedPrecondition)
      << "a directory";
}

TEST(PlausibleTimeTest, RefusesOnlyAbsurdTimes) {
  const int64_t now = 1'767'225'600'000;  // 2026-01-01
  v1::Event e;
  e.set_sequence(5);
  e.mutable_at()->set_monotonic_ms(10);
  auto at = [&](int64_t wall) {
    e.mutable_at()->set_wall_unix_ms(wall);
    return CheckPlausibleTime(e, now);
  };
  EXPECT_TRUE(at(now).ok());
  EXPECT_TRUE(at(now - 6 * 3'600'000).ok()) << "hours behind";
  EXPECT_TRUE(at(2'147'483'647'000).ok()) << "stepped to 2038";
  EXPECT_TRUE(at(kEarliestPlausibleWallMs).ok());
  EXPECT_FALSE(at(kEarliestPlausibleWallMs - 1).ok()) << "before 2020";
  EXPECT_FALSE(at(0).ok());
  EXPECT_FALSE(at(now + kMaxWallAheadMs + 1).ok()) << "a century ahead";
  e.mutable_at()->set_wall_unix_ms(now);
  e.mutable_at()->set_monotonic_ms(-1);
  EXPECT_FALSE(CheckPlausibleTime(e, now).ok());
}

}  // namespace
}  // namespace instrumeter::protocol
