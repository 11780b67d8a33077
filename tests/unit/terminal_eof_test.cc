// The end of a piped stdin told to a program on ward's terminal (--pty,
// enforce/terminal_eof.h): the decision alone, then a real pty with the
// supervisor's input pump and readers that read it as cat, `sh -c 'cat;
// cat'`, readline and an editor do.
#include "enforce/terminal_eof.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <functional>
#include <string>

#include "enforce/stdio.h"

namespace ward {
namespace {

using Step = TerminalEof::Step;

TerminalEof::View Canonical(bool unread, int bytes = 0) { return {true, unread, bytes}; }
TerminalEof::View Raw(bool unread, int bytes = 0) { return {false, unread, bytes}; }

TEST(TerminalEofDecision, WaitsForTheInputToBeRead) {
  TerminalEof e;
  EXPECT_EQ(e.Next(Canonical(true, 8)), Step::kWait);
  EXPECT_EQ(e.Next(Raw(true, 8)), Step::kWait);
  EXPECT_EQ(e.Next(Canonical(false)), Step::kWrite);
}

// Canonical mode: every read of the end gets another, as at the end of a file.
TEST(TerminalEofDecision, EachCanonicalReadOfTheEndGetsAnother) {
  TerminalEof e;
  ASSERT_EQ(e.Next(Canonical(false)), Step::kWrite);
  e.Wrote(true);
  EXPECT_EQ(e.Next(Canonical(true)), Step::kWait);  // the mark, unread (TIOCINQ counts it 0)
  EXPECT_EQ(e.Next(Canonical(false)), Step::kWrite);
  e.Wrote(true);
  EXPECT_EQ(e.Next(Canonical(true)), Step::kWait);
}

// The bug: a mark written in canonical mode, then readline switches to raw
// mode, where the mark is a NUL byte. Flushed and told anew as ^D.
TEST(TerminalEofDecision, MarkMisreadInRawModeIsToldAnew) {
  TerminalEof e;
  ASSERT_EQ(e.Next(Canonical(false)), Step::kWrite);
  e.Wrote(true);
  EXPECT_EQ(e.Next(Raw(true, 1)), Step::kFlushAndWrite);
  e.Wrote(false);
  EXPECT_EQ(e.Next(Raw(true, 1)), Step::kWait);
  // Read in raw mode: no more ^D until the program leaves raw mode (an
  // editor gets one, not a stream).
  EXPECT_EQ(e.Next(Raw(false)), Step::kWait);
  EXPECT_EQ(e.Next(Raw(false)), Step::kWait);
  // readline's next line: canonical mode in between, then raw again.
  EXPECT_EQ(e.Next(Canonical(false)), Step::kWrite);
  e.Wrote(true);
  EXPECT_EQ(e.Next(Raw(true, 1)), Step::kFlushAndWrite);
}

// A ^D written in raw mode, then the program reads in canonical mode: a
// byte there, flushed and told anew as the mark.
TEST(TerminalEofDecision, RawEofMisreadInCanonicalModeIsToldAnew) {
  TerminalEof e;
  ASSERT_EQ(e.Next(Raw(false)), Step::kWrite);
  e.Wrote(false);
  EXPECT_EQ(e.Next(Canonical(true, 1)), Step::kFlushAndWrite);
}

// Misread already (the program took the NUL before ward looked), or behind
// bytes of the program's input: never flushed, told again once read.
TEST(TerminalEofDecision, NeverFlushesTheProgramsInput) {
  TerminalEof e;
  ASSERT_EQ(e.Next(Canonical(false)), Step::kWrite);
  e.Wrote(true);
  EXPECT_EQ(e.Next(Raw(true, 5)), Step::kWait);  // "abcd" of a partial line, then the mark
  EXPECT_EQ(e.Next(Raw(false)), Step::kWrite);   // read, misread: told in raw mode
  e.Wrote(false);
  EXPECT_EQ(e.Next(Raw(false)), Step::kWait);
}

// ---------------------------------------------------------------------------
// A real pty.

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

void SetCanonical(bool on) {
  termios t{};
  tcgetattr(0, &t);
  if (on) {
    t.c_lflag |= ICANON;
  } else {
    t.c_lflag &= ~ICANON;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
  }
  tcsetattr(0, TCSANOW, &t);
}

void SleepMs(int ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, nullptr);
}

class TerminalEofPty : public ::testing::Test {
 protected:
  // Writes `input` through a pump into a new pty (in canonical mode, or
  // raw) and runs `reader` on its slave (fd 0, in a session of its own),
  // which writes what it saw to fd 1; drives the pump as the supervisor
  // does until the reader exits. Returns the reader's transcript.
  std::string Run(const std::string& input, const std::function<void()>& reader, bool raw = false) {
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    EXPECT_GE(master, 0);
    EXPECT_EQ(unlockpt(master), 0);
    int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    EXPECT_GE(slave, 0);
    termios t{};
    tcgetattr(slave, &t);
    t.c_lflag &= ~ECHO;  // nothing to drain from the master
    if (raw) {
      t.c_lflag &= ~ICANON;
      t.c_cc[VMIN] = 1;
      t.c_cc[VTIME] = 0;
    }
    tcsetattr(slave, TCSANOW, &t);
    fcntl(master, F_SETFL, O_NONBLOCK);
    int in[2], out[2];
    EXPECT_EQ(pipe2(in, O_CLOEXEC), 0);
    EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
    EXPECT_EQ(write(in[1], input.data(), input.size()), static_cast<ssize_t>(input.size()));
    close(in[1]);

    pid_t pid = fork();
    if (pid == 0) {
      setsid();
      dup2(slave, 0);
      dup2(out[1], 1);
      reader();
      _exit(0);
    }
    close(slave);
    close(out[1]);
    Pump pump(in[0], master, UniqueFd(in[0]), 64 * 1024);
    pump.MarkInput();
    pump.MarkTerminalInput(UniqueFd(ioctl(master, TIOCGPTPEER, O_RDONLY | O_NOCTTY | O_CLOEXEC)));
    const int64_t deadline = NowNs() + 10 * 1000000000LL;
    int status = -1;
    while (waitpid(pid, &status, WNOHANG) == 0) {
      if (NowNs() > deadline) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        ADD_FAILURE() << "the reader never saw the end of its input";
        break;
      }
      pollfd p = pump.Want();
      int t_ms = pump.TimeoutMs(NowNs());
      poll(&p, 1, t_ms < 0 || t_ms > 20 ? 20 : t_ms);
      pump.Service(p.revents);
      pump.Tick(NowNs());
    }
    pump.Close();
    std::string got;
    char buf[4096];
    ssize_t n;
    while ((n = read(out[0], buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
    close(out[0]);
    close(master);
    return got;
  }
};

void Say(const std::string& s) { (void)!write(1, s.data(), s.size()); }

// cat: reads in canonical mode to the end.
void Cat() {
  char buf[256];
  ssize_t n;
  while ((n = read(0, buf, sizeof buf)) > 0) Say(std::string(buf, static_cast<size_t>(n)));
  Say(n == 0 ? "<EOF>" : "<error>");
}

TEST_F(TerminalEofPty, CatSeesTheEnd) {
  EXPECT_EQ(Run("one\ntwo\n", Cat), "one\ntwo\n<EOF>");
  // A last line without a newline: delivered, then the end.
  EXPECT_EQ(Run("one\ntwo", Cat), "one\ntwo<EOF>");
  EXPECT_EQ(Run("", Cat), "<EOF>");
}

// `sh -c 'cat; cat'`: the second reader sees the end too, as with a file.
TEST_F(TerminalEofPty, EveryReadAtTheEndSeesIt) {
  EXPECT_EQ(Run("one\n",
                [] {
                  Cat();
                  Cat();
                }),
            "one\n<EOF><EOF>");
}

// What readline does: each line read in non-canonical mode, byte by byte,
// ^D on an empty line the end; the command run in canonical mode in between
// (`command_ms`); `settle_ms` between taking the terminal raw and reading.
void Readline(int command_ms, int settle_ms) {
  termios t{};
  tcgetattr(0, &t);
  const char veof = static_cast<char>(t.c_cc[VEOF]);
  for (;;) {
    SetCanonical(false);
    SleepMs(settle_ms);
    std::string line;
    for (;;) {
      char c;
      if (read(0, &c, 1) != 1) {
        Say("<error>");
        return;
      }
      if (c == veof && line.empty()) {
        Say("<EOF>");
        SetCanonical(true);
        return;
      }
      if (c == '\0') {
        Say("<NUL>");  // readline: set-mark, no text
        continue;
      }
      if (c == '\n' || c == '\r') break;
      line += c;
    }
    SetCanonical(true);
    Say("line:" + line + "\n");
    SleepMs(command_ms);
  }
}

TEST_F(TerminalEofPty, ReadlineSeesTheEnd) {
  EXPECT_EQ(Run("one\ntwo\n", [] { Readline(0, 0); }), "line:one\nline:two\n<EOF>");
}

// The bug: the last command runs long in canonical mode, where the end is
// written as the mark; readline then switches to raw mode and would read a
// NUL. Told anew as ^D before it reads (settle_ms: ward looks within 100 ms;
// 1 s leaves a loaded machine time to schedule it).
TEST_F(TerminalEofPty, EndWrittenWhileTheLastCommandRunsReachesReadline) {
  EXPECT_EQ(Run("one\ntwo\n", [] { Readline(300, 1000); }), "line:one\nline:two\n<EOF>");
  // Reading at once: it may take the NUL first, then the ^D.
  std::string got = Run("one\ntwo\n", [] { Readline(300, 0); });
  EXPECT_TRUE(got == "line:one\nline:two\n<EOF>" || got == "line:one\nline:two\n<NUL><EOF>") << got;
}

// An editor: raw mode throughout, ^D is a key. Sent once, not a stream.
TEST_F(TerminalEofPty, RawReaderGetsOneEof) {
  std::string got = Run(
      "x",
      [] {
        // Until the ^D (at most 10 s), then 300 ms more: a second one
        // would come within them.
        fcntl(0, F_SETFL, O_NONBLOCK);
        int64_t end = NowNs() + 10000 * 1000000LL;
        bool eof = false;
        std::string seen;
        while (NowNs() < end) {
          char c;
          if (read(0, &c, 1) == 1) seen += c == 4 ? std::string("^D") : std::string(1, c);
          if (!eof && seen.ends_with("^D")) {
            eof = true;
            end = NowNs() + 300 * 1000000LL;
          }
          SleepMs(5);
        }
        Say(seen);
      },
      /*raw=*/true);
  EXPECT_EQ(got, "x^D");
}

}  // namespace
}  // namespace ward
