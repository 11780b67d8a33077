// Command-line grants (issue 9, item 7): --read, --write, --deny,
// --allow-net, --env, --memory and --timeout are a policy layer on top of
// --policy/--profile, enforced exactly as the same entries in a file;
// `--policy -` reads the policy from standard input. Bad flags start nothing.
#include "escape_fixture.h"

namespace {

class CliGrants : public Escape {
 protected:
  Outcome WithFlags(const json& policy, const std::vector<std::string>& flags, const std::vector<std::string>& probe) {
    RunOptions o;
    o.flags = flags;
    return RunWard(policy, probe, o);
  }
  // A file of the test's own directory, with `text`, readable from stdin.
  int StdinWith(const std::string& text) {
    const std::string file = root_ + "/stdin-" + std::to_string(stdin_files_++);
    WriteText(file, text);
    return open(file.c_str(), O_RDONLY | O_CLOEXEC);
  }
  int stdin_files_ = 0;
};

TEST_F(CliGrants, ReadMakesAPathVisible) {
  const std::string outside = root_ + "/outside.txt";
  Outcome hidden = RunWard(Standard(), {"read", outside});
  EXPECT_PROBE(hidden, "ENOENT");  // in no grant: absent
  // Absolute, and relative to ward's working directory (W).
  for (const std::string& flag : {outside, std::string("../outside.txt")}) {
    Outcome o = WithFlags(Standard(), {"--read", flag}, {"read", outside});
    EXPECT_PROBE(o, "ok") << "--read " << flag;
    EXPECT_EQ(o.probe.Get("content").rfind("OUTSIDE-", 0), 0u) << o.Describe();
    // Read-only, as filesystem.read.
    Outcome w = WithFlags(Standard(), {"--read", flag}, {"write", outside});
    EXPECT_PROBE(w, "EROFS");
  }
}

TEST_F(CliGrants, WriteMakesAPathWritable) {
  MakeDir(W("out"));
  Outcome ro = RunWard(Standard(), {"write", W("out/new.txt")});
  EXPECT_PROBE(ro, "EROFS");  // W is granted read-only
  Outcome o = WithFlags(Standard(), {"--write", "out"}, {"write", W("out/new.txt")});
  EXPECT_PROBE(o, "ok");
  EXPECT_EQ(ReadOr(W("out/new.txt")), "written-by-probe\n");
}

// --deny beats the policy's grant of the same path, and a grant above it.
TEST_F(CliGrants, DenyHidesAGrantedPath) {
  Outcome ctl = RunWard(Standard(), {"read", W("public.txt")});
  EXPECT_PROBE(ctl, "ok");
  EXPECT_EQ(ctl.probe.Get("content"), "PUBLIC-CONTENT_");  // Clean() makes the newline "_"
  Outcome o = WithFlags(Standard(), {"--deny", "public.txt"}, {"read", W("public.txt")});
  EXPECT_PROBE(o, "EACCES");  // the mode-000 mask, as for filesystem.deny
  EXPECT_EQ(o.probe.Get("step"), "open");
  // `ward policy show` shows the layer applied.
  const std::string file = root_ + "/show.json";
  WriteText(file, Standard().dump());
  Outcome show = Ward({"policy", "show", "--policy", file, "--deny", "public.txt", "--write", "rw/pub.txt"});
  ASSERT_EQ(show.ExitStatus(), 0) << show.Describe();
  json shown = json::parse(show.out, nullptr, false);
  ASSERT_TRUE(shown.is_object()) << show.Describe();
  auto has = [&](const char* list, const std::string& path) {
    for (const auto& p : shown["filesystem"][list]) {
      if (p == path) return true;
    }
    return false;
  };
  EXPECT_TRUE(has("deny", W("public.txt"))) << show.out;
  EXPECT_TRUE(has("write", W("rw/pub.txt"))) << show.out;
}

TEST_F(CliGrants, EnvSetsAndInherits) {
  Outcome ctl = RunWard(Standard(), {"env"});
  EXPECT_PROBE(ctl, "ok");
  EXPECT_EQ(ctl.out.find("ENV WARD_FLAG="), std::string::npos) << ctl.Describe();
  EXPECT_EQ(ctl.out.find("ENV WARD_ESCAPE_INHERITED="), std::string::npos) << ctl.Describe();
  Outcome o = WithFlags(Standard(), {"--env", "WARD_FLAG=a=b c", "--env", "WARD_ESCAPE_INHERITED"}, {"env"});
  EXPECT_PROBE(o, "ok");
  EXPECT_NE(o.out.find("ENV WARD_FLAG=a=b c\n"), std::string::npos) << o.Describe();
  EXPECT_NE(o.out.find("ENV WARD_ESCAPE_INHERITED=inherited-value\n"), std::string::npos) << o.Describe();
  EXPECT_EQ(o.out.find("WARD_ESCAPE_SECRET"), std::string::npos) << "only the named variable is inherited";
}

TEST_F(CliGrants, TimeoutAndMemory) {
  Outcome t = WithFlags(Standard(), {"--timeout", "500ms"}, {"sleep", "10000"});
  EXPECT_EQ(t.ExitStatus(), 124) << t.Describe();
  EXPECT_EQ(t.result.value("timedOut", false), true) << t.Describe();
  Outcome fits = WithFlags(Standard(), {"--timeout", "10s"}, {"sleep", "50"});
  EXPECT_PROBE(fits, "ok");
  EXPECT_EQ(fits.result.value("timedOut", true), false) << fits.Describe();

  const std::string mech = DoctorMechanism("memory");
  Outcome m = WithFlags(Standard(), {"--memory", "64M"}, {"memhog", "512"});
  EXPECT_EQ(m.result["limitMechanisms"].value("memory", ""), mech) << m.Describe();
  EXPECT_NE(m.Status(), "ok") << "512 MiB under a 64 MiB limit" << m.Describe();
  Outcome small = WithFlags(Standard(), {"--memory", "64M"}, {"memhog", "16"});
  EXPECT_PROBE(small, "ok");
}

// --allow-net turns network "none" into egress with the rule allowed.
TEST_F(CliGrants, AllowNetOpensOneDestination) {
  std::string port;
  int s = ListenOnHostLoopback(&port);
  ASSERT_GE(s, 0) << "bind/listen on 127.0.0.1: " << std::strerror(errno);
  HostListener l(s);
  Outcome none = RunWard(Standard(), {"connect-tcp", "169.254.77.1", port});
  EXPECT_EQ(none.out.find("HELLO-FROM-HOST"), std::string::npos) << none.Describe();
  EXPECT_NE(none.Status(), "ok") << none.Describe();
  Outcome o = WithFlags(Standard(), {"--allow-net", "host.ward.internal:" + port}, {"connect-tcp", "169.254.77.1", port});
  EXPECT_PROBE(o, "ok");
  EXPECT_EQ(o.probe.Get("content"), "HELLO-FROM-HOST");
  bool allowed = false;
  for (const auto& e : o.result.value("egress", json::array())) {
    if (e.value("port", 0) == std::stoi(port)) allowed = e["decision"] == "allow" && e["rule"] == "host.ward.internal:" + port;
  }
  EXPECT_TRUE(allowed) << o.result.dump();
  // Another port stays closed.
  Outcome other = WithFlags(Standard(), {"--allow-net", "host.ward.internal:1"}, {"connect-tcp", "169.254.77.1", port});
  EXPECT_PROBE(other, "ECONNREFUSED");
  EXPECT_EQ(other.out.find("HELLO-FROM-HOST"), std::string::npos) << other.Describe();
}

TEST_F(CliGrants, PolicyFromStandardInput) {
  int in = StdinWith(Standard().dump());
  Outcome o = Ward({"run", "--json", "--policy", "-", "--", kProbe, "read", W("public.txt")}, {ws_, in, {}, {}});
  close(in);
  EXPECT_PROBE(o, "ok");
  Outcome denied = Ward({"run", "--json", "--policy", "-", "--", kProbe, "read", W("secret.txt")},
                        {ws_, in = StdinWith(Standard().dump()), {}, {}});
  close(in);
  EXPECT_PROBE(denied, "EACCES");
  // Nothing on standard input: a policy error, nothing started.
  Outcome empty = Ward({"run", "--json", "--policy", "-", "--", kProbe, "read", W("public.txt")});
  EXPECT_EQ(empty.ExitStatus(), 123) << empty.Describe();
  EXPECT_FALSE(empty.probe.present) << empty.Describe();
  EXPECT_NE(empty.result.value("error", "").find("standard input is empty"), std::string::npos) << empty.Describe();
}

// Each bad flag is named with its reason, all of them at once; exit 122
// and nothing runs.
TEST_F(CliGrants, BadFlagsStartNothing) {
  Outcome o = Ward({"run", "--json", "--profile", "minimal", "--read", root_ + "/missing", "--memory", "3",
                    "--timeout", "5 parsecs", "--env", "1X=2", "--allow-net", "not a rule", "--", kProbe, "exit", "0"});
  EXPECT_EQ(o.ExitStatus(), 122) << o.Describe();
  EXPECT_FALSE(o.probe.present) << o.Describe();
  const std::string error = o.result.value("error", "");
  for (const char* flag : {"--read", "--memory \"3\"", "--timeout", "--env \"1X=2\"", "--allow-net \"not a rule\""}) {
    EXPECT_NE(error.find(flag), std::string::npos) << flag << " is not named in: " << error;
  }
  EXPECT_NE(error.find("No such file or directory"), std::string::npos) << error;
  // A layer is checked as a whole, like a policy: a working directory the
  // same command line hides.
  Outcome cwd = Ward({"run", "--json", "--profile", "minimal", "--cwd", W("secretdir"), "--deny", W("secretdir"), "--",
                      kProbe, "exit", "0"});
  EXPECT_EQ(cwd.ExitStatus(), 122) << cwd.Describe();
  EXPECT_NE(cwd.result.value("error", "").find("--cwd"), std::string::npos) << cwd.Describe();
  EXPECT_NE(cwd.result.value("error", "").find("lies under the denied path"), std::string::npos) << cwd.Describe();
  // The host's network is not narrowed by an allow rule: an error, not a
  // silent no-op.
  const std::string host = root_ + "/host.json";
  WriteText(host, HostNetwork().dump());
  Outcome h = Ward({"run", "--json", "--policy", host, "--allow-net", "example.com", "--", kProbe, "exit", "0"});
  EXPECT_EQ(h.ExitStatus(), 122) << h.Describe();
  EXPECT_NE(h.result.value("error", "").find("\"host\""), std::string::npos) << h.Describe();
  // Control: the same command line without the bad flags runs.
  Outcome ok = Ward({"run", "--json", "--profile", "minimal", "--read", Dirname(kProbe), "--cwd", "/", "--", kProbe, "exit", "0"});
  EXPECT_EQ(ok.ExitStatus(), 0) << ok.Describe();
}

// Deny globs (issue 9, item 6): every match is hidden, as a literal deny
// is; a match created during a run is hidden from the runs after it; a deny
// that names nothing under a grant is a warning (an error with --strict).
TEST_F(CliGrants, DenyGlobsHideEveryMatch) {
  MakeDir(W("a"));
  MakeDir(W("a/b"));
  WriteText(W("top.env"), secret_ + "\n");
  WriteText(W("a/b/deep.env"), secret_ + "\n");
  json p = Standard();
  p["filesystem"]["deny"].push_back(W("**/*.env"));
  for (const std::string& f : {W("top.env"), W("a/b/deep.env")}) {
    Outcome o = RunWard(p, {"read", f});
    EXPECT_PROBE(o, "EACCES") << f;
    EXPECT_EQ(o.probe.Get("step"), "open");
    ExpectNoSecret(o);
    Outcome ctl = RunWard(Standard(), {"read", f});  // positive control: no glob, readable
    EXPECT_PROBE(ctl, "ok") << f;
  }
  Outcome pub = RunWard(p, {"read", W("public.txt")});
  EXPECT_PROBE(pub, "ok");
  // Made during one run inside the writable grant: hidden from the next.
  Outcome made = RunWard(p, {"write", W("rw/made.env")});
  EXPECT_PROBE(made, "ok");
  Outcome later = RunWard(p, {"read", W("rw/made.env")});
  EXPECT_PROBE(later, "EACCES");
}

TEST_F(CliGrants, DenyThatNamesNothingIsAWarning) {
  json p = Standard();
  p["filesystem"]["deny"].push_back(W(".evn"));
  Outcome o = RunWard(p, {"read", W("public.txt")});
  EXPECT_PROBE(o, "ok");
  ASSERT_TRUE(o.result.contains("warnings")) << o.Describe();
  EXPECT_NE(o.result["warnings"][0].get<std::string>().find("matches nothing under the grant"), std::string::npos)
      << o.Describe();
  RunOptions strict;
  strict.flags = {"--strict"};
  Outcome s = RunWard(p, {"read", W("public.txt")}, strict);
  EXPECT_EQ(s.ExitStatus(), 123) << s.Describe();
  EXPECT_FALSE(s.probe.present) << s.Describe();
  // ward policy check says the same, without running anything.
  const std::string file = root_ + "/typo.json";
  WriteText(file, p.dump());
  Outcome check = Ward({"policy", "check", file});
  EXPECT_EQ(check.ExitStatus(), 0) << check.Describe();
  EXPECT_NE(check.out.find("warning: /filesystem/deny/3"), std::string::npos) << check.Describe();
  Outcome strict_check = Ward({"policy", "check", "--strict", file});
  EXPECT_EQ(strict_check.ExitStatus(), 123) << strict_check.Describe();
  // Control: the deny names a file that exists; and one no grant shows
  // (it could not matter) is not a warning either.
  json fine = Standard();
  fine["filesystem"]["deny"].push_back(root_ + "/no-such-dir/.env");
  const std::string fine_file = root_ + "/fine.json";
  WriteText(fine_file, fine.dump());
  Outcome clean = Ward({"policy", "check", "--strict", fine_file});
  EXPECT_EQ(clean.ExitStatus(), 0) << clean.Describe();
  EXPECT_EQ(clean.out.find("warning"), std::string::npos) << clean.Describe();
}

}  // namespace
