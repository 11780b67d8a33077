// Launching: clone into new namespaces, the sandbox's init (PID 1), and the
// supervisor loop that forwards signals, enforces the timeout and reaps.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "enforce/child.h"
#include "enforce/memory_watch.h"
#include "enforce/plan.h"
#include "ward/result.h"
#include "ward/sandbox.h"

namespace ward {

// A held sandbox's init as its supervisor gets it (LaunchOptions::hold):
// built, or failing; it starts nothing until asked (enforce/exec_request.h).
struct HeldInit {
  int pidfd = -1;         // the sandbox's init
  int report_fd = -1;     // read end of init's report pipe (non-blocking): set-up errors
  int exec_channel = -1;  // requests to init, its events back (SOCK_SEQPACKET)
  int signal_fd = -1;     // SignalRelay::fd(): signals for the supervisor itself
  int64_t clone_ns = 0;
  std::optional<MemoryWatch> watch;  // the memory limit without a cgroup, if any
  MemoryWatchThread::Limits watch_limits{};
};

struct LaunchOptions {
  bool pty = false;
  int64_t kill_grace_ms = 3000;
  int64_t start_ns = 0;  // CLOCK_MONOTONIC when ward started the run
  // Egress mode: receives the listeners created in the sandbox's network
  // namespace (enforce/netns.h order) before the workload starts. An error
  // stops the launch (the sandbox is killed).
  std::function<Result<void>(std::vector<UniqueFd>)> on_egress_listeners;
  // A plan with seccomp_net: receives the listener of that filter and, with
  // a network namespace of the sandbox's own, a NETLINK_SOCK_DIAG socket in
  // it (else invalid), before the workload starts. Required then; an error
  // stops the launch (the sandbox is killed).
  std::function<Result<void>(UniqueFd listener, UniqueFd diag)> on_connect_listener;
  // > 0: the memory limit ward's supervisor enforces (enforce/memory_watch.h),
  // in bytes; where a memory cgroup enforces it, 0.
  uint64_t watch_memory_bytes = 0;
  // > 0: a pids limit kept by RLIMIT_NPROC, watched to report it reached.
  int64_t watch_pids = 0;
  // Set: the sandbox is held (a persistent sandbox): init starts no
  // workload (plan.argv is ignored) and serves requests; this is called
  // once the hand-overs are done and holds the sandbox until init is gone
  // (it must reap it). Its report says whether set-up failed.
  std::function<Result<InitReport>(HeldInit&)> hold;
};

struct LaunchOutcome {
  int wait_status = 0;   // the workload's, as from waitpid
  bool exited = false;   // the workload's status is known
  bool timed_out = false;
  bool interrupted = false;
  int init_signal = 0;   // if the sandbox's init itself was killed
  bool memory_exceeded = false;  // stopped by the memory watch (watch_memory_bytes)
  bool pids_reached = false;     // watch_pids tasks seen at once
  std::string watch_error;       // the memory watch could not be kept: the sandbox was stopped
  int gone_reason = 0;           // a held sandbox's exec: the sandbox ended under it (GoneReason)
  std::string held_report;       // a held sandbox's exec: its kRecReport JSON
  std::vector<Phase> phases;
  double duration_ms = 0;
};

// Runs `plan`. `ruleset_fd` is a landlock ruleset (or -1 when landlock is
// not applied); `cgroup` says which cgroups the child joins. Setup failures
// in the child come back as errors naming the step and the errno; a command
// that cannot be executed comes back as an error with code kNotFound /
// kNotExecutable in `exec_errno`.
struct LaunchError {
  int exec_errno = 0;
};
Result<LaunchOutcome> Launch(const LaunchPlan& plan, const CgroupPlan& cgroup, int ruleset_fd,
                             const LaunchOptions& options, LaunchError* exec_error);

}  // namespace ward
