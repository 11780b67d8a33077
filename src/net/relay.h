// Copies bytes both ways between a sandboxed client and the server it was
// allowed to reach, until both directions have ended.
//
// Bytes move socket -> pipe -> socket with splice(), so they are not copied
// through user space: the proxy must not cost the workload much throughput.
// A half-close is passed on (a FIN from one side becomes shutdown(SHUT_WR)
// towards the other); an error on either side, or Stop(), resets both.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "base/unique_fd.h"

namespace ward::net {

// What a gate says about the client's first bytes.
struct GateVerdict {
  enum class Kind : uint8_t {
    kNeedMore,  // not conclusive yet: keep holding them back
    kForward,   // pass them, and everything after, to the server
    kReset,     // reset both connections
  };
  Kind kind = Kind::kNeedMore;
  std::string reason;  // kReset
};

// Judges the client's bytes received so far (all of them, from the first).
using FirstBytesGate = std::function<GateVerdict(std::span<const uint8_t>)>;

// Largest prefix a gate may hold back before it must decide.
inline constexpr size_t kMaxGatedBytes = 32768;

struct RelayOutcome {
  uint64_t to_server = 0;  // bytes
  uint64_t to_client = 0;
  bool reset_by_gate = false;
  std::string gate_reason;  // reset_by_gate
  std::string error;        // why the relay was aborted ("" after a clean end)
};

// Relays between `client` and `server` (both non-blocking TCP sockets, which
// it closes) until both directions have ended, an error occurs, or `stop_fd`
// becomes readable.
//
// `client_head`: bytes already read from the client; they reach the server
// first. With a `gate`, nothing from the client reaches the server until the
// gate has said kForward about the bytes so far (starting with
// `client_head`); the server's bytes flow to the client meanwhile, so
// server-speaks-first protocols work. A gate that is still undecided after
// kMaxGatedBytes, or when the client ends its stream, resets both sides.
RelayOutcome Relay(UniqueFd client, UniqueFd server, std::vector<uint8_t> client_head, FirstBytesGate gate,
                   int stop_fd);

}  // namespace ward::net
