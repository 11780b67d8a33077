// Events written as they happen, off the thread that produces them: the
// supervisor's notification thread must answer the sandbox's next call,
// not wait for SQLite. A thread of its own appends what was posted, in
// batches (one transaction each), so that `ward audit --follow` sees an
// exec within milliseconds and a kill -9 of ward loses at most the batch
// in flight.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "audit/store.h"
#include "ward/result.h"

namespace ward::audit {

class EventWriter {
 public:
  // Writes to `store`, which must outlive it and which nobody else uses
  // until Finish() has returned. The thread starts with the first Post.
  explicit EventWriter(Store* store);
  ~EventWriter();  // Finish(), its error dropped
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  // Queues `e` (thread-safe; never waits for the store). Beyond kMaxQueued
  // waiting events (or about kMaxQueuedBytes) it is counted instead; the count is recorded as a
  // "dropped" event when the queue has room again.
  // Returns false if `e` was counted instead of queued. An `essential`
  // event (an exec's end, its limits: a few per command ward is asked to
  // run) is queued past those bounds and never counted instead.
  bool Post(Event e, bool essential = false);

  // Writes `e` now, in a transaction of its own, on the caller's thread:
  // an error unless it is in the store within `timeout_ms` (another append
  // of this writer, another process's lock). What is queued stays queued.
  // A held exec's start: proof that this very event was written, which a
  // flush (counting events written or given up on) does not give.
  Result<void> WriteNow(Event e, int timeout_ms);

  // Writes what was posted before the call (on the caller's thread, unless
  // the writer thread is appending or retrying a refused batch: then waits
  // for it), at most `timeout_ms`: false if it is not written by then. A
  // held sandbox's supervisor flushes before it tells `ward exec` its
  // command ended, so that the command's exec events are in the store by
  // the time its caller can look.
  bool Flush(int timeout_ms);

  // From now on, until Finish, the store's WAL is checkpointed on the
  // writer thread, on a connection of its own, once it holds
  // Store::kWalCheckpointFrames pages: not in the commit of whoever
  // appended (WriteNow and Flush run on the path of a held exec; a
  // checkpoint of a store on a disk takes milliseconds). Called before
  // anything is posted or written.
  void CheckpointOffThread();
  // The checkpoints the writer thread has made since CheckpointOffThread
  // (tests, diagnostics).
  uint64_t checkpoints() const { return checkpoints_.load(); }

  // Writes what is queued, stops the thread. An append the store refuses is
  // tried again every kRetryMs while running, and once more at the end;
  // the error says how many events were then lost, and why.
  Result<void> Finish();

  static constexpr size_t kMaxQueued = 1 << 16;
  static constexpr size_t kMaxQueuedBytes = size_t{64} << 20;  // about: 2x the summary + 256 per event
  // How long the writer gathers events after the first of a batch: what
  // `ward audit --follow` may lag behind the sandbox.
  static constexpr int kBatchMs = 20;
  // How long a batch the store refused waits before it is tried again.
  static constexpr int kRetryMs = 200;

 private:
  void Loop();
  // Appends what is queued (and the count of what was dropped), with mu_
  // held on entry and exit (released around the append) and append_mu_
  // held throughout. False if the store refused it (queued again, or given
  // up on once stopping: gave_up_).
  // `busy_ms`: as Store::Append's. Never trims (the writer thread trims in
  // steps, Loop).
  bool WriteQueued(std::unique_lock<std::mutex>& lock, int busy_ms);
  // The checkpoint CheckpointOffThread asks for, on the writer thread.
  void Checkpoint();
  Store* store_;
  std::optional<Store> checkpointer_;  // the writer thread's own connection (CheckpointOffThread)
  bool checkpointer_failed_ = false;   // it could not be opened: checkpoints go on store_'s
  bool checkpoint_due_ = false;
  std::atomic<uint64_t> checkpoints_{0};
  std::timed_mutex append_mu_;  // one append at a time, batches in queue order; taken before mu_
  std::mutex mu_;
  std::condition_variable cv_;
  struct Queued {
    Event event;
    bool essential;  // Post's
  };
  std::deque<Queued> queue_;
  size_t queued_bytes_ = 0;
  uint64_t dropped_ = 0;
  Event dropped_template_;  // identity of the last event dropped (agent, sandbox)
  bool stopping_ = false;
  uint64_t posted_ = 0, done_ = 0;  // events queued so far; events written or given up on
  bool flushing_ = false;           // someone waits in Flush: no batching pause
  bool failing_ = false;            // the store refused the last batch
  bool gave_up_ = false;            // stopping, and the store refused twice: the rest was lost
  std::condition_variable done_cv_;
  Result<void> error_;       // the writer thread could not start
  uint64_t lost_ = 0;        // events given up on at the end
  std::string last_error_;   // why the store refused the last time
  std::thread thread_;
};

}  // namespace ward::audit
