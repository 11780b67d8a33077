// Helpers to build Error messages that name the syscall and its arguments.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>

#include "ward/result.h"

namespace ward {

// "ERRNO_NAME (description)", e.g. "EPERM (Operation not permitted)".
std::string ErrnoName(int err);

// `call "arg": EPERM (Operation not permitted)`
inline Error SysError(const std::string& call, const std::string& arg, int err = errno) {
  return Error::Setup(call + " \"" + arg + "\": " + ErrnoName(err));
}

}  // namespace ward
