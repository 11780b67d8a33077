#include "base/mountinfo.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <optional>
#include <cstdio>
#include <sstream>

#include "base/file.h"
#include "base/path.h"

namespace ward {
namespace {

// mountinfo escapes space, tab, newline and backslash as `\ooo`.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const std::string oct = s.substr(i + 1, 3);
      if (oct.size() == 3 && std::all_of(oct.begin(), oct.end(), [](char c) { return c >= '0' && c <= '7'; })) {
        out += static_cast<char>(std::stoi(oct, nullptr, 8));
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

// `path` (IsUnder `dir`) re-rooted from `dir` to `to`.
std::string Rebase(const std::string& path, const std::string& dir, const std::string& to) {
  std::string rest = dir == "/" ? path : path.substr(dir.size());  // "" or "/a/b"
  if (rest == "/") rest.clear();
  if (to == "/") return rest.empty() ? "/" : rest;
  return to + rest;
}

}  // namespace

std::vector<MountInfo> ReadMountInfo(const std::string& path) {
  std::vector<MountInfo> out;
  std::istringstream lines(ReadFile(path).value_or(""));
  std::string line;
  while (std::getline(lines, line)) {
    // "36 35 98:0 /root /mnt rw,noatime master:1 - ext3 /dev/root rw"
    std::istringstream f(line);
    MountInfo m;
    std::string dev, root, point;
    if (!(f >> m.id >> m.parent >> dev >> root >> point)) continue;
    if (sscanf(dev.c_str(), "%u:%u", &m.major, &m.minor) != 2) continue;
    const size_t sep = line.find(" - ");
    if (sep == std::string::npos) continue;
    std::istringstream tail(line.substr(sep + 3));
    tail >> m.fstype;
    m.root = Unescape(root);
    m.mount_point = Unescape(point);
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<std::string> PathsShowing(const std::vector<std::string>& dirs) {
  std::vector<std::string> out;
  auto add = [&](std::string p) {
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(std::move(p));
  };
  std::optional<std::vector<MountInfo>> mounts;  // read once, when a dir needs it
  for (const std::string& dir : dirs) {
    add(dir);
    struct statx sx {};
    if (statx(AT_FDCWD, dir.c_str(), AT_STATX_SYNC_AS_STAT, STATX_MNT_ID, &sx) != 0 || !(sx.stx_mask & STATX_MNT_ID)) {
      continue;
    }
    if (!mounts) mounts = ReadMountInfo();
    auto own = std::find_if(mounts->begin(), mounts->end(),
                            [&](const MountInfo& m) { return m.id == static_cast<int>(sx.stx_mnt_id); });
    if (own == mounts->end() || !IsUnder(dir, own->mount_point)) continue;
    // `dir` as a path of its filesystem, then wherever that is mounted.
    const std::string in_fs = Rebase(dir, own->mount_point, own->root);
    for (const MountInfo& m : *mounts) {
      if (m.major == own->major && m.minor == own->minor && IsUnder(in_fs, m.root)) add(Rebase(in_fs, m.root, m.mount_point));
    }
  }
  return out;
}

}  // namespace ward
