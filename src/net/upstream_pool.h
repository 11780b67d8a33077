// Connections to servers made before the program's connect() returned, on
// their way to the proxy that will relay them.
//
// Why: a connection whose fate depends on its first bytes (a TLS SNI, an
// HTTP Host) goes through the proxy, which used to accept it at once and
// connect to the server only after reading those bytes. The program's
// connect() then succeeded whatever the server did: a port that refuses, an
// address with no route, an IPv6 address that a dual-stack client should
// fall back from. Now the supervisor connects to the server while the
// program's connect() waits (net/connect_notify.h), answers the program with
// what the server did, and leaves the connected socket here; the proxy takes
// it when the program's connection arrives, instead of connecting again.
//
// Two fresh connections to the same address and port are interchangeable
// (nothing has been sent on either), so the pool is keyed by destination
// only: whichever of two simultaneous connections to a server arrives first
// takes either socket. A socket left here (the program's connection never
// reached the proxy) is closed after kMaxAgeMs, before a server would close
// an idle connection of its own accord.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "base/unique_fd.h"
#include "net/egress_rules.h"

namespace ward::net {

class UpstreamPool {
 public:
  static constexpr int64_t kMaxAgeMs = 3000;
  static constexpr size_t kMaxSockets = 1024;

  explicit UpstreamPool(size_t max_sockets = kMaxSockets) : max_sockets_(max_sockets) {}

  // Leaves `socket` (connected, or with its handshake under way) to
  // `address`:`port` for Take(). `now_ms`: CLOCK_MONOTONIC. False (and the
  // socket closed) when the pool is full.
  bool Put(const IpAddress& address, uint16_t port, UniqueFd socket, int64_t now_ms);
  // The oldest socket left for `address`:`port` within kMaxAgeMs of
  // `now_ms`, or an invalid one. IPv4-mapped IPv6 addresses are their IPv4
  // address.
  UniqueFd Take(const IpAddress& address, uint16_t port, int64_t now_ms);
  // Closes every socket older than kMaxAgeMs (Put and Take do too; the
  // proxy calls this every second, so that nothing waits for them).
  void Expire(int64_t now_ms);
  size_t size();

 private:
  struct Entry {
    UniqueFd socket;
    int64_t since_ms = 0;
  };
  using Key = std::pair<std::array<uint8_t, 17>, uint16_t>;  // family tag + address bytes, port
  static Key KeyOf(const IpAddress& address, uint16_t port);
  void ExpireLocked(int64_t now_ms);

  const size_t max_sockets_;
  std::mutex mu_;
  std::map<Key, std::vector<Entry>> entries_;
  size_t count_ = 0;
};

}  // namespace ward::net
