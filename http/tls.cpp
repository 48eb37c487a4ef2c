#include "http/tls.hpp"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
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

certificate_paths ensure_self_signed_certificate(const std::string& dir) {
  namespace fs = std::filesystem;
  certificate_paths paths{(fs::path(dir) / "cert.pem").string(), (fs::path(dir) / "key.pem").string(), false};
  if (fs::exists(paths.cert_file) && fs::exists(paths.key_file))
    return paths;
  std::error_code ec;
  fs::create_directories(dir.empty() ? "." : dir, ec);
  if (ec)
    fail("cannot create directory " + dir + ": " + ec.message());

  std::unique_ptr<EVP_PKEY, pkey_free> key(EVP_EC_gen("P-256"));
  if (!key)
    fail("cannot generate a P-256 key");
  std::unique_ptr<X509, x509_free> cert(X509_new());
  X509_set_version(cert.get(), 2);
  // A random 64-bit serial, so regenerated certificates never repeat one.
  ASN1_INTEGER* serial = X509_get_serialNumber(cert.get());
  BIGNUM* bn = BN_new();
  BN_rand(bn, 64, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY);
  BN_to_ASN1_INTEGER(bn, serial);
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 825L * 24 * 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("MTS server (self-signed)"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert.get(), cert.get(), nullptr, nullptr, 0);
  const char* exts[][2] = {{"subjectAltName", "DNS:localhost,IP:127.0.0.1,IP:::1"},
                           {"basicConstraints", "critical,CA:FALSE"},
                           {"keyUsage", "critical,digitalSignature"},
                           {"extendedKeyUsage", "serverAuth"}};
  for (auto& e : exts) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, OBJ_txt2nid(e[0]), e[1]);
    if (!ext)
      fail(std::string("cannot build certificate extension ") + e[0]);
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0)
    fail("cannot sign the certificate");

  // The key file is created with mode 0600 before any secret is written to it.
  auto tmp_key = paths.key_file + ".tmp";
  mode_t old = umask(077);
  file_ptr kf(std::fopen(tmp_key.c_str(), "w"));
  umask(old);
  if (!kf || chmod(tmp_key.c_str(), 0600) != 0 ||
      PEM_write_PrivateKey(kf.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1 ||
      std::fflush(kf.get()) != 0)
    fail("cannot write " + paths.key_file);
  kf.reset();
  auto tmp_cert = paths.cert_file + ".tmp";
  file_ptr cf(std::fopen(tmp_cert.c_str(), "w"));
  if (!cf || PEM_write_X509(cf.get(), cert.get()) != 1 || std::fflush(cf.get()) != 0)
    fail("cannot write " + paths.cert_file);
  cf.reset();
  fs::rename(tmp_key, paths.key_file, ec);
  if (!ec)
    fs::rename(tmp_cert, paths.cert_file, ec);
  if (ec)
    fail("cannot store the certificate in " + dir + ": " + ec.message());
  paths.generated = true;
  return paths;
}

std::string certificate_fingerprint(const std::string& cert_file) {
  file_ptr f(std::fopen(cert_file.c_str(), "r"));
  if (!f)
    fail("cannot read certificate file " + cert_file);
  std::unique_ptr<X509, x509_free> cert(PEM_read_X509(f.get(), nullptr, nullptr, nullptr));
  if (!cert)
    fail("certificate file " + cert_file + " holds no PEM certificate");
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
