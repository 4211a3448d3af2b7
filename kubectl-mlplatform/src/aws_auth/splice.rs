//! Re-rendering a changed `mapRoles` / `mapUsers` text while keeping every untouched entry's
//! original text (quoting, comments, field order), so a diff shows only what changed.
//!
//! Only block sequences are cut (items starting with `- ` at one indentation); every cut is
//! verified by parsing it back, and the result is verified as a whole. Anything else (flow
//! style, document markers, surprises) returns None and the caller re-serializes the list.

use serde_yaml_ng::Value;

/// The text as: prefix (blank/comment lines), the items' indentation, one chunk per item.
struct Items<'a> {
    prefix: String,
    indent: &'a str,
    chunks: Vec<String>,
}

fn is_item_start(line: &str, indent: &str) -> bool {
    line.strip_prefix(indent)
        .is_some_and(|rest| rest.starts_with("- ") || rest.trim_end() == "-")
}

fn split_items(text: &str) -> Option<Items<'_>> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let first = lines.iter().position(|l| {
        let t = l.trim_start_matches(' ');
        t.starts_with("- ") || t.trim_end() == "-"
    })?;
    let mut prefix = String::new();
    for line in &lines[..first] {
        let t = line.trim();
        if !(t.is_empty() || t.starts_with('#')) {
            return None;
        }
        prefix.push_str(line);
    }
    let first_line = lines[first];
    let indent = &first_line[..first_line.len() - first_line.trim_start_matches(' ').len()];
    let mut chunks: Vec<String> = Vec::new();
    for line in &lines[first..] {
        if is_item_start(line, indent) {
            chunks.push(String::new());
        }
        chunks.last_mut()?.push_str(line);
    }
    // Comment and blank lines just before an item belong to it, not to the item above.
    for i in 1..chunks.len() {
        let previous = &chunks[i - 1];
        let lines: Vec<&str> = previous.split_inclusive('\n').collect();
        let keep = lines
            .iter()
            .rposition(|l| {
                let t = l.trim();
                !(t.is_empty() || t.starts_with('#'))
            })
            .map_or(0, |last| last + 1);
        let moved: String = lines[keep..].concat();
        let kept: String = lines[..keep].concat();
        chunks[i - 1] = kept;
        chunks[i].insert_str(0, &moved);
    }
    Some(Items {
        prefix,
        indent,
        chunks,
    })
}

fn parses_to(text: &str, expected: &[Value]) -> bool {
    if expected.is_empty() {
        // An empty list has no items to keep; let the caller serialize `[]`.
        return false;
    }
    serde_yaml_ng::from_str::<Vec<Value>>(text).is_ok_and(|parsed| parsed == expected)
}

/// The new text for `entries`, where `origins[i]` is the index of entry `i` in `original`
/// when it is untouched. None when the original text cannot be cut safely.
pub(super) fn splice(
    original: &str,
    entries: &[Value],
    origins: &[Option<usize>],
) -> Option<String> {
    if entries.len() != origins.len() || entries.is_empty() {
        return None;
    }
    let items = split_items(original);
    let (prefix, indent, chunks) = match &items {
        Some(items) => (items.prefix.as_str(), items.indent, items.chunks.as_slice()),
        // Nothing to keep (absent or empty key): only new entries, at column 0.
        None if origins.iter().all(Option::is_none)
            && original
                .trim()
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .is_empty() =>
        {
            ("", "", &[][..])
        }
        None => return None,
    };
    let mut text = prefix.to_string();
    for (entry, origin) in entries.iter().zip(origins) {
        let piece = match origin {
            Some(k) => {
                let chunk = chunks.get(*k)?;
                if !parses_to(chunk, std::slice::from_ref(entry)) {
                    return None;
                }
                chunk.clone()
            }
            None => {
                let fresh = serde_yaml_ng::to_string(std::slice::from_ref(entry)).ok()?;
                fresh
                    .lines()
                    .map(|l| format!("{indent}{l}\n"))
                    .collect::<String>()
            }
        };
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&piece);
    }
    parses_to(&text, entries).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<Value> {
        serde_yaml_ng::from_str(text).unwrap()
    }

    const TERRAFORM: &str = "- \"groups\":\n  - \"system:nodes\"\n  \"rolearn\": \"arn:aws:iam::1:role/a\"\n  \"username\": \"a\"\n# keep this comment\n- \"rolearn\": \"arn:aws:iam::1:role/b\"\n  \"username\": \"b\"\n";

    #[test]
    fn appending_keeps_every_byte_of_the_old_entries() {
        let mut entries = parse(TERRAFORM);
        entries.push(parse("- rolearn: arn:aws:iam::1:role/c\n  username: c\n").remove(0));
        let text = splice(TERRAFORM, &entries, &[Some(0), Some(1), None]).unwrap();
        assert_eq!(
            text,
            format!("{TERRAFORM}- rolearn: arn:aws:iam::1:role/c\n  username: c\n")
        );
    }

    #[test]
    fn removing_cuts_exactly_one_item() {
        let entries = parse(TERRAFORM);
        let text = splice(TERRAFORM, &entries[1..], &[Some(1)]).unwrap();
        assert_eq!(
            text,
            "# keep this comment\n- \"rolearn\": \"arn:aws:iam::1:role/b\"\n  \"username\": \"b\"\n"
        );
    }

    #[test]
    fn indented_lists_and_missing_trailing_newline() {
        let original = "  - rolearn: arn:aws:iam::1:role/a\n    username: a";
        let mut entries = parse(original);
        entries.push(parse("- rolearn: arn:aws:iam::1:role/c\n  username: c\n").remove(0));
        let text = splice(original, &entries, &[Some(0), None]).unwrap();
        assert_eq!(
            text,
            "  - rolearn: arn:aws:iam::1:role/a\n    username: a\n  - rolearn: arn:aws:iam::1:role/c\n    username: c\n"
        );
    }

    #[test]
    fn new_key_or_empty_list_gets_fresh_text() {
        let entries = parse("- rolearn: arn:aws:iam::1:role/c\n  username: c\n");
        assert_eq!(
            splice("", &entries, &[None]).unwrap(),
            "- rolearn: arn:aws:iam::1:role/c\n  username: c\n"
        );
        assert_eq!(
            splice("[]\n", &entries, &[None]).unwrap(),
            "- rolearn: arn:aws:iam::1:role/c\n  username: c\n"
        );
    }

    proptest::proptest! {
        /// Whatever the text, splicing never panics and never returns text that does not
        /// parse back to exactly the wanted entries.
        #[test]
        fn any_text_is_safe(original in "(( {0,3}- |#| {0,4})[a-z:'\"\\[\\]{}, ]{0,12}\n){0,8}", keep in proptest::option::of(0usize..4)) {
            let entries = parse("- rolearn: arn:aws:iam::1:role/c\n  username: c\n");
            if let Some(text) = splice(&original, &entries, &[keep]) {
                proptest::prop_assert_eq!(parse(&text), entries);
            }
        }
    }

    #[test]
    fn gives_up_on_shapes_it_cannot_cut() {
        let flow = "[{rolearn: 'arn:aws:iam::1:role/a', username: a}]";
        assert_eq!(splice(flow, &parse(flow), &[Some(0)]), None);
        let marker = "---\n- rolearn: arn:aws:iam::1:role/a\n";
        assert_eq!(splice(marker, &parse(marker), &[Some(0)]), None);
        // A chunk that does not parse back to its entry is never reused.
        let a = "- rolearn: arn:aws:iam::1:role/a\n";
        let other = parse("- rolearn: arn:aws:iam::1:role/z\n");
        assert_eq!(splice(a, &other, &[Some(0)]), None);
        assert_eq!(splice(a, &[], &[]), None);
    }
}
