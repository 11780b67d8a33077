// Judges the file accesses a sandbox makes against what its policy grants
// (LaunchPlan::view), for the audit trail's "file" events (policy
// audit.files "denied"; RunRequest::on_file_denied).
//
// A record, never a decision: the kernel has enforced the view already
// (mounts, masks, landlock). The access is judged by the path the call
// names, as the supervisor reads it while the call waits (then the call
// goes on, and the judgement is made on the supervisor's thread):
//  - granted by name (a writable grant; a read-only one for reading) or
//    the way to a grant (a directory of the bare root that leads to one),
//    through no link on the host: not reported;
//  - in the sandbox's own areas (private /tmp and home, /dev, /proc): the
//    sandbox's files, not reported; but a read of a name the host has and
//    the sandbox does not is reported, "hidden by the sandbox's private
//    DIR" (the workload looked for the host's file: `cat ~/.ssh/id_rsa`);
//  - otherwise (not granted by name, or a name that passes through a link)
//    the path is resolved on the host (/lib -> usr/lib; a link planted in
//    a grant); a path the host does not have is not reported (a failed
//    lookup is not a denial: PATH and library searches), nor one that
//    leads to a grant; the rest is a denial: "not granted", "read-only"
//    or "denied by a rule".
// Not judged: a link inside the sandbox's own areas (a link in its private
// /tmp leads elsewhere there than on the host: such a read is not
// reported), calls on descriptors (read, write, fchmod on an fd opened
// earlier, which was judged when opened), and what the call does if
// another thread rewrites its path meanwhile.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "enforce/plan.h"
#include "ward/sandbox.h"

namespace ward {

class FileJudge {
 public:
  explicit FileJudge(std::vector<ViewRule> view) : view_(std::move(view)) {}

  // The denial of `a` (made by host thread a.host_tid), or nullopt.
  std::optional<FileDenial> Judge(const FileAccess& a);

  // By the name alone, no system call: "" if granted (`*own`: in the
  // sandbox's own area), else why not; `*rule`: the rule that decided.
  std::string ByName(const std::string& path, FileOp op, const ViewRule** rule, bool* own) const;

 private:
  const ViewRule* RuleFor(const std::string& path) const;
  bool LeadsToRule(const std::string& path) const;
  // Whether the sandbox's root (that of thread `tid`) has `path`.
  bool SandboxHas(const std::string& path, int tid);

  std::vector<ViewRule> view_;
  UniqueFd root_;  // the sandbox's root, opened from the first thread asked
};

}  // namespace ward
