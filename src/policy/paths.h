// Lexical path helpers (no system calls).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/path.h"

namespace ward {

// "/a//b/./c/" -> "/a/b/c". Rejects empty, relative, NUL-containing and
// ".."-containing paths, explaining why in *reason.
std::optional<std::string> NormalizePath(std::string_view path, std::string* reason);

// IsUnder: base/path.h.

// Number of components: "/" -> 0, "/a/b" -> 2.
int PathDepth(std::string_view path);

}  // namespace ward
