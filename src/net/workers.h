// Threads that serve one job each (a connection, a forwarded question, a
// connect() made for the sandbox). Finished ones are joined as new ones
// start; CloseAndJoin refuses new ones and joins the rest.
#pragma once

#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

namespace ward::net {

class Workers {
 public:
  // Runs `fn` on a new thread (never a reused one: a job may change its
  // thread's credentials). False if closing or the thread could not be
  // created; `fn` (and what it owns) is destroyed then.
  template <typename F>
  bool Spawn(F fn) {
    std::lock_guard lock(mu_);
    if (closed_) return false;
    auto done = std::make_shared<std::atomic<bool>>(false);
    try {
      std::thread t([done, f = std::move(fn)]() mutable {
        f();
        done->store(true);
      });
      list_.push_back(Worker{std::move(t), std::move(done)});
    } catch (const std::system_error&) {
      return false;
    }
    return true;
  }

  // Joins the finished threads; returns how many still run.
  size_t Reap() {
    std::lock_guard lock(mu_);
    for (auto it = list_.begin(); it != list_.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = list_.erase(it);
      } else {
        ++it;
      }
    }
    return list_.size();
  }

  void CloseAndJoin() {
    std::list<Worker> all;
    {
      std::lock_guard lock(mu_);
      closed_ = true;
      all.swap(list_);
    }
    for (Worker& w : all) w.thread.join();
  }

 private:
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::mutex mu_;
  std::list<Worker> list_;
  bool closed_ = false;
};

}  // namespace ward::net
