// The audit trail's "file" event: a file access the policy does not grant
// (FileDenial, judged by enforce/file_view.h; policy audit.files "denied").
#pragma once

#include "audit/store.h"
#include "ward/sandbox.h"

namespace ward::audit {

// A "file" event, decision "deny", of `d`, with the identity (agent, agent
// id, sandbox) of `base`. The path is the sandbox's bytes, stored as given.
Event FileEvent(const Event& base, const FileDenial& d);

// A "dropped" event: `count` file accesses left unjudged or denials left
// unrecorded in a flood, why, and a random sample of their paths
// (enforce/file_view.h).
Event FileDroppedEvent(const Event& base, uint64_t count, const std::string& why, const std::vector<std::string>& sample);

// The operation's name in events: "read", "write", "create", "remove",
// "stat".
const char* FileOpName(FileOp op);

}  // namespace ward::audit
