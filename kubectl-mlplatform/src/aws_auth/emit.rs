//! Writing aws-auth entries as YAML that every reader takes the same way.
//!
//! aws-iam-authenticator reads aws-auth with a YAML 1.1 parser (go-yaml v2 through
//! sigs.k8s.io/yaml), this code with a 1.2 one, and the two disagree on plain scalars such as
//! `2024-01-01` (a date to 1.1), `yes`/`on`/`y` (booleans to 1.1), `0755` (octal to 1.1), `1:20`
//! (sexagesimal to 1.1) or `0o17`. So a string is written plain only when it looks like an
//! identifier that no reader can take for anything else; every other string is double-quoted.

use serde_yaml_ng::{Number, Value};

/// YAML 1.1 booleans and nulls that start with a letter (go-yaml v2 also takes `y`/`n`);
/// compared case-insensitively, which only ever quotes more.
const RESERVED_WORDS: [&str; 9] = ["y", "n", "yes", "no", "on", "off", "true", "false", "null"];

/// True when `s` can be written as a plain scalar and reads back as the same string under
/// YAML 1.1 and 1.2 (block context). Conservative: ARNs, usernames, groups and simple words
/// stay plain, and anything starting with a digit, a sign, `.`, `~`, `<`, `=` or an indicator
/// is quoted, which covers every number, date, `.inf`/`.nan`, `<<` and `=`.
pub(crate) fn plain_is_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '_' || first == '/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:@{}+= ".contains(c))
        && !s.ends_with([':', ' '])
        && !s.contains(": ")
        && !s.contains(" #")
        && !RESERVED_WORDS.contains(&s.to_ascii_lowercase().as_str())
}

/// YAML's printable set less its line breaks (NEL, LS, PS would be folded): anything else is
/// escaped inside double quotes.
fn printable(c: char) -> bool {
    matches!(u32::from(c), 0x20..=0x7E | 0xA0..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10_FFFF)
        && !matches!(c, '\u{FEFF}' | '\u{2028}' | '\u{2029}')
}

/// A double-quoted scalar: only escapes that YAML 1.1 and 1.2 both define.
pub(crate) fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if printable(c) => out.push(c),
            c if u32::from(c) <= 0xFFFF => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push_str(&format!("\\U{:08X}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

/// A number both readers take as that number: a float always carries a `.` and a signed
/// exponent (YAML 1.1 reads `1e3` as a string).
fn number_text(n: &Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let Some(f) = n.as_f64() else {
        return n.to_string();
    };
    if f.is_nan() {
        return ".nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.to_owned();
    }
    let text = format!("{f:?}");
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m.to_owned(), Some(e.to_owned())),
        None => (text.clone(), None),
    };
    let mantissa = if mantissa.contains('.') {
        mantissa
    } else {
        format!("{mantissa}.0")
    };
    match exponent {
        Some(e) if e.starts_with(['-', '+']) => format!("{mantissa}e{e}"),
        Some(e) => format!("{mantissa}e+{e}"),
        None => mantissa,
    }
}

/// A scalar (or empty collection) on one line; None for what this emitter does not write
/// (tagged values, complex keys), so the caller can fall back.
fn leaf(v: &Value, flow: bool) -> Option<String> {
    Some(match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number_text(n),
        // Flow context forbids more in plain scalars (`,[]{}`, and PyYAML refuses `:`).
        Value::String(s) if !flow && plain_is_safe(s) => s.clone(),
        Value::String(s) => double_quoted(s),
        Value::Sequence(items) if items.is_empty() => "[]".to_owned(),
        Value::Mapping(map) if map.is_empty() => "{}".to_owned(),
        _ => return None,
    })
}

fn key_text(k: &Value, flow: bool) -> Option<String> {
    match k {
        Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => None,
        scalar => leaf(scalar, flow),
    }
}

/// After `key:` — a scalar on the same line, a mapping indented below, a sequence at the key's
/// own indentation (the style serde_yaml and kubectl write).
fn after_key(v: &Value, indent: usize, out: &mut String) -> Option<()> {
    match v {
        Value::Mapping(map) if !map.is_empty() => {
            out.push('\n');
            out.push_str(&" ".repeat(indent + 2));
            node(v, indent + 2, out)
        }
        Value::Sequence(items) if !items.is_empty() => {
            out.push('\n');
            for item in items {
                out.push_str(&" ".repeat(indent));
                out.push_str("- ");
                node(item, indent + 2, out)?;
            }
            Some(())
        }
        other => {
            out.push(' ');
            out.push_str(&leaf(other, false)?);
            out.push('\n');
            Some(())
        }
    }
}

/// A node that starts at the current position (after `- ` or at the start of its line) and
/// whose further lines are indented by `indent`.
fn node(v: &Value, indent: usize, out: &mut String) -> Option<()> {
    match v {
        Value::Mapping(map) if !map.is_empty() => {
            for (i, (k, val)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(&" ".repeat(indent));
                }
                out.push_str(&key_text(k, false)?);
                out.push(':');
                after_key(val, indent, out)?;
            }
            Some(())
        }
        Value::Sequence(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&" ".repeat(indent));
                }
                out.push_str("- ");
                node(item, indent + 2, out)?;
            }
            Some(())
        }
        other => {
            out.push_str(&leaf(other, false)?);
            out.push('\n');
            Some(())
        }
    }
}

/// A block sequence of `items`, each line prefixed by `indent`.
pub(crate) fn block_list(items: &[Value], indent: &str) -> Option<String> {
    if items.is_empty() {
        return Some("[]\n".to_owned());
    }
    let mut body = String::new();
    node(&Value::Sequence(items.to_vec()), 0, &mut body)?;
    Some(body.lines().map(|l| format!("{indent}{l}\n")).collect())
}

/// One value in flow style (`{"k": "v", "list": ["a"]}`), every string double-quoted.
pub(crate) fn flow(v: &Value) -> Option<String> {
    match v {
        Value::Mapping(map) => {
            let fields = map
                .iter()
                .map(|(k, val)| Some(format!("{}: {}", key_text(k, true)?, flow(val)?)))
                .collect::<Option<Vec<_>>>()?;
            Some(format!("{{{}}}", fields.join(", ")))
        }
        Value::Sequence(items) => {
            let items = items.iter().map(flow).collect::<Option<Vec<_>>>()?;
            Some(format!("[{}]", items.join(", ")))
        }
        scalar => leaf(scalar, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<Value> {
        serde_yaml_ng::from_str(text).unwrap()
    }

    #[test]
    fn identifiers_stay_plain_and_lookalikes_are_quoted() {
        for s in [
            "arn:aws:iam::111122223333:role/a",
            "system:node:{{EC2PrivateDNSName}}",
            "system:masters",
            "concurrent",
            "Yesterday",
            "keep me",
        ] {
            assert!(plain_is_safe(s), "{s}");
        }
        for s in [
            "",
            "2024-01-01",
            "yes",
            "No",
            "ON",
            "off",
            "y",
            "N",
            "~",
            "null",
            "0755",
            "0o17",
            "1e3",
            "0x1F",
            "1:20",
            ".inf",
            "-.Inf",
            ".nan",
            "<<",
            "=",
            "true",
            "a: b",
            "#x",
            "- x",
            "[x]",
            "{x}",
            "a #b",
            "key:",
            "trailing ",
            " lead",
            "é",
        ] {
            assert!(!plain_is_safe(s), "{s}");
        }
    }

    #[test]
    fn block_list_matches_the_usual_style_and_parses_back() {
        let entries = parse(
            "- rolearn: arn:aws:iam::1:role/a\n  username: a\n  groups:\n  - system:nodes\n  note: \"2024-01-01\"\n  n: 3\n  sub:\n    k: \"yes\"\n  empty: []\n",
        );
        let text = block_list(&entries, "").unwrap();
        assert_eq!(
            text,
            "- rolearn: arn:aws:iam::1:role/a\n  username: a\n  groups:\n  - system:nodes\n  note: \"2024-01-01\"\n  \"n\": 3\n  sub:\n    k: \"yes\"\n  empty: []\n"
        );
        assert_eq!(parse(&text), entries);
        assert_eq!(block_list(&[], "").unwrap(), "[]\n");
        let indented = block_list(&entries[..1], "  ").unwrap();
        assert!(indented.lines().all(|l| l.starts_with("  ")), "{indented}");
    }

    #[test]
    fn awkward_strings_and_numbers_round_trip() {
        let strings = [
            "tab\there",
            "multi\nline",
            "quote \" and \\",
            "\u{7f}\u{85}\u{feff}\u{2028}",
            "😀",
        ];
        for s in strings {
            let v = vec![Value::String(s.to_owned())];
            assert_eq!(parse(&block_list(&v, "").unwrap()), v, "{s:?}");
            assert_eq!(parse(&format!("[{}]", flow(&v[0]).unwrap())), v, "{s:?}");
        }
        for f in [1.0, 1e300, -2.5e-7, f64::INFINITY, f64::NEG_INFINITY] {
            let text = number_text(&Number::from(f));
            assert!(text.contains('.'), "{text}");
            assert_eq!(parse(&format!("- {text}\n")), vec![Value::Number(f.into())]);
        }
        assert_eq!(number_text(&Number::from(f64::NAN)), ".nan");
    }
    /// Plain scalars as YAML readers resolve them; a string is safe plain only when every
    /// reader here takes it as a string.
    mod resolvers {
        use std::sync::LazyLock;

        use regex::Regex;

        /// PyYAML's (resolver.py) and go-yaml v2's (resolve.go) implicit types for YAML 1.1,
        /// and the YAML 1.2 core schema (what serde_yaml_ng and go-yaml v3 read).
        static NOT_A_STRING: LazyLock<Vec<Regex>> = LazyLock::new(|| {
            [
                // 1.1 bool (go-yaml v2 adds y/n)
                r"^(?:y|Y|n|N|yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$",
                // 1.1 int: binary, octal, decimal, hex, sexagesimal
                r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
                // 1.1 float (PyYAML's, with its "1e3 is not a float" rule)
                r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
                // go-yaml v2 floats and Go's integer syntax (strconv with base 0: 0o, 0b, _)
                r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$",
                r"^[-+]?0[oObBxX][0-9a-fA-F_]+$",
                // 1.1 null, merge, value
                r"^(?:~|null|Null|NULL|)$",
                r"^<<$",
                r"^=$",
                // 1.1 timestamp
                r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$",
                // 1.2 core: ints in 3 bases, floats, .inf/.nan, bool, null
                r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$",
                r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$",
                r"^(?:[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
            ]
            .iter()
            .map(|p| Regex::new(p).unwrap())
            .collect()
        });

        pub(crate) fn some_reader_takes_it_for_a_non_string(plain: &str) -> bool {
            NOT_A_STRING.iter().any(|r| r.is_match(plain))
        }
    }

    /// Strings YAML 1.1 readers take for something else, and near misses.
    fn lookalike() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            proptest::sample::select(vec![
                "2024-01-01",
                "2001-12-14t21:59:43.10-05:00",
                "2002-12-14",
                "yes",
                "Yes",
                "NO",
                "on",
                "Off",
                "y",
                "N",
                "~",
                "null",
                "Null",
                "",
                "0755",
                "0o17",
                "0b101",
                "1e3",
                "1E-3",
                "0x1F",
                "1:20",
                "190:20:30.15",
                ".inf",
                "-.Inf",
                ".NaN",
                "<<",
                "=",
                "true",
                "False",
                "1_000",
                "+12",
                "-0",
                "3.14",
                ".5",
                "6.8523015e+5",
            ])
            .prop_map(str::to_owned),
            "[-+.~<=0-9a-zA-Z:_ ]{0,10}",
            "[a-zA-Z][a-zA-Z0-9:/_.@{}-]{0,16}",
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Whatever the string: written plain only when no reader takes it for anything else,
        /// and whatever was written reads back as that string.
        #[test]
        fn plain_only_when_every_reader_agrees(s in lookalike()) {
            if plain_is_safe(&s) {
                proptest::prop_assert!(!resolvers::some_reader_takes_it_for_a_non_string(&s), "{s:?} written plain");
            }
            let v = vec![Value::String(s.clone())];
            proptest::prop_assert_eq!(parse(&block_list(&v, "").unwrap()), v.clone());
            proptest::prop_assert_eq!(parse(&format!("[{}]", flow(&v[0]).unwrap())), v);
        }
    }
}
