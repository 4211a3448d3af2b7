//! Re-rendering a changed `mapRoles` / `mapUsers` text while keeping every untouched entry's
//! original text (quoting, comments, field order), so a diff shows only what changed.
//!
//! Block sequences are cut at items starting with `- ` at one indentation ([`splice`]); flow
//! sequences (`[{...}, {...}]`, e.g. Terraform's `jsonencode`) at their top-level commas
//! ([`splice_flow`]). Every cut is verified by parsing it back, and the result is verified as a
//! whole. Anything else (document markers, surprises) returns None and the caller re-serializes
//! the list. Keeping an untouched entry's text is what keeps it equal for YAML 1.1 readers
//! (aws-iam-authenticator) too, whatever quoting it had.

use serde_yaml_ng::Value;

use super::emit;

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
            None => emit::block_list(std::slice::from_ref(entry), indent)?,
        };
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&piece);
    }
    parses_to(&text, entries).then_some(text)
}

/// A flow sequence cut at its top-level commas.
struct FlowItems<'a> {
    /// Everything up to and including `[`.
    head: &'a str,
    /// Per item: the whitespace before it, and its text (trimmed).
    items: Vec<(&'a str, &'a str)>,
    /// The whitespace after the last item, and everything from `]` on.
    close: &'a str,
}

/// Cuts `text` when it is one flow sequence (comments and blank lines around it allowed).
fn split_flow(text: &str) -> Option<FlowItems<'_>> {
    let bytes = text.as_bytes();
    // The opening bracket: only blank and comment lines before it.
    let mut i = 0;
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes.get(i) == Some(&b'#') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        break;
    }
    if bytes.get(i) != Some(&b'[') {
        return None;
    }
    let head_end = i + 1;
    let mut cuts = vec![head_end];
    let mut depth = 0usize;
    // The last significant character outside quotes and comments: a quote opens a quoted
    // scalar only where a node can start.
    let mut last_sig = b'[';
    let mut end = None;
    let mut j = head_end;
    while j < bytes.len() {
        let c = bytes[j];
        match c {
            b'"' | b'\'' if b"[{,:?".contains(&last_sig) => {
                j += 1;
                loop {
                    match bytes.get(j)? {
                        b'\\' if c == b'"' => j += 2,
                        b'\'' if c == b'\'' && bytes.get(j + 1) == Some(&b'\'') => j += 2,
                        q if *q == c => break,
                        _ => j += 1,
                    }
                }
                last_sig = c;
            }
            b'#' if j == 0 || bytes[j - 1].is_ascii_whitespace() => {
                while j < bytes.len() && bytes[j] != b'\n' {
                    j += 1;
                }
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                last_sig = c;
            }
            b']' if depth == 0 => {
                end = Some(j);
                break;
            }
            b']' | b'}' => {
                depth = depth.checked_sub(1)?;
                last_sig = c;
            }
            b',' if depth == 0 => {
                cuts.push(j + 1);
                last_sig = c;
            }
            c if c.is_ascii_whitespace() => {}
            _ => last_sig = c,
        }
        j += 1;
    }
    let end = end?;
    // After `]`: only blanks and comments.
    let rest = &text[end + 1..];
    if !rest
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return None;
    }
    let mut items = Vec::new();
    for (n, start) in cuts.iter().enumerate() {
        // A segment ends at the comma that closes it, or at `]`.
        let stop = cuts.get(n + 1).map_or(end, |next| next - 1);
        let segment = &text[*start..stop];
        let body = segment.trim_start();
        let lead = &segment[..segment.len() - body.len()];
        items.push((lead, body.trim_end()));
    }
    let last_segment_start = *cuts.last()?;
    let last_text = text[last_segment_start..end].trim_end();
    let close = &text[last_segment_start + last_text.len()..];
    // `[a, b,]` and `[]`: no item after the last comma.
    if items.last().is_some_and(|(_, body)| body.is_empty()) {
        items.pop();
        if items.iter().any(|(_, body)| body.is_empty()) {
            return None;
        }
        // The trailing comma stays with `close`, which then starts with `,` — drop it to keep
        // the rebuilt text simple.
        let close_start = text[..end].rfind(',')?;
        let trimmed_close = &text[close_start + 1..];
        return Some(FlowItems {
            head: &text[..head_end],
            items,
            close: trimmed_close,
        });
    }
    Some(FlowItems {
        head: &text[..head_end],
        items,
        close,
    })
}

/// [`splice`] for a flow sequence: untouched entries keep their exact text between the
/// commas, new or changed ones are written in flow style with every string quoted.
pub(super) fn splice_flow(
    original: &str,
    entries: &[Value],
    origins: &[Option<usize>],
) -> Option<String> {
    if entries.len() != origins.len() {
        return None;
    }
    let flow = split_flow(original)?;
    // A new item goes on its own line when the original put items on their own lines.
    let separator = match flow.items.as_slice() {
        [_, (lead, _), ..] => *lead,
        [(lead, _)] if lead.contains('\n') => *lead,
        _ => " ",
    };
    let mut text = flow.head.to_string();
    for (i, (entry, origin)) in entries.iter().zip(origins).enumerate() {
        let (lead, piece) = match origin {
            Some(k) => {
                let (lead, body) = flow.items.get(*k)?;
                if !parses_to(&format!("[{body}\n]"), std::slice::from_ref(entry)) {
                    return None;
                }
                (*lead, (*body).to_owned())
            }
            None => (separator, emit::flow(entry)?),
        };
        if i > 0 {
            text.push(',');
        }
        let first_lead = flow.items.first().map_or("", |(lead, _)| *lead);
        text.push_str(if i == 0 { first_lead } else { lead });
        text.push_str(&piece);
    }
    text.push_str(flow.close);
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
    fn flow_items_keep_their_text_and_new_ones_are_quoted() {
        let original = "[{rolearn: \"arn:aws:iam::1:role/a\", note: \"2024-01-01\"}, {rolearn: 'arn:aws:iam::1:role/b', username: b}]";
        let mut entries = parse(original);
        entries.push(parse("- rolearn: arn:aws:iam::1:role/c\n  username: c\n").remove(0));
        let text = splice_flow(original, &entries, &[Some(0), Some(1), None]).unwrap();
        assert_eq!(
            text,
            "[{rolearn: \"arn:aws:iam::1:role/a\", note: \"2024-01-01\"}, {rolearn: 'arn:aws:iam::1:role/b', username: b}, {\"rolearn\": \"arn:aws:iam::1:role/c\", \"username\": \"c\"}]"
        );
        let text = splice_flow(original, &entries[1..2], &[Some(1)]).unwrap();
        assert_eq!(text, "[{rolearn: 'arn:aws:iam::1:role/b', username: b}]");
    }

    #[test]
    fn multi_line_json_gets_new_items_on_their_own_lines() {
        let original = "# managed by terraform\n[\n  {\"rolearn\": \"arn:aws:iam::1:role/a\", \"note\": \"a, [b] {c} # d\"},\n  {\"rolearn\": \"arn:aws:iam::1:role/b\", \"x\": 'it''s, ok'}\n]\n";
        let mut entries = parse(original);
        entries.push(parse("- rolearn: arn:aws:iam::1:role/c\n").remove(0));
        let text = splice_flow(original, &entries, &[Some(0), Some(1), None]).unwrap();
        assert_eq!(
            text,
            "# managed by terraform\n[\n  {\"rolearn\": \"arn:aws:iam::1:role/a\", \"note\": \"a, [b] {c} # d\"},\n  {\"rolearn\": \"arn:aws:iam::1:role/b\", \"x\": 'it''s, ok'},\n  {\"rolearn\": \"arn:aws:iam::1:role/c\"}\n]\n"
        );
        // A trailing comma and a comment inside the list.
        let original = "[\n  # ops\n  {rolearn: \"arn:aws:iam::1:role/a\"},\n]";
        let mut entries = parse(original);
        entries.push(parse("- rolearn: arn:aws:iam::1:role/c\n").remove(0));
        let text = splice_flow(original, &entries, &[Some(0), None]).unwrap();
        assert_eq!(parse(&text), entries);
        assert!(
            text.contains("# ops\n  {rolearn: \"arn:aws:iam::1:role/a\"}"),
            "{text}"
        );
    }

    proptest::proptest! {
        /// Whatever the text, a flow splice never panics and never returns text that does not
        /// parse back to exactly the wanted entries.
        #[test]
        fn any_flow_text_is_safe(original in "[ \n#]{0,2}\\[([ \n]{0,2}(\\{[a-z:'\", #\\[\\]]{0,10}\\}|[a-z'\"#]{0,4})[ \n]{0,2},?){0,4}\\][ \n#a]{0,3}", keep in proptest::option::of(0usize..4)) {
            let entries = parse("- rolearn: arn:aws:iam::1:role/c\n  username: c\n");
            if let Some(text) = splice_flow(&original, &entries, &[keep]) {
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
