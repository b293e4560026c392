// The signing rule of instrumeter.v1 (README.md, "Signing"), in the one place both the agent and
// the hub link: the SHA-256 chain over the events' exact bytes, the message an Ed25519 signature
// covers, and the device keys that sign (OpenSSL EVP) and verify (libsodium) it.
//
//   link_0 = SHA-256("instrumeter/v1/chain/" || device_id)
//   link_n = SHA-256(link_{n-1} || exact bytes of event n)
//   signed = "instrumeter.v1.head" || 0x00 || device_id || 0x00 || uint64_be(S) || link_S
//
// Links and keys are raw bytes in std::string (32-byte links and public keys, 64-byte
// signatures), as protobuf `bytes` and SQLite BLOBs hold them. Free functions are pure and
// thread-safe; a key object may be used from one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "protocol/openssl_raii.h"
#include "telemetry.pb.h"

namespace instrumeter::protocol {

namespace v1 = ::instrumeter::v1;

inline constexpr size_t kChainLinkBytes = 32;
inline constexpr size_t kPublicKeyBytes = 32;
inline constexpr size_t kSignatureBytes = 64;
// The agent signs at least this often while it sends (README, "Signing").
inline constexpr int64_t kMaxSignatureIntervalMs = 60'000;

// SHA-256 of `bytes` (32 raw bytes).
std::string Sha256(std::string_view bytes);
// link_0 of a device.
std::string ChainGenesis(std::string_view device_id);
// link_n from link_{n-1} and the exact bytes of event n.
std::string ChainNext(std::string_view previous_link, std::string_view event_bytes);
// The exact bytes an Ed25519 signature over the chain head covers.
std::string HeadMessage(std::string_view device_id, uint64_t through_sequence,
                        std::string_view chain_head);

// Events after which the agent always signs: they open or close a state or mark an order.
bool ClosesState(const v1::Event& event);

// Lower-case hex, for logs and listings.
std::string ToHex(std::string_view bytes);
// A short, stable name for a public key: the first 8 bytes of its SHA-256, in hex.
std::string KeyFingerprint(std::string_view public_key);

// Refuses a private key file that is missing, not a regular file, or readable or writable by
// group or others (the agent, the hub and the CA all hold keys this way). FailedPrecondition
// (NotFound when missing) naming the file and its mode.
Status CheckPrivateKeyFile(const std::string& path);

// A device's Ed25519 private key. Move-only.
class SigningKey {
 public:
  // A fresh key from OpenSSL's CSPRNG.
  static Result<SigningKey> Generate();
  // PKCS#8 PEM ("BEGIN PRIVATE KEY") holding an Ed25519 key; `source` names it in errors.
  static Result<SigningKey> FromPem(std::string_view pem, const std::string& source);
  // Reads a PEM file after CheckPrivateKeyFile.
  static Result<SigningKey> LoadFile(const std::string& path);

  // PKCS#8 PEM, unencrypted: the caller writes it with mode 0600.
  Result<std::string> PrivateKeyPem() const;
  const std::string& public_key() const { return public_key_; }  // 32 raw bytes

  // Ed25519 over `message` (deterministic: the same message always gives the same signature).
  Result<std::string> Sign(std::string_view message) const;
  // The Signature field for the chain head `link` at `through_sequence`.
  Result<v1::Signature> SignHead(std::string_view device_id, uint64_t through_sequence,
                                 std::string_view link) const;

 private:
  SigningKey(ossl::Pkey key, std::string public_key)
      : key_(std::move(key)), public_key_(std::move(public_key)) {}
  static Result<SigningKey> Adopt(ossl::Pkey key, const std::string& source);

  ossl::Pkey key_;
  std::string public_key_;
};

// A device's Ed25519 public key, as the hub holds it. Verifies with libsodium, not OpenSSL: the
// hub verifies every signed envelope of every instrument on its one ingest thread, and
// libsodium does it in half the time (docs/security.md, "Cost"). It is also the stricter of the
// two: besides a non-canonical S it refuses a non-canonical or small-order key or R, which no
// honest signer produces.
class VerifyingKey {
 public:
  // 32 raw bytes.
  static Result<VerifyingKey> FromRaw(std::string_view public_key);

  bool Verify(std::string_view message, std::string_view signature) const;
  // Checks the sizes of `signature`'s fields and the Ed25519 signature over its chain head.
  // InvalidArgument for wrong sizes (malformed), FailedPrecondition for a signature that does
  // not verify; it says nothing about whether the head matches the receiver's own chain.
  Status VerifyHead(std::string_view device_id, const v1::Signature& signature) const;
  const std::string& public_key() const { return public_key_; }

 private:
  explicit VerifyingKey(std::string public_key) : public_key_(std::move(public_key)) {}

  std::string public_key_;
};

}  // namespace instrumeter::protocol
