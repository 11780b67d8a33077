// Pathname unix sockets and FIFOs (docs/security.md, "Seams"): the review
// connected to host daemons' sockets under a read-only grant (`network:
// none`) and wrote into host FIFOs. A socket is reachable only if it is
// served from inside the sandbox or listed in filesystem.unix
// (net/unix_gate.h); unix datagram sockets are refused; a FIFO is writable
// only in a writable grant or when listed.
#include "escape_fixture.h"

namespace {

class UnixSockets : public Escape {
 protected:
  // A host daemon's socket at `path` (mode 0777, so that the unprivileged
  // run's permission is not what refuses it).
  int ListenAt(const std::string& path) {
    unlink(path.c_str());
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.data(), path.size());
    if (s < 0 || bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(s, 64) != 0) return -1;
    chmod(path.c_str(), 0777);
    return s;
  }
  // The run's unix decisions.
  static std::vector<json> UnixEvents(const Outcome& o) {
    std::vector<json> out;
    if (o.result.is_object() && o.result.contains("egress")) {
      for (const json& e : o.result["egress"]) {
        if (e.value("kind", "") == "unix") out.push_back(e);
      }
    }
    return out;
  }
};

// The review's finding: a host daemon's socket in a read-only grant, in
// every network mode. Refused with EACCES and recorded; the same socket
// listed in filesystem.unix is reachable, and that use is recorded.
TEST_F(UnixSockets, HostSocketInReadOnlyGrantRefused) {
  const std::string path = W("daemon.sock");
  int s = ListenAt(path);
  ASSERT_GE(s, 0) << std::strerror(errno);
  HostListener host(s);
  json egress = Standard();
  egress["network"] = {{"egress", {{"default", "deny"}}}};
  for (const json& policy : {Standard(), egress, HostNetwork()}) {
    const std::string mode = policy.contains("network") ? policy["network"].dump() : "none";
    Outcome o = RunWard(policy, {"connect-unix", path});
    EXPECT_PROBE(o, "EACCES") << mode;
    std::vector<json> ev = UnixEvents(o);
    ASSERT_EQ(ev.size(), 1u) << mode << o.Describe();
    EXPECT_EQ(ev[0]["decision"], "deny");
    EXPECT_EQ(ev[0]["path"], path);
    // seqpacket and a relative path are the same socket.
    EXPECT_PROBE(RunWard(policy, {"connect-unix", "daemon.sock", "seqpacket"}), "EACCES") << mode;
    // Through the workload's own descriptor of the directory.
    EXPECT_PROBE(RunWard(policy, {"connect-unix", "/proc/self/cwd/daemon.sock"}), "EACCES") << mode;

    // Positive control: listed, it is reachable, and recorded.
    json listed = policy;
    listed["filesystem"]["unix"] = {path};
    Outcome l = RunWard(listed, {"connect-unix", path});
    EXPECT_PROBE(l, "ok") << mode;
    EXPECT_EQ(l.probe.Get("content"), "HELLO-FROM-HOST");
    ev = UnixEvents(l);
    ASSERT_EQ(ev.size(), 1u) << mode << l.Describe();
    EXPECT_EQ(ev[0]["decision"], "allow");
    EXPECT_EQ(ev[0]["rule"], path);
  }
  EXPECT_EQ(host.accepted(), 3);
  // Control: outside, the socket answers.
  Outcome d = RunDirect({"connect-unix", path});
  EXPECT_PROBE(d, "ok");
}

// A listed socket need not lie in a grant: it is bound at its own path.
TEST_F(UnixSockets, ListedSocketOutsideEveryGrant) {
  const std::string path = root_ + "/agent.sock";  // R/ is in no grant
  int s = ListenAt(path);
  ASSERT_GE(s, 0) << std::strerror(errno);
  HostListener host(s);
  EXPECT_PROBE(RunWard(Standard(), {"connect-unix", path}), "ENOENT");
  json listed = Standard();
  listed["filesystem"]["unix"] = {path};
  Outcome o = RunWard(listed, {"connect-unix", path});
  EXPECT_PROBE(o, "ok");
  EXPECT_EQ(o.probe.Get("content"), "HELLO-FROM-HOST");
  // Nothing else of R/ became visible.
  EXPECT_PROBE(RunWard(listed, {"read", root_ + "/outside.txt"}), "ENOENT");
}

// What the sandbox serves itself stays reachable: in its private /tmp, in a
// writable grant (a test server's socket in the workspace), by absolute or
// relative path, and abstract sockets of its own network namespace.
TEST_F(UnixSockets, SandboxOwnSocketsReachable) {
  json egress = Standard();
  egress["network"] = {{"egress", {{"default", "deny"}}}};
  for (const json& policy : {Standard(), egress, HostNetwork()}) {
    const std::string mode = policy.contains("network") ? policy["network"].dump() : "none";
    for (const std::string& dir : {std::string("/tmp"), W("rw")}) {
      if (dir == W("rw") && mode.find("host") != std::string::npos) continue;  // below
      for (const char* how : {"absolute", "relative"}) {
        Outcome o = RunWard(policy, {"unix-self", dir, "own.sock", how});
        EXPECT_PROBE(o, "ok") << mode << " " << dir << " " << how;
        EXPECT_EQ(o.probe.Get("content"), "PONG");
        EXPECT_TRUE(UnixEvents(o).empty()) << "own sockets are not recorded" << o.Describe();
      }
    }
  }
  // With the host's network, a socket the sandbox binds in a writable grant
  // cannot be told from a host daemon's (no namespace of its own): refused
  // unless listed. Documented in docs/security.md.
  EXPECT_PROBE(RunWard(HostNetwork(), {"unix-self", W("rw"), "own.sock"}), "EACCES");
}

// A workload that flips the address between its own socket and a host
// daemon's while connecting, to make ward judge one and connect the other:
// it never reaches the host's.
TEST_F(UnixSockets, AddressRaceNeverReachesTheHost) {
  const std::string path = W("daemon.sock");
  int s = ListenAt(path);
  ASSERT_GE(s, 0) << std::strerror(errno);
  HostListener host(s);
  Outcome o = RunWard(Standard(), {"race-unix", "/tmp/own.sock", path, "1500"}, {{}, -1, {}, 30000});
  EXPECT_PROBE(o, "ok");
  EXPECT_EQ(o.probe.Get("host"), "0") << o.Describe();
  EXPECT_EQ(host.accepted(), 0);
  // The race ran both ways: some connects were judged on each path.
  EXPECT_NE(o.probe.Get("own"), "0") << o.Describe();
  EXPECT_NE(o.probe.Get("refused"), "0") << o.Describe();
}

// Unix datagram sockets: every send may name any socket; refused at
// socket() and socketpair() in every mode. Stream sockets are the control.
// The red team's way around a deny list: SOCK_RAW, which the kernel turns
// into SOCK_DGRAM for unix sockets; only stream and seqpacket are allowed.
TEST_F(UnixSockets, DatagramSocketsRefused) {
  for (const json& policy : {Standard(), HostNetwork()}) {
    for (const char* how : {"dgram", "raw"}) {
      EXPECT_PROBE(RunWard(policy, {"unix-dgram", how}), "EACCES") << how;
      EXPECT_PROBE(RunWard(policy, {"unix-dgram", how, "pair"}), "EACCES") << how;
    }
    EXPECT_PROBE(RunWard(policy, {"unix-self", "/tmp", "s.sock"}), "ok");
  }
  for (const char* how : {"dgram", "raw"}) {
    EXPECT_PROBE(RunDirect({"unix-dgram", how}), "ok") << how;
    EXPECT_PROBE(RunDirect({"unix-dgram", how, "pair"}), "ok") << how;
  }
}

// The red team forged the kernel's socket-diagnostics answer to the unix
// gate: ward made the workload's netlink connect() to the gate's own socket,
// with ward's privileges. A netlink connect() to anything but the kernel is
// refused as the kernel refuses it to a process without CAP_NET_ADMIN.
TEST_F(UnixSockets, NetlinkConnectOnlyToTheKernel) {
  json egress = Standard();
  egress["network"] = {{"egress", {{"default", "deny"}}}};
  for (const json& policy : {Standard(), egress}) {
    EXPECT_PROBE(RunWard(policy, {"netlink-connect", "1"}), "EPERM");
    EXPECT_PROBE(RunWard(policy, {"netlink-connect", "0", "1"}), "EPERM");
    EXPECT_PROBE(RunWard(policy, {"netlink-connect", "0"}), "ok");
  }
  // Control: with CAP_NET_ADMIN (root outside), the kernel allows it.
  if (getuid() == 0) {
    EXPECT_PROBE(RunDirect({"netlink-connect", "1"}), "ok");
  }
}

// The review wrote into a host FIFO under a read-only grant: one inside a
// writable area (the private /tmp here), where landlock's write right is
// inherited, is refused at start; one that is listed is writable; one under
// a read-only grant outside writable areas is not writable (landlock).
TEST_F(UnixSockets, HostFifoNotWritable) {
  const std::string fifo = W("fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0666), 0) << std::strerror(errno);
  chmod(fifo.c_str(), 0666);
  int reader = open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(reader, 0);
  auto drained = [&] {
    char buf[64];
    ssize_t n = read(reader, buf, sizeof buf);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  };
  // W is a read-only grant, not inside a writable one: landlock refuses.
  Outcome o = RunWard(Standard(), {"fifo-write", fifo, "injected"});
  EXPECT_PROBE(o, "EACCES");
  EXPECT_EQ(drained(), "");
  // Listed: writable.
  json listed = Standard();
  listed["filesystem"]["unix"] = {fifo};
  Outcome l = RunWard(listed, {"fifo-write", fifo, "listed"});
  EXPECT_PROBE(l, "ok");
  EXPECT_EQ(drained(), "listed");
  // A read-only grant inside a writable one holding a FIFO: refused at
  // start (the probe's directory is W's sibling; W/rw is writable).
  const std::string nested = W("rw/ro");
  MakeDir(nested);
  ASSERT_EQ(mkfifo((nested + "/f").c_str(), 0666), 0);
  json p = Standard();
  p["filesystem"]["read"].push_back(nested);
  const std::string file = root_ + "/nested.json";
  WriteText(file, p.dump());
  Running r = Spawn({kWard, "run", "--policy", file, "--", "/bin/true"}, {ws_, -1, {}, {"PATH=/usr/bin:/bin"}});
  Outcome n = Finish(r, 20000);
  EXPECT_EQ(n.ExitStatus(), 123) << n.Describe();
  EXPECT_NE(n.err.find(nested + "/f"), std::string::npos) << n.Describe();
  EXPECT_NE(n.err.find("filesystem.unix"), std::string::npos) << n.Describe();
  // Control: without the FIFO the same policy runs.
  ASSERT_EQ(unlink((nested + "/f").c_str()), 0);
  EXPECT_PROBE(RunWard(p, {"read", W("public.txt")}), "ok");
  close(reader);
}

}  // namespace

namespace {

// A socket the caller gives as stdin that could reach anywhere in the
// caller's network (a unix or UDP datagram socket, an unconnected or
// listening TCP socket: the second review sent UDP to the host's loopback
// and made a TCP connection with MSG_FASTOPEN from "network": "none")
// reaches the workload as a pipe; a connected stream socket, which talks
// to its one peer, passes as it is.
TEST_F(UnixSockets, HostNetworkSocketsOnStdioAreBridged) {
  auto kind_of_stdin = [&](int fd) {
    Outcome o = RunWard(Standard(), {"fd-type", "0"}, {.stdin_fd = fd});
    return o.probe.Get("type");
  };
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
  EXPECT_EQ(kind_of_stdin(sv[0]), "fifo") << "unix datagram";
  close(sv[0]);
  close(sv[1]);
  int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(kind_of_stdin(udp), "fifo") << "unconnected UDP";
  sockaddr_in lo{};
  lo.sin_family = AF_INET;
  lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  lo.sin_port = htons(9);
  ASSERT_EQ(connect(udp, reinterpret_cast<sockaddr*>(&lo), sizeof lo), 0);
  EXPECT_EQ(kind_of_stdin(udp), "fifo") << "connected UDP (a send may still name another host)";
  close(udp);
  int tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(kind_of_stdin(tcp), "fifo") << "unconnected TCP (MSG_FASTOPEN)";
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(tcp, reinterpret_cast<sockaddr*>(&any), sizeof any), 0);
  ASSERT_EQ(listen(tcp, 4), 0);
  EXPECT_EQ(kind_of_stdin(tcp), "fifo") << "listening TCP";
  // Controls: connected stream sockets pass through.
  socklen_t len = sizeof any;
  getsockname(tcp, reinterpret_cast<sockaddr*>(&any), &len);
  int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&any), sizeof any), 0);
  EXPECT_EQ(kind_of_stdin(client), "sock") << "connected TCP";
  close(client);
  close(tcp);
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  EXPECT_EQ(kind_of_stdin(sv[0]), "sock") << "unix stream pair";
  close(sv[0]);
  close(sv[1]);
}

}  // namespace
