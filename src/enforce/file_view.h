// Judges the file accesses a sandbox makes against what its policy grants
// (LaunchPlan::view), for the audit trail's "file" events (policy
// audit.files "denied"; RunRequest::on_file_denied).
//
// A record, never a decision: the kernel has enforced the view already
// (mounts, masks, landlock). The supervisor's listener hands each access
// over (Submit) and answers the call at once; a thread of the judge's own
// judges it, so the sandbox never waits for what the judgement looks at on
// the host (which would tell it, by the time a call takes, whether a host
// file it cannot see exists). An access is judged by the path the call
// names, as the kernel reads it:
//  - granted by name (a writable grant; a read-only one for reading) or
//    the way to a grant (a directory of the bare root that leads to one),
//    through no link on the host: not reported; nor a look at a link ward
//    made in the bare root (/bin -> usr/bin) itself;
//  - in the sandbox's own areas (private /tmp and home, /dev, /proc): the
//    sandbox's files, not reported; but a read of a name the host has and
//    the sandbox does not is reported, "hidden by the sandbox's private
//    DIR" (the workload looked for the host's file: `cat ~/.ssh/id_rsa`);
//    never for /proc (the host's is another pid namespace);
//  - otherwise (not granted by name, or a path that passes through a link
//    or `..`) the path is resolved on the host component by component, as
//    the kernel would (links followed where the call follows them, `..`
//    after a link leaving its target, a new name through a dangling link
//    landing where the link points, at most 40 links); a path the host
//    does not have is not reported (a failed lookup is not a denial: PATH
//    and library searches), nor one that leads to a grant or into /proc;
//    the rest is a denial: "not granted", "read-only" or "denied by a rule".
// Floods are bounded: identical denials (operation and path) within a
// second of the last one recorded are counted on the next one recorded
// (FileDenial::repeats); more than kRatePerSecond a second (after a burst of
// kBurst), or more than kMaxQueued accesses waiting, are counted and
// reported as dropped.
// Not judged: a link inside the sandbox's own areas (a link in its private
// /tmp leads elsewhere there than on the host), calls on descriptors
// (read, write, fchmod on an fd opened earlier: judged when opened), a
// relative path whose directory's name is longer than PATH_MAX (its name
// cannot be read from /proc), and what the call does if another thread
// rewrites its path meanwhile.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/unique_fd.h"
#include "enforce/plan.h"
#include "ward/sandbox.h"

namespace ward {

// Where a path leads on the host, resolved component by component.
struct HostPath {
  enum State : uint8_t {
    kNothing,  // the host has nothing there (or a loop of links)
    kExists,
    kNew,      // the last component does not exist; its directory does
    kUnknown,  // a directory on the way ward may not search: taken as named from there
  };
  std::string path;  // absolute, normalized
  State state = kNothing;
  bool through_link = false;
  bool into_proc = false;  // it led into /proc: the sandbox's own there
};
HostPath HostResolve(const std::string& named, bool follow_last);

class FileJudge {
 public:
  explicit FileJudge(std::vector<ViewRule> view) : view_(std::move(view)) {}
  ~FileJudge();  // judges what waits, then stops its thread
  FileJudge(const FileJudge&) = delete;
  FileJudge& operator=(const FileJudge&) = delete;

  // Where the judge's thread sends what it finds: `report` each denial
  // (its pid as the access had it), `dropped` each count of accesses left
  // unjudged or denials left unrecorded (and why); both on that thread. The
  // thread itself starts with the first Submit, once the sandbox runs: the
  // supervisor must be single-threaded when it clones the sandbox (the
  // child's glibc setgroups/setresuid would wait for threads not in it).
  void Start(std::function<void(FileDenial)> report, std::function<void(uint64_t, const std::string&)> dropped);
  // Thread-safe; never waits.
  void Submit(FileAccess a);
  // The sandbox's root, from a thread of it (/proc/TID/root), for what the
  // judgement asks of the sandbox's own areas; taken once, while the
  // thread lives (the sandbox cannot change its root: no capabilities).
  // Thread-safe; false until taken (an unprivileged supervisor may not
  // open the root of a process that is not dumpable yet: try the next).
  bool TakeRoot(int tid);
  // Waits until what was submitted before the call is judged and reported,
  // at most `timeout_ms`: false if not by then. A held sandbox's
  // supervisor drains before it tells `ward exec` its command ended.
  bool Drain(int timeout_ms);

  // The denial of `a` (made by host thread a.host_tid), or nullopt; on the
  // caller's thread.
  std::optional<FileDenial> Judge(const FileAccess& a);

  // By the name alone, no system call: "" if granted (`*own`: in the
  // sandbox's own area), else why not; `*rule`: the rule that decided.
  std::string ByName(const std::string& path, FileOp op, const ViewRule** rule, bool* own) const;

  static constexpr size_t kMaxQueued = 4096;
  static constexpr int kRatePerSecond = 200, kBurst = 2000;
  // How long the thread gathers accesses after the first of a batch.
  static constexpr int kBatchMs = 5;

 private:
  const ViewRule* RuleFor(const std::string& path) const;
  bool LeadsToRule(const std::string& path) const;
  bool OwnLink(const std::string& path) const;
  // Whether the sandbox's root (TakeRoot) has `path`; true if unknown.
  bool SandboxHas(const std::string& path);
  void Loop();
  // Rate and repeats: whether `d` is recorded now (its repeats set).
  bool Admit(FileDenial& d, int64_t now_ns);

  std::vector<ViewRule> view_;
  std::atomic<int> root_{-1};  // the sandbox's root (TakeRoot), owned

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<FileAccess> queue_;
  uint64_t submitted_ = 0, judged_ = 0;  // Drain
  int draining_ = 0;
  std::condition_variable judged_cv_;
  uint64_t overflow_ = 0;  // accesses not queued (full)
  bool stopping_ = false;
  bool started_ = false;
  std::thread thread_;
  std::function<void(FileDenial)> report_;
  std::function<void(uint64_t, const std::string&)> dropped_;
  // The judge's thread only.
  struct Seen {
    int64_t last_ns;
    uint64_t suppressed;
  };
  std::unordered_map<std::string, Seen> seen_;
  std::unordered_set<std::string> clean_;  // read-only grants' paths with no link on the way
  double tokens_ = kBurst;
  int64_t tokens_at_ns_ = 0;
  uint64_t over_rate_ = 0;
};

}  // namespace ward
