// Landlock: the second, independent filesystem layer. The kernel walks the
// real path of every open against the granted trees, whatever the mount
// table says.
#pragma once

#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "enforce/plan.h"
#include "ward/result.h"

namespace ward {

// The landlock ABI version the kernel offers, 0 if none (or disabled).
int LandlockAbi();

// Builds a ruleset (before clone) holding the host-side grants of `plan`.
// The child adds grants for the mounts it creates itself and then calls
// LandlockRestrictSelf.
Result<UniqueFd> BuildLandlockRuleset(const LaunchPlan& plan);

// Child side: add a grant on a path that exists only inside the sandbox.
// Returns 0 or an errno. Async-signal-safe.
int LandlockAddPath(int ruleset_fd, int abi, const char* path, bool write, bool dir_only_read);

// Child side: no_new_privs must already be set. Returns 0 or an errno.
int LandlockRestrictSelf(int ruleset_fd);

// Access rights handled at `abi` (every filesystem right the kernel knows).
uint64_t LandlockHandledFs(int abi);

}  // namespace ward
