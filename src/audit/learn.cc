#include "audit/learn.h"

#include <algorithm>
#include <climits>
#include <set>

#include <nlohmann/json.hpp>

#include "audit/store.h"
#include "base/path.h"

namespace ward::audit {
namespace {

std::string Base(const std::string& p) { return p.substr(p.rfind('/') + 1); }

// What each path was needed for: the operations, the programs, how many
// paths it stands for, and one of them as an example.
struct Need {
  std::set<std::string> how;  // "read", "written", "created", "removed", "executed", "looked up"
  std::set<std::string> by;   // program names
  size_t count = 0;
  std::string example;
};

void Add(std::map<std::string, Need>& m, const std::string& path, const std::string& how, const std::string& by,
         const std::string& example) {
  Need& n = m[path];
  n.how.insert(how);
  if (!by.empty()) n.by.insert(by);
  ++n.count;
  if (n.example.empty()) n.example = example;
}

void Merge(Need& into, const Need& from) {
  into.how.insert(from.how.begin(), from.how.end());
  into.by.insert(from.by.begin(), from.by.end());
  into.count += from.count;
  if (into.example.empty()) into.example = from.example;
}

std::string Join(const std::set<std::string>& s, size_t max) {
  std::string out;
  size_t i = 0;
  for (const auto& x : s) {
    if (i++ == max) {
      out += ", ...";
      break;
    }
    out += (out.empty() ? "" : ", ") + x;
  }
  return out;
}

std::string Why(const std::string& path, const Need& n) {
  std::string why = Join(n.how, 6);
  if (!n.by.empty()) why += " by " + Join(n.by, 4);
  if (n.count > 1 || n.example != path) {
    why += " (" + std::to_string(n.count) + (n.count == 1 ? " path" : " paths") + ", e.g. " + n.example + ")";
  }
  return why;
}

// Drops every entry beneath another entry (folding its reasons in), then
// replaces kCollapseAt or more entries of one directory by the directory,
// never above `floor_of(path)` (a top-level directory, or the workspace).
std::map<std::string, Need> Collapse(std::map<std::string, Need> m, const std::function<std::string(const std::string&)>& floor_of) {
  for (bool changed = true; changed;) {
    changed = false;
    // Nested: std::map orders a directory before what lies beneath it.
    for (auto it = m.begin(); it != m.end(); ++it) {
      auto next = std::next(it);
      while (next != m.end() && IsUnder(next->first, it->first) && next->first != it->first) {
        Merge(it->second, next->second);
        next = m.erase(next);
        changed = true;
      }
    }
    std::map<std::string, std::vector<std::string>> by_parent;
    for (const auto& [p, n] : m) {
      const std::string parent = Parent(p);
      if (parent != "/" && IsUnder(parent, floor_of(p)) ) by_parent[parent].push_back(p);
    }
    for (const auto& [parent, kids] : by_parent) {
      if (kids.size() < kCollapseAt) continue;
      Need merged;
      for (const auto& k : kids) {
        Merge(merged, m[k]);
        m.erase(k);
      }
      Merge(m[parent], merged);
      changed = true;
    }
  }
  return m;
}

}  // namespace

LearnedPolicy DerivePolicy(const LearnInput& in) {
  LearnedPolicy out;
  // The workspace is granted over a private /tmp or home it lies in.
  auto covered = [&](const std::string& p) {
    if (p == "/") return true;
    if (!in.workspace.empty() && IsUnder(p, in.workspace)) return false;
    return std::any_of(in.covered.begin(), in.covered.end(), [&](const std::string& c) { return IsUnder(p, c); });
  };
  auto within = [&](const std::string& p, bool reading) {
    auto in_any = [&](const std::vector<std::string>& v) {
      return std::any_of(v.begin(), v.end(), [&](const std::string& g) { return IsUnder(p, g); });
    };
    return in_any(in.may_write) || (reading && in_any(in.may_read));
  };
  auto in_workspace = [&](const std::string& p) { return !in.workspace.empty() && IsUnder(p, in.workspace); };
  std::map<std::string, std::string> skipped;  // path -> why it is not granted
  // A policy path cannot say `*`, `?` or `${` literally (they make a
  // pattern or a variable), nor bytes that are not UTF-8 (JSON).
  auto writable_as_rule = [&](const std::string& p) {
    if (p.find_first_of("*?") != std::string::npos || p.find("${") != std::string::npos) {
      skipped.emplace(p, "its name holds * ? or ${, which a policy path cannot say literally");
      return false;
    }
    try {
      (void)nlohmann::json(p).dump();
    } catch (const nlohmann::json::exception&) {
      skipped.emplace(p, "its name is not UTF-8 text, which a policy (JSON) cannot hold");
      return false;
    }
    return true;
  };
  // Before the command's first exec, and ever from pid 1 (ward's init), the
  // calls are ward's own setting up.
  const int64_t first_exec = in.execs.empty() ? INT64_MAX : in.execs.front().time_ns;
  // The program each pid ran last, as events arrive in order.
  std::map<int, std::string> program;
  std::vector<std::pair<int64_t, const ProcessExec*>> execs;
  for (const auto& e : in.execs) execs.push_back({e.time_ns, &e});
  size_t next_exec = 0;

  // Every path is judged as what it is on the host now (symlinks
  // resolved): a link planted in the workspace to a place the envelope does
  // not grant is never learned as a grant of the link's name, which would
  // reach the target.
  std::map<std::string, Need> reads, writes, lookups;
  for (const FileAccess& a : in.files) {
    while (next_exec < execs.size() && execs[next_exec].first <= a.time_ns) {
      const ProcessExec* e = execs[next_exec++].second;
      if (!e->path.empty()) program[e->pid] = Base(e->path);
    }
    if (a.time_ns < first_exec || a.pid == 1) continue;
    const std::string by = program.count(a.pid) ? program[a.pid] : "";
    if (a.path.empty() || a.path[0] != '/') continue;
    const bool changes_dir = a.op == FileOp::kCreate || a.op == FileOp::kRemove;
    // What it names now: the file, or for a create or remove the directory.
    const PathFacts f = in.facts(changes_dir ? Parent(a.path) : a.path);
    if (!f.exists || f.real.empty()) continue;  // nothing there: nothing to grant
    const std::string& p = f.real;
    const bool reading = a.op == FileOp::kRead || a.op == FileOp::kStat;
    if (covered(p) || !within(p, reading)) continue;  // the sandbox's own, or refused while learning
    std::string example = a.path;
    if (!writable_as_rule(p)) continue;
    switch (a.op) {
      case FileOp::kRead:
      case FileOp::kExecute:
        Add(f.is_dir ? lookups : reads, p, f.is_dir ? "listed" : "read", by, example);
        break;
      case FileOp::kStat:
        if (f.is_dir) Add(lookups, p, "looked up", by, example);
        else Add(reads, p, "looked up", by, example);
        break;
      case FileOp::kWrite:
        Add(writes, p, f.is_dir ? "changed" : "written", by, example);
        break;
      case FileOp::kCreate:
      case FileOp::kRemove:
        Add(writes, p, a.op == FileOp::kCreate ? "created in" : "removed from", by, example);
        break;
    }
  }
  for (const ProcessExec& e : in.execs) {
    if (e.path.empty() || e.path[0] != '/' || e.missing) continue;
    const PathFacts f = in.facts(e.path);
    if (!f.exists || f.real.empty() || covered(f.real) || !within(f.real, true) || !writable_as_rule(f.real)) continue;
    Add(reads, f.real, "executed", "", e.path);
  }
  // More than kCollapseAt entries of one directory become the directory,
  // only inside the workspace (the user's project); elsewhere each stays
  // what it is.
  auto floor_of = [&](const std::string& p) { return in_workspace(p) ? in.workspace : p; };
  writes = Collapse(std::move(writes), floor_of);
  // What is written need not be read as well.
  auto under_any = [](const std::map<std::string, Need>& m, const std::string& p) {
    // The entry at or above `p`, if any: the greatest key <= p that p lies under.
    for (std::string d = p;; d = Parent(d)) {
      if (m.count(d)) return true;
      if (d == "/") return false;
    }
  };
  for (auto it = reads.begin(); it != reads.end();) {
    it = under_any(writes, it->first) ? reads.erase(it) : std::next(it);
  }
  reads = Collapse(std::move(reads), floor_of);
  // A directory only looked up or listed: granted only if it is in the
  // workspace and nothing beneath it is granted (the sandbox then has it as
  // the way to what is granted in it, and sees nothing else there). A grant
  // of it would show everything beneath it, which a listing did not read.
  auto holds_grant = [&](const std::string& dir) {
    const std::string prefix = dir == "/" ? "/" : dir + "/";
    for (const auto* m : {&reads, &writes}) {
      auto it = m->lower_bound(prefix);
      if (it != m->end() && it->first.compare(0, prefix.size(), prefix) == 0) return true;
    }
    return false;
  };
  for (const auto& [dir, n] : lookups) {
    if (under_any(reads, dir) || under_any(writes, dir) || holds_grant(dir)) continue;
    if (in_workspace(dir) && n.how.count("listed")) {
      Merge(reads[dir], n);
    } else {
      skipped.emplace(dir, Join(n.how, 3) + (n.by.empty() ? "" : " by " + Join(n.by, 3)) +
                               "; a grant would show everything beneath it");
    }
  }
  reads = Collapse(std::move(reads), floor_of);

  for (const auto& [p, n] : reads) out.read.push_back({p, Why(p, n)});
  for (const auto& [p, n] : writes) out.write.push_back({p, Why(p, n)});
  for (const auto& [p, why] : skipped) out.skipped.push_back({p, why});

  std::map<std::string, Need> rules, sockets;
  for (const EgressRecord& g : in.egress) {
    if (!g.allowed) continue;
    if (g.kind == "unix") {
      if (!g.path.empty() && g.path[0] == '/') Add(sockets, g.path, "connected", "", g.path);
      continue;
    }
    if (g.kind == "dns" || g.port == 0) continue;  // a name's questions are allowed with its rule
    const std::string host = !g.domain.empty() ? g.domain : g.address;
    if (host.empty()) continue;
    const std::string rule = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(g.port);
    Add(rules, rule, g.kind == "udp" ? "sent to" : "connected", "", g.address.empty() ? rule : g.address);
  }
  for (const auto& [r, n] : rules) out.egress.push_back({r, Why(r, n)});
  for (const auto& [p, n] : sockets) out.unix.push_back({p, Why(p, n)});

  // The text: JSON, a comment after each entry. The values are JSON
  // strings (escaped); a comment is one line with no "*/" and no newline.
  // A comment is one line of text: controls and bytes that are not UTF-8
  // written as \xNN.
  auto comment = [](const std::string& s) { return EscapeForTerminal(s); };
  auto value = [&](const std::string& p) {
    std::string v = p;
    if (!in.workspace.empty() && IsUnder(p, in.workspace)) v = "${WORKSPACE}" + p.substr(in.workspace.size());
    return nlohmann::json(v).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  auto list = [&](const std::vector<LearnedGrant>& grants, const std::string& indent) {
    std::string s = "[";
    for (size_t i = 0; i < grants.size(); ++i) {
      s += "\n" + indent + "  " + value(grants[i].path) + (i + 1 < grants.size() ? "," : "") + "  // " +
           comment(grants[i].why);
    }
    return s + (grants.empty() ? "]" : "\n" + indent + "]");
  };
  std::string cmd;
  for (const auto& a : in.argv) cmd += (cmd.empty() ? "" : " ") + a;
  std::string t = "// Learned by `ward learn` from: " + comment(cmd) +
                  "\n// Each grant says what needed it. Review it before use: it allows what this run did, no more.\n";
  for (const auto& g : out.skipped) t += "// Not granted: " + comment(g.path) + " (" + comment(g.why) + ")\n";
  t += "{\n  \"ward\": 1,\n  \"extends\": \"minimal\",\n  \"filesystem\": {\n";
  t += "    \"read\": " + list(out.read, "    ") + ",\n";
  t += "    \"write\": " + list(out.write, "    ") + ",\n";
  t += "    \"unix\": " + list(out.unix, "    ") + "\n  },\n";
  // Named, so that it may be a directory that only leads to the grants
  // (when one lies there; otherwise ward's default: the private home).
  const bool cwd_leads = !in.cwd.empty() && std::any_of(out.read.begin(), out.read.end(), [&](const LearnedGrant& g) {
    return IsUnder(g.path, in.cwd);
  }) | std::any_of(out.write.begin(), out.write.end(), [&](const LearnedGrant& g) { return IsUnder(g.path, in.cwd); });
  if (cwd_leads) t += "  \"process\": { \"cwd\": \"${CWD}\" },  // where it ran; only what is granted there is seen\n";
  if (out.egress.empty()) {
    t += "  \"network\": \"none\"\n}\n";
  } else {
    t += "  \"network\": { \"egress\": { \"default\": \"deny\", \"allow\": " + list(out.egress, "    ") + " } }\n}\n";
  }
  out.text = std::move(t);
  return out;
}

}  // namespace ward::audit
