// `ward learn`: from what a command did in a permissive sandbox (its file
// system calls, the programs it executed, its network decisions), the
// least policy under which it does the same again, each grant with why.
//
// Pure: what the file system holds now is asked through `PathFacts`, so the
// rules are unit-tested without a sandbox (learn_test.cc).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ward/sandbox.h"

namespace ward::audit {

struct PathFacts {
  bool exists = false;
  bool is_dir = false;
  std::string real;  // the path with every symlink resolved (realpath)
};

struct LearnInput {
  // In the order they were made. File calls before the first exec, and
  // those of pid 1 (ward's init), are ward's own and not considered.
  std::vector<FileAccess> files;
  std::vector<ProcessExec> execs;
  std::vector<EgressRecord> egress;
  std::string workspace;             // real path; written as ${WORKSPACE}
  std::string cwd;                   // real path: where the command ran
  std::vector<std::string> covered;  // granted anyway: the system baseline, private /tmp and home, /proc, /dev
  // The envelope's grants (real paths): what the command could reach. A
  // path outside them was refused while learning (ward cannot see the
  // kernel's answer) and is not learned; nor a write outside `may_write`.
  std::vector<std::string> may_read, may_write;
  std::vector<std::string> argv;     // the command, for the header
  std::function<PathFacts(const std::string&)> facts;
};

// One grant of the learned policy and why it is there.
struct LearnedGrant {
  std::string path;  // real path
  std::string why;   // "read by cat (3 files, e.g. /w/a.txt)"
};

struct LearnedPolicy {
  std::vector<LearnedGrant> read, write;
  std::vector<LearnedGrant> egress;  // rules: "name:port" or "address:port"
  std::vector<LearnedGrant> unix;    // filesystem.unix: sockets connected
  // Used but not granted, and why (a directory only listed outside the
  // workspace, a name a policy cannot hold): said in the text's header.
  std::vector<LearnedGrant> skipped;
  // The policy as JSON with a comment beside each grant (ward's policy
  // parser takes comments): extends "minimal", ${WORKSPACE} for the
  // workspace.
  std::string text;
};

// At most this many entries of one directory are granted one by one;
// more, and the directory is granted instead.
inline constexpr size_t kCollapseAt = 4;

LearnedPolicy DerivePolicy(const LearnInput& in);

}  // namespace ward::audit
