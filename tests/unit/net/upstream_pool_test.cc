#include "net/upstream_pool.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace ward::net {
namespace {

IpAddress Addr(const char* text) { return *IpAddress::Parse(text); }

// A real descriptor, to tell which one came back.
UniqueFd Socket() { return UniqueFd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)); }

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) >= 0; }

TEST(UpstreamPool, TakesWhatWasLeftForTheSameDestinationOnly) {
  UpstreamPool pool;
  UniqueFd a = Socket();
  int a_fd = a.get();
  ASSERT_TRUE(pool.Put(Addr("203.0.113.10"), 443, std::move(a), 1000));
  EXPECT_FALSE(pool.Take(Addr("203.0.113.10"), 80, 1000).valid()) << "another port";
  EXPECT_FALSE(pool.Take(Addr("203.0.113.11"), 443, 1000).valid()) << "another address";
  UniqueFd got = pool.Take(Addr("203.0.113.10"), 443, 1001);
  EXPECT_EQ(got.get(), a_fd);
  EXPECT_FALSE(pool.Take(Addr("203.0.113.10"), 443, 1001).valid()) << "taken once";
  EXPECT_EQ(pool.size(), 0u);
}

TEST(UpstreamPool, AMappedAddressIsItsIpv4Address) {
  UpstreamPool pool;
  ASSERT_TRUE(pool.Put(Addr("::ffff:203.0.113.10"), 443, Socket(), 0));
  EXPECT_TRUE(pool.Take(Addr("203.0.113.10"), 443, 0).valid());
}

TEST(UpstreamPool, OldestFirst) {
  UpstreamPool pool;
  UniqueFd a = Socket(), b = Socket();
  int a_fd = a.get(), b_fd = b.get();
  ASSERT_TRUE(pool.Put(Addr("2001:db8::10"), 443, std::move(a), 0));
  ASSERT_TRUE(pool.Put(Addr("2001:db8::10"), 443, std::move(b), 10));
  EXPECT_EQ(pool.Take(Addr("2001:db8::10"), 443, 20).get(), a_fd);
  EXPECT_EQ(pool.Take(Addr("2001:db8::10"), 443, 20).get(), b_fd);
}

TEST(UpstreamPool, ASocketNotTakenInTimeIsClosed) {
  UpstreamPool pool;
  UniqueFd a = Socket();
  int a_fd = a.get();
  ASSERT_TRUE(pool.Put(Addr("203.0.113.10"), 443, std::move(a), 0));
  EXPECT_FALSE(pool.Take(Addr("203.0.113.99"), 1, UpstreamPool::kMaxAgeMs).valid());
  EXPECT_EQ(pool.size(), 1u) << "still young at exactly kMaxAgeMs";
  // Any call after that closes it, whatever destination it asks for.
  EXPECT_FALSE(pool.Take(Addr("203.0.113.99"), 1, UpstreamPool::kMaxAgeMs + 1).valid());
  EXPECT_EQ(pool.size(), 0u);
  EXPECT_FALSE(IsOpen(a_fd));
  EXPECT_FALSE(pool.Take(Addr("203.0.113.10"), 443, UpstreamPool::kMaxAgeMs + 1).valid());
}

TEST(UpstreamPool, FullPoolClosesWhatItCannotKeep) {
  UpstreamPool pool(4);
  for (size_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(pool.Put(Addr("203.0.113.10"), 443, Socket(), 0));
  }
  UniqueFd extra = Socket();
  int extra_fd = extra.get();
  EXPECT_FALSE(pool.Put(Addr("203.0.113.10"), 443, std::move(extra), 0));
  EXPECT_FALSE(IsOpen(extra_fd));
  EXPECT_EQ(pool.size(), 4u);
}

}  // namespace
}  // namespace ward::net
