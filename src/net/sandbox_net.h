// The fixed shape of a sandbox's network in egress mode, shared by the code
// that builds it inside the sandbox's network namespace (enforce/netns.cc)
// and the supervisor's egress proxy (net/egress_proxy.cc).
//
//   sandbox netns:  lo (127.0.0.1, ::1)
//                   ward0 169.254.77.2/30, fd77:7761:7264::2/64, default routes
//                   ward1 (veth peer, same netns, no address: nothing reaches it)
//   nftables "inet ward": nat/output  port 53 (udp, tcp)   -> redirect :53 udp / :1 tcp
//                                     oif lo               -> untouched
//                                     every other tcp      -> redirect :1
//                         filter/output oif lo, tcp, udp 53 accepted; the rest rejected
//
// The listeners on those ports are created inside the sandbox's namespace and
// handed to the supervisor, which accepts from its own (the host's) namespace.
// Addresses are link-local / unique-local, so they never collide with a real
// destination a rule could name.
#pragma once

#include <cstdint>

namespace ward::net {

inline constexpr char kSandboxIfName[] = "ward0";
inline constexpr char kSandboxPeerIfName[] = "ward1";

// The sandbox side of the veth pair, and the "gateway" on the same link.
// Nothing answers at the gateway: every TCP connection to it is redirected to
// the proxy, which gives its ports meaning (see below).
inline constexpr uint8_t kSandboxAddr4[4] = {169, 254, 77, 2};
inline constexpr uint8_t kGatewayAddr4[4] = {169, 254, 77, 1};
inline constexpr int kSandboxPrefix4 = 30;
inline constexpr uint8_t kSandboxAddr6[16] = {0xfd, 0x77, 0x77, 0x61, 0x72, 0x64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
inline constexpr uint8_t kGatewayAddr6[16] = {0xfd, 0x77, 0x77, 0x61, 0x72, 0x64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
inline constexpr int kSandboxPrefix6 = 64;

// Listeners inside the sandbox's namespace (both families). Ports below 1024:
// the workload, which holds no capability, can never bind them first.
inline constexpr uint16_t kProxyPort = 1;  // TCP: every redirected connection
inline constexpr uint16_t kDnsPort = 53;   // UDP: every redirected DNS query
// The TCP listeners' accept queue (the kernel caps it at net.core.somaxconn,
// 4096 by default). A burst of connections waits there while the proxy's
// accept loop starts a thread for each; a full queue drops the handshake's
// last ACK, and the client, already connected, stalls a retransmission (1 s,
// then 3 s) before the proxy sees it.
inline constexpr int kProxyListenBacklog = 4096;

// gateway:3128 is the explicit HTTP proxy (HTTP_PROXY / HTTPS_PROXY point
// there); gateway:53 is DNS; gateway:PORT otherwise is the host's loopback
// PORT, allowed only by a rule for kHostLoopbackName.
inline constexpr uint16_t kHttpProxyPort = 3128;
// Resolved by ward's DNS to the gateway addresses. A rule naming it
// ("host.ward.internal:5432") opens that port of the host's loopback.
inline constexpr char kHostLoopbackName[] = "host.ward.internal";

// The read-only interface ioctls that the egress filter sends to the
// supervisor (enforce/seccomp.h), which answers them from the sandbox's
// namespace whatever the socket (net/connect_notify.h).
inline constexpr uint32_t kInterfaceQuestions[] = {
    0x8910,  // SIOCGIFNAME
    0x8912,  // SIOCGIFCONF
    0x8913,  // SIOCGIFFLAGS
    0x8915,  // SIOCGIFADDR
    0x8917,  // SIOCGIFDSTADDR
    0x8919,  // SIOCGIFBRDADDR
    0x891b,  // SIOCGIFNETMASK
    0x891d,  // SIOCGIFMETRIC
    0x8921,  // SIOCGIFMTU
    0x8927,  // SIOCGIFHWADDR
    0x8933,  // SIOCGIFINDEX
    0x8942,  // SIOCGIFTXQLEN
};

}  // namespace ward::net
