// libFuzzer target for the proxy's reading of a client's first bytes
// (SniffFirstBytes: TLS ClientHello or HTTP request, the workload's bytes) and
// the decision taken from them: any byte string yields one verdict, never a
// crash, and a name that comes out is a host name the rules can judge.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "net/egress_rules.h"
#include "net/tcp_decision.h"

namespace {

const ward::net::EgressPolicy& Policy() {
  static const ward::net::EgressPolicy policy = [] {
    ward::net::EgressPolicy p;
    for (const char* r : {"allowed.test:443", "*.wild.test:443", "10.0.0.0/8:443"}) p.allow.push_back(*ward::net::EgressRule::Parse(r));
    p.deny.push_back(*ward::net::EgressRule::Parse("evil.allowed.test"));
    return p;
  }();
  return policy;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ward::net::FirstBytes;
  FirstBytes f = ward::net::SniffFirstBytes(std::span<const uint8_t>(data, size));
  switch (f.status) {
    case FirstBytes::Status::kName: {
      if (f.name.empty() || f.name.size() > 253 || (f.source != "sni" && f.source != "http-host")) __builtin_trap();
      // The decision on that name, bound or not, never throws or crashes;
      // an unbound name never allows by a domain rule alone.
      std::vector<std::string> bound = {"allowed.test"};
      ward::net::IpAddress addr = ward::net::IpAddress::V4(192, 0, 2, 1);
      ward::net::TcpDecision unbound = ward::net::DecideTcp(ward::net::RebindingGuard(), Policy(), f.name, f.source, {}, addr, 443);
      if (unbound.allowed) __builtin_trap();
      (void)ward::net::DecideTcp(ward::net::RebindingGuard(), Policy(), f.name, f.source, bound, addr, 443);
      break;
    }
    case FirstBytes::Status::kRefuse:
      if (f.reason.empty()) __builtin_trap();
      break;
    case FirstBytes::Status::kNeedMore:
    case FirstBytes::Status::kNoName:
      break;
  }
  if (f.http && (f.http->head_length == 0 || f.http->head_length > size)) __builtin_trap();
  // A verdict on a prefix is the verdict on the whole (red-team finding 1:
  // bytes a lenient server reads as a request must not be judged as no name
  // on a prefix sent first).
  if (size > 0) {
    size_t cut = (size_t{data[0]} * 257 + size) % size;
    FirstBytes part = ward::net::SniffFirstBytes(std::span<const uint8_t>(data, cut));
    if (part.status != FirstBytes::Status::kNeedMore && part.status != f.status) __builtin_trap();
    if (part.status == FirstBytes::Status::kName && part.name != f.name) __builtin_trap();
  }
  // The same bytes after a request on a kept-alive connection (issue 8
  // item 6): a strict request or a refusal, never "no name" with a name.
  FirstBytes next = ward::net::SniffNextRequest(std::span<const uint8_t>(data, size));
  if (next.status == FirstBytes::Status::kRefuse && next.reason.empty()) __builtin_trap();
  if (next.status == FirstBytes::Status::kName && !next.http && next.source != "http-host") __builtin_trap();
  if (next.http && (next.http->head_length == 0 || next.http->head_length > size)) __builtin_trap();
  return 0;
}
