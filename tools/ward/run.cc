// ward run: run a command in a sandbox.
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <optional>
#include <cstdio>
#include <cstring>

#include "commands.h"
#include "run_audit.h"
#include "ward/sandbox.h"

namespace ward::cli {

namespace {

// Where the run's result goes: --json (the last line of stderr),
// --result-fd N, --result-file PATH. Every outcome is reported there, the
// command's and ward's own errors alike.
struct ResultTargets {
  bool json = false;
  int fd = -1;
  std::string file;
};

struct RunArgs {
  PolicySource src;
  std::vector<std::string> command;
  bool pty = false;
  bool shell = false;
  bool strict = false;
  std::vector<std::string> dns_servers;
  std::string agent;  // "": the policy's audit.agent, else "default"
  ResultTargets result;
};

}  // namespace

nlohmann::json StatusJson(const RunResult* r, const std::string* error, int exit_status) {
  nlohmann::json j;
  j["exitStatus"] = exit_status;
  if (error) {
    j["error"] = *error;
    return j;
  }
  j["exitCode"] = r->signal ? nlohmann::json(nullptr) : nlohmann::json(r->exit_code);
  j["signal"] = r->signal ? nlohmann::json(strsignal(r->signal)) : nlohmann::json(nullptr);
  j["signalNumber"] = r->signal;
  j["timedOut"] = r->timed_out;
  j["interrupted"] = r->interrupted;
  j["limitsHit"] = r->limits_hit;
  j["durationMs"] = r->duration_ms;
  if (!r->warnings.empty()) j["warnings"] = r->warnings;
  if (!r->memory_mechanism.empty()) j["limitMechanisms"]["memory"] = r->memory_mechanism;
  if (!r->pids_mechanism.empty()) j["limitMechanisms"]["pids"] = r->pids_mechanism;
  if (!r->egress.empty()) {
    nlohmann::json eg = nlohmann::json::array();
    for (const auto& e : r->egress) {
      nlohmann::json o = {{"kind", e.kind}, {"domain", e.domain}, {"decision", e.allowed ? "allow" : "deny"},
                          {"rule", e.rule}, {"reason", e.reason}, {"detail", e.detail}, {"atMs", e.at_ms}};
      if (!e.address.empty()) o["address"] = e.address;
      if (e.port) o["port"] = e.port;
      if (!e.path.empty()) o["path"] = e.path;
      eg.push_back(std::move(o));
    }
    j["egress"] = std::move(eg);
  }
  if (r->egress_dropped) j["egressDropped"] = r->egress_dropped;
  return j;
}

namespace {

nlohmann::json ResultJson(const RunResult* r, const std::string* error, int exit_status) {
  nlohmann::json j = StatusJson(r, error, exit_status);
  if (error) return j;
  j["landlockAbi"] = r->landlock_abi;
  nlohmann::json phases = nlohmann::json::array();
  for (const auto& p : r->phases) phases.push_back({{"phase", p.name}, {"us", p.us}});
  j["phases"] = phases;
  return j;
}

bool WriteFully(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// The result's destinations, checked before anything runs (a descriptor
// that is not open for writing, a file that cannot be made: a usage error,
// exit 122). The file is written beside its name and renamed into place
// once complete: a reader sees the whole result or none, and a failed
// write leaves nothing behind.
class ResultSink {
 public:
  explicit ResultSink(ResultTargets t) : t_(std::move(t)) {}
  ~ResultSink() {
    if (!tmp_.empty()) unlink(tmp_.c_str());
  }

  // "" if every destination can be used. Otherwise why not, said on stderr,
  // and only --json is kept (the error is reported there).
  std::string Open() {
    std::string why = Check();
    if (!why.empty()) {
      std::fprintf(stderr, "ward: %s\n", why.c_str());
      t_.fd = -1;
      t_.file.clear();
    }
    return why;
  }

 private:
  std::string Check() {
    if (t_.fd >= 0) {
      int fl = fcntl(t_.fd, F_GETFL);
      if (fl < 0) return "--result-fd " + std::to_string(t_.fd) + ": not an open descriptor";
      if ((fl & O_ACCMODE) == O_RDONLY) return "--result-fd " + std::to_string(t_.fd) + ": not open for writing";
      fcntl(t_.fd, F_SETFD, FD_CLOEXEC);  // never the workload's
    }
    if (!t_.file.empty()) {
      tmp_ = t_.file + ".ward-" + std::to_string(getpid()) + ".tmp";
      file_fd_ = open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (file_fd_ < 0) {
        std::string why = "--result-file \"" + t_.file + "\": " + std::strerror(errno);
        tmp_.clear();
        return why;
      }
    }
    return "";
  }

 public:
  // Reports `j` everywhere asked; false (and said why on stderr) if a
  // destination could not take it.
  bool Emit(const nlohmann::json& j) {
    // Fields from the sandbox (a unix socket's path) may be invalid UTF-8:
    // replaced, never a reason to lose the result.
    const std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    bool ok = true;
    // On a line of its own, whatever the workload last wrote to stderr.
    if (t_.json) std::fprintf(stderr, "\n%s", line.c_str());
    if (t_.fd >= 0 && !WriteFully(t_.fd, line)) {
      std::fprintf(stderr, "ward: --result-fd %d: %s\n", t_.fd, std::strerror(errno));
      ok = false;
    }
    if (file_fd_ >= 0) {
      bool written = WriteFully(file_fd_, line) && fsync(file_fd_) == 0;
      int err = errno;
      close(file_fd_);
      file_fd_ = -1;
      if (written && rename(tmp_.c_str(), t_.file.c_str()) == 0) {
        tmp_.clear();
      } else {
        std::fprintf(stderr, "ward: --result-file \"%s\": %s\n", t_.file.c_str(), std::strerror(written ? errno : err));
        ok = false;
      }
    }
    return ok;
  }

 private:
  ResultTargets t_;
  std::string tmp_;
  int file_fd_ = -1;
};

int DoRun(RunArgs& a) {
  ResultSink sink(a.result);
  // An error of ward's own: said on stderr, and reported as the result.
  auto fail = [&](int code, const std::string& message, bool printed) {
    if (!printed) std::fprintf(stderr, "ward: %s\n", message.c_str());
    sink.Emit(ResultJson(nullptr, &message, code));
    return code;
  };
  if (std::string why = sink.Open(); !why.empty()) return fail(kExitUsage, why, true);
  Policy policy;
  std::string policy_error;
  if (int code = LoadPolicy(a.src, "offline-readonly", &policy, &policy_error); code != 0) {
    return fail(code, policy_error, true);
  }
  if (a.shell) policy.process.shell = true;
  RunRequest req;
  req.policy = std::move(policy);
  req.argv = a.command;
  req.pty = a.pty;
  req.dns_servers = a.dns_servers;
  req.strict = a.strict;
  req.on_warning = [](const std::string& w) { std::fprintf(stderr, "ward: warning: %s\n", w.c_str()); };
  // The audit trail fails closed: a run that cannot be recorded does not
  // run (unless the policy's audit.trail says "best-effort").
  auto begun = RunAudit::BeginFor(a.agent, &req);
  if (!begun) {
    const int code = begun.error().code == Error::Code::kUsage ? kExitUsage : kExitSetup;
    return fail(code, "audit: " + begun.error().message, false);
  }
  std::optional<RunAudit>& trail = *begun;
  auto r = Run(req);
  if (!r) {
    const int code = ExitStatusFor(r.error());
    if (auto ended = RunAudit::EndFor(trail, req, nullptr, &r.error().message, code); !ended) {
      std::fprintf(stderr, "ward: audit: %s\n", ended.error().message.c_str());
    }
    return fail(code, r.error().message, false);
  }
  int code = ExitStatusOf(*r);
  if (auto ended = RunAudit::EndFor(trail, req, &*r, nullptr, code); !ended) {
    // The workload ran; what it did could not be recorded: said, and the
    // run reports ward's failure rather than the workload's status.
    return fail(kExitSetup, "audit: " + ended.error().message + " (the command ran)", false);
  }
  if (r->timed_out) {
    std::fprintf(stderr, "ward: timed out after %lld ms; the sandbox was killed\n",
                 static_cast<long long>(*req.policy.process.timeout_ms));
  }
  for (const auto& l : r->limits_hit) std::fprintf(stderr, "ward: %s limit reached\n", l.c_str());
  if (r->egress_dropped) {
    std::fprintf(stderr, "ward: %llu egress decisions were not recorded (too many)\n",
                 static_cast<unsigned long long>(r->egress_dropped));
  }
  sink.Emit(ResultJson(&*r, nullptr, code));
  return code;
}

}  // namespace

Action AddRun(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  auto* cmd = app.add_subcommand("run", "run a command in a sandbox: ward run [--policy FILE | --profile NAME] -- CMD [ARGS...]");
  AddPolicyOptions(*cmd, a->src, true);
  cmd->add_flag("--pty", a->pty, "give the command a terminal of the sandbox's own, relayed to this one (default: no terminal; a terminal on stdin/stdout/stderr reaches the command as a pipe); the end of a stdin that is not a terminal reaches the command as the terminal's end-of-file character");
  cmd->add_flag("--json", a->result.json,
                "print a machine-readable result (one JSON object) as the last line of stderr, for every outcome "
                "(ward's own errors: exitStatus and error): exitStatus, exitCode, signal, timedOut, "
                "limitsHit, durationMs, phases, warnings (if any), and egress (every DNS question and connection decided, with the rule; "
                "every use of a socket listed in filesystem.unix and every refused unix socket, kind \"unix\")");
  cmd->add_option("--result-fd", a->result.fd,
                  "also write the result (the --json object and a newline) to this open descriptor, for every outcome")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--result-file", a->result.file,
                  "also write the result to this file, for every outcome (written beside it, then renamed into place)");
  cmd->add_option("--agent", a->agent,
                  "the agent this run is for (default: the policy's audit.agent, else \"default\"): recorded with every audit event "
                  "(`ward audit --agent NAME`) and given to the command as WARD_AGENT, with WARD_AGENT_ID "
                  "(stable for the name) and WARD_SANDBOX_ID (this run's)");
  cmd->add_flag("--shell", a->shell, "run the command through /bin/sh -c (default: executed directly, no shell)");
  cmd->add_flag("--strict", a->strict,
                "make every warning an error (exit 123, nothing runs): a deny rule that names nothing under a grant, "
                "a command that is another program in the sandbox than on your PATH, a current directory the sandbox "
                "does not show (run in the private home instead)");
  cmd->add_option("--dns-server", a->dns_servers,
                  "egress mode: resolver for the allowed names, ADDR or ADDR:PORT ([v6]:PORT); repeatable; "
                  "default: the nameservers of the host's /etc/resolv.conf")
      ->allow_extra_args(false);
  cmd->add_option("command", a->command, "the command and its arguments (after --)")->required(false);
  cmd->footer(
      "The environment is empty except what the policy inherits or sets. stdin, stdout and stderr reach the\n"
      "command as pipes relayed by ward (pipes and connected stream sockets pass through as they are; /dev/null\n"
      "and the like are the sandbox's own): the command cannot change a file, FIFO or terminal it was given.\n"
      "Unix sockets: the command can connect() only to sockets served inside the sandbox and to those listed in\n"
      "filesystem.unix (others: EACCES, recorded); unix datagram sockets are refused (EACCES).\n"
      "As root, the command is uid 0 inside but an unprivileged uid on the host, its agent's own (WARD_UID_RANGE=\n"
      "BASE[:COUNT], default 1879048192:65536; recorded in the audit store); writable grants are id-mapped so that\n"
      "what it writes belongs to root.\n"
      "SIGINT, SIGTERM and SIGHUP are forwarded to the command; it is killed 3 s later if still running,\n"
      "or at once on a second signal. Nothing of the sandbox outlives `ward run`.\n"
      "Egress mode (\"network\": {\"egress\": ...}): every TCP connection and DNS question is decided by the\n"
      "policy's rules (docs/network.md); HTTP_PROXY/HTTPS_PROXY point at ward's proxy, which applies the same rules.\n"
      "Exit status: the command's own; 128+N if signal N killed it; 122 bad command line, 123 policy invalid\n"
      "or not enforceable here, 124 timeout, 125 sandbox setup failed, 126 not executable, 127 not found.");
  return [a] { return DoRun(*a); };
}

}  // namespace ward::cli

namespace ward::cli {

void ReportUsageError(int argc, char** argv, const std::string& message) {
  if (argc < 2 || std::strcmp(argv[1], "run") != 0) return;
  ResultTargets t;
  for (int i = 2; i < argc && std::strcmp(argv[i], "--") != 0; ++i) {
    std::string arg = argv[i];
    auto value = [&](const std::string& name) -> std::optional<std::string> {
      if (arg == name && i + 1 < argc) return std::string(argv[++i]);
      if (arg.rfind(name + "=", 0) == 0) return arg.substr(name.size() + 1);
      return std::nullopt;
    };
    if (arg == "--json") t.json = true;
    if (auto v = value("--result-fd")) {
      char* end = nullptr;
      long fd = std::strtol(v->c_str(), &end, 10);
      t.fd = !v->empty() && *end == 0 && fd >= 0 && fd < INT_MAX ? static_cast<int>(fd) : -1;
    }
    if (auto v = value("--result-file")) t.file = *v;
  }
  ResultSink sink(t);
  (void)sink.Open();  // a destination that cannot be used is said, and left out
  sink.Emit(ResultJson(nullptr, &message, kExitUsage));
}

}  // namespace ward::cli
