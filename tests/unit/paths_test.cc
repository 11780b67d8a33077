#include "policy/paths.h"

#include <gtest/gtest.h>

namespace ward {
namespace {

TEST(NormalizePath, CollapsesSlashesAndDots) {
  std::string why;
  EXPECT_EQ(NormalizePath("/a//b/./c/", &why), "/a/b/c");
  EXPECT_EQ(NormalizePath("/", &why), "/");
  EXPECT_EQ(NormalizePath("//", &why), "/");
}

TEST(NormalizePath, RejectsRelativeEmptyDotDotAndNul) {
  std::string why;
  EXPECT_FALSE(NormalizePath("", &why));
  EXPECT_EQ(why, "path is empty");
  EXPECT_FALSE(NormalizePath("a/b", &why));
  EXPECT_NE(why.find("relative"), std::string::npos);
  EXPECT_FALSE(NormalizePath("/a/../b", &why));
  EXPECT_NE(why.find(".."), std::string::npos);
  EXPECT_FALSE(NormalizePath(std::string_view("/a\0b", 4), &why));
  EXPECT_NE(why.find("NUL"), std::string::npos);
}

TEST(IsUnder, MatchesWholeComponentsOnly) {
  EXPECT_TRUE(IsUnder("/a/b", "/a"));
  EXPECT_TRUE(IsUnder("/a", "/a"));
  EXPECT_FALSE(IsUnder("/ab", "/a"));
  EXPECT_TRUE(IsUnder("/x", "/"));
  EXPECT_EQ(PathDepth("/"), 0);
  EXPECT_EQ(PathDepth("/a/b"), 2);
}

}  // namespace
}  // namespace ward
