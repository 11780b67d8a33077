// The audit store: filters, stable agent ids, crash survival, a torn WAL
// tail, damaged and newer stores, untrusted fields.
#include "audit/store.h"
#include "audit/writer.h"
#include "audit/ocsf.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <thread>
#include <sqlite3.h>

#include <filesystem>

namespace ward::audit {
namespace {

class AuditStore : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ward-audit-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/state/ward/audit.db";
  }
  void TearDown() override { ASSERT_EQ(std::system(("rm -rf '" + dir_ + "'").c_str()), 0); }

  static Event Make(const std::string& agent, const std::string& sandbox, const std::string& kind,
                    const std::string& decision, int64_t t) {
    Event e;
    e.time_ns = t;
    e.agent = agent;
    e.agent_id = "id-" + agent;
    e.sandbox = sandbox;
    e.kind = kind;
    e.decision = decision;
    e.summary = kind + " of " + sandbox;
    e.detail = {{"n", t}};
    return e;
  }

  size_t Count(Store& s, Query q = {}) {
    auto found = s.Find(q);
    EXPECT_TRUE(found) << (found ? "" : found.error().message);
    return found ? found->size() : 0;
  }

  std::string dir_, path_;
};

TEST_F(AuditStore, MadeWithItsDirectoryPrivate) {
  auto s = Store::Open(path_);
  ASSERT_TRUE(s) << s.error().message;
  struct stat st;
  ASSERT_EQ(stat((dir_ + "/state/ward").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(Count(*s), 0u);
}

TEST_F(AuditStore, FiltersByAgentSandboxKindDecisionAndTime) {
  auto s = Store::Open(path_);
  ASSERT_TRUE(s) << s.error().message;
  std::vector<Event> ev = {Make("a", "s1", "start", "", 100), Make("a", "s1", "egress", "deny", 200),
                           Make("a", "s1", "egress", "allow", 300), Make("b", "s2", "start", "", 400),
                           Make("b", "s2", "exit", "", 500)};
  ASSERT_TRUE(s->Append(ev));
  EXPECT_EQ(ev[0].seq + 4, ev[4].seq);
  EXPECT_EQ(Count(*s), 5u);
  EXPECT_EQ(Count(*s, {.agent = "a"}), 3u);
  EXPECT_EQ(Count(*s, {.sandbox = "s2"}), 2u);
  EXPECT_EQ(Count(*s, {.kind = "egress"}), 2u);
  EXPECT_EQ(Count(*s, {.decision = "deny"}), 1u);
  EXPECT_EQ(Count(*s, {.agent = "b", .kind = "start"}), 1u);
  EXPECT_EQ(Count(*s, {.agent = "nobody"}), 0u);
  EXPECT_EQ(Count(*s, {.since_ns = 200, .until_ns = 400}), 2u);
  EXPECT_EQ(Count(*s, {.after_seq = ev[2].seq}), 2u);
  auto newest = s->Find({.limit = 2});
  ASSERT_TRUE(newest);
  ASSERT_EQ(newest->size(), 2u);
  EXPECT_EQ((*newest)[0].kind, "start");  // oldest first
  EXPECT_EQ((*newest)[1].kind, "exit");
  EXPECT_EQ((*newest)[1].detail.value("n", 0), 500);
}

TEST_F(AuditStore, AgentIdsAreStableAndDistinct) {
  std::string a1, b1;
  {
    auto s = Store::Open(path_);
    ASSERT_TRUE(s) << s.error().message;
    auto a = s->AgentId("code-reviewer");
    auto b = s->AgentId("other");
    ASSERT_TRUE(a && b);
    a1 = *a;
    b1 = *b;
  }
  auto s = Store::Open(path_);
  ASSERT_TRUE(s) << s.error().message;
  auto a = s->AgentId("code-reviewer");
  ASSERT_TRUE(a);
  EXPECT_EQ(*a, a1);
  EXPECT_NE(a1, b1);
  EXPECT_EQ(a1.size(), 16u);
}

// What Append reported as written is there after kill -9 of the writer.
TEST_F(AuditStore, EventsSurviveKillOfTheWriter) {
  ASSERT_TRUE(Store::Open(path_));
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(p[0]);
    auto s = Store::Open(path_);
    if (!s) _exit(1);
    for (int i = 1;; ++i) {
      std::vector<Event> one = {Make("w", "s", "egress", "deny", i)};
      if (!s->Append(one)) _exit(2);
      if (write(p[1], "x", 1) != 1) _exit(3);  // reported as written
    }
  }
  close(p[1]);
  char buf[64];
  size_t acked = 0;
  while (acked < 200) {
    ssize_t n = read(p[0], buf, sizeof buf);
    ASSERT_GT(n, 0);
    acked += static_cast<size_t>(n);
  }
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  close(p[0]);
  ASSERT_TRUE(WIFSIGNALED(status));
  auto s = Store::Open(path_);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_GE(Count(*s, {.agent = "w"}), acked);
}

// A write torn at the WAL's end: the transactions before it are read, the
// reader does not fail, and the store takes new events.
TEST_F(AuditStore, TornWalTailIsSkipped) {
  {
    auto s = Store::Open(path_);
    ASSERT_TRUE(s) << s.error().message;
    for (int i = 1; i <= 10; ++i) {
      std::vector<Event> one = {Make("t", "s", "start", "", i)};
      ASSERT_TRUE(s->Append(one));
    }
  }
  const std::string wal = path_ + "-wal";
  struct stat st;
  ASSERT_EQ(stat(wal.c_str(), &st), 0) << "the WAL is kept after close";
  ASSERT_GT(st.st_size, 1000);
  ASSERT_EQ(truncate(wal.c_str(), st.st_size - 100), 0);
  int fd = open(wal.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "garbage after a torn frame", 26), 26);
  close(fd);
  auto s = Store::Open(path_);
  ASSERT_TRUE(s) << s.error().message;
  auto found = s->Find({});
  ASSERT_TRUE(found) << found.error().message;
  ASSERT_GE(found->size(), 9u);
  ASSERT_LE(found->size(), 10u);
  for (size_t i = 0; i < found->size(); ++i) EXPECT_EQ((*found)[i].detail.value("n", 0), static_cast<int>(i + 1));
  std::vector<Event> more = {Make("t", "s", "exit", "", 11)};
  ASSERT_TRUE(s->Append(more)) << "the store takes new events after recovery";
  EXPECT_EQ(Count(*s, {.kind = "exit"}), 1u);
}

// Past its bound the store drops its oldest events, says so in a "trim"
// event, and stops growing; the newest are all kept.
TEST_F(AuditStore, BoundedBySize) {
  auto s = Store::Open(path_);
  ASSERT_TRUE(s) << s.error().message;
  s->SetBound(1 << 20);
  const std::string big(2000, 'b');
  int64_t last = 0;
  for (int round = 0; round < 30; ++round) {
    std::vector<Event> batch;
    for (int i = 0; i < 100; ++i) {
      Event e = Make("big", "s", "egress", "deny", round * 100 + i);
      e.summary = big;
      batch.push_back(std::move(e));
    }
    ASSERT_TRUE(s->Append(batch));
    last = batch.back().seq;
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
  sqlite3_close(db);
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_LT(st.st_size, 2 << 20) << "6 MB of events went into a 1 MiB store";
  auto trims = s->Find({.kind = "trim"});
  ASSERT_TRUE(trims);
  ASSERT_FALSE(trims->empty());
  EXPECT_GT((*trims)[0].detail.value("removed", 0), 0);
  auto newest = s->Find({.agent = "big", .limit = 100});
  ASSERT_TRUE(newest);
  ASSERT_EQ(newest->size(), 100u);
  EXPECT_EQ(newest->back().seq, last);
  auto all = s->Find({.agent = "big"});
  ASSERT_TRUE(all);
  EXPECT_LT(all->size(), 3000u);
  EXPECT_GT(all->front().seq, 1) << "the oldest went first";
}

TEST_F(AuditStore, NotADatabaseIsAnErrorNamingIt) {
  ASSERT_TRUE(Store::Open(path_));
  for (const char* f : {"", "-wal", "-shm"}) unlink((path_ + f).c_str());
  int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  std::string junk(8192, 'j');
  ASSERT_EQ(write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
  close(fd);
  auto s = Store::Open(path_);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find(path_), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("not a database"), std::string::npos) << s.error().message;
}

TEST_F(AuditStore, NewerSchemaIsRefused) {
  {
    auto s = Store::Open(path_);
    ASSERT_TRUE(s);
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 3", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto s = Store::Open(path_);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("newer ward"), std::string::npos) << s.error().message;
}

// Each agent's host uid (root callers): the lowest free one above BASE,
// stable for the name, another for another agent, a new one when the range
// moved; an error when the range is full.
TEST_F(AuditStore, AgentHostUidsAreStableDistinctAndBounded) {
  auto s = Store::Open(path_);
  ASSERT_TRUE(s) << s.error().message;
  auto a = s->AgentHostUid("a", 5000, 3);
  auto b = s->AgentHostUid("b", 5000, 3);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, 5001u);
  EXPECT_EQ(*b, 5002u);
  EXPECT_EQ(*s->AgentHostUid("a", 5000, 3), 5001u);
  auto c = s->AgentHostUid("c", 5000, 3);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("every uid is an agent's"), std::string::npos) << c.error().message;
  // The range moved: a new uid in it, recorded.
  EXPECT_EQ(*s->AgentHostUid("a", 9000, 10), 9001u);
  EXPECT_EQ(*s->AgentHostUid("a", 9000, 10), 9001u);
  EXPECT_EQ(*s->AgentHostUid("b", 9000, 10), 9002u);
}

// A store of schema version 1 (before agent_uids) is brought up to 2 when
// opened, its events kept.
TEST_F(AuditStore, VersionOneStoreIsUpgraded) {
  {
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE agents(name TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE, created_ns INTEGER NOT NULL);"
                           "CREATE TABLE events(seq INTEGER PRIMARY KEY AUTOINCREMENT, time_ns INTEGER NOT NULL, "
                           "agent TEXT NOT NULL, agent_id TEXT NOT NULL, sandbox TEXT NOT NULL, kind TEXT NOT NULL, "
                           "decision TEXT NOT NULL, summary TEXT NOT NULL, detail TEXT NOT NULL);"
                           "INSERT INTO events VALUES(1, 5, 'old', 'x', 's', 'start', '', 'before', '{}');"
                           "PRAGMA user_version = 1;",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  auto s = Store::Open(path_);
  ASSERT_TRUE(s) << s.error().message;
  auto uid = s->AgentHostUid("old", 7000, 100);
  ASSERT_TRUE(uid) << uid.error().message;
  EXPECT_EQ(*uid, 7001u);
  Query q;
  q.agent = "old";
  auto found = s->Find(q);
  ASSERT_TRUE(found);
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ(found->front().summary, "before");
}

// The writer: what was posted before Flush is in the store when it
// returns (another connection reads it); Finish writes the rest.
TEST_F(AuditStore, WriterFlushMakesPostedEventsReadable) {
  auto s = Store::Open(path_);
  ASSERT_TRUE(s) << s.error().message;
  auto reader = Store::OpenExisting(path_);
  ASSERT_TRUE(reader) << reader.error().message;
  Query q;
  q.agent = "w";
  {
    EventWriter w(&*s);
    Event e;
    e.time_ns = 1;
    e.agent = "w";
    e.agent_id = "x";
    e.sandbox = "s";
    e.kind = "exec";
    w.Post(e);
    ASSERT_TRUE(w.Flush(5000));
    auto found = reader->Find(q);
    ASSERT_TRUE(found);
    EXPECT_EQ(found->size(), 1u);
    w.Post(e);
    ASSERT_TRUE(w.Finish());
  }
  auto found = reader->Find(q);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->size(), 2u);
}

// A held supervisor's writer checkpoints the WAL on its own thread and
// connection (CheckpointOffThread), so that an exec's start and end
// (WriteNow, Flush) never pay a checkpoint's fsyncs. Control: with
// checkpoints deferred and nobody to make them, the commits themselves make
// none, and the WAL grows with each; with the writer's, it stays about at
// its size limit (1 MiB).
TEST_F(AuditStore, WalIsCheckpointedOffTheCommittingThread) {
  auto wal_bytes = [](const std::string& db) {
    struct stat st{};
    return stat((db + "-wal").c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
  };
  // Paced as execs are: every 50 commits (more than kWalCheckpointFrames
  // pages) a pause, in which the writer thread's checkpoint ends; the WAL
  // restarts at the next commit only after a checkpoint that saw no commit
  // come in meanwhile. With `made` counting them, each pause waits (up to
  // 3 s, for a loaded machine) for one more checkpoint than at its start:
  // counting to k is not enough, checkpoints made while commits went on
  // leave frames behind. (One that ended just before the pause leaves
  // nothing due: that pause waits its 3 s, and the WAL was backfilled.)
  auto commit_600 = [&](EventWriter& w, const std::function<uint64_t()>& made) {
    for (int i = 0; i < 600; ++i) {
      auto written = w.WriteNow(Make("a", "s", "start", "", i), 5000);
      ASSERT_TRUE(written) << written.error().message;
      if (i % 50 != 49) continue;
      if (!made) {
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        continue;
      }
      const uint64_t before = made();
      for (int waited = 0; waited < 3000 && made() == before; waited += 5) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
  };
  const std::string nobody = dir_ + "/nobody/audit.db";
  {
    auto s = Store::Open(nobody);
    ASSERT_TRUE(s) << s.error().message;
    EventWriter w(&*s);
    s->DeferCheckpoints([](int) {});
    commit_600(w, nullptr);
    EXPECT_GT(wal_bytes(nobody), 600 * 4096) << "a commit checkpointed";
    ASSERT_TRUE(w.Finish());
  }
  {
    auto s = Store::Open(path_);
    ASSERT_TRUE(s) << s.error().message;
    EventWriter w(&*s);
    w.CheckpointOffThread();
    w.Post(Make("a", "s", "exec", "", 0));  // the writer thread starts with the first event
    commit_600(w, [&] { return w.checkpoints(); });
    EXPECT_GE(w.checkpoints(), 12u) << "one at least in each pause";
    EXPECT_LT(wal_bytes(path_), 3 * (1 << 20) / 2) << "the writer thread's checkpoints did not keep the WAL short";
    ASSERT_TRUE(w.Finish());
    Query q;
    q.agent = "a";
    EXPECT_EQ(Count(*s, q), 601u);
  }
}

// While the store is locked, the writer holds at most about
// kMaxQueuedBytes of events (a sandbox flooding long paths cannot grow ward
// without bound); the rest is counted in one "dropped" event.
TEST_F(AuditStore, WriterQueueIsBoundedInBytes) {
  auto s = Store::Open(path_);
  ASSERT_TRUE(s) << s.error().message;
  sqlite3* lock = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &lock), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(lock, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  const int posted = 100;
  {
    EventWriter w(&*s);
    Event e = Make("big", "s", "file", "deny", 1);
    e.summary.assign(1 << 20, 'x');
    for (int i = 0; i < posted; ++i) w.Post(e);
    EXPECT_FALSE(w.Flush(300)) << "the store is locked";
    ASSERT_EQ(sqlite3_exec(lock, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
    ASSERT_TRUE(w.Finish());
  }
  sqlite3_close(lock);
  Query q;
  q.agent = "big";
  auto found = s->Find(q);
  ASSERT_TRUE(found);
  int written = 0;
  uint64_t dropped = 0;
  for (const Event& e : *found) {
    if (e.kind == "file") ++written;
    if (e.kind == "dropped") dropped += e.detail["count"].get<uint64_t>();
  }
  const int most = static_cast<int>(EventWriter::kMaxQueuedBytes / (2 << 20)) + 1;
  EXPECT_GT(written, 0);
  EXPECT_LE(written, most) << "about 64 MiB of 2 MiB events";
  EXPECT_GT(dropped, 0u) << "the rest counted in a dropped event";
  // Every event written or counted: a burst dropped while the writer had
  // the whole queue in flight once left its count unwritten (the writer
  // ended on an empty queue with a count pending).
  EXPECT_EQ(written + static_cast<int>(dropped), posted);
}

// A held exec's start must be proven written before the command runs: a
// flush counts events written or given up on, and a flood that overflows
// the queue while the store is locked once let a start be given up on and
// the exec through (red-team finding). WriteNow writes that very event or
// fails within its deadline; essential events (an exec's end) are never
// counted instead of queued, whatever the flood.
TEST_F(AuditStore, StartIsWrittenOrRefusedAndEndsSurviveAFlood) {
  auto s = Store::Open(path_);
  ASSERT_TRUE(s) << s.error().message;
  sqlite3* lock = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &lock), SQLITE_OK);
  {
    EventWriter w(&*s);
    ASSERT_TRUE(w.WriteNow(Make("a", "s", "start", "", 1), 2000)) << "control: the store is free";
    ASSERT_EQ(sqlite3_exec(lock, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
    // More than the writer can have in flight (the batch it took) plus a full queue.
    const size_t flood = 2 * EventWriter::kMaxQueued + 1000;
    for (size_t i = 0; i < flood; ++i) w.Post(Make("a", "s", "egress", "deny", 2));
    EXPECT_FALSE(w.Post(Make("a", "s", "egress", "deny", 3))) << "the queue is full: counted instead";
    EXPECT_TRUE(w.Post(Make("a", "s", "exit", "", 4), true)) << "an essential event is queued all the same";
    const auto t0 = std::chrono::steady_clock::now();
    auto refused = w.WriteNow(Make("a", "s", "start", "", 5), 300);
    const auto waited = std::chrono::steady_clock::now() - t0;
    EXPECT_FALSE(refused) << "the store is locked: not written, and said";
    EXPECT_LT(waited, std::chrono::milliseconds(2000)) << "within its deadline, not SQLite's 10 s";
    EXPECT_FALSE(w.Flush(300)) << "the store is locked";
    ASSERT_EQ(sqlite3_exec(lock, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
    ASSERT_TRUE(w.Finish());
  }
  sqlite3_close(lock);
  auto starts = s->Find({.kind = "start"});
  ASSERT_TRUE(starts);
  ASSERT_EQ(starts->size(), 1u) << "the refused start was never written";
  EXPECT_EQ((*starts)[0].time_ns, 1);
  auto exits = s->Find({.kind = "exit"});
  ASSERT_TRUE(exits);
  ASSERT_EQ(exits->size(), 1u) << "the essential end survived the flood";
  auto dropped = s->Find({.kind = "dropped"});
  ASSERT_TRUE(dropped);
  EXPECT_FALSE(dropped->empty()) << "the flood's overflow is counted";
}

TEST_F(AuditStore, OpenExistingDoesNotCreate) {
  auto s = Store::OpenExisting(path_);
  ASSERT_FALSE(s);
  struct stat st;
  EXPECT_NE(stat(path_.c_str(), &st), 0);
}

// Fields from the sandbox are data: they neither change the query nor add
// events, and they come back byte for byte.
TEST_F(AuditStore, HostileFieldsAreStoredAsData) {
  auto s = Store::Open(path_);
  ASSERT_TRUE(s);
  const std::string evil = "x'); DELETE FROM events; --\n\x1b[2Jforged\tline\xff";
  Event e = Make(evil, evil, "start", "", 1);
  e.summary = evil;
  e.detail = {{"argv", {evil}}};
  std::vector<Event> one = {e};
  ASSERT_TRUE(s->Append(one));
  std::vector<Event> two = {Make("a", "s", "exit", "", 2)};
  ASSERT_TRUE(s->Append(two));
  auto found = s->Find({.agent = evil});
  ASSERT_TRUE(found);
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].summary, evil);
  EXPECT_EQ(Count(*s), 2u);
}

TEST(EscapeForTerminal, ControlsAndInvalidBytesAreShown) {
  EXPECT_EQ(EscapeForTerminal("plain text"), "plain text");
  EXPECT_EQ(EscapeForTerminal("a\x1b[2Jb\n"), "a\\x1b[2Jb\\x0a");
  EXPECT_EQ(EscapeForTerminal("back\\slash"), "back\\\\slash");
  EXPECT_EQ(EscapeForTerminal("caf\xc3\xa9"), "caf\xc3\xa9");        // UTF-8 passes
  EXPECT_EQ(EscapeForTerminal("\xff\xfe"), "\\xff\\xfe");            // invalid bytes
  EXPECT_EQ(EscapeForTerminal("\xc2\x9b" "1m"), "\\xc2\\x9b1m");     // C1 CSI
  EXPECT_EQ(EscapeForTerminal("\xe2\x82"), "\\xe2\\x82");            // truncated sequence
  EXPECT_EQ(EscapeForTerminal(std::string("nul\0x", 5)), "nul\\x00x");
  // Bidirectional controls (a path shown backwards) are escaped; other
  // punctuation of the same block passes.
  EXPECT_EQ(EscapeForTerminal("a\xe2\x80\xae" "b"), "a\\xe2\\x80\\xaeb");          // U+202E RLO
  EXPECT_EQ(EscapeForTerminal("a\xe2\x81\xa6" "b"), "a\\xe2\\x81\\xa6b");          // U+2066 LRI
  EXPECT_EQ(EscapeForTerminal("a\xe2\x80\x8f" "b"), "a\\xe2\\x80\\x8fb");          // U+200F RLM
  EXPECT_EQ(EscapeForTerminal("a\xe2\x80\x94" "b"), "a\xe2\x80\x94" "b");             // U+2014 em dash
}

// A detail of the wrong shape (a damaged or foreign store) is mapped
// without it, never a crash.
TEST(Ocsf, ToleratesAnyDetail) {
  Event e;
  e.kind = "exit";
  e.time_ns = 5000000;
  for (const char* detail : {R"("a string")", R"({"uid": "x", "exitStatus": [1], "argv": 3})", "null",
                             R"({"kind": 7, "domain": 1, "address": {}})"}) {
    e.detail = nlohmann::json::parse(detail);
    nlohmann::json o = ToOcsf(e);
    EXPECT_EQ(o["class_uid"], 1007) << detail;
    EXPECT_EQ(o["type_uid"], 100702) << detail;
    EXPECT_EQ(o["time"], 5) << detail;
  }
  e.kind = "egress";
  e.decision = "deny";
  e.detail = {{"kind", "dns"}, {"domain", "x.test"}, {"detail", "A"}};
  nlohmann::json dns = ToOcsf(e);
  EXPECT_EQ(dns["class_uid"], 4003);
  EXPECT_EQ(dns["query"]["hostname"], "x.test");
  EXPECT_EQ(dns["disposition_id"], 2);
}

TEST(FormatTime, Utc) { EXPECT_EQ(FormatTime(1796353074910000000LL), "2026-12-04T02:57:54.910Z"); }

}  // namespace
}  // namespace ward::audit
