// The seccomp filter: system calls a confined program never needs.
#pragma once

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>


#include <cstdint>

#include <string>
#include <vector>

#include "ward/result.h"

namespace ward {

// Loads `prog` as a user-notification filter on the calling thread and
// returns its listener (-1 and errno on failure). Async-signal-safe.
//
// The caller's wait stays interruptible by any signal, as the kernel's own
// calls are (SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV was tried and dropped:
// it held a handled signal, Ctrl-C under --pty included, for as long as a
// call waited, and a unix connect() to a full backlog waits for ever). A
// call a signal ends while ward makes it is finished by ward at once
// (net/connect_notify.h, "server first").
inline int InstallNotifyFilter(const sock_fprog* prog) {
  return static_cast<int>(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, prog));
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

// The second, hand-written filter for personality(2) (see seccomp.cc); with
// `refuse_memfd`, memfd_create(2) and memfd_secret(2) fail with ENOSYS too
// (under ward's memory watch, which cannot count their memory).
std::vector<sock_filter> BuildPersonalityFilter(bool refuse_memfd = false);

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
// `notify_exec` (any kind): execve() and execveat() wait for the supervisor
// too, which records what is executed and lets the kernel make the call
// (net/exec_notice.h: a record, never a decision). `notify_files`: so do the
// file system calls that name a path (net/file_notice.h, `ward learn`).
enum class NetworkFilter : uint8_t { kIsolated, kEgress, kHost };

std::vector<sock_filter> BuildNetworkFilter(NetworkFilter kind, bool notify_exec = false, bool notify_files = false);

}  // namespace ward
