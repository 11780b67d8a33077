// FileJudge (enforce/file_view.h): which file accesses the audit trail
// reports as denied. By name (no system call), then on a real tree of the
// host: links planted in a grant, new names, calls on a link itself.
#include "enforce/file_view.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace ward {
namespace {

using A = ViewRule::Access;

std::string Why(const FileJudge& j, const std::string& path, FileOp op, bool* own = nullptr) {
  const ViewRule* rule = nullptr;
  bool o = false;
  std::string why = j.ByName(path, op, &rule, &o);
  if (own) *own = o;
  return why;
}

TEST(FileJudge, ByName) {
  FileJudge j({{"/etc/hostname", A::kPrivate}, {"/p/ro", A::kRead}, {"/p/rw", A::kWrite}, {"/p/rw/deny", A::kHidden},
               {"/tmp", A::kPrivate}});
  EXPECT_EQ(Why(j, "/p/ro/f", FileOp::kRead), "");
  EXPECT_EQ(Why(j, "/p/ro/f", FileOp::kStat), "");
  EXPECT_EQ(Why(j, "/p/ro/f", FileOp::kWrite), "read-only");
  EXPECT_EQ(Why(j, "/p/ro/new", FileOp::kCreate), "read-only");
  EXPECT_EQ(Why(j, "/p/ro", FileOp::kRemove), "read-only");
  EXPECT_EQ(Why(j, "/p/rw/x", FileOp::kCreate), "");
  EXPECT_EQ(Why(j, "/p/rw/deny/k", FileOp::kRead), "denied by a rule");
  EXPECT_EQ(Why(j, "/p/rw/deny/k", FileOp::kStat), "denied by a rule");
  EXPECT_EQ(Why(j, "/p/rw/deny", FileOp::kRead), "denied by a rule");
  EXPECT_EQ(Why(j, "/p/rw/deny", FileOp::kStat), "") << "a look at the mask itself shows nothing it hides";
  // The bare root: only the way to a grant.
  EXPECT_EQ(Why(j, "/p", FileOp::kStat), "");
  EXPECT_EQ(Why(j, "/p", FileOp::kRead), "");
  EXPECT_EQ(Why(j, "/", FileOp::kRead), "");
  EXPECT_EQ(Why(j, "/p/new", FileOp::kCreate), "not granted");
  EXPECT_EQ(Why(j, "/p/other", FileOp::kRead), "not granted");
  EXPECT_EQ(Why(j, "/p/rwx", FileOp::kRead), "not granted") << "a name that only begins like a grant";
  EXPECT_EQ(Why(j, "/home/u/.ssh/id_rsa", FileOp::kRead), "not granted");
  bool own = false;
  EXPECT_EQ(Why(j, "/tmp/x", FileOp::kCreate, &own), "");
  EXPECT_TRUE(own);
  EXPECT_EQ(Why(j, "/etc/hostname", FileOp::kRead, &own), "");
  EXPECT_TRUE(own);
  EXPECT_EQ(Why(j, "/etc/passwd", FileOp::kRead, &own), "not granted");
  EXPECT_FALSE(own);
}

class FileJudgeOnHost : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/var/tmp/ward-file-view-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    d_ = std::filesystem::canonical(tmpl).string();
    for (const char* dir : {"/ro", "/rw", "/hidden"}) ASSERT_EQ(mkdir((d_ + dir).c_str(), 0755), 0);
    std::ofstream(d_ + "/ro/f") << "r";
    std::ofstream(d_ + "/hidden/s") << "s";
    ASSERT_EQ(symlink((d_ + "/hidden/s").c_str(), (d_ + "/rw/link").c_str()), 0);
    ASSERT_EQ(symlink("../ro/f", (d_ + "/rw/ok").c_str()), 0);
    ASSERT_EQ(symlink((d_ + "/hidden").c_str(), (d_ + "/rw/dir").c_str()), 0);
    ASSERT_EQ(mkdir((d_ + "/hidden/sub").c_str(), 0755), 0);
    ASSERT_EQ(symlink((d_ + "/hidden/sub").c_str(), (d_ + "/rw/sub").c_str()), 0);
    ASSERT_EQ(symlink((d_ + "/ro/created").c_str(), (d_ + "/rw/dangling").c_str()), 0);
    ASSERT_EQ(symlink("loop2", (d_ + "/rw/loop1").c_str()), 0);
    ASSERT_EQ(symlink("loop1", (d_ + "/rw/loop2").c_str()), 0);
  }
  void TearDown() override { std::filesystem::remove_all(d_); }

  // As the call names it: `follow` as stat, open (true) or lstat,
  // readlink, unlink (false); the path normalized by name as the listener
  // does.
  std::optional<FileDenial> Judge(FileOp op, const std::string& rel, bool follow = true) {
    FileJudge j({{d_ + "/ro", A::kRead}, {d_ + "/rw", A::kWrite}});
    EXPECT_TRUE(j.TakeRoot(getpid()));  // this test's "sandbox" is the host's view
    FileAccess a;
    a.op = op;
    a.named = d_ + rel;
    a.path = std::filesystem::path(a.named).lexically_normal().string();
    if (a.path.size() > 1 && a.path.back() == '/') a.path.pop_back();
    a.follow = follow;
    a.pid = 7;
    return j.Judge(a);
  }

  std::string d_;
};

TEST_F(FileJudgeOnHost, WhatTheHostHasAndThePolicyDoesNotGrant) {
  auto d = Judge(FileOp::kRead, "/hidden/s");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->reason, "not granted");
  EXPECT_EQ(d->rule, "");
  EXPECT_EQ(d->resolved, "");
  EXPECT_EQ(d->access.pid, 7);
  EXPECT_EQ(d->access.path, d_ + "/hidden/s");
  // Control: what the host does not have is a failed lookup, not a denial.
  EXPECT_FALSE(Judge(FileOp::kRead, "/hidden/none"));
  EXPECT_FALSE(Judge(FileOp::kStat, "/nothing/here"));
  // A new name where the host has the directory: denied; where it has none: nothing.
  d = Judge(FileOp::kCreate, "/hidden/new");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->reason, "not granted");
  EXPECT_FALSE(Judge(FileOp::kCreate, "/nodir/new"));
}

TEST_F(FileJudgeOnHost, ReadOnlyGrant) {
  EXPECT_FALSE(Judge(FileOp::kRead, "/ro/f")) << "control: reading a read-only grant";
  auto d = Judge(FileOp::kWrite, "/ro/f");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->reason, "read-only");
  EXPECT_EQ(d->rule, d_ + "/ro");
  EXPECT_FALSE(Judge(FileOp::kCreate, "/rw/new")) << "control: a new name in a writable grant";
}

TEST_F(FileJudgeOnHost, LinksPlantedInAGrantAreJudgedByWhereTheyLead) {
  auto d = Judge(FileOp::kRead, "/rw/link");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->reason, "not granted");
  EXPECT_EQ(d->resolved, d_ + "/hidden/s");
  d = Judge(FileOp::kRead, "/rw/dir/s");
  ASSERT_TRUE(d) << "a link in the middle of the path";
  EXPECT_EQ(d->resolved, d_ + "/hidden/s");
  // The link itself (lstat, readlink, unlink) is the grant's; stat follows it.
  EXPECT_FALSE(Judge(FileOp::kStat, "/rw/link", false));
  EXPECT_FALSE(Judge(FileOp::kRemove, "/rw/link", false));
  d = Judge(FileOp::kStat, "/rw/link", true);
  ASSERT_TRUE(d) << "stat (not lstat) of the link reads its target";
  EXPECT_EQ(d->resolved, d_ + "/hidden/s");
  // A link to a grant: as granted as its target.
  EXPECT_FALSE(Judge(FileOp::kRead, "/rw/ok"));
  d = Judge(FileOp::kWrite, "/rw/ok");
  ASSERT_TRUE(d) << "writing through a link into a read-only grant";
  EXPECT_EQ(d->reason, "read-only");
  EXPECT_EQ(d->resolved, d_ + "/ro/f");
}

TEST_F(FileJudgeOnHost, DotDotAfterALinkLeavesItsTarget) {
  // rw/sub -> hidden/sub: the kernel reads rw/sub/../s as hidden/s, not
  // rw/s (which the policy grants by name).
  auto d = Judge(FileOp::kRead, "/rw/sub/../s");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->reason, "not granted");
  EXPECT_EQ(d->resolved, d_ + "/hidden/s");
  EXPECT_FALSE(Judge(FileOp::kRead, "/rw/../ro/f")) << "control: `..` with no link on the way";
}

TEST_F(FileJudgeOnHost, NewNameThroughADanglingLinkLandsWhereItPoints) {
  // rw/dangling -> ro/created (not there): O_CREAT creates ro/created.
  auto d = Judge(FileOp::kCreate, "/rw/dangling");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->reason, "read-only");
  EXPECT_EQ(d->resolved, d_ + "/ro/created");
  EXPECT_FALSE(Judge(FileOp::kCreate, "/rw/dangling", false)) << "O_EXCL, symlink(2): the link's own name";
}

// /proc/self/fd/N (a reopen of an O_PATH descriptor) and /proc/1/../..:
// judged where they lead, not as the sandbox's own /proc.
TEST_F(FileJudgeOnHost, ProcPathsLeadingOut) {
  FileJudge j({{"/proc", A::kPrivate}, {d_ + "/ro", A::kRead}, {d_ + "/rw", A::kWrite}});
  ASSERT_TRUE(j.TakeRoot(getpid()));
  UniqueFd fd(open((d_ + "/ro/f").c_str(), O_PATH | O_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  FileAccess a;
  a.op = FileOp::kWrite;
  a.pid = getpid();
  a.host_tid = gettid();
  a.path = a.named = "/proc/self/fd/" + std::to_string(fd.get());
  auto d = j.Judge(a);
  ASSERT_TRUE(d) << "a write through the descriptor's magic link";
  EXPECT_EQ(d->reason, "read-only");
  EXPECT_EQ(d->resolved, d_ + "/ro/f");
  a.op = FileOp::kRead;
  EXPECT_FALSE(j.Judge(a)) << "control: reading it";
  a.named = "/proc/1/../.." + d_ + "/hidden/s";
  a.path = d_ + "/hidden/s";
  d = j.Judge(a);
  ASSERT_TRUE(d) << "out of /proc by `..`";
  EXPECT_EQ(d->reason, "not granted");
}

TEST_F(FileJudgeOnHost, ALoopOfLinksIsNothing) { EXPECT_FALSE(Judge(FileOp::kRead, "/rw/loop1")); }

TEST(FileJudge, TheSandboxsOwnProcAndLinksAreNotDenials) {
  FileJudge j({{"/bin", A::kLink}, {"/proc", A::kPrivate}, {"/usr", A::kRead}});
  ASSERT_TRUE(j.TakeRoot(getpid()));
  FileAccess a;
  a.op = FileOp::kRead;
  a.pid = getpid();
  a.host_tid = gettid();
  a.path = a.named = "/proc/self/status";
  EXPECT_FALSE(j.Judge(a)) << "the host's /proc is another pid namespace";
  a.named = "/proc/1/root/etc/shadow";
  a.path = a.named;
  EXPECT_FALSE(j.Judge(a));
  a.op = FileOp::kStat;
  a.follow = false;
  a.path = a.named = "/bin";
  EXPECT_FALSE(j.Judge(a)) << "lstat of ward's /bin link (ls -l /)";
  a.follow = true;
  a.path = a.named = "/bin/sh";
  EXPECT_FALSE(j.Judge(a)) << "through it, where the host's /bin leads: /usr/bin, granted";
}

// The judge's own thread: identical denials within a second are counted on
// the next one recorded, a flood beyond the rate is counted as dropped, and
// what waits is judged before the judge goes.
TEST_F(FileJudgeOnHost, ThreadCountsRepeatsAndFloods) {
  constexpr int kExtra = 2000;
  std::vector<FileDenial> got;
  uint64_t dropped = 0;
  {
    FileJudge j({{d_ + "/ro", A::kRead}, {d_ + "/rw", A::kWrite}});
    j.Start([&](FileDenial d) { got.push_back(std::move(d)); },
            [&](uint64_t n, const std::string&, const std::vector<std::string>&) { dropped += n; });
    ASSERT_TRUE(j.TakeRoot(getpid()));
    FileAccess a;
    a.op = FileOp::kRead;
    a.path = a.named = d_ + "/hidden/s";
    for (int i = 0; i < 5; ++i) j.Submit(a);
    // Distinct denials, more than the burst allows: 2,000 more, which the
    // rate (200 a second) would take 10 s to refill.
    for (int i = 0; i < FileJudge::kBurst + kExtra; ++i) {
      FileAccess b;
      b.op = FileOp::kCreate;
      b.path = b.named = d_ + "/hidden/n" + std::to_string(i);
      j.Submit(b);
    }
  }
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got[0].access.path, d_ + "/hidden/s");
  EXPECT_FALSE(got[0].repeats);
  const auto last = std::find_if(got.rbegin(), got.rend(), [&](const FileDenial& d) { return d.access.path == d_ + "/hidden/s"; });
  EXPECT_EQ(std::count_if(got.begin(), got.end(), [&](const FileDenial& d) { return d.access.path == d_ + "/hidden/s"; }), 2)
      << "four identical repeats within a second: not recorded one by one, their count on a last copy at the end";
  EXPECT_EQ(last->repeats, 4u);
  // The rate refills while the test runs (200 a second): a slow machine
  // records a few more, never all.
  EXPECT_LT(got.size(), static_cast<size_t>(FileJudge::kBurst) + kExtra);
  EXPECT_GE(dropped, 1u) << "beyond the burst: counted, not recorded (or not judged: the queue)";
  EXPECT_EQ(got.size() - 2 + dropped, static_cast<size_t>(FileJudge::kBurst) + kExtra)
      << "every distinct denial is recorded or counted";
}

}  // namespace
}  // namespace ward
