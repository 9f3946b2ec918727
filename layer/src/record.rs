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

/// Room kept for the closing keys when a value is cut to fit the record cap.
const RESERVE: usize = 256;

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
    /// The fork generation these were made in: a child of `fork()` has a
    /// new pid, run id and thread id, so it starts afresh.
    generation: u64,
}

impl Bufs {
    fn new() -> Bufs {
        let mut thread = Vec::with_capacity(64);
        let current = std::thread::current();
        json::key(&mut thread, "thread");
        json::string(&mut thread, current.name().unwrap_or("<unnamed>"));
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

/// The names of the fixed keys; a user field with one of these names is
/// written as `field.<name>` so that no line has a key twice.
pub(crate) const SCHEMA_KEYS: &[&str] = &[
    "timestamp",
    "level",
    "message",
    "target",
    "kind",
    "pid",
    "run_id",
    "seq",
    "thread",
    "thread_id",
    "span",
    "spans",
];

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
        7 => name == "message",
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

/// Writes fields into the tail of a record, cutting values so that the whole
/// record stays under the sink's cap.
pub(crate) struct Fields<'a> {
    pub(crate) out: &'a mut Vec<u8>,
    /// The tail may grow to this length before values are cut.
    pub(crate) limit: usize,
    /// This thread's rendered keys; `None` for a span's fields, which are
    /// formatted once per span rather than once per record.
    pub(crate) keys: Option<&'a mut KeyCache>,
}

impl<'a> Fields<'a> {
    /// Fields for the tail of `bufs`, whose head is already written.
    pub(crate) fn new(bufs: &'a mut Bufs, sink: &Sink) -> Fields<'a> {
        let limit = sink
            .max_record
            .saturating_sub(bufs.head.len() + RESERVE)
            .max(RESERVE);
        Fields {
            out: &mut bufs.tail,
            limit,
            keys: Some(&mut bufs.keys),
        }
    }

    /// `,"name":` with `name` renamed if it is one of the schema's keys.
    ///
    /// Every record writes the same few names again and again: once
    /// written, a name's rendered key is taken from this thread's
    /// [`KeyCache`] with one fixed-size copy, skipping the schema-key check,
    /// the escape check and the variable-length copies.
    #[inline(always)]
    pub(crate) fn key(&mut self, name: &'static str) {
        if let Some(keys) = &self.keys {
            if keys.put_cached(self.out, name) {
                return;
            }
        }
        self.key_uncached(name);
    }

    /// [`Fields::key`] on a cache miss: renders the key, and remembers it
    /// when it fits an entry.
    #[inline(never)]
    fn key_uncached(&mut self, name: &'static str) {
        let start = self.out.len();
        if is_schema_key(name) {
            self.out.put(b",\"field.");
            json::escape_into(self.out, name);
            self.out.put(b"\":");
        } else {
            json::key_vec(self.out, name);
        }
        if let Some(keys) = &mut self.keys {
            keys.insert(name, &self.out[start..]);
        }
    }

    /// A string field.
    #[inline(always)]
    pub(crate) fn str(&mut self, name: &'static str, value: &str) {
        self.key(name);
        if value.len() * 6 + self.out.len() <= self.limit {
            json::string_vec(self.out, value);
        } else {
            json::display_string(self.out, &value, self.limit);
        }
    }

    /// A field shown with `Display`.
    pub(crate) fn display(&mut self, name: &'static str, value: &dyn fmt::Display) {
        self.key(name);
        json::display_string(self.out, value, self.limit);
    }

    /// A field shown with `Debug`.
    pub(crate) fn debug(&mut self, name: &'static str, value: &dyn fmt::Debug) {
        self.key(name);
        json::debug_string(self.out, value, self.limit);
    }

    /// An integer field.
    #[inline(always)]
    pub(crate) fn int<I: itoa::Integer>(&mut self, name: &'static str, value: I) {
        self.key(name);
        json::int(self.out, value);
    }

    /// A boolean field.
    pub(crate) fn bool(&mut self, name: &'static str, value: bool) {
        self.key(name);
        json::boolean(self.out, value);
    }

    /// `breadcrumbs`: the ring's entries, oldest first, as
    /// `[{"name":…,"file":…,"line":…,"thread_id":…,"timestamp":…}]`.
    pub(crate) fn crumbs(&mut self, name: &'static str, crumbs: &[Crumb]) {
        self.key(name);
        write_crumbs(self.out, crumbs.iter());
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
    rendered: usize,
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
    /// a whole entry; else returns `false` and writes nothing.
    #[inline(always)]
    fn put_cached(&self, out: &mut Vec<u8>, name: &'static str) -> bool {
        let entry = &self.entries[KeyCache::slot(name)];
        let len = out.len();
        if entry.name != name.as_ptr() as usize
            || entry.len != name.len()
            || out.capacity() - len < KEY_MAX
        {
            return false;
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
            out.set_len(len + entry.rendered);
        }
        true
    }

    /// Remembers `rendered` as `name`'s key, if it fits an entry.
    fn insert(&mut self, name: &'static str, rendered: &[u8]) {
        if rendered.len() > KEY_MAX {
            return;
        }
        let entry = &mut self.entries[KeyCache::slot(name)];
        entry.name = name.as_ptr() as usize;
        entry.len = name.len();
        entry.bytes[..rendered.len()].copy_from_slice(rendered);
        entry.rendered = rendered.len();
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

/// Writes a record that does not come from a `tracing` event (the hooks'
/// records) straight to `sink`, and mirrors `human` to stderr. Returns its
/// `seq`.
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
        bufs.tail.put(b"}\n");
        let seq = sink.commit_vec(&mut bufs.head, &bufs.tail);
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
            limit: usize::MAX,
            keys: None,
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
                    limit: usize::MAX,
                    keys: Some(&mut keys),
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
