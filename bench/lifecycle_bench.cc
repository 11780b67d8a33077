// ward_lifecycle_bench: what a held sandbox costs (docs/performance.md,
// "Held sandboxes"), against named baselines in the same run.
//
// Latency (each round runs every runner once, in an order shuffled anew
// each round: bench_util.h RoundOrder; in the fixed cyclic order used before,
// ward-exec always came after bwrap's or a deprovision's network namespace
// teardown, which the kernel finishes in the background):
//   bare             posix_spawn("/bin/true") and wait: the floor
//   ward-run         a cold one-shot `ward run --policy full-layers.json -- /bin/true`
//   bwrap            bubblewrap with the closest options (as ward_startup_bench)
//   ward-exec        `ward exec bench -- /bin/true` into a sandbox provisioned
//                    and started with the same policy before the rounds
//   api-exec         the same exec made by ward::Exec (ward/lifecycle.h) from
//                    this process: what a program that embeds ward (an agent
//                    framework, an SDK) pays, without a `ward` process
//   provision+start  `ward provision` then `ward start` of a fresh sandbox
//                    (timed together); its `ward deprovision` is not timed
// Targets (issue 10): exec median <= 1.5 ms and <= 0.3x the cold run;
// provision + start no slower than the cold run. The verdicts are printed
// for both execs; the exit status is non-zero only for errors.
//
// --scale N: N sandboxes provisioned and running at once, each exec'ed
// --execs times (round-robin); reports the exec latency under that load,
// each supervisor's resident memory after the first and the last round (a
// leak shows as growth), then deprovisions them all and checks that nothing
// is left: no supervisor or sandbox process, no cgroup, no mount, no entry
// in the runtime directory. Leftovers are an error (exit 1).
//
// Every ward command runs with WARD_RUNTIME_DIR set to a private directory
// this program creates and removes, under --runtime-base: by default
// /dev/shm, a tmpfs, as /run and $XDG_RUNTIME_DIR (ward's runtime
// directories) are on a usual host. (This VM's /run is on its disk; give
// --runtime-base /tmp to measure that.)
#include <CLI/CLI.hpp>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "baselines.h"
#include "bench_util.h"
#include "base/mountinfo.h"
#include "base/path.h"
#include "ward/lifecycle.h"

namespace {

using namespace ward::bench;  // NOLINT: the shared helpers of bench_util.h and baselines.h
using Json = nlohmann::json;

struct Bench {
  std::string ward, policy, ws, runtime;
  Spawner spawner;

  std::vector<std::string> Ward(const std::vector<std::string>& args) const {
    std::vector<std::string> v;
    v.reserve(args.size() + 1);
    v.push_back(ward);
    for (const auto& a : args) v.push_back(a);
    return v;
  }
  // A ward command that must succeed (its stdout is not kept: the spawner
  // discards it).
  Outcome Must(const std::vector<std::string>& args) {
    Outcome o = spawner.Run(Ward(args));
    if (!WIFEXITED(o.status) || WEXITSTATUS(o.status) != 0) {
      Die("ward " + args[0] + " " + (args.size() > 1 ? args[1] : "") + ": " + DescribeStatus(o.status) + ": " +
          Trim(o.err, 600));
    }
    return o;
  }
  Outcome Provision(const std::string& name) {
    return Must({"provision", "--policy", policy, "--workspace", ws, "--name", name});
  }
  // `ward ls --json`, read through a file (the spawner discards stdout).
  Json Ls() {
    const std::string out = runtime + ".ls.json";
    const std::string cmd = "'" + ward + "' ls --json > '" + out + "'";
    if (std::system(cmd.c_str()) != 0) Die("ward ls --json failed");
    std::ifstream in(out);
    std::stringstream text;
    text << in.rdbuf();
    unlink(out.c_str());
    Json j = Json::parse(text.str(), nullptr, false);
    if (!j.is_array()) Die("ward ls --json printed no array: " + Trim(text.str(), 300));
    return j;
  }
};

Json StatsJson(const Stats& s) {
  auto num = [](double d) { return std::isnan(d) ? Json(nullptr) : Json(std::round(d * 1000) / 1000); };
  return {{"n", s.n}, {"median_ms", num(s.median)}, {"p10_ms", num(s.p10)}, {"p90_ms", num(s.p90)}};
}

// True once `pid` has exited (a zombie counts: it has ended, and reaping
// it is its parent's job, here pid 1's), polling for up to `ms`.
bool Ended(long pid, int ms) {
  for (int waited = 0;; waited += 10) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    std::getline(in, stat);
    size_t close = stat.rfind(')');
    if (stat.empty() || (close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z')) return true;
    if (waited >= ms) return false;
    usleep(10000);
  }
}

long MemAvailableKiB() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  long v = 0;
  while (in >> key >> v) {
    if (key == "MemAvailable:") return v;
    in.ignore(256, '\n');
  }
  return 0;
}

// Directories named ward-PID-N (ward's cgroups) for any of `pids`, under
// /sys/fs/cgroup, a few levels deep.
void FindCgroups(const std::string& dir, int depth, const std::set<long>& pids, std::vector<std::string>* out) {
  if (depth > 5) return;
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = readdir(d)) {
    if (e->d_type != DT_DIR || e->d_name[0] == '.') continue;
    const std::string path = dir + "/" + e->d_name;
    long pid = 0;
    int n = 0;
    if (std::sscanf(e->d_name, "ward-%ld-%d", &pid, &n) == 2 && pids.count(pid)) out->push_back(path);
    FindCgroups(path, depth + 1, pids, out);
  }
  closedir(d);
}

// At exit (an error included): every sandbox still in the private runtime
// directory is deprovisioned, then the directory removed.
std::string g_cleanup_ward, g_cleanup_runtime;
void CleanUp() {
  if (g_cleanup_runtime.empty()) return;
  if (DIR* d = opendir(g_cleanup_runtime.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == ".." || name == "names" || name == ".lock") continue;
      const std::string cmd = "'" + g_cleanup_ward + "' deprovision --grace-ms 500 " + name + " >/dev/null 2>&1";
      if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "could not deprovision %s\n", name.c_str());
    }
    closedir(d);
  }
  const std::string clean = "rm -rf '" + g_cleanup_runtime + "'";
  if (std::system(clean.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", g_cleanup_runtime.c_str());
}

struct Runner {
  std::string name, description;
  std::vector<double> ms;
};

// ward::Exec of /bin/true into `ref` from this process, its stdio
// /dev/null (as the spawner gives the CLI's stdin and stdout).
Outcome ApiExec(const std::string& ref) {
  static const int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  int saved[3];
  for (int fd = 0; fd < 3; ++fd) {
    saved[fd] = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    dup2(devnull, fd);
  }
  ward::ExecRequest req;
  req.ref = ref;
  req.argv = {"/bin/true"};
  const int64_t t0 = NowNs();
  auto r = ward::Exec(req);
  const int64_t t1 = NowNs();
  for (int fd = 0; fd < 3; ++fd) {
    dup2(saved[fd], fd);
    close(saved[fd]);
  }
  Outcome o;
  o.ms = static_cast<double>(t1 - t0) / 1e6;
  if (!r) {
    o.status = W_EXITCODE(125, 0);
    o.err = r.error().message;
  } else {
    o.status = W_EXITCODE(ward::ExitStatusOf(*r) & 0xff, 0);
  }
  return o;
}

// The file system type of `path` ("tmpfs", "ext4"...): its mount's, the
// longest mount point above it.
std::string FsType(const std::string& path) {
  std::string type = "?";
  size_t best = 0;
  for (const ward::MountInfo& m : ward::ReadMountInfo()) {
    if (ward::IsUnder(path, m.mount_point) && m.mount_point.size() >= best) {
      best = m.mount_point.size();
      type = m.fstype;
    }
  }
  return type;
}

int Latency(Bench& b, int rounds, int warmup, const std::string& bwrap_path, bool json_out) {
  b.Provision("bench");
  b.Must({"start", "bench"});
  auto [main_fd, extra_fd] = SeccompFds();
  const std::vector<std::pair<int, int>> bwrap_fds = {{main_fd, kSeccompFd}, {extra_fd, kSeccompExtraFd}};
  const std::vector<std::string> bwrap = BwrapArgv(bwrap_path, b.ws, true);
  std::vector<Runner> runners = {
      {"bare", "posix_spawn /bin/true, no sandbox (the floor)", {}},
      {"ward-run", "ward run --policy full-layers.json -- /bin/true (cold, one-shot)", {}},
      {"bwrap", "bubblewrap, equivalent options + ward's seccomp programs", {}},
      {"ward-exec", "ward exec bench -- /bin/true (held sandbox, same policy)", {}},
      {"api-exec", "ward::Exec of /bin/true into the same sandbox, from this process (an SDK's cost)", {}},
      {"provision+start", "ward provision + ward start (deprovision not timed)", {}},
  };
  int fresh = 0;
  RoundOrder order(runners.size());
  for (int round = 0; round < warmup + rounds; ++round) {
    for (size_t k : order.Next()) {
      Runner& r = runners[k];
      double ms = 0;
      Outcome o;
      if (r.name == "bare") {
        o = b.spawner.Run({"/bin/true"});
      } else if (r.name == "ward-run") {
        o = b.spawner.Run(b.Ward({"run", "--policy", b.policy, "--workspace", b.ws, "--", "/bin/true"}));
      } else if (r.name == "bwrap") {
        o = b.spawner.Run(bwrap, bwrap_fds);
      } else if (r.name == "ward-exec") {
        o = b.spawner.Run(b.Ward({"exec", "bench", "--", "/bin/true"}));
      } else if (r.name == "api-exec") {
        o = ApiExec("bench");
      } else {
        const std::string name = "fresh-" + std::to_string(fresh++);
        ms = b.Provision(name).ms + b.Must({"start", name}).ms;
        b.Must({"deprovision", name});
      }
      if (r.name != "provision+start") {
        if (!WIFEXITED(o.status) || WEXITSTATUS(o.status) != 0) {
          Die(r.name + " failed in round " + std::to_string(round) + ": " + DescribeStatus(o.status) + ": " + Trim(o.err, 600));
        }
        ms = o.ms;
      }
      if (round >= warmup) r.ms.push_back(ms);
    }
    if (!json_out && (round + 1) % 50 == 0) std::fprintf(stderr, "  %d/%d rounds\n", round + 1, warmup + rounds);
  }
  b.Must({"deprovision", "bench"});

  std::map<std::string, Stats> s;
  for (const auto& r : runners) s[r.name] = Summarize(r.ms);
  const double exec = s["ward-exec"].median, api = s["api-exec"].median, run = s["ward-run"].median,
               ps = s["provision+start"].median;
  const bool abs_ok = exec <= 1.5, ratio_ok = exec / run <= 0.3, ps_ok = ps <= run;
  const bool api_abs_ok = api <= 1.5, api_ratio_ok = api / run <= 0.3;
  if (json_out) {
    Json j;
    j["rounds"] = rounds;
    j["runners"] = Json::object();
    for (const auto& r : runners) {
      j["runners"][r.name] = StatsJson(s[r.name]);
      j["runners"][r.name]["description"] = r.description;
    }
    j["ratio_exec_run"] = std::round(exec / run * 1000) / 1000;
    j["ratio_exec_bwrap"] = std::round(exec / s["bwrap"].median * 1000) / 1000;
    j["ratio_exec_bare"] = std::round(exec / s["bare"].median * 1000) / 1000;
    j["ratio_api_exec_run"] = std::round(api / run * 1000) / 1000;
    j["ratio_provision_start_run"] = std::round(ps / run * 1000) / 1000;
    j["verdicts"] = {{"exec_at_most_1_5_ms", abs_ok ? "PASS" : "MISS"},
                     {"exec_at_most_0_3x_run", ratio_ok ? "PASS" : "MISS"},
                     {"api_exec_at_most_1_5_ms", api_abs_ok ? "PASS" : "MISS"},
                     {"api_exec_at_most_0_3x_run", api_ratio_ok ? "PASS" : "MISS"},
                     {"provision_start_at_most_run", ps_ok ? "PASS" : "MISS"}};
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("\n%-16s %9s %9s %9s %9s  %s\n", "runner", "median", "p10", "p90", "x run", "what");
  for (const auto& r : runners) {
    const Stats& x = s[r.name];
    std::printf("%-16s %9.3f %9.3f %9.3f %9.2f  %s\n", r.name.c_str(), x.median, x.p10, x.p90, x.median / run,
                r.description.c_str());
  }
  std::printf("\nexec / cold run %.3f (target <= 0.3: %s)   exec / bwrap %.3f   exec / bare %.2f\n", exec / run,
              ratio_ok ? "PASS" : "MISS", exec / s["bwrap"].median, exec / s["bare"].median);
  std::printf("exec median %.3f ms (target <= 1.5 ms: %s)\n", exec, abs_ok ? "PASS" : "MISS");
  std::printf("api exec / cold run %.3f (target <= 0.3: %s)   api exec median %.3f ms (target <= 1.5 ms: %s)\n",
              api / run, api_ratio_ok ? "PASS" : "MISS", api, api_abs_ok ? "PASS" : "MISS");
  std::printf("provision + start / cold run %.3f (target <= 1: %s)\n", ps / run, ps_ok ? "PASS" : "MISS");
  return 0;
}

// "s0", "s1"... (appended, not `"s" + to_string`: g++ 12 warns falsely
// about that with -Wrestrict).
std::string SandboxName(int i) {
  std::string name = "s";
  name += std::to_string(i);
  return name;
}

int Scale(Bench& b, int n, int execs, bool json_out) {
  const long mem_before = MemAvailableKiB();
  std::vector<double> ps_ms, exec_ms;
  for (int i = 0; i < n; ++i) {
    const std::string name = SandboxName(i);
    ps_ms.push_back(b.Provision(name).ms + b.Must({"start", name}).ms);
  }
  const long mem_running = MemAvailableKiB();
  std::map<std::string, long> rss_first, rss_last;
  std::set<long> supervisors;
  for (int round = 0; round < execs; ++round) {
    for (int i = 0; i < n; ++i) exec_ms.push_back(b.Must({"exec", SandboxName(i), "--", "/bin/true"}).ms);
    if (round == 0 || round == execs - 1) {
      for (const Json& e : b.Ls()) {
        if (e.value("state", "") != "running") Die("sandbox " + e.value("name", "?") + " is " + e.value("state", "?"));
        (round == 0 ? rss_first : rss_last)[e.value("name", "")] = e.value("supervisorRssKiB", 0L);
        supervisors.insert(e.value("supervisorPid", 0L));
      }
    }
  }
  std::vector<double> rss, growth;
  for (const auto& [name, kib] : rss_last) {
    rss.push_back(static_cast<double>(kib));
    growth.push_back(static_cast<double>(kib - rss_first[name]));
  }
  for (int i = 0; i < n; ++i) b.Must({"deprovision", SandboxName(i)});

  // Nothing may be left.
  std::vector<std::string> left;
  for (long pid : supervisors) {
    if (!Ended(pid, 2000)) left.push_back("supervisor pid " + std::to_string(pid) + " still runs");
  }
  std::vector<std::string> cgroups;
  FindCgroups("/sys/fs/cgroup", 0, supervisors, &cgroups);
  for (const auto& c : cgroups) left.push_back("cgroup " + c);
  {
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    while (std::getline(in, line)) {
      if (line.find(b.runtime) != std::string::npos) left.push_back("mount " + Trim(line, 200));
    }
  }
  if (DIR* d = opendir(b.runtime.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == ".." || name == "names" || name == ".lock") continue;
      left.push_back("runtime directory entry " + b.runtime + "/" + name);
    }
    closedir(d);
  }
  const long mem_after = MemAvailableKiB();
  const Stats e = Summarize(exec_ms), p = Summarize(ps_ms), r = Summarize(rss), g = Summarize(growth);
  if (json_out) {
    Json j = {{"sandboxes", n},
              {"execs_each", execs},
              {"provision_start", StatsJson(p)},
              {"exec", StatsJson(e)},
              {"supervisor_rss_kib", {{"median", r.median}, {"max", r.max}}},
              {"supervisor_rss_growth_kib", {{"median", g.median}, {"max", g.max}}},
              {"mem_available_kib", {{"before", mem_before}, {"running", mem_running}, {"after", mem_after}}},
              {"leftovers", left}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("\n%d sandboxes running at once, each exec'ed %d times (/bin/true)\n", n, execs);
    std::printf("  provision + start  median %7.3f  p90 %7.3f ms\n", p.median, p.p90);
    std::printf("  exec under load    median %7.3f  p90 %7.3f ms  (%zu execs)\n", e.median, e.p90, e.n);
    std::printf("  supervisor RSS     median %7.0f  max %7.0f KiB per sandbox\n", r.median, r.max);
    std::printf("  RSS growth, exec round 1 -> %d: median %.0f, max %.0f KiB\n", execs, g.median, g.max);
    std::printf("  MemAvailable: %ld MiB before, %ld MiB with all running (%.1f MiB per sandbox), %ld MiB after\n",
                mem_before / 1024, mem_running / 1024, static_cast<double>(mem_before - mem_running) / 1024.0 / n,
                mem_after / 1024);
    std::printf("  left behind after deprovision: %s\n", left.empty() ? "nothing (processes, cgroups, mounts, runtime entries)" : "");
    for (const auto& l : left) std::printf("    %s\n", l.c_str());
  }
  return left.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ward_lifecycle_bench: latency of `ward exec` into a held sandbox against a cold `ward run`, bwrap and "
               "a bare spawn, interleaved in one run (medians, p10, p90); with --scale, many held sandboxes at once."};
  int rounds = 100, warmup = 5, scale = 0, execs = 10;
  bool json_out = false;
  std::string ward_path, bwrap_path, policy_path, workspace, runtime_base = "/dev/shm";
  app.add_option("-n,--rounds", rounds, "measured rounds (each runs every runner once)")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "rounds run first and not counted")->check(CLI::NonNegativeNumber);
  app.add_option("--scale", scale, "instead: N held sandboxes running at once (0: off)")->check(CLI::NonNegativeNumber);
  app.add_option("--execs", execs, "with --scale: execs into each sandbox")->check(CLI::PositiveNumber);
  app.add_option("--ward", ward_path, "ward binary (default: `ward` beside this program)");
  app.add_option("--bwrap", bwrap_path, "bubblewrap binary (default: bwrap on PATH)");
  app.add_option("--policy", policy_path, "ward policy (default: bench/full-layers.json)");
  app.add_option("--workspace", workspace, "the sandboxes' workspace (as ward_startup_bench; never under /tmp)");
  app.add_option("--runtime-base", runtime_base,
                 "where the private runtime directory is made (default /dev/shm: a tmpfs, as /run and "
                 "$XDG_RUNTIME_DIR are on a usual host)");
  app.add_flag("--json", json_out, "print a machine-readable summary instead of the table");
  CLI11_PARSE(app, argc, argv);

  Bench b;
  const std::string bin_dir = SelfDir();
  b.ward = Absolute(ward_path.empty() ? bin_dir + "/ward" : ward_path);
  b.policy = Absolute(policy_path.empty() ? std::string(WARD_SOURCE_DIR) + "/bench/full-layers.json" : policy_path);
  if (bwrap_path.empty()) bwrap_path = FindInPath("bwrap");
  if (!scale && !Executable(bwrap_path)) Die("bwrap not found (install bubblewrap, or pass --bwrap PATH)");
  b.ws = PrepareWorkspace(workspace, bin_dir);
  if (chdir(b.ws.c_str()) != 0) Die(Errno("chdir \"" + b.ws + "\""));
  std::string tmpl = runtime_base + "/ward-bench-rt-XXXXXX";
  if (!mkdtemp(tmpl.data())) Die(Errno("mkdtemp under \"" + runtime_base + "\""));
  b.runtime = tmpl;
  setenv("WARD_RUNTIME_DIR", b.runtime.c_str(), 1);
  g_cleanup_ward = b.ward;
  g_cleanup_runtime = b.runtime;
  std::atexit(CleanUp);
  utsname u{};
  uname(&u);
  if (!json_out) {
    std::printf("ward_lifecycle_bench: Linux %s, %ld CPUs, uid %u; runtime %s (%s)\n", u.release,
                sysconf(_SC_NPROCESSORS_ONLN), getuid(), b.runtime.c_str(), FsType(b.runtime).c_str());
  }
  return scale ? Scale(b, scale, execs, json_out) : Latency(b, rounds, warmup, bwrap_path, json_out);
}
