#pragma once

#include <string_view>
#include <vector>

#include "ward/policy.h"

namespace ward {

struct BuiltinProfile {
  const char* name;
  const char* description;
  const char* json;  // a policy document in ward's format
};

// The profile called `name`, or nullptr.
const BuiltinProfile* FindProfile(std::string_view name);

}  // namespace ward
