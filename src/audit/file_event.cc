#include "audit/file_event.h"

namespace ward::audit {

const char* FileOpName(FileOp op) {
  switch (op) {
    case FileOp::kRead: return "read";
    case FileOp::kWrite: return "write";
    case FileOp::kCreate: return "create";
    case FileOp::kRemove: return "remove";
    case FileOp::kStat: return "stat";
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
  return e;
}

}  // namespace ward::audit
