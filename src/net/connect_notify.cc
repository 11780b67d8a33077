#include "net/connect_notify.h"

#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "base/errors.h"
#include "base/file.h"
#include "base/unique_fd.h"
#include "net/exec_notice.h"
#include "net/file_notice.h"
#include "net/sandbox_net.h"
#include "net/seccomp_notice.h"
#include "net/unix_gate.h"
#include "net/socket_io.h"

namespace ward::net {
namespace {

// Whether descriptor `fd` of `pid` is close-on-exec (the "flags:" line of
// its fdinfo), so that the direct socket put in its place keeps that.
bool CloseOnExec(pid_t pid, int fd) {
  std::optional<std::string> info = ReadFile("/proc/" + std::to_string(pid) + "/fdinfo/" + std::to_string(fd));
  size_t flags = info ? info->find("flags:") : std::string::npos;
  if (flags == std::string::npos) return true;
  return (strtoul(info->c_str() + flags + 6, nullptr, 8) & O_CLOEXEC) != 0;
}

int IntOption(int fd, int level, int name) {
  int v = 0;
  socklen_t len = sizeof v;
  return getsockopt(fd, level, name, &v, &len) == 0 ? v : -1;
}

// The options a program may set before connect() that shape the connection
// it gets. Copied to the direct socket where they differ from a new
// socket's: every other option can still be set on the socket it ends up
// with. Not copied: TCP_FASTOPEN_CONNECT (ward connects before returning).
// A socket bound to an address or port takes the proxy's way (IsBound);
// SO_BINDTODEVICE needs a capability the program does not hold.
struct OptionSpec {
  int level, name;
};
constexpr OptionSpec kCopied[] = {
    {SOL_SOCKET, SO_KEEPALIVE},       {SOL_SOCKET, SO_LINGER},         {SOL_SOCKET, SO_RCVTIMEO},
    {SOL_SOCKET, SO_SNDTIMEO},        {SOL_SOCKET, SO_OOBINLINE},      {SOL_SOCKET, SO_PRIORITY},
    {SOL_SOCKET, SO_RCVLOWAT},        {SOL_SOCKET, SO_ZEROCOPY},       {IPPROTO_TCP, TCP_NODELAY},
    {IPPROTO_TCP, TCP_CORK},          {IPPROTO_TCP, TCP_KEEPIDLE},     {IPPROTO_TCP, TCP_KEEPINTVL},
    {IPPROTO_TCP, TCP_KEEPCNT},       {IPPROTO_TCP, TCP_USER_TIMEOUT}, {IPPROTO_TCP, TCP_NOTSENT_LOWAT},
    {IPPROTO_TCP, TCP_CONGESTION},    {IPPROTO_TCP, TCP_MAXSEG},       {IPPROTO_TCP, TCP_WINDOW_CLAMP},
    {IPPROTO_IP, IP_TOS},             {IPPROTO_IP, IP_TTL},            {IPPROTO_IPV6, IPV6_TCLASS},
    {IPPROTO_IPV6, IPV6_UNICAST_HOPS}, {IPPROTO_IPV6, IPV6_V6ONLY},
};

void CopyOptions(int from, int to, int domain) {
  UniqueFd fresh(socket(domain, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP));
  if (!fresh.valid()) return;
  for (const OptionSpec& o : kCopied) {
    if ((o.level == IPPROTO_IP && domain != AF_INET) || (o.level == IPPROTO_IPV6 && domain != AF_INET6)) continue;
    char want[64] = {}, base[64] = {};
    socklen_t want_len = sizeof want, base_len = sizeof base;
    if (getsockopt(from, o.level, o.name, want, &want_len) != 0) continue;
    if (getsockopt(fresh.get(), o.level, o.name, base, &base_len) != 0) continue;
    if (want_len == base_len && memcmp(want, base, want_len) == 0) continue;
    (void)setsockopt(to, o.level, o.name, want, want_len);
  }
  // Buffer sizes read back doubled (the kernel's bookkeeping share): set
  // what the program set.
  for (int name : {SO_SNDBUF, SO_RCVBUF}) {
    int want = IntOption(from, SOL_SOCKET, name), base = IntOption(fresh.get(), SOL_SOCKET, name);
    if (want > 0 && want != base) {
      int set = want / 2;
      (void)setsockopt(to, SOL_SOCKET, name, &set, sizeof set);
    }
  }
}

// Whether the program bound its socket (an address or a port) before
// connecting: that binding belongs to the sandbox's namespace.
bool IsBound(int fd) {
  sockaddr_storage sa{};
  socklen_t len = sizeof sa;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) return true;
  uint16_t port = 0;
  IpAddress a = FromSockaddr(sa, &port);
  bool any = a.is_v4() ? a == IpAddress::V4(0, 0, 0, 0) : a == *IpAddress::Parse("::");
  return port != 0 || !any;
}

// The address of `target`:`port` for a socket of family `domain`: an IPv6
// socket reaches an IPv4 address by its v4-mapped form (ToSockaddr would
// give an IPv4 sockaddr, which it refuses). 0 if an IPv4 socket cannot
// reach `target`.
socklen_t TargetAddress(int domain, const IpAddress& target, uint16_t port, sockaddr_storage* sa) {
  IpAddress to = target.Unmapped();
  *sa = {};
  if (domain == AF_INET) return to.is_v4() ? ToSockaddr(to, port, sa) : 0;
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(sa);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  if (to.is_v4()) {
    sin6->sin6_addr.s6_addr[10] = 0xff;
    sin6->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&sin6->sin6_addr.s6_addr[12], to.bytes.data(), 4);
  } else {
    memcpy(&sin6->sin6_addr, to.bytes.data(), 16);
  }
  return sizeof(sockaddr_in6);
}

// After a handshake that a non-blocking connect() started on `fd` has
// ended with `err`: leaves the socket as a blocking connect() would, moved
// to the connected state by one more connect() (a later connect() says
// EISCONN), or unconnected again after a failure (with `reset_on_failure`;
// for a socket ward discards anyway, no need).
void SettleConnect(int fd, const sockaddr* sa, socklen_t len, int err, bool reset_on_failure) {
  if (err == 0) {
    (void)connect(fd, sa, len);
  } else if (reset_on_failure) {
    sockaddr unspec{};
    unspec.sa_family = AF_UNSPEC;
    (void)connect(fd, &unspec, sizeof unspec);
  }
}

// The time a blocking connect() on `fd` may take (SO_SNDTIMEO), in ms; -1:
// until TCP gives up.
int SendTimeoutMs(int fd) {
  timeval tv{};
  socklen_t len = sizeof tv;
  if (getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len) != 0 || (tv.tv_sec == 0 && tv.tv_usec == 0)) return -1;
  int64_t ms = static_cast<int64_t>(tv.tv_sec) * 1000 + tv.tv_usec / 1000;
  return static_cast<int>(std::min<int64_t>(ms, INT_MAX));
}

constexpr int kMaxScannedDescriptors = 256;
constexpr int kIpprotoMptcp = 262;  // IPPROTO_MPTCP (Linux 5.6; not in every libc's headers)

// Whether the program holds socket `fd` (inode `ino`) anywhere else: another
// descriptor, or a registration in one of its epoll instances (Go, Netty and
// Boost.Asio register a socket before connecting it). A direct socket
// replaces only the one descriptor, so such a socket keeps its own and takes
// the proxy's way.
bool HeldElsewhere(pid_t pid, int fd, ino_t ino) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/fd", pid);
  DIR* dir = opendir(path);
  if (!dir) return true;
  char want[64], want_epoll[32];
  snprintf(want, sizeof want, "socket:[%lu]", static_cast<unsigned long>(ino));
  snprintf(want_epoll, sizeof want_epoll, " ino:%lx ", static_cast<unsigned long>(ino));
  bool held = false;
  int seen = 0;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    // A program with many descriptors (a server) takes the proxy's way
    // rather than ward reading them all on every connect().
    if (++seen > kMaxScannedDescriptors) {
      held = true;
      break;
    }
    int n = atoi(e->d_name);
    if (n == fd) continue;
    char link[96], target[128];
    snprintf(link, sizeof link, "/proc/%d/fd/%d", pid, n);
    ssize_t len = readlink(link, target, sizeof target - 1);
    if (len <= 0) continue;
    target[len] = 0;
    if (strcmp(target, want) == 0) held = true;
    if (!held && strcmp(target, "anon_inode:[eventpoll]") == 0) {
      snprintf(link, sizeof link, "/proc/%d/fdinfo/%d", pid, n);
      std::string info = ReadFile(link).value_or("");
      for (char& c : info) {
        if (c == '\n' || c == '\t') c = ' ';
      }
      if (info.find(want_epoll) != std::string::npos) held = true;
    }
    if (held) break;
  }
  closedir(dir);
  return held;
}

struct ConnectJob {
  Notice notice;
  UniqueFd sock;  // the program's socket (ward's copy of its descriptor)
  int domain = AF_INET;
  sockaddr_storage address{};
  socklen_t address_len = 0;
  bool cloexec = true;  // the program's descriptor's close-on-exec flag
  std::optional<DirectPlan> plan;
  // Server first: the destination and the decision before the first bytes.
  std::optional<EgressEvent> server_first;
  IpAddress dst;
  uint16_t port = 0;
  UniqueFd server;  // the connection to the server, being made
  // The program's SO_SNDTIMEO ran out first: its blocking connect() says
  // EINPROGRESS, as the kernel's would, while the handshake goes on.
  bool answer_in_progress = false;
};

// The TCP state of `fd` (TCP_CLOSE for an unconnected socket), -1 (and
// errno) if it cannot be read.
int TcpState(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 ? info.tcpi_state : -1;
}

// How the handshake of a connecting socket stands now, without waiting: 0
// or its error when over, EINPROGRESS while under way.
int HandshakeNow(int fd) {
  pollfd ready{fd, POLLOUT, 0};
  if (poll(&ready, 1, 0) != 1) return EINPROGRESS;
  int err = 0;
  socklen_t len = sizeof err;
  return getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 ? err : errno;
}

// The port a bind() asks for: at the same offset in sockaddr_in and
// sockaddr_in6 (and in the AF_UNSPEC form an IPv4 socket accepts).
uint16_t RequestedPort(const sockaddr_storage& sa, socklen_t len) {
  if (len < 4) return 0;
  uint16_t port;
  memcpy(&port, reinterpret_cast<const char*>(&sa) + 2, sizeof port);
  return ntohs(port);
}


// connect() calls waited for at once: every one to a slow or silent server
// holds one (a thread, mostly idle) for up to the connect timeout.
constexpr int kMaxWorkers = 1024;
// How long a non-blocking connect() waits for its server (server first, see
// connect_notify.h): a refusal or a handshake takes one round trip, and
// most round trips are shorter.
constexpr int kServerFirstWaitMs = 250;
constexpr int kServerFirstSliceMs = 5;

class Server : public std::enable_shared_from_this<Server> {
 public:
  Server(int notify_fd, int stop_fd, const SandboxNetwork& sandbox, int connect_timeout_ms, ConnectNotifyHooks& hooks,
         UnixGate& gate, const CallObservers& observers)
      : notify_fd_(notify_fd),
        stop_fd_(stop_fd),
        sandbox_(sandbox),
        connect_timeout_ms_(connect_timeout_ms),
        hooks_(hooks),
        gate_(gate),
        observers_(observers) {}

  void Run() {
    seccomp_notif_sizes sizes{};
    if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) != 0) return;
    size_t size = std::max<size_t>(sizes.seccomp_notif, sizeof(seccomp_notif));
    std::unique_ptr<char[]> buf(new char[size]);
    auto* req = reinterpret_cast<seccomp_notif*>(buf.get());
    // The caller waits for this thread's answer: the kernel wakes this
    // thread on the caller's CPU, switching to it at once (Linux 6.6), which
    // saves a cross-CPU wake-up per call (an exec-heavy workload is mostly
    // such waits). Older kernels: EINVAL, and the default wake-up.
    constexpr unsigned long kNotifSetFlags = _IOW('!', 4, uint64_t);  // SECCOMP_IOCTL_NOTIF_SET_FLAGS
    constexpr uint64_t kSyncWakeUp = 1;                               // SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
    (void)ioctl(notify_fd_, kNotifSetFlags, kSyncWakeUp);
    for (;;) {
      pollfd pfd[2] = {{notify_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
      if (poll(pfd, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (pfd[1].revents != 0) return;  // stopping
      // No process left that could call (the filter's last user exited):
      // POLLHUP without POLLIN. Waiting on would spin, as RECV then fails
      // at once.
      if (!(pfd[0].revents & POLLIN)) return;
      memset(buf.get(), 0, size);
      if (ioctl(notify_fd_, SECCOMP_IOCTL_NOTIF_RECV, req) != 0) {
        if (errno == EINTR || errno == ENOENT) continue;  // ENOENT: the caller went away
        return;
      }
      Notice n;
      n.notify_fd = notify_fd_;
      n.id = req->id;
      n.pid = static_cast<pid_t>(req->pid);
      n.nr = req->data.nr;
      memcpy(n.args, req->data.args, sizeof n.args);
      Handle(n);
    }
  }

 private:
  // Runs on the notification thread and never blocks: what must wait (a
  // handshake) waits on a worker.
  // An execve()/execveat(): recorded, then made by the kernel as asked
  // (exec_notice.h says why this is a record, not a decision).
  void OnExec(const Notice& n) {
    if (!observers_.on_exec) return Answer(n, 0, /*continue_call=*/true);
    ProcessExec e = ReadExecNotice(n);
    // Interrupted meanwhile: the thread id may name another thread now, and
    // a restarted call comes back as a new notification.
    if (!StillWaiting(n)) return;
    Answer(n, 0, /*continue_call=*/true);
    observers_.on_exec(std::move(e));
  }

  // A file system call (`ward learn`): recorded, then made by the kernel.
  void OnFile(const Notice& n) {
    if (!observers_.on_file) return Answer(n, 0, /*continue_call=*/true);
    std::vector<FileAccess> accesses = ReadFileNotice(n, observers_.file_pids);
    if (!StillWaiting(n)) return;
    Answer(n, 0, /*continue_call=*/true);
    for (auto& a : accesses) observers_.on_file(std::move(a));
  }

  void Handle(const Notice& n) {
    if (n.nr == SYS_execve || n.nr == SYS_execveat) return OnExec(n);
    if (IsFileCall(n.nr)) return OnFile(n);
    UniqueFd pidfd = OpenPidfd(n.pid);
    int open_errno = errno;
    // Checked after opening the pidfd: the thread id still names the caller.
    if (!StillWaiting(n)) return;
    if (!pidfd.valid()) return Answer(n, open_errno);
    UniqueFd sock(static_cast<int>(syscall(SYS_pidfd_getfd, pidfd.get(), static_cast<int>(n.args[0]), 0)));
    if (!sock.valid()) return Answer(n, errno);
    struct stat st{};
    bool is_socket = fstat(sock.get(), &st) == 0 && S_ISSOCK(st.st_mode);
    if (n.nr == SYS_ioctl) return AnswerInterfaceQuestion(n, is_socket ? IntOption(sock.get(), SOL_SOCKET, SO_DOMAIN) : -1);
    if (!is_socket) return Answer(n, ENOTSOCK);
    int domain = 0;
    socklen_t domain_len = sizeof domain;
    if (getsockopt(sock.get(), SOL_SOCKET, SO_DOMAIN, &domain, &domain_len) != 0) return Answer(n, errno);  // O_PATH: EBADF
    uint64_t netns = NetnsCookie(sock.get());
    if (netns == 0 || netns != sandbox_.netns) return OnDirectSocket(n, std::move(sock));
    if (n.nr == SYS_listen) return Answer(n, listen(sock.get(), static_cast<int>(n.args[1])) == 0 ? 0 : errno);
    if (n.nr != SYS_connect && n.nr != SYS_bind) return Answer(n, ENOSYS);

    if (domain == AF_UNIX && n.nr == SYS_connect) return gate_.Connect(n, pidfd.get(), std::move(sock), stop_fd_, hooks_);
    if (domain != AF_INET && domain != AF_INET6 && n.nr == SYS_connect) {
      // Netlink (the only other family the filter lets the sandbox create):
      // made by ward on its copy of the socket, with its copy of the
      // address, like every connect(): a connect() the kernel made for the
      // workload could meet another socket swapped into the descriptor.
      sockaddr_storage sa{};
      if (n.args[2] > sizeof sa) return Answer(n, EINVAL);
      socklen_t len = static_cast<socklen_t>(n.args[2]);
      if (len > 0 && !ReadMemory(n.pid, n.args[1], &sa, len)) return Answer(n, EFAULT);
      if (!StillWaiting(n)) return;
      // A peer other than the kernel (a portid, multicast groups) needs
      // CAP_NET_ADMIN, which the kernel would check on the caller: ward,
      // which has it over the sandbox's namespace. The workload has none:
      // refused as the kernel would refuse it (EPERM). Otherwise it could
      // send to any netlink socket of its namespace, ward's own included.
      if (domain == AF_NETLINK && len >= sizeof(sockaddr_nl)) {
        const auto* nl = reinterpret_cast<const sockaddr_nl*>(&sa);
        if (nl->nl_family == AF_NETLINK && (nl->nl_pid != 0 || nl->nl_groups != 0)) return Answer(n, EPERM);
      }
      return Answer(n, connect(sock.get(), reinterpret_cast<sockaddr*>(&sa), len) == 0 ? 0 : errno);
    }
    if (domain != AF_INET && domain != AF_INET6) {
      // bind() of a unix or netlink socket: the kernel makes it, in the
      // sandbox's namespace and root, under landlock (which governs where a
      // unix socket may be made). Should another thread swap another socket
      // into the descriptor meanwhile, the kernel binds that one as the
      // workload could itself: landlock refuses a direct socket any TCP
      // bind, and the workload holds no capability for a privileged port.
      return Answer(n, 0, /*continue_call=*/true);
    }
    // IPv4 and IPv6, every protocol: ward makes the call on the program's
    // socket, with its own copy of the address.
    auto job = std::make_shared<ConnectJob>();
    job->notice = n;
    job->domain = domain;
    if (n.args[2] > sizeof job->address) return Answer(n, EINVAL);
    job->address_len = static_cast<socklen_t>(n.args[2]);
    if (job->address_len > 0 && !ReadMemory(n.pid, n.args[1], &job->address, job->address_len)) {
      return Answer(n, EFAULT);
    }
    if (!StillWaiting(n)) return;  // the memory read was the caller's
    job->sock = std::move(sock);
    if (n.nr == SYS_bind) return Bind(*job);

    // MPTCP is TCP to the peer (and falls back to it): a direct socket for
    // it is a TCP one, like the program would get from a server without
    // MPTCP.
    const int protocol = IntOption(job->sock.get(), SOL_SOCKET, SO_PROTOCOL);
    bool tcp = IntOption(job->sock.get(), SOL_SOCKET, SO_TYPE) == SOCK_STREAM &&
               (protocol == IPPROTO_TCP || protocol == kIpprotoMptcp);
    bool inet_address =
        (job->address.ss_family == AF_INET && domain == AF_INET && job->address_len >= sizeof(sockaddr_in)) ||
        (job->address.ss_family == AF_INET6 && domain == AF_INET6 && job->address_len >= sizeof(sockaddr_in6));
    if (tcp && inet_address) {
      uint16_t port = 0;
      IpAddress dst = FromSockaddr(job->address, &port);
      if (std::optional<EgressEvent> refused = hooks_.RefuseAtConnect(dst, port)) {
        hooks_.RecordEvent(std::move(*refused));
        return Answer(n, ECONNREFUSED);
      }
      if (!IsBound(job->sock.get())) {
        job->plan = hooks_.PlanDirect(dst, port);
        // Scanned only for a connection that would go direct.
        if (job->plan && HeldElsewhere(n.pid, static_cast<int>(n.args[0]), st.st_ino)) job->plan.reset();
      }
      // Only for a socket that is not connected or connecting: connect() on
      // one that is is answered by the kernel's own checks (EISCONN,
      // EALREADY) in ConnectInSandbox, without a connection to anyone.
      if (!job->plan && TcpState(job->sock.get()) == TCP_CLOSE) {
        job->server_first = hooks_.ConnectServerFirst(dst, port);
        job->dst = dst;
        job->port = port;
      }
    }
    if (job->plan) return SpawnWorker(job, [this](ConnectJob& j) { ConnectDirect(j); });
    if (job->server_first) return StartServerFirst(job);
    ConnectInSandbox(job);
  }

  // A call on a socket ward connected from its own namespace (a direct
  // socket): it stays the one connection ward made. bind() and listen() are
  // refused; connect() is answered from the connection's state, as the
  // kernel would for a connect() repeated on it (interrupted by a signal,
  // or a non-blocking program asking how it went), and never made: a
  // dissolving AF_UNSPEC is refused.
  void OnDirectSocket(const Notice& n, UniqueFd sock) {
    if (n.nr != SYS_connect) {
      RecordRefused(std::string(n.nr == SYS_listen ? "listen()" : "bind()") +
                    " on a socket ward connected directly: refused (it would act outside the sandbox)");
      return Answer(n, EINVAL);
    }
    sa_family_t family = AF_UNSPEC;
    if (n.args[2] >= sizeof family && !ReadMemory(n.pid, n.args[1], &family, sizeof family)) return Answer(n, EFAULT);
    if (family == AF_UNSPEC) {
      RecordRefused("connect(AF_UNSPEC) on a socket ward connected directly: refused (it would dissolve the connection)");
      return Answer(n, EISCONN);
    }
    const int state = TcpState(sock.get());
    if (state < 0) return Answer(n, errno);
    if (state == TCP_SYN_SENT || state == TCP_SYN_RECV) {
      int flags = fcntl(sock.get(), F_GETFL);
      if (flags >= 0 && (flags & O_NONBLOCK)) return Answer(n, EALREADY);
      auto job = std::make_shared<ConnectJob>();
      job->notice = n;
      job->sock = std::move(sock);
      return SpawnWorker(job, [this](ConnectJob& j) {
        int timeout = SendTimeoutMs(j.sock.get());
        Answer(j.notice, WaitWhileCalled(j.notice, j.sock.get(), timeout));
      });
    }
    if (state != TCP_CLOSE) return Answer(n, EISCONN);
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(sock.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    Answer(n, err != 0 ? err : ECONNABORTED);
  }

  // Waits for the handshake on `fd` while the call `n` waits for its answer:
  // in slices, so that a call that is gone (a signal, the caller's death)
  // stops the wait. 0 or an errno; ETIMEDOUT after `timeout_ms` (-1: until
  // TCP gives up), ECONNABORTED when stopping or when the call is gone.
  int WaitWhileCalled(const Notice& n, int fd, int timeout_ms, int slice_ms = 200) {
    int64_t deadline = timeout_ms < 0 ? -1 : MonotonicMs() + timeout_ms;
    for (;;) {
      int slice = deadline < 0 ? slice_ms : std::min(slice_ms, RemainingMs(deadline));
      switch (WaitFor(fd, POLLOUT, stop_fd_, slice)) {
        case WaitStatus::kReady: {
          int err = 0;
          socklen_t elen = sizeof err;
          if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0) return errno;
          return err;
        }
        case WaitStatus::kTimeout:
          if (deadline >= 0 && RemainingMs(deadline) <= 0) return ETIMEDOUT;
          if (!StillWaiting(n)) return ECONNABORTED;
          break;
        case WaitStatus::kStopped:
        case WaitStatus::kError:
          return ECONNABORTED;
      }
    }
  }

  // A read-only interface ioctl (kInterfaceQuestions) on a socket of family
  // `domain` (-1: not a socket): asked of a socket of ward's in the
  // sandbox's namespace, whatever namespace the program's socket is in, so
  // that a direct socket describes the sandbox's interfaces, not the host's.
  // The request and the answer go through the program's memory (an ifreq,
  // or an ifconf and its buffer).
  void AnswerInterfaceQuestion(const Notice& n, int domain) {
    if (domain < 0) return Answer(n, ENOTTY);
    const uint32_t question = static_cast<uint32_t>(n.args[1]);
    // Only the read-only questions, whatever reached here: ward's socket
    // answers with ward's privileges.
    if (std::find(std::begin(kInterfaceQuestions), std::end(kInterfaceQuestions), question) ==
        std::end(kInterfaceQuestions)) {
      return Answer(n, EPERM);
    }
    // Address questions are IPv4's (inet_ioctl); other families' sockets do
    // not answer them.
    bool address_question = question == SIOCGIFADDR || question == SIOCGIFDSTADDR || question == SIOCGIFBRDADDR ||
                            question == SIOCGIFNETMASK;
    if (address_question && domain != AF_INET && domain != AF_INET6) return Answer(n, ENOTTY);
    int ask = domain == AF_INET6 && sandbox_.inet6 >= 0 ? sandbox_.inet6 : sandbox_.inet4 >= 0 ? sandbox_.inet4
                                                                                              : sandbox_.inet6;
    const uint32_t cmd = static_cast<uint32_t>(n.args[1]);
    const uint64_t where = n.args[2];
    if (cmd == SIOCGIFCONF) {
      ifconf conf{};
      if (!ReadMemory(n.pid, where, &conf, sizeof conf)) return Answer(n, EFAULT);
      if (conf.ifc_buf != nullptr && conf.ifc_len <= 0) {
        // Room for nothing: nothing is written, and the length read back is 0.
        int zero = 0;
        if (!StillWaiting(n)) return;
        return Answer(n, WriteMemory(n.pid, where + offsetof(ifconf, ifc_len), &zero, sizeof zero) ? 0 : EFAULT);
      }
      std::vector<char> buf(conf.ifc_buf == nullptr ? 0 : static_cast<size_t>(std::min(conf.ifc_len, 1 << 16)));
      ifconf mine{};
      mine.ifc_len = static_cast<int>(buf.size());
      mine.ifc_buf = buf.empty() ? nullptr : buf.data();
      if (ioctl(ask, SIOCGIFCONF, &mine) != 0) return Answer(n, errno);
      // Checked before writing: the thread id still names the caller.
      if (!StillWaiting(n)) return;
      if (mine.ifc_buf && mine.ifc_len > 0 &&
          !WriteMemory(n.pid, reinterpret_cast<uintptr_t>(conf.ifc_buf), buf.data(), static_cast<size_t>(mine.ifc_len))) {
        return Answer(n, EFAULT);
      }
      if (!WriteMemory(n.pid, where + offsetof(ifconf, ifc_len), &mine.ifc_len, sizeof mine.ifc_len)) {
        return Answer(n, EFAULT);
      }
      return Answer(n, 0);
    }
    ifreq req{};
    if (!ReadMemory(n.pid, where, &req, sizeof req)) return Answer(n, EFAULT);
    if (ioctl(ask, cmd, &req) != 0) return Answer(n, errno);
    if (!StillWaiting(n)) return;
    if (!WriteMemory(n.pid, where, &req, sizeof req)) return Answer(n, EFAULT);
    Answer(n, 0);
  }

  // bind() of an IPv4/IPv6 socket: landlock refuses the workload TCP binds of
  // its own. ward holds CAP_NET_BIND_SERVICE over the sandbox's namespace;
  // the program does not, so ports below 1024 stay refused.
  void Bind(ConnectJob& job) {
    uint16_t port = RequestedPort(job.address, job.address_len);
    if (port != 0 && port < 1024) return Answer(job.notice, EACCES);
    int r = bind(job.sock.get(), reinterpret_cast<sockaddr*>(&job.address), job.address_len);
    Answer(job.notice, r == 0 ? 0 : errno);
  }

  // The program's own socket, connected as the program asked: in the
  // sandbox's namespace, where the redirect takes a TCP connection to the
  // proxy. Made non-blocking for the call (the descriptor's O_NONBLOCK is
  // shared with the program, whose connect() waits for this answer; it is
  // restored at once), so that this thread never waits; a blocking socket's
  // handshake is waited for on a worker, where Stop() can end the wait.
  void ConnectInSandbox(const std::shared_ptr<ConnectJob>& job) {
    int fd = job->sock.get();
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return Answer(job->notice, errno);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    int r = connect(fd, reinterpret_cast<sockaddr*>(&job->address), job->address_len);
    int err = r == 0 ? 0 : errno;
    fcntl(fd, F_SETFL, flags);
    if (job->answer_in_progress && (err == 0 || err == EINPROGRESS)) return Answer(job->notice, EINPROGRESS);
    if (err != EINPROGRESS || (flags & O_NONBLOCK)) return Answer(job->notice, err);
    // A handshake over loopback (a local server, or the redirect to the
    // proxy) is usually over by now: answered here, without a worker.
    if ((err = HandshakeNow(fd)) != EINPROGRESS) {
      SettleConnect(fd, reinterpret_cast<sockaddr*>(&job->address), job->address_len, err, /*reset_on_failure=*/true);
      return Answer(job->notice, err);
    }
    SpawnWorker(job, [this](ConnectJob& j) { AwaitHandshake(j); });
  }

  void AwaitHandshake(ConnectJob& job) {
    int fd = job.sock.get();
    int err = WaitWhileCalled(job.notice, fd, -1);
    // A call that is gone (a signal) leaves the socket connecting, as the
    // kernel's would.
    if (err == ECONNABORTED && !StillWaiting(job.notice)) return;
    SettleConnect(fd, reinterpret_cast<sockaddr*>(&job.address), job.address_len, err, /*reset_on_failure=*/true);
    Answer(job.notice, err);
  }

  // Server first (connect_notify.h): ward connects to the server from its
  // own namespace while the program's connect() waits; a failure is the
  // connect()'s answer, a connection is left for the proxy and the
  // program's socket is connected to it as before. A handshake that is
  // over at once (a local server) is finished here, without a worker.
  void StartServerFirst(const std::shared_ptr<ConnectJob>& job) {
    int err = 0;
    job->server = StartTcpConnect(job->dst, job->port, &err);
    if (err == EINPROGRESS) err = HandshakeNow(job->server.get());
    if (err != EINPROGRESS) return EndServerFirst(job, err);
    SpawnWorker(job, [this](ConnectJob& j) {
      int flags = fcntl(j.sock.get(), F_GETFL);  // the program's O_NONBLOCK, as it is now
      bool blocking = flags >= 0 && !(flags & O_NONBLOCK);
      int limit = blocking ? connect_timeout_ms_ : std::min(connect_timeout_ms_, kServerFirstWaitMs);
      int send_timeout = SendTimeoutMs(j.sock.get());
      if (blocking && send_timeout >= 0) limit = std::min(limit, send_timeout);
      // In short slices: a call a signal ended is noticed within
      // kServerFirstSliceMs, and the program's socket then connected (below)
      // rather than left unconnected, which a program retrying after EINTR
      // would take for connected. (A program that looks sooner still sees
      // that: docs/network.md.)
      int e = WaitWhileCalled(j.notice, j.server.get(), limit, kServerFirstSliceMs);
      // Still under way when the program no longer waits (a non-blocking
      // socket's wait is over, its SO_SNDTIMEO ran out, or a signal ended
      // the call): its socket goes on connecting as the kernel's would, and
      // the proxy waits for the rest of the server's handshake (up to its
      // connect timeout; a failure then resets the connection).
      if (e == ECONNABORTED && !StillWaiting(j.notice)) e = 0;
      if (e == ETIMEDOUT && limit < connect_timeout_ms_) {
        j.answer_in_progress = blocking;
        e = 0;
      }
      EndServerFirst(std::make_shared<ConnectJob>(std::move(j)), e);  // a worker may spawn another: it returns at once
    });
  }

  void EndServerFirst(const std::shared_ptr<ConnectJob>& job, int err) {
    if (err != 0) {
      EgressEvent& ev = *job->server_first;
      ev.detail += "; connect: " + ErrnoName(err);
      hooks_.RecordEvent(std::move(ev));
      return Answer(job->notice, err);
    }
    hooks_.LeaveServerConnection(job->dst, job->port, std::move(job->server));
    ConnectInSandbox(job);
  }

  void ConnectDirect(ConnectJob& job) {
    if (job.plan->targets.size() == 1) return ConnectDirectNow(job);
    DirectPlan& plan = *job.plan;
    EgressEvent& ev = plan.event;
    // Several targets (the host's loopback, 127.0.0.1 or ::1): each tried to
    // the end before the next; on loopback that takes microseconds.
    int err = EHOSTUNREACH;
    UniqueFd out;
    for (const IpAddress& target : plan.targets) {
      sockaddr_storage sa;
      socklen_t len = TargetAddress(job.domain, target, plan.port, &sa);
      if (len == 0) continue;
      out.Reset(socket(job.domain, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP));
      if (!out.valid()) {
        err = errno;
        break;
      }
      CopyOptions(job.sock.get(), out.get(), job.domain);
      err = connect(out.get(), reinterpret_cast<sockaddr*>(&sa), len) == 0 ? 0 : errno;
      if (err == EINPROGRESS) {
        err = WaitWhileCalled(job.notice, out.get(), connect_timeout_ms_);
        SettleConnect(out.get(), reinterpret_cast<sockaddr*>(&sa), len, err, /*reset_on_failure=*/false);
      }
      if (err == 0) break;
      out.Reset();
      if (!StillWaiting(job.notice)) {  // the call is gone: nobody to hand a connection to
        ev.detail += "; the connect() call ended before a connection";
        hooks_.RecordEvent(std::move(ev));
        return;
      }
    }
    if (err != 0 && plan.proxy_on_failure) {
      auto shared = std::make_shared<ConnectJob>(std::move(job));
      shared->plan.reset();
      return ConnectInSandbox(shared);  // a worker may spawn another: it returns at once
    }
    if (err != 0) {
      ev.detail += "; connect: " + ErrnoName(err);
      hooks_.RecordEvent(std::move(ev));
      return Answer(job.notice, err);
    }
    KeepBlockingMode(job, out.get());
    if (!HandOver(job, out.get())) return;
    hooks_.RecordEvent(std::move(ev));  // before the answer: whoever sees the connection finds the event
    Answer(job.notice, 0);
  }

  // The direct socket blocks if the program's did (ward's copy only polls).
  // True if it does.
  static bool KeepBlockingMode(const ConnectJob& job, int out) {
    int flags = fcntl(job.sock.get(), F_GETFL);  // the program's O_NONBLOCK, as it is now
    bool blocking = flags >= 0 && !(flags & O_NONBLOCK);
    int fl = fcntl(out, F_GETFL);
    if (blocking && fl >= 0) fcntl(out, F_SETFL, fl & ~O_NONBLOCK);
    return blocking;
  }

  // One target: the direct socket is handed over as soon as its handshake
  // has started, so that the program sees what its own socket would give it:
  // a non-blocking connect() says EINPROGRESS at once (an event loop is not
  // held up by a slow server), and a blocking one that a signal interrupts
  // leaves the program a socket whose handshake goes on (as the kernel's
  // would). A blocking connect() that fails gets the program's own socket
  // back, unconnected, as a failed connect() leaves it.
  void ConnectDirectNow(ConnectJob& job) {
    DirectPlan& plan = *job.plan;
    EgressEvent& ev = plan.event;
    sockaddr_storage sa;
    socklen_t len = TargetAddress(job.domain, plan.targets.front(), plan.port, &sa);
    UniqueFd out(socket(job.domain, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP));
    int err = len == 0 ? EAFNOSUPPORT : out.valid() ? 0 : errno;
    if (err == 0) {
      CopyOptions(job.sock.get(), out.get(), job.domain);
      err = connect(out.get(), reinterpret_cast<sockaddr*>(&sa), len) == 0 ? 0 : errno;
    }
    if (err != 0 && err != EINPROGRESS) {
      ev.detail += "; connect: " + ErrnoName(err);
      hooks_.RecordEvent(std::move(ev));
      return Answer(job.notice, err);
    }
    bool started = err == EINPROGRESS;
    bool blocking = KeepBlockingMode(job, out.get());
    if (!HandOver(job, out.get())) return;
    if (!blocking || !started) {
      hooks_.RecordEvent(std::move(ev));
      return Answer(job.notice, started ? EINPROGRESS : 0);
    }
    int timeout = SendTimeoutMs(job.sock.get());
    err = WaitWhileCalled(job.notice, out.get(), timeout);
    if (err == ECONNABORTED && !StillWaiting(job.notice)) {
      // The call is gone (a signal): the program's descriptor holds the
      // socket, whose handshake goes on, as the kernel's would.
      ev.detail += "; the connect() call ended during the handshake";
      hooks_.RecordEvent(std::move(ev));
      return;
    }
    SettleConnect(out.get(), reinterpret_cast<sockaddr*>(&sa), len, err, /*reset_on_failure=*/false);
    if (err == ETIMEDOUT && timeout >= 0) err = EINPROGRESS;  // SO_SNDTIMEO ran out: the handshake goes on
    if (err != 0 && err != EINPROGRESS) {
      ev.detail += "; connect: " + ErrnoName(err);
      // The program's own socket back in its descriptor, unconnected.
      seccomp_notif_addfd back{};
      back.id = job.notice.id;
      back.flags = SECCOMP_ADDFD_FLAG_SETFD;
      back.srcfd = static_cast<uint32_t>(job.sock.get());
      back.newfd = static_cast<uint32_t>(job.notice.args[0]);
      back.newfd_flags = job.cloexec ? O_CLOEXEC : 0;
      (void)ioctl(job.notice.notify_fd, SECCOMP_IOCTL_NOTIF_ADDFD, &back);
    }
    hooks_.RecordEvent(std::move(ev));
    Answer(job.notice, err);
  }

  // Puts `out` in the program's descriptor in place of its own socket.
  // False (and the call answered or gone, the event recorded) if it could
  // not.
  bool HandOver(ConnectJob& job, int out) {
    EgressEvent& ev = job.plan->event;
    job.cloexec = CloseOnExec(job.notice.pid, static_cast<int>(job.notice.args[0]));
    seccomp_notif_addfd add{};
    add.id = job.notice.id;
    add.flags = SECCOMP_ADDFD_FLAG_SETFD;
    add.srcfd = static_cast<uint32_t>(out);
    add.newfd = static_cast<uint32_t>(job.notice.args[0]);
    add.newfd_flags = job.cloexec ? O_CLOEXEC : 0;
    if (ioctl(job.notice.notify_fd, SECCOMP_IOCTL_NOTIF_ADDFD, &add) >= 0) return true;
    int add_errno = errno;
    // ENOENT: the call is gone (a signal interrupted it, or the caller
    // died); otherwise (EMFILE, ...) it fails with the reason. Either way
    // the program keeps its own, unconnected socket.
    ev.detail += "; not handed over: " + ErrnoName(add_errno);
    hooks_.RecordEvent(std::move(ev));
    if (add_errno != ENOENT && StillWaiting(job.notice)) Answer(job.notice, add_errno);
    return false;
  }

  // Runs `fn(*job)` on a worker, at most kMaxWorkers at once: beyond that,
  // or if no thread can start, the call fails with EAGAIN.
  template <typename F>
  void SpawnWorker(const std::shared_ptr<ConnectJob>& job, F fn) {
    if (workers_.fetch_add(1) >= kMaxWorkers) {
      workers_.fetch_sub(1);
      return Answer(job->notice, EAGAIN);
    }
    // The worker keeps this object alive: Run() may return (stopping) first.
    bool started = hooks_.SpawnWorker([self = shared_from_this(), job, fn] {
      sigset_t all;
      sigfillset(&all);
      pthread_sigmask(SIG_BLOCK, &all, nullptr);  // a signal to ward must not cut a connect() short
      fn(*job);
      self->workers_.fetch_sub(1);
    });
    if (!started) {
      workers_.fetch_sub(1);
      Answer(job->notice, EAGAIN);
    }
  }

  void RecordRefused(std::string reason) {
    EgressEvent e;
    e.kind = EgressEvent::Kind::kTcp;
    e.time_ns = MonotonicNs();
    e.reason = std::move(reason);
    e.detail = "direct";
    hooks_.RecordEvent(std::move(e));
  }

  int notify_fd_;
  int stop_fd_;
  SandboxNetwork sandbox_;
  int connect_timeout_ms_;
  ConnectNotifyHooks& hooks_;
  UnixGate& gate_;
  CallObservers observers_;
  std::atomic<int> workers_{0};
};

}  // namespace

uint64_t NetnsCookie(int socket_fd) {
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  return getsockopt(socket_fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) == 0 ? cookie : 0;
}

void ServeConnectNotifications(int notify_fd, int stop_fd, const SandboxNetwork& sandbox, int connect_timeout_ms,
                               ConnectNotifyHooks& hooks, UnixGate& gate, const CallObservers& observers) {
  std::make_shared<Server>(notify_fd, stop_fd, sandbox, connect_timeout_ms, hooks, gate, observers)->Run();
}

}  // namespace ward::net
