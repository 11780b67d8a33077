// Home and toolchains (issue 9, item 8): a private home at the caller's
// home path, seeded with their git identity and nothing else of theirs; a
// command that the caller's PATH finds but the sandbox does not show is an
// error naming what to grant, and another program of the same name inside
// is a warning (an error with --strict).
#include "escape_fixture.h"

namespace {

class Home : public Escape {
 protected:
  void SetUp() override {
    Escape::SetUp();
    home_ = root_ + "/home";
    MakeDir(home_, 0755);
    WriteText(home_ + "/.gitconfig",
              "[core]\n\teditor = vim\n[user]\n\tname = \"Test Person\" # a comment\n\temail = t@example.com\n"
              "[credential]\n\thelper = store --file " + home_ + "/.git-credentials\n");
    WriteText(home_ + "/.git-credentials", "https://user:" + secret_ + "@example.com\n");
  }
  // Env() with HOME (and PATH) of the test's own.
  std::vector<std::string> HomeEnv(const std::string& path = "/usr/local/bin:/usr/bin:/bin") const {
    std::vector<std::string> env = Env();
    for (auto& e : env) {
      if (e.rfind("HOME=", 0) == 0) e = "HOME=" + home_;
      if (e.rfind("PATH=", 0) == 0) e = "PATH=" + path;
    }
    return env;
  }
  Outcome WardWith(const json& policy, const std::vector<std::string>& flags, const std::vector<std::string>& command,
                   const std::vector<std::string>& env) {
    const std::string file = root_ + "/policy-" + std::to_string(files_++) + ".json";
    WriteText(file, policy.dump());
    std::vector<std::string> argv = {"run", "--json", "--policy", file};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back("--");
    argv.insert(argv.end(), command.begin(), command.end());
    return Ward(argv, {ws_, -1, {}, env});
  }
  json PrivateHome() const {
    json p = Standard();
    p["filesystem"]["home"] = "private";
    p["process"] = {{"env", {{"inherit", {"PATH", "HOME"}}}}};
    return p;
  }
  std::string home_;
  int files_ = 0;
};

TEST_F(Home, PrivateHomeHoldsTheCallersGitIdentityAndNothingElse) {
  Outcome cfg = WardWith(PrivateHome(), {}, {kProbe, "read", home_ + "/.gitconfig"}, HomeEnv());
  EXPECT_PROBE(cfg, "ok");
  const std::string content = cfg.probe.Get("content");
  EXPECT_NE(content.find("Test_Person"), std::string::npos) << cfg.Describe();  // Clean() makes spaces "_"
  EXPECT_NE(content.find("t@example.com"), std::string::npos) << cfg.Describe();
  EXPECT_EQ(content.find("credential"), std::string::npos) << "only the identity is seeded" << cfg.Describe();
  EXPECT_EQ(content.find("editor"), std::string::npos) << cfg.Describe();
  Outcome creds = WardWith(PrivateHome(), {}, {kProbe, "read", home_ + "/.git-credentials"}, HomeEnv());
  EXPECT_PROBE(creds, "ENOENT");
  ExpectNoSecret(creds);
  // Writable, and gone with the sandbox.
  Outcome w = WardWith(PrivateHome(), {}, {kProbe, "write", home_ + "/made-inside"}, HomeEnv());
  EXPECT_PROBE(w, "ok");
  struct stat st;
  EXPECT_NE(stat((home_ + "/made-inside").c_str(), &st), 0) << "the private home reached the host";
  Outcome ls = WardWith(PrivateHome(), {}, {kProbe, "ls", home_}, HomeEnv());
  EXPECT_PROBE(ls, "ok");
  EXPECT_EQ(ls.probe.Get("names"), ".gitconfig") << ls.Describe();
  // Control: without "home": "private" the home path does not exist inside.
  json none = PrivateHome();
  none["filesystem"]["home"] = "none";
  Outcome n = WardWith(none, {}, {kProbe, "read", home_ + "/.gitconfig"}, HomeEnv());
  EXPECT_PROBE(n, "ENOENT");
}

TEST_F(Home, CallerWithoutGitIdentityGetsAPlaceholder) {
  unlink((home_ + "/.gitconfig").c_str());
  Outcome cfg = WardWith(PrivateHome(), {}, {kProbe, "read", home_ + "/.gitconfig"}, HomeEnv());
  EXPECT_PROBE(cfg, "ok");
  EXPECT_NE(cfg.probe.Get("content").find("@ward.invalid"), std::string::npos) << cfg.Describe();
}

TEST_F(Home, CommandOnlyOnTheCallersPathNamesTheGrant) {
  const std::string tools = root_ + "/tools";
  MakeDir(tools);
  MakeDir(tools + "/bin");
  WriteText(tools + "/bin/ward-escape-tool", "#!/bin/sh\necho TOOL-RAN\n");
  chmod((tools + "/bin/ward-escape-tool").c_str(), 0755);
  const std::string path = tools + "/bin:/usr/local/bin:/usr/bin:/bin";
  Outcome o = WardWith(PrivateHome(), {}, {"ward-escape-tool"}, HomeEnv(path));
  EXPECT_EQ(o.ExitStatus(), 127) << o.Describe();
  const std::string error = o.result.value("error", "");
  EXPECT_NE(error.find("`ward-escape-tool` is " + tools + "/bin/ward-escape-tool on your PATH"), std::string::npos) << error;
  EXPECT_NE(error.find("--read " + tools), std::string::npos) << error;
  // Control: granted as the message says, it runs.
  Outcome ok = WardWith(PrivateHome(), {"--read", tools}, {"ward-escape-tool"}, HomeEnv(path));
  EXPECT_EQ(ok.ExitStatus(), 0) << ok.Describe();
  EXPECT_NE(ok.out.find("TOOL-RAN"), std::string::npos) << ok.Describe();
}

TEST_F(Home, AnotherProgramOfTheSameNameIsAWarning) {
  const std::string tools = root_ + "/tools";
  MakeDir(tools);
  MakeDir(tools + "/bin");
  WriteText(tools + "/bin/true", "#!/bin/sh\necho SHADOW\n");
  chmod((tools + "/bin/true").c_str(), 0755);
  const std::string path = tools + "/bin:/usr/local/bin:/usr/bin:/bin";
  Outcome o = WardWith(PrivateHome(), {}, {"true"}, HomeEnv(path));
  EXPECT_EQ(o.ExitStatus(), 0) << o.Describe();
  EXPECT_EQ(o.out.find("SHADOW"), std::string::npos) << o.Describe();
  ASSERT_TRUE(o.result.contains("warnings")) << o.Describe();
  EXPECT_NE(o.result["warnings"][0].get<std::string>().find("`true` is " + tools + "/bin/true on your PATH but"),
            std::string::npos)
      << o.Describe();
  EXPECT_NE(o.err.find("ward: warning: `true`"), std::string::npos) << o.Describe();
  // --strict: the warning is an error, nothing runs.
  Outcome strict = WardWith(PrivateHome(), {"--strict"}, {"true"}, HomeEnv(path));
  EXPECT_EQ(strict.ExitStatus(), 123) << strict.Describe();
  EXPECT_NE(strict.result.value("error", "").find("--strict"), std::string::npos) << strict.Describe();
  // Control: the caller's PATH finds the same program as the sandbox's.
  Outcome same = WardWith(PrivateHome(), {"--strict"}, {"true"}, HomeEnv());
  EXPECT_EQ(same.ExitStatus(), 0) << same.Describe();
  EXPECT_FALSE(same.result.contains("warnings")) << same.Describe();
}

}  // namespace
