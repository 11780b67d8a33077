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

// ward's range of host uids for sandboxes of root callers, from
// WARD_UID_RANGE ("BASE" or "BASE:COUNT"; default 1879048192:65536, the
// 0x70000000 block that systemd leaves unused). BASE is the uid of a
// sandbox with no agent (ward's library); each agent of the CLI gets one of
// the others, recorded in the audit store (audit::Store::AgentHostUid). An
// unparsable value is an error.
struct UidRange {
  uid_t base = 0;
  uint32_t count = 0;
  bool Contains(uid_t u) const { return u >= base && u - base < count; }
};
Result<UidRange> SandboxUidRange();
// Its BASE.
Result<uid_t> SandboxHostUid();

// The "0 ID 1\n" line a root caller's sandbox has in uid_map and gid_map.
std::string RootCallerIdMap(uid_t host_id);

// Writes the sandbox's uid_map and gid_map (plan.uid_map) for the child
// `pid` (the supervisor's half of the identity; the child waits for it).
Result<void> WriteIdMaps(pid_t pid, const LaunchPlan& plan);

// A user namespace (held by its descriptor; its process is gone) whose uid
// and gid 0 map to `host_id` (what `ward doctor` probes with; a sandbox's
// grants are id-mapped through the sandbox's own user namespace).
Result<UniqueFd> MakeMappedUserns(uid_t host_id);

// Gives the child `pid` (waiting in ReceiveIdentity) its identity: writes
// its id maps, then sends it, over `channel`, the grants of `plan` cloned
// and id-mapped through its own user namespace, and the go-ahead.
Result<void> GiveIdentity(pid_t pid, const LaunchPlan& plan, int channel);

// The child's half (async-signal-safe): receives the trees into `trees`
// (indexed by mount op, -1 where none) until the go-ahead. Returns 0 or the
// errno (EPIPE: the supervisor gave up).
int ReceiveIdentity(int channel, int* trees, size_t ops);

// For each kBind operation of `plan` marked `idmap`, a detached copy of its
// source tree (open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)), id-mapped through
// `userns` and given the operation's attributes; -1 for every other
// operation. A read-only grant on a filesystem that cannot be id-mapped keeps
// a plain bind (the caller's files then look like nobody's: less access,
// never more); a writable one is an error naming the path.
Result<std::vector<UniqueFd>> CloneIdmappedTrees(const LaunchPlan& plan, int userns);

}  // namespace ward
