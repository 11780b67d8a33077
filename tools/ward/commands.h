// One function per subcommand: each registers its options on the app and
// returns the action to run when it is selected.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ward/policy.h"
#include "ward/sandbox.h"

namespace ward::cli {

using Action = std::function<int()>;

Action AddRun(CLI::App& app);
Action AddPolicy(CLI::App& app);
Action AddDoctor(CLI::App& app);
// Held sandboxes (lifecycle_cmd.cc).
Action AddProvision(CLI::App& app);
Action AddStart(CLI::App& app);
Action AddExec(CLI::App& app);
Action AddStop(CLI::App& app);
Action AddDeprovision(CLI::App& app);
Action AddLs(CLI::App& app);
// The audit trail (audit_cmd.cc) and learning mode (learn_cmd.cc).
Action AddAudit(CLI::App& app);
Action AddLearn(CLI::App& app);

// Every subcommand, in the order `ward --help` lists them.
struct Subcommand {
  const char* name;
  Action (*add)(CLI::App&);
};
inline constexpr Subcommand kSubcommands[] = {
    {"run", AddRun},     {"policy", AddPolicy}, {"doctor", AddDoctor},           {"provision", AddProvision},
    {"start", AddStart}, {"exec", AddExec},     {"stop", AddStop},               {"deprovision", AddDeprovision},
    {"ls", AddLs},       {"audit", AddAudit},       {"learn", AddLearn},
};

// --read, --write, --deny, --allow-net, --env, --cwd, --memory, --timeout:
// a policy layer given on the command line (grants.cc).
struct GrantArgs {
  std::vector<std::string> read, write, deny, allow_net, env;
  std::string cwd, memory, timeout;
  int64_t timeout_ms = 0;
  bool empty() const;
};
void AddGrantOptions(CLI::App& cmd, GrantArgs& g);
// Applies the grants on top of `*policy` (ExtendPolicy). 0, or kExitUsage
// with every problem in `*error`, each naming its flag.
int ApplyGrants(const GrantArgs& g, const PolicyVars& vars, Policy* policy, std::string* error);

// --policy FILE (or "-": standard input) or --profile NAME (exactly one, or
// the default profile when neither is given), then the grants.
struct PolicySource {
  std::string file;
  std::string profile;
  std::string workspace;
  GrantArgs grants;
};
void AddPolicyOptions(CLI::App& cmd, PolicySource& src, bool allow_default);
// The policy variables, with --workspace made absolute (false: why, in
// `*error`).
bool MakeVars(const std::string& workspace_arg, PolicyVars* vars, std::string* error);
// Reads a policy file, or standard input for "-".
PolicyLoad LoadPolicyText(const std::string& file, const PolicyVars& vars);
// The policy to enforce: 0, or the exit status (kExitUsage for a bad flag,
// kExitPolicy for an invalid policy) after printing every problem on stderr
// (also in `*error`, without the trailing newline).
int LoadPolicy(const PolicySource& src, const char* default_profile, Policy* out, std::string* error = nullptr);

// The part of `ward run --json`'s result that `ward exec --json` shares:
// exitStatus, and either error (ward's own) or exitCode, signal,
// signalNumber, timedOut, interrupted, limitsHit, durationMs, warnings,
// limitMechanisms, egress, egressDropped.
nlohmann::json StatusJson(const RunResult* r, const std::string* error, int exit_status);

// `ward run`'s result for a command line CLI11 could not parse (exit 122):
// printed as JSON where --json, --result-fd or --result-file ask for it
// (read from argv by hand, as the parse failed).
void ReportUsageError(int argc, char** argv, const std::string& message);

}  // namespace ward::cli
