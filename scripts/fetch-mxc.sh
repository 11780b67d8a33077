#!/usr/bin/env bash
# Fetches MXC's own Linux executor, lxc-exec, as a side-by-side baseline for
# bench/ (see docs/performance.md). It ships inside the npm package
# @microsoft/mxc-sdk at bin/x64/lxc-exec; this unpacks it under DEST
# (default: <repo>/build/mxc, outside git) as DEST/package/bin/x64/lxc-exec.
#
# Idempotent: nothing happens when lxc-exec is already there. Never fails a
# build: if npm is missing or the registry is unreachable it says so and
# exits 0 (the benchmark then reports lxc-exec as absent), and it does not
# try again for an hour unless --force is given.
#
#   scripts/fetch-mxc.sh [--force] [DEST]
set -uo pipefail

VERSION="${MXC_SDK_VERSION:-1.0.1}"
force=0
if [ "${1:-}" = "--force" ]; then
  force=1
  shift
fi
repo="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$repo/build/mxc}"
exe="$dest/package/bin/x64/lxc-exec"
stamp="$dest/.unreachable"

say() { echo "fetch-mxc: $*" >&2; }

if [ -x "$exe" ] && [ "$force" = 0 ]; then
  exit 0
fi
if [ "$(uname -m)" != "x86_64" ]; then
  say "lxc-exec is fetched for x86_64 only (this is $(uname -m)); the benchmark will report it as absent"
  exit 0
fi
if [ "$force" = 0 ] && [ -n "$(find "$stamp" -mmin -60 2>/dev/null)" ]; then
  exit 0  # failed less than an hour ago; --force to retry now
fi
if ! command -v npm >/dev/null 2>&1; then
  say "npm not found; lxc-exec will be reported as absent"
  exit 0
fi

mkdir -p "$dest" || { say "cannot create $dest"; exit 0; }
tmp="$(mktemp -d "$dest/.fetch.XXXXXX")" || { say "cannot create a temporary directory in $dest"; exit 0; }
trap 'rm -rf "$tmp"' EXIT

# npm retries for minutes by default when offline; bound it.
if ! (cd "$tmp" && timeout 120 npm pack --loglevel=error --fetch-retries=1 --fetch-timeout=30000 \
        "@microsoft/mxc-sdk@$VERSION" >/dev/null 2>"$tmp/npm.err"); then
  say "npm pack @microsoft/mxc-sdk@$VERSION failed; lxc-exec will be reported as absent"
  sed 's/^/fetch-mxc:   /' "$tmp/npm.err" | tail -n 3 >&2
  touch "$stamp"
  exit 0
fi
tgz="$(ls "$tmp"/*.tgz 2>/dev/null | head -n 1)"
if [ -z "$tgz" ] || ! tar -xzf "$tgz" -C "$tmp" package/bin/x64/lxc-exec package/package.json \
                         package/README.md package/LICENSE.md 2>/dev/null; then
  say "the package holds no package/bin/x64/lxc-exec; lxc-exec will be reported as absent"
  touch "$stamp"
  exit 0
fi
# Move into place whole, so a concurrent build never sees half a tree; if
# another fetch got there first, keep its copy.
if [ -x "$exe" ] && [ "$force" = 0 ]; then
  exit 0
fi
rm -rf "$dest/package.old"
[ -d "$dest/package" ] && mv -T "$dest/package" "$dest/package.old" 2>/dev/null
mv -T "$tmp/package" "$dest/package" 2>/dev/null
rm -rf "$dest/package.old"
rm -f "$stamp"
if [ -x "$exe" ]; then
  say "lxc-exec $VERSION at $exe"
fi
exit 0
