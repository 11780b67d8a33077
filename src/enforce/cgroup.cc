#include "enforce/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>
#include <cmath>
#include <optional>
#include <sstream>

#include "base/errors.h"
#include "base/file.h"
#include "base/unique_fd.h"

namespace ward {

namespace {

constexpr const char* kRoot = "/sys/fs/cgroup";

bool IsFs(const std::string& path, long magic) {
  struct statfs s;
  return statfs(path.c_str(), &s) == 0 && s.f_type == magic;
}

// What /proc/self/cgroup and the v2 mount say, read once per decision.
struct HostView {
  std::string self_cgroup;
  std::optional<std::string> v2_mount;

  static HostView Read();
  // The current process's cgroup path in the hierarchy named `key` in
  // /proc/self/cgroup ("" for the v2 hierarchy, else a v1 controller name).
  std::optional<std::string> Own(const std::string& key) const;
};

std::optional<std::string> HostView::Own(const std::string& key) const {
  std::istringstream in(self_cgroup);
  std::string line;
  while (std::getline(in, line)) {
    auto a = line.find(':');
    auto b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string ctrls = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    if (key.empty()) {
      if (line.substr(0, a) == "0" && ctrls.empty()) return path;
      continue;
    }
    std::istringstream cs(ctrls);
    std::string c;
    while (std::getline(cs, c, ',')) {
      if (c == key) return path;
    }
  }
  return std::nullopt;
}

// The v2 mount: /sys/fs/cgroup itself (pure v2) or /sys/fs/cgroup/unified
// (hybrid).
std::optional<std::string> V2Mount() {
  if (IsFs(kRoot, CGROUP2_SUPER_MAGIC)) return std::string(kRoot);
  std::string unified = std::string(kRoot) + "/unified";
  if (IsFs(unified, CGROUP2_SUPER_MAGIC)) return unified;
  return std::nullopt;
}

HostView HostView::Read() {
  HostView v;
  v.self_cgroup = ReadFile("/proc/self/cgroup").value_or("");
  v.v2_mount = V2Mount();
  return v;
}

bool ListsWord(const std::optional<std::string>& text, const std::string& word) {
  if (!text) return false;
  std::istringstream in(*text);
  std::string w;
  while (in >> w) {
    if (w == word) return true;
  }
  return false;
}

// Where a v2 controller can be used: a writable cgroup whose
// cgroup.subtree_control hands the controller to its children, so the
// sandbox's cgroup can be made beneath it. Our own cgroup qualifies only if
// it already delegates (a non-root cgroup holding processes cannot start
// to: the "no internal processes" rule); otherwise its parent, which hands
// the controller to us and so to our siblings, is used. ward never changes
// subtree_control itself.
std::optional<std::string> V2Base(const std::string& controller, const HostView& host) {
  const auto& mount = host.v2_mount;
  auto own = host.Own("");
  if (!mount || !own) return std::nullopt;
  std::string dir = *mount + (*own == "/" ? "" : *own);
  if (ListsWord(ReadFile(dir + "/cgroup.subtree_control"), controller) && access(dir.c_str(), W_OK) == 0) {
    return dir;
  }
  if (*own == "/" || !ListsWord(ReadFile(dir + "/cgroup.controllers"), controller)) return std::nullopt;
  std::string parent = dir.substr(0, dir.rfind('/'));
  if (access(parent.c_str(), W_OK) != 0) return std::nullopt;
  return parent;
}

std::optional<std::string> V1Base(const std::string& controller, const HostView& host) {
  auto own = host.Own(controller);
  if (!own) return std::nullopt;
  std::string mount = std::string(kRoot) + "/" + controller;
  if (!IsFs(mount, CGROUP_SUPER_MAGIC)) return std::nullopt;
  std::string dir = mount + (*own == "/" ? "" : *own);
  if (access(dir.c_str(), W_OK) != 0) return std::nullopt;
  return dir;
}

LimitMechanism Probe(const std::string& controller, const HostView& host, std::string* where) {
  if (auto d = V2Base(controller, host)) {
    *where = *d;
    return LimitMechanism::kCgroupV2;
  }
  if (auto d = V1Base(controller, host)) {
    *where = *d;
    return LimitMechanism::kCgroupV1;
  }
  return LimitMechanism::kNone;
}

// Removes cgroups left by a ward that was killed before it could clean up
// (SIGKILL to the supervisor kills the sandbox through PR_SET_PDEATHSIG,
// but leaves the empty directory). Only empty ones can be removed, and only
// those whose supervisor is gone are tried.
void RemoveStale(const std::string& base) {
  DIR* d = opendir(base.c_str());
  if (!d) return;
  while (dirent* e = readdir(d)) {
    int pid = 0, n = 0;
    if (std::sscanf(e->d_name, "ward-%d-%d", &pid, &n) != 2 || pid <= 0) continue;
    if (kill(pid, 0) == 0 || errno != ESRCH) continue;
    rmdir((base + "/" + e->d_name).c_str());
  }
  closedir(d);
}

std::string UniqueName() {
  static std::atomic<int> counter{0};
  return "ward-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
}

}  // namespace

const char* MechanismName(LimitMechanism m) {
  switch (m) {
    case LimitMechanism::kCgroupV2: return "cgroup-v2";
    case LimitMechanism::kCgroupV1: return "cgroup-v1";
    case LimitMechanism::kRlimit: return "rlimit";
    case LimitMechanism::kSupervisor: return "supervisor";
    case LimitMechanism::kNone: return "unavailable";
  }
  return "?";
}

CgroupSupport ProbeCgroups() {
  CgroupSupport s;
  std::string where;
  const HostView host = HostView::Read();
  auto one = [&](const char* name, LimitMechanism fallback, const char* fallback_why, std::string* detail) {
    LimitMechanism m = Probe(name, host, &where);
    if (m == LimitMechanism::kNone) {
      *detail = std::string(name) + ": no writable cgroup (v2 or v1) for this user; " + fallback_why;
      return fallback;
    }
    *detail = std::string(name) + ": " + MechanismName(m) + " at " + where;
    return m;
  };
  s.memory = one("memory", LimitMechanism::kSupervisor,
                 "memoryMiB is enforced by ward's supervisor: it samples the resident anonymous and shared memory "
                 "and the page tables of the sandbox's processes every 20 ms and stops the sandbox past the limit "
                 "(an allocation faster than that can pass it briefly; memfd_create is refused, ENOSYS; socket "
                 "buffers are not counted)",
                 &s.memory_detail);
  s.pids = one("pids", LimitMechanism::kRlimit,
               "pids falls back to RLIMIT_NPROC (per user in the sandbox's user namespace)", &s.pids_detail);
  s.cpu = one("cpu", LimitMechanism::kNone, "cpus cannot be enforced (policies that set it are refused)",
              &s.cpu_detail);
  return s;
}

SandboxCgroup::SandboxCgroup(SandboxCgroup&& o) noexcept
    : plan_(std::move(o.plan_)),
      oom_counter_(std::move(o.oom_counter_)),
      pids_counter_(std::move(o.pids_counter_)),
      watchdog_fd_(o.watchdog_fd_),
      watchdog_pid_(o.watchdog_pid_) {
  o.plan_ = CgroupPlan{};
  o.watchdog_fd_ = o.watchdog_pid_ = -1;
}
SandboxCgroup& SandboxCgroup::operator=(SandboxCgroup&& o) noexcept {
  if (this != &o) {
    Remove();
    plan_ = std::move(o.plan_);
    oom_counter_ = std::move(o.oom_counter_);
    pids_counter_ = std::move(o.pids_counter_);
    watchdog_fd_ = o.watchdog_fd_;
    watchdog_pid_ = o.watchdog_pid_;
    o.plan_ = CgroupPlan{};
    o.watchdog_fd_ = o.watchdog_pid_ = -1;
  }
  return *this;
}

// Reaps finished watchdogs of earlier sandboxes, and remembers `pid` (if
// not -1) to reap later.
void ReapWatchdogs(int pid) {
  static std::mutex mu;
  static std::vector<int> pending;
  std::lock_guard<std::mutex> lock(mu);
  std::erase_if(pending, [](int p) { return waitpid(p, nullptr, WNOHANG) != 0; });
  if (pid > 0 && waitpid(pid, nullptr, WNOHANG) == 0) pending.push_back(pid);
}

// Principle: nothing of a sandbox outlives it, even when ward itself is
// SIGKILLed. The sandbox's processes die with ward (PR_SET_PDEATHSIG on
// its init), but someone must remove the emptied cgroups. This process
// waits for ward's end (the pipe's write end closing), removes whatever is
// left, and exits. Only async-signal-safe calls after fork.
Result<void> SandboxCgroup::StartWatchdog() {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return SysError("pipe2", "cgroup watchdog");
  std::vector<const char*> dirs;
  for (auto it = plan_.dirs.rbegin(); it != plan_.dirs.rend(); ++it) dirs.push_back(it->c_str());
  pid_t pid = fork();
  if (pid < 0) {
    close(p[0]);
    close(p[1]);
    return SysError("fork", "cgroup watchdog");
  }
  if (pid == 0) {
    // Survive what is aimed at ward's process group (Ctrl-C, a closed
    // terminal); hold none of ward's descriptors (a caller waiting for
    // EOF on ward's stdout must not wait for this process).
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU}) signal(sig, SIG_IGN);
    if (p[0] > 0) syscall(SYS_close_range, 0, p[0] - 1, 0);
    syscall(SYS_close_range, p[0] + 1, ~0U, 0);
    char b;
    while (read(p[0], &b, 1) < 0 && errno == EINTR) {
    }
    for (const char* d : dirs) {
      for (int i = 0; i < 5000; ++i) {
        if (rmdir(d) == 0 || errno != EBUSY) break;
        usleep(1000);
      }
    }
    _exit(0);
  }
  close(p[0]);
  watchdog_fd_ = p[1];
  watchdog_pid_ = pid;
  return {};
}
SandboxCgroup::~SandboxCgroup() { Remove(); }

void SandboxCgroup::Remove() {
  oom_counter_.Reset();
  pids_counter_.Reset();
  for (int fd : plan_.v1_procs_fds) close(fd);
  plan_.v1_procs_fds.clear();
  if (plan_.v2_dir_fd >= 0) close(plan_.v2_dir_fd);
  plan_.v2_dir_fd = -1;
  for (auto it = plan_.dirs.rbegin(); it != plan_.dirs.rend(); ++it) {
    // The sandbox's processes are all reaped before this runs; a cgroup can
    // still be briefly busy while the kernel finishes releasing them.
    for (int i = 0; i < 100 && rmdir(it->c_str()) != 0 && errno == EBUSY; ++i) usleep(1000);
  }
  plan_.dirs.clear();
  if (watchdog_fd_ >= 0) {
    // The watchdog now finds nothing left and exits. Waiting for that would
    // cost a context switch on every run; it is reaped on a later call (or
    // by init once ward exits) instead.
    close(watchdog_fd_);
    watchdog_fd_ = -1;
    ReapWatchdogs(watchdog_pid_);
    watchdog_pid_ = -1;
  }
}

Result<SandboxCgroup> SandboxCgroup::Create(const LimitsPolicy& limits) {
  SandboxCgroup cg;
  CgroupPlan& p = cg.plan_;
  const std::string name = UniqueName();
  std::string v2_dir;  // one v2 cgroup serves every v2 controller
  const HostView host = HostView::Read();

  // Makes (once) the cgroup for `controller` and returns its directory.
  auto make = [&](const char* controller, LimitMechanism* mech) -> Result<std::string> {
    std::string base;
    *mech = Probe(controller, host, &base);
    if (*mech == LimitMechanism::kNone) return std::string();
    if (*mech == LimitMechanism::kCgroupV2) {
      if (!v2_dir.empty()) return v2_dir;
      RemoveStale(base);
      v2_dir = base + "/" + name;
      if (mkdir(v2_dir.c_str(), 0755) != 0) return SysError("mkdir", v2_dir);
      p.dirs.push_back(v2_dir);
      int fd = open(v2_dir.c_str(), O_DIRECTORY | O_PATH | O_CLOEXEC);
      if (fd < 0) return SysError("open", v2_dir);
      p.v2_dir_fd = fd;
      return v2_dir;
    }
    RemoveStale(base);
    std::string dir = base + "/" + name;
    if (mkdir(dir.c_str(), 0755) != 0) return SysError("mkdir", dir);
    p.dirs.push_back(dir);
    // `tasks`, not `cgroup.procs`: moving a whole process takes the
    // cgroup_threadgroup_rwsem for writing, which waits for an RCU grace
    // period (~10 ms here); moving one thread does not. The sandbox's init
    // is single-threaded when it joins, so this moves the process, and
    // everything it forks is born inside.
    std::string procs = dir + "/tasks";
    int fd = open(procs.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return SysError("open", procs);
    p.v1_procs_fds.push_back(fd);
    return dir;
  };
  auto write = [](const std::string& dir, const char* file, const std::string& value) -> Result<void> {
    return WriteFile(dir + "/" + file, value);
  };

  if (limits.memory_mib) {
    auto dir = make("memory", &p.memory);
    if (!dir) return dir.error();
    std::string bytes = std::to_string(*limits.memory_mib * 1024 * 1024);
    if (p.memory == LimitMechanism::kCgroupV2) {
      WARD_TRY(write(*dir, "memory.max", bytes));
      // No swap: the limit is on memory, not on memory the kernel may page out.
      if (access((*dir + "/memory.swap.max").c_str(), F_OK) == 0) WARD_TRY(write(*dir, "memory.swap.max", "0"));
    } else if (p.memory == LimitMechanism::kCgroupV1) {
      WARD_TRY(write(*dir, "memory.limit_in_bytes", bytes));
      if (access((*dir + "/memory.memsw.limit_in_bytes").c_str(), F_OK) == 0) {
        WARD_TRY(write(*dir, "memory.memsw.limit_in_bytes", bytes));
      }
    } else {
      p.memory = LimitMechanism::kSupervisor;  // enforce/memory_watch.h
    }
    p.memory_dir = *dir;
  }
  if (limits.pids) {
    auto dir = make("pids", &p.pids);
    if (!dir) return dir.error();
    if (p.pids == LimitMechanism::kNone) {
      p.pids = LimitMechanism::kRlimit;
    } else {
      WARD_TRY(write(*dir, "pids.max", std::to_string(*limits.pids)));
    }
    p.pids_dir = *dir;
  }
  if (limits.cpus) {
    auto dir = make("cpu", &p.cpu);
    if (!dir) return dir.error();
    const int64_t period = 100000;
    const int64_t quota = std::max<int64_t>(1000, std::llround(*limits.cpus * period));
    if (p.cpu == LimitMechanism::kCgroupV2) {
      WARD_TRY(write(*dir, "cpu.max", std::to_string(quota) + " " + std::to_string(period)));
    } else if (p.cpu == LimitMechanism::kCgroupV1) {
      WARD_TRY(write(*dir, "cpu.cfs_period_us", std::to_string(period)));
      WARD_TRY(write(*dir, "cpu.cfs_quota_us", std::to_string(quota)));
    } else {
      return Error::Policy("/limits/cpus: no writable cgroup with the cpu controller (v2 or v1) for this user, "
                          "and CPU bandwidth has no rlimit equivalent; run as a user with a delegated cgroup "
                          "or remove limits.cpus");
    }
  }
  if (!p.dirs.empty()) WARD_TRY(cg.StartWatchdog());
  if (!p.memory_dir.empty() && (p.memory == LimitMechanism::kCgroupV2 || p.memory == LimitMechanism::kCgroupV1)) {
    const char* file = p.memory == LimitMechanism::kCgroupV2 ? "/memory.events" : "/memory.oom_control";
    cg.oom_counter_.Reset(open((p.memory_dir + file).c_str(), O_RDONLY | O_CLOEXEC));
  }
  if (!p.pids_dir.empty() && p.pids != LimitMechanism::kRlimit) {
    cg.pids_counter_.Reset(open((p.pids_dir + "/pids.events").c_str(), O_RDONLY | O_CLOEXEC));
  }
  return cg;
}

SandboxCgroup::Counters SandboxCgroup::LimitCounters() const {
  // The value of the line "`key` VALUE" of a counters file, read anew from
  // its start (the kernel writes it at each read); 0 if it cannot be read.
  auto counter = [](const UniqueFd& file, const char* key) -> int64_t {
    char text[512];
    const ssize_t n = file.valid() ? pread(file.get(), text, sizeof text - 1, 0) : -1;
    if (n <= 0) return 0;
    text[n] = '\0';
    const size_t len = strlen(key);
    for (const char* line = text; line; line = strchr(line, '\n')) {
      if (*line == '\n') ++line;
      if (strncmp(line, key, len) == 0 && line[len] == ' ') return strtoll(line + len + 1, nullptr, 10);
    }
    return 0;
  };
  return Counters{counter(oom_counter_, "oom_kill"), counter(pids_counter_, "max")};
}

std::vector<std::string> SandboxCgroup::LimitsHit() const {
  std::vector<std::string> hit;
  const Counters c = LimitCounters();
  if (c.oom_kills > 0) hit.push_back("memory");
  if (c.pids_refused > 0) hit.push_back("pids");
  return hit;
}

}  // namespace ward
