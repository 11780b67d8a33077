// ward run: run a command in a sandbox.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstring>

#include "commands.h"
#include "ward/sandbox.h"

namespace ward::cli {

namespace {

struct RunArgs {
  PolicySource src;
  std::vector<std::string> command;
  bool pty = false;
  bool json = false;
  bool shell = false;
  int64_t timeout_ms = 0;
  std::string cwd;
  std::vector<std::string> dns_servers;
};

int ErrorExit(const Error& e) {
  switch (e.code) {
    case Error::Code::kPolicy: return kExitPolicy;
    case Error::Code::kUsage: return kExitUsage;
    case Error::Code::kNotFound: return kExitNotFound;
    case Error::Code::kNotExecutable: return kExitNotExecutable;
    default: return kExitSetup;
  }
}

void PrintJson(const RunResult* r, const Error* err, int exit_status) {
  nlohmann::json j;
  j["exitStatus"] = exit_status;
  if (err) {
    j["error"] = err->message;
  } else {
    j["exitCode"] = r->signal ? nlohmann::json(nullptr) : nlohmann::json(r->exit_code);
    j["signal"] = r->signal ? nlohmann::json(strsignal(r->signal)) : nlohmann::json(nullptr);
    j["signalNumber"] = r->signal;
    j["timedOut"] = r->timed_out;
    j["interrupted"] = r->interrupted;
    j["limitsHit"] = r->limits_hit;
    j["durationMs"] = r->duration_ms;
    j["landlockAbi"] = r->landlock_abi;
    if (!r->memory_mechanism.empty()) j["limitMechanisms"]["memory"] = r->memory_mechanism;
    if (!r->pids_mechanism.empty()) j["limitMechanisms"]["pids"] = r->pids_mechanism;
    nlohmann::json phases = nlohmann::json::array();
    for (const auto& p : r->phases) phases.push_back({{"phase", p.name}, {"us", p.us}});
    j["phases"] = phases;
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
  }
  std::fprintf(stderr, "%s\n", j.dump().c_str());
}

int DoRun(RunArgs& a) {
  Policy policy;
  if (!LoadPolicy(a.src, "offline-readonly", &policy)) return kExitPolicy;
  if (a.shell) policy.process.shell = true;
  if (a.timeout_ms > 0) policy.process.timeout_ms = a.timeout_ms;
  if (!a.cwd.empty()) policy.process.cwd = a.cwd;
  RunRequest req;
  req.policy = std::move(policy);
  req.argv = a.command;
  req.pty = a.pty;
  req.dns_servers = a.dns_servers;
  auto r = Run(req);
  if (!r) {
    int code = ErrorExit(r.error());
    std::fprintf(stderr, "ward: %s\n", r.error().message.c_str());
    if (a.json) PrintJson(nullptr, &r.error(), code);
    return code;
  }
  int code = r->timed_out ? kExitTimeout : r->signal ? 128 + r->signal : r->exit_code;
  if (r->timed_out) {
    std::fprintf(stderr, "ward: timed out after %lld ms; the sandbox was killed\n",
                 static_cast<long long>(*req.policy.process.timeout_ms));
  }
  for (const auto& l : r->limits_hit) std::fprintf(stderr, "ward: %s limit reached\n", l.c_str());
  if (r->egress_dropped) {
    std::fprintf(stderr, "ward: %llu egress decisions were not recorded (too many)\n",
                 static_cast<unsigned long long>(r->egress_dropped));
  }
  if (a.json) PrintJson(&*r, nullptr, code);
  return code;
}

}  // namespace

Action AddRun(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  auto* cmd = app.add_subcommand("run", "run a command in a sandbox: ward run [--policy FILE | --profile NAME] -- CMD [ARGS...]");
  AddPolicyOptions(*cmd, a->src, true);
  cmd->add_flag("--pty", a->pty, "give the command a terminal of the sandbox's own, relayed to this one (default: no terminal; a terminal on stdin/stdout/stderr reaches the command as a pipe)");
  cmd->add_flag("--json", a->json,
                "print a machine-readable result as the last line of stderr: exitStatus, exitCode, signal, timedOut, "
                "limitsHit, durationMs, phases, and egress (every DNS question and connection decided, with the rule; "
                "every use of a socket listed in filesystem.unix and every refused unix socket, kind \"unix\")");
  cmd->add_flag("--shell", a->shell, "run the command through /bin/sh -c (default: executed directly, no shell)");
  cmd->add_option("--timeout-ms", a->timeout_ms, "wall-clock limit; overrides process.timeoutMs")->check(CLI::PositiveNumber);
  cmd->add_option("--cwd", a->cwd, "working directory inside the sandbox; overrides process.cwd");
  cmd->add_option("--dns-server", a->dns_servers,
                  "egress mode: resolver for the allowed names, ADDR or ADDR:PORT ([v6]:PORT); repeatable; "
                  "default: the nameservers of the host's /etc/resolv.conf")
      ->allow_extra_args(false);
  cmd->add_option("command", a->command, "the command and its arguments (after --)")->required(false);
  cmd->footer(
      "The environment is empty except what the policy inherits or sets. stdin, stdout and stderr reach the\n"
      "command as pipes relayed by ward (pipes and sockets pass through as they are; /dev/null and the like are\n"
      "the sandbox's own): the command cannot change a file, FIFO or terminal it was given.\n"
      "Unix sockets: the command can connect() only to sockets served inside the sandbox and to those listed in\n"
      "filesystem.unix (others: EACCES, recorded); unix datagram sockets are refused (EACCES).\n"
      "As root, the command is uid 0 inside but an unprivileged uid on the host (WARD_UID_RANGE=BASE[:COUNT],\n"
      "default 1879048192:65536); writable grants are id-mapped so that what it writes belongs to root.\n"
      "SIGINT, SIGTERM and SIGHUP are forwarded to the command; it is killed 3 s later if still running,\n"
      "or at once on a second signal. Nothing of the sandbox outlives `ward run`.\n"
      "Egress mode (\"network\": {\"egress\": ...}): every TCP connection and DNS question is decided by the\n"
      "policy's rules (docs/network.md); HTTP_PROXY/HTTPS_PROXY point at ward's proxy, which applies the same rules.\n"
      "Exit status: the command's own; 128+N if signal N killed it; 122 bad command line, 123 policy invalid\n"
      "or not enforceable here, 124 timeout, 125 sandbox setup failed, 126 not executable, 127 not found.");
  return [a] { return DoRun(*a); };
}

}  // namespace ward::cli
