// ward_audit_bench: what the audit trail costs a process-heavy workload
// (docs/performance.md, "Audit"; issue 11's target: at most 1.3x in the
// default audit level), against named baselines in the same run.
//
// The workload: `sh -c` running a loop that executes --programs short
// programs (/bin/true), then reads the workspace's `secret` once (which the
// policy denies), under bench/full-layers.json. Each round runs every
// runner once, in an order shuffled anew each round (RoundOrder):
//   bare         the loop itself, posix_spawn'ed: what the programs cost
//   sandbox      the same sandbox with audit off: ward's library (ward::Run,
//                which records nothing and watches no execution) in a
//                child process of this one
//   ward-run     `ward run --agent bench --policy full-layers.json -- sh -c
//                LOOP`: the CLI, whose audit trail is always on; every
//                program is an "exec" event, written as it happens
//   ward-files   the same with bench/full-layers-files.json, which adds
//                audit.files "denied": every file system call that names a
//                path waits for ward's judgement too (not the default
//                level; its cost is reported, no target)
// The verdict is the ratio of the medians ward-run / sandbox. After the
// rounds, the store must hold one exec event per program of both audited
// runners, and each ward-files run one "file" event (the read of `secret`)
// (else the bench measured nothing and fails, exit 1).
//
// The store is a private one (WARD_AUDIT_DB) in a directory this program
// creates and removes.
#include <CLI/CLI.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "baselines.h"
#include "bench_util.h"
#include "ward/policy.h"
#include "ward/sandbox.h"

namespace {

using namespace ward::bench;  // NOLINT: the shared helpers of bench_util.h and baselines.h

// ward::Run of `policy_file` with `argv` in a child of this process, its
// cwd `ws`, stdio on /dev/null: the sandbox without ward's CLI, so without
// the audit trail. Milliseconds from fork to reaping it; `*status` the
// child's wait status (exit 0 if the workload exited 0).
double RunUnaudited(const std::string& policy_file, const std::string& ws, const std::vector<std::string>& argv,
                    int* status) {
  const int64_t t0 = NowNs();
  pid_t pid = fork();
  if (pid < 0) Die(Errno("fork"));
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int fd = 0; fd < 3; ++fd) dup2(devnull, fd);
    if (chdir(ws.c_str()) != 0) _exit(125);
    ward::PolicyLoad load = ward::LoadPolicyFile(policy_file, ward::PolicyVars::FromEnvironment(ws));
    if (!load.ok()) _exit(123);
    ward::RunRequest req;
    req.policy = std::move(*load.policy);
    req.argv = argv;
    auto r = ward::Run(req);
    _exit(!r ? 125 : r->signal ? 128 + r->signal : r->exit_code);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  *status = st;
  return static_cast<double>(NowNs() - t0) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ward_audit_bench: the audit trail's cost on a process-heavy workload"};
  int rounds = 7;
  int programs = 1000;
  std::string workspace, ward_path;
  bool json = false;
  app.add_option("-n,--rounds", rounds, "rounds; each runs every runner once")->check(CLI::Range(1, 1000));
  app.add_option("--programs", programs, "programs the workload executes per run")->check(CLI::Range(1, 1000000));
  app.add_option("--workspace", workspace, "workspace directory (not under /tmp)");
  app.add_option("--ward", ward_path, "the ward binary (default: the one beside this program)");
  app.add_flag("--json", json, "print the result as one JSON object");
  CLI11_PARSE(app, argc, argv);

  const std::string bin_dir = SelfDir();
  if (ward_path.empty()) ward_path = bin_dir + "/ward";
  if (!Executable(ward_path)) Die("no ward binary at \"" + ward_path + "\" (--ward)");
  const std::string policy = std::string(WARD_SOURCE_DIR) + "/bench/full-layers.json";
  const std::string policy_files = std::string(WARD_SOURCE_DIR) + "/bench/full-layers-files.json";
  const std::string ws = PrepareWorkspace(workspace, bin_dir);
  char tmpl[] = "/tmp/ward-audit-bench-XXXXXX";
  if (!mkdtemp(tmpl)) Die(Errno("mkdtemp"));
  const std::string store_dir = tmpl;
  const std::string db = store_dir + "/audit.db";
  setenv("WARD_AUDIT_DB", db.c_str(), 1);
  if (chdir(ws.c_str()) != 0) Die(Errno("chdir \"" + ws + "\""));

  const std::string loop =
      "i=0; while [ $i -lt " + std::to_string(programs) + " ]; do /bin/true; i=$((i+1)); done; "
      "cat secret >/dev/null 2>&1; true";
  const std::vector<std::string> workload = {"/bin/sh", "-c", loop};
  std::vector<std::string> ward_run = {ward_path, "run", "--agent", "bench", "--policy", policy, "--"};
  ward_run.insert(ward_run.end(), workload.begin(), workload.end());
  std::vector<std::string> ward_files = {ward_path, "run", "--agent", "bench-files", "--policy", policy_files, "--"};
  ward_files.insert(ward_files.end(), workload.begin(), workload.end());

  Spawner spawner;
  const std::vector<std::string> names = {"bare", "sandbox", "ward-run", "ward-files"};
  std::map<std::string, std::vector<double>> ms;
  RoundOrder order(names.size());
  for (int r = 0; r < rounds; ++r) {
    for (size_t k : order.Next()) {
      const std::string& name = names[k];
      int status = 0;
      double t = 0;
      std::string err;
      if (name == "sandbox") {
        t = RunUnaudited(policy, ws, workload, &status);
      } else {
        Outcome o = spawner.Run(name == "bare" ? workload : name == "ward-run" ? ward_run : ward_files);
        t = o.ms;
        status = o.status;
        err = o.err;
      }
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::filesystem::remove_all(store_dir);
        Die(name + ": " + DescribeStatus(status) + (err.empty() ? "" : ": " + Trim(LastLine(err), 300)));
      }
      ms[name].push_back(t);
    }
  }

  // The audited runs must have recorded every program they executed, and
  // the files level the denied read of each run.
  auto count = [&](const std::string& query, const std::string& pattern) {
    char count_file[] = "/tmp/ward-audit-bench-count-XXXXXX";
    int cfd = mkstemp(count_file);
    if (cfd < 0) Die(Errno("mkstemp"));
    close(cfd);
    const std::string cmd = ward_path + " audit " + query + " --json | grep -c '" + pattern + "' > " + count_file;
    const int rc = system(cmd.c_str());
    (void)rc;
    long n = 0;
    if (FILE* f = fopen(count_file, "r")) {
      if (fscanf(f, "%ld", &n) != 1) n = 0;
      fclose(f);
    }
    unlink(count_file);
    return n;
  };
  const long recorded = count("--agent bench --kind exec", "\"path\":\"/bin/true\"");
  const long recorded_files = count("--agent bench-files --kind exec", "\"path\":\"/bin/true\"");
  const long denials = count("--agent bench-files --kind file", "/secret");
  std::filesystem::remove_all(store_dir);
  const long expected = static_cast<long>(rounds) * programs;

  std::map<std::string, Stats> stats;
  for (const auto& n : names) stats[n] = Summarize(ms[n]);
  const double ratio = stats["ward-run"].median / stats["sandbox"].median;
  const double ratio_files = stats["ward-files"].median / stats["sandbox"].median;
  const bool met = ratio <= 1.3;
  if (json) {
    std::string out = "{\"programs\":" + std::to_string(programs) + ",\"rounds\":" + std::to_string(rounds);
    for (const auto& n : names) {
      out += ",\"" + n + "\":{\"median_ms\":" + std::to_string(stats[n].median) + ",\"p10_ms\":" +
             std::to_string(stats[n].p10) + ",\"p90_ms\":" + std::to_string(stats[n].p90) + "}";
    }
    out += ",\"ratio\":" + std::to_string(ratio) + ",\"target_met\":" + (met ? "true" : "false") +
           ",\"files_ratio\":" + std::to_string(ratio_files) + ",\"exec_events\":" + std::to_string(recorded) +
           ",\"files_exec_events\":" + std::to_string(recorded_files) + ",\"file_events\":" + std::to_string(denials) +
           ",\"expected_exec_events\":" + std::to_string(expected) + "}";
    std::printf("%s\n", out.c_str());
  } else {
    std::printf("ward_audit_bench: sh loop executing %d programs, %d rounds (median, p10-p90, ms)\n", programs, rounds);
    for (const auto& n : names) {
      std::printf("  %-9s %9.1f  (%.1f-%.1f)  %.1f us per program\n", n.c_str(), stats[n].median, stats[n].p10,
                  stats[n].p90, stats[n].median * 1000.0 / programs);
    }
    std::printf("  audit cost: ward-run / sandbox = %.2fx (target <= 1.3x: %s)\n", ratio, met ? "met" : "NOT met");
    std::printf("  with audit.files \"denied\": ward-files / sandbox = %.2fx (not the default level; no target)\n",
                ratio_files);
    std::printf("  exec events recorded: %ld and %ld of %ld programs; file denials: %ld of %d runs\n", recorded,
                recorded_files, expected, denials, rounds);
  }
  if (recorded != expected || recorded_files != expected || denials != rounds) {
    std::fprintf(stderr,
                 "ward_audit_bench: the store holds %ld and %ld exec events of /bin/true (expected %ld) and %ld file "
                 "denials (expected %d)\n",
                 recorded, recorded_files, expected, denials, rounds);
    return 1;
  }
  return 0;
}
