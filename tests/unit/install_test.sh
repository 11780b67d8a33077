#!/bin/sh
# `make install` (scripts/install.sh) into a temporary root: the binary runs,
# the man page holds every subcommand's --help, and the bash completion
# offers every option `ward run --help` lists.
#   install_test.sh SOURCE_DIR BUILD_DIR
set -eu
src=$1
build=$2
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
fail() { echo "install_test: $*" >&2; exit 1; }

"$src/scripts/install.sh" "$build" /usr "$root" >/dev/null
ward="$root/usr/bin/ward"
[ -x "$ward" ] || fail "no $ward"
"$ward" --version | grep -q '^ward ' || fail "the installed ward does not run"
man="$root/usr/share/man/man1/ward.1"
[ -f "$man" ] || fail "no man page"
for section in "WARD RUN" "WARD POLICY CHECK" "WARD POLICY SHOW" "WARD DOCTOR" "WARD PROVISION" "WARD EXEC" "WARD LS" \
  "WARD AUDIT" "WARD LEARN"; do
  grep -q "^.SH \"$section\"" "$man" || fail "man page lacks $section"
done
grep -q -- '--result-file' "$man" || fail "man page lacks an option of ward run --help"
if command -v groff >/dev/null 2>&1; then
  groff -man -Tutf8 -ww -z "$man" 2>"$root/groff.err" || fail "groff: $(cat "$root/groff.err")"
fi
bash_completion="$root/usr/share/bash-completion/completions/ward"
bash -n "$bash_completion" || fail "bash completion does not parse"
for sub in run provision start exec stop deprovision ls audit learn; do
 grep -q -- "$sub" "$bash_completion" || fail "bash completion lacks the subcommand $sub"
 for opt in $("$ward" $sub --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
  grep -q -- "$opt" "$bash_completion" || fail "bash completion lacks $opt ($sub)"
  grep -q -- "$opt" "$root/usr/share/zsh/site-functions/_ward" || fail "zsh completion lacks $opt ($sub)"
 done
done
# Completing "ward r" offers run.
out=$(bash -c ". '$bash_completion'; COMP_WORDS=(ward r); COMP_CWORD=1; _ward; echo \"\${COMPREPLY[*]}\"")
[ "$out" = run ] || fail "completing 'ward r' gave '$out'"
echo "install_test: ok"
