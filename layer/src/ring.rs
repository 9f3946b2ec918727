//! The breadcrumb ring: the last [`CAPACITY`] breadcrumbs of the process, kept
//! in memory so that the record of the process's death can say what it was
//! doing last, even when breadcrumb records themselves are filtered out.
//!
//! Writers never lock and never allocate: a push takes a position with one
//! `fetch_add`, claims that position's slot with one compare-and-swap of
//! the slot's sequence number (so that two pushes a lap apart never write
//! the same slot at once) and fills it under that number (a seqlock).
//! Readers, including signal handlers, copy slots and keep only those whose
//! sequence number did not move while they read, so a torn entry is skipped,
//! never reported. Entries point at `&'static` [`CrumbSite`]s, so nothing in
//! the ring ever needs freeing.

use std::ptr;
use std::sync::atomic::{fence, AtomicI64, AtomicPtr, AtomicU64, Ordering};

use crate::clock::Timestamp;
use crate::thread;

/// How many breadcrumbs the ring keeps.
pub const CAPACITY: usize = 64;

/// Where a breadcrumb was left: static, so the ring stores only a pointer.
#[derive(Debug)]
pub struct CrumbSite {
    /// What the breadcrumb says: a message or the annotated function's path.
    pub name: &'static str,
    /// Source file of the breadcrumb.
    pub file: &'static str,
    /// Source line of the breadcrumb.
    pub line: u32,
}

struct Slot {
    /// `2 * index + 1` while being written, `2 * index + 2` once complete,
    /// where `index` is the push's position in the stream of all pushes.
    version: AtomicU64,
    site: AtomicPtr<CrumbSite>,
    tid: AtomicI64,
    micros: AtomicI64,
}

#[allow(clippy::declare_interior_mutable_const)] // only used to initialise RING
const EMPTY: Slot = Slot {
    version: AtomicU64::new(0),
    site: AtomicPtr::new(ptr::null_mut()),
    tid: AtomicI64::new(0),
    micros: AtomicI64::new(0),
};

static RING: [Slot; CAPACITY] = [EMPTY; CAPACITY];
static PUSHES: AtomicU64 = AtomicU64::new(0);

/// One breadcrumb copied out of the ring.
#[derive(Clone, Copy, Debug)]
pub struct Crumb {
    /// The breadcrumb's static site.
    pub site: &'static CrumbSite,
    /// Kernel thread id of the thread that left it.
    pub tid: i64,
    /// When it was left (coarse clock: kernel-tick resolution).
    pub(crate) at: Timestamp,
    /// Position in the stream of all breadcrumbs of this process.
    pub index: u64,
}

/// Leaves a breadcrumb in the ring. Lock-free and allocation-free.
///
/// A slot is written by one push at a time: the push claims it by moving
/// its version from a complete entry of an earlier lap (even, smaller) to
/// its own odd "being written" value in one compare-and-swap. Without the
/// claim, a push that stalled (preempted) for a whole lap of the ring would
/// finish its stores on top of the newer entry that a later push completed
/// in the same slot meanwhile, and a reader could take the newer entry's
/// version with the stalled push's thread id. When the claim fails (the
/// slot is being written by a push a lap away, or already holds a newer
/// entry) this breadcrumb is dropped: it is then more than a lap old or its
/// slot is busy, and readers skip a slot whose version is not the one they
/// expect, so the ring reports one entry fewer rather than a torn one.
#[inline]
pub fn push(site: &'static CrumbSite) {
    let index = PUSHES.fetch_add(1, Ordering::Relaxed);
    let slot = &RING[(index % CAPACITY as u64) as usize];
    let writing = 2 * index + 1;
    let seen = slot.version.load(Ordering::Relaxed);
    // Versions only grow, so a successful swap from `seen` cannot be an
    // ABA: nobody else writes the slot until this push stores its even
    // version.
    if seen % 2 == 1
        || seen > writing
        || slot
            .version
            .compare_exchange(seen, writing, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    fence(Ordering::Release);
    slot.site.store(
        site as *const CrumbSite as *mut CrumbSite,
        Ordering::Relaxed,
    );
    slot.tid.store(thread::tid(), Ordering::Relaxed);
    slot.micros
        .store(Timestamp::now_coarse().as_micros(), Ordering::Relaxed);
    slot.version.store(writing + 1, Ordering::Release);
}

/// Copies the most recent breadcrumbs into `out`, oldest first, and returns
/// how many were copied (at most `out.len()` and [`CAPACITY`]).
///
/// Async-signal-safe: only atomic loads and copies into `out`.
pub fn recent(out: &mut [Option<Crumb>]) -> usize {
    let end = PUSHES.load(Ordering::Acquire);
    let want = (out.len().min(CAPACITY) as u64).min(end);
    let mut n = 0;
    for index in end - want..end {
        let slot = &RING[(index % CAPACITY as u64) as usize];
        let before = slot.version.load(Ordering::Acquire);
        if before != 2 * index + 2 {
            continue; // not finished yet, or already overwritten
        }
        let site = slot.site.load(Ordering::Relaxed);
        let tid = slot.tid.load(Ordering::Relaxed);
        let micros = slot.micros.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if slot.version.load(Ordering::Relaxed) != before || site.is_null() {
            continue;
        }
        // SAFETY: non-null `site` pointers in the ring all come from
        // `&'static CrumbSite` in `push`.
        let site = unsafe { &*site };
        out[n] = Some(Crumb {
            site,
            tid,
            at: Timestamp::from_micros(micros),
            index,
        });
        n += 1;
    }
    n
}

/// The most recent `n` breadcrumbs, oldest first (not for signal handlers:
/// it allocates).
pub fn last(n: usize) -> Vec<Crumb> {
    let mut buf = [None; CAPACITY];
    let got = recent(&mut buf[..n.min(CAPACITY)]);
    buf[..got].iter().flatten().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    static A: CrumbSite = CrumbSite {
        name: "a",
        file: "a.rs",
        line: 1,
    };
    static B: CrumbSite = CrumbSite {
        name: "b",
        file: "b.rs",
        line: 2,
    };

    #[test]
    fn keeps_the_last_entries_oldest_first_across_threads() {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..10_000 {
                        push(&A);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        push(&B);
        let crumbs = last(CAPACITY);
        assert_eq!(crumbs.len(), CAPACITY);
        assert!(crumbs.windows(2).all(|w| w[0].index < w[1].index));
        let newest = crumbs.last().unwrap();
        assert_eq!(newest.site.name, "b");
        assert_eq!(newest.tid, thread::tid());
        assert!(crumbs[..CAPACITY - 1].iter().all(|c| c.site.name == "a"));
    }
}
