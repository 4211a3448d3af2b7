//! `kubectl-mlplatform`: parse first (so `--help` needs no runtime), then run and map the
//! outcome to an exit code: 0 ok, 1 failed, 2 usage.

use std::process::ExitCode;

use clap::Parser;
use kubectl_mlplatform::cli::Cli;
use kubectl_mlplatform::{commands, logging};

fn main() -> ExitCode {
    // kubectl's completion hook: answered before parsing, so partial words are no error.
    if let Some(words) = commands::completion::dynamic_request(std::env::args_os()) {
        return commands::completion::run_dynamic(&words);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // One crypto provider everywhere (ring); a second install attempt is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    logging::init(&cli.global);
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", e.line());
            ExitCode::from(e.exit_code())
        }
    }
}
