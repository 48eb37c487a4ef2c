#pragma once
// TLS for the API: the Mozilla "intermediate" profile (TLS 1.2 and 1.3, AEAD suites only), and
// a self-signed certificate generated on first start when none is configured.
#include <openssl/ssl.h>

#include <string>

namespace mts {

// TLS 1.2 suites of the Mozilla intermediate profile (v5.7), in its order; no CBC suites.
extern const char* const mozilla_intermediate_tls12_ciphers;
extern const char* const mozilla_intermediate_tls13_suites;

// Restricts ctx to TLS 1.2 and 1.3 with the suites above, the profile's curves, no session
// tickets, and the client's cipher preference (as the profile says). False if OpenSSL
// refused a setting.
bool apply_mozilla_intermediate(SSL_CTX* ctx);

struct certificate_paths {
  std::string cert_file;
  std::string key_file;
  bool generated = false;
};

// cert.pem and key.pem in `dir`: created (ECDSA P-256, self-signed, for localhost and
// 127.0.0.1 and ::1, valid 825 days, key file mode 0600) when either is missing. Throws
// std::runtime_error naming the file on failure.
certificate_paths ensure_self_signed_certificate(const std::string& dir);

// "AB:CD:..." SHA-256 fingerprint of a PEM certificate file; throws std::runtime_error.
std::string certificate_fingerprint(const std::string& cert_file);

} // namespace mts
