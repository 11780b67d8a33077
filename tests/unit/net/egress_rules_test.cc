#include "net/egress_rules.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <string>
#include <vector>

namespace ward::net {
namespace {

// Concatenation by appending (g++ 12 -Wrestrict misfires on chains of +).
std::string Cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view p : parts) out += p;
  return out;
}

EgressRule MustParse(std::string_view text) {
  Result<EgressRule> r = EgressRule::Parse(text);
  EXPECT_TRUE(r.has_value()) << text << ": " << (r ? "" : r.error().message);
  return r ? *r : EgressRule{};
}

IpAddress Ip(std::string_view text) {
  std::optional<IpAddress> a = IpAddress::Parse(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(IpAddress{});
}

Destination Dom(std::string name, uint16_t port, Protocol p = Protocol::kTcp) {
  Destination d;
  d.domain = std::move(name);
  d.port = port;
  d.protocol = p;
  return d;
}

Destination Addr(std::string_view ip, uint16_t port, Protocol p = Protocol::kTcp) {
  Destination d;
  d.address = Ip(ip);
  d.port = port;
  d.protocol = p;
  return d;
}

Destination Both(std::string name, std::string_view ip, uint16_t port, Protocol p = Protocol::kTcp) {
  Destination d = Dom(std::move(name), port, p);
  d.address = Ip(ip);
  return d;
}

// ---------------------------------------------------------------- IpAddress

TEST(IpAddress, ParsesStrictIpv4) {
  IpAddress a = Ip("192.168.0.1");
  EXPECT_EQ(a.family, AF_INET);
  EXPECT_EQ(a.bytes[0], 192);
  EXPECT_EQ(a.bytes[3], 1);
  EXPECT_EQ(a.ToString(), "192.168.0.1");
  EXPECT_EQ(Ip("0.0.0.0").ToString(), "0.0.0.0");
  EXPECT_EQ(Ip("255.255.255.255").ToString(), "255.255.255.255");
  EXPECT_EQ(a, IpAddress::V4(192, 168, 0, 1));
}

TEST(IpAddress, RefusesAmbiguousOrMalformedText) {
  for (std::string_view bad : {"",
                               "1.2.3",
                               "1.2.3.4.5",
                               "127.1",
                               "2130706433",
                               "0x7f.0.0.1",
                               "010.0.0.1",
                               "1.2.3.04",
                               "256.0.0.1",
                               "1.2.3.4 ",
                               " 1.2.3.4",
                               "1.2.3.-4",
                               "+1.2.3.4",
                               "1.2.3.4/8",
                               "[::1]",
                               "::1%lo",
                               "fe80::1%25eth0",
                               ":::",
                               "1::2::3",
                               "12345::",
                               "::g",
                               "1:2:3:4:5:6:7:8:9",
                               "example.com"}) {
    EXPECT_FALSE(IpAddress::Parse(bad).has_value()) << bad;
  }
  // An embedded NUL must not cut the text short for inet_pton.
  EXPECT_FALSE(IpAddress::Parse(std::string_view("::1\0junk", 8)).has_value());
  EXPECT_FALSE(IpAddress::Parse(std::string_view("1.2.3.4\0", 8)).has_value());
}

TEST(IpAddress, FormatsIpv6PerRfc5952) {
  struct Case {
    const char* in;
    const char* out;
  };
  for (const Case& c : std::vector<Case>{
           {"2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"},
           {"2001:DB8::A", "2001:db8::a"},
           {"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},     // the first of equal runs
           {"1:0:0:2:0:0:0:3", "1:0:0:2::3"},                 // the longest run
           {"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"},  // a single zero group stays
           {"::", "::"},
           {"::1", "::1"},
           {"1::", "1::"},
           {"::ffff:1.2.3.4", "::ffff:1.2.3.4"},
           {"::ffff:102:304", "::ffff:1.2.3.4"},
           {"64:ff9b::1.2.3.4", "64:ff9b::102:304"},
       }) {
    EXPECT_EQ(Ip(c.in).ToString(), c.out) << c.in;
    EXPECT_EQ(Ip(Ip(c.in).ToString()), Ip(c.in)) << c.in;
  }
}

TEST(IpAddress, UnmapsIpv4MappedOnly) {
  EXPECT_TRUE(Ip("::ffff:1.2.3.4").IsV4Mapped());
  EXPECT_EQ(Ip("::ffff:1.2.3.4").Unmapped(), IpAddress::V4(1, 2, 3, 4));
  // IPv4-compatible (deprecated) and NAT64 addresses are IPv6 addresses.
  EXPECT_FALSE(Ip("::1.2.3.4").IsV4Mapped());
  EXPECT_FALSE(Ip("64:ff9b::1.2.3.4").IsV4Mapped());
  EXPECT_FALSE(Ip("::fffe:1.2.3.4").IsV4Mapped());
  EXPECT_FALSE(Ip("1.2.3.4").IsV4Mapped());
  EXPECT_EQ(Ip("::1").Unmapped(), Ip("::1"));
}

TEST(IpAddress, EqualityIgnoresBytesBeyondAnIpv4Address) {
  IpAddress a = IpAddress::V4(1, 2, 3, 4);
  IpAddress b = a;
  b.bytes[15] = 9;
  EXPECT_EQ(a, b);
  EXPECT_FALSE(a == Ip("::ffff:1.2.3.4"));  // different families; matchers unmap first
}

// ------------------------------------------------------------ Parse: accept

struct Accept {
  const char* in;
  const char* canonical;
  EgressRule::Kind kind;
};

TEST(EgressRuleParse, AcceptsAndCanonicalizes) {
  using K = EgressRule::Kind;
  const std::string label63(63, 'a');
  const std::string name253 = Cat({label63, ".", label63, ".", label63, ".", std::string(61, 'b')});
  const std::string wild253 = Cat({"*.", label63, ".", label63, ".", label63, ".", std::string(59, 'b')});
  const std::vector<Accept> cases = {
      // The issue's example.
      {"pypi.org:443", "pypi.org:443", K::kDomain},
      {"*.pythonhosted.org:443", "*.pythonhosted.org:443", K::kWildcard},
      {"github.com:443,22", "github.com:22,443", K::kDomain},
      {"10.20.0.0/16:5432", "10.20.0.0/16:5432", K::kNetwork},
      {"evil.pypi.org", "evil.pypi.org", K::kDomain},
      // Domains.
      {"PyPI.Org:443", "pypi.org:443", K::kDomain},
      {"pypi.org.", "pypi.org", K::kDomain},
      {"pypi.org.:443", "pypi.org:443", K::kDomain},
      {"a-b.c-d.com", "a-b.c-d.com", K::kDomain},
      {"123.com", "123.com", K::kDomain},
      {"xn--bcher-kva.example", "xn--bcher-kva.example", K::kDomain},
      {"localhost.localdomain", "localhost.localdomain", K::kDomain},
      {"*.test", "*.test", K::kWildcard},
      {"*.Example.COM.", "*.example.com", K::kWildcard},
      // Protocols.
      {"tcp://example.com", "tcp://example.com", K::kDomain},
      {"UDP://example.com:53", "udp://example.com:53", K::kDomain},
      {"udp://*.example.com:443", "udp://*.example.com:443", K::kWildcard},
      {"tcp://[2001:db8::1]:22", "tcp://[2001:db8::1]:22", K::kNetwork},
      // IPv4.
      {"1.2.3.4", "1.2.3.4", K::kNetwork},
      {"1.2.3.4/32", "1.2.3.4", K::kNetwork},
      {"1.2.3.4:443", "1.2.3.4:443", K::kNetwork},
      {"0.0.0.0/0", "0.0.0.0/0", K::kNetwork},
      {"0.0.0.0/0:443", "0.0.0.0/0:443", K::kNetwork},
      {"10.0.0.0/8:1-1024", "10.0.0.0/8:1-1024", K::kNetwork},
      {"128.0.0.0/1", "128.0.0.0/1", K::kNetwork},
      // IPv6.
      {"[2001:db8::/32]:443", "[2001:db8::/32]:443", K::kNetwork},
      {"2001:db8::/32", "[2001:db8::/32]", K::kNetwork},
      {"2001:DB8::1", "[2001:db8::1]", K::kNetwork},
      {"[2001:db8::1]", "[2001:db8::1]", K::kNetwork},
      {"2001:db8:0:0:0:0:0:1/128", "[2001:db8::1]", K::kNetwork},
      {"[::1]:8080", "[::1]:8080", K::kNetwork},
      {"::/0", "[::/0]", K::kNetwork},
      {"[::/0]:443", "[::/0]:443", K::kNetwork},
      {"64:ff9b::/96", "[64:ff9b::/96]", K::kNetwork},
      {"::/80", "[::/80]", K::kNetwork},  // holds the mapped block, but matches IPv6 only
      // Ports.
      {"example.com:80,8000-8999", "example.com:80,8000-8999", K::kDomain},
      {"example.com:8000-8999,80,443,8080", "example.com:80,443,8000-8999", K::kDomain},
      {"example.com:443,443", "example.com:443", K::kDomain},
      {"example.com:80,81,82", "example.com:80-82", K::kDomain},
      {"example.com:1-100,50-200", "example.com:1-200", K::kDomain},
      {"example.com:1-65535", "example.com:1-65535", K::kDomain},
      {"example.com:65535", "example.com:65535", K::kDomain},
      {"example.com:7-7", "example.com:7", K::kDomain},
  };
  for (const Accept& c : cases) {
    Result<EgressRule> r = EgressRule::Parse(c.in);
    ASSERT_TRUE(r.has_value()) << c.in << ": " << r.error().message;
    EXPECT_EQ(r->text, c.in);
    EXPECT_EQ(r->Canonical(), c.canonical) << c.in;
    EXPECT_EQ(r->kind, c.kind) << c.in;
    // The canonical form is a fixed point.
    Result<EgressRule> again = EgressRule::Parse(r->Canonical());
    ASSERT_TRUE(again.has_value()) << c.canonical << ": " << again.error().message;
    EXPECT_EQ(again->Canonical(), c.canonical);
  }
  // Length limits, at the limit.
  EXPECT_EQ(MustParse(Cat({label63, ".com"})).domain, Cat({label63, ".com"}));
  EXPECT_EQ(MustParse(name253).domain, name253);
  EXPECT_EQ(MustParse(Cat({name253, "."})).domain, name253);
  EXPECT_EQ(MustParse(wild253).Canonical(), wild253);
}

TEST(EgressRuleParse, FillsTheFields) {
  EgressRule r = MustParse("UDP://Example.com:53,5353-5354");
  EXPECT_EQ(r.protocol, Protocol::kUdp);
  EXPECT_EQ(r.kind, EgressRule::Kind::kDomain);
  EXPECT_EQ(r.domain, "example.com");
  ASSERT_EQ(r.ports.size(), 2u);
  EXPECT_EQ(r.ports[0], (PortRange{53, 53}));
  EXPECT_EQ(r.ports[1], (PortRange{5353, 5354}));

  EgressRule w = MustParse("*.pythonhosted.org:443");
  EXPECT_FALSE(w.protocol.has_value());
  EXPECT_EQ(w.kind, EgressRule::Kind::kWildcard);
  EXPECT_EQ(w.domain, "pythonhosted.org");

  EgressRule n = MustParse("10.20.0.0/16:5432");
  EXPECT_EQ(n.kind, EgressRule::Kind::kNetwork);
  EXPECT_EQ(n.network.address, IpAddress::V4(10, 20, 0, 0));
  EXPECT_EQ(n.network.prefix_length, 16);
  EXPECT_TRUE(n.domain.empty());

  EgressRule all = MustParse("[::/0]");
  EXPECT_EQ(all.network.prefix_length, 0);
  EXPECT_TRUE(all.ports.empty());
  EXPECT_EQ(MustParse("2001:db8::1").network.prefix_length, 128);
  EXPECT_EQ(MustParse("1.2.3.4").network.prefix_length, 32);
}

// ------------------------------------------------------------ Parse: reject

struct Reject {
  std::string in;
  std::vector<std::string> words;  // each must appear in the message
};

TEST(EgressRuleParse, RejectsWithAReason) {
  const std::string label64(64, 'a');
  const std::string label63(63, 'a');
  const std::string name254 = Cat({label63, ".", label63, ".", label63, ".", std::string(62, 'b')});
  const std::vector<Reject> cases = {
      // Empty, whitespace, control, non-ASCII, size.
      {"", {"empty"}},
      {" pypi.org", {"whitespace"}},
      {"pypi.org :443", {"whitespace"}},
      {"pypi.org\t", {"whitespace"}},
      {"pypi.org\n", {"whitespace"}},
      {std::string("pypi.org\0", 9), {"control"}},
      {"pypi\x01.org", {"control", "\\x01"}},
      {"pypi\x7f.org", {"control"}},
      {"b\303\274cher.de", {"non-ASCII", "xn--"}},
      {std::string(1025, 'a'), {"1024"}},
      // Wildcards.
      {"*", {"lone"}},
      {"*:443", {"lone"}},
      {"*.", {"lone"}},
      {"foo.*.com", {"leftmost"}},
      {"*example.com", {"leftmost"}},
      {"**.example.com", {"leftmost"}},
      {"*.*.example.com", {"leftmost"}},
      {"*.example.*", {"leftmost"}},
      {"a*.example.com", {"leftmost"}},
      {"*.", {"lone"}},
      {"*..", {"nothing follows"}},
      {"*.1.2.3.4", {"numeric"}},
      {"[*.example.com]", {"not an IPv6"}},
      // Domains.
      {"localhost", {"single-label", "localhost"}},
      {"localhost:5432", {"single-label"}},
      {"com", {"single-label"}},
      {"-x.com", {"starts or ends with \"-\""}},
      {"x-.com", {"starts or ends with \"-\""}},
      {"a..b.com", {"empty label"}},
      {".x.com", {"empty label"}},
      {"x.com..", {"more than one"}},
      {".", {"empty"}},
      {"_dmarc.x.com", {"\"_\""}},
      {"x!.com", {"character", "!"}},
      {"\"x.com\"", {"character"}},
      {"x,y.com", {"character"}},
      {Cat({label64, ".com"}), {"longer than 63"}},
      {name254, {"longer than 253"}},
      {"a.b.1", {"numeric"}},
      {"0x7f.0.0.1", {"numeric"}},
      // IPv4.
      {"1.2.3", {"four numbers"}},
      {"127.1", {"four numbers"}},
      {"2130706433", {"four numbers"}},
      {"1.2.3.4.5", {"four numbers"}},
      {"1.2.3.4.", {"four numbers"}},
      {"256.1.1.1", {"out of range (0-255)"}},
      {"010.0.0.1", {"leading zero", "octal"}},
      // CIDR.
      {"10.20.1.0/16", {"host bits", "10.20.0.0/16"}},
      {"10.20.1.0/16:5432", {"host bits"}},
      {"1.2.3.4/0", {"host bits", "0.0.0.0/0"}},
      {"1.2.3.4/33", {"out of range for IPv4", "0-32"}},
      {"1.2.3.0/64", {"out of range for IPv4"}},
      {"1.2.3.4/", {"empty prefix"}},
      {"1.2.3.4/08", {"leading zero"}},
      {"1.2.3.4/x", {"not a number"}},
      {"1.2.3.4/-1", {"not a number"}},
      {"1.2.3.4/8/8", {"not a number"}},
      {"[2001:db8::/129]", {"out of range for IPv6", "0-128"}},
      {"[2001:db8::1/32]", {"host bits", "2001:db8::/32"}},
      {"[2001:db8::]/32:443", {"inside the brackets"}},
      {"2001:db8::/32:443", {"brackets"}},
      // IPv6 and brackets.
      {"[1.2.3.4]:443", {"brackets are for IPv6"}},
      {"[example.com]:443", {"not an IPv6"}},
      {"[2001:db8::1", {"\"]\""}},
      {"2001:db8::1]", {"\"[\""}},
      {"x[1].com", {"\"[\""}},
      {"[]", {"empty brackets"}},
      {"[]:443", {"empty brackets"}},
      {"[::1]x", {"unexpected"}},
      {"[::1]:", {"no port"}},
      {"2001:db8::g", {"not an IPv6"}},
      {"example.com:443:22", {"not an IPv6", "single \":\""}},
      {"fe80::1%eth0", {"zone"}},
      {"[fe80::1%25eth0]:443", {"zone"}},
      // IPv4-mapped IPv6: written as IPv4 or not at all.
      {"::ffff:1.2.3.4", {"IPv4-mapped", "\"1.2.3.4\""}},
      {"[::ffff:1.2.3.4]:443", {"IPv4-mapped"}},
      {"[::ffff:1.2.3.0/120]", {"IPv4-mapped", "\"1.2.3.0/24\""}},
      {"[::ffff:0:0/96]", {"IPv4-mapped", "\"0.0.0.0/0\""}},
      // Ports.
      {"x.com:0", {"port 0", "out of range"}},
      {"x.com:65536", {"out of range (1-65535)"}},
      {"x.com:99999999999", {"out of range"}},
      {"x.com:0-80", {"port 0"}},
      {"x.com:80-65536", {"out of range"}},
      {"x.com:", {"no port"}},
      {"x.com:443,", {"empty item"}},
      {"x.com:,443", {"empty item"}},
      {"x.com:443,,22", {"empty item"}},
      {"x.com:9000-8000", {"reversed"}},
      {"x.com:1-2-3", {"malformed"}},
      {"x.com:-1", {"malformed"}},
      {"x.com:443-", {"malformed"}},
      {"x.com:0443", {"leading zero"}},
      {"x.com:https", {"not a number"}},
      {"x.com:+443", {"not a number"}},
      {"x.com:0x1bb", {"not a number"}},
      {":443", {"no host"}},
      // Protocols and URLs.
      {"https://x.com/y", {"unknown protocol", "\"https\"", "x.com:443"}},
      {"http://x.com", {"unknown protocol", "\"http\"", "\"x.com:80\""}},
      {"https://user@x.com", {"unknown protocol", "\"example.com:443\""}},
      {"icmp://x.com", {"unknown protocol"}},
      {"tcp+udp://x.com", {"unknown protocol"}},
      {"://x.com", {"nothing before"}},
      {"tcp:x.com", {"tcp://"}},
      {"udp:53", {"udp://"}},
      {"tcp://", {"no host"}},
      {"tcp://udp://x.com", {"not a URL"}},
      {"tcp://x.com/y", {"not a URL", "\"/y\""}},
      {"x.com/", {"not a URL"}},
      {"x.com:443/api", {"not a URL", "\"/api\""}},
      {"user@x.com", {"user information", "\"user@\""}},
      {"user:pass@x.com:443", {"user information"}},
      {"tcp://u@x.com", {"user information"}},
      {"x.com?q=1", {"not a URL"}},
      {"x.com#frag", {"not a URL"}},
      {"//x.com", {"not a URL"}},
  };
  for (const Reject& c : cases) {
    Result<EgressRule> r = EgressRule::Parse(c.in);
    ASSERT_FALSE(r.has_value()) << c.in << " parsed as " << r->Canonical();
    EXPECT_EQ(r.error().code, Error::Code::kPolicy);
    const std::string& m = r.error().message;
    EXPECT_EQ(m.rfind("invalid egress rule \"", 0), 0u) << m;
    for (const std::string& w : c.words) EXPECT_NE(m.find(w), std::string::npos) << c.in << ": " << m << " lacks " << w;
  }
}

TEST(EgressRuleParse, ErrorQuotesTheRuleSafely) {
  Result<EgressRule> r = EgressRule::Parse("x.com:0");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "invalid egress rule \"x.com:0\": port 0 is out of range (1-65535)");
  r = EgressRule::Parse(std::string("a\0b\"c", 5));
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("\"a\\x00b\\\"c\""), std::string::npos) << r.error().message;
  r = EgressRule::Parse(std::string(5000, 'a'));
  ASSERT_FALSE(r.has_value());
  EXPECT_LT(r.error().message.size(), 400u);
}

// ---------------------------------------------------------------- Matching

struct MatchCase {
  const char* rule;
  Destination dest;
  bool match;
};

void ExpectMatches(const std::vector<MatchCase>& cases) {
  for (const MatchCase& c : cases) {
    EgressRule r = MustParse(c.rule);
    std::string what = Cat({c.rule, " vs ", c.dest.domain.value_or("-"), " ",
                            c.dest.address ? c.dest.address->ToString() : "-", ":", std::to_string(c.dest.port)});
    EXPECT_EQ(r.Matches(c.dest), c.match) << what;
  }
}

TEST(EgressRuleMatch, ExactDomain) {
  ExpectMatches({
      {"pypi.org", Dom("pypi.org", 443), true},
      {"pypi.org", Dom("PYPI.ORG", 443), true},
      {"pypi.org", Dom("pypi.org.", 443), true},
      {"PyPI.org.", Dom("pypi.org", 443), true},
      {"pypi.org", Dom("pypi.org..", 443), false},
      {"pypi.org", Dom("www.pypi.org", 443), false},
      {"pypi.org", Dom("xpypi.org", 443), false},
      {"pypi.org", Dom("pypi.org.attacker.com", 443), false},
      {"pypi.org", Dom("pypi.or", 443), false},
      {"pypi.org", Dom("org", 443), false},
      {"pypi.org", Dom("", 443), false},
      {"pypi.org", Dom(std::string("pypi.org\0", 9), 443), false},
      {"pypi.org", Dom(std::string("pypi.org\0.x", 11), 443), false},
      // A domain rule never matches through the address, even a literal one.
      {"pypi.org", Addr("151.101.0.223", 443), false},
      {"pypi.org", Both("pypi.org", "6.6.6.6", 443), true},
  });
}

TEST(EgressRuleMatch, WildcardMatchesStrictlyBelowAtAnyDepth) {
  ExpectMatches({
      {"*.pypi.org", Dom("a.pypi.org", 443), true},
      {"*.pypi.org", Dom("a.b.c.pypi.org", 443), true},
      {"*.pypi.org", Dom("A.PyPI.org.", 443), true},
      {"*.pypi.org", Dom("_x.pypi.org", 443), true},
      {"*.pypi.org", Dom("pypi.org", 443), false},
      {"*.pypi.org", Dom("pypi.org.", 443), false},
      {"*.pypi.org", Dom("xpypi.org", 443), false},
      {"*.pypi.org", Dom("evil.pypi.org.attacker.com", 443), false},
      {"*.pypi.org", Dom("pypi.org.evil", 443), false},
      {"*.pypi.org", Dom(".pypi.org", 443), false},
      {"*.pypi.org", Dom("a..pypi.org", 443), false},
      {"*.pypi.org", Dom("org", 443), false},
      {"*.pypi.org", Dom("a.pypi.org..", 443), false},
      {"*.pypi.org", Dom("a.pypi.org\\", 443), false},
      {"*.pypi.org", Dom(std::string("a\0.pypi.org", 11), 443), false},
      {"*.test", Dom("allowed.test", 80), true},
      {"*.test", Dom("test", 80), false},
      {"*.pypi.org", Addr("151.101.0.223", 443), false},
  });
}

TEST(EgressRuleMatch, Ipv4Networks) {
  ExpectMatches({
      {"10.20.0.0/16", Addr("10.20.0.0", 1), true},
      {"10.20.0.0/16", Addr("10.20.255.255", 1), true},
      {"10.20.0.0/16", Addr("10.21.0.0", 1), false},
      {"10.20.0.0/16", Addr("10.19.255.255", 1), false},
      {"10.0.0.0/9", Addr("10.127.255.255", 1), true},
      {"10.0.0.0/9", Addr("10.128.0.0", 1), false},
      {"1.2.3.4", Addr("1.2.3.4", 1), true},
      {"1.2.3.4/32", Addr("1.2.3.5", 1), false},
      {"1.2.3.4/32", Addr("1.2.3.3", 1), false},
      {"0.0.0.0/0", Addr("0.0.0.0", 1), true},
      {"0.0.0.0/0", Addr("255.255.255.255", 1), true},
      {"0.0.0.0/0", Addr("::1", 1), false},
      {"0.0.0.0/0", Addr("2001:db8::1", 1), false},
      {"128.0.0.0/1", Addr("127.255.255.255", 1), false},
      {"128.0.0.0/1", Addr("128.0.0.0", 1), true},
      // An address rule never matches through the domain.
      {"1.2.3.4", Dom("1.2.3.4", 1), false},
      {"1.2.3.4", Both("example.com", "1.2.3.4", 1), true},
  });
}

TEST(EgressRuleMatch, Ipv6Networks) {
  ExpectMatches({
      {"[::/0]", Addr("::1", 1), true},
      {"[::/0]", Addr("2001:db8::1", 1), true},
      {"[::/0]", Addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1), true},
      {"[::/0]", Addr("1.2.3.4", 1), false},
      {"[::/0]", Addr("::ffff:1.2.3.4", 1), false},  // mapped is IPv4
      {"[::/80]", Addr("::ffff:1.2.3.4", 1), false},
      {"[::/80]", Addr("::1", 1), true},
      {"[2001:db8::/32]", Addr("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 1), true},
      {"[2001:db8::/32]", Addr("2001:db9::", 1), false},
      {"[2001:db8::/32]", Addr("2001:db7:ffff::", 1), false},
      {"[2001:db8::/33]", Addr("2001:db8:7fff:ffff::", 1), true},
      {"[2001:db8::/33]", Addr("2001:db8:8000::", 1), false},
      {"2001:db8::1", Addr("2001:db8::1", 1), true},
      {"2001:db8::1/128", Addr("2001:db8::2", 1), false},
      {"2001:db8::1/128", Addr("2001:db8::", 1), false},
      {"::1", Addr("::1", 1), true},
      {"::1", Addr("127.0.0.1", 1), false},
  });
}

TEST(EgressRuleMatch, Ipv4MappedIpv6IsMatchedAsIpv4) {
  ExpectMatches({
      {"1.2.3.0/24", Addr("::ffff:1.2.3.4", 1), true},
      {"1.2.3.0/24", Addr("::FFFF:102:3ff", 1), true},
      {"1.2.3.0/24", Addr("::ffff:1.2.4.4", 1), false},
      {"1.2.3.4", Addr("::ffff:1.2.3.4", 1), true},
      {"0.0.0.0/0", Addr("::ffff:0.0.0.0", 1), true},
      // Not mapped: IPv4-compatible and NAT64 forms stay IPv6.
      {"1.2.3.0/24", Addr("::1.2.3.4", 1), false},
      {"1.2.3.0/24", Addr("64:ff9b::1.2.3.4", 1), false},
  });
  // The network's own Contains() unmaps too.
  IpNetwork n = MustParse("1.2.3.0/24").network;
  EXPECT_TRUE(n.Contains(Ip("::ffff:1.2.3.255")));
}

TEST(EgressRuleMatch, Ports) {
  ExpectMatches({
      {"x.com:443", Dom("x.com", 443), true},
      {"x.com:443", Dom("x.com", 80), false},
      {"x.com:443", Dom("x.com", 444), false},
      {"x.com:443", Dom("x.com", 442), false},
      {"x.com", Dom("x.com", 1), true},
      {"x.com", Dom("x.com", 65535), true},
      {"x.com", Dom("x.com", 0), true},
      {"x.com:8000-8999", Dom("x.com", 7999), false},
      {"x.com:8000-8999", Dom("x.com", 8000), true},
      {"x.com:8000-8999", Dom("x.com", 8999), true},
      {"x.com:8000-8999", Dom("x.com", 9000), false},
      {"x.com:80,8000-8999", Dom("x.com", 80), true},
      {"x.com:80,8000-8999", Dom("x.com", 81), false},
      {"x.com:80,8000-8999", Dom("x.com", 8500), true},
      {"x.com:1-65535", Dom("x.com", 65535), true},
      {"x.com:1-65535", Dom("x.com", 0), false},
      {"x.com:65535", Dom("x.com", 65535), true},
      {"10.0.0.0/8:5432", Addr("10.1.2.3", 5432), true},
      {"10.0.0.0/8:5432", Addr("10.1.2.3", 5433), false},
      {"[::1]:8080", Addr("::1", 8080), true},
      {"[::1]:8080", Addr("::1", 8081), false},
  });
}

TEST(EgressRuleMatch, ProtocolAllowRulesDefaultToTcp) {
  ExpectMatches({
      {"x.com", Dom("x.com", 53, Protocol::kTcp), true},
      {"x.com", Dom("x.com", 53, Protocol::kUdp), false},
      {"tcp://x.com", Dom("x.com", 53, Protocol::kUdp), false},
      {"udp://x.com", Dom("x.com", 53, Protocol::kUdp), true},
      {"udp://x.com", Dom("x.com", 53, Protocol::kTcp), false},
      {"udp://1.2.3.4:53", Addr("1.2.3.4", 53, Protocol::kUdp), true},
      {"1.2.3.4:53", Addr("1.2.3.4", 53, Protocol::kUdp), false},
  });
}

TEST(EgressRuleMatch, ProtocolDenyRulesWithoutOneCoverBoth) {
  EXPECT_TRUE(MustParse("x.com").MatchesAsDeny(Dom("x.com", 443, Protocol::kUdp)));
  EXPECT_TRUE(MustParse("x.com").MatchesAsDeny(Dom("x.com", 443, Protocol::kTcp)));
  EXPECT_FALSE(MustParse("tcp://x.com").MatchesAsDeny(Dom("x.com", 443, Protocol::kUdp)));
  EXPECT_FALSE(MustParse("udp://x.com").MatchesAsDeny(Dom("x.com", 443, Protocol::kTcp)));
  EXPECT_FALSE(MustParse("x.com:80").MatchesAsDeny(Dom("x.com", 443, Protocol::kUdp)));
  EXPECT_TRUE(MustParse("1.2.3.0/24").MatchesAsDeny(Addr("::ffff:1.2.3.9", 53, Protocol::kUdp)));
}

// ---------------------------------------------------------------- Decide

EgressPolicy MakePolicy(bool default_allow, std::vector<std::string> allow, std::vector<std::string> deny) {
  EgressPolicy p;
  p.default_allow = default_allow;
  for (const std::string& s : allow) p.allow.push_back(MustParse(s));
  for (const std::string& s : deny) p.deny.push_back(MustParse(s));
  return p;
}

TEST(EgressPolicyDecide, TheIssueExample) {
  EgressPolicy p = MakePolicy(
      false, {"pypi.org:443", "*.pythonhosted.org:443", "github.com:443,22", "10.20.0.0/16:5432"}, {"evil.pypi.org"});

  EgressDecision d = p.Decide(Both("pypi.org", "151.101.0.223", 443));
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.rule, &p.allow[0]);
  EXPECT_EQ(d.reason, "allowed by rule \"pypi.org:443\"");

  d = p.Decide(Dom("files.pythonhosted.org", 443));
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.rule, &p.allow[1]);

  d = p.Decide(Dom("pythonhosted.org", 443));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, nullptr);
  EXPECT_EQ(d.reason, "no rule allows tcp to pythonhosted.org:443");

  d = p.Decide(Dom("github.com", 22));
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.rule, &p.allow[2]);
  EXPECT_FALSE(p.Decide(Dom("github.com", 80)).allowed);

  d = p.Decide(Addr("10.20.3.4", 5432));
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.rule, &p.allow[3]);
  EXPECT_EQ(d.reason, "allowed by rule \"10.20.0.0/16:5432\"");
  EXPECT_FALSE(p.Decide(Addr("10.21.0.1", 5432)).allowed);

  d = p.Decide(Both("evil.pypi.org", "151.101.0.223", 443));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, &p.deny[0]);
  EXPECT_EQ(d.reason, "denied by rule \"evil.pypi.org\"");

  d = p.Decide(Both("pypi.org", "151.101.0.223", 80));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, "no rule allows tcp to pypi.org:80 (151.101.0.223)");

  d = p.Decide(Addr("1.2.3.4", 53, Protocol::kUdp));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, "no rule allows udp to 1.2.3.4:53");

  d = p.Decide(Addr("2001:db8::1", 443));
  EXPECT_EQ(d.reason, "no rule allows tcp to [2001:db8::1]:443");

  // A raw IP literal is not covered by a domain rule, even pypi.org's address.
  EXPECT_FALSE(p.Decide(Addr("151.101.0.223", 443)).allowed);
}

TEST(EgressPolicyDecide, DenyBeatsAllow) {
  EgressPolicy p = MakePolicy(false, {"*.pypi.org:443", "0.0.0.0/0:443"}, {"evil.pypi.org", "1.2.3.0/24"});
  EXPECT_TRUE(p.Decide(Dom("good.pypi.org", 443)).allowed);
  EgressDecision d = p.Decide(Dom("evil.pypi.org", 443));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, &p.deny[0]);
  EXPECT_FALSE(p.Decide(Dom("EVIL.pypi.org.", 443)).allowed);
  // An exact deny does not cover names below it.
  EXPECT_TRUE(p.Decide(Dom("a.evil.pypi.org", 443)).allowed);

  d = p.Decide(Addr("1.2.3.4", 443));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, &p.deny[1]);
  EXPECT_EQ(d.reason, "denied by rule \"1.2.3.0/24\"");
  // Not through the IPv4-mapped form either.
  d = p.Decide(Addr("::ffff:1.2.3.4", 443));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, &p.deny[1]);
  EXPECT_TRUE(p.Decide(Addr("::ffff:1.2.4.1", 443)).allowed);

  // A domain deny wins over an address allow for the same connection, and an
  // address deny over a domain allow.
  d = p.Decide(Both("evil.pypi.org", "9.9.9.9", 443));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, &p.deny[0]);
  d = p.Decide(Both("good.pypi.org", "1.2.3.9", 443));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, &p.deny[1]);
}

TEST(EgressPolicyDecide, DenyWithoutProtocolAlsoStopsUdp) {
  EgressPolicy p = MakePolicy(false, {"udp://*.example.com:443"}, {"evil.example.com"});
  EXPECT_TRUE(p.Decide(Dom("good.example.com", 443, Protocol::kUdp)).allowed);
  EgressDecision d = p.Decide(Dom("evil.example.com", 443, Protocol::kUdp));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, &p.deny[0]);

  EgressPolicy q = MakePolicy(false, {"udp://*.example.com:443"}, {"tcp://evil.example.com"});
  EXPECT_TRUE(q.Decide(Dom("evil.example.com", 443, Protocol::kUdp)).allowed);
}

TEST(EgressPolicyDecide, FirstMatchingRuleIsReported) {
  EgressPolicy p = MakePolicy(false, {"x.com:80", "*.x.com", "x.com"}, {"tcp://y.com", "y.com"});
  EXPECT_EQ(p.Decide(Dom("x.com", 443)).rule, &p.allow[2]);
  EXPECT_EQ(p.Decide(Dom("x.com", 80)).rule, &p.allow[0]);
  EXPECT_EQ(p.Decide(Dom("a.x.com", 80)).rule, &p.allow[1]);
  EXPECT_EQ(p.Decide(Dom("y.com", 80)).rule, &p.deny[0]);
  EXPECT_EQ(p.Decide(Dom("y.com", 80, Protocol::kUdp)).rule, &p.deny[1]);
}

TEST(EgressPolicyDecide, Defaults) {
  EgressPolicy deny_all;
  EgressDecision d = deny_all.Decide(Dom("example.com", 443));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, nullptr);
  EXPECT_EQ(d.reason, "no rule allows tcp to example.com:443");

  EgressPolicy allow_all = MakePolicy(true, {}, {"evil.com"});
  d = allow_all.Decide(Dom("example.com", 443));
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.rule, nullptr);
  EXPECT_EQ(d.reason, "no rule matches tcp to example.com:443; allowed by default");
  EXPECT_TRUE(allow_all.Decide(Addr("8.8.8.8", 53, Protocol::kUdp)).allowed);
  d = allow_all.Decide(Dom("evil.com", 443, Protocol::kUdp));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, "denied by rule \"evil.com\"");

  // Single-label destinations are valid but only a default can decide them.
  d = deny_all.Decide(Dom("localhost", 80));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, "no rule allows tcp to localhost:80");
}

TEST(EgressPolicyDecide, MalformedDestinationsAreDeniedEvenByDefaultAllow) {
  EgressPolicy p = MakePolicy(true, {"0.0.0.0/0"}, {"*.evil.com"});
  for (const std::string& bad :
       {std::string(""), std::string("."), std::string("x.evil.com.."), std::string("x..evil.com"),
        std::string(".x.evil.com"), std::string("x.evil.com\0", 11), std::string("x\0.evil.com", 11),
        std::string("x evil.com"), std::string("x.evil.com:443"), std::string("x/.evil.com"),
        std::string("b\xc3\xbc.evil.com"), std::string(254, 'a'), Cat({std::string(64, 'a'), ".com"})}) {
    EgressDecision d = p.Decide(Both(bad, "1.2.3.4", 443));
    EXPECT_FALSE(d.allowed) << bad;
    EXPECT_EQ(d.rule, nullptr);
    EXPECT_NE(d.reason.find("is not a valid host name"), std::string::npos) << d.reason;
    // Printable whatever the bytes.
    for (char c : d.reason) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << d.reason;
  }
  // At the limits, still valid.
  EXPECT_TRUE(p.Decide(Dom(Cat({std::string(63, 'a'), ".com"}), 443)).allowed);
  const std::string label63(63, 'a');
  EXPECT_TRUE(p.Decide(Dom(Cat({label63, ".", label63, ".", label63, ".", std::string(61, 'a')}), 443)).allowed);

  Destination nothing;
  nothing.port = 443;
  EgressDecision d = p.Decide(nothing);
  EXPECT_FALSE(d.allowed);
  EXPECT_NE(d.reason.find("neither a domain nor an address"), std::string::npos);

  Destination odd = Addr("1.2.3.4", 443);
  odd.address->family = 12345;
  d = p.Decide(odd);
  EXPECT_FALSE(d.allowed);
  EXPECT_NE(d.reason.find("unknown family"), std::string::npos);
}

TEST(EgressPolicyDecide, DomainOnlyAndAddressOnlyDestinations) {
  EgressPolicy p = MakePolicy(false, {"example.com", "10.0.0.0/8"}, {});
  EXPECT_TRUE(p.Decide(Dom("example.com", 1)).allowed);
  EXPECT_TRUE(p.Decide(Addr("10.0.0.1", 1)).allowed);
  EXPECT_FALSE(p.Decide(Dom("10.0.0.1", 1)).allowed);
  EXPECT_FALSE(p.Decide(Addr("93.184.216.34", 1)).allowed);
  // Either field may allow a destination that has both.
  EXPECT_TRUE(p.Decide(Both("example.com", "93.184.216.34", 1)).allowed);
  EXPECT_TRUE(p.Decide(Both("other.org", "10.9.9.9", 1)).allowed);
  EXPECT_FALSE(p.Decide(Both("other.org", "11.0.0.1", 1)).allowed);
}

}  // namespace
}  // namespace ward::net
