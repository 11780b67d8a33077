#include "net/seccomp_notice.h"

#include <fcntl.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>

#include "base/file.h"

namespace ward::net {
namespace {

constexpr unsigned kPidfdThread = O_EXCL;  // PIDFD_THREAD (Linux 6.9)

// linux/pidfd.h and linux/nsfs.h of Linux 6.13 (Debian 12's headers are
// older): a pidfd's ids, its pid namespace, and a pid's number in a
// namespace.
struct PidfdInfo {
  uint64_t mask, cgroupid;
  uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid, spare0[1];
};
constexpr uint64_t kPidfdInfoPid = 1;                              // PIDFD_INFO_PID
constexpr unsigned long kPidfdGetInfo = _IOWR(0xFF, 11, PidfdInfo);  // PIDFD_GET_INFO
constexpr unsigned long kPidfdGetPidNamespace = _IO(0xFF, 5);       // PIDFD_GET_PID_NAMESPACE
constexpr unsigned long kNsGetTgidInPidns = _IOR(0xb7, 0x9, int);  // NS_GET_TGID_IN_PIDNS
static_assert(sizeof(PidfdInfo) == 64, "PIDFD_INFO_SIZE_VER0");

// Set once a kernel has said it has no PIDFD_GET_INFO (before 6.13): every
// later call goes to /proc at once.
std::atomic<bool> g_no_pidfd_info{false};

pid_t ThreadGroupOf(pid_t tid) {
  std::optional<std::string> status = ReadFile("/proc/" + std::to_string(tid) + "/status");
  size_t tgid = status ? status->find("\nTgid:") : std::string::npos;
  return tgid != std::string::npos ? static_cast<pid_t>(strtol(status->c_str() + tgid + 6, nullptr, 10)) : -1;
}

}  // namespace

bool StillWaiting(const Notice& n) {
  uint64_t id = n.id;
  return ioctl(n.notify_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

void Answer(const Notice& n, int error, bool continue_call) {
  seccomp_notif_resp r{};
  r.id = n.id;
  r.error = error == 0 ? 0 : -error;
  r.flags = continue_call ? SECCOMP_USER_NOTIF_FLAG_CONTINUE : 0;
  (void)ioctl(n.notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &r);
}

UniqueFd OpenPidfd(pid_t tid) {
  // The notification names the calling thread; a thread pidfd reaches the
  // same descriptor table and memory. Before Linux 6.9 (no PIDFD_THREAD)
  // the process's pidfd does (its threads share its descriptors).
  UniqueFd fd(static_cast<int>(syscall(SYS_pidfd_open, tid, kPidfdThread)));
  if (!fd.valid() && errno == EINVAL) {
    pid_t tgid = ThreadGroupOf(tid);
    if (tgid > 0) fd.Reset(static_cast<int>(syscall(SYS_pidfd_open, tgid, 0)));
    if (tgid <= 0) errno = ESRCH;
  }
  return fd;
}

bool ReadMemory(pid_t pid, uint64_t address, void* out, size_t len) {
  iovec local{out, len};
  iovec remote{reinterpret_cast<void*>(static_cast<uintptr_t>(address)), len};
  return process_vm_readv(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(len);
}

bool WriteMemory(pid_t pid, uint64_t address, const void* data, size_t len) {
  iovec local{const_cast<void*>(data), len};
  iovec remote{reinterpret_cast<void*>(static_cast<uintptr_t>(address)), len};
  return process_vm_writev(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(len);
}

bool ReadString(pid_t pid, uint64_t address, size_t max, std::string* out, bool* truncated) {
  out->clear();
  constexpr uint64_t kPage = 4096;
  char buf[kPage];
  while (out->size() < max) {
    const size_t want = std::min(static_cast<size_t>(kPage - address % kPage), max - out->size());
    if (!ReadMemory(pid, address, buf, want)) return false;
    if (const void* nul = memchr(buf, 0, want)) {
      out->append(buf, static_cast<size_t>(static_cast<const char*>(nul) - buf));
      return true;
    }
    out->append(buf, want);
    address += want;
  }
  *truncated = true;
  return true;
}

ProcStatus ReadProcStatus(pid_t tid) {
  ProcStatus st;
  std::istringstream lines(ReadFile("/proc/" + std::to_string(tid) + "/status").value_or(""));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.compare(0, 5, "Tgid:") == 0) {
      st.tgid = atoi(line.c_str() + 5);
    } else if (line.compare(0, 5, "PPid:") == 0) {
      st.ppid = atoi(line.c_str() + 5);
    } else if (line.compare(0, 6, "NSpid:") == 0) {
      std::istringstream f(line.substr(6));
      for (int v = 0; f >> v;) st.nspid.push_back(v);
    }
  }
  return st;
}

ProcessIds ReadProcessIds(pid_t tid) {
  // Asked of the thread's pidfd and translated by its pid namespace (Linux
  // 6.13): about 40 us less per call than making and parsing two
  // /proc/<pid>/status texts, which an older kernel still gets.
  ProcessIds ids;
  UniqueFd pidfd;
  PidfdInfo info{};
  info.mask = kPidfdInfoPid;
  bool asked = false;
  if (!g_no_pidfd_info.load(std::memory_order_relaxed)) {
    pidfd = OpenPidfd(tid);
    asked = pidfd.valid() && ioctl(pidfd.get(), kPidfdGetInfo, &info) == 0;
    if (pidfd.valid() && !asked && (errno == ENOTTY || errno == EINVAL)) g_no_pidfd_info = true;
  }
  if (asked) {
    UniqueFd ns(ioctl(pidfd.get(), kPidfdGetPidNamespace, 0));
    const int pid = ns.valid() ? ioctl(ns.get(), kNsGetTgidInPidns, static_cast<unsigned long>(info.tgid)) : -1;
    if (pid > 0) {
      ids.host_tgid = static_cast<int>(info.tgid);
      ids.pid = pid;
      // ESRCH: the parent is not in the namespace (init's is ward's).
      const int ppid = info.ppid > 0 ? ioctl(ns.get(), kNsGetTgidInPidns, static_cast<unsigned long>(info.ppid)) : -1;
      ids.ppid = ppid > 0 ? ppid : 0;
      return ids;
    }
  }
  ProcStatus self = ReadProcStatus(tid);
  // A thread's NSpid is its own; the process's is its thread group
  // leader's (the pid it has after an execve).
  if (self.tgid > 0 && self.tgid != tid) self.nspid = ReadProcStatus(self.tgid).nspid;
  ids.host_tgid = self.tgid;
  if (!self.nspid.empty()) ids.pid = self.nspid.back();
  if (self.ppid > 0) {
    const ProcStatus parent = ReadProcStatus(self.ppid);
    if (parent.nspid.size() >= 2) ids.ppid = parent.nspid.back();
  }
  return ids;
}

std::string ReadFdLink(pid_t tid, int fd) {
  const std::string link = "/proc/" + std::to_string(tid) + (fd == AT_FDCWD ? "/cwd" : "/fd/" + std::to_string(fd));
  char buf[PATH_MAX];
  const ssize_t n = readlink(link.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

int SandboxPid(pid_t tid) {
  const std::vector<int> nspid = ReadProcStatus(tid).nspid;
  return nspid.empty() ? 0 : nspid.back();
}

}  // namespace ward::net
