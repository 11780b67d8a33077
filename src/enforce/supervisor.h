// The supervisor's side of a running sandbox: the signals ward receives, and
// the loop that holds the sandbox's init until it is gone. It relays stdio
// (pipes or a pty), forwards signals (a second one, or the kill grace
// running out, kills the sandbox), enforces the timeout, runs the memory
// watch, and collects what init reports (enforce/child.h).
//
// One role, whatever started the sandbox: `ward run` (enforce/launcher.h)
// composes it with the child; a persistent sandbox's supervisor is meant to
// reuse it.
#pragma once

#include <signal.h>

#include <cstdint>
#include <functional>
#include <optional>

#include "base/unique_fd.h"
#include "enforce/child.h"
#include "enforce/launcher.h"
#include "enforce/memory_watch.h"
#include "enforce/stdio.h"
#include "ward/result.h"

namespace ward {

// Sends `sig` to the process of `pidfd` (pidfd_send_signal); errors ignored.
void SignalPidfd(int pidfd, int sig);

// Signals for ward itself, read from a signalfd to be forwarded: SIGINT,
// SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, and SIGPIPE (a pump writing to a
// caller's pipe that closed gets EPIPE; the signal is read and dropped, ward
// lives on). Blocked from construction; the destructor restores the mask.
class SignalRelay {
 public:
  SignalRelay();
  ~SignalRelay();
  SignalRelay(const SignalRelay&) = delete;
  SignalRelay& operator=(const SignalRelay&) = delete;

  // The signalfd; invalid if it could not be made.
  const UniqueFd& fd() const { return fd_; }
  // The mask before: the sandbox's init restores it after clone.
  const sigset_t& old_mask() const { return old_; }

 private:
  sigset_t old_;
  UniqueFd fd_;
};

// One sandbox's init as the supervisor holds it, once clone and the
// hand-overs (egress, pty, connect listener, memory watch) are done.
struct SupervisedInit {
  // The sandbox's init; -1 for a process of a held sandbox, whose end is
  // the end of `report_fd` (`ward exec`: the control connection).
  int pidfd = -1;
  int report_fd = -1;     // read end of init's report pipe (non-blocking)
  int signal_fd = -1;     // SignalRelay::fd()
  int64_t start_ns = 0;   // CLOCK_MONOTONIC when ward started the run: phases count from it
  int64_t clone_ns = 0;   // when init was cloned: the timeout and the duration count from it
  int64_t timeout_ms = 0;  // 0: none
  int64_t kill_grace_ms = 0;
  StdioBridge* bridge = nullptr;  // without --pty: the pumps of fd 0..2
  bool pty = false;
  UniqueFd pty_master, pty_slave;  // --pty, as init sent them (invalid if it did not)
  std::optional<MemoryWatch> watch;  // the memory limit without a cgroup, if any
  MemoryWatchThread::Limits watch_limits{};
  // Set: how a signal reaches the workload (`ward exec`: a request to the
  // held sandbox's supervisor); else pidfd_send_signal to init.
  std::function<void(int)> signal_target;
};

// Holds `init` until it is gone and the sandbox's output is delivered;
// fills `out`'s phases, wait status, timeout, interruption, memory watch
// results, init's own signal and duration. An error only if poll() fails.
Result<InitReport> Supervise(SupervisedInit& init, LaunchOutcome* out);

}  // namespace ward
