// The workload's stdin, stdout and stderr. ward never hands the workload a
// descriptor of a host object whose mode, owner, times or (for stdin)
// contents it could change: a regular file, a named FIFO, a terminal, a
// directory or a device the caller redirected. Only what is already
// anonymous passes through unchanged (pipes and sockets, e.g. an agent
// framework's); /dev/null, zero, full, random and urandom are opened anew
// from the sandbox's own read-only /dev; everything else is bridged through
// a pipe that the supervisor pumps (a terminal is never passed through raw:
// `--pty` gives a terminal of the sandbox's own).
//
// The pumps never block the supervisor: each direction holds one buffer,
// reads only when it is empty and writes only what poll() says fits, so the
// deadline and signals are always served.
#pragma once

#include <poll.h>

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/unique_fd.h"
#include "enforce/terminal_eof.h"
#include "ward/result.h"

namespace ward {

// What the sandbox's fd 0..2 become (prepared before clone).
struct StdioPlan {
  // A descriptor to dup2 into fd i in the sandbox's init, or -1.
  std::array<int, 3> child_fd{-1, -1, -1};
  // Else a node of the sandbox's /dev to open (e.g. "/dev/null") with
  // `reopen_flags`, or nullptr to keep the inherited descriptor.
  std::array<const char*, 3> reopen{nullptr, nullptr, nullptr};
  std::array<int, 3> reopen_flags{0, 0, 0};
};

// Copies bytes from `from` to `to` through one buffer without blocking the
// caller's loop.
class Pump {
 public:
  // `own`: ward's pipe end (`from` or `to`), closed when the pump is done
  // (so the workload sees EOF on its stdin, or EPIPE once the caller's
  // output is gone). `chunk`: the most written per wake-up to a descriptor
  // ward cannot make non-blocking (a host terminal or FIFO).
  Pump(int from, int to, UniqueFd own, size_t chunk);
  // The poll entry for this round (fd -1 when idle).
  pollfd Want() const;
  // Acts on the revents of the entry Want() returned.
  void Service(short revents);
  // The most this pump lets poll() wait (ms), or -1: while it tells a
  // terminal's reader that input ended, it looks at the terminal again
  // after a few milliseconds (no event says the reader took its input).
  int TimeoutMs(int64_t now_ns) const;
  // Acts on time passing (see TimeoutMs); `now_ns`: CLOCK_MONOTONIC.
  void Tick(int64_t now_ns);
  // True once the input ended and everything read was written (or the
  // output went away).
  // Keeps `fd` (ward's own reopened copy of the caller's descriptor) open
  // for as long as the pump runs.
  void Hold(UniqueFd fd) { held_ = std::move(fd); }
  bool Done() const { return done_; }
  // A pump into the sandbox (its stdin): not waited for once the sandbox
  // is gone.
  bool input() const { return input_; }
  void MarkInput() { input_ = true; }
  // The input goes to a terminal's master (--pty); `slave` is a descriptor
  // of the same terminal's slave, which the pump only looks at (poll,
  // TIOCINQ, tcgetattr) and flushes. Its end is told as a terminal tells it,
  // with the terminal's VEOF character, when and as often as the program
  // can read it as the end (enforce/terminal_eof.h); until the pump is
  // closed.
  void MarkTerminalInput(UniqueFd slave) {
    terminal_ = true;
    slave_ = std::move(slave);
  }
  // Closes ward's own descriptors (and the slave: a master whose slaves are
  // all closed reads EIO, the end of the terminal's output).
  void Close();

  uint64_t written() const { return written_; }

 private:
  int from_, to_;
  uint64_t written_ = 0;
  UniqueFd own_, held_;
  size_t chunk_;
  std::vector<char> buf_;
  size_t off_ = 0, len_ = 0;
  bool done_ = false, input_ = false;
  // --pty: the input ended and was all written; its end is being told.
  bool terminal_ = false, telling_ = false;
  UniqueFd slave_;
  TerminalEof eof_;
  TerminalEof::View seen_;
  int64_t next_look_ns_ = 0, look_interval_ns_ = 0;
};

// The caller's `fd` (0: read, else write) opened anew as ward's own
// non-blocking file description, for a terminal, FIFO or device; an invalid
// UniqueFd for a regular file (never blocks) or when it cannot be reopened.
UniqueFd ReopenNonBlocking(int fd);

// Classifies fd 0..2 and makes the pipes and pumps that bridge them.
// `pumps` and the supervisor's ends are kept in the returned object; the
// child's ends must be closed in the supervisor after clone (CloseChildEnds).
class StdioBridge {
 public:
  static Result<StdioBridge> Prepare();
  const StdioPlan& plan() const { return plan_; }
  void CloseChildEnds();
  // After the run: a seekable stdin's offset set to where the workload's
  // reading stopped (ward reads ahead through its own file description).
  void SettleStdin();
  std::vector<Pump>& pumps() { return pumps_; }

 private:
  StdioPlan plan_;
  std::vector<UniqueFd> child_ends_;
  // Seekable stdin: the caller's offset at start, and ward's copy of the
  // pipe's read end (what is still in the pipe was not consumed).
  off_t stdin_start_ = -1;
  UniqueFd stdin_pipe_;
  std::vector<Pump> pumps_;
};

}  // namespace ward
