#include "server/tls_context.h"

#include <string_view>

#include <boost/system/system_error.hpp>
#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "core/status_macros.h"
#include "server/text_file.h"

namespace aec::server {
namespace {

namespace ssl = boost::asio::ssl;

constexpr std::string_view kCertHint =
    "give the server's PEM certificate, then any intermediate ones (each beginning "
    "-----BEGIN CERTIFICATE-----)";
constexpr std::string_view kKeyHint = "give the unencrypted PEM private key of --tls-cert";

// OpenSSL's words for the first error queued by the last call, and an empty queue after.
std::string openssl_reason() {
  unsigned long first = ERR_get_error();  // NOLINT(google-runtime-int): OpenSSL's type
  ERR_clear_error();
  const char* reason = first == 0 ? nullptr : ERR_reason_error_string(first);
  return reason != nullptr ? reason : "unknown error";
}

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

// Never prompts: a key encrypted with a passphrase fails to load instead of blocking startup.
int no_passphrase(char*, int, int, void*) {
  return 0;
}

Result<Pkey> parse_key(const std::string& path, const std::string& pem) {
  ERR_clear_error();
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  Pkey key(bio == nullptr ? nullptr
                          : PEM_read_bio_PrivateKey(bio, nullptr, no_passphrase, nullptr));
  BIO_free(bio);
  if (key) {
    return key;
  }
  std::string reason = openssl_reason();
  if (pem.find("ENCRYPTED") != std::string::npos) {
    return invalid_argument(
        fmt::format("--tls-key '{}' is encrypted with a passphrase, which aecd cannot prompt for: "
                    "decrypt it (openssl pkey -in {} -out plain.pem) and keep it readable by "
                    "aecd only",
                    path, path));
  }
  return invalid_argument(
      fmt::format("--tls-key '{}' is not a PEM private key ({}): {}", path, reason, kKeyHint));
}

Status restrict_protocols(ssl::context& ctx) {
  boost::system::error_code ec;
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                  ec);
  if (ec || SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION) != 1) {
    return Status(Code::Internal, "cannot restrict TLS to version 1.2 or later: " +
                                      (ec ? ec.message() : openssl_reason()));
  }
  return Status::ok();
}

Status use_cert(ssl::context& ctx, const std::string& cert_file) {
  auto cert = read_text_file(cert_file);
  if (!cert) {
    return invalid_argument(fmt::format("--tls-cert: {}; {}", cert.error().message(), kCertHint));
  }
  ERR_clear_error();
  boost::system::error_code ec;
  ctx.use_certificate_chain(boost::asio::buffer(cert->text), ec);
  if (ec) {
    ERR_clear_error();
    return invalid_argument(fmt::format("--tls-cert '{}' is not a PEM certificate chain ({}): {}",
                                        cert_file, ec.message(), kCertHint));
  }
  return Status::ok();
}

// After use_cert: the key must be the certificate's.
Status use_key(ssl::context& ctx, const std::string& key_file, const std::string& cert_file) {
  auto text = read_text_file(key_file);
  if (!text) {
    return invalid_argument(fmt::format("--tls-key: {}; {}", text.error().message(), kKeyHint));
  }
  auto key = parse_key(key_file, text->text);
  if (!key) {
    return key.error();
  }
  // SSL_CTX_use_PrivateKey refuses a key of the certificate's type that does not match it;
  // SSL_CTX_check_private_key also catches a key of another type.
  if (SSL_CTX_use_PrivateKey(ctx.native_handle(), key->get()) != 1 ||
      SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
    ERR_clear_error();
    return invalid_argument(fmt::format(
        "--tls-key '{}' does not match the certificate in --tls-cert '{}': give the private key "
        "the certificate was made for",
        key_file, cert_file));
  }
  return Status::ok();
}

}  // namespace

Result<std::unique_ptr<ssl::context>> make_tls_context(const std::string& cert_file,
                                                       const std::string& key_file) {
  if (cert_file.empty() || key_file.empty()) {
    return invalid_argument(
        "--tls-cert and --tls-key go together: give both to serve HTTPS, or neither");
  }
  std::unique_ptr<ssl::context> ctx;
  try {
    ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  } catch (const boost::system::system_error& e) {
    return Status(Code::Internal, fmt::format("cannot make a TLS context: {}", e.what()));
  }
  AEC_RETURN_IF_ERROR(restrict_protocols(*ctx));
  AEC_RETURN_IF_ERROR(use_cert(*ctx, cert_file));
  AEC_RETURN_IF_ERROR(use_key(*ctx, key_file, cert_file));
  return ctx;
}

}  // namespace aec::server
