#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "commands.h"
#include "ward/policy.h"
#include "ward/sandbox.h"

namespace ward::cli {

void AddPolicyOptions(CLI::App& cmd, PolicySource& src, bool allow_default) {
  auto* f = cmd.add_option("-p,--policy", src.file,
                           "policy file (JSON, see docs/policy.md); \"-\" reads it from standard input");
  auto* p = cmd.add_option("--profile", src.profile,
                           std::string("built-in profile: offline-readonly, workspace-write, minimal") +
                               (allow_default ? " (default: offline-readonly)" : ""));
  f->excludes(p);
  cmd.add_option("--workspace", src.workspace, "directory that ${WORKSPACE} names (default: the current directory)");
  AddGrantOptions(cmd, src.grants);
}

bool MakeVars(const std::string& workspace_arg, PolicyVars* vars, std::string* error) {
  std::string workspace;
  if (!workspace_arg.empty()) {
    // Relative to the current directory, like any path on a command line.
    char buf[PATH_MAX];
    if (!realpath(workspace_arg.c_str(), buf)) {
      *error = "--workspace \"" + workspace_arg + "\": " + std::strerror(errno);
      return false;
    }
    workspace = buf;
  }
  *vars = PolicyVars::FromEnvironment(workspace);
  return true;
}

PolicyLoad LoadPolicyText(const std::string& file, const PolicyVars& vars) {
  if (file != "-") return LoadPolicyFile(file, vars);
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      PolicyLoad load;
      load.issues.push_back({"/", std::string("cannot read standard input: ") + std::strerror(errno)});
      return load;
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > (size_t{16} << 20)) {
      PolicyLoad load;
      load.issues.push_back({"/", "standard input holds more than 16 MiB: not a policy"});
      return load;
    }
  }
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    PolicyLoad load;
    load.issues.push_back({"/", "standard input is empty: --policy - reads the policy document from it"});
    return load;
  }
  return ParsePolicy(text, vars);
}

int LoadPolicy(const PolicySource& src, const char* default_profile, Policy* out, std::string* error) {
  std::string why;
  auto fail = [&](int code) {
    while (!why.empty() && why.back() == '\n') why.pop_back();
    // A usage error is ward's (each line says so); a policy's issues are
    // already prefixed with their source.
    std::string text = why;
    if (code == kExitUsage) {
      text = "ward: " + text;
      for (size_t at = text.find('\n'); at != std::string::npos; at = text.find('\n', at + 1)) text.insert(at + 1, "ward: ");
    }
    std::fprintf(stderr, "%s\n", text.c_str());
    if (error) *error = why;
    return code;
  };
  PolicyVars vars;
  if (!MakeVars(src.workspace, &vars, &why)) return fail(kExitUsage);
  PolicyLoad load;
  std::string name;
  if (!src.file.empty()) {
    load = LoadPolicyText(src.file, vars);
    name = src.file == "-" ? "standard input" : src.file;
  } else {
    name = src.profile.empty() ? default_profile : src.profile;
    load = LoadProfile(name, vars);
    name = "profile " + name;
  }
  if (!load.ok()) {
    why = load.FormatIssues(name);
    return fail(kExitPolicy);
  }
  if (int code = ApplyGrants(src.grants, vars, &*load.policy, &why); code != 0) return fail(code);
  *out = std::move(*load.policy);
  return 0;
}

}  // namespace ward::cli
