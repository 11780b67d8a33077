// The audit trail: an append-only SQLite database (WAL mode) of what each
// sandbox did and was refused, attributed to an agent.
//
//   meta       PRAGMA user_version: the schema's version (kSchemaVersion)
//   agents     name -> a stable id, made at the agent's first run
//   agent_uids name -> the host uid of its sandboxes when ward runs as root
//   events     seq (ascending, never reused), time, agent, agent id, sandbox id,
//              kind, decision ("allow", "deny" or ""), a one-line summary and
//              the kind's fields as JSON
//
// Durability: each Append is one transaction. Once it returns, the events
// survive kill -9 of ward and of the workload (the WAL is in the page
// cache; synchronous=NORMAL), not a power loss before the next checkpoint.
// A torn write at the WAL's tail fails its checksum and is ignored when
// the database is next opened: the events before it are read, the reader
// never sees a part of one.
//
// Everything in an event that came from the sandbox (argv, paths, names)
// is untrusted: it is stored as given, bound as a parameter (never spliced
// into SQL), and escaped by whoever prints it (EscapeForTerminal).
#pragma once

#include <sys/types.h>

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ward/result.h"

namespace ward::audit {

// 1: agents, events. 2: agent_uids (a store of version 1 is brought up to
// 2 when it is opened).
inline constexpr int kSchemaVersion = 2;

struct Event {
  int64_t seq = 0;      // the store's, set by Append
  int64_t time_ns = 0;  // CLOCK_REALTIME
  std::string agent, agent_id, sandbox;
  std::string kind;      // "start", "exit", "egress", "limit", "trim" (the store's own)
  std::string decision;  // "allow", "deny", or "" where nothing was decided
  std::string summary;   // one line
  nlohmann::json detail = nlohmann::json::object();
};

struct Query {
  std::string agent, sandbox, kind, decision;  // "" matches any
  int64_t since_ns = 0, until_ns = 0;          // 0: unbounded
  int64_t after_seq = 0;                       // only events with a greater seq
  int64_t limit = 0;                           // 0: all; else the newest `limit`, oldest first
};

class Store {
 public:
  // Opens the store at `path`, made (with its directory, 0700) if missing.
  // An error names the path and why: a file that is not a database, a
  // schema of a newer ward, a directory that cannot be made.
  static Result<Store> Open(const std::string& path);
  // Opens an existing store (an error if it is missing), read and written
  // as Open's, but never made.
  static Result<Store> OpenExisting(const std::string& path);

  // The agent's stable id, made (16 random hex digits) at its first use.
  Result<std::string> AgentId(const std::string& agent);
  // The host uid a root caller's sandboxes of `agent` run as: the one
  // recorded for it if it lies in (base, base + count), else the lowest of
  // them no other agent holds, recorded (agent_uids). An error when every
  // one is taken.
  Result<uint32_t> AgentHostUid(const std::string& agent, uint32_t base, uint32_t count);
  // Appends `events` in one transaction and sets their seq. Then, if the
  // database has grown past the bound (SetBound), removes the oldest events
  // down to three quarters of it and records that as a "trim" event (how
  // many, and the seq range): the file stops growing, its freed pages are
  // reused.
  // `busy_ms`: how long it waits for another writer's lock (default: the
  // store's, 10 s). `trim` false: no trim now (it may take seconds on a
  // large store): TrimStep does it, or a later append.
  Result<void> Append(std::vector<Event>& events, int busy_ms = -1, bool trim = true);
  // One step of the trim Append does: if the store is past its bound (or a
  // trim is under way), removes at most `max_rows` of the oldest events in
  // a transaction of its own, with its "trim" event. True if more must go.
  // A trim of a large store takes seconds; in steps, others write between.
  Result<bool> TrimStep(int64_t max_rows);
  static constexpr int64_t kTrimStepRows = 10000;
  // The size bound, in bytes (default: WARD_AUDIT_MAX_MIB, else 1024 MiB).
  // The WAL beside the file adds up to about 256 KiB between checkpoints
  // (at most its 1 MiB size limit when commits outrun deferred ones).
  // Checked after the first append and then after each 1/64 of the bound
  // appended.
  void SetBound(int64_t bytes) {
    bound_ = bytes;
    unchecked_bytes_ = INT64_MAX / 128;
  }
  // The events `q` matches, oldest first.
  Result<std::vector<Event>> Find(const Query& q);

  const std::string& path() const { return path_; }

  // The WAL's length, in pages, at which it is checkpointed: by SQLite in
  // the commit that reaches it, or after DeferCheckpoints by whoever
  // `wal_frames` tells.
  static constexpr int kWalCheckpointFrames = 64;
  // Commits on this connection no longer checkpoint the WAL (with a store
  // on a disk: two fsyncs, milliseconds every few dozen commits, paid by
  // whoever committed: a held exec's start or end). `wal_frames` is told
  // the WAL's length after each commit (on the committing thread), for
  // another connection to checkpoint it (Checkpoint). An empty function
  // gives the checkpoints back to the commits (before its callee goes).
  void DeferCheckpoints(std::function<void(int frames)> wal_frames);
  // Copies what the WAL holds into the database as far as readers allow,
  // waiting for no one (SQLITE_CHECKPOINT_PASSIVE).
  Result<void> Checkpoint();
  // Both have the same file open.
  bool SameFileAs(const Store& other) const { return dev_ == other.dev_ && ino_ == other.ino_; }

  // An error if the store's path no longer names the file opened (moved,
  // removed or replaced since): what a long-lived writer (a held sandbox's
  // supervisor) would append there no reader of the path would see.
  // Thread-safe (reads nothing the writer changes).
  Result<void> StillAt() const;

 private:
  struct Close {
    void operator()(sqlite3* db) const;
  };
  Result<void> Init(bool create);
  Result<void> Trim();
  Result<int64_t> Bytes();
  std::string path_;
  dev_t dev_ = 0;  // the file opened (StillAt)
  ino_t ino_ = 0;
  int64_t bound_ = 0;
  // Appended since the size was last measured (about: text and 128 bytes
  // an event). Large at first: the first append measures.
  int64_t unchecked_bytes_ = INT64_MAX / 128;
  int64_t trim_until_ = 0;  // a trim under way removes the events before this seq; 0: none
  // DeferCheckpoints' callback: on the heap (the store moves), and
  // declared before db_ so that it outlives the connection that calls it.
  std::unique_ptr<std::function<void(int)>> wal_frames_;
  std::unique_ptr<sqlite3, Close> db_;
  struct Finalize {
    void operator()(sqlite3_stmt* s) const;
  };
  std::unique_ptr<sqlite3_stmt, Finalize> insert_;  // Append's, prepared at its first use; finalized before db_ closes
};

// WARD_AUDIT_DB if set; else /var/lib/ward/audit.db for root;
// $XDG_STATE_HOME/ward/audit.db or $HOME/.local/state/ward/audit.db for
// others. An error if none can be named.
Result<std::string> DefaultPath();

// `chosen` (a store named by --db, or recorded for a held sandbox), else
// DefaultPath().
Result<std::string> PathOrDefault(const std::string& chosen);

// `s` with every byte that could act on a terminal or break a line-based
// reader (controls, DEL, invalid UTF-8) written as \xNN, and backslash as \\.
std::string EscapeForTerminal(const std::string& s);

// "2026-12-04T03:19:45.123Z"
std::string FormatTime(int64_t time_ns);

}  // namespace ward::audit
