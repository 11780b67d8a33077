// FileJudge (enforce/file_view.h): which file accesses the audit trail
// reports as denied. By name (no system call), then on a real tree of the
// host: links planted in a grant, new names, calls on a link itself.
#include "enforce/file_view.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

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
  }
  void TearDown() override { std::filesystem::remove_all(d_); }

  std::optional<FileDenial> Judge(FileOp op, const std::string& rel) {
    FileJudge j({{d_ + "/ro", A::kRead}, {d_ + "/rw", A::kWrite}});
    FileAccess a;
    a.op = op;
    a.path = d_ + rel;
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
  // The link itself (lstat, readlink, unlink) is the grant's.
  EXPECT_FALSE(Judge(FileOp::kStat, "/rw/link"));
  EXPECT_FALSE(Judge(FileOp::kRemove, "/rw/link"));
  // A link to a grant: as granted as its target.
  EXPECT_FALSE(Judge(FileOp::kRead, "/rw/ok"));
  d = Judge(FileOp::kWrite, "/rw/ok");
  ASSERT_TRUE(d) << "writing through a link into a read-only grant";
  EXPECT_EQ(d->reason, "read-only");
  EXPECT_EQ(d->resolved, d_ + "/ro/f");
}

}  // namespace
}  // namespace ward
