#!/usr/bin/python3
"""End-to-end tests: real programs through the `ward` CLI, as a new user runs them.

    e2e_test.py --ward PATH [--only CASE,...] [--list] [--keep] [--verbose]
                [--work-root DIR] [--strict]

Each case runs a real program (git, python3, node, curl, make, bash in tmux)
inside `ward run`, the way README.md and docs/policy.md tell a user to, and
asserts
  - the outcome (exit status, what the program printed, the files it left),
  - the reason (the program's own error text or errno, ward's `--json`
    result line with its "egress" decisions),
  - a positive control: the same program succeeding where the policy allows it.
The README case runs every `ward ...` command line of README.md's "Use"
section and checks that each exits as the README implies.

Everything lives in one temporary directory that the driver creates (under
--work-root, by default BUILD/e2e-work beside the ward binary's bin/; never
under /tmp, which is private inside the sandbox) and removes at the end. It
is world-traversable so that the unprivileged run works the same way.
Hermetic: the network cases use HTTP servers on the host's loopback, reached
from inside an egress-mode sandbox as host.ward.internal:PORT, and a DNS
server on the host's loopback given to ward with --dns-server (it answers
NXDOMAIN to everything and records every question, so that a test can show
that a denied name never left the sandbox).

As root, ward runs as root (its sandboxes as an unprivileged host uid); the
unprivileged run is the same script under scripts/as-test-user.sh (ctest
e2e_user).

Output: one line per case, PASS / FAIL (with details) / SKIP (with the
reason). Exit 0 if every case passed (skips allowed unless --strict), 1 if a
case failed, 77 if this host cannot run a sandbox at all.
"""
import argparse
import http.server
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
SKIP_RC = 77
PY = "/usr/bin/python3"
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
PROXY_URL = "http://169.254.77.1:3128"   # docs/network.md: ward's HTTP proxy in egress mode
HOST = "host.ward.internal"              # the host's loopback, from inside an egress sandbox


def log(msg):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def user_name():
    import pwd
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


# --------------------------------------------------------------------------
# Host-side servers: HTTP on loopback, a DNS server that answers NXDOMAIN
# --------------------------------------------------------------------------

class HttpServer:
    """An HTTP server on the host's 127.0.0.1 (an ephemeral port). Every
    request is recorded; GET answers "E2E-PAGE <name> <token> path=<path>",
    or, with DIRECTORY, serves the files beneath it (404 for the rest)."""

    def __init__(self, name, directory=None):
        self.name = name
        self.directory = directory
        self.token = secrets.token_hex(6)
        self.requests = []
        self._lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self):
                with outer._lock:
                    outer.requests.append({"path": self.path, "host": self.headers.get("Host"),
                                           "peer": self.client_address[0], "time": time.monotonic()})
                status, body = 200, ("E2E-PAGE %s %s path=%s\n" % (outer.name, outer.token, self.path)).encode()
                ctype = "text/plain"
                if outer.directory:
                    rel = self.path.split("?")[0].lstrip("/")
                    f = os.path.join(outer.directory, rel)
                    if os.path.isdir(f):
                        f = os.path.join(f, "index.html")
                    if ".." not in rel.split("/") and os.path.isfile(f):
                        with open(f, "rb") as fh:
                            body = fh.read()
                        ctype = "text/html" if f.endswith(".html") else "application/octet-stream"
                    else:
                        status, body = 404, b"not found\n"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def page(self, path):
        return "E2E-PAGE %s %s path=%s" % (self.name, self.token, path)

    def seen(self, since=0.0):
        with self._lock:
            return [r for r in self.requests if r["time"] >= since]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class DnsServer:
    """The upstream resolver ward is given with --dns-server: UDP and TCP on
    the host's 127.0.0.1, NXDOMAIN for every question, each one recorded.
    Nothing a test does may need the real network."""

    def __init__(self):
        self.questions = []
        self._lock = threading.Lock()
        for _ in range(20):
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                t.bind(("127.0.0.1", port))
            except OSError:
                u.close()
                t.close()
                continue
            t.listen(16)
            self.udp, self.tcp, self.port = u, t, port
            break
        else:
            raise RuntimeError("no port free for both UDP and TCP on 127.0.0.1")
        threading.Thread(target=self._serve_udp, daemon=True).start()
        threading.Thread(target=self._serve_tcp, daemon=True).start()

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def _answer(self, q):
        if len(q) < 12:
            return None
        qid, flags = struct.unpack("!HH", q[:4])
        off, labels = 12, []
        while off < len(q) and q[off] != 0 and not q[off] & 0xC0:
            n = q[off]
            labels.append(q[off + 1:off + 1 + n].decode(errors="replace"))
            off += 1 + n
        end = off + 5
        with self._lock:
            self.questions.append({"name": ".".join(labels).lower(), "time": time.monotonic()})
        # NXDOMAIN (rcode 3), recursion available, the question echoed.
        return struct.pack("!HHHHHH", qid, 0x8183 | (flags & 0x0100), 1, 0, 0, 0) + q[12:end]

    def _serve_udp(self):
        while True:
            try:
                q, peer = self.udp.recvfrom(4096)
            except OSError:
                return
            a = self._answer(q)
            if a:
                self.udp.sendto(a, peer)

    def _serve_tcp(self):
        while True:
            try:
                c, _ = self.tcp.accept()
            except OSError:
                return
            try:
                c.settimeout(5)
                n = struct.unpack("!H", c.recv(2))[0]
                q = b""
                while len(q) < n:
                    chunk = c.recv(n - len(q))
                    if not chunk:
                        break
                    q += chunk
                a = self._answer(q)
                if a:
                    c.sendall(struct.pack("!H", len(a)) + a)
            except (OSError, struct.error):
                pass
            finally:
                c.close()

    def asked(self, name, since=0.0):
        with self._lock:
            return [q for q in self.questions if q["name"] == name and q["time"] >= since]


# --------------------------------------------------------------------------
# Running ward
# --------------------------------------------------------------------------

class Run:
    """One ward invocation: exit status, output, the --json result."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def describe(self):
        lines = ["    $ (cd %s && %s)" % (self.cwd, " ".join(shlex.quote(a) for a in self.argv)),
                 "    -> exit %s in %.2fs" % (self.rc, self.elapsed)]
        if self.stdout.strip():
            lines.append("    stdout: " + self.stdout.strip()[-1500:].replace("\n", "\n            "))
        if self.stderr.strip():
            lines.append("    stderr: " + self.stderr.strip()[-1500:].replace("\n", "\n            "))
        if self.result is not None:
            r = dict(self.result)
            r.pop("phases", None)
            events = r.pop("egress", None)
            lines.append("    --json: " + json.dumps(r, sort_keys=True))
            for e in events or []:
                lines.append("      egress " + json.dumps(e, sort_keys=True))
        return "\n".join(lines)

    def events(self, **f):
        out = []
        for e in (self.result or {}).get("egress") or []:
            ok = True
            for k, want in f.items():
                have = e.get(k)
                if callable(want):
                    ok = ok and bool(want(have))
                else:
                    ok = ok and have == want
            if ok:
                out.append(e)
        return out


class Failure(Exception):
    pass


class Skip(Exception):
    pass


class Suite:
    def __init__(self, args, work):
        self.ward = os.path.abspath(args.ward)
        self.work = work
        self.verbose = args.verbose
        self.home = os.path.join(work, "home")     # HOME of the caller, outside every workspace
        os.mkdir(self.home)
        os.chmod(self.home, 0o755)
        self.env = {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8", "HOME": self.home, "USER": user_name()}
        self.dns = DnsServer()


class T:
    """A case's context: its own directory, its runs, its failures."""

    def __init__(self, suite, name):
        self.suite = suite
        self.name = name
        self.dir = os.path.join(suite.work, name)
        os.mkdir(self.dir)
        os.chmod(self.dir, 0o755)
        self.failures = []
        self.notes = []
        self.runs = []
        self.cleanups = []

    # -- files --
    def path(self, *p):
        return os.path.join(self.dir, *p)

    def mkdir(self, *p):
        d = self.path(*p)
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
        return d

    def write(self, rel, text, mode=0o644):
        p = self.path(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    # -- assertions --
    def fail(self, msg, run=None):
        self.failures.append((msg, run))

    def check(self, cond, msg, run=None):
        if not cond:
            self.fail(msg, run)
        return bool(cond)

    def note(self, msg):
        self.notes.append(msg)

    def need(self, *programs):
        missing = [p for p in programs if not shutil.which(p, path=SYSTEM_PATH)]
        if missing:
            raise Skip("not installed on this host: %s (scripts/deps.sh installs it)" % ", ".join(missing))

    def exit(self, r, want, what):
        return self.check(r.rc == want, "%s: expected exit status %s, got %s" % (what, want, r.rc), r)

    def has(self, r, stream, text, what):
        s = getattr(r, stream)
        return self.check(text in s, "%s: expected %s to contain %r" % (what, stream, text), r)

    def event(self, r, what, **f):
        m = r.events(**f)
        self.check(m, "%s: expected an egress event %s in ward's --json result" % (
            what, json.dumps({k: ("<pred>" if callable(v) else v) for k, v in f.items()})), r)
        return m

    def no_event(self, r, what, **f):
        m = r.events(**f)
        self.check(not m, "%s: unexpected egress event(s): %s" % (what, json.dumps(m)), r)

    # -- running ward --
    def ward(self, opts, cmd, cwd=None, stdin=b"", timeout=90, json_result=True, sub="run"):
        """Runs `ward SUB OPTS... --json -- CMD...` in CWD (default: the case's
        directory, which is then ${WORKSPACE}), with the suite's clean
        environment.

        --json goes last before `--`, after the grant flags: a repeatable
        grant flag (--read, --write, --deny, --allow-net, --env) directly
        before `--` makes ward refuse the command's own options (see the case
        grant_flag_before_double_dash, which fails while that is so)."""
        argv = [self.suite.ward, sub] + list(opts)
        if json_result:
            argv.append("--json")
        if cmd is not None:
            argv += ["--"] + list(cmd)
        return self.exec(argv, cwd=cwd, stdin=stdin, timeout=timeout, json_result=json_result)

    def exec(self, argv, cwd=None, stdin=b"", timeout=90, json_result=False, shell=False, env=None):
        cwd = cwd or self.dir
        t0 = time.monotonic()
        try:
            p = subprocess.run(argv, cwd=cwd, env=env or self.suite.env, input=stdin, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout, shell=shell)
            rc, out, err = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            rc, out, err = "HUNG", e.stdout or b"", e.stderr or b""
        out, err = out.decode(errors="replace"), err.decode(errors="replace")
        result = None
        if json_result:
            lines = err.rstrip("\n").split("\n")
            try:
                result = json.loads(lines[-1])
                err = "\n".join(lines[:-1])
            except ValueError:
                result = None
        r = Run(argv=argv if not shell else ["sh", "-c", argv], cwd=cwd, rc=rc, stdout=out, stderr=err,
                result=result, t0=t0, elapsed=time.monotonic() - t0)
        self.runs.append(r)
        if self.suite.verbose:
            log(r.describe())
        if rc == "HUNG":
            raise Failure("did not finish within %ds:\n%s" % (timeout, r.describe()))
        if json_result:
            if result is None:
                self.fail("no --json result on the last line of ward's stderr", r)
            elif result.get("exitStatus") != rc:
                self.fail("--json exitStatus %s differs from ward's exit status %s" % (result.get("exitStatus"), rc),
                          r)
        return r


def leftover_processes(text):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append("%s: %s" % (pid, cmd[:160]))
    return found


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

CASES = []


def case(fn):
    CASES.append((fn.__name__, fn))
    return fn


GIT_ID = ["--env", "GIT_AUTHOR_NAME=E2E Agent", "--env", "GIT_AUTHOR_EMAIL=agent@e2e.invalid",
          "--env", "GIT_COMMITTER_NAME=E2E Agent", "--env", "GIT_COMMITTER_EMAIL=agent@e2e.invalid"]


def host_git(t, repo, *args):
    p = subprocess.run(["git", "-C", repo] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=dict(t.suite.env, GIT_CONFIG_NOSYSTEM="1"))
    return p.returncode, p.stdout.decode(errors="replace").strip()


@case
def git_workspace_write(t):
    """git init/add/commit/log/status in a workspace under --profile
    workspace-write: the repository is made and committed to for real, and
    what git wrote belongs to the caller on the host."""
    t.need("git")
    repo = t.mkdir("repo")
    t.write("repo/hello.txt", "hello from the e2e suite\n")
    msg = "first commit %s" % secrets.token_hex(4)
    r = t.ward(GIT_ID + ["--profile", "workspace-write"],
               ["sh", "-c", 'git init -q && git add hello.txt && git commit -q -m "$0" && git log --oneline '
                '&& echo STATUS && git status --short --branch && echo CLEAN-END', msg], cwd=repo)
    t.exit(r, 0, "git init/add/commit/log/status under workspace-write")
    t.has(r, "stdout", msg, "git log shows the commit")
    t.check(re.search(r"STATUS\n## \S+\nCLEAN-END", r.stdout),
            "git status --short after the commit: a clean tree (only the branch line)", r)
    rc, log_out = host_git(t, repo, "log", "--format=%an <%ae>|%s")
    t.check(rc == 0 and log_out == "E2E Agent <agent@e2e.invalid>|" + msg,
            "on the host, the repository holds the commit with the identity given with --env: %r" % log_out, r)
    st = os.stat(os.path.join(repo, ".git", "HEAD"))
    t.check(st.st_uid == os.getuid(), ".git/HEAD written in the sandbox belongs to the caller (uid %d) on the host, "
            "got uid %d (README: writable grants are id-mapped back to the caller)" % (os.getuid(), st.st_uid), r)
    # A second commit in a second run: the repository is usable across runs.
    t.write("repo/hello.txt", "hello again\n")
    r2 = t.ward(GIT_ID + ["--profile", "workspace-write"], ["git", "commit", "-q", "-am", "second"], cwd=repo)
    t.exit(r2, 0, "git commit -am in a second run")
    rc, n = host_git(t, repo, "rev-list", "--count", "HEAD")
    t.check(n == "2", "two commits on the host after two runs, got %r" % n, r2)


@case
def git_offline_readonly(t):
    """Under offline-readonly the workspace is read-only: git commit fails
    because git cannot create .git/index.lock (Read-only file system), and
    the repository is unchanged; git status and git log (reads) work."""
    t.need("git")
    repo = t.mkdir("repo")
    t.write("repo/a.txt", "one\n")
    for args in (["init", "-q"], ["add", "a.txt"],
                 ["-c", "user.name=Host", "-c", "user.email=host@e2e.invalid", "commit", "-q", "-m", "on the host"]):
        rc, out = host_git(t, repo, *args)
        if rc != 0:
            raise Failure("setting up the repository on the host: git %s: %s" % (" ".join(args), out))
    t.write("repo/a.txt", "one\ntwo\n")
    _, head = host_git(t, repo, "rev-parse", "HEAD")
    r = t.ward(GIT_ID + ["--profile", "offline-readonly"], ["git", "commit", "-am", "must not happen"], cwd=repo)
    t.exit(r, 128, "git commit under offline-readonly")
    t.check(re.search(r"index\.lock'?: Read-only file system", r.stderr),
            "git's message names the lock file and 'Read-only file system'", r)
    _, head2 = host_git(t, repo, "rev-parse", "HEAD")
    t.check(head == head2, "the repository's HEAD is unchanged (%s -> %s)" % (head, head2), r)
    t.check(not os.path.exists(os.path.join(repo, ".git", "index.lock")), "no index.lock left behind", r)
    # Positive controls: reading the repository works in the same view.
    s = t.ward(["--profile", "offline-readonly"], ["git", "status", "--short"], cwd=repo)
    t.exit(s, 0, "git status under offline-readonly")
    t.check(s.stdout.strip() == "M a.txt", "git status shows the modified file, got %r" % s.stdout, s)
    lg = t.ward(["--profile", "offline-readonly"], ["git", "log", "--format=%s"], cwd=repo)
    t.exit(lg, 0, "git log under offline-readonly")
    t.check(lg.stdout.strip() == "on the host", "git log shows the host's commit, got %r" % lg.stdout, lg)


@case
def git_clone_over_http(t):
    """git clone of a repository served by the host (dumb HTTP on loopback)
    under workspace-write with --allow-net host.ward.internal:PORT: through
    the proxy ward sets (http_proxy) and directly (proxy variables unset);
    from a port no rule allows, through the proxy git gets ward's 403
    ("remote: ward: no rule allows ..."), directly "Couldn't connect", and
    --json records both refusals."""
    t.need("git")
    served = t.mkdir("served")
    bare = os.path.join(served, "repo.git")
    src = t.mkdir("src")
    t.write("src/README", "served by the host\n")
    for argv in (["git", "init", "-q", "--bare", bare], ["git", "-C", src, "init", "-q"],
                 ["git", "-C", src, "add", "README"],
                 ["git", "-C", src, "-c", "user.name=Host", "-c", "user.email=host@e2e.invalid", "commit", "-q", "-m",
                  "served commit"],
                 ["git", "-C", src, "push", "-q", bare, "HEAD:refs/heads/main"],
                 ["git", "-C", bare, "symbolic-ref", "HEAD", "refs/heads/main"],
                 ["git", "-C", bare, "update-server-info"]):
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(t.suite.env,
                                                                                          GIT_CONFIG_NOSYSTEM="1"))
        if p.returncode != 0:
            raise Failure("setting up the served repository: %s: %s" % (" ".join(argv), p.stdout.decode()))
    ok, no = HttpServer("git", served), HttpServer("git-denied", served)
    t.cleanups += [ok.stop, no.stop]
    ws = t.mkdir("ws")
    direct = "env -u http_proxy -u HTTP_PROXY -u https_proxy -u HTTPS_PROXY"
    script = "\n".join([
        "git clone -q http://%s:%d/repo.git via-proxy; echo \"RC1=$?\"" % (HOST, ok.port),
        "%s git clone -q http://%s:%d/repo.git direct; echo \"RC2=$?\"" % (direct, HOST, ok.port),
        "git clone -q http://%s:%d/repo.git denied-proxy; echo \"RC3=$?\"" % (HOST, no.port),
        "%s git clone -q http://%s:%d/repo.git denied-direct; echo \"RC4=$?\"" % (direct, HOST, no.port),
        "git -C via-proxy log --format=%s",
    ])
    t0 = time.monotonic()
    r = t.ward(net_opts(t, "%s:%d" % (HOST, ok.port)) + ["--profile", "workspace-write"], ["sh", "-c", script],
               cwd=ws, timeout=120)
    t.exit(r, 0, "the git clone script")
    t.check("RC1=0" in r.stdout and "RC2=0" in r.stdout, "both clones of the allowed server succeed", r)
    for d in ("via-proxy", "direct"):
        t.check(os.path.exists(os.path.join(ws, d, "README")), "the %s clone is in the workspace on the host" % d, r)
    t.check(r.stdout.rstrip().endswith("served commit"), "git log in the clone shows the served commit", r)
    t.check("RC3=128" in r.stdout and "remote: ward: %s" % deny_reason(no.port) in r.stderr
            and "The requested URL returned error: 403" in r.stderr,
            "clone through the proxy from a port not allowed: exit 128, ward's 403 and its reason", r)
    t.check("RC4=128" in r.stdout and re.search(r"Failed to connect to %s port %d.*Couldn't connect to server"
                                                % (re.escape(HOST), no.port), r.stderr),
            "direct clone from a port not allowed: exit 128, Couldn't connect to server", r)
    t.check(not any(os.path.exists(os.path.join(ws, d)) for d in ("denied-proxy", "denied-direct")),
            "no directory left by the refused clones", r)
    t.check(not no.seen(t0), "the denied server never got a request: %s" % no.seen(t0), r)
    rule = "%s:%d" % (HOST, ok.port)
    t.event(r, "clone through the proxy", kind="http-proxy", port=ok.port, decision="allow", rule=rule)
    t.event(r, "direct clone", kind="tcp", port=ok.port, decision="allow", rule=rule)
    t.event(r, "refused through the proxy", kind="http-proxy", port=no.port, decision="deny",
            reason=deny_reason(no.port))
    t.event(r, "refused directly", kind="tcp", port=no.port, decision="deny", reason=deny_reason(no.port))


PY_TOOL = r'''
import errno, json, os, sys
res = {}
data = open("input.txt").read().strip()
with open("/tmp/e2e-" + sys.argv[1], "w") as f:
    f.write(data.upper())
res["tmp"] = open("/tmp/e2e-" + sys.argv[1]).read()
for what, fn in (("secret", lambda: open("secret.txt").read().strip()),
                 ("write_workspace", lambda: open("written-by-sandbox.txt", "w").write("x"))):
    try:
        res[what] = fn()
    except OSError as e:
        res[what] = "%s %s %s" % (type(e).__name__, errno.errorcode[e.errno], e.strerror)
print(json.dumps(res))
'''


def json_line(r):
    for line in reversed(r.stdout.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return {}


@case
def python_files(t):
    """python3 reads a workspace file and writes the sandbox's private /tmp;
    a file hidden with --deny gives PermissionError (EACCES); writing the
    read-only workspace gives OSError EROFS. Control: without --deny the same
    script reads the file."""
    t.need("python3")
    t.write("tool.py", PY_TOOL)
    t.write("input.txt", "data-%s\n" % secrets.token_hex(3))
    t.write("secret.txt", "SECRET-%s\n" % secrets.token_hex(3))
    tag = secrets.token_hex(4)
    r = t.ward(["--deny", "secret.txt", "--profile", "offline-readonly"], ["python3", "tool.py", tag])
    t.exit(r, 0, "python3 tool.py with --deny secret.txt")
    res = json_line(r)
    want_tmp = open(t.path("input.txt")).read().strip().upper()
    t.check(res.get("tmp") == want_tmp, "the script wrote /tmp and read it back: %r" % res.get("tmp"), r)
    t.check(res.get("secret") == "PermissionError EACCES Permission denied",
            "reading the denied file: PermissionError EACCES, got %r" % res.get("secret"), r)
    t.check(res.get("write_workspace") == "OSError EROFS Read-only file system",
            "writing the read-only workspace: OSError EROFS, got %r" % res.get("write_workspace"), r)
    t.check(not os.path.exists("/tmp/e2e-" + tag), "/tmp inside is private: the host's /tmp has no e2e-%s" % tag, r)
    t.check(not os.path.exists(t.path("written-by-sandbox.txt")), "nothing written to the workspace", r)
    c = t.ward(["--profile", "offline-readonly"], ["python3", "tool.py", tag])
    t.exit(c, 0, "control: python3 tool.py without --deny")
    t.check(json_line(c).get("secret") == open(t.path("secret.txt")).read().strip(),
            "control: without --deny the script reads secret.txt: %r" % json_line(c).get("secret"), c)


def make_package_index(root):
    """A PEP 503 simple index under ROOT holding one pure-Python wheel,
    e2e-hello 1.0 (built here: no network, no build tools)."""
    import base64
    import hashlib
    import zipfile
    files = {
        "e2e_hello.py": "def hello():\n    return 'hello from e2e-hello'\n",
        "e2e_hello-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: e2e-hello\nVersion: 1.0\n",
        "e2e_hello-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: e2e\nRoot-Is-Purelib: true\n"
                                         "Tag: py3-none-any\n",
    }
    record = []
    for n, c in files.items():
        h = base64.urlsafe_b64encode(hashlib.sha256(c.encode()).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (n, h, len(c.encode())))
    files["e2e_hello-1.0.dist-info/RECORD"] = "\n".join(record + ["e2e_hello-1.0.dist-info/RECORD,,"]) + "\n"
    wheel = "e2e_hello-1.0-py3-none-any.whl"
    os.makedirs(os.path.join(root, "simple", "e2e-hello"))
    with zipfile.ZipFile(os.path.join(root, wheel), "w") as z:
        for n, c in files.items():
            z.writestr(n, c)
    digest = hashlib.sha256(open(os.path.join(root, wheel), "rb").read()).hexdigest()
    with open(os.path.join(root, "simple", "e2e-hello", "index.html"), "w") as f:
        f.write('<html><body><a href="../../%s#sha256=%s">%s</a></body></html>\n' % (wheel, digest, wheel))


@case
def python_venv(t):
    """python3 -m venv /tmp/v works inside; its pip installs a package from a
    package index on the host (--allow-net host.ward.internal:PORT, through
    the HTTP_PROXY ward sets) and the package imports; an index on a port no
    rule allows gives pip nothing ("No matching distribution") and --json
    records ward's refusal. A venv in the read-only workspace fails with
    'Read-only file system'."""
    t.need("python3")
    if subprocess.run([PY, "-c", "import ensurepip, venv"], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode != 0:
        raise Skip("python3 -m venv needs ensurepip: python3-venv is not installed (scripts/deps.sh installs it)")
    index = t.mkdir("index")
    make_package_index(index)
    ok, no = HttpServer("index", index), HttpServer("other-index", index)
    t.cleanups += [ok.stop, no.stop]
    pip = ("/tmp/v/bin/pip install --disable-pip-version-check --no-cache-dir --retries 0 --timeout 10 "
           "--trusted-host %s" % HOST)
    script = "\n".join([
        "python3 -m venv /tmp/v || exit 10",
        "/tmp/v/bin/python -c 'import sys; print(\"prefix\", sys.prefix)' || exit 11",
        "%s --index-url http://%s:%d/simple/ e2e-hello || exit 12" % (pip, HOST, ok.port),
        "/tmp/v/bin/python -c 'import e2e_hello; print(\"IMPORTED\", e2e_hello.hello())' || exit 13",
        "%s --target /tmp/t2 --index-url http://%s:%d/simple/ e2e-hello; echo \"DENIED-PIP=$?\"" % (pip, HOST,
                                                                                                   no.port),
    ])
    t0 = time.monotonic()
    r = t.ward(net_opts(t, "%s:%d" % (HOST, ok.port)) + ["--profile", "offline-readonly"], ["sh", "-c", script],
               timeout=180)
    t.exit(r, 0, "python3 -m venv /tmp/v, pip install, import (exit 10-13 name the step that failed)")
    t.has(r, "stdout", "prefix /tmp/v", "the venv's python runs with sys.prefix /tmp/v")
    t.has(r, "stdout", "Successfully installed e2e-hello-1.0", "pip installs from the host's index")
    t.has(r, "stdout", "IMPORTED hello from e2e-hello", "the installed package imports")
    t.check(any(q["path"].endswith(".whl") for q in ok.seen(t0)), "the wheel was downloaded from the host", r)
    t.has(r, "stdout", "DENIED-PIP=1", "pip against an index on a port no rule allows fails")
    t.has(r, "stderr", "No matching distribution found for e2e-hello", "pip's reason")
    t.check(not no.seen(t0), "the index on the denied port never got a request: %s" % no.seen(t0), r)
    t.event(r, "pip's requests through ward's proxy", kind="http-proxy", port=ok.port, decision="allow",
            rule="%s:%d" % (HOST, ok.port))
    t.event(r, "pip's refused request", kind="http-proxy", port=no.port, decision="deny", reason=deny_reason(no.port))
    n = t.ward(["--profile", "offline-readonly"], ["python3", "-m", "venv", "--without-pip", "venv"])
    t.exit(n, 1, "python3 -m venv into the read-only workspace")
    t.has(n, "stderr", "[Errno 30] Read-only file system: '%s'" % t.path("venv"), "venv in the read-only workspace: "
          "the reason")
    t.check(not os.path.exists(t.path("venv")), "no venv directory on the host", n)


@case
def python_limits(t):
    """--timeout 4s stops a python3 that sleeps 60 s: exit 124, 'timed out'
    and timedOut in --json, long before its end. --memory 64M stops one that
    allocates 300 MiB: SIGKILL (137) and limitsHit memory, whether a cgroup
    or (no writable cgroup) ward's supervisor keeps the limit. node, python3
    and java start under --memory 256M (issue 9, item 10: RLIMIT_AS, the old
    fallback, stopped node and java, which reserve far more address space
    than they use). Controls: the same programs within their limits finish
    normally."""
    t.need("python3")
    sleep = ["python3", "-c", "import time; print('started', flush=True); time.sleep(float(__import__('sys').argv[1]))"]
    r = t.ward(["--timeout", "4s", "--profile", "minimal"], sleep + ["60"], timeout=90)
    t.exit(r, 124, "python3 sleeping 60 s under --timeout 4s")
    t.check(r.result and r.result.get("timedOut") is True, "--json says timedOut", r)
    t.has(r, "stderr", "ward: timed out after 4000 ms", "ward says why")
    t.check(r.stdout == "started\n" and r.elapsed < 40, "the program ran and was stopped early (%.1fs)" % r.elapsed, r)
    c = t.ward(["--timeout", "10s", "--profile", "minimal"], sleep + ["0.1"], timeout=30)
    t.exit(c, 0, "control: python3 sleeping 0.1 s under --timeout 10s")
    t.check(c.result and c.result.get("timedOut") is False, "control: timedOut false", c)
    alloc = ["python3", "-c", "import sys; b = bytearray(int(sys.argv[1]) << 20); b[::4096] = b'x' * len(b[::4096]); "
             "print('allocated', len(b) >> 20)"]
    m = t.ward(["--memory", "64M", "--profile", "minimal"], alloc + ["300"], timeout=60)
    mech = ((m.result or {}).get("limitMechanisms") or {}).get("memory")
    t.check(mech in ("cgroup-v1", "cgroup-v2", "supervisor"),
            "--json limitMechanisms.memory is %r (expected cgroup-v1, cgroup-v2 or supervisor)" % mech, m)
    t.exit(m, 137, "python3 allocating 300 MiB under --memory 64M (%s)" % mech)
    t.check(m.result and m.result.get("limitsHit") == ["memory"], "--json limitsHit: memory", m)
    t.has(m, "stderr", "ward: memory limit reached", "ward says why")
    c = t.ward(["--memory", "512M", "--profile", "minimal"], alloc + ["100"], timeout=60)
    t.exit(c, 0, "control: python3 allocating 100 MiB under --memory 512M")
    t.check(c.stdout == "allocated 100\n", "control: the allocation succeeds", c)
    for argv, expect in ((["node", "-e", "console.log('node', 1 + 1)"], "node 2"),
                         (["python3", "-c", "print('python', 1 + 1)"], "python 2"),
                         (["java", "-version"], "")):
        if not shutil.which(argv[0]):
            t.fail("%s is not installed (scripts/deps.sh installs it)" % argv[0])
            continue
        rt = t.ward(["--memory", "256M", "--profile", "minimal"], argv, timeout=60)
        t.exit(rt, 0, "%s starts under --memory 256M" % argv[0])
        t.check(expect in rt.stdout and rt.result and rt.result.get("limitsHit") == [],
                "%s ran and hit no limit under --memory 256M" % argv[0], rt)


PY_NET = r'''
import json, os, sys, urllib.request, urllib.error
direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
proxied = urllib.request.build_opener()   # HTTP_PROXY from the environment
out = {"HTTP_PROXY": os.environ.get("HTTP_PROXY")}
for name, opener in (("direct", direct), ("proxy", proxied)):
    for url in sys.argv[1:]:
        key = name + " " + url
        try:
            r = opener.open(url, timeout=10)
            out[key] = {"status": r.status, "body": r.read().decode()}
        except urllib.error.HTTPError as e:
            out[key] = {"status": e.code, "body": e.read().decode()}
        except urllib.error.URLError as e:
            r = e.reason
            out[key] = {"error": type(r).__name__, "errno": getattr(r, "errno", None), "text": str(r)}
print(json.dumps(out))
'''


def host_get(server, path):
    """The control from outside ward: the server answers the host itself."""
    import urllib.request
    op = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return op.open("http://127.0.0.1:%d%s" % (server.port, path), timeout=5).read().decode()


def egress_servers(t):
    ok, no = HttpServer("allowed"), HttpServer("denied")
    t.cleanups += [ok.stop, no.stop]
    t.check(host_get(no, "/probe").startswith(no.page("/probe")),
            "harness: the denied port's server answers the host (so a refusal inside is ward's)")
    return ok, no


def net_opts(t, *allow):
    opts = []
    for a in allow:
        opts += ["--allow-net", a]
    return opts + ["--dns-server", t.suite.dns.address]


def deny_reason(port):
    return "no rule allows tcp to %s:%d" % (HOST, port)


@case
def python_urllib_egress(t):
    """urllib inside an egress sandbox (--allow-net host.ward.internal:PORT)
    gets a page from a host server, directly and through HTTP_PROXY (which
    ward sets); a port not allowed is refused directly (ConnectionRefusedError)
    and answered 403 by ward's proxy, with the deny decision in --json."""
    t.need("python3")
    ok, no = egress_servers(t)
    u_ok = "http://%s:%d/py-ok" % (HOST, ok.port)
    u_no = "http://%s:%d/py-denied" % (HOST, no.port)
    t0 = time.monotonic()
    r = t.ward(net_opts(t, "%s:%d" % (HOST, ok.port)) + ["--profile", "offline-readonly"],
               ["python3", "-c", PY_NET, u_ok, u_no])
    t.exit(r, 0, "python3 -c 'import urllib.request ...'")
    res = json_line(r)
    t.check(res.get("HTTP_PROXY") == PROXY_URL, "ward sets HTTP_PROXY=%s in egress mode, got %r"
            % (PROXY_URL, res.get("HTTP_PROXY")), r)
    for how in ("direct", "proxy"):
        got = res.get("%s %s" % (how, u_ok), {})
        t.check(got.get("status") == 200 and got.get("body", "").startswith(ok.page("/py-ok")),
                "%s: the allowed host server's page: %r" % (how, got), r)
    d = res.get("direct " + u_no, {})
    t.check(d.get("error") == "ConnectionRefusedError" and d.get("errno") == 111,
            "direct to a port not allowed: ConnectionRefusedError (ECONNREFUSED), got %r" % d, r)
    p = res.get("proxy " + u_no, {})
    t.check(p.get("status") == 403 and deny_reason(no.port) in p.get("body", ""),
            "through HTTP_PROXY to a port not allowed: ward's 403 with the reason, got %r" % p, r)
    t.check(not no.seen(t0), "the denied server never got a request: %s" % no.seen(t0), r)
    t.check(len(ok.seen(t0)) == 2, "the allowed server got both requests: %s" % ok.seen(t0), r)
    rule = "%s:%d" % (HOST, ok.port)
    t.event(r, "allowed direct connection", kind="tcp", port=ok.port, decision="allow", rule=rule)
    t.event(r, "allowed request through the proxy", kind="http-proxy", port=ok.port, decision="allow", rule=rule)
    t.event(r, "refused direct connection", kind="tcp", port=no.port, decision="deny", reason=deny_reason(no.port))
    t.event(r, "refused request through the proxy", kind="http-proxy", port=no.port, decision="deny",
            reason=deny_reason(no.port))


NODE_FILES = r'''
const fs = require("fs");
const out = {};
out.sum = [1, 2, 3, 4].reduce((a, b) => a + b, 0);
out.read = fs.readFileSync("input.txt", "utf8").trim();
for (const [what, fn] of [["secret", () => fs.readFileSync("secret.txt", "utf8")],
                          ["write", () => fs.writeFileSync("from-node.txt", "x")]]) {
  try { fn(); out[what] = "ok"; } catch (e) { out[what] = e.code; }
}
console.log(JSON.stringify(out));
'''


@case
def node_script(t):
    """node -e and a node script run; fs on a denied file gives EACCES and a
    write to the read-only workspace EROFS. Control: node -e prints its
    result; without --deny the file is read."""
    t.need("node")
    r = t.ward(["--profile", "minimal"], ["node", "-e", "console.log('node', process.version, 6 * 7)"])
    t.exit(r, 0, "node -e")
    t.check(re.match(r"node v\d+\.\d+\.\d+ 42$", r.stdout.strip()), "node -e printed its answer: %r" % r.stdout, r)
    t.write("files.js", NODE_FILES)
    t.write("input.txt", "node-input\n")
    t.write("secret.txt", "node-secret\n")
    d = t.ward(["--deny", "secret.txt", "--profile", "offline-readonly"], ["node", "files.js"])
    t.exit(d, 0, "node files.js with --deny secret.txt")
    res = json_line(d)
    t.check(res.get("sum") == 10 and res.get("read") == "node-input", "node read the workspace: %r" % res, d)
    t.check(res.get("secret") == "EACCES", "the denied file: EACCES, got %r" % res.get("secret"), d)
    t.check(res.get("write") == "EROFS", "write to the read-only workspace: EROFS, got %r" % res.get("write"), d)
    c = t.ward(["--profile", "offline-readonly"], ["node", "files.js"])
    t.check(json_line(c).get("secret") == "ok", "control: without --deny node reads secret.txt: %r" % json_line(c), c)


NODE_SERVER = r'''
const http = require("http");
const s = http.createServer((q, r) => r.end("NODE-SERVER " + q.url + "\n"));
s.listen(Number(process.argv[2]), "127.0.0.1", () => console.log("listening"));
setTimeout(() => process.exit(0), 20000);
'''

NODE_FETCH = r'''
(async () => {
  const out = {};
  for (const u of process.argv.slice(2)) {
    try { const r = await fetch(u); out[u] = {status: r.status, body: await r.text()}; }
    catch (e) { const c = e.cause || e; out[u] = {error: c.code || String(c), message: String(c.message || c)}; }
  }
  console.log(JSON.stringify(out));
})();
'''


@case
def node_server_in_sandbox(t):
    """A node HTTP server started inside the sandbox on 127.0.0.1 is reached
    by curl and by node's fetch in the same sandbox; the host's own loopback
    server on the same address is not (the sandbox's 127.0.0.1 is its own):
    ECONNREFUSED."""
    t.need("node", "curl")
    host_srv = HttpServer("host-loopback")
    t.cleanups.append(host_srv.stop)
    t.write("server.js", NODE_SERVER)
    t.write("fetch.js", NODE_FETCH)
    port = 18000 + secrets.randbelow(2000)
    script = (
        'cd /tmp && cp "$0"/*.js . || exit 99\n'   # server.log goes to the private /tmp (workspace read-only)
        'node server.js %d > server.log & srv=$!\n'
        'for i in $(seq 600); do grep -q listening server.log 2>/dev/null && break; sleep 0.05; done\n'
        'echo "CURL $(curl -sS --noproxy "*" http://127.0.0.1:%d/from-curl)"\n'
        'node fetch.js http://127.0.0.1:%d/from-node http://127.0.0.1:%d/host\n'
        'kill $srv\n' % (port, port, port, host_srv.port))
    t0 = time.monotonic()
    r = t.ward(["--profile", "offline-readonly"], ["sh", "-c", script, t.dir])
    t.exit(r, 0, "node server and clients in one sandbox")
    t.has(r, "stdout", "CURL NODE-SERVER /from-curl", "curl reached the in-sandbox node server")
    res = json_line(r)
    k = "http://127.0.0.1:%d/from-node" % port
    t.check(res.get(k, {}).get("body") == "NODE-SERVER /from-node\n", "node fetch reached it: %r" % res.get(k), r)
    h = res.get("http://127.0.0.1:%d/host" % host_srv.port, {})
    t.check(h.get("error") == "ECONNREFUSED", "the host's 127.0.0.1:%d is not the sandbox's: ECONNREFUSED, got %r"
            % (host_srv.port, h), r)
    t.check(not host_srv.seen(t0), "the host's loopback server saw nothing", r)


@case
def node_fetch_egress(t):
    """node's fetch (which ignores HTTP_PROXY) of a host server through
    --allow-net host.ward.internal:PORT gets the page; a port not allowed
    gets ECONNREFUSED, and --json records the deny with its reason."""
    t.need("node")
    ok, no = egress_servers(t)
    t.write("fetch.js", NODE_FETCH)
    u_ok = "http://%s:%d/node-ok" % (HOST, ok.port)
    u_no = "http://%s:%d/node-denied" % (HOST, no.port)
    t0 = time.monotonic()
    r = t.ward(net_opts(t, "%s:%d" % (HOST, ok.port)) + ["--profile", "offline-readonly"],
               ["node", "fetch.js", u_ok, u_no])
    t.exit(r, 0, "node fetch.js")
    res = json_line(r)
    g = res.get(u_ok, {})
    t.check(g.get("status") == 200 and g.get("body", "").startswith(ok.page("/node-ok")),
            "fetch of the allowed host server: %r" % g, r)
    d = res.get(u_no, {})
    t.check(d.get("error") == "ECONNREFUSED", "fetch of a port not allowed: ECONNREFUSED, got %r" % d, r)
    t.check(not no.seen(t0), "the denied server never got a request", r)
    t.event(r, "the allowed connection", kind="tcp", port=ok.port, decision="allow", rule="%s:%d" % (HOST, ok.port))
    t.event(r, "the refused connection", kind="tcp", port=no.port, decision="deny", reason=deny_reason(no.port))


@case
def curl_egress(t):
    """curl to an allowed host server (--allow-net host.ward.internal:PORT):
    200 and the body; to a port not allowed: exit 7 (connection refused)
    and a deny event; through ward's proxy (curl -x $HTTP_PROXY): 200 for
    the allowed one, ward's 403 with the reason for the other; a name no
    rule allows: exit 6, and the question never reaches the upstream DNS."""
    t.need("curl")
    ok, no = egress_servers(t)
    fmt = ["-w", "\\nHTTP=%{http_code}\\n"]
    name = "pypi.org"
    script = " ; ".join([
        'curl -sS --noproxy "*" %s http://%s:%d/curl-ok; echo "RC1=$?"' % (" ".join(map(shlex.quote, fmt)), HOST,
                                                                            ok.port),
        'curl -sS --noproxy "*" http://%s:%d/curl-denied; echo "RC2=$?"' % (HOST, no.port),
        'curl -sS -x "$HTTP_PROXY" %s http://%s:%d/curl-proxy-ok; echo "RC3=$?"' % (
            " ".join(map(shlex.quote, fmt)), HOST, ok.port),
        'curl -sS -x "$HTTP_PROXY" %s http://%s:%d/curl-proxy-denied; echo "RC4=$?"' % (
            " ".join(map(shlex.quote, fmt)), HOST, no.port),
        'curl -sS --noproxy "*" --max-time 10 http://%s/; echo "RC5=$?"' % name,
        'curl -sS -x "$HTTP_PROXY" %s --max-time 10 http://%s/; echo "RC6=$?"' % (" ".join(map(shlex.quote, fmt)),
                                                                                    name),
    ])
    t0 = time.monotonic()
    r = t.ward(net_opts(t, "%s:%d" % (HOST, ok.port)) + ["--profile", "minimal"], ["sh", "-c", script])
    t.exit(r, 0, "the curl script")
    out = r.stdout

    def between(a, b):
        m = re.search(re.escape(a) + r"(.*?)" + re.escape(b), out, re.S)
        return m.group(1) if m else ""

    # 1: direct, allowed
    t.check(ok.page("/curl-ok") in out and "HTTP=200\nRC1=0" in out, "curl direct to the allowed port: 200, body", r)
    # 2: direct, denied
    t.check("RC2=7" in out and re.search(r"curl: \(7\) Failed to connect to %s port %d" % (re.escape(HOST), no.port),
                                         r.stderr), "curl direct to a port not allowed: exit 7, Failed to connect", r)
    t.event(r, "direct, denied", kind="tcp", port=no.port, decision="deny", reason=deny_reason(no.port))
    # 3: explicit proxy, allowed
    seg3 = between("RC2=7", "RC3=")
    t.check(ok.page("/curl-proxy-ok") in seg3 and "HTTP=200" in seg3, "curl -x $HTTP_PROXY, allowed: 200, body", r)
    t.event(r, "through the proxy, allowed", kind="http-proxy", port=ok.port, decision="allow")
    # 4: explicit proxy, denied: ward's own answer
    seg4 = between("RC3=0", "RC4=")
    t.check("HTTP=403" in seg4 and ("ward: " + deny_reason(no.port)) in seg4 and "RC4=0" in out,
            "curl -x $HTTP_PROXY, port not allowed: ward's proxy answers 403 with 'ward: %s' (curl exit 0)"
            % deny_reason(no.port), r)
    t.event(r, "through the proxy, denied", kind="http-proxy", port=no.port, decision="deny",
            reason=deny_reason(no.port))
    t.check(not no.seen(t0), "the denied server never got a request: %s" % no.seen(t0), r)
    # 5: a name no rule allows, direct: not resolved
    t.check("RC5=6" in out and re.search(r"curl: \(6\) Could not resolve host: %s" % re.escape(name), r.stderr),
            "curl to %s (no rule): exit 6, Could not resolve host" % name, r)
    t.event(r, "the DNS question for %s" % name, kind="dns", domain=name, decision="deny",
            reason='no rule allows the name "%s"' % name)
    # 6: the same name through the proxy
    seg6 = between("RC5=6", "RC6=")
    t.check("HTTP=403" in seg6 and "ward: no rule allows tcp to %s:80" % name in seg6 and "RC6=0" in out,
            "curl -x $HTTP_PROXY http://%s/: ward's 403 'no rule allows tcp to %s:80'" % (name, name), r)
    t.event(r, "the proxy request for %s" % name, kind="http-proxy", domain=name, port=80, decision="deny",
            reason="no rule allows tcp to %s:80" % name)
    t.check(not t.suite.dns.asked(name, t0), "the upstream DNS server was never asked for %s" % name, r)


@case
def host_loopback_rule_without_port(t):
    """docs/network.md: "A host service on loopback port P is opened only by
    an allow rule naming exactly host.ward.internal:P" (docs/policy.md: "only
    through a rule naming host.ward.internal:PORT"). A user who writes
    `--allow-net host.ward.internal` to reach one dev server must not open
    every service on the host's loopback: curl to a port the rule does not
    name is expected to be refused (exit 7, a deny event), or the rule
    refused at load. Control: host.ward.internal:PORT reaches that port."""
    t.need("curl")
    srv = HttpServer("loopback-service")
    t.cleanups.append(srv.stop)
    url = "http://%s:%d/any-port" % (HOST, srv.port)
    curl = ["curl", "-sS", "--noproxy", "*", "--max-time", "10", url]
    t0 = time.monotonic()
    r = t.ward(["--allow-net", HOST, "--dns-server", t.suite.dns.address, "--profile", "minimal"], curl)
    if r.rc in (122, 123):
        t.check("host.ward.internal" in r.stderr, "the portless rule is refused at load, naming it", r)
    else:
        t.check(r.rc == 7 and not srv.seen(t0),
                "`--allow-net host.ward.internal` (no port) must not open the host's loopback port %d, which no "
                "rule names (docs/network.md: only a rule naming exactly host.ward.internal:P opens P): expected "
                "curl exit 7 and no request at the server, got exit %s, server saw %d request(s), decision %s" % (
                    srv.port, r.rc, len(srv.seen(t0)),
                    json.dumps([e.get("decision") + " by " + repr(e.get("rule")) for e in r.events(kind="tcp")])), r)
    c = t.ward(["--allow-net", "%s:%d" % (HOST, srv.port), "--dns-server", t.suite.dns.address,
                "--profile", "minimal"], curl)
    t.exit(c, 0, "control: curl with --allow-net host.ward.internal:%d" % srv.port)
    t.check(c.stdout.startswith(srv.page("/any-port")), "control: the page", c)


MAKEFILE = """\
CC ?= cc
OBJS = main.o util.o
hello: $(OBJS)
\t$(CC) -o $@ $(OBJS)
%.o: %.c util.h
\t$(CC) -c -O1 -o $@ $<
clean:
\trm -f hello $(OBJS)
"""


def c_project(t):
    d = t.mkdir("proj")
    t.write("proj/Makefile", MAKEFILE)
    t.write("proj/util.h", "int answer(void);\n")
    t.write("proj/util.c", '#include "util.h"\nint answer(void) { return 6 * 7; }\n')
    t.write("proj/main.c", '#include <stdio.h>\n#include "util.h"\n'
            'int main(void) { printf("answer=%d\\n", answer()); return 0; }\n')
    return d


@case
def make_workspace_write(t):
    """A small C project (Makefile, two .c files) built with make -j2 under
    workspace-write; the binary runs, inside and on the host."""
    t.need("make", "cc")
    d = c_project(t)
    r = t.ward(["--profile", "workspace-write"], ["make", "-j2"], cwd=d, timeout=120)
    t.exit(r, 0, "make -j2 under workspace-write")
    for f in ("main.o", "util.o", "hello"):
        t.check(os.path.exists(os.path.join(d, f)), "make produced %s in the workspace" % f, r)
    b = t.ward(["--profile", "offline-readonly"], ["./hello"], cwd=d)
    t.exit(b, 0, "./hello inside ward")
    t.check(b.stdout == "answer=42\n", "the built binary prints answer=42: %r" % b.stdout, b)
    p = subprocess.run([os.path.join(d, "hello")], stdout=subprocess.PIPE)
    t.check(p.stdout == b"answer=42\n", "the built binary also runs on the host: %r" % p.stdout, b)


@case
def make_offline_readonly(t):
    """The same project under offline-readonly: make fails writing the first
    object file ('Read-only file system'), and no object is left."""
    t.need("make", "cc")
    d = c_project(t)
    r = t.ward(["--profile", "offline-readonly"], ["make", "-j2"], cwd=d, timeout=120)
    t.exit(r, 2, "make -j2 under offline-readonly")
    t.check(re.search(r"can't create (main|util)\.o: Read-only file system", r.stderr),
            "the assembler says it cannot create the object file: Read-only file system", r)
    t.check(re.search(r"make: \*\*\* \[Makefile:\d+: (main|util)\.o\] Error 1", r.stderr),
            "make names the object rule that failed", r)
    t.check(not any(os.path.exists(os.path.join(d, f)) for f in ("main.o", "util.o", "hello")),
            "no object or binary in the workspace", r)
    # Control: the compiler works in the same view where the sandbox may write (its /tmp).
    c = t.ward(["--profile", "offline-readonly"],
               ["sh", "-c", 'cc -O1 -o /tmp/hello main.c util.c && /tmp/hello'], cwd=d, timeout=120)
    t.exit(c, 0, "control: cc into the private /tmp under offline-readonly")
    t.check(c.stdout == "answer=42\n", "control: the binary built in /tmp runs: %r" % c.stdout, c)


class Tmux:
    """A private tmux server (its own socket, no config file)."""

    def __init__(self, t):
        self.t = t
        self.sock = t.path("tmux.sock")
        self.env = dict(t.suite.env, TERM="xterm-256color")
        self.env.pop("TMUX", None)

    def __call__(self, *args, check=True):
        p = subprocess.run(["tmux", "-S", self.sock, "-f", "/dev/null"] + list(args), env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        if check and p.returncode != 0:
            raise Failure("tmux %s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr.decode().strip()))
        return p.returncode, p.stdout.decode(errors="replace")

    def pane(self, session):
        return self("capture-pane", "-p", "-t", session, check=False)[1]

    def wait(self, cond, timeout=15):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            v = cond()
            if v:
                return v
            time.sleep(0.1)
        return cond()

    def kill(self):
        subprocess.run(["tmux", "-S", self.sock, "kill-server"], env=self.env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=20)


@case
def tmux_pty_shell(t):
    """An interactive bash in `ward run --pty --profile minimal` inside tmux:
    tty names the sandbox's own /dev/pts device, the shell answers, its
    hostname is ward's, the terminal's size and a resize reach it, Ctrl-C
    stops the foreground program only, `exit` ends it (ward exits 0) and the
    session goes away. Control: without --pty, tty on the same terminal says
    'not a tty'."""
    t.need("tmux", "bash")
    tm = Tmux(t)
    t.cleanups.append(tm.kill)
    ward = shlex.quote(t.suite.ward)
    status = t.path("pty.status")
    tm("new-session", "-d", "-s", "e2e", "-x", "120", "-y", "40",
       "%s run --pty --profile minimal -- bash --norc --noprofile; echo $? > %s" % (ward, shlex.quote(status)))
    prompt = tm.wait(lambda: re.search(r"[#$] *$", tm.pane("e2e").strip()))
    t.check(prompt, "bash's prompt appears in the pane: %r" % tm.pane("e2e"))
    tm("send-keys", "-t", "e2e", "tty; hostname; echo $((6*7))", "Enter")
    got = tm.wait(lambda: re.search(r"^42$", tm.pane("e2e"), re.M))
    pane = tm.pane("e2e")
    if not t.check(got, "the shell answered 42 within 15 s; pane:\n%s" % pane):
        return
    lines = [l.strip() for l in pane.splitlines()]
    i = lines.index("42")
    tty, host = lines[i - 2], lines[i - 1]
    t.check(re.match(r"^/dev/pts/\d+$", tty), "tty names a /dev/pts device, got %r" % tty)
    t.check(tty == "/dev/pts/0", "tty is /dev/pts/0, the sandbox's own devpts (README), got %r" % tty)
    t.check(host == "ward", "hostname inside is ward's (the sandbox's UTS namespace), got %r" % host)

    def ask(keys, pattern, what):
        tm("send-keys", "-t", "e2e", keys, "Enter")
        m = tm.wait(lambda: re.search(pattern, tm.pane("e2e"), re.M))
        t.check(m, "%s: expected /%s/ in the pane; pane:\n%s" % (what, pattern, tm.pane("e2e")))
        return m

    # The terminal's size reaches the sandbox's pty, and so does a resize.
    ask("echo SIZE=$(stty size)", r"^SIZE=40 120$", "stty size inside is tmux's 40 rows x 120 columns")
    tm("resize-window", "-t", "e2e", "-x", "100", "-y", "30")
    ask("echo RESIZED=$(stty size)", r"^RESIZED=30 100$", "after tmux resize-window, stty size is 30 x 100")
    # Ctrl-C interrupts the foreground program, not the shell or ward.
    ask("python3 -c 'import time; print(\"SLEEP\" + \"ING\", flush=True); time.sleep(60)'", r"^SLEEPING$",
        "python3 started in the foreground")
    tm("send-keys", "-t", "e2e", "C-c")
    t.check(tm.wait(lambda: "KeyboardInterrupt" in tm.pane("e2e")),
            "Ctrl-C reaches python3 as SIGINT (KeyboardInterrupt); pane:\n%s" % tm.pane("e2e"))
    ask("echo AFTER-INTERRUPT=$?", r"^AFTER-INTERRUPT=130$", "python3 ended by SIGINT (130); the shell lives on")
    tm("send-keys", "-t", "e2e", "exit", "Enter")
    gone = tm.wait(lambda: tm("has-session", "-t", "e2e", check=False)[0] != 0)
    t.check(gone, "the tmux session ends after `exit`; pane:\n%s" % tm.pane("e2e"))
    st = tm.wait(lambda: os.path.exists(status) and open(status).read().strip(), timeout=5)
    t.check(st == "0", "ward run --pty exited 0 after the shell's exit, got %r" % st)
    # Control: the same terminal without --pty reaches the command as a pipe.
    out = t.path("nopty.out")
    tm("new-session", "-d", "-s", "ctl", "-x", "120", "-y", "40",
       "%s run --profile minimal --cwd / -- tty > %s 2>&1; echo $? > %s.status" % (ward, shlex.quote(out), shlex.quote(out)))
    st2 = tm.wait(lambda: os.path.exists(out + ".status") and open(out + ".status").read().strip())
    text = open(out).read().strip() if os.path.exists(out) else None
    t.check(st2 == "1" and text == "not a tty",
            "control: without --pty, tty says 'not a tty' and exits 1, got %r, exit %r" % (text, st2))


@case
def pty_piped_stdin_ends(t):
    """`printf 'echo $((6*7))\\n' | ward run --pty -- bash`: a script of
    commands piped into an interactive program on ward's terminal. `ward run
    --help`: "the end of a stdin that is not a terminal reaches the command
    as the terminal's end-of-file character". Expected: the program runs the
    input, sees end of input and exits (long before --timeout 30s). bash and the
    python3 REPL read the terminal through readline (non-canonical mode);
    `script -qec CMD /dev/null` ends both at once. Control: dash (sh), which
    reads the terminal in canonical mode, answers and exits 0."""
    t.need("bash", "python3")
    runs = [(["sh"], "echo $((6*7))\n", "42"),
            (["bash", "--norc", "--noprofile"], "echo $((6*7))\n", "42"),
            (["python3", "-q"], "print(6*7)\n", "42")]
    for cmd, stdin, want in runs:
        r = t.ward(["--timeout", "30s", "--pty", "--profile", "minimal"], cmd, stdin=stdin.encode(), timeout=60)
        answered = re.search(r"(^|[#$] )%s\r?$" % want, r.stdout, re.M)   # sh prints its answer after "# "
        what = "`printf %r | ward run --pty -- %s`" % (stdin, " ".join(cmd))
        t.check(r.rc == 0 and answered and r.elapsed < 20,
                "%s: expected the program to answer %s, see the end of its input and exit 0 at once; got exit %s "
                "after %.1fs%s%s" % (what, want, r.rc, r.elapsed,
                                     " (ward's --timeout 30s killed it: the end of input never reached it)"
                                     if r.rc == 124 else "", "" if answered else ", and no answer"), r)


@case
def grant_flag_before_double_dash(t):
    """A repeatable grant flag (--env, --read, --write, --deny, --allow-net)
    directly before `--`, then a command with options of its own, as
    docs/policy.md's examples and a new user write it:
    `ward run --profile minimal --env GREETING=hi -- sh -c 'echo $GREETING'`.
    Expected: the command runs. Control: the same with --json between the
    flag and `--`."""
    cases = [
        (["--profile", "minimal", "--env", "GREETING=hi"], ["sh", "-c", "echo $GREETING"], "hi"),
        (["--profile", "minimal", "--read", "."], ["ls", "-d", "."], "."),
        (["--profile", "minimal", "--deny", "nothing-here"], ["sh", "-c", "echo ok"], "ok"),
        (["--profile", "minimal", "--write", "."], ["sh", "-c", "echo ok"], "ok"),
        (["--profile", "minimal", "--allow-net", "%s:1" % HOST, "--dns-server", t.suite.dns.address,
          "--allow-net", "%s:2" % HOST], ["sh", "-c", "echo ok"], "ok"),
    ]
    for opts, cmd, want in cases:
        r = t.ward(opts, cmd, json_result=False)
        t.check(r.rc == 0 and r.stdout.strip() == want,
                "`ward run %s -- %s` must run the command (exit 0, %r), got exit %s: %s" % (
                    " ".join(opts), " ".join(shlex.quote(c) for c in cmd), want, r.rc,
                    (r.stderr.strip().splitlines() or [""])[0]), r)
        c = t.ward(opts, cmd)   # --json between the flag and `--`
        t.check(c.rc == 0 and c.stdout.strip() == want, "control: with --json before `--` it runs", c)


# -- README.md "Use" --------------------------------------------------------

TOOL_PY = r'''
import errno, json, os
facts = {}
data = open("input.txt").read()
os.makedirs("out", exist_ok=True)
with open("out/result.txt", "w") as f:
    f.write(data.upper())
facts["wrote"] = "out/result.txt"
for name, fn in (("write_workspace", lambda: open("tool-wrote-here.txt", "w").write("x")),
                 ("read_env", lambda: open(".env").read())):
    try:
        fn()
        facts[name] = "ok"
    except OSError as e:
        facts[name] = errno.errorcode[e.errno]
print("tool.py: " + json.dumps(facts, sort_keys=True))
'''


def readme_use_commands(readme):
    """Every `ward ...` line of the ```sh blocks in README.md's "## Use"
    section, comments removed."""
    text = open(readme).read()
    m = re.search(r"^## Use\n(.*?)(?=^## )", text, re.M | re.S)
    if not m:
        return None
    cmds = []
    for block in re.findall(r"^```sh\n(.*?)^```", m.group(1), re.M | re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line.startswith("ward "):
                cmds.append(line)
    return cmds


def readme_facts(r):
    m = re.search(r"^tool\.py: (\{.*\})$", r.stdout, re.M)
    return json.loads(m.group(1)) if m else {}


def readme_expect_tool(t, r, ws, what, write_workspace):
    t.exit(r, 0, what)
    f = readme_facts(r)
    t.check(f.get("wrote") == "out/result.txt" and os.path.exists(os.path.join(ws, "out", "result.txt")),
            "%s: tool.py wrote out/result.txt in the workspace: %r" % (what, f), r)
    t.check(f.get("write_workspace") == write_workspace, "%s: writing the workspace root gives %s, got %r" % (
        what, write_workspace, f.get("write_workspace")), r)
    return f


def readme_run_policy(t, r, ws, what):
    f = readme_expect_tool(t, r, ws, what, "ok")
    t.check(f.get("read_env") == "EACCES", "%s: the policy denies ${WORKSPACE}/.env: EACCES, got %r"
            % (what, f.get("read_env")), r)


def readme_ls_home(t, r, ws, what):
    # The README: the profile mounts a private home at `~`, empty but for
    # the caller's git identity; nothing of the caller's own home shows.
    t.check(r.rc == 0 and "home-marker.txt" not in r.stdout,
            "%s: expected exit 0 and the private home listed (not the caller's home-marker.txt), got exit %s"
            % (what, r.rc), r)


def readme_one_off(t, r, ws, what):
    readme_expect_tool(t, r, ws, what, "EROFS")


def readme_check(t, r, ws, what):
    t.exit(r, 0, what)
    t.check(r.stdout.strip() == "examples/coding-agent.json: ok", "%s: prints 'examples/coding-agent.json: ok'"
            % what, r)


def readme_show(t, r, ws, what):
    t.exit(r, 0, what)
    try:
        pol = json.loads(r.stdout)
    except ValueError:
        t.fail("%s: prints the policy as JSON" % what, r)
        return
    t.check(ws in (pol.get("filesystem", {}).get("write") or []),
            "%s: the profile applied and ${WORKSPACE} expanded: filesystem.write holds %s" % (what, ws), r)
    t.check(pol.get("limits", {}).get("memoryMiB") == 512 and pol.get("network") == "none",
            "%s: the file's limits and network are there" % what, r)
    c = t.exec([t.suite.ward, "policy", "check", "-"], cwd=ws, stdin=r.stdout.encode())
    t.check(c.rc == 0, "%s: its output is itself a valid policy (ward policy check -)" % what, c)


def readme_doctor(t, r, ws, what):
    t.exit(r, 0, what)
    t.check(re.search(r"^\[ok\] +namespaces", r.stdout, re.M) and re.search(r"^\[ok\] +landlock", r.stdout, re.M),
            "%s: reports namespaces and landlock as ok on this host" % what, r)


README_EXPECT = {
    "ward run --policy examples/coding-agent.json -- python3 tool.py": readme_run_policy,
    "ward run --profile offline-readonly -- ls ~": readme_ls_home,
    "ward run --read . --write out --allow-net pypi.org:443 --memory 512M --timeout 2m -- python3 tool.py":
        readme_one_off,
    "ward policy check examples/coding-agent.json": readme_check,
    "ward policy show --policy examples/coding-agent.json": readme_show,
    "ward doctor": readme_doctor,
}


@case
def readme_use(t):
    """Every `ward ...` command line of README.md's "Use" section, run as
    written (the built binary for `ward`, through /bin/sh so that `~`
    expands as in the reader's shell) in a workspace with the files they
    name (examples/, tool.py, out/); each exits as the README implies. A
    command without an expectation here fails the case (nothing is skipped)."""
    t.need("python3")
    cmds = readme_use_commands(os.path.join(SOURCE_DIR, "README.md"))
    if not cmds:
        raise Failure("README.md has no ```sh block with `ward` commands under '## Use'")
    home = t.suite.home
    open(os.path.join(home, "home-marker.txt"), "w").close()
    os.chmod(os.path.join(home, "home-marker.txt"), 0o644)
    for i, cmd in enumerate(cmds):
        check = README_EXPECT.get(cmd)
        if check is None:
            t.fail("README command without an expectation in e2e_test.py (add one to README_EXPECT): %s" % cmd)
            continue
        # A fresh workspace per command, as a reader's checkout would be.
        ws = t.mkdir("ws%d" % i)
        shutil.copytree(os.path.join(SOURCE_DIR, "examples"), os.path.join(ws, "examples"))
        for root, dirs, files in os.walk(ws):
            for n in dirs:
                os.chmod(os.path.join(root, n), 0o755)
            for n in files:
                os.chmod(os.path.join(root, n), 0o644)
        t.write("ws%d/tool.py" % i, TOOL_PY)
        t.write("ws%d/input.txt" % i, "readme input\n")
        t.write("ws%d/.env" % i, "TOKEN=not-for-the-agent\n")
        t.mkdir("ws%d" % i, "out")
        line = re.sub(r"^ward\b", shlex.quote(t.suite.ward), cmd)
        r = t.exec(line, cwd=ws, shell=True, timeout=120)
        n_before = len(t.failures)
        check(t, r, ws, "README `%s`" % cmd)
        t.note("%s: %s" % ("ok  " if len(t.failures) == n_before else "FAIL", cmd))


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------

def default_work_root(ward):
    # BUILD/bin/ward -> BUILD/e2e-work (made 1777 by ctest's e2e_workdir).
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(ward))), "e2e-work")


def make_work(root):
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as e:
        raise SystemExit("FAIL: cannot create the work root %s: %s (give --work-root)" % (root, e))
    if root.startswith("/tmp/") or root == "/tmp":
        raise SystemExit("FAIL: the work root must not be under /tmp (the sandbox's /tmp is private)")
    work = tempfile.mkdtemp(prefix="e2e-%s-" % user_name(), dir=root)
    os.chmod(work, 0o755)   # world-traversable: the sandbox runs as another host uid when ward runs as root
    return work


def sanity(ward, env, work):
    """Can a sandbox run here at all? Otherwise the suite is skipped (77)."""
    p = subprocess.run([ward, "run", "--profile", "minimal", "--", "true"], cwd=work, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return p.returncode, p.stderr.decode(errors="replace").strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ward", required=True, help="the ward binary")
    ap.add_argument("--only", help="comma-separated case names")
    ap.add_argument("--list", action="store_true", help="list the cases")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--verbose", action="store_true", help="print every run")
    ap.add_argument("--work-root", help="where the work directory is made (default: BUILD/e2e-work)")
    ap.add_argument("--strict", action="store_true", help="a skipped case is a failure")
    ap.add_argument("--known-bug", action="append", default=[], metavar="CASE",
                    help="a case that fails for an open bug: not run, and said so (ctest passes the open ones)")
    args = ap.parse_args()
    if args.list:
        for name, fn in CASES:
            log("%-28s %s" % (name, (fn.__doc__ or "").strip().split("\n")[0]))
        return 0
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    only = set(args.only.split(",")) if args.only else None
    if only:
        unknown = only - {n for n, _ in CASES}
        if unknown:
            log("FAIL: unknown case(s): %s (see --list)" % ", ".join(sorted(unknown)))
            return 1
    if not os.access(args.ward, os.X_OK):
        log("FAIL: ward binary %s is not executable by uid %d" % (args.ward, os.getuid()))
        return 1
    work = make_work(os.path.abspath(args.work_root or default_work_root(args.ward)))
    try:
        suite = Suite(args, work)
        rc, err = sanity(suite.ward, suite.env, work)
        if rc == 125:
            log("SKIP: this host cannot build a sandbox (ward run exit 125): %s" % err)
            return SKIP_RC
        if rc != 0:
            log("FAIL: `ward run --profile minimal -- true` exits %d: %s" % (rc, err))
            return 1
        mode = "root" if os.getuid() == 0 else "user %s (uid %d)" % (user_name(), os.getuid())
        log("e2e suite: ward %s, as %s, work dir %s, DNS %s" % (suite.ward, mode, work, suite.dns.address))
        counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
        t_all = time.monotonic()
        for name, fn in CASES:
            if only and name not in only:
                continue
            if name in args.known_bug:
                log("KNOWN BUG, not run: %s (open: see the issue tracker)" % name)
                continue
            t = T(suite, name)
            t0 = time.monotonic()
            status, why = "PASS", ""
            try:
                fn(t)
            except Skip as e:
                status, why = "SKIP", str(e)
            except Failure as e:
                t.fail(str(e))
            except Exception:
                t.fail("test error:\n" + traceback.format_exc())
            finally:
                for c in t.cleanups:
                    try:
                        c()
                    except Exception as e:
                        t.note("cleanup: %s" % e)
            left = leftover_processes(t.dir)
            if left:
                t.fail("processes of the case outlived it: %s" % left)
            if t.failures:
                status = "FAIL"
                why = t.failures[0][0].split("\n")[0]
            elif status == "SKIP" and args.strict:
                status = "FAIL"
                why = "skipped under --strict: " + why
            counts[status] += 1
            log("%s %s (%.1fs)%s" % (status, name, time.monotonic() - t0, (": " + why) if why else ""))
            for n in t.notes:
                log("    " + n)
            if status == "FAIL":
                shown = set()
                for msg, r in t.failures:
                    log("  - " + msg)
                    if r is not None and id(r) not in shown:
                        shown.add(id(r))
                        log(r.describe())
        log("e2e suite: %d passed, %d failed, %d skipped in %.1fs" % (
            counts["PASS"], counts["FAIL"], counts["SKIP"], time.monotonic() - t_all))
        return 1 if counts["FAIL"] else 0
    finally:
        if args.keep:
            log("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
