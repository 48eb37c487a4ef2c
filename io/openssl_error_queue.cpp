// OpenSSL's manual, SSL_get_error(3): "The current thread's error queue must be empty before
// the TLS/SSL I/O operation is attempted, or SSL_get_error() will not work reliably."
//
// CAF 0.17.6's TLS layer (libcaf_openssl, the links between a head and its collectors) calls
// SSL_accept, SSL_connect, SSL_read and SSL_write and then SSL_get_error without emptying the
// queue, and never empties it after a failed handshake. All links share one I/O thread, so one
// stranger's connection to the cluster port that fails its handshake (a port scan, a node of
// another CA) left errors that made the next "no data yet" on every healthy link read as a TLS
// failure, and CAF closed them all: a denial of service by anyone who can reach the port
// (tests/actors/cluster_tls_test.cpp reproduces it). The same mistake was fixed in h2o, stud,
// irssi and others; Debian's CAF 0.17 has it.
//
// The definitions below take precedence over libssl's for every caller in the process (the
// dynamic linker looks in the executable first): each empties the queue, then calls OpenSSL's
// own function, found once with dlvsym. This is what the manual asks of every caller, so no
// caller's behaviour changes.
//
// The queue is emptied only when it holds an error. cpp-httplib reads a request's header
// lines with one SSL_read per byte, and an unconditional ERR_clear_error (which resets all 16
// slots of the queue) on each of them was 6-15 % of the HTTP server's CPU. Looking costs one
// thread-local lookup; SSL_get_error itself decides with the same ERR_peek_error, so "empty"
// here is exactly the state it needs.
#include "io/openssl_error_queue.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

namespace {

template <class F>
F openssl_function(const char* name) {
  void* f = dlvsym(RTLD_NEXT, name, "OPENSSL_3.0.0");
  if (!f)
    f = dlsym(RTLD_NEXT, name);
  if (!f) {
    std::fprintf(stderr, "mts: cannot find OpenSSL's %s\n", name);
    std::abort();
  }
  return reinterpret_cast<F>(f);
}

void empty_error_queue() {
  if (ERR_peek_error() != 0)
    ERR_clear_error();
}

} // namespace

extern "C" {

int SSL_read(SSL* ssl, void* buf, int num) {
  static const auto real = openssl_function<int (*)(SSL*, void*, int)>("SSL_read");
  empty_error_queue();
  return real(ssl, buf, num);
}

int SSL_write(SSL* ssl, const void* buf, int num) {
  static const auto real = openssl_function<int (*)(SSL*, const void*, int)>("SSL_write");
  empty_error_queue();
  return real(ssl, buf, num);
}

int SSL_accept(SSL* ssl) {
  static const auto real = openssl_function<int (*)(SSL*)>("SSL_accept");
  empty_error_queue();
  return real(ssl);
}

int SSL_connect(SSL* ssl) {
  static const auto real = openssl_function<int (*)(SSL*)>("SSL_connect");
  empty_error_queue();
  return real(ssl);
}

} // extern "C"

namespace mts::io {

bool openssl_error_queue_guard() { return true; }

} // namespace mts::io
