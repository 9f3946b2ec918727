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

use crate::clock::DIGIT_PAIRS;

/// A byte sink for a record being built.
pub(crate) trait Out {
    /// Appends `bytes`; a bounded sink silently drops what does not fit and
    /// remembers that it did.
    fn put(&mut self, bytes: &[u8]);
    /// Bytes written so far.
    fn len(&self) -> usize;
    /// The growable buffer behind this sink, if it is one: formatted values
    /// then take [`escaped_args`]' faster path.
    fn as_vec(&mut self) -> Option<&mut Vec<u8>> {
        None
    }
}

impl Out for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        let n = bytes.len();
        // Most pieces of a record are short and of a length unknown at
        // compile time (a field name, a number's digits, a timestamp): copy
        // those inline rather than through a `memcpy` call, which costs more
        // than the copy itself at these sizes.
        if n <= 64 && self.capacity() - self.len() >= n {
            let len = self.len();
            // SAFETY: `n` bytes of spare capacity were checked above, and
            // `copy_short` writes exactly the `n` bytes after `len` and reads
            // only within `bytes`; `bytes` cannot overlap the spare capacity
            // (`self` is borrowed mutably).
            unsafe {
                copy_short(bytes.as_ptr(), self.as_mut_ptr().add(len), n);
                self.set_len(len + n);
            }
        } else {
            self.extend_from_slice(bytes);
        }
    }
    #[inline]
    fn len(&self) -> usize {
        Vec::len(self)
    }
    #[inline]
    fn as_vec(&mut self) -> Option<&mut Vec<u8>> {
        Some(self)
    }
}

/// Copies `n <= 64` bytes with at most four moves of 16 bytes (the first
/// and last 32, overlapping), or two overlapping moves of the largest width
/// that fits (16, 8, 4 bytes), or byte by byte below 4: no loop and no call,
/// and when `n` is a constant only one branch is left.
///
/// # Safety
///
/// `src` must be readable and `dst` writable for `n` bytes, `n <= 64`, and
/// the two ranges must not overlap.
#[inline(always)]
unsafe fn copy_short(src: *const u8, dst: *mut u8, n: usize) {
    debug_assert!(n <= 64);
    // SAFETY (all branches): each read starts at `src` or ends at `src + n`
    // and is at most `n` bytes long, likewise each write from `dst`; all
    // reads happen before the writes that could matter, and the ranges are
    // disjoint by the caller's contract.
    unsafe {
        if n > 32 {
            let first = src.cast::<[u8; 32]>().read_unaligned();
            let last = src.add(n - 32).cast::<[u8; 32]>().read_unaligned();
            dst.cast::<[u8; 32]>().write_unaligned(first);
            dst.add(n - 32).cast::<[u8; 32]>().write_unaligned(last);
        } else if n >= 16 {
            let first = src.cast::<[u8; 16]>().read_unaligned();
            let last = src.add(n - 16).cast::<[u8; 16]>().read_unaligned();
            dst.cast::<[u8; 16]>().write_unaligned(first);
            dst.add(n - 16).cast::<[u8; 16]>().write_unaligned(last);
        } else if n >= 8 {
            let first = src.cast::<[u8; 8]>().read_unaligned();
            let last = src.add(n - 8).cast::<[u8; 8]>().read_unaligned();
            dst.cast::<[u8; 8]>().write_unaligned(first);
            dst.add(n - 8).cast::<[u8; 8]>().write_unaligned(last);
        } else if n >= 4 {
            let first = src.cast::<[u8; 4]>().read_unaligned();
            let last = src.add(n - 4).cast::<[u8; 4]>().read_unaligned();
            dst.cast::<[u8; 4]>().write_unaligned(first);
            dst.add(n - 4).cast::<[u8; 4]>().write_unaligned(last);
        } else if n > 0 {
            // 1 to 3 bytes: first, middle and last cover them all.
            let (a, b, c) = (*src, *src.add(n / 2), *src.add(n - 1));
            *dst = a;
            *dst.add(n / 2) = b;
            *dst.add(n - 1) = c;
        }
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

/// Whether any of the 8 bytes of `word` needs escaping: a control byte, `"`
/// or `\`. (The classic "has a zero byte" test, once per class; a byte
/// after one that matches may be flagged too, which only ends the fast
/// scan early.)
#[inline]
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (below_space | quote | backslash) & HIGH != 0
}

/// How many leading bytes of `bytes` certainly need no escaping, checked 8
/// at a time (most strings in records need none).
#[inline]
fn clean_prefix(bytes: &[u8]) -> usize {
    if bytes.len() < 8 {
        return bytes
            .iter()
            .position(|&b| ESCAPE[b as usize] != 0)
            .unwrap_or(bytes.len());
    }
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let mut i = 0;
    while i + 8 <= bytes.len() {
        if needs_escape(word(i)) {
            return i;
        }
        i += 8;
    }
    // The last, partial word: re-check the final 8 bytes.
    if i < bytes.len() && bytes.len() >= 8 && !needs_escape(word(bytes.len() - 8)) {
        return bytes.len();
    }
    i
}

/// Whether no byte of `bytes` needs escaping. Strings of 4 to 7 bytes (many
/// field names and values) are checked as one word built from two
/// overlapping loads, without a loop; longer ones 8 bytes at a time,
/// shorter ones byte by byte. Only real bytes go into the word, and
/// [`needs_escape`] flags nothing when no byte matches, so the answer is
/// exact.
#[inline]
fn is_clean(bytes: &[u8]) -> bool {
    let n = bytes.len();
    if n >= 8 {
        return clean_prefix(bytes) == n;
    }
    let word = if n >= 4 {
        let first = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let last = u32::from_le_bytes([bytes[n - 4], bytes[n - 3], bytes[n - 2], bytes[n - 1]]);
        u64::from(first) | u64::from(last) << 32
    } else {
        // At most 3 bytes: one table lookup each is cheaper than building
        // a word.
        return bytes.iter().all(|&b| ESCAPE[b as usize] == 0);
    };
    !needs_escape(word)
}

/// Appends the JSON-escaped form of `s` (without quotes).
///
/// Small enough to inline: values are often written in many short pieces
/// (a `Display` impl's `write_str` calls), most of which need no escaping.
#[inline]
pub(crate) fn escape_into<O: Out + ?Sized>(out: &mut O, s: &str) {
    let bytes = s.as_bytes();
    if is_clean(bytes) {
        out.put(bytes);
    } else {
        escape_from(out, bytes, 0);
    }
}

/// [`escape_into`] once a byte at or after `clean` needs escaping.
#[inline(never)]
fn escape_from<O: Out + ?Sized>(out: &mut O, bytes: &[u8], clean: usize) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate().skip(clean) {
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

/// Appends `pre`, `s` and `post` with one capacity check and inline copies,
/// if `s` is at most 32 bytes long and needs no escaping (field names,
/// targets, short values: almost always); else writes nothing and returns
/// `false`. `pre` and `post` are short constants.
#[inline(always)]
fn put_plain(out: &mut Vec<u8>, pre: &[u8], s: &[u8], post: &[u8]) -> bool {
    let n = s.len();
    if n > 32 || !is_clean(s) {
        return false;
    }
    let total = pre.len() + n + post.len();
    out.reserve(total);
    let len = out.len();
    // SAFETY: `reserve` made room for `total` bytes after `len`, which the
    // three copies fill exactly, in order; each source is at most 32 bytes
    // (`pre` and `post` are constants of a few bytes) and none can overlap
    // the spare capacity of the mutably borrowed `out`.
    unsafe {
        let dst = out.as_mut_ptr().add(len);
        copy_short(pre.as_ptr(), dst, pre.len());
        copy_short(s.as_ptr(), dst.add(pre.len()), n);
        copy_short(post.as_ptr(), dst.add(pre.len() + n), post.len());
        out.set_len(len + total);
    }
    true
}

/// Appends `"s"` with `s` escaped.
#[inline]
pub(crate) fn string<O: Out + ?Sized>(out: &mut O, s: &str) {
    if let Some(vec) = out.as_vec() {
        return string_vec(vec, s);
    }
    out.put(b"\"");
    escape_into(out, s);
    out.put(b"\"");
}

/// [`string`] into a `Vec`: most strings take [`put_plain`]'s path.
///
/// The `Vec` paths are separate functions so that the generic ones stay
/// small on a [`StackBuf`]: in an unoptimized build, code inlined into a
/// signal handler's frame (even code that cannot run there) enlarges it,
/// and the handler runs on a small alternate stack.
#[inline]
pub(crate) fn string_vec(out: &mut Vec<u8>, s: &str) {
    if !put_plain(out, b"\"", s.as_bytes(), b"\"") {
        out.put(b"\"");
        escape_into(out, s);
        out.put(b"\"");
    }
}

/// Appends `,"key":`. Keys are escaped too: field names are `&'static str`
/// chosen by users and may contain anything. (Records' fields take
/// [`key_vec`].)
#[inline]
pub(crate) fn key<O: Out + ?Sized>(out: &mut O, name: &str) {
    out.put(b",\"");
    escape_into(out, name);
    out.put(b"\":");
}

/// [`key`] into a `Vec`. Nearly all field names are plain identifiers,
/// which take [`put_plain`]'s path. Always inlined: a call and its
/// register saves cost a third of writing a short key.
#[inline(always)]
pub(crate) fn key_vec(out: &mut Vec<u8>, name: &str) {
    if !put_plain(out, b",\"", name.as_bytes(), b"\":") {
        out.put(b",\"");
        escape_into(out, name);
        out.put(b"\":");
    }
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
        let mut buf = [0u8; SHORT_FLOAT_MAX];
        match short_float(value, &mut buf) {
            Some(start) => out.put(&buf[start..]),
            None => out.put(ryu::Buffer::new().format_finite(value).as_bytes()),
        }
    } else if value.is_nan() {
        out.put(b"\"NaN\"");
    } else if value > 0.0 {
        out.put(b"\"inf\"");
    } else {
        out.put(b"\"-inf\"");
    }
}

/// Room for the longest output of [`short_float`]: a sign, `0.`, and up to
/// 18 decimals (`0.000123456789012345`).
const SHORT_FLOAT_MAX: usize = 24;

/// `10^k` for `k` in `0..=19`, all exact in an `f64`.
const POW10: [f64; 20] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19,
];

/// A fast path for the floats logs are full of (`0.25`, `99.9`, `1500.0`),
/// writing exactly what `ryu::Buffer::format_finite` writes, in a fifth of
/// the time: ryu's shortest-digits search is general, and slowest on short
/// values. Writes the text right-aligned in `buf` and returns where it
/// starts; returns `None` (use ryu) unless `value` is zero, or lies in
/// `[1e-4, 1e15)` and its shortest round-trip form has at most 15
/// significant digits.
///
/// Why the output is ryu's: with at most 15 significant digits there is at
/// most one decimal of that length within half an ulp of `value` (decimals
/// of 15 digits are further apart than an ulp), so the shortest round-trip
/// form is unique. It lies on the grid `m / 10^k` with `m < 10^15`, where
/// `k` is the largest with `value * 10^k < 10^15`; the product is off by
/// less than 0.07 and the form by less than 0.12 of a grid step, so
/// rounding the product finds `m`. The division by an exact power of ten is
/// correctly rounded, so `m / 10^k == value` is exactly "parses back to
/// `value`". Trailing zeros of `m` are then dropped, and the digits laid out
/// as ryu does in this range (`123.0`, `1.25`, `0.0001`).
///
/// Async-signal-safe: arithmetic on the stack only.
fn short_float(value: f64, buf: &mut [u8; SHORT_FLOAT_MAX]) -> Option<usize> {
    let negative = value.is_sign_negative();
    let abs = value.abs();
    if abs == 0.0 {
        return Some(lay_out(buf, 0, 0, negative));
    }
    if !(1e-4..1e15).contains(&abs) {
        return None;
    }
    // floor(log10(abs)) is floor(e2 * log10(2)) or one more; 78913 / 2^18
    // is log10(2) to 6 digits, exact enough for |e2| < 2^10.
    let e2 = ((abs.to_bits() >> 52) as i32) - 1023;
    let mut k = (14 - ((e2 * 78_913) >> 18)) as usize;
    if abs * POW10[k] >= 1e15 {
        k -= 1;
    }
    // Most logged floats have few decimals (`0.25`, `99.9`, `1500.0`): try
    // the first few grids `m / 10^j` from the coarsest. A hit at the
    // smallest `j` is the form the full-precision check below would find
    // (the form is unique, and padding it with zeros puts it on that grid
    // too), already without trailing zeros. Capped so that values that are
    // not short (`0.1 + 0.2`) pay for a few tries only.
    //
    // `abs * 10^j < 2^50`: adding one half is exact and the truncation
    // rounds to nearest (`f64::round` can be a libm call). Conversions go
    // through `i64`, one instruction each way (`u64`'s take several), which
    // holds every value below 2^50.
    let mut j = 0;
    while j <= k.min(SHORT_TRIES) {
        let digits = round_half_up(abs * POW10[j]);
        if digits as f64 / POW10[j] == abs {
            return Some(lay_out(buf, digits as u64, j, negative));
        }
        j += 1;
    }
    let digits = round_half_up(abs * POW10[k]);
    if digits >= 1_000_000_000_000_000 || digits as f64 / POW10[k] != abs {
        return None;
    }
    let mut digits = digits as u64;
    // Drop up to `k` trailing zeros (at most 14: `digits < 10^15`), by
    // halving steps; constant divisors compile to multiplications (a
    // hardware division costs tens of cycles).
    if k >= 8 && digits % 100_000_000 == 0 {
        digits /= 100_000_000;
        k -= 8;
    }
    if k >= 4 && digits % 10_000 == 0 {
        digits /= 10_000;
        k -= 4;
    }
    if k >= 2 && digits % 100 == 0 {
        digits /= 100;
        k -= 2;
    }
    if k >= 1 && digits % 10 == 0 {
        digits /= 10;
        k -= 1;
    }
    Some(lay_out(buf, digits, k, negative))
}

/// `x + 0.5` truncated, for `x` in `[0, 1e15)`, which is all
/// [`short_float`] passes (`abs * 10^j <= abs * 10^k < 1e15`): a plain
/// conversion, without the checks for NaN and out-of-range values that
/// `as i64` adds (six instructions per try).
#[inline(always)]
fn round_half_up(x: f64) -> i64 {
    // SAFETY: for `x` in `[0, 1e15)`, `x + 0.5` is finite and its
    // truncation fits an `i64` (it is below 2^50).
    unsafe { (x + 0.5).to_int_unchecked::<i64>() }
}

/// How many decimals [`short_float`] tries one at a time before the
/// general check at full precision.
const SHORT_TRIES: usize = 4;

/// Writes `digits` with the point `k` places from the right, as ryu lays
/// out numbers in `[1e-4, 1e15)` (`123.0`, `1.25`, `0.0001`), right-aligned
/// in `buf`; returns where the text starts. Written from the last digit
/// backwards: the point and the leading `0.` fall into place without
/// counting the digits first.
#[inline]
fn lay_out(buf: &mut [u8; SHORT_FLOAT_MAX], mut digits: u64, k: usize, negative: bool) -> usize {
    let mut at = SHORT_FLOAT_MAX;
    if k == 0 {
        at -= 2;
        buf[at..].copy_from_slice(b".0");
    } else {
        // The `k` decimals, zero-padded on the left (`0.0025`), two at a
        // time from a table after an odd one.
        let mut left = k;
        if left % 2 == 1 {
            at -= 1;
            buf[at] = b'0' + (digits % 10) as u8;
            digits /= 10;
            left -= 1;
        }
        while left > 0 {
            at -= 2;
            buf[at..at + 2].copy_from_slice(&DIGIT_PAIRS[(digits % 100) as usize]);
            digits /= 100;
            left -= 2;
        }
        at -= 1;
        buf[at] = b'.';
    }
    // The integer part: at least one digit, no leading zero.
    while digits >= 100 {
        at -= 2;
        buf[at..at + 2].copy_from_slice(&DIGIT_PAIRS[(digits % 100) as usize]);
        digits /= 100;
    }
    if digits >= 10 {
        at -= 2;
        buf[at..at + 2].copy_from_slice(&DIGIT_PAIRS[digits as usize]);
    } else {
        at -= 1;
        buf[at] = b'0' + digits as u8;
    }
    if negative {
        at -= 1;
        buf[at] = b'-';
    }
    at
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
    if let Some(vec) = out.as_vec() {
        return escaped_args(vec, format_args!("{value}"), limit);
    }
    out.put(b"\"");
    let mut esc = Escaper::new(out, limit);
    // `fmt::Write` for `Escaper` never fails; an error can only come from a
    // user `Display` impl, and then we keep what it wrote so far.
    let _ = fmt::write(&mut esc, format_args!("{value}"));
    finish_cut(esc);
}

/// Same as [`display_string`] for a `Debug` value.
pub(crate) fn debug_string<O: Out + ?Sized>(out: &mut O, value: &dyn fmt::Debug, limit: usize) {
    if let Some(vec) = out.as_vec() {
        return escaped_args(vec, format_args!("{value:?}"), limit);
    }
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
    if let Some(vec) = out.as_vec() {
        return escaped_args(vec, format_args!("{}", ErrorChain(error)), limit);
    }
    out.put(b"\"");
    let mut esc = Escaper::new(out, limit);
    // See `display_string` for why the result is ignored.
    let _ = fmt::write(&mut esc, format_args!("{}", ErrorChain(error)));
    finish_cut(esc);
}

/// [`display_string`] and friends on a `Vec`: the value is formatted
/// straight into the record, unescaped, then checked 8 bytes at a time.
/// Values are often written in many small pieces (each `{}` of a `Display`
/// impl is one `write_str`), and most need no escaping, so this spares the
/// per-piece escaping work. The output is byte-for-byte the [`Escaper`]'s:
/// when something needs escaping or the value is too long, what was
/// captured goes through the `Escaper` after all, and what did not fit is
/// added to its count of cut bytes (raw bytes past the limit could not have
/// fitted escaped either: escaping never shortens).
fn escaped_args(out: &mut Vec<u8>, args: fmt::Arguments<'_>, limit: usize) {
    out.put(b"\"");
    let start = out.len();
    let mut raw = Raw {
        out,
        cap: limit.max(start),
        rest: 0,
    };
    // See `display_string` for why the result is ignored.
    let _ = fmt::write(&mut raw, args);
    let rest = raw.rest;
    if rest == 0 && is_clean(&out[start..]) {
        out.put(b"\"");
        return;
    }
    let captured = out.split_off(start);
    // `Raw` only cuts on char boundaries, so this holds whole chars.
    let text = std::str::from_utf8(&captured).unwrap_or_default();
    let mut esc = Escaper::new(out, limit);
    // `fmt::Write` for `Escaper` never fails.
    let _ = fmt::Write::write_str(&mut esc, text);
    esc.cut += rest;
    finish_cut(esc);
}

/// A `fmt::Write` that appends to the record unescaped until the buffer
/// reaches `cap` bytes (cutting on a char boundary), then only counts.
struct Raw<'a> {
    out: &'a mut Vec<u8>,
    cap: usize,
    /// Bytes formatted after the cap was reached.
    rest: usize,
}

impl fmt::Write for Raw<'_> {
    #[inline]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.rest > 0 {
            self.rest += s.len();
            return Ok(());
        }
        let room = self.cap - self.out.len();
        if s.len() <= room {
            self.out.put(s.as_bytes());
        } else {
            let mut cut = room;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            self.out.put(&s.as_bytes()[..cut]);
            self.rest = s.len() - cut;
        }
        Ok(())
    }
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

/// Appends `value`, a JSON string as this module writes them, cut so that
/// `out` ends by `limit` bytes, with the usual marker (the count is of the
/// original bytes: each escape stands for one). Writes nothing and returns
/// `false` when `value` is not a string or not even the marker fits.
pub(crate) fn recut_string(out: &mut Vec<u8>, value: &[u8], limit: usize) -> bool {
    // `"` `...[truncated ` 20 digits ` bytes]` `"`
    const MARKER_MAX: usize = 2 + 14 + 20 + 7;
    if value.len() < 2 || value[0] != b'"' || value[value.len() - 1] != b'"' {
        return false;
    }
    let Some(keep) = limit.checked_sub(out.len() + MARKER_MAX) else {
        return false;
    };
    let mut body = &value[1..value.len() - 1];
    // A value cut before: its marker goes, its count adds to the new one.
    let mut dropped = 0usize;
    if let Some(rest) = body.strip_suffix(b" bytes]") {
        const CUT: &[u8] = b"...[truncated ";
        if let Some(at) = rest.windows(CUT.len()).rposition(|w| w == CUT) {
            let digits = &rest[at + CUT.len()..];
            if let Some(n) = std::str::from_utf8(digits)
                .ok()
                .and_then(|d| d.parse::<usize>().ok())
            {
                body = &body[..at];
                dropped = n;
            }
        }
    }
    // The longest prefix of whole escapes and whole characters that fits.
    let step = |b: &[u8], i: usize| match b[i] {
        b'\\' if b.get(i + 1) == Some(&b'u') => 6,
        b'\\' => 2,
        lead if lead >= 0xF0 => 4,
        lead if lead >= 0xE0 => 3,
        lead if lead >= 0xC0 => 2,
        _ => 1,
    };
    let mut cut = 0;
    while cut < body.len() {
        let next = cut + step(body, cut);
        if next > keep {
            break;
        }
        cut = next;
    }
    let mut i = cut;
    while i < body.len() {
        let n = step(body, i);
        // An escape stands for one byte; a character for its bytes.
        dropped += if body[i] == b'\\' { 1 } else { n };
        i += n;
    }
    out.put(b"\"");
    out.put(&body[..cut]);
    if dropped > 0 {
        out.put(b"...[truncated ");
        int(out, dropped);
        out.put(b" bytes]");
    }
    out.put(b"\"");
    true
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

    #[test]
    fn a_recut_string_is_a_prefix_with_the_count_of_what_it_lost() {
        let pieces = ["a", "\"", "\n", "\u{1}", "é", "漢", "🦀", "\\"];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..200 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let text: String = (0..(state % 60))
                .map(|i| pieces[((state >> (i % 48)) % pieces.len() as u64) as usize])
                .collect();
            let mut whole = Vec::new();
            string_vec(&mut whole, &text);
            for limit in 0..whole.len() + 60 {
                let mut out = b"{\"k\":".to_vec();
                if !recut_string(&mut out, &whole, limit) {
                    assert!(limit < 5 + 45, "{limit}");
                    continue;
                }
                assert!(out.len() <= limit, "{} > {limit}", out.len());
                out.push(b'}');
                let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
                let got = parsed["k"].as_str().unwrap();
                match got.split_once("...[truncated ") {
                    None => assert_eq!(got, text),
                    Some((kept, rest)) => {
                        assert!(text.starts_with(kept), "{kept:?} of {text:?}");
                        let lost: usize = rest.trim_end_matches(" bytes]").parse().unwrap();
                        assert_eq!(kept.len() + lost, text.len(), "{got:?}");
                    }
                }
            }
        }
        let mut out = Vec::new();
        assert!(!recut_string(&mut out, b"12", 100));
        assert!(out.is_empty());
        // A value cut before keeps one marker, counting all that was lost.
        let mut once = Vec::new();
        display_string(&mut once, &"x".repeat(1_000), 200);
        let mut twice = Vec::new();
        assert!(recut_string(&mut twice, &once, 100));
        let twice = std::str::from_utf8(&twice).unwrap();
        let kept = twice.matches('x').count();
        assert_eq!(
            twice,
            format!(
                "\"{}...[truncated {} bytes]\"",
                "x".repeat(kept),
                1_000 - kept
            )
        );
    }

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
    fn formatted_values_match_the_escaper_on_every_cut() {
        // The Vec path (raw, then checked) against the generic Escaper path
        // (taken for a StackBuf), at every limit around the value's length.
        struct Pieces(&'static [&'static str]);
        impl fmt::Display for Pieces {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.iter().try_for_each(|p| f.write_str(p))
            }
        }
        let values: &[&[&str]] = &[
            &["plain text in ", "several ", "pieces"],
            &["quote \" and ", "back\\slash", " nl\n"],
            &["é漢🦀", "\u{1}", "tail"],
            &[""],
            &["x"; 40],
        ];
        for value in values {
            let value = Pieces(value);
            let total = value.to_string().len();
            for prefix in [0usize, 3] {
                for limit in 0..total * 7 + 8 {
                    let mut vec = vec![b'p'; prefix];
                    display_string(&mut vec, &value, prefix + limit);
                    let mut stack = StackBuf::<1024>::new();
                    stack.put(&vec![b'p'; prefix]);
                    display_string(&mut stack, &value, prefix + limit);
                    assert_eq!(
                        String::from_utf8_lossy(&vec),
                        String::from_utf8_lossy(stack.as_bytes()),
                        "limit {limit}, prefix {prefix}"
                    );
                }
            }
        }
    }

    #[test]
    fn vec_put_appends_every_length() {
        let source: Vec<u8> = (0..80).collect();
        for len in 0..80 {
            for spare in [0, len, 2 * len] {
                let mut out = Vec::with_capacity(3 + spare);
                out.extend_from_slice(b"abc");
                out.put(&source[..len]);
                out.put(&source[80 - len..]);
                let want: Vec<u8> = b"abc"
                    .iter()
                    .chain(&source[..len])
                    .chain(&source[80 - len..])
                    .copied()
                    .collect();
                assert_eq!(out, want, "len {len}, spare {spare}");
            }
        }
    }

    #[test]
    fn every_byte_is_escaped_at_every_position() {
        // Each ASCII byte, alone and at each offset of strings up to 20
        // bytes, so that both the 8-byte scan and the byte loop meet it.
        for b in 0u8..0x80 {
            for len in 1..20 {
                for at in 0..len {
                    let mut s = vec![b'a'; len];
                    s[at] = b;
                    let s = String::from_utf8(s).unwrap();
                    let json = escaped(&s);
                    assert_eq!(serde_json::from_str::<String>(&json).unwrap(), s);
                    let must = b < 0x20 || b == b'"' || b == b'\\';
                    assert_eq!(json.len() > len + 2, must, "{json}");
                }
            }
        }
        assert_eq!(
            escaped("ünïcödé text, long enough"),
            "\"ünïcödé text, long enough\""
        );
    }

    #[test]
    fn is_clean_agrees_with_the_table_for_every_byte_and_position() {
        // Every byte value at every position of strings up to 20 bytes, on
        // fillers that are plain ASCII and non-ASCII, so that each way of
        // building the word (1-3, 4-7, 8+ bytes) meets each byte.
        for filler in [b'a', 0x7f, 0xc3, 0xff] {
            for b in 0..=255u8 {
                for len in 1..=20 {
                    for at in 0..len {
                        let mut s = vec![filler; len];
                        s[at] = b;
                        let want = s.iter().all(|&c| ESCAPE[c as usize] == 0);
                        assert_eq!(is_clean(&s), want, "byte {b:#x} at {at} of {len}");
                    }
                }
            }
        }
        assert!(is_clean(b""));
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

    use crate::test_support::Rng;

    #[test]
    fn float_fast_path_writes_what_ryu_writes() {
        let fast = std::cell::Cell::new(0u32);
        let check = |v: f64| {
            fast.set(fast.get() + u32::from(short_float(v, &mut [0; SHORT_FLOAT_MAX]).is_some()));
            let mut out = Vec::new();
            float(&mut out, v);
            let want = ryu::Buffer::new().format_finite(v).to_owned();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                want,
                "bits {:#x}",
                v.to_bits()
            );
        };
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for v in [
            0.0,
            -0.0,
            1e-4,
            9.999e-5,
            1e15,
            999_999_999_999_999.0,
            1e15 - 0.5,
            0.1,
            0.2,
        ] {
            check(v);
            check(-v);
        }
        for power in POW10 {
            for delta in [-2i64, -1, 0, 1, 2] {
                let p = f64::from_bits((power / 1e4).to_bits().wrapping_add(delta as u64));
                check(p);
            }
        }
        for _ in 0..300_000 {
            // Arbitrary bit patterns: almost all take ryu's path.
            let v = f64::from_bits(rng.next());
            if v.is_finite() {
                check(v);
            }
            // Short decimals m / 10^k, of every length and scale.
            let digits = 1 + rng.next() % 17;
            let m = rng.next() % 10u64.pow(digits as u32);
            let k = rng.next() % 22;
            let v: f64 = format!("{m}e-{k}").parse().unwrap();
            check(v);
            check(-v);
            // Neighbours of short decimals: the longest forms.
            check(f64::from_bits(v.to_bits() + 1));
            check(f64::from_bits(v.to_bits().saturating_sub(1)));
            // Integers, and sums that are not short.
            check((rng.next() >> (rng.next() % 64)) as f64);
            check(0.1 * (rng.next() % 1000) as f64 + 0.2);
        }
        // The fast path must have been exercised, not just ryu compared
        // with itself.
        assert!(fast.get() > 500_000, "fast path taken {} times", fast.get());
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
        let err =
            crate::test_support::Wrapped("connect failed", std::io::Error::other("reset by peer"));
        let mut out = Vec::new();
        error_string(&mut out, &err, 1000);
        assert_eq!(
            serde_json::from_slice::<String>(&out).unwrap(),
            "connect failed: reset by peer"
        );
    }
}
