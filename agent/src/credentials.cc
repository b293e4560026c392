#include "credentials.h"

#include <unistd.h>

namespace instrumeter::agent {
namespace {

Status Readable(const std::string& path, const std::string& key) {
  if (path.empty() || ::access(path.c_str(), R_OK) == 0) return Status::Ok();
  return Status::NotFound("[mqtt] " + key + ": cannot read " + path);
}

}  // namespace

Result<Credentials> LoadCredentials(const AgentConfig& config) {
  INSTRUMETER_RETURN_IF_ERROR(Readable(config.mqtt.ca_file, "ca_file"));
  INSTRUMETER_RETURN_IF_ERROR(Readable(config.mqtt.cert_file, "cert_file"));
  if (!config.mqtt.key_file.empty())
    INSTRUMETER_RETURN_IF_ERROR(
        protocol::CheckPrivateKeyFile(config.mqtt.key_file).WithContext("[mqtt] key_file"));
  Credentials credentials;
  if (config.security) {
    Result<protocol::SigningKey> key =
        protocol::SigningKey::LoadFile(config.security->signing_key_file);
    if (!key.ok()) return key.status().WithContext("[security] signing_key_file");
    credentials.signing_key = std::move(*key);
  }
  return credentials;
}

}  // namespace instrumeter::agent
