#include "net/relay.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "base/errors.h"
#include "net/socket_io.h"

namespace ward::net {
namespace {

// The default 64 KiB. Measured (bench/egress_bench.cc): 1 MiB pipes moved
// no more bytes per second, but cost 2 MiB of unswappable memory per
// connection and, past 16 connections, push the user over
// fs.pipe-user-pages-soft (every pipe that user makes anywhere then shrinks).
// Blocking splice() with a thread per direction (as the bench's minimal
// relay does) moved no more bytes per second than this poll loop (ward /
// minimal relay 0.69 against 0.71-0.74): the cost is in the redirected
// path (conntrack and NAT on every packet of the client's leg), not here.
constexpr int kPipeSize = 1 << 16;

struct Direction {
  int src = -1;
  int dst = -1;
  UniqueFd pipe_r, pipe_w;
  size_t in_pipe = 0;
  size_t pipe_capacity = 65536;
  std::vector<uint8_t> head;  // read into user space: the gate's bytes, then forwarded
  size_t head_sent = 0;
  bool gating = false;
  bool eof = false;   // src has ended its stream
  bool shut = false;  // dst has been shut down for writing
  uint64_t moved = 0;

  bool Pending() const { return !gating && (head_sent < head.size() || in_pipe > 0); }
  bool WantsRead() const { return !eof && (gating ? head.size() < kMaxGatedBytes : in_pipe < pipe_capacity); }
};

bool MakePipe(Direction& d, std::string* error) {
  int p[2];
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) {
    *error = "pipe2: " + ErrnoName(errno);
    return false;
  }
  d.pipe_r.Reset(p[0]);
  d.pipe_w.Reset(p[1]);
  fcntl(p[1], F_SETPIPE_SZ, kPipeSize);
  int size = fcntl(p[1], F_GETPIPE_SZ);
  if (size > 0) d.pipe_capacity = static_cast<size_t>(size);
  return true;
}

bool IsAgain(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

// Sends what is pending towards d.dst until the socket is full. False on a
// write error (`error` says which).
bool Flush(Direction& d, std::string* error) {
  while (d.head_sent < d.head.size()) {
    ssize_t n = send(d.dst, d.head.data() + d.head_sent, d.head.size() - d.head_sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && IsAgain(errno)) return true;
    if (n <= 0) {
      *error = "send: " + ErrnoName(n < 0 ? errno : EPIPE);
      return false;
    }
    d.head_sent += static_cast<size_t>(n);
    d.moved += static_cast<uint64_t>(n);
  }
  while (d.in_pipe > 0) {
    ssize_t n = splice(d.pipe_r.get(), nullptr, d.dst, nullptr, d.in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && IsAgain(errno)) return true;
    if (n <= 0) {
      *error = "splice to socket: " + ErrnoName(n < 0 ? errno : EPIPE);
      return false;
    }
    d.in_pipe -= static_cast<size_t>(n);
    d.moved += static_cast<uint64_t>(n);
  }
  return true;
}

enum class FillResult : uint8_t { kOk, kError, kGateReset };

FillResult Fill(Direction& d, const FirstBytesGate& gate, std::string* error) {
  if (d.gating) {
    uint8_t buf[4096];
    size_t room = kMaxGatedBytes - d.head.size();
    ssize_t n = recv(d.src, buf, room < sizeof(buf) ? room : sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || IsAgain(errno))) return FillResult::kOk;
    if (n < 0) {
      *error = "recv: " + ErrnoName(errno);
      return FillResult::kError;
    }
    if (n == 0) {
      d.eof = true;
      // Nothing to judge: the stream simply ends. Half-judged bytes are
      // never forwarded (a truncated ClientHello or request head could be
      // read otherwise by the server).
      if (d.head.empty()) {
        d.gating = false;
        return FillResult::kOk;
      }
      *error = "the client ended its stream before its first bytes could be judged";
      return FillResult::kGateReset;
    }
    d.head.insert(d.head.end(), buf, buf + n);
    GateVerdict v = gate(d.head);
    switch (v.kind) {
      case GateVerdict::Kind::kForward:
        d.gating = false;
        return FillResult::kOk;
      case GateVerdict::Kind::kReset:
        *error = v.reason;
        return FillResult::kGateReset;
      case GateVerdict::Kind::kNeedMore:
        if (d.head.size() >= kMaxGatedBytes) {
          *error = "the client's first " + std::to_string(d.head.size()) + " bytes are still not conclusive";
          return FillResult::kGateReset;
        }
        return FillResult::kOk;
    }
    return FillResult::kOk;
  }
  for (;;) {
    ssize_t n =
        splice(d.src, nullptr, d.pipe_w.get(), nullptr, d.pipe_capacity - d.in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && IsAgain(errno)) return FillResult::kOk;
    if (n < 0) {
      *error = "splice from socket: " + ErrnoName(errno);
      return FillResult::kError;
    }
    if (n == 0) {
      d.eof = true;
    } else {
      d.in_pipe += static_cast<size_t>(n);
    }
    return FillResult::kOk;
  }
}

// splice() into a socket the peer has closed raises SIGPIPE (it has no
// MSG_NOSIGNAL). Blocked in this thread while relaying, and discarded after,
// so the supervisor does not die of a workload's closed socket.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &old_);
  }
  ~SigpipeBlock() {
    if (sigismember(&old_, SIGPIPE)) return;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    timespec zero{};
    while (sigtimedwait(&set, nullptr, &zero) == SIGPIPE) {
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  sigset_t old_;
};

}  // namespace

RelayOutcome Relay(UniqueFd client, UniqueFd server, std::vector<uint8_t> client_head, FirstBytesGate gate,
                   int stop_fd) {
  SigpipeBlock sigpipe;
  RelayOutcome out;
  Direction up, down;  // client -> server, server -> client
  up.src = client.get();
  up.dst = server.get();
  down.src = server.get();
  down.dst = client.get();
  up.head = std::move(client_head);
  up.gating = static_cast<bool>(gate);

  auto abort = [&](std::string why) {
    out.error = std::move(why);
    ResetAndClose(client);
    ResetAndClose(server);
    out.to_server = up.moved;
    out.to_client = down.moved;
    return out;
  };

  if (!MakePipe(up, &out.error) || !MakePipe(down, &out.error)) return abort(out.error);

  if (up.gating && !up.head.empty()) {
    GateVerdict v = gate(up.head);
    if (v.kind == GateVerdict::Kind::kReset) {
      out.reset_by_gate = true;
      out.gate_reason = v.reason;
      return abort("reset: " + v.reason);
    }
    if (v.kind == GateVerdict::Kind::kForward) up.gating = false;
  }

  for (;;) {
    for (Direction* d : {&up, &down}) {
      if (!d->shut && d->eof && !d->gating && !d->Pending()) {
        shutdown(d->dst, SHUT_WR);
        d->shut = true;
      }
    }
    if (up.shut && down.shut) break;

    short client_events = 0, server_events = 0;
    if (up.WantsRead()) client_events |= POLLIN;
    if (up.Pending()) server_events |= POLLOUT;
    if (down.WantsRead()) server_events |= POLLIN;
    if (down.Pending()) client_events |= POLLOUT;
    // An fd with nothing asked of it is left out: its POLLHUP would wake
    // the loop for nothing, forever.
    pollfd pfd[3] = {{client_events ? client.get() : -1, client_events, 0},
                     {server_events ? server.get() : -1, server_events, 0},
                     {stop_fd, POLLIN, 0}};
    int n = poll(pfd, 3, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return abort("poll: " + ErrnoName(errno));
    }
    if (pfd[2].revents != 0) return abort("the proxy is stopping");

    // Pump each direction until it would block: data read into a pipe is
    // usually writable at once, and waiting for poll() to say so would
    // double the system calls per chunk. A try that would block costs one
    // EAGAIN.
    for (Direction* d : {&up, &down}) {
      for (;;) {
        uint64_t moved = d->moved;
        size_t in_pipe = d->in_pipe, head = d->head.size();
        bool eof = d->eof, gating = d->gating;
        std::string error;
        if (d->Pending() && !Flush(*d, &error)) return abort((d == &up ? "to server: " : "to client: ") + error);
        if (d->WantsRead()) {
          FillResult r = Fill(*d, gate, &error);
          if (r == FillResult::kGateReset) {
            out.reset_by_gate = true;
            out.gate_reason = error;
            return abort("reset: " + error);
          }
          if (r == FillResult::kError) return abort((d == &up ? "from client: " : "from server: ") + error);
        }
        if (moved == d->moved && in_pipe == d->in_pipe && head == d->head.size() && eof == d->eof &&
            gating == d->gating) {
          break;
        }
      }
    }
  }
  out.to_server = up.moved;
  out.to_client = down.moved;
  return out;
}

}  // namespace ward::net
