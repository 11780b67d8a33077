// A file system call waiting in the supervisor (the network filter's
// listener with `notify_files`, enforce/seccomp.h): which path it names and
// what it does to it, for `ward learn`.
//
// Read from the caller's memory and /proc before the kernel makes the call
// (it is then answered with CONTINUE): a record of what was asked, never a
// decision (the caller may rewrite the path meanwhile).
#pragma once

#include <optional>
#include <vector>

#include "net/seccomp_notice.h"
#include "ward/sandbox.h"

namespace ward::net {

// `nr` is one of net/file_calls.h's kFileCalls (the filter notifies it with
// `notify_files`); HasShape: this module knows how it names its path.
bool IsFileCall(int nr);
bool HasShape(int nr);

// The accesses call `n` makes (rename: two), each with an absolute path;
// none if its path cannot be read or is empty (a call on a descriptor).
// `with_pid`: FileAccess::pid is read too (from /proc: a third of the
// cost); otherwise left 0 for the caller to read if it needs it.
std::vector<FileAccess> ReadFileNotice(const Notice& n, bool with_pid = true);

}  // namespace ward::net
