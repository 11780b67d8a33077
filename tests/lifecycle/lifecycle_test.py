#!/usr/bin/env python3
"""Held sandboxes: ward provision / start / exec / stop / deprovision / ls.

Each case asserts the outcome and its reason (exit status, message, errno)
and has a control where the same thing is allowed. Runs as whoever calls it
(ctest: root, and the test user through scripts/as-test-user.sh); every
sandbox lives in a runtime directory the test makes (WARD_RUNTIME_DIR).
"""
import argparse
import contextlib
import json
import os
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

WARD = None
RT = None
WS = None

EXIT_RUNTIME_DIR, EXIT_NAME_TAKEN, EXIT_NO_SANDBOX, EXIT_WRONG_STATE, EXIT_SUPERVISOR_GONE = 117, 118, 119, 120, 121


def ward(*args, stdin=None, timeout=30, env=None, input_bytes=None, cwd=None):
    e = dict(os.environ, WARD_RUNTIME_DIR=RT)
    if env:
        e.update(env)
    p = subprocess.run([WARD, *args], cwd=cwd or WS, env=e, stdin=stdin, input=input_bytes,
                       capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def check(cond, what, out=None):
    if not cond:
        raise AssertionError(what + ("" if out is None else "\n--- " + repr(out)))


def ls():
    code, out, err = ward("ls", "--json")
    check(code == 0, "ls", err)
    return {s["name"]: s for s in json.loads(out)}


def provision(name, *extra):
    code, out, err = ward("provision", "--profile", "workspace-write", "--name", name, *extra)
    check(code == 0, f"provision {name}", err)
    return out.strip()


def cleanup(*names):
    for n in names:
        ward("deprovision", n, "--grace-ms", "500")


def test_transitions():
    code, _, err = ward("exec", "nosuch", "--", "true")
    check(code == EXIT_NO_SANDBOX and "no sandbox" in err, "exec into an unknown sandbox: 119", (code, err))
    sid = provision("t-trans")
    check(len(sid) == 12, "provision prints the id", sid)
    check(ls()["t-trans"]["state"] == "provisioned", "provisioned")
    code, _, err = ward("provision", "--profile", "workspace-write", "--name", "t-trans")
    check(code == EXIT_NAME_TAKEN and "taken" in err, "a taken name: 118", (code, err))
    for cmd in (["exec", "t-trans", "--", "true"], ["stop", "t-trans"]):
        code, _, err = ward(*cmd)
        check(code == EXIT_WRONG_STATE and "provisioned" in err, f"{cmd[0]} of a provisioned sandbox: 120", (code, err))
    code, _, err = ward("start", "t-trans")
    check(code == 0, "start", err)
    check(ls()["t-trans"]["state"] == "running", "running")
    code, _, err = ward("start", sid)  # the id works as the name does
    check(code == EXIT_WRONG_STATE and "runs already" in err, "start of a running sandbox: 120", (code, err))
    code, out, err = ward("exec", sid, "--", "echo", "by-id")
    check(code == 0 and out == "by-id\n", "exec by id", (code, out, err))
    code, _, err = ward("stop", "t-trans")
    check(code == 0 and ls()["t-trans"]["state"] == "stopped", "stop", err)
    code, _, err = ward("exec", "t-trans", "--", "true")
    check(code == EXIT_WRONG_STATE and "stopped" in err, "exec into a stopped sandbox: 120", (code, err))
    code, _, err = ward("deprovision", "t-trans")
    check(code == 0 and "t-trans" not in ls(), "deprovision", err)
    check(sorted(os.listdir(RT)) == [".lock", "names"] and os.listdir(os.path.join(RT, "names")) == [],
          "nothing of it left on disk", os.listdir(RT))
    code, _, err = ward("deprovision", "t-trans")
    check(code == EXIT_NO_SANDBOX, "deprovision twice: 119", (code, err))


def test_bad_input_leaves_nothing():
    before = sorted(os.listdir(RT))
    bad = os.path.join(WS, "bad-policy.json")
    with open(bad, "w") as f:
        json.dump({"ward": 1, "extends": "workspace-write", "filesystem": {"read": ["/no/such/path"]}}, f)
    code, _, err = ward("provision", "--policy", bad, "--name", "t-bad")
    check(code == 123 and "/no/such/path" in err, "a policy that fails validation: 123 naming the path", (code, err))
    code, _, err = ward("provision", "--profile", "workspace-write", "--name", "bad/name")
    check(code == 122, "a bad name: 122", (code, err))
    check(sorted(os.listdir(RT)) == before and "t-bad" not in ls(), "no half-provisioned sandbox", os.listdir(RT))
    # A runtime directory others can enter is refused, and left as it is.
    wide = tempfile.mkdtemp(dir=os.path.dirname(RT))
    os.chmod(wide, 0o755)
    code, _, err = ward("ls", env={"WARD_RUNTIME_DIR": wide})
    check(code == EXIT_RUNTIME_DIR and "0755" in err, "a runtime directory of mode 0755: 117", (code, err))
    check(os.listdir(wide) == [], "nothing made in it")
    os.chmod(wide, 0o700)
    code, _, err = ward("ls", env={"WARD_RUNTIME_DIR": wide})
    check(code == 0, "control: the same directory at 0700", (code, err))
    shutil.rmtree(wide)


def test_state_persists_and_exit_statuses():
    provision("t-state")
    try:
        check(ward("start", "t-state")[0] == 0, "start")
        code, out, err = ward("exec", "t-state", "--", "sh", "-c", "echo kept > /tmp/f; echo $HOME > /tmp/home; echo x > $HOME/h")
        check(code == 0, "write /tmp and home", err)
        code, out, _ = ward("exec", "t-state", "--", "cat", "/tmp/f")
        check(code == 0 and out == "kept\n", "/tmp kept between execs", out)
        check(ward("stop", "t-state")[0] == 0, "stop")
        check(ward("start", "t-state")[0] == 0, "start again")
        code, out, err = ward("exec", "t-state", "--", "sh", "-c", 'cat /tmp/f; cat "$HOME/h"')
        check(code == 0 and out == "kept\nx\n", "/tmp and home kept across stop/start", (code, out, err))
        code, out, _ = ward("exec", "t-state", "--env", "A=1", "--cwd", "/tmp", "--", "sh", "-c", 'echo "$A $(pwd)"')
        check(code == 0 and out == "1 /tmp\n", "--env and --cwd", out)
        code, out, _ = ward("exec", "t-state", "--", "sh", "-c", 'echo "${A:-unset} $(pwd)"')
        check(out == f"unset {WS}\n", "the sandbox's environment and working directory are the provision's", out)
        check(ward("exec", "t-state", "--", "sh", "-c", "exit 7")[0] == 7, "exit status passes through")
        code, _, err = ward("exec", "t-state", "--", "no-such-command")
        check(code == 127 and "not found" in err, "not found: 127", (code, err))
        code, _, err = ward("exec", "t-state", "--json", "--", "sh", "-c", "kill -TERM $$")
        res = json.loads(err.strip().splitlines()[-1])
        check(code == 143 and res["signalNumber"] == 15 and res["exitStatus"] == 143, "killed by SIGTERM: 143, --json", err)
        # stdin and stdout stream through pipes: 64 MiB each way.
        big = 64 << 20
        code, out, err = ward("exec", "t-state", "--", "wc", "-c", input_bytes=b"\0" * big, timeout=60)
        check(code == 0 and out.strip() == str(big), "64 MiB of stdin", (code, out[:100], err))
        p = subprocess.run(f"'{WARD}' exec t-state -- head -c {big} /dev/zero | wc -c", shell=True, cwd=WS,
                           env=dict(os.environ, WARD_RUNTIME_DIR=RT), capture_output=True, timeout=60)
        check(p.stdout.decode().strip() == str(big), "64 MiB of stdout", p.stdout)
        # Several execs at once.
        results = {}

        # Each waits (up to 60 s) until all six have started: one after
        # another, the first would never see the others (exit 9).
        barrier = f"/tmp/barrier.{os.getpid()}"
        wait_all = (f"mkdir -p {barrier}; touch {barrier}/$0; n=0; "
                    f"while [ $(ls {barrier} | wc -l) -lt 6 ]; do n=$((n+1)); [ $n -gt 1200 ] && exit 9; sleep 0.05; done; "
                    "echo $0")

        def one(i):
            results[i] = ward("exec", "t-state", "--", "sh", "-c", wait_all, str(i), timeout=120)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        check(all(results[i][0] == 0 and results[i][1] == f"{i}\n" for i in range(6)),
              "6 concurrent execs, each running while the others did", results)
        # A signal to `ward exec` reaches the command (sent once the command
        # has set its trap and said so).
        p = subprocess.Popen([WARD, "exec", "t-state", "--", "sh", "-c",
                              "trap 'exit 42' TERM; echo ready; sleep 30 & wait"],
                             cwd=WS, env=dict(os.environ, WARD_RUNTIME_DIR=RT), stdout=subprocess.PIPE)
        check(p.stdout.readline() == b"ready\n", "the command set its trap")
        p.send_signal(signal.SIGTERM)
        check(p.wait(20) == 42, "SIGTERM forwarded to the exec'd command", p.returncode)
        p.stdout.close()
    finally:
        cleanup("t-state")


WRITE_PROBE = """
import errno, sys
for path, size in zip(sys.argv[1::2], sys.argv[2::2]):
    try:
        with open(path, "wb") as f:
            f.write(b"\\0" * int(size))
        print(path, "ok")
    except OSError as e:
        print(path, errno.errorcode[e.errno])
"""

TREE = (
    "set -e; cd /tmp; echo hi > keep; ln keep hard; ln -s /etc/passwd lnk; ln -s nowhere dangling; mkfifo fifo; "
    "truncate -s 100M sparse; mkdir -p d/e; echo z > d/e/z; chmod 500 d; echo s > secret; chmod 000 secret; "
    "mkdir closed; echo c > closed/c; chmod 000 closed; chmod 640 keep; touch -d 2001-02-03 keep; echo h > \"$HOME/k\""
)
TREE_CHECK = (
    "cd /tmp; cat keep \"$HOME/k\" d/e/z; [ keep -ef hard ] && echo hardlinked; readlink lnk dangling; "
    "[ -p fifo ] && echo fifo; stat -c '%n %a %s %b' keep sparse secret closed d | sort; date -r keep +%F; "
    "chmod 700 closed; cat closed/c; chmod 000 closed"
)


def test_persistent_tmp_and_home_bounded_and_kept():
    # A held sandbox's /tmp and home are tmpfs sized by limits.tmpfsMiB, as
    # ward run's (ENOSPC beyond), whose content is saved when it stops and
    # put back when it starts: files, hard links, symlinks (not followed),
    # FIFOs, holes, modes, times. A supervisor killed with SIGKILL saves
    # nothing: the next start has the last save. No mount is ever left on
    # the host.
    pol = os.path.join(os.path.dirname(WS), "bounded.json")
    with open(pol, "w") as f:
        json.dump({"ward": 1, "extends": "workspace-write", "limits": {"tmpfsMiB": 1},
                   "filesystem": {"home": "private"}}, f)
    code, out, err = ward("provision", "--policy", pol, "--name", "t-bound")
    check(code == 0, "provision", err)
    sid = out.strip()
    mounts_before = open("/proc/self/mountinfo").read().count(RT)
    try:
        check(ward("start", "t-bound")[0] == 0, "start")
        code, out, err = ward("exec", "t-bound", "--", "sh", "-c",
                              'exec python3 -c "$0" /tmp/small 400000 /tmp/big 1200000 "$HOME/x" 1200000', WRITE_PROBE)
        lines = out.split()
        check(code == 0 and lines[1] == "ok" and lines[3] == "ENOSPC" and lines[5] == "ENOSPC",
              "1 MiB each: 400 kB fit in /tmp; 1.2 MB fit neither in /tmp nor in home (ENOSPC)", (code, out, err))
        code, out, err = ward("exec", "t-bound", "--", "sh", "-c", "rm -f /tmp/small /tmp/big \"$HOME/x\"; " + TREE)
        check(code == 0, "a tree of every kind", (code, out, err))
        code, expected, err = ward("exec", "t-bound", "--", "sh", "-c", TREE_CHECK)
        check(code == 0 and "hardlinked" in expected and "fifo" in expected and "2001-02-03" in expected,
              "the tree as written", (code, expected, err))
        check(ward("stop", "t-bound")[0] == 0, "stop")
        check(open("/proc/self/mountinfo").read().count(RT) == mounts_before, "no mount of it on the host")
        check(ward("start", "t-bound")[0] == 0, "start again")
        code, out, err = ward("exec", "t-bound", "--", "sh", "-c", TREE_CHECK)
        check(code == 0 and out == expected, "the same tree after stop and start", (expected, out, err))
        code, out, err = ward("exec", "t-bound", "--", "sh", "-c", "df -k /tmp | tail -1")
        check(code == 0 and int(out.split()[2]) < 600, "holes stayed holes: the 100 MB sparse file fits 1 MiB", out)
        # A second cycle saves what was restored and what came since (a
        # shared directory position once made every save after a restore
        # empty).
        check(ward("exec", "t-bound", "--", "sh", "-c", "echo more > /tmp/more; echo m > \"$HOME/m\"")[0] == 0, "write")
        check(ward("stop", "t-bound")[0] == 0 and ward("start", "t-bound")[0] == 0, "stop and start again")
        code, out, err = ward("exec", "t-bound", "--", "sh", "-c", TREE_CHECK + '; cat /tmp/more "$HOME/m"')
        check(code == 0 and out == expected + "more\nm\n", "the second save holds both", (expected, out, err))
        # Killed: what changed since the start is lost, the last save kept.
        check(ward("exec", "t-bound", "--", "sh", "-c", "echo late > /tmp/late")[0] == 0, "write after the start")
        sup = ls()["t-bound"]["supervisorPid"]
        os.kill(sup, signal.SIGKILL)
        deadline = time.time() + 10
        while time.time() < deadline and ls()["t-bound"]["state"] == "running":
            time.sleep(0.05)
        check(ward("start", "t-bound")[0] == 0, "start after the supervisor was killed")
        code, out, err = ward("exec", "t-bound", "--", "sh", "-c", "cat /tmp/keep; ls /tmp/late 2>&1 || true")
        check(code == 0 and out.startswith("hi\n") and "No such file" in out,
              "the last save is back; what the killed supervisor never saved is not", (code, out, err))
    finally:
        cleanup("t-bound")
    check(not os.path.exists(os.path.join(RT, sid)), "deprovision removes the saved areas")
    check(open("/proc/self/mountinfo").read().count(RT) == 0, "no mount left under the runtime directory")


def test_closed_directories_across_cycles():
    # Directories the sandbox shut to itself (mode 0) on the path of a hard
    # link's first name, and the area's root itself shut: every save and
    # restore keeps them, cycle after cycle (their modes once refused every
    # restore, and a shut /tmp lost the run's save: red-team findings).
    sid = provision("t-closed")
    try:
        check(ward("start", "t-closed")[0] == 0, "start")
        code, out, err = ward("exec", "t-closed", "--", "sh", "-c",
                              "set -e; cd /tmp; mkdir a; echo one > a/f; ln a/f g; chmod 0 a; "
                              "mkdir -p d/e; echo two > d/e/f; ln d/e/f x; chmod 0 d/e; chmod 0 /tmp")
        check(code == 0, "a tree with closed directories, /tmp shut", (code, out, err))
        look = ("cd /tmp; stat -c '%a' a d/e; chmod 700 a d/e; cat g x; [ a/f -ef g ] && [ d/e/f -ef x ] && echo linked; "
                "chmod 0 a d/e")
        for cycle in range(3):
            code, _, err = ward("stop", "t-closed")
            check(code == 0, f"stop {cycle}: saved", (code, err))
            code, _, err = ward("start", "t-closed")
            check(code == 0 and "left out" not in err, f"start {cycle}: all put back", (code, err))
            code, out, err = ward("exec", "t-closed", "--", "sh", "-c", look)
            check(code == 0 and out == "0\n0\none\ntwo\nlinked\n", f"cycle {cycle}: the same tree", (code, out, err))
    finally:
        cleanup("t-closed")


def test_restore_never_reaches_the_host():
    # The save holds the placeholders of what ward mounted inside /tmp and
    # home (grants); a restore never removes, replaces or enters a mount
    # point, so a sandbox that replaced a grant's parent by a file, or a
    # granted file by its placeholder, gets ward's layout back and the
    # host's files stay (red-team finding: it once deleted a denied file).
    # The files ward writes at each start give way to the save, so a full
    # save still fits.
    home = tempfile.mkdtemp(dir="/var/tmp", prefix="ward-home-")
    proj = os.path.join(home, "src", "proj")
    os.makedirs(os.path.join(proj, "lib"))
    for path, text in ((os.path.join(proj, ".env"), "secret"), (os.path.join(proj, "lib", "a.c"), "code")):
        with open(path, "w") as f:
            f.write(text)
    notes = os.path.join(os.path.dirname(WS), "notes.txt")  # under /tmp: inside the private /tmp
    with open(notes, "w") as f:
        f.write("notes")
    pol = os.path.join(os.path.dirname(WS), "grants-in-areas.json")
    with open(pol, "w") as f:
        json.dump({"ward": 1, "extends": "workspace-write", "limits": {"tmpfsMiB": 2},
                   "filesystem": {"home": "private", "write": [proj], "deny": [os.path.join(proj, ".env")],
                                  "read": [notes]}}, f)
    env = {"HOME": home}
    try:
        code, _, err = ward("provision", "--policy", pol, "--name", "t-grants", env=env)
        check(code == 0, "provision", err)
        check(ward("start", "t-grants", env=env)[0] == 0, "start")
        code, out, err = ward("exec", "t-grants", "--", "sh", "-c",
                              f'cat {notes}; cd "$HOME"; rm -f src/proj/.env 2>/dev/null; mv src old && touch src; '
                              'ls -A "$HOME"; dd if=/dev/zero of="$HOME/fill" bs=64k 2>/dev/null; echo filled', env=env)
        check(code == 0 and out.startswith("notes") and "filled" in out, "the grants work; home replaced and filled",
              (code, out, err))
        check(ward("stop", "t-grants", env=env)[0] == 0, "stop")
        code, _, err = ward("start", "t-grants", env=env)
        check(code == 0, "a full save still fits: the start succeeds", (code, err))
        check(open(os.path.join(proj, ".env")).read() == "secret" and
              open(os.path.join(proj, "lib", "a.c")).read() == "code",
              "the host's files under the grant are all there", os.listdir(proj))
        code, out, err = ward("exec", "t-grants", "--", "sh", "-c",
                              f'cat {notes}; echo; cat "$HOME/src/proj/lib/a.c"; echo; ls -l {notes}', env=env)
        check(code == 0 and out.startswith("notes\ncode\n") and " 5 " in out,
              "after the restart, the granted file and directory are the host's again", (code, out, err))
        # A save bigger than a fresh tmpfs holds (the grant's parent renamed:
        # ward makes the grant's place anew beside it; every inode used):
        # what does not fit is left out and said, and the sandbox starts.
        code, out, err = ward("exec", "t-grants", "--", "sh", "-c",
                              'cd "$HOME"; rm -f fill; mv src src3; i=0; while touch f$i 2>/dev/null; do i=$((i+1)); done; '
                              'echo $i', env=env)
        check(code == 0 and int(out.split()[-1]) > 100, "home's inodes all used", (code, out, err))
        check(ward("stop", "t-grants", env=env)[0] == 0, "stop")
        code, _, err = ward("start", "t-grants", env=env)
        check(code == 0 and "left out" in err and "ENOSPC" in err,
              "the start succeeds and says what was left out, and why", (code, err))
    finally:
        cleanup("t-grants")
        shutil.rmtree(home, ignore_errors=True)


def confinement(cmd_prefix):
    code, out, err = ward(*cmd_prefix, "--", "sh", "-c",
                          "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; cat /etc/hostname")
    check(code == 0, "status read", (code, err))
    return out


def test_exec_confined_as_run():
    secret_dir = tempfile.mkdtemp(dir=os.path.dirname(WS))
    secret = os.path.join(secret_dir, "secret")
    with open(secret, "w") as f:
        f.write("s3cret")
    mine = os.path.join(WS, "mine")
    with open(mine, "w") as f:
        f.write("ok")
    provision("t-conf")
    try:
        check(ward("start", "t-conf")[0] == 0, "start")
        run = confinement(["run", "--profile", "workspace-write"])
        exe = confinement(["exec", "t-conf"])
        check(run == exe, "exec's capabilities, no_new_privs, seccomp and host name are run's", (run, exe))
        check("CapEff:\t0000000000000000" in exe and "Seccomp:\t2" in exe and "NoNewPrivs:\t1" in exe,
              "no capabilities, a seccomp filter, no_new_privs", exe)
        code, out, err = ward("exec", "t-conf", "--", "cat", secret)
        check(code == 1 and "No such file" in err, "a path outside the grants does not exist in exec", (code, out, err))
        code, out, _ = ward("exec", "t-conf", "--", "cat", mine)
        check(code == 0 and out == "ok", "control: a granted file is read", out)
        code, out, err = ward("exec", "t-conf", "--", "sh", "-c", "echo x > /etc/ward-test")
        check(code != 0 and "Read-only" in err, "the root is read-only in exec", (code, err))
        # Init of the sandbox is not the exec'd process's to touch.
        code, out, err = ward("exec", "t-conf", "--", "sh", "-c", "ls /proc/1/fd")
        check(code != 0 and "Permission denied" in err, "init's descriptors are closed to exec", (code, out, err))
        code, out, err = ward("exec", "t-conf", "--", "sh", "-c", "ls /proc/self/fd")
        check(code == 0 and sorted(out.split()) == ["0", "1", "2", "3"], "control: exec holds only stdio (3: ls's own)", out)
    finally:
        cleanup("t-conf")
        shutil.rmtree(secret_dir)


def ctl_status(path):
    """Asks a control socket for its status; the reply, or None if the
    connection ended unanswered."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(5)
    s.connect(path)
    header = struct.pack("<IIiIII3I3II", 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    s.send(header)
    data = s.recv(4096)
    s.close()
    return data or None


def test_control_socket_unreachable_from_inside():
    sid = provision("t-target")
    try:
        check(ward("start", "t-target")[0] == 0, "start")
        ctl = os.path.join(RT, sid, "ctl")
        st = os.stat(ctl)
        check(oct(st.st_mode & 0o777) == "0o600" and oct(os.stat(os.path.join(RT, sid)).st_mode & 0o777) == "0o700",
              "the socket is 0600 in a 0700 directory", oct(st.st_mode))
        reply = ctl_status(ctl)
        check(reply is not None and json.loads(reply)["state"] == "running", "control: its owner is served", reply)
        probe = ("import socket,struct,sys\n"
                 "s=socket.socket(socket.AF_UNIX,socket.SOCK_SEQPACKET)\n"
                 "try:\n s.connect(sys.argv[1])\nexcept OSError as e:\n print('connect', e.errno); sys.exit(0)\n"
                 "s.send(struct.pack('<IIiIII3I3II',11,0,0,0,0,0,0,0,0,0,0,0,0)); s.settimeout(5)\n"
                 "try:\n print('reply', repr(s.recv(4096)))\nexcept ConnectionResetError:\n print('reply', repr(b''))\n")
        # The runtime directory is not in the sandbox's view at all...
        code, out, err = ward("exec", "t-target", "--", "python3", "-c", probe, ctl)
        check(code == 0 and out.strip() == "connect 2", "its own socket does not exist inside (ENOENT)", (code, out, err))
        # ...and a sandbox whose policy lists the socket reaches it, but is
        # never served: it lives in a user namespace of its own.
        pol = os.path.join(WS, "unix-policy.json")
        with open(pol, "w") as f:
            json.dump({"ward": 1, "extends": "workspace-write", "filesystem": {"unix": [ctl]}}, f)
        code, out, err = ward("run", "--policy", pol, "--", "python3", "-c", probe, ctl)
        # (Refused by the deny rule that hides the runtime directory, which
        # beats filesystem.unix, before the control-socket check.)
        check(code == 123 and f'"{ctl}"' in err and "denied path" in err,
              "a policy that lists a control socket is refused", (code, out, err))
        # A hard link of it (another name, the same socket) too.
        alias = os.path.join(WS, "alias.sock")
        os.link(ctl, alias)
        with open(pol, "w") as f:
            json.dump({"ward": 1, "extends": "workspace-write", "filesystem": {"unix": [alias]}}, f)
        code, out, err = ward("run", "--policy", pol, "--", "python3", "-c", probe, alias)
        check(code == 123 and "control socket" in err, "a hard link of a control socket is refused", (code, out, err))
        os.unlink(alias)
        check(ls()["t-target"]["state"] == "running", "and the sandbox is unharmed")
    finally:
        cleanup("t-target")


def test_other_user_cannot_control():
    if os.geteuid() != 0:
        print("  (skipped: only root can act as another user)")
        return
    sid = provision("t-owner")
    try:
        check(ward("start", "t-owner")[0] == 0, "start")
        d = os.path.join(RT, sid)
        ctl = os.path.join(d, "ctl")
        # Open the path to everyone, so that only the supervisor's own check stands.
        os.chmod(RT, 0o711)
        os.chmod(d, 0o711)
        os.chmod(ctl, 0o666)
        try:
            code = subprocess.run(
                ["setpriv", "--reuid=wardtest", "--regid=wardtest", "--clear-groups", "--reset-env", "--",
                 "python3", "-c",
                 "import socket,struct,sys\n"
                 "s=socket.socket(socket.AF_UNIX,socket.SOCK_SEQPACKET); s.connect(sys.argv[1]); s.settimeout(5)\n"
                 "try:\n s.send(struct.pack('<IIiIII3I3II',11,0,0,0,0,0,0,0,0,0,0,0,0))\n"
                 " sys.exit(0 if s.recv(4096)==b'' else 1)\n"
                 "except (ConnectionResetError, BrokenPipeError):\n sys.exit(0)\n",
                 ctl], timeout=20).returncode
            check(code == 0, "another user reaching the socket is not served", code)
            code = subprocess.run(
                ["setpriv", "--reuid=wardtest", "--regid=wardtest", "--clear-groups", "--reset-env", "--",
                 "env", "WARD_RUNTIME_DIR=" + RT, WARD, "exec", "t-owner", "--", "true"], capture_output=True,
                timeout=20).returncode
            check(code == EXIT_RUNTIME_DIR, "another user's ward refuses the runtime directory", code)
        finally:
            os.chmod(ctl, 0o600)
            os.chmod(d, 0o700)
            os.chmod(RT, 0o700)
        check(ctl_status(ctl) is not None, "control: the owner is served")
    finally:
        cleanup("t-owner")


def test_owner_uid_in_another_user_namespace_not_served():
    # The owner's uid in a user namespace of its own (as every sandbox has:
    # SO_PEERCRED maps it back to the owner's uid) is not the owner: the
    # supervisor compares the connecting process's user namespace, taken
    # from the pidfd the kernel recorded at connect() (SO_PEERPIDFD).
    # Control: the same client outside the namespace is served.
    if subprocess.run(["unshare", "--user", "--map-current-user", "true"], capture_output=True).returncode != 0:
        print("  (skipped: unshare --user is not available here)")
        return
    sid = provision("t-userns")
    try:
        check(ward("start", "t-userns")[0] == 0, "start")
        ctl = os.path.join(RT, sid, "ctl")
        # (A refused peer's connection may be closed before its request is
        # sent: EPIPE then is "unanswered" too.)
        client = ("import socket,struct,sys\n"
                  "s=socket.socket(socket.AF_UNIX,socket.SOCK_SEQPACKET); s.connect(sys.argv[1]); s.settimeout(5)\n"
                  "try:\n s.send(struct.pack('<IIiIII3I3II',11,0,0,0,0,0,0,0,0,0,0,0,0))\n d=s.recv(4096)\n"
                  "except (ConnectionResetError, BrokenPipeError):\n d=b''\n"
                  "print('SERVED' if d else 'UNANSWERED')\n")
        p = subprocess.run(["unshare", "--user", "--map-current-user", sys.executable, "-c", client, ctl],
                           capture_output=True, timeout=20)
        out = p.stdout.decode()
        check("UNANSWERED" in out, "the owner's uid from another user namespace is not served", (out, p.stderr))
        p = subprocess.run([sys.executable, "-c", client, ctl], capture_output=True, timeout=20)
        check("SERVED" in p.stdout.decode(), "control: the same client in the owner's namespace is served",
              (p.stdout, p.stderr))
    finally:
        cleanup("t-userns")


def pids_with(marker):
    out = subprocess.run(["pgrep", "-f", marker], capture_output=True).stdout.decode().split()
    return [p for p in out if int(p) != os.getpid()]


def test_supervisor_kill_leaves_nothing():
    provision("t-kill")
    try:
        check(ward("start", "t-kill")[0] == 0, "start")
        info = ls()["t-kill"]
        sup = info["supervisorPid"]
        marker = f"sleep 4321.{os.getpid()}"
        bg = subprocess.Popen([WARD, "exec", "t-kill", "--", "sh", "-c", marker], cwd=WS,
                              env=dict(os.environ, WARD_RUNTIME_DIR=RT))
        deadline = time.time() + 5
        while not pids_with(marker) and time.time() < deadline:
            time.sleep(0.05)
        check(pids_with(marker), "the exec'd process runs")
        check(ls()["t-kill"]["processes"] >= 1, "ls counts it", ls()["t-kill"])
        os.kill(sup, signal.SIGKILL)
        check(bg.wait(10) == 137, "the exec ends, killed", bg.returncode)
        deadline = time.time() + 5
        while pids_with(marker) and time.time() < deadline:
            time.sleep(0.05)
        check(not pids_with(marker), "no process of the sandbox is left", pids_with(marker))
        s = ls()["t-kill"]
        check(s["state"] == "failed" and "supervisor" in s["failure"], "ls: failed, and why", s)
        code, _, err = ward("exec", "t-kill", "--", "true")
        check(code == EXIT_SUPERVISOR_GONE, "exec into it: 121", (code, err))
        check(ward("start", "t-kill")[0] == 0, "it starts again (the stale socket swept)")
        check(ward("exec", "t-kill", "--", "true")[0] == 0, "and serves")
    finally:
        cleanup("t-kill")


def test_stop_ends_every_process():
    provision("t-stop")
    try:
        check(ward("start", "t-stop")[0] == 0, "start")
        marker = f"sleep 4322.{os.getpid()}"
        check(ward("exec", "t-stop", "--", "sh", "-c", f"{marker} >/dev/null 2>&1 &")[0] == 0, "a background process")
        time.sleep(0.3)
        check(pids_with(marker), "it outlives its exec while the sandbox runs")
        t0 = time.monotonic()
        check(ward("stop", "t-stop", "--grace-ms", "30000")[0] == 0, "stop")
        check(time.monotonic() - t0 < 15, "a process that ends on SIGTERM does not wait for the grace period")
        check(not pids_with(marker), "stop ended it")
        marker2 = f"sleep 4323.{os.getpid()}"
        check(ward("start", "t-stop")[0] == 0, "start")
        check(ward("exec", "t-stop", "--", "sh", "-c", f"trap '' TERM; {marker2} >/dev/null 2>&1 &")[0] == 0, "bg")
        time.sleep(0.3)
        # sleep ignores SIGTERM (inherited SIG_IGN): SIGKILL after the grace.
        t0 = time.monotonic()
        check(ward("stop", "t-stop", "--grace-ms", "500")[0] == 0, "stop")
        check(0.4 < time.monotonic() - t0 < 20 and not pids_with(marker2), "killed after the grace period")
    finally:
        cleanup("t-stop")


def test_runtime_dir_never_in_view():
    # A runtime directory under a grant (here: the workspace, as /tmp/ward-UID
    # is under a grant of /tmp) is hidden as a denied directory (a mode-0
    # mask: EACCES) inside, for `run` and for a held sandbox's exec. Control: the
    # rest of the workspace is seen and written.
    inside = os.path.join(WS, "rt-inside")
    os.mkdir(inside, 0o700)
    env = {"WARD_RUNTIME_DIR": inside}
    code, sid, err = ward("provision", "--profile", "workspace-write", "--name", "t-in", env=env)
    check(code == 0, "provision with the runtime directory under the workspace", err)
    sid = sid.strip()
    try:
        check(ward("start", "t-in", env=env)[0] == 0, "start")
        record = os.path.join(inside, sid, "sandbox.json")
        probe = f"ls -A '{inside}'; cat '{record}'; echo x > '{inside}/planted'; echo y > '{WS}/seen' && cat '{WS}/seen'"
        for cmd in (["run", "--profile", "workspace-write"], ["exec", "t-in"]):
            code, out, err = ward(*cmd, "--", "sh", "-c", probe, env=env)
            check(out == "y\n", f"{cmd[0]}: the runtime directory shows nothing; the workspace does", (code, out, err))
            check(err.count("Permission denied") == 3,
                  f"{cmd[0]}: the directory cannot be listed, the record read, or a file planted (EACCES)", err)
        check(sorted(os.listdir(inside)) == sorted([".lock", "names", sid]), "nothing planted on the host",
              os.listdir(inside))
        check(ls_in(env)["t-in"]["state"] == "running", "the sandbox is unharmed")
    finally:
        ward("deprovision", "t-in", env=env)
        shutil.rmtree(inside)


def ls_in(env):
    code, out, err = ward("ls", "--json", env=env)
    check(code == 0, "ls", err)
    return {s["name"]: s for s in json.loads(out)}


def test_planted_link_in_state_not_followed():
    sid = provision("t-link")
    try:
        check(ward("start", "t-link")[0] == 0 and ward("stop", "t-link")[0] == 0, "start, stop")
        victim = tempfile.mkdtemp(dir=os.path.dirname(WS))
        os.chmod(victim, 0o755)
        tmp = os.path.join(RT, sid, "state", "tmp")
        shutil.rmtree(tmp)
        os.symlink(victim, tmp)
        code, _, err = ward("start", "t-link")
        check(code == 125 and "link" in err, "a link in place of the persistent /tmp: start refused", (code, err))
        check(oct(os.stat(victim).st_mode & 0o7777) == "0o755", "its target's mode unchanged",
              oct(os.stat(victim).st_mode))
        os.unlink(tmp)
        check(ward("start", "t-link")[0] == 0, "control: with the link gone, it starts (the area made anew)")
        shutil.rmtree(victim)
    finally:
        cleanup("t-link")


def test_runtime_dir_under_tmp_with_nothing_else_there():
    # The new root's tmpfs is mounted on a host directory that holds no bind
    # source, /tmp when it can. With no grant under /tmp but the runtime
    # directory there (the fallback /tmp/ward-UID), the persistent /tmp and
    # home are sources under /tmp: the root must go elsewhere (it hid them:
    # ENOENT at start, as the unprivileged user).
    ws = tempfile.mkdtemp(dir=os.path.expanduser("~"), prefix=".ward-lifecycle-ws-")
    try:
        code, _, err = ward("provision", "--profile", "workspace-write", "--name", "t-tmprt", cwd=ws)
        check(code == 0, "provision from a workspace outside /tmp", err)
        code, _, err = ward("start", "t-tmprt", cwd=ws)
        check(code == 0, "start with the runtime directory under /tmp", err)
        code, out, err = ward("exec", "t-tmprt", "--", "sh", "-c", "echo kept > /tmp/f; cat /tmp/f; echo h > ~/g; cat ~/g", cwd=ws)
        check(code == 0 and out == "kept\nh\n", "the persistent /tmp and home work", (code, out, err))
    finally:
        cleanup("t-tmprt")
        shutil.rmtree(ws, ignore_errors=True)


def test_large_concurrent_requests_all_served():
    # Large requests (a 110 KB environment each) fill the supervisor's
    # channel to init: a request it could not send at once must wait its
    # turn, never be dropped (its client then waited forever).
    provision("t-big")
    try:
        check(ward("start", "t-big")[0] == 0, "start")
        big = "x" * 110000
        env = dict(os.environ, WARD_RUNTIME_DIR=RT)
        procs = [subprocess.Popen([WARD, "exec", "t-big", "--env=BIG=" + big, "--", "sh", "-c", f"echo {i} ${{#BIG}}"],
                                  cwd=WS, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(40)]
        outs = []
        for p in procs:
            try:
                out, err = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
            outs.append((p.returncode, out.decode(), err.decode()))
        for i, (code, out, err) in enumerate(outs):
            check(code == 0 and out == f"{i} 110000\n", f"exec {i} of 40 served", (code, out, err))
    finally:
        cleanup("t-big")


def test_a_stopped_start_does_not_freeze_the_sandbox():
    # A process of the sandbox SIGSTOPs every other one, new ones included
    # (a new exec before its execve too). Each exec is still bounded by
    # process.timeoutMs, and the sandbox still serves and stops: init never
    # waits on a process it started.
    pol = os.path.join(os.path.dirname(WS), "stopper.json")
    with open(pol, "w") as f:
        json.dump({"ward": 1, "extends": "workspace-write", "process": {"timeoutMs": 2000}}, f)
    code, _, err = ward("provision", "--policy", pol, "--name", "t-stopper")
    check(code == 0, "provision", err)
    try:
        check(ward("start", "t-stopper")[0] == 0, "start")
        stopper = ("import os, signal\n"
                   "me = os.getpid()\n"
                   "while True:\n"
                   "    for pid in range(2, 300):\n"
                   "        if pid != me:\n"
                   "            try: os.kill(pid, signal.SIGSTOP)\n"
                   "            except OSError: pass\n")
        with open(os.path.join(WS, "stopper.py"), "w") as f:
            f.write(stopper)
        code, _, err = ward("exec", "t-stopper", "--", "sh", "-c", "setsid python3 stopper.py </dev/null >/dev/null 2>&1 &")
        check(code in (0, 124), "the stopper started", (code, err))
        time.sleep(0.5)
        for i in range(5):
            t0 = time.monotonic()
            code, _, err = ward("exec", "t-stopper", "--", "/bin/true", timeout=20)
            took = time.monotonic() - t0
            check(code in (0, 124) and took < 8, f"exec {i}: done or timed out (124), never hung", (code, took, err))
        t0 = time.monotonic()
        check(ward("stop", "t-stopper", "--grace-ms", "500", timeout=20)[0] == 0, "stop")
        check(time.monotonic() - t0 < 15, "stop ends it")
    finally:
        cleanup("t-stopper")


@contextlib.contextmanager
def _pty_exec(name, script, rows, cols):
    """`ward exec --pty NAME -- sh -c SCRIPT` on a terminal of the test's
    own (ROWS x COLS), ward its session leader with it as controlling
    terminal, as in an interactive shell. Yields (process, master fd);
    kills what is still running and closes the terminal after."""
    import fcntl
    import pty
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def session():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    p = subprocess.Popen([WARD, "exec", "--pty", name, "--", "sh", "-c", script], cwd=WS,
                         env=dict(os.environ, WARD_RUNTIME_DIR=RT), stdin=slave, stdout=slave, stderr=slave,
                         preexec_fn=session)
    os.close(slave)
    try:
        yield p, master
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)


def _read_until(master, token, seconds=10):
    import select
    got = b""
    end = time.monotonic() + seconds
    while token.encode() not in got and time.monotonic() < end:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every slave end closed
                break
            if not chunk:
                break
            got += chunk
    return got.decode(errors="replace")


def test_exec_pty():
    # `ward exec --pty`: the command gets a terminal of the sandbox's own
    # devpts, sized as the caller's; a resize of the caller's terminal
    # reaches it as SIGWINCH with the new size; ^C typed on the caller's
    # terminal interrupts it (SIGINT, 130); its exit status is ward's.
    # Control: without --pty the same command has no terminal.
    import fcntl
    import termios
    provision("t-pty")
    try:
        check(ward("start", "t-pty")[0] == 0, "start")
        with _pty_exec("t-pty", "tty; stty size; trap 'stty size; exit 7' WINCH; echo READY; "
                       "i=0; while [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; exit 3", 30, 100) as (p, master):
            out = _read_until(master, "READY")
            check("/dev/pts/" in out and "30 100" in out, "a terminal of its own, the caller's size", out)
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 41, 123, 0, 0))
            out = _read_until(master, "41 123")
            check("41 123" in out, "the new size reached it (SIGWINCH)", out)
            check(p.wait(timeout=10) == 7, "its trap's exit status is ward's", p.returncode)
        with _pty_exec("t-pty", "echo READY; sleep 30; echo NOT-INTERRUPTED", 24, 80) as (p, master):
            check("READY" in _read_until(master, "READY"), "started")
            time.sleep(0.2)
            os.write(master, b"\x03")
            check(p.wait(timeout=10) == 130, "^C interrupts it: SIGINT, 128+2", p.returncode)
        code, out, err = ward("exec", "t-pty", "--", "sh", "-c", "tty; echo rc=$?")
        check("not a tty" in out and "rc=1" in out, "control: without --pty, no terminal", (code, out, err))
    finally:
        cleanup("t-pty")


CASES = [test_runtime_dir_never_in_view, test_planted_link_in_state_not_followed, test_transitions, test_bad_input_leaves_nothing, test_state_persists_and_exit_statuses,
         test_exec_confined_as_run, test_control_socket_unreachable_from_inside, test_other_user_cannot_control,
         test_supervisor_kill_leaves_nothing, test_stop_ends_every_process, test_runtime_dir_under_tmp_with_nothing_else_there,
         test_large_concurrent_requests_all_served, test_a_stopped_start_does_not_freeze_the_sandbox, test_exec_pty,
         test_owner_uid_in_another_user_namespace_not_served, test_persistent_tmp_and_home_bounded_and_kept,
         test_restore_never_reaches_the_host, test_closed_directories_across_cycles]


def main():
    global WARD, RT, WS
    ap = argparse.ArgumentParser()
    ap.add_argument("--ward", required=True)
    ap.add_argument("--only", action="append")
    a = ap.parse_args()
    WARD = os.path.abspath(a.ward)
    base = tempfile.mkdtemp(prefix="ward-lifecycle-")
    os.chmod(base, 0o755)
    RT = os.path.join(base, "rt")
    os.mkdir(RT, 0o700)
    WS = os.path.join(base, "ws")
    os.mkdir(WS)
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
        for name in list(ls().keys()) if os.path.isdir(RT) else []:
            cleanup(name)
        shutil.rmtree(base, ignore_errors=True)
    print(f"{len(failed)} failed: {failed}" if failed else "all passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
