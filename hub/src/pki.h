// The deployment's own certificate authority (docs/security.md): an EC P-256 key and a
// self-signed certificate in one directory, the TLS certificates it issues (the broker's server
// certificate, the hub's and each device's client certificate) and its revocation list, which the
// broker reads. OpenSSL's C API through the owners of protocol/openssl_raii.h; no exceptions.
//
// EC P-256 with ECDSA-SHA256, not Ed25519: Mosquitto 2.0.11, Paho C 1.3.12 and OpenSSL 3 all
// negotiate it in TLS 1.2 and 1.3 (the signing keys of telemetry are Ed25519; they never touch
// TLS).
//
// Directory layout (the CLI writes it; file modes in parentheses):
//   ca.key (0600)  ca.crt  crl.pem      the authority
//   hub.key (0600) hub.crt              the hub's client certificate, CN "instrumeter-hub"
//   broker.key (0600) broker.crt        the broker's server certificate
//
// Used by one CLI command at a time; not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "protocol/openssl_raii.h"

namespace instrumeter::hub {

inline constexpr char kHubCommonName[] = "instrumeter-hub";

// Writes `content` to `path` with `mode` (a new file, renamed into place, so a reader never sees
// half of it). AlreadyExists when `path` exists and `replace` is false.
Status WriteFileWithMode(const std::string& path, const std::string& content, unsigned mode,
                         bool replace);

class CertificateAuthority {
 public:
  // A certificate and the PEM of its fresh private key.
  struct Issued {
    std::string certificate_pem;
    std::string private_key_pem;
    std::string serial_hex;  // upper-case hex, as `openssl x509 -serial` prints it
  };
  // A revoked certificate, for the CRL.
  struct Revoked {
    std::string serial_hex;
    int64_t revoked_unix_ms = 0;
  };

  // Creates `dir` (mode 0700) with a new authority, an empty CRL, the hub's client certificate
  // and the broker's server certificate for `broker_hosts` (DNS names or IP addresses).
  // AlreadyExists when `dir` already holds ca.key or ca.crt: an authority is never overwritten.
  static Result<CertificateAuthority> Init(const std::string& dir,
                                           const std::vector<std::string>& broker_hosts,
                                           int64_t now_unix_ms);
  // Opens the authority in `dir`; refuses a ca.key that group or others can read.
  static Result<CertificateAuthority> Open(const std::string& dir);

  // A client certificate (extendedKeyUsage clientAuth) with CN = `common_name`.
  Result<Issued> IssueClient(const std::string& common_name, int64_t now_unix_ms) const;
  // A server certificate (serverAuth) naming `hosts` in its subjectAltName.
  Result<Issued> IssueServer(const std::vector<std::string>& hosts, int64_t now_unix_ms) const;
  // Replaces crl.pem with a CRL listing `revoked`, signed by the authority.
  Status WriteCrl(const std::vector<Revoked>& revoked, int64_t now_unix_ms) const;

  const std::string& dir() const { return dir_; }
  std::string ca_cert_path() const { return dir_ + "/ca.crt"; }
  std::string crl_path() const { return dir_ + "/crl.pem"; }
  const std::string& ca_cert_pem() const { return ca_cert_pem_; }

 private:
  CertificateAuthority(std::string dir, protocol::ossl::Pkey key, std::string ca_cert_pem)
      : dir_(std::move(dir)), key_(std::move(key)), ca_cert_pem_(std::move(ca_cert_pem)) {}

  std::string dir_;
  protocol::ossl::Pkey key_;
  std::string ca_cert_pem_;
};

}  // namespace instrumeter::hub
