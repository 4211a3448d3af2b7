//! RFC 6902 JSON Patch `add` operations, written straight into the JSON text that the
//! response carries (base64): no intermediate values, one buffer.
//!
//! The webhook only ever *adds*: whole arrays are never rewritten, so fields of the object
//! that this crate does not model are never dropped (the Go webhook's issue #208).

/// A JSON Patch as its JSON text; empty means "nothing to change".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonPatch {
    /// `[op,op,...]` once an operation was added; empty before.
    json: Vec<u8>,
    operations: usize,
}

impl JsonPatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty patch whose text will fit in `bytes` without growing.
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            json: Vec::with_capacity(bytes),
            operations: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.operations == 0
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.operations
    }

    /// The patch as JSON text (`[]` when empty).
    pub fn as_json(&self) -> &[u8] {
        if self.json.is_empty() {
            b"[]"
        } else {
            &self.json
        }
    }

    /// Appends `{"op":"add","path":<path pieces joined>,"value":<what write_value writes>}`.
    /// The path pieces are this crate's own (field names, indices, escaped pointer tokens),
    /// which never need JSON escaping; `write_value` must write exactly one JSON value.
    pub fn add(&mut self, path: &[&str], write_value: impl FnOnce(&mut Vec<u8>)) {
        self.add_with_suffix(path, "", write_value);
    }

    fn add_with_suffix(
        &mut self,
        path: &[&str],
        suffix: &str,
        write_value: impl FnOnce(&mut Vec<u8>),
    ) {
        if self.json.is_empty() {
            // No-op after `with_capacity`.
            self.json.reserve(1024);
            self.json.push(b'[');
        } else {
            // Reopen the array: drop its closing bracket.
            self.json.pop();
            self.json.push(b',');
        }
        self.json.extend_from_slice(br#"{"op":"add","path":""#);
        for piece in path.iter().chain([&suffix]) {
            debug_assert!(!piece.bytes().any(needs_escape), "{piece:?}");
            self.json.extend_from_slice(piece.as_bytes());
        }
        self.json.extend_from_slice(br#"","value":"#);
        write_value(&mut self.json);
        self.json.extend_from_slice(b"}]");
        self.operations += 1;
    }
}

/// Adds `items` to the array at `path`: one `add` of the whole array when it is absent (or
/// null), otherwise one `add` at `path/-` per item so existing elements stay untouched.
pub fn append_to_array<T>(
    patch: &mut JsonPatch,
    path: &[&str],
    array_present: bool,
    items: &[T],
    write_item: impl Fn(&mut Vec<u8>, &T),
) {
    if items.is_empty() {
        return;
    }
    if array_present {
        for item in items {
            patch.add_with_suffix(path, "/-", |out| write_item(out, item));
        }
    } else {
        patch.add(path, |out| {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_item(out, item);
            }
            out.push(b']');
        });
    }
}

/// Writes `s` as a JSON string, quoted and escaped as serde_json does.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    push_escaped(out, s);
    out.push(b'"');
}

/// The length of what [`push_str`] writes for `s`.
pub fn quoted_len(s: &str) -> usize {
    let bytes = s.as_bytes();
    if !any_needs_escape(bytes) {
        return bytes.len() + 2;
    }
    let escaped: usize = bytes
        .iter()
        .map(|&b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum();
    escaped + 2
}

/// Writes `s` escaped for the inside of a JSON string.
fn push_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if !any_needs_escape(bytes) {
        out.extend_from_slice(bytes);
        return;
    }
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(br#"\""#),
            b'\\' => out.extend_from_slice(br"\\"),
            b'\n' => out.extend_from_slice(br"\n"),
            b'\r' => out.extend_from_slice(br"\r"),
            b'\t' => out.extend_from_slice(br"\t"),
            0x08 => out.extend_from_slice(br"\b"),
            0x0c => out.extend_from_slice(br"\f"),
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(br"\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            _ => out.push(b),
        }
    }
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Whether any byte of `bytes` needs escaping, eight at a time (the values written are
/// ARNs and paths of tens of bytes, written once per container).
fn any_needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    let mut chunks = bytes.chunks_exact(8);
    let found = chunks.by_ref().any(|chunk| {
        let x = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or_default());
        let control = x.wrapping_sub(ONES * 0x20) & !x;
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        let quote = quote.wrapping_sub(ONES) & !quote;
        let backslash = backslash.wrapping_sub(ONES) & !backslash;
        (control | quote | backslash) & HIGH != 0
    });
    found || chunks.remainder().iter().any(|&b| needs_escape(b))
}

/// Writes a non-negative integer.
pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Writes an integer.
pub fn push_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    push_u64(out, n.unsigned_abs());
}

/// Escapes one reference token per RFC 6901 (`~` → `~0`, `/` → `~1`), e.g. for annotation keys.
pub fn escape_pointer_token(token: &str) -> String {
    if !token.contains(['~', '/']) {
        return token.to_owned();
    }
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parsed(patch: &JsonPatch) -> Value {
        serde_json::from_slice(patch.as_json()).unwrap()
    }

    #[test]
    fn escapes_tilde_before_slash() {
        assert_eq!(
            escape_pointer_token("eks.amazonaws.com/role-arn"),
            "eks.amazonaws.com~1role-arn"
        );
        assert_eq!(escape_pointer_token("a~/b"), "a~0~1b");
        assert_eq!(escape_pointer_token("plain"), "plain");
    }

    #[test]
    fn strings_and_numbers_are_written_as_serde_json_writes_them() {
        for s in [
            "plain",
            "q\"uote",
            "back\\slash",
            "nl\n tab\t cr\r",
            "\u{1}\u{1f}\u{8}\u{c}",
            "ünï ☃",
        ] {
            let mut out = Vec::new();
            push_str(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
            assert_eq!(quoted_len(s), out.len(), "{s:?}");
        }
        for n in [0i64, 7, 600, 86_400, -3, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            push_i64(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn finds_a_byte_to_escape_anywhere() {
        let plain = "arn:aws:iam::111122223333:role/x-".repeat(3);
        assert!(!any_needs_escape(plain.as_bytes()));
        for at in 0..plain.len() {
            for special in [b'"', b'\\', b'\n', 0x1f, 0x00] {
                let mut bytes = plain.clone().into_bytes();
                bytes[at] = special;
                assert!(any_needs_escape(&bytes), "{at} {special}");
            }
        }
        assert!(!any_needs_escape("ünï ☃ \u{7f}".as_bytes()));
    }

    #[test]
    fn absent_array_is_created_whole_present_array_gets_per_element_adds() {
        let mut patch = JsonPatch::new();
        assert!(patch.is_empty());
        assert_eq!(patch.as_json(), b"[]");
        let write = |out: &mut Vec<u8>, n: &u64| push_u64(out, *n);
        append_to_array(&mut patch, &["/spec/volumes"], false, &[1, 2], write);
        append_to_array(
            &mut patch,
            &["/spec/containers/", "0", "/env"],
            true,
            &[3, 4],
            write,
        );
        append_to_array(&mut patch, &["/spec/x"], true, &[], write);
        assert_eq!(patch.len(), 3);
        assert_eq!(
            parsed(&patch),
            json!([
                {"op": "add", "path": "/spec/volumes", "value": [1, 2]},
                {"op": "add", "path": "/spec/containers/0/env/-", "value": 3},
                {"op": "add", "path": "/spec/containers/0/env/-", "value": 4},
            ])
        );
    }

    #[test]
    fn patch_applies_with_json_patch_crate() {
        let mut doc = json!({"metadata": {"annotations": {"keep": "1"}}});
        let mut patch = JsonPatch::new();
        let key = escape_pointer_token("eks.amazonaws.com/role-arn");
        patch.add(&["/metadata/annotations/", &key], |out| {
            push_str(out, "arn\"x")
        });
        let patch: json_patch::Patch = serde_json::from_slice(patch.as_json()).unwrap();
        json_patch::patch(&mut doc, &patch).unwrap();
        assert_eq!(
            doc,
            json!({"metadata": {"annotations": {"keep": "1", "eks.amazonaws.com/role-arn": "arn\"x"}}})
        );
    }
}
