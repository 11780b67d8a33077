// Resource limits through cgroups (v2, or v1 where that is what the host
// has), with rlimits as the fallback where no writable cgroup exists.
#pragma once

#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "enforce/plan.h"
#include "ward/policy.h"
#include "ward/result.h"

namespace ward {

// What this host offers for each controller, for the current user.
struct CgroupSupport {
  LimitMechanism memory = LimitMechanism::kSupervisor;
  LimitMechanism pids = LimitMechanism::kRlimit;
  LimitMechanism cpu = LimitMechanism::kNone;
  // Per controller: where it is, or why it is not and what replaces it.
  std::string memory_detail, pids_detail, cpu_detail;
};
CgroupSupport ProbeCgroups();
const char* MechanismName(LimitMechanism m);

// Owns the cgroups made for one sandbox; removes them on destruction.
class SandboxCgroup {
 public:
  SandboxCgroup() = default;
  SandboxCgroup(SandboxCgroup&&) noexcept;
  SandboxCgroup& operator=(SandboxCgroup&&) noexcept;
  ~SandboxCgroup();

  // Creates the cgroups `limits` needs and writes the limits. A limit with
  // no cgroup available falls back: memory to ward's supervisor
  // (enforce/memory_watch.h), pids to RLIMIT_NPROC; `cpus` has no
  // equivalent, so it is an error naming what is missing.
  static Result<SandboxCgroup> Create(const LimitsPolicy& limits);

  const CgroupPlan& plan() const { return plan_; }
  // Which limits were hit ("memory", "pids"), read after the sandbox ended.
  std::vector<std::string> LimitsHit() const;
  // The kernel's counts so far: processes the memory limit killed
  // (oom_kill), forks the pids limit refused (pids.events max); 0 where the
  // limit is not a cgroup's. A held sandbox compares them around each exec.
  struct Counters {
    int64_t oom_kills = 0, pids_refused = 0;
  };
  Counters LimitCounters() const;
  void Remove();

 private:
  // A small process that removes the cgroups if ward dies first (see
  // cgroup.cc).
  Result<void> StartWatchdog();

  CgroupPlan plan_;
  // The counters' files (memory.events or memory.oom_control, pids.events),
  // open while the cgroups live: a held sandbox reads them twice an exec.
  UniqueFd oom_counter_, pids_counter_;
  int watchdog_fd_ = -1;
  int watchdog_pid_ = -1;
};

}  // namespace ward
