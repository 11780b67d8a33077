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

// The directory a pattern's matches lie under: the path up to the last `/`
// before its first wildcard ("/w/a*/b" -> "/w", "/*" -> "/"); for a path
// without one, its parent.
std::string PatternBase(std::string_view pattern);

// `name` matches `pattern` (`*`: any run of characters, `?`: one
// character; no `/` in either; a leading `.` is matched like any other).
bool MatchComponent(std::string_view pattern, std::string_view name);

// What a pattern is expanded for: what each use may not do differs.
//  - kGrant: past the pattern's first wildcard no symlink is followed or
//    matched (a sandbox that could write there could have planted one, to
//    be granted what it points to); a directory ward cannot list holds no
//    match.
//  - kDeny: a symlink matched is denied as its target is (more hidden, never
//    less); a directory ward cannot list or search is an error when the
//    sandbox could reach into it (the caller owns it, or may search it),
//    since a match there could not be hidden.
enum class GlobUse { kGrant, kDeny };

// The paths a rule names now: a pattern's matches, sorted, or a literal
// path itself if what it resolves to exists (stat), else nothing. `*budget` is the number
// of directory entries the expansion may still read; exceeding it is an
// error naming the pattern. Directories reached through a symlink are not
// descended into by a wildcard (a pattern cannot leave the tree it names,
// nor loop).
Result<std::vector<std::string>> ExpandRule(const std::string& rule, GlobUse use, size_t* budget);

// Default bound for all the patterns of one policy together.
inline constexpr size_t kGlobBudget = 100000;

// Deny entry `i` of `fs` expanded (ExpandRule), and, when it names nothing
// under a grant of the policy, why that is probably a mistake (a typo such
// as `.evn`); a deny no grant lies above cannot matter and is not warned
// about. `ward run` (CompilePlan) and `ward policy check` (PolicyWarnings)
// both ask here.
struct DenyExpansion {
  std::vector<std::string> matches;
  std::string warning;  // "" if none
};
Result<DenyExpansion> ExpandDeny(const FilesystemPolicy& fs, size_t i, size_t* budget);

}  // namespace ward
