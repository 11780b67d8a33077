// libFuzzer target for the policy parser: any byte string must yield either
// a policy or a list of issues, never a crash, a hang or an exception.
#include <cstddef>
#include <cstdint>
#include <string>

#include "ward/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ward::PolicyVars vars = [] {
    ward::PolicyVars v;
    v.values = {{"HOME", "/home/u"}, {"CWD", "/work"}, {"WORKSPACE", "/work"}, {"USER", "u"}, {"TMPDIR", "/tmp"}};
    return v;
  }();
  ward::PolicyLoad load = ward::ParsePolicy(std::string(reinterpret_cast<const char*>(data), size), vars);
  if (load.ok()) {
    // A valid policy must survive a round trip through its canonical form.
    ward::PolicyLoad again = ward::ParsePolicy(ward::PolicyToJson(*load.policy), vars);
    if (!again.ok()) __builtin_trap();
  } else if (load.issues.empty()) {
    __builtin_trap();  // rejected without saying why
  }
  return 0;
}
