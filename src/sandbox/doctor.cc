// `ward doctor`: what this host supports, what is degraded, and why.
#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/errors.h"
#include "base/file.h"
#include "enforce/cgroup.h"
#include "enforce/landlock.h"
#include "ward/sandbox.h"

namespace ward {

namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
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

}  // namespace

std::vector<DoctorCheck> Doctor() {
  std::vector<DoctorCheck> checks;
  utsname u{};
  uname(&u);
  checks.push_back({"kernel", "ok", std::string(u.sysname) + " " + u.release + " " + u.machine});
  checks.push_back({"user", "ok", getuid() == 0 ? "root (uid 0): the sandbox still runs in its own user namespace with no capabilities on the host"
                                                : "uid " + std::to_string(getuid()) + " (unprivileged: user namespaces, no setuid helper)"});
  checks.push_back(ProbeNamespaces());

  int abi = LandlockAbi();
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
