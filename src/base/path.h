// Lexical path questions (no system calls), for every layer: policy,
// enforce, audit, the mount table.
#pragma once

#include <string>
#include <string_view>

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

}  // namespace ward
