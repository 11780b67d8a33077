// libFuzzer target for the DNS message parsers: any byte string must be
// accepted or refused with a reason, never crash, hang or over-read; and an
// accepted query's error response must parse back as a response to it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "net/dns_filter.h"
#include "net/dns_message.h"

namespace {

using ward::net::DnsRcode;

// Parsed names are lower-cased presentation text: no ASCII capitals.
void CheckName(std::string_view name) {
  if (name.empty()) __builtin_trap();
  for (char c : name) {
    if (c >= 'A' && c <= 'Z') __builtin_trap();
  }
}

void CheckQuery(std::span<const uint8_t> in, const ward::net::DnsQuery& q) {
  CheckName(q.question.name);
  if (q.question.wire_name.size() > ward::net::kDnsMaxNameOctets) __builtin_trap();
  for (DnsRcode rcode : {DnsRcode::kNxDomain, DnsRcode::kRefused, DnsRcode::kNoError}) {
    std::vector<uint8_t> bytes = ward::net::BuildErrorResponse(q, rcode);
    auto r = ward::net::ParseResponse(bytes);
    if (!r) __builtin_trap();
    if (r->id != q.id || r->rcode != static_cast<uint16_t>(rcode) || !r->question ||
        r->question->wire_name != q.question.wire_name || r->question->name != q.question.name ||
        r->question->qtype != q.question.qtype || r->question->qclass != q.question.qclass || !r->answers.empty() ||
        r->edns.has_value() != q.edns.has_value() || !ward::net::ResponseMatchesQuery(q, *r)) {
      __builtin_trap();
    }
  }
  // A query is never also a response.
  if (ward::net::ParseResponse(in)) __builtin_trap();
  // Through TCP framing and back, byte for byte.
  auto framed = ward::net::FrameDnsTcpMessage(in);
  if (!framed) __builtin_trap();
  ward::net::DnsTcpFrame f = ward::net::NextDnsTcpMessage(*framed);
  if (f.status != ward::net::DnsTcpStatus::kMessage || f.consumed != framed->size() || f.message.size() != in.size() ||
      !std::equal(in.begin(), in.end(), f.message.begin())) {
    __builtin_trap();
  }
}

void CheckResponse(const ward::net::DnsResponse& r) {
  if (r.question) {
    CheckName(r.question->name);
    if (ward::net::AddressesFor(r, r.question->name).size() > r.answers.size()) __builtin_trap();
  }
  for (const auto& a : r.answers) {
    CheckName(a.name);
    if (a.type == ward::net::kDnsTypeCname) CheckName(a.cname);
    if (a.ttl > 0x7fffffff) __builtin_trap();
  }
  // The worst case for AddressesFor: every owner in the answer.
  size_t n = 0;
  for (const auto& a : r.answers) {
    if (++n > 64) break;
    if (ward::net::AddressesFor(r, a.name).size() > r.answers.size()) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  auto q = ward::net::ParseQuery(in);
  if (q) {
    CheckQuery(in, *q);
    // The query forwarded upstream for it (issue 8 item 8): well formed,
    // no options, the same question name length, and its answer mapped back
    // without touching anything outside the message.
    std::vector<uint8_t> fresh = ward::net::BuildForwardedQuery(*q);
    auto ours = ward::net::ParseQuery(fresh);
    if (!ours || ours->question.wire_name.size() != q->question.wire_name.size() ||
        ours->question.qtype != q->question.qtype || (ours->edns && !ours->edns->options.empty()) ||
        ours->edns.has_value() != q->edns.has_value()) {
      __builtin_trap();
    }
    std::vector<uint8_t> copy(in.begin(), in.end());
    ward::net::RestoreProgramQuestion(copy, *q);
    if (copy.size() != size) __builtin_trap();
  } else {
    (void)ward::net::DnsErrorString(q.error());
    auto header_only = ward::net::BuildHeaderOnlyResponse(in, DnsRcode::kFormErr);
    if (header_only) {
      if (header_only->size() != ward::net::kDnsHeaderSize) __builtin_trap();
      auto r = ward::net::ParseResponse(*header_only);
      uint8_t opcode = static_cast<uint8_t>((data[2] >> 3) & 0xf);
      if (opcode == 0 && (!r || r->id != ((data[0] << 8) | data[1]) || r->rcode != 1)) __builtin_trap();
    }
  }
  auto r = ward::net::ParseResponse(in);
  if (r) CheckResponse(*r);

  ward::net::DnsTcpFrame f = ward::net::NextDnsTcpMessage(in);
  if (f.status == ward::net::DnsTcpStatus::kMessage) {
    if (f.consumed > size || f.message.size() + 2 != f.consumed) __builtin_trap();
    auto inner = ward::net::ParseQuery(f.message);
    (void)inner;
  } else if (f.status == ward::net::DnsTcpStatus::kNeedMore && f.need <= size) {
    __builtin_trap();
  }
  return 0;
}
