// Netlink requests built before clone() and sent by the sandbox's init.
//
// Why by hand: the messages ward needs (one veth pair, two addresses, two
// routes, one nftables table) are a few hundred bytes, and the libraries made
// for them do not fit a static, fast-starting binary: Debian ships libnftnl
// as a static archive but libmnl (its dependency) and libnftables only as
// shared objects, and linking them dynamically would cost every run the
// dynamic loader. The builder below is the part of libmnl ward needs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ward {

// A sequence of netlink messages in one buffer. Each message carries a
// sequence number equal to its index and, when `ack`, NLM_F_ACK, so that the
// answer to every request can be matched to a label for error messages.
class NetlinkBatch {
 public:
  // Starts a message: the netlink header, then `fixed` (the family header,
  // e.g. ifinfomsg or nfgenmsg) copied as is.
  void Begin(uint16_t type, uint16_t flags, const void* fixed, size_t fixed_len, std::string label,
             bool ack = true);
  void Put(uint16_t type, const void* data, size_t len);
  // Bytes with no attribute header (a family header inside a nest).
  void Raw(const void* data, size_t len);
  void PutString(uint16_t type, const char* s);  // with its NUL
  void PutU32(uint16_t type, uint32_t v);         // host byte order
  void PutBe32(uint16_t type, uint32_t v);        // network byte order (nf_tables)
  // Nested attributes: Nest() returns a handle for End().
  size_t Nest(uint16_t type);
  void EndNest(size_t handle);
  void End();

  const std::vector<uint8_t>& bytes() const { return buf_; }
  // Labels of the messages that ask for an acknowledgement, by sequence number.
  const std::vector<std::string>& labels() const { return labels_; }
  uint32_t acks() const { return acks_; }

 private:
  void Align();
  std::vector<uint8_t> buf_;
  std::vector<std::string> labels_;
  size_t msg_start_ = 0;
  uint32_t acks_ = 0;
};

// Sends `batch` on a new netlink socket of `protocol` and waits for the
// acknowledgement of every message that asked for one. Returns 0, or the
// first error (a positive errno) with `*failed_seq` set to the sequence
// number of the message that failed (-1: the socket itself).
//
// Async-signal-safe: no allocation, a stack buffer for the answers. Runs in
// the sandbox's init before the workload exists.
int NetlinkSend(int protocol, const uint8_t* data, size_t len, uint32_t acks, int* failed_seq);
// The same on an open netlink socket `fd` (kept open: e.g. one bound to an
// NFLOG group by the requests).
int NetlinkSendOn(int fd, const uint8_t* data, size_t len, uint32_t acks, int* failed_seq);

}  // namespace ward
