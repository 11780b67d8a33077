// The audit trail's "egress" event: one network decision (EgressRecord:
// a DNS question, a connection, a unix socket), allowed or denied.
#pragma once

#include <cstdint>

#include "audit/store.h"
#include "ward/sandbox.h"

namespace ward::audit {

// The "egress" event of decision `g`, made at `time_ns` (CLOCK_REALTIME),
// with the identity of `base`.
Event EgressEvent(Event base, int64_t time_ns, const EgressRecord& g);

}  // namespace ward::audit
