// The supervisor's half of egress control: a DNS filter and a TCP proxy that
// serve listeners created inside the sandbox's network namespace (see
// sandbox_net.h) and reach out from the supervisor's own namespace.
//
// Every TCP connection the sandbox opens to a non-loopback address arrives
// here (nftables redirect), whatever the program: the proxy reads the
// original destination (SO_ORIGINAL_DST), the TLS SNI or HTTP Host of the
// first bytes, the names ward's DNS bound to that address, and decides with
// the policy's rules. Denied connections are reset at once; allowed ones are
// connected from the host and relayed until either side closes.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/unique_fd.h"
#include "net/call_observers.h"
#include "net/egress_rules.h"
#include "net/tcp_decision.h"
#include "ward/result.h"
#include "ward/sandbox.h"

namespace ward::net {

// One decision, for the run's result and the audit trail.
class UnixGate;

struct EgressEvent {
  enum class Kind : uint8_t {
    kDns,        // a DNS question (UDP or TCP)
    kTcp,        // a transparent (redirected) TCP connection
    kHttpProxy,  // a request to the explicit proxy (CONNECT or absolute-form)
    kUdp,        // a UDP datagram the sandbox's filter dropped (anything but DNS)
    kUnix,       // a connect() to a unix socket listed in filesystem.unix, or refused (net/unix_gate.h)
  };
  Kind kind = Kind::kTcp;
  int64_t time_ns = 0;                 // CLOCK_MONOTONIC
  std::string domain;                  // question / SNI / Host / CONNECT name / bound name; "" if none
  std::optional<IpAddress> address;    // destination address (none for DNS)
  uint16_t port = 0;
  bool allowed = false;
  std::string rule;                    // text of the deciding rule; "" when the default or a check decided
  std::string reason;                  // one line for people: why
  std::string detail;                  // how the name was learned ("sni", "http-host", "dns", "connect"),
                                       // the DNS type, or what failed after the decision
  std::string path;                    // kUnix: the socket as the workload named it ("@name": abstract)
};
const char* EgressEventKindName(EgressEvent::Kind kind);  // "dns", "tcp", "http-proxy", "udp", "unix"

struct UpstreamDns {
  IpAddress address;
  uint16_t port = 53;
};

// A name ward's DNS answered with `address`.
struct DnsBinding {
  IpAddress address;
  std::string name;
};

struct EgressProxyConfig {
  EgressPolicy policy;
  // The host's own addresses, closed by the DNS rebinding guard
  // (net/tcp_decision.h) to every name and to the default. nullopt: Start()
  // reads them (ReadHostAddresses) in the calling thread's namespace, which
  // for `ward run` is the host's, where the proxy connects from.
  std::optional<std::vector<HostAddress>> host_addresses;
  // Resolvers the DNS filter forwards allowed questions to (from the host's
  // /etc/resolv.conf, or `ward run --dns-server`). Queried from the
  // supervisor's namespace.
  std::vector<UpstreamDns> dns_servers;
  // How long the proxy waits for a client's first bytes (TLS ClientHello,
  // HTTP request) before deciding on the address alone. The first bytes are
  // still inspected before any reach the server.
  int sniff_timeout_ms = 250;
  // How long a connection to a server may take to be established, and how
  // long one upstream DNS server has to answer before the next is asked.
  int connect_timeout_ms = 10000;
  int dns_timeout_ms = 2000;
  // Listeners created inside the sandbox's namespace; any may be invalid
  // (e.g. no IPv6 in the kernel).
  UniqueFd tcp4, tcp6, udp4, udp6;
  // NFLOG socket of the sandbox's namespace: a copy of the headers of each
  // UDP datagram its filter dropped, reported as denied events. May be
  // invalid.
  UniqueFd dropped_log;
  // The seccomp user-notification listener of the sandbox's connect() and
  // listen() calls (net/connect_notify.h): connections the first bytes
  // cannot change get a direct socket. May be invalid: every connection then
  // goes through the proxy.
  UniqueFd connect_notify;
  // Decides the unix connect()s that arrive on connect_notify (required
  // with it).
  std::shared_ptr<UnixGate> unix_gate;
  // Names ward's DNS bound to addresses before this proxy started: a held
  // sandbox's, from before its stop (lifecycle/held_supervisor.cc). They
  // count as this proxy's own answers would.
  std::vector<DnsBinding> bindings;
  // Given each execve()/execveat() and file system call that arrives on
  // connect_notify (ServeConnectNotifications); may be empty.
  CallObservers observers;
  // Given each decision as it is recorded (before TakeEvents has it), on
  // the thread that decided; may be empty.
  std::function<void(const EgressEvent&)> on_event;
};

class EgressProxy {
 public:
  // Starts serving the listeners on threads of its own.
  static Result<std::unique_ptr<EgressProxy>> Start(EgressProxyConfig config);
  virtual ~EgressProxy() = default;
  // Closes the listeners and every connection in flight, and joins the
  // threads. Idempotent; the destructor calls it.
  virtual void Stop() = 0;
  // The decisions so far, oldest first, and forgets them.
  virtual std::vector<EgressEvent> TakeEvents() = 0;
  // Events not kept because the buffer was full (a workload flooding DNS or
  // connections): the first and the newest are kept, those between counted,
  // so that the record says it is incomplete and still ends with the last.
  virtual uint64_t DroppedEvents() = 0;
  // Every name its DNS bound to an address so far (those of
  // EgressProxyConfig::bindings included), at most kMaxDnsBindings.
  virtual std::vector<DnsBinding> Bindings() = 0;
};

// How many (address, name) pairs a proxy remembers; later answers are not
// bound (their addresses are decided without the name: fail closed).
inline constexpr size_t kMaxDnsBindings = 1 << 15;

// The addresses of every interface of the calling thread's network namespace
// (getifaddrs(3)), IPv4 and IPv6, loopback included, with their interface
// names. An error only if getifaddrs() fails: ward then does not start.
Result<std::vector<HostAddress>> ReadHostAddresses();

// The host's resolvers: "nameserver" lines of `resolv_conf` (the file's
// text). A loopback resolver (127.0.0.53, systemd-resolved) is kept: it is
// queried from the host's namespace.
std::vector<UpstreamDns> ParseResolvConf(std::string_view resolv_conf);

}  // namespace ward::net
