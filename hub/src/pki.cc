#include "pki.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "protocol/chain.h"

namespace instrumeter::hub {
namespace {

namespace ossl = protocol::ossl;

using X509Ptr = ossl::Owned<X509, X509_free>;
using CrlPtr = ossl::Owned<X509_CRL, X509_CRL_free>;
using ExtensionPtr = ossl::Owned<X509_EXTENSION, X509_EXTENSION_free>;
using BignumPtr = ossl::Owned<BIGNUM, BN_free>;
using Asn1IntegerPtr = ossl::Owned<ASN1_INTEGER, ASN1_INTEGER_free>;
using Asn1TimePtr = ossl::Owned<ASN1_TIME, ASN1_TIME_free>;
using RevokedPtr = ossl::Owned<X509_REVOKED, X509_REVOKED_free>;

constexpr int kCaDays = 20 * 365;
constexpr int kLeafDays = 5 * 365;
// A CRL past its nextUpdate makes OpenSSL refuse every client, so it is long; `devices revoke`
// and `ca crl` rewrite it whenever it changes.
constexpr int kCrlDays = 10 * 365;
// Certificates start an hour back, so that a peer whose clock is a little behind accepts them.
constexpr long kBackdateSeconds = 3600;

Status OpensslError(const std::string& what) {
  return Status::Internal(what + ": " + ossl::ErrorQueue());
}

Result<ossl::Pkey> NewEcKey() {
  ossl::Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (key == nullptr) return OpensslError("cannot generate an EC P-256 key");
  return key;
}

Result<std::string> PrivateKeyPem(EVP_PKEY* key) {
  ossl::Bio bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return OpensslError("cannot write a private key");
  return ossl::BioContents(bio.get());
}

Result<std::string> CertificatePem(X509* cert) {
  ossl::Bio bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_X509(bio.get(), cert) != 1)
    return OpensslError("cannot write a certificate");
  return ossl::BioContents(bio.get());
}

Result<X509Ptr> ParseCertificate(const std::string& pem, const std::string& source) {
  ossl::Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(bio == nullptr ? nullptr : PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr)
    return Status::Corruption(source + ": not a PEM certificate: " + ossl::ErrorQueue());
  return cert;
}

Result<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read " + path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// 16 random bytes, top bit clear: a positive serial no other certificate of ours shares.
Result<BignumPtr> RandomSerial() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return OpensslError("RAND_bytes");
  bytes[0] &= 0x7f;
  BignumPtr bn(BN_bin2bn(bytes, sizeof bytes, nullptr));
  if (bn == nullptr) return OpensslError("BN_bin2bn");
  return bn;
}

Result<std::string> SerialHex(const BIGNUM* serial) {
  char* hex = BN_bn2hex(serial);
  if (hex == nullptr) return OpensslError("BN_bn2hex");
  std::string out(hex);
  OPENSSL_free(hex);
  return out;
}

Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (ext == nullptr || X509_add_ext(cert, ext.get(), -1) != 1)
    return OpensslError("certificate extension " + std::string(OBJ_nid2sn(nid)) + " = " + value);
  return Status::Ok();
}

struct CertificateSpec {
  std::string common_name;
  int days = kLeafDays;
  // (NID, value) for X509V3_EXT_conf_nid, in order
  std::vector<std::pair<int, std::string>> extensions;
};

// A certificate for `key`, signed by `issuer_key` (issuer == nullptr: self-signed).
Result<X509Ptr> MakeCertificate(const CertificateSpec& spec, EVP_PKEY* key, X509* issuer,
                                EVP_PKEY* issuer_key, int64_t now_unix_ms, BIGNUM* serial) {
  X509Ptr cert(X509_new());
  if (cert == nullptr || X509_set_version(cert.get(), X509_VERSION_3) != 1)
    return OpensslError("X509_new");
  if (BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert.get())) == nullptr)
    return OpensslError("certificate serial");
  const time_t now = static_cast<time_t>(now_unix_ms / 1000);
  if (ASN1_TIME_set(X509_getm_notBefore(cert.get()), now - kBackdateSeconds) == nullptr ||
      ASN1_TIME_adj(X509_getm_notAfter(cert.get()), now, spec.days, 0) == nullptr)
    return OpensslError("certificate validity");
  X509_NAME* name = X509_get_subject_name(cert.get());
  const auto* cn = reinterpret_cast<const unsigned char*>(spec.common_name.c_str());
  const auto* org = reinterpret_cast<const unsigned char*>("instrumeter");
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, org, -1, -1, 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, cn, -1, -1, 0) != 1)
    return OpensslError("certificate subject CN=" + spec.common_name);
  X509* issuer_cert = issuer != nullptr ? issuer : cert.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer_cert)) != 1 ||
      X509_set_pubkey(cert.get(), key) != 1)
    return OpensslError("certificate issuer and key");
  for (const auto& [nid, value] : spec.extensions)
    INSTRUMETER_RETURN_IF_ERROR(AddExtension(cert.get(), issuer_cert, nid, value));
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) <= 0)
    return OpensslError("signing the certificate");
  return cert;
}

// A fresh EC key and its certificate, signed by the authority.
Result<CertificateAuthority::Issued> IssueLeaf(const CertificateAuthority& ca, EVP_PKEY* ca_key,
                                               const CertificateSpec& spec, int64_t now_unix_ms) {
  Result<X509Ptr> ca_cert = ParseCertificate(ca.ca_cert_pem(), ca.ca_cert_path());
  if (!ca_cert.ok()) return ca_cert.status();
  Result<ossl::Pkey> key = NewEcKey();
  if (!key.ok()) return key.status();
  Result<BignumPtr> serial = RandomSerial();
  if (!serial.ok()) return serial.status();
  Result<X509Ptr> cert =
      MakeCertificate(spec, key->get(), ca_cert->get(), ca_key, now_unix_ms, serial->get());
  if (!cert.ok()) return cert.status();
  Result<std::string> cert_pem = CertificatePem(cert->get());
  if (!cert_pem.ok()) return cert_pem.status();
  Result<std::string> key_pem = PrivateKeyPem(key->get());
  if (!key_pem.ok()) return key_pem.status();
  Result<std::string> hex = SerialHex(serial->get());
  if (!hex.ok()) return hex.status();
  return CertificateAuthority::Issued{std::move(*cert_pem), std::move(*key_pem), std::move(*hex)};
}

bool IsIpAddress(const std::string& host) {
  return !host.empty() && (host.find(':') != std::string::npos ||
                           host.find_first_not_of("0123456789.") == std::string::npos);
}

}  // namespace

Status WriteFileWithMode(const std::string& path, const std::string& content, unsigned mode,
                         bool replace) {
  if (!replace && std::filesystem::exists(path))
    return Status::AlreadyExists(path + " exists; refusing to overwrite it");
  const std::string temp = path + ".new";
  ::unlink(temp.c_str());
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return Status::IoError("cannot create " + temp + ": " + std::strerror(errno));
  size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  // The umask may have narrowed `mode`; set it exactly (it only ever widens to what was asked).
  const bool ok = written == content.size() && ::fchmod(fd, mode) == 0 && ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!ok || ::rename(temp.c_str(), path.c_str()) != 0) {
    ::unlink(temp.c_str());
    return Status::IoError("cannot write " + path + ": " + std::strerror(ok ? errno : saved));
  }
  return Status::Ok();
}

Result<CertificateAuthority> CertificateAuthority::Init(
    const std::string& dir, const std::vector<std::string>& broker_hosts, int64_t now_unix_ms) {
  for (const char* name : {"/ca.key", "/ca.crt"})
    if (std::filesystem::exists(dir + name))
      return Status::AlreadyExists(dir + name +
                                   " exists: this directory already holds a certificate "
                                   "authority, which is never overwritten");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IoError("cannot create " + dir + ": " + ec.message());
  if (::chmod(dir.c_str(), 0700) != 0)
    return Status::IoError("cannot restrict " + dir + " to mode 0700: " + std::strerror(errno));

  Result<ossl::Pkey> key = NewEcKey();
  if (!key.ok()) return key.status();
  Result<BignumPtr> serial = RandomSerial();
  if (!serial.ok()) return serial.status();
  const CertificateSpec spec{.common_name = "instrumeter deployment CA",
                             .days = kCaDays,
                             .extensions = {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                                            {NID_key_usage, "critical,keyCertSign,cRLSign"},
                                            {NID_subject_key_identifier, "hash"}}};
  Result<X509Ptr> cert =
      MakeCertificate(spec, key->get(), nullptr, key->get(), now_unix_ms, serial->get());
  if (!cert.ok()) return cert.status();
  Result<std::string> key_pem = PrivateKeyPem(key->get());
  if (!key_pem.ok()) return key_pem.status();
  Result<std::string> cert_pem = CertificatePem(cert->get());
  if (!cert_pem.ok()) return cert_pem.status();
  INSTRUMETER_RETURN_IF_ERROR(WriteFileWithMode(dir + "/ca.key", *key_pem, 0600, false));
  INSTRUMETER_RETURN_IF_ERROR(WriteFileWithMode(dir + "/ca.crt", *cert_pem, 0644, false));
  CertificateAuthority ca(dir, std::move(*key), std::move(*cert_pem));

  INSTRUMETER_RETURN_IF_ERROR(ca.WriteCrl({}, now_unix_ms));
  Result<Issued> hub = ca.IssueClient(kHubCommonName, now_unix_ms);
  if (!hub.ok()) return hub.status();
  INSTRUMETER_RETURN_IF_ERROR(
      WriteFileWithMode(dir + "/hub.key", hub->private_key_pem, 0600, false));
  INSTRUMETER_RETURN_IF_ERROR(
      WriteFileWithMode(dir + "/hub.crt", hub->certificate_pem, 0644, false));
  Result<Issued> broker = ca.IssueServer(broker_hosts, now_unix_ms);
  if (!broker.ok()) return broker.status();
  INSTRUMETER_RETURN_IF_ERROR(
      WriteFileWithMode(dir + "/broker.key", broker->private_key_pem, 0600, false));
  INSTRUMETER_RETURN_IF_ERROR(
      WriteFileWithMode(dir + "/broker.crt", broker->certificate_pem, 0644, false));
  return ca;
}

Result<CertificateAuthority> CertificateAuthority::Open(const std::string& dir) {
  const std::string key_path = dir + "/ca.key";
  INSTRUMETER_RETURN_IF_ERROR(protocol::CheckPrivateKeyFile(key_path));
  Result<std::string> key_pem = ReadText(key_path);
  if (!key_pem.ok()) return key_pem.status();
  ossl::Bio bio(BIO_new_mem_buf(key_pem->data(), static_cast<int>(key_pem->size())));
  ossl::Pkey key(bio == nullptr ? nullptr
                                : PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr)
    return Status::Corruption(key_path + ": not a PEM private key: " + ossl::ErrorQueue());
  Result<std::string> cert_pem = ReadText(dir + "/ca.crt");
  if (!cert_pem.ok()) return cert_pem.status();
  Result<X509Ptr> cert = ParseCertificate(*cert_pem, dir + "/ca.crt");
  if (!cert.ok()) return cert.status();
  if (X509_check_private_key(cert->get(), key.get()) != 1)
    return Status::Corruption(dir + ": ca.key does not belong to ca.crt: " + ossl::ErrorQueue());
  return CertificateAuthority(dir, std::move(key), std::move(*cert_pem));
}

Result<CertificateAuthority::Issued> CertificateAuthority::IssueClient(
    const std::string& common_name, int64_t now_unix_ms) const {
  return IssueLeaf(*this, key_.get(),
                   {.common_name = common_name,
                    .extensions = {{NID_basic_constraints, "critical,CA:FALSE"},
                                   {NID_key_usage, "critical,digitalSignature"},
                                   {NID_ext_key_usage, "clientAuth"},
                                   {NID_subject_key_identifier, "hash"},
                                   {NID_authority_key_identifier, "keyid"}}},
                   now_unix_ms);
}

Result<CertificateAuthority::Issued> CertificateAuthority::IssueServer(
    const std::vector<std::string>& hosts, int64_t now_unix_ms) const {
  if (hosts.empty()) return Status::InvalidArgument("the broker certificate needs a host name");
  std::string alt_names;
  for (const std::string& host : hosts) {
    if (host.empty() || host.find_first_of(", \t") != std::string::npos)
      return Status::InvalidArgument("broker host '" + host + "' is not a host name or address");
    alt_names +=
        (alt_names.empty() ? "" : ",") + std::string(IsIpAddress(host) ? "IP:" : "DNS:") + host;
  }
  return IssueLeaf(*this, key_.get(),
                   {.common_name = hosts.front(),
                    .extensions = {{NID_basic_constraints, "critical,CA:FALSE"},
                                   {NID_key_usage, "critical,digitalSignature"},
                                   {NID_ext_key_usage, "serverAuth"},
                                   {NID_subject_alt_name, alt_names},
                                   {NID_subject_key_identifier, "hash"},
                                   {NID_authority_key_identifier, "keyid"}}},
                   now_unix_ms);
}

Status CertificateAuthority::WriteCrl(const std::vector<Revoked>& revoked,
                                      int64_t now_unix_ms) const {
  Result<X509Ptr> ca = ParseCertificate(ca_cert_pem_, ca_cert_path());
  if (!ca.ok()) return ca.status();
  CrlPtr crl(X509_CRL_new());
  const time_t now = static_cast<time_t>(now_unix_ms / 1000);
  Asn1TimePtr last_update(ASN1_TIME_set(nullptr, now));
  Asn1TimePtr next_update(ASN1_TIME_adj(nullptr, now, kCrlDays, 0));
  if (crl == nullptr || last_update == nullptr || next_update == nullptr ||
      X509_CRL_set_version(crl.get(), 1) != 1 ||
      X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca->get())) != 1 ||
      X509_CRL_set1_lastUpdate(crl.get(), last_update.get()) != 1 ||
      X509_CRL_set1_nextUpdate(crl.get(), next_update.get()) != 1)
    return OpensslError("building the CRL");
  for (const Revoked& r : revoked) {
    BIGNUM* raw = nullptr;
    if (BN_hex2bn(&raw, r.serial_hex.c_str()) == 0)
      return Status::Corruption("revoked certificate serial '" + r.serial_hex + "' is not hex");
    BignumPtr bn(raw);
    Asn1IntegerPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
    Asn1TimePtr when(ASN1_TIME_set(nullptr, static_cast<time_t>(r.revoked_unix_ms / 1000)));
    RevokedPtr entry(X509_REVOKED_new());
    if (serial == nullptr || when == nullptr || entry == nullptr ||
        X509_REVOKED_set_serialNumber(entry.get(), serial.get()) != 1 ||
        X509_REVOKED_set_revocationDate(entry.get(), when.get()) != 1 ||
        X509_CRL_add0_revoked(crl.get(), entry.get()) != 1)
      return OpensslError("CRL entry " + r.serial_hex);
    entry.release();  // owned by the CRL now
  }
  if (X509_CRL_sort(crl.get()) != 1 || X509_CRL_sign(crl.get(), key_.get(), EVP_sha256()) <= 0)
    return OpensslError("signing the CRL");
  ossl::Bio bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_X509_CRL(bio.get(), crl.get()) != 1)
    return OpensslError("writing the CRL");
  return WriteFileWithMode(crl_path(), ossl::BioContents(bio.get()), 0644, /*replace=*/true);
}

}  // namespace instrumeter::hub
