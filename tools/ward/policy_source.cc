#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "commands.h"
#include "ward/policy.h"

namespace ward::cli {

void AddPolicyOptions(CLI::App& cmd, PolicySource& src, bool allow_default) {
  auto* f = cmd.add_option("-p,--policy", src.file, "policy file (JSON, see docs/policy.md)");
  auto* p = cmd.add_option("--profile", src.profile,
                           std::string("built-in profile: offline-readonly, workspace-write, minimal") +
                               (allow_default ? " (default: offline-readonly)" : ""));
  f->excludes(p);
  cmd.add_option("--workspace", src.workspace, "directory that ${WORKSPACE} names (default: the current directory)");
}

bool MakeVars(const std::string& workspace_arg, PolicyVars* vars, std::string* error) {
  std::string workspace;
  if (!workspace_arg.empty()) {
    // Relative to the current directory, like any path on a command line.
    char buf[PATH_MAX];
    if (!realpath(workspace_arg.c_str(), buf)) {
      std::string why = "--workspace \"" + workspace_arg + "\": " + std::strerror(errno);
      std::fprintf(stderr, "ward: %s\n", why.c_str());
      if (error) *error = why;
      return false;
    }
    workspace = buf;
  }
  *vars = PolicyVars::FromEnvironment(workspace);
  return true;
}

bool LoadPolicy(const PolicySource& src, const char* default_profile, Policy* out, std::string* error) {
  PolicyVars vars;
  if (!MakeVars(src.workspace, &vars, error)) return false;
  PolicyLoad load;
  std::string name;
  if (!src.file.empty()) {
    load = LoadPolicyFile(src.file, vars);
    name = src.file;
  } else {
    name = src.profile.empty() ? default_profile : src.profile;
    load = LoadProfile(name, vars);
    name = "profile " + name;
  }
  if (!load.ok()) {
    std::string issues = load.FormatIssues(name);
    std::fputs(issues.c_str(), stderr);
    if (error) {
      *error = issues;
      while (!error->empty() && error->back() == '\n') error->pop_back();
    }
    return false;
  }
  *out = std::move(*load.policy);
  return true;
}

}  // namespace ward::cli
