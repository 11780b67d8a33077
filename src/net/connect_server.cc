#include "net/connect_server.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "base/errors.h"
#include "net/connect_notify.h"
#include "net/unix_gate.h"
#include "net/workers.h"

namespace ward::net {
namespace {

// A workload can connect forever; what it did first is kept, the rest
// counted.
constexpr size_t kMaxEvents = 4096;

class Server final : public ConnectServer, public ConnectNotifyHooks {
 public:
  Server(UniqueFd notify, std::shared_ptr<UnixGate> gate, CallObservers observers,
         std::function<void(const EgressEvent&)> on_event)
      : notify_(std::move(notify)), gate_(std::move(gate)), observers_(std::move(observers)), on_event_(std::move(on_event)) {}
  ~Server() override { Stop(); }

  Result<void> Begin(uint64_t netns) {
    stop_.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!stop_.valid()) return SysError("eventfd", "connect server stop");
    try {
      thread_ = std::thread([this, netns] {
        ServeConnectNotifications(notify_.get(), stop_.get(), SandboxNetwork{netns, -1, -1}, kConnectTimeoutMs, *this,
                                  *gate_, observers_);
      });
    } catch (const std::system_error& e) {
      return Error::Setup(std::string("connect server: starting its thread: ") + e.what());
    }
    return {};
  }

  void Stop() override {
    std::lock_guard lock(stop_mu_);
    if (stopped_) return;
    stopped_ = true;
    uint64_t one = 1;
    if (stop_.valid()) (void)write(stop_.get(), &one, sizeof one);
    if (thread_.joinable()) thread_.join();
    workers_.CloseAndJoin();
  }

  std::vector<EgressEvent> TakeEvents() override {
    std::lock_guard lock(events_mu_);
    return std::exchange(events_, {});
  }
  uint64_t DroppedEvents() override {
    std::lock_guard lock(events_mu_);
    return dropped_;
  }

 private:
  static constexpr int kConnectTimeoutMs = 10000;  // unused: nothing is connected directly

  std::optional<DirectPlan> PlanDirect(const IpAddress&, uint16_t) override { return std::nullopt; }
  std::optional<EgressEvent> RefuseAtConnect(const IpAddress&, uint16_t) override { return std::nullopt; }
  // Outside egress mode the program's socket connects as asked: no proxy, no server first.
  std::optional<EgressEvent> ConnectServerFirst(const IpAddress&, uint16_t) override { return std::nullopt; }
  void LeaveServerConnection(const IpAddress&, uint16_t, UniqueFd) override {}
  void RecordEvent(EgressEvent e) override {
    if (on_event_) on_event_(e);
    std::lock_guard lock(events_mu_);
    if (events_.size() < kMaxEvents) {
      events_.push_back(std::move(e));
    } else {
      ++dropped_;
    }
  }
  bool SpawnWorker(std::function<void()> fn) override {
    workers_.Reap();
    return workers_.Spawn(std::move(fn));
  }

  UniqueFd notify_;
  std::shared_ptr<UnixGate> gate_;
  CallObservers observers_;
  std::function<void(const EgressEvent&)> on_event_;
  UniqueFd stop_;
  std::thread thread_;
  Workers workers_;
  std::mutex stop_mu_;
  bool stopped_ = false;
  std::mutex events_mu_;
  std::vector<EgressEvent> events_;
  uint64_t dropped_ = 0;
};

}  // namespace

Result<std::unique_ptr<ConnectServer>> ConnectServer::Start(UniqueFd notify, uint64_t netns,
                                                            std::shared_ptr<UnixGate> gate,
                                                            CallObservers observers,
                                                            std::function<void(const EgressEvent&)> on_event) {
  auto server = std::make_unique<Server>(std::move(notify), std::move(gate), std::move(observers), std::move(on_event));
  auto begun = server->Begin(netns);
  if (!begun) return begun.error();
  return std::unique_ptr<ConnectServer>(std::move(server));
}

}  // namespace ward::net
