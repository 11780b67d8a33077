#include "enforce/file_view.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/path.h"

namespace ward {
namespace {

bool Writes(FileOp op) { return op == FileOp::kWrite || op == FileOp::kCreate || op == FileOp::kRemove; }

// Whether the call acts on what a last component that is a link leads to
// (open, truncate, chmod) or on the link itself (lstat and the stat family
// as `ls -l` calls them, readlink, unlink, rename): then only the
// directory's links are followed.
bool FollowsLast(FileOp op) { return op == FileOp::kRead || op == FileOp::kWrite || op == FileOp::kCreate; }

// The host's `path` (absolute, normalized), links followed (the last
// component's only if the call follows it): "" if the host has nothing
// there. A new name (kCreate) is its resolved directory joined to it. A
// path the supervisor may not look into (EACCES) is taken as named: it may
// exist, and the sandbox reaches it no more than ward does.
std::string HostReal(const std::string& path, FileOp op) {
  char buf[PATH_MAX];
  if (FollowsLast(op)) {
    if (realpath(path.c_str(), buf)) return buf;
    if (errno == EACCES) return path;
    if (op != FileOp::kCreate) return "";
  } else {
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) return errno == EACCES ? path : "";
  }
  if (path == "/") return "/";
  const std::string dir = Parent(path);
  if (!realpath(dir.c_str(), buf)) return errno == EACCES ? path : "";
  const std::string name = path.substr(path.rfind('/') + 1);
  return std::string(buf) == "/" ? "/" + name : std::string(buf) + "/" + name;
}

// Whether the host's `path` passes through a symbolic link (one path walk:
// RESOLVE_NO_SYMLINKS). A new name (kCreate) that does not exist yet, or a
// call on the link itself: its directory's.
bool ThroughLink(const std::string& path, FileOp op) {
  if (!FollowsLast(op) && path != "/") return ThroughLink(Parent(path), FileOp::kRead);
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC;  // no O_NOFOLLOW: a last component that is a link is one too
  how.resolve = RESOLVE_NO_SYMLINKS;
  int fd = static_cast<int>(syscall(SYS_openat2, AT_FDCWD, path.c_str(), &how, sizeof how));
  if (fd >= 0) {
    close(fd);
    return false;
  }
  if (errno == ENOENT && op == FileOp::kCreate && path != "/") return ThroughLink(Parent(path), FileOp::kRead);
  return errno == ELOOP;
}

bool HostHas(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 || errno == EACCES;
}

}  // namespace

const ViewRule* FileJudge::RuleFor(const std::string& path) const {
  for (std::string p = path;; p = Parent(p)) {
    auto it = std::lower_bound(view_.begin(), view_.end(), p,
                               [](const ViewRule& r, const std::string& key) { return r.path < key; });
    if (it != view_.end() && it->path == p) return &*it;
    if (p == "/") return nullptr;
  }
}

bool FileJudge::LeadsToRule(const std::string& path) const {
  const std::string prefix = path == "/" ? "/" : path + "/";
  auto it = std::lower_bound(view_.begin(), view_.end(), prefix,
                             [](const ViewRule& r, const std::string& key) { return r.path < key; });
  return it != view_.end() && it->path.compare(0, prefix.size(), prefix) == 0;
}

std::string FileJudge::ByName(const std::string& path, FileOp op, const ViewRule** rule, bool* own) const {
  const ViewRule* r = RuleFor(path);
  *rule = r;
  *own = false;
  if (!r) return !Writes(op) && LeadsToRule(path) ? "" : "not granted";
  switch (r->access) {
    case ViewRule::Access::kWrite:
      return "";
    case ViewRule::Access::kRead:
      return Writes(op) ? "read-only" : "";
    case ViewRule::Access::kHidden:
      // A look at the mask itself (`ls -l` of its directory) shows nothing
      // of what it hides.
      return op == FileOp::kStat && path == r->path ? "" : "denied by a rule";
    case ViewRule::Access::kPrivate:
      *own = true;
      return "";
  }
  return "not granted";
}

bool FileJudge::SandboxHas(const std::string& path, int tid) {
  if (!root_.valid()) {
    if (tid <= 0) return true;
    root_.Reset(open(("/proc/" + std::to_string(tid) + "/root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root_.valid()) return true;  // cannot tell: not reported
  }
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC | O_NOFOLLOW;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  const char* rel = path == "/" ? "." : path.c_str() + 1;
  int fd = static_cast<int>(syscall(SYS_openat2, root_.get(), rel, &how, sizeof how));
  if (fd >= 0) {
    close(fd);
    return true;
  }
  return errno != ENOENT && errno != ENOTDIR;
}

std::optional<FileDenial> FileJudge::Judge(const FileAccess& a) {
  const ViewRule* rule = nullptr;
  bool own = false;
  std::string why = ByName(a.path, a.op, &rule, &own);
  FileDenial d;
  if (why.empty() && own) {
    // The sandbox's own area: what it writes there is its own; a read of a
    // name the host has and the sandbox does not looked for the host's file.
    if (Writes(a.op) || !HostHas(a.path) || SandboxHas(a.path, a.host_tid)) return std::nullopt;
    why = "hidden by the sandbox's private " + rule->path;
  } else if (!why.empty() || ThroughLink(a.path, a.op)) {
    // Not granted by its name, or granted by a name that passes through a
    // link (planted in a grant: `ln -s ~/.ssh/id_rsa key`): judged by where
    // it leads on the host.
    const std::string real = HostReal(a.path, a.op);
    if (real.empty()) return std::nullopt;  // names nothing on the host
    if (real != a.path) {
      why = ByName(real, a.op, &rule, &own);
      if (why.empty()) return std::nullopt;  // a link to what is granted, or to the sandbox's own
      d.resolved = real;
    }
    if (why.empty()) return std::nullopt;
  } else {
    return std::nullopt;
  }
  d.access = a;
  d.reason = std::move(why);
  if (rule) d.rule = rule->path;
  return d;
}

}  // namespace ward
