// Pieces every process-level benchmark here needs: clocks, paths, the
// last line of a child's stderr, the order of a round's runners, and the
// order statistics reported (medians with p10 / p90).
#pragma once

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace ward::bench {

inline int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// "ward_startup_bench: msg" (the program's own name), exit status 1.
[[noreturn]] inline void Die(const std::string& msg) {
  std::fprintf(stderr, "%s: %s\n", program_invocation_short_name, msg.c_str());
  std::exit(1);
}

inline std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// The directory of this executable (its siblings: ward, the clients).
inline std::string SelfDir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string p(buf, static_cast<size_t>(n));
  return p.substr(0, p.rfind('/'));
}

inline std::string Absolute(const std::string& p) {
  char buf[PATH_MAX];
  if (realpath(p.c_str(), buf) == nullptr) Die(Errno("realpath \"" + p + "\""));
  return buf;
}

inline bool Executable(const std::string& p) { return !p.empty() && access(p.c_str(), X_OK) == 0; }

// Without trailing newlines and spaces, cut to `max` characters.
inline std::string Trim(const std::string& s, size_t max) {
  std::string t = s;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  return t.size() > max ? t.substr(0, max) + "..." : t;
}

// The last non-empty line (ward's --json result ends its stderr).
inline std::string LastLine(const std::string& s) {
  size_t end = s.find_last_not_of('\n');
  if (end == std::string::npos) return "";
  size_t begin = s.rfind('\n', end);
  begin = begin == std::string::npos ? 0 : begin + 1;
  return s.substr(begin, end - begin + 1);
}

inline std::string DescribeStatus(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("signal ") + strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

// The order in which a round runs its runners: shuffled anew each round,
// the same from run to run (a fixed seed). In a fixed cyclic order each
// runner always comes right after the same other one and inherits what it
// leaves behind (a network namespace the kernel is still tearing down, caches
// it evicted): one baseline always after bwrap, another always after the
// bare floor. Shuffled, each comes after each of the others about as often.
class RoundOrder {
 public:
  explicit RoundOrder(size_t runners) : order_(runners) { std::iota(order_.begin(), order_.end(), size_t{0}); }
  // The indices 0..runners-1 for the next round.
  const std::vector<size_t>& Next() {
    std::shuffle(order_.begin(), order_.end(), rng_);
    return order_;
  }

 private:
  std::vector<size_t> order_;
  std::mt19937 rng_{20261204};
};

struct Stats {
  size_t n = 0;
  double median = NAN, p10 = NAN, p90 = NAN, min = NAN, max = NAN;
};

// Linear interpolation between the closest ranks of `sorted`.
inline double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return NAN;
  double pos = q * static_cast<double>(sorted.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

inline Stats Summarize(std::vector<double> v) {
  Stats s;
  s.n = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.median = Percentile(v, 0.5);
  s.p10 = Percentile(v, 0.1);
  s.p90 = Percentile(v, 0.9);
  s.min = v.front();
  s.max = v.back();
  return s;
}

}  // namespace ward::bench
