// The lifecycle commands (ward/lifecycle.h): records on disk
// (lifecycle/store.h), a supervisor per running sandbox
// (lifecycle/held_supervisor.h), and `ward exec`'s side of the control
// socket (lifecycle/control.h).
#include "ward/lifecycle.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "audit/store.h"
#include "base/clock.h"
#include "base/errors.h"
#include "base/fd_passing.h"
#include "base/file.h"
#include "enforce/compile.h"
#include "enforce/landlock.h"
#include "enforce/stdio.h"
#include "enforce/supervisor.h"
#include "lifecycle/control.h"
#include "lifecycle/held_supervisor.h"
#include "lifecycle/store.h"

namespace ward {

using lifecycle::SandboxRecord;

namespace {

Error StateError(const SandboxRecord& r, const std::string& what) {
  return Error{Error::Code::kState, "sandbox " + r.name + " (" + r.id + ") is " + r.state + ": " + what};
}

SandboxInfo InfoOf(const SandboxRecord& r) {
  SandboxInfo i;
  i.id = r.id;
  i.name = r.name;
  i.agent = r.agent;
  i.state = r.state;
  i.created = r.created;
  i.policy_digest = r.policy_digest;
  i.failure = r.failure;
  i.started = r.started;
  i.supervisor_pid = r.supervisor;
  i.audit_store = r.audit_db;
  if (r.state == "running") i.audit_off = r.audit_off;
  return i;
}

// The last line the supervisor wrote to its log, if any.
std::string LastLogLine(const std::string& dir) {
  auto log = ReadFile(dir + "/supervisor.log");
  if (!log || log->empty()) return "";
  std::string text = *log;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  size_t nl = text.rfind('\n');
  return nl == std::string::npos ? text : text.substr(nl + 1);
}

// A "running" record whose supervisor no longer answers: failed, and why.
void MarkGone(SandboxRecord* r, const std::string& dir) {
  r->state = "failed";
  r->failure = "its supervisor (pid " + std::to_string(r->supervisor) + ") is gone, and the sandbox with it";
  if (std::string last = LastLogLine(dir); !last.empty()) r->failure += " (" + last + ")";
}

// Sends one request header (no strings) on a control connection.
bool SendHeader(int fd, uint32_t op, int32_t sig) {
  ExecHeader h{};
  h.op = op;
  h.sig = sig;
  return send(fd, &h, sizeof h, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof h);
}

// The supervisor's status of a running sandbox, or nullopt.
std::optional<nlohmann::json> AskStatus(const std::string& dir) {
  int err = 0;
  auto conn = lifecycle::ConnectControl(dir, &err);
  if (!conn || !SendHeader(conn->get(), lifecycle::kCtlStatus, 0)) return std::nullopt;
  pollfd pf{conn->get(), POLLIN, 0};
  if (poll(&pf, 1, 2000) <= 0) return std::nullopt;
  char buf[4096];
  ssize_t n = recv(conn->get(), buf, sizeof buf, 0);
  if (n <= 0) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(std::string(buf, static_cast<size_t>(n)), nullptr, false);
  if (!j.is_object()) return std::nullopt;
  return j;
}

struct Found {
  std::string runtime, dir;
  SandboxRecord record;
};

Result<Found> Find(const std::string& ref) {
  Found f;
  auto rt = lifecycle::RuntimeDir();
  if (!rt) return rt.error();
  f.runtime = *rt;
  auto dir = lifecycle::FindSandbox(f.runtime, ref);
  if (!dir) return dir.error();
  f.dir = *dir;
  auto rec = lifecycle::LoadRecord(f.dir);
  if (!rec) return rec.error();
  f.record = std::move(*rec);
  return f;
}

}  // namespace

Result<SandboxInfo> Describe(const std::string& ref) {
  auto f = Find(ref);
  if (!f) return f.error();
  return InfoOf(f->record);
}

Result<SandboxInfo> Provision(const ProvisionRequest& req) {
  // The agent names its execs in the audit trail: the same names as
  // `ward run --agent` takes.
  if (!req.agent.empty()) {
    if (std::string why = lifecycle::CheckName(req.agent); !why.empty()) {
      return Error::Usage("--agent \"" + req.agent + "\": " + why);
    }
  }
  auto rt = lifecycle::RuntimeDir();
  if (!rt) return rt.error();
  Policy policy = req.policy;
  // The working directory is the sandbox's from now on: the caller's, if
  // the policy names none (as `ward run` would use).
  if (!policy.process.cwd) {
    char buf[PATH_MAX];
    if (!getcwd(buf, sizeof buf)) return Error::Policy(std::string("the current directory: getcwd: ") + ErrnoName(errno));
    policy.process.cwd = buf;
  }
  // Checked as `ward run` checks it (paths exist, grants are possible);
  // nothing runs. The command is a placeholder: a held sandbox's init
  // starts none of its own.
  // The audit store its execs will be recorded in: the caller's now.
  auto audit_db = audit::DefaultPath();
  if (!audit_db) return audit_db.error();
  auto plan = CompilePlan(policy, {"/"}, LandlockAbi(), lifecycle::WardStateDirs(*audit_db));
  if (!plan) return plan.error();
  WARD_TRY(lifecycle::RefuseControlSockets(*plan));
  if (!req.name.empty()) {
    if (std::string why = lifecycle::CheckName(req.name); !why.empty()) {
      return Error::Usage("--name \"" + req.name + "\": " + why);
    }
    if (req.name == "names") return Error::Usage("--name \"names\": reserved");
  }
  auto lock = lifecycle::StoreLock::Take(*rt);
  if (!lock) return lock.error();
  std::string id;
  for (int tries = 0; tries < 8 && id.empty(); ++tries) {
    auto made = lifecycle::NewId();
    if (!made) return made.error();
    struct stat st;
    if (lstat((*rt + "/" + *made).c_str(), &st) != 0 && lstat((*rt + "/names/" + *made).c_str(), &st) != 0) id = *made;
  }
  if (id.empty()) return Error::Setup("could not choose a new sandbox id");
  SandboxRecord r;
  r.id = id;
  r.name = req.name.empty() ? id : req.name;
  const std::string link = *rt + "/names/" + r.name;
  struct stat st;
  if (lstat(link.c_str(), &st) == 0) {
    return Error{Error::Code::kNameTaken, "the name \"" + r.name + "\" is taken (ward ls; ward deprovision " + r.name + ")"};
  }
  // The agent: --agent, else the policy's audit.agent ("" : "default").
  r.agent = !req.agent.empty() ? req.agent : req.policy.audit.agent;
  r.audit_db = *audit_db;
  r.created = lifecycle::Now3339();
  // The record keeps the policy as JSON; its digest is of the text the
  // record gives back (LoadRecord), compact.
  r.policy = nlohmann::json::parse(PolicyToJson(policy)).dump();
  r.policy_digest = "sha256:" + lifecycle::Sha256Hex(r.policy);
  r.workspace = req.workspace;
  r.dns_servers = req.dns_servers;
  r.state = "provisioned";
  const std::string dir = *rt + "/" + id;
  if (mkdir(dir.c_str(), 0700) != 0) return SysError("mkdir", dir);
  auto undo = [&](Error e) {
    (void)lifecycle::RemoveSandbox(*rt, r);
    return e;
  };
  if (mkdir((dir + "/state").c_str(), 0700) != 0) return undo(SysError("mkdir", dir + "/state"));
  if (auto saved = lifecycle::SaveRecord(dir, r); !saved) return undo(saved.error());
  if (symlink(id.c_str(), link.c_str()) != 0) return undo(SysError("symlink", link));
  return InfoOf(r);
}

Result<SandboxInfo> Start(const std::string& ref) {
  auto f = Find(ref);
  if (!f) return f.error();
  auto lock = lifecycle::StoreLock::Take(f->runtime);
  if (!lock) return lock.error();
  auto rec = lifecycle::LoadRecord(f->dir);  // again, under the lock
  if (!rec) return rec.error();
  if (rec->state == "running") {
    int err = 0;
    if (lifecycle::ConnectControl(f->dir, &err)) return StateError(*rec, "it runs already");
    // Its supervisor died: the sandbox died with it. Start it anew.
    unlink((f->dir + "/ctl").c_str());
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return SysError("pipe2", "supervisor ready");
  UniqueFd ready_rd(p[0]), ready_wr(p[1]);
  // The supervisor: a grandchild in a session of its own, so that it
  // outlives this command and no terminal's signals reach it. This process
  // is single-threaded: the child may run anything.
  pid_t child = fork();
  if (child < 0) return SysError("fork", "supervisor");
  if (child == 0) {
    // Only stdio and the ready pipe go along: nothing else of this command
    // (the store's lock above all) may live as long as the supervisor.
    if (dup2(ready_wr.get(), 3) != 3) _exit(kExitSetup);
    syscall(SYS_close_range, 4, ~0U, 0);
    ready_wr.release();
    ready_rd.release();
    setsid();
    if (fork() != 0) _exit(0);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    int log = open((f->dir + "/supervisor.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    dup2(null, 0);
    dup2(null, 1);
    dup2(log >= 0 ? log : null, 2);
    prctl(PR_SET_NAME, "ward-supervise", 0, 0, 0);
    fcntl(3, F_SETFD, FD_CLOEXEC);
    _exit(lifecycle::HoldSandbox(f->dir, *rec, 3));
  }
  ready_wr.Reset();
  waitpid(child, nullptr, 0);
  std::string said;
  char buf[4096];
  ssize_t n;
  while ((n = read(ready_rd.get(), buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) said.append(buf, static_cast<size_t>(n));
  }
  if (said.rfind("ok", 0) == 0) {
    auto now = lifecycle::LoadRecord(f->dir);
    if (!now) return now.error();
    SandboxInfo info = InfoOf(*now);
    // "ok", then a line per warning.
    for (size_t at = said.find('\n'); at != std::string::npos;) {
      const size_t end = said.find('\n', at + 1);
      info.warnings.push_back(said.substr(at + 1, end == std::string::npos ? std::string::npos : end - at - 1));
      at = end;
    }
    return info;
  }
  if (said.empty()) {
    std::string why = LastLogLine(f->dir);
    return Error::Setup("the sandbox's supervisor ended before it served" + (why.empty() ? "" : ": " + why));
  }
  // "E<status> <why>": the start failed; the record is as it was.
  Error e = Error::Setup(said.substr(said.find(' ') + 1));
  if (said.rfind("E123", 0) == 0) e.code = Error::Code::kPolicy;
  return e;
}

Result<SandboxInfo> Stop(const std::string& ref, int64_t grace_ms) {
  auto f = Find(ref);
  if (!f) return f.error();
  if (f->record.state != "running") return StateError(f->record, "only a running sandbox can be stopped");
  int err = 0;
  auto conn = lifecycle::ConnectControl(f->dir, &err);
  if (!conn) {
    MarkGone(&f->record, f->dir);
    return Error{Error::Code::kSupervisorGone, "sandbox " + f->record.name + " failed: " + f->record.failure};
  }
  if (!SendHeader(conn->get(), lifecycle::kCtlStop, static_cast<int32_t>(grace_ms))) {
    return SysError("send", f->dir + "/ctl");
  }
  // The supervisor closes the connection once everything is gone.
  char buf[64];
  while (recv(conn->get(), buf, sizeof buf, 0) > 0 || errno == EINTR) {
  }
  auto now = lifecycle::LoadRecord(f->dir);
  if (!now) return now.error();
  return InfoOf(*now);
}

Result<void> Deprovision(const std::string& ref, int64_t grace_ms) {
  auto f = Find(ref);
  if (!f) return f.error();
  if (f->record.state == "running") {
    // A supervisor that is gone took the sandbox with it: nothing to stop.
    auto stopped = Stop(ref, grace_ms);
    if (!stopped && stopped.error().code != Error::Code::kState && stopped.error().code != Error::Code::kSupervisorGone) {
      return stopped.error();
    }
  }
  auto lock = lifecycle::StoreLock::Take(f->runtime);
  if (!lock) return lock.error();
  return lifecycle::RemoveSandbox(f->runtime, f->record);
}

Result<std::vector<SandboxInfo>> List() {
  auto rt = lifecycle::RuntimeDir();
  if (!rt) return rt.error();
  std::vector<SandboxInfo> out;
  for (const std::string& dir : lifecycle::AllSandboxes(*rt)) {
    auto rec = lifecycle::LoadRecord(dir);
    if (!rec) continue;  // one being provisioned or removed right now
    if (rec->state == "running") {
      if (auto status = AskStatus(dir)) {
        SandboxInfo i = InfoOf(*rec);
        i.processes = status->value("processes", -1);
        i.supervisor_rss_kib = status->value("supervisorRssKiB", 0L);
        out.push_back(std::move(i));
        continue;
      }
      MarkGone(&*rec, dir);
    }
    out.push_back(InfoOf(*rec));
  }
  return out;
}

namespace {

// A record from the supervisor, with the descriptors that came with it
// (and a kRecReport's JSON or a kRecWarning's text).
struct Reply {
  Record rec{};
  std::vector<UniqueFd> fds;
  std::string text;
};

Result<Reply> ReadReply(int conn) {
  Reply r;
  ssize_t len = recv(conn, nullptr, 0, MSG_PEEK | MSG_TRUNC);
  if (len > static_cast<ssize_t>(sizeof r.rec)) {
    std::string msg(static_cast<size_t>(len), '\0');
    if (recv(conn, msg.data(), msg.size(), 0) != len) return Error::Setup("receive from the sandbox's supervisor: short report");
    std::memcpy(&r.rec, msg.data(), sizeof r.rec);
    r.text = msg.substr(sizeof r.rec);
    if (r.rec.value != static_cast<int64_t>(r.text.size())) {
      return Error::Setup("receive from the sandbox's supervisor: a record's text is not the length it says");
    }
    return r;
  }
  int fds[2];
  size_t nfds = 0, got = 0;
  int err = ReceiveFdsWithData(conn, fds, 2, &nfds, &r.rec, sizeof r.rec, &got);
  for (size_t i = 0; i < nfds; ++i) r.fds.emplace_back(fds[i]);
  if (err) return Error::Setup(std::string("receive from the sandbox's supervisor: ") + ErrnoName(err));
  if (got == 0) return Error{Error::Code::kSupervisorGone, "the sandbox's supervisor closed the connection"};
  return r;
}

}  // namespace

Result<RunResult> Exec(const ExecRequest& req) {
  const int64_t start = MonotonicNs();
  auto rt = lifecycle::RuntimeDir();
  if (!rt) return rt.error();
  auto dir = lifecycle::FindSandbox(*rt, req.ref);
  if (!dir) return dir.error();
  if (req.argv.empty()) return Error::Usage("no command: give one after `--`");

  // stdio as `ward run` gives it (enforce/stdio.h): pipes ward pumps,
  // devices opened anew inside, anonymous pipes and sockets passed as they
  // are; a terminal only with --pty, of the sandbox's own.
  std::optional<StdioBridge> bridge;
  // Not value-initialized: zeroing its 120 KiB of strings cost each exec
  // ~30 page faults; only the header and the strings written are sent.
  auto msg = std::make_unique_for_overwrite<ExecMessage>();
  ExecHeader& h = msg->h;
  h = ExecHeader{};
  h.op = kExecStart;
  std::vector<int> pass;
  if (req.pty) {
    h.flags = kExecPty;
  } else {
    auto b = StdioBridge::Prepare();
    if (!b) return b.error();
    bridge = std::move(*b);
    const StdioPlan& plan = bridge->plan();
    for (int fd = 0; fd < 3; ++fd) {
      h.stdio[fd] = kStdioPassed;
      if (plan.child_fd[fd] >= 0) {
        pass.push_back(plan.child_fd[fd]);
      } else if (plan.reopen[fd]) {
        for (uint32_t d = 0; d < kExecDeviceCount; ++d) {
          if (std::strcmp(plan.reopen[fd], kExecDevices[d]) == 0) h.stdio[fd] = kStdioDevFirst + d;
        }
        h.stdio_flags[fd] = static_cast<uint32_t>(plan.reopen_flags[fd]);
        if (h.stdio[fd] == kStdioPassed) return Error::Setup(std::string("stdio: no device ") + plan.reopen[fd]);
      } else {
        pass.push_back(fd);  // an anonymous pipe or socket: the caller's own
      }
    }
  }
  size_t len = 0;
  auto put = [&](const std::string& s) { return AppendExecString(*msg, &len, s.data(), s.size()); };
  bool fits = put(req.cwd);
  for (const auto& a : req.argv) fits = fits && put(a);
  for (const auto& e : req.env) fits = fits && put(e);
  if (!fits) return Error::Usage("the command and environment exceed " + std::to_string(kExecMaxStrings / 1024) + " KiB");
  h.argc = static_cast<uint32_t>(req.argv.size());
  h.envc = static_cast<uint32_t>(req.env.size());
  h.strings_len = static_cast<uint32_t>(len);
  const size_t size = sizeof h + len;
  // The request is ready before the connection is made: the supervisor
  // accepts it and reads it in one wake-up.
  int err = 0;
  auto conn = lifecycle::ConnectControl(*dir, &err);
  if (!conn) {
    auto rec = lifecycle::LoadRecord(*dir);
    if (!rec) return rec.error();
    if (rec->state != "running") return StateError(*rec, "start it first (ward start " + rec->name + ")");
    MarkGone(&*rec, *dir);
    return Error{Error::Code::kSupervisorGone, "sandbox " + rec->name + " failed: " + rec->failure};
  }
  // Signals are taken for the command before it is asked for: one that
  // came between the request and the relay would end this process and
  // leave the command running.
  SignalRelay signals;
  if (!signals.fd().valid()) return SysError("signalfd", "SIGINT,SIGTERM,SIGHUP,SIGQUIT");
  int sent = pass.empty() ? (send(conn->get(), msg.get(), size, MSG_NOSIGNAL) == static_cast<ssize_t>(size) ? 0 : errno)
                          : SendFdsWithData(conn->get(), pass.data(), pass.size(), msg.get(), size);
  if (sent) return Error::Setup(std::string("send to the sandbox's supervisor: ") + ErrnoName(sent));
  if (bridge) bridge->CloseChildEnds();

  SupervisedInit init;
  LaunchOutcome out;
  InitReport early;
  std::vector<std::string> warnings;
  auto warn = [&](std::string w) {
    if (req.on_warning) req.on_warning(w);
    warnings.push_back(std::move(w));
  };
  bool started = false;
  // Until the process runs (and its terminal came, with --pty), or its
  // start failed.
  while (!early.have_exit && !(started && (!req.pty || init.pty_master.valid()))) {
    auto reply = ReadReply(conn->get());
    if (!reply) return reply.error();
    const Record& r = reply->rec;
    if (r.type == kRecStarted) {
      started = true;
      // A supervisor started by an older ward sends no kRecWarning: a
      // missing trail is in its record.
      if (r.step != kStartedAfterWarnings) {
        if (auto rec = lifecycle::LoadRecord(*dir); rec && !rec->audit_off.empty()) warn(lifecycle::AuditOffWarning(rec->audit_off));
      }
    } else if (r.type == kRecPty && reply->fds.size() == 2) {
      init.pty_master = std::move(reply->fds[0]);
      init.pty_slave = std::move(reply->fds[1]);
      winsize ws;
      if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) ioctl(init.pty_master.get(), TIOCSWINSZ, &ws);
    } else if (r.type == kRecError && !early.have_error) {
      early.have_error = true;
      early.setup_error = r;
    } else if (r.type == kRecExit) {
      early.have_exit = true;
      out.wait_status = static_cast<int>(r.value);
    } else if (r.type == kRecLimit) {
      if (r.err == kLimitMemory) out.memory_exceeded = true;
      if (r.err == kLimitPids) out.pids_reached = true;
    } else if (r.type == kRecReport) {
      out.held_report = std::move(reply->text);
    } else if (r.type == kRecWarning) {
      warn(std::move(reply->text));
    }
  }
  InitReport report = early;
  if (!early.have_exit) {
    fcntl(conn->get(), F_SETFL, O_NONBLOCK);
    const int fd = conn->get();
    init.pidfd = -1;
    init.report_fd = fd;
    init.signal_fd = signals.fd().get();
    init.start_ns = start;
    init.clone_ns = start;
    init.kill_grace_ms = req.kill_grace_ms;
    init.bridge = bridge ? &*bridge : nullptr;
    init.pty = req.pty;
    init.signal_target = [fd](int sig) { SendHeader(fd, kExecSignal, sig); };
    auto supervised = Supervise(init, &out);
    if (!supervised) return supervised.error();
    if (supervised->have_error && !report.have_error) report.setup_error = supervised->setup_error;
    report.have_error = report.have_error || supervised->have_error;
    report.have_exit = supervised->have_exit;
  }
  if (report.have_error) {
    const Record& e = report.setup_error;
    if (e.step == kStepExec) {
      Error x = Error::Setup("execve \"" + req.argv[0] + "\": " + ErrnoName(e.err));
      x.code = e.err == ENOENT || e.err == ENOTDIR ? Error::Code::kNotFound : Error::Code::kNotExecutable;
      if (x.code == Error::Code::kNotFound) x.message = "command not found in the sandbox: " + req.argv[0];
      return x;
    }
    if (e.step == kStepAudit) {
      return Error::Setup("audit: the sandbox's supervisor could not record this exec in its audit store, so it did "
                          "not run (the sandbox's supervisor.log says why)");
    }
    return Error::Setup(std::string("exec: ") + StepName(e.step) + ": " + ErrnoName(e.err));
  }
  RunResult result;
  result.warnings = std::move(warnings);
  result.duration_ms = (MonotonicNs() - start) / 1e6;
  result.timed_out = out.timed_out;
  result.interrupted = out.interrupted;
  if (out.gone_reason == kGoneMemory || out.memory_exceeded) result.limits_hit.push_back("memory");
  if (out.pids_reached) result.limits_hit.push_back("pids");
  if (!report.have_exit) {
    result.signal = SIGKILL;
  } else if (WIFSIGNALED(out.wait_status)) {
    result.signal = WTERMSIG(out.wait_status);
  } else {
    result.exit_code = WEXITSTATUS(out.wait_status);
  }
  lifecycle::ReadExecReport(out.held_report, &result);
  if (out.gone_reason == kGoneStopped) result.warnings.push_back("the sandbox was stopped while the command ran");
  else if (out.gone_reason) result.warnings.push_back("the sandbox ended while the command ran");
  return result;
}

}  // namespace ward
