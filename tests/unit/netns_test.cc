// The egress network namespace (enforce/netns.cc) built for real: a forked
// child enters a new user + network namespace, applies the prepared netlink
// requests, and checks what the workload would see: TCP to anywhere lands on
// the proxy listener with its original destination, DNS lands on the DNS
// listener, other UDP fails at once with EPERM, loopback stays local.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "enforce/netns.h"

namespace ward {
namespace {

// From linux/netfilter_ipv4.h and linux/netfilter_ipv6/ip6_tables.h, whose
// includes clash with glibc's net/if.h.
constexpr int SO_ORIGINAL_DST = 80;
constexpr int IP6T_SO_ORIGINAL_DST = 80;

// What the child found; 0 is success, anything else names the first failure.
enum Outcome {
  kOk = 0, kUnshare, kMaps, kLoopback, kLinks, kNftables, kListeners, kReceive, kTcp4Connect, kTcp4Accept,
  kTcp4OrigDst, kTcp6Connect, kTcp6Accept, kTcp6OrigDst, kUdpNotDenied, kUdpWrongErrno, kDnsSend, kDnsRecv,
  kLoopbackConnect, kLoopbackRedirected, kSecondApply, kSecondApplyLabel, kUdpNotLogged,
};

bool WriteFile(const char* path, const std::string& s) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size());
  close(fd);
  return ok;
}

int EnterNamespaces() {
  uid_t uid = getuid();
  gid_t gid = getgid();
  if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) return kUnshare;
  if (!WriteFile("/proc/self/setgroups", "deny") ||
      !WriteFile("/proc/self/uid_map", std::to_string(uid) + " " + std::to_string(uid) + " 1") ||
      !WriteFile("/proc/self/gid_map", std::to_string(gid) + " " + std::to_string(gid) + " 1")) {
    return kMaps;
  }
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  strcpy(ifr.ifr_name, "lo");
  ifr.ifr_flags = IFF_UP;
  int r = ioctl(s, SIOCSIFFLAGS, &ifr);
  close(s);
  return r == 0 ? kOk : kLoopback;
}

int Check() {
  if (int r = EnterNamespaces()) return r;
  EgressNetnsPlan plan = BuildEgressNetnsPlan();
  // This process connects below, with no supervisor to answer its connect()
  // calls: the redirect alone, without the direct-socket filter.
  plan.connect_notify.clear();
  int failed = -1;
  if (int e = ApplyEgressLinks(plan, &failed)) {
    fprintf(stderr, "links: %s at %d\n", strerror(e), failed);
    return kLinks;
  }
  if (int e = ApplyEgressNftables(plan, &failed)) {
    fprintf(stderr, "nftables: %s at %d\n", strerror(e), failed);
    return kNftables;
  }
  int sv[2];
  socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
  if (SendEgressListeners(plan, sv[0], &failed)) return kListeners;
  auto fds = ReceiveEgressListeners(sv[1]);
  if (!fds || fds->size() != kListenCount) return kReceive;

  // TCP over IPv4 to a documentation address: redirected to the listener,
  // which learns where the program meant to go.
  sockaddr_in dst4{AF_INET, htons(443), {}, {}};
  inet_pton(AF_INET, "192.0.2.7", &dst4.sin_addr);
  int c4 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(c4, reinterpret_cast<sockaddr*>(&dst4), sizeof dst4) != 0) return kTcp4Connect;
  int a4 = accept4((*fds)[kListenTcp4].get(), nullptr, nullptr, SOCK_CLOEXEC);
  if (a4 < 0) return kTcp4Accept;
  sockaddr_in orig4{};
  socklen_t len = sizeof orig4;
  if (getsockopt(a4, SOL_IP, SO_ORIGINAL_DST, &orig4, &len) != 0 || orig4.sin_port != htons(443) ||
      orig4.sin_addr.s_addr != dst4.sin_addr.s_addr) {
    return kTcp4OrigDst;
  }

  sockaddr_in6 dst6{};
  dst6.sin6_family = AF_INET6;
  dst6.sin6_port = htons(8443);
  inet_pton(AF_INET6, "2001:db8::7", &dst6.sin6_addr);
  int c6 = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(c6, reinterpret_cast<sockaddr*>(&dst6), sizeof dst6) != 0) return kTcp6Connect;
  int a6 = accept4((*fds)[kListenTcp6].get(), nullptr, nullptr, SOCK_CLOEXEC);
  if (a6 < 0) return kTcp6Accept;
  sockaddr_in6 orig6{};
  len = sizeof orig6;
  if (getsockopt(a6, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &orig6, &len) != 0 || orig6.sin6_port != htons(8443) ||
      memcmp(&orig6.sin6_addr, &dst6.sin6_addr, 16) != 0) {
    return kTcp6OrigDst;
  }

  // UDP elsewhere than port 53: dropped on the way out, the call fails.
  int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in udp{AF_INET, htons(9999), {}, {}};
  inet_pton(AF_INET, "192.0.2.7", &udp.sin_addr);
  if (sendto(u, "x", 1, 0, reinterpret_cast<sockaddr*>(&udp), sizeof udp) == 1) return kUdpNotDenied;
  if (errno != EPERM) return kUdpWrongErrno;
  // ... and a copy of it goes to the NFLOG socket, for the run's events.
  {
    pollfd lf{(*fds)[kListenNflog].get(), POLLIN, 0};
    alignas(8) char msg[4096];
    if (poll(&lf, 1, 2000) != 1 || recv(lf.fd, msg, sizeof msg, 0) <= 0) return kUdpNotLogged;
  }
  // Port 53 (the positive control): reaches the DNS listener.
  udp.sin_port = htons(53);
  if (sendto(u, "q", 1, 0, reinterpret_cast<sockaddr*>(&udp), sizeof udp) != 1) return kDnsSend;
  char b;
  pollfd pf{(*fds)[kListenUdp4].get(), POLLIN, 0};
  if (poll(&pf, 1, 2000) != 1 || recv(pf.fd, &b, 1, 0) != 1 || b != 'q') return kDnsRecv;

  // The sandbox's own loopback is not intercepted.
  int srv = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in lo{AF_INET, htons(8080), {htonl(INADDR_LOOPBACK)}, {}};
  bind(srv, reinterpret_cast<sockaddr*>(&lo), sizeof lo);
  listen(srv, 1);
  int cl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(cl, reinterpret_cast<sockaddr*>(&lo), sizeof lo) != 0) return kLoopbackConnect;
  pollfd proxy{(*fds)[kListenTcp4].get(), POLLIN, 0};
  if (poll(&proxy, 1, 0) != 0) return kLoopbackRedirected;

  // A second attempt fails on its first request, which the labels name.
  int err = ApplyEgressLinks(plan, &failed);
  if (err != EEXIST) return kSecondApply;
  if (failed != 0 || plan.links.labels()[0].find("veth") == std::string::npos) return kSecondApplyLabel;
  return kOk;
}

TEST(EgressNetns, RedirectsTcpAndDnsDropsOtherUdpKeepsLoopback) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(Check());
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kOk) << "first failure: Outcome " << WEXITSTATUS(status)
                                      << " (see the enum in netns_test.cc)";
}

TEST(EgressNetns, LabelsNameEveryRequest) {
  EgressNetnsPlan plan = BuildEgressNetnsPlan();
  EXPECT_EQ(plan.links.acks(), 7u);  // veth, 2 x up, 2 addresses, 2 routes
  ASSERT_GE(plan.nftables.labels().size(), 3u);
  for (const auto& l : plan.nftables.labels()) EXPECT_FALSE(l.empty());
  EXPECT_NE(plan.nftables.labels()[2].find("nat_out"), std::string::npos);
}

}  // namespace
}  // namespace ward
