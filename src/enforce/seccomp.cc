#include "enforce/seccomp.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <map>
#include <memory>

#include "base/errors.h"
#include "base/unique_fd.h"
#include "net/file_calls.h"
#include "net/sandbox_net.h"

namespace ward {

namespace {

constexpr uint64_t kNamespaceFlags = CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
                                     CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP |
                                     0x00000080 /* CLONE_NEWTIME */;

// Unconditionally denied calls.
const std::vector<SeccompRule> kDenied = {
    {"mount", "the sandbox's mount table is fixed: no new mounts, no remounts that undo masks or read-only binds"},
    {"umount2", "unmounting a mask would reveal a denied path"},
    {"pivot_root", "changing the root is part of the mount family"},
    {"chroot", "changing the root is part of the mount family"},
    {"move_mount", "new mount API"},
    {"open_tree", "new mount API: could clone a mount tree"},
    {"fsopen", "new mount API"},
    {"fsconfig", "new mount API"},
    {"fsmount", "new mount API"},
    {"fspick", "new mount API: could reconfigure a superblock"},
    {"mount_setattr", "could clear read-only or nosuid on a mount"},
    {"setns", "joining another namespace"},
    {"ptrace", "tracing reads and writes another process's memory and registers"},
    {"process_vm_readv", "reads another process's memory"},
    {"process_vm_writev", "writes another process's memory"},
    {"kexec_load", "replaces the running kernel"},
    {"kexec_file_load", "replaces the running kernel"},
    {"init_module", "loads kernel code"},
    {"finit_module", "loads kernel code"},
    {"delete_module", "unloads kernel code"},
    {"bpf", "loads programs into the kernel; a large attack surface"},
    {"perf_event_open", "a large kernel attack surface and a side channel"},
    {"keyctl", "the kernel keyring is not namespaced: keys of other sandboxes and the host"},
    {"add_key", "the kernel keyring is not namespaced"},
    {"request_key", "the kernel keyring is not namespaced"},
    {"userfaultfd", "stalls kernel page faults at will: the classic exploit primitive for kernel races"},
    {"io_uring_setup", "io_uring operations bypass seccomp inspection"},
    {"io_uring_enter", "io_uring operations bypass seccomp inspection"},
    {"io_uring_register", "io_uring operations bypass seccomp inspection"},
    {"open_by_handle_at", "opens files by handle, bypassing path checks (the 'shocker' escape)"},
    {"name_to_handle_at", "companion of open_by_handle_at"},
    {"fanotify_init", "watches filesystem activity beyond the sandbox"},
    {"acct", "host-wide process accounting"},
    {"quotactl", "host filesystem quotas"},
    {"quotactl_fd", "host filesystem quotas"},
    {"reboot", "host power state"},
    {"swapon", "host memory"},
    {"swapoff", "host memory"},
    {"syslog", "the kernel log leaks host addresses and activity"},
    {"settimeofday", "the clock is not namespaced"},
    {"clock_settime", "the clock is not namespaced"},
    {"clock_adjtime", "the clock is not namespaced"},
    {"adjtimex", "the clock is not namespaced"},
    {"iopl", "raw I/O port access"},
    {"ioperm", "raw I/O port access"},
    {"uselib", "obsolete; a past source of kernel bugs"},
    {"ustat", "obsolete"},
    {"sysfs", "obsolete"},
    {"vhangup", "hangs up the terminal of others"},
    {"lookup_dcookie", "kernel profiling interface"},
    {"statmount", "new mount API: describes mounts beyond the sandbox's view"},
    {"listmount", "new mount API: lists mounts beyond the sandbox's view"},
    {"open_tree_attr", "new mount API: clones a mount tree with new attributes"},
};

// Denied only with certain arguments; listed here for the documentation.
const std::vector<SeccompRule> kConditional = {
    {"clone", "with any CLONE_NEW* flag: no new namespaces (user namespaces are the usual first step of kernel exploits)"},
    {"clone3", "always ENOSYS: its flags live in memory the filter cannot read, so libc falls back to clone()"},
    {"unshare", "with any CLONE_NEW* flag: no new namespaces"},
    {"ioctl", "TIOCSTI (injects input into a terminal) and TIOCLINUX (console selection/injection)"},
    {"personality", "anything but querying or the default Linux personalities: no disabling ASLR, no READ_IMPLIES_EXEC"},
    {"chmod", "with S_ISUID or S_ISGID in the mode: no setuid/setgid file may outlive the run (fchmod, fchmodat, fchmodat2 too)"},
    {"open", "creating a file (O_CREAT, O_TMPFILE) with S_ISUID or S_ISGID in its mode (openat, creat, mknod, mknodat too)"},
    {"socket", "unix sockets other than stream and seqpacket (datagram, and SOCK_RAW which the kernel makes a datagram socket), every mode (EACCES; socketpair too: each send may name any unix socket, see net/unix_gate.h); with network none or egress: families other than AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK (EAFNOSUPPORT: AF_VSOCK is not namespaced, AF_SMC wraps TCP); IPPROTO_SMC; netlink protocols other than NETLINK_ROUTE and NETLINK_SOCK_DIAG (EPROTONOSUPPORT: netfilter, xfrm, audit, uevents, generic netlink)"},
    {"connect", "waits for the supervisor, every mode: a pathname unix socket not served from inside the sandbox and not listed in filesystem.unix fails with EACCES (and an abstract one, with the host's network); ward makes every connect() itself, on its own copy of the socket and address (net/unix_gate.h)"},
    {"openat2", "always ENOSYS: its mode lives in memory the filter cannot read, so libc and programs fall back to openat()"},
};

// Calls that take a file mode, and the argument that holds it. A mode with
// S_ISUID or S_ISGID is refused: a writable grant of a root caller is
// id-mapped back to root, so a setuid file made there would be a setuid-root
// program on the host after the run (no_new_privs and nosuid only protect the
// sandbox itself). `flags` >= 0: the call creates only with O_CREAT or
// O_TMPFILE in that argument; -1: it always creates (or changes the mode).
struct ModeCall {
  const char* name;
  int nr;  // x86_64 number (libseccomp 2.5 does not know the newest names)
  int mode_arg;
  int flags_arg;
};
const ModeCall kModeCalls[] = {
    {"chmod", 90, 1, -1},    {"fchmod", 91, 1, -1},   {"fchmodat", 268, 2, -1}, {"fchmodat2", 452, 2, -1},
    {"creat", 85, 1, -1},    {"mknod", 133, 1, -1},   {"mknodat", 259, 2, -1},
    {"open", 2, 2, 1},       {"openat", 257, 3, 2},
};

struct CtxDeleter {
  void operator()(scmp_filter_ctx c) const { seccomp_release(c); }
};

Result<void> Check(int rc, const std::string& what) {
  if (rc < 0) return Error::Setup("seccomp: " + what + ": " + ErrnoName(-rc));
  return {};
}

}  // namespace

// personality(2): allow PER_LINUX (0), PER_LINUX32 (8), UNAME26 (0x20000),
// their combination and the 0xffffffff query; deny everything else (no
// ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, MMAP_PAGE_ZERO...).
//
// Written as raw BPF because libseccomp cannot express it: a rule may
// compare an argument only once, so "not any of these five values" has no
// libseccomp spelling. It is installed as a second filter; the kernel runs
// both and applies the stricter verdict.
std::vector<sock_filter> BuildPersonalityFilter(bool refuse_memfd) {
  constexpr uint32_t kArchX86_64 = 0xc000003e;  // AUDIT_ARCH_X86_64
  constexpr uint32_t kNr = 135;                 // __NR_personality on x86_64
  constexpr uint32_t kMemfdCreate = 319, kMemfdSecret = 447;  // x86_64
  constexpr uint32_t kArgLo = 16, kArgHi = 20;  // offsetof(seccomp_data, args[0]) (+4)
  constexpr uint32_t kAllow = 0x7fff0000U;      // SECCOMP_RET_ALLOW
  constexpr uint32_t kDeny = 0x00050000U | EPERM;  // SECCOMP_RET_ERRNO | EPERM
  constexpr uint32_t kNoSys = 0x00050000U | ENOSYS;  // SECCOMP_RET_ERRNO | ENOSYS
  std::vector<sock_filter> head = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 4),               // arch
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kArchX86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, kAllow),                   // other arches: the main filter kills
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),               // nr
  };
  if (refuse_memfd) {
    // Memory no mount bounds and ward's memory watch cannot see: refused as
    // a kernel without the call would (programs fall back to a file in
    // /dev/shm or /tmp, whose size is bounded). enforce/memory_watch.h.
    head.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kMemfdCreate, 1, 0));
    head.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kMemfdSecret, 0, 1));
    head.push_back(BPF_STMT(BPF_RET | BPF_K, kNoSys));
  }
  std::vector<sock_filter> personality = {
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kNr, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, kAllow),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kArgHi),          // the kernel reads an unsigned int,
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0),        // but be strict: high half must be 0
      BPF_STMT(BPF_RET | BPF_K, kDeny),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kArgLo),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x0, 5, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x8, 4, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x20000, 3, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x20008, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xffffffff, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, kDeny),
      BPF_STMT(BPF_RET | BPF_K, kAllow),
  };
  head.insert(head.end(), personality.begin(), personality.end());
  return head;
}

namespace {

// A little BPF assembler with named forward jumps, for the network filter
// below: its jump offsets would be error-prone to count by hand.
class BpfProgram {
 public:
  void Load(uint32_t offset) { code_.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offset)); }
  void Return(uint32_t action) { code_.push_back(BPF_STMT(BPF_RET | BPF_K, action)); }
  // Jumps to `label` if the accumulator == k (jeq), >= k (jge) or has a bit
  // of k set (jset); falls through otherwise. JumpUnless: the opposite.
  void JumpIf(uint16_t op, uint32_t k, const std::string& label) { Jump(op, k, label, true); }
  void JumpUnless(uint16_t op, uint32_t k, const std::string& label) { Jump(op, k, label, false); }
  void And(uint32_t k) { code_.push_back(BPF_STMT(BPF_ALU | BPF_AND | BPF_K, k)); }
  void Label(const std::string& name) { labels_[name] = code_.size(); }
  std::vector<sock_filter> Finish() {
    for (const Fixup& f : fixups_) {
      size_t target = labels_.at(f.label);
      // Forward only, and at most 255 instructions ahead: a program that
      // breaks this is a bug in this file, which every run would hit.
      if (target <= f.at || target - f.at - 1 > 255) std::abort();
      uint8_t offset = static_cast<uint8_t>(target - f.at - 1);
      (f.when_true ? code_[f.at].jt : code_[f.at].jf) = offset;
    }
    return code_;
  }

 private:
  struct Fixup {
    size_t at;
    std::string label;
    bool when_true;
  };
  void Jump(uint16_t op, uint32_t k, const std::string& label, bool when_true) {
    fixups_.push_back({code_.size(), label, when_true});
    code_.push_back(BPF_JUMP(BPF_JMP | op | BPF_K, k, 0, 0));
  }
  std::vector<sock_filter> code_;
  std::map<std::string, size_t> labels_;
  std::vector<Fixup> fixups_;
};

}  // namespace


// Written as raw BPF (with the assembler above) rather than with libseccomp:
// it is built before clone() on every run, and its tests of flag bits and
// ranges are a few instructions.
std::vector<sock_filter> BuildNetworkFilter(NetworkFilter kind, bool notify_exec, bool notify_files) {
  constexpr uint32_t kArchX86_64 = 0xc000003e;  // AUDIT_ARCH_X86_64
  // x86_64 system call numbers.
  constexpr uint32_t kIoctl = 16, kSocket = 41, kConnect = 42, kSendto = 44, kSendmsg = 46, kBind = 49,
                     kListen = 50, kSocketpair = 53, kSetsockopt = 54, kSendmmsg = 307, kExecve = 59,
                     kExecveat = 322;
  auto arg = [](int i) { return static_cast<uint32_t>(16 + 8 * i); };  // offsetof(seccomp_data, args[i]), low half
  constexpr uint32_t kAllow = 0x7fff0000U;   // SECCOMP_RET_ALLOW
  constexpr uint32_t kNotify = 0x7fc00000U;  // SECCOMP_RET_USER_NOTIF
  auto errno_ret = [](int e) { return 0x00050000U | static_cast<uint32_t>(e); };  // SECCOMP_RET_ERRNO
  constexpr uint32_t kIpprotoSmc = 256;      // socket(AF_INET, SOCK_STREAM, IPPROTO_SMC), Linux 6.11
  constexpr uint32_t kFastOpen = 0x20000000; // MSG_FASTOPEN
  constexpr uint32_t kSockTypeMask = 0xf;    // SOCK_TYPE_MASK: the type without SOCK_CLOEXEC/SOCK_NONBLOCK
  constexpr uint32_t kSolSocket = 1, kSoBindToDevice = 25, kSoBindToIfindex = 62;
  constexpr uint32_t kSolIp = 0, kIpOptions = 4, kIpUnicastIf = 50;
  constexpr uint32_t kSolIpv6 = 41, kIpv6_2292Rthdr = 5, kIpv6_2292PktOptions = 6, kIpv6Rthdr = 57,
                     kIpv6UnicastIf = 76;
  constexpr uint32_t kSolTcp = 6, kTcpUlp = 31;
  constexpr uint32_t kSiocOutqNsd = 0x894b;  // a socket's unsent bytes: harmless, used by servers
  const bool egress = kind == NetworkFilter::kEgress;
  const bool host = kind == NetworkFilter::kHost;

  BpfProgram p;
  p.Load(4);  // arch
  p.JumpUnless(BPF_JEQ, kArchX86_64, "allow");  // other arches: the main filter kills
  p.Load(0);  // nr (x32 numbers match none of these: the main filter kills)
  p.JumpIf(BPF_JEQ, kSocket, "socket");
  p.JumpIf(BPF_JEQ, kSocketpair, "socketpair");
  p.JumpIf(BPF_JEQ, kConnect, "notify");  // every mode: the unix gate (net/unix_gate.h)
  if (notify_exec) {
    p.JumpIf(BPF_JEQ, kExecve, "notify");
    p.JumpIf(BPF_JEQ, kExecveat, "notify");
  }
  if (notify_files) {
    for (int nr : net::kFileCalls) p.JumpIf(BPF_JEQ, static_cast<uint32_t>(nr), "notify");
  }
  if (!host) {
    // A connect hidden in a send (TCP Fast Open) would not wait for the
    // supervisor as every connect() does.
    p.JumpIf(BPF_JEQ, kSendto, "flags-arg3");
    p.JumpIf(BPF_JEQ, kSendmmsg, "flags-arg3");
    p.JumpIf(BPF_JEQ, kSendmsg, "flags-arg2");
  }
  if (egress) {
    p.JumpIf(BPF_JEQ, kBind, "notify");
    p.JumpIf(BPF_JEQ, kListen, "notify");
    p.JumpIf(BPF_JEQ, kSetsockopt, "setsockopt");
    p.JumpIf(BPF_JEQ, kIoctl, "ioctl");
  }
  p.Label("allow");
  p.Return(kAllow);

  // socket(): the families that stay inside the sandbox's network namespace
  // and its filesystem. Others are not namespaced (AF_VSOCK reaches the
  // hypervisor's services), or could wrap a TCP connection in a protocol no
  // connect() rule sees (AF_SMC, IPPROTO_SMC). With the host's network,
  // any family but unix datagram sockets.
  p.Label("socket");
  p.Load(arg(0));
  p.JumpIf(BPF_JEQ, AF_UNIX, "unix-type");
  if (host) p.Return(kAllow);
  p.JumpIf(BPF_JEQ, AF_INET, "socket-protocol");
  p.JumpIf(BPF_JEQ, AF_INET6, "socket-protocol");
  p.JumpIf(BPF_JEQ, AF_NETLINK, "socket-netlink");
  p.Return(errno_ret(EAFNOSUPPORT));
  // Unix sockets (socket() and socketpair()): stream and seqpacket only.
  // Every send on a datagram socket can name its destination (sendmsg's
  // msg_name, which a filter cannot read), a connected socket's too, so no
  // connect() check could hold it to the sandbox's own sockets
  // (net/unix_gate.h); and the kernel makes a datagram socket of SOCK_RAW
  // too. Stream and seqpacket sockets ignore a send's address. An allow
  // list: whatever type a later kernel maps, it is refused.
  p.Label("socketpair");
  p.Load(arg(0));
  p.JumpUnless(BPF_JEQ, AF_UNIX, "allow-socket");
  p.Label("unix-type");
  p.Load(arg(1));
  p.And(kSockTypeMask);
  p.JumpIf(BPF_JEQ, SOCK_STREAM, "unix-ok");
  p.JumpUnless(BPF_JEQ, SOCK_SEQPACKET, "no-unix-dgram");
  p.Label("unix-ok");
  if (host) p.Return(kAllow);
  p.Label("socket-protocol");
  p.Load(arg(2));
  p.JumpIf(BPF_JEQ, kIpprotoSmc, "no-protocol");
  p.Label("allow-socket");
  p.Return(kAllow);
  p.Label("no-protocol");
  p.Return(errno_ret(EPROTONOSUPPORT));
  p.Label("no-unix-dgram");
  p.Return(errno_ret(EACCES));
  // Netlink: the routing questions programs ask (getifaddrs, `ip addr`) and
  // socket diagnostics (`ss`), both about the sandbox's own namespace.
  // Netfilter, xfrm, audit, uevents, generic netlink (a family per kernel
  // subsystem) and the rest are no agent workload's business.
  p.Label("socket-netlink");
  p.Load(arg(2));
  p.JumpIf(BPF_JEQ, 0 /* NETLINK_ROUTE */, "allow-socket2");
  p.JumpIf(BPF_JEQ, 4 /* NETLINK_SOCK_DIAG */, "allow-socket2");
  p.Return(errno_ret(EPROTONOSUPPORT));
  p.Label("allow-socket2");
  p.Return(kAllow);
  p.Label("notify");  // connect (every mode); bind, listen (egress): made by ward (net/connect_notify.h)
  p.Return(kNotify);
  if (host) return p.Finish();

  p.Label("flags-arg3");  // sendto, sendmmsg: a connect inside a send
  p.Load(arg(3));
  p.JumpIf(BPF_JSET, kFastOpen, "no-fastopen");
  p.Return(kAllow);
  p.Label("flags-arg2");  // sendmsg
  p.Load(arg(2));
  p.JumpIf(BPF_JSET, kFastOpen, "no-fastopen");
  p.Return(kAllow);
  p.Label("no-fastopen");
  p.Return(errno_ret(EOPNOTSUPP));
  if (!egress) return p.Finish();

  // setsockopt: the options that would send a connected socket's packets
  // somewhere else, or turn it into something else. On a direct socket (in
  // the host's namespace) they would reach past the one allowed peer: a
  // routing header (IPV6_RTHDR, and its RFC 2292 forms) or IPv4 source
  // route (IP_OPTIONS) names other hops; SO_BINDTODEVICE, SO_BINDTOIFINDEX
  // and the *_UNICAST_IF options pick a host interface (and tell which
  // exist); TCP_ULP turns TCP into SMC or TLS, which a later connect() would
  // not be judged as.
  const struct {
    uint32_t level;
    std::vector<uint32_t> names;
  } kRefusedOptions[] = {
      {kSolSocket, {kSoBindToDevice, kSoBindToIfindex}},
      {kSolIp, {kIpOptions, kIpUnicastIf}},
      {kSolIpv6, {kIpv6_2292Rthdr, kIpv6_2292PktOptions, kIpv6Rthdr, kIpv6UnicastIf}},
      {kSolTcp, {kTcpUlp}},
  };
  p.Label("setsockopt");
  p.Load(arg(1));
  for (const auto& o : kRefusedOptions) p.JumpIf(BPF_JEQ, o.level, "sockopt-" + std::to_string(o.level));
  p.Return(kAllow);
  for (const auto& o : kRefusedOptions) {
    p.Label("sockopt-" + std::to_string(o.level));
    p.Load(arg(2));
    for (uint32_t name : o.names) p.JumpIf(BPF_JEQ, name, "no-sockopt");
    p.Return(kAllow);
  }
  p.Label("no-sockopt");
  p.Return(errno_ret(EPERM));
  // ioctl: the interface, route and ARP requests (0x8910-0x89ff) and the
  // wireless ones (0x8b00-0x8bff) act on a socket's namespace; on a direct
  // socket that is the host's (its interfaces, addresses, MACs, neighbours).
  // The read-only interface questions are answered by ward, from the
  // sandbox's namespace whatever the socket (net/connect_notify.h); the rest
  // are refused.
  p.Label("ioctl");
  p.Load(arg(1));
  p.JumpIf(BPF_JEQ, kSiocOutqNsd, "allow-ioctl");
  for (uint32_t question : net::kInterfaceQuestions) p.JumpIf(BPF_JEQ, question, "ioctl-notify");
  p.JumpUnless(BPF_JGE, 0x8910, "allow-ioctl");
  p.JumpUnless(BPF_JGE, 0x8a00, "no-ioctl");
  p.JumpUnless(BPF_JGE, 0x8b00, "allow-ioctl");
  p.JumpUnless(BPF_JGE, 0x8c00, "no-ioctl");
  p.Label("allow-ioctl");
  p.Return(kAllow);
  p.Label("ioctl-notify");
  p.Return(kNotify);
  p.Label("no-ioctl");
  p.Return(errno_ret(EPERM));
  return p.Finish();
}

const std::vector<SeccompRule>& SeccompDenyList() {
  static const std::vector<SeccompRule> all = [] {
    auto v = kDenied;
    v.insert(v.end(), kConditional.begin(), kConditional.end());
    return v;
  }();
  return all;
}

Result<std::vector<sock_filter>> BuildSeccompFilter() {
  std::unique_ptr<void, CtxDeleter> ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) return Error::Setup("seccomp_init failed");
  scmp_filter_ctx c = ctx.get();
  // Only the native x86_64 ABI: i386 (int 0x80) and x32 calls kill the
  // process instead of being evaluated against a table they do not match.
  WARD_TRY(Check(seccomp_attr_set(c, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS), "badarch action"));
  // A binary tree of syscall numbers instead of a linear scan: fewer
  // instructions per call, and a faster load (the kernel emulates the filter
  // for every syscall number to build its allow cache).
  WARD_TRY(Check(seccomp_attr_set(c, SCMP_FLTATR_CTL_OPTIMIZE, 2), "optimize"));
  const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
  // Linux 6.8+ calls that libseccomp 2.5 does not name (x86_64 numbers).
  const std::map<std::string, int> kNewer = {{"statmount", 457}, {"listmount", 458}, {"open_tree_attr", 467}};
  for (const auto& r : kDenied) {
    int nr = kNewer.count(r.syscall) ? kNewer.at(r.syscall) : seccomp_syscall_resolve_name(r.syscall);
    if (nr == __NR_SCMP_ERROR) return Error::Setup(std::string("seccomp: unknown syscall ") + r.syscall);
    WARD_TRY(Check(seccomp_rule_add(c, eperm, nr, 0), r.syscall));
  }
  WARD_TRY(Check(seccomp_rule_add(c, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0), "clone3"));
  // Each CLONE_NEW* bit gets its own rule: any one of them set is denied.
  for (uint64_t bit = 1; bit != 0; bit <<= 1) {
    if (!(kNamespaceFlags & bit)) continue;
    WARD_TRY(Check(seccomp_rule_add(c, eperm, SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, bit, bit)), "clone"));
    WARD_TRY(Check(seccomp_rule_add(c, eperm, SCMP_SYS(unshare), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, bit, bit)), "unshare"));
  }
  // The ioctl request is an unsigned int; compare its low 32 bits only.
  for (uint64_t req : {uint64_t{TIOCSTI}, uint64_t{TIOCLINUX}}) {
    WARD_TRY(Check(seccomp_rule_add(c, eperm, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, req)), "ioctl"));
  }
  WARD_TRY(Check(seccomp_rule_add(c, SCMP_ACT_ERRNO(ENOSYS), 437 /* openat2 */, 0), "openat2"));
  // Setuid and setgid bits: each bit, and each way of creating, its own rule.
  constexpr uint64_t kCreateFlags[] = {O_CREAT, 020000000 /* __O_TMPFILE */};
  for (const ModeCall& m : kModeCalls) {
    for (uint64_t bit : {uint64_t{S_ISUID}, uint64_t{S_ISGID}}) {
      scmp_arg_cmp mode{static_cast<unsigned>(m.mode_arg), SCMP_CMP_MASKED_EQ, bit, bit};
      if (m.flags_arg < 0) {
        WARD_TRY(Check(seccomp_rule_add(c, eperm, m.nr, 1, mode), m.name));
        continue;
      }
      for (uint64_t create : kCreateFlags) {
        scmp_arg_cmp flags{static_cast<unsigned>(m.flags_arg), SCMP_CMP_MASKED_EQ, create, create};
        WARD_TRY(Check(seccomp_rule_add(c, eperm, m.nr, 2, flags, mode), m.name));
      }
    }
  }
  // libseccomp 2.5 exports only to a file descriptor; a pipe keeps it in memory.
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return SysError("pipe2", "seccomp export");
  UniqueFd rd(p[0]), wr(p[1]);
  fcntl(wr.get(), F_SETPIPE_SZ, 1 << 20);
  WARD_TRY(Check(seccomp_export_bpf(c, wr.get()), "export"));
  wr.Reset();
  std::vector<sock_filter> prog;
  sock_filter buf[256];
  for (;;) {
    ssize_t n = read(rd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return SysError("read", "seccomp export");
    if (n == 0) break;
    prog.insert(prog.end(), buf, buf + n / sizeof(sock_filter));
  }
  if (prog.empty()) return Error::Setup("seccomp: exported an empty program");
  return prog;
}

}  // namespace ward
