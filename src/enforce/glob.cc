#include "enforce/glob.h"

#include <dirent.h>
#include <sys/stat.h>

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
  Expander(const std::string& rule, size_t* budget) : rule_(rule), parts_(Components(rule)), budget_(budget) {}

  Result<std::vector<std::string>> Run() {
    Walk("/", 0);
    if (!error_.empty()) return Error::Policy(error_);
    return std::vector<std::string>(found_.begin(), found_.end());
  }

 private:
  // Entries of `dir` with whether each is a real directory (not a link to one).
  bool List(const std::string& dir, std::vector<std::pair<std::string, bool>>* out) {
    DIR* d = opendir(dir.c_str());
    if (!d) return false;  // unreadable or gone: nothing the caller could see there either
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
      bool is_dir = e->d_type == DT_DIR;
      if (e->d_type == DT_UNKNOWN) {
        struct stat st;
        is_dir = lstat(Join(dir, n).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
      }
      out->emplace_back(std::move(n), is_dir);
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
    if (!HasGlob(part)) {
      std::string next = Join(at, part);
      struct stat st;
      // A literal component is looked up as any path is (a link to a
      // directory is followed here: it is named, not searched for).
      if (last ? lstat(next.c_str(), &st) == 0 : (stat(next.c_str(), &st) == 0 && S_ISDIR(st.st_mode))) Walk(next, i + 1);
      return;
    }
    std::vector<std::pair<std::string, bool>> entries;
    if (!List(at, &entries)) return;
    if (part == "**") {
      Walk(at, i + 1);  // zero directories
      for (const auto& [name, is_dir] : entries) {
        if (is_dir) Walk(Join(at, name), i);  // one more
      }
      return;
    }
    for (const auto& [name, is_dir] : entries) {
      if (!MatchComponent(part, name)) continue;
      if (last || is_dir) Walk(Join(at, name), i + 1);
    }
  }

  const std::string& rule_;
  std::vector<std::string> parts_;
  size_t* budget_;
  std::set<std::string> found_;
  std::string error_;
};

}  // namespace

bool HasGlob(std::string_view path) { return path.find_first_of("*?") != std::string_view::npos; }

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

Result<std::vector<std::string>> ExpandRule(const std::string& rule, size_t* budget) {
  if (!HasGlob(rule)) {
    struct stat st;
    if (stat(rule.c_str(), &st) == 0) return std::vector<std::string>{rule};
    return std::vector<std::string>{};
  }
  return Expander(rule, budget).Run();
}

Result<DenyExpansion> ExpandDeny(const FilesystemPolicy& fs, size_t i, size_t* budget) {
  const std::string& rule = fs.deny[i];
  auto matches = ExpandRule(rule, budget);
  if (!matches) return matches.error();
  DenyExpansion out{std::move(*matches), ""};
  if (!out.matches.empty()) return out;
  // The fixed part of a pattern (a path's directory): where its matches
  // would be.
  std::string fixed = rule.substr(0, rule.find_first_of("*?"));
  fixed = fixed.substr(0, std::max<size_t>(1, fixed.rfind('/')));
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
