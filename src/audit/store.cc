#include "audit/store.h"

#include <limits.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/clock.h"
#include "base/errors.h"

namespace ward::audit {

namespace {

// How long a writer waits for another ward's transaction (ctest -j, agents
// in parallel) before the append fails.
constexpr int kBusyTimeoutMs = 10000;

// Whether JSON text nests deeper than ward ever writes (the parser recurses:
// a planted detail 100,000 levels deep would exhaust the stack).
bool TooDeep(const std::string& text) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > 64) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

Error DbError(const std::string& path, sqlite3* db, const std::string& what) {
  return Error::Setup("audit store \"" + path + "\": " + what + ": " + (db ? sqlite3_errmsg(db) : "out of memory"));
}

// One prepared statement, finalized on every path.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return s_; }
  void Text(int i, const std::string& v) { sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT); }
  void Int(int i, int64_t v) { sqlite3_bind_int64(s_, i, v); }
  std::string Column(int i) {
    const unsigned char* t = sqlite3_column_text(s_, i);
    return t ? std::string(reinterpret_cast<const char*>(t), static_cast<size_t>(sqlite3_column_bytes(s_, i))) : "";
  }

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_ = SQLITE_ERROR;
};

Result<void> Exec(sqlite3* db, const std::string& path, const char* sql) {
  char* msg = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
    std::string m = msg ? msg : sqlite3_errmsg(db);
    sqlite3_free(msg);
    return Error::Setup("audit store \"" + path + "\": " + m);
  }
  return {};
}

// The directory of `path`, made 0700 with its parents if missing.
Result<void> MakeParents(const std::string& path) {
  for (size_t at = path.find('/', 1); at != std::string::npos; at = path.find('/', at + 1)) {
    const std::string dir = path.substr(0, at);
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return SysError("mkdir", dir);
  }
  return {};
}

const char* const kSchema = R"sql(
CREATE TABLE agents(name TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE, created_ns INTEGER NOT NULL);
CREATE TABLE events(seq INTEGER PRIMARY KEY AUTOINCREMENT, time_ns INTEGER NOT NULL, agent TEXT NOT NULL,
  agent_id TEXT NOT NULL, sandbox TEXT NOT NULL, kind TEXT NOT NULL, decision TEXT NOT NULL,
  summary TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX events_agent ON events(agent, time_ns);
CREATE INDEX events_sandbox ON events(sandbox, seq);
CREATE INDEX events_time ON events(time_ns);
CREATE TABLE agent_uids(name TEXT PRIMARY KEY, uid INTEGER NOT NULL UNIQUE);
PRAGMA user_version = 2;
)sql";

// Version 2: each agent's host uid (root callers' sandboxes).
const char* const kMigrate1To2 = R"sql(
CREATE TABLE agent_uids(name TEXT PRIMARY KEY, uid INTEGER NOT NULL UNIQUE);
PRAGMA user_version = 2;
)sql";

}  // namespace

void Store::Close::operator()(sqlite3* db) const { sqlite3_close_v2(db); }

Result<Store> Store::Open(const std::string& path) {
  if (path.empty() || path[0] != '/') return Error::Setup("audit store \"" + path + "\": not an absolute path");
  WARD_TRY(MakeParents(path));
  Store s;
  s.path_ = path;
  s.bound_ = int64_t{1024} << 20;
  if (const char* m = std::getenv("WARD_AUDIT_MAX_MIB"); m && *m) {
    char* end = nullptr;
    const long long mib = std::strtoll(m, &end, 10);
    if (*end != 0 || mib < 1 || mib > (int64_t{1} << 30)) {
      return Error::Setup(std::string("WARD_AUDIT_MAX_MIB=\"") + m + "\": not a size in MiB (1 or more)");
    }
    s.bound_ = static_cast<int64_t>(mib) << 20;
  }
  WARD_TRY(s.Init(true));
  return s;
}

Result<Store> Store::OpenExisting(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return Error::Setup("the audit store \"" + path + "\": " + ErrnoName(errno));
  Store s;
  s.path_ = path;
  WARD_TRY(s.Init(false));
  return s;
}

void Store::DeferCheckpoints(std::function<void(int)> wal_frames) {
  if (!wal_frames) {
    sqlite3_wal_autocheckpoint(db_.get(), kWalCheckpointFrames);  // SQLite's own hook again
    wal_frames_.reset();
    return;
  }
  wal_frames_ = std::make_unique<std::function<void(int)>>(std::move(wal_frames));
  // Replaces SQLite's own hook, which is what checkpoints at
  // wal_autocheckpoint frames.
  sqlite3_wal_hook(
      db_.get(),
      [](void* fn, sqlite3*, const char*, int frames) {
        (*static_cast<std::function<void(int)>*>(fn))(frames);
        return SQLITE_OK;
      },
      wal_frames_.get());
}

Result<void> Store::Checkpoint() {
  if (sqlite3_wal_checkpoint_v2(db_.get(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr) != SQLITE_OK) {
    return DbError(path_, db_.get(), "checkpoint");
  }
  return {};
}

Result<void> Store::Init(bool create) {
  sqlite3* raw = nullptr;
  // The store and its -wal and -shm (which SQLite gives its mode) are the
  // owner's alone. The umask is set only to make the store (ward is
  // single-threaded then): it is the process's, and an existing store is
  // also opened on a held supervisor's writer thread (its checkpoint
  // connection) while other threads run.
  const mode_t old_mask = create ? umask(077) : 0;
  const int flags = (create ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READWRITE) |
                    SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW;
  int rc = sqlite3_open_v2(path_.c_str(), &raw, flags, nullptr);
  db_.reset(raw);
  if (rc == SQLITE_OK) {
    sqlite3_busy_timeout(raw, kBusyTimeoutMs);
    rc = sqlite3_exec(raw, "PRAGMA user_version", nullptr, nullptr, nullptr);  // makes the file now
  }
  if (create) umask(old_mask);
  if (rc != SQLITE_OK) return DbError(path_, raw, "open");
  // The file opened (StillAt). A store with a second name (a hard link
  // someone made) could be read or rewritten through that name by whoever
  // that one is visible to.
  if (struct stat st; stat(path_.c_str(), &st) == 0) {
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    if (st.st_nlink > 1) {
      return Error::Setup("audit store \"" + path_ + "\": has " + std::to_string(st.st_nlink) +
                          " hard links (find them with `find / -xdev -samefile " + path_ + "`); a store must have one name");
    }
  }
  // What the file holds is data, never code: no trigger or view planted in
  // it runs with ward's privileges, and SQLite refuses writes that would
  // corrupt it (writable_schema and the like).
  sqlite3_db_config(db_.get(), SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
  sqlite3_db_config(db_.get(), SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  // The last connection's close would checkpoint (an fsync) on every ward
  // command; checkpoints happen as the WAL grows instead.
  sqlite3_db_config(db_.get(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  // A small WAL: the first connection after the last one closed rebuilds
  // the WAL index by reading the whole WAL (4 MiB at SQLite's default
  // checkpoint: about 4 ms on every ward command here). 64 pages keep that
  // read under 256 KiB; the checkpoint (an fsync) comes every few dozen runs.
  WARD_TRY(Exec(db_.get(), path_,
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA journal_size_limit=1048576;"));
  sqlite3_wal_autocheckpoint(db_.get(), kWalCheckpointFrames);
  // The schema: made by the first writer, under a write lock, once.
  int version = 0;
  {
    Stmt v(db_.get(), "PRAGMA user_version");
    if (!v.ok() || sqlite3_step(v.get()) != SQLITE_ROW) return DbError(path_, db_.get(), "read the schema version");
    version = sqlite3_column_int(v.get(), 0);
  }
  if (version > kSchemaVersion) {
    return Error::Setup("audit store \"" + path_ + "\": schema version " + std::to_string(version) +
                        " is a newer ward's (this one reads " + std::to_string(kSchemaVersion) + ")");
  }
  if (version < kSchemaVersion) {
    // Made, or brought up to this version, by the first writer, under a
    // write lock, once.
    WARD_TRY(Exec(db_.get(), path_, "BEGIN IMMEDIATE"));
    auto rollback = [&](Error e) {
      (void)Exec(db_.get(), path_, "ROLLBACK");
      return e;
    };
    int now = 0;
    {
      Stmt v(db_.get(), "PRAGMA user_version");
      if (!v.ok() || sqlite3_step(v.get()) != SQLITE_ROW) return rollback(DbError(path_, db_.get(), "read the schema version"));
      now = sqlite3_column_int(v.get(), 0);
    }
    if (now == 0) {
      if (auto made = Exec(db_.get(), path_, kSchema); !made) return rollback(made.error());
    } else if (now == 1) {
      if (auto made = Exec(db_.get(), path_, kMigrate1To2); !made) return rollback(made.error());
    }
    WARD_TRY(Exec(db_.get(), path_, "COMMIT"));
  }
  // ward's schema has no triggers or views: one in the file was planted
  // (a trigger that deletes each event as it is written).
  Stmt planted(db_.get(), "SELECT name FROM sqlite_master WHERE type IN ('trigger', 'view') LIMIT 1");
  if (!planted.ok()) return DbError(path_, db_.get(), "read the schema");
  if (sqlite3_step(planted.get()) == SQLITE_ROW) {
    const unsigned char* name = sqlite3_column_text(planted.get(), 0);
    return Error::Setup("audit store \"" + path_ + "\": holds a trigger or view (\"" +
                        EscapeForTerminal(name ? reinterpret_cast<const char*>(name) : "") +
                        "\") that ward's schema does not; refused (someone changed the store)");
  }
  return {};
}

Result<uint32_t> Store::AgentHostUid(const std::string& agent, uint32_t base, uint32_t count) {
  if (count < 2) return Error::Setup("WARD_UID_RANGE holds no uid for agents (its COUNT must be 2 or more)");
  const int64_t lo = int64_t{base} + 1, hi = int64_t{base} + count;  // [lo, hi): BASE is the library's
  // The agent's uid now (-1: none); false if the store cannot be read.
  auto held_uid = [&](int64_t* uid) {
    Stmt q(db_.get(), "SELECT uid FROM agent_uids WHERE name = ?1");
    if (!q.ok()) return false;
    q.Text(1, agent);
    *uid = sqlite3_step(q.get()) == SQLITE_ROW ? sqlite3_column_int64(q.get(), 0) : -1;
    return true;
  };
  // Held already, in the range (every run but an agent's first): a read,
  // no write lock. (A run uses the uid it read either way: the lock was
  // released before the run began.)
  int64_t held = -1;
  if (!held_uid(&held)) return DbError(path_, db_.get(), "look up the agent's uid");
  if (held >= lo && held < hi) return static_cast<uint32_t>(held);
  WARD_TRY(Exec(db_.get(), path_, "BEGIN IMMEDIATE"));
  auto fail = [&](Error e) {
    (void)Exec(db_.get(), path_, "ROLLBACK");
    return e;
  };
  // Again under the lock: another first run of this agent may have taken
  // one meanwhile.
  if (!held_uid(&held)) return fail(DbError(path_, db_.get(), "look up the agent's uid"));
  if (held >= lo && held < hi) {
    WARD_TRY(Exec(db_.get(), path_, "COMMIT"));
    return static_cast<uint32_t>(held);
  }
  // None yet, or outside the range as it is now (WARD_UID_RANGE changed):
  // another.
  // The lowest uid of the range no agent holds.
  int64_t next = lo;
  {
    Stmt used(db_.get(), "SELECT uid FROM agent_uids WHERE uid >= ?1 AND uid < ?2 ORDER BY uid");
    if (!used.ok()) return fail(DbError(path_, db_.get(), "read the agents' uids"));
    used.Int(1, lo);
    used.Int(2, hi);
    while (sqlite3_step(used.get()) == SQLITE_ROW && sqlite3_column_int64(used.get(), 0) == next) ++next;
  }
  if (next >= hi) {
    return fail(Error::Setup("WARD_UID_RANGE " + std::to_string(base) + ":" + std::to_string(count) + ": every uid is an agent's (" +
                             std::to_string(count - 1) + " agents); widen the range"));
  }
  {
    Stmt ins(db_.get(), "INSERT INTO agent_uids(name, uid) VALUES(?1, ?2) ON CONFLICT(name) DO UPDATE SET uid = ?2");
    if (!ins.ok()) return fail(DbError(path_, db_.get(), "record the agent's uid"));
    ins.Text(1, agent);
    ins.Int(2, next);
    if (sqlite3_step(ins.get()) != SQLITE_DONE) return fail(DbError(path_, db_.get(), "record the agent's uid"));
  }
  WARD_TRY(Exec(db_.get(), path_, "COMMIT"));
  return static_cast<uint32_t>(next);
}

Result<std::string> Store::AgentId(const std::string& agent) {
  {
    Stmt q(db_.get(), "SELECT id FROM agents WHERE name = ?1");
    if (!q.ok()) return DbError(path_, db_.get(), "look up agent");
    q.Text(1, agent);
    int rc = sqlite3_step(q.get());
    if (rc == SQLITE_ROW) return q.Column(0);
    if (rc != SQLITE_DONE) return DbError(path_, db_.get(), "look up agent");
  }
  unsigned char raw[8];
  if (getrandom(raw, sizeof raw, 0) != static_cast<ssize_t>(sizeof raw)) return SysError("getrandom", "agent id");
  char id[17];
  for (size_t i = 0; i < sizeof raw; ++i) std::snprintf(id + 2 * i, 3, "%02x", raw[i]);
  // Two first runs at once: one insert wins, both read its id.
  Stmt ins(db_.get(), "INSERT INTO agents(name, id, created_ns) VALUES(?1, ?2, ?3) ON CONFLICT(name) DO NOTHING");
  if (!ins.ok()) return DbError(path_, db_.get(), "record agent");
  ins.Text(1, agent);
  ins.Text(2, id);
  ins.Int(3, RealtimeNs());
  if (sqlite3_step(ins.get()) != SQLITE_DONE) return DbError(path_, db_.get(), "record agent");
  Stmt q(db_.get(), "SELECT id FROM agents WHERE name = ?1");
  q.Text(1, agent);
  if (!q.ok() || sqlite3_step(q.get()) != SQLITE_ROW) return DbError(path_, db_.get(), "look up agent");
  return q.Column(0);
}

void Store::Finalize::operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }

Result<void> Store::Append(std::vector<Event>& events, int busy_ms, bool trim) {
  if (events.empty()) return {};
  if (busy_ms >= 0) sqlite3_busy_timeout(db_.get(), busy_ms);
  struct RestoreBusy {
    sqlite3* db;
    bool changed;
    ~RestoreBusy() {
      if (changed) sqlite3_busy_timeout(db, kBusyTimeoutMs);
    }
  } restore{db_.get(), busy_ms >= 0};
  WARD_TRY(Exec(db_.get(), path_, "BEGIN IMMEDIATE"));
  auto fail = [&](const std::string& what) {
    Error e = DbError(path_, db_.get(), what);
    if (insert_) sqlite3_reset(insert_.get());
    (void)Exec(db_.get(), path_, "ROLLBACK");
    return e;
  };
  // Prepared once for the store's life: a held sandbox appends on the path
  // of each exec.
  if (!insert_) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v3(db_.get(),
                           "INSERT INTO events(time_ns, agent, agent_id, sandbox, kind, decision, summary, detail) "
                           "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                           -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr) != SQLITE_OK) {
      sqlite3_finalize(raw);
      return fail("prepare append");
    }
    insert_.reset(raw);
  }
  sqlite3_stmt* ins = insert_.get();
  auto text = [ins](int i, const std::string& v) {
    sqlite3_bind_text(ins, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  };
  for (Event& e : events) {
    sqlite3_reset(ins);
    sqlite3_bind_int64(ins, 1, e.time_ns);
    text(2, e.agent);
    text(3, e.agent_id);
    text(4, e.sandbox);
    text(5, e.kind);
    text(6, e.decision);
    text(7, e.summary);
    // Invalid UTF-8 from the sandbox is replaced, never a reason to lose the event.
    const std::string detail = e.detail.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    text(8, detail);
    if (sqlite3_step(ins) != SQLITE_DONE) return fail("append");
    e.seq = sqlite3_last_insert_rowid(db_.get());
    unchecked_bytes_ += static_cast<int64_t>(e.summary.size() + detail.size()) + 128;
  }
  sqlite3_reset(ins);
  if (sqlite3_exec(db_.get(), "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) return fail("commit");
  // The events are in: a trim that fails now is tried again at a later
  // append (its error is not theirs: a caller would write them twice).
  if (trim) (void)Trim();
  return {};
}

Result<int64_t> Store::Bytes() {
  // Pages in use: the file's pages less the free ones that new rows reuse.
  Stmt s(db_.get(), "SELECT (SELECT page_count FROM pragma_page_count()) - (SELECT freelist_count FROM "
                    "pragma_freelist_count()), (SELECT page_size FROM pragma_page_size())");
  if (!s.ok() || sqlite3_step(s.get()) != SQLITE_ROW) return DbError(path_, db_.get(), "size");
  return sqlite3_column_int64(s.get(), 0) * sqlite3_column_int64(s.get(), 1);
}

Result<void> Store::StillAt() const {
  struct stat st;
  if (stat(path_.c_str(), &st) != 0) {
    return Error::Setup("audit store \"" + path_ + "\": " + std::strerror(errno) + " (moved or removed since it was opened)");
  }
  if (st.st_dev != dev_ || st.st_ino != ino_) {
    return Error::Setup("audit store \"" + path_ + "\": replaced by another file since it was opened");
  }
  return {};
}

Result<bool> Store::TrimStep(int64_t max_rows) {
  if (bound_ <= 0) return false;
  if (trim_until_ == 0) {
    // Measured once 1/64 of the bound has been appended since the last
    // time, not on every append: the store may pass its bound by that much
    // (and a batch) before it is trimmed.
    if (unchecked_bytes_ * 64 < bound_) return false;
    auto bytes = Bytes();
    if (!bytes) return bytes.error();
    unchecked_bytes_ = 0;
    if (*bytes <= bound_) return false;
    // Keep the newest share of rows that fits three quarters of the bound.
    Stmt range(db_.get(), "SELECT min(seq), count(*) FROM events");
    if (!range.ok() || sqlite3_step(range.get()) != SQLITE_ROW) return DbError(path_, db_.get(), "trim");
    const int64_t first = sqlite3_column_int64(range.get(), 0), count = sqlite3_column_int64(range.get(), 1);
    const auto drop = static_cast<int64_t>(static_cast<double>(count) * (1.0 - 0.75 * static_cast<double>(bound_) /
                                                                                static_cast<double>(*bytes))) + 1;
    trim_until_ = first + drop;
  }
  WARD_TRY(Exec(db_.get(), path_, "BEGIN IMMEDIATE"));
  auto fail = [&](const std::string& what) {
    Error e = DbError(path_, db_.get(), what);
    (void)Exec(db_.get(), path_, "ROLLBACK");
    return e;
  };
  int64_t first = 0;
  {
    Stmt low(db_.get(), "SELECT min(seq) FROM events");
    if (!low.ok() || sqlite3_step(low.get()) != SQLITE_ROW) return fail("trim");
    first = sqlite3_column_int64(low.get(), 0);
  }
  const int64_t until = std::min(trim_until_, first + max_rows);
  Stmt del(db_.get(), "DELETE FROM events WHERE seq < ?1");
  if (!del.ok()) return fail("trim");
  del.Int(1, until);
  if (sqlite3_step(del.get()) != SQLITE_DONE) return fail("trim");
  const int64_t removed = sqlite3_changes(db_.get());
  Stmt ins(db_.get(), "INSERT INTO events(time_ns, agent, agent_id, sandbox, kind, decision, summary, detail) "
                      "VALUES(?1, '', '', '', 'trim', '', ?2, ?3)");
  if (!ins.ok()) return fail("trim");
  ins.Int(1, RealtimeNs());
  ins.Text(2, "the store reached its bound (" + std::to_string(bound_ >> 20) + " MiB): removed the " +
                  std::to_string(removed) + " oldest events");
  ins.Text(3, nlohmann::json{{"removed", removed}, {"firstSeq", first}, {"lastSeq", until - 1},
                             {"boundBytes", bound_}}.dump());
  if (sqlite3_step(ins.get()) != SQLITE_DONE) return fail("trim");
  if (sqlite3_exec(db_.get(), "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) return fail("commit trim");
  if (until >= trim_until_) trim_until_ = 0;
  return trim_until_ != 0;
}

Result<void> Store::Trim() {
  for (;;) {
    auto more = TrimStep(kTrimStepRows);
    if (!more) return more.error();
    if (!*more) return {};
  }
}

Result<std::vector<Event>> Store::Find(const Query& q) {
  // Every filter is a bound parameter; only those given are in the WHERE
  // clause, so that SQLite can answer from an index (agent, sandbox, time)
  // instead of reading every event ("?1 = '' OR agent = ?1" defeats them).
  std::string sql = "SELECT seq, time_ns, agent, agent_id, sandbox, kind, decision, summary, detail FROM events WHERE seq > ?7";
  if (!q.agent.empty()) sql += " AND agent = ?1";
  if (!q.sandbox.empty()) sql += " AND sandbox = ?2";
  if (!q.kind.empty()) sql += " AND kind = ?3";
  if (!q.decision.empty()) sql += " AND decision = ?4";
  if (q.since_ns != 0) sql += " AND time_ns >= ?5";
  if (q.until_ns != 0) sql += " AND time_ns < ?6";
  sql += q.limit > 0 ? " ORDER BY seq DESC LIMIT ?8" : " ORDER BY seq";
  Stmt s(db_.get(), sql.c_str());
  if (!s.ok()) return DbError(path_, db_.get(), "query");
  if (!q.agent.empty()) s.Text(1, q.agent);
  if (!q.sandbox.empty()) s.Text(2, q.sandbox);
  if (!q.kind.empty()) s.Text(3, q.kind);
  if (!q.decision.empty()) s.Text(4, q.decision);
  if (q.since_ns != 0) s.Int(5, q.since_ns);
  if (q.until_ns != 0) s.Int(6, q.until_ns);
  s.Int(7, q.after_seq);
  if (q.limit > 0) s.Int(8, q.limit);
  std::vector<Event> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    Event e;
    e.seq = sqlite3_column_int64(s.get(), 0);
    e.time_ns = sqlite3_column_int64(s.get(), 1);
    e.agent = s.Column(2);
    e.agent_id = s.Column(3);
    e.sandbox = s.Column(4);
    e.kind = s.Column(5);
    e.decision = s.Column(6);
    e.summary = s.Column(7);
    const std::string text = s.Column(8);
    e.detail = TooDeep(text) ? nlohmann::json(nlohmann::json::value_t::discarded) : nlohmann::json::parse(text, nullptr, false);
    if (e.detail.is_discarded()) e.detail = {{"damaged", true}};
    out.push_back(std::move(e));
  }
  if (rc != SQLITE_DONE) return DbError(path_, db_.get(), "query");
  if (q.limit > 0) std::reverse(out.begin(), out.end());
  return out;
}

namespace {

// The home directory /etc/passwd gives `uid`, or "". Read by hand: the
// static ward binary would need NSS modules (dlopen) for getpwuid.
std::string HomeOf(uid_t uid) {
  FILE* f = std::fopen("/etc/passwd", "re");
  if (!f) return "";
  std::string home;
  char line[4096];
  while (home.empty() && std::fgets(line, sizeof line, f)) {
    std::string fields[7];
    size_t n = 0;
    for (const char* p = line; *p && *p != '\n' && n < 7; ++p) {
      if (*p == ':') ++n;
      else if (n < 7) fields[n] += *p;
    }
    if (n >= 5 && fields[2] == std::to_string(uid) && fields[5].size() > 1 && fields[5][0] == '/') home = fields[5];
  }
  std::fclose(f);
  return home;
}

}  // namespace

Result<std::string> DefaultPath() {
  if (const char* p = std::getenv("WARD_AUDIT_DB"); p && *p) {
    if (p[0] == '/') return std::string(p);
    // Made absolute, as it is recorded for a held sandbox's later execs.
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return Error::Setup(std::string("WARD_AUDIT_DB is relative and getcwd failed: ") + strerror(errno));
    return std::string(cwd) + "/" + p;
  }
  if (geteuid() == 0) return std::string("/var/lib/ward/audit.db");
  if (const char* s = std::getenv("XDG_STATE_HOME"); s && s[0] == '/') return std::string(s) + "/ward/audit.db";
  if (const char* h = std::getenv("HOME"); h && h[0] == '/') return std::string(h) + "/.local/state/ward/audit.db";
  // No HOME (a cleared environment): the account's home directory.
  if (std::string home = HomeOf(geteuid()); !home.empty()) return home + "/.local/state/ward/audit.db";
  return Error::Setup("no audit store: set WARD_AUDIT_DB, XDG_STATE_HOME or HOME (uid " + std::to_string(geteuid()) +
                      " has no home directory in /etc/passwd)");
}

Result<std::string> PathOrDefault(const std::string& chosen) {
  if (!chosen.empty()) return chosen;
  return DefaultPath();
}

std::string EscapeForTerminal(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  auto hex = [&](unsigned char c) {
    char b[5];
    std::snprintf(b, sizeof b, "\\x%02x", c);
    out += b;
  };
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\\') {
      out += "\\\\";
      ++i;
    } else if (c < 0x20 || c == 0x7f) {
      hex(c);
      ++i;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
    } else {
      // A well-formed UTF-8 sequence passes; anything else byte by byte.
      size_t n = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
      bool ok = n > 0 && i + n <= s.size() && c >= 0xc2 && c <= 0xf4;
      for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
      // C1 controls (U+0080..U+009F) act on some terminals.
      if (ok && c == 0xc2 && static_cast<unsigned char>(s[i + 1]) < 0xa0) ok = false;
      // Bidirectional controls reorder what follows them on the line (a
      // path shown backwards): U+061C, U+200E-U+200F, U+202A-U+202E,
      // U+2066-U+2069.
      if (ok && n == 2 && c == 0xd8 && static_cast<unsigned char>(s[i + 1]) == 0x9c) ok = false;
      if (ok && n == 3 && c == 0xe2) {
        const auto b1 = static_cast<unsigned char>(s[i + 1]), b2 = static_cast<unsigned char>(s[i + 2]);
        if (b1 == 0x80 && (b2 == 0x8e || b2 == 0x8f || (b2 >= 0xaa && b2 <= 0xae))) ok = false;
        if (b1 == 0x81 && b2 >= 0xa6 && b2 <= 0xa9) ok = false;
      }
      if (ok) {
        out.append(s, i, n);
        i += n;
      } else {
        hex(c);
        ++i;
      }
    }
  }
  return out;
}

std::string FormatTime(int64_t time_ns) {
  const time_t secs = static_cast<time_t>(time_ns / 1000000000);
  tm t{};
  gmtime_r(&secs, &t);
  char b[96];
  std::snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour,
                t.tm_min, t.tm_sec, static_cast<int>((time_ns / 1000000) % 1000));
  return b;
}

}  // namespace ward::audit
