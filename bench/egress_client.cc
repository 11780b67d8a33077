// ward_egress_client: the program ward_egress_bench runs inside the sandbox
// (and, as the baseline, directly). It measures itself, so that what it
// reports excludes starting the sandbox:
//
//   ward_egress_client bulk HOST PORT BYTES
//       one HTTP/1.1 request "GET /bytes/BYTES" to HOST:PORT; reads the
//       response to EOF; reports the body size and the time from connect()
//       to EOF
//   ward_egress_client latency HOST PORT COUNT
//       COUNT connections in sequence, each: connect(), a one-write request
//       "GET /bytes/1", read until the first byte of the answer, then to EOF;
//       reports each connection's connect() time and connect-to-first-byte time
//   ward_egress_client banner HOST PORT COUNT
//       the same for a server that speaks first (as SSH or SMTP do): the
//       client sends nothing, reads the greeting to EOF, closes
//
// HOST is resolved once, before anything is timed, with getaddrinfo (IPv4):
// inside the sandbox a name goes through ward's DNS filter; the baseline
// passes the address. The request carries "Host: HOST:PORT", so inside the
// sandbox ward's proxy sees the name both from its DNS and from the request.
//
// Output: one JSON line on stdout. Errors: one line on stderr naming the
// call, exit status 1. Static and without sanitizers (bench/CMakeLists.txt),
// like the escape probe: it runs in a sandbox that sees only the system
// baseline and its own directory.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

double Ms(int64_t ns) { return static_cast<double>(ns) / 1e6; }

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "ward_egress_client: %s\n", what.c_str());
  std::exit(1);
}

[[noreturn]] void FailErrno(const std::string& what) { Fail(what + ": " + std::strerror(errno)); }

struct Target {
  sockaddr_in addr{};
  std::string text;  // "ADDR:PORT", for messages
  double resolve_ms = 0;
};

Target Resolve(const char* host, const char* port) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int64_t t0 = NowNs();
  int rc = getaddrinfo(host, port, &hints, &res);
  const int64_t t1 = NowNs();
  if (rc != 0) Fail(std::string("getaddrinfo \"") + host + "\": " + (rc == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(rc)));
  Target t;
  std::memcpy(&t.addr, res->ai_addr, sizeof t.addr);
  freeaddrinfo(res);
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &t.addr.sin_addr, buf, sizeof buf);
  t.text = std::string(buf) + ":" + port;
  t.resolve_ms = Ms(t1 - t0);
  return t;
}

int Connect(const Target& t) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) FailErrno("socket");
  if (connect(fd, reinterpret_cast<const sockaddr*>(&t.addr), sizeof t.addr) != 0) FailErrno("connect " + t.text);
  return fd;
}

void SendRequest(int fd, const std::string& req, const Target& t) {
  size_t off = 0;
  while (off < req.size()) {
    ssize_t n = send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) FailErrno("send " + t.text);
    off += static_cast<size_t>(n);
  }
}

std::string Request(const char* host, const char* port, uint64_t bytes) {
  return "GET /bytes/" + std::to_string(bytes) + " HTTP/1.1\r\nHost: " + host + ":" + port +
         "\r\nUser-Agent: ward_egress_client\r\nConnection: close\r\n\r\n";
}

// Reads the response to EOF; returns the body size (bytes after the blank
// line ending the head). `first_byte_ns` gets the time the first byte came.
uint64_t ReadResponse(int fd, const Target& t, int64_t* first_byte_ns) {
  static char buf[1 << 20];
  std::string head;  // until "\r\n\r\n" has been seen
  bool in_body = false;
  uint64_t body = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) FailErrno("read " + t.text);
    if (n == 0) break;
    if (first_byte_ns && *first_byte_ns == 0) *first_byte_ns = NowNs();
    if (in_body) {
      body += static_cast<uint64_t>(n);
      continue;
    }
    size_t keep = head.size();
    head.append(buf, static_cast<size_t>(n));
    size_t end = head.find("\r\n\r\n", keep >= 3 ? keep - 3 : 0);
    if (end == std::string::npos) {
      if (head.size() > 65536) Fail("no end of the response head from " + t.text);
      continue;
    }
    if (head.compare(0, 12, "HTTP/1.1 200") != 0) Fail("unexpected answer from " + t.text + ": " + head.substr(0, head.find("\r\n")));
    in_body = true;
    body = head.size() - (end + 4);
  }
  if (!in_body) Fail("connection to " + t.text + " closed before a complete response head (" + std::to_string(head.size()) + " bytes)");
  return body;
}

uint64_t ParseCount(const char* s, const char* what) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v == 0) Fail(std::string("bad ") + what + " \"" + s + "\"");
  return v;
}

int Bulk(const char* host, const char* port, uint64_t bytes) {
  Target t = Resolve(host, port);
  const std::string req = Request(host, port, bytes);
  const int64_t t0 = NowNs();
  int fd = Connect(t);
  SendRequest(fd, req, t);
  uint64_t got = ReadResponse(fd, t, nullptr);
  const int64_t t1 = NowNs();
  close(fd);
  if (got != bytes) Fail("short body from " + t.text + ": " + std::to_string(got) + " of " + std::to_string(bytes) + " bytes");
  std::printf("{\"mode\":\"bulk\",\"address\":\"%s\",\"resolve_ms\":%.4f,\"bytes\":%llu,\"ms\":%.4f}\n", t.text.c_str(),
              t.resolve_ms, static_cast<unsigned long long>(got), Ms(t1 - t0));
  return 0;
}

// Reads a server's greeting to EOF; returns its size.
uint64_t ReadGreeting(int fd, const Target& t, int64_t* first_byte_ns) {
  char buf[4096];
  uint64_t got = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) FailErrno("read " + t.text);
    if (n == 0) return got;
    if (*first_byte_ns == 0) *first_byte_ns = NowNs();
    got += static_cast<uint64_t>(n);
  }
}

int Latency(const char* mode, const char* host, const char* port, uint64_t count) {
  const bool banner = std::strcmp(mode, "banner") == 0;
  Target t = Resolve(host, port);
  const std::string req = Request(host, port, 1);
  std::vector<double> connect_ms, first_byte_ms;
  for (uint64_t i = 0; i < count; ++i) {
    const int64_t t0 = NowNs();
    int fd = Connect(t);
    const int64_t t1 = NowNs();
    int64_t first = 0;
    if (banner) {
      if (ReadGreeting(fd, t, &first) == 0) Fail("no greeting from " + t.text);
    } else {
      SendRequest(fd, req, t);
      uint64_t got = ReadResponse(fd, t, &first);
      if (got != 1) Fail("unexpected body size from " + t.text + ": " + std::to_string(got) + " bytes");
    }
    close(fd);
    connect_ms.push_back(Ms(t1 - t0));
    first_byte_ms.push_back(Ms(first - t0));
  }
  auto list = [](const std::vector<double>& v) {
    std::string s = "[";
    char b[32];
    for (size_t i = 0; i < v.size(); ++i) {
      std::snprintf(b, sizeof b, "%s%.4f", i ? "," : "", v[i]);
      s += b;
    }
    return s + "]";
  };
  std::printf("{\"mode\":\"%s\",\"address\":\"%s\",\"resolve_ms\":%.4f,\"connect_ms\":%s,\"first_byte_ms\":%s}\n",
              mode, t.text.c_str(), t.resolve_ms, list(connect_ms).c_str(), list(first_byte_ms).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::strcmp(argv[1], "bulk") == 0) return Bulk(argv[2], argv[3], ParseCount(argv[4], "byte count"));
  if (argc == 5 && (std::strcmp(argv[1], "latency") == 0 || std::strcmp(argv[1], "banner") == 0)) {
    return Latency(argv[1], argv[2], argv[3], ParseCount(argv[4], "connection count"));
  }
  std::fprintf(stderr, "usage: ward_egress_client bulk HOST PORT BYTES | latency|banner HOST PORT COUNT\n");
  return 2;
}
