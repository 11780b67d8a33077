#include "net/seccomp_notice.h"

#include <fcntl.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <optional>
#include <string>

#include "base/file.h"

namespace ward::net {
namespace {

constexpr unsigned kPidfdThread = O_EXCL;  // PIDFD_THREAD (Linux 6.9)

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

}  // namespace ward::net
