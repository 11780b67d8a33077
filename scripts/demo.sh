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
echo; echo "-- this host --"
step "$ward" doctor
exit 0
