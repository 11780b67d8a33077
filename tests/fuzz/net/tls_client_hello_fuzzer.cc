// libFuzzer target for the TLS ClientHello sniffer: any byte string yields
// one verdict, never a crash or an over-read, and the verdict is consistent
// with what a prefix of the same bytes says.
#include <cstddef>
#include <cstdint>
#include <span>

#include "net/sniff.h"

namespace {

using ward::net::TlsSniffStatus;

void CheckHost(const std::string& host) {
  if (host.empty() || host.size() > 253 || host.back() == '.') __builtin_trap();
  for (char c : host) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!ok) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  ward::net::TlsClientHello h = ward::net::ParseClientHelloSni(in);
  switch (h.status) {
    case TlsSniffStatus::kNeedMore:
      if (h.need <= size) __builtin_trap();  // asks for bytes it already has
      break;
    case TlsSniffStatus::kNotTls:
      if (size == 0) __builtin_trap();
      break;
    case TlsSniffStatus::kMalformed:
      if (h.error == ward::net::TlsError::kNone) __builtin_trap();
      (void)ward::net::TlsErrorName(h.error);
      break;
    case TlsSniffStatus::kSni:
    case TlsSniffStatus::kNoSni:
    case TlsSniffStatus::kEncryptedClientHello: {
      if (h.status == TlsSniffStatus::kSni) CheckHost(h.host);
      if (h.status == TlsSniffStatus::kNoSni && !h.host.empty()) __builtin_trap();
      if (h.status == TlsSniffStatus::kEncryptedClientHello && !h.host.empty()) CheckHost(h.host);
      if (h.consumed == 0 || h.consumed > size) __builtin_trap();
      // The verdict depends only on the records that carried the hello ...
      ward::net::TlsClientHello exact = ward::net::ParseClientHelloSni(in.first(h.consumed));
      if (exact.status != h.status || exact.host != h.host || exact.consumed != h.consumed) __builtin_trap();
      // ... and nothing shorter decides it.
      ward::net::TlsClientHello shorter = ward::net::ParseClientHelloSni(in.first(h.consumed - 1));
      if (shorter.status != TlsSniffStatus::kNeedMore) __builtin_trap();
      break;
    }
  }
  return 0;
}
