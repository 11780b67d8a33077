// memoryMiB where no writable memory cgroup exists (an unprivileged caller
// on a host that delegates none): ward's supervisor watches the memory the
// sandbox's processes use and stops the sandbox when it passes the limit.
//
// Why not RLIMIT_AS, the old fallback: it bounds address space, per process.
// Runtimes reserve far more address space than they use (V8's code range, the
// JVM's heap and class space, Go's arenas), so node, java and go failed to
// start under 256 or 512 MiB, while a program with many processes could use
// the limit many times over.
//
// What is counted: for every process of the sandbox's pid namespace, its
// proportional anonymous and shared-memory resident set (Pss_Anon + Pss_Shmem
// of /proc/PID/smaps_rollup): memory that cannot be reclaimed without swap,
// each page divided among the processes that map it, so forked workers that
// share pages are not counted twice; and, every kTablesEvery samples, the
// page tables of each (VmPTE: kernel memory a program makes by touching a
// wide, sparse mapping). File pages (libraries, mapped files, the page
// cache) are not counted: the kernel can drop them, and a memory cgroup
// would reclaim them before it stopped anything. Pages of a tmpfs that no
// process maps are bounded by the tmpfs's own size (limits.tmpfsMiB); the
// in-memory files no mount holds (memfd_create, memfd_secret) are refused
// to the sandbox under this mechanism (seccomp, ENOSYS: programs fall back
// to a file in /dev/shm or /tmp). Not counted: kernel memory in socket and
// pipe buffers, and System V segments no process maps (docs/policy.md).
//
// What it cannot do: stop an allocation as it happens. It samples every
// kIntervalMs, so a program that allocates faster than that can pass the
// limit by what it allocates in one interval before it is stopped (on this
// machine, some hundreds of MiB at most for a tight memset loop). `ward
// doctor` names the mechanism.
//
// Where the processes are found: the sandbox's own procfs (it mounts a fresh
// one at /proc), opened by its init once its root is built and handed to the
// supervisor. It lists exactly the sandbox's processes, whatever their pids
// on the host. Each process's memory is read with the supervisor's
// credentials, which may read every process the workload runs (they run in
// the sandbox's user namespace, which the supervisor owns), but not init and
// its children before they exec (their memory is ward's, from fork): init is
// skipped; a held exec's process waiting at its gate for its start to be
// recorded is spared the unreadable rule (it says its pid on the gate:
// AtGate; it is counted if it can be read); and some process unreadable in
// every sample for longer than
// kUnreadableMs (a program that is not readable by any user mapped into the
// sandbox makes its process so; a chain of them too) is an error: the limit
// cannot be kept, and the sandbox is stopped.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/unique_fd.h"
#include "ward/result.h"

namespace ward {

class MemoryWatch {
 public:
  static constexpr int kIntervalMs = 20;
  static constexpr int kUnreadableMs = 1000;
  // Page tables are read every kTablesEvery samples (another file per
  // process).
  static constexpr uint64_t kTablesEvery = 5;

  // Watches the sandbox whose procfs is `proc` (a directory descriptor).
  // Refused unless it is a procfs of another pid namespace than ward's.
  static Result<MemoryWatch> FromProcfs(UniqueFd proc);

  struct Usage {
    uint64_t memory_bytes = 0;  // with `memory`
    int64_t tasks = 0;          // threads of every process, init's included
  };
  // The sandbox now (`now_ms`: CLOCK_MONOTONIC): its tasks, and with
  // `memory` the memory its processes use, in bytes. A process that ends
  // meanwhile counts nothing; one whose memory cannot be read, for another
  // reason than the above, is an error naming it.
  //
  // The tasks are how a pids limit kept by RLIMIT_NPROC (no pids cgroup) is
  // seen to be reached: the kernel counts no failed fork anywhere ward can
  // read, so a sample at the limit is the evidence (a burst that fills the
  // limit between two samples goes unseen).
  //
  // `at_gate`: processes a held sandbox's init forked for an exec, waiting
  // at its gate (enforce/exec_request.h kExecGated) until its start is in
  // the audit trail. Still ward's code and unreadable until their exec, as
  // init is, for as long as the store takes (seconds, when it is busy).
  // Such a process is spared the unreadable rule, nothing else: one that
  // can be read is counted, and the process is known by its pid and start
  // time together (a process of the sandbox that killed it and took its
  // pid is not it).
  struct GatedProcess {
    pid_t pid;
    uint64_t start_ticks;  // field 22 of /proc/PID/stat
  };
  Result<Usage> Sample(int64_t now_ms, bool memory, const std::vector<GatedProcess>& at_gate = {});
  // A process's start time (field 22 of its stat, readable whoever may read
  // its memory), or 0 if it is gone.
  uint64_t StartTicks(pid_t pid) const;

 private:
  explicit MemoryWatch(UniqueFd proc) : proc_(std::move(proc)) {}
  UniqueFd proc_;
  int64_t unreadable_since_ = -1;  // since when some process could not be read (-1: none now)
  uint64_t samples_ = 0;
  uint64_t table_bytes_ = 0;  // page tables, as last read
};

// Samples a MemoryWatch every kIntervalMs on a thread of its own, so that a
// slow sample (thousands of processes) never holds up the supervisor's loop
// (timeouts, signals, output). A sample that takes longer than
// kSampleBudgetMs is an error (the limit cannot be kept at that pace), like
// a memory that cannot be read: the sandbox is stopped (`kill`, called on
// the thread) and error() says why.
class MemoryWatchThread {
 public:
  static constexpr int kSampleBudgetMs = 1000;
  struct Limits {
    uint64_t memory_bytes = 0;  // 0: memory not watched
    int64_t pids = 0;           // 0: tasks not watched
  };
  MemoryWatchThread(MemoryWatch watch, Limits limits, std::function<void()> kill);
  ~MemoryWatchThread();  // Stop()
  MemoryWatchThread(const MemoryWatchThread&) = delete;
  MemoryWatchThread& operator=(const MemoryWatchThread&) = delete;

  // Ends the sampling and joins the thread; the results are final after it.
  void Stop();
  bool memory_exceeded() const { return exceeded_; }
  bool pids_reached() const { return pids_reached_; }
  // Samples that saw the sandbox at its pids limit so far (a held sandbox
  // compares it around each exec).
  uint64_t pids_at_limit_samples() const { return pids_at_limit_samples_; }
  const std::string& error() const { return error_; }

  // A held exec's process waits at its gate: `gate` is the supervisor's end,
  // on which that process sends its pid (in the sandbox) before it waits.
  // Until PastGate(gate), and while that process still holds the other end
  // (it closes at its exec or its end: nothing else holds it), the process
  // is not counted as unreadable (MemoryWatch::Sample's at_gate). PastGate
  // before `gate` is closed.
  void AtGate(int gate);
  void PastGate(int gate);

 private:
  void Run(int64_t interval_ms);
  // The processes at their gates now (reads the pids not yet read).
  std::vector<MemoryWatch::GatedProcess> AtGates();

  MemoryWatch watch_;
  Limits limits_;
  std::function<void()> kill_;
  UniqueFd stop_;  // an eventfd: readable once Stop() is called
  std::atomic<bool> exceeded_{false}, pids_reached_{false};
  std::atomic<uint64_t> pids_at_limit_samples_{0};
  std::string error_;  // written by the thread, read after the join
  std::mutex gates_mu_;
  // Gate descriptor -> the process waiting there (pid 0: not said yet; -1:
  // gone from the gate, never spared again).
  std::map<int, MemoryWatch::GatedProcess> gates_;
  std::thread thread_;
};

// Pss_Anon + Pss_Shmem of one smaps_rollup text, in bytes (0 when neither is
// there: a process with no memory of its own, e.g. a zombie).
uint64_t ParseRollup(std::string_view text);
// VmPTE of one /proc/PID/status text, in bytes.
uint64_t ParseStatusPageTables(std::string_view text);

}  // namespace ward
