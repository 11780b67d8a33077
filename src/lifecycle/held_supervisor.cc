#include "lifecycle/held_supervisor.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/errors.h"
#include "audit/egress_event.h"
#include "audit/end_event.h"
#include "audit/exec_event.h"
#include "audit/file_event.h"
#include "audit/writer.h"
#include "lifecycle/control.h"
#include "lifecycle/holder.h"
#include "lifecycle/persist.h"
#include "lifecycle/trail.h"
#include "sandbox/prepare.h"

namespace ward::lifecycle {

namespace {

// The audit store of the sandbox `rec` and the identity its events carry.
struct Trail {
  audit::Store store;
  audit::Event base;
  std::optional<uint32_t> host_uid;  // as root: the agent's
};
Result<Trail> OpenTrail(const SandboxRecord& rec) {
  auto path = audit::PathOrDefault(rec.audit_db);
  if (!path) return path.error();
  const std::string agent = rec.agent.empty() ? "default" : rec.agent;
  auto opened = OpenAgentTrail(*path, agent);
  if (!opened) return opened.error();
  Trail t{std::move(opened->store), {}, opened->host_uid};
  t.base.agent = agent;
  t.base.agent_id = opened->agent_id;
  t.base.sandbox = rec.id;
  return t;
}

}  // namespace

int HoldSandbox(const std::string& dir, SandboxRecord rec, int ready_fd) {
  auto tell_error = [&](int code, const std::string& why) {
    if (ready_fd < 0) return;
    const std::string msg = "E" + std::to_string(code) + " " + why;
    (void)!write(ready_fd, msg.data(), msg.size());
    close(ready_fd);
    ready_fd = -1;
  };
  // The record is the owner's file, but a policy that changed since it was
  // provisioned is not the one the owner agreed to: refused.
  if ("sha256:" + Sha256Hex(rec.policy) != rec.policy_digest) {
    tell_error(kExitPolicy, "\"" + dir + "/sandbox.json\": its policy does not match its digest " + rec.policy_digest +
                                " (changed since it was provisioned); deprovision it and provision it anew");
    return kExitPolicy;
  }
  PolicyLoad load = ParsePolicy(rec.policy, PolicyVars::FromEnvironment(rec.workspace));
  if (!load.ok()) {
    tell_error(kExitPolicy, load.FormatIssues(dir + "/sandbox.json"));
    return kExitPolicy;
  }
  RunRequest req;
  req.policy = std::move(*load.policy);
  // Init of a held sandbox executes nothing of its own: the command is a
  // placeholder the plan needs, never run.
  req.argv = {"/"};
  req.dns_servers = rec.dns_servers;
  // Every program it executes is recorded as it happens, against its agent
  // and its id, in the store chosen at provision. A store that cannot be
  // opened: the sandbox does not start (fail closed), unless its policy
  // says audit.trail "best-effort" (then said, and it runs without).
  auto trail = OpenTrail(rec);
  if (!trail && req.policy.audit.trail != Requirement::kBestEffort) {
    tell_error(kExitSetup, "audit: " + trail.error().message);
    return kExitSetup;
  }
  std::optional<audit::EventWriter> writer;
  if (trail) {
    writer.emplace(&trail->store);
    // Its execs' starts and ends are written on the path of each exec: the
    // WAL's checkpoints (fsyncs) are not.
    writer->CheckpointOffThread();
    audit::EventWriter* w = &*writer;
    req.host_uid = trail->host_uid;
    req.on_exec = [w, base = trail->base](ProcessExec x) { w->Post(audit::ExecEvent(base, x)); };
    // Its network decisions too, as they are made: once each, whichever
    // exec (or a process an earlier exec left running) made them.
    req.on_egress = [w, base = trail->base](const EgressRecord& g) {
      w->Post(audit::EgressEvent(base, RealtimeNs(), g));
    };
    if (req.policy.audit.files == AuditPolicy::Files::kDenied) {
      req.on_file_denied = [w, base = trail->base](const FileDenial& d) { w->Post(audit::FileEvent(base, d)); };
      req.on_file_dropped = [w, base = trail->base](uint64_t n, const std::string& why, const std::vector<std::string>& sample) {
        w->Post(audit::FileDroppedEvent(base, n, why, sample));
      };
    }
    // Who it is, for every command it runs.
    auto& env = req.policy.process.env.set;
    env["WARD_AGENT"] = trail->base.agent;
    env["WARD_AGENT_ID"] = trail->base.agent_id;
    env["WARD_SANDBOX_ID"] = trail->base.sandbox;
  } else {
    std::fprintf(stderr, "ward supervisor: warning: %s\n", AuditOffWarning(trail.error().message).c_str());
  }
  auto prepared = PrepareSandbox(req, dir + "/state", rec.audit_db);
  if (!prepared) {
    tell_error(ExitStatusFor(prepared.error()), prepared.error().message);
    return ExitStatusFor(prepared.error());
  }
  PreparedSandbox& ps = **prepared;
  if (ps.egress_config) {
    // The names its DNS bound before a stop still name those addresses. A
    // damaged file costs them, never more: a missing binding only denies.
    auto bound = LoadBindings(dir);
    if (bound) {
      ps.egress_config->bindings = std::move(*bound);
    } else {
      std::fprintf(stderr, "ward supervisor: %s; the names bound before are forgotten\n", bound.error().message.c_str());
    }
  }
  Holder::Hooks hooks;
  // Each exec's start and end, recorded here, where the store is open: its
  // caller (`ward exec`) opens no store, and an exec whose caller was
  // killed still has its end recorded.
  if (writer) {
    // A start that cannot be recorded refuses the exec (nothing runs),
    // unless the policy's audit.trail is "best-effort" (then said in the
    // log, and it runs). Its start is written in a transaction of its own
    // (WriteNow): a flush counts events written or given up on, and a
    // sandbox flooding events while the store is locked could have the
    // start given up on and the exec let through. Not written, it is
    // queued: once the store takes events again it is there, paired with
    // an exit saying it was refused (or, best-effort, with its end).
    const bool best_effort = req.policy.audit.trail == Requirement::kBestEffort;
    hooks.on_exec_start = [w = &*writer, &trail, &rec, best_effort](const Holder::ExecStart& s) -> Result<std::string> {
      auto run = NewId();
      if (!run) return run.error();
      auto refuse = [&](Error e, bool posted) -> Result<std::string> {
        if (posted) {
          audit::Event x = trail->base;
          x.kind = "exit";
          x.time_ns = RealtimeNs();
          x.summary = "ward: refused: " + e.message;
          x.detail = {{"exitStatus", kExitSetup}, {"error", "refused: " + e.message}, {"pid", s.caller_pid}, {"run", *run}};
          w->Post(std::move(x), true);
        }
        if (!best_effort) return e;
        *s.warning = "audit: " + e.message + "; the command runs without its record (audit.trail is \"best-effort\")";
        std::fprintf(stderr, "ward supervisor: warning: %s\n", s.warning->c_str());
        return std::string();
      };
      // A store moved or replaced since it was opened would take the
      // events where no reader of its path sees them.
      if (auto still = trail->store.StillAt(); !still) return refuse(still.error(), false);
      audit::Event e = trail->base;
      e.kind = "start";
      e.time_ns = RealtimeNs();
      std::string cmd;
      for (const auto& a : s.argv) cmd += " " + a;
      e.summary = "ward exec " + rec.name + cmd;
      e.detail = {{"via", "exec"}, {"name", rec.name}, {"policyDigest", rec.policy_digest}, {"argv", s.argv},
                  {"cwd", s.cwd},  {"uid", s.caller_uid}, {"pid", s.caller_pid},           {"run", *run}};
      auto written = w->WriteNow(e, 2000);
      if (written) return *run;
      w->Post(std::move(e), true);
      Error late = Error::Setup("the audit store did not take the exec's start within 2 s: " + written.error().message);
      if (!best_effort) return refuse(late, true);
      // It runs: its start and end are written when the store takes them.
      *s.warning = "audit: " + late.message +
                   "; the command runs, its record written when the store takes it (audit.trail is \"best-effort\")";
      std::fprintf(stderr, "ward supervisor: warning: %s\n", s.warning->c_str());
      return *run;
    };
    hooks.on_exec_end = [w = &*writer, &trail](const Holder::ExecEnd& x) {
      if (x.run.empty()) return;
      const int sig = x.refused || !WIFSIGNALED(x.wait_status) ? 0 : WTERMSIG(x.wait_status);
      const int code = x.refused || sig ? 0 : WEXITSTATUS(x.wait_status);
      const int status = x.refused ? kExitSetup : x.timed_out ? kExitTimeout : sig ? 128 + sig : code;
      const std::vector<std::string> limits = audit::LimitsReached(x.limits, x.timed_out, sig);
      for (const std::string& l : limits) w->Post(audit::LimitEvent(trail->base, l), true);
      audit::Event e = trail->base;
      e.kind = "exit";
      e.time_ns = RealtimeNs();
      e.detail = {{"exitStatus", status}, {"timedOut", x.timed_out}, {"limitsHit", limits},
                  {"durationMs", x.duration_ms}, {"pid", x.caller_pid}, {"run", x.run}};
      if (x.refused) {
        e.summary = "ward: the sandbox refused to start the command";
        e.detail["error"] = "refused: the sandbox could not start the command";
      } else if (!x.gone.empty()) {
        e.summary = "ended with the sandbox: " + x.gone + " (exit status " + std::to_string(status) + ")";
        e.detail["error"] = x.gone;
      } else {
        e.summary = audit::ExitSummary(x.timed_out, sig, status);
        e.detail["exitCode"] = sig ? nlohmann::json(nullptr) : nlohmann::json(code);
        e.detail["signal"] = sig ? nlohmann::json(strsignal(sig)) : nlohmann::json(nullptr);
        e.detail["signalNumber"] = sig;
      }
      w->Post(std::move(e), true);
    };
  } else {
    hooks.audit_off = trail.error().message;
  }
  hooks.before_exit = [&writer, &ps] {
    // Its file accesses judged, then everything written.
    if (ps.file_judge) (void)ps.file_judge->Drain(1000);
    if (writer) (void)writer->Flush(2000);
  };
  // Its private /tmp and home: put back before it serves, saved when it
  // has ended (lifecycle/persist.h).
  PersistentAreas areas;
  if (!ps.plan.persist.empty()) {
    std::optional<uid_t> as_uid;
    if (ps.plan.host_uid) as_uid = *ps.plan.host_uid;
    hooks.on_ready = [&areas, &ps, &dir, as_uid](std::vector<UniqueFd> roots) -> Result<std::vector<std::string>> {
      WARD_TRY(areas.Restore(dir + "/state", ps.plan.persist, std::move(roots), as_uid));
      return areas.warnings();
    };
  }
  Holder holder(dir, ps, &ready_fd, std::move(hooks));
  ps.opts.hold = [&](HeldInit& held) { return holder.Serve(held); };
  LaunchError exec_error;
  auto out = Launch(ps.plan, ps.cgroup->plan(), ps.ruleset.get(), ps.opts, &exec_error);
  if (ps.file_judge) ps.file_judge->Stop();  // its last denials, before the trail closes
  auto saved = areas.Save();
  if (!saved) std::fprintf(stderr, "ward supervisor: %s (the last save is kept)\n", saved.error().message.c_str());
  uint64_t dropped = 0;
  (void)CollectEgress(ps, &dropped);
  const bool ps_had_proxy = ps.proxy != nullptr;
  const std::vector<net::DnsBinding> bindings = ps_had_proxy ? ps.proxy->Bindings() : std::vector<net::DnsBinding>{};
  unlink((dir + "/ctl").c_str());
  // Whoever asked for the stop is answered by the end of the connection,
  // once everything is gone: the proxy, the cgroups (with `ps`), the record.
  std::vector<UniqueFd> waiters = holder.TakeStopWaiters();
  const bool stopped = holder.stopped();
  const std::string failure = holder.failure();
  prepared->reset();
  if (auto written = writer ? writer->Finish() : Result<void>{}; !written) {
    std::fprintf(stderr, "ward supervisor: audit: %s\n", written.error().message.c_str());
  }
  if (!out) {
    if (ready_fd >= 0) {
      tell_error(ExitStatusFor(out.error()), out.error().message);
      return ExitStatusFor(out.error());
    }
    std::fprintf(stderr, "ward supervisor: %s\n", out.error().message.c_str());
  }
  if (ready_fd >= 0) {
    tell_error(kExitSetup, failure.empty() ? "the sandbox ended before it served" : failure);
    return kExitSetup;
  }
  // The record says how it ended; `ward start` and `ward ls` read it.
  // Under the store's lock, and only if the record is still there: a
  // deprovision that removed the sandbox meanwhile (it may have ended on
  // its own, e.g. at its memory limit) must not see a record recreated in
  // the directory it is removing. (`ward start` has released the lock: it
  // was told "ok" before this supervisor served.)
  // Nor one that names another supervisor: a `ward start` after this one's
  // control socket was gone may have started the sandbox anew.
  auto lock = StoreLock::Take(dir.substr(0, dir.rfind('/')));
  if (auto now = LoadRecord(dir); now && now->supervisor == getpid()) {
    now->supervisor = 0;
    if (stopped && failure.empty() && saved) {
      now->state = "stopped";
      now->failure.clear();
    } else {
      now->state = "failed";
      now->failure = !out ? out.error().message : failure;
      if (!saved) {
        now->failure += (now->failure.empty() ? "" : "; ") + saved.error().message + " (the last save is kept)";
      }
    }
    (void)SaveRecord(dir, *now);
    if (ps_had_proxy) {
      if (auto kept = SaveBindings(dir, bindings); !kept) {
        std::fprintf(stderr, "ward supervisor: %s (the names bound are forgotten)\n", kept.error().message.c_str());
      }
    }
  }
  return 0;
}

}  // namespace ward::lifecycle
