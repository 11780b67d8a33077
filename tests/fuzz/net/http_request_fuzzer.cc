// libFuzzer target for the HTTP/1.x request-head and CONNECT parsers: any
// byte string yields one verdict, never a crash or an over-read; an accepted
// head is decided by its own bytes only, and no prefix of it is decided.
// Also the request-body reader (issue 8 item 6): fed the same bytes whole or
// split anywhere, it consumes the same and ends at the same byte; and the
// lenient request-line reading (LenientRequestLine) is monotone; and the
// server-answer reader (HttpResponseReader) agrees with itself fed whole,
// split, or with bodies skipped unread.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "net/sniff.h"

namespace {

using ward::net::HttpSniffStatus;

void CheckHost(const std::string& host) {
  if (host.empty()) __builtin_trap();
  for (char c : host) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == ':';
    if (!ok) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  ward::net::HttpRequestHead h = ward::net::ParseHttpRequestHead(in);
  switch (h.status) {
    case HttpSniffStatus::kNeedMore:
      if (size >= ward::net::kMaxHttpHeadSize) __builtin_trap();
      break;
    case HttpSniffStatus::kNotHttp:
      break;
    case HttpSniffStatus::kMalformed:
      if (h.error == ward::net::HttpError::kNone) __builtin_trap();
      (void)ward::net::HttpErrorName(h.error);
      break;
    case HttpSniffStatus::kRequest:
    case HttpSniffStatus::kAmbiguousHost: {
      if (h.head_length < 4 || h.head_length > size || h.head_length > ward::net::kMaxHttpHeadSize ||
          in.substr(h.head_length - 4, 4) != "\r\n\r\n") {
        __builtin_trap();
      }
      if (!h.host.empty()) CheckHost(h.host);
      if (!h.target_host.empty()) CheckHost(h.target_host);
      // No name to decide on: only HTTP/1.0, which needs no Host (its
      // address decides).
      if (h.host.empty() && h.target_host.empty() && h.version_minor != 0) __builtin_trap();
      if (h.status == HttpSniffStatus::kRequest) {
        // What the explicit proxy sends on is a request of its own, naming
        // the same host, in origin-form.
        std::string forwarded = ward::net::OriginFormHead(in.substr(0, h.head_length), h);
        ward::net::HttpRequestHead f = ward::net::ParseHttpRequestHead(forwarded);
        if (f.status != HttpSniffStatus::kRequest || f.head_length != forwarded.size() || f.method != h.method) {
          __builtin_trap();
        }
        if (!h.target_host.empty() && h.method != "CONNECT" && (!f.target_host.empty() || f.host.empty())) {
          __builtin_trap();
        }
      }
      if (h.status == HttpSniffStatus::kAmbiguousHost && (h.host.empty() || h.target_host.empty())) {
        __builtin_trap();
      }
      ward::net::HttpRequestHead exact = ward::net::ParseHttpRequestHead(in.substr(0, h.head_length));
      if (exact.status != h.status || exact.host != h.host || exact.port != h.port ||
          exact.target_host != h.target_host || exact.method != h.method || exact.target != h.target) {
        __builtin_trap();
      }
      ward::net::HttpRequestHead shorter = ward::net::ParseHttpRequestHead(in.substr(0, h.head_length - 1));
      if (shorter.status != HttpSniffStatus::kNeedMore) __builtin_trap();
      break;
    }
  }

  if (size > 0) {
    // Body framing chosen by the first byte; the body is the rest.
    ward::net::HttpBodyFraming framing{0, static_cast<uint64_t>(data[0] & 0x3f), (data[0] & 0x80) != 0, false};
    std::span<const uint8_t> body(data + 1, size - 1);
    ward::net::HttpBodyReader whole(framing);
    ward::net::HttpBodyReader::Step w = whole.Feed(body);
    if (w.consumed > body.size() || (w.done && w.malformed)) __builtin_trap();
    size_t split = body.empty() ? 0 : data[0] % (body.size() + 1);
    ward::net::HttpBodyReader parts(framing);
    ward::net::HttpBodyReader::Step a = parts.Feed(body.first(split));
    if (a.consumed > split) __builtin_trap();
    if (!a.malformed && !a.done) {
      ward::net::HttpBodyReader::Step b = parts.Feed(body.subspan(split));
      if (b.malformed != w.malformed || b.done != w.done || (!w.malformed && a.consumed + b.consumed != w.consumed)) {
        __builtin_trap();
      }
    } else if (a.done && (!w.done || a.consumed != w.consumed)) {
      __builtin_trap();
    } else if (a.malformed && !w.malformed) {
      __builtin_trap();
    }
  }
  // The lenient reading of a first line (issue 8 items 6, 9; red-team
  // finding 1) is monotone: what a prefix decides, the whole says too, so
  // a client cannot split its bytes to be judged on a harmless prefix.
  for (ward::net::LenientReader reader : {ward::net::LenientReader::kFirstBytes, ward::net::LenientReader::kBody}) {
    HttpSniffStatus whole = ward::net::LenientRequestLine(in, reader);
    size_t cut = size == 0 ? 0 : (size_t{data[size - 1]} * 131 + size) % (size + 1);
    HttpSniffStatus part = ward::net::LenientRequestLine(in.substr(0, cut), reader);
    if (part != HttpSniffStatus::kNeedMore && part != whole) __builtin_trap();
    if (whole == HttpSniffStatus::kNeedMore && size >= ward::net::kMaxHttpHeadSize) __builtin_trap();
    // What the strict parser calls "not HTTP", no lenient server reads as a request line.
    if (reader == ward::net::LenientReader::kFirstBytes && h.status == HttpSniffStatus::kNotHttp &&
        whole == HttpSniffStatus::kRequest) {
      size_t skipped = 0;
      (void)ward::net::LenientRequestLine(in, reader, &skipped);
      if (skipped == 0) __builtin_trap();
    }
  }

  // The server's answers (red-team finding 2): the same bytes fed whole,
  // split, or with body bytes skipped unread (the relay's splice) end in the
  // same state; a switch is seen only while a switch was asked for.
  if (size > 0) {
    auto expect = [&](ward::net::HttpResponseReader& r) {
      for (int i = 0; i < 3; ++i) {
        ward::net::HttpBodyFraming f;
        f.head_method = (data[0] >> i) & 1;
        f.upgrade = (data[0] >> (i + 3)) & 1;
        f.connect = i == 2 && (data[0] & 0x40);
        r.Expect(f);
      }
    };
    std::span<const uint8_t> answers(data + 1, size - 1);
    ward::net::HttpResponseReader whole, split, skipping;
    expect(whole);
    expect(split);
    expect(skipping);
    bool asked = whole.AwaitingSwitch();
    whole.Feed(answers);
    size_t cut = answers.empty() ? 0 : data[0] % (answers.size() + 1);
    split.Feed(answers.first(cut));
    split.Feed(answers.subspan(cut));
    size_t i = 0;
    while (i < answers.size() && skipping.Following()) {
      uint64_t opaque = skipping.Opaque();
      if (opaque > 0) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(opaque, answers.size() - i));
        skipping.Skip(n);
        i += n;
      } else {
        skipping.Feed(answers.subspan(i, 1));
        ++i;
      }
    }
    if (skipping.Following()) skipping.Feed(answers.subspan(i));
    if (whole.state() != split.state() || whole.state() != skipping.state() ||
        whole.AwaitingSwitch() != split.AwaitingSwitch() || whole.AwaitingSwitch() != skipping.AwaitingSwitch()) {
      __builtin_trap();
    }
    if (whole.state() == ward::net::HttpResponseReader::State::kSwitched && !asked) __builtin_trap();
    if (!whole.Following() && whole.AwaitingSwitch()) __builtin_trap();
  }

  ward::net::ConnectRequest c = ward::net::ParseConnectRequest(in);
  if (c.status == ward::net::ConnectStatus::kConnect) {
    if (c.port == 0 || c.head_length != h.head_length || h.status != HttpSniffStatus::kRequest ||
        h.method != "CONNECT" || c.host != h.target_host || c.ipv6 != (c.host.find(':') != std::string::npos)) {
      __builtin_trap();
    }
    CheckHost(c.host);
  } else if (c.status == ward::net::ConnectStatus::kMalformed && c.error == ward::net::HttpError::kNone) {
    __builtin_trap();
  } else if (c.status == ward::net::ConnectStatus::kNeedMore && h.status != HttpSniffStatus::kNeedMore) {
    __builtin_trap();
  }
  return 0;
}
