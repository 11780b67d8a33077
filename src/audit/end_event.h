// How a command ended, in the audit trail: the limits it reached ("limit"
// events) and the summary of its "exit" event. One reading for `ward run`
// (tools/ward/run_audit.cc) and a held sandbox's supervisor, which records
// its execs' ends (lifecycle/held_supervisor.cc).
#pragma once

#include <string>
#include <vector>

#include "audit/store.h"

namespace ward::audit {

// The limits a command reached: `measured` (memory, pids: the cgroup's
// counters or the memory watch), the time limit if ward killed it, and CPU
// time or file size when the kernel's SIGXCPU or SIGXFSZ (`signal`) ended it.
std::vector<std::string> LimitsReached(std::vector<std::string> measured, bool timed_out, int signal);

// A "limit" event (decision "deny") for `limit`, with the identity of `base`.
Event LimitEvent(const Event& base, const std::string& limit);

// The exit event's summary: "timed out (exit status N)", "killed by SIG
// (exit status N)" or "exit status N".
std::string ExitSummary(bool timed_out, int signal, int exit_status);

}  // namespace ward::audit
