// DNS messages (RFC 1035 wire format) as the sandbox's DNS filter sees them.
//
// Trust boundary: queries come from the sandboxed program and responses from
// the host's resolver, which relays whatever an authoritative server for an
// allowed name chose to send. Every function here treats its input as hostile:
// each read is bounds-checked against the message, names are limited to 255
// octets and labels to 63, and compression pointers must point strictly
// backwards (below every position already visited for that name), so a name
// cannot loop and its decompression costs at most kDnsMaxPointerHops jumps.
// No function allocates more than a small multiple of its input.
//
// Names are returned as lower-cased dotted text without the trailing dot (the
// root is "."). Label bytes that would make that text ambiguous are escaped in
// the presentation format of RFC 1035 §5.1: "." and "\" inside a label become
// "\." and "\\", and bytes outside 0x21..0x7e become "\DDD" (decimal). So the
// one-label name `allowed\.test` never reads as the two-label `allowed.test`,
// and allow-list matching on the text is matching on the wire name. Only ASCII
// A-Z is folded (DNS compares case-insensitively in ASCII only, RFC 4343).
//
// Errors are values: DnsResult<T> has the member names of std::expected, with
// a DnsError that says what was refused and at which byte.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "ward/result.h"

namespace ward::net {

inline constexpr uint16_t kDnsTypeA = 1;
inline constexpr uint16_t kDnsTypeCname = 5;
inline constexpr uint16_t kDnsTypeAaaa = 28;
inline constexpr uint16_t kDnsTypeOpt = 41;
inline constexpr uint16_t kDnsClassIn = 1;

inline constexpr size_t kDnsHeaderSize = 12;
inline constexpr size_t kDnsMaxMessageSize = 65535;  // UDP datagram / TCP length prefix
inline constexpr size_t kDnsMaxNameOctets = 255;     // wire form, length bytes and root included
inline constexpr size_t kDnsMaxLabelOctets = 63;
// Compression pointers followed while reading one name. A name has at most
// 127 labels and a well-formed compressor adds at least one label per jump.
inline constexpr int kDnsMaxPointerHops = 127;
// CNAME links followed from the queried name by AddressesFor.
inline constexpr int kDnsMaxCnameHops = 16;
// UDP payload size advertised in the OPT record of a built response.
inline constexpr uint16_t kDnsEdnsUdpSize = 1232;

// Header flag bits (the 16-bit word after the id).
inline constexpr uint16_t kDnsFlagQr = 0x8000;
inline constexpr uint16_t kDnsFlagAa = 0x0400;
inline constexpr uint16_t kDnsFlagTc = 0x0200;
inline constexpr uint16_t kDnsFlagRd = 0x0100;
inline constexpr uint16_t kDnsFlagRa = 0x0080;
inline constexpr uint16_t kDnsFlagAd = 0x0020;
inline constexpr uint16_t kDnsFlagCd = 0x0010;

enum class DnsRcode : uint8_t {
  kNoError = 0,
  kFormErr = 1,
  kServFail = 2,
  kNxDomain = 3,
  kNotImp = 4,
  kRefused = 5,
};

// Why a message was refused.
enum class DnsErrc : uint8_t {
  kTruncated,          // the message ends inside a field or a record
  kTooLarge,           // more than kDnsMaxMessageSize bytes
  kNotQuery,           // QR=1 where a query was expected
  kNotResponse,        // QR=0 where a response was expected
  kUnsupportedOpcode,  // opcode other than QUERY (0); DnsError::opcode says which
  kQuestionCount,      // query: QDCOUNT != 1; response: QDCOUNT > 1
  kUnexpectedRecords,  // query with answer or authority records, or > 1 additional
  kLabelTooLong,       // length byte 0x40..0xbf: > 63, or a reserved label type
  kNameTooLong,        // name longer than 255 octets
  kBadPointer,         // compression pointer not strictly backwards, or into the header
  kTooManyPointers,    // more than kDnsMaxPointerHops jumps in one name
  kBadOpt,             // OPT record malformed, outside the additional section, or not root-owned
  kDuplicateOpt,       // more than one OPT record
  kBadAdditional,      // query: additional record other than OPT
  kBadRdata,           // A not 4 bytes, AAAA not 16, CNAME not exactly one name
  kTrailingBytes,      // bytes after the last record
};

struct DnsError {
  DnsErrc code = DnsErrc::kTruncated;
  size_t offset = 0;   // byte of the message where parsing stopped
  uint8_t opcode = 0;  // kUnsupportedOpcode: the opcode found
};

// Stable snake_case name of an error code, for audit events ("bad_pointer").
std::string_view DnsErrcName(DnsErrc code);
// "unsupported_opcode 5 (UPDATE) at offset 2".
std::string DnsErrorString(const DnsError& error);

// Shaped like std::expected<T, DnsError> (ward's Result with this error type).
template <typename T>
using DnsResult = Result<T, DnsError>;

struct DnsQuestion {
  std::string name;                // lower-cased, escaped dotted text ("allowed.test")
  std::vector<uint8_t> wire_name;  // uncompressed wire form, original case (DNS 0x20)
  uint16_t qtype = 0;
  uint16_t qclass = 0;
};

// The OPT pseudo-record of EDNS(0) (RFC 6891).
struct DnsEdns {
  uint16_t udp_payload_size = 0;
  uint8_t extended_rcode = 0;  // upper 8 bits of the 12-bit RCODE
  uint8_t version = 0;
  uint16_t flags = 0;            // DO is 0x8000
  std::vector<uint8_t> options;  // RDATA: option TLVs, framing checked, content not interpreted
};

struct DnsQuery {
  uint16_t id = 0;
  uint16_t flags = 0;  // raw header word; QR=0 and opcode QUERY on success
  DnsQuestion question;
  std::optional<DnsEdns> edns;

  bool recursion_desired() const { return (flags & kDnsFlagRd) != 0; }
};

struct DnsAddress {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};  // an IPv4 address fills the first 4

  std::span<const uint8_t> view() const { return {bytes.data(), v6 ? 16u : 4u}; }
  bool operator==(const DnsAddress&) const = default;
};

// An answer-section record of class IN and type A, AAAA or CNAME.
struct DnsAnswer {
  std::string name;  // owner, lower-cased dotted text, decompressed
  uint16_t type = 0;
  uint32_t ttl = 0;    // seconds; values with the top bit set read as 0 (RFC 2181 §8)
  DnsAddress address;  // A, AAAA
  std::string cname;   // CNAME: the target, lower-cased dotted text
};

struct DnsResponse {
  uint16_t id = 0;
  uint16_t flags = 0;
  uint16_t rcode = 0;                   // 12 bits: header RCODE, extended by the OPT record if any
  std::optional<DnsQuestion> question;  // absent when QDCOUNT is 0 (e.g. FORMERR)
  std::vector<DnsAnswer> answers;       // other answer records are checked and skipped
  std::optional<DnsEdns> edns;

  bool truncated() const { return (flags & kDnsFlagTc) != 0; }
};

// Parses a query from the sandbox. Accepts exactly: a header with QR=0 and
// opcode QUERY, QDCOUNT=1, ANCOUNT=NSCOUNT=0, ARCOUNT<=1; one question whose
// name has no compression pointer (there is nothing before it to point at);
// and, if ARCOUNT=1, one root-owned OPT record with well-framed options; then
// the end of the message. Everything else is an error, in particular other
// opcodes (IQUERY, STATUS, NOTIFY, UPDATE, DSO: reported in DnsError::opcode),
// several questions, and TSIG or other additional records.
DnsResult<DnsQuery> ParseQuery(std::span<const uint8_t> message);

// The answer the filter sends for a refused query: the query's id, QR=1,
// opcode QUERY, RD and CD copied, RA=1, the given RCODE (normally kNxDomain or
// kRefused; kNoError yields an empty NODATA answer), the question echoed in
// its original case, and an OPT record advertising kDnsEdnsUdpSize if the
// query carried one. Never longer than 12 + 255 + 4 + 11 bytes.
std::vector<uint8_t> BuildErrorResponse(const DnsQuery& query, DnsRcode rcode);

// For a message ParseQuery refused: a header-only response (no question)
// echoing its id, opcode and RD, with QR=1, RA=1 and `rcode` (kFormErr, or
// kNotImp for an unsupported opcode). Returns nullopt when the message is
// shorter than a header or is itself a response (QR=1): answering a response
// could start a loop between two responders.
std::optional<std::vector<uint8_t>> BuildHeaderOnlyResponse(std::span<const uint8_t> message, DnsRcode rcode);

// Parses a response from the host's resolver. Accepts QR=1, opcode QUERY,
// QDCOUNT 0 or 1, then every record of the answer, authority and additional
// sections well framed (names within limits, RDATA within the message), at
// most one OPT and only in the additional section, and nothing after them.
// Answer records of class IN and type A (4 bytes), AAAA (16) and CNAME (one
// name filling the RDATA) are returned; other types are skipped.
DnsResult<DnsResponse> ParseResponse(std::span<const uint8_t> message);

// True if `response` answers `query`: same id, and a question with the same
// name (case-insensitively), type and class. A response that fails this is
// not to be trusted or forwarded (it may be spoofed or stale).
bool ResponseMatchesQuery(const DnsQuery& query, const DnsResponse& response);

struct ResolvedAddress {
  DnsAddress address;
  uint32_t ttl = 0;  // the smallest TTL along the CNAME chain and the address record
};

// The A/AAAA addresses in `response`'s answer section that `name` (dotted
// text, compared case-insensitively) leads to: its own address records and
// those of every name reached from it through CNAME records of the same
// answer section, at most kDnsMaxCnameHops links deep; a CNAME loop ends
// there. Records owned by names not reachable from `name` are ignored, so a
// response cannot attach addresses to `name` by merely listing them.
std::vector<ResolvedAddress> AddressesFor(const DnsResponse& response, std::string_view name);

// DNS over TCP (RFC 1035 §4.2.2; RFC 7766): each message is preceded by its
// length as a 2-byte big-endian integer.
enum class DnsTcpStatus : uint8_t {
  kNeedMore,   // the stream does not yet hold a whole message; see `need`
  kMessage,    // `message` is the first message; drop `consumed` bytes
  kMalformed,  // length prefix below kDnsHeaderSize: no DNS message is that short
};

struct DnsTcpFrame {
  DnsTcpStatus status = DnsTcpStatus::kNeedMore;
  size_t need = 0;                   // kNeedMore: total stream bytes needed for the next message
  std::span<const uint8_t> message;  // kMessage: points into the input
  size_t consumed = 0;               // kMessage: 2 + message.size()
};

// Splits the first length-prefixed message off the front of a TCP stream.
DnsTcpFrame NextDnsTcpMessage(std::span<const uint8_t> stream);

// Prepends the 2-byte length; nullopt if the message exceeds 65535 bytes.
std::optional<std::vector<uint8_t>> FrameDnsTcpMessage(std::span<const uint8_t> message);

}  // namespace ward::net
