#include "lifecycle/trail.h"

#include <unistd.h>

#include "enforce/idmap.h"

namespace ward::lifecycle {

Result<AgentTrail> OpenAgentTrail(const std::string& path, const std::string& agent) {
  auto store = audit::Store::Open(path);
  if (!store) return store.error();
  AgentTrail t{std::move(*store), {}, std::nullopt};
  auto id = t.store.AgentId(agent);
  if (!id) return id.error();
  t.agent_id = *id;
  if (geteuid() == 0) {
    auto range = SandboxUidRange();
    if (!range) return range.error();
    auto uid = t.store.AgentHostUid(agent, range->base, range->count);
    if (!uid) return uid.error();
    t.host_uid = *uid;
  }
  return t;
}

}  // namespace ward::lifecycle
