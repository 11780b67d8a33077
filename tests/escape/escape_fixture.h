// The escape suite's shared fixture: host-side helpers, running ward and the
// probe, and the Escape fixture with its per-test workspace. Included by
// each escape_*.cc file (one ctest binary).
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using json = nlohmann::json;

const std::string kWard = WARD_BIN;
const std::string kProbe = WARD_ESCAPE_PROBE;
const std::string kWorkBase = WARD_ESCAPE_WORK;
// --ward-via=exec: RunWard runs the probe by `ward exec` in a held sandbox
// (provision, start, exec, deprovision) instead of `ward run`.
inline bool g_via_exec = false;

// --- small host-side helpers ---------------------------------------------

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

void SleepMs(int ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

std::string Dirname(const std::string& p) { return p.substr(0, p.rfind('/')); }

bool ReadText(const std::string& path, std::string* out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out->clear();
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out->append(buf, static_cast<size_t>(n));
  close(fd);
  return n == 0;
}

std::string ReadOr(const std::string& path, const std::string& fallback = "<unreadable>") {
  std::string s;
  return ReadText(path, &s) ? s : fallback;
}

void WriteText(const std::string& path, const std::string& text, mode_t mode = 0644) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  ASSERT_GE(fd, 0) << "open " << path << ": " << strerror(errno);
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  fchmod(fd, mode);
  close(fd);
}

void MakeDir(const std::string& path, mode_t mode = 0755) {
  ASSERT_TRUE(mkdir(path.c_str(), mode) == 0 || errno == EEXIST) << "mkdir " << path << ": " << strerror(errno);
  chmod(path.c_str(), mode);
}

void RemoveTree(const std::string& path) {
  nftw(
      path.c_str(),
      [](const char* p, const struct stat*, int type, FTW*) {
        if (type == FTW_DP || type == FTW_D) rmdir(p);
        else unlink(p);
        return 0;
      },
      16, FTW_DEPTH | FTW_PHYS);
}

[[maybe_unused]] bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// Host pids of processes whose argv is exactly `escape_probe sleeper MARKER`
// (the orphans the probe leaves behind). ward's own command line mentions
// the marker too, so matching argv[1] and argv[2] exactly matters.
std::vector<pid_t> SleepersWithMarker(const std::string& marker) {
  std::vector<pid_t> found;
  DIR* d = opendir("/proc");
  if (!d) return found;
  while (dirent* e = readdir(d)) {
    char* end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end || pid <= 0) continue;
    std::string cmdline;
    if (!ReadText("/proc/" + std::string(e->d_name) + "/cmdline", &cmdline)) continue;
    std::vector<std::string> args;
    std::stringstream ss(cmdline);
    std::string a;
    while (std::getline(ss, a, '\0')) args.push_back(a);
    if (args.size() >= 3 && args[1] == "sleeper" && args[2] == marker) found.push_back(static_cast<pid_t>(pid));
  }
  closedir(d);
  return found;
}

// Polls until `pred` holds or `ms` elapse.
template <typename F>
bool WaitFor(F pred, int ms) {
  int64_t end = NowMs() + ms;
  while (!pred()) {
    if (NowMs() > end) return false;
    SleepMs(10);
  }
  return true;
}

// Cgroup directories named after one ward process (ward names them
// "ward-<pid>-<n>"), anywhere under /sys/fs/cgroup.
std::vector<std::string> CgroupsOf(pid_t ward_pid) {
  static thread_local std::vector<std::string>* out = nullptr;
  static thread_local std::string prefix;
  std::vector<std::string> found;
  out = &found;
  prefix = "ward-" + std::to_string(ward_pid) + "-";
  nftw(
      "/sys/fs/cgroup",
      [](const char* p, const struct stat*, int type, FTW* ftw) {
        if (type == FTW_D && std::strncmp(p + ftw->base, prefix.c_str(), prefix.size()) == 0) out->push_back(p);
        return 0;
      },
      16, FTW_PHYS);
  out = nullptr;
  return found;
}

// --- running things --------------------------------------------------------

// The probe's answer: `RESULT ok k=v ...` or `RESULT errno=ENAME k=v ...`.
struct ProbeResult {
  bool present = false;
  std::string status;  // "ok" or the errno name
  std::map<std::string, std::string> kv;
  std::string Get(const std::string& k) const {
    auto it = kv.find(k);
    return it == kv.end() ? "<absent>" : it->second;
  }
};

ProbeResult ParseResult(const std::string& out) {
  ProbeResult r;
  std::stringstream ss(out);
  std::string line;
  while (std::getline(ss, line)) {
    if (line.rfind("RESULT ", 0) != 0) continue;
    r = ProbeResult{};
    r.present = true;
    std::stringstream ls(line.substr(7));
    std::string tok;
    bool first = true;
    while (ls >> tok) {
      auto eq = tok.find('=');
      if (first) {
        r.status = tok == "ok" ? "ok" : (eq != std::string::npos ? tok.substr(eq + 1) : tok);
        first = false;
        continue;
      }
      if (eq != std::string::npos) r.kv[tok.substr(0, eq)] = tok.substr(eq + 1);
    }
  }
  return r;
}

struct Outcome {
  int wait_status = 0;
  bool host_timeout = false;  // the test itself had to kill the process
  pid_t pid = 0;
  std::string out, err;
  json result = nullptr;  // ward's --json line (null when absent)
  ProbeResult probe;
  int64_t ms = 0;

  int ExitStatus() const {
    return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
  }
  // Probe status ("ok", an errno name) or "<no RESULT, exit N>".
  std::string Status() const {
    return probe.present ? probe.status : "<no RESULT, exit " + std::to_string(ExitStatus()) + ">";
  }
  std::string Describe() const {
    return "\n--- exit " + std::to_string(ExitStatus()) + (host_timeout ? " (killed by the test: hung)" : "") +
           "\n--- stdout:\n" + out + "--- stderr:\n" + err;
  }
  std::vector<std::string> LimitsHit() const {
    std::vector<std::string> v;
    if (result.is_object() && result.contains("limitsHit")) {
      for (const auto& x : result["limitsHit"]) v.push_back(x.get<std::string>());
    }
    return v;
  }
  bool HasLimit(const std::string& l) const {
    auto v = LimitsHit();
    return std::find(v.begin(), v.end(), l) != v.end();
  }
};

struct SpawnOptions {
  std::string cwd;
  int stdin_fd = -1;                      // default /dev/null
  std::vector<std::pair<int, int>> leak;  // (our fd, fd number in the child), without O_CLOEXEC
  std::vector<std::string> env;
};

struct Running {
  pid_t pid = -1;
  int out = -1, err = -1;
  int64_t start = 0;
};

Running Spawn(const std::vector<std::string>& argv, const SpawnOptions& o) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) abort();
  std::vector<char*> av, ev;
  for (const auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  for (const auto& e : o.env) ev.push_back(const_cast<char*>(e.c_str()));
  ev.push_back(nullptr);
  Running r;
  r.start = NowMs();
  r.pid = fork();
  if (r.pid == 0) {
    int in = o.stdin_fd >= 0 ? o.stdin_fd : open("/dev/null", O_RDONLY | O_CLOEXEC);
    dup2(in, 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    for (auto [from, to] : o.leak) {
      if (from == to) fcntl(from, F_SETFD, 0);
      else dup2(from, to);  // dup2 leaves the copy without FD_CLOEXEC
    }
    if (!o.cwd.empty() && chdir(o.cwd.c_str()) != 0) _exit(121);
    // A fresh process group: the test can signal ward alone, and ward's
    // forwarding never reaches the test.
    setpgid(0, 0);
    execve(av[0], av.data(), ev.data());
    _exit(120);
  }
  close(out[1]);
  close(err[1]);
  r.out = out[0];
  r.err = err[0];
  fcntl(r.out, F_SETFL, O_NONBLOCK);
  fcntl(r.err, F_SETFL, O_NONBLOCK);
  return r;
}

// Collects output until the process exits (then at most 500 ms more: an
// orphan that escaped could hold the pipes open forever), killing it after
// `timeout_ms`.
Outcome Finish(Running& r, int timeout_ms) {
  Outcome o;
  o.pid = r.pid;
  bool exited = false;
  int64_t exit_at = 0;
  bool out_open = true, err_open = true;
  auto drain = [](int fd, std::string& s, bool& open_flag) {
    char buf[8192];
    for (;;) {
      ssize_t n = read(fd, buf, sizeof buf);
      if (n > 0) {
        s.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0) open_flag = false;
      return;
    }
  };
  for (;;) {
    pollfd fds[2] = {{out_open ? r.out : -1, POLLIN, 0}, {err_open ? r.err : -1, POLLIN, 0}};
    poll(fds, 2, 20);
    if (out_open) drain(r.out, o.out, out_open);
    if (err_open) drain(r.err, o.err, err_open);
    if (!exited) {
      int st;
      if (waitpid(r.pid, &st, WNOHANG) == r.pid) {
        exited = true;
        exit_at = NowMs();
        o.wait_status = st;
        o.ms = exit_at - r.start;
      } else if (NowMs() - r.start > timeout_ms) {
        o.host_timeout = true;
        kill(r.pid, SIGKILL);
      }
    }
    if (exited && ((!out_open && !err_open) || NowMs() - exit_at > 500)) break;
  }
  close(r.out);
  close(r.err);
  // ward's --json result is the last line of stderr.
  std::string err = o.err;
  while (!err.empty() && err.back() == '\n') err.pop_back();
  std::string last = err.substr(err.rfind('\n') == std::string::npos ? 0 : err.rfind('\n') + 1);
  if (!last.empty() && last[0] == '{') o.result = json::parse(last, nullptr, false);
  if (o.result.is_discarded()) o.result = nullptr;
  o.probe = ParseResult(o.out);
  return o;
}

// The mechanism `ward doctor` reports for a limit: "cgroup-v2",
// "cgroup-v1", "rlimit" or "unavailable".
[[maybe_unused]] std::string DoctorMechanism(const std::string& limit) {
  static std::map<std::string, std::string> cache;
  if (cache.empty()) {
    Running r = Spawn({kWard, "doctor", "--json"}, {"/", -1, {}, {"PATH=/usr/bin:/bin"}});
    Outcome o = Finish(r, 10000);
    json j = json::parse(o.out, nullptr, false);
    if (j.is_array()) {
      for (const auto& c : j) {
        std::string name = c.value("check", "");
        auto colon = name.find(": ");
        if (name.rfind("limits.", 0) == 0 && colon != std::string::npos) {
          // "limits.memoryMiB: cgroup-v1" -> cache["memory"] = "cgroup-v1"
          std::string field = name.substr(7, colon - 7);
          if (field == "memoryMiB") field = "memory";
          cache[field] = name.substr(colon + 2);
        }
      }
    }
  }
  return cache.count(limit) ? cache[limit] : "<ward doctor did not say>";
}

[[maybe_unused]] bool IsCgroup(const std::string& mechanism) { return mechanism.rfind("cgroup", 0) == 0; }

// A listening TCP socket on the host's 127.0.0.1 (a free port, returned in
// `port`), or -1.
[[maybe_unused]] int ListenOnHostLoopback(std::string* port) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (s < 0 || bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(s, 16) != 0 ||
      getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (s >= 0) close(s);
    return -1;
  }
  *port = std::to_string(ntohs(a.sin_port));
  return s;
}

// A host server on listening socket `fd`: says HELLO-FROM-HOST to each
// connection and counts them; closes `fd` when it goes out of scope.
class HostListener {
 public:
  explicit HostListener(int fd) : fd_(fd), thread_([this] { Loop(); }) {}
  int accepted() const { return accepted_; }
  ~HostListener() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }

 private:
  void Loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      ++accepted_;
      (void)!write(c, "HELLO-FROM-HOST", 15);
      close(c);
    }
  }
  int fd_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

// True once `pid` has exited (a zombie counts: it has ended; reaping it is
// its parent's job), polling for up to `ms`.
inline bool ProcessEnds(pid_t pid, int ms) {
  for (int waited = 0;; waited += 10) {
    std::string stat = ReadOr("/proc/" + std::to_string(pid) + "/stat", "");
    size_t close = stat.rfind(')');
    if (stat.empty() || (close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z')) return true;
    if (waited >= ms) return false;
    usleep(10000);
  }
}

// --- the fixture -------------------------------------------------------------

struct RunOptions {
  std::vector<std::string> flags;  // extra `ward run` flags
  int stdin_fd = -1;               // default /dev/null
  std::vector<std::pair<int, int>> leak;  // (our fd, fd number in ward), without O_CLOEXEC
  int timeout_ms = 20000;
};

// A fresh workspace per test:
//   R/                 the test's own directory (not granted to the sandbox)
//   R/outside.txt      a host file in no grant
//   R/ws/              W: the workspace, granted read-only by default
//   W/public.txt       readable
//   W/secret.txt       denied by most policies
//   W/secretdir/inner.txt  a denied directory
//   W/rw/              granted writable where a test needs it
//   W/rw/pub.txt       readable and writable
//   W/rw/secret2.txt   a denied file inside the writable directory
class Escape : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    // Shared by root and the unprivileged run: sticky and world-writable,
    // like /tmp. (Not under /tmp: the sandbox has a private /tmp.)
    mkdir(kWorkBase.c_str(), 01777);
    chmod(kWorkBase.c_str(), 01777);
    const std::string tag = std::to_string(getuid()) + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
    root_ = kWorkBase + "/" + tag;
    RemoveTree(root_);
    MakeDir(root_, 0755);
    ws_ = root_ + "/ws";
    MakeDir(ws_);
    MakeDir(ws_ + "/rw");
    MakeDir(ws_ + "/secretdir");
    if (g_via_exec) MakeDir(root_ + "/rt", 0700);
    secret_ = "WARD-SECRET-" + tag + "-" + std::to_string(NowMs());
    WriteText(root_ + "/outside.txt", "OUTSIDE-" + secret_ + "\n");
    WriteText(ws_ + "/public.txt", "PUBLIC-CONTENT\n");
    WriteText(ws_ + "/secret.txt", secret_ + "\n");
    WriteText(ws_ + "/secretdir/inner.txt", secret_ + "\n");
    WriteText(ws_ + "/rw/pub.txt", "RW-PUBLIC\n");
    WriteText(ws_ + "/rw/secret2.txt", secret_ + "\n");
    marker_ = "ward-escape-marker-" + tag + "-" + std::to_string(NowMs());
  }

  void TearDown() override {
    // A held sandbox a failed assertion left running goes first (as the
    // test user, with its runtime directory).
    if (g_via_exec && !held_.empty()) {
      Running r = Spawn({kWard, "deprovision", "--grace-ms", "200", held_}, {ws_, -1, {}, Env()});
      (void)Finish(r, 10000);
    }
    // Never leave a sleeper behind, whatever the outcome.
    for (pid_t p : SleepersWithMarker(marker_)) kill(p, SIGKILL);
    if (!HasFailure()) RemoveTree(root_);
    else std::fprintf(stderr, "[ kept    ] %s\n", root_.c_str());
  }

  std::string W(const std::string& rel = "") const { return rel.empty() ? ws_ : ws_ + "/" + rel; }

  // Reads W and the probe's directory; nothing else beyond the system
  // baseline.
  json Base() const {
    return json{{"ward", 1}, {"filesystem", {{"read", {ws_, Dirname(kProbe)}}}}};
  }
  json WithDeny(json p) const {
    p["filesystem"]["deny"] = {W("secret.txt"), W("secretdir"), W("rw/secret2.txt")};
    return p;
  }
  json WithRw(json p) const {
    p["filesystem"]["write"] = {W("rw")};
    return p;
  }
  // The policy most filesystem tests use: read W, write W/rw, deny secrets.
  json Standard() const { return WithDeny(WithRw(Base())); }
  // Standard() in egress mode, allowing only the host's loopback `port`.
  json HostLoopbackRule(const std::string& port) const {
    json p = Standard();
    p["network"] = {{"egress", {{"allow", {"host.ward.internal:" + port}}}}};
    return p;
  }
  // Standard() with the host's network (the positive controls).
  json HostNetwork() const {
    json p = Standard();
    p["network"] = "host";
    return p;
  }

  std::vector<std::string> Env() const {
    const char* home = getenv("HOME");
    passwd* pw = getpwuid(getuid());
    std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin",
            std::string("HOME=") + (home ? home : pw ? pw->pw_dir : "/"),
            std::string("USER=") + (pw ? pw->pw_name : "nobody"),
            "LANG=C.UTF-8",
            "WARD_ESCAPE_SECRET=leak-me-" + secret_,
            "WARD_ESCAPE_INHERITED=inherited-value"};
    // --ward-via=exec: the held sandboxes' store is the test's own.
    if (g_via_exec) env.push_back("WARD_RUNTIME_DIR=" + root_ + "/rt");
    return env;
  }

  Running StartWard(const json& policy, const std::vector<std::string>& probe_args, const RunOptions& o = {}) {
    const std::string file = root_ + "/policy-" + std::to_string(policies_++) + ".json";
    WriteText(file, policy.dump(2));
    if (g_via_exec) return StartHeld(file, probe_args, o);
    std::vector<std::string> argv = {kWard, "run", "--policy", file, "--json"};
    argv.insert(argv.end(), o.flags.begin(), o.flags.end());
    argv.push_back("--");
    argv.push_back(kProbe);
    argv.insert(argv.end(), probe_args.begin(), probe_args.end());
    mountinfo_before_ = ReadOr("/proc/self/mountinfo");
    return Spawn(argv, {ws_, o.stdin_fd, o.leak, Env()});
  }

  // --ward-via=exec: the policy becomes a held sandbox (provision, start)
  // and the probe runs in it by `ward exec`; FinishWard deprovisions it.
  // The policy flags go to provision, --pty to exec; a flag only `ward run`
  // has skips the test, saying which.
  Running StartHeld(const std::string& file, const std::vector<std::string>& probe_args, const RunOptions& o) {
    mountinfo_before_ = ReadOr("/proc/self/mountinfo");
    held_ = "t";
    held_ += std::to_string(policies_);  // (not `"t" + ...`: g++ 12 -Wrestrict false positive)
    std::vector<std::string> prov = {"provision", "--policy", file, "--name", held_};
    std::vector<std::string> exec = {kWard, "exec", held_, "--json"};
    for (const std::string& f : o.flags) {
      if (f == "--pty") exec.push_back(f);
      else if (f == "--strict") ADD_FAILURE() << "--strict is `ward run`'s only";
      else prov.push_back(f);
    }
    held_refused_.reset();
    Outcome p = Ward(prov);
    if (p.ExitStatus() != 0) {
      // Refused at provision (as `ward run` refuses before it starts):
      // that is the outcome; nothing runs.
      held_refused_ = p;
      held_.clear();
      return Spawn({"/bin/true"}, {ws_, -1, {}, Env()});
    }
    Outcome st = Ward({"start", held_});
    EXPECT_EQ(st.ExitStatus(), 0) << "ward start" << st.Describe();
    Outcome ls = Ward({"ls", "--json"});
    json list = json::parse(ls.out, nullptr, false);
    held_supervisor_ = 0;
    if (list.is_array()) {
      for (const auto& e : list) {
        if (e.value("name", "") == held_) held_supervisor_ = e.value("supervisorPid", 0);
      }
    }
    EXPECT_GT(held_supervisor_, 0) << "no supervisor for " << held_ << ": " << ls.out;
    exec.push_back("--");
    exec.push_back(kProbe);
    exec.insert(exec.end(), probe_args.begin(), probe_args.end());
    return Spawn(exec, {ws_, o.stdin_fd, o.leak, Env()});
  }

  // The process that holds the sandbox: ward itself for `ward run`, the
  // held sandbox's supervisor under --ward-via=exec.
  pid_t SupervisorOf(const Running& r) const { return g_via_exec ? held_supervisor_ : r.pid; }

  // Waits for ward and checks what it left behind.
  Outcome FinishWard(Running& r, int timeout_ms = 20000) {
    Outcome o = Finish(r, timeout_ms);
    if (g_via_exec && held_refused_) {
      EXPECT_EQ(ReadOr("/proc/self/mountinfo"), mountinfo_before_) << "the host's mount table changed";
      return *held_refused_;
    }
    EXPECT_FALSE(o.host_timeout) << "ward did not return" << o.Describe();
    EXPECT_TRUE(o.result.is_object()) << "no --json result on the last line of stderr" << o.Describe();
    pid_t owner = o.pid;
    if (g_via_exec) {
      Outcome d = Ward({"deprovision", "--grace-ms", "500", held_});
      EXPECT_EQ(d.ExitStatus(), 0) << "ward deprovision" << d.Describe();
      held_.clear();
      owner = held_supervisor_;
      EXPECT_TRUE(ProcessEnds(owner, 15000)) << "supervisor " << owner << " outlived deprovision";
    }
    EXPECT_EQ(ReadOr("/proc/self/mountinfo"), mountinfo_before_) << "the host's mount table changed";
    // The cgroups are removed before ward exits (the supervisor, held).
    auto left = CgroupsOf(owner);
    EXPECT_TRUE(left.empty()) << "leftover cgroup " << (left.empty() ? "" : left[0]) << " of ward pid " << owner;
    return o;
  }

  Outcome RunWard(const json& policy, const std::vector<std::string>& probe_args, const RunOptions& o = {}) {
    Running r = StartWard(policy, probe_args, o);
    return FinishWard(r, o.timeout_ms);
  }

  // ward with `args` as its whole command line (from W, with Env(), unless
  // `o` says otherwise).
  Outcome Ward(const std::vector<std::string>& args, const SpawnOptions& o = {}) {
    std::vector<std::string> argv = {kWard};
    argv.insert(argv.end(), args.begin(), args.end());
    SpawnOptions opts = o;
    if (opts.cwd.empty()) opts.cwd = ws_;
    if (opts.env.empty()) opts.env = Env();
    Running r = Spawn(argv, opts);
    return Finish(r, 20000);
  }

  // The positive control for system calls: the probe run directly.
  Outcome RunDirect(const std::vector<std::string>& probe_args) {
    std::vector<std::string> argv = {kProbe};
    argv.insert(argv.end(), probe_args.begin(), probe_args.end());
    Running r = Spawn(argv, {ws_, -1, {}, Env()});
    return Finish(r, 20000);
  }

  void ExpectNoSecret(const Outcome& o) {
    EXPECT_EQ(o.out.find(secret_), std::string::npos) << "the secret leaked" << o.Describe();
    EXPECT_EQ(o.err.find(secret_), std::string::npos) << "the secret leaked" << o.Describe();
  }

  std::string root_, ws_, secret_, marker_, mountinfo_before_;
  int policies_ = 0;
  std::string held_;           // --ward-via=exec: the held sandbox's name
  pid_t held_supervisor_ = 0;  // and its supervisor
  std::optional<Outcome> held_refused_;  // its provision's outcome, if refused
};

#define EXPECT_PROBE(o, expected) EXPECT_EQ((o).Status(), expected) << (o).Describe()
#define ASSERT_PROBE(o, expected) ASSERT_EQ((o).Status(), expected) << (o).Describe()

}  // namespace
