// The public API: policy -> plan -> cgroups + landlock + seccomp -> launch.
#include "ward/sandbox.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#include "base/errors.h"
#include "base/file.h"
#include "enforce/cgroup.h"
#include "enforce/compile.h"
#include "enforce/landlock.h"
#include "enforce/launcher.h"
#include "enforce/seccomp.h"

namespace ward {

namespace {

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

const char* RlimitField(int resource) {
  switch (resource) {
    case RLIMIT_CPU: return "/limits/cpuSeconds";
    case RLIMIT_NOFILE: return "/limits/openFiles";
    case RLIMIT_FSIZE: return "/limits/fileSizeMiB";
    case RLIMIT_AS: return "/limits/memoryMiB (as RLIMIT_AS)";
    case RLIMIT_NPROC: return "/limits/pids (as RLIMIT_NPROC)";
    default: return "limits";
  }
}

}  // namespace

Result<RunResult> Run(const RunRequest& req) {
  const int64_t start = NowNs();
  const Policy& policy = req.policy;
  RunResult result;

  const int abi = LandlockAbi();
  if (abi == 0 && policy.enforcement.landlock == Requirement::kRequired) {
    return Error::Policy("/enforcement/landlock is \"required\" but this kernel offers no landlock "
                         "(not built in, or not in the `lsm=` boot list); set it to \"best-effort\" to run "
                         "with mount isolation alone");
  }
  result.landlock_abi = abi;

  std::vector<Phase> phases;
  auto mark = [&](const char* name) { phases.push_back({name, (NowNs() - start) / 1000.0}); };
  auto plan = CompilePlan(policy, req.argv, abi);
  if (!plan) return plan.error();
  mark("plan compiled");
  plan->seccomp = EmbeddedSeccompFilter();
  plan->seccomp_extra = BuildPersonalityFilter();
  if (auto last = ReadFile("/proc/sys/kernel/cap_last_cap")) plan->last_cap = std::atoi(last->c_str());

  mark("seccomp built");
  auto cgroup = SandboxCgroup::Create(policy.limits);
  if (!cgroup) return cgroup.error();
  mark("cgroups created");
  const CgroupPlan& cg = cgroup->plan();
  result.memory_mechanism = policy.limits.memory_mib ? MechanismName(cg.memory) : "";
  result.pids_mechanism = policy.limits.pids ? MechanismName(cg.pids) : "";
  auto add_rlimit = [&](int res, uint64_t v) { plan->rlimits.push_back({res, {v, v}}); };
  if (cg.memory == LimitMechanism::kRlimit) add_rlimit(RLIMIT_AS, *policy.limits.memory_mib * 1024 * 1024);
  if (cg.pids == LimitMechanism::kRlimit) add_rlimit(RLIMIT_NPROC, *policy.limits.pids);
  // Raising a hard limit needs CAP_SYS_RESOURCE in the host's namespace,
  // which the sandbox never has: say so now rather than fail in the child.
  for (const auto& r : plan->rlimits) {
    rlimit cur;
    if (getrlimit(static_cast<__rlimit_resource>(r.resource), &cur) == 0 && cur.rlim_max != RLIM_INFINITY &&
        r.value.rlim_max > cur.rlim_max) {
      return Error::Policy(std::string(RlimitField(r.resource)) + ": " + std::to_string(r.value.rlim_max) +
                           " exceeds this user's hard limit " + std::to_string(cur.rlim_max) +
                           " (raising it needs CAP_SYS_RESOURCE)");
    }
  }

  UniqueFd ruleset;
  if (abi > 0) {
    auto rs = BuildLandlockRuleset(*plan);
    if (!rs) return rs.error();
    ruleset = std::move(*rs);
  }
  mark("landlock ruleset built");

  LaunchOptions opts;
  opts.pty = req.pty;
  opts.kill_grace_ms = req.kill_grace_ms;
  opts.start_ns = start;
  LaunchError exec_error;
  auto out = Launch(*plan, cg, ruleset.get(), opts, &exec_error);
  if (!out) {
    Error e = out.error();
    if (exec_error.exec_errno) {
      e.code = exec_error.exec_errno == ENOENT || exec_error.exec_errno == ENOTDIR ? Error::Code::kNotFound
                                                                                   : Error::Code::kNotExecutable;
    }
    return e;
  }
  phases.insert(phases.begin(), Phase{"run started", 0});
  phases.insert(phases.end(), out->phases.begin(), out->phases.end());
  result.phases = std::move(phases);
  result.duration_ms = out->duration_ms;
  result.timed_out = out->timed_out;
  result.interrupted = out->interrupted;
  result.limits_hit = cgroup->LimitsHit();
  if (out->exited) {
    if (WIFSIGNALED(out->wait_status)) result.signal = WTERMSIG(out->wait_status);
    else result.exit_code = WEXITSTATUS(out->wait_status);
  } else {
    // Init itself was killed (timeout, second signal, OOM killer): so was
    // everything in the sandbox.
    result.signal = out->init_signal ? out->init_signal : SIGKILL;
  }
  return result;
}

}  // namespace ward
