#include "enforce/memory_watch.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <set>
#include <string>
#include <utility>

#include "base/errors.h"

namespace ward {
namespace {

// The value in kB of the line "`key`:   N kB" in `text`, in bytes.
uint64_t Field(std::string_view text, std::string_view key) {
  for (size_t at = 0; at < text.size();) {
    size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(at, end - at);
    at = end + 1;
    if (line.size() <= key.size() || !line.starts_with(key) || line[key.size()] != ':') continue;
    std::string number(line.substr(key.size() + 1));
    return std::strtoull(number.c_str(), nullptr, 10) * 1024;
  }
  return 0;
}

// Bytes of the unlinked tmpfs files (memfds, deleted tmpfs files) the
// process holds open that are not yet in `seen` (inodes already counted for
// another descriptor or process), added to `seen`.
uint64_t UnlinkedShmem(int proc, const char* pid, std::set<std::pair<dev_t, ino_t>>* seen) {
  std::string dir = std::string(pid) + "/fd";
  int fd_dir = openat(proc, dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd_dir < 0) return 0;
  DIR* d = fdopendir(fd_dir);
  if (d == nullptr) {
    close(fd_dir);
    return 0;
  }
  uint64_t bytes = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    struct stat st;
    // What the descriptor holds (the magic link followed); only an unlinked
    // regular file can be memory no mount bounds.
    if (fstatat(fd_dir, e->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 0) continue;
    if (!seen->insert({st.st_dev, st.st_ino}).second) continue;
    UniqueFd file(openat(fd_dir, e->d_name, O_PATH | O_CLOEXEC));
    struct statfs fs{};
    if (file.valid() && fstatfs(file.get(), &fs) == 0 && fs.f_type == TMPFS_MAGIC) {
      bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    }
  }
  closedir(d);
  return bytes;
}

}  // namespace

uint64_t ParseRollup(std::string_view text) { return Field(text, "Pss_Anon") + Field(text, "Pss_Shmem"); }

Result<MemoryWatch> MemoryWatch::FromProcfs(UniqueFd proc) {
  struct statfs fs{};
  if (fstatfs(proc.get(), &fs) != 0) return SysError("fstatfs", "the sandbox's /proc");
  if (fs.f_type != PROC_SUPER_MAGIC) return Error::Setup("the sandbox's /proc is not a procfs");
  // The sandbox's procfs is of another pid namespace: ward is not in it, so
  // its "self" names no process there. Ward's own /proc would.
  char self[32];
  if (readlinkat(proc.get(), "self", self, sizeof self) >= 0) {
    return Error::Setup("the sandbox's /proc is ward's own procfs");
  }
  return MemoryWatch(std::move(proc));
}

Result<MemoryWatch::Usage> MemoryWatch::Sample(int64_t now_ms, bool memory) {
  int dir_fd = openat(proc_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return SysError("open", "the sandbox's /proc");
  DIR* dir = fdopendir(dir_fd);
  if (dir == nullptr) {
    close(dir_fd);
    return SysError("fdopendir", "the sandbox's /proc");
  }
  Usage usage;
  std::map<int, int64_t> unreadable;
  // Every kFilesEvery samples: memory in unlinked tmpfs files (memfds), which
  // no mount's size bounds and no mapping may show.
  const bool files = memory && samples_++ % kFilesEvery == 0;
  std::set<std::pair<dev_t, ino_t>> seen;
  uint64_t file_bytes = 0;
  std::string path;
  char buf[4096];
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;  // processes only
    const int pid = std::atoi(e->d_name);
    path.assign(e->d_name).append("/task");
    if (int task_fd = openat(proc_.get(), path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); task_fd >= 0) {
      if (DIR* tasks = fdopendir(task_fd)) {
        while (dirent* t = readdir(tasks)) usage.tasks += t->d_name[0] != '.';
        closedir(tasks);
      } else {
        close(task_fd);
      }
    }
    if (!memory || pid == 1) continue;  // init: ward's own, a few pages
    path.assign(e->d_name).append("/smaps_rollup");
    UniqueFd fd(openat(proc_.get(), path.c_str(), O_RDONLY | O_CLOEXEC));
    ssize_t n = fd.valid() ? read(fd.get(), buf, sizeof buf) : -1;
    if (n >= 0) {
      usage.memory_bytes += ParseRollup(std::string_view(buf, static_cast<size_t>(n)));
      if (files) file_bytes += UnlinkedShmem(proc_.get(), e->d_name, &seen);
      continue;
    }
    // Gone meanwhile: ENOENT (the directory) or ESRCH (the process, as the
    // file was read).
    if (errno == ENOENT || errno == ESRCH) continue;
    int err = errno;
    if (err == EACCES || err == EPERM) {
      auto known = unreadable_since_.find(pid);
      int64_t since = known == unreadable_since_.end() ? now_ms : known->second;
      if (now_ms - since <= kUnreadableMs) {
        unreadable[pid] = since;  // init's child before its exec, for a moment
        continue;
      }
    }
    closedir(dir);
    return Error::Setup("cannot read the memory of the sandbox's process " + std::string(e->d_name) +
                        " (/proc/" + e->d_name + "/smaps_rollup: " + ErrnoName(err) +
                        "), so memoryMiB cannot be kept");
  }
  closedir(dir);
  unreadable_since_ = std::move(unreadable);
  if (files) unlinked_bytes_ = file_bytes;
  usage.memory_bytes += unlinked_bytes_;  // as last seen
  return usage;
}

}  // namespace ward
