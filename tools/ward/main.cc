// ward: execution containers for AI agents. argv -> policy -> public API.
#include <fcntl.h>

#include <cstdio>

#include "commands.h"
#include "ward/sandbox.h"

int main(int argc, char** argv) {
  // A closed stdin, stdout or stderr would be taken by the next descriptor
  // ward opens (a landlock ruleset, a pipe) and then handed to the workload
  // as its stdio: fill the gap with /dev/null first.
  for (int fd = 0; fd < 3; ++fd) {
    if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd) return 125;
  }
  CLI::App app{
      "ward runs a command in a sandbox whose limits (files, network, processes, resources) are declared\n"
      "in a policy and enforced by the kernel: namespaces, landlock, seccomp, cgroups.\n\n"
      "Exit status of `ward run`: the command's own, 128+N if signal N killed it, or one of ward's:\n"
      "  122 bad command line   123 policy invalid or not enforceable   124 timeout\n"
      "  125 sandbox setup failed   126 command not executable   127 command not found\n\n"
      "Held sandboxes: ward provision, start, exec, stop, deprovision, ls (docs/lifecycle.md);\n"
      "`ward run` is provision + start + exec + deprovision in one step.\n"
      "Every run is recorded against its agent (--agent) in the audit store: ward audit (docs/audit.md);\n"
      "ward learn writes the least policy a command needs.",
      "ward"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "ward 0.1.0");
  app.footer("Docs: docs/policy.md (policy format), docs/security.md (what is enforced), docs/audit.md, docs/performance.md.");
  // Only the subcommand argv[1] names is built, when it names one: building
  // every subcommand's options costs each `ward exec` about 0.2 ms
  // (docs/performance.md). `ward --help`, `ward --version` and anything
  // else get them all, in the same order.
  std::vector<std::pair<CLI::App*, ward::cli::Action>> built;
  const std::string first = argc > 1 ? argv[1] : "";
  bool named = false;
  for (const auto& sub : ward::cli::kSubcommands) named = named || first == sub.name;
  for (const auto& sub : ward::cli::kSubcommands) {
    if (named && first != sub.name) continue;
    ward::cli::Action a = sub.add(app);
    built.emplace_back(app.get_subcommand(sub.name), std::move(a));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    ward::cli::ReportUsageError(argc, argv, e.what());
    return ward::kExitUsage;
  }
  for (auto& [cmd, a] : built) {
    if (cmd->parsed()) return a();
  }
  return ward::kExitUsage;  // not reached: a subcommand is required
}
