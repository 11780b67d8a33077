#include "net/dns_filter.h"

#include <algorithm>

#include "net/sandbox_net.h"

namespace ward::net {
namespace {

constexpr uint32_t kHostLoopbackTtl = 60;

void Put16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}

void Put32(std::vector<uint8_t>& out, uint32_t v) {
  Put16(out, static_cast<uint16_t>(v >> 16));
  Put16(out, static_cast<uint16_t>(v));
}

Destination NameOnly(std::string_view name, uint16_t port, Protocol protocol) {
  Destination d;
  d.domain = std::string(name);
  d.port = port;
  d.protocol = protocol;
  return d;
}

bool IsNameRule(const EgressRule& r) {
  return r.kind == EgressRule::Kind::kDomain || r.kind == EgressRule::Kind::kWildcard;
}

// Whether an allow rule covers `name` on some port and protocol it names:
// asking Matches() with the rule's own first port and protocol keeps the
// name semantics (exact, wildcard, normalization) in one place.
bool AllowRuleCoversName(const EgressRule& r, std::string_view name) {
  uint16_t port = r.ports.empty() ? 1 : r.ports.front().lo;
  return r.Matches(NameOnly(name, port, r.protocol.value_or(Protocol::kTcp)));
}

bool DenyRuleCoversEveryPort(const EgressRule& r, std::string_view name) {
  if (!r.ports.empty()) return false;
  return r.MatchesAsDeny(NameOnly(name, 1, Protocol::kTcp)) || r.MatchesAsDeny(NameOnly(name, 1, Protocol::kUdp));
}

}  // namespace

DnsNameDecision DecideDnsName(const EgressPolicy& policy, std::string_view name) {
  // The same test of "is a host name" as every connection decision: an
  // allow-everything policy refuses exactly the malformed names. DNS text may
  // hold escaped bytes ("a\.b", "\000") that no rule can name.
  EgressPolicy validator;
  validator.default_allow = true;
  EgressDecision valid = validator.Decide(NameOnly(name, 53, Protocol::kUdp));
  if (!valid.allowed) return {false, nullptr, valid.reason};

  for (const EgressRule& r : policy.deny) {
    if (IsNameRule(r) && DenyRuleCoversEveryPort(r, name)) {
      return {false, &r, "denied by rule \"" + r.text + "\""};
    }
  }
  for (const EgressRule& r : policy.allow) {
    if (IsNameRule(r) && AllowRuleCoversName(r, name)) {
      return {true, &r, "allowed by rule \"" + r.text + "\""};
    }
  }
  if (policy.default_allow) return {true, nullptr, "no rule names \"" + std::string(name) + "\"; allowed by default"};
  return {false, nullptr, "no rule allows the name \"" + std::string(name) + "\""};
}

std::string DnsTypeName(uint16_t qtype) {
  switch (qtype) {
    case 1:
      return "A";
    case 2:
      return "NS";
    case 5:
      return "CNAME";
    case 6:
      return "SOA";
    case 12:
      return "PTR";
    case 15:
      return "MX";
    case 16:
      return "TXT";
    case 28:
      return "AAAA";
    case 33:
      return "SRV";
    case 35:
      return "NAPTR";
    case 43:
      return "DS";
    case 48:
      return "DNSKEY";
    case 64:
      return "SVCB";
    case 65:
      return "HTTPS";
    case 99:
      return "SPF";
    case 252:
      return "AXFR";
    case 255:
      return "ANY";
    case 257:
      return "CAA";
    default:
      return "TYPE" + std::to_string(qtype);
  }
}

bool IsHostLoopbackName(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::string_view want = kHostLoopbackName;
  if (name.size() != want.size()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != want[i]) return false;
  }
  return true;
}

std::vector<uint8_t> BuildHostLoopbackAnswer(const DnsQuery& query) {
  const DnsQuestion& q = query.question;
  bool a = q.qclass == kDnsClassIn && q.qtype == kDnsTypeA;
  bool aaaa = q.qclass == kDnsClassIn && q.qtype == kDnsTypeAaaa;
  std::vector<uint8_t> out;
  out.reserve(kDnsHeaderSize + q.wire_name.size() + 4 + 28 + 11);
  Put16(out, query.id);
  uint16_t flags = kDnsFlagQr | kDnsFlagAa | kDnsFlagRa | (query.flags & (kDnsFlagRd | kDnsFlagCd));
  Put16(out, flags);  // opcode QUERY, RCODE NOERROR
  Put16(out, 1);
  Put16(out, (a || aaaa) ? 1 : 0);
  Put16(out, 0);
  Put16(out, query.edns ? 1 : 0);
  out.insert(out.end(), q.wire_name.begin(), q.wire_name.end());
  Put16(out, q.qtype);
  Put16(out, q.qclass);
  if (a || aaaa) {
    Put16(out, 0xc000 | kDnsHeaderSize);  // the question's name
    Put16(out, q.qtype);
    Put16(out, kDnsClassIn);
    Put32(out, kHostLoopbackTtl);
    if (a) {
      Put16(out, 4);
      out.insert(out.end(), kGatewayAddr4, kGatewayAddr4 + 4);
    } else {
      Put16(out, 16);
      out.insert(out.end(), kGatewayAddr6, kGatewayAddr6 + 16);
    }
  }
  if (query.edns) {
    out.push_back(0);  // root owner
    Put16(out, kDnsTypeOpt);
    Put16(out, kDnsEdnsUdpSize);
    Put32(out, 0);  // extended RCODE 0, version 0, no flags
    Put16(out, 0);
  }
  return out;
}

std::optional<std::vector<uint8_t>> BuildDnsQuery(uint16_t id, std::string_view name, uint16_t qtype) {
  std::vector<uint8_t> out;
  Put16(out, id);
  Put16(out, kDnsFlagRd);
  Put16(out, 1);
  Put16(out, 0);
  Put16(out, 0);
  Put16(out, 0);
  size_t name_start = out.size();
  while (!name.empty()) {
    size_t dot = name.find('.');
    std::string_view label = name.substr(0, dot);
    if (label.empty() || label.size() > kDnsMaxLabelOctets) return std::nullopt;
    out.push_back(static_cast<uint8_t>(label.size()));
    out.insert(out.end(), label.begin(), label.end());
    name = dot == std::string_view::npos ? std::string_view() : name.substr(dot + 1);
  }
  out.push_back(0);
  if (out.size() - name_start > kDnsMaxNameOctets) return std::nullopt;
  Put16(out, qtype);
  Put16(out, kDnsClassIn);
  return out;
}

namespace {

constexpr uint16_t kForwardedTypes[] = {1, 2, 5, 6, 12, 15, 16, 28, 33, 35, 43, 48, 64, 65, 257};

char LowerAscii(uint8_t c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c); }

}  // namespace

bool IsForwardedDnsType(uint16_t qtype) {
  for (uint16_t t : kForwardedTypes) {
    if (t == qtype) return true;
  }
  return false;
}

std::string ForwardedDnsTypeNames() {
  std::string out;
  for (uint16_t t : kForwardedTypes) out += (out.empty() ? "" : ", ") + DnsTypeName(t);
  return out;
}

std::vector<uint8_t> BuildForwardedQuery(const DnsQuery& query) {
  std::vector<uint8_t> out;
  Put16(out, 0);
  Put16(out, kDnsFlagRd);
  Put16(out, 1);
  Put16(out, 0);
  Put16(out, 0);
  Put16(out, query.edns ? 1 : 0);
  // Length bytes are at most 63, below 'A': folding every byte folds only
  // the labels' letters.
  for (uint8_t c : query.question.wire_name) out.push_back(static_cast<uint8_t>(LowerAscii(c)));
  Put16(out, query.question.qtype);
  Put16(out, kDnsClassIn);
  if (query.edns) {
    out.push_back(0);  // root owner
    Put16(out, kDnsTypeOpt);
    uint16_t size = std::max<uint16_t>(512, std::min(query.edns->udp_payload_size, kDnsEdnsUdpSize));
    Put16(out, size);                                            // class: UDP payload size
    out.push_back(0);                                            // extended RCODE
    out.push_back(0);                                            // version 0
    Put16(out, static_cast<uint16_t>(query.edns->flags & 0x8000));  // DO only
    Put16(out, 0);                                               // no options
  }
  return out;
}

void RestoreProgramQuestion(std::vector<uint8_t>& response, const DnsQuery& query) {
  if (response.size() < kDnsHeaderSize) return;
  uint16_t flags = static_cast<uint16_t>((response[2] << 8 | response[3]) & ~kDnsFlagRd);
  flags |= query.flags & kDnsFlagRd;
  response[2] = static_cast<uint8_t>(flags >> 8);
  response[3] = static_cast<uint8_t>(flags);
  if ((response[4] << 8 | response[5]) != 1) return;
  const std::vector<uint8_t>& wire = query.question.wire_name;
  if (response.size() < kDnsHeaderSize + wire.size()) return;
  for (size_t i = 0; i < wire.size(); ++i) {
    if (LowerAscii(response[kDnsHeaderSize + i]) != LowerAscii(wire[i])) return;  // not the same name: leave it
  }
  std::copy(wire.begin(), wire.end(), response.begin() + kDnsHeaderSize);
}

}  // namespace ward::net
