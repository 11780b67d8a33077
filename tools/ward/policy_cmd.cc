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
    all_ok = all_ok && load.ok();
    if (a.json) {
      nlohmann::json errs = nlohmann::json::array();
      for (const auto& i : load.issues) errs.push_back({{"path", i.path}, {"reason", i.reason}});
      report.push_back({{"file", f}, {"ok", load.ok()}, {"errors", errs}});
    } else if (load.ok()) {
      std::printf("%s: ok\n", f.c_str());
    } else {
      std::fputs(load.FormatIssues(f).c_str(), stdout);
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
      "check", "validate policy files: exits 0, or 123 after printing every error with its JSON path");
  check->add_option("files", a->files, "policy files (\"-\": standard input)")->required();
  check->add_flag("--json", a->json, "print the result as JSON");
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
