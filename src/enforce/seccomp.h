// The seccomp filter: system calls a confined program never needs.
#pragma once

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include <cstdint>

#include <string>
#include <vector>

#include "ward/result.h"

namespace ward {

// Loads `prog` as a user-notification filter on the calling thread and
// returns its listener (-1 and errno on failure). Async-signal-safe.
//
// Once ward has received a notification, the caller's wait is killable only
// (SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, Linux 5.19): a non-fatal signal is
// delivered after ward answers. Why: ward makes these calls on the program's
// behalf (a connect() waits while ward connects to the server first,
// net/connect_notify.h); a signal that ended the call halfway would leave
// the program a socket in a state no kernel gives (unconnected, and
// reported writable with no error to a program that retries, as CPython
// does after EINTR). The cost: a handled signal waits for the answer, at
// most the proxy's connect timeout. Older kernels: without the flag.
inline int InstallNotifyFilter(const sock_fprog* prog) {
  constexpr unsigned long kWaitKillableRecv = 1UL << 5;  // SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
  long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER | kWaitKillableRecv, prog);
  if (fd < 0 && errno == EINVAL) fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, prog);
  return static_cast<int>(fd);
}

// One entry of the deny list, with the reason it is there (also printed by
// `ward doctor --seccomp` and documented in docs/security.md).
struct SeccompRule {
  const char* syscall;
  const char* reason;
};
const std::vector<SeccompRule>& SeccompDenyList();

// Builds the BPF program with libseccomp (before clone). Denied calls fail
// with EPERM (clone3 with ENOSYS so libc falls back to clone(), whose flags
// the filter can inspect); calls from any other architecture or ABI (i386
// `int 0x80`, x32) kill the process.
Result<std::vector<sock_filter>> BuildSeccompFilter();

// The program BuildSeccompFilter produced at build time (what `ward run`
// installs).
const std::vector<sock_filter>& EmbeddedSeccompFilter();

// The second, hand-written filter for personality(2) (see seccomp.cc).
std::vector<sock_filter> BuildPersonalityFilter();

// The network filter, loaded with a user-notification listener the
// supervisor serves (net/connect_notify.h), in every mode. Every kind:
// connect() waits for the supervisor (the unix gate, net/unix_gate.h,
// decides unix sockets), and unix datagram sockets (socket() and
// socketpair() of AF_UNIX, SOCK_DGRAM) fail with EACCES. kIsolated and
// kEgress (a sandbox with its own network namespace): socket() only for
// AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK (others fail with
// EAFNOSUPPORT: AF_VSOCK is not namespaced, AF_SMC wraps TCP), never with
// IPPROTO_SMC, and netlink only NETLINK_ROUTE and NETLINK_SOCK_DIAG.
// kEgress adds: bind() and listen() wait for the supervisor;
// sendto/sendmsg/sendmmsg with MSG_FASTOPEN (a connect hidden in a send)
// fail with EOPNOTSUPP; setsockopt of TCP_ULP, IP_OPTIONS, IPV6_RTHDR (and
// IPV6_2292RTHDR, IPV6_2292PKTOPTIONS), SO_BINDTODEVICE, SO_BINDTOIFINDEX,
// IP_UNICAST_IF and IPV6_UNICAST_IF fails with EPERM; the read-only
// interface ioctls (net::kInterfaceQuestions) wait for the supervisor, and
// the other interface, route, ARP and wireless ioctls (0x8910-0x89ff but
// SIOCOUTQNSD, 0x8b00-0x8bff) fail with EPERM. kHost (the host's network):
// only what every kind does. Everything else passes (to the other filters).
enum class NetworkFilter : uint8_t { kIsolated, kEgress, kHost };

std::vector<sock_filter> BuildNetworkFilter(NetworkFilter kind);

}  // namespace ward
