// A held sandbox's persistent areas: its private /tmp and home are tmpfs in
// the sandbox, sized by limits.tmpfsMiB as ward run's are (a write beyond:
// ENOSPC), whose content its supervisor saves in RUNTIME/ID/state/NAME
// when it ends (a stop, a limit, init's death) and puts back at the next
// start. A tmpfs an unprivileged user mounts lives only as long as its
// namespaces, and one mounted on the host would stay on the host's mount
// table: the copy keeps both the bound and the rule that a sandbox leaves no
// mount behind. A supervisor killed with SIGKILL saves nothing: the next
// start has the content of the last save.
//
// What is kept: directories, regular files (holes kept), symlinks (never
// followed), hard links (as links), FIFOs; modes without the set-user-ID and
// set-group-ID bits of files; modification times. Not kept: sockets,
// device nodes (the sandbox cannot make any), extended attributes, and
// anything mounted inside an area (a grant under /tmp is the host's).
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "enforce/plan.h"
#include "ward/result.h"

namespace ward::lifecycle {

// How deep a tree may nest (directories) to be saved or restored.
inline constexpr int kPersistMaxDepth = 256;

class PersistentAreas {
 public:
  // Makes (mode 0700) or checks each area's directory STATE_DIR/NAME: a
  // link or anything but a directory there is an error (never followed),
  // and what a save cut short left (NAME.new) is removed.
  static Result<void> Prepare(const std::string& state_dir, const std::vector<PersistArea>& areas);

  // Puts each area's saved content into its tmpfs, `roots` (the sandbox's
  // init opened them, one per area in order, before anything else ran
  // there), and keeps them so that Save can read each tmpfs after the
  // sandbox has ended. `as_uid`: a root caller's agent host uid, the
  // file-system user both copies run as (the sandbox's files are its); else
  // the caller's.
  Result<void> Restore(const std::string& state_dir, const std::vector<PersistArea>& areas, std::vector<UniqueFd> roots,
                       std::optional<uid_t> as_uid);

  // Writes each held tmpfs's content to STATE_DIR/NAME.new, then swaps it in
  // (renameat2 RENAME_EXCHANGE): a crash leaves the last save. Errors name
  // the area, the path in it and why; the last save is kept then.
  Result<void> Save();

  // What Restore left out and why (entries that did not fit the tmpfs).
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  struct Held {
    std::string name;
    UniqueFd root;  // the tmpfs's root
  };
  std::string state_dir_;
  // The file-system user both copies run as: as_uid_, else the caller.
  uid_t CopyingUser() const { return as_uid_ ? *as_uid_ : geteuid(); }
  std::optional<uid_t> as_uid_;
  std::vector<Held> held_;
  std::vector<std::string> warnings_;
};

}  // namespace ward::lifecycle
