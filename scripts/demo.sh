#!/usr/bin/env bash
# The demo `make run` ends with: the same sandbox allowing and denying.
set -u
ward=$(realpath "${1:-build/bin/ward}")
ws=$(mktemp -d /var/tmp/ward-demo.XXXXXX)
trap 'rm -rf "$ws"' EXIT
chmod 755 "$ws"
echo "print('hello from tool.py')" > "$ws/tool.py"
echo "API_KEY=do-not-leak" > "$ws/.env"
cat > "$ws/policy.json" <<'JSON'
{
  "ward": 1,
  "extends": "workspace-write",
  "filesystem": { "deny": ["${WORKSPACE}/.env", "${HOME}/.ssh"] },
  "limits": { "memoryMiB": 256, "pids": 32 },
  "process": { "timeoutMs": 10000 },
  "network": "none"
}
JSON
step() {
  printf '\n\033[1m$ %s\033[0m\n' "$*"
  "$@"
  printf '\033[2m(exit status %d)\033[0m\n' "$?"
}
cd "$ws" || exit 1
echo "ward demo in $ws (policy: policy.json)"
step "$ward" policy check policy.json
echo; echo "-- allowed --"
step "$ward" run --policy policy.json -- /usr/bin/python3 tool.py
step "$ward" run --policy policy.json -- /bin/sh -c 'echo result > out.txt && cat out.txt'
echo; echo "-- denied --"
step "$ward" run --policy policy.json -- /bin/cat .env
step "$ward" run --policy policy.json -- /bin/ls "$HOME"
step "$ward" run --profile offline-readonly -- /bin/sh -c 'echo x > tool.py'
step "$ward" run --policy policy.json -- /usr/bin/python3 -c 'import socket; socket.create_connection(("192.0.2.1", 80), timeout=2)'
step "$ward" run --policy policy.json --json -- /usr/bin/python3 -c 'x = bytearray(512 * 1024 * 1024)'

echo; echo "-- network egress: rules for every program, every decision recorded --"
# A server on the host's loopback, which the sandbox may reach only through
# the rule naming host.ward.internal:PORT.
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
/usr/bin/python3 -m http.server --bind 127.0.0.1 --directory "$ws" "$port" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$ws"' EXIT
for _ in $(seq 50); do /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1', $port))" 2>/dev/null && break; sleep 0.1; done
cat > "$ws/egress.json" <<JSON
{
  "ward": 1,
  "extends": "workspace-write",
  "network": { "egress": { "default": "deny", "allow": ["host.ward.internal:$port", "pypi.org:443"], "deny": ["evil.pypi.org"] } }
}
JSON
step "$ward" run --policy egress.json -- /usr/bin/curl -sS --noproxy '*' "http://host.ward.internal:$port/tool.py"
step "$ward" run --policy egress.json -- /usr/bin/curl -sS --noproxy '*' -m 5 https://example.com/
step "$ward" run --policy egress.json -- /usr/bin/python3 -c 'import socket; socket.create_connection(("192.0.2.1", 443), timeout=5).recv(1)'
step "$ward" run --policy egress.json -- /usr/bin/curl -sS -m 5 https://evil.pypi.org/
step "$ward" run --policy egress.json --json -- /usr/bin/curl -sS -o /dev/null --noproxy '*' -m 5 "http://host.ward.internal:$port/"

echo; echo "-- this host --"
step "$ward" doctor
exit 0
