// ward learn: run a command permissively (within an envelope), watch what it
// touches, and write the least policy under which it does the same again
// (src/audit/learn.h, docs/learn.md).
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>

#include "audit/learn.h"
#include "commands.h"
#include "enforce/compile.h"
#include "enforce/glob.h"
#include "run_audit.h"
#include "ward/sandbox.h"

namespace ward::cli {
namespace {

struct LearnArgs {
  std::string within, output, workspace, agent;
  std::vector<std::string> dns_servers;
  std::vector<std::string> command;
};

// What the watchers saw, from ward's threads.
struct Seen {
  std::mutex mu;
  std::vector<FileAccess> files;
  std::set<std::pair<int, std::string>> file_keys;  // (op, path): each once
  std::vector<ProcessExec> execs;
  std::vector<EgressRecord> egress;
  size_t dropped = 0;
  size_t bytes = 0;  // of paths kept
};
constexpr size_t kMaxFiles = 100000;
constexpr size_t kMaxFileBytes = size_t{32} << 20;

// The envelope when none is given: every top-level directory of the host
// readable (but /proc, /dev, /sys, /run and /tmp, which the sandbox has of its
// own or which hold other processes' sockets), the workspace writable, a
// private /tmp and home, any network destination (each one recorded).
std::string DefaultEnvelope(const std::string& home) {
  std::string read;
  if (DIR* d = opendir("/")) {
    std::set<std::string> names;
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n == "." || n == ".." || n == "proc" || n == "dev" || n == "sys" || n == "run" || n == "tmp" ||
          n == "lost+found") {
        continue;
      }
      struct stat st;
      // Not the home itself (root's /root): the sandbox's is private.
      if (stat(("/" + n).c_str(), &st) == 0 && S_ISDIR(st.st_mode) && "/" + n != home) names.insert(n);
    }
    closedir(d);
    for (const auto& n : names) read += std::string(read.empty() ? "" : ", ") + "\"/" + n + "\"";
  }
  return R"({ "ward": 1, "extends": "minimal",
              "filesystem": { "read": [)" + read + R"(], "write": ["${WORKSPACE}"] },
              "network": { "egress": { "default": "allow" } } })";
}

// `p` with every symlink resolved; `p` itself if it cannot be.
std::string RealOr(const std::string& p) {
  char real[PATH_MAX];
  return realpath(p.c_str(), real) ? std::string(real) : p;
}

bool WriteAtomically(const std::string& path, const std::string& text, std::string* error) {
  const std::string tmp = path + ".ward-" + std::to_string(getpid()) + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    *error = "-o \"" + path + "\": " + std::strerror(errno);
    return false;
  }
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
  int err = errno;
  close(fd);
  if (ok && rename(tmp.c_str(), path.c_str()) == 0) return true;
  unlink(tmp.c_str());
  *error = "-o \"" + path + "\": " + std::strerror(ok ? errno : err);
  return false;
}

int DoLearn(LearnArgs& a) {
  if (a.command.empty()) {
    std::fprintf(stderr, "ward learn: no command (ward learn [OPTIONS] -- CMD [ARGS...])\n");
    return kExitUsage;
  }
  PolicyVars vars;
  std::string error;
  if (!MakeVars(a.workspace, &vars, &error)) {
    std::fprintf(stderr, "ward learn: %s\n", error.c_str());
    return kExitUsage;
  }
  char real_home[PATH_MAX];
  const char* home = getenv("HOME");
  const std::string home_path = home && realpath(home, real_home) ? real_home : "";
  PolicyLoad load = a.within.empty() ? ParsePolicy(DefaultEnvelope(home_path), vars) : LoadPolicyText(a.within, vars);
  if (!load.ok()) {
    std::fprintf(stderr, "%s", load.FormatIssues(a.within.empty() ? "(the default envelope)" : a.within).c_str());
    return kExitPolicy;
  }
  // Checked before anything runs: a learned policy that cannot be written
  // is a run for nothing.
  if (!a.output.empty()) {
    const std::string dir = a.output.find('/') == std::string::npos ? "." : a.output.substr(0, a.output.rfind('/') + 1);
    if (access(dir.c_str(), W_OK) != 0) {
      std::fprintf(stderr, "ward learn: -o \"%s\": %s\n", a.output.c_str(), std::strerror(errno));
      return kExitUsage;
    }
  }
  RunRequest req;
  req.policy = std::move(*load.policy);
  // Learnt where it stands: the working directory is named, so that one
  // that only leads to the envelope's grants is still the command's.
  if (!req.policy.process.cwd) req.policy.process.cwd = vars.values["CWD"];
  req.argv = a.command;
  req.dns_servers = a.dns_servers;
  req.on_warning = [](const std::string& w) { std::fprintf(stderr, "ward: warning: %s\n", w.c_str()); };
  auto begun = RunAudit::BeginFor(a.agent, &req);
  if (!begun) {
    std::fprintf(stderr, "ward learn: audit: %s\n", begun.error().message.c_str());
    return begun.error().code == Error::Code::kUsage ? kExitUsage : kExitSetup;
  }
  std::optional<RunAudit>& trail = *begun;
  // The trail's watchers, and this command's beside them.
  Seen seen;
  req.on_exec = [&seen, audit = req.on_exec, argv = req.argv](ProcessExec x) {
    FillFromRequest(&x, argv);
    {
      std::lock_guard lock(seen.mu);
      seen.execs.push_back(x);
    }
    if (audit) audit(std::move(x));
  };
  req.on_egress = [&seen, audit = req.on_egress](const EgressRecord& g) {
    {
      std::lock_guard lock(seen.mu);
      seen.egress.push_back(g);
    }
    if (audit) audit(g);
  };
  // Bounded: the sandbox chooses how many calls it makes and how long
  // their paths are, and this is ward's memory, outside its limits.
  req.on_file = [&seen](FileAccess f) {
    std::lock_guard lock(seen.mu);
    if (seen.files.size() >= kMaxFiles || seen.bytes + f.path.size() > kMaxFileBytes) {
      ++seen.dropped;
      return;
    }
    if (!seen.file_keys.insert({static_cast<int>(f.op), f.path}).second) return;
    seen.bytes += 2 * f.path.size();  // the key and the record
    seen.files.push_back(std::move(f));
  };
  auto r = Run(req);
  if (!r) {
    const int code = ExitStatusFor(r.error());
    (void)RunAudit::EndFor(trail, req, nullptr, &r.error().message, code);
    std::fprintf(stderr, "ward learn: %s\n", r.error().message.c_str());
    return code;
  }
  const int code = ExitStatusOf(*r);
  if (auto ended = RunAudit::EndFor(trail, req, &*r, nullptr, code); !ended) {
    std::fprintf(stderr, "ward learn: audit: %s (the command ran)\n", ended.error().message.c_str());
    return kExitSetup;
  }

  audit::LearnInput in;
  {
    std::lock_guard lock(seen.mu);
    in.files = std::move(seen.files);
    in.execs = std::move(seen.execs);
    in.egress = std::move(seen.egress);
  }
  in.argv = a.command;
  in.workspace = RealOr(vars.values["WORKSPACE"]);
  in.covered = SystemBaselinePaths();
  // The sandbox's own: /proc, /dev, /sys, the private /tmp, and the files
  // ward writes into every root (/etc/hosts, /etc/resolv.conf, passwd, group).
  for (const char* own : {"/proc", "/dev", "/sys", "/tmp", "/etc/hosts", "/etc/resolv.conf", "/etc/passwd", "/etc/group"}) {
    in.covered.push_back(own);
  }
  if (!req.policy.filesystem.private_home.empty()) in.covered.push_back(req.policy.filesystem.private_home);
  in.cwd = RealOr(vars.values["CWD"]);
  // What each path names on the host now, symlinks resolved.
  in.facts = [](const std::string& p) {
    struct stat st;
    audit::PathFacts f;
    char real[PATH_MAX];
    if (realpath(p.c_str(), real) && stat(real, &st) == 0) {
      f.exists = true;
      f.is_dir = S_ISDIR(st.st_mode);
      f.real = real;
    }
    return f;
  };
  // The envelope's grants as what they name now (patterns expanded).
  size_t budget = kGlobBudget;
  auto expand = [&](const std::vector<std::string>& rules, std::vector<std::string>* out) {
    for (const auto& rule : rules) {
      auto m = ExpandRule(rule, GlobUse::kGrant, &budget);
      if (!m) continue;  // the run compiled it: it expanded then
      for (const auto& p : *m) {
        out->push_back(RealOr(p));
      }
    }
  };
  expand(req.policy.filesystem.read, &in.may_read);
  expand(req.policy.filesystem.write, &in.may_write);
  audit::LearnedPolicy learned = audit::DerivePolicy(in);
  if (a.output.empty()) {
    std::fputs(learned.text.c_str(), stdout);
  } else if (!WriteAtomically(a.output, learned.text, &error)) {
    std::fprintf(stderr, "ward learn: %s\n", error.c_str());
    return kExitSetup;
  }
  std::fprintf(stderr, "ward learn: %zu read, %zu write, %zu network grants%s%s%s\n", learned.read.size(),
               learned.write.size(), learned.egress.size(), a.output.empty() ? "" : " written to ", a.output.c_str(),
               code == 0 ? "" : " (the command failed: the policy holds what it did until then)");
  if (seen.dropped) {
    std::fprintf(stderr, "ward learn: %zu file accesses past the first %zu (or %zu MiB of paths) were not considered\n",
                 seen.dropped, kMaxFiles, kMaxFileBytes >> 20);
  }
  if (!learned.skipped.empty()) {
    std::fprintf(stderr, "ward learn: %zu paths used but not granted (listed in the policy's header)\n", learned.skipped.size());
  }
  return code;
}

}  // namespace

Action AddLearn(CLI::App& app) {
  auto a = std::make_shared<LearnArgs>();
  auto* cmd = app.add_subcommand(
      "learn", "run a command permissively and write the least policy it needs: ward learn [--within POLICY] [-o FILE] -- CMD");
  cmd->add_option("--within", a->within,
                  "the envelope: a policy file whose grants are the most the command may use while it is watched "
                  "(default: every top-level directory readable but /proc, /dev, /sys, /run, /tmp and your home; the "
                  "workspace writable; a private /tmp and home; any network destination but the host's own addresses)");
  cmd->add_option("-o,--output", a->output, "write the learned policy here (default: standard output)");
  cmd->add_option("--workspace", a->workspace, "directory that ${WORKSPACE} names (default: the current directory)");
  cmd->add_option("--agent", a->agent,
                  "the agent this run is recorded for in the audit trail (default: the envelope's audit.agent, else \"default\")");
  cmd->add_option("--dns-server", a->dns_servers, "resolver for the names the command looks up, ADDR or ADDR:PORT; repeatable");
  cmd->add_option("command", a->command, "the command and its arguments (after --)")->required(false);
  cmd->footer(
      "The command runs with ward's isolation (namespaces, seccomp, landlock) and the envelope's grants; every\n"
      "file it opens, looks up, creates or removes, every program it executes and every destination it reaches\n"
      "is watched. The learned policy (JSON with a comment beside each grant) extends \"minimal\" and grants what\n"
      "was used, exists now and lies inside the envelope, each path judged by what it resolves to: reads and\n"
      "writes outside the system baseline and the private /tmp and home, the workspace written ${WORKSPACE}, 4 or\n"
      "more entries of one workspace directory collapsed into the directory; network destinations by name and\n"
      "port where a name was used. A directory only listed or looked up outside the workspace, or a name a policy\n"
      "cannot hold (* ? ${), is not granted: the policy's header lists them. Run it with\n"
      "`ward run --policy FILE -- CMD` (docs/audit.md, \"Learning mode\").\n"
      "The run is recorded in the audit trail like `ward run`. File calls wait for ward (about 20 us each).\n"
      "Exit status: the command's own (the policy is written either way); 122 bad command line, 123 envelope\n"
      "invalid, 125 setup failed.");
  return [a] { return DoLearn(*a); };
}

}  // namespace ward::cli
