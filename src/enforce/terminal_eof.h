// The end of a stdin that is not a terminal, told to a program on ward's
// terminal (--pty). A terminal has no end of input of its own: its reader
// sees one when the line discipline, in canonical mode (ICANON), takes the
// VEOF character (^D) on an empty line. That character means nothing to the
// line discipline in non-canonical mode, where it reaches the reader as a
// byte: readline (bash, python3's REPL) reads the terminal that way and takes
// ^D on an empty line as the end itself.
//
// So when the character is written matters. Written at once after the last
// byte of input (as ward did), it reached the line discipline in canonical
// mode, before the program had even started or while it ran a command, and
// readline, switching to non-canonical mode for its next line, read the
// canonical end-of-file mark as a NUL byte: `printf 'echo hi\n' | ward run
// --pty -- bash` never ended. util-linux's `script` waits (up to 2 s) for the
// program to drain its input first; ward goes further and looks at the
// terminal, through a slave descriptor of its own, until the program has
// read the end:
//   - VEOF is written only when the program has read everything before it
//     (nothing unread on the slave), in the mode the terminal is in then;
//   - one that waits unread while the program changes the mode (a canonical
//     mark would be read as NUL, a ^D byte as data) is flushed and written
//     anew in the new mode, when it is all that is unread;
//   - each read of the end in canonical mode gets another one, as every
//     read at the end of a file returns 0 (`sh -c 'cat; cat'`); in
//     non-canonical mode ^D is a key like any other, given once each time
//     the program takes the terminal out of canonical mode (readline does,
//     for every line), so an editor is not sent a stream of ^D.
// What a terminal cannot tell stays untold: a last line without a newline
// reaches a non-canonical reader as a line still being typed, and ^D then
// only ends input on an empty line.
#pragma once

#include <termios.h>

namespace ward {

// Decides, from what the terminal shows, when to write its VEOF. Pure: the
// caller looks (LookAtTerminal) and writes.
class TerminalEof {
 public:
  struct View {
    bool canonical = true;  // ICANON set
    bool unread = false;    // anything the program has not read: a line, an end-of-file mark, or (raw) any byte
    int unread_bytes = 0;   // TIOCINQ (canonical: complete lines only, end-of-file marks not counted)
  };
  enum class Step {
    kWait,
    kWrite,          // write VEOF now, then call Wrote
    kFlushAndWrite,  // the unread input is only our VEOF, misread in the new mode: flush it (TCIFLUSH), write anew
  };

  Step Next(const View& now);
  // The character was written while the terminal showed `canonical`.
  void Wrote(bool canonical);

 private:
  bool told_ = false;            // a VEOF of ours is unread
  bool told_canonical_ = false;  // the mode it was written in
  bool raw_taken_ = false;       // a ^D was read in non-canonical mode, which has not been left since
};

// What the terminal `slave` shows now, and its VEOF character. False once it
// is hung up (the program's session ended) or cannot be asked: nobody is
// left to tell.
bool LookAtTerminal(int slave, TerminalEof::View* view, cc_t* veof);

}  // namespace ward
