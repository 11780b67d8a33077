#include "net/tcp_decision.h"

#include <sys/socket.h>

#include <algorithm>
#include <array>

#include "net/sniff.h"

namespace ward::net {
namespace {

IpNetwork Net(std::string_view address, int prefix_length) {
  return IpNetwork{IpAddress::Parse(address).value(), prefix_length};
}

// The fixed blocks, the more specific before the broader that hold them (a
// metadata address inside 100.64/10 keeps its own reason, and a rule for the
// broader block does not open it). `what` completes "X is ...".
struct FixedBlock {
  const char* address;
  int prefix_length;
  const char* what;
};
constexpr FixedBlock kFixedBlocks[] = {
    {"100.100.100.200", 32, "a cloud metadata address (Alibaba Cloud)"},
    {"168.63.129.16", 32, "a cloud platform address (Azure wireserver)"},
    {"192.0.0.192", 32, "a cloud metadata address (Oracle Cloud)"},
    {"255.255.255.255", 32, "the limited broadcast address"},
    {"0.0.0.0", 8, "an unspecified (\"this network\") address"},
    {"10.0.0.0", 8, "a private address (RFC 1918)"},
    {"100.64.0.0", 10, "a shared address (carrier-grade NAT, RFC 6598)"},
    {"127.0.0.0", 8, "a loopback address"},
    {"169.254.0.0", 16, "a link-local address"},
    {"172.16.0.0", 12, "a private address (RFC 1918)"},
    {"192.0.0.0", 24, "an IETF protocol assignment address (RFC 6890)"},
    {"192.168.0.0", 16, "a private address (RFC 1918)"},
    {"198.18.0.0", 15, "a benchmarking address (RFC 2544)"},
    {"224.0.0.0", 4, "a multicast address"},
    {"240.0.0.0", 4, "a reserved address (RFC 1112)"},
    {"::", 128, "the unspecified address"},
    {"::1", 128, "the loopback address"},
    {"fd00:ec2::", 32, "a cloud metadata address (AWS)"},
    {"fc00::", 7, "a unique local (private) address (RFC 4193)"},
    {"fec0::", 10, "a site-local (private, deprecated) address (RFC 3879)"},
    {"fe80::", 10, "a link-local address"},
    {"ff00::", 8, "a multicast address"},
    {"64:ff9b:1::", 48, "a local-use NAT64 address (RFC 8215)"},
};

// 64:ff9b::/96 (RFC 6052): a NAT64 translator connects to the IPv4 address
// in the last 32 bits, so each IPv4 block is guarded in this form too.
IpNetwork Nat64Form(const IpNetwork& v4) {
  IpNetwork n{*IpAddress::Parse("64:ff9b::"), 96 + v4.prefix_length};
  std::copy(v4.address.bytes.begin(), v4.address.bytes.begin() + 4, n.address.bytes.begin() + 12);
  return n;
}

// `n` as a rule writes it, quoted: "10.0.0.0/8", "[fc00::/7]".
std::string QuotedRule(const IpNetwork& n) {
  std::string out = n.address.is_v6() ? "\"[" : "\"";
  out.append(n.ToString());
  out.append(n.address.is_v6() ? "]\"" : "\"");
  return out;
}

TcpDecision From(const EgressDecision& d, std::string domain, std::string source) {
  return TcpDecision{d.allowed, d.rule, d.reason, std::move(domain), std::move(source)};
}

bool Contains(std::span<const std::string> names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

TcpDecision DecideUnguarded(const EgressPolicy& policy, const std::optional<std::string>& name,
                            std::string_view name_source, std::span<const std::string> bound_names,
                            const IpAddress& address, uint16_t port) {
  std::string source(name_source);
  if (name) {
    if (Contains(bound_names, *name)) return From(policy.Decide(TcpDestination(*name, address, port)), *name, source);
    // Not bound: the name is only a claim. A deny rule naming it still
    // denies (the program says where it wants to go, and that is refused);
    // an allow rule naming it must not allow (that would let any address
    // through by writing an allowed name into the ClientHello).
    for (const EgressRule& r : policy.deny) {
      if (r.MatchesAsDeny(TcpDestination(*name, address, port))) {
        return TcpDecision{false, &r, "denied by rule \"" + r.text + "\"", *name, source};
      }
    }
    EgressDecision by_address = policy.Decide(TcpDestination(std::nullopt, address, port));
    TcpDecision out = From(by_address, *name, source);
    if (!by_address.allowed && by_address.rule == nullptr) {
      out.reason = "the " + source + " names \"" + *name + "\" but ward's DNS did not resolve that name to " +
                   address.ToString() + ", and no address rule allows tcp to " + address.ToString() + ":" +
                   std::to_string(port);
    }
    return out;
  }
  // No name in the first bytes: go by every name ward's DNS bound to the
  // address. Any of them denied denies: the program may have asked for that
  // one, and nothing tells us it did not.
  for (const std::string& n : bound_names) {
    for (const EgressRule& r : policy.deny) {
      if (r.MatchesAsDeny(TcpDestination(n, address, port))) {
        return TcpDecision{false, &r,
                           "denied by rule \"" + r.text + "\" (ward's DNS resolved \"" + n + "\" to " +
                               address.ToString() + " and the first bytes named no host)",
                           n, "dns"};
      }
    }
  }
  for (const std::string& n : bound_names) {
    EgressDecision d = policy.Decide(TcpDestination(n, address, port));
    // Only a rule counts here: "allowed by default" is decided below by the
    // address alone, which gives the same answer with a truer reason.
    if (d.allowed && d.rule != nullptr) return From(d, n, "dns");
  }
  return From(policy.Decide(TcpDestination(std::nullopt, address, port)), "", "");
}

// `out` naming `host` as learned from `source`; an empty host or a literal
// address is no name (the destination address decides).
FirstBytes Named(FirstBytes out, std::string host, const char* source) {
  if (host.empty() || IpAddress::Parse(host)) {
    out.status = FirstBytes::Status::kNoName;
  } else {
    out.status = FirstBytes::Status::kName;
    out.name = std::move(host);
    out.source = source;
  }
  return out;
}

FirstBytes FromHttpHead(HttpRequestHead http) {
  FirstBytes out;
  auto name = [&out](std::string host, const char* source) { return Named(std::move(out), std::move(host), source); };
  switch (http.status) {
    case HttpSniffStatus::kNeedMore:
      return out;
    case HttpSniffStatus::kNotHttp:
      out.status = FirstBytes::Status::kNoName;
      return out;
    case HttpSniffStatus::kRequest:
      // An upgrade request or a CONNECT is held to its answer by the relay:
      // only a 101 (a 2xx) lets what follows pass unjudged.
      out.http = FramingOf(http);
      return name(http.target_host.empty() ? std::move(http.host) : std::move(http.target_host), "http-host");
    case HttpSniffStatus::kAmbiguousHost:
      out.status = FirstBytes::Status::kRefuse;
      out.reason =
          "ambiguous HTTP request: the target names \"" + http.target_host + "\" but Host names \"" + http.host + "\"";
      return out;
    case HttpSniffStatus::kMalformed:
      out.status = FirstBytes::Status::kRefuse;
      out.reason = "malformed HTTP request head (" + std::string(HttpErrorName(http.error)) + ")";
      return out;
  }
  return out;
}

}  // namespace

Destination TcpDestination(std::optional<std::string> domain, std::optional<IpAddress> address, uint16_t port) {
  Destination d;
  d.domain = std::move(domain);
  d.address = address;
  d.port = port;
  d.protocol = Protocol::kTcp;
  return d;
}

RebindingGuard::RebindingGuard() : RebindingGuard(std::vector<HostAddress>{}) {}

RebindingGuard::RebindingGuard(const std::vector<HostAddress>& host) {
  std::vector<Block> nat64;
  auto add = [&](IpNetwork n, std::string what, bool is_host) {
    if (n.address.is_v4()) {
      nat64.push_back({Nat64Form(n), what + " in NAT64 form (64:ff9b::/96 + " + n.ToString() + ")", is_host});
    }
    blocks_.push_back({n, std::move(what), is_host});
  };
  for (const HostAddress& h : host) {
    IpAddress a = h.address.Unmapped();
    bool fixed_stricter = a.is_v4() ? a.bytes[0] == 127 || a.bytes[0] == 0
                                    : a == *IpAddress::Parse("::1") || a == *IpAddress::Parse("::");
    if (fixed_stricter) continue;  // never opened by any rule (ApplyRebindingGuard)
    add(IpNetwork{a, a.is_v4() ? 32 : 128},
        "one of this host's own addresses (on " + (h.interface.empty() ? std::string("an interface") : h.interface) +
            ")",
        true);
  }
  for (const FixedBlock& f : kFixedBlocks) add(Net(f.address, f.prefix_length), f.what, false);
  blocks_.insert(blocks_.end(), nat64.begin(), nat64.end());
}

const RebindingGuard::Block* RebindingGuard::BlockOf(const IpAddress& address) const {
  for (const Block& b : blocks_) {
    if (b.network.Contains(address)) return &b;
  }
  return nullptr;
}

bool IsGuardedAddress(const IpAddress& address) {
  static const RebindingGuard fixed;
  return fixed.BlockOf(address) != nullptr;
}

const EgressRule* ExplicitGuardedAllow(const RebindingGuard& guard, const EgressPolicy& policy,
                                       const IpAddress& address, uint16_t port) {
  const RebindingGuard::Block* block = guard.BlockOf(address);
  if (block == nullptr) return nullptr;
  for (const EgressRule& r : policy.allow) {
    if (r.kind != EgressRule::Kind::kNetwork) continue;
    if (r.network.address.family != block->network.address.family) continue;
    if (r.network.prefix_length < block->network.prefix_length) continue;
    if (!block->network.Contains(r.network.address)) continue;
    if (r.Matches(TcpDestination(std::nullopt, address, port))) return &r;
  }
  return nullptr;
}

TcpDecision ApplyRebindingGuard(const RebindingGuard& guard, const EgressPolicy& policy, TcpDecision decision,
                                const IpAddress& address, uint16_t port) {
  if (!decision.allowed) return decision;
  const RebindingGuard::Block* block = guard.BlockOf(address);
  if (block == nullptr) return decision;
  IpAddress a = address.Unmapped();
  bool loopback = a.is_v4() ? a.bytes[0] == 127 : a == *IpAddress::Parse("::1");
  // A connect() to an unspecified address (0.0.0.0/8, ::) reaches the
  // connecting machine itself: from ward's namespace, the host's loopback.
  bool unspecified = a.is_v4() ? a.bytes[0] == 0 : a == *IpAddress::Parse("::");
  if (loopback || unspecified) {
    // Inside the sandbox a loopback address is the sandbox's own; no rule
    // makes the proxy connect to the host's (only host.ward.internal does).
    decision.allowed = false;
    decision.rule = nullptr;
    decision.reason = address.ToString() + (loopback ? " is a loopback address" : " is an unspecified address") +
                      ": the host's loopback is reached only as host.ward.internal:PORT, with a rule naming it";
    return decision;
  }
  if (const EgressRule* r = ExplicitGuardedAllow(guard, policy, address, port)) {
    // Report the rule that really opened it: the address rule.
    decision.rule = r;
    decision.reason = "allowed by rule \"" + r->text + "\"";
    return decision;
  }
  // Which block, what it is, what allowed it, and the rule that would open it.
  IpAddress plain = address.Unmapped();
  std::string reason = address.ToString();
  reason.append(" is ").append(block->what);
  if (!block->host) reason.append(", in ").append(block->network.ToString());
  reason.append(": DNS rebinding guard; ");
  if (decision.rule != nullptr) {
    reason.append("rule \"").append(decision.rule->text).append("\"");
  } else {
    reason.append("the default");
  }
  reason.append(" does not open it, only an address rule ");
  if (block->host) {
    reason.append("naming exactly it does (").append(QuotedRule(block->network)).append(")");
  } else {
    reason.append("inside that block does (").append(QuotedRule(block->network)).append(" or ");
    reason.append(QuotedRule(IpNetwork{plain, plain.is_v4() ? 32 : 128})).append(")");
  }
  decision.allowed = false;
  decision.rule = nullptr;
  decision.reason = std::move(reason);
  return decision;
}

FirstBytes SniffFirstBytes(std::span<const uint8_t> data) {
  FirstBytes out;
  auto name = [&out](std::string host, const char* source) { return Named(std::move(out), std::move(host), source); };
  TlsClientHello tls = ParseClientHelloSni(data);
  switch (tls.status) {
    case TlsSniffStatus::kNeedMore:
      return out;
    case TlsSniffStatus::kSni:
    case TlsSniffStatus::kEncryptedClientHello:
      return name(std::move(tls.host), "sni");
    case TlsSniffStatus::kNoSni:
      out.status = FirstBytes::Status::kNoName;
      return out;
    case TlsSniffStatus::kMalformed:
      out.status = FirstBytes::Status::kRefuse;
      out.reason = "malformed TLS ClientHello (" + std::string(TlsErrorName(tls.error)) + ")";
      return out;
    case TlsSniffStatus::kNotTls:
      break;
  }
  // Not TLS: HTTP/1 if any lenient server could read a request line in
  // them (LenientRequestLine: "GET\t/", " GET", "get /", "X / HTTP/1.1"),
  // and then only a strictly valid request counts; else no name.
  std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
  size_t skipped = 0;
  switch (LenientRequestLine(text, LenientReader::kFirstBytes, &skipped)) {
    case HttpSniffStatus::kNeedMore:
      return out;
    case HttpSniffStatus::kNotHttp:
      out.status = FirstBytes::Status::kNoName;
      return out;
    default:
      break;
  }
  if (skipped > 0) {
    out.status = FirstBytes::Status::kRefuse;
    out.reason =
        "the first bytes begin with whitespace or control characters before an HTTP request line (a lenient "
        "server would read its Host; ward does not guess)";
    return out;
  }
  HttpRequestHead head = ParseHttpRequestHead(data);
  if (head.status == HttpSniffStatus::kNotHttp) {
    // The lenient reading found a request line the strict one calls no
    // request: refused, never judged as no name.
    out.status = FirstBytes::Status::kRefuse;
    out.reason = "malformed HTTP request head (request_line)";
    return out;
  }
  return FromHttpHead(std::move(head));
}

FirstBytes SniffNextRequest(std::span<const uint8_t> data) {
  // Empty lines between requests (an old client's CRLF after a body) are
  // skipped by every server (RFC 9112 §2.2), so they are skipped here too
  // and forwarded with the request; nothing else is.
  size_t skip = 0;
  while (skip < data.size() && skip < 64) {
    if (data[skip] == '\n') {
      ++skip;
    } else if (data[skip] == '\r' && skip + 1 < data.size() && data[skip + 1] == '\n') {
      skip += 2;
    } else {
      break;
    }
  }
  if (skip == data.size() || (data.size() - skip == 1 && data[skip] == '\r')) {
    FirstBytes out;
    if (skip >= 64) {
      out.status = FirstBytes::Status::kRefuse;
      out.reason = "empty lines instead of a request after an HTTP request";
    }
    return out;
  }
  // The strict grammar begins with a method token: anything else is
  // refused at once, not waited on.
  auto first = static_cast<unsigned char>(data[skip]);
  if (first <= 0x20 || first >= 0x7f) {
    FirstBytes out;
    out.status = FirstBytes::Status::kRefuse;
    out.reason = "the bytes after an HTTP request are not an HTTP request (the server would read them as the next one)";
    return out;
  }
  HttpRequestHead http = ParseHttpRequestHead(data.subspan(skip));
  if (http.status == HttpSniffStatus::kRequest) http.head_length += skip;
  if (http.status == HttpSniffStatus::kNotHttp) {
    FirstBytes out;
    out.status = FirstBytes::Status::kRefuse;
    out.reason = "the bytes after an HTTP request are not an HTTP request (the server would read them as the next one)";
    return out;
  }
  return FromHttpHead(std::move(http));
}

bool FirstBytesCanMatter(const RebindingGuard& guard, const EgressPolicy& policy, const IpAddress& address,
                         uint16_t port) {
  TcpDecision by_address = DecideTcp(guard, policy, std::nullopt, "", {}, address, port);
  if (!by_address.allowed) return true;
  for (const EgressRule& r : policy.deny) {
    if (r.kind == EgressRule::Kind::kNetwork) continue;  // decided by the address already
    std::string name = r.kind == EgressRule::Kind::kWildcard ? "a." + r.domain : r.domain;
    if (r.MatchesAsDeny(TcpDestination(name, std::nullopt, port))) return true;
  }
  return false;
}

TcpDecision DecideTcp(const RebindingGuard& guard, const EgressPolicy& policy, const std::optional<std::string>& name,
                      std::string_view name_source, std::span<const std::string> bound_names, const IpAddress& address,
                      uint16_t port) {
  return ApplyRebindingGuard(guard, policy, DecideUnguarded(policy, name, name_source, bound_names, address, port), address,
                             port);
}

}  // namespace ward::net
