// Lexical path questions (no system calls), for every layer: policy,
// enforce, audit, the mount table.
#pragma once

#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace ward {

// True if `path` equals `dir` or lies beneath it (both absolute and
// normalized: no "//", "." or trailing "/").
inline bool IsUnder(std::string_view path, std::string_view dir) {
  if (dir == "/") return true;
  if (path.size() < dir.size() || path.substr(0, dir.size()) != dir) return false;
  return path.size() == dir.size() || path[dir.size()] == '/';
}

// The directory `path` lies in: "/a/b" -> "/a", "/a" -> "/", "/" -> "/".
inline std::string Parent(const std::string& path) {
  const size_t i = path.rfind('/');
  return i == 0 || i == std::string::npos ? "/" : path.substr(0, i);
}

// The names between `path`'s slashes, in order ("/a//b/" -> a, b); `.` and
// `..` kept.
inline std::deque<std::string> PathComponents(std::string_view path) {
  std::deque<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) out.emplace_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// `prefix` (names from the root) followed by `rest`, `.` and `..` resolved
// by name (`..` of the root is the root), as an absolute path. By name:
// not what the kernel resolves where a name is a symlink.
inline std::string JoinByName(std::vector<std::string> prefix, const std::deque<std::string>& rest) {
  for (const auto& c : rest) {
    if (c == ".") continue;
    if (c == "..") {
      if (!prefix.empty()) prefix.pop_back();
    } else {
      prefix.push_back(c);
    }
  }
  std::string out;
  for (const auto& c : prefix) out += "/" + c;
  return out.empty() ? "/" : out;
}

// The absolute `path` with `.`, `..` and repeated slashes resolved by name
// ("/a/./b/../c//" -> "/a/c"). Unlike ward::NormalizePath (policy/paths.h),
// which refuses a `..`.
inline std::string ResolveByName(std::string_view path) { return JoinByName({}, PathComponents(path)); }

}  // namespace ward
