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

std::deque<std::string> Components(const std::string& path) {
  std::deque<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// `prefix` joined to `rest`, `.` and `..` resolved by name.
std::string JoinByName(std::vector<std::string> prefix, const std::deque<std::string>& rest) {
  for (const auto& c : rest) {
    if (c == ".") continue;
    if (c == "..") {
      if (!prefix.empty()) prefix.pop_back();
    } else {
      prefix.push_back(c);
    }
  }
  std::string out;
  for (const auto& c : prefix) out += "/" + c;
  return out.empty() ? "/" : out;
}

bool HasDotDot(const std::string& named) {
  for (const auto& c : Components(named)) {
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

HostPath HostResolve(const std::string& named, bool follow_last) {
  HostPath out;
  std::deque<std::string> todo = Components(named);
  std::vector<std::string> cur;
  int links = 0;
  auto joined = [&] { return JoinByName(cur, {}); };
  while (!todo.empty()) {
    std::string c = std::move(todo.front());
    todo.pop_front();
    if (c == ".") continue;
    if (c == "..") {
      if (!cur.empty()) cur.pop_back();
      continue;
    }
    cur.push_back(std::move(c));
    if (cur.size() == 1 && cur[0] == "proc") {
      // The sandbox has its own /proc: the host's says nothing of it.
      out.path = JoinByName(cur, todo);
      out.state = HostPath::kExists;
      out.into_proc = true;
      return out;
    }
    const bool last = std::none_of(todo.begin(), todo.end(), [](const std::string& x) { return x != "."; });
    const std::string p = joined();
    struct stat st;
    if (lstat(p.c_str(), &st) != 0) {
      out.path = JoinByName(cur, todo);
      out.state = errno == EACCES ? HostPath::kUnknown : last && errno == ENOENT ? HostPath::kNew : HostPath::kNothing;
      return out;
    }
    if (S_ISLNK(st.st_mode) && (!last || follow_last)) {
      if (++links > 40) return out;  // ELOOP
      char buf[PATH_MAX];
      ssize_t n = readlink(p.c_str(), buf, sizeof buf);
      if (n <= 0 || static_cast<size_t>(n) >= sizeof buf) {
        out.path = JoinByName(cur, todo);
        out.state = HostPath::kUnknown;
        return out;
      }
      const std::string target(buf, static_cast<size_t>(n));
      out.through_link = true;
      cur.pop_back();
      if (target[0] == '/') cur.clear();
      std::deque<std::string> t = Components(target);
      todo.insert(todo.begin(), t.begin(), t.end());
    }
  }
  out.path = joined();
  out.state = HostPath::kExists;
  return out;
}

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
  int fd = open(("/proc/" + std::to_string(tid) + "/root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  int none = -1;
  if (!root_.compare_exchange_strong(none, fd)) close(fd);
  return true;
}

bool FileJudge::SandboxHas(const std::string& path) {
  const int root = root_.load();
  if (root < 0) return true;  // cannot tell: not reported
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC | O_NOFOLLOW;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  const char* rel = path == "/" ? "." : path.c_str() + 1;
  int fd = static_cast<int>(syscall(SYS_openat2, root, rel, &how, sizeof how));
  if (fd >= 0) {
    close(fd);
    return true;
  }
  return errno != ENOENT && errno != ENOTDIR;
}

std::optional<FileDenial> FileJudge::Judge(const FileAccess& a) {
  const bool follow = a.follow || a.op == FileOp::kExecute;
  const std::string& named = a.named.empty() ? a.path : a.named;
  // A look at a link ward made in the bare root (`ls -l /`) is the sandbox's own.
  if (!follow && OwnLink(a.path) && !HasDotDot(named)) return std::nullopt;
  const ViewRule* rule = nullptr;
  bool own = false;
  std::string why = ByName(a.path, a.op, &rule, &own);
  FileDenial d;
  if (why.empty() && own) {
    // The sandbox's own area: what it writes there is its own; a read of a
    // name the host has and the sandbox does not looked for the host's file.
    if (Writes(a.op) || IsUnder(a.path, "/proc") || HasDotDot(named) || !HostHas(a.path) ||
        SandboxHas(a.path)) {
      return std::nullopt;
    }
    why = "hidden by the sandbox's private " + rule->path;
  } else {
    // Granted by a name with no `..` and no link on the host's way: done.
    // A read-only grant's paths found clean are remembered: the sandbox
    // cannot plant a link there (most of what programs open: libraries).
    if (why.empty() && !HasDotDot(named)) {
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
    // Otherwise where it leads on the host, as the kernel would go.
    const HostPath h = HostResolve(named, follow);
    if (h.state == HostPath::kNothing || h.into_proc) return std::nullopt;
    if (h.state == HostPath::kNew && a.op != FileOp::kCreate) return std::nullopt;  // a lookup of what is not there
    why = ByName(h.path, a.op, &rule, &own);
    if (why.empty()) return std::nullopt;  // leads to what is granted, or to the sandbox's own
    if (h.path != a.path) d.resolved = h.path;
  }
  d.access = a;
  d.reason = std::move(why);
  if (rule) d.rule = rule->path;
  return d;
}

void FileJudge::Start(std::function<void(FileDenial)> report, std::function<void(uint64_t, const std::string&)> dropped) {
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
    if (!thread_.joinable() && started_ && !stopping_) thread_ = std::thread([this] { Loop(); });
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

FileJudge::~FileJudge() {
  if (thread_.joinable()) {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  if (root_.load() >= 0) close(root_.load());
}

bool FileJudge::Admit(FileDenial& d, int64_t now_ns) {
  // Identical denials within a second of the last one recorded: counted.
  const std::string key = std::to_string(static_cast<int>(d.access.op)) + ":" +
                          (d.access.named.empty() ? d.access.path : d.access.named);
  if (seen_.size() > 4096) seen_.clear();
  auto [it, fresh] = seen_.try_emplace(key, Seen{now_ns, 0});
  if (!fresh) {
    if (now_ns - it->second.last_ns < 1000000000) {
      ++it->second.suppressed;
      return false;
    }
    d.repeats = it->second.suppressed;
    it->second = Seen{now_ns, 0};
  }
  // At most kRatePerSecond a second, after a burst of kBurst.
  if (tokens_at_ns_ == 0) tokens_at_ns_ = now_ns;
  tokens_ = std::min<double>(kBurst, tokens_ + static_cast<double>(now_ns - tokens_at_ns_) * kRatePerSecond / 1e9);
  tokens_at_ns_ = now_ns;
  if (tokens_ < 1) {
    ++over_rate_;
    return false;
  }
  tokens_ -= 1;
  return true;
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
    const uint64_t overflow = std::exchange(overflow_, 0);
    lock.unlock();
    if (overflow && dropped_) dropped_(overflow, "file accesses not judged: more than " + std::to_string(kMaxQueued) + " waited");
    for (FileAccess& a : batch) {
      std::optional<FileDenial> d = Judge(a);
      if (!d || !Admit(*d, MonotonicNs())) continue;
      if (over_rate_ && dropped_) {
        dropped_(std::exchange(over_rate_, 0), "file denials not recorded: more than " + std::to_string(kRatePerSecond) +
                                                   " a second");
      }
      if (report_) report_(std::move(*d));
    }
    lock.lock();
    judged_ += batch.size();
    judged_cv_.notify_all();
  }
  const uint64_t overflow = std::exchange(overflow_, 0);
  lock.unlock();
  if (overflow && dropped_) dropped_(overflow, "file accesses not judged: more than " + std::to_string(kMaxQueued) + " waited");
  if (over_rate_ && dropped_) {
    dropped_(std::exchange(over_rate_, 0), "file denials not recorded: more than " + std::to_string(kRatePerSecond) +
                                               " a second");
  }
}

}  // namespace ward
