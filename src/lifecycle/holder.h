// The control loop of a held sandbox's supervisor (lifecycle/held_supervisor.h
// builds the sandbox and runs it): the control socket, init's events, each
// exec's start, end and report, the deadlines, the stop.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "enforce/exec_request.h"
#include "enforce/memory_watch.h"
#include "lifecycle/control.h"
#include "sandbox/prepare.h"
#include "ward/result.h"

namespace ward::lifecycle {

// Serves the held sandbox: the control socket, init's events, the
// deadlines, the stop. Runs inside Launch (LaunchOptions::hold).
class Holder {
 public:
  // The audit trail of each exec (HoldSandbox): its start, before the
  // command goes to init (an error refuses it: nothing runs), and its end,
  // whether or not its caller is still there.
  struct ExecStart {
    uint32_t id;
    const std::vector<std::string>& argv;
    const std::string& cwd;
    pid_t caller_pid;
    uid_t caller_uid;
    std::string* warning;  // what its caller is told before it runs (best-effort: not recorded, or late)
  };
  struct ExecEnd {
    const std::string& run;  // what on_exec_start gave it ("": not recorded)
    pid_t caller_pid;
    int wait_status;  // as waitpid gives it
    bool timed_out, refused;
    std::vector<std::string> limits;  // reached while it ran: "memory", "pids"
    std::string gone;                 // the sandbox ended under it: why
    double duration_ms;
  };
  // What the supervisor around it does at each step; any may be empty.
  struct Hooks {
    // Gives the exec's run id (pairing its start and end; "" if its start
    // was not recorded and it may run all the same).
    std::function<Result<std::string>(const ExecStart&)> on_exec_start;
    std::function<void(const ExecEnd&)> on_exec_end;
    // Why nothing is recorded ("" if it is): said to each exec's caller
    // (kRecWarning) and kept in the sandbox's record (SandboxInfo::audit_off).
    std::string audit_off;
    // Called when an exec's command has ended, before its caller is told.
    std::function<void()> before_exit;
    // Once init serves, before anyone is: its persistent areas (the
    // directories init handed over with kEvReady) put back (an error: the
    // sandbox does not start). Its warnings go to `ward start` with the "ok".
    std::function<Result<std::vector<std::string>>(std::vector<UniqueFd> areas)> on_ready;
  };

  Holder(const std::string& dir, PreparedSandbox& ps, int* ready_fd, Hooks hooks)
      : dir_(dir), ps_(ps), ready_fd_(ready_fd), hooks_(std::move(hooks)) {}

  // Waits for init to serve, puts back the persistent areas, listens on
  // the control socket, says "ok" on the ready pipe, then serves until
  // init is gone (the sandbox stopped or failed). What Launch reports.
  Result<InitReport> Serve(HeldInit& held);

  bool stopped() const { return stopping_; }
  const std::string& failure() const { return failure_; }
  // The connections of those who asked for the stop: answered by their end,
  // once everything of the sandbox is gone.
  std::vector<UniqueFd> TakeStopWaiters() { return std::move(stop_waiters_); }

 private:
  // What the sandbox's limits have done so far: the kernel's counts (cgroup
  // limits) and the memory watch's samples at the pids limit (rlimit class).
  struct LimitCounts {
    int64_t oom_kills = 0, pids_refused = 0;
    uint64_t pids_samples = 0;
  };

  // One connection to the control socket.
  struct ControlClient {
    UniqueFd fd;
    LimitCounts at_start;  // when its exec started: a limit reached since is reported to it
    int64_t start_ns = 0;  // CLOCK_MONOTONIC then: the egress decisions since are its
    uint64_t dropped_at_start = 0;
    uint32_t exec = 0;       // its exec's id; 0: none asked
    bool exited = false;     // its exec's process has ended
    pid_t peer_pid = 0;      // who connected (SO_PEERCRED)
    uid_t peer_uid = 0;
    bool stop_waiter = false;  // asked for the stop: answered by the end of the supervisor
    int64_t deadline = 0;    // process.timeoutMs, CLOCK_MONOTONIC ns; 0: none
  };

  void Tell(const std::string& msg);

  // Until init serves (kEvReady), fails (a record on the report pipe), or
  // dies. False if it will never serve (`report` says why, if it can).
  bool WaitReady(InitReport* report);

  Result<void> Listen();

  void ReapInit();

  // A message to init, in order: sent now if the channel takes it, else
  // queued (with copies of its descriptors) and sent when it drains. Never
  // dropped: a lost start left its client waiting forever, a lost signal
  // left a process running (the channel is non-blocking, and a few large
  // requests fill it).
  void ToInit(const void* data, size_t len, const int* fds, size_t nfds);
  int SendToInit(const void* data, size_t len, const int* fds, size_t nfds);
  // Sends what is queued, in order, until the channel is full again.
  void FlushToInit();

  void SignalExec(uint32_t id, int sig);

  LimitCounts Limits() const;

  // The limits reached while a client's exec ran (`ward exec --json`'s
  // limitsHit). With several execs at once, each is told of a limit the
  // sandbox reached while it ran: the limits are the sandbox's, not one
  // exec's.
  void ReportLimits(ControlClient& c, const LimitCounts& now);
  static std::vector<std::string> LimitsSince(const LimitCounts& then, const LimitCounts& now);

  // An exec ended (or was refused, or the sandbox ended under it): its end
  // goes to the audit trail, whoever still waits for it. `now`: the
  // limits' counts now.
  void Ended(uint32_t id, int wait_status, bool refused, const std::string& gone, const LimitCounts& now);

  // The egress decisions not yet past every exec, and how many the proxy
  // and the connect() server could not keep.
  // At most kHeldEgress are kept for the reports (an exec lists at most
  // kReportMaxEgress): a sandbox flooding decisions while an exec runs
  // grew the supervisor by hundreds of MB and made each exec's end sort
  // them all. The rest are counted, as the proxy's own overflow is.
  static constexpr size_t kHeldEgress = 4 * kReportMaxEgress;
  void PullEvents();
  uint64_t DroppedEvents() const;

  // An exec's report (`ward exec --json`): the egress decisions made while
  // it ran (with several execs at once, each lists every decision of its
  // time: the rules are the sandbox's), and the limits' mechanisms.
  void Report(ControlClient& c);

  // A record followed, in the same message, by `text` (kRecReport's JSON,
  // kRecWarning's words).
  static void SendText(ControlClient& c, uint32_t type, const std::string& text);

  // Drops the decisions older than every running exec (all, when none
  // runs): what no exec will report is not kept.
  void PruneEvents();

  // Ends a client's exec: its status, then the end of the connection.
  void Finish(ControlClient& c, int status);

  void Start(ControlClient& c, size_t got, int* fds, size_t nfds);

  void Status(ControlClient& c);

  size_t running_execs() const;

  void Stop(int64_t grace_ms);

  void OnClient(ControlClient& c);

  ControlClient* ByExec(uint32_t id);

  void OnInitEvent();

  void Loop();

  void Accept();

  void OnSignal();

  // Init is gone: every exec still running ends, with why.
  void GoneForEveryone();

  static pid_t PidOf(int pidfd);

  const std::string& dir_;
  PreparedSandbox& ps_;
  int* ready_fd_;
  const Hooks hooks_;
  HeldInit* held_ = nullptr;
  std::vector<UniqueFd> ready_areas_;  // init's persistent areas (kEvReady)
  UniqueFd listen_;
  std::optional<struct stat> own_userns_;  // this supervisor's user namespace (PeerIsOwner)
  std::map<int, std::unique_ptr<ControlClient>> clients_;
  std::vector<UniqueFd> stop_waiters_;
  // Each exec from its start to its end, for the audit trail (its caller
  // may be gone meanwhile).
  struct Track {
    int64_t start_ns;  // CLOCK_MONOTONIC
    LimitCounts at_start;
    bool timed_out;
    std::string run;  // its run id in the audit trail ("": not recorded)
    pid_t caller_pid;
  };
  std::map<uint32_t, Track> tracks_;
  std::vector<net::EgressEvent> events_;
  uint64_t events_overflow_ = 0;  // decisions past kHeldEgress, not kept
  std::string quiet_report_;      // an exec's report with no egress decision (Report)
  struct PendingToInit {
    std::string data;
    std::vector<UniqueFd> fds;
  };
  std::deque<PendingToInit> to_init_;  // messages the channel did not take yet
  std::unique_ptr<ExecMessage> request_ = std::make_unique<ExecMessage>();
  std::unique_ptr<ExecMessage> outgoing_ = std::make_unique<ExecMessage>();
  std::unique_ptr<MemoryWatchThread> watcher_;
  uint32_t next_id_ = 1;
  bool stopping_ = false;
  bool reaped_ = false;
  int init_signal_ = 0;
  pid_t init_pid_ = 0;
  int64_t kill_at_ = 0;
  std::string failure_;
};

}  // namespace ward::lifecycle
