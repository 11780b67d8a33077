#include "enforce/stdio.h"

#include <fcntl.h>
#include <stdio.h>
#include <limits.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "base/errors.h"

namespace ward {

namespace {

constexpr size_t kBuffer = 64 * 1024;
// How often a pump telling a terminal's end looks at it: soon after a
// change (the program reads on at once), less often while nothing changes
// (the program may compute for hours).
constexpr int64_t kFirstLookNs = 5 * 1000000, kLastLookNs = 100 * 1000000;

// The memory devices the sandbox's /dev holds (enforce/compile.cc), by
// device number: the same device opened from there is reached through a
// read-only mount.
const char* SandboxDevice(dev_t rdev) {
  if (major(rdev) != 1) return nullptr;
  switch (minor(rdev)) {
    case 3: return "/dev/null";
    case 5: return "/dev/zero";
    case 7: return "/dev/full";
    case 8: return "/dev/random";
    case 9: return "/dev/urandom";
    default: return nullptr;
  }
}

// A pipe or a socket with no name on any filesystem. The filesystem type
// decides, not the file type: an O_PATH descriptor of a socket file or a
// named FIFO has the same S_IFSOCK/S_IFIFO mode but lives on a host
// filesystem, where its mode and owner could be changed.
bool IsAnonymous(int fd, const struct stat& st) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || (fl & O_PATH)) return false;
  struct statfs fs;
  if (fstatfs(fd, &fs) != 0) return false;
  if (S_ISSOCK(st.st_mode)) {
    // Only a connected stream or seqpacket socket passes through: it talks
    // to its one peer, and a send's address is refused on it. Any other
    // socket lives in the caller's network and could reach anywhere there
    // from the sandbox: a datagram socket names a destination in every
    // send (a unix one any socket, a UDP one any host, even connected), an
    // unconnected TCP socket connects inside a send (MSG_FASTOPEN), a
    // listening one accepts the caller's network's connections. Bridged
    // like a file.
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) return false;
    if (type != SOCK_STREAM && type != SOCK_SEQPACKET) return false;
    sockaddr_storage peer{};
    len = sizeof peer;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) return false;
    return fs.f_type == SOCKFS_MAGIC;
  }
  return S_ISFIFO(st.st_mode) && fs.f_type == PIPEFS_MAGIC;
}

// The access mode the caller's `fd` was opened with (O_RDONLY for O_PATH).
int AccessMode(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl < 0 || (fl & O_PATH) ? O_RDONLY : fl & O_ACCMODE;
}

// Whether the caller's fd 0 allows reading, or fd 1/2 writing.
bool Allows(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || (fl & O_PATH)) return false;
  const int mode = fl & O_ACCMODE;
  return mode == O_RDWR || mode == (fd == 0 ? O_RDONLY : O_WRONLY);
}

// The caller's descriptor `fd` opened anew, non-blocking, as ward's own
// file description (the caller's keeps its flags): reads and writes on a
// terminal or FIFO then never block the supervisor, whatever the workload
// or a stalled reader does (^S, a full pty, a FIFO another reader drains).
// -1 if it cannot be reopened (the caller's descriptor is used as it is).
int ReopenFd(int fd) {
  // Never more than the caller's descriptor allows (a write-only stdin is
  // not reopened for reading).
  if (!Allows(fd)) return -1;
  char path[32];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  int flags = (fd == 0 ? O_RDONLY : O_WRONLY) | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
  return open(path, flags);
}

}  // namespace

UniqueFd ReopenNonBlocking(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0 || S_ISREG(st.st_mode)) return UniqueFd();
  return UniqueFd(ReopenFd(fd));
}

Pump::Pump(int from, int to, UniqueFd own, size_t chunk)
    : from_(from), to_(to), own_(std::move(own)), chunk_(chunk), buf_(kBuffer) {}

pollfd Pump::Want() const {
  if (done_ || telling_) return {-1, 0, 0};
  if (len_ > off_) return {to_, POLLOUT, 0};
  return {from_, POLLIN, 0};
}

void Pump::Service(short revents) {
  if (done_ || !revents) return;
  if (len_ > off_) {
    // Writing: POLLOUT said there is room; write at most one chunk, so a
    // descriptor ward cannot make non-blocking (the caller's) takes what
    // fits (a pipe with room takes PIPE_BUF atomically).
    size_t n = std::min(len_ - off_, chunk_);
    ssize_t w = write(to_, buf_.data() + off_, n);
    if (w < 0) {
      if (errno == EINTR || errno == EAGAIN) return;
      Close();  // the output went away (EPIPE): nothing more can be delivered
      return;
    }
    off_ += static_cast<size_t>(w);
    written_ += static_cast<uint64_t>(w);
    if (off_ == len_) off_ = len_ = 0;
    return;
  }
  ssize_t r = read(from_, buf_.data(), buf_.size());
  if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (r <= 0) {
    // Everything read was written (reads happen only with the buffer
    // empty). A terminal's reader is told the end as it reads (Tick).
    if (terminal_ && slave_.valid()) {
      telling_ = true;
      next_look_ns_ = 0;
      look_interval_ns_ = kFirstLookNs;
      return;
    }
    Close();
    return;
  }
  len_ = static_cast<size_t>(r);
  off_ = 0;
}

int Pump::TimeoutMs(int64_t now_ns) const {
  if (done_ || !telling_) return -1;
  return next_look_ns_ <= now_ns ? 0 : static_cast<int>((next_look_ns_ - now_ns + 999999) / 1000000);
}

void Pump::Tick(int64_t now_ns) {
  if (done_ || !telling_ || now_ns < next_look_ns_) return;
  TerminalEof::View now;
  cc_t veof = _POSIX_VDISABLE;
  if (!LookAtTerminal(slave_.get(), &now, &veof)) {
    Close();  // hung up: the program's session is over
    return;
  }
  TerminalEof::Step step = eof_.Next(now);
  if (step != TerminalEof::Step::kWait && veof != _POSIX_VDISABLE) {
    // The slave is the sandbox's terminal and the unread input only ward's
    // own VEOF (TerminalEof): the flush drops nothing the program wrote or
    // the caller sent.
    if (step == TerminalEof::Step::kFlushAndWrite) tcflush(slave_.get(), TCIFLUSH);
    const char c = static_cast<char>(veof);
    ssize_t w = write(to_, &c, 1);
    if (w == 1) {
      eof_.Wrote(now.canonical);
    } else if (w < 0 && errno != EINTR && errno != EAGAIN) {
      Close();
      return;
    }
  }
  const bool changed = step != TerminalEof::Step::kWait || now.canonical != seen_.canonical ||
                       now.unread != seen_.unread || now.unread_bytes != seen_.unread_bytes;
  seen_ = now;
  look_interval_ns_ = changed ? kFirstLookNs : std::min(look_interval_ns_ * 2, kLastLookNs);
  next_look_ns_ = now_ns + look_interval_ns_;
}

void Pump::Close() {
  if (done_) return;
  done_ = true;
  telling_ = false;
  // Only ward's own descriptors are closed, never the caller's.
  own_.Reset();
  held_.Reset();
  slave_.Reset();
}

Result<StdioBridge> StdioBridge::Prepare() {
  StdioBridge b;
  struct stat st[3];
  bool valid[3];
  for (int fd = 0; fd < 3; ++fd) valid[fd] = fstat(fd, &st[fd]) == 0;
  int shared_out = -1;  // fd 2 on the same object as fd 1 shares its pipe (keeps their order)
  for (int fd = 0; fd < 3; ++fd) {
    if (!valid[fd] || IsAnonymous(fd, st[fd])) continue;
    // A memory device is opened anew from the sandbox's /dev. A descriptor
    // opened for the other direction only (`0>>log`, `1<fifo`) becomes the
    // sandbox's /dev/null, so the wrong direction fails (EBADF) as it would
    // have. Either way with the caller's access mode.
    const char* node = S_ISCHR(st[fd].st_mode) ? SandboxDevice(st[fd].st_rdev) : nullptr;
    if (!node && !Allows(fd)) node = "/dev/null";
    if (node) {
      b.plan_.reopen[fd] = node;
      b.plan_.reopen_flags[fd] = AccessMode(fd) | O_NOCTTY;
      continue;
    }
    if (fd == 2 && shared_out >= 0 && st[2].st_dev == st[1].st_dev && st[2].st_ino == st[1].st_ino) {
      b.plan_.child_fd[2] = shared_out;
      continue;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return SysError("pipe2", "stdio " + std::to_string(fd));
    UniqueFd rd(p[0]), wr(p[1]);
    // A regular file takes any write at once; a terminal or FIFO of the
    // caller takes what poll() promised: one PIPE_BUF.
    const size_t chunk = S_ISREG(st[fd].st_mode) ? kBuffer : PIPE_BUF;
    // Output to a regular file goes through the caller's own description
    // (its offset and O_APPEND are the caller's).
    const bool regular = S_ISREG(st[fd].st_mode);
    UniqueFd host(regular && fd != 0 ? -1 : ReopenFd(fd));
    if (fd == 0 && regular && host.valid()) {
      // Stdin is read ahead through ward's own description, from the
      // caller's offset, so the caller's offset can be set to what was
      // consumed (SettleStdin); where that cannot be, the caller's is read.
      off_t at = lseek(0, 0, SEEK_CUR);
      if (at >= 0 && lseek(host.get(), at, SEEK_SET) == at) b.stdin_start_ = at;
      else host.Reset();
    }
    const int host_fd = host.valid() ? host.get() : fd;
    if (fd == 0) {
      fcntl(wr.get(), F_SETFL, O_NONBLOCK);
      b.plan_.child_fd[0] = rd.get();
      int to = wr.get();
      b.pumps_.emplace_back(host_fd, to, std::move(wr), kBuffer);
      b.pumps_.back().Hold(std::move(host));
      b.pumps_.back().MarkInput();
      if (b.stdin_start_ >= 0) b.stdin_pipe_.Reset(fcntl(rd.get(), F_DUPFD_CLOEXEC, 3));
      b.child_ends_.push_back(std::move(rd));
    } else {
      fcntl(rd.get(), F_SETFL, O_NONBLOCK);
      b.plan_.child_fd[fd] = wr.get();
      if (fd == 1) shared_out = wr.get();
      int from = rd.get();
      b.pumps_.emplace_back(from, host_fd, std::move(rd), chunk);
      b.pumps_.back().Hold(std::move(host));
      b.child_ends_.push_back(std::move(wr));
    }
  }
  return b;
}

void StdioBridge::CloseChildEnds() { child_ends_.clear(); }

void StdioBridge::SettleStdin() {
  if (stdin_start_ < 0 || !stdin_pipe_.valid()) return;
  for (const Pump& p : pumps_) {
    if (!p.input()) continue;
    int unread = 0;
    if (ioctl(stdin_pipe_.get(), FIONREAD, &unread) != 0) unread = 0;
    const uint64_t consumed = p.written() - std::min<uint64_t>(p.written(), static_cast<uint64_t>(unread));
    lseek(0, stdin_start_ + static_cast<off_t>(consumed), SEEK_SET);
  }
  stdin_pipe_.Reset();
}

}  // namespace ward
