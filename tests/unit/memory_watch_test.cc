#include "enforce/memory_watch.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>

#include "base/proc_stat.h"

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

// A process at its gate is known by its pid and its start time together
// (field 22); a held sandbox counts its processes by their parents (4).
TEST(MemoryWatch, StartTicksFromStat) {
  // A command name with spaces and parentheses cannot shift the fields.
  const std::string stat =
      "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 2400000 300 18446744073709551615\n";
  EXPECT_EQ(ProcStatField(stat, 22), 987654);
  EXPECT_EQ(ProcStatField(stat, 4), 1);
  EXPECT_EQ(ProcStatField("42 (x) S 1 42", 22), std::nullopt) << "too short";
  EXPECT_EQ(ProcStatField("42 (x) S 1 42\n", 6), std::nullopt) << "past the end of the line";
  EXPECT_EQ(ProcStatField("no name here", 4), std::nullopt);
  // Positive control: this process's own, as the kernel writes it.
  std::ifstream self("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(self)), std::istreambuf_iterator<char>());
  EXPECT_GT(ProcStatField(text, 22).value_or(0), 0) << text;
  EXPECT_EQ(ProcStatField(text, 4), getppid()) << text;
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
