// One field of a /proc/PID/stat text, as proc(5) numbers them (4: the
// parent's pid, 22: the start time in clock ticks after boot).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace ward {

// Counted after the command name (field 2), which may hold spaces and
// parentheses: from the last ')'. Fields 3.. only; nullopt if the text has
// no such field.
inline std::optional<int64_t> ProcStatField(std::string_view stat, int field) {
  const size_t close = stat.rfind(')');
  if (field < 3 || close == std::string_view::npos) return std::nullopt;
  size_t at = close + 1;
  for (int f = 3; f <= field; ++f) {
    at = stat.find_first_not_of(' ', at);
    if (at == std::string_view::npos || stat[at] == '\n') return std::nullopt;
    const size_t end = std::min(stat.find_first_of(" \n", at), stat.size());
    if (f == field) return std::strtoll(std::string(stat.substr(at, end - at)).c_str(), nullptr, 10);
    at = end;
  }
  return std::nullopt;
}

}  // namespace ward
