#include "lifecycle/holder.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "base/errors.h"
#include "base/fd_passing.h"
#include "base/file.h"
#include "base/proc_stat.h"
#include "enforce/supervisor.h"
#include "lifecycle/store.h"

namespace ward::lifecycle {

namespace {

void SendRecord(int fd, uint32_t type, uint32_t step, int32_t err, int64_t value) {
  Record r{type, step, err, 0, value};
  (void)!send(fd, &r, sizeof r, MSG_NOSIGNAL | MSG_DONTWAIT);
}

// The peer is its owner, outside every sandbox: the same uid, and the same
// user namespace as this supervisor. A sandbox's processes live in user
// namespaces of their own (their uid may map to the owner's), so none is
// served, whatever path it found to the socket.
// Not in Debian 12's headers (linux 6.1): asm-generic/socket.h and
// linux/pidfd.h of Linux 6.5 and 6.11.
constexpr int kSoPeerPidfd = 77;
constexpr unsigned long kPidfdGetUserNamespace = _IO(0xFF, 9);

bool PeerIsOwner(int fd, const struct stat& mine) {
  ucred cr{};
  socklen_t len = sizeof cr;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0 || cr.uid != geteuid() || cr.pid <= 0) return false;
  // The process that connected, as a pidfd the kernel took at connect()
  // (Linux 6.5): no pid number in between that another process could reuse.
  int peer = -1;
  len = sizeof peer;
  UniqueFd pidfd;
  if (getsockopt(fd, SOL_SOCKET, kSoPeerPidfd, &peer, &len) == 0) {
    pidfd.Reset(peer);
  } else if (errno == ENOPROTOOPT) {
    // Older kernels: a pidfd of the pid now, checked below to be alive
    // after its namespace was read (a reused number is refused if the
    // connecting process had exited before pidfd_open).
    pidfd.Reset(static_cast<int>(syscall(SYS_pidfd_open, cr.pid, 0)));
  }
  if (!pidfd.valid()) return false;
  struct stat theirs;
  UniqueFd userns(ioctl(pidfd.get(), kPidfdGetUserNamespace, 0));  // Linux 6.11
  if (userns.valid()) {
    if (fstat(userns.get(), &theirs) != 0) return false;
  } else if (errno == ENOTTY || errno == EINVAL) {
    if (stat(("/proc/" + std::to_string(cr.pid) + "/ns/user").c_str(), &theirs) != 0) return false;
  } else {
    return false;  // e.g. EPERM: a process this one may not inspect is not the owner
  }
  // Still alive: the namespace read is the connecting process's.
  pollfd pf{pidfd.get(), POLLIN, 0};
  if (poll(&pf, 1, 0) != 0) return false;
  return mine.st_dev == theirs.st_dev && mine.st_ino == theirs.st_ino;
}

// Splits a request's strings: cwd, argc argv, envc more. False if the
// message does not hold them.
bool SplitRequest(const ExecMessage& m, size_t got, std::string* cwd, std::vector<std::string>* argv,
                  std::vector<std::string>* env) {
  return ForEachExecString(m, got, [&](size_t i, const char* p) {
    if (i == 0) *cwd = p;
    else if (i <= m.h.argc) argv->emplace_back(p);
    else env->emplace_back(p);
  });
}

// The number of processes descending from `root` (its children, theirs...),
// from every /proc/PID/stat's parent.
size_t CountDescendants(pid_t root) {
  std::multimap<pid_t, pid_t> children;
  if (DIR* d = opendir("/proc")) {
    while (dirent* e = readdir(d)) {
      pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
      if (pid <= 0) continue;
      auto stat = ReadFile("/proc/" + std::string(e->d_name) + "/stat");
      if (!stat) continue;
      if (auto ppid = ProcStatField(*stat, 4)) children.emplace(static_cast<pid_t>(*ppid), pid);
    }
    closedir(d);
  }
  size_t n = 0;
  std::vector<pid_t> todo{root};
  while (!todo.empty()) {
    pid_t p = todo.back();
    todo.pop_back();
    auto [a, b] = children.equal_range(p);
    for (auto it = a; it != b; ++it) {
      ++n;
      todo.push_back(it->second);
    }
  }
  return n;
}

long RssKiB() {
  auto status = ReadFile("/proc/self/status");
  if (!status) return 0;
  size_t at = status->find("VmRSS:");
  return at == std::string::npos ? 0 : std::atol(status->c_str() + at + 6);
}

}  // namespace

Result<InitReport> Holder::Serve(HeldInit& held) {
  held_ = &held;
  InitReport report;
  if (!WaitReady(&report)) return report;
  std::string ok = "ok";
  if (hooks_.on_ready) {
    auto ready = hooks_.on_ready(std::move(ready_areas_));
    if (!ready) {
      SignalPidfd(held.pidfd, SIGKILL);
      ReapInit();
      return ready.error();
    }
    for (const std::string& w : *ready) {
      std::fprintf(stderr, "ward supervisor: warning: %s\n", w.c_str());
      ok += "\n" + w;
    }
  }
  if (auto listening = Listen(); !listening) {
    SignalPidfd(held.pidfd, SIGKILL);
    ReapInit();
    return listening.error();
  }
  if (held.watch) {
    const int fd = held.pidfd;
    watcher_ = std::make_unique<MemoryWatchThread>(std::move(*held.watch), held.watch_limits,
                                                  [fd] { SignalPidfd(fd, SIGKILL); });
    held.watch.reset();
  }
  // Running from now on: the record says so, and who holds it.
  if (auto rec = LoadRecord(dir_)) {
    rec->state = "running";
    rec->failure.clear();
    rec->supervisor = getpid();
    rec->started = Now3339();
    rec->audit_off = hooks_.audit_off;
    (void)SaveRecord(dir_, *rec);
  }
  Tell(ok);
  Loop();
  return report;
}

void Holder::Tell(const std::string& msg) {
  if (*ready_fd_ < 0) return;
  (void)!write(*ready_fd_, msg.data(), msg.size());
  close(*ready_fd_);
  *ready_fd_ = -1;
}

bool Holder::WaitReady(InitReport* report) {
  // The first set-up error init reported, if any (non-blocking pipe).
  auto read_errors = [&] {
    Record r;
    while (read(held_->report_fd, &r, sizeof r) == sizeof r) {
      if (r.type == kRecError && !report->have_error) {
        report->have_error = true;
        report->setup_error = r;
      }
    }
  };
  for (;;) {
    pollfd pf[3] = {{held_->exec_channel, POLLIN, 0}, {held_->report_fd, POLLIN, 0}, {held_->pidfd, POLLIN, 0}};
    if (poll(pf, 3, -1) < 0) continue;
    if (pf[1].revents) {
      read_errors();
      if (report->have_error) {
        SignalPidfd(held_->pidfd, SIGKILL);
        ReapInit();
        return false;
      }
    }
    if (pf[0].revents) {
      ExecEvent ev{};
      int fds[kMaxPersistAreas];
      size_t nfds = 0, got = 0;
      const int err = ReceiveFdsWithData(held_->exec_channel, fds, kMaxPersistAreas, &nfds, &ev, sizeof ev, &got);
      std::vector<UniqueFd> areas;
      for (size_t i = 0; i < nfds; ++i) areas.emplace_back(fds[i]);
      if (err == 0 && got == sizeof ev && ev.type == kEvReady) {
        ready_areas_ = std::move(areas);
        return true;
      }
    }
    if (pf[2].revents) {
      // Died without a report: its set-up error may still be in the pipe.
      read_errors();
      ReapInit();
      if (!report->have_error) failure_ = "the sandbox's init died while it was being built";
      return false;
    }
  }
}

Result<void> Holder::Listen() {
  struct stat ns;
  if (stat("/proc/self/ns/user", &ns) != 0) return SysError("stat", "/proc/self/ns/user");
  own_userns_ = ns;
  const std::string path = dir_ + "/ctl";
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) return Error::Setup("control socket path \"" + path + "\" is too long");
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  listen_.Reset(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listen_.valid()) return SysError("socket", "AF_UNIX");
  unlink(path.c_str());  // left by a supervisor that died (start sweeps it too)
  // Made 0600 from the start: the directory is 0700 already.
  mode_t old = umask(0177);
  int bound = bind(listen_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
  umask(old);
  if (bound != 0) return SysError("bind", path);
  if (listen(listen_.get(), 128) != 0) return SysError("listen", path);
  return {};
}

void Holder::ReapInit() {
  if (reaped_) return;
  siginfo_t info{};
  waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(held_->pidfd), &info, WEXITED);
  init_signal_ = info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED ? info.si_status : 0;
  reaped_ = true;
}

void Holder::ToInit(const void* data, size_t len, const int* fds, size_t nfds) {
  if (to_init_.empty() && SendToInit(data, len, fds, nfds) != EAGAIN) return;
  PendingToInit p;
  p.data.assign(static_cast<const char*>(data), len);
  for (size_t i = 0; i < nfds; ++i) p.fds.emplace_back(fcntl(fds[i], F_DUPFD_CLOEXEC, 0));
  to_init_.push_back(std::move(p));
}

int Holder::SendToInit(const void* data, size_t len, const int* fds, size_t nfds) {
  if (nfds) return SendFdsWithData(held_->exec_channel, fds, nfds, data, len);
  return send(held_->exec_channel, data, len, MSG_NOSIGNAL | MSG_DONTWAIT) == static_cast<ssize_t>(len) ? 0 : errno;
}

void Holder::FlushToInit() {
  while (!to_init_.empty()) {
    PendingToInit& p = to_init_.front();
    std::vector<int> fds;
    for (const UniqueFd& fd : p.fds) fds.push_back(fd.get());
    if (SendToInit(p.data.data(), p.data.size(), fds.data(), fds.size()) == EAGAIN) return;
    to_init_.pop_front();
  }
}

void Holder::SignalExec(uint32_t id, int sig) {
  ExecHeader h{};
  h.op = kExecSignal;
  h.id = id;
  h.sig = sig;
  ToInit(&h, sizeof h, nullptr, 0);
}

Holder::LimitCounts Holder::Limits() const {
  LimitCounts l;
  if (ps_.cgroup) {
    const SandboxCgroup::Counters k = ps_.cgroup->LimitCounters();
    l.oom_kills = k.oom_kills;
    l.pids_refused = k.pids_refused;
  }
  if (watcher_) l.pids_samples = watcher_->pids_at_limit_samples();
  return l;
}

void Holder::ReportLimits(ControlClient& c, const LimitCounts& now) {
  for (const std::string& l : LimitsSince(c.at_start, now)) {
    SendRecord(c.fd.get(), kRecLimit, 0, l == "memory" ? kLimitMemory : kLimitPids, 0);
  }
}

std::vector<std::string> Holder::LimitsSince(const LimitCounts& then, const LimitCounts& now) {
  std::vector<std::string> hit;
  if (now.oom_kills > then.oom_kills) hit.push_back("memory");
  if (now.pids_refused > then.pids_refused || now.pids_samples > then.pids_samples) hit.push_back("pids");
  return hit;
}

void Holder::Ended(uint32_t id, int wait_status, bool refused, const std::string& gone, const LimitCounts& now) {
  auto t = tracks_.find(id);
  if (t == tracks_.end()) return;
  if (hooks_.on_exec_end) {
    hooks_.on_exec_end({t->second.run, t->second.caller_pid, wait_status, t->second.timed_out, refused,
                        LimitsSince(t->second.at_start, now), gone,
                        static_cast<double>(MonotonicNs() - t->second.start_ns) / 1e6});
  }
  tracks_.erase(t);
}

void Holder::PullEvents() {
  auto take = [&](std::vector<net::EgressEvent> more) {
    for (auto& e : more) {
      if (events_.size() < kHeldEgress) events_.push_back(std::move(e));
      else ++events_overflow_;
    }
  };
  if (ps_.proxy) take(ps_.proxy->TakeEvents());
  if (ps_.connect_server) take(ps_.connect_server->TakeEvents());
}

uint64_t Holder::DroppedEvents() const {
  return (ps_.proxy ? ps_.proxy->DroppedEvents() : 0) + (ps_.connect_server ? ps_.connect_server->DroppedEvents() : 0) +
         events_overflow_;
}

void Holder::Report(ControlClient& c) {
  PullEvents();
  std::stable_sort(events_.begin(), events_.end(), [](const auto& a, const auto& b) { return a.time_ns < b.time_ns; });
  const int64_t now = MonotonicNs();
  std::vector<EgressRecord> mine;
  uint64_t dropped = DroppedEvents() - c.dropped_at_start;
  for (const auto& e : events_) {
    if (e.time_ns < c.start_ns || e.time_ns > now) continue;
    if (mine.size() < kReportMaxEgress) mine.push_back(ToEgressRecord(e, c.start_ns));
    else ++dropped;
  }
  if (!mine.empty() || dropped) return SendText(c, kRecReport, ExecReportJson(mine, dropped, ps_.result));
  // Most execs make no egress decision: their report is the sandbox's
  // limit mechanisms alone, the same each time.
  if (quiet_report_.empty()) quiet_report_ = ExecReportJson({}, 0, ps_.result);
  SendText(c, kRecReport, quiet_report_);
}

void Holder::SendText(ControlClient& c, uint32_t type, const std::string& text) {
  Record head{type, 0, 0, 0, static_cast<int64_t>(text.size())};
  std::string msg(reinterpret_cast<const char*>(&head), sizeof head);
  msg += text;
  (void)!send(c.fd.get(), msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

void Holder::PruneEvents() {
  int64_t oldest = INT64_MAX;
  for (const auto& [fd, c] : clients_) {
    if (c->exec && c->fd.valid() && !c->exited) oldest = std::min(oldest, c->start_ns);
  }
  std::erase_if(events_, [&](const net::EgressEvent& e) { return e.time_ns < oldest; });
}

void Holder::Finish(ControlClient& c, int status) {
  SendRecord(c.fd.get(), kRecExit, 0, 0, status);
  c.fd.Reset();
}

void Holder::Start(ControlClient& c, size_t got, int* fds, size_t nfds) {
  std::string cwd;
  std::vector<std::string> argv, env;
  const ExecHeader in = request_->h;
  size_t passed = 0;
  for (int i = 0; i < 3; ++i) passed += in.stdio[i] == kStdioPassed && !(in.flags & kExecPty);
  if (c.exec || stopping_ || !SplitRequest(*request_, got, &cwd, &argv, &env) || passed != nfds) {
    SendRecord(c.fd.get(), kRecError, kStepExec, EINVAL, 0);
    Finish(c, W_EXITCODE(126, 0));
    return;
  }
  if (!hooks_.audit_off.empty()) SendText(c, kRecWarning, AuditOffWarning(hooks_.audit_off));
  // The sandbox's environment, then what this exec adds (a name it sets
  // replaces the sandbox's value).
  std::vector<std::string> envp = ps_.plan.envp;
  for (const std::string& e : env) {
    size_t eq = e.find('=');
    if (eq == 0 || eq == std::string::npos) continue;
    // Who the sandbox is (the audit trail's identity) is not the
    // caller's to say.
    const std::string name = e.substr(0, eq);
    if (name == "WARD_AGENT" || name == "WARD_AGENT_ID" || name == "WARD_SANDBOX_ID") continue;
    std::erase_if(envp, [&](const std::string& x) { return x.compare(0, eq + 1, e, 0, eq + 1) == 0; });
    envp.push_back(e);
  }
  ExecMessage& out = *outgoing_;
  out.h = in;
  out.h.op = kExecStart;
  out.h.id = next_id_++;
  out.h.argc = static_cast<uint32_t>(argv.size());
  out.h.envc = static_cast<uint32_t>(envp.size());
  size_t len = 0;
  auto put = [&](const std::string& str) { return AppendExecString(out, &len, str.data(), str.size()); };
  bool fits = put(cwd.empty() ? ps_.plan.cwd : cwd);
  for (const auto& a : argv) fits = fits && put(a);
  for (const auto& e : envp) fits = fits && put(e);
  if (!fits) {
    SendRecord(c.fd.get(), kRecError, kStepExec, E2BIG, 0);
    Finish(c, W_EXITCODE(126, 0));
    return;
  }
  out.h.strings_len = static_cast<uint32_t>(len);
  // Recorded before it runs, and recorded while init forks it and sets it
  // up: the process waits at a gate (kExecGated) until its start is in
  // the audit trail, and is refused if it cannot be.
  const bool gated = static_cast<bool>(hooks_.on_exec_start);
  UniqueFd gate_go, gate_wait;
  if (gated) {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
      SendRecord(c.fd.get(), kRecError, kStepExec, errno, 0);
      Finish(c, W_EXITCODE(125, 0));
      return;
    }
    gate_go.Reset(pair[0]);
    gate_wait.Reset(pair[1]);
  }
  out.h.flags = (in.flags & kExecPty) | (gated ? kExecGated : 0);
  int pass[4];
  for (size_t i = 0; i < nfds; ++i) pass[i] = fds[i];
  if (gated) pass[nfds] = gate_wait.get();
  c.exec = out.h.id;
  c.at_start = Limits();
  c.start_ns = MonotonicNs();
  // Decisions not kept before now are not this exec's to report.
  PullEvents();
  c.dropped_at_start = DroppedEvents();
  tracks_[out.h.id] = Track{c.start_ns, c.at_start, false, "", c.peer_pid};
  if (ps_.plan.timeout_ms > 0) c.deadline = MonotonicNs() + ps_.plan.timeout_ms * 1000000;
  ToInit(&out, sizeof out.h + len, pass, nfds + (gated ? 1 : 0));
  gate_wait.Reset();
  if (!gated) return;
  // While it waits, its process is not the memory watch's to count: a
  // busy store may take seconds to record its start.
  struct GateRegistration {
    MemoryWatchThread* watch;
    int gate;
    ~GateRegistration() {
      if (watch) watch->PastGate(gate);
    }
  } registered{watcher_.get(), gate_go.get()};
  if (watcher_) watcher_->AtGate(gate_go.get());
  std::string warning;
  auto recorded = hooks_.on_exec_start({out.h.id, argv, cwd.empty() ? ps_.plan.cwd : cwd, c.peer_pid, c.peer_uid, &warning});
  if (!recorded) {
    // The gate closes unopened: the process ends without its execve.
    // Nothing of it is recorded as ended (its start was not recorded;
    // a start the store takes late is paired by on_exec_start itself).
    std::fprintf(stderr, "ward supervisor: audit: %s: exec refused\n", recorded.error().message.c_str());
    tracks_.erase(out.h.id);
    c.exec = 0;
    c.deadline = 0;
    SendRecord(c.fd.get(), kRecError, kStepAudit, EIO, 0);
    Finish(c, W_EXITCODE(125, 0));
    return;
  }
  tracks_[out.h.id].run = std::move(*recorded);
  if (!warning.empty()) SendText(c, kRecWarning, warning);
  const char go = 'g';
  (void)!send(gate_go.get(), &go, 1, MSG_NOSIGNAL);
}

void Holder::Status(ControlClient& c) {
  nlohmann::json j = {{"state", stopping_ ? "stopping" : "running"},
                      {"processes", CountDescendants(init_pid_)},
                      {"execs", running_execs()},
                      {"supervisorPid", getpid()},
                      {"supervisorRssKiB", RssKiB()}};
  const std::string text = j.dump();
  (void)!send(c.fd.get(), text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

size_t Holder::running_execs() const {
  size_t n = 0;
  for (const auto& [fd, c] : clients_) n += c->exec != 0 && c->fd.valid();
  return n;
}

void Holder::Stop(int64_t grace_ms) {
  if (stopping_) return;
  stopping_ = true;
  ExecHeader h{};
  h.op = kExecStopAll;
  ToInit(&h, sizeof h, nullptr, 0);
  kill_at_ = MonotonicNs() + (grace_ms > 0 ? grace_ms : 3000) * 1000000;
}

void Holder::OnClient(ControlClient& c) {
  int fds[3];
  size_t nfds = 0, got = 0;
  int err = ReceiveFdsWithData(c.fd.get(), fds, 3, &nfds, request_.get(), sizeof *request_, &got);
  if (err == 0 && got == 0) {
    // The caller went away: an exec it still ran is killed with its group.
    if (c.exec && !c.exited) SignalExec(c.exec, SIGKILL);
    c.fd.Reset();
  } else if (err == 0 && got >= sizeof(ExecHeader)) {
    const ExecHeader& h = request_->h;
    if (h.op == kExecStart) Start(c, got, fds, nfds);
    else if (h.op == kExecSignal && c.exec && h.sig > 0 && h.sig < 65) SignalExec(c.exec, h.sig);
    else if (h.op == kCtlStop) {
      c.stop_waiter = true;
      Stop(h.sig);
    } else if (h.op == kCtlStatus) Status(c);
  } else if (err != EAGAIN && err != EINTR) {
    c.fd.Reset();
  }
  for (size_t i = 0; i < nfds; ++i) close(fds[i]);
}

Holder::ControlClient* Holder::ByExec(uint32_t id) {
  for (auto& [fd, c] : clients_) {
    if (c->exec == id && c->fd.valid()) return c.get();
  }
  return nullptr;
}

void Holder::OnInitEvent() {
  for (;;) {
    ExecEvent ev{};
    int fds[2];
    size_t nfds = 0, got = 0;
    int err = ReceiveFdsWithData(held_->exec_channel, fds, 2, &nfds, &ev, sizeof ev, &got);
    if (err == EAGAIN || (err == 0 && got == 0)) break;
    if (err == 0 && got == sizeof ev) {
      ControlClient* c = ByExec(ev.id);
      if (ev.type == kEvExited) {
        for (auto& [fd, other] : clients_) other->exited = other->exited || other->exec == ev.id;
      }
      if (!c && ev.type == kEvExited) Ended(ev.id, static_cast<int>(ev.value), false, "", Limits());
      if (!c && ev.type == kEvRefused) Ended(ev.id, W_EXITCODE(125, 0), true, "", Limits());
      if (c) {
        const int fd = c->fd.get();
        switch (ev.type) {
          case kEvStarted: SendRecord(fd, kRecStarted, kStartedAfterWarnings, 0, ev.value); break;
          case kEvPty: {
            Record r{kRecPty, 0, 0, 0, 0};
            SendFdsWithData(fd, fds, nfds, &r, sizeof r);
            break;
          }
          case kEvFailed: SendRecord(fd, kRecError, static_cast<uint32_t>(ev.step), ev.err, 0); break;
          case kEvRefused:
            Ended(ev.id, W_EXITCODE(125, 0), true, "", Limits());
            if (hooks_.before_exit) hooks_.before_exit();
            SendRecord(fd, kRecError, kStepFork, ev.err, 0);
            Finish(*c, W_EXITCODE(125, 0));
            break;
          case kEvExited: {
            const LimitCounts now = Limits();
            Ended(ev.id, static_cast<int>(ev.value), false, "", now);
            // Its exec events are in the store before its caller hears
            // it ended (bounded: a store that refuses is the writer's to
            // retry, not this loop's to wait on). Then its limits, report
            // and status at once: one wake-up of the caller, not two.
            if (hooks_.before_exit) hooks_.before_exit();
            ReportLimits(*c, now);
            Report(*c);
            Finish(*c, static_cast<int>(ev.value));
            PruneEvents();
            break;
          }
          default: break;
        }
      }
    }
    for (size_t i = 0; i < nfds; ++i) close(fds[i]);
  }
}

void Holder::Loop() {
  init_pid_ = PidOf(held_->pidfd);
  fcntl(held_->exec_channel, F_SETFL, O_NONBLOCK);
  std::vector<pollfd> pf;
  std::vector<ControlClient*> order;
  for (;;) {
    const short to_init = static_cast<short>(POLLIN | (to_init_.empty() ? 0 : POLLOUT));
    pf.assign({{listen_.get(), POLLIN, 0}, {held_->exec_channel, to_init, 0}, {held_->pidfd, POLLIN, 0},
               {held_->signal_fd, POLLIN, 0}});
    order.clear();
    for (auto& [fd, c] : clients_) {
      pf.push_back({c->fd.get(), POLLIN, 0});
      order.push_back(c.get());
    }
    int64_t now = MonotonicNs(), next = kill_at_;
    for (ControlClient* c : order) {
      if (c->deadline && (!next || c->deadline < next)) next = c->deadline;
    }
    int timeout = next ? static_cast<int>(std::max<int64_t>(0, (next - now) / 1000000 + 1)) : -1;
    int n = poll(pf.data(), pf.size(), timeout);
    if (n < 0 && errno != EINTR) break;
    now = MonotonicNs();
    if (kill_at_ && now >= kill_at_) {
      SignalPidfd(held_->pidfd, SIGKILL);
      kill_at_ = 0;
    }
    for (ControlClient* c : order) {
      if (c->deadline && now >= c->deadline && c->fd.valid()) {
        c->deadline = 0;
        if (auto t = tracks_.find(c->exec); t != tracks_.end()) t->second.timed_out = true;
        SendRecord(c->fd.get(), kRecTimedOut, 0, 0, 0);
        SignalExec(c->exec, SIGKILL);
      }
    }
    if (n <= 0) continue;
    if (pf[1].revents & POLLOUT) FlushToInit();
    if (pf[1].revents & ~POLLOUT) OnInitEvent();
    for (size_t i = 0; i < order.size(); ++i) {
      if (pf[4 + i].revents && order[i]->fd.valid()) OnClient(*order[i]);
    }
    if (pf[0].revents) Accept();
    if (pf[3].revents) OnSignal();
    if (pf[2].revents) {
      // Init is gone, and with it the sandbox: its last events first.
      OnInitEvent();
      break;
    }
    std::erase_if(clients_, [](const auto& kv) { return !kv.second->fd.valid(); });
  }
  GoneForEveryone();
}

void Holder::Accept() {
  for (;;) {
    UniqueFd fd(accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd.valid()) return;
    if (!own_userns_ || !PeerIsOwner(fd.get(), *own_userns_)) continue;  // closed unanswered
    auto c = std::make_unique<ControlClient>();
    ucred cr{};
    socklen_t len = sizeof cr;
    if (getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0) {
      c->peer_pid = cr.pid;
      c->peer_uid = cr.uid;
    }
    const int key = fd.get();
    c->fd = std::move(fd);
    clients_[key] = std::move(c);
  }
}

void Holder::OnSignal() {
  signalfd_siginfo si;
  while (read(held_->signal_fd, &si, sizeof si) == sizeof si) {
    const int sig = static_cast<int>(si.ssi_signo);
    if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT) Stop(3000);
  }
}

void Holder::GoneForEveryone() {
  ReapInit();
  if (watcher_) {
    watcher_->Stop();
    if (watcher_->memory_exceeded()) failure_ = "the memory limit was reached: the sandbox was killed";
    else if (!watcher_->error().empty()) failure_ = "memory watch: " + watcher_->error();
  }
  if (!stopping_ && failure_.empty()) {
    failure_ = init_signal_ ? std::string("the sandbox's init was killed by ") + strsignal(init_signal_)
                            : "the sandbox's init exited";
  }
  const int32_t reason = stopping_ ? kGoneStopped : watcher_ && watcher_->memory_exceeded() ? kGoneMemory : kGoneFailed;
  const std::string gone = stopping_ ? "the sandbox was stopped" : failure_;
  std::vector<uint32_t> still;
  for (const auto& [id, t] : tracks_) still.push_back(id);
  const LimitCounts now = Limits();
  for (uint32_t id : still) Ended(id, SIGKILL, false, gone, now);
  if (hooks_.before_exit) hooks_.before_exit();
  for (auto& [fd, c] : clients_) {
    if (!c->fd.valid()) continue;
    if (c->exec && !c->exited) {
      ReportLimits(*c, now);
      Report(*c);
      SendRecord(c->fd.get(), kRecGone, 0, reason, 0);
      Finish(*c, SIGKILL);
    }
  }
  // Stop waiters keep their connection until the supervisor exits: its
  // end is their answer.
  stop_waiters_.clear();
  for (auto& [fd, c] : clients_) {
    if (c->fd.valid() && c->stop_waiter) stop_waiters_.push_back(std::move(c->fd));
  }
  clients_.clear();
}

pid_t Holder::PidOf(int pidfd) {
  auto info = ReadFile("/proc/self/fdinfo/" + std::to_string(pidfd));
  if (!info) return 0;
  size_t at = info->find("\nPid:");
  return at == std::string::npos ? 0 : static_cast<pid_t>(std::atoi(info->c_str() + at + 5));
}

}  // namespace ward::lifecycle
