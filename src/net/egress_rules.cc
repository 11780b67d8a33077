// Egress rules: parsing and matching. See egress_rules.h and docs/network.md.
//
// Every rule string comes from a policy file and every Destination field from
// a sandboxed program (DNS question, TLS SNI, HTTP Host), so both are treated
// as untrusted: the parser accepts one spelling per meaning and refuses
// anything that another parser could read differently (octal or short IPv4,
// IPv6 zones, URLs, IPv4-mapped IPv6 rules); the matcher denies destinations
// it cannot interpret instead of letting them slip past a deny rule.
#include "net/egress_rules.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>

namespace ward::net {

namespace {

constexpr size_t kMaxRuleLength = 1024;
constexpr size_t kMaxNameLength = 253;  // RFC 1035 2.3.4, without the trailing dot
constexpr size_t kMaxLabelLength = 63;
constexpr size_t kMaxQuoted = 200;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLowerAlnum(char c) { return IsDigit(c) || (c >= 'a' && c <= 'z'); }
char ToLowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ToLowerAscii(c);
  return out;
}

bool AllDigits(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), IsDigit); }

// Quotes untrusted text for a message: printable ASCII as is, '"' and '\'
// escaped, any other byte as \xNN, and very long text cut, so that a reason
// can always be printed or logged safely.
std::string Quote(std::string_view s, size_t max = kMaxQuoted) {
  std::string out = "\"";
  size_t n = std::min(s.size(), max);
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  out += '"';
  if (n < s.size()) out += "...";
  return out;
}

std::string Str(std::string_view s) { return std::string(s); }

// A decimal number without sign or leading zeros ("0" itself is fine).
enum class NumberStatus { kOk, kEmpty, kNotNumber, kLeadingZero, kTooLarge };
NumberStatus ParseDecimal(std::string_view s, uint32_t max, uint32_t* out) {
  if (s.empty()) return NumberStatus::kEmpty;
  if (!AllDigits(s)) return NumberStatus::kNotNumber;
  if (s.size() > 1 && s[0] == '0') return NumberStatus::kLeadingZero;
  if (s.size() > 9) return NumberStatus::kTooLarge;
  uint32_t v = 0;
  for (char c : s) v = v * 10 + static_cast<uint32_t>(c - '0');
  if (v > max) return NumberStatus::kTooLarge;
  *out = v;
  return NumberStatus::kOk;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

// Strict dotted quad. On failure *why (if given) says what is wrong.
std::optional<IpAddress> ParseV4(std::string_view s, std::string* why) {
  std::vector<std::string_view> parts = Split(s, '.');
  if (parts.size() != 4) {
    if (why) *why = Quote(s) + " is not an IPv4 address: it needs exactly four numbers 0-255 (\"10.0.0.1\")";
    return std::nullopt;
  }
  IpAddress a;
  a.family = AF_INET;
  for (size_t i = 0; i < 4; ++i) {
    uint32_t v = 0;
    switch (ParseDecimal(parts[i], 255, &v)) {
      case NumberStatus::kOk:
        break;
      case NumberStatus::kLeadingZero:
        if (why) {
          *why = "leading zero in " + Quote(parts[i]) + " of IPv4 address " + Quote(s) +
                 " (some parsers read it as octal): write it without leading zeros";
        }
        return std::nullopt;
      case NumberStatus::kTooLarge:
        if (why) *why = "number " + Quote(parts[i]) + " in IPv4 address " + Quote(s) + " is out of range (0-255)";
        return std::nullopt;
      case NumberStatus::kEmpty:
      case NumberStatus::kNotNumber:
        if (why) *why = Quote(s) + " is not an IPv4 address: it needs exactly four numbers 0-255 (\"10.0.0.1\")";
        return std::nullopt;
    }
    a.bytes[i] = static_cast<uint8_t>(v);
  }
  return a;
}

std::optional<IpAddress> ParseV6(std::string_view s) {
  // inet_pton needs a NUL-terminated string: refuse anything that is not
  // made of IPv6 characters first, so an embedded NUL cannot cut it short.
  if (s.empty() || s.size() > 45) return std::nullopt;  // INET6_ADDRSTRLEN - 1
  for (char c : s) {
    bool ok = IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
    if (!ok) return std::nullopt;
  }
  char buf[64];
  std::copy(s.begin(), s.end(), buf);
  buf[s.size()] = '\0';
  IpAddress a;
  a.family = AF_INET6;
  if (inet_pton(AF_INET6, buf, a.bytes.data()) != 1) return std::nullopt;
  return a;
}

int MaxPrefix(const IpAddress& a) { return a.is_v4() ? 32 : 128; }

// `a` with every bit after the first `len` cleared.
IpAddress Masked(IpAddress a, int len) {
  int total = a.is_v4() ? 4 : 16;
  for (int i = 0; i < 16; ++i) {
    int keep = std::clamp(len - i * 8, 0, 8);
    if (i >= total) keep = 0;
    a.bytes[i] = static_cast<uint8_t>(a.bytes[i] & static_cast<uint8_t>(0xff00 >> keep));
  }
  return a;
}

bool InMappedRange(const IpAddress& a) {
  if (!a.is_v6()) return false;
  for (int i = 0; i < 10; ++i) {
    if (a.bytes[i] != 0) return false;
  }
  return a.bytes[10] == 0xff && a.bytes[11] == 0xff;
}

// A destination's name, lower-cased and without its trailing dot, or nullopt
// when it is not a host name. Laxer than rule names (it admits "_" and
// single labels, which real names carry) but never admits a byte that could
// make two different names compare equal or a suffix test lie.
std::optional<std::string> NormalizeDestinationDomain(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > kMaxNameLength) return std::nullopt;
  std::string out = ToLower(name);
  size_t label = 0;
  for (char c : out) {
    if (c == '.') {
      if (label == 0) return std::nullopt;
      label = 0;
      continue;
    }
    if (!IsLowerAlnum(c) && c != '-' && c != '_') return std::nullopt;
    if (++label > kMaxLabelLength) return std::nullopt;
  }
  if (label == 0) return std::nullopt;
  return out;
}

// Checks a rule's domain (already lower-case, trailing dot removed). `wildcard`:
// the base of "*.base", which may be a single label ("*.test").
bool CheckRuleDomain(std::string_view name, bool wildcard, std::string* why) {
  if (name.empty()) {
    *why = wildcard ? "nothing follows \"*.\"" : "the host is empty";
    return false;
  }
  size_t limit = wildcard ? kMaxNameLength - 2 : kMaxNameLength;
  if (name.size() > limit) {
    *why = "the domain is longer than 253 characters";
    return false;
  }
  if (name.back() == '.') {
    *why = "domain " + Quote(name) + " ends with more than one \".\"";
    return false;
  }
  std::vector<std::string_view> labels = Split(name, '.');
  for (std::string_view label : labels) {
    if (label.empty()) {
      *why = "empty label in domain " + Quote(name);
      return false;
    }
    if (label.size() > kMaxLabelLength) {
      *why = "label " + Quote(label, 20) + " of domain is longer than 63 characters";
      return false;
    }
    for (char c : label) {
      if (IsLowerAlnum(c) || c == '-') continue;
      if (c == '_') {
        *why = "\"_\" in domain " + Quote(name) + ": a host name has only letters, digits and \"-\"";
      } else {
        *why = "character " + Quote(std::string_view(&c, 1)) + " in domain " + Quote(name) +
               ": a domain has only letters, digits, \"-\" and \".\"";
      }
      return false;
    }
    if (label.front() == '-' || label.back() == '-') {
      *why = "label " + Quote(label) + " of domain " + Quote(name) + " starts or ends with \"-\"";
      return false;
    }
  }
  if (AllDigits(labels.back())) {
    *why = Quote(name) + " is neither an IPv4 address (four numbers 0-255) nor a domain (its last label is numeric)";
    return false;
  }
  if (!wildcard && labels.size() < 2) {
    *why = "single-label name " + Quote(name) +
           " is not accepted: a domain rule needs at least two labels (\"example.com\"); ward applies no DNS "
           "search domains";
    return false;
  }
  return true;
}

// The reason a number in a rule was refused: `what` names it ("port
// \"x\""), `empty` is said when there is no text at all, `range` is the
// accepted range. Empty if `st` is kOk.
std::string NumberProblem(NumberStatus st, std::string_view s, const std::string& what, const std::string& empty,
                          const std::string& range) {
  switch (st) {
    case NumberStatus::kOk: return "";
    case NumberStatus::kEmpty: return empty;
    case NumberStatus::kNotNumber: return what + " " + Quote(s) + " is not a number";
    case NumberStatus::kLeadingZero: return what + " " + Quote(s) + " has a leading zero";
    case NumberStatus::kTooLarge: return what + " " + Quote(s) + " is out of range " + range;
  }
  return what + " " + Quote(s) + " is invalid";
}

// Parses "/LEN" text (without the slash) for `a`.
bool ParsePrefixLength(std::string_view s, const IpAddress& a, int* len, std::string* why) {
  uint32_t v = 0;
  const std::string range = a.is_v4() ? "for IPv4 (0-32)" : "for IPv6 (0-128)";
  NumberStatus st = ParseDecimal(s, static_cast<uint32_t>(MaxPrefix(a)), &v);
  if (st != NumberStatus::kOk) {
    *why = NumberProblem(st, s, "prefix length", "empty prefix length after \"/\"", range);
    return false;
  }
  *len = static_cast<int>(v);
  return true;
}

// Builds the network of an address rule from its address and prefix texts.
bool MakeNetwork(const IpAddress& a, std::optional<std::string_view> prefix, IpNetwork* out, std::string* why) {
  int len = MaxPrefix(a);
  if (prefix && !ParsePrefixLength(*prefix, a, &len, why)) return false;
  IpNetwork n{Masked(a, len), len};
  if (!(n.address == a)) {
    std::string written = a.ToString();
    written += '/';
    written += std::to_string(len);
    *why = "host bits are set in " + Quote(written) + ": the network is " + Quote(n.ToString());
    return false;
  }
  // A rule inside ::ffff:0:0/96 would never match: mapped destinations are
  // matched as IPv4. Say how to write what was meant instead.
  if (len >= 96 && InMappedRange(n.address)) {
    IpNetwork v4{n.address.Unmapped(), len - 96};
    *why = Quote(n.ToString()) + " is IPv4-mapped IPv6: write the IPv4 form " + Quote(v4.ToString()) +
           " (ward matches ::ffff:a.b.c.d destinations as IPv4)";
    return false;
  }
  *out = n;
  return true;
}

bool ParsePort(std::string_view s, uint16_t* out, std::string* why) {
  uint32_t v = 0;
  NumberStatus st = ParseDecimal(s, 65535, &v);
  if (st == NumberStatus::kOk && v == 0) {
    *why = "port 0 is out of range (1-65535)";
    return false;
  }
  if (st != NumberStatus::kOk) {
    *why = NumberProblem(st, s, "port", "empty port", "(1-65535)");
    return false;
  }
  *out = static_cast<uint16_t>(v);
  return true;
}

bool ParsePorts(std::string_view s, std::vector<PortRange>* out, std::string* why) {
  if (s.empty()) {
    *why = "no port after \":\" (leave out the \":\" to allow every port)";
    return false;
  }
  if (size_t slash = s.find('/'); slash != std::string_view::npos) {
    *why = "a rule names a host, not a URL: remove the path " + Quote(s.substr(slash));
    return false;
  }
  std::vector<PortRange> ranges;
  for (std::string_view item : Split(s, ',')) {
    if (item.empty()) {
      *why = "empty item in port list " + Quote(s);
      return false;
    }
    size_t dash = item.find('-');
    PortRange r;
    if (dash == std::string_view::npos) {
      if (!ParsePort(item, &r.lo, why)) return false;
      r.hi = r.lo;
    } else {
      std::string_view lo = item.substr(0, dash);
      std::string_view hi = item.substr(dash + 1);
      if (lo.empty() || hi.empty() || hi.find('-') != std::string_view::npos) {
        *why = "port range " + Quote(item) + " is malformed (\"8000-8999\")";
        return false;
      }
      if (!ParsePort(lo, &r.lo, why) || !ParsePort(hi, &r.hi, why)) return false;
      if (r.lo > r.hi) {
        *why = "port range " + Quote(item) + " is reversed (its first port must not exceed its last)";
        return false;
      }
    }
    ranges.push_back(r);
  }
  // Sorted, with overlapping and adjacent ranges merged: one form per set.
  std::sort(ranges.begin(), ranges.end(), [](const PortRange& a, const PortRange& b) { return a.lo < b.lo; });
  out->clear();
  for (const PortRange& r : ranges) {
    if (!out->empty() && static_cast<uint32_t>(r.lo) <= static_cast<uint32_t>(out->back().hi) + 1) {
      out->back().hi = std::max(out->back().hi, r.hi);
    } else {
      out->push_back(r);
    }
  }
  return true;
}

// The pieces of a rule after the protocol: a host and the port text.
bool ParseHost(std::string_view rest, EgressRule* rule, std::string* why) {
  if (rest.empty()) {
    *why = "no host";
    return false;
  }
  if (rest.find("://") != std::string_view::npos) {
    *why = "a rule names a host, not a URL: it has one protocol at most (\"udp://example.com:53\")";
    return false;
  }
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    *why = "user information " + Quote(rest.substr(0, at + 1)) + " is not allowed: a rule names a host";
    return false;
  }
  for (char c : {'?', '#'}) {
    if (size_t pos = rest.find(c); pos != std::string_view::npos) {
      *why = "a rule names a host, not a URL: remove " + Quote(rest.substr(pos));
      return false;
    }
  }

  std::string_view host;
  std::optional<std::string_view> ports;
  bool bracketed = false;
  if (rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) {
      *why = "\"[\" without a matching \"]\"";
      return false;
    }
    host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() == ':') {
        ports = after.substr(1);
      } else if (after.front() == '/') {
        *why = "the prefix length goes inside the brackets (\"[2001:db8::/32]:443\")";
        return false;
      } else {
        *why = "unexpected " + Quote(after) + " after \"]\" (expected \":PORTS\" or nothing)";
        return false;
      }
    }
    if (host.empty()) {
      *why = "empty brackets";
      return false;
    }
    bracketed = true;
  } else {
    if (rest.find_first_of("[]") != std::string_view::npos) {
      *why = "\"[\" and \"]\" may only enclose the whole host, an IPv6 address (\"[2001:db8::1]:443\")";
      return false;
    }
    size_t colons = static_cast<size_t>(std::count(rest.begin(), rest.end(), ':'));
    if (colons == 1) {
      size_t colon = rest.find(':');
      host = rest.substr(0, colon);
      ports = rest.substr(colon + 1);
      if (host.empty()) {
        *why = "no host before \":\"";
        return false;
      }
    } else {
      host = rest;  // no ports, or a bare IPv6 address (which takes no ports)
    }
  }

  // An address or a network?
  std::string_view addr_text = host;
  std::optional<std::string_view> prefix;
  if (size_t slash = host.find('/'); slash != std::string_view::npos) {
    addr_text = host.substr(0, slash);
    prefix = host.substr(slash + 1);
  }
  bool looks_v6 = bracketed || addr_text.find(':') != std::string_view::npos;
  if (looks_v6) {
    if (size_t pct = addr_text.find('%'); pct != std::string_view::npos) {
      *why = "IPv6 zone index " + Quote(addr_text.substr(pct)) + " is not supported";
      return false;
    }
    if (!bracketed && prefix && prefix->find(':') != std::string_view::npos) {
      *why = "an IPv6 network with ports goes in brackets (\"[2001:db8::/32]:443\")";
      return false;
    }
    std::optional<IpAddress> a = ParseV6(addr_text);
    if (!a) {
      if (bracketed && ParseV4(addr_text, nullptr)) {
        *why = "brackets are for IPv6 addresses only: write " + Quote(host) + " without them";
      } else if (bracketed) {
        *why = Quote(addr_text) + " is not an IPv6 address";
      } else {
        *why = Quote(rest) +
               " is not an IPv6 address; ports follow a single \":\" (\"example.com:443,22\") and an IPv6 "
               "address with ports goes in brackets (\"[2001:db8::1]:443\")";
      }
      return false;
    }
    if (!MakeNetwork(*a, prefix, &rule->network, why)) return false;
    rule->kind = EgressRule::Kind::kNetwork;
  } else if (addr_text.find_first_of("0123456789") != std::string_view::npos &&
             addr_text.find_first_not_of("0123456789.") == std::string_view::npos) {
    // Digits and dots only: meant as IPv4, so say why it is not one rather
    // than calling it a bad domain.
    std::optional<IpAddress> a = ParseV4(addr_text, why);
    if (!a) return false;
    if (!MakeNetwork(*a, prefix, &rule->network, why)) return false;
    rule->kind = EgressRule::Kind::kNetwork;
  } else if (prefix) {
    *why = "a rule names a host, not a URL: remove the path " + Quote(host.substr(addr_text.size()));
    return false;
  } else {
    std::string_view name = host;
    if (name.back() == '.') name.remove_suffix(1);  // the root: "example.com." is "example.com"
    bool wildcard = false;
    if (name.find('*') != std::string_view::npos) {
      if (name == "*") {
        *why =
            "a lone \"*\" is not accepted: to reach every destination use \"default\": \"allow\", or the address rules "
            "\"0.0.0.0/0\" and \"[::/0]\"";
        return false;
      }
      if (name.substr(0, 2) != "*." || name.find('*', 1) != std::string_view::npos) {
        *why = "\"*\" may only be the whole leftmost label, once (\"*.example.com\")";
        return false;
      }
      wildcard = true;
      name.remove_prefix(2);
    }
    if (!CheckRuleDomain(name, wildcard, why)) return false;
    rule->kind = wildcard ? EgressRule::Kind::kWildcard : EgressRule::Kind::kDomain;
    rule->domain = Str(name);
  }

  if (ports && !ParsePorts(*ports, &rule->ports, why)) return false;
  return true;
}

// The destination as the matchers see it: domain normalized, address unmapped.
struct Subject {
  std::optional<std::string> domain;
  std::optional<IpAddress> address;
  uint16_t port = 0;
  Protocol protocol = Protocol::kTcp;
};

Subject MakeSubject(const Destination& d) {
  Subject s;
  if (d.domain) s.domain = NormalizeDestinationDomain(*d.domain);
  if (d.address && (d.address->is_v4() || d.address->is_v6())) s.address = d.address->Unmapped();
  s.port = d.port;
  s.protocol = d.protocol;
  return s;
}

bool Covers(const EgressRule& r, const Subject& s, bool as_deny) {
  if (r.protocol) {
    if (*r.protocol != s.protocol) return false;
  } else if (!as_deny && s.protocol != Protocol::kTcp) {
    return false;
  }
  if (!r.ports.empty()) {
    bool in = std::any_of(r.ports.begin(), r.ports.end(),
                          [&s](const PortRange& p) { return s.port >= p.lo && s.port <= p.hi; });
    if (!in) return false;
  }
  switch (r.kind) {
    case EgressRule::Kind::kDomain:
      return s.domain && *s.domain == r.domain;
    case EgressRule::Kind::kWildcard: {
      // Strictly below: at least one label, then ".", then the base.
      if (!s.domain || r.domain.empty() || s.domain->size() < r.domain.size() + 2) return false;
      std::string_view name = *s.domain;
      return name.substr(name.size() - r.domain.size()) == r.domain && name[name.size() - r.domain.size() - 1] == '.';
    }
    case EgressRule::Kind::kNetwork:
      return s.address && r.network.Contains(*s.address);
  }
  return false;
}

std::string Describe(const Destination& d, const Subject& s) {
  const char* proto = d.protocol == Protocol::kUdp ? "udp" : "tcp";
  std::string port = std::to_string(d.port);
  std::string out = std::string(proto) + " to ";
  if (s.domain) {
    out += *s.domain + ":" + port;
    if (d.address) out += " (" + d.address->ToString() + ")";
  } else if (d.address) {
    out += d.address->is_v6() ? "[" + d.address->ToString() + "]:" + port : d.address->ToString() + ":" + port;
  } else {
    out += "port " + port;
  }
  return out;
}

}  // namespace

const char* ProtocolName(Protocol p) { return p == Protocol::kUdp ? "udp" : "tcp"; }

// ---- IpAddress ----

std::optional<IpAddress> IpAddress::Parse(std::string_view text) {
  if (text.find(':') != std::string_view::npos) return ParseV6(text);
  return ParseV4(text, nullptr);
}

IpAddress IpAddress::V4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  IpAddress ip;
  ip.family = AF_INET;
  ip.bytes[0] = a;
  ip.bytes[1] = b;
  ip.bytes[2] = c;
  ip.bytes[3] = d;
  return ip;
}

bool IpAddress::is_v4() const { return family == AF_INET; }
bool IpAddress::is_v6() const { return family == AF_INET6; }
bool IpAddress::IsV4Mapped() const { return InMappedRange(*this); }

IpAddress IpAddress::Unmapped() const {
  if (!IsV4Mapped()) return *this;
  return V4(bytes[12], bytes[13], bytes[14], bytes[15]);
}

std::string IpAddress::ToString() const {
  char buf[64];
  if (is_v4()) {
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", bytes[0], bytes[1], bytes[2], bytes[3]);
    return buf;
  }
  if (!is_v6()) {
    std::snprintf(buf, sizeof buf, "(address family %d)", family);
    return buf;
  }
  if (IsV4Mapped()) return "::ffff:" + Unmapped().ToString();
  // RFC 5952: lower-case hex without leading zeros; the longest run of two or
  // more zero groups (the first of equal runs) becomes "::".
  uint16_t groups[8];
  for (int i = 0; i < 8; ++i) groups[i] = static_cast<uint16_t>(bytes[2 * i] << 8 | bytes[2 * i + 1]);
  int best = -1, best_len = 0;
  for (int i = 0; i < 8;) {
    if (groups[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && groups[j] == 0) ++j;
    if (j - i > best_len && j - i >= 2) {
      best = i;
      best_len = j - i;
    }
    i = j;
  }
  std::string out;
  for (int i = 0; i < 8; ++i) {
    if (i == best) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ':';
    std::snprintf(buf, sizeof buf, "%x", groups[i]);
    out += buf;
  }
  return out;
}

bool operator==(const IpAddress& a, const IpAddress& b) {
  if (a.family != b.family) return false;
  size_t n = a.is_v4() ? 4 : 16;
  return std::equal(a.bytes.begin(), a.bytes.begin() + static_cast<long>(n), b.bytes.begin());
}

// ---- IpNetwork ----

bool IpNetwork::Contains(const IpAddress& a) const {
  IpAddress u = a.Unmapped();
  if (u.family != address.family || (!u.is_v4() && !u.is_v6())) return false;
  if (prefix_length < 0 || prefix_length > MaxPrefix(u)) return false;
  return Masked(u, prefix_length) == Masked(address, prefix_length);
}

std::string IpNetwork::ToString() const {
  std::string s = address.ToString();
  if (prefix_length != MaxPrefix(address)) {
    s += '/';
    s += std::to_string(prefix_length);
  }
  return s;
}

// ---- EgressRule ----

Result<EgressRule> EgressRule::Parse(std::string_view text) {
  auto fail = [text](const std::string& why) {
    return Error::Policy("invalid egress rule " + Quote(text) + ": " + why);
  };
  if (text.empty()) return fail("the rule is empty");
  if (text.size() > kMaxRuleLength) return fail("the rule is longer than 1024 characters");
  for (char ch : text) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c == ' ' || (c >= '\t' && c <= '\r')) return fail("the rule contains whitespace");
    if (c < 0x20 || c == 0x7f) return fail("the rule contains a control character");
    if (c >= 0x80) {
      return fail("the rule contains non-ASCII characters: write an internationalized domain in its \"xn--\" form");
    }
  }

  EgressRule rule;
  rule.text = Str(text);
  // Domains, protocols and IPv6 hex digits are all case-insensitive.
  std::string lower = ToLower(text);
  std::string_view rest = lower;
  if (size_t sep = rest.find("://"); sep != std::string_view::npos) {
    std::string_view scheme = rest.substr(0, sep);
    if (scheme == "tcp") {
      rule.protocol = Protocol::kTcp;
    } else if (scheme == "udp") {
      rule.protocol = Protocol::kUdp;
    } else if (scheme.empty()) {
      return fail("nothing before \"://\" (expected \"tcp\" or \"udp\")");
    } else {
      // A URL pasted as a rule: suggest the rule that was probably meant.
      std::string_view host = rest.substr(sep + 3);
      host = host.substr(0, host.find_first_of("/?#"));
      if (host.empty() || host.find_first_of("@:[") != std::string_view::npos) host = "example.com";
      const char* port = (scheme == "http" || scheme == "ws") ? ":80" : ":443";
      return fail("unknown protocol " + Quote(scheme) +
                  " (expected \"tcp\" or \"udp\"); a rule is [tcp://|udp://]host[:ports], not a URL: write " +
                  Quote(Str(host) + port));
    }
    rest.remove_prefix(sep + 3);
  } else if (rest.substr(0, 4) == "tcp:" || rest.substr(0, 4) == "udp:") {
    return fail("a protocol is written \"" + Str(rest.substr(0, 3)) + "://\"");
  }
  std::string why;
  if (!ParseHost(rest, &rule, &why)) return fail(why);
  return rule;
}

std::string EgressRule::Canonical() const {
  std::string out;
  if (protocol) out += std::string(ProtocolName(*protocol)) + "://";
  switch (kind) {
    case Kind::kDomain:
      out += domain;
      break;
    case Kind::kWildcard:
      out += "*." + domain;
      break;
    case Kind::kNetwork:
      out += network.address.is_v6() ? "[" + network.ToString() + "]" : network.ToString();
      break;
  }
  for (size_t i = 0; i < ports.size(); ++i) {
    out += i == 0 ? ":" : ",";
    out += std::to_string(ports[i].lo);
    if (ports[i].hi != ports[i].lo) {
      out += '-';
      out += std::to_string(ports[i].hi);
    }
  }
  return out;
}

bool EgressRule::Matches(const Destination& d) const { return Covers(*this, MakeSubject(d), false); }
bool EgressRule::MatchesAsDeny(const Destination& d) const { return Covers(*this, MakeSubject(d), true); }

// ---- EgressPolicy ----

EgressDecision EgressPolicy::Decide(const Destination& d) const {
  // Fail closed on what no rule can be judged against: a deny rule must not
  // be dodged by a name that no rule can parse.
  if (!d.domain && !d.address) return {false, nullptr, "destination has neither a domain nor an address"};
  if (d.address && !d.address->is_v4() && !d.address->is_v6()) {
    std::string reason = "destination address has an unknown family ";
    reason += std::to_string(d.address->family);
    return {false, nullptr, reason};
  }
  Subject s = MakeSubject(d);
  if (d.domain && !s.domain) {
    return {false, nullptr, "destination domain " + Quote(*d.domain) + " is not a valid host name"};
  }
  for (const EgressRule& r : deny) {
    if (Covers(r, s, true)) return {false, &r, "denied by rule " + Quote(r.text)};
  }
  for (const EgressRule& r : allow) {
    if (Covers(r, s, false)) return {true, &r, "allowed by rule " + Quote(r.text)};
  }
  if (default_allow) return {true, nullptr, "no rule matches " + Describe(d, s) + "; allowed by default"};
  return {false, nullptr, "no rule allows " + Describe(d, s)};
}

}  // namespace ward::net
