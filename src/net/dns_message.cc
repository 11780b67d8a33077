#include "net/dns_message.h"

#include <algorithm>
#include <cstdio>

namespace ward::net {
namespace {

using Bytes = std::span<const uint8_t>;

constexpr uint16_t kOpcodeMask = 0x7800;
constexpr int kOpcodeShift = 11;
constexpr uint16_t kRcodeMask = 0x000f;

uint16_t Get16(Bytes b, size_t pos) { return static_cast<uint16_t>((b[pos] << 8) | b[pos + 1]); }

uint32_t Get32(Bytes b, size_t pos) {
  return (static_cast<uint32_t>(b[pos]) << 24) | (static_cast<uint32_t>(b[pos + 1]) << 16) |
         (static_cast<uint32_t>(b[pos + 2]) << 8) | static_cast<uint32_t>(b[pos + 3]);
}

void Put16(std::vector<uint8_t>* out, uint16_t v) {
  out->push_back(static_cast<uint8_t>(v >> 8));
  out->push_back(static_cast<uint8_t>(v & 0xff));
}

DnsError Err(DnsErrc code, size_t offset) { return DnsError{code, offset, 0}; }

struct Header {
  uint16_t id;
  uint16_t flags;
  uint16_t qdcount;
  uint16_t ancount;
  uint16_t nscount;
  uint16_t arcount;
};

Header ReadHeader(Bytes msg) {  // caller checked msg.size() >= kDnsHeaderSize
  return Header{Get16(msg, 0), Get16(msg, 2), Get16(msg, 4), Get16(msg, 6), Get16(msg, 8), Get16(msg, 10)};
}

// Appends one label in presentation form: lower-cased, with the bytes that
// would make dotted text ambiguous escaped (see the header comment).
void AppendLabelText(Bytes label, std::string* text) {
  for (uint8_t c : label) {
    if (c >= 'A' && c <= 'Z') {
      text->push_back(static_cast<char>(c - 'A' + 'a'));
    } else if (c == '.' || c == '\\') {
      text->push_back('\\');
      text->push_back(static_cast<char>(c));
    } else if (c < 0x21 || c > 0x7e) {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\%03u", static_cast<unsigned>(c));
      text->append(buf, 4);
    } else {
      text->push_back(static_cast<char>(c));
    }
  }
}

struct Name {
  std::vector<uint8_t> wire;  // uncompressed, original case
  std::string text;
};

// Reads the name at `pos`, following compression pointers. Each pointer must
// target a position below every position this name has visited so far (and
// beyond the header), so the walk moves strictly backwards with each jump and
// terminates; legitimate compressors only point at names written earlier,
// which satisfies this. `*end` receives the offset after the name's bytes at
// `pos` (after the first pointer if there is one). `name` may be null when
// only the framing matters.
std::optional<DnsError> ReadName(Bytes msg, size_t pos, Name* name, size_t* end) {
  size_t p = pos;
  size_t floor = pos;  // pointers must target below this
  size_t wire_len = 0;
  int hops = 0;
  bool jumped = false;
  if (name) {
    name->wire.clear();
    name->text.clear();
  }
  while (true) {
    if (p >= msg.size()) return Err(DnsErrc::kTruncated, p);
    uint8_t len = msg[p];
    switch (len & 0xc0) {
      case 0x00: {
        if (len == 0) {
          if (!jumped) *end = p + 1;
          if (name) {
            name->wire.push_back(0);
            if (name->text.empty()) name->text.push_back('.');
          }
          return std::nullopt;
        }
        if (msg.size() - p - 1 < len) return Err(DnsErrc::kTruncated, p);
        // +1 for this length byte, +1 for the root label still to come.
        if (wire_len + 1 + len + 1 > kDnsMaxNameOctets) return Err(DnsErrc::kNameTooLong, p);
        wire_len += 1 + len;
        if (name) {
          Bytes label = msg.subspan(p + 1, len);
          name->wire.push_back(len);
          name->wire.insert(name->wire.end(), label.begin(), label.end());
          if (!name->text.empty()) name->text.push_back('.');
          AppendLabelText(label, &name->text);
        }
        p += 1 + len;
        break;
      }
      case 0xc0: {
        if (msg.size() - p < 2) return Err(DnsErrc::kTruncated, p);
        size_t target = static_cast<size_t>(Get16(msg, p) & 0x3fff);
        if (target < kDnsHeaderSize || target >= floor) return Err(DnsErrc::kBadPointer, p);
        if (++hops > kDnsMaxPointerHops) return Err(DnsErrc::kTooManyPointers, p);
        if (!jumped) *end = p + 2;
        jumped = true;
        floor = target;
        p = target;
        break;
      }
      default:  // 0x40 (extended label type, RFC 6891 §5) and 0x80 (reserved)
        return Err(DnsErrc::kLabelTooLong, p);
    }
  }
}

// Reads the EDNS fields of an OPT record whose fixed part starts at `pos`
// (after the owner name): type, class, TTL, RDLENGTH, RDATA.
std::optional<DnsError> ReadOptBody(Bytes msg, size_t pos, DnsEdns* edns, size_t* end) {
  if (msg.size() - pos < 10) return Err(DnsErrc::kTruncated, pos);
  if (Get16(msg, pos) != kDnsTypeOpt) return Err(DnsErrc::kBadOpt, pos);
  edns->udp_payload_size = Get16(msg, pos + 2);
  edns->extended_rcode = msg[pos + 4];
  edns->version = msg[pos + 5];
  edns->flags = Get16(msg, pos + 6);
  size_t rdlen = Get16(msg, pos + 8);
  size_t rdata = pos + 10;
  if (msg.size() - rdata < rdlen) return Err(DnsErrc::kTruncated, rdata);
  // Options are code(2) length(2) data; they must tile the RDATA exactly.
  size_t o = rdata;
  while (o < rdata + rdlen) {
    if (rdata + rdlen - o < 4) return Err(DnsErrc::kBadOpt, o);
    size_t olen = Get16(msg, o + 2);
    if (rdata + rdlen - o - 4 < olen) return Err(DnsErrc::kBadOpt, o);
    o += 4 + olen;
  }
  edns->options.assign(msg.begin() + static_cast<ptrdiff_t>(rdata),
                       msg.begin() + static_cast<ptrdiff_t>(rdata + rdlen));
  *end = rdata + rdlen;
  return std::nullopt;
}

std::optional<DnsError> ReadQuestion(Bytes msg, size_t pos, DnsQuestion* q, size_t* end) {
  Name name;
  size_t after = 0;
  if (auto e = ReadName(msg, pos, &name, &after)) return e;
  if (msg.size() - after < 4) return Err(DnsErrc::kTruncated, after);
  q->name = std::move(name.text);
  q->wire_name = std::move(name.wire);
  q->qtype = Get16(msg, after);
  q->qclass = Get16(msg, after + 2);
  *end = after + 4;
  return std::nullopt;
}

enum class Section { kAnswer, kAuthority, kAdditional };

// Reads one resource record of a response at `pos`.
std::optional<DnsError> ReadRecord(Bytes msg, size_t pos, Section section, DnsResponse* r, size_t* end) {
  size_t owner_pos = pos;
  size_t fixed = 0;
  bool keep = false;
  Name owner;
  // Only answer records are kept; elsewhere the owner is checked, not copied.
  if (msg.size() - pos >= 3 && msg[pos] == 0 && Get16(msg, pos + 1) == kDnsTypeOpt) {
    // A root-owned OPT.
    if (section != Section::kAdditional) return Err(DnsErrc::kBadOpt, owner_pos);
    if (r->edns) return Err(DnsErrc::kDuplicateOpt, owner_pos);
    DnsEdns edns;
    if (auto e = ReadOptBody(msg, pos + 1, &edns, end)) return e;
    r->edns = std::move(edns);
    return std::nullopt;
  }
  if (auto e = ReadName(msg, pos, section == Section::kAnswer ? &owner : nullptr, &fixed)) {
    return e;
  }
  if (msg.size() - fixed < 10) return Err(DnsErrc::kTruncated, fixed);
  uint16_t type = Get16(msg, fixed);
  uint16_t klass = Get16(msg, fixed + 2);
  uint32_t ttl = Get32(msg, fixed + 4);
  if (ttl > 0x7fffffff) ttl = 0;
  size_t rdlen = Get16(msg, fixed + 8);
  size_t rdata = fixed + 10;
  if (msg.size() - rdata < rdlen) return Err(DnsErrc::kTruncated, rdata);
  if (type == kDnsTypeOpt) return Err(DnsErrc::kBadOpt, owner_pos);  // not root-owned
  *end = rdata + rdlen;

  if (section != Section::kAnswer || klass != kDnsClassIn) return std::nullopt;
  DnsAnswer a;
  switch (type) {
    case kDnsTypeA:
      if (rdlen != 4) return Err(DnsErrc::kBadRdata, rdata);
      std::copy_n(msg.begin() + static_cast<ptrdiff_t>(rdata), 4, a.address.bytes.begin());
      keep = true;
      break;
    case kDnsTypeAaaa:
      if (rdlen != 16) return Err(DnsErrc::kBadRdata, rdata);
      a.address.v6 = true;
      std::copy_n(msg.begin() + static_cast<ptrdiff_t>(rdata), 16, a.address.bytes.begin());
      keep = true;
      break;
    case kDnsTypeCname: {
      Name target;
      size_t target_end = 0;
      if (auto e = ReadName(msg, rdata, &target, &target_end)) return e;
      if (target_end != rdata + rdlen) return Err(DnsErrc::kBadRdata, rdata);
      a.cname = std::move(target.text);
      keep = true;
      break;
    }
    default:
      break;
  }
  if (keep) {
    a.name = std::move(owner.text);
    a.type = type;
    a.ttl = ttl;
    r->answers.push_back(std::move(a));
  }
  return std::nullopt;
}

std::string LowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace

std::string_view DnsErrcName(DnsErrc code) {
  switch (code) {
    case DnsErrc::kTruncated:
      return "truncated";
    case DnsErrc::kTooLarge:
      return "too_large";
    case DnsErrc::kNotQuery:
      return "not_query";
    case DnsErrc::kNotResponse:
      return "not_response";
    case DnsErrc::kUnsupportedOpcode:
      return "unsupported_opcode";
    case DnsErrc::kQuestionCount:
      return "question_count";
    case DnsErrc::kUnexpectedRecords:
      return "unexpected_records";
    case DnsErrc::kLabelTooLong:
      return "label_too_long";
    case DnsErrc::kNameTooLong:
      return "name_too_long";
    case DnsErrc::kBadPointer:
      return "bad_pointer";
    case DnsErrc::kTooManyPointers:
      return "too_many_pointers";
    case DnsErrc::kBadOpt:
      return "bad_opt";
    case DnsErrc::kDuplicateOpt:
      return "duplicate_opt";
    case DnsErrc::kBadAdditional:
      return "bad_additional";
    case DnsErrc::kBadRdata:
      return "bad_rdata";
    case DnsErrc::kTrailingBytes:
      return "trailing_bytes";
  }
  return "unknown";
}

std::string DnsErrorString(const DnsError& error) {
  std::string s(DnsErrcName(error.code));
  if (error.code == DnsErrc::kUnsupportedOpcode) {
    static constexpr const char* kNames[16] = {"QUERY", "IQUERY", "STATUS", "3",  "NOTIFY", "UPDATE", "DSO", "7",
                                               "8",     "9",      "10",     "11", "12",     "13",     "14",  "15"};
    s.append(" ").append(std::to_string(error.opcode)).append(" (");
    s.append(kNames[error.opcode & 0xf]).append(")");
  }
  s.append(" at offset ").append(std::to_string(error.offset));
  return s;
}

DnsResult<DnsQuery> ParseQuery(std::span<const uint8_t> msg) {
  if (msg.size() > kDnsMaxMessageSize) return Err(DnsErrc::kTooLarge, kDnsMaxMessageSize);
  if (msg.size() < kDnsHeaderSize) return Err(DnsErrc::kTruncated, msg.size());
  Header h = ReadHeader(msg);
  if (h.flags & kDnsFlagQr) return Err(DnsErrc::kNotQuery, 2);
  uint8_t opcode = static_cast<uint8_t>((h.flags & kOpcodeMask) >> kOpcodeShift);
  if (opcode != 0) return DnsError{DnsErrc::kUnsupportedOpcode, 2, opcode};
  if (h.qdcount != 1) return Err(DnsErrc::kQuestionCount, 4);
  if (h.ancount != 0) return Err(DnsErrc::kUnexpectedRecords, 6);
  if (h.nscount != 0) return Err(DnsErrc::kUnexpectedRecords, 8);
  if (h.arcount > 1) return Err(DnsErrc::kUnexpectedRecords, 10);

  DnsQuery q;
  q.id = h.id;
  q.flags = h.flags;
  size_t pos = 0;
  if (auto e = ReadQuestion(msg, kDnsHeaderSize, &q.question, &pos)) return *e;
  if (h.arcount == 1) {
    if (pos >= msg.size()) return Err(DnsErrc::kTruncated, pos);
    // The owner of an OPT is the root: a single zero byte, never a pointer.
    if (msg[pos] != 0) return Err(DnsErrc::kBadAdditional, pos);
    if (msg.size() - pos >= 3 && Get16(msg, pos + 1) != kDnsTypeOpt) {
      return Err(DnsErrc::kBadAdditional, pos + 1);
    }
    DnsEdns edns;
    if (auto e = ReadOptBody(msg, pos + 1, &edns, &pos)) return *e;
    q.edns = std::move(edns);
  }
  if (pos != msg.size()) return Err(DnsErrc::kTrailingBytes, pos);
  return q;
}

std::vector<uint8_t> BuildErrorResponse(const DnsQuery& query, DnsRcode rcode) {
  std::vector<uint8_t> out;
  out.reserve(kDnsHeaderSize + query.question.wire_name.size() + 4 + 11);
  Put16(&out, query.id);
  uint16_t flags = static_cast<uint16_t>(kDnsFlagQr | kDnsFlagRa | (query.flags & (kDnsFlagRd | kDnsFlagCd)) |
                                         (static_cast<uint16_t>(rcode) & kRcodeMask));
  Put16(&out, flags);
  Put16(&out, 1);  // QDCOUNT
  Put16(&out, 0);  // ANCOUNT
  Put16(&out, 0);  // NSCOUNT
  Put16(&out, query.edns ? 1 : 0);
  out.insert(out.end(), query.question.wire_name.begin(), query.question.wire_name.end());
  Put16(&out, query.question.qtype);
  Put16(&out, query.question.qclass);
  if (query.edns) {
    out.push_back(0);  // root owner
    Put16(&out, kDnsTypeOpt);
    Put16(&out, kDnsEdnsUdpSize);
    Put16(&out, 0);                                                  // extended RCODE 0, version 0
    Put16(&out, static_cast<uint16_t>(query.edns->flags & 0x8000));  // echo DO only
    Put16(&out, 0);                                                  // no options
  }
  return out;
}

std::optional<std::vector<uint8_t>> BuildHeaderOnlyResponse(std::span<const uint8_t> message, DnsRcode rcode) {
  if (message.size() < kDnsHeaderSize) return std::nullopt;
  uint16_t flags = Get16(message, 2);
  if (flags & kDnsFlagQr) return std::nullopt;
  std::vector<uint8_t> out;
  out.reserve(kDnsHeaderSize);
  out.push_back(message[0]);
  out.push_back(message[1]);
  Put16(&out, static_cast<uint16_t>(kDnsFlagQr | kDnsFlagRa | (flags & (kOpcodeMask | kDnsFlagRd)) |
                                    (static_cast<uint16_t>(rcode) & kRcodeMask)));
  for (int i = 0; i < 4; ++i) Put16(&out, 0);
  return out;
}

DnsResult<DnsResponse> ParseResponse(std::span<const uint8_t> msg) {
  if (msg.size() > kDnsMaxMessageSize) return Err(DnsErrc::kTooLarge, kDnsMaxMessageSize);
  if (msg.size() < kDnsHeaderSize) return Err(DnsErrc::kTruncated, msg.size());
  Header h = ReadHeader(msg);
  if (!(h.flags & kDnsFlagQr)) return Err(DnsErrc::kNotResponse, 2);
  uint8_t opcode = static_cast<uint8_t>((h.flags & kOpcodeMask) >> kOpcodeShift);
  if (opcode != 0) return DnsError{DnsErrc::kUnsupportedOpcode, 2, opcode};
  if (h.qdcount > 1) return Err(DnsErrc::kQuestionCount, 4);

  DnsResponse r;
  r.id = h.id;
  r.flags = h.flags;
  size_t pos = kDnsHeaderSize;
  if (h.qdcount == 1) {
    DnsQuestion q;
    if (auto e = ReadQuestion(msg, pos, &q, &pos)) return *e;
    r.question = std::move(q);
  }
  // Each record takes at least 11 bytes, so the counts cannot make this loop
  // run longer than the message allows: a short message fails with kTruncated.
  const std::pair<Section, uint16_t> sections[] = {
      {Section::kAnswer, h.ancount}, {Section::kAuthority, h.nscount}, {Section::kAdditional, h.arcount}};
  for (const auto& [section, count] : sections) {
    for (uint16_t i = 0; i < count; ++i) {
      if (auto e = ReadRecord(msg, pos, section, &r, &pos)) return *e;
    }
  }
  if (pos != msg.size()) return Err(DnsErrc::kTrailingBytes, pos);
  r.rcode =
      static_cast<uint16_t>((h.flags & kRcodeMask) | (r.edns ? static_cast<uint16_t>(r.edns->extended_rcode) << 4 : 0));
  return r;
}

bool ResponseMatchesQuery(const DnsQuery& query, const DnsResponse& response) {
  return response.id == query.id && response.question && response.question->name == query.question.name &&
         response.question->qtype == query.question.qtype && response.question->qclass == query.question.qclass;
}

std::vector<ResolvedAddress> AddressesFor(const DnsResponse& response, std::string_view name) {
  struct Reached {
    std::string name;
    uint32_t ttl;
  };
  std::vector<Reached> reached;
  reached.push_back({LowerAscii(name), 0xffffffff});
  // Breadth-first over CNAME links. A name owns at most one CNAME in valid
  // data; if a response lists more, every target is followed (all of them
  // come from the same authority), still bounded by kDnsMaxCnameHops names.
  for (size_t i = 0; i < reached.size(); ++i) {
    for (const DnsAnswer& a : response.answers) {
      if (a.type != kDnsTypeCname || a.name != reached[i].name) continue;
      bool seen = std::any_of(reached.begin(), reached.end(), [&a](const Reached& r) { return r.name == a.cname; });
      if (seen || reached.size() > static_cast<size_t>(kDnsMaxCnameHops)) continue;
      reached.push_back({a.cname, std::min(reached[i].ttl, a.ttl)});
    }
  }
  std::vector<ResolvedAddress> out;
  for (const DnsAnswer& a : response.answers) {
    if (a.type != kDnsTypeA && a.type != kDnsTypeAaaa) continue;
    for (const Reached& r : reached) {
      if (r.name == a.name) {
        out.push_back({a.address, std::min(r.ttl, a.ttl)});
        break;
      }
    }
  }
  return out;
}

DnsTcpFrame NextDnsTcpMessage(std::span<const uint8_t> stream) {
  DnsTcpFrame f;
  if (stream.size() < 2) {
    f.need = 2;
    return f;
  }
  size_t len = Get16(stream, 0);
  if (len < kDnsHeaderSize) {
    f.status = DnsTcpStatus::kMalformed;
    return f;
  }
  if (stream.size() - 2 < len) {
    f.need = 2 + len;
    return f;
  }
  f.status = DnsTcpStatus::kMessage;
  f.message = stream.subspan(2, len);
  f.consumed = 2 + len;
  return f;
}

std::optional<std::vector<uint8_t>> FrameDnsTcpMessage(std::span<const uint8_t> message) {
  if (message.size() > kDnsMaxMessageSize) return std::nullopt;
  std::vector<uint8_t> out;
  out.reserve(2 + message.size());
  Put16(&out, static_cast<uint16_t>(message.size()));
  out.insert(out.end(), message.begin(), message.end());
  return out;
}

}  // namespace ward::net
