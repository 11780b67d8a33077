// CLOCK_MONOTONIC, the one clock ward measures and times out with; and
// CLOCK_REALTIME for timestamps. Async-signal-safe (clock_gettime is): the
// sandbox's child reads them too.
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

// CLOCK_REALTIME: when something happened, for records read by people
// (the audit trail).
inline int64_t RealtimeNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace ward
