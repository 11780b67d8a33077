// The mount table of a process (/proc/PID/mountinfo), parsed, and the
// question it answers for ward: where else is this directory visible?
#pragma once

#include <string>
#include <vector>

namespace ward {

struct MountInfo {
  int id = 0, parent = 0;
  unsigned major = 0, minor = 0;  // the filesystem (superblock)
  std::string root;               // what of that filesystem is mounted, "/" for all of it
  std::string mount_point;        // where, in the reader's mount namespace
  std::string fstype;
};

// The lines of `path` (/proc/self/mountinfo) that parse, octal escapes
// (`\040` for a space) undone; empty if it cannot be read.
std::vector<MountInfo> ReadMountInfo(const std::string& path = "/proc/self/mountinfo");

// Every path of the caller's mount namespace at which each directory of
// `dirs` (real paths: no symlinks) is visible, each once (the mount table
// read once for all): `dir` itself and, for each other
// mount of the same filesystem whose root lies above `dir` there, the same
// directory seen through that mount (a bind mount of an ancestor:
// `mount --bind /var/lib /mnt/lib` shows /var/lib/ward at /mnt/lib/ward).
// A path under a mount stacked over an alias may name something else; it
// is listed all the same, since a caller hides these (hiding more is safe).
// A dir whose mount cannot be found (statx STATX_MNT_ID) is listed alone.
std::vector<std::string> PathsShowing(const std::vector<std::string>& dirs);

}  // namespace ward
