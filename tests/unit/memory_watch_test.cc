#include "enforce/memory_watch.h"

#include <fcntl.h>

#include <gtest/gtest.h>

namespace ward {
namespace {

TEST(MemoryWatch, CountsAnonymousAndSharedMemoryOnly) {
  const char* rollup =
      "5559392c5000-7fff75593000 ---p 00000000 00:00 0                          [rollup]\n"
      "Rss:                1712 kB\n"
      "Pss:                 302 kB\n"
      "Pss_Dirty:           112 kB\n"
      "Pss_Anon:            112 kB\n"
      "Pss_File:            190 kB\n"
      "Pss_Shmem:             8 kB\n"
      "Anonymous:           112 kB\n";
  EXPECT_EQ(ParseRollup(rollup), (112u + 8u) * 1024);
  EXPECT_EQ(ParseRollup(""), 0u) << "a zombie has no memory of its own";
  EXPECT_EQ(ParseRollup("Pss_Anon_X: 5 kB\nXPss_Anon: 7 kB\n"), 0u) << "whole keys only";
}

TEST(MemoryWatch, RefusesWardsOwnProcfs) {
  // ward's /proc has a "self": it is not the sandbox's.
  auto w = MemoryWatch::FromProcfs(UniqueFd(open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC)));
  ASSERT_FALSE(w);
  EXPECT_NE(w.error().message.find("ward's own procfs"), std::string::npos) << w.error().message;
  auto not_proc = MemoryWatch::FromProcfs(UniqueFd(open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)));
  ASSERT_FALSE(not_proc);
  EXPECT_NE(not_proc.error().message.find("not a procfs"), std::string::npos) << not_proc.error().message;
}

}  // namespace
}  // namespace ward
