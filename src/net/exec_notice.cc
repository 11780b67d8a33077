#include "net/exec_notice.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <limits.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/clock.h"
#include "base/errors.h"

namespace ward::net {
namespace {

// Whether the absolute `path` names nothing in thread `tid`'s view of the
// filesystem (its root), as seen from ward: ENOENT or ENOTDIR. False when it
// names something or this cannot be told (the root unreadable: a caller
// that is not dumpable, for a supervisor that is not root). Only a hint:
// ward's view differs from the caller's (/proc/self names no process of
// ward's in the sandbox's procfs), and the caller may create the file
// between this check and the kernel's.
bool Missing(pid_t tid, const std::string& path) {
  UniqueFd root(open(("/proc/" + std::to_string(tid) + "/root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) return false;
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT;
  UniqueFd f(static_cast<int>(syscall(SYS_openat2, root.get(), path.c_str(), &how, sizeof how)));
  return !f.valid() && (errno == ENOENT || errno == ENOTDIR);
}

}  // namespace

ProcessExec ReadExecNotice(const Notice& n) {
  ProcessExec e;
  e.time_ns = RealtimeNs();
  const ProcessIds ids = ReadProcessIds(n.pid);
  e.host_pid = ids.host_tgid;
  e.pid = ids.pid;
  e.ppid = ids.ppid;
  const bool at = n.nr == SYS_execveat;
  const uint64_t path_at = at ? n.args[1] : n.args[0];
  const uint64_t argv_at = at ? n.args[2] : n.args[1];
  if (!ReadString(n.pid, path_at, PATH_MAX, &e.path, &e.truncated)) {
    e.unreadable = std::string("process_vm_readv: ") + ErrnoName(errno);
    return e;
  }
  // argv[0] is most often the path itself (execvp, a shell): not read twice.
  // (For execve the path is kept as read.)
  const bool path_whole = !at && !e.truncated;
  if (at && (e.path.empty() || e.path[0] != '/')) {
    // Relative to a directory descriptor of the caller (fexecve: the file
    // itself, AT_EMPTY_PATH): named by what the descriptor names.
    const int dirfd = static_cast<int>(n.args[0]);
    if (dirfd != AT_FDCWD) {
      const std::string dir = ReadFdLink(n.pid, dirfd);
      if (!dir.empty()) e.path = e.path.empty() ? dir : dir + "/" + e.path;
    }
  }
  // One attempt of a PATH search (execvp tries each directory in turn)
  // probably names nothing: marked, still recorded (a hint, see Missing).
  if (!e.path.empty() && e.path[0] == '/' && Missing(n.pid, e.path)) e.missing = true;
  size_t total = e.path.size();
  // The argv array, read a batch of pointers at a time, never past the end
  // of the 4 KiB page the batch starts in (the array may end right there;
  // a larger page's end is also a 4 KiB page's).
  constexpr uint64_t kPage = 4096;
  uint64_t ptrs[32];
  size_t have = 0, next = 0;
  for (size_t i = 0; argv_at != 0; ++i) {
    if (i == kExecMaxArgs || total >= kExecMaxTotalBytes) {
      e.truncated = true;
      break;
    }
    if (next == have) {
      const uint64_t at_ptr = argv_at + 8 * i;
      const size_t fit = std::max<size_t>(1, (kPage - at_ptr % kPage) / 8);
      have = std::min({std::size(ptrs), fit, kExecMaxArgs - i});
      next = 0;
      if (!ReadMemory(n.pid, at_ptr, ptrs, 8 * have)) {
        e.truncated = true;
        break;
      }
    }
    const uint64_t ptr = ptrs[next++];
    if (ptr == 0) break;
    const size_t max = std::min(kExecMaxArgBytes, kExecMaxTotalBytes - total);
    std::string arg;
    if (ptr == path_at && path_whole && e.path.size() < max) {
      arg = e.path;
    } else if (!ReadString(n.pid, ptr, max, &arg, &e.truncated)) {
      e.truncated = true;
      break;
    }
    total += arg.size();
    e.argv.push_back(std::move(arg));
  }
  return e;
}

}  // namespace ward::net
