//! The scanner's lexing half: a small validating JSON lexer over the borrowed body that
//! reads strings, objects and arrays and skips any value, checking what it skips exactly as
//! strictly as serde_json's `IgnoredAny` (string escapes and control characters, numbers,
//! literals, nesting). The field readers are in [`super::fields`].

use std::borrow::Cow;

use wide::u8x16;

use crate::objects::Text;

/// Nesting a skipped value may have before the serde reader takes over.
pub(super) const MAX_SKIP_DEPTH: usize = 128;

pub(super) struct Json<'a> {
    bytes: &'a [u8],
    /// The same body as text: strings read are sliced from it (no check per string).
    text: &'a str,
    /// Bit `i % 64` of word `i / 64`: byte `i` is a quote, a backslash or a control character,
    /// the bytes a string scan stops at. Found for the whole body at once, 16 bytes per
    /// compare, so that reading a string costs a few bit operations, not a loop over it.
    stops: Vec<u64>,
    pos: usize,
}

/// Where a string's raw content is (between its quotes).
struct Raw {
    start: usize,
    end: usize,
    escaped: bool,
}

impl<'a> Json<'a> {
    /// `None` unless the body is UTF-8 throughout. serde_json takes some bodies that are not
    /// (in strings it skips), but only the serde reader reads those: one check of the whole
    /// body here costs less than a check of every string read and of the raw object.
    pub(super) fn new(bytes: &'a [u8]) -> Option<Self> {
        Some(Self {
            bytes,
            text: simdutf8::basic::from_utf8(bytes).ok()?,
            stops: stop_index(bytes),
            pos: 0,
        })
    }

    fn byte(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// The next byte after whitespace (JSON's four), not consumed.
    #[inline(always)]
    pub(super) fn peek(&mut self) -> Option<u8> {
        // The API server sends compact JSON: a byte above the space is the common answer.
        match self.byte()? {
            byte @ 0x21.. => Some(byte),
            _ => self.peek_after_whitespace(),
        }
    }

    #[cold]
    fn peek_after_whitespace(&mut self) -> Option<u8> {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.byte() {
            self.pos += 1;
        }
        self.byte()
    }

    #[inline(always)]
    fn eat(&mut self, expected: u8) -> Option<()> {
        (self.peek()? == expected).then(|| self.pos += 1)
    }

    fn literal(&mut self, rest: &[u8]) -> Option<()> {
        let end = self.pos + rest.len();
        (self.bytes.get(self.pos..end)? == rest).then(|| self.pos = end)
    }

    /// Consumes `null` when it is next.
    pub(super) fn null(&mut self) -> bool {
        if self.peek() == Some(b'n') && self.bytes.get(self.pos + 1..self.pos + 4) == Some(b"ull") {
            self.pos += 4;
            true
        } else {
            false
        }
    }

    /// The first stop byte (quote, backslash, control character) at or after `from`.
    #[inline(always)]
    fn next_stop(&self, from: usize) -> Option<usize> {
        let mut word = from / 64;
        let mut bits = *self.stops.get(word)? & (u64::MAX << (from % 64));
        while bits == 0 {
            word += 1;
            bits = *self.stops.get(word)?;
        }
        Some(word * 64 + bits.trailing_zeros() as usize)
    }

    /// After an opening quote: where the string's raw content is, up to the closing quote.
    /// Checked as serde_json checks strings it skips: no control characters, only JSON's
    /// escapes, four hex digits after `\u`. Jumps from stop byte to stop byte with the index
    /// built in [`Json::new`]: no loop over the string's plain bytes.
    #[inline(always)]
    fn string_body(&mut self) -> Option<Raw> {
        let bytes = self.bytes;
        let start = self.pos;
        let mut pos = start;
        let mut escaped = false;
        loop {
            pos = self.next_stop(pos)?;
            match *bytes.get(pos)? {
                b'"' => {
                    self.pos = pos + 1;
                    return Some(Raw {
                        start,
                        end: pos,
                        escaped,
                    });
                }
                b'\\' => {
                    escaped = true;
                    match bytes.get(pos + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => pos += 2,
                        b'u' => {
                            let hex = bytes.get(pos + 2..pos + 6)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            pos += 6;
                        }
                        _ => return None,
                    }
                }
                // A control character.
                _ => return None,
            }
        }
    }

    /// A string without escapes (those are left to serde), borrowed from the body.
    #[inline(always)]
    fn unescaped(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let raw = self.string_body()?;
        if raw.escaped {
            return None;
        }
        // Between two quotes, so on character boundaries.
        self.text.get(raw.start..raw.end)
    }

    /// A string read as a value.
    pub(super) fn text(&mut self) -> Option<Text<'a>> {
        self.unescaped().map(|s| Text(Cow::Borrowed(s)))
    }

    /// `Option<Text>`: null is `None`.
    pub(super) fn opt_text(&mut self) -> Option<Option<Text<'a>>> {
        if self.null() {
            Some(None)
        } else {
            self.text().map(Some)
        }
    }

    /// An object; `field` must consume each value. Keys are read as strings without escapes.
    pub(super) fn object(
        &mut self,
        mut field: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(());
        }
        loop {
            let key = self.unescaped()?;
            self.eat(b':')?;
            field(self, key)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An array; `element` must consume each element.
    pub(super) fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(());
        }
        loop {
            element(self)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Skips one value of any type, checking it as serde_json's `ignore_value` does.
    pub(super) fn skip(&mut self) -> Option<()> {
        // Most skipped values are strings.
        if self.peek()? == b'"' {
            self.pos += 1;
            return self.string_body().map(drop);
        }
        // The open containers, one bit each (1: object), innermost lowest.
        let mut frames: u128 = 0;
        let mut depth = 0;
        loop {
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    self.string_body()?;
                }
                b'n' => {
                    self.pos += 1;
                    self.literal(b"ull")?;
                }
                b't' => {
                    self.pos += 1;
                    self.literal(b"rue")?;
                }
                b'f' => {
                    self.pos += 1;
                    self.literal(b"alse")?;
                }
                b'-' | b'0'..=b'9' => self.number()?,
                open @ (b'[' | b'{') => {
                    self.pos += 1;
                    let close = if open == b'[' { b']' } else { b'}' };
                    if self.peek()? != close {
                        if depth == MAX_SKIP_DEPTH {
                            return None;
                        }
                        frames = frames << 1 | u128::from(open == b'{');
                        depth += 1;
                        if open == b'{' {
                            self.skip_key()?;
                        }
                        continue;
                    }
                    self.pos += 1;
                }
                _ => return None,
            }
            // After a value: close finished containers, or go on after a comma.
            loop {
                if depth == 0 {
                    return Some(());
                }
                let in_object = frames & 1 == 1;
                match self.peek()? {
                    b',' => {
                        self.pos += 1;
                        if in_object {
                            self.skip_key()?;
                        }
                        break;
                    }
                    b']' if !in_object => {}
                    b'}' if in_object => {}
                    _ => return None,
                }
                self.pos += 1;
                frames >>= 1;
                depth -= 1;
            }
        }
    }

    /// A key and its colon inside a skipped object.
    #[inline(always)]
    fn skip_key(&mut self) -> Option<()> {
        self.eat(b'"')?;
        self.string_body()?;
        self.eat(b':')
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.byte() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A number, with serde_json's grammar (one leading zero, digits after `.` and `e`).
    fn number(&mut self) -> Option<()> {
        if self.byte() == Some(b'-') {
            self.pos += 1;
        }
        match self.byte()? {
            b'0' => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.byte() {
                    return None;
                }
            }
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.byte() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.byte() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.byte() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    /// `Option<i64>`: an integer literal that fits; a fraction, an exponent or an overflow
    /// is left to serde (which rejects them).
    pub(super) fn opt_i64(&mut self) -> Option<Option<i64>> {
        if self.null() {
            return Some(None);
        }
        self.peek()?;
        let start = self.pos;
        self.number()?;
        let literal = self.text.get(start..self.pos)?;
        // serde_json reads `-0` as a float.
        if literal.contains(['.', 'e', 'E']) || literal == "-0" {
            return None;
        }
        literal.parse().ok().map(Some)
    }
}

/// The stop bits of `bytes` (see [`Json::stops`]); the last block is padded with spaces.
fn stop_index(bytes: &[u8]) -> Vec<u64> {
    let mut stops = Vec::with_capacity(bytes.len() / 64 + 1);
    let mut blocks = bytes.chunks_exact(64);
    for block in blocks.by_ref() {
        stops.push(block_stops(block));
    }
    let rest = blocks.remainder();
    if !rest.is_empty() {
        let mut last = [b' '; 64];
        last[..rest.len()].copy_from_slice(rest);
        stops.push(block_stops(&last));
    }
    stops
}

/// The stop bits of one 64-byte block.
#[inline(always)]
fn block_stops(block: &[u8]) -> u64 {
    let quote = u8x16::splat(b'"');
    let backslash = u8x16::splat(b'\\');
    let last_control = u8x16::splat(0x1f);
    let mut bits = 0;
    for (i, lane) in block.chunks_exact(16).enumerate() {
        let v = u8x16::new(<[u8; 16]>::try_from(lane).unwrap_or_default());
        // `min(v, 0x1f) == v`: v <= 0x1f, unsigned.
        let stop = v.cmp_eq(quote) | v.cmp_eq(backslash) | v.min(last_control).cmp_eq(v);
        // The mask has one bit per lane, 16 in all.
        bits |= u64::from(stop.move_mask() as u16) << (16 * i);
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Json<'_> {
        Json::new(text.as_bytes()).unwrap()
    }

    fn skips(text: &str) -> bool {
        let mut j = json(text);
        j.skip().is_some() && j.peek().is_none()
    }

    #[test]
    fn strings_end_at_the_first_quote() {
        for (s, len, escaped) in [
            ("\"", 0, false),
            ("abc\"", 3, false),
            ("0123456789abcdef\\\"x\"", 19, true),
            (
                "0123456789abcdefghijklmnopqrstuvwxyz0123456789\"",
                46,
                false,
            ),
            ("0123456789abcdefghij\\u00e9klmnopqrstuvwxyz\"", 42, true),
            ("0123456789abcdefghijklmnopqrstuvwxyzé\"", 38, false),
            ("ünïcödé ünïcödé\"", "ünïcödé ünïcödé".len(), false),
            (
                "\u{7f}\u{7f}\u{7f}\u{7f}\u{7f}\u{7f}\u{7f}\u{7f}\"",
                8,
                false,
            ),
            ("\u{ff}\u{80}\u{a2}\u{dc}\u{a0}\u{e0}\"", 12, false),
        ] {
            let mut j = json(s);
            let raw = j.string_body().unwrap();
            assert_eq!(
                (raw.start, raw.end, raw.escaped),
                (0, len, escaped),
                "{s:?}"
            );
            assert_eq!(j.pos, len + 1);
        }
        for bad in [
            "abc",
            "a\u{1}\"",
            "01234567\u{1f}\"",
            "0123456789abcdefghijklmnopqrstuvwxyz\u{1f}\"",
            "0123456789abcdefghij\\x\"",
        ] {
            let mut j = json(bad);
            assert!(j.string_body().is_none(), "{bad:?}");
        }
        assert!(Json::new(b"\"\xff\"").is_none(), "not UTF-8: left to serde");
    }

    #[test]
    fn stop_index_marks_exactly_the_stop_bytes_across_blocks() {
        for len in [0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 200] {
            for at in 0..len {
                for special in [b'"', b'\\', b'\n', 0x00, 0x1f, b' ', 0x7f, 0x80, b'a'] {
                    let mut bytes = vec![b'x'; len];
                    bytes[at] = special;
                    let stops = stop_index(&bytes);
                    assert_eq!(stops.len(), len.div_ceil(64), "{len}");
                    let marked: Vec<usize> = (0..len)
                        .filter(|i| stops[i / 64] >> (i % 64) & 1 == 1)
                        .collect();
                    let expected = if special < 0x20 || special == b'"' || special == b'\\' {
                        vec![at]
                    } else {
                        vec![]
                    };
                    assert_eq!(marked, expected, "len {len} at {at} byte {special:#x}");
                }
            }
        }
    }

    #[test]
    fn strings_end_at_their_quote_wherever_it_falls() {
        for len in 0..200 {
            let body = format!("{}\"tail", "s".repeat(len));
            let mut j = json(&body);
            let raw = j.string_body().unwrap();
            assert_eq!((raw.start, raw.end, raw.escaped), (0, len, false));
            let unterminated = "s".repeat(len);
            assert!(json(&unterminated).string_body().is_none(), "{len}");
            let control = format!("{}\u{1}\"", "s".repeat(len));
            assert!(json(&control).string_body().is_none(), "{len}");
        }
    }

    #[test]
    fn skips_what_serde_json_accepts_and_nothing_else() {
        let cases = [
            "null",
            "true",
            "false",
            "0",
            "-0",
            "12",
            "1.5",
            "-1.5e10",
            "2E-3",
            "1e+2",
            r#""""#,
            r#""a\"b\\c\/d\b\f\n\r\t\u00e9""#,
            "[]",
            "{}",
            " [ 1 , { \"a\" : [ ] } ] ",
            r#"{"k":{"k":[{"k":null}]}}"#,
            "\"\u{7f}\"",
            "01",
            "-",
            "1.",
            "1e",
            ".5",
            "+1",
            "nul",
            "tru",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\"}",
            "{1:2}",
            "[1 2]",
            "\"\u{1}\"",
            r#""\x""#,
            r#""\u12""#,
            r#""\u12g4""#,
            "[",
            "{",
            "\"abc",
            "]",
            "[1]]",
            "{\"a\":1}}",
            "nullx",
            "{\"\u{1}\":1}",
            r#"{"\x":1}"#,
            r#"{"a\"b":1}"#,
            "{\"a\" 1}",
            "[\"a\":1]",
            "{\"\u{ff}\":\"\u{100}\"}",
        ];
        for case in cases {
            let serde = serde_json::from_str::<serde::de::IgnoredAny>(case).is_ok();
            assert_eq!(skips(case), serde, "{case:?}");
        }
        let deep = "[".repeat(MAX_SKIP_DEPTH + 2) + &"]".repeat(MAX_SKIP_DEPTH + 2);
        assert!(!skips(&deep), "deeper than the scanner goes: left to serde");
    }
}
