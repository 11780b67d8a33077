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
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "net/sniff.h"

namespace ward::net {

// What a gate says about the client's bytes at the start of a message: its
// first bytes, or (on an HTTP/1 connection) the next request.
struct GateVerdict {
  enum class Kind : uint8_t {
    kNeedMore,  // not conclusive yet: keep holding them back
    kForward,   // pass them to the server (and see `request`)
    kReset,     // reset both connections
    // Stop relaying (the bytes held back are not forwarded): once the
    // server's bytes already read have reached the client, Relay returns
    // both sockets and the held-back bytes (RelayOutcome::handed_back), so
    // that the caller can judge this message itself (the explicit proxy:
    // another upstream, or a 403).
    kHandBack,
  };
  Kind kind = Kind::kNeedMore;
  std::string reason;  // kReset
  // kForward. Unset: the judged bytes and everything after them go to the
  // server unread (a TLS stream, an opaque protocol). Set: the judged bytes
  // begin with an HTTP/1 request with this framing; the request (head and
  // body) is forwarded, and whatever follows it is held back and judged
  // again as the next message, from its first byte. After a request that
  // asks to switch protocols (`upgrade`, `connect`) the bytes that follow
  // are held back, unjudged and unsent, until the server has answered it:
  // a 101 (a 2xx to CONNECT) lets them and the rest of the connection pass
  // unread both ways; any other answer has them judged as the next request.
  std::optional<HttpBodyFraming> request;
};

// How far the server's answers on an HTTP/1 connection have been followed
// (HttpResponseReader), carried from one Relay to the next on the same
// server connection (the explicit proxy's hand-back).
struct ServerAnswers {
  // Server bytes passed before any request was forwarded, or an earlier
  // relay did not follow them: no switch is ever recognised.
  bool untracked = false;
  std::optional<HttpResponseReader> reader;
};

// Judges the client's bytes held back so far: those of message number
// `index` (0: the connection's first bytes; 1, 2, ...: the following HTTP/1
// requests), from its first byte.
using FirstBytesGate = std::function<GateVerdict(std::span<const uint8_t> bytes, int index)>;

// Largest prefix a gate may hold back before it must decide.
inline constexpr size_t kMaxGatedBytes = 32768;

struct RelayOutcome {
  uint64_t to_server = 0;  // bytes
  uint64_t to_client = 0;
  bool reset_by_gate = false;
  std::string gate_reason;  // reset_by_gate
  // Reset by the relay itself, not recorded by the gate: a request body the
  // relay refused (malformed chunking, first bytes a server could take for
  // the next request). `gate_reason` says why; `refused_request` is its
  // number among the requests this Relay forwarded (1, 2, ...). The caller
  // records it.
  bool refused = false;
  int refused_request = 0;
  std::string error;        // why the relay was aborted ("" after a clean end)
  // kHandBack: the sockets, still open, and the client's bytes held back.
  bool handed_back = false;
  UniqueFd client, server;
  std::vector<uint8_t> client_rest;
  ServerAnswers answers;  // to pass to the next Relay on `server`
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
// After a kForward naming a request's framing, the client's bytes are read
// only as far as that request's body (bodies of known length move with
// splice, unread) and the gate judges the next request before any of it is
// forwarded: on a kept-alive HTTP/1 connection every request is judged. A
// body's first bytes are held until they show that no server could take
// them for a request line (LenientRequestLine, LenientReader::kBody): a
// server that does not read the body would read them as the next request,
// unjudged; such a body is refused (RelayOutcome::refused).
// The server's answers are followed once a request has been forwarded
// (HttpResponseReader: heads read, bodies of known length spliced unread),
// so that an upgrade is recognised only when the server agrees to it;
// `answers` carries what an earlier Relay on `server` learned.
// `gate_timeout_ms` (-1: none): how long the client may take to complete a
// message the gate holds back once its first byte has come; past it, both
// sides are reset (a slow head must not hold a connection forever).
RelayOutcome Relay(UniqueFd client, UniqueFd server, std::vector<uint8_t> client_head, FirstBytesGate gate, int stop_fd,
                   int gate_timeout_ms = -1, ServerAnswers answers = {});

}  // namespace ward::net
