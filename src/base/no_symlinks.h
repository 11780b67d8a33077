// Opening a path the plan names, without following any symlink on the way.
//
// Why: compile (enforce/compile.cc) resolves every grant to its real path
// (and recreates, inside the sandbox, the links the view needs), so the
// paths a plan names hold no symlink. One met when the path is opened to be
// mounted or given a landlock rule was put there since, by someone who can
// write on the way (a concurrent sandbox with that tree writable swapping a
// directory for a link, `renameat2(RENAME_EXCHANGE)`): following it would
// bind or grant what the link points to. Refused instead (ELOOP).
#pragma once

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace ward {

// `path` (absolute, or relative to the working directory) opened with
// `flags` | O_CLOEXEC through openat2(RESOLVE_NO_SYMLINKS, Linux 5.6): -1 and
// errno on failure (ELOOP: a symlink on the way). Async-signal-safe: the
// sandbox's child calls it.
inline int OpenNoSymlinks(const char* path, int flags) {
  open_how how{};
  how.flags = static_cast<unsigned long long>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_NO_SYMLINKS;
  return static_cast<int>(syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how));
}

}  // namespace ward
