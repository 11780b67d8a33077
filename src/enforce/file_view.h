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
//    or `..`) the path is walked in the sandbox's own view, component by
//    component from its root, as the kernel would (links read there and
//    followed where the call follows them, `..` after a link leaving its
//    target, /proc/self and the caller's own /proc magic links mapped to
//    what they name, at most 40 links and kMaxSteps components). Where the
//    walk ends: an object the sandbox has is judged by its path (a write in
//    a read-only grant, a deny rule's mask); a name the sandbox lacks is a
//    denial if the host has it and the policy does not grant it ("not
//    granted", "read-only", "denied by a rule", or "hidden by the sandbox's
//    private DIR" in its own areas), and nothing if the host lacks it too
//    (a failed lookup is not a denial: PATH and library searches). The host
//    is asked about that one name only.
// Floods are bounded: identical denials (operation, where the path led,
// reason) within a second of the last one recorded are counted, and the
// count goes on the next one recorded or, at the end, on a last copy
// (FileDenial::repeats); more than kRatePerSecond a second (after a burst of
// kBurst), or more than kMaxQueued accesses waiting, are counted and
// reported as dropped with a random sample of the paths dropped (so that a
// sandbox cannot choose which denial a flood hides). When the judge stops,
// what still waits is judged for at most kStopMs, the rest counted.
// Not judged: calls on descriptors (read, write, fchmod on an fd opened
// earlier: judged when opened); a relative path whose directory's name is
// longer than PATH_MAX (its name cannot be read from /proc); a link in
// /proc other than the caller's own root, cwd, exe and fd/N; what a path
// named after kMaxSteps components or 256 directories deep leads to
// (counted as dropped); and what the call did if the sandbox changed a
// link or the path between the call and the judgement (it is judged
// after the call goes on: a program racing its own links can make the
// record wrong, never the enforcement).
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

// Where a path leads in the sandbox's view (FileJudge::SandboxResolve).
struct SandboxPath {
  std::string path;        // absolute, normalized: where the walk ended, and the rest by name
  bool exists = false;     // the sandbox has it
  bool parent_exists = false;  // it lacks only the last component
  bool unjudged = false;   // too deep, too long, or a link it cannot read
};

// On the listener's thread, while the caller waits: a path through the
// caller's own /proc magic links (/proc/self/fd/N, cwd, exe, root) made
// into what they name now (by the time the judge looks, the process may be
// gone, and its /proc entries with it).
void PinMagicLinks(FileAccess* a);

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
  using Dropped = std::function<void(uint64_t count, const std::string& why, const std::vector<std::string>& sample)>;
  void Start(std::function<void(FileDenial)> report, Dropped dropped);
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
  // Judges what waits (at most kStopMs), reports it and the counts, and
  // stops the thread; what is submitted afterwards is not judged. Called
  // once the sandbox has ended, before its audit trail is closed (the
  // destructor does it too).
  void Stop();

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
  static constexpr int kMaxSteps = 4096;  // components walked per access, links' included
  static constexpr int kStopMs = 2000;    // judging what waits when the judge stops
  static constexpr size_t kSample = 16;   // paths kept of those dropped

 private:
  const ViewRule* RuleFor(const std::string& path) const;
  bool LeadsToRule(const std::string& path) const;
  bool OwnLink(const std::string& path) const;
  // Walks `named` in the sandbox's view from its root (TakeRoot), for the
  // caller `pid` (in the sandbox) and `tid` (on the host).
  SandboxPath SandboxResolve(const std::string& named, bool follow, int pid, int tid) const;
  // Counts `d` as over the rate, keeping a random sample of the paths.
  void OverRate(const FileDenial& d);
  // Reports what was counted and not recorded since the last report.
  void ReportDropped();
  // Reports the repeats counted and not yet on a recorded event, each on a
  // last copy, and forgets them.
  void FlushRepeats();
  void Loop();
  // Rate and repeats: whether `d` is recorded now (its repeats set).
  bool Admit(FileDenial& d, int64_t now_ns);

  std::vector<ViewRule> view_;
  std::atomic<int> root_{-1};   // the sandbox's root (TakeRoot), owned
  std::atomic<int> mntns_{-1};  // its mount namespace, held while the judge may walk it

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<FileAccess> queue_;
  uint64_t submitted_ = 0, judged_ = 0;  // Drain
  int draining_ = 0;
  std::condition_variable judged_cv_;
  uint64_t overflow_ = 0;  // accesses not queued (full)
  uint64_t overflow_taken_ = 0;  // the same, taken by the judge's thread to report
  std::atomic<int64_t> stop_deadline_{0};  // CLOCK_MONOTONIC: judging stops then (kStopMs)
  bool stopping_ = false;
  bool started_ = false;
  std::thread thread_;
  std::function<void(FileDenial)> report_;
  FileJudge::Dropped dropped_;
  // The judge's thread only.
  struct Seen {
    int64_t last_ns;
    uint64_t suppressed;
    FileDenial last;  // for the count at the end
  };
  std::unordered_map<std::string, Seen> seen_;
  std::unordered_set<std::string> clean_;  // read-only grants' paths with no link on the way
  double tokens_ = kBurst;
  int64_t tokens_at_ns_ = 0;
  uint64_t over_rate_ = 0, unjudged_ = 0, stopped_ = 0;
  std::vector<std::string> sample_;  // of the paths over the rate (reservoir)
  uint64_t rng_ = 0x9e3779b97f4a7c15ULL;
};

}  // namespace ward
