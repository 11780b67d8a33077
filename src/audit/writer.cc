#include "audit/writer.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <system_error>
#include <utility>

namespace ward::audit {

namespace {

// About what an event holds: its summary repeats its path and argv, and its
// detail holds them again.
size_t Bytes(const Event& e) { return 2 * e.summary.size() + 256; }

// What is left until `deadline`, in ms, at least 1 (a store's busy wait).
int MsLeft(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::max<int64_t>(1, left.count()));
}

}  // namespace

EventWriter::EventWriter(Store* store) : store_(store) {}

EventWriter::~EventWriter() { (void)Finish(); }

void EventWriter::CheckpointOffThread() {
  store_->DeferCheckpoints([this](int frames) {
    if (frames < Store::kWalCheckpointFrames) return;
    std::lock_guard lock(mu_);
    checkpoint_due_ = true;
    cv_.notify_one();
  });
}

void EventWriter::Checkpoint() {
  // Its own connection: in WAL mode a checkpoint and an append go on side
  // by side, so neither waits for the other's append lock. Opened once, and
  // only on the file store_ has open (not whatever its path names now).
  if (!checkpointer_ && !checkpointer_failed_) {
    auto own = Store::OpenExisting(store_->path());
    if (own && own->SameFileAs(*store_)) checkpointer_.emplace(std::move(*own));
    else checkpointer_failed_ = true;
  }
  if (checkpointer_) {
    if (checkpointer_->Checkpoint()) ++checkpoints_;
    return;
  }
  // Else on the writer's connection, between two appends. (A checkpoint
  // that fails is tried again at the next one due: the WAL only grows
  // meanwhile.)
  std::lock_guard append(append_mu_);
  if (store_->Checkpoint()) ++checkpoints_;
}

bool EventWriter::Post(Event e, bool essential) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    // A sandbox that floods long paths while the store is locked must not
    // grow ward without bound. (Essential events are a few per command:
    // bounded by the commands ward is asked to run, not by the sandbox.)
    const size_t bytes = Bytes(e);
    if (!essential && (queue_.size() >= kMaxQueued || queued_bytes_ + bytes > kMaxQueuedBytes)) {
      if (dropped_++ == 0) dropped_template_ = std::move(e);
      return false;
    }
    const bool was_empty = queue_.empty();
    queued_bytes_ += bytes;
    queue_.push_back({std::move(e), essential});
    ++posted_;
    // Started at the first event, not before: the sandbox is cloned from
    // this process before anything is posted, and clone() copies only the
    // calling thread (a lock held by another would stay held in the child).
    if (!thread_.joinable()) {
      try {
        thread_ = std::thread([this] { Loop(); });
      } catch (const std::system_error&) {
        queue_.pop_back();
        --posted_;
        ++dropped_;
        if (error_) error_ = Error::Setup("could not start the audit writer thread; events lost");
        return false;
      }
    }
    // The writer sleeps between batches; only the first event of one
    // wakes it (a wake-up per event would cost the sandbox a context switch
    // on each of its executions).
    if (!was_empty) return true;
  }
  cv_.notify_one();
  return true;
}

void EventWriter::Loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    // A count of dropped events is work too: a burst dropped while the
    // whole queue was in flight left the queue empty, and its count was
    // never written (written + dropped fell short of posted).
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty() || dropped_ > 0 || checkpoint_due_; });
    if (checkpoint_due_) {
      checkpoint_due_ = false;
      lock.unlock();
      Checkpoint();
      lock.lock();
      continue;
    }
    if (queue_.empty() && dropped_ == 0 && stopping_) return;
    // A batch: what arrives within kBatchMs of its first event is written
    // in the same transaction (unless someone waits for it: Flush).
    if (!stopping_ && !flushing_) {
      cv_.wait_for(lock, std::chrono::milliseconds(kBatchMs), [this] { return stopping_ || flushing_; });
    }
    bool written;
    {
      lock.unlock();
      std::lock_guard append(append_mu_);
      lock.lock();
      written = WriteQueued(lock, -1);
    }
    if (written) {
      // The store's bound, in steps: a WriteNow or Flush waiting for the
      // append lock gets it between two (a whole trim of a large store
      // took seconds and refused held execs meanwhile).
      lock.unlock();
      for (;;) {
        std::unique_lock append(append_mu_);
        auto more = store_->TrimStep(Store::kTrimStepRows);
        append.unlock();
        if (!more || !*more) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      lock.lock();
      continue;
    }
    if (stopping_ && gave_up_) return;
    if (!stopping_) cv_.wait_for(lock, std::chrono::milliseconds(kRetryMs), [this] { return stopping_; });
  }
}

bool EventWriter::WriteQueued(std::unique_lock<std::mutex>& lock, int busy_ms) {
  if (queue_.empty() && dropped_ == 0) return true;
  std::vector<Event> batch;
  std::vector<bool> essential;
  batch.reserve(queue_.size() + 1);
  essential.reserve(queue_.size());
  for (Queued& q : queue_) {
    batch.push_back(std::move(q.event));
    essential.push_back(q.essential);
  }
  const uint64_t taken = queue_.size();
  queue_.clear();
  // Still counted in queued_bytes_ until written: a refused batch comes back.
  size_t batch_bytes = 0;
  for (const Event& e : batch) batch_bytes += Bytes(e);
  const uint64_t dropped_now = dropped_;
  if (dropped_ > 0) {
    // Where the gap is: after the batch that was queued before it.
    Event d = dropped_template_;
    d.kind = "dropped";
    d.decision.clear();
    d.summary = std::to_string(dropped_) + " events not recorded (more than " + std::to_string(kMaxQueued) +
                " events or " + std::to_string(kMaxQueuedBytes >> 20) + " MiB waited to be written)";
    d.detail = {{"count", dropped_}};
    batch.push_back(std::move(d));
    dropped_ = 0;
  }
  lock.unlock();
  // Not trimmed here: the writer thread trims in steps (Loop).
  Result<void> r = store_->Append(batch, busy_ms, false);
  lock.lock();
  if (r) {
    failing_ = false;
    queued_bytes_ -= std::min(queued_bytes_, batch_bytes);
    done_ += taken;
    done_cv_.notify_all();
    return true;
  }
  // The store refused (locked, full): the batch is kept and tried again,
  // so that a store that recovers loses nothing. Once stopping, one more
  // try; then what is left is lost, and Finish says how much.
  last_error_ = r.error().message;
  if (dropped_now > 0) {
    // The gap's own event goes back to being a count.
    batch.pop_back();
    dropped_ += dropped_now;
  }
  if (stopping_ && failing_) {
    lost_ += batch.size() + queue_.size() + dropped_;
    queue_.clear();
    queued_bytes_ = 0;
    done_ = posted_;
    gave_up_ = true;
    done_cv_.notify_all();
    return false;
  }
  failing_ = true;
  // Beyond kMaxQueued, the newest of the batch are counted instead, except
  // the essential ones.
  size_t excess = batch.size() + queue_.size() > kMaxQueued ? batch.size() + queue_.size() - kMaxQueued : 0;
  std::deque<Queued> back;
  for (size_t i = batch.size(); i-- > 0;) {
    if (excess > 0 && !essential[i]) {
      queued_bytes_ -= std::min(queued_bytes_, Bytes(batch[i]));
      --excess;
      ++dropped_;
      ++done_;
      continue;
    }
    back.push_front({std::move(batch[i]), essential[i]});
  }
  queue_.insert(queue_.begin(), std::make_move_iterator(back.begin()), std::make_move_iterator(back.end()));
  return false;
}

bool EventWriter::Flush(int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::unique_lock lock(mu_);
  const uint64_t target = posted_;
  if (done_ >= target || !thread_.joinable()) return done_ >= target;
  // Written here, on the caller's thread, when the store is taking events:
  // handing the batch to the writer thread and waiting for it costs two
  // wake-ups (on an idle vCPU, a good part of the transaction's own time),
  // on the path of every held exec. In queue order: the writer takes its
  // batches under the same append lock. A store that refused the last
  // batch is the writer's to retry.
  // Another writer's lock is waited for until the deadline, not the
  // store's 10 s: the caller (a supervisor's loop) must keep its word.
  if (!failing_) {
    lock.unlock();
    std::unique_lock append(append_mu_, deadline);
    lock.lock();
    if (append.owns_lock() && done_ < target && !failing_ && !WriteQueued(lock, MsLeft(deadline))) cv_.notify_one();
  }
  if (done_ >= target) return true;
  flushing_ = true;
  cv_.notify_one();
  const bool ok = done_cv_.wait_until(lock, deadline, [&] { return done_ >= target; });
  flushing_ = false;
  return ok;
}

Result<void> EventWriter::WriteNow(Event e, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::unique_lock append(append_mu_, deadline);
  if (!append.owns_lock()) {
    return Error::Setup("the audit writer was busy for " + std::to_string(timeout_ms) + " ms");
  }
  std::vector<Event> one;
  one.push_back(std::move(e));
  return store_->Append(one, MsLeft(deadline), false);
}

Result<void> EventWriter::Finish() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
  // Whoever commits on the store from now on checkpoints again (a hook of
  // CheckpointOffThread would call into this writer; without one, this
  // sets what the store had).
  store_->DeferCheckpoints(nullptr);
  checkpointer_.reset();
  std::lock_guard lock(mu_);
  if (!error_) return error_;
  if (lost_ > 0) {
    return Error::Setup(std::to_string(lost_) + " events were not recorded: " + last_error_);
  }
  return {};
}

}  // namespace ward::audit
