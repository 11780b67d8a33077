#include "enforce/launcher.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <utility>

#include "base/errors.h"
#include "base/fd_passing.h"
#include "base/unique_fd.h"
#include "enforce/child.h"
#include "enforce/idmap.h"
#include "enforce/memory_watch.h"
#include "enforce/stdio.h"
#include "enforce/supervisor.h"

namespace ward {

namespace {

// A pair of connected unix sockets (SOCK_SEQPACKET, close-on-exec): one end
// for the supervisor, one for the sandbox's init.
Result<void> SocketPair(const char* what, UniqueFd* parent, UniqueFd* child) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return SysError("socketpair", what);
  parent->Reset(sv[0]);
  child->Reset(sv[1]);
  return {};
}

// The message for a set-up step init reported failed: the step's name, the
// mount op, resource or egress stage it was at, and the errno. An exec that
// failed also sets `exec_error`.
Error SetupFailure(const Record& setup_error, const LaunchPlan& plan, LaunchError* exec_error) {
  if (setup_error.step == kStepExec) {
    exec_error->exec_errno = setup_error.err;
    std::string cmd = plan.argv.empty() ? "" : plan.argv[0];
    return Error::Setup("execve \"" + cmd + "\": " + ErrnoName(setup_error.err));
  }
  std::string what = StepName(setup_error.step);
  if (setup_error.step == kStepMountOp && setup_error.index >= 0 &&
      static_cast<size_t>(setup_error.index) < plan.mounts.size()) {
    const MountOp& op = plan.mounts[static_cast<size_t>(setup_error.index)];
    what += " \"" + (op.source.empty() ? std::string("") : op.source + "\" -> \"") + "/" + op.target + "\"";
  }
  if (setup_error.step == kStepRlimit) what += " (resource " + std::to_string(setup_error.index) + ")";
  if (plan.egress && (setup_error.step == kStepNetLinks || setup_error.step == kStepNftables ||
                      setup_error.step == kStepEgressListeners)) {
    EgressStage stage = setup_error.step == kStepNetLinks   ? EgressStage::kLinks
                        : setup_error.step == kStepNftables ? EgressStage::kNftables
                                                            : EgressStage::kListeners;
    std::string detail = DescribeEgressFailure(*plan.egress, stage, setup_error.index);
    if (!detail.empty()) what += " (" + detail + ")";
  }
  return Error::Setup("sandbox setup failed at " + what + ": " + ErrnoName(setup_error.err));
}

// Egress: hands the listeners init built in the sandbox's network namespace
// to the proxy, then lets init start the workload. An error kills the
// sandbox (before its workload) and is returned.
std::optional<Error> ServeEgress(int channel, int pidfd, const LaunchOptions& opts) {
  // Blocks until init has built the network (bounded: netlink answers
  // time out) or has failed, closing its end.
  auto listeners = ReceiveEgressListeners(channel);
  Result<void> served = !listeners ? Result<void>(listeners.error())
                        : opts.on_egress_listeners ? opts.on_egress_listeners(std::move(*listeners))
                                                   : Result<void>(Error::Setup("no egress proxy to serve the sandbox"));
  if (served) {
    // Init waits for this byte before it starts the workload.
    if (write(channel, "G", 1) != 1) served = SysError("write", "egress go");
  }
  if (served) return std::nullopt;
  // Nothing may run unfiltered: the sandbox dies before its workload
  // (init is still waiting for the byte above). If init failed first,
  // its report names the step (SetupFailure); otherwise this error stands.
  SignalPidfd(pidfd, SIGKILL);
  return served.error();
}

// --pty: the terminal's master and a read-only slave, from init.
void ReceivePty(int channel, SupervisedInit* init) {
  // Init sends the master and a slave once its root is built (before it
  // waits for the egress byte above). Nothing arrives if it failed first:
  // its report says why.
  std::vector<UniqueFd> got = ReceiveFds(channel, 2);
  if (got.size() == 2) {
    init->pty_master = std::move(got[0]);
    init->pty_slave = std::move(got[1]);
    winsize ws;
    if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) ioctl(init->pty_master.get(), TIOCSWINSZ, &ws);
  }
}

// seccomp_net: the listener of init's notify filter (and its
// NETLINK_SOCK_DIAG socket) to the connect() server. An error kills the
// sandbox and is returned.
std::optional<Error> ServeConnectListener(int channel, int pidfd, const LaunchOptions& opts) {
  // Init sends the listener as it loads the filter, after the pty; with
  // nothing (it failed first) its report says why. Nothing in the sandbox
  // runs unserved: the workload's connect() calls wait until this serves,
  // or die with the sandbox if it cannot.
  bool truncated = false;
  std::vector<UniqueFd> got = ReceiveFds(channel, 2, &truncated);
  if (got.empty() || truncated) return std::nullopt;
  UniqueFd diag = got.size() > 1 ? std::move(got[1]) : UniqueFd();
  Result<void> served = opts.on_connect_listener(std::move(got[0]), std::move(diag));
  if (served) return std::nullopt;
  SignalPidfd(pidfd, SIGKILL);
  return served.error();
}

// The memory watch: the sandbox's own procfs, from init.
void ReceiveMemoryWatch(int channel, int pidfd, SupervisedInit* init, LaunchOutcome* out) {
  // Sent once init's root is built; nothing if it failed first (its
  // report says why). A procfs that is not the sandbox's stops it.
  std::vector<UniqueFd> got = ReceiveFds(channel, 1);
  if (got.empty()) return;
  auto opened = MemoryWatch::FromProcfs(std::move(got[0]));
  if (opened) {
    init->watch.emplace(std::move(*opened));
  } else {
    SignalPidfd(pidfd, SIGKILL);
    out->watch_error = opened.error().message;
  }
}

}  // namespace

Result<LaunchOutcome> Launch(const LaunchPlan& plan, const CgroupPlan& cgroup, int ruleset_fd,
                             const LaunchOptions& opts, LaunchError* exec_error) {
  LaunchOutcome out;
  // argv/envp as the arrays execve wants, built before clone.
  std::vector<char*> argv, envp;
  for (const auto& a : plan.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : plan.envp) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  sock_fprog prog{static_cast<unsigned short>(plan.seccomp.size()), const_cast<sock_filter*>(plan.seccomp.data())};
  sock_fprog extra{static_cast<unsigned short>(plan.seccomp_extra.size()),
                   const_cast<sock_filter*>(plan.seccomp_extra.data())};
  sock_fprog net{static_cast<unsigned short>(plan.seccomp_net.size()), const_cast<sock_filter*>(plan.seccomp_net.data())};

  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return SysError("pipe2", "report");
  UniqueFd report_rd(p[0]), report_wr(p[1]);
  fcntl(report_rd.get(), F_SETFL, O_NONBLOCK);
  UniqueFd self_pidfd(static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0)));
  if (!self_pidfd.valid()) return SysError("pidfd_open", "self");

  UniqueFd connect_parent, connect_child;
  if (!plan.seccomp_net.empty()) {
    if (!opts.on_connect_listener) return Error::Setup("no connect() server to serve the sandbox's filter");
    if (auto made = SocketPair("connect listener", &connect_parent, &connect_child); !made) return made.error();
  }

  UniqueFd watch_parent, watch_child;
  if (opts.watch_memory_bytes > 0 || opts.watch_pids > 0) {
    if (auto made = SocketPair("memory watch", &watch_parent, &watch_child); !made) return made.error();
  }

  UniqueFd exec_parent, exec_child;
  if (opts.hold) {
    if (auto made = SocketPair("exec requests", &exec_parent, &exec_child); !made) return made.error();
  }

  UniqueFd egress_parent, egress_child;
  if (plan.egress) {
    if (auto made = SocketPair("egress", &egress_parent, &egress_child); !made) return made.error();
  }

  // A root caller's sandbox: the channel its identity comes on. The id maps
  // and the id-mapped grants are made after clone, with the host's
  // privileges and through the sandbox's own user namespace, while the
  // child starts (enforce/idmap.h).
  UniqueFd ids_rd, ids_wr;
  std::vector<int> tree_fds;
  if (plan.host_uid) {
    tree_fds.assign(plan.mounts.size(), -1);
    if (auto made = SocketPair("identity", &ids_rd, &ids_wr); !made) return made.error();
  }

  std::optional<StdioBridge> bridge;
  if (!opts.pty && !opts.hold) {
    auto b = StdioBridge::Prepare();
    if (!b) return b.error();
    bridge = std::move(*b);
  }

  UniqueFd pty_parent, pty_child;
  if (opts.pty) {
    if (auto made = SocketPair("pty", &pty_parent, &pty_child); !made) return made.error();
  }

  // Signals for ward itself arrive on a signalfd, to be forwarded.
  SignalRelay signals;
  if (!signals.fd().valid()) return SysError("signalfd", "SIGINT,SIGTERM,SIGHUP,SIGQUIT");

  ChildContext ctx{};
  ctx.plan = &plan;
  ctx.cgroup = &cgroup;
  ctx.report_fd = report_wr.get();
  ctx.parent_pidfd = self_pidfd.get();
  ctx.ruleset_fd = ruleset_fd;
  ctx.pty_slave = -1;
  ctx.pty_channel = pty_child.get();
  ctx.egress_channel = egress_child.get();
  ctx.connect_channel = connect_child.get();
  ctx.watch_channel = watch_child.get();
  ctx.exec_channel = exec_child.get();
  ctx.ids_ready = ids_rd.get();
  ctx.stdio = bridge ? &bridge->plan() : nullptr;
  ctx.trees = tree_fds.empty() ? nullptr : tree_fds.data();
  ctx.seccomp = &prog;
  ctx.seccomp_extra = &extra;
  ctx.seccomp_net = &net;
  ctx.argv = argv.data();
  ctx.envp = envp.data();

  clone_args args{};
  args.flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_PIDFD;
  if (plan.new_net) args.flags |= CLONE_NEWNET;
  int pidfd_raw = -1;
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd_raw);
  args.exit_signal = SIGCHLD;
  if (cgroup.v2_dir_fd >= 0) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = static_cast<uint64_t>(cgroup.v2_dir_fd);
  }
  const int64_t clone_ns = MonotonicNs();
  long pid = syscall(SYS_clone3, &args, sizeof args);
  if (pid < 0) {
    int err = errno;
    std::string flags = "CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWIPC|CLONE_NEWUTS";
    if (plan.new_net) flags += "|CLONE_NEWNET";
    if (cgroup.v2_dir_fd >= 0) flags += "|CLONE_INTO_CGROUP";
    return Error::Setup("clone3 " + flags + ": " + ErrnoName(err) +
                        (err == EPERM || err == ENOSPC ? " (are unprivileged user namespaces disabled? see `ward doctor`)" : ""));
  }
  if (pid == 0) {
    sigprocmask(SIG_SETMASK, &signals.old_mask(), nullptr);
    ChildMain(ctx);
  }
  UniqueFd pidfd(pidfd_raw);
  if (plan.host_uid) {
    ids_rd.Reset();
    Result<void> mapped = GiveIdentity(static_cast<pid_t>(pid), plan, ids_wr.get());
    if (!mapped) {
      // Nothing has run yet: the child still waits for its identity.
      SignalPidfd(pidfd.get(), SIGKILL);
      siginfo_t info{};
      waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd.get()), &info, WEXITED);
      return mapped.error();
    }
    ids_wr.Reset();
  }
  report_wr.Reset();
  pty_child.Reset();
  if (bridge) bridge->CloseChildEnds();
  egress_child.Reset();
  connect_child.Reset();
  watch_child.Reset();
  exec_child.Reset();
  out.phases.push_back({"clone", (clone_ns - opts.start_ns) / 1000.0});

  SupervisedInit init;
  init.pidfd = pidfd.get();
  init.report_fd = report_rd.get();
  init.signal_fd = signals.fd().get();
  init.start_ns = opts.start_ns;
  init.clone_ns = clone_ns;
  init.timeout_ms = plan.timeout_ms;
  init.kill_grace_ms = opts.kill_grace_ms;
  init.bridge = bridge ? &*bridge : nullptr;
  init.pty = opts.pty;
  init.watch_limits = {opts.watch_memory_bytes, opts.watch_pids};

  // The hand-overs, in the order init makes them.
  std::optional<Error> serve_error;
  if (plan.egress) {
    serve_error = ServeEgress(egress_parent.get(), pidfd.get(), opts);
    egress_parent.Reset();
  }
  if (opts.pty) {
    ReceivePty(pty_parent.get(), &init);
    pty_parent.Reset();
  }
  if (connect_parent.valid()) {
    std::optional<Error> failed = ServeConnectListener(connect_parent.get(), pidfd.get(), opts);
    if (failed && !serve_error) serve_error = std::move(failed);
    connect_parent.Reset();
  }
  if (watch_parent.valid()) {
    ReceiveMemoryWatch(watch_parent.get(), pidfd.get(), &init, &out);
    watch_parent.Reset();
  }

  if (opts.hold) {
    HeldInit held;
    held.pidfd = pidfd.get();
    held.report_fd = report_rd.get();
    held.exec_channel = exec_parent.get();
    held.signal_fd = signals.fd().get();
    held.clone_ns = clone_ns;
    held.watch = std::move(init.watch);
    held.watch_limits = init.watch_limits;
    auto report = opts.hold(held);
    if (!report) return report.error();
    if (report->have_error) return SetupFailure(report->setup_error, plan, exec_error);
    if (serve_error) return *serve_error;
    return out;
  }
  auto supervised = Supervise(init, &out);
  if (!supervised) return supervised.error();
  if (supervised->have_error) return SetupFailure(supervised->setup_error, plan, exec_error);
  if (serve_error) return *serve_error;
  out.exited = supervised->have_exit;
  return out;
}

}  // namespace ward
