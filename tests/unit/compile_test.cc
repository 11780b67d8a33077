// The plan compiler against a real directory tree: which mounts, masks,
// symlinks and landlock grants a policy turns into.
#include "enforce/compile.h"

#include <gtest/gtest.h>
#include <linux/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

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

TEST_F(CompileTest, WorkspaceUnderTmpConflictsWithPrivateTmp) {
  Policy p = Base();
  p.filesystem.read = {"/tmp"};
  auto plan = CompilePlan(p, {"/bin/true"}, 7);
  ASSERT_FALSE(plan);
  EXPECT_NE(plan.error().message.find("conflicts with the sandbox's own /tmp"), std::string::npos)
      << plan.error().message;
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

}  // namespace
}  // namespace ward
