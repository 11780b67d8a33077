#include "net/dns_upstream.h"

#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <cerrno>

#include "base/errors.h"
#include "net/socket_io.h"

namespace ward::net {
namespace {

uint16_t RandomId() {
  uint16_t id = 0;
  // getrandom() of 2 bytes from an initialized pool cannot fail short; if
  // it did, a fixed id only weakens spoofing resistance to the source port.
  if (getrandom(&id, sizeof(id), 0) != static_cast<ssize_t>(sizeof(id))) id = 0x5741;
  return id;
}

void SetId(std::vector<uint8_t>& message, uint16_t id) {
  message[0] = static_cast<uint8_t>(id >> 8);
  message[1] = static_cast<uint8_t>(id);
}

// The response if `message` answers `query`, else nullopt.
std::optional<DnsResponse> Matching(std::span<const uint8_t> message, const DnsQuery& query) {
  DnsResult<DnsResponse> r = ParseResponse(message);
  if (!r || !ResponseMatchesQuery(query, *r)) return std::nullopt;
  return std::move(*r);
}

Result<DnsExchange> AskUdp(const UpstreamDns& server, const std::vector<uint8_t>& message, const DnsQuery& query,
                           int timeout_ms, int stop_fd) {
  sockaddr_storage sa;
  socklen_t len = ToSockaddr(server.address, server.port, &sa);
  std::string what = HostPort(server.address, server.port);
  UniqueFd fd(socket(sa.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return SysError("socket", what);
  // Connected: the kernel drops datagrams from any other source.
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), len) != 0) return SysError("connect", what);
  if (send(fd.get(), message.data(), message.size(), MSG_NOSIGNAL) < 0) return SysError("send", what);
  int64_t deadline = MonotonicMs() + timeout_ms;
  std::vector<uint8_t> buf(kDnsMaxMessageSize);
  for (;;) {
    switch (WaitFor(fd.get(), POLLIN, stop_fd, RemainingMs(deadline))) {
      case WaitStatus::kReady:
        break;
      case WaitStatus::kTimeout:
        return Error::Setup(what + ": no answer within " + std::to_string(timeout_ms) + " ms");
      case WaitStatus::kStopped:
        return Error::Setup(what + ": the proxy is stopping");
      case WaitStatus::kError:
        return SysError("poll", what);
    }
    ssize_t n = recv(fd.get(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return SysError("recv", what);  // e.g. ECONNREFUSED: nothing listens there
    }
    std::span<const uint8_t> got(buf.data(), static_cast<size_t>(n));
    if (std::optional<DnsResponse> r = Matching(got, query)) {
      return DnsExchange{std::vector<uint8_t>(got.begin(), got.end()), std::move(*r)};
    }
  }
}

Result<DnsExchange> AskTcp(const UpstreamDns& server, const std::vector<uint8_t>& message, const DnsQuery& query,
                           int timeout_ms, int stop_fd) {
  std::string what = HostPort(server.address, server.port);
  int64_t deadline = MonotonicMs() + timeout_ms;
  Result<UniqueFd> fd = ConnectTcp(server.address, server.port, timeout_ms, stop_fd);
  if (!fd) return fd.error();
  std::optional<std::vector<uint8_t>> framed = FrameDnsTcpMessage(message);
  if (!framed) return Error::Setup(what + ": query too large");
  if (!WriteAll(fd->get(), *framed, stop_fd, RemainingMs(deadline))) return Error::Setup(what + ": send failed");
  std::vector<uint8_t> stream;
  uint8_t buf[4096];
  for (;;) {
    DnsTcpFrame frame = NextDnsTcpMessage(stream);
    if (frame.status == DnsTcpStatus::kMalformed) return Error::Setup(what + ": malformed DNS-over-TCP framing");
    if (frame.status == DnsTcpStatus::kMessage) {
      std::optional<DnsResponse> r = Matching(frame.message, query);
      if (!r) return Error::Setup(what + ": the response does not answer the query");
      return DnsExchange{std::vector<uint8_t>(frame.message.begin(), frame.message.end()), std::move(*r)};
    }
    WaitStatus w = WaitFor(fd->get(), POLLIN, stop_fd, RemainingMs(deadline));
    if (w == WaitStatus::kTimeout)
      return Error::Setup(what + ": no answer within " + std::to_string(timeout_ms) + " ms");
    if (w != WaitStatus::kReady) return Error::Setup(what + ": stopped");
    ssize_t n = recv(fd->get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return SysError("recv", what);
    if (n == 0) return Error::Setup(what + ": closed the connection without an answer");
    stream.insert(stream.end(), buf, buf + n);
  }
}

}  // namespace

Result<DnsExchange> ExchangeDns(std::span<const UpstreamDns> servers, std::span<const uint8_t> query_message,
                                const DnsQuery& query, bool tcp, int timeout_ms, int stop_fd) {
  if (query_message.size() < kDnsHeaderSize) return Error::Setup("DNS query shorter than a header");
  if (servers.empty()) return Error::Setup("no upstream DNS server is configured");
  std::string failures;
  for (const UpstreamDns& server : servers) {
    // A fresh id per server: a late answer from the previous one is ignored.
    DnsQuery ours = query;
    ours.id = RandomId();
    std::vector<uint8_t> message(query_message.begin(), query_message.end());
    SetId(message, ours.id);
    Result<DnsExchange> r =
        tcp ? AskTcp(server, message, ours, timeout_ms, stop_fd) : AskUdp(server, message, ours, timeout_ms, stop_fd);
    if (r) {
      SetId(r->message, query.id);
      r->response.id = query.id;
      return r;
    }
    if (!failures.empty()) failures += "; ";
    failures += r.error().message;
  }
  return Error::Setup(failures);
}

}  // namespace ward::net
