#include "net/relay.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <utility>

#include "base/errors.h"
#include "net/socket_io.h"

namespace ward::net {
namespace {

// The default 64 KiB. Measured (bench/egress_bench.cc): 1 MiB pipes moved
// no more bytes per second, but cost 2 MiB of unswappable memory per
// connection and, past 16 connections, push the user over
// fs.pipe-user-pages-soft (every pipe that user makes anywhere then shrinks).
// Blocking splice() with a thread per direction (as the bench's minimal
// relay does) moved no more bytes per second than this poll loop (ward /
// minimal relay 0.69 against 0.71-0.74): the cost is in the redirected
// path (conntrack and NAT on every packet of the client's leg), not here.
constexpr int kPipeSize = 1 << 16;

// How the client's bytes are read.
enum class Mode : uint8_t {
  kStream,       // spliced, unread
  kGate,         // held back in `gated` until the gate has judged them
  kFixedBody,    // a request body of known length: spliced, at most `fixed_remaining`
  kChunkedBody,  // a chunked request body: read, to find its end
  kAwaitAnswer,  // after a request that asks to switch protocols: held back, unjudged, until the server answers
  kBodyStart,    // the first bytes of a request body: held back until they cannot be a request line
};

struct Direction {
  int src = -1;
  int dst = -1;
  UniqueFd pipe_r, pipe_w;
  size_t in_pipe = 0;
  size_t pipe_capacity = 65536;
  std::vector<uint8_t> head;  // judged bytes, read into user space, sent before the pipe's
  size_t head_sent = 0;
  Mode mode = Mode::kStream;
  std::vector<uint8_t> gated;   // kGate: the current message's bytes so far
  size_t judged = 0;            // gated.size() at the gate's last look
  int index = 0;                // the message being gated
  int64_t gate_since = 0;       // when its first byte came
  uint64_t fixed_remaining = 0; // kFixedBody
  std::optional<HttpBodyReader> body;  // kChunkedBody
  bool switch_request = false;         // the last request forwarded asks to switch protocols
  HttpBodyFraming request;             // the last request forwarded (kBodyStart)
  // Server to client, once a request has been forwarded: its answers.
  std::optional<HttpResponseReader> answers;
  bool untracked = false;  // answers not followed (ServerAnswers::untracked)
  bool handing_back = false;
  bool eof = false;   // src has ended its stream
  bool shut = false;  // dst has been shut down for writing
  uint64_t moved = 0;

  bool Pending() const { return head_sent < head.size() || in_pipe > 0; }
  // The server's answers are read, not spliced, where their framing is.
  bool ReadsAnswers() const { return answers && answers->Following() && answers->Opaque() == 0; }
  bool WantsRead() const {
    if (eof || handing_back) return false;
    if (ReadsAnswers()) return in_pipe == 0 && head.size() - head_sent < kMaxGatedBytes;
    switch (mode) {
      case Mode::kGate:
      case Mode::kAwaitAnswer:
      case Mode::kBodyStart:
        return gated.size() < kMaxGatedBytes;
      case Mode::kChunkedBody:
        return head.size() - head_sent < kMaxGatedBytes;
      case Mode::kStream:
      case Mode::kFixedBody:
        break;
    }
    return in_pipe < pipe_capacity;
  }
  // A fingerprint of the state, to tell whether a pass made progress.
  std::array<uint64_t, 8> State() const {
    return {moved, in_pipe, head.size(), gated.size(), eof, static_cast<uint64_t>(mode), judged,
            static_cast<uint64_t>(handing_back)};
  }
};

bool MakePipe(Direction& d, std::string* error) {
  int p[2];
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) {
    *error = "pipe2: " + ErrnoName(errno);
    return false;
  }
  d.pipe_r.Reset(p[0]);
  d.pipe_w.Reset(p[1]);
  fcntl(p[1], F_SETPIPE_SZ, kPipeSize);
  int size = fcntl(p[1], F_GETPIPE_SZ);
  if (size > 0) d.pipe_capacity = static_cast<size_t>(size);
  return true;
}

bool IsAgain(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

// Sends what is pending towards d.dst until the socket is full. False on a
// write error (`error` says which).
bool Flush(Direction& d, std::string* error) {
  while (d.head_sent < d.head.size()) {
    ssize_t n = send(d.dst, d.head.data() + d.head_sent, d.head.size() - d.head_sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && IsAgain(errno)) return true;
    if (n <= 0) {
      *error = "send: " + ErrnoName(n < 0 ? errno : EPIPE);
      return false;
    }
    d.head_sent += static_cast<size_t>(n);
    d.moved += static_cast<uint64_t>(n);
  }
  if (d.head_sent == d.head.size() && !d.head.empty()) {
    d.head.clear();
    d.head_sent = 0;
  }
  while (d.in_pipe > 0) {
    ssize_t n = splice(d.pipe_r.get(), nullptr, d.dst, nullptr, d.in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && IsAgain(errno)) return true;
    if (n <= 0) {
      *error = "splice to socket: " + ErrnoName(n < 0 ? errno : EPIPE);
      return false;
    }
    d.in_pipe -= static_cast<size_t>(n);
    d.moved += static_cast<uint64_t>(n);
  }
  return true;
}

// kGateReset: the gate refused (and recorded); kRefuse: the relay refused a
// request body (the caller records).
enum class FillResult : uint8_t { kOk, kError, kGateReset, kRefuse };

// The request before has been forwarded whole: what follows is the next
// request, judged, or (after an upgrade or CONNECT) held until the server's
// answer says which.
void NextMessage(Direction& d) {
  d.mode = d.switch_request ? Mode::kAwaitAnswer : Mode::kGate;
  d.judged = 0;
  d.gate_since = MonotonicMs();
}

// Ends kAwaitAnswer once the server has answered the request that asked to
// switch protocols: switched, the held bytes and the rest pass unread (the
// server no longer reads HTTP/1 requests); otherwise (or when the answers
// cannot be followed) they are judged as the next request.
void SettleAnswer(Direction& up, const Direction& down) {
  if (up.mode != Mode::kAwaitAnswer) return;
  if (down.answers && down.answers->AwaitingSwitch()) return;
  if (down.answers && down.answers->state() == HttpResponseReader::State::kSwitched) {
    if (up.in_pipe > 0) return;  // the held bytes go after what is in the pipe
    up.head.insert(up.head.end(), up.gated.begin(), up.gated.end());
    up.gated.clear();
    up.judged = 0;
    up.mode = Mode::kStream;
    return;
  }
  up.switch_request = false;
  NextMessage(up);
}

// Passes the bytes after a judged request head through its body's framing:
// the body's go to the send buffer, what follows is the next message.
FillResult TakeBody(Direction& d, std::span<const uint8_t> bytes, std::string* error) {
  HttpBodyReader::Step step = d.body->Feed(bytes);
  if (step.malformed) {
    *error = "malformed chunked request body (a server might frame it otherwise)";
    return FillResult::kRefuse;
  }
  d.head.insert(d.head.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(step.consumed));
  if (step.done) {
    d.body.reset();
    NextMessage(d);
    d.gated.assign(bytes.begin() + static_cast<std::ptrdiff_t>(step.consumed), bytes.end());
  } else if (std::optional<uint64_t> fixed = d.body->FixedRemaining()) {
    d.mode = Mode::kFixedBody;
    d.fixed_remaining = *fixed;
    d.body.reset();
  } else {
    d.mode = Mode::kChunkedBody;
  }
  return FillResult::kOk;
}

// Every answer to what was forwarded has reached the client, or the answers
// are not followed (then nothing can be waited for). The next request is
// judged only then: a refusal resets the connection, which would cut short
// an answer still on its way to an allowed request.
bool AnswersDelivered(const Direction& down) {
  if (!down.answers || !down.answers->Following()) return true;
  return down.answers->Answered() && !down.Pending();
}

// Judges the first bytes of a request body held back so far (`ended`: no
// more will come): a server that does not read bodies (Python's http.server
// for a GET, any handler that ignores one) reads them as the next request,
// which the gate would never see. They pass only once no server could take
// them for a request line; a body that ends before that is forwarded (what
// follows it is the next request, judged: its Host is the only one such a
// server finds).
FillResult CheckBodyStart(Direction& d, bool ended, std::string* error) {
  std::string_view text(reinterpret_cast<const char*>(d.gated.data()), d.gated.size());
  bool whole = !d.request.chunked && d.gated.size() >= d.request.content_length;
  if (!d.request.chunked) {
    text = text.substr(0, static_cast<size_t>(std::min<uint64_t>(text.size(), d.request.content_length)));
  }
  HttpSniffStatus seen = LenientRequestLine(text, LenientReader::kBody);
  if (seen == HttpSniffStatus::kRequest) {
    *error =
        "the request's body begins like an HTTP request line (a server that does not read the body would "
        "take it for the next request)";
    return FillResult::kRefuse;
  }
  if (seen == HttpSniffStatus::kNeedMore && !whole && !ended) return FillResult::kOk;
  std::vector<uint8_t> bytes = std::exchange(d.gated, {});
  d.judged = 0;
  d.body.emplace(d.request);
  return TakeBody(d, bytes, error);
}

// Asks the gate about the held-back bytes, once every earlier byte has been
// sent (so that what it lets through goes out in order).
FillResult Judge(Direction& d, Direction& down, const FirstBytesGate& gate, std::string* error) {
  d.judged = d.gated.size();
  GateVerdict v = gate(d.gated, d.index);
  switch (v.kind) {
    case GateVerdict::Kind::kNeedMore:
      if (d.gated.size() >= kMaxGatedBytes) {
        *error = "the client's first " + std::to_string(d.gated.size()) + " bytes of a message are still not conclusive";
        return FillResult::kGateReset;
      }
      return FillResult::kOk;
    case GateVerdict::Kind::kReset:
      *error = v.reason;
      return FillResult::kGateReset;
    case GateVerdict::Kind::kHandBack:
      d.handing_back = true;
      return FillResult::kOk;
    case GateVerdict::Kind::kForward:
      break;
  }
  ++d.index;
  std::vector<uint8_t> bytes = std::exchange(d.gated, {});
  d.judged = 0;
  if (!v.request) {
    d.head.insert(d.head.end(), bytes.begin(), bytes.end());
    d.mode = Mode::kStream;
    return FillResult::kOk;
  }
  // Its answer is followed from the server's first byte; bytes the server
  // sent before any request (it spoke first) leave the answers unplaced.
  d.switch_request = v.request->upgrade || v.request->connect;
  if (!down.answers && !down.untracked) {
    if (down.moved == 0 && down.in_pipe == 0 && down.head.empty()) {
      down.answers.emplace();
    } else {
      down.untracked = true;
    }
  }
  if (down.answers) down.answers->Expect(*v.request);
  size_t head_length = std::min(v.request->head_length, bytes.size());
  d.head.insert(d.head.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(head_length));
  d.request = *v.request;
  if (v.request->chunked || v.request->content_length > 0) {
    d.mode = Mode::kBodyStart;
    d.gated.assign(bytes.begin() + static_cast<std::ptrdiff_t>(head_length), bytes.end());
    return CheckBodyStart(d, false, error);
  }
  d.body.emplace(*v.request);
  return TakeBody(d, std::span<const uint8_t>(bytes).subspan(head_length), error);
}

FillResult Fill(Direction& d, std::string* error) {
  if (d.ReadsAnswers()) {
    uint8_t buf[16384];
    ssize_t n = recv(d.src, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || IsAgain(errno))) return FillResult::kOk;
    if (n < 0) {
      *error = "recv: " + ErrnoName(errno);
      return FillResult::kError;
    }
    if (n == 0) {
      d.eof = true;
      return FillResult::kOk;
    }
    d.head.insert(d.head.end(), buf, buf + n);
    d.answers->Feed(std::span<const uint8_t>(buf, static_cast<size_t>(n)));
    return FillResult::kOk;
  }
  if (d.mode == Mode::kGate || d.mode == Mode::kAwaitAnswer || d.mode == Mode::kBodyStart ||
      d.mode == Mode::kChunkedBody) {
    uint8_t buf[4096];
    size_t room = d.mode == Mode::kChunkedBody ? sizeof(buf) : kMaxGatedBytes - d.gated.size();
    ssize_t n = recv(d.src, buf, room < sizeof(buf) ? room : sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || IsAgain(errno))) return FillResult::kOk;
    if (n < 0) {
      *error = "recv: " + ErrnoName(errno);
      return FillResult::kError;
    }
    if (n == 0) {
      d.eof = true;
      if (d.mode == Mode::kBodyStart) return CheckBodyStart(d, true, error);
      // Nothing to judge: the stream simply ends. Half-judged bytes are
      // never forwarded (a truncated ClientHello or request head could be
      // read otherwise by the server).
      if (d.mode == Mode::kChunkedBody || d.gated.empty()) return FillResult::kOk;
      *error = "the client ended its stream before its bytes could be judged";
      return FillResult::kGateReset;
    }
    if (d.mode == Mode::kChunkedBody) return TakeBody(d, std::span<const uint8_t>(buf, static_cast<size_t>(n)), error);
    if (d.gated.empty()) d.gate_since = MonotonicMs();
    d.gated.insert(d.gated.end(), buf, buf + n);
    if (d.mode == Mode::kBodyStart) return CheckBodyStart(d, false, error);
    return FillResult::kOk;
  }
  size_t want = d.pipe_capacity - d.in_pipe;
  if (d.mode == Mode::kFixedBody && d.fixed_remaining < want) want = static_cast<size_t>(d.fixed_remaining);
  uint64_t opaque = d.answers && d.answers->Following() ? d.answers->Opaque() : 0;
  if (opaque > 0 && opaque < want) want = static_cast<size_t>(opaque);
  for (;;) {
    ssize_t n = splice(d.src, nullptr, d.pipe_w.get(), nullptr, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && IsAgain(errno)) return FillResult::kOk;
    if (n < 0) {
      *error = "splice from socket: " + ErrnoName(errno);
      return FillResult::kError;
    }
    if (n == 0) {
      d.eof = true;
    } else {
      d.in_pipe += static_cast<size_t>(n);
      if (opaque > 0) d.answers->Skip(static_cast<uint64_t>(n));
      if (d.mode == Mode::kFixedBody && (d.fixed_remaining -= static_cast<uint64_t>(n)) == 0) NextMessage(d);
    }
    return FillResult::kOk;
  }
}

// splice() into a socket the peer has closed raises SIGPIPE (it has no
// MSG_NOSIGNAL). Blocked in this thread while relaying, and discarded after,
// so the supervisor does not die of a workload's closed socket.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &old_);
  }
  ~SigpipeBlock() {
    if (sigismember(&old_, SIGPIPE)) return;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    timespec zero{};
    while (sigtimedwait(&set, nullptr, &zero) == SIGPIPE) {
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  sigset_t old_;
};

}  // namespace

RelayOutcome Relay(UniqueFd client, UniqueFd server, std::vector<uint8_t> client_head, FirstBytesGate gate, int stop_fd,
                   int gate_timeout_ms, ServerAnswers answers) {
  SigpipeBlock sigpipe;
  RelayOutcome out;
  Direction up, down;  // client -> server, server -> client
  up.src = client.get();
  up.dst = server.get();
  down.src = server.get();
  down.dst = client.get();
  down.answers = std::move(answers.reader);
  down.untracked = answers.untracked;
  if (gate) {
    up.mode = Mode::kGate;
    up.gated = std::move(client_head);
    up.gate_since = MonotonicMs();
  } else {
    up.head = std::move(client_head);
  }

  auto abort = [&](std::string why) {
    out.error = std::move(why);
    ResetAndClose(client);
    ResetAndClose(server);
    out.to_server = up.moved;
    out.to_client = down.moved;
    return std::move(out);
  };
  auto gate_reset = [&](std::string why) {
    out.reset_by_gate = true;
    out.gate_reason = why;
    return abort("reset: " + why);
  };
  // A FillResult that ends the relay: the gate's refusal or the relay's own.
  auto refuse = [&](FillResult r, std::string why) {
    if (r == FillResult::kRefuse) {
      out.refused = true;
      out.refused_request = up.index;
    }
    return gate_reset(std::move(why));
  };

  if (!MakePipe(up, &out.error) || !MakePipe(down, &out.error)) return abort(out.error);

  for (;;) {
    for (Direction* d : {&up, &down}) {
      if (!d->shut && d->eof && d->gated.empty() && !d->Pending() && !d->handing_back) {
        shutdown(d->dst, SHUT_WR);
        d->shut = true;
      }
    }
    if (up.shut && down.shut) break;
    if (up.handing_back && !up.Pending() && !down.Pending()) {
      // What the server sent before the client's new message has reached
      // the client; the caller takes it from here.
      out.handed_back = true;
      out.client = std::move(client);
      out.server = std::move(server);
      out.client_rest = std::move(up.gated);
      out.answers = ServerAnswers{down.untracked, std::move(down.answers)};
      out.to_server = up.moved;
      out.to_client = down.moved;
      return out;
    }

    SettleAnswer(up, down);
    // While an earlier answer is on its way, a held request is not the
    // client's delay: its head timeout starts once that answer is through.
    const bool answered = AnswersDelivered(down);
    if (!answered) up.gate_since = MonotonicMs();
    if (up.mode == Mode::kGate && !up.Pending() && !up.gated.empty() && up.judged != up.gated.size() &&
        !up.handing_back && answered) {
      // Bytes held back and not judged yet (the client's head given to
      // Relay, or the next request read with the last one's body).
      std::string error;
      FillResult r = Judge(up, down, gate, &error);
      if (r == FillResult::kGateReset || r == FillResult::kRefuse) return refuse(r, error);
      continue;
    }
    int timeout = -1;
    if (up.mode == Mode::kGate && !up.gated.empty() && gate_timeout_ms >= 0 && !up.handing_back) {
      timeout = RemainingMs(up.gate_since + gate_timeout_ms);
      if (timeout == 0) {
        return gate_reset("the client did not complete its message within " + std::to_string(gate_timeout_ms) +
                          " ms");
      }
    }
    short client_events = 0, server_events = 0;
    if (up.WantsRead()) client_events |= POLLIN;
    if (up.Pending()) server_events |= POLLOUT;
    if (down.WantsRead() && !up.handing_back) server_events |= POLLIN;
    if (down.Pending()) client_events |= POLLOUT;
    // An fd with nothing asked of it is left out: its POLLHUP would wake
    // the loop for nothing, forever.
    pollfd pfd[3] = {{client_events ? client.get() : -1, client_events, 0},
                     {server_events ? server.get() : -1, server_events, 0},
                     {stop_fd, POLLIN, 0}};
    int n = poll(pfd, 3, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      return abort("poll: " + ErrnoName(errno));
    }
    if (pfd[2].revents != 0) return abort("the proxy is stopping");

    // Pump each direction until it would block: data read into a pipe is
    // usually writable at once, and waiting for poll() to say so would
    // double the system calls per chunk. A try that would block costs one
    // EAGAIN.
    for (Direction* d : {&up, &down}) {
      for (;;) {
        std::array<uint64_t, 8> before = d->State();
        std::string error;
        if (d->Pending() && !Flush(*d, &error)) return abort((d == &up ? "to server: " : "to client: ") + error);
        if (d == &up) SettleAnswer(up, down);
        if (d->mode == Mode::kGate && !d->Pending() && !d->gated.empty() && d->judged != d->gated.size() &&
            !d->handing_back && (d != &up || AnswersDelivered(down))) {
          FillResult r = Judge(*d, down, gate, &error);
          if (r == FillResult::kGateReset || r == FillResult::kRefuse) return refuse(r, error);
        }
        if (d->WantsRead() && !(d == &down && up.handing_back)) {
          FillResult r = Fill(*d, &error);
          if (r == FillResult::kGateReset || r == FillResult::kRefuse) return refuse(r, error);
          if (r == FillResult::kError) return abort((d == &up ? "from client: " : "from server: ") + error);
        }
        if (before == d->State()) break;
      }
    }
  }
  out.to_server = up.moved;
  out.to_client = down.moved;
  return out;
}

}  // namespace ward::net
