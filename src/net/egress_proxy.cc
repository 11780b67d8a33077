// The egress proxy: listener threads, per-connection dispatch, the DNS
// filter's I/O, and the audit events. The decisions themselves live in pure
// modules (tcp_decision.h, dns_filter.h, egress_rules.h), the byte pumping in
// relay.h.
//
// Threads: one per listener (accept loop or DNS datagram loop), one per TCP
// connection (dispatch, then relay of both directions with splice), one per
// forwarded UDP DNS question (so a slow resolver never holds up the others).
// Every thread waits only in poll() together with the stop eventfd, so Stop()
// wakes all of them at once; it then joins them, and every connection still
// open is reset: nothing the sandbox opened outlives it.
//
// Trust boundary: everything that arrives on the listeners comes from the
// sandboxed program. It chooses the destination, the first bytes and the DNS
// questions, and may lie in all of them; what it cannot forge is the
// original destination (read from the kernel's conntrack entry) and the
// answers of ward's own DNS filter (the binding table below).
#include "net/egress_proxy.h"

#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>

#include <list>
#include <set>
#include <map>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "base/errors.h"
#include "net/connect_notify.h"
#include "net/unix_gate.h"
#include "net/workers.h"
#include "net/dns_filter.h"
#include "net/dns_message.h"
#include "net/dns_upstream.h"
#include "net/relay.h"
#include "net/sandbox_net.h"
#include "net/sniff.h"
#include "net/socket_io.h"
#include "net/tcp_decision.h"
#include "net/upstream_pool.h"

namespace ward::net {

const char* EgressEventKindName(EgressEvent::Kind kind) {
  switch (kind) {
    case EgressEvent::Kind::kDns:
      return "dns";
    case EgressEvent::Kind::kTcp:
      return "tcp";
    case EgressEvent::Kind::kHttpProxy:
      return "http-proxy";
    case EgressEvent::Kind::kUdp:
      return "udp";
    case EgressEvent::Kind::kUnix:
      return "unix";
  }
  return "unknown";
}

std::vector<UpstreamDns> ParseResolvConf(std::string_view resolv_conf) {
  std::vector<UpstreamDns> out;
  while (!resolv_conf.empty()) {
    size_t eol = resolv_conf.find('\n');
    std::string_view line = resolv_conf.substr(0, eol);
    resolv_conf = eol == std::string_view::npos ? std::string_view() : resolv_conf.substr(eol + 1);
    size_t comment = line.find_first_of("#;");
    if (comment != std::string_view::npos) line = line.substr(0, comment);
    auto next_token = [&line]() {
      size_t start = line.find_first_not_of(" \t\r");
      if (start == std::string_view::npos) return std::string_view();
      size_t end = line.find_first_of(" \t\r", start);
      std::string_view token = line.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
      line = end == std::string_view::npos ? std::string_view() : line.substr(end);
      return token;
    };
    if (next_token() != "nameserver") continue;
    std::string_view address = next_token();
    // "fe80::1%eth0": a link-local resolver is only meaningful with its
    // interface, and UpstreamDns carries no scope id. Dropped rather than
    // sent out of whichever interface the kernel picks.
    if (address.find('%') != std::string_view::npos) continue;
    if (std::optional<IpAddress> a = IpAddress::Parse(address)) out.push_back(UpstreamDns{*a, 53});
  }
  return out;
}

namespace {

// getsockopt(SOL_IP, SO_ORIGINAL_DST) and getsockopt(SOL_IPV6,
// IP6T_SO_ORIGINAL_DST) share the number 80; the kernel headers that define
// them do not compile cleanly as C++.
constexpr int kSoOriginalDst = 80;

// A redirected connection's two ends as the proxy sees it: its local
// address (the listener's) and the destination the program connected to
// (SO_ORIGINAL_DST, from the nat redirect). err: the errno of either read
// (ENOENT: no NAT entry, the program connected to the listener itself).
struct Redirected {
  sockaddr_storage local{};
  sockaddr_storage original{};
  int err = 0;
};

Redirected ReadRedirected(int fd) {
  Redirected r;
  socklen_t local_len = sizeof r.local, orig_len = sizeof r.original;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&r.local), &local_len) != 0 ||
      getsockopt(fd, r.local.ss_family == AF_INET6 ? SOL_IPV6 : SOL_IP, kSoOriginalDst, &r.original, &orig_len) != 0) {
    r.err = errno;
  }
  return r;
}

// How long a client may take to complete a message whose first byte has
// come (a TLS ClientHello, an HTTP request head): clients send them in one
// write. Past it the connection is refused, so that half-sent heads cannot
// hold the proxy's connections.
constexpr int kHeadTimeoutMs = 5000;
constexpr int kHttpHeadTimeoutMs = kHeadTimeoutMs;  // explicit proxy: the request head, from the connection's start
constexpr int kDnsTcpIdleMs = 10000;       // DNS over TCP: between queries (RFC 7766 suggests seconds)
constexpr int kReplyTimeoutMs = 5000;      // writing a short answer to the client
// TCP connections in flight, in two budgets. A head is a connection whose
// first bytes have not decided yet (a TLS ClientHello, an HTTP request head
// still coming, or nothing sent yet): at most kMaxHeads at a time, and when
// one more arrives the oldest head is closed (and recorded), so that slow or
// idle clients cannot take every thread. Working connections (decided,
// relaying) have the rest of kMaxConnections; past it new ones are reset.
constexpr size_t kMaxHeads = 128;
constexpr size_t kMaxConnections = 512 + kMaxHeads;
constexpr int kMaxDnsInFlight = 128;       // UDP questions being forwarded; more get SERVFAIL
// Name bindings: at most this many (address, name) pairs in all, and this
// many addresses learned from one answer (a resolver a workload controls
// could otherwise make the supervisor hold gigabytes).
constexpr size_t kMaxBindings = kMaxDnsBindings;
constexpr size_t kMaxAddressesPerAnswer = 64;
constexpr size_t kMaxNamesPerAddress = 64;
// Events kept for the result; past it they are counted, not kept.
constexpr size_t kMaxPendingEvents = 1 << 14;
// Distinct destinations of dropped UDP reported.
constexpr size_t kMaxDroppedDestinations = 4096;

// The host's loopback addresses ward connects to for host.ward.internal:
// most host services listen on 127.0.0.1 only, some on ::1 only, so the
// family the program used comes first, then the other.
std::vector<IpAddress> HostLoopbackTargets(bool v6_first) {
  const IpAddress v4 = IpAddress::V4(127, 0, 0, 1), v6 = *IpAddress::Parse("::1");
  return v6_first ? std::vector<IpAddress>{v6, v4} : std::vector<IpAddress>{v4, v6};
}

IpAddress Gateway4() {
  IpAddress a;
  a.family = AF_INET;
  std::memcpy(a.bytes.data(), kGatewayAddr4, 4);
  return a;
}

IpAddress Gateway6() {
  IpAddress a;
  a.family = AF_INET6;
  std::memcpy(a.bytes.data(), kGatewayAddr6, 16);
  return a;
}

// The sandbox's own addresses and its loopback (0.0.0.0 and :: connect
// there too): routed through lo, never redirected, never outside.
bool InsideSandbox(const IpAddress& unmapped) {
  const bool loopback = unmapped.is_v4() ? (unmapped.bytes[0] == 127 || unmapped == IpAddress::V4(0, 0, 0, 0))
                                         : (unmapped == *IpAddress::Parse("::1") || unmapped == *IpAddress::Parse("::"));
  return loopback || IpNetwork{Gateway4(), kSandboxPrefix4}.Contains(unmapped) ||
         IpNetwork{Gateway6(), kSandboxPrefix6}.Contains(unmapped);
}

IpAddress FromDns(const DnsAddress& d) {
  IpAddress a;
  a.family = d.v6 ? AF_INET6 : AF_INET;
  std::memcpy(a.bytes.data(), d.bytes.data(), d.v6 ? 16 : 4);
  return a;
}

// Names ward's DNS filter answered with each address during this run. Only
// the filter and the explicit proxy's own lookups write here, from responses
// of the configured resolvers to questions ward forwarded; the sandboxed
// program cannot add a binding except by asking ward's resolver a question.
class BindingTable {
 public:
  void Bind(const IpAddress& address, const std::string& name) {
    std::lock_guard lock(mu_);
    // Full: later names are not learned, so connections to their addresses
    // are decided without them (fail closed), never with another name's
    // binding.
    if (pairs_ >= kMaxBindings) return;
    auto it = table_.find(Key(address));
    if (it == table_.end()) it = table_.emplace(Key(address), std::vector<std::string>{}).first;
    std::vector<std::string>& names = it->second;
    for (const std::string& n : names) {
      if (n == name) return;
    }
    if (names.size() < kMaxNamesPerAddress) {
      names.push_back(name);
      ++pairs_;
    }
  }

  std::vector<std::string> NamesFor(const IpAddress& address) const {
    std::lock_guard lock(mu_);
    auto it = table_.find(Key(address));
    return it == table_.end() ? std::vector<std::string>{} : it->second;
  }

  std::vector<DnsBinding> All() const {
    std::lock_guard lock(mu_);
    std::vector<DnsBinding> out;
    out.reserve(pairs_);
    for (const auto& [key, names] : table_) {
      IpAddress a;
      a.family = key.first;
      a.bytes = key.second;
      for (const std::string& n : names) out.push_back({a, n});
    }
    return out;
  }

 private:
  using KeyType = std::pair<int, std::array<uint8_t, 16>>;
  static KeyType Key(const IpAddress& address) {
    IpAddress a = address.Unmapped();
    KeyType k{a.family, {}};
    std::memcpy(k.second.data(), a.bytes.data(), a.is_v4() ? 4 : 16);
    return k;
  }

  mutable std::mutex mu_;
  std::map<KeyType, std::vector<std::string>> table_;
  size_t pairs_ = 0;
};

// The connections whose first bytes have not decided yet (see kMaxHeads).
// Each holds a duplicate of its client socket, so that evicting it is a
// shutdown() of that socket (which wakes its thread's poll) and never of a
// descriptor number the thread may have closed and reused meanwhile.
struct HeadEntry {
  UniqueFd socket;  // a dup of the client socket
  std::optional<IpAddress> address;
  uint16_t port = 0;
  std::atomic<bool> evicted{false};
};

class HeadSlots {
 public:
  // Registers a new head; when kMaxHeads are already waiting, the oldest is
  // shut down and returned in *evicted (to be recorded by the caller).
  struct Evicted {
    bool any = false;
    std::optional<IpAddress> address;
    uint16_t port = 0;
  };
  std::shared_ptr<HeadEntry> Acquire(int fd, Evicted* evicted) {
    auto e = std::make_shared<HeadEntry>();
    e->socket.Reset(fcntl(fd, F_DUPFD_CLOEXEC, 0));
    std::lock_guard lock(mu_);
    if (list_.size() >= kMaxHeads) {
      std::shared_ptr<HeadEntry> old = std::move(list_.front());
      list_.pop_front();
      old->evicted = true;
      shutdown(old->socket.get(), SHUT_RDWR);
      *evicted = Evicted{true, old->address, old->port};
    }
    list_.push_back(e);
    return e;
  }
  void SetDestination(const std::shared_ptr<HeadEntry>& e, const IpAddress& address, uint16_t port) {
    std::lock_guard lock(mu_);
    e->address = address;
    e->port = port;
  }
  // The connection has decided (or ended): no longer a head. Idempotent.
  void Release(const std::shared_ptr<HeadEntry>& e) {
    if (!e) return;
    std::lock_guard lock(mu_);
    list_.remove(e);
  }
  size_t size() {
    std::lock_guard lock(mu_);
    return list_.size();
  }

 private:
  std::mutex mu_;
  std::list<std::shared_ptr<HeadEntry>> list_;
};

// The head of the connection this thread serves (one thread per
// connection): released by the code that decides, wherever it is.
thread_local std::shared_ptr<HeadEntry> t_head;

// Where a datagram arrived: the reply must leave from the same local address
// (after the redirect, 127.0.0.1 or ::1), or conntrack cannot match it to
// the redirected flow and restore the address the program sent to.
struct DatagramOrigin {
  sockaddr_storage peer{};
  socklen_t peer_len = 0;
  bool has_local = false;
  in_pktinfo local4{};
  in6_pktinfo local6{};
};

void SendDatagram(int fd, std::span<const uint8_t> data, const DatagramOrigin& origin) {
  iovec iov{const_cast<uint8_t*>(data.data()), data.size()};
  msghdr msg{};
  msg.msg_name = const_cast<sockaddr_storage*>(&origin.peer);
  msg.msg_namelen = origin.peer_len;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in6_pktinfo))] = {};
  // The one control message: where the reply leaves from.
  auto put = [&](int level, int type, const auto& info) {
    msg.msg_control = control;
    cmsghdr* c = reinterpret_cast<cmsghdr*>(control);
    c->cmsg_level = level;
    c->cmsg_type = type;
    c->cmsg_len = CMSG_LEN(sizeof(info));
    std::memcpy(CMSG_DATA(c), &info, sizeof(info));
    msg.msg_controllen = CMSG_SPACE(sizeof(info));
  };
  if (origin.has_local && origin.peer.ss_family == AF_INET) {
    in_pktinfo info{};
    info.ipi_spec_dst = origin.local4.ipi_addr;
    put(IPPROTO_IP, IP_PKTINFO, info);
  } else if (origin.has_local) {
    in6_pktinfo info{};
    info.ipi6_addr = origin.local6.ipi6_addr;
    put(IPPROTO_IPV6, IPV6_PKTINFO, info);
  }
  // A lost reply is a lost datagram: the client retries.
  (void)sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
}

std::string OneLine(std::string s) {
  for (char& c : s) {
    if (c == '\r' || c == '\n') c = ' ';
  }
  return s;
}

// A complete, closed HTTP answer from the proxy itself.
std::string HttpAnswer(int code, const char* status, const std::string& body_line) {
  std::string body = "ward: " + OneLine(body_line) + "\n";
  return "HTTP/1.1 " + std::to_string(code) + " " + status +
         "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

class Proxy final : public EgressProxy, public ConnectNotifyHooks {
 public:
  explicit Proxy(EgressProxyConfig config) : config_(std::move(config)) {}
  ~Proxy() override { Stop(); }

  Result<void> Begin();
  void Stop() override;
  std::vector<EgressEvent> TakeEvents() override;
  uint64_t DroppedEvents() override {
    std::lock_guard lock(events_mu_);
    return events_dropped_;
  }
  std::vector<DnsBinding> Bindings() override { return bindings_.All(); }

 private:
  // ConnectNotifyHooks
  std::optional<DirectPlan> PlanDirect(const IpAddress& dst, uint16_t port) override;
  std::optional<EgressEvent> RefuseAtConnect(const IpAddress& dst, uint16_t port) override;
  std::optional<EgressEvent> ConnectServerFirst(const IpAddress& dst, uint16_t port) override;
  void LeaveServerConnection(const IpAddress& dst, uint16_t port, UniqueFd server) override {
    servers_.Put(dst, port, std::move(server), MonotonicMs());  // closed if the pool is full
  }
  void RecordEvent(EgressEvent e) override { Record(std::move(e)); }
  bool SpawnWorker(std::function<void()> fn) override {
    workers_.Reap();
    return workers_.Spawn(std::move(fn));
  }

  struct DnsStep {
    std::optional<DnsQuery> forward;  // set: ask the upstream resolvers
    std::vector<uint8_t> response;    // otherwise: the answer (empty: none)
    EgressEvent event;
  };

  EgressEvent NewEvent(EgressEvent::Kind kind) const {
    EgressEvent e;
    e.kind = kind;
    e.time_ns = MonotonicNs();
    return e;
  }
  void Record(EgressEvent e);
  // The decision that allows `dst`:`port` for the first of `bound` (the
  // names ward's DNS bound to `dst`) that first bytes naming it would make
  // allowed, if any: what tells a connection that first bytes could still
  // allow from one nothing can.
  std::optional<TcpDecision> AllowedByBoundName(const IpAddress& dst, uint16_t port,
                                                const std::vector<std::string>& bound) const {
    for (const std::string& name : bound) {
      TcpDecision d = DecideTcp(guard_, config_.policy, name, "dns", bound, dst, port);
      if (d.allowed) return d;
    }
    return std::nullopt;
  }
  // The event of TCP decision `d` about `dst`:`port` (its name, rule and
  // reason); the caller adds how it was made (detail).
  EgressEvent TcpEvent(const IpAddress& dst, uint16_t port, const TcpDecision& d) const {
    EgressEvent e = NewEvent(EgressEvent::Kind::kTcp);
    e.address = dst;
    e.port = port;
    e.allowed = d.allowed;
    e.rule = d.rule ? d.rule->text : "";
    e.reason = d.reason;
    e.domain = d.domain;
    return e;
  }
  // This connection's first bytes have decided: it is no longer a head.
  void HeadDecided() { heads_.Release(t_head); }
  // Whether this connection was closed to make room for a newer head (its
  // event is recorded by the eviction).
  static bool HeadEvicted() { return t_head && t_head->evicted.load(); }
  // Ends this connection's time as a head; false if it was evicted first
  // (recorded by the eviction: it must not be recorded again). Released
  // before the flag is read, under the lock eviction takes, so the answer
  // is final: a head that was still listed can no longer be evicted.
  bool ClaimHead() {
    heads_.Release(t_head);
    return !HeadEvicted();
  }

  void AcceptLoop(int listener);
  void DatagramLoop(int listener);
  void HandleConnection(UniqueFd client, const Redirected& where);
  void Transparent(UniqueFd client, const IpAddress& dst, uint16_t port);
  // Connects an allowed transparent connection and relays it; `head` is what
  // the client sent already; with `gate_first_bytes` the first bytes are
  // judged before any is forwarded. `server`: the connection made before
  // the program's connect() returned (invalid: none, connect now).
  void Connect(UniqueFd client, UniqueFd server, const IpAddress& dst, uint16_t port, const TcpDecision& d,
               const std::string& detail, std::vector<uint8_t> head, bool gate_first_bytes);
  void HostLoopback(UniqueFd client, const IpAddress& gateway, uint16_t port);
  // Whether a rule opens the host's loopback `port` (never the default).
  EgressDecision DecideHostLoopback(uint16_t port) const;
  Result<UniqueFd> ConnectHostLoopback(uint16_t port, bool v6_first);
  void HttpProxy(UniqueFd client);
  void DnsOverTcp(UniqueFd client);
  void DroppedLoop(int nflog);
  void RecordDropped(std::span<const uint8_t> packet, std::set<std::pair<std::string, uint16_t>>& seen);

  DnsStep FilterQuery(std::span<const uint8_t> message);
  // Asks the host's resolvers a fresh query for the allowed `query`
  // (BuildForwardedQuery) and returns the answer as the program's.
  std::vector<uint8_t> ForwardQuery(const DnsQuery& query, bool tcp, EgressEvent& event);
  Result<std::vector<IpAddress>> Resolve(const std::string& name);

  // What a client's first bytes say about a connection to `dst`:`port`, and
  // the gate's verdict: the name they carry decided by the rules (with the
  // names ward's DNS bound to `dst`), malformed bytes refused.
  struct FirstBytesJudgement {
    FirstBytes first;
    TcpDecision named;  // when first names a host
    GateVerdict verdict;
  };
  FirstBytesJudgement JudgeFirstBytes(std::span<const uint8_t> bytes, const IpAddress& dst, uint16_t port) const;
  // A gate for a connection already allowed (and recorded) without its
  // first bytes: records only a reset.
  // `*current`: the name the first bytes carry, if any (for NextRequestGate).
  GateVerdict LateGate(std::span<const uint8_t> bytes, const IpAddress& dst, uint16_t port, EgressEvent::Kind kind,
                       std::string* current);
  GateVerdict ConnectGate(std::span<const uint8_t> bytes, const std::string& host, const IpAddress& dst, uint16_t port);
  // Judges the request number `index` (1, 2, ...) of an HTTP/1 connection
  // to `dst`:`port` whose last request went by the name `*current` ("":
  // none), and records a decision when the name changes or a request is
  // refused. `pinned`: inside a CONNECT tunnel, the only name allowed.
  GateVerdict NextRequestGate(std::span<const uint8_t> bytes, int index, const IpAddress& dst, uint16_t port,
                              EgressEvent::Kind kind, const std::optional<std::string>& pinned, std::string* current);
  void RefuseHttp(UniqueFd& client, int code, const char* status, const std::string& reason);
  // Records a request body the relay refused (RelayOutcome::refused): request
  // number `number` on the connection, to `dst`:`port`, named `domain`.
  void RecordRefusedBody(const RelayOutcome& outcome, EgressEvent::Kind kind, std::optional<IpAddress> dst,
                         uint16_t port, const std::string& domain, int number, const std::string& prefix);

  EgressProxyConfig config_;
  // The rebinding guard with the host's own addresses (set in Begin(), read
  // only after).
  RebindingGuard guard_;
  UniqueFd stop_fd_;
  std::vector<std::thread> listener_threads_;
  Workers workers_;
  HeadSlots heads_;
  BindingTable bindings_;
  UpstreamPool servers_;  // server-first connections (net/upstream_pool.h)
  std::atomic<int> dns_in_flight_{0};

  std::mutex stop_mu_;
  bool stopped_ = false;

  std::mutex events_mu_;
  std::vector<EgressEvent> events_;  // the first kMaxPendingEvents / 2
  std::vector<EgressEvent> recent_;  // then a ring of the newest
  size_t recent_next_ = 0;           // the ring's oldest, once it is full
  uint64_t events_dropped_ = 0;
};

Result<void> Proxy::Begin() {
  if (!config_.tcp4.valid() && !config_.tcp6.valid() && !config_.udp4.valid() && !config_.udp6.valid()) {
    return Error::Setup("egress proxy: no listener to serve");
  }
  stop_fd_.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd_.valid()) return SysError("eventfd", "egress proxy stop");
  for (const DnsBinding& b : config_.bindings) bindings_.Bind(b.address, b.name);
  config_.bindings.clear();
  // The host's own addresses, read once before the workload can connect:
  // its LAN address or a docker bridge must not be reachable through a name.
  if (!config_.host_addresses) {
    Result<std::vector<HostAddress>> host = ReadHostAddresses();
    if (!host) return host.error();
    config_.host_addresses = std::move(*host);
  }
  guard_ = RebindingGuard(*config_.host_addresses);

  int one = 1;
  if (config_.udp4.valid() && setsockopt(config_.udp4.get(), IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) != 0) {
    return SysError("setsockopt", "udp4 listener, IP_PKTINFO");
  }
  if (config_.udp6.valid() && setsockopt(config_.udp6.get(), IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one)) != 0) {
    return SysError("setsockopt", "udp6 listener, IPV6_RECVPKTINFO");
  }
  // Non-blocking: a connection reset between poll() and accept() must not
  // leave the accept loop blocked where Stop() cannot reach it.
  for (UniqueFd* fd : {&config_.tcp4, &config_.tcp6, &config_.udp4, &config_.udp6}) {
    if (!fd->valid()) continue;
    int flags = fcntl(fd->get(), F_GETFL);
    if (flags < 0 || fcntl(fd->get(), F_SETFL, flags | O_NONBLOCK) != 0) {
      return SysError("fcntl", "egress listener, O_NONBLOCK");
    }
  }
  uint64_t netns = 0;
  if (config_.connect_notify.valid()) {
    // What tells the sandbox's own sockets from the direct ones ward hands
    // it: the namespace they live in.
    netns = NetnsCookie(config_.tcp4.valid() ? config_.tcp4.get() : config_.tcp6.get());
    if (netns == 0) return SysError("getsockopt", "SO_NETNS_COOKIE of the egress listener (Linux 5.14)");
    if (!config_.unix_gate) return Error::Setup("egress proxy: no unix gate for the connect() notifications");
  }
  try {
    for (UniqueFd* fd : {&config_.tcp4, &config_.tcp6}) {
      if (fd->valid()) listener_threads_.emplace_back([this, l = fd->get()] { AcceptLoop(l); });
    }
    for (UniqueFd* fd : {&config_.udp4, &config_.udp6}) {
      if (fd->valid()) listener_threads_.emplace_back([this, l = fd->get()] { DatagramLoop(l); });
    }
    if (config_.dropped_log.valid()) {
      listener_threads_.emplace_back([this, l = config_.dropped_log.get()] { DroppedLoop(l); });
    }
    if (config_.connect_notify.valid()) {
      SandboxNetwork sandbox{netns, config_.tcp4.get(), config_.tcp6.get()};
      listener_threads_.emplace_back([this, sandbox, l = config_.connect_notify.get()] {
        ServeConnectNotifications(l, stop_fd_.get(), sandbox, config_.connect_timeout_ms, *this, *config_.unix_gate,
                                  config_.observers);
      });
      // Server-first connections the program's connection never came for
      // are closed on time, even when nothing else touches the pool.
      listener_threads_.emplace_back([this] {
        while (WaitFor(stop_fd_.get(), POLLIN, -1, 1000) == WaitStatus::kTimeout) servers_.Expire(MonotonicMs());
      });
    }
  } catch (const std::system_error& e) {
    return Error::Setup(std::string("egress proxy: starting a listener thread: ") + e.what());
  }
  return {};
}

void Proxy::Stop() {
  std::lock_guard lock(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  if (stop_fd_.valid()) {
    uint64_t one = 1;
    // An eventfd write of 1 cannot fail short of overflow; it stays readable
    // from now on, so every poll() in every thread returns.
    (void)write(stop_fd_.get(), &one, sizeof(one));
  }
  for (UniqueFd* fd : {&config_.tcp4, &config_.tcp6, &config_.udp4, &config_.udp6}) {
    if (fd->valid()) shutdown(fd->get(), SHUT_RDWR);
  }
  for (std::thread& t : listener_threads_) t.join();
  listener_threads_.clear();
  // Each connection thread resets its sockets when it sees the stop fd.
  workers_.CloseAndJoin();
  // Closed last: the workers answer UDP questions through these sockets.
  config_.tcp4.Reset();
  config_.tcp6.Reset();
  config_.udp4.Reset();
  config_.udp6.Reset();
  config_.dropped_log.Reset();
}

std::vector<EgressEvent> Proxy::TakeEvents() {
  std::lock_guard lock(events_mu_);
  std::vector<EgressEvent> out = std::exchange(events_, {});
  // The newest, oldest first, after the first ones.
  for (size_t i = 0; i < recent_.size(); ++i) out.push_back(std::move(recent_[(recent_next_ + i) % recent_.size()]));
  recent_.clear();
  recent_next_ = 0;
  return out;
}

void Proxy::Record(EgressEvent e) {
  if (config_.on_event) config_.on_event(e);
  std::lock_guard lock(events_mu_);
  // A workload can ask questions forever, and could flood to push what it
  // really did out of the record: the first half of the budget keeps the
  // first events, the second half the newest ones (a ring); what falls
  // between is counted.
  if (events_.size() < kMaxPendingEvents / 2) {
    events_.push_back(std::move(e));
  } else if (recent_.size() < kMaxPendingEvents / 2) {
    recent_.push_back(std::move(e));
  } else {
    recent_[recent_next_] = std::move(e);
    recent_next_ = (recent_next_ + 1) % recent_.size();
    ++events_dropped_;
  }
}

// ---------------------------------------------------------------- dropped UDP

// Reads the NFLOG copies of the datagrams the sandbox's filter dropped. The
// kernel writes the messages; the packet inside is the workload's, so every
// length is checked against what was received.
void Proxy::DroppedLoop(int nflog) {
  std::set<std::pair<std::string, uint16_t>> seen;
  alignas(nlmsghdr) uint8_t buf[16384];
  bool stopping = false;
  for (;;) {
    if (!stopping) {
      WaitStatus w = WaitFor(nflog, POLLIN, stop_fd_.get(), -1);
      if (w == WaitStatus::kError) return;
      // The sandbox is gone: what the kernel queued before is still read.
      stopping = w == WaitStatus::kStopped;
    }
    ssize_t n = recv(nflog, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN && stopping) return;
      // ENOBUFS: a flood overran the socket; what was lost was more of the same.
      if (errno == EINTR || errno == EAGAIN || errno == ENOBUFS) continue;
      return;
    }
    size_t left = static_cast<size_t>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type != (NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET)) continue;
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg))) continue;
      const uint8_t* p = static_cast<const uint8_t*>(NLMSG_DATA(h)) + NLMSG_ALIGN(sizeof(nfgenmsg));
      size_t len = h->nlmsg_len - NLMSG_LENGTH(NLMSG_ALIGN(sizeof(nfgenmsg)));
      while (len >= NLA_HDRLEN) {
        nlattr a;
        memcpy(&a, p, sizeof a);
        if (a.nla_len < NLA_HDRLEN || a.nla_len > len) break;
        if ((a.nla_type & NLA_TYPE_MASK) == NFULA_PAYLOAD) {
          RecordDropped({p + NLA_HDRLEN, static_cast<size_t>(a.nla_len - NLA_HDRLEN)}, seen);
        }
        size_t step = NLA_ALIGN(a.nla_len);
        if (step >= len) break;
        p += step;
        len -= step;
      }
    }
  }
}

void Proxy::RecordDropped(std::span<const uint8_t> packet, std::set<std::pair<std::string, uint16_t>>& seen) {
  if (packet.empty()) return;
  IpAddress dst;
  size_t transport = 0;
  int version = packet[0] >> 4;
  if (version == 4 && packet.size() >= 20) {
    if (packet[9] != IPPROTO_UDP) return;
    dst = IpAddress::V4(packet[16], packet[17], packet[18], packet[19]);
    transport = static_cast<size_t>(packet[0] & 0x0f) * 4;
  } else if (version == 6 && packet.size() >= 40) {
    if (packet[6] != IPPROTO_UDP) return;  // extension headers: not the workload's UDP
    dst.family = AF_INET6;
    memcpy(dst.bytes.data(), packet.data() + 24, 16);
    transport = 40;
  } else {
    return;
  }
  uint16_t port = 0;
  if (packet.size() >= transport + 4) port = static_cast<uint16_t>(packet[transport + 2] << 8 | packet[transport + 3]);
  // One event per destination: a flood is one decision, not thousands.
  if (seen.size() >= kMaxDroppedDestinations || !seen.emplace(dst.ToString(), port).second) return;
  EgressEvent ev = NewEvent(EgressEvent::Kind::kUdp);
  ev.address = dst;
  ev.port = port;
  std::vector<std::string> names = bindings_.NamesFor(dst);
  if (!names.empty()) ev.domain = names.front();
  ev.detail = "dropped in the sandbox (further datagrams to it are not listed)";
  Destination d{names.empty() ? std::nullopt : std::optional<std::string>(names.front()), dst, port, Protocol::kUdp};
  for (const EgressRule& r : config_.policy.deny) {
    if (r.MatchesAsDeny(d)) {
      ev.rule = r.text;
      ev.reason = "denied by rule \"" + r.text + "\"";
      break;
    }
  }
  if (ev.rule.empty()) {
    ev.reason = "udp to " + (dst.is_v6() ? "[" + dst.ToString() + "]" : dst.ToString()) + ":" + std::to_string(port) +
                " is not relayed: only DNS (port 53) leaves the sandbox, through ward";
  }
  Record(std::move(ev));
}

// ---------------------------------------------------------------- TCP

void Proxy::AcceptLoop(int listener) {
  for (;;) {
    WaitStatus w = WaitFor(listener, POLLIN, stop_fd_.get(), -1);
    if (w == WaitStatus::kStopped) return;
    if (w == WaitStatus::kError) return;  // listener gone (shut down): nothing more will arrive
    UniqueFd client(accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!client.valid()) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: back off instead of spinning on a full queue.
        if (WaitFor(stop_fd_.get(), POLLIN, -1, 100) != WaitStatus::kTimeout) return;
      } else if (errno == EINVAL) {
        return;  // shut down
      }
      continue;
    }
    if (workers_.Reap() >= kMaxConnections) {
      EgressEvent e = NewEvent(EgressEvent::Kind::kTcp);
      e.reason = "too many connections in flight (" + std::to_string(kMaxConnections - kMaxHeads) +
                 " working, " + std::to_string(kMaxHeads) + " waiting for their first bytes)";
      Record(std::move(e));
      ResetAndClose(client);
      continue;
    }
    HeadSlots::Evicted evicted;
    std::shared_ptr<HeadEntry> head = heads_.Acquire(client.get(), &evicted);
    // Its destination now, not when its thread gets to it: an eviction
    // before then would record a connection to nowhere.
    Redirected where = ReadRedirected(client.get());
    if (where.err == 0) {
      uint16_t port = 0;
      IpAddress dst = FromSockaddr(where.original, &port);
      heads_.SetDestination(head, dst, port);
    }
    if (evicted.any) {
      EgressEvent e = NewEvent(EgressEvent::Kind::kTcp);
      e.address = evicted.address;
      e.port = evicted.port;
      e.reason = "closed: " + std::to_string(kMaxHeads) +
                 " connections were waiting for their first bytes, and this was the oldest (a slow or idle client "
                 "cannot hold the proxy)";
      e.detail = "head limit";
      Record(std::move(e));
    }
    // If the thread cannot start, the lambda and the socket in it are
    // destroyed: the client sees its connection closed.
    bool started = workers_.Spawn([this, c = std::move(client), head, where]() mutable {
      t_head = head;
      HandleConnection(std::move(c), where);
      heads_.Release(head);
      t_head.reset();
    });
    if (!started) heads_.Release(head);
  }
}

void Proxy::HandleConnection(UniqueFd client, const Redirected& where) {
  const sockaddr_storage& local = where.local;
  const sockaddr_storage& orig = where.original;
  const int err = where.err;
  if (err != 0) {
    // ENOENT: no NAT entry, so the program connected to the listener itself
    // (e.g. 127.0.0.1:1) instead of being redirected. There is no
    // destination to judge, so there is nothing to allow.
    EgressEvent e = NewEvent(EgressEvent::Kind::kTcp);
    e.reason = "connection to the proxy's own listener, not a redirected one";
    e.detail = "SO_ORIGINAL_DST: " + ErrnoName(err);
    Record(std::move(e));
    return ResetAndClose(client);
  }
  uint16_t port = 0;
  IpAddress dst = FromSockaddr(orig, &port);
  heads_.SetDestination(t_head, dst, port);
  uint16_t local_port = 0;
  IpAddress local_address = FromSockaddr(local, &local_port);
  if (dst == local_address && port == local_port) {
    // A conntrack entry without NAT: the program connected to the listener
    // itself (127.0.0.1:1, its own address) instead of being redirected.
    EgressEvent e = NewEvent(EgressEvent::Kind::kTcp);
    e.address = dst;
    e.port = port;
    e.reason = "connection to the proxy's own listener, not a redirected one";
    e.detail = "not redirected";
    Record(std::move(e));
    return ResetAndClose(client);
  }
  int one = 1;
  setsockopt(client.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

  if (port == kDnsPort) {
    // DNS over TCP has its own idle limit (kDnsTcpIdleMs).
    if (!ClaimHead()) return ResetAndClose(client);  // recorded by the eviction
    return DnsOverTcp(std::move(client));
  }
  IpAddress unmapped = dst.Unmapped();
  if (unmapped == Gateway4() || unmapped == Gateway6()) {
    if (port == kHttpProxyPort) return HttpProxy(std::move(client));
    return HostLoopback(std::move(client), unmapped, port);
  }
  Transparent(std::move(client), dst, port);
}

void Proxy::Transparent(UniqueFd client, const IpAddress& dst, uint16_t port) {
  // Made while the program's connect() waited (ConnectServerFirst); closed
  // with this connection if it is not allowed.
  UniqueFd server = servers_.Take(dst, port, MonotonicMs());
  const std::vector<std::string> bound = bindings_.NamesFor(dst);
  // Decide on the address and the names ward's DNS bound to it, without
  // waiting for the client: a denied connection fails at once, and an
  // allowed one is connected at once (server-speaks-first protocols such as
  // SSH or SMTP get their greeting). The client's first bytes are judged
  // before any of them reaches the server (LateGate), so an SNI or Host
  // naming something else still resets the connection.
  TcpDecision early = DecideTcp(guard_, config_.policy, std::nullopt, "", bound, dst, port);
  if (early.allowed) {
    return Connect(std::move(client), std::move(server), dst, port, early, "first bytes checked before forwarding", {},
                   /*gate=*/true);
  }
  // Denied on the address. Only a name in the first bytes that ward bound
  // to this address and that the rules allow can change that (an address
  // shared by an allowed and a denied name); otherwise there is nothing to
  // wait for.
  if (!AllowedByBoundName(dst, port, bound)) {
    EgressEvent ev = NewEvent(EgressEvent::Kind::kTcp);
    ev.address = dst;
    ev.port = port;
    ev.rule = early.rule ? early.rule->text : "";
    ev.reason = early.reason;
    // The names ward's DNS bound to the address say what the program meant.
    ev.domain = !early.domain.empty() ? early.domain : bound.empty() ? "" : bound.front();
    ev.detail = !early.source.empty() ? early.source : bound.empty() ? "address" : "dns";
    Record(std::move(ev));  // before the reset: whoever sees the reset finds the event
    return ResetAndClose(client);
  }

  // Wait a little for the first bytes: TLS and HTTP clients speak first and
  // at once; without them the address decision above stands.
  std::vector<uint8_t> head;
  FirstBytes first;
  bool client_ended = false;
  int64_t deadline = MonotonicMs() + config_.sniff_timeout_ms;
  uint8_t buf[4096];
  while (first.status == FirstBytes::Status::kNeedMore && head.size() < kMaxGatedBytes) {
    WaitStatus w = WaitFor(client.get(), POLLIN, stop_fd_.get(), RemainingMs(deadline));
    if (w == WaitStatus::kStopped || w == WaitStatus::kError) return ResetAndClose(client);
    if (w == WaitStatus::kTimeout) break;
    size_t room = kMaxGatedBytes - head.size();
    ssize_t n = recv(client.get(), buf, room < sizeof(buf) ? room : sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return ResetAndClose(client);  // the client gave up first: nothing to decide
    if (n == 0) {
      client_ended = true;
      break;
    }
    head.insert(head.end(), buf, buf + n);
    first = SniffFirstBytes(head);
  }
  bool conclusive = first.status != FirstBytes::Status::kNeedMore;
  if (!ClaimHead()) return ResetAndClose(client);  // recorded by the eviction

  EgressEvent ev = NewEvent(EgressEvent::Kind::kTcp);
  ev.address = dst;
  ev.port = port;
  if (first.status == FirstBytes::Status::kRefuse ||
      (!conclusive && !head.empty() && (client_ended || head.size() >= kMaxGatedBytes))) {
    ev.reason = first.status == FirstBytes::Status::kRefuse ? first.reason
                                                            : "the first bytes could not be judged before they ended";
    ev.detail = "first bytes";
    Record(std::move(ev));  // before the reset: whoever sees the reset finds the event
    return ResetAndClose(client);
  }

  std::optional<std::string> name;
  if (first.status == FirstBytes::Status::kName) name = first.name;
  TcpDecision d = DecideTcp(guard_, config_.policy, name, first.source, bound, dst, port);
  std::string detail;
  if (first.status == FirstBytes::Status::kName) {
    detail = first.source;
  } else {
    detail = conclusive ? "no host name in the first bytes"
                        : "no first bytes within " + std::to_string(config_.sniff_timeout_ms) + " ms";
    if (!d.source.empty()) detail = d.source + " (" + detail + ")";
  }
  if (!d.allowed) {
    ev.rule = d.rule ? d.rule->text : "";
    ev.reason = d.reason;
    ev.domain = d.domain;
    ev.detail = detail;
    Record(std::move(ev));  // before the reset: whoever sees the reset finds the event
    return ResetAndClose(client);
  }
  // Allowed by a name in the first bytes, or (no name came) on the address.
  Connect(std::move(client), std::move(server), dst, port, d, detail, std::move(head), /*gate=*/!conclusive);
}

void Proxy::Connect(UniqueFd client, UniqueFd made, const IpAddress& dst, uint16_t port, const TcpDecision& d,
                    const std::string& detail, std::vector<uint8_t> head, bool gate_first_bytes) {
  EgressEvent ev = TcpEvent(dst, port, d);
  ev.detail = d.source.empty() || detail.starts_with(d.source) ? detail : d.source + " (" + detail + ")";
  Result<UniqueFd> server = made.valid()
                                ? FinishConnect(std::move(made), dst, port, config_.connect_timeout_ms, stop_fd_.get())
                                : ConnectTcp(dst, port, config_.connect_timeout_ms, stop_fd_.get());
  if (!server) {
    ev.detail += "; " + server.error().message;
    Record(std::move(ev));  // before the reset: whoever sees the reset finds the event
    return ResetAndClose(client);
  }
  // Decided without the first bytes (gate_first_bytes): they are judged, by
  // the same rules, before any of them reaches the server, and the one event
  // of this connection is recorded when they are: the name they carry (an
  // SNI the rules allow makes it the decision's name; one they deny resets).
  // Decided with them: recorded now. Either way, if they are an HTTP/1
  // request, each request after it is judged in turn (NextRequestGate).
  bool recorded = false;
  auto record = [&](EgressEvent e) {
    recorded = true;
    Record(std::move(e));
  };
  if (!gate_first_bytes) {
    record(ev);
    HeadDecided();
  }
  std::string current = d.domain;
  FirstBytesGate gate = [&](std::span<const uint8_t> bytes, int index) -> GateVerdict {
    if (index > 0) return NextRequestGate(bytes, index, dst, port, EgressEvent::Kind::kTcp, std::nullopt, &current);
    FirstBytesJudgement j = JudgeFirstBytes(bytes, dst, port);
    if (j.first.status == FirstBytes::Status::kNeedMore) return j.verdict;
    if (!ClaimHead()) return GateVerdict{GateVerdict::Kind::kReset, "closed by the head limit"};
    current = j.first.status == FirstBytes::Status::kName ? j.first.name : "";
    if (recorded) return j.verdict;
    switch (j.first.status) {
      case FirstBytes::Status::kNeedMore:
        return j.verdict;
      case FirstBytes::Status::kNoName:
        ev.detail = d.source.empty() ? "no host name in the first bytes" : d.source + " (no host name in the first bytes)";
        break;
      case FirstBytes::Status::kRefuse:
        ev.allowed = false;
        ev.rule.clear();
        ev.reason = j.first.reason;
        ev.detail = "first bytes";
        break;
      case FirstBytes::Status::kName:
        ev.allowed = j.named.allowed;
        ev.rule = j.named.rule ? j.named.rule->text : "";
        ev.reason = j.named.reason;
        ev.domain = j.named.domain.empty() ? j.first.name : j.named.domain;
        ev.detail = j.first.source;
        break;
    }
    record(ev);
    return j.verdict;
  };
  RelayOutcome outcome =
      Relay(std::move(client), std::move(*server), std::move(head), gate, stop_fd_.get(), kHeadTimeoutMs);
  if (outcome.refused) {
    RecordRefusedBody(outcome, EgressEvent::Kind::kTcp, dst, port, current, outcome.refused_request, "");
  }
  if (!recorded && ClaimHead()) {
    // The client never sent a byte that could be judged (a server-speaks-
    // first exchange that ended, or the client closed): the address decided.
    ev.detail = d.source.empty() ? "no first bytes from the client" : d.source + " (no first bytes from the client)";
    if (outcome.reset_by_gate) {
      ev.allowed = false;
      ev.reason = outcome.gate_reason;
    }
    Record(std::move(ev));
  }
}

std::optional<DirectPlan> Proxy::PlanDirect(const IpAddress& dst, uint16_t port) {
  if (port == kDnsPort) return std::nullopt;  // DNS over TCP: ward's resolver
  DirectPlan plan;
  plan.port = port;
  plan.targets = {dst};
  EgressEvent& ev = plan.event;
  ev = NewEvent(EgressEvent::Kind::kTcp);
  ev.address = dst;
  ev.port = port;
  ev.allowed = true;
  IpAddress unmapped = dst.Unmapped();
  if (unmapped == Gateway4() || unmapped == Gateway6()) {
    if (port == kHttpProxyPort) return std::nullopt;
    EgressDecision d = DecideHostLoopback(port);
    if (!d.allowed) return std::nullopt;  // the proxy resets it and records why
    plan.targets = HostLoopbackTargets(unmapped.is_v6());
    // A service only on ::1 cannot be reached by an IPv4 socket: the proxy
    // can, through its relay.
    plan.proxy_on_failure = true;
    ev.domain = kHostLoopbackName;
    ev.rule = d.rule ? d.rule->text : "";
    ev.reason = d.reason;
    ev.detail = "host-loopback; direct";
    return plan;
  }
  // The sandbox's own network (its own addresses): not redirected, not
  // anywhere outside.
  if (IpNetwork{Gateway4(), kSandboxPrefix4}.Contains(unmapped) ||
      IpNetwork{Gateway6(), kSandboxPrefix6}.Contains(unmapped)) {
    return std::nullopt;
  }
  const std::vector<std::string> bound = bindings_.NamesFor(dst);
  TcpDecision d = DecideTcp(guard_, config_.policy, std::nullopt, "", bound, dst, port);
  if (!d.allowed || FirstBytesCanMatter(guard_, config_.policy, dst, port)) return std::nullopt;
  ev.rule = d.rule ? d.rule->text : "";
  ev.reason = d.reason;
  ev.domain = !d.domain.empty() ? d.domain : bound.empty() ? "" : bound.front();
  ev.detail = d.source.empty() ? "direct" : d.source + "; direct";
  return plan;
}

std::optional<EgressEvent> Proxy::RefuseAtConnect(const IpAddress& dst, uint16_t port) {
  if (port == kDnsPort) return std::nullopt;  // DNS over TCP: ward's resolver
  IpAddress unmapped = dst.Unmapped();
  EgressEvent ev = NewEvent(EgressEvent::Kind::kTcp);
  ev.address = dst;
  ev.port = port;
  ev.allowed = false;
  ev.detail = "connect";
  if (unmapped == Gateway4() || unmapped == Gateway6()) {
    if (port == kHttpProxyPort) return std::nullopt;
    // The host's loopback: no name can change a port's decision.
    EgressDecision d = DecideHostLoopback(port);
    if (d.allowed) return std::nullopt;
    ev.domain = kHostLoopbackName;
    ev.rule = d.rule ? d.rule->text : "";
    ev.reason = d.reason;
    return ev;
  }
  if (InsideSandbox(unmapped)) return std::nullopt;
  // Final only if no first bytes could allow it: the address alone denies
  // (a name ward's DNS did not bind to it can only be allowed by an address
  // rule), and so does every name it did bind (a ClientHello may name any
  // of them: one allowed name among denied ones is read first).
  TcpDecision by_address = DecideTcp(guard_, config_.policy, std::nullopt, "", {}, dst, port);
  if (by_address.allowed) return std::nullopt;
  const std::vector<std::string> bound = bindings_.NamesFor(dst);
  if (AllowedByBoundName(dst, port, bound)) return std::nullopt;
  TcpDecision d = DecideTcp(guard_, config_.policy, std::nullopt, "", bound, dst, port);
  if (d.allowed) return std::nullopt;  // cannot be, but the proxy decides then
  ev.rule = d.rule ? d.rule->text : "";
  ev.reason = d.reason;
  ev.domain = !d.domain.empty() ? d.domain : bound.empty() ? "" : bound.front();
  return ev;
}

std::optional<EgressEvent> Proxy::ConnectServerFirst(const IpAddress& dst, uint16_t port) {
  if (port == kDnsPort) return std::nullopt;  // DNS over TCP: ward's resolver
  IpAddress unmapped = dst.Unmapped();
  if (unmapped == Gateway4() || unmapped == Gateway6() || InsideSandbox(unmapped)) return std::nullopt;
  // Only where first bytes could allow it (RefuseAtConnect refused the
  // rest): on the address, or by a name ward's DNS bound to it, which is
  // what the event says if the server cannot be reached.
  const std::vector<std::string> bound = bindings_.NamesFor(dst);
  TcpDecision d = DecideTcp(guard_, config_.policy, std::nullopt, "", bound, dst, port);
  if (!d.allowed) {
    std::optional<TcpDecision> named = AllowedByBoundName(dst, port, bound);
    if (!named) return std::nullopt;  // the proxy resets it
    d = *named;
  }
  EgressEvent ev = TcpEvent(dst, port, d);
  ev.domain = !d.domain.empty() ? d.domain : bound.empty() ? "" : bound.front();
  ev.detail = d.source.empty() ? "server first" : d.source + "; server first";
  return ev;
}

Proxy::FirstBytesJudgement Proxy::JudgeFirstBytes(std::span<const uint8_t> bytes, const IpAddress& dst,
                                                   uint16_t port) const {
  FirstBytesJudgement j;
  j.first = SniffFirstBytes(bytes);
  switch (j.first.status) {
    case FirstBytes::Status::kNeedMore:
      j.verdict = {GateVerdict::Kind::kNeedMore, ""};
      break;
    case FirstBytes::Status::kNoName:
      j.verdict = {GateVerdict::Kind::kForward, "", j.first.http};
      break;
    case FirstBytes::Status::kRefuse:
      j.verdict = {GateVerdict::Kind::kReset, j.first.reason};
      break;
    case FirstBytes::Status::kName:
      j.named = DecideTcp(guard_, config_.policy, j.first.name, j.first.source, bindings_.NamesFor(dst), dst, port);
      j.verdict = j.named.allowed ? GateVerdict{GateVerdict::Kind::kForward, "", j.first.http}
                                  : GateVerdict{GateVerdict::Kind::kReset, j.named.reason};
      break;
  }
  return j;
}

GateVerdict Proxy::NextRequestGate(std::span<const uint8_t> bytes, int index, const IpAddress& dst, uint16_t port,
                                   EgressEvent::Kind kind, const std::optional<std::string>& pinned,
                                   std::string* current) {
  FirstBytes next = SniffNextRequest(bytes);
  if (next.status == FirstBytes::Status::kNeedMore) return {GateVerdict::Kind::kNeedMore, ""};
  std::string name = next.status == FirstBytes::Status::kName ? next.name : "";
  std::string nth = "request " + std::to_string(index + 1) + " on the connection";
  EgressEvent ev = NewEvent(kind);
  ev.address = dst;
  ev.port = port;
  ev.domain = name;
  ev.detail = (kind == EgressEvent::Kind::kHttpProxy ? "connect; " : "") + std::string("http-host (") + nth + ")";
  if (next.status == FirstBytes::Status::kRefuse) {
    ev.reason = next.reason;
    ev.detail = "first bytes (" + nth + ")";
    Record(ev);  // before the reset: whoever sees the reset finds the event
    return {GateVerdict::Kind::kReset, ev.reason};
  }
  if (pinned) {
    // Inside a CONNECT tunnel: every request names the tunnel's host (or
    // none), as its first bytes had to.
    if (!name.empty() && name != *pinned) {
      ev.reason = "the Host of " + nth + " names \"" + name + "\" but the CONNECT request named \"" + *pinned +
                  "\" (domain fronting)";
      Record(ev);
      return {GateVerdict::Kind::kReset, ev.reason};
    }
    return {GateVerdict::Kind::kForward, "", next.http};
  }
  // The same name as the request before, to the same address and port: the
  // same decision, already recorded. Another name is judged (and recorded)
  // as a connection's first bytes are: a kept-alive connection to an
  // allowed name's server must not carry a request for a denied one.
  std::optional<std::string> as_name;
  if (!name.empty()) as_name = name;
  TcpDecision d = DecideTcp(guard_, config_.policy, as_name, "http-host", bindings_.NamesFor(dst), dst, port);
  if (d.allowed && name == *current) return {GateVerdict::Kind::kForward, "", next.http};
  ev.allowed = d.allowed;
  ev.rule = d.rule ? d.rule->text : "";
  ev.reason = d.reason;
  if (!d.domain.empty()) ev.domain = d.domain;
  Record(ev);
  if (!d.allowed) return {GateVerdict::Kind::kReset, d.reason};
  *current = name;
  return {GateVerdict::Kind::kForward, "", next.http};
}

GateVerdict Proxy::LateGate(std::span<const uint8_t> bytes, const IpAddress& dst, uint16_t port,
                            EgressEvent::Kind kind, std::string* current) {
  FirstBytesJudgement j = JudgeFirstBytes(bytes, dst, port);
  if (j.first.status == FirstBytes::Status::kName) *current = j.first.name;
  if (j.verdict.kind != GateVerdict::Kind::kReset) return j.verdict;
  // Only a reset is recorded: the allow was recorded when the connection was.
  EgressEvent ev = NewEvent(kind);
  ev.address = dst;
  ev.port = port;
  ev.reason = j.verdict.reason;
  if (j.first.status == FirstBytes::Status::kRefuse) {
    ev.detail = "late first bytes";
  } else {
    ev.rule = j.named.rule ? j.named.rule->text : "";
    ev.domain = j.named.domain;
    ev.detail = j.named.source + " (late first bytes, after the connection was allowed without them)";
  }
  Record(ev);
  return j.verdict;
}

EgressDecision Proxy::DecideHostLoopback(uint16_t port) const {
  EgressDecision d = config_.policy.Decide(TcpDestination(std::string(kHostLoopbackName), std::nullopt, port));
  // "default": "allow" or a wildcard ("*.internal") mean the outside world,
  // never the host itself: only an allow rule naming host.ward.internal
  // exactly, with its ports, opens a host port (a bare
  // "host.ward.internal" would open every service of the host's loopback).
  if (d.allowed && !(d.rule && d.rule->kind == EgressRule::Kind::kDomain && d.rule->domain == kHostLoopbackName &&
                     !d.rule->ports.empty())) {
    d.allowed = false;
    d.reason = "the host's loopback port " + std::to_string(port) + " is opened only by a rule naming " +
               kHostLoopbackName + ":" + std::to_string(port) + " (not by \"default\": \"allow\"" +
               (d.rule ? " nor by \"" + d.rule->text + "\"" : std::string()) + ")";
    d.rule = nullptr;
  }
  return d;
}

Result<UniqueFd> Proxy::ConnectHostLoopback(uint16_t port, bool v6_first) {
  const std::vector<IpAddress> targets = HostLoopbackTargets(v6_first);
  Result<UniqueFd> first = ConnectTcp(targets[0], port, config_.connect_timeout_ms, stop_fd_.get());
  if (first) return first;
  Result<UniqueFd> second = ConnectTcp(targets[1], port, config_.connect_timeout_ms, stop_fd_.get());
  if (second) return second;
  return first.error();
}

void Proxy::HostLoopback(UniqueFd client, const IpAddress& gateway, uint16_t port) {
  if (!ClaimHead()) return ResetAndClose(client);  // decided by the port alone; evicted: recorded
  // The only way to the host's loopback: a rule naming host.ward.internal
  // (an address rule for 127.0.0.1 means the sandbox's own loopback, which
  // never reaches the proxy).
  EgressDecision d = DecideHostLoopback(port);
  EgressEvent ev = NewEvent(EgressEvent::Kind::kTcp);
  ev.domain = kHostLoopbackName;
  ev.address = gateway;
  ev.port = port;
  ev.allowed = d.allowed;
  ev.rule = d.rule ? d.rule->text : "";
  ev.reason = d.reason;
  ev.detail = "host-loopback";
  if (!ev.allowed) {
    Record(std::move(ev));  // before the reset: whoever sees the reset finds the event
    return ResetAndClose(client);
  }
  Result<UniqueFd> server = ConnectHostLoopback(port, gateway.is_v6());
  if (!server) {
    ev.detail += "; " + server.error().message;
    Record(std::move(ev));  // before the reset: whoever sees the reset finds the event
    return ResetAndClose(client);
  }
  Record(std::move(ev));
  (void)Relay(std::move(client), std::move(*server), {}, nullptr, stop_fd_.get());
}

// ---------------------------------------------------------------- explicit HTTP proxy

void Proxy::RecordRefusedBody(const RelayOutcome& outcome, EgressEvent::Kind kind, std::optional<IpAddress> dst,
                              uint16_t port, const std::string& domain, int number, const std::string& prefix) {
  EgressEvent ev = NewEvent(kind);
  ev.address = dst;
  ev.port = port;
  ev.domain = domain;
  ev.reason = outcome.gate_reason;
  ev.detail = prefix + "request body (request " + std::to_string(number) + " on the connection)";
  Record(std::move(ev));
}

void Proxy::RefuseHttp(UniqueFd& client, int code, const char* status, const std::string& reason) {
  (void)WriteAll(client.get(), HttpAnswer(code, status, reason), stop_fd_.get(), kReplyTimeoutMs);
  // Closing with unread request bytes would send a reset that can destroy
  // the answer before the client reads it: end our side, drain briefly.
  shutdown(client.get(), SHUT_WR);
  int64_t deadline = MonotonicMs() + 500;
  uint8_t buf[4096];
  while (WaitFor(client.get(), POLLIN, stop_fd_.get(), RemainingMs(deadline)) == WaitStatus::kReady) {
    ssize_t n = recv(client.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) break;
  }
  client.Reset();
}

void Proxy::HttpProxy(UniqueFd client) {
  // One connection to the proxy carries request after request (keep-alive);
  // each is judged and recorded here, from its own head. The relay forwards
  // one request (head and body) and hands the connection back at the first
  // byte of the next one; a request for the same host and port goes on
  // over the same upstream connection, another one gets its own (or a 403).
  std::vector<uint8_t> buf;
  UniqueFd server;
  ServerAnswers answers;  // how far the upstream's answers have been followed
  std::string upstream_host;
  uint16_t upstream_port = 0;
  IpAddress upstream_address;
  for (int index = 0;; ++index) {
    std::string nth = index == 0 ? "" : " (request " + std::to_string(index + 1) + " on the connection)";
    HttpRequestHead head = ParseHttpRequestHead(buf);
    int64_t deadline = MonotonicMs() + kHttpHeadTimeoutMs;
    uint8_t chunk[4096];
    while (head.status == HttpSniffStatus::kNeedMore) {
      WaitStatus w = WaitFor(client.get(), POLLIN, stop_fd_.get(), RemainingMs(deadline));
      if (w == WaitStatus::kTimeout) return RefuseHttp(client, 408, "Request Timeout", "no request head in time");
      if (w != WaitStatus::kReady) return ResetAndClose(client);
      ssize_t n = recv(client.get(), chunk, sizeof(chunk), MSG_DONTWAIT);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) return ResetAndClose(client);
      buf.insert(buf.end(), chunk, chunk + n);
      head = ParseHttpRequestHead(buf);  // kTooLarge past kMaxHttpHeadSize
    }
    if (!ClaimHead()) return ResetAndClose(client);  // recorded by the eviction

    EgressEvent ev = NewEvent(EgressEvent::Kind::kHttpProxy);
    auto refuse = [&](int code, const char* status, std::string reason) {
      if (index > 0 && ev.port == 0) {
        // Refused before it named a destination: the connection's last one.
        ev.port = upstream_port;
        if (ev.domain.empty()) ev.domain = upstream_host;
      }
      ev.reason = reason;
      ev.detail += nth;
      Record(ev);
      RefuseHttp(client, code, status, reason);
    };

    std::string host;
    uint16_t port = 0;
    size_t tunnel_start = 0;
    bool connect = head.method == "CONNECT";
    if (head.status == HttpSniffStatus::kNotHttp) return refuse(400, "Bad Request", "not an HTTP request");
    if (connect) {
      ev.detail = "connect";
      ConnectRequest c = ParseConnectRequest(buf);
      if (c.status != ConnectStatus::kConnect) {
        return refuse(400, "Bad Request", "malformed CONNECT request (" + std::string(HttpErrorName(c.error)) + ")");
      }
      host = c.host;
      port = c.port;
      tunnel_start = c.head_length;
    } else {
      ev.detail = "absolute-form";
      if (head.status == HttpSniffStatus::kMalformed) {
        return refuse(400, "Bad Request", "malformed request head (" + std::string(HttpErrorName(head.error)) + ")");
      }
      if (head.status == HttpSniffStatus::kAmbiguousHost) {
        return refuse(400, "Bad Request",
                      "the request target names \"" + head.target_host + "\" but Host names \"" + head.host + "\"");
      }
      if (head.target_host.empty()) {
        return refuse(400, "Bad Request", "not a proxy request: send an absolute URL (http://host/...) or CONNECT");
      }
      host = head.target_host;
      port = head.target_port.value_or(head.scheme == "https" ? 443 : 80);
    }
    ev.port = port;
    // The upstream of the previous request serves this one if it names the
    // same host and port (and is not a tunnel, which takes the connection).
    bool reuse = server.valid() && !connect && host == upstream_host && port == upstream_port;
    if (!reuse) {
      server.Reset();
      answers = {};
    }

    // Decide, then find the addresses to try (each judged again with its
    // address: address deny rules and the rebinding guard apply).
    std::vector<IpAddress> candidates;
    bool host_loopback = false;
    std::optional<IpAddress> literal = IpAddress::Parse(host);
    if (literal) {
      ev.address = *literal;
      TcpDecision d = DecideTcp(guard_, config_.policy, std::nullopt, "", bindings_.NamesFor(*literal), *literal, port);
      ev.allowed = d.allowed;
      ev.rule = d.rule ? d.rule->text : "";
      ev.reason = d.reason;
      if (!d.allowed) return refuse(403, "Forbidden", d.reason);
      candidates.push_back(*literal);
    } else if (IsHostLoopbackName(host)) {
      // ward's own name: the host's loopback, under the same rule as through
      // the gateway; never asked of the upstream resolver.
      ev.domain = kHostLoopbackName;
      ev.detail += "; host-loopback";
      EgressDecision d = DecideHostLoopback(port);
      ev.rule = d.rule ? d.rule->text : "";
      if (!d.allowed) return refuse(403, "Forbidden", d.reason);
      ev.allowed = true;
      ev.reason = d.reason;
      host_loopback = true;
    } else {
      ev.domain = host;
      EgressDecision d = config_.policy.Decide(TcpDestination(host, std::nullopt, port));
      ev.rule = d.rule ? d.rule->text : "";
      if (!d.allowed) return refuse(403, "Forbidden", d.reason);
      Result<std::vector<IpAddress>> addresses = std::vector<IpAddress>{upstream_address};
      if (!reuse) addresses = Resolve(host);
      if (!addresses) {
        ev.allowed = true;
        ev.reason = d.reason;
        ev.detail += "; resolving: " + addresses.error().message + nth;
        Record(ev);
        return RefuseHttp(client, 502, "Bad Gateway", "cannot resolve " + host + ": " + addresses.error().message);
      }
      TcpDecision last;
      for (const IpAddress& a : *addresses) {
        EgressDecision with = config_.policy.Decide(TcpDestination(host, a, port));
        TcpDecision t =
            ApplyRebindingGuard(guard_, config_.policy, TcpDecision{with.allowed, with.rule, with.reason, host, ""}, a, port);
        if (t.allowed) {
          candidates.push_back(a);
        } else {
          last = t;
          ev.address = a;
        }
      }
      if (candidates.empty()) {
        ev.rule = last.rule ? last.rule->text : "";
        return refuse(403, "Forbidden", last.reason);
      }
      ev.allowed = true;
      ev.reason = d.reason;
    }

    if (reuse) {
      ev.address = upstream_address;
    } else {
      Result<UniqueFd> connected = Error::Setup("no address");
      if (host_loopback) {
        connected = ConnectHostLoopback(port, false);
        ev.address = IpAddress::V4(127, 0, 0, 1);
      }
      for (const IpAddress& a : candidates) {
        ev.address = a;
        connected = ConnectTcp(a, port, config_.connect_timeout_ms, stop_fd_.get());
        if (connected) break;
      }
      if (!connected) {
        ev.detail += "; " + connected.error().message + nth;
        Record(ev);
        return RefuseHttp(client, 502, "Bad Gateway", connected.error().message);
      }
      server = std::move(*connected);
      upstream_host = host;
      upstream_port = port;
      upstream_address = *ev.address;
    }
    ev.detail += nth;
    Record(ev);

    if (!connect) {
      // This request goes on in origin-form, as a proxy must send it (an
      // origin server may not know its own absolute URLs: Python's and
      // Node's answer 404), without the hop-by-hop fields, followed by any
      // body bytes already read; the relay hands the connection back at the
      // next request (or, after an upgrade the server agreed to, relays the
      // rest unread).
      std::string origin_head =
          OriginFormHead(std::string_view(reinterpret_cast<const char*>(buf.data()), head.head_length), head);
      buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(head.head_length));
      buf.insert(buf.begin(), origin_head.begin(), origin_head.end());
      HttpBodyFraming framing = FramingOf(head);
      framing.head_length = origin_head.size();  // the head as it goes on
      FirstBytesGate gate = [framing](std::span<const uint8_t>, int i) {
        return i == 0 ? GateVerdict{GateVerdict::Kind::kForward, "", framing} : GateVerdict{GateVerdict::Kind::kHandBack};
      };
      RelayOutcome out =
          Relay(std::move(client), std::move(server), std::move(buf), gate, stop_fd_.get(), -1, std::move(answers));
      if (out.refused) {
        return RecordRefusedBody(out, EgressEvent::Kind::kHttpProxy, ev.address, port, host, index + 1,
                                 "absolute-form; ");
      }
      if (!out.handed_back) return;
      client = std::move(out.client);
      server = std::move(out.server);
      buf = std::move(out.client_rest);
      answers = std::move(out.answers);
      continue;
    }
    if (!WriteAll(client.get(), std::string_view("HTTP/1.1 200 Connection established\r\n\r\n"), stop_fd_.get(),
                  kReplyTimeoutMs)) {
      return ResetAndClose(client);
    }
    // Whatever the client sent after the CONNECT head is the tunnel's start.
    std::vector<uint8_t> rest(buf.begin() + static_cast<std::ptrdiff_t>(tunnel_start), buf.end());
    IpAddress dst = *ev.address;
    std::optional<std::string> pinned;
    if (!literal) pinned = host;
    FirstBytesGate gate = [this, host, dst, port, literal, host_loopback, pinned, current = std::string()](
                              std::span<const uint8_t> bytes, int i) mutable {
      if (host_loopback) return GateVerdict{GateVerdict::Kind::kForward, ""};
      if (i > 0) return NextRequestGate(bytes, i, dst, port, EgressEvent::Kind::kHttpProxy, pinned, &current);
      if (literal) return LateGate(bytes, dst, port, EgressEvent::Kind::kHttpProxy, &current);
      return ConnectGate(bytes, host, dst, port);
    };
    RelayOutcome out =
        Relay(std::move(client), std::move(server), std::move(rest), std::move(gate), stop_fd_.get(), kHeadTimeoutMs);
    if (out.refused) {
      RecordRefusedBody(out, EgressEvent::Kind::kHttpProxy, dst, port, host, out.refused_request, "connect; ");
    }
    return;
  }
}

GateVerdict Proxy::ConnectGate(std::span<const uint8_t> bytes, const std::string& host, const IpAddress& dst,
                               uint16_t port) {
  // The tunnel was allowed for `host`; a ClientHello (or HTTP request)
  // naming another host would have the server behind that address serve
  // the other one: domain fronting through the proxy.
  FirstBytes first = SniffFirstBytes(bytes);
  if (first.status == FirstBytes::Status::kNeedMore) return {GateVerdict::Kind::kNeedMore, ""};
  if (first.status == FirstBytes::Status::kNoName) return {GateVerdict::Kind::kForward, "", first.http};
  if (first.status == FirstBytes::Status::kName && first.name == host) {
    return {GateVerdict::Kind::kForward, "", first.http};
  }
  EgressEvent ev = NewEvent(EgressEvent::Kind::kHttpProxy);
  ev.domain = first.status == FirstBytes::Status::kName ? first.name : host;
  ev.address = dst;
  ev.port = port;
  ev.reason = first.status == FirstBytes::Status::kRefuse
                  ? first.reason
                  : "the " + first.source + " names \"" + first.name + "\" but the CONNECT request named \"" + host +
                        "\" (domain fronting)";
  ev.detail = "connect; " + (first.source.empty() ? std::string("first bytes") : first.source);
  Record(ev);
  return {GateVerdict::Kind::kReset, ev.reason};
}

Result<std::vector<IpAddress>> Proxy::Resolve(const std::string& name) {
  std::vector<IpAddress> out;
  std::string failures;
  for (uint16_t qtype : {kDnsTypeA, kDnsTypeAaaa}) {
    std::optional<std::vector<uint8_t>> message = BuildDnsQuery(0, name, qtype);
    if (!message) return Error::Setup("\"" + name + "\" is not a host name");
    DnsResult<DnsQuery> query = ParseQuery(*message);
    if (!query) return Error::Setup("\"" + name + "\": " + DnsErrorString(query.error()));
    Result<DnsExchange> r =
        ExchangeDns(config_.dns_servers, *message, *query, false, config_.dns_timeout_ms, stop_fd_.get());
    if (r && r->response.truncated()) {
      r = ExchangeDns(config_.dns_servers, *message, *query, true, config_.dns_timeout_ms, stop_fd_.get());
    }
    if (!r) {
      failures += (failures.empty() ? "" : "; ") + r.error().message;
      continue;
    }
    for (const ResolvedAddress& a : AddressesFor(r->response, name)) {
      if (out.size() >= kMaxAddressesPerAnswer) break;
      IpAddress ip = FromDns(a.address);
      bindings_.Bind(ip, name);
      out.push_back(ip);
    }
  }
  if (out.empty()) return Error::Setup(failures.empty() ? "no address" : failures);
  return out;
}

// ---------------------------------------------------------------- DNS

Proxy::DnsStep Proxy::FilterQuery(std::span<const uint8_t> message) {
  DnsStep step;
  step.event = NewEvent(EgressEvent::Kind::kDns);
  EgressEvent& ev = step.event;
  DnsResult<DnsQuery> query = ParseQuery(message);
  if (!query) {
    DnsRcode rcode = query.error().code == DnsErrc::kUnsupportedOpcode ? DnsRcode::kNotImp : DnsRcode::kFormErr;
    if (std::optional<std::vector<uint8_t>> r = BuildHeaderOnlyResponse(message, rcode)) step.response = *r;
    ev.reason = "malformed DNS query: " + DnsErrorString(query.error());
    return step;
  }
  const DnsQuestion& q = query->question;
  ev.domain = q.name;
  ev.detail = DnsTypeName(q.qtype);
  if (q.qclass != kDnsClassIn) {
    step.response = BuildErrorResponse(*query, DnsRcode::kRefused);
    ev.reason = "DNS class " + std::to_string(q.qclass) + " is not served (only IN)";
    return step;
  }
  if (IsHostLoopbackName(q.name)) {
    step.response = BuildHostLoopbackAnswer(*query);
    ev.allowed = true;
    ev.reason = "answered by ward: the gateway, which leads to the host's loopback ports that rules for " +
                std::string(kHostLoopbackName) + " allow";
    return step;
  }
  DnsNameDecision d = DecideDnsName(config_.policy, q.name);
  ev.allowed = d.allowed;
  ev.rule = d.rule ? d.rule->text : "";
  ev.reason = d.reason;
  if (!d.allowed) {
    step.response = BuildErrorResponse(*query, DnsRcode::kNxDomain);
    return step;
  }
  if (!IsForwardedDnsType(q.qtype)) {
    step.response = BuildErrorResponse(*query, DnsRcode::kRefused);
    ev.allowed = false;
    ev.rule.clear();
    ev.reason = "DNS type " + DnsTypeName(q.qtype) + " is not forwarded (only " + ForwardedDnsTypeNames() + ")";
    return step;
  }
  step.forward = std::move(*query);
  return step;
}

std::vector<uint8_t> Proxy::ForwardQuery(const DnsQuery& query, bool tcp, EgressEvent& event) {
  // The program's bytes never leave: a fresh query carries only what the
  // decision judged (the name, its type) and what resolving needs.
  std::vector<uint8_t> fresh = BuildForwardedQuery(query);
  DnsResult<DnsQuery> ours = ParseQuery(fresh);
  if (!ours) {
    event.detail += "; " + DnsErrorString(ours.error());
    return BuildErrorResponse(query, DnsRcode::kServFail);
  }
  ours->id = query.id;  // ExchangeDns answers with this id
  Result<DnsExchange> r = ExchangeDns(config_.dns_servers, fresh, *ours, tcp, config_.dns_timeout_ms, stop_fd_.get());
  if (!r) {
    event.detail += "; upstream: " + r.error().message;
    return BuildErrorResponse(query, DnsRcode::kServFail);
  }
  RestoreProgramQuestion(r->message, query);
  // Learned from the answer to the question that was allowed: every address
  // the question's name leads to (through CNAMEs) is bound to that name, the
  // one the program asked for and the rules judged.
  size_t bound = 0;
  for (const ResolvedAddress& a : AddressesFor(r->response, query.question.name)) {
    if (bound++ >= kMaxAddressesPerAnswer) break;
    bindings_.Bind(FromDns(a.address), query.question.name);
  }
  return std::move(r->message);
}

void Proxy::DatagramLoop(int listener) {
  std::vector<uint8_t> buf(kDnsMaxMessageSize);
  for (;;) {
    WaitStatus w = WaitFor(listener, POLLIN, stop_fd_.get(), -1);
    if (w == WaitStatus::kStopped || w == WaitStatus::kError) return;
    DatagramOrigin origin;
    iovec iov{buf.data(), buf.size()};
    alignas(cmsghdr) char control[256];
    msghdr msg{};
    msg.msg_name = &origin.peer;
    msg.msg_namelen = sizeof(origin.peer);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(listener, &msg, MSG_DONTWAIT);
    if (n < 0) continue;  // EAGAIN, EINTR, or an error queued by an ICMP message: next datagram
    origin.peer_len = msg.msg_namelen;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        std::memcpy(&origin.local4, CMSG_DATA(c), sizeof(origin.local4));
        origin.has_local = true;
      } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
        std::memcpy(&origin.local6, CMSG_DATA(c), sizeof(origin.local6));
        origin.has_local = true;
      }
    }
    std::span<const uint8_t> message(buf.data(), static_cast<size_t>(n));
    DnsStep step = FilterQuery(message);
    if (!step.forward) {
      Record(std::move(step.event));
      if (!step.response.empty()) SendDatagram(listener, step.response, origin);
      continue;
    }
    if (dns_in_flight_.load() >= kMaxDnsInFlight) {
      step.event.detail += "; not forwarded: too many questions in flight";
      Record(std::move(step.event));
      SendDatagram(listener, BuildErrorResponse(*step.forward, DnsRcode::kServFail), origin);
      continue;
    }
    ++dns_in_flight_;
    workers_.Reap();
    bool started = workers_.Spawn([this, listener, origin, s = std::move(step)]() mutable {
      std::vector<uint8_t> response = ForwardQuery(*s.forward, false, s.event);
      Record(std::move(s.event));
      SendDatagram(listener, response, origin);
      --dns_in_flight_;
    });
    if (!started) --dns_in_flight_;
  }
}

void Proxy::DnsOverTcp(UniqueFd client) {
  std::vector<uint8_t> stream;
  uint8_t buf[4096];
  for (;;) {
    DnsTcpFrame frame = NextDnsTcpMessage(stream);
    if (frame.status == DnsTcpStatus::kMalformed) return ResetAndClose(client);
    if (frame.status == DnsTcpStatus::kMessage) {
      std::vector<uint8_t> message(frame.message.begin(), frame.message.end());
      stream.erase(stream.begin(), stream.begin() + static_cast<std::ptrdiff_t>(frame.consumed));
      DnsStep step = FilterQuery(message);
      std::vector<uint8_t> response =
          step.forward ? ForwardQuery(*step.forward, true, step.event) : std::move(step.response);
      Record(std::move(step.event));
      if (response.empty()) return ResetAndClose(client);  // nothing can answer it: end the stream
      std::optional<std::vector<uint8_t>> framed = FrameDnsTcpMessage(response);
      if (!framed || !WriteAll(client.get(), *framed, stop_fd_.get(), kReplyTimeoutMs)) return ResetAndClose(client);
      continue;
    }
    WaitStatus w = WaitFor(client.get(), POLLIN, stop_fd_.get(), kDnsTcpIdleMs);
    if (w == WaitStatus::kTimeout) return client.Reset();
    if (w != WaitStatus::kReady) return ResetAndClose(client);
    ssize_t n = recv(client.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return client.Reset();
    stream.insert(stream.end(), buf, buf + n);
  }
}

}  // namespace

Result<std::vector<HostAddress>> ReadHostAddresses() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return SysError("getifaddrs", "the host's own addresses (DNS rebinding guard)");
  std::vector<HostAddress> out;
  for (const ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    HostAddress h;
    h.interface = i->ifa_name != nullptr ? i->ifa_name : "";
    if (i->ifa_addr->sa_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
      h.address.family = AF_INET;
      std::memcpy(h.address.bytes.data(), &in->sin_addr, 4);
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
      h.address.family = AF_INET6;
      std::memcpy(h.address.bytes.data(), &in6->sin6_addr, 16);
    } else {
      continue;
    }
    out.push_back(std::move(h));
  }
  freeifaddrs(list);
  return out;
}

Result<std::unique_ptr<EgressProxy>> EgressProxy::Start(EgressProxyConfig config) {
  auto proxy = std::make_unique<Proxy>(std::move(config));
  Result<void> r = proxy->Begin();
  if (!r) return r.error();  // the destructor stops what did start
  return std::unique_ptr<EgressProxy>(std::move(proxy));
}

}  // namespace ward::net
