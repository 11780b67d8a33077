// The supervisor's side of the sandbox's seccomp user notification
// (enforce/seccomp.h, BuildNetworkFilter): every connect() the sandbox
// makes, in every network mode, and in egress mode its bind() and listen()
// calls, wait here for an answer. A unix socket's connect() is decided by the
// unix gate (net/unix_gate.h); a netlink socket's is made as asked.
//
// Direct sockets (egress mode). Why: a connection through the proxy costs a
// second TCP stack traversal and a relay for every byte; on two cores a
// download through any relay reaches about 0.6 of direct speed. When the
// decision about a connection cannot depend on anything the program sends
// later (its address is allowed by an address rule and no rule judges names
// there, or it is the host's loopback through host.ward.internal), ward
// connects a TCP socket from its own namespace and puts it in the program's
// descriptor in place of the program's socket (SECCOMP_IOCTL_NOTIF_ADDFD):
// the bytes then flow between the program and the server with nothing in
// between. Every other connect() of an IPv4/IPv6 socket is made by ward on
// the program's own socket, in the sandbox's namespace, where the redirect
// takes TCP to the proxy as before (and, with no egress, loopback or the
// host's network is all there is).
//
// Server first (egress mode). A TCP connection the proxy judges by its
// first bytes is connected to its server before the program's connect()
// returns, so that connect() reports what the server did, as outside:
// ECONNREFUSED, EHOSTUNREACH, ETIMEDOUT (a dual-stack client then falls back
// to the other family; a port scan sees closed ports closed). Only then is
// the program's socket connected to the proxy, which relays it over the
// connection already made (net/upstream_pool.h) once the first bytes allow
// it. Which servers: only those RefuseAtConnect did not refuse, i.e. where
// the address, or a name ward's DNS bound to it, could be allowed; a SYN
// never goes where no first bytes could let the connection go. A blocking
// connect() waits for the server up to the proxy's connect timeout (and its
// SO_SNDTIMEO); a non-blocking one at most kServerFirstWaitMs, after which it
// goes on as before (the proxy waits for the rest, and a failure then resets
// the connection), so that an event loop is held up for one round trip at
// most that long.
//
// Why it is safe (the trust boundary is the workload, which may race any of
// this from other threads, swapping descriptors and rewriting memory):
//  - ward acts on the socket object it inspected (pidfd_getfd), with its own
//    copy of the address (read once), never on what the workload may change
//    after the check. The kernel never makes a connect() on the workload's
//    behalf.
//  - bind() of unix and netlink sockets is made by the kernel
//    (SECCOMP_USER_NOTIF_FLAG_CONTINUE), in the sandbox's namespace and root
//    and under landlock. Another thread may swap a direct socket into the
//    descriptor meanwhile; landlock then refuses the TCP bind
//    (LANDLOCK_ACCESS_NET_BIND_TCP with no port allowed, landlock.cc).
//    A direct socket whose connection was dissolved (AF_UNSPEC through
//    means other than connect()) can do nothing outside: connect(), bind()
//    and listen() on a socket outside the sandbox's namespace (told apart by
//    SO_NETNS_COOKIE) are refused here, and the filter refuses every other
//    way to make it talk: MSG_FASTOPEN sends, TCP_ULP (which would turn it
//    into SMC or TLS), and AF_SMC, IPPROTO_SMC and non-namespaced families
//    (AF_VSOCK) altogether.
//  - A direct socket's namespace is the host's: the read-only interface
//    ioctls are answered here from the sandbox's namespace, the filter
//    refuses the others and the options that pick a host interface or
//    other hops (SO_BINDTODEVICE, IPV6_RTHDR, ...); its local address
//    (getsockname) is the host's.
//  - This thread never blocks on the workload: handshakes are waited for on
//    workers (at most kMaxWorkers), which Stop() ends.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "base/unique_fd.h"
#include "net/egress_proxy.h"
#include "net/egress_rules.h"
#include "ward/sandbox.h"

namespace ward::net {

class UnixGate;

// How to connect one connection directly, from the supervisor's namespace.
struct DirectPlan {
  // Tried in order, the first that accepts wins; for an IPv6 socket an IPv4
  // target is connected as its v4-mapped address, for an IPv4 socket IPv6
  // targets are skipped.
  std::vector<IpAddress> targets;
  uint16_t port = 0;
  // If no target accepts: let the proxy handle the connection (it may try
  // what a socket of this family cannot) instead of failing the connect().
  bool proxy_on_failure = false;
  EgressEvent event;  // the allow decision; recorded when the connect() ends
};

class ConnectNotifyHooks {
 public:
  // A TCP connect() from the sandbox to `dst`:`port`: a plan to connect it
  // directly, or nullopt to connect the program's socket in the sandbox's
  // namespace (the redirect and the proxy judge it).
  virtual std::optional<DirectPlan> PlanDirect(const IpAddress& dst, uint16_t port) = 0;
  // A TCP connect() from the sandbox to `dst`:`port` that nothing the
  // program could send would make allowed: the deny decision, so that the
  // connect() itself is refused (ECONNREFUSED), as a closed port outside
  // would be. nullopt: decided as usual.
  virtual std::optional<EgressEvent> RefuseAtConnect(const IpAddress& dst, uint16_t port) = 0;
  // A TCP connect() from the sandbox to `dst`:`port` that goes to the proxy
  // (neither direct nor refused): the decision as it stands before the
  // first bytes when ward is to connect to the server before the connect()
  // returns (the outcome, refused, unreachable or connected, is then the
  // connect()'s own); nullopt for the connections ward serves itself (its
  // DNS, the host's loopback, the HTTP proxy). The event is recorded, with
  // the error, only if the server cannot be reached.
  virtual std::optional<EgressEvent> ConnectServerFirst(const IpAddress& dst, uint16_t port) = 0;
  // The connection ward made to `dst`:`port` for such a connect() (connected,
  // or its handshake still under way), for the proxy to relay when the
  // program's connection reaches it (net/upstream_pool.h).
  virtual void LeaveServerConnection(const IpAddress& dst, uint16_t port, UniqueFd server) = 0;
  virtual void RecordEvent(EgressEvent e) = 0;
  // Runs `fn` on a thread Stop() joins; false if it could not start.
  virtual bool SpawnWorker(std::function<void()> fn) = 0;

 protected:
  ~ConnectNotifyHooks() = default;
};

// The sandbox's network namespace as the server sees it: its
// SO_NETNS_COOKIE (NetnsCookie of a socket in it; the host's when the
// sandbox shares the host's network), and sockets of ward's in it (-1:
// none) to ask interface questions of (egress mode).
struct SandboxNetwork {
  uint64_t netns = 0;
  int inet4 = -1, inet6 = -1;
};

// Serves the notifications of `notify_fd` until `stop_fd` is readable or no
// process uses the filter any more. Outside egress mode, hooks.PlanDirect
// answers nullopt. `hooks` and `gate` outlive every worker started through
// hooks.SpawnWorker. An execve()/execveat() (the filter's `notify_exec`)
// is read (net/exec_notice.h), let through, then given to
// `observers.on_exec`; a file system call (`notify_files`) likewise
// (net/file_notice.h) to `observers.on_file`. Both on this thread, after the
// answer; without an observer the call is let through unread.
void ServeConnectNotifications(int notify_fd, int stop_fd, const SandboxNetwork& sandbox, int connect_timeout_ms,
                               ConnectNotifyHooks& hooks, UnixGate& gate, const CallObservers& observers = {});

// SO_NETNS_COOKIE of a socket's network namespace; 0 if it cannot be read.
uint64_t NetnsCookie(int socket_fd);

}  // namespace ward::net
