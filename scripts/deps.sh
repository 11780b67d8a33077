#!/usr/bin/env bash
# Installs the Debian packages ward needs to build and test, if missing.
# git, tmux, nodejs, python3-venv (and make, cc from build-essential): the
# programs tests/e2e runs inside ward; default-jre-headless: a JVM that must
# start under a memory limit (tests/e2e python_limits).
set -euo pipefail
pkgs=(
  build-essential cmake ninja-build pkg-config ccache g++ clang libclang-rt-14-dev
  libseccomp-dev libmd-dev libsqlite3-dev nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev
  bubblewrap python3 python3-jsonschema util-linux passwd procps
  nftables iproute2 curl netcat-openbsd openssl bind9-dnsutils
  git tmux nodejs python3-venv default-jre-headless
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
