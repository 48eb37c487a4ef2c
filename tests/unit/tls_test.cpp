// Self-signed certificate generation and the TLS profile.
#include "http/tls.hpp"

#include <catch2/catch.hpp>

#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <regex>

using namespace mts;

TEST_CASE("a self-signed certificate is created once, with a private key only its owner reads", "[tls]") {
  std::random_device rd;
  auto dir = std::filesystem::temp_directory_path() / ("mts-tls-test-" + std::to_string(rd()));
  auto first = ensure_self_signed_certificate((dir / "sub").string());
  CHECK(first.generated);
  struct stat st{};
  REQUIRE(stat(first.key_file.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  // It loads and holds the names clients use on this machine.
  FILE* f = std::fopen(first.cert_file.c_str(), "r");
  REQUIRE(f);
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  REQUIRE(cert);
  CHECK(X509_check_host(cert, "localhost", 0, 0, nullptr) == 1);
  CHECK(X509_check_ip_asc(cert, "127.0.0.1", 0) == 1);
  X509_free(cert);

  auto fp = certificate_fingerprint(first.cert_file);
  CHECK(std::regex_match(fp, std::regex("^([0-9A-F]{2}:){31}[0-9A-F]{2}$")));

  // A second start keeps the same certificate.
  auto second = ensure_self_signed_certificate((dir / "sub").string());
  CHECK_FALSE(second.generated);
  CHECK(certificate_fingerprint(second.cert_file) == fp);
  std::filesystem::remove_all(dir);
}

TEST_CASE("the TLS profile allows TLS 1.2 and 1.3 with AEAD suites only", "[tls]") {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  REQUIRE(apply_mozilla_intermediate(ctx));
  CHECK(SSL_CTX_get_min_proto_version(ctx) == TLS1_2_VERSION);
  SSL* ssl = SSL_new(ctx);
  STACK_OF(SSL_CIPHER)* ciphers = SSL_get_ciphers(ssl);
  int n = sk_SSL_CIPHER_num(ciphers);
  CHECK(n == 12); // 9 TLS 1.2 suites + 3 TLS 1.3 suites
  for (int i = 0; i < n; ++i) {
    std::string name = SSL_CIPHER_get_name(sk_SSL_CIPHER_value(ciphers, i));
    INFO(name);
    CHECK((name.find("GCM") != std::string::npos || name.find("CHACHA20") != std::string::npos));
    CHECK(name.find("CBC") == std::string::npos);
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
}
