// Where held sandboxes live on disk: the runtime directory and each
// sandbox's record.
//
//   RUNTIME/                 0700, the caller's: $XDG_RUNTIME_DIR/ward, /run/ward for root,
//     .lock                  flock: provision, start, deprovision, names
//     names/NAME -> ID       a symlink per name (names are unique per user)
//     ID/                    0700
//       sandbox.json         the record (written beside, renamed into place)
//       ctl                  the supervisor's control socket, while it runs
//       supervisor.log       what the supervisor said (its errors)
//       state/tmp, state/home  the private /tmp and home, kept across stop/start
//       dns-bindings.json    the names its DNS bound to addresses, kept across stop/start
//
// Only the owning uid reaches any of it: the directory is 0700 and every
// check refuses a directory of another owner or a wider mode.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "enforce/plan.h"
#include "net/egress_proxy.h"
#include "ward/policy.h"
#include "ward/result.h"

namespace ward::lifecycle {

// The runtime directory, made if missing: WARD_RUNTIME_DIR if set, else
// $XDG_RUNTIME_DIR/ward, else /run/ward for root and /run/user/UID/ward or
// /tmp/ward-UID for others (`make` false: an error if it is missing). Refused (Code kRuntimeDir) if it, or the
// directory holding it, is not a directory of ours, or is group/other
// accessible.
Result<std::string> RuntimeDir(bool make = true);

struct SandboxRecord {
  std::string id, name, agent;
  std::string created;        // RFC 3339, UTC
  std::string policy;         // canonical JSON (PolicyToJson)
  std::string policy_digest;  // "sha256:HEX" of `policy`
  std::string workspace;      // the policy's ${WORKSPACE} at provision
  std::vector<std::string> dns_servers;
  std::string state;          // "provisioned", "running", "stopped", "failed"
  std::string failure;        // why, when "failed"
  pid_t supervisor = 0;       // while "running"
  std::string started;        // RFC 3339, the last start
  // The audit store its execs are recorded in, chosen at provision (the
  // caller's default then), so that no later caller's environment can
  // send them elsewhere; "" in records from before it was kept: the
  // default of whoever runs the exec.
  std::string audit_db;
  // While running: why its supervisor records nothing ("" : it records).
  // Only with audit.trail "best-effort"; `ward exec` says it.
  std::string audit_off;
};

std::string Now3339();
std::string Sha256Hex(const std::string& data);
// 12 random hex digits.
Result<std::string> NewId();
// [A-Za-z0-9][A-Za-z0-9_.-]{0,62}: "" if `name` is one, else why not.
std::string CheckName(const std::string& name);

Result<SandboxRecord> LoadRecord(const std::string& dir);
Result<void> SaveRecord(const std::string& dir, const SandboxRecord& r);

// A held sandbox's DNS bindings (DIR/dns-bindings.json), written by its
// supervisor when it ends and given to the next start's egress proxy, so
// that an address a name was resolved to stays that name's across a stop.
// None if the file is missing; an error if it is damaged or holds an entry
// that is not an address and a name (the caller then starts without them:
// fewer bindings only ever deny more).
Result<std::vector<net::DnsBinding>> LoadBindings(const std::string& dir);
Result<void> SaveBindings(const std::string& dir, const std::vector<net::DnsBinding>& bindings);

// An exclusive flock on RUNTIME/.lock, released on destruction.
class StoreLock {
 public:
  static Result<StoreLock> Take(const std::string& runtime);

 private:
  UniqueFd fd_;
};

// The directory of sandbox `ref` (an id or a name); Code kNoSandbox if
// there is none.
Result<std::string> FindSandbox(const std::string& runtime, const std::string& ref);
// Every sandbox directory.
std::vector<std::string> AllSandboxes(const std::string& runtime);
// Removes a sandbox's directory and its name (the caller holds the lock).
Result<void> RemoveSandbox(const std::string& runtime, const SandboxRecord& r);

// Removes `name` in the directory `parent` and everything under it without
// following a link (a sandbox writes its state directory: it may hold links
// to anywhere); best effort.
void RemoveTree(int parent, const char* name);

// An error (kPolicy) if a unix socket a policy lists (`dev`/`ino`, as
// resolved at compile time) is a control socket of a held sandbox: one in
// the caller's runtime directory, or any socket named `ctl` beside a
// sandbox record. Connecting a listed socket is ward's own doing (the unix
// gate connects it with the caller's credentials), which the supervisor
// could not tell from its owner's.
Result<void> RefuseControlSocket(const std::string& path, dev_t dev, ino_t ino);

// An error (kPolicy) if `plan`'s filesystem.unix lists a control socket
// (RefuseControlSocket).
Result<void> RefuseControlSockets(const LaunchPlan& plan);

// Where ward's own state is visible, for CompilePlan's `ward_state`: the
// caller's runtime directory (records, control sockets, other sandboxes'
// private /tmp and home) and the audit store's directory, if they exist,
// each at its real path and at every other path a bind mount shows it
// (PathsShowing). A sandbox whose grants lie above one sees an empty,
// read-only directory in its place; no grant may lie at or beneath one.
// `audit_db`: the store the run records to ("": the default one).
std::vector<std::string> WardStateDirs(const std::string& audit_db = "");

// Connects to the control socket in `dir` (SOCK_SEQPACKET); the errno of
// connect on failure (ENOENT, ECONNREFUSED: no supervisor serves it).
Result<UniqueFd> ConnectControl(const std::string& dir, int* err);

}  // namespace ward::lifecycle
