#include "enforce/netlink.h"

#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ward {

namespace {

constexpr size_t Aligned(size_t n) { return (n + 3) & ~size_t{3}; }

}  // namespace

void NetlinkBatch::Align() { buf_.resize(Aligned(buf_.size()), 0); }

void NetlinkBatch::Begin(uint16_t type, uint16_t flags, const void* fixed, size_t fixed_len, std::string label,
                         bool ack) {
  msg_start_ = buf_.size();
  nlmsghdr h{};
  h.nlmsg_type = type;
  h.nlmsg_flags = static_cast<uint16_t>(flags | NLM_F_REQUEST | (ack ? NLM_F_ACK : 0));
  h.nlmsg_seq = static_cast<uint32_t>(labels_.size());
  labels_.push_back(std::move(label));
  if (ack) ++acks_;
  const auto* p = reinterpret_cast<const uint8_t*>(&h);
  buf_.insert(buf_.end(), p, p + sizeof h);
  const auto* f = static_cast<const uint8_t*>(fixed);
  buf_.insert(buf_.end(), f, f + fixed_len);
  Align();
}

void NetlinkBatch::Put(uint16_t type, const void* data, size_t len) {
  nlattr a{static_cast<uint16_t>(NLA_HDRLEN + len), type};
  const auto* p = reinterpret_cast<const uint8_t*>(&a);
  buf_.insert(buf_.end(), p, p + sizeof a);
  const auto* d = static_cast<const uint8_t*>(data);
  buf_.insert(buf_.end(), d, d + len);
  Align();
}

void NetlinkBatch::Raw(const void* data, size_t len) {
  const auto* d = static_cast<const uint8_t*>(data);
  buf_.insert(buf_.end(), d, d + len);
  Align();
}

void NetlinkBatch::PutString(uint16_t type, const char* s) { Put(type, s, strlen(s) + 1); }
void NetlinkBatch::PutU32(uint16_t type, uint32_t v) { Put(type, &v, sizeof v); }
void NetlinkBatch::PutBe32(uint16_t type, uint32_t v) { PutU32(type, htobe32(v)); }

size_t NetlinkBatch::Nest(uint16_t type) {
  size_t at = buf_.size();
  Put(static_cast<uint16_t>(type | NLA_F_NESTED), nullptr, 0);
  return at;
}

void NetlinkBatch::EndNest(size_t handle) {
  auto len = static_cast<uint16_t>(buf_.size() - handle);
  memcpy(buf_.data() + handle, &len, sizeof len);
}

void NetlinkBatch::End() {
  auto len = static_cast<uint32_t>(buf_.size() - msg_start_);
  memcpy(buf_.data() + msg_start_, &len, sizeof len);
}

int NetlinkSend(int protocol, const uint8_t* data, size_t len, uint32_t acks, int* failed_seq) {
  *failed_seq = -1;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
  if (fd < 0) return errno;
  int err = NetlinkSendOn(fd, data, len, acks, failed_seq);
  close(fd);
  return err;
}

int NetlinkSendOn(int fd, const uint8_t* data, size_t len, uint32_t acks, int* failed_seq) {
  *failed_seq = -1;
  // Errors echo only the header of the failed request, not all of it.
  int one = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  // The kernel answers at once; a missing answer must not hang the sandbox.
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, data, len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) != static_cast<ssize_t>(len)) {
    return errno ? errno : EIO;
  }
  alignas(nlmsghdr) uint8_t buf[8192];
  int err = 0;
  for (uint32_t got = 0; got < acks && !err;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    size_t left = static_cast<size_t>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type != NLMSG_ERROR) continue;
      ++got;
      const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
      if (e->error != 0 && !err) {
        err = -e->error;
        *failed_seq = static_cast<int>(h->nlmsg_seq);
      }
    }
  }
  timeval none{0, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
  return err;
}

}  // namespace ward
