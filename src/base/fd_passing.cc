#include "base/fd_passing.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace ward {

int SendFds(int channel, const int* fds, size_t count) {
  char byte = 'F';
  return SendFdsWithData(channel, fds, count, &byte, 1);
}

int SendFdsWithData(int channel, const int* fds, size_t count, const void* data, size_t len) {
  if (count > kMaxPassedFds || len == 0) return EINVAL;
  const size_t bytes = sizeof(int) * count;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxPassedFds)] = {};
  iovec iov{const_cast<void*>(data), len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (count) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(bytes);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(bytes);
    memcpy(CMSG_DATA(c), fds, bytes);
  }
  return sendmsg(channel, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(len) ? 0 : errno;
}

int ReceiveFdsWithData(int channel, int* fds, size_t max_fds, size_t* count, void* data, size_t len, size_t* got) {
  *count = 0;
  *got = 0;
  if (max_fds > kMaxPassedFds) max_fds = kMaxPassedFds;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxPassedFds)];
  memset(control, 0, sizeof control);
  iovec iov{data, len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * max_fds);
  ssize_t n;
  do {
    n = recvmsg(channel, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno;
  *got = static_cast<size_t>(n);
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    if (k > max_fds - *count) k = max_fds - *count;
    memcpy(fds + *count, CMSG_DATA(c), sizeof(int) * k);
    *count += k;
  }
  return (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) ? EMSGSIZE : 0;
}

std::vector<UniqueFd> ReceiveFds(int channel, size_t max, bool* truncated) {
  int fds[kMaxPassedFds];
  size_t count = 0, got = 0;
  char byte;
  int e = ReceiveFdsWithData(channel, fds, max, &count, &byte, 1, &got);
  if (truncated) *truncated = e == EMSGSIZE;
  std::vector<UniqueFd> out;
  for (size_t i = 0; i < count; ++i) out.emplace_back(fds[i]);
  return out;
}

int WaitForByte(int fd) {
  char go = 0;
  ssize_t n;
  do {
    n = read(fd, &go, 1);
  } while (n < 0 && errno == EINTR);
  return n == 1 ? 0 : n < 0 ? errno : EPIPE;
}

}  // namespace ward
