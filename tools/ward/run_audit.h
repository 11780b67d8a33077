// What `ward run` records in the audit trail (docs/audit.md): the run's
// identity, given to the sandbox, its start before anything runs, and its
// decisions, limits and exit once it ends.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "audit/store.h"
#include "audit/egress_event.h"
#include "audit/end_event.h"
#include "audit/exec_event.h"
#include "audit/file_event.h"
#include "audit/writer.h"
#include "ward/result.h"
#include "ward/sandbox.h"

namespace ward::cli {

// An exec of the command itself (a child of init, ppid 1) that a supervisor
// that is not root could not read (init's children are not dumpable until
// they execute): its argv is `argv`, the one ward gave.
void FillFromRequest(ProcessExec* x, const std::vector<std::string>& argv);


class RunAudit {
 public:
  // Opens the audit store (audit::DefaultPath), takes the agent's stable id
  // and a new sandbox id, sets WARD_AGENT, WARD_AGENT_ID and
  // WARD_SANDBOX_ID in the sandbox's environment, and records the start.
  // Any failure is an error: a run that cannot be recorded does not run.
  // Sets req->on_exec: each program the sandbox executes is recorded as it
  // happens (an "exec" event, ExecEvent), by a thread of its own.
  static Result<RunAudit> Begin(const std::string& agent, RunRequest* req);

  // Begin for `ward run` and `ward learn`: the agent is `agent_flag` if
  // given, else the policy's audit.agent, else "default". A store that
  // cannot be written is an error, unless the policy's audit.trail is
  // "best-effort": then said on stderr, and nullopt (the run goes on
  // without its trail). A bad agent name is an error either way.
  static Result<std::optional<RunAudit>> BeginFor(const std::string& agent_flag, RunRequest* req);

  // End for a run begun with BeginFor: nothing without a trail; an error
  // of End is said and dropped when the policy's trail is "best-effort".
  static Result<void> EndFor(std::optional<RunAudit>& trail, const RunRequest& req, const RunResult* r,
                             const std::string* error, int exit_status);

  // Records how the run ended: each egress decision, each limit reached,
  // and the exit (`r` null: ward's own error, `error`), after the exec
  // events still queued. An error if any event could not be written.
  Result<void> End(const RunResult* r, const std::string* error, int exit_status);

  const std::string& sandbox() const { return sandbox_; }

 private:
  // Opens the store and takes the agent's id; the start is recorded by
  // Record(start).
  static Result<RunAudit> Open(const std::string& agent, const std::string& path);
  Result<void> Record(audit::Event start);
  audit::Event Base(const std::string& kind) const;
  // On the heap: the writer's thread holds the store's address while the
  // RunAudit moves.
  std::unique_ptr<audit::Store> store_;
  std::unique_ptr<audit::EventWriter> writer_;
  std::string agent_, agent_id_, sandbox_;
  std::optional<uint32_t> host_uid_;  // as root: the agent's (lifecycle::OpenAgentTrail)
  std::string run_;  // this command's id: pairs its start with its exit
  int64_t start_ns_ = 0;
  bool streamed_egress_ = false;  // egress events were posted as decided
  RunAudit(audit::Store s) : store_(std::make_unique<audit::Store>(std::move(s))) {}
};

}  // namespace ward::cli
