#include "net/upstream_pool.h"

#include <algorithm>

namespace ward::net {

UpstreamPool::Key UpstreamPool::KeyOf(const IpAddress& address, uint16_t port) {
  IpAddress a = address.Unmapped();
  Key key{};
  key.first[0] = static_cast<uint8_t>(a.is_v4() ? 4 : 6);
  std::copy(a.bytes.begin(), a.bytes.end(), key.first.begin() + 1);
  key.second = port;
  return key;
}

void UpstreamPool::ExpireLocked(int64_t now_ms) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    std::vector<Entry>& list = it->second;
    auto fresh = std::find_if(list.begin(), list.end(), [&](const Entry& e) { return now_ms - e.since_ms <= kMaxAgeMs; });
    count_ -= static_cast<size_t>(fresh - list.begin());
    list.erase(list.begin(), fresh);  // oldest first: the stale ones lead
    it = list.empty() ? entries_.erase(it) : std::next(it);
  }
}

bool UpstreamPool::Put(const IpAddress& address, uint16_t port, UniqueFd socket, int64_t now_ms) {
  std::lock_guard lock(mu_);
  ExpireLocked(now_ms);
  if (count_ >= max_sockets_) return false;
  entries_[KeyOf(address, port)].push_back(Entry{std::move(socket), now_ms});
  ++count_;
  return true;
}

UniqueFd UpstreamPool::Take(const IpAddress& address, uint16_t port, int64_t now_ms) {
  std::lock_guard lock(mu_);
  ExpireLocked(now_ms);
  auto it = entries_.find(KeyOf(address, port));
  if (it == entries_.end()) return UniqueFd();
  UniqueFd out = std::move(it->second.front().socket);
  it->second.erase(it->second.begin());
  if (it->second.empty()) entries_.erase(it);
  --count_;
  return out;
}

void UpstreamPool::Expire(int64_t now_ms) {
  std::lock_guard lock(mu_);
  ExpireLocked(now_ms);
}

size_t UpstreamPool::size() {
  std::lock_guard lock(mu_);
  return count_;
}

}  // namespace ward::net
