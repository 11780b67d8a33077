// The strings of a held sandbox's exec request (enforce/exec_request.h), as
// init and the supervisor each split them: a request whose counts or length
// do not match what it holds is refused, never read past its end.
#include "enforce/exec_request.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace ward {
namespace {

struct Built {
  std::unique_ptr<ExecMessage> m = std::make_unique<ExecMessage>();
  size_t got = 0;  // bytes of the message as read
};

Built Request(const std::vector<std::string>& strings, uint32_t argc, uint32_t envc) {
  Built b;
  b.m->h = ExecHeader{};
  b.m->h.argc = argc;
  b.m->h.envc = envc;
  size_t len = 0;
  for (const std::string& s : strings) EXPECT_TRUE(AppendExecString(*b.m, &len, s.data(), s.size()));
  b.m->h.strings_len = static_cast<uint32_t>(len);
  b.got = sizeof(ExecHeader) + len;
  return b;
}

std::vector<std::string> Walk(const Built& b, bool* ok) {
  std::vector<std::string> seen;
  *ok = ForEachExecString(*b.m, b.got, [&](size_t i, const char* p) {
    EXPECT_EQ(i, seen.size());
    seen.emplace_back(p);
  });
  return seen;
}

TEST(ExecRequest, StringsInOrderCwdArgvEnv) {
  Built b = Request({"/w", "sh", "-c", "", "A=1"}, 3, 1);
  bool ok = false;
  EXPECT_EQ(Walk(b, &ok), (std::vector<std::string>{"/w", "sh", "-c", "", "A=1"}));
  EXPECT_TRUE(ok);
}

TEST(ExecRequest, CountsPastTheStringsAreRefused) {
  bool ok = true;
  Built more_env = Request({"/w", "true", "A=1"}, 1, 2);
  Walk(more_env, &ok);
  EXPECT_FALSE(ok);
  Built more_argv = Request({"/w", "true"}, 2, 0);
  Walk(more_argv, &ok);
  EXPECT_FALSE(ok);
  Built no_argv = Request({"/w"}, 0, 0);
  Walk(no_argv, &ok);
  EXPECT_FALSE(ok);
}

TEST(ExecRequest, LengthPastTheMessageIsRefused) {
  bool ok = true;
  // The header says more strings than were read: a string's end is never
  // looked for past what arrived.
  Built b = Request({"/w", "true"}, 1, 0);
  b.got -= 1;  // the last NUL did not arrive
  Walk(b, &ok);
  EXPECT_FALSE(ok);
  // A length past what any request may hold, in a buffer that has room
  // for it and says so: refused all the same (kExecMaxStrings).
  struct Larger {
    ExecMessage m;
    char more[64];
  };
  auto larger = std::make_unique<Larger>();
  larger->m.h = ExecHeader{};
  larger->m.h.argc = 1;
  // An empty cwd, then one argument whose end lies just past the bound.
  larger->m.strings[0] = 0;
  for (size_t i = 1; i < kExecMaxStrings; ++i) larger->m.strings[i] = 'x';
  static_assert(offsetof(Larger, more) == offsetof(Larger, m) + sizeof(ExecHeader) + kExecMaxStrings);
  larger->more[0] = 0;
  larger->m.h.strings_len = kExecMaxStrings + 1;
  EXPECT_FALSE(ForEachExecString(larger->m, sizeof(Larger), [](size_t, const char*) {}));
  Built d = Request({"/w", "true"}, 1, 0);
  d.got = sizeof(ExecHeader) - 1;  // not even a header
  Walk(d, &ok);
  EXPECT_FALSE(ok);
  // A string without its NUL within strings_len (the rest of the buffer
  // holds one further on): refused.
  Built e = Request({"/w", "true"}, 1, 0);
  e.m->h.strings_len -= 1;
  Walk(e, &ok);
  EXPECT_FALSE(ok);
  // Positive control: the same requests as sent.
  Built f = Request({"/w", "true"}, 1, 0);
  Walk(f, &ok);
  EXPECT_TRUE(ok);
}

}  // namespace
}  // namespace ward
