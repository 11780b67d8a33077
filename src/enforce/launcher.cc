#include "enforce/launcher.h"

#include <fcntl.h>
#include <limits.h>
#include <grp.h>
#include <linux/netlink.h>
#include <linux/capability.h>
#include <net/if.h>
#include <sys/socket.h>
#include <linux/mount.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <iterator>
#include <cstring>
#include <memory>
#include <optional>
#include <utility>

#include "base/errors.h"
#include "base/fd_passing.h"
#include "base/unique_fd.h"
#include "base/no_symlinks.h"
#include "enforce/idmap.h"
#include "enforce/memory_watch.h"
#include "enforce/seccomp.h"
#include "enforce/landlock.h"
#include "enforce/stdio.h"

namespace ward {

namespace {

// ---------------------------------------------------------------------------
// The report channel. The child never formats text: it sends fixed-size
// records on a pipe and the supervisor turns them into messages.

enum Step : uint32_t {
  kStepParentGone, kStepSetgroups, kStepUidMap, kStepGidMap, kStepCgroupJoin, kStepCgroupNs,
  kStepRootTmpfs, kStepChdirRoot, kStepMountOp, kStepPivotRoot, kStepDetachOldRoot, kStepHostname,
  kStepSetsid, kStepLandlockRule, kStepNoNewPrivs, kStepLandlock, kStepRlimit, kStepSecurebits,
  kStepCapBound, kStepCapAmbient, kStepCapset, kStepSeccomp, kStepFork, kStepChdirCwd, kStepCtty,
  kStepExec, kStepLoopback, kStepNetLinks, kStepNftables, kStepEgressListeners, kStepEgressGo, kStepIdsWait,
  kStepIdentity, kStepStdio, kStepPty, kStepConnectListener, kStepWatchProc, kStepCount
};

const char* const kStepNames[] = {
    "parent check", "write /proc/self/setgroups", "write /proc/self/uid_map", "write /proc/self/gid_map",
    "join cgroup", "unshare(CLONE_NEWCGROUP)", "mount tmpfs (new root)", "chdir (new root)", "mount",
    "pivot_root", "umount2 (old root)", "sethostname", "setsid", "landlock_add_rule",
    "prctl(PR_SET_NO_NEW_PRIVS)", "landlock_restrict_self", "setrlimit", "prctl(PR_SET_SECUREBITS)",
    "prctl(PR_CAPBSET_DROP)", "prctl(PR_CAP_AMBIENT_CLEAR_ALL)", "capset", "seccomp(SET_MODE_FILTER)",
    "fork (workload)", "chdir (working directory)", "ioctl(TIOCSCTTY)", "execve",
    "ioctl(SIOCSIFFLAGS, \"lo\", IFF_UP)", "rtnetlink", "nftables", "egress listeners",
    "wait for the egress proxy (the supervisor did not start it)",
    "receive the id-mapped grants (the supervisor did not give the sandbox its identity)", "setgroups/setresgid/setresuid (sandbox identity)",
    "open stdio from the sandbox's /dev",
    "open a pty from the sandbox's devpts (/dev/ptmx, TIOCGPTPEER, send the master and a slave)",
    "hand the connect() listener to the supervisor (NETLINK_SOCK_DIAG socket, seccomp NEW_LISTENER, SCM_RIGHTS)",
    "hand the sandbox's /proc to the supervisor's memory watch (open, SCM_RIGHTS)",
};

static_assert(std::size(kStepNames) == kStepCount, "a name for every step");

enum RecordType : uint32_t { kRecPhase = 1, kRecError = 2, kRecExit = 3 };

enum PhaseId : uint32_t {
  kPhChildStart, kPhUserns, kPhNetwork, kPhCgroup, kPhMounts, kPhPivot, kPhLandlock, kPhCaps, kPhSeccomp,
  kPhExec, kPhWorkloadExited, kPhSandboxEmpty, kPhCount
};
const char* const kPhaseNames[kPhCount] = {
    "child started", "user namespace mapped", "network built", "cgroup joined", "mounts built", "root pivoted",
    "landlock applied", "capabilities dropped", "seccomp loaded", "exec", "workload exited",
    "sandbox emptied",
};

struct Record {
  uint32_t type;
  uint32_t step;   // Step or PhaseId
  int32_t err;     // errno for kRecError
  int32_t index;   // mount op index for kStepMountOp
  int64_t value;   // timestamp (ns) or wait status
};

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// ---------------------------------------------------------------------------
// The child: async-signal-safe code only (it runs after fork of a possibly
// multi-threaded caller): no allocation, no stdio, no locks.

struct ChildContext {
  const LaunchPlan* plan;
  const CgroupPlan* cgroup;
  int report_fd;
  int parent_pidfd;
  int ruleset_fd;
  int pty_slave;        // set by init: the terminal of the workload (--pty)
  int pty_channel;      // --pty: unix socket the master goes to the supervisor on, else -1
  int egress_channel;  // unix socket to the supervisor (egress mode), else -1
  int connect_channel; // unix socket the seccomp_net listener goes to the supervisor on, else -1
  int watch_channel;   // memory watch: unix socket the sandbox's /proc goes to the supervisor on, else -1
  int ids_ready;       // root caller: the id-mapped grants, then the go-ahead (enforce/idmap.h), else -1
  const StdioPlan* stdio;  // without a pty: what fd 0..2 become (enforce/stdio.h)
  int* trees;          // root caller: per mount op, a detached tree to move in (enforce/idmap.h), or -1
  const sock_fprog* seccomp;
  const sock_fprog* seccomp_extra;
  const sock_fprog* seccomp_net;
  char* const* argv;
  char* const* envp;
  Record phases[kPhCount];
  int nphases;
};

[[noreturn]] void ChildFail(const ChildContext& c, Step step, int err, int index = -1) {
  Record r{kRecError, step, err, index, 0};
  (void)!write(c.report_fd, &r, sizeof r);
  _exit(kExitSetup);
}

void Mark(ChildContext& c, PhaseId id) {
  c.phases[c.nphases++] = Record{kRecPhase, id, 0, 0, NowNs()};
}

int WriteAll(const char* path, const char* data, size_t len) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n = write(fd, data, len);
  int e = n == static_cast<ssize_t>(len) ? 0 : (n < 0 ? errno : EIO);
  close(fd);
  return e;
}

int SetAttr(const char* path, uint64_t attrs, unsigned flags) {
  mount_attr a{};
  a.attr_set = attrs;
  // Every mount ward makes is private: nothing propagates in from the host
  // or out to it.
  a.propagation = MS_PRIVATE;
  return syscall(SYS_mount_setattr, AT_FDCWD, path, flags, &a, sizeof a) == 0 ? 0 : errno;
}

unsigned long MsFlags(uint64_t attrs) {
  unsigned long f = 0;
  if (attrs & MOUNT_ATTR_RDONLY) f |= MS_RDONLY;
  if (attrs & MOUNT_ATTR_NOSUID) f |= MS_NOSUID;
  if (attrs & MOUNT_ATTR_NODEV) f |= MS_NODEV;
  if (attrs & MOUNT_ATTR_NOEXEC) f |= MS_NOEXEC;
  return f;
}

// Writes the decimal digits of `v` at `p` (at most 20) without stdio;
// returns the end.
char* AppendDecimal(char* p, uint64_t v) {
  char digits[20];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) *p++ = digits[--n];
  return p;
}

// Formats "mode=NNNN" (octal) and, if size_mib > 0, ",size=Nm" into buf
// (at least 40 bytes) without stdio.
const char* TmpfsOptions(char* buf, mode_t mode, int64_t size_mib) {
  memcpy(buf, "mode=0000", 10);
  for (int i = 0; i < 4; ++i) buf[8 - i] = static_cast<char>('0' + ((mode >> (3 * i)) & 7));
  if (size_mib > 0) {
    char* p = buf + 9;
    memcpy(p, ",size=", 6);
    p = AppendDecimal(p + 6, static_cast<uint64_t>(size_mib));
    *p++ = 'm';
    *p = '\0';
  }
  return buf;
}

// Writes the decimal `v` and a newline to the file at `dir`/`name`.
int WriteNumber(const char* dir, const char* name, uint64_t v) {
  char path[256];
  size_t dl = strlen(dir), nl = strlen(name);
  if (dl + nl + 2 > sizeof path) return ENAMETOOLONG;
  memcpy(path, dir, dl);
  path[dl] = '/';
  memcpy(path + dl + 1, name, nl + 1);
  char text[24];
  char* end = AppendDecimal(text, v);
  *end++ = '\n';
  return WriteAll(path, text, static_cast<size_t>(end - text));
}

// System V shared memory of the sandbox's IPC namespace: at most `mib` MiB
// in all (shmall, in pages) and per segment (shmmax). `proc` is the
// sandbox's fresh /proc (relative to the new root).
int BoundShm(const char* proc, uint64_t mib) {
  const uint64_t bytes = mib << 20;
  int e = WriteNumber(proc, "sys/kernel/shmmax", bytes);
  if (!e) e = WriteNumber(proc, "sys/kernel/shmall", bytes / static_cast<uint64_t>(getpagesize()));
  return e;
}

int RunMountOp(const MountOp& op, int tree) {
  using K = MountOp::Kind;
  const char* t = op.target.c_str();
  char opt[48];
  switch (op.kind) {
    case K::kMkdir:
      if (mkdir(t, op.mode) != 0 && errno != EEXIST) return errno;
      return 0;
    case K::kMkfile: {
      int fd = open(t, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, op.mode);
      if (fd < 0) return errno;
      close(fd);
      return 0;
    }
    case K::kWriteFile: {
      int fd = open(t, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, op.mode);
      if (fd < 0) return errno;
      ssize_t n = op.source.empty() ? 0 : write(fd, op.source.data(), op.source.size());
      int e = n == static_cast<ssize_t>(op.source.size()) ? 0 : EIO;
      // open() applies the umask; the mode must be exact (0 for the mask).
      if (fchmod(fd, op.mode) != 0) e = errno;
      close(fd);
      return e;
    }
    case K::kSymlink:
      if (symlink(op.source.c_str(), t) != 0 && errno != EEXIST) return errno;
      return 0;
    case K::kBind:
      if (tree >= 0) {
        // A tree the supervisor cloned (and id-mapped) on the host side.
        if (syscall(SYS_move_mount, tree, "", AT_FDCWD, t, MOVE_MOUNT_F_EMPTY_PATH) != 0) return errno;
        return SetAttr(t, op.attr_set, AT_RECURSIVE);
      }
      [[fallthrough]];
    case K::kMaskFile: {
      // The source as the plan names it, no symlink followed (base/no_symlinks.h),
      // cloned from that very object.
      int src = OpenNoSymlinks(op.source.c_str(), O_PATH);
      if (src < 0) return errno;
      int clone = static_cast<int>(
          syscall(SYS_open_tree, src, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH));
      int e = clone < 0 ? errno : 0;
      close(src);
      if (e) return e;
      if (syscall(SYS_move_mount, clone, "", AT_FDCWD, t, MOVE_MOUNT_F_EMPTY_PATH) != 0) e = errno;
      close(clone);
      if (e) return e;
      return SetAttr(t, op.attr_set, AT_RECURSIVE);
    }
    case K::kTmpfs:
    case K::kMaskDir:
      if (mount("tmpfs", t, "tmpfs", MsFlags(op.attr_set), TmpfsOptions(opt, op.mode, op.size_mib)) != 0) return errno;
      return 0;
    case K::kProc:
      if (mount("proc", t, "proc", MsFlags(op.attr_set), nullptr) != 0) return errno;
      if (op.size_mib > 0) return BoundShm(t, static_cast<uint64_t>(op.size_mib));
      return 0;
    case K::kDevpts:
      if (mount("devpts", t, "devpts", MsFlags(op.attr_set), "newinstance,ptmxmode=0666,mode=620") != 0) return errno;
      return 0;
    case K::kSetAttr:
      return SetAttr(t, op.attr_set, 0);
    case K::kUnlink:
      return unlink(t) == 0 ? 0 : errno;
  }
  return EINVAL;
}

// Closes every descriptor from 3 up except `a` and `b` (-1: none).
void CloseAllBut(int a, int b) {
  if (a > b) std::swap(a, b);
  unsigned next = 3;
  for (int keep : {a, b}) {
    if (keep < static_cast<int>(next)) continue;
    if (static_cast<unsigned>(keep) > next) syscall(SYS_close_range, next, keep - 1, 0);
    next = static_cast<unsigned>(keep) + 1;
  }
  syscall(SYS_close_range, next, ~0U, 0);
}

const int kForwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT, SIGTSTP};

[[noreturn]] void RunWorkload(ChildContext& c, const sigset_t& old_mask) {
  const LaunchPlan& p = *c.plan;
  sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  // Its own session and process group: signals are forwarded to the group,
  // and the caller's terminal is not the controlling terminal.
  if (setsid() < 0) ChildFail(c, kStepSetsid, errno);
  if (c.pty_slave >= 0) {
    for (int fd = 0; fd < 3; ++fd) dup2(c.pty_slave, fd);
    if (ioctl(0, TIOCSCTTY, 0) != 0) ChildFail(c, kStepCtty, errno);
  }
  if (chdir(p.cwd.c_str()) != 0) ChildFail(c, kStepChdirCwd, errno);
  Record r{kRecPhase, kPhExec, 0, 0, NowNs()};
  (void)!write(c.report_fd, &r, sizeof r);
  int err = ENOENT;
  for (const auto& cand : p.exec_candidates) {
    execve(cand.c_str(), c.argv, c.envp);
    // Keep looking past missing entries; remember a permission problem.
    if (errno != ENOENT && errno != ENOTDIR) err = errno;
  }
  ChildFail(c, kStepExec, err);
}

// PID 1 of the sandbox. Builds the sandbox, starts the workload, forwards
// signals to it, reaps every orphan, and when the workload ends kills
// whatever is left and reports the workload's status.
[[noreturn]] void ChildMain(ChildContext& c) {
  const LaunchPlan& p = *c.plan;
  Mark(c, kPhChildStart);
  // Every descriptor ward had open beyond stdio (including any the caller
  // leaked to ward without O_CLOEXEC) is closed at the workload's exec.
  syscall(SYS_close_range, 3, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */);
  // If the supervisor dies, so does the sandbox (and with PID 1, every
  // process in it). The check after it closes the race with an early death.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  pollfd pf{c.parent_pidfd, POLLIN, 0};
  if (poll(&pf, 1, 0) != 0) ChildFail(c, kStepParentGone, ESRCH);

  int e;
  if (p.host_uid) {
    // A root caller's sandbox: the supervisor maps uid/gid 0 here to an
    // unprivileged host id; taking it makes this process that host id (and
    // drops root's supplementary groups, which no map names).
    if ((e = ReceiveIdentity(c.ids_ready, c.trees, p.mounts.size()))) ChildFail(c, kStepIdsWait, e);
    if (setgroups(0, nullptr) != 0 || setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0) {
      ChildFail(c, kStepIdentity, errno);
    }
    // A change of credentials clears the parent-death signal: set it again
    // and look once more for a supervisor that died meanwhile.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (poll(&pf, 1, 0) != 0) ChildFail(c, kStepParentGone, ESRCH);
  } else {
    if ((e = WriteAll("/proc/self/setgroups", "deny", 4))) ChildFail(c, kStepSetgroups, e);
    if ((e = WriteAll("/proc/self/uid_map", p.uid_map.data(), p.uid_map.size()))) ChildFail(c, kStepUidMap, e);
    if ((e = WriteAll("/proc/self/gid_map", p.gid_map.data(), p.gid_map.size()))) ChildFail(c, kStepGidMap, e);
  }
  Mark(c, kPhUserns);

  if (p.new_net) {
    // A new network namespace starts with loopback down; bring it up.
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    memcpy(ifr.ifr_name, "lo", 3);
    ifr.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
    if (s < 0 || ioctl(s, SIOCSIFFLAGS, &ifr) != 0) ChildFail(c, kStepLoopback, errno);
    close(s);
  }
  if (p.egress) {
    // The egress network: veth + routes, the nftables redirect, and the
    // listeners, made while init still holds CAP_NET_ADMIN and
    // CAP_NET_BIND_SERVICE in its user namespace. The workload gets
    // neither, so it can change none of it.
    int failed = -1;
    if ((e = ApplyEgressLinks(*p.egress, &failed))) ChildFail(c, kStepNetLinks, e, failed);
    if ((e = ApplyEgressNftables(*p.egress, &failed))) ChildFail(c, kStepNftables, e, failed);
    if ((e = SendEgressListeners(*p.egress, c.egress_channel, &failed))) ChildFail(c, kStepEgressListeners, e, failed);
    Mark(c, kPhNetwork);
  }

  for (int fd : c.cgroup->v1_procs_fds) {
    if (write(fd, "0", 1) != 1) ChildFail(c, kStepCgroupJoin, errno);
  }
  // After joining: the cgroup namespace's root is the sandbox's own cgroup.
  if (unshare(CLONE_NEWCGROUP) != 0) ChildFail(c, kStepCgroupNs, errno);
  Mark(c, kPhCgroup);

  // The new root: a tmpfs on the base directory, built op by op with
  // relative paths, then pivoted into. Mounts in this namespace never
  // reach the host (the namespace was copied with its mounts as slaves of
  // the host's, and every mount ward adds is private).
  if (mount("tmpfs", p.base.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0) ChildFail(c, kStepRootTmpfs, errno);
  if (chdir(p.base.c_str()) != 0) ChildFail(c, kStepChdirRoot, errno);
  for (size_t i = 0; i < p.mounts.size(); ++i) {
    if ((e = RunMountOp(p.mounts[i], c.trees ? c.trees[i] : -1))) ChildFail(c, kStepMountOp, e, static_cast<int>(i));
  }
  Mark(c, kPhMounts);
  // pivot_root(".", "."): the old root ends up mounted on top of the new
  // one and is detached right away, leaving no path back to the host.
  if (syscall(SYS_pivot_root, ".", ".") != 0) ChildFail(c, kStepPivotRoot, errno);
  if (umount2(".", MNT_DETACH) != 0) ChildFail(c, kStepDetachOldRoot, errno);
  if (chdir("/") != 0) ChildFail(c, kStepChdirRoot, errno);
  if (sethostname("ward", 4) != 0) ChildFail(c, kStepHostname, errno);
  if (setsid() < 0) ChildFail(c, kStepSetsid, errno);
  Mark(c, kPhPivot);

  // The memory watch (enforce/memory_watch.h) reads the sandbox's processes
  // through the sandbox's own procfs, opened here, where it is /proc.
  if (c.watch_channel >= 0) {
    int proc = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (proc < 0) ChildFail(c, kStepWatchProc, errno);
    if (int err = SendFds(c.watch_channel, &proc, 1)) ChildFail(c, kStepWatchProc, err);
    close(proc);
    close(c.watch_channel);
    c.watch_channel = -1;
  }

  // --pty: a terminal of the sandbox's own devpts instance, never one of
  // the host's (whose node the workload could chmod: it would own it). The
  // master goes to the supervisor, which relays it to the caller, with a
  // read-only slave of its own: an open file description apart from the
  // workload's (whose flags the workload sets), opened before the workload
  // runs (TIOCEXCL cannot keep it out), through which the supervisor sees
  // what the workload has read and the terminal's mode, to tell it the end
  // of a stdin that is not a terminal (enforce/terminal_eof.h). It never
  // reads or writes through it.
  if (c.pty_channel >= 0) {
    int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    int unlock = 0;
    if (master < 0 || ioctl(master, TIOCSPTLCK, &unlock) != 0) ChildFail(c, kStepPty, errno);
    c.pty_slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (c.pty_slave < 0) ChildFail(c, kStepPty, errno);
    int send[2] = {master, ioctl(master, TIOCGPTPEER, O_RDONLY | O_NOCTTY | O_CLOEXEC)};
    if (send[1] < 0) ChildFail(c, kStepPty, errno);
    if (int err = SendFds(c.pty_channel, send, 2)) ChildFail(c, kStepPty, err);
    close(send[1]);
    close(master);
    close(c.pty_channel);
    c.pty_channel = -1;
  }
  // The workload's stdio: pipes ward pumps, or the sandbox's own devices in
  // place of the caller's (enforce/stdio.h); before the rlimits, which
  // could leave no descriptor number free for the open.
  if (c.stdio) {
    for (int fd = 0; fd < 3; ++fd) {
      if (c.stdio->child_fd[fd] >= 0) {
        if (dup2(c.stdio->child_fd[fd], fd) < 0) ChildFail(c, kStepStdio, errno, fd);
      } else if (c.stdio->reopen[fd]) {
        int d = open(c.stdio->reopen[fd], c.stdio->reopen_flags[fd] | O_CLOEXEC);
        if (d < 0 || dup2(d, fd) < 0) ChildFail(c, kStepStdio, errno, fd);
        close(d);
      }
    }
  }

  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ChildFail(c, kStepNoNewPrivs, errno);
  if (c.ruleset_fd >= 0) {
    for (const auto& g : p.landlock_child) {
      if ((e = LandlockAddPath(c.ruleset_fd, p.landlock_abi, g.path.c_str(), g.write, g.list_only))) {
        ChildFail(c, kStepLandlockRule, e);
      }
    }
    if ((e = LandlockRestrictSelf(c.ruleset_fd))) ChildFail(c, kStepLandlock, e);
  }
  Mark(c, kPhLandlock);

  for (const auto& r : p.rlimits) {
    if (setrlimit(static_cast<__rlimit_resource>(r.resource), &r.value) != 0) ChildFail(c, kStepRlimit, errno, r.resource);
  }
  // Capabilities: lock root's special treatment off, then empty the
  // bounding, ambient, permitted, effective and inheritable sets, so not
  // even executing a file as uid 0 gives any back.
  if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                                   SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                                   SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED) != 0) {
    ChildFail(c, kStepSecurebits, errno);
  }
  for (int cap = 0; cap <= p.last_cap; ++cap) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) ChildFail(c, kStepCapBound, errno, cap);
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) ChildFail(c, kStepCapAmbient, errno);
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capset, &hdr, data) != 0) ChildFail(c, kStepCapset, errno);
  // Init holds secrets of no one, but keep /proc/1 (its fds, memory) closed
  // to the workload.
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  Mark(c, kPhCaps);

  if (c.seccomp_extra->len && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, c.seccomp_extra) != 0) {
    ChildFail(c, kStepSeccomp, errno);
  }
  if (c.seccomp_net->len) {
    // Its listener goes to the supervisor, which makes every connect() from
    // now on (net/connect_notify.h); init itself connects nothing. With a
    // network namespace of the sandbox's own, a NETLINK_SOCK_DIAG socket
    // in it goes along: the unix gate asks it which sockets are the
    // sandbox's (net/unix_gate.h).
    int fds[2] = {-1, -1};
    int n = 0;
    if (p.new_net) {
      fds[n] = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
      if (fds[n++] < 0) ChildFail(c, kStepConnectListener, errno);
    }
    int listener = InstallNotifyFilter(c.seccomp_net);
    if (listener < 0) ChildFail(c, kStepSeccomp, errno);
    int send[2] = {listener, n ? fds[0] : -1};
    if (int err = SendFds(c.connect_channel, send, n ? 2 : 1)) ChildFail(c, kStepConnectListener, err);
    close(listener);
    if (n) close(fds[0]);
    close(c.connect_channel);
    c.connect_channel = -1;
  }
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, c.seccomp) != 0) ChildFail(c, kStepSeccomp, errno);
  Mark(c, kPhSeccomp);
  // The workload starts only once the supervisor serves the listeners: it
  // writes one byte when its proxy runs, and closes the channel (or dies)
  // when it cannot. Waited for here, last, so that the proxy starts while
  // the sandbox is being built.
  if (p.egress && (e = WaitForByte(c.egress_channel))) ChildFail(c, kStepEgressGo, e);
  (void)!write(c.report_fd, c.phases, sizeof(Record) * c.nphases);

  // Only what init needs survives: stdio (for the workload), the report
  // pipe and the pty; everything else ward had open is closed here, so no
  // inherited descriptor reaches the workload.
  // (Everything was marked close-on-exec at the start, which protects the
  // workload; init never execs, so it closes them itself.)
  CloseAllBut(c.report_fd, c.pty_slave);

  sigset_t all, old;
  sigemptyset(&all);
  for (int s : kForwarded) sigaddset(&all, s);
  sigaddset(&all, SIGCHLD);
  sigprocmask(SIG_BLOCK, &all, &old);

  pid_t pid = fork();
  if (pid < 0) ChildFail(c, kStepFork, errno);
  if (pid == 0) RunWorkload(c, old);
  if (c.pty_slave >= 0) close(c.pty_slave);
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  for (int fd = 0; fd < 3 && devnull >= 0; ++fd) dup2(devnull, fd);
  if (devnull > 2) close(devnull);

  int status = 0;
  for (;;) {
    siginfo_t si;
    int sig = sigwaitinfo(&all, &si);
    if (sig < 0) continue;
    if (sig != SIGCHLD) {
      // To the workload's process group; before its setsid() has run, to
      // the workload alone.
      if (kill(-pid, sig) != 0) kill(pid, sig);
      continue;
    }
    bool done = false;
    int st;
    pid_t w;
    while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
      if (w == pid) {
        status = st;
        done = true;
      }
    }
    if (done) break;
  }
  Record last[3];
  last[0] = Record{kRecPhase, kPhWorkloadExited, 0, 0, NowNs()};
  // The workload is gone: nothing else may outlive it.
  kill(-1, SIGKILL);
  while (waitpid(-1, nullptr, 0) > 0 || errno == EINTR) {
  }
  last[1] = Record{kRecPhase, kPhSandboxEmpty, 0, 0, NowNs()};
  last[2] = Record{kRecExit, 0, 0, 0, status};
  (void)!write(c.report_fd, last, sizeof last);
  _exit(0);
}

// ---------------------------------------------------------------------------
// The supervisor.

class RawTerminal {
 public:
  explicit RawTerminal(int fd) : fd_(fd) {
    if (tcgetattr(fd_, &saved_) == 0) {
      termios raw = saved_;
      cfmakeraw(&raw);
      active_ = tcsetattr(fd_, TCSANOW, &raw) == 0;
    }
  }
  ~RawTerminal() {
    if (active_) tcsetattr(fd_, TCSANOW, &saved_);
  }

 private:
  int fd_;
  termios saved_{};
  bool active_ = false;
};

}  // namespace

Result<LaunchOutcome> Launch(const LaunchPlan& plan, const CgroupPlan& cgroup, int ruleset_fd,
                             const LaunchOptions& opts, LaunchError* exec_error) {
  LaunchOutcome out;
  // argv/envp as the arrays execve wants, built before clone.
  std::vector<char*> argv, envp;
  for (const auto& a : plan.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : plan.envp) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  sock_fprog prog{static_cast<unsigned short>(plan.seccomp.size()), const_cast<sock_filter*>(plan.seccomp.data())};
  sock_fprog extra{static_cast<unsigned short>(plan.seccomp_extra.size()),
                   const_cast<sock_filter*>(plan.seccomp_extra.data())};
  sock_fprog net{static_cast<unsigned short>(plan.seccomp_net.size()), const_cast<sock_filter*>(plan.seccomp_net.data())};

  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return SysError("pipe2", "report");
  UniqueFd report_rd(p[0]), report_wr(p[1]);
  fcntl(report_rd.get(), F_SETFL, O_NONBLOCK);
  UniqueFd self_pidfd(static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0)));
  if (!self_pidfd.valid()) return SysError("pidfd_open", "self");

  UniqueFd connect_parent, connect_child;
  if (!plan.seccomp_net.empty()) {
    if (!opts.on_connect_listener) return Error::Setup("no connect() server to serve the sandbox's filter");
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return SysError("socketpair", "connect listener");
    connect_parent.Reset(sv[0]);
    connect_child.Reset(sv[1]);
  }

  UniqueFd watch_parent, watch_child;
  if (opts.watch_memory_bytes > 0 || opts.watch_pids > 0) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return SysError("socketpair", "memory watch");
    watch_parent.Reset(sv[0]);
    watch_child.Reset(sv[1]);
  }

  UniqueFd egress_parent, egress_child;
  if (plan.egress) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return SysError("socketpair", "egress");
    egress_parent.Reset(sv[0]);
    egress_child.Reset(sv[1]);
  }

  // A root caller's sandbox: the channel its identity comes on. The id maps
  // and the id-mapped grants are made after clone, with the host's
  // privileges and through the sandbox's own user namespace, while the
  // child starts (enforce/idmap.h).
  UniqueFd ids_rd, ids_wr;
  std::vector<int> tree_fds;
  if (plan.host_uid) {
    tree_fds.assign(plan.mounts.size(), -1);
    int ids[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ids) != 0) return SysError("socketpair", "identity");
    ids_rd.Reset(ids[0]);
    ids_wr.Reset(ids[1]);
  }

  std::optional<StdioBridge> bridge;
  if (!opts.pty) {
    auto b = StdioBridge::Prepare();
    if (!b) return b.error();
    bridge = std::move(*b);
  }

  UniqueFd pty_master, pty_slave, pty_parent, pty_child;
  if (opts.pty) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return SysError("socketpair", "pty");
    pty_parent.Reset(sv[0]);
    pty_child.Reset(sv[1]);
  }

  // Signals for ward itself arrive on a signalfd, to be forwarded.
  sigset_t sigs, old_sigs;
  sigemptyset(&sigs);
  // SIGPIPE too: a pump writing to a caller's pipe that closed gets EPIPE
  // (the signal is read from the signalfd and dropped), ward lives on.
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, SIGPIPE}) sigaddset(&sigs, s);
  sigprocmask(SIG_BLOCK, &sigs, &old_sigs);
  struct MaskRestore {
    sigset_t m;
    ~MaskRestore() { sigprocmask(SIG_SETMASK, &m, nullptr); }
  } restore{old_sigs};
  UniqueFd sigfd(signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sigfd.valid()) return SysError("signalfd", "SIGINT,SIGTERM,SIGHUP,SIGQUIT");

  ChildContext ctx{};
  ctx.plan = &plan;
  ctx.cgroup = &cgroup;
  ctx.report_fd = report_wr.get();
  ctx.parent_pidfd = self_pidfd.get();
  ctx.ruleset_fd = ruleset_fd;
  ctx.pty_slave = -1;
  ctx.pty_channel = pty_child.get();
  ctx.egress_channel = egress_child.get();
  ctx.connect_channel = connect_child.get();
  ctx.watch_channel = watch_child.get();
  ctx.ids_ready = ids_rd.get();
  ctx.stdio = bridge ? &bridge->plan() : nullptr;
  ctx.trees = tree_fds.empty() ? nullptr : tree_fds.data();
  ctx.seccomp = &prog;
  ctx.seccomp_extra = &extra;
  ctx.seccomp_net = &net;
  ctx.argv = argv.data();
  ctx.envp = envp.data();

  clone_args args{};
  args.flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_PIDFD;
  if (plan.new_net) args.flags |= CLONE_NEWNET;
  int pidfd_raw = -1;
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd_raw);
  args.exit_signal = SIGCHLD;
  if (cgroup.v2_dir_fd >= 0) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = static_cast<uint64_t>(cgroup.v2_dir_fd);
  }
  const int64_t clone_ns = NowNs();
  long pid = syscall(SYS_clone3, &args, sizeof args);
  if (pid < 0) {
    int err = errno;
    std::string flags = "CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWIPC|CLONE_NEWUTS";
    if (plan.new_net) flags += "|CLONE_NEWNET";
    if (cgroup.v2_dir_fd >= 0) flags += "|CLONE_INTO_CGROUP";
    return Error::Setup("clone3 " + flags + ": " + ErrnoName(err) +
                        (err == EPERM || err == ENOSPC ? " (are unprivileged user namespaces disabled? see `ward doctor`)" : ""));
  }
  if (pid == 0) {
    sigprocmask(SIG_SETMASK, &old_sigs, nullptr);
    ChildMain(ctx);
  }
  UniqueFd pidfd(pidfd_raw);
  auto send = [&](int sig) { syscall(SYS_pidfd_send_signal, pidfd.get(), sig, nullptr, 0); };
  if (plan.host_uid) {
    ids_rd.Reset();
    Result<void> mapped = GiveIdentity(static_cast<pid_t>(pid), plan, ids_wr.get());
    if (!mapped) {
      // Nothing has run yet: the child still waits for its identity.
      send(SIGKILL);
      siginfo_t info{};
      waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd.get()), &info, WEXITED);
      return mapped.error();
    }
    ids_wr.Reset();
  }
  report_wr.Reset();
  pty_child.Reset();
  if (bridge) bridge->CloseChildEnds();
  egress_child.Reset();
  connect_child.Reset();
  watch_child.Reset();
  out.phases.push_back({"clone", (clone_ns - opts.start_ns) / 1000.0});

  std::optional<Error> serve_error;
  if (plan.egress) {
    // Blocks until init has built the network (bounded: netlink answers
    // time out) or has failed, closing its end.
    auto listeners = ReceiveEgressListeners(egress_parent.get());
    Result<void> served = !listeners ? Result<void>(listeners.error())
                          : opts.on_egress_listeners ? opts.on_egress_listeners(std::move(*listeners))
                                                     : Result<void>(Error::Setup("no egress proxy to serve the sandbox"));
    if (served) {
      // Init waits for this byte before it starts the workload.
      if (write(egress_parent.get(), "G", 1) != 1) served = SysError("write", "egress go");
    }
    if (!served) {
      // Nothing may run unfiltered: the sandbox dies before its workload
      // (init is still waiting for the byte above). If init failed first,
      // its report names the step (below); otherwise this error stands.
      send(SIGKILL);
      serve_error = served.error();
    }
    egress_parent.Reset();
  }

  if (opts.pty) {
    // Init sends the master and a slave once its root is built (before it
    // waits for the egress byte above). Nothing arrives if it failed first:
    // its report says why.
    std::vector<UniqueFd> got = ReceiveFds(pty_parent.get(), 2);
    if (got.size() == 2) {
      pty_master = std::move(got[0]);
      pty_slave = std::move(got[1]);
      winsize ws;
      if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) ioctl(pty_master.get(), TIOCSWINSZ, &ws);
    }
    pty_parent.Reset();
  }

  if (connect_parent.valid()) {
    // Init sends the listener as it loads the filter, after the pty; with
    // nothing (it failed first) its report says why. Nothing in the sandbox
    // runs unserved: the workload's connect() calls wait until this serves,
    // or die with the sandbox if it cannot.
    bool truncated = false;
    std::vector<UniqueFd> got = ReceiveFds(connect_parent.get(), 2, &truncated);
    if (!got.empty() && !truncated) {
      UniqueFd diag = got.size() > 1 ? std::move(got[1]) : UniqueFd();
      Result<void> served = opts.on_connect_listener(std::move(got[0]), std::move(diag));
      if (!served) {
        send(SIGKILL);
        if (!serve_error) serve_error = served.error();
      }
    }
    connect_parent.Reset();
  }

  std::optional<MemoryWatch> watch;
  if (watch_parent.valid()) {
    // Sent once init's root is built; nothing if it failed first (its
    // report says why). A procfs that is not the sandbox's stops it.
    std::vector<UniqueFd> got = ReceiveFds(watch_parent.get(), 1);
    if (!got.empty()) {
      auto opened = MemoryWatch::FromProcfs(std::move(got[0]));
      if (opened) {
        watch.emplace(std::move(*opened));
      } else {
        send(SIGKILL);
        out.watch_error = opened.error().message;
      }
    }
    watch_parent.Reset();
  }

  std::unique_ptr<RawTerminal> raw;
  // Pumps from the sandbox's outputs must be drained after init is gone;
  // one into the sandbox (stdin) need not.
  std::vector<Pump> pty_pumps;
  std::vector<Pump>& pumps = bridge ? bridge->pumps() : pty_pumps;
  if (pty_master.valid()) {
    raw = std::make_unique<RawTerminal>(STDIN_FILENO);
    // The master is ward's own: non-blocking, so neither direction can
    // stall the loop; the caller's stdout takes what poll() promised.
    fcntl(pty_master.get(), F_SETFL, O_NONBLOCK);
    UniqueFd in = ReopenNonBlocking(STDIN_FILENO), out_fd = ReopenNonBlocking(STDOUT_FILENO);
    const int in_fd = in.valid() ? in.get() : STDIN_FILENO;
    const int to_fd = out_fd.valid() ? out_fd.get() : STDOUT_FILENO;
    pumps.emplace_back(in_fd, pty_master.get(), UniqueFd(), 64 * 1024);
    pumps.back().Hold(std::move(in));
    pumps.back().MarkInput();
    pumps.back().MarkTerminalInput(std::move(pty_slave));
    pumps.emplace_back(pty_master.get(), to_fd, UniqueFd(), PIPE_BUF);
    pumps.back().Hold(std::move(out_fd));
  }

  Record setup_error{};
  bool have_error = false, have_exit = false, init_gone = false;
  siginfo_t info{};
  int64_t deadline = plan.timeout_ms > 0 ? clone_ns + plan.timeout_ms * 1000000 : 0;
  int64_t kill_at = 0;
  // The memory limit without a cgroup (enforce/memory_watch.h): sampled on
  // a thread of its own from the moment the workload starts until init is
  // gone.
  std::unique_ptr<MemoryWatchThread> watcher;
  auto start_watching = [&] {
    if (!watch || watcher) return;
    MemoryWatchThread::Limits limits{opts.watch_memory_bytes, opts.watch_pids};
    const int fd = pidfd.get();
    watcher = std::make_unique<MemoryWatchThread>(std::move(*watch), limits, [fd] {
      syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0);
    });
    watch.reset();
  };

  // Reads what the child has reported so far. Returns false at end of file
  // (every copy of the write end closed), true while more may come.
  auto drain_report = [&]() {
    Record recs[16];
    for (;;) {
      ssize_t n = read(report_rd.get(), recs, sizeof recs);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return true;
      if (n <= 0) return false;
      for (ssize_t i = 0; i < n / static_cast<ssize_t>(sizeof(Record)); ++i) {
        const Record& r = recs[i];
        if (r.type == kRecPhase && r.step < kPhCount) {
          out.phases.push_back({kPhaseNames[r.step], (r.value - opts.start_ns) / 1000.0});
          if (r.step == kPhExec) start_watching();
        } else if (r.type == kRecError && !have_error) {
          setup_error = r;
          have_error = true;
        } else if (r.type == kRecExit) {
          out.wait_status = static_cast<int>(r.value);
          have_exit = true;
        }
      }
    }
  };

  bool report_open = true;
  // Runs until init is gone and the sandbox's output is delivered; after
  // init, a signal or the deadline ends the wait for a slow reader.
  auto output_pending = [&] {
    for (size_t i = 0; i < pumps.size(); ++i) {
      if (!pumps[i].input() && !pumps[i].Done()) return true;
    }
    return false;
  };
  bool abandon = false;
  std::vector<pollfd> fds;
  while (!init_gone || (output_pending() && !abandon && !out.timed_out)) {
    fds.assign(3, pollfd{});
    fds[0] = {init_gone ? -1 : pidfd.get(), POLLIN, 0};
    fds[1] = {report_open ? report_rd.get() : -1, POLLIN, 0};
    fds[2] = {sigfd.get(), POLLIN, 0};
    for (const Pump& pump : pumps) fds.push_back(pump.Want());
    int timeout = -1;
    int64_t now = NowNs();
    int64_t next = 0;
    if (deadline && !out.timed_out) next = deadline;
    if (kill_at && (!next || kill_at < next)) next = kill_at;
    if (next) timeout = next <= now ? 0 : static_cast<int>((next - now) / 1000000 + 1);
    for (const Pump& pump : pumps) {
      const int t = pump.TimeoutMs(now);
      if (t >= 0 && (timeout < 0 || t < timeout)) timeout = t;
    }
    int n = poll(fds.data(), fds.size(), timeout);
    if (n < 0 && errno != EINTR) return SysError("poll", "supervisor");
    now = NowNs();
    if (deadline && !out.timed_out && now >= deadline) {
      out.timed_out = true;
      send(SIGKILL);
      if (init_gone) abandon = true;
    }
    if (kill_at && now >= kill_at) {
      send(SIGKILL);
      kill_at = 0;
    }
    for (Pump& pump : pumps) pump.Tick(now);
    if (n <= 0) continue;
    if (fds[1].revents) report_open = drain_report();
    if (fds[2].revents & POLLIN) {
      signalfd_siginfo si;
      while (read(sigfd.get(), &si, sizeof si) == sizeof si) {
        int sig = static_cast<int>(si.ssi_signo);
        if (sig == SIGPIPE) continue;
        if (init_gone) {
          abandon = true;  // nothing left to signal: stop waiting for the reader
          continue;
        }
        if (sig == SIGWINCH) {
          winsize ws;
          if (opts.pty && ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) ioctl(pty_master.get(), TIOCSWINSZ, &ws);
          continue;
        }
        // First signal: forwarded to the workload through init. A second
        // one, or the grace period running out, kills the sandbox.
        if (out.interrupted) {
          send(SIGKILL);
        } else {
          out.interrupted = true;
          send(sig);
          kill_at = NowNs() + opts.kill_grace_ms * 1000000;
        }
      }
    }
    for (size_t i = 0; i < pumps.size(); ++i) pumps[i].Service(fds[3 + i].revents);
    if (fds[0].revents) {
      init_gone = true;
      // Before the reap: the watcher's kill goes to this pidfd's process.
      if (watcher) {
        watcher->Stop();
        out.memory_exceeded = watcher->memory_exceeded();
        out.pids_reached = watcher->pids_reached();
        if (!watcher->error().empty()) out.watch_error = watcher->error();
      }
      waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd.get()), &info, WEXITED);
      // Nobody is left to read the sandbox's input: ward stops reading the
      // caller's, and lets go of the pty's slave, so that the master reads
      // to the end of the workload's output (EIO once no slave is open).
      for (Pump& pump : pumps) {
        if (pump.input()) pump.Close();
      }
    }
  }
  // Init is gone; whatever it wrote is in the pipe. The workload's copy of
  // the write end closed at exec, but an orphan that escaped kill(-1)
  // cannot exist: the pid namespace died with init.
  while (report_open) {
    pollfd pf{report_rd.get(), POLLIN, 0};
    if (poll(&pf, 1, 100) <= 0) break;
    report_open = drain_report();
  }
  // A regular file on stdin: the caller's offset moves by what the
  // workload read, not by what ward read ahead (`while read f; do ward run
  // ...; done < list` keeps its lines).
  if (bridge) bridge->SettleStdin();
  for (Pump& pump : pumps) pump.Close();
  const int64_t end_ns = NowNs();
  out.phases.push_back({"sandbox gone", (end_ns - opts.start_ns) / 1000.0});
  out.duration_ms = (end_ns - clone_ns) / 1e6;
  if (info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED) out.init_signal = info.si_status;

  if (have_error && setup_error.step == kStepExec) {
    exec_error->exec_errno = setup_error.err;
    std::string cmd = plan.argv.empty() ? "" : plan.argv[0];
    return Error::Setup("execve \"" + cmd + "\": " + ErrnoName(setup_error.err));
  }
  if (have_error) {
    std::string what = setup_error.step < kStepCount ? kStepNames[setup_error.step] : "?";
    if (setup_error.step == kStepMountOp && setup_error.index >= 0 &&
        static_cast<size_t>(setup_error.index) < plan.mounts.size()) {
      const MountOp& op = plan.mounts[static_cast<size_t>(setup_error.index)];
      what += " \"" + (op.source.empty() ? std::string("") : op.source + "\" -> \"") + "/" + op.target + "\"";
    }
    if (setup_error.step == kStepRlimit) what += " (resource " + std::to_string(setup_error.index) + ")";
    if (plan.egress && (setup_error.step == kStepNetLinks || setup_error.step == kStepNftables ||
                        setup_error.step == kStepEgressListeners)) {
      EgressStage stage = setup_error.step == kStepNetLinks   ? EgressStage::kLinks
                          : setup_error.step == kStepNftables ? EgressStage::kNftables
                                                              : EgressStage::kListeners;
      std::string detail = DescribeEgressFailure(*plan.egress, stage, setup_error.index);
      if (!detail.empty()) what += " (" + detail + ")";
    }
    return Error::Setup("sandbox setup failed at " + what + ": " + ErrnoName(setup_error.err));
  }
  if (serve_error) return *serve_error;
  out.exited = have_exit;
  return out;
}

}  // namespace ward
