#include "net/sniff.h"

#include <algorithm>
#include <bitset>
#include <vector>

namespace ward::net {
namespace {

using Bytes = std::span<const uint8_t>;

constexpr uint8_t kTlsContentHandshake = 0x16;
constexpr uint8_t kTlsHandshakeClientHello = 0x01;
constexpr size_t kTlsRecordHeader = 5;
constexpr size_t kTlsMaxRecordPayload = 16384;  // 2^14, RFC 8446 §5.1
constexpr size_t kMaxMethodLength = 32;

uint16_t Get16(Bytes b, size_t pos) { return static_cast<uint16_t>((b[pos] << 8) | b[pos + 1]); }

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// RFC 9110 §5.6.2 tchar.
bool IsTchar(char c) {
  if (IsDigit(c) || IsAlpha(c)) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

// A DNS host name as text: labels of 1..63 characters from [A-Za-z0-9_-],
// separated by single dots, 253 characters at most. A trailing dot (the
// fully qualified form, "example.com.") names the same host: it is
// dropped. Writes the lower-cased name to *out.
bool NormalizeHostName(std::string_view in, std::string* out) {
  if (!in.empty() && in.back() == '.') in.remove_suffix(1);
  if (in.empty() || in.size() > 253) return false;
  std::string s;
  s.reserve(in.size());
  size_t label = 0;
  for (char c : in) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
    } else {
      if (!IsDigit(c) && !IsAlpha(c) && c != '-' && c != '_') return false;
      if (++label > 63) return false;
    }
    s.push_back(Lower(c));
  }
  if (label == 0) return false;
  *out = std::move(s);
  return true;
}

// Dotted quad, each part 0..255 without leading zeros ("010" is octal to
// inet_aton and decimal to others, so it is refused).
bool ValidIpv4(std::string_view s) {
  int parts = 0;
  size_t i = 0;
  while (true) {
    size_t start = i;
    unsigned v = 0;
    while (i < s.size() && IsDigit(s[i]) && i - start < 3) v = v * 10 + static_cast<unsigned>(s[i++] - '0');
    size_t n = i - start;
    if (n == 0 || v > 255 || (n > 1 && s[start] == '0')) return false;
    ++parts;
    if (i == s.size()) return parts == 4;
    if (s[i] != '.' || parts == 4) return false;
    ++i;
  }
}

// Colon-separated groups of 1..4 hex digits; the last may be a dotted quad
// (counting as two groups) if `v4_last` allows it.
bool CountIpv6Groups(std::string_view part, bool v4_last, int* groups) {
  *groups = 0;
  if (part.empty()) return true;
  size_t start = 0;
  while (true) {
    size_t colon = part.find(':', start);
    std::string_view g = part.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start);
    if (colon == std::string_view::npos && v4_last && g.find('.') != std::string_view::npos) {
      if (!ValidIpv4(g)) return false;
      *groups += 2;
      return true;
    }
    if (g.empty() || g.size() > 4 || !std::all_of(g.begin(), g.end(), IsHex)) return false;
    ++*groups;
    if (colon == std::string_view::npos) return true;
    start = colon + 1;
  }
}

// RFC 4291 §2.2 text form; no zone identifier.
bool ValidIpv6(std::string_view s) {
  if (s.size() < 2 || s.size() > 45) return false;
  size_t dc = s.find("::");
  if (dc == std::string_view::npos) {
    int n = 0;
    return CountIpv6Groups(s, true, &n) && n == 8;
  }
  if (s.find("::", dc + 1) != std::string_view::npos) return false;
  int head = 0;
  int tail = 0;
  if (!CountIpv6Groups(s.substr(0, dc), false, &head)) return false;
  if (!CountIpv6Groups(s.substr(dc + 2), true, &tail)) return false;
  return head + tail <= 7;
}

// 1..65535 in decimal, no sign, no leading zero.
bool ParsePort(std::string_view s, uint16_t* port) {
  if (s.empty() || s.size() > 5 || s[0] == '0') return false;
  unsigned v = 0;
  for (char c : s) {
    if (!IsDigit(c)) return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > 65535) return false;
  *port = static_cast<uint16_t>(v);
  return true;
}

struct HostPort {
  std::string host;
  std::optional<uint16_t> port;
};

// uri-host [":" port], where uri-host is a plain host name or a bracketed
// IPv6 literal. No percent-encoding, no userinfo, no empty port.
bool ParseHostPort(std::string_view s, bool port_required, HostPort* out) {
  std::string_view port_text;
  bool has_port = false;
  if (!s.empty() && s[0] == '[') {
    size_t close = s.find(']');
    if (close == std::string_view::npos) return false;
    std::string_view ip = s.substr(1, close - 1);
    if (!ValidIpv6(ip)) return false;
    out->host.assign(ip);
    for (char& c : out->host) c = Lower(c);
    std::string_view rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return false;
      port_text = rest.substr(1);
      has_port = true;
    }
  } else {
    size_t colon = s.find(':');
    if (!NormalizeHostName(s.substr(0, colon), &out->host)) return false;
    if (colon != std::string_view::npos) {
      port_text = s.substr(colon + 1);
      has_port = true;
    }
  }
  if (has_port) {
    uint16_t p = 0;
    if (!ParsePort(port_text, &p)) return false;
    out->port = p;
  } else if (port_required) {
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// TLS

class Reader {
 public:
  explicit Reader(Bytes b) : b_(b) {}
  size_t remaining() const { return b_.size() - pos_; }
  bool U8(uint8_t* v) {
    if (remaining() < 1) return false;
    *v = b_[pos_++];
    return true;
  }
  bool U16(uint16_t* v) {
    if (remaining() < 2) return false;
    *v = Get16(b_, pos_);
    pos_ += 2;
    return true;
  }
  bool Take(size_t n, Bytes* out) {
    if (remaining() < n) return false;
    *out = b_.subspan(pos_, n);
    pos_ += n;
    return true;
  }

 private:
  Bytes b_;
  size_t pos_ = 0;
};

TlsClientHello TlsMalformed(TlsError e) {
  TlsClientHello r;
  r.status = TlsSniffStatus::kMalformed;
  r.error = e;
  return r;
}

// server_name (RFC 6066 §3): a list of exactly one host_name entry.
TlsError ParseServerName(Bytes ext, std::string* host) {
  Reader r(ext);
  uint16_t list_len = 0;
  if (!r.U16(&list_len) || list_len == 0 || list_len != r.remaining()) {
    return TlsError::kServerNameList;
  }
  uint8_t type = 0;
  uint16_t len = 0;
  Bytes name;
  if (!r.U8(&type) || !r.U16(&len) || !r.Take(len, &name)) return TlsError::kServerNameList;
  if (r.remaining() != 0) return TlsError::kMultipleServerNames;
  if (type != 0) return TlsError::kServerNameType;
  std::string_view text(reinterpret_cast<const char*>(name.data()), name.size());
  if (!NormalizeHostName(text, host)) return TlsError::kServerNameHost;
  return TlsError::kNone;
}

TlsClientHello ParseClientHelloBody(Bytes body) {
  Reader r(body);
  uint16_t version = 0;
  Bytes skip;
  if (!r.U16(&version)) return TlsMalformed(TlsError::kTruncated);
  if ((version >> 8) != 3) return TlsMalformed(TlsError::kClientVersion);
  if (!r.Take(32, &skip)) return TlsMalformed(TlsError::kTruncated);  // random
  uint8_t session_id_len = 0;
  if (!r.U8(&session_id_len)) return TlsMalformed(TlsError::kTruncated);
  if (session_id_len > 32) return TlsMalformed(TlsError::kSessionId);
  if (!r.Take(session_id_len, &skip)) return TlsMalformed(TlsError::kTruncated);
  uint16_t suites_len = 0;
  if (!r.U16(&suites_len)) return TlsMalformed(TlsError::kTruncated);
  if (suites_len == 0 || suites_len % 2 != 0) return TlsMalformed(TlsError::kCipherSuites);
  if (!r.Take(suites_len, &skip)) return TlsMalformed(TlsError::kTruncated);
  uint8_t compression_len = 0;
  if (!r.U8(&compression_len)) return TlsMalformed(TlsError::kTruncated);
  if (compression_len == 0) return TlsMalformed(TlsError::kCompression);
  if (!r.Take(compression_len, &skip)) return TlsMalformed(TlsError::kTruncated);

  TlsClientHello out;
  out.status = TlsSniffStatus::kNoSni;
  if (r.remaining() == 0) return out;  // no extensions at all (TLS <= 1.2)
  uint16_t extensions_len = 0;
  if (!r.U16(&extensions_len) || extensions_len != r.remaining()) {
    return TlsMalformed(TlsError::kExtensionsLength);
  }
  std::bitset<65536> seen;
  bool encrypted = false;
  while (r.remaining() > 0) {
    uint16_t type = 0;
    uint16_t len = 0;
    Bytes data;
    if (!r.U16(&type) || !r.U16(&len) || !r.Take(len, &data)) {
      return TlsMalformed(TlsError::kExtensionsLength);
    }
    if (seen.test(type)) return TlsMalformed(TlsError::kDuplicateExtension);
    seen.set(type);
    if (type == kTlsExtServerName) {
      TlsError e = ParseServerName(data, &out.host);
      if (e != TlsError::kNone) return TlsMalformed(e);
    } else if (type == kTlsExtEncryptedClientHello || type == kTlsExtEncryptedServerName) {
      encrypted = true;
    }
  }
  if (encrypted) {
    out.status = TlsSniffStatus::kEncryptedClientHello;
  } else if (!out.host.empty()) {
    out.status = TlsSniffStatus::kSni;
  }
  return out;
}

// ---------------------------------------------------------------------------
// HTTP

HttpRequestHead HttpFail(HttpRequestHead r, HttpSniffStatus status, HttpError e) {
  r.status = status;
  r.error = e;
  return r;
}

// Whitespace that some lenient parser might take as a separator.
bool IsLooseSpace(char c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f'; }

bool ContainsIgnoreCase(std::string_view hay, std::string_view needle) {
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    if (EqualsIgnoreCase(hay.substr(i, needle.size()), needle)) return true;
  }
  return false;
}

// Methods of RFC 9110, PATCH, the HTTP/2 preface and WebDAV/UPnP ones.
bool IsKnownMethod(std::string_view m, bool any_case = true) {
  static constexpr std::string_view kMethods[] = {
      "GET",       "HEAD",        "POST",     "PUT",        "DELETE",   "CONNECT", "OPTIONS",  "TRACE",
      "PATCH",     "PRI",         "PROPFIND", "PROPPATCH",  "MKCOL",    "COPY",    "MOVE",     "LOCK",
      "UNLOCK",    "SEARCH",      "REPORT",   "MKACTIVITY", "CHECKOUT", "MERGE",   "M-SEARCH", "NOTIFY",
      "SUBSCRIBE", "UNSUBSCRIBE", "PURGE",    "LINK",       "UNLINK",   "QUERY"};
  for (std::string_view k : kMethods) {
    if (any_case ? EqualsIgnoreCase(m, k) : m == k) return true;
  }
  return false;
}

// What a lenient server skips before a request line or splits it on:
// whitespace (Python's str.split() includes \x1c-\x1f, \x85 and \xa0; CR
// and LF: empty lines before a request) and, to be safe, every other
// control character.
bool IsLenientSkip(unsigned char c) { return c <= 0x20 || c == 0x7f || c == 0x85 || c == 0xa0; }

// The HTTP/2 prior-knowledge preface: its authority is inside HPACK, so it
// names no host (see "Limits" in docs/network.md).
constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// LenientRequestLine; `line_complete`: `data` is a whole line without its
// line end (the strict parser's request line).
HttpSniffStatus ClassifyRequestLine(std::string_view data, bool line_complete, LenientReader reader, size_t* skipped) {
  bool body = reader == LenientReader::kBody;
  bool any_case = !body;
  auto skip = [body](char c) {
    return body ? c == '\r' || c == '\n' || c == ' ' || c == '\t' : IsLenientSkip(static_cast<unsigned char>(c));
  };
  size_t i = 0;
  while (i < data.size() && skip(data[i])) ++i;
  if (skipped != nullptr) *skipped = i;
  // A whole line of whitespace: servers skip it before a request line, so
  // the strict parser refuses it rather than call it "not HTTP". Past
  // kMaxHttpHeadSize of it, fail closed (nginx skips any number of CRLFs).
  if (i >= kMaxHttpHeadSize || (i == data.size() && line_complete)) return HttpSniffStatus::kRequest;
  if (i == data.size()) return HttpSniffStatus::kNeedMore;
  std::string_view rest = data.substr(i);
  if (i == 0 && !line_complete) {
    if (rest.size() < kHttp2Preface.size() && kHttp2Preface.starts_with(rest)) return HttpSniffStatus::kNeedMore;
    if (rest.starts_with(kHttp2Preface)) return HttpSniffStatus::kNotHttp;
  }
  // The method: a token up to the first separator. A byte no token holds
  // ends it: no server dispatches such a method.
  // Nothing is decided by bytes past kMaxHttpHeadSize: what a prefix of
  // that size says stands (monotone).
  size_t j = i;
  while (j < data.size() && j < kMaxHttpHeadSize && !IsLenientSkip(static_cast<unsigned char>(data[j]))) {
    if (!IsTchar(data[j])) return HttpSniffStatus::kNotHttp;
    ++j;
  }
  if (j >= kMaxHttpHeadSize) return HttpSniffStatus::kNotHttp;
  std::string_view token = data.substr(i, j - i);
  // A method alone on its line ("CONNECT\n" begins a STOMP frame) is no
  // request line to any server.
  if (j == data.size()) return line_complete ? HttpSniffStatus::kNotHttp : HttpSniffStatus::kNeedMore;
  if (data[j] == '\n') return HttpSniffStatus::kNotHttp;
  if (data[j] == '\r' && !line_complete) {
    if (j + 1 == data.size()) return HttpSniffStatus::kNeedMore;
    if (data[j + 1] == '\n') return HttpSniffStatus::kNotHttp;
  }
  // A known method and any other separator: Python's http.server
  // dispatches "GET\t/", "GET\r/" and "GET\x1c/"; HTTP/0.9 needs no version.
  if (IsKnownMethod(token, any_case)) return HttpSniffStatus::kRequest;
  // Another method is dispatched (by Go's net/http, Apache's proxy) only
  // after whitespace and with a version on its line: "HTTP/" anywhere on
  // it, in any case.
  if (!IsLooseSpace(data[j])) return HttpSniffStatus::kNotHttp;
  std::string_view window = data.substr(0, kMaxHttpHeadSize);
  size_t lf = line_complete ? std::string_view::npos : window.find('\n', j);
  std::string_view line = window.substr(i, lf == std::string_view::npos ? std::string_view::npos : lf - i);
  if (ContainsIgnoreCase(line, "HTTP/")) return HttpSniffStatus::kRequest;
  if (!line_complete && lf == std::string_view::npos && data.size() < kMaxHttpHeadSize) {
    return HttpSniffStatus::kNeedMore;
  }
  return HttpSniffStatus::kNotHttp;
}

// The request line without its CRLF. It is taken for HTTP (and then held to
// the strict grammar: anything off is kMalformed) if a lenient server could
// read a request line in it (ClassifyRequestLine): a known method in any
// case with any separator, or a token, whitespace and "HTTP/" on the line.
// So HTTP/0.9 ("GET /"), "GET\t/ HTTP/1.1", "http/1.1" and trailing spaces,
// which lenient servers accept, are malformed, while an SSH banner or a
// Redis command is not HTTP.
bool ParseRequestLine(std::string_view line, HttpRequestHead* r) {
  auto fail = [r](HttpSniffStatus status, HttpError e) {
    *r = HttpFail(std::move(*r), status, e);
    return false;
  };
  if (ClassifyRequestLine(line, true, LenientReader::kFirstBytes, nullptr) == HttpSniffStatus::kNotHttp) {
    return fail(HttpSniffStatus::kNotHttp, HttpError::kNone);
  }
  size_t sp = 0;
  while (sp < line.size() && !IsLenientSkip(static_cast<unsigned char>(line[sp]))) ++sp;
  std::string_view method = line.substr(0, sp);
  if (method.empty() || method.size() > kMaxMethodLength || sp == line.size() || line[sp] != ' ') {
    return fail(HttpSniffStatus::kMalformed, HttpError::kRequestLine);
  }
  size_t last_sp = line.rfind(' ');
  if (last_sp == sp) return fail(HttpSniffStatus::kMalformed, HttpError::kRequestLine);
  std::string_view target = line.substr(sp + 1, last_sp - sp - 1);
  std::string_view version = line.substr(last_sp + 1);
  if (target.empty() || target.find(' ') != std::string_view::npos) {
    return fail(HttpSniffStatus::kMalformed, HttpError::kRequestLine);
  }
  r->method.assign(method);
  r->target.assign(target);
  for (char c : target) {
    // Visible ASCII only; '#' (a fragment) never belongs in a request target.
    if (c < 0x21 || c > 0x7e || c == '#') return fail(HttpSniffStatus::kMalformed, HttpError::kTarget);
  }
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    return fail(HttpSniffStatus::kMalformed, HttpError::kVersion);
  }
  r->version_minor = version[7] - '0';
  return true;
}

// A field value without its optional whitespace around it (RFC 9110 5.5).
std::string_view TrimOws(std::string_view v) {
  size_t b = v.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  return v.substr(b, v.find_last_not_of(" \t") - b + 1);
}

// Calls `each` with every item of a comma-separated list value ("keep-alive,
// Upgrade"), trimmed; empty items included.
template <typename F>
void ForEachListItem(std::string_view value, F each) {
  size_t start = 0;
  while (start <= value.size()) {
    size_t comma = value.find(',', start);
    each(TrimOws(value.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start)));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
}

struct HeaderState {
  bool host = false;
  bool content_length = false;
  bool transfer_encoding = false;
};

HttpError ParseHeaderLine(std::string_view line, HeaderState* seen, HttpRequestHead* r) {
  if (line[0] == ' ' || line[0] == '\t') return HttpError::kObsFold;
  size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return HttpError::kHeaderName;
  std::string_view name = line.substr(0, colon);
  if (name.find_first_of(" \t") != std::string_view::npos) return HttpError::kWhitespaceBeforeColon;
  if (!std::all_of(name.begin(), name.end(), IsTchar)) return HttpError::kHeaderName;
  std::string_view value = line.substr(colon + 1);
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return HttpError::kHeaderValue;
  }
  value = TrimOws(value);

  if (EqualsIgnoreCase(name, "host")) {
    if (seen->host) return HttpError::kDuplicateHost;
    seen->host = true;
    HostPort hp;
    if (!ParseHostPort(value, false, &hp)) return HttpError::kBadHost;
    r->host = std::move(hp.host);
    r->port = hp.port;
  } else if (EqualsIgnoreCase(name, "content-length")) {
    // One field, one decimal number: "5, 5" and repeats are read differently
    // by different servers (RFC 9112 §6.3), so they are refused.
    if (seen->content_length || value.empty() || value.size() > 18 ||
        !std::all_of(value.begin(), value.end(), IsDigit)) {
      return HttpError::kContentLength;
    }
    seen->content_length = true;
    uint64_t v = 0;
    for (char c : value) v = v * 10 + static_cast<uint64_t>(c - '0');
    r->content_length = v;
  } else if (EqualsIgnoreCase(name, "upgrade")) {
    r->upgrade = true;
  } else if (EqualsIgnoreCase(name, "connection")) {
    // A list of tokens (RFC 9110 §7.6.1): "keep-alive, Upgrade".
    ForEachListItem(value, [r](std::string_view option) {
      if (EqualsIgnoreCase(option, "upgrade")) r->connection_upgrade = true;
    });
  } else if (EqualsIgnoreCase(name, "transfer-encoding")) {
    if (seen->transfer_encoding || !EqualsIgnoreCase(value, "chunked")) {
      return HttpError::kTransferEncoding;
    }
    seen->transfer_encoding = true;
    r->chunked = true;
  }
  return HttpError::kNone;
}

// The target's form, checked against the method; fills scheme/target_host.
HttpError ParseTargetForm(HttpRequestHead* r, bool* absolute) {
  *absolute = false;
  const std::string& t = r->target;
  if (r->method == "CONNECT") {
    HostPort hp;
    if (!ParseHostPort(t, true, &hp)) return HttpError::kTarget;
    r->target_host = std::move(hp.host);
    r->target_port = hp.port;
    return HttpError::kNone;
  }
  if (t == "*") return r->method == "OPTIONS" ? HttpError::kNone : HttpError::kTarget;
  if (t[0] == '/') return HttpError::kNone;
  size_t sep = t.find("://");
  if (sep == std::string::npos) return HttpError::kTarget;
  std::string scheme = t.substr(0, sep);
  for (char& c : scheme) c = Lower(c);
  if (scheme != "http" && scheme != "https") return HttpError::kTarget;
  std::string_view rest = std::string_view(t).substr(sep + 3);
  std::string_view authority = rest.substr(0, rest.find_first_of("/?"));
  if (authority.find('@') != std::string_view::npos) return HttpError::kTarget;  // userinfo
  HostPort hp;
  if (!ParseHostPort(authority, false, &hp)) return HttpError::kBadHost;
  r->scheme = std::move(scheme);
  r->target_host = std::move(hp.host);
  r->target_port = hp.port;
  *absolute = true;
  return HttpError::kNone;
}

HttpRequestHead FinishHead(HttpRequestHead r, const HeaderState& seen) {
  if (r.content_length && r.chunked) {
    return HttpFail(std::move(r), HttpSniffStatus::kMalformed, HttpError::kContentLengthAndTransferEncoding);
  }
  if (r.chunked && r.version_minor == 0) {
    return HttpFail(std::move(r), HttpSniffStatus::kMalformed, HttpError::kTransferEncoding);
  }
  if (r.chunked || r.content_length.value_or(0) > 0) {
    if (r.method == "CONNECT") return HttpFail(std::move(r), HttpSniffStatus::kMalformed, HttpError::kConnectBody);
    if (r.method == "HEAD" || r.method == "TRACE") {
      return HttpFail(std::move(r), HttpSniffStatus::kMalformed, HttpError::kBodyNotAllowed);
    }
  }
  bool absolute = false;
  HttpError e = ParseTargetForm(&r, &absolute);
  if (e != HttpError::kNone) return HttpFail(std::move(r), HttpSniffStatus::kMalformed, e);
  bool connect = r.method == "CONNECT";
  if (!seen.host) {
    // HTTP/1.0 needs no Host: such a request names no host (like a TLS
    // ClientHello without SNI), and its destination address decides. HTTP/1.1
    // requires one (RFC 9112 3.2).
    if (!connect && !absolute && r.version_minor != 0) {
      return HttpFail(std::move(r), HttpSniffStatus::kMalformed, HttpError::kMissingHost);
    }
  } else if (connect || absolute) {
    bool same = r.host == r.target_host;
    if (connect) {
      same = same && (!r.port || r.port == r.target_port);
    } else {
      uint16_t default_port = r.scheme == "https" ? 443 : 80;
      same = same && r.port.value_or(default_port) == r.target_port.value_or(default_port);
    }
    if (!same) {
      r.status = HttpSniffStatus::kAmbiguousHost;
      return r;
    }
  }
  r.status = HttpSniffStatus::kRequest;
  return r;
}

std::string_view AsText(Bytes b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

}  // namespace

std::string_view TlsErrorName(TlsError error) {
  switch (error) {
    case TlsError::kNone:
      return "none";
    case TlsError::kRecordVersion:
      return "record_version";
    case TlsError::kRecordLength:
      return "record_length";
    case TlsError::kInterleavedRecord:
      return "interleaved_record";
    case TlsError::kNotClientHello:
      return "not_client_hello";
    case TlsError::kTooLarge:
      return "too_large";
    case TlsError::kTrailingData:
      return "trailing_data";
    case TlsError::kTruncated:
      return "truncated";
    case TlsError::kClientVersion:
      return "client_version";
    case TlsError::kSessionId:
      return "session_id";
    case TlsError::kCipherSuites:
      return "cipher_suites";
    case TlsError::kCompression:
      return "compression";
    case TlsError::kExtensionsLength:
      return "extensions_length";
    case TlsError::kDuplicateExtension:
      return "duplicate_extension";
    case TlsError::kServerNameList:
      return "server_name_list";
    case TlsError::kMultipleServerNames:
      return "multiple_server_names";
    case TlsError::kServerNameType:
      return "server_name_type";
    case TlsError::kServerNameHost:
      return "server_name_host";
  }
  return "unknown";
}

std::string_view HttpErrorName(HttpError error) {
  switch (error) {
    case HttpError::kNone:
      return "none";
    case HttpError::kNotHttp:
      return "not_http";
    case HttpError::kTooLarge:
      return "too_large";
    case HttpError::kBareCr:
      return "bare_cr";
    case HttpError::kBareLf:
      return "bare_lf";
    case HttpError::kLeadingEmptyLine:
      return "leading_empty_line";
    case HttpError::kRequestLine:
      return "request_line";
    case HttpError::kTarget:
      return "target";
    case HttpError::kVersion:
      return "version";
    case HttpError::kHeaderName:
      return "header_name";
    case HttpError::kWhitespaceBeforeColon:
      return "whitespace_before_colon";
    case HttpError::kHeaderValue:
      return "header_value";
    case HttpError::kObsFold:
      return "obs_fold";
    case HttpError::kMissingHost:
      return "missing_host";
    case HttpError::kDuplicateHost:
      return "duplicate_host";
    case HttpError::kBadHost:
      return "bad_host";
    case HttpError::kContentLength:
      return "content_length";
    case HttpError::kTransferEncoding:
      return "transfer_encoding";
    case HttpError::kContentLengthAndTransferEncoding:
      return "content_length_and_transfer_encoding";
    case HttpError::kHostMismatch:
      return "host_mismatch";
    case HttpError::kNotConnect:
      return "not_connect";
    case HttpError::kConnectBody:
      return "connect_body";
    case HttpError::kBodyNotAllowed:
      return "body_not_allowed";
  }
  return "unknown";
}

TlsClientHello ParseClientHelloSni(std::span<const uint8_t> data) {
  TlsClientHello r;
  if (data.empty()) {
    r.need = kTlsRecordHeader;
    return r;
  }
  // A client's first TLS bytes are a handshake record, version 3.x.
  if (data[0] != kTlsContentHandshake || (data.size() >= 2 && data[1] != 3)) {
    r.status = TlsSniffStatus::kNotTls;
    return r;
  }
  // Reassemble the handshake message from as many records as it spans.
  std::vector<uint8_t> message;
  size_t message_size = 0;  // header included, once the header is in
  size_t record_bytes = 0;  // payload bytes of the records seen so far
  size_t pos = 0;
  while (true) {
    if (data.size() - pos < kTlsRecordHeader) {
      r.need = pos + kTlsRecordHeader;
      return r;
    }
    if (data[pos] != kTlsContentHandshake) return TlsMalformed(TlsError::kInterleavedRecord);
    if (data[pos + 1] != 3 || data[pos + 2] > 4) return TlsMalformed(TlsError::kRecordVersion);
    size_t len = Get16(data, pos + 3);
    if (len == 0 || len > kTlsMaxRecordPayload) return TlsMalformed(TlsError::kRecordLength);
    record_bytes += len;
    if (message_size != 0 && record_bytes > message_size) {
      return TlsMalformed(TlsError::kTrailingData);
    }
    size_t avail = std::min(len, data.size() - pos - kTlsRecordHeader);
    Bytes fragment = data.subspan(pos + kTlsRecordHeader, avail);
    message.insert(message.end(), fragment.begin(), fragment.end());
    if (!message.empty() && message[0] != kTlsHandshakeClientHello) {
      return TlsMalformed(TlsError::kNotClientHello);
    }
    if (message_size == 0 && message.size() >= 4) {
      message_size = 4 + ((size_t{message[1]} << 16) | (size_t{message[2]} << 8) | message[3]);
      if (message_size > kMaxClientHelloSize) return TlsMalformed(TlsError::kTooLarge);
      if (record_bytes > message_size) return TlsMalformed(TlsError::kTrailingData);
    }
    if (avail < len) {
      r.need = pos + kTlsRecordHeader + len;
      return r;
    }
    pos += kTlsRecordHeader + len;
    if (message_size != 0 && record_bytes == message_size) break;
  }
  TlsClientHello out = ParseClientHelloBody(Bytes(message).subspan(4));
  if (out.status != TlsSniffStatus::kMalformed) out.consumed = pos;
  return out;
}

HttpRequestHead ParseHttpRequestHead(std::string_view data) {
  HttpRequestHead r;
  std::string_view window = data.substr(0, kMaxHttpHeadSize);
  HeaderState seen;
  size_t pos = 0;
  bool first = true;
  while (true) {
    size_t lf = window.find('\n', pos);
    size_t line_end = lf == std::string_view::npos ? window.size() : lf;
    size_t cr = window.find('\r', pos);
    if (cr < line_end) {
      // The only CR allowed is the one right before LF. A CR at the very end
      // of the input may still be followed by LF.
      bool ok = lf == std::string_view::npos ? cr + 1 == window.size() : cr + 1 == lf;
      if (!ok) return HttpFail(std::move(r), HttpSniffStatus::kMalformed, HttpError::kBareCr);
    }
    if (lf == std::string_view::npos) {
      if (first) {
        if (ClassifyRequestLine(window, false, LenientReader::kFirstBytes, nullptr) == HttpSniffStatus::kNotHttp) {
          return HttpFail(std::move(r), HttpSniffStatus::kNotHttp, HttpError::kNone);
        }
        // The strict grammar begins with a method token: whether a lenient
        // server would read the rest as a request or not, this is refused
        // without waiting for it.
        if (!window.empty() && IsLenientSkip(static_cast<unsigned char>(window[0])) && window[0] != '\r') {
          return HttpFail(std::move(r), HttpSniffStatus::kMalformed, HttpError::kRequestLine);
        }
      }
      if (data.size() >= kMaxHttpHeadSize) {
        return HttpFail(std::move(r), HttpSniffStatus::kMalformed, HttpError::kTooLarge);
      }
      return r;  // kNeedMore
    }
    if (lf == pos || window[lf - 1] != '\r') {
      if (first && ClassifyRequestLine(window.substr(pos, lf - pos), true, LenientReader::kFirstBytes, nullptr) ==
                       HttpSniffStatus::kNotHttp) {
        return HttpFail(std::move(r), HttpSniffStatus::kNotHttp, HttpError::kNone);
      }
      return HttpFail(std::move(r), HttpSniffStatus::kMalformed, HttpError::kBareLf);
    }
    std::string_view line = window.substr(pos, lf - 1 - pos);
    pos = lf + 1;
    if (first) {
      if (line.empty()) {
        return HttpFail(std::move(r), HttpSniffStatus::kMalformed, HttpError::kLeadingEmptyLine);
      }
      if (!ParseRequestLine(line, &r)) return r;
      first = false;
      continue;
    }
    if (line.empty()) {
      r.head_length = pos;
      return FinishHead(std::move(r), seen);
    }
    HttpError e = ParseHeaderLine(line, &seen, &r);
    if (e != HttpError::kNone) return HttpFail(std::move(r), HttpSniffStatus::kMalformed, e);
  }
}

HttpRequestHead ParseHttpRequestHead(std::span<const uint8_t> data) { return ParseHttpRequestHead(AsText(data)); }

ConnectRequest ParseConnectRequest(std::string_view data) {
  HttpRequestHead h = ParseHttpRequestHead(data);
  ConnectRequest c;
  auto fail = [&c](HttpError e) {
    c.status = ConnectStatus::kMalformed;
    c.error = e;
    return c;
  };
  // Once the request line is in, any other method is refused, whatever else
  // is wrong with it.
  if (!h.method.empty() && h.method != "CONNECT") return fail(HttpError::kNotConnect);
  switch (h.status) {
    case HttpSniffStatus::kNeedMore:
      return c;
    case HttpSniffStatus::kNotHttp:
      return fail(HttpError::kNotHttp);
    case HttpSniffStatus::kMalformed:
      return fail(h.error);
    case HttpSniffStatus::kAmbiguousHost:
      return fail(HttpError::kHostMismatch);
    case HttpSniffStatus::kRequest:
      break;
  }
  if (h.chunked || h.content_length.value_or(0) != 0) return fail(HttpError::kConnectBody);
  c.status = ConnectStatus::kConnect;
  c.host = std::move(h.target_host);
  c.ipv6 = c.host.find(':') != std::string::npos;
  c.port = h.target_port.value_or(0);
  c.head_length = h.head_length;
  return c;
}

ConnectRequest ParseConnectRequest(std::span<const uint8_t> data) { return ParseConnectRequest(AsText(data)); }

HttpBodyFraming FramingOf(const HttpRequestHead& head) {
  HttpBodyFraming f{head.head_length, head.content_length.value_or(0), head.chunked,
                    head.upgrade && head.connection_upgrade};
  f.head_method = head.method == "HEAD";
  f.connect = head.method == "CONNECT";
  return f;
}

HttpBodyReader::HttpBodyReader(const HttpBodyFraming& framing)
    : state_(framing.chunked                     ? State::kSize
             : framing.content_length > 0 ? State::kFixed
                                          : State::kDone),
      remaining_(framing.chunked ? 0 : framing.content_length) {}

std::optional<uint64_t> HttpBodyReader::FixedRemaining() const {
  if (state_ == State::kFixed) return remaining_;
  if (state_ == State::kDone) return 0;
  return std::nullopt;
}

uint64_t HttpBodyReader::OpaqueRemaining() const {
  return state_ == State::kFixed || state_ == State::kData ? remaining_ : 0;
}

void HttpBodyReader::SkipOpaque(uint64_t n) {
  if (n == 0 || n > OpaqueRemaining()) return;
  remaining_ -= n;
  if (remaining_ == 0) state_ = state_ == State::kFixed ? State::kDone : State::kDataCr;
}

HttpBodyReader::Step HttpBodyReader::Feed(std::span<const uint8_t> data) {
  constexpr size_t kMaxChunkSizeDigits = 15;  // < 2^60: no overflow
  constexpr size_t kMaxExtension = 4096;
  Step step;
  size_t i = 0;
  auto fail = [&]() {
    state_ = State::kMalformed;
    step.malformed = true;
    step.consumed = i;
    return step;
  };
  while (i < data.size() && state_ != State::kDone) {
    char c = static_cast<char>(data[i]);
    switch (state_) {
      case State::kFixed: {
        uint64_t take = std::min<uint64_t>(remaining_, data.size() - i);
        i += static_cast<size_t>(take);
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::kDone;
        continue;
      }
      case State::kData: {
        uint64_t take = std::min<uint64_t>(remaining_, data.size() - i);
        i += static_cast<size_t>(take);
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::kDataCr;
        continue;
      }
      case State::kSize:
        if (IsHex(c)) {
          if (++digits_ > kMaxChunkSizeDigits) return fail();
          remaining_ = remaining_ * 16 + static_cast<uint64_t>(IsDigit(c) ? c - '0' : Lower(c) - 'a' + 10);
        } else if (digits_ == 0) {
          return fail();
        } else if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (c == ';' || c == ' ' || c == '\t') {
          state_ = State::kExtension;
          run_ = 1;
        } else {
          return fail();
        }
        break;
      case State::kExtension:
        if (c == '\r') {
          state_ = State::kSizeLf;
        } else if ((c < 0x20 && c != '\t') || static_cast<unsigned char>(c) >= 0x7f || ++run_ > kMaxExtension) {
          return fail();
        }
        break;
      case State::kSizeLf:
        if (c != '\n') return fail();
        digits_ = 0;
        if (remaining_ == 0) {
          last_chunk_ = true;
          state_ = State::kTrailer;
          run_ = 0;
        } else {
          state_ = State::kData;
        }
        break;
      case State::kDataCr:
        if (c != '\r') return fail();
        state_ = State::kDataLf;
        break;
      case State::kDataLf:
        if (c != '\n') return fail();
        state_ = State::kSize;
        break;
      case State::kTrailer:
        if (c == '\r') {
          state_ = State::kFinalLf;
        } else if (c == ' ' || c == '\t' || !IsTchar(c)) {
          return fail();  // obs-fold or no field name
        } else {
          state_ = State::kTrailerLine;
        }
        if (++run_ > kMaxHttpHeadSize) return fail();
        break;
      case State::kTrailerLine:
        if (c == '\r') {
          state_ = State::kTrailerLf;
        } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
          return fail();
        }
        if (++run_ > kMaxHttpHeadSize) return fail();
        break;
      case State::kTrailerLf:
        if (c != '\n') return fail();
        state_ = State::kTrailer;
        break;
      case State::kFinalLf:
        if (c != '\n') return fail();
        state_ = State::kDone;
        break;
      case State::kDone:
      case State::kMalformed:
        break;
    }
    if (state_ == State::kMalformed) return fail();
    ++i;
  }
  if (state_ == State::kMalformed) return fail();
  step.consumed = i;
  step.done = state_ == State::kDone;
  return step;
}

void HttpResponseReader::Expect(const HttpBodyFraming& request) {
  if (!Following()) return;
  if (expected_.size() >= kMaxExpected) return Lose();
  expected_.push_back(Expected{request.head_method, request.connect, request.upgrade});
}

bool HttpResponseReader::AwaitingSwitch() const {
  if (!Following()) return false;
  return std::any_of(expected_.begin(), expected_.end(), [](const Expected& e) { return e.connect || e.upgrade; });
}

uint64_t HttpResponseReader::Opaque() const { return state_ == State::kBody && body_ ? body_->OpaqueRemaining() : 0; }

void HttpResponseReader::Skip(uint64_t n) {
  if (state_ != State::kBody || !body_) return;
  body_->SkipOpaque(n);
  if (body_->done()) {
    body_.reset();
    state_ = State::kHead;
  }
}

void HttpResponseReader::Feed(std::span<const uint8_t> data) {
  size_t i = 0;
  while (i < data.size()) {
    if (state_ == State::kBody) {
      HttpBodyReader::Step step = body_->Feed(data.subspan(i));
      if (step.malformed) return Lose();
      i += step.consumed;
      if (step.done) {
        body_.reset();
        state_ = State::kHead;
      }
      continue;
    }
    if (state_ != State::kHead) return;
    // Bytes no request asked for: a server that speaks first, or more
    // answers than requests. Nothing after them can be placed.
    if (expected_.empty()) return Lose();
    char c = static_cast<char>(data[i++]);
    if (++head_bytes_ > kMaxHttpHeadSize) return Lose();
    if (c == '\n') {
      if (line_.empty() || line_.back() != '\r') return Lose();  // a bare LF
      line_.pop_back();
      if (!Line(line_)) return Lose();
      line_.clear();
    } else {
      if (!line_.empty() && line_.back() == '\r') return Lose();  // a bare CR
      line_.push_back(c);
    }
  }
}

bool HttpResponseReader::Line(std::string_view line) {
  if (status_line_) {
    // HTTP/1.x DDD[ reason]
    if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || (line[7] != '0' && line[7] != '1') || line[8] != ' ' ||
        !IsDigit(line[9]) || !IsDigit(line[10]) || !IsDigit(line[11]) || (line.size() > 12 && line[12] != ' ')) {
      return false;
    }
    status_ = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    if (status_ < 100) return false;
    status_line_ = false;
    return true;
  }
  if (line.empty()) {
    EndOfHead();
    return true;
  }
  if (line[0] == ' ' || line[0] == '\t') return false;  // obs-fold
  size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view name = line.substr(0, colon);
  if (!std::all_of(name.begin(), name.end(), IsTchar)) return false;
  std::string_view value = line.substr(colon + 1);
  value = TrimOws(value);
  if (EqualsIgnoreCase(name, "content-length")) {
    if (content_length_ || value.empty() || value.size() > 18 || !std::all_of(value.begin(), value.end(), IsDigit)) {
      return false;
    }
    uint64_t v = 0;
    for (char c : value) v = v * 10 + static_cast<uint64_t>(c - '0');
    content_length_ = v;
  } else if (EqualsIgnoreCase(name, "transfer-encoding")) {
    // The last coding decides (RFC 9112 §6.3): chunked, else to the end.
    transfer_encoding_ = true;
    size_t comma = value.rfind(',');
    std::string_view last = comma == std::string_view::npos ? value : value.substr(comma + 1);
    size_t lb = last.find_first_not_of(" \t");
    last = lb == std::string_view::npos ? std::string_view() : last.substr(lb);
    chunked_ = EqualsIgnoreCase(last, "chunked");
  }
  return true;
}

void HttpResponseReader::EndOfHead() {
  Expected request = expected_.front();
  int status = status_;
  std::optional<uint64_t> content_length = content_length_;
  bool transfer_encoding = transfer_encoding_;
  bool chunked = chunked_;
  status_line_ = true;
  head_bytes_ = 0;
  content_length_.reset();
  transfer_encoding_ = chunked_ = false;
  last_status_ = status;
  if (status < 200) {
    if (status != 101) return;  // interim (100, 103): the final answer follows
    expected_.pop_front();
    state_ = request.upgrade ? State::kSwitched : State::kLost;
    return;
  }
  expected_.pop_front();
  if (request.connect && status < 300) {
    state_ = State::kSwitched;
    return;
  }
  if (request.head_method || status == 204 || status == 304) return;
  if (content_length && transfer_encoding) return Lose();
  if (transfer_encoding) {
    if (!chunked) {
      state_ = State::kToClose;
      return;
    }
    HttpBodyFraming f;
    f.chunked = true;
    body_.emplace(f);
    state_ = State::kBody;
    return;
  }
  if (content_length) {
    if (*content_length == 0) return;
    HttpBodyFraming f;
    f.content_length = *content_length;
    body_.emplace(f);
    state_ = State::kBody;
    return;
  }
  state_ = State::kToClose;
}

HttpSniffStatus LenientRequestLine(std::string_view data, LenientReader reader, size_t* skipped) {
  return ClassifyRequestLine(data, false, reader, skipped);
}

std::string OriginFormHead(std::string_view head, const HttpRequestHead& parsed) {
  const std::string& t = parsed.target;
  size_t sep = t.find("://");
  if (parsed.method == "CONNECT" || sep == std::string::npos || parsed.status != HttpSniffStatus::kRequest) {
    return std::string(head);
  }
  std::string_view rest = std::string_view(t).substr(sep + 3);
  size_t path_at = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, path_at);
  std::string origin = path_at == std::string_view::npos ? "" : std::string(rest.substr(path_at));
  if (origin.empty()) origin = parsed.method == "OPTIONS" ? "*" : "/";
  if (origin[0] == '?') origin.insert(0, "/");

  // The header lines (CRLF-terminated: ParseHttpRequestHead takes no other).
  std::vector<std::string_view> lines;
  size_t pos = head.find("\r\n");
  if (pos == std::string_view::npos) return std::string(head);
  pos += 2;
  while (pos < head.size()) {
    size_t end = head.find("\r\n", pos);
    if (end == std::string_view::npos || end == pos) break;
    lines.push_back(head.substr(pos, end - pos));
    pos = end + 2;
  }
  auto name_of = [](std::string_view line) {
    std::string n(line.substr(0, line.find(':')));
    for (char& c : n) c = Lower(c);
    return n;
  };
  // The Connection field's options: each names a hop-by-hop field.
  std::vector<std::string> options;
  for (std::string_view line : lines) {
    if (name_of(line) != "connection") continue;
    ForEachListItem(TrimOws(line.substr(line.find(':') + 1)), [&options](std::string_view option) {
      std::string lower(option);
      for (char& c : lower) c = Lower(c);
      if (!lower.empty()) options.push_back(std::move(lower));
    });
  }
  const bool upgrade = parsed.upgrade && parsed.connection_upgrade;
  bool close = false;
  for (const std::string& o : options) close = close || o == "close";

  std::string out = parsed.method + " " + origin + " HTTP/1." + std::to_string(parsed.version_minor) + "\r\n";
  bool host = false;
  for (std::string_view line : lines) {
    std::string n = name_of(line);
    if (n == "proxy-connection" || n == "keep-alive" || n == "te" || n == "proxy-authorization" || n == "connection") {
      continue;
    }
    if (n == "upgrade" && !upgrade) continue;
    if (n != "upgrade" && std::find(options.begin(), options.end(), n) != options.end()) continue;
    if (n == "host") host = true;
    out.append(line).append("\r\n");
  }
  if (!host) out.append("Host: ").append(authority).append("\r\n");
  if (upgrade || close) {
    out.append("Connection: ").append(upgrade ? "upgrade" : "").append(upgrade && close ? ", " : "");
    out.append(close ? "close" : "").append("\r\n");
  }
  out.append("\r\n");
  return out;
}

}  // namespace ward::net
