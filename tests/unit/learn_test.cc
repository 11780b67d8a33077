// ward learn's rules (src/audit/learn.h) and the file-call reader's pure
// parts (src/net/file_notice.h), without a sandbox.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "audit/learn.h"
#include "base/path.h"
#include "net/file_calls.h"
#include "net/file_notice.h"

namespace ward::audit {
namespace {

// A host with these files and directories (and their parents).
struct FakeHost {
  std::set<std::string> files, dirs;
  std::map<std::string, std::string> links;  // name -> target
  PathFacts operator()(const std::string& p) const {
    std::string real = p;
    for (const auto& [name, target] : links) {
      if (p == name || p.compare(0, name.size() + 1, name + "/") == 0) real = target + p.substr(name.size());
    }
    if (dirs.count(real)) return {true, true, real};
    if (files.count(real)) return {true, false, real};
    return {};
  }
};

int64_t t = 1000;
FileAccess F(FileOp op, const std::string& path, int pid = 2) { return {++t, pid, op, path}; }
ProcessExec X(int pid, const std::string& path) {
  ProcessExec e;
  e.time_ns = ++t;
  e.pid = pid;
  e.path = path;
  e.argv = {path};
  return e;
}

LearnInput Base(const FakeHost& host) {
  LearnInput in;
  in.workspace = "/w";
  in.covered = {"/usr", "/tmp", "/proc"};
  in.may_read = {"/w", "/opt", "/etc"};
  in.may_write = {"/w"};
  in.facts = host;
  return in;
}

std::vector<std::string> Paths(const std::vector<LearnedGrant>& g) {
  std::vector<std::string> v;
  for (const auto& x : g) v.push_back(x.path);
  return v;
}

TEST(Learn, GrantsWhatWasUsedWithWhy) {
  FakeHost host{{"/w/a.txt", "/w/secret", "/opt/tool/bin/t", "/usr/bin/cat"}, {"/w", "/w/out", "/opt/tool/bin"}};
  LearnInput in = Base(host);
  in.execs = {X(2, "/usr/bin/cat"), X(3, "/opt/tool/bin/t")};
  in.files = {F(FileOp::kRead, "/w/a.txt"), F(FileOp::kCreate, "/w/out/b", 3), F(FileOp::kRead, "/usr/lib/x.so"),
              F(FileOp::kStat, "/w/missing"), F(FileOp::kRead, "/tmp/scratch")};
  // Reorder by time: the execs came first.
  in.execs[0].time_ns = in.execs[1].time_ns = 1;
  LearnedPolicy p = DerivePolicy(in);
  EXPECT_EQ(Paths(p.read), (std::vector<std::string>{"/opt/tool/bin/t", "/w/a.txt"}));
  EXPECT_EQ(Paths(p.write), (std::vector<std::string>{"/w/out"}));
  ASSERT_EQ(p.read.size(), 2u);
  EXPECT_EQ(p.read[1].why, "read by cat");
  EXPECT_NE(p.write[0].why.find("created in by t"), std::string::npos) << p.write[0].why;
  EXPECT_NE(p.text.find("\"${WORKSPACE}/a.txt\"  // read by cat"), std::string::npos) << p.text;
  EXPECT_NE(p.text.find("\"/opt/tool/bin/t\",  // executed\n"), std::string::npos) << p.text;
  EXPECT_NE(p.text.find("\"network\": \"none\""), std::string::npos);
  EXPECT_EQ(p.text.find("secret"), std::string::npos);
}

TEST(Learn, CollapsesADirectoryOfManyEntries) {
  FakeHost host{{"/w/src/a.c", "/w/src/b.c", "/w/src/c.c", "/w/src/d.c", "/w/x"}, {"/w", "/w/src"}};
  LearnInput in = Base(host);
  in.execs = {X(2, "/usr/bin/cc")};
  in.execs[0].time_ns = 1;
  for (const char* f : {"/w/src/a.c", "/w/src/b.c", "/w/src/c.c", "/w/src/d.c", "/w/x"}) in.files.push_back(F(FileOp::kRead, f));
  LearnedPolicy p = DerivePolicy(in);
  EXPECT_EQ(Paths(p.read), (std::vector<std::string>{"/w/src", "/w/x"}));
  EXPECT_NE(p.read[0].why.find("4 paths"), std::string::npos) << p.read[0].why;
  // Three are kept one by one (kCollapseAt is 4).
  in.files.erase(in.files.begin());
  p = DerivePolicy(in);
  EXPECT_EQ(Paths(p.read), (std::vector<std::string>{"/w/src/b.c", "/w/src/c.c", "/w/src/d.c", "/w/x"}));
}

// Collapsed into the workspace at most, and only inside it: elsewhere each
// file stays a grant of its own.
TEST(Learn, CollapsesOnlyInsideTheWorkspace) {
  FakeHost host{{"/w/a", "/w/b", "/w/c", "/w/d", "/opt/a", "/opt/b", "/opt/c", "/opt/d"}, {"/w", "/opt"}};
  LearnInput in = Base(host);
  in.execs = {X(2, "/usr/bin/cat")};
  in.execs[0].time_ns = 1;
  for (const char* f : {"/w/a", "/w/b", "/w/c", "/w/d", "/opt/a", "/opt/b", "/opt/c", "/opt/d"}) {
    in.files.push_back(F(FileOp::kRead, f));
  }
  EXPECT_EQ(Paths(DerivePolicy(in).read), (std::vector<std::string>{"/opt/a", "/opt/b", "/opt/c", "/opt/d", "/w"}));
}

// The review: links planted in the workspace to places the envelope does
// not grant (/root/secret, /etc) were learned by their names, which reach
// the targets. Each path is judged as what it resolves to.
TEST(Learn, ALinkIsJudgedByWhatItReaches) {
  FakeHost host{{"/w/a", "/root/secret/key", "/opt/tool"}, {"/w", "/root/secret", "/etc"}};
  host.links = {{"/w/sec", "/root/secret"}, {"/w/etcl", "/etc"}, {"/w/tool", "/opt/tool"}};
  LearnInput in = Base(host);
  in.execs = {X(2, "/usr/bin/sh")};
  in.execs[0].time_ns = 1;
  in.files = {F(FileOp::kRead, "/w/sec/key"), F(FileOp::kCreate, "/w/etcl/pwned"), F(FileOp::kRead, "/w/tool"),
              F(FileOp::kRead, "/w/a")};
  LearnedPolicy p = DerivePolicy(in);
  // /opt is in the envelope: the target is learned, never the link's name.
  EXPECT_EQ(Paths(p.read), (std::vector<std::string>{"/opt/tool", "/w/a"})) << p.text;
  EXPECT_TRUE(p.write.empty()) << p.text;
  EXPECT_EQ(p.text.find("sec"), std::string::npos) << p.text;
  EXPECT_EQ(p.text.find("etcl"), std::string::npos) << p.text;
}

// A directory only listed or looked up outside the workspace is not
// granted (a grant would show all beneath it): said in the header.
TEST(Learn, AListingOutsideTheWorkspaceIsNotGranted) {
  FakeHost host{{"/opt/data/inner/priv", "/w/x"}, {"/w", "/w/sub", "/opt/data", "/opt/data/inner"}};
  LearnInput in = Base(host);
  in.execs = {X(2, "/usr/bin/ls")};
  in.execs[0].time_ns = 1;
  in.files = {F(FileOp::kStat, "/opt/data"), F(FileOp::kRead, "/opt/data"), F(FileOp::kRead, "/w/sub")};
  LearnedPolicy p = DerivePolicy(in);
  EXPECT_EQ(Paths(p.read), (std::vector<std::string>{"/w/sub"})) << p.text;  // listed in the workspace: granted
  ASSERT_EQ(p.skipped.size(), 1u);
  EXPECT_EQ(p.skipped[0].path, "/opt/data");
  EXPECT_NE(p.text.find("// Not granted: /opt/data (listed, looked up by ls; a grant would show everything beneath it)"),
            std::string::npos) << p.text;
}

// A name a policy path cannot hold literally is not granted: `*` would be a
// pattern, `${` a variable.
TEST(Learn, NamesAPolicyCannotSayAreNotGranted) {
  FakeHost host{{"/w/sub/*", "/w/a${b", "/w/ok"}, {"/w", "/w/sub"}};
  LearnInput in = Base(host);
  in.execs = {X(2, "/usr/bin/cat")};
  in.execs[0].time_ns = 1;
  in.files = {F(FileOp::kRead, "/w/sub/*"), F(FileOp::kRead, "/w/a${b"), F(FileOp::kRead, "/w/ok")};
  LearnedPolicy p = DerivePolicy(in);
  EXPECT_EQ(Paths(p.read), (std::vector<std::string>{"/w/ok"})) << p.text;
  EXPECT_EQ(p.skipped.size(), 2u) << p.text;
}

// process.cwd is named only when something granted lies there (else the
// policy would name a directory the sandbox does not have).
TEST(Learn, TheWorkingDirectoryIsNamedOnlyWhenItLeadsToAGrant) {
  FakeHost host{{"/w/a", "/opt/x"}, {"/w"}};
  LearnInput in = Base(host);
  in.cwd = "/w";
  in.execs = {X(2, "/usr/bin/cat")};
  in.execs[0].time_ns = 1;
  in.files = {F(FileOp::kRead, "/opt/x")};
  EXPECT_EQ(DerivePolicy(in).text.find("\"cwd\""), std::string::npos);
  in.files.push_back(F(FileOp::kRead, "/w/a"));
  EXPECT_NE(DerivePolicy(in).text.find("\"cwd\": \"${CWD}\""), std::string::npos);
}

TEST(Learn, LeavesOutWardsOwnSetupAndWhatTheEnvelopeRefused) {
  FakeHost host{{"/w/a", "/root/.ssh/id", "/w/out/f"}, {"/w", "/w/out", "/run"}};
  LearnInput in = Base(host);
  in.files = {F(FileOp::kCreate, "/run/.ward-mask", 1)};  // before any exec: ward's
  in.execs = {X(2, "/usr/bin/sh")};
  in.files.push_back(F(FileOp::kRead, "/w/a", 1));       // pid 1: ward's init
  in.files.push_back(F(FileOp::kRead, "/root/.ssh/id"));  // outside the envelope: it was refused
  in.files.push_back(F(FileOp::kCreate, "/etc/evil"));    // a write where it may only read
  in.files.push_back(F(FileOp::kWrite, "/w/out/f"));
  LearnedPolicy p = DerivePolicy(in);
  EXPECT_TRUE(p.read.empty()) << p.text;
  EXPECT_EQ(Paths(p.write), (std::vector<std::string>{"/w/out/f"}));
}

TEST(Learn, ADirectoryOnlyPassedThroughNeedsNoGrant) {
  FakeHost host{{"/w/d/a"}, {"/w", "/w/d"}};
  LearnInput in = Base(host);
  in.execs = {X(2, "/usr/bin/cat")};
  in.execs[0].time_ns = 1;
  in.files = {F(FileOp::kStat, "/w"), F(FileOp::kRead, "/w/d"), F(FileOp::kRead, "/w/d/a")};
  EXPECT_EQ(Paths(DerivePolicy(in).read), (std::vector<std::string>{"/w/d/a"}));
}

TEST(Learn, DestinationsByNameAndPort) {
  FakeHost host;
  LearnInput in = Base(host);
  EgressRecord named{"tcp", "pypi.org", "151.101.0.223", 443, true, "", "", "", "", 0};
  EgressRecord bare{"tcp", "", "192.0.2.7", 8080, true, "", "", "", "", 0};
  EgressRecord v6{"tcp", "", "2001:db8::1", 22, true, "", "", "", "", 0};
  EgressRecord refused{"tcp", "evil.example", "192.0.2.9", 443, false, "", "", "", "", 0};
  EgressRecord dns{"dns", "pypi.org", "", 0, true, "", "", "", "", 0};
  in.egress = {named, bare, v6, refused, dns, named};
  LearnedPolicy p = DerivePolicy(in);
  EXPECT_EQ(Paths(p.egress), (std::vector<std::string>{"192.0.2.7:8080", "[2001:db8::1]:22", "pypi.org:443"}));
  EXPECT_NE(p.text.find("\"allow\": ["), std::string::npos) << p.text;
}

TEST(Learn, HostileNamesCannotBreakTheText) {
  FakeHost host{{"/w/a\"b\n// x"}, {"/w"}};
  LearnInput in = Base(host);
  in.execs = {X(2, "/usr/bin/evil\nname")};
  in.execs[0].time_ns = 1;
  in.files = {F(FileOp::kRead, "/w/a\"b\n// x")};
  LearnedPolicy p = DerivePolicy(in);
  // The path is a JSON string; the comment stays on its line.
  EXPECT_NE(p.text.find("\"${WORKSPACE}/a\\\"b\\n// x\"  // read by evil\\x0aname"), std::string::npos) << p.text;
}

}  // namespace
}  // namespace ward::audit

namespace ward::net {
namespace {

TEST(FileNotice, EveryCallHasAShape) {
  for (int nr : kFileCalls) {
    EXPECT_TRUE(IsFileCall(nr)) << nr;
    EXPECT_TRUE(HasShape(nr)) << nr;
  }
  EXPECT_FALSE(IsFileCall(SYS_read));
}

TEST(Path, ResolveByName) {
  EXPECT_EQ(ResolveByName("/a/./b/../c//d/"), "/a/c/d");
  EXPECT_EQ(ResolveByName("/../.."), "/");
  EXPECT_EQ(ResolveByName("/"), "/");
}

}  // namespace
}  // namespace ward::net
