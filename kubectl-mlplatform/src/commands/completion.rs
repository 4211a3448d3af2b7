//! Shell completion, two ways:
//! - `kubectl mlplatform completion bash|zsh|fish`: a static script (clap_complete) for the
//!   binary called directly as `kubectl-mlplatform`;
//! - `kubectl-mlplatform __complete WORDS...`: what kubectl (1.26+) runs, through the
//!   `kubectl_complete-mlplatform` script on PATH, for `kubectl mlplatform <TAB>`. It speaks
//!   cobra's protocol: one candidate a line (`value\tdescription`), then `:<directive>`.
//!
//! `__complete` is answered before clap parses anything ([`dynamic_request`]), so a partial
//! flag such as `--dry` or a missing flag value never turns into a usage error.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::{Arg, ArgAction, CommandFactory};
use clap_complete::Shell;

use super::error::CommandError;
use crate::cli::Cli;
use crate::cli::completion::{CompletionArgs, CompletionShell};

/// The hidden subcommand kubectl's completion hook calls.
pub(crate) const DYNAMIC_SUBCOMMAND: &str = "__complete";
/// The binary's name on PATH (what static scripts complete).
pub(crate) const BIN_NAME: &str = "kubectl-mlplatform";
/// The whole content of `kubectl_complete-mlplatform`, the file kubectl looks for on PATH to
/// complete `kubectl mlplatform ...` (shipped in the release archives): hand the words to the
/// binary.
pub(crate) const KUBECTL_HOOK_SCRIPT: &str =
    include_str!("../../../scripts/kubectl_complete-mlplatform");

/// Writes the completion script for `shell`.
pub(crate) fn write_script(shell: CompletionShell, out: &mut dyn Write) {
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
        CompletionShell::KubectlPlugin => {
            let _ = out.write_all(KUBECTL_HOOK_SCRIPT.as_bytes());
            return;
        }
    };
    // The static scripts complete the binary by its file name: a shell completes the first
    // word of a command line, and `kubectl mlplatform` is completed through kubectl's hook.
    if shell == Shell::Bash {
        // clap_complete's bash script turns a `-` in the binary's name into a nesting level,
        // so its dispatch names disagree: generate for a name without one, then rename.
        let mut command = with_bin_names(Cli::command().name(BASH_PLACEHOLDER), BASH_PLACEHOLDER);
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command, BASH_PLACEHOLDER, &mut script);
        let script = String::from_utf8_lossy(&script).replace(BASH_PLACEHOLDER, BIN_NAME);
        let _ = out.write_all(script.as_bytes());
        return;
    }
    let mut command = with_bin_names(Cli::command().name(BIN_NAME), BIN_NAME);
    clap_complete::generate(shell, &mut command, BIN_NAME, out);
}

const BASH_PLACEHOLDER: &str = "kubectlXmlplatformXcompletion";

/// Sets every subcommand's bin name from `bin` down, replacing the derived `kubectl mlplatform`.
fn with_bin_names(command: clap::Command, bin: &str) -> clap::Command {
    let children: Vec<String> = command
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    let mut command = command.bin_name(bin);
    for child in children {
        let child_bin = format!("{bin} {child}");
        command = command.mut_subcommand(&child, |sc| with_bin_names(sc, &child_bin));
    }
    command
}

pub(crate) fn run(args: &CompletionArgs) -> Result<ExitCode, CommandError> {
    let mut script = Vec::new();
    write_script(args.shell, &mut script);
    std::io::stdout()
        .write_all(&script)
        .map_err(|e| CommandError::Output(e.to_string()))?;
    Ok(ExitCode::SUCCESS)
}

/// The words after `__complete` when the command line asks for dynamic completion.
pub fn dynamic_request(args: impl IntoIterator<Item = OsString>) -> Option<Vec<String>> {
    let mut args = args.into_iter().skip(1);
    if args.next()? != DYNAMIC_SUBCOMMAND {
        return None;
    }
    Some(
        args.map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>(),
    )
}

/// Prints the candidates for `words` (the last one is being completed) in cobra's format.
pub fn run_dynamic(words: &[String]) -> ExitCode {
    let completions = complete(words);
    let mut out = std::io::stdout().lock();
    match out
        .write_all(completions.render().as_bytes())
        .and_then(|()| out.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// cobra's ShellCompDirective bits.
mod directive {
    /// Let the shell complete file names when there is no candidate.
    pub(crate) const DEFAULT: u32 = 0;
    #[allow(dead_code)] // cobra's set, kept whole
    pub(crate) const NO_SPACE: u32 = 2;
    pub(crate) const NO_FILE_COMP: u32 = 4;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) value: String,
    pub(crate) description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Completions {
    pub(crate) candidates: Vec<Candidate>,
    pub(crate) directive: u32,
}

impl Completions {
    /// cobra's wire format: `value[\tdescription]` lines, then `:directive`.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.candidates {
            out.push_str(&c.value);
            if let Some(d) = c.description.as_deref().filter(|d| !d.is_empty()) {
                out.push('\t');
                out.push_str(d);
            }
            out.push('\n');
        }
        out.push_str(&format!(":{}\n", self.directive));
        out
    }

    #[cfg(test)]
    pub(crate) fn values(&self) -> Vec<&str> {
        self.candidates.iter().map(|c| c.value.as_str()).collect()
    }
}

fn first_line(text: Option<&clap::builder::StyledStr>) -> Option<String> {
    text.map(|t| t.to_string().lines().next().unwrap_or_default().to_owned())
}

fn takes_value(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Set | ArgAction::Append)
}

/// An optional value must be attached (`--dry-run=server`), so the next word is not its value.
fn value_is_optional(arg: &Arg) -> bool {
    arg.get_num_args().is_some_and(|n| n.min_values() == 0) || arg.is_require_equals_set()
}

/// Candidate values for an option or positional: its enum values, built-in profile names.
fn values_for(arg: &Arg, prefix: &str, add: &str) -> Completions {
    let mut candidates: Vec<Candidate> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| Candidate {
            value: v.get_name().to_owned(),
            description: first_line(v.get_help()),
        })
        .collect();
    let mut directive = directive::NO_FILE_COMP;
    if arg.get_id() == "profile" {
        candidates.extend(crate::profile::BUILTIN.iter().map(|(name, _)| Candidate {
            value: (*name).to_owned(),
            description: Some("built-in profile".into()),
        }));
        // A profile may also be a YAML file.
        directive = directive::DEFAULT;
    } else if candidates.is_empty() {
        // Free text (a name, an ARN) or a path: let the shell offer files.
        directive = directive::DEFAULT;
    }
    candidates.retain(|c| c.value.starts_with(prefix));
    for c in &mut candidates {
        c.value.insert_str(0, add);
    }
    Completions {
        candidates,
        directive,
    }
}

fn find_long<'a>(cmd: &'a clap::Command, name: &str) -> Option<&'a Arg> {
    cmd.get_arguments().find(|a| {
        a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|v| v.contains(&name))
    })
}

fn find_short(cmd: &clap::Command, c: char) -> Option<&Arg> {
    cmd.get_arguments().find(|a| a.get_short() == Some(c))
}

/// Pure: the completions for `words`, whose last element is the word being completed
/// (empty after a space). Walks [`Cli::command`]: subcommands, flags (globals included),
/// option values and positional values.
pub(crate) fn complete(words: &[String]) -> Completions {
    let mut root = Cli::command();
    // Propagates global flags into every subcommand, as parsing would.
    root.build();
    let (current, typed) = match words.split_last() {
        Some((last, before)) => (last.as_str(), before),
        None => ("", &[][..]),
    };

    let mut cmd = &root;
    let mut positionals = 0usize;
    let mut pending_value: Option<&Arg> = None;
    let mut only_positionals = false;
    for word in typed {
        if pending_value.take().is_some() {
            continue;
        }
        if !only_positionals && word == "--" {
            only_positionals = true;
            continue;
        }
        if !only_positionals && let Some(long) = word.strip_prefix("--") {
            if !long.contains('=')
                && let Some(arg) = find_long(cmd, long)
                && takes_value(arg)
                && !value_is_optional(arg)
            {
                pending_value = Some(arg);
            }
            continue;
        }
        if !only_positionals && word.len() > 1 && word.starts_with('-') {
            // `-n ns`, `-nns`, `-o=json`: only a value-taking last letter consumes the next word.
            let letters: Vec<char> = word[1..].chars().collect();
            if let Some((i, arg)) = letters.iter().enumerate().find_map(|(i, c)| {
                find_short(cmd, *c)
                    .filter(|a| takes_value(a))
                    .map(|a| (i, a))
            }) && i + 1 == letters.len()
                && !value_is_optional(arg)
            {
                pending_value = Some(arg);
            }
            continue;
        }
        if let Some(sub) = cmd.find_subcommand(word) {
            cmd = sub;
            positionals = 0;
        } else {
            positionals += 1;
        }
    }

    if let Some(arg) = pending_value {
        return values_for(arg, current, "");
    }
    if !only_positionals && current.starts_with('-') {
        if let Some((flag, value)) = current.split_once('=')
            && let Some(arg) = flag.strip_prefix("--").and_then(|l| find_long(cmd, l))
        {
            return values_for(arg, value, &format!("{flag}="));
        }
        let mut candidates: Vec<Candidate> = cmd
            .get_arguments()
            .filter(|a| !a.is_hide_set() && !a.is_positional())
            .flat_map(|a| {
                let help = first_line(a.get_help());
                let long = a.get_long().map(|l| Candidate {
                    value: format!("--{l}"),
                    description: help.clone(),
                });
                // Short flags only once the user typed a single dash.
                let short = a
                    .get_short()
                    .filter(|_| !current.starts_with("--"))
                    .map(|s| Candidate {
                        value: format!("-{s}"),
                        description: help.clone(),
                    });
                long.into_iter().chain(short)
            })
            .filter(|c| c.value.starts_with(current))
            .collect();
        candidates.sort_by(|a, b| a.value.cmp(&b.value));
        candidates.dedup_by(|a, b| a.value == b.value);
        return Completions {
            candidates,
            directive: directive::NO_FILE_COMP,
        };
    }
    let mut candidates: Vec<Candidate> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| Candidate {
            value: s.get_name().to_owned(),
            description: first_line(s.get_about()),
        })
        .filter(|c| c.value.starts_with(current))
        .collect();
    if candidates.is_empty() && cmd.get_subcommands().next().is_none() {
        // No subcommands here: the next positional's values, if any.
        if let Some(arg) = cmd.get_positionals().nth(positionals) {
            return values_for(arg, current, "");
        }
    }
    candidates.sort_by(|a, b| a.value.cmp(&b.value));
    Completions {
        candidates,
        directive: directive::NO_FILE_COMP,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| (*s).to_owned()).collect()
    }

    fn values(w: &[&str]) -> Vec<String> {
        complete(&words(w))
            .values()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn top_level_lists_visible_subcommands_with_descriptions() {
        let c = complete(&words(&[""]));
        let v = c.values();
        for expected in ["connect", "disconnect", "doctor", "completion", "version"] {
            assert!(v.contains(&expected), "{expected} missing from {v:?}");
        }
        assert!(!v.contains(&DYNAMIC_SUBCOMMAND));
        assert_eq!(c.directive, directive::NO_FILE_COMP);
        let connect = c.candidates.iter().find(|c| c.value == "connect").unwrap();
        assert!(connect.description.as_deref().unwrap().contains("profile"));
        assert!(c.render().ends_with(":4\n"));
    }

    #[test]
    fn prefix_filters_subcommands() {
        assert_eq!(values(&["con"]), ["connect"]);
        assert_eq!(values(&["d"]), ["disconnect", "doctor"]);
        assert_eq!(values(&["namespace", ""]), ["add", "list", "remove"]);
        assert!(values(&["zzz"]).is_empty());
    }

    #[test]
    fn flags_include_globals_after_the_subcommand() {
        let v = values(&["connect", "--"]);
        for expected in [
            "--profile",
            "--cluster-admin",
            "--context",
            "--dry-run",
            "--output",
        ] {
            assert!(v.iter().any(|f| f == expected), "{expected} missing: {v:?}");
        }
        assert_eq!(values(&["connect", "--pro"]), ["--profile"]);
        assert!(values(&["connect", "-"]).iter().any(|f| f == "-p"));
    }

    #[test]
    fn option_values_come_from_enums_and_builtin_profiles() {
        assert_eq!(values(&["connect", "-o", ""]), ["table", "json", "yaml"]);
        assert_eq!(
            values(&["connect", "--dry-run="]),
            ["--dry-run=none", "--dry-run=client", "--dry-run=server"]
        );
        let c = complete(&words(&["connect", "--profile", "con"]));
        assert_eq!(c.values(), ["concurrent"]);
        assert_eq!(c.directive, directive::DEFAULT, "a profile may be a file");
        assert_eq!(
            values(&["completion", ""]),
            ["bash", "zsh", "fish", "kubectl-plugin"]
        );
    }

    #[test]
    fn option_values_are_skipped_while_walking() {
        // `--context connect` is a value, not the subcommand.
        assert_eq!(values(&["--context", "connect", "ver"]), ["version"]);
        assert_eq!(values(&["-n", "ns", "profiles", "s"]), ["show"]);
        // An optional attached value does not swallow the next word.
        assert_eq!(values(&["--dry-run", "namespace", "l"]), ["list"]);
    }

    #[test]
    fn dynamic_request_only_for_the_hidden_subcommand() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            dynamic_request(args(&["kubectl-mlplatform", "__complete", "co", ""])),
            Some(words(&["co", ""]))
        );
        assert_eq!(
            dynamic_request(args(&["kubectl-mlplatform", "connect"])),
            None
        );
        assert_eq!(dynamic_request(args(&["kubectl-mlplatform"])), None);
    }

    #[test]
    fn static_scripts_name_the_binary() {
        for (shell, needle) in [
            (CompletionShell::Bash, "complete -F _kubectl-mlplatform"),
            (CompletionShell::Zsh, "#compdef kubectl-mlplatform"),
            (CompletionShell::Fish, "complete -c kubectl-mlplatform"),
            (
                CompletionShell::KubectlPlugin,
                "exec kubectl-mlplatform __complete",
            ),
        ] {
            let mut out = Vec::new();
            write_script(shell, &mut out);
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains(needle), "{shell:?}: {needle} not in\n{text}");
            assert!(!text.contains("kubectl mlplatform_"), "{shell:?}");
        }
    }
}
