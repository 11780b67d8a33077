// ward_startup_bench: the wall time from start to exit of a one-shot
// sandboxed `/bin/true`, for ward and for named baselines, interleaved in
// the same run so that a noisy, shared machine slows them all alike.
//
// Runners (each round runs every present runner once, in an order shuffled
// anew each round: bench_util.h RoundOrder):
//   bare      posix_spawn("/bin/true") and wait: the floor
//   ward      ward run --policy bench/full-layers.json --json -- /bin/true
//             (every layer: mounts, landlock, seccomp, limits, network none)
//   bwrap     bubblewrap with the closest equivalent options, and ward's own
//             seccomp programs passed with --add-seccomp-fd
//   lxc-exec  MXC's Linux executor (bubblewrap backend) if present
//             (scripts/fetch-mxc.sh)
//
// Every runner is started the same way (posix_spawn, stdin and stdout on
// /dev/null, stderr on a pipe that is read only after the child is reaped),
// so the measurement costs each of them the same. ward's stderr ends with
// its --json result, whose phase timestamps give the breakdown.
//
// Figures are medians (with p10 / p90) and the ratio ward / bwrap of the
// medians. The exit status is non-zero only on errors, never for missing
// the target: the verdict is printed (PASS / MISS).
#include <CLI/CLI.hpp>
#include <fcntl.h>
#include <limits.h>
#include <nlohmann/json.hpp>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "baselines.h"
#include "bench_util.h"

extern char** environ;

namespace {

using namespace ward::bench;  // NOLINT: the shared helpers of bench_util.h and baselines.h

using Json = nlohmann::json;

std::string Base64(const std::string& in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int k = 3; k >= 0; --k) out += kAlphabet[(v >> (6 * k)) & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

// ---------------------------------------------------------------------------
// Statistics as JSON (the order statistics: bench_util.h).

Json StatsJson(const Stats& s) {
  auto num = [](double d) { return std::isnan(d) ? Json(nullptr) : Json(std::round(d * 1000) / 1000); };
  return {{"n", s.n}, {"median_ms", num(s.median)}, {"p10_ms", num(s.p10)}, {"p90_ms", num(s.p90)},
          {"min_ms", num(s.min)}, {"max_ms", num(s.max)}};
}

// ---------------------------------------------------------------------------
// Runners.

struct Runner {
  std::string name;
  std::string description;
  std::vector<std::string> argv;
  std::vector<std::pair<int, int>> fds;
  bool present = true;
  std::string absent_reason;
  std::string failure;        // set when it failed in a round; then it is dropped
  std::vector<double> ms;
};

std::string LxcExecConfig(const std::string& ws) {
  Json j = {
      {"version", "1.0.0"},
      {"containment", "bubblewrap"},
      {"filesystem", {{"readonlyPaths", {ws}}, {"deniedPaths", {ws + "/secret"}}}},
      {"network", {{"egress", {{"default", "deny"}}}}},
      {"process", {{"commandLine", "/bin/true"}, {"cwd", ws}, {"timeout", 10000}}},
      {"telemetry", {{"enabled", false}}},
  };
  return j.dump();
}

std::string FindLxcExec(const std::string& requested, const std::string& bin_dir) {
  if (!requested.empty()) return requested;
  if (const char* e = getenv("WARD_LXC_EXEC"); e && *e) return e;
  for (const std::string& c : {bin_dir + "/../mxc/package/bin/x64/lxc-exec",
                               std::string(WARD_SOURCE_DIR) + "/build/mxc/package/bin/x64/lxc-exec"}) {
    if (Executable(c)) return c;
  }
  return "";
}

// --probe-cgroup-v1: how long a fresh single-threaded process takes to move
// itself into a cgroup v1 hierarchy by writing "0" to cgroup.procs (what
// ward's sandbox init does) and to tasks, with a pause between trials so
// that no other migration has just happened (as for a one-shot `ward run`).
int ProbeCgroupV1(int trials) {
  std::ifstream in("/proc/self/cgroup");
  std::string line, own;
  std::string controller;
  for (const char* c : {"pids", "memory"}) {
    in.clear();
    in.seekg(0);
    while (std::getline(in, line)) {
      // "8:pids:/path"
      size_t a = line.find(':'), b = line.find(':', a + 1);
      if (a == std::string::npos || b == std::string::npos) continue;
      if (line.substr(a + 1, b - a - 1) == c) {
        own = line.substr(b + 1);
        controller = c;
        break;
      }
    }
    if (!controller.empty()) break;
  }
  if (controller.empty()) Die("no cgroup v1 pids or memory hierarchy in /proc/self/cgroup");
  std::string dir = "/sys/fs/cgroup/" + controller + (own == "/" ? "" : own) + "/ward-bench-probe-" + std::to_string(getpid());
  if (mkdir(dir.c_str(), 0755) != 0) Die(Errno("mkdir \"" + dir + "\" (needs a writable cgroup v1 hierarchy, e.g. root)"));
  std::printf("cgroup v1 join, %s hierarchy, %d trials each, 30 ms apart (ms)\n", controller.c_str(), trials);
  for (const char* file : {"cgroup.procs", "tasks"}) {
    std::vector<double> ms;
    std::string path = dir + "/" + file;
    for (int i = 0; i < trials; ++i) {
      int p[2];
      if (pipe2(p, O_CLOEXEC) != 0) Die(Errno("pipe2"));
      pid_t pid = fork();
      if (pid < 0) Die(Errno("fork"));
      if (pid == 0) {
        int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
        int64_t t0 = NowNs();
        bool ok = fd >= 0 && write(fd, "0", 1) == 1;
        int64_t d = ok ? NowNs() - t0 : -1;
        (void)!write(p[1], &d, sizeof d);
        _exit(0);
      }
      close(p[1]);
      int64_t d = -1;
      if (read(p[0], &d, sizeof d) != sizeof d) d = -1;
      close(p[0]);
      waitpid(pid, nullptr, 0);
      if (d < 0) Die("writing \"0\" to " + path + " failed");
      ms.push_back(static_cast<double>(d) / 1e6);
      usleep(30000);
    }
    Stats s = Summarize(ms);
    std::printf("  write \"0\" > %-13s median %7.3f  p10 %7.3f  p90 %7.3f\n", file, s.median, s.p10, s.p90);
  }
  for (int i = 0; i < 100 && rmdir(dir.c_str()) != 0 && errno == EBUSY; ++i) usleep(1000);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ward_startup_bench: start-to-exit time of a sandboxed /bin/true, ward against named baselines "
               "(bwrap, MXC lxc-exec, bare spawn), interleaved in one run; medians."};
  int rounds = 200, warmup = 5;
  double target = 0.6;
  bool json_out = false, no_bwrap_seccomp = false, no_lxc = false;
  std::string ward_path, bwrap_path, lxc_path, policy_path, workspace;
  std::vector<std::string> extra_policies;
  app.add_option("-n,--rounds", rounds, "measured rounds (each runs every runner once)")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "rounds run first and not counted")->check(CLI::NonNegativeNumber);
  app.add_option("--target", target, "pass if median(ward) / median(bwrap) is at most this");
  app.add_option("--ward", ward_path, "ward binary (default: `ward` beside this program)");
  app.add_option("--bwrap", bwrap_path, "bubblewrap binary (default: bwrap on PATH)");
  app.add_option("--lxc-exec", lxc_path,
                 "MXC's lxc-exec (default: $WARD_LXC_EXEC, then build/mxc/package/bin/x64/lxc-exec as left by "
                 "scripts/fetch-mxc.sh)");
  app.add_flag("--no-lxc-exec", no_lxc, "do not run lxc-exec even if present");
  app.add_option("--policy", policy_path, "ward policy (default: bench/full-layers.json)");
  app.add_option("--workspace", workspace,
                 "the sandbox's workspace, created with a `secret` file the policy denies (default: "
                 "<bin>/../bench-workspace, else ~/.cache/ward-bench-workspace; never under /tmp)");
  app.add_option("--ward-policy", extra_policies,
                 "also run ward under this policy, as runner ward:<file stem> (repeatable; for ablations such as "
                 "bench/ablate/*.json)");
  app.add_flag("--no-bwrap-seccomp", no_bwrap_seccomp, "run bwrap without ward's seccomp programs");
  bool probe_cgroup = false;
  app.add_flag("--probe-cgroup-v1", probe_cgroup,
               "instead of the benchmark: time a process joining a cgroup v1 hierarchy through cgroup.procs "
               "and through tasks, -n trials each (default 15; needs a writable v1 hierarchy, e.g. root on a hybrid host)");
  app.add_flag("--json", json_out, "print a machine-readable summary on stdout instead of the table");
  CLI11_PARSE(app, argc, argv);
  if (probe_cgroup) return ProbeCgroupV1(app.count("--rounds") ? rounds : 15);

  const std::string bin_dir = SelfDir();
  if (ward_path.empty()) ward_path = bin_dir + "/ward";
  if (!Executable(ward_path)) Die("ward not found at \"" + ward_path + "\" (build it, or pass --ward PATH)");
  ward_path = Absolute(ward_path);
  if (policy_path.empty()) policy_path = std::string(WARD_SOURCE_DIR) + "/bench/full-layers.json";
  policy_path = Absolute(policy_path);
  for (auto& file : extra_policies) file = Absolute(file);
  if (bwrap_path.empty()) bwrap_path = FindInPath("bwrap");
  if (!Executable(bwrap_path)) Die("bwrap not found (install bubblewrap, or pass --bwrap PATH): it is the baseline the target is measured against");
  const std::string ws = PrepareWorkspace(workspace, bin_dir);
  // ${CWD} is then the workspace for ward, as --chdir makes it for bwrap.
  if (chdir(ws.c_str()) != 0) Die(Errno("chdir \"" + ws + "\""));

  std::vector<Runner> runners;
  runners.push_back({"bare", "posix_spawn /bin/true, no sandbox (the floor)", {"/bin/true"}, {}});
  auto base = [](const std::string& p) { return p.substr(p.rfind('/') + 1); };
  runners.push_back({"ward", "ward run --policy " + base(policy_path) + " --json -- /bin/true",
                     {ward_path, "run", "--policy", policy_path, "--workspace", ws, "--json", "--", "/bin/true"}, {}});
  for (const auto& file : extra_policies) {
    const std::string& abs = file;
    std::string stem = abs.substr(abs.rfind('/') + 1);
    stem = stem.substr(0, stem.rfind('.'));
    runners.push_back({"ward:" + stem, "ward run --policy " + base(abs) + " (ablation)",
                       {ward_path, "run", "--policy", abs, "--workspace", ws, "--json", "--", "/bin/true"}, {}});
  }
  Runner bw{"bwrap", no_bwrap_seccomp ? "bubblewrap, equivalent options, no seccomp" : "bubblewrap, equivalent options + ward's seccomp programs",
            BwrapArgv(bwrap_path, ws, !no_bwrap_seccomp), {}};
  if (!no_bwrap_seccomp) {
    auto [main_fd, extra_fd] = SeccompFds();
    bw.fds = {{main_fd, kSeccompFd}, {extra_fd, kSeccompExtraFd}};
  }
  runners.push_back(bw);
  Runner lx{"lxc-exec", "MXC lxc-exec 1.0.x, containment bubblewrap", {}, {}};
  if (no_lxc) {
    lx.present = false;
    lx.absent_reason = "disabled with --no-lxc-exec";
  } else if (std::string p = FindLxcExec(lxc_path, bin_dir); Executable(p)) {
    lx.argv = {Absolute(p), "--config-base64", Base64(LxcExecConfig(ws))};
  } else {
    lx.present = false;
    lx.absent_reason = p.empty() ? "not found (run scripts/fetch-mxc.sh, or pass --lxc-exec PATH)" : "not executable: " + p;
  }
  runners.push_back(lx);

  Spawner spawner;
  std::vector<std::string> phase_order;
  std::map<std::string, std::vector<double>> phase_ms;  // "a -> b": deltas
  std::vector<double> outside_ms, paired_ratio;
  Json limit_mechanisms;
  int landlock_abi = -1;

  const int total = warmup + rounds;
  RoundOrder order(runners.size());
  for (int round = 0; round < total; ++round) {
    const bool counted = round >= warmup;
    std::map<std::string, double> this_round;
    for (size_t k : order.Next()) {
      Runner& r = runners[k];
      if (!r.present || !r.failure.empty()) continue;
      Outcome o = spawner.Run(r.argv, r.fds);
      if (!WIFEXITED(o.status) || WEXITSTATUS(o.status) != 0) {
        std::string msg = DescribeStatus(o.status) + ": " + Trim(o.err, 600);
        if (r.name != "lxc-exec") {
          Die(r.name + " failed in round " + std::to_string(round) + " (" + msg + ")\n  command: " + r.argv[0] + " ...");
        }
        r.failure = msg;  // a failing optional baseline is reported, not fatal
        continue;
      }
      if (r.name == "ward") {
        Json j = Json::parse(LastLine(o.err), nullptr, false);
        if (j.is_discarded() || !j.contains("phases")) Die("ward printed no --json result: " + Trim(o.err, 600));
        if (counted) {
          double prev_us = 0;
          std::string prev = "";
          for (const auto& ph : j["phases"]) {
            std::string name = ph.value("phase", "?");
            double us = ph.value("us", 0.0);
            if (!prev.empty()) {
              std::string key = prev + " -> " + name;
              if (!phase_ms.count(key)) phase_order.push_back(key);
              phase_ms[key].push_back((us - prev_us) / 1000.0);
            }
            prev = name;
            prev_us = us;
          }
          // From spawn to Run() starting (exec of ward, policy load) plus
          // after the sandbox is gone (cgroup removal, output, exit).
          outside_ms.push_back(o.ms - prev_us / 1000.0);
          limit_mechanisms = j.value("limitMechanisms", Json::object());
          landlock_abi = j.value("landlockAbi", -1);
        }
      }
      if (counted) {
        r.ms.push_back(o.ms);
        this_round[r.name] = o.ms;
      }
    }
    if (this_round.count("ward") && this_round.count("bwrap")) paired_ratio.push_back(this_round["ward"] / this_round["bwrap"]);
    if (!json_out && (round + 1) % 50 == 0) std::fprintf(stderr, "  %d/%d rounds\n", round + 1, total);
  }

  std::map<std::string, Stats> stats;
  for (const auto& r : runners) stats[r.name] = Summarize(r.ms);
  const double ratio = stats["ward"].median / stats["bwrap"].median;
  const Stats paired = Summarize(paired_ratio);
  const bool pass = ratio <= target;
  utsname u{};
  uname(&u);
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);

  if (json_out) {
    Json j;
    j["rounds"] = rounds;
    j["warmup"] = warmup;
    j["uid"] = getuid();
    j["machine"] = {{"kernel", u.release}, {"cpus", cpus}};
    j["workspace"] = ws;
    j["policy"] = policy_path;
    j["runners"] = Json::object();
    for (const auto& r : runners) {
      Json e = StatsJson(stats[r.name]);
      e["present"] = r.present;
      e["description"] = r.description;
      if (!r.present) e["absent"] = r.absent_reason;
      if (!r.failure.empty()) e["failed"] = r.failure;
      j["runners"][r.name] = e;
    }
    j["ratio_ward_bwrap"] = std::round(ratio * 1000) / 1000;
    j["median_paired_ratio_ward_bwrap"] = std::round(paired.median * 1000) / 1000;
    if (stats["lxc-exec"].n) j["ratio_ward_lxc_exec"] = std::round(stats["ward"].median / stats["lxc-exec"].median * 1000) / 1000;
    j["target"] = target;
    j["verdict"] = pass ? "PASS" : "MISS";
    Json phases = Json::array();
    for (const auto& k : phase_order) {
      Json e = StatsJson(Summarize(phase_ms[k]));
      e["phase"] = k;
      phases.push_back(e);
    }
    Json outside = StatsJson(Summarize(outside_ms));
    outside["phase"] = "outside Run(): exec of ward + policy load, cgroup removal + output + exit";
    phases.push_back(outside);
    j["ward_phases"] = phases;
    j["ward_limit_mechanisms"] = limit_mechanisms;
    j["ward_landlock_abi"] = landlock_abi;
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }

  std::printf("ward_startup_bench: %d rounds (+%d warm-up), runners interleaved; wall ms from spawn to reap\n", rounds, warmup);
  std::printf("machine: Linux %s, %ld CPUs, uid %u; workspace %s\n", u.release, cpus, getuid(), ws.c_str());
  std::printf("\n%-22s %9s %9s %9s %9s  %s\n", "runner", "median", "p10", "p90", "x bwrap", "what");
  for (const auto& r : runners) {
    const Stats& s = stats[r.name];
    if (!r.present) {
      std::printf("%-22s %9s %9s %9s %9s  absent: %s\n", r.name.c_str(), "-", "-", "-", "-", r.absent_reason.c_str());
      continue;
    }
    if (!r.failure.empty()) {
      std::printf("%-22s %9s %9s %9s %9s  FAILED: %s\n", r.name.c_str(), "-", "-", "-", "-", r.failure.c_str());
      continue;
    }
    std::printf("%-22s %9.3f %9.3f %9.3f %9.2f  %s\n", r.name.c_str(), s.median, s.p10, s.p90,
                s.median / stats["bwrap"].median, r.description.c_str());
  }
  std::printf("\nratio ward/bwrap (medians): %.3f   median of per-round ratios: %.3f   target <= %.2f: %s\n", ratio,
              paired.median, target, pass ? "PASS" : "MISS");
  if (stats["lxc-exec"].n) std::printf("ratio ward/lxc-exec (medians): %.3f\n", stats["ward"].median / stats["lxc-exec"].median);

  std::printf("\nward phases (ms between consecutive --json phase marks; median, p10, p90 over rounds)\n");
  double sum = 0;
  for (const auto& k : phase_order) {
    Stats s = Summarize(phase_ms[k]);
    sum += s.median;
    std::printf("  %-48s %8.3f %8.3f %8.3f\n", k.c_str(), s.median, s.p10, s.p90);
  }
  Stats o = Summarize(outside_ms);
  std::printf("  %-48s %8.3f %8.3f %8.3f\n", "outside Run() (exec ward, load policy; rmdir", o.median, o.p10, o.p90);
  std::printf("  %-48s\n", "  cgroups, print result, exit)");
  std::printf("  %-48s %8.3f\n", "sum of medians", sum + o.median);
  std::printf("limits: %s; landlock ABI %d\n", limit_mechanisms.dump().c_str(), landlock_abi);
  return 0;
}
