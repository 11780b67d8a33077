#include "audit/exec_event.h"

namespace ward::audit {

Event ExecEvent(const Event& base, const ProcessExec& x) {
  Event e;
  e.time_ns = x.time_ns;
  e.agent = base.agent;
  e.agent_id = base.agent_id;
  e.sandbox = base.sandbox;
  e.kind = "exec";
  e.detail = {{"pid", x.pid}, {"ppid", x.ppid}, {"hostPid", x.host_pid}};
  if (!x.unreadable.empty()) e.detail["unreadable"] = x.unreadable;
  if (x.path.empty() && x.argv.empty()) {
    e.summary = "pid " + std::to_string(x.pid) + " executes a program ward could not read (" + x.unreadable + ")";
    return e;
  }
  e.summary = x.missing ? std::string("(not found) ").append(x.path) : x.path;
  for (size_t i = 1; i < x.argv.size(); ++i) e.summary += " " + x.argv[i];
  if (x.truncated) e.summary += " ...";
  e.detail["path"] = x.path;
  e.detail["argv"] = x.argv;
  if (x.truncated) e.detail["truncated"] = true;
  if (x.missing) e.detail["found"] = false;  // as ward saw it: most likely a PATH search's miss
  return e;
}

}  // namespace ward::audit
