# bash completion for ward (installed by `make install`).
_ward() {
  local cur prev words cword
  _init_completion 2>/dev/null || { cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; }
  local sub=${words[1]:-}
  # After --, the command being sandboxed.
  local i
  for ((i = 1; i < cword; i++)); do
    if [[ ${words[i]} == -- ]]; then
      COMPREPLY=($(compgen -c -- "$cur"))
      return
    fi
  done
  if ((cword == 1)); then
    COMPREPLY=($(compgen -W "run policy doctor --help --version" -- "$cur"))
    return
  fi
  case $sub in
    run)
      case $prev in
        -p | --policy | --result-file | --workspace | --cwd) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --profile) COMPREPLY=($(compgen -W "offline-readonly workspace-write minimal" -- "$cur")); return ;;
        --timeout-ms | --result-fd | --dns-server) return ;;
      esac
      COMPREPLY=($(compgen -W "--help --policy --profile --workspace --pty --json --result-fd --result-file --shell --timeout-ms --cwd --dns-server --" -- "$cur"))
      ;;
    policy)
      if ((cword == 2)); then
        COMPREPLY=($(compgen -W "check show profiles --help" -- "$cur"))
      elif [[ $prev == --profile ]]; then
        COMPREPLY=($(compgen -W "offline-readonly workspace-write minimal" -- "$cur"))
      else
        COMPREPLY=($(compgen -f -- "$cur") $(compgen -W "--help --json --policy --profile --workspace" -- "$cur"))
      fi
      ;;
    doctor)
      COMPREPLY=($(compgen -W "--help --json --seccomp" -- "$cur"))
      ;;
  esac
}
complete -F _ward ward
