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
bool WriteMemory(pid_t pid, uint64_t address, const void* data, size_t len);

}  // namespace ward::net
