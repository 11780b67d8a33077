// ward's policy model and the functions that load, compose and validate it.
//
// Nothing here makes a system call except LoadPolicyFile (which reads the
// file); parsing and validation are pure so they can be unit-tested and
// fuzzed. Paths in a loaded Policy are absolute and variable-expanded, but
// not yet resolved against the filesystem: that happens when a plan is
// compiled (see sandbox.h).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ward/result.h"

namespace ward {

// One problem in a policy document: the JSON path (`/filesystem/read/2`)
// and why it is wrong.
struct PolicyIssue {
  std::string path;
  std::string reason;
};

enum class NetworkMode {
  kNone,    // a private network namespace holding only loopback (default)
  kHost,    // DANGEROUS: the host's network, unrestricted
  kEgress,  // a private network namespace whose outbound connections and DNS
            // questions are decided by `egress` (docs/network.md)
};

// "network": {"egress": {...}}: rule strings as written (each one checked by
// the parser; the enforcement layer parses them into matchers).
struct EgressPolicyText {
  bool default_allow = false;      // "default": "allow" | "deny" (default)
  std::vector<std::string> allow;
  std::vector<std::string> deny;
};

enum class Requirement { kRequired, kBestEffort };

struct FilesystemPolicy {
  std::vector<std::string> read;   // visible read-only
  std::vector<std::string> write;  // visible read-write
  std::vector<std::string> deny;   // hidden, even beneath read/write grants
  // "unix": pathname unix sockets and FIFOs the workload may use; each must
  // exist and be one when the sandbox starts. A socket may be connected to
  // (no other pathname socket served from outside the sandbox may); a FIFO
  // may be opened for writing even where its directory is read-only. A host
  // FIFO that the workload could write without being listed here is refused
  // at start (docs/policy.md). Not named `unix`: GNU C and C++ predefine
  // that as a macro, and this header is public.
  std::vector<std::string> unix_endpoints;
  bool private_tmp = true;         // a fresh, empty tmpfs at /tmp
  // "home": "private": a fresh tmpfs at the caller's home directory (this
  // path, ${HOME} when the policy was loaded), writable, seeded with a
  // .gitconfig naming the caller's git identity, and HOME pointing at it;
  // gone when the sandbox ends. Empty: "none", no home of the sandbox's own.
  std::string private_home;
  bool system = true;              // the baseline of system paths (/usr, /lib*, ...)
};

struct EnvPolicy {
  std::vector<std::string> inherit;         // names copied from the caller
  std::map<std::string, std::string> set;   // explicit values
};

struct ProcessPolicy {
  std::vector<std::string> argv;        // empty: taken from the command line
  std::optional<std::string> cwd;       // default: ${CWD} if visible, else /
  EnvPolicy env;
  std::optional<int64_t> timeout_ms;    // wall-clock limit for the whole sandbox
  bool shell = false;                   // run argv through /bin/sh -c
};

struct LimitsPolicy {
  std::optional<int64_t> memory_mib;     // cgroup memory (or RLIMIT_AS)
  std::optional<int64_t> pids;           // cgroup pids (or RLIMIT_NPROC)
  std::optional<double> cpus;            // CPU bandwidth in cores (cgroup only)
  std::optional<int64_t> cpu_seconds;    // RLIMIT_CPU
  std::optional<int64_t> open_files;     // RLIMIT_NOFILE
  std::optional<int64_t> file_size_mib;  // RLIMIT_FSIZE
  std::optional<int64_t> tmpfs_mib;      // size of each writable tmpfs (/tmp, /dev/shm)
};

struct EnforcementPolicy {
  Requirement landlock = Requirement::kRequired;
};

// "audit": who the runs are for, and whether a run may go on without its
// trail (docs/audit.md).
struct AuditPolicy {
  // The agent the runs of this policy are recorded for ("": `--agent`, or
  // "default"); `--agent` given on the command line wins.
  std::string agent;
  // kRequired (default): a store that cannot be written stops the run
  // (125). kBestEffort: said, and the run goes on without its trail.
  Requirement trail = Requirement::kRequired;
  // kDenied: every file system call that names a path waits for ward's
  // supervisor (about 10 µs), which records those the policy does not grant
  // as "file" events (enforce/file_view.h). kOff (default): not watched.
  enum class Files : uint8_t { kOff, kDenied };
  Files files = Files::kOff;
};

struct Policy {
  int version = 1;
  std::optional<std::string> extends;  // a built-in profile name
  FilesystemPolicy filesystem;
  ProcessPolicy process;
  LimitsPolicy limits;
  NetworkMode network = NetworkMode::kNone;
  EgressPolicyText egress;  // when network is kEgress
  EnforcementPolicy enforcement;
  AuditPolicy audit;
};

// Values for ${HOME}, ${CWD}, ${WORKSPACE}, ${USER}, ${TMPDIR}.
struct PolicyVars {
  std::map<std::string, std::string> values;
  static PolicyVars FromEnvironment(const std::string& workspace = "");
};

// The outcome of loading: a policy, or every issue found (never just the
// first one).
struct PolicyLoad {
  std::optional<Policy> policy;
  std::vector<PolicyIssue> issues;
  bool ok() const { return policy.has_value() && issues.empty(); }
  std::string FormatIssues(const std::string& source) const;
};

// Parses and validates a JSON policy document, resolves `extends`
// against the built-in profiles and expands variables.
PolicyLoad ParsePolicy(const std::string& json_text, const PolicyVars& vars);

// Applies `layer_json`, a policy document without `extends`, on top of
// `base` exactly as a document that extends a profile is applied on top of
// it: the layer wins wherever it speaks (a path it lists replaces `base`'s
// rule for that path; limits, cwd, timeout and network it names replace
// `base`'s), and the result is validated as a whole. Issues point into the
// layer. (`ward run --read/--write/--deny/--env/...` are such a layer.)
PolicyLoad ExtendPolicy(const Policy& base, const std::string& layer_json, const PolicyVars& vars);

// Reads `file` and calls ParsePolicy.
PolicyLoad LoadPolicyFile(const std::string& file, const PolicyVars& vars);

// A built-in profile, composed and expanded; nullopt if `name` is unknown.
PolicyLoad LoadProfile(const std::string& name, const PolicyVars& vars);

// Names and one-line descriptions of the built-in profiles.
struct ProfileInfo {
  std::string name;
  std::string description;
};
const std::vector<ProfileInfo>& BuiltinProfiles();

// The policy as canonical JSON (what `ward policy show` prints).
std::string PolicyToJson(const Policy& policy);

}  // namespace ward
