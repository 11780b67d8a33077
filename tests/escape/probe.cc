// escape_probe: runs inside a ward sandbox (and, as a positive control,
// outside it) and tries exactly one thing per subcommand.
//
// Output contract: zero or more informational lines, then exactly one line
//
//   RESULT ok [key=value ...]
//   RESULT errno=ENAME [key=value ...]
//
// on stdout, and exit status 0. A subcommand that is meant to die (int80,
// x32, memhog under a cgroup, signal N) dies by the signal instead, and the
// caller asserts on ward's exit status. Values never contain spaces.
//
// Where it lets the caller tell "blocked by the sandbox" from "reached the
// kernel", a system call is made with an argument the kernel rejects (a bad
// pointer, an invalid flag): under ward's seccomp filter the call fails with
// EPERM/ENOSYS before the kernel looks at its arguments; outside, the kernel
// answers EFAULT/EINVAL/EBADF. Such a call can never do harm, even if the
// filter let it through.
//
// Built static and without sanitizers: the sandbox grants only the probe's
// directory, and the sanitizer runtimes make system calls (personality,
// mmap of shadow memory) that would confuse the results.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <linux/keyctl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/shm.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

// Not in every libc header set; values from the kernel's uapi.
constexpr unsigned long kCloneNewTime = 0x00000080;
constexpr int kUffdUserModeOnly = 1;
constexpr long kX32SyscallBit = 0x40000000;

void* const kBadPtr = reinterpret_cast<void*>(1);

std::string ErrName(int e) {
  const char* n = strerrorname_np(e);
  return n ? n : "E" + std::to_string(e);
}

// Replaces anything that would break the one-line, space-separated format.
std::string Clean(const std::string& s, size_t max = 120) {
  std::string out;
  for (char c : s.substr(0, max)) {
    unsigned char u = static_cast<unsigned char>(c);
    out += (u > 0x20 && u < 0x7f && c != '=') ? c : '_';
  }
  return out;
}

[[noreturn]] void Ok(const std::string& extra = "") {
  printf("RESULT ok%s%s\n", extra.empty() ? "" : " ", extra.c_str());
  fflush(stdout);
  _exit(0);
}

[[noreturn]] void Fail(int err, const std::string& extra = "") {
  printf("RESULT errno=%s%s%s\n", ErrName(err).c_str(), extra.empty() ? "" : " ", extra.c_str());
  fflush(stdout);
  _exit(0);
}

// A system call's outcome: ok with its return value, or its errno.
[[noreturn]] void Report(long rc, const std::string& extra = "") {
  if (rc < 0) Fail(errno, extra);
  Ok("ret=" + std::to_string(rc) + (extra.empty() ? "" : " " + extra));
}

[[noreturn]] void Usage(const char* why) {
  fprintf(stderr, "escape_probe: %s\n", why);
  _exit(2);
}

std::string Arg(int argc, char** argv, int i) {
  if (i >= argc) Usage("missing argument");
  return argv[i];
}

long Num(const std::string& s) {
  char* end = nullptr;
  long v = strtol(s.c_str(), &end, 0);
  if (!end || *end) Usage("not a number");
  return v;
}

// Reads what an open fd holds: "ok bytes=N content=..." or the errno.
[[noreturn]] void ReadFd(int fd, const std::string& step) {
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n < 0) Fail(errno, "step=" + step);
  Ok("bytes=" + std::to_string(n) + " content=" + Clean(std::string(buf, static_cast<size_t>(n))));
}

[[noreturn]] void ReadPath(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) Fail(errno, "step=open");
  ReadFd(fd, "read");
}

[[noreturn]] void WritePath(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) Fail(errno, "step=open");
  const char msg[] = "written-by-probe\n";
  if (write(fd, msg, sizeof msg - 1) != static_cast<ssize_t>(sizeof msg - 1)) Fail(errno, "step=write");
  if (close(fd) != 0) Fail(errno, "step=close");
  Ok();
}

bool WriteFile(const std::string& path, const std::string& text) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  return close(fd) == 0 && ok;
}

bool ReadWhole(const std::string& path, std::string* out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out->append(buf, static_cast<size_t>(n));
  close(fd);
  return n == 0;
}

void SleepMs(long ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

std::vector<long> ProcPids() {
  std::vector<long> pids;
  DIR* d = opendir("/proc");
  if (!d) return pids;
  while (dirent* e = readdir(d)) {
    char* end;
    long p = strtol(e->d_name, &end, 10);
    if (*end == 0 && p > 0) pids.push_back(p);
  }
  closedir(d);
  return pids;
}

std::string Join(const std::vector<long>& v) {
  std::string s;
  for (long x : v) {
    if (!s.empty()) s += ',';
    s += std::to_string(x);
  }
  return s.empty() ? "-" : s;
}

// Forks a child that waits to be killed; returns its pid.
pid_t ForkPauser() {
  pid_t pid = fork();
  if (pid == 0) {
    for (;;) pause();
  }
  return pid;
}

// The child of "sleeper": a long sleep whose command line carries a marker
// that the host can search for in /proc/*/cmdline.
[[noreturn]] void Sleeper(const std::string& marker) {
  (void)marker;
  signal(SIGTERM, SIG_IGN);  // only SIGKILL (teardown) ends it
  signal(SIGHUP, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  for (;;) SleepMs(1000000);
}

// Double-forks a sleeper that outlives this process: setsid() takes it out
// of the workload's process group, so only a sandbox-wide teardown can end
// it. Writes the sleeper's pid (as seen in the sandbox) to pidfile.
bool SpawnOrphan(const std::string& marker, const std::string& pidfile) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return false;
  pid_t mid = fork();
  if (mid < 0) return false;
  if (mid == 0) {
    setsid();
    pid_t grand = fork();
    if (grand == 0) {
      close(p[0]);
      const char* self = "/proc/self/exe";
      std::string m = marker;
      char* args[] = {const_cast<char*>("escape_probe"), const_cast<char*>("sleeper"), m.data(), nullptr};
      // The pipe closes (O_CLOEXEC) once the sleeper runs.
      execv(self, args);
      _exit(127);
    }
    std::string text = std::to_string(grand) + "\n";
    _exit(grand > 0 && WriteFile(pidfile, text) ? 0 : 1);
  }
  close(p[1]);
  int st = 0;
  waitpid(mid, &st, 0);
  char c;
  // Wait until the grandchild has exec'd (its copy of the write end closes).
  while (read(p[0], &c, 1) < 0 && errno == EINTR) {
  }
  close(p[0]);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

sockaddr_in Ipv4(const std::string& ip, long port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, ip.c_str(), &a.sin_addr) != 1) Usage("bad IPv4 address");
  return a;
}

// A TCP connection to IP:PORT (IPv6 if IP has a colon); `*content` is the
// start of what the server says first ("content=..."). Fails the probe at
// the step that fails.
int ConnectAndRead(const std::string& ip, long port, std::string* content) {
  bool v6 = ip.find(':') != std::string::npos;
  int s = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) Fail(errno, "step=socket");
  sockaddr_in a = {};
  sockaddr_in6 a6{};
  int r;
  if (v6) {
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, ip.c_str(), &a6.sin6_addr) != 1) Usage("bad IPv6 address");
    r = connect(s, reinterpret_cast<sockaddr*>(&a6), sizeof a6);
  } else {
    a = Ipv4(ip, port);
    r = connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  if (r != 0) Fail(errno, "step=connect");
  char buf[64];
  ssize_t n = read(s, buf, sizeof buf);
  if (n < 0) Fail(errno, "step=read");
  *content = "content=" + Clean(std::string(buf, static_cast<size_t>(n)));
  return s;
}

[[noreturn]] void CmdConnectTcp(const std::string& ip, long port) {
  std::string content;
  ConnectAndRead(ip, port, &content);
  Ok(content);
}

// Connects to IP:PORT and reads the greeting, then tries to turn the socket
// into something else: dissolves the connection (connect with AF_UNSPEC)
// and listens on it. In egress mode a connection that ward made directly
// from its own namespace (net/connect_notify.h) must not become a listener
// (or a connection) there.
[[noreturn]] void CmdDirectDisconnectListen(const std::string& ip, long port) {
  std::string content;
  int s = ConnectAndRead(ip, port, &content);
  sockaddr unspec{};
  unspec.sa_family = AF_UNSPEC;
  if (connect(s, &unspec, sizeof unspec) != 0) Fail(errno, "step=disconnect " + content);
  if (listen(s, 1) != 0) Fail(errno, "step=listen " + content);
  Ok(content);
}

// Connects to IP:PORT, reads the greeting, then asks the socket about
// interfaces (SIOCGIFCONF) and to change protocol (TCP_ULP, with a name no
// kernel has: a kernel that is asked answers ENOENT).
[[noreturn]] void CmdSocketQuestions(const std::string& ip, long port, const std::string& what) {
  std::string content;
  int s = ConnectAndRead(ip, port, &content);
  if (what == "ifconf") {
    ifreq reqs[16];
    ifconf conf{};
    conf.ifc_len = sizeof reqs;
    conf.ifc_req = reqs;
    if (ioctl(s, SIOCGIFCONF, &conf) != 0) Fail(errno, "step=ifconf " + content);
    std::string names;
    for (size_t i = 0; i < conf.ifc_len / sizeof(ifreq); ++i) {
      if (i) names += ',';
      names.append(reqs[i].ifr_name, strnlen(reqs[i].ifr_name, IFNAMSIZ));
    }
    // And the index of the first, as if_nametoindex() asks it.
    ifreq one{};
    memcpy(one.ifr_name, reqs[0].ifr_name, sizeof one.ifr_name);
    if (ioctl(s, SIOCGIFINDEX, &one) != 0) Fail(errno, "step=ifindex " + content);
    Ok("interfaces=" + names + " index=" + std::to_string(one.ifr_ifindex) + " " + content);
  }
  if (what == "ulp") {
    const char name[] = "ward-none";
    if (setsockopt(s, IPPROTO_TCP, 31 /* TCP_ULP */, name, sizeof name - 1) != 0) Fail(errno, "step=ulp " + content);
    Ok(content);
  }
  if (what == "rthdr") {
    // A routing header of type 0 (deprecated): a kernel that is asked
    // refuses it (EINVAL); none is ever installed.
    uint8_t rthdr[24] = {0, 2, 0, 1};
    if (setsockopt(s, IPPROTO_IPV6, IPV6_RTHDR, rthdr, sizeof rthdr) != 0) Fail(errno, "step=rthdr " + content);
    Ok(content);
  }
  if (what == "bindtodevice") {
    const char name[] = "ward-none";  // no such interface: a kernel that is asked says ENODEV
    if (setsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, name, sizeof name) != 0) Fail(errno, "step=bindtodevice " + content);
    Ok(content);
  }
  Usage("socket-question: ifconf, ulp, rthdr or bindtodevice");
}

// socket(FAMILY, SOCK_STREAM, 0).
[[noreturn]] void CmdSocketFamily(long family) {
  int s = socket(static_cast<int>(family), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) Fail(errno, "step=socket");
  Ok();
}

// bind() a TCP socket to 127.0.0.1:PORT.
[[noreturn]] void CmdBindPort(long port) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) Fail(errno, "step=socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) Fail(errno, "step=bind");
  Ok();
}

// The race a hostile workload runs against ward's connect() handling
// (net/connect_notify.h): one thread dissolves descriptor SLOT with
// connect(AF_UNSPEC) again and again while another swaps the direct socket
// (connected to IP:PORT) and an unconnected unix socket in and out of SLOT,
// so that ward may judge the unix socket while the kernel acts on the
// direct one. Then, dissolved or not, it tries everything that would make
// the direct socket reach the host: bind, listen, connect to 127.0.0.1:PORT2
// (IPv4, and through its IPv6-mapped form), a Fast Open send. Reports each
// result; "ok" at the end only if one of them succeeded.
[[noreturn]] void CmdRaceDirect(const std::string& ip, long port, long port2, long rounds) {
  std::string content;
  int s = ConnectAndRead(ip, port, &content);
  int u = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int slot = dup(u);
  if (u < 0 || slot < 0) Fail(errno, "step=unix");
  std::atomic<bool> stop{false};
  std::thread dissolver([&] {
    sockaddr unspec{};
    unspec.sa_family = AF_UNSPEC;
    while (!stop) (void)connect(slot, &unspec, sizeof unspec);
  });
  std::thread swapper([&] {
    while (!stop) {
      dup3(s, slot, O_CLOEXEC);
      dup3(u, slot, O_CLOEXEC);
    }
  });
  sockaddr_storage peer{};
  socklen_t len = sizeof peer;
  long r = 0;
  for (; r < rounds && getpeername(s, reinterpret_cast<sockaddr*>(&peer), &len) == 0; ++r) {
    usleep(1000);
    len = sizeof peer;
  }
  stop = true;
  dissolver.join();
  swapper.join();
  len = sizeof peer;
  bool dissolved = getpeername(s, reinterpret_cast<sockaddr*>(&peer), &len) != 0;
  auto result = [](int rc) { return rc == 0 ? std::string("ok") : ErrName(errno); };
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string bind_r = result(bind(s, reinterpret_cast<sockaddr*>(&any), sizeof any));
  std::string listen_r = result(listen(s, 1));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port2));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string connect_r = result(connect(s, reinterpret_cast<sockaddr*>(&to), sizeof to));
  std::string tfo_r = result(sendto(s, "x", 1, MSG_FASTOPEN, reinterpret_cast<sockaddr*>(&to), sizeof to) == 1 ? 0 : -1);
  std::string out = "dissolved=" + std::string(dissolved ? "1" : "0") + " bind=" + bind_r + " listen=" + listen_r +
                    " connect=" + connect_r + " fastopen=" + tfo_r;
  if (bind_r == "ok" || listen_r == "ok" || connect_r == "ok" || tfo_r == "ok") Ok(out);
  Fail(EPERM, out);
}

// A TCP Fast Open connect: sendto() with MSG_FASTOPEN connects and sends in
// one call, then reads the greeting.
[[noreturn]] void CmdTfoSendto(const std::string& ip, long port) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) Fail(errno, "step=socket");
  sockaddr_in a = Ipv4(ip, port);
  if (sendto(s, "x", 1, MSG_FASTOPEN, reinterpret_cast<sockaddr*>(&a), sizeof a) != 1) Fail(errno, "step=sendto");
  char buf[64];
  ssize_t n = read(s, buf, sizeof buf);
  if (n < 0) Fail(errno, "step=read");
  Ok("content=" + Clean(std::string(buf, static_cast<size_t>(n))));
}

// Listens on 127.0.0.1 and connects to itself: the loopback a sandbox with
// "network": "none" is meant to keep.
// Asks nf_tables to delete ward's table ("inet ward"): what a workload
// would do to lift egress control. With "own-netns" the probe first enters
// a user + network namespace of its own (the positive control outside ward:
// the request reaches the kernel, which answers ENOENT: no such table there).
[[noreturn]] void CmdNftDeleteTable(bool own_netns) {
  if (own_netns && unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) Fail(errno, "step=unshare");
  int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (s < 0) Fail(errno, "step=socket");
  // batch begin, NFT_MSG_DELTABLE (family inet, name "ward"), batch end.
  alignas(nlmsghdr) uint8_t buf[256] = {};
  size_t off = 0;
  auto msg = [&](uint16_t type, uint16_t flags, uint8_t family, uint16_t res_id, const char* name) {
    auto* h = reinterpret_cast<nlmsghdr*>(buf + off);
    h->nlmsg_type = type;
    h->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | flags);
    h->nlmsg_seq = static_cast<uint32_t>(off);
    auto* g = reinterpret_cast<nfgenmsg*>(buf + off + NLMSG_HDRLEN);
    g->nfgen_family = family;
    g->version = NFNETLINK_V0;
    g->res_id = htons(res_id);
    size_t len = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg));
    if (name) {
      auto* a = reinterpret_cast<nlattr*>(buf + off + len);
      a->nla_type = NFTA_TABLE_NAME;
      a->nla_len = static_cast<uint16_t>(NLA_HDRLEN + strlen(name) + 1);
      memcpy(reinterpret_cast<char*>(a) + NLA_HDRLEN, name, strlen(name) + 1);
      len += NLA_ALIGN(a->nla_len);
    }
    h->nlmsg_len = static_cast<uint32_t>(len);
    off += NLMSG_ALIGN(len);
  };
  msg(NFNL_MSG_BATCH_BEGIN, 0, AF_UNSPEC, NFNL_SUBSYS_NFTABLES, nullptr);
  msg(static_cast<uint16_t>(NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_DELTABLE), NLM_F_ACK, NFPROTO_INET, 0, "ward");
  msg(NFNL_MSG_BATCH_END, 0, AF_UNSPEC, NFNL_SUBSYS_NFTABLES, nullptr);
  sockaddr_nl k{};
  k.nl_family = AF_NETLINK;
  if (sendto(s, buf, off, 0, reinterpret_cast<sockaddr*>(&k), sizeof k) < 0) Fail(errno, "step=sendto");
  alignas(nlmsghdr) uint8_t ans[4096];
  ssize_t n = recv(s, ans, sizeof ans, 0);
  if (n < 0) Fail(errno, "step=recv");
  auto* h = reinterpret_cast<nlmsghdr*>(ans);
  if (h->nlmsg_type != NLMSG_ERROR) Fail(EPROTO, "step=answer");
  int err = -static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error;
  if (err) Fail(err, "step=deltable");
  Ok("deleted=1");
}

// Accepts the connection `client` made to `listener`, says PONG on it and
// reads that back through `client`: a program talking to itself.
std::string PongOverSelf(int listener, int client) {
  int s = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (s < 0) Fail(errno, "step=accept");
  if (write(s, "PONG", 4) != 4) Fail(errno, "step=write");
  char buf[8];
  ssize_t n = read(client, buf, sizeof buf);
  if (n < 0) Fail(errno, "step=read");
  return Clean(std::string(buf, static_cast<size_t>(n)));
}

[[noreturn]] void CmdLoopback() {
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (l < 0) Fail(errno, "step=socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) Fail(errno, "step=bind");
  if (listen(l, 1) != 0) Fail(errno, "step=listen");
  socklen_t len = sizeof a;
  getsockname(l, reinterpret_cast<sockaddr*>(&a), &len);
  int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) Fail(errno, "step=connect");
  Ok("content=" + PongOverSelf(l, c));
}

// N connections to a listener of its own on 127.0.0.1, one after another:
// what a connect() costs (reported in microseconds).
[[noreturn]] void CmdConnectLoop(long n) {
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (l < 0 || bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(l, 128) != 0) Fail(errno, "step=listen");
  socklen_t len = sizeof a;
  getsockname(l, reinterpret_cast<sockaddr*>(&a), &len);
  timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < n; ++i) {
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) Fail(errno, "step=connect");
    int s = accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
    close(s);
    close(c);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double us = (t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3;
  Ok("us_per_connect=" + std::to_string(us / static_cast<double>(n)));
}

// Connects to the abstract unix socket "\0name".
[[noreturn]] void CmdConnectAbstract(const std::string& name) {
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) Fail(errno, "step=socket");
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (name.size() + 1 > sizeof a.sun_path) Usage("name too long");
  memcpy(a.sun_path + 1, name.data(), name.size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  if (connect(s, reinterpret_cast<sockaddr*>(&a), len) != 0) Fail(errno, "step=connect");
  char buf[64];
  ssize_t n = read(s, buf, sizeof buf);
  if (n < 0) Fail(errno, "step=read");
  Ok("content=" + Clean(std::string(buf, static_cast<size_t>(n))));
}

int64_t MonotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

// Connects a unix socket of TYPE ("stream", "seqpacket") to PATH (relative
// to the working directory, or "/proc/self/fd/N"...) and reads what the
// server says first.
[[noreturn]] void CmdConnectUnix(const std::string& path, const std::string& type) {
  int s = socket(AF_UNIX, (type == "seqpacket" ? SOCK_SEQPACKET : SOCK_STREAM) | SOCK_CLOEXEC, 0);
  if (s < 0) Fail(errno, "step=socket");
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) Usage("path too long");
  memcpy(a.sun_path, path.data(), path.size());
  if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) Fail(errno, "step=connect");
  char buf[64];
  ssize_t n = read(s, buf, sizeof buf);
  if (n < 0) Fail(errno, "step=read");
  Ok("content=" + Clean(std::string(buf, static_cast<size_t>(n))));
}

// Listens on the unix socket DIR/NAME and connects to it (by NAME from
// DIR when RELATIVE is "relative"): a program talking to itself.
[[noreturn]] void CmdUnixSelf(const std::string& dir, const std::string& name, bool relative) {
  int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::string path = dir + "/" + name;
  if (path.size() >= sizeof a.sun_path) Usage("path too long");
  memcpy(a.sun_path, path.data(), path.size());
  unlink(path.c_str());
  if (l < 0 || bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) Fail(errno, "step=bind");
  if (listen(l, 1) != 0) Fail(errno, "step=listen");
  if (relative) {
    if (chdir(dir.c_str()) != 0) Fail(errno, "step=chdir");
    a = {};
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, name.data(), name.size());
  }
  int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) Fail(errno, "step=connect");
  std::string content = PongOverSelf(l, c);
  unlink(path.c_str());
  Ok("content=" + content);
}

// A unix datagram socket: socket(), or socketpair() with PAIR; asked for as
// SOCK_RAW with RAW (the kernel makes a datagram socket of it).
[[noreturn]] void CmdUnixDgram(bool pair, bool raw) {
  int sv[2];
  const int type = (raw ? SOCK_RAW : SOCK_DGRAM) | SOCK_CLOEXEC;
  if (pair) Report(socketpair(AF_UNIX, type, 0, sv));
  Report(socket(AF_UNIX, type, 0));
}

// connect() of a NETLINK_SOCK_DIAG socket to netlink port PORTID (0: the
// kernel), multicast GROUPS.
[[noreturn]] void CmdNetlinkConnect(long portid, long groups) {
  int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 4 /* NETLINK_SOCK_DIAG */);
  if (s < 0) Fail(errno, "step=socket");
  sockaddr_nl a{};
  a.nl_family = AF_NETLINK;
  a.nl_pid = static_cast<uint32_t>(portid);
  a.nl_groups = static_cast<uint32_t>(groups);
  Report(connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a));
}

// The race a hostile workload runs against the unix gate (net/unix_gate.h):
// for MS milliseconds, one thread flips the address buffer between the
// sandbox's own socket OWN (served here) and the host's socket HOST while
// the main thread connects through that buffer, so that ward may judge one
// path while the kernel would use the other. Counts whose server answered.
[[noreturn]] void CmdRaceUnix(const std::string& own, const std::string& host, long ms) {
  int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (own.size() >= sizeof a.sun_path || host.size() >= sizeof a.sun_path) Usage("path too long");
  memcpy(a.sun_path, own.data(), own.size());
  unlink(own.c_str());
  if (l < 0 || bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) Fail(errno, "step=bind");
  if (listen(l, 64) != 0) Fail(errno, "step=listen");
  std::atomic<bool> stop{false};
  std::thread server([&] {
    while (!stop) {
      pollfd p{l, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      int c = accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      (void)!write(c, "OWN", 3);
      close(c);
    }
  });
  static sockaddr_un shared;
  sockaddr_un own_a = a, host_a{};
  host_a.sun_family = AF_UNIX;
  memcpy(host_a.sun_path, host.data(), host.size());
  shared = own_a;
  std::thread flipper([&] {
    volatile char* dst = reinterpret_cast<volatile char*>(&shared);
    bool which = false;
    while (!stop) {
      const char* src = reinterpret_cast<const char*>(which ? &own_a : &host_a);
      for (size_t i = 0; i < sizeof shared; ++i) dst[i] = src[i];
      which = !which;
    }
  });
  long host_n = 0, own_n = 0, refused = 0, other = 0;
  int64_t end = MonotonicMs() + ms;
  while (MonotonicMs() < end) {
    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(c, reinterpret_cast<sockaddr*>(&shared), sizeof shared) == 0) {
      char buf[32] = {};
      ssize_t n = read(c, buf, sizeof buf - 1);
      std::string got(buf, n > 0 ? static_cast<size_t>(n) : 0);
      if (got == "OWN") ++own_n;
      else if (got.find("HOST") != std::string::npos) ++host_n;
      else ++other;
    } else if (errno == EACCES) {
      ++refused;
    } else {
      ++other;
    }
    close(c);
  }
  stop = true;
  flipper.join();
  server.join();
  unlink(own.c_str());
  Ok("host=" + std::to_string(host_n) + " own=" + std::to_string(own_n) + " refused=" + std::to_string(refused) +
     " other=" + std::to_string(other));
}

// Opens the FIFO PATH for writing without waiting (ENXIO: no reader) and
// writes TEXT.
[[noreturn]] void CmdFifoWrite(const std::string& path, const std::string& text) {
  int fd = open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) Fail(errno, "step=open");
  if (write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) Fail(errno, "step=write");
  Ok();
}

volatile sig_atomic_t g_term = 0;
void OnTerm(int) { g_term = 1; }

// --- subcommands -----------------------------------------------------------

[[noreturn]] void CmdOpenViaSymlink(const std::string& target, const std::string& link) {
  unlink(link.c_str());
  if (symlink(target.c_str(), link.c_str()) != 0) Fail(errno, "step=symlink");
  ReadPath(link);
}

[[noreturn]] void CmdHardlink(const std::string& target, const std::string& link) {
  unlink(link.c_str());
  if (::link(target.c_str(), link.c_str()) != 0) {
    int e = errno;
    // Whatever the reason, the new name must not give the content either.
    int fd = open(link.c_str(), O_RDONLY | O_CLOEXEC);
    Fail(e, std::string("step=link after_open=") + (fd < 0 ? ErrName(errno) : "opened"));
  }
  ReadPath(link);
}

[[noreturn]] void CmdLs(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) Fail(errno, "step=opendir");
  std::vector<std::string> names;
  errno = 0;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  if (errno) Fail(errno, "step=readdir");
  std::string list;
  for (const auto& n : names) {
    if (!list.empty()) list += ',';
    list += Clean(n, 60);
  }
  Ok("count=" + std::to_string(names.size()) + " names=" + (list.empty() ? "-" : Clean(list, 2000)));
}

[[noreturn]] void CmdStat(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) Fail(errno);
  char mode[16];
  snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
  Ok(std::string("mode=") + mode + " size=" + std::to_string(st.st_size) + " uid=" + std::to_string(st.st_uid) +
     " type=" + (S_ISDIR(st.st_mode) ? "dir" : S_ISREG(st.st_mode) ? "file" : S_ISLNK(st.st_mode) ? "link" : "other"));
}

unsigned long NamespaceFlag(const std::string& ns) {
  if (ns == "user") return CLONE_NEWUSER;
  if (ns == "net") return CLONE_NEWNET;
  if (ns == "mnt") return CLONE_NEWNS;
  if (ns == "pid") return CLONE_NEWPID;
  if (ns == "ipc") return CLONE_NEWIPC;
  if (ns == "uts") return CLONE_NEWUTS;
  if (ns == "cgroup") return CLONE_NEWCGROUP;
  if (ns == "time") return kCloneNewTime;
  Usage("unknown namespace");
}

// unshare(ns); with "invalid", an extra flag bit (CSIGNAL's 0x1) that the
// kernel rejects with EINVAL before creating anything.
[[noreturn]] void CmdUnshare(const std::string& ns, bool invalid) {
  unsigned long flags = NamespaceFlag(ns) | (invalid ? 0x1UL : 0);
  Report(unshare(static_cast<int>(flags)));
}

// clone(CLONE_NEWUSER); with "invalid", CLONE_NEWUSER|CLONE_FS, which the
// kernel rejects with EINVAL.
[[noreturn]] void CmdCloneNewuser(bool invalid) {
  unsigned long flags = CLONE_NEWUSER | SIGCHLD | (invalid ? CLONE_FS : 0);
  long pid = syscall(SYS_clone, flags, nullptr, nullptr, nullptr, 0);
  if (pid == 0) _exit(0);
  if (pid < 0) Fail(errno);
  int st;
  waitpid(static_cast<pid_t>(pid), &st, 0);
  Ok("child=created");
}

[[noreturn]] void CmdPtraceChild() {
  pid_t child = ForkPauser();
  if (child < 0) Fail(errno, "step=fork");
  long rc = ptrace(PTRACE_ATTACH, child, nullptr, nullptr);
  int e = errno;
  if (rc == 0) {
    int st;
    waitpid(child, &st, 0);  // the attach stop
    ptrace(PTRACE_DETACH, child, nullptr, nullptr);
  }
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  if (rc != 0) Fail(e);
  Ok("attached=child");
}

[[noreturn]] void CmdPtraceTraceme() {
  int p[2];
  if (pipe(p) != 0) Fail(errno, "step=pipe");
  pid_t child = fork();
  if (child == 0) {
    int r = ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) == 0 ? 0 : errno;
    (void)!write(p[1], &r, sizeof r);
    _exit(0);
  }
  close(p[1]);
  int r = -1;
  (void)!read(p[0], &r, sizeof r);
  int st;
  waitpid(child, &st, 0);
  if (r != 0) Fail(r);
  Ok("traceme=accepted");
}

// TIOCSTI on /dev/null: the kernel answers ENOTTY (not a terminal); the
// filter answers EPERM without looking at the descriptor.
[[noreturn]] void CmdTiocstiNull() {
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd < 0) Fail(errno, "step=open");
  char c = '\n';
  Report(ioctl(fd, TIOCSTI, &c));
}

// TIOCSTI on a terminal of our own: a fresh pty made our controlling
// terminal, so the kernel's own checks (same controlling tty) would pass.
[[noreturn]] void CmdTiocstiPty() {
  int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0) Fail(errno, "step=posix_openpt");
  if (grantpt(m) != 0 || unlockpt(m) != 0) Fail(errno, "step=unlockpt");
  char name[128];
  if (ptsname_r(m, name, sizeof name) != 0) Fail(errno, "step=ptsname");
  int p[2];
  if (pipe(p) != 0) Fail(errno, "step=pipe");
  pid_t child = fork();
  if (child == 0) {
    int r = 0;
    setsid();
    int s = open(name, O_RDWR | O_CLOEXEC);
    if (s < 0) r = 1000 + errno;
    else if (ioctl(s, TIOCSCTTY, 0) != 0) r = 2000 + errno;
    else {
      char c = 'x';
      if (ioctl(s, TIOCSTI, &c) != 0) r = errno;
    }
    (void)!write(p[1], &r, sizeof r);
    _exit(0);
  }
  close(p[1]);
  int r = -1;
  (void)!read(p[0], &r, sizeof r);
  waitpid(child, nullptr, 0);
  if (r >= 2000) Fail(r - 2000, "step=TIOCSCTTY");
  if (r >= 1000) Fail(r - 1000, "step=open_slave");
  if (r != 0) Fail(r, "step=TIOCSTI");
  Ok("injected=1");
}

// int $0x80: the i386 entry point, getpid (20 in the i386 table).
[[noreturn]] void CmdInt80() {
  long ret;
  asm volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory", "r8", "r9", "r10", "r11");
  if (ret < 0 && ret > -4096) Fail(static_cast<int>(-ret), "abi=i386");
  Ok("abi=i386 ret=" + std::to_string(ret));
}

// getpid through the x32 ABI (__X32_SYSCALL_BIT | 39).
[[noreturn]] void CmdX32() {
  long ret;
  asm volatile("syscall" : "=a"(ret) : "a"(kX32SyscallBit | 39L) : "rcx", "r11", "memory");
  if (ret < 0 && ret > -4096) Fail(static_cast<int>(-ret), "abi=x32");
  Ok("abi=x32 ret=" + std::to_string(ret));
}

// Forks children that wait, until fork fails or `max` are running.
[[noreturn]] void CmdForkbomb(long max) {
  std::vector<pid_t> kids;
  int err = 0;
  while (static_cast<long>(kids.size()) < max) {
    pid_t p = ForkPauser();
    if (p < 0) {
      err = errno;
      break;
    }
    kids.push_back(p);
  }
  // At the limit for a moment, as a real fork bomb stays (a pids limit kept
  // by RLIMIT_NPROC is seen reached only by sampling: memory_watch.h).
  if (err) usleep(1000 * 1000);
  for (pid_t p : kids) kill(p, SIGKILL);
  for (pid_t p : kids) waitpid(p, nullptr, 0);
  if (err) Fail(err, "forks=" + std::to_string(kids.size()));
  Ok("forks=" + std::to_string(kids.size()));
}

// Maps and touches `mib` MiB, one MiB at a time.
[[noreturn]] void CmdMemhog(long mib) {
  long done = 0;
  for (; done < mib; ++done) {
    void* p = mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) Fail(errno, "allocated_mib=" + std::to_string(done));
    memset(p, 0x5a, 1 << 20);
  }
  Ok("allocated_mib=" + std::to_string(done));
}

// memhog-procs MIB K SHARED: K child processes hold MIB MiB each for
// HOLD ms. SHARED=0: each child allocates and touches its own; SHARED=1:
// the parent touches MIB MiB once and the children only read their copy
// (the same pages, shared until written). ok if every child held its part.
[[noreturn]] void CmdMemhogProcs(long mib, long children, bool shared) {
  const size_t bytes = static_cast<size_t>(mib) << 20;
  char* mem = nullptr;
  if (shared) {
    mem = static_cast<char*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (mem == MAP_FAILED) Fail(errno, "step=mmap");
    memset(mem, 0x5a, bytes);
  }
  long held = 0;
  for (long i = 0; i < children; ++i) {
    pid_t pid = fork();
    if (pid < 0) Fail(errno, "step=fork held=" + std::to_string(held));
    if (pid == 0) {
      char* mine = mem;
      if (!shared) {
        mine = static_cast<char*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        if (mine == MAP_FAILED) _exit(2);
        memset(mine, 0x5a, bytes);
      }
      long sum = 0;
      for (size_t off = 0; off < bytes; off += 4096) sum += *static_cast<volatile char*>(mine + off);  // every page
      usleep(1000 * 1000);
      _exit(sum == 0x5a * static_cast<long>(bytes / 4096) ? 0 : 3);
    }
    ++held;
  }
  long ok = 0;
  for (long i = 0; i < children; ++i) {
    int st = 0;
    if (wait(&st) > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) ++ok;
  }
  if (ok != children) Fail(EIO, "held=" + std::to_string(ok));
  Ok("held=" + std::to_string(ok));
}

// memreserve MIB USED: reserves MIB MiB of address space (as V8, the JVM
// and Go do) and writes USED MiB of it.
[[noreturn]] void CmdMemreserve(long mib, long used) {
  const size_t bytes = static_cast<size_t>(mib) << 20;
  char* p = static_cast<char*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
  if (p == MAP_FAILED) Fail(errno, "step=mmap");
  memset(p, 0x5a, static_cast<size_t>(used) << 20);
  Ok("reserved_mib=" + std::to_string(mib));
}

// memfd-fill MIB: writes MIB MiB into a memfd (memory no mount bounds and
// no mapping shows), holds it 1 s, then says ok.
[[noreturn]] void CmdMemfdFill(long mib) {
  int fd = static_cast<int>(syscall(SYS_memfd_create, "ward-probe", 0));
  if (fd < 0) Fail(errno, "step=memfd_create");
  std::string chunk(1 << 20, 'x');
  for (long i = 0; i < mib; ++i) {
    if (write(fd, chunk.data(), chunk.size()) != static_cast<ssize_t>(chunk.size())) Fail(errno, "written_mib=" + std::to_string(i));
  }
  usleep(1000 * 1000);
  Ok("written_mib=" + std::to_string(mib));
}

// memhog-thread MIB: the main thread exits; another allocates and touches
// MIB MiB and holds it 1 s, then the process exits 0 (the review: with its
// main thread gone, a process's smaps_rollup says ESRCH).
[[noreturn]] void CmdMemhogThread(long mib) {
  static long want;
  want = mib;
  pthread_t t;
  if (pthread_create(&t, nullptr, [](void*) -> void* {
        usleep(50 * 1000);  // the main thread is gone by now
        const size_t bytes = static_cast<size_t>(want) << 20;
        void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) _exit(2);
        memset(p, 0x5a, bytes);
        usleep(1000 * 1000);
        printf("RESULT ok held_mib=%ld\n", want);
        fflush(stdout);
        _exit(0);
      }, nullptr) != 0) {
    Fail(errno, "step=pthread_create");
  }
  syscall(SYS_exit, 0);  // this thread only
  __builtin_unreachable();
}

// page-tables GIB: touches one byte every 2 MiB of a GIB GiB mapping (page
// tables of GIB/512 GiB, hardly any memory of the mapping's own), holds 1 s.
[[noreturn]] void CmdPageTables(long gib) {
  const size_t bytes = static_cast<size_t>(gib) << 30;
  char* p = static_cast<char*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
  if (p == MAP_FAILED) Fail(errno, "step=mmap");
  madvise(p, bytes, MADV_NOHUGEPAGE);
  for (size_t off = 0; off < bytes; off += 2 << 20) p[off] = 1;
  usleep(1000 * 1000);
  Ok("touched_gib=" + std::to_string(gib));
}

[[noreturn]] void CmdCaps() {
  FILE* f = fopen("/proc/self/status", "re");
  if (!f) Fail(errno, "step=open");
  std::string out;
  char line[512];
  const char* keys[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"};
  while (fgets(line, sizeof line, f)) {
    for (const char* k : keys) {
      size_t n = strlen(k);
      if (strncmp(line, k, n) == 0 && line[n] == ':') {
        const char* v = line + n + 1;
        while (*v == ' ' || *v == '\t') ++v;
        std::string val(v);
        while (!val.empty() && (val.back() == '\n' || val.back() == ' ')) val.pop_back();
        out += std::string(out.empty() ? "" : " ") + k + "=" + Clean(val);
      }
    }
  }
  fclose(f);
  Ok(out);
}

[[noreturn]] void CmdId() {
  gid_t groups[64];
  int n = getgroups(64, groups);
  std::string g;
  for (int i = 0; i < n; ++i) {
    if (!g.empty()) g += ',';
    g += std::to_string(groups[i]);
  }
  Ok("uid=" + std::to_string(getuid()) + " euid=" + std::to_string(geteuid()) + " gid=" + std::to_string(getgid()) +
     " egid=" + std::to_string(getegid()) + " groups=" + (g.empty() ? "-" : g));
}

[[noreturn]] void CmdPidns() {
  std::vector<long> pids = ProcPids();
  Ok("pid=" + std::to_string(getpid()) + " ppid=" + std::to_string(getppid()) + " nprocs=" +
     std::to_string(pids.size()) + " pids=" + Join(pids));
}

// True only where this process is plainly a sandbox's workload: a tiny pid
// in a /proc with a handful of processes. Guards kill(-1).
bool LooksSandboxed() {
  return getpid() <= 10 && ProcPids().size() < 20;
}

// kill(-1, SIGKILL): every process this one may signal in its pid
// namespace. A child is forked first so the call provably reached
// something.
[[noreturn]] void CmdKillAll() {
  if (!LooksSandboxed()) Usage("refusing kill(-1) outside a sandbox");
  pid_t child = ForkPauser();
  if (child < 0) Fail(errno, "step=fork");
  signal(SIGKILL, SIG_DFL);
  long rc = kill(-1, SIGKILL);
  int e = errno;
  int st = 0;
  waitpid(child, &st, 0);
  std::string killed = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL ? "1" : "0";
  if (rc != 0) Fail(e, "child_killed=" + killed);
  Ok("child_killed=" + killed);
}

[[noreturn]] void CmdKillChild() {
  pid_t child = ForkPauser();
  if (child < 0) Fail(errno, "step=fork");
  long rc = kill(child, SIGKILL);
  int e = errno;
  int st = 0;
  waitpid(child, &st, 0);
  if (rc != 0) Fail(e);
  Ok(std::string("child_killed=") + (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL ? "1" : "0"));
}

// Waits (up to 20 s) for SIGTERM with a handler installed; on SIGTERM,
// writes `file` and exits 42. Before waiting it spawns an orphan (marker)
// and writes `ready`.
[[noreturn]] void CmdTrapTerm(const std::string& file, const std::string& ready, const std::string& marker,
                              const std::string& pidfile) {
  struct sigaction sa{};
  sa.sa_handler = OnTerm;
  sigaction(SIGTERM, &sa, nullptr);
  if (!SpawnOrphan(marker, pidfile)) Fail(errno, "step=spawn_orphan");
  if (!WriteFile(ready, "ready\n")) Fail(errno, "step=ready");
  for (int i = 0; i < 20000 && !g_term; ++i) SleepMs(1);
  if (!g_term) {
    printf("RESULT errno=ETIMEDOUT step=wait_sigterm\n");
    fflush(stdout);
    _exit(0);
  }
  if (!WriteFile(file, "got-SIGTERM\n")) _exit(3);
  printf("RESULT ok got=SIGTERM\n");
  fflush(stdout);
  _exit(42);
}

// Ignores SIGTERM and writes `ready`, then sleeps (up to 20 s).
[[noreturn]] void CmdIgnoreTerm(const std::string& ready) {
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  if (!WriteFile(ready, "ready\n")) Fail(errno, "step=ready");
  SleepMs(20000);
  Ok("slept=20000");
}

int Main(int argc, char** argv) {
  if (argc < 2) Usage("usage: escape_probe SUBCOMMAND [ARGS...]");
  const std::string cmd = argv[1];
  auto arg = [&](int i) { return Arg(argc, argv, i); };
  auto has = [&](int i, const char* word) { return argc > i && strcmp(argv[i], word) == 0; };

  // Files and paths.
  if (cmd == "read") ReadPath(arg(2));
  if (cmd == "write") WritePath(arg(2));
  if (cmd == "open-via-symlink") CmdOpenViaSymlink(arg(2), arg(3));
  if (cmd == "hardlink") CmdHardlink(arg(2), arg(3));
  if (cmd == "read-proc-root") ReadPath("/proc/self/root" + arg(2));
  if (cmd == "read-proc-cwd") ReadPath("/proc/" + arg(2) + "/cwd/" + arg(3));
  if (cmd == "read-fd") {
    int fd = static_cast<int>(Num(arg(2)));
    if (fcntl(fd, F_GETFD) < 0) Fail(errno, "step=fcntl");
    ReadFd(fd, "read");
  }
  if (cmd == "openat-fd") {  // a leaked directory descriptor as a way out
    int fd = static_cast<int>(Num(arg(2)));
    int f = openat(fd, arg(3).c_str(), O_RDONLY | O_CLOEXEC);
    if (f < 0) Fail(errno, "step=openat");
    ReadFd(f, "read");
  }
  if (cmd == "open-write") {
    // Opens for writing and writes nothing: whether the kernel would let a
    // write through, without making one (for files like
    // /proc/sysrq-trigger where a write is the damage).
    int fd = open(arg(2).c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) Fail(errno);
    close(fd);
    Ok("opened=write");
  }
  // Modes, owners and set-id bits (escape_seams_test.cc).
  auto mode = [&](int i) { return static_cast<mode_t>(std::strtoul(arg(i).c_str(), nullptr, 8)); };
  if (cmd == "chmod") Report(chmod(arg(2).c_str(), mode(3)));
  if (cmd == "fchmod-fd") Report(fchmod(static_cast<int>(Num(arg(2))), mode(3)));
  if (cmd == "fchmodat2") Report(syscall(452, AT_FDCWD, arg(2).c_str(), mode(3), 0));
  if (cmd == "chown-fd") Report(fchown(static_cast<int>(Num(arg(2))), static_cast<uid_t>(Num(arg(3))), static_cast<gid_t>(-1)));
  if (cmd == "utime-fd") Report(futimens(static_cast<int>(Num(arg(2))), nullptr));
  if (cmd == "create-mode") {  // open(O_CREAT) with a mode, then its mode as the kernel made it
    int fd = open(arg(2).c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode(3));
    if (fd < 0) Fail(errno);
    struct stat st;
    fstat(fd, &st);
    char m[8];
    snprintf(m, sizeof m, "%04o", st.st_mode & 07777);
    Ok(std::string("mode=") + m);
  }
  if (cmd == "tmpfile-mode") Report(open(arg(2).c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, mode(3)));
  if (cmd == "mknod-reg") Report(mknod(arg(2).c_str(), S_IFREG | mode(3), 0));
  if (cmd == "openat2") {
    struct {
      uint64_t flags, mode, resolve;
    } how{O_RDONLY, 0, 0};
    Report(syscall(437, AT_FDCWD, arg(2).c_str(), &how, sizeof how));
  }
  if (cmd == "raw-syscall") {  // NR with NULL pointers and zero flags: EFAULT/EINVAL from the kernel
    Report(syscall(Num(arg(2)), nullptr, nullptr, 0, nullptr, 0));  // NULL pointers: EFAULT
  }
  if (cmd == "pwd") {  // the working directory
    char buf[4096];
    if (!getcwd(buf, sizeof buf)) Fail(errno);
    Ok(std::string("cwd=") + buf);
  }
  if (cmd == "cat-stdin") {  // reads stdin to its end; the content, newlines removed
    std::string all;
    char buf[4096];
    ssize_t n;
    while ((n = read(0, buf, sizeof buf)) > 0) all.append(buf, static_cast<size_t>(n));
    if (n < 0) Fail(errno);
    std::string kept;
    for (char c : all) {
      if (c != '\n' && c != '\r') kept += c;
    }
    Ok("content=" + Clean(kept));
  }
  if (cmd == "write-stderr-raw") {  // TEXT on stderr, no newline after it
    std::string text = arg(2);
    if (write(2, text.data(), text.size()) != static_cast<ssize_t>(text.size())) Fail(errno);
    Ok();
  }
  if (cmd == "fd-type") {  // what descriptor N is: a pipe, a file, a terminal...
    struct stat st;
    if (fstat(static_cast<int>(Num(arg(2))), &st) != 0) Fail(errno);
    Ok(std::string("type=") + (S_ISFIFO(st.st_mode) ? "fifo" : S_ISREG(st.st_mode) ? "file" : S_ISCHR(st.st_mode) ? "chr"
                               : S_ISSOCK(st.st_mode) ? "sock" : "other"));
  }
  if (cmd == "netlink-proto") Report(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, static_cast<int>(Num(arg(2)))));
  if (cmd == "fchmod-empty") Report(syscall(452, static_cast<int>(Num(arg(2))), "", mode(3), AT_EMPTY_PATH));
  if (cmd == "fd-path") {
    char buf[256];
    ssize_t n = readlink(("/proc/self/fd/" + arg(2)).c_str(), buf, sizeof buf - 1);
    if (n < 0) Fail(errno);
    Ok("path=" + std::string(buf, static_cast<size_t>(n)));
  }
  if (cmd == "steal-fifo") {  // races ward for the bytes of a FIFO it also reads (MS milliseconds)
    int fd = open(arg(2).c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) Fail(errno);
    long end = static_cast<long>(time(nullptr)) + Num(arg(3)) / 1000 + 1;
    char c = 'x';
    while (time(nullptr) < end) {
      (void)!write(fd, &c, 1);
      (void)!read(fd, &c, 1);
    }
    Ok();
  }
  if (cmd == "flood-stdout") {  // writes to stdout until killed
    static char line[4096];
    memset(line, 'x', sizeof line);
    for (;;) (void)!write(1, line, sizeof line);
  }
  if (cmd == "stty-raw") {  // what `stty raw -echo` does to descriptor N
    termios t;
    int fd = static_cast<int>(Num(arg(2)));
    if (tcgetattr(fd, &t) != 0) Fail(errno, "step=tcgetattr");
    cfmakeraw(&t);
    Report(tcsetattr(fd, TCSANOW, &t));
  }
  if (cmd == "shm-fill") {  // N System V segments of 8 MiB, kept attached (removed at exit)
    long n = Num(arg(2));
    for (long i = 0; i < n; ++i) {
      int id = shmget(IPC_PRIVATE, 8 << 20, IPC_CREAT | 0600);
      if (id < 0) Fail(errno, "made=" + std::to_string(i));
      void* p = shmat(id, nullptr, 0);
      shmctl(id, IPC_RMID, nullptr);
      if (p == reinterpret_cast<void*>(-1)) Fail(errno, "step=shmat");
      memset(p, 1, 8 << 20);
    }
    Ok("made=" + std::to_string(n));
  }
  if (cmd == "uid-map") {
    std::string m;
    if (!ReadWhole("/proc/self/uid_map", &m)) Fail(errno);
    std::string words;
    std::stringstream ss(m);
    std::string w;
    while (ss >> w) words += (words.empty() ? "" : ",") + w;
    Ok("map=" + words);
  }
  if (cmd == "mknod-null") Report(mknod(arg(2).c_str(), S_IFCHR | 0666, makedev(1, 3)));
  if (cmd == "write-big") {
    // write-big FILE MIB: writes MIB MiB (RLIMIT_FSIZE: EFBIG with SIGXFSZ
    // ignored, death by SIGXFSZ otherwise).
    if (has(4, "ignore-sigxfsz")) signal(SIGXFSZ, SIG_IGN);
    int fd = open(arg(2).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) Fail(errno, "step=open");
    static char mib[1 << 20];
    long n = Num(arg(3));
    for (long i = 0; i < n; ++i) {
      if (write(fd, mib, sizeof mib) != static_cast<ssize_t>(sizeof mib)) Fail(errno, "written_mib=" + std::to_string(i));
    }
    Ok("written_mib=" + std::to_string(n));
  }
  if (cmd == "open-many") {
    long n = Num(arg(2)), i = 0;
    for (; i < n; ++i) {
      if (open("/dev/null", O_RDONLY | O_CLOEXEC) < 0) Fail(errno, "opened=" + std::to_string(i));
    }
    Ok("opened=" + std::to_string(i));
  }
  if (cmd == "spin") {  // burns CPU for MS milliseconds of CPU time
    long ms = Num(arg(2));
    timespec ts;
    volatile uint64_t x = 0;
    for (;;) {
      for (int i = 0; i < 1000000; ++i) x = x + 1;
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
      if (ts.tv_sec * 1000 + ts.tv_nsec / 1000000 >= ms) break;
    }
    Ok("spun_ms=" + std::to_string(ms));
  }
  if (cmd == "shmget") {  // attaches to an existing SysV shared memory key
    int id = shmget(static_cast<key_t>(Num(arg(2))), 0, 0);
    if (id < 0) Fail(errno);
    void* m = shmat(id, nullptr, SHM_RDONLY);
    if (m == reinterpret_cast<void*>(-1)) Fail(errno, "step=shmat");
    Ok("content=" + Clean(std::string(static_cast<const char*>(m), strnlen(static_cast<const char*>(m), 64))));
  }
  if (cmd == "unlink") Report(unlink(arg(2).c_str()));
  if (cmd == "rename") Report(rename(arg(2).c_str(), arg(3).c_str()));
  if (cmd == "ls") CmdLs(arg(2));
  if (cmd == "stat") CmdStat(arg(2));

  // System calls the filter denies (bad arguments: harmless if let through).
  if (cmd == "mount") Report(mount(static_cast<const char*>(kBadPtr), static_cast<const char*>(kBadPtr),
                                   static_cast<const char*>(kBadPtr), 0, nullptr));
  if (cmd == "umount") Report(umount2(static_cast<const char*>(kBadPtr), 0));
  if (cmd == "pivot-root") Report(syscall(SYS_pivot_root, kBadPtr, kBadPtr));
  if (cmd == "chroot") Report(chroot(static_cast<const char*>(kBadPtr)));
  if (cmd == "setns") Report(syscall(SYS_setns, -1, 0));
  if (cmd == "unshare-user") CmdUnshare("user", has(2, "invalid"));
  if (cmd == "unshare-net") CmdUnshare("net", has(2, "invalid"));
  if (cmd == "unshare") CmdUnshare(arg(2), has(3, "invalid"));
  if (cmd == "clone-newuser") CmdCloneNewuser(has(2, "invalid"));
  if (cmd == "clone3") Report(syscall(SYS_clone3, nullptr, 0));  // EINVAL: size 0
  if (cmd == "ptrace-init") Report(ptrace(PTRACE_ATTACH, 1, nullptr, nullptr));
  if (cmd == "ptrace-child") CmdPtraceChild();
  if (cmd == "ptrace-traceme") CmdPtraceTraceme();
  if (cmd == "process-vm-readv") Report(syscall(SYS_process_vm_readv, getpid(), kBadPtr, 1, kBadPtr, 1, 0));
  if (cmd == "tiocsti") {
    if (has(2, "pty")) CmdTiocstiPty();
    CmdTiocstiNull();
  }
  if (cmd == "tiocsti-fd0") {  // whatever terminal ward's caller passed as stdin
    char c = 'x';
    Report(ioctl(0, TIOCSTI, &c));
  }
  if (cmd == "tioclinux") {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    char sub = 0;
    Report(ioctl(fd, TIOCLINUX, &sub));
  }
  if (cmd == "keyctl") Report(syscall(SYS_keyctl, 0x7fffffff, 0, 0, 0, 0));  // EOPNOTSUPP
  if (cmd == "keyctl-session") Report(syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
  if (cmd == "add_key") Report(syscall(SYS_add_key, kBadPtr, kBadPtr, nullptr, 0, KEY_SPEC_PROCESS_KEYRING));
  if (cmd == "request_key") Report(syscall(SYS_request_key, kBadPtr, kBadPtr, nullptr, 0));
  if (cmd == "bpf") Report(syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, kBadPtr, 64));  // EFAULT
  if (cmd == "perf_event_open") Report(syscall(SYS_perf_event_open, kBadPtr, 0, -1, -1, 0));
  if (cmd == "userfaultfd") Report(syscall(SYS_userfaultfd, kUffdUserModeOnly | 0x2));  // EINVAL
  if (cmd == "io_uring_setup") Report(syscall(SYS_io_uring_setup, 1, kBadPtr));
  if (cmd == "open_by_handle_at") Report(syscall(SYS_open_by_handle_at, -1, kBadPtr, O_RDONLY));
  if (cmd == "name_to_handle_at") Report(syscall(SYS_name_to_handle_at, AT_FDCWD, "/", kBadPtr, kBadPtr, 0));
  if (cmd == "personality") {
    // "query": 0xffffffff; "linux": PER_LINUX; "no-aslr": ADDR_NO_RANDOMIZE.
    std::string what = arg(2);
    unsigned long p;
    if (what == "query") p = 0xffffffffUL;
    else if (what == "linux") p = PER_LINUX;
    else if (what == "no-aslr") p = ADDR_NO_RANDOMIZE;
    else if (what == "read-implies-exec") p = READ_IMPLIES_EXEC;
    else p = static_cast<unsigned long>(Num(what));
    Report(syscall(SYS_personality, p));
  }
  if (cmd == "int80") CmdInt80();
  if (cmd == "x32") CmdX32();

  // Network.
  if (cmd == "connect-tcp") CmdConnectTcp(arg(2), Num(arg(3)));
  if (cmd == "direct-disconnect-listen") CmdDirectDisconnectListen(arg(2), Num(arg(3)));
  if (cmd == "tfo-sendto") CmdTfoSendto(arg(2), Num(arg(3)));
  if (cmd == "socket-question") CmdSocketQuestions(arg(2), Num(arg(3)), arg(4));
  if (cmd == "socket-family") CmdSocketFamily(Num(arg(2)));
  if (cmd == "bind-port") CmdBindPort(Num(arg(2)));
  if (cmd == "race-direct") CmdRaceDirect(arg(2), Num(arg(3)), Num(arg(4)), Num(arg(5)));
  if (cmd == "nft-delete-table") CmdNftDeleteTable(has(2, "own-netns"));
  if (cmd == "connect-abstract") CmdConnectAbstract(arg(2));
  if (cmd == "loopback") CmdLoopback();
  if (cmd == "connect-loop") CmdConnectLoop(Num(arg(2)));
  if (cmd == "connect-unix") CmdConnectUnix(arg(2), argc > 3 ? arg(3) : "stream");
  if (cmd == "unix-self") CmdUnixSelf(arg(2), arg(3), has(4, "relative"));
  if (cmd == "unix-dgram") CmdUnixDgram(has(2, "pair") || has(3, "pair"), has(2, "raw") || has(3, "raw"));
  if (cmd == "netlink-connect") CmdNetlinkConnect(Num(arg(2)), argc > 3 ? Num(arg(3)) : 0);
  if (cmd == "race-unix") CmdRaceUnix(arg(2), arg(3), Num(arg(4)));
  if (cmd == "fifo-write") CmdFifoWrite(arg(2), arg(3));

  // Processes and namespaces.
  if (cmd == "kill") Report(kill(static_cast<pid_t>(Num(arg(2))), argc > 3 ? static_cast<int>(Num(arg(3))) : SIGKILL));
  if (cmd == "kill-child") CmdKillChild();
  if (cmd == "kill-all") CmdKillAll();
  if (cmd == "pidns") CmdPidns();
  if (cmd == "forkbomb") CmdForkbomb(argc > 2 ? Num(arg(2)) : 100000);
  if (cmd == "memhog") CmdMemhog(Num(arg(2)));
  if (cmd == "memhog-thread") CmdMemhogThread(Num(arg(2)));
  if (cmd == "page-tables") CmdPageTables(Num(arg(2)));
  if (cmd == "memfd-fill") CmdMemfdFill(Num(arg(2)));
  if (cmd == "memreserve") CmdMemreserve(Num(arg(2)), Num(arg(3)));
  if (cmd == "memhog-procs") CmdMemhogProcs(Num(arg(2)), Num(arg(3)), Num(arg(4)) != 0);
  if (cmd == "spawn-orphan") {
    // spawn-orphan MARKER PIDFILE [HOLD_MS]: leave a sleeper behind, then
    // exit (after HOLD_MS, so the host can see it while the sandbox runs).
    if (!SpawnOrphan(arg(2), arg(3))) Fail(errno, "step=spawn");
    if (argc > 4) SleepMs(Num(arg(4)));
    Ok("orphan=spawned");
  }
  if (cmd == "sleeper") Sleeper(arg(2));
  if (cmd == "trap-term") CmdTrapTerm(arg(2), arg(3), arg(4), arg(5));
  if (cmd == "ignore-term") CmdIgnoreTerm(arg(2));
  if (cmd == "sleep") {
    SleepMs(Num(arg(2)));
    Ok();
  }
  if (cmd == "exit") {
    fflush(stdout);
    _exit(static_cast<int>(Num(arg(2))));
  }
  if (cmd == "signal") {
    int sig = static_cast<int>(Num(arg(2)));
    signal(sig, SIG_DFL);
    prctl(PR_SET_DUMPABLE, 0);  // no core file, whatever the host's settings
    kill(getpid(), sig);
    SleepMs(5000);
    Ok("survived=1");
  }

  // Identity.
  if (cmd == "env") {
    int n = 0;
    for (char** e = environ; *e; ++e, ++n) printf("ENV %s\n", *e);
    Ok("count=" + std::to_string(n));
  }
  if (cmd == "caps") CmdCaps();
  if (cmd == "hostname") {
    utsname u{};
    if (uname(&u) != 0) Fail(errno);
    Ok(std::string("hostname=") + Clean(u.nodename));
  }
  if (cmd == "id" || cmd == "whoami") CmdId();
  Usage(("unknown subcommand " + cmd).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && strcmp(argv[1], "in-userns") == 0) {
    // Positive controls only: run a subcommand in a fresh user and mount
    // namespace (in this process: an exec would drop the namespace's
    // capabilities), where calls that need CAP_SYS_ADMIN over the mount
    // namespace (pivot_root) get past the kernel's permission check.
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) Fail(errno, "step=unshare");
    return Main(argc - 1, argv + 1);
  }
  return Main(argc, argv);
}
