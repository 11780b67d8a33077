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

#include "net/egress_rules.h"
#include "net/sniff.h"

namespace ward::net {

// Addresses that reach the machine itself or its link rather than a remote
// host: unspecified (0.0.0.0/8, ::), loopback (127.0.0.0/8, ::1), link-local
// (169.254.0.0/16, fe80::/10: cloud metadata services live here), multicast
// (224.0.0.0/4, ff00::/8) and the limited broadcast 255.255.255.255. An
// IPv4-mapped IPv6 address is judged as its IPv4 address.
bool IsGuardedAddress(const IpAddress& address);

// The DNS-rebinding guard: a name an attacker controls can resolve to a
// guarded address, so a domain rule (or the default) never opens one. Returns
// the allow rule that opens `address`:`port` explicitly: an address rule whose
// whole block lies inside the guarded block of `address` ("169.254.169.254",
// "127.0.0.0/8"). A broad rule such as 0.0.0.0/0 or [::/0] means "the
// internet" and does not count. nullptr when none does, or when `address` is
// not guarded (the guard does not apply).
const EgressRule* ExplicitGuardedAllow(const EgressPolicy& policy, const IpAddress& address, uint16_t port);

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
// Finally the rebinding guard (ExplicitGuardedAllow) may turn an allow into a
// deny; it never turns a deny into an allow.
TcpDecision DecideTcp(const EgressPolicy& policy, const std::optional<std::string>& name, std::string_view name_source,
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
bool FirstBytesCanMatter(const EgressPolicy& policy, const IpAddress& address, uint16_t port);

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

// Applies only the rebinding guard to an allow decision about `address`.
// Returns a deny with the guard's reason, or `decision` unchanged.
TcpDecision ApplyRebindingGuard(const EgressPolicy& policy, TcpDecision decision, const IpAddress& address,
                                uint16_t port);

}  // namespace ward::net
