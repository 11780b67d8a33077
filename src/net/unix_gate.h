// The unix gate: which unix sockets the workload may connect() to.
//
// The policy names paths; a read-only grant of a directory still holds the
// host daemons' sockets in it (an ssh or gpg agent, the user's D-Bus,
// docker.sock, git's fsmonitor), and connecting to a socket needs no write
// access to the mount it is on. Landlock governs pathname unix connects
// only from a later ABI (LANDLOCK_ACCESS_FS_RESOLVE_UNIX) than these
// machines have. So every connect() of the sandbox waits in the supervisor
// (seccomp user notification, enforce/seccomp.h), and for a unix socket this
// gate decides. Reachable:
//  - a socket served from inside the sandbox: bound on one of its private
//    filesystems (the tmpfs of /tmp, /dev/shm, the root), or, when the
//    sandbox has its own network namespace, by a socket of that namespace
//    (whatever filesystem its path is on, e.g. a test server's socket in the
//    workspace): only the sandbox's processes make sockets there;
//  - an abstract socket, when the sandbox has its own network namespace
//    (whose abstract names are all its own);
//  - a socket the policy lists in filesystem.unix, by the inode it had at
//    start (each use recorded).
// Everything else fails with EACCES, recorded. Unix datagram sockets, whose
// every send can name a destination, are refused at socket() by the filter.
//
// Why it is safe (the workload may race all of this from other threads):
// ward reads the address once, resolves it once, in the sandbox's root, to
// an O_PATH descriptor of the inode it decides on, and connects the
// workload's own socket (ward's copy of it, pidfd_getfd) through that
// descriptor (/proc/self/fd/N): never the kernel on the workload's behalf
// with memory or a descriptor number the workload could change after the
// check. The connect() is made with the workload's credentials (a root
// caller's sandbox runs as an unprivileged host uid: a worker thread takes
// it), so the kernel's permission check on the socket is the workload's;
// a listed socket is connected with the caller's, as the policy says.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/unique_fd.h"
#include "net/connect_notify.h"
#include "net/seccomp_notice.h"

namespace ward::net {

// A socket the policy lists (filesystem.unix), as it was at start.
struct UnixListed {
  std::string path;
  dev_t dev = 0;
  ino_t ino = 0;
};

struct UnixGateConfig {
  std::vector<UnixListed> listed;
  // A NETLINK_SOCK_DIAG socket in the sandbox's own network namespace;
  // invalid when the sandbox has the host's network.
  UniqueFd diag;
  // A root caller's sandbox: the unprivileged host uid and gid its
  // workload runs as. Unset: the workload's are the supervisor's own.
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
};

class UnixGate {
 public:
  explicit UnixGate(UnixGateConfig config) : config_(std::move(config)) {}

  // A connect() of the workload's unix socket `sock` (ward's copy of its
  // descriptor): decided, made on `sock` if allowed, and answered, here or
  // on a worker (`hooks`). Decisions about listed and refused sockets are
  // recorded through `hooks`.
  void Connect(const Notice& n, int pidfd, UniqueFd sock, int stop_fd, ConnectNotifyHooks& hooks);

 private:
  struct Decision {
    bool allowed = false;
    bool as_caller = false;  // listed: the caller's credentials
    std::string rule;        // the listed entry
    std::string reason;
  };
  Decision Decide(const Notice& n, dev_t dev, ino_t ino);
  bool OnPrivateFilesystem(const Notice& n, dev_t dev);
  bool ServedInSandboxNetwork(dev_t dev, ino_t ino);

  UnixGateConfig config_;
  std::mutex mu_;  // the private filesystems, read once
  std::optional<std::set<std::pair<unsigned, unsigned>>> private_devs_;
  uint32_t diag_seq_ = 0;  // the notification thread's only
  static constexpr int kMaxWorkers = 256;
  std::shared_ptr<std::atomic<int>> workers_ = std::make_shared<std::atomic<int>>(0);
};

// Calls `each` with the filesystem device (the kernel's encoding: major <<
// 20 | minor) and inode of every bound pathname unix socket in the network
// namespace of NETLINK_SOCK_DIAG socket `diag_fd`. 0 or an errno (the
// kernel lacks unix_diag: ENOENT).
int DumpBoundUnixSockets(int diag_fd, uint32_t seq, const std::function<void(uint32_t dev, uint64_t ino)>& each);

}  // namespace ward::net
