// ward provision | start | exec | stop | deprovision | ls: held sandboxes
// (ward/lifecycle.h).
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "commands.h"
#include "ward/lifecycle.h"

namespace ward::cli {

namespace {

int Report(const Error& e) {
  std::fprintf(stderr, "ward: %s\n", e.message.c_str());
  return ExitStatusFor(e);
}

const char* kStatusTable =
    "Exit status: 0 done; 117 runtime directory unusable (owner or mode); 118 name taken; 119 no such sandbox;\n"
    "120 not valid in the sandbox's state (e.g. exec into a stopped sandbox); 121 its supervisor is gone (failed);\n"
    "122 bad command line; 123 policy invalid or not enforceable; 125 sandbox setup failed.";

struct ProvisionArgs {
  PolicySource src;
  std::string name, agent;
  std::vector<std::string> dns_servers;
};

int DoProvision(ProvisionArgs& a) {
  Policy policy;
  if (int code = LoadPolicy(a.src, "offline-readonly", &policy); code != 0) return code;
  ProvisionRequest req;
  req.policy = std::move(policy);
  req.name = a.name;
  req.agent = a.agent;
  req.workspace = a.src.workspace;
  if (!req.workspace.empty()) {
    char buf[4096];
    if (realpath(req.workspace.c_str(), buf)) req.workspace = buf;
  }
  req.dns_servers = a.dns_servers;
  auto info = Provision(req);
  if (!info) return Report(info.error());
  std::printf("%s\n", info->id.c_str());
  return 0;
}

int DoStart(const std::string& ref) {
  auto info = Start(ref);
  if (!info) return Report(info.error());
  for (const auto& w : info->warnings) std::fprintf(stderr, "ward: warning: %s\n", w.c_str());
  return 0;
}

int DoStop(const std::string& ref, int64_t grace_ms) {
  auto info = Stop(ref, grace_ms);
  if (!info) return Report(info.error());
  if (info->state != "stopped") {
    std::fprintf(stderr, "ward: sandbox %s is %s: %s\n", info->name.c_str(), info->state.c_str(), info->failure.c_str());
    return kExitSupervisorGone;
  }
  return 0;
}

int DoDeprovision(const std::string& ref, int64_t grace_ms) {
  auto done = Deprovision(ref, grace_ms);
  if (!done) return Report(done.error());
  return 0;
}

int DoLs(bool json) {
  auto all = List();
  if (!all) return Report(all.error());
  if (json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& i : *all) {
      nlohmann::json o = {{"id", i.id},         {"name", i.name},       {"agent", i.agent},
                          {"state", i.state},   {"created", i.created}, {"policyDigest", i.policy_digest}};
      if (i.processes >= 0) o["processes"] = i.processes;
      if (i.supervisor_pid) o["supervisorPid"] = i.supervisor_pid;
      if (i.supervisor_rss_kib) o["supervisorRssKiB"] = i.supervisor_rss_kib;
      if (!i.started.empty()) o["started"] = i.started;
      if (!i.failure.empty()) o["failure"] = i.failure;
      arr.push_back(std::move(o));
    }
    std::printf("%s\n", arr.dump().c_str());
    return 0;
  }
  std::printf("%-12s  %-20s  %-12s  %-11s  %-20s  %-19s  %s\n", "ID", "NAME", "AGENT", "STATE", "CREATED", "POLICY",
              "PROCESSES");
  for (const auto& i : *all) {
    std::string procs = i.processes >= 0 ? std::to_string(i.processes) : "-";
    std::printf("%-12s  %-20s  %-12s  %-11s  %-20s  %-19s  %s\n", i.id.c_str(), i.name.c_str(),
                i.agent.empty() ? "-" : i.agent.c_str(), i.state.c_str(), i.created.c_str(),
                i.policy_digest.substr(0, 19).c_str(), procs.c_str());
    if (!i.failure.empty()) std::printf("    why: %s\n", i.failure.c_str());
  }
  return 0;
}

struct ExecArgs {
  ExecRequest req;
  bool json = false;
};

int DoExec(ExecArgs& a) {
  auto emit = [&](const nlohmann::json& j) {
    if (a.json) std::fprintf(stderr, "\n%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  };
  auto fail = [&](const Error& e) {
    int code = Report(e);
    emit(StatusJson(nullptr, &e.message, code));
    return code;
  };
  // The audit trail: the sandbox's supervisor records the exec's start
  // before it runs (or refuses it: 125) and its end, in the store chosen at
  // provision; this process opens no store. A sandbox without its trail
  // says so before the command runs.
  size_t said = 0;
  a.req.on_warning = [&said](const std::string& w) {
    std::fprintf(stderr, "ward: warning: %s\n", w.c_str());
    ++said;
  };
  auto r = Exec(a.req);
  if (!r) return fail(r.error());
  const int code = ExitStatusOf(*r);
  if (r->timed_out) std::fprintf(stderr, "ward: timed out; the command was killed\n");
  for (const auto& l : r->limits_hit) std::fprintf(stderr, "ward: %s limit reached\n", l.c_str());
  for (size_t i = said; i < r->warnings.size(); ++i) std::fprintf(stderr, "ward: %s\n", r->warnings[i].c_str());
  emit(StatusJson(&*r, nullptr, code));
  return code;
}

}  // namespace

Action AddProvision(CLI::App& app) {
  auto pa = std::make_shared<ProvisionArgs>();
  auto* prov = app.add_subcommand("provision", "record a held sandbox from a policy; prints its id; nothing runs yet: "
                                               "ward provision [--policy FILE | --profile NAME] [--name NAME]");
  AddPolicyOptions(*prov, pa->src, true);
  prov->add_option("--name", pa->name, "a name for it, unique among your sandboxes (default: its id)");
  prov->add_option("--agent", pa->agent, "the agent it is for: shown by `ward ls`, and every exec is recorded against it in the audit trail (default: the policy's audit.agent, else \"default\"; letters, digits, '_', '.', '-')");
  prov->add_option("--dns-server", pa->dns_servers, "egress mode: resolver for the allowed names (as for `ward run`)");
  prov->footer(std::string("The policy is checked as `ward run` checks it, and fixed: its working directory is the current one\n"
                           "if it names none. The private /tmp and home (tmpfs of limits.tmpfsMiB) are kept across exec, stop and\n"
                           "start: saved when the sandbox stops, put back when it starts.\n") +
               kStatusTable);
  return [pa] { return DoProvision(*pa); };
}

Action AddStart(CLI::App& app) {
  auto ref = std::make_shared<std::string>();
  auto* start = app.add_subcommand("start", "start a provisioned or stopped sandbox: ward start ID|NAME");
  start->add_option("sandbox", *ref, "the sandbox's id or name")->required();
  start->footer(std::string("Its supervisor (a process of yours, no daemon) builds the sandbox as `ward run` would and serves\n"
                            "exec requests on $XDG_RUNTIME_DIR/ward/ID/ctl (/run/ward for root). If it dies, the sandbox dies.\n") +
                kStatusTable);
  return [ref] { return DoStart(*ref); };
}

Action AddExec(CLI::App& app) {
  auto ea = std::make_shared<ExecArgs>();
  auto* exec = app.add_subcommand("exec", "run a command in a running sandbox: ward exec ID|NAME [--pty] -- CMD [ARGS...]");
  exec->add_option("sandbox", ea->req.ref, "the sandbox's id or name")->required();
  exec->add_flag("--pty", ea->req.pty, "give the command a terminal of the sandbox's own, relayed to this one");
  exec->add_flag("--json", ea->json,
                 "print a machine-readable result (one JSON object) as the last line of stderr: exitStatus, exitCode, "
                 "signal, timedOut, interrupted, limitsHit (a limit the sandbox reached while it ran), limitMechanisms, durationMs, "
                 "and egress (the sandbox's decisions while it ran, as for `ward run`); ward's own errors: exitStatus and error");
  // One value per --env (as run's grants): a vector option would otherwise
  // take the `--` and leave the command's own flags to ward's parser.
  exec->add_option("--env", ea->req.env, "NAME=VALUE added to the sandbox's environment for this command; repeatable (WARD_AGENT, WARD_AGENT_ID and WARD_SANDBOX_ID are the sandbox's and cannot be set)")
      ->type_name("NAME=VALUE")
      ->allow_extra_args(false);
  exec->add_option("--cwd", ea->req.cwd, "working directory inside the sandbox (default: the sandbox's)");
  exec->add_option("command", ea->req.argv, "the command and its arguments (after --)")->required();
  exec->footer(
      "The command is confined exactly as `ward run`'s: same mount view, landlock, seccomp, no capabilities,\n"
      "egress rules and limits (counted for the whole sandbox). stdio is relayed as by `ward run` (pipes, with\n"
      "back-pressure); SIGINT, SIGTERM and SIGHUP are forwarded (killed 3 s later, or at a second signal).\n"
      "Processes it leaves in the background live on until the sandbox stops. process.timeoutMs applies to each exec.\n"
      "Each exec is recorded in the audit trail (ward audit) against the sandbox's agent and id, which the command\n"
      "sees as WARD_AGENT, WARD_AGENT_ID and WARD_SANDBOX_ID; a store that cannot be written stops it (125).\n"
      "Exit status: the command's own; 128+N for signal N; 124 timeout; 126 not executable; 127 not found;\n"
      "119 no such sandbox; 120 not running; 121 its supervisor is gone; 125 exec could not be set up.");
  return [ea] { return DoExec(*ea); };
}

Action AddStop(CLI::App& app) {
  auto ref = std::make_shared<std::string>();
  auto grace = std::make_shared<int64_t>(3000);
  auto* stop = app.add_subcommand("stop", "stop a running sandbox, keeping its state: ward stop ID|NAME");
  stop->add_option("sandbox", *ref, "the sandbox's id or name")->required();
  stop->add_option("--grace-ms", *grace, "SIGTERM to every process, SIGKILL this long after (default 3000)")
      ->check(CLI::NonNegativeNumber);
  stop->footer(kStatusTable);
  return [ref, grace] { return DoStop(*ref, *grace); };
}

Action AddDeprovision(CLI::App& app) {
  auto ref = std::make_shared<std::string>();
  auto grace = std::make_shared<int64_t>(3000);
  auto* dep = app.add_subcommand("deprovision",
                                 "remove a sandbox and everything of it (stopping it first if it runs): ward deprovision ID|NAME");
  dep->add_option("sandbox", *ref, "the sandbox's id or name")->required();
  dep->add_option("--grace-ms", *grace, "if it runs: SIGTERM, then SIGKILL this long after (default 3000)")
      ->check(CLI::NonNegativeNumber);
  dep->footer(kStatusTable);
  return [ref, grace] { return DoDeprovision(*ref, *grace); };
}

Action AddLs(CLI::App& app) {
  auto json = std::make_shared<bool>(false);
  auto* ls = app.add_subcommand("ls", "list your sandboxes: id, name, agent, state, created, policy digest, processes");
  ls->add_flag("--json", *json, "one JSON array (also supervisorPid, supervisorRssKiB, started, failure)");
  ls->footer("A running sandbox whose supervisor is gone is listed as failed, with why.\n" + std::string(kStatusTable));
  return [json] { return DoLs(*json); };
}

}  // namespace ward::cli
