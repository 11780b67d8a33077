#include "enforce/netns.h"

#include "base/fd_passing.h"

// glibc's headers first: they tell the kernel's (linux/libc-compat.h) which
// definitions they already made.
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/errors.h"
#include "enforce/seccomp.h"
#include "net/sandbox_net.h"

namespace ward {

namespace {

// Interface indexes asked for explicitly, so that the address and route
// requests (built before the interfaces exist) can name them. Far above the
// few a new namespace starts with (lo is 1; fallback tunnels take the next).
constexpr int kVethIndex = 7701;
constexpr int kPeerIndex = 7702;
constexpr char kTable[] = "ward";
// The NFLOG group dropped packets are copied to (per network namespace), and
// how much of each: the IPv6 header and a transport header fit.
constexpr uint16_t kNflogGroup = 7701;
constexpr uint32_t kNflogSnaplen = 64;

void BuildNflog(NetlinkBatch& b) {
  nfgenmsg g{AF_UNSPEC, NFNETLINK_V0, htons(kNflogGroup)};
  b.Begin(NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_CONFIG, 0, &g, sizeof g, "nflog: bind group 7701");
  nfulnl_msg_config_cmd cmd{NFULNL_CFG_CMD_BIND};
  b.Put(NFULA_CFG_CMD, &cmd, sizeof cmd);
  b.End();
  b.Begin(NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_CONFIG, 0, &g, sizeof g, "nflog: copy packets");
  nfulnl_msg_config_mode mode{htonl(kNflogSnaplen), NFULNL_COPY_PACKET, 0};
  b.Put(NFULA_CFG_MODE, &mode, sizeof mode);
  // One packet per message, sent as it is dropped (the default batches them
  // for up to a second: the run could end before they arrive).
  b.PutBe32(NFULA_CFG_QTHRESH, 1);
  b.End();
}

void BuildLinks(NetlinkBatch& b) {
  ifinfomsg link{};
  link.ifi_family = AF_UNSPEC;
  link.ifi_index = kVethIndex;
  b.Begin(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &link, sizeof link, "create veth pair ward0/ward1");
  b.PutString(IFLA_IFNAME, net::kSandboxIfName);
  size_t info = b.Nest(IFLA_LINKINFO);
  b.PutString(IFLA_INFO_KIND, "veth");
  size_t data = b.Nest(IFLA_INFO_DATA);
  size_t peer = b.Nest(VETH_INFO_PEER);
  ifinfomsg peer_link = link;
  peer_link.ifi_index = kPeerIndex;
  b.Raw(&peer_link, sizeof peer_link);
  b.PutString(IFLA_IFNAME, net::kSandboxPeerIfName);
  b.EndNest(peer);
  b.EndNest(data);
  b.EndNest(info);
  b.End();
  // Up once both ends exist (a veth cannot open before its peer is linked:
  // IFF_UP in the creating request fails with ENOTCONN).
  for (int index : {kPeerIndex, kVethIndex}) {
    ifinfomsg up{};
    up.ifi_family = AF_UNSPEC;
    up.ifi_index = index;
    up.ifi_flags = IFF_UP;
    up.ifi_change = IFF_UP;
    b.Begin(RTM_NEWLINK, 0, &up, sizeof up, index == kVethIndex ? "set ward0 up" : "set ward1 up");
    b.End();
  }

  ifaddrmsg a4{AF_INET, net::kSandboxPrefix4, 0, RT_SCOPE_UNIVERSE, kVethIndex};
  b.Begin(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &a4, sizeof a4, "add address 169.254.77.2/30 to ward0");
  b.Put(IFA_LOCAL, net::kSandboxAddr4, 4);
  b.Put(IFA_ADDRESS, net::kSandboxAddr4, 4);
  b.End();

  // No duplicate address detection: the link has no one else on it, and a
  // tentative address could not be used for the first second.
  ifaddrmsg a6{AF_INET6, net::kSandboxPrefix6, IFA_F_NODAD, RT_SCOPE_UNIVERSE, kVethIndex};
  b.Begin(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &a6, sizeof a6, "add address fd77:7761:7264::2/64 to ward0");
  b.Put(IFA_ADDRESS, net::kSandboxAddr6, 16);
  b.PutU32(IFA_FLAGS, IFA_F_NODAD);
  b.End();

  // Default routes through ward0, so that connect() to any address gets as
  // far as the nat hook (without a route it fails with ENETUNREACH first).
  for (int family : {AF_INET, AF_INET6}) {
    rtmsg r{};
    r.rtm_family = static_cast<unsigned char>(family);
    r.rtm_table = RT_TABLE_MAIN;
    r.rtm_protocol = RTPROT_BOOT;
    r.rtm_scope = family == AF_INET ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
    r.rtm_type = RTN_UNICAST;
    b.Begin(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &r, sizeof r,
            family == AF_INET ? "add IPv4 default route via ward0" : "add IPv6 default route via ward0");
    b.PutU32(RTA_OIF, kVethIndex);
    b.End();
  }
}

// nf_tables expressions. Register and integer attributes are big-endian;
// compared data is in the byte order of what it is compared with.
class Rule {
 public:
  Rule(NetlinkBatch& b, const char* chain, std::string label) : b_(b) {
    nfgenmsg g{NFPROTO_INET, NFNETLINK_V0, 0};
    b_.Begin(NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, &g, sizeof g,
             std::move(label));
    b_.PutString(NFTA_RULE_TABLE, kTable);
    b_.PutString(NFTA_RULE_CHAIN, chain);
    list_ = b_.Nest(NFTA_RULE_EXPRESSIONS);
  }
  ~Rule() {
    b_.EndNest(list_);
    b_.End();
  }

  Rule& Meta(uint32_t key) {
    size_t d = Expr("meta");
    b_.PutBe32(NFTA_META_KEY, key);
    b_.PutBe32(NFTA_META_DREG, NFT_REG_1);
    return Done(d);
  }
  Rule& Payload(uint32_t base, uint32_t offset, uint32_t len) {
    size_t d = Expr("payload");
    b_.PutBe32(NFTA_PAYLOAD_DREG, NFT_REG_1);
    b_.PutBe32(NFTA_PAYLOAD_BASE, base);
    b_.PutBe32(NFTA_PAYLOAD_OFFSET, offset);
    b_.PutBe32(NFTA_PAYLOAD_LEN, len);
    return Done(d);
  }
  Rule& Equals(const void* value, size_t len) {
    size_t d = Expr("cmp");
    b_.PutBe32(NFTA_CMP_SREG, NFT_REG_1);
    b_.PutBe32(NFTA_CMP_OP, NFT_CMP_EQ);
    size_t v = b_.Nest(NFTA_CMP_DATA);
    b_.Put(NFTA_DATA_VALUE, value, len);
    b_.EndNest(v);
    return Done(d);
  }
  Rule& L4Proto(uint8_t proto) { return Meta(NFT_META_L4PROTO).Equals(&proto, 1); }
  // `log group N snaplen S`: a copy of the packet's first bytes to the
  // NFLOG group, where the supervisor reads what was dropped.
  Rule& Log(uint16_t group, uint32_t snaplen) {
    size_t d = Expr("log");
    uint16_t be = htons(group);
    b_.Put(NFTA_LOG_GROUP, &be, sizeof be);
    b_.PutBe32(NFTA_LOG_SNAPLEN, snaplen);
    return Done(d);
  }
  Rule& DestPort(uint16_t port) {
    uint16_t be = htons(port);
    return Payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2).Equals(&be, 2);
  }
  Rule& OutputIsLoopback() {
    uint32_t lo = 1;  // the loopback device is interface 1 in every namespace
    return Meta(NFT_META_OIF).Equals(&lo, sizeof lo);
  }
  Rule& Accept() {
    size_t d = Expr("immediate");
    b_.PutBe32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
    size_t data = b_.Nest(NFTA_IMMEDIATE_DATA);
    size_t verdict = b_.Nest(NFTA_DATA_VERDICT);
    b_.PutBe32(NFTA_VERDICT_CODE, NF_ACCEPT);
    b_.EndNest(verdict);
    b_.EndNest(data);
    return Done(d);
  }
  // `redirect to :port`: destination rewritten to the loopback address of
  // the packet's family and `port`.
  Rule& RedirectTo(uint16_t port) {
    size_t d = Expr("immediate");
    uint16_t be = htons(port);
    b_.PutBe32(NFTA_IMMEDIATE_DREG, NFT_REG_1);
    size_t data = b_.Nest(NFTA_IMMEDIATE_DATA);
    b_.Put(NFTA_DATA_VALUE, &be, sizeof be);
    b_.EndNest(data);
    Done(d);
    d = Expr("redir");
    b_.PutBe32(NFTA_REDIR_REG_PROTO_MIN, NFT_REG_1);
    return Done(d);
  }

 private:
  size_t Expr(const char* name) {
    elem_ = b_.Nest(NFTA_LIST_ELEM);
    b_.PutString(NFTA_EXPR_NAME, name);
    return b_.Nest(NFTA_EXPR_DATA);
  }
  Rule& Done(size_t data) {
    b_.EndNest(data);
    b_.EndNest(elem_);
    return *this;
  }
  NetlinkBatch& b_;
  size_t list_ = 0;
  size_t elem_ = 0;
};

void Chain(NetlinkBatch& b, const char* name, const char* type, int32_t priority, uint32_t policy,
           std::string label) {
  nfgenmsg g{NFPROTO_INET, NFNETLINK_V0, 0};
  b.Begin(NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWCHAIN, NLM_F_CREATE, &g, sizeof g, std::move(label));
  b.PutString(NFTA_CHAIN_TABLE, kTable);
  b.PutString(NFTA_CHAIN_NAME, name);
  size_t hook = b.Nest(NFTA_CHAIN_HOOK);
  b.PutBe32(NFTA_HOOK_HOOKNUM, NF_INET_LOCAL_OUT);
  b.PutBe32(NFTA_HOOK_PRIORITY, static_cast<uint32_t>(priority));
  b.EndNest(hook);
  b.PutBe32(NFTA_CHAIN_POLICY, policy);
  b.PutString(NFTA_CHAIN_TYPE, type);
  b.End();
}

void BuildNftables(NetlinkBatch& b) {
  nfgenmsg batch{AF_UNSPEC, NFNETLINK_V0, htons(NFNL_SUBSYS_NFTABLES)};
  b.Begin(NFNL_MSG_BATCH_BEGIN, 0, &batch, sizeof batch, "nftables batch begin", false);
  b.End();

  nfgenmsg g{NFPROTO_INET, NFNETLINK_V0, 0};
  b.Begin(NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWTABLE, NLM_F_CREATE, &g, sizeof g,
          "nftables: add table inet ward");
  b.PutString(NFTA_TABLE_NAME, kTable);
  b.End();

  // nat/output: where each new outbound flow goes. Port 53 first, so that a
  // resolver on a loopback address (127.0.0.53) is answered by ward too.
  Chain(b, "nat_out", "nat", -100, NF_ACCEPT,
        "nftables: add chain nat_out (type nat hook output; needs nf_tables nat support)");
  Rule(b, "nat_out", "nftables: udp dport 53 redirect to :53 (needs nft_redir)")
      .L4Proto(IPPROTO_UDP).DestPort(53).RedirectTo(net::kDnsPort);
  Rule(b, "nat_out", "nftables: tcp dport 53 redirect to :1")
      .L4Proto(IPPROTO_TCP).DestPort(53).RedirectTo(net::kProxyPort);
  // The sandbox's own loopback stays the sandbox's.
  Rule(b, "nat_out", "nftables: oif lo accept").OutputIsLoopback().Accept();
  Rule(b, "nat_out", "nftables: tcp redirect to :1").L4Proto(IPPROTO_TCP).RedirectTo(net::kProxyPort);

  // filter/output, after nat: loopback (which redirected flows now are),
  // TCP (all redirected) and DNS pass; anything else (other UDP, ICMP,
  // SCTP...) is dropped, which fails the sender's call with EPERM at once.
  Chain(b, "filter_out", "filter", 0, NF_DROP, "nftables: add chain filter_out (type filter hook output)");
  Rule(b, "filter_out", "nftables: oif lo accept").OutputIsLoopback().Accept();
  Rule(b, "filter_out", "nftables: tcp accept").L4Proto(IPPROTO_TCP).Accept();
  Rule(b, "filter_out", "nftables: udp dport 53 accept").L4Proto(IPPROTO_UDP).DestPort(53).Accept();
  // Dropped UDP is reported: a copy of each datagram's headers goes to ward
  // (the workload can send no ICMP: it has no raw or ping sockets; the
  // kernel's own IPv6 neighbour discovery is not the workload's).
  Rule(b, "filter_out", "nftables: udp log group 7701 (needs nft_log / nfnetlink_log)")
      .L4Proto(IPPROTO_UDP).Log(kNflogGroup, kNflogSnaplen);

  b.Begin(NFNL_MSG_BATCH_END, 0, &batch, sizeof batch, "nftables batch end", false);
  b.End();
}

// Child side helpers: no allocation.
int Listener(int family, int type, uint16_t port) {
  int fd = socket(family, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  sockaddr_storage ss{};
  socklen_t len;
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    len = sizeof *a;
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || (type == SOCK_STREAM && listen(fd, net::kProxyListenBacklog) != 0)) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

}  // namespace

EgressNetnsPlan BuildEgressNetnsPlan() {
  EgressNetnsPlan plan;
  BuildLinks(plan.links);
  BuildNftables(plan.nftables);
  BuildNflog(plan.nflog);
  plan.connect_notify = BuildNetworkFilter(NetworkFilter::kEgress);
  return plan;
}

int ApplyEgressLinks(const EgressNetnsPlan& plan, int* failed) {
  const auto& b = plan.links;
  return NetlinkSend(NETLINK_ROUTE, b.bytes().data(), b.bytes().size(), b.acks(), failed);
}

int ApplyEgressNftables(const EgressNetnsPlan& plan, int* failed) {
  const auto& b = plan.nftables;
  return NetlinkSend(NETLINK_NETFILTER, b.bytes().data(), b.bytes().size(), b.acks(), failed);
}

int SendEgressListeners(const EgressNetnsPlan& plan, int channel, int* failed) {
  static constexpr struct {
    int family, type;
    uint16_t port;
  } kSpecs[kListenNflog] = {{AF_INET, SOCK_STREAM, net::kProxyPort},
                            {AF_INET6, SOCK_STREAM, net::kProxyPort},
                            {AF_INET, SOCK_DGRAM, net::kDnsPort},
                            {AF_INET6, SOCK_DGRAM, net::kDnsPort}};
  int fds[kListenCount];
  int err = 0;
  int made = 0;
  for (; made < kListenNflog; ++made) {
    fds[made] = Listener(kSpecs[made].family, kSpecs[made].type, kSpecs[made].port);
    if (fds[made] < 0) {
      err = -fds[made];
      *failed = made;
      break;
    }
  }
  if (!err) {
    // The NFLOG socket: bound to the group in this namespace (which needs
    // CAP_NET_ADMIN here), read by the supervisor.
    fds[made] = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    int seq = -1;
    if (fds[made] < 0) {
      err = errno;
    } else {
      ++made;
      int size = 1 << 20;
      setsockopt(fds[kListenNflog], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
      err = NetlinkSendOn(fds[kListenNflog], plan.nflog.bytes().data(), plan.nflog.bytes().size(), plan.nflog.acks(),
                          &seq);
    }
    if (err) *failed = kListenNflog;
  }
  if (!err) {
    fds[made] = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fds[made] < 0) {
      err = errno;
      *failed = kListenSockDiag;
    } else {
      ++made;
    }
  }
  if (!err && !plan.connect_notify.empty()) {
    // Last, after the listen() calls above: from here on this process's own
    // connect() and listen() would wait for a supervisor that is not yet
    // serving. Allowed without no_new_privs: the caller holds CAP_SYS_ADMIN
    // in its user namespace.
    sock_fprog prog{static_cast<unsigned short>(plan.connect_notify.size()),
                    const_cast<sock_filter*>(plan.connect_notify.data())};
    fds[made] = InstallNotifyFilter(&prog);
    if (fds[made] < 0) {
      err = errno;
      *failed = kListenConnectNotify;
    } else {
      ++made;
    }
  }
  if (!err && (err = SendFds(channel, fds, static_cast<size_t>(made)))) *failed = kListenCount;
  for (int i = 0; i < made; ++i) close(fds[i]);
  return err;
}

std::string DescribeEgressFailure(const EgressNetnsPlan& plan, EgressStage stage, int index) {
  if (stage == EgressStage::kListeners) {
    static const char* const kWhat[kListenCount + 1] = {
        "tcp 0.0.0.0:1",
        "tcp [::]:1",
        "udp 0.0.0.0:53",
        "udp [::]:53",
        "NFLOG socket (needs nfnetlink_log)",
        "NETLINK_SOCK_DIAG socket (needs unix_diag)",
        "seccomp user-notification listener (needs SECCOMP_FILTER_FLAG_NEW_LISTENER, Linux 5.0)",
        "sendmsg SCM_RIGHTS"};
    return index >= 0 && index <= kListenCount ? kWhat[index] : "";
  }
  const auto& labels = stage == EgressStage::kLinks ? plan.links.labels() : plan.nftables.labels();
  if (index >= 0 && static_cast<size_t>(index) < labels.size()) return labels[static_cast<size_t>(index)];
  return "";
}

Result<std::vector<UniqueFd>> ReceiveEgressListeners(int channel) {
  static_assert(kListenCount <= kMaxPassedFds);
  bool truncated = false;
  std::vector<UniqueFd> out = ReceiveFds(channel, kListenCount, &truncated);
  const size_t count = out.size();
  if ((count != kListenCount && count != kListenConnectNotify) || truncated) {
    // The child failed before sending; its report says why.
    return Error::Setup("the sandbox sent no egress listeners");
  }
  out.resize(kListenCount);
  return out;
}

}  // namespace ward
