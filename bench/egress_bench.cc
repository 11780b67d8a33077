// ward_egress_bench: what ward's egress mode ("network": {"egress": ...})
// costs, each figure a ratio or difference against a baseline measured in
// the same run, the runners interleaved round by round (their order
// shuffled anew each round) so that a noisy, shared machine slows them all
// alike. Bulk and latency also run a third runner for scale: the client
// through a minimal splice() relay in this process, the floor for any
// user-space proxy.
//
//   bulk     one download of --bulk-mib MiB (default 1 GiB) from a local
//            server: ward_egress_client inside `ward run` against the same
//            client run directly. Throughput as the client measures it,
//            connect() to EOF. Target: ratio >= 0.8.
//   latency  --connections sequential connections per process, each
//            connect() + a one-write HTTP request + the first byte of the
//            answer, as the client measures it; every connection of every
//            round pooled. Target: median through ward - median direct
//            <= 1 ms.
//   banner   the same for a server that speaks first (SSH, SMTP): the
//            client sends nothing and times connect() to the greeting's
//            first byte. Reported against the same target, with fewer
//            rounds by default.
//   startup  `ward run -- /bin/true` with an egress allow-list against the
//            same policy with "network": "none", wall time from spawn to
//            reap, as in ward_startup_bench. Target: difference of the
//            medians <= 5 ms.
//
// Bulk, latency and banner run once for each --via, the way the sandboxed
// client reaches the server (each with its own policy):
//   loopback  the servers on 127.0.0.1, reached as host.ward.internal under
//             "host.ward.internal:8080,8081": a direct socket
//             (net/connect_notify.h). The "from a loopback server".
//   address   203.0.113.1 under "203.0.113.1:8080,8081", no DNS: a direct socket.
//   domain    bulk.test (resolved through ward's DNS filter) under
//             "bulk.test:8080,8081": through ward's proxy, which reads the
//             first bytes (the Host) before forwarding them.
// Default: loopback and domain.
//
// The hermetic network. The servers need an address other than loopback for
// the address and domain ways: the benchmark first moves itself
// into a new network namespace (as root: unshare(CLONE_NEWNET); otherwise
// with a new user namespace mapping only its own uid and gid, as
// `unshare --user --map-current-user --net` does), adds a veth pair b0/b1
// with 198.51.100.1/24 on b0, and a local route for 203.0.113.0/24 on lo:
// 203.0.113.1 (the HTTP server, port 8080; the greeting server, 8081) and
// 203.0.113.53 (a DNS server answering A bulk.test -> 203.0.113.1, NXDOMAIN
// for other names), served from threads of its own, on 203.0.113.1 and on
// 127.0.0.1. Documentation addresses on no interface: ward's DNS rebinding
// guard closes private blocks and the host's interface addresses to names
// (net/tcp_decision.h), and these servers stand for remote ones.
// Every runner, ward included, starts in that namespace (the namespace is
// the "host" of the sandboxes); the direct client connects to 127.0.0.1
// (loopback) or 203.0.113.1.
//
// Every child is started the same way (posix_spawn, stdin on /dev/null,
// stdout and stderr on pipes read only after the child is reaped). Each ward
// run's --json result must show ward's "allow" decision for the
// connection, so a run that bypassed ward cannot count as one through it. The exit status is non-zero only on errors, never for missing a target:
// the verdicts are printed (PASS / MISS).
#include <CLI/CLI.hpp>
#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"

extern char** environ;

namespace {

using namespace ward::bench;  // NOLINT: the shared helpers of bench_util.h

using Json = nlohmann::json;

// The benchmark's made-up network (see the top of the file).
constexpr char kServerAddr[] = "203.0.113.1";
constexpr char kDnsAddr[] = "203.0.113.53";
constexpr char kServerName[] = "bulk.test";
constexpr char kLoopbackAddr[] = "127.0.0.1";  // reached from the sandbox as host.ward.internal
constexpr uint16_t kServerPort = 8080;
constexpr uint16_t kBannerPort = 8081;
constexpr uint16_t kRelayPort = 8090;  // SpliceRelay -> kServerPort
constexpr char kBanner[] = "SSH-2.0-ward_egress_bench\r\n";

// ---------------------------------------------------------------------------
// Statistics as JSON (the order statistics: bench_util.h).

Json Round3(double d) { return std::isnan(d) ? Json(nullptr) : Json(std::round(d * 1000) / 1000); }

Json StatsJson(const Stats& s, std::string unit) {
  if (!unit.empty()) unit = "_" + unit;
  return {{"n", s.n}, {"median" + unit, Round3(s.median)}, {"p10" + unit, Round3(s.p10)},
          {"p90" + unit, Round3(s.p90)}, {"min" + unit, Round3(s.min)}, {"max" + unit, Round3(s.max)}};
}

// ---------------------------------------------------------------------------
// The benchmark's own network namespace.

void WriteFile(const std::string& path, const std::string& text) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) Die(Errno("open \"" + path + "\""));
  if (write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) Die(Errno("write \"" + path + "\" (" + text + ")"));
  close(fd);
}

// Gives the programs this process starts `cap` (unprivileged case: the
// process holds every capability of its new user namespace, but a non-root
// uid loses them on execve unless they are ambient). Undone by
// DropAmbientCaps before ward or the client is started.
void RaiseAmbientCap(int cap) {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &hdr, data) != 0) Die(Errno("capget"));
  data[cap / 32].inheritable |= 1u << (cap % 32);
  if (syscall(SYS_capset, &hdr, data) != 0) Die(Errno("capset (inheritable " + std::to_string(cap) + ")"));
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0) Die(Errno("prctl PR_CAP_AMBIENT_RAISE " + std::to_string(cap)));
}

void DropAmbientCaps() {
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) Die(Errno("prctl PR_CAP_AMBIENT_CLEAR_ALL"));
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &hdr, data) != 0) Die(Errno("capget"));
  data[0].inheritable = data[1].inheritable = 0;
  if (syscall(SYS_capset, &hdr, data) != 0) Die(Errno("capset (clear inheritable)"));
}

void RunIp(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  pid_t pid;
  int rc = posix_spawnp(&pid, "ip", nullptr, nullptr, cargv.data(), environ);
  if (rc != 0) {
    errno = rc;
    Die(Errno("posix_spawnp \"" + cmd + "\" (iproute2 is needed to build the benchmark's network)"));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) Die("\"" + cmd + "\" failed (see its message above)");
}

// Returns how the namespace was made, for the report.
std::string EnterBenchNamespace() {
  std::string how;
  if (geteuid() == 0) {
    if (unshare(CLONE_NEWNET) != 0) Die(Errno("unshare(CLONE_NEWNET)"));
    how = "unshare(CLONE_NEWNET) as root";
  } else {
    const uid_t uid = getuid();
    const gid_t gid = getgid();
    if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) Die(Errno("unshare(CLONE_NEWUSER | CLONE_NEWNET)"));
    WriteFile("/proc/self/setgroups", "deny");
    WriteFile("/proc/self/uid_map", std::to_string(uid) + " " + std::to_string(uid) + " 1");
    WriteFile("/proc/self/gid_map", std::to_string(gid) + " " + std::to_string(gid) + " 1");
    RaiseAmbientCap(CAP_NET_ADMIN);
    how = "unshare(CLONE_NEWUSER | CLONE_NEWNET), uid " + std::to_string(uid) + " mapped to itself";
  }
  RunIp({"link", "set", "lo", "up"});
  RunIp({"link", "add", "b0", "type", "veth", "peer", "name", "b1"});
  RunIp({"link", "set", "b0", "up"});
  RunIp({"link", "set", "b1", "up"});
  RunIp({"addr", "add", "198.51.100.1/24", "dev", "b0"});
  RunIp({"route", "add", "local", "203.0.113.0/24", "dev", "lo"});
  if (geteuid() != 0) DropAmbientCaps();
  return how;
}

// ---------------------------------------------------------------------------
// Servers, on threads of this process.

int ListenOn(const char* addr, uint16_t port, int type) {
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (fd < 0) Die(Errno("socket"));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, addr, &sa.sin_addr);
  const std::string where = std::string(addr) + ":" + std::to_string(port);
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) Die(Errno("bind " + where));
  if (type == SOCK_STREAM && listen(fd, 128) != 0) Die(Errno("listen " + where));
  return fd;
}

// Listens on addr:port and runs `serve(fd)` for each connection on a thread
// of its own, for the life of the process.
template <typename F>
void ServeTcp(const char* addr, uint16_t port, F serve) {
  int listen_fd = ListenOn(addr, port, SOCK_STREAM);
  std::thread([listen_fd, serve] {
    for (;;) {
      int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        Die(Errno("accept4"));
      }
      std::thread([serve, fd] { serve(fd); }).detach();
    }
  }).detach();
}

// HTTP/1.1, just enough: "GET /bytes/N" answers 200 with N bytes of body and
// closes; anything else 404. Large bodies go out with sendfile from a memfd,
// so the server's own CPU (on the same two cores as client and proxy) stays
// small, as a remote server's would not count at all.
class HttpServer {
 public:
  void Start(const char* addr, uint16_t port) {
    body_fd_ = memfd_create("ward-egress-bench-body", MFD_CLOEXEC);
    if (body_fd_ < 0) Die(Errno("memfd_create"));
    std::string chunk(kChunk, '\0');
    for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>('a' + i % 26);
    if (write(body_fd_, chunk.data(), chunk.size()) != static_cast<ssize_t>(chunk.size())) Die(Errno("write memfd"));
    ServeTcp(addr, port, [this](int fd) { Serve(fd); });
  }

 private:
  static constexpr size_t kChunk = 4 << 20;

  static bool SendAll(int fd, const char* p, size_t n, int flags) {
    while (n > 0) {
      ssize_t w = send(fd, p, n, MSG_NOSIGNAL | flags);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }

  void Serve(int fd) {
    std::string req;
    char buf[4096];
    while (req.find("\r\n\r\n") == std::string::npos && req.size() < 65536) {
      ssize_t n = read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      req.append(buf, static_cast<size_t>(n));
    }
    unsigned long long bytes = 0;
    const bool ok = req.find("\r\n\r\n") != std::string::npos && std::sscanf(req.c_str(), "GET /bytes/%llu ", &bytes) == 1;
    if (!ok) {
      static const char kNotFound[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      SendAll(fd, kNotFound, sizeof kNotFound - 1, 0);
      close(fd);
      return;
    }
    std::string head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " + std::to_string(bytes) +
                       "\r\nConnection: close\r\n\r\n";
    if (bytes <= 65536) {
      // One write: the first byte the client times is the whole answer.
      head.append(static_cast<size_t>(bytes), 'a');
      SendAll(fd, head.data(), head.size(), 0);
    } else if (SendAll(fd, head.data(), head.size(), MSG_MORE)) {
      uint64_t left = bytes;
      while (left > 0) {
        off_t off = 0;
        size_t n = static_cast<size_t>(std::min<uint64_t>(left, kChunk));
        ssize_t w = sendfile(fd, body_fd_, &off, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;  // the client went away: its own report says so
        left -= static_cast<uint64_t>(w);
      }
    }
    close(fd);
  }

  int body_fd_ = -1;
};

// Speaks first: sends kBanner at once, then waits for the client to close.
class BannerServer {
 public:
  void Start(const char* addr, uint16_t port) {
    ServeTcp(addr, port, [](int fd) {
      if (send(fd, kBanner, sizeof kBanner - 1, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof kBanner - 1)) {
        shutdown(fd, SHUT_WR);
        char buf[256];
        while (read(fd, buf, sizeof buf) > 0) {
        }
      }
      close(fd);
    });
  }
};

// The floor for a user-space proxy: accepts on kRelayPort, connects to the
// HTTP server and moves bytes socket -> pipe -> socket with blocking
// splice(), one thread per direction. No interception, no decision, no
// namespace crossing: what is left of ward's cost above it is ward's own.
class SpliceRelay {
 public:
  void Start(const char* addr, uint16_t port, uint16_t upstream_port) {
    upstream_.sin_family = AF_INET;
    upstream_.sin_port = htons(upstream_port);
    inet_pton(AF_INET, addr, &upstream_.sin_addr);
    ServeTcp(addr, port, [this](int client) { Relay(client); });
  }

 private:
  static void Pump(int from, int to) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) == 0) {
      fcntl(p[1], F_SETPIPE_SZ, 1 << 20);  // as ward's relay
      for (;;) {
        ssize_t n = splice(from, nullptr, p[1], nullptr, 1 << 20, SPLICE_F_MOVE | SPLICE_F_MORE);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        while (n > 0) {
          // No SPLICE_F_MORE here: it corks the socket (a small answer would
          // wait for the 200 ms cork timer).
          ssize_t w = splice(p[0], nullptr, to, nullptr, static_cast<size_t>(n), SPLICE_F_MOVE);
          if (w < 0 && errno == EINTR) continue;
          if (w <= 0) break;
          n -= w;
        }
        if (n > 0) break;
      }
      close(p[0]);
      close(p[1]);
    }
    shutdown(to, SHUT_WR);
  }

  void Relay(int client) {
    int server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (server >= 0 && connect(server, reinterpret_cast<const sockaddr*>(&upstream_), sizeof upstream_) == 0) {
      std::thread up([=] { Pump(client, server); });
      Pump(server, client);
      up.join();
    }
    if (server >= 0) close(server);
    close(client);
  }

  sockaddr_in upstream_{};
};

// UDP DNS: A kServerName -> kServerAddr; the name's other types: no data;
// every other name: NXDOMAIN. Counts the questions, so the report can show
// that the sandboxed client's lookup really went through ward's filter to it.
class DnsServer {
 public:
  void Start(const char* addr) {
    fd_ = ListenOn(addr, 53, SOCK_DGRAM);
    std::thread([this] { Loop(); }).detach();
  }
  uint64_t questions() const { return questions_.load(); }

 private:
  void Loop() {
    uint8_t q[1500];
    for (;;) {
      sockaddr_storage from{};
      socklen_t len = sizeof from;
      ssize_t n = recvfrom(fd_, q, sizeof q, 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) Die(Errno("recvfrom (DNS server)"));
      std::vector<uint8_t> a;
      if (!Answer(q, static_cast<size_t>(n), &a)) continue;  // not a query we understand: dropped
      questions_.fetch_add(1);
      sendto(fd_, a.data(), a.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  }

  static bool Answer(const uint8_t* q, size_t n, std::vector<uint8_t>* out) {
    if (n < 12 || (q[2] & 0x80) != 0 || q[4] != 0 || q[5] != 1) return false;  // a query with one question
    size_t p = 12;
    std::string name;
    while (p < n && q[p] != 0) {
      size_t l = q[p];
      if (l > 63 || p + 1 + l >= n) return false;
      if (!name.empty()) name += '.';
      for (size_t i = 0; i < l; ++i) name += static_cast<char>(std::tolower(q[p + 1 + i]));
      p += 1 + l;
    }
    if (p + 5 > n) return false;
    const size_t qend = p + 5;  // root label, type, class
    const uint16_t qtype = static_cast<uint16_t>(q[p + 1] << 8 | q[p + 2]);
    const bool known = name == kServerName;
    const bool answer = known && qtype == 1;
    out->assign(q, q + qend);
    (*out)[2] = static_cast<uint8_t>(0x80 | (q[2] & 0x01));  // QR, RD copied
    (*out)[3] = known ? 0x80 : 0x83;                          // RA; NOERROR or NXDOMAIN
    (*out)[6] = 0;
    (*out)[7] = answer ? 1 : 0;                               // ANCOUNT
    (*out)[8] = (*out)[9] = (*out)[10] = (*out)[11] = 0;      // no authority, no additional (EDNS dropped)
    if (answer) {
      uint8_t rr[16] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4};
      inet_pton(AF_INET, kServerAddr, rr + 12);
      out->insert(out->end(), rr, rr + sizeof rr);
    }
    return true;
  }

  int fd_ = -1;
  std::atomic<uint64_t> questions_{0};
};

// ---------------------------------------------------------------------------
// Running one child.

struct Outcome {
  double ms = 0;          // posix_spawn to waitpid returning
  double cpu_ms = 0;      // user + system time of the child and the descendants it reaped
  double self_cpu_ms = 0;  // this process's (the servers') user + system time meanwhile
  int status = 0;
  std::string out, err;
};

double CpuMs(const rusage& ru) {
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

class Spawner {
 public:
  explicit Spawner(int timeout_s) : timeout_ms_(timeout_s * 1000) {
    devnull_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull_ < 0) Die(Errno("open /dev/null"));
  }

  // stdout and stderr go to pipes (1 MiB each, so that neither blocks the
  // child: --connections is bounded accordingly) read after the child is
  // reaped, so reading costs nothing inside the measured time. A child still
  // running after the timeout is killed and the benchmark stops.
  Outcome Run(const std::vector<std::string>& argv) {
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) Die(Errno("pipe2"));
    fcntl(out[1], F_SETPIPE_SZ, 1 << 20);
    fcntl(err[1], F_SETPIPE_SZ, 1 << 20);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, devnull_, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);

    Outcome o;
    pid_t pid;
    rusage self0{}, self1{}, child{};
    getrusage(RUSAGE_SELF, &self0);
    const int64_t t0 = NowNs();
    int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
    if (rc == 0) Wait(pid, &o.status, &child, argv[0]);
    const int64_t t1 = NowNs();
    getrusage(RUSAGE_SELF, &self1);
    o.cpu_ms = CpuMs(child);
    o.self_cpu_ms = CpuMs(self1) - CpuMs(self0);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    close(err[1]);
    if (rc != 0) {
      errno = rc;
      Die(Errno("posix_spawn \"" + argv[0] + "\""));
    }
    o.ms = static_cast<double>(t1 - t0) / 1e6;
    o.out = Drain(out[0]);
    o.err = Drain(err[0]);
    return o;
  }

 private:
  void Wait(pid_t pid, int* status, rusage* ru, const std::string& what) {
    // A pidfd to wait with a timeout; waitpid reaps.
    int pfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    if (pfd >= 0) {
      pollfd p{pfd, POLLIN, 0};
      int n;
      while ((n = poll(&p, 1, timeout_ms_)) < 0 && errno == EINTR) {
      }
      close(pfd);
      if (n == 0) {
        kill(pid, SIGKILL);
        wait4(pid, status, 0, ru);
        Die("\"" + what + "\" still running after " + std::to_string(timeout_ms_ / 1000) + " s: killed (--timeout-s)");
      }
    }
    while (wait4(pid, status, 0, ru) < 0 && errno == EINTR) {
    }
  }

  static std::string Drain(int fd) {
    std::string s;
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) s.append(buf, static_cast<size_t>(n));
    close(fd);
    return s;
  }

  int devnull_ = -1;
  int timeout_ms_;
};

// ---------------------------------------------------------------------------
// Runners and sections.

struct Runner {
  std::string name;
  std::string description;
  std::vector<std::string> argv;
  bool ward = false;  // its stderr ends with ward's --json result
};

// What the sections need from one ward run's --json result.
struct WardResult {
  Json json;
  int allowed_tcp = 0;  // "allow" decisions for connections to `port`
  int denied = 0;
  std::string first_denial;
};

WardResult ParseWard(const Runner& r, const Outcome& o, uint16_t port) {
  WardResult w;
  w.json = Json::parse(LastLine(o.err), nullptr, false);
  if (w.json.is_discarded() || !w.json.contains("phases")) Die(r.name + ": ward printed no --json result: " + Trim(o.err, 800));
  for (const auto& e : w.json.value("egress", Json::array())) {
    const bool allow = e.value("decision", "") == "allow";
    if (allow && e.value("kind", "") == "tcp" && e.value("port", 0) == port) ++w.allowed_tcp;
    if (!allow && w.denied++ == 0) w.first_denial = e.dump();
  }
  return w;
}

// Runs `r` once; dies unless it exited 0 and, for ward, `want_allowed`
// connections to `port` were allowed by ward's proxy and nothing denied.
Outcome RunChecked(Spawner& sp, const Runner& r, int round, uint16_t port, int want_allowed, WardResult* ward_out) {
  Outcome o = sp.Run(r.argv);
  const std::string where = r.name + " (round " + std::to_string(round) + ")";
  if (!WIFEXITED(o.status) || WEXITSTATUS(o.status) != 0) {
    Die(where + " failed: " + DescribeStatus(o.status) + "\n  stderr: " + Trim(o.err, 1500) + "\n  command: " + r.description);
  }
  if (r.ward) {
    WardResult w = ParseWard(r, o, port);
    if (w.denied) Die(where + ": ward denied " + std::to_string(w.denied) + " egress request(s); first: " + w.first_denial);
    if (w.allowed_tcp != want_allowed) {
      Die(where + ": ward's --json shows " + std::to_string(w.allowed_tcp) + " allowed connection(s) to port " +
          std::to_string(port) + ", expected " + std::to_string(want_allowed) +
          " (did the connection bypass the proxy?)\n  result: " + Trim(LastLine(o.err), 1500));
    }
    if (ward_out) *ward_out = std::move(w);
  }
  return o;
}

Json ClientReport(const Runner& r, const Outcome& o) {
  // The client's line is the last line of stdout (ward passes the
  // workload's stdout through).
  Json j = Json::parse(LastLine(o.out), nullptr, false);
  if (j.is_discarded() || !j.contains("mode")) Die(r.name + ": no report from ward_egress_client on stdout: " + Trim(o.out, 400));
  return j;
}

struct Options {
  int warmup = 2;
  int bulk_rounds = 20;  // the direct baseline is bimodal here (2 or 3.5+ GB/s)
  int bulk_mib = 1024;
  int latency_rounds = 20;
  int connections = 50;
  int banner_rounds = 4;
  int banner_connections = 3;
  int startup_rounds = 100;
  double bulk_target = 0.8;
  double latency_target_ms = 1.0;
  double startup_target_ms = 5.0;
  bool json = false;
};

// Every section: runner 0 is the baseline, runner 1 ward, runner 2 (bulk
// and latency) a minimal splice relay in this process: the floor for any
// user-space proxy on this machine. Samples in round order (latency and
// banner pool the connections of every round).
struct Section {
  std::string kind;  // bulk, latency, banner, startup
  std::string name;  // kind, and the way to the server: "bulk/loopback"
  std::string unit;  // of the samples
  std::string what;  // one line for the table
  std::vector<Runner> runners;
  std::vector<std::vector<double>> samples;  // by runner
  std::vector<double> paired;  // per round: ward/base (bulk), ward - base (startup; latency: of the rounds' medians)
  std::map<std::string, std::vector<double>> extra;  // further figures, by name
  std::string verdict_line;
  bool pass = false;
  Json json;
};

void Progress(const Options& opt, const std::string& name, int round, int total) {
  if (!opt.json && (round + 1) % 10 == 0) std::fprintf(stderr, "  %s: %d/%d rounds\n", name.c_str(), round + 1, total);
}

// Each round runs every runner once, in an order shuffled anew each round
// (bench_util.h RoundOrder). `one(index, round, counted)` returns the
// round's figure for the pairing (throughput, the run's median latency, the
// wall time); `pair(ward, base)` turns the two into the round's paired
// figure.
template <typename F, typename P>
void Interleave(const Options& opt, Section& s, int rounds, F&& one, P&& pair) {
  const int total = opt.warmup + rounds;
  const size_t n = s.runners.size();
  s.samples.assign(n, {});
  RoundOrder order(n);
  for (int round = 0; round < total; ++round) {
    const bool counted = round >= opt.warmup;
    std::vector<double> figure(n, NAN);
    for (size_t i : order.Next()) figure[i] = one(i, round, counted);
    if (counted) s.paired.push_back(pair(figure[1], figure[0]));
    Progress(opt, s.name, round, total);
  }
}

void RunBulk(const Options& opt, Spawner& sp, Section& s) {
  const uint64_t bytes = uint64_t{static_cast<uint64_t>(opt.bulk_mib)} << 20;
  const double gib = static_cast<double>(bytes) / (1 << 30);
  Interleave(
      opt, s, opt.bulk_rounds,
      [&](size_t i, int round, bool counted) {
        const Runner& r = s.runners[i];
        Outcome o = RunChecked(sp, r, round, kServerPort, 1, nullptr);
        Json c = ClientReport(r, o);
        if (c.value("bytes", uint64_t{0}) != bytes) Die(r.name + ": client read " + c.dump() + ", expected " + std::to_string(bytes) + " bytes");
        const double mib_s = static_cast<double>(bytes) / (1 << 20) / (c.value("ms", 0.0) / 1000.0);
        if (counted) {
          s.samples[i].push_back(mib_s);
          s.extra[r.name + ": CPU ms per GiB, client" + (r.ward ? " + ward" : "")].push_back(o.cpu_ms / gib);
          s.extra[r.name + ": CPU ms per GiB, this process (server" + (i == 2 ? " + relay)" : ")")].push_back(o.self_cpu_ms / gib);
          if (r.ward) s.extra["ward: name lookup in the client (ms)"].push_back(c.value("resolve_ms", 0.0));
        }
        return mib_s;
      },
      [](double w, double b) { return w / b; });
}

// latency and banner.
void RunLatency(const Options& opt, Spawner& sp, Section& s, uint16_t port, int rounds, int connections) {
  Interleave(
      opt, s, rounds,
      [&](size_t i, int round, bool counted) {
        const Runner& r = s.runners[i];
        Outcome o = RunChecked(sp, r, round, port, connections, nullptr);
        Json c = ClientReport(r, o);
        std::vector<double> fb = c.value("first_byte_ms", std::vector<double>{});
        std::vector<double> cn = c.value("connect_ms", std::vector<double>{});
        if (fb.size() != static_cast<size_t>(connections)) Die(r.name + ": client reported " + std::to_string(fb.size()) + " connections");
        if (counted) {
          s.samples[i].insert(s.samples[i].end(), fb.begin(), fb.end());
          auto& c_pool = s.extra[r.name + ": connect() alone (ms)"];
          c_pool.insert(c_pool.end(), cn.begin(), cn.end());
          s.extra[r.name + ": first connection of each process (ms)"].push_back(fb.front());
          if (r.ward) s.extra["ward: name lookup in the client (ms)"].push_back(c.value("resolve_ms", 0.0));
        }
        return Summarize(fb).median;
      },
      [](double w, double b) { return w - b; });
}

void RunStartup(const Options& opt, Spawner& sp, Section& s, std::vector<std::string>* phase_order,
                std::map<std::string, std::map<std::string, std::vector<double>>>* phases) {
  Interleave(
      opt, s, opt.startup_rounds,
      [&](size_t i, int round, bool counted) {
        const Runner& r = s.runners[i];
        WardResult w;
        Outcome o = RunChecked(sp, r, round, kServerPort, 0, &w);
        if (!counted) return o.ms;
        s.samples[i].push_back(o.ms);
        // Keyed by the mark that ends each step: where egress mode adds
        // marks, the other runner's step to the next common mark covers them.
        double prev_us = 0;
        std::string prev;
        for (const auto& ph : w.json["phases"]) {
          std::string name = ph.value("phase", "?");
          double us = ph.value("us", 0.0);
          if (!prev.empty()) {
            if (std::find(phase_order->begin(), phase_order->end(), name) == phase_order->end()) {
              auto at = std::find(phase_order->begin(), phase_order->end(), prev);
              phase_order->insert(at == phase_order->end() ? at : at + 1, name);
            }
            (*phases)[r.name][name].push_back((us - prev_us) / 1000.0);
          } else if (phase_order->empty() || phase_order->front() != name) {
            phase_order->insert(phase_order->begin(), name);
          }
          prev = name;
          prev_us = us;
        }
        (*phases)[r.name]["outside Run()"].push_back(o.ms - prev_us / 1000.0);
        return o.ms;
      },
      [](double w, double b) { return w - b; });
}

std::string WritePolicy(const std::string& dir, const std::string& name, const Json& network, const std::string& client_dir) {
  Json p = {{"ward", 1},
            {"description", "ward_egress_bench: the system baseline, the client's directory, and the network under test"},
            {"extends", "minimal"},
            {"filesystem", {{"read", {client_dir}}}},
            {"network", network}};
  std::string path = dir + "/" + name;
  std::ofstream f(path);
  f << p.dump(2) << "\n";
  if (!f) Die("cannot write \"" + path + "\"");
  return path;
}

std::string g_policy_dir;
void RemovePolicies() {
  if (g_policy_dir.empty()) return;
  for (const char* f : {"/egress-loopback.json", "/egress-address.json", "/egress-domain.json", "/none.json"}) {
    unlink((g_policy_dir + f).c_str());
  }
  rmdir(g_policy_dir.c_str());
}

std::string Fmt(double v, int decimals, bool sign = false) {
  char b[64];
  std::snprintf(b, sizeof b, sign ? "%+.*f" : "%.*f", decimals, v);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ward_egress_bench: the cost of ward's egress mode (DNS filter + transparent proxy) against baselines "
               "measured in the same run: bulk download throughput and connection latency against the same client run "
               "directly, start-up against \"network\": \"none\"."};
  Options opt;
  std::vector<std::string> only;
  std::string ward_path, client_path;
  std::vector<std::string> vias;
  int timeout_s = 120;
  app.add_option("--only", only, "run only these sections (repeatable): bulk, latency, banner, startup")
      ->check(CLI::IsMember({"bulk", "latency", "banner", "startup"}));
  app.add_option("--warmup", opt.warmup, "rounds run first in each section and not counted")->check(CLI::NonNegativeNumber);
  app.add_option("--bulk-rounds", opt.bulk_rounds, "bulk: measured rounds (each: one download direct, one through ward)")
      ->check(CLI::PositiveNumber);
  app.add_option("--bulk-mib", opt.bulk_mib, "bulk: MiB per download")->check(CLI::Range(1, 1 << 20));
  app.add_option("--latency-rounds", opt.latency_rounds, "latency: measured rounds (each: one client process direct, one through ward)")
      ->check(CLI::PositiveNumber);
  app.add_option("--connections", opt.connections, "latency: sequential connections per client process")->check(CLI::Range(1, 1000));
  app.add_option("--banner-rounds", opt.banner_rounds, "banner: measured rounds (each: one client process direct, one through ward)")
      ->check(CLI::PositiveNumber);
  app.add_option("--banner-connections", opt.banner_connections, "banner: sequential connections per client process")
      ->check(CLI::Range(1, 1000));
  app.add_option("--startup-rounds", opt.startup_rounds, "startup: measured rounds (each: one ward run per policy)")
      ->check(CLI::PositiveNumber);
  app.add_option("--bulk-target", opt.bulk_target, "pass if median throughput through ward / direct is at least this");
  app.add_option("--latency-target-ms", opt.latency_target_ms, "pass if median connect-to-first-byte through ward - direct is at most this");
  app.add_option("--startup-target-ms", opt.startup_target_ms, "pass if median start-up with egress - with network none is at most this");
  app.add_option("--via", vias,
                 "bulk, latency, banner: the ways to the server, each its own section (repeatable; default: loopback "
                 "and domain). loopback: a server on 127.0.0.1, reached from the sandbox as host.ward.internal under "
                 "the rule \"host.ward.internal:8080,8081\"; address: 203.0.113.1 under \"203.0.113.1:8080,8081\" (no "
                 "DNS); domain: bulk.test (resolved through ward's DNS) under \"bulk.test:8080,8081\"")
      ->check(CLI::IsMember({"loopback", "address", "domain"}));
  app.add_option("--ward", ward_path, "ward binary (default: `ward` beside this program)");
  app.add_option("--client", client_path, "the client (default: `ward_egress_client` beside this program)");
  app.add_option("--timeout-s", timeout_s, "kill and stop if one run takes longer")->check(CLI::PositiveNumber);
  app.add_flag("--json", opt.json, "print a machine-readable summary on stdout instead of the table");
  CLI11_PARSE(app, argc, argv);
  auto wanted = [&](const char* s) { return only.empty() || std::find(only.begin(), only.end(), s) != only.end(); };
  if (vias.empty()) vias = {"loopback", "domain"};

  const std::string bin_dir = SelfDir();
  if (ward_path.empty()) ward_path = bin_dir + "/ward";
  if (client_path.empty()) client_path = bin_dir + "/ward_egress_client";
  if (!Executable(ward_path)) Die("ward not found at \"" + ward_path + "\" (build it, or pass --ward PATH)");
  if (!Executable(client_path)) Die("client not found at \"" + client_path + "\" (build ward_egress_client, or pass --client PATH)");
  ward_path = Absolute(ward_path);
  client_path = Absolute(client_path);
  const std::string client_dir = client_path.substr(0, client_path.rfind('/'));

  // Before any thread: unshare(CLONE_NEWUSER) needs a single-threaded process.
  const std::string netns = EnterBenchNamespace();
  HttpServer http, loopback_http;
  http.Start(kServerAddr, kServerPort);
  loopback_http.Start(kLoopbackAddr, kServerPort);
  BannerServer banner, loopback_banner;
  banner.Start(kServerAddr, kBannerPort);
  loopback_banner.Start(kLoopbackAddr, kBannerPort);
  SpliceRelay splice_relay;
  splice_relay.Start(kServerAddr, kRelayPort, kServerPort);
  DnsServer dns;
  dns.Start(kDnsAddr);

  char tmpl[] = "/tmp/ward-egress-bench.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) Die(Errno("mkdtemp"));
  g_policy_dir = tmpl;
  std::atexit(RemovePolicies);
  // One policy per way to the server: an address rule would also make the
  // bulk.test connections direct (see net/connect_notify.h).
  struct Via {
    std::string name, rule, policy, direct_host, sandbox_host;
  };
  const std::string ports = std::to_string(kServerPort) + "," + std::to_string(kBannerPort);
  std::vector<Via> ways;
  for (const std::string& v : vias) {
    Via w;
    w.name = v;
    w.direct_host = v == "loopback" ? kLoopbackAddr : kServerAddr;
    w.sandbox_host = v == "loopback" ? "host.ward.internal" : v == "address" ? kServerAddr : kServerName;
    w.rule = w.sandbox_host + ":" + ports;
    w.policy = WritePolicy(g_policy_dir, "egress-" + v + ".json", {{"egress", {{"default", "deny"}, {"allow", {w.rule}}}}},
                           client_dir);
    ways.push_back(w);
  }
  const std::string none_policy = WritePolicy(g_policy_dir, "none.json", "none", client_dir);
  const std::string port = std::to_string(kServerPort);
  const std::string relay_port = std::to_string(kRelayPort);
  auto ward_cmd = [&](const Via& w, std::vector<std::string> tail) {
    std::vector<std::string> v = {ward_path, "run", "--policy", w.policy, "--dns-server", kDnsAddr, "--json", "--"};
    v.insert(v.end(), tail.begin(), tail.end());
    return v;
  };
  auto text = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& a : v) s += (s.empty() ? "" : " ") + (a.find('/') != std::string::npos ? a.substr(a.rfind('/') + 1) : a);
    return s;
  };

  // One section of ward_egress_client MODE against the server's PORT, by
  // way `w`: the client directly, inside ward, and (with `relay`) through
  // the minimal splice relay.
  auto client_section = [&](const std::string& mode, const Via& w, const std::string& unit, const std::string& what,
                            const std::string& server_port, const std::string& arg, bool relay) {
    Section s;
    s.kind = mode;
    s.name = mode + "/" + w.name;
    s.unit = unit;
    s.what = what + ", rule \"" + w.rule + "\"";
    s.runners = {{"direct", "", {client_path, mode, w.direct_host, server_port, arg}, false},
                 {"ward", "", ward_cmd(w, {client_path, mode, w.sandbox_host, server_port, arg}), true}};
    if (relay) s.runners.push_back({"relay", "", {client_path, mode, kServerAddr, relay_port, arg}, false});
    return s;
  };
  std::vector<Section> sections;
  for (const Via& w : ways) {
    if (wanted("bulk")) {
      const std::string bytes = std::to_string(uint64_t{static_cast<uint64_t>(opt.bulk_mib)} << 20);
      sections.push_back(client_section(
          "bulk", w, "MiB/s", "download of " + std::to_string(opt.bulk_mib) + " MiB, client-timed connect() to EOF", port,
          bytes, true));
    }
    if (wanted("latency")) {
      const std::string k = std::to_string(opt.connections);
      sections.push_back(client_section("latency", w, "ms",
                                        "connect() + request + first byte, " + k + " connections per process, all pooled",
                                        port, k, true));
    }
    if (wanted("banner")) {
      const std::string k = std::to_string(opt.banner_connections);
      sections.push_back(client_section(
          "banner", w, "ms",
          "server speaks first: connect() + first byte of its greeting, " + k + " connections per process, all pooled",
          std::to_string(kBannerPort), k, false));
    }
  }
  if (wanted("startup")) {
    Section s;
    s.kind = "startup";
    s.name = "startup";
    s.unit = "ms";
    s.what = "ward run -- /bin/true, spawn to reap";
    s.runners = {{"ward:none", "", {ward_path, "run", "--policy", none_policy, "--json", "--", "/bin/true"}, true},
                 {"ward:egress", "", ward_cmd(ways.front(), {"/bin/true"}), true}};
    sections.push_back(s);
  }
  for (auto& s : sections) {
    for (auto& r : s.runners) r.description = text(r.argv);
  }

  Spawner sp(timeout_s);
  std::vector<std::string> phase_order;
  std::map<std::string, std::map<std::string, std::vector<double>>> phases;
  for (auto& s : sections) {
    if (s.kind == "bulk") RunBulk(opt, sp, s);
    if (s.kind == "latency") RunLatency(opt, sp, s, kServerPort, opt.latency_rounds, opt.connections);
    if (s.kind == "banner") RunLatency(opt, sp, s, kBannerPort, opt.banner_rounds, opt.banner_connections);
    if (s.kind == "startup") RunStartup(opt, sp, s, &phase_order, &phases);
  }

  // Verdicts.
  for (auto& s : sections) {
    const Stats b = Summarize(s.samples[0]), w = Summarize(s.samples[1]), p = Summarize(s.paired);
    const Runner& base = s.runners[0];
    s.json = {{"what", s.what}, {"unit", s.unit}};
    for (size_t i = 0; i < s.runners.size(); ++i) {
      s.json["runners"][s.runners[i].name] = StatsJson(Summarize(s.samples[i]), s.unit == "ms" ? "ms" : "mib_s");
      s.json["runners"][s.runners[i].name]["command"] = s.runners[i].description;
    }
    const double relay = s.runners.size() > 2 ? Summarize(s.samples[2]).median : NAN;
    if (s.kind == "bulk") {
      const double ratio = w.median / b.median;
      s.pass = ratio >= opt.bulk_target;
      s.json["ratio"] = Round3(ratio);
      s.json["median_paired_ratio"] = Round3(p.median);
      s.json["target_min_ratio"] = opt.bulk_target;
      s.verdict_line = "throughput ratio ward/direct (medians): " + Fmt(ratio, 3) + "   median of per-round ratios: " +
                       Fmt(p.median, 3) + "   target >= " + Fmt(opt.bulk_target, 2);
      if (!std::isnan(relay)) {
        s.json["ratio_relay_direct"] = Round3(relay / b.median);
        s.json["ratio_ward_relay"] = Round3(w.median / relay);
        s.verdict_line = "for scale: splice relay/direct " + Fmt(relay / b.median, 3) + ", ward/splice relay " +
                         Fmt(w.median / relay, 3) + "\n  " + s.verdict_line;
      }
    } else {
      const double delta = w.median - b.median;
      const bool conn = s.kind != "startup";
      const double target = conn ? opt.latency_target_ms : opt.startup_target_ms;
      s.pass = delta <= target;
      s.json["difference_ms"] = Round3(delta);
      s.json["ratio"] = Round3(w.median / b.median);
      s.json[conn ? "median_per_round_difference_of_medians_ms" : "median_paired_difference_ms"] = Round3(p.median);
      s.json["target_max_difference_ms"] = target;
      if (!std::isnan(relay)) {
        s.json["difference_relay_direct_ms"] = Round3(relay - b.median);
        s.json["difference_ward_relay_ms"] = Round3(w.median - relay);
      }
      s.verdict_line = std::string(conn ? "added latency" : "added start-up") + " ward - " + base.name +
                       " (medians): " + Fmt(delta, 3, true) + " ms (x" + Fmt(w.median / b.median, 2) + ")   median of per-round " +
                       (conn ? "differences of medians" : "differences") + ": " + Fmt(p.median, 3, true) +
                       " ms   target <= +" + Fmt(target, 2) + " ms";
      if (!std::isnan(relay)) {
        s.verdict_line = "for scale: splice relay - direct " + Fmt(relay - b.median, 3, true) + " ms, ward - splice relay " +
                         Fmt(w.median - relay, 3, true) + " ms\n  " + s.verdict_line;
      }
    }
    s.json["verdict"] = s.pass ? "PASS" : "MISS";
    for (const auto& [k, v] : s.extra) s.json["extra"][k] = StatsJson(Summarize(v), "");
  }

  utsname u{};
  uname(&u);
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (opt.json) {
    Json j;
    j["uid"] = getuid();
    j["machine"] = {{"kernel", u.release}, {"cpus", cpus}};
    j["namespace"] = netns;
    j["warmup"] = opt.warmup;
    for (const Via& w : ways) j["rules"][w.name] = w.rule;
    j["dns_questions_answered"] = dns.questions();
    for (auto& s : sections) j["sections"][s.name] = s.json;
    if (!phase_order.empty()) {
      Json ph = Json::array();
      phase_order.push_back("outside Run()");
      for (size_t i = 1; i < phase_order.size(); ++i) {
        const std::string& k = phase_order[i];
        ph.push_back({{"step_ending_at", k},
                      {"none_median_ms", Round3(Summarize(phases["ward:none"][k]).median)},
                      {"egress_median_ms", Round3(Summarize(phases["ward:egress"][k]).median)}});
      }
      j["sections"]["startup"]["ward_phases"] = ph;
    }
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }

  std::printf("ward_egress_bench: runners interleaved round by round (order shuffled), %d warm-up round(s) per section\n", opt.warmup);
  std::printf("machine: Linux %s, %ld CPUs, uid %u; network: %s\n", u.release, cpus, getuid(), netns.c_str());
  std::printf("servers %s:%u and %s:%u (HTTP), DNS %s:53 (A %s); the DNS server answered %llu question(s)\n", kServerAddr,
              kServerPort, kLoopbackAddr, kServerPort, kDnsAddr, kServerName,
              static_cast<unsigned long long>(dns.questions()));
  for (const auto& s : sections) {
    std::printf("\n[%s] %s (%s; n = samples)\n", s.name.c_str(), s.what.c_str(), s.unit.c_str());
    std::printf("  %-12s %10s %10s %10s %6s  %s\n", "runner", "median", "p10", "p90", "n", "command");
    for (size_t i = 0; i < s.runners.size(); ++i) {
      const Stats st = Summarize(s.samples[i]);
      const Runner& r = s.runners[i];
      std::string desc = r.description + (r.name == "relay" ? "  (a minimal splice relay to :8080 in this process)" : "");
      std::printf("  %-12s %10.3f %10.3f %10.3f %6zu  %s\n", r.name.c_str(), st.median, st.p10, st.p90, st.n, desc.c_str());
    }
    for (const auto& [k, v] : s.extra) {
      Stats e = Summarize(v);
      std::printf("  %-47s median %8.3f  p10 %8.3f  p90 %8.3f\n", k.c_str(), e.median, e.p10, e.p90);
    }
    std::printf("  %s: %s\n", s.verdict_line.c_str(), s.pass ? "PASS" : "MISS");
  }
  if (!phase_order.empty()) {
    std::printf("\nward phases: median ms from the previous --json mark to this one (first mark: Run() started)\n");
    std::printf("  %-40s %9s %9s %9s\n", "step ending at", "none", "egress", "egress-none");
    phase_order.push_back("outside Run()");
    for (size_t i = 1; i < phase_order.size(); ++i) {
      const std::string& k = phase_order[i];
      const double a = Summarize(phases["ward:none"][k]).median, b = Summarize(phases["ward:egress"][k]).median;
      auto cell = [](double d) { return std::isnan(d) ? std::string("-") : Fmt(d, 3); };
      std::printf("  %-40s %9s %9s %+9.3f\n", k.c_str(), cell(a).c_str(), cell(b).c_str(),
                  (std::isnan(b) ? 0 : b) - (std::isnan(a) ? 0 : a));
    }
    std::printf("  (outside Run(): exec of ward and policy load before, cgroup removal, output and exit after)\n");
  }
  return 0;
}
