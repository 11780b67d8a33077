// One function per subcommand: each registers its options on the app and
// returns the action to run when it is selected.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

#include "ward/policy.h"

namespace ward::cli {

using Action = std::function<int()>;

Action AddRun(CLI::App& app);
Action AddPolicy(CLI::App& app);
Action AddDoctor(CLI::App& app);

// Loads --policy FILE or --profile NAME (exactly one, or the default
// profile when neither is given). Prints every issue and returns false.
struct PolicySource {
  std::string file;
  std::string profile;
  std::string workspace;
};
void AddPolicyOptions(CLI::App& cmd, PolicySource& src, bool allow_default);
// The policy variables, with --workspace made absolute (false: printed why,
// and put in `*error` if given).
bool MakeVars(const std::string& workspace_arg, PolicyVars* vars, std::string* error = nullptr);
bool LoadPolicy(const PolicySource& src, const char* default_profile, Policy* out, std::string* error = nullptr);

// `ward run`'s result for a command line CLI11 could not parse (exit 122):
// printed as JSON where --json, --result-fd or --result-file ask for it
// (read from argv by hand, as the parse failed).
void ReportUsageError(int argc, char** argv, const std::string& message);

}  // namespace ward::cli
