// The DNS filter's pure half: which names the sandbox may resolve, ward's own
// answers (host.ward.internal), and the queries ward sends upstream itself.
// No syscalls; the egress proxy does the I/O.
//
// A name is resolved only if some connection to it could be allowed: hiding
// the rest (NXDOMAIN) makes a denied destination fail fast and at the name,
// and keeps DNS from being a channel to any name the policy does not mention
// (every allowed query still leaves the machine, so a name under an allowed
// wildcard can carry data to that zone's servers: the policy chose to trust
// that zone).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "net/dns_message.h"
#include "net/egress_rules.h"

namespace ward::net {

struct DnsNameDecision {
  bool allowed = false;
  const EgressRule* rule = nullptr;  // the deciding rule; nullptr for the default or a malformed name
  std::string reason;
};

// Whether the sandbox may resolve `name` (dotted text as DnsQuestion::name).
// Denied: a name that is not a host name (DNS allows bytes no rule can
// match); a name covered, for tcp or udp, by a deny rule for a domain or
// wildcard with every port (a deny for some ports still leaves others
// usable). Allowed then: the default is allow, or an allow rule for a domain
// or wildcard covers the name on any of its ports and protocols. Address
// rules never allow a name: they allow addresses, whatever their name.
DnsNameDecision DecideDnsName(const EgressPolicy& policy, std::string_view name);

// "A", "AAAA", "TXT" ...; "TYPE<n>" (RFC 3597) for types without a name here.
std::string DnsTypeName(uint16_t qtype);

// kHostLoopbackName, compared as DNS compares (case-insensitive, one
// trailing dot ignored).
bool IsHostLoopbackName(std::string_view name);

// ward's answer for kHostLoopbackName: A -> the IPv4 gateway, AAAA -> the
// IPv6 gateway (the proxy maps gateway:PORT to the host's loopback PORT),
// any other type of class IN -> NODATA. Authoritative, TTL 60, the question
// echoed in its original case, an OPT record if the query had one.
std::vector<uint8_t> BuildHostLoopbackAnswer(const DnsQuery& query);

// A recursive query (RD=1, no EDNS) for `name`, a host name as the proxy's
// sniffers return it ([a-z0-9_-] labels); nullopt if `name` has an empty or
// over-long label or is over-long.
std::optional<std::vector<uint8_t>> BuildDnsQuery(uint16_t id, std::string_view name, uint16_t qtype);

// The query types the filter forwards for an allowed name: A, NS, CNAME,
// SOA, PTR, MX, TXT, AAAA, SRV, NAPTR, DS, DNSKEY, SVCB, HTTPS and CAA: what
// resolvers, TLS clients (HTTPS/SVCB), mail and service discovery (MX,
// SRV, NAPTR), certificate tools (CAA, TXT) and validating stubs (DS,
// DNSKEY) ask. Others (ANY, NULL, AXFR/IXFR, experimental and private
// types) are answered REFUSED: each is another channel to the upstream
// resolver and to whoever serves the name, and no program needs them to
// reach a host.
bool IsForwardedDnsType(uint16_t qtype);
std::string ForwardedDnsTypeNames();  // "A, NS, CNAME, ..."

// The query the filter sends upstream for an allowed `query`, built afresh
// rather than forwarding the program's bytes: id 0 (ExchangeDns puts a
// random one in), RD=1 and no other flag, the one question with its name
// lower-cased (the same length as the program's), QTYPE and class IN, and
// an OPT record only if the program sent one: version 0, DO copied (so a
// validating stub still gets its signatures), a UDP size of
// max(512, min(the program's, kDnsEdnsUdpSize)), and no options (cookies,
// padding, client subnet or arbitrary payload never leave the machine).
std::vector<uint8_t> BuildForwardedQuery(const DnsQuery& query);

// Maps an upstream answer to the fresh query back to the program's: its id
// (ExchangeDns restores it), RD as the program set it, and the question's
// name in the program's original case (DNS 0x20 randomization), written
// over the lower-cased one at the same offset. `response` must answer the
// fresh query (ResponseMatchesQuery). Leaves a response without a question
// as it is.
void RestoreProgramQuestion(std::vector<uint8_t>& response, const DnsQuery& query);

}  // namespace ward::net
