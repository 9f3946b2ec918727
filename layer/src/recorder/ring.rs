//! The ring: a lock-free, multi-writer log of byte records in one memory
//! region, readable by another process after the writer died at any
//! instruction.
//!
//! # Layout
//!
//! The region is `capacity` bytes (a power of two) of 16-byte units. A
//! record is a 16-byte header and its payload, padded to the next unit:
//!
//! ```text
//! | stamp: u64 | len: u32 | sum: u32 | payload … (wraps at the end) | pad |
//! ```
//!
//! `pos`, the record's absolute byte position in the stream of all records
//! since the ring was started, comes from one `fetch_add` on the shared
//! `head` counter: writers reserve disjoint ranges without a lock and
//! without a system call. The header sits at `pos % capacity` and never
//! straddles the end; the payload may wrap to the start.
//!
//! # Why a reader never sees a torn record
//!
//! The writer copies the payload, stores `len` and `sum` (a checksum of the
//! payload seeded with `pos`), then stores `stamp` last with `Release`.
//! `stamp` is `pos / 16 + 1` mixed with the run's `salt`, so it names one
//! position of one run: a reader that finds at physical offset `o` a stamp
//! other than the one expected for the absolute position it is looking at
//! is looking at an older lap, another run, or a record whose writer has not
//! finished (or died before finishing). The checksum covers the remaining
//! case: a writer so slow that the ring lapped it while it copied, whose
//! bytes land inside a newer, complete record. A record is reported only
//! when its stamp and its checksum both match.
//!
//! The reader walks forward from `head - capacity` (everything older is
//! overwritten) to `head`, checking the stamp at each unit and jumping over
//! each valid record; the records come out oldest first, in the order the
//! writers reserved them.
//!
//! Pushing allocates nothing and makes no system call. Reading is plain
//! memory access into a caller's buffer: async-signal-safe.

use std::sync::atomic::{AtomicU64, Ordering};

/// Alignment and size of a record header; positions are multiples of it.
pub(crate) const UNIT: u64 = 16;

/// Keeps stamps away from small integers that zeroed or text memory holds.
const STAMP_MARK: u64 = 0xA5 << 56;

/// A ring over `capacity` bytes at `data`, with its head counter at `head`.
///
/// Both usually live in a `MAP_SHARED` file mapping; tests use heap memory.
pub(crate) struct Ring {
    data: *mut u8,
    capacity: u64,
    head: *const AtomicU64,
    salt: u64,
}

// SAFETY: the ring only hands out copies; concurrent pushes write disjoint
// reserved ranges (a lapped writer's overlap is detected by the checksum),
// and the head is atomic.
unsafe impl Send for Ring {}
// SAFETY: as above.
unsafe impl Sync for Ring {}

impl Ring {
    /// # Safety
    ///
    /// `data` must be valid for reads and writes of `capacity` bytes, aligned
    /// to 16, and `head` valid, for as long as the ring is used; `capacity`
    /// must be a power of two of at least 4 KiB.
    pub(crate) unsafe fn new(
        data: *mut u8,
        capacity: u64,
        head: *const AtomicU64,
        salt: u64,
    ) -> Ring {
        debug_assert!(capacity.is_power_of_two() && capacity >= 4096);
        debug_assert_eq!(data as usize % UNIT as usize, 0);
        Ring {
            data,
            capacity,
            head,
            salt,
        }
    }

    /// Size of the data region in bytes.
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Largest payload a push accepts: an eighth of the ring, so that one
    /// huge record cannot wipe out the records before it.
    pub(crate) fn max_payload(&self) -> usize {
        (self.capacity / 8 - UNIT) as usize
    }

    fn head(&self) -> &AtomicU64 {
        // SAFETY: valid for the ring's life (see `new`).
        unsafe { &*self.head }
    }

    /// The stamp a complete record at absolute position `pos` carries.
    #[inline]
    fn stamp(&self, pos: u64) -> u64 {
        ((pos / UNIT + 1) | STAMP_MARK) ^ self.salt
    }

    /// The header word at physical offset `offset` (16-aligned).
    #[inline]
    fn word(&self, offset: u64) -> &AtomicU64 {
        // SAFETY: `offset + 8 <= capacity` and 8-aligned: headers sit at
        // multiples of 16 below `capacity`.
        unsafe { &*(self.data.add(offset as usize) as *const AtomicU64) }
    }

    /// Appends one record made of `parts` (concatenated). Returns `false`,
    /// storing nothing, when it is longer than [`Ring::max_payload`].
    /// Lock-free, no allocation, no system call; async-signal-safe.
    #[inline]
    pub(crate) fn push(&self, parts: &[&[u8]]) -> bool {
        let mut len = 0;
        for part in parts {
            len += part.len();
        }
        if len > self.max_payload() {
            return false;
        }
        let total = UNIT + (len as u64).next_multiple_of(UNIT);
        let pos = self.head().fetch_add(total, Ordering::Relaxed);
        let mask = self.capacity - 1;
        let at = pos & mask;
        let mut sum = Sum::new(pos);
        let mut offset = (at + UNIT) & mask;
        for part in parts {
            sum.write(part);
            self.copy_in(offset, part);
            offset = (offset + part.len() as u64) & mask;
        }
        self.word(at + 8).store(
            len as u64 | u64::from(sum.finish()) << 32,
            Ordering::Relaxed,
        );
        self.word(at).store(self.stamp(pos), Ordering::Release);
        true
    }

    /// Copies `bytes` into the region at `offset`, wrapping at the end.
    #[inline]
    fn copy_in(&self, offset: u64, bytes: &[u8]) {
        let room = (self.capacity - offset) as usize;
        let first = bytes.len().min(room);
        // SAFETY: both ranges lie inside the region (`first <= room`, the
        // rest is shorter than the region) and do not overlap `bytes`.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.data.add(offset as usize), first);
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr().add(first),
                self.data,
                bytes.len() - first,
            );
        }
    }

    /// Copies `out.len()` bytes from the region at `offset`, wrapping.
    fn copy_out(&self, offset: u64, out: &mut [u8]) {
        let room = (self.capacity - offset) as usize;
        let first = out.len().min(room);
        let n = out.len();
        // SAFETY: as in `copy_in`; `out` is the caller's own buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(self.data.add(offset as usize), out.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(self.data, out.as_mut_ptr().add(first), n - first);
        }
    }

    /// Calls `f(pos, payload)` for each complete record still in the ring,
    /// oldest first. Records longer than `buf` (the copy's room) are
    /// skipped. `f` returns `false` to stop. Returns how many records were
    /// reported. Async-signal-safe.
    pub(crate) fn scan(&self, buf: &mut [u8], mut f: impl FnMut(u64, &[u8]) -> bool) -> usize {
        let head = self.head().load(Ordering::Acquire);
        let mask = self.capacity - 1;
        let mut pos = head.saturating_sub(self.capacity).next_multiple_of(UNIT);
        let mut found = 0;
        // `pos <= head` throughout, and every step is checked against the
        // room left, so that a `head` from a damaged file cannot overflow.
        while head - pos >= UNIT {
            let at = pos & mask;
            if self.word(at).load(Ordering::Acquire) != self.stamp(pos) {
                pos += UNIT;
                continue;
            }
            let meta = self.word(at + 8).load(Ordering::Relaxed);
            let len = (meta & 0xffff_ffff) as usize;
            let total = UNIT + (len as u64).next_multiple_of(UNIT);
            if len > buf.len() || len > self.max_payload() || total > head - pos {
                pos += UNIT;
                continue;
            }
            let payload = &mut buf[..len];
            self.copy_out((at + UNIT) & mask, payload);
            let mut sum = Sum::new(pos);
            sum.write(payload);
            if sum.finish() != (meta >> 32) as u32 {
                pos += UNIT; // torn by a lapped writer
                continue;
            }
            found += 1;
            if !f(pos, payload) {
                break;
            }
            pos += total;
        }
        found
    }
}

/// The checksum of a payload: a word-at-a-time multiply-rotate hash,
/// streamed over the parts of a record so that it matches the hash of the
/// concatenated bytes the reader sees. Not cryptographic: it only has to
/// notice bytes from another record.
struct Sum {
    h: u64,
    pending: u64,
    filled: u32,
}

const K: u64 = 0x9E37_79B9_7F4A_7C15;

impl Sum {
    #[inline]
    fn new(pos: u64) -> Sum {
        Sum {
            h: pos.wrapping_mul(K) ^ 0x6c61_7374_776f_7264,
            pending: 0,
            filled: 0,
        }
    }

    #[inline]
    fn mix(&mut self, w: u64) {
        self.h = (self.h.rotate_left(23) ^ w).wrapping_mul(K);
    }

    #[inline]
    fn write(&mut self, mut bytes: &[u8]) {
        while self.filled != 0 && !bytes.is_empty() {
            self.push_byte(bytes[0]);
            bytes = &bytes[1..];
        }
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.mix(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        for &b in words.remainder() {
            self.push_byte(b);
        }
    }

    #[inline]
    fn push_byte(&mut self, b: u8) {
        self.pending |= u64::from(b) << (8 * self.filled);
        self.filled += 1;
        if self.filled == 8 {
            let w = self.pending;
            self.pending = 0;
            self.filled = 0;
            self.mix(w);
        }
    }

    #[inline]
    fn finish(mut self) -> u32 {
        let tail = self.pending ^ u64::from(self.filled) << 59;
        self.mix(tail);
        let h = self.h ^ (self.h >> 29);
        (h ^ (h >> 32)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// A ring over heap memory.
    struct Heap {
        _mem: Vec<u128>,
        head: Box<AtomicU64>,
        ring: Ring,
    }

    fn heap(capacity: u64) -> Heap {
        let mut mem = vec![0u128; capacity as usize / 16];
        let head = Box::new(AtomicU64::new(0));
        // SAFETY: `mem` is 16-aligned, `capacity` bytes, and lives in Heap
        // with the ring (moving the Vec does not move its buffer).
        let ring = unsafe { Ring::new(mem.as_mut_ptr().cast(), capacity, &*head, 0x1234_5678) };
        Heap {
            _mem: mem,
            head,
            ring,
        }
    }

    fn all(ring: &Ring) -> Vec<Vec<u8>> {
        let mut buf = vec![0; 1 << 16];
        let mut out = Vec::new();
        ring.scan(&mut buf, |_, p| {
            out.push(p.to_vec());
            true
        });
        out
    }

    #[test]
    fn checksum_is_the_same_for_any_split() {
        let bytes: Vec<u8> = (0..100u8).collect();
        let mut whole = Sum::new(7);
        whole.write(&bytes);
        let whole = whole.finish();
        for split in 0..bytes.len() {
            for split2 in split..bytes.len() {
                let mut s = Sum::new(7);
                s.write(&bytes[..split]);
                s.write(&bytes[split..split2]);
                s.write(&bytes[split2..]);
                assert_eq!(s.finish(), whole, "{split} {split2}");
            }
        }
        let mut other = Sum::new(8);
        other.write(&bytes);
        assert_ne!(other.finish(), whole);
    }

    #[test]
    fn records_come_back_in_order_with_parts_joined() {
        let h = heap(4096);
        assert!(h.ring.push(&[b"hello", b" ", b"world"]));
        assert!(h.ring.push(&[b""]));
        assert!(h.ring.push(&[b"x"]));
        assert_eq!(
            all(&h.ring),
            [b"hello world".to_vec(), b"".to_vec(), b"x".to_vec()]
        );
    }

    #[test]
    fn wraparound_keeps_the_newest_records_whole() {
        let h = heap(4096);
        let mut pushed = Vec::new();
        for i in 0..1000 {
            // Lengths that do not divide the ring, so records straddle the end.
            let rec = format!("record {i} {}", "y".repeat(i % 37));
            assert!(h.ring.push(&[rec.as_bytes()]));
            pushed.push(rec.into_bytes());
        }
        let got = all(&h.ring);
        assert!(got.len() > 30, "{}", got.len());
        // Exactly the newest suffix of what was pushed, nothing torn.
        assert_eq!(got, pushed[pushed.len() - got.len()..]);
        // Nothing older than a ring's worth of bytes survives in the count.
        let bytes: usize = got.iter().map(|r| 16 + r.len().next_multiple_of(16)).sum();
        assert!(bytes <= 4096);
        assert!(bytes > 4096 - 2 * (16 + 80), "{bytes}");
    }

    #[test]
    fn a_damaged_head_reads_as_nothing_and_never_panics() {
        let h = heap(4096);
        h.ring.push(&[b"a record"]);
        for head in [u64::MAX, u64::MAX - 8, 1 << 63, 5] {
            h.head.store(head, Ordering::Relaxed);
            let _ = all(&h.ring);
        }
    }

    #[test]
    fn too_large_records_are_refused_not_cut() {
        let h = heap(4096);
        let big = vec![b'a'; h.ring.max_payload() + 1];
        assert!(!h.ring.push(&[&big]));
        assert!(h.ring.push(&[&big[..h.ring.max_payload()]]));
        assert_eq!(all(&h.ring).len(), 1);
    }

    /// A writer that reserved its range and died before storing its stamp
    /// leaves a hole that the reader steps over.
    #[test]
    fn an_unfinished_record_is_skipped() {
        let h = heap(4096);
        h.ring.push(&[b"before"]);
        // Simulate a writer killed mid-copy: reserve, write part of the
        // payload and the length, never the stamp.
        let pos = h.head.fetch_add(UNIT + 32, Ordering::Relaxed);
        h.ring.copy_in(pos + UNIT, b"half a rec");
        h.ring.word(pos + 8).store(32, Ordering::Relaxed);
        h.ring.push(&[b"after"]);
        assert_eq!(all(&h.ring), [b"before".to_vec(), b"after".to_vec()]);
    }

    /// A stamped record whose payload was overwritten afterwards (a lapped
    /// writer) fails its checksum and is skipped.
    #[test]
    fn a_record_scribbled_over_is_skipped() {
        let h = heap(4096);
        h.ring.push(&[b"first record"]);
        h.ring.push(&[b"second record"]);
        h.ring.copy_in(UNIT + 2, b"XX");
        assert_eq!(all(&h.ring), [b"second record".to_vec()]);
    }

    /// Records of an earlier run in the same memory never pass as this
    /// run's: the salt is part of the stamp.
    #[test]
    fn another_runs_records_are_not_read() {
        let h = heap(4096);
        h.ring.push(&[b"old run"]);
        // SAFETY: same memory and head as `h.ring`.
        let other = unsafe { Ring::new(h.ring.data, 4096, &*h.head, 99) };
        assert!(all(&other).is_empty());
    }

    #[test]
    fn eight_writers_then_every_surviving_record_is_whole_and_unique() {
        const THREADS: usize = 8;
        const EACH: usize = 20_000;
        let h = heap(1 << 16);
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let ring = &h.ring;
                s.spawn(move || {
                    for i in 0..EACH {
                        let pad = "z".repeat((t * 7 + i) % 50);
                        let rec = format!("{{\"t\":{t},\"i\":{i},\"pad\":\"{pad}\"}}");
                        ring.push(&[rec.as_bytes()]);
                    }
                });
            }
        });
        let got = all(&h.ring);
        assert!(got.len() > 300, "{}", got.len());
        let mut seen = HashSet::new();
        let mut last_i = [None::<usize>; THREADS];
        for rec in &got {
            let text = std::str::from_utf8(rec).unwrap();
            let t: usize = field(text, "\"t\":").parse().unwrap();
            let i: usize = field(text, "\"i\":").parse().unwrap();
            let pad = "z".repeat((t * 7 + i) % 50);
            assert_eq!(text, format!("{{\"t\":{t},\"i\":{i},\"pad\":\"{pad}\"}}"));
            assert!(seen.insert((t, i)), "duplicate {text}");
            // Each writer's records come back in the order it wrote them.
            assert!(last_i[t] < Some(i), "{text} after {:?}", last_i[t]);
            last_i[t] = Some(i);
        }
    }

    fn field<'a>(text: &'a str, key: &str) -> &'a str {
        let rest = &text[text.find(key).unwrap() + key.len()..];
        &rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap()]
    }
}
