#include "base/errors.h"

namespace ward {

std::string ErrnoName(int err) {
  // strerrorname_np is glibc >= 2.32 (Debian 12 has 2.36).
  const char* name = strerrorname_np(err);
  std::string out = name ? name : ("errno " + std::to_string(err));
  return out + " (" + strerror(err) + ")";
}

}  // namespace ward
