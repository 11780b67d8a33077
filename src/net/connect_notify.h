// Direct sockets: the supervisor's side of the egress mode's seccomp user
// notification (enforce/seccomp.h, BuildConnectNotifyFilter). Every
// connect() and listen() the sandbox makes waits here for an answer.
//
// Why: a connection through the proxy costs a second TCP stack traversal
// and a relay for every byte; on two cores a download through any relay
// reaches about 0.6 of direct speed. When the decision about a connection
// cannot depend on anything the program sends later (its address is allowed
// by an address rule and no rule judges names there, or it is the host's
// loopback through host.ward.internal), ward connects a TCP socket from its
// own namespace and puts it in the program's descriptor in place of the
// program's socket (SECCOMP_IOCTL_NOTIF_ADDFD): the bytes then flow between
// the program and the server with nothing in between. Every other TCP
// connect() is made by ward on the program's own socket, in the sandbox's
// namespace, where the redirect takes it to the proxy as before.
//
// Why it is safe (the trust boundary is the workload, which may race any of
// this from other threads):
//  - ward never lets the kernel connect a TCP socket for the workload (no
//    SECCOMP_USER_NOTIF_FLAG_CONTINUE for TCP), and landlock denies the
//    workload TCP connects of its own (LANDLOCK_ACCESS_NET_CONNECT_TCP,
//    landlock.cc), so a direct socket swapped into a descriptor after ward
//    looked at it still cannot be connected anywhere else.
//  - ward acts on the socket object it inspected (pidfd_getfd), and on its
//    own copy of the address (read once), never on what the workload may
//    change after the check.
//  - A direct socket is handed over only once connected. connect() on one
//    again is refused (EISCONN); listen() on any socket outside the
//    sandbox's namespace is refused (EINVAL); a connect hidden in a send
//    (MSG_FASTOPEN) is refused by the filter itself.
//  - Non-TCP sockets (unix, UDP, ...) are connected by the kernel in the
//    sandbox's own namespace (CONTINUE): what they reach is what the sandbox
//    could reach without ward's help, and the filesystem rules apply to unix
//    socket paths as usual.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "net/egress_proxy.h"
#include "net/egress_rules.h"

namespace ward::net {

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
  virtual void RecordEvent(EgressEvent e) = 0;
  // Runs `fn` on a thread Stop() joins; false if it could not start.
  virtual bool SpawnWorker(std::function<void()> fn) = 0;

 protected:
  ~ConnectNotifyHooks() = default;
};

// Serves the notifications of `notify_fd` until `stop_fd` is readable or no
// process uses the filter any more. `sandbox_netns` is the SO_NETNS_COOKIE
// of the sandbox's network namespace (NetnsCookie of one of its listeners).
void ServeConnectNotifications(int notify_fd, int stop_fd, uint64_t sandbox_netns, int connect_timeout_ms,
                               ConnectNotifyHooks& hooks);

// SO_NETNS_COOKIE of a socket's network namespace; 0 if it cannot be read.
uint64_t NetnsCookie(int socket_fd);

}  // namespace ward::net
