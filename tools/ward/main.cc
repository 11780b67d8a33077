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
      "`ward run` is provision + start + exec + deprovision in one step.",
      "ward"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "ward 0.1.0");
  app.footer("Docs: docs/policy.md (policy format), docs/security.md (what is enforced), docs/performance.md.");
  auto run = ward::cli::AddRun(app);
  auto policy = ward::cli::AddPolicy(app);
  auto doctor = ward::cli::AddDoctor(app);
  auto lifecycle = ward::cli::AddLifecycle(app);
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
  if (app.got_subcommand("run")) return run();
  if (app.got_subcommand("policy")) return policy();
  for (auto& [name, action] : lifecycle) {
    if (app.got_subcommand(name)) return action();
  }
  return doctor();
}
