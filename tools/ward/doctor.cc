// ward doctor: what this host supports, what is degraded, and why.
#include <nlohmann/json.hpp>

#include <cstdio>

#include "commands.h"
#include "enforce/seccomp.h"
#include "ward/sandbox.h"

namespace ward::cli {

Action AddDoctor(CLI::App& app) {
  auto json = std::make_shared<bool>(false);
  auto seccomp = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("doctor", "report what this host supports for sandboxing, what is degraded and why; "
                                           "exits 1 if a sandbox cannot start here");
  cmd->add_flag("--json", *json, "print the checks as JSON");
  cmd->add_flag("--seccomp", *seccomp, "list the system calls the sandbox's seccomp filter denies, with the reason for each");
  return [json, seccomp] {
    if (*seccomp) {
      for (const auto& r : SeccompDenyList()) std::printf("%-18s %s\n", r.syscall, r.reason);
      return 0;
    }
    auto checks = Doctor();
    bool fatal = false;
    nlohmann::json out = nlohmann::json::array();
    for (const auto& c : checks) {
      fatal = fatal || (c.status == "missing" && c.name != "landlock" && c.name.rfind("limits.", 0) != 0);
      if (*json) out.push_back({{"check", c.name}, {"status", c.status}, {"detail", c.detail}});
      else std::printf("%-9s %-28s %s\n", ("[" + c.status + "]").c_str(), c.name.c_str(), c.detail.c_str());
    }
    if (*json) std::printf("%s\n", out.dump(2).c_str());
    return fatal ? 1 : 0;
  };
}

}  // namespace ward::cli
