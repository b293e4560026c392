// VerifyingKey over libsodium, in a file of its own: the agent signs but never verifies, so its
// --as-needed link leaves libsodium out of its process.
#include <sodium.h>

#include "protocol/chain.h"

namespace instrumeter::protocol {

Result<VerifyingKey> VerifyingKey::FromRaw(std::string_view public_key) {
  if (public_key.size() != kPublicKeyBytes)
    return Status::InvalidArgument("an Ed25519 public key has " + std::to_string(kPublicKeyBytes) +
                                   " bytes, not " + std::to_string(public_key.size()));
  // Idempotent and thread-safe; libsodium asks for it before any other call.
  if (sodium_init() < 0) return Status::Internal("libsodium failed to initialise");
  return VerifyingKey(std::string(public_key));
}

bool VerifyingKey::Verify(std::string_view message, std::string_view signature) const {
  if (signature.size() != kSignatureBytes) return false;
  auto bytes = [](std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); };
  return crypto_sign_verify_detached(bytes(signature), bytes(message), message.size(),
                                     bytes(public_key_)) == 0;
}

Status VerifyingKey::VerifyHead(std::string_view device_id, const v1::Signature& signature) const {
  if (signature.through_sequence() == 0)
    return Status::InvalidArgument("signature covers sequence 0; sequences start at 1");
  if (signature.chain_head().size() != kChainLinkBytes)
    return Status::InvalidArgument("signature chain_head has " +
                                   std::to_string(signature.chain_head().size()) + " bytes, not " +
                                   std::to_string(kChainLinkBytes));
  if (signature.ed25519().size() != kSignatureBytes)
    return Status::InvalidArgument("signature ed25519 has " +
                                   std::to_string(signature.ed25519().size()) + " bytes, not " +
                                   std::to_string(kSignatureBytes));
  if (!Verify(HeadMessage(device_id, signature.through_sequence(), signature.chain_head()),
              signature.ed25519()))
    return Status::FailedPrecondition("the Ed25519 signature over the head at sequence " +
                                      std::to_string(signature.through_sequence()) +
                                      " does not verify with the device's key " +
                                      KeyFingerprint(public_key_));
  return Status::Ok();
}

}  // namespace instrumeter::protocol
