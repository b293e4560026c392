// Small owners of OpenSSL handles, shared by the signing rule (chain.h) and the hub's certificate
// authority, so that every OpenSSL object is freed on every path without manual frees.
// Thread-safe as OpenSSL 3 is: each handle is used by one thread at a time.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>

#include <memory>
#include <string>

namespace instrumeter::protocol::ossl {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* handle) const { Free(handle); }
};

// unique_ptr<T> that calls OpenSSL's `Free` for T.
template <typename T, void (*Free)(T*)>
using Owned = std::unique_ptr<T, Deleter<T, Free>>;

using Pkey = Owned<EVP_PKEY, EVP_PKEY_free>;
using PkeyCtx = Owned<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;
using MdCtx = Owned<EVP_MD_CTX, EVP_MD_CTX_free>;
using Bio = Owned<BIO, BIO_free_all>;

// Takes every error OpenSSL queued on this thread, as "reason; reason" (empty if none), and
// leaves the queue empty so that the next failure reports only its own causes.
std::string ErrorQueue();

// A memory BIO's contents, for PEM writers.
std::string BioContents(BIO* bio);

}  // namespace instrumeter::protocol::ossl
