// The supervisor of one held sandbox (as conmon holds a podman container):
// a process of the owner's, started by `ward start`, that builds the sandbox
// with the same code as `ward run` (sandbox/prepare.h, enforce/launcher.h,
// LaunchOptions::hold) and then serves its control socket
// (lifecycle/control.h) until the sandbox is stopped or fails.
//
// Its death is the sandbox's: the sandbox's init has it as parent with a
// parent-death SIGKILL, and PID 1's death empties the pid namespace.
#pragma once

#include <string>

#include "lifecycle/store.h"

namespace ward::lifecycle {

// Holds the sandbox of `rec` (directory `dir`). Writes to `ready_fd` one
// message: "ok" once the control socket serves, or "E<exit status> <why>"
// if the sandbox could not be built; then closes it. Records the final
// state ("stopped" or "failed" with why) before returning. Returns the
// supervisor process's exit status.
int HoldSandbox(const std::string& dir, SandboxRecord rec, int ready_fd);

}  // namespace ward::lifecycle
