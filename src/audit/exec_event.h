// The audit trail's "exec" event: a program the sandbox executed
// (ProcessExec, from the supervisor's seccomp listener).
#pragma once

#include "audit/store.h"
#include "ward/sandbox.h"

namespace ward::audit {

// An "exec" event of `x`, with the identity (agent, agent id, sandbox) of
// `base`. Path and argv are the sandbox's bytes, stored as given.
Event ExecEvent(const Event& base, const ProcessExec& x);

}  // namespace ward::audit
