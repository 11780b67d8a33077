// Passing descriptors over a unix socket (SCM_RIGHTS), one message with a
// one-byte payload. SendFds is async-signal-safe (no allocation): the
// sandbox's child uses it between clone() and exec.
#pragma once

#include <cstddef>
#include <vector>

#include "base/unique_fd.h"

namespace ward {

constexpr size_t kMaxPassedFds = 16;

// Sends `count` (<= kMaxPassedFds) descriptors. Returns 0 or the errno.
int SendFds(int channel, const int* fds, size_t count);

// Receives up to `max` (<= kMaxPassedFds) descriptors, close-on-exec.
// Returns them (fewer, or none, if the sender sent fewer or closed the
// channel: its own report says why); `truncated` is set if the kernel had
// to drop some.
std::vector<UniqueFd> ReceiveFds(int channel, size_t max, bool* truncated = nullptr);

// Sends `count` (<= kMaxPassedFds) descriptors with `len` (>= 1) bytes of
// data in one message. Returns 0 or the errno. Async-signal-safe.
int SendFdsWithData(int channel, const int* fds, size_t count, const void* data, size_t len);

// Receives one message: up to `len` bytes into `data` (*got: how many; 0 at
// end of file) and up to `max_fds` descriptors into `fds` (*count),
// close-on-exec. Returns 0 or the errno (EMSGSIZE if descriptors or data
// were cut off). Async-signal-safe (the sandbox's child uses it).
int ReceiveFdsWithData(int channel, int* fds, size_t max_fds, size_t* count, void* data, size_t len, size_t* got);

// Waits for one byte on `fd` (the supervisor's go-ahead). Returns 0, the
// errno, or EPIPE if the other end closed. Async-signal-safe.
int WaitForByte(int fd);

}  // namespace ward
