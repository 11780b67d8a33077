#include "enforce/file_view.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include "base/clock.h"
#include "base/path.h"

namespace ward {
namespace {

bool Writes(FileOp op) { return op == FileOp::kWrite || op == FileOp::kCreate || op == FileOp::kRemove; }

bool HasDotDot(const std::string& named) {
  for (const auto& c : PathComponents(named)) {
    if (c == "..") return true;
  }
  return false;
}

// Whether the host's `path` (normalized, no `..`) passes through a link
// (one path walk: RESOLVE_NO_SYMLINKS); the last component's only if the
// call follows it.
bool ThroughLink(const std::string& path, bool follow_last) {
  if (!follow_last && path != "/") return ThroughLink(Parent(path), true);
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC;  // no O_NOFOLLOW: a last component that is a link is one too
  how.resolve = RESOLVE_NO_SYMLINKS;
  int fd = static_cast<int>(syscall(SYS_openat2, AT_FDCWD, path.c_str(), &how, sizeof how));
  if (fd >= 0) {
    close(fd);
    return false;
  }
  if (errno == ENOENT && path != "/") return ThroughLink(Parent(path), true);  // a new name: its directory's
  return errno == ELOOP;
}

// The host has `path` (its last component not followed, no magic link on
// the way: /proc/PID/root does not lead into another sandbox).
bool HostHas(const std::string& path) {
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC | O_NOFOLLOW;
  how.resolve = RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(syscall(SYS_openat2, AT_FDCWD, path.c_str(), &how, sizeof how));
  if (fd >= 0) {
    close(fd);
    return true;
  }
  return errno == EACCES;
}

}  // namespace

const ViewRule* FileJudge::RuleFor(const std::string& path) const {
  for (std::string p = path;; p = Parent(p)) {
    auto it = std::lower_bound(view_.begin(), view_.end(), p,
                               [](const ViewRule& r, const std::string& key) { return r.path < key; });
    if (it != view_.end() && it->path == p && it->access != ViewRule::Access::kLink) return &*it;
    if (p == "/") return nullptr;
  }
}

bool FileJudge::OwnLink(const std::string& path) const {
  auto it = std::lower_bound(view_.begin(), view_.end(), path,
                             [](const ViewRule& r, const std::string& key) { return r.path < key; });
  return it != view_.end() && it->path == path && it->access == ViewRule::Access::kLink;
}

bool FileJudge::LeadsToRule(const std::string& path) const {
  const std::string prefix = path == "/" ? "/" : path + "/";
  auto it = std::lower_bound(view_.begin(), view_.end(), prefix,
                             [](const ViewRule& r, const std::string& key) { return r.path < key; });
  return it != view_.end() && it->path.compare(0, prefix.size(), prefix) == 0;
}

std::string FileJudge::ByName(const std::string& path, FileOp op, const ViewRule** rule, bool* own) const {
  const ViewRule* r = RuleFor(path);
  *rule = r;
  *own = false;
  if (!r) return !Writes(op) && LeadsToRule(path) ? "" : "not granted";
  switch (r->access) {
    case ViewRule::Access::kWrite:
      return "";
    case ViewRule::Access::kRead:
      return Writes(op) ? "read-only" : "";
    case ViewRule::Access::kHidden:
      // A look at the mask itself (`ls -l` of its directory) shows nothing
      // of what it hides.
      return op == FileOp::kStat && path == r->path ? "" : "denied by a rule";
    case ViewRule::Access::kPrivate:
    case ViewRule::Access::kLink:
      *own = true;
      return "";
  }
  return "not granted";
}

bool FileJudge::TakeRoot(int tid) {
  if (root_.load() >= 0) return true;
  if (tid <= 0) return false;
  // Its mount namespace too: held, it keeps the sandbox's mounts while
  // the judge walks them after the sandbox has ended (the judge is stopped
  // and this closed right after: nothing outlives the run for long).
  const std::string proc = "/proc/" + std::to_string(tid);
  int ns = open((proc + "/ns/mnt").c_str(), O_RDONLY | O_CLOEXEC);
  if (ns < 0) return false;
  int fd = open((proc + "/root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    close(ns);
    return false;
  }
  int none = -1;
  if (!root_.compare_exchange_strong(none, fd)) {
    close(fd);
    close(ns);
    return true;
  }
  mntns_.store(ns);
  return true;
}

namespace {

bool Numeric(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// One component `name` beneath the directory `dir`, not followed, no
// magic link, no way out of `dir` (RESOLVE_BENEATH: `name` holds no '/').
int OpenBeneath(int dir, const std::string& name) {
  open_how how{};
  how.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(syscall(SYS_openat2, dir, name.c_str(), &how, sizeof how));
}

// What the caller's own /proc magic link `entry` ("root", "cwd", "exe" or
// "fd/N") names, read from its host thread `tid`: "" if it cannot be read
// or is not a path. Its root is the sandbox's: "/".
std::string OwnMagicTarget(int tid, const std::string& entry) {
  if (entry == "root") return "/";
  char buf[PATH_MAX];
  const std::string host = "/proc/" + std::to_string(tid) + "/" + entry;
  ssize_t n = readlink(host.c_str(), buf, sizeof buf);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof buf || buf[0] != '/') return "";
  return std::string(buf, static_cast<size_t>(n));
}

// The magic link `c[at]` (and `c[at + 1]` for fd/N) of a /proc/<pid>/
// directory: its entry name for OwnMagicTarget, "" if it is not one;
// `*used`: the components it takes.
std::string MagicEntry(const std::vector<std::string>& c, size_t at, size_t* used) {
  if (c.size() > at && (c[at] == "cwd" || c[at] == "root" || c[at] == "exe")) {
    *used = 1;
    return c[at];
  }
  if (c.size() > at + 1 && c[at] == "fd" && Numeric(c[at + 1])) {
    *used = 2;
    return "fd/" + c[at + 1];
  }
  return "";
}

}  // namespace

void PinMagicLinks(FileAccess* a) {
  const std::string& named = a->named;
  if (named.compare(0, 6, "/proc/") != 0 || a->host_tid <= 0) return;
  const std::deque<std::string> parts = PathComponents(named);
  const std::vector<std::string> c(parts.begin(), parts.end());
  if (c.size() < 3) return;
  const std::string me = std::to_string(a->pid);
  if (!(c[1] == "self" || c[1] == "thread-self" || (a->pid > 0 && c[1] == me))) return;
  size_t used = 0;
  const std::string entry = MagicEntry(c, 2, &used);
  if (entry.empty()) return;
  std::string target = OwnMagicTarget(a->host_tid, entry);
  if (target.empty()) return;
  for (size_t i = 2 + used; i < c.size(); ++i) target += (target.back() == '/' ? "" : "/") + c[i];
  a->named = target;
}

SandboxPath FileJudge::SandboxResolve(const std::string& named, bool follow, int pid, int tid) const {
  SandboxPath out;
  const int root = root_.load();
  if (root < 0) {
    out.unjudged = true;
    return out;
  }
  std::deque<std::string> todo = PathComponents(named);
  std::vector<std::string> cur;
  std::vector<UniqueFd> fds;  // fds[i]: cur[0..i], opened in the sandbox
  int links = 0, steps = 0;
  const std::string me = std::to_string(pid);
  while (!todo.empty()) {
    if (++steps > kMaxSteps || fds.size() > 256) {
      out.unjudged = true;
      return out;
    }
    std::string c = std::move(todo.front());
    todo.pop_front();
    if (c == ".") continue;
    if (c == "..") {
      if (!cur.empty()) {
        cur.pop_back();
        fds.pop_back();
      }
      continue;
    }
    // /proc/self and /proc/thread-self: the caller's own (ward has no pid
    // in the sandbox's /proc).
    if (cur.size() == 1 && cur[0] == "proc" && (c == "self" || c == "thread-self")) {
      if (pid <= 0) {
        out.unjudged = true;
        return out;
      }
      c = me;
    }
    const bool last = std::none_of(todo.begin(), todo.end(), [](const std::string& x) { return x != "."; });
    int fd = OpenBeneath(fds.empty() ? root : fds.back().get(), c);
    if (fd < 0) {
      const int e = errno;
      cur.push_back(std::move(c));
      out.path = JoinByName(cur, todo);
      // Not in the sandbox (or in a directory ward may not search, as a
      // deny rule's mode-0 mask): the rest is the name asked for.
      if (e == ENOENT || e == ENOTDIR || e == EACCES) {
        out.parent_exists = last && e == ENOENT;
        return out;
      }
      out.unjudged = true;
      return out;
    }
    UniqueFd f(fd);
    struct stat st;
    if (fstat(fd, &st) != 0) {
      out.unjudged = true;
      return out;
    }
    cur.push_back(std::move(c));
    if (S_ISLNK(st.st_mode) && (!last || follow)) {
      if (++links > 40) {  // ELOOP: the kernel gives up too
        out.path = JoinByName(cur, todo);
        return out;
      }
      std::string target;
      if (cur[0] == "proc" && cur.size() >= 3 && Numeric(cur[1])) {
        // A magic link: the caller's own root, cwd, exe or fd/N are what
        // its host thread's say; another process's are not judged.
        size_t used = 0;
        const std::string entry = cur[1] == me && tid > 0 ? MagicEntry(cur, 2, &used) : "";
        if (!entry.empty() && cur.size() == 2 + used) target = OwnMagicTarget(tid, entry);
        if (target.empty()) {
          out.unjudged = true;
          return out;
        }
      } else {
        char buf[PATH_MAX];
        ssize_t n = readlinkat(fd, "", buf, sizeof buf);
        if (n <= 0 || static_cast<size_t>(n) >= sizeof buf) {
          out.unjudged = true;
          return out;
        }
        target.assign(buf, static_cast<size_t>(n));
      }
      cur.pop_back();
      if (target[0] == '/') {
        cur.clear();
        fds.clear();
      }
      std::deque<std::string> t = PathComponents(target);
      todo.insert(todo.begin(), t.begin(), t.end());
      continue;
    }
    fds.push_back(std::move(f));
  }
  out.path = JoinByName(cur, {});
  out.exists = true;
  return out;
}

std::optional<FileDenial> FileJudge::Judge(const FileAccess& a) {
  const bool follow = a.follow || a.op == FileOp::kExecute;
  const std::string& named = a.named.empty() ? a.path : a.named;
  const bool dotdot = HasDotDot(named);
  // A look at a link ward made in the bare root (`ls -l /`) is the sandbox's own.
  if (!follow && !dotdot && OwnLink(a.path)) return std::nullopt;
  const ViewRule* rule = nullptr;
  bool own = false;
  std::string why = ByName(a.path, a.op, &rule, &own);
  // Granted by a name with no `..` and no link on the host's way (grants
  // are binds of host paths: the same there): done. A read-only grant's
  // paths found clean are remembered: the sandbox cannot plant a link
  // there (most of what programs open: libraries).
  if (why.empty() && !own && !dotdot) {
    const bool read_only = rule && rule->access == ViewRule::Access::kRead;
    const std::string key = follow ? a.path : a.path + "\n";
    if (read_only && clean_.count(key)) return std::nullopt;
    if (!ThroughLink(a.path, follow)) {
      if (read_only) {
        if (clean_.size() >= 8192) clean_.clear();
        clean_.insert(key);
      }
      return std::nullopt;
    }
  }
  // Where it leads in the sandbox's view.
  const SandboxPath w = SandboxResolve(named, follow, a.pid, a.host_tid);
  if (w.unjudged) {
    ++unjudged_;
    return std::nullopt;
  }
  why = ByName(w.path, a.op, &rule, &own);
  if (w.exists || (a.op == FileOp::kCreate && w.parent_exists)) {
    // What the sandbox has (or a new name where it has the directory):
    // judged by where it is.
    if (why.empty()) return std::nullopt;
  } else if (own) {
    // A name the sandbox's own area lacks: the host's file of that name,
    // looked for (never the host's /proc: another pid namespace).
    if (Writes(a.op) || IsUnder(w.path, "/proc") || !HostHas(w.path)) return std::nullopt;
    why = "hidden by the sandbox's private " + rule->path;
  } else {
    // A name the sandbox lacks: a denial if the host has it.
    if (why.empty() || !HostHas(w.path)) return std::nullopt;
  }
  FileDenial d;
  if (w.path != a.path) d.resolved = w.path;
  d.access = a;
  d.reason = std::move(why);
  if (rule) d.rule = rule->path;
  return d;
}

void FileJudge::Start(std::function<void(FileDenial)> report, Dropped dropped) {
  report_ = std::move(report);
  dropped_ = std::move(dropped);
  started_ = true;
}

void FileJudge::Submit(FileAccess a) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    // The thread starts with the first access, once the sandbox runs: the
    // supervisor must still be single-threaded when it clones the sandbox
    // (the child's glibc setgroups/setresuid would wait for threads that
    // are not in it).
    if (stopping_) return;  // the sandbox has ended (Stop)
    if (started_ && !thread_.joinable()) thread_ = std::thread([this] { Loop(); });
    if (queue_.size() >= kMaxQueued) {
      ++overflow_;
      return;
    }
    // Only the first access of a batch wakes the thread (a wake-up per
    // call would cost the sandbox a context switch on each).
    wake = queue_.empty();
    queue_.push_back(std::move(a));
    ++submitted_;
  }
  if (wake) cv_.notify_one();
}

bool FileJudge::Drain(int timeout_ms) {
  std::unique_lock lock(mu_);
  const uint64_t target = submitted_;
  if (judged_ >= target) return true;
  ++draining_;
  cv_.notify_one();
  const bool ok = judged_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return judged_ >= target; });
  --draining_;
  return ok;
}

void FileJudge::Stop() {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      stopping_ = true;
      stop_deadline_ = MonotonicNs() + int64_t{kStopMs} * 1000000;
    }
  }
  cv_.notify_one();
  // Submit starts no thread once stopping_ is set, so thread_ is settled.
  if (thread_.joinable()) thread_.join();
}

FileJudge::~FileJudge() {
  Stop();
  if (root_.load() >= 0) close(root_.load());
  if (mntns_.load() >= 0) close(mntns_.load());
}

bool FileJudge::Admit(FileDenial& d, int64_t now_ns) {
  // Identical denials (operation, where it led, why) within a second of the
  // last one recorded: counted, however the path was spelled.
  const std::string key = std::to_string(static_cast<int>(d.access.op)) + ":" +
                          (d.resolved.empty() ? d.access.path : d.resolved) + ":" + d.reason;
  if (seen_.size() > 4096) FlushRepeats();  // forgotten, but their counts are not lost
  auto [it, fresh] = seen_.try_emplace(key, Seen{now_ns, 0, {}});
  if (!fresh) {
    if (now_ns - it->second.last_ns < 1000000000) {
      ++it->second.suppressed;
      it->second.last = d;
      return false;
    }
    d.repeats = it->second.suppressed;
    it->second.suppressed = 0;
    it->second.last_ns = now_ns;
  }
  // At most kRatePerSecond a second, after a burst of kBurst.
  if (tokens_at_ns_ == 0) tokens_at_ns_ = now_ns;
  tokens_ = std::min<double>(kBurst, tokens_ + static_cast<double>(now_ns - tokens_at_ns_) * kRatePerSecond / 1e9);
  tokens_at_ns_ = now_ns;
  if (tokens_ < 1) {
    OverRate(d);
    return false;
  }
  tokens_ -= 1;
  return true;
}

void FileJudge::OverRate(const FileDenial& d) {
  // Reservoir sampling: each path dropped is as likely to be kept as any
  // other, so a flood cannot choose to hide one.
  ++over_rate_;
  const std::string path = d.resolved.empty() ? d.access.path : d.resolved;
  if (sample_.size() < kSample) {
    sample_.push_back(path);
    return;
  }
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 7;
  rng_ ^= rng_ << 17;
  const uint64_t j = rng_ % over_rate_;
  if (j < kSample) sample_[j] = path;
}

void FileJudge::ReportDropped() {
  if (!dropped_) return;
  if (uint64_t n = std::exchange(overflow_taken_, 0)) {
    dropped_(n, "file accesses not judged: more than " + std::to_string(kMaxQueued) + " waited", {});
  }
  if (uint64_t n = std::exchange(over_rate_, 0)) {
    dropped_(n, "file denials not recorded: more than " + std::to_string(kRatePerSecond) + " a second", sample_);
    sample_.clear();
  }
  if (uint64_t n = std::exchange(unjudged_, 0)) {
    dropped_(n, "file accesses not judged: a path too deep, too long or through a link ward cannot read", {});
  }
  if (uint64_t n = std::exchange(stopped_, 0)) {
    dropped_(n, "file accesses not judged: the sandbox ended with them waiting", {});
  }
}

void FileJudge::Loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) break;  // stopping, all judged
    // A batch: what arrives within kBatchMs of its first access (unless
    // someone drains or stops).
    if (!stopping_ && !draining_) {
      cv_.wait_for(lock, std::chrono::milliseconds(kBatchMs), [&] { return stopping_ || draining_ > 0; });
    }
    std::deque<FileAccess> batch = std::exchange(queue_, {});
    overflow_taken_ += std::exchange(overflow_, 0);
    lock.unlock();
    for (FileAccess& a : batch) {
      const int64_t deadline = stop_deadline_.load();
      if (deadline && MonotonicNs() > deadline) {
        ++stopped_;
        continue;
      }
      std::optional<FileDenial> d = Judge(a);
      if (!d || !Admit(*d, MonotonicNs())) continue;
      ReportDropped();
      if (report_) report_(std::move(*d));
    }
    lock.lock();
    judged_ += batch.size();
    judged_cv_.notify_all();
  }
  overflow_taken_ += std::exchange(overflow_, 0);
  lock.unlock();
  FlushRepeats();
  ReportDropped();
}

void FileJudge::FlushRepeats() {
  // The counts of repeats not yet on a recorded event, on a last copy.
  for (auto& [k, v] : seen_) {
    if (v.suppressed && report_) {
      v.last.repeats = v.suppressed;
      report_(std::move(v.last));
    }
  }
  seen_.clear();
}

}  // namespace ward
