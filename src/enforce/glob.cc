#include "enforce/glob.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "policy/paths.h"

namespace ward {

namespace {

std::vector<std::string> Components(const std::string& path) {
  std::vector<std::string> out;
  size_t i = 1;
  while (i <= path.size()) {
    size_t j = std::min(path.find('/', i), path.size());
    if (j > i) out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::string Join(const std::string& dir, const std::string& name) { return dir == "/" ? "/" + name : dir + "/" + name; }

class Expander {
 public:
  Expander(const std::string& rule, GlobUse use, size_t* budget)
      : rule_(rule), parts_(Components(rule)), use_(use), budget_(budget) {
    first_glob_ = parts_.size();
    for (size_t i = 0; i < parts_.size() && first_glob_ == parts_.size(); ++i) {
      if (HasGlob(parts_[i])) first_glob_ = i;
    }
  }

  Result<std::vector<std::string>> Run() {
    Walk("/", 0);
    if (!error_.empty()) return Error::Policy(error_);
    return std::vector<std::string>(found_.begin(), found_.end());
  }

 private:
  // Whether a deny pattern may pass over `dir`, which ward could not search
  // or list (`err`): only if the sandbox cannot reach into it either. It
  // runs with the caller's identity (a root caller's sees everything ward
  // sees), so a directory the caller owns is not such a place (the sandbox
  // may chmod it back where it can write), nor is one it may search
  // without listing (a file there is opened by its name). Otherwise an
  // error: a file there matching the deny could not be hidden.
  bool DenyMayPass(const std::string& dir, int err) {
    if (use_ != GlobUse::kDeny || err == ENOENT || err == ENOTDIR) return true;
    struct stat st;
    bool owned = lstat(dir.c_str(), &st) == 0 && st.st_uid == geteuid();
    if (err == EACCES && !owned && access(dir.c_str(), X_OK) != 0) return true;
    error_ = "cannot list \"" + dir + "\" (" + std::strerror(err) + ") to find what \"" + rule_ +
             "\" hides, and the sandbox could reach into it" + (owned ? " (it is the caller's: chmod)" : "") +
             "; make it readable, or deny the directory itself";
    return false;
  }

  // Entries of `dir` with whether each is a real directory (not a link to
  // one) and whether each is a symlink.
  struct Entry {
    std::string name;
    bool is_dir = false;
    bool is_link = false;
  };
  bool List(const std::string& dir, std::vector<Entry>* out) {
    DIR* d = opendir(dir.c_str());
    if (!d) {
      DenyMayPass(dir, errno);
      return false;
    }
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      if (*budget_ == 0) {
        error_ = "pattern \"" + rule_ + "\" reads more than the bound of directory entries (" +
                 std::to_string(kGlobBudget) + " for all patterns); start it deeper, or name fewer trees";
        closedir(d);
        return false;
      }
      --*budget_;
      bool is_dir = e->d_type == DT_DIR, is_link = e->d_type == DT_LNK;
      if (e->d_type == DT_UNKNOWN) {
        struct stat st;
        bool known = lstat(Join(dir, n).c_str(), &st) == 0;
        is_dir = known && S_ISDIR(st.st_mode);
        is_link = known && S_ISLNK(st.st_mode);
      }
      out->push_back({std::move(n), is_dir, is_link});
    }
    closedir(d);
    return true;
  }

  void Walk(const std::string& at, size_t i) {
    if (!error_.empty()) return;
    if (i == parts_.size()) {
      found_.insert(at);
      return;
    }
    const std::string& part = parts_[i];
    const bool last = i + 1 == parts_.size();
    // A grant's pattern stays in the tree it names: past its first
    // wildcard no symlink is followed, nor matched (a sandbox that could
    // write there could have planted it, to be granted where it points).
    const bool confined = use_ == GlobUse::kGrant && i > first_glob_;
    if (!HasGlob(part)) {
      std::string next = Join(at, part);
      struct stat st;
      // Before the first wildcard, a literal component is looked up as any
      // path is (a link to a directory is followed: it is named, not
      // searched for).
      bool found = last || confined ? lstat(next.c_str(), &st) == 0 : stat(next.c_str(), &st) == 0;
      if (!found) {
        DenyMayPass(at, errno);
        return;
      }
      if (confined && S_ISLNK(st.st_mode)) return;
      if (last || S_ISDIR(st.st_mode)) Walk(next, i + 1);
      return;
    }
    std::vector<Entry> entries;
    if (!List(at, &entries)) return;
    if (part == "**") {
      Walk(at, i + 1);  // zero directories
      for (const Entry& e : entries) {
        if (e.is_dir) Walk(Join(at, e.name), i);  // one more
      }
      return;
    }
    for (const Entry& e : entries) {
      if (!MatchComponent(part, e.name)) continue;
      if (e.is_link && use_ == GlobUse::kGrant) continue;
      if (last || e.is_dir) Walk(Join(at, e.name), i + 1);
    }
  }

  const std::string& rule_;
  std::vector<std::string> parts_;
  GlobUse use_;
  size_t first_glob_ = 0;  // index of the first component with a wildcard
  size_t* budget_;
  std::set<std::string> found_;
  std::string error_;
};

}  // namespace

bool HasGlob(std::string_view path) { return path.find_first_of("*?") != std::string_view::npos; }

std::string PatternBase(std::string_view pattern) {
  std::string_view head = pattern.substr(0, pattern.find_first_of("*?"));
  return std::string(head.substr(0, std::max<size_t>(1, head.rfind('/'))));
}

bool MatchComponent(std::string_view p, std::string_view n) {
  // Iterative wildcard matching with one backtrack point (the last `*`).
  size_t pi = 0, ni = 0, star = std::string_view::npos, mark = 0;
  while (ni < n.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == n[ni])) {
      ++pi;
      ++ni;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = ni;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      ni = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

Result<std::vector<std::string>> ExpandRule(const std::string& rule, GlobUse use, size_t* budget) {
  if (!HasGlob(rule)) {
    struct stat st;
    if (stat(rule.c_str(), &st) == 0) return std::vector<std::string>{rule};
    return std::vector<std::string>{};
  }
  return Expander(rule, use, budget).Run();
}

Result<DenyExpansion> ExpandDeny(const FilesystemPolicy& fs, size_t i, size_t* budget) {
  const std::string& rule = fs.deny[i];
  auto matches = ExpandRule(rule, GlobUse::kDeny, budget);
  if (!matches) return matches.error();
  DenyExpansion out{std::move(*matches), ""};
  if (!out.matches.empty()) return out;
  const std::string fixed = PatternBase(rule);  // where its matches would be
  for (const auto* list : {&fs.read, &fs.write}) {
    for (const auto& g : *list) {
      if (!HasGlob(g) && IsUnder(fixed, g)) {
        out.warning = "/filesystem/deny/" + std::to_string(i) + " \"" + rule + "\" matches nothing under the grant \"" +
                      g + "\": a typo? (it hides nothing now; a file created there later is hidden from later runs)";
        return out;
      }
    }
  }
  return out;
}

}  // namespace ward
