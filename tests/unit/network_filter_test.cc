// The egress and isolated network filters (BuildNetworkFilter), evaluated
// in-process on synthetic seccomp_data: every verdict the documentation
// promises, and the edges (high argument bits, other ABIs).
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "enforce/seccomp.h"

namespace ward {
namespace {

// Just the classic BPF the network filter uses (absolute word loads, AND
// with a constant, conditional jumps on constants, constant returns);
// anything else fails the test.
uint32_t Evaluate(const std::vector<sock_filter>& program, const seccomp_data& data) {
  uint32_t a = 0;
  for (size_t pc = 0; pc < program.size(); ++pc) {
    const sock_filter& f = program[pc];
    if (f.code == (BPF_LD | BPF_W | BPF_ABS)) {
      EXPECT_LE(f.k + 4, sizeof data);
      std::memcpy(&a, reinterpret_cast<const char*>(&data) + f.k, 4);
    } else if (f.code == (BPF_ALU | BPF_AND | BPF_K)) {
      a &= f.k;
    } else if (f.code == (BPF_RET | BPF_K)) {
      return f.k;
    } else if (BPF_CLASS(f.code) == BPF_JMP && BPF_SRC(f.code) == BPF_K) {
      bool taken = BPF_OP(f.code) == BPF_JEQ ? a == f.k : BPF_OP(f.code) == BPF_JGE ? a >= f.k : (a & f.k) != 0;
      EXPECT_TRUE(BPF_OP(f.code) == BPF_JEQ || BPF_OP(f.code) == BPF_JGE || BPF_OP(f.code) == BPF_JSET);
      pc += taken ? f.jt : f.jf;
    } else {
      ADD_FAILURE() << "unexpected instruction " << f.code;
      return 0;
    }
  }
  ADD_FAILURE() << "fell off the end";
  return 0;
}

constexpr uint32_t kAllow = SECCOMP_RET_ALLOW, kNotify = SECCOMP_RET_USER_NOTIF;
uint32_t Errno(int e) { return SECCOMP_RET_ERRNO | static_cast<uint32_t>(e); }

seccomp_data Call(int nr, std::initializer_list<uint64_t> args, uint32_t arch = AUDIT_ARCH_X86_64) {
  seccomp_data d{};
  d.nr = nr;
  d.arch = arch;
  size_t i = 0;
  for (uint64_t a : args) d.args[i++] = a;
  return d;
}

struct Case {
  const char* what;
  seccomp_data call;
  uint32_t egress, isolated;
};

TEST(NetworkFilter, Verdicts) {
  const uint64_t kHigh = 1ULL << 32;  // the kernel reads these arguments as 32-bit ints
  const Case cases[] = {
      {"socket AF_UNIX", Call(41, {AF_UNIX, SOCK_STREAM, 0}), kAllow, kAllow},
      {"socket AF_INET", Call(41, {AF_INET, SOCK_STREAM, 6}), kAllow, kAllow},
      {"socket AF_INET6 udp", Call(41, {AF_INET6, SOCK_DGRAM, 17}), kAllow, kAllow},
      {"socket AF_NETLINK", Call(41, {AF_NETLINK, SOCK_RAW, 0}), kAllow, kAllow},
      {"socket NETLINK_SOCK_DIAG", Call(41, {AF_NETLINK, SOCK_RAW, 4}), kAllow, kAllow},
      {"socket NETLINK_NETFILTER", Call(41, {AF_NETLINK, SOCK_RAW, 12}), Errno(EPROTONOSUPPORT), Errno(EPROTONOSUPPORT)},
      {"socket NETLINK_GENERIC", Call(41, {AF_NETLINK, SOCK_RAW, 16}), Errno(EPROTONOSUPPORT), Errno(EPROTONOSUPPORT)},
      {"socket NETLINK_ROUTE, high bits", Call(41, {AF_NETLINK, SOCK_RAW, kHigh | 0}), kAllow, kAllow},
      {"socket AF_VSOCK", Call(41, {40, SOCK_STREAM, 0}), Errno(EAFNOSUPPORT), Errno(EAFNOSUPPORT)},
      {"socket AF_VSOCK, high bits", Call(41, {kHigh | 40, SOCK_STREAM, 0}), Errno(EAFNOSUPPORT), Errno(EAFNOSUPPORT)},
      {"socket AF_SMC", Call(41, {43, SOCK_STREAM, 0}), Errno(EAFNOSUPPORT), Errno(EAFNOSUPPORT)},
      {"socket AF_PACKET", Call(41, {17, SOCK_RAW, 0}), Errno(EAFNOSUPPORT), Errno(EAFNOSUPPORT)},
      {"socket IPPROTO_SMC", Call(41, {AF_INET, SOCK_STREAM, 256}), Errno(EPROTONOSUPPORT), Errno(EPROTONOSUPPORT)},
      {"socket IPPROTO_SMC, high bits", Call(41, {AF_INET6, SOCK_STREAM, kHigh | 256}), Errno(EPROTONOSUPPORT),
       Errno(EPROTONOSUPPORT)},
      {"connect", Call(42, {3, 0, 16}), kNotify, kNotify},
      {"bind", Call(49, {3, 0, 16}), kNotify, kAllow},
      {"listen", Call(50, {3, 5}), kNotify, kAllow},
      {"accept4", Call(288, {3, 0, 0, 0}), kAllow, kAllow},
      {"sendto", Call(44, {3, 0, 1, 0x40}), kAllow, kAllow},
      {"sendto MSG_FASTOPEN", Call(44, {3, 0, 1, 0x20000040}), Errno(EOPNOTSUPP), Errno(EOPNOTSUPP)},
      {"sendmmsg MSG_FASTOPEN", Call(307, {3, 0, 1, 0x20000000}), Errno(EOPNOTSUPP), Errno(EOPNOTSUPP)},
      {"sendmsg MSG_FASTOPEN", Call(46, {3, 0, 0x20000000}), Errno(EOPNOTSUPP), Errno(EOPNOTSUPP)},
      {"sendmsg", Call(46, {3, 0, 0}), kAllow, kAllow},
      {"setsockopt TCP_ULP", Call(54, {3, 6, 31}), Errno(EPERM), kAllow},
      {"setsockopt TCP_ULP, high bits", Call(54, {3, kHigh | 6, kHigh | 31}), Errno(EPERM), kAllow},
      {"setsockopt TCP_NODELAY", Call(54, {3, 6, 1}), kAllow, kAllow},
      {"setsockopt SO_BINDTODEVICE", Call(54, {3, 1, 25}), Errno(EPERM), kAllow},
      {"setsockopt SO_BINDTOIFINDEX", Call(54, {3, 1, 62}), Errno(EPERM), kAllow},
      {"setsockopt SO_KEEPALIVE", Call(54, {3, 1, 9}), kAllow, kAllow},
      {"setsockopt IP_OPTIONS", Call(54, {3, 0, 4}), Errno(EPERM), kAllow},
      {"setsockopt IP_TOS", Call(54, {3, 0, 1}), kAllow, kAllow},
      {"setsockopt IPV6_RTHDR", Call(54, {3, 41, 57}), Errno(EPERM), kAllow},
      {"setsockopt IPV6_2292PKTOPTIONS", Call(54, {3, 41, 6}), Errno(EPERM), kAllow},
      {"setsockopt IPV6_V6ONLY", Call(54, {3, 41, 26}), kAllow, kAllow},
      {"ioctl SIOCGIFCONF", Call(16, {3, 0x8912}), kNotify, kAllow},
      {"ioctl SIOCGIFINDEX", Call(16, {3, 0x8933}), kNotify, kAllow},
      {"ioctl SIOCSIFFLAGS", Call(16, {3, 0x8914}), Errno(EPERM), kAllow},
      {"ioctl SIOCGSKNS", Call(16, {3, 0x894c}), Errno(EPERM), kAllow},
      {"ioctl SIOCOUTQNSD", Call(16, {3, 0x894b}), kAllow, kAllow},
      {"ioctl 0x89ff", Call(16, {3, 0x89ff}), Errno(EPERM), kAllow},
      {"ioctl 0x8a00", Call(16, {3, 0x8a00}), kAllow, kAllow},
      {"ioctl wireless 0x8b01", Call(16, {3, 0x8b01}), Errno(EPERM), kAllow},
      {"ioctl 0x8c00", Call(16, {3, 0x8c00}), kAllow, kAllow},
      {"ioctl FIONREAD", Call(16, {3, 0x541b}), kAllow, kAllow},
      {"getpid", Call(39, {}), kAllow, kAllow},
      // Other ABIs pass here: the main filter kills them.
      {"x32 connect", Call(0x40000000 | 42, {3, 0, 16}), kAllow, kAllow},
      {"i386 socketcall", Call(102, {1, 0}, AUDIT_ARCH_I386), kAllow, kAllow},
  };
  const std::vector<sock_filter> egress = BuildNetworkFilter(NetworkFilter::kEgress);
  const std::vector<sock_filter> isolated = BuildNetworkFilter(NetworkFilter::kIsolated);
  for (const Case& c : cases) {
    EXPECT_EQ(Evaluate(egress, c.call), c.egress) << "egress: " << c.what;
    EXPECT_EQ(Evaluate(isolated, c.call), c.isolated) << "isolated: " << c.what;
  }
}

// What every kind does, the host's network included: connect() waits for
// the unix gate, and unix datagram sockets are refused (whatever flags the
// type carries); other families pass with the host's network.
TEST(NetworkFilter, UnixInEveryMode) {
  const uint64_t kHigh = 1ULL << 32;
  const struct {
    const char* what;
    seccomp_data call;
    uint32_t verdict;        // every kind
    uint32_t host_verdict;   // kHost, where it differs
  } cases[] = {
      {"connect", Call(42, {3, 0, 16}), kNotify, kNotify},
      {"socket AF_UNIX stream", Call(41, {AF_UNIX, SOCK_STREAM, 0}), kAllow, kAllow},
      {"socket AF_UNIX seqpacket", Call(41, {AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0}), kAllow, kAllow},
      {"socket AF_UNIX dgram", Call(41, {AF_UNIX, SOCK_DGRAM, 0}), Errno(EACCES), Errno(EACCES)},
      {"socket AF_UNIX dgram|cloexec|nonblock", Call(41, {AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0}),
       Errno(EACCES), Errno(EACCES)},
      {"socket AF_UNIX dgram, high bits", Call(41, {kHigh | AF_UNIX, kHigh | SOCK_DGRAM, 0}), Errno(EACCES),
       Errno(EACCES)},
      {"socketpair AF_UNIX dgram", Call(53, {AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, 0}), Errno(EACCES), Errno(EACCES)},
      // The kernel makes a datagram socket of SOCK_RAW (the red team's way around a deny list).
      {"socket AF_UNIX raw", Call(41, {AF_UNIX, SOCK_RAW, 0}), Errno(EACCES), Errno(EACCES)},
      {"socketpair AF_UNIX raw", Call(53, {AF_UNIX, SOCK_RAW | SOCK_NONBLOCK, 0, 0}), Errno(EACCES), Errno(EACCES)},
      {"socket AF_UNIX rdm", Call(41, {AF_UNIX, SOCK_RDM, 0}), Errno(EACCES), Errno(EACCES)},
      {"socket AF_UNIX type 0", Call(41, {AF_UNIX, 0, 0}), Errno(EACCES), Errno(EACCES)},
      {"socketpair AF_UNIX stream", Call(53, {AF_UNIX, SOCK_STREAM, 0, 0}), kAllow, kAllow},
      {"socketpair AF_UNIX seqpacket", Call(53, {AF_UNIX, SOCK_SEQPACKET, 0, 0}), kAllow, kAllow},
      {"socket AF_INET udp", Call(41, {AF_INET, SOCK_DGRAM, 17}), kAllow, kAllow},
      {"socket AF_VSOCK", Call(41, {40, SOCK_STREAM, 0}), Errno(EAFNOSUPPORT), kAllow},
      {"socket AF_NETLINK generic", Call(41, {AF_NETLINK, SOCK_RAW, 16}), Errno(EPROTONOSUPPORT), kAllow},
      {"bind", Call(49, {3, 0, 16}), kAllow, kAllow},  // kEgress: notify (Verdicts)
      {"sendmsg", Call(46, {3, 0, 0}), kAllow, kAllow},
      // A connect hidden in a send: refused with a namespace of the sandbox's own.
      {"sendto MSG_FASTOPEN", Call(44, {3, 0, 1, 0x20000000}), Errno(EOPNOTSUPP), kAllow},
  };
  const std::vector<sock_filter> isolated = BuildNetworkFilter(NetworkFilter::kIsolated);
  const std::vector<sock_filter> host = BuildNetworkFilter(NetworkFilter::kHost);
  const std::vector<sock_filter> egress = BuildNetworkFilter(NetworkFilter::kEgress);
  for (const auto& c : cases) {
    EXPECT_EQ(Evaluate(isolated, c.call), c.verdict) << "isolated: " << c.what;
    EXPECT_EQ(Evaluate(host, c.call), c.host_verdict) << "host: " << c.what;
    if (c.call.nr != 49) {
      EXPECT_EQ(Evaluate(egress, c.call), c.verdict) << "egress: " << c.what;
    }
  }
}

}  // namespace
}  // namespace ward
