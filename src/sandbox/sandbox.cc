// The public API: policy -> plan -> cgroups + landlock + seccomp -> launch.
#include "ward/sandbox.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <optional>
#include <unordered_map>

#include "base/clock.h"
#include "base/errors.h"
#include "base/file.h"
#include "base/path.h"
#include "enforce/cgroup.h"
#include "enforce/file_view.h"
#include "enforce/compile.h"
#include "enforce/idmap.h"
#include "enforce/glob.h"
#include "enforce/landlock.h"
#include "enforce/launcher.h"
#include "enforce/seccomp.h"
#include "lifecycle/persist.h"
#include "net/connect_notify.h"
#include "net/connect_server.h"
#include "net/file_notice.h"
#include "net/seccomp_notice.h"
#include "net/egress_proxy.h"
#include "net/unix_gate.h"
#include "lifecycle/store.h"
#include "sandbox/prepare.h"

namespace ward {

namespace {

const char* RlimitField(int resource) {
  switch (resource) {
    case RLIMIT_CPU: return "/limits/cpuSeconds";
    case RLIMIT_NOFILE: return "/limits/openFiles";
    case RLIMIT_FSIZE: return "/limits/fileSizeMiB";
    case RLIMIT_NPROC: return "/limits/pids (as RLIMIT_NPROC)";
    default: return "limits";
  }
}

// "ADDR", "ADDR:PORT", "[V6]" or "[V6]:PORT".
Result<net::UpstreamDns> ParseDnsServer(const std::string& text) {
  auto bad = [&](const char* why) {
    return Error::Usage("--dns-server \"" + text + "\": " + why + " (expected ADDR, ADDR:PORT or [IPv6]:PORT)");
  };
  std::string host = text, port;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos) return bad("unclosed [");
    host = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') return bad("junk after ]");
      port = text.substr(close + 2);
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    host = text.substr(0, text.find(':'));
    port = text.substr(text.find(':') + 1);
  }
  auto addr = net::IpAddress::Parse(host);
  if (!addr) return bad("not an IP address");
  net::UpstreamDns d{*addr, 53};
  if (!port.empty() || text.back() == ':') {
    char* end = nullptr;
    long v = std::strtol(port.c_str(), &end, 10);
    if (port.empty() || *end || v < 1 || v > 65535) return bad("port must be 1..65535");
    d.port = static_cast<uint16_t>(v);
  }
  return d;
}

// The proxy's configuration for an egress policy: the rules as matchers and
// the resolvers allowed names are forwarded to.
Result<net::EgressProxyConfig> EgressConfig(const RunRequest& req) {
  net::EgressProxyConfig config;
  const EgressPolicyText& text = req.policy.egress;
  config.policy.default_allow = text.default_allow;
  auto parse = [](const std::vector<std::string>& rules, const char* list, std::vector<net::EgressRule>& out) -> Result<void> {
    for (size_t i = 0; i < rules.size(); ++i) {
      auto r = net::EgressRule::Parse(rules[i]);
      if (!r) return Error::Policy(std::string("/network/egress/") + list + "/" + std::to_string(i) + ": " + r.error().message);
      out.push_back(std::move(*r));
    }
    return {};
  };
  WARD_TRY(parse(text.allow, "allow", config.policy.allow));
  WARD_TRY(parse(text.deny, "deny", config.policy.deny));
  for (const auto& s : req.dns_servers) {
    auto d = ParseDnsServer(s);
    if (!d) return d.error();
    config.dns_servers.push_back(*d);
  }
  if (req.dns_servers.empty()) {
    auto conf = ReadFile("/etc/resolv.conf");
    if (conf) config.dns_servers = net::ParseResolvConf(*conf);
    if (config.dns_servers.empty()) {
      return Error::Setup("egress mode needs a DNS resolver for the allowed names, and /etc/resolv.conf names none "
                          "(give one with --dns-server ADDR[:PORT])");
    }
  }
  return config;
}

}  // namespace

int ExitStatusFor(const Error& e) {
  switch (e.code) {
    case Error::Code::kPolicy: return kExitPolicy;
    case Error::Code::kUsage: return kExitUsage;
    case Error::Code::kNotFound: return kExitNotFound;
    case Error::Code::kNotExecutable: return kExitNotExecutable;
    case Error::Code::kRuntimeDir: return kExitRuntimeDir;
    case Error::Code::kNameTaken: return kExitNameTaken;
    case Error::Code::kNoSandbox: return kExitNoSandbox;
    case Error::Code::kState: return kExitWrongState;
    case Error::Code::kSupervisorGone: return kExitSupervisorGone;
    case Error::Code::kSetup:
    case Error::Code::kInternal: break;
  }
  return kExitSetup;
}

std::vector<std::string> PolicyWarnings(const Policy& policy) {
  std::vector<std::string> out;
  size_t budget = kGlobBudget;
  for (size_t i = 0; i < policy.filesystem.deny.size(); ++i) {
    auto d = ExpandDeny(policy.filesystem, i, &budget);
    if (!d) out.push_back("/filesystem/deny/" + std::to_string(i) + ": " + d.error().message);
    else if (!d->warning.empty()) out.push_back(d->warning);
  }
  return out;
}

Result<std::unique_ptr<PreparedSandbox>> PrepareSandbox(const RunRequest& req, const std::string& persist_dir,
                                                        const std::string& audit_db) {
  auto prepared = std::make_unique<PreparedSandbox>();
  PreparedSandbox& ps = *prepared;
  ps.start = MonotonicNs();
  const int64_t start = ps.start;
  const Policy& policy = req.policy;
  RunResult& result = ps.result;

  const int abi = LandlockAbi();
  if (abi == 0 && policy.enforcement.landlock == Requirement::kRequired) {
    return Error::Policy("/enforcement/landlock is \"required\" but this kernel offers no landlock "
                         "(not built in, or not in the `lsm=` boot list); set it to \"best-effort\" to run "
                         "with mount isolation alone");
  }
  result.landlock_abi = abi;

  std::vector<Phase>& phases = result.phases;
  auto mark = [&](const char* name) { phases.push_back({name, (MonotonicNs() - start) / 1000.0}); };
  auto compiled = CompilePlan(policy, req.argv, abi, lifecycle::WardStateDirs(audit_db));
  if (!compiled) return compiled.error();
  ps.plan = std::move(*compiled);
  LaunchPlan* plan = &ps.plan;
  WARD_TRY(lifecycle::RefuseControlSockets(*plan));
  if (req.host_uid && plan->host_uid) {
    auto range = SandboxUidRange();
    if (!range) return range.error();
    if (!range->Contains(*req.host_uid)) {
      return Error::Policy("host uid " + std::to_string(*req.host_uid) + " is outside WARD_UID_RANGE (" +
                           std::to_string(range->base) + ":" + std::to_string(range->count) + ")");
    }
    plan->host_uid = *req.host_uid;
    plan->uid_map = plan->gid_map = RootCallerIdMap(*req.host_uid);
  }
  if (req.on_exec || req.on_file || req.on_file_denied) {
    const bool files = req.on_file || req.on_file_denied;
    NotifyCalls(plan, files);
    ps.observers = {req.on_exec, req.on_file};
    if (req.on_file_denied) {
      // Handed to the judge's own thread (enforce/file_view.h): the call
      // goes on at once; the pid is read only for what is reported.
      auto judge = std::make_shared<FileJudge>(plan->view);
      ps.file_judge = judge;
      judge->Start(
          [report = req.on_file_denied](FileDenial d) { report(std::move(d)); },
          req.on_file_dropped);
      ps.observers.file_pids = static_cast<bool>(req.on_file);
      // On the listener's thread, while the caller waits: the sandbox's
      // root once, and each thread's pid in the sandbox once (a thread that
      // has ended by the time its access is judged is gone from /proc).
      auto pids = std::make_shared<std::unordered_map<int, int>>();
      auto rooted = std::make_shared<bool>(false);
      ps.observers.on_file = [judge, pids, rooted, learn = req.on_file](FileAccess a) {
        if (!*rooted) *rooted = judge->TakeRoot(a.host_tid);
        if (a.pid == 0) {
          if (pids->size() > 4096) pids->clear();
          auto [it, fresh] = pids->try_emplace(a.host_tid, 0);
          if (fresh || it->second == 0) it->second = net::SandboxPid(a.host_tid);
          a.pid = it->second;
        }
        if (learn) learn(a);
        PinMagicLinks(&a);
        judge->Submit(std::move(a));
      };
      // An execution too: the program must be readable where it is.
      {
        ps.observers.on_exec = [judge, rooted, exec = ps.observers.on_exec](ProcessExec x) {
          if (!*rooted) *rooted = judge->TakeRoot(x.host_pid);
          if (!x.path.empty() && x.path[0] == '/') {
            FileAccess a;
            a.time_ns = x.time_ns;
            a.pid = x.pid;
            a.host_tid = x.host_pid;
            a.op = FileOp::kExecute;
            a.named = x.path;
            a.path = ResolveByName(x.path);
            judge->Submit(std::move(a));
          }
          if (exec) exec(std::move(x));
        };
      }
    }
  }
  if (req.on_egress) {
    ps.on_event = [cb = req.on_egress, origin = ps.start](const net::EgressEvent& e) { cb(ToEgressRecord(e, origin)); };
  }
  if (req.strict && !plan->warnings.empty()) {
    std::string all;
    for (const auto& w : plan->warnings) all += (all.empty() ? "" : "\n") + w;
    return Error::Policy(all + (plan->warnings.size() > 1 ? "\n(--strict: these warnings are errors)" : " (--strict: a warning is an error)"));
  }
  for (const auto& w : plan->warnings) {
    if (req.on_warning) req.on_warning(w);
  }
  result.warnings = plan->warnings;
  mark("plan compiled");
  plan->seccomp = EmbeddedSeccompFilter();
  if (auto last = ReadFile("/proc/sys/kernel/cap_last_cap")) plan->last_cap = std::atoi(last->c_str());

  mark("seccomp built");
  auto cgroup = SandboxCgroup::Create(policy.limits);
  if (!cgroup) return cgroup.error();
  ps.cgroup.emplace(std::move(*cgroup));
  mark("cgroups created");
  const CgroupPlan& cg = ps.cgroup->plan();
  result.memory_mechanism = policy.limits.memory_mib ? MechanismName(cg.memory) : "";
  result.pids_mechanism = policy.limits.pids ? MechanismName(cg.pids) : "";
  // Every writable tmpfs has a size: its pages are memory the sandbox uses.
  // A memory cgroup counts them (memoryMiB bounds both together); the
  // supervisor's memory watch counts only what processes map, so without a
  // cgroup /tmp and /dev/shm get half each.
  int64_t tmpfs_mib = 0;
  if (policy.limits.tmpfs_mib) {
    tmpfs_mib = *policy.limits.tmpfs_mib;
  } else if (policy.limits.memory_mib) {
    const bool counted = cg.memory == LimitMechanism::kCgroupV2 || cg.memory == LimitMechanism::kCgroupV1;
    tmpfs_mib = counted ? *policy.limits.memory_mib : std::max<int64_t>(1, *policy.limits.memory_mib / 2);
  } else {
    tmpfs_mib = std::max<int64_t>(1, static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) / 4 * sysconf(_SC_PAGESIZE) >> 20);
  }
  BoundTmpfs(*plan, tmpfs_mib);
  if (!persist_dir.empty()) {
    // Tmpfs like ward run's, whose content the held sandbox's supervisor
    // puts back at each start and saves at its end (lifecycle/persist.h).
    plan->persist = PersistAreas(*plan);
    WARD_TRY(lifecycle::PersistentAreas::Prepare(persist_dir, plan->persist));
  }
  auto add_rlimit = [&](int res, uint64_t v) { plan->rlimits.push_back({res, {v, v}}); };
  if (cg.pids == LimitMechanism::kRlimit) add_rlimit(RLIMIT_NPROC, *policy.limits.pids);
  // Raising a hard limit needs CAP_SYS_RESOURCE in the host's namespace,
  // which the sandbox never has: say so now rather than fail in the child.
  for (const auto& r : plan->rlimits) {
    rlimit cur;
    if (getrlimit(static_cast<__rlimit_resource>(r.resource), &cur) == 0 && cur.rlim_max != RLIM_INFINITY &&
        r.value.rlim_max > cur.rlim_max) {
      return Error::Policy(std::string(RlimitField(r.resource)) + ": " + std::to_string(r.value.rlim_max) +
                           " exceeds this user's hard limit " + std::to_string(cur.rlim_max) +
                           " (raising it needs CAP_SYS_RESOURCE)");
    }
  }

  if (abi > 0) {
    auto rs = BuildLandlockRuleset(*plan);
    if (!rs) return rs.error();
    ps.ruleset = std::move(*rs);
  }
  mark("landlock ruleset built");

  LaunchOptions& opts = ps.opts;
  // The unix gate (net/unix_gate.h): the sockets the policy lists, and who
  // the workload is on the host.
  for (const UnixEndpoint& e : plan->unix_endpoints) {
    if (!e.fifo) ps.gate_config.listed.push_back({e.path, e.dev, e.ino});
  }
  if (plan->host_uid) {
    ps.gate_config.uid = *plan->host_uid;
    ps.gate_config.gid = *plan->host_uid;
  }
  PreparedSandbox* p = &ps;
  opts.on_connect_listener = [p](UniqueFd listener, UniqueFd diag) -> Result<void> {
    uint64_t netns = 0;
    if (diag.valid()) {
      netns = net::NetnsCookie(diag.get());
    } else {
      // The host's network: its sockets live in ward's own namespace.
      UniqueFd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
      netns = probe.valid() ? net::NetnsCookie(probe.get()) : 0;
    }
    if (netns == 0) return SysError("getsockopt", "SO_NETNS_COOKIE of the sandbox's network (Linux 5.14)");
    p->gate_config.diag = std::move(diag);
    auto started = net::ConnectServer::Start(std::move(listener), netns,
                                             std::make_shared<net::UnixGate>(std::move(p->gate_config)), p->observers,
                                             p->on_event);
    if (!started) return started.error();
    p->connect_server = std::move(*started);
    return {};
  };
  if (policy.network == NetworkMode::kEgress) {
    auto config = EgressConfig(req);
    if (!config) return config.error();
    ps.egress_config = std::move(*config);
    ps.egress_config->observers = ps.observers;
    ps.egress_config->on_event = ps.on_event;
    opts.on_egress_listeners = [p](std::vector<UniqueFd> fds) -> Result<void> {
      // The proxy holds six descriptors per connection: let it use the hard
      // limit. Raised only now, after clone: the sandbox keeps the caller's.
      rlimit nofile{};
      if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
      }
      net::EgressProxyConfig& ec = *p->egress_config;
      ec.tcp4 = std::move(fds[kListenTcp4]);
      ec.tcp6 = std::move(fds[kListenTcp6]);
      ec.udp4 = std::move(fds[kListenUdp4]);
      ec.udp6 = std::move(fds[kListenUdp6]);
      ec.dropped_log = std::move(fds[kListenNflog]);
      ec.connect_notify = std::move(fds[kListenConnectNotify]);
      p->gate_config.diag = std::move(fds[kListenSockDiag]);
      ec.unix_gate = std::make_shared<net::UnixGate>(std::move(p->gate_config));
      auto started = net::EgressProxy::Start(std::move(ec));
      if (!started) return started.error();
      p->proxy = std::move(*started);
      return {};
    };
  }
  if (cg.memory == LimitMechanism::kSupervisor) opts.watch_memory_bytes = *policy.limits.memory_mib * 1024 * 1024;
  plan->seccomp_extra = BuildPersonalityFilter(/*refuse_memfd=*/opts.watch_memory_bytes > 0);
  if (cg.pids == LimitMechanism::kRlimit) opts.watch_pids = *policy.limits.pids;
  opts.pty = req.pty;
  opts.kill_grace_ms = req.kill_grace_ms;
  opts.start_ns = start;
  return prepared;
}

std::vector<EgressRecord> CollectEgress(PreparedSandbox& ps, uint64_t* dropped) {
  std::vector<EgressRecord> records;
  if (!ps.proxy && !ps.connect_server) return records;
  // The sandbox is gone: close what is still in flight, then collect.
  std::vector<net::EgressEvent> events;
  if (ps.proxy) {
    ps.proxy->Stop();
    events = ps.proxy->TakeEvents();
    *dropped += ps.proxy->DroppedEvents();
  }
  if (ps.connect_server) {
    ps.connect_server->Stop();
    std::vector<net::EgressEvent> more = ps.connect_server->TakeEvents();
    events.insert(events.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
    *dropped += ps.connect_server->DroppedEvents();
  }
  // Threads record as they finish; the result lists decisions in time order.
  std::stable_sort(events.begin(), events.end(), [](const auto& a, const auto& b) { return a.time_ns < b.time_ns; });
  for (const auto& e : events) records.push_back(ToEgressRecord(e, ps.start));
  return records;
}

EgressRecord ToEgressRecord(const net::EgressEvent& e, int64_t origin_ns) {
  EgressRecord r;
  r.kind = net::EgressEventKindName(e.kind);
  r.domain = e.domain;
  if (e.address) r.address = e.address->ToString();
  r.port = e.port;
  r.allowed = e.allowed;
  r.rule = e.rule;
  r.reason = e.reason;
  r.detail = e.detail;
  r.path = e.path;
  r.at_ms = static_cast<double>(e.time_ns - origin_ns) / 1e6;
  return r;
}

Result<RunResult> Run(const RunRequest& req) {
  auto prepared = PrepareSandbox(req, "");
  if (!prepared) return prepared.error();
  PreparedSandbox& ps = **prepared;
  RunResult& result = ps.result;
  LaunchError exec_error;
  auto out = Launch(ps.plan, ps.cgroup->plan(), ps.ruleset.get(), ps.opts, &exec_error);
  result.egress = CollectEgress(ps, &result.egress_dropped);
  // Its file accesses judged and reported before Run returns, while the
  // caller's audit trail is open.
  if (ps.file_judge) ps.file_judge->Stop();
  if (!out) {
    Error e = out.error();
    if (exec_error.exec_errno) {
      e.code = exec_error.exec_errno == ENOENT || exec_error.exec_errno == ENOTDIR ? Error::Code::kNotFound
                                                                                   : Error::Code::kNotExecutable;
    }
    return e;
  }
  result.phases.insert(result.phases.begin(), Phase{"run started", 0});
  result.phases.insert(result.phases.end(), out->phases.begin(), out->phases.end());
  result.duration_ms = out->duration_ms;
  result.timed_out = out->timed_out;
  result.interrupted = out->interrupted;
  result.limits_hit = ps.cgroup->LimitsHit();
  if (out->memory_exceeded) result.limits_hit.push_back("memory");
  if (out->pids_reached) result.limits_hit.push_back("pids");
  // The memory limit could not be kept: the sandbox was stopped, and the run
  // is an error, not a result.
  if (!out->watch_error.empty()) return Error::Setup("memory watch: " + out->watch_error);
  if (out->exited) {
    if (WIFSIGNALED(out->wait_status)) result.signal = WTERMSIG(out->wait_status);
    else result.exit_code = WEXITSTATUS(out->wait_status);
  } else {
    // Init itself was killed (timeout, second signal, OOM killer): so was
    // everything in the sandbox.
    result.signal = out->init_signal ? out->init_signal : SIGKILL;
  }
  return std::move(result);
}

}  // namespace ward
