//! A small JSON reader for the previous run's records.
//!
//! At start lastwords reads the end of its own file to say how the previous
//! run ended ([`previous_run`](crate::previous_run)). That is the only JSON
//! the runtime ever reads, and it reads it once per start, so this reader
//! aims at being obviously safe rather than fast: it takes any bytes (an
//! old file may hold anything: a line cut by a kill, another program's
//! output, a hostile tail) and returns `None` for whatever is not one
//! complete, valid JSON value. It never panics, runs in time linear in the
//! input, and refuses nesting deeper than [`MAX_DEPTH`], so that its
//! recursion stays within a few kilobytes of stack.
//!
//! It exists so that the runtime does not link `serde_json`, whose
//! `PartialEq<Value>` impls for the integer types change type inference in
//! every crate that links it (`assert_eq!(v, vec![])` stops compiling).
//! Numbers keep their text (as written, validated), so that a value copied
//! into a new record is written back exactly as it was read.

use std::borrow::Cow;

/// Deepest nesting of arrays and objects accepted.
pub(crate) const MAX_DEPTH: usize = 64;

/// A parsed JSON value borrowing from the input where it can.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value<'a> {
    Null,
    Bool(bool),
    /// A number's text, validated against the JSON grammar.
    Number(&'a str),
    String(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    /// Members in the order written; duplicate keys are kept.
    Object(Vec<(Cow<'a, str>, Value<'a>)>),
}

impl<'a> Value<'a> {
    /// Parses `input` as exactly one JSON value surrounded by optional
    /// whitespace; `None` when it is anything else.
    pub(crate) fn parse(input: &'a [u8]) -> Option<Value<'a>> {
        let text = std::str::from_utf8(input).ok()?;
        let mut reader = Reader { text, at: 0 };
        let value = reader.value(0)?;
        reader.skip_whitespace();
        (reader.at == text.len()).then_some(value)
    }

    /// The member `key` of an object (the last one, as most readers do,
    /// if the key is there twice); `None` for anything else.
    pub(crate) fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a string.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A number that is a non-negative integer fitting in a `u64`.
    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(n) => n.parse().ok(),
            _ => None,
        }
    }

    /// Writes the value back as JSON: strings escaped as lastwords escapes
    /// them, numbers as they were written.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        self.write_capped(out, usize::MAX);
    }

    /// Writes the value as JSON, made to end by `limit` total bytes of
    /// `out` if it can: long strings are cut (with the usual marker) and
    /// long arrays keep their last elements (breadcrumbs are oldest first),
    /// ever shorter until the value fits; `null` when even the shortest
    /// form does not.
    pub(crate) fn write_fitted(&self, out: &mut Vec<u8>, limit: usize) {
        let start = out.len();
        let mut cap = usize::MAX;
        loop {
            out.truncate(start);
            self.write_capped(out, cap);
            if out.len() <= limit {
                return;
            }
            if cap <= 8 {
                out.truncate(start);
                out.extend_from_slice(b"null");
                return;
            }
            cap = if cap == usize::MAX {
                limit.saturating_sub(start).min(out.len() - start) / 2
            } else {
                cap / 2
            };
        }
    }

    /// The value with every string cut at about `cap` bytes and every
    /// array keeping at most its last `cap / 32` elements (at least one).
    fn write_capped(&self, out: &mut Vec<u8>, cap: usize) {
        match self {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(b) => crate::json::boolean(out, *b),
            Value::Number(n) => out.extend_from_slice(n.as_bytes()),
            Value::String(s) if s.len() <= cap => crate::json::string_vec(out, s),
            Value::String(s) => crate::json::display_string(out, s, out.len() + cap),
            Value::Array(items) => {
                let keep = if cap == usize::MAX {
                    items.len()
                } else {
                    items.len().min((cap / 32).max(1))
                };
                out.push(b'[');
                for (i, item) in items[items.len() - keep..].iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write_capped(out, cap);
                }
                out.push(b']');
            }
            Value::Object(members) => {
                out.push(b'{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    crate::json::string_vec(out, key);
                    out.push(b':');
                    value.write_capped(out, cap);
                }
                out.push(b'}');
            }
        }
    }
}

struct Reader<'a> {
    text: &'a str,
    /// Byte offset of the next unread byte; always on a char boundary
    /// (the reader only ever steps over ASCII bytes or whole strings).
    at: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// Consumes `word` if the input continues with it.
    fn eat(&mut self, word: &str) -> Option<()> {
        let rest = self.text.get(self.at..)?;
        rest.starts_with(word).then(|| self.at += word.len())
    }

    fn value(&mut self, depth: usize) -> Option<Value<'a>> {
        self.skip_whitespace();
        match self.peek()? {
            b'n' => self.eat("null").map(|()| Value::Null),
            b't' => self.eat("true").map(|()| Value::Bool(true)),
            b'f' => self.eat("false").map(|()| Value::Bool(false)),
            b'"' => self.string().map(Value::String),
            b'[' if depth < MAX_DEPTH => self.array(depth + 1),
            b'{' if depth < MAX_DEPTH => self.object(depth + 1),
            b'-' | b'0'..=b'9' => self.number().map(Value::Number),
            _ => None,
        }
    }

    fn array(&mut self, depth: usize) -> Option<Value<'a>> {
        self.at += 1; // '['
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Some(Value::Array(items));
        }
        loop {
            items.push(self.value(depth)?);
            self.skip_whitespace();
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(Value::Array(items));
                }
                _ => return None,
            }
        }
    }

    fn object(&mut self, depth: usize) -> Option<Value<'a>> {
        self.at += 1; // '{'
        let mut members = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Some(Value::Object(members));
        }
        loop {
            self.skip_whitespace();
            if self.peek()? != b'"' {
                return None;
            }
            let key = self.string()?;
            self.skip_whitespace();
            self.eat(":")?;
            let value = self.value(depth)?;
            members.push((key, value));
            self.skip_whitespace();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(Value::Object(members));
                }
                _ => return None,
            }
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, returned as text.
    fn number(&mut self) -> Option<&'a str> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.some_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.some_digits()?;
        }
        self.text.get(start..self.at)
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.at;
        self.digits();
        (self.at > start).then_some(())
    }

    /// A string starting at the opening quote; borrowed when it has no
    /// escapes.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.at += 1; // '"'
        let start = self.at;
        // Fast path: up to the closing quote with no escape.
        loop {
            match self.peek()? {
                b'"' => {
                    let s = self.text.get(start..self.at)?;
                    self.at += 1;
                    return Some(Cow::Borrowed(s));
                }
                b'\\' => break,
                0x00..=0x1f => return None,
                _ => self.at += 1,
            }
        }
        let mut owned = String::from(self.text.get(start..self.at)?);
        loop {
            // Whole runs of plain characters at once: `at` stays on a char
            // boundary because it only stops at ASCII bytes.
            let run = self.at;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.at += 1;
            }
            owned.push_str(self.text.get(run..self.at)?);
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Some(Cow::Owned(owned));
                }
                b'\\' => {
                    self.at += 1;
                    let escaped = self.peek()?;
                    self.at += 1;
                    match escaped {
                        b'"' => owned.push('"'),
                        b'\\' => owned.push('\\'),
                        b'/' => owned.push('/'),
                        b'b' => owned.push('\u{8}'),
                        b'f' => owned.push('\u{c}'),
                        b'n' => owned.push('\n'),
                        b'r' => owned.push('\r'),
                        b't' => owned.push('\t'),
                        b'u' => owned.push(self.unicode_escape()?),
                        _ => return None,
                    }
                }
                _ => return None, // a control character
            }
        }
    }

    /// The character of a `\uXXXX` escape (the `\u` already read),
    /// combining a surrogate pair; a lone surrogate becomes U+FFFD, as
    /// lossy UTF-8 decoding would make it.
    fn unicode_escape(&mut self) -> Option<char> {
        let high = self.hex4()?;
        if !(0xD800..0xDC00).contains(&high) {
            return Some(char::from_u32(high).unwrap_or(char::REPLACEMENT_CHARACTER));
        }
        let rest = self.text.get(self.at..)?;
        if rest.starts_with("\\u") {
            let save = self.at;
            self.at += 2;
            let low = self.hex4()?;
            if (0xDC00..0xE000).contains(&low) {
                let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                return Some(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            // Not a low surrogate: leave that escape for the next round.
            self.at = save;
        }
        Some(char::REPLACEMENT_CHARACTER)
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.get(self.at..self.at + 4)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.at += 4;
        u32::from_str_radix(digits, 16).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Option<Value<'_>> {
        Value::parse(s.as_bytes())
    }

    /// What serde_json makes of the same text, for comparison.
    fn serde(s: &[u8]) -> Option<serde_json::Value> {
        serde_json::from_slice(s).ok()
    }

    fn to_serde(v: &Value<'_>) -> serde_json::Value {
        let mut out = Vec::new();
        v.write(&mut out);
        serde_json::from_slice(&out).expect("the reader writes valid JSON")
    }

    #[test]
    fn reads_what_lastwords_writes() {
        let line = r#"{"timestamp":"2026-11-25T08:02:03.123456Z","level":"ERROR","message":"a \"quoted\"\n\u00e9 \ud83d\ude00","kind":"panic","pid":42,"seq":7,"f":-1.5e-3,"ok":true,"none":null,"breadcrumbs":[{"name":"x","line":1}],"empty":{},"arr":[]}"#;
        let v = parse(line).expect("valid");
        assert_eq!(v.get("kind").and_then(Value::as_str), Some("panic"));
        assert_eq!(v.get("pid").and_then(Value::as_u64), Some(42));
        assert_eq!(v.get("f").and_then(Value::as_u64), None);
        assert_eq!(
            v.get("message").and_then(Value::as_str),
            Some("a \"quoted\"\né 😀")
        );
        assert!(matches!(v.get("breadcrumbs"), Some(Value::Array(items)) if items.len() == 1));
        assert_eq!(to_serde(&v), serde(line.as_bytes()).unwrap());
    }

    #[test]
    fn rejects_what_is_not_one_complete_value() {
        for bad in [
            "",
            " ",
            "{",
            "{\"a\":1",
            "{\"a\":1}x",
            "{\"a\" 1}",
            "{a:1}",
            "[1,]",
            "[,1]",
            "{\"a\":1,}",
            "01",
            "-",
            "1.",
            "1e",
            ".5",
            "+1",
            "\"\\x\"",
            "\"\\u12\"",
            "\"a\nb\"",
            "nul",
            "tru",
            "\"unterminated",
            "{\"a\":\"b\\\"}",
            "[1 2]",
            "{\"a\":1 \"b\":2}",
            "NaN",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
            assert!(
                serde(bad.as_bytes()).is_none(),
                "serde_json accepts {bad:?}"
            );
        }
        assert_eq!(Value::parse(b"\"\xff\""), None, "invalid UTF-8");
    }

    #[test]
    fn nesting_is_capped() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(&ok).is_some());
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(&deep), None);
        // Far deeper than any stack would take: refused at once.
        let hostile = "[".repeat(1 << 20);
        assert_eq!(parse(&hostile), None);
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        let v = parse(r#""\ud800x\udc00\ud800\u0041""#).unwrap();
        assert_eq!(v.as_str(), Some("\u{fffd}x\u{fffd}\u{fffd}A"));
    }

    /// A small deterministic generator: the test must not depend on a
    /// random-number crate, and must be the same on every run.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Random bytes, truncations and mutations of valid records, and
    /// random JSON-ish token soup: the reader never panics, and it accepts
    /// exactly what serde_json accepts (whose reading agrees with ours).
    #[test]
    fn fuzz_never_panics_and_agrees_with_serde_json() {
        let seeds: Vec<Vec<u8>> = vec![
            br#"{"timestamp":"2026-11-25T08:02:03.123456Z","kind":"signal","signal":"SIGHUP","seq":3,"breadcrumbs":[{"name":"a\u00e9","file":"f.rs","line":1,"thread_id":2}]}"#.to_vec(),
            br#"[1,-0.5e+10,true,false,null,"x\\y\"z\ud83d\ude00",{"k":[{}]}]"#.to_vec(),
            "{\"é\":\"\u{1F600}\"}".as_bytes().to_vec(),
        ];
        let tokens: [&[u8]; 20] = [
            b"{",
            b"}",
            b"[",
            b"]",
            b",",
            b":",
            b"\"",
            b"\\",
            b"\\u",
            b"d83d",
            b"1",
            b"-",
            b".",
            b"e",
            b"true",
            b"null",
            b" ",
            b"\"k\"",
            b"\xc3\xa9",
            b"\xff",
        ];
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut accepted = 0;
        for round in 0..60_000 {
            let input: Vec<u8> = match round % 4 {
                0 => (0..rng.below(40)).map(|_| rng.next() as u8).collect(),
                1 => {
                    let seed = &seeds[rng.below(seeds.len())];
                    seed[..rng.below(seed.len() + 1)].to_vec()
                }
                2 => {
                    let mut seed = seeds[rng.below(seeds.len())].clone();
                    for _ in 0..1 + rng.below(3) {
                        let at = rng.below(seed.len());
                        seed[at] = tokens[rng.below(tokens.len())][0];
                    }
                    seed
                }
                _ => (0..rng.below(24))
                    .flat_map(|_| tokens[rng.below(tokens.len())].iter().copied())
                    .collect(),
            };
            let ours = Value::parse(&input);
            let theirs = serde(&input);
            // serde_json also reads a lone surrogate escape as an error,
            // where this reader replaces it: compare only other inputs.
            if !input.windows(2).any(|w| w == b"\\u") {
                assert_eq!(
                    ours.is_some(),
                    theirs.is_some(),
                    "{:?}",
                    String::from_utf8_lossy(&input)
                );
            }
            if let (Some(ours), Some(theirs)) = (&ours, &theirs) {
                accepted += 1;
                assert_eq!(
                    &to_serde(ours),
                    theirs,
                    "{:?}",
                    String::from_utf8_lossy(&input)
                );
            }
        }
        assert!(
            accepted > 1_000,
            "the fuzzer reached valid inputs only {accepted} times"
        );
    }
}
