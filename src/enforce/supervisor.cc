#include "enforce/supervisor.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/errors.h"

namespace ward {

namespace {

// --pty: the caller's terminal in raw mode while the supervisor relays it
// (every key goes to the sandbox's terminal); restored on destruction.
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

void SignalPidfd(int pidfd, int sig) { syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0); }

SignalRelay::SignalRelay() {
  sigset_t sigs;
  sigemptyset(&sigs);
  // SIGPIPE too: a pump writing to a caller's pipe that closed gets EPIPE
  // (the signal is read from the signalfd and dropped), ward lives on.
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, SIGPIPE}) sigaddset(&sigs, s);
  sigprocmask(SIG_BLOCK, &sigs, &old_);
  fd_.Reset(signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK));
}

SignalRelay::~SignalRelay() {
  // The signalfd first, then the mask, as before the split.
  fd_.Reset();
  sigprocmask(SIG_SETMASK, &old_, nullptr);
}

Result<InitReport> Supervise(SupervisedInit& init, LaunchOutcome* out) {
  auto send_init = [&](int sig) {
    if (init.signal_target) init.signal_target(sig);
    else SignalPidfd(init.pidfd, sig);
  };
  std::unique_ptr<RawTerminal> raw;
  // Pumps from the sandbox's outputs must be drained after init is gone;
  // one into the sandbox (stdin) need not.
  std::vector<Pump> pty_pumps;
  std::vector<Pump>& pumps = init.bridge ? init.bridge->pumps() : pty_pumps;
  if (init.pty_master.valid()) {
    raw = std::make_unique<RawTerminal>(STDIN_FILENO);
    // The master is ward's own: non-blocking, so neither direction can
    // stall the loop; the caller's stdout takes what poll() promised.
    fcntl(init.pty_master.get(), F_SETFL, O_NONBLOCK);
    UniqueFd in = ReopenNonBlocking(STDIN_FILENO), out_fd = ReopenNonBlocking(STDOUT_FILENO);
    const int in_fd = in.valid() ? in.get() : STDIN_FILENO;
    const int to_fd = out_fd.valid() ? out_fd.get() : STDOUT_FILENO;
    pumps.emplace_back(in_fd, init.pty_master.get(), UniqueFd(), 64 * 1024);
    pumps.back().Hold(std::move(in));
    pumps.back().MarkInput();
    pumps.back().MarkTerminalInput(std::move(init.pty_slave));
    pumps.emplace_back(init.pty_master.get(), to_fd, UniqueFd(), PIPE_BUF);
    pumps.back().Hold(std::move(out_fd));
  }

  InitReport report;
  Record& setup_error = report.setup_error;
  bool& have_error = report.have_error;
  bool& have_exit = report.have_exit;
  bool init_gone = false;
  siginfo_t info{};
  int64_t deadline = init.timeout_ms > 0 ? init.clone_ns + init.timeout_ms * 1000000 : 0;
  int64_t kill_at = 0;
  // The memory limit without a cgroup (enforce/memory_watch.h): sampled on
  // a thread of its own from the moment the workload starts until init is
  // gone.
  std::unique_ptr<MemoryWatchThread> watcher;
  auto start_watching = [&] {
    if (!init.watch || watcher) return;
    const int fd = init.pidfd;
    watcher = std::make_unique<MemoryWatchThread>(std::move(*init.watch), init.watch_limits, [fd] {
      SignalPidfd(fd, SIGKILL);
    });
    init.watch.reset();
  };

  // Reads what the child has reported so far. Returns false at end of file
  // (every copy of the write end closed), true while more may come.
  auto drain_report = [&]() {
    Record recs[16];
    for (;;) {
      if (init.pidfd < 0) {
        // A held sandbox's exec: messages on a SOCK_SEQPACKET connection,
        // one kRecReport among them larger than a Record (read whole).
        ssize_t len = recv(init.report_fd, nullptr, 0, MSG_PEEK | MSG_TRUNC);
        if (len > static_cast<ssize_t>(sizeof(Record))) {
          std::string msg(static_cast<size_t>(len), '\0');
          if (recv(init.report_fd, msg.data(), msg.size(), 0) != len) return false;
          Record head;
          std::memcpy(&head, msg.data(), sizeof head);
          if (head.type == kRecReport) out->held_report = msg.substr(sizeof head);
          continue;
        }
      }
      ssize_t n = read(init.report_fd, recs, sizeof recs);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return true;
      if (n <= 0) return false;
      for (ssize_t i = 0; i < n / static_cast<ssize_t>(sizeof(Record)); ++i) {
        const Record& r = recs[i];
        if (r.type == kRecPhase && r.step < kPhCount) {
          out->phases.push_back({PhaseName(r.step), (r.value - init.start_ns) / 1000.0});
          if (r.step == kPhExec) start_watching();
        } else if (r.type == kRecError && !have_error) {
          setup_error = r;
          have_error = true;
        } else if (r.type == kRecExit) {
          out->wait_status = static_cast<int>(r.value);
          have_exit = true;
        } else if (r.type == kRecTimedOut) {
          out->timed_out = true;
        } else if (r.type == kRecGone) {
          out->gone_reason = r.err;
        } else if (r.type == kRecLimit) {
          // A held sandbox's limit reached while this exec ran.
          if (r.err == kLimitMemory) out->memory_exceeded = true;
          if (r.err == kLimitPids) out->pids_reached = true;
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
  while (!init_gone || (output_pending() && !abandon && !out->timed_out)) {
    fds.assign(3, pollfd{});
    fds[0] = {init_gone || init.pidfd < 0 ? -1 : init.pidfd, POLLIN, 0};
    fds[1] = {report_open ? init.report_fd : -1, POLLIN, 0};
    fds[2] = {init.signal_fd, POLLIN, 0};
    for (const Pump& pump : pumps) fds.push_back(pump.Want());
    int timeout = -1;
    int64_t now = MonotonicNs();
    int64_t next = 0;
    if (deadline && !out->timed_out) next = deadline;
    if (kill_at && (!next || kill_at < next)) next = kill_at;
    if (next) timeout = next <= now ? 0 : static_cast<int>((next - now) / 1000000 + 1);
    for (const Pump& pump : pumps) {
      const int t = pump.TimeoutMs(now);
      if (t >= 0 && (timeout < 0 || t < timeout)) timeout = t;
    }
    int n = poll(fds.data(), fds.size(), timeout);
    if (n < 0 && errno != EINTR) return SysError("poll", "supervisor");
    now = MonotonicNs();
    if (deadline && !out->timed_out && now >= deadline) {
      out->timed_out = true;
      send_init(SIGKILL);
      if (init_gone) abandon = true;
    }
    if (kill_at && now >= kill_at) {
      send_init(SIGKILL);
      kill_at = 0;
    }
    for (Pump& pump : pumps) pump.Tick(now);
    if (n <= 0) continue;
    if (fds[1].revents) {
      report_open = drain_report();
      if (!report_open && init.pidfd < 0 && !init_gone) {
        // A held sandbox's process: the end of its connection is its end.
        init_gone = true;
        for (Pump& pump : pumps) {
          if (pump.input()) pump.Close();
        }
      }
    }
    if (fds[2].revents & POLLIN) {
      signalfd_siginfo si;
      while (read(init.signal_fd, &si, sizeof si) == sizeof si) {
        int sig = static_cast<int>(si.ssi_signo);
        if (sig == SIGPIPE) continue;
        if (init_gone) {
          abandon = true;  // nothing left to signal: stop waiting for the reader
          continue;
        }
        if (sig == SIGWINCH) {
          winsize ws;
          if (init.pty && ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) ioctl(init.pty_master.get(), TIOCSWINSZ, &ws);
          continue;
        }
        // First signal: forwarded to the workload through init. A second
        // one, or the grace period running out, kills the sandbox.
        if (out->interrupted) {
          send_init(SIGKILL);
        } else {
          out->interrupted = true;
          send_init(sig);
          kill_at = MonotonicNs() + init.kill_grace_ms * 1000000;
        }
      }
    }
    for (size_t i = 0; i < pumps.size(); ++i) pumps[i].Service(fds[3 + i].revents);
    if (fds[0].revents) {
      init_gone = true;
      // Before the reap: the watcher's kill goes to this pidfd's process.
      if (watcher) {
        watcher->Stop();
        out->memory_exceeded = watcher->memory_exceeded();
        out->pids_reached = watcher->pids_reached();
        if (!watcher->error().empty()) out->watch_error = watcher->error();
      }
      if (init.pidfd >= 0) waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(init.pidfd), &info, WEXITED);
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
    pollfd pf{init.report_fd, POLLIN, 0};
    if (poll(&pf, 1, 100) <= 0) break;
    report_open = drain_report();
  }
  // A regular file on stdin: the caller's offset moves by what the
  // workload read, not by what ward read ahead (`while read f; do ward run
  // ...; done < list` keeps its lines).
  if (init.bridge) init.bridge->SettleStdin();
  for (Pump& pump : pumps) pump.Close();
  const int64_t end_ns = MonotonicNs();
  out->phases.push_back({"sandbox gone", (end_ns - init.start_ns) / 1000.0});
  out->duration_ms = (end_ns - init.clone_ns) / 1e6;
  if (info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED) out->init_signal = info.si_status;

  return report;
}

}  // namespace ward
