#!/bin/sh
# Installs ward: the binary, a man page made from its own --help (so it says
# exactly what the binary does), and bash and zsh completion.
#   scripts/install.sh BUILD_DIR [PREFIX] [DESTDIR]
set -eu
build=${1:?usage: install.sh BUILD_DIR [PREFIX] [DESTDIR]}
prefix=${2:-/usr/local}
dest=${3:-}
ward="$build/bin/ward"
[ -x "$ward" ] || { echo "install.sh: $ward not built (run make build)" >&2; exit 1; }
here=$(cd "$(dirname "$0")/.." && pwd)

bin="$dest$prefix/bin"
man="$dest$prefix/share/man/man1"
bash_dir="$dest$prefix/share/bash-completion/completions"
zsh_dir="$dest$prefix/share/zsh/site-functions"
mkdir -p "$bin" "$man" "$bash_dir" "$zsh_dir"

install -m 0755 "$ward" "$bin/ward"
install -m 0644 "$here/completions/ward.bash" "$bash_dir/ward"
install -m 0644 "$here/completions/_ward" "$zsh_dir/_ward"

# The man page: each command's --help, verbatim. In troff a backslash is
# written \e, and a line starting with . or ' would be a request: \& first.
verbatim() {
  printf '%s\n' ".nf"
  "$@" | sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
  printf '%s\n' ".fi"
}
# printf, not echo: dash's echo would read \f in the troff font escapes.
say() { printf '%s\n' "$*"; }
version=$("$ward" --version)
tmp="$man/ward.1.tmp.$$"
{
  say ".TH WARD 1 \"\" \"$version\" \"User Commands\""
  say ".SH NAME"
  say "ward \\- execution containers for AI agents: run a command under a policy the kernel enforces"
  say ".SH SYNOPSIS"
  say ".B ward run"
  say "[\\fIOPTIONS\\fR] [\\fB\\-\\-policy\\fR \\fIFILE\\fR | \\fB\\-\\-profile\\fR \\fINAME\\fR] \\fB\\-\\-\\fR \\fICOMMAND\\fR [\\fIARGS\\fR...]"
  say ".br"
  say ".B ward policy"
  say "\\fBcheck\\fR|\\fBshow\\fR|\\fBprofiles\\fR ..."
  say ".br"
  say ".B ward doctor"
  say "[\\fB\\-\\-json\\fR] [\\fB\\-\\-seccomp\\fR]"
  say ".SH DESCRIPTION"
  verbatim "$ward" --help
  for sub in run policy "policy check" "policy show" "policy profiles" doctor provision start exec stop deprovision ls \
    audit "audit summary" learn; do
    say ".SH \"WARD $(echo "$sub" | tr a-z A-Z)\""
    # shellcheck disable=SC2086
    verbatim "$ward" $sub --help
  done
  say ".SH FILES"
  say "Policies: JSON, see the policy reference (docs/policy.md in the source)."
  say ".SH \"SEE ALSO\""
  say "bwrap(1), unshare(1), landlock(7), seccomp(2)"
} > "$tmp"
mv "$tmp" "$man/ward.1"
chmod 0644 "$man/ward.1"
echo "installed ward in $dest$prefix (bin/ward, share/man/man1/ward.1, bash and zsh completion)"
