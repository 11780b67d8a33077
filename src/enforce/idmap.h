// A root caller's sandbox runs as an unprivileged host uid (DESIGN.md
// principle 9): its user namespace maps uid/gid 0 inside to `host_uid`
// outside, so nothing the workload holds (an inherited descriptor, a device
// node, a file on a host mount) is changed as host root. Its host-backed
// grants are id-mapped (MOUNT_ATTR_IDMAP) with the same mapping, so the
// caller's files look like the sandbox's own and what it writes belongs to
// the caller again on the host.
//
// Idmapped mounts need CAP_SYS_ADMIN in the filesystem's user namespace
// (the host's), which the sandbox never has: the supervisor clones and maps
// each grant's tree before clone(), and the child only moves the detached
// trees into its new root (move_mount from a descriptor it inherited).
#pragma once

#include <sys/types.h>

#include <vector>

#include "base/unique_fd.h"
#include "enforce/plan.h"
#include "ward/result.h"

namespace ward {

// The first uid of ward's range for sandboxes of root callers, from
// WARD_UID_RANGE ("BASE" or "BASE:COUNT"; default 1879048192:65536, the
// 0x70000000 block that systemd leaves unused). Until agents get their own
// uid (issue 11), every sandbox uses BASE. An unparsable value is an error.
Result<uid_t> SandboxHostUid();

// The "0 ID 1\n" line a root caller's sandbox has in uid_map and gid_map.
std::string RootCallerIdMap(uid_t host_id);

// Writes the sandbox's uid_map and gid_map (plan.uid_map) for the child
// `pid` (the supervisor's half of the identity; the child waits for it).
Result<void> WriteIdMaps(pid_t pid, const LaunchPlan& plan);

// A user namespace (held by its descriptor; its process is gone) whose uid
// and gid 0 map to `host_id`: the idmapping of the sandbox's grants.
Result<UniqueFd> MakeMappedUserns(uid_t host_id);

// For each kBind operation of `plan` marked `idmap`, a detached copy of its
// source tree (open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)), id-mapped through
// `userns` and given the operation's attributes; -1 for every other
// operation. A read-only grant on a filesystem that cannot be id-mapped keeps
// a plain bind (the caller's files then look like nobody's: less access,
// never more); a writable one is an error naming the path.
Result<std::vector<UniqueFd>> CloneIdmappedTrees(const LaunchPlan& plan, int userns);

}  // namespace ward
