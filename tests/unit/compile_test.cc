// The plan compiler against a real directory tree: which mounts, masks,
// symlinks and landlock grants a policy turns into.
#include "enforce/compile.h"
#include "enforce/glob.h"
#include "policy/paths.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "enforce/landlock.h"

namespace ward {
namespace {

namespace fs = std::filesystem;

class CompileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/var/tmp/ward-compile-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    fs::create_directories(root_ + "/ws/sub/deep");
    fs::create_directories(root_ + "/ws/.ssh");
    std::ofstream(root_ + "/ws/.env") << "SECRET=1";
    std::ofstream(root_ + "/ws/sub/deep/keep") << "x";
    fs::create_symlink(root_ + "/ws/sub", root_ + "/link");
    // The caller's working directory must be visible in the sandbox (or
    // process.cwd set): "/" always is.
    ASSERT_EQ(chdir("/"), 0);
  }
  void TearDown() override { fs::remove_all(root_); }

  Policy Base() {
    Policy p;
    p.filesystem.system = false;
    return p;
  }
  static const MountOp* Find(const LaunchPlan& plan, MountOp::Kind kind, const std::string& abs) {
    for (const auto& op : plan.mounts) {
      if (op.kind == kind && "/" + op.target == abs) return &op;
    }
    return nullptr;
  }
  static size_t IndexOf(const LaunchPlan& plan, const MountOp* op) { return static_cast<size_t>(op - plan.mounts.data()); }
  // A unix socket file at `path`; the socket is closed, the file stays.
  static void MakeSocket(const std::string& path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0) << strerror(errno);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    ASSERT_LT(path.size(), sizeof a.sun_path);
    memcpy(a.sun_path, path.c_str(), path.size() + 1);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << path << ": " << strerror(errno);
    close(fd);
  }
  static void MakeFifo(const std::string& path) {
    ASSERT_EQ(mkfifo(path.c_str(), 0666), 0) << path << ": " << strerror(errno);
  }
  // A host-side landlock rule on exactly `path`, writable or not.
  static bool HasRule(const LaunchPlan& plan, const std::string& path, bool write) {
    return std::any_of(plan.landlock.begin(), plan.landlock.end(),
                       [&](const LandlockGrant& g) { return g.path == path && g.write == write; });
  }

  std::string root_;
};

TEST_F(CompileTest, ReadGrantIsReadOnlyBindWithLandlockRule) {
  Policy p = Base();
  p.filesystem.read = {root_ + "/ws"};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_TRUE(plan) << plan.error().message;
  const MountOp* bind = Find(*plan, MountOp::Kind::kBind, root_ + "/ws");
  ASSERT_NE(bind, nullptr);
  EXPECT_EQ(bind->source, root_ + "/ws");
  EXPECT_TRUE(bind->attr_set & MOUNT_ATTR_RDONLY);
  EXPECT_TRUE(bind->attr_set & MOUNT_ATTR_NOSUID);
  EXPECT_TRUE(bind->attr_set & MOUNT_ATTR_NODEV);
  ASSERT_EQ(plan->landlock.size(), 1u);
  EXPECT_EQ(plan->landlock[0].path, root_ + "/ws");
  EXPECT_FALSE(plan->landlock[0].write);
  // The root tmpfs turns read-only last.
  EXPECT_EQ(plan->mounts.back().kind, MountOp::Kind::kSetAttr);
  EXPECT_EQ(plan->mounts.back().target, ".");
}

TEST_F(CompileTest, DenyUnderWriteGrantIsMaskedAfterTheBind) {
  Policy p = Base();
  p.filesystem.write = {root_ + "/ws"};
  p.filesystem.deny = {root_ + "/ws/.env", root_ + "/ws/.ssh"};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_TRUE(plan) << plan.error().message;
  const MountOp* bind = Find(*plan, MountOp::Kind::kBind, root_ + "/ws");
  const MountOp* file = Find(*plan, MountOp::Kind::kMaskFile, root_ + "/ws/.env");
  const MountOp* dir = Find(*plan, MountOp::Kind::kMaskDir, root_ + "/ws/.ssh");
  ASSERT_NE(bind, nullptr);
  ASSERT_NE(file, nullptr);
  ASSERT_NE(dir, nullptr);
  EXPECT_FALSE(bind->attr_set & MOUNT_ATTR_RDONLY);
  EXPECT_LT(IndexOf(*plan, bind), IndexOf(*plan, file));
  EXPECT_LT(IndexOf(*plan, bind), IndexOf(*plan, dir));
  EXPECT_EQ(dir->mode, 0u);
  EXPECT_TRUE(dir->attr_set & MOUNT_ATTR_RDONLY);
  // The mask file is created first and unlinked once bound.
  EXPECT_EQ(plan->mounts.front().kind, MountOp::Kind::kWriteFile);
  EXPECT_EQ(plan->mounts.front().target, ".ward-mask");
  EXPECT_EQ(plan->mounts.front().mode, 0u);
}

TEST_F(CompileTest, MoreSpecificGrantBeneathADenyStaysVisible) {
  Policy p = Base();
  p.filesystem.read = {root_ + "/ws", root_ + "/ws/sub/deep"};
  p.filesystem.deny = {root_ + "/ws/sub"};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_TRUE(plan) << plan.error().message;
  const MountOp* mask = Find(*plan, MountOp::Kind::kMaskDir, root_ + "/ws/sub");
  const MountOp* mkdir = Find(*plan, MountOp::Kind::kMkdir, root_ + "/ws/sub/deep");
  const MountOp* inner = Find(*plan, MountOp::Kind::kBind, root_ + "/ws/sub/deep");
  ASSERT_NE(mask, nullptr);
  ASSERT_NE(mkdir, nullptr);
  ASSERT_NE(inner, nullptr);
  EXPECT_EQ(mask->mode, 0755u);  // traversable to reach the grant
  EXPECT_LT(IndexOf(*plan, mask), IndexOf(*plan, mkdir));
  EXPECT_LT(IndexOf(*plan, mkdir), IndexOf(*plan, inner));
  // ... and the mask turns read-only after the grant beneath it is mounted.
  const MountOp* ro = Find(*plan, MountOp::Kind::kSetAttr, root_ + "/ws/sub");
  ASSERT_NE(ro, nullptr);
  EXPECT_LT(IndexOf(*plan, inner), IndexOf(*plan, ro));
  EXPECT_TRUE(ro->attr_set & MOUNT_ATTR_RDONLY);
}

TEST_F(CompileTest, EqualSpecificityDenyBeatsAllow) {
  Policy p = Base();
  p.filesystem.read = {root_ + "/ws", root_ + "/ws/sub"};
  p.filesystem.deny = {root_ + "/ws/sub"};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_EQ(Find(*plan, MountOp::Kind::kBind, root_ + "/ws/sub"), nullptr);
  EXPECT_NE(Find(*plan, MountOp::Kind::kMaskDir, root_ + "/ws/sub"), nullptr);
}

TEST_F(CompileTest, SymlinksAreResolvedBeforeRulesAndRecreated) {
  Policy p = Base();
  p.filesystem.read = {root_ + "/link"};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_NE(Find(*plan, MountOp::Kind::kBind, root_ + "/ws/sub"), nullptr);
  const MountOp* link = Find(*plan, MountOp::Kind::kSymlink, root_ + "/link");
  ASSERT_NE(link, nullptr);
  EXPECT_EQ(link->source, root_ + "/ws/sub");
  // A deny through the link hides the target.
  p.filesystem.read = {root_ + "/ws"};
  p.filesystem.deny = {root_ + "/link"};
  plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_NE(Find(*plan, MountOp::Kind::kMaskDir, root_ + "/ws/sub"), nullptr);
}

TEST_F(CompileTest, MissingGrantIsAPolicyErrorNamingTheField) {
  Policy p = Base();
  p.filesystem.read = {root_ + "/ws", root_ + "/nope"};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().code, Error::Code::kPolicy);
  EXPECT_NE(plan.error().message.find("/filesystem/read/1"), std::string::npos) << plan.error().message;
  EXPECT_NE(plan.error().message.find("does not exist"), std::string::npos);
}

TEST_F(CompileTest, DenyOfMissingPathIsANoOp) {
  Policy p = Base();
  p.filesystem.read = {root_ + "/ws"};
  p.filesystem.deny = {root_ + "/ws/not-there"};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_TRUE(plan) << plan.error().message;
  for (const auto& op : plan->mounts) EXPECT_EQ(op.target.find("not-there"), std::string::npos);
}

TEST_F(CompileTest, GrantResolvingIntoProcIsRefused) {
  fs::create_symlink("/proc/self", root_ + "/ws/self");
  Policy p = Base();
  p.filesystem.read = {root_ + "/ws/self"};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_FALSE(plan);
  EXPECT_NE(plan.error().message.find("cannot be granted"), std::string::npos) << plan.error().message;
}

// A grant of /tmp itself (`ward run` from /tmp, whose workspace is /tmp)
// is the host's /tmp with the grant's access, instead of the private one; a
// deny of it is what the private /tmp does already.
TEST_F(CompileTest, GrantOfTmpItselfIsTheHostsTmp) {
  Policy p = Base();
  p.filesystem.read = {"/tmp"};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_TRUE(plan) << plan.error().message;
  const MountOp* bind = Find(*plan, MountOp::Kind::kBind, "/tmp");
  ASSERT_NE(bind, nullptr);
  EXPECT_TRUE(bind->attr_set & MOUNT_ATTR_RDONLY);
  EXPECT_EQ(Find(*plan, MountOp::Kind::kTmpfs, "/tmp"), nullptr);
  // Said: it is easy to do without meaning it (ward run from /tmp).
  ASSERT_EQ(plan->warnings.size(), 1u);
  EXPECT_NE(plan->warnings[0].find("the sandbox gets the host's /tmp (read-only) instead of a private one"),
            std::string::npos)
      << plan->warnings[0];
  Policy deny = Base();
  deny.filesystem.deny = {"/tmp"};
  plan = CompilePlan(deny, {"/bin/true"}, 7);
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_NE(Find(*plan, MountOp::Kind::kTmpfs, "/tmp"), nullptr);
  EXPECT_EQ(Find(*plan, MountOp::Kind::kBind, "/tmp"), nullptr);
  EXPECT_TRUE(plan->warnings.empty());
}

// The working directory never silently becomes "/": the caller's must be
// visible, or process.cwd name one.
TEST_F(CompileTest, CallersWorkingDirectoryMustBeVisible) {
  ASSERT_EQ(chdir((root_ + "/ws").c_str()), 0);
  Policy p = Base();
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_FALSE(plan);
  EXPECT_NE(plan.error().message.find("the current directory \"" + root_ + "/ws\" is not visible"), std::string::npos)
      << plan.error().message;
  p.process.cwd = "/";
  plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_EQ(plan->cwd, "/");
  p.process.cwd.reset();
  p.filesystem.read = {root_ + "/ws"};
  plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_EQ(plan->cwd, root_ + "/ws");
}

// Regression (escape suite, LeakedDirFd_CVE_2024_21626 in a checkout under
// /tmp): a host directory under the private /tmp is not what the sandbox's
// /tmp holds, so it cannot be the working directory.
TEST_F(CompileTest, WorkingDirectoryMustBeTheSameDirectoryInside) {
  char tmpl[] = "/tmp/ward-cwd-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  Policy p = Base();
  p.process.cwd = tmpl;
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  rmdir(tmpl);
  ASSERT_FALSE(plan);
  EXPECT_NE(plan.error().message.find("/process/cwd"), std::string::npos) << plan.error().message;
  p.process.cwd = "/tmp";  // the private /tmp itself exists inside
  plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_EQ(plan->cwd, "/tmp");
  p.process.cwd = root_ + "/ws";  // not granted
  EXPECT_FALSE(CompilePlan(p, {"/bin/true"}, 7));
  p.filesystem.read = {root_ + "/ws"};
  plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_EQ(plan->cwd, root_ + "/ws");
}

TEST_F(CompileTest, BaseAvoidsDirectoriesHoldingSources) {
  Policy p = Base();
  p.filesystem.private_tmp = false;
  p.filesystem.read = {root_ + "/ws"};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_FALSE(root_.rfind(plan->base + "/", 0) == 0) << plan->base;
}

TEST_F(CompileTest, CommandIsSearchedInTheSandboxPath) {
  Policy p = Base();
  p.process.env.set = {{"PATH", "/opt/bin:/usr/bin"}};
  auto plan = CompilePlan(p, {"tool", "a b"}, 7);
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_EQ(plan->exec_candidates, (std::vector<std::string>{"/opt/bin/tool", "/usr/bin/tool"}));
  EXPECT_EQ(plan->argv, (std::vector<std::string>{"tool", "a b"}));
  EXPECT_EQ(plan->envp, (std::vector<std::string>{"PATH=/opt/bin:/usr/bin"}));
  p.process.shell = true;
  plan = CompilePlan(p, {"echo", "hi"}, 7);
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_EQ(plan->argv, (std::vector<std::string>{"/bin/sh", "-c", "echo hi"}));
}

TEST_F(CompileTest, EnvironmentIsEmptyUnlessInheritedOrSet) {
  setenv("WARD_TEST_SECRET", "x", 1);
  Policy p = Base();
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_TRUE(plan->envp.empty());
  p.process.env.inherit = {"WARD_TEST_SECRET"};
  plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_EQ(plan->envp, (std::vector<std::string>{"WARD_TEST_SECRET=x"}));
}

}  // namespace
}  // namespace ward

#include "enforce/seccomp.h"

namespace ward {
namespace {

// The program embedded at build time is what libseccomp builds now.
TEST(Seccomp, EmbeddedProgramMatchesAFreshBuild) {
  auto fresh = BuildSeccompFilter();
  ASSERT_TRUE(fresh) << fresh.error().message;
  const auto& embedded = EmbeddedSeccompFilter();
  ASSERT_EQ(fresh->size(), embedded.size());
  for (size_t i = 0; i < embedded.size(); ++i) {
    EXPECT_EQ(memcmp(&(*fresh)[i], &embedded[i], sizeof(sock_filter)), 0) << "instruction " << i;
  }
  EXPECT_FALSE(BuildPersonalityFilter().empty());
}

// Issue 8 item 3: every directory between a writable grant and a nested
// rule is bound onto itself (a mount point cannot be renamed), before the
// rule's own mount; a sibling without rules beneath gets nothing.
TEST_F(CompileTest, NestedRuleAncestorsArePinned) {
  fs::create_directories(root_ + "/ws/other");
  std::ofstream(root_ + "/ws/sub/deep/secret") << "s";
  Policy p = Base();
  p.filesystem.write = {root_ + "/ws"};
  p.filesystem.deny = {root_ + "/ws/sub/deep/secret"};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_TRUE(plan) << plan.error().message;
  const MountOp* sub = Find(*plan, MountOp::Kind::kBind, root_ + "/ws/sub");
  const MountOp* deep = Find(*plan, MountOp::Kind::kBind, root_ + "/ws/sub/deep");
  const MountOp* mask = Find(*plan, MountOp::Kind::kMaskFile, root_ + "/ws/sub/deep/secret");
  ASSERT_NE(sub, nullptr);
  ASSERT_NE(deep, nullptr);
  ASSERT_NE(mask, nullptr);
  EXPECT_EQ(sub->source, root_ + "/ws/sub");
  EXPECT_FALSE(sub->attr_set & MOUNT_ATTR_RDONLY);
  EXPECT_TRUE(sub->idmap);
  EXPECT_LT(IndexOf(*plan, sub), IndexOf(*plan, deep));
  EXPECT_LT(IndexOf(*plan, deep), IndexOf(*plan, mask));
  EXPECT_EQ(Find(*plan, MountOp::Kind::kBind, root_ + "/ws/other"), nullptr);
  // No rule beneath a read-only grant: nothing to pin.
  Policy ro = Base();
  ro.filesystem.read = {root_ + "/ws"};
  ro.filesystem.deny = {root_ + "/ws/sub/deep/secret"};
  auto plan2 = CompilePlan(ro, {"/bin/true"}, 7);
  ASSERT_TRUE(plan2) << plan2.error().message;
  EXPECT_EQ(Find(*plan2, MountOp::Kind::kBind, root_ + "/ws/sub"), nullptr);
}

// Issue 8 item 4: a rule resolved through a symlink inside a writable grant
// is refused, naming the rule, the link and its target.
TEST_F(CompileTest, RuleThroughSymlinkInsideWritableGrantIsRefused) {
  fs::create_symlink("/etc", root_ + "/ws/sub/docs");
  Policy p = Base();
  p.filesystem.write = {root_ + "/ws"};
  p.filesystem.read = {root_ + "/ws/sub/docs"};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_FALSE(plan);
  EXPECT_NE(plan.error().message.find("/filesystem/read/0"), std::string::npos) << plan.error().message;
  EXPECT_NE(plan.error().message.find(root_ + "/ws/sub/docs\" -> \"/etc\""), std::string::npos) << plan.error().message;
  EXPECT_NE(plan.error().message.find("writable grant"), std::string::npos);
  // The same link outside any writable grant is followed, as before.
  Policy q = Base();
  q.filesystem.read = {root_ + "/ws/sub/docs"};
  auto ok = CompilePlan(q, {"/bin/true"}, 7);
  EXPECT_TRUE(ok) << (ok ? "" : ok.error().message);
}

// Issue 8 item 3: a denied file with another name is refused; so is a
// read-only file inside a writable grant with another name there.
TEST_F(CompileTest, MultiplyLinkedRuleFilesAreRefused) {
  fs::create_hard_link(root_ + "/ws/.env", root_ + "/ws/notes.txt");
  Policy p = Base();
  p.filesystem.read = {root_ + "/ws"};
  p.filesystem.deny = {root_ + "/ws/.env"};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_FALSE(plan);
  EXPECT_NE(plan.error().message.find("/filesystem/deny/0"), std::string::npos) << plan.error().message;
  EXPECT_NE(plan.error().message.find("2 hard links"), std::string::npos) << plan.error().message;
  Policy w = Base();
  w.filesystem.write = {root_ + "/ws"};
  w.filesystem.read = {root_ + "/ws/notes.txt"};
  auto plan2 = CompilePlan(w, {"/bin/true"}, 7);
  ASSERT_FALSE(plan2);
  EXPECT_NE(plan2.error().message.find("inside a writable grant"), std::string::npos) << plan2.error().message;
  // A read-only file with two names outside any writable grant is fine.
  Policy r = Base();
  r.filesystem.read = {root_ + "/ws/notes.txt"};
  EXPECT_TRUE(CompilePlan(r, {"/bin/true"}, 7));
}

// The second review: write [W, W/a] and a rule under W/a left W/a a plain
// directory the workload could rename; the chain is pinned up to W.
TEST_F(CompileTest, PinsReachThroughNestedWritableGrants) {
  fs::create_directories(root_ + "/ws/a/b/hooks");
  Policy p = Base();
  p.filesystem.write = {root_ + "/ws", root_ + "/ws/a"};
  p.filesystem.read = {root_ + "/ws/a/b/hooks"};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_TRUE(plan) << plan.error().message;
  const MountOp* a = Find(*plan, MountOp::Kind::kBind, root_ + "/ws/a");
  const MountOp* b = Find(*plan, MountOp::Kind::kBind, root_ + "/ws/a/b");
  const MountOp* hooks = Find(*plan, MountOp::Kind::kBind, root_ + "/ws/a/b/hooks");
  ASSERT_NE(a, nullptr) << "the nested writable grant is a mount point";
  ASSERT_NE(b, nullptr);
  ASSERT_NE(hooks, nullptr);
  EXPECT_FALSE(a->attr_set & MOUNT_ATTR_RDONLY);
  EXPECT_LT(IndexOf(*plan, a), IndexOf(*plan, b));
  EXPECT_LT(IndexOf(*plan, b), IndexOf(*plan, hooks));
  // Without a rule beneath it, a nested writable grant stays a no-op.
  Policy q = Base();
  q.filesystem.write = {root_ + "/ws", root_ + "/ws/a"};
  auto plan2 = CompilePlan(q, {"/bin/true"}, 7);
  ASSERT_TRUE(plan2);
  EXPECT_EQ(Find(*plan2, MountOp::Kind::kBind, root_ + "/ws/a"), nullptr);
}

// The second review: a denied directory inside a writable grant holding a
// file with another name, or a symlink leading out of it, is refused.
TEST_F(CompileTest, DeniedDirectoryInsideWritableGrantIsChecked) {
  fs::create_directories(root_ + "/ws/secrets/inner");
  std::ofstream(root_ + "/ws/secrets/inner/token") << "t";
  Policy p = Base();
  p.filesystem.write = {root_ + "/ws"};
  p.filesystem.deny = {root_ + "/ws/secrets"};
  EXPECT_TRUE(CompilePlan(p, {"/bin/true"}, 7));
  fs::create_hard_link(root_ + "/ws/secrets/inner/token", root_ + "/ws/t");
  auto linked = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_FALSE(linked);
  EXPECT_NE(linked.error().message.find("/filesystem/deny/0"), std::string::npos) << linked.error().message;
  EXPECT_NE(linked.error().message.find("hard links"), std::string::npos) << linked.error().message;
  fs::remove(root_ + "/ws/t");
  fs::create_symlink("../../k", root_ + "/ws/secrets/inner/key");
  auto out = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_FALSE(out);
  EXPECT_NE(out.error().message.find("leads out of the denied directory"), std::string::npos) << out.error().message;
  // A link that stays inside is fine; so is the same tree under a read-only grant.
  fs::remove(root_ + "/ws/secrets/inner/key");
  fs::create_symlink("token", root_ + "/ws/secrets/inner/key");
  EXPECT_TRUE(CompilePlan(p, {"/bin/true"}, 7));
}

// ---------------------------------------------------------------------------
// filesystem.unix and FIFOs

// Each entry becomes an endpoint with the inode it has now; one whose
// directory is not granted is bound by itself, read-only, at its own path;
// one that a grant already shows is not bound again; both get a landlock
// rule with write access (what lets a listed FIFO be opened for writing).
TEST_F(CompileTest, UnixEntriesAreEndpointsBoundAtTheirPathWithAWritableRule) {
  fs::create_directories(root_ + "/run/daemon");
  MakeSocket(root_ + "/run/daemon/s");
  MakeFifo(root_ + "/ws/f");
  Policy p = Base();
  p.filesystem.read = {root_ + "/ws"};
  p.filesystem.unix_endpoints = {root_ + "/run/daemon/s", root_ + "/ws/f"};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_TRUE(plan) << plan.error().message;
  ASSERT_EQ(plan->unix_endpoints.size(), 2u);
  struct stat sock, fifo;
  ASSERT_EQ(lstat((root_ + "/run/daemon/s").c_str(), &sock), 0);
  ASSERT_EQ(lstat((root_ + "/ws/f").c_str(), &fifo), 0);
  EXPECT_EQ(plan->unix_endpoints[0].path, root_ + "/run/daemon/s");
  EXPECT_EQ(plan->unix_endpoints[0].dev, sock.st_dev);
  EXPECT_EQ(plan->unix_endpoints[0].ino, sock.st_ino);
  EXPECT_FALSE(plan->unix_endpoints[0].fifo);
  EXPECT_EQ(plan->unix_endpoints[1].path, root_ + "/ws/f");
  EXPECT_EQ(plan->unix_endpoints[1].ino, fifo.st_ino);
  EXPECT_TRUE(plan->unix_endpoints[1].fifo);
  // The socket: a file mount point in the root tmpfs (its directories made
  // first), then a read-only bind of that one file.
  const MountOp* dir = Find(*plan, MountOp::Kind::kMkdir, root_ + "/run/daemon");
  const MountOp* point = Find(*plan, MountOp::Kind::kMkfile, root_ + "/run/daemon/s");
  const MountOp* bind = Find(*plan, MountOp::Kind::kBind, root_ + "/run/daemon/s");
  ASSERT_NE(dir, nullptr);
  ASSERT_NE(point, nullptr);
  ASSERT_NE(bind, nullptr);
  EXPECT_LT(IndexOf(*plan, dir), IndexOf(*plan, point));
  EXPECT_LT(IndexOf(*plan, point), IndexOf(*plan, bind));
  EXPECT_EQ(bind->source, root_ + "/run/daemon/s");
  EXPECT_TRUE(bind->attr_set & MOUNT_ATTR_RDONLY);
  EXPECT_TRUE(bind->attr_set & MOUNT_ATTR_NODEV);
  EXPECT_TRUE(bind->attr_set & MOUNT_ATTR_NOSUID);
  EXPECT_EQ(Find(*plan, MountOp::Kind::kBind, root_ + "/run/daemon"), nullptr) << "only the file is bound";
  // The FIFO is visible through the read grant: no mount of its own.
  EXPECT_EQ(Find(*plan, MountOp::Kind::kBind, root_ + "/ws/f"), nullptr);
  EXPECT_EQ(Find(*plan, MountOp::Kind::kMkfile, root_ + "/ws/f"), nullptr);
  EXPECT_TRUE(HasRule(*plan, root_ + "/run/daemon/s", true));
  EXPECT_TRUE(HasRule(*plan, root_ + "/ws/f", true));
  EXPECT_TRUE(HasRule(*plan, root_ + "/ws", false));
  EXPECT_FALSE(HasRule(*plan, root_ + "/ws", true));
  // Inside a writable grant: no read-only bind (nor pins) either.
  MakeSocket(root_ + "/ws/sub/deep/s");
  Policy w = Base();
  w.filesystem.write = {root_ + "/ws"};
  w.filesystem.unix_endpoints = {root_ + "/ws/sub/deep/s"};
  auto in_write = CompilePlan(w, {"/bin/true"}, 7);
  ASSERT_TRUE(in_write) << in_write.error().message;
  EXPECT_EQ(Find(*in_write, MountOp::Kind::kBind, root_ + "/ws/sub/deep/s"), nullptr);
  EXPECT_EQ(Find(*in_write, MountOp::Kind::kBind, root_ + "/ws/sub"), nullptr);
  EXPECT_TRUE(HasRule(*in_write, root_ + "/ws/sub/deep/s", true));
}

// The entry is the object the path resolves to; the path as written still
// works inside (the link is recreated), and one object named twice is one
// endpoint.
TEST_F(CompileTest, UnixEntryIsResolvedThroughSymlinks) {
  fs::create_directories(root_ + "/run");
  MakeSocket(root_ + "/run/s");
  fs::create_symlink(root_ + "/run", root_ + "/var-run");
  Policy p = Base();
  p.filesystem.unix_endpoints = {root_ + "/var-run/s", root_ + "/run/s"};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_TRUE(plan) << plan.error().message;
  ASSERT_EQ(plan->unix_endpoints.size(), 1u);
  EXPECT_EQ(plan->unix_endpoints[0].path, root_ + "/run/s");
  EXPECT_NE(Find(*plan, MountOp::Kind::kBind, root_ + "/run/s"), nullptr);
  const MountOp* link = Find(*plan, MountOp::Kind::kSymlink, root_ + "/var-run");
  ASSERT_NE(link, nullptr);
  EXPECT_EQ(link->source, root_ + "/run");
}

TEST_F(CompileTest, UnixEntryMustExistAndBeASocketOrFifo) {
  fs::create_directories(root_ + "/run");
  MakeSocket(root_ + "/run/s");
  Policy p = Base();
  p.filesystem.unix_endpoints = {root_ + "/run/s", root_ + "/run/nope"};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().code, Error::Code::kPolicy);
  EXPECT_EQ(plan.error().message, "/filesystem/unix/1 \"" + root_ +
                                      "/run/nope\": stat: ENOENT (No such file or directory); a listed socket or "
                                      "FIFO must exist when the sandbox starts");
  p.filesystem.unix_endpoints = {root_ + "/ws/.env/x"};
  plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_FALSE(plan);
  EXPECT_NE(plan.error().message.find("stat: ENOTDIR"), std::string::npos) << plan.error().message;
  p.filesystem.unix_endpoints = {root_ + "/ws/.env"};
  plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().message,
            "/filesystem/unix/0 \"" + root_ + "/ws/.env\": is not a unix socket or FIFO (it is a regular file)");
  p.filesystem.unix_endpoints = {root_ + "/link"};  // -> ws/sub, a directory
  plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().message, "/filesystem/unix/0 \"" + root_ + "/link\": is not a unix socket or FIFO (\"" +
                                      root_ + "/ws/sub\" is a directory)");
  p.filesystem.unix_endpoints = {"/dev/null"};
  plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_FALSE(plan);
  EXPECT_NE(plan.error().message.find("cannot be granted"), std::string::npos) << plan.error().message;
}

// Deny beats unix, by the most specific rule, on resolved paths.
TEST_F(CompileTest, UnixEntryUnderADenyIsRefused) {
  MakeSocket(root_ + "/ws/.ssh/agent");
  Policy p = Base();
  p.filesystem.read = {root_ + "/ws"};
  p.filesystem.deny = {root_ + "/ws/.ssh"};
  p.filesystem.unix_endpoints = {root_ + "/ws/.ssh/agent"};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().code, Error::Code::kPolicy);
  EXPECT_EQ(plan.error().message, "/filesystem/unix/0 \"" + root_ + "/ws/.ssh/agent\": lies under the denied path \"" +
                                      root_ +
                                      "/ws/.ssh\" (/filesystem/deny/0); a deny beats filesystem.unix: remove "
                                      "one of the two");
  // Reached through a symlink, which the parser cannot see.
  fs::create_symlink(root_ + "/ws/.ssh", root_ + "/agent-dir");
  p.filesystem.unix_endpoints = {root_ + "/agent-dir/agent"};
  plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_FALSE(plan);
  EXPECT_NE(plan.error().message.find("lies under the denied path \"" + root_ + "/ws/.ssh\""), std::string::npos)
      << plan.error().message;
  // A deny of the file itself.
  p.filesystem.deny = {root_ + "/ws/.ssh/agent"};
  p.filesystem.unix_endpoints = {root_ + "/ws/.ssh/agent"};
  EXPECT_FALSE(CompilePlan(p, {"/bin/true"}, 7));
  // A more specific grant between the deny and the entry decides.
  Policy q = Base();
  q.filesystem.deny = {root_ + "/ws"};
  q.filesystem.read = {root_ + "/ws/.ssh"};
  q.filesystem.unix_endpoints = {root_ + "/ws/.ssh/agent"};
  auto ok = CompilePlan(q, {"/bin/true"}, 7);
  EXPECT_TRUE(ok) << ok.error().message;
}

// As for every rule: a symlink inside a writable grant may have been
// planted by an earlier run, so an entry resolved through one is refused.
TEST_F(CompileTest, UnixEntryThroughSymlinkInsideWritableGrantIsRefused) {
  fs::create_directories(root_ + "/run");
  MakeSocket(root_ + "/run/s");
  fs::create_symlink(root_ + "/run/s", root_ + "/ws/s");
  Policy p = Base();
  p.filesystem.write = {root_ + "/ws"};
  p.filesystem.unix_endpoints = {root_ + "/ws/s"};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_FALSE(plan);
  EXPECT_NE(plan.error().message.find("/filesystem/unix/0 \"" + root_ + "/ws/s\": resolves through the symlink"),
            std::string::npos)
      << plan.error().message;
  EXPECT_NE(plan.error().message.find("inside the writable grant"), std::string::npos) << plan.error().message;
}

// Landlock passes a writable rule's rights down to a read-only grant beneath
// it, and a read-only mount does not stop a FIFO from being opened for
// writing: a host FIFO in such a grant must be listed or denied.
TEST_F(CompileTest, FifoInReadOnlyGrantInsideWritableGrantIsRefused) {
  MakeFifo(root_ + "/ws/sub/deep/f");
  Policy p = Base();
  p.filesystem.write = {root_ + "/ws"};
  p.filesystem.read = {root_ + "/ws/sub"};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().code, Error::Code::kPolicy);
  EXPECT_EQ(plan.error().message,
            "/filesystem/read/0 \"" + root_ + "/ws/sub\": holds the FIFO \"" + root_ +
                "/ws/sub/deep/f\", which the sandbox could open for writing (the grant lies inside the writable \"" +
                root_ +
                "/ws\", whose landlock rights it inherits, and a read-only mount does not stop writes to a FIFO); "
                "list it in filesystem.unix, or deny it");
  // Listed: allowed, and writable on purpose.
  Policy listed = p;
  listed.filesystem.unix_endpoints = {root_ + "/ws/sub/deep/f"};
  auto ok = CompilePlan(listed, {"/bin/true"}, 7);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_TRUE(HasRule(*ok, root_ + "/ws/sub/deep/f", true));
  EXPECT_EQ(Find(*ok, MountOp::Kind::kBind, root_ + "/ws/sub/deep/f"), nullptr) << "visible through the grant";
  // Another name of the listed FIFO is the same object: allowed.
  fs::create_hard_link(root_ + "/ws/sub/deep/f", root_ + "/ws/sub/g");
  ok = CompilePlan(listed, {"/bin/true"}, 7);
  EXPECT_TRUE(ok) << ok.error().message;
  fs::remove(root_ + "/ws/sub/g");
  // Denied (the FIFO, or a directory holding it): hidden, allowed.
  Policy denied = p;
  denied.filesystem.deny = {root_ + "/ws/sub/deep/f"};
  ok = CompilePlan(denied, {"/bin/true"}, 7);
  EXPECT_TRUE(ok) << ok.error().message;
  denied.filesystem.deny = {root_ + "/ws/sub/deep"};
  ok = CompilePlan(denied, {"/bin/true"}, 7);
  EXPECT_TRUE(ok) << ok.error().message;
  // A writable grant nested in the read-only one makes its FIFOs writable on
  // purpose: not this check's business.
  Policy nested = p;
  nested.filesystem.write = {root_ + "/ws", root_ + "/ws/sub/deep"};
  ok = CompilePlan(nested, {"/bin/true"}, 7);
  EXPECT_TRUE(ok) << ok.error().message;
}

// A read-only grant of the FIFO itself, inside a writable grant.
TEST_F(CompileTest, FifoFileGrantInsideWritableGrantIsRefused) {
  MakeFifo(root_ + "/ws/f");
  Policy p = Base();
  p.filesystem.write = {root_ + "/ws"};
  p.filesystem.read = {root_ + "/ws/f"};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().message,
            "/filesystem/read/0 \"" + root_ + "/ws/f\": is a FIFO, which the sandbox could open for writing (the " +
                "grant lies inside the writable \"" + root_ +
                "/ws\", whose landlock rights it inherits, and a read-only mount does not stop writes to a FIFO); "
                "list it in filesystem.unix, or deny it");
  p.filesystem.unix_endpoints = {root_ + "/ws/f"};
  auto ok = CompilePlan(p, {"/bin/true"}, 7);
  EXPECT_TRUE(ok) << ok.error().message;
}

// The reproduction of the review: {"read": ["/tmp/fifot"]} under the private
// /tmp, a writable area ward makes itself.
TEST_F(CompileTest, FifoInReadOnlyGrantUnderThePrivateTmpIsRefused) {
  char tmpl[] = "/tmp/ward-fifot-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  MakeFifo(dir + "/f");
  Policy p = Base();
  p.filesystem.read = {dir};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  p.filesystem.unix_endpoints = {dir + "/f"};
  auto listed = CompilePlan(p, {"/bin/true"}, 7);
  fs::remove_all(dir);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().message, "/filesystem/read/0 \"" + dir + "\": holds the FIFO \"" + dir +
                                      "/f\", which the sandbox could open for writing (the grant lies inside the "
                                      "writable \"/tmp\", whose landlock rights it inherits, and a read-only mount "
                                      "does not stop writes to a FIFO); list it in filesystem.unix, or deny it");
  EXPECT_TRUE(listed) << listed.error().message;
}

// A read-only grant outside every writable area is not walked: landlock
// refuses to open its FIFOs for writing (LandlockRightsOfAFifo). Nor is any
// grant without landlock, which the policy accepts losing (best-effort).
TEST_F(CompileTest, FifoInReadOnlyGrantOutsideWritableAreasIsAllowed) {
  MakeFifo(root_ + "/ws/sub/f");
  Policy p = Base();
  p.filesystem.read = {root_ + "/ws"};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_TRUE(plan->unix_endpoints.empty());
  EXPECT_FALSE(HasRule(*plan, root_ + "/ws/sub/f", true));
  Policy w = Base();
  w.filesystem.write = {root_ + "/ws"};
  w.filesystem.read = {root_ + "/ws/sub"};
  EXPECT_FALSE(CompilePlan(w, {"/bin/true"}, 7));
  auto without_landlock = CompilePlan(w, {"/bin/true"}, 0);
  EXPECT_TRUE(without_landlock) << without_landlock.error().message;
}

// Fail closed, as for a denied directory: a tree too large to check is refused.
TEST_F(CompileTest, ReadOnlyGrantInsideWritableGrantTooLargeToCheckIsRefused) {
  fs::create_directories(root_ + "/ws/big/a");
  // Symlinks: the cheapest entries to make (the walk neither follows nor reads them).
  for (int i = 0; i < 10000; ++i) ASSERT_EQ(symlink("x", (root_ + "/ws/big/a/" + std::to_string(i)).c_str()), 0);
  Policy p = Base();
  p.filesystem.write = {root_ + "/ws"};
  p.filesystem.read = {root_ + "/ws/big"};
  // The bound lowered to what this test can make quickly (200000 in use).
  struct Restore {
    WalkBounds saved = CompileWalkBounds();
    ~Restore() { CompileWalkBounds() = saved; }
  } restore;
  CompileWalkBounds().fifo_tree = 10000;
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().message, "/filesystem/read/0 \"" + root_ +
                                      "/ws/big\": holds more than 10000 entries, which ward checks one by one for "
                                      "FIFOs because the grant lies inside the writable \"" +
                                      root_ + "/ws\"; grant narrower paths, or move the tree out of the writable area");
  // Exactly at the bound: checked, and passes.
  fs::remove(root_ + "/ws/big/a/0");
  auto ok = CompilePlan(p, {"/bin/true"}, 7);
  EXPECT_TRUE(ok) << ok.error().message;
}

// What the checks above rely on, asked of the kernel: opening a FIFO for
// writing (O_NONBLOCK, no reader) fails with EACCES where landlock refuses
// it and with ENXIO where landlock lets it through to the FIFO.
int OpenFifoUnderLandlock(const LaunchPlan& plan, const std::string& fifo) {
  auto ruleset = BuildLandlockRuleset(plan);
  if (!ruleset) {
    ADD_FAILURE() << ruleset.error().message;
    return -1;
  }
  pid_t pid = fork();
  if (pid == 0) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || LandlockRestrictSelf(ruleset->get()) != 0) _exit(255);
    int fd = open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    _exit(fd >= 0 ? 0 : errno);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

TEST_F(CompileTest, LandlockRightsOfAFifo) {
  const int abi = LandlockAbi();
  if (abi == 0) GTEST_SKIP() << "no landlock on this kernel";
  MakeFifo(root_ + "/ws/sub/f");
  // A read-only grant beneath no writable rule: refused by landlock.
  Policy p = Base();
  p.filesystem.read = {root_ + "/ws"};
  auto ro = CompilePlan(p, {"/bin/true"}, abi);
  ASSERT_TRUE(ro) << ro.error().message;
  EXPECT_EQ(OpenFifoUnderLandlock(*ro, root_ + "/ws/sub/f"), EACCES);
  // Listed: the rule on the FIFO lets it through.
  p.filesystem.unix_endpoints = {root_ + "/ws/sub/f"};
  auto listed = CompilePlan(p, {"/bin/true"}, abi);
  ASSERT_TRUE(listed) << listed.error().message;
  EXPECT_EQ(OpenFifoUnderLandlock(*listed, root_ + "/ws/sub/f"), ENXIO);
  // A read-only rule beneath a writable one takes nothing away from it: the
  // reason read-only grants inside writable areas are walked.
  LaunchPlan nested;
  nested.landlock_abi = abi;
  nested.landlock = {{root_ + "/ws", true, false}, {root_ + "/ws/sub", false, false}};
  EXPECT_EQ(OpenFifoUnderLandlock(nested, root_ + "/ws/sub/f"), ENXIO);
}
}  // namespace
}  // namespace ward

namespace ward {
namespace {

TEST(Glob, ComponentMatching) {
  EXPECT_TRUE(MatchComponent("*", ".env"));  // a leading dot is matched like any character
  EXPECT_TRUE(MatchComponent("*.key", "id.key"));
  EXPECT_TRUE(MatchComponent("*.key", ".key"));
  EXPECT_FALSE(MatchComponent("*.key", "id.keys"));
  EXPECT_TRUE(MatchComponent("a?c", "abc"));
  EXPECT_FALSE(MatchComponent("a?c", "ac"));
  EXPECT_TRUE(MatchComponent("*a*b*", "xaxxbx"));
  EXPECT_FALSE(MatchComponent("*a*b*", "xbxxax"));
  EXPECT_TRUE(HasGlob("/w/**/.env"));
  EXPECT_FALSE(HasGlob("/w/[x]"));
}

class GlobTree : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/var/tmp/ward-glob-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    for (const char* d : {"/a/b", "/c", "/real/deep"}) fs::create_directories(root_ + d);
    for (const char* f : {"/.env", "/a/.env", "/a/b/.env", "/a/b/k.key", "/c/x", "/real/deep/.env"}) {
      std::ofstream(root_ + f) << "x";
    }
    fs::create_directory_symlink(root_ + "/real", root_ + "/c/link");
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string root_;
};

TEST_F(GlobTree, StarStarIsAnyNumberOfDirectoriesAndDoesNotFollowLinks) {
  size_t budget = 1000;
  auto m = ExpandRule(root_ + "/**/.env", GlobUse::kDeny, &budget);
  ASSERT_TRUE(m) << m.error().message;
  // Not real/deep/.env through c/link; real/deep/.env itself, yes.
  EXPECT_EQ(*m, (std::vector<std::string>{root_ + "/.env", root_ + "/a/.env", root_ + "/a/b/.env", root_ + "/real/deep/.env"}));
  m = ExpandRule(root_ + "/*/*/*.key", GlobUse::kGrant, &budget);
  ASSERT_TRUE(m);
  EXPECT_EQ(*m, (std::vector<std::string>{root_ + "/a/b/k.key"}));
  m = ExpandRule(root_ + "/a/?", GlobUse::kGrant, &budget);
  ASSERT_TRUE(m);
  EXPECT_EQ(*m, (std::vector<std::string>{root_ + "/a/b"}));
  m = ExpandRule(root_ + "/nothing/*", GlobUse::kGrant, &budget);
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->empty());
  // A literal path is itself if it exists.
  m = ExpandRule(root_ + "/c/x", GlobUse::kGrant, &budget);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->size(), 1u);
}

// The review: a grant pattern matched a symlink a sandbox had planted
// (docs/notes.md -> the caller's secrets), and granted its target.
TEST_F(GlobTree, AGrantPatternNeitherMatchesNorFollowsSymlinks) {
  fs::create_directories(root_ + "/docs/sub");
  std::ofstream(root_ + "/docs/real.md") << "x";
  std::ofstream(root_ + "/docs/sub/in.md") << "x";
  fs::create_symlink(root_ + "/real/deep/.env", root_ + "/docs/notes.md");
  fs::create_directory_symlink(root_ + "/real", root_ + "/docs/out");
  size_t budget = 1000;
  auto m = ExpandRule(root_ + "/docs/*.md", GlobUse::kGrant, &budget);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(*m, (std::vector<std::string>{root_ + "/docs/real.md"}));
  // A literal component after a wildcard is not followed through a link.
  m = ExpandRule(root_ + "/docs/*/deep", GlobUse::kGrant, &budget);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_TRUE(m->empty()) << (*m)[0];
  m = ExpandRule(root_ + "/docs/*/in.md", GlobUse::kGrant, &budget);
  ASSERT_TRUE(m);
  EXPECT_EQ(*m, (std::vector<std::string>{root_ + "/docs/sub/in.md"}));
  // A deny pattern hides a link's match as its target (more hidden, never less).
  m = ExpandRule(root_ + "/docs/*.md", GlobUse::kDeny, &budget);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->size(), 2u);
}

// The review: a directory the caller owns, made unlistable (chmod 000 or
// 111) by one run, held a file matching a deny pattern that the next run
// could read after chmod'ing it back. Such a directory is an error for a
// deny; a directory the sandbox cannot reach into either is passed over.
TEST_F(GlobTree, ADenyPatternFailsClosedOnADirectoryItCannotList) {
  if (geteuid() == 0) GTEST_SKIP() << "root lists every directory (CAP_DAC_READ_SEARCH)";
  fs::create_directories(root_ + "/ws/config");
  std::ofstream(root_ + "/ws/config/.env") << "x";
  size_t budget = 1000;
  for (mode_t mode : {0000, 0111}) {
    ASSERT_EQ(chmod((root_ + "/ws/config").c_str(), mode), 0);
    auto m = ExpandRule(root_ + "/ws/**/.env", GlobUse::kDeny, &budget);
    ASSERT_FALSE(m) << "mode " << std::oct << mode;
    EXPECT_NE(m.error().message.find("cannot list \"" + root_ + "/ws/config\""), std::string::npos) << m.error().message;
    EXPECT_NE(m.error().message.find("chmod"), std::string::npos) << m.error().message;
    // A literal component under it: the same.
    m = ExpandRule(root_ + "/ws/*/x/.env", GlobUse::kDeny, &budget);
    if (mode == 0000) {
      EXPECT_FALSE(m) << "mode " << std::oct << mode;
    }
    // A grant pattern finds nothing there, and that is no error.
    auto g = ExpandRule(root_ + "/ws/**/.env", GlobUse::kGrant, &budget);
    EXPECT_TRUE(g) << g.error().message;
  }
  ASSERT_EQ(chmod((root_ + "/ws/config").c_str(), 0755), 0);
  auto m = ExpandRule(root_ + "/ws/**/.env", GlobUse::kDeny, &budget);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(*m, (std::vector<std::string>{root_ + "/ws/config/.env"}));
}

TEST_F(GlobTree, TheBoundIsAnErrorNamingThePattern) {
  size_t budget = 3;
  auto m = ExpandRule(root_ + "/**/.env", GlobUse::kDeny, &budget);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("reads more than the bound"), std::string::npos) << m.error().message;
  EXPECT_NE(m.error().message.find(root_ + "/**/.env"), std::string::npos) << m.error().message;
}

TEST_F(GlobTree, CompiledPlanMasksEveryMatchAndWarnsAboutATypo) {
  ASSERT_EQ(chdir("/"), 0);
  Policy p;
  p.filesystem.system = false;
  p.filesystem.read = {root_};
  p.filesystem.deny = {root_ + "/**/.env", root_ + "/.evn"};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_TRUE(plan) << plan.error().message;
  size_t masks = 0;
  for (const auto& op : plan->mounts) masks += op.kind == MountOp::Kind::kMaskFile && IsUnder("/" + op.target, root_);
  EXPECT_EQ(masks, 4u);
  ASSERT_EQ(plan->warnings.size(), 1u);
  EXPECT_NE(plan->warnings[0].find("/filesystem/deny/1"), std::string::npos) << plan->warnings[0];
  // A grant pattern must name something.
  p.filesystem.read = {root_ + "/*.none"};
  plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_FALSE(plan);
  EXPECT_NE(plan.error().message.find("matches nothing"), std::string::npos) << plan.error().message;
}

}  // namespace
}  // namespace ward
