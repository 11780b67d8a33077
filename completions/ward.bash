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
    COMPREPLY=($(compgen -W "run policy doctor provision start exec stop deprovision ls audit learn --help --version" -- "$cur"))
    return
  fi
  case $sub in
    run)
      case $prev in
        -p | --policy | --result-file | --workspace | --cwd | --read | --write | --deny) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --profile) COMPREPLY=($(compgen -W "offline-readonly workspace-write minimal" -- "$cur")); return ;;
        --env) COMPREPLY=($(compgen -v -- "$cur")); return ;;
        --timeout | --timeout-ms | --memory | --allow-net | --result-fd | --dns-server | --agent) return ;;
      esac
      COMPREPLY=($(compgen -W "--help --policy --profile --workspace --read --write --deny --allow-net --env --cwd --memory --timeout --timeout-ms --pty --json --result-fd --result-file --shell --strict --dns-server --agent --" -- "$cur"))
      ;;
    policy)
      if ((cword == 2)); then
        COMPREPLY=($(compgen -W "check show profiles --help" -- "$cur"))
      elif [[ $prev == --profile ]]; then
        COMPREPLY=($(compgen -W "offline-readonly workspace-write minimal" -- "$cur"))
      elif [[ ${words[2]} == show ]]; then
        COMPREPLY=($(compgen -f -- "$cur") $(compgen -W "--help --policy --profile --workspace --read --write --deny --allow-net --env --cwd --memory --timeout --timeout-ms" -- "$cur"))
      else
        COMPREPLY=($(compgen -f -- "$cur") $(compgen -W "--help --json --strict --workspace" -- "$cur"))
      fi
      ;;
    doctor)
      COMPREPLY=($(compgen -W "--help --json --seccomp" -- "$cur"))
      ;;
    provision)
      case $prev in
        -p | --policy | --workspace | --cwd | --read | --write | --deny) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --profile) COMPREPLY=($(compgen -W "offline-readonly workspace-write minimal" -- "$cur")); return ;;
        --env) COMPREPLY=($(compgen -v -- "$cur")); return ;;
        --name | --agent | --timeout | --timeout-ms | --memory | --allow-net | --dns-server) return ;;
      esac
      COMPREPLY=($(compgen -W "--help --policy --profile --workspace --read --write --deny --allow-net --env --cwd --memory --timeout --timeout-ms --name --agent --dns-server" -- "$cur"))
      ;;
    start | stop | deprovision | exec)
      if ((cword == 2)); then
        local rt=${WARD_RUNTIME_DIR:-${XDG_RUNTIME_DIR:+$XDG_RUNTIME_DIR/ward}}
        [[ -z $rt && $EUID -eq 0 ]] && rt=/run/ward
        COMPREPLY=($(compgen -W "$(ls "$rt/names" 2>/dev/null)" -- "$cur"))
      elif [[ $sub == exec ]]; then
        case $prev in --cwd) COMPREPLY=($(compgen -f -- "$cur")); return ;; --env) COMPREPLY=($(compgen -v -- "$cur")); return ;; esac
        COMPREPLY=($(compgen -W "--help --pty --json --env --cwd --" -- "$cur"))
      else
        COMPREPLY=($(compgen -W "--help --grace-ms" -- "$cur"))
      fi
      ;;
    ls)
      COMPREPLY=($(compgen -W "--help --json" -- "$cur"))
      ;;
    learn)
      [[ " ${words[*]} " == *" -- "* ]] && return
      case $prev in
        --within | -o | --output) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --workspace) COMPREPLY=($(compgen -d -- "$cur")); return ;;
        --agent | --dns-server) return ;;
      esac
      COMPREPLY=($(compgen -W "--help --within -o --output --workspace --agent --dns-server --" -- "$cur"))
      ;;
    audit)
      if [[ ${words[2]:-} == summary ]]; then
        [[ $prev == --db ]] && { COMPREPLY=($(compgen -f -- "$cur")); return; }
        COMPREPLY=($(compgen -W "--help --sandbox --json --db" -- "$cur"))
        return
      fi
      ((cword == 2)) && [[ $cur != -* ]] && { COMPREPLY=($(compgen -W "summary" -- "$cur")); return; }
      case $prev in
        --db) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --kind) COMPREPLY=($(compgen -W "start exec file exit egress limit trim dropped" -- "$cur")); return ;;
        --format) COMPREPLY=($(compgen -W "table json ocsf syslog" -- "$cur")); return ;;
        --syslog-socket) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --agent | --sandbox | --since | --until | --limit) return ;;
      esac
      COMPREPLY=($(compgen -W "--help --agent --sandbox --kind --denied --allowed --since --until --limit --json --format --syslog-socket --follow --db" -- "$cur"))
      ;;
  esac
}
complete -F _ward ward
