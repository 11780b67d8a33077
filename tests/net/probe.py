#!/usr/bin/python3
"""In-sandbox probe for the egress suite (tests/net/egress_test.py).

Runs inside `ward run`, performs a list of steps (one JSON file given as the
only argument) and prints one JSON list of results on stdout, one entry per
step, in order. Every network step reports what the kernel said: the errno
name of the first failing call and the stage it failed at (socket, connect,
send, recv ...), and how long the step took, so the driver can tell
"refused/reset at once by ward" from "timed out" from "reached the server".

Steps (dicts):
  {"op": "run", "argv": [...], "timeout": S, "stdin": "..."}
      run a program (curl, nc, dig, node, openssl); rc, stdout, stderr
  {"op": "tcp", "host": H, "port": P, "send": "text", "family": 0|4|6, "proto": "mptcp" (optional),
   "blocking": bool (optional: a blocking connect()), "order": "v6first" (optional: IPv6 addresses tried first)}
      socket.create_connection-style client, sends one line, reads the reply
  {"op": "udp", "host": H, "port": P, "send": "text"}
  {"op": "dns", "server": IP, "port": 53, "name": N, "qtype": "A"|"AAAA", "tcp": bool}
      a hand-made DNS query sent to SERVER itself (not through the resolver)
  {"op": "resolve", "name": N, "family": 0|4|6}   getaddrinfo (the libc path)
  {"op": "icmp", "host": H}    echo request over a ping socket and a raw socket
  {"op": "loopback"}           a server on the sandbox's own 127.0.0.1 and ::1
  {"op": "env"}                the proxy variables and /etc/resolv.conf
  {"op": "proxy", "request": "GET http://h/ HTTP/1.1\\r\\n...", "proxy": "169.254.77.1", "port": 3128}
      a raw request to ward's HTTP proxy (no client-side NO_PROXY logic);
      the status code and what followed
  {"op": "trickle", "host": H, "port": P, "chunks": [...], "delay": S}
      connect, send the chunks with a pause between them, read until close
  {"op": "sleep", "seconds": S}
  {"op": "sockets", "host": H, "port": P, "dead_port": D, "send": "text"}
      what a program sees of a connection's socket: a non-blocking connect
      (EINPROGRESS, then writable), a socket registered with epoll before
      connecting, a blocking connect refused on D and the same socket then
      connected to P; each sends one line and reads the reply
Only the standard library; runs with the sandbox's /usr/bin/python3.
"""
import errno
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time

QTYPES = {"A": 1, "AAAA": 28, "TXT": 16, "ANY": 255}


def now_ms():
    return time.monotonic() * 1000.0


def err_result(stage, e, t0):
    r = {"ok": False, "stage": stage, "elapsed_ms": round(now_ms() - t0, 1), "error": str(e)}
    code = getattr(e, "errno", None)
    if isinstance(e, socket.timeout):
        r["errno"] = "TIMEOUT"
    elif isinstance(e, socket.gaierror):
        r["errno"] = "GAI"
        r["gai"] = e.args[0] if e.args else None
    elif code is not None and code in errno.errorcode:
        r["errno"] = errno.errorcode[code]
    else:
        r["errno"] = type(e).__name__
    return r


def step_run(s):
    t0 = now_ms()
    try:
        p = subprocess.run(s["argv"], input=s.get("stdin", "").encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=s.get("timeout", 15))
        return {"ok": p.returncode == 0, "rc": p.returncode, "elapsed_ms": round(now_ms() - t0, 1),
                "stdout": p.stdout.decode(errors="replace")[-4000:],
                "stderr": p.stderr.decode(errors="replace")[-2000:]}
    except subprocess.TimeoutExpired as e:
        return {"ok": False, "rc": None, "errno": "TIMEOUT", "elapsed_ms": round(now_ms() - t0, 1),
                "stdout": (e.stdout or b"").decode(errors="replace")[-2000:],
                "stderr": (e.stderr or b"").decode(errors="replace")[-2000:]}
    except OSError as e:
        return err_result("exec", e, t0)


def family_of(f):
    return {0: socket.AF_UNSPEC, 4: socket.AF_INET, 6: socket.AF_INET6}[f]


def step_tcp(s):
    t0 = now_ms()
    timeout = s.get("timeout", 5)
    try:
        infos = socket.getaddrinfo(s["host"], s["port"], family_of(s.get("family", 0)), socket.SOCK_STREAM)
    except OSError as e:
        return err_result("resolve", e, t0)
    if s.get("order") == "v6first":  # as RFC 6724 orders global addresses: a dual-stack client's first try
        infos.sort(key=lambda i: i[0] != socket.AF_INET6)
    last = None
    for fam, typ, proto, _, addr in infos:
        if s.get("proto") == "mptcp":
            proto = 262  # IPPROTO_MPTCP
        try:
            sock = socket.socket(fam, typ, proto)
        except OSError as e:
            last = err_result("socket", e, t0)
            continue
        # A timeout makes Python's socket non-blocking (connect, then poll);
        # "blocking" keeps the kernel's blocking connect().
        sock.settimeout(None if s.get("blocking") else timeout)
        try:
            sock.connect(addr)
        except OSError as e:
            last = err_result("connect", e, t0)
            last["address"] = addr[0]
            sock.close()
            continue
        sock.settimeout(timeout)
        res = {"address": addr[0]}
        try:
            sock.sendall((s.get("send", "ping") + "\n").encode())
        except OSError as e:
            r = err_result("send", e, t0)
            r.update(res)
            sock.close()
            return r
        data = b""
        try:
            while b"\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError as e:
            r = err_result("recv", e, t0)
            r.update(res)
            r["data"] = data.decode(errors="replace")
            sock.close()
            return r
        sock.close()
        res.update({"ok": bool(data), "stage": "done" if data else "recv-eof",
                    "errno": None if data else "EOF", "data": data.decode(errors="replace"),
                    "elapsed_ms": round(now_ms() - t0, 1)})
        return res
    return last or {"ok": False, "stage": "resolve", "errno": "NOADDR", "elapsed_ms": round(now_ms() - t0, 1)}


def step_udp(s):
    t0 = now_ms()
    try:
        infos = socket.getaddrinfo(s["host"], s["port"], socket.AF_UNSPEC, socket.SOCK_DGRAM)
        fam, typ, proto, _, addr = infos[0]
    except OSError as e:
        return err_result("resolve", e, t0)
    try:
        sock = socket.socket(fam, typ, proto)
    except OSError as e:
        return err_result("socket", e, t0)
    sock.settimeout(s.get("timeout", 2))
    # Send the datagram three times: a single lost packet must not look like
    # a block, nor a single ICMP error like success.
    payload = s.get("send", "ping").encode()
    for stage, fn in (("connect", lambda: sock.connect(addr)),
                      ("send", lambda: sock.send(payload)),
                      ("send", lambda: sock.send(payload)),
                      ("send", lambda: sock.send(payload))):
        try:
            fn()
        except OSError as e:
            sock.close()
            return err_result(stage, e, t0)
    try:
        data = sock.recv(4096)
    except OSError as e:
        sock.close()
        return err_result("recv", e, t0)
    sock.close()
    return {"ok": True, "stage": "done", "errno": None, "data": data.decode(errors="replace"),
            "elapsed_ms": round(now_ms() - t0, 1)}


def dns_query(name, qtype, qid=0x5157):
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack("!HH", QTYPES[qtype], 1)


def skip_name(msg, off):
    while True:
        n = msg[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            return off + 2
        off += 1 + n


def dns_parse(msg):
    qid, flags, qd, an, _, _ = struct.unpack("!HHHHHH", msg[:12])
    off = 12
    for _ in range(qd):
        off = skip_name(msg, off) + 4
    answers = []
    for _ in range(an):
        off = skip_name(msg, off)
        typ, _, _, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        rdata = msg[off:off + rdlen]
        off += rdlen
        if typ == 1 and rdlen == 4:
            answers.append(socket.inet_ntop(socket.AF_INET, rdata))
        elif typ == 28 and rdlen == 16:
            answers.append(socket.inet_ntop(socket.AF_INET6, rdata))
        else:
            answers.append("type%d" % typ)
    return {"id": qid, "rcode": flags & 0xF, "answers": answers}


def step_dns(s):
    t0 = now_ms()
    server, port = s["server"], s.get("port", 53)
    fam = socket.AF_INET6 if ":" in server else socket.AF_INET
    q = bytes.fromhex(s["raw_hex"]) if s.get("raw_hex") else dns_query(s["name"], s.get("qtype", "A"))
    try:
        if s.get("tcp"):
            sock = socket.socket(fam, socket.SOCK_STREAM)
            sock.settimeout(s.get("timeout", 5))
            stage = "connect"
            sock.connect((server, port))
            stage = "send"
            sock.sendall(struct.pack("!H", len(q)) + q)
            stage = "recv"
            buf = b""
            while len(buf) < 2 or len(buf) < 2 + struct.unpack("!H", buf[:2])[0]:
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectionResetError(errno.ECONNRESET, "EOF before a full DNS answer")
                buf += chunk
            msg = buf[2:]
        else:
            sock = socket.socket(fam, socket.SOCK_DGRAM)
            sock.settimeout(s.get("timeout", 3))
            stage = "send"
            sock.sendto(q, (server, port))
            stage = "recv"
            msg, _ = sock.recvfrom(4096)
        sock.close()
    except OSError as e:
        return err_result(stage, e, t0)
    r = dns_parse(msg)
    r.update({"ok": True, "stage": "done", "errno": None, "elapsed_ms": round(now_ms() - t0, 1),
              "raw_answer": msg.hex()})
    return r


def step_resolve(s):
    t0 = now_ms()
    try:
        infos = socket.getaddrinfo(s["name"], 443, family_of(s.get("family", 0)), socket.SOCK_STREAM)
    except socket.gaierror as e:
        return err_result("resolve", e, t0)
    addrs = sorted({i[4][0] for i in infos})
    return {"ok": True, "stage": "done", "errno": None, "addresses": addrs,
            "elapsed_ms": round(now_ms() - t0, 1)}


def icmp_echo(kind, host):
    t0 = now_ms()
    try:
        if kind == "ping-socket":
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    except OSError as e:
        return err_result("socket", e, t0)
    sock.settimeout(1.5)
    body = b"ward-icmp-probe"
    hdr = struct.pack("!BBHHH", 8, 0, 0, 0x5157, 1)
    csum_data = hdr + body
    total = 0
    for i in range(0, len(csum_data), 2):
        total += (csum_data[i] << 8) + (csum_data[i + 1] if i + 1 < len(csum_data) else 0)
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    pkt = struct.pack("!BBHHH", 8, 0, (~total) & 0xFFFF, 0x5157, 1) + body
    try:
        sock.sendto(pkt, (host, 0))
    except OSError as e:
        sock.close()
        return err_result("send", e, t0)
    try:
        while True:
            data = sock.recv(2048)
            if kind == "raw-socket":
                data = data[(data[0] & 0xF) * 4:]
            if data and data[0] == 0:
                sock.close()
                return {"ok": True, "stage": "done", "errno": None, "elapsed_ms": round(now_ms() - t0, 1)}
    except OSError as e:
        sock.close()
        return err_result("recv", e, t0)


def step_icmp(s):
    return {"ok": None, "ping-socket": icmp_echo("ping-socket", s["host"]),
            "raw-socket": icmp_echo("raw-socket", s["host"])}


def step_loopback(_):
    out = {}
    for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        t0 = now_ms()
        try:
            srv = socket.socket(fam, socket.SOCK_STREAM)
            srv.bind((host, 0))
            srv.listen(1)
            port = srv.getsockname()[1]

            def serve():
                c, _ = srv.accept()
                c.sendall(b"LOOPBACK-" + c.recv(100))
                c.close()

            th = threading.Thread(target=serve, daemon=True)
            th.start()
            c = socket.create_connection((host, port), timeout=3)
            c.sendall(b"hello")
            data = c.recv(100)
            c.close()
            srv.close()
            out[host] = {"ok": data == b"LOOPBACK-hello", "data": data.decode(errors="replace"),
                         "elapsed_ms": round(now_ms() - t0, 1)}
        except OSError as e:
            out[host] = err_result("loopback", e, t0)
    return {"ok": all(v["ok"] for v in out.values()), "results": out}


def step_env(_):
    names = ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy",
             "ALL_PROXY", "all_proxy"]
    env = {n: os.environ[n] for n in names if n in os.environ}
    try:
        with open("/etc/resolv.conf") as f:
            resolv = f.read()
    except OSError as e:
        resolv = "<%s>" % e
    try:
        with open("/etc/hosts") as f:
            hosts = f.read()
    except OSError as e:
        hosts = "<%s>" % e
    return {"ok": True, "env": env, "resolv_conf": resolv, "hosts": hosts}


def step_proxy(s):
    t0 = now_ms()
    try:
        sock = socket.create_connection((s.get("proxy", "169.254.77.1"), s.get("port", 3128)), timeout=5)
    except OSError as e:
        return err_result("connect", e, t0)
    data = b""
    try:
        sock.sendall(s["request"].encode())
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
            # A CONNECT answer leaves the tunnel open: its head is enough.
            if s["request"].startswith("CONNECT") and b"\r\n\r\n" in data:
                break
    except OSError as e:
        r = err_result("recv", e, t0)
        r["data"] = data.decode(errors="replace")
        sock.close()
        return r
    sock.close()
    text = data.decode(errors="replace")
    parts = text.split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    return {"ok": status == 200, "status": status, "data": text[-1000:], "errno": None,
            "elapsed_ms": round(now_ms() - t0, 1)}


def step_trickle(s):
    t0 = now_ms()
    try:
        sock = socket.create_connection((s["host"], s["port"]), timeout=5)
    except OSError as e:
        return err_result("connect", e, t0)
    data = b""
    try:
        for i, chunk in enumerate(s["chunks"]):
            if i:
                time.sleep(s.get("delay", 0.4))
            sock.sendall(chunk.encode())
        while True:
            c = sock.recv(4096)
            if not c:
                break
            data += c
    except OSError as e:
        r = err_result("send/recv", e, t0)
        r["data"] = data.decode(errors="replace")
        sock.close()
        return r
    sock.close()
    return {"ok": bool(data), "stage": "done", "errno": None if data else "EOF",
            "data": data.decode(errors="replace")[-1000:], "elapsed_ms": round(now_ms() - t0, 1)}


def step_keepalive(s):
    """Sends s["requests"] one after the other on one connection, reading
    each answer (head and Content-Length body) before sending the next."""
    t0 = now_ms()
    try:
        sock = socket.create_connection((s["host"], s["port"]), timeout=5)
    except OSError as e:
        return err_result("connect", e, t0)
    answers = []
    buf = b""
    for i, req in enumerate(s["requests"]):
        try:
            sock.sendall(req.encode("latin-1"))
            while b"\r\n\r\n" not in buf:
                c = sock.recv(4096)
                if not c:
                    raise ConnectionError(errno.ECONNABORTED, "EOF")
                buf += c
            head, buf = buf.split(b"\r\n\r\n", 1)
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            while len(buf) < length:
                c = sock.recv(4096)
                if not c:
                    raise ConnectionError(errno.ECONNABORTED, "EOF")
                buf += c
            answers.append((head + b"\r\n\r\n" + buf[:length]).decode(errors="replace"))
            buf = buf[length:]
        except OSError as e:
            r = err_result("request %d" % (i + 1), e, t0)
            r["answers"] = answers
            sock.close()
            return r
    sock.close()
    return {"ok": True, "stage": "done", "errno": None, "answers": answers, "elapsed_ms": round(now_ms() - t0, 1)}


def step_slowheads(s):
    """Opens s["count"] connections to host:port that each send only the
    start of a request line, then one full request on a new connection;
    reports that one's answer (the slow ones stay open until then)."""
    t0 = now_ms()
    held, opened = [], 0
    for _ in range(s["count"]):
        try:
            c = socket.create_connection((s["host"], s["port"]), timeout=5)
            c.sendall(s.get("partial", "GET http://x").encode())
            held.append(c)
            opened += 1
        except OSError:
            break
    time.sleep(s.get("settle", 0.3))
    r = step_proxy({"request": s["request"], "proxy": s["host"], "port": s["port"]})
    r["opened"] = opened
    for c in held:
        c.close()
    r["elapsed_total_ms"] = round(now_ms() - t0, 1)
    return r


def step_sleep(s):
    time.sleep(s["seconds"])
    return {"ok": True}


def step_sockets(s):
    host, port, line = s["host"], s["port"], (s["send"] + "\n").encode()
    out = {}

    def exchange(sock):
        sock.settimeout(5)
        sock.sendall(line)
        return sock.recv(4096).decode(errors="replace")

    # Non-blocking: connect_ex answers at once, the socket becomes writable.
    t0 = now_ms()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    rc = sock.connect_ex((host, port))
    r = {"connect": errno.errorcode.get(rc, "ok") if rc else "ok", "connect_ms": round(now_ms() - t0, 1)}
    import select
    _, w, _ = select.select([], [sock], [], 5)
    r["writable"] = bool(w)
    r["so_error"] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    try:
        sock.setblocking(True)
        r["reply"] = exchange(sock)
    except OSError as e:
        r["error"] = errno.errorcode.get(e.errno, str(e))
    sock.close()
    out["nonblocking"] = r

    # Registered with epoll before connect (as Go, Netty, Boost.Asio do).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ep = select.epoll()
    ep.register(sock.fileno(), select.EPOLLIN)
    r = {}
    try:
        sock.connect((host, port))
        sock.sendall(line)
        r["events"] = bool(ep.poll(5))
        r["reply"] = sock.recv(4096).decode(errors="replace")
    except OSError as e:
        r["error"] = errno.errorcode.get(e.errno, str(e))
    ep.close()
    sock.close()
    out["epoll_first"] = r

    # Non-blocking to a closed port, then connect() again to learn how it
    # went (as Ruby's connect_nonblock and Perl's IO::Socket::IP ask).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    rc = sock.connect_ex((host, s["dead_port"]))
    r = {"connect": errno.errorcode.get(rc, "ok") if rc else "ok"}
    select.select([], [sock], [], 5)
    rc = sock.connect_ex((host, s["dead_port"]))
    r["again"] = errno.errorcode.get(rc, "ok") if rc else "ok"
    sock.close()
    out["nonblocking_refused"] = r

    # Refused, then the same socket connected elsewhere.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    r = {}
    try:
        sock.connect((host, s["dead_port"]))
        r["first"] = "ok"
    except OSError as e:
        r["first"] = errno.errorcode.get(e.errno, str(e))
    try:
        sock.connect((host, port))
        r["reply"] = exchange(sock)
    except OSError as e:
        r["error"] = errno.errorcode.get(e.errno, str(e))
    sock.close()
    out["refused_then_retry"] = r
    out["ok"] = True
    return out


OPS = {"run": step_run, "tcp": step_tcp, "udp": step_udp, "dns": step_dns, "resolve": step_resolve,
       "icmp": step_icmp, "loopback": step_loopback, "env": step_env, "sleep": step_sleep,
       "proxy": step_proxy, "trickle": step_trickle, "sockets": step_sockets, "keepalive": step_keepalive,
       "slowheads": step_slowheads}


def main():
    with open(sys.argv[1]) as f:
        steps = json.load(f)
    results = []
    for s in steps:
        try:
            r = OPS[s["op"]](s)
        except Exception as e:  # a probe bug must show up as such, not as a block
            r = {"ok": False, "stage": "probe-bug", "errno": "PROBE-BUG", "error": repr(e)}
        r["op"] = s["op"]
        results.append(r)
    sys.stdout.write("WARD-PROBE-RESULT " + json.dumps(results) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
