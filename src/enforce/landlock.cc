#include "enforce/landlock.h"

#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/errors.h"
#include "base/no_symlinks.h"

namespace ward {

namespace {

// Debian 12's kernel headers (6.1) stop at ABI 2; the later constants and
// the full ruleset attribute are spelled out here (values from the kernel's
// include/uapi/linux/landlock.h).
constexpr uint64_t kTruncate = 1ULL << 14;  // ABI 3
constexpr uint64_t kIoctlDev = 1ULL << 15;  // ABI 5
constexpr uint64_t kBindTcp = 1ULL << 0;            // ABI 4: LANDLOCK_ACCESS_NET_BIND_TCP
constexpr uint64_t kConnectTcp = 1ULL << 1;         // ABI 4: LANDLOCK_ACCESS_NET_CONNECT_TCP
constexpr uint64_t kScopeAbstractUnix = 1ULL << 0;  // ABI 6
constexpr uint64_t kScopeSignal = 1ULL << 1;        // ABI 6

struct RulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;  // ABI 4
  uint64_t scoped;              // ABI 6
};

constexpr uint64_t kRead = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE |
                           LANDLOCK_ACCESS_FS_READ_DIR;

int CreateRuleset(const RulesetAttr* attr, size_t size, uint32_t flags) {
  return static_cast<int>(syscall(SYS_landlock_create_ruleset, attr, size, flags));
}

// Rights that apply to a regular file (the kernel rejects directory rights
// on a rule whose path is not a directory).
constexpr uint64_t FileRights(int abi) {
  uint64_t r = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE;
  if (abi >= 3) r |= kTruncate;
  if (abi >= 5) r |= kIoctlDev;
  return r;
}

uint64_t Rights(int abi, bool write) {
  return write ? LandlockHandledFs(abi) : kRead;
}

}  // namespace

uint64_t LandlockHandledFs(int abi) {
  uint64_t r = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1;  // ABI 1: bits 0..12
  if (abi >= 2) r |= LANDLOCK_ACCESS_FS_REFER;
  if (abi >= 3) r |= kTruncate;
  if (abi >= 5) r |= kIoctlDev;
  return r;
}

int LandlockAbi() {
  int abi = CreateRuleset(nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  return abi < 0 ? 0 : abi;
}

Result<UniqueFd> BuildLandlockRuleset(const LaunchPlan& plan) {
  RulesetAttr attr{};
  attr.handled_access_fs = LandlockHandledFs(plan.landlock_abi);
  // Scoping (ABI 6): the workload cannot signal processes outside its
  // landlock domain, nor connect to abstract unix sockets created outside.
  if (plan.landlock_abi >= 6) attr.scoped = kScopeAbstractUnix | kScopeSignal;
  // Egress mode with direct sockets: the workload may not bind or connect a
  // TCP socket itself (no rule allows a port). Its bind() and connect()
  // calls wait in the supervisor (seccomp user notification), which makes
  // them for it; this is what keeps a socket ward connected from the host's
  // namespace from ever being bound or connected again by the kernel on the
  // workload's behalf (see net/connect_notify.h).
  if (plan.egress && !plan.egress->connect_notify.empty()) attr.handled_access_net = kBindTcp | kConnectTcp;
  size_t size = plan.landlock_abi >= 6 ? sizeof attr : plan.landlock_abi >= 4 ? 16 : 8;
  UniqueFd ruleset(CreateRuleset(&attr, size, 0));
  if (!ruleset.valid()) return SysError("landlock_create_ruleset", "abi " + std::to_string(plan.landlock_abi));
  for (const auto& g : plan.landlock) {
    UniqueFd fd(open(g.path.c_str(), O_PATH | O_CLOEXEC));
    if (!fd.valid()) return SysError("open(O_PATH) for landlock", g.path);
    struct stat st;
    if (fstat(fd.get(), &st) != 0) return SysError("fstat", g.path);
    landlock_path_beneath_attr rule{};
    rule.allowed_access = Rights(plan.landlock_abi, g.write);
    if (!S_ISDIR(st.st_mode)) rule.allowed_access &= FileRights(plan.landlock_abi);
    rule.parent_fd = fd.get();
    if (syscall(SYS_landlock_add_rule, ruleset.get(), LANDLOCK_RULE_PATH_BENEATH, &rule, 0) != 0) {
      return SysError("landlock_add_rule", g.path);
    }
  }
  return ruleset;
}

int LandlockAddPath(int ruleset_fd, int abi, const char* path, bool write, bool dir_only_read) {
  int fd = OpenNoSymlinks(path, O_PATH);  // base/no_symlinks.h
  if (fd < 0) return errno;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return e;
  }
  landlock_path_beneath_attr rule{};
  rule.allowed_access = dir_only_read ? LANDLOCK_ACCESS_FS_READ_DIR : Rights(abi, write);
  if (!S_ISDIR(st.st_mode)) rule.allowed_access &= FileRights(abi);
  rule.parent_fd = fd;
  int rc = static_cast<int>(syscall(SYS_landlock_add_rule, ruleset_fd, LANDLOCK_RULE_PATH_BENEATH, &rule, 0));
  int e = rc == 0 ? 0 : errno;
  close(fd);
  return e;
}

int LandlockRestrictSelf(int ruleset_fd) {
  return syscall(SYS_landlock_restrict_self, ruleset_fd, 0) == 0 ? 0 : errno;
}

}  // namespace ward
