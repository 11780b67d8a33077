#include "audit/learn.h"

#include <algorithm>
#include <climits>
#include <set>

#include <nlohmann/json.hpp>

namespace ward::audit {
namespace {

bool Under(const std::string& path, const std::string& dir) {
  if (dir == "/") return true;
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/');
}

std::string Parent(const std::string& p) {
  const size_t i = p.rfind('/');
  return i == 0 || i == std::string::npos ? "/" : p.substr(0, i);
}

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
      while (next != m.end() && Under(next->first, it->first) && next->first != it->first) {
        Merge(it->second, next->second);
        next = m.erase(next);
        changed = true;
      }
    }
    std::map<std::string, std::vector<std::string>> by_parent;
    for (const auto& [p, n] : m) {
      const std::string parent = Parent(p);
      if (parent != "/" && Under(parent, floor_of(p)) ) by_parent[parent].push_back(p);
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
  // The workspace is granted over a private /tmp or home it lies in.
  auto covered = [&](const std::string& p) {
    if (p == "/") return true;
    if (!in.workspace.empty() && Under(p, in.workspace)) return false;
    return std::any_of(in.covered.begin(), in.covered.end(), [&](const std::string& c) { return Under(p, c); });
  };
  auto within = [&](const std::string& p, bool reading) {
    auto in_any = [&](const std::vector<std::string>& v) {
      return std::any_of(v.begin(), v.end(), [&](const std::string& g) { return Under(p, g); });
    };
    if (in_any(in.may_write)) return true;
    if (reading) return in_any(in.may_read);
    // A file made or removed: in a directory the envelope lets it write.
    return in_any(in.may_write);
  };
  // Before the command's first exec, and ever from pid 1 (ward's init), the
  // calls are ward's own setting up.
  const int64_t first_exec = in.execs.empty() ? INT64_MAX : in.execs.front().time_ns;
  // The program each pid ran last, as events arrive in order.
  std::map<int, std::string> program;
  std::vector<std::pair<int64_t, const ProcessExec*>> execs;
  for (const auto& e : in.execs) execs.push_back({e.time_ns, &e});
  size_t next_exec = 0;

  std::map<std::string, Need> reads, writes;
  for (const FileAccess& a : in.files) {
    while (next_exec < execs.size() && execs[next_exec].first <= a.time_ns) {
      const ProcessExec* e = execs[next_exec++].second;
      if (!e->path.empty()) program[e->pid] = Base(e->path);
    }
    if (a.time_ns < first_exec || a.pid == 1) continue;
    if (!within(a.path, a.op == FileOp::kRead || a.op == FileOp::kStat)) continue;
    const std::string by = program.count(a.pid) ? program[a.pid] : "";
    const std::string& p = a.path;
    if (p.empty() || p[0] != '/' || covered(p)) continue;
    const PathFacts f = in.facts(p);
    switch (a.op) {
      case FileOp::kRead:
      case FileOp::kStat:
        // A path looked up that does not exist needs nothing: the command
        // is told ENOENT under any policy.
        if (f.exists) Add(reads, p, a.op == FileOp::kRead ? "read" : "looked up", by, p);
        break;
      case FileOp::kWrite:
        if (f.exists && !f.is_dir) Add(writes, p, "written", by, p);
        else if (f.exists) Add(writes, p, "changed", by, p);
        break;
      case FileOp::kCreate:
      case FileOp::kRemove: {
        // The directory it is made in or removed from is written.
        const std::string dir = Parent(p);
        if (!covered(dir) && in.facts(dir).exists && within(dir, false)) Add(writes, dir, a.op == FileOp::kCreate ? "created in" : "removed from", by, p);
        break;
      }
    }
  }
  for (const ProcessExec& e : in.execs) {
    if (e.path.empty() || e.path[0] != '/' || e.missing || covered(e.path) || !within(e.path, true) ||
        !in.facts(e.path).exists) {
      continue;
    }
    Add(reads, e.path, "executed", "", e.path);
  }
  // Never above a top-level directory, nor above the workspace for what
  // lies in it.
  auto floor_of = [&](const std::string& p) {
    if (!in.workspace.empty() && Under(p, in.workspace)) return in.workspace;
    const size_t second = p.find('/', 1);
    return second == std::string::npos ? p : p.substr(0, second);
  };
  writes = Collapse(std::move(writes), floor_of);
  // What is written need not be read as well.
  for (auto it = reads.begin(); it != reads.end();) {
    bool in_write = std::any_of(writes.begin(), writes.end(), [&](const auto& w) { return Under(it->first, w.first); });
    if (in_write) {
      it = reads.erase(it);
    } else {
      ++it;
    }
  }
  // A directory only looked up or opened, with something granted beneath
  // it, needs no grant of its own: the sandbox has it as the way to what
  // lies in it (and sees nothing else there).
  auto holds_grant = [&](const std::string& dir) {
    auto beneath = [&](const std::map<std::string, Need>& m) {
      return std::any_of(m.begin(), m.end(), [&](const auto& kv) { return kv.first != dir && Under(kv.first, dir); });
    };
    return beneath(reads) || beneath(writes);
  };
  for (auto it = reads.begin(); it != reads.end();) {
    const Need& n = it->second;
    const bool only_lookups = std::all_of(n.how.begin(), n.how.end(), [](const std::string& h) {
      return h == "looked up" || h == "read";
    });
    if (only_lookups && in.facts(it->first).is_dir && holds_grant(it->first)) {
      it = reads.erase(it);
    } else {
      ++it;
    }
  }
  reads = Collapse(std::move(reads), floor_of);

  LearnedPolicy out;
  for (const auto& [p, n] : reads) out.read.push_back({p, Why(p, n)});
  for (const auto& [p, n] : writes) out.write.push_back({p, Why(p, n)});

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
  auto comment = [](std::string s) {
    for (char& c : s) {
      if (c == '\n' || c == '\r' || static_cast<unsigned char>(c) < 0x20) c = ' ';
    }
    return s;
  };
  auto value = [&](const std::string& p) {
    std::string v = p;
    if (!in.workspace.empty() && Under(p, in.workspace)) v = "${WORKSPACE}" + p.substr(in.workspace.size());
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
  t += "{\n  \"ward\": 1,\n  \"extends\": \"minimal\",\n  \"filesystem\": {\n";
  t += "    \"read\": " + list(out.read, "    ") + ",\n";
  t += "    \"write\": " + list(out.write, "    ") + ",\n";
  t += "    \"unix\": " + list(out.unix, "    ") + "\n  },\n";
  // Named, so that it may be a directory that only leads to the grants.
  t += "  \"process\": { \"cwd\": \"${CWD}\" },  // where it ran; only what is granted there is seen\n";
  if (out.egress.empty()) {
    t += "  \"network\": \"none\"\n}\n";
  } else {
    t += "  \"network\": { \"egress\": { \"default\": \"deny\", \"allow\": " + list(out.egress, "    ") + " } }\n}\n";
  }
  out.text = std::move(t);
  return out;
}

}  // namespace ward::audit
