// Asking the host's resolvers: the DNS filter's forwarding of allowed
// questions, and the explicit proxy's own lookups of CONNECT hosts.
//
// Trust boundary: the answer comes back over the network. A response is only
// taken from the server that was asked (a connected socket), with the
// random id ward chose for this exchange (not the sandboxed program's, which
// it could predict), and for the question asked (ResponseMatchesQuery);
// anything else is ignored while the wait for the real answer goes on.
#pragma once

#include <span>
#include <vector>

#include "net/dns_message.h"
#include "net/egress_proxy.h"
#include "ward/result.h"

namespace ward::net {

struct DnsExchange {
  std::vector<uint8_t> message;  // the response, with the caller's query id restored
  DnsResponse response;          // parsed; response.id is the caller's id
};

// Sends `query_message` (parsed as `query`) to each of `servers` in turn,
// over UDP or TCP, until one answers it; `timeout_ms` per server. The
// error lists what each server did.
Result<DnsExchange> ExchangeDns(std::span<const UpstreamDns> servers, std::span<const uint8_t> query_message,
                                const DnsQuery& query, bool tcp, int timeout_ms, int stop_fd);

}  // namespace ward::net
