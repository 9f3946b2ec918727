//! Assembling one record line: the schema's fixed keys, then fields.
//!
//! Every record, whether it comes from a `tracing` event or from a hook, is
//! built in two per-thread buffers that are reused from record to record (no
//! allocation once they have grown to the size of the largest record):
//!
//! ```text
//! head: {"timestamp":"…","level":"…","message":"…","target":"…","kind":"…","pid":N,"run_id":"…"
//!       ,"seq":N                                   <- added by Sink::commit
//! tail: ,"thread":"…","thread_id":N,<fields…>,"span":{…},"spans":[…]}\n
//! ```
//!
//! and handed to the sink, which numbers it and writes it with one system
//! call.

use std::cell::RefCell;
use std::fmt;

use tracing_core::{Level, Metadata};

use crate::clock::{FormatCache, Timestamp};
use crate::json::{self, Out};
use crate::ring::Crumb;
use crate::sink::Sink;

/// Room kept below the record cap for `seq`, the last value's cut marker,
/// the closing bytes and the smallest `span` members.
const RESERVE: usize = 256;

/// Room `,"seq":N` takes in the head once the sink has numbered it.
pub(crate) const SEQ_MAX: usize = 27;

/// Where a thread's name is cut in its `,"thread":"…"` piece.
const THREAD_NAME_MAX: usize = 128;

/// The reusable buffers of one thread.
pub(crate) struct Bufs {
    pub(crate) head: Vec<u8>,
    /// Always begins with `thread`: [`Bufs::reset`] keeps it there, so
    /// that records do not copy it in again.
    pub(crate) tail: Vec<u8>,
    /// `,"thread":"…","thread_id":N`, computed once per thread.
    thread: Vec<u8>,
    /// This thread's last timestamp, formatted.
    clock: FormatCache,
    /// Field names already written, as `,"name":`.
    keys: Box<KeyCache>,
    /// Callsites' `,"target":…` pieces.
    sites: SiteCache,
    /// The keys of the record being built, for the duplicate check.
    written: Written,
    /// The fork generation these were made in: a child of `fork()` has a
    /// new pid, run id and thread id, so it starts afresh.
    generation: u64,
}

impl Bufs {
    fn new() -> Bufs {
        let mut thread = Vec::with_capacity(64);
        let current = std::thread::current();
        json::key(&mut thread, "thread");
        // A thread name is the user's: cut so the piece always leaves the
        // record room for its fields.
        json::display_string(
            &mut thread,
            &current.name().unwrap_or("<unnamed>"),
            THREAD_NAME_MAX,
        );
        json::key(&mut thread, "thread_id");
        json::int(&mut thread, crate::thread::tid());
        let mut tail = Vec::with_capacity(512);
        tail.extend_from_slice(&thread);
        Bufs {
            head: Vec::with_capacity(1024),
            tail,
            thread,
            clock: FormatCache::new(),
            keys: Box::new(KeyCache::new()),
            sites: SiteCache::new(),
            written: Written::default(),
            generation: crate::thread::generation(),
        }
    }

    /// Empties the head, and the tail down to the thread's piece.
    pub(crate) fn reset(&mut self) {
        self.head.clear();
        self.tail.truncate(self.thread.len());
    }
}

thread_local! {
    static BUFS: RefCell<Option<Bufs>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's buffers, cleared. Falls back to fresh buffers
/// when the thread's are in use (a `Debug` impl that logs while its record is
/// being formatted) or already destroyed (a thread-local destructor that
/// logs).
pub(crate) fn with_bufs<R>(f: impl FnOnce(&mut Bufs) -> R) -> R {
    let mut f = Some(f);
    let reused = BUFS.try_with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        let bufs = slot.get_or_insert_with(Bufs::new);
        if bufs.generation != crate::thread::generation() {
            *bufs = Bufs::new();
        }
        bufs.reset();
        let f = f.take()?;
        let result = f(bufs);
        // Do not keep one huge record's memory for the life of the thread.
        if bufs.tail.capacity() > 1 << 20 {
            bufs.tail = Vec::with_capacity(512);
            bufs.tail.extend_from_slice(&bufs.thread);
        }
        if bufs.head.capacity() > 1 << 20 {
            bufs.head = Vec::with_capacity(1024);
        }
        Some(result)
    });
    match reused {
        Ok(Some(result)) => result,
        _ => (f.take().expect("`f` is only taken once it runs"))(&mut Bufs::new()),
    }
}

/// The level's name as written in records.
pub(crate) fn level_name(level: Level) -> &'static str {
    match level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => "INFO",
        Level::WARN => "WARN",
        _ => "ERROR",
    }
}

/// The fixed keys of every line, then `extra` ones.
macro_rules! schema_keys {
    ($($extra:literal),*) => {
        &[
            "timestamp", "level", "message", "target", "kind", "pid", "run_id", "seq",
            "thread", "thread_id", "span", "spans", $($extra),*
        ]
    };
}

/// The names of the fixed keys; a user field with one of these names is
/// written under another key (see [`Fields`]) so that no line has a key
/// twice. With the `opentelemetry` feature, the ids of the span a record
/// is written in are schema keys too (see `otel.rs`).
#[cfg(feature = "opentelemetry")]
pub(crate) const SCHEMA_KEYS: &[&str] = schema_keys!("trace_id", "span_id");

/// The names of the fixed keys (see the other definition).
#[cfg(not(feature = "opentelemetry"))]
pub(crate) const SCHEMA_KEYS: &[&str] = schema_keys!();

/// Whether `name` is one of [`SCHEMA_KEYS`]. Asked for every field of every
/// record: dispatching on the length first turns it into a compare or two
/// of short constants instead of a dozen string comparisons.
#[inline]
pub(crate) fn is_schema_key(name: &str) -> bool {
    let known = match name.len() {
        3 => name == "pid" || name == "seq",
        4 => name == "kind" || name == "span",
        5 => name == "level" || name == "spans",
        6 => name == "target" || name == "run_id" || name == "thread",
        7 => name == "message" || (cfg!(feature = "opentelemetry") && name == "span_id"),
        8 => cfg!(feature = "opentelemetry") && name == "trace_id",
        9 => name == "timestamp" || name == "thread_id",
        _ => false,
    };
    debug_assert_eq!(known, SCHEMA_KEYS.contains(&name), "{name}");
    known
}

/// Writes the head of a record. `message` writes the message's JSON string
/// (quotes included) into the buffer it is given. `site` is the `tracing`
/// callsite the record comes from, if any, and the sink it goes to: the
/// piece after the message is then taken from this thread's [`SiteCache`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn head(
    bufs: &mut Bufs,
    sink: &Sink,
    at: Timestamp,
    level: Level,
    target: &str,
    kind: &str,
    site: Option<(&'static Metadata<'static>, &'static Sink)>,
    message: impl FnOnce(&mut Vec<u8>, usize),
) {
    let out = &mut bufs.head;
    out.put(b"{\"timestamp\":\"");
    out.put(bufs.clock.format(at));
    out.put(match level {
        Level::TRACE => b"\",\"level\":\"TRACE\",\"message\":",
        Level::DEBUG => b"\",\"level\":\"DEBUG\",\"message\":",
        Level::INFO => b"\",\"level\":\"INFO\",\"message\":",
        Level::WARN => b"\",\"level\":\"WARN\",\"message\":",
        _ => b"\",\"level\":\"ERROR\",\"message\":",
    });
    message(out, sink.max_record / 2);
    match site {
        Some((meta, sink)) => {
            let piece = bufs
                .sites
                .piece(meta, sink, |piece| site_piece(piece, sink, target, kind));
            out.extend_from_slice(piece);
        }
        None => site_piece(out, sink, target, kind),
    }
    // The tail already begins with `,"thread":…` (see `Bufs::reset`).
}

/// `,"target":"…","kind":"…","pid":N,"run_id":"…"`: what follows the
/// message in the head.
fn site_piece(out: &mut Vec<u8>, sink: &Sink, target: &str, kind: &str) {
    out.put(b",\"target\":");
    json::string(out, target);
    out.put(b",\"kind\":\"");
    out.put(kind.as_bytes());
    out.put(sink.pid_run_id());
}

/// Entries of a [`SiteCache`].
const SITE_SLOTS: usize = 16;

/// A thread's [`site_piece`]s, direct-mapped by the address of the
/// callsite's metadata.
///
/// The piece depends only on the callsite's metadata (its target, and its
/// name, which gives the kind) and on the sink (pid and run id): both are
/// `'static` and immutable, so their addresses identify the piece for good.
/// A different callsite in the same slot replaces the entry.
struct SiteCache {
    entries: [(usize, usize, Vec<u8>); SITE_SLOTS],
}

impl SiteCache {
    fn new() -> SiteCache {
        SiteCache {
            entries: std::array::from_fn(|_| (0, 0, Vec::new())),
        }
    }

    /// The piece of `meta` and `sink`, written by `render` on a miss.
    #[inline]
    fn piece(
        &mut self,
        meta: &'static Metadata<'static>,
        sink: &'static Sink,
        render: impl FnOnce(&mut Vec<u8>),
    ) -> &[u8] {
        let (meta, sink) = (
            std::ptr::from_ref(meta) as usize,
            std::ptr::from_ref(sink) as usize,
        );
        // Fibonacci hashing, as for keys.
        let slot = meta.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize)
            >> (usize::BITS - SITE_SLOTS.trailing_zeros());
        let entry = &mut self.entries[slot];
        if entry.0 != meta || entry.1 != sink {
            entry.2.clear();
            render(&mut entry.2);
            entry.0 = meta;
            entry.1 = sink;
        }
        &entry.2
    }
}

/// Room a field needs past its key for the smallest value and the cut
/// marker of a longer one: a key is written only when this much room is
/// left under the limit plus [`KEY_SLACK`].
const FIELD_MIN: usize = 48;

/// How far past the values' limit keys may still go: a huge value is cut
/// at the limit, and the fields after it still get their keys and short
/// values (or a cut marker) in this room.
const KEY_SLACK: usize = 256;

/// The keys written so far into one JSON object (a record's top level or a
/// span's object), as ranges of the buffer they were written into, so that
/// no key is written twice.
///
/// Keys are compared as written (`,"name":`, escaped): JSON escaping is
/// one-to-one, so equal bytes are equal keys. A 64-bit filter on each key's
/// length and first and last name bytes spares the scan over the earlier
/// keys for nearly every field of an ordinary record.
#[derive(Default)]
pub(crate) struct Written {
    keys: Vec<(u32, u32)>,
    filter: u64,
    /// Ends of members written other than through a key, where a line too
    /// long may be cut (see [`finish`]).
    marks: Vec<usize>,
}

impl Written {
    /// Forgets every key (a new object begins).
    pub(crate) fn clear(&mut self) {
        self.keys.clear();
        self.filter = 0;
        self.marks.clear();
    }

    /// Notes that a whole member ends at `at`.
    #[inline]
    pub(crate) fn mark(&mut self, at: usize) {
        self.marks.push(at);
    }

    /// The key's bit in the filter.
    #[inline(always)]
    fn bit(key: &[u8]) -> u64 {
        // `,"` name `":`: the length and the name's first and last bytes
        // (or the quotes), mixed by a multiply whose top bits pick the bit.
        let n = key.len();
        let x = (n as u64) | u64::from(key[2]) << 16 | u64::from(key[n - 3]) << 32;
        1 << (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58)
    }

    /// Whether the key in `out[start..end]`, whose filter bit is `bit`,
    /// was already written.
    #[inline(always)]
    fn contains(&self, out: &[u8], start: usize, end: usize, bit: u64) -> bool {
        self.filter & bit != 0 && self.scan(out, start, end)
    }

    /// The slow half of [`Written::contains`].
    #[inline(never)]
    fn scan(&self, out: &[u8], start: usize, end: usize) -> bool {
        let key = &out[start..end];
        self.keys
            .iter()
            .any(|&(s, e)| &out[s as usize..e as usize] == key)
    }

    /// Remembers the key in `out[start..end]`, whose filter bit is `bit`.
    #[inline(always)]
    fn insert_bit(&mut self, start: usize, end: usize, bit: u64) {
        self.filter |= bit;
        // Records are far below 4 GiB (the cap is a `usize` of bytes, but a
        // line that long could not be written with one `write(2)` anyway).
        self.keys.push((start as u32, end as u32));
    }

    /// Remembers the key in `out[start..end]`.
    pub(crate) fn insert(&mut self, out: &[u8], start: usize, end: usize) {
        self.insert_bit(start, end, Written::bit(&out[start..end]));
    }

    /// The latest place at or before `room` where the object can be cut
    /// between two whole members.
    fn cut_at(&self, room: usize) -> Option<usize> {
        let starts = self.keys.iter().map(|&(start, _)| start as usize);
        starts
            .chain(self.marks.iter().copied())
            .filter(|&at| at <= room)
            .max()
    }
}

/// Which names an object keeps for itself.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reserved {
    /// A record's top level: the [`SCHEMA_KEYS`].
    Record,
    /// A span's object: `name`.
    Span,
}

impl Reserved {
    #[inline(always)]
    fn has(self, name: &str) -> bool {
        match self {
            Reserved::Record => is_schema_key(name),
            Reserved::Span => name == "name",
        }
    }
}

/// Writes fields into the tail of a record, cutting values so that the whole
/// record stays under the sink's cap.
///
/// # Keys
///
/// No object gets a key twice. A field is written under its own name unless
/// the object reserves that name (a record's [`SCHEMA_KEYS`], a span's
/// `name`) or an earlier member of the same object already has that key;
/// then it is written under the first free one of `field.<name>`,
/// `field.<name>.2`, `field.<name>.3`, … Earlier members keep their keys, so
/// the rule depends only on the names and their order.
///
/// # Size
///
/// Values are cut at `limit` with a `...[truncated N bytes]` marker; once
/// the object is full, further fields are left out and counted in
/// [`Fields::dropped`].
pub(crate) struct Fields<'a> {
    pub(crate) out: &'a mut Vec<u8>,
    /// The tail may grow to this length before values are cut; keys may
    /// go [`KEY_SLACK`] further.
    pub(crate) limit: usize,
    /// This thread's rendered keys; `None` for a span's fields, which are
    /// formatted once per span rather than once per record.
    pub(crate) keys: Option<&'a mut KeyCache>,
    /// The object's keys so far.
    pub(crate) written: &'a mut Written,
    /// The names this object keeps for itself.
    pub(crate) reserved: Reserved,
    /// Fields left out because the object was full.
    pub(crate) dropped: usize,
    /// Where the last field's value begins in `out`.
    pub(crate) value_start: usize,
}

impl<'a> Fields<'a> {
    /// Fields for the tail of `bufs`, whose head is already written.
    pub(crate) fn new(bufs: &'a mut Bufs, sink: &Sink) -> Fields<'a> {
        let limit = sink
            .max_record
            .saturating_sub(bufs.head.len() + RESERVE + KEY_SLACK)
            .max(RESERVE);
        bufs.written.clear();
        Fields {
            out: &mut bufs.tail,
            limit,
            keys: Some(&mut bufs.keys),
            written: &mut bufs.written,
            reserved: Reserved::Record,
            dropped: 0,
            value_start: 0,
        }
    }

    /// `,"name":`, under the name the key rule above gives, when the
    /// object has room for the field; else writes nothing, counts the field
    /// as dropped and returns `false`.
    ///
    /// Every record writes the same few names again and again: once
    /// written, a name's rendered key is taken from this thread's
    /// [`KeyCache`] with one fixed-size copy, skipping the schema-key check,
    /// the escape check and the variable-length copies.
    #[inline(always)]
    pub(crate) fn key(&mut self, name: &'static str) -> bool {
        let start = self.out.len();
        let mut bit = match &self.keys {
            Some(keys) => keys.put_cached(self.out, name),
            None => 0,
        };
        if bit == 0 {
            bit = self.key_uncached(name);
        }
        let end = self.out.len();
        if end + FIELD_MIN > self.limit + KEY_SLACK {
            return self.drop_key(start);
        }
        if self.written.contains(self.out, start, end, bit) {
            self.key_renamed(name, start);
        } else {
            self.written.insert_bit(start, end, bit);
        }
        self.value_start = self.out.len();
        true
    }

    /// [`Fields::key`] for a name that lives only as long as its record
    /// (a `log` record's keys): the same key rule, without the per-thread
    /// cache, which identifies names by their `'static` address.
    pub(crate) fn key_transient(&mut self, name: &str) -> bool {
        let start = self.out.len();
        if self.reserved.has(name) {
            self.out.put(b",\"field.");
            json::escape_into(self.out, name);
            self.out.put(b"\":");
        } else {
            json::key_vec(self.out, name);
        }
        let end = self.out.len();
        if end + FIELD_MIN > self.limit + KEY_SLACK {
            return self.drop_key(start);
        }
        let bit = Written::bit(&self.out[start..end]);
        if self.written.contains(self.out, start, end, bit) {
            self.key_renamed(name, start);
        } else {
            self.written.insert_bit(start, end, bit);
        }
        self.value_start = self.out.len();
        true
    }

    /// Leaves out a field whose key would not fit: takes back its key,
    /// counts it.
    #[cold]
    #[inline(never)]
    fn drop_key(&mut self, start: usize) -> bool {
        self.out.truncate(start);
        self.dropped += 1;
        false
    }

    /// [`Fields::key`] on a cache miss: renders the key, remembers it when
    /// it fits an entry, and returns its [`Written`] filter bit.
    #[inline(never)]
    fn key_uncached(&mut self, name: &'static str) -> u64 {
        let start = self.out.len();
        if self.reserved.has(name) {
            self.out.put(b",\"field.");
            json::escape_into(self.out, name);
            self.out.put(b"\":");
        } else {
            json::key_vec(self.out, name);
        }
        let bit = Written::bit(&self.out[start..]);
        if let Some(keys) = &mut self.keys {
            keys.insert(name, &self.out[start..], bit);
        }
        bit
    }

    /// Replaces the key at `start`, already in the object, with the first
    /// free one of `field.<name>`, `field.<name>.2`, …, and remembers it.
    #[cold]
    #[inline(never)]
    fn key_renamed(&mut self, name: &str, start: usize) {
        for n in 1usize.. {
            self.out.truncate(start);
            self.out.put(b",\"field.");
            json::escape_into(self.out, name);
            if n > 1 {
                self.out.put(b".");
                json::int(self.out, n);
            }
            self.out.put(b"\":");
            let end = self.out.len();
            let bit = Written::bit(&self.out[start..end]);
            if !self.written.contains(self.out, start, end, bit) {
                self.written.insert_bit(start, end, bit);
                return;
            }
        }
    }

    /// Ends the fields: when some were left out for want of room, says how
    /// many in a last `truncated_fields` member (whose key follows the key
    /// rule too), written past the limit into the room kept for it.
    #[inline]
    pub(crate) fn close(&mut self) {
        if self.dropped > 0 {
            self.close_dropped();
        }
    }

    #[cold]
    #[inline(never)]
    fn close_dropped(&mut self) {
        let (limit, dropped) = (self.limit, self.dropped);
        self.limit = usize::MAX / 2;
        if self.key("truncated_fields") {
            json::int(self.out, dropped);
        }
        self.limit = limit;
    }

    /// A string field.
    #[inline(always)]
    pub(crate) fn str(&mut self, name: &'static str, value: &str) {
        if !self.key(name) {
            return;
        }
        if value.len() * 6 + self.out.len() <= self.limit {
            json::string_vec(self.out, value);
        } else {
            json::display_string(self.out, &value, self.limit);
        }
    }

    /// A field shown with `Display`.
    pub(crate) fn display(&mut self, name: &'static str, value: &dyn fmt::Display) {
        if self.key(name) {
            json::display_string(self.out, value, self.limit);
        }
    }

    /// A field shown with `Debug`.
    pub(crate) fn debug(&mut self, name: &'static str, value: &dyn fmt::Debug) {
        if self.key(name) {
            json::debug_string(self.out, value, self.limit);
        }
    }

    /// An integer field.
    #[inline(always)]
    pub(crate) fn int<I: itoa::Integer>(&mut self, name: &'static str, value: I) {
        if self.key(name) {
            json::int(self.out, value);
        }
    }

    /// A boolean field.
    pub(crate) fn bool(&mut self, name: &'static str, value: bool) {
        if self.key(name) {
            json::boolean(self.out, value);
        }
    }

    /// A field whose value is JSON already, cut to fit (see
    /// [`Value::write_fitted`](crate::json_read::Value::write_fitted)).
    pub(crate) fn json(&mut self, name: &'static str, value: &crate::json_read::Value<'_>) {
        if self.key(name) {
            value.write_fitted(self.out, self.limit);
            self.written.mark(self.out.len());
        }
    }

    /// `breadcrumbs`: the ring's entries, oldest first, as
    /// `[{"name":…,"file":…,"line":…,"thread_id":…,"timestamp":…}]`; the
    /// oldest are left out when they do not all fit.
    pub(crate) fn crumbs(&mut self, name: &'static str, crumbs: &[Crumb]) {
        if !self.key(name) {
            return;
        }
        let start = self.out.len();
        let mut skip = 0;
        loop {
            write_crumbs(self.out, crumbs[skip..].iter());
            if self.out.len() <= self.limit || skip == crumbs.len() {
                self.written.mark(self.out.len());
                return;
            }
            self.out.truncate(start);
            skip += 1;
        }
    }
}

/// Longest rendered key kept in a [`KeyCache`] entry.
const KEY_MAX: usize = 32;

/// One name and its rendered key.
#[derive(Clone, Copy)]
struct KeyEntry {
    /// Address and length of the name; 0 for an empty entry (a `&str`'s
    /// address is never null).
    name: usize,
    len: usize,
    /// `,"name":` (or `,"field.name":`, escaped), `rendered` bytes of it.
    bytes: [u8; KEY_MAX],
    rendered: u32,
    /// The key's bit in [`Written`]'s filter.
    bit: u32,
}

/// A thread's rendered field keys, direct-mapped by the address of the
/// name.
///
/// Field names are `&'static str`: the bytes at an address never change, so
/// the same address and length always render to the same key, whatever the
/// renaming (`field.<name>`) and escaping that went into it. A different
/// name in the same slot simply replaces the entry.
pub(crate) struct KeyCache {
    entries: [KeyEntry; KEY_SLOTS],
}

/// Entries per thread (`KEY_SLOTS * 48` bytes).
const KEY_SLOTS: usize = 64;

impl KeyCache {
    fn new() -> KeyCache {
        KeyCache {
            entries: [KeyEntry {
                name: 0,
                len: 0,
                bytes: [0; KEY_MAX],
                rendered: 0,
                bit: 0,
            }; KEY_SLOTS],
        }
    }

    #[inline(always)]
    fn slot(name: &str) -> usize {
        // Fibonacci hashing: the top bits of the product mix all the
        // address's bits (names of one callsite often sit side by side).
        (name.as_ptr() as usize).wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize)
            >> (usize::BITS - KEY_SLOTS.trailing_zeros())
    }

    /// Appends `name`'s rendered key if it is cached and `out` has room for
    /// a whole entry, and returns the key's [`Written`] filter bit; else
    /// returns 0 and writes nothing.
    #[inline(always)]
    fn put_cached(&self, out: &mut Vec<u8>, name: &'static str) -> u64 {
        let entry = &self.entries[KeyCache::slot(name)];
        let len = out.len();
        if entry.name != name.as_ptr() as usize
            || entry.len != name.len()
            || out.capacity() - len < KEY_MAX
        {
            return 0;
        }
        // SAFETY: `KEY_MAX` bytes of spare capacity were checked above;
        // all of them are written (the entry's bytes past `rendered` are
        // stale but initialized) and only the first `rendered <= KEY_MAX`
        // are kept. The entry is not part of `out`.
        unsafe {
            out.as_mut_ptr()
                .add(len)
                .cast::<[u8; KEY_MAX]>()
                .write_unaligned(entry.bytes);
            out.set_len(len + entry.rendered as usize);
        }
        1 << entry.bit
    }

    /// Remembers `rendered` as `name`'s key, if it fits an entry.
    fn insert(&mut self, name: &'static str, rendered: &[u8], bit: u64) {
        if rendered.len() > KEY_MAX {
            return;
        }
        let entry = &mut self.entries[KeyCache::slot(name)];
        entry.name = name.as_ptr() as usize;
        entry.len = name.len();
        entry.bytes[..rendered.len()].copy_from_slice(rendered);
        entry.rendered = rendered.len() as u32;
        entry.bit = bit.trailing_zeros();
    }
}

/// Writes breadcrumbs as a JSON array. Async-signal-safe with a stack buffer.
pub(crate) fn write_crumbs<'c, O: Out + ?Sized>(
    out: &mut O,
    crumbs: impl Iterator<Item = &'c Crumb>,
) {
    out.put(b"[");
    for (i, crumb) in crumbs.enumerate() {
        out.put(if i == 0 {
            b"{\"name\":"
        } else {
            b",{\"name\":"
        });
        json::string(out, crumb.site.name);
        out.put(b",\"file\":");
        json::string(out, crumb.site.file);
        out.put(b",\"line\":");
        json::int(out, crumb.site.line);
        out.put(b",\"thread_id\":");
        json::int(out, crumb.tid);
        out.put(b",\"timestamp\":\"");
        out.put(&crumb.at.format());
        out.put(b"\"}");
    }
    out.put(b"]");
}

/// Closes the record in `bufs` with `}\n`. If the line would still pass
/// the sink's cap (members written past the fields' limit, such as spans),
/// first cuts the tail back to the last whole member that fits; `fields_end`
/// is where the fields end, if known, one more place to cut.
#[inline]
pub(crate) fn finish(bufs: &mut Bufs, sink: &Sink, fields_end: Option<usize>) {
    let room = sink
        .max_record
        .saturating_sub(bufs.head.len() + SEQ_MAX + 2);
    if bufs.tail.len() > room {
        if let Some(end) = fields_end {
            bufs.written.mark(end);
        }
        cut_to(bufs, room);
    }
    bufs.tail.put(b"}\n");
}

/// Cuts the tail of `bufs` back to `room` bytes or less, between members.
#[cold]
#[inline(never)]
fn cut_to(bufs: &mut Bufs, room: usize) {
    let cut = bufs.written.cut_at(room).unwrap_or(bufs.thread.len());
    bufs.tail.truncate(cut.max(bufs.thread.len()));
}

/// How many bytes of the tail `bufs` may still take for members written
/// after the fields (the `span` members), leaving room for `seq` and the
/// closing bytes.
#[inline]
pub(crate) fn tail_room(bufs: &Bufs, sink: &Sink) -> usize {
    sink.max_record
        .saturating_sub(bufs.head.len() + SEQ_MAX + 2 + bufs.tail.len())
}

/// Writes a record that does not come from a `tracing` event (the hooks'
/// records) straight to `sink` and to the flight recorder, if one runs, and
/// mirrors `human` to stderr. Returns its `seq`.
pub(crate) fn emit(
    sink: &Sink,
    level: Level,
    kind: &str,
    message: &dyn fmt::Display,
    fields: impl FnOnce(&mut Fields<'_>),
) -> u64 {
    with_bufs(|bufs| {
        head(
            bufs,
            sink,
            Timestamp::now(),
            level,
            "lastwords",
            kind,
            None,
            |out, limit| json::display_string(out, message, out.len() + limit),
        );
        let mut f = Fields::new(bufs, sink);
        fields(&mut f);
        f.close();
        finish(bufs, sink, None);
        let seq = sink.commit_vec(&mut bufs.head, &bufs.tail);
        // The ring gets it too, whatever the recorder filter says, so that
        // the ring alone tells how the run ended. `commit_vec` left the
        // whole line, `seq` included, in the head: a line with its `seq` is
        // in the file already and is never recovered into it again.
        if let Some(recorder) = crate::recorder::Recorder::global() {
            recorder.record(&[&bufs.head]);
        }
        if sink.mirror.enabled() {
            sink.mirror
                .line(format!("[lastwords] {} {kind}: {message}\n", level_name(level)).as_bytes());
        }
        seq
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each name's key as written without a cache.
    fn uncached(name: &'static str) -> Vec<u8> {
        let mut out = Vec::new();
        Fields {
            out: &mut out,
            limit: usize::MAX / 2,
            keys: None,
            written: &mut Written::default(),
            reserved: Reserved::Record,
            dropped: 0,
            value_start: 0,
        }
        .key(name);
        out
    }

    #[test]
    fn cached_keys_are_the_uncached_keys() {
        // Renamed, escaped, too long to cache, empty, and two names at one
        // address with different lengths.
        const BOTH: &str = "thread_idx";
        let names: Vec<&'static str> = vec![
            "n",
            "seq",
            "field.seq",
            "thread_id",
            &BOTH[..6],
            &BOTH[..9],
            BOTH,
            "",
            "quote\"back\\slash\n",
            "a_field_name_longer_than_an_entry_holds",
            "timestamp",
        ];
        // More names than slots, so that entries are replaced too.
        let many: Vec<&'static str> = (0..3 * KEY_SLOTS)
            .map(|i| &*Box::leak(format!("k{i}").into_boxed_str()))
            .collect();
        let mut keys = Box::new(KeyCache::new());
        for round in 0..3 {
            for &name in names.iter().chain(&many) {
                // Little spare capacity in some rounds: the cached copy
                // needs a whole entry's room.
                let mut out = Vec::with_capacity(if round == 1 { 1 } else { 64 });
                Fields {
                    out: &mut out,
                    limit: usize::MAX / 2,
                    keys: Some(&mut keys),
                    written: &mut Written::default(),
                    reserved: Reserved::Record,
                    dropped: 0,
                    value_start: 0,
                }
                .key(name);
                assert_eq!(out, uncached(name), "{name:?}, round {round}");
            }
        }
        assert_eq!(uncached("seq"), b",\"field.seq\":");
        assert_eq!(uncached("quote\"b"), b",\"quote\\\"b\":");
    }

    #[test]
    fn is_schema_key_knows_exactly_the_schema_keys() {
        for key in SCHEMA_KEYS {
            assert!(is_schema_key(key), "{key}");
            for near in [&key[1..], &key[..key.len() - 1]] {
                assert_eq!(is_schema_key(near), SCHEMA_KEYS.contains(&near), "{near}");
            }
            assert!(!is_schema_key(&key.to_uppercase()), "{key}");
            assert!(!is_schema_key(&format!("{key}x")), "{key}");
        }
        for other in [
            "",
            "n",
            "fn",
            "pids",
            "field.pid",
            "message2",
            "spanx",
            "timestamps",
        ] {
            assert!(!is_schema_key(other), "{other}");
        }
    }
}
