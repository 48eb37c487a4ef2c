#pragma once
// TLS for the API: the Mozilla "intermediate" profile (TLS 1.2 and 1.3, AEAD suites only), and
// a self-signed certificate generated on first start when none is configured.
#include <openssl/ssl.h>

#include <optional>
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

// ---- A cluster's own certificate authority and its nodes' certificates (issue 16) ----
// The links between a head and its collectors use mutual TLS with a CA made only for that
// cluster: CAF accepts any certificate the CA issued as any node, so the CA must sign
// nothing else (docs/operations.md). All keys are ECDSA P-256, key files mode 0600, and an
// existing file is never overwritten (std::runtime_error naming it).

// DIR/cluster-ca.pem and DIR/cluster-ca.key.
certificate_paths cluster_ca_paths(const std::string& dir);
// DIR/NODE.pem and DIR/NODE.key.
certificate_paths node_certificate_paths(const std::string& dir, const std::string& node);

// A new CA (CA:TRUE, pathlen 0, keyCertSign), valid `days`, named "MTS cluster CA <random>".
certificate_paths create_cluster_ca(const std::string& dir, long days);
// A certificate for node `node` (CN and DNS name), signed by the CA in ca_dir, for TLS server
// and client use, valid `days` (1-3650).
certificate_paths create_node_certificate(const std::string& ca_dir, const std::string& node,
                                          const std::string& out_dir, long days);
// Why cert_file/key_file cannot serve as a node of the cluster whose CA is ca_file (a file
// missing or unreadable, a key that does not match, a certificate the CA did not issue or
// that has expired); nothing when they can. A node checks this at start-up, since the TLS
// layer reads the files only at the first connection.
std::optional<std::string> check_node_certificate(const std::string& ca_file, const std::string& cert_file,
                                                  const std::string& key_file);

} // namespace mts
