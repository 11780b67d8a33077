// Running a command in a sandbox: the public C++ API that every front end
// (CLI, daemon, SDKs) calls. It holds all enforcement; front ends only build
// a Policy and a RunRequest.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ward/policy.h"
#include "ward/result.h"

namespace ward {

// A program the sandbox asked the kernel to execute (execve/execveat), as
// read from the caller's memory before the call (RunRequest::on_exec). What
// the caller asked for, not proof of what ran: the call may then fail (a
// PATH search tries each directory), and another thread of the caller may
// rewrite the strings before the kernel reads them. A record, never a
// decision.
struct ProcessExec {
  int64_t time_ns = 0;          // CLOCK_REALTIME
  int pid = 0, ppid = 0;        // in the sandbox's pid namespace (0: unknown)
  int host_pid = 0;             // the caller's process, on the host
  std::string path;             // as passed; for execveat, resolved against its directory when it can be
  std::vector<std::string> argv;
  bool truncated = false;       // argv or path cut at the bounds (net/exec_notice.h)
  // An absolute path that, as ward saw it, named nothing in the sandbox
  // (ENOENT, ENOTDIR): most likely one step of a PATH search that failed.
  // A hint only, never a reason to leave the call out: a path through
  // /proc/self, or a file made just after ward looked, is seen missing too.
  bool missing = false;
  // Why path and argv could not be read ("" if they were): a caller the
  // supervisor may not read (not dumpable, and ward not root) is recorded
  // with its pid alone.
  std::string unreadable;
};

// A file system call the sandbox made, as `ward learn` watches them
// (RunRequest::on_file): what it asked for, read before the kernel acts,
// whatever the kernel then answered (a record, like ProcessExec).
enum class FileOp : uint8_t {
  kRead,    // open for reading
  kWrite,   // open for writing, truncate, chmod, utimensat
  kCreate,  // open with O_CREAT, mkdir, mknod, symlink, link (the new name)
  kRemove,  // unlink, rmdir, rename (both names)
  kStat,    // stat, access, chdir, readlink, getxattr: the path must be visible
  kExecute, // execve (RunRequest::on_file_denied only)
};
struct FileAccess {
  int64_t time_ns = 0;  // CLOCK_REALTIME
  int pid = 0;          // in the sandbox's pid namespace
  FileOp op = FileOp::kStat;
  // Absolute, as the sandbox names it (a relative path joined to the
  // caller's working directory or directory descriptor; `.` and `..`
  // resolved by name, symlinks not followed).
  std::string path;
  // The same, made absolute but not resolved by name: `..` after a link
  // leaves the link's target, not its directory (the kernel's reading).
  std::string named;
  // The call follows a link in the last component (open, stat, chmod);
  // false for lstat, readlink, unlink, rename, O_NOFOLLOW, AT_SYMLINK_NOFOLLOW.
  bool follow = true;
  // The calling thread, in the host's pid namespace (valid while it lives).
  int host_tid = 0;
};

// A file access the policy does not grant (RunRequest::on_file_denied),
// judged by ward by the path the call names, as it is made; the workload
// meets the kernel's own answer (ENOENT where nothing is granted, EACCES at
// a deny rule's mask, EROFS in a read-only grant). enforce/file_view.h.
struct FileDenial {
  FileAccess access;
  // The host path the access leads to through links, when it is another
  // ("" if the same): judged by it.
  std::string resolved;
  // "not granted", "read-only", "denied by a rule", or "hidden by the
  // sandbox's private DIR" (the host has the file, the sandbox's own /tmp,
  // home, /dev or /proc does not).
  std::string reason;
  std::string rule;  // the path of the rule that decided ("" for none)
  // Identical denials (operation and path) not recorded since the last one
  // that was, each within a second of it (enforce/file_view.h).
  uint64_t repeats = 0;
};

struct EgressRecord;

struct RunRequest {
  Policy policy;
  // The command; overrides policy.process.argv when non-empty.
  std::vector<std::string> argv;
  // Give the workload a new pseudo-terminal wired to ward's own terminal.
  bool pty = false;
  // Send SIGKILL this long after forwarding SIGINT/SIGTERM/SIGHUP if the
  // sandbox has not ended by then.
  int64_t kill_grace_ms = 3000;
  // Egress mode: the resolvers ward's DNS filter forwards allowed questions
  // to, as "ADDR" or "ADDR:PORT" ("[v6]:PORT"); empty: the host's
  // /etc/resolv.conf.
  std::vector<std::string> dns_servers;
  // Called with each warning (a deny rule that matches nothing, a command
  // that is another program inside than on the caller's PATH) before the
  // workload starts; they are also in RunResult::warnings.
  std::function<void(const std::string&)> on_warning;
  // Every warning is an error instead (kPolicy): nothing runs.
  bool strict = false;
  // A root caller's sandbox: the host uid its uid 0 is (one of
  // WARD_UID_RANGE; kPolicy otherwise). Unset: the range's BASE. `ward
  // run` gives each agent its own (recorded in the audit store), so that
  // what an agent's processes do on the host is theirs in `ps`, `ls -l` and
  // the kernel's audit log. Ignored for other callers (their own uid).
  std::optional<uint32_t> host_uid;
  // Set: called with each program the sandbox executes, as it is about to
  // (execve and execveat wait for ward meanwhile: about 25 µs each), on a
  // thread of ward's; it must not block. Unset: executions are not watched.
  std::function<void(ProcessExec)> on_exec;
  // Set: called with each network decision as it is made (the same records
  // RunResult::egress lists at the end), on a thread of ward's; it must not
  // block.
  std::function<void(const EgressRecord&)> on_egress;
  // Set: called with each file system call that names a path (open, stat,
  // mkdir, unlink, rename, ...; FileOp), as it is made, on a thread of
  // ward's. Each such call then waits for ward (about 20 µs): for `ward
  // learn`, not for everyday runs.
  std::function<void(FileAccess)> on_file;
  // Set: called with each file access the policy does not grant (a
  // FileDenial), as it is made, on a thread of ward's (policy
  // audit.files "denied"). Every file system call that names a path then
  // waits for ward (about 10 µs); those the policy grants are not reported.
  std::function<void(FileDenial)> on_file_denied;
  // With on_file_denied: called with each count of file accesses left
  // unjudged or denials left unrecorded (a flood: enforce/file_view.h), why,
  // and a random sample of the paths not recorded, on the same thread.
  std::function<void(uint64_t, const std::string&, const std::vector<std::string>&)> on_file_dropped;
};

// One network decision: a DNS question or a connection (egress mode), or a
// connect() to a unix socket that filesystem.unix lists or that was refused
// (every mode).
struct EgressRecord {
  std::string kind;     // "dns", "tcp", "http-proxy", "udp", "unix"
  std::string domain;   // the name asked / sniffed / bound; "" if none
  std::string address;  // destination address; "" for DNS
  int port = 0;
  bool allowed = false;
  std::string rule;     // the rule that decided; "" when the default or a check did
  std::string reason;
  std::string detail;   // how the name was learned, the DNS type, what failed
  std::string path;     // "unix": the socket as the workload named it ("@name": abstract)
  double at_ms = 0;     // since the run began
};

// Wall-clock points of the launch, in microseconds since ward's run began.
struct Phase {
  std::string name;
  double us = 0;
};

struct RunResult {
  int exit_code = 0;             // the workload's exit status (when exited)
  int signal = 0;                // the signal that killed it, or 0
  bool timed_out = false;        // process.timeoutMs elapsed; the sandbox was killed
  bool interrupted = false;      // ward got SIGINT/SIGTERM/SIGHUP and forwarded it
  std::vector<std::string> limits_hit;  // "memory", "pids"
  double duration_ms = 0;        // clone to the end of teardown
  std::vector<Phase> phases;
  std::string memory_mechanism, pids_mechanism;  // "cgroup-v1", "rlimit", ...
  int landlock_abi = 0;
  std::vector<EgressRecord> egress;  // oldest first
  uint64_t egress_dropped = 0;       // decisions not kept (too many): the list is incomplete
  std::vector<std::string> warnings;  // see RunRequest::on_warning
};

// Runs the request and returns once every process of the sandbox is gone
// and its mounts, namespaces and cgroups are released. Errors (policy that
// cannot be enforced as written, missing kernel feature, command not found)
// come back before the workload starts.
Result<RunResult> Run(const RunRequest& request);

// Ward's own exit codes (the workload's status otherwise; 128+N for signal N).
inline constexpr int kExitUsage = 122;       // bad command line
inline constexpr int kExitPolicy = 123;      // policy invalid or not enforceable as written
inline constexpr int kExitTimeout = 124;     // process.timeoutMs elapsed
inline constexpr int kExitSetup = 125;       // the sandbox could not be built
inline constexpr int kExitNotExecutable = 126;
inline constexpr int kExitNotFound = 127;
// Held sandboxes' commands (ward/lifecycle.h).
inline constexpr int kExitRuntimeDir = 117;      // runtime directory unusable (owner, mode)
inline constexpr int kExitNameTaken = 118;
inline constexpr int kExitNoSandbox = 119;
inline constexpr int kExitWrongState = 120;      // e.g. exec into a stopped sandbox
inline constexpr int kExitSupervisorGone = 121;  // running, but its supervisor is gone (failed)

// The exit status for one of ward's own errors (the table above).
int ExitStatusFor(const Error& e);
// The exit status for a finished command: 124 timeout, 128+N for signal N,
// else its own.
inline int ExitStatusOf(const RunResult& r) {
  return r.timed_out ? kExitTimeout : r.signal ? 128 + r.signal : r.exit_code;
}

// What `ward run` would warn about this policy on this host now, without
// running anything: each deny rule that names nothing under a grant (a
// typo such as `.evn`), and each pattern that cannot be expanded within
// its bound. `ward policy check` prints them.
std::vector<std::string> PolicyWarnings(const Policy& policy);

// Host capabilities, as `ward doctor` reports them.
struct DoctorCheck {
  std::string name;
  std::string status;  // "ok", "degraded", "missing"
  std::string detail;
};
std::vector<DoctorCheck> Doctor();

}  // namespace ward
