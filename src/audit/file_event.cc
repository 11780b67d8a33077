#include "audit/file_event.h"

#include "base/clock.h"

namespace ward::audit {

const char* FileOpName(FileOp op) {
  switch (op) {
    case FileOp::kRead: return "read";
    case FileOp::kWrite: return "write";
    case FileOp::kCreate: return "create";
    case FileOp::kRemove: return "remove";
    case FileOp::kStat: return "stat";
    case FileOp::kExecute: return "execute";
  }
  return "?";
}

Event FileEvent(const Event& base, const FileDenial& d) {
  Event e;
  e.time_ns = d.access.time_ns;
  e.agent = base.agent;
  e.agent_id = base.agent_id;
  e.sandbox = base.sandbox;
  e.kind = "file";
  e.decision = "deny";
  const char* op = FileOpName(d.access.op);
  e.summary = std::string(op) + " " + d.access.path + (d.resolved.empty() ? "" : " -> " + d.resolved) + ": " + d.reason;
  e.detail = {{"pid", d.access.pid}, {"operation", op}, {"path", d.access.path}, {"reason", d.reason}};
  if (!d.resolved.empty()) e.detail["resolved"] = d.resolved;
  if (!d.rule.empty()) e.detail["rule"] = d.rule;
  if (d.repeats) {
    e.detail["repeats"] = d.repeats;
    e.summary += " (" + std::to_string(d.repeats) + " more identical, each within a second of another, not recorded one by one)";
  }
  return e;
}

Event FileDroppedEvent(const Event& base, uint64_t count, const std::string& why, const std::vector<std::string>& sample) {
  Event e;
  e.time_ns = RealtimeNs();
  e.agent = base.agent;
  e.agent_id = base.agent_id;
  e.sandbox = base.sandbox;
  e.kind = "dropped";
  e.summary = std::to_string(count) + " " + why;
  e.detail = {{"count", count}, {"what", "file"}, {"why", why}};
  if (!sample.empty()) e.detail["sample"] = sample;
  return e;
}

}  // namespace ward::audit
