// Who a sandbox's events are recorded for, and where: shared by `ward run`
// and `ward learn` (tools/ward/run_audit.h) and a held sandbox's supervisor
// (held_supervisor.cc), which record the same identity.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "audit/store.h"
#include "ward/result.h"

namespace ward::lifecycle {

struct AgentTrail {
  audit::Store store;
  std::string agent_id;             // the agent's stable id in that store
  std::optional<uint32_t> host_uid;  // as root: the host uid the agent's sandboxes run as
};

// Opens the store at `path` (made if missing) and takes `agent`'s stable id
// there; as root also its host uid, from WARD_UID_RANGE (enforce/idmap.h),
// recorded in the store. Errors name the store and why.
Result<AgentTrail> OpenAgentTrail(const std::string& path, const std::string& agent);

}  // namespace ward::lifecycle
