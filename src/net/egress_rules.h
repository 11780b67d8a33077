// Egress rules: the strings of a policy's "network.egress.allow" / "deny"
// lists, parsed into matchers, and the decision for one outbound connection.
//
// Pure code: no syscalls, no DNS. The syntax and the semantics are documented
// in docs/network.md; the summary:
//
//   rule  = [ ("tcp" | "udp") "://" ] host [ ":" ports ]
//   host  = domain | "*." domain | IPv4 [ "/" len ] | IPv6 [ "/" len ]
//           | "[" IPv6 [ "/" len ] "]"          (brackets required before ":ports")
//   ports = item { "," item },  item = port | port "-" port,  port = 1..65535
//
// A domain rule matches a destination only through the destination's domain,
// an address rule only through its address. Deny rules beat allow rules.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ward/result.h"

namespace ward::net {

enum class Protocol : uint8_t { kTcp, kUdp };

// "tcp" or "udp".
const char* ProtocolName(Protocol p);

// An IPv4 or IPv6 address. `family` is AF_INET or AF_INET6; an IPv4 address
// is held in the first 4 bytes (the other 12 are ignored by ==, Unmapped()
// and every matcher).
struct IpAddress {
  int family = 0;
  std::array<uint8_t, 16> bytes{};

  // Strict parse of one address, no brackets, prefix, port or zone:
  // IPv4 only as four decimal numbers 0..255 without leading zeros
  // ("010.0.0.1", "127.1" and "0x7f.0.0.1" are refused: other parsers read
  // them as other addresses); IPv6 in any RFC 4291 text form.
  static std::optional<IpAddress> Parse(std::string_view text);
  static IpAddress V4(uint8_t a, uint8_t b, uint8_t c, uint8_t d);

  bool is_v4() const;
  bool is_v6() const;
  // ::ffff:a.b.c.d (RFC 4291 2.5.5.2): an IPv4 peer reached through an
  // AF_INET6 socket.
  bool IsV4Mapped() const;
  // The IPv4 address behind an IPv4-mapped IPv6 address; otherwise *this.
  // Every matcher compares this form, so "::ffff:1.2.3.4" is 1.2.3.4.
  IpAddress Unmapped() const;

  // Dotted quad; IPv6 in the RFC 5952 form ("2001:db8::1", "::ffff:1.2.3.4").
  std::string ToString() const;

  friend bool operator==(const IpAddress& a, const IpAddress& b);
};

// An address block: `address` with its host bits clear, and a prefix length
// (0..32 for IPv4, 0..128 for IPv6). A single address has the full length.
struct IpNetwork {
  IpAddress address;
  int prefix_length = 0;

  // Whether `a` (compared in its Unmapped() form) lies in this block. An IPv4
  // block never contains an IPv6 address, nor the reverse.
  bool Contains(const IpAddress& a) const;
  // "10.0.0.0/8", "1.2.3.4" (full length: no suffix), "2001:db8::/32".
  std::string ToString() const;

  friend bool operator==(const IpNetwork& a, const IpNetwork& b) = default;
};

// Inclusive, 1 <= lo <= hi <= 65535.
struct PortRange {
  uint16_t lo = 1;
  uint16_t hi = 65535;
  friend bool operator==(const PortRange& a, const PortRange& b) = default;
};

// One outbound connection attempt, as the enforcement layer learned it.
struct Destination {
  // The name the program asked for (from ward's DNS resolver, the TLS SNI, the
  // HTTP Host or CONNECT line), without port; nullopt when unknown. Compared
  // case-insensitively, ignoring one trailing dot. A name that is present but
  // not a host name (empty, a byte outside [A-Za-z0-9_-.], an empty or
  // over-long label) makes Decide() deny the connection.
  //
  // Decide() trusts that the caller has bound this name to `address` (e.g. the
  // address came from ward's own resolver for this name): a domain rule
  // allows the connection whatever the address.
  std::optional<std::string> domain;
  std::optional<IpAddress> address;
  uint16_t port = 0;
  Protocol protocol = Protocol::kTcp;
};

struct EgressRule {
  enum class Kind : uint8_t {
    kDomain,    // exactly `domain`
    kWildcard,  // any name strictly below `domain`, at any depth
    kNetwork,   // any address in `network`
  };

  std::string text;  // as written in the policy
  // As written; nullopt when the rule names no protocol, and then it covers
  // tcp in an allow list but tcp and udp in a deny list (see Matches()).
  std::optional<Protocol> protocol;
  Kind kind = Kind::kDomain;
  std::string domain;            // kDomain, kWildcard: lower-case, no trailing dot
  IpNetwork network;             // kNetwork; never inside ::ffff:0:0/96
  std::vector<PortRange> ports;  // sorted, disjoint, not adjacent; empty: every port

  // Parses one rule. The error (Error::Code::kPolicy) quotes the rule and says
  // what is wrong with it.
  static Result<EgressRule> Parse(std::string_view text);

  // The normalized text: lower-case, trailing dot and redundant prefix length
  // dropped, IPv6 in brackets, ports sorted and merged. Parse(Canonical())
  // yields the same rule but for `text`.
  std::string Canonical() const;

  // Whether this rule, in an allow list, covers `d`: a rule without a
  // protocol covers tcp only.
  bool Matches(const Destination& d) const;
  // Whether this rule, in a deny list, covers `d`: a rule without a protocol
  // covers tcp and udp, so `deny: ["evil.example"]` also stops QUIC.
  bool MatchesAsDeny(const Destination& d) const;
};

struct EgressDecision {
  bool allowed = false;
  // The rule that decided (an element of the policy's allow or deny list,
  // valid while the policy is alive and unchanged); nullptr when the default
  // or a malformed destination decided.
  const EgressRule* rule = nullptr;
  // For people and agents: 'denied by rule "evil.pypi.org"',
  // 'no rule allows udp to 1.2.3.4:53'.
  std::string reason;
};

class EgressPolicy {
 public:
  bool default_allow = false;
  std::vector<EgressRule> allow;
  std::vector<EgressRule> deny;

  // The first deny rule that covers `d` denies it; else the first allow rule
  // that covers it allows it; else the default decides. A destination with a
  // malformed domain, or with neither a domain nor an address, is denied
  // whatever the rules and the default say.
  EgressDecision Decide(const Destination& d) const;
};

}  // namespace ward::net
