#!/usr/bin/env bash
# Creates the unprivileged user the test suite runs the escape tests as
# (root only; without root the suite runs as the calling user alone).
set -euo pipefail
user=${WARD_TEST_USER:-wardtest}
[ "$(id -u)" -eq 0 ] || exit 0
id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$user"
