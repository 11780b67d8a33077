// Held (persistent) sandboxes: provision -> start -> exec ... -> stop ->
// deprovision, the lifecycle MXC names. A held sandbox keeps its private
// /tmp and home across execs and stop/start, its network rules and DNS
// bindings while it runs; every exec is confined exactly as `ward run`'s
// command (it is a child of the same confined init). `Run` (ward/sandbox.h)
// is provision + start + exec + deprovision in one step, without the disk.
//
// No daemon: each running sandbox has a supervisor process of its owner's,
// reached over RUNTIME/ID/ctl (lifecycle/store.h); only the owner, outside
// every sandbox, is served.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ward/policy.h"
#include "ward/result.h"
#include "ward/sandbox.h"

namespace ward {

struct ProvisionRequest {
  Policy policy;  // its working directory is fixed now (the caller's, if it names none)
  std::string name;   // "" : the id
  std::string agent;  // who it is for (shown by List)
  std::string workspace;  // ${WORKSPACE} as given
  std::vector<std::string> dns_servers;  // as RunRequest::dns_servers
};

struct SandboxInfo {
  std::string id, name, agent, state, created, policy_digest, failure, started;
  int processes = -1;        // running: processes inside (init not counted); else -1
  long supervisor_rss_kib = 0;  // running: the supervisor's resident memory
  int supervisor_pid = 0;
  std::string audit_store;   // the audit store its execs are recorded in ("": the caller's default)
  // Running without its audit trail (audit.trail "best-effort" and a store
  // its supervisor could not open): why; "" when it records.
  std::string audit_off;
  // Start: what the caller should know (e.g. saved files of its /tmp or
  // home that no longer fit and were left out).
  std::vector<std::string> warnings;
};

// The sandbox's record as `List` shows it, without asking its supervisor
// (processes and memory unknown). Errors: kNoSandbox, kRuntimeDir.
Result<SandboxInfo> Describe(const std::string& ref);

// Checks the policy as `ward run` would (paths, grants) and records the
// sandbox; nothing runs. Errors: kNameTaken, kPolicy, kRuntimeDir.
Result<SandboxInfo> Provision(const ProvisionRequest& request);

// Starts a provisioned, stopped or failed sandbox: its supervisor builds it
// and serves. Errors: kNoSandbox, kState (already running), and `ward run`'s
// set-up errors (the sandbox's state is left as it was).
Result<SandboxInfo> Start(const std::string& ref);

struct ExecRequest {
  std::string ref;
  std::vector<std::string> argv;
  std::vector<std::string> env;  // NAME=VALUE, added to the sandbox's
  std::string cwd;               // "" : the sandbox's working directory
  bool pty = false;
  int64_t kill_grace_ms = 3000;
  // Called with each warning the sandbox gives about this exec, before the
  // command runs (from a supervisor started by an older ward: once it
  // runs): that the sandbox runs without its audit trail, or this exec
  // without its record (audit.trail "best-effort"). They are also the
  // first of RunResult::warnings.
  std::function<void(const std::string&)> on_warning;
};

// Runs a command in a running sandbox, relaying stdio (with back-pressure:
// pipes) and forwarding SIGINT, SIGTERM, SIGHUP (and SIGWINCH with a pty);
// returns once it ended. The result has `ward run`'s meaning. Errors:
// kNoSandbox, kState (not running), kSupervisorGone, kNotFound and
// kNotExecutable (the command), kSetup.
Result<RunResult> Exec(const ExecRequest& request);

// Stops a running sandbox: SIGTERM to every process, SIGKILL after
// `grace_ms`; its state is kept. Errors: kNoSandbox, kState.
Result<SandboxInfo> Stop(const std::string& ref, int64_t grace_ms);

// Stops it if it runs, then removes everything: processes, private /tmp
// and home, record, name. Errors: kNoSandbox.
Result<void> Deprovision(const std::string& ref, int64_t grace_ms);

// Every sandbox of the caller's; a "running" one whose supervisor is gone
// is reported "failed", with why.
Result<std::vector<SandboxInfo>> List();

// Exit statuses of the lifecycle commands: kExitRuntimeDir ...
// kExitSupervisorGone, in ward/sandbox.h beside run's.

}  // namespace ward
