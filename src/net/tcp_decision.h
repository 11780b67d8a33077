// The egress proxy's decision for one transparent (redirected) TCP
// connection, from what it learned about it: the original destination
// address and port, the host name in the client's first bytes (TLS SNI, HTTP
// Host) if any, and the names ward's own DNS filter resolved to that address
// during the run. Pure code: the proxy gathers the facts, this decides.
//
// Why the bound names matter: EgressPolicy::Decide trusts that a destination's
// domain and address belong together. The proxy only vouches for that when
// ward's resolver itself answered the name with the address; a name the
// program merely writes into its ClientHello is a claim, not a binding (the
// program could name an allowed host while connecting to any address).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "net/egress_rules.h"
#include "net/sniff.h"

namespace ward::net {

// The DNS-rebinding guard. A name an attacker controls (any name under an
// allowed wildcard, or any name at all under "default": "allow") can resolve
// to an address inside the machine or its private networks; a domain rule or
// the default must never open such an address. The guarded blocks, and why
// each is in (docs/network.md, "DNS rebinding guard"):
//   0.0.0.0/8, ::            unspecified: connect() reaches the connecting host
//   127.0.0.0/8, ::1         loopback
//   10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10   private networks
//   100.64.0.0/10            shared address space (carrier-grade NAT, cloud VPCs)
//   169.254.0.0/16, fe80::/10   link-local (cloud metadata services live here)
//   192.0.0.0/24             IETF assignments (DS-Lite, Oracle Cloud metadata)
//   198.18.0.0/15            benchmarking; fake-IP resolvers of local proxies
//   224.0.0.0/4, ff00::/8    multicast
//   240.0.0.0/4, 255.255.255.255   reserved, broadcast
//   64:ff9b::/96 + each IPv4 block above: NAT64 forms (RFC 6052);
//   64:ff9b:1::/48           local-use NAT64 (RFC 8215)
//   cloud metadata addresses outside those (fd00:ec2::/32, 100.100.100.200,
//   168.63.129.16)
//   the host's own interface addresses (given at construction)
// IPv4-mapped IPv6 (::ffff:a.b.c.d) is judged as its IPv4 address, since
// IpNetwork::Contains compares that form. The documentation blocks
// (192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32) are not guarded.
struct HostAddress {
  IpAddress address;
  std::string interface;  // its interface's name, for the reason
};

class RebindingGuard {
 public:
  struct Block {
    IpNetwork network;
    std::string what;  // "a private (RFC 1918)", for "X is ... address"
    bool host = false;  // one of the host's own addresses
  };

  // The fixed blocks only (no host addresses).
  RebindingGuard();
  // The fixed blocks and `host` (each address, and its NAT64 form if IPv4).
  // Loopback and unspecified host addresses are left to the fixed blocks.
  explicit RebindingGuard(const std::vector<HostAddress>& host);

  // The block that guards `address`: the host's own addresses first, then
  // the more specific fixed blocks before the broader ones. nullptr when
  // `address` is not guarded.
  const Block* BlockOf(const IpAddress& address) const;
  const std::vector<Block>& blocks() const { return blocks_; }

 private:
  std::vector<Block> blocks_;
};

// Whether the fixed blocks guard `address` (RebindingGuard().BlockOf).
bool IsGuardedAddress(const IpAddress& address);

// Returns the allow rule that opens the guarded `address`:`port`
// explicitly: an address rule whose whole block lies inside the guarded
// block of `address` ("169.254.169.254", "10.0.0.0/8" for 10.1.2.3; for one
// of the host's own addresses, only a rule naming exactly that address). A
// broad rule such as 0.0.0.0/0 or [::/0] means "the internet" and does not
// count. nullptr when none does, or when `address` is not guarded (the guard
// does not apply).
const EgressRule* ExplicitGuardedAllow(const RebindingGuard& guard, const EgressPolicy& policy,
                                       const IpAddress& address, uint16_t port);

// A TCP connection as EgressPolicy::Decide and EgressRule::Matches see it.
Destination TcpDestination(std::optional<std::string> domain, std::optional<IpAddress> address, uint16_t port);

struct TcpDecision {
  bool allowed = false;
  const EgressRule* rule = nullptr;  // as in EgressDecision
  std::string reason;
  std::string domain;  // the name the decision went by; "" if none
  std::string source;  // where that name came from: the given `name_source`, "dns", or ""
};

// Decides a TCP connection to `address`:`port`.
//
// `name` (from the first bytes; `name_source` says how: "sni", "http-host")
// is trusted for domain rules only if it is in `bound_names`. A name that is
// not bound is still checked against the deny rules (so naming a denied host
// is refused wherever it points), and then only address rules can allow the
// connection.
//
// Without a name: denied if a deny rule covers any bound name, else allowed
// if a bound name or the bare address is allowed.
//
// Finally the rebinding guard (ApplyRebindingGuard) may turn an allow into a
// deny; it never turns a deny into an allow.
TcpDecision DecideTcp(const RebindingGuard& guard, const EgressPolicy& policy, const std::optional<std::string>& name, std::string_view name_source,
                      std::span<const std::string> bound_names, const IpAddress& address, uint16_t port);

// Whether a name in a connection's first bytes (TLS SNI, HTTP Host) could
// change the decision about a TCP connection to `address`:`port`, so that the
// proxy must read them before any reach the server. False only when the
// address alone is allowed (an address rule, or "default": "allow", past the
// rebinding guard) and no deny rule names a domain for this port: then no
// name, bound or claimed, can deny it, and the connection may bypass the
// proxy (net/connect_notify.h). (The proxy's refusal of malformed TLS or
// HTTP first bytes exists to keep a server from reading a name ward did not;
// where no name matters, it is not needed.)
bool FirstBytesCanMatter(const RebindingGuard& guard, const EgressPolicy& policy, const IpAddress& address, uint16_t port);

// What the client's first bytes say about where it wants to go.
struct FirstBytes {
  enum class Status : uint8_t {
    kNeedMore,  // consistent so far, not conclusive
    kName,      // `name`, learned as `source`
    kNoName,    // neither TLS nor HTTP, a ClientHello without SNI, or a literal address
    kRefuse,    // malformed or ambiguous TLS / HTTP: `reason`
  };
  Status status = Status::kNeedMore;
  std::string name;
  std::string source;  // "sni", "http-host"
  std::string reason;
  // Set when the bytes begin with an HTTP/1 request (kName, or kNoName for a
  // literal address): where its body ends, so that the next request on the
  // connection can be judged in turn (SniffNextRequest), and whether it asks
  // to switch protocols (an upgrade, a CONNECT: see net/relay.h).
  std::optional<HttpBodyFraming> http;
};

// Reads a TLS ClientHello's server name, else an HTTP/1.x request's host
// (absolute-form target, else Host). Malformed or ambiguous heads are
// refused rather than guessed at: the server might read them otherwise.
// With encrypted_client_hello the outer (public) name is the name: the
// connection goes to that name's address, and the hidden inner name can
// only be one that server itself serves, as with any shared (CDN) address.
// A literal address as the host is no name: the destination address decides.
//
// Bytes that are not TLS name no host only if no lenient HTTP server could
// read a request line in them (LenientRequestLine): "GET\t/secret\tHTTP/1.1",
// " GET / HTTP/1.1", "get /" and "X / http/1.1" are refused unless strictly
// valid (the lower-case "get / HTTP/1.1" is, and is judged by its Host); a
// PostgreSQL startup message, an SSH banner or "PING\r\n" name no host.
FirstBytes SniffFirstBytes(std::span<const uint8_t> data);

// Reads the bytes at a request boundary of a connection whose first bytes
// were an HTTP/1 request: after one request, the server reads whatever
// comes next as the next request, so it must be one, strictly
// (ParseHttpRequestHead), and its name is judged like the first's. Anything
// else (a stray CRLF, a TLS record, leading whitespace, a malformed head) is
// kRefuse. Never kNoName unless the Host is a literal address.
FirstBytes SniffNextRequest(std::span<const uint8_t> data);

// Applies only the rebinding guard to an allow decision about `address`,
// whatever allowed it (a domain rule, an address rule, or the default):
// loopback and unspecified addresses are denied whatever the rules say (the
// host's loopback is host.ward.internal's); another guarded address stays
// allowed only by ExplicitGuardedAllow, whose rule becomes the decision's.
// Returns a deny with the guard's reason (the block, and that an address
// rule naming it would open it), or `decision` with that rule, or unchanged.
TcpDecision ApplyRebindingGuard(const RebindingGuard& guard, const EgressPolicy& policy, TcpDecision decision, const IpAddress& address,
                                uint16_t port);

}  // namespace ward::net
