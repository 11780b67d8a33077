// Audit events as OCSF (Open Cybersecurity Schema Framework, 1.1.0) events,
// for SIEM ingestion (`ward audit --format ocsf`).
//
//   egress tcp, http-proxy, udp, unix -> 4001 Network Activity, Open (1)
//   egress dns                        -> 4003 DNS Activity, Query (1)
//   start / exit                      -> 1007 Process Activity, Launch (1) / Terminate (2)
//   limit                             -> 1007 Process Activity, Other (99)
//   trim (the store's own)            -> 6002 Application Lifecycle, Other (99)
// Every event has class_uid, category_uid, activity_id, type_uid
// (class_uid * 100 + activity_id), time (ms since the epoch), severity_id,
// message, metadata (version, product, uid: the store's seq); decisions
// carry action_id / disposition_id (1 Allowed, 2 Denied / Blocked); ward's
// own fields (agent, agent id, sandbox, detail) are under `unmapped`.
#pragma once

#include <nlohmann/json.hpp>

#include "audit/store.h"

namespace ward::audit {

nlohmann::json ToOcsf(const Event& e);

}  // namespace ward::audit
