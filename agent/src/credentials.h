// The device's credentials (agent.toml [security] and the TLS files of [mqtt]), checked before the
// agent starts: a private key that another user can read is refused, because whoever reads it can
// forge this instrument's hours (docs/security.md).
#pragma once

#include <optional>

#include "agent/agent_config.h"
#include "common/status.h"
#include "protocol/chain.h"

namespace instrumeter::agent {

struct Credentials {
  // Present when [security] is configured; the agent then signs (protocol/README.md, "Signing").
  std::optional<protocol::SigningKey> signing_key;
};

// Checks ca_file and cert_file are readable, key_file and signing_key_file are regular files only
// their owner can access (mode 0600 or stricter), and loads the signing key. Errors name the file
// and the configuration key; the caller exits 2 (a configuration error).
Result<Credentials> LoadCredentials(const AgentConfig& config);

}  // namespace instrumeter::agent
