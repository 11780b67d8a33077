// Socket helpers for the egress proxy's threads. Every wait is a poll() that
// also watches a "stop" fd (an eventfd the proxy makes readable in Stop()),
// so no thread can stay blocked once the sandbox is gone. Every socket is
// non-blocking and close-on-exec.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <span>
#include <string>

#include "base/clock.h"
#include "base/unique_fd.h"
#include "net/egress_rules.h"
#include "ward/result.h"

namespace ward::net {

enum class WaitStatus : uint8_t { kReady, kTimeout, kStopped, kError };

// Waits until `fd` reports one of `events` (or an error / hang-up, which the
// caller discovers by trying the operation), `timeout_ms` passes (-1: no
// limit), or `stop_fd` becomes readable.
WaitStatus WaitFor(int fd, short events, int stop_fd, int timeout_ms);

// Remaining milliseconds until `deadline_ms` (MonotonicMs), at least 0.
int RemainingMs(int64_t deadline_ms);

// Closes `fd` with a TCP reset (SO_LINGER {1, 0}): the peer sees
// ECONNRESET at once instead of a clean end of stream.
void ResetAndClose(UniqueFd& fd);

// A socket address for `address`:`port`; an IPv4-mapped address becomes its
// IPv4 address (the kernel would route it as IPv4 anyway, and an AF_INET6
// socket could be v6-only).
socklen_t ToSockaddr(const IpAddress& address, uint16_t port, sockaddr_storage* out);
// The address and port in an AF_INET / AF_INET6 socket address; family 0 if
// it is neither.
IpAddress FromSockaddr(const sockaddr_storage& sa, uint16_t* port);

// A non-blocking TCP connection to `address`:`port`, made from the calling
// thread's network namespace, within `timeout_ms`. The error names the call,
// the destination and the errno ("connect 10.0.0.1:443: ECONNREFUSED ...",
// "connect 10.0.0.1:443: timed out after 10000 ms").
Result<UniqueFd> ConnectTcp(const IpAddress& address, uint16_t port, int timeout_ms, int stop_fd);
// A non-blocking TCP socket of `address`'s family, connecting to
// `address`:`port` from the calling thread's network namespace; `*err` is
// connect()'s outcome (0, EINPROGRESS, or the error; socket()'s errno with
// an invalid descriptor).
UniqueFd StartTcpConnect(const IpAddress& address, uint16_t port, int* err);
// Waits for the handshake of `fd`, a non-blocking TCP socket connecting (or
// connected) to `address`:`port`, and sets TCP_NODELAY, as ConnectTcp does
// for its own.
Result<UniqueFd> FinishConnect(UniqueFd fd, const IpAddress& address, uint16_t port, int timeout_ms, int stop_fd);

// Writes all of `data` to a non-blocking socket, waiting as needed (with
// MSG_NOSIGNAL). False on error, timeout or stop.
bool WriteAll(int fd, std::span<const uint8_t> data, int stop_fd, int timeout_ms);
bool WriteAll(int fd, std::string_view data, int stop_fd, int timeout_ms);

// "1.2.3.4:443", "[2001:db8::1]:443".
std::string HostPort(const IpAddress& address, uint16_t port);

}  // namespace ward::net
