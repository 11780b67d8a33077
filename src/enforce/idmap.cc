#include "enforce/idmap.h"

#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "base/errors.h"
#include "base/fd_passing.h"
#include "base/no_symlinks.h"

namespace ward {

namespace {

constexpr uid_t kDefaultBase = 1879048192;  // 0x70000000
constexpr uint64_t kDefaultCount = 65536;

Result<void> WriteProcFile(pid_t pid, const char* name, const std::string& text) {
  std::string path = "/proc/" + std::to_string(pid) + "/" + name;
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return SysError("open", path);
  if (write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return SysError("write", path + " \"" + text.substr(0, text.size() - 1) + "\"");
  }
  return {};
}

}  // namespace

Result<uid_t> SandboxHostUid() {
  auto r = SandboxUidRange();
  if (!r) return r.error();
  return r->base;
}

Result<UidRange> SandboxUidRange() {
  const char* env = getenv("WARD_UID_RANGE");
  if (!env || !*env) return UidRange{kDefaultBase, kDefaultCount};
  std::string text = env;
  char* end = nullptr;
  errno = 0;
  unsigned long long base = std::strtoull(text.c_str(), &end, 10);
  unsigned long long count = kDefaultCount;
  bool ok = end != text.c_str() && errno == 0;
  if (ok && *end == ':') {
    char* end2 = nullptr;
    count = std::strtoull(end + 1, &end2, 10);
    ok = end2 != end + 1 && *end2 == '\0';
  } else if (ok) {
    ok = *end == '\0';
  }
  // Never uid 0, never the invalid (uid_t)-1 or the overflow id 65534's
  // neighbourhood below 1000 (system accounts).
  if (!ok || base < 1000 || count == 0 || base + count > 0xfffffffeULL) {
    return Error::Usage("WARD_UID_RANGE \"" + text + "\": expected BASE or BASE:COUNT, BASE >= 1000, the range below 4294967295");
  }
  return UidRange{static_cast<uid_t>(base), static_cast<uint32_t>(count)};
}

Result<void> WriteIdMaps(pid_t pid, const LaunchPlan& plan) {
  WARD_TRY(WriteProcFile(pid, "uid_map", plan.uid_map));
  return WriteProcFile(pid, "gid_map", plan.gid_map);
}

std::string RootCallerIdMap(uid_t host_id) { return "0 " + std::to_string(host_id) + " 1\n"; }

Result<UniqueFd> MakeMappedUserns(uid_t host_id) {
  int sync[2];
  if (pipe2(sync, O_CLOEXEC) != 0) return SysError("pipe2", "idmap");
  UniqueFd rd(sync[0]), wr(sync[1]);
  // A child in a new user namespace that waits until its maps are written
  // and the namespace is held by a descriptor, then exits.
  pid_t pid = static_cast<pid_t>(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, nullptr, nullptr, nullptr, nullptr));
  if (pid < 0) return SysError("clone", "CLONE_NEWUSER (idmap namespace)");
  if (pid == 0) {
    wr.Reset();
    char c;
    (void)!read(rd.get(), &c, 1);
    _exit(0);
  }
  rd.Reset();
  auto reap = [&] {
    wr.Reset();
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  };
  const std::string map = RootCallerIdMap(host_id);
  Result<void> r = WriteProcFile(pid, "uid_map", map);
  if (r) r = WriteProcFile(pid, "gid_map", map);
  if (!r) {
    reap();
    return r.error();
  }
  std::string ns = "/proc/" + std::to_string(pid) + "/ns/user";
  UniqueFd fd(open(ns.c_str(), O_RDONLY | O_CLOEXEC));
  int err = errno;
  reap();
  if (!fd.valid()) return Error::Setup("open \"" + ns + "\": " + ErrnoName(err));
  return fd;
}

Result<void> GiveIdentity(pid_t pid, const LaunchPlan& plan, int channel) {
  WARD_TRY(WriteIdMaps(pid, plan));
  // The sandbox's own user namespace maps exactly what the grants need.
  std::string ns = "/proc/" + std::to_string(pid) + "/ns/user";
  UniqueFd userns(open(ns.c_str(), O_RDONLY | O_CLOEXEC));
  if (!userns.valid()) return SysError("open", ns);
  auto trees = CloneIdmappedTrees(plan, userns.get());
  if (!trees) return trees.error();
  // Batches of (mount op index, tree) pairs, then "G".
  int32_t index[kMaxPassedFds];
  int fds[kMaxPassedFds];
  size_t n = 0;
  auto flush = [&]() -> Result<void> {
    if (n == 0) return {};
    if (int e = SendFdsWithData(channel, fds, n, index, sizeof(int32_t) * n)) {
      return Error::Setup("sendmsg (id-mapped grants): " + ErrnoName(e));
    }
    n = 0;
    return {};
  };
  for (size_t i = 0; i < trees->size(); ++i) {
    if (!(*trees)[i].valid()) continue;
    index[n] = static_cast<int32_t>(i);
    fds[n++] = (*trees)[i].get();
    if (n == kMaxPassedFds) WARD_TRY(flush());
  }
  WARD_TRY(flush());
  if (write(channel, "G", 1) != 1) return SysError("write", "id maps ready");
  return {};
}

int ReceiveIdentity(int channel, int* trees, size_t ops) {
  for (;;) {
    int32_t index[kMaxPassedFds];
    int fds[kMaxPassedFds];
    size_t count = 0, got = 0;
    if (int e = ReceiveFdsWithData(channel, fds, kMaxPassedFds, &count, index, sizeof index, &got)) return e;
    if (got == 0) return EPIPE;
    if (got == 1 && count == 0 && reinterpret_cast<const char*>(index)[0] == 'G') return 0;
    if (got % sizeof(int32_t) != 0 || got / sizeof(int32_t) != count) return EPROTO;
    for (size_t k = 0; k < count; ++k) {
      if (index[k] < 0 || static_cast<size_t>(index[k]) >= ops) return EPROTO;
      trees[index[k]] = fds[k];
    }
  }
}

Result<std::vector<UniqueFd>> CloneIdmappedTrees(const LaunchPlan& plan, int userns) {
  std::vector<UniqueFd> trees(plan.mounts.size());
  size_t wanted = 0;
  for (const MountOp& op : plan.mounts) wanted += op.idmap ? 1 : 0;
  // One descriptor per grant until clone(): make room for large policies.
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < wanted + 64 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
  for (size_t i = 0; i < plan.mounts.size(); ++i) {
    const MountOp& op = plan.mounts[i];
    if (!op.idmap) continue;
    // No symlink followed on the way (base/no_symlinks.h).
    UniqueFd source(OpenNoSymlinks(op.source.c_str(), O_PATH));
    if (!source.valid()) return SysError("openat2 (RESOLVE_NO_SYMLINKS)", op.source);
    UniqueFd tree(static_cast<int>(syscall(SYS_open_tree, source.get(), "",
                                           OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH)));
    if (!tree.valid()) return SysError("open_tree", op.source);
    mount_attr a{};
    a.attr_set = op.attr_set | MOUNT_ATTR_IDMAP;
    a.userns_fd = static_cast<uint64_t>(userns);
    a.propagation = MS_PRIVATE;
    if (syscall(SYS_mount_setattr, tree.get(), "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) != 0) {
      int err = errno;
      const bool writable = !(op.attr_set & MOUNT_ATTR_RDONLY);
      if (err == EINVAL && !writable) {
        // A plain read-only copy instead (made here: the sandbox's uid may
        // not be able to traverse the caller's directories to bind it).
        mount_attr plain{};
        plain.attr_set = op.attr_set;
        plain.propagation = MS_PRIVATE;
        if (syscall(SYS_mount_setattr, tree.get(), "", AT_EMPTY_PATH | AT_RECURSIVE, &plain, sizeof plain) != 0) {
          return SysError("mount_setattr", op.source);
        }
        trees[i] = std::move(tree);
        continue;
      }
      return Error::Setup("mount_setattr \"" + op.source + "\" MOUNT_ATTR_IDMAP: " + ErrnoName(err) +
                          (err == EINVAL ? " (this filesystem cannot be id-mapped, so a root caller's sandbox "
                                           "could not write there as the caller; grant it read-only)"
                                         : ""));
    }
    trees[i] = std::move(tree);
  }
  return trees;
}

}  // namespace ward
