#!/usr/bin/env bash
# Runs a test binary as the unprivileged test user (see test-user.sh) when
# the suite runs as root; exits 77 (skipped) otherwise, since the plain run
# already covers the calling user.
set -euo pipefail
user=${WARD_TEST_USER:-wardtest}
if [ "$(id -u)" -ne 0 ]; then
  echo "not root: the unprivileged run is the normal one"; exit 77
fi
id "$user" >/dev/null 2>&1 || { echo "no user $user: run scripts/test-user.sh"; exit 1; }
exec setpriv --reuid="$user" --regid="$user" --clear-groups --reset-env -- "$@"
