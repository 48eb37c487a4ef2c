#include "http/tls.hpp"

#include "config/settings.hpp" // is_node_name

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>

namespace mts {

const char* const mozilla_intermediate_tls12_ciphers =
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
  "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";
const char* const mozilla_intermediate_tls13_suites =
  "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

bool apply_mozilla_intermediate(SSL_CTX* ctx) {
  bool ok = SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1;
  ok &= SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1;
  ok &= SSL_CTX_set_cipher_list(ctx, mozilla_intermediate_tls12_ciphers) == 1;
  ok &= SSL_CTX_set_ciphersuites(ctx, mozilla_intermediate_tls13_suites) == 1;
  ok &= SSL_CTX_set1_groups_list(ctx, "X25519:prime256v1:secp384r1") == 1;
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_clear_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  return ok;
}

namespace {

struct file_closer {
  void operator()(FILE* f) const { std::fclose(f); }
};
using file_ptr = std::unique_ptr<FILE, file_closer>;
struct pkey_free {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct x509_free {
  void operator()(X509* x) const { X509_free(x); }
};

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

} // namespace

namespace {

std::unique_ptr<EVP_PKEY, pkey_free> new_p256_key() {
  std::unique_ptr<EVP_PKEY, pkey_free> key(EVP_EC_gen("P-256"));
  if (!key)
    fail("cannot generate a P-256 key");
  return key;
}

// A v3 certificate for `key` with a random 64-bit serial (so regenerated certificates never
// repeat one), valid from an hour ago (clock skew) for `days`, subject CN and O.
std::unique_ptr<X509, x509_free> new_certificate(EVP_PKEY* key, long days, const std::string& cn, const char* org) {
  std::unique_ptr<X509, x509_free> cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER* serial = X509_get_serialNumber(cert.get());
  BIGNUM* bn = BN_new();
  BN_rand(bn, 64, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY);
  BN_to_ASN1_INTEGER(bn, serial);
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), days * 24 * 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(org), -1, -1, 0);
  return cert;
}

// Adds the extensions (name, value as in openssl.cnf), the issuer, and signs with issuer_key.
void finish_certificate(X509* cert, X509* issuer, EVP_PKEY* issuer_key,
                        std::initializer_list<std::pair<const char*, std::string>> extensions) {
  X509_set_issuer_name(cert, X509_get_subject_name(issuer));
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, issuer, cert, nullptr, nullptr, 0);
  for (const auto& [name, value] : extensions) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, OBJ_txt2nid(name), value.c_str());
    if (!ext)
      fail(std::string("cannot build certificate extension ") + name);
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(cert, issuer_key, EVP_sha256()) == 0)
    fail("cannot sign the certificate");
}

// Writes the key (created with mode 0600 before any secret is written to it) and the
// certificate next to their final names, then renames both into place.
void store_key_and_certificate(const certificate_paths& paths, EVP_PKEY* key, X509* cert) {
  namespace fs = std::filesystem;
  auto tmp_key = paths.key_file + ".tmp";
  mode_t old = umask(077);
  file_ptr kf(std::fopen(tmp_key.c_str(), "w"));
  umask(old);
  if (!kf || chmod(tmp_key.c_str(), 0600) != 0 ||
      PEM_write_PrivateKey(kf.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1 || std::fflush(kf.get()) != 0)
    fail("cannot write " + paths.key_file);
  kf.reset();
  auto tmp_cert = paths.cert_file + ".tmp";
  file_ptr cf(std::fopen(tmp_cert.c_str(), "w"));
  if (!cf || PEM_write_X509(cf.get(), cert) != 1 || std::fflush(cf.get()) != 0)
    fail("cannot write " + paths.cert_file);
  cf.reset();
  std::error_code ec;
  fs::rename(tmp_key, paths.key_file, ec);
  if (!ec)
    fs::rename(tmp_cert, paths.cert_file, ec);
  if (ec)
    fail("cannot store " + paths.cert_file + ": " + ec.message());
}

void make_directory(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir.empty() ? "." : dir, ec);
  if (ec)
    fail("cannot create directory " + dir + ": " + ec.message());
}

std::unique_ptr<X509, x509_free> read_certificate(const std::string& file) {
  file_ptr f(std::fopen(file.c_str(), "r"));
  if (!f)
    fail("cannot read certificate file " + file);
  std::unique_ptr<X509, x509_free> cert(PEM_read_X509(f.get(), nullptr, nullptr, nullptr));
  if (!cert)
    fail("certificate file " + file + " holds no PEM certificate");
  return cert;
}

std::unique_ptr<EVP_PKEY, pkey_free> read_key(const std::string& file) {
  file_ptr f(std::fopen(file.c_str(), "r"));
  if (!f)
    fail("cannot read key file " + file);
  std::unique_ptr<EVP_PKEY, pkey_free> key(PEM_read_PrivateKey(f.get(), nullptr, nullptr, nullptr));
  if (!key)
    fail("key file " + file + " holds no PEM private key");
  return key;
}

void refuse_to_overwrite(const certificate_paths& paths) {
  for (const auto* f : {&paths.cert_file, &paths.key_file})
    if (std::filesystem::exists(*f))
      fail(*f + " exists already; not overwritten (move it away to make a new one)");
}

} // namespace

certificate_paths ensure_self_signed_certificate(const std::string& dir) {
  namespace fs = std::filesystem;
  certificate_paths paths{(fs::path(dir) / "cert.pem").string(), (fs::path(dir) / "key.pem").string(), false};
  if (fs::exists(paths.cert_file) && fs::exists(paths.key_file))
    return paths;
  make_directory(dir);
  auto key = new_p256_key();
  auto cert = new_certificate(key.get(), 825, "localhost", "MTS server (self-signed)");
  finish_certificate(cert.get(), cert.get(), key.get(),
                     {{"subjectAltName", "DNS:localhost,IP:127.0.0.1,IP:::1"},
                      {"basicConstraints", "critical,CA:FALSE"},
                      {"keyUsage", "critical,digitalSignature"},
                      {"extendedKeyUsage", "serverAuth"}});
  store_key_and_certificate(paths, key.get(), cert.get());
  paths.generated = true;
  return paths;
}

certificate_paths cluster_ca_paths(const std::string& dir) {
  namespace fs = std::filesystem;
  return {(fs::path(dir) / "cluster-ca.pem").string(), (fs::path(dir) / "cluster-ca.key").string(), false};
}

certificate_paths node_certificate_paths(const std::string& dir, const std::string& node) {
  namespace fs = std::filesystem;
  return {(fs::path(dir) / (node + ".pem")).string(), (fs::path(dir) / (node + ".key")).string(), false};
}

certificate_paths create_cluster_ca(const std::string& dir, long days) {
  if (days < 1 || days > 36500)
    fail("the CA's validity must be 1 to 36500 days");
  auto paths = cluster_ca_paths(dir);
  refuse_to_overwrite(paths);
  make_directory(dir);
  auto key = new_p256_key();
  // Its own name carries a random part: two clusters' CAs are never confused by name.
  unsigned char rnd[6];
  RAND_bytes(rnd, sizeof rnd);
  char id[16];
  std::snprintf(id, sizeof id, "%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
  auto cert = new_certificate(key.get(), days, std::string("MTS cluster CA ") + id, "MTS cluster");
  finish_certificate(cert.get(), cert.get(), key.get(),
                     {{"basicConstraints", "critical,CA:TRUE,pathlen:0"},
                      {"keyUsage", "critical,keyCertSign,cRLSign"},
                      {"subjectKeyIdentifier", "hash"}});
  store_key_and_certificate(paths, key.get(), cert.get());
  paths.generated = true;
  return paths;
}

certificate_paths create_node_certificate(const std::string& ca_dir, const std::string& node,
                                          const std::string& out_dir, long days) {
  if (!is_node_name(node))
    fail("node name '" + node + "' must be 1 to 64 letters, digits, '-', '.' or '_', not starting with '-' or '.'");
  if (days < 1 || days > 3650)
    fail("a node certificate's validity must be 1 to 3650 days");
  const auto ca = cluster_ca_paths(ca_dir);
  auto ca_cert = read_certificate(ca.cert_file);
  auto ca_key = read_key(ca.key_file);
  if (X509_check_private_key(ca_cert.get(), ca_key.get()) != 1)
    fail(ca.key_file + " is not the key of " + ca.cert_file);
  auto paths = node_certificate_paths(out_dir, node);
  refuse_to_overwrite(paths);
  make_directory(out_dir);
  auto key = new_p256_key();
  auto cert = new_certificate(key.get(), days, node, "MTS cluster node");
  // A node is the TLS server (the head) or client (a collector) of the cluster's links.
  finish_certificate(cert.get(), ca_cert.get(), ca_key.get(),
                     {{"subjectAltName", "DNS:" + node},
                      {"basicConstraints", "critical,CA:FALSE"},
                      {"keyUsage", "critical,digitalSignature"},
                      {"extendedKeyUsage", "serverAuth,clientAuth"},
                      {"authorityKeyIdentifier", "keyid:always"}});
  store_key_and_certificate(paths, key.get(), cert.get());
  paths.generated = true;
  return paths;
}

std::optional<std::string> check_node_certificate(const std::string& ca_file, const std::string& cert_file,
                                                  const std::string& key_file) {
  try {
    auto ca = read_certificate(ca_file);
    auto cert = read_certificate(cert_file);
    auto key = read_key(key_file);
    if (X509_check_private_key(cert.get(), key.get()) != 1)
      return key_file + " is not the key of " + cert_file;
    std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), X509_STORE_free);
    std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(), X509_STORE_CTX_free);
    if (!store || !ctx || X509_STORE_add_cert(store.get(), ca.get()) != 1 ||
        X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) != 1)
      return std::string("cannot set up the certificate check");
    X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT);
    if (X509_verify_cert(ctx.get()) != 1)
      return cert_file + " was not issued by the cluster CA " + ca_file + ": " +
             X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
    return std::nullopt;
  } catch (const std::exception& e) {
    return std::string(e.what());
  }
}

std::string certificate_fingerprint(const std::string& cert_file) {
  auto cert = read_certificate(cert_file);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  X509_digest(cert.get(), EVP_sha256(), md, &n);
  std::string out;
  char hex[4];
  for (unsigned i = 0; i < n; ++i) {
    std::snprintf(hex, sizeof hex, i ? ":%02X" : "%02X", md[i]);
    out += hex;
  }
  return out;
}

} // namespace mts
