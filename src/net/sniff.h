// Sniffers for the first bytes a sandboxed program sends on an intercepted
// TCP connection: the TLS ClientHello (for the server name, SNI), an HTTP/1.x
// request head (for the Host), and an HTTP CONNECT request (for the tunnel's
// destination) sent to the cooperative proxy.
//
// Trust boundary: every byte comes from the sandboxed program, which may be
// trying to make the proxy see one destination while the server sees another
// (domain fronting, request smuggling). So these parsers are strict where
// real-world parsers disagree: when two readings of the same bytes are
// possible, the answer is "malformed", never a guess. Each is pure (no
// syscalls), bounds-checked, reads at most a fixed prefix of its input
// (kMaxClientHelloSize, kMaxHttpHeadSize) and can be called again with a
// longer buffer after kNeedMore.
//
// Host names are returned lower-cased (ASCII) and only if they are made of
// labels of 1..63 characters from [a-z0-9_-], 253 characters at most, with no
// trailing dot; IPv6 literals (from brackets) are returned without brackets,
// lower-cased. Numeric hosts are returned as text, not normalized: "127.1" is
// not "127.0.0.1" here, and the caller must not resolve such text loosely.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace ward::net {

// ---------------------------------------------------------------------------
// TLS ClientHello

// Largest ClientHello handshake message accepted (header included). Clients
// send 200 bytes to ~2 KiB (post-quantum key shares included); beyond this the
// proxy refuses instead of buffering.
inline constexpr size_t kMaxClientHelloSize = 16384;
inline constexpr uint16_t kTlsExtServerName = 0x0000;
inline constexpr uint16_t kTlsExtEncryptedClientHello = 0xfe0d;
inline constexpr uint16_t kTlsExtEncryptedServerName = 0xffce;  // draft ESNI

enum class TlsSniffStatus : uint8_t {
  kNeedMore,  // consistent so far; call again with at least `need` bytes
  kNotTls,    // the first bytes are not a TLS handshake record
  kNoSni,     // a well-formed ClientHello without server_name
  kSni,       // a well-formed ClientHello naming `host`
  // A well-formed ClientHello with encrypted_client_hello (or the draft
  // encrypted_server_name): the real server name is hidden and `host`, if
  // set, is only the outer (public) name. Chrome sends a GREASE ECH extension
  // that is indistinguishable from a real one by design; refusing these
  // refuses Chrome unless it is configured not to send it.
  kEncryptedClientHello,
  kMalformed,  // see `error`
};

enum class TlsError : uint8_t {
  kNone,
  kRecordVersion,        // record-layer version not 3.x (x <= 4)
  kRecordLength,         // a handshake record of 0 or more than 16384 bytes
  kInterleavedRecord,    // a non-handshake record before the ClientHello is complete
  kNotClientHello,       // the first handshake message is not a ClientHello
  kTooLarge,             // ClientHello longer than kMaxClientHelloSize
  kTrailingData,         // the records carrying the ClientHello hold more after it
  kTruncated,            // a length inside the ClientHello runs past its end
  kClientVersion,        // legacy_version not 3.x
  kSessionId,            // session id longer than 32
  kCipherSuites,         // empty or odd-length cipher suite list
  kCompression,          // no compression method
  kExtensionsLength,     // extensions block does not fill the ClientHello exactly
  kDuplicateExtension,   // the same extension type twice (RFC 8446 §4.2)
  kServerNameList,       // server_name extension empty or its list mis-sized
  kMultipleServerNames,  // more than one entry in server_name
  kServerNameType,       // entry type other than host_name (0)
  kServerNameHost,       // host name empty, too long, or with characters outside [A-Za-z0-9_.-]
};

std::string_view TlsErrorName(TlsError error);  // stable snake_case: "duplicate_extension"

struct TlsClientHello {
  TlsSniffStatus status = TlsSniffStatus::kNeedMore;
  // kNeedMore: the input must grow to at least this many bytes before the
  // answer can change (the end of the current record; the total is unknown
  // while further records may follow).
  size_t need = 0;
  TlsError error = TlsError::kNone;  // kMalformed only
  std::string host;                  // kSni; kEncryptedClientHello: the outer name if any
  size_t consumed = 0;               // bytes of the records that carried the ClientHello
};

// Reads the ClientHello at the start of a client's TLS stream. The handshake
// message may be fragmented over several handshake records (as fragmenting
// clients and censorship-evasion tools do), each of 1..16384 bytes, with no
// other record type in between, and its last byte must end the last record.
// Legacy SSLv2 hellos report kNotTls. Any duplicated extension, a second
// server name, or a name that is not a plain host name is kMalformed, not the
// first or last of them: the server might pick the other one.
TlsClientHello ParseClientHelloSni(std::span<const uint8_t> data);

// ---------------------------------------------------------------------------
// HTTP/1.x request head (RFC 9112)

// Largest request head accepted: request line, header fields and the empty
// line that ends them.
inline constexpr size_t kMaxHttpHeadSize = 16384;

enum class HttpSniffStatus : uint8_t {
  kNeedMore,  // consistent so far but the head has not ended
  // No server would take this for an HTTP request: the first token holds a
  // byte no method can contain, or the first line has neither a known
  // method nor "HTTP/" (an SSH banner, a Redis command, TLS, binary).
  kNotHttp,
  kRequest,  // a well-formed request head
  // Well formed, but the absolute-form target (or the CONNECT authority)
  // names another host or port than the Host header: servers disagree on
  // which one wins. Both are reported (`target_host`/`target_port`, `host`/
  // `port`); refuse it.
  kAmbiguousHost,
  kMalformed,  // see `error`
};

enum class HttpError : uint8_t {
  kNone,
  kNotHttp,                // (ParseConnectRequest only)
  kTooLarge,               // no end of head within kMaxHttpHeadSize
  kBareCr,                 // CR not followed by LF
  kBareLf,                 // LF not preceded by CR
  kLeadingEmptyLine,       // CRLF before the request line
  kRequestLine,            // not exactly "method SP target SP version"
  kTarget,                 // bad characters, or the wrong form for the method
  kVersion,                // HTTP/x.y other than 1.0 and 1.1
  kHeaderName,             // empty name, non-token character, or no colon
  kWhitespaceBeforeColon,  // "Host : x" (RFC 9112 §5.1: must be rejected)
  kHeaderValue,            // control characters (other than HTAB) in a value
  kObsFold,                // a line starting with SP/HTAB (line folding)
  kMissingHost,            // no Host, and no authority in the target
  kDuplicateHost,          // two Host header fields
  kBadHost,                // Host (or target authority) not a plain host[:port]
  kContentLength,          // non-numeric, huge, or repeated Content-Length
  kTransferEncoding,       // other than a single "chunked", or in HTTP/1.0
  kContentLengthAndTransferEncoding,
  kHostMismatch,    // (ParseConnectRequest only) kAmbiguousHost
  kNotConnect,      // (ParseConnectRequest only) another method
  kConnectBody,     // CONNECT with a body
  kBodyNotAllowed,  // HEAD or TRACE with a body: no server reads one, the next request would
};

std::string_view HttpErrorName(HttpError error);  // stable snake_case: "duplicate_host"

struct HttpRequestHead {
  HttpSniffStatus status = HttpSniffStatus::kNeedMore;
  HttpError error = HttpError::kNone;
  size_t head_length = 0;  // bytes up to and including the empty line

  // Set once the request line has been read (also with kNeedMore).
  std::string method;     // case preserved (methods are case-sensitive)
  std::string target;     // as sent
  int version_minor = 1;  // HTTP/1.<version_minor>

  // From the Host header field (empty if absent).
  std::string host;
  std::optional<uint16_t> port;
  // From an absolute-form target ("http://h:p/...", scheme lower-cased, port
  // defaulting to 80/443 when comparing) or a CONNECT authority ("h:p").
  std::string scheme;
  std::string target_host;
  std::optional<uint16_t> target_port;

  // Body framing, so the caller can find the next request on the connection.
  std::optional<uint64_t> content_length;
  bool chunked = false;
  bool upgrade = false;             // an Upgrade header field
  bool connection_upgrade = false;  // a Connection header field listing "upgrade"
};

// Reads the request head at the start of `data`. Accepts: a request line of
// a token method, one SP, a target of visible ASCII, one SP and "HTTP/1.0" or
// "HTTP/1.1"; header lines "name: value" with a token name directly followed
// by the colon and a value free of control characters other than HTAB; CRLF
// line ends only; then an empty line. The target must be origin-form ("/..."),
// absolute-form ("http://" or "https://" host[:port], no userinfo), "*" for
// OPTIONS, or authority-form "host:port" for CONNECT (and only for it).
// A Host header is required unless the method is CONNECT or the target is
// absolute-form; a second Host, Content-Length together with
// Transfer-Encoding, and any transfer coding but a single "chunked" are
// refused, as is a body (Content-Length above 0, chunked) on HEAD, TRACE or
// CONNECT: RFC 9110 gives it no meaning there, so a server may not read it and
// take it for the next request. Bytes after the head are not looked at.
HttpRequestHead ParseHttpRequestHead(std::string_view data);
HttpRequestHead ParseHttpRequestHead(std::span<const uint8_t> data);

// The head a proxy sends on for an absolute-form request `head` (its first
// head.head_length bytes, parsed into `parsed`, status kRequest): the
// request line in origin-form ("GET /v1/models?x HTTP/1.1"; "*" for an
// OPTIONS of no path), the header fields as sent but the hop-by-hop ones
// (RFC 9110 7.6.1: Proxy-Connection, Keep-Alive, TE, Proxy-Authorization,
// and the fields the Connection header names; its "close" and "upgrade"
// stay, with the Upgrade field), and a Host from the target when the client
// sent none. Anything else (origin-form, CONNECT) is returned as it came.
std::string OriginFormHead(std::string_view head, const HttpRequestHead& parsed);

// Where one request's body ends (RFC 9112 §6.3, for requests): a request
// without Content-Length or Transfer-Encoding has none; Content-Length: N
// has N bytes; "Transfer-Encoding: chunked" runs to its last chunk and
// trailer section. The egress proxy needs this to find the next request on a
// kept-alive connection and judge it before any of it reaches the server.
struct HttpBodyFraming {
  size_t head_length = 0;  // bytes of the head, which the body follows
  uint64_t content_length = 0;
  bool chunked = false;
  // An upgrade request (WebSocket, h2c): Upgrade, and Connection listing
  // "upgrade" (a server ignores Upgrade otherwise). Only if the server
  // answers 101 is what follows another protocol (HttpResponseReader).
  bool upgrade = false;
  // For the answer's framing: a HEAD request's answer has no body; a CONNECT
  // answered 2xx is a tunnel.
  bool head_method = false;
  bool connect = false;
};
HttpBodyFraming FramingOf(const HttpRequestHead& head);

// Reads a request body's bytes as they come, to find its end. Strict, like
// ParseHttpRequestHead: chunk sizes in hex (at most 15 digits), chunk
// extensions of visible ASCII, SP and HTAB (at most 4096 bytes), CRLF line
// ends only, trailer fields as header lines (at most kMaxHttpHeadSize in
// all). Anything else is malformed: a server might frame it otherwise, and
// what it took for the next request would not have been judged. Holds no
// bytes: a few integers of state.
class HttpBodyReader {
 public:
  explicit HttpBodyReader(const HttpBodyFraming& framing);

  struct Step {
    size_t consumed = 0;  // bytes at the start of the input that belong to the body
    bool done = false;    // the body ended within them
    bool malformed = false;
  };
  // Reads the next bytes of the stream: the body's, then (once done) the
  // next request's, which are not consumed.
  Step Feed(std::span<const uint8_t> data);
  // With Content-Length: the body bytes still to come, which may be passed
  // on unread. nullopt for a chunked body.
  std::optional<uint64_t> FixedRemaining() const;
  // Bytes that may pass unread now: the rest of a Content-Length body or of
  // the current chunk's data; SkipOpaque(n), n <= OpaqueRemaining(), counts
  // them as read.
  uint64_t OpaqueRemaining() const;
  void SkipOpaque(uint64_t n);
  bool done() const { return state_ == State::kDone; }

 private:
  enum class State : uint8_t {
    kFixed,
    kSize,        // hex digits of a chunk size
    kExtension,   // after the size, up to CR
    kSizeLf,      // LF after a chunk-size line
    kData,        // chunk data
    kDataCr,      // CR after chunk data
    kDataLf,      // LF after chunk data
    kTrailer,     // start of a trailer line (or the final CRLF)
    kTrailerLine, // inside a trailer line
    kTrailerLf,   // LF ending a trailer line
    kFinalLf,     // LF of the final empty line
    kDone,
    kMalformed,
  };
  State state_;
  uint64_t remaining_ = 0;  // kFixed, kData
  size_t digits_ = 0;       // kSize
  size_t run_ = 0;          // kExtension, trailer bytes so far
  bool last_chunk_ = false;
};

// Follows an HTTP/1 server's answers to the requests ward forwarded on a
// connection (RFC 9112 §4 and §6.3), to learn whether the server switched
// protocols: only then may the client's later bytes pass unjudged. Strict:
// a status line other than "HTTP/1.x DDD[ reason]", a bare LF or CR, a line
// folding, a Content-Length that is not one number, Content-Length with
// Transfer-Encoding, a 101 to a request that did not ask to upgrade, bytes
// before any request, or a head over kMaxHttpHeadSize: the answers are
// lost, and no switch is ever recognised on the connection (the client's
// requests go on being judged). Answers are framed by the request: no body
// after HEAD, 1xx, 204, 304; a CONNECT answered 2xx and an upgrade request
// answered 101 switch; a Transfer-Encoding ending in "chunked" (read by
// HttpBodyReader), a Content-Length, else the body runs to the connection's
// end (kToClose). Observes bytes, holds none but the current head line.
class HttpResponseReader {
 public:
  enum class State : uint8_t {
    kHead,      // before or inside an answer's head
    kBody,      // inside a body of known length or chunked
    kSwitched,  // 101 to an upgrade request, 2xx to CONNECT: no more HTTP
    kToClose,   // a body that runs to the connection's end: no answer follows
    kLost,      // not followed (see above)
  };
  // At most this many requests may await their answers; more: kLost.
  static constexpr size_t kMaxExpected = 1024;

  // A request was forwarded: its answer follows those of the earlier ones.
  void Expect(const HttpBodyFraming& request);
  // Observes the server's next bytes (all of them).
  void Feed(std::span<const uint8_t> data);
  // Body bytes that may pass unobserved now, and passing them.
  uint64_t Opaque() const;
  void Skip(uint64_t n);
  State state() const { return state_; }
  bool Following() const { return state_ == State::kHead || state_ == State::kBody; }
  // Every request forwarded so far has had its whole answer read.
  bool Answered() const { return state_ == State::kHead && expected_.empty(); }
  // A request that asked to switch protocols (an upgrade, a CONNECT) has not
  // been answered yet. False once the answers are not followed.
  bool AwaitingSwitch() const;
  int last_status() const { return last_status_; }

 private:
  struct Expected {
    bool head_method = false;
    bool connect = false;
    bool upgrade = false;
  };
  bool Line(std::string_view line);
  void EndOfHead();
  void Lose() { state_ = State::kLost; }

  State state_ = State::kHead;
  std::deque<Expected> expected_;  // the requests awaiting answers, oldest first
  std::string line_;
  size_t head_bytes_ = 0;
  bool status_line_ = true;
  int status_ = 0;
  int last_status_ = 0;
  std::optional<uint64_t> content_length_;
  bool transfer_encoding_ = false;
  bool chunked_ = false;
  std::optional<HttpBodyReader> body_;
};

// Whether a lenient HTTP/1 server could read a request line at the start of
// `data` (the client's first bytes, or a request body that a server might
// not read and take for the next request), so that it must be a strictly
// valid request or be refused:
//   - kRequest: some server could. After any bytes servers skip before a
//     request line (*skipped says how many), a known method followed by any
//     whitespace or control character ("GET\t/", "GET\x1c/": Python's
//     http.server splits on them; "GET /": HTTP/0.9), or any token followed
//     by whitespace with "HTTP/" (any case) on its line ("PURGE / HTTP/1.1",
//     "get / HTTP/1.1": Go's net/http serves any method); also 16 KiB of
//     skipped bytes (nginx skips any number of empty lines).
//   - kNeedMore: it could still become one (a token not yet ended, a line
//     not yet ended after an unknown method).
//   - kNotHttp: no server would, whatever follows: the first token holds a
//     byte no method can (TLS, a PostgreSQL startup message, JSON), an
//     unknown method ends at a control character or its line has no "HTTP/",
//     the exact HTTP/2 preface, or 16 KiB without a decision.
// Monotone: an answer other than kNeedMore stays the same whatever bytes are
// appended, so a client cannot split its bytes to be judged on a prefix.
enum class LenientReader : uint8_t {
  // A connection's first bytes: every whitespace and control character may
  // be skipped (to be safe), a known method counts in any case.
  kFirstBytes,
  // A request body: only what servers skip before a request line (CR, LF,
  // SP, HTAB) is skipped, and a known method counts in upper case only
  // (text such as "Get well" is common in bodies, and no server dispatches
  // a lower-case known method without "HTTP/" on its line).
  kBody,
};
HttpSniffStatus LenientRequestLine(std::string_view data, LenientReader reader = LenientReader::kFirstBytes,
                                   size_t* skipped = nullptr);

// ---------------------------------------------------------------------------
// HTTP CONNECT (RFC 9110 §9.3.6), as sent to HTTP_PROXY/HTTPS_PROXY.

enum class ConnectStatus : uint8_t { kNeedMore, kConnect, kMalformed };

struct ConnectRequest {
  ConnectStatus status = ConnectStatus::kNeedMore;
  HttpError error = HttpError::kNone;  // kMalformed
  std::string host;                    // lower-cased; an IPv6 literal without its brackets
  bool ipv6 = false;
  uint16_t port = 0;
  size_t head_length = 0;  // the tunnel's bytes start here
};

// A request head as ParseHttpRequestHead accepts it, with method CONNECT, an
// authority-form target with a port ("host:443", "[2001:db8::1]:443"), no
// body (no Transfer-Encoding, Content-Length absent or 0), and a Host header,
// if present, naming the same host (and the same port if it has one).
ConnectRequest ParseConnectRequest(std::string_view data);
ConnectRequest ParseConnectRequest(std::span<const uint8_t> data);

}  // namespace ward::net
