// The sandbox's network namespace in egress mode (see net/sandbox_net.h for
// its shape): the netlink requests that build it, computed before clone(),
// and the async-signal-safe steps the sandbox's init runs with them.
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "enforce/netlink.h"
#include "ward/result.h"

namespace ward {

struct EgressNetnsPlan {
  NetlinkBatch links;     // NETLINK_ROUTE: veth pair, addresses, default routes
  NetlinkBatch nftables;  // NETLINK_NETFILTER: one batch creating table inet "ward"
  NetlinkBatch nflog;     // NETLINK_NETFILTER: binds the socket that reports dropped packets
  // BuildNetworkFilter(kEgress): loaded by SendEgressListeners, its listener
  // handed over with the others. Empty: none (tests of the redirect alone).
  std::vector<sock_filter> connect_notify;
};

EgressNetnsPlan BuildEgressNetnsPlan();

// The listeners the supervisor serves, in this order.
// kListenNflog is the NFLOG socket that receives a copy of each packet the
// namespace's filter drops (for the run's events); kListenSockDiag a
// NETLINK_SOCK_DIAG socket in the namespace (the unix gate asks it which
// unix sockets are the sandbox's, net/unix_gate.h); kListenConnectNotify the
// seccomp user-notification listener of plan.connect_notify.
enum EgressListener {
  kListenTcp4,
  kListenTcp6,
  kListenUdp4,
  kListenUdp6,
  kListenNflog,
  kListenSockDiag,
  kListenConnectNotify,
  kListenCount
};

// Child side, in the new network namespace, with CAP_NET_ADMIN and
// CAP_NET_BIND_SERVICE of its user namespace. Each returns 0 or an errno;
// `*failed` names the message (sequence number) or listener that failed.
int ApplyEgressLinks(const EgressNetnsPlan& plan, int* failed);
int ApplyEgressNftables(const EgressNetnsPlan& plan, int* failed);
// Creates the listeners, then loads plan.connect_notify on the calling
// process (with SECCOMP_FILTER_FLAG_NEW_LISTENER: it is inherited by
// everything the caller starts later, and the caller itself must not
// connect() or listen() after this), and sends them all over `channel` (a
// unix socket) in one SCM_RIGHTS message; closes its own copies.
int SendEgressListeners(const EgressNetnsPlan& plan, int channel, int* failed);

// Which step of the above failed, and how it reads in a message: the label
// of netlink request `index` ("nftables: add chain nat_out (...)"), or the
// listener `index` ("tcp [::]:1"; kListenCount: handing them over); "" when
// `index` names none (the netlink socket itself failed).
enum class EgressStage { kLinks, kNftables, kListeners };
std::string DescribeEgressFailure(const EgressNetnsPlan& plan, EgressStage stage, int index);

// Supervisor side: receives the listeners (blocking until they arrive or the
// child closes its end), kListenCount of them (kListenConnectNotify invalid
// when the plan had no filter).
Result<std::vector<UniqueFd>> ReceiveEgressListeners(int channel);

}  // namespace ward
