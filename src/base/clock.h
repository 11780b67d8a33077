// CLOCK_MONOTONIC, the one clock ward measures and times out with.
// Async-signal-safe (clock_gettime is): the sandbox's child reads it too.
#pragma once

#include <time.h>

#include <cstdint>

namespace ward {

inline int64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

inline int64_t MonotonicMs() { return MonotonicNs() / 1'000'000; }

}  // namespace ward
