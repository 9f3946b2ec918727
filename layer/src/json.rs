//! The JSON writer: escaping and number formatting for one record line.
//!
//! Records are built byte by byte into an [`Out`]: the per-thread `Vec<u8>`
//! of the ordinary record path, or a fixed array on the stack in a signal
//! handler. Both go through the same escaping code, so a line written by a
//! dying process is byte-for-byte in the same dialect as every other line.
//!
//! Nothing here allocates except `Vec::extend` on the ordinary path; with a
//! [`StackBuf`] the code is async-signal-safe.

use std::fmt;

/// A byte sink for a record being built.
pub(crate) trait Out {
    /// Appends `bytes`; a bounded sink silently drops what does not fit and
    /// remembers that it did.
    fn put(&mut self, bytes: &[u8]);
    /// Bytes written so far.
    fn len(&self) -> usize;
}

impl Out for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    #[inline]
    fn len(&self) -> usize {
        Vec::len(self)
    }
}

/// A fixed-capacity buffer on the stack, for async-signal-safe records.
pub(crate) struct StackBuf<const N: usize> {
    bytes: [u8; N],
    len: usize,
    /// Set when a `put` did not fit.
    pub(crate) overflowed: bool,
}

impl<const N: usize> StackBuf<N> {
    pub(crate) const fn new() -> Self {
        StackBuf {
            bytes: [0; N],
            len: 0,
            overflowed: false,
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Drops everything after the first `len` bytes.
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

impl<const N: usize> Out for StackBuf<N> {
    fn put(&mut self, bytes: &[u8]) {
        let room = N - self.len;
        let n = bytes.len().min(room);
        self.bytes[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        if n < bytes.len() {
            self.overflowed = true;
        }
    }
    fn len(&self) -> usize {
        self.len
    }
}

// Escape class of each byte: 0 = copy as is, b'u' = \u00XX, other = `\` + it.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = b'u';
        i += 1;
    }
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[0x08] = b'b';
    table[0x0c] = b'f';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Appends the JSON-escaped form of `s` (without quotes).
#[inline]
pub(crate) fn escape_into<O: Out + ?Sized>(out: &mut O, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let class = ESCAPE[b as usize];
        if class == 0 {
            continue;
        }
        if start < i {
            out.put(&bytes[start..i]);
        }
        if class == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.put(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            out.put(&[b'\\', class]);
        }
        start = i + 1;
    }
    if start < bytes.len() {
        out.put(&bytes[start..]);
    }
}

/// Appends `"s"` with `s` escaped.
#[inline]
pub(crate) fn string<O: Out + ?Sized>(out: &mut O, s: &str) {
    out.put(b"\"");
    escape_into(out, s);
    out.put(b"\"");
}

/// Appends `,"key":` (or `"key":` when `first`). Keys are escaped too: field
/// names are `&'static str` chosen by users and may contain anything.
#[inline]
pub(crate) fn key<O: Out + ?Sized>(out: &mut O, name: &str) {
    out.put(b",\"");
    escape_into(out, name);
    out.put(b"\":");
}

/// Appends an integer of any width.
#[inline]
pub(crate) fn int<O: Out + ?Sized, I: itoa::Integer>(out: &mut O, value: I) {
    out.put(itoa::Buffer::new().format(value).as_bytes());
}

/// Appends a float. JSON has no NaN or infinities: those become the strings
/// `"NaN"`, `"inf"` and `"-inf"`, so the line stays valid and the value is
/// still recognisable.
#[inline]
pub(crate) fn float<O: Out + ?Sized>(out: &mut O, value: f64) {
    if value.is_finite() {
        out.put(ryu::Buffer::new().format_finite(value).as_bytes());
    } else if value.is_nan() {
        out.put(b"\"NaN\"");
    } else if value > 0.0 {
        out.put(b"\"inf\"");
    } else {
        out.put(b"\"-inf\"");
    }
}

/// Appends `true` or `false`.
#[inline]
pub(crate) fn boolean<O: Out + ?Sized>(out: &mut O, value: bool) {
    out.put(if value { b"true" } else { b"false" });
}

/// A `fmt::Write` adapter that escapes everything written through it and
/// stops writing (but keeps counting) once `limit` bytes of output are
/// reached, so one huge `Debug` value cannot make a record unbounded.
pub(crate) struct Escaper<'a, O: Out + ?Sized> {
    out: &'a mut O,
    limit: usize,
    /// Bytes of the formatted value that were not written.
    pub(crate) cut: usize,
}

impl<'a, O: Out + ?Sized> Escaper<'a, O> {
    /// Escapes into `out` until `out.len()` would pass `limit`.
    pub(crate) fn new(out: &'a mut O, limit: usize) -> Self {
        Escaper { out, limit, cut: 0 }
    }
}

impl<O: Out + ?Sized> fmt::Write for Escaper<'_, O> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.cut > 0 {
            self.cut += s.len();
            return Ok(());
        }
        // Worst case every byte becomes `\u00XX`; only measure precisely when
        // that worst case would not fit.
        let room = self.limit.saturating_sub(self.out.len());
        if s.len() * 6 <= room {
            escape_into(self.out, s);
            return Ok(());
        }
        let mut taken = 0;
        for (i, c) in s.char_indices() {
            let mut tmp = [0u8; 4];
            let piece = c.encode_utf8(&mut tmp);
            let need = piece
                .bytes()
                .map(|b| match ESCAPE[b as usize] {
                    0 => 1,
                    b'u' => 6,
                    _ => 2,
                })
                .sum::<usize>();
            if self.out.len() + need > self.limit {
                self.cut = s.len() - i;
                break;
            }
            escape_into(self.out, piece);
            taken = i + c.len_utf8();
        }
        let _ = taken;
        Ok(())
    }
}

/// Appends `"<Display of value>"`, escaped, cut at `limit` total bytes with a
/// visible marker.
pub(crate) fn display_string<O: Out + ?Sized>(out: &mut O, value: &dyn fmt::Display, limit: usize) {
    out.put(b"\"");
    let mut esc = Escaper::new(out, limit);
    // `fmt::Write` for `Escaper` never fails; an error can only come from a
    // user `Display` impl, and then we keep what it wrote so far.
    let _ = fmt::write(&mut esc, format_args!("{value}"));
    finish_cut(esc);
}

/// Same as [`display_string`] for a `Debug` value.
pub(crate) fn debug_string<O: Out + ?Sized>(out: &mut O, value: &dyn fmt::Debug, limit: usize) {
    out.put(b"\"");
    let mut esc = Escaper::new(out, limit);
    // See `display_string` for why the result is ignored.
    let _ = fmt::write(&mut esc, format_args!("{value:?}"));
    finish_cut(esc);
}

/// Same as [`display_string`] for an error followed by its `source()` chain,
/// joined with `": "`, the way `anyhow` prints `{:#}`.
pub(crate) fn error_string<O: Out + ?Sized>(
    out: &mut O,
    error: &(dyn std::error::Error + 'static),
    limit: usize,
) {
    out.put(b"\"");
    let mut esc = Escaper::new(out, limit);
    // See `display_string` for why the result is ignored.
    let _ = fmt::write(&mut esc, format_args!("{}", ErrorChain(error)));
    finish_cut(esc);
}

fn finish_cut<O: Out + ?Sized>(esc: Escaper<'_, O>) {
    let cut = esc.cut;
    let out = esc.out;
    if cut > 0 {
        out.put(b"...[truncated ");
        int(out, cut);
        out.put(b" bytes]");
    }
    out.put(b"\"");
}

/// Displays an error and its sources as `outer: middle: root`.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut v = Vec::new();
        string(&mut v, s);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn escapes_round_trip_through_serde_json() {
        for s in [
            "",
            "plain",
            "quote \" backslash \\ slash /",
            "nl\ncr\rtab\tbell\u{7}nul\u{0}del\u{7f}",
            "unicode é 漢字 🦀 \u{2028}",
        ] {
            let json = escaped(s);
            let back: String = serde_json::from_str(&json).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn floats_are_always_valid_json() {
        for (v, want) in [
            (1.5, serde_json::json!(1.5)),
            (f64::NAN, serde_json::json!("NaN")),
            (f64::INFINITY, serde_json::json!("inf")),
            (f64::NEG_INFINITY, serde_json::json!("-inf")),
            (-0.0, serde_json::json!(-0.0)),
        ] {
            let mut out = Vec::new();
            float(&mut out, v);
            let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(parsed, want);
        }
    }

    #[test]
    fn long_values_are_cut_with_a_marker_on_a_char_boundary() {
        let long = "é".repeat(1000);
        let mut out = Vec::new();
        display_string(&mut out, &long, 101);
        let parsed: String = serde_json::from_slice(&out).unwrap();
        assert!(parsed.starts_with("éé"));
        assert!(parsed.ends_with("bytes]"), "{parsed}");
        assert!(parsed.contains("...[truncated "), "{parsed}");
        assert!(out.len() < 140, "{}", out.len());
    }

    #[test]
    fn stack_buffer_drops_overflow_and_remembers() {
        let mut buf = StackBuf::<8>::new();
        buf.put(b"12345");
        buf.put(b"6789");
        assert_eq!(buf.as_bytes(), b"12345678");
        assert!(buf.overflowed);
    }

    #[test]
    fn error_chain_joins_sources() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("connect failed")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let err = Outer(std::io::Error::other("reset by peer"));
        let mut out = Vec::new();
        error_string(&mut out, &err, 1000);
        assert_eq!(
            serde_json::from_slice::<String>(&out).unwrap(),
            "connect failed: reset by peer"
        );
    }
}
