#include "enforce/child.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <iterator>
#include <utility>

#include "base/errors.h"
#include "base/fd_passing.h"
#include "base/no_symlinks.h"
#include "enforce/idmap.h"
#include "enforce/landlock.h"
#include "enforce/seccomp.h"
#include "ward/sandbox.h"

namespace ward {

namespace {

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
    "record the exec in the audit trail",
    "hand the persistent /tmp and home to the supervisor (open, SCM_RIGHTS)",
};

static_assert(std::size(kStepNames) == kStepCount, "a name for every step");

const char* const kPhaseNames[kPhCount] = {
    "child started", "user namespace mapped", "network built", "cgroup joined", "mounts built", "root pivoted",
    "landlock applied", "capabilities dropped", "seccomp loaded", "exec", "workload exited",
    "sandbox emptied",
};

// ---------------------------------------------------------------------------
// Helpers of the steps below: async-signal-safe, like everything in this
// file that runs in the child.


void Mark(ChildContext& c, PhaseId id) {
  c.phases[c.nphases++] = Record{kRecPhase, id, 0, 0, MonotonicNs()};
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
const char* TmpfsOptions(char* buf, mode_t mode, int64_t size_mib, int64_t nr_inodes) {
  memcpy(buf, "mode=0000", 10);
  for (int i = 0; i < 4; ++i) buf[8 - i] = static_cast<char>('0' + ((mode >> (3 * i)) & 7));
  char* p = buf + 9;
  if (size_mib > 0) {
    memcpy(p, ",size=", 6);
    p = AppendDecimal(p + 6, static_cast<uint64_t>(size_mib));
    *p++ = 'm';
    *p = '\0';
  }
  if (nr_inodes > 0) {
    memcpy(p, ",nr_inodes=", 11);
    p = AppendDecimal(p + 11, static_cast<uint64_t>(nr_inodes));
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
  char opt[96];  // mode, size and nr_inodes: at most 9 + 27 + 31
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
      if (mount("tmpfs", t, "tmpfs", MsFlags(op.attr_set), TmpfsOptions(opt, op.mode, op.size_mib, op.nr_inodes)) != 0) {
        return errno;
      }
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


const int kForwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT, SIGTSTP};

// The workload, forked by init: the caller's signal mask, a session of its
// own, the terminal (--pty), the working directory, then exec.
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
  Record r{kRecPhase, kPhExec, 0, 0, MonotonicNs()};
  (void)!write(c.report_fd, &r, sizeof r);
  int err = ENOENT;
  for (const auto& cand : p.exec_candidates) {
    // A candidate that is not there is skipped without an execve(): each
    // one is a notification to the supervisor when executions are watched
    // (RunRequest::on_exec), and this one may not be read by it (init's
    // children are not dumpable).
    if (access(cand.c_str(), F_OK) != 0 && (errno == ENOENT || errno == ENOTDIR)) continue;
    execve(cand.c_str(), c.argv, c.envp);
    // Keep looking past missing entries; remember a permission problem.
    if (errno != ENOENT && errno != ENOTDIR) err = errno;
  }
  ChildFail(c, kStepExec, err);
}


// ---------------------------------------------------------------------------
// The steps of init, in the order ChildMain calls them. Each one either
// succeeds or reports {step, errno} and exits (ChildFail).

// Ends init if the supervisor is already gone.
void CheckParent(const ChildContext& c) {
  pollfd pf{c.parent_pidfd, POLLIN, 0};
  if (poll(&pf, 1, 0) != 0) ChildFail(c, kStepParentGone, ESRCH);
}

// Closes what ward leaked at the workload's exec and ties the sandbox's
// life to the supervisor's.
void StartChild(ChildContext& c) {
  Mark(c, kPhChildStart);
  // Every descriptor ward had open beyond stdio (including any the caller
  // leaked to ward without O_CLOEXEC) is closed at the workload's exec.
  syscall(SYS_close_range, 3, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */);
  // If the supervisor dies, so does the sandbox (and with PID 1, every
  // process in it). The check after it closes the race with an early death.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  CheckParent(c);
}

void EnterUserNamespace(ChildContext& c) {
  const LaunchPlan& p = *c.plan;
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
    CheckParent(c);
  } else {
    if ((e = WriteAll("/proc/self/setgroups", "deny", 4))) ChildFail(c, kStepSetgroups, e);
    if ((e = WriteAll("/proc/self/uid_map", p.uid_map.data(), p.uid_map.size()))) ChildFail(c, kStepUidMap, e);
    if ((e = WriteAll("/proc/self/gid_map", p.gid_map.data(), p.gid_map.size()))) ChildFail(c, kStepGidMap, e);
  }
  Mark(c, kPhUserns);
}

void BuildNetwork(ChildContext& c) {
  const LaunchPlan& p = *c.plan;
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
    int e;
    int failed = -1;
    if ((e = ApplyEgressLinks(*p.egress, &failed))) ChildFail(c, kStepNetLinks, e, failed);
    if ((e = ApplyEgressNftables(*p.egress, &failed))) ChildFail(c, kStepNftables, e, failed);
    if ((e = SendEgressListeners(*p.egress, c.egress_channel, &failed))) ChildFail(c, kStepEgressListeners, e, failed);
    Mark(c, kPhNetwork);
  }
}

void JoinCgroup(ChildContext& c) {
  for (int fd : c.cgroup->v1_procs_fds) {
    if (write(fd, "0", 1) != 1) ChildFail(c, kStepCgroupJoin, errno);
  }
  // After joining: the cgroup namespace's root is the sandbox's own cgroup.
  if (unshare(CLONE_NEWCGROUP) != 0) ChildFail(c, kStepCgroupNs, errno);
  Mark(c, kPhCgroup);
}

void BuildRoot(ChildContext& c) {
  const LaunchPlan& p = *c.plan;
  // The new root: a tmpfs on the base directory, built op by op with
  // relative paths, then pivoted into. Mounts in this namespace never
  // reach the host (the namespace was copied with its mounts as slaves of
  // the host's, and every mount ward adds is private).
  if (mount("tmpfs", p.base.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0) ChildFail(c, kStepRootTmpfs, errno);
  if (chdir(p.base.c_str()) != 0) ChildFail(c, kStepChdirRoot, errno);
  int e;
  for (size_t i = 0; i < p.mounts.size(); ++i) {
    if ((e = RunMountOp(p.mounts[i], c.trees ? c.trees[i] : -1))) ChildFail(c, kStepMountOp, e, static_cast<int>(i));
  }
  Mark(c, kPhMounts);
}

void PivotRoot(ChildContext& c) {
  // pivot_root(".", "."): the old root ends up mounted on top of the new
  // one and is detached right away, leaving no path back to the host.
  if (syscall(SYS_pivot_root, ".", ".") != 0) ChildFail(c, kStepPivotRoot, errno);
  if (umount2(".", MNT_DETACH) != 0) ChildFail(c, kStepDetachOldRoot, errno);
  if (chdir("/") != 0) ChildFail(c, kStepChdirRoot, errno);
  if (sethostname("ward", 4) != 0) ChildFail(c, kStepHostname, errno);
  if (setsid() < 0) ChildFail(c, kStepSetsid, errno);
  Mark(c, kPhPivot);
}

void HandProcToMemoryWatch(ChildContext& c) {
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
}

void OpenPty(ChildContext& c) {
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
}

void SetUpStdio(ChildContext& c) {
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
}

void ApplyLandlock(ChildContext& c) {
  const LaunchPlan& p = *c.plan;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ChildFail(c, kStepNoNewPrivs, errno);
  if (c.ruleset_fd >= 0) {
    int e;
    for (const auto& g : p.landlock_child) {
      if ((e = LandlockAddPath(c.ruleset_fd, p.landlock_abi, g.path.c_str(), g.write, g.list_only))) {
        ChildFail(c, kStepLandlockRule, e);
      }
    }
    if ((e = LandlockRestrictSelf(c.ruleset_fd))) ChildFail(c, kStepLandlock, e);
  }
  Mark(c, kPhLandlock);
}

void ApplyRlimits(ChildContext& c) {
  for (const auto& r : c.plan->rlimits) {
    if (setrlimit(static_cast<__rlimit_resource>(r.resource), &r.value) != 0) ChildFail(c, kStepRlimit, errno, r.resource);
  }
}

void DropCapabilities(ChildContext& c) {
  // Capabilities: lock root's special treatment off, then empty the
  // bounding, ambient, permitted, effective and inheritable sets, so not
  // even executing a file as uid 0 gives any back.
  if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                                   SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                                   SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED) != 0) {
    ChildFail(c, kStepSecurebits, errno);
  }
  for (int cap = 0; cap <= c.plan->last_cap; ++cap) {
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
}

void LoadSeccomp(ChildContext& c) {
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
    if (c.plan->new_net) {
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
}

void WaitForEgressProxy(ChildContext& c) {
  // The workload starts only once the supervisor serves the listeners: it
  // writes one byte when its proxy runs, and closes the channel (or dies)
  // when it cannot. Waited for here, last, so that the proxy starts while
  // the sandbox is being built.
  int e;
  if (c.plan->egress && (e = WaitForByte(c.egress_channel))) ChildFail(c, kStepEgressGo, e);
}

void ReportPhases(ChildContext& c) {
  (void)!write(c.report_fd, c.phases, sizeof(Record) * c.nphases);
}

// Starts the workload, forwards signals to it, reaps every orphan, and when
// the workload ends kills whatever is left and reports the workload's
// status.
[[noreturn]] void RunInit(ChildContext& c) {
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
  last[0] = Record{kRecPhase, kPhWorkloadExited, 0, 0, MonotonicNs()};
  // The workload is gone: nothing else may outlive it.
  kill(-1, SIGKILL);
  while (waitpid(-1, nullptr, 0) > 0 || errno == EINTR) {
  }
  last[1] = Record{kRecPhase, kPhSandboxEmpty, 0, 0, MonotonicNs()};
  last[2] = Record{kRecExit, 0, 0, 0, status};
  (void)!write(c.report_fd, last, sizeof last);
  _exit(0);
}

}  // namespace

void ChildFail(const ChildContext& c, Step step, int err, int index) {
  Record r{kRecError, step, err, index, 0};
  (void)!write(c.report_fd, &r, sizeof r);
  _exit(kExitSetup);
}

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

const char* StepName(uint32_t step) { return step < kStepCount ? kStepNames[step] : "?"; }

const char* PhaseName(uint32_t phase) { return kPhaseNames[phase]; }

// PID 1 of the sandbox, as a table of contents: each step below either
// succeeds or ends init with a {step, errno} record.
[[noreturn]] void ChildMain(ChildContext& c) {
  StartChild(c);
  EnterUserNamespace(c);
  BuildNetwork(c);
  JoinCgroup(c);
  BuildRoot(c);
  PivotRoot(c);
  HandProcToMemoryWatch(c);
  OpenPty(c);
  SetUpStdio(c);
  ApplyLandlock(c);
  ApplyRlimits(c);
  DropCapabilities(c);
  LoadSeccomp(c);
  WaitForEgressProxy(c);
  ReportPhases(c);
  if (c.exec_channel >= 0) ServeExecs(c);
  RunInit(c);
}

}  // namespace ward
