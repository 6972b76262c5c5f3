package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// bashCompletion asks hardstrap itself for candidates (urfave/cli's --generate-bash-completion).
const bashCompletion = `# bash completion for hardstrap; load with: source <(hardstrap completion bash)
_hardstrap_complete() {
  local cur words
  cur="${COMP_WORDS[COMP_CWORD]}"
  if [[ "$cur" == -* ]]; then
    words=$("${COMP_WORDS[@]:0:$COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    words=$("${COMP_WORDS[@]:0:$COMP_CWORD}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
  [[ ${#COMPREPLY[@]} -eq 0 ]] && COMPREPLY=($(compgen -f -- "$cur"))
  return 0
}
complete -o filenames -F _hardstrap_complete hardstrap
`

// zshCompletion reuses the bash function through bashcompinit.
const zshCompletion = `#compdef hardstrap
# zsh completion for hardstrap; load with: source <(hardstrap completion zsh)
autoload -U +X bashcompinit && bashcompinit
` + bashCompletion

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash, zsh or fish)",
		ArgsUsage: "SHELL",
		Description: `Examples:
   source <(hardstrap completion bash)
   hardstrap completion zsh > "${fpath[1]}/_hardstrap"
   hardstrap completion fish > ~/.config/fish/completions/hardstrap.fish`,
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			switch shell := c.Args().First(); shell {
			case "bash":
				fmt.Fprint(c.App.Writer, bashCompletion)
			case "zsh":
				fmt.Fprint(c.App.Writer, zshCompletion)
			case "fish":
				script, err := c.App.ToFishCompletion()
				if err != nil {
					return err
				}

				fmt.Fprint(c.App.Writer, script)
			case "":
				return usageError{fmt.Errorf("name a shell: hardstrap completion bash|zsh|fish")}
			default:
				return usageError{fmt.Errorf("unknown shell %q: use bash, zsh or fish", shell)}
			}

			return nil
		},
	}
}
