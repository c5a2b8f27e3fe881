// Self-signed certificates for tests of HTTPS, made in-process with OpenSSL (no openssl CLI).
#pragma once

#include <filesystem>
#include <string>

namespace aec::testing {

// PEM texts of a certificate and its unencrypted private key (EC P-256).
struct TestCert {
  std::string cert_pem;
  std::string key_pem;
};

// A fresh key and a self-signed certificate for IP 127.0.0.1 (CN and subjectAltName), valid for a
// day: what `openssl req -x509 -newkey ec -nodes -days 1 -subj /CN=127.0.0.1 -addext
// subjectAltName=IP:127.0.0.1` makes. Each call makes a different key. With a `passphrase`, the
// key is encrypted with it (AES-256-CBC). Aborts when OpenSSL fails (no test can run without it).
// Thread-safe.
TestCert make_test_cert(const std::string& passphrase = "");

// Paths of a certificate and key written as PEM files.
struct TestCertFiles {
  std::string cert;
  std::string key;
};

// make_test_cert(), written to directory `dir` as NAME.crt and NAME.key (mode 0600). Aborts on
// failure.
TestCertFiles write_test_cert(const std::filesystem::path& dir, const std::string& name = "server");

// Writes `text` to `path`, replacing it. Aborts on failure.
void write_text(const std::string& path, const std::string& text);

}  // namespace aec::testing
