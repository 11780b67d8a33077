#!/usr/bin/python3
"""End-to-end tests of ward's network egress control, hermetic.

    egress_test.py --ward PATH [--as-user USER] [--only CASE,...] [--list]
    egress_test.py --ward PATH --harness-only [-- CMD ...]   (the network alone)

The driver re-executes itself in a new network namespace that plays the host
(`unshare --net` as root; `unshare --user --map-current-user --net
--keep-caps` otherwise), builds a veth with made-up addresses there, and
starts HTTP, HTTPS (self-signed, made at start), TCP/UDP echo servers and a
DNS server for made-up names (net_harness.py). ward runs in that namespace
too, pointed at that DNS server with --dns-server, and builds its own nested
sandbox namespace. Nothing reaches the real network; everything goes away
with the driver's process.

Inside each sandbox, probe.py performs steps (curl, nc, dig, node, openssl,
or raw socket calls) and reports what the kernel said. Every case asserts
  - the outcome inside the sandbox (exit code / errno, and that a denial is
    fast: refused or reset, not a hang),
  - the decision ward recorded in its --json result ("egress" events: kind,
    domain, address, port, decision, rule),
  - what the servers saw (a denied connection never reached them; a denied
    name never reached the upstream DNS),
and has a positive control: the same action succeeding where it is allowed.

As root, ward runs as root; in the unprivileged run (scripts/as-test-user.sh,
or --as-user wardtest from root) ward runs as that user without any
capability: the driver keeps its namespace capabilities only to build the
network and bind ports < 1024, then clears them before starting ward.

Output: one line per case, PASS / FAIL (with details) / SKIP (with reason).
Exit 0 if every case passed (skips allowed), 1 otherwise, 77 if this
environment cannot run the suite (no network namespaces, no veth, tools
missing).
"""
import argparse
import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

PY = "/usr/bin/python3"
FAST_MS = 4000          # a denial must come at least this fast (refused/reset, not a hang: the probes' socket timeouts are 5 s and up)
GATEWAY = "169.254.77.1"
PROXY_URL = "http://169.254.77.1:3128"
SKIP_RC = 77

# The policy most cases use. "allowed.test:443,80,7777" is the multi-port form
# ("github.test:443,22" in the spec).
R_ALLOWED = "allowed.test:443,80,7777"
R_SUB = "*.allowed.test:443"
R_WILD = "*.wild.test:443"
R_CIDR = "10.20.0.0/16:5432"
R_EVIL = "evil.allowed.test"
STD_ALLOW = [R_ALLOWED, R_SUB, R_WILD, R_CIDR]
STD_DENY = [R_EVIL]


def log(msg):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------
# Outer half: get into a fresh network namespace (and drop to the test user).
# --------------------------------------------------------------------------

def outer(args):
    if args.as_user:
        if os.getuid() != 0:
            if _user_name() == args.as_user:
                args.as_user = None
            else:
                log("SKIP: --as-user needs root (running as uid %d)" % os.getuid())
                return SKIP_RC
        else:
            # Same drop as scripts/as-test-user.sh.
            argv = ["setpriv", "--reuid=" + args.as_user, "--regid=" + args.as_user, "--clear-groups",
                    "--reset-env", "--", PY, os.path.abspath(__file__), "--ward", os.path.abspath(args.ward)]
            argv += _passthrough(args)
            os.execvp("setpriv", argv)
    missing = [t for t in ("unshare", "ip", "openssl", "curl") if not shutil.which(t)]
    if missing:
        log("SKIP: cannot run the egress suite: missing %s" % ", ".join(missing))
        return SKIP_RC
    if not os.access(args.ward, os.X_OK):
        log("FAIL: ward binary %s is not executable by uid %d" % (args.ward, os.getuid()))
        return 1
    if os.getuid() == 0:
        ns = ["unshare", "--net", "--"]
    else:
        ns = ["unshare", "--user", "--map-current-user", "--net", "--keep-caps", "--"]
    p = subprocess.run(ns + ["true"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        log("SKIP: cannot create a network namespace for the test host (%s): %s"
            % (" ".join(ns[:-1]), p.stderr.decode().strip()))
        return SKIP_RC
    argv = ns + [PY, os.path.abspath(__file__), "--inner", "--ward", os.path.abspath(args.ward)]
    argv += _passthrough(args)
    return subprocess.call(argv)


def _user_name():
    import pwd
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _passthrough(args):
    out = []
    if args.only:
        out += ["--only", args.only]
    if args.via != "run":
        out += ["--via", args.via]
    if args.keep:
        out += ["--keep"]
    if args.harness_only:
        out += ["--harness-only"]
    if args.verbose:
        out += ["--verbose"]
    if args.cmd:
        out += ["--"] + args.cmd
    return out


def drop_capabilities():
    """From now on, programs this thread starts (ward) hold no capability.

    Unprivileged, the driver runs with the namespace's capabilities as ambient
    ones (unshare --keep-caps) so `ip` and the servers' binds work; ward must
    not inherit them: it is tested as the plain user it would run as. Clearing
    the permitted and inheritable sets clears the ambient set too. (Only this
    thread: the servers' threads keep theirs, which they no longer use.)"""
    libc = ctypes.CDLL(None, use_errno=True)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    hdr = Header(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (Data * 2)()
    if libc.capset(ctypes.byref(hdr), data) != 0:
        raise OSError(ctypes.get_errno(), "capset(0)")
    with open("/proc/thread-self/status") as f:
        caps = {l.split(":")[0]: int(l.split()[1], 16) for l in f if l.startswith("Cap")}
    if caps["CapEff"] or caps["CapPrm"] or caps["CapInh"] or caps["CapAmb"]:
        raise OSError("capabilities remain after capset: %s" % caps)


# --------------------------------------------------------------------------
# Running ward
# --------------------------------------------------------------------------

class Run:
    """One `ward run`: exit status, the probe's step results, ward's --json."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def describe(self):
        lines = ["    ward %s -> exit %s" % (" ".join(self.flags), self.rc)]
        err = "\n".join(l for l in self.stderr.splitlines() if not l.startswith("{"))
        if err.strip():
            lines.append("    ward stderr: " + err.strip()[-800:].replace("\n", "\n      "))
        lines.append("    policy network: " + json.dumps(self.policy.get("network")))
        lines.append("    egress events (%d):" % len(self.events))
        for e in self.events:
            lines.append("      " + json.dumps(e, sort_keys=True))
        if self.steps is None:
            lines.append("    probe printed no result; stdout: " + self.stdout[-500:])
        else:
            for i, (s, r) in enumerate(zip(self.step_specs, self.steps)):
                what = " ".join(s["argv"]) if s["op"] == "run" else json.dumps(
                    {k: v for k, v in s.items() if k != "op"})
                rr = {k: (v[-300:] if isinstance(v, str) else v) for k, v in r.items() if k != "op"}
                lines.append("    step %d %s %s\n      -> %s" % (i, s["op"], what, json.dumps(rr)))
        return "\n".join(lines)

    def events_where(self, **f):
        return [e for e in self.events if _event_matches(e, f)]


def _norm(v):
    return v.lower().rstrip(".") if isinstance(v, str) else v


def _event_matches(e, f):
    for k, want in f.items():
        have = e.get(k)
        if k == "domain":
            if _norm(have or "") != _norm(want):
                return False
        elif k == "address":
            if have is None or _norm(have).strip("[]") != _norm(want):
                return False
        elif callable(want):
            if not want(have):
                return False
        elif have != want:
            return False
    return True


class Failure(Exception):
    pass


class Skip(Exception):
    pass


class Suite:
    def __init__(self, ward, work, runtime, servers, verbose, via="run"):
        self.ward = ward
        self.via = via
        self.work = work
        self.servers = servers
        self.verbose = verbose
        self.n = 0
        self.probe = os.path.join(work, "probe.py")
        shutil.copy(os.path.join(HERE, "probe.py"), self.probe)
        os.chmod(self.probe, 0o644)
        self.env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8",
                    "HOME": work, "USER": _user_name(), "WARD_RUNTIME_DIR": runtime}
        help_text = subprocess.run([ward, "run", "--help"], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT).stdout.decode()
        self.has_dns_option = "--dns-server" in help_text

    def policy(self, allow=(), deny=(), default="deny", network=None):
        net = network if network is not None else {
            "egress": {"default": default, "allow": list(allow), "deny": list(deny)}}
        return {"ward": 1, "extends": "minimal", "filesystem": {"read": [self.work]}, "network": net}

    def write_policy(self, policy):
        self.n += 1
        path = os.path.join(self.work, "policy-%d.json" % self.n)
        with open(path, "w") as f:
            json.dump(policy, f, indent=1)
        os.chmod(path, 0o644)
        return path

    def _ward(self, flags, timeout):
        """ward FLAGS in the work directory: (exit status or "HUNG", stdout, stderr)."""
        try:
            p = subprocess.run([self.ward] + flags, cwd=self.work, env=self.env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout)
            return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        except subprocess.TimeoutExpired as e:
            return "HUNG", (e.stdout or b"").decode(errors="replace"), (e.stderr or b"").decode(errors="replace")

    def _setup_flags(self, policy, timeout_ms, dns):
        flags = ["--policy", self.write_policy(policy), "--timeout-ms", str(timeout_ms)]
        if isinstance(policy.get("network"), dict):
            for d in dns:
                flags += ["--dns-server", d]
        return flags

    def provision(self, t, policy, timeout_ms=30000, dns=("203.0.113.53",)):
        """A held sandbox with POLICY, started: its name, or (None, status,
        stderr) when ward refused it (provision's or start's status)."""
        name = "egress-%d-%s" % (self.n + 1, secrets.token_hex(3))
        flags = ["provision", "--name", name] + self._setup_flags(policy, timeout_ms, dns)
        rc, _, err = self._ward(flags, 30)
        if rc == 0:
            rc, _, err2 = self._ward(["start", name], 30)
            err += err2
            if rc != 0:
                self.deprovision(t, name)
        return (name, 0, err) if rc == 0 else (None, rc, err)

    def sandbox_dir(self, name):
        rt = self.env["WARD_RUNTIME_DIR"]
        return os.path.join(rt, os.readlink(os.path.join(rt, "names", name)))

    def deprovision(self, t, name):
        rc, _, err = self._ward(["deprovision", name], 60)
        t.check(rc == 0, "ward deprovision %s: exit %s: %s" % (name, rc, err.strip()[-300:]))

    def run(self, t, policy, steps, timeout_ms=30000, dns=("203.0.113.53",), timeout=60):
        """Runs probe.py STEPS inside `ward run --json --policy POLICY`, or
        with --via exec in a held sandbox of POLICY (provision, start,
        `ward exec --json`, deprovision)."""
        if self.via != "exec":
            return self._probe(t, policy, steps, ["run", "--json"] + self._setup_flags(policy, timeout_ms, dns),
                               timeout)
        t0 = time.monotonic()
        name, rc, err = self.provision(t, policy, timeout_ms, dns)
        if name is None:
            # Refused at provision or start: that is the outcome, as ward run's
            # refusal would be (it carries the same status and message).
            r = self._probe(t, policy, steps, None, timeout, refused=(rc, err))
            r.t0 = t0
            return r
        try:
            r = self._probe(t, policy, steps, ["exec", "--json", name], timeout, check_left=False)
        finally:
            self.deprovision(t, name)
        self.nothing_left(t, r)
        r.t0 = t0
        return r

    def exec(self, t, policy, name, steps, timeout=60):
        """probe.py STEPS in the running held sandbox NAME (made with POLICY);
        what they leave running is the sandbox's until it is deprovisioned."""
        return self._probe(t, policy, steps, ["exec", "--json", name], timeout, check_left=False)

    def nothing_left(self, t, r):
        left = processes_mentioning(r.steps_file)
        if left:
            t.fail("processes of the sandbox outlived ward: %s" % left, r)

    def _probe(self, t, policy, steps, flags, timeout, refused=None, check_left=True):
        sfile = os.path.join(self.work, "steps-%d-%s.json" % (self.n, secrets.token_hex(3)))
        with open(sfile, "w") as f:
            json.dump(steps, f)
        os.chmod(sfile, 0o644)
        t0 = time.monotonic()
        if refused is None:
            rc, out, err = self._ward(flags + ["--", PY, self.probe, sfile], timeout)
        else:
            flags = ["provision/start (refused)"]
            rc, out, err = refused[0], "", refused[1] + "\n" + json.dumps(
                {"exitStatus": refused[0], "error": refused[1].strip()})
        t1 = time.monotonic()
        result = None
        lines = [l for l in err.splitlines() if l.strip()]
        if lines:
            try:
                result = json.loads(lines[-1])
            except ValueError:
                result = None
        steps_out = None
        for line in out.splitlines():
            if line.startswith("WARD-PROBE-RESULT "):
                steps_out = json.loads(line[len("WARD-PROBE-RESULT "):])
        events = (result or {}).get("egress") or []
        r = Run(rc=rc, stdout=out, stderr=err, result=result, events=events, steps=steps_out,
                step_specs=steps, policy=policy, flags=flags, t0=t0, t1=t1, steps_file=sfile)
        if self.verbose:
            log(r.describe())
        t.runs.append(r)
        # Every run: ward answered with --json, the probe ran, the events are
        # well-formed, and nothing of the sandbox is left.
        if rc == "HUNG":
            t.fail("ward %s did not finish within %ds" % (flags[0], timeout), r)
        if result is None:
            t.fail("no --json result on the last line of ward's stderr", r)
        if steps_out is None and rc != 124:
            t.fail("the probe printed no result (ward exit %s)" % rc, r)
        self._check_events(t, r)
        if check_left:
            self.nothing_left(t, r)
        if steps_out is None:
            steps_out = [{"ok": False, "errno": "NO-PROBE-RESULT"} for _ in steps]
            r.steps = None
        r.s = steps_out
        return r

    def _check_events(self, t, r):
        if "egress" in (r.result or {}) and not isinstance(r.result["egress"], list):
            t.fail("--json egress is not a list", r)
            return
        for e in r.events:
            problems = []
            if e.get("kind") not in ("dns", "tcp", "http-proxy", "udp"):
                problems.append("kind")
            if e.get("decision") not in ("allow", "deny"):
                problems.append("decision")
            if not isinstance(e.get("domain"), str):
                problems.append("domain")
            if not isinstance(e.get("rule"), str):
                problems.append("rule")
            if not isinstance(e.get("reason"), str) or not e.get("reason"):
                problems.append("reason")
            if e.get("kind") in ("tcp", "http-proxy", "udp") and not isinstance(e.get("port"), int):
                problems.append("port")
            if e.get("kind") == "tcp" and not e.get("address"):
                problems.append("address")
            if problems:
                t.fail("malformed egress event (%s): %s" % (", ".join(problems), json.dumps(e)), r)


def processes_mentioning(text):
    found = []
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append("%s: %s" % (pid, cmd[:120]))
    return found


# --------------------------------------------------------------------------
# Case context and assertions
# --------------------------------------------------------------------------

class T:
    def __init__(self, suite, name):
        self.suite = suite
        self.name = name
        self.failures = []
        self.notes = []
        self.runs = []

    def tok(self, what=""):
        return "t%s%s" % (secrets.token_hex(4), ("-" + what) if what else "")

    def fail(self, msg, run=None):
        self.failures.append((msg, run))

    def check(self, cond, msg, run=None):
        if not cond:
            self.fail(msg, run)
        return bool(cond)

    def note(self, msg):
        self.notes.append(msg)

    def skip(self, reason):
        raise Skip(reason)

    # -- outcomes inside the sandbox --
    def curl_ok(self, r, i, token, marker, what, extra=()):
        s = r.s[i]
        out = s.get("stdout", "")
        good = s.get("rc") == 0 and marker in out and token in out and all(x in out for x in extra)
        return self.check(good, "%s: expected success (%s, %s%s), got rc=%s stdout=%r stderr=%r" % (
            what, marker, token, "".join(", " + x for x in extra), s.get("rc"), out[-200:],
            s.get("stderr", "")[-300:]), r)

    def curl_reset(self, r, i, what):
        """A denied transparent connection: refused or reset, fast. curl says
        7 when the reset beats its connect() check ("Couldn't connect"), 35
        when it comes during the TLS handshake, 55 while it sends the request
        (ward decides at accept, so the reset can arrive that early), 56
        after the request; with 55 the reset may even beat curl's own
        getpeername() right after connecting ("Transport endpoint is not
        connected")."""
        s = r.s[i]
        err = s.get("stderr", "")
        rc = s.get("rc")
        good = rc == 7 or (rc in (35, 55, 56) and re.search(r"reset|refused|not connected", err, re.I))
        self.check(good, "%s: expected curl to fail with a reset/refusal (exit 7, 35, 55 or 56), got rc=%s "
                   "stderr=%r stdout=%r" % (what, rc, err[-300:], s.get("stdout", "")[-200:]), r)
        self.fast(r, s, what)

    def curl_nxdomain(self, r, i, what):
        s = r.s[i]
        self.check(s.get("rc") == 6, "%s: expected curl exit 6 (could not resolve), got rc=%s stderr=%r" % (
            what, s.get("rc"), s.get("stderr", "")[-300:]), r)
        self.fast(r, s, what)

    def sock_reset(self, r, i, what, allowed=("ECONNRESET", "ECONNREFUSED", "EPIPE")):
        s = r.s[i]
        self.check(not s.get("ok") and s.get("errno") in allowed,
                   "%s: expected the connection to be refused/reset (%s), got %s" % (
                       what, "/".join(allowed), json.dumps(s)), r)
        self.fast(r, s, what)

    def fast(self, r, s, what):
        el = s.get("elapsed_ms")
        self.check(el is not None and el < FAST_MS,
                   "%s: the denial took %s ms (must fail fast, < %d ms)" % (what, el, FAST_MS), r)

    def gai_fail(self, r, i, name):
        s = r.s[i]
        self.check(not s.get("ok") and s.get("errno") == "GAI",
                   "resolving %s inside the sandbox: expected a resolver error, got %s" % (name, json.dumps(s)), r)
        if s.get("gai") not in (-2, None) and not s.get("ok"):
            self.note("%s: getaddrinfo returned %s (EAI_NONAME is -2; -3 EAI_AGAIN means REFUSED/SERVFAIL)"
                      % (name, s.get("gai")))
        self.fast(r, s, "resolving " + name)

    # -- ward's recorded decisions --
    def event(self, r, what, **f):
        m = r.events_where(**f)
        self.check(m, "%s: expected an egress event %s" % (what, _fmt(f)), r)
        return m

    def no_event(self, r, what, **f):
        m = r.events_where(**f)
        self.check(not m, "%s: unexpected egress event(s) %s: %s" % (what, _fmt(f), json.dumps(m)), r)

    # -- what the servers saw --
    def never_reached(self, r, token, what):
        seen = self.suite.servers.seen(token)
        self.check(not seen, "%s: a server saw %s: %s" % (what, token, seen), r)

    def no_conn(self, r, addr, port, what):
        c = self.suite.servers.conns_between(addr, port, r.t0, r.t1)
        self.check(not c, "%s: the server at %s port %d accepted %d connection(s) during the run "
                   "(ward connected upstream for a denied destination)" % (what, addr, port, len(c)), r)

    def no_bytes(self, r, addr, port, what):
        """No request reached the server at addr:port during the run. (ward
        connects at once to an address its rules allow, and judges the
        client's first bytes before forwarding any: a handshake may reach
        the server, a request may not.)"""
        reqs = [h for h in self.suite.servers.http.items()
                if h["local"] == addr and h["port"] == port and r.t0 <= h["time"] <= r.t1 + 0.5]
        self.check(not reqs, "%s: the server at %s port %d received request(s): %s" % (what, addr, port, reqs), r)
        n = len(self.suite.servers.conns_between(addr, port, r.t0, r.t1))
        if n:
            self.note("%s: ward opened %d connection(s) to %s:%d before judging the first bytes (none were "
                      "forwarded)" % (what, n, addr, port))

    def upstream_never_asked(self, r, name, what):
        asked = [q for q in self.suite.servers.dns_asked(name) if r.t0 <= q["time"] <= r.t1 + 0.5]
        self.check(not asked, "%s: the upstream DNS server was asked for %s: %s" % (what, name, asked), r)

    def upstream_asked(self, r, name, what):
        asked = [q for q in self.suite.servers.dns_asked(name) if r.t0 <= q["time"] <= r.t1 + 0.5]
        self.check(asked, "%s: the upstream DNS server was never asked for %s" % (what, name), r)
        return asked


def _fmt(f):
    return "{%s}" % ", ".join("%s=%s" % (k, ("<pred>" if callable(v) else json.dumps(v))) for k, v in f.items())


ALLOW = "allow"
DENY = "deny"
IS_DEFAULT_RULE = ""


def not_allow(v):
    return v != "allow"


# --------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------

def curl(url, *extra, proxy=False, max_time=8):
    argv = ["curl", "-sS", "-k", "--max-time", str(max_time)]
    if not proxy and "-x" not in extra:  # --noproxy '*' would override -x
        argv += ["--noproxy", "*"]
    return {"op": "run", "argv": argv + list(extra) + [url], "timeout": max_time + 5}


def run(*argv, stdin="", timeout=10):
    return {"op": "run", "argv": list(argv), "stdin": stdin, "timeout": timeout}


def tcp(host, port, send, family=0, proto=None, blocking=False, order=None):
    step = {"op": "tcp", "host": host, "port": port, "send": send, "family": family}
    if proto:
        step["proto"] = proto
    if blocking:
        step["blocking"] = True
    if order:
        step["order"] = order
    return step


def sockets(host, port, dead_port, send):
    return {"op": "sockets", "host": host, "port": port, "dead_port": dead_port, "send": send}


def udp(host, port, send):
    return {"op": "udp", "host": host, "port": port, "send": send}


def dnsq(server, name, qtype="A", over_tcp=False, port=53):
    return {"op": "dns", "server": server, "port": port, "name": name, "qtype": qtype, "tcp": over_tcp}


def proxy_get(url, host):
    return {"op": "proxy", "request": "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (url, host)}


def proxy_connect(hostport):
    return {"op": "proxy", "request": "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (hostport, hostport)}


def resolve(name, family=0):
    return {"op": "resolve", "name": name, "family": family}


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

CASES = []


def case(fn):
    CASES.append((fn.__name__, fn))
    return fn


@case
def allowed_domain(t):
    """curl https://allowed.test without proxy variables: resolved through
    ward's DNS (forwarded upstream), connected transparently, recorded."""
    s = t.suite
    tok = t.tok()
    r = s.run(t, s.policy(STD_ALLOW, STD_DENY), [
        resolve("allowed.test", 4),
        curl("https://allowed.test/" + tok, "-4"),
    ])
    t.check(r.s[0].get("addresses") == ["203.0.113.10"],
            "allowed.test should resolve to 203.0.113.10 in the sandbox, got %s" % json.dumps(r.s[0]), r)
    t.curl_ok(r, 1, tok, "WARD-HTTPS-OK", "curl https://allowed.test", ["sni=allowed.test", "local=203.0.113.10:443"])
    t.event(r, "DNS question for allowed.test", kind="dns", domain="allowed.test", decision=ALLOW, rule=R_ALLOWED)
    t.event(r, "the TLS connection", kind="tcp", domain="allowed.test", address="203.0.113.10", port=443,
            decision=ALLOW, rule=R_ALLOWED)
    t.no_event(r, "nothing was denied", decision=DENY)
    t.upstream_asked(r, "allowed.test", "allowed name")


@case
def denied_domain(t):
    """denied.test gets NXDOMAIN from the sandbox's resolver, never reaches
    the upstream DNS, and neither does a name used to exfiltrate data."""
    s = t.suite
    tok = t.tok()
    exfil = "%s.denied.test" % tok
    r = s.run(t, s.policy(STD_ALLOW, STD_DENY), [
        resolve("denied.test"),
        dnsq("203.0.113.53", "denied.test"),
        dnsq("203.0.113.53", exfil),
        curl("https://denied.test/" + tok),
        resolve("allowed.test", 4),  # control, same sandbox
    ])
    t.gai_fail(r, 0, "denied.test")
    d = r.s[1]
    t.check(d.get("ok") and d.get("rcode") in (3, 5) and not d.get("answers"),
            "a DNS query for denied.test sent straight to 203.0.113.53 must be answered NXDOMAIN/REFUSED by ward, "
            "got %s" % json.dumps(d), r)
    if d.get("rcode") == 5:
        t.note("denied names get REFUSED, not NXDOMAIN")
    t.check(r.s[2].get("ok") and r.s[2].get("rcode") in (3, 5),
            "exfiltration query %s: expected NXDOMAIN/REFUSED, got %s" % (exfil, json.dumps(r.s[2])), r)
    t.curl_nxdomain(r, 3, "curl https://denied.test")
    t.check(r.s[4].get("addresses") == ["203.0.113.10"], "control: allowed.test resolves in the same sandbox, got %s"
            % json.dumps(r.s[4]), r)
    t.event(r, "DNS question for denied.test", kind="dns", domain="denied.test", decision=DENY, rule=IS_DEFAULT_RULE)
    t.event(r, "DNS question carrying data", kind="dns", domain=exfil, decision=DENY)
    t.no_event(r, "denied.test allowed somewhere", domain="denied.test", decision=ALLOW)
    t.upstream_never_asked(r, "denied.test", "denied name")
    t.upstream_never_asked(r, exfil, "exfiltration name")
    t.upstream_asked(r, "allowed.test", "control")
    t.never_reached(r, tok, "curl https://denied.test")


@case
def wildcard(t):
    """*.wild.test:443 covers a.wild.test and b.c.wild.test, not wild.test."""
    s = t.suite
    t1, t2, t3 = t.tok(), t.tok(), t.tok()
    r = s.run(t, s.policy(STD_ALLOW, STD_DENY), [
        curl("https://a.wild.test/" + t1),
        curl("https://b.c.wild.test/" + t2),
        resolve("wild.test"),
        curl("https://wild.test/" + t3),
    ])
    t.curl_ok(r, 0, t1, "WARD-HTTPS-OK", "curl https://a.wild.test", ["sni=a.wild.test"])
    t.curl_ok(r, 1, t2, "WARD-HTTPS-OK", "curl https://b.c.wild.test", ["sni=b.c.wild.test"])
    t.event(r, "a.wild.test", kind="tcp", domain="a.wild.test", port=443, decision=ALLOW, rule=R_WILD)
    t.event(r, "b.c.wild.test", kind="tcp", domain="b.c.wild.test", port=443, decision=ALLOW, rule=R_WILD)
    t.gai_fail(r, 2, "wild.test")
    t.curl_nxdomain(r, 3, "curl https://wild.test")
    t.event(r, "wild.test itself", kind="dns", domain="wild.test", decision=DENY)
    t.no_event(r, "wild.test allowed", domain="wild.test", decision=ALLOW)
    t.upstream_never_asked(r, "wild.test", "wildcard base")
    t.never_reached(r, t3, "wild.test")
    # Control: with wild.test listed, the same request goes through.
    t4 = t.tok()
    c = s.run(t, s.policy(STD_ALLOW + ["wild.test:443"], STD_DENY), [curl("https://wild.test/" + t4)])
    t.curl_ok(c, 0, t4, "WARD-HTTPS-OK", "control: curl https://wild.test with wild.test:443 allowed",
              ["local=203.0.113.14:443"])
    t.event(c, "control", kind="tcp", domain="wild.test", decision=ALLOW, rule="wild.test:443")


@case
def port_mismatch(t):
    """allowed.test on a port its rule does not list is reset at connect."""
    s = t.suite
    t1, t2 = t.tok(), t.tok()
    r = s.run(t, s.policy(STD_ALLOW, STD_DENY), [curl("https://allowed.test:8443/" + t1, "-4")])
    t.curl_reset(r, 0, "curl https://allowed.test:8443")
    t.event(r, "port 8443", kind="tcp", domain="allowed.test", address="203.0.113.10", port=8443, decision=DENY,
            rule=IS_DEFAULT_RULE)
    t.event(r, "the name itself is allowed", kind="dns", domain="allowed.test", decision=ALLOW)
    t.no_conn(r, "203.0.113.10", 8443, "allowed.test:8443")
    t.never_reached(r, t1, "allowed.test:8443")
    c = s.run(t, s.policy(["allowed.test:443,8443"]), [curl("https://allowed.test:8443/" + t2, "-4")])
    t.curl_ok(c, 0, t2, "WARD-HTTPS-OK", "control: allowed.test:443,8443", ["local=203.0.113.10:8443"])
    t.event(c, "control", kind="tcp", domain="allowed.test", port=8443, decision=ALLOW, rule="allowed.test:443,8443")


@case
def cidr_allow(t):
    """10.20.0.0/16:5432 opens 10.20.1.5:5432 by address (no name), not :5433."""
    s = t.suite
    t1, t2, t3 = t.tok(), t.tok(), t.tok()
    r = s.run(t, s.policy(STD_ALLOW, STD_DENY), [
        tcp("10.20.1.5", 5432, t1),
        run("sh", "-c", "printf '%s\\n' | nc -N -w 5 10.20.1.5 5432" % t3),
        tcp("10.20.1.5", 5433, t2),
    ])
    t.check(r.s[0].get("ok") and ("ECHO %s local=10.20.1.5:5432" % t1) in r.s[0].get("data", ""),
            "python connect to 10.20.1.5:5432: expected the echo, got %s" % json.dumps(r.s[0]), r)
    t.check(r.s[1].get("rc") == 0 and ("ECHO %s" % t3) in r.s[1].get("stdout", ""),
            "nc 10.20.1.5 5432: expected the echo, got %s" % json.dumps(r.s[1]), r)
    # The deny rule names a domain, so a name in the first bytes could still
    # deny: the proxy reads them (no direct socket).
    t.event(r, "10.20.1.5:5432", kind="tcp", address="10.20.1.5", port=5432, decision=ALLOW, rule=R_CIDR,
            detail=lambda d: "direct" not in (d or ""))
    t.sock_reset(r, 2, "python connect to 10.20.1.5:5433")
    t.event(r, "10.20.1.5:5433", kind="tcp", address="10.20.1.5", port=5433, decision=DENY, rule=IS_DEFAULT_RULE)
    t.no_conn(r, "10.20.1.5", 5433, "10.20.1.5:5433")
    t.never_reached(r, t2, "10.20.1.5:5433")
    t4 = t.tok()
    c = s.run(t, s.policy(["10.20.0.0/16:5432-5433"]), [tcp("10.20.1.5", 5433, t4)])
    t.check(c.s[0].get("ok") and t4 in c.s[0].get("data", ""),
            "control: 10.20.1.5:5433 under 10.20.0.0/16:5432-5433, got %s" % json.dumps(c.s[0]), c)
    t.event(c, "control", kind="tcp", address="10.20.1.5", port=5433, decision=ALLOW, rule="10.20.0.0/16:5432-5433",
            detail="direct")


@case
def deny_overrides_allow(t):
    """evil.allowed.test is covered by *.allowed.test:443 but denied by name,
    in DNS and in a TLS SNI to a sibling's (bound) address."""
    s = t.suite
    t1, t2, t3 = t.tok(), t.tok(), t.tok()
    r = s.run(t, s.policy(STD_ALLOW, STD_DENY), [
        curl("https://good.allowed.test/" + t1),
        resolve("evil.allowed.test"),
        curl("https://evil.allowed.test/" + t2),
        curl("https://evil.allowed.test/" + t3, "--resolve", "evil.allowed.test:443:203.0.113.15"),
    ])
    t.curl_ok(r, 0, t1, "WARD-HTTPS-OK", "control: good.allowed.test", ["sni=good.allowed.test"])
    t.event(r, "good.allowed.test", kind="tcp", domain="good.allowed.test", decision=ALLOW, rule=R_SUB)
    t.gai_fail(r, 1, "evil.allowed.test")
    t.curl_nxdomain(r, 2, "curl https://evil.allowed.test")
    t.event(r, "evil.allowed.test in DNS", kind="dns", domain="evil.allowed.test", decision=DENY, rule=R_EVIL)
    t.curl_reset(r, 3, "curl --resolve evil.allowed.test:443:203.0.113.15 (SNI evil to good's address)")
    t.event(r, "SNI evil.allowed.test", kind="tcp", domain="evil.allowed.test", address="203.0.113.15", port=443,
            decision=DENY, rule=R_EVIL)
    t.no_event(r, "evil allowed", domain="evil.allowed.test", decision=ALLOW)
    t.upstream_never_asked(r, "evil.allowed.test", "denied name")
    for tok in (t2, t3):
        t.never_reached(r, tok, "evil.allowed.test")


@case
def dns_bindings_persist(t):
    """A held sandbox keeps the names its DNS bound (issue 10, item 3): an
    address that one `ward exec` resolved is allowed by that name in the
    next exec, and again after `ward stop` and `ward start`. Control: the
    same connection in the same sandbox before the name was resolved is
    refused (raw_ip_bypass: an address of an allowed name never resolved
    there is denied). Runs in a held sandbox in both modes."""
    s = t.suite
    pol = s.policy(STD_ALLOW, STD_DENY)
    t1, t2, t3, t4 = t.tok(), t.tok(), t.tok(), t.tok()
    name, rc, err = s.provision(t, pol)
    if not t.check(name, "provision and start: exit %s: %s" % (rc, err.strip()[-300:])):
        return
    try:
        a = s.exec(t, pol, name, [tcp("203.0.113.10", 7777, t1)])
        t.sock_reset(a, 0, "203.0.113.10:7777 before allowed.test was resolved in this sandbox",
                     allowed=("ECONNREFUSED", "ECONNRESET", "EPIPE"))
        t.event(a, "203.0.113.10:7777 without a name", kind="tcp", address="203.0.113.10", port=7777, decision=DENY)
        t.never_reached(a, t1, "an address no name was bound to")
        b = s.exec(t, pol, name, [resolve("allowed.test", 4)])
        t.check(b.s[0].get("addresses") == ["203.0.113.10"], "resolving allowed.test: %s" % json.dumps(b.s[0]), b)
        c = s.exec(t, pol, name, [tcp("203.0.113.10", 7777, t2)])
        t.check(c.s[0].get("ok") and ("ECHO " + t2) in c.s[0].get("data", ""),
                "203.0.113.10:7777 in the exec after the one that resolved allowed.test: expected the echo, got %s"
                % json.dumps(c.s[0]), c)
        t.event(c, "bound by an earlier exec", kind="tcp", address="203.0.113.10", port=7777, domain="allowed.test",
                decision=ALLOW, detail=lambda d: (d or "").startswith("dns"), rule=R_ALLOWED)
        rc, _, err = s._ward(["stop", name], 30)
        t.check(rc == 0, "ward stop: exit %s: %s" % (rc, err.strip()[-300:]))
        rc, _, err = s._ward(["start", name], 30)
        if t.check(rc == 0, "ward start after stop: exit %s: %s" % (rc, err.strip()[-300:])):
            d = s.exec(t, pol, name, [tcp("203.0.113.10", 7777, t3)])
            t.check(d.s[0].get("ok") and ("ECHO " + t3) in d.s[0].get("data", ""),
                    "203.0.113.10:7777 after stop and start: expected the echo, got %s" % json.dumps(d.s[0]), d)
            t.event(d, "bound before the stop", kind="tcp", address="203.0.113.10", port=7777,
                    domain="allowed.test", decision=ALLOW, detail=lambda d: (d or "").startswith("dns"))
            t.upstream_never_asked(d, "allowed.test", "the exec after the restart (nothing resolved it again)")
        # A damaged bindings file costs the bindings, never the start: the
        # same connection is refused again, and the supervisor's log says why.
        rc, _, err = s._ward(["stop", name], 30)
        t.check(rc == 0, "ward stop: exit %s: %s" % (rc, err.strip()[-300:]))
        sdir = s.sandbox_dir(name)
        with open(os.path.join(sdir, "dns-bindings.json"), "w") as f:
            f.write('{"version": 1, "bindings": [{"address": "203.0.113.10", "na')
        rc, _, err = s._ward(["start", name], 30)
        if t.check(rc == 0, "ward start with a damaged dns-bindings.json: exit %s: %s" % (rc, err.strip()[-300:])):
            e = s.exec(t, pol, name, [tcp("203.0.113.10", 7777, t4)])
            t.sock_reset(e, 0, "203.0.113.10:7777 after a start whose bindings file was damaged",
                         allowed=("ECONNREFUSED", "ECONNRESET", "EPIPE"))
            t.never_reached(e, t4, "an address whose binding was forgotten")
            with open(os.path.join(sdir, "supervisor.log")) as f:
                said = f.read()
            t.check("dns-bindings.json" in said and "damaged" in said and "forgotten" in said,
                    "the supervisor's log must name the damaged bindings file: %r" % said[-500:], e)
    finally:
        s.deprovision(t, name)
    for r in t.runs:
        s.nothing_left(t, r)


@case
def raw_ip_bypass(t):
    """IP literals not covered by an address rule are denied, also the
    address of an allowed name never resolved in this sandbox, an allowed
    SNI sent to an address ward never bound to it, and IPv4-mapped IPv6."""
    s = t.suite
    pol = s.policy(STD_ALLOW, STD_DENY)
    t1, t2, t3, t4, t5 = (t.tok() for _ in range(5))
    a = s.run(t, pol, [
        curl("https://203.0.113.11/" + t1),
        tcp("203.0.113.11", 7777, t2),
        tcp("::ffff:203.0.113.11", 7777, t3),
    ])
    t.curl_reset(a, 0, "curl https://203.0.113.11")
    t.event(a, "203.0.113.11:443", kind="tcp", address="203.0.113.11", port=443, decision=DENY)
    t.sock_reset(a, 1, "python connect to 203.0.113.11:7777")
    t.sock_reset(a, 2, "python connect to ::ffff:203.0.113.11:7777")
    m = a.events_where(kind="tcp", port=7777, decision=DENY)
    t.check(len(m) >= 2 and all(_norm(e.get("address", "")).endswith("203.0.113.11") for e in m),
            "203.0.113.11:7777 and ::ffff:203.0.113.11:7777: expected two tcp deny events", a)
    t.no_event(a, "nothing allowed", decision=ALLOW)
    for port in (443, 7777):
        t.no_conn(a, "203.0.113.11", port, "203.0.113.11:%d" % port)
    b = s.run(t, pol, [curl("https://203.0.113.10/" + t4)])
    t.curl_reset(b, 0, "curl https://203.0.113.10 (allowed.test's address, never resolved here)")
    t.event(b, "203.0.113.10 without a name", kind="tcp", address="203.0.113.10", port=443, decision=DENY)
    t.no_conn(b, "203.0.113.10", 443, "203.0.113.10:443 by address")
    c = s.run(t, pol, [curl("https://allowed.test/" + t5, "--resolve", "allowed.test:443:203.0.113.11")])
    t.curl_reset(c, 0, "curl --resolve allowed.test:443:203.0.113.11 (allowed SNI, unbound address)")
    t.event(c, "SNI allowed.test to 203.0.113.11", kind="tcp", address="203.0.113.11", port=443, decision=DENY)
    t.no_conn(c, "203.0.113.11", 443, "allowed SNI to 203.0.113.11")
    for tok in (t1, t2, t3, t4, t5):
        t.never_reached(a, tok, "raw address")
    # Control: an address rule opens the same literal (mapped form too).
    t6, t7 = t.tok(), t.tok()
    d = s.run(t, s.policy(STD_ALLOW + ["203.0.113.11"], STD_DENY), [
        curl("https://203.0.113.11/" + t6),
        tcp("::ffff:203.0.113.11", 7777, t7),
    ])
    t.curl_ok(d, 0, t6, "WARD-HTTPS-OK", "control: 203.0.113.11 allowed by address")
    t.check(d.s[1].get("ok") and t7 in d.s[1].get("data", ""),
            "control: ::ffff:203.0.113.11:7777 under rule 203.0.113.11, got %s" % json.dumps(d.s[1]), d)
    t.event(d, "control", kind="tcp", address="203.0.113.11", port=443, decision=ALLOW, rule="203.0.113.11")


@case
def sni_mismatch(t):
    """Domain fronting: after allowed.test was resolved (203.0.113.10 bound to
    it), a TLS connection there with SNI denied.test is denied."""
    s = t.suite
    pol = s.policy(STD_ALLOW, STD_DENY)
    t1, t2, t3 = t.tok(), t.tok(), t.tok()
    a = s.run(t, pol, [
        resolve("allowed.test", 4),
        curl("https://denied.test/" + t1, "--resolve", "denied.test:443:203.0.113.10"),
        run("openssl", "s_client", "-connect", "203.0.113.10:443", "-servername", "denied.test", "-quiet",
            stdin="GET /%s HTTP/1.0\r\nHost: denied.test\r\n\r\n" % t2),
    ])
    t.curl_reset(a, 1, "curl --resolve denied.test:443:203.0.113.10")
    t.event(a, "SNI denied.test", kind="tcp", domain="denied.test", address="203.0.113.10", port=443,
            decision=DENY, detail="sni")
    o = a.s[2]
    t.check(o.get("rc") != 0 and "WARD-HTTPS-OK" not in o.get("stdout", ""),
            "openssl s_client -servername denied.test to 203.0.113.10: expected failure, got %s" % json.dumps(o), a)
    t.check(len(a.events_where(kind="tcp", domain="denied.test", decision=DENY)) >= 2,
            "expected a tcp deny event for each of the two SNI denied.test connections", a)
    t.no_event(a, "denied.test allowed", domain="denied.test", decision=ALLOW)
    t.no_bytes(a, "203.0.113.10", 443, "SNI denied.test")
    t.upstream_never_asked(a, "denied.test", "SNI name")
    # Control: the same mechanism with the SNI that was resolved.
    c = s.run(t, pol, [resolve("allowed.test", 4),
                       curl("https://allowed.test/" + t3, "--resolve", "allowed.test:443:203.0.113.10")])
    t.curl_ok(c, 1, t3, "WARD-HTTPS-OK", "control: --resolve allowed.test:443:203.0.113.10", ["sni=allowed.test"])
    t.event(c, "control", kind="tcp", domain="allowed.test", address="203.0.113.10", port=443, decision=ALLOW,
            rule=R_ALLOWED, detail="sni")


@case
def http_host_mismatch(t):
    """Plain HTTP to allowed.test's address with Host: denied.test is denied,
    also when the Host header arrives late, split over two segments."""
    s = t.suite
    pol = s.policy(STD_ALLOW, STD_DENY)
    t1, t2, t3, t4 = (t.tok() for _ in range(4))
    a = s.run(t, pol, [
        resolve("allowed.test", 4),
        curl("http://allowed.test/" + t1, "-4", "-H", "Host: denied.test"),
        curl("http://denied.test/" + t2, "--resolve", "denied.test:80:203.0.113.10"),
        # The Host header split across two segments, 400 ms apart (longer
        # than ward's 250 ms wait for the first bytes).
        {"op": "trickle", "host": "203.0.113.10", "port": 80, "delay": 0.4,
         "chunks": ["GET /%s HTTP/1.1\r\nHo" % t4, "st: denied.test\r\nConnection: close\r\n\r\n"]},
    ])
    tr = a.s[3]
    t.check(not tr.get("ok") and "WARD-HTTP-OK" not in tr.get("data", ""),
            "request with 'Host: denied.test' split over two segments: expected a reset, got %s" % json.dumps(tr), a)
    t.never_reached(a, t4, "split Host header")
    t.curl_reset(a, 1, "curl -H 'Host: denied.test' http://allowed.test")
    t.curl_reset(a, 2, "curl --resolve denied.test:80:203.0.113.10")
    t.event(a, "Host denied.test", kind="tcp", domain="denied.test", address="203.0.113.10", port=80, decision=DENY,
            detail="http-host")
    t.no_event(a, "denied.test allowed", domain="denied.test", decision=ALLOW)
    t.no_bytes(a, "203.0.113.10", 80, "Host denied.test")
    c = s.run(t, pol, [curl("http://allowed.test/" + t3, "-4")])
    t.curl_ok(c, 0, t3, "WARD-HTTP-OK", "control: http://allowed.test", ["host=allowed.test"])
    t.event(c, "control", kind="tcp", domain="allowed.test", port=80, decision=ALLOW, rule=R_ALLOWED)


@case
def dns_over_tcp(t):
    """DNS over TCP (and UDP) to any address is answered by ward's filter:
    even to 203.0.113.11, where no DNS server listens."""
    s = t.suite
    r = s.run(t, s.policy(STD_ALLOW, STD_DENY), [
        run("dig", "+tcp", "+time=3", "+tries=1", "@203.0.113.53", "allowed.test", "A"),
        run("dig", "+tcp", "+time=3", "+tries=1", "@203.0.113.53", "denied.test", "A"),
        dnsq("203.0.113.11", "allowed.test", over_tcp=True),
        dnsq("203.0.113.11", "denied.test", over_tcp=True),
        dnsq("203.0.113.11", "allowed.test"),
        run("dig", "+time=3", "+tries=1", "@203.0.113.53", "denied.test", "A"),
        dnsq("127.0.0.53", "allowed.test"),
        dnsq("127.0.0.1", "allowed.test", over_tcp=True),
    ])
    d0, d1, d5 = r.s[0], r.s[1], r.s[5]
    t.check(d0.get("rc") == 0 and "status: NOERROR" in d0.get("stdout", "") and "203.0.113.10" in d0.get("stdout", ""),
            "dig +tcp allowed.test: expected NOERROR with 203.0.113.10, got %s" % json.dumps(d0), r)
    for d, what in ((d1, "dig +tcp denied.test"), (d5, "dig denied.test (udp)")):
        t.check(d.get("rc") == 0 and re.search(r"status: (NXDOMAIN|REFUSED)", d.get("stdout", "")),
                "%s: expected NXDOMAIN/REFUSED, got %s" % (what, json.dumps(d)), r)
    t.check(r.s[2].get("ok") and r.s[2].get("answers") == ["203.0.113.10"],
            "DNS/TCP for allowed.test to 203.0.113.11:53: expected ward's answer 203.0.113.10, got %s"
            % json.dumps(r.s[2]), r)
    t.check(r.s[3].get("ok") and r.s[3].get("rcode") in (3, 5),
            "DNS/TCP for denied.test to 203.0.113.11:53: expected NXDOMAIN/REFUSED, got %s" % json.dumps(r.s[3]), r)
    t.check(r.s[4].get("ok") and r.s[4].get("answers") == ["203.0.113.10"],
            "DNS/UDP for allowed.test to 203.0.113.11:53: expected ward's answer, got %s" % json.dumps(r.s[4]), r)
    for i, what in ((6, "DNS/UDP to 127.0.0.53 (a systemd-resolved address)"), (7, "DNS/TCP to 127.0.0.1")):
        t.check(r.s[i].get("ok") and r.s[i].get("answers") == ["203.0.113.10"],
                "%s: expected ward's answer 203.0.113.10, got %s" % (what, json.dumps(r.s[i])), r)
    t.event(r, "allowed.test", kind="dns", domain="allowed.test", decision=ALLOW)
    dn = r.events_where(kind="dns", domain="denied.test", decision=DENY)
    t.check(len(dn) >= 3, "expected a dns deny event for each of the 3 denied.test questions, got %d" % len(dn), r)
    t.no_event(r, "denied.test allowed", domain="denied.test", decision=ALLOW)
    t.upstream_never_asked(r, "denied.test", "denied name over TCP")
    asked = t.upstream_asked(r, "allowed.test", "allowed name")
    t.check(all(q["server"] == "203.0.113.53:53" for q in asked),
            "allowed questions must go to the --dns-server, not where the sandbox sent them: %s" % asked, r)


@case
def udp_exfiltration(t):
    """UDP other than DNS fails at once; the UDP echo server never sees it."""
    s = t.suite
    t1, t2, t3 = t.tok(), t.tok(), t.tok()
    r = s.run(t, s.policy(STD_ALLOW, STD_DENY), [
        udp("203.0.113.11", 9999, t1),
        udp("allowed.test", 9999, t2),
    ])
    for i, what in ((0, "UDP to 203.0.113.11:9999"), (1, "UDP to allowed.test:9999 (only tcp is allowed)")):
        st = r.s[i]
        t.check(not st.get("ok") and st.get("errno") in ("EPERM", "ECONNREFUSED", "EACCES"),
                "%s: expected EPERM/ECONNREFUSED at once, got %s" % (what, json.dumps(st)), r)
        t.fast(r, st, what)
    t.never_reached(r, t1, "UDP 203.0.113.11:9999")
    t.never_reached(r, t2, "UDP allowed.test:9999")
    # Each dropped destination is reported once, as a denied "udp" event;
    # allowed.test's address carries its name (ward's DNS bound it).
    # (allowed.test's datagram goes to its IPv4 or IPv6 address, as the
    # resolver orders them: found by the name).
    for where, name in ((dict(address="203.0.113.11"), ""), (dict(domain="allowed.test"), "allowed.test")):
        ev = r.events_where(kind="udp", port=9999, **where)
        t.check(len(ev) == 1 and ev[0]["decision"] == "deny" and "not relayed" in ev[0]["reason"]
                and ev[0]["domain"] == name,
                "expected one denied udp event for %s:9999, got %s" % (where, json.dumps(ev)), r)
    c = s.run(t, s.policy(network="host"), [udp("203.0.113.11", 9999, t3)])
    t.check(c.s[0].get("ok") and ("UDP-ECHO " + t3) in c.s[0].get("data", ""),
            "control: the same UDP probe under \"network\": \"host\" gets the echo, got %s" % json.dumps(c.s[0]), c)


@case
def icmp(t):
    """ICMP echo fails inside the sandbox (ping socket and raw socket), while
    the same probe outside ward gets a reply."""
    s = t.suite
    steps = [{"op": "icmp", "host": "203.0.113.10"}]
    r = s.run(t, s.policy(STD_ALLOW, STD_DENY), steps)
    res = r.s[0]
    for k in ("ping-socket", "raw-socket"):
        v = res.get(k, {})
        t.check(not v.get("ok"), "ICMP echo to 203.0.113.10 via %s inside the sandbox got a reply: %s"
                % (k, json.dumps(v)), r)
        if v.get("errno") == "TIMEOUT":
            t.note("ICMP via %s: no error, just no reply (dropped silently)" % k)
    out = outside_probe(s, steps)
    ctl = out[0].get("ping-socket", {})
    t.check(ctl.get("ok"), "control: an ICMP echo from outside ward (ping socket) should be answered, got %s"
            % json.dumps(ctl))


@case
def ipv6(t):
    """allowed.test over IPv6 works (2001:db8::10); an IPv6 literal is denied
    unless an address rule names it; an AAAA-only name works."""
    s = t.suite
    t1, t2, t3, t4 = (t.tok() for _ in range(4))
    r = s.run(t, s.policy(STD_ALLOW + ["ipv6only.test:443"], STD_DENY), [
        curl("https://allowed.test/" + t1, "-6"),
        curl("https://[2001:db8::11]/" + t2, "-g"),
        curl("https://ipv6only.test/" + t3),
        dnsq("203.0.113.53", "allowed.test", "AAAA"),
    ])
    t.curl_ok(r, 0, t1, "WARD-HTTPS-OK", "curl -6 https://allowed.test", ["local=2001:db8::10:443"])
    t.event(r, "allowed.test over IPv6", kind="tcp", domain="allowed.test", address="2001:db8::10", port=443,
            decision=ALLOW, rule=R_ALLOWED)
    t.curl_reset(r, 1, "curl https://[2001:db8::11]")
    t.event(r, "[2001:db8::11]:443", kind="tcp", address="2001:db8::11", port=443, decision=DENY)
    t.no_conn(r, "2001:db8::11", 443, "[2001:db8::11]:443")
    t.never_reached(r, t2, "[2001:db8::11]")
    t.curl_ok(r, 2, t3, "WARD-HTTPS-OK", "curl https://ipv6only.test", ["local=2001:db8::20:443"])
    t.event(r, "ipv6only.test", kind="tcp", domain="ipv6only.test", address="2001:db8::20", decision=ALLOW,
            rule="ipv6only.test:443")
    t.check(r.s[3].get("answers") == ["2001:db8::10"], "AAAA allowed.test: expected 2001:db8::10, got %s"
            % json.dumps(r.s[3]), r)
    c = s.run(t, s.policy(STD_ALLOW + ["[2001:db8::11]:443"], STD_DENY), [curl("https://[2001:db8::11]/" + t4, "-g")])
    t.curl_ok(c, 0, t4, "WARD-HTTPS-OK", "control: [2001:db8::11]:443 allowed by address")
    t.event(c, "control", kind="tcp", address="2001:db8::11", port=443, decision=ALLOW, rule="[2001:db8::11]:443")


@case
def host_loopback(t):
    """The host's 127.0.0.1:8080 is unreachable by default (127.0.0.1 is the
    sandbox's own loopback); host.ward.internal:8080 reaches it only with a
    rule for exactly that port."""
    s = t.suite
    t1, t2, t3, t4, t5, t6 = (t.tok() for _ in range(6))
    a = s.run(t, s.policy(STD_ALLOW, STD_DENY), [
        curl("http://127.0.0.1:8080/" + t1),
        curl("http://host.ward.internal:8080/" + t2),
        curl("http://%s:8080/%s" % (GATEWAY, t3)),
        tcp("127.0.0.1", 8080, t1),
    ])
    s0, s3 = a.s[0], a.s[3]
    t.check(s0.get("rc") == 7 and s3.get("errno") == "ECONNREFUSED",
            "127.0.0.1:8080 in the sandbox: expected connection refused (its own loopback), got curl %s, "
            "python %s" % (json.dumps(s0), json.dumps(s3)), a)
    t.check(a.s[1].get("rc") in (6, 7, 55, 56), "curl http://host.ward.internal:8080 without a rule: expected failure, "
            "got %s" % json.dumps(a.s[1]), a)
    t.fast(a, a.s[1], "host.ward.internal:8080 without a rule")
    t.event(a, "host.ward.internal without a rule", domain="host.ward.internal", decision=DENY)
    t.curl_reset(a, 2, "curl http://169.254.77.1:8080")
    t.event(a, "gateway:8080 by address", kind="tcp", address=GATEWAY, port=8080, decision=DENY)
    t.no_event(a, "no connection allowed", decision=ALLOW, kind=lambda k: k != "dns")
    for tok in (t1, t2, t3):
        t.never_reached(a, tok, "host loopback without a rule")
    t.upstream_never_asked(a, "host.ward.internal", "ward's own name")
    t7 = t.tok()
    b = s.run(t, s.policy(STD_ALLOW + ["host.ward.internal:8080"], STD_DENY), [
        curl("http://host.ward.internal:8080/" + t4, "-4"),
        curl("http://host.ward.internal:8081/" + t5),
        curl("http://127.0.0.1:8080/" + t6),
        resolve("host.ward.internal", 4),
    ])
    t.curl_ok(b, 0, t4, "WARD-HTTP-OK", "curl -4 http://host.ward.internal:8080 with the rule", ["local=127.0.0.1:8080"])
    t.event(b, "host.ward.internal:8080", kind="tcp", domain="host.ward.internal", port=8080, decision=ALLOW,
            rule="host.ward.internal:8080", detail="host-loopback; direct")
    # (curl tries both gateway addresses; when both resets beat its connect()
    # check it says "Couldn't connect", exit 7: see curl_reset.)
    t.curl_reset(b, 1, "host.ward.internal:8081 (no rule for that port)")
    t.event(b, "host.ward.internal:8081", kind="tcp", domain="host.ward.internal", port=8081, decision=DENY)
    t.never_reached(b, t5, "host loopback port without a rule")
    t.check(b.s[2].get("rc") == 7, "127.0.0.1:8080 stays the sandbox's own loopback even with the rule, got %s"
            % json.dumps(b.s[2]), b)
    t.never_reached(b, t6, "127.0.0.1 inside the sandbox")
    t.check(b.s[3].get("addresses") == [GATEWAY], "host.ward.internal should resolve to %s, got %s"
            % (GATEWAY, json.dumps(b.s[3])), b)
    t.upstream_never_asked(b, "host.ward.internal", "ward's own name")
    # The host service listens on 127.0.0.1 only (as most do); a client that
    # prefers the IPv6 answer for host.ward.internal must reach it all the same.
    c = s.run(t, s.policy(STD_ALLOW + ["host.ward.internal:8080"], STD_DENY), [
        curl("http://host.ward.internal:8080/" + t7)])
    t.curl_ok(c, 0, t7, "WARD-HTTP-OK", "curl http://host.ward.internal:8080 (default address family, IPv6 "
              "preferred) to a host service on 127.0.0.1 only", ["local=127.0.0.1:8080"])


@case
def connect_tells_the_truth(t):
    """Where the address and port already decide a deny (no name ward's DNS
    bound to the address could allow it), connect() itself is refused with
    ECONNREFUSED, as a closed port outside (issue 9, item 2): `nc -z` says
    closed, and the decision is recorded as before."""
    s = t.suite
    t1 = t.tok()
    r = s.run(t, s.policy(["10.20.0.0/16:5432"]), [
        tcp("10.20.1.5", 5433, t1),
        run("sh", "-c", "nc -z -w 3 10.20.1.5 5433; echo rc=$?"),
        run("sh", "-c", "nc -z -w 3 10.20.1.5 5432; echo rc=$?"),
    ])
    t.check(not r.s[0].get("ok") and r.s[0].get("stage") == "connect" and r.s[0].get("errno") == "ECONNREFUSED",
            "python connect to the denied 10.20.1.5:5433: expected ECONNREFUSED from connect(), got %s"
            % json.dumps(r.s[0]), r)
    t.check("rc=1" in r.s[1].get("stdout", ""), "nc -z on a denied port: expected closed, got %s" % json.dumps(r.s[1]), r)
    t.check("rc=0" in r.s[2].get("stdout", ""), "control: nc -z on an allowed port: expected open, got %s"
            % json.dumps(r.s[2]), r)
    t.event(r, "10.20.1.5:5433 refused at connect()", kind="tcp", address="10.20.1.5", port=5433, decision=DENY,
            rule=IS_DEFAULT_RULE, detail="connect")
    t.never_reached(r, t1, "10.20.1.5:5433")


SERVER_FIRST_EDGES = r'''
import errno, json, select, signal, socket, struct, time
out = {}
s = socket.socket()
s.connect(("allowed.test", 7777))
try:
    s.connect(("203.0.113.10", 443))
    out["again"] = "ok"
except OSError as e:
    out["again"] = errno.errorcode.get(e.errno, str(e))
s.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 0, 100000))
t0 = time.monotonic()
rc = s.connect_ex(("hole.wild.test", 443))
out["sndtimeo"] = errno.errorcode.get(rc, "ok") if rc else "ok"
out["sndtimeo_ms"] = round((time.monotonic() - t0) * 1000)
s.close()
print(json.dumps(out))
'''


@case
def connect_reports_the_server(t):
    """A connection judged by its first bytes (a domain rule) is connected to
    its server before connect() returns (issue 9, item 2, net/connect_notify.h
    "server first"): a port that refuses is refused at connect(), blocking or
    not, so `nc -z` says closed; a dual-stack client falls back from an IPv6
    address that refuses to the IPv4 one, as outside. The failure is recorded
    with the decision that let ward try. A destination no first bytes could
    allow gets no SYN at all."""
    s = t.suite
    t1, t2, t3, t4, t5, t6, t7 = (t.tok() for _ in range(7))
    rule = "allowed.test:7001,5434,8444"  # (hole.wild.test, a server that never answers: R_WILD)
    r = s.run(t, s.policy(STD_ALLOW + [rule], STD_DENY), [
        tcp("allowed.test", 7001, t1, family=4, blocking=True),
        tcp("allowed.test", 7001, t2, family=4),
        run("sh", "-c", "nc -z -w 3 allowed.test 7001; echo rc=$?"),
        run("sh", "-c", "nc -z -w 3 allowed.test 7777; echo rc=$?"),
        tcp("allowed.test", 5434, t3, family=6, blocking=True),
        tcp("allowed.test", 5434, t4, order="v6first", blocking=True),
        curl("https://allowed.test:8444/" + t5),
        curl("https://allowed.test:8444/" + t6, "-6"),
        tcp("203.0.113.11", 7777, t7),
        run(PY, "-c", SERVER_FIRST_EDGES, timeout=25),
    ])
    for i, what in ((0, "blocking"), (1, "non-blocking")):
        st = r.s[i]
        t.check(not st.get("ok") and st.get("stage") == "connect" and st.get("errno") == "ECONNREFUSED"
                and st.get("elapsed_ms", FAST_MS) < FAST_MS,
                "%s connect to allowed.test:7001 (nothing listens): expected ECONNREFUSED from connect(), got %s"
                % (what, json.dumps(st)), r)
    t.check("rc=1" in r.s[2].get("stdout", ""), "nc -z allowed.test 7001: expected closed, got %s"
            % json.dumps(r.s[2]), r)
    t.check("rc=0" in r.s[3].get("stdout", ""), "control: nc -z allowed.test 7777: expected open, got %s"
            % json.dumps(r.s[3]), r)
    refused = r.events_where(kind="tcp", domain="allowed.test", port=7001, decision=ALLOW, rule=rule,
                             detail=lambda d: (d or "").startswith("dns; server first; connect: ECONNREFUSED"))
    t.check(len(refused) == 4, "four refused connections to allowed.test:7001 (python twice, nc twice: -z tries "
            "each address it resolved), recorded with the server's answer, got %s" % json.dumps(r.events), r)
    st = r.s[4]
    t.check(not st.get("ok") and st.get("stage") == "connect" and st.get("errno") == "ECONNREFUSED",
            "IPv6 connect to allowed.test:5434 (served on IPv4 only): expected ECONNREFUSED, got %s" % json.dumps(st), r)
    st = r.s[5]
    t.check(st.get("ok") and st.get("address") == "203.0.113.10" and ("ECHO %s local=203.0.113.10:5434" % t4)
            in st.get("data", ""), "IPv6 first, then IPv4, to allowed.test:5434: expected the IPv4 echo, got %s"
            % json.dumps(st), r)
    t.curl_ok(r, 6, t5, "WARD-HTTPS-OK", "curl https://allowed.test:8444 (dual stack, IPv6 refused)",
              ["local=203.0.113.10:8444"])
    t.check(r.s[7].get("rc") == 7, "curl -6 https://allowed.test:8444: expected curl's \"couldn't connect\" (7), "
            "got %s" % json.dumps(r.s[7]), r)
    t.never_reached(r, t6, "IPv6 to a port served on IPv4 only")
    st = r.s[8]
    t.check(not st.get("ok") and st.get("errno") == "ECONNREFUSED",
            "203.0.113.11:7777 (no rule, no name bound): expected ECONNREFUSED, got %s" % json.dumps(st), r)
    t.no_conn(r, "203.0.113.11", 7777, "a destination no first bytes could allow")
    # The review's edges: connect() on a connected socket makes no second
    # connection; SO_SNDTIMEO ends a blocking connect() with EINPROGRESS, as
    # the kernel's would.
    st = r.s[9]
    edges = json.loads(st.get("stdout") or "{}")
    t.check(edges.get("again") == "EISCONN", "connect() again on a connected socket: expected EISCONN, got %s"
            % json.dumps(st), r)
    t.no_conn(r, "203.0.113.10", 443, "connect() again on a connected socket")
    # (The time includes the name's resolution through ward; a connect()
    # that ignored SO_SNDTIMEO would wait for ward's 10 s connect timeout.)
    t.check(edges.get("sndtimeo") == "EINPROGRESS" and edges.get("sndtimeo_ms", 9999) < 4000,
            "blocking connect() to hole.wild.test with SO_SNDTIMEO 100 ms: expected EINPROGRESS after ~100 ms, got %s"
            % json.dumps(st), r)


@case
def http10_without_host(t):
    """HTTP/1.0 needs no Host (issue 9, item 3): with a domain deny rule the
    first bytes are read, and a request that names no host is decided by its
    address, as a TLS ClientHello without SNI is. HTTP/1.1 without Host is
    malformed and refused."""
    s = t.suite
    t1, t2 = t.tok(), t.tok()
    r = s.run(t, s.policy(["203.0.113.10:80"], ["denied.test"]), [
        tcp("203.0.113.10", 80, "GET /%s HTTP/1.0\r\n\r" % t1),
        tcp("203.0.113.10", 80, "GET /%s HTTP/1.1\r\n\r" % t2),
    ])
    t.check(r.s[0].get("ok") and "WARD-HTTP-OK" in r.s[0].get("data", ""),
            "HTTP/1.0 request without Host: expected the server's answer, got %s" % json.dumps(r.s[0]), r)
    t.event(r, "HTTP/1.0 without Host", kind="tcp", address="203.0.113.10", port=80, decision=ALLOW,
            rule="203.0.113.10:80", detail="no host name in the first bytes")
    t.sock_reset(r, 1, "HTTP/1.1 request without Host")
    t.never_reached(r, t2, "HTTP/1.1 without Host")


@case
def direct_sockets(t):
    """A connection whose decision no first bytes can change (an address
    rule with no deny rule naming a domain) gets a socket ward connected
    from its own namespace (net/connect_notify.h); with a domain deny rule
    the same connection goes through the proxy, which reads the SNI. Either
    way only what the rules allow is reached."""
    s = t.suite
    t1, t2, t3, t4, t5, t6 = (t.tok() for _ in range(6))
    r = s.run(t, s.policy(["10.20.0.0/16:5432", "203.0.113.10:443"]), [
        tcp("10.20.1.5", 5432, t1),
        run("sh", "-c", "printf '%s\\n' | nc -N -w 5 10.20.1.5 5432" % t2),
        tcp("10.20.1.5", 5433, t3),
        curl("https://denied.test/" + t4, "--resolve", "denied.test:443:203.0.113.10"),
        tcp("10.20.1.5", 5432, t6, proto="mptcp"),
    ])
    t.check(r.s[0].get("ok") and ("ECHO %s local=10.20.1.5:5432" % t1) in r.s[0].get("data", ""),
            "python connect to 10.20.1.5:5432: expected the echo, got %s" % json.dumps(r.s[0]), r)
    t.check(r.s[1].get("rc") == 0 and ("ECHO %s" % t2) in r.s[1].get("stdout", ""),
            "nc 10.20.1.5 5432: expected the echo, got %s" % json.dumps(r.s[1]), r)
    m = t.event(r, "10.20.1.5:5432 direct", kind="tcp", address="10.20.1.5", port=5432, decision=ALLOW, rule=R_CIDR,
                detail="direct")
    # MPTCP is judged and connected like TCP (issue 9, item 3).
    t.check(r.s[4].get("ok") and ("ECHO %s" % t6) in r.s[4].get("data", ""),
            "python MPTCP connect to 10.20.1.5:5432: expected the echo, got %s" % json.dumps(r.s[4]), r)
    t.check(len(m) == 3, "one direct event per connection (python, nc, python MPTCP), got %s" % json.dumps(m), r)
    t.no_event(r, "no 5432 connection through the proxy", port=5432, detail=lambda d: d != "direct")
    # Not allowed: the proxy refuses it as before (the direct way is only
    # ever taken for an allow).
    t.sock_reset(r, 2, "python connect to 10.20.1.5:5433")
    t.event(r, "10.20.1.5:5433", kind="tcp", address="10.20.1.5", port=5433, decision=DENY, rule=IS_DEFAULT_RULE)
    t.never_reached(r, t3, "10.20.1.5:5433")
    # An address rule and no deny rule: no name can change the decision, so
    # the SNI is not read, and the allowed address serves whatever name.
    t.curl_ok(r, 3, t4, "WARD-HTTPS-OK", "SNI denied.test to 203.0.113.10 under the address rule alone")
    t.event(r, "203.0.113.10:443 direct", kind="tcp", address="203.0.113.10", port=443, decision=ALLOW,
            rule="203.0.113.10:443", detail="direct")
    # With a deny rule naming a domain, the same connection is read first.
    d = s.run(t, s.policy(["10.20.0.0/16:5432", "203.0.113.10:443"], ["denied.test"]), [
        curl("https://denied.test/" + t5, "--resolve", "denied.test:443:203.0.113.10"),
    ])
    t.curl_reset(d, 0, "SNI denied.test to 203.0.113.10 with the deny rule")
    t.event(d, "SNI denied.test", kind="tcp", domain="denied.test", decision=DENY, rule="denied.test")
    t.never_reached(d, t5, "denied by SNI")


@case
def direct_socket_semantics(t):
    """What a program sees of a direct socket is what its own socket would
    give: a non-blocking connect() answers EINPROGRESS at once; a socket
    registered with epoll before connecting (Go, Netty) keeps its own and
    goes through the proxy; a refused blocking connect() leaves the program
    its own socket, which it can connect again."""
    s = t.suite
    toks = [t.tok(), t.tok()]
    r = s.run(t, s.policy(["10.20.0.0/16:5432,5499"]), [sockets("10.20.1.5", 5432, 5499, tok) for tok in toks])
    for i, tok in enumerate(toks):
        res = r.s[i]
        nb, ep, rr = res.get("nonblocking", {}), res.get("epoll_first", {}), res.get("refused_then_retry", {})
        t.check(nb.get("connect") == "EINPROGRESS" and nb.get("writable") and nb.get("so_error") == 0
                and ("ECHO %s" % tok) in nb.get("reply", ""),
                "non-blocking connect: expected EINPROGRESS, writable, SO_ERROR 0 and the echo, got %s"
                % json.dumps(nb), r)
        t.check(ep.get("events") and ("ECHO %s" % tok) in ep.get("reply", ""),
                "socket registered with epoll before connect: expected an event and the echo, got %s"
                % json.dumps(ep), r)
        t.check(rr.get("first") == "ECONNREFUSED" and ("ECHO %s" % tok) in rr.get("reply", ""),
                "refused then connected again: expected ECONNREFUSED, then the echo, got %s" % json.dumps(rr), r)
        nr = res.get("nonblocking_refused", {})
        t.check(nr.get("connect") == "EINPROGRESS" and nr.get("again") == "ECONNREFUSED",
                "non-blocking to a closed port, then connect() again: expected EINPROGRESS, then ECONNREFUSED, got %s"
                % json.dumps(nr), r)
    direct = r.events_where(kind="tcp", port=5432, decision=ALLOW, detail="direct")
    proxied = r.events_where(kind="tcp", port=5432, decision=ALLOW, detail=lambda d: d != "direct")
    # Per step: the non-blocking and the retried connection direct, the
    # epoll-first one through the proxy.
    t.check(len(direct) == 4 and len(proxied) == 2,
            "expected 4 direct and 2 proxied connections to :5432, got %s" % json.dumps(r.events), r)
    refused = r.events_where(kind="tcp", port=5499, decision=ALLOW,
                             detail=lambda d: (d or "").startswith("direct; connect: ECONNREFUSED"))
    t.check(len(refused) == 2, "the refused blocking connections, recorded with the reason, got %s"
            % json.dumps(r.events), r)
    t.no_event(r, "asking how a connection went is no denial", decision=DENY)


@case
def dns_rebinding(t):
    """Allowed names that resolve to the host's loopback (rebind.test ->
    127.0.0.1, rebind6.test -> ::1) never reach the host's loopback services,
    neither directly nor through the proxy (which connects from the host)."""
    s = t.suite
    t1, t2, t3, t4, t5 = (t.tok() for _ in range(5))
    w = ("-w", "\nHTTP %{http_code}\n")
    r = s.run(t, s.policy(STD_ALLOW + ["rebind.test:8080", "rebind6.test:8080"], STD_DENY), [
        curl("http://rebind.test:8080/" + t1),
        curl("http://rebind.test:8080/" + t2, "-x", PROXY_URL, *w),
        curl("http://rebind.test:8080/" + t3, "-p", "-x", PROXY_URL),
        curl("http://rebind6.test:8080/" + t4, "-x", PROXY_URL, *w),
        curl("http://host.ward.internal:8080/" + t5),
        tcp("rebind.test", 8080, t1),
    ])
    t.check(r.s[0].get("rc") == 7, "curl --noproxy http://rebind.test:8080: expected the sandbox's own loopback "
            "to refuse, got %s" % json.dumps(r.s[0]), r)
    t.check(r.s[5].get("errno") == "ECONNREFUSED", "python connect to rebind.test:8080: expected the sandbox's "
            "own loopback to refuse, got %s" % json.dumps(r.s[5]), r)
    for i, what in ((1, "GET http://rebind.test:8080 via the proxy"), (3, "GET http://rebind6.test:8080 via the proxy")):
        st = r.s[i]
        t.check("HTTP 403" in st.get("stdout", "") and "WARD-HTTP-OK" not in st.get("stdout", ""),
                "%s: expected 403 from ward's proxy, got %s" % (what, json.dumps(st)), r)
        t.fast(r, st, what)
    st = r.s[2]
    t.check(st.get("rc") == 56 and "403" in st.get("stderr", ""),
            "CONNECT rebind.test:8080: expected a 403, got %s" % json.dumps(st), r)
    t.fast(r, st, "CONNECT rebind.test:8080")
    t.event(r, "GET rebind.test", kind="http-proxy", domain="rebind.test", address="127.0.0.1", port=8080,
            decision=DENY, detail="absolute-form")
    t.event(r, "CONNECT rebind.test", kind="http-proxy", domain="rebind.test", address="127.0.0.1", port=8080,
            decision=DENY, detail="connect")
    t.event(r, "GET rebind6.test", kind="http-proxy", domain="rebind6.test", address="::1", port=8080, decision=DENY)
    t.check(r.s[4].get("rc") != 0, "control inside the run: host.ward.internal:8080 without a rule must fail", r)
    for tok in (t1, t2, t3, t4, t5):
        t.never_reached(r, tok, "DNS rebinding to the host's loopback")
    t.no_conn(r, "127.0.0.1", 8080, "DNS rebinding")
    # An "allow" (by the rule) is acceptable only if the event says the
    # connection was then refused for its loopback address.
    for e in r.events:
        if _norm(e.get("domain", "")) in ("rebind.test", "rebind6.test") and e.get("kind") != "dns" \
                and e.get("decision") == ALLOW:
            t.check(re.search(r"loopback|rebind|refus|not allowed", "%s %s" % (e.get("detail"), e.get("reason")), re.I),
                    "event allows a connection to a loopback address without saying it was refused: %s"
                    % json.dumps(e), r)
    t.check(r.events_where(domain="rebind.test", kind="http-proxy"), "the proxied rebind.test requests are "
            "not recorded", r)


@case
def rebinding_into_private_networks(t):
    """DNS rebinding past the loopback: a name an allowed wildcard covers that
    resolves to a private address (private.wild.test -> 10.20.1.5, RFC 1918)
    or to one of the host's own interface addresses (self.wild.test ->
    198.51.100.1 on h0) is refused at connect, transparently and through the
    HTTP proxy, and recorded with the guard's reason (the block, and the
    address rule that would open it); "default": "allow" does not open them
    either. Control: an address rule for that range connects."""
    s = t.suite
    t1, t2, t3, t4, t5, t6, t7 = (t.tok() for _ in range(7))
    guard = "DNS rebinding guard; rule \"%s\" does not open it, only an address rule " % R_WILD
    private = "10.20.1.5 is a private address (RFC 1918), in 10.0.0.0/8: " + guard + \
        "inside that block does (\"10.0.0.0/8\" or \"10.20.1.5\")"
    own = "198.51.100.1 is one of this host's own addresses (on h0): " + guard + \
        "naming exactly it does (\"198.51.100.1\")"
    r = s.run(t, s.policy(STD_ALLOW, STD_DENY), [
        curl("https://private.wild.test/" + t1),
        curl("https://self.wild.test/" + t2),
        curl("https://private.wild.test/" + t3, proxy=True),
    ])
    t.curl_reset(r, 0, "curl https://private.wild.test (10.20.1.5)")
    t.curl_reset(r, 1, "curl https://self.wild.test (198.51.100.1, the host's own)")
    st = r.s[2]
    t.check(st.get("rc") == 56 and "403" in st.get("stderr", ""),
            "CONNECT private.wild.test:443 through the proxy: expected a 403, got %s" % json.dumps(st), r)
    t.event(r, "private.wild.test", kind="tcp", domain="private.wild.test", address="10.20.1.5", port=443,
            decision=DENY, reason=private)
    t.event(r, "self.wild.test", kind="tcp", domain="self.wild.test", address="198.51.100.1", port=443,
            decision=DENY, reason=own)
    t.event(r, "CONNECT private.wild.test", kind="http-proxy", domain="private.wild.test", address="10.20.1.5",
            port=443, decision=DENY, reason=private)
    for tok in (t1, t2, t3):
        t.never_reached(r, tok, "DNS rebinding into a private network")
    t.no_conn(r, "10.20.1.5", 443, "private.wild.test")
    t.no_conn(r, "198.51.100.1", 443, "self.wild.test")
    # "default": "allow" means the internet: the guard holds.
    d = s.run(t, s.policy([], [], default="allow"), [curl("https://private.wild.test/" + t4)])
    t.curl_reset(d, 0, "curl https://private.wild.test under \"default\": \"allow\"")
    t.event(d, "private.wild.test under the default", kind="tcp", domain="private.wild.test", address="10.20.1.5",
            decision=DENY, reason=lambda v: "private address (RFC 1918)" in (v or "")
            and "the default does not open it" in v)
    t.never_reached(d, t4, "private.wild.test under \"default\": \"allow\"")
    # Positive control: address rules for the range open both.
    c = s.run(t, s.policy(STD_ALLOW + ["10.20.0.0/16:443", "198.51.100.1:443"], STD_DENY), [
        curl("https://private.wild.test/" + t5),
        curl("https://self.wild.test/" + t6),
        curl("https://private.wild.test/" + t7, proxy=True),
    ])
    t.curl_ok(c, 0, t5, "WARD-HTTPS-OK", "control: private.wild.test under 10.20.0.0/16:443",
              ["local=10.20.1.5:443", "sni=private.wild.test"])
    t.curl_ok(c, 1, t6, "WARD-HTTPS-OK", "control: self.wild.test under 198.51.100.1:443",
              ["local=198.51.100.1:443"])
    t.curl_ok(c, 2, t7, "WARD-HTTPS-OK", "control: private.wild.test through the proxy", ["local=10.20.1.5:443"])
    t.event(c, "control", kind="tcp", domain="private.wild.test", address="10.20.1.5", port=443, decision=ALLOW,
            rule="10.20.0.0/16:443")
    t.event(c, "control", kind="tcp", domain="self.wild.test", address="198.51.100.1", port=443, decision=ALLOW,
            rule="198.51.100.1:443")


@case
def host_loopback_via_proxy(t):
    """The explicit proxy connects from the host's namespace: it must not
    open the host's loopback except through a host.ward.internal:PORT rule,
    and with that rule it must serve host.ward.internal like the
    transparent path does (curl uses the proxy for that name by default)."""
    s = t.suite
    t1, t2, t3, t4, t5, t6 = (t.tok() for _ in range(6))
    # default "allow": nothing reaches the host's loopback through the proxy.
    a = s.run(t, s.policy([], [], default="allow"), [
        proxy_get("http://127.0.0.1:8080/" + t1, "127.0.0.1:8080"),
        proxy_get("http://[::1]:8080/" + t2, "[::1]:8080"),
        proxy_connect("127.0.0.1:8080"),
        proxy_get("http://host.ward.internal:8080/" + t3, "host.ward.internal:8080"),
    ])
    for i, what in ((0, "GET http://127.0.0.1:8080 via the proxy"), (1, "GET http://[::1]:8080 via the proxy"),
                    (2, "CONNECT 127.0.0.1:8080"), (3, "GET http://host.ward.internal:8080 via the proxy")):
        st = a.s[i]
        t.check(st.get("status") not in (200, None) and "WARD-HTTP-OK" not in st.get("data", ""),
                "default allow, %s: expected a refusal from the proxy, got %s" % (what, json.dumps(st)), a)
    t.no_conn(a, "127.0.0.1", 8080, "host loopback through the proxy under default allow")
    for tok in (t1, t2, t3):
        t.never_reached(a, tok, "host loopback through the proxy")
    t.no_event(a, "host.ward.internal allowed through the proxy without a rule", kind="http-proxy",
               domain="host.ward.internal", decision=ALLOW)
    t.upstream_never_asked(a, "host.ward.internal", "ward's own name, through the proxy")
    # An address rule for 127.0.0.1 names the sandbox's own loopback (see
    # HostLoopback in egress_proxy.cc and docs/network.md): through the proxy
    # it must not become the host's.
    b = s.run(t, s.policy(["127.0.0.1:8080"]), [proxy_get("http://127.0.0.1:8080/" + t4, "127.0.0.1:8080")])
    t.check(b.s[0].get("status") != 200 and "WARD-HTTP-OK" not in b.s[0].get("data", ""),
            "rule 127.0.0.1:8080, GET http://127.0.0.1:8080 via the proxy reached the HOST's loopback service: %s"
            % json.dumps(b.s[0]), b)
    t.never_reached(b, t4, "rule 127.0.0.1:8080 through the proxy")
    # With the rule, the proxy path works like the transparent one.
    c = s.run(t, s.policy(["host.ward.internal:8080"]), [
        curl("http://host.ward.internal:8080/" + t5, "-4", proxy=True),
        proxy_get("http://host.ward.internal:8080/" + t6, "host.ward.internal:8080"),
    ])
    t.curl_ok(c, 0, t5, "WARD-HTTP-OK", "curl http://host.ward.internal:8080 with HTTP_PROXY set (curl's default)",
              ["local=127.0.0.1:8080"])
    t.check("WARD-HTTP-OK" in c.s[1].get("data", ""), "GET http://host.ward.internal:8080 via the proxy with the "
            "rule: expected the host's service, got %s" % json.dumps(c.s[1]), c)
    t.event(c, "proxy to host.ward.internal:8080", kind="http-proxy", domain="host.ward.internal", port=8080,
            decision=ALLOW, rule="host.ward.internal:8080")
    t.upstream_never_asked(c, "host.ward.internal", "ward's own name, through the proxy")


@case
def proxy_aware_clients(t):
    """HTTP(S)_PROXY point at ward's CONNECT proxy; it applies the same
    rules: allowed 200, denied 403, recorded as http-proxy events."""
    s = t.suite
    t1, t2, t3, t4, t5, t6, t7 = (t.tok() for _ in range(7))
    urllib = ("import sys, urllib.request, urllib.error\n"
              "try:\n"
              "    print(urllib.request.urlopen(sys.argv[1], timeout=8).read().decode())\n"
              "except urllib.error.HTTPError as e:\n"
              "    print('HTTPError', e.code); sys.exit(3)\n")
    r = s.run(t, s.policy(STD_ALLOW, STD_DENY), [
        {"op": "env"},
        curl("https://allowed.test/" + t1, proxy=True),
        curl("https://denied.test/" + t2, proxy=True),
        curl("https://203.0.113.11/" + t3, proxy=True),
        run(PY, "-c", urllib, "http://allowed.test/" + t4),
        run(PY, "-c", urllib, "http://denied.test/" + t5),
        curl("https://evil.allowed.test/" + t6, "-x", PROXY_URL),
        curl("https://denied.test/" + t7, "--connect-to", "denied.test:443:allowed.test:443", proxy=True),
    ])
    env = r.s[0].get("env", {})
    for n in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        t.check(env.get(n, "").rstrip("/") == PROXY_URL, "%s inside the sandbox: expected %s, got %r"
                % (n, PROXY_URL, env.get(n)), r)
    t.curl_ok(r, 1, t1, "WARD-HTTPS-OK", "curl https://allowed.test via HTTPS_PROXY", ["sni=allowed.test"])
    t.event(r, "CONNECT allowed.test:443", kind="http-proxy", domain="allowed.test", port=443, decision=ALLOW,
            rule=R_ALLOWED)
    for i, what in ((2, "CONNECT denied.test:443"), (3, "CONNECT 203.0.113.11:443"), (6, "CONNECT evil.allowed.test")):
        st = r.s[i]
        t.check(st.get("rc") == 56 and "403" in st.get("stderr", ""),
                "%s: expected curl exit 56 with a 403 from the proxy, got %s" % (what, json.dumps(st)), r)
        t.fast(r, st, what)
    t.event(r, "CONNECT denied.test", kind="http-proxy", domain="denied.test", port=443, decision=DENY)
    t.check([e for e in r.events_where(kind="http-proxy", port=443, decision=DENY)
             if "203.0.113.11" in (_norm(e.get("address") or ""), e.get("domain"))],
            "CONNECT 203.0.113.11: expected an http-proxy deny event for 203.0.113.11 port 443", r)
    t.event(r, "CONNECT evil.allowed.test", kind="http-proxy", domain="evil.allowed.test", decision=DENY,
            rule=R_EVIL)
    u = r.s[4]
    t.check(u.get("rc") == 0 and "WARD-HTTP-OK" in u.get("stdout", "") and t4 in u.get("stdout", ""),
            "python urllib http://allowed.test via http_proxy: expected the page, got %s" % json.dumps(u), r)
    t.event(r, "proxy GET http://allowed.test", kind="http-proxy", domain="allowed.test", port=80, decision=ALLOW)
    u = r.s[5]
    t.check(u.get("rc") == 3 and "HTTPError 403" in u.get("stdout", ""),
            "python urllib http://denied.test via http_proxy: expected 403, got %s" % json.dumps(u), r)
    t.event(r, "proxy GET http://denied.test", kind="http-proxy", domain="denied.test", port=80, decision=DENY)
    st = r.s[7]
    t.check(st.get("rc") in (35, 56) and "WARD-HTTPS-OK" not in st.get("stdout", ""),
            "CONNECT allowed.test:443 then TLS SNI denied.test (fronting through the proxy): expected a reset, got %s"
            % json.dumps(st), r)
    t.fast(r, st, "fronting through CONNECT")
    t.event(r, "SNI denied.test inside a CONNECT allowed.test tunnel", kind="http-proxy", domain="denied.test",
            decision=DENY)
    t.check("169.254.77.1" in r.s[0].get("resolv_conf", ""), "/etc/resolv.conf in the sandbox should name "
            "169.254.77.1, got %r" % r.s[0].get("resolv_conf"), r)
    for tok in (t2, t3, t5, t6, t7):
        t.never_reached(r, tok, "denied through the proxy")
    t.no_conn(r, "203.0.113.11", 443, "denied through the proxy")
    t.upstream_never_asked(r, "denied.test", "denied name through the proxy")
    t.upstream_never_asked(r, "evil.allowed.test", "denied name through the proxy")


@case
def proxy_unaware_clients(t):
    """Programs that ignore the proxy variables are intercepted all the same:
    curl --noproxy, python sockets, nc, node's fetch."""
    s = t.suite
    t1, t2, t3, t4, t5 = (t.tok() for _ in range(5))
    steps = [
        curl("https://allowed.test/" + t1),
        tcp("allowed.test", 7777, t2),
        run("sh", "-c", "printf '%s\\n' | nc -N -w 5 allowed.test 7777" % t3),
        run("sh", "-c", "printf '%s\\n' | nc -N -w 5 203.0.113.11 7777" % t4),
        tcp("203.0.113.11", 7777, t5),
    ]
    node = shutil.which("node")
    n1, n2, n3 = t.tok(), t.tok(), t.tok()
    # Node's fetch (undici) sometimes lets the process end without settling
    # the promise when the connection is reset at once: say so explicitly
    # (exit 4) instead of exiting 0 with nothing printed.
    js = ("let done = false;"
          " process.on('exit', () => { if (!done) { console.log('FETCH-UNSETTLED'); process.exitCode = 4; } });"
          " fetch(process.argv[1]).then(r => r.text()).then(b => { done = true; console.log(b); },"
          " e => { done = true; console.log('FETCH-ERR', e.cause ? (e.cause.code || e.cause.message) : e.message);"
          " process.exit(3); })")
    if node:
        steps += [run(node, "-e", js, "http://allowed.test/" + n1, timeout=20),
                  run(node, "-e", js, "http://203.0.113.11/" + n2, timeout=20),
                  run(node, "-e", js, "http://denied.test/" + n3, timeout=20)]
    r = s.run(t, s.policy(STD_ALLOW, STD_DENY), steps)
    t.curl_ok(r, 0, t1, "WARD-HTTPS-OK", "curl --noproxy '*' https://allowed.test")
    t.check(r.s[1].get("ok") and ("ECHO " + t2) in r.s[1].get("data", ""),
            "python socket to allowed.test:7777: expected the echo, got %s" % json.dumps(r.s[1]), r)
    t.check(r.s[2].get("rc") == 0 and ("ECHO " + t3) in r.s[2].get("stdout", ""),
            "nc allowed.test 7777: expected the echo, got %s" % json.dumps(r.s[2]), r)
    t.event(r, "allowed.test:7777", kind="tcp", domain="allowed.test", port=7777, decision=ALLOW, rule=R_ALLOWED)
    st = r.s[3]
    t.check(("ECHO " + t4) not in st.get("stdout", ""), "nc 203.0.113.11 7777 reached the server: %s" % json.dumps(st), r)
    t.fast(r, st, "nc 203.0.113.11 7777")
    t.sock_reset(r, 4, "python socket to 203.0.113.11:7777")
    t.event(r, "203.0.113.11:7777", kind="tcp", address="203.0.113.11", port=7777, decision=DENY)
    t.no_conn(r, "203.0.113.11", 7777, "raw TCP to 203.0.113.11")
    if node:
        a, b, c = r.s[5], r.s[6], r.s[7]
        t.check(a.get("rc") == 0 and "WARD-HTTP-OK" in a.get("stdout", "") and n1 in a.get("stdout", ""),
                "node fetch http://allowed.test: expected the page, got %s" % json.dumps(a), r)
        t.event(r, "node fetch allowed.test:80", kind="tcp", domain="allowed.test", port=80, decision=ALLOW)
        t.check((b.get("rc") == 3 and re.search(r"ECONNRESET|ECONNREFUSED|UND_ERR_SOCKET", b.get("stdout", "")))
                or (b.get("rc") == 4 and "FETCH-UNSETTLED" in b.get("stdout", "")),
                "node fetch http://203.0.113.11: expected ECONNRESET/ECONNREFUSED (or node's unsettled fetch after "
                "the reset), got %s" % json.dumps(b), r)
        t.fast(r, b, "node fetch http://203.0.113.11")
        t.check(c.get("rc") == 3 and re.search(r"ENOTFOUND|EAI_AGAIN", c.get("stdout", "")),
                "node fetch http://denied.test: expected ENOTFOUND, got %s" % json.dumps(c), r)
        t.event(r, "node fetch 203.0.113.11:80", kind="tcp", address="203.0.113.11", port=80, decision=DENY)
        t.event(r, "node's lookup of denied.test", kind="dns", domain="denied.test", decision=DENY)
        for tok in (n2, n3):
            t.never_reached(r, tok, "node fetch denied")
    else:
        t.note("node not installed: node's fetch not tested")
    for tok in (t4, t5):
        t.never_reached(r, tok, "raw TCP to 203.0.113.11")


@case
def default_allow(t):
    """"default": "allow" with a deny list: unlisted names and addresses go
    through (recorded with an empty rule), the listed ones do not. (Private
    networks and the host's own addresses stay closed by the rebinding
    guard: rebinding_into_private_networks.)"""
    s = t.suite
    pol = s.policy([], ["denied.test", "203.0.113.12"], default="allow")
    t1, t2, t3, t4, t5 = (t.tok() for _ in range(5))
    r = s.run(t, pol, [
        curl("https://allowed.test/" + t1, "-4"),
        resolve("denied.test"),
        curl("https://203.0.113.12/" + t2),
        curl("https://203.0.113.13/" + t3),
        curl("https://denied.test/" + t4, "--resolve", "denied.test:443:203.0.113.10"),
        tcp("203.0.113.14", 5433, t5),
    ])
    t.curl_ok(r, 0, t1, "WARD-HTTPS-OK", "allowed.test by default")
    t.event(r, "allowed.test by default", kind="tcp", domain="allowed.test", port=443, decision=ALLOW,
            rule=IS_DEFAULT_RULE)
    t.gai_fail(r, 1, "denied.test")
    t.event(r, "denied.test in DNS", kind="dns", domain="denied.test", decision=DENY, rule="denied.test")
    t.upstream_never_asked(r, "denied.test", "denied name")
    t.curl_reset(r, 2, "curl https://203.0.113.12 (denied by address)")
    t.event(r, "203.0.113.12", kind="tcp", address="203.0.113.12", port=443, decision=DENY, rule="203.0.113.12")
    t.no_conn(r, "203.0.113.12", 443, "203.0.113.12 denied")
    t.curl_ok(r, 3, t3, "WARD-HTTPS-OK", "control: curl https://203.0.113.13 (allowed by default)")
    t.event(r, "203.0.113.13 by default", kind="tcp", address="203.0.113.13", port=443, decision=ALLOW, rule="")
    t.curl_reset(r, 4, "SNI denied.test to allowed.test's address")
    t.event(r, "SNI denied.test", kind="tcp", domain="denied.test", decision=DENY, rule="denied.test")
    t.check(r.s[5].get("ok") and t5 in r.s[5].get("data", ""),
            "203.0.113.14:5433 under default allow: expected the echo, got %s" % json.dumps(r.s[5]), r)
    for tok in (t2, t4):
        t.never_reached(r, tok, "denied under default allow")


@case
def network_none(t):
    """"network": "none": loopback only; no proxy variables, no resolver, no
    egress events, nothing reaches the servers. Control: "host"."""
    s = t.suite
    t1, t2, t3 = t.tok(), t.tok(), t.tok()
    r = s.run(t, s.policy(network="none"), [
        {"op": "env"},
        resolve("allowed.test"),
        tcp("203.0.113.10", 7777, t1),
        udp("203.0.113.11", 9999, t2),
        {"op": "loopback"},
    ])
    t.check(not r.s[0].get("env"), "no proxy variables with network none, got %s" % r.s[0].get("env"), r)
    t.check(not r.s[1].get("ok"), "allowed.test must not resolve with network none, got %s" % json.dumps(r.s[1]), r)
    t.check(not r.s[2].get("ok") and r.s[2].get("errno") in ("ENETUNREACH", "EHOSTUNREACH", "ECONNREFUSED"),
            "TCP to 203.0.113.10 with network none: expected ENETUNREACH, got %s" % json.dumps(r.s[2]), r)
    t.check(not r.s[3].get("ok"), "UDP with network none: expected failure, got %s" % json.dumps(r.s[3]), r)
    t.check(r.s[4].get("ok"), "the sandbox's own loopback must work: %s" % json.dumps(r.s[4]), r)
    t.check(not r.events, "network none must record no egress events", r)
    for tok in (t1, t2):
        t.never_reached(r, tok, "network none")
    t.upstream_never_asked(r, "allowed.test", "network none")
    c = s.run(t, s.policy(network="host"), [tcp("203.0.113.10", 7777, t3)])
    t.check(c.s[0].get("ok") and t3 in c.s[0].get("data", ""),
            "control: the same connection with network host, got %s" % json.dumps(c.s[0]), c)


@case
def sandbox_loopback(t):
    """In egress mode, servers inside the sandbox are reachable on its own
    loopback (127.0.0.1 and ::1), not intercepted."""
    s = t.suite
    r = s.run(t, s.policy(STD_ALLOW, STD_DENY), [{"op": "loopback"}])
    t.check(r.s[0].get("ok"), "loopback inside the sandbox: %s" % json.dumps(r.s[0]), r)
    t.check(not r.events, "loopback traffic must not go through the egress proxy", r)


@case
def dns_server_option(t):
    """--dns-server [2001:db8::53]:5353 (IPv6, a port): allowed questions go there."""
    s = t.suite
    tok = t.tok()
    r = s.run(t, s.policy(STD_ALLOW, STD_DENY), [resolve("allowed.test", 4), curl("https://allowed.test/" + tok, "-4")],
              dns=("[2001:db8::53]:5353",))
    t.check(r.s[0].get("addresses") == ["203.0.113.10"], "allowed.test via [2001:db8::53]:5353: %s" % json.dumps(r.s[0]), r)
    t.curl_ok(r, 1, tok, "WARD-HTTPS-OK", "curl https://allowed.test")
    asked = t.upstream_asked(r, "allowed.test", "--dns-server [2001:db8::53]:5353")
    t.check(asked and all(q["server"].startswith("2001:db8::53") for q in asked),
            "questions must go to 2001:db8::53 port 5353 only: %s" % asked, r)


@case
def policy_errors(t):
    """Bad rules are refused at load (exit 123) with the JSON path and the
    rule in the message, by `ward policy check` and `ward run`."""
    s = t.suite
    bad = [
        ({"allow": ["foo.*.test:443"]}, "/network/egress/allow/0", "foo.*.test:443"),
        ({"allow": ["*example.test"]}, "/network/egress/allow/0", "*example.test"),
        ({"allow": ["allowed.test:0"]}, "/network/egress/allow/0", "allowed.test:0"),
        ({"allow": ["allowed.test:65536"]}, "/network/egress/allow/0", "allowed.test:65536"),
        ({"allow": ["allowed.test:9000-8000"]}, "/network/egress/allow/0", "9000-8000"),
        ({"allow": ["allowed.test:443", "10.20.1.0/16"]}, "/network/egress/allow/1", "10.20.1.0/16"),
        ({"allow": ["https://allowed.test/x"]}, "/network/egress/allow/0", "https://allowed.test/x"),
        ({"allow": ["localhost"]}, "/network/egress/allow/0", "localhost"),
        ({"allow": ["*"]}, "/network/egress/allow/0", "*"),
        ({"deny": ["[1.2.3.4]:443"]}, "/network/egress/deny/0", "[1.2.3.4]:443"),
        ({"allow": ["::ffff:1.2.3.4"]}, "/network/egress/allow/0", "::ffff:1.2.3.4"),
        ({"allow": ["udp://allowed.test:9999"]}, "/network/egress/allow/0", "udp://allowed.test:9999"),
        ({"default": "maybe"}, "/network/egress/default", None),
        ({"alow": ["allowed.test:443"]}, "/network/egress/alow", None),
    ]
    files = []
    for egress, path, rule in bad:
        e = {"default": "deny"}
        e.update(egress)
        pol = {"ward": 1, "extends": "minimal", "network": {"egress": e}}
        f = s.write_policy(pol)
        files.append(f)
        p = subprocess.run([s.ward, "policy", "check", f], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env=s.env)
        out = p.stdout.decode(errors="replace")
        t.check(p.returncode == 123 and path in out and (rule is None or rule in out),
                "ward policy check %s: expected exit 123 naming %s%s, got %d: %s" % (
                    json.dumps(egress), path, (" and " + rule) if rule else "", p.returncode, out.strip()[-300:]))
        q = subprocess.run([s.ward, "run", "--policy", f, "--dns-server", "203.0.113.53", "--", "/bin/true"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=s.env, timeout=30)
        out = q.stdout.decode(errors="replace")
        t.check(q.returncode == 123 and path in out,
                "ward run with %s: expected exit 123 naming %s, got %d: %s" % (
                    json.dumps(egress), path, q.returncode, out.strip()[-300:]))
    good = s.write_policy(s.policy(STD_ALLOW + ["[2001:db8::/32]:443", "host.ward.internal:5432"],
                                   STD_DENY + ["udp://denied.test", "tcp://203.0.113.12"]))
    p = subprocess.run([s.ward, "policy", "check", good], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=s.env)
    t.check(p.returncode == 0, "control: a valid egress policy passes `ward policy check`, got %d: %s"
            % (p.returncode, p.stdout.decode(errors="replace").strip()[-400:]))


@case
def no_leaks_inflight(t):
    """A run killed by --timeout-ms while connections are in flight (one
    transparent, one through the proxy, to a server that never answers)
    closes them on the server's side and leaves no process behind."""
    s = t.suite
    t1, t2 = t.tok(), t.tok()
    before = len(s.servers.hold.items())
    script = ("curl -sS --noproxy '*' --max-time 60 -4 http://allowed.test:7000/%s & "
              "curl -sS --max-time 60 http://allowed.test:7000/%s & wait" % (t1, t2))
    r = s.run(t, s.policy(STD_ALLOW + ["allowed.test:7000"], STD_DENY),
              [run("sh", "-c", script, timeout=90)], timeout_ms=6000)
    ended = time.monotonic()
    t.check(r.rc == 124 and (r.result or {}).get("timedOut") is True,
            "expected ward to time out (exit 124, timedOut), got exit %s" % r.rc, r)
    t.check(r.t1 - r.t0 < 30, "ward took %.1fs to end a run with a 6s timeout" % (r.t1 - r.t0), r)
    deadline = ended + 10
    while time.monotonic() < deadline:
        entries = s.servers.hold.items()[before:]
        if len(entries) >= 2 and all(e.get("closed_at") for e in entries):
            break
        time.sleep(0.05)
    entries = s.servers.hold.items()[before:]
    for tok, what in ((t1, "transparent"), (t2, "through the proxy")):
        es = [e for e in entries if tok in e.get("data", "")]
        if not t.check(es, "the %s connection never reached the hold server" % what, r):
            continue
        e = es[0]
        t.check(e.get("closed_at") is not None,
                "the %s connection is still open on the server's side 3s after ward exited" % what, r)
        if e.get("closed_at"):
            t.check(e["closed_at"] - ended < 2.5, "the %s connection closed %.1fs after ward exited" % (
                what, e["closed_at"] - ended), r)
    t.event(r, "transparent connection recorded though killed", kind="tcp", domain="allowed.test", port=7000,
            decision=ALLOW)
    t.event(r, "proxied request recorded though killed", kind="http-proxy", domain="allowed.test", port=7000,
            decision=ALLOW)
    left = processes_mentioning(s.work)
    t.check(not left, "processes left after the run: %s" % left, r)


# --------------------------------------------------------------------------
# Harness checks, outside ward
# --------------------------------------------------------------------------

def outside_probe(suite, steps):
    path = os.path.join(suite.work, "outside-steps.json")
    with open(path, "w") as f:
        json.dump(steps, f)
    p = subprocess.run([PY, suite.probe, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    for line in p.stdout.decode().splitlines():
        if line.startswith("WARD-PROBE-RESULT "):
            return json.loads(line[len("WARD-PROBE-RESULT "):])
    raise RuntimeError("probe failed outside ward: %s" % p.stderr.decode()[-500:])


def self_check(suite):
    """The servers and the DNS answer from the test host itself; otherwise a
    denial inside ward would prove nothing."""
    steps = [
        {"op": "run", "argv": ["curl", "-sS", "-k", "--noproxy", "*", "https://allowed.test/sc",
                               "--resolve", "allowed.test:443:203.0.113.10"], "timeout": 10},
        {"op": "run", "argv": ["curl", "-sS", "-k", "--noproxy", "*", "https://denied.test:8443/sc",
                               "--resolve", "denied.test:8443:203.0.113.11"], "timeout": 10},
        {"op": "run", "argv": ["curl", "-sS", "-g", "-k", "--noproxy", "*", "https://[2001:db8::11]/sc"], "timeout": 10},
        {"op": "run", "argv": ["curl", "-sS", "--noproxy", "*", "http://127.0.0.1:8080/sc"], "timeout": 10},
        {"op": "run", "argv": ["curl", "-sS", "--noproxy", "*", "-H", "Host: denied.test", "http://203.0.113.10/sc"],
         "timeout": 10},
        tcp("10.20.1.5", 5433, "sc"),
        tcp("203.0.113.11", 7777, "sc"),
        udp("203.0.113.11", 9999, "sc"),
        dnsq("203.0.113.53", "allowed.test"),
        dnsq("203.0.113.53", "denied.test", over_tcp=True),
        dnsq("2001:db8::53", "ipv6only.test", "AAAA", port=5353),
        dnsq("203.0.113.53", "nosuch.test"),
    ]
    res = outside_probe(suite, steps)
    expect = [
        lambda r: "WARD-HTTPS-OK host=allowed.test sni=allowed.test local=203.0.113.10:443" in r.get("stdout", ""),
        lambda r: "sni=denied.test local=203.0.113.11:8443" in r.get("stdout", ""),
        lambda r: "local=2001:db8::11:443" in r.get("stdout", ""),
        lambda r: "WARD-HTTP-OK host=127.0.0.1:8080" in r.get("stdout", ""),
        lambda r: "host=denied.test" in r.get("stdout", ""),
        lambda r: "ECHO sc local=10.20.1.5:5433" in r.get("data", ""),
        lambda r: "ECHO sc local=203.0.113.11:7777" in r.get("data", ""),
        lambda r: "UDP-ECHO sc" in r.get("data", ""),
        lambda r: r.get("answers") == ["203.0.113.10"],
        lambda r: r.get("answers") == ["203.0.113.11"],
        lambda r: r.get("answers") == ["2001:db8::20"],
        lambda r: r.get("rcode") == 3,
    ]
    bad = []
    for s, r, ok in zip(steps, res, expect):
        if not ok(r):
            bad.append("%s -> %s" % (json.dumps(s), json.dumps(r)))
    return bad


# --------------------------------------------------------------------------
# Inner half: the test host
# --------------------------------------------------------------------------

def inner(args):
    import net_harness
    work = tempfile.mkdtemp(prefix="ward-egress-", dir="/tmp")
    os.chmod(work, 0o755)
    # Held sandboxes (--via exec, dns_bindings_persist) live in a runtime
    # directory of the suite's own (0700), gone with it.
    runtime = tempfile.mkdtemp(prefix="ward-egress-rt-", dir="/tmp")
    try:
        try:
            net_harness.Setup()
        except net_harness.SetupError as e:
            log("SKIP: cannot build the test network: %s" % e)
            return SKIP_RC
        servers = net_harness.Servers(work)
        servers.Start()
        if os.getuid() != 0:
            drop_capabilities()
        suite = Suite(os.path.abspath(args.ward), work, runtime, servers, args.verbose, args.via)
        bad = self_check(suite)
        if bad:
            log("FAIL: the test network does not work outside ward (harness bug):\n  " + "\n  ".join(bad))
            return 1
        if args.harness_only:
            log("harness ok: network, servers and DNS answer outside ward (work dir %s)" % work)
            if args.cmd:
                rc = subprocess.call(args.cmd)
                log("DNS questions seen: %s" % [(q["name"], q["qtype"], q["transport"]) for q in servers.dns.items()])
                return rc
            return 0
        mode = "root" if os.getuid() == 0 else "user %s (uid %d, no capabilities)" % (_user_name(), os.getuid())
        log("egress suite: ward %s (via %s), as %s, work dir %s" % (suite.ward, args.via, mode, work))
        if not suite.has_dns_option:
            log("NOTE: `ward run --help` does not mention --dns-server: egress control is not in this ward")
        only = set(args.only.split(",")) if args.only else None
        counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
        t_all = time.monotonic()
        for name, fn in CASES:
            if only and name not in only:
                continue
            t = T(suite, name)
            t0 = time.monotonic()
            status, why = "PASS", ""
            try:
                fn(t)
            except Skip as e:
                status, why = "SKIP", str(e)
            except Exception:
                t.fail("test error:\n" + traceback.format_exc())
            if t.failures and status != "SKIP":
                status = "FAIL"
                why = t.failures[0][0].split("\n")[0]
            counts[status] += 1
            log("%s %s (%.1fs)%s" % (status, name, time.monotonic() - t0, (": " + why) if why else ""))
            for n in t.notes:
                log("    note: " + n)
            if status == "FAIL":
                shown = set()
                for msg, r in t.failures:
                    log("  - " + msg)
                for msg, r in t.failures:
                    if r is not None and id(r) not in shown:
                        shown.add(id(r))
                        log(r.describe())
        log("egress suite: %d passed, %d failed, %d skipped in %.1fs" % (
            counts["PASS"], counts["FAIL"], counts["SKIP"], time.monotonic() - t_all))
        left = [e for e in os.listdir(runtime) if e not in ("names", ".lock")]
        if left:
            log("FAIL: held sandboxes left in %s after every case: %s" % (runtime, left))
            return 1
        return 1 if counts["FAIL"] else 0
    finally:
        if args.keep:
            log("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(runtime, ignore_errors=True)


# -- issue 8 (red-team review of egress), items 6-10 -------------------------

def keepalive(host, port, requests):
    return {"op": "keepalive", "host": host, "port": port, "requests": requests}


def _get(path, host):
    return "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host)


@case
def keepalive_proxy_judges_every_request(t):
    """Issue 8 item 6: curl through HTTP_PROXY with two URLs on one kept-alive
    proxy connection. The second (a denied host) gets a 403 and a recorded
    deny; the control (two allowed hosts) fetches both, each recorded."""
    s = t.suite
    pol = s.policy(allow=["allowed.test:80", "good.allowed.test:80"])
    proxy = ["-x", "http://169.254.77.1:3128"]
    # curl() puts its first argument last: allowed.test first, then the other.
    r = s.run(t, pol, [
        curl("http://denied.test/ka/two", *proxy, "http://allowed.test/ka/one", proxy=True),
        curl("http://good.allowed.test/ka/two", *proxy, "http://allowed.test/ka/one", proxy=True),
    ])
    out = r.s[0].get("stdout", "")
    t.check("host=allowed.test" in out, "the first request through the proxy should be served: %r" % out[-300:], r)
    t.check("host=denied.test" not in out and "ward: no rule allows tcp to denied.test:80" in out,
            "the second request (denied.test) on the same proxy connection must get ward's 403: %r" % out[-400:], r)
    t.event(r, "denied.test, second request on the proxy connection", kind="http-proxy", domain="denied.test",
            port=80, decision=DENY, detail=lambda d: "request 2 on the connection" in (d or ""))
    t.no_bytes(r, "203.0.113.11", 80, "denied.test through the kept-alive proxy connection")
    out = r.s[1].get("stdout", "")
    t.check("host=allowed.test" in out and "host=good.allowed.test" in out,
            "control: both allowed hosts through one proxy connection: %r" % out[-400:], r)
    t.event(r, "control: good.allowed.test, second request", kind="http-proxy", domain="good.allowed.test",
            decision=ALLOW, detail=lambda d: "request 2 on the connection" in (d or ""))


@case
def keepalive_transparent_rejudges_host(t):
    """Issue 8 item 6, transparent plain HTTP: on one kept-alive connection to
    a.wild.test's address, a request whose Host is denied.test is reset and
    recorded; the control switches to b.c.wild.test (same address, allowed)."""
    s = t.suite
    pol = s.policy(allow=["*.wild.test:80"])
    r = s.run(t, pol, [
        resolve("a.wild.test", 4), resolve("b.c.wild.test", 4),
        keepalive("a.wild.test", 80, [_get("/ka/1", "a.wild.test"), _get("/ka/2", "denied.test")]),
        keepalive("a.wild.test", 80, [_get("/ka/1", "a.wild.test"), _get("/ka/2", "b.c.wild.test")]),
    ])
    a = r.s[2]
    t.check(not a.get("ok") and a.get("stage") == "request 2" and a.get("errno") in ("ECONNRESET", "ECONNABORTED")
            and len(a.get("answers", [])) == 1 and "host=a.wild.test" in a["answers"][0],
            "the second request (Host: denied.test) must be reset after the first was served: %s" % json.dumps(a), r)
    t.event(r, "Host denied.test on a kept-alive connection", kind="tcp", domain="denied.test", port=80,
            decision=DENY, detail="http-host (request 2 on the connection)")
    t.check(not [h for h in s.servers.http.items() if h["host"] == "denied.test" and r.t0 <= h["time"] <= r.t1 + 0.5],
            "the server must never see a request for denied.test", r)
    b = r.s[3]
    t.check(b.get("ok") and len(b.get("answers", [])) == 2 and "host=b.c.wild.test" in b["answers"][1],
            "control: a second allowed name on the same address is served: %s" % json.dumps(b), r)
    t.event(r, "control: b.c.wild.test", kind="tcp", domain="b.c.wild.test", decision=ALLOW,
            detail="http-host (request 2 on the connection)")


@case
def leading_whitespace_is_refused(t):
    """Issue 8 item 9: first bytes " GET / HTTP/1.1 ... Host: denied.test" to an
    allowed name's address are refused (a lenient server would serve
    denied.test), recorded with the reason; the control without the space
    is served."""
    s = t.suite
    pol = s.policy(allow=["allowed.test:80"])
    r = s.run(t, pol, [
        resolve("allowed.test", 4),
        tcp("allowed.test", 80, " GET / HTTP/1.1\r\nHost: denied.test\r\n\r\n", family=4),
        tcp("allowed.test", 80, "\tGET / HTTP/1.1\r\nHost: denied.test\r\n\r\n", family=4),
        tcp("allowed.test", 80, "GET / HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n", family=4),
    ])
    for i in (1, 2):
        t.sock_reset(r, i, "leading whitespace before a request line (step %d)" % i,
                     allowed=("ECONNRESET", "ECONNREFUSED", "EPIPE", "EOF"))
    t.event(r, "leading whitespace", kind="tcp", address="203.0.113.10", port=80, decision=DENY,
            reason=lambda x: "whitespace or control characters" in (x or ""))
    t.check(not [h for h in s.servers.http.items() if h["host"] == "denied.test" and r.t0 <= h["time"] <= r.t1 + 0.5],
            "the server must never see the request for denied.test", r)
    t.check(r.s[3].get("ok") and "host=allowed.test" in r.s[3].get("data", ""),
            "control: the same request without the leading space is served: %s" % json.dumps(r.s[3]), r)


def _raw_query(qid, name, qtype, edns_option=None):
    """A DNS query as bytes (hex), with an OPT record carrying one option."""
    import struct as st
    q = st.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1 if edns_option else 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + st.pack("!HH", qtype, 1)
    if edns_option:
        code, payload = edns_option
        opt = st.pack("!HH", code, len(payload)) + payload
        q += b"\0" + st.pack("!HHBBHH", 41, 4096, 0, 0, 0x8000, len(opt)) + opt
    return q.hex()


@case
def dns_query_rebuilt(t):
    """Issue 8 item 8: an allowed question with an EDNS option carrying a
    payload reaches the upstream resolver as a fresh query: no option, the
    name in lower case, another id; the program gets its id and its
    question's case back. A type outside the forwarded list (NULL) is
    REFUSED and recorded; the control (A for the same name) is answered."""
    s = t.suite
    pol = s.policy(allow=["allowed.test:443"])
    secret = b"WARD-EXFIL-PAYLOAD"
    r = s.run(t, pol, [
        {"op": "dns", "server": "203.0.113.53", "name": "AlLoWeD.TeSt",
         "raw_hex": _raw_query(0x1234, "AlLoWeD.TeSt", 1, (65001, secret))},
        {"op": "dns", "server": "203.0.113.53", "name": "allowed.test", "raw_hex": _raw_query(0x4321, "allowed.test", 10)},
        dnsq("203.0.113.53", "allowed.test"),
    ])
    a = r.s[0]
    t.check(a.get("ok") and a.get("rcode") == 0 and a.get("answers") == ["203.0.113.10"],
            "allowed.test with an EDNS option: expected NOERROR 203.0.113.10, got %s" % json.dumps(a), r)
    raw = bytes.fromhex(a.get("raw_answer", ""))
    t.check(raw[:2] == b"\x12\x34" and b"\x07AlLoWeD\x04TeSt\x00" in raw[:40],
            "the answer must carry the program's id and question case: %s" % raw[:40].hex(), r)
    asked = [q for q in s.servers.dns_asked("allowed.test") if r.t0 <= q["time"] <= r.t1 + 0.5]
    t.check(asked, "the upstream was never asked for allowed.test", r)
    for q in asked:
        b = bytes.fromhex(q["raw"])
        t.check(secret not in b and b"\x07allowed\x04test\x00" in b and b[:2] not in (b"\x12\x34", b"\x43\x21"),
                "the upstream must see a fresh query (no option payload, lower-case name, ward's id): %s" % q["raw"],
                r)
    t.check(r.s[1].get("ok") and r.s[1].get("rcode") == 5,
            "a NULL (type 10) question must be answered REFUSED: %s" % json.dumps(r.s[1]), r)
    t.event(r, "NULL question refused", kind="dns", domain="allowed.test", decision=DENY, detail="TYPE10",
            reason=lambda x: "is not forwarded" in (x or ""))
    t.check(not [q for q in asked if q["qtype"] == "10"], "the NULL question must not reach the upstream", r)
    t.check(r.s[2].get("ok") and r.s[2].get("answers") == ["203.0.113.10"],
            "control: a plain A question is answered: %s" % json.dumps(r.s[2]), r)


@case
def slow_heads_do_not_starve(t):
    """Issue 8 item 10: 530 connections to ward's HTTP proxy that each send
    half a request line; a later request on a new connection is still
    served, and the closed heads are recorded ("head limit"). Control: the
    same request alone."""
    s = t.suite
    pol = s.policy(allow=["allowed.test:80"])
    req = "GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n"
    r = s.run(t, pol, [
        {"op": "slowheads", "host": "169.254.77.1", "port": 3128, "count": 530, "request": req},
        proxy_get("http://allowed.test/", "allowed.test"),
    ], timeout=90)
    a = r.s[0]
    t.check(a.get("opened") == 530, "the probe should open 530 slow connections, opened %s" % a.get("opened"), r)
    t.check(a.get("status") == 200 and "host=allowed.test" in a.get("data", ""),
            "a request after 530 half-sent heads must be served: %s" % json.dumps(a)[:600], r)
    t.event(r, "oldest heads closed", kind="tcp", decision=DENY, detail="head limit",
            reason=lambda x: "waiting for their first bytes" in (x or ""))
    t.check(r.s[1].get("status") == 200, "control: the same request alone: %s" % json.dumps(r.s[1])[:400], r)


# -- the red-team review of items 6 and 9 -------------------------------------
# The reviewer's set-up: Python's http.server with keep-alive on allowed.test's
# address, answering with the Host it saw. It splits request lines on any
# whitespace, never reads a body its handler ignores (the body is then read as
# the next request) and ignores an Upgrade it does not serve.

LENIENT_PORT = 8001
ALLOWED4 = "203.0.113.10"  # allowed.test's IPv4 address (the server listens there only)
_lenient = {}


@case
def proxy_forwards_origin_form(t):
    """Through HTTP_PROXY a request reaches the origin as a proxy must send
    it (issue 9, item 1): in origin-form (Python's and Node's servers answer
    404 to an absolute URL they do not recognise as their own), without the
    hop-by-hop fields (Proxy-Connection, Keep-Alive, TE, the fields
    Connection names), with the Host the client sent."""
    s = t.suite
    seen = lenient_server()
    pol = s.policy(allow=["allowed.test:%d" % LENIENT_PORT])
    t1, t2 = t.tok(), t.tok()
    urllib = ("import urllib.request\n"
              "print(urllib.request.urlopen('http://allowed.test:%d/%s?q=1', timeout=5).read().decode())\n"
              % (LENIENT_PORT, t2))
    r = s.run(t, pol, [
        curl("http://allowed.test:%d/%s" % (LENIENT_PORT, t1), "-H", "Connection: keep-alive, X-Hop", "-H",
             "X-Hop: 1", "-H", "Keep-Alive: timeout=5", "-H", "TE: trailers", proxy=True),
        run(PY, "-c", urllib),
    ])
    t.check(r.s[0].get("rc") == 0 and "path=/%s\n" % t1 in r.s[0].get("stdout", ""),
            "curl through the proxy: expected origin-form path=/%s, got %r" % (t1, r.s[0].get("stdout", "")), r)
    t.check(r.s[1].get("rc") == 0 and "path=/%s?q=1" % t2 in r.s[1].get("stdout", ""),
            "urllib through the proxy: expected origin-form path=/%s?q=1, got %r %r"
            % (t2, r.s[1].get("stdout", ""), r.s[1].get("stderr", "")[-300:]), r)
    for tok in (t1, t2):
        got = [e for e in seen if tok in e["path"]]
        t.check(len(got) == 1 and got[0]["path"].startswith("/") and not got[0]["hop"]
                and got[0]["host"] == "allowed.test:%d" % LENIENT_PORT
                and "keep-alive" not in got[0]["connection"].lower(),
                "the origin saw %s" % json.dumps(got), r)
    t.event(r, "curl through the proxy", kind="http-proxy", domain="allowed.test", port=LENIENT_PORT, decision=ALLOW)


def lenient_server():
    """Starts (once) the reviewer's server on allowed.test's address, port
    8001; returns its log of requests: {time, method, path, host}."""
    if "log" in _lenient:
        return _lenient["log"]
    import http.server
    log_ = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10

        def log_message(self, *a):
            pass

        def answer(self):
            host = self.headers.get("Host", "")
            hop = [h for h in ("Proxy-Connection", "Keep-Alive", "Proxy-Authorization", "TE", "X-Hop")
                   if self.headers.get(h) is not None]
            log_.append({"time": time.monotonic(), "method": self.command, "path": self.path, "host": host,
                         "hop": hop, "connection": self.headers.get("Connection", "")})
            conn = self.headers.get("Connection", "").lower()
            path = self.path.split("://", 1)[1].split("/", 1)[-1] if "://" in self.path else self.path[1:]
            if path.startswith("ws") and self.headers.get("Upgrade") and "upgrade" in conn:
                # A WebSocket-style upgrade: 101, then one echoed line at a time.
                self.send_response(101, "Switching Protocols")
                self.send_header("Upgrade", self.headers["Upgrade"])
                self.send_header("Connection", "Upgrade")
                self.end_headers()
                self.wfile.flush()
                while True:
                    line = self.rfile.readline()
                    if not line:
                        break
                    self.wfile.write(b"ECHO " + line)
                    self.wfile.flush()
                self.close_connection = True
                return
            body = ("LENIENT host=%s path=%s\n" % (host, self.path)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            if "close" in conn:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_OPTIONS = do_PURGE = answer

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

        def handle_error(self, request, client_address):
            pass  # ward's resets are the point of these cases

    srv = Server((ALLOWED4, LENIENT_PORT), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    _lenient["log"] = log_
    return log_


def lenient_saw(r, host):
    return [h for h in _lenient.get("log", []) if h["host"] == host and r.t0 <= h["time"] <= r.t1 + 0.5]


RAW_CLIENT = r"""
import json, socket, sys, time
host, port, data = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3])
t0 = time.monotonic()
out = {"ok": False, "data": ""}
got = b""
try:
    s = socket.create_connection((host, port), timeout=4)
    s.sendall(data)
    while True:
        c = s.recv(65536)
        if not c:
            break
        got += c
    out["ok"] = True
    out["errno"] = "EOF"
except OSError as e:
    import errno as E
    out["errno"] = "TIMEOUT" if isinstance(e, socket.timeout) else E.errorcode.get(e.errno, str(e))
out["data"] = got.decode("latin-1")
out["elapsed_ms"] = round((time.monotonic() - t0) * 1000, 1)
print(json.dumps(out))
"""


def raw(host, port, data):
    """Sends `data` (str, latin-1) on one connection at once, reads until the
    server closes, resets or 4 s pass; the step's stdout is a JSON object:
    ok (ended cleanly), errno, data."""
    return run(PY, "-c", RAW_CLIENT, host, str(port), data.encode("latin-1").hex(), timeout=10)


def raw_result(r, i):
    try:
        return json.loads(r.s[i].get("stdout", "").strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"ok": False, "errno": "NO-OUTPUT", "data": r.s[i].get("stderr", "")[-300:]}


def refused_at_once(t, r, i, what):
    """A raw step that ward reset: no answer reached the client."""
    a = raw_result(r, i)
    t.check(a.get("errno") in ("ECONNRESET", "EPIPE") and "LENIENT" not in a.get("data", ""),
            "%s: expected a reset and no answer, got %s" % (what, json.dumps(a)[:500]), r)
    return a


@case
def tab_request_line_is_refused(t):
    """Red-team finding 1 (items 6, 9): "GET\t/secret\tHTTP/1.1" with Host
    denied.test to allowed.test's address was judged as naming no host and
    relayed unread; Python's http.server served denied.test. Now refused and
    recorded, transparently and inside a CONNECT tunnel of the explicit
    proxy. Controls: curl with two URLs on one connection, Python urllib
    through the proxy."""
    s = t.suite
    seen = lenient_server()
    pol = s.policy(allow=["allowed.test:%d" % LENIENT_PORT])
    tab = "GET\t/secret\tHTTP/1.1\r\nHost:denied.test\r\n\r\n"
    connect = "CONNECT allowed.test:%d HTTP/1.1\r\nHost: allowed.test:%d\r\n\r\n" % (LENIENT_PORT, LENIENT_PORT)
    urllib = ("import urllib.request\n"
              "for p in ('/u1', '/u2'):\n"
              "    print(urllib.request.urlopen('http://allowed.test:%d' + p, timeout=5).read().decode())\n"
              % LENIENT_PORT)
    r = s.run(t, pol, [
        resolve("allowed.test", 4),
        raw(ALLOWED4, LENIENT_PORT, tab),
        raw(ALLOWED4, LENIENT_PORT, "GET\t/ HTTP/1.1\r\nHost: denied.test\r\n\r\n"),
        raw(GATEWAY, 3128, connect + tab),
        curl("http://allowed.test:%d/c2" % LENIENT_PORT, "-4", "-v", "http://allowed.test:%d/c1" % LENIENT_PORT),
        run(PY, "-c", urllib),
    ])
    refused_at_once(t, r, 1, "tab-separated request line")
    refused_at_once(t, r, 2, "tab after the method")
    a = raw_result(r, 3)
    t.check(a.get("data", "").startswith("HTTP/1.1 200") and "LENIENT" not in a.get("data", "")
            and a.get("errno") in ("ECONNRESET", "EPIPE"),
            "inside a CONNECT tunnel the tab request must be reset: %s" % json.dumps(a)[:500], r)
    t.check(not lenient_saw(r, "denied.test"), "the server must never see Host denied.test: %s"
            % lenient_saw(r, "denied.test"), r)
    t.event(r, "tab request line, transparent", kind="tcp", address=ALLOWED4, port=LENIENT_PORT, decision=DENY,
            reason="malformed HTTP request head (request_line)", detail="first bytes")
    t.event(r, "tab request line in a CONNECT tunnel", kind="http-proxy", port=LENIENT_PORT, decision=DENY,
            reason="malformed HTTP request head (request_line)", detail="connect; first bytes")
    c = r.s[4]
    t.check(c.get("rc") == 0 and "path=/c1" in c.get("stdout", "") and "path=/c2" in c.get("stdout", "")
            and "Re-using existing connection" in c.get("stderr", ""),
            "control: curl with two URLs on one kept-alive connection: rc=%s %r %r" % (
                c.get("rc"), c.get("stdout", "")[-300:], c.get("stderr", "")[-600:]), r)
    u = r.s[5]
    t.check(u.get("rc") == 0 and "host=allowed.test:%d path=/u1" % LENIENT_PORT in u.get("stdout", "")
            and "host=allowed.test:%d path=/u2" % LENIENT_PORT in u.get("stdout", ""),
            "control: Python urllib (through HTTP_PROXY): %r %r" % (u.get("stdout", "")[-300:],
                                                                    u.get("stderr", "")[-300:]), r)


WS_CLIENT = r"""
import json, socket, sys, time
host, port, target, hosthdr = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
out = {"ok": False}
try:
    s = socket.create_connection((host, port), timeout=4)
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n"
               % (target, hosthdr)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        c = s.recv(1)
        if not c:
            break
        head += c
    out["status"] = head.split(b"\r\n", 1)[0].decode()
    # The new protocol's bytes, even ones that look like an HTTP request.
    s.sendall(b"hello\nGET /x HTTP/1.1\r\nHost: denied.test\r\n")
    s.shutdown(socket.SHUT_WR)
    rest = b""
    while True:
        c = s.recv(65536)
        if not c:
            break
        rest += c
    out["echo"] = rest.decode("latin-1")
    out["ok"] = True
except OSError as e:
    out["error"] = str(e)
print(json.dumps(out))
"""


@case
def upgrade_needs_the_servers_101(t):
    """Red-team finding 2: any Upgrade header stopped the judging for the rest
    of the connection, on both proxies: "GET /a ... Upgrade: x" pipelined with
    a request for denied.test had both served by a server that does not
    upgrade. Now an upgrade is one only with Connection: upgrade AND the
    server's 101; the bytes after it wait for the answer, and any other
    answer has them judged. Control: a real 101 upgrade, transparent and
    through the HTTP proxy, carries bytes that look like HTTP unread."""
    s = t.suite
    lenient_server()
    pol = s.policy(allow=["allowed.test:%d" % LENIENT_PORT])
    second = "GET /secret HTTP/1.1\r\nHost: denied.test\r\n\r\n"
    ws = lambda host, port, target: run(PY, "-c", WS_CLIENT, host, str(port), target,
                                        "allowed.test:%d" % LENIENT_PORT, timeout=10)
    r = s.run(t, pol, [
        resolve("allowed.test", 4),
        raw(ALLOWED4, LENIENT_PORT, "GET /a HTTP/1.1\r\nHost: allowed.test\r\nUpgrade: x\r\n\r\n" + second),
        raw(ALLOWED4, LENIENT_PORT,
            "GET /b HTTP/1.1\r\nHost: allowed.test\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n" + second),
        raw(GATEWAY, 3128, "GET http://allowed.test:%d/c HTTP/1.1\r\nHost: allowed.test:%d\r\nUpgrade: x\r\n"
            "Connection: Upgrade\r\n\r\nGET http://denied.test:%d/secret HTTP/1.1\r\nHost: denied.test:%d\r\n\r\n"
            % ((LENIENT_PORT,) * 4)),
        ws(ALLOWED4, LENIENT_PORT, "/ws"),
        ws(GATEWAY, 3128, "http://allowed.test:%d/ws" % LENIENT_PORT),
    ])
    a = raw_result(r, 1)
    t.check(a.get("errno") in ("ECONNRESET", "EPIPE") and "host=denied.test" not in a.get("data", ""),
            "the reviewer's bytes (Upgrade without Connection: upgrade): the second request must be reset: %s"
            % json.dumps(a)[:500], r)
    b = raw_result(r, 2)
    t.check(b.get("errno") in ("ECONNRESET", "EPIPE") and "LENIENT host=allowed.test path=/b" in b.get("data", "")
            and "host=denied.test" not in b.get("data", ""),
            "an upgrade the server ignores (200): its answer arrives, then the next request is judged and reset: %s"
            % json.dumps(b)[:500], r)
    c = raw_result(r, 3)
    t.check("path=/c" in c.get("data", "")
            and "403 Forbidden" in c.get("data", "") and "host=denied.test" not in c.get("data", ""),
            "through the HTTP proxy: the first is served, the second gets 403: %s" % json.dumps(c)[:600], r)
    t.check(not lenient_saw(r, "denied.test"), "the server must never see Host denied.test: %s"
            % lenient_saw(r, "denied.test"), r)
    n = len(t.event(r, "second request after an ignored upgrade, transparent", kind="tcp", domain="denied.test",
                    port=LENIENT_PORT, decision=DENY, detail="http-host (request 2 on the connection)"))
    t.check(n == 2, "both transparent attacks recorded (found %d)" % n, r)
    t.event(r, "second request after an ignored upgrade, HTTP proxy", kind="http-proxy", domain="denied.test",
            port=LENIENT_PORT, decision=DENY, detail="absolute-form (request 2 on the connection)")
    for i, what in ((4, "transparent"), (5, "through the HTTP proxy")):
        w = {}
        try:
            w = json.loads(r.s[i].get("stdout", "").strip().splitlines()[-1])
        except (ValueError, IndexError):
            pass
        t.check(w.get("status", "").startswith("HTTP/1.1 101") and
                w.get("echo") == "ECHO hello\nECHO GET /x HTTP/1.1\r\nECHO Host: denied.test\r\n",
                "control: a real upgrade (%s) carries the new protocol's bytes unread: %s" % (what, json.dumps(w)), r)


@case
def body_that_reads_as_a_request_is_refused(t):
    """Red-team finding 3: "GET /a ... Content-Length: 45" whose body is
    "GET /smuggled HTTP/1.1 ... Host: denied.test": Python's http.server does
    not read a GET's body and serves it as the next request, which ward never
    judged. A body whose first bytes a server could read as a request line is
    refused and recorded (transparent, through the HTTP proxy); so is a body
    on HEAD. Controls: curl POST and GET with a JSON body, a text body."""
    s = t.suite
    lenient_server()
    pol = s.policy(allow=["allowed.test:%d" % LENIENT_PORT])
    smuggled = "GET /smuggled HTTP/1.1\r\nHost: denied.test\r\n\r\n"
    url = "http://allowed.test:%d" % LENIENT_PORT
    r = s.run(t, pol, [
        resolve("allowed.test", 4),
        raw(ALLOWED4, LENIENT_PORT, "GET /a HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: %d\r\n\r\n%s"
            % (len(smuggled), smuggled)),
        raw(GATEWAY, 3128, "POST %s/b HTTP/1.1\r\nHost: allowed.test:%d\r\nContent-Length: %d\r\n\r\n%s"
            % (url, LENIENT_PORT, len(smuggled), smuggled)),
        raw(ALLOWED4, LENIENT_PORT, "HEAD /h HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: %d\r\n\r\n%s"
            % (len(smuggled), smuggled)),
        curl(url + "/j1", "-4", "-d", '{"query": {"match_all": {}}}', "-H", "Content-Type: application/json"),
        curl(url + "/j2", "-4", "-X", "GET", "-d", '{"size": 1}', "-H", "Content-Type: application/json"),
        curl(url + "/t", "-4", "--data-binary", "Get well soon\n", "-H", "Content-Type: text/plain"),
    ])
    a = raw_result(r, 1)
    t.check(a.get("errno") in ("ECONNRESET", "EPIPE") and "host=denied.test" not in a.get("data", ""),
            "the review's GET with a request in its body must be reset: %s" % json.dumps(a)[:500], r)
    b = raw_result(r, 2)
    t.check(b.get("errno") in ("ECONNRESET", "EPIPE") and "host=denied.test" not in b.get("data", ""),
            "the same through the HTTP proxy must be reset: %s" % json.dumps(b)[:500], r)
    h = raw_result(r, 3)
    t.check(h.get("errno") in ("ECONNRESET", "EPIPE") and "LENIENT" not in h.get("data", ""),
            "HEAD with a body must be refused: %s" % json.dumps(h)[:500], r)
    t.check(not lenient_saw(r, "denied.test"), "the server must never see Host denied.test: %s"
            % lenient_saw(r, "denied.test"), r)
    why = lambda x: "begins like an HTTP request line" in (x or "")
    t.event(r, "request in a GET's body, transparent", kind="tcp", address=ALLOWED4, port=LENIENT_PORT,
            domain="allowed.test", decision=DENY, reason=why, detail="request body (request 1 on the connection)")
    t.event(r, "request in a POST's body, HTTP proxy", kind="http-proxy", port=LENIENT_PORT, domain="allowed.test",
            decision=DENY, reason=why, detail="absolute-form; request body (request 1 on the connection)")
    t.event(r, "HEAD with a body", kind="tcp", port=LENIENT_PORT, decision=DENY,
            reason="malformed HTTP request head (body_not_allowed)")
    for i, path in ((4, "/j1"), (5, "/j2"), (6, "/t")):
        c = r.s[i]
        t.check(c.get("rc") == 0 and "LENIENT host=allowed.test:%d path=%s" % (LENIENT_PORT, path) in c.get("stdout", ""),
                "control: a request with a data body (%s) is served: rc=%s %r %r" % (
                    path, c.get("rc"), c.get("stdout", "")[-300:], c.get("stderr", "")[-300:]), r)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ward", required=True, help="the ward binary")
    ap.add_argument("--as-user", help="(as root) run the suite as this user, like scripts/as-test-user.sh")
    ap.add_argument("--only", help="comma-separated case names")
    ap.add_argument("--via", choices=("run", "exec"), default="run",
                    help="run each probe with `ward run` (default) or in a held sandbox with `ward exec`")
    ap.add_argument("--list", action="store_true", help="list the cases")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--verbose", action="store_true", help="print every run")
    ap.add_argument("--harness-only", action="store_true", help="build the network and servers, check them, "
                    "then run CMD (after --) inside the test host's namespace")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("cmd", nargs="*")
    args = ap.parse_args()
    if args.list:
        for name, fn in CASES:
            log("%-24s %s" % (name, (fn.__doc__ or "").strip().split("\n")[0]))
        return 0
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if args.inner:
        return inner(args)
    return outer(args)


if __name__ == "__main__":
    sys.exit(main())
