// TLS ClientHello and HTTP/1.x sniffing: captured client bytes (curl 7.88 and
// OpenSSL 3.0 against a local listener), built variants, and every rejection
// with its reason.
#include "net/sniff.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ward::net {
namespace {

std::vector<uint8_t> FromHex(std::string_view hex) {
  std::vector<uint8_t> out;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  int hi = -1;
  for (char c : hex) {
    int v = nibble(c);
    if (v < 0) continue;  // whitespace
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<uint8_t>(hi << 4 | v));
      hi = -1;
    }
  }
  return out;
}

std::span<const uint8_t> Prefix(const std::vector<uint8_t>& b, size_t n) { return {b.data(), n}; }

// Appends byte by byte. (vector::insert of small vectors trips false
// -Warray-bounds/-Wstringop-overread reports in g++ 12 at -O3.)
template <typename Range>
void Append(std::vector<uint8_t>* out, const Range& in) {
  for (auto v : in) out->push_back(static_cast<uint8_t>(v));
}
void Append(std::vector<uint8_t>* out, std::initializer_list<uint8_t> in) {
  for (uint8_t v : in) out->push_back(v);
}

// `curl -k https://allowed.test:4433/` (curl 7.88.1, OpenSSL 3.0): one
// 512-byte record, SNI allowed.test, ALPN h2/http1.1, padded.
const std::vector<uint8_t> kCurlHello = FromHex(
    "1603010200010001fc03032226596c24aa1fc68670594775f2b4d1dc5e5ff98a064e104e7d24b439d1c12e20998d4e13"
    "a8fe212447c1e0a400a168d9071859d70bdf859675089768fbef640b003e130213031301c02cc030009fcca9cca8ccaa"
    "c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff01000175"
    "00000011000f00000c616c6c6f7765642e74657374000b000403000102000a00160014001d0017001e00190018010001"
    "010102010301040010000e000c02683208687474702f312e31001600000017000000310000000d002a00280403050306"
    "03080708080809080a080b080408050806040105010601030303010302040205020602002b0009080304030303020301"
    "002d00020101003300260024001d00207244ce3fdf25455f7161a93e7d80df8b1e415e8bbc78630077530998430acb71"
    "001500b10000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000000000000000000000");

// `openssl s_client -servername Allowed.TEST` (OpenSSL 3.0.19).
const std::vector<uint8_t> kOpensslHello = FromHex(
    "1603010139010001350303b8893a923aadafb5ac2303d9b5881f78bdc4f783869b21dc18d80624de59a8ed205b1f3885"
    "ddb7b708b4710f6fdb62b37ef353b2a9b92a65346cbac15249225f88003e130213031301c02cc030009fcca9cca8ccaa"
    "c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff010000ae"
    "00000011000f00000c416c6c6f7765642e54455354000b000403000102000a00160014001d0017001e00190018010001"
    "01010201030104002300000016000000170000000d002a0028040305030603080708080809080a080b08040805080604"
    "0105010601030303010302040205020602002b0009080304030303020301002d00020101003300260024001d0020cbf7"
    "1f4e9e76fa9e662834e9df70ea01851cb6f39121e594eee41c98d73fe53f");

// `openssl s_client -noservername -tls1_2`: no server_name extension.
const std::vector<uint8_t> kOpensslNoSniHello = FromHex(
    "16030100b7010000b303034726aba02da1f51af249f54542fa0f25db3d87a1f12341c904d08aafe54bb95e000038c02c"
    "c030009fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c"
    "0035002f00ff01000052000b000403000102000a000c000a001d0017001e00190018002300000016000000170000000d"
    "002a0028040305030603080708080809080a080b080408050806040105010601030303010302040205020602");

void Put16(std::vector<uint8_t>* b, size_t v) {
  b->push_back(static_cast<uint8_t>(v >> 8));
  b->push_back(static_cast<uint8_t>(v));
}

std::vector<uint8_t> Ext(uint16_t type, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> e;
  Put16(&e, type);
  Put16(&e, data.size());
  Append(&e, data);
  return e;
}

struct SniEntry {
  uint8_t type;
  std::string name;
};

std::vector<uint8_t> SniExt(const std::vector<SniEntry>& entries) {
  std::vector<uint8_t> list;
  for (const auto& e : entries) {
    list.push_back(e.type);
    Put16(&list, e.name.size());
    Append(&list, e.name);
  }
  std::vector<uint8_t> data;
  Put16(&data, list.size());
  Append(&data, list);
  return Ext(kTlsExtServerName, data);
}

std::vector<uint8_t> Sni(const std::string& name) { return SniExt({{0, name}}); }

// A ClientHello body: legacy_version 3.3, zero random, 32-byte session id,
// two TLS 1.3 suites, null compression, then `extensions` (omitted entirely
// when `with_extensions` is false).
std::vector<uint8_t> HelloBody(const std::vector<std::vector<uint8_t>>& extensions, bool with_extensions = true) {
  // (Built with reserve + push_back: g++ 12 -O3 warns falsely about
  // inserting into a small vector built from an initializer list.)
  std::vector<uint8_t> b;
  b.reserve(256);
  b.push_back(0x03);
  b.push_back(0x03);
  b.resize(b.size() + 32, 0x11);  // random
  b.push_back(32);
  b.resize(b.size() + 32, 0x22);  // session id
  for (uint8_t v : {0x00, 0x04, 0x13, 0x01, 0x13, 0x02, 0x01, 0x00}) b.push_back(v);
  if (with_extensions) {
    std::vector<uint8_t> ext;
    for (const auto& e : extensions) Append(&ext, e);
    Put16(&b, ext.size());
    Append(&b, ext);
  }
  return b;
}

std::vector<uint8_t> Handshake(const std::vector<uint8_t>& body, uint8_t type = 1) {
  std::vector<uint8_t> h;
  h.reserve(4 + body.size());
  h.push_back(type);
  h.push_back(static_cast<uint8_t>(body.size() >> 16));
  Put16(&h, body.size() & 0xffff);
  Append(&h, body);
  return h;
}

// Splits a handshake message into records of at most `chunk` bytes.
std::vector<uint8_t> Records(const std::vector<uint8_t>& message, size_t chunk = 16384) {
  std::vector<uint8_t> out;
  for (size_t pos = 0; pos < message.size(); pos += chunk) {
    size_t n = std::min(chunk, message.size() - pos);
    Append(&out, {0x16, 0x03, 0x01});
    Put16(&out, n);
    Append(&out, std::span<const uint8_t>(message).subspan(pos, n));
  }
  return out;
}

std::vector<uint8_t> Hello(const std::vector<std::vector<uint8_t>>& extensions) {
  return Records(Handshake(HelloBody(extensions)));
}

void ExpectTlsError(const std::vector<uint8_t>& bytes, TlsError error) {
  TlsClientHello h = ParseClientHelloSni(bytes);
  EXPECT_EQ(h.status, TlsSniffStatus::kMalformed) << TlsErrorName(h.error);
  EXPECT_EQ(h.error, error) << TlsErrorName(h.error) << " instead of " << TlsErrorName(error);
}

// ---------------------------------------------------------------------------
// TLS

TEST(ClientHello, CurlCapture) {
  ASSERT_EQ(kCurlHello.size(), 517u);
  TlsClientHello h = ParseClientHelloSni(kCurlHello);
  EXPECT_EQ(h.status, TlsSniffStatus::kSni) << TlsErrorName(h.error);
  EXPECT_EQ(h.host, "allowed.test");
  EXPECT_EQ(h.consumed, 517u);
}

TEST(ClientHello, OpensslCaptureIsLowerCased) {
  TlsClientHello h = ParseClientHelloSni(kOpensslHello);
  EXPECT_EQ(h.status, TlsSniffStatus::kSni) << TlsErrorName(h.error);
  EXPECT_EQ(h.host, "allowed.test");
}

TEST(ClientHello, OpensslWithoutServerName) {
  TlsClientHello h = ParseClientHelloSni(kOpensslNoSniHello);
  EXPECT_EQ(h.status, TlsSniffStatus::kNoSni) << TlsErrorName(h.error);
  EXPECT_TRUE(h.host.empty());
}

TEST(ClientHello, NoExtensionsAtAll) {
  TlsClientHello h = ParseClientHelloSni(Records(Handshake(HelloBody({}, false))));
  EXPECT_EQ(h.status, TlsSniffStatus::kNoSni) << TlsErrorName(h.error);
}

TEST(ClientHello, EveryPrefixNeedsMore) {
  for (size_t n = 0; n < kCurlHello.size(); ++n) {
    TlsClientHello h = ParseClientHelloSni(Prefix(kCurlHello, n));
    ASSERT_EQ(h.status, TlsSniffStatus::kNeedMore) << n;
    EXPECT_EQ(h.need, n < 5 ? 5u : 517u) << n;
  }
}

TEST(ClientHello, BytesAfterTheHelloAreNotRead) {
  std::vector<uint8_t> b = kCurlHello;
  Append(&b, {0x14, 0x03, 0x03, 0x00, 0x01, 0x01, 0x17, 0x03, 0x03});  // CCS, app data
  TlsClientHello h = ParseClientHelloSni(b);
  EXPECT_EQ(h.status, TlsSniffStatus::kSni);
  EXPECT_EQ(h.consumed, 517u);
}

TEST(ClientHello, ReassemblesFragmentedRecords) {
  // The curl handshake message re-framed in records of 100, 7 and 1 bytes
  // (fragmenting the ClientHello is a known way to slip past SNI filters).
  std::vector<uint8_t> message(kCurlHello.begin() + 5, kCurlHello.end());
  for (size_t chunk : {100u, 7u, 1u}) {
    std::vector<uint8_t> b = Records(message, chunk);
    TlsClientHello h = ParseClientHelloSni(b);
    EXPECT_EQ(h.status, TlsSniffStatus::kSni) << chunk << ": " << TlsErrorName(h.error);
    EXPECT_EQ(h.host, "allowed.test") << chunk;
    EXPECT_EQ(h.consumed, b.size()) << chunk;
    // Prefixes wait for the header, then the end, of the record they stop in.
    TlsClientHello p = ParseClientHelloSni(Prefix(b, 5 + chunk + 3));
    EXPECT_EQ(p.status, TlsSniffStatus::kNeedMore);
    EXPECT_EQ(p.need, 5 + chunk + 5);
    if (chunk > 1) {
      p = ParseClientHelloSni(Prefix(b, 5 + chunk + 5 + 1));
      EXPECT_EQ(p.status, TlsSniffStatus::kNeedMore);
      EXPECT_EQ(p.need, 5 + chunk + 5 + chunk);
    }
  }
}

TEST(ClientHello, RejectsRecordsInterleavedWithTheHello) {
  std::vector<uint8_t> message(kCurlHello.begin() + 5, kCurlHello.end());
  std::vector<uint8_t> first = Records(std::vector<uint8_t>(message.begin(), message.begin() + 100));
  std::vector<uint8_t> rest = Records(std::vector<uint8_t>(message.begin() + 100, message.end()));
  std::vector<uint8_t> b = first;
  Append(&b, {0x14, 0x03, 0x03, 0x00, 0x01, 0x01});  // change_cipher_spec
  Append(&b, rest);
  ExpectTlsError(b, TlsError::kInterleavedRecord);
}

TEST(ClientHello, NotTls) {
  std::string_view http = "GET / HTTP/1.1\r\n";
  std::vector<uint8_t> get(http.begin(), http.end());
  EXPECT_EQ(ParseClientHelloSni(get).status, TlsSniffStatus::kNotTls);
  std::string_view ssh = "SSH-2.0-OpenSSH_9.2\r\n";
  EXPECT_EQ(ParseClientHelloSni(std::vector<uint8_t>(ssh.begin(), ssh.end())).status, TlsSniffStatus::kNotTls);
  // SSLv2-compatible hello.
  EXPECT_EQ(ParseClientHelloSni(FromHex("802e0103010015")).status, TlsSniffStatus::kNotTls);
  // Handshake content type, but not version 3.x.
  EXPECT_EQ(ParseClientHelloSni(FromHex("1602")).status, TlsSniffStatus::kNotTls);
  // One byte that could start a handshake record: wait.
  TlsClientHello one = ParseClientHelloSni(FromHex("16"));
  EXPECT_EQ(one.status, TlsSniffStatus::kNeedMore);
  EXPECT_EQ(one.need, 5u);
}

TEST(ClientHello, EncryptedClientHelloIsReportedWithTheOuterName) {
  std::vector<uint8_t> ech_payload = {0x00, 0x00, 0x01, 0x00, 0x01, 0x2a, 0x00, 0x00, 0x00, 0x00};
  TlsClientHello h = ParseClientHelloSni(Hello({Sni("public.example"), Ext(kTlsExtEncryptedClientHello, ech_payload)}));
  EXPECT_EQ(h.status, TlsSniffStatus::kEncryptedClientHello) << TlsErrorName(h.error);
  EXPECT_EQ(h.host, "public.example");
  // The draft ESNI extension too, even without a server_name.
  TlsClientHello e = ParseClientHelloSni(Hello({Ext(kTlsExtEncryptedServerName, {0, 1, 2})}));
  EXPECT_EQ(e.status, TlsSniffStatus::kEncryptedClientHello);
  EXPECT_TRUE(e.host.empty());
}

TEST(ClientHello, AcceptsUnderscoreAndDigitsInNames) {
  TlsClientHello h = ParseClientHelloSni(Hello({Sni("_acme-1.Allowed.test")}));
  EXPECT_EQ(h.status, TlsSniffStatus::kSni);
  EXPECT_EQ(h.host, "_acme-1.allowed.test");
}

TEST(ClientHello, RejectsTwoServerNameExtensions) {
  ExpectTlsError(Hello({Sni("allowed.test"), Sni("evil.test")}), TlsError::kDuplicateExtension);
}

TEST(ClientHello, RejectsAnyDuplicatedExtension) {
  ExpectTlsError(Hello({Sni("allowed.test"), Ext(0x0010, {0, 0}), Ext(0x0010, {0, 0})}), TlsError::kDuplicateExtension);
}

TEST(ClientHello, RejectsTwoNamesInOneExtension) {
  ExpectTlsError(Hello({SniExt({{0, "allowed.test"}, {0, "evil.test"}})}), TlsError::kMultipleServerNames);
}

TEST(ClientHello, RejectsNonHostNameEntries) {
  ExpectTlsError(Hello({SniExt({{1, "allowed.test"}})}), TlsError::kServerNameType);
}

TEST(ClientHello, RejectsNamesThatAreNotPlainHostNames) {
  for (const std::string& bad :
       {std::string(""), std::string("allowed.test.."), std::string("."), std::string(".allowed.test"), std::string("a..test"),
        std::string("evil.test\0.allowed.test", 23), std::string("allowed.test:443"), std::string("*.allowed.test"),
        std::string("allowed test"), std::string("\xc3\xa9.test"), std::string(64, 'a') + ".test",
        std::string(251, 'a').insert(63, ".").insert(127, ".").insert(191, ".")}) {
    ExpectTlsError(Hello({Sni(bad)}), TlsError::kServerNameHost);
  }
  // 63-character labels and 253 characters are fine.
  std::string longest =
      std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." + std::string(61, 'd');
  ASSERT_EQ(longest.size(), 253u);
  TlsClientHello h = ParseClientHelloSni(Hello({Sni(longest)}));
  EXPECT_EQ(h.status, TlsSniffStatus::kSni);
  EXPECT_EQ(h.host, longest);
}

// The fully qualified form names the same host (issue 9, item 3): judged
// as the name without its trailing dot, so a rule for the name decides it.
TEST(ClientHello, TrailingDotIsTheSameName) {
  TlsClientHello h = ParseClientHelloSni(Hello({Sni("Allowed.Test.")}));
  EXPECT_EQ(h.status, TlsSniffStatus::kSni);
  EXPECT_EQ(h.host, "allowed.test");
  HttpRequestHead r = ParseHttpRequestHead("GET / HTTP/1.1\r\nHost: allowed.test.:8080\r\n\r\n");
  EXPECT_EQ(r.status, HttpSniffStatus::kRequest);
  EXPECT_EQ(r.host, "allowed.test");
}

TEST(ClientHello, RejectsMisSizedServerNameList) {
  ExpectTlsError(Hello({Ext(kTlsExtServerName, {})}), TlsError::kServerNameList);
  ExpectTlsError(Hello({Ext(kTlsExtServerName, {0x00, 0x00})}), TlsError::kServerNameList);
  ExpectTlsError(Hello({Ext(kTlsExtServerName, {0x00, 0x05, 0x00, 0x00, 0x01, 'a'})}), TlsError::kServerNameList);
  ExpectTlsError(Hello({Ext(kTlsExtServerName, {0x00, 0x04, 0x00, 0x00, 0x05, 'a'})}), TlsError::kServerNameList);
}

TEST(ClientHello, RejectsBadRecordLayer) {
  std::vector<uint8_t> v = kCurlHello;
  v[2] = 0x05;
  ExpectTlsError(v, TlsError::kRecordVersion);
  ExpectTlsError(FromHex("1603010000"), TlsError::kRecordLength);
  ExpectTlsError(FromHex("1603014001"), TlsError::kRecordLength);  // 16385
}

TEST(ClientHello, RejectsOtherHandshakeMessages) {
  ExpectTlsError(Records(Handshake(HelloBody({Sni("a.test")}), 2)), TlsError::kNotClientHello);
  // Known from the first byte of the first record.
  ExpectTlsError(FromHex("160303000102"), TlsError::kNotClientHello);
}

TEST(ClientHello, RejectsOversizedHello) {
  // A 16 KiB padding extension pushes the message past kMaxClientHelloSize.
  std::vector<uint8_t> b = Records(Handshake(HelloBody({Sni("a.test"), Ext(0x0015, std::vector<uint8_t>(16300, 0))})));
  ExpectTlsError(b, TlsError::kTooLarge);
  // Known from the handshake header alone.
  ExpectTlsError(FromHex("16030100040100ffff"), TlsError::kTooLarge);
}

TEST(ClientHello, RejectsDataAfterTheHelloInItsRecord) {
  std::vector<uint8_t> message = Handshake(HelloBody({Sni("allowed.test")}));
  Append(&message, {0x01, 0x00, 0x00, 0x00});  // a second handshake message
  ExpectTlsError(Records(message), TlsError::kTrailingData);
  // Also when only the record header says so.
  ExpectTlsError(FromHex("160301000901000004"), TlsError::kTrailingData);  // record 9, message 8
}

TEST(ClientHello, RejectsBadBodyFields) {
  std::vector<uint8_t> body = HelloBody({Sni("a.test")});
  auto with = [&body](size_t at, uint8_t v) {
    std::vector<uint8_t> b = body;
    b[at] = v;
    return Records(Handshake(b));
  };
  ExpectTlsError(with(0, 0x02), TlsError::kClientVersion);
  ExpectTlsError(with(34, 33), TlsError::kSessionId);
  ExpectTlsError(with(68, 0x03), TlsError::kCipherSuites);  // odd length
  std::vector<uint8_t> no_suites = body;
  no_suites[68] = 0;
  no_suites[67] = 0;
  ExpectTlsError(Records(Handshake(no_suites)), TlsError::kCipherSuites);
  ExpectTlsError(with(73, 0), TlsError::kCompression);
  ExpectTlsError(with(76, 0xff), TlsError::kExtensionsLength);
  // Lengths that run past the end of the message.
  ExpectTlsError(Records(Handshake(std::vector<uint8_t>(body.begin(), body.begin() + 20))), TlsError::kTruncated);
  ExpectTlsError(Records(Handshake(std::vector<uint8_t>(body.begin(), body.begin() + 50))), TlsError::kTruncated);
  // An extension header cut short.
  std::vector<uint8_t> cut = HelloBody({});
  cut.push_back(0x00);
  cut[cut.size() - 3] = 0;
  cut[cut.size() - 2] = 1;
  ExpectTlsError(Records(Handshake(cut)), TlsError::kExtensionsLength);
}

TEST(TlsErrorName, IsStable) {
  EXPECT_EQ(TlsErrorName(TlsError::kDuplicateExtension), "duplicate_extension");
  EXPECT_EQ(TlsErrorName(TlsError::kMultipleServerNames), "multiple_server_names");
}

// ---------------------------------------------------------------------------
// HTTP request heads

constexpr std::string_view kCurlGet =
    "GET /path?q=1 HTTP/1.1\r\nHost: allowed.test:4436\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
constexpr std::string_view kCurlProxyGet =
    "GET http://allowed.test/x HTTP/1.1\r\nHost: allowed.test\r\nUser-Agent: curl/7.88.1\r\n"
    "Accept: */*\r\nProxy-Connection: Keep-Alive\r\n\r\n";
constexpr std::string_view kCurlConnect =
    "CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\nUser-Agent: curl/7.88.1\r\n"
    "Proxy-Connection: Keep-Alive\r\n\r\n";
constexpr std::string_view kCurlConnectV6 =
    "CONNECT [2001:db8::1]:8443 HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\nUser-Agent: curl/7.88.1\r\n"
    "Proxy-Connection: Keep-Alive\r\n\r\n";

HttpRequestHead Head(std::string_view s) { return ParseHttpRequestHead(s); }

void ExpectHttpError(std::string_view s, HttpError error) {
  HttpRequestHead h = Head(s);
  EXPECT_EQ(h.status, HttpSniffStatus::kMalformed) << s;
  EXPECT_EQ(h.error, error) << HttpErrorName(h.error) << " instead of " << HttpErrorName(error) << ": " << s;
}

std::string Request(std::string_view headers, std::string_view line = "GET / HTTP/1.1") {
  return std::string(line) + "\r\n" + std::string(headers) + "\r\n";
}

TEST(HttpHead, CurlCapture) {
  HttpRequestHead h = Head(kCurlGet);
  ASSERT_EQ(h.status, HttpSniffStatus::kRequest) << HttpErrorName(h.error);
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.target, "/path?q=1");
  EXPECT_EQ(h.version_minor, 1);
  EXPECT_EQ(h.host, "allowed.test");
  EXPECT_EQ(h.port, 4436);
  EXPECT_TRUE(h.target_host.empty());
  EXPECT_EQ(h.head_length, kCurlGet.size());
  EXPECT_FALSE(h.content_length.has_value());
  EXPECT_FALSE(h.chunked);
}

TEST(HttpHead, CurlThroughProxyAbsoluteForm) {
  HttpRequestHead h = Head(kCurlProxyGet);
  ASSERT_EQ(h.status, HttpSniffStatus::kRequest) << HttpErrorName(h.error);
  EXPECT_EQ(h.scheme, "http");
  EXPECT_EQ(h.target_host, "allowed.test");
  EXPECT_FALSE(h.target_port.has_value());
  EXPECT_EQ(h.host, "allowed.test");
}

TEST(HttpHead, EveryPrefixNeedsMore) {
  for (std::string_view full : {kCurlGet, kCurlProxyGet, kCurlConnect, kCurlConnectV6}) {
    for (size_t n = 0; n < full.size(); ++n) {
      HttpRequestHead h = Head(full.substr(0, n));
      ASSERT_EQ(h.status, HttpSniffStatus::kNeedMore) << n << " " << HttpErrorName(h.error) << ": " << full;
      // A request line that is not CONNECT fails ParseConnectRequest at once.
      bool line_done = full.substr(0, n).find("\r\n") != std::string_view::npos;
      EXPECT_EQ(ParseConnectRequest(full.substr(0, n)).status,
                full[0] == 'C' || !line_done ? ConnectStatus::kNeedMore : ConnectStatus::kMalformed)
          << n;
    }
  }
}

TEST(HttpHead, BytesAfterTheHeadAreNotRead) {
  std::string s = std::string(kCurlGet) + "GET http://evil.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n";
  HttpRequestHead h = Head(s);
  EXPECT_EQ(h.status, HttpSniffStatus::kRequest);
  EXPECT_EQ(h.head_length, kCurlGet.size());
}

TEST(HttpHead, BodyFraming) {
  HttpRequestHead cl = Head(Request("Host: a.test\r\nContent-Length: 42\r\n", "POST /x HTTP/1.1"));
  ASSERT_EQ(cl.status, HttpSniffStatus::kRequest);
  EXPECT_EQ(cl.content_length, 42u);
  HttpRequestHead te = Head(Request("Host: a.test\r\nTransfer-Encoding: Chunked\r\n", "POST /x HTTP/1.1"));
  ASSERT_EQ(te.status, HttpSniffStatus::kRequest);
  EXPECT_TRUE(te.chunked);
}

TEST(HttpHead, AcceptedVariants) {
  // HTTP/1.0 with an absolute-form target needs no Host.
  HttpRequestHead h10 = Head("GET https://Allowed.Test:8443/ HTTP/1.0\r\n\r\n");
  ASSERT_EQ(h10.status, HttpSniffStatus::kRequest) << HttpErrorName(h10.error);
  EXPECT_EQ(h10.version_minor, 0);
  EXPECT_EQ(h10.scheme, "https");
  EXPECT_EQ(h10.target_host, "allowed.test");
  EXPECT_EQ(h10.target_port, 8443);
  // Default ports compare equal to explicit ones.
  EXPECT_EQ(Head(Request("Host: allowed.test:443\r\n", "GET https://allowed.test/ HTTP/1.1")).status,
            HttpSniffStatus::kRequest);
  EXPECT_EQ(Head(Request("Host: allowed.test\r\n", "GET http://allowed.test:80/ HTTP/1.1")).status,
            HttpSniffStatus::kRequest);
  // OPTIONS *, header case, OWS around values, IPv6 Host.
  HttpRequestHead o = Head(Request("hOsT:\t [2001:DB8::1]:8080 \t\r\nX-Empty:\r\n", "OPTIONS * HTTP/1.1"));
  ASSERT_EQ(o.status, HttpSniffStatus::kRequest) << HttpErrorName(o.error);
  EXPECT_EQ(o.host, "2001:db8::1");
  EXPECT_EQ(o.port, 8080);
  // obs-text in an unrelated header value is allowed by RFC 9110.
  EXPECT_EQ(Head(Request("Host: a.test\r\nX-Name: caf\xc3\xa9\r\n")).status, HttpSniffStatus::kRequest);
  // A head of exactly kMaxHttpHeadSize bytes.
  std::string base = Request("Host: a.test\r\nX-Pad: \r\n");
  std::string exact = Request("Host: a.test\r\nX-Pad: " + std::string(kMaxHttpHeadSize - base.size(), 'p') + "\r\n");
  ASSERT_EQ(exact.size(), kMaxHttpHeadSize);
  EXPECT_EQ(Head(exact).status, HttpSniffStatus::kRequest);
  std::string over = Request("Host: a.test\r\nX-Pad: " + std::string(kMaxHttpHeadSize - base.size() + 1, 'p') + "\r\n");
  ExpectHttpError(over, HttpError::kTooLarge);
}

TEST(HttpHead, AmbiguousHostReportsBoth) {
  HttpRequestHead h = Head(Request("Host: allowed.test\r\n", "GET http://evil.test/ HTTP/1.1"));
  ASSERT_EQ(h.status, HttpSniffStatus::kAmbiguousHost);
  EXPECT_EQ(h.host, "allowed.test");
  EXPECT_EQ(h.target_host, "evil.test");
  HttpRequestHead p = Head(Request("Host: allowed.test\r\n", "GET http://allowed.test:8080/ HTTP/1.1"));
  EXPECT_EQ(p.status, HttpSniffStatus::kAmbiguousHost);
  EXPECT_EQ(p.target_port, 8080);
  EXPECT_FALSE(p.port.has_value());
}

TEST(HttpHead, NotHttp) {
  EXPECT_EQ(Head(std::string_view("\x16\x03\x01\x02\x00\x01\xfc", 7)).status, HttpSniffStatus::kNotHttp);
  EXPECT_EQ(Head("\x16\x03\x01").error, HttpError::kRequestLine);  // not a method token: refused at once
  EXPECT_EQ(Head("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n").status, HttpSniffStatus::kNotHttp);
  EXPECT_EQ(Head(std::string_view("\0\0\0\x08\x04\xd2\x16\x2f", 8)).status, HttpSniffStatus::kNotHttp);
  EXPECT_EQ(Head("*1\r\n$4\r\nPING\r\n").status, HttpSniffStatus::kNotHttp);  // Redis
  EXPECT_EQ(Head(std::string(40, 'A') + "\r\n").status, HttpSniffStatus::kNotHttp);
  EXPECT_EQ(Head("G(T / HTTP/1.1\r\nHost: a\r\n\r\n").status, HttpSniffStatus::kNotHttp);
  EXPECT_EQ(Head("G(T").status, HttpSniffStatus::kNotHttp);  // decided before the line ends
  EXPECT_EQ(Head("").status, HttpSniffStatus::kNeedMore);
  EXPECT_EQ(Head("GET").status, HttpSniffStatus::kNeedMore);
}

TEST(HttpHead, RejectsLineEndingOddities) {
  ExpectHttpError("GET / HTTP/1.1\nHost: a.test\n\n", HttpError::kBareLf);
  ExpectHttpError("GET / HTTP/1.1\r\nHost: a.test\n\r\n", HttpError::kBareLf);
  ExpectHttpError("GET / HTTP/1.1\r\nHost: a.test\r\n\n", HttpError::kBareLf);
  ExpectHttpError("GET / HTTP/1.1\r\nHost: a.test\rX: y\r\n\r\n", HttpError::kBareCr);
  ExpectHttpError("GET / HTTP/1.1\r\r\nHost: a.test\r\n\r\n", HttpError::kBareCr);
  // Decided before the head ends, so a client cannot stall the proxy with them.
  ExpectHttpError("GET / HTTP/1.1\nHost: a", HttpError::kBareLf);
  ExpectHttpError("GET / HTTP/1.1\r\nHost: a\rb", HttpError::kBareCr);
  ExpectHttpError("\r\nGET / HTTP/1.1\r\nHost: a.test\r\n\r\n", HttpError::kLeadingEmptyLine);
}

TEST(HttpHead, RejectsBadRequestLines) {
  ExpectHttpError("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", HttpError::kRequestLine);
  ExpectHttpError("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", HttpError::kRequestLine);
  ExpectHttpError("GET / x HTTP/1.1\r\nHost: a\r\n\r\n", HttpError::kRequestLine);
  ExpectHttpError("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", HttpError::kRequestLine);
  ExpectHttpError("GET /\tHTTP/1.1\r\nHost: a\r\n\r\n", HttpError::kRequestLine);
  ExpectHttpError(std::string(33, 'M') + " / HTTP/1.1\r\nHost: a\r\n\r\n", HttpError::kRequestLine);
  ExpectHttpError("GET HTTP/1.1\r\nHost: a\r\n\r\n", HttpError::kRequestLine);
  ExpectHttpError("GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", HttpError::kTarget);
  ExpectHttpError("GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n", HttpError::kTarget);
  ExpectHttpError("GET /#frag HTTP/1.1\r\nHost: a\r\n\r\n", HttpError::kTarget);
  ExpectHttpError("GET a.test:80 HTTP/1.1\r\nHost: a\r\n\r\n", HttpError::kTarget);
  ExpectHttpError("GET * HTTP/1.1\r\nHost: a\r\n\r\n", HttpError::kTarget);
  ExpectHttpError("GET ftp://a.test/ HTTP/1.1\r\nHost: a\r\n\r\n", HttpError::kTarget);
  ExpectHttpError("GET http://allowed.test@evil.test/ HTTP/1.1\r\n\r\n", HttpError::kTarget);
  ExpectHttpError("GET http://allowed.test\\@evil.test/ HTTP/1.1\r\n\r\n", HttpError::kTarget);
  ExpectHttpError("GET http://evil.test%2eallowed.test/ HTTP/1.1\r\n\r\n", HttpError::kBadHost);
  ExpectHttpError("GET / HTTP/1.2\r\nHost: a\r\n\r\n", HttpError::kVersion);
  ExpectHttpError("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", HttpError::kVersion);
}

TEST(HttpHead, FormsLenientServersAcceptAreMalformedNotOpaque) {
  // A server might read these as HTTP, so the proxy must not pass them on as
  // opaque TCP: they are malformed, not "not HTTP".
  ExpectHttpError("GET / http/1.1\r\nHost: a\r\n\r\n", HttpError::kVersion);
  ExpectHttpError("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", HttpError::kRequestLine);
  ExpectHttpError("FOO / Http/1.1\r\nHost: a\r\n\r\n", HttpError::kVersion);
  ExpectHttpError("GET /\r\n\r\n", HttpError::kRequestLine);  // HTTP/0.9
  ExpectHttpError("get\v/ HTTP/1.1\r\nHost: a\r\n\r\n", HttpError::kRequestLine);
  ExpectHttpError(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", HttpError::kRequestLine);
  // Long unknown tokens are not decided before the line ends.
  EXPECT_EQ(Head(std::string(100, 'A')).status, HttpSniffStatus::kNeedMore);
}

TEST(HttpHead, RejectsBadHeaderLines) {
  ExpectHttpError(Request("Host: a.test\r\n X-Folded: yes\r\n"), HttpError::kObsFold);
  ExpectHttpError(Request("Host: a.test\r\nX-Long: a\r\n\tb\r\n"), HttpError::kObsFold);
  ExpectHttpError(Request(" Host: a.test\r\n"), HttpError::kObsFold);
  ExpectHttpError(Request("Host : evil.test\r\n"), HttpError::kWhitespaceBeforeColon);
  ExpectHttpError(Request("Host\t: evil.test\r\n"), HttpError::kWhitespaceBeforeColon);
  ExpectHttpError(Request("Host: a.test\r\nNoColon\r\n"), HttpError::kHeaderName);
  ExpectHttpError(Request("Host: a.test\r\n: empty\r\n"), HttpError::kHeaderName);
  ExpectHttpError(Request("Host: a.test\r\nX(y): z\r\n"), HttpError::kHeaderName);
  ExpectHttpError(Request(std::string("Host: a.test\r\nX: a\0b\r\n", 22)), HttpError::kHeaderValue);
  ExpectHttpError(Request("Host: a.test\r\nX: a\x7f\r\n"), HttpError::kHeaderValue);
  ExpectHttpError(Request("Host: a.test\r\nX: a\x01\r\n"), HttpError::kHeaderValue);
}

TEST(HttpHead, RejectsMissingOrDuplicateHost) {
  ExpectHttpError(Request("Accept: */*\r\n"), HttpError::kMissingHost);
  // HTTP/1.0 needs no Host: a request that names no host (issue 9, item 3).
  HttpRequestHead h10 = Head(Request("", "GET / HTTP/1.0"));
  EXPECT_EQ(h10.status, HttpSniffStatus::kRequest);
  EXPECT_EQ(h10.host, "");
  ExpectHttpError(Request("Host: allowed.test\r\nHost: evil.test\r\n"), HttpError::kDuplicateHost);
  ExpectHttpError(Request("Host: allowed.test\r\nhost: allowed.test\r\n"), HttpError::kDuplicateHost);
}

TEST(HttpHead, RejectsHostsThatAreNotPlainHostPort) {
  for (std::string_view bad : {"",
                               "allowed.test..",
                               ".",
                               "allowed.test:",
                               "allowed.test:0",
                               "allowed.test:080",
                               "allowed.test:65536",
                               "allowed.test:443:443",
                               "user@allowed.test",
                               "allowed.test%00",
                               "allowed.test, evil.test",
                               "evil.test/allowed.test",
                               "[::1",
                               "[::1]x",
                               "[fe80::1%25eth0]",
                               "[1:2:3:4:5:6:7:8:9]",
                               "[::1::]",
                               "[1.2.3.4]",
                               "[::256.1.1.1]",
                               "[12345::]",
                               "caf\xc3\xa9.test"}) {
    ExpectHttpError(Request("Host: " + std::string(bad) + "\r\n"), HttpError::kBadHost);
  }
  for (std::string_view good :
       {"[::]", "[::1]", "[1:2:3:4:5:6:7:8]", "[::ffff:192.0.2.1]", "[1::]", "192.0.2.1", "a.test:65535"}) {
    EXPECT_EQ(Head(Request("Host: " + std::string(good) + "\r\n")).status, HttpSniffStatus::kRequest) << good;
  }
}

TEST(HttpHead, RejectsSmugglingFraming) {
  ExpectHttpError(Request("Host: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n", "POST / HTTP/1.1"),
                  HttpError::kContentLengthAndTransferEncoding);
  ExpectHttpError(Request("Host: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n"), HttpError::kContentLength);
  ExpectHttpError(Request("Host: a\r\nContent-Length: 5, 5\r\n"), HttpError::kContentLength);
  ExpectHttpError(Request("Host: a\r\nContent-Length: +5\r\n"), HttpError::kContentLength);
  ExpectHttpError(Request("Host: a\r\nContent-Length: \r\n"), HttpError::kContentLength);
  ExpectHttpError(Request("Host: a\r\nContent-Length: 1234567890123456789\r\n"), HttpError::kContentLength);
  ExpectHttpError(Request("Host: a\r\nTransfer-Encoding: gzip, chunked\r\n"), HttpError::kTransferEncoding);
  ExpectHttpError(Request("Host: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
                  HttpError::kTransferEncoding);
  ExpectHttpError(Request("Host: a\r\nTransfer-Encoding: chunked\r\n", "POST / HTTP/1.0"),
                  HttpError::kTransferEncoding);
}

// Red-team finding 3: a body where RFC 9110 gives it no meaning may be left
// unread by a server, which then reads it as the next request.
TEST(HttpHead, RejectsABodyOnHeadTraceAndConnect) {
  ExpectHttpError("HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n", HttpError::kBodyNotAllowed);
  ExpectHttpError("TRACE / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", HttpError::kBodyNotAllowed);
  ExpectHttpError("CONNECT a:443 HTTP/1.1\r\nContent-Length: 5\r\n\r\n", HttpError::kConnectBody);
  EXPECT_EQ(Head("HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").status, HttpSniffStatus::kRequest);
  // GET, DELETE, OPTIONS keep their bodies (Elasticsearch searches with GET):
  // what such a body holds is checked by the relay (LenientRequestLine).
  EXPECT_EQ(Head("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n").status, HttpSniffStatus::kRequest);
  EXPECT_EQ(HttpErrorName(HttpError::kBodyNotAllowed), "body_not_allowed");
}

TEST(HttpHead, RejectsHeadsThatNeverEnd) {
  std::string s = "GET / HTTP/1.1\r\nHost: a.test\r\n";
  while (s.size() < kMaxHttpHeadSize) s += "X-Filler: aaaaaaaaaaaaaaaa\r\n";
  ExpectHttpError(s, HttpError::kTooLarge);
  ExpectHttpError("GET /" + std::string(kMaxHttpHeadSize, 'a'), HttpError::kTooLarge);
  EXPECT_EQ(Head(s.substr(0, kMaxHttpHeadSize - 1)).status, HttpSniffStatus::kNeedMore);
}

TEST(HttpErrorName, IsStable) {
  EXPECT_EQ(HttpErrorName(HttpError::kDuplicateHost), "duplicate_host");
  EXPECT_EQ(HttpErrorName(HttpError::kObsFold), "obs_fold");
}

// ---------------------------------------------------------------------------
// CONNECT

TEST(Connect, CurlCapture) {
  std::string s = std::string(kCurlConnect);
  s.insert(s.end(), kCurlHello.begin(), kCurlHello.end());  // an eager client's ClientHello
  ConnectRequest c = ParseConnectRequest(s);
  ASSERT_EQ(c.status, ConnectStatus::kConnect) << HttpErrorName(c.error);
  EXPECT_EQ(c.host, "allowed.test");
  EXPECT_EQ(c.port, 443);
  EXPECT_FALSE(c.ipv6);
  EXPECT_EQ(c.head_length, kCurlConnect.size());
  std::span<const uint8_t> tunnel(reinterpret_cast<const uint8_t*>(s.data()) + c.head_length, s.size() - c.head_length);
  EXPECT_EQ(ParseClientHelloSni(tunnel).host, "allowed.test");

  HttpRequestHead h = Head(kCurlConnect);
  EXPECT_EQ(h.status, HttpSniffStatus::kRequest);
  EXPECT_EQ(h.target_host, "allowed.test");
}

TEST(Connect, CurlCaptureIpv6) {
  ConnectRequest c = ParseConnectRequest(kCurlConnectV6);
  ASSERT_EQ(c.status, ConnectStatus::kConnect) << HttpErrorName(c.error);
  EXPECT_EQ(c.host, "2001:db8::1");
  EXPECT_TRUE(c.ipv6);
  EXPECT_EQ(c.port, 8443);
}

TEST(Connect, SpanOverloadMatches) {
  std::vector<uint8_t> b(kCurlConnect.begin(), kCurlConnect.end());
  EXPECT_EQ(ParseConnectRequest(b).host, "allowed.test");
  EXPECT_EQ(ParseHttpRequestHead(b).target_host, "allowed.test");
}

TEST(Connect, HostHeaderIsOptionalButMustAgree) {
  ConnectRequest no_host = ParseConnectRequest("CONNECT a.test:443 HTTP/1.0\r\n\r\n");
  EXPECT_EQ(no_host.status, ConnectStatus::kConnect);
  ConnectRequest host_no_port = ParseConnectRequest("CONNECT a.test:443 HTTP/1.1\r\nHost: A.test\r\n\r\n");
  EXPECT_EQ(host_no_port.status, ConnectStatus::kConnect);
  ConnectRequest other = ParseConnectRequest("CONNECT evil.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n");
  EXPECT_EQ(other.status, ConnectStatus::kMalformed);
  EXPECT_EQ(other.error, HttpError::kHostMismatch);
  ConnectRequest port = ParseConnectRequest("CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:22\r\n\r\n");
  EXPECT_EQ(port.error, HttpError::kHostMismatch);
  // The plain parser reports the disagreement rather than choosing.
  HttpRequestHead h = Head("CONNECT evil.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n");
  EXPECT_EQ(h.status, HttpSniffStatus::kAmbiguousHost);
}

TEST(Connect, Rejections) {
  auto error = [](std::string_view s) { return ParseConnectRequest(s).error; };
  EXPECT_EQ(error("CONNECT a.test HTTP/1.1\r\n\r\n"), HttpError::kTarget);  // no port
  EXPECT_EQ(error("CONNECT /a HTTP/1.1\r\nHost: a\r\n\r\n"), HttpError::kTarget);
  EXPECT_EQ(error("CONNECT http://a.test:443/ HTTP/1.1\r\n\r\n"), HttpError::kTarget);
  EXPECT_EQ(error("CONNECT 2001:db8::1:443 HTTP/1.1\r\n\r\n"), HttpError::kTarget);  // unbracketed
  EXPECT_EQ(error("CONNECT a.test:0 HTTP/1.1\r\n\r\n"), HttpError::kTarget);
  EXPECT_EQ(error("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), HttpError::kNotConnect);
  EXPECT_EQ(error("GET / HTTP/1.1\r\n"), HttpError::kNotConnect);  // known before the head ends
  EXPECT_EQ(error("GET http://evil.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n"), HttpError::kNotConnect);
  EXPECT_EQ(error("connect a.test:443 HTTP/1.1\r\n\r\n"), HttpError::kNotConnect);  // methods are case-sensitive
  EXPECT_EQ(error(std::string_view("\x16\x03\x01\x02\x00\x01\xfc", 7)), HttpError::kNotHttp);
  EXPECT_EQ(error("\x16\x03\x01"), HttpError::kRequestLine);
  EXPECT_EQ(error("CONNECT a.test:443 HTTP/1.1\r\nContent-Length: 5\r\n\r\n"), HttpError::kConnectBody);
  EXPECT_EQ(error("CONNECT a.test:443 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), HttpError::kConnectBody);
  EXPECT_EQ(ParseConnectRequest("CONNECT a.test:443 HTTP/1.1\r\nContent-Length: 0\r\n\r\n").status,
            ConnectStatus::kConnect);
  EXPECT_EQ(error("CONNECT a.test:443 HTTP/1.1\nHost: a.test\n\n"), HttpError::kBareLf);
}

// ---------------------------------------------------------------- request bodies (issue 8, item 6)

std::span<const uint8_t> AsBytes(std::string_view s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

TEST(HttpBodyReader, FixedLengthEndsWhereContentLengthSays) {
  HttpRequestHead h = ParseHttpRequestHead("POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\n");
  ASSERT_EQ(h.status, HttpSniffStatus::kRequest);
  HttpBodyReader r(FramingOf(h));
  EXPECT_EQ(r.FixedRemaining(), 5u);
  HttpBodyReader::Step s = r.Feed(AsBytes("abc"));
  EXPECT_EQ(s.consumed, 3u);
  EXPECT_FALSE(s.done);
  s = r.Feed(AsBytes("deGET / HTTP/1.1\r\n"));
  EXPECT_EQ(s.consumed, 2u);
  EXPECT_TRUE(s.done);
  HttpBodyReader none(FramingOf(ParseHttpRequestHead("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")));
  EXPECT_TRUE(none.done());
  EXPECT_EQ(none.Feed(AsBytes("GET")).consumed, 0u);
}

TEST(HttpBodyReader, ChunkedBodyRunsToTheTrailerEnd) {
  HttpBodyFraming f{0, 0, true, false};
  std::string body = "4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: y\r\n\r\n";
  for (size_t split = 0; split <= body.size(); ++split) {
    HttpBodyReader r(f);
    HttpBodyReader::Step a = r.Feed(AsBytes(std::string_view(body).substr(0, split)));
    ASSERT_FALSE(a.malformed) << split;
    EXPECT_EQ(a.consumed, split);
    HttpBodyReader::Step b = r.Feed(AsBytes(std::string(body.substr(split)) + "GET /"));
    ASSERT_FALSE(b.malformed) << split;
    EXPECT_TRUE(b.done) << split;
    EXPECT_EQ(a.consumed + b.consumed, body.size()) << split;
  }
}

TEST(HttpBodyReader, MalformedChunkingIsRefused) {
  HttpBodyFraming f{0, 0, true, false};
  for (const char* bad : {"x\r\n", "4\nWiki\r\n0\r\n\r\n", "4\r\nWikiX\r\n", "0\r\n Folded: x\r\n\r\n",
                          "1234567890abcdef0\r\n", "0\r\n\r\r", ";x\r\n", "4\r\nWiki\r\n0\r\nA: \x01\r\n\r\n"}) {
    HttpBodyReader r(f);
    EXPECT_TRUE(r.Feed(AsBytes(bad)).malformed) << bad;
  }
}

// ---------------------------------------------------------------- server answers (red-team finding 2)

HttpBodyFraming Req(std::string_view head) {
  HttpRequestHead h = ParseHttpRequestHead(head);
  EXPECT_EQ(h.status, HttpSniffStatus::kRequest) << head;
  return FramingOf(h);
}

// A reader that expected `request` and saw `answers`.
HttpResponseReader Answered(std::string_view request, std::string_view answers) {
  HttpResponseReader r;
  r.Expect(Req(request));
  r.Feed(AsBytes(answers));
  return r;
}

constexpr std::string_view kUpgradeRequest =
    "GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n";

TEST(HttpResponseReader, UpgradeOnlyWithConnectionUpgrade) {
  EXPECT_TRUE(Req(kUpgradeRequest).upgrade);
  EXPECT_FALSE(Req("GET / HTTP/1.1\r\nHost: a.test\r\nUpgrade: x\r\n\r\n").upgrade);
  EXPECT_FALSE(Req("GET / HTTP/1.1\r\nHost: a.test\r\nConnection: upgrade\r\n\r\n").upgrade);
  EXPECT_FALSE(Req("GET / HTTP/1.1\r\nHost: a.test\r\nUpgrade: x\r\nConnection: upgraded\r\n\r\n").upgrade);
  EXPECT_TRUE(Req("HEAD / HTTP/1.1\r\nHost: a.test\r\n\r\n").head_method);
  EXPECT_TRUE(Req("CONNECT a.test:443 HTTP/1.1\r\n\r\n").connect);
}

TEST(HttpResponseReader, SwitchesOnlyOn101ToAnUpgrade) {
  HttpResponseReader r;
  r.Expect(Req(kUpgradeRequest));
  EXPECT_TRUE(r.AwaitingSwitch());
  r.Feed(AsBytes("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching"));
  EXPECT_TRUE(r.AwaitingSwitch());
  r.Feed(AsBytes(" Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello"));
  EXPECT_FALSE(r.AwaitingSwitch());
  EXPECT_EQ(r.state(), HttpResponseReader::State::kSwitched);
  // The server that ignores Upgrade: a 200 with a body, then the next answer.
  HttpResponseReader ignore;
  ignore.Expect(Req(kUpgradeRequest));
  ignore.Feed(AsBytes("HTTP/1.1 200 OK\r\nContent-Length: 36\r\n\r\n"));
  EXPECT_FALSE(ignore.AwaitingSwitch());
  EXPECT_EQ(ignore.state(), HttpResponseReader::State::kBody);
  EXPECT_EQ(ignore.Opaque(), 36u);
  ignore.Skip(36);  // the body passes unread: here it pretends to be a 101
  EXPECT_EQ(ignore.state(), HttpResponseReader::State::kHead);
  ignore.Expect(Req(kUpgradeRequest));
  ignore.Feed(
      AsBytes("HTTP/1.1 426 Upgrade Required\r\nTransfer-Encoding: chunked\r\n\r\n"
              "1a\r\nHTTP/1.1 101 Switching\r\n\r\n\r\n0\r\n\r\n"));
  EXPECT_EQ(ignore.state(), HttpResponseReader::State::kHead);
  EXPECT_FALSE(ignore.AwaitingSwitch());
  EXPECT_EQ(ignore.last_status(), 426);
  // CONNECT answered 2xx is a tunnel; answered 407, it is not.
  constexpr std::string_view kConnect = "CONNECT a.test:443 HTTP/1.1\r\n\r\n";
  EXPECT_EQ(Answered(kConnect, "HTTP/1.1 200 Connection established\r\n\r\n").state(),
            HttpResponseReader::State::kSwitched);
  HttpResponseReader refused =
      Answered(kConnect, "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(refused.state(), HttpResponseReader::State::kHead);
  EXPECT_FALSE(refused.AwaitingSwitch());
}

TEST(HttpResponseReader, FramesAnswersByTheirRequests) {
  HttpResponseReader r;
  r.Expect(Req("HEAD / HTTP/1.1\r\nHost: a.test\r\n\r\n"));
  r.Expect(Req("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"));
  r.Expect(Req("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"));
  r.Expect(Req(kUpgradeRequest));
  // HEAD: no body whatever Content-Length says; 304: none either; then a
  // chunked body holding a fake status line; then the 101.
  r.Feed(
      AsBytes("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
              "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"
              "HTTP/1.0 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nHTTP/\r\n0\r\nX: y\r\n\r\n"));
  EXPECT_TRUE(r.AwaitingSwitch());
  r.Feed(AsBytes("HTTP/1.1 101 Switching Protocols\r\n\r\n"));
  EXPECT_EQ(r.state(), HttpResponseReader::State::kSwitched);
  // A body to the connection's end: no answer can follow.
  HttpResponseReader close;
  close.Expect(Req(kUpgradeRequest));
  close.Expect(Req(kUpgradeRequest));
  close.Feed(AsBytes("HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n\r\n"));
  EXPECT_EQ(close.state(), HttpResponseReader::State::kToClose);
  EXPECT_FALSE(close.AwaitingSwitch());
}

TEST(HttpResponseReader, AnythingOddLosesTheAnswersForGood) {
  for (std::string_view bad : {"HTTP/1.1 101 Switching Protocols\n\n", "HTTP/1.1 200 OK\r\nX: y\rZ\r\n\r\n",
                               "HTTP/2 101\r\n\r\n", "HTTP/1.1 1010 x\r\n\r\n", "HTTP/1.1 200 OK\r\n Folded: x\r\n\r\n",
                               "HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n",
                               "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
                               "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                               "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "hello\r\n"}) {
    HttpResponseReader r = Answered(kUpgradeRequest, bad);
    EXPECT_EQ(r.state(), HttpResponseReader::State::kLost) << bad;
    EXPECT_FALSE(r.AwaitingSwitch()) << bad;
    r.Feed(AsBytes("HTTP/1.1 101 Switching Protocols\r\n\r\n"));
    EXPECT_NE(r.state(), HttpResponseReader::State::kSwitched) << bad;
  }
  // A 101 to a request that did not ask for it; bytes before any request.
  EXPECT_EQ(Answered("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", "HTTP/1.1 101 Switching Protocols\r\n\r\n").state(),
            HttpResponseReader::State::kLost);
  HttpResponseReader first;
  first.Feed(AsBytes("HTTP/1.1 101 Switching Protocols\r\n\r\n"));
  first.Expect(Req(kUpgradeRequest));
  EXPECT_EQ(first.state(), HttpResponseReader::State::kLost);
  EXPECT_FALSE(first.AwaitingSwitch());
  // A head that never ends.
  EXPECT_EQ(Answered(kUpgradeRequest, "HTTP/1.1 200 OK\r\nX: " + std::string(kMaxHttpHeadSize, 'a')).state(),
            HttpResponseReader::State::kLost);
}

// ---------------------------------------------------------------- lenient request lines (issue 8, items 9, 6)

// The red-team review of items 6 and 9: a request line a lenient server reads
// but the strict parser does not must never count as "not HTTP".
TEST(LenientRequestLine, WhatSomeServerReadsAsARequestLine) {
  for (std::string_view s :
       {std::string_view("GET\t/secret\tHTTP/1.1\r\nHost:denied.test\r\n\r\n"),  // the review's bytes
        std::string_view("GET\t/ HTTP/1.1"), std::string_view("GET\x1c/\x1cHTTP/1.1"), std::string_view("GET\x85/"),
        std::string_view("GET\xa0/"), std::string_view("GET\v/"), std::string_view("gEt\t/"), std::string_view("get /"),
        std::string_view("PRI / HTTP/1.1\r\n"), std::string_view("PURGE\t/x\tHTTP/1.1\r\n"),
        std::string_view("FOO / http/1.1\r\n"), std::string_view("X /secret HTTP/1.1"), std::string_view("GET\0/", 5),
        std::string_view(" GET / HTTP/1.1\r\n"), std::string_view("\r\n\r\nGET /"), std::string_view("\x01\tget\x1f/"),
        std::string_view("GET\r/")}) {
    EXPECT_EQ(LenientRequestLine(s), HttpSniffStatus::kRequest) << s;
  }
  size_t skipped = 0;
  EXPECT_EQ(LenientRequestLine(" \tGET /", LenientReader::kFirstBytes, &skipped), HttpSniffStatus::kRequest);
  EXPECT_EQ(skipped, 2u);
  // Undecided while the token or an unknown method's line goes on: a client
  // cannot send "ping" first and " / HTTP/1.1 ..." later to be judged on "ping".
  for (std::string_view s : {"", " ", "\r\n", "G", "GE", "GET\r", "ping", "FOO / x", "PRI * HTTP/2.0\r\n",
                             "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJ"}) {
    EXPECT_EQ(LenientRequestLine(s), HttpSniffStatus::kNeedMore) << s;
  }
  // Not HTTP to any server, whatever follows.
  for (std::string_view s : {std::string_view("\x16\x03\x01\x02\x00\x01\xfc", 7),
                             std::string_view("\0\0\0\x08\x04\xd2\x16\x2f", 8),   // PostgreSQL SSLRequest
                             std::string_view("\0\0\0\x4f\0\x03\0\0user\0", 13),  // PostgreSQL startup
                             std::string_view("SSH-2.0-OpenSSH_9.2\r\n"), std::string_view("*1\r\n$4\r\nPING\r\n"),
                             std::string_view("ping\n"), std::string_view("FOO bar\r\n"),
                             std::string_view("FOO\x1c/\x1cHTTP/1.1"),  // no server dispatches FOO without a space
                             std::string_view("{\"a\": 1}"), std::string_view("G(T / HTTP/1.1"),
                             std::string_view("CONNECT\naccept-version:1.2\n"), std::string_view("GET\r\n"),
                             std::string_view("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")}) {
    EXPECT_EQ(LenientRequestLine(s), HttpSniffStatus::kNotHttp) << s;
  }
  // 16 KiB of skipped bytes fail closed; a token that long is no method.
  EXPECT_EQ(LenientRequestLine(std::string(kMaxHttpHeadSize, '\n')), HttpSniffStatus::kRequest);
  EXPECT_EQ(LenientRequestLine(std::string(kMaxHttpHeadSize, 'A') + " / HTTP/1.1"), HttpSniffStatus::kNotHttp);
}

TEST(LenientRequestLine, BodiesSkipOnlyLineWhitespaceAndTakeUpperCaseMethods) {
  EXPECT_EQ(LenientRequestLine("GET /smuggled HTTP/1.1\r\nHost: denied.test\r\n\r\n", LenientReader::kBody),
            HttpSniffStatus::kRequest);
  EXPECT_EQ(LenientRequestLine("\r\nGET\t/", LenientReader::kBody), HttpSniffStatus::kRequest);
  EXPECT_EQ(LenientRequestLine("Move /x HTTP/1.1", LenientReader::kBody), HttpSniffStatus::kRequest);
  // Text and data a body commonly holds.
  for (std::string_view s : {std::string_view("Get well soon\n"), std::string_view("{\"q\": \"GET / HTTP/1.1\"}"),
                             std::string_view("a=1&b=GET"), std::string_view("--boundary\r\n"),
                             std::string_view("\0\0GET / HTTP/1.1", 16), std::string_view("5\r\nhello\r\n0\r\n\r\n")}) {
    EXPECT_EQ(LenientRequestLine(s, LenientReader::kBody), HttpSniffStatus::kNotHttp) << s;
  }
  // A chunk extension after BWS: "1 / HTTP/1.1" is a request line to Go.
  EXPECT_EQ(LenientRequestLine("11 / HTTP/1.1\r\nHost: denied.test\r\n0\r\n\r\n", LenientReader::kBody),
            HttpSniffStatus::kRequest);
}

// Monotone: an answer given on a prefix is the answer on every longer input.
TEST(LenientRequestLine, APrefixNeverDecidesOtherwise) {
  for (std::string_view s :
       {std::string_view("GET\t/secret\tHTTP/1.1\r\nHost:denied.test\r\n\r\n"), std::string_view("ping / HTTP/1.1\r\n"),
        std::string_view("PRI * HTTP/2.0\r\n\r\nSX"), std::string_view("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        std::string_view(" \r\n FOO\t/x HTTP/1.1"), std::string_view("\0\0\0\x4f\0\x03\0\0user\0", 13),
        std::string_view("FOO bar\r\nHTTP/1.1")}) {
    for (LenientReader reader : {LenientReader::kFirstBytes, LenientReader::kBody}) {
      HttpSniffStatus whole = LenientRequestLine(s, reader);
      for (size_t n = 0; n <= s.size(); ++n) {
        HttpSniffStatus part = LenientRequestLine(s.substr(0, n), reader);
        if (part != HttpSniffStatus::kNeedMore) {
          EXPECT_EQ(part, whole) << s << " at " << n;
        }
      }
    }
  }
}

}  // namespace

// What the explicit proxy sends on (issue 9, item 1): origin-form, no
// hop-by-hop fields, the client's Host kept or the target's added.
TEST(OriginForm, RewritesAbsoluteFormRequests) {
  auto forward = [](std::string_view head) { return OriginFormHead(head, ParseHttpRequestHead(head)); };
  EXPECT_EQ(forward("GET http://Allowed.Test:8765/v1/models?x=1 HTTP/1.1\r\nHost: allowed.test:8765\r\n"
                    "User-Agent: curl/7.88.1\r\nProxy-Connection: Keep-Alive\r\n\r\n"),
            "GET /v1/models?x=1 HTTP/1.1\r\nHost: allowed.test:8765\r\nUser-Agent: curl/7.88.1\r\n\r\n");
  // The fields Connection names go, with Keep-Alive, TE and the proxy's own;
  // "close" stays.
  EXPECT_EQ(forward("POST http://a.test/p HTTP/1.1\r\nHost: a.test\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\n"
                    "Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\n"
                    "Content-Length: 2\r\n\r\n"),
            "POST /p HTTP/1.1\r\nHost: a.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\n");
  // No Host (HTTP/1.0): the target's authority; no path: "/"; a query only.
  EXPECT_EQ(forward("GET http://[2001:db8::1]:8080 HTTP/1.0\r\n\r\n"),
            "GET / HTTP/1.0\r\nHost: [2001:db8::1]:8080\r\n\r\n");
  EXPECT_EQ(forward("GET http://a.test?q HTTP/1.1\r\nHost: a.test\r\n\r\n"), "GET /?q HTTP/1.1\r\nHost: a.test\r\n\r\n");
  EXPECT_EQ(forward("OPTIONS http://a.test HTTP/1.1\r\nHost: a.test\r\n\r\n"), "OPTIONS * HTTP/1.1\r\nHost: a.test\r\n\r\n");
  // An upgrade keeps Upgrade and Connection: upgrade.
  EXPECT_EQ(forward("GET http://a.test/ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
            "GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
  // Origin-form and CONNECT pass as they came.
  const std::string origin = "GET /x HTTP/1.1\r\nHost: a.test\r\nKeep-Alive: 5\r\n\r\n";
  EXPECT_EQ(forward(origin), origin);
  const std::string connect = "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n";
  EXPECT_EQ(forward(connect), connect);
}

}  // namespace ward::net
