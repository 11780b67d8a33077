// The control socket of a held sandbox (RUNTIME/ID/ctl, SOCK_SEQPACKET):
// what `ward exec`, `ward stop` and `ward ls` send its supervisor, and what
// comes back.
//
// Requests are an ExecMessage (enforce/exec_request.h):
//   kExecStart   strings: cwd ("" for the sandbox's), argv, then the
//                environment to add to the sandbox's; descriptors for the
//                stdio entries kStdioPassed; one per connection
//   kExecSignal  `sig` to the connection's process (its process group)
//   kCtlStop     stop the sandbox (SIGTERM to all, SIGKILL after
//                `sig` milliseconds); the connection ends once it stopped
//   kCtlStatus   one message back: a JSON object (processes, supervisor memory)
// Replies to kExecStart are Records (enforce/child.h): first a kRecWarning
// if the sandbox runs without its audit trail or the exec without its
// record (a Record whose `value` bytes of text follow in the same message),
// kRecStarted (`step` kStartedAfterWarnings), kRecPty (with the
// terminal's descriptors), kRecError, kRecTimedOut, kRecGone, kRecLimit,
// one kRecReport (likewise followed by JSON: ExecReportJson), and last
// kRecExit, after which the supervisor closes the connection.
//
// Who may connect: the supervisor accepts a peer only if its uid is the
// supervisor's and it lives in the supervisor's user namespace, so no
// process of any sandbox (whose uid may map to the owner's) is served.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "enforce/exec_request.h"
#include "ward/sandbox.h"

namespace ward::lifecycle {

inline constexpr uint32_t kCtlStop = 10;
inline constexpr uint32_t kCtlStatus = 11;

// At most this many egress decisions go into one exec's report; the rest
// are counted in egressDropped (a report is one message on the socket).
inline constexpr size_t kReportMaxEgress = 400;

// The warning an exec's caller is given when the sandbox runs without its
// audit trail (`why`: the store's error).
std::string AuditOffWarning(const std::string& why);

// One exec's report: {"egress": [...], "egressDropped": N,
// "limitMechanisms": {"memory": ..., "pids": ...}}; the egress records as
// `ward run --json` prints them (atMs since the exec began).
std::string ExecReportJson(const std::vector<EgressRecord>& egress, uint64_t dropped, const RunResult& mechanisms);
// Fills `out`'s egress, egress_dropped and mechanisms from such a report;
// what it cannot read is left as it is.
void ReadExecReport(const std::string& json, RunResult* out);

}  // namespace ward::lifecycle
