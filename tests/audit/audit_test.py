#!/usr/bin/env python3
"""The audit trail end to end: identity, events of `ward run`, `ward audit`'s
filters, crash survival, fail-closed, untrusted fields, a store the sandbox
cannot reach.

Each case asserts the outcome and its reason and has a control where the
same thing is allowed or present. Runs as whoever calls it (ctest: root, and
the test user through scripts/as-test-user.sh); every store lives in a
directory the test makes (WARD_AUDIT_DB).
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

WARD = None
BASE = None
DB = None
FILES_DIR = None  # outside ward's state (BASE): what a sandbox may be granted


def ward(*args, db=None, timeout=60, cwd=None):
    env = dict(os.environ, WARD_AUDIT_DB=db or DB, WARD_RUNTIME_DIR=os.path.join(BASE, "rt"))
    p = subprocess.run([WARD, *args], cwd=cwd or BASE, env=env, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def check(cond, what, out=None):
    if not cond:
        raise AssertionError(what + ("" if out is None else "\n--- " + repr(out)[:2000]))


def events(*filters, db=None, execs=True):
    """The events `filters` select; without the exec events if `execs` is false."""
    code, out, err = ward("audit", "--json", *filters, db=db)
    check(code == 0, "ward audit --json " + " ".join(filters), err)
    ev = [json.loads(l) for l in out.splitlines() if l.strip()]
    return ev if execs else [e for e in ev if e["kind"] != "exec"]


def run_env(agent):
    """One run that prints its identity; (WARD_AGENT, WARD_AGENT_ID, WARD_SANDBOX_ID)."""
    code, out, err = ward("run", "--agent", agent, "--profile", "minimal", "--cwd", "/", "--",
                          "sh", "-c", 'echo "$WARD_AGENT $WARD_AGENT_ID $WARD_SANDBOX_ID"')
    check(code == 0, "run", err)
    return tuple(out.split())


def test_identity_on_every_event():
    a1 = run_env("reviewer")
    a2 = run_env("reviewer")
    b = run_env("builder")
    check(a1[0] == "reviewer" and len(a1[1]) == 16 and len(a1[2]) == 12, "identity inside the sandbox", a1)
    check(a1[1] == a2[1], "the agent id is stable for its name", (a1, a2))
    check(a1[2] != a2[2], "each run has its own sandbox id", (a1, a2))
    check(b[1] != a1[1], "another agent has another id", (a1, b))
    ev = events("--sandbox", a1[2], execs=False)
    check([e["kind"] for e in ev] == ["start", "exit"], "a run records its start and its exit", ev)
    execs = events("--sandbox", a1[2], "--kind", "exec")
    check(len(execs) == 1 and execs[0]["detail"]["argv"][0] == "sh" and execs[0]["agentId"] == a1[1],
          "and the one program it executed (echo is sh's own)", execs)
    check(all(e["agent"] == "reviewer" and e["agentId"] == a1[1] for e in ev), "every event carries the identity", ev)
    start = ev[0]["detail"]
    check(start["policyDigest"].startswith("sha256:") and start["argv"][0] == "sh" and start["uid"] == os.getuid()
          and "filesystem" in start["policy"], "the start names the policy, its digest, the command and the caller", start)
    check(ev[1]["detail"]["exitStatus"] == 0, "the exit's status", ev[1])


def test_filters():
    sid = run_env("filters")[2]
    code, _, err = ward("run", "--agent", "filters", "--profile", "minimal", "--cwd", "/", "--", "sh", "-c", "exit 3")
    check(code == 3, "exit 3", err)
    ev = events("--agent", "filters")
    check(len([e for e in ev if e["kind"] != "exec"]) == 4 and len([e for e in ev if e["kind"] == "exec"]) == 2,
          "two runs of the agent: four events and an exec of sh in each", ev)
    check(len(events("--agent", "filters", "--kind", "exit")) == 2, "--kind exit")
    check(events("--agent", "filters", "--kind", "exit", "--limit", "1")[0]["detail"]["exitStatus"] == 3,
          "--limit 1: the newest")
    check(len(events("--sandbox", sid)) == 3, "--sandbox")
    check(len(events("--agent", "filters", "--since", "1h")) == 6, "--since 1h")
    # A filter that would match everything, an unknown kind or a time past
    # what ward can count: refused (122), never read as "any".
    for bad in (("--agent", ""), ("--sandbox", ""), ("--kind", "nope"), ("--since", "9999-01-01T00:00:00Z")):
        code, _, err = ward("audit", *bad)
        check(code == 122 and bad[0] in err, "ward audit %s %r: 122" % bad, err)
    check(events("--agent", "filters", "--since", "2099-01-01T00:00:00Z") == [], "--since the future: nothing")
    check(events("--agent", "filters", "--until", "2000-01-01T00:00:00Z") == [], "--until the past: nothing")
    check(events("--agent", "filters", "--denied") == [], "no denials in these runs")
    code, out, err = ward("audit", "--since", "yesterday")
    check(code == 122 and "--since" in err, "a bad --since is a usage error naming it", (code, err))
    code, out, err = ward("audit", "--agent", "filters")
    lines = out.splitlines()
    check(code == 0 and lines[0].startswith("TIME") and len(lines) == 7, "the table: a header and a line per event", out)


def test_egress_decisions_recorded():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    try:
        probe = ("import socket\n"
                 "for h, p in (('host.ward.internal', %d), ('192.0.2.1', 80)):\n"
                 "    s = socket.socket(); s.settimeout(5)\n"
                 "    try: s.connect((h, p)); print(h, 'connected')\n"
                 "    except OSError as e: print(h, e.errno)\n" % port)
        code, out, err = ward("run", "--agent", "net", "--profile", "minimal", "--cwd", "/",
                              "--allow-net", "host.ward.internal:%d" % port, "--", "python3", "-c", probe)
        check(code == 0 and "192.0.2.1 111" in out, "192.0.2.1:80 refused (ECONNREFUSED) inside", (out, err))
    finally:
        srv.close()
    denied = events("--agent", "net", "--denied")
    check(len(denied) == 1 and denied[0]["kind"] == "egress" and denied[0]["detail"]["address"] == "192.0.2.1"
          and denied[0]["detail"]["port"] == 80 and "no rule allows" in denied[0]["detail"]["reason"],
          "the denied connection is an egress event with its reason", denied)
    allowed = events("--agent", "net", "--allowed", "--kind", "egress")
    check(any(e["detail"].get("port") == port and e["detail"]["rule"] == "host.ward.internal:%d" % port
              for e in allowed), "control: the allowed connection is recorded with its rule", allowed)


def test_limit_recorded():
    code, out, err = ward("run", "--agent", "hog", "--profile", "minimal", "--cwd", "/", "--memory", "48", "--",
                          "python3", "-c", "x = bytearray(400 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096])")
    check(code != 0, "the hog fails", (code, err))
    lim = events("--agent", "hog", "--kind", "limit")
    check(len(lim) == 1 and lim[0]["detail"]["limit"] == "memory" and lim[0]["decision"] == "deny",
          "a memory limit event", (lim, err))
    code, _, err = ward("run", "--agent", "nohog", "--profile", "minimal", "--cwd", "/", "--memory", "48", "--",
                        "python3", "-c", "x = bytearray(4 * 1024 * 1024)")
    check(code == 0 and events("--agent", "nohog", "--kind", "limit") == [], "control: no limit event", err)
    # The time limit: ward kills the sandbox (124), a "time" limit event.
    code, _, err = ward("run", "--agent", "slow", "--profile", "minimal", "--cwd", "/", "--timeout", "300ms", "--",
                        "sleep", "30")
    lim = events("--agent", "slow", "--kind", "limit")
    check(code == 124 and [l["detail"]["limit"] for l in lim] == ["time"], "a time limit event", (code, lim, err))
    code, _, err = ward("run", "--agent", "quick", "--profile", "minimal", "--cwd", "/", "--timeout", "10s", "--", "true")
    check(code == 0 and events("--agent", "quick", "--kind", "limit") == [], "control: in time, no event", err)
    # File size (RLIMIT_FSIZE): the writer is killed by SIGXFSZ.
    pol = os.path.join(BASE, "fsize-policy.json")
    with open(pol, "w") as f:
        f.write('{"ward": 1, "extends": "minimal", "limits": {"fileSizeMiB": 1}}')
    code, _, err = ward("run", "--agent", "big", "--policy", pol, "--cwd", "/", "--",
                        "sh", "-c", "exec head -c 2000000 /dev/zero > /tmp/big")
    lim = events("--agent", "big", "--kind", "limit")
    check(code == 128 + signal.SIGXFSZ and [l["detail"]["limit"] for l in lim] == ["file size"],
          "a file size limit event (SIGXFSZ)", (code, lim, err))


def test_untrusted_fields_escaped():
    evil = "ok\x1b[2J\nFORGED 2026-01-01T00:00:00.000Z root start"
    code, _, err = ward("run", "--agent", "evil", "--profile", "minimal", "--cwd", "/", "--", "sh", "-c", "true", evil)
    check(code == 0, "run", err)
    code, out, err = ward("audit", "--agent", "evil")
    check(code == 0 and "\x1b" not in out and "\\x1b[2J" in out and "\\x0aFORGED" in out,
          "the table shows control bytes escaped", out)
    check(len(out.splitlines()) == 4, "no forged line: a header and three events (start, exec, exit)", out)
    ev = events("--agent", "evil")
    check(ev[0]["detail"]["argv"][-1] == evil, "--json keeps the argument byte for byte", ev[0]["detail"]["argv"])


def test_exec_events():
    # Every program the sandbox executes, as it happens: path, argv, pid and
    # parent (sandbox pids); the steps of a PATH search that find nothing
    # are not executions and not recorded. Bounded: 256 arguments at most,
    # marked truncated.
    code, out, err = ward("run", "--agent", "execs", "--profile", "minimal", "--cwd", "/", "--",
                          "sh", "-c", '/bin/echo a "b c"; env true')
    check(code == 0 and out == "a b c\n", "the run", (out, err))
    every = events("--agent", "execs", "--kind", "exec")
    # env's own PATH search tries directories that are not in the sandbox:
    # recorded, and marked as not found (as ward saw it).
    ev = [e for e in every if e["detail"].get("found", True)]
    misses = [e for e in every if not e["detail"].get("found", True)]
    check(all(e["detail"]["argv"] == ["true"] and e["summary"].startswith("(not found) ") for e in misses),
          "the misses of env's PATH search are marked", misses)
    check([e["detail"]["argv"] for e in ev] == [["sh", "-c", '/bin/echo a "b c"; env true'], ["/bin/echo", "a", "b c"],
                                                ["env", "true"], ["true"]], "sh, echo, env and true, in order", ev)
    sh, echo, env, true = (e["detail"] for e in ev)
    check(sh["ppid"] == 1 and echo["ppid"] == sh["pid"] and env["ppid"] == sh["pid"] and true["pid"] == env["pid"],
          "the parents: init runs sh, sh forks echo and env, env becomes true", ev)
    check(echo["path"] == "/bin/echo" and true["path"].endswith("/true") and os.path.basename(env["path"]) == "env",
          "the paths executed", ev)
    big = "import os\nos.execv('/bin/true', ['true'] + ['x'] * 300)"
    code, _, err = ward("run", "--agent", "execs-big", "--profile", "minimal", "--cwd", "/", "--", "python3", "-c", big)
    check(code == 0, "the run", err)
    ev = events("--agent", "execs-big", "--kind", "exec")
    check(len(ev) == 2 and len(ev[1]["detail"]["argv"]) == 256 and ev[1]["detail"].get("truncated") is True,
          "300 arguments: 256 kept, marked truncated", ev[1:])
    check("truncated" not in ev[0]["detail"], "control: python3's own argv is whole", ev[0])
    # A path ward cannot resolve as the sandbox does (/proc/self is the
    # caller's own, not ward's) is recorded all the same: no exec is left
    # out on a check made from outside.
    code, out, err = ward("run", "--agent", "execs-proc", "--profile", "minimal", "--cwd", "/", "--", "sh", "-c",
                          "/proc/self/root/usr/bin/id -u; exec 3</usr/bin/uname; /proc/self/fd/3 -s")
    check(code == 0 and "Linux" in out, "the run", (out, err))
    argvs = [e["detail"].get("argv") for e in events("--agent", "execs-proc", "--kind", "exec")]
    check(["/proc/self/root/usr/bin/id", "-u"] in argvs and ["/proc/self/fd/3", "-s"] in argvs,
          "programs run through /proc/self are recorded", argvs)
    sid = ev[0]["sandbox"]
    code, out, err = ward("audit", "summary", "--sandbox", sid, "--json")
    summary = json.loads(out) if code == 0 else {}
    check(summary.get("execCount") == 2 and [x["path"] for x in summary["executed"]][1] == "/bin/true",
          "the summary lists what ran", (out, err))


def test_follow_streams_events_as_they_happen():
    # `ward audit --follow` shows an exec and a denied connection while
    # their run is still going (it waits for the end of its stdin, which
    # the test closes once it has seen them).
    env = dict(os.environ, WARD_AUDIT_DB=DB, WARD_RUNTIME_DIR=os.path.join(BASE, "rt"))
    follow = subprocess.Popen([WARD, "audit", "--follow", "--json", "--agent", "live"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    run = None
    connect = "import socket\ntry: socket.create_connection(('192.0.2.1', 80), 5)\nexcept OSError as e: print(e.errno)"
    try:
        time.sleep(0.5)
        run = subprocess.Popen([WARD, "run", "--agent", "live", "--profile", "minimal", "--cwd", "/",
                                "--allow-net", "127.0.0.1:9", "--", "sh", "-c",
                                '/bin/true live-marker; python3 -c "$0"; read line || true', connect], env=env, cwd=BASE,
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seen, buf, deadline = [], b"", time.monotonic() + 10
        import select

        def got():
            ev = [json.loads(l) for l in seen if l.strip()]
            return (any(e["kind"] == "exec" and "live-marker" in e["detail"].get("argv", []) for e in ev),
                    any(e["kind"] == "egress" and e["decision"] == "deny" and e["detail"].get("address") == "192.0.2.1"
                        for e in ev))
        while time.monotonic() < deadline and not all(got()):
            # Raw reads: a buffered readline would keep lines select() cannot see.
            if select.select([follow.stdout], [], [], 0.2)[0]:
                buf += os.read(follow.stdout.fileno(), 1 << 16)
                *lines, rest = buf.split(b"\n")
                seen += [l.decode() for l in lines]
                buf = rest
        check(all(got()), "the exec and the denial arrive on --follow", seen)
        check(run.poll() is None, "while the run is still going (it waits for its stdin's end)", (run.poll(), seen))
        run.stdin.close()
        check(run.wait(20) == 0, "the run")
        ev = events("--agent", "live", "--kind", "egress")
        check(len(ev) == 1, "each decision is recorded once (not again at the end)", ev)
    finally:
        follow.kill()
        follow.wait()
        if run and run.poll() is None:
            run.kill()


def test_learn_then_run_then_deny_the_variation():
    # ward learn watches a command in a permissive sandbox and writes the
    # least policy it needs, each grant with why; the same command then
    # runs under it, and a variant that reads another file or connects
    # elsewhere is refused (ENOENT; ECONNREFUSED with a deny event).
    ws = os.path.join(BASE, "lws")
    for d in ("data", "out"):
        os.makedirs(os.path.join(ws, d), exist_ok=True)
    for name, text in (("data/a.txt", "alpha\n"), ("data/b.txt", "beta\n"), ("secret.txt", "s3cret\n")):
        with open(os.path.join(ws, name), "w") as f:
            f.write(text)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen(8)
    other_port = other.getsockname()[1]
    probe = ("import socket, sys\n"
             "data = open(sys.argv[1]).read()\n"
             "open('out/r.txt', 'w').write(data.upper())\n"
             "s = socket.socket(); s.settimeout(5)\n"
             "try: s.connect(('host.ward.internal', int(sys.argv[2]))); print('connected')\n"
             "except OSError as e: print('errno', e.errno)\n")
    learned = os.path.join(BASE, "learned.json")
    try:
        # The default envelope: files only (the host's own addresses, its
        # loopback included, are closed to egress's "default": "allow").
        code, out, err = ward("learn", "--agent", "learner", "-o", learned, "--", "python3", "-c", probe,
                              "data/a.txt", str(port), cwd=ws)
        text = open(learned).read()
        check(code == 0 and "errno 111" in out and '"${WORKSPACE}/data/a.txt"  // read by python3' in text
              and '"network": "none"' in text, "the default envelope: the file learned", (out, err, text))
        # An envelope that lets it reach both local servers: it uses one.
        envelope = os.path.join(BASE, "envelope.json")
        with open(envelope, "w") as f:
            f.write('{"ward": 1, "extends": "minimal", // comments are allowed\n'
                    ' "filesystem": {"read": ["${WORKSPACE}"], "write": ["${WORKSPACE}/out"]},\n'
                    ' "network": {"egress": {"allow": ["host.ward.internal:%d", "host.ward.internal:%d"]}}}'
                    % (port, other_port))
        code, out, err = ward("learn", "--agent", "learner", "--within", envelope, "-o", learned, "--", "python3", "-c",
                              probe, "data/a.txt", str(port), cwd=ws)
        check(code == 0 and "connected" in out, "the learning run", (out, err))
        text = open(learned).read()
        check('"${WORKSPACE}/data/a.txt"  // read by python3' in text and '"${WORKSPACE}/out"  // created in by python3' in text
              and '"host.ward.internal:%d"' % port in text, "the grants, each with why", text)
        check("secret" not in text and "b.txt" not in text, "nothing it did not touch", text)
        os.unlink(os.path.join(ws, "out", "r.txt"))
        code, out, err = ward("run", "--policy", learned, "--", "python3", "-c", probe, "data/a.txt", str(port), cwd=ws)
        check(code == 0 and "connected" in out and open(os.path.join(ws, "out", "r.txt")).read() == "ALPHA\n",
              "the same command runs under the learned policy", (out, err))
        code, out, err = ward("run", "--agent", "variant", "--policy", learned, "--", "python3", "-c", probe,
                              "secret.txt", str(port), cwd=ws)
        check(code == 1 and "FileNotFoundError" in err, "a variant reading another file: ENOENT", (out, err))
        code, out, err = ward("run", "--agent", "variant", "--policy", learned, "--", "python3", "-c", probe,
                              "data/a.txt", str(other_port), cwd=ws)
        check(code == 0 and "errno 111" in out, "a variant connecting elsewhere: ECONNREFUSED", (out, err))
        check("%d" % other_port not in text, "the destination it did not use is not learned", text)
        denied = events("--agent", "variant", "--denied")
        check(any(e["kind"] == "egress" and e["detail"].get("port") == other_port for e in denied),
              "and the refusal is recorded", denied)
        check(events("--agent", "learner", "--kind", "exec")[0]["detail"]["argv"][0] == "python3",
              "the learning run is in the audit trail", None)
        # The review: links planted in the workspace to a directory outside
        # the envelope and to /etc were learned by their names, which then
        # reached the targets. Judged by what they resolve to: not learned.
        outside = os.path.join(BASE, "outside-secret")
        os.makedirs(outside, exist_ok=True)
        with open(os.path.join(outside, "key"), "w") as f:
            f.write("TOPSECRET\n")
        for name, target in (("sec", outside), ("etcl", "/etc")):
            if not os.path.islink(os.path.join(ws, name)):
                os.symlink(target, os.path.join(ws, name))
        code, out, err = ward("learn", "-o", learned, "--", "sh", "-c",
                              "cat data/a.txt; cat sec/key; touch etcl/ward-learn-pwned", cwd=ws)
        text = open(learned).read()
        check("TOPSECRET" not in out and '"${WORKSPACE}/data/a.txt"' in text and "sec" not in text.split("{", 1)[1]
              and "etcl" not in text.split("{", 1)[1] and not os.path.exists("/etc/ward-learn-pwned"),
              "links to places the envelope does not grant are not learned", (out, err, text))
        code, out, err = ward("run", "--policy", learned, "--", "sh", "-c", "cat sec/key; touch etcl/ward-learn-pwned",
                              cwd=ws)
        check("TOPSECRET" not in out and not os.path.exists("/etc/ward-learn-pwned"),
              "and the learned policy reaches neither", (out, err))
        for name in ("sec", "etcl"):
            os.unlink(os.path.join(ws, name))
        # Within an envelope: what the envelope does not grant is neither
        # reachable nor learned.
        with open(envelope, "w") as f:
            f.write('{"ward": 1, "extends": "minimal",\n'
                    ' "filesystem": {"read": ["${WORKSPACE}/data/b.txt"], "write": ["${WORKSPACE}/out"]}}')
        code, out, err = ward("learn", "--within", envelope, "-o", learned, "--", "sh", "-c",
                              "cat data/a.txt; cat data/b.txt > out/x.txt", cwd=ws)
        text = open(learned).read()
        check(code == 0 and "No such file" in err and '"${WORKSPACE}/data/a.txt"' not in text and '"${WORKSPACE}/data/b.txt"' in text,
              "within an envelope: a.txt unreachable (the command fails) and not learned; b.txt learned", (code, err, text))
    finally:
        srv.close()
        other.close()


def test_each_agent_its_own_host_uid():
    # As root: each agent's sandboxes run as a host uid of their own from
    # WARD_UID_RANGE, stable for the name and recorded on the start event;
    # another agent gets another. Unprivileged: the caller's own uid.
    def host_uid(agent):
        code, out, err = ward("run", "--agent", agent, "--profile", "minimal", "--cwd", "/", "--",
                              "cat", "/proc/self/uid_map")
        check(code == 0, "run", err)
        inside, outside, count = out.split()
        return int(inside), int(outside)
    a1, a2, b = host_uid("uid-a"), host_uid("uid-a"), host_uid("uid-b")
    if os.getuid() != 0:
        check(a1 == (os.getuid(), os.getuid()), "unprivileged: the caller, mapped to itself", a1)
        return
    base = 1879048192
    check(a1[0] == 0 and base < a1[1] < base + 65536, "uid 0 inside, an uid of the range outside", a1)
    check(a1 == a2, "the same agent: the same host uid", (a1, a2))
    check(b[1] != a1[1] and base < b[1] < base + 65536, "another agent: another host uid", (a1, b))
    start = events("--agent", "uid-a", "--kind", "start")[0]
    check(start["detail"]["hostUid"] == a1[1], "the start event says which", start["detail"])


def test_policy_names_the_agent_and_may_make_the_trail_best_effort():
    # "audit": {"agent": ...} names the runs' agent (--agent wins);
    # "trail": "best-effort" lets a run go on, said, when the store cannot
    # be written, where the default (required) stops it with 125.
    pol = os.path.join(BASE, "audit-policy.json")
    with open(pol, "w") as f:
        f.write('{"ward": 1, "extends": "minimal", "audit": {"agent": "from-policy"}}')
    code, out, err = ward("run", "--policy", pol, "--cwd", "/", "--", "sh", "-c", 'echo "$WARD_AGENT"')
    check(code == 0 and out.strip() == "from-policy" and len(events("--agent", "from-policy", "--kind", "start")) == 1,
          "the policy's agent, inside and on the events", (out, err))
    code, out, err = ward("run", "--policy", pol, "--agent", "from-flag", "--cwd", "/", "--", "sh", "-c", 'echo "$WARD_AGENT"')
    check(code == 0 and out.strip() == "from-flag", "--agent wins", (out, err))
    marker = os.path.join(BASE, "best-effort-ran")
    bad = "/proc/self/no-such/audit.db"
    code, _, err = ward("run", "--policy", pol, "--write", BASE, "--cwd", "/", "--", "touch", marker, db=bad)
    check(code == 125 and not os.path.exists(marker), "required (the default): an unwritable store stops it", err)
    with open(pol, "w") as f:
        f.write('{"ward": 1, "extends": "minimal", "audit": {"trail": "best-effort"}}')
    code, _, err = ward("run", "--policy", pol, "--write", BASE, "--cwd", "/", "--", "touch", marker, db=bad)
    check(code == 0 and os.path.exists(marker) and "without its trail" in err,
          "best-effort: it runs, and says it has no trail", (code, err))
    # A held sandbox alike: its start and each exec.
    code, out, err = ward("provision", "--policy", pol, "--name", "be-held", "--cwd", "/", db=bad)
    check(code == 0, "provision best-effort", err)
    try:
        code, _, err = ward("start", "be-held", db=bad)
        check(code == 0, "best-effort: the held sandbox starts without its store", (code, err))
        code, out, err = ward("exec", "be-held", "--", "echo", "ran", db=bad)
        check(code == 0 and out.strip() == "ran" and "without its trail" in err,
              "and its exec runs, saying it has no trail", (code, out, err))
    finally:
        ward("deprovision", "be-held")
    with open(pol, "w") as f:
        f.write('{"ward": 1, "extends": "minimal"}')
    code, out, err = ward("provision", "--policy", pol, "--name", "req-held", "--cwd", "/", db=bad)
    check(code == 0, "provision required", err)
    try:
        code, _, err = ward("start", "req-held", db=bad)
        check(code == 125 and "audit" in err, "required: the held sandbox does not start (125)", (code, err))
    finally:
        ward("deprovision", "req-held")


def test_fails_closed_when_the_store_cannot_be_written():
    marker = os.path.join(BASE, "ran-marker")
    bad = "/proc/self/no-such/audit.db"
    code, _, err = ward("run", "--agent", "x", "--profile", "minimal", "--write", BASE, "--",
                        "sh", "-c", "touch " + marker, db=bad)
    check(code == 125 and "audit" in err and bad.rsplit("/", 1)[0] in err, "an unwritable store: 125, naming it", err)
    check(not os.path.exists(marker), "nothing ran")
    code, _, err = ward("run", "--agent", "x", "--profile", "minimal", "--write", BASE, "--", "sh", "-c", "touch " + marker)
    check(code == 0 and os.path.exists(marker), "control: with a writable store it runs", err)
    junk = os.path.join(BASE, "junk.db")
    with open(junk, "wb") as f:
        f.write(b"j" * 8192)
    code, _, err = ward("audit", db=junk)
    check(code == 125 and junk in err and "not a database" in err, "a damaged store: 125, naming it", err)
    code, _, err = ward("run", "--profile", "minimal", "--", "true", db=junk)
    check(code == 125 and junk in err, "a run with a damaged store fails closed", err)


def test_survives_kill_of_ward():
    env = dict(os.environ, WARD_AUDIT_DB=DB)
    marker = "sleep 4711.%d" % os.getpid()
    p = subprocess.Popen([WARD, "run", "--agent", "killed", "--profile", "minimal", "--cwd", "/", "--",
                          "sh", "-c", marker], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Killed once the sleep runs: its exec event (written as it happens) is
    # the sign.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(e["detail"].get("argv", [None])[0] == "sleep"
                                                  for e in events("--agent", "killed", "--kind", "exec")):
        time.sleep(0.1)
    p.send_signal(signal.SIGKILL)
    p.wait()
    ev = events("--agent", "killed")
    check([e["kind"] for e in ev][:2] == ["start", "exec"] and ev[1]["detail"]["argv"] == ["sh", "-c", marker]
          and all(e["kind"] == "exec" for e in ev[1:]),
          "the start and the execs written before the kill are there; no exit", ev)
    deadline = time.monotonic() + 10
    while True:
        left = subprocess.run(["pgrep", "-f", marker], capture_output=True).stdout.split()
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    check(not left, "the sandbox died with ward", left)
    code, out, err = ward("audit", "summary", "--sandbox", ev[0]["sandbox"])
    check(code == 0 and "no exit recorded" in out, "the summary says the run has no exit", (out, err))
    check(run_env("killed")[0] == "killed", "control: the store takes the next run")
    check(len(events("--agent", "killed", execs=False)) == 3, "and records it")


def test_store_hidden_from_the_sandbox():
    ws = os.path.join(BASE, "ws")
    os.makedirs(os.path.join(ws, "other"), exist_ok=True)
    db = os.path.join(ws, "state", "audit.db")
    code, out, err = ward("run", "--agent", "nosy", "--profile", "minimal", "--write", ws, "--cwd", ws, "--",
                          "sh", "-c", "ls state; echo ls=$?; echo x > state/audit.db; echo w=$?; ls other; echo c=$?",
                          db=db)
    check(code == 0, "run", err)
    check("ls=2" in out and "Permission denied" in err and "w=2" in out, "the store's directory: EACCES inside",
          (out, err))
    check("c=0" in out, "control: the rest of the grant is seen", out)
    check(len(events("--agent", "nosy", db=db, execs=False)) == 2, "and the store holds the run", db)


def test_no_grant_reaches_into_the_store():
    # A grant deeper than a deny is mounted over it: one at or beneath the
    # store's directory would give the sandbox the trail to read, rewrite
    # or erase. Refused (123), by name and by pattern; control: a grant
    # above it shows the rest and an unreadable directory in its place.
    ws = os.path.join(BASE, "ws2")
    os.makedirs(os.path.join(ws, "other"), exist_ok=True)
    db = os.path.join(ws, "state", "audit.db")
    check(ward("run", "--agent", "a", "--profile", "minimal", "--cwd", "/", "--", "true", db=db)[0] == 0, "make the store")
    for grant in (db, os.path.join(ws, "state"), os.path.join(ws, "state", "*"), os.path.join(ws, "st*", "audit.db")):
        code, _, err = ward("run", "--profile", "minimal", "--write", grant, "--cwd", "/", "--", "true", db=db)
        check(code == 123 and "where ward keeps its own state" in err, "--write " + grant + ": refused (123)", (code, err))
    code, out, err = ward("run", "--profile", "minimal", "--read", ws, "--cwd", "/", "--", "sh", "-c",
                          f"cat {db} >/dev/null; echo r=$?; ls {ws}/other; echo c=$?", db=db)
    check(code == 0 and "r=1" in out and "Permission denied" in err and "c=0" in out,
          "control: beneath a grant of its parent the store is unreadable, the rest is seen", (out, err))
    if os.getuid() != 0:
        print("  skip: the bind-mount alias case needs root (mount --bind)")
        return
    # The same directory through a bind mount of its parent: hidden there too.
    alias = os.path.join(BASE, "alias")
    os.makedirs(alias, exist_ok=True)
    subprocess.run(["mount", "--bind", ws, alias], check=True)
    try:
        code, out, err = ward("run", "--profile", "minimal", "--read", alias, "--cwd", "/", "--", "sh", "-c",
                              f"cat {alias}/state/audit.db >/dev/null; echo r=$?; ls {alias}/other; echo c=$?", db=db)
        check(code == 0 and "r=1" in out and "Permission denied" in err and "c=0" in out,
              "through a bind mount of its parent: unreadable (EACCES); control: the rest is seen", (out, err))
        code, _, err = ward("run", "--profile", "minimal", "--read", os.path.join(alias, "state"), "--cwd", "/",
                            "--", "true", db=db)
        check(code == 123 and "where ward keeps its own state" in err, "a grant of the alias itself: refused", err)
    finally:
        subprocess.run(["umount", alias], check=True)


def test_runtime_dir_made_before_a_sandbox_could_see_it():
    # A runtime directory that does not exist yet is made before the
    # sandbox starts, and hidden from it: a sandbox with a grant above it
    # cannot read or rewrite the held sandboxes' records made there later.
    ws = os.path.join(BASE, "ws3")
    os.makedirs(ws, exist_ok=True)
    rt = os.path.join(ws, "rt")
    env = dict(os.environ, WARD_AUDIT_DB=DB, WARD_RUNTIME_DIR=rt)
    p = subprocess.run([WARD, "run", "--profile", "minimal", "--write", ws, "--cwd", "/", "--", "sh", "-c",
                        f"ls {rt}; echo r=$?; touch {ws}/x; echo w=$?"], env=env, cwd=BASE, capture_output=True)
    out, err = p.stdout.decode(), p.stderr.decode()
    check(p.returncode == 0 and "r=2" in out and "Permission denied" in err, "the runtime directory: EACCES inside",
          (out, err))
    check("w=0" in out, "control: the rest of the grant is writable", out)


def test_tampered_store_refused():
    # A second name for the store, or a trigger planted in it (one that
    # deletes each event as it is written): refused with the reason, and
    # the run does not run (125). Control: the same store without them.
    import sqlite3
    d = os.path.join(BASE, "tamper")
    os.makedirs(d, exist_ok=True)
    db = os.path.join(d, "audit.db")
    ok = ["run", "--profile", "minimal", "--cwd", "/", "--", "true"]
    check(ward(*ok, db=db)[0] == 0, "control: the store is written")
    os.link(db, db + ".alias")
    code, _, err = ward(*ok, db=db)
    check(code == 125 and "hard links" in err, "a store with two names: refused (125)", (code, err))
    os.unlink(db + ".alias")
    check(ward(*ok, db=db)[0] == 0, "control: one name again")
    c = sqlite3.connect(db)
    c.execute("CREATE TRIGGER eat AFTER INSERT ON events BEGIN DELETE FROM events; END")
    c.commit()
    c.close()
    code, _, err = ward(*ok, db=db)
    check(code == 125 and "trigger or view" in err and "eat" in err, "a planted trigger: refused (125)", (code, err))
    code, _, err = ward("audit", db=db)
    check(code == 125 and "trigger or view" in err, "and the reader refuses it too", (code, err))


def test_exec_recorded():
    # Every `ward exec` into a held sandbox is recorded against the agent it
    # was provisioned for and the sandbox's id, which the command sees;
    # its egress decisions too. An unwritable store: the exec does not run.
    # Its own store, chosen at provision: an exec's caller cannot send the
    # events elsewhere with WARD_AUDIT_DB.
    held_dir = os.path.join(BASE, "heldstore")
    held_db = os.path.join(held_dir, "audit.db")
    code, out, err = ward("provision", "--profile", "minimal", "--agent", "held-agent", "--name", "held",
                          "--cwd", "/", "--allow-net", "127.0.0.1:9", db=held_db)
    check(code == 0, "provision", err)
    sid = out.strip()
    try:
        check(ward("start", "held")[0] == 0, "start")
        probe = ("import os, socket\n"
                 "print(os.environ['WARD_AGENT'], os.environ['WARD_SANDBOX_ID'])\n"
                 "s = socket.socket(); s.settimeout(5)\n"
                 "try: s.connect(('192.0.2.1', 80))\n"
                 "except OSError as e: print('errno', e.errno)\n")
        code, out, err = ward("exec", "held", "--env", "WARD_SANDBOX_ID=forged", "--env", "WARD_AGENT=other", "--",
                              "python3", "-c", probe)
        check(code == 0 and out.split()[:2] == ["held-agent", sid] and "errno 111" in out,
              "the identity inside, which the exec's caller cannot set; the connection refused (ECONNREFUSED)",
              (out, err))
        ev = events("--sandbox", sid, db=held_db, execs=False)
        check([e["kind"] for e in ev] == ["start", "egress", "exit"], "start, the decision, exit", ev)
        execs = events("--sandbox", sid, "--kind", "exec", db=held_db)
        check(len(execs) == 1 and execs[0]["agent"] == "held-agent" and execs[0]["detail"]["ppid"] == 1,
              "the program the exec ran, recorded by the sandbox's supervisor", execs)
        if os.getuid() == 0:
            check(execs[0]["detail"]["argv"][:2] == ["python3", "-c"], "with its argv", execs)
        else:
            # init's children are not dumpable until they execute: a
            # supervisor that is not root cannot read their memory (the
            # start event holds the argv; docs/audit.md).
            check("EPERM" in execs[0]["detail"]["unreadable"], "unprivileged: its pid, the argv unread (EPERM)", execs)
        check(events("--sandbox", sid) == [], "nothing in the exec caller's own store", DB)
        check(all(e["agent"] == "held-agent" for e in ev) and ev[0]["detail"]["via"] == "exec"
              and ev[0]["detail"]["name"] == "held" and ev[0]["detail"]["policyDigest"].startswith("sha256:"),
              "recorded against the sandbox's agent, with its name and policy digest", ev[0])
        check(ev[1]["decision"] == "deny" and ev[1]["detail"]["address"] == "192.0.2.1", "the denial", ev[1])
        # The store's directory replaced by a file: it cannot be written.
        os.rename(held_dir, held_dir + ".away")
        with open(held_dir, "w"):
            pass
        code, _, err = ward("exec", "held", "--", "true")
        os.unlink(held_dir)
        os.rename(held_dir + ".away", held_dir)
        check(code == 125 and "audit" in err, "an unwritable store: the exec fails closed (125)", (code, err))
        check(len(events("--sandbox", sid, db=held_db, execs=False)) == 3, "and nothing more is recorded")
        code, _, err = ward("exec", "held", "--", "true", db=os.path.join(BASE, "elsewhere", "audit.db"))
        check(code == 0 and len(events("--sandbox", sid, db=held_db, execs=False)) == 5,
              "control: the next exec is recorded, in the store of the provision", err)
        code, out, err = ward("audit", "summary", "--sandbox", sid, "--json", db=held_db)
        check(code == 0, "audit summary", err)
        summary = json.loads(out)
        check(summary["agent"] == "held-agent" and len(summary["commands"]) == 2
              and [c["exit"]["detail"]["exitStatus"] for c in summary["commands"]] == [0, 0]
              and len(summary["denied"]) == 1 and summary["denied"][0]["detail"]["address"] == "192.0.2.1",
              "the summary: two commands and how they ended, the one denial", summary)
        code, out, err = ward("audit", "summary", "--sandbox", "nosuchsandbox", db=held_db)
        check(code == 1 and "no events" in err, "a sandbox with no events: 1, said", (code, err))
    finally:
        ward("deprovision", "held")


def test_ocsf_and_syslog_export():
    # --format ocsf: one OCSF event per line with the base attributes a SIEM
    # needs, the decision as action and disposition; --format syslog: one
    # datagram per event, authpriv.warning for a denial, info otherwise.
    code, out, err = ward("run", "--agent", "export", "--profile", "minimal", "--cwd", "/", "--allow-net", "127.0.0.1:9",
                          "--", "python3", "-c", "import socket\ntry: socket.create_connection(('192.0.2.1', 80), 5)\n"
                          "except OSError as e: print(e.errno)")
    check(code == 0 and "111" in out, "the run", (out, err))
    code, out, err = ward("audit", "--agent", "export", "--format", "ocsf", "--kind", "exec")
    check(code == 0, "--format ocsf --kind exec", err)
    ex = json.loads(out.splitlines()[0])
    check(ex["class_uid"] == 1007 and ex["activity_id"] == 1 and ex["process"]["file"]["path"].endswith("python3")
          and ex["process"]["cmd_line"].startswith("python3 -c") and ex["process"]["parent_process"]["pid"] == 1,
          "an exec: Process Activity, Launch, with the file and the parent", ex)
    code, out, err = ward("audit", "--agent", "export", "--format", "ocsf")
    check(code == 0, "--format ocsf", err)
    ev = [json.loads(l) for l in out.splitlines()]
    ev = [o for o in ev if o["unmapped"]["kind"] != "exec"]
    check(len(ev) == 3, "start, the denial, exit", ev)
    for o in ev:
        check(o["type_uid"] == o["class_uid"] * 100 + o["activity_id"] and o["category_uid"] == o["class_uid"] // 1000
              and isinstance(o["time"], int) and o["metadata"]["product"]["name"] == "ward"
              and o["metadata"]["version"] and o["severity_id"] in (1, 3) and o["unmapped"]["agent"] == "export",
              "OCSF base attributes", o)
    start, deny, end = ev
    check(start["class_uid"] == 1007 and start["activity_id"] == 1 and "python3" in start["process"]["cmd_line"]
          and start["actor"]["user"]["uid"] == str(os.getuid()), "the start: Process Activity, Launch", start)
    check(deny["class_uid"] == 4001 and deny["disposition_id"] == 2 and deny["action_id"] == 2
          and deny["dst_endpoint"] == {"ip": "192.0.2.1", "port": 80} and deny["severity_id"] == 3,
          "the denial: Network Activity, Blocked", deny)
    check(end["class_uid"] == 1007 and end["activity_id"] == 2 and end["status_code"] == "0", "the exit: Terminate", end)
    path = os.path.join(BASE, "log.sock")
    log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    log.bind(path)
    log.settimeout(5)
    try:
        code, _, err = ward("audit", "--agent", "export", "--format", "syslog", "--syslog-socket", path)
        check(code == 0, "--format syslog", err)
        got = [log.recv(1 << 20).decode() for _ in range(4)]
    finally:
        log.close()
    pri = [g[:g.index(">") + 1] for g in got]
    check(pri == ["<86>", "<86>", "<84>", "<86>"], "authpriv.info, authpriv.warning for the denial, info", got)
    check(all(json.loads(g.split("]: ", 1)[1])["agent"] == "export" for g in got), "each message holds the event", got)
    code, _, err = ward("audit", "--format", "syslog", "--syslog-socket", os.path.join(BASE, "nolog.sock"))
    check(code == 125 and "nolog.sock" in err, "no log listening: 125, naming the socket", (code, err))


FILE_PROBE = """
import errno, os, sys
d, hostfile = sys.argv[1], sys.argv[2]
def t(name, f):
    try:
        f(); print(name, 'ok')
    except OSError as e:
        print(name, errno.errorcode[e.errno])
t('hidden', lambda: open(d + '/hidden/s').read())
t('ro-write', lambda: os.close(os.open(d + '/ro/f', os.O_WRONLY)))
t('deny', lambda: open(d + '/rw/secret/k').read())
t('private', lambda: open(hostfile).read())
t('link', lambda: open(d + '/rw/link').read())
t('missing', lambda: open(d + '/none').read())
t('ro-read', lambda: open(d + '/ro/f').read())
t('rw-write', lambda: open(d + '/rw/out', 'w').write('x'))
t('own-tmp', lambda: (open('/tmp/own', 'w').write('x'), open('/tmp/own').read()))
"""


def file_tree():
    """A host tree outside ward's state (BASE holds it): ro/f, rw/secret/k,
    hidden/s and rw/link -> hidden/s; and a policy granting ro read-only and
    rw writable, denying rw/secret, recording denied file accesses."""
    d = tempfile.mkdtemp(prefix="ward-files-", dir="/var/tmp")
    os.chmod(d, 0o755)
    for sub in ("ro", "rw", "rw/secret", "hidden"):
        os.mkdir(os.path.join(d, sub))
    for f in ("ro/f", "rw/secret/k", "hidden/s"):
        with open(os.path.join(d, f), "w") as out:
            out.write("x")
    os.symlink(os.path.join(d, "hidden", "s"), os.path.join(d, "rw", "link"))
    os.mkdir(os.path.join(d, "hidden", "sub"))
    os.symlink(os.path.join(d, "hidden", "sub"), os.path.join(d, "rw", "sub"))
    os.symlink(os.path.join(d, "ro", "created"), os.path.join(d, "rw", "dangling"))
    pol = os.path.join(d, "policy.json")
    with open(pol, "w") as f:
        json.dump({"ward": 1, "extends": "minimal",
                   "filesystem": {"read": [d + "/ro"], "write": [d + "/rw"], "deny": [d + "/rw/secret"]},
                   "audit": {"files": "denied"}}, f)
    return d, pol


def test_file_denials_recorded():
    # audit.files "denied": each file access the policy does not grant is a
    # "file" event with its operation, path and reason, while the kernel
    # refuses it (the errno the program sees); what is granted, what the
    # host does not have and the sandbox's own /tmp are not reported.
    d, pol = file_tree()
    hostfile = os.path.join(BASE, "hostfile")  # the host's /tmp: hidden by the private one
    with open(hostfile, "w") as f:
        f.write("h")
    try:
        code, out, err = ward("run", "--agent", "files", "--policy", pol, "--cwd", "/", "--",
                              "/usr/bin/python3", "-c", FILE_PROBE, d, hostfile)
        got = dict(l.split() for l in out.splitlines())
        check(code == 0 and got == {"hidden": "ENOENT", "ro-write": "EROFS", "deny": "EACCES", "private": "ENOENT",
                                    "link": "ENOENT", "missing": "ENOENT", "ro-read": "ok", "rw-write": "ok",
                                    "own-tmp": "ok"}, "what the kernel answered", (out, err))
        ev = events("--agent", "files", "--kind", "file")
        mine = [(e["detail"]["operation"], e["detail"]["path"], e["detail"].get("resolved", ""), e["detail"]["reason"],
                 e["detail"].get("rule", "")) for e in ev if e["detail"]["path"].startswith((d, hostfile))]
        check(mine == [("read", d + "/hidden/s", "", "not granted", ""),
                       ("write", d + "/ro/f", "", "read-only", d + "/ro"),
                       ("read", d + "/rw/secret/k", "", "denied by a rule", d + "/rw/secret"),
                       ("read", hostfile, "", "hidden by the sandbox's private /tmp", "/tmp"),
                       ("read", d + "/rw/link", d + "/hidden/s", "not granted", "")],
              "one event per denied access, in order, with its reason; none for the granted, missing or own", (mine, ev))
        check(all(e["decision"] == "deny" and e["agent"] == "files" and e["detail"]["pid"] > 1 for e in ev),
              "denials, of the agent, with the pid in the sandbox", ev)
        check(len(events("--agent", "files", "--denied")) == len(ev), "--denied shows them")
        code, out, err = ward("audit", "--agent", "files", "--format", "ocsf", "--kind", "file")
        o = [json.loads(l) for l in out.splitlines() if json.loads(l)["file"]["path"] == d + "/hidden/s"][0]
        check(code == 0 and o["class_uid"] == 1001 and o["activity_id"] == 2 and o["disposition_id"] == 2
              and o["file"]["path"] == d + "/hidden/s", "OCSF: File System Activity, Read, Blocked", o)
        # Control: the default level watches no file access.
        code, out, err = ward("run", "--agent", "nofiles", "--profile", "minimal", "--read", d + "/ro", "--cwd", "/",
                              "--", "/usr/bin/python3", "-c", FILE_PROBE, d, hostfile)
        check(code == 0 and "hidden ENOENT" in out, "the same probe without audit.files", (out, err))
        check(events("--agent", "nofiles", "--kind", "file") == [], "records no file event")
        # A held sandbox records them too, in the store of its provision.
        code, out, err = ward("provision", "--policy", pol, "--agent", "held-files", "--name", "heldfiles", "--cwd", "/")
        check(code == 0, "provision", err)
        sid = out.strip()
        try:
            check(ward("start", "heldfiles")[0] == 0, "start")
            code, out, err = ward("exec", "heldfiles", "--", "cat", d + "/hidden/s")
            check(code == 1 and "No such file" in err, "cat of what is not granted: ENOENT", (code, err))
            ev = [e for e in events("--sandbox", sid, "--kind", "file") if e["detail"]["path"].startswith(d)]
            check([(e["agent"], e["detail"]["path"], e["detail"]["reason"]) for e in ev]
                  == [("held-files", d + "/hidden/s", "not granted")], "the held sandbox's denial", ev)
        finally:
            ward("deprovision", "heldfiles")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_held_egress_written_as_it_happens():
    # A held sandbox's supervisor writes each network decision as it is
    # made (not when the exec ends), once, whichever exec made it.
    held_db = os.path.join(BASE, "heldlive", "audit.db")
    code, out, err = ward("provision", "--profile", "minimal", "--agent", "held-live", "--name", "heldlive",
                          "--cwd", "/", "--allow-net", "127.0.0.1:9", db=held_db)
    check(code == 0, "provision", err)
    sid = out.strip()
    env = dict(os.environ, WARD_AUDIT_DB=held_db, WARD_RUNTIME_DIR=os.path.join(BASE, "rt"))
    proc = None
    try:
        check(ward("start", "heldlive")[0] == 0, "start")
        probe = ("import socket, time\n"
                 "s = socket.socket(); s.settimeout(5)\n"
                 "try: s.connect(('192.0.2.1', 80))\n"
                 "except OSError as e: print('errno', e.errno, flush=True)\n"
                 "time.sleep(30)\n")
        proc = subprocess.Popen([WARD, "exec", "heldlive", "--", "python3", "-c", probe], env=env, cwd=BASE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 20
        found = []
        while time.time() < deadline and not found:
            found = events("--sandbox", sid, "--kind", "egress", db=held_db) if os.path.exists(held_db) else []
            time.sleep(0.1)
        check(proc.poll() is None, "the exec still runs")
        check(len(found) == 1 and found[0]["decision"] == "deny" and found[0]["detail"]["address"] == "192.0.2.1"
              and found[0]["agent"] == "held-live", "its denial is in the store while it runs", found)
        proc.kill()
        proc.wait(timeout=30)
        check(ward("stop", "heldlive")[0] == 0, "stop")
        check(len(events("--sandbox", sid, "--kind", "egress", db=held_db)) == 1, "written once", held_db)
    finally:
        if proc and proc.poll() is None:
            proc.kill()
        ward("deprovision", "heldlive")


def test_held_exec_counts_only_its_own_drops():
    # `ward exec --json` lists at most 400 egress decisions made while it
    # ran and counts the rest (egressDropped): a flood in one exec is that
    # exec's count, not the next one's (the supervisor compared with the
    # count at its start, which it never took: each exec counted every drop
    # since the sandbox started).
    held_db = os.path.join(BASE, "helddrop", "audit.db")
    code, out, err = ward("provision", "--profile", "minimal", "--agent", "held-drop", "--name", "helddrop",
                          "--cwd", "/", "--allow-net", "127.0.0.1:9", db=held_db)
    check(code == 0, "provision", err)
    flood = ("import socket\n"
             "for i in range(2500):\n"
             "    s = socket.socket(); s.setblocking(False)\n"
             "    try: s.connect(('192.0.2.1', 80))\n"
             "    except OSError: pass\n"
             "    s.close()\n")
    try:
        check(ward("start", "helddrop", db=held_db)[0] == 0, "start")
        code, _, err = ward("exec", "helddrop", "--json", "--", "python3", "-c", flood, db=held_db, timeout=120)
        first = json.loads(err.strip().splitlines()[-1]) if err.strip() else {}
        check(code == 0 and len(first.get("egress", [])) == 400 and first.get("egressDropped", 0) >= 2100,
              "the flood: 400 listed, the rest counted", {k: v for k, v in first.items() if k != "egress"})
        code, _, err = ward("exec", "helddrop", "--json", "--", "true", db=held_db)
        second = json.loads(err.strip().splitlines()[-1]) if err.strip() else {}
        check(code == 0 and "egress" not in second and "egressDropped" not in second,
              "the next exec made no decision: none listed, none counted", second)
    finally:
        ward("deprovision", "helddrop", db=held_db)


EVASION_PROBE = """
import errno, os, sys
d = sys.argv[1]
def t(name, f):
    try:
        f(); print(name, 'ok')
    except OSError as e:
        print(name, errno.errorcode[e.errno])
t('dotdot', lambda: os.close(os.open(d + '/rw/sub/../s', os.O_RDONLY)))
t('dangling', lambda: os.close(os.open(d + '/rw/dangling', os.O_WRONLY | os.O_CREAT)))
t('stat-link', lambda: os.stat(d + '/rw/link'))
t('lstat-link', lambda: os.lstat(d + '/rw/link'))
t('chown', lambda: os.chown(d + '/hidden/s', -1, -1))
t('getxattr', lambda: os.getxattr(d + '/hidden/s', 'user.x'))
t('proc-self', lambda: open('/proc/self/status').read())
t('proc-exe', lambda: os.readlink('/proc/self/exe'))
t('root-link', lambda: os.lstat('/bin'))
t('root-list', lambda: [os.lstat('/' + n) for n in os.listdir('/')])
os.mkdir('/tmp/x')
t('proc-dotdot', lambda: open('/proc/self/../..' + d + '/hidden/s3').read())
t('tmp-dotdot', lambda: open('/tmp/x/../..' + d + '/rw/secret/k').read())
t('proc1-dotdot', lambda: os.close(os.open('/proc/1/../..' + d + '/ro/f', os.O_WRONLY)))
fd = os.open(d + '/ro/f', os.O_PATH)
t('fd-reopen', lambda: os.close(os.open('/proc/self/fd/%d' % fd, os.O_WRONLY)))
os.mkdir(d + '/rw/dd'); os.chdir(d + '/rw/dd'); os.rmdir(d + '/rw/dd')
t('deleted-cwd', lambda: open('../../hidden/s2').read())
"""


def test_file_denials_not_evaded():
    # What a red-team review found unrecorded or recorded falsely: `..`
    # after a link (the kernel leaves the link's target), a new name through
    # a dangling link, stat (not lstat) of a planted link, chown and xattr
    # calls; and no event for the sandbox's own /proc/self or for ward's
    # links in its root (ls -l /).
    d, pol = file_tree()
    for f in ("hidden/s2", "hidden/s3"):
        with open(os.path.join(d, f), "w") as out:
            out.write("x")
    try:
        code, out, err = ward("run", "--agent", "evade", "--policy", pol, "--cwd", "/", "--",
                              "/usr/bin/python3", "-c", EVASION_PROBE, d)
        got = dict(l.split() for l in out.splitlines())
        check(code == 0 and got == {"dotdot": "ENOENT", "dangling": "EROFS", "stat-link": "ENOENT", "lstat-link": "ok",
                                    "chown": "ENOENT", "getxattr": "ENOENT", "proc-self": "ok", "proc-exe": "ok",
                                    "root-link": "ok", "root-list": "ok", "proc-dotdot": "ENOENT",
                                    "tmp-dotdot": "EACCES", "proc1-dotdot": "EROFS", "fd-reopen": "EROFS",
                                    "deleted-cwd": "ENOENT"}, "what the kernel answered", (out, err))
        ev = events("--agent", "evade", "--kind", "file")
        def fd_path(p):
            return "/proc/self/fd/N" if p.startswith("/proc/self/fd/") else p
        mine = sorted((e["detail"]["operation"], fd_path(e["detail"]["path"]), e["detail"].get("resolved", ""),
                       e["detail"]["reason"]) for e in ev
                      if e["detail"]["path"].startswith(d) or e["detail"].get("resolved", "").startswith(d))
        check(mine == sorted([("read", d + "/rw/s", d + "/hidden/s", "not granted"),
                              ("create", d + "/rw/dangling", d + "/ro/created", "read-only"),
                              ("stat", d + "/rw/link", d + "/hidden/s", "not granted"),
                              ("write", d + "/hidden/s", "", "not granted"),
                              ("stat", d + "/hidden/s", "", "not granted"),
                              ("read", d + "/hidden/s3", "", "not granted"),
                              ("read", d + "/rw/secret/k", "", "denied by a rule"),
                              ("write", d + "/ro/f", "", "read-only"),
                              ("write", "/proc/self/fd/N", d + "/ro/f", "read-only"),
                              ("read", d + "/hidden/s2", "", "not granted")]),
              "each refused access recorded, judged where the kernel went", mine)
        own = [e for e in ev if (e["detail"]["path"].startswith("/proc") and not e["detail"].get("resolved"))
               or e["detail"]["path"] in ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")]
        check(own == [], "nothing for /proc/self or ward's own root links", own)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_held_exec_with_a_locked_store():
    # A store another process holds locked: the exec's start cannot be
    # written, so it is refused (125, nothing ran); once the store is free,
    # that start is there with an exit saying it was refused. With
    # audit.trail "best-effort" the same exec runs. Under a memory limit:
    # where ward's supervisor keeps it (no memory cgroup: unprivileged
    # here), the process waiting 2 s at its gate, unreadable until its exec
    # as init is, must not be taken for one that hides its memory (the
    # sandbox was stopped: "cannot read the memory ... for 1020 ms").
    import sqlite3
    for trail, name in (("required", "lockreq"), ("best-effort", "lockbe")):
        db = os.path.join(BASE, name, "audit.db")
        pol = os.path.join(BASE, name + ".json")
        with open(pol, "w") as f:
            json.dump({"ward": 1, "extends": "minimal", "filesystem": {"write": [FILES_DIR]},
                       "limits": {"memoryMiB": 256}, "audit": {"trail": trail}}, f)
        code, out, err = ward("provision", "--policy", pol, "--name", name, "--cwd", "/", db=db)
        check(code == 0, "provision", err)
        sid = out.strip()
        marker = os.path.join(FILES_DIR, name)
        try:
            check(ward("start", name)[0] == 0, "start")
            code, _, err = ward("exec", name, "--", "true")
            check(code == 0 and "warning" not in err, "control: an exec with the store free, no warning", (code, err))
            lock = sqlite3.connect(db, timeout=0, isolation_level=None)
            lock.execute("BEGIN EXCLUSIVE")
            try:
                code, _, err = ward("exec", name, "--", "touch", marker)
            finally:
                lock.execute("COMMIT")
                lock.close()
            if trail == "required":
                check(code == 125 and "audit" in err and not os.path.exists(marker),
                      "required: refused (125), nothing ran", (code, err))
                deadline = time.time() + 10
                refused = []
                while time.time() < deadline and not refused:
                    ev = events("--sandbox", sid, db=db, execs=False)
                    starts = {e["detail"]["run"]: e for e in ev if e["kind"] == "start"}
                    refused = [e for e in ev if e["kind"] == "exit" and "refused" in e["detail"].get("error", "")
                               and e["detail"]["run"] in starts]
                    time.sleep(0.2)
                check(len(refused) == 1 and refused[0]["detail"]["exitStatus"] == 125,
                      "its start, written later, paired with an exit saying it was refused", ev)
            else:
                check(code == 0 and os.path.exists(marker) and "record written when the store takes it" in err,
                      "best-effort: it runs, and its caller is told its record is late", (code, err))
            code, out, err = ward("exec", name, "--", "true")
            check(code == 0, "the sandbox still serves after the wait at the gate", (code, out, err))
        finally:
            ward("deprovision", name)


CASES = [test_identity_on_every_event, test_filters, test_egress_decisions_recorded, test_limit_recorded,
         test_untrusted_fields_escaped, test_fails_closed_when_the_store_cannot_be_written,
         test_survives_kill_of_ward, test_store_hidden_from_the_sandbox, test_exec_events,
         test_follow_streams_events_as_they_happen, test_no_grant_reaches_into_the_store,
         test_tampered_store_refused, test_held_exec_counts_only_its_own_drops, test_runtime_dir_made_before_a_sandbox_could_see_it, test_exec_recorded,
         test_learn_then_run_then_deny_the_variation, test_each_agent_its_own_host_uid,
         test_policy_names_the_agent_and_may_make_the_trail_best_effort,
         test_ocsf_and_syslog_export, test_file_denials_recorded,
         test_held_egress_written_as_it_happens, test_file_denials_not_evaded,
         test_held_exec_with_a_locked_store]


def main():
    global WARD, BASE, DB, FILES_DIR
    ap = argparse.ArgumentParser()
    ap.add_argument("--ward", required=True)
    ap.add_argument("--only", action="append")
    a = ap.parse_args()
    WARD = os.path.abspath(a.ward)
    BASE = tempfile.mkdtemp(prefix="ward-audit-")
    os.chmod(BASE, 0o755)
    DB = os.path.join(BASE, "store", "audit.db")
    os.mkdir(os.path.join(BASE, "rt"), 0o700)
    FILES_DIR = tempfile.mkdtemp(prefix="ward-audit-files-", dir="/var/tmp")
    os.chmod(FILES_DIR, 0o755)
    failed = []
    try:
        for case in CASES:
            if a.only and case.__name__ not in a.only and case.__name__[5:] not in a.only:
                continue
            print(f"[ RUN  ] {case.__name__}", flush=True)
            try:
                case()
                print(f"[  OK  ] {case.__name__}", flush=True)
            except Exception:
                traceback.print_exc()
                print(f"[FAILED] {case.__name__}", flush=True)
                failed.append(case.__name__)
    finally:
        shutil.rmtree(BASE, ignore_errors=True)
        shutil.rmtree(FILES_DIR, ignore_errors=True)
    print(f"{len(failed)} failed: {failed}" if failed else "all passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
