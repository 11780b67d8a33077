// An execve() or execveat() waiting in the supervisor (the network filter's
// listener, enforce/seccomp.h `notify_exec`): what it asks to execute.
//
// Read from the caller's memory before the kernel makes the call (it is
// then answered with CONTINUE). The caller is untrusted: the strings are
// read once, bounded, and only recorded; nothing is decided on them
// (linux/seccomp.h: CONTINUE "cannot be used to implement a security
// policy", since another thread may rewrite them before the kernel reads).
#pragma once

#include "net/seccomp_notice.h"
#include "ward/sandbox.h"

namespace ward::net {

// Bounds on what is read of one call: beyond them the record is marked
// truncated.
inline constexpr size_t kExecMaxArgs = 256;
inline constexpr size_t kExecMaxArgBytes = 4096;
inline constexpr size_t kExecMaxTotalBytes = 65536;

// The call `n` (SYS_execve or SYS_execveat) as a record. Reads the caller's
// memory and /proc/<tid>/status; the caller must still be waiting
// afterwards (StillWaiting) for the record to be its own. An absolute path
// that names nothing in the caller's root, as ward sees it, is marked
// `missing` (a hint: see ProcessExec).
ProcessExec ReadExecNotice(const Notice& n);

}  // namespace ward::net
