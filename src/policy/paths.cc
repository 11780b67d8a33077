#include "policy/paths.h"

#include <limits.h>

namespace ward {

std::optional<std::string> NormalizePath(std::string_view path, std::string* reason) {
  if (path.empty()) {
    *reason = "path is empty";
    return std::nullopt;
  }
  if (path.find('\0') != std::string_view::npos) {
    *reason = "path contains a NUL byte";
    return std::nullopt;
  }
  if (path[0] != '/') {
    *reason = "path \"" + std::string(path) + "\" is relative; use an absolute path or ${CWD}/...";
    return std::nullopt;
  }
  if (path.size() >= PATH_MAX) {
    *reason = "path is longer than PATH_MAX";
    return std::nullopt;
  }
  std::string out;
  size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view comp = path.substr(i, j - i);
    i = j;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") {
      *reason = "path \"" + std::string(path) + "\" contains \"..\"; write the path it means";
      return std::nullopt;
    }
    out += '/';
    out += comp;
  }
  return out.empty() ? "/" : out;
}


int PathDepth(std::string_view path) {
  int n = 0;
  for (char c : path) n += c == '/';
  return path == "/" ? 0 : n;
}

}  // namespace ward
