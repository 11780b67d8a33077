#include "baselines.h"

#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "bench_util.h"
#include "enforce/compile.h"
#include "enforce/seccomp.h"

extern char** environ;

namespace ward::bench {

namespace {

// The same system paths as ward's baseline, so that bwrap builds a root of
// the same size.
const std::vector<std::string> kSystemPaths = ward::SystemBaselinePaths();

// The variables ward's offline-readonly profile passes through.
const char* const kInheritedEnv[] = {"PATH", "LANG", "LANGUAGE", "LC_ALL", "TERM"};


}  // namespace

std::string FindInPath(const std::string& name) {
  const char* path = getenv("PATH");
  std::istringstream in(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(in, dir, ':')) {
    std::string p = dir + "/" + name;
    if (!dir.empty() && Executable(p)) return p;
  }
  return "";
}

// Creates (if needed) a workspace holding one file the policy denies.
std::string PrepareWorkspace(const std::string& requested, const std::string& bin_dir) {
  std::vector<std::string> candidates;
  if (!requested.empty()) {
    candidates.push_back(requested);
  } else {
    candidates.push_back(bin_dir + "/../bench-workspace");
    if (const char* home = getenv("HOME"); home && *home) candidates.push_back(std::string(home) + "/.cache/ward-bench-workspace");
  }
  std::string why;
  auto under_tmp = [](const std::string& p) {
    if (IsUnder(p, "/tmp")) Die("workspace \"" + p + "\" is under /tmp, which ward replaces with a private tmpfs; pick another with --workspace");
  };
  for (const auto& c : candidates) {
    under_tmp(c);
    if (mkdir(c.c_str(), 0755) != 0 && errno != EEXIST) {
      why += "\n  mkdir \"" + c + "\": " + std::strerror(errno);
      continue;
    }
    std::string secret = c + "/secret";
    if (access(secret.c_str(), F_OK) != 0) {
      std::ofstream f(secret);
      f << "a file the full-layers policy denies\n";
      if (!f) {
        why += "\n  cannot create \"" + secret + "\"";
        continue;
      }
    }
    // ward mounts a private /tmp: a workspace there conflicts with it.
    std::string abs = Absolute(c);
    under_tmp(abs);
    return abs;
  }
  Die("no usable workspace:" + why + "\n  (pass --workspace DIR: a directory this user can read, not under /tmp)");
}

// bwrap with the options closest to the full-layers policy. What differs
// (no landlock, no cgroup or rlimit limits, /dev/null as the mask) is
// listed in docs/performance.md.
std::vector<std::string> BwrapArgv(const std::string& bwrap, const std::string& ws, bool seccomp) {
  std::vector<std::string> a = {bwrap, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
                                "--cap-drop", "ALL", "--hostname", "ward"};
  std::vector<std::string> bound;
  std::vector<std::pair<std::string, std::string>> links;
  for (const std::string& path : kSystemPaths) {
    const char* p = path.c_str();
    struct stat st;
    if (lstat(p, &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      char buf[PATH_MAX];
      ssize_t n = readlink(p, buf, sizeof buf - 1);
      if (n <= 0) continue;
      links.emplace_back(std::string(buf, static_cast<size_t>(n)), p);
    } else {
      a.insert(a.end(), {"--ro-bind", p, p});
      bound.push_back(p);
    }
  }
  // A symlink's target must be visible too (ward binds it, as it resolves
  // every grant).
  for (const auto& [target, at] : links) {
    char real[PATH_MAX];
    if (realpath(at.c_str(), real) == nullptr) continue;
    bool covered = std::any_of(bound.begin(), bound.end(), [&](const std::string& b) { return IsUnder(real, b); });
    if (!covered) {
      a.insert(a.end(), {"--ro-bind", real, real});
      bound.push_back(real);
    }
  }
  for (const auto& [target, at] : links) a.insert(a.end(), {"--symlink", target, at});
  a.insert(a.end(), {"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"});
  a.insert(a.end(), {"--ro-bind", ws, ws, "--ro-bind", "/dev/null", ws + "/secret"});
  a.insert(a.end(), {"--remount-ro", "/", "--chdir", ws, "--clearenv"});
  for (const char* name : kInheritedEnv) {
    if (const char* v = getenv(name)) a.insert(a.end(), {"--setenv", name, v});
  }
  a.insert(a.end(), {"--setenv", "HOME", "/tmp"});
  if (seccomp) {
    a.insert(a.end(), {"--add-seccomp-fd", std::to_string(kSeccompExtraFd), "--add-seccomp-fd", std::to_string(kSeccompFd)});
  }
  a.insert(a.end(), {"--", "/bin/true"});
  return a;
}

// ward's own seccomp programs, in memfds that bwrap reads.
std::pair<int, int> SeccompFds() {
  auto filter = ward::BuildSeccompFilter();
  if (!filter) Die("building ward's seccomp filter: " + filter.error().message);
  auto extra = ward::BuildPersonalityFilter();
  auto to_memfd = [](const std::vector<sock_filter>& prog, const char* name) {
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) Die(Errno("memfd_create"));
    size_t len = prog.size() * sizeof(sock_filter);
    if (write(fd, prog.data(), len) != static_cast<ssize_t>(len)) Die(Errno("write memfd"));
    return fd;
  };
  return {to_memfd(*filter, "ward-seccomp"), to_memfd(extra, "ward-seccomp-extra")};
}


Spawner::Spawner() {
  devnull_ = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull_ < 0) Die(Errno("open /dev/null"));
}

Outcome Spawner::Run(const std::vector<std::string>& argv, const std::vector<std::pair<int, int>>& fds) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) Die(Errno("pipe2"));
  // Large enough for any --json line: the child never blocks on it, and
  // the pipe is drained only once the child is gone.
  fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
  for (const auto& [parent, child] : fds) lseek(parent, 0, SEEK_SET);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, devnull_, 0);
  posix_spawn_file_actions_adddup2(&fa, devnull_, 1);
  posix_spawn_file_actions_adddup2(&fa, p[1], 2);
  for (const auto& [parent, child] : fds) posix_spawn_file_actions_adddup2(&fa, parent, child);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  Outcome o;
  pid_t pid;
  const int64_t t0 = NowNs();
  int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  if (rc == 0) {
    while (waitpid(pid, &o.status, 0) < 0 && errno == EINTR) {
    }
  }
  const int64_t t1 = NowNs();
  posix_spawn_file_actions_destroy(&fa);
  close(p[1]);
  if (rc != 0) {
    close(p[0]);
    errno = rc;
    Die(Errno("posix_spawn \"" + argv[0] + "\""));
  }
  o.ms = static_cast<double>(t1 - t0) / 1e6;
  char buf[4096];
  ssize_t n;
  while ((n = read(p[0], buf, sizeof buf)) > 0) o.err.append(buf, static_cast<size_t>(n));
  close(p[0]);
  return o;
}

}  // namespace ward::bench
