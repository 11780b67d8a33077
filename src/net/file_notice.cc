#include "net/file_notice.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <span>

#include "base/clock.h"
#include "base/path.h"
#include "net/file_calls.h"

namespace ward::net {
namespace {

// How a call names its path: which argument holds the directory descriptor
// (-1: none, the working directory), which the path, which the open flags
// (-1: none; -2: openat2's struct open_how), and what it does. Whether it
// follows a link in the last component: `follow`, unless argument
// `link_arg` (-1: none) has `link_bit` set (AT_SYMLINK_NOFOLLOW: then it
// does not; `bit_follows`: AT_SYMLINK_FOLLOW, then it does).
struct CallShape {
  int nr;
  int dirfd_arg, path_arg, flags_arg;
  FileOp op;
  bool follow = true;
  int link_arg = -1;
  uint64_t link_bit = AT_SYMLINK_NOFOLLOW;
  bool bit_follows = false;
};

constexpr int kHow = -2;
constexpr bool kNoFollow = false;
constexpr uint64_t kInDontFollow = 0x02000000;  // IN_DONT_FOLLOW

// x86_64 numbers. rename/link/symlink name a second path; it is listed as
// a second shape of the same call below.
const CallShape kCalls[] = {
    {SYS_open, -1, 0, 1, FileOp::kRead},
    {SYS_openat, 0, 1, 2, FileOp::kRead},
    {SYS_openat2, 0, 1, kHow, FileOp::kRead},
    {SYS_creat, -1, 0, -1, FileOp::kCreate},
    {SYS_stat, -1, 0, -1, FileOp::kStat},
    {SYS_lstat, -1, 0, -1, FileOp::kStat, kNoFollow},
    {SYS_newfstatat, 0, 1, -1, FileOp::kStat, true, 3},
    {SYS_statx, 0, 1, -1, FileOp::kStat, true, 2},
    {SYS_access, -1, 0, -1, FileOp::kStat},
    {SYS_faccessat, 0, 1, -1, FileOp::kStat},
    {SYS_faccessat2, 0, 1, -1, FileOp::kStat, true, 3},
    {SYS_chdir, -1, 0, -1, FileOp::kStat},
    {SYS_readlink, -1, 0, -1, FileOp::kStat, kNoFollow},  // the link itself: it must be visible
    {SYS_readlinkat, 0, 1, -1, FileOp::kStat, kNoFollow},
    {SYS_truncate, -1, 0, -1, FileOp::kWrite},
    {SYS_chmod, -1, 0, -1, FileOp::kWrite},
    {SYS_fchmodat, 0, 1, -1, FileOp::kWrite},
    {kSysFchmodat2, 0, 1, -1, FileOp::kWrite, true, 3},
    {SYS_utimensat, 0, 1, -1, FileOp::kWrite, true, 3},
    {SYS_utime, -1, 0, -1, FileOp::kWrite},
    {SYS_utimes, -1, 0, -1, FileOp::kWrite},
    {SYS_futimesat, 0, 1, -1, FileOp::kWrite},
    {SYS_chown, -1, 0, -1, FileOp::kWrite},
    {SYS_lchown, -1, 0, -1, FileOp::kWrite, kNoFollow},
    {SYS_fchownat, 0, 1, -1, FileOp::kWrite, true, 4},
    {SYS_statfs, -1, 0, -1, FileOp::kStat},
    {SYS_getxattr, -1, 0, -1, FileOp::kStat},
    {SYS_lgetxattr, -1, 0, -1, FileOp::kStat, kNoFollow},
    {SYS_listxattr, -1, 0, -1, FileOp::kStat},
    {SYS_llistxattr, -1, 0, -1, FileOp::kStat, kNoFollow},
    {SYS_setxattr, -1, 0, -1, FileOp::kWrite},
    {SYS_lsetxattr, -1, 0, -1, FileOp::kWrite, kNoFollow},
    {SYS_removexattr, -1, 0, -1, FileOp::kWrite},
    {SYS_lremovexattr, -1, 0, -1, FileOp::kWrite, kNoFollow},
    {kSysGetxattrat, 0, 1, -1, FileOp::kStat, true, 2},
    {kSysListxattrat, 0, 1, -1, FileOp::kStat, true, 2},
    {kSysSetxattrat, 0, 1, -1, FileOp::kWrite, true, 2},
    {kSysRemovexattrat, 0, 1, -1, FileOp::kWrite, true, 2},
    {kSysFileGetattr, 0, 1, -1, FileOp::kStat, true, 4},
    {kSysFileSetattr, 0, 1, -1, FileOp::kWrite, true, 4},
    {SYS_inotify_add_watch, -1, 1, -1, FileOp::kStat, true, 2, kInDontFollow},
    {SYS_mkdir, -1, 0, -1, FileOp::kCreate, kNoFollow},
    {SYS_mkdirat, 0, 1, -1, FileOp::kCreate, kNoFollow},
    {SYS_mknod, -1, 0, -1, FileOp::kCreate, kNoFollow},
    {SYS_mknodat, 0, 1, -1, FileOp::kCreate, kNoFollow},
    {SYS_symlink, -1, 1, -1, FileOp::kCreate, kNoFollow},
    {SYS_symlinkat, 1, 2, -1, FileOp::kCreate, kNoFollow},
    {SYS_link, -1, 1, -1, FileOp::kCreate, kNoFollow},
    {SYS_linkat, 2, 3, -1, FileOp::kCreate, kNoFollow},
    {SYS_rmdir, -1, 0, -1, FileOp::kRemove, kNoFollow},
    {SYS_unlink, -1, 0, -1, FileOp::kRemove, kNoFollow},
    {SYS_unlinkat, 0, 1, -1, FileOp::kRemove, kNoFollow},
    {SYS_rename, -1, 0, -1, FileOp::kRemove, kNoFollow},
    {SYS_renameat, 0, 1, -1, FileOp::kRemove, kNoFollow},
    {SYS_renameat2, 0, 1, -1, FileOp::kRemove, kNoFollow},
};
// The second path of rename (its new name: created) and link (its target:
// read; linkat follows it with AT_SYMLINK_FOLLOW).
const CallShape kSecond[] = {
    {SYS_rename, -1, 1, -1, FileOp::kCreate, kNoFollow},
    {SYS_renameat, 2, 3, -1, FileOp::kCreate, kNoFollow},
    {SYS_renameat2, 2, 3, -1, FileOp::kCreate, kNoFollow},
    {SYS_link, -1, 0, -1, FileOp::kRead, kNoFollow},
    {SYS_linkat, 0, 1, -1, FileOp::kRead, kNoFollow, 4, AT_SYMLINK_FOLLOW, true},
};

// A path argument: false if it cannot be read or is longer than PATH_MAX
// (the kernel refuses such a path too).
bool ReadPath(pid_t pid, uint64_t address, std::string* out) {
  bool too_long = false;
  return address != 0 && ReadString(pid, address, PATH_MAX, out, &too_long) && !too_long;
}

// The directory a relative path of thread `tid` is relative to: "" if it
// is gone or not a path ("anon_inode:..."; "(deleted)" is kept).
std::string BaseDir(pid_t tid, int dirfd) {
  std::string dir = ReadFdLink(tid, dirfd);
  return !dir.empty() && dir[0] == '/' ? dir : "";
}

std::optional<FileAccess> Access(const Notice& n, const CallShape& c, int sandbox_pid, int64_t now) {
  std::string path;
  if (!ReadPath(n.pid, n.args[c.path_arg], &path) || path.empty()) return std::nullopt;
  FileAccess a;
  a.time_ns = now;
  a.pid = sandbox_pid;
  a.host_tid = static_cast<int>(n.pid);
  a.op = c.op;
  if (c.flags_arg != -1) {
    uint64_t flags = 0;
    if (c.flags_arg == kHow) {
      if (!ReadMemory(n.pid, n.args[2], &flags, sizeof flags)) return std::nullopt;
    } else {
      flags = n.args[c.flags_arg];
    }
    if (flags & O_CREAT) a.op = FileOp::kCreate;
    else if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC)) a.op = FileOp::kWrite;
    else if ((flags & O_PATH) == O_PATH) a.op = FileOp::kStat;
    // O_CREAT|O_EXCL does not follow a last link either (EEXIST).
    a.follow = !(flags & O_NOFOLLOW) && (flags & (O_CREAT | O_EXCL)) != (O_CREAT | O_EXCL);
  } else {
    a.follow = c.follow;
    if (c.link_arg >= 0 && (n.args[c.link_arg] & c.link_bit)) a.follow = c.bit_follows;
  }
  // A trailing slash follows a link to a directory, whatever the call.
  if (path.size() > 1 && path.back() == '/') a.follow = true;
  if (path[0] != '/') {
    const int dirfd = c.dirfd_arg < 0 ? AT_FDCWD : static_cast<int>(n.args[c.dirfd_arg]);
    const std::string base = BaseDir(n.pid, dirfd);
    if (base.empty()) return std::nullopt;
    path = base + "/" + path;
  }
  a.named = path;
  a.path = ResolveByName(path);
  return a;
}

}  // namespace

bool IsFileCall(int nr) { return std::find(std::begin(kFileCalls), std::end(kFileCalls), nr) != std::end(kFileCalls); }

bool HasShape(int nr) {
  return std::any_of(std::begin(kCalls), std::end(kCalls), [nr](const CallShape& c) { return c.nr == nr; });
}

std::vector<FileAccess> ReadFileNotice(const Notice& n, bool with_pid) {
  std::vector<FileAccess> out;
  const int64_t now = RealtimeNs();
  const int pid = with_pid ? SandboxPid(n.pid) : 0;
  // The call's path, then (rename, link) its second one.
  for (std::span<const CallShape> table : {std::span<const CallShape>(kCalls), std::span<const CallShape>(kSecond)}) {
    for (const CallShape& c : table) {
      if (c.nr != n.nr) continue;
      if (auto a = Access(n, c, pid, now)) out.push_back(std::move(*a));
    }
  }
  return out;
}

}  // namespace ward::net
