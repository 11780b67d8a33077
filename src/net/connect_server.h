// The supervisor's connect() server for a sandbox without egress rules
// (network "none", or the host's network): every connect() the sandbox makes
// waits in it (seccomp user notification). Unix sockets are decided by the
// unix gate (net/unix_gate.h); every other connect() is made as asked, by
// ward, on its copy of the socket (net/connect_notify.h says why never by
// the kernel for the workload). In egress mode the egress proxy serves the
// same notifications instead.
#pragma once

#include <memory>
#include <vector>

#include "base/unique_fd.h"
#include "net/connect_notify.h"
#include "net/egress_proxy.h"
#include "ward/result.h"

namespace ward::net {

class ConnectServer {
 public:
  // Serves `notify` on a thread of its own. `netns`: SO_NETNS_COOKIE of the
  // sandbox's network namespace (the host's, if it shares it). `observers`:
  // told of the executions and file calls the listener brings (may be
  // empty). `on_event`: given each decision as it is recorded (may be empty).
  static Result<std::unique_ptr<ConnectServer>> Start(UniqueFd notify, uint64_t netns, std::shared_ptr<UnixGate> gate,
                                                      CallObservers observers = {},
                                                      std::function<void(const EgressEvent&)> on_event = {});
  virtual ~ConnectServer() = default;
  // Ends the thread and every connect() still in flight (safe to repeat).
  virtual void Stop() = 0;
  // The decisions recorded (unix sockets listed or refused), oldest first.
  virtual std::vector<EgressEvent> TakeEvents() = 0;
  virtual uint64_t DroppedEvents() = 0;
};

}  // namespace ward::net
