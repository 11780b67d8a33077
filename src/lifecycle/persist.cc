#include "lifecycle/persist.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <utility>

#include "audit/store.h"
#include "base/errors.h"
#include "lifecycle/store.h"

namespace ward::lifecycle {

namespace {

// `name` in `dir`: no link followed, no mount crossed (a grant mounted
// inside an area is not the area's), nothing outside `dir`.
int OpenIn(int dir, const char* name, int flags) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_NOFOLLOW | O_CLOEXEC);
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV | RESOLVE_BENEATH;
  return static_cast<int>(syscall(SYS_openat2, dir, name, &how, sizeof how));
}

// The id of the mount `name` in `dir` is on (the mount's own if it is a
// mount point); 0 if it cannot be told.
uint64_t MountId(int dir, const char* name) {
  struct statx sx;
  if (statx(dir, name, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH, STATX_MNT_ID, &sx) != 0 || !(sx.stx_mask & STATX_MNT_ID)) return 0;
  return sx.stx_mnt_id;
}

// A directory stream of its own for `dir`: a dup() would share (and move)
// the read position of `dir`, which is read again later (a tmpfs root is
// cleared, then restored into, then saved: with a shared position the
// second save found it empty).
DIR* OpenStream(int dir) {
  const int fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  DIR* d = fdopendir(fd);
  if (!d) close(fd);
  return d;
}

// Why it failed, and where (the area and the path in it).
struct CopyError {
  std::string where;
  std::string what;
  int err = 0;
};

// This thread's file-system identity for a while (setfsuid/setfsgid are
// the calling thread's, not the process's): a root supervisor copies as the
// agent's host uid, the owner of the sandbox's files, so that what it makes
// in the sandbox's tmpfs is the sandbox's (root is not mapped in the
// sandbox's user namespace: EOVERFLOW) and no file-system capability of
// root's is at work while it walks what the sandbox wrote.
class FsUser {
 public:
  explicit FsUser(std::optional<uid_t> uid) {
    if (!uid) return;
    prev_uid_ = static_cast<uid_t>(syscall(SYS_setfsuid, *uid));
    prev_gid_ = static_cast<gid_t>(syscall(SYS_setfsgid, *uid));
    active_ = true;
    ok_ = static_cast<uid_t>(syscall(SYS_setfsuid, -1)) == *uid && static_cast<gid_t>(syscall(SYS_setfsgid, -1)) == *uid;
  }
  ~FsUser() {
    if (!active_) return;
    syscall(SYS_setfsgid, prev_gid_);
    syscall(SYS_setfsuid, prev_uid_);
  }
  FsUser(const FsUser&) = delete;
  FsUser& operator=(const FsUser&) = delete;
  bool ok() const { return ok_; }

 private:
  bool active_ = false, ok_ = true;
  uid_t prev_uid_ = 0;
  gid_t prev_gid_ = 0;
};

// A tree copied from one directory descriptor to another, as persist.h says,
// by the file-system user `me`.
//
// Into a sandbox's fresh tmpfs (a restore), what ward made there comes
// first: a mount point (a grant under /tmp or home, the host's) is never
// touched, removed or entered; a directory stays a directory (it may hold
// mount points: a saved entry of another type in its place is dropped);
// only a file of the tmpfs's own (a seed) gives way to a saved one. A
// sandbox that replaced the parent of a grant by a file, or a granted file
// by its placeholder, gets ward's layout back, not the host's files removed.
class Copier {
 public:
  // `lenient` (a restore): an entry that cannot be copied (most often:
  // it does not fit, ENOSPC or EDQUOT) is left out and counted, not an
  // error. The sandbox shaped its save; nothing in it may keep the sandbox
  // from ever starting again (a grant's parent renamed makes a save bigger
  // than a fresh tmpfs holds: ward makes the grant's place anew beside it).
  Copier(int dst_root, uid_t me, bool lenient = false)
      : dst_root_(dst_root), dst_mount_(MountId(dst_root, "")), me_(me), lenient_(lenient), buf_(1 << 16) {}

  uint64_t left_out() const { return left_out_; }
  const std::string& first_left_out() const { return first_left_out_; }
  const std::string& first_why() const { return first_why_; }

  // The copied tree, then the modes of its directories that shut out their
  // owner (no S_IXUSR), set last, deepest first: a later name of a
  // hard-linked file is made through the path of its first, which such a
  // directory would close (a mode-0 directory on it refused every restore).
  bool Copy(int src, int dst) {
    // The source's root too may have been shut to its owner (chmod 0 /tmp
    // lost the save): opened to it (what a save reads is then discarded).
    struct stat root;
    if (fstat(src, &root) == 0) {
      if (const mode_t mode = OwnerReadable(root)) (void)fchmod(src, mode);
    }
    const bool ok = Entries(src, dst, "", 0);
    for (const auto& [rel, mode] : closed_dirs_) (void)fchmodat(dst_root_, rel.c_str() + 1, mode, AT_SYMLINK_NOFOLLOW);
    return ok;
  }

  bool Entries(int src, int dst, const std::string& rel, int depth) {
    DIR* d = OpenStream(src);
    if (!d) return Fail(rel, "fdopendir", errno);
    bool ok = true;
    while (dirent* e = readdir(d)) {
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
      if (!Entry(src, dst, e->d_name, rel + "/" + e->d_name, depth)) {
        ok = false;
        break;
      }
    }
    closedir(d);
    return ok;
  }

  const CopyError& error() const { return error_; }

 private:
  bool Fail(const std::string& where, const std::string& what, int err) {
    if (lenient_) {
      if (left_out_++ == 0) {
        first_left_out_ = where;
        first_why_ = what + (err ? ": " + ErrnoName(err) : "");
      }
      return true;
    }
    error_ = {where, what, err};
    return false;
  }

  // The mode that opens `st`, an entry of the copier's own it may not read
  // (or search, a directory), to it: mode 0 or write-only, which the copier
  // meets as its owner, never with a capability. 0: nothing to change.
  mode_t OwnerReadable(const struct stat& st) const {
    if (st.st_uid != me_) return 0;
    const mode_t need = S_ISDIR(st.st_mode) ? S_IRUSR | S_IXUSR : S_IRUSR;
    return (st.st_mode & need) == need ? 0 : (st.st_mode & 07777) | need;
  }

  // `name` in `dir` made readable for the copy (OwnerReadable). Returns
  // the mode to put back (0: unchanged).
  mode_t MakeReadable(int dir, const char* name, const struct stat& st) const {
    const mode_t open = OwnerReadable(st);
    if (!open || fchmodat(dir, name, open, AT_SYMLINK_NOFOLLOW) != 0) return 0;
    return (st.st_mode & 07777) | S_IFMT;  // S_IFMT marks "changed" even for mode 0
  }

  bool Entry(int src, int dst, const char* name, const std::string& rel, int depth) {
    struct stat st;
    if (fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return Fail(rel, "fstatat", errno);
    // What is there already: see the class comment.
    struct stat there;
    const bool have = fstatat(dst, name, &there, AT_SYMLINK_NOFOLLOW) == 0;
    if (have) {
      if (dst_mount_ == 0 || MountId(dst, name) != dst_mount_) return true;  // a mount point
      if (S_ISDIR(there.st_mode) != S_ISDIR(st.st_mode)) return true;
      if (!S_ISDIR(there.st_mode) && unlinkat(dst, name, 0) != 0) return Fail(rel, "unlinkat", errno);
    }
    const timespec times[2] = {st.st_atim, st.st_mtim};
    if (S_ISDIR(st.st_mode)) {
      if (depth + 1 > kPersistMaxDepth) return Fail(rel, "deeper than " + std::to_string(kPersistMaxDepth) + " levels", 0);
      if (!(have && S_ISDIR(there.st_mode)) && mkdirat(dst, name, 0700) != 0) return Fail(rel, "mkdirat", errno);
      const mode_t put_back = MakeReadable(src, name, st);
      UniqueFd s(OpenIn(src, name, O_RDONLY | O_DIRECTORY));
      UniqueFd d(OpenIn(dst, name, O_RDONLY | O_DIRECTORY));
      if (!s.valid() || !d.valid()) {
        const int err = errno;
        if (put_back) (void)!fchmodat(src, name, put_back & 07777, AT_SYMLINK_NOFOLLOW);
        if (err == EXDEV) return true;  // a mount point: not the area's
        return Fail(rel, "openat2", err);
      }
      const bool ok = Entries(s.get(), d.get(), rel, depth + 1);
      if (put_back) (void)!fchmod(s.get(), put_back & 07777);
      if (!ok) return false;
      const mode_t mode = st.st_mode & 01777;
      const bool closed = !(mode & S_IXUSR) && rel.size() < PATH_MAX && closed_bytes_ + rel.size() <= kMaxLinkBytes;
      if (closed) {
        closed_dirs_.emplace_back(rel, mode);  // set by Copy, last
        closed_bytes_ += rel.size() + 16;
      } else if (fchmod(d.get(), mode) != 0) {
        return Fail(rel, "fchmod", errno);
      }
      (void)futimens(d.get(), times);
      return true;
    }
    if (S_ISREG(st.st_mode)) {
      const uint64_t before = left_out_;
      const bool ok = File(src, dst, name, rel, st, times);
      if (left_out_ != before) {
        (void)unlinkat(dst, name, 0);  // what of it fitted
        // Its other names are copied anew, not linked to this one.
        if (auto at = links_.find({st.st_dev, st.st_ino}); at != links_.end() && at->second == rel) links_.erase(at);
      }
      return ok;
    }
    if (S_ISLNK(st.st_mode)) {
      char target[PATH_MAX + 1];
      const ssize_t n = readlinkat(src, name, target, PATH_MAX);
      if (n < 0) return Fail(rel, "readlinkat", errno);
      target[n] = '\0';
      if (symlinkat(target, dst, name) != 0) return Fail(rel, "symlinkat", errno);
      (void)utimensat(dst, name, times, AT_SYMLINK_NOFOLLOW);
      return true;
    }
    if (S_ISFIFO(st.st_mode)) {
      if (mkfifoat(dst, name, st.st_mode & 0777) != 0) return Fail(rel, "mkfifoat", errno);
      (void)utimensat(dst, name, times, AT_SYMLINK_NOFOLLOW);
      return true;
    }
    return true;  // a socket or a device node: not kept
  }

  bool File(int src, int dst, const char* name, const std::string& rel, const struct stat& st, const timespec* times) {
    // A file with several names: the first copied, the others linked to it
    // (its path kept: at most kMaxLinkBytes of them, each under PATH_MAX).
    if (st.st_nlink > 1) {
      if (rel.size() >= PATH_MAX) return Fail(rel, "a hard-linked file's path is longer than PATH_MAX", 0);
      if (link_bytes_ + rel.size() > kMaxLinkBytes) return Fail(rel, "more hard-linked files than a save keeps", 0);
      auto [at, fresh] = links_.try_emplace({st.st_dev, st.st_ino}, rel);
      if (fresh) link_bytes_ += rel.size() + 64;
      if (!fresh) {
        // rel is "/a/b" below the copy's root: linkat wants "a/b".
        if (linkat(dst_root_, at->second.substr(1).c_str(), dst, name, 0) != 0) {
          return Fail(rel, "linkat", errno);
        }
        return true;
      }
    }
    const mode_t put_back = MakeReadable(src, name, st);
    UniqueFd s(OpenIn(src, name, O_RDONLY | O_NOCTTY | O_NONBLOCK));
    const int open_err = errno;
    if (put_back) (void)!fchmodat(src, name, put_back & 07777, AT_SYMLINK_NOFOLLOW);
    if (!s.valid()) return Fail(rel, "openat2", open_err);
    struct stat now;
    if (fstat(s.get(), &now) != 0 || !S_ISREG(now.st_mode) || now.st_ino != st.st_ino) {
      return Fail(rel, "changed while it was copied", 0);
    }
    UniqueFd d(openat(dst, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!d.valid()) return Fail(rel, "openat", errno);
    // Data only: the holes stay holes (a sparse file the sandbox made fits
    // its tmpfs again).
    const off_t size = now.st_size;
    for (off_t off = 0; off < size;) {
      off_t data = lseek(s.get(), off, SEEK_DATA);
      if (data < 0) {
        if (errno == ENXIO) break;  // a hole up to the end
        data = off;                 // no SEEK_DATA: all of it
      }
      off_t hole = lseek(s.get(), data, SEEK_HOLE);
      if (hole < 0 || hole > size) hole = size;
      for (off_t at = data; at < hole;) {
        const size_t want = static_cast<size_t>(std::min<off_t>(hole - at, static_cast<off_t>(buf_.size())));
        const ssize_t got = pread(s.get(), buf_.data(), want, at);
        if (got < 0) return Fail(rel, "pread", errno);
        if (got == 0) break;
        for (ssize_t put = 0; put < got;) {
          const ssize_t w = pwrite(d.get(), buf_.data() + put, static_cast<size_t>(got - put), at + put);
          if (w < 0) return Fail(rel, "pwrite", errno);
          put += w;
        }
        at += got;
      }
      off = hole;
    }
    if (ftruncate(d.get(), size) != 0) return Fail(rel, "ftruncate", errno);
    // No set-user-ID or set-group-ID bit outlives the run (DESIGN.md 8).
    if (fchmod(d.get(), st.st_mode & 01777) != 0) return Fail(rel, "fchmod", errno);
    (void)futimens(d.get(), times);
    return true;
  }

  static constexpr size_t kMaxLinkBytes = size_t{16} << 20;
  int dst_root_;
  uint64_t dst_mount_;  // the destination's mount (restore: the sandbox's tmpfs)
  uid_t me_;
  bool lenient_;
  uint64_t left_out_ = 0;
  std::string first_left_out_, first_why_;
  std::vector<std::pair<std::string, mode_t>> closed_dirs_;  // post-order: deepest first
  size_t closed_bytes_ = 0;
  size_t link_bytes_ = 0;
  std::vector<char> buf_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;  // a multiply-linked file's first copy, from the root
  CopyError error_;
};

// Removes the files of `dir`'s own tmpfs (`mount`) under it, directories
// and mount points left in place (ward's layout; the host's grants).
void ClearOwnFiles(int dir, uint64_t mount, int depth) {
  if (mount == 0 || depth > kPersistMaxDepth) return;
  DIR* d = OpenStream(dir);
  if (!d) return;
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    if (MountId(dir, e->d_name) != mount) continue;
    struct stat st;
    if (fstatat(dir, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (!S_ISDIR(st.st_mode)) {
      (void)unlinkat(dir, e->d_name, 0);
      continue;
    }
    UniqueFd sub(OpenIn(dir, e->d_name, O_RDONLY | O_DIRECTORY));
    if (sub.valid()) ClearOwnFiles(sub.get(), mount, depth + 1);
  }
  closedir(d);
}

Error CopyFailed(const std::string& area, const char* doing, const CopyError& e) {
  // The path is the sandbox's: escaped, and cut short.
  std::string where = audit::EscapeForTerminal(e.where);
  if (where.size() > 240) where = where.substr(0, 240) + "...";
  std::string msg = std::string("persistent /") + area + ": " + doing + ": \"" + where + "\": " + e.what;
  if (e.err) msg += ": " + ErrnoName(e.err);
  return Error::Setup(msg);
}

}  // namespace

Result<void> PersistentAreas::Prepare(const std::string& state_dir, const std::vector<PersistArea>& areas) {
  UniqueFd state(open(state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!state.valid()) return SysError("open", state_dir);
  for (const PersistArea& a : areas) {
    RemoveTree(state.get(), (a.name + ".new").c_str());  // a save cut short
    // None yet (never saved), or a directory: never what a link planted
    // in its place points to.
    struct stat st;
    if (fstatat(state.get(), a.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    UniqueFd dir(OpenIn(state.get(), a.name.c_str(), O_RDONLY | O_DIRECTORY));
    if (!dir.valid()) {
      return SysError("open", state_dir + "/" + a.name + " (a persistent area must be a directory, not a link)");
    }
  }
  return {};
}

Result<void> PersistentAreas::Restore(const std::string& state_dir, const std::vector<PersistArea>& areas,
                                      std::vector<UniqueFd> roots, std::optional<uid_t> as_uid) {
  state_dir_ = state_dir;
  as_uid_ = as_uid;
  if (roots.size() != areas.size()) {
    return Error::Setup("persistent areas: the sandbox's init handed over " + std::to_string(roots.size()) + " of " +
                        std::to_string(areas.size()));
  }
  UniqueFd state(open(state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!state.valid()) return SysError("open", state_dir);
  for (size_t i = 0; i < areas.size(); ++i) {
    const PersistArea& a = areas[i];
    UniqueFd& tmpfs = roots[i];
    struct statfs fs;
    if (fstatfs(tmpfs.get(), &fs) != 0 || fs.f_type != TMPFS_MAGIC) {
      return Error::Setup("persistent /" + a.name + ": the sandbox's /" + a.target + " is not its tmpfs");
    }
    UniqueFd saved(OpenIn(state.get(), a.name.c_str(), O_RDONLY | O_DIRECTORY));
    if (!saved.valid() && errno != ENOENT) return SysError("open", state_dir + "/" + a.name);
    if (saved.valid()) {
      FsUser who(as_uid);
      if (!who.ok()) return Error::Setup("persistent /" + a.name + ": setfsuid " + std::to_string(*as_uid) + " refused");
      // What the save holds is what the sandbox left: the files ward wrote
      // at this start (seeds) go first, so that one the sandbox removed
      // stays removed and the save fits the tmpfs it came from.
      ClearOwnFiles(tmpfs.get(), MountId(tmpfs.get(), ""), 0);
      Copier c(tmpfs.get(), CopyingUser(), true);
      if (!c.Copy(saved.get(), tmpfs.get())) return CopyFailed(a.name, "restore", c.error());
      if (c.left_out() > 0) {
        std::string first = audit::EscapeForTerminal(c.first_left_out());
        if (first.size() > 240) first = first.substr(0, 240) + "...";
        warnings_.push_back("persistent /" + a.name + ": " + std::to_string(c.left_out()) +
                            " saved entries could not be put back and were left out, the first \"" + first +
                            "\": " + c.first_why() + " (entries that no longer fit its tmpfs: limits.tmpfsMiB)");
      }
    }
    held_.push_back({a.name, std::move(tmpfs)});
  }
  return {};
}

Result<void> PersistentAreas::Save() {
  if (held_.empty()) return {};
  UniqueFd state(open(state_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!state.valid()) return SysError("open", state_dir_);
  for (const Held& h : held_) {
    const std::string fresh = h.name + ".new";
    RemoveTree(state.get(), fresh.c_str());
    if (mkdirat(state.get(), fresh.c_str(), 0700) != 0) return SysError("mkdir", state_dir_ + "/" + fresh);
    UniqueFd dst(OpenIn(state.get(), fresh.c_str(), O_RDONLY | O_DIRECTORY));
    if (!dst.valid()) return SysError("open", state_dir_ + "/" + fresh);
    // The saved copy is the agent's, as the files in its tmpfs are (a root
    // caller's: its host uid; only the caller reaches the state directory).
    if (as_uid_ && fchown(dst.get(), *as_uid_, *as_uid_) != 0) return SysError("fchown", state_dir_ + "/" + fresh);
    bool copied;
    CopyError why;
    {
      FsUser who(as_uid_);
      if (!who.ok()) return Error::Setup("persistent /" + h.name + ": setfsuid refused");
      Copier c(dst.get(), CopyingUser());
      copied = c.Copy(h.root.get(), dst.get());
      why = c.error();
    }
    if (!copied) {
      RemoveTree(state.get(), fresh.c_str());
      return CopyFailed(h.name, "save", why);
    }
    // In place at once: the last save, or this one.
    if (renameat2(state.get(), fresh.c_str(), state.get(), h.name.c_str(), RENAME_EXCHANGE) != 0) {
      if (errno != ENOENT || renameat(state.get(), fresh.c_str(), state.get(), h.name.c_str()) != 0) {
        const int err = errno;
        RemoveTree(state.get(), fresh.c_str());
        return SysError("renameat2", state_dir_ + "/" + fresh, err);
      }
    }
    RemoveTree(state.get(), fresh.c_str());  // the last save
  }
  return {};
}

}  // namespace ward::lifecycle
