// Who is told of the calls the sandbox's seccomp listener lets through
// unchanged (net/connect_notify.h): its executions (net/exec_notice.h) and,
// for `ward learn`, its file system calls (net/file_notice.h).
#pragma once

#include <functional>

#include "ward/sandbox.h"

namespace ward::net {

struct CallObservers {
  std::function<void(ProcessExec)> on_exec;
  std::function<void(FileAccess)> on_file;
  // FileAccess::pid is read for on_file (false: left 0; FileAccess::host_tid
  // is always set).
  bool file_pids = true;
};

}  // namespace ward::net
