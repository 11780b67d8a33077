// DNS wire-format parsing: real-shaped queries and responses built byte by
// byte, and every rejection with its reason and offset.
#include "net/dns_message.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ward::net {
namespace {

// Builds DNS messages byte by byte; offsets are recorded with size() so
// compression pointers in the tests point where they claim to.
class Msg {
 public:
  Msg& U8(uint8_t v) {
    b_.push_back(v);
    return *this;
  }
  Msg& U16(uint16_t v) { return U8(static_cast<uint8_t>(v >> 8)).U8(static_cast<uint8_t>(v)); }
  Msg& U32(uint32_t v) { return U16(static_cast<uint16_t>(v >> 16)).U16(static_cast<uint16_t>(v)); }
  Msg& Raw(std::vector<uint8_t> v) {
    b_.insert(b_.end(), v.begin(), v.end());
    return *this;
  }
  Msg& Text(std::string_view s) {
    b_.insert(b_.end(), s.begin(), s.end());
    return *this;
  }
  // Labels of a dotted name, without the terminating root.
  Msg& Labels(std::string_view dotted) {
    while (!dotted.empty()) {
      size_t dot = dotted.find('.');
      std::string_view label = dotted.substr(0, dot);
      U8(static_cast<uint8_t>(label.size())).Text(label);
      dotted = dot == std::string_view::npos ? std::string_view() : dotted.substr(dot + 1);
    }
    return *this;
  }
  Msg& Name(std::string_view dotted) { return Labels(dotted).U8(0); }
  Msg& Ptr(size_t offset) { return U16(static_cast<uint16_t>(0xc000 | offset)); }
  Msg& Header(uint16_t id, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns, uint16_t ar) {
    return U16(id).U16(flags).U16(qd).U16(an).U16(ns).U16(ar);
  }
  // Fixed part of a resource record after its owner name; RDATA follows.
  Msg& Rr(uint16_t type, uint16_t klass, uint32_t ttl, uint16_t rdlen) {
    return U16(type).U16(klass).U32(ttl).U16(rdlen);
  }
  Msg& Opt(uint16_t udp, uint16_t flags, std::vector<uint8_t> options = {}) {
    U8(0).Rr(kDnsTypeOpt, udp, flags, static_cast<uint16_t>(options.size()));
    return Raw(std::move(options));
  }
  void Set16(size_t offset, uint16_t v) {
    b_[offset] = static_cast<uint8_t>(v >> 8);
    b_[offset + 1] = static_cast<uint8_t>(v);
  }
  size_t size() const { return b_.size(); }
  const std::vector<uint8_t>& bytes() const { return b_; }
  operator std::span<const uint8_t>() const { return b_; }  // NOLINT

 private:
  std::vector<uint8_t> b_;
};

// What `dig allowed.test` (BIND 9.18) sends: RD and AD set, one question,
// and an OPT record advertising 1232 bytes with an 8-byte client COOKIE.
Msg DigQuery() {
  Msg m;
  m.Header(0x8b1f, 0x0120, 1, 0, 0, 1)
      .Name("allowed.test")
      .U16(kDnsTypeA)
      .U16(kDnsClassIn)
      .Opt(1232, 0, {0x00, 0x0a, 0x00, 0x08, 0x5b, 0x3c, 0x7e, 0x20, 0x11, 0xa4, 0x9c, 0x02});
  return m;
}

Msg SimpleQuery(std::string_view name, uint16_t flags = 0x0100) {
  Msg m;
  m.Header(0x1234, flags, 1, 0, 0, 0).Name(name).U16(kDnsTypeA).U16(kDnsClassIn);
  return m;
}

void ExpectQueryError(const Msg& m, DnsErrc code, size_t offset) {
  auto q = ParseQuery(m);
  ASSERT_FALSE(q.has_value()) << "accepted";
  EXPECT_EQ(q.error().code, code) << DnsErrorString(q.error());
  EXPECT_EQ(q.error().offset, offset) << DnsErrorString(q.error());
}

void ExpectResponseError(const Msg& m, DnsErrc code) {
  auto r = ParseResponse(m);
  ASSERT_FALSE(r.has_value()) << "accepted";
  EXPECT_EQ(r.error().code, code) << DnsErrorString(r.error());
}

// ---------------------------------------------------------------------------
// Queries

TEST(DnsQuery, DigStyleQueryForAllowedTest) {
  Msg m = DigQuery();
  ASSERT_EQ(m.size(), 53u);
  auto q = ParseQuery(m);
  ASSERT_TRUE(q.has_value()) << DnsErrorString(q.error());
  EXPECT_EQ(q->id, 0x8b1f);
  EXPECT_EQ(q->flags, 0x0120);
  EXPECT_TRUE(q->recursion_desired());
  EXPECT_EQ(q->question.name, "allowed.test");
  EXPECT_EQ(q->question.qtype, kDnsTypeA);
  EXPECT_EQ(q->question.qclass, kDnsClassIn);
  std::vector<uint8_t> wire = {7, 'a', 'l', 'l', 'o', 'w', 'e', 'd', 4, 't', 'e', 's', 't', 0};
  EXPECT_EQ(q->question.wire_name, wire);
  ASSERT_TRUE(q->edns.has_value());
  EXPECT_EQ(q->edns->udp_payload_size, 1232);
  EXPECT_EQ(q->edns->version, 0);
  EXPECT_EQ(q->edns->options.size(), 12u);
}

TEST(DnsQuery, NameIsLowerCasedButWireKeepsCase) {
  // Resolvers randomize case (DNS 0x20) and check that answers echo it.
  auto q = ParseQuery(SimpleQuery("AlLoWeD.TeSt"));
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->question.name, "allowed.test");
  EXPECT_EQ(q->question.wire_name[1], 'A');
  EXPECT_FALSE(q->edns.has_value());
}

TEST(DnsQuery, AmbiguousLabelBytesAreEscaped) {
  // One label "allowed.test" must not read as the two labels allowed + test.
  Msg m;
  m.Header(1, 0, 1, 0, 0, 0).U8(12).Text("allowed.test").U8(0).U16(1).U16(1);
  auto q = ParseQuery(m);
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->question.name, "allowed\\.test");

  Msg m2;
  m2.Header(1, 0, 1, 0, 0, 0).U8(5).Raw({'a', ' ', '\\', 0x00, 0xff}).Name("test").U16(1).U16(1);
  q = ParseQuery(m2);
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->question.name, "a\\032\\\\\\000\\255.test");
}

TEST(DnsQuery, RootName) {
  Msg m;
  m.Header(1, 0, 1, 0, 0, 0).U8(0).U16(2).U16(1);
  auto q = ParseQuery(m);
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->question.name, ".");
}

TEST(DnsQuery, LongestNameIsAccepted) {
  // 3 labels of 63 + 1 label of 61: 4*1 + 189 + 61 + 1 (root) = 255 octets.
  std::string l63(63, 'a');
  std::string name = l63 + "." + l63 + "." + l63 + "." + std::string(61, 'b');
  auto q = ParseQuery(SimpleQuery(name));
  ASSERT_TRUE(q.has_value()) << DnsErrorString(q.error());
  EXPECT_EQ(q->question.wire_name.size(), 255u);
  EXPECT_EQ(q->question.name, name);
}

TEST(DnsQuery, RejectsNameOver255Octets) {
  std::string l63(63, 'a');
  std::string name = l63 + "." + l63 + "." + l63 + "." + std::string(62, 'b');
  // The fourth label (offset 12 + 3*64) would end at octet 256 with the root.
  ExpectQueryError(SimpleQuery(name), DnsErrc::kNameTooLong, 12 + 3 * 64);
}

TEST(DnsQuery, RejectsLabelLengthOver63) {
  Msg m;
  m.Header(1, 0, 1, 0, 0, 0).U8(64).Text(std::string(64, 'a')).U8(0).U16(1).U16(1);
  ExpectQueryError(m, DnsErrc::kLabelTooLong, 12);
  Msg m2;  // 0x80: reserved label type
  m2.Header(1, 0, 1, 0, 0, 0).U8(0x80).U8(0).U16(1).U16(1);
  ExpectQueryError(m2, DnsErrc::kLabelTooLong, 12);
}

TEST(DnsQuery, RejectsTruncation) {
  Msg full = DigQuery();
  std::vector<uint8_t> b = full.bytes();
  for (size_t n = 0; n < b.size(); ++n) {
    auto q = ParseQuery(std::span<const uint8_t>(b.data(), n));
    ASSERT_FALSE(q.has_value()) << n;
    EXPECT_EQ(q.error().code, DnsErrc::kTruncated) << n << ": " << DnsErrorString(q.error());
  }
}

TEST(DnsQuery, RejectsResponses) { ExpectQueryError(SimpleQuery("a.test", 0x8180), DnsErrc::kNotQuery, 2); }

TEST(DnsQuery, RejectsOtherOpcodesAndSaysWhich) {
  for (uint8_t opcode : {1, 2, 4, 5, 6, 15}) {
    auto q = ParseQuery(SimpleQuery("a.test", static_cast<uint16_t>(opcode << 11)));
    ASSERT_FALSE(q.has_value());
    EXPECT_EQ(q.error().code, DnsErrc::kUnsupportedOpcode);
    EXPECT_EQ(q.error().opcode, opcode);
  }
  auto q = ParseQuery(SimpleQuery("a.test", 5 << 11));
  EXPECT_EQ(DnsErrorString(q.error()), "unsupported_opcode 5 (UPDATE) at offset 2");
}

TEST(DnsQuery, RejectsQuestionCountOtherThanOne) {
  Msg none;
  none.Header(1, 0, 0, 0, 0, 0);
  ExpectQueryError(none, DnsErrc::kQuestionCount, 4);
  Msg two;
  two.Header(1, 0, 2, 0, 0, 0).Name("a.test").U16(1).U16(1).Name("b.test").U16(1).U16(1);
  ExpectQueryError(two, DnsErrc::kQuestionCount, 4);
}

TEST(DnsQuery, RejectsAnswerAuthorityAndExtraAdditionalRecords) {
  Msg an = SimpleQuery("a.test");
  an.Set16(6, 1);
  ExpectQueryError(an, DnsErrc::kUnexpectedRecords, 6);
  Msg ns = SimpleQuery("a.test");
  ns.Set16(8, 1);
  ExpectQueryError(ns, DnsErrc::kUnexpectedRecords, 8);
  Msg ar = DigQuery();
  ar.Set16(10, 2);
  ExpectQueryError(ar, DnsErrc::kUnexpectedRecords, 10);
}

TEST(DnsQuery, RejectsCompressionPointersInTheQuestion) {
  // Forward: to the qtype that follows.
  Msg fwd;
  fwd.Header(1, 0, 1, 0, 0, 0).Labels("a").Ptr(16).U16(1).U16(1);
  ExpectQueryError(fwd, DnsErrc::kBadPointer, 14);
  // Loop: a pointer to itself.
  Msg self;
  self.Header(1, 0, 1, 0, 0, 0).Ptr(12).U16(1).U16(1);
  ExpectQueryError(self, DnsErrc::kBadPointer, 12);
  // Into the header.
  Msg hdr;
  hdr.Header(1, 0, 1, 0, 0, 0).Labels("a").Ptr(4).U16(1).U16(1);
  ExpectQueryError(hdr, DnsErrc::kBadPointer, 14);
}

TEST(DnsQuery, AdditionalRecordMustBeOneRootOwnedOpt) {
  // TSIG (250) in the additional section.
  Msg tsig = SimpleQuery("a.test");
  tsig.Set16(10, 1);
  tsig.U8(0).Rr(250, 255, 0, 0);
  ExpectQueryError(tsig, DnsErrc::kBadAdditional, 25);
  // OPT with a non-root owner.
  Msg owner = SimpleQuery("a.test");
  owner.Set16(10, 1);
  owner.Name("x").Rr(kDnsTypeOpt, 1232, 0, 0);
  ExpectQueryError(owner, DnsErrc::kBadAdditional, 24);
  // OPT whose options overrun its RDATA.
  Msg opts = SimpleQuery("a.test");
  opts.Set16(10, 1);
  opts.Opt(1232, 0, {0x00, 0x0a, 0x00, 0x09, 1, 2, 3, 4, 5, 6, 7, 8});
  ExpectQueryError(opts, DnsErrc::kBadOpt, 35);
  // A lone byte of option.
  Msg stub = SimpleQuery("a.test");
  stub.Set16(10, 1);
  stub.Opt(1232, 0, {0x00});
  ExpectQueryError(stub, DnsErrc::kBadOpt, 35);
}

TEST(DnsQuery, RejectsTrailingBytes) {
  Msg m = SimpleQuery("a.test");
  size_t end = m.size();
  m.U8(0);
  ExpectQueryError(m, DnsErrc::kTrailingBytes, end);
  Msg d = DigQuery();
  d.U16(0);
  ExpectQueryError(d, DnsErrc::kTrailingBytes, 53);
}

TEST(DnsQuery, RejectsOversizedInput) {
  std::vector<uint8_t> big(65536, 0);
  auto q = ParseQuery(big);
  ASSERT_FALSE(q.has_value());
  EXPECT_EQ(q.error().code, DnsErrc::kTooLarge);
}

// ---------------------------------------------------------------------------
// Error responses

TEST(DnsErrorResponse, NxDomainEchoesIdAndQuestion) {
  auto q = ParseQuery(SimpleQuery("Denied.Test"));
  ASSERT_TRUE(q.has_value());
  std::vector<uint8_t> r = BuildErrorResponse(*q, DnsRcode::kNxDomain);
  Msg expect;
  expect.Header(0x1234, 0x8183, 1, 0, 0, 0).Name("Denied.Test").U16(1).U16(1);
  EXPECT_EQ(r, expect.bytes());

  auto parsed = ParseResponse(r);
  ASSERT_TRUE(parsed.has_value()) << DnsErrorString(parsed.error());
  EXPECT_EQ(parsed->id, 0x1234);
  EXPECT_EQ(parsed->rcode, 3);
  ASSERT_TRUE(parsed->question.has_value());
  EXPECT_EQ(parsed->question->name, "denied.test");
  EXPECT_EQ(parsed->question->wire_name, q->question.wire_name);
  EXPECT_TRUE(parsed->answers.empty());
  EXPECT_TRUE(ResponseMatchesQuery(*q, *parsed));
}

TEST(DnsErrorResponse, RefusedKeepsEdnsAndDoBit) {
  Msg m = DigQuery();
  m.Set16(m.size() - 16, 0x8000);  // DO in the OPT's TTL field
  auto q = ParseQuery(m);
  ASSERT_TRUE(q.has_value()) << DnsErrorString(q.error());
  ASSERT_EQ(q->edns->flags, 0x8000);
  std::vector<uint8_t> r = BuildErrorResponse(*q, DnsRcode::kRefused);
  auto parsed = ParseResponse(r);
  ASSERT_TRUE(parsed.has_value()) << DnsErrorString(parsed.error());
  EXPECT_EQ(parsed->rcode, 5);
  EXPECT_EQ(parsed->flags & (kDnsFlagQr | kDnsFlagRa | kDnsFlagRd | kDnsFlagAd), 0x8180);
  ASSERT_TRUE(parsed->edns.has_value());
  EXPECT_EQ(parsed->edns->udp_payload_size, kDnsEdnsUdpSize);
  EXPECT_EQ(parsed->edns->flags, 0x8000);
  EXPECT_TRUE(parsed->edns->options.empty());  // the client cookie is not echoed
  EXPECT_TRUE(ResponseMatchesQuery(*q, *parsed));
}

TEST(DnsErrorResponse, HeaderOnlyForUnparsableQueries) {
  Msg update = SimpleQuery("a.test", 0x2900);  // UPDATE, RD
  ASSERT_FALSE(ParseQuery(update).has_value());
  auto r = BuildHeaderOnlyResponse(update, DnsRcode::kNotImp);
  ASSERT_TRUE(r.has_value());
  Msg expect;
  expect.Header(0x1234, 0xa984, 0, 0, 0, 0);
  EXPECT_EQ(*r, expect.bytes());
  auto parsed = ParseResponse(*r);
  ASSERT_FALSE(parsed.has_value());  // an UPDATE response is still not a QUERY
  EXPECT_EQ(parsed.error().code, DnsErrc::kUnsupportedOpcode);

  auto formerr = BuildHeaderOnlyResponse(SimpleQuery("a.test"), DnsRcode::kFormErr);
  ASSERT_TRUE(formerr.has_value());
  auto p2 = ParseResponse(*formerr);
  ASSERT_TRUE(p2.has_value());
  EXPECT_EQ(p2->rcode, 1);
  EXPECT_FALSE(p2->question.has_value());

  // Never answer a response, nor something shorter than a header.
  EXPECT_FALSE(BuildHeaderOnlyResponse(SimpleQuery("a.test", 0x8180), DnsRcode::kFormErr));
  std::vector<uint8_t> short_msg(11, 0);
  EXPECT_FALSE(BuildHeaderOnlyResponse(short_msg, DnsRcode::kFormErr));
}

// ---------------------------------------------------------------------------
// Responses

// www.allowed.test -> cdn.allowed.test -> edge.example.net, which has two A
// and one AAAA records; an unrelated A record for evil.test rides along.
// Owners and targets use compression pointers as a real server writes them.
Msg CnameChainResponse() {
  Msg m;
  m.Header(0xbeef, 0x8180, 1, 7, 1, 1);
  size_t qname = m.size();  // 12
  m.Labels("www");
  size_t allowed = m.size();  // 16: "allowed.test"
  m.Name("allowed.test").U16(kDnsTypeA).U16(kDnsClassIn);
  // www.allowed.test CNAME cdn.allowed.test (ttl 300)
  m.Ptr(qname).Rr(kDnsTypeCname, kDnsClassIn, 300, 6);
  size_t cdn = m.size();
  m.Labels("cdn").Ptr(allowed);
  // cdn.allowed.test CNAME edge.example.net (ttl 60)
  m.Ptr(cdn).Rr(kDnsTypeCname, kDnsClassIn, 60, 18);
  size_t edge = m.size();
  m.Name("edge.example.net");
  m.Ptr(edge).Rr(kDnsTypeA, kDnsClassIn, 120, 4).Raw({192, 0, 2, 10});
  m.Ptr(edge).Rr(kDnsTypeA, kDnsClassIn, 30, 4).Raw({192, 0, 2, 11});
  m.Ptr(edge)
      .Rr(kDnsTypeAaaa, kDnsClassIn, 3600, 16)
      .Raw({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10});
  // An answer the query did not ask for.
  m.Name("evil.test").Rr(kDnsTypeA, kDnsClassIn, 300, 4).Raw({203, 0, 113, 66});
  // A TXT record in the answer: checked, skipped.
  m.Ptr(qname).Rr(16, kDnsClassIn, 300, 4).Raw({3, 'a', 'b', 'c'});
  // Authority: allowed.test NS ns1.allowed.test.
  m.Ptr(allowed).Rr(2, kDnsClassIn, 86400, 6).Labels("ns1").Ptr(allowed);
  m.Opt(1232, 0);
  return m;
}

TEST(DnsResponse, CnameChainWithCompression) {
  Msg m = CnameChainResponse();
  auto r = ParseResponse(m);
  ASSERT_TRUE(r.has_value()) << DnsErrorString(r.error());
  EXPECT_EQ(r->id, 0xbeef);
  EXPECT_EQ(r->rcode, 0);
  EXPECT_FALSE(r->truncated());
  ASSERT_TRUE(r->question.has_value());
  EXPECT_EQ(r->question->name, "www.allowed.test");
  ASSERT_EQ(r->answers.size(), 6u);  // TXT skipped
  EXPECT_EQ(r->answers[0].name, "www.allowed.test");
  EXPECT_EQ(r->answers[0].type, kDnsTypeCname);
  EXPECT_EQ(r->answers[0].cname, "cdn.allowed.test");
  EXPECT_EQ(r->answers[1].name, "cdn.allowed.test");
  EXPECT_EQ(r->answers[1].cname, "edge.example.net");
  EXPECT_EQ(r->answers[2].name, "edge.example.net");
  EXPECT_EQ(r->answers[2].address, (DnsAddress{false, {192, 0, 2, 10}}));
  EXPECT_TRUE(r->answers[4].address.v6);
  EXPECT_EQ(r->answers[5].name, "evil.test");
  ASSERT_TRUE(r->edns.has_value());

  std::vector<ResolvedAddress> addrs = AddressesFor(*r, "WWW.Allowed.Test");
  ASSERT_EQ(addrs.size(), 3u);
  EXPECT_EQ(addrs[0].address, (DnsAddress{false, {192, 0, 2, 10}}));
  EXPECT_EQ(addrs[0].ttl, 60u);  // the cdn CNAME's TTL bounds the chain
  EXPECT_EQ(addrs[1].address, (DnsAddress{false, {192, 0, 2, 11}}));
  EXPECT_EQ(addrs[1].ttl, 30u);
  EXPECT_TRUE(addrs[2].address.v6);
  EXPECT_EQ(addrs[2].address.view().size(), 16u);
  EXPECT_EQ(addrs[2].ttl, 60u);
  for (const auto& a : addrs) {
    EXPECT_NE(a.address, (DnsAddress{false, {203, 0, 113, 66}})) << "unrelated record attached";
  }
  EXPECT_EQ(AddressesFor(*r, "cdn.allowed.test").size(), 3u);
  EXPECT_TRUE(AddressesFor(*r, "allowed.test").empty());
  EXPECT_TRUE(AddressesFor(*r, "other.test").empty());
}

TEST(DnsResponse, MatchesOnlyItsQuery) {
  Msg qm;
  qm.Header(0xbeef, 0x0100, 1, 0, 0, 0).Name("WWW.allowed.test").U16(kDnsTypeA).U16(kDnsClassIn);
  auto q = ParseQuery(qm);
  ASSERT_TRUE(q.has_value());
  auto r = ParseResponse(CnameChainResponse());
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(ResponseMatchesQuery(*q, *r));
  DnsQuery other_id = *q;
  other_id.id = 1;
  EXPECT_FALSE(ResponseMatchesQuery(other_id, *r));
  DnsQuery other_type = *q;
  other_type.question.qtype = kDnsTypeAaaa;
  EXPECT_FALSE(ResponseMatchesQuery(other_type, *r));
  DnsQuery other_name = *q;
  other_name.question.name = "allowed.test";
  EXPECT_FALSE(ResponseMatchesQuery(other_name, *r));
  DnsResponse no_question = *r;
  no_question.question.reset();
  EXPECT_FALSE(ResponseMatchesQuery(*q, no_question));
}

TEST(DnsResponse, CnameLoopTerminates) {
  Msg m;
  m.Header(1, 0x8180, 1, 3, 0, 0).Name("a.test").U16(1).U16(1);
  m.Name("a.test").Rr(kDnsTypeCname, 1, 10, 8).Name("b.test");
  m.Name("b.test").Rr(kDnsTypeCname, 1, 10, 8).Name("a.test");
  m.Name("b.test").Rr(kDnsTypeA, 1, 10, 4).Raw({10, 0, 0, 1});
  auto r = ParseResponse(m);
  ASSERT_TRUE(r.has_value()) << DnsErrorString(r.error());
  auto addrs = AddressesFor(*r, "a.test");
  ASSERT_EQ(addrs.size(), 1u);
  EXPECT_EQ(addrs[0].address.bytes[3], 1);
}

TEST(DnsResponse, CnameChainDepthIsBounded) {
  // n0 -> n1 -> ... -> n20, address on n20: beyond kDnsMaxCnameHops.
  const int kLinks = 20;
  Msg m;
  m.Header(1, 0x8180, 1, kLinks + 1, 0, 0).Name("n0.test").U16(1).U16(1);
  // (std::to_string(n).append(...) rather than "n" + ...: g++ 12 -O3 warns
  // falsely on the latter with -Wrestrict.)
  auto name = [](int n) { return std::string(1, 'n').append(std::to_string(n)).append(".test"); };
  for (int i = 0; i < kLinks; ++i) {
    std::string to = name(i + 1);
    m.Name(name(i)).Rr(kDnsTypeCname, 1, 10, static_cast<uint16_t>(to.size() + 2)).Name(to);
  }
  m.Name("n20.test").Rr(kDnsTypeA, 1, 10, 4).Raw({10, 0, 0, 20});
  auto r = ParseResponse(m);
  ASSERT_TRUE(r.has_value()) << DnsErrorString(r.error());
  EXPECT_TRUE(AddressesFor(*r, "n0.test").empty());
  EXPECT_EQ(AddressesFor(*r, "n4.test").size(), 1u);  // 16 links away
  EXPECT_TRUE(AddressesFor(*r, "n3.test").empty());   // 17 links away
}

TEST(DnsResponse, TtlWithTopBitReadsAsZero) {
  Msg m;
  m.Header(1, 0x8180, 1, 1, 0, 0).Name("a.test").U16(1).U16(1);
  m.Ptr(12).Rr(kDnsTypeA, 1, 0x80000000, 4).Raw({10, 0, 0, 1});
  auto r = ParseResponse(m);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->answers[0].ttl, 0u);
}

TEST(DnsResponse, ExtendedRcodeFromOpt) {
  Msg m;
  m.Header(1, 0x8180, 0, 0, 0, 1).U8(0).Rr(kDnsTypeOpt, 1232, 0x01000000, 0);  // BADVERS = 16
  auto r = ParseResponse(m);
  ASSERT_TRUE(r.has_value()) << DnsErrorString(r.error());
  EXPECT_EQ(r->rcode, 16);
}

TEST(DnsResponse, TruncatedFlagIsReported) {
  Msg m;
  m.Header(1, 0x8380, 1, 0, 0, 0).Name("a.test").U16(1).U16(1);
  auto r = ParseResponse(m);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->truncated());
}

TEST(DnsResponse, RejectsQueriesAndOtherOpcodes) {
  ExpectResponseError(SimpleQuery("a.test"), DnsErrc::kNotResponse);
  ExpectResponseError(SimpleQuery("a.test", 0x8000 | (4 << 11)), DnsErrc::kUnsupportedOpcode);
  Msg two;
  two.Header(1, 0x8180, 2, 0, 0, 0).Name("a.test").U16(1).U16(1).Name("b.test").U16(1).U16(1);
  ExpectResponseError(two, DnsErrc::kQuestionCount);
}

TEST(DnsResponse, RejectsEveryTruncation) {
  Msg full = CnameChainResponse();
  const std::vector<uint8_t>& b = full.bytes();
  for (size_t n = 0; n < b.size(); ++n) {
    auto r = ParseResponse(std::span<const uint8_t>(b.data(), n));
    ASSERT_FALSE(r.has_value()) << n;
    EXPECT_EQ(r.error().code, DnsErrc::kTruncated) << n << ": " << DnsErrorString(r.error());
  }
}

TEST(DnsResponse, RejectsPointerLoops) {
  // The answer's owner points at itself.
  Msg self;
  self.Header(1, 0x8180, 1, 1, 0, 0).Name("a.test").U16(1).U16(1);
  size_t at = self.size();
  self.Ptr(at).Rr(kDnsTypeA, 1, 1, 4).Raw({1, 2, 3, 4});
  ExpectResponseError(self, DnsErrc::kBadPointer);

  // Two pointers pointing at each other (36 -> 38 -> 36): reached from 40,
  // the jumps to 38 and 36 go backwards, the one back to 38 does not.
  Msg pair;
  pair.Header(1, 0x8180, 1, 1, 0, 0).Name("a.test").U16(1).U16(1);  // ends at 24
  pair.Ptr(12).Rr(16, 1, 1, 4);                                     // TXT whose RDATA holds two pointers
  size_t p1 = pair.size();                                          // 36
  pair.Ptr(p1 + 2).Ptr(p1);
  // Owner of an extra answer: pointer to p1 + 2, which points to p1, which
  // points forward to p1 + 2.
  pair.Set16(6, 2);
  pair.Ptr(p1 + 2).Rr(kDnsTypeA, 1, 1, 4).Raw({1, 2, 3, 4});
  ExpectResponseError(pair, DnsErrc::kBadPointer);

  // A forward pointer in a CNAME's RDATA.
  Msg fwd;
  fwd.Header(1, 0x8180, 1, 1, 0, 0).Name("a.test").U16(1).U16(1);
  size_t rr = fwd.size();
  fwd.Ptr(12).Rr(kDnsTypeCname, 1, 1, 2).Ptr(rr + 14);
  fwd.Name("x");  // the pointer's target, after the record
  ExpectResponseError(fwd, DnsErrc::kBadPointer);
}

TEST(DnsResponse, RejectsTooManyPointerHops) {
  // A TXT record's RDATA holds a chain of 130 pointers, each to the one
  // before it, the first to the question name; an answer's owner points at
  // the last. Every jump goes backwards, but there are too many.
  const int kChain = 130;
  Msg m;
  m.Header(1, 0x8180, 1, 2, 0, 0).Name("a.test").U16(1).U16(1);
  m.Ptr(12).Rr(16, 1, 1, static_cast<uint16_t>(2 * kChain));
  size_t first = m.size();
  m.Ptr(12);
  for (int i = 1; i < kChain; ++i) m.Ptr(first + 2 * (i - 1));
  m.Ptr(first + 2 * (kChain - 1)).Rr(kDnsTypeA, 1, 1, 4).Raw({1, 2, 3, 4});
  ExpectResponseError(m, DnsErrc::kTooManyPointers);

  // 100 hops are within the limit.
  Msg ok;
  ok.Header(1, 0x8180, 1, 2, 0, 0).Name("a.test").U16(1).U16(1);
  ok.Ptr(12).Rr(16, 1, 1, 200);
  first = ok.size();
  ok.Ptr(12);
  for (int i = 1; i < 100; ++i) ok.Ptr(first + 2 * (i - 1));
  ok.Ptr(first + 2 * 99).Rr(kDnsTypeA, 1, 1, 4).Raw({1, 2, 3, 4});
  auto r = ParseResponse(ok);
  ASSERT_TRUE(r.has_value()) << DnsErrorString(r.error());
  EXPECT_EQ(r->answers[0].name, "a.test");
}

TEST(DnsResponse, RejectsDecompressedNameOver255Octets) {
  // Each name adds a 63-octet label in front of the previous one.
  Msg m;
  m.Header(1, 0x8180, 1, 5, 0, 0).Name("a.test").U16(1).U16(1);
  size_t prev = 12;
  for (int i = 0; i < 5; ++i) {
    size_t at = m.size();
    m.U8(63).Text(std::string(63, 'x')).Ptr(prev).Rr(16, 1, 1, 0);
    prev = at;
  }
  ExpectResponseError(m, DnsErrc::kNameTooLong);
}

TEST(DnsResponse, RejectsBadRdata) {
  Msg a;
  a.Header(1, 0x8180, 1, 1, 0, 0).Name("a.test").U16(1).U16(1).Ptr(12).Rr(kDnsTypeA, 1, 1, 5).Raw({1, 2, 3, 4, 5});
  ExpectResponseError(a, DnsErrc::kBadRdata);
  Msg aaaa;
  aaaa.Header(1, 0x8180, 1, 1, 0, 0).Name("a.test").U16(28).U16(1).Ptr(12).Rr(kDnsTypeAaaa, 1, 1, 4).Raw({1, 2, 3, 4});
  ExpectResponseError(aaaa, DnsErrc::kBadRdata);
  Msg cname;  // one byte after the target name, inside RDATA
  cname.Header(1, 0x8180, 1, 1, 0, 0).Name("a.test").U16(1).U16(1).Ptr(12).Rr(kDnsTypeCname, 1, 1, 4).Name("b").U8(0);
  ExpectResponseError(cname, DnsErrc::kBadRdata);
  Msg cname_short;  // RDATA shorter than the name: the name runs into the next bytes
  cname_short.Header(1, 0x8180, 1, 1, 0, 0).Name("a.test").U16(1).U16(1).Ptr(12).Rr(kDnsTypeCname, 1, 1, 1).Name("b");
  ExpectResponseError(cname_short, DnsErrc::kBadRdata);
  // A of class CH is not an address: skipped, not an error.
  Msg ch;
  ch.Header(1, 0x8180, 1, 1, 0, 0).Name("a.test").U16(1).U16(3).Ptr(12).Rr(kDnsTypeA, 3, 1, 2).Raw({1, 2});
  auto r = ParseResponse(ch);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->answers.empty());
}

TEST(DnsResponse, RejectsMisplacedOrDuplicateOpt) {
  Msg in_answer;
  in_answer.Header(1, 0x8180, 1, 1, 0, 0).Name("a.test").U16(1).U16(1).Opt(1232, 0);
  ExpectResponseError(in_answer, DnsErrc::kBadOpt);
  Msg two;
  two.Header(1, 0x8180, 1, 0, 0, 2).Name("a.test").U16(1).U16(1).Opt(1232, 0).Opt(1232, 0);
  ExpectResponseError(two, DnsErrc::kDuplicateOpt);
  Msg named;
  named.Header(1, 0x8180, 1, 0, 0, 1).Name("a.test").U16(1).U16(1).Ptr(12).Rr(kDnsTypeOpt, 1232, 0, 0);
  ExpectResponseError(named, DnsErrc::kBadOpt);
}

TEST(DnsResponse, RejectsTrailingBytes) {
  Msg m = CnameChainResponse();
  m.U8(0);
  ExpectResponseError(m, DnsErrc::kTrailingBytes);
}

// ---------------------------------------------------------------------------
// DNS over TCP

TEST(DnsTcp, FramingSplitsMessages) {
  Msg q = DigQuery();
  auto framed = FrameDnsTcpMessage(q);
  ASSERT_TRUE(framed.has_value());
  ASSERT_EQ(framed->size(), 55u);
  EXPECT_EQ((*framed)[0], 0);
  EXPECT_EQ((*framed)[1], 53);

  std::vector<uint8_t> stream = *framed;
  Msg q2 = SimpleQuery("b.test");
  auto framed2 = FrameDnsTcpMessage(q2);
  stream.insert(stream.end(), framed2->begin(), framed2->end());

  for (size_t n = 0; n < 55; ++n) {
    DnsTcpFrame f = NextDnsTcpMessage(std::span<const uint8_t>(stream.data(), n));
    EXPECT_EQ(f.status, DnsTcpStatus::kNeedMore) << n;
    EXPECT_EQ(f.need, n < 2 ? 2u : 55u) << n;
  }
  DnsTcpFrame f = NextDnsTcpMessage(stream);
  ASSERT_EQ(f.status, DnsTcpStatus::kMessage);
  EXPECT_EQ(f.consumed, 55u);
  auto parsed = ParseQuery(f.message);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->question.name, "allowed.test");

  DnsTcpFrame g = NextDnsTcpMessage(std::span<const uint8_t>(stream).subspan(f.consumed));
  ASSERT_EQ(g.status, DnsTcpStatus::kMessage);
  EXPECT_EQ(g.consumed, stream.size() - 55);
  EXPECT_EQ(ParseQuery(g.message)->question.name, "b.test");
}

TEST(DnsTcp, RejectsLengthBelowHeaderAndOversizedMessages) {
  std::vector<uint8_t> zero = {0, 0};
  EXPECT_EQ(NextDnsTcpMessage(zero).status, DnsTcpStatus::kMalformed);
  std::vector<uint8_t> eleven = {0, 11, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  EXPECT_EQ(NextDnsTcpMessage(eleven).status, DnsTcpStatus::kMalformed);
  std::vector<uint8_t> big(65536, 0);
  EXPECT_FALSE(FrameDnsTcpMessage(big).has_value());
  std::vector<uint8_t> max(65535, 0);
  auto f = FrameDnsTcpMessage(max);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ((*f)[0], 0xff);
  EXPECT_EQ((*f)[1], 0xff);
}

TEST(DnsErrc, NamesAreStable) {
  EXPECT_EQ(DnsErrcName(DnsErrc::kBadPointer), "bad_pointer");
  EXPECT_EQ(DnsErrcName(DnsErrc::kTrailingBytes), "trailing_bytes");
  EXPECT_EQ(DnsErrorString(DnsError{DnsErrc::kTruncated, 7, 0}), "truncated at offset 7");
}

}  // namespace
}  // namespace ward::net
