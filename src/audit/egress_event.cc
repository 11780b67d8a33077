#include "audit/egress_event.h"

namespace ward::audit {

Event EgressEvent(Event e, int64_t time_ns, const EgressRecord& g) {
  e.kind = "egress";
  e.time_ns = time_ns;
  e.decision = g.allowed ? "allow" : "deny";
  std::string where = g.kind == "unix" ? g.path : g.domain;
  if (!g.address.empty()) where += (where.empty() ? "" : " ") + g.address;
  if (g.port) where += ":" + std::to_string(g.port);
  e.summary = g.kind + " " + where + ": " + g.reason;
  e.detail = {{"kind", g.kind}, {"domain", g.domain}, {"rule", g.rule}, {"reason", g.reason}, {"detail", g.detail}};
  if (!g.address.empty()) e.detail["address"] = g.address;
  if (g.port) e.detail["port"] = g.port;
  if (!g.path.empty()) e.detail["path"] = g.path;
  return e;
}

}  // namespace ward::audit
