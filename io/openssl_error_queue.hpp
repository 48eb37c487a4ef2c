#pragma once
// OpenSSL's I/O calls with the calling thread's error queue emptied first (see the .cpp).

namespace mts::io {

// Referenced by whatever runs CAF's TLS layer, so that the linker keeps the definitions.
bool openssl_error_queue_guard();

} // namespace mts::io
