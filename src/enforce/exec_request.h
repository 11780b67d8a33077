// A held sandbox's init (enforce/child.h, LaunchOptions::hold) starts
// processes on request: the messages between it and its supervisor, on one
// SOCK_SEQPACKET socket pair. Fixed layouts, so that init parses them
// without allocating (it runs after clone of a multi-threaded supervisor).
//
// Trust: only the supervisor writes requests; it builds each one itself from
// what its owner asked (lifecycle/control.h) and the sandbox's compiled plan.
// Init still checks every length against the message it read, so a wrong
// request is refused, never read out of bounds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ward {

// Supervisor -> init.
enum ExecOp : uint32_t {
  kExecStart = 1,    // fork, set up, execve (strings + stdio descriptors follow)
  kExecSignal = 2,   // `sig` to the process group of exec `id`
  kExecStopAll = 3,  // SIGTERM to every process of the sandbox (stop)
};

// What fd 0..2 of a started process become.
enum ExecStdio : uint32_t {
  kStdioPassed = 0,     // the next descriptor passed with the request
  kStdioDevFirst = 10,  // kStdioDevFirst + i: kExecDevices[i] of the sandbox's /dev, opened with `stdio_flags`
};
inline constexpr const char* kExecDevices[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"};
inline constexpr uint32_t kExecDeviceCount = sizeof kExecDevices / sizeof kExecDevices[0];

inline constexpr uint32_t kExecPty = 1;  // flags: a terminal of the sandbox's devpts
// flags: the last descriptor passed is a gate. The started process reads
// one byte from it before its execve: 'g' lets it run; anything else, or the
// gate's end, refuses it (kStepAudit). The supervisor records the exec's
// start meanwhile, while init forks and sets the process up.
inline constexpr uint32_t kExecGated = 2;

// Requests carry cwd, argv and envp as NUL-terminated strings after the
// header; at most this much in all (ARG_MAX is larger: a longer command
// line is refused by the supervisor with a clear message).
inline constexpr size_t kExecMaxStrings = 120 * 1024;
// Processes started and not yet reaped that init tracks at once.
inline constexpr size_t kExecMaxRunning = 256;

struct ExecHeader {
  uint32_t op;
  uint32_t id;          // the supervisor's number for this exec
  int32_t sig;          // kExecSignal
  uint32_t flags;       // kExecPty
  uint32_t argc, envc;  // strings: cwd, then argc argv, then envc envp
  uint32_t stdio[3];    // ExecStdio
  uint32_t stdio_flags[3];
  uint32_t strings_len;
};

struct ExecMessage {
  ExecHeader h;
  char strings[kExecMaxStrings];
};

// Appends `s` (with its NUL) to `m`'s strings at `*len`; false, and nothing
// appended, if it would pass kExecMaxStrings.
inline bool AppendExecString(ExecMessage& m, size_t* len, const char* s, size_t n) {
  if (*len + n + 1 > kExecMaxStrings) return false;
  for (size_t i = 0; i < n; ++i) m.strings[*len + i] = s[i];
  m.strings[*len + n] = '\0';
  *len += n + 1;
  return true;
}

// Walks the strings of a request `got` bytes long: `each(i, s)` for each,
// i = 0 the cwd, 1..argc argv, then envp. False, part-way through, if the
// header's counts or length do not match what the message holds. Allocates
// nothing: init uses it too.
template <typename Each>
bool ForEachExecString(const ExecMessage& m, size_t got, Each&& each) {
  const ExecHeader& h = m.h;
  if (got < sizeof h || h.strings_len > got - sizeof h || h.strings_len > kExecMaxStrings || h.argc < 1) return false;
  const char* p = m.strings;
  const char* end = m.strings + h.strings_len;
  const size_t total = 1 + static_cast<size_t>(h.argc) + h.envc;
  for (size_t i = 0; i < total; ++i) {
    const char* nul = static_cast<const char*>(memchr(p, 0, static_cast<size_t>(end - p)));
    if (!nul) return false;
    each(i, p);
    p = nul + 1;
  }
  return true;
}

// Init (or the process it forked) -> supervisor.
enum ExecEventType : uint32_t {
  kEvReady = 1,     // init serves requests (sent once, after set-up), with a descriptor of each persistent area
  kEvStarted = 2,   // exec `id` forked: `value` its pid in the sandbox
  kEvPty = 3,       // exec `id`'s terminal: master and a read-only slave passed
  kEvFailed = 4,    // exec `id` could not start: `step` (enforce/child.h Step) and `err`
  kEvExited = 5,    // exec `id` ended: `value` its wait status
  kEvRefused = 6,   // a request init refused: `err` (E2BIG, EAGAIN: too many running, EINVAL)
};

struct ExecEvent {
  uint32_t type;
  uint32_t id;
  int32_t step;
  int32_t err;
  int64_t value;
};

}  // namespace ward
