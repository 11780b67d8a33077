"""The hermetic "host" of the egress suite: a network namespace with made-up
addresses and the servers that answer on them.

egress_test.py runs inside a fresh network namespace (`unshare -n` as root,
`unshare --user --map-current-user --net --keep-caps` unprivileged) and calls
Setup() to build this network there, then Servers.Start(). Everything lives as
long as the driver's process: when it exits the namespace, its veth pair and
every listener go with it.

  h0 (veth; peer h1 in the same namespace)   addresses        made-up names
     198.51.100.1/24, 2001:db8:1::1/64        the "host's own"  self.wild.test
  local routes on lo (AnyIP, see below):
     203.0.113.10, 2001:db8::10               allowed.test
     203.0.113.11, 2001:db8::11               denied.test
     203.0.113.12                             a.wild.test, b.c.wild.test
     203.0.113.13                             evil.allowed.test
     203.0.113.14                             wild.test
     203.0.113.15                             good.allowed.test
     2001:db8::20                             ipv6only.test (AAAA only)
     192.0.2.1 (no route answers it)          hole.wild.test (a server that never answers)
     (127.0.0.1, ::1)                         rebind.test, rebind6.test (DNS rebinding)
     203.0.113.53, 2001:db8::53               the DNS server
     10.20.1.5 (in 10.20.0.0/16)              private.wild.test (RFC 1918; the CIDR rule case)
  lo 127.0.0.1                                the host's loopback services

The servers' addresses are documentation blocks (RFC 5737, RFC 3849), outside
ward's DNS rebinding guard, and are served through local routes
(`ip route add local 203.0.113.0/24 dev lo`) rather than as interface
addresses: ward guards the addresses of the host's interfaces (getifaddrs),
and these stand for remote hosts. Only h0's own addresses are interface
addresses (self.wild.test: the rebinding case for the host's own address).
10.20.1.5 is private on purpose: reached only through an address rule
(R_CIDR) or refused by the guard.

Servers (every address unless said otherwise; each logs what it saw, so a
test can assert that a denied connection never reached it):
  tcp 80             HTTP     body "WARD-HTTP-OK host=H local=IP:PORT path=P"
  tcp 443, 8443      HTTPS    self-signed (openssl req at start), body with sni=
  tcp 5432,5433,7777 echo     one line -> "ECHO line local=IP:PORT"
  tcp 8444 (HTTPS), 5434 (echo)   IPv4 addresses only: IPv6 connections are refused
  tcp 7000           hold     reads, never answers, records when the peer closes
  udp 9999           echo     logs every datagram (one socket per address)
  127.0.0.1:8080, :8081 HTTP  the host's loopback (not on any other address)
  203.0.113.53:53 udp+tcp, [2001:db8::53]:5353 udp+tcp   DNS for the names above,
                     NXDOMAIN for the rest; logs every question
"""
import os
import socket
import ssl
import struct
import subprocess
import threading
import time

ADDR4 = {
    "allowed": "203.0.113.10",
    "denied": "203.0.113.11",
    "wild": "203.0.113.12",
    "evil": "203.0.113.13",
    "wildbase": "203.0.113.14",
    "good": "203.0.113.15",
    "dns": "203.0.113.53",
    "cidr": "10.20.1.5",
}
# The driver's own interface address (h0): one of "the host's own addresses".
SELF4 = "198.51.100.1"
SELF6 = "2001:db8:1::1"
ADDR6 = {
    "allowed": "2001:db8::10",
    "denied": "2001:db8::11",
    "v6only": "2001:db8::20",
    "dns": "2001:db8::53",
}

# name -> {qtype: [addresses]}
DNS_RECORDS = {
    "allowed.test": {"A": ["203.0.113.10"], "AAAA": ["2001:db8::10"]},
    "denied.test": {"A": ["203.0.113.11"], "AAAA": ["2001:db8::11"]},
    "a.wild.test": {"A": ["203.0.113.12"]},
    "b.c.wild.test": {"A": ["203.0.113.12"]},
    "wild.test": {"A": ["203.0.113.14"]},
    "evil.allowed.test": {"A": ["203.0.113.13"]},
    "good.allowed.test": {"A": ["203.0.113.15"]},
    "ipv6only.test": {"AAAA": ["2001:db8::20"]},
    # An address nothing answers (routed out of h0, whose peer has none of
    # it): a connection attempt there waits, then fails.
    "hole.wild.test": {"A": ["192.0.2.1"]},
    # DNS rebinding into a private network, and to the host's own address.
    "private.wild.test": {"A": ["10.20.1.5"]},
    "self.wild.test": {"A": ["198.51.100.1"]},
    # DNS rebinding: allowed names whose addresses are the host's loopback.
    "rebind.test": {"A": ["127.0.0.1"]},
    "rebind6.test": {"AAAA": ["::1"]},
}
QTYPE_NUM = {"A": 1, "AAAA": 28}
QTYPE_NAME = {v: k for k, v in QTYPE_NUM.items()}


class SetupError(Exception):
    pass


def _ip(*args):
    p = subprocess.run(["ip"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise SetupError("ip %s: %s" % (" ".join(args), p.stderr.decode().strip()))


def Setup():
    """Builds the network above in the current (fresh) network namespace."""
    _ip("link", "set", "lo", "up")
    _ip("link", "add", "h0", "type", "veth", "peer", "name", "h1")
    _ip("link", "set", "h0", "up")
    _ip("link", "set", "h1", "up")
    _ip("addr", "add", SELF4 + "/24", "dev", "h0")
    _ip("-6", "addr", "add", SELF6 + "/64", "dev", "h0", "nodad")
    # The servers' addresses: local, but on no interface (see the top).
    _ip("route", "add", "local", "203.0.113.0/24", "dev", "lo")
    _ip("route", "add", "local", "10.20.0.0/16", "dev", "lo")
    _ip("-6", "route", "add", "local", "2001:db8::/64", "dev", "lo")
    _ip("route", "add", "default", "dev", "h0")
    _ip("-6", "route", "add", "default", "dev", "h0")
    # Let this process's group open ICMP ping sockets here: the ICMP case's
    # control pings from outside the sandbox.
    gid = os.getgid()
    try:
        with open("/proc/sys/net/ipv4/ping_group_range", "w") as f:
            f.write("%d %d" % (gid, gid))
    except OSError:
        pass


def norm_ip(a):
    return a[7:] if a.startswith("::ffff:") else a


class Log:
    """Thread-safe list of dicts: what the servers saw."""

    def __init__(self):
        self._lock = threading.Lock()
        self._items = []

    def add(self, **kw):
        kw.setdefault("time", time.monotonic())
        with self._lock:
            self._items.append(kw)
        return kw

    def items(self):
        with self._lock:
            return list(self._items)

    def containing(self, token):
        return [i for i in self.items() if any(token in str(v) for v in i.values())]


IP_FREEBIND = 15
IPV6_FREEBIND = 78


def _freebind(s, fam):
    """An address of a local route (2001:db8::53) is not an interface
    address: IPv6 binds to it only with IPV6_FREEBIND."""
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
    else:
        s.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)


def _listen_tcp(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    _freebind(s, fam)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if host == "::" else 1)
    s.bind((host, port))
    s.listen(64)
    return s


def _listen_udp(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    _freebind(s, fam)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if host == "::" else 1)
    s.bind((host, port))
    return s


def _thread(fn, *args):
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


def _read_http_head(conn, limit=65536):
    data = b""
    while b"\r\n\r\n" not in data and len(data) < limit:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _parse_http(data):
    head = data.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    method, path = (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
    host = ""
    for line in lines[1:]:
        if line.lower().startswith("host:"):
            host = line.split(":", 1)[1].strip()
    return method, path, host


class Servers:
    def __init__(self, workdir):
        self.workdir = workdir
        self.http = Log()      # HTTP and HTTPS requests
        self.echo = Log()      # raw TCP echo
        self.hold = Log()      # the server that never answers
        self.udp = Log()       # UDP datagrams
        self.dns = Log()       # DNS questions
        self.conns = Log()     # every accepted TCP connection (all servers)
        self.cert = os.path.join(workdir, "cert.pem")
        self.key = os.path.join(workdir, "key.pem")

    # -- start ---------------------------------------------------------------
    def Start(self):
        self._make_cert()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)

        def on_sni(sslsock, name, _ctx):
            # Logged at the ClientHello, before any request: a forwarded
            # ClientHello shows here even if the handshake then fails.
            sslsock.ward_sni = name
            try:
                local = sslsock.getsockname()
                self.http.add(server="tls-hello", local=norm_ip(local[0]), port=local[1], sni=name, host="",
                              path="", method="")
            except OSError:
                pass

        ctx.sni_callback = on_sni
        self._tls = ctx
        for port in (80,):
            self._serve_tcp(_listen_tcp("::", port), self._handle_http, False)
        for port in (443, 8443):
            self._serve_tcp(_listen_tcp("::", port), self._handle_http, True)
        for port in (5432, 5433, 7777):
            self._serve_tcp(_listen_tcp("::", port), self._handle_echo)
        # IPv4 only: an IPv6 connection to these ports is refused (the
        # dual-stack fallback case).
        self._serve_tcp(_listen_tcp("0.0.0.0", 8444), self._handle_http, True)
        self._serve_tcp(_listen_tcp("0.0.0.0", 5434), self._handle_echo)
        self._serve_tcp(_listen_tcp("::", 7000), self._handle_hold)
        for port in (8080, 8081):
            self._serve_tcp(_listen_tcp("127.0.0.1", port), self._handle_http, False)
        # One UDP socket per address: a wildcard socket would answer from
        # the primary address, which a connected client socket ignores.
        for a in list(ADDR4.values()) + list(ADDR6.values()) + [SELF4, SELF6, "127.0.0.1"]:
            _thread(self._udp_echo, _listen_udp(a, 9999))
        for host, port in ((ADDR4["dns"], 53), (ADDR6["dns"], 5353)):
            _thread(self._dns_udp, _listen_udp(host, port))
            self._serve_tcp(_listen_tcp(host, port), self._handle_dns_tcp)

    def _make_cert(self):
        san = "DNS:allowed.test,DNS:*.allowed.test,DNS:denied.test,DNS:*.wild.test,DNS:ipv6only.test," \
              "IP:203.0.113.10,IP:203.0.113.11"
        p = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "2", "-subj", "/CN=allowed.test", "-addext", "subjectAltName=" + san,
             "-keyout", self.key, "-out", self.cert],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if p.returncode != 0:
            raise SetupError("openssl req: " + p.stderr.decode()[-500:])
        os.chmod(self.cert, 0o644)

    def _serve_tcp(self, lsock, handler, *extra):
        def loop():
            while True:
                try:
                    conn, peer = lsock.accept()
                except OSError:
                    return
                try:
                    local = conn.getsockname()
                    self.conns.add(local=norm_ip(local[0]), port=local[1], peer=norm_ip(peer[0]))
                except OSError:
                    pass
                _thread(self._guard, handler, conn, peer, *extra)
        _thread(loop)

    @staticmethod
    def _guard(handler, conn, peer, *extra):
        try:
            handler(conn, peer, *extra)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    # -- handlers ------------------------------------------------------------
    def _handle_http(self, conn, peer, tls):
        local = conn.getsockname()
        lip, lport = norm_ip(local[0]), local[1]
        conn.settimeout(10)
        sni = None
        if tls:
            conn = self._tls.wrap_socket(conn, server_side=True)
            sni = getattr(conn, "ward_sni", None)
        while True:
            data = _read_http_head(conn)
            if not data:
                break
            method, path, host = _parse_http(data)
            self.http.add(server="https" if tls else "http", local=lip, port=lport, peer=norm_ip(peer[0]),
                          sni=sni, host=host, path=path, method=method)
            body = "WARD-HTTP%s-OK host=%s sni=%s local=%s:%d path=%s\n" % (
                "S" if tls else "", host, sni, lip, lport, path)
            # Paths under /ka/ keep the connection open for the next request
            # (the keep-alive cases); every other answer closes it.
            keep = "/ka/" in path  # origin-form or absolute-form (through the explicit proxy)
            conn.sendall(("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                          "Connection: %s\r\n\r\n%s" % (len(body), "keep-alive" if keep else "close",
                                                           body)).encode())
            if not keep:
                break
        if tls:
            try:
                conn.unwrap()
            except (OSError, ssl.SSLError, ValueError):
                pass

    def _handle_echo(self, conn, peer):
        local = conn.getsockname()
        lip, lport = norm_ip(local[0]), local[1]
        conn.settimeout(10)
        data = b""
        while b"\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        line = data.decode(errors="replace").strip()
        self.echo.add(local=lip, port=lport, peer=norm_ip(peer[0]), data=line)
        conn.sendall(("ECHO %s local=%s:%d\n" % (line, lip, lport)).encode())

    def _handle_hold(self, conn, peer):
        local = conn.getsockname()
        entry = self.hold.add(local=norm_ip(local[0]), port=local[1], peer=norm_ip(peer[0]), data="",
                              closed_at=None)
        conn.settimeout(None)
        while True:
            try:
                chunk = conn.recv(4096)
            except OSError as e:
                entry["close_reason"] = str(e)
                break
            if not chunk:
                entry["close_reason"] = "eof"
                break
            entry["data"] += chunk.decode(errors="replace")
        entry["closed_at"] = time.monotonic()

    def _udp_echo(self, sock):
        while True:
            data, peer = sock.recvfrom(65536)
            local = sock.getsockname()
            self.udp.add(local=norm_ip(local[0]), port=local[1], peer=norm_ip(peer[0]),
                         data=data.decode(errors="replace"))
            sock.sendto(b"UDP-ECHO " + data, peer)

    # -- DNS -----------------------------------------------------------------
    def _dns_answer(self, query, transport, server):
        if len(query) < 12:
            return None
        qid, flags, qd, _, _, _ = struct.unpack("!HHHHHH", query[:12])
        off = 12
        labels = []
        while off < len(query) and query[off] != 0:
            n = query[off]
            if n & 0xC0:
                return None
            labels.append(query[off + 1:off + 1 + n].decode(errors="replace"))
            off += 1 + n
        off += 1
        if qd != 1 or off + 4 > len(query):
            return None
        qtype, qclass = struct.unpack("!HH", query[off:off + 4])
        question = query[12:off + 4]
        name = ".".join(labels).lower()
        self.dns.add(name=name, qtype=QTYPE_NAME.get(qtype, str(qtype)), transport=transport, server=server,
                     raw=query.hex())
        rec = DNS_RECORDS.get(name)
        answers = []
        if rec is not None:
            for addr in rec.get(QTYPE_NAME.get(qtype, ""), []):
                fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
                rdata = socket.inet_pton(fam, addr)
                answers.append(struct.pack("!HHHIH", 0xC00C, qtype, 1, 30, len(rdata)) + rdata)
        rcode = 0 if rec is not None else 3
        rflags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | rcode
        return struct.pack("!HHHHHH", qid, rflags, 1, len(answers), 0, 0) + question + b"".join(answers)

    def _dns_udp(self, sock):
        server = "%s:%d" % sock.getsockname()[:2]
        while True:
            data, peer = sock.recvfrom(65536)
            try:
                ans = self._dns_answer(data, "udp", server)
            except (ValueError, struct.error, IndexError):
                ans = None
            if ans:
                sock.sendto(ans, peer)

    def _handle_dns_tcp(self, conn, peer):
        server = "%s:%d" % conn.getsockname()[:2]
        conn.settimeout(10)
        buf = b""
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                return
            buf += chunk
            while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                n = struct.unpack("!H", buf[:2])[0]
                msg, buf = buf[2:2 + n], buf[2 + n:]
                ans = self._dns_answer(msg, "tcp", server)
                if ans:
                    conn.sendall(struct.pack("!H", len(ans)) + ans)

    # -- queries for the tests ----------------------------------------------
    def seen(self, token):
        """Everything any server logged that contains `token`."""
        out = []
        for log in (self.http, self.echo, self.hold, self.udp, self.dns):
            out += log.containing(token)
        return out

    def conns_between(self, addr, port, t0, t1):
        """TCP connections accepted at addr:port between t0 and t1 (+ slack)."""
        return [c for c in self.conns.items()
                if c["local"] == addr and c["port"] == port and t0 <= c["time"] <= t1 + 0.5]

    def dns_names(self):
        return {i["name"] for i in self.dns.items()}

    def dns_asked(self, name):
        name = name.lower().rstrip(".")
        return [i for i in self.dns.items() if i["name"] == name]
