// Command-line grants (--read, --write, --deny, --allow-net, --env, --cwd,
// --memory, --timeout): one policy layer, written as the JSON document a
// user would have written and applied with ExtendPolicy, so that it is
// validated by the same parser and composed by the same rules as a policy
// that extends a profile. Only the errors are translated back to the flags.
#include <nlohmann/json.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>

#include "commands.h"
#include "enforce/glob.h"
#include "ward/sandbox.h"

namespace ward::cli {

namespace {

std::string Quote(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// A path on the command line is the caller's: a relative one is taken from
// the current directory. Leading ".." components climb the (physical)
// current directory, which is exact; ".." anywhere else is left for the
// policy parser to refuse, as it does in a file (it cannot be resolved
// without following symlinks).
bool CallerPath(const std::string& arg, std::string* out, std::string* why) {
  if (arg.empty()) {
    *why = "empty path";
    return false;
  }
  if (arg[0] == '/' || arg[0] == '$') {
    *out = arg;
    return true;
  }
  char here[PATH_MAX];
  if (!getcwd(here, sizeof here)) {
    *why = std::string("getcwd: ") + std::strerror(errno);
    return false;
  }
  std::string base = here;
  std::string rest = arg;
  for (;;) {
    if (rest == "." || rest == "./") {
      rest.clear();
    } else if (rest.rfind("./", 0) == 0) {
      rest.erase(0, 2);
      continue;
    } else if (rest == ".." || rest.rfind("../", 0) == 0) {
      rest.erase(0, rest.size() > 2 ? 3 : 2);
      size_t slash = base.rfind('/');
      base.erase(slash == 0 ? 1 : slash);
      continue;
    }
    break;
  }
  *out = rest.empty() ? base : (base == "/" ? "" : base) + "/" + rest;
  return true;
}

// A positive integer and a unit from `units` ("" is the bare number's):
// the number times the unit's scale, or false. (std::from_chars-like by
// hand: CLI11's own AsSizeValue knows bytes, not MiB, and no durations.)
struct Unit {
  const char* name;
  int64_t scale;
};
bool ParseQuantity(const std::string& s, std::initializer_list<Unit> units, int64_t max, int64_t* out) {
  if (s.empty() || !std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  size_t end = 0;
  long long v = 0;
  try {
    v = std::stoll(s, &end);
  } catch (...) {
    return false;
  }
  const std::string unit = s.substr(end);
  for (const Unit& u : units) {
    if (unit != u.name) continue;
    if (v <= 0 || v > max / u.scale) return false;
    *out = v * u.scale;
    return true;
  }
  return false;
}

// "512", "512M", "512MiB", "2G", "2GiB" -> MiB. A bare number is MiB, as in
// limits.memoryMiB.
bool ParseMemory(const std::string& s, int64_t* mib) {
  return ParseQuantity(s, {{"", 1}, {"M", 1}, {"MB", 1}, {"MiB", 1}, {"m", 1}, {"G", 1024}, {"GB", 1024}, {"GiB", 1024}, {"g", 1024}},
                       int64_t{1} << 40, mib);
}

// "30" (seconds), "30s", "500ms", "2m", "1h" -> milliseconds.
bool ParseDuration(const std::string& s, int64_t* ms) {
  return ParseQuantity(s, {{"ms", 1}, {"", 1000}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000}}, INT64_MAX / 2, ms);
}

}  // namespace

void AddGrantOptions(CLI::App& cmd, GrantArgs& g) {
  const char* group = "Grants on top of the policy (each a layer that wins where it speaks, as a policy wins over its profile)";
  cmd.add_option("--read", g.read, "make PATH visible read-only (filesystem.read); repeatable; must exist; a pattern (*, ?, **) must match")
      ->group(group)->type_name("PATH")->allow_extra_args(false);
  cmd.add_option("--write", g.write, "make PATH visible read-write (filesystem.write); repeatable; must exist; a pattern (*, ?, **) must match")
      ->group(group)->type_name("PATH")->allow_extra_args(false);
  cmd.add_option("--deny", g.deny, "hide PATH, even beneath a grant (filesystem.deny); repeatable; patterns: ${WORKSPACE}/**/.env")
      ->group(group)->type_name("PATH")->allow_extra_args(false);
  cmd.add_option("--allow-net", g.allow_net,
                 "allow an egress destination (network.egress.allow: example.com, *.example.com, 10.0.0.0/8, "
                 "host:443, ...); turns network \"none\" into egress with default deny; repeatable")
      ->group(group)->type_name("RULE")->allow_extra_args(false);
  cmd.add_option("--env", g.env, "NAME: inherit NAME from the caller; NAME=VALUE: set it (process.env); repeatable")
      ->group(group)->type_name("NAME[=VALUE]")->allow_extra_args(false);
  cmd.add_option("--cwd", g.cwd,
                 "working directory inside the sandbox (process.cwd; a relative one is taken from the current "
                 "directory)")
      ->group(group)->type_name("DIR");
  cmd.add_option("--memory", g.memory, "memory limit (limits.memoryMiB): 512, 512M, 2G (a bare number is MiB)")
      ->group(group)->type_name("SIZE");
  auto* t = cmd.add_option("--timeout", g.timeout,
                           "wall-clock limit (process.timeoutMs): 30, 30s, 500ms, 2m, 1h (a bare number is seconds)")
                ->group(group)->type_name("DURATION");
  auto* tm = cmd.add_option("--timeout-ms", g.timeout_ms, "wall-clock limit in milliseconds (process.timeoutMs)")
                 ->group(group)->check(CLI::PositiveNumber);
  t->excludes(tm);
}

bool GrantArgs::empty() const {
  return read.empty() && write.empty() && deny.empty() && allow_net.empty() && env.empty() && cwd.empty() &&
         memory.empty() && timeout.empty() && timeout_ms == 0;
}

int ApplyGrants(const GrantArgs& g, const PolicyVars& vars, Policy* policy, std::string* error) {
  if (g.empty()) return 0;
  // Every problem is reported, not just the first: those found here, then
  // the parser's for the layer made of the rest.
  std::vector<std::string> problems;
  auto usage = [&](const std::string& why) { problems.push_back(why); };
  nlohmann::json layer = {{"ward", 1}};
  // The pointer of each element of the layer -> the flag that made it, to
  // name the flag in an error.
  std::vector<std::pair<std::string, std::string>> flags;
  auto paths = [&](const char* flag, const char* field, const std::vector<std::string>& args, bool must_exist) {
    for (const auto& arg : args) {
      std::string path, why;
      if (!CallerPath(arg, &path, &why)) {
        usage(std::string(flag) + " " + Quote(arg) + ": " + why);
        continue;
      }
      // A pattern is expanded when the sandbox starts, which says if it
      // names nothing (glob.h).
      struct stat st;
      if (must_exist && path[0] == '/' && !HasGlob(path) && stat(path.c_str(), &st) != 0) {
        usage(std::string(flag) + " " + Quote(arg) + ": " + std::strerror(errno) +
              "; a grant must exist (create it first, or leave it out)");
        continue;
      }
      nlohmann::json& list = layer["filesystem"][field];
      flags.push_back({"/filesystem/" + std::string(field) + "/" + std::to_string(list.size()),
                       std::string(flag) + " " + Quote(arg)});
      list.push_back(path);
    }
  };
  paths("--read", "read", g.read, true);
  paths("--write", "write", g.write, true);
  paths("--deny", "deny", g.deny, false);
  if (!g.allow_net.empty() && policy->network == NetworkMode::kHost) {
    usage("--allow-net: the policy's network is \"host\" (unrestricted), which no allow rule narrows; "
          "use a policy with network \"none\" or egress rules");
  } else if (!g.allow_net.empty()) {
    // The policy's own rules stay; the flags add to its allow list.
    nlohmann::json egress = {{"default", policy->egress.default_allow ? "allow" : "deny"},
                   {"allow", policy->network == NetworkMode::kEgress ? policy->egress.allow : std::vector<std::string>{}},
                   {"deny", policy->network == NetworkMode::kEgress ? policy->egress.deny : std::vector<std::string>{}}};
    for (const auto& rule : g.allow_net) {
      flags.push_back({"/network/egress/allow/" + std::to_string(egress["allow"].size()), "--allow-net " + Quote(rule)});
      egress["allow"].push_back(rule);
    }
    layer["network"] = {{"egress", egress}};
  }
  for (const auto& e : g.env) {
    auto eq = e.find('=');
    if (eq == std::string::npos) {
      nlohmann::json& list = layer["process"]["env"]["inherit"];
      flags.push_back({"/process/env/inherit/" + std::to_string(list.size()), "--env " + Quote(e)});
      list.push_back(e);
    } else {
      std::string name = e.substr(0, eq);
      if (layer["process"]["env"]["set"].contains(name)) {
        usage("--env " + Quote(e) + ": " + name + " is set twice");
        continue;
      }
      std::string key;  // as a JSON pointer token
      for (char c : name) key += c == '~' ? "~0" : c == '/' ? "~1" : std::string(1, c);
      flags.push_back({"/process/env/set/" + key, "--env " + Quote(e)});
      layer["process"]["env"]["set"][name] = e.substr(eq + 1);
    }
  }
  if (!g.cwd.empty()) {
    std::string path, why;
    if (!CallerPath(g.cwd, &path, &why)) {
      usage("--cwd " + Quote(g.cwd) + ": " + why);
    } else {
      layer["process"]["cwd"] = path;
      flags.push_back({"/process/cwd", "--cwd " + Quote(g.cwd)});
    }
  }
  if (!g.memory.empty()) {
    int64_t mib = 0;
    if (!ParseMemory(g.memory, &mib)) {
      usage("--memory " + Quote(g.memory) + ": not a size (examples: 512, 512M, 2G; a bare number is MiB)");
    } else {
      layer["limits"]["memoryMiB"] = mib;
      flags.push_back({"/limits/memoryMiB", "--memory " + Quote(g.memory)});
    }
  }
  if (!g.timeout.empty() || g.timeout_ms > 0) {
    int64_t ms = g.timeout_ms;
    if (!g.timeout.empty() && !ParseDuration(g.timeout, &ms)) {
      usage("--timeout " + Quote(g.timeout) + ": not a duration (examples: 30, 30s, 500ms, 2m, 1h; a bare number is seconds)");
    } else {
      layer["process"]["timeoutMs"] = ms;
      flags.push_back({"/process/timeoutMs", g.timeout.empty() ? "--timeout-ms " + std::to_string(g.timeout_ms)
                                                               : "--timeout " + Quote(g.timeout)});
    }
  }
  PolicyLoad load = ExtendPolicy(*policy, layer.dump(), vars);
  if (!load.ok() || !problems.empty()) {
    for (const auto& issue : load.issues) {
      // The longest recorded pointer that the issue's lies under names its flag.
      std::string flag = "command line";
      size_t best = 0;
      for (const auto& [ptr, text] : flags) {
        bool under = issue.path == ptr || issue.path.rfind(ptr + "/", 0) == 0;
        if (under && ptr.size() > best) {
          best = ptr.size();
          flag = text;
        }
      }
      problems.push_back(flag + ": " + issue.reason);
    }
    error->clear();
    for (const auto& p : problems) *error += (error->empty() ? "" : "\n") + p;
    return kExitUsage;
  }
  *policy = std::move(*load.policy);
  return 0;
}

}  // namespace ward::cli
