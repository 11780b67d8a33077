#include "net/unix_gate.h"

#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/openat2.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <memory>
#include <sstream>

#include "base/file.h"
#include "base/mountinfo.h"
#include "net/socket_io.h"

namespace ward::net {
namespace {

using DevSet = std::set<std::pair<unsigned, unsigned>>;

// Devices of the mounts in a mountinfo file; only tmpfs ones if asked.
DevSet MountDevices(const std::string& mountinfo, bool tmpfs_only) {
  DevSet out;
  for (const MountInfo& m : ReadMountInfo(mountinfo)) {
    if (!tmpfs_only || m.fstype == "tmpfs") out.insert({m.major, m.minor});
  }
  return out;
}

// The object `path` names for the calling thread `tid`: resolved once, in
// the sandbox's root, to an O_PATH descriptor. 0 or an errno (as the
// kernel's connect() would give for a missing path).
int Resolve(pid_t tid, int pidfd, const std::string& path, UniqueFd* out) {
  if (path.empty()) return ENOENT;
  // The workload's descriptor N (and a path beneath it): its /proc is of
  // the sandbox's pid namespace, where "self" names no process of ward's.
  for (const char* dir : {"/proc/self/fd/", "/proc/thread-self/fd/", "/dev/fd/"}) {
    size_t n = strlen(dir);
    if (path.compare(0, n, dir) != 0) continue;
    size_t end = path.find('/', n);
    std::string number = path.substr(n, end == std::string::npos ? std::string::npos : end - n);
    if (number.empty() || number.size() > 9 || number.find_first_not_of("0123456789") != std::string::npos) {
      return ENOENT;
    }
    UniqueFd fd(static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, atoi(number.c_str()), 0)));
    if (!fd.valid()) return errno == EBADF ? ENOENT : errno;
    std::string rest = end == std::string::npos ? "" : path.substr(end + 1);
    if (rest.empty()) {
      *out = std::move(fd);
      return 0;
    }
    open_how how{};
    how.flags = O_PATH | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    out->Reset(static_cast<int>(syscall(SYS_openat2, fd.get(), rest.c_str(), &how, sizeof how)));
    return out->valid() ? 0 : errno;
  }
  std::string proc = "/proc/" + std::to_string(tid);
  std::string full = path;
  // The caller's working directory and root by their /proc names.
  for (const char* self : {"/proc/self/", "/proc/thread-self/"}) {
    size_t n = strlen(self);
    if (path.compare(0, n, self) != 0) continue;
    std::string rest = path.substr(n);
    if (rest.compare(0, 4, "cwd/") == 0) full = rest.substr(4);
    if (rest.compare(0, 5, "root/") == 0) full = rest.substr(4);
  }
  if (full.empty()) return ENOENT;
  if (full[0] != '/') {
    // The caller's working directory, as its own root shows it.
    char cwd[4096];
    ssize_t len = readlink((proc + "/cwd").c_str(), cwd, sizeof cwd - 1);
    if (len <= 0) return len < 0 ? errno : ENOENT;
    cwd[len] = 0;
    full = std::string(cwd) + "/" + full;
  }
  UniqueFd root(open((proc + "/root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) return errno;
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  out->Reset(static_cast<int>(syscall(SYS_openat2, root.get(), full.c_str(), &how, sizeof how)));
  return out->valid() ? 0 : errno;
}

// connect() of `sock` to `a`, without blocking: a full backlog says EAGAIN
// (a blocking socket's call waits on a worker). The descriptor's O_NONBLOCK
// is shared with the workload, whose connect() waits for this answer; it is
// restored at once.
int ConnectNow(int sock, const sockaddr_un& a, socklen_t len) {
  int flags = fcntl(sock, F_GETFL);
  if (flags < 0) return errno;
  if (!(flags & O_NONBLOCK)) fcntl(sock, F_SETFL, flags | O_NONBLOCK);
  int err = connect(sock, reinterpret_cast<const sockaddr*>(&a), len) == 0 ? 0 : errno;
  if (!(flags & O_NONBLOCK)) fcntl(sock, F_SETFL, flags);
  return err;
}

// The address that reaches the inode `pin` holds: through ward's own
// descriptor, not a path the workload could change.
socklen_t PinAddress(int pin, sockaddr_un* a) {
  *a = {};
  a->sun_family = AF_UNIX;
  int n = snprintf(a->sun_path, sizeof a->sun_path, "/proc/self/fd/%d", pin);
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + static_cast<size_t>(n) + 1);
}

// While alive, the calling thread acts as the workload of a root caller's
// sandbox (its host uid and gid, no supplementary groups), so that the
// kernel's permission check on the socket and the peer credentials a server
// reads (SO_PEERCRED) are the workload's. Raw system calls: glibc's wrappers
// would change every thread of ward. The real and saved uid stay 0, so the
// thread takes root (and its capabilities) back; should it not, ward aborts
// (the sandbox dies with it) rather than go on with a thread whose identity
// it does not know.
class ActAs {
 public:
  ActAs(uid_t uid, gid_t gid) {
    ngroups_ = static_cast<int>(syscall(SYS_getgroups, kMaxGroups, groups_));
    ok_ = ngroups_ >= 0 && syscall(SYS_setgroups, 0, nullptr) == 0 && syscall(SYS_setresgid, -1, gid, -1) == 0 &&
          syscall(SYS_setresuid, -1, uid, -1) == 0;
    if (!ok_) err_ = errno;
  }
  ~ActAs() {
    if (syscall(SYS_setresuid, -1, 0, -1) != 0 || syscall(SYS_setresgid, -1, 0, -1) != 0 ||
        (ngroups_ >= 0 && syscall(SYS_setgroups, ngroups_, groups_) != 0)) {
      abort();
    }
  }
  ActAs(const ActAs&) = delete;
  ActAs& operator=(const ActAs&) = delete;
  // 0, or why the thread could not take the identity.
  int error() const { return ok_ ? 0 : err_; }

 private:
  static constexpr int kMaxGroups = 256;
  gid_t groups_[kMaxGroups];
  int ngroups_ = -1;
  bool ok_ = false;
  int err_ = 0;
};

struct Job {
  Notice notice;
  UniqueFd sock;
  UniqueFd pin;  // the inode connected to (invalid: `address` is used as is)
  sockaddr_un address{};
  socklen_t address_len = 0;
  std::optional<uid_t> uid;  // set: the worker takes these credentials first
  std::optional<gid_t> gid;
  bool blocking = false;
  int stop_fd = -1;
};

// The connect() a blocking socket would make: waits for room in a full
// backlog, while the call waits (SO_SNDTIMEO bounds it, as the kernel's).
int ConnectWaiting(Job& job) {
  int64_t deadline = -1;
  timeval tv{};
  socklen_t len = sizeof tv;
  if (getsockopt(job.sock.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, &len) == 0 && (tv.tv_sec || tv.tv_usec)) {
    deadline = MonotonicMs() + int64_t{tv.tv_sec} * 1000 + tv.tv_usec / 1000;
  }
  for (;;) {
    int err = ConnectNow(job.sock.get(), job.address, job.address_len);
    if (err != EAGAIN || !job.blocking) return err;
    if (deadline >= 0 && RemainingMs(deadline) <= 0) return EAGAIN;
    if (WaitFor(job.stop_fd, POLLIN, -1, 5) != WaitStatus::kTimeout) return ECONNABORTED;
    if (!StillWaiting(job.notice)) return ECONNABORTED;
  }
}

void RunJob(Job& job) {
  if (job.uid) {
    // Only this thread: raw system calls (glibc's wrappers would change
    // every thread of ward). One thread per job: it never serves another.
    if (syscall(SYS_setgroups, 0, nullptr) != 0 || syscall(SYS_setresgid, *job.gid, *job.gid, *job.gid) != 0 ||
        syscall(SYS_setresuid, *job.uid, *job.uid, *job.uid) != 0) {
      return Answer(job.notice, errno);
    }
  }
  int err = ConnectWaiting(job);
  if (err == ECONNABORTED && !StillWaiting(job.notice)) return;
  Answer(job.notice, err);
}

EgressEvent UnixEvent(bool allowed, std::string path, std::string rule, std::string reason) {
  EgressEvent e;
  e.kind = EgressEvent::Kind::kUnix;
  e.time_ns = MonotonicNs();
  e.allowed = allowed;
  e.path = std::move(path);
  e.rule = std::move(rule);
  e.reason = std::move(reason);
  return e;
}

}  // namespace

void UnixGate::Connect(const Notice& n, int pidfd, UniqueFd sock, int stop_fd, ConnectNotifyHooks& hooks) {
  auto job = std::make_shared<Job>();
  job->notice = n;
  job->stop_fd = stop_fd;
  if (n.args[2] > sizeof job->address) return Answer(n, EINVAL);
  job->address_len = static_cast<socklen_t>(n.args[2]);
  if (job->address_len < sizeof(sa_family_t)) return Answer(n, EINVAL);
  if (!ReadMemory(n.pid, n.args[1], &job->address, job->address_len)) return Answer(n, EFAULT);
  if (!StillWaiting(n)) return;  // the memory read was the caller's
  int flags = fcntl(sock.get(), F_GETFL);
  job->blocking = flags >= 0 && !(flags & O_NONBLOCK);
  job->sock = std::move(sock);

  const sockaddr_un& a = job->address;
  const size_t path_room = job->address_len - offsetof(sockaddr_un, sun_path);
  const bool named = a.sun_family == AF_UNIX && path_room > 0;
  if (named && a.sun_path[0] == '\0') {
    // An abstract name: looked up in the socket's network namespace. The
    // sandbox's own holds only its own; the host's are the host's.
    std::string name(a.sun_path + 1, path_room - 1);
    if (!config_.diag.valid()) {
      hooks.RecordEvent(UnixEvent(false, "@" + name, "",
                                  "an abstract unix socket of the host's network (the sandbox shares it): refused"));
      return Answer(n, EACCES);
    }
    job->uid = config_.uid;  // the sandbox's own server reads the workload's credentials
    job->gid = config_.gid;
  } else if (named) {
    std::string path(a.sun_path, strnlen(a.sun_path, path_room));
    int err = Resolve(n.pid, pidfd, path, &job->pin);
    // Checked after reading /proc/TID: the thread id still named the caller
    // (a thread waiting here cannot have exited and had its id reused).
    if (!StillWaiting(n)) return;
    if (err != 0) return Answer(n, err);
    struct stat st {};
    if (fstat(job->pin.get(), &st) != 0) return Answer(n, errno);
    if (!S_ISSOCK(st.st_mode)) return Answer(n, ECONNREFUSED);  // as the kernel says
    Decision d = Decide(n, st.st_dev, st.st_ino);
    if (!d.allowed || d.as_caller) hooks.RecordEvent(UnixEvent(d.allowed, path, d.rule, d.reason));
    if (!d.allowed) return Answer(n, EACCES);
    job->address_len = PinAddress(job->pin.get(), &job->address);
    if (!d.as_caller && config_.uid) {
      job->uid = config_.uid;
      job->gid = config_.gid;
    }
  }
  // Anything else (AF_UNSPEC, another family, the unnamed address): made as
  // asked, on ward's copy of the socket; the kernel answers it.
  int err = 0;
  if (job->uid) {
    ActAs as(*job->uid, *job->gid);
    err = as.error() ? as.error() : ConnectNow(job->sock.get(), job->address, job->address_len);
  } else {
    err = ConnectNow(job->sock.get(), job->address, job->address_len);
  }
  if (err != EAGAIN || !job->blocking) return Answer(n, err);
  // A blocking socket and a full backlog: the wait for room is a worker's,
  // so that this thread never blocks.
  // At most kMaxWorkers at once: a workload could hold one per thread of
  // its own in a full backlog.
  if (workers_->fetch_add(1) >= kMaxWorkers) {
    workers_->fetch_sub(1);
    return Answer(n, EAGAIN);
  }
  bool started = hooks.SpawnWorker([job, workers = workers_] {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);  // a signal to ward must not cut a connect() short
    RunJob(*job);
    workers->fetch_sub(1);
  });
  if (!started) {
    workers_->fetch_sub(1);
    Answer(n, EAGAIN);
  }
}

UnixGate::Decision UnixGate::Decide(const Notice& n, dev_t dev, ino_t ino) {
  for (const UnixListed& l : config_.listed) {
    if (l.dev == dev && l.ino == ino) return {true, true, l.path, "listed in filesystem.unix"};
  }
  if (OnPrivateFilesystem(n, dev)) return {true, false, "", "on a private filesystem of the sandbox"};
  if (config_.diag.valid() && ServedInSandboxNetwork(dev, ino)) {
    return {true, false, "", "served by a socket of the sandbox's network namespace"};
  }
  return {false, false, "",
          "a unix socket served from outside the sandbox, not listed in filesystem.unix: refused (EACCES)"};
}

bool UnixGate::OnPrivateFilesystem(const Notice& n, dev_t dev) {
  std::lock_guard lock(mu_);
  if (!private_devs_) {
    // The sandbox's tmpfs mounts that are not the host's (a grant of the
    // host's /run is a tmpfs too, with the host's device number). The
    // workload cannot mount, so the set is read once, from a caller that
    // still waits after it was read (its thread id was not reused).
    DevSet sandbox = MountDevices("/proc/" + std::to_string(n.pid) + "/mountinfo", true);
    if (sandbox.empty() || !StillWaiting(n)) return false;  // decided again next time
    DevSet host = MountDevices("/proc/self/mountinfo", false);
    private_devs_.emplace();
    for (const auto& d : sandbox) {
      if (!host.count(d)) private_devs_->insert(d);
    }
  }
  return private_devs_->count({major(dev), minor(dev)}) > 0;
}

bool UnixGate::ServedInSandboxNetwork(dev_t dev, ino_t ino) {
  // The kernel's device number encoding (MKDEV: 12 bits major, 20 minor).
  const uint32_t want_dev = (major(dev) << 20) | minor(dev);
  // unix_diag reports 32 bits of the inode number: a larger one cannot be
  // told apart, so it is not judged the sandbox's.
  if (ino > UINT32_MAX) return false;
  bool found = false;
  int err = DumpBoundUnixSockets(config_.diag.get(), ++diag_seq_, [&](uint32_t d, uint64_t i) {
    if (d == want_dev && i == ino) found = true;
  });
  return err == 0 && found;
}

int DumpBoundUnixSockets(int diag_fd, uint32_t seq, const std::function<void(uint32_t dev, uint64_t ino)>& each) {
  // Every unix socket of the namespace with its filesystem inode
  // (UDIAG_SHOW_VFS).
  struct {
    nlmsghdr nlh;
    unix_diag_req req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.nlh.nlmsg_seq = seq;
  msg.req.sdiag_family = AF_UNIX;
  msg.req.udiag_states = ~0U;
  msg.req.udiag_show = UDIAG_SHOW_VFS;
  // Only the kernel may answer: the socket is connected to it (portid 0),
  // so that no other socket of the namespace can send to it at all, and a
  // message from anyone else is dropped. The workload lives in this
  // namespace and could otherwise forge a dump that names a host socket.
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (connect(diag_fd, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) != 0) return errno;
  if (send(diag_fd, &msg, sizeof msg, 0) != static_cast<ssize_t>(sizeof msg)) return errno;
  alignas(nlmsghdr) char buf[32768];
  for (;;) {
    sockaddr_nl from{};
    socklen_t from_len = sizeof from;
    ssize_t len = recvfrom(diag_fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
    if (len < 0) return errno;
    if (len == 0) return EPROTO;
    if (from.nl_pid != 0) continue;
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, static_cast<unsigned>(len)); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != seq) continue;
      if (h->nlmsg_type == NLMSG_DONE) return 0;
      if (h->nlmsg_type == NLMSG_ERROR) {
        auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
        return e->error ? -e->error : EPROTO;
      }
      auto* m = static_cast<unix_diag_msg*>(NLMSG_DATA(h));
      int attr_len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof *m));
      for (auto* rta = reinterpret_cast<rtattr*>(m + 1); RTA_OK(rta, attr_len); rta = RTA_NEXT(rta, attr_len)) {
        if (rta->rta_type != UNIX_DIAG_VFS || RTA_PAYLOAD(rta) < sizeof(unix_diag_vfs)) continue;
        auto* vfs = static_cast<unix_diag_vfs*>(RTA_DATA(rta));
        each(vfs->udiag_vfs_dev, vfs->udiag_vfs_ino);
      }
    }
  }
}

}  // namespace ward::net
