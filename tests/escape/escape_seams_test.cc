// Escape tests for the seams between the path-based policy and the kernel
// objects it does not name (issue 8): inherited descriptors, device nodes,
// set-id bits, a root caller's identity, /proc entries about the host, mount
// API calls. Each asserts the outcome and its reason, with a positive
// control (the same action where the policy grants it, or the kernel
// answering outside ward). docs/security.md#seams names each invariant.
#include <termios.h>

#include "escape_fixture.h"

namespace {

// Its own suite name: gtest refuses one fixture name for two classes (each
// file has its own copy of Escape).
class Seams : public Escape {
 protected:
  // A policy ward refuses at start: exit 123, the JSON path and the reason
  // on stderr, and nothing left behind.
  void ExpectRefused(const json& policy, const std::string& why) {
    const std::string file = root_ + "/refused-" + std::to_string(refused_++) + ".json";
    WriteText(file, policy.dump());
    std::string before = ReadOr("/proc/self/mountinfo");
    Running r = Spawn({kWard, "run", "--policy", file, "--", "/bin/true"}, {ws_, -1, {}, {"PATH=/usr/bin:/bin"}});
    Outcome o = Finish(r, 20000);
    EXPECT_EQ(o.ExitStatus(), 123) << o.Describe();
    EXPECT_NE(o.err.find(why), std::string::npos) << o.Describe();
    EXPECT_NE(o.err.find("/filesystem/"), std::string::npos) << "the JSON path is named" << o.Describe();
    EXPECT_EQ(ReadOr("/proc/self/mountinfo"), before);
    EXPECT_TRUE(CgroupsOf(o.pid).empty());
  }
  int refused_ = 0;
};

// A terminal of the host's, as a caller's stdin/stdout would be: a pty
// pair, closed when it goes out of scope.
struct HostPty {
  int master = -1, slave = -1;
  HostPty() {
    master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0) {
      slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
    }
  }
  ~HostPty() {
    CloseSlave();
    if (master >= 0) close(master);
  }
  void CloseSlave() {
    if (slave >= 0) close(slave);
    slave = -1;
  }
};

std::string ModeOf(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return "<missing>";
  char m[8];
  snprintf(m, sizeof m, "%04o", st.st_mode & 07777);
  return m;
}

// A root caller's sandbox runs as an unprivileged host uid (uid 0 inside),
// its agent's own from WARD_UID_RANGE (default 1879048192:65536; BASE is
// the library's): stable for the agent, another for another agent. An
// unprivileged caller's runs as the caller, mapped to itself.
TEST_F(Seams, RootCallerRunsAsUnprivilegedHostUid) {
  RunOptions agent;
  agent.flags = {"--agent", "seams-uid"};
  Outcome o = RunWard(Standard(), {"uid-map"}, agent);
  EXPECT_PROBE(o, "ok");
  if (geteuid() == 0) {
    const std::string map = o.probe.Get("map");
    ASSERT_EQ(map.rfind("0,", 0), 0u) << o.Describe();
    const unsigned long long uid = std::strtoull(map.c_str() + 2, nullptr, 10);
    EXPECT_GT(uid, 1879048192ULL) << o.Describe();
    EXPECT_LT(uid, 1879048192ULL + 65536) << o.Describe();
    EXPECT_EQ(map, "0," + std::to_string(uid) + ",1") << o.Describe();
    Outcome again = RunWard(Standard(), {"uid-map"}, agent);
    EXPECT_EQ(again.probe.Get("map"), map) << "the same agent: the same uid\n" << again.Describe();
    RunOptions other;
    other.flags = {"--agent", "seams-uid-other"};
    Outcome b = RunWard(Standard(), {"uid-map"}, other);
    EXPECT_PROBE(b, "ok");
    EXPECT_NE(b.probe.Get("map"), map) << "another agent: another uid\n" << b.Describe();
    EXPECT_EQ(b.probe.Get("map").rfind("0,18790", 0), 0u) << b.Describe();
  } else {
    std::string u = std::to_string(getuid());
    EXPECT_EQ(o.probe.Get("map"), u + "," + u + ",1") << o.Describe();
  }
  // Control: outside, the probe reads the host's identity map.
  Outcome ctl = RunDirect({"uid-map"});
  EXPECT_PROBE(ctl, "ok");
  EXPECT_EQ(ctl.probe.Get("map"), "0,0,4294967295");
}

// Files written in a writable grant belong to the caller on the host.
TEST_F(Seams, WritableGrantFilesBelongToTheCaller) {
  Outcome o = RunWard(Standard(), {"write", W("rw/new.txt")});
  EXPECT_PROBE(o, "ok");
  struct stat st;
  ASSERT_EQ(stat(W("rw/new.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, getuid());
  EXPECT_EQ(st.st_gid, getgid());
}

// The review: `chmod 4777 /proc/self/fd/0 < victim` made a host file
// setuid-root and world-writable. An inherited descriptor on a host file is
// not a writable grant: its mode, owner and times stay as they were.
TEST_F(Seams, InheritedStdinHostFileUnchanged) {
  const std::string victim = root_ + "/victim.conf";
  WriteText(victim, "setting=1\n", 0644);
  for (std::vector<std::string> attack : std::vector<std::vector<std::string>>{
           {"fchmod-fd", "0", "4777"}, {"chmod", "/proc/self/fd/0", "0666"}, {"utime-fd", "0"},
           {"chown-fd", "0", "0"}, {"fchmod-fd", "0", "0600"}}) {
    int in = open(victim.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(in, 0);
    struct stat before;
    ASSERT_EQ(stat(victim.c_str(), &before), 0);
    Outcome o = RunWard(Standard(), attack, {.stdin_fd = in});
    close(in);
    // The reason: a root caller's sandbox is not the file's owner (EPERM,
    // or EACCES for times: neither owner nor writer); an unprivileged
    // caller's is, but its stdin is a pipe ward fills from the file, so the
    // call acts on the pipe and the file stays as it was.
    if (geteuid() == 0) {
      EXPECT_TRUE(o.Status() == "EPERM" || o.Status() == "EACCES") << attack[0] << " " << attack[1] << o.Describe();
    } else {
      // On the pipe: done ("ok"), or refused by pipefs or the id map.
      EXPECT_TRUE(o.Status() == "ok" || o.Status() == "EPERM" || o.Status() == "EINVAL") << attack[0] << o.Describe();
    }
    struct stat after;
    ASSERT_EQ(stat(victim.c_str(), &after), 0);
    EXPECT_EQ(ModeOf(victim), "0644") << attack[0];
    EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec) << attack[0];
    EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec) << attack[0];
  }
  // Control: the same call on a file the sandbox may write.
  WriteText(W("rw/mine"), "x\n", 0644);
  int mine = open(W("rw/mine").c_str(), O_RDONLY | O_CLOEXEC);
  Outcome ctl = RunWard(Standard(), {"chmod", W("rw/mine"), "0600"}, {.stdin_fd = mine});
  close(mine);
  EXPECT_PROBE(ctl, "ok");
  EXPECT_EQ(ModeOf(W("rw/mine")), "0600");
  // What the workload holds: a pipe, not the host file.
  int in0 = open(victim.c_str(), O_RDONLY | O_CLOEXEC);
  Outcome kind = RunWard(Standard(), {"fd-type", "0"}, {.stdin_fd = in0});
  close(in0);
  EXPECT_EQ(kind.probe.Get("type"), "fifo") << kind.Describe();
  // And the stdin content still reaches the workload.
  int in = open(victim.c_str(), O_RDONLY | O_CLOEXEC);
  Outcome rd = RunWard(Standard(), {"read-fd", "0"}, {.stdin_fd = in});
  close(in);
  EXPECT_PROBE(rd, "ok");
  EXPECT_EQ(rd.probe.Get("content"), "setting_1_") << rd.Describe();
}

// The review: `ward run -- chmod 0600 /dev/full` changed the host's node.
TEST_F(Seams, DeviceNodesAreReadOnlyMounts) {
  for (const char* dev : {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"}) {
    if (!Exists(dev)) continue;
    const std::string before = ModeOf(dev);
    Outcome o = RunWard(Standard(), {"chmod", dev, "0600"});
    EXPECT_TRUE(o.Status() == "EROFS" || o.Status() == "EPERM") << dev << o.Describe();
    EXPECT_EQ(ModeOf(dev), before) << dev << " changed on the host";
  }
  // Read-only mount, yet the devices work: writes to /dev/null succeed.
  Outcome w = RunWard(Standard(), {"open-write", "/dev/null"});
  EXPECT_PROBE(w, "ok");
  // Control: chmod reaches the kernel for a file the sandbox owns.
  Outcome ctl = RunWard(Standard(), {"chmod", "/tmp", "1777"});
  EXPECT_PROBE(ctl, "ok");
}

// The review: `cp /bin/bash rootbash; chmod 6755 rootbash` in a writable
// workspace left a setuid-root shell on the host.
TEST_F(Seams, SetuidAndSetgidBitsRefused) {
  WriteText(W("rw/tool"), "#!/bin/sh\n", 0755);
  for (const char* m : {"4755", "2755", "6755", "4000"}) {
    Outcome o = RunWard(Standard(), {"chmod", W("rw/tool"), m});
    EXPECT_PROBE(o, "EPERM") << m;
    Outcome f = RunWard(Standard(), {"fchmodat2", W("rw/tool"), m});
    EXPECT_PROBE(f, "EPERM") << m;
    Outcome c = RunWard(Standard(), {"create-mode", W(std::string("rw/new") + m), m});
    EXPECT_PROBE(c, "EPERM") << m;
    EXPECT_FALSE(Exists(W(std::string("rw/new") + m)));
    Outcome n = RunWard(Standard(), {"mknod-reg", W(std::string("rw/node") + m), m});
    EXPECT_PROBE(n, "EPERM") << m;
    Outcome t = RunWard(Standard(), {"tmpfile-mode", W("rw"), m});
    EXPECT_PROBE(t, "EPERM") << m;
  }
  EXPECT_EQ(ModeOf(W("rw/tool")), "0755");
  // openat2 carries its mode in memory the filter cannot read: ENOSYS, so
  // programs fall back to openat.
  Outcome o2 = RunWard(Standard(), {"openat2", W("public.txt")});
  EXPECT_PROBE(o2, "ENOSYS");
  // Controls: ordinary modes pass, inside; outside, set-id bits reach the
  // kernel (the caller's own file).
  Outcome ok = RunWard(Standard(), {"chmod", W("rw/tool"), "0700"});
  EXPECT_PROBE(ok, "ok");
  EXPECT_EQ(ModeOf(W("rw/tool")), "0700");
  Outcome mk = RunWard(Standard(), {"create-mode", W("rw/plain"), "0640"});
  EXPECT_PROBE(mk, "ok");
  Outcome outside = RunDirect({"chmod", W("rw/tool"), "4755"});
  EXPECT_PROBE(outside, "ok");
  EXPECT_EQ(ModeOf(W("rw/tool")), "4755");
  Outcome o2out = RunDirect({"openat2", W("public.txt")});
  EXPECT_PROBE(o2out, "ok");
}

// /proc entries about the host rather than the sandbox are masked.
TEST_F(Seams, ProcHostInformationMasked) {
  for (const char* f : {"/proc/keys", "/proc/timer_list", "/proc/slabinfo", "/proc/pagetypeinfo", "/proc/key-users",
                        "/proc/sched_debug", "/proc/vmallocinfo"}) {
    if (!Exists(f)) continue;
    Outcome o = RunWard(Standard(), {"read", f});
    EXPECT_PROBE(o, "EACCES") << f;
    Outcome st = RunWard(Standard(), {"stat", f});
    EXPECT_EQ(st.probe.Get("mode"), "0000") << f << st.Describe();
  }
  // Control: the sandbox's own /proc entries read.
  Outcome self = RunWard(Standard(), {"read", "/proc/self/status"});
  EXPECT_PROBE(self, "ok");
  // Control: outside, the same file is readable by this caller.
  Outcome ctl = RunDirect({"read", "/proc/timer_list"});
  if (geteuid() == 0) {
    EXPECT_PROBE(ctl, "ok");
  }
}

// The mount API calls of Linux 6.8+ are denied like the rest of the family.
TEST_F(Seams, NewMountApiCallsDenied) {
  for (const char* nr : {"457" /* statmount */, "458" /* listmount */, "467" /* open_tree_attr */}) {
    Outcome in = RunWard(Standard(), {"raw-syscall", nr});
    EXPECT_PROBE(in, "EPERM") << nr;
    // Control: outside, the kernel answers (bad pointers: EFAULT/EINVAL;
    // ENOSYS where the kernel predates the call).
    Outcome out = RunDirect({"raw-syscall", nr});
    EXPECT_NE(out.Status(), "EPERM") << nr << out.Describe();
  }
}

// The review: with deny ${WS}/config/secrets.json, `mv config config.old`
// moved the file out from under the rule. Every directory between a
// writable grant and a nested deny or read-only rule is a mount point for
// the run: it cannot be renamed or removed (EBUSY, EXDEV).
TEST_F(Seams, NestedRuleAncestorsCannotBeRenamed) {
  MakeDir(W("rw/config"));
  MakeDir(W("rw/config/deep"));
  WriteText(W("rw/config/deep/secrets.json"), secret_ + "\n");
  MakeDir(W("rw/other"));
  json p = Standard();
  p["filesystem"]["deny"].push_back(W("rw/config/deep/secrets.json"));
  for (const char* dir : {"rw/config", "rw/config/deep"}) {
    // The directory is a mount root now: EXDEV (another mount than the
    // target's parent) or EBUSY (a mount point) — never moved.
    Outcome o = RunWard(p, {"rename", W(dir), W("rw/moved")});
    EXPECT_TRUE(o.Status() == "EXDEV" || o.Status() == "EBUSY") << dir << o.Describe();
    EXPECT_TRUE(Exists(W(dir)));
  }
  Outcome rm = RunWard(p, {"unlink", W("rw/config/deep/secrets.json")});
  EXPECT_PROBE(rm, "EBUSY");
  Outcome rd = RunWard(p, {"read", W("rw/config/deep/secrets.json")});
  EXPECT_PROBE(rd, "EACCES");
  ExpectNoSecret(rd);
  // Control: a sibling directory with no rule beneath it moves.
  Outcome ctl = RunWard(p, {"rename", W("rw/other"), W("rw/other.moved")});
  EXPECT_PROBE(ctl, "ok");
  EXPECT_TRUE(Exists(W("rw/other.moved")));
  // The second review: a writable grant nested in another (write [W/rw,
  // W/rw/g], read-only W/rw/g/hooks) is on the chain too.
  MakeDir(W("rw/g"));
  MakeDir(W("rw/g/hooks"));
  json nested = Standard();
  nested["filesystem"]["write"].push_back(W("rw/g"));
  nested["filesystem"]["read"].push_back(W("rw/g/hooks"));
  Outcome g = RunWard(nested, {"rename", W("rw/g"), W("rw/g-old")});
  EXPECT_TRUE(g.Status() == "EXDEV" || g.Status() == "EBUSY") << g.Describe();
  EXPECT_TRUE(Exists(W("rw/g/hooks")));
  // Control: without the nested rule, the directory moves too.
  Outcome free_mv = RunWard(Standard(), {"rename", W("rw/config"), W("rw/config.moved")});
  EXPECT_PROBE(free_mv, "ok");
}


// The review: a run replaced ${WS}/a/docs by a symlink to /etc; the next run
// (same policy) read /etc through the grant.
TEST_F(Seams, GrantThroughPlantedSymlinkRefused) {
  MakeDir(W("rw/a"));
  ASSERT_EQ(symlink("/etc", W("rw/a/docs").c_str()), 0);
  json p = Standard();
  p["filesystem"]["read"].push_back(W("rw/a/docs"));
  ExpectRefused(p, "lies inside the writable grant");
  // Control: the same policy over a real directory runs.
  ASSERT_EQ(unlink(W("rw/a/docs").c_str()), 0);
  MakeDir(W("rw/a/docs"));
  Outcome ok = RunWard(p, {"ls", W("rw/a/docs")});
  EXPECT_PROBE(ok, "ok");
}

// The review: `ln notes.txt .env` made in one run exposed the denied file's
// later contents. A denied file with more than one name is refused.
TEST_F(Seams, DenyOnHardLinkedFileRefused) {
  ASSERT_EQ(link(W("rw/secret2.txt").c_str(), W("rw/notes.txt").c_str()), 0);
  ExpectRefused(Standard(), "hard links");
  // The second review: the same through a denied directory (a file in it
  // linked out, or a symlink in it leading out), refused as well.
  ASSERT_EQ(unlink(W("rw/notes.txt").c_str()), 0);
  MakeDir(W("rw/secrets"));
  WriteText(W("rw/secrets/token"), "t\n");
  ASSERT_EQ(link(W("rw/secrets/token").c_str(), W("rw/.t").c_str()), 0);
  json dir = Standard();
  dir["filesystem"]["deny"].push_back(W("rw/secrets"));
  ExpectRefused(dir, "hard links");
  ASSERT_EQ(unlink(W("rw/.t").c_str()), 0);
  ASSERT_EQ(symlink(W("rw/.k").c_str(), W("rw/secrets/key").c_str()), 0);
  ExpectRefused(dir, "leads out of the denied directory");
  ASSERT_EQ(unlink(W("rw/secrets/key").c_str()), 0);
  Outcome d = RunWard(dir, {"ls", W("rw/secrets")});
  EXPECT_PROBE(d, "EACCES");
  ASSERT_EQ(link(W("rw/secret2.txt").c_str(), W("rw/notes.txt").c_str()), 0);
  // Control: with a single name the policy runs and denies.
  ASSERT_EQ(unlink(W("rw/notes.txt").c_str()), 0);
  Outcome o = RunWard(Standard(), {"read", W("rw/secret2.txt")});
  EXPECT_PROBE(o, "EACCES");
}

// Netlink protocols other than routing and socket diagnostics are refused at
// socket() in network none and egress.
TEST_F(Seams, NetlinkProtocolsRefused) {
  json egress = Standard();
  egress["network"] = {{"egress", {{"default", "deny"}}}};
  for (const json& policy : {Standard(), egress}) {
    for (const char* proto : {"6" /* XFRM */, "9" /* AUDIT */, "12" /* NETFILTER */, "15" /* KOBJECT_UEVENT */,
                              "16" /* GENERIC */}) {
      Outcome o = RunWard(policy, {"netlink-proto", proto});
      EXPECT_PROBE(o, "EPROTONOSUPPORT") << proto << " network " << policy["network"].dump();
    }
    // Positive control: the two a program needs.
    EXPECT_PROBE(RunWard(policy, {"netlink-proto", "0"}), "ok");
    EXPECT_PROBE(RunWard(policy, {"netlink-proto", "4"}), "ok");
  }
  // Control: outside, the kernel creates them.
  for (const char* proto : {"12", "15", "16"}) EXPECT_PROBE(RunDirect({"netlink-proto", proto}), "ok") << proto;
}

// The review: with memoryMiB 64 and no usable cgroup, 1 GiB each went into
// /tmp and /dev/shm. Every writable tmpfs has a size.
TEST_F(Seams, TmpfsIsBounded) {
  json p = Standard();
  p["limits"] = {{"tmpfsMiB", 8}};
  for (const char* dir : {"/tmp", "/dev/shm"}) {
    Outcome big = RunWard(p, {"write-big", std::string(dir) + "/big", "16"});
    EXPECT_PROBE(big, "ENOSPC") << dir;
    Outcome ok = RunWard(p, {"write-big", std::string(dir) + "/small", "4"});
    EXPECT_PROBE(ok, "ok") << dir;
  }
  // The second review: System V shared memory (the IPC namespace's own
  // tmpfs) is bounded the same way.
  // tmpfs) is bounded the same way for a root caller, whose sandbox has the
  // namespace's uid 0 that may set shmall; an unprivileged caller's is not
  // (documented: a memory cgroup counts it where there is one).
  if (geteuid() == 0) {
    Outcome shm = RunWard(p, {"shm-fill", "3"});
    EXPECT_PROBE(shm, "ENOSPC");
    EXPECT_EQ(shm.probe.Get("made"), "1") << shm.Describe();
    Outcome shm_ctl = RunDirect({"shm-fill", "3"});
    EXPECT_PROBE(shm_ctl, "ok");
  }
  // The default follows memoryMiB: all of it where a memory cgroup counts
  // tmpfs pages, half of it where none does.
  json m = Standard();
  m["limits"] = {{"memoryMiB", 64}};
  const bool cgroup = IsCgroup(DoctorMechanism("memory"));
  Outcome over = RunWard(m, {"write-big", "/tmp/big", cgroup ? "80" : "40"});
  if (cgroup) {
    // The cgroup counts the pages: the memory limit ends it first.
    EXPECT_TRUE(over.Status() == "ENOSPC" || (over.ExitStatus() == 137 && over.HasLimit("memory"))) << over.Describe();
  } else {
    EXPECT_PROBE(over, "ENOSPC") << DoctorMechanism("memory");
  }
  Outcome under = RunWard(m, {"write-big", "/tmp/small", "16"});
  EXPECT_PROBE(under, "ok");
  // Control: without a bound from the policy, 40 MiB fit.
  Outcome ctl = RunWard(Standard(), {"write-big", "/tmp/big", "40"});
  EXPECT_PROBE(ctl, "ok");
}

// The second review: a caller's terminal that stops reading (a full pty,
// ^S) held ward inside write(); neither timeoutMs nor signals ended the run.
// ward writes to its own non-blocking copy of the caller's descriptor.
TEST_F(Seams, StalledTerminalDoesNotHoldTheTimeout) {
  for (bool xoff : {false, true}) {
    for (bool use_pty : {false, true}) {
      HostPty tty;
      ASSERT_GE(tty.slave, 0);
      if (xoff) {
        ASSERT_EQ(write(tty.master, "\x13", 1), 1);  // ^S: output stopped
      }
      json p = Standard();
      p["process"] = {{"timeoutMs", 1000}};
      const std::string file = root_ + "/stall.json";
      WriteText(file, p.dump());
      std::vector<std::string> argv = {kWard, "run", "--policy", file};
      if (use_pty) argv.push_back("--pty");
      argv.insert(argv.end(), {"--", kProbe, "flood-stdout"});
      const int64_t start = NowMs();
      pid_t pid = fork();
      if (pid == 0) {
        if (chdir(ws_.c_str()) != 0) _exit(121);
        dup2(tty.slave, 0);
        dup2(tty.slave, 1);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);
        std::vector<char*> av;
        for (auto& a : argv) av.push_back(a.data());
        av.push_back(nullptr);
        execv(av[0], av.data());
        _exit(120);
      }
      tty.CloseSlave();
      int st = 0;
      bool exited = WaitFor([&] { return waitpid(pid, &st, WNOHANG) == pid; }, 8000);
      if (!exited) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
      }
      EXPECT_TRUE(exited) << "ward hung on a stalled terminal (xoff " << xoff << ", pty " << use_pty << ")";
      EXPECT_EQ(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 124) << "xoff " << xoff << ", pty " << use_pty;
      EXPECT_LT(NowMs() - start, 5000);
    }
  }
}

// The second review: the workload opened the FIFO that was also ward's
// stdin and took the bytes poll() had announced; ward's read() blocked
// for ever. ward reads its own non-blocking copy.
TEST_F(Seams, StdinFifoRaceDoesNotHoldTheTimeout) {
  const std::string fifo = W("rw/in.fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  int keep = open(fifo.c_str(), O_RDWR | O_CLOEXEC);  // a writer that never ends
  int in = open(fifo.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(in, 0);
  json p = Standard();
  p["process"] = {{"timeoutMs", 1000}};
  const int64_t start = NowMs();
  Outcome o = RunWard(p, {"steal-fifo", fifo, "10000"}, {.stdin_fd = in, .timeout_ms = 8000});
  close(in);
  close(keep);
  EXPECT_EQ(o.ExitStatus(), 124) << o.Describe();
  EXPECT_TRUE(o.result.value("timedOut", false));
  EXPECT_LT(NowMs() - start, 5000);
}

// The second review: an O_PATH descriptor of a socket file passed as
// anonymous (fstat says socket), and fchmodat2(fd, "", AT_EMPTY_PATH)
// changed the host file. Only a socket on sockfs passes through.
TEST_F(Seams, OPathSocketFileOnStdioIsBridged) {
  const std::string path = root_ + "/host.sock";
  int srv = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  ASSERT_EQ(bind(srv, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  chmod(path.c_str(), 0600);
  int opath = open(path.c_str(), O_PATH | O_CLOEXEC);
  ASSERT_GE(opath, 0);
  Outcome o = RunWard(Standard(), {"fchmod-empty", "0", "0777"}, {.stdin_fd = opath});
  close(opath);
  EXPECT_EQ(ModeOf(path), "0600") << o.Describe();
  // What the workload holds is ward's pipe.
  int opath2 = open(path.c_str(), O_PATH | O_CLOEXEC);
  Outcome kind = RunWard(Standard(), {"fd-type", "0"}, {.stdin_fd = opath2});
  close(opath2);
  EXPECT_EQ(kind.probe.Get("type"), "chr") << "the sandbox's /dev/null, not the socket" << kind.Describe();
  close(srv);
  // Control: a connected socket (sockfs) passes through as it is.
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  Outcome sock = RunWard(Standard(), {"fd-type", "0"}, {.stdin_fd = sv[0]});
  close(sv[0]);
  close(sv[1]);
  EXPECT_EQ(sock.probe.Get("type"), "sock") << sock.Describe();
}

// The second review: with --pty the workload's terminal was a node of the
// host's devpts that an unprivileged caller's workload owned (chmod 666
// opened it to every user). The terminal now comes from the sandbox's own
// devpts instance.
TEST_F(Seams, PtyComesFromTheSandboxsDevpts) {
  HostPty tty;
  ASSERT_GE(tty.slave, 0);
  Outcome o = RunWard(Standard(), {"fd-path", "0"}, {.flags = {"--pty"}, .stdin_fd = tty.slave});
  // The sandbox's first pty; the host's are numbered from 0 too, but the
  // test holds one, so ward's own would not be /dev/pts/0 on the host.
  EXPECT_NE(o.out.find("path=/dev/pts/0"), std::string::npos) << o.Describe();
}

// The second review: with stdin closed, the landlock ruleset took fd 0 and
// was handed to the bridge. ward fills closed stdio with /dev/null.
TEST_F(Seams, ClosedStdioIsFilled) {
  const std::string file = root_ + "/closed.json";
  WriteText(file, Standard().dump());
  for (const char* redirect : {"<&-", ">&-", "2>&-"}) {
    std::string cmd = "exec '" + kWard + "' run --policy '" + file + "' -- '" + kProbe + "' fd-type 0 " + redirect;
    Running r = Spawn({"/bin/sh", "-c", cmd}, {ws_, -1, {}, Env()});
    Outcome o = Finish(r, 20000);
    EXPECT_EQ(o.ExitStatus(), 0) << redirect << o.Describe();
  }
}

// The review: without --pty, `stty -echo -icanon -isig` in the workload
// outlived the sandbox. A terminal is never passed through raw: the
// workload's stdin is a pipe, and the caller's terminal keeps its settings.
TEST_F(Seams, TerminalSettingsCannotOutliveTheRun) {
  HostPty tty;
  ASSERT_GE(tty.slave, 0);
  const int slave = tty.slave;
  termios before;
  ASSERT_EQ(tcgetattr(slave, &before), 0);
  Outcome o = RunWard(Standard(), {"stty-raw", "0"}, {.stdin_fd = slave});
  EXPECT_PROBE(o, "ENOTTY");
  EXPECT_EQ(o.probe.Get("step"), "tcgetattr");
  termios after;
  ASSERT_EQ(tcgetattr(slave, &after), 0);
  EXPECT_EQ(after.c_lflag, before.c_lflag);
  EXPECT_EQ(after.c_iflag, before.c_iflag);
  // Control: outside ward the same call changes the terminal.
  Running r = Spawn({kProbe, "stty-raw", "0"}, {ws_, slave, {}, Env()});
  Outcome ctl = Finish(r, 10000);
  EXPECT_PROBE(ctl, "ok");
  termios changed;
  ASSERT_EQ(tcgetattr(slave, &changed), 0);
  EXPECT_NE(changed.c_lflag, before.c_lflag);
}

// A regular file on stdin is read ahead by ward (through its own file
// description); the caller's offset moves by what the workload consumed, so
// `while read f; do ward run ...; done < list` keeps its lines.
TEST_F(Seams, StdinFileOffsetFollowsWhatTheWorkloadRead) {
  WriteText(root_ + "/list", "first\nsecond\nthird\n");
  int in = open((root_ + "/list").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(in, 0);
  Outcome none = RunWard(Standard(), {"exit", "0"}, {.stdin_fd = in});
  EXPECT_EQ(none.ExitStatus(), 0) << none.Describe();
  EXPECT_EQ(lseek(in, 0, SEEK_CUR), 0) << "ward consumed stdin the workload never read";
  ASSERT_EQ(lseek(in, 6, SEEK_SET), 6);
  Outcome some = RunWard(Standard(), {"read-fd", "0"}, {.stdin_fd = in});
  EXPECT_PROBE(some, "ok");
  EXPECT_EQ(some.probe.Get("content"), "second_third_") << some.Describe();
  EXPECT_EQ(lseek(in, 0, SEEK_CUR), 19);
  close(in);
}

// The second review: ward reopened a write-only stdin for reading (`cat
// 0>>log` printed the log). The workload gets no more than the caller's
// descriptor allows.
TEST_F(Seams, StdioKeepsTheCallersAccessMode) {
  WriteText(root_ + "/log", "PRIVATE-LOG-LINE\n");
  int wo = open((root_ + "/log").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  ASSERT_GE(wo, 0);
  Outcome o = RunWard(Standard(), {"read-fd", "0"}, {.stdin_fd = wo});
  close(wo);
  EXPECT_PROBE(o, "EBADF");
  EXPECT_EQ(o.out.find("PRIVATE-LOG-LINE"), std::string::npos) << o.Describe();
  // Control: a readable stdin reads.
  int rd = open((root_ + "/log").c_str(), O_RDONLY | O_CLOEXEC);
  Outcome ok = RunWard(Standard(), {"read-fd", "0"}, {.stdin_fd = rd});
  close(rd);
  EXPECT_PROBE(ok, "ok");
  EXPECT_EQ(ok.probe.Get("content"), "PRIVATE-LOG-LINE_");
}

}  // namespace
