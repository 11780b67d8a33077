#include "net/exec_notice.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <limits.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "base/errors.h"
#include "base/file.h"

namespace ward::net {
namespace {

// A NUL-terminated string at `address`, at most `max` bytes; read a page at
// a time (process_vm_readv stops at an unmapped page). false if nothing
// could be read (`*err`: its errno).
bool ReadString(pid_t pid, uint64_t address, size_t max, std::string* out, bool* truncated, int* err) {
  out->clear();
  constexpr uint64_t kPage = 4096;
  while (out->size() < max) {
    size_t want = static_cast<size_t>(kPage - (address % kPage));
    want = std::min(want, max - out->size());
    char buf[kPage];
    if (!ReadMemory(pid, address, buf, want)) {
      *err = errno;
      return false;
    }
    if (const void* nul = memchr(buf, 0, want)) {
      out->append(buf, static_cast<const char*>(nul) - buf);
      return true;
    }
    out->append(buf, want);
    address += want;
  }
  *truncated = true;
  return true;
}

// Tgid, PPid and the last NSpid (the sandbox's pid) of thread `tid`.
void ReadStatus(pid_t tid, ProcessExec* e) {
  std::istringstream lines(ReadFile("/proc/" + std::to_string(tid) + "/status").value_or(""));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.compare(0, 5, "Tgid:") == 0) {
      e->host_pid = atoi(line.c_str() + 5);
    } else if (line.compare(0, 6, "NSpid:") == 0) {
      std::istringstream f(line.substr(6));
      int v = 0;
      while (f >> v) e->pid = v;
    } else if (line.compare(0, 5, "PPid:") == 0) {
      e->ppid = atoi(line.c_str() + 5);  // the host's; turned into the sandbox's below
    }
  }
  // The parent's sandbox pid: the last NSpid of the host's PPid.
  if (e->ppid > 0) {
    const int host_ppid = e->ppid;
    e->ppid = 0;
    std::istringstream plines(ReadFile("/proc/" + std::to_string(host_ppid) + "/status").value_or(""));
    while (std::getline(plines, line)) {
      if (line.compare(0, 6, "NSpid:") != 0) continue;
      std::istringstream f(line.substr(6));
      int v = 0, count = 0;
      while (f >> v) {
        e->ppid = v;
        ++count;
      }
      // A parent outside the sandbox's pid namespace (ward's init is pid 1
      // inside; its parent is not the sandbox's): 0.
      if (count < 2) e->ppid = 0;
    }
  }
}

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
  timespec t{};
  clock_gettime(CLOCK_REALTIME, &t);
  e.time_ns = static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
  ReadStatus(n.pid, &e);
  const bool at = n.nr == SYS_execveat;
  const uint64_t path_at = at ? n.args[1] : n.args[0];
  const uint64_t argv_at = at ? n.args[2] : n.args[1];
  int err = 0;
  if (!ReadString(n.pid, path_at, PATH_MAX, &e.path, &e.truncated, &err)) {
    e.unreadable = std::string("process_vm_readv: ") + ErrnoName(err);
    return e;
  }
  if (at && (e.path.empty() || e.path[0] != '/')) {
    // Relative to a directory descriptor of the caller (fexecve: the file
    // itself, AT_EMPTY_PATH): named by what the descriptor names.
    const int dirfd = static_cast<int>(n.args[0]);
    if (dirfd != AT_FDCWD) {
      char buf[PATH_MAX];
      const std::string link = "/proc/" + std::to_string(n.pid) + "/fd/" + std::to_string(dirfd);
      ssize_t len = readlink(link.c_str(), buf, sizeof buf - 1);
      if (len > 0) e.path = e.path.empty() ? std::string(buf, len) : std::string(buf, len) + "/" + e.path;
    }
  }
  // One attempt of a PATH search (execvp tries each directory in turn)
  // probably names nothing: marked, still recorded (a hint, see Missing).
  if (!e.path.empty() && e.path[0] == '/' && Missing(n.pid, e.path)) e.missing = true;
  size_t total = e.path.size();
  for (size_t i = 0; argv_at != 0; ++i) {
    if (i == kExecMaxArgs || total >= kExecMaxTotalBytes) {
      e.truncated = true;
      break;
    }
    uint64_t ptr = 0;
    if (!ReadMemory(n.pid, argv_at + 8 * i, &ptr, sizeof ptr)) {
      e.truncated = true;
      break;
    }
    if (ptr == 0) break;
    std::string arg;
    if (!ReadString(n.pid, ptr, std::min(kExecMaxArgBytes, kExecMaxTotalBytes - total), &arg, &e.truncated, &err)) {
      e.truncated = true;
      break;
    }
    total += arg.size();
    e.argv.push_back(std::move(arg));
  }
  return e;
}

}  // namespace ward::net
