//! Exit counts and calls in flight: per `#[exit_path]` function, how often
//! each way out was taken and how many calls are inside now, kept in the
//! ring file so that they survive any death.
//!
//! # Where
//!
//! A region of [`REGION_BYTES`] right after the ring's data in the ring
//! file (`HEADER_BYTES + capacity`), mapped `MAP_SHARED` with the rest:
//!
//! ```text
//! RegionHeader (a page)   magic, fns used, sites lost
//! fns[MAX_FNS]             256 bytes each: the fn's name by value (written
//!                          once, when the function is first entered) and
//!                          when each epoch bucket's oldest call began
//! flight[SHARDS][MAX_FNS]  64 bytes each: calls entered and left per bucket
//! keys[MAX_SITES]          (fn slot, site, line), claimed with CAS
//! exits[SHARDS][MAX_SITES] 8 bytes each: exits through the site
//! ```
//!
//! About 1.1 MiB. Counters are sharded per thread: each of the first 31
//! threads alive at once owns a shard, which only it writes, with a plain
//! load and store (a locked add costs 6–8 ns here); other threads share the
//! last shard and use atomic adds. Readers sum the shards. A call may enter
//! on one thread and leave on another: entered and left are both counters
//! that only grow, and in flight is their difference.
//!
//! Names are held by value (at most [`NAME_BYTES`]), so that the next start
//! and a signal handler can read them without the dead process's memory.
//!
//! # Cost per call (recorder on)
//!
//! Entering: loads of the region pointer, the function's slot (kept in its
//! `ExitSite` static), the epoch bucket and the thread's shard (a
//! thread-local), and one increment. Leaving: one increment of `left` and
//! one of the site's counter, found by hashing (fn, site, line) (almost
//! always at the first probe). No system call, no allocation, no lock; the first call of a
//! function registers it (its name is computed once, with an allocation).
//!
//! # What is exact and what is approximate
//!
//! - Exit counts are exact, for at most [`MAX_SITES`] sites
//!   and [`MAX_FNS`] functions per run; exits past those caps are counted
//!   in `sites_lost`, not per site. A sync fn called while its thread is
//!   already unwinding, whose record is not enabled, counts an unseen exit
//!   as `unwind`. An annotated fn called from a signal handler that
//!   interrupted the same thread's increment may lose one count.
//! - In-flight counts are exact: a call enters when its guard is made (an
//!   async fn's first poll; a future never polled never enters) and leaves
//!   at its first exit the expansion sees, or when the guard drops (a
//!   cancelled future leaves).
//! - The oldest call's start is approximate. The heartbeat advances an
//!   epoch every 500 ms; a call counts itself in the bucket of the epoch it
//!   entered (8 buckets, reused cyclically). When the heartbeat reuses an
//!   empty bucket it notes the time in `born`; a bucket still holding calls
//!   keeps its older `born`. The oldest age, `now - min(born)` over
//!   non-empty buckets, is never less than the true age and usually at
//!   most 500 ms more; after the oldest call of a bucket left while newer
//!   calls share that bucket, it may read up to 4 s high until the bucket
//!   empties at its next reuse. After SIGKILL ages are as of `last_alive`.

use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};

use crate::json::{self, Out};
use crate::private::site::Site;

/// Functions counted per run.
pub const MAX_FNS: usize = 256;
/// Distinct (fn, site, line) counters per run.
pub const MAX_SITES: usize = 2048;
/// Longest function name kept, in bytes (longer ones are cut at a char
/// boundary).
pub const NAME_BYTES: usize = 112;
/// Most `exit_counts` entries in a record: the sites with the highest
/// counts.
pub const MAX_EXIT_COUNTS: usize = 32;
/// Most `in_flight` entries in a record: the functions with the oldest
/// calls in flight.
pub const MAX_IN_FLIGHT: usize = 16;

/// Counter shards: one per thread that owns one (the first `SHARDS - 1`
/// threads alive at once), which it updates with a plain load and store,
/// and the last one shared by every other thread, updated with atomic
/// read-modify-writes. A locked add costs 6–8 ns here, a plain increment
/// well under one: per-thread shards keep a counted call within budget.
const SHARDS: usize = 32;
const SHARED: usize = SHARDS - 1;
const BUCKETS: usize = 8;
const FN_BYTES: usize = 256;
const FLIGHT_BYTES: usize = 64;
const MAGIC: u64 = u64::from_ne_bytes(*b"LWCOUNT2");

/// Size of the region after the ring.
pub(crate) const REGION_BYTES: u64 = (4096
    + FN_BYTES * MAX_FNS
    + FLIGHT_BYTES * MAX_FNS * SHARDS
    + 8 * MAX_SITES
    + 8 * MAX_SITES * SHARDS) as u64;

/// `ExitSite::slot` values that are not a slot: being registered, none to
/// be had.
const BUSY: u32 = u32::MAX - 1;
const NONE: u32 = u32::MAX;

#[repr(C)]
struct RegionHeader {
    magic: AtomicU64,
    fns_used: AtomicU64,
    sites_lost: AtomicU64,
}

#[repr(C)]
struct FnSlot {
    /// 1 once `name` is written.
    ready: AtomicU64,
    name_len: AtomicU64,
    name: UnsafeCell<[u8; NAME_BYTES]>,
    /// Unix µs: no call in the bucket began before this.
    born: [AtomicU64; BUCKETS],
    _pad: [u8; 64],
}

/// One shard's calls of one fn, per epoch bucket: entered and left, both
/// only ever increased (wrapping), so that a call may enter on one thread
/// and leave on another (an async fn's future moved between workers).
#[repr(C)]
struct Flight {
    entered: [AtomicU32; BUCKETS],
    left: [AtomicU32; BUCKETS],
}

/// The region, as mapped.
#[repr(C)]
pub(crate) struct Counts {
    header: RegionHeader,
    _pad: [u8; 4096 - 24],
    fns: [FnSlot; MAX_FNS],
    /// `[shard][fn]`: a thread's counters never share a cache line with
    /// another's.
    flight: [[Flight; MAX_FNS]; SHARDS],
    /// Site keys (fn slot, site, line), claimed with CAS.
    keys: [AtomicU64; MAX_SITES],
    /// `[shard][site]` exit counts.
    exits: [[AtomicU64; MAX_SITES]; SHARDS],
}

const _: () = assert!(std::mem::size_of::<FnSlot>() == FN_BYTES);
const _: () = assert!(std::mem::size_of::<Flight>() == FLIGHT_BYTES);
const _: () = assert!(std::mem::size_of::<Counts>() == REGION_BYTES as usize);

// SAFETY: `name` is written only by the one thread that claimed the slot,
// before `ready` is published; everything else is atomic.
unsafe impl Sync for Counts {}

/// This run's region; null while the recorder is off.
static REGION: AtomicPtr<Counts> = AtomicPtr::new(std::ptr::null_mut());
/// The current epoch's bucket.
static BUCKET: AtomicUsize = AtomicUsize::new(0);
/// Which owned shards a live thread holds.
static OWNED: [AtomicBool; SHARED] = [const { AtomicBool::new(false) }; SHARED];

thread_local! {
    /// This thread's shard plus one; 0: none taken yet.
    static SHARD: Cell<usize> = const { Cell::new(0) };
    /// Gives the shard back when the thread ends.
    static OWNER: ShardOwner = const { ShardOwner(Cell::new(SHARED)) };
}

struct ShardOwner(Cell<usize>);

impl Drop for ShardOwner {
    fn drop(&mut self) {
        let shard = self.0.get();
        if shard < SHARED {
            // Ignored: with this thread's locals gone, nothing reads it.
            let _ = SHARD.try_with(|s| s.set(SHARED + 1));
            OWNED[shard].store(false, Release);
        }
    }
}

/// This thread's shard.
#[inline]
fn shard() -> usize {
    match SHARD.try_with(Cell::get) {
        Ok(0) => claim_shard(),
        Ok(s) => s - 1,
        Err(_) => SHARED,
    }
}

#[cold]
#[inline(never)]
fn claim_shard() -> usize {
    let shard = OWNED
        .iter()
        .position(|o| o.compare_exchange(false, true, Acquire, Relaxed).is_ok())
        .unwrap_or(SHARED);
    if shard < SHARED && OWNER.try_with(|o| o.0.set(shard)).is_err() {
        OWNED[shard].store(false, Release);
        return SHARED;
    }
    // Ignored: see `ShardOwner`.
    let _ = SHARD.try_with(|s| s.set(shard + 1));
    shard
}

/// Adds one to a counter of `shard`: a plain load and store in an owned
/// shard (no other thread writes it), an atomic add in the shared one.
#[inline]
fn bump32(c: &AtomicU32, shard: usize) {
    if shard == SHARED {
        c.fetch_add(1, Relaxed);
    } else {
        c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
    }
}

#[inline]
fn bump64(c: &AtomicU64, shard: usize) {
    if shard == SHARED {
        c.fetch_add(1, Relaxed);
    } else {
        c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
    }
}

impl Counts {
    /// Clears a fresh region and marks it valid. `base` points at
    /// [`REGION_BYTES`] writable bytes no one else uses yet.
    ///
    /// # Safety
    /// As above; `base` is page aligned.
    pub(crate) unsafe fn init(base: *mut u8) {
        std::ptr::write_bytes(base, 0, REGION_BYTES as usize);
        let c = &*(base as *const Counts);
        c.header.magic.store(MAGIC, Release);
    }

    /// The region at `base`, if it was initialised.
    ///
    /// # Safety
    /// `base` points at [`REGION_BYTES`] mapped, page-aligned bytes that
    /// live as long as `'a`.
    pub(crate) unsafe fn at<'a>(base: *const u8) -> Option<&'a Counts> {
        let c = &*(base as *const Counts);
        (c.header.magic.load(Acquire) == MAGIC).then_some(c)
    }

    /// Makes this the process's region: counting starts.
    pub(crate) fn activate(&'static self) {
        REGION.store(self as *const Counts as *mut Counts, Release);
    }

    /// The process's region, if counting. Async-signal-safe.
    #[inline]
    pub(crate) fn global() -> Option<&'static Counts> {
        // SAFETY: REGION holds null or a region in a mapping never unmapped.
        unsafe { REGION.load(Acquire).as_ref() }
    }

    fn used(&self) -> usize {
        (self.header.fns_used.load(Acquire) as usize).min(MAX_FNS)
    }

    fn name(&self, i: usize) -> &str {
        let f = &self.fns[i];
        if f.ready.load(Acquire) != 1 {
            return "";
        }
        let len = (f.name_len.load(Relaxed) as usize).min(NAME_BYTES);
        // SAFETY: written before `ready` was published, never again.
        let bytes = unsafe { &(&*f.name.get())[..len] };
        std::str::from_utf8(bytes).unwrap_or("")
    }

    /// Calls of fn `i` in flight in bucket `b`, over all shards.
    fn bucket(&self, i: usize, b: usize) -> u64 {
        let mut n = 0u32;
        for shard in &self.flight {
            let f = &shard[i];
            n = n
                .wrapping_add(f.entered[b].load(Relaxed))
                .wrapping_sub(f.left[b].load(Relaxed));
        }
        // A call seen leaving on one shard but not yet entering on
        // another (read in between) reads as "minus one": empty.
        if n > u32::MAX / 2 {
            0
        } else {
            u64::from(n)
        }
    }

    /// Calls in flight of fn `i` and the Unix µs no one of them began
    /// before (`None` with no call in flight).
    fn flight(&self, i: usize) -> (u64, Option<u64>) {
        let mut count = 0u64;
        let mut born = None::<u64>;
        for b in 0..BUCKETS {
            let n = self.bucket(i, b);
            if n == 0 {
                continue;
            }
            count += n;
            let at = self.fns[i].born[b].load(Relaxed);
            born = Some(born.map_or(at, |o: u64| o.min(at)));
        }
        (count, born)
    }

    /// Advances the epoch (the heartbeat, every beat): the next bucket is
    /// reused, and if empty its calls begin from `now`.
    pub(crate) fn tick(&self, now_micros: u64) {
        let next = (BUCKET.load(Relaxed) + 1) % BUCKETS;
        for i in 0..self.used() {
            if self.bucket(i, next) == 0 {
                self.fns[i].born[next].store(now_micros, Relaxed);
            }
        }
        BUCKET.store(next, Release);
    }

    /// Exits through site `k`, over all shards.
    fn exits(&self, k: usize) -> u64 {
        self.exits
            .iter()
            .fold(0u64, |n, shard| n.wrapping_add(shard[k].load(Relaxed)))
    }

    /// The functions with calls in flight, oldest first, at most `cap`,
    /// ages as of `now_micros`, written as a JSON array of
    /// `{"fn","count","oldest_age_ms"}`. No allocation: async-signal-safe.
    pub(crate) fn write_in_flight<O: Out + ?Sized>(
        &self,
        out: &mut O,
        now_micros: u64,
        cap: usize,
    ) {
        let mut top = [(0usize, 0u64); MAX_IN_FLIGHT];
        let cap = cap.min(MAX_IN_FLIGHT);
        let mut len = 0;
        for i in 0..self.used() {
            let (count, born) = self.flight(i);
            let Some(born) = born.filter(|_| count > 0) else {
                continue;
            };
            insert_top(&mut top, &mut len, cap, (i, u64::MAX - born));
        }
        out.put(b"[");
        for (k, &(i, key)) in top[..len].iter().enumerate() {
            let born = u64::MAX - key;
            let (count, _) = self.flight(i);
            if k > 0 {
                out.put(b",");
            }
            out.put(b"{\"fn\":");
            json::string(out, self.name(i));
            out.put(b",\"count\":");
            json::int(out, count);
            out.put(b",\"oldest_age_ms\":");
            json::int(out, now_micros.saturating_sub(born) / 1000);
            out.put(b"}");
        }
        out.put(b"]");
    }

    /// The sites with the highest counts, at most `cap`, as a JSON array
    /// of `{"fn","site","line","n"}`. No allocation: async-signal-safe.
    pub(crate) fn write_exit_counts<O: Out + ?Sized>(&self, out: &mut O, cap: usize) {
        let mut top = [(0usize, 0u64); MAX_EXIT_COUNTS];
        let cap = cap.min(MAX_EXIT_COUNTS);
        let mut len = 0;
        for (k, key) in self.keys.iter().enumerate() {
            if key.load(Relaxed) == 0 {
                continue;
            }
            let n = self.exits(k);
            if n > 0 {
                insert_top(&mut top, &mut len, cap, (k, n));
            }
        }
        out.put(b"[");
        for (j, &(k, n)) in top[..len].iter().enumerate() {
            let (f, site, line) = unpack(self.keys[k].load(Relaxed));
            if j > 0 {
                out.put(b",");
            }
            out.put(b"{\"fn\":");
            json::string(out, if f < MAX_FNS { self.name(f) } else { "" });
            out.put(b",\"site\":");
            json::string(out, site);
            out.put(b",\"line\":");
            json::int(out, line);
            out.put(b",\"n\":");
            json::int(out, n);
            out.put(b"}");
        }
        out.put(b"]");
    }

    /// Every site's count, highest first.
    pub(crate) fn exit_counts(&self) -> Vec<ExitCount> {
        let mut all: Vec<ExitCount> = self
            .keys
            .iter()
            .enumerate()
            .filter_map(|(k, key)| {
                let key = key.load(Relaxed);
                let n = self.exits(k);
                let (f, site, line) = unpack(key);
                (key != 0 && n > 0 && f < MAX_FNS).then(|| ExitCount {
                    function: self.name(f).to_owned(),
                    site,
                    line,
                    n,
                })
            })
            .collect();
        all.sort_by(|a, b| b.n.cmp(&a.n).then(a.function.cmp(&b.function)));
        all
    }

    /// Every function with calls in flight, oldest first.
    pub(crate) fn in_flight(&self, now_micros: u64) -> Vec<InFlight> {
        let mut all: Vec<InFlight> = (0..self.used())
            .filter_map(|i| {
                let (count, born) = self.flight(i);
                let born = born.filter(|_| count > 0)?;
                Some(InFlight {
                    function: self.name(i).to_owned(),
                    count,
                    oldest_age_ms: now_micros.saturating_sub(born) / 1000,
                })
            })
            .collect();
        all.sort_by_key(|f| std::cmp::Reverse(f.oldest_age_ms));
        all
    }

    /// Fn slots in use, for the heartbeat's stuck check.
    pub(crate) fn fns(&self) -> usize {
        self.used()
    }

    /// Fn `i`'s name, calls in flight and oldest age at `now_micros`.
    pub(crate) fn fn_state(&self, i: usize, now_micros: u64) -> (&str, u64, u64) {
        let (count, born) = self.flight(i);
        let age = born.map_or(0, |b| now_micros.saturating_sub(b) / 1000);
        (self.name(i), count, if count > 0 { age } else { 0 })
    }
}

/// Keeps `top[..len]` sorted by the second member, highest first, at most
/// `cap` long.
fn insert_top(top: &mut [(usize, u64)], len: &mut usize, cap: usize, item: (usize, u64)) {
    if cap == 0 || (*len == cap && top[cap - 1].1 >= item.1) {
        return;
    }
    let mut at = (*len).min(cap - 1);
    if *len < cap {
        *len += 1;
    }
    while at > 0 && top[at - 1].1 < item.1 {
        top[at] = top[at - 1];
        at -= 1;
    }
    top[at] = item;
}

fn site_code(site: Site) -> u64 {
    site as u64
}

fn site_name(code: u64) -> &'static str {
    [
        Site::Return,
        Site::Question,
        Site::Tail,
        Site::Macro,
        Site::Unwind,
        Site::Cancelled,
    ]
    .into_iter()
    .find(|s| site_code(*s) == code)
    .map_or("?", Site::as_str)
}

#[inline]
fn pack(f: usize, site: Site, line: u32) -> u64 {
    ((f as u64 + 1) << 40) | (site_code(site) << 32) | u64::from(line)
}

fn unpack(key: u64) -> (usize, &'static str, u32) {
    (
        ((key >> 40) as usize).wrapping_sub(1),
        site_name((key >> 32) & 0xff),
        key as u32,
    )
}

/// A call enters fn `slot` (an `ExitSite`'s slot word): returns the bucket
/// it counted itself in, plus one; 0 when not counting; `None` when the fn
/// has no slot yet, for [`enter_new`] (a cold path, so that its name is
/// made only then).
#[inline]
pub(crate) fn enter(slot: &AtomicU32) -> Option<usize> {
    let Some(region) = Counts::global() else {
        return Some(0);
    };
    let i = slot.load(Acquire);
    if i.wrapping_sub(1) as usize >= MAX_FNS {
        return None;
    }
    Some(count_entered(region, i))
}

/// [`enter`] for a fn that has no slot yet: takes one, named `name()`.
#[cold]
pub(crate) fn enter_new(slot: &AtomicU32, name: impl FnOnce() -> String) -> usize {
    let Some(region) = Counts::global() else {
        return 0;
    };
    let i = register(region, slot, name);
    if i.wrapping_sub(1) as usize >= MAX_FNS {
        return 0;
    }
    count_entered(region, i)
}

/// A call that entered in `bucket` (as [`enter`] returned it) leaves
/// through `site` at `line`.
#[inline]
pub(crate) fn leave(slot: &AtomicU32, bucket: usize, site: Site, line: u32) {
    let Some(region) = Counts::global() else {
        return;
    };
    let i = (slot.load(Relaxed) as usize).wrapping_sub(1);
    if i >= MAX_FNS {
        return;
    }
    let shard = shard();
    bump32(&region.flight[shard][i].left[(bucket - 1) % BUCKETS], shard);
    region.count(pack(i, site, line), shard);
}

#[inline]
fn count_entered(region: &Counts, i: u32) -> usize {
    let b = BUCKET.load(Relaxed) % BUCKETS;
    let shard = shard();
    bump32(&region.flight[shard][i as usize - 1].entered[b], shard);
    b + 1
}

impl Counts {
    #[inline]
    fn count(&self, key: u64, shard: usize) {
        let first = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 53) as usize;
        for h in first..first + 32 {
            let k = h % MAX_SITES;
            let found = self.keys[k].load(Relaxed);
            if found == key
                || (found == 0
                    && match self.keys[k].compare_exchange(0, key, Relaxed, Relaxed) {
                        Ok(_) => true,
                        Err(other) => other == key,
                    })
            {
                bump64(&self.exits[shard][k], shard);
                return;
            }
        }
        self.header.sites_lost.fetch_add(1, Relaxed);
    }
}

#[cold]
#[inline(never)]
fn register(region: &Counts, slot: &AtomicU32, name: impl FnOnce() -> String) -> u32 {
    match slot.compare_exchange(0, BUSY, Acquire, Acquire) {
        Ok(_) => {}
        Err(v) => {
            // Another thread registers the fn (a few µs): wait for it.
            let mut v = v;
            while v == BUSY {
                std::thread::yield_now();
                v = slot.load(Acquire);
            }
            return v;
        }
    }
    let i = region.header.fns_used.fetch_add(1, AcqRel) as usize;
    if i >= MAX_FNS {
        slot.store(NONE, Release);
        return NONE;
    }
    let f = &region.fns[i];
    let name = name();
    let mut len = name.len().min(NAME_BYTES);
    while !name.is_char_boundary(len) {
        len -= 1;
    }
    // SAFETY: slot `i` is this thread's alone until `ready` is published.
    unsafe { (&mut *f.name.get())[..len].copy_from_slice(&name.as_bytes()[..len]) };
    f.name_len.store(len as u64, Relaxed);
    let now = crate::clock::Timestamp::now().as_micros() as u64;
    for born in &f.born {
        born.store(now, Relaxed);
    }
    f.ready.store(1, Release);
    slot.store(i as u32 + 1, Release);
    i as u32 + 1
}

/// In the child of `fork()`: stops counting into the parent's region.
pub(crate) fn forget_after_fork() {
    REGION.store(std::ptr::null_mut(), Release);
}

/// How often one way out of one `#[exit_path]` function was taken in this
/// run (see [`exit_counts`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitCount {
    /// The function's path, as the `fn` field of its `fn_exit` records.
    pub function: String,
    /// The `site` field: `return`, `?`, `tail`, `macro`, `unwind`,
    /// `cancelled`.
    pub site: &'static str,
    /// The exit's line (the function's own line for `unwind`, `cancelled`).
    pub line: u32,
    /// How many calls left this way.
    pub n: u64,
}

/// Calls of one `#[exit_path]` function inside it now (see [`in_flight`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// The function's path.
    pub function: String,
    /// Calls entered and not yet left.
    pub count: u64,
    /// Age of the oldest of them in ms: never less than the truth, usually
    /// at most 500 ms more (see the recorder docs).
    pub oldest_age_ms: u64,
}

/// This run's exit counts, every site, highest count first: for a health
/// endpoint. Empty while the flight recorder is off (counting needs it).
pub fn exit_counts() -> Vec<ExitCount> {
    Counts::global().map_or_else(Vec::new, Counts::exit_counts)
}

/// The `#[exit_path]` functions with calls in flight now, oldest call
/// first: for a health endpoint. Empty while the flight recorder is off.
pub fn in_flight() -> Vec<InFlight> {
    let now = crate::clock::Timestamp::now().as_micros() as u64;
    Counts::global().map_or_else(Vec::new, |c| c.in_flight(now))
}

/// Writes `,"exit_counts":[…],"in_flight":[…]` for a death record when the
/// recorder counts. Async-signal-safe.
pub(crate) fn write_members<O: Out + ?Sized>(out: &mut O) {
    let Some(c) = Counts::global() else { return };
    let now = crate::clock::Timestamp::now().as_micros() as u64;
    out.put(b",\"exit_counts\":");
    c.write_exit_counts(out, MAX_EXIT_COUNTS);
    out.put(b",\"in_flight\":");
    c.write_in_flight(out, now, MAX_IN_FLIGHT);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_keeps_the_highest_in_order() {
        let mut top = [(0, 0); 3];
        let mut len = 0;
        for (i, n) in [(0, 5), (1, 9), (2, 1), (3, 7), (4, 8)] {
            insert_top(&mut top, &mut len, 3, (i, n));
        }
        assert_eq!(&top[..len], &[(1, 9), (4, 8), (3, 7)]);
    }

    /// A fresh region in memory, never freed.
    fn region() -> &'static Counts {
        let layout = std::alloc::Layout::from_size_align(REGION_BYTES as usize, 4096).unwrap();
        // SAFETY: a fresh allocation of the region's size and alignment.
        unsafe {
            let base = std::alloc::alloc(layout);
            assert!(!base.is_null());
            Counts::init(base);
            Counts::at(base).unwrap()
        }
    }

    #[test]
    fn counts_exits_per_site_across_shards_and_caps_the_record() {
        let c = region();
        let slot = AtomicU32::new(0);
        let i = register(c, &slot, || "app::relocate".into());
        assert_eq!(i, 1);
        assert_eq!(slot.load(Relaxed), 1);
        for shard in [0, 5, SHARED] {
            for _ in 0..3 {
                c.count(pack(0, Site::Question, 12), shard);
            }
        }
        c.count(pack(0, Site::Tail, 14), 0);
        assert_eq!(
            c.exit_counts(),
            [
                ExitCount {
                    function: "app::relocate".into(),
                    site: "?",
                    line: 12,
                    n: 9
                },
                ExitCount {
                    function: "app::relocate".into(),
                    site: "tail",
                    line: 14,
                    n: 1
                },
            ]
        );
        let mut out = Vec::new();
        c.write_exit_counts(&mut out, 1);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"[{"fn":"app::relocate","site":"?","line":12,"n":9}]"#
        );
    }

    #[test]
    fn a_call_entered_on_one_shard_may_leave_on_another_and_ages_come_from_born() {
        let c = region();
        let slot = AtomicU32::new(0);
        register(c, &slot, || "app::stuck".into());
        let b = BUCKET.load(Relaxed) % BUCKETS;
        c.fns[0].born[b].store(1_000_000, Relaxed);
        for shard in [0, 1, SHARED] {
            bump32(&c.flight[shard][0].entered[b], shard);
        }
        bump32(&c.flight[2][0].left[b], 2);
        assert_eq!(
            c.in_flight(4_500_000),
            [InFlight {
                function: "app::stuck".into(),
                count: 2,
                oldest_age_ms: 3500
            }]
        );
        let mut out = Vec::new();
        c.write_in_flight(&mut out, 4_500_000, MAX_IN_FLIGHT);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"[{"fn":"app::stuck","count":2,"oldest_age_ms":3500}]"#
        );
        // Every call leaves: nothing in flight, whatever `born` says.
        for shard in [3, 4] {
            bump32(&c.flight[shard][0].left[b], shard);
        }
        assert_eq!(c.in_flight(4_500_000), []);
        assert_eq!(c.fn_state(0, 4_500_000), ("app::stuck", 0, 0));
    }

    #[test]
    fn keys_round_trip() {
        let (f, site, line) = unpack(pack(7, Site::Question, 4242));
        assert_eq!((f, site, line), (7, "?", 4242));
    }
}
