#include "enforce/compile.h"
#include "enforce/glob.h"
#include "enforce/home.h"

#include <linux/mount.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "base/errors.h"
#include "base/path.h"
#include "enforce/idmap.h"
#include "enforce/seccomp.h"
#include "policy/paths.h"

namespace ward {

namespace {

// The system baseline: what a dynamically linked program needs to start and
// to behave (locale, time zone, certificates, name service configuration).
// Paths that do not exist on this host are skipped.
const char* const kSystemPaths[] = {
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives",
    "/etc/localtime", "/etc/timezone", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf",
    "/etc/protocols", "/etc/services", "/etc/mime.types", "/etc/ssl", "/etc/ca-certificates",
    "/etc/os-release", "/etc/debian_version", "/etc/locale.alias", "/etc/inputrc",
};
// Only with "network": "host": the host's resolver configuration.
const char* const kHostNetworkPaths[] = {"/etc/resolv.conf", "/etc/hosts"};

// Entries of the sandbox's /proc that would act on the host, made read-only.
const char* const kProcReadOnly[] = {"sys", "sysrq-trigger", "irq", "bus", "fs", "acpi", "scsi", "sysvipc"};

// Entries of the sandbox's /proc that describe the host rather than the
// sandbox (keys of every user, kernel timers and addresses, slab and page
// allocator state: inputs to kernel exploits and side channels), hidden
// behind the empty mode-0 mask as Docker hides them. Directories get an
// empty read-only tmpfs.
const char* const kProcMaskedFiles[] = {"keys", "key-users", "kcore", "timer_list", "timer_stats", "sched_debug",
                                        "slabinfo", "pagetypeinfo", "latency_stats", "kpagecount", "kpageflags",
                                        "kpagecgroup", "vmallocinfo"};
const char* const kProcMaskedDirs[] = {"acpi", "asound", "scsi"};

// Device nodes bound from the host into the private /dev.
const char* const kDevNodes[] = {"null", "zero", "full", "random", "urandom", "tty"};

// Candidate host directories for the new root's tmpfs. The tmpfs hides what
// is below it (in the sandbox's mount namespace only), so the first one that
// holds no bind source is used.
const char* const kBaseCandidates[] = {"/tmp", "/mnt", "/run", "/var/tmp", "/opt", "/srv", "/media"};

constexpr uint64_t kRo = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
constexpr uint64_t kRw = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;

// kPin: a directory between a writable grant and a deny or read-only rule
// nested in it, bound onto itself so that it is a mount point: rename(2)
// and rmdir(2) of a mount point fail (EBUSY), so the workload cannot move
// the rule's path away from under it (`mv config config.old`) within a run.
enum class Kind { kRead, kWrite, kDeny, kTmp, kProc, kDev, kPin };

struct Entry {
  Kind kind;
  std::string real;    // host path == path inside the sandbox
  std::string origin;  // policy field, for messages
  bool is_dir = true;
  bool baseline = false;
  // A grant nested in one of the same kind makes no mount of its own unless
  // it lies on a pinned chain (see Emit).
  bool pinned = false;
  mode_t tmp_mode = 01777;  // kTmp: the new tmpfs's root (kHomeMode for a private home)
};

// A private home: the workload's alone, like the one it stands for.
constexpr mode_t kHomeMode = 0700;

bool IsHostBacked(Kind k) { return k == Kind::kRead || k == Kind::kWrite || k == Kind::kPin; }

std::string Rel(const std::string& abs) { return abs == "/" ? "." : abs.substr(1); }

class Layout {
 public:
  Layout(LaunchPlan& plan) : plan_(plan) {}

  Result<void> Add(Entry e) {
    auto it = entries_.find(e.real);
    if (it == entries_.end()) {
      entries_.emplace(e.real, std::move(e));
      return {};
    }
    Entry& old = it->second;
    if (old.kind == Kind::kTmp && !e.baseline) {
      // A rule naming /tmp itself speaks of the host's /tmp. A grant of it
      // (`ward run` from /tmp: the workspace is /tmp) is the host's /tmp
      // with the grant's access instead of the private one; a deny of it
      // is what the private /tmp already does.
      if (e.kind != Kind::kDeny) {
        // Said, since it is easy to do without meaning it (a workspace that
        // is the caller's cwd, and the caller in /tmp or ~).
        plan_.warnings.push_back(e.origin + " grants \"" + e.real + "\" itself: the sandbox gets the host's " +
                                 e.real + (e.kind == Kind::kWrite ? " (writable)" : " (read-only)") +
                                 " instead of a private one");
        old = std::move(e);
      }
      return {};
    }
    if (old.kind == Kind::kTmp || old.kind == Kind::kProc || old.kind == Kind::kDev) {
      return Error::Policy(e.origin + " \"" + e.real + "\": conflicts with the sandbox's own " + e.real);
    }
    // A user rule replaces a baseline rule; otherwise deny beats allow and
    // read-only beats writable between rules naming the same real path.
    if (old.baseline && !e.baseline) old = std::move(e);
    else if (e.kind == Kind::kDeny) old = std::move(e);
    else if (old.kind == Kind::kWrite && e.kind == Kind::kRead) old = std::move(e);
    return {};
  }

  // Ordered so that every directory comes before what lies beneath it.
  void Emit() {
    // Pins: every directory between a deny or read-only rule and the
    // writable grant above it that is a mount of its own. A writable grant
    // nested in another makes no mount (EmitEntry), so the chain goes on
    // through it to the outer one, and it is bound after all: otherwise
    // `mv W/a W/a2` would carry the rule's path away (the review's
    // write: [W, W/.git], read: [W/.git/hooks]).
    std::vector<std::string> pins, nested;
    for (const auto& [path, e] : entries_) {
      if (e.kind != Kind::kDeny && e.kind != Kind::kRead) continue;
      const Entry* owner = Owner(path, true);
      if (!owner || owner->kind != Kind::kWrite) continue;
      std::string d = Parent(path);
      for (;;) {
        for (; d != owner->real && IsUnder(d, owner->real); d = Parent(d)) {
          if (!entries_.count(d)) pins.push_back(d);
        }
        const Entry* up = Owner(owner->real, true);
        if (!up || up->kind != Kind::kWrite) break;
        nested.push_back(owner->real);
        d = Parent(owner->real);
        owner = up;
      }
    }
    for (const auto& d : pins) entries_.emplace(d, Entry{Kind::kPin, d, "pin", true, false});
    for (const auto& n : nested) entries_.at(n).pinned = true;
    // Only something visible needs hiding: a deny whose path lies under a
    // tmpfs, under nothing or under another deny simply does not exist in
    // the sandbox, so it is dropped (and cannot own mount points).
    for (auto it = entries_.begin(); it != entries_.end();) {
      const Entry* owner = Owner(it->first, true);
      if (it->second.kind == Kind::kDeny && !(owner && IsHostBacked(owner->kind))) it = entries_.erase(it);
      else ++it;
    }
    // std::map order puts a path before any path it prefixes.
    for (const auto& [k, e] : entries_) EmitEntry(e);
  }

  // After synthesized files and symlinks: late read-only switches, and
  // the plan's view of what is granted where.
  void Finish() {
    using A = ViewRule::Access;
    for (const auto& [path, e] : entries_) {
      A access = e.kind == Kind::kRead                             ? A::kRead
                 : e.kind == Kind::kWrite || e.kind == Kind::kPin ? A::kWrite
                 : e.kind == Kind::kDeny                            ? A::kHidden
                                                                    : A::kPrivate;
      plan_.view.push_back({path, access});
    }
    for (const auto& path : synthesized_) plan_.view.push_back({path, A::kPrivate});
    for (const auto& path : symlinks_) plan_.view.push_back({path, A::kLink});
    std::sort(plan_.view.begin(), plan_.view.end(), [](const ViewRule& a, const ViewRule& b) { return a.path < b.path; });
    for (const auto& op : deferred_) plan_.mounts.push_back(op);
    if (mask_file_used_) {
      plan_.mounts.insert(plan_.mounts.begin(), MountOp{MountOp::Kind::kWriteFile, "", ".ward-mask", 0, 0});
      plan_.mounts.push_back({MountOp::Kind::kUnlink, "", ".ward-mask"});
    }
    plan_.mounts.push_back({MountOp::Kind::kSetAttr, "", ".", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV});
  }

  // The entry whose mount holds `path` (nullptr: the root tmpfs): the
  // nearest ancestor (or `path` itself unless strict) with a rule.
  const Entry* Owner(const std::string& path, bool strict) const {
    std::string p = strict ? (path == "/" ? "" : Parent(path)) : path;
    while (!p.empty()) {
      auto it = entries_.find(p);
      if (it != entries_.end()) return &it->second;
      if (p == "/") break;
      p = Parent(p);
    }
    return nullptr;
  }

  // The rule for exactly `path`, or nullptr.
  const Entry* At(const std::string& path) const {
    auto it = entries_.find(path);
    return it == entries_.end() ? nullptr : &it->second;
  }

  bool HasDescendants(const std::string& path) const {
    auto it = entries_.upper_bound(path);
    return it != entries_.end() && IsUnder(it->first, path);
  }

  // True if `path` is readable in the sandbox (under a grant, not masked).
  // True if the host's `path` is the same directory in the sandbox: under
  // a grant and not masked. A host path under the private /tmp is not (the
  // sandbox's /tmp is another, empty directory); the top of /tmp, /dev or
  // /proc themselves, and the root, exist in the sandbox too.
  // `path` holds a grant beneath it: the sandbox has the directory, as the
  // way to what is granted in it, and sees nothing else there (a working
  // directory where a command reads `data/a.txt` and writes `out/`, and
  // nothing more: what `ward learn` grants).
  bool LeadsToGrant(const std::string& path) const {
    return std::any_of(entries_.begin(), entries_.end(), [&](const auto& kv) {
      return kv.first != path && IsUnder(kv.first, path) && IsHostBacked(kv.second.kind);
    });
  }

  bool Visible(const std::string& path) const {
    if (path == "/") return true;
    const Entry* o = Owner(path, false);
    if (!o) return false;
    return IsHostBacked(o->kind) || (o->kind != Kind::kDeny && o->real == path);
  }

  // A file written into the private tmpfs at `dir` once it is mounted (not
  // where a grant beneath it, or one of `dir` itself, owns the path).
  void Seed(const std::string& dir, const std::string& path, const std::string& content) {
    const Entry* o = Owner(path, false);
    if (!o || o->kind != Kind::kTmp || o->real != dir) return;
    deferred_.push_back({MountOp::Kind::kWriteFile, content, Rel(path), 0, 0644});
  }

  // A file synthesized in the root (only where the root tmpfs owns it).
  void Synthesize(const std::string& path, const std::string& content) {
    if (Owner(path, false) != nullptr) return;
    MakeParents(path, nullptr);
    synthesized_.push_back(path);
    plan_.mounts.push_back({MountOp::Kind::kWriteFile, content, Rel(path), 0, 0644});
    plan_.landlock_child.push_back({path, false, false});
  }

  // Recreates a symlink met while resolving a grant, where a tmpfs owns it.
  void Symlink(const std::string& at, const std::string& content) {
    const Entry* o = Owner(at, false);
    if (o && o->kind != Kind::kTmp) return;  // host-backed: the link is there already
    if (!symlinks_.insert(at).second) return;
    MakeParents(at, o);
    plan_.mounts.push_back({MountOp::Kind::kSymlink, content, Rel(at)});
  }

 private:
  // mkdir every directory between the owning tmpfs and `path`'s parent.
  void MakeParents(const std::string& path, const Entry* owner) {
    std::string stop = owner ? owner->real : "/";
    std::vector<std::string> dirs;
    for (std::string p = Parent(path); p != stop && p != "/"; p = Parent(p)) dirs.push_back(p);
    for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
      if (made_.insert(*it).second) plan_.mounts.push_back({MountOp::Kind::kMkdir, "", Rel(*it), 0, 0755});
    }
  }

  void MountPoint(const Entry& e, const Entry* owner) {
    if (owner && IsHostBacked(owner->kind)) return;  // exists on the host
    MakeParents(e.real, owner);
    if (e.is_dir) {
      if (made_.insert(e.real).second) plan_.mounts.push_back({MountOp::Kind::kMkdir, "", Rel(e.real), 0, 0755});
    } else {
      plan_.mounts.push_back({MountOp::Kind::kMkfile, "", Rel(e.real), 0, 0644});
    }
  }

  void EmitEntry(const Entry& e) {
    const Entry* owner = Owner(e.real, true);
    const std::string rel = Rel(e.real);
    using K = MountOp::Kind;
    switch (e.kind) {
      case Kind::kRead:
      case Kind::kWrite:
        // Beneath a grant of the same kind, a bind would change nothing.
        if (owner && owner->kind == e.kind && !e.pinned) return;
        MountPoint(e, owner);
        // The system baseline is world-readable and root's: it needs no
        // id-mapping (its files look like nobody's, which reads the same).
        plan_.mounts.push_back({K::kBind, e.real, rel, e.kind == Kind::kRead ? kRo : kRw, 0755, !e.baseline});
        plan_.landlock.push_back({e.real, e.kind == Kind::kWrite, false});
        return;
      case Kind::kPin:
        plan_.mounts.push_back({K::kBind, e.real, rel, kRw, 0755, true});
        return;
      case Kind::kDeny:
        if (!e.is_dir) {
          mask_file_used_ = true;
          plan_.mounts.push_back({K::kMaskFile, ".ward-mask", rel, kRo | MOUNT_ATTR_NOEXEC});
        } else if (HasDescendants(e.real)) {
          // A more specific grant lies beneath: the mask holds its mount
          // points, and turns read-only once they are mounted.
          plan_.mounts.push_back({K::kMaskDir, "", rel, kRw | MOUNT_ATTR_NOEXEC, 0755});
          deferred_.push_back({K::kSetAttr, "", rel, kRo | MOUNT_ATTR_NOEXEC});
        } else {
          plan_.mounts.push_back({K::kMaskDir, "", rel, kRo | MOUNT_ATTR_NOEXEC, 0});
        }
        return;
      case Kind::kTmp:
        MountPoint(e, owner);
        plan_.mounts.push_back({K::kTmpfs, "", rel, kRw, e.tmp_mode});
        plan_.landlock_child.push_back({e.real, true, false});
        return;
      case Kind::kProc:
        MountPoint(e, owner);
        plan_.mounts.push_back({K::kProc, "", rel, kRw | MOUNT_ATTR_NOEXEC});
        // procfs checks writes to these against the host's uid 0, not
        // against capabilities (test_perm() in proc_sysctl.c; sysrq-trigger
        // has no check at all): a root caller's sandbox, which is uid 0 on
        // the host, could set kernel.core_pattern or reboot the host.
        // They are bound read-only over themselves, and landlock grants
        // /proc read-only as a second layer.
        for (const char* sub : kProcReadOnly) {
          std::string host = std::string("/proc/") + sub;
          if (access(host.c_str(), F_OK) != 0) continue;
          if (std::find(std::begin(kProcMaskedDirs), std::end(kProcMaskedDirs), std::string(sub)) != std::end(kProcMaskedDirs)) continue;
          plan_.mounts.push_back({K::kBind, rel + "/" + sub, rel + "/" + sub, kRo | MOUNT_ATTR_NOEXEC});
        }
        for (const char* sub : kProcMaskedFiles) {
          if (access((std::string("/proc/") + sub).c_str(), F_OK) != 0) continue;
          mask_file_used_ = true;
          plan_.mounts.push_back({K::kMaskFile, ".ward-mask", rel + "/" + sub, kRo | MOUNT_ATTR_NOEXEC});
        }
        for (const char* sub : kProcMaskedDirs) {
          if (access((std::string("/proc/") + sub).c_str(), F_OK) != 0) continue;
          plan_.mounts.push_back({K::kMaskDir, "", rel + "/" + sub, kRo | MOUNT_ATTR_NOEXEC, 0});
        }
        plan_.landlock_child.push_back({e.real, false, false});
        return;
      case Kind::kDev:
        EmitDev(e, owner);
        return;
    }
  }

  void EmitDev(const Entry& e, const Entry* owner) {
    using K = MountOp::Kind;
    MountPoint(e, owner);
    plan_.mounts.push_back({K::kTmpfs, "", "dev", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, 0755});
    for (const char* node : kDevNodes) {
      std::string host = std::string("/dev/") + node;
      if (access(host.c_str(), F_OK) != 0) continue;
      plan_.mounts.push_back({K::kMkfile, "", "dev/" + std::string(node), 0, 0666});
      // Read-only: the node's mode, owner and times cannot change (EROFS),
      // while reads and writes of a device ignore the mount's read-only flag.
      plan_.mounts.push_back({K::kBind, host, "dev/" + std::string(node), MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC});
    }
    plan_.mounts.push_back({K::kMkdir, "", "dev/pts", 0, 0755});
    plan_.mounts.push_back({K::kDevpts, "", "dev/pts", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC});
    plan_.mounts.push_back({K::kSymlink, "pts/ptmx", "dev/ptmx"});
    plan_.mounts.push_back({K::kMkdir, "", "dev/shm", 0, 0755});
    plan_.mounts.push_back({K::kTmpfs, "", "dev/shm", kRw | MOUNT_ATTR_NOEXEC, 01777});
    plan_.mounts.push_back({K::kSymlink, "/proc/self/fd", "dev/fd"});
    plan_.mounts.push_back({K::kSymlink, "/proc/self/fd/0", "dev/stdin"});
    plan_.mounts.push_back({K::kSymlink, "/proc/self/fd/1", "dev/stdout"});
    plan_.mounts.push_back({K::kSymlink, "/proc/self/fd/2", "dev/stderr"});
    deferred_.push_back({K::kSetAttr, "", "dev", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC});
    plan_.landlock_child.push_back({"/dev", true, false});
  }

  LaunchPlan& plan_;
  std::map<std::string, Entry> entries_;
  std::vector<MountOp> deferred_;
  std::set<std::string> made_, symlinks_;
  bool mask_file_used_ = false;
  std::vector<std::string> synthesized_;
};

std::string Quote(const std::string& s) { return "\"" + s + "\""; }

std::string ChooseBase(const std::vector<std::string>& sources) {
  for (const char* c : kBaseCandidates) {
    struct stat st;
    if (lstat(c, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    bool clash = std::any_of(sources.begin(), sources.end(), [&](const std::string& s) {
      return IsUnder(s, c) || IsUnder(c, s);
    });
    if (!clash) return c;
  }
  return "";
}

}  // namespace

struct ResolveCache {
  struct Entry {
    int err = 0;  // lstat's errno, or readlink's
    mode_t mode = 0;
    std::string link;
  };
  std::map<std::string, Entry> entries;

  const Entry& Get(const std::string& p) {
    auto it = entries.find(p);
    if (it != entries.end()) return it->second;
    Entry e;
    struct stat st;
    if (lstat(p.c_str(), &st) != 0) {
      e.err = errno;
    } else {
      e.mode = st.st_mode;
      if (S_ISLNK(st.st_mode)) {
        char buf[PATH_MAX];
        ssize_t n = readlink(p.c_str(), buf, sizeof buf - 1);
        if (n < 0) e.err = errno;
        else e.link.assign(buf, static_cast<size_t>(n));
      }
    }
    return entries.emplace(p, std::move(e)).first->second;
  }
};

void BoundTmpfs(LaunchPlan& plan, int64_t mib) {
  // The writable ones: mode 01777 (/tmp, /dev/shm) and a private home. The
  // root and /dev turn read-only before the workload starts; masks are
  // read-only and empty.
  for (MountOp& op : plan.mounts) {
    if (op.kind == MountOp::Kind::kTmpfs && (op.mode == 01777 || op.mode == kHomeMode)) op.size_mib = mib;
    // System V shared memory lives in the IPC namespace's own tmpfs, which
    // has no size: its shmmax/shmall get the same bound (written when the
    // sandbox's /proc is mounted, before /proc/sys turns read-only). Only
    // uid 0 of the namespace may write them, and only a root caller's
    // sandbox has one; an unprivileged caller's shared memory is counted by
    // a memory cgroup where there is one (docs/security.md).
    if (op.kind == MountOp::Kind::kProc && plan.host_uid) op.size_mib = mib;
  }
}

std::vector<PersistArea> PersistAreas(LaunchPlan& plan) {
  std::vector<PersistArea> areas;
  for (MountOp& op : plan.mounts) {
    // The private /tmp and a private home (not /dev/shm: like a reboot,
    // a stop empties it).
    const bool tmp = op.kind == MountOp::Kind::kTmpfs && op.mode == 01777 && op.target == "tmp";
    const bool home = op.kind == MountOp::Kind::kTmpfs && op.mode == kHomeMode;
    if (!tmp && !home) continue;
    areas.push_back({tmp ? "tmp" : "home", op.target});
    const int64_t mib = op.size_mib > 0 ? op.size_mib : 1024;
    op.nr_inodes = std::max(kPersistMinInodes, mib * kPersistInodesPerMiB);
  }
  return areas;
}

namespace {

// At most CompileWalkBounds() entries of a tree are examined when ward must
// check a tree entry by entry (DESIGN principle 8): a denied directory
// inside a writable grant (a secrets directory holds a few; each entry is
// lstat'ed for its links), a read-only grant inside a writable area (for
// FIFOs: only the directory listing's types are read, about 1.5 us an entry
// on ext4, so a whole workspace is affordable). Beyond it the policy is
// refused, not checked in part.

// Called for each entry beneath the walked root that the walk looks at, with
// its lstat (links are not followed). Returns "" to go on, or why the tree is
// refused; `*skip` set leaves a directory's contents out.
using TreeVisitor = std::function<std::string(const std::string& path, const struct stat& st, bool* skip)>;

// Walks the host tree beneath `root` (a real path, a directory), each
// directory before what it holds, visiting every entry, or with `only` set
// only directories and the entries whose type (from the listing, lstat where
// the filesystem does not say) is `only`: a listing's types cost no stat, so
// a large tree (a workspace) is walked in a few hundred nanoseconds an entry.
// Returns the first reason `visit` gives, or "" if every entry passed. Fails
// closed: a directory that cannot be listed, more than `max` entries, or
// directories nested deeper than kMaxWalkDepth, are reasons too (`purpose`
// says what the entries are checked for, in that message). An entry that
// vanishes while it is walked is passed over.
class TreeWalk {
 public:
  TreeWalk(const std::string& purpose, size_t max, const TreeVisitor& visit, std::optional<unsigned char> only)
      : purpose_(purpose), max_(max), visit_(visit), only_(only) {}

  std::string Run(const std::string& root) {
    int fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return "cannot list " + Quote(root) + " to check it: " + ErrnoName(errno);
    return Directory(root, fd, 0);
  }

 private:
  static constexpr int kMaxWalkDepth = 256;

  // Lists directory `fd` (`path`; the fd is closed here), then walks the
  // subdirectories it holds, each opened relative to it.
  std::string Directory(const std::string& path, int fd, int depth) {
    std::unique_ptr<DIR, int (*)(DIR*)> d(fdopendir(fd), closedir);
    if (!d) {
      close(fd);
      return "cannot list " + Quote(path) + " to check it: " + ErrnoName(errno);
    }
    if (depth > kMaxWalkDepth) return "nests directories deeper than " + std::to_string(kMaxWalkDepth) + " " + purpose_;
    std::vector<std::string> subdirs;
    while (dirent* e = readdir(d.get())) {
      const char* name = e->d_name;
      if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
      if (++seen_ > max_) {
        return "holds more than " + std::to_string(max_) + " entries, which ward checks one by one " + purpose_;
      }
      if (only_ && e->d_type != DT_UNKNOWN && e->d_type != DT_DIR && e->d_type != *only_) continue;
      struct stat st{};
      if (only_ && e->d_type == DT_DIR) {
        st.st_mode = S_IFDIR;  // all a walk for types needs of a directory (opened O_NOFOLLOW below)
      } else if (fstatat(dirfd(d.get()), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        continue;
      }
      if (only_ && !S_ISDIR(st.st_mode) && IFTODT(st.st_mode) != *only_) continue;
      std::string p = path + "/" + name;
      bool skip = false;
      std::string why = visit_(p, st, &skip);
      if (!why.empty()) return why;
      if (S_ISDIR(st.st_mode) && !skip) subdirs.push_back(name);
    }
    for (const std::string& name : subdirs) {
      std::string p = path + "/" + name;
      int sub = openat(dirfd(d.get()), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) {
        if (errno == ENOENT) continue;  // vanished
        return "cannot list " + Quote(p) + " to check it: " + ErrnoName(errno);
      }
      std::string why = Directory(p, sub, depth + 1);
      if (!why.empty()) return why;
    }
    return "";
  }

  const std::string& purpose_;
  size_t max_;
  const TreeVisitor& visit_;
  std::optional<unsigned char> only_;
  size_t seen_ = 0;
};

std::string WalkTree(const std::string& root, const std::string& purpose, size_t max, const TreeVisitor& visit,
                     std::optional<unsigned char> only = std::nullopt) {
  return TreeWalk(purpose, max, visit, only).Run(root);
}

// Why the tree under `root` cannot be denied safely, or "" if it can.
std::string CheckDeniedTree(const std::string& root) {
  return WalkTree(root, "for other names inside a writable grant; deny narrower paths", CompileWalkBounds().denied_tree,
                  [&](const std::string& p, const struct stat& st, bool*) -> std::string {
                    if (S_ISLNK(st.st_mode)) {
                      char buf[PATH_MAX];
                      ssize_t n = readlink(p.c_str(), buf, sizeof buf - 1);
                      std::string target = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
                      std::string abs = !target.empty() && target[0] == '/' ? target : Parent(p) + "/" + target;
                      ResolvedPath r = ResolvePath(abs);
                      if (!IsUnder(r.real, root)) {
                        return "holds the symlink " + Quote(p) + " -> " + Quote(target) +
                               ", which leads out of the denied directory (what is written through it lands "
                               "outside); remove the link";
                      }
                    } else if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
                      return "holds " + Quote(p) + ", which has " + std::to_string(st.st_nlink) +
                             " hard links: its contents are reachable under another name (find them with `find "
                             "-samefile`)";
                    }
                    return "";
                  });
}

// Landlock grants rights through the sandbox's path hierarchy, across mount
// points: a read-only grant whose path lies beneath a writable rule (a write
// grant, the private /tmp, any writable area ward makes) inherits
// LANDLOCK_ACCESS_FS_WRITE_FILE from it, and a read-only mount refuses writes
// to regular files, directories and symlinks (EROFS) but not the opening of
// a FIFO for writing. A host FIFO there would let the workload write into
// whatever reads it on the host, so each one must be listed in
// filesystem.unix (an inode in `listed`) or denied; otherwise the policy is
// refused, naming the grant and the FIFO.
//
// A read-only grant beneath no writable rule is not walked: no rule grants
// WRITE_FILE on its path, so landlock refuses to open its FIFOs for writing
// (EACCES; compile_test LandlockRightsOfAFifo checks the kernel does). That
// also makes the cost of the walk fall only on grants nested in writable
// areas. Without landlock (enforcement.landlock "best-effort" on a kernel
// that has none) nothing refuses it anywhere, FIFOs in read-only grants
// included: that is part of what the policy accepts losing
// (docs/policy.md), and no grant is walked.
Result<void> CheckFifosBeneathWritable(const LaunchPlan& plan, const Layout& layout,
                                       const std::set<std::pair<dev_t, ino_t>>& listed) {
  if (plan.landlock_abi == 0) return {};
  std::vector<std::string> writable;
  for (const auto* rules : {&plan.landlock, &plan.landlock_child}) {
    for (const LandlockGrant& g : *rules) {
      if (g.write) writable.push_back(g.path);
    }
  }
  const std::string why_writable = ", which the sandbox could open for writing (the grant lies inside the writable ";
  const std::string why_fifo =
      ", whose landlock rights it inherits, and a read-only mount does not stop writes to a FIFO); list it in "
      "filesystem.unix, or deny it";
  for (const LandlockGrant& g : plan.landlock) {
    if (g.write) continue;
    // The nearest writable rule above the grant, for the message.
    const std::string* area = nullptr;
    for (const auto& w : writable) {
      if (IsUnder(g.path, w) && (!area || w.size() > area->size())) area = &w;
    }
    if (!area) continue;
    const Entry* rule = layout.At(g.path);
    const std::string grant = (rule ? rule->origin : std::string("grant")) + " " + Quote(g.path) + ": ";
    struct stat st;
    if (lstat(g.path.c_str(), &st) != 0) return Error::Policy(grant + "cannot check it: " + ErrnoName(errno));
    if (S_ISFIFO(st.st_mode)) {
      if (listed.count({st.st_dev, st.st_ino})) continue;
      return Error::Policy(grant + "is a FIFO" + why_writable + Quote(*area) + why_fifo);
    }
    if (!S_ISDIR(st.st_mode)) continue;
    std::string why = WalkTree(
        g.path,
        "for FIFOs because the grant lies inside the writable " + Quote(*area) +
            "; grant narrower paths, or move the tree out of the writable area",
        CompileWalkBounds().fifo_tree,
        [&](const std::string& p, const struct stat& e, bool* skip) -> std::string {
          // A denied path is hidden (its FIFOs cannot be opened at all); a
          // writable grant nested here makes its FIFOs writable on purpose.
          const Entry* nested = layout.At(p);
          if (nested && (nested->kind == Kind::kDeny || nested->kind == Kind::kWrite)) {
            *skip = true;
            return "";
          }
          if (!S_ISFIFO(e.st_mode) || listed.count({e.st_dev, e.st_ino})) return "";
          return "holds the FIFO " + Quote(p) + why_writable + Quote(*area) + why_fifo;
        },
        DT_FIFO);
    if (!why.empty()) return Error::Policy(grant + why);
  }
  return {};
}

// "a directory", "a regular file", ... for messages.
std::string FileType(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISLNK(mode)) return "a symlink";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "a file of unknown type";
}

}  // namespace

WalkBounds& CompileWalkBounds() {
  static WalkBounds bounds;
  return bounds;
}

std::vector<std::string> SystemBaselinePaths() { return {std::begin(kSystemPaths), std::end(kSystemPaths)}; }

ResolvedPath ResolvePath(const std::string& path, ResolveCache* cache) {
  ResolveCache local;
  if (!cache) cache = &local;
  ResolvedPath r;
  std::deque<std::string> todo;
  auto push_components = [&](const std::string& p, bool front) {
    const std::deque<std::string> comps = PathComponents(p);
    if (front) todo.insert(todo.begin(), comps.begin(), comps.end());
    else todo.insert(todo.end(), comps.begin(), comps.end());
  };
  push_components(path, false);
  std::string cur;  // real so far ("" is "/")
  int links = 0;
  r.exists = true;
  while (!todo.empty()) {
    std::string c = todo.front();
    todo.pop_front();
    if (c == ".") continue;
    if (c == "..") {
      cur = cur.empty() ? "" : cur.substr(0, cur.rfind('/'));
      continue;
    }
    std::string next = cur + "/" + c;
    if (!r.exists) {
      cur = next;
      continue;
    }
    const ResolveCache::Entry& st = cache->Get(next);
    if (st.err && !S_ISLNK(st.mode)) {
      if (st.err != ENOENT && st.err != ENOTDIR) r.error = st.err;
      r.exists = false;
      cur = next;
      continue;
    }
    if (S_ISLNK(st.mode)) {
      if (++links > 40) {
        r.error = ELOOP;
        r.exists = false;
        return r;
      }
      if (st.err) {
        r.error = st.err;
        r.exists = false;
        return r;
      }
      const std::string& target = st.link;
      r.links.emplace_back(next, target);
      if (!target.empty() && target[0] == '/') cur = "";
      push_components(target, true);
      continue;
    }
    cur = next;
    r.is_dir = S_ISDIR(st.mode);
  }
  r.real = cur.empty() ? "/" : cur;
  return r;
}


void NotifyCalls(LaunchPlan* plan, bool files) {
  if (plan->egress && !plan->egress->connect_notify.empty()) {
    plan->egress->connect_notify = BuildNetworkFilter(NetworkFilter::kEgress, true, files);
  } else {
    plan->seccomp_net = BuildNetworkFilter(plan->new_net ? NetworkFilter::kIsolated : NetworkFilter::kHost, true, files);
  }
}

// A grant of `real` (rule `origin`, written `path`) at or beneath one of
// ward's state directories (CompilePlan's `ward_state`).
static Result<void> RefuseWardState(const std::string& origin, const std::string& path, const std::string& real,
                             const std::vector<std::string>& ward_state) {
  for (const auto& d : ward_state) {
    if (real != d && !IsUnder(real, d)) continue;
    return Error::Policy(origin + " " + Quote(path) + ": " + (real != path ? "resolves to " + Quote(real) + ", which " : "") +
                         "lies in " + Quote(d) +
                         ", where ward keeps its own state (held sandboxes, the audit trail); no sandbox may be granted it");
  }
  return {};
}

Result<LaunchPlan> CompilePlan(const Policy& policy, const std::vector<std::string>& argv_in, int landlock_abi,
                               const std::vector<std::string>& ward_state) {
  LaunchPlan plan;
  plan.landlock_abi = landlock_abi;
  plan.new_net = policy.network != NetworkMode::kHost;
  if (policy.network == NetworkMode::kEgress) {
    plan.egress = BuildEgressNetnsPlan();
    // Direct sockets (net/connect_notify.h) are safe only while landlock
    // keeps the workload from connecting TCP sockets itself (ABI 4); without
    // it every connection goes through the proxy.
    if (landlock_abi < 4) plan.egress->connect_notify.clear();
  }
  // The network filter and its listener: the egress one, or this one (the
  // unix gate and the connect() server need it in every mode).
  if (!plan.egress || plan.egress->connect_notify.empty()) {
    plan.seccomp_net = BuildNetworkFilter(plan.new_net ? NetworkFilter::kIsolated : NetworkFilter::kHost);
  }
  Layout layout(plan);
  std::vector<std::pair<std::string, std::string>> links;
  std::vector<std::string> sources;
  // Every symlink met while resolving a user rule, with the rule.
  struct RuleLink {
    std::string origin, path, at, target;
  };
  std::vector<RuleLink> rule_links;
  std::vector<std::string> writable;  // real paths of the writable grants
  struct FileRule {
    std::string origin, path, real;
    Kind kind;
    nlink_t nlink;
  };
  std::vector<FileRule> file_rules;
  struct DirRule {
    std::string origin, path, real;
  };
  std::vector<DirRule> denied_dirs;
  ResolveCache cache;

  auto grant = [&](const std::string& path, Kind kind, const std::string& origin, bool baseline) -> Result<void> {
    ResolvedPath r = ResolvePath(path, &cache);
    if (r.error) return Error::Policy(origin + " " + Quote(path) + ": cannot resolve: " + ErrnoName(r.error));
    if (!r.exists) {
      if (baseline || kind == Kind::kDeny) return {};  // nothing to grant, nothing to hide
      return Error::Policy(origin + " " + Quote(path) + ": does not exist" +
                           (r.real != path ? " (resolves to " + Quote(r.real) + ")" : ""));
    }
    if (kind != Kind::kDeny && (IsUnder(r.real, "/proc") || IsUnder(r.real, "/dev") || r.real == "/")) {
      return Error::Policy(origin + " " + Quote(path) + ": resolves to " + Quote(r.real) +
                           ", which cannot be granted (the sandbox has its own /proc and /dev; / would expose the whole host)");
    }
    if (kind != Kind::kDeny) WARD_TRY(RefuseWardState(origin, path, r.real, ward_state));
    for (auto& l : r.links) {
      if (!baseline) rule_links.push_back({origin, path, l.first, l.second});
      links.push_back(l);
    }
    if (kind != Kind::kDeny) sources.push_back(r.real);
    if (kind == Kind::kWrite) writable.push_back(r.real);
    if (!baseline && r.is_dir && kind == Kind::kDeny) denied_dirs.push_back({origin, path, r.real});
    if (!baseline && !r.is_dir && (kind == Kind::kDeny || kind == Kind::kRead)) {
      struct stat st;
      if (stat(r.real.c_str(), &st) == 0) file_rules.push_back({origin, path, r.real, kind, st.st_nlink});
    }
    return layout.Add({kind, r.real, origin, r.is_dir, baseline});
  };

  (void)layout.Add({Kind::kProc, "/proc", "sandbox", true, false});
  (void)layout.Add({Kind::kDev, "/dev", "sandbox", true, false});
  if (policy.filesystem.private_tmp) {
    WARD_TRY(layout.Add({Kind::kTmp, "/tmp", "sandbox", true, false}));
  }
  // The private home, at the caller's home path as it really is (a
  // symlinked /home is recreated inside like any link met by a rule). A
  // grant of the home itself replaces it (Layout::Add), as for /tmp.
  std::string home;
  if (const std::string& h = policy.filesystem.private_home; !h.empty()) {
    ResolvedPath r = ResolvePath(h, &cache);
    home = r.exists && !r.error ? r.real : h;
    if (r.exists && !r.is_dir) return Error::Policy("/filesystem/home " + Quote(h) + ": not a directory");
    for (auto& l : r.links) links.push_back(l);
    if (home == "/" || IsUnder(home, "/proc") || IsUnder(home, "/dev")) {
      return Error::Policy("/filesystem/home " + Quote(h) + ": resolves to " + Quote(home) + ", which cannot be a home");
    }
    if (!(home == "/tmp" && policy.filesystem.private_tmp)) {
      Entry e{Kind::kTmp, home, "/filesystem/home", true, false};
      e.tmp_mode = kHomeMode;
      WARD_TRY(layout.Add(std::move(e)));
    }
  }
  if (policy.filesystem.system) {
    for (const char* p : kSystemPaths) WARD_TRY(grant(p, Kind::kRead, "system baseline", true));
  }
  if (policy.network == NetworkMode::kHost) {
    for (const char* p : kHostNetworkPaths) WARD_TRY(grant(p, Kind::kRead, "network host", true));
  }
  const auto& fs = policy.filesystem;
  // Each rule, a pattern expanded to what it names now (glob.h). A grant
  // must name something; a deny that names nothing under a grant is
  // probably a typo, and said so.
  size_t glob_budget = kGlobBudget;
  auto rules = [&](const std::vector<std::string>& list, Kind kind, const char* field) -> Result<void> {
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string origin = std::string("/filesystem/") + field + "/" + std::to_string(i);
      const bool pattern = HasGlob(list[i]);
      std::vector<std::string> matches;
      if (kind == Kind::kDeny) {
        auto d = ExpandDeny(fs, i, &glob_budget);
        if (!d) return Error::Policy(origin + ": " + d.error().message);
        if (!d->warning.empty()) plan.warnings.push_back(d->warning);
        matches = std::move(d->matches);
      } else if (pattern) {
        auto m = ExpandRule(list[i], GlobUse::kGrant, &glob_budget);
        if (!m) return Error::Policy(origin + ": " + m.error().message);
        if (m->empty()) {
          return Error::Policy(origin + " " + Quote(list[i]) + ": matches nothing; a grant must name something that exists");
        }
        matches = std::move(*m);
      }
      // A path is granted as written (grant() says why one that is
      // missing cannot be); a pattern, as each of its matches.
      if (!pattern) {
        WARD_TRY(grant(list[i], kind, origin, false));
        continue;
      }
      // A grant pattern's matches hold no symlink past the first wildcard
      // (glob.h); one that resolves through a link now had it put there
      // since the expansion (a concurrent sandbox swapping a directory for
      // a link): refused, never followed. The literal part before the
      // wildcard resolves as any path does.
      const std::string base = PatternBase(list[i]);
      const std::string real_base = kind != Kind::kDeny ? ResolvePath(base, &cache).real : "";
      for (const auto& m : matches) {
        if (kind != Kind::kDeny) {
          const std::string rest = base == "/" ? m : m.substr(base.size());  // "/a/out" of "/w/ws/a/out"
          const std::string expected = real_base == "/" ? rest : real_base + rest;
          const std::string real = ResolvePath(m, &cache).real;
          if (real != expected) {
            return Error::Policy(origin + " (" + Quote(list[i]) + ") " + Quote(m) + ": now resolves to " + Quote(real) +
                                 " through a symlink that was not there when the pattern was expanded (a concurrent "
                                 "writer?); not granted");
          }
        }
        WARD_TRY(grant(m, kind, origin + " (" + Quote(list[i]) + ")", false));
      }
    }
    return {};
  };
  WARD_TRY(rules(fs.read, Kind::kRead, "read"));
  WARD_TRY(rules(fs.write, Kind::kWrite, "write"));
  WARD_TRY(rules(fs.deny, Kind::kDeny, "deny"));
  for (const auto& d : ward_state) WARD_TRY(grant(d, Kind::kDeny, "ward's own state", false));

  // filesystem.unix: each entry names one socket or FIFO as the object it is
  // now. The unix gate and landlock act on that inode, not on the name.
  std::set<std::pair<dev_t, ino_t>> listed;
  std::vector<Entry> unix_binds;
  for (size_t i = 0; i < fs.unix_endpoints.size(); ++i) {
    const std::string origin = "/filesystem/unix/" + std::to_string(i);
    const std::string& path = fs.unix_endpoints[i];
    ResolvedPath r = ResolvePath(path, &cache);
    if (r.error) return Error::Policy(origin + " " + Quote(path) + ": cannot resolve: " + ErrnoName(r.error));
    struct stat st;
    int err = lstat(r.real.c_str(), &st) == 0 ? 0 : errno;
    if (!r.exists && err == 0) err = ENOENT;
    if (err) {
      return Error::Policy(origin + " " + Quote(path) + ": " +
                           (r.real != path ? "resolves to " + Quote(r.real) + ", " : "") + "stat: " + ErrnoName(err) +
                           "; a listed socket or FIFO must exist when the sandbox starts");
    }
    if (IsUnder(r.real, "/proc") || IsUnder(r.real, "/dev")) {
      return Error::Policy(origin + " " + Quote(path) + ": resolves to " + Quote(r.real) +
                           ", which cannot be granted (the sandbox has its own /proc and /dev)");
    }
    if (!S_ISSOCK(st.st_mode) && !S_ISFIFO(st.st_mode)) {
      return Error::Policy(origin + " " + Quote(path) + ": is not a unix socket or FIFO (" +
                           (r.real != path ? Quote(r.real) + " is " : "it is ") + FileType(st.st_mode) + ")");
    }
    // Deny beats unix, by the most specific rule as for every path: a
    // socket or FIFO the policy hides cannot also be one it lets the
    // workload use. (The parser says so too where the texts show it; here
    // symlinks are resolved.)
    const Entry* owner = layout.Owner(r.real, false);
    if (owner && owner->kind == Kind::kDeny) {
      return Error::Policy(origin + " " + Quote(path) + ": lies under the denied path " + Quote(owner->real) + " (" +
                           owner->origin + "); a deny beats filesystem.unix: remove one of the two");
    }
    for (auto& l : r.links) {
      rule_links.push_back({origin, path, l.first, l.second});
      links.push_back(l);
    }
    WARD_TRY(RefuseWardState(origin, path, r.real, ward_state));
    sources.push_back(r.real);
    if (!listed.insert({st.st_dev, st.st_ino}).second) continue;  // the same object, through another name
    plan.unix_endpoints.push_back({r.real, st.st_dev, st.st_ino, S_ISFIFO(st.st_mode)});
    // Visible at its own path, so its directory need not be granted: a
    // read-only bind of this one file (as a read grant of a file makes),
    // unless a grant already shows it.
    if (!layout.Visible(r.real)) unix_binds.push_back({Kind::kRead, r.real, origin, false, false});
  }
  for (Entry& e : unix_binds) WARD_TRY(layout.Add(std::move(e)));

  // A rule must mean the object the user named. A symlink inside a writable
  // grant may have been planted by an earlier run (`ln -s /etc a/docs`): a
  // rule resolved through one is refused, not followed. A denied file with
  // another name (a hard link) is readable through that name; a read-only
  // file inside a writable grant with another name there is writable
  // through it: both refused.
  for (const RuleLink& l : rule_links) {
    for (const auto& w : writable) {
      if (!IsUnder(l.at, w)) continue;
      return Error::Policy(l.origin + " " + Quote(l.path) + ": resolves through the symlink " + Quote(l.at) + " -> " +
                           Quote(l.target) + ", which lies inside the writable grant " + Quote(w) +
                           " (a sandbox could have planted it); name the target itself, or remove the link");
    }
  }
  for (const FileRule& f : file_rules) {
    if (f.nlink <= 1) continue;
    bool in_writable = std::any_of(writable.begin(), writable.end(), [&](const std::string& w) { return IsUnder(f.real, w); });
    if (f.kind == Kind::kDeny || in_writable) {
      return Error::Policy(f.origin + " " + Quote(f.path) + ": the file has " + std::to_string(f.nlink) +
                           " hard links, so its contents are reachable under another name" +
                           (f.kind == Kind::kDeny ? "" : " inside a writable grant") +
                           " (find them with `find -samefile`; give the file a single name)");
    }
  }
  // A denied directory inside a writable grant is checked the same way, entry
  // by entry: a file in it with another name, or a symlink in it that leads
  // out of it (the secret written through it would land outside), may have
  // been planted by an earlier run.
  for (const DirRule& d : denied_dirs) {
    if (!std::any_of(writable.begin(), writable.end(), [&](const std::string& w) { return IsUnder(d.real, w); })) continue;
    std::string why = CheckDeniedTree(d.real);
    if (!why.empty()) return Error::Policy(d.origin + " " + Quote(d.path) + ": " + why);
  }

  plan.base = ChooseBase(sources);
  if (plan.base.empty()) return Error::Setup("no host directory is free to hold the sandbox's root (tried /tmp, /mnt, /run, /var/tmp, /opt, /srv, /media)");

  layout.Emit();
  WARD_TRY(CheckFifosBeneathWritable(plan, layout, listed));
  // A listed FIFO may be opened for writing wherever it is: landlock grants
  // WRITE_FILE on its inode. (A socket needs no landlock right: landlock ABI
  // 7 does not govern connect(); the unix gate does. The rule is harmless.)
  // After the check above, which reads the writable rules of the plan.
  for (const UnixEndpoint& u : plan.unix_endpoints) plan.landlock.push_back({u.path, true, false});
  for (const auto& [at, content] : links) layout.Symlink(at, content);

  // Identity: the caller's uid and gid, mapped to themselves; for a root
  // caller, uid 0 inside is an unprivileged host uid (enforce/idmap.h).
  const uid_t uid = getuid();
  const gid_t gid = getgid();
  plan.uid_map = std::to_string(uid) + " " + std::to_string(uid) + " 1\n";
  plan.gid_map = std::to_string(gid) + " " + std::to_string(gid) + " 1\n";
  if (uid == 0) {
    auto host = SandboxHostUid();
    if (!host) return host.error();
    plan.host_uid = *host;
    plan.uid_map = plan.gid_map = RootCallerIdMap(*host);
  }
  const char* user = getenv("USER");
  std::string name = uid == 0 ? "root" : (user && *user ? user : "user");
  std::string passwd = "root:x:0:0:root:/root:/bin/sh\n";
  std::string group = "root:x:0:\n";
  if (uid != 0) {
    passwd += name + ":x:" + std::to_string(uid) + ":" + std::to_string(gid) + "::" + (home.empty() ? "/tmp" : home) +
              ":/bin/sh\n";
  }
  if (gid != 0) group += name + ":x:" + std::to_string(gid) + ":\n";
  passwd += "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
  group += "nogroup:x:65534:\n";
  layout.Synthesize("/etc/passwd", passwd);
  layout.Synthesize("/etc/group", group);
  layout.Synthesize("/etc/hostname", "ward\n");
  if (!home.empty()) layout.Seed(home, home + "/.gitconfig", SeedGitConfig(policy.filesystem.private_home, name));
  if (policy.network != NetworkMode::kHost) layout.Synthesize("/etc/hosts", "127.0.0.1 localhost ward\n::1 localhost ip6-localhost ip6-loopback\n");
  if (policy.network == NetworkMode::kEgress) {
    // Any resolver address would do (every port-53 flow is answered by
    // ward); the gateway is one that exists on every host. No search
    // domains: names are asked as written.
    layout.Synthesize("/etc/resolv.conf", "nameserver 169.254.77.1\noptions edns0\n");
  }
  plan.landlock_child.push_back({"/", false, true});
  layout.Finish();

  // Working directory.
  if (policy.process.cwd) {
    ResolvedPath r = ResolvePath(*policy.process.cwd, &cache);
    // "/" is the sandbox's own root, always there.
    if (r.real != "/" && (!r.exists || !r.is_dir || !(layout.Visible(r.real) || layout.LeadsToGrant(r.real)))) {
      return Error::Policy("/process/cwd " + Quote(*policy.process.cwd) + ": not a directory visible in the sandbox");
    }
    plan.cwd = r.real;
  } else {
    // The caller's working directory, as with any command; never silently
    // another one (a build run from a directory the policy forgot would
    // run from / and go wrong in ways the user cannot see).
    char buf[PATH_MAX];
    if (!getcwd(buf, sizeof buf)) {
      return Error::Policy(std::string("the current directory: getcwd: ") + ErrnoName(errno) +
                           "; choose the working directory with process.cwd or --cwd");
    }
    ResolvedPath r = ResolvePath(buf, &cache);
    if (r.real == "/" || (r.exists && layout.Visible(r.real))) {
      plan.cwd = r.real;
    } else if (!home.empty() && layout.Visible(home)) {
      // A private home is the sandbox's own place to be (the minimal
      // profile shows no workspace at all): said, not silent.
      plan.warnings.push_back("the current directory " + Quote(buf) +
                              " is not visible in the sandbox; the command runs in the private home " + Quote(home) +
                              " (grant the directory, --read ., or choose one with --cwd)");
      plan.cwd = home;
    } else {
      return Error::Policy("the current directory " + Quote(buf) +
                           " is not visible in the sandbox: grant it (filesystem.read, --read .) or choose the "
                           "working directory with process.cwd or --cwd");
    }
  }

  // Environment: nothing unless inherited or set.
  const auto& env = policy.process.env;
  std::string path_var;
  for (const auto& n : env.inherit) {
    const char* v = getenv(n.c_str());
    if (!v) continue;
    plan.envp.push_back(n + "=" + v);
    if (n == "PATH") path_var = v;
  }
  for (const auto& [n, v] : env.set) {
    plan.envp.push_back(n + "=" + v);
    if (n == "PATH") path_var = v;
  }

  if (policy.network == NetworkMode::kEgress) {
    // Tools that insist on a proxy get ward's, which applies the same rules
    // (every other connection is intercepted anyway). A value the policy
    // sets explicitly is kept; an inherited one (the host's proxy, which the
    // sandbox could not reach) is replaced.
    static const char* const kProxyVars[] = {"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"};
    for (const char* var : kProxyVars) {
      if (env.set.count(var)) continue;
      std::string prefix = std::string(var) + "=";
      std::erase_if(plan.envp, [&](const std::string& e) { return e.starts_with(prefix); });
      plan.envp.push_back(prefix + "http://169.254.77.1:3128");
    }
    if (!env.set.count("NO_PROXY") && !env.set.count("no_proxy")) {
      std::erase_if(plan.envp, [](const std::string& e) { return e.starts_with("NO_PROXY=") || e.starts_with("no_proxy="); });
      plan.envp.push_back("NO_PROXY=localhost,127.0.0.1,::1");
      plan.envp.push_back("no_proxy=localhost,127.0.0.1,::1");
    }
  }

  // Command.
  std::vector<std::string> argv = argv_in.empty() ? policy.process.argv : argv_in;
  if (argv.empty()) return Error::Usage("no command: give one after `--` or in process.argv");
  if (policy.process.shell) {
    // Like ssh: the words are joined with spaces into one script.
    std::string script = argv[0];
    for (size_t i = 1; i < argv.size(); ++i) script += " " + argv[i];
    argv = {"/bin/sh", "-c", script};
  }
  plan.argv = argv;
  if (argv[0].find('/') != std::string::npos) {
    plan.exec_candidates.push_back(argv[0]);
  } else {
    if (path_var.empty()) path_var = "/usr/local/bin:/usr/bin:/bin";
    for (const auto& dir : PathEntries(path_var)) {
      // POSIX: an empty entry is the working directory.
      plan.exec_candidates.push_back((dir.empty() ? "." : dir) + "/" + argv[0]);
    }
    // The command the caller means is the one its own PATH finds. If the
    // sandbox does not show that one, say so, naming what to grant, rather
    // than fail with a bare "not found" or run another program of the same
    // name (pyenv's python3 swapped for /usr/bin/python3).
    const char* caller_path = getenv("PATH");
    const std::string mine = FindOnPath(argv[0], caller_path ? caller_path : "");
    auto shown = [&](const std::string& p) {
      ResolvedPath r = ResolvePath(p, &cache);
      return r.exists && !r.error && layout.Visible(r.real) && access(r.real.c_str(), X_OK) == 0;
    };
    if (!mine.empty() && !shown(mine)) {
      const char* caller_home = getenv("HOME");
      const std::string dir = GrantFor(mine, caller_home ? caller_home : "");
      std::string inside;
      for (const auto& c : plan.exec_candidates) {
        if (c[0] == '/' && shown(c)) {
          inside = c;
          break;
        }
      }
      const std::string what = "`" + argv[0] + "` is " + mine + " on your PATH";
      if (inside.empty()) {
        return Error{Error::Code::kNotFound, what + ", which the sandbox does not show: grant " + Quote(dir) +
                                                 " (filesystem.read, --read " + dir + ") to use it"};
      }
      plan.warnings.push_back(what + " but " + inside + " in the sandbox, which does not show the first: grant " +
                              Quote(dir) + " (filesystem.read, --read " + dir + ") to run yours");
    }
  }

  // Limits that are rlimits in every case.
  auto rl = [&](int res, int64_t v) { plan.rlimits.push_back({res, {static_cast<rlim_t>(v), static_cast<rlim_t>(v)}}); };
  const auto& lim = policy.limits;
  if (lim.cpu_seconds) {
    // Soft limit: SIGXCPU (a clear reason, 128+24); the hard limit one
    // second later kills with SIGKILL if SIGXCPU was caught and ignored.
    plan.rlimits.push_back({RLIMIT_CPU, {static_cast<rlim_t>(*lim.cpu_seconds), static_cast<rlim_t>(*lim.cpu_seconds + 1)}});
  }
  if (lim.open_files) rl(RLIMIT_NOFILE, *lim.open_files);
  if (lim.file_size_mib) rl(RLIMIT_FSIZE, *lim.file_size_mib * 1024 * 1024);
  rl(RLIMIT_CORE, 0);  // no core dumps of sandboxed memory on the host
  plan.timeout_ms = policy.process.timeout_ms.value_or(0);
  return plan;
}

}  // namespace ward
