#include "enforce/terminal_eof.h"

#include <poll.h>
#include <sys/ioctl.h>

#include <cerrno>

namespace ward {

TerminalEof::Step TerminalEof::Next(const View& now) {
  if (now.canonical) raw_taken_ = false;
  if (told_) {
    if (now.unread) {
      if (now.canonical == told_canonical_) return Step::kWait;  // not read yet
      // The mode changed under it. Alone, it is ours (it was written when
      // nothing was unread) and goes anew; behind bytes of a partial line it
      // delivered, it is left to be read (misread) with them, and told again
      // once read (below).
      if (now.unread_bytes != 1) return Step::kWait;
      told_ = false;
      return Step::kFlushAndWrite;
    }
    told_ = false;  // read
    if (!now.canonical && !told_canonical_) raw_taken_ = true;
  } else if (now.unread) {
    return Step::kWait;  // the program has not read all its input yet
  }
  if (now.canonical) return Step::kWrite;
  return raw_taken_ ? Step::kWait : Step::kWrite;
}

void TerminalEof::Wrote(bool canonical) {
  told_ = true;
  told_canonical_ = canonical;
}

bool LookAtTerminal(int slave, TerminalEof::View* view, cc_t* veof) {
  termios t{};
  if (tcgetattr(slave, &t) != 0) return false;  // EIO once hung up
  // poll() first: what the master wrote reaches the line discipline through
  // a work queue, which poll() on the slave runs; TIOCINQ alone can miss it.
  pollfd pf{slave, POLLIN, 0};
  int r;
  while ((r = poll(&pf, 1, 0)) < 0 && errno == EINTR) {
  }
  if (r < 0) return false;
  if (pf.revents & (POLLHUP | POLLERR | POLLNVAL)) return false;
  int n = 0;
  if (ioctl(slave, TIOCINQ, &n) != 0) return false;
  view->canonical = (t.c_lflag & ICANON) != 0;
  // In canonical mode POLLIN also sees an end-of-file mark, which TIOCINQ
  // does not count; in non-canonical mode TIOCINQ sees bytes short of VMIN.
  view->unread = (pf.revents & POLLIN) || n > 0;
  view->unread_bytes = n;
  *veof = t.c_cc[VEOF];
  return true;
}

}  // namespace ward
