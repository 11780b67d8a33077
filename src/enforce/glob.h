// Glob patterns in filesystem rules: `*` and `?` within one path component,
// `**` as a whole component for zero or more directories. Expanded when the
// sandbox starts, against the host's tree as it is then, with a bound on
// the work (docs/policy.md, "Globs").
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "ward/policy.h"
#include "ward/result.h"

namespace ward {

// True if `path` holds `*` or `?` (a pattern, not a path).
bool HasGlob(std::string_view path);

// `name` matches `pattern` (`*`: any run of characters, `?`: one
// character; no `/` in either; a leading `.` is matched like any other).
bool MatchComponent(std::string_view pattern, std::string_view name);

// The paths a rule names now: a pattern's matches, sorted, or a literal
// path itself if it exists (lstat), else nothing. `*budget` is the number
// of directory entries the expansion may still read; exceeding it is an
// error naming the pattern. Directories reached through a symlink are not
// descended into (a pattern cannot leave the tree it names, nor loop).
Result<std::vector<std::string>> ExpandRule(const std::string& rule, size_t* budget);

// Default bound for all the patterns of one policy together.
inline constexpr size_t kGlobBudget = 100000;

// The warning for deny entry `i` of `fs`, which named nothing: "" when it
// cannot matter (no grant of the policy lies above it, so the path would be
// hidden anyway), otherwise why it is probably a mistake.
std::string DenyMatchesNothing(const FilesystemPolicy& fs, size_t i);

}  // namespace ward
