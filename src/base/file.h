// Small file helpers used outside the sandbox child (they allocate).
#pragma once

#include <optional>
#include <string>

#include "ward/result.h"

namespace ward {

std::optional<std::string> ReadFile(const std::string& path);
Result<void> WriteFile(const std::string& path, const std::string& content);

}  // namespace ward
