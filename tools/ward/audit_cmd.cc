// ward audit: what agents ran, touched and were refused, from the audit store.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "audit/ocsf.h"
#include "audit/store.h"
#include "base/clock.h"
#include "base/unique_fd.h"
#include "commands.h"

namespace ward::cli {

namespace {

struct AuditArgs {
  std::string agent, sandbox, kind, since, until, db, format = "table", syslog_socket = "/dev/log";
  bool denied = false, allowed = false, json = false, follow = false;
  int64_t limit = 0;
};

// "90s", "30m", "1h", "2d" before now, or an RFC 3339 time in UTC
// ("2026-12-04T03:00:00Z"). nullopt if it is neither.
std::optional<int64_t> ParseWhen(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long long n = std::strtoll(s.c_str(), &end, 10);
  if (errno == 0 && end != s.c_str() && n >= 0 && end[0] != 0 && end[1] == 0) {
    const int64_t unit = end[0] == 's' ? 1 : end[0] == 'm' ? 60 : end[0] == 'h' ? 3600 : end[0] == 'd' ? 86400 : 0;
    if (unit && n < 100LL * 365 * 86400 / unit) return RealtimeNs() - static_cast<int64_t>(n) * unit * 1000000000;
  }
  tm t{};
  const char* rest = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &t);
  if (rest && (std::strcmp(rest, "Z") == 0 || *rest == 0)) {
    // Nanoseconds in an int64 reach the year 2262.
    const time_t secs = timegm(&t);
    if (secs < 0 || secs > INT64_MAX / 1000000000) return std::nullopt;
    return static_cast<int64_t>(secs) * 1000000000;
  }
  return std::nullopt;
}

nlohmann::json EventJson(const audit::Event& e) {
  return {{"seq", e.seq},         {"time", audit::FormatTime(e.time_ns)}, {"agent", e.agent},
          {"agentId", e.agent_id}, {"sandbox", e.sandbox},                 {"kind", e.kind},
          {"decision", e.decision}, {"summary", e.summary},                {"detail", e.detail}};
}

std::string Cell(const std::string& s, size_t width) {
  std::string v = audit::EscapeForTerminal(s);
  if (v.size() > width) {
    // Cut between characters, never inside one (escaped output is UTF-8).
    size_t cut = width - 1;
    while (cut > 0 && (static_cast<unsigned char>(v[cut]) & 0xc0) == 0x80) --cut;
    v.resize(cut);
    v += "~";
  }
  return v;
}

// Where events go: stdout as a table, JSON lines or OCSF lines, or the
// system log (one datagram per event on a unix socket, RFC 3164 style as
// syslog(3) writes: "<PRI>ward-audit[PID]: JSON").
class Output {
 public:
  explicit Output(const AuditArgs& a) : a_(a) {}

  // "" or why the destination cannot be used.
  std::string Open() {
    if (a_.format != "syslog") {
      if (a_.format == "table") {
        std::printf("%-24s %-16s %-12s %-7s %-8s %s\n", "TIME", "AGENT", "SANDBOX", "KIND", "DECISION", "SUMMARY");
      }
      return "";
    }
    sock_.Reset(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (a_.syslog_socket.size() >= sizeof addr.sun_path) return "--syslog-socket: the path is too long";
    std::memcpy(addr.sun_path, a_.syslog_socket.c_str(), a_.syslog_socket.size() + 1);
    if (!sock_.valid() || connect(sock_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      return "the system log \"" + a_.syslog_socket + "\": " + std::strerror(errno) +
             " (no syslog daemon or journal listens there; --syslog-socket names another)";
    }
    return "";
  }

  // False if the event could not be written.
  bool Put(const audit::Event& e) {
    const auto dump = [](const nlohmann::json& j) {
      return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    };
    if (a_.format == "table") {
      std::printf("%-24s %-16s %-12s %-7s %-8s %s\n", audit::FormatTime(e.time_ns).c_str(), Cell(e.agent, 16).c_str(),
                  Cell(e.sandbox, 12).c_str(), Cell(e.kind, 7).c_str(), Cell(e.decision, 8).c_str(),
                  Cell(e.summary, 200).c_str());
    } else if (a_.format == "json") {
      std::printf("%s\n", dump(EventJson(e)).c_str());
    } else if (a_.format == "ocsf") {
      std::printf("%s\n", dump(audit::ToOcsf(e)).c_str());
    } else {
      // authpriv (10); warning for a refusal, else info.
      const int pri = 10 * 8 + (e.decision == "deny" ? 4 : 6);
      const std::string line = "<" + std::to_string(pri) + ">ward-audit[" + std::to_string(getpid()) + "]: " + dump(EventJson(e));
      if (send(sock_.get(), line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
        std::fprintf(stderr, "ward audit: the system log \"%s\": %s\n", a_.syslog_socket.c_str(), std::strerror(errno));
        return false;
      }
    }
    return true;
  }

 private:
  const AuditArgs& a_;
  UniqueFd sock_;
};


int DoAudit(AuditArgs& a) {
  if (a.json) a.format = "json";
  audit::Query q;
  q.agent = a.agent;
  q.sandbox = a.sandbox;
  q.kind = a.kind;
  q.decision = a.denied ? "deny" : a.allowed ? "allow" : "";
  q.limit = a.limit;
  for (const auto& [text, out, flag] : {std::tuple{a.since, &q.since_ns, "--since"}, {a.until, &q.until_ns, "--until"}}) {
    if (text.empty()) continue;
    auto when = ParseWhen(text);
    if (!when) {
      std::fprintf(stderr, "ward audit: %s \"%s\": not a duration (90s, 30m, 1h, 2d) or a UTC time (2026-12-04T03:00:00Z)\n",
                   flag, text.c_str());
      return kExitUsage;
    }
    *out = *when;
  }
  auto where = audit::PathOrDefault(a.db);
  if (!where) {
    std::fprintf(stderr, "ward audit: %s\n", where.error().message.c_str());
    return kExitSetup;
  }
  const std::string& path = *where;
  // --follow before anything was recorded: waits for the first run to make
  // the store.
  while (a.follow && access(path.c_str(), F_OK) != 0 && errno == ENOENT) usleep(200 * 1000);
  auto store = audit::Store::OpenExisting(path);
  if (!store) {
    if (access(path.c_str(), F_OK) != 0 && errno == ENOENT) {
      std::fprintf(stderr, "ward audit: no audit store at \"%s\" (nothing recorded there yet)\n", path.c_str());
      return 0;
    }
    std::fprintf(stderr, "ward audit: %s\n", store.error().message.c_str());
    return kExitSetup;
  }
  Output out(a);
  if (std::string why = out.Open(); !why.empty()) {
    std::fprintf(stderr, "ward audit: %s\n", why.c_str());
    return kExitSetup;
  }
  for (;;) {
    auto found = store->Find(q);
    if (!found) {
      std::fprintf(stderr, "ward audit: %s\n", found.error().message.c_str());
      return kExitSetup;
    }
    for (const auto& e : *found) {
      if (!out.Put(e)) return kExitSetup;
      q.after_seq = e.seq;
    }
    if (!a.follow) return 0;
    // New events as runs write them; the newest `limit` only at first.
    q.limit = 0;
    if (std::fflush(stdout) != 0) return 0;  // the reader went away
    usleep(200 * 1000);
  }
}

// One sandbox's story: each command with how it ended, what was denied,
// how much was allowed, the limits it reached.
int DoSummary(const std::string& db, const std::string& sandbox, bool json) {
  auto where = audit::PathOrDefault(db);
  if (!where) {
    std::fprintf(stderr, "ward audit summary: %s\n", where.error().message.c_str());
    return kExitSetup;
  }
  const std::string& path = *where;
  auto store = audit::Store::OpenExisting(path);
  if (!store) {
    std::fprintf(stderr, "ward audit summary: %s\n", store.error().message.c_str());
    return kExitSetup;
  }
  audit::Query q;
  q.sandbox = sandbox;
  auto found = store->Find(q);
  if (!found) {
    std::fprintf(stderr, "ward audit summary: %s\n", found.error().message.c_str());
    return kExitSetup;
  }
  if (found->empty()) {
    std::fprintf(stderr, "ward audit summary: no events of sandbox \"%s\" in \"%s\"\n", sandbox.c_str(), path.c_str());
    return 1;
  }
  nlohmann::json commands = nlohmann::json::array(), denied = nlohmann::json::array(),
                 limits = nlohmann::json::array();
  // A start and its exit share a run id (older stores: ward's pid, which
  // can repeat across pid namespaces).
  std::map<std::string, size_t> open_runs;
  auto run_key = [](const audit::Event& e) {
    if (!e.detail.is_object()) return std::string();
    if (e.detail.contains("run") && e.detail["run"].is_string()) return "run:" + e.detail["run"].get<std::string>();
    return "pid:" + std::to_string(e.detail.value("pid", int64_t{0}));
  };
  int64_t allowed = 0, exec_count = 0;
  // What ran: each program path once, in the order first seen, with how
  // many times and its first argv.
  nlohmann::json executed = nlohmann::json::array();
  std::map<std::string, size_t> exec_index;
  const audit::Event& first = found->front();
  for (const audit::Event& e : *found) {
    if (e.kind == "start") {
      open_runs[run_key(e)] = commands.size();
      commands.push_back({{"time", audit::FormatTime(e.time_ns)}, {"summary", e.summary},
                          {"argv", e.detail.value("argv", nlohmann::json::array())}, {"exit", nullptr}});
    } else if (e.kind == "exit") {
      if (auto it = open_runs.find(run_key(e)); it != open_runs.end()) {
        commands[it->second]["exit"] = {{"summary", e.summary}, {"detail", e.detail}};
        open_runs.erase(it);
      }
    } else if (e.kind == "limit") {
      limits.push_back(EventJson(e));
    } else if (e.kind == "exec" && e.detail.is_object()) {
      ++exec_count;
      const nlohmann::json& p = e.detail.contains("path") ? e.detail["path"] : nlohmann::json();
      const std::string key = p.is_string() ? p.get<std::string>() : "(unread)";
      if (auto it = exec_index.find(key); it != exec_index.end()) {
        executed[it->second]["count"] = executed[it->second]["count"].get<int64_t>() + 1;
      } else {
        exec_index[key] = executed.size();
        executed.push_back({{"path", key}, {"count", 1}, {"argv", e.detail.value("argv", nlohmann::json::array())}});
      }
    }
    if (e.decision == "deny" && e.kind != "limit") denied.push_back(EventJson(e));
    if (e.decision == "allow") ++allowed;
  }
  if (json) {
    nlohmann::json j = {{"sandbox", sandbox}, {"agent", first.agent}, {"agentId", first.agent_id},
                        {"commands", commands}, {"executed", executed}, {"execCount", exec_count},
                        {"denied", denied}, {"allowedCount", allowed}, {"limits", limits}};
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return 0;
  }
  std::printf("sandbox %s, agent %s (%s)\n", Cell(sandbox, 64).c_str(), Cell(first.agent, 64).c_str(),
              Cell(first.agent_id, 32).c_str());
  std::printf("commands (%zu):\n", commands.size());
  for (const auto& c : commands) {
    const std::string end = c["exit"].is_null() ? "no exit recorded (still running, or ward was killed)"
                                                : c["exit"]["summary"].get<std::string>();
    std::printf("  %s  %s\n    -> %s\n", c["time"].get<std::string>().c_str(),
                Cell(c["summary"].get<std::string>(), 200).c_str(), Cell(end, 200).c_str());
  }
  std::printf("executed (%lld, %zu programs):\n", static_cast<long long>(exec_count), executed.size());
  for (const auto& x : executed) {
    std::printf("  %6lld  %s\n", static_cast<long long>(x["count"].get<int64_t>()), Cell(x["path"].get<std::string>(), 200).c_str());
  }
  std::printf("denied (%zu):\n", denied.size());
  for (const auto& d : denied) {
    std::printf("  %s  %s  %s\n", d["time"].get<std::string>().c_str(), Cell(d["kind"].get<std::string>(), 8).c_str(),
                Cell(d["summary"].get<std::string>(), 200).c_str());
  }
  std::printf("allowed: %lld decisions\n", static_cast<long long>(allowed));
  std::printf("limits reached: %s\n", limits.empty() ? "none" : "");
  for (const auto& l : limits) std::printf("  %s  %s\n", l["time"].get<std::string>().c_str(), Cell(l["summary"].get<std::string>(), 200).c_str());
  return 0;
}

}  // namespace

Action AddAudit(CLI::App& app) {
  auto a = std::make_shared<AuditArgs>();
  auto* cmd = app.add_subcommand("audit", "what agents ran and were refused, from the audit store: ward audit [--agent NAME] [--denied] [--since 1h] [--json] [--follow]");
  // An empty value would match every event: refused, as a typo would be.
  auto non_empty = CLI::Validator(
      [](std::string& v) { return v.empty() ? std::string("an empty value would match every event") : std::string(); },
      "NAME");
  cmd->add_option("--agent", a->agent, "only this agent's events")->check(non_empty);
  cmd->add_option("--sandbox", a->sandbox, "only this sandbox's events (its id, as `ward run` sets WARD_SANDBOX_ID)")
      ->check(non_empty);
  cmd->add_option("--kind", a->kind, "only events of this kind: start, exec, file (a denied file access: policy audit.files), exit, egress, limit, trim, dropped")
      ->check(CLI::IsMember({"start", "exec", "file", "exit", "egress", "limit", "trim", "dropped"}));
  auto* denied = cmd->add_flag("--denied", a->denied, "only denials");
  cmd->add_flag("--allowed", a->allowed, "only what was allowed")->excludes(denied);
  cmd->add_option("--since", a->since, "only events since this: a duration before now (90s, 30m, 1h, 2d) or a UTC time (2026-12-04T03:00:00Z)");
  cmd->add_option("--until", a->until, "only events before this (same forms as --since)");
  cmd->add_option("--limit", a->limit, "only the newest N events (still printed oldest first)")->check(CLI::PositiveNumber);
  auto* json = cmd->add_flag("--json", a->json, "one JSON object per line: seq, time, agent, agentId, sandbox, kind, decision, summary, detail (as --format json)");
  cmd->add_option("--format", a->format,
                  "table (default); json (as --json); ocsf: one OCSF 1.1.0 event per line for a SIEM (Network Activity, "
                  "DNS Activity, Process Activity, File System Activity; docs/audit.md); syslog: each event to the system log (authpriv; "
                  "warning for a denial, info otherwise) as \"ward-audit[PID]: JSON\"")
      ->check(CLI::IsMember({"table", "json", "ocsf", "syslog"}))
      ->excludes(json);
  cmd->add_option("--syslog-socket", a->syslog_socket, "with --format syslog: the log's unix datagram socket (default /dev/log)");
  cmd->add_flag("--follow", a->follow, "keep printing new events as runs write them, until interrupted");
  cmd->add_option("--db", a->db, "the audit store (default: WARD_AUDIT_DB, else /var/lib/ward/audit.db for root, $XDG_STATE_HOME/ward/audit.db or ~/.local/state/ward/audit.db)");
  cmd->footer(
      "Every `ward run` records its start (agent, policy digest and policy, command, caller), its egress\n"
      "decisions, the limits it reached and its exit, attributed to its agent (--agent) and sandbox id.\n"
      "Fields that come from the sandbox are shown escaped (\\xNN) in the table; --json escapes them as JSON.\n"
      "`ward audit summary --sandbox ID` tells one sandbox's story.\n"
      "Exit status: 0; 122 bad command line; 125 the store cannot be read (it names the file and why).");
  auto* sum = cmd->add_subcommand("summary", "one sandbox's commands with how each ended, the programs it executed, its denials, its allowed count and limits: ward audit summary --sandbox ID [--json]");
  auto sandbox = std::make_shared<std::string>();
  auto sum_json = std::make_shared<bool>(false);
  auto sum_db = std::make_shared<std::string>();
  sum->add_option("--sandbox", *sandbox, "the sandbox's id (WARD_SANDBOX_ID, or `ward ls`'s id)")->required()->check(non_empty);
  sum->add_flag("--json", *sum_json, "one JSON object: sandbox, agent, agentId, commands (time, summary, argv, exit), executed (path, count, argv), execCount, denied, allowedCount, limits");
  sum->add_option("--db", *sum_db, "the audit store (default as for ward audit)");
  sum->footer("Exit status: 0; 1 no events of that sandbox; 122 bad command line; 125 the store cannot be read.");
  cmd->require_subcommand(0, 1);
  return [a, sum, sandbox, sum_json, sum_db] {
    // A stored detail of an unexpected shape (a damaged or planted store)
    // ends the reader with an error, never an abort.
    try {
      if (sum->parsed()) return DoSummary(*sum_db, *sandbox, *sum_json);
      return DoAudit(*a);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ward audit: the store holds an event it cannot read: %s\n", e.what());
      return kExitSetup;
    }
  };
}

}  // namespace ward::cli
