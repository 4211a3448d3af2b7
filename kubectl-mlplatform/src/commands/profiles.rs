//! `profiles list|show`: the built-in profiles are data; `show -o yaml` loads back via
//! `--profile FILE`.

use std::process::ExitCode;

use super::error::CommandError;
use crate::cli::ProfilesCommand;
use crate::common::{GlobalArgs, OutputFormat};
use crate::output::{render_data, table};
use crate::profile::{builtin_profiles, load_profile};

#[derive(serde::Serialize)]
struct ProfileSummary<'a> {
    name: &'a str,
    description: &'a str,
    steps: Vec<&'static str>,
}

pub(crate) fn run(global: &GlobalArgs, cmd: &ProfilesCommand) -> Result<ExitCode, CommandError> {
    let text = match cmd {
        ProfilesCommand::List => {
            let profiles = builtin_profiles()?;
            let summaries: Vec<ProfileSummary<'_>> = profiles
                .iter()
                .map(|p| ProfileSummary {
                    name: p.name(),
                    description: &p.metadata.description,
                    steps: p.step_kinds().iter().map(|k| k.as_str()).collect(),
                })
                .collect();
            match global.output {
                OutputFormat::Table => {
                    let mut rows = vec![vec!["NAME".to_owned(), "DESCRIPTION".to_owned()]];
                    rows.extend(
                        summaries
                            .iter()
                            .map(|s| vec![s.name.to_owned(), s.description.to_owned()]),
                    );
                    table(&rows)
                }
                format => render_data(&summaries, format).map_err(CommandError::Output)?,
            }
        }
        ProfilesCommand::Show { name } => {
            let profile = load_profile(name)?;
            // A profile is YAML data: the table view is the YAML itself.
            let format = match global.output {
                OutputFormat::Json => OutputFormat::Json,
                _ => OutputFormat::Yaml,
            };
            render_data(&profile, format).map_err(CommandError::Output)?
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
