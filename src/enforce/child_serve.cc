// A held sandbox's init: starts the processes its supervisor asks for
// (enforce/exec_request.h), reports when each starts and ends, and reaps
// every orphan. Runs in the child of clone, like the rest of init: no
// allocation, no stdio, no locks.
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/fd_passing.h"
#include "enforce/child.h"
#include "enforce/exec_request.h"

namespace ward {

namespace {

// The request being served, and the pointer arrays execve wants: static,
// since init allocates nothing (a request is at most kExecMaxStrings bytes
// of strings, so at most half as many strings).
ExecMessage g_request;
constexpr size_t kMaxStrings = kExecMaxStrings / 2 + 2;
char* g_argv[kMaxStrings];
char* g_envp[kMaxStrings];

struct Running {
  uint32_t id;
  pid_t pid;  // 0: free
};
Running g_running[kExecMaxRunning];

void Send(int channel, ExecEventType type, uint32_t id, int32_t step, int32_t err, int64_t value) {
  ExecEvent ev{type, id, step, err, value};
  (void)!send(channel, &ev, sizeof ev, MSG_NOSIGNAL);
}

// Splits the request's strings into cwd, argv and envp (NULL-terminated).
// False if the counts do not match what the message holds.
bool SplitStrings(const ExecMessage& m, size_t got, const char** cwd) {
  const ExecHeader& h = m.h;
  if (static_cast<size_t>(h.argc) + h.envc + 1 > kMaxStrings) return false;
  const bool ok = ForEachExecString(m, got, [&](size_t i, const char* p) {
    if (i == 0) *cwd = p;
    else if (i <= h.argc) g_argv[i - 1] = const_cast<char*>(p);
    else g_envp[i - 1 - h.argc] = const_cast<char*>(p);
  });
  if (!ok) return false;
  g_argv[h.argc] = nullptr;
  g_envp[h.envc] = nullptr;
  return true;
}

// PATH from the request's environment (execvpe's default when unset).
const char* PathOf(char* const* envp) {
  for (; *envp; ++envp) {
    if (strncmp(*envp, "PATH=", 5) == 0) return *envp + 5;
  }
  return "/usr/local/bin:/usr/bin:/bin";
}

// execve of argv[0] as a shell would find it: as given if it names a path,
// else in each PATH entry. Returns the errno to report (ENOENT unless an
// entry existed and could not be run).
int ExecSearching(char* const* argv, char* const* envp) {
  const char* name = argv[0];
  if (strchr(name, '/')) {
    execve(name, argv, envp);
    return errno;
  }
  int err = ENOENT;
  const size_t nlen = strlen(name);
  char path[4096];
  for (const char* dir = PathOf(envp);;) {
    const char* colon = strchr(dir, ':');
    size_t dlen = colon ? static_cast<size_t>(colon - dir) : strlen(dir);
    if (dlen == 0) dlen = 1, dir = ".";  // an empty entry is the current directory
    if (dlen + 1 + nlen + 1 <= sizeof path) {
      memcpy(path, dir, dlen);
      path[dlen] = '/';
      memcpy(path + dlen + 1, name, nlen + 1);
      // A missing entry is skipped without an execve(): each one would be a
      // notification to the supervisor when executions are watched.
      if (access(path, F_OK) == 0 || (errno != ENOENT && errno != ENOTDIR)) {
        execve(path, argv, envp);
        if (errno != ENOENT && errno != ENOTDIR) err = errno;
      }
    }
    if (!colon) break;
    dir = colon + 1;
  }
  return err;
}

// The started process, forked by init: its own session, its stdio (the
// passed descriptors, /dev/null or a terminal of the sandbox's devpts), the
// working directory, then exec. Confined as init is (landlock, seccomp,
// rlimits, no capabilities): it inherits all of it.
[[noreturn]] void StartExec(ChildContext& c, const ExecHeader& h, const int* fds, int gate, const char* cwd,
                            const sigset_t& mask) {
  sigprocmask(SIG_SETMASK, &mask, nullptr);
  auto fail = [&](Step step, int err) {
    Send(c.exec_channel, kEvFailed, h.id, static_cast<int32_t>(step), err, 0);
    _exit(127);
  };
  if (setsid() < 0) fail(kStepSetsid, errno);
  if (h.flags & kExecPty) {
    // As OpenPty in child.cc: the master and a read-only slave go to the
    // supervisor, which hands them to the caller of `ward exec`.
    int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    int unlock = 0;
    if (master < 0 || ioctl(master, TIOCSPTLCK, &unlock) != 0) fail(kStepPty, errno);
    int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    int ro = ioctl(master, TIOCGPTPEER, O_RDONLY | O_NOCTTY | O_CLOEXEC);
    if (slave < 0 || ro < 0) fail(kStepPty, errno);
    ExecEvent ev{kEvPty, h.id, 0, 0, 0};
    int send[2] = {master, ro};
    if (int err = SendFdsWithData(c.exec_channel, send, 2, &ev, sizeof ev)) fail(kStepPty, err);
    close(master);
    close(ro);
    for (int fd = 0; fd < 3; ++fd) dup2(slave, fd);
    if (slave > 2) close(slave);
    if (ioctl(0, TIOCSCTTY, 0) != 0) fail(kStepCtty, errno);
  } else {
    size_t next = 0;
    for (int fd = 0; fd < 3; ++fd) {
      int from = -1;
      if (h.stdio[fd] == kStdioPassed) {
        from = fds[next++];
      } else {
        const uint32_t dev = h.stdio[fd] - kStdioDevFirst;
        from = dev < kExecDeviceCount ? open(kExecDevices[dev], static_cast<int>(h.stdio_flags[fd]) | O_CLOEXEC) : -1;
        if (from < 0) fail(kStepStdio, dev < kExecDeviceCount ? errno : EINVAL);
      }
      if (dup2(from, fd) < 0) fail(kStepStdio, errno);
    }
  }
  // Every other descriptor (the passed ones, init's channel and report
  // pipe) is close-on-exec.
  if (chdir(cwd) != 0) fail(kStepChdirCwd, errno);
  if (gate >= 0) {
    // Nothing runs before its start is in the audit trail: the supervisor
    // says so on the gate (kExecGated). Its pid first, for the supervisor's
    // memory watch: this process is unreadable until its exec, as init is.
    const pid_t me = getpid();
    (void)!send(gate, &me, sizeof me, MSG_NOSIGNAL | MSG_DONTWAIT);
    char go = 0;
    ssize_t n;
    do {
      n = read(gate, &go, 1);
    } while (n < 0 && errno == EINTR);
    // Closed unopened: refused (ECONNRESET when its pid was left unread).
    if (n != 1 || go != 'g') fail(kStepAudit, n < 0 && errno != ECONNRESET ? errno : EACCES);
  }
  fail(kStepExec, ExecSearching(g_argv, g_envp));
  _exit(127);
}

void Start(ChildContext& c, size_t got, const int* fds, size_t nfds, const sigset_t& mask) {
  const ExecHeader& h = g_request.h;
  const char* cwd = nullptr;
  size_t passed = 0;
  for (int fd = 0; fd < 3; ++fd) passed += h.stdio[fd] == kStdioPassed && !(h.flags & kExecPty);
  const size_t gated = (h.flags & kExecGated) ? 1 : 0;
  if (!SplitStrings(g_request, got, &cwd) || passed + gated != nfds) {
    Send(c.exec_channel, kEvRefused, h.id, 0, EINVAL, 0);
    return;
  }
  Running* slot = nullptr;
  for (Running& r : g_running) {
    if (r.pid == 0) {
      slot = &r;
      break;
    }
  }
  if (!slot) {
    Send(c.exec_channel, kEvRefused, h.id, 0, EAGAIN, 0);
    return;
  }
  // fork, not a vfork: with CLONE_VFORK init waits until the new process
  // has exec'd, and any process of the sandbox could SIGSTOP it before its
  // exec and freeze init (every later exec, signal, timeout and reaping).
  // The vfork saved about 0.1 ms an exec; not worth that.
  pid_t pid = fork();
  if (pid == 0) StartExec(c, h, fds, gated ? fds[nfds - 1] : -1, cwd, mask);
  if (pid < 0) {
    // The pids limit, most often: the exec failed, and it is over.
    Send(c.exec_channel, kEvFailed, h.id, kStepFork, errno, 0);
    Send(c.exec_channel, kEvExited, h.id, 0, 0, W_EXITCODE(127, 0));
    return;
  }
  *slot = Running{h.id, pid};
  Send(c.exec_channel, kEvStarted, h.id, 0, 0, pid);
}

void Signal(const ExecHeader& h) {
  for (const Running& r : g_running) {
    if (r.pid != 0 && r.id == h.id) {
      // Its process group; before its setsid() has run, the process alone.
      if (kill(-r.pid, h.sig) != 0) kill(r.pid, h.sig);
    }
  }
}

// Set by kExecStopAll: init ends once the sandbox is empty.
bool g_stopping = false;

// Reaps every process that ended (orphans included) and reports the
// started ones. Stopping, init ends with the last of them.
void Reap(ChildContext& c) {
  int st;
  pid_t w;
  while ((w = waitpid(-1, &st, WNOHANG)) >= 0) {
    if (w == 0) return;
    for (Running& r : g_running) {
      if (r.pid == w) {
        Send(c.exec_channel, kEvExited, r.id, 0, 0, st);
        r.pid = 0;
      }
    }
  }
  if (g_stopping && errno == ECHILD) _exit(0);
}

}  // namespace

[[noreturn]] void ServeExecs(ChildContext& c) {
  // Only the report pipe and the channel survive (everything was marked
  // close-on-exec at the start; init never execs, so it closes the rest).
  CloseAllBut(c.report_fd, c.exec_channel);
  sigset_t chld, old;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, &old);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) ChildFail(c, kStepFork, errno);
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  for (int fd = 0; fd < 3 && devnull >= 0; ++fd) dup2(devnull, fd);
  if (devnull > 2) close(devnull);
  // The persistent areas' directories (a held sandbox's /tmp and home),
  // for the supervisor to fill now and save when the sandbox ends
  // (lifecycle/persist.h); nothing else runs in the sandbox yet.
  int areas[kMaxPersistAreas];
  size_t n = 0;
  for (const PersistArea& area : c.plan->persist) {
    const std::string& target = area.target;
    char path[PATH_MAX];
    if (n == kMaxPersistAreas || target.size() + 2 > sizeof path) ChildFail(c, kStepPersist, E2BIG);
    path[0] = '/';
    memcpy(path + 1, target.c_str(), target.size() + 1);
    areas[n] = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (areas[n] < 0) ChildFail(c, kStepPersist, errno);
    ++n;
  }
  ExecEvent ready{kEvReady, 0, 0, 0, 0};
  if (n == 0) {
    Send(c.exec_channel, kEvReady, 0, 0, 0, 0);
  } else if (int err = SendFdsWithData(c.exec_channel, areas, n, &ready, sizeof ready)) {
    ChildFail(c, kStepPersist, err);
  }
  for (size_t i = 0; i < n; ++i) close(areas[i]);
  for (;;) {
    pollfd pf[2] = {{c.exec_channel, POLLIN, 0}, {sfd, POLLIN, 0}};
    if (poll(pf, 2, -1) < 0) continue;
    if (pf[1].revents) {
      signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {
      }
      Reap(c);
    }
    if (!pf[0].revents) continue;
    int fds[4];  // stdio and the gate
    size_t nfds = 0, got = 0;
    int err = ReceiveFdsWithData(c.exec_channel, fds, 4, &nfds, &g_request, sizeof g_request, &got);
    if (err == 0 && got == 0) {
      // The supervisor is gone: so is the sandbox (its parent-death signal
      // would do the same a moment later).
      kill(-1, SIGKILL);
      _exit(0);
    }
    if (err == 0 && got >= sizeof(ExecHeader)) {
      const ExecHeader& h = g_request.h;
      if (h.op == kExecStart) Start(c, got, fds, nfds, old);
      else if (h.op == kExecSignal) Signal(h);
      else if (h.op == kExecStopAll) {
        // Every process but init; init follows the last (the supervisor
        // kills it after the grace period if some process lingers).
        g_stopping = true;
        kill(-1, SIGTERM);
        Reap(c);
      }
    } else if (err != EAGAIN && err != EINTR) {
      Send(c.exec_channel, kEvRefused, 0, 0, err ? err : EINVAL, 0);
    }
    for (size_t i = 0; i < nfds; ++i) close(fds[i]);
  }
}

}  // namespace ward
