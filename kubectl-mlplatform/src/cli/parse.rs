//! Value parsers of flags.

use std::time::Duration;

/// `--param name=value`.
pub(crate) fn parse_param(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))?;
    if k.trim().is_empty() {
        return Err(format!("{s:?} has an empty NAME"));
    }
    Ok((k.trim().to_owned(), v.to_owned()))
}

/// `90s`, `5m`, `1h` or plain seconds.
pub(crate) fn parse_timeout(s: &str) -> Result<Duration, String> {
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; use e.g. 90s, 5m or 1h"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3_600),
        _ => return Err(format!("{s:?} is not a duration; use e.g. 90s, 5m or 1h")),
    };
    Ok(Duration::from_secs(seconds))
}
