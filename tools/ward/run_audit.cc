#include "run_audit.h"

#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "commands.h"
#include "base/clock.h"
#include "lifecycle/store.h"
#include "lifecycle/trail.h"
#include "ward/policy.h"

namespace ward::cli {

namespace {

std::string Joined(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

// The policy as recorded: process.env.set keeps its names, not its values
// (tokens are passed that way). The digest is of the policy as enforced.
nlohmann::json Redacted(nlohmann::json policy) {
  if (policy.is_object() && policy.contains("process") && policy["process"].is_object()) {
    auto& process = policy["process"];
    if (process.contains("env") && process["env"].is_object() && process["env"].contains("set") &&
        process["env"]["set"].is_object()) {
      for (auto& [name, value] : process["env"]["set"].items()) value = "(redacted)";
    }
  }
  return policy;
}

}  // namespace


void FillFromRequest(ProcessExec* x, const std::vector<std::string>& argv) {
  if (x->unreadable.empty() || x->ppid != 1 || argv.empty() || !x->argv.empty()) return;
  x->argv = argv;
  x->path = argv[0];
  x->unreadable = "read from ward's own request: " + x->unreadable;
}

audit::Event RunAudit::Base(const std::string& kind) const {
  audit::Event e;
  e.time_ns = RealtimeNs();
  e.agent = agent_;
  e.agent_id = agent_id_;
  e.sandbox = sandbox_;
  e.kind = kind;
  return e;
}

Result<RunAudit> RunAudit::Open(const std::string& agent, const std::string& path) {
  if (std::string why = lifecycle::CheckName(agent); !why.empty()) {
    return Error::Usage("--agent \"" + agent + "\": " + why);
  }
  auto trail = lifecycle::OpenAgentTrail(path, agent);
  if (!trail) return trail.error();
  RunAudit a(std::move(trail->store));
  a.agent_ = agent;
  a.agent_id_ = trail->agent_id;
  a.host_uid_ = trail->host_uid;
  auto run = lifecycle::NewId();
  if (!run) return run.error();
  a.run_ = *run;
  a.start_ns_ = RealtimeNs();
  return a;
}

Result<void> RunAudit::Record(audit::Event start) {
  char cwd[4096];
  start.time_ns = start_ns_;
  start.detail["cwd"] = getcwd(cwd, sizeof cwd) ? cwd : "";
  start.detail["uid"] = getuid();
  start.detail["pid"] = getpid();
  start.detail["run"] = run_;
  std::vector<audit::Event> one = {std::move(start)};
  return store_->Append(one);
}

Result<RunAudit> RunAudit::Begin(const std::string& agent, RunRequest* req) {
  auto path = audit::DefaultPath();
  if (!path) return path.error();
  auto a = Open(agent, *path);
  if (!a) return a.error();
  auto sandbox = lifecycle::NewId();
  if (!sandbox) return sandbox.error();
  a->sandbox_ = *sandbox;
  // As root, the agent's own host uid (recorded in the store).
  if (a->host_uid_) req->host_uid = *a->host_uid_;
  auto& env = req->policy.process.env.set;
  env["WARD_AGENT"] = a->agent_;
  env["WARD_AGENT_ID"] = a->agent_id_;
  env["WARD_SANDBOX_ID"] = a->sandbox_;
  const std::string policy = PolicyToJson(req->policy);
  audit::Event e = a->Base("start");
  e.summary = "ward run " + Joined(req->argv);
  e.detail = {{"via", "run"},
              {"policyDigest", "sha256:" + lifecycle::Sha256Hex(policy)},
              {"policy", Redacted(nlohmann::json::parse(policy, nullptr, false))},
              {"argv", req->argv}};
  if (req->host_uid) e.detail["hostUid"] = *req->host_uid;
  WARD_TRY(a->Record(std::move(e)));
  a->writer_ = std::make_unique<audit::EventWriter>(a->store_.get());
  // The command itself is executed by a child of the sandbox's init (pid
  // 1), which a supervisor that is not root may not read (init's children
  // are not dumpable until they execute): its argv is the one ward gave.
  req->on_exec = [w = a->writer_.get(), base = a->Base("exec"), argv = req->argv](ProcessExec x) {
    FillFromRequest(&x, argv);
    w->Post(audit::ExecEvent(base, x));
  };
  // Network decisions too, as they are made (`ward audit --follow --denied`).
  req->on_egress = [w = a->writer_.get(), base = a->Base("egress"), start = a->start_ns_](const EgressRecord& g) {
    w->Post(audit::EgressEvent(base, start + static_cast<int64_t>(g.at_ms * 1e6), g));
  };
  a->streamed_egress_ = true;
  // File accesses the policy does not grant, when it asks (audit.files).
  if (req->policy.audit.files == AuditPolicy::Files::kDenied) {
    req->on_file_denied = [w = a->writer_.get(), base = a->Base("file")](const FileDenial& d) {
      w->Post(audit::FileEvent(base, d));
    };
    req->on_file_dropped = [w = a->writer_.get(), base = a->Base("dropped")](uint64_t n, const std::string& why, const std::vector<std::string>& sample) {
      w->Post(audit::FileDroppedEvent(base, n, why, sample));
    };
  }
  return a;
}

Result<std::optional<RunAudit>> RunAudit::BeginFor(const std::string& agent_flag, RunRequest* req) {
  const std::string agent =
      !agent_flag.empty() ? agent_flag : !req->policy.audit.agent.empty() ? req->policy.audit.agent : "default";
  auto a = Begin(agent, req);
  if (a) return std::optional<RunAudit>(std::move(*a));
  if (a.error().code == Error::Code::kUsage || req->policy.audit.trail != Requirement::kBestEffort) return a.error();
  std::fprintf(stderr, "ward: warning: audit: %s; the run goes on without its trail (audit.trail is \"best-effort\")\n",
               a.error().message.c_str());
  req->on_exec = nullptr;
  req->on_egress = nullptr;
  req->on_file_denied = nullptr;
  req->on_file_dropped = nullptr;
  return std::optional<RunAudit>();
}

Result<void> RunAudit::EndFor(std::optional<RunAudit>& trail, const RunRequest& req, const RunResult* r,
                              const std::string* error, int exit_status) {
  if (!trail) return {};
  auto ended = trail->End(r, error, exit_status);
  if (ended || req.policy.audit.trail != Requirement::kBestEffort) return ended;
  std::fprintf(stderr, "ward: warning: audit: %s (audit.trail is \"best-effort\")\n", ended.error().message.c_str());
  return {};
}

Result<void> RunAudit::End(const RunResult* r, const std::string* error, int exit_status) {
  std::vector<audit::Event> events;
  if (r) {
    // Written as they were decided (Begin's on_egress), unless a run
    // started without that.
    if (!streamed_egress_) {
      for (const EgressRecord& g : r->egress) events.push_back(audit::EgressEvent(Base("egress"), start_ns_ + static_cast<int64_t>(g.at_ms * 1e6), g));
    }
    for (const std::string& l : audit::LimitsReached(r->limits_hit, r->timed_out, r->signal)) {
      events.push_back(audit::LimitEvent(Base("limit"), l));
    }
  }
  audit::Event e = Base("exit");
  nlohmann::json status = StatusJson(r, error, exit_status);
  status.erase("egress");
  e.summary = error ? "ward: " + *error : audit::ExitSummary(r->timed_out, r->signal, exit_status);
  e.detail = std::move(status);
  e.detail["pid"] = getpid();
  e.detail["run"] = run_;  // pairs it with its start (execs may overlap)
  events.push_back(std::move(e));
  if (writer_) {
    auto written = writer_->Finish();
    writer_.reset();
    if (!written) {
      auto ended = store_->Append(events);
      return Error::Setup(written.error().message + (ended ? " (its end is recorded)" : " (nor its end)"));
    }
  }
  return store_->Append(events);
}

}  // namespace ward::cli
