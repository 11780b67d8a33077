// The sandbox's init (PID 1), from clone to the workload's end: its set-up
// steps, and the fixed-size records it reports them on.
//
// The child runs after clone of a possibly multi-threaded supervisor, so
// everything reached from ChildMain is async-signal-safe: no allocation, no
// stdio, no locks. Everything it needs is prepared before clone and handed
// over in a ChildContext.
#pragma once

#include <linux/filter.h>
#include <time.h>

#include <cstdint>

#include "base/clock.h"
#include "enforce/plan.h"
#include "enforce/stdio.h"

namespace ward {

// ---------------------------------------------------------------------------
// The report channel. The child never formats text: it sends fixed-size
// records on a pipe and the supervisor turns them into messages.

enum Step : uint32_t {
  kStepParentGone, kStepSetgroups, kStepUidMap, kStepGidMap, kStepCgroupJoin, kStepCgroupNs,
  kStepRootTmpfs, kStepChdirRoot, kStepMountOp, kStepPivotRoot, kStepDetachOldRoot, kStepHostname,
  kStepSetsid, kStepLandlockRule, kStepNoNewPrivs, kStepLandlock, kStepRlimit, kStepSecurebits,
  kStepCapBound, kStepCapAmbient, kStepCapset, kStepSeccomp, kStepFork, kStepChdirCwd, kStepCtty,
  kStepExec, kStepLoopback, kStepNetLinks, kStepNftables, kStepEgressListeners, kStepEgressGo, kStepIdsWait,
  kStepIdentity, kStepStdio, kStepPty, kStepConnectListener, kStepWatchProc,
  kStepAudit,  // a held sandbox's supervisor could not record an exec's start: refused
  kStepPersist,  // a held sandbox's init hands its persistent areas to the supervisor
  kStepCount
};

// The step's name for a message ("pivot_root", "setrlimit" ...), "?" for a
// value out of range.
const char* StepName(uint32_t step);

enum RecordType : uint32_t {
  kRecPhase = 1, kRecError = 2, kRecExit = 3,
  // From a held sandbox's supervisor to `ward exec` (lifecycle/control.h):
  kRecStarted = 4,   // the process runs (`value`: its pid in the sandbox)
  kRecPty = 5,       // its terminal: the master and a read-only slave come with the message
  kRecTimedOut = 6,  // process.timeoutMs passed: the supervisor killed it
  kRecGone = 7,      // the sandbox ended under it (`err`: a GoneReason)
  kRecLimit = 8,     // a limit was reached while it ran (`err`: a LimitId)
  kRecReport = 9,    // followed, in the same message, by `value` bytes of JSON: the exec's
                     // egress decisions and limit mechanisms (lifecycle/control.h)
  kRecWarning = 10,  // followed, likewise, by `value` bytes of text: a warning about the exec
                     // (before it runs: the sandbox has no audit trail, or the exec no record)
};
// kRecStarted's `step` from a supervisor that sends kRecWarning before it
// (0 from one started by an older ward: its caller reads the record).
inline constexpr uint32_t kStartedAfterWarnings = 1;
enum LimitId : int32_t { kLimitMemory = 1, kLimitPids = 2 };
enum GoneReason : int32_t { kGoneStopped = 1, kGoneMemory = 2, kGoneFailed = 3 };

enum PhaseId : uint32_t {
  kPhChildStart, kPhUserns, kPhNetwork, kPhCgroup, kPhMounts, kPhPivot, kPhLandlock, kPhCaps, kPhSeccomp,
  kPhExec, kPhWorkloadExited, kPhSandboxEmpty, kPhCount
};

// The phase's name for the timings ("root pivoted" ...); `phase` < kPhCount.
const char* PhaseName(uint32_t phase);

struct Record {
  uint32_t type;
  uint32_t step;   // Step or PhaseId
  int32_t err;     // errno for kRecError
  int32_t index;   // mount op index for kStepMountOp
  int64_t value;   // timestamp (ns) or wait status
};

// What init reported besides its phases and the workload's status.
struct InitReport {
  bool have_error = false;  // a set-up step failed: `setup_error`
  Record setup_error{};
  bool have_exit = false;   // init reported the workload's status (LaunchOutcome::wait_status)
};

// CLOCK_MONOTONIC in ns; async-signal-safe (clock_gettime is), so the child
// stamps its phases with it too.

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
  int exec_channel;    // held sandbox: requests from the supervisor (enforce/exec_request.h), else -1
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

// PID 1 of the sandbox. Builds the sandbox, starts the workload, forwards
// signals to it, reaps every orphan, and when the workload ends kills
// whatever is left and reports the workload's status. A held sandbox's init
// (exec_channel >= 0) starts no workload: it starts each process its
// supervisor asks for (enforce/exec_request.h) until the supervisor goes. Called in the child
// of clone, with the supervisor's signal mask restored; never returns.
[[noreturn]] void ChildMain(ChildContext& c);

// Inside init (child.cc, child_serve.cc): reports {step, err} and exits.
[[noreturn]] void ChildFail(const ChildContext& c, Step step, int err, int index = -1);
// Closes every descriptor from 3 up except `a` and `b` (-1: none).
void CloseAllBut(int a, int b);
// A held sandbox's init, once built: serves its supervisor's requests until
// the supervisor goes (child_serve.cc).
[[noreturn]] void ServeExecs(ChildContext& c);

}  // namespace ward
