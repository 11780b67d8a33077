// Results a program can parse (issue 9, item 5): `--json` is one JSON object
// on a line of its own for every outcome, ward's own errors included, and
// `--result-fd` / `--result-file` give the same object without stderr.
#include <algorithm>

#include "escape_fixture.h"

namespace {

class Results : public Escape {};

TEST_F(Results, UsageAndPolicyErrorsAreReported) {
  Outcome usage = Ward({"run", "--json", "--no-such-flag", "--", "/bin/true"});
  EXPECT_EQ(usage.ExitStatus(), 122) << usage.Describe();
  ASSERT_TRUE(usage.result.is_object()) << usage.Describe();
  EXPECT_EQ(usage.result["exitStatus"], 122);
  EXPECT_NE(usage.result.value("error", "").find("--no-such-flag"), std::string::npos) << usage.Describe();

  const std::string bad = root_ + "/bad.json";
  WriteText(bad, R"({"ward": 1, "filesystem": {"raed": []}})");
  Outcome policy = Ward({"run", "--json", "--policy", bad, "--", "/bin/true"});
  EXPECT_EQ(policy.ExitStatus(), 123) << policy.Describe();
  ASSERT_TRUE(policy.result.is_object()) << policy.Describe();
  EXPECT_EQ(policy.result["exitStatus"], 123);
  EXPECT_NE(policy.result.value("error", "").find("/filesystem/raed"), std::string::npos) << policy.Describe();
  // Control: without --json, no JSON.
  Outcome plain = Ward({"run", "--policy", bad, "--", "/bin/true"});
  EXPECT_EQ(plain.ExitStatus(), 123);
  EXPECT_TRUE(plain.result.is_null()) << plain.Describe();
}

// The workload's stderr ends without a newline: the result is still a line
// of its own.
TEST_F(Results, JsonIsALineOfItsOwn) {
  Outcome o = RunWard(Standard(), {"write-stderr-raw", "partial"});
  ASSERT_TRUE(o.result.is_object()) << o.Describe();
  EXPECT_EQ(o.result["exitStatus"], 0);
  EXPECT_NE(o.err.find("partial\n"), std::string::npos) << o.Describe();
}

TEST_F(Results, ResultFdAndFile) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  const std::string file = root_ + "/result.json";
  const std::string policy = root_ + "/p.json";
  WriteText(policy, Standard().dump());
  // fd 3 in ward: its result; the workload never holds it.
  Outcome o = Ward({"run", "--policy", policy, "--result-fd", "3", "--result-file", file, "--", kProbe, "fd-type", "3"},
                   {ws_, -1, {{p[1], 3}}, {}});
  close(p[1]);
  char buf[65536];
  ssize_t n = read(p[0], buf, sizeof buf);
  close(p[0]);
  ASSERT_GT(n, 0);
  std::string line(buf, static_cast<size_t>(n));
  ASSERT_EQ(line.back(), '\n');
  json from_fd = json::parse(line, nullptr, false);
  ASSERT_TRUE(from_fd.is_object()) << line;
  EXPECT_EQ(from_fd["exitStatus"], 0);
  EXPECT_PROBE(o, "EBADF");
  json from_file = json::parse(ReadOr(file), nullptr, false);
  ASSERT_TRUE(from_file.is_object()) << ReadOr(file);
  EXPECT_EQ(from_file["exitStatus"], 0);
  EXPECT_TRUE(o.result.is_null()) << "no --json: stderr carries no result" << o.Describe();

  // A place the file cannot be made: a usage error before anything runs,
  // and nothing left behind.
  const std::string nowhere = root_ + "/missing-dir/result.json";
  Outcome bad = Ward({"run", "--json", "--policy", policy, "--result-file", nowhere, "--", kProbe, "exit", "0"});
  EXPECT_EQ(bad.ExitStatus(), 122) << bad.Describe();
  ASSERT_TRUE(bad.result.is_object());
  EXPECT_NE(bad.result.value("error", "").find("--result-file"), std::string::npos);
  // A descriptor that is not open.
  Outcome closed = Ward({"run", "--json", "--policy", policy, "--result-fd", "9", "--", kProbe, "exit", "0"});
  EXPECT_EQ(closed.ExitStatus(), 122) << closed.Describe();
  // The file holds the outcome of a failed run too.
  Outcome failed = Ward({"run", "--policy", policy, "--result-file", file, "--", "/no/such/command"});
  EXPECT_EQ(failed.ExitStatus(), 127) << failed.Describe();
  json again = json::parse(ReadOr(file), nullptr, false);
  ASSERT_TRUE(again.is_object());
  EXPECT_EQ(again["exitStatus"], 127);
  // Only the result file itself is there: no temporary beside it.
  int entries = 0;
  DIR* d = opendir(root_.c_str());
  while (dirent* e = readdir(d)) {
    if (std::string(e->d_name).find("result.json.ward-") != std::string::npos) ++entries;
  }
  closedir(d);
  EXPECT_EQ(entries, 0);
}

}  // namespace

namespace {

// `echo x | ward run --pty -- cat` hung (issue 9, item 4): the end of a
// non-terminal stdin reaches the program as a terminal gives it (VEOF), after
// a partial line too, and ward exits with the program.
class PtyInput : public Escape {};

TEST_F(PtyInput, EndOfInputReachesTheProgram) {
  for (const std::string input : {"x\n", "partial"}) {
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    ASSERT_EQ(write(p[1], input.data(), input.size()), static_cast<ssize_t>(input.size()));
    close(p[1]);
    RunOptions o;
    o.flags = {"--pty"};
    o.stdin_fd = p[0];
    o.timeout_ms = 10000;
    Running r = StartWard(Standard(), {"cat-stdin"}, o);
    close(p[0]);
    Outcome out = FinishWard(r, 10000);
    EXPECT_FALSE(out.host_timeout) << "hung at the end of input" << out.Describe();
    EXPECT_EQ(out.ExitStatus(), 0) << out.Describe();
    // The terminal echoes the input first (a partial line stays on the
    // line the result is then printed on).
    std::string want = input.back() == '\n' ? input.substr(0, input.size() - 1) : input;
    EXPECT_NE(out.out.find("RESULT ok content=" + want), std::string::npos) << out.Describe();
  }
}

// `printf 'echo hi\n' | ward run --pty -- bash` never ended (issue 9): the
// VEOF written at once reached the terminal in canonical mode and readline,
// reading in raw mode, took it as a NUL. A script piped into an interactive
// bash ends as `bash < script` does: with its `exit`, or after its last line
// with the last status, also when the last line runs long (the end is then
// written in canonical mode and told anew when readline goes raw). Control:
// the same scripts without --pty (bash reads a pipe).
TEST_F(PtyInput, ScriptPipedIntoAnInteractiveShellEnds) {
  struct Case {
    std::string script;
    int status;
  };
  for (const Case& c : {Case{"echo hi\nexit 3\n", 3}, Case{"echo hi\n", 0}, Case{"echo hi\nsleep 0.5\n", 0},
                        Case{"echo hi\nfalse\n", 1}}) {
    for (bool pty : {true, false}) {
      int p[2];
      ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
      ASSERT_EQ(write(p[1], c.script.data(), c.script.size()), static_cast<ssize_t>(c.script.size()));
      close(p[1]);
      std::vector<std::string> args = {"run", "--json", "--profile", "minimal", "--cwd", "/", "--timeout", "10s"};
      if (pty) args.push_back("--pty");
      for (const char* a : {"--", "bash", "--norc", "--noprofile"}) args.push_back(a);
      Outcome o = Ward(args, {ws_, p[0], {}, {}});
      close(p[0]);
      const std::string what = std::string(pty ? "--pty" : "no --pty (control)") + ", script " + c.script;
      EXPECT_FALSE(o.host_timeout) << what << o.Describe();
      ASSERT_TRUE(o.result.is_object()) << what << o.Describe();
      EXPECT_FALSE(o.result.value("timedOut", false))
          << what << ": the end of input never reached bash" << o.Describe();
      EXPECT_EQ(o.ExitStatus(), c.status) << what << o.Describe();
      // "hi" on a line of its own (after bash's bracketed-paste sequence on
      // a terminal), not only the echo of the command line.
      std::string out = o.out;
      out.erase(std::remove(out.begin(), out.end(), '\r'), out.end());
      EXPECT_TRUE(out.starts_with("hi\n") || out.find("\nhi\n") != std::string::npos ||
                  out.find("\x1b[?2004lhi\n") != std::string::npos)
          << what << o.Describe();
    }
  }
}

}  // namespace

namespace {

// `--cwd src` (relative) is the caller's src (issue 9, item 9).
class Cwd : public Escape {};

TEST_F(Cwd, RelativeCwdIsTheCallersDirectory) {
  RunOptions o;
  o.flags = {"--cwd", "rw"};  // ward runs in W
  Outcome rel = RunWard(Standard(), {"pwd"}, o);
  EXPECT_PROBE(rel, "ok");
  EXPECT_EQ(rel.probe.Get("cwd"), W("rw")) << rel.Describe();
  // Control: the absolute form.
  o.flags = {"--cwd", W("rw")};
  Outcome abs = RunWard(Standard(), {"pwd"}, o);
  EXPECT_EQ(abs.probe.Get("cwd"), W("rw")) << abs.Describe();
  // A relative directory that is not visible: refused, with the reason.
  o.flags = {"--cwd", "../outside"};
  Outcome bad = RunWard(Standard(), {"pwd"}, o);
  EXPECT_EQ(bad.ExitStatus(), 123) << bad.Describe();
  EXPECT_NE(bad.err.find("/process/cwd"), std::string::npos) << bad.Describe();
}

// The working directory never silently becomes "/": ward run from a
// directory the policy does not show is an error naming it.
TEST_F(Cwd, InvisibleWorkingDirectoryIsAnError) {
  const std::string file = root_ + "/p.json";
  WriteText(file, Standard().dump());
  Outcome o = Ward({"run", "--json", "--policy", file, "--", kProbe, "pwd"}, {root_, -1, {}, {}});
  EXPECT_EQ(o.ExitStatus(), 123) << o.Describe();
  EXPECT_FALSE(o.probe.present) << o.Describe();
  EXPECT_NE(o.result.value("error", "").find("the current directory \"" + root_ + "\" is not visible"), std::string::npos)
      << o.Describe();
  // Controls: a working directory chosen with --cwd; the same directory granted.
  Outcome chosen = Ward({"run", "--json", "--policy", file, "--cwd", W(), "--", kProbe, "pwd"}, {root_, -1, {}, {}});
  EXPECT_PROBE(chosen, "ok");
  EXPECT_EQ(chosen.probe.Get("cwd"), W());
  Outcome granted = Ward({"run", "--json", "--policy", file, "--read", ".", "--", kProbe, "pwd"}, {root_, -1, {}, {}});
  EXPECT_PROBE(granted, "ok");
  EXPECT_EQ(granted.probe.Get("cwd"), root_);
}

// `ward run` from /tmp: the default profile's workspace is /tmp itself,
// which is then the host's /tmp (read-only, as the profile grants it)
// instead of the private one.
TEST_F(Cwd, RunFromTmp) {
  char tmpl[] = "/tmp/ward-escape-tmp-XXXXXX";
  int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(write(fd, "HOST-TMP\n", 9), 9);
  close(fd);
  const std::string file = tmpl;
  Outcome o = Ward({"run", "--json", "--read", Dirname(kProbe), "--", kProbe, "read", file}, {"/tmp", -1, {}, {}});
  EXPECT_PROBE(o, "ok");
  EXPECT_EQ(o.probe.Get("content"), "HOST-TMP_") << o.Describe();
  Outcome pwd = Ward({"run", "--json", "--read", Dirname(kProbe), "--", kProbe, "pwd"}, {"/tmp", -1, {}, {}});
  EXPECT_EQ(pwd.probe.Get("cwd"), "/tmp") << pwd.Describe();
  Outcome w = Ward({"run", "--json", "--read", Dirname(kProbe), "--", kProbe, "write", file}, {"/tmp", -1, {}, {}});
  EXPECT_PROBE(w, "EROFS");
  // Control: from elsewhere, /tmp is the private one, where the file is not.
  Outcome priv = Ward({"run", "--json", "--read", Dirname(kProbe), "--", kProbe, "read", file});
  EXPECT_PROBE(priv, "ENOENT");
  unlink(tmpl);
}

}  // namespace
