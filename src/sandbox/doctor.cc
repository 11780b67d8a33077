// `ward doctor`: what this host supports, what is degraded, and why.
#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include "base/errors.h"
#include "base/file.h"
#include "enforce/cgroup.h"
#include "enforce/idmap.h"
#include "enforce/landlock.h"
#include "enforce/netns.h"
#include "net/unix_gate.h"
#include "ward/sandbox.h"

namespace ward {

namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The unix gate (net/unix_gate.h): every sandbox's connect() calls wait in
// the supervisor; it tells the sandbox's own sockets by asking unix_diag.
DoctorCheck ProbeUnixGate() {
  UniqueFd diag(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 4 /* NETLINK_SOCK_DIAG */));
  int err = diag.valid() ? net::DumpBoundUnixSockets(diag.get(), 1, [](uint32_t, uint64_t) {}) : errno;
  if (err != 0) {
    return {"unix gate", "degraded",
            "socket diagnostics for unix sockets unavailable (" + ErrnoName(err) +
                ", module unix_diag): a socket the sandbox binds outside its private /tmp is refused like a host "
                "daemon's"};
  }
  return {"unix gate", "ok",
          "connect() to a unix socket: only the sandbox's own and those listed in filesystem.unix; unix datagram "
          "sockets refused"};
}

// Tries to create every namespace a sandbox needs, in a throwaway child.
DoctorCheck ProbeNamespaces() {
  pid_t pid = fork();
  if (pid == 0) {
    int flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET | CLONE_NEWCGROUP;
    _exit(unshare(flags) == 0 ? 0 : (errno & 0xff));
  }
  int st = 0;
  waitpid(pid, &st, 0);
  int err = WIFEXITED(st) ? WEXITSTATUS(st) : EIO;
  if (err == 0) return {"namespaces", "ok", "user, mount, pid, ipc, uts, net and cgroup namespaces can be created by this user"};
  std::string detail = "unshare(user|mount|pid|ipc|uts|net|cgroup): " + ErrnoName(err);
  if (auto v = ReadFile("/proc/sys/user/max_user_namespaces")) detail += "; user.max_user_namespaces=" + Trim(*v);
  if (auto v = ReadFile("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")) {
    detail += "; kernel.apparmor_restrict_unprivileged_userns=" + Trim(*v);
  }
  detail += ". The namespace backend cannot run; no sandbox will start.";
  return {"namespaces", "missing", detail};
}

// Builds the egress network (veth, routes, nftables redirect, listeners) in
// a throwaway user + network namespace, exactly as a sandbox's init does.
DoctorCheck ProbeEgress() {
  EgressNetnsPlan plan = BuildEgressNetnsPlan();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return {"network egress", "missing", "socketpair failed"};
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return {"network egress", "missing", "pipe2 failed"};
  pid_t pid = fork();
  if (pid == 0) {
    // step (0 namespaces, 1 rtnetlink, 2 nftables, 3 listeners), index, errno
    int report[3] = {0, -1, 0};
    uid_t uid = getuid();
    char map[64];
    int n = snprintf(map, sizeof map, "%u %u 1", uid, uid);
    if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) {
      report[2] = errno;
    } else {
      int fd = open("/proc/self/uid_map", O_WRONLY | O_CLOEXEC);
      if (fd >= 0) {
        (void)!write(fd, map, static_cast<size_t>(n));
        close(fd);
      }
      if ((report[2] = ApplyEgressLinks(plan, &report[1]))) report[0] = 1;
      else if ((report[2] = ApplyEgressNftables(plan, &report[1]))) report[0] = 2;
      else if ((report[2] = SendEgressListeners(plan, sv[0], &report[1]))) report[0] = 3;
    }
    (void)!write(pipefd[1], report, sizeof report);
    _exit(0);
  }
  close(pipefd[1]);
  close(sv[0]);
  int report[3] = {0, -1, EIO};
  bool got = read(pipefd[0], report, sizeof report) == sizeof report;
  close(pipefd[0]);
  close(sv[1]);
  waitpid(pid, nullptr, 0);
  if (got && report[2] == 0) {
    return {"network egress", "ok",
            "veth pair, nf_tables nat redirect, listeners and the connect() notification filter can be built in a user "
            "namespace"};
  }
  std::string what = "unshare(CLONE_NEWUSER|CLONE_NEWNET)";
  if (report[0] >= 1 && report[0] <= 3) {
    static const EgressStage kStages[] = {EgressStage::kLinks, EgressStage::kNftables, EgressStage::kListeners};
    static const char* const kNames[] = {"rtnetlink", "nftables", "listeners"};
    what = kNames[report[0] - 1];
    std::string detail = DescribeEgressFailure(plan, kStages[report[0] - 1], report[1]);
    if (!detail.empty()) what += " (" + detail + ")";
  }
  return {"network egress", "missing",
          what + ": " + ErrnoName(report[2]) + ". Policies with network.egress cannot run here (kernel needs veth, "
          "nf_tables with nat and redir); \"none\" and \"host\" are unaffected."};
}

// A root caller's sandbox runs as an unprivileged host uid with id-mapped
// grants (enforce/idmap.h): can this host map one, and id-map a mount of
// the working directory's filesystem?
DoctorCheck ProbeRootIdentity() {
  auto uid = SandboxHostUid();
  if (!uid) return {"sandbox identity", "missing", uid.error().message};
  const std::string who = "root callers' sandboxes run as host uids from " + std::to_string(*uid) + " (WARD_UID_RANGE; each agent its own)";
  auto userns = MakeMappedUserns(*uid);
  if (!userns) return {"sandbox identity", "missing", who + ", but: " + userns.error().message + ": no sandbox will start as root"};
  UniqueFd tree(static_cast<int>(syscall(SYS_open_tree, AT_FDCWD, ".", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)));
  mount_attr a{};
  a.attr_set = MOUNT_ATTR_IDMAP;
  a.userns_fd = static_cast<uint64_t>(userns->get());
  if (!tree.valid() || syscall(SYS_mount_setattr, tree.get(), "", AT_EMPTY_PATH, &a, sizeof a) != 0) {
    return {"sandbox identity", "degraded",
            who + "; the working directory's filesystem cannot be id-mapped (" + ErrnoName(errno) +
                "): writable grants there are refused as root, read-only ones look like nobody's"};
  }
  return {"sandbox identity", "ok", who + "; grants are id-mapped back to root (the working directory's filesystem supports it)"};
}

}  // namespace

std::vector<DoctorCheck> Doctor() {
  std::vector<DoctorCheck> checks;
  utsname u{};
  uname(&u);
  checks.push_back({"kernel", "ok", std::string(u.sysname) + " " + u.release + " " + u.machine});
  checks.push_back({"user", "ok", getuid() == 0 ? "root (uid 0): the sandbox still runs in its own user namespace with no capabilities on the host"
                                                : "uid " + std::to_string(getuid()) + " (unprivileged: user namespaces, no setuid helper)"});
  if (getuid() == 0) checks.push_back(ProbeRootIdentity());
  checks.push_back(ProbeNamespaces());
  DoctorCheck egress = ProbeEgress();
  checks.push_back(egress);
  checks.push_back(ProbeUnixGate());

  int abi = LandlockAbi();
  if (egress.status == "ok") {
    // Direct sockets (net/connect_notify.h) are safe only under landlock's
    // network rules (compile.cc turns them off below ABI 4).
    checks.push_back(abi >= 4 ? DoctorCheck{"egress direct sockets", "ok",
                                            "connections an address rule or host.ward.internal decides get a socket ward "
                                            "connects itself (full speed; landlock ABI " + std::to_string(abi) + ")"}
                              : DoctorCheck{"egress direct sockets", "degraded",
                                            "landlock ABI " + std::to_string(abi) +
                                                " has no network rules (4+): every egress connection goes through ward's "
                                                "proxy, at about 0.4-0.7 of direct throughput"});
  }
  if (abi >= 6) {
    checks.push_back({"landlock", "ok", "ABI " + std::to_string(abi) + ": filesystem rules, truncate, device ioctls, signal and abstract-socket scoping"});
  } else if (abi > 0) {
    checks.push_back({"landlock", "degraded", "ABI " + std::to_string(abi) + " (6 or newer adds signal and abstract unix socket scoping" +
                                                  std::string(abi < 3 ? "; 3 adds truncate control" : "") + ")"});
  } else {
    checks.push_back({"landlock", "missing", "no landlock: policies with enforcement.landlock \"required\" (the default) are refused; "
                                             "\"best-effort\" runs with mount isolation alone"});
  }

  auto actions = ReadFile("/proc/sys/kernel/seccomp/actions_avail");
  checks.push_back(actions && actions->find("errno") != std::string::npos && actions->find("kill_process") != std::string::npos
                       ? DoctorCheck{"seccomp", "ok", "filter mode with errno and kill_process actions"}
                       : DoctorCheck{"seccomp", "missing", "seccomp filters unavailable: no sandbox will start"});

  bool has_setattr = syscall(SYS_mount_setattr, -1, "", 0, nullptr, 0) != 0 && errno != ENOSYS;
  bool has_clone3 = syscall(SYS_clone3, nullptr, 0) != 0 && errno != ENOSYS;
  checks.push_back({"mount_setattr, clone3, pidfd",
                    has_setattr && has_clone3 ? "ok" : "missing",
                    has_setattr && has_clone3 ? "recursive read-only binds and race-free process handles (Linux 5.12+)"
                                              : "needs Linux 5.12 or newer: no sandbox will start"});

  CgroupSupport cg = ProbeCgroups();
  auto status = [](LimitMechanism m) {
    return m == LimitMechanism::kCgroupV2 || m == LimitMechanism::kCgroupV1 ? "ok" : "degraded";
  };
  checks.push_back({std::string("limits.memoryMiB: ") + MechanismName(cg.memory), status(cg.memory), cg.memory_detail});
  checks.push_back({std::string("limits.pids: ") + MechanismName(cg.pids), status(cg.pids), cg.pids_detail});
  checks.push_back({std::string("limits.cpus: ") + MechanismName(cg.cpu), cg.cpu == LimitMechanism::kNone ? "missing" : "ok",
                    cg.cpu_detail});

  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  checks.push_back({"rlimits", "ok",
                    "cpuSeconds, openFiles, fileSizeMiB are rlimits; raising above the hard limit (openFiles hard limit: " +
                        (nofile.rlim_max == RLIM_INFINITY ? std::string("unlimited") : std::to_string(nofile.rlim_max)) +
                        ") needs CAP_SYS_RESOURCE, which ward never has in the sandbox"});
  return checks;
}

}  // namespace ward
