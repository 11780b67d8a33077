// libFuzzer target for egress rules. Any byte string must be rejected with a
// reason or parsed into a rule whose canonical text parses back to the same
// rule; a parsed rule must match what it names and decide consistently with
// Matches(); any byte string as a destination domain or address must be
// handled without a crash.
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "net/egress_rules.h"

namespace {

using ward::Result;
using ward::net::Destination;
using ward::net::EgressDecision;
using ward::net::EgressPolicy;
using ward::net::EgressRule;
using ward::net::IpAddress;
using ward::net::Protocol;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

Destination Make(std::optional<std::string> domain, std::string_view address, uint16_t port, Protocol p) {
  Destination d;
  d.domain = std::move(domain);
  if (!address.empty()) d.address = IpAddress::Parse(address);
  d.port = port;
  d.protocol = p;
  return d;
}

const std::vector<Destination>& FixedDestinations() {
  static const std::vector<Destination> kAll = {
      Make("pypi.org", "", 443, Protocol::kTcp),
      Make("files.pythonhosted.org", "151.101.0.223", 443, Protocol::kTcp),
      Make("evil.pypi.org.attacker.com", "", 443, Protocol::kUdp),
      Make("EXAMPLE.com.", "", 80, Protocol::kTcp),
      Make("localhost", "127.0.0.1", 5432, Protocol::kTcp),
      Make(std::nullopt, "1.2.3.4", 53, Protocol::kUdp),
      Make(std::nullopt, "::ffff:1.2.3.4", 53, Protocol::kUdp),
      Make(std::nullopt, "2001:db8::1", 22, Protocol::kTcp),
      Make(std::nullopt, "10.20.0.1", 5432, Protocol::kTcp),
      Make(std::nullopt, "::", 0, Protocol::kTcp),
      Make("a..b", "", 1, Protocol::kTcp),
      Make(std::nullopt, "", 65535, Protocol::kTcp),
  };
  return kAll;
}

// For a well-formed destination (one that a rule-less default-allow policy
// allows), an allow list of just `r` allows exactly what Matches() says and a
// deny list of just `r` denies exactly what MatchesAsDeny() says. A malformed
// one is denied by both, by no rule.
void CheckDecisions(const EgressRule& r, const Destination& d) {
  EgressPolicy open;
  open.default_allow = true;
  EgressPolicy allow;
  allow.allow.push_back(r);
  EgressPolicy deny;
  deny.default_allow = true;
  deny.deny.push_back(r);
  EgressDecision a = allow.Decide(d);
  EgressDecision b = deny.Decide(d);
  Check(!a.reason.empty() && !b.reason.empty());
  if (open.Decide(d).allowed) {
    Check(a.allowed == r.Matches(d) && a.rule == (a.allowed ? &allow.allow[0] : nullptr));
    Check(b.allowed == !r.MatchesAsDeny(d) && b.rule == (b.allowed ? nullptr : &deny.deny[0]));
  } else {
    Check(!a.allowed && !b.allowed && a.rule == nullptr && b.rule == nullptr);
  }
}

std::string Cat(std::string_view a, std::string_view b) {
  std::string out(a);
  out += b;
  return out;
}

uint16_t SomePort(const EgressRule& r) { return r.ports.empty() ? 443 : r.ports.back().hi; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);

  // The bytes as an address: a parsed address survives its own text.
  if (std::optional<IpAddress> ip = IpAddress::Parse(text)) {
    Check(ip->family == AF_INET || ip->family == AF_INET6);
    std::optional<IpAddress> again = IpAddress::Parse(ip->ToString());
    Check(again.has_value() && *again == *ip);
  }

  // The bytes as a destination domain (from a hostile program).
  {
    EgressPolicy p;
    p.default_allow = true;
    Result<EgressRule> w = EgressRule::Parse("*.pypi.org");
    Check(w.has_value());
    p.deny.push_back(*w);
    Destination d = Make(std::string(text), "1.2.3.4", 443, Protocol::kTcp);
    EgressDecision dec = p.Decide(d);
    for (char c : dec.reason) Check(c >= 0x20 && c < 0x7f);
    // Nothing ending in ".pypi.org" (after case folding and one trailing dot)
    // gets through.
    std::string lower;
    for (char c : text) lower += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    if (!lower.empty() && lower.back() == '.') lower.pop_back();
    if (lower.size() > 9 && lower.compare(lower.size() - 9, 9, ".pypi.org") == 0) Check(!dec.allowed);
  }

  Result<EgressRule> r = EgressRule::Parse(text);
  if (!r) {
    const std::string& m = r.error().message;
    Check(m.rfind("invalid egress rule \"", 0) == 0 && m.size() < 1000);
    for (char c : m) Check(c >= 0x20 && c < 0x7f);
    return 0;
  }
  Check(r->text == text);

  // Canonical text is a fixed point and describes the same rule.
  std::string canonical = r->Canonical();
  Result<EgressRule> again = EgressRule::Parse(canonical);
  Check(again.has_value());
  Check(again->Canonical() == canonical);
  Check(again->protocol == r->protocol && again->kind == r->kind && again->domain == r->domain &&
        again->network == r->network && again->ports == r->ports);

  // Ports are sorted, disjoint and not adjacent.
  for (size_t i = 0; i < r->ports.size(); ++i) {
    Check(r->ports[i].lo >= 1 && r->ports[i].lo <= r->ports[i].hi);
    if (i > 0) Check(static_cast<uint32_t>(r->ports[i - 1].hi) + 1 < r->ports[i].lo);
  }

  // The rule matches what it names, and a wildcard not its base.
  Destination own;
  own.port = SomePort(*r);
  own.protocol = r->protocol.value_or(Protocol::kTcp);
  switch (r->kind) {
    case EgressRule::Kind::kDomain:
      own.domain = r->domain;
      Check(r->Matches(own));
      break;
    case EgressRule::Kind::kWildcard: {
      own.domain = r->domain;
      Check(!r->Matches(own));
      own.domain = Cat("x.", r->domain);
      Check(r->Matches(own));
      own.domain = Cat("x", r->domain);
      Check(!r->Matches(own));
      own.domain = Cat("x.", r->domain);
      break;
    }
    case EgressRule::Kind::kNetwork:
      Check(r->domain.empty() && !r->network.address.IsV4Mapped());
      own.address = r->network.address;
      Check(r->Matches(own));
      break;
  }
  CheckDecisions(*r, own);
  own.protocol = own.protocol == Protocol::kTcp ? Protocol::kUdp : Protocol::kTcp;
  CheckDecisions(*r, own);
  for (const Destination& d : FixedDestinations()) CheckDecisions(*r, d);
  return 0;
}
