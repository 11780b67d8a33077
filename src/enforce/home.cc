#include "enforce/home.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>

#include "policy/paths.h"

namespace ward {

namespace {

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r");
  size_t e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A git-config value: quotes removed, escapes (\" \\ \t \n) undone, an
// unquoted # or ; starts a comment. (Only [user] name and email are read;
// git's own parser is not a library, and these two keys need no more.)
std::string ConfigValue(const std::string& raw) {
  std::string out;
  bool quoted = false;
  for (size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (c == '"') {
      quoted = !quoted;
    } else if (c == '\\' && i + 1 < raw.size()) {
      char n = raw[++i];
      out += n == 't' ? '\t' : n == 'n' ? '\n' : n;
    } else if (!quoted && (c == '#' || c == ';')) {
      break;
    } else {
      out += c;
    }
  }
  return Trim(out);
}

void ReadIdentity(const std::string& file, std::string* name, std::string* email) {
  std::ifstream in(file);
  std::string line;
  bool in_user = false;
  while (std::getline(in, line)) {
    std::string t = Trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t[0] == '[') {
      auto close = t.find(']');
      in_user = close != std::string::npos && Lower(Trim(t.substr(1, close - 1))) == "user";
      continue;
    }
    if (!in_user) continue;
    auto eq = t.find('=');
    if (eq == std::string::npos) continue;
    std::string key = Lower(Trim(t.substr(0, eq)));
    std::string value = ConfigValue(t.substr(eq + 1));
    if (value.empty()) continue;
    if (key == "name") *name = value;
    if (key == "email") *email = value;
  }
}

// A git-config string: quoted, with \ " and control characters escaped.
std::string Quoted(const std::string& v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    if (c == '\t') {
      out += "\\t";
      continue;
    }
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string SeedGitConfig(const std::string& home, const std::string& user) {
  std::string name, email;
  const char* xdg = getenv("XDG_CONFIG_HOME");
  ReadIdentity(std::string(xdg && *xdg ? xdg : home + "/.config") + "/git/config", &name, &email);
  ReadIdentity(home + "/.gitconfig", &name, &email);
  const std::string who = user.empty() ? "agent" : user;
  const bool placeholder = name.empty() && email.empty();
  if (name.empty()) name = who + " (ward sandbox)";
  if (email.empty()) email = who + "@ward.invalid";
  return "[user]\n\tname = " + Quoted(name) + "\n\temail = " + Quoted(email) + "\n" +
         "# Written by ward for this sandbox's private home (docs/policy.md, filesystem.home): " +
         (placeholder ? "a placeholder, as the caller has no git identity.\n"
                      : "the caller's git identity, and nothing else of their configuration.\n");
}

std::vector<std::string> PathEntries(const std::string& path_var) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= path_var.size()) {
    size_t j = std::min(path_var.find(':', i), path_var.size());
    out.push_back(path_var.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::string FindOnPath(const std::string& name, const std::string& path_var) {
  for (const auto& dir : PathEntries(path_var)) {
    if (dir.empty() || dir[0] != '/') continue;  // relative entries depend on the cwd: not guessed
    std::string p = dir + "/" + name;
    struct stat st;
    if (stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

std::string GrantFor(const std::string& exe, const std::string& home) {
  if (!home.empty() && home != "/" && IsUnder(exe, home) && exe != home) {
    size_t slash = exe.find('/', home.size() + 1);
    return slash == std::string::npos ? exe : exe.substr(0, slash);
  }
  std::string dir = exe.substr(0, exe.rfind('/'));
  if (dir.size() > 4 && dir.compare(dir.size() - 4, 4, "/bin") == 0) return dir.substr(0, dir.size() - 4);
  return dir.empty() ? "/" : dir;
}

}  // namespace ward
