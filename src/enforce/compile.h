// Policy -> LaunchPlan: resolves paths on the host, lays out the new root,
// prepares argv, environment and limits. Runs before clone().
#pragma once

#include <string>
#include <vector>

#include "enforce/plan.h"
#include "ward/policy.h"
#include "ward/result.h"

namespace ward {

// Resolves `path` component by component on the host. `real` is the path
// with every symlink followed; `links` lists each symlink met (its real
// location and its content) so the sandbox can recreate them.
struct ResolvedPath {
  std::string real;
  std::vector<std::pair<std::string, std::string>> links;
  bool exists = false;
  bool is_dir = false;
  int error = 0;  // ELOOP, EACCES... (not ENOENT: that is exists == false)
};
// `cache` (optional) remembers lstat/readlink results across calls: the
// baseline's paths share most of their prefixes.
struct ResolveCache;
ResolvedPath ResolvePath(const std::string& path, ResolveCache* cache = nullptr);

// The system baseline (`"system": true`): what a dynamically linked
// program needs to start and behave. Paths missing on a host are skipped.
std::vector<std::string> SystemBaselinePaths();

// How many entries CompilePlan examines, at most, in a tree it must check
// entry by entry (compile.cc, WalkTree) before it refuses the policy. A
// process-wide setting that tests lower, to test the refusal without
// making hundreds of thousands of files.
struct WalkBounds {
  size_t denied_tree = 10000;   // a denied directory inside a writable grant (each entry lstat'ed)
  size_t fifo_tree = 200000;    // a read-only grant inside a writable area (types from the listing)
};
WalkBounds& CompileWalkBounds();

// Rebuilds `plan`'s network filter (the egress one, or seccomp_net) so that
// execve() and execveat() wait for the supervisor as well, which records
// them (RunRequest::on_exec), and with `files` every file system call that
// names a path (RunRequest::on_file); nothing else changes.
void NotifyCalls(LaunchPlan* plan, bool files);

// Errors name the policy field (`/filesystem/read/1 "/opt/data": does not exist`).
//
// `ward_state`: directories that hold ward's own state (real paths, each
// place one is visible: lifecycle::WardStateDirs), the sandbox records and
// the audit trail. Each is hidden as a denied directory is, beneath any
// grant above it; a grant at or beneath one is refused, since a grant
// deeper than a deny is mounted over it (a sandbox given DIR/audit.db could
// read, rewrite or erase the trail).
Result<LaunchPlan> CompilePlan(const Policy& policy, const std::vector<std::string>& argv, int landlock_abi,
                               const std::vector<std::string>& ward_state = {});

}  // namespace ward
