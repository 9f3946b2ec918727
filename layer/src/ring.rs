//! The breadcrumb ring: the last [`CAPACITY`] breadcrumbs of the process, kept
//! in memory so that the record of the process's death can say what it was
//! doing last, even when breadcrumb records themselves are filtered out.
//!
//! Writers never lock and never allocate: a push claims a slot with one
//! `fetch_add` and fills it under a per-slot sequence number (a seqlock),
//! plus a check word that ties the entry's words to its position. Readers,
//! including signal handlers, copy slots and keep only those whose
//! sequence number did not move while they read and whose check word
//! matches what they read, so a torn entry is skipped, never reported.
//!
//! The check word is needed because two pushes can share a slot at once: a
//! push stalled (preempted) for a whole lap of the ring finishes its stores
//! on top of the newer entry a later push completed in the same slot
//! meanwhile, and the sequence number alone cannot tell (the stalled push
//! stored its own before the newer push stored its). A mix of the entry's
//! position and words with different odd multipliers per word, the check
//! matches a mix of two entries' words only by a 64-bit coincidence. A
//! compare-and-swap to claim the slot would exclude the stalled push for
//! certain, but costs a second locked instruction on every push. Entries point at `&'static` [`CrumbSite`]s, so nothing in
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
    /// [`check`] of the entry's position and the three words above.
    check: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)] // only used to initialise RING
const EMPTY: Slot = Slot {
    version: AtomicU64::new(0),
    site: AtomicPtr::new(ptr::null_mut()),
    tid: AtomicI64::new(0),
    micros: AtomicI64::new(0),
    check: AtomicU64::new(0),
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

/// The check word of the entry at position `index`: each word times its
/// own odd constant (a bijection), combined, so that a mix of two entries'
/// words (or an entry's words under another position) matches only by a
/// 64-bit coincidence.
#[inline(always)]
fn check(index: u64, site: *const CrumbSite, tid: i64, micros: i64) -> u64 {
    index.wrapping_mul(0xD6E8_FEB8_6659_FD93)
        ^ (site as usize as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (tid as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ (micros as u64).wrapping_mul(0x1656_67B1_9E37_79F9)
}

/// Leaves a breadcrumb in the ring. Lock-free and allocation-free.
#[inline]
pub fn push(site: &'static CrumbSite) {
    let index = PUSHES.fetch_add(1, Ordering::Relaxed);
    let slot = &RING[(index % CAPACITY as u64) as usize];
    slot.version.store(2 * index + 1, Ordering::Relaxed);
    fence(Ordering::Release);
    let site = site as *const CrumbSite as *mut CrumbSite;
    let tid = thread::tid();
    let micros = Timestamp::now_coarse().as_micros();
    slot.site.store(site, Ordering::Relaxed);
    slot.tid.store(tid, Ordering::Relaxed);
    slot.micros.store(micros, Ordering::Relaxed);
    slot.check
        .store(check(index, site, tid, micros), Ordering::Relaxed);
    slot.version.store(2 * index + 2, Ordering::Release);
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
        let sum = slot.check.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if slot.version.load(Ordering::Relaxed) != before
            || site.is_null()
            || sum != check(index, site, tid, micros)
        {
            continue; // being rewritten, or torn by a push a lap behind
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
