#include "net/socket_io.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include <cerrno>
#include <cstring>

#include "base/errors.h"

namespace ward::net {


int RemainingMs(int64_t deadline_ms) {
  int64_t left = deadline_ms - MonotonicMs();
  if (left < 0) return 0;
  return left > 1'000'000'000 ? 1'000'000'000 : static_cast<int>(left);
}

WaitStatus WaitFor(int fd, short events, int stop_fd, int timeout_ms) {
  int64_t deadline = timeout_ms < 0 ? -1 : MonotonicMs() + timeout_ms;
  for (;;) {
    pollfd pfd[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
    int wait = deadline < 0 ? -1 : RemainingMs(deadline);
    int n = poll(pfd, stop_fd >= 0 ? 2 : 1, wait);
    if (n < 0) {
      if (errno == EINTR) continue;
      return WaitStatus::kError;
    }
    if (stop_fd >= 0 && pfd[1].revents != 0) return WaitStatus::kStopped;
    if (n == 0) return WaitStatus::kTimeout;
    if (pfd[0].revents & POLLNVAL) return WaitStatus::kError;
    if (pfd[0].revents != 0) return WaitStatus::kReady;
  }
}

void ResetAndClose(UniqueFd& fd) {
  if (!fd.valid()) return;
  // linger {on, 0 s}: close() discards unsent data and sends RST.
  linger l{1, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  fd.Reset();
}

socklen_t ToSockaddr(const IpAddress& address, uint16_t port, sockaddr_storage* out) {
  std::memset(out, 0, sizeof(*out));
  IpAddress a = address.Unmapped();
  if (a.is_v4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(out);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    std::memcpy(&sin->sin_addr, a.bytes.data(), 4);
    return sizeof(sockaddr_in);
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(out);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  std::memcpy(&sin6->sin6_addr, a.bytes.data(), 16);
  return sizeof(sockaddr_in6);
}

IpAddress FromSockaddr(const sockaddr_storage& sa, uint16_t* port) {
  IpAddress a;
  if (sa.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&sa);
    a.family = AF_INET;
    std::memcpy(a.bytes.data(), &sin->sin_addr, 4);
    *port = ntohs(sin->sin_port);
  } else if (sa.ss_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&sa);
    a.family = AF_INET6;
    std::memcpy(a.bytes.data(), &sin6->sin6_addr, 16);
    *port = ntohs(sin6->sin6_port);
  } else {
    *port = 0;
  }
  return a;
}

std::string HostPort(const IpAddress& address, uint16_t port) {
  // Appended piece by piece: g++ 12's -Wrestrict misfires on chains of +.
  std::string out;
  if (address.is_v6() && !address.IsV4Mapped()) {
    out += '[';
    out += address.ToString();
    out += ']';
  } else {
    out += address.Unmapped().ToString();
  }
  out += ':';
  out += std::to_string(port);
  return out;
}

UniqueFd StartTcpConnect(const IpAddress& address, uint16_t port, int* err) {
  sockaddr_storage sa;
  socklen_t len = ToSockaddr(address, port, &sa);
  UniqueFd fd(socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP));
  *err = !fd.valid() ? errno : connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), len) == 0 ? 0 : errno;
  return fd;
}

Result<UniqueFd> ConnectTcp(const IpAddress& address, uint16_t port, int timeout_ms, int stop_fd) {
  int err = 0;
  UniqueFd fd = StartTcpConnect(address, port, &err);
  if (!fd.valid()) return SysError("socket", HostPort(address, port), err);
  if (err != 0 && err != EINPROGRESS) return Error::Setup("connect " + HostPort(address, port) + ": " + ErrnoName(err));
  return FinishConnect(std::move(fd), address, port, timeout_ms, stop_fd);
}

Result<UniqueFd> FinishConnect(UniqueFd fd, const IpAddress& address, uint16_t port, int timeout_ms, int stop_fd) {
  std::string what = HostPort(address, port);
  switch (WaitFor(fd.get(), POLLOUT, stop_fd, timeout_ms)) {
    case WaitStatus::kReady:
      break;
    case WaitStatus::kTimeout:
      return Error::Setup("connect " + what + ": timed out after " + std::to_string(timeout_ms) + " ms");
    case WaitStatus::kStopped:
      return Error::Setup("connect " + what + ": the proxy is stopping");
    case WaitStatus::kError:
      return Error::Setup("connect " + what + ": poll: " + ErrnoName(errno));
  }
  int err = 0;
  socklen_t elen = sizeof(err);
  if (getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &elen) != 0) err = errno;
  if (err != 0) return Error::Setup("connect " + what + ": " + ErrnoName(err));
  // The relay forwards what it receives as it receives it: Nagle would only
  // add latency on top of the client's own choice.
  int one = 1;
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

bool WriteAll(int fd, std::span<const uint8_t> data, int stop_fd, int timeout_ms) {
  int64_t deadline = MonotonicMs() + timeout_ms;
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (WaitFor(fd, POLLOUT, stop_fd, RemainingMs(deadline)) != WaitStatus::kReady) return false;
      continue;
    }
    return false;
  }
  return true;
}

bool WriteAll(int fd, std::string_view data, int stop_fd, int timeout_ms) {
  return WriteAll(fd, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()), data.size()), stop_fd,
                  timeout_ms);
}

}  // namespace ward::net
