// ward policy check|show|profiles
#include <nlohmann/json.hpp>

#include <cstdio>

#include "commands.h"
#include "ward/sandbox.h"

namespace ward::cli {

namespace {

struct PolicyArgs {
  std::vector<std::string> files;
  bool json = false;
  bool strict = false;
  PolicySource src;
};

int Check(const PolicyArgs& a) {
  bool all_ok = true;
  nlohmann::json report = nlohmann::json::array();
  PolicyVars vars;
  std::string why;
  if (!MakeVars(a.src.workspace, &vars, &why)) {
    std::fprintf(stderr, "ward: %s\n", why.c_str());
    return kExitUsage;
  }
  for (const auto& f : a.files) {
    PolicyLoad load = LoadPolicyText(f, vars);
    // What ward run would warn about on this host (a deny that names
    // nothing under a grant); --strict makes them errors, as for ward run.
    std::vector<std::string> warnings = load.ok() ? PolicyWarnings(*load.policy) : std::vector<std::string>{};
    const bool ok = load.ok() && (!a.strict || warnings.empty());
    all_ok = all_ok && ok;
    if (a.json) {
      nlohmann::json errs = nlohmann::json::array();
      for (const auto& i : load.issues) errs.push_back({{"path", i.path}, {"reason", i.reason}});
      report.push_back({{"file", f}, {"ok", ok}, {"errors", errs}, {"warnings", warnings}});
    } else {
      if (!load.ok()) std::fputs(load.FormatIssues(f).c_str(), stdout);
      for (const auto& w : warnings) std::printf("%s: %s: %s\n", f.c_str(), a.strict ? "error" : "warning", w.c_str());
      if (ok) std::printf("%s: ok\n", f.c_str());
    }
  }
  // File names need not be UTF-8; replace what is not rather than throw.
  if (a.json) std::printf("%s\n", report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  return all_ok ? 0 : kExitPolicy;
}

}  // namespace

Action AddPolicy(CLI::App& app) {
  auto a = std::make_shared<PolicyArgs>();
  auto* cmd = app.add_subcommand("policy", "validate, show and list policies");
  cmd->require_subcommand(1);
  auto* check = cmd->add_subcommand(
      "check",
      "validate policy files: exits 0, or 123 after printing every error with its JSON path; warns about deny "
      "rules that name nothing on this host under a grant");
  check->add_option("files", a->files, "policy files (\"-\": standard input)")->required();
  check->add_flag("--json", a->json, "print the result as JSON (each file: ok, errors, warnings)");
  check->add_flag("--strict", a->strict,
                  "make every warning an error: a deny rule that names nothing on this host under a grant (a typo?)");
  check->add_option("--workspace", a->src.workspace, "directory that ${WORKSPACE} names (default: the current directory)");
  auto* show = cmd->add_subcommand("show", "print a policy as ward will enforce it: profile applied, variables expanded, command-line grants applied");
  AddPolicyOptions(*show, a->src, true);
  auto* profiles = cmd->add_subcommand("profiles", "list the built-in profiles");
  return [a, check, show, profiles]() -> int {
    if (check->parsed()) return Check(*a);
    if (show->parsed()) {
      Policy p;
      if (int code = LoadPolicy(a->src, "offline-readonly", &p); code != 0) return code;
      std::printf("%s\n", PolicyToJson(p).c_str());
      return 0;
    }
    (void)profiles;
    for (const auto& info : BuiltinProfiles()) std::printf("%-18s %s\n", info.name.c_str(), info.description.c_str());
    return 0;
  };
}

}  // namespace ward::cli
