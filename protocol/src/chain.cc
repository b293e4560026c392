#include "protocol/chain.h"

#include <openssl/pem.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <sstream>

namespace instrumeter::protocol {
namespace {

constexpr std::string_view kGenesisPrefix = "instrumeter/v1/chain/";
constexpr std::string_view kHeadDomain = "instrumeter.v1.head";

// SHA-256 over the concatenation of `parts`, without copying them together.
std::string Sha256Of(std::initializer_list<std::string_view> parts) {
  ossl::MdCtx ctx(EVP_MD_CTX_new());
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1;
  for (std::string_view part : parts)
    ok = ok && EVP_DigestUpdate(ctx.get(), part.data(), part.size()) == 1;
  ok = ok && EVP_DigestFinal_ex(ctx.get(), digest, &size) == 1;
  // SHA-256 of memory cannot fail short of allocation failure, which we do not survive anyway.
  if (!ok || size != kChainLinkBytes) std::abort();
  return std::string(reinterpret_cast<const char*>(digest), size);
}

Result<std::string> RawPublicKey(EVP_PKEY* key, const std::string& source) {
  unsigned char raw[kPublicKeyBytes];
  size_t size = sizeof raw;
  if (EVP_PKEY_get_raw_public_key(key, raw, &size) != 1 || size != kPublicKeyBytes)
    return Status::InvalidArgument(source +
                                   ": cannot read the Ed25519 public key: " + ossl::ErrorQueue());
  return std::string(reinterpret_cast<const char*>(raw), size);
}

}  // namespace

std::string Sha256(std::string_view bytes) { return Sha256Of({bytes}); }

std::string ChainGenesis(std::string_view device_id) {
  return Sha256Of({kGenesisPrefix, device_id});
}

std::string ChainNext(std::string_view previous_link, std::string_view event_bytes) {
  return Sha256Of({previous_link, event_bytes});
}

std::string HeadMessage(std::string_view device_id, uint64_t through_sequence,
                        std::string_view chain_head) {
  std::string message;
  message.reserve(kHeadDomain.size() + device_id.size() + 2 + 8 + chain_head.size());
  message.append(kHeadDomain);
  message.push_back('\0');
  message.append(device_id);
  message.push_back('\0');
  for (int shift = 56; shift >= 0; shift -= 8)
    message.push_back(static_cast<char>((through_sequence >> shift) & 0xff));
  message.append(chain_head);
  return message;
}

bool ClosesState(const v1::Event& event) {
  return event.has_state_change() || event.has_agent_stop() || event.has_session_mark();
}

std::string ToHex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

std::string KeyFingerprint(std::string_view public_key) {
  return ToHex(Sha256(public_key).substr(0, 8));
}

Status CheckPrivateKeyFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::NotFound("private key file " + path + " does not exist");
    return Status::FailedPrecondition("private key file " + path + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode))
    return Status::FailedPrecondition("private key file " + path + " is not a regular file");
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Status::FailedPrecondition(
        "private key file " + path + " has mode " + mode +
        ": group or others may access it; only its owner may (chmod 600 " + path + ")");
  }
  return Status::Ok();
}

Result<SigningKey> SigningKey::Adopt(ossl::Pkey key, const std::string& source) {
  if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_ED25519)
    return Status::InvalidArgument(source + ": not an Ed25519 key");
  Result<std::string> public_key = RawPublicKey(key.get(), source);
  if (!public_key.ok()) return public_key.status();
  return SigningKey(std::move(key), std::move(*public_key));
}

Result<SigningKey> SigningKey::Generate() {
  ossl::Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (key == nullptr)
    return Status::Internal("cannot generate an Ed25519 key: " + ossl::ErrorQueue());
  return Adopt(std::move(key), "generated key");
}

Result<SigningKey> SigningKey::FromPem(std::string_view pem, const std::string& source) {
  ossl::Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return Status::Internal("BIO_new_mem_buf: " + ossl::ErrorQueue());
  ossl::Pkey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr)
    return Status::InvalidArgument(source + ": not a PEM private key: " + ossl::ErrorQueue());
  return Adopt(std::move(key), source);
}

Result<SigningKey> SigningKey::LoadFile(const std::string& path) {
  INSTRUMETER_RETURN_IF_ERROR(CheckPrivateKeyFile(path));
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) return Status::IoError("cannot read private key file " + path);
  return FromPem(text.str(), path);
}

Result<std::string> SigningKey::PrivateKeyPem() const {
  ossl::Bio bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr ||
      PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return Status::Internal("cannot write the private key as PEM: " + ossl::ErrorQueue());
  return ossl::BioContents(bio.get());
}

Result<std::string> SigningKey::Sign(std::string_view message) const {
  ossl::MdCtx ctx(EVP_MD_CTX_new());
  unsigned char signature[kSignatureBytes];
  size_t size = sizeof signature;
  if (ctx == nullptr || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), signature, &size,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1)
    return Status::Internal("Ed25519 signing failed: " + ossl::ErrorQueue());
  return std::string(reinterpret_cast<const char*>(signature), size);
}

Result<v1::Signature> SigningKey::SignHead(std::string_view device_id, uint64_t through_sequence,
                                           std::string_view link) const {
  if (link.size() != kChainLinkBytes)
    return Status::Internal("chain link of event " + std::to_string(through_sequence) + " has " +
                            std::to_string(link.size()) + " bytes, not " +
                            std::to_string(kChainLinkBytes));
  Result<std::string> ed25519 = Sign(HeadMessage(device_id, through_sequence, link));
  if (!ed25519.ok()) return ed25519.status();
  v1::Signature signature;
  signature.set_through_sequence(through_sequence);
  signature.set_chain_head(std::string(link));
  signature.set_ed25519(std::move(*ed25519));
  return signature;
}

}  // namespace instrumeter::protocol
