// One system call waiting in the supervisor (seccomp user notification), and
// what the supervisor does with it: read the caller's memory and descriptors,
// answer it. Shared by the egress server (net/connect_notify.h) and the unix
// gate (net/unix_gate.h).
//
// The caller is untrusted and may race all of this from other threads: what
// the supervisor reads (memory, a descriptor) it reads once and then acts on
// its own copy.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/unique_fd.h"

namespace ward::net {

struct Notice {
  int notify_fd = -1;
  uint64_t id = 0;
  pid_t pid = 0;  // the calling thread, in the supervisor's pid namespace
  int nr = 0;
  uint64_t args[6] = {};
};

// Whether the call still waits for its answer (not interrupted, caller alive);
// checked after reading the caller's memory or opening its pidfd, so that
// what was read was that caller's.
bool StillWaiting(const Notice& n);

// The answer to the waiting call: 0 or an errno; `continue_call` lets the
// kernel make the call itself. ENOENT from the kernel (the call is gone) is
// ignored: nobody to answer.
void Answer(const Notice& n, int error, bool continue_call = false);

// A pidfd for the calling thread (its process's before Linux 6.9).
UniqueFd OpenPidfd(pid_t tid);

bool ReadMemory(pid_t pid, uint64_t address, void* out, size_t len);

// The NUL-terminated string at `address` in `pid`, at most `max` bytes,
// read up to each page boundary in turn (process_vm_readv stops at an
// unmapped page). false if a read failed (errno says why); `*truncated` set
// if no NUL came within `max` (what was read is kept).
bool ReadString(pid_t pid, uint64_t address, size_t max, std::string* out, bool* truncated);

// From /proc/<tid>/status: the thread's process (Tgid), its parent (PPid),
// both in the supervisor's pid namespace, and its pid in each namespace
// from the supervisor's down (NSpid: the last is the sandbox's). Zeros and
// empty if it is gone.
struct ProcStatus {
  int tgid = 0, ppid = 0;
  std::vector<int> nspid;
};
ProcStatus ReadProcStatus(pid_t tid);

// Thread `tid`'s process: its id in the supervisor's pid namespace
// (`host_tgid`) and in the thread's own (innermost) one, and its parent's
// there (0 for a parent outside it). Zeros if it is gone.
struct ProcessIds {
  int host_tgid = 0, pid = 0, ppid = 0;
};
ProcessIds ReadProcessIds(pid_t tid);
// Thread `tid`'s id in the sandbox's (innermost) pid namespace; 0 if gone.
int SandboxPid(pid_t tid);

// What /proc/<tid>/fd/<fd> (or, for AT_FDCWD, /proc/<tid>/cwd) names: ""
// if it cannot be read.
std::string ReadFdLink(pid_t tid, int fd);
bool WriteMemory(pid_t pid, uint64_t address, const void* data, size_t len);

}  // namespace ward::net
