//! `completion SHELL` flags.

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CompletionShell {
    Bash,
    Zsh,
    Fish,
    /// The `kubectl_complete-mlplatform` script, for `kubectl mlplatform <TAB>` in any shell
    /// whose kubectl completion is set up.
    KubectlPlugin,
}

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Examples:
  # bash, for `kubectl-mlplatform <TAB>`
  source <(kubectl mlplatform completion bash)
  # zsh
  kubectl mlplatform completion zsh > \"${fpath[1]}/_kubectl-mlplatform\"
  # fish
  kubectl mlplatform completion fish > ~/.config/fish/completions/kubectl-mlplatform.fish
  # `kubectl mlplatform <TAB>` (kubectl 1.26+): put the hook next to the plugin on PATH
  kubectl mlplatform completion kubectl-plugin > ~/.local/bin/kubectl_complete-mlplatform
  chmod +x ~/.local/bin/kubectl_complete-mlplatform")]
pub(crate) struct CompletionArgs {
    /// The shell to print a completion script for.
    #[arg(value_enum)]
    pub(crate) shell: CompletionShell,
}
