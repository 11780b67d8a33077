// JSON -> Policy: structural validation with the JSON path of every issue,
// variable expansion, `extends` composition and contradiction checks.
//
// nlohmann::json throws on malformed text; that exception is caught here and
// never crosses this file's boundary.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "net/egress_rules.h"
#include "policy/paths.h"
#include "policy/profiles.h"
#include "ward/policy.h"

namespace ward {

namespace {

using json = nlohmann::json;

std::string TypeName(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_float: return "a number";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    default: return "an unsupported value";
  }
}

// Never throws: a variable's value (from the environment) need not be UTF-8.
std::string Dump(const json& j, int indent = -1) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

std::string Quote(const std::string& s) { return Dump(json(s)); }

std::string EscapePointer(const std::string& key) {
  std::string out;
  for (char c : key) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

// An integral JSON number as int64 (JSON Schema counts 1.0 as an integer, so
// ward does too); nullopt for anything else. *too_big: integral but outside
// int64.
std::optional<int64_t> IntegerValue(const json& j, bool* too_big) {
  *too_big = false;
  if (j.is_number_unsigned()) {
    if (j.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      *too_big = true;
      return std::nullopt;
    }
    return static_cast<int64_t>(j.get<uint64_t>());
  }
  if (j.is_number_integer()) return j.get<int64_t>();
  if (j.is_number_float()) {
    double d = j.get<double>();
    if (!std::isfinite(d) || std::trunc(d) != d) return std::nullopt;
    if (std::fabs(d) >= 9.2e18) {
      *too_big = true;
      return std::nullopt;
    }
    return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

// Reports keys that appear twice in one object. nlohmann::json keeps the
// last one silently, other parsers (and other tools reading the same file)
// may keep the first: a policy must mean one thing.
class DuplicateKeyFinder {
 public:
  explicit DuplicateKeyFinder(std::vector<PolicyIssue>& issues) : issues_(issues) {}

  bool operator()(int /*depth*/, json::parse_event_t event, json& parsed) {
    using E = json::parse_event_t;
    if ((event == E::object_start || event == E::array_start || event == E::value) && !frames_.empty() &&
        frames_.back().array) {
      ++frames_.back().index;
    }
    switch (event) {
      case E::object_start: frames_.push_back({false}); break;
      case E::array_start: frames_.push_back({true}); break;
      case E::object_end:
      case E::array_end:
        if (!frames_.empty()) frames_.pop_back();
        break;
      case E::key: {
        if (frames_.empty() || !parsed.is_string()) break;
        Frame& top = frames_.back();
        top.key = parsed.get<std::string>();
        if (!top.keys.insert(top.key).second) {
          issues_.push_back({Pointer(), "duplicate key " + Quote(top.key) + "; a key may appear only once in an object"});
        }
        break;
      }
      case E::value: break;
    }
    return true;
  }

 private:
  struct Frame {
    bool array;
    int64_t index = -1;
    std::string key;
    std::set<std::string> keys;
  };

  std::string Pointer() const {
    std::string out;
    for (const auto& f : frames_) out += "/" + (f.array ? std::to_string(f.index) : EscapePointer(f.key));
    return out;
  }

  std::vector<Frame> frames_;
  std::vector<PolicyIssue>& issues_;
};

// Walks one policy document, filling `out` and collecting issues.
class DocumentParser {
 public:
  DocumentParser(const PolicyVars& vars, std::vector<PolicyIssue>& issues)
      : vars_(vars), issues_(issues) {}

  // Each filesystem.unix path -> the pointer of its entry in this document.
  const std::map<std::string, std::string>& UnixPointers() const { return unix_pointers_; }

  void Parse(const json& doc, Policy& out) {
    if (!doc.is_object()) {
      Issue("", "a policy must be a JSON object, got " + TypeName(doc));
      return;
    }
    Fields(doc, "", {"ward", "extends", "filesystem", "process", "limits", "network",
                     "enforcement", "audit", "description"});
    if (!doc.contains("ward")) {
      Issue("/ward", "required: the format version, 1");
    } else {
      bool too_big = false;
      if (IntegerValue(doc["ward"], &too_big) != 1) {
        Issue("/ward", "unsupported format version " + Dump(doc["ward"]) + "; this ward reads version 1");
      }
    }
    if (doc.contains("description") && !doc["description"].is_string()) {
      Issue("/description", "must be a string, got " + TypeName(doc["description"]));
    }
    if (doc.contains("extends")) {
      const json& e = doc["extends"];
      if (!e.is_string()) {
        Issue("/extends", "must be a string naming a built-in profile, got " + TypeName(e));
      } else if (!FindProfile(e.get<std::string>())) {
        Issue("/extends", "unknown profile " + Quote(e.get<std::string>()) + " (see `ward policy profiles`)");
      } else {
        out.extends = e.get<std::string>();
      }
    }
    if (doc.contains("filesystem")) Filesystem(doc["filesystem"], out.filesystem);
    if (doc.contains("process")) Process(doc["process"], out.process);
    if (doc.contains("limits")) Limits(doc["limits"], out.limits);
    if (doc.contains("network")) Network(doc["network"], out);
    if (doc.contains("enforcement")) Enforcement(doc["enforcement"], out.enforcement);
    if (doc.contains("audit")) Audit(doc["audit"], out.audit);
  }

 private:
  void Issue(const std::string& path, const std::string& reason) {
    issues_.push_back({path.empty() ? "/" : path, reason});
  }

  // Reports every key of `obj` not in `known`.
  void Fields(const json& obj, const std::string& path, std::initializer_list<const char*> known) {
    for (const auto& item : obj.items()) {
      const std::string& key = item.key();
      bool found = std::any_of(known.begin(), known.end(), [&](const char* k) { return key == k; });
      if (!found) {
        std::string list;
        for (const char* k : known) list += (list.empty() ? "" : ", ") + std::string(k);
        Issue(path + "/" + EscapePointer(key), "unknown field (expected one of: " + list + ")");
      }
    }
  }

  bool IsObject(const json& j, const std::string& path) {
    if (j.is_object()) return true;
    Issue(path, "must be an object, got " + TypeName(j));
    return false;
  }

  // Expands ${VAR}; reports unknown variables and unterminated references.
  std::optional<std::string> Expand(const std::string& s, const std::string& path) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '{') {
        size_t end = s.find('}', i + 2);
        if (end == std::string::npos) {
          Issue(path, "unterminated variable reference in " + Quote(s));
          return std::nullopt;
        }
        std::string name = s.substr(i + 2, end - i - 2);
        auto it = vars_.values.find(name);
        if (it == vars_.values.end()) {
          std::string known;
          for (const auto& [k, v] : vars_.values) known += (known.empty() ? "" : ", ") + k;
          Issue(path, "unknown variable ${" + name + "} (known: " + known + ")");
          return std::nullopt;
        }
        out += it->second;
        i = end;
      } else {
        out += s[i];
      }
    }
    return out;
  }

  std::optional<std::string> String(const json& j, const std::string& path, bool expand = true) {
    if (!j.is_string()) {
      Issue(path, "must be a string, got " + TypeName(j));
      return std::nullopt;
    }
    const std::string& s = j.get_ref<const std::string&>();
    if (s.find('\0') != std::string::npos) {
      Issue(path, "contains a NUL byte");
      return std::nullopt;
    }
    return expand ? Expand(s, path) : std::optional<std::string>(s);
  }

  std::optional<std::string> Path(const json& j, const std::string& path) {
    auto s = String(j, path);
    if (!s) return std::nullopt;
    std::string reason;
    auto norm = NormalizePath(*s, &reason);
    if (!norm) {
      Issue(path, reason);
      return std::nullopt;
    }
    return norm;
  }

  // A path's text before expansion, with "//", "/./" and a trailing "/"
  // removed: "${HOME}//x/" -> "${HOME}/x".
  static std::string LexicalKey(const std::string& s) {
    std::string out = s.empty() || s[0] != '/' ? "" : "/";
    size_t i = 0;
    while (i <= s.size()) {
      size_t j = std::min(s.find('/', i), s.size());
      std::string comp = s.substr(i, j - i);
      if (!comp.empty() && comp != ".") out += (out.empty() || out.back() == '/' ? "" : "/") + comp;
      i = j + 1;
    }
    return out;
  }

  struct Origin {
    std::string pointer;  // where the path first appears
    std::string text;     // its normalized, unexpanded text
  };

  // Parses one of filesystem.read/write/deny/unix. `where` maps each accepted
  // path to the pointer of its first occurrence (for the contradiction checks,
  // which must name the user's own entries, not indexes after composition).
  void PathList(const json& obj, const char* key, const std::string& base,
                std::vector<std::string>& out, std::map<std::string, Origin>& where) {
    if (!obj.contains(key)) return;
    std::string path = base + "/" + key;
    const json& arr = obj[key];
    if (!arr.is_array()) {
      Issue(path, "must be an array of absolute paths, got " + TypeName(arr));
      return;
    }
    for (size_t i = 0; i < arr.size(); ++i) {
      std::string p = path + "/" + std::to_string(i);
      auto norm = Path(arr[i], p);
      if (!norm) continue;
      const bool deny = std::string_view(key) == "deny";
      if (IsUnder(*norm, "/proc") || IsUnder(*norm, "/dev")) {
        Issue(p, Quote(*norm) + " is provided by the sandbox itself (a private /proc and a minimal /dev) and cannot be " +
                     (deny ? "denied" : "granted") + " from the host");
        continue;
      }
      if (!deny && *norm == "/") {
        Issue(p, "\"/\" cannot be granted: it would expose the whole host; grant the directories the workload needs");
        continue;
      }
      // Globs (docs/policy.md): `*` and `?` within a component, `**` as a
      // whole one. A unix entry names one object: no patterns.
      if (norm->find_first_of("*?") != std::string::npos) {
        if (std::string_view(key) == "unix") {
          Issue(p, Quote(*norm) + ": a unix entry names one socket or FIFO; patterns (* and ?) are for read, write and deny");
          continue;
        }
        bool bad = false;
        for (size_t at = norm->find("**"); at != std::string::npos; at = norm->find("**", at + 2)) {
          const bool starts = (*norm)[at - 1] == '/';
          const bool ends = at + 2 == norm->size() || (*norm)[at + 2] == '/';
          if (!starts || !ends) bad = true;
        }
        if (bad) {
          Issue(p, Quote(*norm) + ": ** must be a whole path component (a/**/b), meaning any number of directories");
          continue;
        }
      }
      // The same path written twice is a mistake; two different texts
      // that expand to one path (${CWD} and ${WORKSPACE}, which are equal
      // by default) are one grant, or the policy would be valid in one
      // directory and not in another.
      std::string text = LexicalKey(arr[i].get<std::string>());
      auto [it, fresh] = where.emplace(*norm, Origin{p, text});
      if (!fresh) {
        if (it->second.text == text) Issue(p, Quote(*norm) + " is listed twice (first at " + it->second.pointer + ")");
        continue;
      }
      out.push_back(*norm);
    }
  }

  void Bool(const json& obj, const char* key, const std::string& base, bool& out) {
    if (!obj.contains(key)) return;
    if (!obj[key].is_boolean()) {
      Issue(base + "/" + key, "must be true or false, got " + TypeName(obj[key]));
      return;
    }
    out = obj[key].get<bool>();
  }

  void Integer(const json& obj, const char* key, const std::string& base, int64_t min,
               int64_t max, std::optional<int64_t>& out, const char* unit) {
    if (!obj.contains(key)) return;
    const json& j = obj[key];
    std::string path = base + "/" + key;
    bool too_big = false;
    std::optional<int64_t> v = IntegerValue(j, &too_big);
    if (!v && !too_big) {
      Issue(path, "must be an integer (" + std::string(unit) + "), got " +
                      (j.is_number_float() ? Dump(j) : TypeName(j)));
      return;
    }
    if (too_big || *v < min || *v > max) {
      Issue(path, "out of range: must be between " + std::to_string(min) + " and " + std::to_string(max) + " (" + unit + ")");
      return;
    }
    out = *v;
  }

  void Filesystem(const json& fs, FilesystemPolicy& out) {
    const std::string base = "/filesystem";
    if (!IsObject(fs, base)) return;
    Fields(fs, base, {"read", "write", "deny", "unix", "tmp", "home", "system"});
    std::map<std::string, Origin> read_at, write_at, deny_at, unix_at;
    PathList(fs, "read", base, out.read, read_at);
    PathList(fs, "write", base, out.write, write_at);
    PathList(fs, "deny", base, out.deny, deny_at);
    // A unix entry may also lie under (or be) a read or write grant: the
    // grant makes it visible, the entry lets the workload use it.
    PathList(fs, "unix", base, out.unix_endpoints, unix_at);
    for (const auto& [p, at] : unix_at) unix_pointers_.emplace(p, at.pointer);
    for (const auto& [p, at] : read_at) {
      auto w = write_at.find(p);
      if (w == write_at.end()) continue;
      if (w->second.text == at.text) {
        Issue(at.pointer, Quote(p) + " is listed both as read-only and as writable (" + w->second.pointer + "); keep one");
      } else {
        // Different texts that expand to one path: the more restrictive
        // grant holds, as it would when the plan is compiled.
        std::erase(out.write, p);
      }
    }
    if (fs.contains("tmp")) {
      const json& t = fs["tmp"];
      if (t == "private") out.private_tmp = true;
      else if (t == "none") out.private_tmp = false;
      else Issue(base + "/tmp", "must be \"private\" (a fresh tmpfs at /tmp) or \"none\", got " + Dump(t));
    }
    if (fs.contains("home")) {
      const json& h = fs["home"];
      if (h == "none") {
        out.private_home.clear();
      } else if (h == "private") {
        // The caller's home, as ${HOME} names it: `ls ~` and every tool's
        // idea of its home directory work unchanged.
        auto home = vars_.values.find("HOME");
        std::string reason;
        auto norm = NormalizePath(home == vars_.values.end() ? "" : home->second, &reason);
        if (!norm || *norm == "/" || IsUnder(*norm, "/proc") || IsUnder(*norm, "/dev")) {
          Issue(base + "/home", "\"private\" mounts a fresh home at ${HOME}, which is " +
                                    Quote(home == vars_.values.end() ? "" : home->second) +
                                    ": set HOME to the caller's home directory, or use \"none\"");
        } else {
          out.private_home = *norm;
        }
      } else {
        Issue(base + "/home", "must be \"private\" (a fresh home at ${HOME}) or \"none\", got " + Dump(h));
      }
    }
    Bool(fs, "system", base, out.system);
  }

  void Env(const json& env, EnvPolicy& out) {
    const std::string base = "/process/env";
    if (!IsObject(env, base)) return;
    Fields(env, base, {"inherit", "set"});
    std::map<std::string, std::string> inherit_at;
    if (env.contains("inherit")) {
      const json& arr = env["inherit"];
      if (!arr.is_array()) {
        Issue(base + "/inherit", "must be an array of variable names, got " + TypeName(arr));
      } else {
        for (size_t i = 0; i < arr.size(); ++i) {
          std::string p = base + "/inherit/" + std::to_string(i);
          auto name = String(arr[i], p, false);
          if (!name) continue;
          if (!IsEnvName(*name)) {
            Issue(p, Quote(*name) + " is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)");
            continue;
          }
          auto [it, fresh] = inherit_at.emplace(*name, p);
          if (!fresh) {
            Issue(p, Quote(*name) + " is listed twice (first at " + it->second + ")");
            continue;
          }
          out.inherit.push_back(*name);
        }
      }
    }
    if (env.contains("set")) {
      const json& obj = env["set"];
      if (!IsObject(obj, base + "/set")) return;
      for (const auto& [k, v] : obj.items()) {
        std::string p = base + "/set/" + EscapePointer(k);
        if (!IsEnvName(k)) {
          Issue(p, Quote(k) + " is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)");
          continue;
        }
        auto value = String(v, p);
        if (value) out.set[k] = *value;
        auto inherited = inherit_at.find(k);
        if (inherited != inherit_at.end()) {
          Issue(inherited->second, Quote(k) + " is both inherited and set (" + p + "); keep one");
        }
      }
    }
  }

  static bool IsEnvName(const std::string& s) {
    if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    });
  }

  void Process(const json& proc, ProcessPolicy& out) {
    const std::string base = "/process";
    if (!IsObject(proc, base)) return;
    Fields(proc, base, {"argv", "cwd", "env", "timeoutMs", "shell"});
    if (proc.contains("argv")) {
      const json& arr = proc["argv"];
      if (!arr.is_array() || arr.empty()) {
        Issue(base + "/argv", "must be a non-empty array of strings");
      } else {
        for (size_t i = 0; i < arr.size(); ++i) {
          auto s = String(arr[i], base + "/argv/" + std::to_string(i));
          if (!s) continue;
          if (i == 0 && s->empty()) Issue(base + "/argv/0", "the program must not be empty");
          out.argv.push_back(*s);
        }
      }
    }
    if (proc.contains("cwd")) out.cwd = Path(proc["cwd"], base + "/cwd");
    if (proc.contains("env")) Env(proc["env"], out.env);
    Integer(proc, "timeoutMs", base, 1, int64_t{7} * 24 * 3600 * 1000, out.timeout_ms, "milliseconds");
    Bool(proc, "shell", base, out.shell);
  }

  void Limits(const json& lim, LimitsPolicy& out) {
    const std::string base = "/limits";
    if (!IsObject(lim, base)) return;
    Fields(lim, base, {"memoryMiB", "pids", "cpus", "cpuSeconds", "openFiles", "fileSizeMiB", "tmpfsMiB"});
    // The sandbox's own init is one process and needs a few MiB; below these
    // floors no workload can start, which is a policy mistake, not a limit.
    Integer(lim, "memoryMiB", base, 8, int64_t{1} << 30, out.memory_mib, "MiB");
    Integer(lim, "pids", base, 2, 4194304, out.pids, "processes and threads, including the sandbox's init");
    Integer(lim, "cpuSeconds", base, 1, int64_t{1} << 31, out.cpu_seconds, "seconds of CPU time");
    Integer(lim, "openFiles", base, 4, 1 << 20, out.open_files, "file descriptors");
    Integer(lim, "fileSizeMiB", base, 1, int64_t{1} << 30, out.file_size_mib, "MiB");
    Integer(lim, "tmpfsMiB", base, 1, int64_t{1} << 30, out.tmpfs_mib, "MiB");
    if (lim.contains("cpus")) {
      const json& c = lim["cpus"];
      if (!c.is_number()) {
        Issue(base + "/cpus", "must be a number of cores (e.g. 0.5), got " + TypeName(c));
      } else {
        double v = c.get<double>();
        if (!(v >= 0.01 && v <= 1024)) Issue(base + "/cpus", "out of range: must be between 0.01 and 1024 cores");
        else out.cpus = v;
      }
    }
  }

  void Network(const json& net, Policy& out) {
    if (net == "none") {
      out.network = NetworkMode::kNone;
    } else if (net == "host") {
      out.network = NetworkMode::kHost;
    } else if (net.is_object()) {
      out.network = NetworkMode::kEgress;
      Fields(net, "/network", {"egress"});
      if (!net.contains("egress")) {
        Issue("/network/egress", "missing: an object with \"default\", \"allow\" and \"deny\"");
        return;
      }
      Egress(net["egress"], out.egress);
    } else {
      Issue("/network", "must be \"none\" (loopback only), \"host\" (the host's network, unrestricted) or "
                        "{\"egress\": {...}} (rules), got " + Dump(net));
    }
  }

  void Egress(const json& eg, EgressPolicyText& out) {
    const std::string base = "/network/egress";
    if (!IsObject(eg, base)) return;
    Fields(eg, base, {"default", "allow", "deny"});
    if (eg.contains("default")) {
      const json& d = eg["default"];
      if (d == "deny") out.default_allow = false;
      else if (d == "allow") out.default_allow = true;
      else Issue(base + "/default", "must be \"deny\" or \"allow\", got " + Dump(d));
    }
    auto rules = [&](const char* key, std::vector<std::string>& list, bool is_allow) {
      if (!eg.contains(key)) return;
      const std::string at = base + "/" + key;
      const json& arr = eg[key];
      if (!arr.is_array()) {
        Issue(at, "must be an array of rules, got " + TypeName(arr));
        return;
      }
      std::map<std::string, std::string> seen;  // canonical form -> pointer
      for (size_t i = 0; i < arr.size(); ++i) {
        const std::string ptr = at + "/" + std::to_string(i);
        if (!arr[i].is_string()) {
          Issue(ptr, "must be a string, got " + TypeName(arr[i]));
          continue;
        }
        auto rule = net::EgressRule::Parse(arr[i].get<std::string>());
        if (!rule) {
          Issue(ptr, rule.error().message);
          continue;
        }
        // The proxy relays TCP and DNS; a UDP allow rule would promise a
        // path that does not exist, so it is refused rather than ignored.
        if (is_allow && rule->protocol == net::Protocol::kUdp) {
          Issue(ptr, Quote(arr[i].get<std::string>()) + ": udp egress is not relayed by this version of ward "
                     "(only DNS, which ward answers itself); remove the rule");
          continue;
        }
        auto [it, fresh] = seen.emplace(rule->Canonical(), ptr);
        if (!fresh) {
          Issue(ptr, Quote(arr[i].get<std::string>()) + " repeats the rule at " + it->second);
          continue;
        }
        list.push_back(arr[i].get<std::string>());
      }
    };
    rules("allow", out.allow, true);
    rules("deny", out.deny, false);
  }

  void Enforcement(const json& e, EnforcementPolicy& out) {
    const std::string base = "/enforcement";
    if (!IsObject(e, base)) return;
    Fields(e, base, {"landlock"});
    if (e.contains("landlock")) {
      if (e["landlock"] == "required") out.landlock = Requirement::kRequired;
      else if (e["landlock"] == "best-effort") out.landlock = Requirement::kBestEffort;
      else Issue(base + "/landlock", "must be \"required\" or \"best-effort\", got " + Dump(e["landlock"]));
    }
  }

  void Audit(const json& a, AuditPolicy& out) {
    const std::string base = "/audit";
    if (!IsObject(a, base)) return;
    Fields(a, base, {"agent", "trail", "files"});
    if (a.contains("agent")) {
      // The names `ward run --agent` takes (lifecycle::CheckName).
      const json& n = a["agent"];
      const std::string s = n.is_string() ? n.get<std::string>() : "";
      const bool ok = !s.empty() && s.size() <= 63 && std::isalnum(static_cast<unsigned char>(s[0])) &&
                      std::all_of(s.begin(), s.end(), [](char c) {
                        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
                      });
      if (!ok) {
        Issue(base + "/agent", "must be a name: a letter or digit, then letters, digits, '_', '.' or '-' (at most 63), got " +
                                   Dump(n));
      } else {
        out.agent = s;
      }
    }
    if (a.contains("trail")) {
      if (a["trail"] == "required") out.trail = Requirement::kRequired;
      else if (a["trail"] == "best-effort") out.trail = Requirement::kBestEffort;
      else Issue(base + "/trail", "must be \"required\" or \"best-effort\", got " + Dump(a["trail"]));
    }
    if (a.contains("files")) {
      if (a["files"] == "denied") out.files = AuditPolicy::Files::kDenied;
      else if (a["files"] == "off") out.files = AuditPolicy::Files::kOff;
      else Issue(base + "/files", "must be \"denied\" or \"off\", got " + Dump(a["files"]));
    }
  }

  const PolicyVars& vars_;
  std::vector<PolicyIssue>& issues_;
  std::map<std::string, std::string> unix_pointers_;
};

bool Has(const json& doc, const char* pointer) { return doc.contains(json::json_pointer(pointer)); }

// `user` extends `base`: the user's document wins wherever it speaks. A path
// the user lists anywhere replaces the profile's rule for that same path;
// other paths and inherited variables accumulate.
Policy Compose(Policy base, const Policy& user, const json& doc) {
  auto& bfs = base.filesystem;
  const auto& ufs = user.filesystem;
  std::set<std::string> user_paths(ufs.read.begin(), ufs.read.end());
  user_paths.insert(ufs.write.begin(), ufs.write.end());
  user_paths.insert(ufs.deny.begin(), ufs.deny.end());
  user_paths.insert(ufs.unix_endpoints.begin(), ufs.unix_endpoints.end());
  for (auto* list : {&bfs.read, &bfs.write, &bfs.deny, &bfs.unix_endpoints}) {
    std::erase_if(*list, [&](const std::string& p) { return user_paths.count(p) > 0; });
  }
  bfs.read.insert(bfs.read.end(), ufs.read.begin(), ufs.read.end());
  bfs.write.insert(bfs.write.end(), ufs.write.begin(), ufs.write.end());
  bfs.deny.insert(bfs.deny.end(), ufs.deny.begin(), ufs.deny.end());
  bfs.unix_endpoints.insert(bfs.unix_endpoints.end(), ufs.unix_endpoints.begin(), ufs.unix_endpoints.end());
  if (Has(doc, "/filesystem/tmp")) bfs.private_tmp = ufs.private_tmp;
  if (Has(doc, "/filesystem/home")) bfs.private_home = ufs.private_home;
  if (Has(doc, "/filesystem/system")) bfs.system = ufs.system;

  auto& bp = base.process;
  const auto& up = user.process;
  if (!up.argv.empty()) bp.argv = up.argv;
  if (up.cwd) bp.cwd = up.cwd;
  if (up.timeout_ms) bp.timeout_ms = up.timeout_ms;
  if (Has(doc, "/process/shell")) bp.shell = up.shell;
  auto& benv = bp.env;
  for (const auto& name : up.env.inherit) benv.set.erase(name);
  for (const auto& [name, value] : up.env.set) {
    std::erase(benv.inherit, name);
    benv.set[name] = value;
  }
  for (const auto& name : up.env.inherit) {
    if (std::find(benv.inherit.begin(), benv.inherit.end(), name) == benv.inherit.end()) {
      benv.inherit.push_back(name);
    }
  }

  auto& bl = base.limits;
  const auto& ul = user.limits;
  if (ul.memory_mib) bl.memory_mib = ul.memory_mib;
  if (ul.pids) bl.pids = ul.pids;
  if (ul.cpus) bl.cpus = ul.cpus;
  if (ul.cpu_seconds) bl.cpu_seconds = ul.cpu_seconds;
  if (ul.open_files) bl.open_files = ul.open_files;
  if (ul.file_size_mib) bl.file_size_mib = ul.file_size_mib;
  if (ul.tmpfs_mib) bl.tmpfs_mib = ul.tmpfs_mib;
  if (Has(doc, "/network")) {
    base.network = user.network;
    base.egress = user.egress;
  }
  if (Has(doc, "/enforcement/landlock")) base.enforcement = user.enforcement;
  if (Has(doc, "/audit/agent")) base.audit.agent = user.audit.agent;
  if (Has(doc, "/audit/trail")) base.audit.trail = user.audit.trail;
  if (Has(doc, "/audit/files")) base.audit.files = user.audit.files;
  base.extends = user.extends;
  return base;
}

// The deny rule that hides `path`, or nullptr. The most specific rule
// decides, as it does when the plan is compiled: a deny of /home/u with a
// grant of /home/u/proj leaves /home/u/proj visible. Between equally specific
// rules deny wins.
const std::string* HidingDeny(const std::string& path, const FilesystemPolicy& fs) {
  const std::string* deny = nullptr;
  size_t grant = 0;
  for (const auto& d : fs.deny) {
    if (IsUnder(path, d) && (!deny || d.size() > deny->size())) deny = &d;
  }
  for (const auto* list : {&fs.read, &fs.write}) {
    for (const auto& g : *list) {
      if (IsUnder(path, g)) grant = std::max(grant, g.size());
    }
  }
  return deny && grant <= deny->size() ? deny : nullptr;
}

// Checks that need the whole (composed) policy. (Duplicates and read/write
// or inherit/set overlaps are found while parsing, where the user's own JSON
// pointers are known; composition cannot create new ones, because a path or
// variable the user names replaces the profile's rule for it.) `unix_at`:
// the pointer of each filesystem.unix entry in the user's document.
void CheckComposed(const Policy& p, const std::map<std::string, std::string>& unix_at,
                   std::vector<PolicyIssue>& issues) {
  const auto& fs = p.filesystem;
  if (p.process.cwd) {
    const std::string& cwd = *p.process.cwd;
    if (const std::string* deny = HidingDeny(cwd, fs)) {
      issues.push_back({"/process/cwd", Quote(cwd) + " lies under the denied path " + Quote(*deny)});
    }
  }
  // Deny beats unix: a socket or FIFO the policy hides cannot also be one it
  // lets the workload use. (A unix entry is not a grant that could make a
  // denied path visible again, or it would beat every deny above it.)
  for (const auto& u : fs.unix_endpoints) {
    const std::string* deny = HidingDeny(u, fs);
    if (!deny) continue;
    auto at = unix_at.find(u);
    issues.push_back({at == unix_at.end() ? "/filesystem/unix" : at->second,
                      Quote(u) + " lies under the denied path " + Quote(*deny) +
                          "; a deny beats filesystem.unix: remove one of the two"});
  }
}

// Parses `text` as JSON; nullopt (and the reason in `issues`) if it is not.
// Keys repeated in an object are reported in `issues` too.
std::optional<json> ReadDocument(const std::string& text, std::vector<PolicyIssue>& issues) {
  json doc;
  std::vector<PolicyIssue> duplicates;
  try {
    // Comments (`// ...`, `/* ... */`) are allowed: `ward learn` says why
    // each grant is there beside it.
    doc = json::parse(text, DuplicateKeyFinder(duplicates), /*allow_exceptions=*/true, /*ignore_comments=*/true);
  } catch (const json::parse_error& e) {
    // "[json.exception.parse_error.101] parse error at line 2, column 1:
    // syntax error ..." -> "malformed JSON at byte 11 (line 2, column 1):
    // syntax error ...".
    std::string what = e.what();
    auto pos = what.find("parse error");
    std::string where = "at byte " + std::to_string(e.byte);
    if (pos != std::string::npos) {
      what = what.substr(pos + 11);
      auto colon = what.find(": ");
      if (colon != std::string::npos) {
        std::string at = what.substr(0, colon);  // " at line 2, column 1", or ""
        if (at.rfind(" at ", 0) == 0) where += " (" + at.substr(4) + ")";
        what = what.substr(colon + 2);
      }
    }
    issues.push_back({"/", "malformed JSON " + where + ": " + what});
    return std::nullopt;
  } catch (const json::exception& e) {
    // out_of_range for a number no double can hold.
    std::string what = e.what();  // "[json.exception.out_of_range.406] number overflow ..."
    auto tag = what.find("] ");
    issues.push_back({"/", "malformed JSON: " + (tag == std::string::npos ? what : what.substr(tag + 2))});
    return std::nullopt;
  }
  issues.insert(issues.end(), duplicates.begin(), duplicates.end());
  return doc;
}

PolicyLoad ParseWithProfiles(const std::string& text, const PolicyVars& vars, int depth) {
  PolicyLoad load;
  std::optional<json> read = ReadDocument(text, load.issues);
  if (!read) return load;
  const json& doc = *read;
  Policy policy;
  DocumentParser parser(vars, load.issues);
  parser.Parse(doc, policy);
  if (!load.issues.empty()) return load;
  if (policy.extends) {
    if (depth > 4) {
      load.issues.push_back({"/extends", "profiles extend each other too deeply"});
      return load;
    }
    PolicyLoad base = ParseWithProfiles(FindProfile(*policy.extends)->json, vars, depth + 1);
    if (!base.ok()) {
      for (auto& i : base.issues) load.issues.push_back({"/extends", "profile " + *policy.extends + ": " + i.path + ": " + i.reason});
      return load;
    }
    policy = Compose(*base.policy, policy, doc);
  }
  CheckComposed(policy, parser.UnixPointers(), load.issues);
  if (load.issues.empty()) load.policy = std::move(policy);
  return load;
}

}  // namespace

PolicyVars PolicyVars::FromEnvironment(const std::string& workspace) {
  PolicyVars v;
  auto env = [](const char* name, const char* fallback) {
    const char* s = getenv(name);
    return std::string(s && *s ? s : fallback);
  };
  char buf[4096];
  std::string cwd = getcwd(buf, sizeof buf) ? buf : "/";
  v.values["CWD"] = cwd;
  v.values["HOME"] = env("HOME", "/");
  v.values["USER"] = env("USER", "");
  v.values["TMPDIR"] = env("TMPDIR", "/tmp");
  v.values["WORKSPACE"] = workspace.empty() ? cwd : workspace;
  return v;
}

std::string PolicyLoad::FormatIssues(const std::string& source) const {
  std::string out;
  for (const auto& i : issues) out += source + ": " + i.path + ": " + i.reason + "\n";
  return out;
}

namespace {

// Reasons quote the input (a parse error's "last read: ..." or a path
// expanded from the environment), which need not be UTF-8; front ends
// print issues as JSON, so every issue is made valid UTF-8 here (invalid
// bytes become U+FFFD).
PolicyLoad ValidUtf8(PolicyLoad load) {
  auto valid = [](std::string& s) { s = json::parse(Dump(json(s))).get<std::string>(); };
  for (auto& i : load.issues) {
    valid(i.path);
    valid(i.reason);
  }
  return load;
}

}  // namespace

PolicyLoad ParsePolicy(const std::string& json_text, const PolicyVars& vars) {
  return ValidUtf8(ParseWithProfiles(json_text, vars, 0));
}

PolicyLoad ExtendPolicy(const Policy& base, const std::string& layer_json, const PolicyVars& vars) {
  PolicyLoad load;
  std::optional<json> doc = ReadDocument(layer_json, load.issues);
  if (!doc) return ValidUtf8(std::move(load));
  Policy layer;
  DocumentParser parser(vars, load.issues);
  parser.Parse(*doc, layer);
  if (layer.extends) load.issues.push_back({"/extends", "a layer is applied to a loaded policy; it cannot extend a profile"});
  if (!load.issues.empty()) return ValidUtf8(std::move(load));
  Policy policy = Compose(base, layer, *doc);
  policy.extends = base.extends;
  CheckComposed(policy, parser.UnixPointers(), load.issues);
  if (load.issues.empty()) load.policy = std::move(policy);
  return ValidUtf8(std::move(load));
}

PolicyLoad LoadPolicyFile(const std::string& file, const PolicyVars& vars) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    PolicyLoad load;
    load.issues.push_back({"/", "cannot read policy file: " + std::string(strerror(errno))});
    return load;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ParsePolicy(ss.str(), vars);
}

PolicyLoad LoadProfile(const std::string& name, const PolicyVars& vars) {
  const BuiltinProfile* p = FindProfile(name);
  if (!p) {
    PolicyLoad load;
    std::string known;
    for (const auto& info : BuiltinProfiles()) known += (known.empty() ? "" : ", ") + info.name;
    load.issues.push_back({"/", "unknown profile " + Quote(name) + " (built-in profiles: " + known + ")"});
    return load;
  }
  return ParsePolicy(p->json, vars);
}

std::string PolicyToJson(const Policy& p) {
  json j;
  j["ward"] = p.version;
  if (p.extends) j["extends"] = *p.extends;
  j["filesystem"] = {{"read", p.filesystem.read},
                     {"write", p.filesystem.write},
                     {"deny", p.filesystem.deny},
                     {"unix", p.filesystem.unix_endpoints},
                     {"tmp", p.filesystem.private_tmp ? "private" : "none"},
                     {"home", p.filesystem.private_home.empty() ? "none" : "private"},
                     {"system", p.filesystem.system}};
  json proc = json::object();
  if (!p.process.argv.empty()) proc["argv"] = p.process.argv;
  if (p.process.cwd) proc["cwd"] = *p.process.cwd;
  proc["env"] = {{"inherit", p.process.env.inherit}, {"set", p.process.env.set}};
  if (p.process.timeout_ms) proc["timeoutMs"] = *p.process.timeout_ms;
  proc["shell"] = p.process.shell;
  j["process"] = proc;
  json lim = json::object();
  const auto& l = p.limits;
  if (l.memory_mib) lim["memoryMiB"] = *l.memory_mib;
  if (l.pids) lim["pids"] = *l.pids;
  if (l.cpus) lim["cpus"] = *l.cpus;
  if (l.cpu_seconds) lim["cpuSeconds"] = *l.cpu_seconds;
  if (l.open_files) lim["openFiles"] = *l.open_files;
  if (l.file_size_mib) lim["fileSizeMiB"] = *l.file_size_mib;
  if (l.tmpfs_mib) lim["tmpfsMiB"] = *l.tmpfs_mib;
  j["limits"] = lim;
  if (p.network == NetworkMode::kEgress) {
    j["network"] = {{"egress", {{"default", p.egress.default_allow ? "allow" : "deny"},
                                {"allow", p.egress.allow},
                                {"deny", p.egress.deny}}}};
  } else {
    j["network"] = p.network == NetworkMode::kHost ? "host" : "none";
  }
  j["enforcement"] = {{"landlock", p.enforcement.landlock == Requirement::kRequired ? "required" : "best-effort"}};
  j["audit"] = {{"trail", p.audit.trail == Requirement::kRequired ? "required" : "best-effort"}};
  if (!p.audit.agent.empty()) j["audit"]["agent"] = p.audit.agent;
  j["audit"]["files"] = p.audit.files == AuditPolicy::Files::kDenied ? "denied" : "off";
  return Dump(j, 2);
}

}  // namespace ward
