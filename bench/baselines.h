// The baselines and the child runner that ward's process-level benchmarks
// share (ward_startup_bench, ward_lifecycle_bench): bubblewrap with the
// options closest to bench/full-layers.json, a workspace holding a file
// that policy denies, and a spawner that starts every runner the same way.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "base/path.h"

namespace ward::bench {

// Child descriptors for bwrap's seccomp programs.
constexpr int kSeccompFd = 10;
constexpr int kSeccompExtraFd = 11;

using ward::IsUnder;  // base/path.h
// `name` on $PATH, or "".
std::string FindInPath(const std::string& name);

// Creates (if needed) the workspace: `requested`, else <bin>/../bench-workspace,
// else ~/.cache/ward-bench-workspace (never under /tmp, which ward makes
// private), with a `secret` file the full-layers policy denies. Its
// absolute path; exits with why if none can be made.
std::string PrepareWorkspace(const std::string& requested, const std::string& bin_dir);

// bwrap's argv for /bin/true with the options closest to the full-layers
// policy (what differs: docs/performance.md); `seccomp` adds ward's own
// programs as --add-seccomp-fd kSeccompExtraFd and kSeccompFd.
std::vector<std::string> BwrapArgv(const std::string& bwrap, const std::string& ws, bool seccomp);
// ward's seccomp programs in memfds (main, personality) for BwrapArgv.
std::pair<int, int> SeccompFds();

struct Outcome {
  double ms = 0;     // posix_spawn to waitpid returning
  int status = 0;    // wait status
  std::string err;   // its stderr
};

// Starts every child the same way: posix_spawn, stdin and stdout on
// /dev/null, stderr on a pipe read only once the child is reaped.
class Spawner {
 public:
  Spawner();
  // `fds`: (parent fd, child fd) pairs to pass; each parent fd is rewound
  // first (bwrap reads its seccomp programs to the end).
  Outcome Run(const std::vector<std::string>& argv, const std::vector<std::pair<int, int>>& fds = {});

 private:
  int devnull_ = -1;
};

}  // namespace ward::bench
