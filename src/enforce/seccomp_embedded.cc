#include "enforce/seccomp.h"

namespace ward {

const std::vector<sock_filter>& EmbeddedSeccompFilter() {
  static const std::vector<sock_filter> prog = {
#include "seccomp_program.inc"
  };
  return prog;
}

}  // namespace ward
