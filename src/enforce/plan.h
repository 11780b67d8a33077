// The compiled plan: everything the sandbox child needs, computed before
// clone() so that the child only executes a list of prepared operations
// (no parsing, no formatting, no allocation).
#pragma once

#include <linux/filter.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "enforce/netns.h"
#include "ward/policy.h"
#include "ward/result.h"

namespace ward {

// One step of building the sandbox's root. Targets are relative to the new
// root (no leading '/'), executed with the new root as working directory.
struct MountOp {
  enum class Kind : uint8_t {
    kMkdir,      // mkdir target (mode)
    kMkfile,     // create an empty file as a mount point (mode)
    kWriteFile,  // create target (mode) holding `source` as content
    kSymlink,    // symlink target -> source
    kBind,       // bind host `source` (and everything mounted below it) at target
    kTmpfs,      // a fresh tmpfs at target (mode)
    kMaskDir,    // an empty tmpfs hiding a denied directory (mode)
    kMaskFile,   // the empty, mode-0 mask file bound over a denied file
    kProc,       // a fresh proc for the sandbox's pid namespace
    kDevpts,     // a private devpts instance
    kSetAttr,    // mount_setattr(target, 0, attr_set): late read-only switch
    kUnlink,     // remove target (the mask file's source once bound)
  };
  Kind kind;
  std::string source;
  std::string target;
  uint64_t attr_set = 0;  // MOUNT_ATTR_* applied after the mount
  mode_t mode = 0755;
  // kBind of a policy grant (a host path): id-mapped for a root caller
  // (enforce/idmap.h).
  bool idmap = false;
  // kTmpfs: its size in MiB (0: the kernel's default). Set for the
  // workload's writable tmpfs (/tmp, /dev/shm) by BoundTmpfs. kProc: the
  // bound of System V shared memory in the sandbox's IPC namespace.
  int64_t size_mib = 0;
  // kTmpfs: its inodes (0: the kernel's default, half the memory's pages).
  // Set for a held sandbox's persistent areas (PersistAreas): each is
  // copied at every stop and start.
  int64_t nr_inodes = 0;
};

// Sets the size of every writable tmpfs of the plan (/tmp, /dev/shm).
struct LaunchPlan;
void BoundTmpfs(LaunchPlan& plan, int64_t mib);
// A held sandbox's persistent areas (lifecycle/persist.h): its private /tmp
// and private home, tmpfs whose content its supervisor keeps across stops.
// Bounds their inodes (kPersistInodesPerMiB of their size, at least
// kPersistMinInodes): a save costs one copy per inode.
struct PersistArea {
  std::string name;    // "tmp", "home": its directory in the sandbox's state
  std::string target;  // where it is in the sandbox (relative to its root)
};
std::vector<PersistArea> PersistAreas(LaunchPlan& plan);
inline constexpr int64_t kPersistInodesPerMiB = 256, kPersistMinInodes = 1024;
inline constexpr size_t kMaxPersistAreas = 2;

// A landlock grant. Host-side grants are added before clone(); child-side
// ones name mounts the child creates (/tmp, /dev, /proc, synthesized files).
struct LandlockGrant {
  std::string path;
  bool write = false;
  bool list_only = false;  // READ_DIR only (the root directory)
};

// What the policy lets the sandbox do at and beneath `path` (a host path,
// which is also the sandbox's), for judging the file accesses the
// supervisor watches (enforce/file_view.h). Sorted by path; the nearest
// rule at or above a path holds for it; beneath no rule lies the sandbox's
// bare root, where only the directories leading to a rule exist.
struct ViewRule {
  enum class Access : uint8_t {
    kRead,     // a read-only grant
    kWrite,    // a writable grant
    kHidden,   // a deny rule's mask
    kPrivate,  // the sandbox's own: private /tmp and home, /proc, /dev, synthesized files
    kLink,     // a link ward made in the bare root (/bin -> usr/bin): this name only, not beneath
  };
  std::string path;
  Access access;
};

// Where a resource limit is enforced.
// kSupervisor: ward's supervisor samples the sandbox's memory and stops it
// past the limit (enforce/memory_watch.h).
enum class LimitMechanism { kNone, kCgroupV2, kCgroupV1, kRlimit, kSupervisor };

struct CgroupPlan {
  // Directories created for this sandbox, removed (deepest first) at the end.
  std::vector<std::string> dirs;
  // v1: `tasks` of each hierarchy, opened before clone; the child
  // writes "0" to each to move itself in.
  std::vector<int> v1_procs_fds;
  // v2: the directory fd used with CLONE_INTO_CGROUP.
  int v2_dir_fd = -1;
  LimitMechanism memory = LimitMechanism::kNone;
  LimitMechanism pids = LimitMechanism::kNone;
  LimitMechanism cpu = LimitMechanism::kNone;
  std::string memory_dir, pids_dir;  // for reading events after the run
};

struct RlimitOp {
  int resource;
  rlimit value;
};

// A pathname unix socket or FIFO the policy names (filesystem.unix). It is
// bound at its own path in the sandbox. A socket: the supervisor lets the
// workload connect to it (net/unix_gate.h) if it is still this inode; a
// FIFO: landlock lets the workload open it for writing.
struct UnixEndpoint {
  std::string path;  // the host's path, which is also the sandbox's
  dev_t dev = 0;     // st_dev and st_ino at compile time
  ino_t ino = 0;
  bool fifo = false;  // S_ISFIFO; otherwise S_ISSOCK
};

struct LaunchPlan {
  // A held sandbox's persistent areas (PersistAreas): its init hands the
  // supervisor a descriptor of each with kEvReady (enforce/exec_request.h),
  // at most kMaxPersistAreas.
  std::vector<PersistArea> persist;
  std::string base;   // host directory the new root's tmpfs is mounted on
  std::vector<MountOp> mounts;
  std::string cwd;    // inside the sandbox
  std::vector<std::string> argv;
  std::vector<std::string> exec_candidates;  // argv[0] resolved against the sandbox's PATH
  // What the policy does not say but the user should know before the run
  // (RunRequest::strict makes each an error).
  std::vector<std::string> warnings;
  std::vector<std::string> envp;
  std::vector<ViewRule> view;                 // the grants, for judging accesses
  std::vector<LandlockGrant> landlock;        // host-side grants
  std::vector<LandlockGrant> landlock_child;  // paths inside the new root
  int landlock_abi = 0;       // 0: landlock not applied
  std::vector<sock_filter> seccomp;       // the BPF program (libseccomp)
  std::vector<sock_filter> seccomp_extra; // a second program (personality)
  // BuildNetworkFilter(kIsolated, or kHost with the host's network) when
  // the egress filter is not loaded; empty otherwise. Loaded with a
  // listener that init hands to the supervisor (LaunchOptions::on_connect_listener).
  std::vector<sock_filter> seccomp_net;
  std::vector<RlimitOp> rlimits;
  std::vector<UnixEndpoint> unix_endpoints;  // filesystem.unix, resolved
  std::string uid_map, gid_map;
  // A root caller's sandbox: the unprivileged host uid (and gid) that uid 0
  // inside maps to. The supervisor writes the maps (the child cannot map an
  // id other than its own) and id-maps the grants; the child then takes
  // that identity (setgroups(0), setresgid/setresuid(0)). Unset for other
  // callers, whose sandbox writes its own maps (uid_map, gid_map above).
  std::optional<uid_t> host_uid;
  int last_cap = 40;
  bool new_net = true;
  // Egress mode: the netlink requests that build the sandbox's network
  // (new_net is then true as well).
  std::optional<EgressNetnsPlan> egress;
  int64_t timeout_ms = 0;
};

}  // namespace ward
