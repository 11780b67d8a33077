#include "enforce/memory_watch.h"

#include <dirent.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/errors.h"
#include "base/proc_stat.h"

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

// Reads `path` (relative to `dir`) into `buf`; the bytes read, or -1 and
// errno.
ssize_t ReadAt(int dir, const std::string& path, char* buf, size_t size) {
  UniqueFd fd(openat(dir, path.c_str(), O_RDONLY | O_CLOEXEC));
  return fd.valid() ? read(fd.get(), buf, size) : -1;
}

}  // namespace

uint64_t ParseRollup(std::string_view text) { return Field(text, "Pss_Anon") + Field(text, "Pss_Shmem"); }

uint64_t ParseStatusPageTables(std::string_view text) { return Field(text, "VmPTE"); }

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

uint64_t MemoryWatch::StartTicks(pid_t pid) const {
  char buf[1024];
  ssize_t n = ReadAt(proc_.get(), std::to_string(pid) + "/stat", buf, sizeof buf);
  if (n <= 0) return 0;
  return static_cast<uint64_t>(ProcStatField(std::string_view(buf, static_cast<size_t>(n)), 22).value_or(0));
}

Result<MemoryWatch::Usage> MemoryWatch::Sample(int64_t now_ms, bool memory, const std::vector<GatedProcess>& at_gate) {
  int dir_fd = openat(proc_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return SysError("open", "the sandbox's /proc");
  DIR* dir = fdopendir(dir_fd);
  if (dir == nullptr) {
    close(dir_fd);
    return SysError("fdopendir", "the sandbox's /proc");
  }
  Usage usage;
  // Every kTablesEvery samples: the page tables (VmPTE), kernel memory a
  // process makes by touching a wide, sparse mapping.
  const bool tables = memory && samples_++ % kTablesEvery == 0;
  uint64_t table_bytes = 0;
  std::string unreadable;  // a process whose memory could not be read now
  int unreadable_err = 0;
  std::string path;
  char buf[4096];
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;  // processes only
    const std::string pid = e->d_name;
    // Its threads: counted for pids, and read for memory when the main
    // thread has exited (its smaps_rollup then says ESRCH, while the other
    // threads still hold the process's memory).
    std::vector<std::string> tids;
    if (int task_fd = openat(proc_.get(), (pid + "/task").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); task_fd >= 0) {
      if (DIR* tasks = fdopendir(task_fd)) {
        while (dirent* t = readdir(tasks)) {
          if (t->d_name[0] != '.') tids.emplace_back(t->d_name);
        }
        closedir(tasks);
      } else {
        close(task_fd);
      }
    }
    usage.tasks += static_cast<int64_t>(tids.size());
    if (!memory || pid == "1") continue;  // init: ward's own, a few pages
    ssize_t n = -1;
    int err = ENOENT;
    std::string where;  // the directory whose files were read
    for (size_t i = 0; i <= tids.size() && n < 0; ++i) {
      where = i == 0 ? pid : pid + "/task/" + tids[i - 1];
      n = ReadAt(proc_.get(), where + "/smaps_rollup", buf, sizeof buf);
      if (n < 0) err = errno;
      if (n < 0 && err != ESRCH) break;  // ESRCH: that thread has no memory map; try the next
    }
    if (n >= 0) {
      usage.memory_bytes += ParseRollup(std::string_view(buf, static_cast<size_t>(n)));
      if (tables) {
        ssize_t m = ReadAt(proc_.get(), where + "/status", buf, sizeof buf);
        if (m > 0) table_bytes += ParseStatusPageTables(std::string_view(buf, static_cast<size_t>(m)));
      }
      continue;
    }
    // Gone meanwhile: ENOENT (the directory), or ESRCH from every thread.
    if (err == ENOENT || err == ESRCH) continue;
    if (err != EACCES && err != EPERM) {
      closedir(dir);
      return Error::Setup("cannot read the memory of the sandbox's process " + pid + " (/proc/" + pid +
                          "/smaps_rollup: " + ErrnoName(err) + "), so memoryMiB cannot be kept");
    }
    // A fork of init waiting at its gate: unreadable as init is, until its
    // exec (the very process the gate named, not one that took its pid).
    const pid_t number = static_cast<pid_t>(std::atoi(e->d_name));
    const auto gate = std::find_if(at_gate.begin(), at_gate.end(), [&](const GatedProcess& g) { return g.pid == number; });
    if (gate != at_gate.end() && gate->start_ticks != 0 && StartTicks(number) == gate->start_ticks) continue;
    unreadable = pid;
    unreadable_err = err;
  }
  closedir(dir);
  // Init's child is unreadable for a moment, before its exec. Some process
  // unreadable for longer, whichever it is (a chain of short-lived ones
  // too), stops the sandbox.
  if (unreadable.empty()) {
    unreadable_since_ = -1;
  } else {
    if (unreadable_since_ < 0) unreadable_since_ = now_ms;
    if (now_ms - unreadable_since_ > kUnreadableMs) {
      return Error::Setup("cannot read the memory of the sandbox's process " + unreadable + " (/proc/" + unreadable +
                          "/smaps_rollup: " + ErrnoName(unreadable_err) + ") for " +
                          std::to_string(now_ms - unreadable_since_) +
                          " ms (a program not readable by any user mapped into the sandbox?), so memoryMiB "
                          "cannot be kept");
    }
  }
  if (tables) table_bytes_ = table_bytes;
  usage.memory_bytes += table_bytes_;  // as last seen
  return usage;
}

MemoryWatchThread::MemoryWatchThread(MemoryWatch watch, Limits limits, std::function<void()> kill)
    : watch_(std::move(watch)), limits_(limits), kill_(std::move(kill)), stop_(eventfd(0, EFD_CLOEXEC)) {
  thread_ = std::thread([this] { Run(MemoryWatch::kIntervalMs); });
}

MemoryWatchThread::~MemoryWatchThread() { Stop(); }

void MemoryWatchThread::Stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  if (write(stop_.get(), &one, sizeof one) != sizeof one) {
    // An eventfd write fails only when its counter would overflow: it is
    // readable already.
  }
  thread_.join();
}

void MemoryWatchThread::AtGate(int gate) {
  std::lock_guard lock(gates_mu_);
  gates_[gate] = {0, 0};
}

void MemoryWatchThread::PastGate(int gate) {
  std::lock_guard lock(gates_mu_);
  gates_.erase(gate);
}

std::vector<MemoryWatch::GatedProcess> MemoryWatchThread::AtGates() {
  std::vector<MemoryWatch::GatedProcess> at;
  std::lock_guard lock(gates_mu_);
  for (auto& [fd, gate] : gates_) {
    if (gate.pid < 0) continue;
    // Only the gated process holds the other end (init closed its copy
    // after the fork; it closes at the exec): hung up, that process has
    // exec'd or ended, and whatever holds its pid now is not it.
    pollfd p{fd, POLLRDHUP, 0};
    if (poll(&p, 1, 0) < 0 || (p.revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL))) {
      gate.pid = -1;
      continue;
    }
    // Its pid, said by ward's own code; its start time read now, while it
    // still holds the gate.
    pid_t said = 0;
    if (gate.pid == 0 && recv(fd, &said, sizeof said, MSG_DONTWAIT) == static_cast<ssize_t>(sizeof said) && said > 1) {
      gate = {said, watch_.StartTicks(said)};
    }
    if (gate.pid > 0) at.push_back(gate);
  }
  return at;
}

void MemoryWatchThread::Run(int64_t interval_ms) {
  for (;;) {
    const int64_t start = MonotonicMs();
    auto used = watch_.Sample(start, limits_.memory_bytes > 0, AtGates());
    if (!used) {
      error_ = used.error().message;
      return kill_();
    }
    if (limits_.pids > 0 && used->tasks >= limits_.pids) {
      pids_reached_ = true;
      ++pids_at_limit_samples_;
    }
    if (limits_.memory_bytes > 0 && used->memory_bytes > limits_.memory_bytes) {
      exceeded_ = true;
      return kill_();
    }
    const int64_t took = MonotonicMs() - start;
    if (took > kSampleBudgetMs) {
      error_ = "one sample of the sandbox's " + std::to_string(used->tasks) + " tasks took " + std::to_string(took) +
               " ms (more than " + std::to_string(kSampleBudgetMs) +
               "), so memoryMiB cannot be kept; give the sandbox a memory cgroup, or fewer processes";
      return kill_();
    }
    pollfd p{stop_.get(), POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(interval_ms));
    if (n > 0) return;  // stopped
  }
}

}  // namespace ward
