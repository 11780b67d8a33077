// Everything a sandbox needs before clone, shared by `ward run` (Run) and a
// held sandbox's supervisor (lifecycle/held_supervisor.h): the compiled
// plan, cgroups, landlock ruleset, and the launch options whose hand-overs
// start the unix gate and the egress proxy.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "enforce/cgroup.h"
#include "enforce/file_view.h"
#include "enforce/launcher.h"
#include "net/connect_notify.h"
#include "net/connect_server.h"
#include "net/egress_proxy.h"
#include "net/unix_gate.h"
#include "ward/sandbox.h"

namespace ward {

struct PreparedSandbox {
  int64_t start = 0;  // CLOCK_MONOTONIC when preparation began
  LaunchPlan plan;
  std::optional<SandboxCgroup> cgroup;
  UniqueFd ruleset;  // invalid when landlock is not applied
  LaunchOptions opts;  // its callbacks point into this object: it never moves
  net::UnixGateConfig gate_config;
  std::unique_ptr<net::ConnectServer> connect_server;
  net::CallObservers observers;
  // audit.files: the judge of the sandbox's file accesses (a held
  // sandbox's supervisor drains it before an exec's end is told).
  std::shared_ptr<FileJudge> file_judge;  // RunRequest::on_exec and on_file, for the server that serves the listener
  std::function<void(const net::EgressEvent&)> on_event;  // RunRequest::on_egress, as records
  std::unique_ptr<net::EgressProxy> proxy;
  std::optional<net::EgressProxyConfig> egress_config;
  RunResult result;  // filled so far: landlock ABI, mechanisms, warnings, phases
};

// Compiles `req` and prepares everything before clone. `persist_dir`
// non-empty: a held sandbox, whose private /tmp and home are saved in
// directories under it (lifecycle/persist.h), made here if missing. `audit_db`: the audit
// store the sandbox's events go to, hidden from it with the rest of ward's
// state (lifecycle::WardStateDirs; "": the caller's default store).
Result<std::unique_ptr<PreparedSandbox>> PrepareSandbox(const RunRequest& req, const std::string& persist_dir,
                                                        const std::string& audit_db = "");

// One decision as the result lists it, `at_ms` since `origin_ns`
// (CLOCK_MONOTONIC).
EgressRecord ToEgressRecord(const net::EgressEvent& e, int64_t origin_ns);

// Stops the egress proxy and the connect() server (the sandbox is gone)
// and returns their decisions in time order; adds what they could not keep
// to `*dropped`.
std::vector<EgressRecord> CollectEgress(PreparedSandbox& ps, uint64_t* dropped);

}  // namespace ward
