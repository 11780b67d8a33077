#include "audit/end_event.h"

#include <signal.h>
#include <string.h>

#include "base/clock.h"

namespace ward::audit {

std::vector<std::string> LimitsReached(std::vector<std::string> measured, bool timed_out, int signal) {
  if (timed_out) measured.push_back("time");
  if (signal == SIGXCPU) measured.push_back("cpu");
  if (signal == SIGXFSZ) measured.push_back("file size");
  return measured;
}

Event LimitEvent(const Event& base, const std::string& limit) {
  Event e = base;
  e.time_ns = RealtimeNs();
  e.kind = "limit";
  e.decision = "deny";
  e.summary = limit + " limit reached";
  e.detail = {{"limit", limit}};
  return e;
}

std::string ExitSummary(bool timed_out, int signal, int exit_status) {
  const std::string status = "(exit status " + std::to_string(exit_status) + ")";
  if (timed_out) return "timed out " + status;
  if (signal) return std::string("killed by ") + sigabbrev_np(signal) + " " + status;
  return "exit status " + std::to_string(exit_status);
}

}  // namespace ward::audit
